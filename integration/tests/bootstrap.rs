//! The start action in both of containerd's start protocols, driven exactly as containerd
//! drives it (flags, environment, stdin, working directory), against a private containerd
//! whose addresses the messages carry and whose ttrpc socket the shims publish to:
//!
//! - containerd 2.3's: a protobuf `BootstrapParams` on stdin, built field by field as
//!   containerd 2.3.4's `pkg/shim.Command` builds it, with the runtime handler's options as an
//!   extension; the answer must be a protobuf `BootstrapResult` (version 2, ttrpc) whose
//!   address serves the Task API, and the log level and options must take effect.
//! - containerd 1.6 to 2.2's: nothing, or the runtime options as a bare `Any`, on stdin; the
//!   answer must be the bare address, whatever else stdin holds (garbage, a terminal, the
//!   params of another container).
//!
//! No containerd 2.3 can be had from Debian's packages here, so its side is played by the
//! test: it sends what containerd 2.3 sends and reads the answer as containerd 2.3 does.

use std::fs;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crossarch_integration::cmd::{try_run, Stdin};
use crossarch_integration::crossarch::crossarch_only;
use crossarch_integration::ttrpc::{self, any, fields, Msg, Reply, TASK};
use crossarch_integration::{containerd, host, shim_dir, wait_until, Containerd};

const CONTAINERD_BINARY: &str = "/usr/bin/containerd";
const RUNC_OPTIONS: &str = "containerd.runc.v1.Options";
const RUNTIME_OPTIONS: &str = "runtimeoptions.v1.Options";

/// containerd's `LogLevel` values.
const DEBUG: i32 = -4;
const INFO: i32 = 0;
const ERROR: i32 = 8;

fn shim() -> PathBuf {
    shim_dir().join("containerd-shim-crossarch-v2")
}

fn ttrpc_address(cd: &Containerd) -> String {
    format!("{}.ttrpc", cd.address().display())
}

/// A bundle directory as containerd makes one: the start action runs in it and reads its
/// `config.json`; `log` is a plain file here, so that what the shim logs can be read after.
fn bundle(cd: &Containerd, name: &str) -> PathBuf {
    let dir = cd.dir().join(format!("bundle-{name}"));
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("config.json"), "{}").unwrap();
    fs::write(dir.join("log"), "").unwrap();
    dir
}

/// The start action as containerd runs it (`pkg/shim.Command`, the same in 1.7 to 2.3): the
/// legacy flags and environment, always.
fn start_command(cd: &Containerd, id: &str, bundle: &Path, debug: bool) -> Command {
    let mut cmd = Command::new(shim());
    cmd.args(["-namespace", cd.namespace(), "-address"])
        .arg(cd.address())
        .args(["-publish-binary", CONTAINERD_BINARY, "-id", id]);
    if debug {
        cmd.arg("-debug");
    }
    cmd.arg("start")
        .current_dir(bundle)
        .env("GOMAXPROCS", "2")
        .env("MAX_SHIM_VERSION", "2")
        .env("TTRPC_ADDRESS", ttrpc_address(cd))
        .env("GRPC_ADDRESS", cd.address())
        .env("NAMESPACE", cd.namespace())
        .env_remove("CROSSARCH_LOG_LEVEL");
    cmd
}

fn start(cd: &Containerd, id: &str, bundle: &Path, debug: bool, stdin: Option<Vec<u8>>) -> Output {
    let cmd = start_command(cd, id, bundle, debug);
    let stdin = stdin.map_or(Stdin::Null, Stdin::Data);
    try_run(cmd, stdin, Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e}"))
}

/// A `google.protobuf.Any` of runc's `Options` (containerd's `api/types/runc/options`) with
/// `shim_cgroup` (field 3) and `binary_name` (field 6), as containerd's typeurl names it.
fn runc_options(shim_cgroup: &str) -> Msg {
    let opts = Msg::new().bytes(3, shim_cgroup).bytes(6, "runc");
    any(RUNC_OPTIONS, &opts.encode())
}

/// `BootstrapParams` exactly as containerd 2.3.4's `pkg/shim.Command` marshals it: the fields
/// in number order, zero values left out (proto3), the log level as an int32 enum (a negative
/// one sign-extended to ten bytes), the handler's options `Any` as the one extension, and
/// `socket_dir`, which containerd always sets.
fn bootstrap_params(
    cd: &Containerd,
    id: &str,
    level: i32,
    options: Option<&Msg>,
    socket_dir: &str,
) -> Vec<u8> {
    let mut m = Msg::new().bytes(1, id).bytes(2, cd.namespace());
    if level != 0 {
        m = m.uint(3, i64::from(level) as u64);
    }
    m = m
        .bytes(4, "v2.3.4")
        .bytes(5, ttrpc_address(cd))
        .bytes(6, cd.address().display().to_string())
        .bytes(7, CONTAINERD_BINARY);
    if let Some(o) = options {
        m = m.message(8, &Msg::new().message(1, o));
    }
    m.bytes(9, socket_dir).encode()
}

/// What containerd 2.3 reads from a `BootstrapResult`: (version, address, protocol).
fn bootstrap_result(out: &Output) -> (u64, String, String) {
    assert!(
        out.status.success(),
        "start failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // containerd reads stdout and stderr as one (CombinedOutput): nothing may be on stderr.
    assert!(
        out.stderr.is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let f = fields(&out.stdout)
        .unwrap_or_else(|| panic!("not protobuf: {:?}", String::from_utf8_lossy(&out.stdout)));
    let (mut version, mut address, mut protocol) = (0, String::new(), String::new());
    for (n, v, data) in f {
        match n {
            1 => version = v,
            2 => address = String::from_utf8(data).unwrap(),
            3 => protocol = String::from_utf8(data).unwrap(),
            other => panic!("unexpected field {other} in {:?}", out.stdout),
        }
    }
    (version, address, protocol)
}

/// The bare address of the legacy protocol.
fn bare_address(out: &Output) -> String {
    assert!(
        out.status.success(),
        "start failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let address = String::from_utf8(out.stdout.clone()).expect("a bare address is text");
    // containerd 1.6 takes stdout as the address as it is: no newline, no JSON, no protobuf.
    let hash = address
        .strip_prefix("unix:///run/containerd/s/")
        .unwrap_or_else(|| panic!("not a bare address: {address:?}"));
    assert!(
        hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "{address:?}"
    );
    address
}

/// The bundles of a test, whose shims' sockets (named in each bundle's `address` file, which
/// the start action writes before it starts a shim) are removed when the test ends, passed or
/// not: the harness SIGKILLs a shim a failed test leaves, and a killed shim leaves its socket
/// (in /run/containerd/s for most of these). Declared after the daemon, so dropped before it.
#[derive(Default)]
struct Sockets(std::cell::RefCell<Vec<PathBuf>>);

impl Sockets {
    fn bundle(&self, cd: &Containerd, name: &str) -> PathBuf {
        let b = bundle(cd, name);
        self.0.borrow_mut().push(b.clone());
        b
    }
}

impl Drop for Sockets {
    fn drop(&mut self) {
        for b in self.0.borrow().iter() {
            if let Ok(address) = fs::read_to_string(b.join("address")) {
                let _ = fs::remove_file(address.trim_start_matches("unix://"));
            }
        }
    }
}

/// Connects as containerd does, checks the shim answers, and shuts it down (it is idle, so
/// it exits and removes its socket). Returns the shim's pid.
fn connect_and_shut_down(cd: &Containerd, id: &str, address: &str) -> u32 {
    let socket = PathBuf::from(address.strip_prefix("unix://").expect("a unix:// address"));
    let connect = ttrpc::call(&socket, TASK, "Connect", &Msg::new().bytes(1, id).encode())
        .unwrap_or_else(|e| panic!("Connect to {address}: {e}"));
    let pid = ttrpc::uint_field(&connect, 1) as u32;
    assert_eq!(
        cd.shim_pid(id),
        Some(pid),
        "Connect names the shim serving {id}"
    );
    // A request that fails, which the shim logs at debug level.
    let state = ttrpc::task_call(
        &socket,
        "State",
        &Msg::new().bytes(1, "no-such-task").encode(),
        Duration::from_secs(30),
    );
    assert_eq!(state.code(), Some(ttrpc::code::NOT_FOUND), "{state:?}");
    let shutdown = ttrpc::task_call(
        &socket,
        "Shutdown",
        &Msg::new().bytes(1, id).encode(),
        Duration::from_secs(30),
    );
    assert!(
        matches!(shutdown, Reply::Ok(_) | Reply::Closed),
        "{shutdown:?}"
    );
    wait_until("the shim to exit", Duration::from_secs(30), || {
        !host::process_alive(pid)
    });
    wait_until("the shim's socket to go", Duration::from_secs(10), || {
        !socket.exists()
    });
    pid
}

/// The shim's log, read after it exited.
fn log(bundle: &Path) -> String {
    fs::read_to_string(bundle.join("log")).unwrap()
}

/// A cgroup for shims under this daemon's namespace (the harness removes it afterwards), made
/// in every hierarchy so that a shim can be moved into it (a v1 cpuset needs its cpus and
/// mems first).
fn shim_cgroup(cd: &Containerd, name: &str) -> String {
    let path = format!("/{}/{name}", cd.namespace());
    for dir in host::cgroup_dirs(&path) {
        fs::create_dir_all(&dir).unwrap();
        if dir.starts_with("/sys/fs/cgroup/cpuset") {
            for file in ["cpuset.cpus", "cpuset.mems"] {
                let root =
                    fs::read_to_string(Path::new("/sys/fs/cgroup/cpuset").join(file)).unwrap();
                for d in [dir.parent().unwrap(), &dir] {
                    fs::write(d.join(file), root.trim()).unwrap();
                }
            }
        }
    }
    path
}

/// Whether process `pid` is in the cgroup `path` (its memory one on cgroup v1).
fn in_cgroup(pid: u32, path: &str) -> bool {
    let own = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    own.lines().any(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, controllers, p) = (parts.next(), parts.next(), parts.next());
        p == Some(path)
            && (host::cgroup_v2_only() || controllers.is_some_and(|c| c.contains("memory")))
    })
}

#[test]
fn bootstrap_params_get_a_bootstrap_result_that_serves() {
    if !crossarch_only("the start protocol's handling") {
        return;
    }
    let cd = containerd!();
    let sockets = Sockets::default();
    let socket_dir = cd.dir().join("s").display().to_string();
    let cgroup = shim_cgroup(&cd, "boot-shim");

    // Debug level, runc's options with a shim cgroup, containerd's socket_dir.
    let id = "boot-debug";
    let b = sockets.bundle(&cd, id);
    let params = bootstrap_params(&cd, id, DEBUG, Some(&runc_options(&cgroup)), &socket_dir);
    let out = start(&cd, id, &b, true, Some(params));
    let (version, address, protocol) = bootstrap_result(&out);
    assert_eq!((version, protocol.as_str()), (2, "ttrpc"));
    let prefix = format!("unix://{socket_dir}/");
    let hash = address
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{address} is not in {socket_dir}"));
    assert_eq!(hash.len(), 64, "{address}");
    assert_eq!(
        fs::read_to_string(b.join("address")).unwrap(),
        address,
        "the bundle names the socket, for delete and for containerd 1.x"
    );
    let pid = cd.shim_pid(id).expect("a shim serves it");
    assert!(
        in_cgroup(pid, &cgroup),
        "the shim is in {cgroup}, as runc's options in the extension ask: {}",
        fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default()
    );
    connect_and_shut_down(&cd, id, &address);
    let text = log(&b);
    assert!(
        text.lines()
            .any(|l| l.contains("level=debug") && l.contains("no-such-task")),
        "the shim logs at debug level, as BootstrapParams ask:\n{text}"
    );
    assert!(
        text.contains(&format!("namespace={} id={id}", cd.namespace())),
        "{text}"
    );

    // Info level (the default, so no field at all) and CRI's options, no -debug: no debug
    // lines. Then error level: not even the info line that the shim is serving.
    for (id, level, serving) in [("boot-info", INFO, true), ("boot-error", ERROR, false)] {
        let b = sockets.bundle(&cd, id);
        let cri = any(
            RUNTIME_OPTIONS,
            &Msg::new()
                .bytes(1, "io.containerd.crossarch.v2")
                .bytes(3, "[init]\npgroup = true\n")
                .encode(),
        );
        let params = bootstrap_params(&cd, id, level, Some(&cri), &socket_dir);
        let (version, address, _) = bootstrap_result(&start(&cd, id, &b, false, Some(params)));
        assert_eq!(version, 2);
        connect_and_shut_down(&cd, id, &address);
        let text = log(&b);
        assert!(!text.contains("level=debug"), "{id}:\n{text}");
        assert_eq!(
            text.contains("level=info msg=\"crossarch shim"),
            serving,
            "{id}:\n{text}"
        );
    }
}

#[test]
fn both_protocols_name_the_same_socket_for_a_group() {
    if !crossarch_only("the start protocol's handling") {
        return;
    }
    let cd = containerd!();
    let sockets = Sockets::default();
    // containerd 2.3's default socket_dir is the legacy directory: a shim a containerd 2.2
    // started serves its group on after an upgrade, and the other way round.
    let pod = r#"{"annotations":{"io.kubernetes.cri.sandbox-id":"boot-pod"}}"#;
    let first = sockets.bundle(&cd, "boot-sandbox");
    fs::write(first.join("config.json"), pod).unwrap();
    let params = bootstrap_params(&cd, "boot-sandbox", INFO, None, "/run/containerd/s");
    let (_, address, _) =
        bootstrap_result(&start(&cd, "boot-sandbox", &first, false, Some(params)));
    let pid = cd.shim_pid("boot-sandbox").expect("a shim serves the pod");

    let second = sockets.bundle(&cd, "boot-member");
    fs::write(second.join("config.json"), pod).unwrap();
    let again = bare_address(&start(&cd, "boot-member", &second, false, None));
    assert_eq!(again, address, "the legacy start finds the pod's shim");
    assert_eq!(
        cd.shim_pids(),
        vec![pid],
        "no second shim was started for the pod"
    );
    connect_and_shut_down(&cd, "boot-sandbox", &address);
}

#[test]
fn legacy_stdin_gets_the_bare_address() {
    if !crossarch_only("the start protocol's handling") {
        return;
    }
    let cd = containerd!();
    let sockets = Sockets::default();
    let cgroup = shim_cgroup(&cd, "legacy-shim");
    let options = runc_options(&cgroup).encode();
    // The ambiguity containerd's shim library met: this Any also decodes as BootstrapParams
    // (its type URL as the id, its value as the namespace).
    assert!(fields(&options).is_some());
    let other_container = bootstrap_params(&cd, "someone-else", DEBUG, None, "/tmp/elsewhere");
    let cases: [(&str, Option<Vec<u8>>); 5] = [
        ("legacy-empty", None),
        ("legacy-runc-options", Some(options)),
        (
            "legacy-garbage",
            Some(b"\xff\x00\x13garbage\x0a\x80\x80".to_vec()),
        ),
        ("legacy-json", Some(br#"{"version":3}"#.to_vec())),
        ("legacy-other-params", Some(other_container)),
    ];
    for (id, stdin) in cases {
        let b = sockets.bundle(&cd, id);
        let with_options = id == "legacy-runc-options";
        let address = bare_address(&start(&cd, id, &b, with_options, stdin));
        let pid = cd.shim_pid(id).expect("a shim serves it");
        assert_eq!(in_cgroup(pid, &cgroup), with_options, "{id}");
        connect_and_shut_down(&cd, id, &address);
        let text = log(&b);
        assert_eq!(
            text.contains("level=debug"),
            with_options,
            "{id}: -debug:\n{text}"
        );
    }
}

#[test]
fn a_terminal_on_stdin_is_not_waited_for() {
    if !crossarch_only("the start protocol's handling") {
        return;
    }
    let cd = containerd!();
    let sockets = Sockets::default();
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty fills in two new descriptors, owned below.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both are open and owned by nothing else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let id = "legacy-tty";
    let b = sockets.bundle(&cd, id);
    let mut cmd = start_command(&cd, id, &b, false);
    cmd.stdin(Stdio::from(slave))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the start action waits on its terminal");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    drop(master);
    let address = bare_address(&out);
    connect_and_shut_down(&cd, id, &address);
}
