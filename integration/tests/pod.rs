//! A pod-style group (issue 4): a native "sandbox" container, as CRI starts it
//! (`io.kubernetes.cri.container-type=sandbox`), and a foreign arm64 container that joins its
//! namespaces as CRI sets them up and listens on port 80. crossarch gives the sandbox a user
//! namespace, which then owns the pod's network, IPC and UTS namespaces; the foreign container
//! joins it, so it can enter them at create and at every exec.
//!
//! crossarch's own behaviour: with another `CROSSARCH_TEST_RUNTIME` these tests skip.

use std::fs;
use std::time::Duration;

use crossarch_integration::crossarch::{
    crossarch_only, import_busybox, run_image, run_image_detached, HostGuard, ARM64,
};
use crossarch_integration::{containerd, wait_until, Containerd, OutputExt};

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

/// Starts the sandbox and returns its task pid, after checking crossarch gave it a user
/// namespace of its own, which then owns the pod's other namespaces.
fn start_sandbox(cd: &Containerd) -> u32 {
    cd.run_detached("sandbox", &["--annotation", SANDBOX], &["sleep", "1000"]);
    let pid = cd.task_pid("sandbox");
    let userns = fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();
    assert_ne!(
        userns,
        fs::read_link("/proc/self/ns/user").unwrap(),
        "the sandbox has a user namespace of its own"
    );
    pid
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
    assert_eq!(
        lines[0], sandbox[0],
        "the foreign container joins the pod's user namespace, which the sandbox owns"
    );
    assert_eq!(lines[1], "aarch64", "the server is the emulated one");
    assert_eq!(
        lines[2], sandbox[1],
        "it shares the sandbox's UTS namespace"
    );

    // The host agrees: same network and user namespace, and that user namespace is not the
    // host's (which is what makes the pod's private binfmt_misc possible).
    let web = cd.task_pid("web");
    let ns = |p: u32, n: &str| fs::read_link(format!("/proc/{p}/ns/{n}")).unwrap();
    assert_eq!(ns(web, "net"), ns(pid, "net"));
    assert_eq!(ns(web, "user"), ns(pid, "user"));
    assert_ne!(
        ns(web, "user"),
        fs::read_link("/proc/self/ns/user").unwrap()
    );

    for id in ["web", "sandbox"] {
        cd.ctr(&["task", "kill", "-s", "SIGKILL", id]).ok();
        cd.wait_status(id, "STOPPED", LONG);
    }
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
    let out = exec(&cd, "web", &["uname", "-m"]);
    out.ok();
    assert_eq!(out.stdout_text(), "aarch64\n");
    for id in ["web", "sandbox"] {
        cd.ctr(&["task", "kill", "-s", "SIGKILL", id]).ok();
    }
    guard.check();
}
