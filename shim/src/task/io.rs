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
        fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
        unix::{fs::OpenOptionsExt, process::CommandExt},
    },
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use nix::{fcntl::OFlag, unistd::pipe2};
use tokio::sync::oneshot;

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
/// Every copy thread waits in `poll` on its source and on the read end of `stop`, never in an
/// `open` or a `read` that nothing could end: a client may close its end of a fifo before
/// the shim opens it, and then no peer ever comes. Dropping `stop` (Delete, or the process
/// failing to start) ends every thread, and with them all the fds they hold.
#[derive(Default)]
pub struct ProcessIo {
    /// Dropping it asks the stdin copy to deliver what the fifo holds, then close the
    /// process's stdin (CloseIO).
    close_stdin: Option<OwnedFd>,
    /// Dropping it ends every copy thread at once; its read end is shared by them.
    stop: Option<OwnedFd>,
    stop_watch: Option<Arc<OwnedFd>>,
    console: Option<File>,
    done: Vec<oneshot::Receiver<()>>,
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

fn thread(name: &str, f: impl FnOnce() + Send + 'static) -> Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .stack_size(64 * 1024)
        .spawn(f)
        .map(drop)
        .map_err(|e| error::io("cannot start an io thread", e))
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
/// Non-blocking, so a copy thread never waits in `open` for a reader that may never come;
/// the copy waits in `poll` for room instead.
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
    Ready(File),
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
            // blocking in `open` (a thread stuck there could not be ended).
            let deadline = Instant::now() + FIFO_OPEN_TIMEOUT;
            let mut pause = Duration::from_millis(1);
            loop {
                match open_fifo_writer(&p) {
                    Ok(f) => return Sink::Ready(f),
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
            Ok(f) => Sink::Ready(f),
            Err(e) => {
                log::warn!("cannot open {}: {e}; discarding output", p.display());
                Sink::Void
            }
        },
        Target::None | Target::Binary { .. } => Sink::Void,
    }
}

/// What woke a copy thread.
#[derive(Debug, PartialEq, Eq)]
enum Woke {
    /// Its fd is ready (or hung up, or in error: the next read or write says which).
    Ready,
    /// CloseIO.
    CloseStdin,
    /// The process's IO is being released: stop now.
    Stop,
}

/// Waits until `fd` is ready for `events`, CloseIO (if `close` is given), or the stop pipe
/// closes, whichever comes first; the stop wins over the others.
fn wait_for(fd: BorrowedFd, events: i16, close: Option<BorrowedFd>, stop: BorrowedFd) -> Woke {
    let entry = |fd: i32, events| libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    loop {
        // poll skips an entry whose fd is negative.
        let mut fds = [
            entry(stop.as_raw_fd(), libc::POLLIN),
            entry(fd.as_raw_fd(), events),
            entry(close.map_or(-1, |c| c.as_raw_fd()), libc::POLLIN),
        ];
        // SAFETY: three pollfd entries, every fd open (or -1) for the call.
        if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) } < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            log::warn!("poll failed in an io copy ({e}); the copy stops");
            return Woke::Stop;
        }
        if fds[0].revents != 0 {
            return Woke::Stop;
        }
        if fds[1].revents != 0 {
            return Woke::Ready;
        }
        if fds[2].revents != 0 {
            return Woke::CloseStdin;
        }
    }
}

/// How a write into a sink ended.
enum Delivered {
    All,
    Failed(io::Error),
    Stopped,
}

/// Writes all of `data` into `to`. A non-blocking `to` that is full is waited for in `poll`,
/// so the stop pipe still ends the copy while a reader that does not read holds it up.
fn deliver(to: &mut File, mut data: &[u8], stop: BorrowedFd) -> Delivered {
    while !data.is_empty() {
        match to.write(data) {
            Ok(0) => return Delivered::Failed(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if wait_for(to.as_fd(), libc::POLLOUT, None, stop) == Woke::Stop {
                    return Delivered::Stopped;
                }
            }
            Err(e) => return Delivered::Failed(e),
        }
    }
    Delivered::All
}

/// Copies a process's output from `from` into `sink` until EOF (EIO is a pty whose other
/// side closed) or until the stop pipe closes.
fn copy_output(mut from: File, mut sink: Sink, stop: &OwnedFd) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        if wait_for(from.as_fd(), libc::POLLIN, None, stop.as_fd()) == Woke::Stop {
            return;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                ) =>
            {
                continue
            }
            Err(e) => {
                log::debug!("output source closed: {e}");
                return;
            }
        };
        if let Sink::Later(p) = &sink {
            match open_fifo_writer(p) {
                Ok(f) => sink = Sink::Ready(f),
                Err(e) if nobody_reads(&e) => continue,
                Err(e) => {
                    log::warn!("cannot open {}: {e}; discarding output", p.display());
                    sink = Sink::Void;
                }
            }
        }
        if let Sink::Ready(to) = &mut sink {
            match deliver(to, &buf[..n], stop.as_fd()) {
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
/// the fifo still holds is delivered before the process's stdin is closed. Ends at once when
/// the stop pipe closes.
fn copy_stdin(mut fifo: File, mut to: File, close: OwnedFd, stop: &OwnedFd) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match wait_for(
            fifo.as_fd(),
            libc::POLLIN,
            Some(close.as_fd()),
            stop.as_fd(),
        ) {
            Woke::Stop => return,
            Woke::Ready => match fifo.read(&mut buf) {
                // Every writer closed its end: the process reads EOF.
                Ok(0) => return,
                Ok(n) => match deliver(&mut to, &buf[..n], stop.as_fd()) {
                    Delivered::All => {}
                    Delivered::Stopped | Delivered::Failed(_) => return,
                },
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                    ) => {}
                Err(_) => return,
            },
            Woke::CloseStdin => {
                // CloseIO: whatever the client wrote before it is in the fifo now (its reader
                // was open before the process started), and the fifo does not block.
                loop {
                    match fifo.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => match deliver(&mut to, &buf[..n], stop.as_fd()) {
                            Delivered::All => {}
                            Delivered::Stopped | Delivered::Failed(_) => return,
                        },
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => return,
                    }
                }
            }
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

    /// Releases everything the process's IO holds: its copy threads end, and with them the
    /// fifos and pipes they hold. For Delete, once the output was given its chance to drain.
    pub fn release(&mut self) {
        self.stop.take();
        self.stop_watch.take();
        self.close_stdin.take();
        self.console.take();
    }

    /// The read end of the stop pipe, for a new copy thread.
    fn stop_watch(&mut self) -> Result<Arc<OwnedFd>> {
        if let Some(w) = &self.stop_watch {
            return Ok(w.clone());
        }
        let (r, w) = pipe()?;
        let r = Arc::new(r);
        self.stop = Some(w);
        self.stop_watch = Some(r.clone());
        Ok(r)
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
        let sink = open_sink(to).await;
        let stop = self.stop_watch()?;
        let (tx, rx) = oneshot::channel();
        self.done.push(rx);
        let from = File::from(from);
        thread(name, move || {
            copy_output(from, sink, &stop);
            let _ = tx.send(());
        })
    }

    /// Starts copying `fifo` (see [`open_stdin_fifo`]) into the process's stdin `to`.
    fn copy_stdin(&mut self, fifo: File, to: File) -> Result<()> {
        let stop = self.stop_watch()?;
        let (close_r, close_w) = pipe()?;
        self.close_stdin = Some(close_w);
        thread("stdin", move || copy_stdin(fifo, to, close_r, &stop))
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
            let stream = stream.into_std()?;
            stream.set_nonblocking(false)?;
            tokio::task::spawn_blocking(move || recv_fd(&stream))
                .await
                .map_err(io::Error::other)?
        };
        let master = tokio::time::timeout(Duration::from_secs(10), accept)
            .await
            .map_err(|_| Error::internal("runc did not send the terminal in time"))?
            .map_err(|e| error::io("cannot receive the terminal from runc", e))?;
        let _ = std::fs::remove_dir_all(&self.dir);
        let master = File::from(master);
        let reader = master.try_clone().map_err(|e| error::io("terminal", e))?;
        if let Some(fifo) = self.stdin.take() {
            // The master stays blocking: its clones share one open file, which the output
            // copy reads. A write into it blocks only while the terminal's input is full, and
            // ends with EIO once the last process holding the terminal exits.
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
    fn read_until_eof(mut from: File) -> Vec<u8> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut all = Vec::new();
            let _ = from.read_to_end(&mut all);
            let _ = tx.send(all);
        });
        rx.recv_timeout(Duration::from_secs(5))
            .expect("the process's stdin was never closed")
    }

    #[test]
    fn a_stdin_copy_whose_client_left_before_it_opened_ends_on_release() {
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
        assert_eq!(read_until_eof(stdin), b"");
    }

    #[test]
    fn close_io_delivers_what_the_fifo_holds_while_the_client_keeps_it_open() {
        let (_dir, path) = fifo();
        let mut io = ProcessIo::default();
        let stdin = stdin_copy(&mut io, &path);
        let mut client = OpenOptions::new().write(true).open(&path).unwrap();
        client.write_all(b"written just before CloseIO\n").unwrap();
        io.close_stdin();
        assert_eq!(read_until_eof(stdin), b"written just before CloseIO\n");
        drop(client);
    }

    #[test]
    fn the_clients_eof_is_the_processs() {
        let (_dir, path) = fifo();
        let mut io = ProcessIo::default();
        let stdin = stdin_copy(&mut io, &path);
        let mut client = OpenOptions::new().write(true).open(&path).unwrap();
        client.write_all(b"x").unwrap();
        drop(client);
        assert_eq!(read_until_eof(stdin), b"x");
    }

    #[test]
    fn a_stdin_copy_blocked_on_a_process_that_does_not_read_ends_on_release() {
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
            std::thread::sleep(Duration::from_millis(1));
        }
        io.release();
        let got = read_until_eof(stdin);
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
