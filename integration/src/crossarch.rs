//! Helpers for the tests of crossarch's own features (foreign architectures, the injected
//! init, pods): which runtime is under test, the foreign fixtures, per-container configs, and
//! the host's binfmt_misc, which those tests prove untouched.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::{fixtures_dir, host_arch, Containerd, OutputExt};

pub const CROSSARCH: &str = "io.containerd.crossarch.v2";

/// Whether the runtime under test is crossarch; prints why the test skips when it is not.
/// `what` names the feature, e.g. "foreign-architecture emulation".
pub fn crossarch_only(what: &str) -> bool {
    let runtime = crate::runtime();
    if runtime == CROSSARCH {
        return true;
    }
    eprintln!("SKIPPED: {what} is crossarch's own; CROSSARCH_TEST_RUNTIME is {runtime}");
    false
}

/// A foreign architecture of the fixtures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arch {
    /// Debian's name, as the fixtures are named (`rootfs/<deb>`, `busybox-<deb>.tar`).
    pub deb: &'static str,
    /// The OCI platform `ctr run --platform` takes.
    pub platform: &'static str,
    /// What `uname -m` prints under emulation.
    pub uname: &'static str,
    /// The qemu-user binary that runs it, as crossarch's messages name it (Debian 12's
    /// `qemu-user-static` name; Debian 13's `qemu-user` installs it without the suffix: see
    /// [`Arch::host_qemu`]).
    pub qemu: &'static str,
}

pub const ARM64: Arch = Arch {
    deb: "arm64",
    platform: "linux/arm64",
    uname: "aarch64",
    qemu: "qemu-aarch64-static",
};
pub const ARMHF: Arch = Arch {
    deb: "armhf",
    platform: "linux/arm/v7",
    uname: "armv7l",
    qemu: "qemu-arm-static",
};
pub const S390X: Arch = Arch {
    deb: "s390x",
    platform: "linux/s390x",
    uname: "s390x",
    qemu: "qemu-s390x-static",
};
pub const RISCV64: Arch = Arch {
    deb: "riscv64",
    platform: "linux/riscv64",
    uname: "riscv64",
    qemu: "qemu-riscv64-static",
};
pub const PPC64LE: Arch = Arch {
    deb: "ppc64el",
    platform: "linux/ppc64le",
    uname: "ppc64le",
    qemu: "qemu-ppc64le-static",
};

/// Every foreign architecture the fixtures cover.
pub const FOREIGN: [Arch; 5] = [ARM64, ARMHF, S390X, RISCV64, PPC64LE];

impl Arch {
    pub fn rootfs(&self) -> PathBuf {
        fixtures_dir().join("rootfs").join(self.deb)
    }
    pub fn image_archive(&self) -> PathBuf {
        fixtures_dir()
            .join("images")
            .join(format!("busybox-{}.tar", self.deb))
    }
    pub fn image(&self) -> String {
        format!("crossarch.test/busybox:{}", self.deb)
    }

    /// Why this arch cannot be tested here (it is the host's, its fixture or its qemu is
    /// missing), if it cannot.
    pub fn unavailable(&self) -> Option<String> {
        if self.deb == host_arch() {
            return Some(format!("{} is this host's architecture", self.deb));
        }
        if !self.rootfs().join("bin/busybox").is_file() || !self.image_archive().is_file() {
            return Some(format!(
                "no {} fixture in {}; run scripts/fixtures.sh",
                self.deb,
                fixtures_dir().display()
            ));
        }
        if self.host_qemu().is_none() {
            return Some(format!(
                "no {} on this host; install qemu-user-static (Debian 12) or qemu-user \
                 (Debian 13 and later)",
                self.qemu
            ));
        }
        None
    }

    /// The host's static qemu for this arch, as crossarch's default search finds it: in
    /// /usr/bin, then /usr/local/bin, `qemu-<arch>-static` first, then a static
    /// `qemu-<arch>` (Debian 13's `qemu-user`).
    pub fn host_qemu(&self) -> Option<PathBuf> {
        let unsuffixed = self.qemu.trim_end_matches("-static");
        ["/usr/bin", "/usr/local/bin"].iter().find_map(|d| {
            let suffixed = Path::new(d).join(self.qemu);
            if suffixed.is_file() {
                return Some(suffixed);
            }
            let plain = Path::new(d).join(unsuffixed);
            is_static_elf(&plain).then_some(plain)
        })
    }

    /// True when the arch can be tested; else prints a SKIPPED line (a failure in CI).
    pub fn available(&self) -> bool {
        match self.unavailable() {
            None => true,
            Some(why) => {
                if std::env::var_os("CI").is_some() {
                    panic!("{why}");
                }
                eprintln!("SKIPPED: {why}");
                false
            }
        }
    }
}

/// The Debian package that installed the host's qemu for `arch`, as `dpkg -S` says:
/// what crossarch's "install ..." hint must name on this host.
pub fn qemu_package(arch: &Arch) -> String {
    let qemu = arch
        .host_qemu()
        .unwrap_or_else(|| panic!("no {} on this host", arch.qemu));
    let real = fs::canonicalize(&qemu).unwrap_or(qemu);
    let out = Command::new("dpkg")
        .arg("-S")
        .arg(&real)
        .output()
        .expect("run dpkg -S");
    out.ok();
    let text = out.stdout_text();
    text.split(':')
        .next()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| panic!("`dpkg -S {}` named no package: {text}", real.display()))
        .to_string()
}

/// Whether `path` is an ELF executable without a program interpreter (`PT_INTERP`): one
/// the kernel can run in any container's root. 64-bit little-endian hosts only.
pub fn is_static_elf(path: &Path) -> bool {
    use std::io::Read;
    // The program headers follow the ELF header closely; qemu itself is megabytes.
    let mut data = Vec::new();
    let Ok(file) = fs::File::open(path) else {
        return false;
    };
    if file.take(64 * 1024).read_to_end(&mut data).is_err() {
        return false;
    }
    let u16_at = |o: usize| data.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        data.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        data.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    };
    // ELFCLASS64, ELFDATA2LSB.
    if !data.starts_with(b"\x7fELF\x02\x01") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    const PT_INTERP: u32 = 3;
    (0..usize::from(phnum)).all(|i| {
        let at = phoff as usize + i * usize::from(phentsize);
        u32_at(at).is_some_and(|t| t != PT_INTERP)
    })
}

/// The crossarch config of a container that `ctr run --config SPEC` creates from a spec with
/// a user namespace mapping.
///
/// `ctr` 1.7 and later set runc's own options for such a spec (the console's owner,
/// containerd's `WithUIDOwner`), and refuse when the container's options are the
/// `runtimeoptions` that `--runtime-config-path` gives: "failed to get runtime v2 options:
/// can't unmarshal type runtimeoptions.v1.Options". There the config goes through
/// `CROSSARCH_CONFIG` in the daemon's environment instead, which the shim reads when no
/// runtime options name a file: one config for the daemon's containers.
pub struct MappedSpecConfig {
    /// The file `CROSSARCH_CONFIG` names, when the daemon got it.
    file: Option<tempfile::NamedTempFile>,
}

impl MappedSpecConfig {
    /// What [`MappedSpecConfig::daemon_options`] and [`MappedSpecConfig::ctr_args`] work
    /// with, for the `ctr` in PATH.
    pub fn new() -> MappedSpecConfig {
        let file = (ctr_sets_runc_options_for_mapped_specs()).then(|| {
            tempfile::Builder::new()
                .prefix("cx-config-")
                .suffix(".toml")
                .tempfile_in("/tmp")
                .expect("make a config file")
        });
        MappedSpecConfig { file }
    }

    /// The daemon's options: `CROSSARCH_CONFIG` when the config goes that way.
    pub fn daemon_options(&self) -> crate::Options {
        crate::Options {
            env: self
                .file
                .iter()
                .map(|f| ("CROSSARCH_CONFIG".to_string(), f.path().into()))
                .collect(),
            ..Default::default()
        }
    }

    /// Writes `toml` as the config and returns what `ctr run` needs for it.
    pub fn ctr_args(&self, cd: &Containerd, toml: &str) -> Vec<String> {
        match &self.file {
            Some(f) => {
                fs::write(f.path(), toml).unwrap();
                Vec::new()
            }
            None => vec!["--runtime-config-path".into(), config_file(cd, toml)],
        }
    }
}

impl Default for MappedSpecConfig {
    fn default() -> Self {
        MappedSpecConfig::new()
    }
}

/// Whether the `ctr` in PATH sets runc's options for a spec with user namespace mappings
/// (containerd 1.7 and later: `cmd/ctr/commands/tasks/tasks_unix.go`).
fn ctr_sets_runc_options_for_mapped_specs() -> bool {
    let out = Command::new("ctr")
        .arg("--version")
        .output()
        .expect("run ctr --version");
    let text = String::from_utf8_lossy(&out.stdout);
    // "ctr github.com/containerd/containerd/v2 2.1.9+unknown"
    let version: Vec<u32> = text
        .split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("unexpected `ctr --version`: {text}"))
        .trim_start_matches('v')
        .split(|c: char| !c.is_ascii_digit())
        .take(2)
        .map(|n| n.parse().unwrap_or(0))
        .collect();
    version >= vec![1, 7]
}

/// Writes a crossarch config for containers of this daemon and returns its path, for
/// `ctr run --runtime-config-path`.
pub fn config_file(cd: &Containerd, toml: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let path = cd.dir().join(format!(
        "crossarch-{}.toml",
        N.fetch_add(1, Ordering::SeqCst)
    ));
    fs::write(&path, toml).unwrap();
    path.display().to_string()
}

/// Imports the busybox image of `arch` (fixture archive) and returns its name.
pub fn import_busybox(cd: &Containerd, arch: &Arch) -> String {
    import_archive(cd, &arch.image_archive());
    arch.image()
}

/// `ctr image import --all-platforms ARCHIVE`.
pub fn import_archive(cd: &Containerd, archive: &Path) {
    cd.ctr(&[
        "images",
        "import",
        "--all-platforms",
        &archive.display().to_string(),
    ])
    .ok();
}

/// The `ctr run` arguments for an image container:
/// `run --runtime R --platform P OPTS IMAGE ID ARGV`.
pub fn image_run_args(
    cd: &Containerd,
    image: &str,
    platform: &str,
    id: &str,
    opts: &[&str],
    argv: &[&str],
) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "run".into(),
        "--runtime".into(),
        cd.runtime().into(),
        "--platform".into(),
        platform.into(),
    ];
    args.extend(opts.iter().map(|s| s.to_string()));
    args.push(image.into());
    args.push(id.into());
    args.extend(argv.iter().map(|s| s.to_string()));
    args
}

/// `ctr run` of an image container to completion (see [`image_run_args`]).
pub fn run_image(
    cd: &Containerd,
    image: &str,
    platform: &str,
    id: &str,
    opts: &[&str],
    argv: &[&str],
) -> Output {
    let args = image_run_args(cd, image, platform, id, opts, argv);
    cd.ctr(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Starts an image container detached and waits until its task is RUNNING.
pub fn run_image_detached(
    cd: &Containerd,
    image: &str,
    platform: &str,
    id: &str,
    opts: &[&str],
    argv: &[&str],
) {
    let mut all = vec!["-d"];
    all.extend_from_slice(opts);
    run_image(cd, image, platform, id, &all, argv).ok();
    cd.wait_status(id, "RUNNING", Duration::from_secs(30));
}

/// The exit status of task `id` once `signal` is sent to it, after the file `ready` (a host
/// path) appeared, so the container's trap is in place. Bounded: a frozen container fails.
pub fn exit_status_after_signal(cd: &Containerd, id: &str, ready: &Path, signal: &str) -> u64 {
    let long = Duration::from_secs(30);
    crate::wait_until(&format!("{id} to write {}", ready.display()), long, || {
        ready.exists()
    });
    let ev = cd.events();
    cd.ctr(&["task", "kill", "-s", signal, id]).ok();
    let exit = ev.wait_topic("/tasks/exit", id, long);
    cd.wait_status(id, "STOPPED", long);
    exit.number("exit_status")
}

/// `cp -a FROM/. TO`.
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    let out = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .output()
        .expect("run cp");
    assert!(
        out.status.success(),
        "copy {}: {}",
        from.display(),
        out.show()
    );
}

/// The crossarch decision record of a container (`crossarch-route.json` in its bundle).
pub fn route_record(cd: &Containerd, id: &str) -> serde_json::Value {
    route_record_in(&cd.bundle(id))
}

/// The crossarch decision record in the task bundle `bundle`.
pub fn route_record_in(bundle: &Path) -> serde_json::Value {
    let path = bundle.join("crossarch-route.json");
    let raw = fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_slice(&raw).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const HOST_BINFMT: &str = "/proc/sys/fs/binfmt_misc";

/// What the host shows at /proc/sys/fs/binfmt_misc: the mounts there (from this process's
/// mountinfo, which is the host's mount namespace) and the entries of the directory. Read
/// only: nothing is ever mounted or written there. With an autofs there (systemd's
/// automount) the directory is not listed, since listing it would mount binfmt_misc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostBinfmt {
    /// `fstype` of each mount at /proc/sys/fs/binfmt_misc.
    pub mounts: Vec<String>,
    pub entries: Vec<String>,
}

impl HostBinfmt {
    pub fn read() -> HostBinfmt {
        let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        // Fields: id parent major:minor root mountpoint options [optional...] - fstype ...
        let mounts: Vec<String> = info
            .lines()
            .filter(|l| l.split(' ').nth(4) == Some(HOST_BINFMT))
            .map(|l| {
                l.split_once(" - ")
                    .and_then(|(_, rest)| rest.split(' ').next())
                    .unwrap_or("?")
                    .to_string()
            })
            .collect();
        let entries = if mounts.iter().any(|m| m == "autofs") {
            Vec::new()
        } else {
            let mut e: Vec<String> = fs::read_dir(HOST_BINFMT)
                .map(|d| {
                    d.filter_map(Result::ok)
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            e.sort();
            e
        };
        HostBinfmt { mounts, entries }
    }

    /// No binfmt_misc instance is mounted at the host's path.
    pub fn has_binfmt_mount(&self) -> bool {
        self.mounts.iter().any(|m| m == "binfmt_misc")
    }

    /// Qemu registrations of the host (crossarch's own names, or qemu-*).
    pub fn qemu_entries(&self) -> Vec<&String> {
        self.entries
            .iter()
            .filter(|e| e.starts_with("crossarch") || e.starts_with("qemu"))
            .collect()
    }
}

/// Records the host's binfmt_misc when made and asserts, when [`HostGuard::check`] is
/// called (tests call it at their end), that it is unchanged: no binfmt_misc mount and no
/// new entry.
pub struct HostGuard {
    before: HostBinfmt,
}

impl HostGuard {
    pub fn new() -> HostGuard {
        let before = HostBinfmt::read();
        assert!(
            !before.entries.iter().any(|e| e.starts_with("crossarch")),
            "the host's binfmt_misc already has a crossarch entry: {before:?}"
        );
        HostGuard { before }
    }

    pub fn check(&self) {
        let after = HostBinfmt::read();
        assert!(
            !after.has_binfmt_mount() || self.before.has_binfmt_mount(),
            "binfmt_misc was mounted on the host's {HOST_BINFMT}: {after:?}"
        );
        assert_eq!(
            after, self.before,
            "the host's {HOST_BINFMT} changed while foreign containers ran"
        );
        assert!(
            !after.entries.iter().any(|e| e.starts_with("crossarch")),
            "a crossarch registration is in the host's binfmt_misc: {after:?}"
        );
    }
}

impl Default for HostGuard {
    fn default() -> Self {
        Self::new()
    }
}

/// One host file as [`HostFilesGuard`] records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFileState {
    pub path: PathBuf,
    /// `st_mode`: the file type and every permission bit, setuid and setgid included.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Size and modification time: a change there cannot be undone, only reported.
    pub size: u64,
    pub mtime: (i64, i64),
    /// Every extended attribute (`security.capability` included), by name.
    pub xattrs: std::collections::BTreeMap<String, Vec<u8>>,
}

fn c_path(path: &Path) -> std::ffi::CString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes()).expect("a path without NUL")
}

/// The names and values of a file's extended attributes (listxattr/getxattr).
fn xattrs(path: &Path) -> std::io::Result<std::collections::BTreeMap<String, Vec<u8>>> {
    let c = c_path(path);
    let mut out = std::collections::BTreeMap::new();
    // SAFETY: c is NUL-terminated; a null buffer of size 0 asks for the size.
    let size = unsafe { libc::listxattr(c.as_ptr(), std::ptr::null_mut(), 0) };
    if size < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut names = vec![0u8; size as usize + 1];
    // SAFETY: names has room for `names.len()` bytes.
    let size = unsafe { libc::listxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if size < 0 {
        return Err(std::io::Error::last_os_error());
    }
    for name in names[..size as usize]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
    {
        let cname = std::ffi::CString::new(name).expect("xattr names have no NUL");
        // SAFETY: as above.
        let len = unsafe { libc::getxattr(c.as_ptr(), cname.as_ptr(), std::ptr::null_mut(), 0) };
        if len < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut value = vec![0u8; len as usize];
        // SAFETY: value has room for `value.len()` bytes.
        let len = unsafe {
            libc::getxattr(
                c.as_ptr(),
                cname.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        if len < 0 {
            return Err(std::io::Error::last_os_error());
        }
        value.truncate(len as usize);
        out.insert(String::from_utf8_lossy(name).into_owned(), value);
    }
    Ok(out)
}

impl HostFileState {
    pub fn read(path: &Path) -> std::io::Result<HostFileState> {
        use std::os::unix::fs::MetadataExt;
        let m = fs::metadata(path)?;
        Ok(HostFileState {
            path: path.to_path_buf(),
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            xattrs: xattrs(path)?,
        })
    }

    /// What makes the file grant privilege when executed: setuid, setgid, file capabilities.
    pub fn privilege(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.mode & 0o4000 != 0 {
            v.push("setuid".to_string());
        }
        if self.mode & 0o2000 != 0 {
            v.push("setgid".to_string());
        }
        if self.xattrs.contains_key("security.capability") {
            v.push("security.capability".to_string());
        }
        v
    }

    /// Puts mode, owner and extended attributes back as in `self`. chown first: it clears
    /// setuid, setgid and security.capability, which the later steps then set as recorded.
    fn restore(&self) -> Vec<String> {
        let mut failed = Vec::new();
        let c = c_path(&self.path);
        // SAFETY: c is NUL-terminated for the duration of each call.
        if unsafe { libc::chown(c.as_ptr(), self.uid, self.gid) } != 0 {
            failed.push(format!("chown: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: as above.
        if unsafe { libc::chmod(c.as_ptr(), self.mode & 0o7777) } != 0 {
            failed.push(format!("chmod: {}", std::io::Error::last_os_error()));
        }
        let now = xattrs(&self.path).unwrap_or_default();
        for name in now.keys().filter(|n| !self.xattrs.contains_key(*n)) {
            let cname = std::ffi::CString::new(name.as_str()).unwrap();
            // SAFETY: both strings are NUL-terminated.
            if unsafe { libc::removexattr(c.as_ptr(), cname.as_ptr()) } != 0 {
                failed.push(format!(
                    "removexattr {name}: {}",
                    std::io::Error::last_os_error()
                ));
            }
        }
        for (name, value) in &self.xattrs {
            if now.get(name) == Some(value) {
                continue;
            }
            let cname = std::ffi::CString::new(name.as_str()).unwrap();
            // SAFETY: the strings are NUL-terminated and value is valid for its length.
            let r = unsafe {
                libc::setxattr(
                    c.as_ptr(),
                    cname.as_ptr(),
                    value.as_ptr().cast(),
                    value.len(),
                    0,
                )
            };
            if r != 0 {
                failed.push(format!(
                    "setxattr {name}: {}",
                    std::io::Error::last_os_error()
                ));
            }
        }
        failed
    }
}

/// The host files a container must never be able to change: every `qemu-*-static` and
/// every static `qemu-*` in /usr/bin and /usr/local/bin, and the shim and its init in
/// [`crate::shim_dir`].
pub fn guarded_host_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["/usr/bin", "/usr/local/bin"] {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("qemu-") && (name.ends_with("-static") || is_static_elf(&e.path()))
            {
                files.push(e.path());
            }
        }
    }
    for name in ["crossarch-init", "containerd-shim-crossarch-v2"] {
        let p = crate::shim_dir().join(name);
        if p.exists() {
            files.push(p);
        }
    }
    // A link is guarded through the file it names, once.
    let mut real: Vec<PathBuf> = files
        .into_iter()
        .filter_map(|p| fs::canonicalize(p).ok())
        .collect();
    real.sort();
    real.dedup();
    real
}

/// The lock file that makes guarded sections exclusive on this host, across test threads,
/// test binaries and checkouts: a change is then the doing of the test whose guard sees it,
/// and no guard records another test's change as the original.
pub const HOST_FILES_LOCK: &str = "/tmp/crossarch-host-files.lock";

/// An exclusive `flock` on [`HOST_FILES_LOCK`], released when dropped (the file is closed).
struct HostFilesLock {
    /// Held open: closing it releases the lock.
    _file: fs::File,
}

impl HostFilesLock {
    fn take() -> HostFilesLock {
        use std::os::fd::AsRawFd;
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(HOST_FILES_LOCK)
            .unwrap_or_else(|e| panic!("open {HOST_FILES_LOCK}: {e}"));
        loop {
            // SAFETY: the descriptor is open for the duration of the call.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return HostFilesLock { _file: file };
            }
            let e = std::io::Error::last_os_error();
            assert_eq!(
                e.kind(),
                std::io::ErrorKind::Interrupted,
                "flock {HOST_FILES_LOCK}: {e}"
            );
        }
    }
}

/// Records mode, owner and every extended attribute of the [`guarded_host_files`] when made
/// and compares them at [`HostFilesGuard::check`]. A change is restored first (chown, chmod,
/// extended attributes added removed, changed ones set back) and then fails the test; a guard
/// dropped without `check` (a test that panicked) restores too. No test may leave the node
/// with a setuid qemu.
///
/// Guards are exclusive on the host (an `flock` on [`HOST_FILES_LOCK`]): a second one waits
/// until the first is gone.
/// A guarded file that already grants privilege (setuid, setgid, file capabilities) fails the
/// guard at once, since that is no state to restore to.
pub struct HostFilesGuard {
    before: Vec<HostFileState>,
    checked: bool,
    _exclusive: HostFilesLock,
}

impl HostFilesGuard {
    pub fn new() -> HostFilesGuard {
        let exclusive = HostFilesLock::take();
        let files = guarded_host_files();
        let before: Vec<HostFileState> = files
            .iter()
            .map(|f| HostFileState::read(f).unwrap_or_else(|e| panic!("read {}: {e}", f.display())))
            .collect();
        let privileged: Vec<String> = before
            .iter()
            .filter(|s| !s.privilege().is_empty())
            .map(|s| format!("{} ({})", s.path.display(), s.privilege().join(", ")))
            .collect();
        assert!(
            privileged.is_empty(),
            "host files that must not grant privilege already do: {}; fix them (chmod 0755, \
             setfattr -x security.capability) or reinstall qemu-user-static and crossarch",
            privileged.join("; ")
        );
        HostFilesGuard {
            before,
            checked: false,
            _exclusive: exclusive,
        }
    }

    /// The files guarded, as recorded.
    pub fn files(&self) -> &[HostFileState] {
        &self.before
    }

    /// Compares every file with its record and restores the ones that changed. Returns what
    /// changed (and whether restoring failed), empty when nothing did.
    fn compare_and_restore(&self) -> Vec<String> {
        let mut changes = Vec::new();
        for before in &self.before {
            let now = match HostFileState::read(&before.path) {
                Ok(now) => now,
                Err(e) => {
                    changes.push(format!(
                        "{}: cannot be read any more: {e}",
                        before.path.display()
                    ));
                    continue;
                }
            };
            if &now == before {
                continue;
            }
            let mut what = format!(
                "{}: mode {:o} -> {:o}, owner {}:{} -> {}:{}, xattrs {:?} -> {:?}",
                before.path.display(),
                before.mode,
                now.mode,
                before.uid,
                before.gid,
                now.uid,
                now.gid,
                before.xattrs.keys().collect::<Vec<_>>(),
                now.xattrs.keys().collect::<Vec<_>>(),
            );
            if (now.size, now.mtime) != (before.size, before.mtime) {
                what.push_str(
                    "; ITS CONTENT CHANGED (size or mtime), which cannot be restored: \
                     reinstall the package or rebuild",
                );
            }
            let failed = before.restore();
            let after = HostFileState::read(&before.path).ok();
            let restored = after.as_ref().is_some_and(|a| {
                (a.mode, a.uid, a.gid, &a.xattrs)
                    == (before.mode, before.uid, before.gid, &before.xattrs)
            });
            if restored {
                what.push_str("; restored");
            } else {
                what.push_str(&format!(
                    "; RESTORING FAILED ({}), now {after:?}: fix it by hand",
                    failed.join(", ")
                ));
            }
            eprintln!("host file changed: {what}");
            changes.push(what);
        }
        changes
    }

    /// Fails the test if a guarded host file changed since the guard was made, after
    /// restoring it.
    pub fn check(mut self) {
        self.checked = true;
        let changes = self.compare_and_restore();
        assert!(
            changes.is_empty(),
            "a container changed host files (restored where possible):\n{}",
            changes.join("\n")
        );
        println!("host files unchanged: {} guarded", self.before.len());
    }
}

impl Default for HostFilesGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for HostFilesGuard {
    fn drop(&mut self) {
        if self.checked {
            return;
        }
        let changes = self.compare_and_restore();
        if !changes.is_empty() && !std::thread::panicking() {
            panic!(
                "a container changed host files (restored where possible):\n{}",
                changes.join("\n")
            );
        }
    }
}

/// Builds the static helper `integration/helpers/<name>.c` into `dir` with
/// `cc -static -O2` and returns its path; `None` (after saying why) when this machine has
/// no C compiler or static libc, a failure under `CI`.
pub fn build_static_helper(name: &str, dir: &Path) -> Option<PathBuf> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("helpers")
        .join(format!("{name}.c"));
    let out = dir.join(name);
    let built = Command::new("cc")
        .args(["-static", "-O2", "-Wall", "-o"])
        .arg(&out)
        .arg(&source)
        .output();
    let why = match built {
        Ok(o) if o.status.success() => return Some(out),
        Ok(o) => format!("`cc -static` of {} failed: {}", source.display(), o.show()),
        Err(e) => format!("no C compiler (cc: {e}); install gcc and libc6-dev"),
    };
    helper_skipped(&why)
}

/// A helper that could not be built: a failure under `CI`, else a SKIPPED line.
fn helper_skipped(why: &str) -> Option<PathBuf> {
    if std::env::var_os("CI").is_some() {
        panic!("{why}");
    }
    eprintln!("SKIPPED: {why}");
    None
}

/// The aarch64 helper `integration/helpers/threads.rs`, built with the test crate (see
/// integration/build.rs); `None` (after saying why) when it could not be built, a failure
/// under `CI`.
pub fn aarch64_threads_helper() -> Option<PathBuf> {
    let built = env!("CROSSARCH_AARCH64_HELPER_THREADS");
    match built.strip_prefix("ok:") {
        Some(path) => Some(PathBuf::from(path)),
        None => helper_skipped(built),
    }
}

/// Makes a network namespace on the host, as containerd's CRI makes a pod's before its
/// sandbox starts (so the host's user namespace owns it), with its loopback up as CNI's
/// loopback plugin leaves it. It is bound at `<daemon dir>/netns`, which the daemon's
/// cleanup unmounts; returns that path.
pub fn host_made_netns(cd: &Containerd) -> String {
    let file = cd.dir().join("netns");
    fs::write(&file, "").unwrap();
    let path = file.display().to_string();
    let run = |args: &[&str]| {
        let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", out.show());
    };
    run(&["unshare", &format!("--net={path}"), "true"]);
    run(&[
        "nsenter",
        &format!("--net={path}"),
        "ip",
        "link",
        "set",
        "lo",
        "up",
    ]);
    path
}
