//! Trace mode: every process of the program's tree runs through qemu when it is foreign,
//! without binfmt_misc. The program starts under a seccomp filter that makes `execve` and
//! `execveat` wait for init on the filter's listener ([`filter`], [`listener`]); children
//! inherit it. At each exec init resolves the target as the shim does, in that process's own
//! root and cwd, `#!` interpreters included ([`exec`]):
//!
//! - A native target goes on untouched (the notification is answered with CONTINUE).
//! - For a foreign one, init holds the thread: it attaches with PTRACE_SEIZE, interrupts
//!   it, and answers the exec with a restart code that holds whatever the thread's signal
//!   handlers say, so the thread stops on its way to restart it. There init writes
//!   `-0 argv0 path args...` for the qemu in the qemu directory below the thread's stack
//!   pointer ([`memory`]) and points the syscall's registers at it ([`regs`]): an
//!   `execveat` the filter lets through. Until the thread is in that syscall, init blocks
//!   its signals, so that no handler builds its frame over the new arguments; a signal that
//!   comes meanwhile waits, as it would during a native exec, and goes to the new program.
//!
//! qemu's own execs for the guest's children come the same way, so every descendant is
//! emulated. Nothing else is traced: a process is attached only for the instant of a
//! foreign exec, so forks, signals, job control and exit statuses are exactly as without
//! trace mode.
//!
//! A process that switches to another user cannot be read by init, which has no
//! CAP_SYS_PTRACE, until it execs: that first exec is handed over to init started in the
//! process ([`handover`]); the user's later execs are answered by a thread of init that
//! takes that user's ids ([`owner`]).
//!
//! The tracer is init itself, in the container, with the container's credentials: it opens
//! files only below the process's root (`openat2(RESOLVE_IN_ROOT)`) and writes only into the
//! thread it holds, below its stack pointer, or, at a hand-over, over the exec's own path.

mod exec;
pub mod filter;
mod handed;
pub mod handover;
pub mod listener;
mod memory;
mod owner;
mod regs;

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use nix::errno::Errno;

use crate::complain;
use crate::signals;
use listener::Notification;
use regs::Regs;

/// What emulates the program's process tree.
pub struct Tracer {
    /// Where the qemus are, as init sees it: `qemu-<name>-static` per emulated architecture.
    qemu_dir: PathBuf,
    filter: Vec<filter::Insn>,
    /// The filter's listener, once the program has handed it over; None again when every
    /// process under the filter is gone.
    listener: Option<OwnedFd>,
    /// Init's own path, which a handed-over exec runs (empty if unknown).
    init: Vec<u8>,
    /// The memories of processes that are changing their ids.
    switching: handover::Switching,
    /// Whether a thread of init has taken another user's ids ([`Tracer::as_owner`]).
    lent: bool,
    /// Warnings given once each.
    told: Told,
}

#[derive(Default)]
struct Told {
    /// A foreign exec init could not rewrite.
    failure: bool,
    /// A process the kernel would not let init read (it switched user).
    denied: bool,
    /// A process init could not attach to (traced by another, or ptrace refused).
    attach: bool,
    /// A kernel older than Linux 5.5.
    kernel: bool,
    /// A signal init did not pass on.
    signal: bool,
}

/// How a held thread came back.
enum Held {
    /// In a ptrace stop, with the wait status; a signal-delivery stop's signal goes on with
    /// the detach.
    Stopped(i32),
    /// It ended (SIGKILL) instead; the wait status, and init may have reaped it.
    Ended(i32),
}

impl Tracer {
    pub fn new(qemu_dir: PathBuf) -> Tracer {
        Tracer {
            qemu_dir,
            filter: filter::program(filter::HOST),
            listener: None,
            init: std::fs::read_link("/proc/self/exe")
                .map(|p| p.into_os_string().into_encoded_bytes())
                .unwrap_or_default(),
            switching: handover::Switching::default(),
            lent: false,
            told: Told::default(),
        }
    }

    /// The filter the program installs before it execs.
    pub fn filter(&self) -> &[filter::Insn] {
        &self.filter
    }

    /// Takes the filter's listener, which the program made when it installed the filter.
    pub fn listen(&mut self, listener: OwnedFd) {
        self.listener = Some(listener);
    }

    pub fn listener(&self) -> Option<RawFd> {
        self.listener.as_ref().map(|fd| fd.as_raw_fd())
    }

    /// Every process under the filter has gone: nothing more can come.
    pub fn close(&mut self) {
        self.listener = None;
    }

    /// Checks, before the program runs, that the kernel lets init attach to it (Yama, an LSM,
    /// a seccomp profile), by holding it once. `Ok(Some(status))`: it was killed meanwhile,
    /// and init reaped it.
    pub fn probe(&self, pid: libc::pid_t) -> Result<Option<i32>, Errno> {
        match hold(pid)? {
            Held::Stopped(status) => {
                detach(pid, stop_signal(status));
                Ok(None)
            }
            Held::Ended(status) => Ok(Some(status)),
        }
    }

    /// Answers the exec waiting on the listener. Returns the wait status of a process that
    /// init reaped while it held it.
    pub fn on_exec(&mut self) -> Option<(libc::pid_t, i32)> {
        let fd = self.listener()?;
        let notification = match listener::receive(fd) {
            Ok(n) => n,
            // The process was killed before init took it, or a signal to init.
            Err(Errno::ENOENT | Errno::EINTR) => return None,
            Err(err) => {
                complain!("warning: trace mode: seccomp listener: {}", err.desc());
                return None;
            }
        };
        let (reaped, done) = self.answer(fd, &notification);
        if !done && listener::go_on(fd, notification.id).is_err() && !self.told.kernel {
            self.told.kernel = true;
            complain!(
                "trace mode: this kernel cannot let an exec go on from a seccomp listener \
                 (Linux 5.5 or later can): execs fail; set emulation.mode to \"wrap\" in the \
                 crossarch config"
            );
        }
        reaped
    }

    /// Handles one exec. `done` when the exec was cut short and needs no answer.
    fn answer(&mut self, fd: RawFd, n: &Notification) -> (Option<(libc::pid_t, i32)>, bool) {
        let tid = n.pid;
        if filter::is_setid(n.nr) {
            self.switching.note(tid);
            return (None, false);
        }
        let Some(call) = exec::Call::new(n.nr, n.args) else {
            return (None, false);
        };
        let planned = exec::plan(&self.qemu_dir, tid, &call);
        if planned.is_ok() {
            self.switching.exec_seen(tid);
        }
        match planned {
            // Read from a thread whose pid may have been reused: only trusted while the
            // notification is still there.
            Ok(Some(rewrite)) if listener::valid(fd, n.id) => self.hold(fd, n, &call, &rewrite),
            Ok(_) => (None, false),
            Err(exec::Denied) => self.answer_other_user(fd, n, &call),
        }
    }

    /// An exec of a process the kernel will not let init read: it runs as another user.
    /// Once it has exec'd since its switch, a thread of init with that user's ids answers it
    /// ([`Tracer::as_owner`]); before, init hands it over ([`handover`]). `done` as in
    /// [`Tracer::answer`].
    fn answer_other_user(
        &mut self,
        fd: RawFd,
        n: &Notification,
        call: &exec::Call,
    ) -> (Option<(libc::pid_t, i32)>, bool) {
        let tid = n.pid;
        // None: not dumpable, it has switched users and not exec'd since.
        if let Some(answered) = self.as_owner(fd, n, call) {
            self.switching.exec_seen(tid);
            return answered;
        }
        let outcome = if self.init.is_empty() || !listener::valid(fd, n.id) {
            handover::Outcome::AsItIs
        } else {
            handover::hand_over(
                &mut self.switching,
                &self.init,
                &self.qemu_dir,
                fd,
                n.id,
                tid,
                call,
            )
        };
        match outcome {
            handover::Outcome::Handed => return (None, false),
            handover::Outcome::Fails(errno) => {
                let _ = listener::fail(fd, n.id, errno);
                return (None, true);
            }
            handover::Outcome::AsItIs => {}
        }
        if listener::valid(fd, n.id) && !std::mem::replace(&mut self.told.denied, true) {
            complain!(
                "warning: trace mode: the kernel refuses init the exec of process {tid}, which \
                 runs as another user, and init could not take it over (init without \
                 CAP_SETUID and CAP_SETGID, a chrooted or vfork'd process, an exec relative \
                 to a directory descriptor, or Linux before 5.9): foreign programs it starts \
                 are not emulated (they fail with \"exec format error\"); run the container as \
                 that user, or use userns mode (Linux 6.7 or later)"
            );
        }
        (None, false)
    }

    /// Answers the exec of another user's process from a thread of init that takes that
    /// user's ids (the saved ones aside) and then does what init does for its own: the
    /// kernel lets a process read and attach to one of its own user, and Yama's
    /// `ptrace_scope` 1 one it is an ancestor of, which init is. The thread ends with the
    /// answer; init's main thread never takes another user's ids, so that user can neither
    /// signal nor renice init. A signal that user sends to the thread's id reaches all of
    /// init, though, as the kernel checks it against the thread's ids: init does not pass
    /// such a signal on ([`Tracer::refuses`]). None when the thread cannot read the process
    /// either (not dumpable) or cannot be that user.
    fn as_owner(
        &mut self,
        fd: RawFd,
        n: &Notification,
        call: &exec::Call,
    ) -> Option<(Option<(libc::pid_t, i32)>, bool)> {
        let theirs = owner::of(n.pid)?;
        // SAFETY: cannot fail.
        if (theirs.uid, theirs.gid) == unsafe { (libc::getuid(), libc::getgid()) } {
            return None;
        }
        self.lent = true;
        std::thread::scope(|scope| {
            let thread = std::thread::Builder::new()
                .name("as-owner".into())
                // Set here, so that RUST_MIN_STACK in the program's environment cannot.
                .stack_size(1 << 20)
                .spawn_scoped(scope, || {
                    owner::take_in_this_thread(&theirs).ok()?;
                    match exec::plan(&self.qemu_dir, n.pid, call) {
                        Ok(Some(rewrite)) if listener::valid(fd, n.id) => {
                            Some(self.hold(fd, n, call, &rewrite))
                        }
                        Ok(_) => Some((None, false)),
                        Err(exec::Denied) => None,
                    }
                });
            match thread {
                Ok(thread) => thread.join().ok().flatten(),
                Err(err) => {
                    complain!("warning: trace mode: cannot start a thread: {err}");
                    None
                }
            }
        })
    }

    /// Whether init keeps a signal from itself and its program: one a process of the
    /// container sent from a user the kernel lets signal init only through a thread of init
    /// that had that user's ids ([`Tracer::as_owner`]), since init has lent one.
    pub fn refuses(&mut self, sent: &signals::Sent) -> bool {
        // SAFETY: cannot fail.
        let refused = self.lent && signals::through_a_lent_thread(sent, unsafe { libc::getuid() });
        if refused && !std::mem::replace(&mut self.told.signal, true) {
            complain!(
                "warning: trace mode: signal {} from process {} (uid {}) is not passed on: \
                 that user may not signal init",
                sent.signal,
                sent.pid,
                sent.uid
            );
        }
        refused
    }

    /// Attaches to the thread of a foreign exec, holds it at the exec's restart and rewrites
    /// it. `done` as in [`Tracer::answer`].
    fn hold(
        &mut self,
        fd: RawFd,
        n: &Notification,
        call: &exec::Call,
        rewrite: &exec::Rewrite,
    ) -> (Option<(libc::pid_t, i32)>, bool) {
        let tid = n.pid;
        if let Err(err) = seize(tid) {
            if err != Errno::ESRCH && !std::mem::replace(&mut self.told.attach, true) {
                complain!(
                    "warning: trace mode: cannot attach to process {tid} to emulate {}: \
                     ptrace: {} (another tracer, such as a debugger, holds it, or the node \
                     refuses ptrace); it runs as it is",
                    String::from_utf8_lossy(&rewrite.target),
                    err.desc()
                );
            }
            return (None, false);
        }
        // The pid is the notifying thread's only while the notification is there.
        let ours = listener::valid(fd, n.id);
        if ptrace(Request::Interrupt, tid, 0).is_err() {
            detach(tid, 0);
            return (None, false);
        }
        // Interrupted first, so that the thread stops before it restarts. If the answer
        // does not reach it, it was killed, or (before Linux 5.19) a signal cut the exec
        // short and the thread stops on its own restart, or its EINTR.
        let _ = listener::restart(fd, n.id);
        let status = match wait_stop(tid) {
            Ok(Held::Stopped(status)) => status,
            Ok(Held::Ended(status)) => return (Some((tid, status)), true),
            Err(_) => return (None, true),
        };
        // At a signal-delivery stop the exec is left to restart as it was, after the
        // signal, and comes back.
        let signal = stop_signal(status);
        if !ours || signal != 0 {
            detach(tid, signal);
            return (None, true);
        }
        (self.rewrite(tid, call, rewrite), true)
    }

    /// At the held thread's restart of its exec: makes it an exec of qemu, or, if that
    /// cannot be written, fails it as the kernel fails a foreign program (so that it does not
    /// come back for ever). Lets the thread go.
    fn rewrite(
        &mut self,
        tid: libc::pid_t,
        call: &exec::Call,
        rewrite: &exec::Rewrite,
    ) -> Option<(libc::pid_t, i32)> {
        let Ok(mut regs) = Regs::get(tid) else {
            detach(tid, 0);
            return None;
        };
        // Anything else (the exec ended another way) is left alone.
        if exec::Call::restarted(&regs, tid).as_ref() != Some(call) {
            detach(tid, 0);
            return None;
        }
        let mut restarting = regs.clone();
        if let Err(err) = exec::apply(tid, &mut regs, call, rewrite) {
            if !std::mem::replace(&mut self.told.failure, true) {
                complain!("warning: trace mode: {err}; the exec fails with \"exec format error\"");
            }
            regs.fail(libc::ENOEXEC);
            set_regs(tid, &mut regs);
            detach(tid, 0);
            return None;
        }
        let blocked = sigmask(tid).and_then(|mask| set_sigmask(tid, u64::MAX).map(|()| mask));
        let Ok(mask) = blocked else {
            detach(tid, 0);
            return None;
        };
        if !set_regs(tid, &mut regs) {
            let _ = set_sigmask(tid, mask);
            detach(tid, 0);
            return None;
        }
        // To the exec's entry, where nothing of the program runs any more.
        let held = ptrace(Request::Syscall, tid, 0).and_then(|()| wait_stop(tid));
        let status = match held {
            Ok(Held::Stopped(status)) => status,
            Ok(Held::Ended(status)) => return Some((tid, status)),
            Err(_) => return None,
        };
        let at_exec = status >> 8 == libc::SIGTRAP | 0x80;
        let signal = if at_exec { 0 } else { stop_signal(status) };
        if !at_exec {
            // Stopped before the exec (SIGSTOP, which cannot be blocked): the thread takes
            // its signal with the exec it had, which it restarts after.
            set_regs(tid, &mut restarting);
        }
        let _ = set_sigmask(tid, mask);
        detach(tid, signal);
        None
    }
}

/// Sets the registers of the held thread `tid`; false when it is gone.
fn set_regs(tid: libc::pid_t, regs: &mut Regs) -> bool {
    match regs.set(tid) {
        Ok(()) => true,
        Err(Errno::ESRCH) => false,
        Err(err) => {
            complain!(
                "warning: trace mode: cannot set the registers of {tid}: {}",
                err.desc()
            );
            false
        }
    }
}

/// The signal a stop holds back, to go on with the detach: only a signal-delivery stop's.
fn stop_signal(status: i32) -> i32 {
    if status >> 16 == 0 {
        libc::WSTOPSIG(status)
    } else {
        0
    }
}

/// Attaches to `tid` and brings it to a stop.
fn hold(tid: libc::pid_t) -> Result<Held, Errno> {
    seize(tid)?;
    interrupt_and_wait(tid)
}

/// Attaches to `tid`; its syscall stops are told from other SIGTRAPs (0x80).
fn seize(tid: libc::pid_t) -> Result<(), Errno> {
    ptrace(Request::Seize, tid, libc::PTRACE_O_TRACESYSGOOD)
}

fn interrupt_and_wait(tid: libc::pid_t) -> Result<Held, Errno> {
    ptrace(Request::Interrupt, tid, 0)?;
    wait_stop(tid)
}

/// Waits for the held thread `tid` to stop or end.
fn wait_stop(tid: libc::pid_t) -> Result<Held, Errno> {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer.
        let pid = unsafe { libc::waitpid(tid, &mut status, libc::__WALL) };
        if pid == tid {
            return Ok(if libc::WIFSTOPPED(status) {
                Held::Stopped(status)
            } else {
                Held::Ended(status)
            });
        }
        match Errno::last() {
            Errno::EINTR => continue,
            err => return Err(err),
        }
    }
}

/// Lets a held thread go. ESRCH means it is gone (SIGKILL), which is not init's concern.
fn detach(tid: libc::pid_t, signal: i32) {
    if let Err(err) = ptrace(Request::Detach, tid, signal) {
        if err != Errno::ESRCH {
            complain!("warning: trace mode: cannot let {tid} go: {}", err.desc());
        }
    }
}

/// The signal mask of the held thread `tid`, as a kernel sigset.
fn sigmask(tid: libc::pid_t) -> Result<u64, Errno> {
    let mut mask = 0u64;
    sigmask_request(tid, &mut mask, true)?;
    Ok(mask)
}

/// Sets it; SIGKILL and SIGSTOP stay unblocked whatever `mask` says.
fn set_sigmask(tid: libc::pid_t, mut mask: u64) -> Result<(), Errno> {
    sigmask_request(tid, &mut mask, false)
}

fn sigmask_request(tid: libc::pid_t, mask: &mut u64, get: bool) -> Result<(), Errno> {
    let size = std::mem::size_of::<u64>();
    let mask = (mask as *mut u64).cast::<libc::c_void>();
    // SAFETY: the kernel reads or writes `size` bytes at `mask`. (The request's C type
    // differs between C libraries.)
    let rc = unsafe {
        if get {
            libc::ptrace(libc::PTRACE_GETSIGMASK as _, tid, size, mask)
        } else {
            libc::ptrace(libc::PTRACE_SETSIGMASK as _, tid, size, mask)
        }
    };
    if rc == -1 {
        return Err(Errno::last());
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Request {
    Seize,
    Interrupt,
    /// Go on to the next syscall stop.
    Syscall,
    Detach,
}

/// A ptrace request with integer arguments.
fn ptrace(request: Request, tid: libc::pid_t, data: i32) -> Result<(), Errno> {
    let addr = std::ptr::null_mut::<libc::c_void>();
    let data = data as usize as *mut libc::c_void;
    // SAFETY: integer arguments only. (The request's C type differs between C libraries,
    // so each call names its constant.)
    let rc = unsafe {
        match request {
            Request::Seize => libc::ptrace(libc::PTRACE_SEIZE, tid, addr, data),
            Request::Interrupt => libc::ptrace(libc::PTRACE_INTERRUPT, tid, addr, data),
            Request::Syscall => libc::ptrace(libc::PTRACE_SYSCALL, tid, addr, data),
            Request::Detach => libc::ptrace(libc::PTRACE_DETACH, tid, addr, data),
        }
    };
    if rc == -1 {
        return Err(Errno::last());
    }
    Ok(())
}
