//! Driving a command through a pseudo-terminal, as a user at a terminal would.
//!
//! `ctr run -t` insists that its own stdin is a terminal; Python's pty support is the
//! smallest dependable way to give it one and to change the window size under it.

use std::process::Command;
use std::time::Duration;

use crate::cmd::{run_with_timeout, OutputExt};

/// One thing the user at the terminal does.
#[derive(Debug, Clone)]
pub enum Step {
    /// Wait until everything printed so far contains this text.
    Expect(String),
    /// Wait until this text is printed after what the previous `Expect` or `ExpectNew`
    /// found: the next prompt, say, before typing a line a shell would otherwise read early.
    ExpectNew(String),
    /// Type this text.
    Send(String),
    /// Change the terminal's window size (the kernel sends SIGWINCH to the foreground job),
    /// then type `text` again and again until everything printed contains `until`.
    ///
    /// `ctr` subscribes to SIGWINCH only after its first resize of the task returned, so a
    /// change made just as the container shows its first size can go unnoticed. While `until`
    /// has not shown, the size is nudged by a row and set back, which signals again.
    ResizeUntil {
        rows: u16,
        cols: u16,
        text: String,
        until: String,
    },
    /// Type `text` again and again until everything printed contains `until`
    /// (for things that arrive asynchronously, like a window size change).
    SendUntil { text: String, until: String },
}

/// What the terminal showed, and how the command ended.
#[derive(Debug)]
pub struct PtyResult {
    pub code: i32,
    pub screen: String,
}

const DRIVER: &str = r#"
import fcntl, json, os, select, struct, subprocess, sys, termios, time
rows, cols, plan, argv = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4:]
master, slave = os.openpty()
fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
def ctty():
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
child = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                         start_new_session=True, preexec_fn=ctty)
os.close(slave)
out = bytearray()
def pump(wait):
    r, _, _ = select.select([master], [], [], wait)
    if not r:
        return True
    try:
        data = os.read(master, 65536)
    except OSError:
        return False
    if not data:
        return False
    out.extend(data)
    return True
def fail(msg):
    sys.stdout.buffer.write(bytes(out))
    sys.stderr.write(msg + "\n")
    child.kill()
    sys.exit(124)
open_ = True
mark = 0
for step in plan:
    kind = step[0]
    deadline = time.time() + 30
    if kind == "expect":
        while step[1].encode() not in out:
            if not open_ or time.time() > deadline:
                fail("pty: never saw %r" % step[1])
            open_ = pump(0.1)
        mark = max(mark, out.find(step[1].encode()) + len(step[1]))
    elif kind == "expect_new":
        while out.find(step[1].encode(), mark) < 0:
            if not open_ or time.time() > deadline:
                fail("pty: never saw %r after the previous expectation" % step[1])
            open_ = pump(0.1)
        mark = out.find(step[1].encode(), mark) + len(step[1])
    elif kind == "send":
        os.write(master, step[1].encode())
    elif kind == "resize_until":
        rows_, cols_, text, until = step[1], step[2], step[3].encode(), step[4].encode()
        while until not in out:
            if not open_ or time.time() > deadline:
                fail("pty: never saw %r" % step[4])
            fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows_ + 1, cols_, 0, 0))
            fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows_, cols_, 0, 0))
            end = time.time() + 1.0
            while open_ and time.time() < end and until not in out:
                os.write(master, text)
                stop = time.time() + 0.3
                while open_ and time.time() < stop and until not in out:
                    open_ = pump(0.05)
    elif kind == "send_until":
        while step[2].encode() not in out:
            if not open_ or time.time() > deadline:
                fail("pty: never saw %r" % step[2])
            os.write(master, step[1].encode())
            end = time.time() + 0.3
            while open_ and time.time() < end and step[2].encode() not in out:
                open_ = pump(0.05)
deadline = time.time() + 30
while open_:
    if time.time() > deadline:
        fail("pty: the program did not end after the last step")
    open_ = pump(1.0)
code = child.wait()
sys.stdout.buffer.write(bytes(out))
sys.exit(code if code >= 0 else 128 - code)
"#;

/// Runs `argv` with a terminal of `rows`x`cols` as its stdin, stdout and stderr, performs
/// `plan`, then reads until the command closes the terminal and exits.
pub fn run_in_pty(argv: &[String], rows: u16, cols: u16, plan: &[Step]) -> PtyResult {
    let plan_json: Vec<serde_json::Value> = plan
        .iter()
        .map(|s| match s {
            Step::Expect(t) => serde_json::json!(["expect", t]),
            Step::ExpectNew(t) => serde_json::json!(["expect_new", t]),
            Step::Send(t) => serde_json::json!(["send", t]),
            Step::ResizeUntil {
                rows,
                cols,
                text,
                until,
            } => serde_json::json!(["resize_until", rows, cols, text, until]),
            Step::SendUntil { text, until } => serde_json::json!(["send_until", text, until]),
        })
        .collect();
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(DRIVER)
        .arg(rows.to_string())
        .arg(cols.to_string())
        .arg(serde_json::Value::Array(plan_json).to_string())
        .args(argv);
    let out = run_with_timeout(cmd, None, Duration::from_secs(90));
    assert_ne!(
        out.code(),
        124,
        "terminal session did not go as planned: {}",
        out.show()
    );
    PtyResult {
        code: out.code(),
        screen: out.stdout_text(),
    }
}
