//! One container: its bundle, rootfs, runc, init process and execs.

use std::{
    collections::HashMap,
    ffi::OsString,
    os::fd::AsFd,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use containerd_shim::{
    asynchronous::util::mount_rootfs, mount::umount_recursive, protos::api::Mount,
};
use serde::{Deserialize, Serialize};

use super::{
    fifo::{self, Started},
    io::{self, StdioRequest},
    process::{Process, Status},
};
use crate::{
    error::{self, Error, Kind, Result},
    idmap,
    runc::{args, Runc},
    sys,
};

/// What `delete` needs after the shim died: written into the bundle at Create.
#[derive(Debug, Serialize, Deserialize)]
pub struct BundleRecord {
    pub runc_binary: PathBuf,
    pub runc_root: PathBuf,
    pub systemd_cgroup: bool,
    pub rootfs_mounted: bool,
}

pub const BUNDLE_RECORD: &str = "crossarch.json";

pub struct Container {
    pub id: String,
    pub namespace: String,
    pub bundle: PathBuf,
    pub runc: Runc,
    pub rootfs_mounted: bool,
    /// Without its own PID namespace, the container's processes outlive its init.
    pub kill_all_on_exit: bool,
    /// Whether the container asked to be privileged; the policy decides what that grants.
    pub privileged: bool,
    /// What the container's private binfmt_misc runs (empty without one).
    pub registered: crate::plan::Registered,
    /// The architecture whose qemu is mounted in the container (wrap mode).
    pub wrapped: Option<crossarch_route::arch::Arch>,
    /// The qemus mounted for the container's tracing init (trace mode; empty otherwise).
    pub traced: crate::plan::Registered,
    /// The init's pidfd, from just after `runc create`.
    pub init_pidfd: std::sync::OnceLock<std::os::fd::OwnedFd>,
    /// The mount that keeps the container's private binfmt_misc alive, until Delete.
    pub binfmt: Mutex<Option<std::os::fd::OwnedFd>>,
    /// Why an exec that runc fails to start may have failed, said with its error.
    pub exec_hint: Option<String>,
    /// The configuration in force for this container (runtime options or config file).
    pub config: crate::config::Config,
    pub init: Arc<Process>,
    pub execs: Mutex<HashMap<String, Arc<Process>>>,
    pub oom: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Held by Start until its event is out, and by exits before theirs: containerd requires
    /// /tasks/start (and /tasks/exec-started) before the same process's /tasks/exit.
    pub lifecycle: tokio::sync::Mutex<()>,
}

/// Mounts the rootfs containerd prepared. On failure nothing stays mounted.
pub async fn mount_rootfs_all(id: &str, bundle: &Path, mounts: &[Mount]) -> Result<bool> {
    if mounts.is_empty() {
        return Ok(false);
    }
    let target = bundle.join("rootfs");
    if let Err(e) = std::fs::create_dir_all(&target) {
        return Err(error::io(
            format!("container {id}: cannot create {}", target.display()),
            e,
        ));
    }
    for m in mounts {
        if let Err(e) = mount_one(bundle, m, &target).await {
            let _ = umount_recursive(target.to_str(), 0);
            let message = format!(
                "container {id}: cannot mount the rootfs ({} {} on {})",
                m.type_,
                m.source,
                target.display()
            );
            let missing = |t: &str| t.contains("No such file") || t.contains("ENOENT");
            let kind = if missing(&message) || missing(&e.to_string()) {
                Kind::NotFound
            } else {
                Kind::Internal
            };
            return Err(Error::new(kind, message)
                .with_source(e)
                .append("; check the snapshotter"));
        }
    }
    Ok(true)
}

/// Where the id-mapped copy of an overlay's lower layers is while overlay is mounted from it.
const IDMAPPED_LOWER: &str = "idmapped-lower";

/// Mounts `m` on `target`, id-mapped where containerd asks for it ([`idmap`]).
async fn mount_one(bundle: &Path, m: &Mount, target: &Path) -> std::io::Result<()> {
    use std::io::Error as IoError;
    let plain_mount = |m: Mount| async move {
        mount_rootfs(&m, target)
            .await
            .map_err(|e| IoError::other(e.to_string()))
    };
    let Some(remap) = idmap::plan(&m.type_, &m.options).map_err(IoError::other)? else {
        return plain_mount(m.clone()).await;
    };
    let userns = crate::ns::user_namespace_with(
        &idmap::map_file(remap.uids()),
        &idmap::map_file(remap.gids()),
    )
    .await
    .map_err(|e| IoError::other(format!("cannot make a user namespace of its mapping: {e}")))?;
    let mut plain = m.clone();
    match remap {
        idmap::Remap::Overlay {
            common,
            lowers,
            options,
            ..
        } => {
            let tree = sys::idmapped_copy(&common, userns.as_fd(), sys::MOUNT_ATTR_RDONLY)
                .map_err(|e| {
                    IoError::other(format!(
                        "cannot id-map the lower layers in {}: {e}",
                        common.display()
                    ))
                })?;
            let at = bundle.join(IDMAPPED_LOWER);
            std::fs::create_dir_all(&at)?;
            let mounted = match sys::attach(&tree, &at) {
                Ok(()) => {
                    plain.options = idmap::overlay_options(&options, &lowers, &at);
                    let mounted = plain_mount(plain).await;
                    // Overlay holds its layers itself; the copy they were found through goes.
                    let _ = nix::mount::umount2(&at, nix::mount::MntFlags::MNT_DETACH);
                    mounted
                }
                Err(e) => Err(e),
            };
            let _ = std::fs::remove_dir(&at);
            mounted
        }
        idmap::Remap::InPlace { options, .. } => {
            plain.options = options;
            plain_mount(plain).await?;
            let tree = sys::idmapped_copy(target, userns.as_fd(), 0)
                .map_err(|e| IoError::other(format!("cannot id-map {}: {e}", target.display())))?;
            // The mapped copy replaces what was mounted.
            nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH)?;
            sys::attach(&tree, target)
        }
    }
}

pub fn unmount_rootfs(bundle: &Path) {
    let target = bundle.join("rootfs");
    if let Err(e) = umount_recursive(target.to_str(), libc::MNT_DETACH) {
        log::warn!("cannot unmount {}: {e}", target.display());
    }
}

fn read_pid(id: &str, path: &Path) -> Result<i32> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| {
            Error::internal(format!(
                "container {id}: runc wrote no pid to {}",
                path.display()
            ))
        })
}

/// Undoes a Create that did not finish, in the reverse order of what it made: runc's
/// container (its init, cgroup and state), the staged host mounts, the rootfs mount. Each is
/// armed as Create makes it; [`Rollback::disarm`] keeps them once the container is served.
pub struct Rollback {
    id: String,
    bundle: PathBuf,
    runc: Option<Runc>,
    staged: bool,
    rootfs: bool,
}

impl Rollback {
    pub fn new(id: &str, bundle: &Path) -> Rollback {
        Rollback {
            id: id.to_string(),
            bundle: bundle.to_path_buf(),
            runc: None,
            staged: false,
            rootfs: false,
        }
    }

    /// The rootfs was mounted under the bundle.
    pub fn mounted_rootfs(&mut self) {
        self.rootfs = true;
    }

    /// Host mounts may have been staged under the bundle.
    pub fn staged(&mut self) {
        self.staged = true;
    }

    /// `runc create` may have made the container.
    pub fn created(&mut self, runc: &Runc) {
        self.runc = Some(runc.clone());
    }

    /// The Create succeeded: nothing is undone.
    pub fn disarm(mut self) {
        self.runc = None;
        self.staged = false;
        self.rootfs = false;
    }

    /// Undoes what is armed.
    pub async fn run(mut self) {
        if let Some(runc) = self.runc.take() {
            let _ = runc
                .run(
                    &crate::error::subject(&self.id, ""),
                    args(["delete", "--force", &self.id]),
                    Default::default(),
                    None,
                )
                .await;
        }
        self.undo_mounts();
    }

    fn undo_mounts(&mut self) {
        if std::mem::take(&mut self.staged) {
            crate::staging::remove(&self.bundle);
        }
        if std::mem::take(&mut self.rootfs) {
            unmount_rootfs(&self.bundle);
        }
    }
}

impl Drop for Rollback {
    /// A Create whose future was dropped half way (containerd went away) leaves no mounts.
    fn drop(&mut self) {
        if self.runc.is_some() || self.staged || self.rootfs {
            log::warn!(
                "container {}: its Create was abandoned; undoing what it made",
                self.id
            );
            self.undo_mounts();
        }
    }
}

impl Container {
    pub fn what(&self, exec_id: &str) -> String {
        crate::error::subject(&self.id, exec_id)
    }

    pub fn process(&self, exec_id: &str) -> Result<Arc<Process>> {
        if exec_id.is_empty() {
            return Ok(self.init.clone());
        }
        self.execs
            .lock()
            .unwrap()
            .get(exec_id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("{}: no such process", self.what(exec_id))))
    }

    /// Whether the init has not been reaped, so `/proc/<init pid>` is still the container's.
    pub fn init_alive(&self) -> bool {
        self.init_pidfd
            .get()
            .is_some_and(|fd| crate::sys::pidfd_alive(std::os::fd::AsFd::as_fd(fd)))
    }

    /// The running container's root, `/proc/<init pid>/root`, for looking at what an exec
    /// will run. It is opened, then the init's pidfd is checked: if the init is still there,
    /// the pid was not reused, and the root is the container's and not some host process's.
    pub fn live_root(&self, exec_id: &str) -> Result<crate::inspect::Root> {
        let gone = || {
            Error::failed_precondition(format!("{}: container is not running", self.what(exec_id)))
        };
        let root = crate::inspect::Root::open(format!("/proc/{}/root", self.init.pid()))
            .map_err(|_| gone())?;
        if !self.init_alive() {
            return Err(gone());
        }
        Ok(root)
    }

    /// Runs `runc create` or `runc exec`: stdio, optional terminal, pid file.
    /// Returns the pid of the new process.
    pub async fn run_process(
        &self,
        p: &Process,
        mut cmd: Vec<OsString>,
        pid_file: &Path,
    ) -> Result<i32> {
        let what = self.what(&p.exec_id);
        let prepared = io::prepare(&p.stdio, &self.id, &self.namespace)
            .await
            .map_err(|e| e.context(&what))?;
        let mut pio = prepared.io;
        let op = cmd.first().cloned().unwrap_or_default();
        let op = op.to_string_lossy();
        let label = format!("{what}: runc {op}");
        let mut tail = vec![OsString::from("--pid-file"), pid_file.into()];
        if let Some(c) = &prepared.console {
            tail.push("--console-socket".into());
            tail.push(c.path().into());
        }
        tail.push(self.id.clone().into());
        cmd.extend(tail);
        let run = self.runc.run(&label, cmd, prepared.runc, None);
        match prepared.console {
            None => run.await.map(drop)?,
            Some(console) => {
                let recv = console.receive(&p.stdio, &mut pio);
                tokio::pin!(run);
                tokio::pin!(recv);
                let mut got = None;
                let ran = loop {
                    tokio::select! {
                        r = &mut run => break r,
                        g = &mut recv, if got.is_none() => got = Some(g),
                    }
                };
                ran?;
                match got {
                    Some(g) => g.map_err(|e| e.context(&what))?,
                    None => recv.await.map_err(|e| e.context(&what))?,
                }
            }
        }
        *p.io.lock().unwrap() = pio;
        let pid = read_pid(&self.id, pid_file)?;
        p.set_pid(pid);
        if !p.exec_id.is_empty() {
            // The reaper runs on this thread, so nothing is reaped between these two lines: a
            // pid with no exit recorded after the open was still this exec's at the open.
            match crate::sys::pidfd_open(pid) {
                Ok(fd) if !crate::reaper::reaped(pid) => {
                    let _ = p.pidfd.set(fd);
                }
                // Gone already: a Kill finds it finished.
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(e) => log::warn!(
                    "{what}: cannot open a pidfd for pid {pid} ({e}); signals to it will be \
                     refused as if it had finished. Raise the shim's open-file limit if it is \
                     reached"
                ),
            }
        }
        Ok(pid)
    }

    pub async fn create(&self, no_pivot: bool, no_new_keyring: bool) -> Result<i32> {
        let mut cmd = vec![
            OsString::from("create"),
            "--bundle".into(),
            self.bundle.clone().into(),
        ];
        if no_pivot {
            cmd.push("--no-pivot".into());
        }
        if no_new_keyring {
            cmd.push("--no-new-keyring".into());
        }
        self.run_process(&self.init, cmd, &self.bundle.join("init.pid"))
            .await
    }

    /// Why Start fails for a container whose init ended after `runc create`.
    pub fn died_before_start(&self) -> Error {
        Error::failed_precondition(format!(
            "container {}: cannot start: its process is already dead (it ended after it was \
             created, before its program ran: killed, or out of memory); runc's log {} may say \
             why",
            self.id,
            self.runc.log.display()
        ))
    }

    /// Lets the init's program run: through runc's exec fifo, which the shim reads as
    /// `runc start` does ([`fifo`]), or with `runc start` where that is not runc's protocol.
    pub async fn start_init(&self) -> Result<()> {
        let what = format!("container {}", self.id);
        let notify_socket = std::env::var_os("NOTIFY_SOCKET").is_some();
        let fifo = self.runc.exec_fifo(&self.id, notify_socket);
        if let (Some(path), Some(pidfd)) = (fifo, self.init_pidfd.get()) {
            let t0 = std::time::Instant::now();
            match fifo::start(&path, pidfd.as_fd()).await {
                Ok(Started::Yes) => {
                    log::debug!(
                        "{what}: started through runc's exec fifo in {} µs",
                        t0.elapsed().as_micros()
                    );
                    return Ok(());
                }
                Ok(Started::InitEnded) => return Err(self.died_before_start()),
                Ok(Started::NoFifo) => {}
                Err(e) => {
                    return Err(error::io(
                        format!(
                            "{what}: cannot start through runc's exec fifo {}",
                            path.display()
                        ),
                        e,
                    ))
                }
            }
        }
        self.runc
            .run(
                &format!("{what}: runc start"),
                args(["start", &self.id]),
                Default::default(),
                None,
            )
            .await
            .map(drop)
    }

    pub async fn start_exec(&self, p: &Process) -> Result<i32> {
        let spec_path = self.bundle.join(format!(".exec-{}.json", p.exec_id));
        std::fs::write(&spec_path, &p.spec).map_err(|e| {
            error::io(
                format!("{}: cannot write its process spec", self.what(&p.exec_id)),
                e,
            )
        })?;
        let cmd = vec![
            OsString::from("exec"),
            "--detach".into(),
            "--process".into(),
            spec_path.clone().into(),
        ];
        let pid_file = self.bundle.join(format!(".exec-{}.pid", p.exec_id));
        let r = self.run_process(p, cmd, &pid_file).await;
        let r = match (r, &self.exec_hint) {
            // runc 1.1: "error executing setns process"; later ones name the namespace.
            (Err(e), Some(hint)) if e.to_string().contains("setns") => {
                Err(e.append(&format!("; {hint}")))
            }
            (r, _) => r,
        };
        let _ = std::fs::remove_file(&spec_path);
        let _ = std::fs::remove_file(&pid_file);
        r
    }

    pub async fn kill(&self, exec_id: &str, signal: u32, all: bool) -> Result<()> {
        let p = self.process(exec_id)?;
        let what = self.what(exec_id);
        if p.status() == Status::Stopped {
            return Err(Error::not_found(format!(
                "{what}: process already finished"
            )));
        }
        if !exec_id.is_empty() {
            if p.status() == Status::Created {
                return Err(Error::failed_precondition(format!(
                    "{what}: process not started yet"
                )));
            }
            let sig = nix::sys::signal::Signal::try_from(signal as i32)
                .map_err(|_| Error::invalid_argument(format!("{what}: invalid signal {signal}")))?;
            let finished = || Error::not_found(format!("{what}: process already finished"));
            // Without a pidfd the exec was gone before it could be opened.
            let pidfd = p.pidfd.get().ok_or_else(finished)?;
            return crate::sys::pidfd_signal(std::os::fd::AsFd::as_fd(pidfd), sig as i32).map_err(
                |e| {
                    if e.raw_os_error() == Some(libc::ESRCH) {
                        finished()
                    } else {
                        Error::internal(format!("{what}: kill")).with_source(e)
                    }
                },
            );
        }
        let mut cmd = vec![OsString::from("kill")];
        if all {
            cmd.push("--all".into());
        }
        cmd.push(self.id.clone().into());
        cmd.push(signal.to_string().into());
        match self
            .runc
            .run(&format!("{what}: runc kill"), cmd, Default::default(), None)
            .await
        {
            // runc cannot signal a container whose init just exited; containerd expects NotFound.
            Err(e)
                if e.kind() == Kind::FailedPrecondition
                    && (p.status() == Status::Stopped || e.to_string().contains("not running")) =>
            {
                Err(Error::not_found(format!(
                    "{what}: process already finished"
                )))
            }
            r => r.map(drop),
        }
    }

    /// Deletes the runc container and unmounts the rootfs.
    pub async fn destroy(&self) -> Result<()> {
        let what = format!("container {}: runc delete", self.id);
        let force = self.init.status() != Status::Stopped;
        let cmd = if force {
            args(["delete", "--force", &self.id])
        } else {
            args(["delete", &self.id])
        };
        let r = self.runc.run(&what, cmd, Default::default(), None).await;
        if let Err(e) = &r {
            if e.kind() != Kind::NotFound {
                log::warn!("{e}");
            }
        }
        if let Some(h) = self.oom.lock().unwrap().take() {
            h.abort();
        }
        if force {
            // The init was killed by runc: give the reaper a moment so its exit is recorded.
            self.init.wait_for(Duration::from_secs(2)).await;
        }
        self.init.drain_io(Duration::from_secs(5)).await;
        // The container's processes are gone: what their IO holds goes too, for execs that
        // were never deleted as much as for the init.
        self.init.io.lock().unwrap().release();
        let execs: Vec<_> = self.execs.lock().unwrap().values().cloned().collect();
        for p in execs {
            p.io.lock().unwrap().release();
        }
        crate::staging::remove(&self.bundle);
        // The last mount of the private binfmt_misc: its entries go with it.
        self.binfmt.lock().unwrap().take();
        if self.rootfs_mounted {
            unmount_rootfs(&self.bundle);
        }
        match r {
            Err(e) if e.kind() != Kind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    pub fn new_exec(
        &self,
        exec_id: &str,
        stdio: StdioRequest,
        spec: Vec<u8>,
    ) -> Result<Arc<Process>> {
        let mut execs = self.execs.lock().unwrap();
        if execs.contains_key(exec_id) {
            return Err(Error::already_exists(format!(
                "{}: already exists",
                self.what(exec_id)
            )));
        }
        let p = Arc::new(Process::new(exec_id, stdio, spec));
        execs.insert(exec_id.to_string(), p.clone());
        Ok(p)
    }
}
