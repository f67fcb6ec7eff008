//! The property checks of the `resolve` fuzz target, shared with the corpus replay test
//! (shim/tests/resolve_corpus.rs) so CI runs the very same checks on stable Rust.
//!
//! The input describes a small container root: directories, ELF binaries (some with a
//! PT_INTERP loader), `#!` scripts, symlinks (absolute, relative, `..`-laden, dangling,
//! looping, aimed at the host's files), FIFOs and other files; then an args[0], a `PATH` and a
//! cwd. The tree is built under a scratch directory on tmpfs, beside an `outside` directory
//! that holds ELF binaries of its own, and args[0] is resolved in the root with the route
//! crate's `search_plan` and the shim's `inspect::in_root`, as the shim does at Create.
//!
//! Properties, beyond not panicking and terminating:
//!
//! - What resolves is a file of the tree: every ELF the tree holds carries its entry's number
//!   in `e_flags` under a tag, and the inspected ELF must carry the tag and be the very file
//!   that a separate walk of the tree (RESOLVE_IN_ROOT's rules, in user space over lstat and
//!   readlink) finds at `elf_path`. A host binary, or one of `outside`'s, never carries it.
//! - `path_in_root` is the first candidate that walk finds to be an executable regular file,
//!   every `#!` hop is a script in the root, and a loader is a regular file in the root.
//! - When nothing is found, every candidate is reported with the reason the walk gives.
//! - Every error message is bounded (paths are shortened, misses are counted, not listed).
//! - The mount-aware lookup, which follows symlinks one at a time in user space, gives the
//!   very same result as `in_root` when the container has no mount (unless it stopped at
//!   its bound of lookups).

use crossarch_route::elf;
use crossarch_route::resolve::{self, Error, MissKind};
use crossarch_shim::inspect;
use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// The tree has at most this many entries.
const MAX_ENTRIES: usize = 12;
/// The tag in the upper half of `e_flags` of the tree's ELF binaries.
const TAG: u32 = 0xC0DE_0000;
/// `e_flags` of the binaries in `outside/`.
const OUTSIDE_FLAGS: u32 = 0x0BAD_0BAD;
/// Linux's MAXSYMLINKS.
const MAX_LINKS: usize = 40;
/// No message needs more: paths are cut to about 200 bytes and at most six are listed.
const MAX_MESSAGE: usize = 4096;

/// Reads the input a byte at a time; an exhausted input reads as zeros.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn below(&mut self, n: usize) -> usize {
        self.byte() as usize % n
    }
}

const NAMES: &[&str] = &[
    "bin", "sh", "usr", "lib", "ld.so", "env", "a", "b", "x", ".hidden", "sbin", "lib64",
];

/// A path component or path as images write them; `{out}` is the host path of `outside/`.
const PIECES: &[&str] = &[
    "/",
    ".",
    "..",
    "../..",
    "/..",
    "bin/sh",
    "/bin/sh",
    "/usr/bin/env",
    "../outside/sh",
    "../../outside/sh",
    "{out}/sh",
    "{out}",
    "/proc/self/root/bin/sh",
    "/proc/self/exe",
    "/lib/ld.so",
    "/lib64/ld-linux-x86-64.so.2",
    "sh\r",
    "",
    "//",
    "/bin/",
    "x/",
];

/// Builds a path from a few names and pieces.
fn path(b: &mut Bytes, out: &str) -> String {
    let mut s = String::new();
    if b.byte() & 1 == 1 {
        s.push('/');
    }
    let parts = 1 + b.below(4);
    for i in 0..parts {
        if i > 0 && !s.ends_with('/') {
            s.push('/');
        }
        let pick = b.byte();
        if pick & 0x80 != 0 {
            s.push_str(&PIECES[pick as usize % PIECES.len()].replace("{out}", out));
        } else {
            s.push_str(NAMES[pick as usize % NAMES.len()]);
        }
        // Now and then a long path, to exercise how messages shorten paths.
        if pick == 0x7f {
            for _ in 0..b.below(64) {
                s.push_str("/./a/..");
            }
        }
    }
    s
}

enum Kind {
    Dir,
    Elf {
        class64: bool,
        big: bool,
        machine: u16,
        e_type: u16,
        interp: Option<(String, bool)>,
    },
    Script(Vec<u8>),
    Symlink(String),
    Fifo,
    Other(Vec<u8>),
}

struct Entry {
    /// Index of the parent directory among the tree's directories; 0 is the root.
    parent: usize,
    name: String,
    kind: Kind,
    mode: u32,
}

const MACHINES: &[u16] = &[62, 183, 40, 22, 243, 8, 21, 3, 258, 0x1234];
const E_TYPES: &[u16] = &[2, 3, 1, 4];

fn decode(b: &mut Bytes, out: &str) -> Vec<Entry> {
    let n = b.below(MAX_ENTRIES + 1);
    let mut dirs = 1;
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        let parent = b.below(dirs);
        let pick = b.byte();
        let name = if pick == 0xff {
            "n".repeat(1 + b.below(255))
        } else {
            NAMES[pick as usize % NAMES.len()].to_string()
        };
        let mode = [0o755, 0o644, 0o100, 0o4755, 0o000][b.below(5)];
        let kind = match b.below(7) {
            0 => {
                dirs += 1;
                Kind::Dir
            }
            1 | 2 => {
                let flags = b.byte();
                let interp = match flags & 0x0c {
                    0 => None,
                    4 => Some((path(b, out), false)),
                    8 => Some((path(b, out), true)),
                    _ => Some(("/lib/ld.so".into(), false)),
                };
                Kind::Elf {
                    class64: flags & 1 == 0,
                    big: flags & 2 != 0,
                    machine: MACHINES[b.below(MACHINES.len())],
                    e_type: E_TYPES[b.below(E_TYPES.len())],
                    interp,
                }
            }
            3 => {
                let mut line = b"#!".to_vec();
                line.extend(std::iter::repeat_n(b' ', b.below(3)));
                line.extend(path(b, out).as_bytes());
                match b.below(4) {
                    0 => line.extend(b" -e"),
                    1 => line.extend(b"\r"),
                    2 => line.extend(b"\t-x y"),
                    _ => {}
                }
                if b.byte() & 1 == 0 {
                    line.push(b'\n');
                }
                Kind::Script(line)
            }
            4 => Kind::Symlink(path(b, out)),
            5 => Kind::Fifo,
            _ => {
                let len = b.below(8);
                Kind::Other((0..len).map(|_| b.byte()).collect())
            }
        };
        entries.push(Entry {
            parent,
            name,
            kind,
            mode,
        });
    }
    entries
}

/// An ELF header with one PT_LOAD and, if asked, a PT_INTERP (placed past the first 4 KiB
/// when `far`, where the resolver has to read it separately).
fn elf_bytes(
    class64: bool,
    big: bool,
    machine: u16,
    e_type: u16,
    flags: u32,
    interp: Option<(&str, bool)>,
) -> Vec<u8> {
    let (ehsize, phentsize) = if class64 { (64, 56) } else { (52, 32) };
    let phnum = if interp.is_some() { 2 } else { 1 };
    let strings_at = ehsize + phentsize * phnum;
    let mut out = vec![0u8; strings_at];
    let put = |out: &mut Vec<u8>, at: usize, v: u64, len: usize| {
        let bytes = v.to_le_bytes();
        for i in 0..len {
            out[at + i] = if big { bytes[len - 1 - i] } else { bytes[i] };
        }
    };
    out[..4].copy_from_slice(b"\x7fELF");
    out[4] = if class64 { 2 } else { 1 };
    out[5] = if big { 2 } else { 1 };
    out[6] = 1;
    put(&mut out, 16, e_type.into(), 2);
    put(&mut out, 18, machine.into(), 2);
    put(&mut out, 20, 1, 4);
    let interp_at = match interp {
        Some((_, true)) => 4096 + 64,
        _ => strings_at,
    };
    let interp_len = interp.map_or(0, |(p, _)| p.len() as u64 + 1);
    if class64 {
        put(&mut out, 32, ehsize as u64, 8);
        put(&mut out, 48, flags.into(), 4);
        put(&mut out, 52, ehsize as u64, 2);
        put(&mut out, 54, phentsize as u64, 2);
        put(&mut out, 56, phnum as u64, 2);
    } else {
        put(&mut out, 28, ehsize as u64, 4);
        put(&mut out, 36, flags.into(), 4);
        put(&mut out, 40, ehsize as u64, 2);
        put(&mut out, 42, phentsize as u64, 2);
        put(&mut out, 44, phnum as u64, 2);
    }
    let mut ph = ehsize;
    if interp.is_some() {
        put(&mut out, ph, 3, 4);
        if class64 {
            put(&mut out, ph + 8, interp_at as u64, 8);
            put(&mut out, ph + 32, interp_len, 8);
        } else {
            put(&mut out, ph + 4, interp_at as u64, 4);
            put(&mut out, ph + 16, interp_len, 4);
        }
        ph += phentsize;
    }
    put(&mut out, ph, 1, 4);
    if let Some((p, _)) = interp {
        out.resize(interp_at, 0);
        out.extend(p.as_bytes());
        out.push(0);
    }
    out
}

/// The scratch directory of this process: `root/`, rebuilt for every input, and `outside/`.
pub struct Scratch {
    base: PathBuf,
    root: PathBuf,
    out: String,
}

impl Scratch {
    pub fn new() -> Scratch {
        let tmp = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let base = tmp.join(format!("crossarch-fuzz-resolve-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let outside = base.join("outside");
        fs::create_dir_all(&outside).unwrap();
        for name in ["sh", "ld.so"] {
            let p = outside.join(name);
            fs::write(&p, elf_bytes(true, false, 62, 2, OUTSIDE_FLAGS, None)).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        Scratch {
            root: base.join("root"),
            out: outside.to_str().unwrap().to_owned(),
            base,
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.base);
    }
}

/// Builds the tree; returns the host path of each entry (None if it could not be made).
fn build(root: &Path, entries: &[Entry]) -> Vec<Option<PathBuf>> {
    let _ = fs::remove_dir_all(root);
    fs::create_dir(root).unwrap();
    let mut dirs = vec![root.to_path_buf()];
    let mut made = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let parent = &dirs[e.parent.min(dirs.len() - 1)];
        let p = parent.join(&e.name);
        let ok = match &e.kind {
            Kind::Dir => {
                let ok = fs::create_dir(&p).is_ok();
                dirs.push(if ok { p.clone() } else { parent.clone() });
                ok
            }
            Kind::Elf {
                class64,
                big,
                machine,
                e_type,
                interp,
            } => {
                let interp = interp.as_ref().map(|(s, far)| (s.as_str(), *far));
                let bytes = elf_bytes(*class64, *big, *machine, *e_type, TAG | i as u32, interp);
                create(&p, &bytes)
            }
            Kind::Script(line) => create(&p, line),
            Kind::Other(bytes) => create(&p, bytes),
            Kind::Symlink(target) => !target.is_empty() && symlink(target, &p).is_ok(),
            Kind::Fifo => {
                let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
                // SAFETY: `c` is a valid NUL-terminated path.
                unsafe { libc::mkfifo(c.as_ptr(), 0o644) == 0 }
            }
        };
        let is_file = matches!(e.kind, Kind::Elf { .. } | Kind::Script(_) | Kind::Other(_));
        if ok && is_file {
            fs::set_permissions(&p, fs::Permissions::from_mode(e.mode)).unwrap();
        }
        made.push(ok.then_some(p));
    }
    made
}

/// Creates a new file. O_EXCL never follows a symlink: a link in the tree to a host file
/// must not make the fuzzer write there.
fn create(p: &Path, bytes: &[u8]) -> bool {
    use std::io::Write;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(p)
        .and_then(|mut f| f.write_all(bytes))
        .is_ok()
}

/// What a walk of the tree finds at a path in the container.
#[derive(Debug)]
enum Found {
    Missing,
    Loop,
    /// PATH_MAX bytes or more: the kernel refuses the path before looking at it.
    TooLong,
    /// The host path of what the path names (symlinks followed), and its metadata.
    At(PathBuf, fs::Metadata),
}

/// Resolves `path` in `root` as openat2(RESOLVE_IN_ROOT) does, in user space: `..` never
/// climbs above the root, an absolute symlink restarts at the root, a trailing slash needs
/// a directory, and more than 40 symlinks fail.
fn walk(root: &Path, path: &Path) -> Found {
    if path.as_os_str().len() >= resolve::PATH_MAX {
        return Found::TooLong;
    }
    let mut todo: Vec<Vec<u8>> = Vec::new();
    push_front(&mut todo, path.as_os_str().as_bytes());
    let mut at: Vec<Vec<u8>> = Vec::new();
    let mut links = 0;
    while let Some(part) = todo.pop() {
        match &part[..] {
            b"" | b"." => {
                // "." still needs the current position to be a directory, which it is.
                continue;
            }
            b".." => {
                at.pop();
                continue;
            }
            _ => {}
        }
        let mut host = root.to_path_buf();
        host.extend(at.iter().map(|c| OsStr::from_bytes(c)));
        host.push(OsStr::from_bytes(&part));
        let Ok(meta) = fs::symlink_metadata(&host) else {
            return Found::Missing;
        };
        if meta.file_type().is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return Found::Loop;
            }
            let target = fs::read_link(&host).unwrap();
            let target = target.as_os_str().as_bytes();
            if target.starts_with(b"/") {
                at.clear();
            }
            push_front(&mut todo, target);
            continue;
        }
        if meta.is_dir() {
            at.push(part);
            continue;
        }
        if !todo.is_empty() {
            // A file in the middle of a path (or before "/." or "/.."): ENOTDIR.
            return Found::Missing;
        }
        return Found::At(host, meta);
    }
    let mut host = root.to_path_buf();
    host.extend(at.iter().map(|c| OsStr::from_bytes(c)));
    let meta = fs::metadata(&host).unwrap();
    Found::At(host, meta)
}

/// Puts the components of `path` in front of what is still to walk (`todo` is a stack).
fn push_front(todo: &mut Vec<Vec<u8>>, path: &[u8]) {
    let mut parts: Vec<&[u8]> = path.split(|&c| c == b'/').collect();
    if path.len() > 1 && path.ends_with(b"/") {
        // "x/" is "x/.": it must be a directory.
        parts.push(b".");
    }
    for p in parts.into_iter().rev() {
        todo.push(p.to_vec());
    }
}

/// The reason LookPath's checks give for a path, or None for an executable regular file.
fn miss(found: &Found) -> Option<MissKind> {
    match found {
        Found::Missing => Some(MissKind::NotFound),
        Found::Loop => Some(MissKind::SymlinkLoop),
        Found::TooLong => Some(MissKind::Os(libc::ENAMETOOLONG)),
        Found::At(_, m) if !m.is_file() => Some(MissKind::NotRegularFile),
        Found::At(_, m) if m.mode() & 0o111 == 0 => {
            Some(MissKind::NotExecutable { mode: m.mode() })
        }
        Found::At(..) => None,
    }
}

fn head(p: &Path, n: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    fs::File::open(p)
        .unwrap()
        .take(n as u64)
        .read_to_end(&mut buf)
        .unwrap();
    buf
}

fn inside(root: &Path, found: &Found) -> PathBuf {
    let Found::At(host, _) = found else {
        panic!("not in the root: {found:?}");
    };
    assert!(
        host.starts_with(root),
        "{} is outside {}",
        host.display(),
        root.display()
    );
    assert!(
        !host.components().any(|c| c == Component::ParentDir),
        "{}",
        host.display()
    );
    host.clone()
}

/// Runs one input: builds its tree in `scratch` and checks what the resolver makes of it.
/// Returns what it resolved to (`found PATH` with the hops and loader) or the error message.
pub fn check(scratch: &Scratch, data: &[u8]) -> String {
    let mut b = Bytes(data);
    let entries = decode(&mut b, &scratch.out);
    let arg0 = path(&mut b, &scratch.out);
    let arg0 = if b.byte() & 1 == 0 {
        // Mostly a bare name, looked up in PATH.
        arg0.rsplit('/').next().unwrap_or_default().to_owned()
    } else {
        arg0
    };
    let mut env = vec!["HOME=/root".to_owned()];
    match b.below(4) {
        0 => {}
        1 => env.push("PATH=".into()),
        _ => {
            let dirs: Vec<String> = (0..1 + b.below(4))
                .map(|_| path(&mut b, &scratch.out))
                .collect();
            env.push(format!("PATH={}", dirs.join(":")));
        }
    }
    let cwd = if b.byte() & 1 == 0 {
        "/".to_owned()
    } else {
        format!("/{}", path(&mut b, &scratch.out))
    };

    let plan = match resolve::search_plan(&arg0, &env, &cwd) {
        Ok(plan) => plan,
        Err(e) => {
            assert!(e.to_string().len() <= MAX_MESSAGE, "{e}");
            return e.to_string();
        }
    };
    assert!(!plan.is_empty() || env.iter().any(|v| v == "PATH="));
    for c in &plan {
        assert!(c.is_absolute(), "{}", c.display());
    }
    let made = build(&scratch.root, &entries);
    let root = &scratch.root;
    let opened = inspect::Root::open(root).unwrap();
    let result = inspect::in_root(&opened, &plan, &cwd);
    // The lookup that walks one component at a time (to cross mounts) finds the same as the
    // kernel's RESOLVE_IN_ROOT when there is no mount.
    // Past its bound of lookups it stops, where the kernel goes on.
    let walked = inspect::in_root_with_mounts(&opened, &[], &plan, &cwd);
    let bounded = matches!(&walked, Err(Error::NotFound { misses, .. })
        if misses.iter().any(|m| m.kind == MissKind::TooManySteps));
    if !bounded {
        assert_eq!(
            format!("{walked:?}"),
            format!("{result:?}"),
            "{arg0:?} in {entries:?}"
        );
    }
    let outcome = match &result {
        Ok(r) => format!(
            "found {} via {} scripts, loader {:?}",
            r.elf_path.display(),
            r.scripts.len(),
            r.loader
        ),
        Err(e) => e.to_string(),
    };
    match &result {
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.len() <= MAX_MESSAGE, "{} bytes: {msg}", msg.len());
            assert!(
                !matches!(e, Error::NoOpenat2(_) | Error::Root { .. }),
                "{e}"
            );
        }
        Ok(r) => {
            let _ = r.exec_argv(&[arg0.clone(), "x".into()]);
        }
    }
    match result {
        Err(Error::NotFound { misses, .. }) => {
            assert_eq!(misses.len(), plan.len());
            for (m, c) in misses.iter().zip(&plan) {
                assert_eq!(&m.path, c);
                let want = miss(&walk(root, c));
                assert_eq!(Some(m.kind), want, "{} in {entries:?}", c.display());
            }
        }
        Err(_) => {}
        Ok(r) => {
            let first = plan
                .iter()
                .position(|c| miss(&walk(root, c)).is_none())
                .expect("in_root found what no walk finds");
            assert_eq!(r.path_in_root, plan[first]);
            let mut current = r.path_in_root.clone();
            for hop in &r.scripts {
                assert_eq!(hop.path, current);
                let script = inside(root, &walk(root, &hop.path));
                assert!(head(&script, 2) == b"#!");
                assert_eq!(miss(&walk(root, &hop.interpreter)), None);
                current = hop.interpreter.clone();
            }
            assert!(r.scripts.len() <= resolve::MAX_SCRIPT_DEPTH);
            assert_eq!(r.elf_path, current);
            let found = walk(root, &r.elf_path);
            assert_eq!(miss(&found), None);
            let host = inside(root, &found);
            // The ELF inspected is the tree's own, and the one the walk finds.
            assert_eq!(
                r.elf.flags & 0xffff_0000,
                TAG,
                "inspected a file from outside the root"
            );
            let entry = (r.elf.flags & 0xffff) as usize;
            let made_at = made[entry].as_ref().unwrap();
            assert_eq!(
                fs::metadata(made_at).unwrap().ino(),
                fs::metadata(&host).unwrap().ino(),
                "{} is not the file {} resolves to",
                made_at.display(),
                r.elf_path.display()
            );
            let parsed = elf::parse(&head(&host, elf::PREFIX_LEN)).unwrap();
            assert_eq!(parsed, r.elf);
            assert!(r.elf.e_type.is_executable());
            if let Some(loader) = &r.loader {
                let found = walk(root, loader);
                inside(root, &found);
                assert!(
                    matches!(&found, Found::At(_, m) if m.is_file()),
                    "{found:?}"
                );
                assert!(r.elf.interp.is_some());
            } else {
                assert!(r.elf.interp.is_none());
            }
        }
    }
    outcome
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Dir => "dir".to_string(),
            Kind::Elf { interp, .. } => format!("elf interp={interp:?}"),
            Kind::Script(l) => format!("script {:?}", String::from_utf8_lossy(l)),
            Kind::Symlink(t) => format!("-> {t:?}"),
            Kind::Fifo => "fifo".into(),
            Kind::Other(b) => format!("other {b:?}"),
        };
        write!(
            f,
            "[parent {} {:?} {:o} {kind}]",
            self.parent, self.name, self.mode
        )
    }
}
