//! Init's own signal state. All signals stay blocked in init and are collected with
//! sigtimedwait, so no handler ever runs and nothing is lost between two waits.

use std::mem::MaybeUninit;
use std::time::Duration;

use nix::errno::Errno;

// The C library keeps a few signals for itself (32-33 in glibc, 32-34 in musl) and refuses to
// block them or change their disposition. Init uses none of the C library's thread machinery
// (its one other thread, in trace mode, is Rust's, blocks every signal and makes raw
// syscalls only), so it may, and must: they can
// arrive ignored (glibc's posix_spawn leaves them so), and a signal in that range sent to init
// would otherwise kill it instead of reaching the program. So the mask and the dispositions
// go straight to the kernel.

/// The size of the kernel's sigset_t, which the rt_sig* system calls insist on.
const KERNEL_SIGSET_BYTES: usize = if cfg!(any(
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "mips32r6",
    target_arch = "mips64r6"
)) {
    16
} else {
    8
};

/// Highest signal number the kernel knows.
const MAX_SIGNAL: i32 = (KERNEL_SIGSET_BYTES * 8) as i32;

type KernelSigset = [u8; KERNEL_SIGSET_BYTES];

fn set_mask(set: &KernelSigset) {
    // SAFETY: the kernel reads KERNEL_SIGSET_BYTES from `set`; no old mask is asked for.
    // SIG_SETMASK with a valid set cannot fail.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            set.as_ptr(),
            std::ptr::null_mut::<u8>(),
            KERNEL_SIGSET_BYTES,
        )
    };
}

/// Blocks every signal the kernel lets a process block (all but KILL and STOP).
///
/// Blocked SIGTTOU and SIGTTIN also count as ignored for the terminal, so neither init nor a
/// child that has not yet reset its mask is stopped when it hands over the terminal with
/// tcsetpgrp from a background process group.
pub fn block_all() {
    set_mask(&[0xff; KERNEL_SIGSET_BYTES]);
}

/// The clean mask the program must start with.
pub fn unblock_all() {
    set_mask(&[0; KERNEL_SIGSET_BYTES]);
}

/// Puts every disposition back to default. Ignored dispositions survive exec, and init's
/// parent or Rust's runtime (SIGPIPE) may have set some; an ignored SIGCHLD would even make
/// the kernel reap the program behind init's back and lose its exit status.
pub fn reset_dispositions() {
    // The kernel's struct sigaction differs between architectures, but on every one of them
    // all zero bytes mean SIG_DFL with no flags and an empty mask. 64 bytes cover the largest.
    let default = [0u64; 8];
    for signal in 1..=MAX_SIGNAL {
        // SAFETY: the kernel reads a struct sigaction from `default`, which is large enough;
        // no old action is asked for. KILL and STOP fail with EINVAL, which is fine.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                signal,
                default.as_ptr(),
                std::ptr::null_mut::<u8>(),
                KERNEL_SIGSET_BYTES,
            )
        };
    }
}

/// Every bit set, for sigtimedwait. The C library passes the set through to the kernel, which
/// reads only its own sigset_t from the start of it.
fn full_set() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigset_t is plain bits; every byte is written before it is read.
    unsafe {
        std::ptr::write_bytes(set.as_mut_ptr(), 0xff, 1);
        set.assume_init()
    }
}

/// Waits for the next pending signal, at most `timeout`. None on timeout or interruption.
pub fn wait(timeout: Duration) -> Option<i32> {
    let set = full_set();
    let timeout = libc::timespec {
        tv_sec: timeout.as_secs() as _,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    // SAFETY: valid set and timeout; a null siginfo is allowed.
    let signal = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &timeout) };
    if signal > 0 {
        Some(signal)
    } else {
        debug_assert!(matches!(Errno::last(), Errno::EAGAIN | Errno::EINTR));
        None
    }
}

/// A signalfd for every signal, for a wait that also watches another descriptor (trace
/// mode's listener). The signals stay blocked; reading one takes it as sigtimedwait would.
pub fn fd() -> Result<std::os::fd::OwnedFd, Errno> {
    use std::os::fd::FromRawFd;
    let set = [0xffu8; KERNEL_SIGSET_BYTES];
    // SAFETY: the kernel reads KERNEL_SIGSET_BYTES from `set`.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_signalfd4,
            -1,
            set.as_ptr(),
            KERNEL_SIGSET_BYTES,
            libc::SFD_CLOEXEC | libc::SFD_NONBLOCK,
        )
    };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: a new descriptor, ours.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// A signal taken from a [`fd`], and who sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub signal: i32,
    /// `si_code`: zero or less when a process sent it (kill, sigqueue, tgkill), more when
    /// the kernel did (a terminal's Ctrl-C, SIGCHLD).
    pub code: i32,
    /// The sender's pid in init's pid namespace; 0 from outside it (runc, the shim).
    pub pid: u32,
    /// The sender's real uid.
    pub uid: u32,
}

/// The next signal pending on a [`fd`], if any.
pub fn take(fd: std::os::fd::RawFd) -> Option<Sent> {
    // SAFETY: plain integers.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: reads at most `size` bytes into `info`.
    let n = unsafe { libc::read(fd, (&mut info as *mut libc::signalfd_siginfo).cast(), size) };
    (n == size as isize).then_some(Sent {
        signal: info.ssi_signo as i32,
        code: info.ssi_code,
        pid: info.ssi_pid,
        uid: info.ssi_uid,
    })
}

/// Whether `sent` came from a process of init's pid namespace whose real user is neither
/// root nor init's own (`uid`): the kernel lets such a process signal init only while a
/// thread of init has its ids, by that thread's id, and then delivers it to the whole of
/// init. (A setuid-root program run by another user could signal init too; that one is
/// kept from the program as well.)
pub fn through_a_lent_thread(sent: &Sent, uid: u32) -> bool {
    sent.code <= 0 && sent.pid != 0 && sent.uid != 0 && sent.uid != uid
}

/// Sends `signal` to `target` (a pid, or a negated process group id). A target that is already
/// gone is not an error: the program may exit while a signal is on its way.
pub fn send(target: libc::pid_t, signal: i32) -> Result<(), Errno> {
    // SAFETY: kill has no memory-safety preconditions.
    match unsafe { libc::kill(target, signal) } {
        0 => Ok(()),
        _ => match Errno::last() {
            Errno::ESRCH => Ok(()),
            err => Err(err),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_process_of_another_user_in_the_namespace_is_refused() {
        let kill = |pid, uid| Sent {
            signal: libc::SIGTERM,
            code: 0,
            pid,
            uid,
        };
        // nobody, from inside the container, to init as root.
        assert!(through_a_lent_thread(&kill(42, 65534), 0));
        // sigqueue and tgkill are a process's too.
        for code in [-1, -6] {
            assert!(through_a_lent_thread(
                &Sent {
                    code,
                    ..kill(42, 65534)
                },
                0
            ));
        }
        // Root in the container, or init's own user.
        assert!(!through_a_lent_thread(&kill(42, 0), 0));
        assert!(!through_a_lent_thread(&kill(42, 1000), 1000));
        // From outside the pid namespace (runc kill, whatever uid it maps to).
        assert!(!through_a_lent_thread(&kill(0, 65534), 0));
        // The kernel's own: Ctrl-C on the terminal, a child's SIGCHLD.
        let sigint = Sent {
            signal: libc::SIGINT,
            code: 0x80,
            ..kill(42, 65534)
        };
        assert!(!through_a_lent_thread(&sigint, 0));
        let sigchld = Sent {
            signal: libc::SIGCHLD,
            code: libc::CLD_EXITED,
            ..kill(42, 65534)
        };
        assert!(!through_a_lent_thread(&sigchld, 0));
    }
}
