//! crossarch as a Kubernetes RuntimeClass handler: containerd's CRI plugin makes the pods
//! (network namespace first, through CNI, then the sandbox), and the test drives it over
//! CRI's gRPC API as the kubelet does.
//!
//! The foreign workload is the arm64 busybox image, imported into CRI's namespace as a node
//! image cache would be (`ctr -n k8s.io images import`).
//!
//! crossarch's own behaviour: with another `CROSSARCH_TEST_RUNTIME` these tests skip.

use crossarch_integration::cri::{Capability, Kubelet, PodSandboxConfig, NAMESPACE, PAUSE_IMAGE};
use crossarch_integration::crossarch::{crossarch_only, route_record_in, HostGuard, ARM64};
use crossarch_integration::registry::{self, Registry};
use crossarch_integration::{image, runc_joins_user_namespace_first, wait_until, Containerd};

const WHAT: &str = "Kubernetes pods with foreign containers";
const LONG: std::time::Duration = std::time::Duration::from_secs(30);

/// The web server of the foreign container: a child it execs tells its machine, the port
/// sysctl of the pod is published, then busybox httpd serves port 80 as the container's root.
const WEB: &str = "mkdir -p /www; (exec /bin/uname -m) > /www/who; \
    cat /proc/sys/net/ipv4/ip_unprivileged_port_start >> /www/who; \
    exec httpd -f -p 80 -h /www";

fn start() -> Option<(Containerd, Kubelet)> {
    start_with(Kubelet::start)
}

fn start_with(kubelet: fn() -> Option<(Containerd, Kubelet)>) -> Option<(Containerd, Kubelet)> {
    if !crossarch_only(WHAT) || !ARM64.available() {
        return None;
    }
    let (cd, kubelet) = kubelet()?;
    kubelet.import(&cd, &ARM64.image_archive(), &ARM64.image());
    Some((cd, kubelet))
}

/// `ctr -n k8s.io ARGS` against this daemon: its stdout.
fn cri_ctr(cd: &Containerd, args: &[&str]) -> String {
    String::from_utf8_lossy(&ctr_in(cd, NAMESPACE, args).stdout).into_owned()
}

/// `ctr -n NAMESPACE ARGS` against this daemon.
fn ctr_in(cd: &Containerd, namespace: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new("ctr");
    cmd.arg("--address")
        .arg(cd.address())
        .args(["-n", namespace])
        .args(args);
    crossarch_integration::cmd::run_with_timeout(cmd, None, crossarch_integration::DEFAULT_TIMEOUT)
}

/// Tasks and containers left in CRI's namespace of this daemon.
fn leftovers(cd: &Containerd) -> Vec<String> {
    ["task", "container"]
        .iter()
        .flat_map(|what| {
            cri_ctr(cd, &[what, "ls", "-q"])
                .lines()
                .map(|l| format!("{what} {l}"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The crossarch decision record of a CRI container.
fn route_record(cd: &Containerd, id: &str) -> serde_json::Value {
    route_record_in(
        &cd.state_dir()
            .join("io.containerd.runtime.v2.task")
            .join(NAMESPACE)
            .join(id),
    )
}

/// A native busybox container in the pod, to look at the pod from.
fn start_native_client(kubelet: &mut Kubelet, pod: &str, pod_config: &PodSandboxConfig) -> String {
    kubelet
        .run_container(
            pod,
            pod_config,
            "client",
            PAUSE_IMAGE,
            &["sleep", "2147483647"],
        )
        .expect("a native container starts beside it")
}

/// What the [`WEB`] server of the pod answers on port 80, fetched from `client` (a native
/// container of the pod), once it answers.
fn web_page(kubelet: &mut Kubelet, client: &str) -> String {
    let mut body = String::new();
    wait_until(
        "the foreign web server to answer on port 80",
        LONG,
        || match kubelet.exec_sync(client, &["wget", "-q", "-O", "-", "http://127.0.0.1/who"]) {
            Ok(r) if r.code == 0 => {
                body = r.stdout;
                true
            }
            _ => false,
        },
    );
    body
}

#[test]
fn a_foreign_container_of_a_kubernetes_pod_serves_port_80() {
    let Some((cd, mut kubelet)) = start() else {
        return;
    };
    let guard = HostGuard::new();
    let pod_config = kubelet.pod_config("web", false);
    let pod = kubelet.run_pod(&pod_config).expect("RunPodSandbox");

    // The handler's options reached the shim: its runc state is where they say.
    let runc_root = cd.dir().join("runc").join(NAMESPACE);
    assert!(
        runc_root.join(&pod).exists(),
        "the sandbox's runc state is under the handler's runc root {}",
        runc_root.display()
    );

    let web = kubelet
        .run_container(&pod, &pod_config, "web", &ARM64.image(), &["sh", "-c", WEB])
        .expect("the foreign container starts");
    let client = start_native_client(&mut kubelet, &pod, &pod_config);

    let body = web_page(&mut kubelet, &client);
    assert_eq!(
        body.lines().collect::<Vec<_>>(),
        ["aarch64", "0"],
        "a child the server execs is emulated, and its root binds port 80"
    );
    let record = route_record(&cd, &web);
    assert_eq!(record["mode"], "userns", "{record}");

    // exec probes and `kubectl exec`: runc 1.3 and later can; before, the error says why.
    let exec = kubelet.exec_sync(&web, &["uname", "-m"]);
    if runc_joins_user_namespace_first() {
        let msg = exec
            .expect_err("runc before 1.3 cannot exec there")
            .message()
            .to_string();
        for wanted in [
            format!("container {web}"),
            "runc before 1.3".into(),
            "opencontainers/runc#4492".into(),
            "emulation.mode = \"wrap\"".into(),
        ] {
            assert!(msg.contains(&wanted), "{wanted:?} missing: {msg}");
        }
    } else {
        let r = exec.expect("exec into the foreign container");
        assert_eq!((r.code, r.stdout.as_str()), (0, "aarch64\n"), "{r:?}");
    }

    kubelet
        .remove_pod(&pod)
        .expect("StopPodSandbox, RemovePodSandbox");
    assert_eq!(
        leftovers(&cd),
        Vec::<String>::new(),
        "CRI removed everything"
    );
    assert!(
        !runc_root.join(&pod).exists() && !runc_root.join(&web).exists(),
        "no runc state is left"
    );
    guard.check();
}

/// `shareProcessNamespace: true`: the foreign container joins the pod's PID namespace,
/// which the host's user namespace owns, so crossarch runs it in wrap mode.
#[test]
fn a_foreign_container_of_a_pod_sharing_its_pid_namespace_runs_in_wrap_mode() {
    let Some((cd, mut kubelet)) = start() else {
        return;
    };
    let guard = HostGuard::new();
    let pod_config = kubelet.pod_config("shared", true);
    let pod = kubelet.run_pod(&pod_config).expect("RunPodSandbox");
    let sleeper = kubelet
        .run_container(
            &pod,
            &pod_config,
            "sleeper",
            &ARM64.image(),
            &["sleep", "1000"],
        )
        .expect("the foreign container starts");
    let client = start_native_client(&mut kubelet, &pod, &pod_config);
    let record = route_record(&cd, &sleeper);
    assert_eq!(record["mode"], "wrap", "{record}");
    assert!(
        record["mode_why"]
            .as_str()
            .unwrap_or_default()
            .contains("PID namespace"),
        "{record}"
    );
    let r = kubelet
        .exec_sync(&client, &["ps", "-o", "args"])
        .expect("exec into the native container");
    assert!(
        r.stdout.contains("qemu-aarch64") && r.stdout.contains("sleep 1000"),
        "the pod's processes include the emulated sleep: {r:?}"
    );
    let r = kubelet
        .exec_sync(&sleeper, &["uname", "-m"])
        .expect("exec into the foreign container works in wrap mode");
    assert_eq!(r.stdout, "aarch64\n", "{r:?}");
    kubelet.remove_pod(&pod).expect("remove the pod");
    assert_eq!(leftovers(&cd), Vec::<String>::new());
    guard.check();
}

/// Whether a container is privileged is what CRI makes of `securityContext.privileged`, not
/// any container that adds CAP_SYS_ADMIN: containerd 1.6's CRI leaves `maskedPaths` null
/// when its client sends none, so such a container has both SYS_ADMIN and an unmasked
/// /proc. Under `privileged = "deny"` it must run (without SYS_ADMIN, which the ceiling
/// drops), while a privileged container is refused.
#[test]
fn only_a_privileged_container_is_privileged_not_one_that_adds_sys_admin() {
    if !crossarch_only(WHAT) {
        return;
    }
    let Some((cd, mut kubelet)) = Kubelet::start() else {
        return;
    };
    let options = cd.dir().join("crossarch-cri.toml");
    let mut toml = std::fs::read_to_string(&options).unwrap();
    toml.push_str("\n[capabilities]\nprivileged = \"deny\"\n");
    std::fs::write(&options, toml).unwrap();

    let pod_config = kubelet.pod_config("admin", false);
    let pod = kubelet.run_pod(&pod_config).expect("a plain pod runs");
    let id = kubelet
        .run_container_with(
            &pod,
            &pod_config,
            "sysadmin",
            PAUSE_IMAGE,
            &["sleep", "2147483647"],
            |s| {
                s.capabilities = Some(Capability {
                    add_capabilities: vec!["SYS_ADMIN".into()],
                    ..Default::default()
                })
            },
        )
        .expect("a container that adds CAP_SYS_ADMIN is not privileged, so it runs under deny");
    let bundle = cd
        .state_dir()
        .join("io.containerd.runtime.v2.task")
        .join(NAMESPACE)
        .join(&id);
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    println!(
        "CRI's spec of a container adding SYS_ADMIN: maskedPaths {}, devices {}",
        spec["linux"]["maskedPaths"], spec["linux"]["resources"]["devices"]
    );
    let status = kubelet
        .exec_sync(&id, &["grep", "CapBnd", "/proc/self/status"])
        .expect("exec into it");
    let bnd = u64::from_str_radix(status.stdout.split_whitespace().nth(1).unwrap(), 16).unwrap();
    const CAP_SYS_ADMIN: u32 = 21;
    assert_eq!(
        bnd & (1 << CAP_SYS_ADMIN),
        0,
        "the ceiling drops SYS_ADMIN: {}",
        status.stdout
    );
    kubelet.remove_pod(&pod).expect("remove the pod");

    let mut privileged = kubelet.pod_config("root", false);
    privileged
        .linux
        .as_mut()
        .and_then(|l| l.security_context.as_mut())
        .unwrap()
        .privileged = true;
    // CRI's sandbox of a privileged pod is not privileged itself; its containers may be.
    let pod = kubelet
        .run_pod(&privileged)
        .expect("the sandbox of a privileged pod runs");
    let err = kubelet
        .run_container_with(
            &pod,
            &privileged,
            "root",
            PAUSE_IMAGE,
            &["sleep", "2147483647"],
            |s| s.privileged = true,
        )
        .expect_err("a privileged container is refused under privileged = \"deny\"");
    assert!(
        err.message()
            .contains("privileged containers are refused on this node"),
        "{err}"
    );
    kubelet.remove_pod(&pod).expect("remove the privileged pod");
    assert!(leftovers(&cd).is_empty(), "{:?}", leftovers(&cd));
}

/// The pod's host ids under `hostUsers: false`: far above the host's own users.
const POD_HOST_ID: u32 = 0x10_0000;

/// The pid of a CRI task (a pod's sandbox, or one of its containers) on the host.
fn cri_task_pid(cd: &Containerd, id: &str) -> u32 {
    let tasks = cri_ctr(cd, &["task", "ls"]);
    tasks
        .lines()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some(id)).then(|| f.next()?.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no task {id}: {tasks}"))
}

/// The entries of the binfmt_misc instance of user namespace `userns` (as `user:[N]`), seen
/// from the host: a process joins the user namespace of `pid` (as the pod's root, so that it
/// keeps its capabilities there across exec), makes a mount namespace of its own there, and
/// lists a binfmt_misc mounted on its /mnt, which is that user namespace's instance. It
/// checks that it is in `userns` before it mounts anything, so the host's instance is never
/// mounted; its mount goes with its mount namespace when it exits.
fn binfmt_entries_of(pid: u32, userns: &str) -> Vec<String> {
    const PROBE: &str = r#"[ "$(readlink /proc/self/ns/user)" = "$1" ] || {
        echo "not in the pod's user namespace $1 but in $(readlink /proc/self/ns/user)" >&2; exit 99; }
        mount -t binfmt_misc binfmt_misc /mnt && ls /mnt"#;
    let mut cmd = std::process::Command::new("nsenter");
    cmd.arg("--target")
        .arg(pid.to_string())
        .args(["--user", "--"])
        .args(["unshare", "--mount", "--propagation", "private", "--"])
        .args(["sh", "-c", PROBE, "probe", userns]);
    let out = crossarch_integration::cmd::run_with_timeout(
        cmd,
        None,
        crossarch_integration::DEFAULT_TIMEOUT,
    );
    assert!(
        out.status.success(),
        "list the pod's binfmt_misc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|e| *e != "register" && *e != "status")
        .map(str::to_string)
        .collect()
}

/// `hostUsers: false`: the pod has a user namespace of its own, which owns its network
/// namespace, and every container of the pod joins it. A foreign container joins it too,
/// instead of making one, so the pod's foreign containers share its binfmt_misc. Its
/// network namespace is its user namespace's, so runc mounts a fresh sysfs there and the
/// container's root binds port 80 as it is. The registrations go with the last foreign
/// container, while the pod lives on.
#[test]
fn foreign_containers_of_a_user_namespaced_pod_join_its_user_namespace_and_share_its_binfmt_misc() {
    if crossarch_integration::containerd_major() < 2
        || crossarch_integration::runc_version() < (1, 2)
    {
        eprintln!(
            "skipped: user-namespaced pods need containerd 2 and runc 1.2 or later (the second lane has them)"
        );
        return;
    }
    let Some((cd, mut kubelet)) = start_with(Kubelet::start_without_handler_options) else {
        return;
    };
    let guard = HostGuard::new();
    let pod_config = kubelet.pod_config_in_user_namespace("userns", POD_HOST_ID);
    let pod = kubelet
        .run_pod(&pod_config)
        .expect("RunPodSandbox of a hostUsers: false pod");
    let web = kubelet
        .run_container(&pod, &pod_config, "web", &ARM64.image(), &["sh", "-c", WEB])
        .expect("the foreign web server starts in the pod's user namespace");
    let worker = kubelet
        .run_container(
            &pod,
            &pod_config,
            "worker",
            &ARM64.image(),
            &["sleep", "2147483647"],
        )
        .expect("a second foreign container starts beside it");
    let client = start_native_client(&mut kubelet, &pod, &pod_config);

    // One user namespace for the whole pod, with the kubelet's mapping, not the host's.
    let sandbox = cri_task_pid(&cd, &pod);
    let pod_userns = std::fs::read_link(format!("/proc/{sandbox}/ns/user"))
        .unwrap()
        .display()
        .to_string();
    assert_ne!(
        pod_userns,
        std::fs::read_link("/proc/self/ns/user")
            .unwrap()
            .display()
            .to_string(),
        "the pod has a user namespace of its own"
    );
    for id in [&web, &worker, &client] {
        let r = kubelet
            .exec_sync(
                id,
                &[
                    "sh",
                    "-c",
                    "readlink /proc/self/ns/user; cat /proc/self/uid_map",
                ],
            )
            .expect("exec into a container of the pod");
        let lines: Vec<_> = r.stdout.lines().map(str::trim).collect();
        assert_eq!(
            lines.first().copied(),
            Some(pod_userns.as_str()),
            "container {id}: {r:?}"
        );
        assert_eq!(
            lines
                .get(1)
                .map(|l| l.split_whitespace().collect::<Vec<_>>()),
            Some(vec!["0", "1048576", "65536"]),
            "container {id}: {r:?}"
        );
    }
    for id in [&web, &worker] {
        let record = route_record(&cd, id);
        assert_eq!(record["mode"], "userns", "{record}");
    }

    // The web server's child was emulated and its root bound port 80.
    let body = web_page(&mut kubelet, &client);
    assert_eq!(body.lines().next(), Some("aarch64"), "{body}");

    // /sys is what runc mounted: a fresh sysfs of the pod's network namespace, not a bind
    // of the host's (none of its submounts) nor one the shim staged.
    let bundle = cd
        .state_dir()
        .join("io.containerd.runtime.v2.task")
        .join(NAMESPACE)
        .join(&web);
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    let sys = spec["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == "/sys")
        .expect("a /sys mount");
    assert_eq!(sys["type"], "sysfs", "runc mounts sysfs itself: {sys}");
    let mounts = kubelet
        .exec_sync(&web, &["cat", "/proc/self/mountinfo"])
        .expect("read the foreign container's mounts")
        .stdout;
    let kinds: Vec<(&str, &str)> = mounts
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            Some((
                left.split_whitespace().nth(4)?,
                right.split_whitespace().next()?,
            ))
        })
        .filter(|(at, _)| *at == "/sys" || at.starts_with("/sys/"))
        .collect();
    assert!(kinds.contains(&("/sys", "sysfs")), "{mounts}");
    assert!(
        kinds
            .iter()
            .all(|(_, t)| ["sysfs", "cgroup", "cgroup2", "tmpfs"].contains(t)),
        "nothing of the host's /sys is in it: {kinds:?}"
    );
    let r = kubelet
        .exec_sync(&web, &["ls", "/sys/class/net"])
        .expect("list the pod's interfaces");
    assert!(
        r.stdout.contains("eth0"),
        "the pod's network namespace's sysfs: {r:?}"
    );

    // exec, and the children of an exec.
    let r = kubelet
        .exec_sync(&worker, &["sh", "-c", "uname -m; (exec uname -m)"])
        .expect("exec into a foreign container of the pod");
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "aarch64\naarch64\n"),
        "{r:?}"
    );

    // A hostile root of the pod: the qemu behind an emulated process is the host's file, which
    // it must not change, though it holds every capability of the pod's user namespace.
    let qemu = ARM64.host_qemu().expect("available() found it");
    let meta = |p: &std::path::Path| {
        let m = std::fs::metadata(p).unwrap();
        (
            std::os::unix::fs::PermissionsExt::mode(&m.permissions()),
            std::os::unix::fs::MetadataExt::uid(&m),
        )
    };
    let before = meta(&qemu);
    let r = kubelet
        .exec_sync(
            &worker,
            &[
                "sh",
                "-c",
                "sleep 30 & s=$!; readlink /proc/$s/exe; chmod 4755 /proc/$s/exe; echo chmod=$?; \
                 chown 0:0 /proc/$s/exe; echo chown=$?; chmod 4755 /proc/$$/exe; echo self=$?; kill $s",
            ],
        )
        .expect("exec the attack");
    println!("attack from the pod: {}{}", r.stdout, r.stderr);
    for refused in ["chmod=1", "chown=1", "self=1"] {
        assert!(r.stdout.contains(refused), "{refused}: {r:?}");
    }
    assert_eq!(meta(&qemu), before, "the host's qemu is unchanged: {r:?}");

    // One instance for the pod, which outlives either foreign container but not both.
    let registered = binfmt_entries_of(sandbox, &pod_userns);
    assert!(
        registered
            .iter()
            .any(|e| e.starts_with("crossarch") && e.contains("aarch64")),
        "the pod's binfmt_misc runs arm64 through qemu: {registered:?}"
    );
    kubelet
        .remove_container(&web)
        .expect("remove the web server");
    assert_eq!(
        binfmt_entries_of(sandbox, &pod_userns),
        registered,
        "the other foreign container still needs them"
    );
    let r = kubelet
        .exec_sync(&worker, &["sh", "-c", "(exec uname -m)"])
        .expect("exec into the remaining foreign container");
    assert_eq!(r.stdout, "aarch64\n", "{r:?}");
    kubelet
        .remove_container(&worker)
        .expect("remove the worker");
    wait_until(
        "the pod's binfmt_misc to be empty once no foreign container is left",
        LONG,
        || binfmt_entries_of(sandbox, &pod_userns).is_empty(),
    );
    assert_eq!(cri_task_pid(&cd, &pod), sandbox, "the pod lives on");

    kubelet.remove_pod(&pod).expect("remove the pod");
    assert_eq!(leftovers(&cd), Vec::<String>::new());
    guard.check();
}

/// A RuntimeClass cannot choose the platform of a multi-arch tag: containerd 2.1 to 2.3 pull
/// and resolve the node's variant whatever the handler (deploy/README.md). A pod runs the
/// foreign variant by naming its manifest digest, as deploy/README.md tells users to. Both
/// are pulled from a registry over CRI, as the kubelet pulls, from a two-platform image.
#[test]
fn a_pod_runs_the_arm64_variant_of_a_multi_arch_image_pinned_by_its_digest() {
    if !crossarch_only(WHAT) || !ARM64.available() {
        return;
    }
    let Some(registry) = Registry::start() else {
        assert!(
            crossarch_integration::containerd_major() < 2,
            "the second lane has {} (docker-registry); rebuild it with scripts/lane-sid.sh",
            registry::BINARY
        );
        eprintln!(
            "skipped: no {} on PATH (the second lane has it)",
            registry::BINARY
        );
        return;
    };
    let Some((cd, mut kubelet)) = Kubelet::start() else {
        return;
    };
    let guard = HostGuard::new();

    // The multi-arch tag, pushed from a namespace of its own so CRI's has nothing of it.
    let tag = format!("{}/crossarch/multi:1", registry.host());
    let native = crossarch_integration::fixtures_dir()
        .join("images")
        .join(format!(
            "busybox-{}.tar",
            crossarch_integration::host_arch()
        ));
    let (archive, variants) = image::multi_platform_archive(
        &[&native, &ARM64.image_archive()],
        &cd.dir().join("multi"),
        &tag,
    );
    let arm64 = variants
        .iter()
        .find(|(arch, _)| arch == "arm64")
        .map(|(_, digest)| digest.clone())
        .expect("an arm64 variant");
    for args in [
        &[
            "images",
            "import",
            "--all-platforms",
            archive.to_str().unwrap(),
        ][..],
        &["images", "push", "--plain-http", &tag],
        &["images", "rm", &tag],
    ] {
        let out = ctr_in(&cd, "registry-push", args);
        assert!(
            out.status.success(),
            "ctr {args:?}: {}\nregistry: {}",
            String::from_utf8_lossy(&out.stderr),
            registry.logs()
        );
    }
    let pinned = format!("{}/crossarch/multi@{arm64}", registry.host());
    for image in [&tag, &pinned] {
        kubelet
            .pull(image)
            .unwrap_or_else(|e| panic!("PullImage {image}: {e}\nregistry: {}", registry.logs()));
    }

    let pod_config = kubelet.pod_config("multi", false);
    let pod = kubelet.run_pod(&pod_config).expect("RunPodSandbox");
    let by_tag = kubelet
        .run_container(&pod, &pod_config, "by-tag", &tag, &["sleep", "2147483647"])
        .expect("the tag's container starts");
    let by_digest = kubelet
        .run_container(
            &pod,
            &pod_config,
            "by-digest",
            &pinned,
            &["sleep", "2147483647"],
        )
        .expect("the pinned arm64 variant starts");
    let machine = |kubelet: &mut Kubelet, id: &str| {
        let r = kubelet
            .exec_sync(id, &["sh", "-c", "uname -m; (exec uname -m)"])
            .expect("exec into the container");
        assert_eq!(r.code, 0, "{r:?}");
        r.stdout
    };
    let host_machine = std::env::consts::ARCH;
    assert_eq!(
        machine(&mut kubelet, &by_tag),
        format!("{host_machine}\n{host_machine}\n"),
        "the tag gives the node's variant, run natively"
    );
    assert_eq!(route_record(&cd, &by_tag)["mode"], "native");
    assert_eq!(
        machine(&mut kubelet, &by_digest),
        "aarch64\naarch64\n",
        "the digest gives the arm64 variant, its children emulated too"
    );
    let record = route_record(&cd, &by_digest);
    assert_eq!(record["mode"], "userns", "{record}");

    kubelet.remove_pod(&pod).expect("remove the pod");
    assert_eq!(leftovers(&cd), Vec::<String>::new());
    guard.check();
}
