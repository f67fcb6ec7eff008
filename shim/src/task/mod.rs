//! The Task API containerd calls, with the events it expects in the order it expects.

mod cgroup;
mod container;
mod events;
mod fifo;
mod io;
mod oom;
mod process;
mod stats;
#[cfg(test)]
mod tests;

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use containerd_shim::{
    asynchronous::{publisher::RemotePublisher, ExitSignal},
    protos::{
        api::{self, Empty},
        events::task::{
            TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO, TaskPaused,
            TaskResumed, TaskStart,
        },
        protobuf::{well_known_types::any::Any, MessageField},
        shim::oci::ProcessDetails,
        ttrpc::{self, r#async::TtrpcContext},
        types::task::ProcessInfo,
    },
    Task,
};

use container::Container;
pub use container::{unmount_rootfs, BundleRecord, BUNDLE_RECORD};
use io::StdioRequest;
pub use process::timestamp;
use process::{Process, Status};

use crate::{
    config::{self, Config},
    error::{Error, Result},
    reaper,
    runc::{args, Runc},
};

/// How long an exit waits for the process's output to be delivered.
const OUTPUT_DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// How long reading a container's files at Create or Exec may take. A file lease, or a hung
/// FUSE or NFS volume, can block a read for long (lease-break-time is 45 s) or forever; the
/// other containers of the shim must not wait for it, so the reads run off the runtime.
const INSPECTION_LIMIT: Duration = Duration::from_secs(10);

/// How long Shutdown waits for containerd to take the events queued before it.
const SHUTDOWN_FLUSH_LIMIT: Duration = Duration::from_secs(3);

/// Runs `f`, which reads a container's files (untrusted, possibly hung), on a blocking
/// thread, bounded by [`INSPECTION_LIMIT`].
async fn inspect_off_runtime<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::time::timeout(INSPECTION_LIMIT, tokio::task::spawn_blocking(f)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(Error::internal(format!("{what}: inspection failed")).with_source(e)),
        Err(_) => Err(Error::deadline_exceeded(format!(
            "{what}: reading the binary it runs took longer than {INSPECTION_LIMIT:?} (a hung \
             volume, or a file lease held by another process); check the container's volumes \
             and retry"
        ))),
    }
}

pub struct TaskService {
    shared: Arc<Shared>,
}

struct Shared {
    namespace: String,
    containers: Mutex<HashMap<String, Arc<Container>>>,
    /// Creates under way, and whether the shim is closing: a Shutdown while a Create runs
    /// must not end the shim under it (the container it makes is not in `containers` yet),
    /// and a second Create of the same id must not run beside it.
    membership: Mutex<Membership>,
    events: events::Events,
    exit: Arc<ExitSignal>,
    /// Whether containerd ever sent a Create: from then on it stops this shim itself.
    created: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct Membership {
    /// The ids of the Creates under way.
    creating: HashSet<String>,
    closing: bool,
}

/// One Create under way, recorded in [`Shared::membership`] until dropped.
struct Creating<'a>(&'a Shared, String);

impl Drop for Creating<'_> {
    fn drop(&mut self) {
        self.0.membership.lock().unwrap().creating.remove(&self.1);
    }
}

/// How often a shim that no Create reached looks whether its bundle is still there.
const ORPHAN_CHECK: Duration = Duration::from_secs(1);

impl TaskService {
    pub fn new(namespace: &str, publisher: RemotePublisher, exit: Arc<ExitSignal>) -> TaskService {
        let shared = Arc::new(Shared {
            namespace: namespace.to_string(),
            containers: Mutex::new(HashMap::new()),
            membership: Mutex::new(Membership::default()),
            // The crate's publisher may reorder and drop events (see `events`); it is left
            // idle.
            events: events::Events::start(&publisher.address, namespace),
            exit,
            created: std::sync::atomic::AtomicBool::new(false),
        });
        exit_if_orphaned(Arc::downgrade(&shared));
        crate::facts::prefetch();
        TaskService { shared }
    }
}

/// containerd may give up on a shim after its start action succeeded (it cannot write
/// `shim-binary-path` into a full bundle, say) and remove the bundle without ever
/// connecting, or stopping the shim. A shim that no Create reached and whose bundle (its
/// working directory) is gone exits, as runc-v2's does, instead of staying forever.
fn exit_if_orphaned(shared: std::sync::Weak<Shared>) {
    let Ok(bundle) = std::env::current_dir() else {
        return;
    };
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(ORPHAN_CHECK).await;
            let Some(s) = shared.upgrade() else { return };
            if s.created.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            if !bundle.exists() {
                log::warn!(
                    "bundle {} is gone and no container was created: containerd gave up on \
                     this shim, which exits",
                    bundle.display()
                );
                s.exit.signal();
                return;
            }
        }
    });
}

impl Shared {
    /// Records a Create of `id` under way until the guard is dropped, unless the shim is
    /// closing or `id` is being created already. The guard must outlive the container's
    /// insertion into `containers`, so that a duplicate always finds one or the other.
    fn begin_create(&self, id: &str) -> Result<Creating<'_>> {
        let mut m = self.membership.lock().unwrap();
        if m.closing {
            return Err(Error::failed_precondition(format!(
                "container {id}: this shim is shutting down (the last container of its group \
                 was deleted); retry to start a new one"
            )));
        }
        if !m.creating.insert(id.to_string()) {
            return Err(Error::already_exists(format!(
                "container {id}: already being created"
            )));
        }
        Ok(Creating(self, id.to_string()))
    }

    /// Whether the shim may exit on a Shutdown that is not `now`: it serves no container and
    /// none is being created. Once it says yes, Creates are refused.
    fn close_if_idle(&self) -> bool {
        let mut m = self.membership.lock().unwrap();
        if !m.creating.is_empty() || !self.containers.lock().unwrap().is_empty() {
            return false;
        }
        m.closing = true;
        true
    }

    fn container(&self, id: &str) -> Result<Arc<Container>> {
        self.containers
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("container {id}: not found in this shim")))
    }

    /// Queues an event for containerd; it never waits (see `events`).
    async fn publish<E: events::Event>(&self, event: E) {
        self.events.send(event);
    }

    /// Watches `p`'s pid and records its exit, then tells containerd.
    fn watch_exit(self: &Arc<Self>, c: Arc<Container>, p: Arc<Process>) {
        let rx = reaper::watch(p.pid());
        let shared = self.clone();
        tokio::spawn(async move {
            let Ok(exit) = rx.await else { return };
            if p.exec_id.is_empty() {
                if c.kill_all_on_exit {
                    let _ = c
                        .runc
                        .run(
                            &c.what(""),
                            args(["kill", "--all", &c.id, "9"]),
                            Default::default(),
                            None,
                        )
                        .await;
                }
                // containerd expects the execs' exits before the init's.
                let execs: Vec<_> = c.execs.lock().unwrap().values().cloned().collect();
                for e in execs
                    .iter()
                    .filter(|e| e.status() == Status::Running || e.status() == Status::Paused)
                {
                    e.wait_for(Duration::from_secs(2)).await;
                }
            }
            // Once containerd hears of the exit, its client stops reading; output still in
            // flight in a copy thread would be lost. A child that outlives the process may
            // hold the pipe open, hence the bound.
            if !p.drain_io(OUTPUT_DRAIN_LIMIT).await {
                log::debug!("{}: output still open after it exited", c.what(&p.exec_id));
            }
            let _started = c.lifecycle.lock().await;
            p.set_exited(exit.status as u32, exit.at);
            log::debug!("{} exited with status {}", c.what(&p.exec_id), exit.status);
            shared
                .publish(TaskExit {
                    container_id: c.id.clone(),
                    id: if p.exec_id.is_empty() {
                        c.id.clone()
                    } else {
                        p.exec_id.clone()
                    },
                    pid: exit.pid as u32,
                    exit_status: exit.status as u32,
                    exited_at: timestamp(exit.at),
                    ..Default::default()
                })
                .await;
        });
    }

    async fn create(
        self: &Arc<Self>,
        req: api::CreateTaskRequest,
    ) -> Result<api::CreateTaskResponse> {
        self.created
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let id = req.id.clone();
        // An empty bundle would resolve against the shim's working directory: the bundle of
        // the container whose start launched this shim, which must never be re-prepared.
        if id.is_empty() || !std::path::Path::new(&req.bundle).is_absolute() {
            return Err(Error::invalid_argument(format!(
                "container {id:?}: Create needs an id and an absolute bundle path (got bundle {:?})",
                req.bundle
            )));
        }
        let _creating = self.begin_create(&id)?;
        if self.containers.lock().unwrap().contains_key(&id) {
            return Err(Error::already_exists(format!(
                "container {id}: already exists"
            )));
        }
        let mut undo = container::Rollback::new(&id, std::path::Path::new(&req.bundle));
        let (c, pid) = match self.build(&req, &mut undo).await {
            Ok(built) => {
                undo.disarm();
                built
            }
            Err(e) => {
                undo.run().await;
                return Err(e);
            }
        };
        self.containers
            .lock()
            .unwrap()
            .insert(id.clone(), c.clone());
        self.watch_exit(c.clone(), c.init.clone());
        *c.oom.lock().unwrap() = oom::watch(self.clone(), id.clone(), pid);
        log::info!("container {id}: created, init pid {pid}");
        self.publish(TaskCreate {
            container_id: id,
            bundle: req.bundle,
            rootfs: req.rootfs,
            io: MessageField::some(TaskIO {
                stdin: req.stdin,
                stdout: req.stdout,
                stderr: req.stderr,
                terminal: req.terminal,
                ..Default::default()
            }),
            checkpoint: req.checkpoint,
            pid: pid as u32,
            ..Default::default()
        })
        .await;
        Ok(api::CreateTaskResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }

    /// Everything Create makes, each step armed in `undo` as it is made.
    async fn build(
        self: &Arc<Self>,
        req: &api::CreateTaskRequest,
        undo: &mut container::Rollback,
    ) -> Result<(Arc<Container>, i32)> {
        let id = req.id.clone();
        let resolved = config::resolve(req.options.as_ref(), || {
            Config::load(&Config::default_file())
        })?;
        let bundle = PathBuf::from(&req.bundle);
        let mut doc = crate::spec::Document::load(&id, &bundle)?;
        let view = crate::view::ContainerView::read(&id, &bundle, &mut doc)?;
        let (privileged, own_pid_namespace) = (view.privileged, view.own_pid_namespace());
        if req.rootfs.is_empty() && !view.rootfs.is_dir() {
            return Err(Error::not_found(format!(
                "container {id}: rootfs {} does not exist and no rootfs mounts were given",
                view.rootfs.display()
            )));
        }
        let cfg = &resolved.config.runc;
        let runc = Runc {
            binary: cfg.binary.clone().into(),
            root: crate::runc::root_for(&cfg.root, &self.namespace),
            systemd_cgroup: cfg.systemd_cgroup,
            log: bundle.join("log.json"),
        };
        let rootfs_mounted = container::mount_rootfs_all(&id, &bundle, &req.rootfs).await?;
        if rootfs_mounted {
            undo.mounted_rootfs();
        }
        let started = std::time::Instant::now();
        let prepared = {
            let config = resolved.config.clone();
            inspect_off_runtime(&format!("container {id}"), move || {
                crate::prepare::create(&config, &view, &mut doc)
            })
            .await
        }
        .and_then(|p| {
            undo.staged();
            crate::staging::stage(&id, &bundle, &p.staged).map_err(Error::internal)?;
            Ok(p)
        });
        log::debug!(
            "container {id}: inspected and prepared in {} µs",
            started.elapsed().as_micros()
        );
        let mut exec_hint = None;
        if prepared.as_ref().is_ok_and(|p| p.exec_needs_two_stage_runc)
            && runc
                .version()
                .await
                .is_some_and(|v| crate::runc::joins_user_namespace_first(&v))
        {
            log::warn!("container {id}: exec will fail: {}", crate::plan::EXEC_HINT);
            exec_hint = Some(crate::plan::EXEC_HINT.to_string());
        }
        let prepared = prepared?;
        let record = BundleRecord {
            runc_binary: runc.binary.clone(),
            runc_root: runc.root.clone(),
            systemd_cgroup: runc.systemd_cgroup,
            rootfs_mounted,
        };
        if let Err(e) = std::fs::write(
            bundle.join(BUNDLE_RECORD),
            serde_json::to_vec(&record).unwrap_or_default(),
        ) {
            log::warn!(
                "container {id}: cannot record its runc settings in the bundle ({e}); if this \
                 shim dies, cleanup falls back to the default runc root"
            );
        }
        let stdio = StdioRequest {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let c = Arc::new(Container {
            id: id.clone(),
            namespace: self.namespace.clone(),
            bundle: bundle.clone(),
            runc,
            rootfs_mounted,
            kill_all_on_exit: !own_pid_namespace,
            registered: prepared.registered,
            wrapped: prepared.wrapped,
            traced: prepared.traced,
            init_pidfd: std::sync::OnceLock::new(),
            binfmt: Mutex::new(None),
            exec_hint,
            privileged,
            config: resolved.config.clone(),
            init: Arc::new(Process::new("", stdio, Vec::new())),
            execs: Mutex::new(HashMap::new()),
            oom: Mutex::new(None),
            lifecycle: tokio::sync::Mutex::new(()),
        });
        let opts = resolved.runc_options.unwrap_or_default();
        undo.created(&c.runc);
        let pid = c.create(opts.no_pivot_root, opts.no_new_keyring).await?;
        // The init waits for Start, so its pid cannot be reused before this: from here on
        // the pidfd tells whether /proc/<pid> is still the container's.
        let pidfd = crate::sys::pidfd_open(pid).map_err(|e| match e.raw_os_error() {
            // Killed and reaped already.
            Some(libc::ESRCH) => c.died_before_start(),
            _ => crate::error::io(
                format!("container {id}: cannot open a pidfd for its init"),
                e,
            ),
        })?;
        if !c.registered.is_empty() {
            let t0 = std::time::Instant::now();
            let mnt = crate::private_binfmt::register(
                &id,
                std::os::fd::AsFd::as_fd(&pidfd),
                &c.registered,
            )
            .await
            .map_err(Error::failed_precondition)?;
            *c.binfmt.lock().unwrap() = Some(mnt);
            log::debug!(
                "container {id}: private binfmt_misc registered in {} µs",
                t0.elapsed().as_micros()
            );
        }
        let _ = c.init_pidfd.set(pidfd);
        Ok((c, pid))
    }

    async fn start(self: &Arc<Self>, req: api::StartRequest) -> Result<api::StartResponse> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        let _lifecycle = c.lifecycle.lock().await;
        if p.died_before_start() {
            return Err(c.died_before_start());
        }
        if p.status() != Status::Created {
            return Err(Error::failed_precondition(format!(
                "{}: already started",
                c.what(&req.exec_id)
            )));
        }
        let pid = if req.exec_id.is_empty() {
            c.start_init().await?;
            p.set_status(Status::Running);
            self.publish(TaskStart {
                container_id: c.id.clone(),
                pid: p.pid() as u32,
                ..Default::default()
            })
            .await;
            p.pid()
        } else {
            if c.init.status() == Status::Stopped {
                return Err(Error::failed_precondition(format!(
                    "{}: container is not running",
                    c.what(&req.exec_id)
                )));
            }
            let pid = c
                .start_exec(&p)
                .await
                .inspect_err(|_| p.set_exited(255, std::time::SystemTime::now()))?;
            p.set_status(Status::Running);
            self.watch_exit(c.clone(), p.clone());
            self.publish(TaskExecStarted {
                container_id: c.id.clone(),
                exec_id: req.exec_id.clone(),
                pid: pid as u32,
                ..Default::default()
            })
            .await;
            pid
        };
        Ok(api::StartResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }

    async fn delete(self: &Arc<Self>, req: api::DeleteRequest) -> Result<api::DeleteResponse> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        let what = c.what(&req.exec_id);
        if matches!(p.status(), Status::Running | Status::Paused) {
            return Err(Error::failed_precondition(format!(
                "{what}: still running; kill it first"
            )));
        }
        if req.exec_id.is_empty() {
            c.destroy().await?;
            self.containers.lock().unwrap().remove(&c.id);
        } else {
            p.drain_io(Duration::from_secs(5)).await;
            p.io.lock().unwrap().release();
            c.execs.lock().unwrap().remove(&req.exec_id);
        }
        let exited = p.exited();
        let resp = api::DeleteResponse {
            pid: p.pid() as u32,
            exit_status: exited.map_or(0, |e| e.status),
            exited_at: exited.map_or_else(MessageField::none, |e| timestamp(e.at)),
            ..Default::default()
        };
        if req.exec_id.is_empty() {
            log::info!("container {}: deleted", c.id);
            self.publish(TaskDelete {
                container_id: c.id.clone(),
                pid: resp.pid,
                exit_status: resp.exit_status,
                exited_at: resp.exited_at.clone(),
                id: c.id.clone(),
                ..Default::default()
            })
            .await;
        }
        Ok(resp)
    }

    async fn exec(self: &Arc<Self>, req: api::ExecProcessRequest) -> Result<()> {
        let c = self.container(&req.id)?;
        let what = c.what(&req.exec_id);
        if c.init.status() == Status::Stopped {
            return Err(Error::failed_precondition(format!(
                "{what}: container is not running"
            )));
        }
        let raw = req
            .spec
            .as_ref()
            .map(|a| a.value.clone())
            .unwrap_or_default();
        let slot: serde_json::Value = serde_json::from_slice(&raw).map_err(|e| {
            Error::invalid_argument(format!("{what}: invalid process spec")).with_source(e)
        })?;
        let root = c.live_root(&req.exec_id)?;
        let spec = {
            let (id, exec_id, config) = (c.id.clone(), req.exec_id.clone(), c.config.clone());
            let (privileged, terminal) = (c.privileged, req.terminal);
            let (registered, wrapped, traced) = (c.registered.clone(), c.wrapped, c.traced.clone());
            inspect_off_runtime(&what, move || {
                let ctx = crate::plan::ExecContext {
                    id: &id,
                    exec_id: &exec_id,
                    config: &config,
                    privileged,
                    terminal,
                    registered: &registered,
                    wrapped,
                    traced: &traced,
                };
                crate::prepare::exec(&ctx, &root, slot)
            })
            .await?
        };
        let stdio = StdioRequest {
            stdin: req.stdin,
            stdout: req.stdout,
            stderr: req.stderr,
            terminal: req.terminal,
        };
        c.new_exec(&req.exec_id, stdio, spec)?;
        self.publish(TaskExecAdded {
            container_id: c.id.clone(),
            exec_id: req.exec_id,
            ..Default::default()
        })
        .await;
        Ok(())
    }

    async fn pause_resume(self: &Arc<Self>, id: &str, pause: bool) -> Result<()> {
        let c = self.container(id)?;
        let op = if pause { "pause" } else { "resume" };
        c.runc
            .run(
                &format!("container {id}: runc {op}"),
                args([op, id]),
                Default::default(),
                None,
            )
            .await?;
        if pause {
            c.init.set_status(Status::Paused);
            self.publish(TaskPaused {
                container_id: id.into(),
                ..Default::default()
            })
            .await;
        } else {
            c.init.set_status(Status::Running);
            self.publish(TaskResumed {
                container_id: id.into(),
                ..Default::default()
            })
            .await;
        }
        Ok(())
    }

    async fn pids(&self, id: &str) -> Result<api::PidsResponse> {
        let c = self.container(id)?;
        let pids = c.runc.ps(id).await?;
        let execs: HashMap<i32, String> = c
            .execs
            .lock()
            .unwrap()
            .values()
            .map(|p| (p.pid(), p.exec_id.clone()))
            .collect();
        let processes = pids
            .into_iter()
            .map(|pid| {
                let info = execs.get(&pid).and_then(|exec_id| {
                    let d = ProcessDetails {
                        exec_id: exec_id.clone(),
                        ..Default::default()
                    };
                    Some(Any {
                        type_url: "containerd.runc.v1.ProcessDetails".into(),
                        value: containerd_shim::protos::protobuf::Message::write_to_bytes(&d)
                            .ok()?,
                        ..Default::default()
                    })
                });
                ProcessInfo {
                    pid: pid as u32,
                    info: info.into(),
                    ..Default::default()
                }
            })
            .collect();
        Ok(api::PidsResponse {
            processes,
            ..Default::default()
        })
    }

    async fn update(&self, req: api::UpdateTaskRequest) -> Result<()> {
        let c = self.container(&req.id)?;
        let json = req
            .resources
            .as_ref()
            .map(|a| a.value.clone())
            .unwrap_or_default();
        serde_json::from_slice::<oci_spec::runtime::LinuxResources>(&json).map_err(|e| {
            Error::invalid_argument(format!("container {}: invalid resources", req.id))
                .with_source(e)
        })?;
        c.runc
            .run(
                &format!("container {}: runc update", req.id),
                args(["update", "--resources", "-", &req.id]),
                Default::default(),
                Some(json),
            )
            .await
            .map(drop)
    }
}

fn task<T>(r: Result<T>) -> ttrpc::Result<T> {
    r.map_err(|e| {
        log::debug!("request failed: {e}");
        e.into()
    })
}

#[async_trait]
impl Task for TaskService {
    async fn state(
        &self,
        _: &TtrpcContext,
        req: api::StateRequest,
    ) -> ttrpc::Result<api::StateResponse> {
        task((|| {
            let c = self.shared.container(&req.id)?;
            let p = c.process(&req.exec_id)?;
            Ok(p.state(&c.id, &c.bundle.to_string_lossy()))
        })())
    }

    async fn create(
        &self,
        _: &TtrpcContext,
        req: api::CreateTaskRequest,
    ) -> ttrpc::Result<api::CreateTaskResponse> {
        task(self.shared.create(req).await)
    }

    async fn start(
        &self,
        _: &TtrpcContext,
        req: api::StartRequest,
    ) -> ttrpc::Result<api::StartResponse> {
        task(self.shared.start(req).await)
    }

    async fn delete(
        &self,
        _: &TtrpcContext,
        req: api::DeleteRequest,
    ) -> ttrpc::Result<api::DeleteResponse> {
        task(self.shared.delete(req).await)
    }

    async fn pids(
        &self,
        _: &TtrpcContext,
        req: api::PidsRequest,
    ) -> ttrpc::Result<api::PidsResponse> {
        task(self.shared.pids(&req.id).await)
    }

    async fn pause(&self, _: &TtrpcContext, req: api::PauseRequest) -> ttrpc::Result<Empty> {
        task(
            self.shared
                .pause_resume(&req.id, true)
                .await
                .map(|_| Empty::new()),
        )
    }

    async fn resume(&self, _: &TtrpcContext, req: api::ResumeRequest) -> ttrpc::Result<Empty> {
        task(
            self.shared
                .pause_resume(&req.id, false)
                .await
                .map(|_| Empty::new()),
        )
    }

    async fn checkpoint(
        &self,
        _: &TtrpcContext,
        req: api::CheckpointTaskRequest,
    ) -> ttrpc::Result<Empty> {
        task(Err(Error::unimplemented(format!(
            "container {}: checkpoint is not supported by crossarch; use io.containerd.runc.v2 for CRIU checkpoints",
            req.id
        ))))
    }

    async fn kill(&self, _: &TtrpcContext, req: api::KillRequest) -> ttrpc::Result<Empty> {
        task(
            async {
                let c = self.shared.container(&req.id)?;
                c.kill(&req.exec_id, req.signal, req.all).await?;
                Ok(Empty::new())
            }
            .await,
        )
    }

    async fn exec(&self, _: &TtrpcContext, req: api::ExecProcessRequest) -> ttrpc::Result<Empty> {
        task(self.shared.exec(req).await.map(|_| Empty::new()))
    }

    async fn resize_pty(
        &self,
        _: &TtrpcContext,
        req: api::ResizePtyRequest,
    ) -> ttrpc::Result<Empty> {
        task((|| {
            let c = self.shared.container(&req.id)?;
            let p = c.process(&req.exec_id)?;
            p.io.lock().unwrap().resize(req.width, req.height)?;
            Ok(Empty::new())
        })())
    }

    async fn close_io(&self, _: &TtrpcContext, req: api::CloseIORequest) -> ttrpc::Result<Empty> {
        task((|| {
            let c = self.shared.container(&req.id)?;
            let p = c.process(&req.exec_id)?;
            if req.stdin {
                p.io.lock().unwrap().close_stdin();
            }
            Ok(Empty::new())
        })())
    }

    async fn update(&self, _: &TtrpcContext, req: api::UpdateTaskRequest) -> ttrpc::Result<Empty> {
        task(self.shared.update(req).await.map(|_| Empty::new()))
    }

    async fn wait(
        &self,
        _: &TtrpcContext,
        req: api::WaitRequest,
    ) -> ttrpc::Result<api::WaitResponse> {
        let p = task(
            self.shared
                .container(&req.id)
                .and_then(|c| c.process(&req.exec_id)),
        )?;
        let e = p.wait().await;
        Ok(api::WaitResponse {
            exit_status: e.status,
            exited_at: timestamp(e.at),
            ..Default::default()
        })
    }

    async fn stats(
        &self,
        _: &TtrpcContext,
        req: api::StatsRequest,
    ) -> ttrpc::Result<api::StatsResponse> {
        task((|| {
            let c = self.shared.container(&req.id)?;
            let stats = stats::collect(&c.id, c.init.pid())?;
            // Read through /proc/<pid>: only the container's if its init still holds the pid.
            if !c.init_alive() {
                return Err(Error::not_found(format!(
                    "container {}: not running, so it has no metrics",
                    c.id
                )));
            }
            Ok(api::StatsResponse {
                stats: MessageField::some(stats),
                ..Default::default()
            })
        })())
    }

    async fn connect(
        &self,
        _: &TtrpcContext,
        req: api::ConnectRequest,
    ) -> ttrpc::Result<api::ConnectResponse> {
        let task_pid = self
            .shared
            .container(&req.id)
            .map(|c| c.init.pid() as u32)
            .unwrap_or(0);
        Ok(api::ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        })
    }

    async fn shutdown(&self, _: &TtrpcContext, req: api::ShutdownRequest) -> ttrpc::Result<Empty> {
        if !req.now && !self.shared.close_if_idle() {
            return Ok(Empty::new());
        }
        // The last events (a container's delete) must reach containerd before the shim
        // exits; a containerd that does not take them does not hold the shim up for long.
        // Off the request: containerd may hang up without waiting for the answer, and the
        // request's future is then dropped, with the exit it was to signal.
        let shared = self.shared.clone();
        tokio::spawn(async move {
            if !shared.events.flush(SHUTDOWN_FLUSH_LIMIT).await {
                log::warn!(
                    "shutting down although containerd did not take the last events within \
                     {SHUTDOWN_FLUSH_LIMIT:?}: they are dropped"
                );
            }
            shared.exit.signal();
        });
        Ok(Empty::new())
    }
}
