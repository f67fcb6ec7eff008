//! One process of a container (its init or an exec) as the shim tracks it.

use std::{
    sync::Mutex,
    time::{Duration, SystemTime},
};

use containerd_shim::protos::{
    protobuf::{well_known_types::timestamp::Timestamp, EnumOrUnknown, MessageField},
    shim::shim::StateResponse,
    types::task::Status as TaskStatus,
};
use tokio::sync::watch;

use super::io::{ProcessIo, StdioRequest};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Paused,
    Stopped,
}

#[derive(Clone, Copy, Debug)]
pub struct Exited {
    pub status: u32,
    pub at: SystemTime,
}

pub struct Process {
    /// Empty for the init process.
    pub exec_id: String,
    pub stdio: StdioRequest,
    /// The exec's OCI process, JSON as containerd sent it.
    pub spec: Vec<u8>,
    state: Mutex<(Status, i32)>,
    /// Whether the init ended while it waited for Start (killed after `runc create`).
    died_before_start: std::sync::atomic::AtomicBool,
    exit: watch::Sender<Option<Exited>>,
    pub io: Mutex<ProcessIo>,
    /// An exec's pidfd, opened as soon as runc told its pid; unset when it was already gone.
    /// Signals go through it, so a pid the process left behind cannot be signalled.
    pub pidfd: std::sync::OnceLock<std::os::fd::OwnedFd>,
}

pub fn timestamp(t: SystemTime) -> MessageField<Timestamp> {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    MessageField::some(Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
        ..Default::default()
    })
}

impl Process {
    pub fn new(exec_id: &str, stdio: StdioRequest, spec: Vec<u8>) -> Process {
        Process {
            exec_id: exec_id.to_string(),
            stdio,
            spec,
            state: Mutex::new((Status::Created, 0)),
            died_before_start: Default::default(),
            exit: watch::channel(None).0,
            io: Mutex::new(ProcessIo::default()),
            pidfd: std::sync::OnceLock::new(),
        }
    }

    pub fn status(&self) -> Status {
        self.state.lock().unwrap().0
    }

    pub fn pid(&self) -> i32 {
        self.state.lock().unwrap().1
    }

    pub fn set_pid(&self, pid: i32) {
        self.state.lock().unwrap().1 = pid;
    }

    /// Moves to `to` unless the process already stopped (an exit can race a start).
    pub fn set_status(&self, to: Status) {
        let mut s = self.state.lock().unwrap();
        if s.0 != Status::Stopped {
            s.0 = to;
        }
    }

    pub fn set_exited(&self, status: u32, at: SystemTime) {
        let was = std::mem::replace(&mut self.state.lock().unwrap().0, Status::Stopped);
        if was == Status::Created && self.exec_id.is_empty() {
            self.died_before_start
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        self.exit.send_replace(Some(Exited { status, at }));
    }

    /// Whether the init ended while it waited for Start.
    pub fn died_before_start(&self) -> bool {
        self.died_before_start
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn exited(&self) -> Option<Exited> {
        *self.exit.borrow()
    }

    pub async fn wait(&self) -> Exited {
        let mut rx = self.exit.subscribe();
        loop {
            if let Some(e) = *rx.borrow_and_update() {
                return e;
            }
            if rx.changed().await.is_err() {
                return Exited {
                    status: 255,
                    at: SystemTime::now(),
                };
            }
        }
    }

    /// Waits for the exit, at most `limit`.
    pub async fn wait_for(&self, limit: Duration) -> Option<Exited> {
        tokio::time::timeout(limit, self.wait()).await.ok()
    }

    /// Waits until the output was delivered, at most `limit`.
    pub async fn drain_io(&self, limit: Duration) -> bool {
        let done = self.io.lock().unwrap().drained();
        tokio::time::timeout(limit, done).await.is_ok()
    }

    pub fn state(&self, id: &str, bundle: &str) -> StateResponse {
        let (status, pid) = *self.state.lock().unwrap();
        let exited = self.exited();
        StateResponse {
            id: if self.exec_id.is_empty() {
                id.to_string()
            } else {
                self.exec_id.clone()
            },
            bundle: bundle.to_string(),
            pid: pid as u32,
            status: EnumOrUnknown::new(match status {
                Status::Created => TaskStatus::CREATED,
                Status::Running => TaskStatus::RUNNING,
                Status::Paused => TaskStatus::PAUSED,
                Status::Stopped => TaskStatus::STOPPED,
            }),
            stdin: self.stdio.stdin.clone(),
            stdout: self.stdio.stdout.clone(),
            stderr: self.stdio.stderr.clone(),
            terminal: self.stdio.terminal,
            exit_status: exited.map_or(0, |e| e.status),
            exited_at: exited.map_or_else(MessageField::none, |e| timestamp(e.at)),
            exec_id: self.exec_id.clone(),
            ..Default::default()
        }
    }
}
