//! Who a process runs as, and init taking that user's ids for the instant it reads and holds
//! one of its execs.
//!
//! The kernel lets a process without CAP_SYS_PTRACE read or attach to another only when the
//! other runs as the same user and group (real, effective and saved ids alike) and has not
//! made itself non-dumpable. A process that has switched to another user and exec'd since
//! is dumpable again; init, root in the container with CAP_SETUID and CAP_SETGID, takes that
//! user's filesystem ids while it reads and rewrites that exec, and its real ids too for the
//! one call that attaches to the thread. Its effective and saved ids stay root, so it keeps
//! its capabilities, and its memory cannot be read by that user meanwhile: changing the
//! filesystem ids makes init non-dumpable for good. The one thing the user gains while init
//! has its real id, sending init a signal, is undone where signals are taken
//! ([`crate::signals::take`]).

use nix::errno::Errno;

/// A process's ids, when they are one user and one group throughout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// The `Uid:` and `Gid:` lines of `/proc/TID/status` (real, effective, saved, filesystem):
/// Some only when each line holds one id four times.
pub fn parse_status(status: &str) -> Option<Owner> {
    let ids = |key: &str| -> Option<u32> {
        let line = status.lines().find_map(|l| l.strip_prefix(key))?;
        let mut ids = line.split_whitespace().map(str::parse::<u32>);
        let first = ids.next()?.ok()?;
        let mut count = 1;
        for id in ids {
            if id.ok()? != first {
                return None;
            }
            count += 1;
        }
        (count == 4).then_some(first)
    };
    Some(Owner {
        uid: ids("Uid:")?,
        gid: ids("Gid:")?,
    })
}

/// The owner of thread `tid`, read from its status, which anyone may read.
pub fn of(tid: libc::pid_t) -> Option<Owner> {
    parse_status(&std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?)
}

/// The value of `key` (such as `Tgid:` or `SigIgn:`) in `/proc/TID/status`.
pub fn status_field(status: &str, key: &str) -> Option<String> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim().to_owned())
}

/// Init with another user's filesystem ids, until dropped: the ids the kernel checks when
/// init opens that user's `/proc/TID` files and the files of an exec.
pub struct As {
    uid: u32,
    gid: u32,
}

impl As {
    /// Takes `owner`'s filesystem ids. Err when init may not (no CAP_SETUID or
    /// CAP_SETGID), with its ids unchanged.
    pub fn take(owner: Owner) -> Result<As, Errno> {
        let back = As {
            uid: fs_id(libc::SYS_setfsuid),
            gid: fs_id(libc::SYS_setfsgid),
        };
        if let Err(err) = set_fs(owner.uid, owner.gid) {
            drop(back);
            return Err(err);
        }
        Ok(back)
    }

    /// Runs `f` (PTRACE_SEIZE, whose check takes the real ids) with `owner`'s real ids too,
    /// and nothing else meanwhile: with them, that user may signal init.
    pub fn with_real_ids<T>(&self, owner: Owner, f: impl FnOnce() -> T) -> Result<T, Errno> {
        // SAFETY: cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        // setresuid and setresgid also set the filesystem ids to the effective ones (root),
        // so they are taken again after.
        let taken = set_real(owner.uid, owner.gid);
        let out = taken.map(|()| f());
        if let Err(err) = set_real(uid, gid).and_then(|()| set_fs(owner.uid, owner.gid)) {
            lost_ids(err);
        }
        out
    }
}

impl Drop for As {
    fn drop(&mut self) {
        if let Err(err) = set_fs(self.uid, self.gid) {
            lost_ids(err);
        }
    }
}

/// Init keeps CAP_SETUID and CAP_SETGID throughout, so its ids always come back; if they
/// did not, init must not go on as another user.
fn lost_ids(err: Errno) -> ! {
    crate::complain!(
        "trace mode: cannot take back init's own ids: {}",
        err.desc()
    );
    std::process::abort()
}

const KEEP: u32 = u32::MAX;

/// The current filesystem id: setfsuid and setfsgid report no error, and with an invalid
/// id (-1) they change nothing and return it.
fn fs_id(call: libc::c_long) -> u32 {
    // SAFETY: an integer argument.
    unsafe { libc::syscall(call, KEEP) as u32 }
}

/// The filesystem ids, read back.
fn set_fs(uid: u32, gid: u32) -> Result<(), Errno> {
    // SAFETY: integer arguments only. The calls change this thread only; init has one.
    unsafe {
        libc::syscall(libc::SYS_setfsgid, gid);
        libc::syscall(libc::SYS_setfsuid, uid);
    }
    if (fs_id(libc::SYS_setfsuid), fs_id(libc::SYS_setfsgid)) == (uid, gid) {
        Ok(())
    } else {
        Err(Errno::EPERM)
    }
}

/// The real user and group ids: the group first, while init is still root for it.
fn set_real(uid: u32, gid: u32) -> Result<(), Errno> {
    // SAFETY: integer arguments only; this thread only, and init has one.
    unsafe {
        Errno::result(libc::syscall(libc::SYS_setresgid, gid, KEEP, KEEP))?;
        Errno::result(libc::syscall(libc::SYS_setresuid, uid, KEEP, KEEP))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str =
        "Name:\tsh\nTgid:\t7\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nSigIgn:\t0000000000001000\n";

    #[test]
    fn one_user_throughout_is_an_owner() {
        assert_eq!(parse_status(ROOT), Some(Owner { uid: 0, gid: 0 }));
        let user = "Uid:\t999\t999\t999\t999\nGid:\t998\t998\t998\t998\n";
        assert_eq!(parse_status(user), Some(Owner { uid: 999, gid: 998 }));
        assert_eq!(status_field(ROOT, "Tgid:").as_deref(), Some("7"));
        assert_eq!(
            status_field(ROOT, "SigIgn:").as_deref(),
            Some("0000000000001000")
        );
    }

    #[test]
    fn mixed_or_missing_ids_are_none() {
        for status in [
            "Uid:\t999\t0\t999\t999\nGid:\t0\t0\t0\t0\n",
            "Uid:\t999\t999\t0\t999\nGid:\t0\t0\t0\t0\n",
            "Uid:\t0\t0\t0\t0\nGid:\t0\t5\t0\t0\n",
            "Uid:\t0\t0\t0\nGid:\t0\t0\t0\t0\n",
            "Uid:\t0\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n",
            "Uid:\tx\t0\t0\t0\nGid:\t0\t0\t0\t0\n",
            "Gid:\t0\t0\t0\t0\n",
            "",
        ] {
            assert_eq!(parse_status(status), None, "{status:?}");
        }
    }
}
