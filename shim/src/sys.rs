//! The kernel calls crossarch needs that neither `nix` nor `libc` wraps: the new mount API
//! (`open_tree`, `mount_setattr`, `fsopen`, `fsconfig`, `fsmount`, Linux 5.2 / 5.12) and
//! pidfds (`pidfd_open`, `pidfd_send_signal`, Linux 5.3 / 5.1). Thin, safe wrappers only.

use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd},
    path::Path,
};

// include/uapi/linux/mount.h
const OPEN_TREE_CLONE: libc::c_uint = 1;
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
// include/uapi/linux/fcntl.h
const AT_RECURSIVE: libc::c_uint = 0x8000;

/// `struct mount_attr` (MOUNT_ATTR_SIZE_VER0).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn fd_or_error(r: libc::c_long) -> io::Result<OwnedFd> {
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()))
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// A detached copy of the mount at `path` (not its submounts), rooted at `path`, with
/// `attrs` set. It belongs to no mount namespace anyone can enter, so no process but the
/// holder of the descriptor (and of files opened through it) can reach or change it.
pub fn detached_copy(path: &Path, attrs: u64) -> io::Result<OwnedFd> {
    copy_tree(
        path,
        0,
        &MountAttr {
            attr_set: attrs,
            attr_clr: 0,
            propagation: 0,
            userns_fd: 0,
        },
    )
}

/// A detached, private copy of the mount tree at `path` (submounts too) whose ids are
/// mapped through the user namespace `userns` (a file of host uid N shows as the id that N
/// is in `userns`), with `attrs` set as well.
pub fn idmapped_copy(path: &Path, userns: BorrowedFd<'_>, attrs: u64) -> io::Result<OwnedFd> {
    copy_tree(
        path,
        AT_RECURSIVE,
        &MountAttr {
            attr_set: MOUNT_ATTR_IDMAP | attrs,
            attr_clr: 0,
            propagation: libc::MS_PRIVATE,
            userns_fd: userns.as_raw_fd() as u64,
        },
    )
}

/// `open_tree(OPEN_TREE_CLONE)` of `path` (with `recursive`: AT_RECURSIVE or 0), then
/// `mount_setattr` of `attr` on the whole copy.
fn copy_tree(path: &Path, recursive: libc::c_uint, attr: &MountAttr) -> io::Result<OwnedFd> {
    let p = c_path(path)?;
    // SAFETY: p is a valid C string for the duration of the call.
    let tree = fd_or_error(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            p.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | recursive,
        )
    })?;
    let empty = c"";
    // SAFETY: tree is open, empty is a valid C string, attr is a valid mount_attr of the size given.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint | recursive,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(tree)
}

/// A new, detached mount of filesystem `fstype` with `attrs`, made in the caller's
/// namespaces (which decide the instance: binfmt_misc per user namespace).
pub fn new_detached_mount(fstype: &str, attrs: u64) -> io::Result<OwnedFd> {
    let name = CString::new(fstype).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    fd_or_error(detached_mount_raw(&name, attrs) as libc::c_long)
}

/// [`new_detached_mount`] for a child forked from a multithreaded process: it only makes
/// system calls (fsopen, fsconfig CREATE, fsmount, close) and returns the mount's descriptor,
/// or -1 with errno set.
pub fn detached_mount_raw(fstype: &std::ffi::CStr, attrs: u64) -> RawFd {
    // SAFETY: fstype is a valid C string; FSCONFIG_CMD_CREATE takes no key, value or aux;
    // the context's descriptor is ours and closed here.
    unsafe {
        let fs = libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC);
        if fs < 0 {
            return -1;
        }
        let fs = fs as RawFd;
        let null = std::ptr::null::<libc::c_char>();
        let mut mnt = -1;
        if libc::syscall(libc::SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, null, null, 0) >= 0 {
            mnt = libc::syscall(libc::SYS_fsmount, fs, FSMOUNT_CLOEXEC, attrs) as RawFd;
        }
        let errno = *libc::__errno_location();
        libc::close(fs);
        *libc::__errno_location() = errno;
        mnt
    }
}

/// Attaches the detached mount `tree` at `target`.
pub fn attach(tree: &OwnedFd, target: &Path) -> io::Result<()> {
    let t = c_path(target)?;
    let empty = c"";
    // SAFETY: tree is open and both strings are valid C strings for the duration of the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A pidfd for `pid`: it keeps naming that process even after the pid is reused.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain integer arguments.
    fd_or_error(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })
}

/// Sends `signal` to the process behind `pidfd`: never to another process that reuses its
/// pid. ESRCH once it has been reaped.
pub fn pidfd_signal(pidfd: BorrowedFd<'_>, signal: i32) -> io::Result<()> {
    // SAFETY: a null siginfo is allowed; the other arguments are plain integers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether the process behind `pidfd` has not been reaped yet (a zombie still holds its pid).
pub fn pidfd_alive(pidfd: BorrowedFd<'_>) -> bool {
    // Signal 0 only checks. EPERM would mean alive but not ours to signal; the shim is root,
    // so ESRCH is the answer.
    match pidfd_signal(pidfd, 0) {
        Ok(()) => true,
        Err(e) => e.raw_os_error() == Some(libc::EPERM),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_pidfd_outlives_its_process_but_says_so() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let fd = pidfd_open(child.id() as i32).unwrap();
        assert!(pidfd_alive(fd.as_fd()));
        child.kill().unwrap();
        // Reaped by this wait, or already by the shim's reaper that another test of this
        // process started (then the wait fails with ECHILD): reaped either way.
        let _ = child.wait();
        assert!(!pidfd_alive(fd.as_fd()), "reaped: the pid may be reused");
    }

    #[test]
    fn a_detached_read_only_copy_refuses_writes() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED: open_tree needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        let copy = detached_copy(dir.path(), MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID).unwrap();
        let through = format!("/proc/self/fd/{}/f", copy.as_raw_fd());
        let e = std::fs::write(&through, b"y").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
        use std::os::unix::fs::PermissionsExt;
        let e = std::fs::set_permissions(&through, std::fs::Permissions::from_mode(0o4755))
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
        assert_eq!(std::fs::read(&through).unwrap(), b"x");
    }
}
