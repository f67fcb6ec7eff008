//! The shim protocol around the Task API: `start` (one shim per pod group), `delete` (cleanup
//! after a dead shim), and serving.

use std::{
    io::{Read, Write},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Arc, OnceLock},
    time::SystemTime,
};

use async_trait::async_trait;
use containerd_shim::{
    asynchronous::{publisher::RemotePublisher, ExitSignal, Shim},
    protos::protobuf::well_known_types::any::Any,
    Config, DeleteResponse, Error as ShimError, Flags, StartOpts,
};

use crate::{
    bootstrap, logger, reaper,
    runc::{args, Runc},
    task::{BundleRecord, TaskService, BUNDLE_RECORD},
};

/// Annotations that put several containers in one shim, as containerd's runc shim does.
const GROUP_ANNOTATIONS: [&str; 2] = [
    "io.kubernetes.cri.sandbox-id",
    "io.containerd.runc.v2.group",
];

pub struct Service {
    namespace: String,
    id: String,
    debug: bool,
    exit: Arc<ExitSignal>,
}

/// The shim group a container belongs to: its pod sandbox, an explicit group, or itself.
pub fn grouping(id: &str, spec_json: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Partial {
        #[serde(default)]
        annotations: std::collections::HashMap<String, String>,
    }
    let Ok(spec) = serde_json::from_slice::<Partial>(spec_json) else {
        return id.to_string();
    };
    GROUP_ANNOTATIONS
        .iter()
        .find_map(|k| spec.annotations.get(*k).filter(|v| !v.is_empty()).cloned())
        .unwrap_or_else(|| id.to_string())
}

fn other(msg: String) -> ShimError {
    ShimError::Other(msg)
}

/// Writes the shim's address into the bundle (the working directory), where containerd
/// and `delete` read it.
fn write_address(id: &str, address: &str) -> Result<(), ShimError> {
    std::fs::write("address", address).map_err(|e| {
        let bundle = std::env::current_dir().unwrap_or_default();
        let hint = if e.raw_os_error() == Some(libc::ENOSPC) {
            "; free space on the file system of containerd's state dir"
        } else {
            ""
        };
        other(format!(
            "container {id}: cannot write the shim's address into its bundle {}: {e}{hint}",
            bundle.display()
        ))
    })
}

/// What containerd wrote on the start action's stdin (see `main`).
static START_INPUT: OnceLock<Vec<u8>> = OnceLock::new();

pub fn set_start_input(input: Vec<u8>) {
    let _ = START_INPUT.set(input);
}

/// Puts the shim in the cgroup and OOM position containerd asked for. Neither is fatal: some
/// nodes lack CAP_SYS_RESOURCE, and a shim that refuses to start over it helps nobody.
fn place_shim(pid: u32, options: Option<&Any>) {
    if let Some(opts) = bootstrap::runc_options(options) {
        if !opts.shim_cgroup.is_empty() {
            if let Err(e) = containerd_shim::cgroup::add_task_to_cgroup(&opts.shim_cgroup, pid) {
                log::warn!("cannot move the shim into cgroup {}: {e}", opts.shim_cgroup);
            }
        }
    }
    if let Err(e) = containerd_shim::cgroup::adjust_oom_score(pid) {
        log::warn!("cannot adjust the shim's oom_score_adj (needs CAP_SYS_RESOURCE): {e}");
    }
}

/// The start action: one shim per group, its address in the bundle. Returns what to print,
/// in the protocol containerd spoke (see `bootstrap`).
fn start(opts: StartOpts) -> Result<Vec<u8>, ShimError> {
    let input = START_INPUT.get().map(Vec::as_slice).unwrap_or_default();
    let boot = bootstrap::decide(
        input,
        &bootstrap::Flags {
            id: &opts.id,
            namespace: &opts.namespace,
            address: &opts.address,
            ttrpc_address: &opts.ttrpc_address,
            debug: opts.debug,
        },
    );
    let id = &boot.id;
    let spec = std::fs::read("config.json").unwrap_or_default();
    let group = grouping(id, &spec);
    let address = boot
        .socket_address(&group)
        .map_err(|e| other(format!("container {id}: {e}")))?;
    let reply = boot.reply(&address);
    let path = address.trim_start_matches("unix://");
    if Path::new(path).exists() && std::os::unix::net::UnixStream::connect(path).is_ok() {
        // A shim already serves this group.
        write_address(id, &address)?;
        return Ok(reply);
    }
    // Before the server starts, as runc-v2 does: a bundle that cannot take it (a full
    // file system) must not leave a shim running that nothing will ever stop.
    write_address(id, &address)?;
    let exe = std::env::current_exe().map_err(|e| other(format!("cannot find own binary: {e}")))?;
    let mut cmd = Command::new(exe);
    cmd.args([
        "-namespace",
        &boot.namespace,
        "-id",
        id,
        "-address",
        &boot.grpc_address,
        "-socket",
        &address,
    ])
    .env("TTRPC_ADDRESS", &boot.ttrpc_address)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    // Signals meant for containerd's process group must not reach the shim.
    .process_group(0);
    if boot.level >= log::LevelFilter::Debug {
        cmd.arg("-debug");
    }
    // containerd 2.3 says which level it wants; CROSSARCH_LOG_LEVEL, set by the node's
    // admin in containerd's environment, still wins.
    if boot.protocol == bootstrap::Protocol::Bootstrap
        && std::env::var_os(logger::LEVEL_ENV).is_none()
    {
        cmd.env(logger::LEVEL_ENV, boot.level.as_str());
    }
    let mut child = cmd.spawn().map_err(|e| {
        let _ = std::fs::remove_file("address");
        other(format!("container {id}: cannot start the shim: {e}"))
    })?;
    place_shim(child.id(), boot.options.as_ref());
    // The server closes its stdout once it listens; until then containerd must not connect.
    let mut ready = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_end(&mut ready);
    }
    Ok(reply)
}

#[async_trait]
impl Shim for Service {
    type T = TaskService;

    async fn new(_runtime_id: &str, args: &Flags, _config: &mut Config) -> Self {
        if let Err(e) = reaper::start() {
            eprintln!("crossarch: cannot watch child processes: {e}");
            std::process::exit(1);
        }
        Service {
            namespace: args.namespace.clone(),
            id: args.id.clone(),
            debug: args.debug,
            exit: Arc::new(ExitSignal::default()),
        }
    }

    async fn start_shim(&mut self, opts: StartOpts) -> Result<String, ShimError> {
        let id = opts.id.clone();
        match start(opts) {
            // The crate prints a String. A BootstrapResult is bytes: ASCII for every socket
            // path `bootstrap` allows (a length byte under 128), written here should it not be.
            Ok(reply) => match String::from_utf8(reply) {
                Ok(address) => Ok(address),
                Err(e) => {
                    let mut out = std::io::stdout().lock();
                    if let Err(e) = out.write_all(e.as_bytes()).and_then(|()| out.flush()) {
                        eprintln!(
                            "{}: container {id}: cannot answer containerd on stdout: {e}; \
                             containerd stopped reading it, look in its log for why",
                            logger::RUNTIME
                        );
                        std::process::exit(1);
                    }
                    Ok(String::new())
                }
            },
            // containerd shows what the start action prints; the crate would print the
            // error's Debug form (`Other("...")`).
            Err(ShimError::Other(msg)) => {
                eprintln!("{}: {msg}", logger::RUNTIME);
                std::process::exit(1);
            }
            Err(e) => Err(e),
        }
    }

    async fn delete_shim(&mut self) -> Result<DeleteResponse, ShimError> {
        let bundle = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let record: Option<BundleRecord> = std::fs::read(bundle.join(BUNDLE_RECORD))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let runc = match &record {
            Some(r) => Runc {
                binary: r.runc_binary.clone(),
                root: r.runc_root.clone(),
                systemd_cgroup: r.systemd_cgroup,
                log: bundle.join("log.json"),
            },
            None => {
                let d = crate::config::Config::default().runc;
                Runc {
                    binary: d.binary.into(),
                    root: crate::runc::root_for(&d.root, &self.namespace),
                    systemd_cgroup: d.systemd_cgroup,
                    log: bundle.join("log.json"),
                }
            }
        };
        let what = format!("container {}: runc delete", self.id);
        if let Err(e) = runc
            .run(
                &what,
                args(["delete", "--force", &self.id]),
                Default::default(),
                None,
            )
            .await
        {
            log::warn!("{e}");
        }
        crate::staging::remove(&bundle);
        crate::task::unmount_rootfs(&bundle);
        Ok(DeleteResponse {
            pid: 0,
            exit_status: 128 + libc::SIGKILL as u32,
            exited_at: crate::task::timestamp(SystemTime::now()),
            ..Default::default()
        })
    }

    async fn wait(&mut self) {
        self.exit.wait().await;
    }

    async fn create_task_service(&self, publisher: RemotePublisher) -> Self::T {
        logger::init(self.debug, &self.namespace, &self.id);
        log::info!(
            "crossarch shim {} serving namespace {}",
            env!("CARGO_PKG_VERSION"),
            self.namespace
        );
        TaskService::new(&self.namespace, publisher, self.exit.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_share_one_shim() {
        let pod = br#"{"annotations":{"io.kubernetes.cri.sandbox-id":"sb1"}}"#;
        assert_eq!(grouping("c1", pod), "sb1");
        let group = br#"{"annotations":{"io.containerd.runc.v2.group":"g"}}"#;
        assert_eq!(grouping("c1", group), "g");
        assert_eq!(grouping("c1", b"{}"), "c1");
        assert_eq!(grouping("c1", b"not json"), "c1");
        assert_eq!(
            grouping(
                "c1",
                br#"{"annotations":{"io.containerd.runc.v2.group":""}}"#
            ),
            "c1"
        );
    }
}
