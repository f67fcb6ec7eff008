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
    /// The qemu-user binary that runs it.
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
        if !["/usr/bin", "/usr/local/bin"]
            .iter()
            .any(|d| Path::new(d).join(self.qemu).is_file())
        {
            return Some(format!(
                "no {} on this host; install qemu-user-static",
                self.qemu
            ));
        }
        None
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
