//! Pod-style groups (issue 4): a native "sandbox" container, as CRI starts it
//! (`io.kubernetes.cri.container-type=sandbox`), and a foreign arm64 container that joins its
//! namespaces as CRI sets them up and listens on port 80. Two shapes:
//! - the sandbox makes its own network namespace (`start_sandbox`);
//! - the host made the network namespace before the sandbox, as containerd's CRI does
//!   (`start_cri_sandbox`).
//!
//! In both the sandbox keeps the host's user namespace, so the pod's namespaces stay the
//! host's and the capability ceiling holds over them for every container (a user namespace
//! that host uid 0 creates would give every host root process all capabilities over them),
//! and a foreign container gets a user namespace of its own.
//!
//! crossarch's own behaviour: with another `CROSSARCH_TEST_RUNTIME` these tests skip.

use std::fs;
use std::time::Duration;

use crossarch_integration::crossarch::{
    crossarch_only, import_busybox, run_image, run_image_detached, HostGuard, ARM64,
};
use crossarch_integration::{
    containerd, runc_joins_user_namespace_first, wait_until, Containerd, OutputExt,
};

const LONG: Duration = Duration::from_secs(30);
const WHAT: &str = "pods with foreign containers";
const SANDBOX: &str = "io.kubernetes.cri.container-type=sandbox";

/// `ctr task exec` of `argv` in `id` with a fresh exec id.
fn exec(cd: &Containerd, id: &str, argv: &[&str]) -> std::process::Output {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let exec_id = format!("x{}", N.fetch_add(1, Ordering::SeqCst));
    let mut args = vec!["task", "exec", "--exec-id", &exec_id, id];
    args.extend_from_slice(argv);
    cd.ctr(&args)
}

/// SIGKILLs the tasks `ids`, in order, and waits until each has stopped.
fn kill_all(cd: &Containerd, ids: &[&str]) {
    for id in ids {
        cd.ctr(&["task", "kill", "-s", "SIGKILL", id]).ok();
        cd.wait_status(id, "STOPPED", LONG);
    }
}

/// Starts a sandbox that makes its own network namespace and returns its task pid, after
/// checking it kept the host's user namespace.
fn start_sandbox(cd: &Containerd) -> u32 {
    cd.run_detached("sandbox", &["--annotation", SANDBOX], &["sleep", "1000"]);
    let pid = cd.task_pid("sandbox");
    let userns = fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();
    assert_eq!(
        userns,
        fs::read_link("/proc/self/ns/user").unwrap(),
        "the sandbox keeps the host's user namespace"
    );
    pid
}

/// Exec into a foreign container of a pod (kubectl exec, exec probes): runc 1.3 and later
/// can; before, the error says why and what to do.
fn assert_pod_exec(cd: &Containerd, id: &str) {
    let out = exec(cd, id, &["uname", "-m"]);
    if runc_joins_user_namespace_first() {
        assert!(!out.status.success(), "{}", out.show());
        let err = out.stderr_text();
        for wanted in [
            &format!("of container {id}") as &str,
            "setns",
            "runc before 1.3",
            "opencontainers/runc#4492",
            "emulation.mode = \"wrap\"",
        ] {
            assert!(err.contains(wanted), "{wanted:?} missing: {}", out.show());
        }
    } else {
        out.ok();
        assert_eq!(out.stdout_text(), "aarch64\n");
    }
}

/// The web server of the foreign container: it publishes what it sees of itself.
const WEB: &str = "mkdir -p /www; readlink /proc/self/ns/user > /www/who; uname -m >> /www/who; \
    hostname >> /www/who; exec httpd -f -p 80 -h /www";

/// Fetches `http://127.0.0.1:80/who` from inside the sandbox until it answers (bounded).
fn fetch_from_sandbox(cd: &Containerd) -> String {
    let mut last = String::new();
    let mut body = None;
    wait_until("the foreign web server to answer on port 80", LONG, || {
        let out = exec(
            cd,
            "sandbox",
            &["wget", "-q", "-O", "-", "http://127.0.0.1:80/who"],
        );
        last = out.show();
        if out.status.success() {
            body = Some(out.stdout_text());
        }
        body.is_some()
    });
    body.unwrap_or(last)
}

#[test]
fn a_foreign_container_in_a_pod_listens_on_port_80() {
    if !crossarch_only(WHAT) || !ARM64.available() {
        return;
    }
    let guard = HostGuard::new();
    let cd = containerd!();
    let image = import_busybox(&cd, &ARM64);
    let pid = start_sandbox(&cd);
    let net = format!("network:/proc/{pid}/ns/net");
    let uts = format!("uts:/proc/{pid}/ns/uts");
    run_image_detached(
        &cd,
        &image,
        ARM64.platform,
        "web",
        &["--with-ns", &net, "--with-ns", &uts],
        &["sh", "-c", WEB],
    );
    let body = fetch_from_sandbox(&cd);
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 3, "{body}");

    // The sandbox's own view, from inside it.
    let out = exec(
        &cd,
        "sandbox",
        &["sh", "-c", "readlink /proc/self/ns/user; hostname"],
    );
    out.ok();
    let sandbox = out.stdout_text();
    let sandbox: Vec<&str> = sandbox.lines().collect();
    assert!(lines[0].starts_with("user:["), "{body}");
    assert_ne!(
        lines[0], sandbox[0],
        "the foreign container has a user namespace of its own"
    );
    assert_eq!(lines[1], "aarch64", "the server is the emulated one");
    assert_eq!(
        lines[2], sandbox[1],
        "it shares the sandbox's UTS namespace"
    );

    // The host agrees: same network namespace; the container's user namespace is neither
    // the sandbox's nor the host's (which is what makes its private binfmt_misc possible).
    let web = cd.task_pid("web");
    let ns = |p: u32, n: &str| fs::read_link(format!("/proc/{p}/ns/{n}")).unwrap();
    assert_eq!(ns(web, "net"), ns(pid, "net"));
    assert_eq!(
        ns(pid, "user"),
        fs::read_link("/proc/self/ns/user").unwrap()
    );
    assert_ne!(ns(web, "user"), ns(pid, "user"));

    kill_all(&cd, &["web", "sandbox"]);
    guard.check();
}

/// CRI also joins the sandbox's IPC namespace, and its spec mounts a fresh mqueue at
/// /dev/mqueue, as `ctr`'s does.
#[test]
fn a_foreign_container_joins_the_pods_ipc_namespace() {
    if !crossarch_only(WHAT) || !ARM64.available() {
        return;
    }
    let guard = HostGuard::new();
    let cd = containerd!();
    let image = import_busybox(&cd, &ARM64);
    let pid = start_sandbox(&cd);
    let net = format!("network:/proc/{pid}/ns/net");
    let ipc = format!("ipc:/proc/{pid}/ns/ipc");
    let uts = format!("uts:/proc/{pid}/ns/uts");
    let out = run_image(
        &cd,
        &image,
        ARM64.platform,
        "web",
        &[
            "--rm",
            "--with-ns",
            &net,
            "--with-ns",
            &ipc,
            "--with-ns",
            &uts,
        ],
        &["uname", "-m"],
    );
    out.ok();
    assert_eq!(out.stdout_text(), "aarch64\n");
    cd.ctr(&["task", "kill", "-s", "SIGKILL", "sandbox"]).ok();
    guard.check();
}

/// `kubectl exec` (and exec probes) into a foreign container of a pod.
#[test]
fn exec_into_a_foreign_container_of_a_pod() {
    if !crossarch_only(WHAT) || !ARM64.available() {
        return;
    }
    let guard = HostGuard::new();
    let cd = containerd!();
    let image = import_busybox(&cd, &ARM64);
    let pid = start_sandbox(&cd);
    let net = format!("network:/proc/{pid}/ns/net");
    run_image_detached(
        &cd,
        &image,
        ARM64.platform,
        "web",
        &["--with-ns", &net],
        &["sleep", "1000"],
    );
    assert_pod_exec(&cd, "web");
    for id in ["web", "sandbox"] {
        cd.ctr(&["task", "kill", "-s", "SIGKILL", id]).ok();
    }
    guard.check();
}

/// Starts the sandbox of a pod as containerd's CRI makes it and returns its task pid: the
/// host makes the network namespace before the sandbox (so the host's user namespace owns
/// it), with its loopback up as CNI's loopback plugin leaves it, and the sandbox joins it by
/// path. The namespace is bound at `<daemon dir>/netns`; the daemon's cleanup unmounts it.
fn start_cri_sandbox(cd: &Containerd) -> u32 {
    let path = crossarch_integration::crossarch::host_made_netns(cd);
    let network = format!("network:{path}");
    cd.run_detached(
        "sandbox",
        &["--annotation", SANDBOX, "--with-ns", &network],
        &["sleep", "1000"],
    );
    cd.task_pid("sandbox")
}

/// A pod as containerd's CRI really builds one: the sandbox joins a network namespace the
/// host made, so crossarch gives it no user namespace, and a foreign container gets one of
/// its own. It still starts, every process in it is emulated, and its root serves port 80:
/// its /sys is a read-only sysfs of the pod's network namespace that the shim mounts, it has no
/// /dev/mqueue, and `net.ipv4.ip_unprivileged_port_start=0` is set. Exec into it needs a runc
/// that joins namespaces in two stages; with one that does not, the error says so.
#[test]
fn a_foreign_container_in_a_cri_made_pod_serves_port_80() {
    if !crossarch_only(WHAT) || !ARM64.available() {
        return;
    }
    let guard = HostGuard::new();
    let cd = containerd!();
    let image = import_busybox(&cd, &ARM64);
    let pid = start_cri_sandbox(&cd);
    let ns = |p: u32, n: &str| fs::read_link(format!("/proc/{p}/ns/{n}")).unwrap();
    assert_eq!(
        ns(pid, "user"),
        fs::read_link("/proc/self/ns/user").unwrap(),
        "a sandbox in a network namespace the host made keeps the host's user namespace"
    );
    let joins: Vec<String> = ["network:net", "ipc:ipc", "uts:uts"]
        .iter()
        .map(|kn| {
            let (kind, file) = kn.split_once(':').unwrap();
            format!("{kind}:/proc/{pid}/ns/{file}")
        })
        .flat_map(|j| ["--with-ns".to_string(), j])
        .collect();
    let opts: Vec<&str> = joins.iter().map(String::as_str).collect();
    run_image_detached(
        &cd,
        &image,
        ARM64.platform,
        "web",
        &opts,
        &[
            "sh",
            "-c",
            "mkdir -p /www; (exec /bin/uname -m) > /www/who; \
             cat /proc/sys/net/ipv4/ip_unprivileged_port_start >> /www/who; \
             echo $(ls /sys/class/net) >> /www/who; \
             exec httpd -f -p 80 -h /www",
        ],
    );
    let body = fetch_from_sandbox(&cd);
    assert_eq!(
        body.lines().collect::<Vec<_>>(),
        ["aarch64", "0", "lo"],
        "a child exec'd in the container is emulated, its root serves port 80, and its /sys \
         shows the pod's network devices, not the host's"
    );
    let web = cd.task_pid("web");
    assert_eq!(ns(web, "net"), ns(pid, "net"));
    assert_ne!(
        ns(web, "user"),
        ns(pid, "user"),
        "a user namespace of its own"
    );
    let record = crossarch_integration::crossarch::route_record(&cd, "web");
    assert_eq!(record["mode"], "userns", "{record}");

    assert_pod_exec(&cd, "web");
    kill_all(&cd, &["web", "sandbox"]);
    guard.check();
}

/// In a pod that shares its process namespace (the host's user namespace owns it, as in a
/// CRI-made pod), a foreign container cannot have a user namespace of its own: it could not
/// mount its /proc. auto mode falls back to wrap mode and says why; userns mode refuses.
#[test]
fn a_shared_pid_namespace_of_the_host_falls_back_to_wrap_mode() {
    if !crossarch_only(WHAT) || !ARM64.available() {
        return;
    }
    let guard = HostGuard::new();
    let cd = containerd!();
    let image = import_busybox(&cd, &ARM64);
    let pid = start_cri_sandbox(&cd);
    let net = format!("network:/proc/{pid}/ns/net");
    let pidns = format!("pid:/proc/{pid}/ns/pid");
    let opts = ["--with-ns", net.as_str(), "--with-ns", pidns.as_str()];
    run_image_detached(
        &cd,
        &image,
        ARM64.platform,
        "shared",
        &opts,
        &["sleep", "1000"],
    );
    let record = crossarch_integration::crossarch::route_record(&cd, "shared");
    assert_eq!(record["mode"], "wrap", "{record}");
    let why = record["mode_why"].as_str().unwrap_or_default();
    assert!(why.contains("PID namespace"), "{record}");
    let out = exec(&cd, "sandbox", &["ps", "-o", "args"]);
    out.ok();
    assert!(
        out.stdout_text().contains("qemu-aarch64"),
        "the foreign sleep runs under qemu in the pod's PID namespace: {}",
        out.show()
    );

    let strict =
        crossarch_integration::crossarch::config_file(&cd, "[emulation]\nmode = \"userns\"\n");
    let mut opts = opts.to_vec();
    opts.extend(["--rm", "--runtime-config-path", strict.as_str()]);
    let out = run_image(&cd, &image, ARM64.platform, "strict", &opts, &["true"]);
    assert_ne!(out.code(), 0, "{}", out.show());
    let err = out.stderr_text();
    for wanted in ["container strict", "PID namespace", "wrap"] {
        assert!(err.contains(wanted), "{wanted:?} missing: {}", out.show());
    }
    kill_all(&cd, &["shared", "sandbox"]);
    guard.check();
}
