//! A process's stdio: what runc hands the process, and the copies the shim runs between that
//! and what containerd asked for.
//!
//! containerd names each stream by a plain fifo path, `fifo://`, `file://PATH`, or
//! `binary://PATH?k=v` (a logger that receives stdout and stderr as fds 3 and 4 and reports
//! readiness on fd 5). The process always writes into pipes the shim owns, so its output
//! survives a client that reconnects; the shim drains them until EOF so nothing is lost.

use std::{
    ffi::OsString,
    fs::{File, OpenOptions},
    io::{self, Read, Write},
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::{fs::OpenOptionsExt, process::CommandExt},
    },
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use nix::{fcntl::OFlag, unistd::pipe2};
use tokio::sync::oneshot;

use crate::{
    error::{Error, Result},
    reaper,
    runc::Stdio3,
};

/// Where one output stream goes, parsed from containerd's string.
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    None,
    Fifo(PathBuf),
    File(PathBuf),
    Binary { path: PathBuf, args: Vec<String> },
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Target {
    pub fn parse(s: &str) -> Result<Target> {
        if s.is_empty() {
            return Ok(Target::None);
        }
        let Some((scheme, rest)) = s.split_once("://") else {
            return Ok(Target::Fifo(s.into()));
        };
        // Authority is empty in `file:///p`; a host part is not meaningful here.
        let rest = rest.trim_start_matches(|c| c != '/');
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let path = PathBuf::from(percent_decode(path));
        match scheme {
            "fifo" => Ok(Target::Fifo(path)),
            "file" => Ok(Target::File(path)),
            "binary" => {
                let mut args = Vec::new();
                for kv in query.split('&').filter(|kv| !kv.is_empty()) {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    args.push(percent_decode(k));
                    if !v.is_empty() {
                        args.push(percent_decode(v));
                    }
                }
                Ok(Target::Binary { path, args })
            }
            other => Err(Error::InvalidArgument(format!(
                "unsupported stdio scheme {other:?} in {s:?}: use a fifo path, file:// or binary://"
            ))),
        }
    }
}

/// The stdio containerd asked for one process.
#[derive(Clone, Debug, Default)]
pub struct StdioRequest {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// Where the copy into a process's stdin stands, for CloseIO.
#[derive(Default)]
enum StdinCopy {
    /// Waiting for a writer to open the stdin fifo (or no stdin at all).
    #[default]
    Opening,
    /// Copying; dropping this pipe end asks the copy to finish what the fifo holds and close.
    Open {
        _wake: File,
    },
    Closed,
}

/// The shim's side of a process's stdio, kept for its lifetime.
#[derive(Default)]
pub struct ProcessIo {
    stdin: Arc<Mutex<Option<File>>>,
    stdin_copy: Arc<Mutex<StdinCopy>>,
    console: Arc<Mutex<Option<File>>>,
    done: Vec<oneshot::Receiver<()>>,
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::Internal(format!("cannot create a pipe: {e}")))
}

fn dev_null() -> Result<OwnedFd> {
    File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map(OwnedFd::from)
        .map_err(|e| Error::Internal(format!("cannot open /dev/null: {e}")))
}

fn thread(name: &str, f: impl FnOnce() + Send + 'static) -> Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .stack_size(64 * 1024)
        .spawn(f)
        .map(drop)
        .map_err(|e| Error::Internal(format!("cannot start an io thread: {e}")))
}

/// Where one output stream is written, opened before the process starts.
enum Sink {
    Ready(File),
    /// A fifo nobody reads yet: opened (blocking) by the copy thread.
    Later(PathBuf),
    Void,
}

/// How long Create waits for containerd's client to open a fifo's read side.
const FIFO_OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens the destination now, during Create, as runc-v2 does: once containerd's client sees
/// the process exit it stops waiting for a writer, so a fifo opened later can lose all output.
async fn open_sink(to: Target) -> Sink {
    match to {
        Target::Fifo(p) => {
            let path = p.clone();
            let open = tokio::task::spawn_blocking(move || {
                // Blocks until the client's read side is open, which it is, or is about to be.
                OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_CLOEXEC)
                    .open(&path)
            });
            match tokio::time::timeout(FIFO_OPEN_TIMEOUT, open).await {
                Ok(Ok(Ok(f))) => Sink::Ready(f),
                Ok(Ok(Err(e))) => {
                    log::warn!("cannot open {}: {e}; discarding output", p.display());
                    Sink::Void
                }
                _ => {
                    log::warn!(
                        "nobody opened {} to read it; output is discarded until someone does",
                        p.display()
                    );
                    Sink::Later(p)
                }
            }
        }
        Target::File(p) => match OpenOptions::new().append(true).create(true).open(&p) {
            Ok(f) => Sink::Ready(f),
            Err(e) => {
                log::warn!("cannot open {}: {e}; discarding output", p.display());
                Sink::Void
            }
        },
        Target::None | Target::Binary { .. } => Sink::Void,
    }
}

/// Copies `from` into `to` until EOF; EIO is a pty whose other side has closed.
fn drain(mut from: File, mut to: impl Write) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if let Err(e) = to.write_all(&buf[..n]) {
                    // The reader went away: keep draining so the process never blocks on a full pipe.
                    log::warn!("output of {n} bytes dropped: {e}");
                    return drain_to_void(from, buf);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                log::debug!("output source closed: {e}");
                return;
            }
        }
    }
}

fn drain_to_void(mut from: File, mut buf: Vec<u8>) {
    while matches!(from.read(&mut buf), Ok(n) if n > 0) {}
}

impl ProcessIo {
    /// A future that ends when every output stream reached EOF and was delivered.
    pub fn drained(&mut self) -> impl std::future::Future<Output = ()> {
        futures_join_all(std::mem::take(&mut self.done))
    }

    /// Closes the process's stdin, so it reads EOF, after what the client already wrote into
    /// the stdin fifo: a client writes, closes its end and calls CloseIO at once.
    pub fn close_stdin(&self) {
        let mut state = self.stdin_copy.lock().unwrap();
        if let StdinCopy::Opening = *state {
            // No client ever opened the fifo: nothing can be in it.
            self.stdin.lock().unwrap().take();
        }
        // Dropping the wake pipe end (in `Open`) tells the copy to drain and close.
        *state = StdinCopy::Closed;
    }

    pub fn resize(&self, width: u32, height: u32) -> Result<()> {
        let guard = self.console.lock().unwrap();
        // As with runc-v2, resizing a process without a terminal is not an error.
        let Some(console) = guard.as_ref() else {
            return Ok(());
        };
        let ws = libc::winsize {
            ws_row: height as u16,
            ws_col: width as u16,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize from a valid pointer; the fd is owned by `console`.
        if unsafe { libc::ioctl(console.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
            return Err(Error::Internal(format!(
                "cannot resize terminal: {}",
                io::Error::last_os_error()
            )));
        }
        Ok(())
    }

    async fn copy_out(&mut self, name: &str, from: OwnedFd, to: Target) -> Result<()> {
        let sink = open_sink(to).await;
        let (tx, rx) = oneshot::channel();
        self.done.push(rx);
        let from = File::from(from);
        thread(name, move || {
            match sink {
                Sink::Ready(f) => drain(from, f),
                Sink::Later(p) => {
                    match OpenOptions::new()
                        .write(true)
                        .custom_flags(libc::O_CLOEXEC)
                        .open(&p)
                    {
                        Ok(f) => drain(from, f),
                        Err(_) => drain_to_void(from, vec![0; 32 * 1024]),
                    }
                }
                Sink::Void => drain_to_void(from, vec![0; 32 * 1024]),
            }
            let _ = tx.send(());
        })
    }

    fn copy_stdin(&mut self, path: PathBuf, to: File) -> Result<()> {
        *self.stdin.lock().unwrap() = Some(to);
        let sink = self.stdin.clone();
        let state = self.stdin_copy.clone();
        let (wake_r, wake_w) = pipe()?;
        thread("stdin", move || {
            let Ok(fifo) = File::open(&path) else {
                return;
            };
            {
                let mut state = state.lock().unwrap();
                if let StdinCopy::Closed = *state {
                    return;
                }
                *state = StdinCopy::Open {
                    _wake: File::from(wake_w),
                };
            }
            copy_until_closed(&fifo, &wake_r, &sink);
            sink.lock().unwrap().take();
        })
    }
}

/// Copies from the stdin fifo into the process until the fifo ends, or until `wake` is
/// closed (CloseIO): then what the fifo still holds is copied before returning.
fn copy_until_closed(fifo: &File, wake: &OwnedFd, sink: &Mutex<Option<File>>) {
    let mut buf = vec![0u8; 32 * 1024];
    let forward = |data: &[u8]| {
        // The lock is only held per write.
        let mut guard = sink.lock().unwrap();
        guard.as_mut().is_some_and(|w| w.write_all(data).is_ok())
    };
    let mut reader = fifo;
    loop {
        let mut fds = [
            libc::pollfd {
                fd: fifo.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: wake.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two valid pollfd entries, both fds open for the call.
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        if fds[0].revents != 0 {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) if !forward(&buf[..n]) => return,
                Ok(_) => continue,
            }
        }
        if fds[1].revents != 0 {
            // CloseIO: whatever the client wrote before it is in the fifo now.
            // SAFETY: F_SETFL on an fd we own.
            unsafe { libc::fcntl(fifo.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                if !forward(&buf[..n]) {
                    return;
                }
            }
            return;
        }
    }
}

async fn futures_join_all(rxs: Vec<oneshot::Receiver<()>>) {
    for rx in rxs {
        let _ = rx.await;
    }
}

/// Everything needed to start one process: runc's stdio and the shim's side.
pub struct Prepared {
    pub runc: Stdio3,
    pub io: ProcessIo,
    pub console: Option<ConsoleSocket>,
}

/// Sets up the stdio of a process before runc starts it.
pub async fn prepare(req: &StdioRequest, id: &str, namespace: &str) -> Result<Prepared> {
    let mut io = ProcessIo::default();
    if req.terminal {
        let console = ConsoleSocket::new()?;
        return Ok(Prepared {
            runc: Stdio3::default(),
            io,
            console: Some(console),
        });
    }
    let mut runc = Stdio3::default();
    if req.stdin.is_empty() {
        runc.stdin = Some(dev_null()?);
    } else {
        let (r, w) = pipe()?;
        io.copy_stdin(req.stdin.clone().into(), File::from(w))?;
        runc.stdin = Some(r);
    }
    let stdout = Target::parse(&req.stdout)?;
    let stderr = Target::parse(&req.stderr)?;
    if let Target::Binary { path, args } = &stdout {
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let ready = start_logger(path, args, id, namespace, out_r, err_r)?;
        // Ready is a byte or EOF on fd 5; either way the receiver resolves.
        let _ = tokio::time::timeout(LOGGER_READY_TIMEOUT, ready)
            .await
            .map_err(|_| {
                Error::Internal(format!(
                    "container {id}: binary:// logger {} did not report ready on fd 5 within {}s",
                    path.display(),
                    LOGGER_READY_TIMEOUT.as_secs()
                ))
            })?;
        runc.stdout = Some(out_w);
        runc.stderr = Some(err_w);
        return Ok(Prepared {
            runc,
            io,
            console: None,
        });
    }
    for (name, target, slot) in [
        ("stdout", stdout, &mut runc.stdout),
        ("stderr", stderr, &mut runc.stderr),
    ] {
        if target == Target::None {
            *slot = Some(dev_null()?);
            continue;
        }
        let (r, w) = pipe()?;
        io.copy_out(name, r, target).await?;
        *slot = Some(w);
    }
    Ok(Prepared {
        runc,
        io,
        console: None,
    })
}

/// How long a binary:// logger may take to say it is ready.
const LOGGER_READY_TIMEOUT: Duration = Duration::from_secs(10);

fn start_logger(
    path: &Path,
    args: &[String],
    id: &str,
    namespace: &str,
    out_r: OwnedFd,
    err_r: OwnedFd,
) -> Result<oneshot::Receiver<()>> {
    let (ready_r, ready_w) = pipe()?;
    let fds = [out_r.as_raw_fd(), err_r.as_raw_fd(), ready_w.as_raw_fd()];
    let mut cmd = Command::new(path);
    cmd.args(args.iter().map(OsString::from))
        .env("CONTAINER_ID", id)
        .env("CONTAINER_NAMESPACE", namespace)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Move the sources above 3..=5 first, so no dup2 overwrites a source still needed.
            let mut high = [0; 3];
            for (i, fd) in fds.iter().enumerate() {
                high[i] = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 10);
                if high[i] < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            for (i, fd) in high.iter().enumerate() {
                if libc::dup2(*fd, 3 + i as i32) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let (_child, exit) = reaper::spawn(&mut cmd).map_err(|e| {
        Error::InvalidArgument(format!(
            "container {id}: cannot start the binary:// logger {}: {e}",
            path.display()
        ))
    })?;
    drop((out_r, err_r, ready_w));
    let logger = path.display().to_string();
    tokio::spawn(async move {
        if let Ok(e) = exit.await {
            log::debug!("binary logger {logger} exited with status {}", e.status);
        }
    });
    // The logger signals readiness by writing a byte to fd 5 or closing it.
    let (tx, rx) = oneshot::channel();
    thread("logger-ready", move || {
        let mut b = [0u8; 1];
        let _ = File::from(ready_r).read(&mut b);
        let _ = tx.send(());
    })?;
    Ok(rx)
}

/// The socket runc sends a terminal's master side to.
pub struct ConsoleSocket {
    dir: PathBuf,
    listener: tokio::net::UnixListener,
}

impl ConsoleSocket {
    fn new() -> Result<ConsoleSocket> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("crossarch-pty-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).map_err(|e| Error::Internal(format!("console socket: {e}")))?;
        let listener = tokio::net::UnixListener::bind(dir.join("pty.sock"))
            .map_err(|e| Error::Internal(format!("console socket: {e}")))?;
        Ok(ConsoleSocket { dir, listener })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join("pty.sock")
    }

    /// Receives the terminal master from runc and starts copying it to and from the fifos.
    pub async fn receive(self, req: &StdioRequest, io: &mut ProcessIo) -> Result<()> {
        let accept = async {
            let (stream, _) = self.listener.accept().await?;
            let stream = stream.into_std()?;
            stream.set_nonblocking(false)?;
            tokio::task::spawn_blocking(move || recv_fd(&stream))
                .await
                .map_err(io::Error::other)?
        };
        let master = tokio::time::timeout(Duration::from_secs(10), accept)
            .await
            .map_err(|_| Error::Internal("runc did not send the terminal in time".into()))?
            .map_err(|e| Error::Internal(format!("cannot receive the terminal from runc: {e}")))?;
        let _ = std::fs::remove_dir_all(&self.dir);
        let master = File::from(master);
        let reader = master
            .try_clone()
            .map_err(|e| crate::error::io("terminal", e))?;
        if !req.stdin.is_empty() {
            let writer = master
                .try_clone()
                .map_err(|e| crate::error::io("terminal", e))?;
            io.copy_stdin(req.stdin.clone().into(), writer)?;
        }
        *io.console.lock().unwrap() = Some(master);
        io.copy_out("tty", reader.into(), Target::parse(&req.stdout)?)
            .await
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn recv_fd(stream: &std::os::unix::net::UnixStream) -> io::Result<OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut buf = [0u8; 4096];
    let mut iov = [io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    for c in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel just installed this fd for us; nothing else owns it.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err(io::Error::other("no file descriptor in runc's message"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_containerd_stdio_strings() {
        assert_eq!(Target::parse("").unwrap(), Target::None);
        assert_eq!(
            Target::parse("/run/x/stdout").unwrap(),
            Target::Fifo("/run/x/stdout".into())
        );
        assert_eq!(
            Target::parse("fifo:///a/b").unwrap(),
            Target::Fifo("/a/b".into())
        );
        assert_eq!(
            Target::parse("file:///var/log/a%20b.log").unwrap(),
            Target::File("/var/log/a b.log".into())
        );
        assert_eq!(
            Target::parse("binary:///usr/bin/logger?tag=web&level=info&flag").unwrap(),
            Target::Binary {
                path: "/usr/bin/logger".into(),
                args: vec![
                    "tag".into(),
                    "web".into(),
                    "level".into(),
                    "info".into(),
                    "flag".into()
                ]
            }
        );
        assert!(matches!(
            Target::parse("http://x/y"),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn percent_decoding_tolerates_garbage() {
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%41%42"), "AB");
        assert_eq!(percent_decode("é%é"), "é%é");
    }
}
