//! Trace mode: every process of the program's tree runs through qemu when it is foreign,
//! without binfmt_misc. The program starts under a seccomp filter that stops `execve` and
//! `execveat` for init ([`filter`]); init follows the whole tree with ptrace (fork, vfork
//! and clone), and at each exec stop resolves the target as the shim does, in that process's
//! own root and cwd, `#!` interpreters included ([`exec`]). A native target goes on
//! untouched. A foreign one is turned into an exec of the qemu in the qemu directory, with
//! `-0 argv0 path args...` written below the tracee's stack pointer ([`memory`]). qemu's own
//! execs for the guest's children stop the same way, so every descendant is emulated.
//!
//! Everything else a stop can be passes through as if nothing traced the process: a
//! signal-delivery stop re-injects its signal, a group stop stays stopped (PTRACE_LISTEN)
//! until SIGCONT, and exit statuses are the kernel's.
//!
//! The tracer is init itself, in the container, with the container's credentials: it opens
//! files only below the tracee's root (`openat2(RESOLVE_IN_ROOT)`) and writes only into the
//! tracee.

mod exec;
pub mod filter;
mod memory;
mod regs;

use std::path::PathBuf;

use nix::errno::Errno;

use crate::complain;

/// What traces the program's process tree.
pub struct Tracer {
    /// Where the qemus are, as init sees it: `qemu-<name>-static` per emulated architecture.
    qemu_dir: PathBuf,
    filter: Vec<filter::Insn>,
    /// Exec stops that ran into something init could not read or write; told once.
    told_failure: bool,
    /// Exec stops of a process the kernel would not let init read; told once.
    told_denied: bool,
}

const OPTIONS: libc::c_int = libc::PTRACE_O_TRACESECCOMP
    | libc::PTRACE_O_TRACEFORK
    | libc::PTRACE_O_TRACEVFORK
    | libc::PTRACE_O_TRACECLONE;

impl Tracer {
    pub fn new(qemu_dir: PathBuf) -> Tracer {
        Tracer {
            qemu_dir,
            filter: filter::program(filter::HOST),
            told_failure: false,
            told_denied: false,
        }
    }

    /// The filter the child installs before it execs, after [`Tracer::seize`].
    pub fn filter(&self) -> &[filter::Insn] {
        &self.filter
    }

    /// Attaches to the program's process, which waits for this before it installs the filter.
    pub fn seize(&self, pid: libc::pid_t) -> Result<(), Errno> {
        // SAFETY: PTRACE_SEIZE takes integers only.
        let rc = unsafe {
            libc::ptrace(
                libc::PTRACE_SEIZE,
                pid,
                std::ptr::null_mut::<libc::c_void>(),
                OPTIONS as usize as *mut libc::c_void,
            )
        };
        if rc == -1 {
            return Err(Errno::last());
        }
        Ok(())
    }

    /// Handles one ptrace stop of `tid` that waitpid reported with `status`, and lets the
    /// thread go on.
    pub fn on_stop(&mut self, tid: libc::pid_t, status: i32) {
        let signal = libc::WSTOPSIG(status);
        match status >> 16 {
            // A stop signal that a SIGCONT overtook while init held it: without a tracer,
            // that SIGCONT would have discarded it (the kernel flushes pending stop signals),
            // so it is dropped, and the process does not stop after it was continued.
            0 if is_stop_signal(signal) && sigcont_pending(tid) => resume(Resume::Cont, tid, 0),
            // A signal on its way to the thread: deliver it.
            0 => resume(Resume::Cont, tid, signal),
            libc::PTRACE_EVENT_STOP if is_stop_signal(signal) => {
                // A group stop: stay stopped, as without a tracer, until SIGCONT.
                resume(Resume::Listen, tid, 0)
            }
            libc::PTRACE_EVENT_SECCOMP => {
                match exec::on_exec(&self.qemu_dir, tid) {
                    Ok(()) => {}
                    Err(exec::Failure::Denied) if !self.told_denied => {
                        self.told_denied = true;
                        complain!(
                            "warning: trace mode: the kernel refuses init the exec of process \
                             {tid}, which runs as another user (su, setpriv, a service that \
                             drops privileges): foreign programs it starts are not emulated \
                             (they fail with \"exec format error\"); run the container as \
                             that user, or use userns mode (Linux 6.7 or later)"
                        );
                    }
                    Err(exec::Failure::Other(err)) if !self.told_failure => {
                        self.told_failure = true;
                        complain!("warning: trace mode: {err}; the exec runs as it is");
                    }
                    Err(_) => {}
                }
                resume(Resume::Cont, tid, 0)
            }
            // Fork, vfork and clone events, a new thread's or child's first stop, or the end
            // of a group stop.
            _ => resume(Resume::Cont, tid, 0),
        }
    }
}

/// Whether SIGCONT is pending for `tid` or its process (`SigPnd`/`ShdPnd` of its status).
fn sigcont_pending(tid: libc::pid_t) -> bool {
    std::fs::read_to_string(format!("/proc/{tid}/status"))
        .is_ok_and(|status| pending_has(&status, libc::SIGCONT))
}

/// Whether a `/proc/PID/status` text shows `signal` in `SigPnd` or `ShdPnd`.
fn pending_has(status: &str, signal: i32) -> bool {
    status
        .lines()
        .filter_map(|l| {
            l.strip_prefix("SigPnd:")
                .or_else(|| l.strip_prefix("ShdPnd:"))
        })
        .filter_map(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .any(|mask| mask & (1 << (signal - 1)) != 0)
}

fn is_stop_signal(signal: i32) -> bool {
    matches!(
        signal,
        libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU
    )
}

enum Resume {
    Cont,
    Listen,
}

/// Resumes a stopped tracee. ESRCH means it is gone (SIGKILL), which is not init's concern.
fn resume(how: Resume, tid: libc::pid_t, signal: i32) {
    let data = signal as usize as *mut libc::c_void;
    let addr = std::ptr::null_mut::<libc::c_void>();
    // SAFETY: integer arguments only. (The request's C type differs between C libraries,
    // so each call names its constant.)
    let rc = unsafe {
        match how {
            Resume::Cont => libc::ptrace(libc::PTRACE_CONT, tid, addr, data),
            Resume::Listen => libc::ptrace(libc::PTRACE_LISTEN, tid, addr, data),
        }
    };
    if rc == -1 && Errno::last() != Errno::ESRCH {
        complain!(
            "warning: trace mode: cannot resume {tid}: {}",
            Errno::last().desc()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_sigcont_is_read_from_either_mask() {
        let status = |sig: &str, shd: &str| format!("Name:\tsh\nSigPnd:\t{sig}\nShdPnd:\t{shd}\n");
        // SIGCONT is 18: bit 17.
        assert!(pending_has(
            &status("0000000000000000", "0000000000020000"),
            libc::SIGCONT
        ));
        assert!(pending_has(
            &status("0000000000020000", "0000000000000000"),
            libc::SIGCONT
        ));
        assert!(!pending_has(
            &status("0000000000010000", "0000000000000000"),
            libc::SIGCONT
        ));
        assert!(!pending_has("garbage", libc::SIGCONT));
    }
}
