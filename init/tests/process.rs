//! crossarch-init run as a real process, outside any container. It is not PID 1 here, so
//! these tests also cover the automatic subreaper.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

const INIT: &str = env!("CARGO_BIN_EXE_crossarch-init");

/// Only a broken init gets near this; a passing test takes milliseconds. Generous because the
/// machine is shared.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The emulator the tests run under when they are built for another architecture than the
/// machine's (scripts/test.sh runs the aarch64 build under qemu-aarch64-static), as cargo's
/// target runner: the init binary is for that architecture too, so it is started through the
/// same emulator. qemu-user runs the programs init starts (the machine's `sh`) natively.
///
/// Its absolute path, so that a test that clears the environment or sets `PATH` still finds it.
fn emulator() -> Option<PathBuf> {
    let name = std::env::var_os("CROSSARCH_TEST_EMULATOR").filter(|e| !e.is_empty())?;
    let name = PathBuf::from(name);
    if name.is_absolute() {
        return Some(name);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .map(|dir| dir.join(&name))
        .find(|p| p.is_file());
    Some(found.unwrap_or_else(|| panic!("CROSSARCH_TEST_EMULATOR {name:?} is not in PATH")))
}

/// What init says under qemu-user 7.2, which answers PR_SET_CHILD_SUBREAPER with EINVAL
/// instead of passing it to the kernel. Tests that compare stderr drop it there.
const NO_SUBREAPER_UNDER_EMULATION: &str = "crossarch-init: warning: cannot become a child \
    subreaper (Invalid argument); orphaned processes will not be reaped by init\n";

/// Whether a test that needs what user-mode emulation lacks must be skipped; says why.
fn skip_under_emulation(what: &str, why: &str) -> bool {
    match emulator() {
        Some(emulator) => {
            // Straight to stderr, past the test harness's capture, so the run's log says it.
            let _ = writeln!(
                std::io::stderr(),
                "skipped under {}: {what}: {why}",
                emulator.display()
            );
            true
        }
        None => false,
    }
}

/// Trace mode's qemu directory when every test here runs in trace mode
/// (`CROSSARCH_INIT_TEST_TRACE=DIR`, as scripts/test.sh runs them a second time).
fn trace_dir() -> Option<String> {
    std::env::var("CROSSARCH_INIT_TEST_TRACE")
        .ok()
        .filter(|d| !d.is_empty())
}

fn init(args: &[&str]) -> Command {
    let mut cmd = match emulator() {
        Some(emulator) => {
            let mut cmd = Command::new(emulator);
            cmd.arg(INIT);
            cmd
        }
        None => Command::new(INIT),
    };
    if let Some(dir) = trace_dir() {
        cmd.args(["--trace", &dir]);
    }
    cmd.args(args);
    cmd
}

/// Polls `check` until it gives a value, failing the test after TIMEOUT.
fn poll<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// (pid, state letter) of every process whose parent is `parent`, zombies included.
fn children_of(parent: i32) -> Vec<(i32, char)> {
    let mut children = Vec::new();
    for entry in fs::read_dir("/proc").expect("read /proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        // Processes come and go while /proc is read.
        let Some((state, ppid)) = stat_of(pid) else {
            continue;
        };
        if ppid == parent {
            children.push((pid, state));
        }
    }
    children.sort_unstable();
    children
}

/// (state letter, parent pid) from /proc/<pid>/stat, None once the process is gone.
fn stat_of(pid: i32) -> Option<(char, i32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; the fields after it cannot.
    let mut rest = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((state, ppid))
}

fn send(pid: i32, signal: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(rc, 0, "kill({pid}, {signal}) failed");
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("crossarch-init-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Spawns init with its stderr inherited; under emulation, without the subreaper warning
/// qemu-user causes on every start.
fn spawn(cmd: &mut Command) -> Child {
    if emulator().is_none() {
        return cmd.spawn().expect("spawn crossarch-init");
    }
    let mut child = cmd
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn crossarch-init");
    let stderr = child.stderr.take().expect("piped stderr");
    std::thread::spawn(move || {
        let expected = NO_SUBREAPER_UNDER_EMULATION.trim_end();
        for line in BufReader::new(stderr).lines() {
            match line {
                Ok(line) if line == expected => {}
                Ok(line) => eprintln!("{line}"),
                Err(_) => break,
            }
        }
    });
    child
}

/// Why tests of real-time signals are skipped under emulation: qemu-user numbers the guest's
/// real-time signals differently from the host's (it keeps some of them for itself), so a
/// signal an emulated init forwards reaches the machine's native `sh` under another number.
const RT_SIGNALS: &str = "qemu-user maps real-time signals between guest and host numbers";

/// A running init whose stdout is read line by line. Dropping it kills whatever is left, so a
/// failed test leaves no `sleep 1000` behind.
struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Running {
    fn spawn(cmd: &mut Command) -> Self {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = spawn(cmd);
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            stdin: child.stdin.take(),
            child,
            lines,
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn line(&self) -> String {
        self.lines
            .recv_timeout(TIMEOUT)
            .expect("a line from the program")
    }

    fn expect_line(&self, want: &str) {
        assert_eq!(self.line(), want);
    }

    /// The program's pid, once init has started it. Signals sent to init before then could
    /// find it still without its mask, as for any process that has just been spawned.
    fn program_pid(&self) -> i32 {
        let init_pid = self.pid();
        poll("init to start the program", || {
            children_of(init_pid).first().map(|&(pid, _)| pid)
        })
    }

    fn signal(&self, signal: i32) {
        send(self.pid(), signal);
    }

    fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// init's exit code; init itself must never die of a signal.
    fn exit_code(&mut self) -> i32 {
        let child = &mut self.child;
        let status = poll("crossarch-init to exit", || {
            child.try_wait().expect("try_wait")
        });
        status
            .code()
            .unwrap_or_else(|| panic!("crossarch-init was killed by signal {:?}", status.signal()))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let mut doomed = vec![self.pid()];
            let mut i = 0;
            while let Some(&parent) = doomed.get(i) {
                doomed.extend(children_of(parent).into_iter().map(|(pid, _)| pid));
                i += 1;
            }
            for pid in doomed.into_iter().rev() {
                kill_quietly(pid);
            }
            let _ = self.child.wait();
        }
    }
}

/// SIGKILL for cleanup, where a process that is already gone is fine.
fn kill_quietly(pid: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// Kills a process the test started indirectly, however the test ends.
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        kill_quietly(self.0);
    }
}

#[derive(Debug)]
struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs init to its end with `input` on stdin.
fn run(cmd: &mut Command, input: &[u8]) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn crossarch-init");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let read_all = |mut from: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = from.read_to_string(&mut text);
            text
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = read_all(Box::new(child.stderr.take().expect("piped stderr")));
    let mut running = Running {
        child,
        stdin: None,
        lines: mpsc::channel().1,
    };
    let code = running.exit_code();
    writer.join().expect("stdin writer");
    let mut stderr = stderr.join().expect("stderr reader");
    if emulator().is_some() {
        if let Some(rest) = stderr.strip_prefix(NO_SUBREAPER_UNDER_EMULATION) {
            stderr = rest.to_owned();
        }
    }
    Output {
        code,
        stdout: stdout.join().expect("stdout reader"),
        stderr,
    }
}

fn sh(script: &str) -> Command {
    init(&["--", "sh", "-c", script])
}

#[test]
fn every_exit_code_passes_through() {
    for code in 0..=255 {
        let mut child = spawn(sh(&format!("exit {code}")).stdin(Stdio::null()));
        let status = poll("crossarch-init to exit", || {
            child.try_wait().expect("try_wait")
        });
        assert_eq!(status.code(), Some(code), "sh -c 'exit {code}'");
    }
}

#[test]
fn a_program_killed_by_a_signal_gives_128_plus_the_signal() {
    for (signal, code) in [("KILL", 137), ("SEGV", 139), ("TERM", 143), ("USR2", 140)] {
        let out = run(&mut sh(&format!("kill -s {signal} $$")), b"");
        assert_eq!(out.code, code, "kill -s {signal}");
    }
    // A real-time signal: 128 + 40.
    if !skip_under_emulation("a program killed by signal 40", RT_SIGNALS) {
        assert_eq!(run(&mut sh("kill -40 $$"), b"").code, 168);
    }
}

#[test]
fn sigterm_to_init_reaches_a_program_that_traps_it() {
    let mut running = Running::spawn(&mut sh(
        "trap 'exit 42' TERM; echo ready; while :; do sleep 0.05; done",
    ));
    running.expect_line("ready");
    running.signal(libc::SIGTERM);
    assert_eq!(running.exit_code(), 42);
}

#[test]
fn catchable_signals_are_forwarded() {
    let cases = [
        (libc::SIGINT, "INT", 43),
        (libc::SIGHUP, "HUP", 44),
        (libc::SIGUSR1, "USR1", 45),
        (libc::SIGUSR2, "USR2", 46),
        (libc::SIGQUIT, "QUIT", 47),
        (libc::SIGWINCH, "WINCH", 48),
        // Real-time signals too, which libc's sigfillset-based code paths tend to miss.
        (40, "40", 49),
    ];
    for (signal, name, code) in cases {
        if signal >= libc::SIGRTMIN()
            && skip_under_emulation(&format!("forwarding signal {name}"), RT_SIGNALS)
        {
            continue;
        }
        let mut running = Running::spawn(&mut sh(&format!(
            "trap 'exit {code}' {name}; echo ready; while :; do sleep 0.05; done"
        )));
        running.expect_line("ready");
        running.signal(signal);
        assert_eq!(running.exit_code(), code, "SIG{name}");
    }
}

#[test]
fn untrapped_sigterm_gives_143() {
    let mut running = Running::spawn(&mut init(&["--", "sleep", "1000"]));
    running.program_pid();
    running.signal(libc::SIGTERM);
    assert_eq!(running.exit_code(), 143);
}

#[test]
fn sigkill_of_the_program_gives_137() {
    let mut running = Running::spawn(&mut init(&["--", "sleep", "1000"]));
    send(running.program_pid(), libc::SIGKILL);
    assert_eq!(running.exit_code(), 137);
}

/// `kill -9` at the earliest moment, before the program has run: in trace mode that is while
/// init is still making sure it can attach, which must not turn the kill into a trace error.
#[test]
fn sigkill_as_the_program_starts_gives_137() {
    for _ in 0..40 {
        let mut running = Running::spawn(&mut init(&["--", "sleep", "1000"]));
        let init_pid = running.pid();
        let deadline = Instant::now() + TIMEOUT;
        let pid = loop {
            if let Some(&(pid, _)) = children_of(init_pid).first() {
                break pid;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for the program"
            );
        };
        send(pid, libc::SIGKILL);
        assert_eq!(running.exit_code(), 137);
    }
}

#[test]
fn orphaned_grandchildren_are_adopted_and_reaped() {
    if skip_under_emulation(
        "orphans adopted and reaped",
        "qemu-user 7.2 refuses PR_SET_CHILD_SUBREAPER, so init adopts no orphan",
    ) {
        return;
    }
    // 100 orphans that live until stdin closes. Each `( ... &)` subshell exits at once, so
    // its cat is orphaned and, init being a subreaper, adopted by init. Async commands get
    // /dev/null as stdin unless redirected, hence fd 3.
    let mut running = Running::spawn(&mut sh("echo $$
exec 3<&0
i=0
while [ $i -lt 100 ]; do (cat <&3 >/dev/null &); i=$((i+1)); done
echo spawned
read line
echo eof
while :; do sleep 0.05; done"));
    let init_pid = running.pid();
    let sh_pid: i32 = running.line().parse().expect("the shell's pid");
    running.expect_line("spawned");

    poll("init to adopt the 100 orphans", || {
        let adopted = children_of(init_pid)
            .iter()
            .filter(|&&(pid, _)| pid != sh_pid)
            .count();
        (adopted == 100).then_some(())
    });

    running.close_stdin();
    running.expect_line("eof");
    // A zombie stays its parent's child until reaped, so only the shell may be left.
    let left = poll("init to reap the orphans", || {
        let children = children_of(init_pid);
        (children.len() == 1).then_some(children)
    });
    assert_eq!(left[0].0, sh_pid);
    assert_ne!(
        left[0].1, 'Z',
        "the shell is a zombie while init still runs"
    );

    running.signal(libc::SIGTERM);
    assert_eq!(running.exit_code(), 143);
}

#[test]
fn pgroup_forwards_to_the_whole_process_group() {
    let mut running = Running::spawn(&mut init(&[
        "-g",
        "--",
        "sh",
        "-c",
        "sleep 1000 </dev/null >/dev/null 2>&1 & echo $!; wait",
    ]));
    let sleeper: i32 = running.line().parse().expect("the sleeper's pid");
    let _cleanup = KillOnDrop(sleeper);
    running.signal(libc::SIGTERM);
    assert_eq!(running.exit_code(), 143);
    poll("the background sleep to die of SIGTERM too", || {
        matches!(stat_of(sleeper), None | Some(('Z', _))).then_some(())
    });
}

#[test]
fn without_pgroup_only_the_program_gets_the_signal() {
    let mut running = Running::spawn(&mut sh("trap 'exit 42' TERM
sleep 1000 </dev/null >/dev/null 2>&1 &
echo $!
while :; do sleep 0.05; done"));
    let sleeper: i32 = running.line().parse().expect("the sleeper's pid");
    let _cleanup = KillOnDrop(sleeper);
    running.signal(libc::SIGTERM);
    assert_eq!(running.exit_code(), 42);
    let state = stat_of(sleeper).map(|(state, _)| state);
    assert!(
        matches!(state, Some('S' | 'R')),
        "the background sleep should still run, its state is {state:?}"
    );
}

#[test]
fn the_program_starts_with_a_clean_mask_and_default_dispositions() {
    let mut cmd = init(&["--", "cat", "/proc/self/status"]);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            libc::signal(libc::SIGCHLD, libc::SIG_IGN);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR1);
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
    let out = run(&mut cmd, b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    for field in ["SigBlk", "SigIgn"] {
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{field}:")))
            .unwrap_or_else(|| panic!("no {field} in {}", out.stdout));
        let mut bits = u64::from_str_radix(line.split('\t').nth(1).expect("a mask"), 16)
            .unwrap_or_else(|e| panic!("{line}: {e}"));
        // Bit n-1 is signal n. qemu-user keeps the host's signals from 32 on (its C
        // library's, and those it maps the guest's real-time signals to), which the emulated
        // init cannot name or reset: only 1 to 31 count there.
        if field == "SigIgn" && emulator().is_some() {
            let _ = writeln!(
                std::io::stderr(),
                "under emulation, {field} of signals 32 to 64 is not checked: {RT_SIGNALS}"
            );
            bits &= 0x7fff_ffff;
        }
        assert_eq!(bits, 0, "{line}");
    }
}

#[test]
fn stdin_eof_reaches_the_program() {
    let out = run(&mut init(&["--", "cat"]), b"hello\nworld\n");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "hello\nworld\n");
}

#[test]
fn arguments_after_double_dash_are_the_programs() {
    let out = run(
        &mut init(&[
            "-g",
            "--",
            "sh",
            "-c",
            "printf '[%s]' \"$@\"",
            "sh",
            "-g",
            "--version",
            "--remap-exit",
            "--",
            "",
        ]),
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "[-g][--version][--remap-exit][--][]");
}

#[test]
fn the_environment_reaches_the_program_untouched_and_its_path_is_searched() {
    let dir = scratch_dir("env");
    std::os::unix::fs::symlink("/usr/bin/env", dir.join("crossarch-test-env"))
        .expect("symlink env");
    let path = dir.to_str().expect("utf-8 scratch dir");
    let out = run(
        init(&["--", "crossarch-test-env"])
            .env_clear()
            .env("PATH", path)
            .env("FOO", "bar baz")
            .env("CROSSARCH_INIT_PGROUP", "1"),
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut env: Vec<&str> = out.stdout.lines().collect();
    env.sort_unstable();
    let path_line = format!("PATH={path}");
    assert_eq!(
        env,
        ["CROSSARCH_INIT_PGROUP=1", "FOO=bar baz", path_line.as_str()]
    );
}

#[test]
fn a_missing_program_gives_127_and_says_why() {
    let out = run(&mut init(&["--", "/nonexistent/program", "arg"]), b"");
    assert_eq!(out.code, 127);
    assert_eq!(
        out.stderr,
        "crossarch-init: cannot run /nonexistent/program: No such file or directory\n"
    );
    assert_eq!(out.stdout, "");

    let out = run(&mut init(&["crossarch-no-such-program"]), b"");
    assert_eq!(out.code, 127);
    assert_eq!(
        out.stderr,
        "crossarch-init: cannot run crossarch-no-such-program: No such file or directory\n"
    );
}

#[test]
fn a_program_that_cannot_execute_gives_126() {
    let dir = scratch_dir("noexec");
    let file = dir.join("not-executable");
    fs::write(&file, "#!/bin/sh\necho should not run\n").expect("write script");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).expect("chmod");
    let file = file.to_str().expect("utf-8 scratch dir");

    let out = run(&mut init(&["--", file]), b"");
    assert_eq!(out.code, 126);
    assert_eq!(
        out.stderr,
        format!("crossarch-init: cannot run {file}: Permission denied\n")
    );
    assert_eq!(out.stdout, "");

    assert_eq!(run(&mut init(&["--", "/"]), b"").code, 126);
}

#[test]
fn remap_exit_changes_only_the_listed_codes() {
    let remapped = |script: &str| {
        run(
            &mut init(&[
                "--remap-exit",
                "3:0",
                "--remap-exit=143:7",
                "--",
                "sh",
                "-c",
                script,
            ]),
            b"",
        )
        .code
    };
    assert_eq!(remapped("exit 3"), 0);
    assert_eq!(remapped("exit 4"), 4);
    assert_eq!(remapped("exit 0"), 0);
    // Applied after signal mapping: a TERM death (143) becomes 7.
    assert_eq!(remapped("kill -s TERM $$"), 7);
}

#[test]
fn bad_command_lines_are_refused_with_a_prefixed_message() {
    for args in [
        &[][..],
        &["--frobnicate", "--", "true"],
        &["--remap-exit", "300:0", "--", "true"],
    ] {
        let out = run(&mut init(args), b"");
        assert_eq!(out.code, 2, "{args:?}");
        assert!(
            out.stderr.starts_with("crossarch-init: "),
            "{args:?}: {}",
            out.stderr
        );
    }
}

#[test]
fn version() {
    let out = run(&mut init(&["--version"]), b"");
    assert_eq!(out.code, 0);
    assert_eq!(
        out.stdout,
        format!("crossarch-init {}\n", env!("CARGO_PKG_VERSION"))
    );
}

/// A new pseudo-terminal: (master, slave).
fn open_pty() -> (File, File) {
    // SAFETY: plain libc calls on descriptors this function owns; ptsname_r writes at most
    // `buf.len()` bytes including the NUL.
    unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(master >= 0, "posix_openpt failed");
        let master = OwnedFd::from_raw_fd(master);
        assert_eq!(libc::grantpt(master.as_raw_fd()), 0, "grantpt");
        assert_eq!(libc::unlockpt(master.as_raw_fd()), 0, "unlockpt");
        let mut buf = [0 as libc::c_char; 128];
        assert_eq!(
            libc::ptsname_r(master.as_raw_fd(), buf.as_mut_ptr(), buf.len()),
            0
        );
        let name = std::ffi::CStr::from_ptr(buf.as_ptr());
        let slave = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(name.to_str().expect("utf-8 pty name"))
            .expect("open pty slave");
        (File::from(master), slave)
    }
}

#[test]
fn on_a_terminal_the_program_gets_the_foreground_and_ctrl_c() {
    let (mut master, slave) = open_pty();
    let mut running = {
        let mut cmd = sh("read -r _ _ _ _ pgrp _ _ tpgid _ </proc/self/stat
echo \"pid=$$ pgrp=$pgrp tpgid=$tpgid\"
exec sleep 1000");
        cmd.stdin(slave.try_clone().expect("dup slave"))
            .stdout(slave.try_clone().expect("dup slave"))
            .stderr(slave);
        // SAFETY: only async-signal-safe calls between fork and exec. Like a container's
        // console: init leads a new session whose controlling terminal is the pty.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn crossarch-init");
        // `cmd` goes out of scope here and closes our copies of the slave.
        Running {
            child,
            stdin: None,
            lines: mpsc::channel().1,
        }
    };

    let (tx, screen) = mpsc::channel();
    let mut reader = master.try_clone().expect("dup master");
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        // Ends with EIO once every slave descriptor is closed.
        while let Ok(n @ 1..) = reader.read(&mut buf) {
            if tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let report = loop {
        let chunk = screen
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|_| panic!("no report on the terminal; saw {seen:?}"));
        seen.push_str(&String::from_utf8_lossy(&chunk));
        if let Some(start) = seen.find("pid=") {
            if let Some(len) = seen[start..].find('\n') {
                break seen[start..start + len].trim_end().to_owned();
            }
        }
    };
    let fields: Vec<&str> = report
        .split(' ')
        .map(|f| f.split_once('=').expect("key=value").1)
        .collect();
    assert_eq!(
        fields[0], fields[1],
        "the program leads its own group: {report}"
    );
    assert_eq!(
        fields[1], fields[2],
        "the program's group is the terminal's foreground: {report}"
    );

    master.write_all(b"\x03").expect("type Ctrl-C");
    assert_eq!(running.exit_code(), 130);
}

/// The arm64 busybox root that scripts/fixtures.sh builds, and the host's qemu directory;
/// None (and why, on stderr) under emulation, where qemu-user cannot ptrace.
fn foreign_fixture() -> Option<(PathBuf, String)> {
    if skip_under_emulation("trace mode", "qemu-user does not emulate ptrace") {
        return None;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/out/rootfs/arm64");
    let root = root
        .canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}: run scripts/fixtures.sh first", root.display()));
    let qemu_dir = ["/usr/bin", "/usr/libexec/qemu-binfmt"]
        .into_iter()
        .find(|d| PathBuf::from(d).join("qemu-aarch64-static").is_file())
        .expect("no qemu-aarch64-static in /usr/bin: run scripts/install-deps.sh");
    Some((root, qemu_dir.to_owned()))
}

/// The host cannot run the arm64 busybox by itself: the host's binfmt_misc has no entry for
/// it (nothing here ever registers one), so what passes below is trace mode's doing.
fn assert_foreign_fails_untraced(root: &std::path::Path) {
    let bb = root.join("bin/busybox");
    let out = run(&mut init(&["--", bb.to_str().unwrap(), "uname", "-m"]), b"");
    if trace_dir().is_none() {
        assert_ne!(
            out.stdout,
            "aarch64\n",
            "{} ran natively: {out:?}",
            bb.display()
        );
        assert_ne!(out.code, 0, "{out:?}");
    }
}

/// init in trace mode running `script` in the foreign root's `sh`.
fn traced_sh(qemu_dir: &str, root: &str, script: &str) -> Command {
    let mut cmd = Command::new(INIT);
    cmd.args([
        "--trace",
        qemu_dir,
        "--",
        &format!("{root}/bin/sh"),
        "-c",
        script,
    ]);
    cmd
}

#[test]
fn trace_mode_emulates_a_foreign_tree_children_pipelines_scripts_and_exits() {
    let Some((root, qemu_dir)) = foreign_fixture() else {
        return;
    };
    assert_foreign_fails_untraced(&root);
    let r = root.to_str().unwrap();
    let dir = scratch_dir("trace-script");
    let script = dir.join("arch.sh");
    fs::write(
        &script,
        format!("#!{r}/bin/sh\necho script $({r}/bin/uname -m)\n"),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let script = script.to_str().unwrap();
    let tree = format!(
        "{r}/bin/uname -m; {r}/bin/uname -m | {r}/bin/cat; \
         {r}/bin/sh -c '{r}/bin/sh -c \"{r}/bin/uname -m\"'; {script}; /usr/bin/uname -m; \
         exec {r}/bin/sh -c 'exit 7'"
    );
    let out = run(&mut traced_sh(&qemu_dir, r, &tree), b"");
    assert_eq!(
        out.stdout,
        "aarch64\naarch64\naarch64\nscript aarch64\nx86_64\n"
            .replace("x86_64", std::env::consts::ARCH),
        "{out:?}"
    );
    assert_eq!(out.code, 7, "{out:?}");
    assert_eq!(out.stderr, "");

    // A foreign program killed by an untrapped SIGTERM, and one that traps it.
    let out = run(
        &mut traced_sh(
            &qemu_dir,
            r,
            &format!("{r}/bin/sleep 100 & kill -TERM $!; wait $!; echo $?; kill -TERM $$"),
        ),
        b"",
    );
    assert_eq!((out.stdout.as_str(), out.code), ("143\n", 143), "{out:?}");
}

#[test]
fn trace_mode_passes_signals_and_group_stops_through() {
    let Some((root, qemu_dir)) = foreign_fixture() else {
        return;
    };
    let r = root.to_str().unwrap();
    // The shell stops a child with SIGSTOP, sees it stopped (`t`, a tracing stop, in trace
    // mode: PTRACE_LISTEN keeps it there), continues it, and gets its trapped USR1 through.
    let script = format!(
        "{r}/bin/sh -c 'trap \"echo usr1; exit 3\" USR1; echo ready; while :; do {r}/bin/sleep 0.05; done' & \
         pid=$!; {r}/bin/sleep 0.5; kill -STOP $pid; {r}/bin/sleep 0.2; \
         read -r _ _ state _ </proc/$pid/stat; case $state in [Tt]) echo stopped;; *) echo $state;; esac; kill -CONT $pid; {r}/bin/sleep 0.2; \
         kill -USR1 $pid; wait $pid; echo child $?"
    );
    let out = run(&mut traced_sh(&qemu_dir, r, &script), b"");
    assert_eq!(out.stdout, "ready\nstopped\nusr1\nchild 3\n", "{out:?}");
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn trace_mode_runs_twenty_foreign_trees_in_parallel() {
    let Some((root, qemu_dir)) = foreign_fixture() else {
        return;
    };
    let r = root.to_str().unwrap().to_owned();
    let children: Vec<_> = (0..20)
        .map(|i| {
            spawn(
                Command::new(INIT)
                    .args(["--trace", &qemu_dir, "--", &format!("{r}/bin/sh"), "-c"])
                    .arg(format!("echo {i} $({r}/bin/uname -m | {r}/bin/cat)"))
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped()),
            )
        })
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().expect("wait");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{i} aarch64\n")
        );
        assert!(out.status.success());
    }
}

/// A chrooted tracee (a maintainer script, debootstrap's second stage) gets qemu through
/// init's root, `/proc/<init>/root/...`, from the /proc mounted in its chroot. The mount is
/// made in a mount namespace of the test's own and goes with it.
#[test]
fn trace_mode_follows_a_tree_into_a_chroot() {
    let Some((root, qemu_dir)) = foreign_fixture() else {
        return;
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: a chroot and a proc mount need root");
        return;
    }
    let r = root.to_str().unwrap();
    let out = run(
        Command::new(INIT).args([
            "--trace",
            &qemu_dir,
            "--",
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            &format!(
                "mount -t proc proc {r}/proc && \
                 chroot {r} /bin/sh -c 'cd /bin && ./uname -m; exec /bin/sh -c \"uname -m | cat\"'"
            ),
        ]),
        b"",
    );
    assert_eq!(out.stdout, "aarch64\naarch64\n", "{out:?}");
    assert_eq!(out.code, 0, "{out:?}");
}
