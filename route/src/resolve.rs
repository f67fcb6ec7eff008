//! Finds the file a container process will execute, inside the container's root.
//!
//! [`search_plan`] is pure: it lists the paths runc will try for args\[0\], the way runc
//! does it (Go's `exec.LookPath` after `chdir(cwd)`, with the container's own `PATH`).
//! [`in_root`] is the I/O edge: it opens those paths with `openat2(RESOLVE_IN_ROOT)`, so an
//! absolute symlink or a `..` in the image resolves against the container's root and never
//! reaches the host's files, then follows `#!` lines and checks the ELF loader exists.

use crate::{elf, shebang};
use serde::Serialize;
use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// The `PATH` used when the process environment has none (the usual Docker/containerd one).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How many `#!` hops are followed. The kernel allows a few more binfmt rewrites in total
/// (`exec_binprm` fails past depth 5), but a foreign binary run through binfmt_misc uses one
/// of them, so deeper chains would fail at exec time anyway.
pub const MAX_SCRIPT_DEPTH: usize = 4;

/// `PATH_MAX` counts the terminating NUL (include/uapi/linux/limits.h): `getname()` fails
/// with ENAMETOOLONG for a path of this many bytes or more, so execve(2) cannot run such an
/// args\[0\] and chdir(2) cannot enter such a cwd.
pub const PATH_MAX: usize = 4096;

/// At most this many distinct paths are tried for args\[0\]. `PATH` is one environment
/// string, which execve(2) caps at `MAX_ARG_STRLEN` (32 pages, 128 KiB with 4 KiB pages;
/// fs/exec.c), so it can still list some 64 Ki directories where real ones list a dozen.
/// With args\[0\] and cwd under [`PATH_MAX`], the cap keeps a plan under 8 MiB beyond the
/// `PATH` string itself instead of hundreds of MiB.
pub const MAX_CANDIDATES: usize = 1024;

/// Why args\[0\] cannot be resolved. Messages name the path inside the container; the
/// caller adds which container and process they concern.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the process has no args[0]; set process.args in the spec")]
    EmptyArg0,
    #[error(
        "args[0] {} is {len} bytes long; the kernel refuses to execute a path of {PATH_MAX} bytes or more (ENAMETOOLONG)",
        Shown(arg0.as_bytes())
    )]
    Arg0TooLong { arg0: String, len: usize },
    #[error(
        "process.cwd {} is {len} bytes long; the kernel refuses to enter a path of {PATH_MAX} bytes or more (ENAMETOOLONG)",
        Shown(cwd.as_bytes())
    )]
    CwdTooLong { cwd: String, len: usize },
    #[error(
        "PATH in process.env lists more than {MAX_CANDIDATES} distinct directories to search for {}; shorten it",
        Shown(arg0.as_bytes())
    )]
    TooManyCandidates { arg0: String },
    #[error("cannot open the container root {path}: {source}")]
    Root { path: PathBuf, source: io::Error },
    #[error(
        "openat2 is not available ({0}); crossarch needs Linux 5.6 or later to look inside containers safely"
    )]
    NoOpenat2(io::Error),
    #[error("{}", not_found(arg0, misses))]
    NotFound { arg0: String, misses: Vec<Miss> },
    /// args\[0\] was found, but cannot be opened to be inspected.
    #[error("{} {}", shown(path), InContainer(*miss))]
    CannotOpen { path: PathBuf, miss: MissKind },
    #[error("{}: {source}", shown(path))]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: {source}", shown(path))]
    Elf { path: PathBuf, source: elf::Error },
    #[error("{}: {source}", shown(path))]
    Script {
        path: PathBuf,
        source: shebang::Error,
    },
    #[error(
        "{}: neither an ELF binary nor a #! script, so the kernel cannot execute it",
        shown(path)
    )]
    UnknownFormat { path: PathBuf },
    #[error("{}: an ELF {e_type:?} file is not an executable", shown(path))]
    NotAnExecutable { path: PathBuf, e_type: elf::Type },
    #[error(
        "{}: #! interpreters nest more than {MAX_SCRIPT_DEPTH} deep",
        shown(path)
    )]
    TooDeep { path: PathBuf },
    #[error(
        "{}: its #! line names a path that is not UTF-8 and cannot go into an OCI spec",
        shown(path)
    )]
    NotUtf8 { path: PathBuf },
    #[error(
        "{}: its #! interpreter {} {}{}",
        shown(script),
        shown(interpreter),
        InContainer(*miss),
        crlf_hint(interpreter)
    )]
    Interpreter {
        script: PathBuf,
        interpreter: PathBuf,
        miss: MissKind,
    },
    #[error(
        "{}: its dynamic loader {} {}{}",
        shown(path),
        shown(loader),
        InContainer(*miss),
        if *miss == MissKind::NotFound {
            "; the image lacks the libraries for this architecture"
        } else {
            ""
        }
    )]
    Loader {
        path: PathBuf,
        loader: PathBuf,
        miss: MissKind,
    },
    #[error(
        "{}: its dynamic loader path (PT_INTERP) is not UTF-8 and cannot go into crossarch's decision",
        shown(path)
    )]
    LoaderNotUtf8 { path: PathBuf },
}

/// A path that was tried and why it was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Miss {
    pub path: PathBuf,
    pub kind: MissKind,
}

/// Why a path cannot be executed or inspected. Anything but `NotFound` is worth showing a
/// user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissKind {
    NotFound,
    NotRegularFile,
    NotExecutable {
        mode: u32,
    },
    SymlinkLoop,
    /// Another process holds a write lease on the file, so opening it would wait. LookPath
    /// does not open files, so this never makes runc skip a candidate.
    Leased,
    Os(i32),
}

impl fmt::Display for MissKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MissKind::NotFound => f.write_str("does not exist"),
            MissKind::NotRegularFile => f.write_str("is not a regular file"),
            MissKind::NotExecutable { mode } => {
                write!(f, "is not executable (mode {:04o})", mode & 0o7777)
            }
            MissKind::SymlinkLoop => {
                f.write_str("is a symbolic link loop (or a chain of more than 40 links)")
            }
            MissKind::Leased => write!(f, "{LEASED}{LEASED_HINT}"),
            MissKind::Os(errno) => {
                write!(
                    f,
                    "cannot be opened ({})",
                    io::Error::from_raw_os_error(*errno)
                )
            }
        }
    }
}

/// An error lists this many tried paths at most, then counts the rest: a few show what is
/// wrong, and up to [`MAX_CANDIDATES`] paths of up to [`PATH_MAX`] bytes would not.
const SHOWN_MISSES: usize = 6;

const LEASED: &str = "is leased by another process (a write lease)";
const LEASED_HINT: &str = "; retry once the lease is released";

/// A [`MissKind`] said of a path in the container.
struct InContainer(MissKind);

impl fmt::Display for InContainer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            MissKind::Leased => write!(f, "{LEASED} in the container{LEASED_HINT}"),
            kind => write!(f, "{kind} in the container"),
        }
    }
}

fn not_found(arg0: &str, misses: &[Miss]) -> String {
    let arg0 = Shown(arg0.as_bytes());
    let notable: Vec<&Miss> = misses
        .iter()
        .filter(|m| m.kind != MissKind::NotFound)
        .collect();
    if !notable.is_empty() {
        let listed: Vec<String> = notable
            .iter()
            .take(SHOWN_MISSES)
            .map(|m| format!("{} {}", shown(&m.path), m.kind))
            .collect();
        return format!(
            "cannot execute {arg0}: {}{}",
            listed.join("; "),
            and_more(notable.len(), "; ")
        );
    }
    match misses {
        [] => format!("{arg0} cannot be found: PATH is empty in process.env"),
        [one] => format!("{} does not exist in the container", shown(&one.path)),
        _ => {
            let dirs: Vec<String> = misses
                .iter()
                .take(SHOWN_MISSES)
                .map(|m| m.path.parent().map(shown).map(|d| d.to_string()))
                .map(Option::unwrap_or_default)
                .collect();
            format!(
                "{arg0} is not in the container's PATH ({}{}); check process.args and PATH",
                dirs.join(":"),
                and_more(misses.len(), " ")
            )
        }
    }
}

fn and_more(total: usize, sep: &str) -> String {
    match total.checked_sub(SHOWN_MISSES) {
        Some(more) if more > 0 => format!("{sep}and {more} more"),
        _ => String::new(),
    }
}

fn crlf_hint(interpreter: &Path) -> &'static str {
    if interpreter.as_os_str().as_bytes().ends_with(b"\r") {
        " (the script has DOS line endings; convert it with dos2unix)"
    } else {
        ""
    }
}

/// Paths longer than this are shown by their start and end: they come from the image or the
/// client, and a message goes into logs and back to the client, where a whole PATH_MAX path
/// would hide what matters (which directory, which file).
const SHOWN_PATH_LEN: usize = 200;

/// A path from the image, as a message shows it: lossy UTF-8, cut to about
/// [`SHOWN_PATH_LEN`] bytes.
struct Shown<'a>(&'a [u8]);

fn shown(path: &Path) -> Shown<'_> {
    Shown(path.as_os_str().as_bytes())
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0;
        if bytes.len() <= SHOWN_PATH_LEN {
            return f.write_str(&String::from_utf8_lossy(bytes));
        }
        let head = &bytes[..SHOWN_PATH_LEN * 2 / 3];
        let tail = &bytes[bytes.len() - SHOWN_PATH_LEN / 3..];
        write!(
            f,
            "{}...{} ({} bytes)",
            String::from_utf8_lossy(head),
            String::from_utf8_lossy(tail),
            bytes.len()
        )
    }
}

/// The paths runc will try for args\[0\], in order, as absolute paths in the container.
///
/// `env` is `process.env` (`KEY=VALUE` strings); its last `PATH` wins, as in runc, and
/// [`DEFAULT_PATH`] applies when there is none. Relative paths and empty `PATH` entries are
/// relative to `cwd`. A directory listed twice is tried once, and an args\[0\] or cwd the
/// kernel would refuse, or more than [`MAX_CANDIDATES`] directories, are errors.
pub fn search_plan(arg0: &str, env: &[String], cwd: &str) -> Result<Vec<PathBuf>, Error> {
    if arg0.is_empty() {
        return Err(Error::EmptyArg0);
    }
    if arg0.len() >= PATH_MAX {
        return Err(Error::Arg0TooLong {
            arg0: arg0.to_owned(),
            len: arg0.len(),
        });
    }
    // runc chdirs there before the lookup, and every relative PATH entry repeats it.
    if cwd.len() >= PATH_MAX {
        return Err(Error::CwdTooLong {
            cwd: cwd.to_owned(),
            len: cwd.len(),
        });
    }
    if arg0.contains('/') {
        return Ok(vec![in_cwd(cwd, arg0)]);
    }
    let path = env
        .iter()
        .filter_map(|kv| kv.strip_prefix("PATH="))
        .next_back()
        .unwrap_or(DEFAULT_PATH);
    // Go's filepath.SplitList, which runc's LookPath uses, yields nothing for an empty PATH.
    if path.is_empty() {
        return Err(Error::NotFound {
            arg0: arg0.to_owned(),
            misses: Vec::new(),
        });
    }
    // LookPath tries directories in order and stops at the first hit, so a repeat can only
    // fail again the way its first occurrence did: dropping it changes no answer. `dirs`
    // catches repeats at a cost proportional to the entry alone (relative entries keyed
    // apart from absolute ones); only new entries pay for cwd and args[0] to meet `seen`,
    // which also catches `rel` against `/cwd/rel`.
    let mut plan = Vec::new();
    let mut dirs = HashSet::new();
    let mut seen = HashSet::new();
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        if !dirs.insert((dir.starts_with('/'), in_cwd("/", dir))) {
            continue;
        }
        let candidate = in_cwd(cwd, dir).join(arg0);
        if seen.contains(&candidate) {
            continue;
        }
        if plan.len() == MAX_CANDIDATES {
            return Err(Error::TooManyCandidates {
                arg0: arg0.to_owned(),
            });
        }
        seen.insert(candidate.clone());
        plan.push(candidate);
    }
    Ok(plan)
}

/// `path` made absolute against `cwd`, without touching `..` (only the kernel knows where
/// it leads once symlinks are involved).
fn in_cwd(cwd: &str, path: &str) -> PathBuf {
    let mut out = PathBuf::from("/");
    let base = if path.starts_with('/') { "" } else { cwd };
    for part in Path::new(base)
        .components()
        .chain(Path::new(path).components())
    {
        match part {
            Component::Normal(p) => out.push(p),
            Component::ParentDir => out.push(".."),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// The root directory of a container, held open so every lookup is relative to it.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

impl Root {
    /// Opens a root: the bundle's rootfs at Create, `/proc/<init pid>/root` at Exec (which
    /// also sees the container's volume mounts).
    pub fn open(path: impl AsRef<Path>) -> Result<Root, Error> {
        let path = path.as_ref();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(path)
            .map_err(|source| Error::Root {
                path: path.to_owned(),
                source,
            })?;
        Ok(Root {
            fd: file.into(),
            path: path.to_owned(),
        })
    }

    /// The host path the root was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The file a process will execute and what finally runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolved {
    /// args\[0\] resolved against `PATH` and `cwd`: the path runc will execve.
    pub path_in_root: PathBuf,
    /// The `#!` hops from `path_in_root` to the ELF; empty when it is an ELF itself.
    pub scripts: Vec<Script>,
    /// The ELF binary that finally runs: `path_in_root`, or the last script's interpreter.
    pub elf_path: PathBuf,
    pub elf: elf::Elf,
    /// The dynamic loader (`PT_INTERP`) as an absolute path in the container, which exists.
    pub loader: Option<PathBuf>,
}

/// One `#!` hop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Script {
    /// The script, as an absolute path in the container.
    pub path: PathBuf,
    /// The interpreter as written on the `#!` line: it becomes the interpreter's argv\[0\].
    pub interpreter_as_written: String,
    /// The interpreter as an absolute path in the container.
    pub interpreter: PathBuf,
    /// The single optional argument of the `#!` line.
    pub arg: Option<String>,
}

impl Resolved {
    /// The argv the kernel hands to [`Resolved::elf_path`] when runc executes
    /// `path_in_root` with `args`: each `#!` hop puts its interpreter, its argument and the
    /// script's path in front of the arguments after argv\[0\].
    pub fn exec_argv(&self, args: &[String]) -> Vec<String> {
        let mut argv = args.to_vec();
        if argv.is_empty() {
            argv.push(self.path_in_root.to_string_lossy().into_owned());
        }
        let mut filename = self.path_in_root.to_string_lossy().into_owned();
        for hop in &self.scripts {
            let mut next = vec![hop.interpreter_as_written.clone()];
            next.extend(hop.arg.clone());
            next.push(filename);
            next.extend(argv.drain(1..));
            argv = next;
            filename = hop.interpreter_as_written.clone();
        }
        argv
    }
}

/// Resolves args\[0\] inside `root`: the first of `candidates` (from [`search_plan`]) that is
/// an executable regular file, then its `#!` interpreters, then its ELF loader.
pub fn in_root(root: &Root, candidates: &[PathBuf], cwd: &str) -> Result<Resolved, Error> {
    let mut misses = Vec::new();
    let mut found = None;
    for candidate in candidates {
        match find_executable(root.fd.as_fd(), candidate)? {
            Ok(fd) => {
                found = Some((candidate.clone(), fd));
                break;
            }
            Err(kind) => misses.push(Miss {
                path: candidate.clone(),
                kind,
            }),
        }
    }
    let Some((path_in_root, fd)) = found else {
        let arg0 = candidates
            .first()
            .and_then(|c| c.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        return Err(Error::NotFound { arg0, misses });
    };
    // LookPath has chosen this file; runc would execute it even if it cannot be read now, so
    // trying the next candidate would inspect a binary that never runs.
    let mut file = reopen(&fd).map_err(|miss| Error::CannotOpen {
        path: path_in_root.clone(),
        miss,
    })?;

    let mut scripts = Vec::new();
    let mut current = path_in_root.clone();
    let mut prefix = [0u8; elf::PREFIX_LEN];
    loop {
        let n = read_prefix(&file, &mut prefix).map_err(|source| Error::Read {
            path: current.clone(),
            source,
        })?;
        let prefix = &prefix[..n];
        if prefix.starts_with(b"#!") {
            if scripts.len() == MAX_SCRIPT_DEPTH {
                return Err(Error::TooDeep { path: path_in_root });
            }
            let line = shebang::parse(prefix).map_err(|source| Error::Script {
                path: current.clone(),
                source,
            })?;
            let utf8 = |b: &[u8]| {
                std::str::from_utf8(b)
                    .map(str::to_owned)
                    .map_err(|_| Error::NotUtf8 {
                        path: current.clone(),
                    })
            };
            let written = utf8(line.interpreter)?;
            let arg = line.arg.map(utf8).transpose()?;
            let interpreter = in_cwd(cwd, &written);
            let opened = find_executable(root.fd.as_fd(), &interpreter)?.and_then(|fd| reopen(&fd));
            file = match opened {
                Ok(f) => f,
                Err(miss) => {
                    return Err(Error::Interpreter {
                        script: current,
                        interpreter: PathBuf::from(&written),
                        miss,
                    })
                }
            };
            scripts.push(Script {
                path: current,
                interpreter_as_written: written,
                interpreter: interpreter.clone(),
                arg,
            });
            current = interpreter;
            continue;
        }
        let elf = parse_elf(&file, prefix).map_err(|e| match e {
            ElfRead::Elf(elf::Error::NotElf) => Error::UnknownFormat {
                path: current.clone(),
            },
            ElfRead::Elf(source) => Error::Elf {
                path: current.clone(),
                source,
            },
            ElfRead::Io(source) => Error::Read {
                path: current.clone(),
                source,
            },
        })?;
        if !elf.e_type.is_executable() {
            return Err(Error::NotAnExecutable {
                path: current,
                e_type: elf.e_type,
            });
        }
        let loader = match loader_path(&file, &elf, prefix) {
            Ok(loader) => loader,
            Err(ElfRead::Elf(source)) => {
                return Err(Error::Elf {
                    path: current,
                    source,
                })
            }
            Err(ElfRead::Io(source)) => {
                return Err(Error::Read {
                    path: current,
                    source,
                })
            }
        };
        let loader = match loader {
            None => None,
            Some(written) => {
                // The kernel opens these very bytes; a lossy copy would look up another file.
                let Ok(written) = String::from_utf8(written) else {
                    return Err(Error::LoaderNotUtf8 { path: current });
                };
                let loader = in_cwd(cwd, &written);
                match open_in_root(root.fd.as_fd(), &loader, libc::O_PATH)? {
                    Ok(fd) if is_regular(&fd) => Some(loader),
                    Ok(_) => {
                        return Err(Error::Loader {
                            path: current,
                            loader,
                            miss: MissKind::NotRegularFile,
                        })
                    }
                    Err(miss) => {
                        return Err(Error::Loader {
                            path: current,
                            loader,
                            miss,
                        })
                    }
                }
            }
        };
        return Ok(Resolved {
            path_in_root,
            scripts,
            elf_path: current,
            elf,
            loader,
        });
    }
}

enum ElfRead {
    Elf(elf::Error),
    Io(io::Error),
}

fn parse_elf(file: &File, prefix: &[u8]) -> Result<elf::Elf, ElfRead> {
    let header = elf::Header::parse(prefix).map_err(ElfRead::Elf)?;
    let table = header.program_headers().map_err(ElfRead::Elf)?;
    let end = table.offset.saturating_add(table.len);
    if end <= prefix.len() as u64 {
        let bytes = prefix
            .get(table.offset as usize..end as usize)
            .unwrap_or_default();
        return header.finish(bytes).map_err(ElfRead::Elf);
    }
    // Program headers past the prefix: rare, but legal. The parser capped their size.
    let buf = read_segment(file, table)?;
    header.finish(&buf).map_err(ElfRead::Elf)
}

/// The bytes of `seg`, whose length the parser capped. A file that ends first is truncated,
/// as the kernel finds it too (its elf_read() fails with EIO).
fn read_segment(file: &File, seg: elf::Segment) -> Result<Vec<u8>, ElfRead> {
    let mut buf = vec![0u8; seg.len as usize];
    file.read_exact_at(&mut buf, seg.offset)
        .map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => ElfRead::Elf(elf::Error::Truncated {
                need: seg.offset.saturating_add(seg.len),
                have: file.metadata().map(|m| m.len()).unwrap_or(0),
            }),
            _ => ElfRead::Io(e),
        })?;
    Ok(buf)
}

fn loader_path(file: &File, elf: &elf::Elf, prefix: &[u8]) -> Result<Option<Vec<u8>>, ElfRead> {
    match elf.interp(prefix).map_err(ElfRead::Elf)? {
        elf::Interp::None => Ok(None),
        elf::Interp::Path(p) => Ok(Some(p.to_vec())),
        elf::Interp::At(seg) => {
            let buf = read_segment(file, seg)?;
            let path = elf::interp_path(&buf).map_err(ElfRead::Elf)?;
            Ok(Some(path.to_vec()))
        }
    }
}

fn read_prefix(file: &File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Opens `path` in the root with O_PATH if it is an executable regular file, the checks
/// runc's LookPath makes. The outer error is fatal (no openat2 at all); the inner one is a
/// reason to try the next candidate.
fn find_executable(root: BorrowedFd<'_>, path: &Path) -> Result<Result<OwnedFd, MissKind>, Error> {
    // O_PATH first: opening a FIFO would block and opening a device node from an image
    // could have side effects on the host device it names; only regular files get read.
    let fd = match open_in_root(root, path, libc::O_PATH)? {
        Ok(fd) => fd,
        Err(miss) => return Ok(Err(miss)),
    };
    let st = match fstat(&fd) {
        Ok(st) => st,
        Err(e) => return Ok(Err(miss_from(&e))),
    };
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Ok(Err(MissKind::NotRegularFile));
    }
    // Go's LookPath, which runc uses, accepts any of the three execute bits.
    if st.st_mode & 0o111 == 0 {
        return Ok(Err(MissKind::NotExecutable { mode: st.st_mode }));
    }
    Ok(Ok(fd))
}

/// Opens the file [`find_executable`] checked, for reading.
fn reopen(fd: &OwnedFd) -> Result<File, MissKind> {
    // Reopening through /proc/self/fd reads the very inode that was checked, so the file
    // cannot be swapped for a device node in between.
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    // A write lease another process holds (F_SETLEASE) makes a plain open wait up to
    // lease-break-time, 45 s by default; with O_NONBLOCK, break_lease() (fs/locks.c) fails
    // with EWOULDBLOCK at once, still telling the holder to let go. Reads of a regular file
    // ignore the flag.
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(file) => Ok(file),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Err(MissKind::Leased),
        Err(e) => Err(miss_from(&e)),
    }
}

fn is_regular(fd: &OwnedFd) -> bool {
    fstat(fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG)
}

fn fstat(fd: &OwnedFd) -> io::Result<libc::stat> {
    nix::sys::stat::fstat(fd).map_err(io::Error::from)
}

fn miss_from(e: &io::Error) -> MissKind {
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => MissKind::NotFound,
        Some(libc::ELOOP) => MissKind::SymlinkLoop,
        Some(errno) => MissKind::Os(errno),
        None => MissKind::Os(libc::EIO),
    }
}

/// openat2 with `RESOLVE_IN_ROOT`: `/` and `..` stop at `root`, absolute symlinks are
/// resolved against it, and magic links (`/proc/self/root`, ...) are refused.
fn open_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    flags: libc::c_int,
) -> Result<Result<OwnedFd, MissKind>, Error> {
    use nix::{
        errno::Errno,
        fcntl::{openat2, OFlag, OpenHow, ResolveFlag},
    };
    if path.as_os_str().as_bytes().contains(&0) {
        return Ok(Err(MissKind::NotFound));
    }
    // openat2 rejects any flag O_PATH ignores, O_NOCTTY included.
    let how = || {
        OpenHow::new()
            .flags(OFlag::from_bits_retain(flags) | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
    };
    // EAGAIN means a rename or mount raced with the lookup; the kernel asks us to retry.
    for _ in 0..16 {
        match openat2(root, path, how()) {
            Ok(fd) => return Ok(Ok(fd)),
            Err(Errno::EAGAIN | Errno::EINTR) => continue,
            Err(e @ (Errno::ENOSYS | Errno::E2BIG)) => return Err(Error::NoOpenat2(e.into())),
            Err(e) => return Ok(Err(miss_from(&e.into()))),
        }
    }
    Ok(Err(MissKind::Os(libc::EAGAIN)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::{CString, OsStr};
    use std::os::fd::FromRawFd;

    fn env(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn paths(v: &[&str]) -> Vec<PathBuf> {
        v.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn plan_uses_the_default_path_when_env_has_none() {
        let plan = search_plan("sh", &env(&["HOME=/root"]), "/").unwrap();
        assert_eq!(
            plan,
            paths(&[
                "/usr/local/sbin/sh",
                "/usr/local/bin/sh",
                "/usr/sbin/sh",
                "/usr/bin/sh",
                "/sbin/sh",
                "/bin/sh"
            ])
        );
    }

    #[test]
    fn plan_uses_the_last_path_and_cwd_for_relative_entries() {
        let plan = search_plan(
            "app",
            &env(&["PATH=/nope", "PATH=/opt/bin::rel/bin"]),
            "/srv/work",
        )
        .unwrap();
        assert_eq!(
            plan,
            paths(&["/opt/bin/app", "/srv/work/app", "/srv/work/rel/bin/app"])
        );
        let err = search_plan("app", &env(&["PATH="]), "/").unwrap_err();
        assert_eq!(
            err.to_string(),
            "app cannot be found: PATH is empty in process.env"
        );
        // "PATHX=" is another variable.
        let plan = search_plan("app", &env(&["PATHX=/x"]), "/").unwrap();
        assert_eq!(plan.len(), 6);
    }

    #[test]
    fn plan_takes_paths_with_a_slash_as_they_are() {
        assert_eq!(
            search_plan("/bin/sh", &env(&["PATH=/x"]), "/w").unwrap(),
            paths(&["/bin/sh"])
        );
        assert_eq!(
            search_plan("./run.sh", &[], "/app").unwrap(),
            paths(&["/app/run.sh"])
        );
        assert_eq!(
            search_plan("../bin/x", &[], "/app/sub/").unwrap(),
            paths(&["/app/sub/../bin/x"])
        );
        assert_eq!(search_plan("bin//x", &[], "").unwrap(), paths(&["/bin/x"]));
        assert!(matches!(search_plan("", &[], "/"), Err(Error::EmptyArg0)));
    }

    #[test]
    fn plan_refuses_what_the_kernel_refuses() {
        // Found live: 30,000 empty PATH entries and a 30,000-byte args[0].
        let colons = format!("PATH={}", ":".repeat(30_000));
        let long = "a".repeat(30_000);
        let err = search_plan(&long, std::slice::from_ref(&colons), "/").unwrap_err();
        assert!(
            matches!(err, Error::Arg0TooLong { len: 30_000, .. }),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.len() < 4096, "{} bytes", msg.len());
        assert!(msg.starts_with("args[0] aaaa"), "{msg}");
        assert!(msg.ends_with(
            " is 30000 bytes long; the kernel refuses to execute a path of 4096 bytes or more \
             (ENAMETOOLONG)"
        ));
        let err = search_plan(&format!("/{long}"), &[], "/").unwrap_err();
        assert!(matches!(err, Error::Arg0TooLong { len: 30_001, .. }));
        // The longest args[0] execve takes, behind the same 30,000 colons: one candidate.
        let longest = "a".repeat(PATH_MAX - 1);
        let plan = search_plan(&longest, &[colons], "/").unwrap();
        assert_eq!(plan, vec![PathBuf::from(format!("/{longest}"))]);
        let err = search_plan("sh", &[], &format!("/{long}")).unwrap_err();
        assert!(matches!(err, Error::CwdTooLong { len: 30_001, .. }));
        assert!(err.to_string().len() < 4096);
    }

    #[test]
    fn plan_tries_each_directory_once_in_order() {
        let plan = search_plan(
            "sh",
            &env(&["PATH=/bin:/usr/bin:/bin/:/bin//:/./bin:/usr/bin::.:/:/bin"]),
            "/",
        )
        .unwrap();
        assert_eq!(plan, paths(&["/bin/sh", "/usr/bin/sh", "/sh"]));
        let plan = search_plan("app", &env(&["PATH=::rel:/w/rel:.:/w"]), "/w").unwrap();
        assert_eq!(plan, paths(&["/w/app", "/w/rel/app"]));
    }

    #[test]
    fn plan_has_at_most_max_candidates() {
        let dirs = |n: usize| {
            let list: Vec<String> = (0..n).map(|i| format!("/d{i}")).collect();
            format!("PATH={}", list.join(":"))
        };
        let plan = search_plan("app", &[dirs(MAX_CANDIDATES)], "/").unwrap();
        assert_eq!(plan.len(), MAX_CANDIDATES);
        // Repeats do not count towards the cap.
        let twice = format!("{}:{}", dirs(MAX_CANDIDATES), &dirs(MAX_CANDIDATES)[5..]);
        assert_eq!(
            search_plan("app", &[twice], "/").unwrap().len(),
            MAX_CANDIDATES
        );
        // 30,000 distinct relative entries under a long cwd would have been 30,000 paths of
        // 4 KiB each.
        let cwd = format!("/{}", "c".repeat(PATH_MAX - 2));
        let relative: Vec<String> = (0..30_000).map(|i| format!("r{i}")).collect();
        let env_ = [format!("PATH={}", relative.join(":"))];
        let err = search_plan("app", &env_, &cwd).unwrap_err();
        assert!(matches!(err, Error::TooManyCandidates { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "PATH in process.env lists more than 1024 distinct directories to search for app; \
             shorten it"
        );
        let err = search_plan("app", &[dirs(MAX_CANDIDATES + 1)], "/").unwrap_err();
        assert!(matches!(err, Error::TooManyCandidates { .. }));
    }

    #[test]
    fn exec_argv_follows_the_kernel() {
        let elf = elf::parse(&elf::tests::Craft::default().bytes()).unwrap();
        let direct = Resolved {
            path_in_root: "/bin/busybox".into(),
            scripts: vec![],
            elf_path: "/bin/busybox".into(),
            elf,
            loader: None,
        };
        let args = env(&["sh", "-c", "true"]);
        assert_eq!(direct.exec_argv(&args), args);
        let script = Resolved {
            path_in_root: "/app/run".into(),
            scripts: vec![
                Script {
                    path: "/app/run".into(),
                    interpreter_as_written: "/app/wrapper".into(),
                    interpreter: "/app/wrapper".into(),
                    arg: Some("-x y".into()),
                },
                Script {
                    path: "/app/wrapper".into(),
                    interpreter_as_written: "/bin/sh".into(),
                    interpreter: "/bin/sh".into(),
                    arg: None,
                },
            ],
            elf_path: "/bin/sh".into(),
            elf,
            loader: None,
        };
        assert_eq!(
            script.exec_argv(&env(&["run", "a", "b"])),
            env(&["/bin/sh", "/app/wrapper", "-x y", "/app/run", "a", "b"])
        );
    }

    #[test]
    fn not_found_messages() {
        let e = Error::NotFound {
            arg0: "app".into(),
            misses: vec![
                Miss {
                    path: "/usr/bin/app".into(),
                    kind: MissKind::NotFound,
                },
                Miss {
                    path: "/bin/app".into(),
                    kind: MissKind::NotFound,
                },
            ],
        };
        assert_eq!(
            e.to_string(),
            "app is not in the container's PATH (/usr/bin:/bin); check process.args and PATH"
        );
        let e = Error::NotFound {
            arg0: "app".into(),
            misses: vec![
                Miss {
                    path: "/usr/bin/app".into(),
                    kind: MissKind::SymlinkLoop,
                },
                Miss {
                    path: "/bin/app".into(),
                    kind: MissKind::NotExecutable { mode: 0o100644 },
                },
            ],
        };
        assert_eq!(
            e.to_string(),
            "cannot execute app: /usr/bin/app is a symbolic link loop (or a chain of more than 40 links); /bin/app is not executable (mode 0644)"
        );
        let e = Error::Interpreter {
            script: "/run.sh".into(),
            interpreter: "/bin/sh\r".into(),
            miss: MissKind::NotFound,
        };
        assert!(e
            .to_string()
            .ends_with("(the script has DOS line endings; convert it with dos2unix)"));
    }

    #[test]
    fn messages_stay_short_however_many_paths_were_tried() {
        let long_dir = format!("/{}", "d".repeat(PATH_MAX - 100));
        let misses = |kind| -> Vec<Miss> {
            (0..MAX_CANDIDATES)
                .map(|i| Miss {
                    path: PathBuf::from(format!("{long_dir}{i}/app")),
                    kind,
                })
                .collect()
        };
        let e = Error::NotFound {
            arg0: "app".into(),
            misses: misses(MissKind::NotFound),
        };
        let msg = e.to_string();
        assert!(msg.len() < 4096, "{} bytes", msg.len());
        assert!(
            msg.starts_with("app is not in the container's PATH (/dddd"),
            "{msg}"
        );
        assert!(
            msg.ends_with(" and 1018 more); check process.args and PATH"),
            "{msg}"
        );
        let e = Error::NotFound {
            arg0: "app".into(),
            misses: misses(MissKind::NotRegularFile),
        };
        let msg = e.to_string();
        assert!(msg.len() < 4096, "{} bytes", msg.len());
        assert_eq!(msg.matches("is not a regular file").count(), SHOWN_MISSES);
        assert!(msg.ends_with("; and 1018 more"), "{msg}");
        // A long path keeps its start and its end, the file name.
        let one = format!("{}/app", "x".repeat(4000));
        assert_eq!(
            shown(Path::new(&one)).to_string(),
            format!("{}...{}/app (4004 bytes)", "x".repeat(133), "x".repeat(62))
        );
        assert_eq!(shown(Path::new("/bin/sh")).to_string(), "/bin/sh");
    }

    /// A throwaway container root under the temp dir, removed on drop.
    struct TempRoot(PathBuf);

    impl TempRoot {
        fn new(name: &str) -> TempRoot {
            let dir =
                std::env::temp_dir().join(format!("crossarch-route-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempRoot(dir)
        }

        fn file(&self, path: &str, bytes: &[u8], mode: u32) -> &Self {
            use std::os::unix::fs::PermissionsExt;
            let p = self.0.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, bytes).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            self
        }

        fn link(&self, path: &str, target: &str) -> &Self {
            let p = self.0.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(target, p).unwrap();
            self
        }

        fn resolve(&self, arg0: &str, env_: &[&str]) -> Result<Resolved, Error> {
            resolve_at(&self.0, arg0, &env(env_))
        }

        /// [`TempRoot::resolve`] on another thread, failing the test if it takes longer than
        /// `limit`: a hang shows up as a failure instead of a stuck test run.
        fn resolve_within(
            &self,
            limit: std::time::Duration,
            arg0: &str,
            env_: &[&str],
        ) -> Result<Resolved, Error> {
            let (dir, arg0, env_) = (self.0.clone(), arg0.to_owned(), env(env_));
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(resolve_at(&dir, &arg0, &env_));
            });
            rx.recv_timeout(limit)
                .unwrap_or_else(|_| panic!("in_root still runs after {limit:?}"))
        }
    }

    fn resolve_at(dir: &Path, arg0: &str, env_: &[String]) -> Result<Resolved, Error> {
        let root = Root::open(dir).unwrap();
        in_root(&root, &search_plan(arg0, env_, "/").unwrap(), "/")
    }

    /// Another process, holding a write lease on each of its files until dropped.
    struct LeaseHolder(std::process::Child);

    impl LeaseHolder {
        fn new(files: &[PathBuf]) -> LeaseHolder {
            use std::io::BufRead;
            use std::process::{Command, Stdio};
            // SIGIO announces that someone wants the file; the default action would end the
            // holder, and with it the lease.
            const HOLD: &str = "import fcntl, os, signal, sys
signal.signal(signal.SIGIO, signal.SIG_IGN)
fds = [os.open(p, os.O_RDWR) for p in sys.argv[1:]]
for fd in fds:
    fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
print('leased', flush=True)
sys.stdin.read()
";
            let mut child = Command::new("python3")
                .args(["-c", HOLD])
                .args(files)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("python3 runs the lease holder");
            let mut line = String::new();
            std::io::BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            assert_eq!(line, "leased\n", "the lease holder failed");
            LeaseHolder(child)
        }
    }

    impl Drop for LeaseHolder {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    impl Drop for TempRoot {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn arm64_static() -> Vec<u8> {
        elf::tests::Craft {
            machine: 183,
            ..elf::tests::Craft::default()
        }
        .bytes()
    }

    fn arm64_dynamic(interp_at: Option<u64>) -> Vec<u8> {
        elf::tests::Craft {
            machine: 183,
            e_type: 3,
            interp: Some(b"/lib/ld-linux-aarch64.so.1\0"),
            interp_at,
            ..elf::tests::Craft::default()
        }
        .bytes()
    }

    #[test]
    fn absolute_symlinks_resolve_inside_the_root() {
        let root = TempRoot::new("abs");
        root.file("/usr/bin/x", &arm64_static(), 0o755)
            .link("/bin/app", "/usr/bin/x")
            .link("/bin/rel", "../../../../../../../usr/bin/x");
        for arg0 in ["/bin/app", "/bin/rel", "app", "rel"] {
            let r = root.resolve(arg0, &["PATH=/bin"]).unwrap();
            // The host's /usr/bin/x, if any, is not what was read: this one is arm64.
            assert_eq!(r.elf.machine, elf::Machine::AARCH64, "{arg0}");
            assert!(r.path_in_root.starts_with("/bin"));
            assert!(r.scripts.is_empty() && r.loader.is_none());
        }
    }

    #[test]
    fn symlinks_to_host_only_files_are_not_followed_out() {
        let root = TempRoot::new("escape");
        // /bin/sh exists on the host; in the root the link leads nowhere.
        root.link("/bin/esc", "../../../../../../../../../bin/sh")
            .link("/bin/abs", "/proc/self/exe");
        for arg0 in ["/bin/esc", "/bin/abs"] {
            let err = root.resolve(arg0, &[]).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("{arg0} does not exist in the container"),
                "{arg0}"
            );
        }
    }

    #[test]
    fn symlink_loops_are_reported_as_such() {
        let root = TempRoot::new("loop");
        root.link("/bin/a", "/bin/b").link("/bin/b", "a");
        let err = root.resolve("a", &["PATH=/bin"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot execute a: /bin/a is a symbolic link loop (or a chain of more than 40 links)"
        );
    }

    #[test]
    fn path_search_skips_what_runc_would_skip() {
        let root = TempRoot::new("skip");
        root.file("/one/app", &arm64_static(), 0o644)
            .file("/three/app", &arm64_static(), 0o700);
        std::fs::create_dir_all(root.0.join("two/app")).unwrap();
        let fifo = CString::new(root.0.join("zero/app").as_os_str().as_bytes()).unwrap();
        std::fs::create_dir_all(root.0.join("zero")).unwrap();
        // SAFETY: a valid C string path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o755) }, 0);
        let r = root
            .resolve("app", &["PATH=/nope:/zero:/one:/two:/three"])
            .unwrap();
        assert_eq!(r.path_in_root, PathBuf::from("/three/app"));
        let err = root
            .resolve("app", &["PATH=/nope:/zero:/one:/two"])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot execute app: /zero/app is not a regular file; /one/app is not executable \
             (mode 0644); /two/app is not a regular file"
        );
        let err = root.resolve("app", &["PATH=/nope:/gone"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "app is not in the container's PATH (/nope:/gone); check process.args and PATH"
        );
    }

    #[test]
    fn scripts_lead_to_their_interpreter() {
        let root = TempRoot::new("script");
        root.file("/bin/busybox", &arm64_static(), 0o755)
            .link("/bin/sh", "busybox")
            .file("/app/run.sh", b"#!/bin/sh -e\necho hi\n", 0o755)
            .file("/app/wrapped", b"#! /app/run.sh\n", 0o755);
        let r = root.resolve("/app/wrapped", &[]).unwrap();
        assert_eq!(r.path_in_root, PathBuf::from("/app/wrapped"));
        assert_eq!(r.elf_path, PathBuf::from("/bin/sh"));
        assert_eq!(r.elf.machine, elf::Machine::AARCH64);
        assert_eq!(r.scripts.len(), 2);
        assert_eq!(r.scripts[0].interpreter, PathBuf::from("/app/run.sh"));
        assert_eq!(r.scripts[1].arg.as_deref(), Some("-e"));
        assert_eq!(
            r.exec_argv(&env(&["/app/wrapped", "1"])),
            env(&["/bin/sh", "-e", "/app/run.sh", "/app/wrapped", "1"])
        );
    }

    #[test]
    fn script_problems_are_explained() {
        let root = TempRoot::new("badscript");
        root.file("/crlf", b"#!/bin/sh\r\n", 0o755)
            .file("/self", b"#!/self\n", 0o755)
            .file("/empty", b"#!\n", 0o755)
            .file("/text", b"hello\n", 0o755)
            .file(
                "/obj",
                &elf::tests::Craft {
                    e_type: 1,
                    extra_phdrs: 0,
                    ..elf::tests::Craft::default()
                }
                .bytes(),
                0o755,
            );
        let err = root.resolve("/crlf", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/crlf: its #! interpreter /bin/sh\r does not exist in the container (the script \
             has DOS line endings; convert it with dos2unix)"
        );
        let err = root.resolve("/self", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/self: #! interpreters nest more than 4 deep"
        );
        let err = root.resolve("/empty", &[]).unwrap_err();
        assert_eq!(err.to_string(), "/empty: #! line names no interpreter");
        let err = root.resolve("/text", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/text: neither an ELF binary nor a #! script, so the kernel cannot execute it"
        );
        let err = root.resolve("/obj", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/obj: an ELF Rel file is not an executable"
        );
    }

    #[test]
    fn dynamic_binaries_need_their_loader_in_the_root() {
        let root = TempRoot::new("loader");
        root.file("/bin/near", &arm64_dynamic(None), 0o755).file(
            "/bin/far",
            &arm64_dynamic(Some(6000)),
            0o755,
        );
        let err = root.resolve("/bin/near", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/bin/near: its dynamic loader /lib/ld-linux-aarch64.so.1 does not exist in the \
             container; the image lacks the libraries for this architecture"
        );
        root.file(
            "/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1",
            &arm64_dynamic(None),
            0o755,
        )
        .link(
            "/lib/ld-linux-aarch64.so.1",
            "/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1",
        );
        for bin in ["/bin/near", "/bin/far"] {
            let r = root.resolve(bin, &[]).unwrap();
            assert_eq!(
                r.loader,
                Some(PathBuf::from("/lib/ld-linux-aarch64.so.1")),
                "{bin}"
            );
        }
    }

    #[test]
    fn hostile_path_searches_give_short_errors() {
        let root = TempRoot::new("longpath");
        // 30,000 colons behind the longest args[0] the kernel takes: one lookup, which fails
        // because a file name is at most NAME_MAX bytes.
        let longest = "a".repeat(PATH_MAX - 1);
        let colons = format!("PATH={}", ":".repeat(30_000));
        let err = root.resolve(&longest, &[&colons]).unwrap_err();
        let Error::NotFound { misses, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(misses.len(), 1);
        let msg = err.to_string();
        assert!(msg.len() < 1024, "{} bytes", msg.len());
        assert!(
            msg.contains("cannot be opened (File name too long"),
            "{msg}"
        );
        // Two hundred long directories, each tried and each refused by the kernel.
        let dirs: Vec<String> = (0..200)
            .map(|i| format!("/{}{i}", "p".repeat(150)))
            .collect();
        for dir in &dirs {
            std::fs::create_dir(root.0.join(&dir[1..])).unwrap();
        }
        let path = format!("PATH={}", dirs.join(":"));
        let name = "n".repeat(300);
        let err = root.resolve(&name, &[&path]).unwrap_err();
        let Error::NotFound { misses, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(misses.len(), 200);
        let msg = err.to_string();
        assert!(msg.len() < 4096, "{} bytes", msg.len());
        assert!(msg.ends_with("; and 194 more"), "{msg}");
        // And two hundred where it does not exist.
        let err = root.resolve("app", &[&path]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.len() < 4096, "{} bytes", msg.len());
        assert!(msg.ends_with(" and 194 more); check process.args and PATH"));
    }

    #[test]
    fn a_leased_file_is_reported_at_once() {
        use std::time::Duration;
        let root = TempRoot::new("lease");
        root.file("/bin/app", &arm64_static(), 0o755)
            .file("/one/app", &arm64_static(), 0o755)
            .file("/two/app", &arm64_static(), 0o755)
            .file("/bin/interp", &arm64_static(), 0o755)
            .file("/run.sh", b"#!/bin/interp\n", 0o755);
        let _holder = LeaseHolder::new(&[
            root.0.join("bin/app"),
            root.0.join("one/app"),
            root.0.join("bin/interp"),
        ]);
        let limit = Duration::from_secs(2);
        let err = root.resolve_within(limit, "/bin/app", &[]).unwrap_err();
        assert!(
            matches!(
                err,
                Error::CannotOpen {
                    miss: MissKind::Leased,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "/bin/app is leased by another process (a write lease) in the container; retry \
             once the lease is released"
        );
        // runc would run /one/app once the lease is gone, never /two/app.
        let err = root
            .resolve_within(limit, "app", &["PATH=/one:/two"])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "/one/app is leased by another process (a write lease) in the container; retry \
             once the lease is released"
        );
        let err = root.resolve_within(limit, "/run.sh", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/run.sh: its #! interpreter /bin/interp is leased by another process (a write \
             lease) in the container; retry once the lease is released"
        );
    }

    #[test]
    fn the_loader_is_looked_up_by_its_exact_bytes() {
        let root = TempRoot::new("loader-bytes");
        let bin = elf::tests::Craft {
            machine: 183,
            e_type: 3,
            interp: Some(b"/lib/ld-\xff.so\0"),
            ..elf::tests::Craft::default()
        }
        .bytes();
        // What a lossy reading of the PT_INTERP would look for instead.
        root.file("/bin/app", &bin, 0o755)
            .file("/lib/ld-\u{fffd}.so", &arm64_static(), 0o755);
        let err = root.resolve("/bin/app", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/bin/app: its dynamic loader path (PT_INTERP) is not UTF-8 and cannot go into \
             crossarch's decision"
        );
    }

    #[test]
    fn a_loader_path_past_the_end_of_the_file_is_truncation() {
        let root = TempRoot::new("loader-eof");
        let mut bin = arm64_dynamic(Some(6000));
        bin.truncate(5000);
        root.file("/bin/app", &bin, 0o755);
        let err = root.resolve("/bin/app", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/bin/app: truncated ELF file: 6027 bytes needed, only 5000 available"
        );
    }

    #[test]
    fn long_script_lines_follow_the_kernel() {
        let root = TempRoot::new("longline");
        let mut cut = b"#!/".to_vec();
        cut.resize(300, b'a');
        cut.extend(b" -x\n");
        let mut long_arg = b"#!/bin/sh ".to_vec();
        long_arg.resize(300, b'x');
        long_arg.push(b'\n');
        root.file("/bin/sh", &arm64_static(), 0o755)
            .file("/cut", &cut, 0o755)
            .file("/long-arg", &long_arg, 0o755);
        let err = root.resolve("/cut", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/cut: #! line does not end its interpreter path within the first 256 bytes, the \
             most the kernel reads, so execve fails with ENOEXEC"
        );
        // The argument is what fits in the buffer, less the byte the kernel's NUL takes.
        let r = root.resolve("/long-arg", &[]).unwrap();
        assert_eq!(r.elf_path, PathBuf::from("/bin/sh"));
        assert_eq!(r.scripts[0].arg.as_deref(), Some(&"x".repeat(245)[..]));
    }

    /// How many times `path` is opened while `f` runs. inotify reports no O_PATH opens,
    /// which read nothing and reach no driver.
    fn opens_of<T>(path: &Path, f: impl FnOnce() -> T) -> (T, usize) {
        let c_path = CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: plain syscalls; the descriptor is owned right away.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        assert!(fd >= 0, "{}", io::Error::last_os_error());
        // SAFETY: inotify_init1 just returned it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: a valid descriptor and C string.
        let wd = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c_path.as_ptr(), libc::IN_OPEN) };
        assert!(wd >= 0, "{}", io::Error::last_os_error());
        let out = f();
        let mut buf = [0u8; 4096];
        // SAFETY: the buffer is valid for its length.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        let (mut events, mut at) = (0, 0);
        while n > 0 && at + 16 <= n as usize {
            let len = u32::from_ne_bytes(buf[at + 12..at + 16].try_into().unwrap());
            events += 1;
            at += 16 + len as usize;
        }
        (out, events)
    }

    #[test]
    fn special_files_are_never_opened() {
        use std::time::Duration;
        let root = TempRoot::new("special");
        let at = |p: &str| root.0.join(p.trim_start_matches('/'));
        let c = |p: &str| CString::new(at(p).as_os_str().as_bytes()).unwrap();
        root.file("/bin/sh", &arm64_static(), 0o755)
            .file("/fifo.sh", b"#!/fifo\n", 0o755)
            .file("/null.sh", b"#!/null\n", 0o755)
            .file("/bin/app", &arm64_dynamic(None), 0o755)
            .link("/lib/ld-linux-aarch64.so.1", "/fifo");
        // SAFETY: valid C string paths.
        unsafe {
            assert_eq!(libc::mkfifo(c("/fifo").as_ptr(), 0o755), 0);
            // A copy of /dev/null (1:3).
            let dev = libc::makedev(1, 3);
            assert_eq!(
                libc::mknod(c("/null").as_ptr(), libc::S_IFCHR | 0o755, dev),
                0
            );
        }
        let _socket = std::os::unix::net::UnixListener::bind(at("/sock")).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(at("/sock"), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let limit = Duration::from_secs(2);
        for (arg0, name) in [("/fifo", "fifo"), ("/null", "null"), ("/sock", "sock")] {
            let (err, opens) = opens_of(&at(arg0), || {
                root.resolve_within(limit, arg0, &[]).unwrap_err()
            });
            assert_eq!(
                err.to_string(),
                format!("cannot execute {name}: {arg0} is not a regular file"),
            );
            assert_eq!(opens, 0, "{arg0} was opened");
        }
        for (script, interp) in [("/fifo.sh", "/fifo"), ("/null.sh", "/null")] {
            let (err, opens) = opens_of(&at(interp), || {
                root.resolve_within(limit, script, &[]).unwrap_err()
            });
            assert_eq!(
                err.to_string(),
                format!(
                    "{script}: its #! interpreter {interp} is not a regular file in the container"
                )
            );
            assert_eq!(opens, 0, "{interp} was opened");
        }
        let (err, opens) = opens_of(&at("/fifo"), || {
            root.resolve_within(limit, "/bin/app", &[]).unwrap_err()
        });
        assert_eq!(
            err.to_string(),
            "/bin/app: its dynamic loader /lib/ld-linux-aarch64.so.1 is not a regular file in \
             the container"
        );
        assert_eq!(opens, 0);
        // The watch does see real opens.
        let (_, opens) = opens_of(&at("/null"), || File::open(at("/null")).unwrap());
        assert_eq!(opens, 1);
    }

    #[test]
    fn every_kind_of_symlink_loop_is_reported() {
        let root = TempRoot::new("loops");
        root.file("/bin/real", &arm64_static(), 0o755)
            .link("/bin/self", "self")
            .link("/d1", "/d2")
            .link("/d2", "d1")
            .link("/bin/spin", "/bin/spin")
            .file("/spin.sh", b"#!/bin/spin\n", 0o755)
            .file("/bin/dyn", &arm64_dynamic(None), 0o755)
            .link("/lib/ld-linux-aarch64.so.1", "ld-linux-aarch64.so.1");
        // The kernel follows 40 links (MAXSYMLINKS) and refuses the 41st: /chain/2 takes 40.
        for i in 1..41 {
            root.link(&format!("/chain/{i}"), &format!("{}", i + 1));
        }
        root.link("/chain/41", "/bin/real");
        let loop_ = "is a symbolic link loop (or a chain of more than 40 links)";
        assert!(root.resolve("/chain/2", &[]).is_ok());
        for (arg0, name, shown) in [
            ("/bin/self", "self", "/bin/self"),
            ("/d1/app", "app", "/d1/app"),
            ("/chain/1", "1", "/chain/1"),
        ] {
            let err = root.resolve(arg0, &[]).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("cannot execute {name}: {shown} {loop_}")
            );
        }
        let err = root.resolve("app", &["PATH=/d2:/bin"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cannot execute app: /d2/app {loop_}")
        );
        let err = root.resolve("/spin.sh", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("/spin.sh: its #! interpreter /bin/spin {loop_} in the container")
        );
        let err = root.resolve("/bin/dyn", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "/bin/dyn: its dynamic loader /lib/ld-linux-aarch64.so.1 {loop_} in the container"
            )
        );
    }

    #[test]
    fn nothing_leads_out_of_the_root() {
        // Each target exists on the host, and none in the root.
        let host = [
            "/usr/bin/true",
            "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        ];
        if !host.iter().all(|p| Path::new(p).exists()) {
            return;
        }
        let root = TempRoot::new("escape-more");
        let x86_dynamic = elf::tests::Craft {
            e_type: 3,
            interp: Some(b"/lib64/ld-linux-x86-64.so.2\0"),
            ..elf::tests::Craft::default()
        }
        .bytes();
        root.link("/bin/abs", "/usr/bin/true")
            .link("/up", "../../../../../../..")
            .file("/abs.sh", b"#!/usr/bin/true\n", 0o755)
            .file("/up.sh", b"#!/up/usr/bin/true\n", 0o755)
            .file("/rel.sh", b"#!../../../../../../usr/bin/true\n", 0o755)
            .file("/bin/x86", &x86_dynamic, 0o755)
            .link(
                "/lib64/ld-linux-x86-64.so.2",
                "../../../../../../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            );
        for arg0 in ["/bin/abs", "/up/usr/bin/true", "../../../../usr/bin/true"] {
            let err = root.resolve(arg0, &[]).unwrap_err();
            let in_root = in_cwd("/", arg0);
            assert_eq!(
                err.to_string(),
                format!("{} does not exist in the container", in_root.display()),
            );
        }
        let err = root
            .resolve("true", &["PATH=/up/usr/bin:/up/bin"])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "true is not in the container's PATH (/up/usr/bin:/up/bin); check process.args and PATH"
        );
        for (script, interp) in [
            ("/abs.sh", "/usr/bin/true"),
            ("/up.sh", "/up/usr/bin/true"),
            ("/rel.sh", "../../../../../../usr/bin/true"),
        ] {
            let err = root.resolve(script, &[]).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("{script}: its #! interpreter {interp} does not exist in the container")
            );
        }
        let err = root.resolve("/bin/x86", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/bin/x86: its dynamic loader /lib64/ld-linux-x86-64.so.2 does not exist in the \
             container; the image lacks the libraries for this architecture"
        );
    }

    fn max_rss_kib() -> i64 {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: a valid out-pointer; zeroed is a valid rusage.
        unsafe {
            libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
            usage.assume_init().ru_maxrss
        }
    }

    /// Bytes this thread has read through read(2)-like calls so far.
    fn thread_rchar() -> u64 {
        let io = std::fs::read_to_string("/proc/thread-self/io").unwrap();
        io.lines()
            .find_map(|l| l.strip_prefix("rchar: "))
            .unwrap()
            .parse()
            .unwrap()
    }

    #[test]
    fn a_sparse_2_gib_binary_is_read_only_where_its_headers_point() {
        use std::time::{Duration, Instant};
        const SIZE: u64 = 2 << 30;
        let root = TempRoot::new("sparse");
        root.file("/lib/ld-linux-aarch64.so.1", &arm64_static(), 0o755);
        // As many program headers as the kernel accepts, and the loader path, near the end.
        let phnum = (elf::MAX_PROGRAM_HEADERS_LEN / 56) as usize;
        let craft = elf::tests::Craft {
            machine: 183,
            e_type: 3,
            interp: Some(b"/lib/ld-linux-aarch64.so.1\0"),
            extra_phdrs: phnum as u16 - 1,
            ..elf::tests::Craft::default()
        }
        .bytes();
        let (table_at, interp_at) = (SIZE - (1 << 20), SIZE - 4096);
        let mut header = craft[..64].to_vec();
        header[32..40].copy_from_slice(&table_at.to_le_bytes());
        let mut table = craft[64..64 + phnum * 56].to_vec();
        // p_offset of the PT_INTERP entry, the first.
        table[8..16].copy_from_slice(&interp_at.to_le_bytes());
        let file = File::create(root.0.join("huge")).unwrap();
        file.set_len(SIZE).unwrap();
        file.write_all_at(&header, 0).unwrap();
        file.write_all_at(&table, table_at).unwrap();
        file.write_all_at(b"/lib/ld-linux-aarch64.so.1\0", interp_at)
            .unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }

        let (rss, read, start) = (max_rss_kib(), thread_rchar(), Instant::now());
        let r = root.resolve("/huge", &[]).unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
        let read = thread_rchar() - read;
        assert!(read < 128 << 10, "read {read} bytes");
        assert!(
            max_rss_kib() - rss < 64 << 10,
            "RSS grew by {} KiB",
            max_rss_kib() - rss
        );
        assert_eq!(r.loader, Some(PathBuf::from("/lib/ld-linux-aarch64.so.1")));

        // Program headers past the end of the file.
        header[32..40].copy_from_slice(&(SIZE + 10).to_le_bytes());
        file.write_all_at(&header, 0).unwrap();
        let err = root.resolve("/huge", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "/huge: truncated ELF file: {} bytes needed, only {SIZE} available",
                SIZE + 10 + table.len() as u64
            )
        );
    }

    #[test]
    fn non_utf8_names_are_followed_or_refused_clearly() {
        let root = TempRoot::new("utf8");
        let raw = |p: &[u8]| root.0.join(OsStr::from_bytes(p));
        std::fs::create_dir_all(raw(b"opt/\xff")).unwrap();
        std::fs::write(raw(b"opt/\xff/app"), arm64_static()).unwrap();
        root.file("/bin/busybox", &arm64_static(), 0o755)
            .file("/bad-interp", b"#!/bin/\xff\n", 0o755)
            .file("/bad-arg", b"#!/bin/sh \xfe\n", 0o755)
            .file("/run.sh", b"#!/bin/sh\n", 0o755);
        std::fs::rename(root.0.join("bin/busybox"), raw(b"bin/\xffbox")).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(raw(b"opt/\xff/app"), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        std::os::unix::fs::symlink(OsStr::from_bytes(b"/opt/\xff/app"), raw(b"bin/app")).unwrap();
        std::os::unix::fs::symlink(OsStr::from_bytes(b"\xffbox"), raw(b"bin/sh")).unwrap();
        // The kernel follows such links, and what ends up in the spec is the link's name.
        let r = root.resolve("app", &["PATH=/bin"]).unwrap();
        assert_eq!(r.path_in_root, PathBuf::from("/bin/app"));
        assert_eq!(r.elf.machine, elf::Machine::AARCH64);
        let r = root.resolve("/run.sh", &[]).unwrap();
        assert_eq!(r.elf_path, PathBuf::from("/bin/sh"));
        for script in ["/bad-interp", "/bad-arg"] {
            let err = root.resolve(script, &[]).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "{script}: its #! line names a path that is not UTF-8 and cannot go into an \
                     OCI spec"
                )
            );
        }
    }

    #[test]
    fn script_chains_stop_where_the_kernel_stops() {
        let root = TempRoot::new("chain");
        root.file("/bin/sh", &arm64_static(), 0o755)
            .file("/s4", b"#!/bin/sh\n", 0o755);
        for i in 0..4 {
            root.file(
                &format!("/s{i}"),
                format!("#!/s{}\n", i + 1).as_bytes(),
                0o755,
            );
        }
        let r = root.resolve("/s1", &[]).unwrap();
        assert_eq!(r.scripts.len(), MAX_SCRIPT_DEPTH);
        assert_eq!(r.elf_path, PathBuf::from("/bin/sh"));
        let err = root.resolve("/s0", &[]).unwrap_err();
        assert!(matches!(err, Error::TooDeep { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "/s0: #! interpreters nest more than 4 deep"
        );
    }

    #[test]
    fn a_missing_root_is_a_clear_error() {
        let err = Root::open("/nonexistent/crossarch/rootfs").unwrap_err();
        assert!(err
            .to_string()
            .starts_with("cannot open the container root /nonexistent/crossarch/rootfs:"));
    }
}
