//! Starting the program, passing signals on, reaping, and turning the end into an exit code.

use std::ffi::CString;
use std::io::{stdin, IsTerminal};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::prctl;
use nix::unistd::{self, ForkResult, Pid};

use crate::cli::Options;
use crate::complain;
use crate::exit::{exec_failure_code, ChildEnd};
use crate::signals;
use crate::trace::{filter, Tracer};

/// Exit code when init itself cannot do its job (no fork, no subreaper when asked for).
const INIT_FAILURE: i32 = 1;

/// Ptrace stops handled before init looks at its pending signals again.
const TRACE_BATCH: usize = 64;

/// A lost SIGCHLD can only delay reaping by this much; signals wake init at once regardless.
const REAP_INTERVAL: Duration = Duration::from_secs(1);

pub fn run(options: &Options) -> i32 {
    // First, so that a signal arriving from now on waits in the queue to be forwarded
    // instead of acting on init.
    signals::reset_dispositions();
    signals::block_all();

    if let Err(err) = become_subreaper(options.subreaper) {
        complain!("cannot become a child subreaper: {}", err.desc());
        return INIT_FAILURE;
    }

    // Built before fork so the child only has to exec. argv strings cannot hold NUL bytes.
    let argv: Vec<CString> = options
        .program
        .iter()
        .map(|arg| CString::new(arg.as_bytes()).expect("argv strings have no NUL byte"))
        .collect();
    let tty = stdin().is_terminal();
    let mut tracer = options.trace.clone().map(Tracer::new);
    // In trace mode the child waits on this pipe until init has attached to it, and only
    // then installs the filter: an exec under that filter without a tracer fails (ENOSYS).
    let gate = match tracer.as_ref().map(|_| Gate::new()).transpose() {
        Ok(gate) => gate,
        Err(err) => {
            complain!("cannot start trace mode: pipe: {}", err.desc());
            return INIT_FAILURE;
        }
    };

    // SAFETY: init has a single thread, so the child may do anything before exec.
    let child = match unsafe { unistd::fork() } {
        Ok(ForkResult::Child) => {
            let traced = gate.map(|g| {
                (
                    g,
                    tracer.as_ref().expect("gate only with a tracer").filter(),
                )
            });
            exec_program(&argv, tty, traced)
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(err) => {
            complain!(
                "cannot start {}: fork: {}",
                argv[0].to_string_lossy(),
                err.desc()
            );
            return INIT_FAILURE;
        }
    };
    if let (Some(tracer), Some(gate)) = (&tracer, gate) {
        if let Err(err) = tracer.seize(child.as_raw()) {
            complain!(
                "cannot trace {}: ptrace: {}; the node (kernel.yama.ptrace_scope) or the \
                 container's seccomp profile refuses ptrace: allow it, or set emulation.mode \
                 to \"userns\" or \"wrap\" in the crossarch config",
                argv[0].to_string_lossy(),
                err.desc()
            );
            // The child sees the pipe close without the go byte, and exits.
            drop(gate);
            let _ = nix::sys::wait::waitpid(child, None);
            return INIT_FAILURE;
        }
        gate.open();
    }
    // The child does the same; whichever runs first wins, so a signal forwarded with -g can
    // never find the group missing. Once the child has exec'd this fails, harmlessly.
    let _ = unistd::setpgid(child, child);

    let target = if options.pgroup {
        -child.as_raw()
    } else {
        child.as_raw()
    };
    let end = supervise(child, target, tracer.as_mut());
    i32::from(options.remap.apply(end.exit_code()))
}

/// Not PID 1 (a container sharing the host's pid namespace, or a test): without this, the
/// program's orphans would go to someone else and their zombies escape init.
fn become_subreaper(forced: bool) -> Result<(), Errno> {
    if !forced && unistd::getpid().as_raw() == 1 {
        return Ok(());
    }
    match prctl::set_child_subreaper(true) {
        Ok(()) => Ok(()),
        Err(err) if forced => Err(err),
        Err(err) => {
            complain!(
                "warning: cannot become a child subreaper ({}); orphaned processes will not be reaped by init",
                err.desc()
            );
            Ok(())
        }
    }
}

/// The pipe on which init tells its traced child that it may go on.
struct Gate {
    read: libc::c_int,
    write: libc::c_int,
}

impl Gate {
    fn new() -> Result<Gate, Errno> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two descriptors into `fds`.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(Errno::last());
        }
        Ok(Gate {
            read: fds[0],
            write: fds[1],
        })
    }

    /// Parent side: lets the child go.
    fn open(self) {
        // SAFETY: a one-byte write from a valid buffer to our own descriptor.
        unsafe { libc::write(self.write, [1u8].as_ptr().cast(), 1) };
    }

    /// Child side: whether the parent let it go (false when the parent closed the pipe).
    fn wait(&mut self) -> bool {
        // SAFETY: the child's copy of the write end; closing it lets EOF through.
        unsafe { libc::close(self.write) };
        self.write = -1;
        let mut byte = [0u8];
        loop {
            // SAFETY: a one-byte read into a valid buffer.
            match unsafe { libc::read(self.read, byte.as_mut_ptr().cast(), 1) } {
                1 => return byte[0] == 1,
                -1 if Errno::last() == Errno::EINTR => continue,
                _ => return false,
            }
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        for fd in [self.read, self.write] {
            if fd >= 0 {
                // SAFETY: the descriptor is ours and still open; it is closed once, here.
                unsafe { libc::close(fd) };
            }
        }
    }
}

/// In the child between fork and exec. In trace mode it first waits until init has
/// attached, then puts itself under the exec filter.
fn exec_program(argv: &[CString], tty: bool, traced: Option<(Gate, &[filter::Insn])>) -> ! {
    if let Some((mut gate, prog)) = traced {
        if !gate.wait() {
            // SAFETY: as below; init says why.
            unsafe { libc::_exit(INIT_FAILURE) }
        }
        if let Err(err) = filter::install(prog) {
            complain!(
                "cannot run {} in trace mode: seccomp: {}",
                argv[0].to_string_lossy(),
                err.desc()
            );
            // SAFETY: as below.
            unsafe { libc::_exit(126) }
        }
    }
    let _ = unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
    if tty {
        // Job control (`ctr run -t`, Ctrl-C) needs the program's group in the terminal's
        // foreground. Signals are still all blocked here, so SIGTTOU cannot stop us.
        match unistd::tcsetpgrp(stdin().as_fd(), unistd::getpid()) {
            // Not our controlling terminal: there is no job control to give.
            Ok(()) | Err(Errno::ENOTTY) | Err(Errno::ENXIO) => {}
            Err(err) => complain!(
                "warning: cannot give the terminal to {}: {}",
                argv[0].to_string_lossy(),
                err.desc()
            ),
        }
    }
    signals::unblock_all();
    let err = match unistd::execvp(&argv[0], argv) {
        Err(err) => err,
        Ok(never) => match never {},
    };
    complain!("cannot run {}: {}", argv[0].to_string_lossy(), err.desc());
    // SAFETY: _exit skips the atexit work that belongs to the parent's copy of this process.
    unsafe { libc::_exit(exec_failure_code(err)) }
}

/// Forwards signals and reaps until the program has ended, then returns how it ended.
fn supervise(child: Pid, target: libc::pid_t, mut tracer: Option<&mut Tracer>) -> ChildEnd {
    loop {
        // Reaping before waiting also catches a program that ended before the first wait.
        if let Some(end) = reap_ready(child, tracer.as_deref_mut()) {
            return end;
        }
        match signals::wait(REAP_INTERVAL) {
            None | Some(libc::SIGCHLD) => {}
            Some(signal) => {
                if let Err(err) = signals::send(target, signal) {
                    complain!("cannot forward signal {signal}: {}", err.desc());
                }
            }
        }
    }
}

/// Reaps every zombie that is ready, and tells how the program ended if it was among them.
/// It drains everything, so the zombies present when the program ends are reaped before exit.
/// In trace mode it also hands every ptrace stop of the tree to the tracer.
///
/// Raw waitpid rather than nix's: nix cannot decode a death by a real-time signal and would
/// report an error for a child it had already reaped.
fn reap_ready(child: Pid, mut tracer: Option<&mut Tracer>) -> Option<ChildEnd> {
    let flags = libc::WNOHANG | if tracer.is_some() { libc::__WALL } else { 0 };
    let mut end = None;
    // Each resumed tracee may stop again at once (signals to many threads), so in trace mode
    // a batch is bounded: the caller then takes pending signals (a SIGTERM to forward, the
    // SIGCHLD that brings it back here) before the next one.
    let mut stops = 0;
    loop {
        if stops == TRACE_BATCH {
            return end;
        }
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, flags) };
        match pid {
            0 => return end,
            -1 => match Errno::last() {
                Errno::EINTR => {}
                Errno::ECHILD => return end,
                err => {
                    complain!("waitpid: {}", err.desc());
                    return end;
                }
            },
            pid if libc::WIFSTOPPED(status) => {
                if let Some(tracer) = tracer.as_deref_mut() {
                    tracer.on_stop(pid, status);
                    stops += 1;
                }
            }
            pid if pid == child.as_raw() => {
                end = end.or(ChildEnd::from_wait_status(status));
            }
            _ => {}
        }
    }
}
