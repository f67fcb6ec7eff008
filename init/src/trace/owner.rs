//! Who a process runs as, and a thread of init taking that user's ids.
//!
//! The kernel lets a process without CAP_SYS_PTRACE read or attach to another only when the
//! other runs as the same user and group (its real, effective and saved ids alike, against
//! the caller's real ids, or file-system ids for `/proc/PID/mem`) and is dumpable, and Yama's
//! `ptrace_scope` 1 only when the caller is an ancestor of the other. A process that has
//! switched to another user and exec'd since is dumpable again, so a thread of init (whose
//! process is every process's ancestor) that takes that user's ids may read and hold its
//! execs; init's main thread keeps its own ids.

use nix::errno::Errno;

/// A process's ids, when they are one user and one group throughout, and its supplementary
/// groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// The `Uid:` and `Gid:` lines of `/proc/TID/status` (real, effective, saved, filesystem),
/// and `Groups:`: Some only when each of the first two holds one id four times.
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
    let groups = status_field(status, "Groups:")?
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<Vec<u32>, _>>()
        .ok()?;
    Some(Owner {
        uid: ids("Uid:")?,
        gid: ids("Gid:")?,
        groups,
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

/// Takes `owner`'s ids in the calling thread only, supplementary groups first (see
/// `Tracer::as_owner`): real, effective and file-system ids, which the kernel's checks to
/// read and attach to that user's processes compare. The saved ids stay init's, so that the
/// user cannot change the limits of init's process through this thread (prlimit asks for
/// all of them). The kernel makes init non-dumpable for good at the first change, so no
/// process of the container can read or attach to init.
pub fn take_in_this_thread(owner: &Owner) -> Result<(), Errno> {
    let groups: Vec<libc::gid_t> = owner.groups.clone();
    // SAFETY: `groups` holds `groups.len()` ids; integer arguments otherwise. The raw calls
    // change this thread only, where the C library's would change every thread of init.
    unsafe {
        Errno::result(libc::syscall(
            libc::SYS_setgroups,
            groups.len(),
            groups.as_ptr(),
        ))?;
        Errno::result(libc::syscall(libc::SYS_setresgid, owner.gid, owner.gid, -1))?;
        Errno::result(libc::syscall(libc::SYS_setresuid, owner.uid, owner.uid, -1))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str =
        "Name:\tsh\nTgid:\t7\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t\nSigIgn:\t0000000000001000\n";

    #[test]
    fn one_user_throughout_is_an_owner() {
        let root = Owner {
            uid: 0,
            gid: 0,
            groups: vec![],
        };
        assert_eq!(parse_status(ROOT), Some(root));
        let user = "Uid:\t999\t999\t999\t999\nGid:\t998\t998\t998\t998\nGroups:\t5 998 \n";
        let owner = Owner {
            uid: 999,
            gid: 998,
            groups: vec![5, 998],
        };
        assert_eq!(parse_status(user), Some(owner));
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
            "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n",
            "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\tx\n",
            "",
        ] {
            assert_eq!(parse_status(status), None, "{status:?}");
        }
    }
}
