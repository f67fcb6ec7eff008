//! Finds the file a container process will execute, inside the container's root.
//!
//! [`search_plan`] is pure: it lists the paths runc will try for args\[0\], the way runc
//! does it (Go's `exec.LookPath` after `chdir(cwd)`, with the container's own `PATH`).
//! [`walk`] tries them in order, follows `#!` lines and checks the ELF loader exists, through
//! a [`Lookup`] of the container's root. The shim's lookup opens each path with
//! `openat2(RESOLVE_IN_ROOT)`, so that an absolute symlink or a `..` in the image resolves
//! against the container's root and never reaches the host's files.

use crate::{elf, shebang};
use serde::Serialize;
use std::collections::HashSet;
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
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
    /// Following it across the container's mounts took more lookups than
    /// [`crate::mounts::MAX_STEPS`] allows one inspection.
    TooManySteps,
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
            MissKind::TooManySteps => write!(
                f,
                "takes more than {} lookups to follow through the container's mounts, where \
                 crossarch stops",
                crate::mounts::MAX_STEPS
            ),
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

/// What [`walk`] needs from a container's root; paths are absolute in the container. The
/// shim implements it with `openat2(RESOLVE_IN_ROOT)`, so that nothing here does I/O and
/// tests can walk a root held in memory.
pub trait Lookup {
    /// A file [`Lookup::executable`] found, not opened for reading yet.
    type Found;
    /// A file opened for reading.
    type File;
    /// `path` if it is an executable regular file: the checks runc's LookPath makes. The
    /// outer error is fatal (the root cannot be searched at all); the inner one is a reason
    /// to try the next candidate.
    fn executable(&mut self, path: &Path) -> Result<Result<Self::Found, MissKind>, Error>;
    /// Opens what [`Lookup::executable`] found for reading: the very file it checked.
    fn open(&mut self, found: Self::Found) -> Result<Self::File, MissKind>;
    /// Whether `path` is a regular file. The ELF loader only has to exist.
    fn regular_file(&mut self, path: &Path) -> Result<Result<(), MissKind>, Error>;
    /// pread(2): reads at `offset`, fewer bytes than asked only at the end of the file.
    fn read_at(&mut self, file: &Self::File, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// The file's size, for the message about a truncated file.
    fn len(&mut self, file: &Self::File) -> u64;
}

/// Resolves args\[0\] in a container's root: the first of `candidates` (from
/// [`search_plan`]) that is an executable regular file, then its `#!` interpreters, then its
/// ELF loader.
pub fn walk<L: Lookup>(root: &mut L, candidates: &[PathBuf], cwd: &str) -> Result<Resolved, Error> {
    let mut misses = Vec::new();
    let mut found = None;
    for candidate in candidates {
        match root.executable(candidate)? {
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
    let mut file = root.open(fd).map_err(|miss| Error::CannotOpen {
        path: path_in_root.clone(),
        miss,
    })?;

    let mut scripts = Vec::new();
    let mut current = path_in_root.clone();
    let mut prefix = [0u8; elf::PREFIX_LEN];
    loop {
        let n = read_full(root, &file, &mut prefix, 0).map_err(|source| Error::Read {
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
            let opened = root.executable(&interpreter)?.and_then(|fd| root.open(fd));
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
        let elf = parse_elf(root, &file, prefix).map_err(|e| match e {
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
        let loader = match loader_path(root, &file, &elf, prefix) {
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
                match root.regular_file(&loader)? {
                    Ok(()) => Some(loader),
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

fn parse_elf<L: Lookup>(root: &mut L, file: &L::File, prefix: &[u8]) -> Result<elf::Elf, ElfRead> {
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
    let buf = read_segment(root, file, table)?;
    header.finish(&buf).map_err(ElfRead::Elf)
}

/// The bytes of `seg`, whose length the parser capped. A file that ends first is truncated,
/// as the kernel finds it too (its elf_read() fails with EIO).
fn read_segment<L: Lookup>(
    root: &mut L,
    file: &L::File,
    seg: elf::Segment,
) -> Result<Vec<u8>, ElfRead> {
    let mut buf = vec![0u8; seg.len as usize];
    let n = read_full(root, file, &mut buf, seg.offset).map_err(ElfRead::Io)?;
    if n < buf.len() {
        return Err(ElfRead::Elf(elf::Error::Truncated {
            need: seg.offset.saturating_add(seg.len),
            have: root.len(file),
        }));
    }
    Ok(buf)
}

fn loader_path<L: Lookup>(
    root: &mut L,
    file: &L::File,
    elf: &elf::Elf,
    prefix: &[u8],
) -> Result<Option<Vec<u8>>, ElfRead> {
    match elf.interp(prefix).map_err(ElfRead::Elf)? {
        elf::Interp::None => Ok(None),
        elf::Interp::Path(p) => Ok(Some(p.to_vec())),
        elf::Interp::At(seg) => {
            let buf = read_segment(root, file, seg)?;
            let path = elf::interp_path(&buf).map_err(ElfRead::Elf)?;
            Ok(Some(path.to_vec()))
        }
    }
}

/// Fills `buf` from `offset` on, or up to the end of the file: the number of bytes read.
fn read_full<L: Lookup>(
    root: &mut L,
    file: &L::File,
    buf: &mut [u8],
    offset: u64,
) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match root.read_at(file, &mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let elf = elf::parse(&crate::craft::Craft::default().bytes()).unwrap();
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
}

/// The walk over a root held in memory: what it decides, apart from how a kernel opens files.
#[cfg(test)]
mod walk_tests {
    use super::*;
    use crate::craft::Craft;
    use std::collections::HashMap;

    /// Files by absolute path, with their mode bits; no symlinks (the shim's lookup and its
    /// tests cover how paths resolve).
    #[derive(Default)]
    struct Mem(HashMap<PathBuf, (u32, Vec<u8>)>);

    impl Mem {
        fn file(mut self, path: &str, mode: u32, bytes: &[u8]) -> Mem {
            self.0.insert(path.into(), (mode, bytes.to_vec()));
            self
        }

        fn resolve(&self, arg0: &str) -> Result<Resolved, Error> {
            let plan = search_plan(arg0, &[], "/").unwrap();
            walk(&mut &*self, &plan, "/")
        }
    }

    impl Lookup for &Mem {
        type Found = PathBuf;
        type File = Vec<u8>;

        fn executable(&mut self, path: &Path) -> Result<Result<PathBuf, MissKind>, Error> {
            Ok(match self.0.get(path) {
                None => Err(MissKind::NotFound),
                Some((mode, _)) if mode & 0o111 == 0 => Err(MissKind::NotExecutable {
                    mode: 0o100000 | mode,
                }),
                Some(_) => Ok(path.to_owned()),
            })
        }

        fn open(&mut self, found: PathBuf) -> Result<Vec<u8>, MissKind> {
            Ok(self.0[&found].1.clone())
        }

        fn regular_file(&mut self, path: &Path) -> Result<Result<(), MissKind>, Error> {
            Ok(self.0.get(path).map(|_| ()).ok_or(MissKind::NotFound))
        }

        fn read_at(&mut self, file: &Vec<u8>, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            let rest = file.get(offset as usize..).unwrap_or_default();
            // One byte at a time: the walk must loop over short reads.
            let n = rest.len().min(buf.len()).min(1);
            buf[..n].copy_from_slice(&rest[..n]);
            Ok(n)
        }

        fn len(&mut self, file: &Vec<u8>) -> u64 {
            file.len() as u64
        }
    }

    fn arm64(interp: Option<&'static [u8]>) -> Vec<u8> {
        Craft {
            machine: 183,
            e_type: if interp.is_some() { 3 } else { 2 },
            interp,
            ..Craft::default()
        }
        .bytes()
    }

    #[test]
    fn the_first_executable_candidate_is_inspected() {
        let mem = Mem::default()
            .file("/usr/bin/app", 0o644, &arm64(None))
            .file("/bin/app", 0o755, &arm64(None));
        let r = mem.resolve("app").unwrap();
        assert_eq!(r.path_in_root, Path::new("/bin/app"));
        assert_eq!(r.elf.machine, elf::Machine::AARCH64);
        assert!(r.scripts.is_empty() && r.loader.is_none());
    }

    #[test]
    fn scripts_lead_to_the_elf_and_its_loader() {
        let mem = Mem::default()
            .file("/app/run", 0o755, b"#!/bin/sh -e\necho\n")
            .file("/bin/sh", 0o755, &arm64(Some(b"/lib/ld.so\0")))
            .file("/lib/ld.so", 0o755, &arm64(None));
        let r = mem.resolve("/app/run").unwrap();
        assert_eq!(r.elf_path, Path::new("/bin/sh"));
        assert_eq!(r.scripts[0].arg.as_deref(), Some("-e"));
        assert_eq!(r.loader.as_deref(), Some(Path::new("/lib/ld.so")));
        assert_eq!(
            r.exec_argv(&["/app/run".into(), "x".into()]),
            ["/bin/sh", "-e", "/app/run", "x"]
        );
    }

    #[test]
    fn what_is_missing_is_named() {
        let mem = Mem::default()
            .file("/bin/sh", 0o755, &arm64(Some(b"/lib/ld.so\0")))
            .file("/run.sh", 0o755, b"#!/bin/bash\n")
            .file("/txt", 0o755, b"hello");
        let e = mem.resolve("/bin/sh").unwrap_err().to_string();
        assert!(e.contains("/lib/ld.so does not exist"), "{e}");
        let e = mem.resolve("/run.sh").unwrap_err().to_string();
        assert!(e.contains("/bin/bash does not exist"), "{e}");
        let e = mem.resolve("/txt").unwrap_err().to_string();
        assert!(e.contains("neither an ELF binary nor a #! script"), "{e}");
    }

    #[test]
    fn a_program_header_table_past_the_end_is_truncation() {
        let mut bin = arm64(None);
        // e_phoff of a 64-bit header, aimed past the prefix and the end of the file.
        bin[32..40].copy_from_slice(&(elf::PREFIX_LEN as u64 + 64).to_le_bytes());
        let mem = Mem::default().file("/bin/app", 0o755, &bin);
        let e = mem.resolve("/bin/app").unwrap_err();
        assert!(
            matches!(
                e,
                Error::Elf {
                    source: elf::Error::Truncated { .. },
                    ..
                }
            ),
            "{e}"
        );
    }
}
