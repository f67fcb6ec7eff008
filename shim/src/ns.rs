//! Which user namespace owns a namespace a container joins (the I/O of pod user namespaces).

use std::{
    fs::File,
    io,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::fs::MetadataExt,
    },
    path::Path,
};

/// ioctl NS_GET_USERNS: a new fd for the user namespace that owns a namespace.
const NS_GET_USERNS: libc::c_ulong = 0xb701;

fn owner(ns: &Path) -> io::Result<u64> {
    let f = File::open(ns)?;
    // SAFETY: NS_GET_USERNS takes no argument and returns a new fd or -1.
    let fd = unsafe { libc::ioctl(f.as_raw_fd(), NS_GET_USERNS as _) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    File::from(owned).metadata().map(|m| m.ino())
}

/// Whether two namespace paths name the same namespace.
pub fn same_namespace(a: &str, b: &str) -> bool {
    let ino = |p: &str| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    matches!((ino(a), ino(b)), (Some(x), Some(y)) if x == y)
}

/// The `/proc/PID/ns/user` path of a pod whose network namespace the container joins at
/// `/proc/PID/ns/net`, when a user namespace other than the shim's owns it (a sandbox
/// crossarch gave one). Joining it lets the container enter the pod's namespaces, at create
/// and at every exec.
pub fn pod_user_namespace(netns: &str, shim_userns: u64) -> Option<String> {
    let pid = netns.strip_prefix("/proc/")?.strip_suffix("/ns/net")?;
    pid.parse::<u32>().ok()?;
    let userns = format!("/proc/{pid}/ns/user");
    let owner = owner(Path::new(netns)).ok()?;
    let of_pid = std::fs::metadata(&userns).ok()?.ino();
    (owner == of_pid && owner != shim_userns).then_some(userns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shims_own_network_namespace_is_not_a_pod() {
        let me = crate::hook::user_namespace().unwrap();
        let path = format!("/proc/{}/ns/net", std::process::id());
        assert_eq!(pod_user_namespace(&path, me), None);
        assert_eq!(pod_user_namespace("/var/run/netns/x", me), None);
    }
}
