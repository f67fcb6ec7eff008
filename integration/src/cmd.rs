//! Running a command with a deadline, so a hanging `ctr` fails its test instead of the
//! whole suite.

use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// The default deadline of one `ctr` call. Generous: the machine has two shared cores.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// What a command gets as its standard input.
pub enum Stdin<'a> {
    /// /dev/null.
    Null,
    /// These bytes, then EOF.
    Data(Vec<u8>),
    /// These bytes, then EOF once `ready` returns true (polled). `ctr` only forwards an
    /// EOF that arrives after its task exists, so tests that check EOF wait for that.
    DataThenEofWhen(Vec<u8>, &'a (dyn Fn() -> bool + Sync)),
}

/// Runs `cmd` to completion, feeding it `stdin` (then EOF) if given, else /dev/null.
/// Panics, after killing the command, if it has not finished within `timeout`.
pub fn run_with_timeout(cmd: Command, stdin: Option<Vec<u8>>, timeout: Duration) -> Output {
    let stdin = stdin.map_or(Stdin::Null, Stdin::Data);
    try_run(cmd, stdin, timeout).unwrap_or_else(|e| panic!("{e}"))
}

/// Like [`run_with_timeout`], but returns failures to start or finish instead of panicking
/// (for cleanup code, which must not panic).
pub fn try_run_with_timeout(
    cmd: Command,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<Output, String> {
    try_run(cmd, stdin.map_or(Stdin::Null, Stdin::Data), timeout)
}

/// The general form: any [`Stdin`], errors returned.
pub fn try_run(mut cmd: Command, stdin: Stdin<'_>, timeout: Duration) -> Result<Output, String> {
    cmd.stdin(if matches!(stdin, Stdin::Null) {
        Stdio::null()
    } else {
        Stdio::piped()
    });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let shown = describe(&cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start `{shown}`: {e}"))?;
    let pipe = child.stdin.take();
    let mut out_pipe = child.stdout.take().expect("stdout is piped");
    let mut err_pipe = child.stderr.take().expect("stderr is piped");
    let deadline = Instant::now() + timeout;
    let finished = AtomicBool::new(false);

    thread::scope(|s| {
        if let Some(mut pipe) = pipe {
            let finished = &finished;
            s.spawn(move || {
                let (data, ready) = match stdin {
                    Stdin::Null => return,
                    Stdin::Data(d) => (d, None),
                    Stdin::DataThenEofWhen(d, r) => (d, Some(r)),
                };
                // A broken pipe is fine: the process may exit without reading everything.
                if pipe.write_all(&data).is_err() {
                    return;
                }
                if let Some(ready) = ready {
                    while !finished.load(Ordering::SeqCst) && !ready() {
                        thread::sleep(Duration::from_millis(50));
                    }
                }
                drop(pipe);
            });
        }
        let out_reader = s.spawn(move || {
            let mut buf = Vec::new();
            let _ = out_pipe.read_to_end(&mut buf);
            buf
        });
        let err_reader = s.spawn(move || {
            let mut buf = Vec::new();
            let _ = err_pipe.read_to_end(&mut buf);
            buf
        });

        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Ok(None) => thread::sleep(Duration::from_millis(20)),
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("waiting for `{shown}`: {e}"));
                }
            }
        };
        finished.store(true, Ordering::SeqCst);
        let stdout = out_reader.join().unwrap_or_default();
        let stderr = err_reader.join().unwrap_or_default();
        match status {
            Some(status) => Ok(Output {
                status,
                stdout,
                stderr,
            }),
            None => Err(format!(
                "`{shown}` did not finish within {timeout:?} (killed it)\nstdout: {}\nstderr: {}",
                tail(&stdout),
                tail(&stderr)
            )),
        }
    })
}

/// The last few KB of a possibly huge output, for messages.
fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(4096);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Convenience accessors on a finished command's output.
pub trait OutputExt {
    /// The exit code, or 128+signal if it was killed by a signal.
    fn code(&self) -> i32;
    fn stdout_text(&self) -> String;
    fn stderr_text(&self) -> String;
    /// Panics with both outputs unless the command exited 0.
    fn ok(&self) -> &Self;
    /// Both outputs, for assertion messages.
    fn show(&self) -> String;
}

impl OutputExt for Output {
    fn code(&self) -> i32 {
        exit_code(&self.status)
    }
    fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    fn ok(&self) -> &Self {
        assert!(self.status.success(), "command failed: {}", self.show());
        self
    }
    fn show(&self) -> String {
        format!(
            "exit {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code(),
            tail(&self.stdout),
            tail(&self.stderr)
        )
    }
}

pub fn exit_code(status: &ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}
