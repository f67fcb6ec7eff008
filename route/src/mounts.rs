//! Where a path of a container not started yet is found: in its root filesystem, or in the
//! source of one of the spec's bind mounts, which runc mounts over it. Pure path logic; the
//! rootfs crate does the lookups.

use std::path::{Path, PathBuf};

/// One of the spec's mounts, as a lookup before runc has mounted anything needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Where it goes in the container.
    pub destination: PathBuf,
    /// The host path a bind mount shows there; None for any other kind (tmpfs, proc, ...),
    /// whose files nothing can know before it is mounted.
    pub bind_source: Option<PathBuf>,
}

/// Where the container's path `path` is found at Create, when the root holds no mount yet.
#[derive(Debug, PartialEq, Eq)]
pub enum Place {
    /// In the root filesystem.
    Root,
    /// At `rel` below the host directory `dir` (a bind mount's source, or the directory
    /// of a bound file).
    Bind { dir: PathBuf, rel: PathBuf },
    /// Under a mount of another kind: nowhere to read it yet.
    Unknowable,
}

/// Which of `mounts` (in the spec's order, where a later mount covers what earlier ones
/// put below its destination) provides `path`. Lexical, as runc mounts the destinations:
/// a path with `..`, or relative, stays in the root.
pub fn place(path: &Path, mounts: &[Mount]) -> Place {
    use std::path::Component;
    if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
        return Place::Root;
    }
    let provider = mounts.iter().rev().find(|m| {
        m.destination.is_absolute()
            && m.destination
                .components()
                .all(|c| c != Component::ParentDir)
            && m.destination.components().count() > 1
            && path.starts_with(&m.destination)
    });
    let Some(mount) = provider else {
        return Place::Root;
    };
    let Some(source) = mount.bind_source.as_ref().filter(|s| s.is_absolute()) else {
        return Place::Unknowable;
    };
    let rel = path
        .strip_prefix(&mount.destination)
        .unwrap_or(Path::new(""));
    if rel.as_os_str().is_empty() {
        // A bound file (a binary, a script of a ConfigMap's subPath).
        return match (source.parent(), source.file_name()) {
            (Some(dir), Some(name)) => Place::Bind {
                dir: dir.to_owned(),
                rel: PathBuf::from(name),
            },
            _ => Place::Unknowable,
        };
    }
    Place::Bind {
        dir: source.clone(),
        rel: rel.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(destination: &str, bind_source: Option<&Path>) -> Mount {
        Mount {
            destination: PathBuf::from(destination),
            bind_source: bind_source.map(Path::to_owned),
        }
    }

    #[test]
    fn a_path_is_placed_in_the_last_mount_that_covers_it() {
        let p = |s: &str| PathBuf::from(s);
        let mounts = [
            mount("/opt/tools", Some(Path::new("/srv/tools"))),
            mount("/opt/tools/cache", None),
            mount("/scripts/run.sh", Some(Path::new("/etc/cm/run.sh"))),
            mount("/", Some(Path::new("/elsewhere"))),
            mount("/data", Some(Path::new("relative/source"))),
        ];
        let bind = |dir: &str, rel: &str| Place::Bind {
            dir: p(dir),
            rel: p(rel),
        };
        assert_eq!(
            place(&p("/opt/tools/bin/x"), &mounts),
            bind("/srv/tools", "bin/x")
        );
        assert_eq!(place(&p("/opt/tools/cache/x"), &mounts), Place::Unknowable);
        assert_eq!(
            place(&p("/scripts/run.sh"), &mounts),
            bind("/etc/cm", "run.sh")
        );
        // Components, not string prefixes; `/` is the root itself; `..` and relative paths stay.
        assert_eq!(place(&p("/opt/toolsx/a"), &mounts), Place::Root);
        assert_eq!(place(&p("/bin/sh"), &mounts), Place::Root);
        assert_eq!(place(&p("/opt/tools/../../bin/sh"), &mounts), Place::Root);
        assert_eq!(place(&p("opt/tools/x"), &mounts), Place::Root);
        assert_eq!(place(&p("/data/x"), &mounts), Place::Unknowable);
        // A later mount over an earlier one's destination covers it.
        let over = [
            mount("/opt/tools/cache", None),
            mount("/opt", Some(Path::new("/srv/opt"))),
        ];
        assert_eq!(
            place(&p("/opt/tools/cache/x"), &over),
            bind("/srv/opt", "tools/cache/x")
        );
    }
}
