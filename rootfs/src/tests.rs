//! The lookup in real roots: symlinks, special files, leases, loaders and hostile trees.

use super::*;
use crossarch_route::{
    craft::Craft,
    elf,
    resolve::{search_plan, Resolved, MAX_SCRIPT_DEPTH, PATH_MAX},
};
use std::ffi::{CString, OsStr};
use std::os::fd::FromRawFd;

fn env(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A throwaway container root under the temp dir, removed on drop.
struct TempRoot(PathBuf);

impl TempRoot {
    fn new(name: &str) -> TempRoot {
        let dir =
            std::env::temp_dir().join(format!("crossarch-inspect-{}-{name}", std::process::id()));
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
    Craft {
        machine: 183,
        ..Craft::default()
    }
    .bytes()
}

fn arm64_dynamic(interp_at: Option<u64>) -> Vec<u8> {
    Craft {
        machine: 183,
        e_type: 3,
        interp: Some(b"/lib/ld-linux-aarch64.so.1\0"),
        interp_at,
        ..Craft::default()
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
            &Craft {
                e_type: 1,
                extra_phdrs: 0,
                ..Craft::default()
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
    let bin = Craft {
        machine: 183,
        e_type: 3,
        interp: Some(b"/lib/ld-\xff.so\0"),
        ..Craft::default()
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
            format!("{script}: its #! interpreter {interp} is not a regular file in the container")
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
        format!("/bin/dyn: its dynamic loader /lib/ld-linux-aarch64.so.1 {loop_} in the container")
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
    let x86_dynamic = Craft {
        e_type: 3,
        interp: Some(b"/lib64/ld-linux-x86-64.so.2\0"),
        ..Craft::default()
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
        let in_root = search_plan(arg0, &[], "/").unwrap().remove(0);
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
    let craft = Craft {
        machine: 183,
        e_type: 3,
        interp: Some(b"/lib/ld-linux-aarch64.so.1\0"),
        extra_phdrs: phnum as u16 - 1,
        ..Craft::default()
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

fn mount(destination: &str, bind_source: Option<&Path>) -> Mount {
    Mount {
        destination: PathBuf::from(destination),
        bind_source: bind_source.map(Path::to_owned),
    }
}

/// What `arg0` resolves to from `/` once `mounts` are in place.
fn across_mounts(root: &Root, mounts: &[Mount], arg0: &str) -> Result<Resolved, Error> {
    let candidates = search_plan(arg0, &[], "/").unwrap();
    in_root_with_mounts(root, mounts, &candidates, "/")
}

#[test]
fn a_binary_or_script_on_a_bind_mount_is_read_in_its_source() {
    let root = TempRoot::new("mounts-root");
    root.file("/bin/busybox", &arm64_static(), 0o755)
        .link("/bin/sh", "busybox");
    let volume = TempRoot::new("mounts-volume");
    volume
        .file("/run.sh", b"#!/bin/sh\necho hi\n", 0o755)
        .file("/bin/tool", &arm64_static(), 0o755)
        .link("/busybox", "/bin/busybox")
        .link("/up", "../../../../../bin/busybox");
    let file = TempRoot::new("mounts-file");
    file.file("/entry", b"#!/opt/tools/bin/tool\n", 0o755);
    let mounts = [
        mount("/opt/tools", Some(&volume.0)),
        mount("/entry.sh", Some(&file.0.join("entry"))),
        mount("/tmp", None),
    ];
    let open = Root::open(&root.0).unwrap();
    let resolve = |arg0: &str| across_mounts(&open, &mounts, arg0);
    // The script from the volume, its interpreter from the image.
    let r = resolve("/opt/tools/run.sh").unwrap();
    assert_eq!(r.elf_path, PathBuf::from("/bin/sh"));
    assert_eq!(r.elf.machine, elf::Machine::AARCH64);
    // A bound file whose interpreter is on another mount.
    let r = resolve("/entry.sh").unwrap();
    assert_eq!(r.elf_path, PathBuf::from("/opt/tools/bin/tool"));
    assert_eq!(r.elf.machine, elf::Machine::AARCH64);
    // A symlink in the volume goes on in the container, as it will when the volume is
    // mounted: the image's arm64 busybox, never the host's.
    for link in ["/opt/tools/busybox", "/opt/tools/up"] {
        let r = resolve(link).unwrap();
        assert_eq!(r.elf.machine, elf::Machine::AARCH64, "{link}");
    }
    // One in the image that points into the volume goes on in the volume's source.
    root.link("/usr/bin/tool", "/opt/tools/bin/tool")
        .link("/usr/bin/script", "../../opt/tools/run.sh");
    assert_eq!(
        resolve("/usr/bin/tool").unwrap().elf.machine,
        elf::Machine::AARCH64
    );
    assert_eq!(
        resolve("/usr/bin/script").unwrap().elf_path,
        PathBuf::from("/bin/sh")
    );
    // Under a mount nothing can read yet, and in the image, as before.
    assert!(matches!(resolve("/tmp/x"), Err(Error::NotFound { .. })));
    assert_eq!(
        resolve("/bin/sh").unwrap().elf_path,
        PathBuf::from("/bin/sh")
    );
    // Without the mounts the volume's files are not there.
    let candidates = search_plan("/opt/tools/run.sh", &[], "/").unwrap();
    assert!(in_root(&open, &candidates, "/").is_err());
}

/// Mount destinations are where runc puts them: through the image's links (merged-usr's
/// `/bin -> usr/bin`) and the earlier mounts; a bind's source is the host path the mount
/// resolves, links and all; `..` leaves a mount nothing can read yet.
#[test]
fn mounts_land_where_runc_puts_them() {
    let root = TempRoot::new("mounts-usrmerge");
    root.file("/usr/bin/busybox", &arm64_static(), 0o755)
        .link("/bin", "usr/bin")
        .link("/var/run", "/run");
    let tool = TempRoot::new("mounts-tool");
    tool.file("/tool", &arm64_static(), 0o755);
    let host = TempRoot::new("mounts-host");
    host.file("/releases/v3/bin/app", &arm64_static(), 0o755);
    std::os::unix::fs::symlink(host.0.join("releases/v3"), host.0.join("current")).unwrap();
    let mounts = [
        mount("/bin/tool", Some(&tool.0.join("tool"))),
        mount("/var/run/app", Some(&host.0.join("current"))),
        mount("/tmp", None),
    ];
    let open = Root::open(&root.0).unwrap();
    let resolve = |arg0: &str| across_mounts(&open, &mounts, arg0);
    for arg0 in [
        "/bin/tool",
        "/usr/bin/tool",
        "/run/app/bin/app",
        "/var/run/app/bin/app",
        "/tmp/../bin/busybox",
    ] {
        let r = resolve(arg0).unwrap_or_else(|e| panic!("{arg0}: {e}"));
        assert_eq!(r.elf.machine, elf::Machine::AARCH64, "{arg0}");
    }
    assert!(matches!(resolve("/tmp/x"), Err(Error::NotFound { .. })));
}

/// However the image's links are made, one inspection looks up at most MAX_STEPS components
/// across mounts, and says so.
#[test]
fn a_walk_across_mounts_is_bounded() {
    let root = TempRoot::new("mounts-bounded");
    root.file("/a/keep", b"", 0o644);
    let detour = "a/../".repeat(60);
    for i in 0..40 {
        root.link(&format!("/l{i}"), &format!("/{detour}l{}", i + 1));
    }
    root.file("/l40", &arm64_static(), 0o755);
    let volume = TempRoot::new("mounts-bounded-volume");
    let mounts = [mount("/v", Some(&volume.0))];
    let open = Root::open(&root.0).unwrap();
    let candidates = search_plan("/l0", &[], "/").unwrap();
    match in_root_with_mounts(&open, &mounts, &candidates, "/") {
        Err(Error::NotFound { misses, .. }) => {
            assert_eq!(misses[0].kind, MissKind::TooManySteps);
            assert!(misses[0].kind.to_string().contains("2048 lookups"));
        }
        other => panic!("{other:?}"),
    }
    // The kernel's own lookup, for comparison, has no such bound.
    assert!(in_root(&open, &candidates, "/").is_ok());
}
