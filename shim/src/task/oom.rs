//! OOM notifications: an eventfd on cgroup v1's `memory.oom_control`, or `oom_kill` in cgroup
//! v2's `memory.events` (watched with inotify).

use std::{
    fs::File,
    io::Write,
    os::fd::{AsFd, AsRawFd},
    sync::Arc,
};

use containerd_shim::protos::events::task::TaskOOM;
use nix::sys::{
    eventfd::{EfdFlags, EventFd},
    inotify::{AddWatchFlags, InitFlags, Inotify},
};
use tokio::io::unix::AsyncFd;

use super::{
    cgroup::{Cgroups, MemoryCgroup},
    Shared,
};

/// Lets tokio poll a nix type that only exposes `AsFd`.
struct Polled<T: AsFd>(T);

impl<T: AsFd> AsRawFd for Polled<T> {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

#[allow(deprecated)] // `register` is the unsafe spelling of the same thing; the fd is owned here.
fn poll<T: AsFd>(inner: T) -> Option<AsyncFd<Polled<T>>> {
    AsyncFd::new(Polled(inner)).ok()
}

fn oom_kills(events: &str) -> u64 {
    events
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Starts watching the memory cgroup of `pid`; `None` when there is nothing to watch.
pub fn watch(shared: Arc<Shared>, id: String, pid: i32) -> Option<tokio::task::JoinHandle<()>> {
    let cg = Cgroups::of(pid).ok()?.memory()?;
    let publish = move |shared: Arc<Shared>, id: String| async move {
        log::info!("container {id}: out of memory, a process was killed");
        shared
            .publish(TaskOOM {
                container_id: id,
                ..Default::default()
            })
            .await;
    };
    match cg {
        MemoryCgroup::V1(dir) => {
            let efd =
                EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
                    .ok()?;
            let control = File::open(dir.join("memory.oom_control")).ok()?;
            let mut ec = File::options()
                .write(true)
                .open(dir.join("cgroup.event_control"))
                .ok()?;
            // One write(2): the kernel parses each write to event_control on its own.
            let line = format!("{} {}", efd.as_fd().as_raw_fd(), control.as_raw_fd());
            ec.write_all(line.as_bytes()).ok()?;
            let afd = poll(efd)?;
            Some(tokio::spawn(async move {
                let _control = control;
                loop {
                    let Ok(mut guard) = afd.readable().await else {
                        return;
                    };
                    let r = guard.try_io(|fd| fd.get_ref().0.read().map_err(std::io::Error::from));
                    match r {
                        Ok(Ok(_)) => {
                            // The eventfd also fires when the cgroup is removed.
                            if !dir.exists() {
                                return;
                            }
                            publish(shared.clone(), id.clone()).await;
                        }
                        Ok(Err(_)) => return,
                        Err(_would_block) => continue,
                    }
                }
            }))
        }
        MemoryCgroup::V2(dir) => {
            let events = dir.join("memory.events");
            let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).ok()?;
            inotify.add_watch(&events, AddWatchFlags::IN_MODIFY).ok()?;
            let afd = poll(inotify)?;
            let mut seen = oom_kills(&std::fs::read_to_string(&events).unwrap_or_default());
            Some(tokio::spawn(async move {
                loop {
                    let Ok(mut guard) = afd.readable().await else {
                        return;
                    };
                    match guard
                        .try_io(|fd| fd.get_ref().0.read_events().map_err(std::io::Error::from))
                    {
                        Ok(Ok(_)) => {}
                        Ok(Err(_)) => return,
                        Err(_would_block) => continue,
                    }
                    let Ok(text) = std::fs::read_to_string(&events) else {
                        return;
                    };
                    let now = oom_kills(&text);
                    if now > seen {
                        seen = now;
                        publish(shared.clone(), id.clone()).await;
                    }
                }
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_oom_kills() {
        assert_eq!(oom_kills("low 0\nhigh 0\nmax 3\noom 2\noom_kill 1\n"), 1);
        assert_eq!(oom_kills("garbage"), 0);
    }
}
