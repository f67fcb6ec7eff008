//! Read-only mounts that crossarch makes on the host, in the shim's own namespaces, for a
//! container to reach: the init, a qemu in wrap mode, a pod's sysfs. They live in
//! `<bundle>/crossarch-host/` from just before `runc create` until Delete.
//!
//! Why on the host side: a mount that a user namespace's mount namespace inherits from a
//! more privileged one has its read-only, nosuid, nodev and noexec flags locked
//! (MNT_LOCK_READONLY and friends, set by copy_mnt_ns for a less privileged owner), and so
//! does every bind made from it inside. runc makes its binds inside the container's user
//! namespace, where they would not be locked: a container allowed CAP_SYS_ADMIN could then
//! remount them read-write and, being host uid 0 under the identity mapping, chmod the host's
//! file. Binding from a staged mount closes that.

use std::{
    io,
    path::{Path, PathBuf},
};

use containerd_shim::mount::umount_recursive;

use crate::sys;

/// The directory in the bundle that holds a container's staged mounts.
pub const DIR: &str = "crossarch-host";

/// One mount to stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Staged {
    /// A read-only, nosuid, nodev copy of the host file `source`, at `name` in the directory.
    File { name: String, source: PathBuf },
    /// A fresh, read-only sysfs of the network namespace at `netns` (the shim's own when
    /// `None`), at `sys` in the directory: what runc would mount for a native container
    /// there, and nothing of the host's submounts (debugfs, tracefs, bpf, cgroups, ...).
    Sysfs { netns: Option<PathBuf> },
}

impl Staged {
    fn name(&self) -> &str {
        match self {
            Staged::File { name, .. } => name,
            Staged::Sysfs { .. } => "sys",
        }
    }
}

/// Where `name` is staged for the container of `bundle`.
pub fn path(bundle: &Path, name: &str) -> PathBuf {
    bundle.join(DIR).join(name)
}

/// Where the staged sysfs of `bundle` is.
pub fn sysfs_path(bundle: &Path) -> PathBuf {
    path(bundle, "sys")
}

const READ_ONLY: u64 = sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV;

/// Mounts `items` for the container `id`. On failure, nothing stays mounted.
pub fn stage(id: &str, bundle: &Path, items: &[Staged]) -> Result<(), String> {
    if items.is_empty() {
        return Ok(());
    }
    let done = (|| -> Result<(), String> {
        std::fs::create_dir_all(bundle.join(DIR)).map_err(|e| format!("mkdir: {e}"))?;
        for item in items {
            let target = path(bundle, item.name());
            let r = match item {
                Staged::File { source, .. } => std::fs::File::create(&target)
                    .and_then(|_| sys::detached_copy(source, READ_ONLY))
                    .and_then(|tree| sys::attach(&tree, &target))
                    .map_err(|e| {
                        format!("cannot make a read-only copy of {}: {e}", source.display())
                    }),
                Staged::Sysfs { netns } => std::fs::create_dir(&target)
                    .map_err(|e| e.to_string())
                    .and_then(|()| sysfs_in(netns.as_deref(), &target)),
            };
            r?;
        }
        Ok(())
    })();
    done.map_err(|e| {
        remove(bundle);
        format!(
            "container {id}: cannot prepare its read-only host mounts in {}: {e}",
            bundle.join(DIR).display()
        )
    })
}

/// Mounts a sysfs of `netns` at `target`. sysfs shows the network devices of the network
/// namespace of the process that mounts it, so a thread of its own joins that one first
/// (setns of a network namespace is per thread) and ends with it.
fn sysfs_in(netns: Option<&Path>, target: &Path) -> Result<(), String> {
    let netns = netns.map(Path::to_path_buf);
    let target = target.to_path_buf();
    std::thread::spawn(move || -> Result<(), String> {
        if let Some(ns) = &netns {
            let f = std::fs::File::open(ns)
                .map_err(|e| format!("cannot open the network namespace {}: {e}", ns.display()))?;
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("cannot join the network namespace {}: {e}", ns.display()))?;
        }
        let m = sys::new_detached_mount("sysfs", READ_ONLY | sys::MOUNT_ATTR_NOEXEC)
            .map_err(|e| format!("cannot mount a sysfs: {e}"))?;
        sys::attach(&m, &target).map_err(|e| format!("cannot attach the sysfs: {e}"))
    })
    .join()
    .unwrap_or_else(|_| Err("the sysfs thread panicked".into()))
}

/// Unmounts and removes whatever was staged for `bundle`. Idempotent.
pub fn remove(bundle: &Path) {
    let dir = bundle.join(DIR);
    if !dir.exists() {
        return;
    }
    if let Err(e) = umount_recursive(dir.to_str(), libc::MNT_DETACH) {
        log::warn!("cannot unmount {}: {e}", dir.display());
    }
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        if e.kind() != io::ErrorKind::NotFound {
            log::warn!("cannot remove {}: {e}", dir.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> bool {
        let ok = nix::unistd::geteuid().is_root();
        if !ok {
            eprintln!("SKIPPED: staging mounts needs root");
        }
        ok
    }

    fn mounted_under(dir: &Path) -> usize {
        let dir = dir.to_string_lossy().into_owned();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&dir)))
            .count()
    }

    #[test]
    fn staged_files_are_read_only_and_removed() {
        if !root() {
            return;
        }
        let bundle = tempfile::tempdir().unwrap();
        let src = bundle.path().join("src");
        std::fs::write(&src, b"payload").unwrap();
        let items = [Staged::File {
            name: "init".into(),
            source: src.clone(),
        }];
        stage("t", bundle.path(), &items).unwrap();
        let staged = path(bundle.path(), "init");
        assert_eq!(std::fs::read(&staged).unwrap(), b"payload");
        use std::os::unix::fs::PermissionsExt;
        let e =
            std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o4755)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
        assert_eq!(mounted_under(&bundle.path().join(DIR)), 1);
        remove(bundle.path());
        assert_eq!(mounted_under(&bundle.path().join(DIR)), 0);
        assert!(!bundle.path().join(DIR).exists());
        remove(bundle.path());
    }

    #[test]
    fn a_staged_sysfs_has_no_submounts() {
        if !root() {
            return;
        }
        let bundle = tempfile::tempdir().unwrap();
        stage("t", bundle.path(), &[Staged::Sysfs { netns: None }]).unwrap();
        let sys = sysfs_path(bundle.path());
        assert!(sys.join("kernel").is_dir());
        assert_eq!(mounted_under(&sys), 1, "no cgroup, debugfs, ... under it");
        remove(bundle.path());
        assert_eq!(mounted_under(&sys), 0);
    }

    #[test]
    fn a_failed_stage_leaves_nothing() {
        if !root() {
            return;
        }
        let bundle = tempfile::tempdir().unwrap();
        let items = [Staged::File {
            name: "qemu".into(),
            source: "/nonexistent/qemu".into(),
        }];
        let e = stage("web", bundle.path(), &items).unwrap_err();
        assert!(e.starts_with("container web: cannot prepare"), "{e}");
        assert!(e.contains("/nonexistent/qemu"), "{e}");
        assert!(!bundle.path().join(DIR).exists());
    }
}
