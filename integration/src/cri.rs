//! Kubernetes' view of a runtime: containerd's CRI plugin, driven over its gRPC API as the
//! kubelet drives it, with a RuntimeClass handler and a CNI network.
//!
//! [`Kubelet::start`] starts a private containerd with CRI on: handler `crossarch` (the
//! runtime under test, with its options passed as CRI passes them for a non-runc runtime
//! type: `runtimeoptions.v1.Options` naming a config file), a bridge network made by
//! Debian's CNI plugins, and pod network namespaces kept under the daemon's state directory.
//! Dropping the [`Kubelet`] stops and removes every pod, then deletes the bridge; the daemon's
//! own cleanup removes the rest.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
pub use k8s_cri::v1::{Capability, LinuxContainerSecurityContext, PodSandboxConfig};
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, CreateContainerRequest, ExecSyncRequest, IdMapping,
    ImageSpec, LinuxContainerConfig, LinuxPodSandboxConfig, LinuxSandboxSecurityContext,
    ListImagesRequest, ListPodSandboxRequest, NamespaceMode, NamespaceOption, PodSandboxMetadata,
    PullImageRequest, RemoveContainerRequest, RemovePodSandboxRequest, RunPodSandboxRequest,
    StartContainerRequest, StopContainerRequest, StopPodSandboxRequest, UserNamespace,
};
use tonic::transport::{Channel, Endpoint, Uri};

use crate::cmd::OutputExt;
use crate::Containerd;

/// The RuntimeClass handler name of the runtime under test.
pub const HANDLER: &str = "crossarch";
/// Where the CNI plugins are (Debian's containernetworking-plugins).
const CNI_BIN: &str = "/usr/lib/cni";
/// The namespace CRI keeps its containers and images in.
pub const NAMESPACE: &str = "k8s.io";
/// The sandbox ("pause") image, made by [`Kubelet::start`] from the native busybox rootfs.
pub const PAUSE_IMAGE: &str = "localhost/crossarch/pause:test";

/// What ExecSync returned.
#[derive(Debug)]
pub struct Exec {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A kubelet's worth of CRI calls against a private containerd.
pub struct Kubelet {
    rt: tokio::runtime::Runtime,
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    bridge: String,
    cgroup_parent: String,
    log_dir: PathBuf,
    /// The crossarch config of a handler without options, and its runc root.
    _config_dir: Option<tempfile::TempDir>,
}

/// A bridge name of this test process: `cxbr<pid><n>`, at most 12 characters.
fn bridge_name() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "cxbr{}{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst) % 10
    )
}

/// Deletes the bridges of test processes that are gone (killed before their cleanup ran).
fn delete_stale_bridges() {
    let Ok(out) = Command::new("ip")
        .args(["-o", "link", "show", "type", "bridge"])
        .output()
    else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split(": ").nth(1) else {
            continue;
        };
        let Some(digits) = name.strip_prefix("cxbr") else {
            continue;
        };
        let owner = digits.get(..digits.len().saturating_sub(1)).unwrap_or("");
        if owner.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if !Path::new("/proc").join(owner).exists() {
            let _ = Command::new("ip").args(["link", "delete", name]).output();
        }
    }
}

impl Kubelet {
    /// Starts containerd with CRI and connects to it; `None` where [`Containerd::start`]
    /// would skip. Needs the CNI plugins (scripts/install-deps.sh).
    pub fn start() -> Option<(Containerd, Kubelet)> {
        Kubelet::start_with(true)
    }

    /// [`Kubelet::start`] with a handler that has no `options` table, as containerd's CRI
    /// needs for pods with a user namespace of their own (`hostUsers: false`): for any
    /// options of a runtime type other than runc's, containerd 2.0 to 2.3 fail their
    /// containers' start with "can't unmarshal type runtimeoptions.v1.Options". The shims
    /// find the same crossarch config through `CROSSARCH_CONFIG` in containerd's environment.
    pub fn start_without_handler_options() -> Option<(Containerd, Kubelet)> {
        Kubelet::start_with(false)
    }

    fn start_with(handler_options: bool) -> Option<(Containerd, Kubelet)> {
        delete_stale_bridges();
        // Where the crossarch config is when no handler options name it: known before the
        // daemon's directory is, since containerd's environment is set at its start.
        let config_dir = (!handler_options).then(|| {
            let dir = tempfile::Builder::new()
                .prefix("cx-cri-config")
                .tempdir()
                .unwrap();
            std::fs::write(
                dir.path().join("crossarch.toml"),
                format!("[runc]\nroot = \"{}\"\n", dir.path().join("runc").display()),
            )
            .unwrap();
            dir
        });
        let bridge = bridge_name();
        // The bridge gets no address on the host, so subnets of two pods never meet.
        let subnet = "10.250.0.0/24";
        let cri = |dir: &Path| {
            let cni = dir.join("cni");
            std::fs::create_dir_all(&cni).unwrap();
            let conflist = serde_json::json!({
                "cniVersion": "0.4.0",
                "name": "crossarch-test",
                "plugins": [{
                    "type": "bridge",
                    "bridge": bridge,
                    // No gateway and no masquerade: the host's forwarding and iptables stay
                    // as they are. Pods reach each other and themselves, nothing else.
                    "isGateway": false,
                    "ipMasq": false,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": subnet}]],
                        "dataDir": dir.join("cni-ipam"),
                    },
                }],
            });
            std::fs::write(cni.join("10-crossarch-test.conflist"), conflist.to_string()).unwrap();
            let options = dir.join("crossarch-cri.toml");
            // The handler's own runc root, so no state lands in the node's.
            std::fs::write(
                &options,
                format!("[runc]\nroot = \"{}\"\n", dir.join("runc").display()),
            )
            .unwrap();
            let options_table = if handler_options {
                format!(
                    "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.{HANDLER}.options]\n  \
                     ConfigPath = \"{}\"",
                    options.display()
                )
            } else {
                String::new()
            };
            format!(
                r#"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # Sandboxes ask for oom_score_adj -998, which needs CAP_SYS_RESOURCE; a node (or CI
  # machine) whose root lacks it can still run pods with this, as kind does.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{cni}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "{HANDLER}"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{HANDLER}]
    runtime_type = "{runtime}"
    {options_table}
"#,
                cni = cni.display(),
                runtime = crate::runtime(),
            )
        };
        if !Path::new(CNI_BIN).join("bridge").exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "no CNI plugins in {CNI_BIN}; run scripts/install-deps.sh"
            );
            eprintln!("SKIPPED: no CNI plugins in {CNI_BIN}; run scripts/install-deps.sh");
            return None;
        }
        let env = config_dir
            .iter()
            .map(|d| {
                let config = d.path().join("crossarch.toml");
                ("CROSSARCH_CONFIG".to_string(), config.into_os_string())
            })
            .collect();
        let cd = Containerd::start_with_cri_and_options(
            &cri,
            crate::Options {
                env,
                ..Default::default()
            },
        )?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let socket = cd.address();
        let channel = rt
            .block_on(
                Endpoint::try_from("http://[::]:0")
                    .unwrap()
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let socket = socket.clone();
                        async move {
                            Ok::<_, std::io::Error>(TokioIo::new(
                                tokio::net::UnixStream::connect(socket).await?,
                            ))
                        }
                    })),
            )
            .expect("connect to containerd's CRI");
        let kubelet = Kubelet {
            rt,
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
            bridge,
            cgroup_parent: format!("/{}", cd.namespace()),
            log_dir: cd.dir().join("pods"),
            _config_dir: config_dir,
        };
        kubelet.import_rootfs(&cd, cd.rootfs(), PAUSE_IMAGE, &["sleep", "2147483647"]);
        Some((cd, kubelet))
    }

    /// Makes an image named `name` of the node's platform from the directory `rootfs`, with
    /// `cmd` as its Cmd, and imports it. Whatever the binaries inside are for, CRI takes it
    /// as the node's.
    pub fn import_rootfs(&self, cd: &Containerd, rootfs: &Path, name: &str, cmd: &[&str]) {
        let work = cd
            .dir()
            .join(format!("image-{}", name.replace(['/', ':'], "_")));
        let archive = crate::image::oci_archive_named(rootfs, &work, name, cmd);
        self.import(cd, &archive, name);
    }

    /// Imports an image archive into CRI's namespace and waits until CRI lists `name`.
    pub fn import(&self, cd: &Containerd, archive: &Path, name: &str) {
        let archive = archive.display().to_string();
        let mut cmd = Command::new("ctr");
        cmd.arg("--address").arg(cd.address()).args([
            "-n",
            NAMESPACE,
            "images",
            "import",
            "--all-platforms",
            &archive,
        ]);
        let out = crate::cmd::run_with_timeout(cmd, None, crate::DEFAULT_TIMEOUT);
        out.ok();
        let mut images = self.images.clone();
        let mut last_error = String::new();
        crate::wait_until(
            &format!("CRI to list {name}"),
            Duration::from_secs(30),
            || match self
                .rt
                .block_on(images.list_images(ListImagesRequest { filter: None }))
            {
                Ok(r) => r
                    .into_inner()
                    .images
                    .iter()
                    .any(|i| i.repo_tags.iter().any(|t| t == name)),
                Err(e) => {
                    // Once per distinct error (a CRI plugin that failed to load says why).
                    let e = e.to_string();
                    if e != last_error {
                        eprintln!("CRI ListImages: {e}");
                        last_error = e;
                    }
                    false
                }
            },
        );
    }

    /// PullImage, as the kubelet pulls a pod's image from its registry; returns the image's
    /// id (the digest of its config).
    pub fn pull(&mut self, image: &str) -> Result<String, tonic::Status> {
        let req = PullImageRequest {
            image: Some(ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.rt
            .block_on(self.images.pull_image(req))
            .map(|r| r.into_inner().image_ref)
    }

    /// The pod's sandbox config: network, IPC and (unless `share_pid`) PID per pod.
    pub fn pod_config(&self, name: &str, share_pid: bool) -> PodSandboxConfig {
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.into(),
                uid: format!("uid-{name}"),
                namespace: "default".into(),
                attempt: 0,
            }),
            hostname: name.into(),
            log_directory: self.log_dir.join(name).display().to_string(),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: self.cgroup_parent.clone(),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(namespace_options(share_pid)),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// [`Kubelet::pod_config`] of a pod with a user namespace of its own (`hostUsers: false`),
    /// as the kubelet asks for one: ids 0 to 65535 of the pod are host ids `host_id` on.
    pub fn pod_config_in_user_namespace(&self, name: &str, host_id: u32) -> PodSandboxConfig {
        let mut config = self.pod_config(name, false);
        let map = vec![IdMapping {
            host_id,
            container_id: 0,
            length: 65536,
        }];
        if let Some(n) = config
            .linux
            .as_mut()
            .and_then(|l| l.security_context.as_mut())
            .and_then(|s| s.namespace_options.as_mut())
        {
            n.userns_options = Some(UserNamespace {
                mode: NamespaceMode::Pod as i32,
                uids: map.clone(),
                gids: map,
            });
        }
        config
    }

    /// RunPodSandbox with the handler under test; returns the pod's id.
    pub fn run_pod(&mut self, config: &PodSandboxConfig) -> Result<String, tonic::Status> {
        let req = RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: HANDLER.into(),
        };
        self.rt
            .block_on(self.runtime.run_pod_sandbox(req))
            .map(|r| r.into_inner().pod_sandbox_id)
    }

    /// CreateContainer and StartContainer of `image` running `command` in the pod; returns
    /// the container's id.
    pub fn run_container(
        &mut self,
        pod: &str,
        pod_config: &PodSandboxConfig,
        name: &str,
        image: &str,
        command: &[&str],
    ) -> Result<String, tonic::Status> {
        self.run_container_with(pod, pod_config, name, image, command, |_| {})
    }

    /// [`Kubelet::run_container`] with the container's security context edited by `edit`
    /// (privileged, added capabilities, ...).
    pub fn run_container_with(
        &mut self,
        pod: &str,
        pod_config: &PodSandboxConfig,
        name: &str,
        image: &str,
        command: &[&str],
        edit: impl FnOnce(&mut LinuxContainerSecurityContext),
    ) -> Result<String, tonic::Status> {
        // The pod's namespace options, as the kubelet gives them to each container of the pod
        // (a shared PID namespace, the pod's user namespace and its mappings).
        let namespaces = pod_config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.clone())
            .unwrap_or_else(|| namespace_options(false));
        let mut security = LinuxContainerSecurityContext {
            namespace_options: Some(namespaces),
            ..Default::default()
        };
        edit(&mut security);
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            command: command.iter().map(|s| s.to_string()).collect(),
            log_path: format!("{name}.log"),
            linux: Some(LinuxContainerConfig {
                security_context: Some(security),
                ..Default::default()
            }),
            ..Default::default()
        };
        let id = self
            .rt
            .block_on(self.runtime.create_container(CreateContainerRequest {
                pod_sandbox_id: pod.into(),
                config: Some(config),
                sandbox_config: Some(pod_config.clone()),
            }))?
            .into_inner()
            .container_id;
        self.rt
            .block_on(self.runtime.start_container(StartContainerRequest {
                container_id: id.clone(),
            }))?;
        Ok(id)
    }

    /// ExecSync, as exec probes and `kubectl exec` without a terminal use it.
    pub fn exec_sync(&mut self, container: &str, cmd: &[&str]) -> Result<Exec, tonic::Status> {
        let req = ExecSyncRequest {
            container_id: container.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: 30,
        };
        self.rt.block_on(self.runtime.exec_sync(req)).map(|r| {
            let r = r.into_inner();
            Exec {
                code: r.exit_code,
                stdout: String::from_utf8_lossy(&r.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&r.stderr).into_owned(),
            }
        })
    }

    /// StopContainer then RemoveContainer, as the kubelet does when a container of a pod goes.
    pub fn remove_container(&mut self, container: &str) -> Result<(), tonic::Status> {
        self.rt
            .block_on(self.runtime.stop_container(StopContainerRequest {
                container_id: container.into(),
                timeout: 10,
            }))?;
        self.rt
            .block_on(self.runtime.remove_container(RemoveContainerRequest {
                container_id: container.into(),
            }))?;
        Ok(())
    }

    /// StopPodSandbox then RemovePodSandbox, as the kubelet does when a pod is deleted.
    pub fn remove_pod(&mut self, pod: &str) -> Result<(), tonic::Status> {
        self.rt
            .block_on(self.runtime.stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: pod.into(),
            }))?;
        self.rt
            .block_on(self.runtime.remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: pod.into(),
            }))?;
        Ok(())
    }

    /// The ids of the pods CRI knows.
    pub fn pods(&mut self) -> Vec<String> {
        self.rt
            .block_on(
                self.runtime
                    .list_pod_sandbox(ListPodSandboxRequest { filter: None }),
            )
            .map(|r| r.into_inner().items.into_iter().map(|p| p.id).collect())
            .unwrap_or_default()
    }
}

fn namespace_options(share_pid: bool) -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Pod as i32,
        pid: if share_pid {
            NamespaceMode::Pod
        } else {
            NamespaceMode::Container
        } as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        for pod in self.pods() {
            if let Err(e) = self.remove_pod(&pod) {
                eprintln!("cleanup: remove pod {pod}: {e}");
            }
        }
        let out = Command::new("ip")
            .args(["link", "delete", &self.bridge])
            .output();
        if let Ok(out) = out {
            if !out.status.success() && !out.stderr_text().contains("Cannot find device") {
                eprintln!("cleanup: delete bridge {}: {}", self.bridge, out.show());
            }
        }
    }
}
