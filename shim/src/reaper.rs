//! The shim's single reaper.
//!
//! The shim is a child subreaper: container processes are re-parented to it when runc exits,
//! and runc itself is its child. Exactly one `waitpid(-1)` loop may exist, or exit statuses are
//! stolen between waiters. Every interested party registers the pid it waits for and gets the
//! status through a oneshot channel. An exit that arrives before its pid is registered (a
//! short-lived exec can finish before the shim has read its pid file) is kept until claimed.

use std::{
    collections::{HashMap, VecDeque},
    io,
    process::{Child, Command},
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex, OnceLock,
    },
    time::SystemTime,
};

use nix::{
    errno::Errno,
    sys::wait::{waitpid, WaitPidFlag, WaitStatus},
    unistd::Pid,
};
use tokio::{
    signal::unix::{signal, SignalKind},
    sync::oneshot,
};

#[derive(Clone, Copy, Debug)]
pub struct Exit {
    pub pid: i32,
    /// The code a shell would report: the exit code, or 128 + the signal number.
    pub status: i32,
    pub at: SystemTime,
}

/// Exits nobody claimed yet. Bounded: strays (grandchildren of runc) must not grow it forever.
const UNCLAIMED_MAX: usize = 1024;

#[derive(Default)]
struct Table {
    waiters: HashMap<i32, oneshot::Sender<Exit>>,
    unclaimed: VecDeque<Exit>,
}

fn table() -> &'static Mutex<Table> {
    static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
    TABLE.get_or_init(Default::default)
}

static RUNNING: AtomicBool = AtomicBool::new(false);

/// Starts the reaper loop on the current tokio runtime. Call once, before any child is spawned.
pub fn start() -> io::Result<()> {
    let mut sigchld = signal(SignalKind::child())?;
    RUNNING.store(true, Ordering::Release);
    tokio::spawn(async move {
        loop {
            reap_all();
            if sigchld.recv().await.is_none() {
                return;
            }
        }
    });
    Ok(())
}

fn reap_all() {
    loop {
        let exit = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => (pid, code),
            Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, 128 + sig as i32),
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(e) => {
                log::warn!("waitpid failed: {e}");
                return;
            }
        };
        deliver(Exit {
            pid: exit.0.as_raw(),
            status: exit.1,
            at: SystemTime::now(),
        });
    }
}

fn deliver(exit: Exit) {
    let mut t = table().lock().unwrap();
    match t.waiters.remove(&exit.pid) {
        Some(tx) => {
            let _ = tx.send(exit);
        }
        None => {
            if t.unclaimed.len() == UNCLAIMED_MAX {
                t.unclaimed.pop_front();
            }
            t.unclaimed.push_back(exit);
        }
    }
}

/// Returns a channel that yields the exit of `pid`, even if it was reaped already.
pub fn watch(pid: i32) -> oneshot::Receiver<Exit> {
    let (tx, rx) = oneshot::channel();
    let mut t = table().lock().unwrap();
    if let Some(i) = t.unclaimed.iter().position(|e| e.pid == pid) {
        let exit = t.unclaimed.remove(i).unwrap();
        let _ = tx.send(exit);
    } else {
        t.waiters.insert(pid, tx);
    }
    rx
}

/// Whether an exit of `pid` was reaped and is waiting to be claimed by [`watch`].
pub fn reaped(pid: i32) -> bool {
    table()
        .lock()
        .unwrap()
        .unclaimed
        .iter()
        .any(|e| e.pid == pid)
}

/// Whether the reaper loop runs in this process, so that children must be waited for
/// through it.
pub fn running() -> bool {
    RUNNING.load(Ordering::Acquire)
}

/// Forks this process (`clone` with `flags` and SIGCHLD, no exec): the child runs `child` and
/// exits with the code it returns. Returns the child's pid; [`exit_status`] gives its exit.
///
/// # Safety
///
/// This process may have other threads, whose locks the child inherits held: `child` may only
/// make async-signal-safe calls (plain system calls) on memory made before the fork, and must
/// not allocate, lock, unwind or return into anything but its exit.
pub unsafe fn fork(flags: libc::c_int, child: impl FnOnce() -> i32) -> io::Result<i32> {
    // SAFETY: clone without CLONE_VM is fork (with `flags`); the caller keeps the child to
    // async-signal-safe calls.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid == 0 {
        let code = child();
        // SAFETY: _exit(2) ends the child without running anything of the parent's.
        unsafe { libc::_exit(code) }
    }
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(pid as i32)
}

/// The exit status (the code, or 128 + the signal; -1 when it is lost) of this process's child
/// `pid`: through the reaper when it runs (an exit reaped already is kept for it), else from
/// `waitpid`.
pub fn exit_status(pid: i32) -> impl std::future::Future<Output = i32> + Send + 'static {
    let reaped = running().then(|| watch(pid));
    async move {
        match reaped {
            Some(rx) => rx.await.map(|e| e.status).unwrap_or(-1),
            None => match waitpid(Pid::from_raw(pid), None) {
                Ok(WaitStatus::Exited(_, code)) => code,
                Ok(WaitStatus::Signaled(_, sig, _)) => 128 + sig as i32,
                _ => -1,
            },
        }
    }
}

/// Spawns `cmd` and registers its pid before the reaper can see it exit.
pub fn spawn(cmd: &mut Command) -> io::Result<(Child, oneshot::Receiver<Exit>)> {
    let (tx, rx) = oneshot::channel();
    let mut t = table().lock().unwrap();
    let child = cmd.spawn()?;
    t.waiters.insert(child.id() as i32, tx);
    Ok((child, rx))
}
