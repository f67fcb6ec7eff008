//! Rootfs mounts that containerd asks to be id-mapped: a container of a pod with a user
//! namespace of its own (Kubernetes `hostUsers: false`) gets its snapshot with the options
//! `uidmap=` and `gidmap=` (`container-id:host-id:size`, comma-separated), which are no
//! options of any filesystem. They ask the shim for an id-mapped mount, as containerd's own
//! mount code makes one:
//! - overlay: the lower layers are seen through an id-mapped, read-only copy of the directory
//!   that holds them, and overlay is mounted from those paths;
//! - anything else is mounted as asked, then id-mapped in place.
//!
//! This module is the decision only: what to map, and the options the kernel gets. The
//! mount calls are in `sys` and `task::container`.

use std::path::{Component, Path, PathBuf};

/// One line of a uid_map or gid_map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub container: u32,
    pub host: u32,
    pub size: u32,
}

/// How a rootfs mount is id-mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remap {
    /// Map `common` (the directory that holds every lower layer) and mount overlay with
    /// `options`, whose `lowerdir=` names the layers below the mapped copy: each is `common`'s
    /// path relative to it, to be joined to where that copy is.
    Overlay {
        uids: Vec<IdRange>,
        gids: Vec<IdRange>,
        common: PathBuf,
        /// The lower layers, relative to `common`, in overlay's order.
        lowers: Vec<PathBuf>,
        /// The other options, in order, without uidmap, gidmap and lowerdir.
        options: Vec<String>,
    },
    /// Mount with `options`, then map the mount in place.
    InPlace {
        uids: Vec<IdRange>,
        gids: Vec<IdRange>,
        options: Vec<String>,
    },
}

impl Remap {
    pub fn uids(&self) -> &[IdRange] {
        match self {
            Remap::Overlay { uids, .. } | Remap::InPlace { uids, .. } => uids,
        }
    }

    pub fn gids(&self) -> &[IdRange] {
        match self {
            Remap::Overlay { gids, .. } | Remap::InPlace { gids, .. } => gids,
        }
    }
}

/// The text of `/proc/PID/uid_map` (or gid_map) for `ranges`.
pub fn map_file(ranges: &[IdRange]) -> String {
    ranges
        .iter()
        .map(|r| format!("{} {} {}\n", r.container, r.host, r.size))
        .collect()
}

/// `container-id:host-id:size[,...]`.
fn parse_ranges(what: &str, text: &str) -> Result<Vec<IdRange>, String> {
    text.split(',')
        .map(|one| {
            let parts: Vec<&str> = one.split(':').collect();
            let [c, h, s] = parts.as_slice() else {
                return Err(format!(
                    "{what}={text}: each mapping is container-id:host-id:size"
                ));
            };
            let num = |v: &str| {
                v.parse::<u32>()
                    .map_err(|_| format!("{what}={text}: {v:?} is not an id"))
            };
            let r = IdRange {
                container: num(c)?,
                host: num(h)?,
                size: num(s)?,
            };
            if r.size == 0
                || r.container.checked_add(r.size - 1).is_none()
                || r.host.checked_add(r.size - 1).is_none()
            {
                return Err(format!(
                    "{what}={text}: {one} is an empty or overflowing range"
                ));
            }
            Ok(r)
        })
        .collect()
}

/// The deepest directory that holds every path of `paths` (absolute, normalised), which must
/// not be `/`.
fn common_directory(paths: &[PathBuf]) -> Result<PathBuf, String> {
    let mut common: Vec<Component<'_>> = match paths.first() {
        Some(p) => p.components().collect(),
        None => return Err("overlay has no lowerdir".into()),
    };
    for p in &paths[1..] {
        let n = common
            .iter()
            .zip(p.components())
            .take_while(|(a, b)| *a == b)
            .count();
        common.truncate(n);
    }
    let common: PathBuf = common.iter().collect();
    if common.parent().is_none() {
        return Err(format!(
            "the lower layers {} share no directory but /",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(":")
        ));
    }
    Ok(common)
}

/// Whether `path` is absolute and has no `.` or `..`, so that it is inside `common` when its
/// components start with `common`'s.
fn normal_absolute(path: &Path) -> bool {
    path.is_absolute()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

/// How the rootfs mount of `fstype` with `options` is id-mapped, or `None` when it asks for
/// no mapping. Both uidmap and gidmap must be given, as containerd gives them.
pub fn plan(fstype: &str, options: &[String]) -> Result<Option<Remap>, String> {
    let mut uids = None;
    let mut gids = None;
    let mut lowerdir = None;
    let mut rest = Vec::new();
    for o in options {
        if let Some(v) = o.strip_prefix("uidmap=") {
            uids = Some(parse_ranges("uidmap", v)?);
        } else if let Some(v) = o.strip_prefix("gidmap=") {
            gids = Some(parse_ranges("gidmap", v)?);
        } else if let Some(v) = o.strip_prefix("lowerdir=").filter(|_| fstype == "overlay") {
            lowerdir = Some(v.to_string());
        } else {
            rest.push(o.clone());
        }
    }
    let (uids, gids) = match (uids, gids) {
        (None, None) => return Ok(None),
        (Some(u), Some(g)) => (u, g),
        _ => return Err("uidmap and gidmap must be given together".into()),
    };
    if fstype != "overlay" {
        return Ok(Some(Remap::InPlace {
            uids,
            gids,
            options: rest,
        }));
    }
    let lowerdir = lowerdir.ok_or("an id-mapped overlay needs a lowerdir")?;
    let layers: Vec<PathBuf> = lowerdir.split(':').map(PathBuf::from).collect();
    if let Some(odd) = layers.iter().find(|l| !normal_absolute(l)) {
        return Err(format!(
            "lower layer {} is not an absolute path without . or ..",
            odd.display()
        ));
    }
    let common = common_directory(&layers)?;
    let lowers = layers
        .iter()
        .map(|l| {
            l.strip_prefix(&common)
                .map(Path::to_path_buf)
                .map_err(|_| format!("{} is not below {}", l.display(), common.display()))
        })
        .collect::<Result<_, _>>()?;
    Ok(Some(Remap::Overlay {
        uids,
        gids,
        common,
        lowers,
        options: rest,
    }))
}

/// The overlay options of `remap` with its layers seen through `mapped`, where the mapped
/// copy of `common` is.
pub fn overlay_options(options: &[String], lowers: &[PathBuf], mapped: &Path) -> Vec<String> {
    let lowerdir = lowers
        .iter()
        .map(|l| {
            if l.as_os_str().is_empty() {
                mapped.display().to_string()
            } else {
                mapped.join(l).display().to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(":");
    let mut all = options.to_vec();
    all.push(format!("lowerdir={lowerdir}"));
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(o: &[&str]) -> Vec<String> {
        o.iter().map(|s| s.to_string()).collect()
    }

    const SNAP: &str = "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots";

    #[test]
    fn a_mount_without_mappings_is_left_as_it_is() {
        let o = opts(&["index=off", &format!("lowerdir={SNAP}/1/fs")]);
        assert_eq!(plan("overlay", &o), Ok(None));
        assert_eq!(plan("bind", &opts(&["rbind", "ro"])), Ok(None));
    }

    #[test]
    fn overlay_layers_are_seen_through_one_mapped_copy_of_their_common_directory() {
        let o = opts(&[
            "index=off",
            &format!("workdir={SNAP}/9/work"),
            &format!("upperdir={SNAP}/9/fs"),
            &format!("lowerdir={SNAP}/3/fs:{SNAP}/12/fs"),
            "uidmap=0:1048576:65536",
            "gidmap=0:1048576:65536,65536:2000000:1",
        ]);
        let remap = plan("overlay", &o).unwrap().unwrap();
        let Remap::Overlay {
            uids,
            gids,
            common,
            lowers,
            options,
        } = &remap
        else {
            panic!("{remap:?}")
        };
        assert_eq!(
            uids,
            &[IdRange {
                container: 0,
                host: 1048576,
                size: 65536
            }]
        );
        assert_eq!(map_file(gids), "0 1048576 65536\n65536 2000000 1\n");
        assert_eq!(common, Path::new(SNAP));
        assert_eq!(lowers, &[PathBuf::from("3/fs"), PathBuf::from("12/fs")]);
        assert_eq!(
            overlay_options(options, lowers, Path::new("/run/b/idmapped")),
            opts(&[
                "index=off",
                &format!("workdir={SNAP}/9/work"),
                &format!("upperdir={SNAP}/9/fs"),
                "lowerdir=/run/b/idmapped/3/fs:/run/b/idmapped/12/fs",
            ]),
            "the upper layer is the snapshot's own; only the lower ones are mapped"
        );
    }

    #[test]
    fn the_common_directory_ends_at_a_component_not_inside_a_name() {
        let o = opts(&[
            "lowerdir=/snap/10/fs:/snap/11/fs",
            "uidmap=0:1:1",
            "gidmap=0:1:1",
        ]);
        let Some(Remap::Overlay { common, lowers, .. }) = plan("overlay", &o).unwrap() else {
            panic!()
        };
        assert_eq!(common, Path::new("/snap"));
        assert_eq!(lowers, [PathBuf::from("10/fs"), PathBuf::from("11/fs")]);
    }

    #[test]
    fn one_layer_is_its_own_common_directory() {
        let o = opts(&["lowerdir=/snap/1/fs", "uidmap=0:1:1", "gidmap=0:1:1"]);
        let Some(Remap::Overlay { common, lowers, .. }) = plan("overlay", &o).unwrap() else {
            panic!()
        };
        assert_eq!(common, Path::new("/snap/1/fs"));
        assert_eq!(lowers, [PathBuf::new()]);
        assert_eq!(
            overlay_options(&[], &lowers, Path::new("/m")),
            ["lowerdir=/m"]
        );
    }

    #[test]
    fn other_filesystems_are_mapped_in_place() {
        let o = opts(&["rbind", "uidmap=0:5:10", "gidmap=0:5:10"]);
        assert_eq!(
            plan("bind", &o),
            Ok(Some(Remap::InPlace {
                uids: vec![IdRange {
                    container: 0,
                    host: 5,
                    size: 10
                }],
                gids: vec![IdRange {
                    container: 0,
                    host: 5,
                    size: 10
                }],
                options: opts(&["rbind"]),
            }))
        );
    }

    #[test]
    fn malformed_mappings_and_layers_are_refused() {
        let bad = [
            (vec!["lowerdir=/a/b", "uidmap=0:1:1"], "together"),
            (
                vec!["lowerdir=/a/b", "uidmap=0:1", "gidmap=0:1:1"],
                "container-id:host-id:size",
            ),
            (
                vec!["lowerdir=/a/b", "uidmap=0:x:1", "gidmap=0:1:1"],
                "not an id",
            ),
            (
                vec!["lowerdir=/a/b", "uidmap=0:1:0", "gidmap=0:1:1"],
                "empty",
            ),
            (
                vec!["lowerdir=/a/b", "uidmap=0:4294967295:2", "gidmap=0:1:1"],
                "overflowing",
            ),
            (vec!["uidmap=0:1:1", "gidmap=0:1:1"], "needs a lowerdir"),
            (
                vec!["lowerdir=/a/1:/b/2", "uidmap=0:1:1", "gidmap=0:1:1"],
                "but /",
            ),
            (
                vec!["lowerdir=/a/../etc", "uidmap=0:1:1", "gidmap=0:1:1"],
                "without . or ..",
            ),
            (
                vec!["lowerdir=a/b", "uidmap=0:1:1", "gidmap=0:1:1"],
                "absolute",
            ),
        ];
        for (o, why) in bad {
            let err = plan("overlay", &opts(&o)).expect_err(&format!("{o:?}"));
            assert!(err.contains(why), "{o:?}: {err}");
        }
    }
}
