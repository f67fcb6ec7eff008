//! A harness that runs crossarch (or any shim v2 runtime) under a private containerd, driven
//! through `ctr` exactly as a user would.
//!
//! Environment:
//! - `CROSSARCH_TEST_RUNTIME`: the runtime under test (default `io.containerd.crossarch.v2`;
//!   `io.containerd.runc.v2` runs the same suite against containerd's Go shim, the reference).
//! - `CROSSARCH_SHIM_DIR`: where `containerd-shim-crossarch-v2` is (default
//!   `<workspace>/target/dist`, staged by scripts/build.sh); prepended to the private containerd's PATH.
//! - `CROSSARCH_FIXTURES`: the fixtures dir (default `<workspace>/fixtures/out`); its
//!   `rootfs/<arch>` is used as the containers' root, else one is built from the host's
//!   static busybox.
//! - `CI`: when set, missing prerequisites fail the tests instead of skipping them.

pub mod cmd;
pub mod cri;
pub mod crossarch;
pub mod events;
pub mod host;
pub mod image;
pub mod pty;
pub mod registry;
pub mod ttrpc;

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

pub use cmd::{OutputExt, DEFAULT_TIMEOUT};
pub use events::{Event, Events};
pub use pty::{PtyResult, Step};

/// The PATH given to containers started from a bare rootfs (no image config supplies one).
pub const CONTAINER_PATH: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The shim's own runc root, where runc keeps per-container state (`<root>/<ns>/<id>`).
pub const RUNC_ROOT: &str = "/run/containerd/runc";

pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration/ sits in the workspace")
        .to_path_buf()
}

/// The runtime name under test.
/// How many processes the runtime puts in front of the container's own: crossarch injects
/// its init as PID 1, runc-v2 none.
pub fn injected_processes() -> usize {
    usize::from(runtime() == "io.containerd.crossarch.v2")
}

/// The start of `/proc/1/cmdline` (NUL-separated) for a container running `args`.
pub fn pid1_cmdline(args: &[&str]) -> String {
    let mut v: Vec<&str> = Vec::new();
    if injected_processes() == 1 {
        v.extend(["/dev/.crossarch/init", "--"]);
    }
    v.extend(args);
    v.join("\0")
}

pub fn runtime() -> String {
    env::var("CROSSARCH_TEST_RUNTIME").unwrap_or_else(|_| "io.containerd.crossarch.v2".into())
}

/// The binary containerd starts for a runtime name, by containerd's own rule:
/// `io.containerd.runc.v2` → `containerd-shim-runc-v2`.
pub fn shim_binary_name(runtime: &str) -> String {
    let parts: Vec<&str> = runtime.split('.').collect();
    let n = parts.len();
    assert!(
        n >= 2,
        "runtime name {runtime:?} is not like io.containerd.<name>.<version>"
    );
    format!("containerd-shim-{}-{}", parts[n - 2], parts[n - 1])
}

pub fn shim_dir() -> PathBuf {
    env::var_os("CROSSARCH_SHIM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_dir().join("target/dist"))
}

pub fn fixtures_dir() -> PathBuf {
    env::var_os("CROSSARCH_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_dir().join("fixtures/out"))
}

/// The `(major, minor)` version of the node's runc (the one in PATH, which the private
/// containerd and its shims run too).
pub fn runc_version() -> (u32, u32) {
    let out = Command::new("runc")
        .arg("--version")
        .output()
        .expect("run runc --version");
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("runc version "))
        .unwrap_or_else(|| panic!("unexpected `runc --version`: {text}"));
    let mut parts = version
        .split(|c: char| !c.is_ascii_digit())
        .map(str::parse::<u32>);
    match (parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor),
        _ => panic!("unexpected runc version {version:?}"),
    }
}

/// The major version of the containerd in PATH, the one the tests start. containerd 2 no
/// longer spells an error's gRPC code out in the text `ctr` prints ("...: not found"): it
/// keeps it as the error's class (containerd/errdefs `errgrpc.ToNative`).
pub fn containerd_major() -> u32 {
    containerd_version().0
}

/// The `(major, minor)` version of the containerd in PATH.
pub fn containerd_version() -> (u32, u32) {
    let out = Command::new("containerd")
        .arg("--version")
        .output()
        .expect("run containerd --version");
    let text = String::from_utf8_lossy(&out.stdout);
    // "containerd github.com/containerd/containerd/v2 2.1.9+unknown <commit>"
    let parts: Vec<u32> = text
        .split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .trim_start_matches('v')
        .split(|c: char| !c.is_ascii_digit())
        .take(2)
        .filter_map(|n| n.parse().ok())
        .collect();
    match parts[..] {
        [major, minor] => (major, minor),
        _ => panic!("unexpected `containerd --version`: {text}"),
    }
}

/// The private containerd's log level: tests read what containerd logs of the events it
/// takes ("event forwarded"), a debug line in containerd 1.x and a trace line in 2.x
/// (`core/events/exchange/exchange.go`).
fn containerd_log_level() -> &'static str {
    if containerd_major() >= 2 {
        "trace"
    } else {
        "debug"
    }
}

/// Whether containerd, when it starts, deletes the tasks whose process exited while it was
/// down: 1.7 and later do ("cleaning leaked shim process", a loaded shim that is no
/// sandbox and reports no pids; containerd/containerd#6860), 1.6 keeps them STOPPED.
pub fn containerd_deletes_exited_tasks_at_start() -> bool {
    containerd_version() >= (1, 7)
}

/// Whether the node's runc (in PATH) joins a container's user namespace before its other
/// namespaces at exec, as runc before 1.3 does (opencontainers/runc#4390): then it cannot
/// exec into a container with its own user namespace that joins a pod's network namespace.
pub fn runc_joins_user_namespace_first() -> bool {
    runc_version() < (1, 3)
}

/// Whether `runc kill --all` signals every process of a container that has a PID namespace
/// of its own, as runc before 1.2 does. Later runc signals only its init then
/// (opencontainers/runc#3825), since the kernel kills the rest when the init goes.
pub fn runc_kill_all_reaches_every_process() -> bool {
    runc_version() < (1, 2)
}

/// The OCI name of this host's architecture, as the fixtures are named.
pub fn host_arch() -> &'static str {
    match env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Where `name` is in PATH.
pub fn in_path(name: &str) -> Option<PathBuf> {
    env::var_os("PATH").and_then(|paths| {
        env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// Why this machine cannot run the suite, if it cannot.
fn missing_prerequisites() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("the integration tests need root (they start containerd and runc)".into());
    }
    let mut missing: Vec<String> = ["containerd", "ctr", "runc", "python3"]
        .iter()
        .filter(|t| in_path(t).is_none())
        .map(|t| t.to_string())
        .collect();
    if !Path::new("/bin/busybox").is_file() && !fixture_rootfs().is_dir() {
        missing.push("/bin/busybox (busybox-static)".into());
    }
    if missing.is_empty() {
        None
    } else {
        Some(format!(
            "missing: {}; run scripts/install-deps.sh",
            missing.join(", ")
        ))
    }
}

/// The shim under test must exist: its absence is a build mistake, never a reason to skip.
fn assert_shim_present(runtime: &str) {
    let shim = shim_binary_name(runtime);
    assert!(
        shim_dir().join(&shim).is_file() || in_path(&shim).is_some(),
        "{shim} for runtime {runtime} is neither in {} nor in PATH: build it with \
         `scripts/build.sh`, set CROSSARCH_SHIM_DIR to where it is, \
         or choose another runtime with CROSSARCH_TEST_RUNTIME",
        shim_dir().display()
    );
}

fn fixture_rootfs() -> PathBuf {
    fixtures_dir().join("rootfs").join(host_arch())
}

/// Makes `dest` a root filesystem for the tests: a copy of the fixture rootfs if it was
/// built, else the host's static busybox with every applet linked into /bin.
fn prepare_rootfs(dest: &Path) {
    let fixture = fixture_rootfs();
    if fixture.join("bin/sh").exists() {
        let out = Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", fixture.display()))
            .arg(dest)
            .output()
            .expect("run cp");
        assert!(
            out.status.success(),
            "copy {}: {}",
            fixture.display(),
            out.show()
        );
        return;
    }
    let bin = dest.join("bin");
    fs::create_dir_all(&bin).unwrap();
    fs::copy("/bin/busybox", bin.join("busybox")).expect("copy /bin/busybox");
    let list = Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" && !applet.is_empty() {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
    }
    for d in ["proc", "sys", "dev", "tmp", "etc", "root"] {
        fs::create_dir_all(dest.join(d)).unwrap();
    }
    fs::write(dest.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    fs::write(dest.join("etc/group"), "root:x:0:\n").unwrap();
}

/// A containerd namespace name unique on this host (cgroups paths derive from it), made
/// readable from the test's name.
fn unique_namespace() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let test = thread::current().name().unwrap_or("test").to_string();
    let mut label = String::new();
    for c in test.chars() {
        if c.is_ascii_alphanumeric() {
            label.push(c.to_ascii_lowercase());
        } else if !label.ends_with('-') {
            label.push('-');
        }
    }
    let label: String = label.trim_matches('-').chars().take(40).collect();
    format!(
        "cx{}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        label.trim_matches('-')
    )
}

/// A private containerd daemon with its own root, state, socket and namespace.
pub struct Containerd {
    dir: tempfile::TempDir,
    ns: String,
    runtime: String,
    daemon: Option<Child>,
    rootfs: PathBuf,
    /// containerd's PATH, shims and runc included; `None`: the shim dir, then the test's.
    path: Option<std::ffi::OsString>,
    /// Whether the daemon runs chrooted ([`Options::chroot`]).
    chroot: bool,
    /// More variables in the daemon's environment ([`Options::env`]).
    env: Vec<(String, std::ffi::OsString)>,
}

/// How [`Containerd::start_with_options`] sets the daemon up.
#[derive(Default)]
pub struct Options {
    /// containerd's whole PATH (so the shims' and runc's): e.g. one without runc.
    pub path: Option<std::ffi::OsString>,
    /// Mount a tmpfs of this many bytes as containerd's state dir, where the bundles live;
    /// the daemon's cleanup unmounts it.
    pub state_tmpfs_bytes: Option<u64>,
    /// Run containerd chrooted, as some node images do: in a mount namespace of its own, it
    /// chroots into a recursive bind of `/`, so it sees the same files, and the kernel
    /// refuses it (and its shims and runc) user namespaces.
    pub chroot: bool,
    /// More variables in containerd's environment, which its shims inherit.
    pub env: Vec<(String, std::ffi::OsString)>,
}

/// Starts a private containerd, or returns from the test after saying why it cannot
/// (outside CI only; with `CI` set the test fails).
#[macro_export]
macro_rules! containerd {
    () => {
        match $crate::Containerd::start() {
            Some(c) => c,
            None => return,
        }
    };
}

impl Containerd {
    /// Starts the daemon and waits until it answers. `None` (after a message) when this
    /// machine lacks what the suite needs and `CI` is not set; panics in CI.
    pub fn start() -> Option<Containerd> {
        Containerd::start_with(None)
    }

    /// Like [`Containerd::start`], with containerd's CRI plugin on, configured by `cri`: the
    /// tables under `[plugins."io.containerd.grpc.v1.cri"]`, given this daemon's directory.
    pub fn start_with_cri(cri: &dyn Fn(&Path) -> String) -> Option<Containerd> {
        Containerd::start_with(Some(cri))
    }

    /// Like [`Containerd::start`], set up as `options` says.
    pub fn start_with_options(options: Options) -> Option<Containerd> {
        Containerd::start_full(None, options)
    }

    /// [`Containerd::start_with_cri`] set up as `options` says.
    pub fn start_with_cri_and_options(
        cri: &dyn Fn(&Path) -> String,
        options: Options,
    ) -> Option<Containerd> {
        Containerd::start_full(Some(cri), options)
    }

    fn start_with(cri: Option<&dyn Fn(&Path) -> String>) -> Option<Containerd> {
        Containerd::start_full(cri, Options::default())
    }

    fn start_full(cri: Option<&dyn Fn(&Path) -> String>, options: Options) -> Option<Containerd> {
        let runtime = runtime();
        if let Some(why) = missing_prerequisites() {
            if env::var_os("CI").is_some() {
                panic!("{why}");
            }
            eprintln!("SKIPPED: {why}");
            return None;
        }
        assert_shim_present(&runtime);
        // Short path: socket paths must stay under 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("cx-")
            .tempdir_in("/tmp")
            .expect("make temp dir");
        for d in ["root", "state", "rootfs", "opt"] {
            fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        if let Some(bytes) = options.state_tmpfs_bytes {
            let out = Command::new("mount")
                .args(["-t", "tmpfs", "-o"])
                .arg(format!("size={bytes},mode=0711"))
                .arg("crossarch-test-state")
                .arg(dir.path().join("state"))
                .output()
                .expect("run mount");
            assert!(
                out.status.success(),
                "mount a tmpfs state dir: {}",
                out.show()
            );
        }
        prepare_rootfs(&dir.path().join("rootfs"));
        let p = dir.path();
        let (disabled, cri) = match cri {
            Some(cri) => ("", cri(p)),
            None => (r#""io.containerd.grpc.v1.cri""#, String::new()),
        };
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = [{disabled}]

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[debug]
  level = "{level}"
  address = "{debug}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
{cri}"#,
            root = p.join("root").display(),
            state = p.join("state").display(),
            sock = p.join("c.sock").display(),
            debug = p.join("debug.sock").display(),
            opt = p.join("opt").display(),
            level = containerd_log_level(),
        );
        fs::write(p.join("config.toml"), config).unwrap();
        let mut cd = Containerd {
            rootfs: p.join("rootfs"),
            dir,
            ns: unique_namespace(),
            runtime,
            daemon: None,
            path: options.path,
            chroot: options.chroot,
            env: options.env,
        };
        cd.spawn_daemon();
        cd.ctr(&["namespaces", "create", &cd.ns.clone()]).ok();
        Some(cd)
    }

    fn spawn_daemon(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let path = match self.path.clone().or_else(|| env::var_os("PATH")) {
            Some(p) if self.path.is_some() => p,
            Some(p) => {
                let mut dirs = vec![shim_dir()];
                dirs.extend(env::split_paths(&p));
                env::join_paths(dirs).unwrap()
            }
            None => shim_dir().into_os_string(),
        };
        let child = {
            use std::os::unix::process::CommandExt;
            let mut daemon = if self.chroot {
                // Each step execs the next: the child's pid stays containerd's. The mount
                // namespace, and the bind in it, go with the daemon and its shims.
                let root = self.dir.path().join("chroot");
                fs::create_dir_all(&root).unwrap();
                let mut c = Command::new("unshare");
                c.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
                    .arg(r#"mount --rbind / "$1" && exec chroot "$1" containerd --config "$2""#)
                    .arg("sh")
                    .arg(&root)
                    .arg(self.dir.path().join("config.toml"));
                c
            } else {
                let mut c = Command::new("containerd");
                c.arg("--config").arg(self.dir.path().join("config.toml"));
                c
            };
            daemon
                .env("PATH", path)
                .envs(self.env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                // Its own process group: a ^C to the test runner is not the daemon's business.
                .process_group(0)
                .spawn()
                .expect("start containerd")
        };
        self.daemon = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = cmd::try_run_with_timeout(
                self.ctr_command(&["version"]),
                None,
                Duration::from_secs(10),
            );
            if matches!(&out, Ok(o) if o.status.success()) {
                return;
            }
            if let Some(Ok(Some(status))) = self.daemon.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "containerd exited ({status}) at start; log:\n{}",
                    self.log_tail(40)
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "containerd did not answer within 30s; log:\n{}",
                    self.log_tail(40)
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop_daemon(&mut self) {
        let Some(mut child) = self.daemon.take() else {
            return;
        };
        host::signal(child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Stops the daemon (only the daemon: shims and containers go on) and starts it again
    /// on the same root, state and socket.
    pub fn restart(&mut self) {
        self.stop_daemon();
        self.spawn_daemon();
    }

    /// SIGKILLs the daemon (only the daemon: shims and containers go on) and waits until it
    /// is gone. [`Containerd::start_daemon`] brings it back.
    pub fn kill_daemon(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the daemon again after [`Containerd::kill_daemon`], on the same root, state
    /// and socket, and waits until it answers.
    pub fn start_daemon(&mut self) {
        assert!(self.daemon.is_none(), "containerd is already running");
        self.spawn_daemon();
    }

    pub fn namespace(&self) -> &str {
        &self.ns
    }
    pub fn runtime(&self) -> &str {
        &self.runtime
    }
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
    pub fn address(&self) -> PathBuf {
        self.dir.path().join("c.sock")
    }
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("containerd.log")
    }
    /// The root filesystem `run` gives containers. It is this daemon's own copy, so tests
    /// may read files containers wrote into it.
    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }
    /// The task's bundle directory, where containerd and the shim keep its files.
    pub fn bundle(&self, id: &str) -> PathBuf {
        self.state_dir()
            .join("io.containerd.runtime.v2.task")
            .join(&self.ns)
            .join(id)
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let log = fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// `ctr --address <ours> -n <ns> ARGS`, not yet run.
    pub fn ctr_command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address")
            .arg(self.address())
            .arg("-n")
            .arg(&self.ns)
            .args(args);
        c
    }

    /// The argv of `ctr ... ARGS`, to run it some other way (e.g. under a terminal).
    pub fn ctr_argv(&self, args: &[&str]) -> Vec<String> {
        let c = self.ctr_command(args);
        std::iter::once(c.get_program())
            .chain(c.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    /// Runs `ctr ARGS` with no stdin, within [`DEFAULT_TIMEOUT`].
    pub fn ctr(&self, args: &[&str]) -> Output {
        cmd::run_with_timeout(self.ctr_command(args), None, DEFAULT_TIMEOUT)
    }

    /// Runs `ctr ARGS` with `stdin` then EOF as its standard input.
    pub fn ctr_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        cmd::run_with_timeout(
            self.ctr_command(args),
            Some(stdin.to_vec()),
            DEFAULT_TIMEOUT,
        )
    }

    /// The `ctr run` arguments for a container `id` on this daemon's rootfs with the runtime
    /// under test: `run --runtime R --env PATH=.. OPTS --rootfs ROOTFS ID ARGV`.
    pub fn run_args(&self, id: &str, opts: &[&str], argv: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "run".into(),
            "--runtime".into(),
            self.runtime.clone(),
            "--env".into(),
            CONTAINER_PATH.into(),
        ];
        args.extend(opts.iter().map(|s| s.to_string()));
        args.push("--rootfs".into());
        args.push(self.rootfs.display().to_string());
        args.push(id.into());
        args.extend(argv.iter().map(|s| s.to_string()));
        args
    }

    /// `ctr run` (see [`Containerd::run_args`]) to completion.
    pub fn run(&self, id: &str, opts: &[&str], argv: &[&str]) -> Output {
        let args = self.run_args(id, opts, argv);
        self.ctr(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Runs `ctr ARGS` with `stdin` as its standard input, closed only once `ready()`.
    pub fn ctr_stdin_eof_when(
        &self,
        args: &[&str],
        stdin: &[u8],
        ready: &(dyn Fn() -> bool + Sync),
    ) -> Output {
        cmd::try_run(
            self.ctr_command(args),
            cmd::Stdin::DataThenEofWhen(stdin.to_vec(), ready),
            DEFAULT_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `ctr run` with `stdin` piped in (`ctr` 1.6 always forwards its stdin). The EOF is
    /// held back until the task runs: `ctr` drops an EOF that comes before its task exists.
    pub fn run_stdin(&self, id: &str, opts: &[&str], argv: &[&str], stdin: &[u8]) -> Output {
        let args = self.run_args(id, opts, argv);
        let started = || {
            matches!(
                self.task_status(id).as_deref(),
                Some("RUNNING") | Some("STOPPED")
            )
        };
        self.ctr_stdin_eof_when(
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            stdin,
            &started,
        )
    }

    /// Starts a detached container and waits until its task is RUNNING.
    pub fn run_detached(&self, id: &str, opts: &[&str], argv: &[&str]) {
        let mut all = vec!["-d"];
        all.extend_from_slice(opts);
        self.run(id, &all, argv).ok();
        self.wait_status(id, "RUNNING", Duration::from_secs(30));
    }

    /// `(pid, status)` of a task as `ctr task ls` shows it, `None` if it has no task.
    pub fn task(&self, id: &str) -> Option<(u32, String)> {
        let out = self.ctr(&["task", "ls"]);
        out.ok();
        out.stdout_text().lines().skip(1).find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && f[0] == id).then(|| (f[1].parse().unwrap_or(0), f[2].to_string()))
        })
    }

    pub fn task_status(&self, id: &str) -> Option<String> {
        self.task(id).map(|(_, s)| s)
    }

    pub fn task_pid(&self, id: &str) -> u32 {
        self.task(id)
            .unwrap_or_else(|| panic!("container {id} has no task"))
            .0
    }

    /// Polls `ctr task ls` until the task shows `status`; panics after `timeout`.
    pub fn wait_status(&self, id: &str, status: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.task_status(id);
            if now.as_deref() == Some(status) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "task {id} is {now:?}, not {status}, after {timeout:?}; containerd log:\n{}",
                    self.log_tail(30)
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls until the container has no task any more.
    pub fn wait_no_task(&self, id: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while let Some(t) = self.task(id) {
            assert!(Instant::now() < deadline, "task {id} still there: {t:?}");
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Imports a busybox image for this host's architecture and returns its name: the
    /// fixture archive `images/busybox-<arch>.tar` if it was built, else an OCI archive made
    /// here from the rootfs. Image containers get their root from a snapshot mount.
    pub fn import_image(&self) -> String {
        let fixture = fixtures_dir()
            .join("images")
            .join(format!("busybox-{}.tar", host_arch()));
        let archive = if fixture.is_file() {
            fixture
        } else {
            image::oci_archive(&self.rootfs, &self.dir.path().join("image"))
        };
        let archive = archive.display().to_string();
        self.ctr(&["images", "import", &archive]).ok();
        let ls = self.ctr(&["images", "ls", "-q"]);
        ls.ok();
        ls.stdout_text()
            .lines()
            .next()
            .unwrap_or_else(|| panic!("importing {archive} gave no image"))
            .to_string()
    }

    /// Subscribes to `ctr events`; returns once the subscription is live.
    pub fn events(&self) -> Events {
        let ns = self.ns.clone();
        let mut base = Command::new("ctr");
        base.arg("--address").arg(self.address());
        Events::subscribe(base, &self.ns, |n| {
            self.ctr(&["namespaces", "label", &ns, &format!("events-probe={n}")])
                .ok();
        })
    }

    /// The container's OCI spec, as containerd stores it.
    pub fn spec(&self, id: &str) -> serde_json::Value {
        let out = self.ctr(&["container", "info", id]);
        out.ok();
        let info: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("ctr container info prints JSON");
        info["Spec"].clone()
    }

    /// Asserts that container `id` left nothing on the node: no mount under its `bundle` and
    /// no bundle, no runc state (the default root and this daemon's), no cgroup at `cgroup`.
    pub fn assert_nothing_left(&self, id: &str, bundle: &Path, cgroup: &str) {
        let mounts = host::mounts_under(bundle);
        assert!(
            mounts.is_empty(),
            "mounts left under the bundle: {mounts:?}"
        );
        assert!(!bundle.exists(), "bundle left: {}", bundle.display());
        for runc_state in [
            Path::new(RUNC_ROOT).join(&self.ns).join(id),
            self.state_dir().join("runc").join(&self.ns).join(id),
        ] {
            assert!(
                !runc_state.exists(),
                "runc state left: {}",
                runc_state.display()
            );
        }
        let left: Vec<_> = host::cgroup_dirs(cgroup)
            .into_iter()
            .filter(|d| d.exists())
            .collect();
        assert!(left.is_empty(), "cgroups left: {left:?}");
    }

    /// The cgroups path the container's spec asks for (ctr's default: `/<ns>/<id>`).
    pub fn cgroups_path(&self, id: &str) -> String {
        self.spec(id)["linux"]["cgroupsPath"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Live shim processes serving this daemon (their argv names our socket).
    pub fn shim_pids(&self) -> Vec<u32> {
        let name = shim_binary_name(&self.runtime);
        let address = self.address().display().to_string();
        host::find_processes(|argv| {
            Path::new(&argv[0]).file_name().and_then(|n| n.to_str()) == Some(name.as_str())
                && argv.contains(&address)
                && !argv.iter().any(|a| a == "start" || a == "delete")
        })
    }

    /// The shim process serving the shim id `shim_id` (a container id, or a group's id).
    pub fn shim_pid(&self, shim_id: &str) -> Option<u32> {
        self.shim_pids().into_iter().find(|&pid| {
            let argv = host::cmdline(pid);
            argv.windows(2).any(|w| w[0] == "-id" && w[1] == shim_id)
        })
    }

    /// The shim's ttrpc socket for a container, read from the bundle's `address` file.
    pub fn shim_socket(&self, id: &str) -> PathBuf {
        let raw = fs::read_to_string(self.bundle(id).join("address"))
            .unwrap_or_else(|e| panic!("read shim address of {id}: {e}"));
        PathBuf::from(raw.trim().trim_start_matches("unix://"))
    }

    fn cleanup(&mut self) {
        let quick = Duration::from_secs(20);
        let list = |what: &str| -> Vec<String> {
            cmd::try_run_with_timeout(self.ctr_command(&[what, "ls", "-q"]), None, quick)
                .map(|o| o.stdout_text().lines().map(str::to_string).collect())
                .unwrap_or_default()
        };
        if self.daemon.is_some() {
            for id in list("task") {
                let _ = cmd::try_run_with_timeout(
                    self.ctr_command(&["task", "delete", "--force", &id]),
                    None,
                    quick,
                );
            }
            for id in list("container") {
                let _ = cmd::try_run_with_timeout(
                    self.ctr_command(&["container", "delete", &id]),
                    None,
                    quick,
                );
            }
        }
        self.stop_daemon();
        // Whatever still names our socket was started for this test.
        for pid in self.shim_pids() {
            host::signal(pid, libc::SIGKILL);
        }
        for m in host::mounts_under(self.dir.path()) {
            host::unmount(&m);
        }
        for d in host::cgroup_dirs(&format!("/{}", self.ns)) {
            host::remove_cgroup_tree(&d);
        }
        let _ = fs::remove_dir_all(Path::new(RUNC_ROOT).join(&self.ns));
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "--- containerd log ({}), last lines ---\n{}",
                self.log_path().display(),
                self.log_tail(60)
            );
        }
        self.cleanup();
        // Every test fails when a shim panicked, even if what it checked still held.
        if !thread::panicking() {
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            let panics: Vec<&str> = log.lines().filter(|l| l.contains(SHIM_PANIC)).collect();
            assert!(
                panics.is_empty(),
                "a shim panicked during this test:\n{}",
                panics.join("\n")
            );
        }
    }
}

/// What the crossarch shim logs when it panics (`logger::PANIC_MARK`).
pub const SHIM_PANIC: &str = "shim panicked:";

/// Polls `cond` until it holds; panics with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}
