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
    /// At `rel` below the host directory `dir`, a bind mount's source.
    Bind { dir: PathBuf, rel: PathBuf },
    /// The source of the bind mount whose destination `path` is: a host path that runc's
    /// mount resolves on the host (a bound file, a volume's top).
    Source(PathBuf),
    /// Under a mount of another kind: nowhere to read it yet.
    Unknowable,
}

/// The mount of `mounts` (in the spec's order, where a later mount covers what earlier ones
/// put below its destination) that covers `path`, if any. Lexical: a relative destination,
/// one with `..`, or `/` covers nothing.
fn covering<'a>(path: &Path, mounts: &'a [Mount]) -> Option<&'a Mount> {
    mounts
        .iter()
        .rev()
        .find(|m| usable(m) && path.starts_with(&m.destination))
}

fn usable(m: &Mount) -> bool {
    use std::path::Component;
    m.destination.is_absolute()
        && m.destination
            .components()
            .all(|c| c != Component::ParentDir)
        && m.destination.components().count() > 1
}

/// Which of `mounts` provides `path`. Lexical, as the destinations are once resolved: a path
/// with `..`, or relative, stays in the root.
pub fn place(path: &Path, mounts: &[Mount]) -> Place {
    use std::path::Component;
    if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
        return Place::Root;
    }
    let Some(mount) = covering(path, mounts) else {
        return Place::Root;
    };
    let Some(source) = mount.bind_source.as_ref().filter(|s| s.is_absolute()) else {
        return Place::Unknowable;
    };
    match path.strip_prefix(&mount.destination) {
        Ok(rel) if !rel.as_os_str().is_empty() => Place::Bind {
            dir: source.clone(),
            rel: rel.to_owned(),
        },
        _ => Place::Source(source.clone()),
    }
}

/// The mount whose destination `path` is, when it is not covered by a later one: what shows
/// at `path` is that mount (a directory, or a bind's source), not what the image has there.
pub fn mount_at<'a>(path: &Path, mounts: &'a [Mount]) -> Option<&'a Mount> {
    covering(path, mounts).filter(|m| m.destination == path)
}

/// Whether one of `mounts` goes below `path`: runc makes the directories on the way to a
/// destination, so `path` is a directory there even when the image has nothing at it.
pub fn leads_to_a_mount(path: &Path, mounts: &[Mount]) -> bool {
    mounts
        .iter()
        .any(|m| usable(m) && m.destination.starts_with(path) && m.destination != path)
}

/// How many components one inspection may look up across mounts. A real image needs a few
/// dozen; a hostile one could otherwise make each of its 1024 PATH candidates a chain of 40
/// links of 2000 components each.
pub const MAX_STEPS: usize = 2048;

/// The kernel follows at most this many symlinks in one lookup (MAXSYMLINKS).
const MAX_LINKS: u32 = 40;

/// A path followed one component at a time, as the kernel will once the mounts are in place:
/// a symlink read in a mount's source that points to `/bin/busybox` goes on in the root, and
/// one in the root that points under a mount goes on in that mount's source. The caller looks
/// up each step (where [`place`] puts it) and tells the walk about symlinks; no component is
/// looked up through a symlink of the container's it has not seen, so no lookup leaves the
/// root and the mounts' sources.
#[derive(Debug)]
pub struct Walk {
    /// Resolved so far: absolute, without `.`, `..` or symlinks.
    done: PathBuf,
    /// The components still to walk, the next one last.
    rest: Vec<std::ffi::OsString>,
    links: u32,
}

/// More than [`MAX_LINKS`] symlinks: the kernel's ELOOP.
#[derive(Debug, PartialEq, Eq)]
pub struct TooManyLinks;

impl Walk {
    /// A walk of `path`; a relative path starts at the root, as lookups in the root do.
    pub fn new(path: &Path) -> Walk {
        let mut walk = Walk {
            done: PathBuf::from("/"),
            rest: Vec::new(),
            links: 0,
        };
        walk.push(path);
        walk
    }

    /// The next path to look up: what is resolved so far and one more name. None once the
    /// whole path is resolved ([`Walk::resolved`]).
    pub fn next_step(&mut self) -> Option<&Path> {
        use std::path::Component;
        while let Some(name) = self.rest.pop() {
            match Path::new(&name).components().next() {
                Some(Component::Normal(_)) => {
                    self.done.push(&name);
                    return Some(&self.done);
                }
                // `..` of the root is the root; of a mount's top, the directory it is on.
                Some(Component::ParentDir) => {
                    self.done.pop();
                }
                _ => {}
            }
        }
        None
    }

    /// Whether anything follows the last step (a name, `..`, or a trailing `/`): then what
    /// the step finds, once its symlinks are followed, must be a directory (else ENOTDIR).
    pub fn has_more(&self) -> bool {
        !self.rest.is_empty()
    }

    /// The last step is a symlink to `target`: the walk goes on from where it points.
    pub fn symlink(&mut self, target: &Path) -> Result<(), TooManyLinks> {
        self.links += 1;
        if self.links > MAX_LINKS {
            return Err(TooManyLinks);
        }
        self.done.pop();
        if target.is_absolute() {
            self.done = PathBuf::from("/");
        }
        self.push(target);
        Ok(())
    }

    /// The path with every symlink followed.
    pub fn resolved(&self) -> &Path {
        &self.done
    }

    fn push(&mut self, path: &Path) {
        use std::os::unix::ffi::OsStrExt;
        use std::path::Component;
        let names = path.components().filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        });
        let at = self.rest.len();
        self.rest.extend(names);
        // `x/` and `x/.` name a directory: a `.` that only says so (components drop both).
        let bytes = path.as_os_str().as_bytes();
        if bytes.ends_with(b"/") || bytes.ends_with(b"/.") || bytes == b"." {
            self.rest.push(".".into());
        }
        self.rest[at..].reverse();
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
            Place::Source(p("/etc/cm/run.sh"))
        );
        assert_eq!(
            place(&p("/opt/tools"), &mounts),
            Place::Source(p("/srv/tools"))
        );
        // Components, not string prefixes; `/` is the root itself; `..` and relative paths stay.
        assert_eq!(place(&p("/opt/toolsx/a"), &mounts), Place::Root);
        assert_eq!(place(&p("/bin/sh"), &mounts), Place::Root);
        assert_eq!(place(&p("/opt/tools/../../bin/sh"), &mounts), Place::Root);
        assert_eq!(place(&p("opt/tools/x"), &mounts), Place::Root);
        assert_eq!(place(&p("/data/x"), &mounts), Place::Unknowable);
        // The host's root as a volume (`-v /:/host`).
        let host = [mount("/host", Some(Path::new("/")))];
        assert_eq!(place(&p("/host"), &host), Place::Source(p("/")));
        assert_eq!(place(&p("/host/etc/x"), &host), bind("/", "etc/x"));
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

    /// Walks `path` against a fake tree of symlinks: the steps looked up, and the result.
    fn walk(path: &str, links: &[(&str, &str)]) -> (Vec<String>, Result<String, TooManyLinks>) {
        let mut walk = Walk::new(Path::new(path));
        let mut steps = Vec::new();
        while let Some(step) = walk.next_step() {
            let step = step.to_str().unwrap().to_owned();
            steps.push(step.clone());
            if let Some((_, target)) = links.iter().find(|(link, _)| *link == step) {
                if let Err(e) = walk.symlink(Path::new(target)) {
                    return (steps, Err(e));
                }
            }
        }
        (steps, Ok(walk.resolved().to_str().unwrap().to_owned()))
    }

    #[test]
    fn a_walk_follows_symlinks_from_where_they_are() {
        // A volume's absolute link goes on from the root; a relative one from its directory.
        let links = [
            ("/scripts/bb", "/bin/busybox"),
            ("/usr/bin/env", "../../bin/busybox"),
            ("/bin/sh", "busybox"),
        ];
        assert_eq!(
            walk("/scripts/bb", &links),
            (
                vec![
                    "/scripts".into(),
                    "/scripts/bb".into(),
                    "/bin".into(),
                    "/bin/busybox".into()
                ],
                Ok("/bin/busybox".into())
            )
        );
        assert_eq!(walk("/usr/bin/env", &links).1, Ok("/bin/busybox".into()));
        assert_eq!(walk("/bin/sh", &links).1, Ok("/bin/busybox".into()));
        // `.`, `..`, repeated slashes, `..` above the root, a relative path.
        assert_eq!(walk("/a/./b/../c//d", &[]).1, Ok("/a/c/d".into()));
        assert_eq!(walk("/../../a", &[]).1, Ok("/a".into()));
        assert_eq!(walk("a/b", &[]).1, Ok("/a/b".into()));
        assert_eq!(walk("/", &[]), (vec![], Ok("/".into())));
        // A link in the middle of a path: the rest is walked below its target.
        let dir = [
            ("/opt/app", "/srv/app-1.2"),
            ("/srv/app-1.2/bin", "../tools"),
        ];
        assert_eq!(walk("/opt/app/bin/x", &dir).1, Ok("/srv/tools/x".into()));
    }

    #[test]
    fn a_step_followed_by_anything_must_be_a_directory() {
        // (step, has_more) for each step.
        let steps = |path: &str, links: &[(&str, &str)]| {
            let mut walk = Walk::new(Path::new(path));
            let mut seen = Vec::new();
            while let Some(step) = walk.next_step() {
                let step = step.to_str().unwrap().to_owned();
                let more = walk.has_more();
                if let Some((_, target)) = links.iter().find(|(l, _)| *l == step) {
                    walk.symlink(Path::new(target)).unwrap();
                }
                seen.push((step, more));
            }
            seen
        };
        let s = |p: &str, more: bool| (p.to_owned(), more);
        assert_eq!(
            steps("/bin/sh", &[]),
            [s("/bin", true), s("/bin/sh", false)]
        );
        assert_eq!(
            steps("/bin/sh/", &[]),
            [s("/bin", true), s("/bin/sh", true)]
        );
        assert_eq!(
            steps("/bin/sh/.", &[]),
            [s("/bin", true), s("/bin/sh", true)]
        );
        assert_eq!(
            steps("/bin/sh/..", &[]),
            [s("/bin", true), s("/bin/sh", true)]
        );
        // A link's trailing slash asks the same of its target.
        assert_eq!(
            steps("/x", &[("/x", "bb/")]),
            [s("/x", false), s("/bb", true)]
        );
    }

    #[test]
    fn a_walk_stops_after_forty_links_as_the_kernel_does() {
        let chain: Vec<(String, String)> = (0..50)
            .map(|i| (format!("/l{i}"), format!("/l{}", i + 1)))
            .collect();
        let links: Vec<(&str, &str)> = chain
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        assert_eq!(walk("/l0", &links[..40]).1, Ok("/l40".into()));
        assert_eq!(walk("/l0", &links[..41]).1, Err(TooManyLinks));
        assert_eq!(walk("/loop", &[("/loop", "loop")]).1, Err(TooManyLinks));
    }

    #[test]
    fn only_an_uncovered_destination_is_a_mount_point() {
        let p = Path::new;
        let mounts = [
            mount("/scripts", Some(p("/srv/scripts"))),
            mount("/scripts/cache", None),
            mount("/tool/busybox", Some(p("/srv/bb"))),
            mount("/a/b", Some(p("/srv/b"))),
            mount("/a", None),
        ];
        let at = |path: &str| mount_at(p(path), &mounts).map(|m| m.destination.clone());
        assert_eq!(at("/scripts"), Some(p("/scripts").to_owned()));
        assert_eq!(at("/scripts/cache"), Some(p("/scripts/cache").to_owned()));
        assert_eq!(at("/tool/busybox"), Some(p("/tool/busybox").to_owned()));
        assert_eq!(at("/scripts/run.sh"), None);
        assert_eq!(at("/tool"), None);
        // A later mount over an earlier one's destination hides it.
        assert_eq!(at("/a/b"), None);
        assert_eq!(at("/"), None);
        assert!(mount_at(p("/"), &[mount("/", Some(p("/srv")))]).is_none());
        assert!(leads_to_a_mount(p("/tool"), &mounts));
        assert!(leads_to_a_mount(p("/scripts"), &mounts));
        assert!(!leads_to_a_mount(p("/tool/busybox"), &mounts));
        assert!(!leads_to_a_mount(p("/toolbox"), &mounts));
        assert!(!leads_to_a_mount(p("/x"), &[mount("/x/../y", None)]));
    }
}
