//! Starting the program, passing signals on, reaping, and turning the end into an exit code.

use std::ffi::CString;
use std::io::{stdin, IsTerminal};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::prctl;
use nix::unistd::{self, ForkResult, Pid};

use crate::cli::Options;
use crate::complain;
use crate::exit::{exec_failure_code, ChildEnd};
use crate::signals;
use crate::trace::{filter, listener, Tracer};

/// Exit code when init itself cannot do its job (no fork, no subreaper when asked for).
const INIT_FAILURE: i32 = 1;

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
    // In trace mode the child hands init its filter's listener over this pair, then waits
    // for init's go.
    let sockets = match tracer.as_ref().map(|_| listener::pair()).transpose() {
        Ok(sockets) => sockets,
        Err(err) => {
            complain!("cannot start trace mode: socketpair: {}", err.desc());
            return INIT_FAILURE;
        }
    };
    let signal_fd = match tracer.as_ref().map(|_| signals::fd()).transpose() {
        Ok(fd) => fd,
        Err(err) => {
            complain!("cannot start trace mode: signalfd: {}", err.desc());
            return INIT_FAILURE;
        }
    };

    // SAFETY: init has a single thread, so the child may do anything before exec.
    let child = match unsafe { unistd::fork() } {
        Ok(ForkResult::Child) => {
            let traced = sockets.map(|(ours, theirs)| {
                // So that the child sees EOF when init closes its end.
                drop(ours);
                let prog = tracer
                    .as_ref()
                    .expect("sockets only with a tracer")
                    .filter();
                (theirs, prog)
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
    if let (Some(tracer), Some((ours, theirs))) = (tracer.as_mut(), sockets) {
        drop(theirs);
        // Nothing comes when the child could not install the filter: it says why and exits.
        if let Ok(Some(fd)) = listener::receive_fd(ours.as_raw_fd()) {
            tracer.listen(fd);
            match tracer.probe(child.as_raw()) {
                Ok(None) => listener::go(ours.as_raw_fd()),
                // Killed (`kill -9` as it starts) before it ran: that end is the program's.
                Ok(Some(status)) => return end_code(options, status),
                Err(err) => {
                    // The child sees the socket close without the go byte, and exits.
                    drop(ours);
                    let status = wait_blocking(child);
                    // A signal, not the refusal, ended it: the kernel refuses a dying process.
                    if libc::WIFSIGNALED(status) {
                        return end_code(options, status);
                    }
                    complain!(
                        "cannot trace {}: ptrace: {}; the node (kernel.yama.ptrace_scope, an \
                         LSM) or the container's seccomp profile refuses ptrace: allow it, or \
                         set emulation.mode to \"userns\" or \"wrap\" in the crossarch config",
                        argv[0].to_string_lossy(),
                        err.desc()
                    );
                    return INIT_FAILURE;
                }
            }
        }
    }
    // The child does the same; whichever runs first wins, so a signal forwarded with -g can
    // never find the group missing. Once the child has exec'd this fails, harmlessly.
    let _ = unistd::setpgid(child, child);

    let target = if options.pgroup {
        -child.as_raw()
    } else {
        child.as_raw()
    };
    let end = supervise(child, target, tracer.as_mut().zip(signal_fd.as_ref()));
    exit_code(options, end)
}

/// Init's exit code for the program's end.
fn exit_code(options: &Options, end: ChildEnd) -> i32 {
    i32::from(options.remap.apply(end.exit_code()))
}

/// Init's exit code for the program's end as a raw wait status.
fn end_code(options: &Options, status: i32) -> i32 {
    ChildEnd::from_wait_status(status).map_or(INIT_FAILURE, |end| exit_code(options, end))
}

/// Waits for `child` to end and returns its raw wait status (0 when it cannot be waited for).
/// Raw for the reason `reap_ready` gives.
fn wait_blocking(child: Pid) -> i32 {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer.
        let pid = unsafe { libc::waitpid(child.as_raw(), &mut status, 0) };
        if pid == child.as_raw() {
            return status;
        }
        if Errno::last() != Errno::EINTR {
            return 0;
        }
    }
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

/// In the child between fork and exec. In trace mode it first puts itself under the exec
/// filter, hands init the filter's listener on `socket`, and waits for init's go.
fn exec_program(argv: &[CString], tty: bool, traced: Option<(OwnedFd, &[filter::Insn])>) -> ! {
    if let Some((socket, prog)) = traced {
        let listener = match filter::install(prog) {
            Ok(listener) => listener,
            Err(err) => {
                complain!(
                    "cannot run {} in trace mode: seccomp: {}",
                    argv[0].to_string_lossy(),
                    err.desc()
                );
                // SAFETY: as below.
                unsafe { libc::_exit(126) }
            }
        };
        if let Err(err) = listener::send_fd(socket.as_raw_fd(), listener.as_raw_fd()) {
            complain!("cannot start trace mode: sendmsg: {}", err.desc());
            // SAFETY: as below.
            unsafe { libc::_exit(INIT_FAILURE) }
        }
        drop(listener);
        if !listener::wait_go(socket.as_raw_fd()) {
            // SAFETY: as below; init says why.
            unsafe { libc::_exit(INIT_FAILURE) }
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

/// Forwards signals and reaps until the program has ended, then returns how it ended. In
/// trace mode it also answers the execs waiting on the listener.
fn supervise(
    child: Pid,
    target: libc::pid_t,
    mut traced: Option<(&mut Tracer, &OwnedFd)>,
) -> ChildEnd {
    // The program's end, when init reaped it while it held it for an exec.
    let mut ended = None;
    loop {
        // Reaping before waiting also catches a program that ended before the first wait.
        if let Some(end) = reap_ready(child).or(ended.take()) {
            return end;
        }
        let signal = match traced.as_mut() {
            None => signals::wait(REAP_INTERVAL),
            Some((tracer, signal_fd)) => {
                wait_traced(tracer, signal_fd.as_raw_fd(), child, &mut ended)
            }
        };
        match signal {
            None | Some(libc::SIGCHLD) => {}
            Some(signal) => {
                if let Err(err) = signals::send(target, signal) {
                    complain!("cannot forward signal {signal}: {}", err.desc());
                }
            }
        }
    }
}

/// Trace mode's wait: for a signal, or an exec on the listener, which it answers. Pending
/// signals come first, so that a storm of execs cannot hold up forwarding.
fn wait_traced(
    tracer: &mut Tracer,
    signal_fd: RawFd,
    child: Pid,
    ended: &mut Option<ChildEnd>,
) -> Option<i32> {
    if let Some(signal) = take(tracer, signal_fd) {
        return Some(signal);
    }
    let mut fds = [
        libc::pollfd {
            fd: signal_fd,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: tracer.listener().unwrap_or(-1),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // SAFETY: two valid pollfds; a negative fd is skipped.
    unsafe {
        libc::poll(
            fds.as_mut_ptr(),
            2,
            REAP_INTERVAL.as_millis() as libc::c_int,
        )
    };
    if fds[1].revents & libc::POLLIN != 0 {
        if let Some((pid, status)) = tracer.on_exec() {
            if pid == child.as_raw() {
                *ended = ChildEnd::from_wait_status(status);
            }
        }
    } else if fds[1].revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
        // No process is left under the filter.
        tracer.close();
    }
    take(tracer, signal_fd)
}

/// The next pending signal to pass on; those the tracer refuses are dropped.
fn take(tracer: &mut Tracer, signal_fd: RawFd) -> Option<i32> {
    while let Some(sent) = signals::take(signal_fd) {
        if !tracer.refuses(&sent) {
            return Some(sent.signal);
        }
    }
    None
}

/// Reaps every zombie that is ready, and tells how the program ended if it was among them.
/// It drains everything, so the zombies present when the program ends are reaped before exit.
///
/// Raw waitpid rather than nix's: nix cannot decode a death by a real-time signal and would
/// report an error for a child it had already reaped.
fn reap_ready(child: Pid) -> Option<ChildEnd> {
    let mut end = None;
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
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
            pid if pid == child.as_raw() && !libc::WIFSTOPPED(status) => {
                end = end.or(ChildEnd::from_wait_status(status));
            }
            _ => {}
        }
    }
}
