//! fake-runc: just enough of runc's command line, as crossarch's shim calls it, for the
//! shim's unit tests to run its Task API without root, containers or runc.
//!
//! It makes no namespaces, cgroups or root file system. What it makes is real processes:
//! - `create` forks the container's init, which blocks on `<root>/<id>/exec.fifo` until
//!   `start` reads it, as runc's init does. The pid file is written before `create` exits,
//!   and the init is then re-parented to the caller's subreaper (the shim, or a test).
//! - `exec --detach` forks a process that runs at once.
//! - `kill`, `pause`, `resume` and `delete --force` send real signals, so the exits reach the
//!   caller's reaper with real statuses (143 after SIGTERM, 137 after SIGKILL).
//! - When the init exits, each exec is killed with SIGKILL, as the kernel kills what is left
//!   in a PID namespace whose init died.
//!
//! The processes exec nothing: they follow `process.args[1..]` as a script, one step after
//! the other (`args[0]` is only the binary the shim inspects before runc sees the spec):
//!   `sleep SECONDS` (fractions allowed), `exit CODE`, `echo WORD` (one line on stdout).
//! After the last step a process exits 0.
//!
//! Errors go to the `--log` file as runc's JSON lines, `{"level":"error","msg":...}`, in
//! runc's words where the shim reads them ("container does not exist", "container not
//! running"), and the exit status is 1. Subcommands and flags the shim does not use are
//! refused, so that a shim that starts using one fails its tests loudly instead of passing
//! against a stand-in that ignored it.
//!
//! State, in `<root>/<id>/`: `init` (its pid, start time and bundle), `exec-<pid>` for each
//! exec, `exec.fifo` until the start, `paused` while paused. A pid is only trusted together
//! with its start time, so a reused pid is never signalled.

use std::{
    ffi::CString,
    fs,
    io::{Read, Write},
    os::{fd::RawFd, unix::fs::OpenOptionsExt},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde_json::{json, Value};

type Result<T> = std::result::Result<T, String>;

/// How long `start` waits for the init to open its fifo, and `delete` for processes to die.
const PATIENCE: Duration = Duration::from_secs(10);

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    let mut root = PathBuf::from("/run/fake-runc");
    let mut log = None;
    while let Some(flag) = args.next_if(|a| a.starts_with('-')) {
        match flag.as_str() {
            "--root" | "--log" | "--log-format" => {
                let Some(value) = args.next() else {
                    fail(log.as_deref(), &format!("{flag} needs a value"));
                };
                match flag.as_str() {
                    "--root" => root = value.into(),
                    "--log" => log = Some(PathBuf::from(value)),
                    _ => {}
                }
            }
            "--systemd-cgroup" | "--debug" => {}
            "--version" | "-v" => {
                println!("runc version 1.3.0+fake\ncommit: fake-runc\nspec: 1.2.0");
                return;
            }
            other => fail(log.as_deref(), &format!("unknown global flag {other}")),
        }
    }
    let runc = Runc { root };
    let sub = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    let r = match sub.as_str() {
        "create" => Cmd::parse(
            rest,
            &["--bundle", "-b", "--pid-file", "--console-socket"],
            &["--no-pivot", "--no-new-keyring"],
        )
        .and_then(|c| runc.create(&c)),
        "start" => Cmd::parse(rest, &[], &[]).and_then(|c| runc.start(&c)),
        "kill" => Cmd::parse(rest, &[], &["--all", "-a"]).and_then(|c| runc.kill(&c)),
        "delete" => Cmd::parse(rest, &[], &["--force", "-f"]).and_then(|c| runc.delete(&c)),
        "exec" => Cmd::parse(
            rest,
            &["--process", "-p", "--pid-file", "--console-socket"],
            &["--detach", "-d"],
        )
        .and_then(|c| runc.exec(&c)),
        "pause" => Cmd::parse(rest, &[], &[]).and_then(|c| runc.pause(&c, true)),
        "resume" => Cmd::parse(rest, &[], &[]).and_then(|c| runc.pause(&c, false)),
        "ps" => Cmd::parse(rest, &["--format", "-f"], &[]).and_then(|c| runc.ps(&c)),
        "update" => Cmd::parse(rest, &["--resources", "-r"], &[]).and_then(|c| runc.update(&c)),
        "state" => Cmd::parse(rest, &[], &[]).and_then(|c| runc.state(&c)),
        "" => Err("no subcommand".into()),
        other => Err(format!("fake runc: unsupported subcommand {other:?}")),
    };
    if let Err(msg) = r {
        fail(log.as_deref(), &msg);
    }
}

/// Reports `msg` as runc does, in its JSON log and on stderr, and exits 1.
fn fail(log: Option<&Path>, msg: &str) -> ! {
    if let Some(log) = log {
        let line = json!({"level": "error", "msg": msg}).to_string();
        if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(log) {
            let _ = writeln!(f, "{line}");
        }
    }
    eprintln!("fake-runc: {msg}");
    std::process::exit(1);
}

/// One subcommand's flags and operands.
struct Cmd {
    values: Vec<(String, String)>,
    switches: Vec<String>,
    operands: Vec<String>,
}

impl Cmd {
    fn parse(args: Vec<String>, valued: &[&str], switches: &[&str]) -> Result<Cmd> {
        let mut cmd = Cmd {
            values: Vec::new(),
            switches: Vec::new(),
            operands: Vec::new(),
        };
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            if valued.contains(&a.as_str()) {
                let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
                cmd.values.push((a, v));
            } else if switches.contains(&a.as_str()) {
                cmd.switches.push(a);
            } else if a.starts_with('-') && a.len() > 1 {
                return Err(format!("fake runc: unsupported flag {a}"));
            } else {
                cmd.operands.push(a);
            }
        }
        Ok(cmd)
    }

    fn value(&self, names: &[&str]) -> Option<&str> {
        self.values
            .iter()
            .rfind(|(k, _)| names.contains(&k.as_str()))
            .map(|(_, v)| v.as_str())
    }

    fn has(&self, names: &[&str]) -> bool {
        self.switches.iter().any(|s| names.contains(&s.as_str()))
    }

    /// The container id, the first operand; `more` operands may follow it.
    fn id(&self, more: usize) -> Result<&str> {
        match self.operands.first() {
            Some(id) if self.operands.len() <= 1 + more => Ok(id),
            Some(_) => Err(format!("too many operands: {:?}", self.operands)),
            None => Err("container id cannot be empty".into()),
        }
    }
}

/// A process, known by its pid and its start time (field 22 of `/proc/<pid>/stat`).
#[derive(Clone, Copy)]
struct Proc {
    pid: i32,
    start: u64,
}

/// The state letter and start time of `pid`.
fn stat(pid: i32) -> Option<(char, u64)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; the fields after its last ')' do not.
    let fields: Vec<&str> = s[s.rfind(')')? + 1..].split_whitespace().collect();
    Some((
        fields.first()?.chars().next()?,
        fields.get(19)?.parse().ok()?,
    ))
}

impl Proc {
    fn of(pid: i32) -> Option<Proc> {
        stat(pid).map(|(_, start)| Proc { pid, start })
    }

    /// Running, stopped or sleeping; a zombie has exited.
    fn alive(&self) -> bool {
        matches!(stat(self.pid), Some((state, start)) if start == self.start && !matches!(state, 'Z' | 'X' | 'x'))
    }

    fn signal(&self, sig: i32) -> bool {
        // SAFETY: kill(2) has no memory effects.
        self.alive() && unsafe { libc::kill(self.pid, sig) } == 0
    }

    fn to_json(self) -> Value {
        json!({"pid": self.pid, "start": self.start})
    }

    fn from_json(v: &Value) -> Option<Proc> {
        Some(Proc {
            pid: i32::try_from(v["pid"].as_i64()?).ok()?,
            start: v["start"].as_u64()?,
        })
    }
}

struct Runc {
    root: PathBuf,
}

struct Container {
    id: String,
    dir: PathBuf,
    bundle: String,
    init: Proc,
}

impl Container {
    fn fifo(&self) -> PathBuf {
        self.dir.join("exec.fifo")
    }

    fn execs(&self) -> Vec<Proc> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| {
                let e = e.ok()?;
                e.file_name().to_str()?.strip_prefix("exec-")?;
                Proc::from_json(&read_json(&e.path()).ok()?)
            })
            .collect()
    }

    /// The init, then the execs.
    fn processes(&self) -> Vec<Proc> {
        let mut all = vec![self.init];
        all.extend(self.execs());
        all
    }

    fn status(&self) -> &'static str {
        if !self.init.alive() {
            "stopped"
        } else if self.fifo().exists() {
            "created"
        } else if self.dir.join("paused").exists() {
            "paused"
        } else {
            "running"
        }
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let text = fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_slice(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))
}

/// Writes `text` so that a reader sees all of it or nothing, as runc writes its pid file.
fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    fs::write(&tmp, text)
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// A process spec's args: what the shim inspects, then the script.
fn script_of(process: &Value) -> Result<Vec<String>> {
    let args: Vec<String> = process["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if args.is_empty() {
        return Err("args must not be empty".into());
    }
    Ok(args)
}

fn signal_number(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return Ok(n);
    }
    let name = s.strip_prefix("SIG").unwrap_or(s);
    Ok(match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        _ => return Err(format!("unknown signal {s:?}")),
    })
}

fn fork() -> Result<i32> {
    // SAFETY: this program is single-threaded; the child only makes system calls and exits.
    match unsafe { libc::fork() } {
        -1 => Err(format!("fork: {}", std::io::Error::last_os_error())),
        pid => Ok(pid),
    }
}

impl Runc {
    fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    fn load(&self, id: &str) -> Result<Container> {
        let dir = self.dir(id);
        let Ok(v) = read_json(&dir.join("init")) else {
            return Err(format!("container does not exist: {id}"));
        };
        let init = Proc::from_json(&v).ok_or_else(|| format!("container {id}: bad state"))?;
        Ok(Container {
            id: id.to_string(),
            dir,
            bundle: v["bundle"].as_str().unwrap_or_default().to_string(),
            init,
        })
    }

    fn create(&self, cmd: &Cmd) -> Result<()> {
        if cmd.value(&["--console-socket"]).is_some() {
            return Err("fake runc: no terminals (--console-socket)".into());
        }
        let id = cmd.id(0)?;
        let bundle = PathBuf::from(cmd.value(&["--bundle", "-b"]).unwrap_or("."));
        let spec = read_json(&bundle.join("config.json"))?;
        let script = script_of(&spec["process"])?;
        let dir = self.dir(id);
        fs::create_dir_all(&self.root).map_err(|e| format!("cannot create the root: {e}"))?;
        fs::create_dir(&dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => format!("container with id exists: {id}"),
            _ => format!("cannot create {}: {e}", dir.display()),
        })?;
        let fifo = dir.join("exec.fifo");
        let c_fifo =
            CString::new(fifo.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
        // SAFETY: a valid C string.
        if unsafe { libc::mkfifo(c_fifo.as_ptr(), 0o600) } != 0 {
            return Err(format!("mkfifo: {}", std::io::Error::last_os_error()));
        }
        let pid = fork()?;
        if pid == 0 {
            // SAFETY: plain system calls in the child.
            unsafe { libc::setsid() };
            wait_for_start(&c_fifo);
            run(&script, None);
        }
        let init = Proc::of(pid).ok_or("the init vanished at once")?;
        let mut state = init.to_json();
        state["bundle"] = bundle.display().to_string().into();
        write_atomic(&dir.join("init"), &state.to_string())?;
        if let Some(pid_file) = cmd.value(&["--pid-file"]) {
            write_atomic(Path::new(pid_file), &pid.to_string())?;
        }
        Ok(())
    }

    fn start(&self, cmd: &Cmd) -> Result<()> {
        let c = self.load(cmd.id(0)?)?;
        match c.status() {
            "created" => {}
            "stopped" => return Err("cannot start a container that has stopped".into()),
            _ => return Err("cannot start an already running container".into()),
        }
        let fifo = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(c.fifo())
            .map_err(|e| format!("cannot open exec.fifo: {e}"))?;
        let since = Instant::now();
        loop {
            let mut p = libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(&fifo),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut p, 1, 50) } > 0 {
                break;
            }
            if !c.init.alive() {
                return Err("cannot start a container that has stopped".into());
            }
            if since.elapsed() > PATIENCE {
                return Err("the init never opened exec.fifo".into());
            }
        }
        let mut byte = [0u8; 1];
        let _ = (&fifo).read(&mut byte);
        fs::remove_file(c.fifo()).map_err(|e| format!("cannot remove exec.fifo: {e}"))
    }

    fn kill(&self, cmd: &Cmd) -> Result<()> {
        let id = cmd.id(1)?;
        let sig = signal_number(cmd.operands.get(1).map_or("SIGTERM", String::as_str))?;
        let c = self.load(id)?;
        if cmd.has(&["--all", "-a"]) {
            for p in c.processes() {
                p.signal(sig);
            }
            return Ok(());
        }
        if !c.init.signal(sig) {
            return Err("container not running".into());
        }
        Ok(())
    }

    fn delete(&self, cmd: &Cmd) -> Result<()> {
        let c = self.load(cmd.id(0)?)?;
        let status = c.status();
        if status != "stopped" && !cmd.has(&["--force", "-f"]) {
            return Err(format!(
                "cannot delete container {} that is not stopped: {status}",
                c.id
            ));
        }
        let all = c.processes();
        for p in &all {
            p.signal(libc::SIGKILL);
        }
        let since = Instant::now();
        while all.iter().any(Proc::alive) {
            if since.elapsed() > PATIENCE {
                return Err(format!("container {}: processes outlived SIGKILL", c.id));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        fs::remove_dir_all(&c.dir).map_err(|e| format!("cannot remove {}: {e}", c.dir.display()))
    }

    fn exec(&self, cmd: &Cmd) -> Result<()> {
        if cmd.value(&["--console-socket"]).is_some() {
            return Err("fake runc: no terminals (--console-socket)".into());
        }
        if !cmd.has(&["--detach", "-d"]) {
            return Err("fake runc: exec without --detach is not supported".into());
        }
        let process = cmd
            .value(&["--process", "-p"])
            .ok_or("fake runc: exec needs --process")?;
        let script = script_of(&read_json(Path::new(process))?)?;
        let c = self.load(cmd.id(0)?)?;
        // SAFETY: pidfd_open(2) takes a pid and flags.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, c.init.pid, 0) } as RawFd;
        // Checked after the open: the pidfd is the init's and not a reused pid's.
        if pidfd < 0 || !c.init.alive() {
            return Err("cannot exec in a stopped container".into());
        }
        let pid = fork()?;
        if pid == 0 {
            // SAFETY: a plain system call in the child.
            unsafe { libc::setsid() };
            run(&script, Some(pidfd));
        }
        // SAFETY: the parent's copy of its own descriptor.
        unsafe { libc::close(pidfd) };
        // A process that already exited is a zombie of this one until it exits: still there.
        let p = Proc::of(pid).ok_or("the exec vanished at once")?;
        write_atomic(&c.dir.join(format!("exec-{pid}")), &p.to_json().to_string())?;
        if let Some(pid_file) = cmd.value(&["--pid-file"]) {
            write_atomic(Path::new(pid_file), &pid.to_string())?;
        }
        Ok(())
    }

    fn pause(&self, cmd: &Cmd, pause: bool) -> Result<()> {
        let c = self.load(cmd.id(0)?)?;
        let marker = c.dir.join("paused");
        match (pause, c.status()) {
            (true, "running") => {
                for p in c.processes() {
                    p.signal(libc::SIGSTOP);
                }
                fs::write(&marker, "").map_err(|e| e.to_string())
            }
            (true, _) => Err("container not running".into()),
            (false, "paused") => {
                for p in c.processes() {
                    p.signal(libc::SIGCONT);
                }
                fs::remove_file(&marker).map_err(|e| e.to_string())
            }
            (false, _) => Err("container not paused".into()),
        }
    }

    fn ps(&self, cmd: &Cmd) -> Result<()> {
        if cmd.value(&["--format", "-f"]) != Some("json") {
            return Err("fake runc: ps speaks --format json only".into());
        }
        let c = self.load(cmd.id(0)?)?;
        let pids: Vec<i32> = c
            .processes()
            .into_iter()
            .filter(Proc::alive)
            .map(|p| p.pid)
            .collect();
        println!("{}", json!(pids));
        Ok(())
    }

    fn update(&self, cmd: &Cmd) -> Result<()> {
        if cmd.value(&["--resources", "-r"]) != Some("-") {
            return Err("fake runc: update reads --resources - only".into());
        }
        let c = self.load(cmd.id(0)?)?;
        let mut text = String::new();
        let _ = std::io::stdin().read_to_string(&mut text);
        serde_json::from_str::<Value>(&text)
            .map(drop)
            .map_err(|e| format!("container {}: invalid resources: {e}", c.id))
    }

    fn state(&self, cmd: &Cmd) -> Result<()> {
        let c = self.load(cmd.id(0)?)?;
        let state = json!({
            "ociVersion": "1.2.0",
            "id": c.id,
            "pid": c.init.pid,
            "status": c.status(),
            "bundle": c.bundle,
        });
        println!("{state}");
        Ok(())
    }
}

/// The init's side of `start`: blocks until `start` opens the fifo, as runc's init does.
fn wait_for_start(fifo: &CString) {
    // SAFETY: a valid C string; the descriptor is this process's.
    unsafe {
        let fd = libc::open(fifo.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
            libc::_exit(126);
        }
        libc::close(fd);
    }
}

/// Follows the script in `args[1..]`, then exits. `init` is the pidfd of the container's init
/// for an exec, which dies with it.
fn run(args: &[String], init: Option<RawFd>) -> ! {
    let mut steps = args.iter().skip(1);
    while let Some(step) = steps.next() {
        match (step.as_str(), steps.next().map(String::as_str)) {
            ("sleep", Some(secs))
                if secs.parse::<f64>().is_ok_and(|s| s.is_finite() && s >= 0.0) =>
            {
                sleep(Duration::from_secs_f64(secs.parse().unwrap_or(0.0)), init)
            }
            ("exit", Some(code)) if code.parse::<i32>().is_ok() => {
                // SAFETY: ends the process without running the parent's exit handlers twice.
                unsafe { libc::_exit(code.parse().unwrap_or(255)) }
            }
            ("echo", Some(word)) => {
                let line = format!("{word}\n");
                // SAFETY: writes a buffer that outlives the call.
                unsafe { libc::write(1, line.as_ptr().cast(), line.len()) };
            }
            (step, arg) => {
                eprintln!("fake-runc: cannot follow the step {step:?} {arg:?}");
                // SAFETY: as above.
                unsafe { libc::_exit(127) }
            }
        }
    }
    // SAFETY: as above.
    unsafe { libc::_exit(0) }
}

/// Sleeps for `d`; an exec is killed as soon as the init exits.
fn sleep(d: Duration, init: Option<RawFd>) {
    let deadline = Instant::now() + d;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        let mut p = libc::pollfd {
            fd: init.unwrap_or(-1),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd; a negative fd is ignored by poll(2).
        if unsafe { libc::poll(&mut p, 1, ms) } > 0 && p.revents != 0 {
            // SAFETY: kills this process.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
    }
}
