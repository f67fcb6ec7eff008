//! Namespace identity, for edits that depend on which namespace a container joins.

use std::os::{
    fd::{AsRawFd, OwnedFd},
    unix::fs::MetadataExt,
};

/// Whether two namespace paths name the same namespace.
pub fn same_namespace(a: &str, b: &str) -> bool {
    let ino = |p: &str| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    matches!((ino(a), ino(b)), (Some(x), Some(y)) if x == y)
}

/// A new user namespace with `uid_map` and `gid_map` (the text of `/proc/PID/uid_map`), made
/// for its descriptor only: an id-mapped mount takes its mapping from it. A child made
/// straight into the namespace (clone, as a multithreaded process cannot unshare one) holds
/// it while the mapping is written and the namespace opened, then exits.
pub async fn user_namespace_with(uid_map: &str, gid_map: &str) -> std::io::Result<OwnedFd> {
    let (hold, release) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let (hold_fd, release_fd) = (hold.as_raw_fd(), release.as_raw_fd());
    // SAFETY: the child only closes, reads and exits: it waits until the parent closes its
    // end of the pipe.
    let pid = unsafe {
        crate::reaper::fork(libc::CLONE_NEWUSER, move || {
            libc::close(release_fd);
            let mut byte = 0u8;
            libc::read(hold_fd, (&mut byte as *mut u8).cast(), 1);
            0
        })
    }?;
    let exited = crate::reaper::exit_status(pid);
    drop(hold);
    let opened = (|| {
        std::fs::write(format!("/proc/{pid}/uid_map"), uid_map)?;
        std::fs::write(format!("/proc/{pid}/gid_map"), gid_map)?;
        std::fs::File::open(format!("/proc/{pid}/ns/user")).map(OwnedFd::from)
    })();
    drop(release);
    exited.await;
    opened
}
