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
    time::{Duration, Instant},
};

use nix::{fcntl::OFlag, unistd::pipe2};
use tokio::{
    io::{unix::AsyncFd, Interest},
    sync::{oneshot, watch},
};

use crate::{
    error::{self, Error, Result},
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

/// A URI path, percent-decoded. A `+` in a path is a `+` (`file:///var/log/c++.log`).
fn decode_path(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// A query key or value, decoded as Go's `url.ParseQuery` does for runc-v2: `+` is a space.
fn decode_query(s: &str) -> String {
    decode_path(&s.replace('+', " "))
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
        let path = PathBuf::from(decode_path(path));
        match scheme {
            "fifo" => Ok(Target::Fifo(path)),
            "file" => Ok(Target::File(path)),
            "binary" => {
                let mut args = Vec::new();
                for kv in query.split('&').filter(|kv| !kv.is_empty()) {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    args.push(decode_query(k));
                    if !v.is_empty() {
                        args.push(decode_query(v));
                    }
                }
                Ok(Target::Binary { path, args })
            }
            other => Err(Error::invalid_argument(format!(
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

/// The shim's side of a process's stdio, kept until Delete.
///
/// Every copy is a task on the shim's runtime that waits on its fds and on `stop`, never in
/// an `open` or a `read` that nothing could end: a client may close its end of a fifo before
/// the shim opens it, and then no peer ever comes. Dropping `stop` (Delete, or the process
/// failing to start) ends every copy, and with them all the fds they hold. The copies take
/// no thread of their own, so an idle shim is one thread whatever it serves.
#[derive(Default)]
pub struct ProcessIo {
    /// Dropping it asks the stdin copy to deliver what the fifo holds, then close the
    /// process's stdin (CloseIO).
    close_stdin: Option<oneshot::Sender<()>>,
    /// Dropping it ends every copy at once.
    stop: Option<watch::Sender<()>>,
    console: Option<File>,
    done: Vec<oneshot::Receiver<()>>,
}

/// What a copy watches to end: the sender is [`ProcessIo::stop`].
type Stop = watch::Receiver<()>;

/// Resolves once the copy must stop.
async fn stopped(stop: &mut Stop) {
    // Nothing is ever sent: `changed` fails, at once and forever, when the sender is dropped.
    while stop.changed().await.is_ok() {}
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    pipe2(OFlag::O_CLOEXEC).map_err(|e| error::io("cannot create a pipe", e))
}

fn set_nonblocking(fd: &impl AsRawFd) -> Result<()> {
    // SAFETY: F_GETFL and F_SETFL on an fd the caller owns.
    let ok = unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) >= 0
    };
    if ok {
        Ok(())
    } else {
        Err(error::io(
            "cannot make a pipe non-blocking",
            io::Error::last_os_error(),
        ))
    }
}

fn dev_null() -> Result<OwnedFd> {
    File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map(OwnedFd::from)
        .map_err(|e| error::io("cannot open /dev/null", e))
}

/// Opens the read side of a stdin fifo without waiting for a writer: a fifo opened
/// O_NONBLOCK for reading is open at once. Opened before the process starts, so whatever
/// the client writes lands in it, and a client that closes its end early cannot leave the
/// shim waiting for a writer that never comes. Linux reports no hangup on such a reader
/// until a writer has come and gone, so `poll` waits for the client's data or EOF.
fn open_stdin_fifo(path: &str) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            Error::failed_precondition(format!("cannot open its stdin fifo {path}"))
                .with_source(e)
                .append("; the client must create it before the process starts")
        })
}

/// Opens the write side of a fifo if someone has its read side open; ENXIO if nobody has.
/// Non-blocking, so a copy never waits in `open` for a reader that may never come; it waits
/// for room on the runtime instead.
fn open_fifo_writer(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
}

fn nobody_reads(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENXIO)
}

/// Where one output stream is written, opened before the process starts.
enum Sink {
    Ready(Fd),
    /// A fifo nobody read when the process started: the copy opens it (without waiting) once
    /// it has output, and discards the output until someone reads.
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
            // The client's read side is open, or about to be: try again briefly, never
            // blocking in `open` (a copy stuck there could not be ended).
            let deadline = Instant::now() + FIFO_OPEN_TIMEOUT;
            let mut pause = Duration::from_millis(1);
            loop {
                match open_fifo_writer(&p) {
                    Ok(f) => return Sink::ready(f),
                    Err(e) if nobody_reads(&e) && Instant::now() < deadline => {
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_millis(100));
                    }
                    Err(e) if nobody_reads(&e) => {
                        log::warn!(
                            "nobody opened {} to read it; output is discarded until someone does",
                            p.display()
                        );
                        return Sink::Later(p);
                    }
                    Err(e) => {
                        log::warn!("cannot open {}: {e}; discarding output", p.display());
                        return Sink::Void;
                    }
                }
            }
        }
        Target::File(p) => match OpenOptions::new().append(true).create(true).open(&p) {
            Ok(f) => Sink::ready(f),
            Err(e) => {
                log::warn!("cannot open {}: {e}; discarding output", p.display());
                Sink::Void
            }
        },
        Target::None | Target::Binary { .. } => Sink::Void,
    }
}

impl Sink {
    fn ready(file: File) -> Sink {
        match Fd::new(file) {
            Ok(fd) => Sink::Ready(fd),
            Err(e) => {
                log::warn!("cannot wait on an output destination ({e}); discarding output");
                Sink::Void
            }
        }
    }
}

/// One side of a copy: an fd the runtime waits on (a pipe, a fifo, a terminal), made
/// non-blocking, or a regular file, which is always ready and written as it is.
enum Fd {
    Polled(AsyncFd<File>),
    Plain(File),
}

impl Fd {
    fn new(file: File) -> io::Result<Fd> {
        if file.metadata()?.is_file() {
            return Ok(Fd::Plain(file));
        }
        set_nonblocking(&file).map_err(io::Error::other)?;
        // SAFETY: a `File` owns its fd and keeps it open, the same file, until it is dropped
        // with the `AsyncFd`.
        Ok(Fd::Polled(unsafe { AsyncFd::register(file) }?))
    }

    /// Reads what is there, waiting for it if need be; `Ok(0)` is EOF.
    async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Fd::Plain(f) => retry(|| (&*f).read(buf)),
            Fd::Polled(fd) => loop {
                let mut ready = fd.readable().await?;
                match ready.try_io(|f| retry(|| f.get_ref().read(buf))) {
                    Ok(r) => return r,
                    Err(_would_block) => continue,
                }
            },
        }
    }

    /// Writes some of `data`, waiting for room if need be.
    async fn write(&self, data: &[u8]) -> io::Result<usize> {
        match self {
            Fd::Plain(f) => retry(|| (&*f).write(data)),
            Fd::Polled(fd) => loop {
                let mut ready = fd.writable().await?;
                match ready.try_io(|f| retry(|| f.get_ref().write(data))) {
                    Ok(r) => return r,
                    Err(_would_block) => continue,
                }
            },
        }
    }

    /// Reads what is there now, without waiting: `WouldBlock` when nothing is.
    fn read_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Fd::Plain(f) => retry(|| (&*f).read(buf)),
            Fd::Polled(fd) => retry(|| fd.get_ref().read(buf)),
        }
    }
}

/// `op` again while it fails with EINTR.
fn retry(mut op: impl FnMut() -> io::Result<usize>) -> io::Result<usize> {
    loop {
        match op() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            r => return r,
        }
    }
}

/// How a write into a sink ended.
enum Delivered {
    All,
    Failed(io::Error),
    Stopped,
}

/// Writes all of `data` into `to`. A `to` that is full is waited for, so `stop` still ends
/// the copy while a reader that does not read holds it up.
async fn deliver(to: &Fd, mut data: &[u8], stop: &mut Stop) -> Delivered {
    while !data.is_empty() {
        let written = tokio::select! {
            biased;
            () = stopped(stop) => return Delivered::Stopped,
            r = to.write(data) => r,
        };
        match written {
            Ok(0) => return Delivered::Failed(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) => return Delivered::Failed(e),
        }
    }
    Delivered::All
}

/// Copies a process's output from `from` into `sink` until EOF (EIO is a pty whose other
/// side closed) or until `stop`.
async fn copy_output(from: Fd, mut sink: Sink, mut stop: Stop) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = tokio::select! {
            biased;
            () = stopped(&mut stop) => return,
            r = from.read(&mut buf) => match r {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) => {
                    log::debug!("output source closed: {e}");
                    return;
                }
            },
        };
        if let Sink::Later(p) = &sink {
            match open_fifo_writer(p) {
                Ok(f) => sink = Sink::ready(f),
                Err(e) if nobody_reads(&e) => continue,
                Err(e) => {
                    log::warn!("cannot open {}: {e}; discarding output", p.display());
                    sink = Sink::Void;
                }
            }
        }
        if let Sink::Ready(to) = &sink {
            match deliver(to, &buf[..n], &mut stop).await {
                Delivered::All => {}
                Delivered::Stopped => return,
                Delivered::Failed(e) => {
                    // The reader went away: keep draining so the process never blocks on a
                    // full pipe.
                    log::warn!("output of {n} bytes dropped: {e}");
                    sink = Sink::Void;
                }
            }
        }
    }
}

/// Copies the stdin fifo into the process until the fifo ends, or until CloseIO: then what
/// the fifo still holds is delivered before the process's stdin is closed. Ends at once on
/// `stop`.
async fn copy_stdin(fifo: Fd, to: Fd, mut close: oneshot::Receiver<()>, mut stop: Stop) {
    let mut buf = vec![0u8; 32 * 1024];
    let mut closing = false;
    loop {
        let read = if closing {
            // CloseIO: whatever the client wrote before it is in the fifo now (its reader was
            // open before the process started); what is not there now never comes.
            fifo.read_now(&mut buf)
        } else {
            tokio::select! {
                biased;
                () = stopped(&mut stop) => return,
                _ = &mut close => {
                    closing = true;
                    continue;
                }
                r = fifo.read(&mut buf) => r,
            }
        };
        match read {
            // Every writer closed its end: the process reads EOF.
            Ok(0) | Err(_) => return,
            Ok(n) => match deliver(&to, &buf[..n], &mut stop).await {
                Delivered::All => {}
                Delivered::Stopped | Delivered::Failed(_) => return,
            },
        }
    }
}

impl ProcessIo {
    /// A future that ends when every output stream reached EOF and was delivered.
    pub fn drained(&mut self) -> impl std::future::Future<Output = ()> {
        futures_join_all(std::mem::take(&mut self.done))
    }

    /// Closes the process's stdin, so it reads EOF, after what the client already wrote into
    /// the stdin fifo: a client writes, closes its end and calls CloseIO at once.
    pub fn close_stdin(&mut self) {
        // Dropping the pipe end tells the copy to drain and close.
        self.close_stdin.take();
    }

    /// Releases everything the process's IO holds: its copies end, and with them the fifos
    /// and pipes they hold. For Delete, once the output was given its chance to drain.
    pub fn release(&mut self) {
        self.stop.take();
        self.close_stdin.take();
        self.console.take();
    }

    /// What a new copy watches to end.
    fn stop_watch(&mut self) -> Stop {
        self.stop
            .get_or_insert_with(|| watch::channel(()).0)
            .subscribe()
    }

    pub fn resize(&self, width: u32, height: u32) -> Result<()> {
        // As with runc-v2, resizing a process without a terminal is not an error.
        let Some(console) = self.console.as_ref() else {
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
            return Err(error::io(
                "cannot resize terminal",
                io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    async fn copy_out(&mut self, name: &str, from: OwnedFd, to: Target) -> Result<()> {
        let from =
            Fd::new(File::from(from)).map_err(|e| error::io(format!("cannot copy {name}"), e))?;
        let sink = open_sink(to).await;
        let stop = self.stop_watch();
        let (tx, rx) = oneshot::channel();
        self.done.push(rx);
        tokio::spawn(async move {
            copy_output(from, sink, stop).await;
            let _ = tx.send(());
        });
        Ok(())
    }

    /// Starts copying `fifo` (see [`open_stdin_fifo`]) into the process's stdin `to`.
    fn copy_stdin(&mut self, fifo: File, to: File) -> Result<()> {
        let fifo = Fd::new(fifo).map_err(|e| error::io("cannot copy stdin", e))?;
        let to = Fd::new(to).map_err(|e| error::io("cannot copy stdin", e))?;
        let stop = self.stop_watch();
        let (close_tx, close_rx) = oneshot::channel();
        self.close_stdin = Some(close_tx);
        tokio::spawn(copy_stdin(fifo, to, close_rx, stop));
        Ok(())
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
    let stdin = match req.stdin.as_str() {
        "" => None,
        path => Some(open_stdin_fifo(path)?),
    };
    if req.terminal {
        let console = ConsoleSocket::new(stdin)?;
        return Ok(Prepared {
            runc: Stdio3::default(),
            io,
            console: Some(console),
        });
    }
    let mut runc = Stdio3::default();
    match stdin {
        None => runc.stdin = Some(dev_null()?),
        Some(fifo) => {
            let (r, w) = pipe()?;
            // Only the shim writes into this pipe: non-blocking, so a process that does not
            // read its stdin cannot hold the copy past Delete.
            set_nonblocking(&w)?;
            io.copy_stdin(fifo, File::from(w))?;
            runc.stdin = Some(r);
        }
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
                Error::internal(format!(
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
        Error::invalid_argument(format!(
            "container {id}: cannot start the binary:// logger {}",
            path.display()
        ))
        .with_source(e)
    })?;
    drop((out_r, err_r, ready_w));
    let logger = path.display().to_string();
    tokio::spawn(async move {
        if let Ok(e) = exit.await {
            log::debug!("binary logger {logger} exited with status {}", e.status);
        }
    });
    // The logger signals readiness by writing a byte to fd 5 or closing it.
    let ready = Fd::new(File::from(ready_r))
        .map_err(|e| error::io(format!("container {id}: binary:// logger"), e))?;
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let _ = ready.read(&mut [0u8; 1]).await;
        let _ = tx.send(());
    });
    Ok(rx)
}

/// The socket runc sends a terminal's master side to.
pub struct ConsoleSocket {
    dir: PathBuf,
    listener: tokio::net::UnixListener,
    /// The stdin fifo, opened before the process starts (see [`open_stdin_fifo`]).
    stdin: Option<File>,
}

impl ConsoleSocket {
    fn new(stdin: Option<File>) -> Result<ConsoleSocket> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("crossarch-pty-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).map_err(|e| error::io("console socket", e))?;
        let listener = tokio::net::UnixListener::bind(dir.join("pty.sock"))
            .map_err(|e| error::io("console socket", e))?;
        Ok(ConsoleSocket {
            dir,
            listener,
            stdin,
        })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join("pty.sock")
    }

    /// Receives the terminal master from runc and starts copying it to and from the fifos.
    pub async fn receive(mut self, req: &StdioRequest, io: &mut ProcessIo) -> Result<()> {
        let accept = async {
            let (stream, _) = self.listener.accept().await?;
            loop {
                stream.readable().await?;
                match stream.try_io(Interest::READABLE, || recv_fd(stream.as_raw_fd())) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    r => break r,
                }
            }
        };
        let master = tokio::time::timeout(Duration::from_secs(10), accept)
            .await
            .map_err(|_| Error::internal("runc did not send the terminal in time"))?
            .map_err(|e| error::io("cannot receive the terminal from runc", e))?;
        let _ = std::fs::remove_dir_all(&self.dir);
        let master = File::from(master);
        let reader = master.try_clone().map_err(|e| error::io("terminal", e))?;
        if let Some(fifo) = self.stdin.take() {
            // Its clones share one open file, made non-blocking for the output copy too. A
            // write into it waits only while the terminal's input is full, and fails with EIO
            // once the last process holding the terminal exits.
            let writer = master.try_clone().map_err(|e| error::io("terminal", e))?;
            io.copy_stdin(fifo, writer)?;
        }
        io.console = Some(master);
        io.copy_out("tty", reader.into(), Target::parse(&req.stdout)?)
            .await
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn recv_fd(stream: std::os::fd::RawFd) -> io::Result<OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut buf = [0u8; 4096];
    let mut iov = [io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        stream,
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
    use crate::error::Kind;

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
        assert_eq!(
            Target::parse("http://x/y").map(drop).unwrap_err().kind(),
            Kind::InvalidArgument
        );
    }

    /// A fifo in a fresh directory, and the directory (kept alive by the caller).
    fn fifo() -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stdin");
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        (dir, path.display().to_string())
    }

    /// A stdin copy into a fresh pipe; returns the process's end of it.
    fn stdin_copy(io: &mut ProcessIo, path: &str) -> File {
        let fifo = open_stdin_fifo(path).unwrap();
        let (r, w) = pipe().unwrap();
        set_nonblocking(&w).unwrap();
        io.copy_stdin(fifo, File::from(w)).unwrap();
        File::from(r)
    }

    /// Everything the process reads from its stdin until EOF; panics if no EOF comes in 5 s.
    async fn read_until_eof(mut from: File) -> Vec<u8> {
        let read = tokio::task::spawn_blocking(move || {
            let mut all = Vec::new();
            let _ = from.read_to_end(&mut all);
            all
        });
        tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("the process's stdin was never closed")
            .unwrap()
    }

    #[tokio::test]
    async fn a_stdin_copy_whose_client_left_before_it_opened_ends_on_release() {
        let (_dir, path) = fifo();
        // The client opened its end and closed it before the shim looked: no writer comes.
        drop(
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .unwrap(),
        );
        let mut io = ProcessIo::default();
        let stdin = stdin_copy(&mut io, &path);
        io.release();
        assert_eq!(read_until_eof(stdin).await, b"");
    }

    #[tokio::test]
    async fn close_io_delivers_what_the_fifo_holds_while_the_client_keeps_it_open() {
        let (_dir, path) = fifo();
        let mut io = ProcessIo::default();
        let stdin = stdin_copy(&mut io, &path);
        let mut client = OpenOptions::new().write(true).open(&path).unwrap();
        client.write_all(b"written just before CloseIO\n").unwrap();
        io.close_stdin();
        assert_eq!(
            read_until_eof(stdin).await,
            b"written just before CloseIO\n"
        );
        drop(client);
    }

    #[tokio::test]
    async fn the_clients_eof_is_the_processs() {
        let (_dir, path) = fifo();
        let mut io = ProcessIo::default();
        let stdin = stdin_copy(&mut io, &path);
        let mut client = OpenOptions::new().write(true).open(&path).unwrap();
        client.write_all(b"x").unwrap();
        drop(client);
        assert_eq!(read_until_eof(stdin).await, b"x");
    }

    #[tokio::test]
    async fn a_stdin_copy_blocked_on_a_process_that_does_not_read_ends_on_release() {
        let (_dir, path) = fifo();
        let mut io = ProcessIo::default();
        let stdin = stdin_copy(&mut io, &path);
        let mut client = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .unwrap();
        // More than the process's pipe and the fifo hold together: the copy waits for room.
        let chunk = vec![b'y'; 16 * 1024];
        let mut written = 0;
        while written < 256 * 1024 {
            match client.write(&chunk) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
            // The copy runs meanwhile, until the process's pipe is full.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        io.release();
        let got = read_until_eof(stdin).await;
        assert!(got.len() < written, "{} of {written} bytes", got.len());
    }

    #[test]
    fn a_missing_stdin_fifo_is_an_error_that_names_it() {
        let e = open_stdin_fifo("/nonexistent/stdin")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/stdin"), "{e}");
    }

    #[test]
    fn percent_decoding_tolerates_garbage() {
        assert_eq!(decode_path("%"), "%");
        assert_eq!(decode_path("a%2"), "a%2");
        assert_eq!(decode_path("%zz"), "%zz");
        assert_eq!(decode_path("%41%42"), "AB");
        assert_eq!(decode_path("é%é"), "é%é");
    }

    #[test]
    fn a_plus_is_a_plus_in_a_path_and_a_space_in_a_query() {
        assert_eq!(
            Target::parse("file:///var/log/c++.log").unwrap(),
            Target::File("/var/log/c++.log".into())
        );
        assert_eq!(
            Target::parse("binary:///bin/log+ger?tag=a+b&x=%2B").unwrap(),
            Target::Binary {
                path: "/bin/log+ger".into(),
                args: vec!["tag".into(), "a b".into(), "x".into(), "+".into()]
            }
        );
    }
}
