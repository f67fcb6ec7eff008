//! What crossarch's decisions need to know about the node, probed once per shim process, so
//! that every Create (and `doctor`, which reads the same facts) sees the same node:
//!
//! - the host's architecture and the ones its kernel runs natively;
//! - whether containers can get a private binfmt_misc (the kernel, the shim's euid, and
//!   `user.max_user_namespaces`, the one of them that can change while the shim runs);
//! - the shim's own user namespace;
//! - where the shim, and so the init beside it, is installed;
//! - the qemu found in each configured directory, probed again only when one of those
//!   directories changes.
//!
//! runc's version is a fact of the runc binary a container's options name; `runc::Runc`
//! asks it once per shim, and only when a decision needs it.

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::{Mutex, OnceLock},
    time::SystemTime,
};

use crossarch_route::{
    arch::{self, Arch, Host},
    qemu::{NotFound, Qemu},
};

use crate::{
    config::{Config, EmulationMode},
    plan::NodeView,
    view::ContainerView,
};

/// The facts that cannot change while the shim runs.
#[derive(Debug)]
pub struct Node {
    /// `None` on an architecture crossarch does not know.
    pub host: Option<Host>,
    /// Why the kernel or the shim's credentials rule out a private binfmt_misc.
    no_private_binfmt: Option<String>,
    /// Why the kernel cannot run trace mode, if it cannot.
    old_kernel_for_trace: Option<String>,
    /// The shim's user namespace, as an inode number.
    pub user_namespace: Option<u64>,
    /// The directory of the shim's binary.
    pub shim_dir: Option<PathBuf>,
    /// Why the kernel refused the shim a user namespace, once it was asked.
    userns_refused: OnceLock<Option<String>>,
}

/// Probes the node on a thread of its own while the shim starts, so that the first Create,
/// which containerd sends as soon as it has connected, finds the facts ready instead of
/// probing them itself: the qemu table alone is some 120 stat(2) calls. The qemu
/// directories are the node's crossarch config's; a Create whose runtime options name others
/// probes those itself.
pub fn prefetch() {
    let probe = || {
        let node = node();
        let Ok(config) = Config::load(&Config::default_file()) else {
            return;
        };
        let emulation = &config.emulation;
        // Only a private binfmt_misc registers every foreign architecture.
        if matches!(emulation.mode, EmulationMode::Auto | EmulationMode::Userns)
            && node.userns_unsupported().is_none()
        {
            node.registrations(&emulation.qemu_dirs, emulation.allowed.as_deref());
        }
    };
    if let Err(e) = std::thread::Builder::new()
        .name("facts".into())
        .spawn(probe)
    {
        log::debug!("cannot probe the node ahead of the first Create: {e}");
    }
}

/// The node, probed on first use.
pub fn node() -> &'static Node {
    static NODE: OnceLock<Node> = OnceLock::new();
    NODE.get_or_init(Node::probe)
}

impl Node {
    fn probe() -> Node {
        let kernel = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        Node {
            host: crate::host::detect(),
            old_kernel_for_trace: trace_kernel_unsupported(&kernel),
            no_private_binfmt: private_binfmt_unsupported(
                &kernel,
                nix::unistd::geteuid().is_root(),
            ),
            user_namespace: std::fs::metadata("/proc/self/ns/user")
                .map(|m| m.ino())
                .ok(),
            shim_dir: std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf)),
            userns_refused: OnceLock::new(),
        }
    }

    /// Why this node cannot give containers a private binfmt_misc now, or `None` when it can.
    pub fn userns_unsupported(&self) -> Option<String> {
        if let Some(why) = &self.no_private_binfmt {
            return Some(why.clone());
        }
        if let Some(why) = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
            .ok()
            .and_then(|max| user_namespaces_disabled(&max))
        {
            return Some(why);
        }
        self.kernel_refuses_userns()
    }

    /// Why the kernel refuses the shim a user namespace (a chroot, an LSM, a seccomp
    /// filter), asked once with a child that tries, as runc would. Running out of
    /// namespaces (ENOSPC) passes, so it is not remembered.
    fn kernel_refuses_userns(&self) -> Option<String> {
        if let Some(answer) = self.userns_refused.get() {
            return answer.clone();
        }
        match ask_for_user_namespace() {
            Ok(()) => self.userns_refused.get_or_init(|| None).clone(),
            Err(libc::ENOSPC) => Some(user_namespace_refused(libc::ENOSPC)),
            Err(errno) => self
                .userns_refused
                .get_or_init(|| Some(user_namespace_refused(errno)))
                .clone(),
        }
    }

    /// Why this node's kernel refuses trace mode's init the ptrace of its own children, or
    /// `None` when it allows it. Read at each Create: an admin may change it any time.
    pub fn trace_unsupported(&self) -> Option<String> {
        if let Some(why) = &self.old_kernel_for_trace {
            return Some(why.clone());
        }
        let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").ok()?;
        yama_refuses_trace(&scope)
    }

    /// Whether the host runs binaries of `arch` without an emulator.
    pub fn runs_natively(&self, arch: Arch) -> bool {
        self.host
            .is_some_and(|h| arch::runs_natively(h.arch, arch, &h.facts))
    }

    /// qemu for `arch` in `dirs`, from the table of the last probe unless a directory changed.
    pub fn qemu(&self, dirs: &[PathBuf], arch: Arch) -> Result<Qemu, NotFound> {
        self.qemus(dirs, std::iter::once(arch)).remove(0)
    }

    /// [`Node::qemu`] for each of `arches`, the directories looked at once.
    fn qemus(
        &self,
        dirs: &[PathBuf],
        arches: impl Iterator<Item = Arch>,
    ) -> Vec<Result<Qemu, NotFound>> {
        let stamp = stamp(dirs);
        let mut tables = QEMU.lock().unwrap_or_else(|e| e.into_inner());
        let table = tables
            .get_or_insert_with(HashMap::new)
            .entry(dirs.to_vec())
            .or_default();
        if table.stamp != stamp {
            *table = QemuTable {
                stamp,
                found: HashMap::new(),
            };
        }
        arches
            .map(|arch| {
                let host = self.host.map(|h| h.arch).unwrap_or(arch);
                table
                    .found
                    .entry(arch)
                    .or_insert_with(|| crate::host::discover_qemu(dirs, arch, host))
                    .clone()
            })
            .collect()
    }

    /// qemu for every foreign architecture `allowed` (all when `None`) that the node provides
    /// and a binfmt_misc entry can match: what a container's private binfmt_misc registers, so
    /// that its children of any architecture run too.
    pub fn registrations(
        &self,
        dirs: &[PathBuf],
        allowed: Option<&[Arch]>,
    ) -> Vec<(Arch, PathBuf)> {
        if self.host.is_none() {
            return Vec::new();
        }
        let wanted = Arch::all()
            .filter(|a| allowed.is_none_or(|allowed| allowed.contains(a)))
            .filter(|a| !self.runs_natively(*a))
            .filter(|a| crate::binfmt::magic_and_mask(*a).is_some());
        self.qemus(dirs, wanted)
            .into_iter()
            .filter_map(Result::ok)
            .map(|q| (q.arch, q.path))
            .collect()
    }
}

impl Node {
    /// What the node means for container `view`: `foreign` when its process needs qemu, so
    /// that only then is the node asked about user namespaces and host networks.
    pub fn for_container<'a>(
        &'a self,
        config: &'a Config,
        view: &ContainerView,
        foreign: bool,
    ) -> NodeView<'a> {
        let init = crate::init::locate(&config.init);
        NodeView {
            userns_unsupported: if foreign {
                self.userns_unsupported()
            } else {
                None
            },
            trace_unsupported: if foreign {
                self.trace_unsupported()
            } else {
                None
            },
            registrations: Box::new(move || {
                self.registrations(
                    &config.emulation.qemu_dirs,
                    config.emulation.allowed.as_deref(),
                )
            }),
            init: crate::init::check(&view.id, &init).map(|()| init),
            joins_host_network: foreign
                && view
                    .namespaces
                    .network
                    .joined()
                    .is_some_and(|path| crate::ns::same_namespace(path, "/proc/self/ns/net")),
        }
    }
}

/// Why a kernel `release` cannot run trace mode: its init waits for each exec on a seccomp
/// listener and lets a native one go on (SECCOMP_USER_NOTIF_FLAG_CONTINUE), which came with
/// Linux 5.5.
pub fn trace_kernel_unsupported(release: &str) -> Option<String> {
    match kernel_version(release) {
        Some(v) if v >= (5, 5) => None,
        _ => Some(format!(
            "Linux {release} cannot let a seccomp listener's exec go on (trace mode needs 5.5)"
        )),
    }
}

/// Why Yama's `kernel.yama.ptrace_scope` (`scope`, as read) refuses a process the ptrace of
/// its own children: 0 and 1 allow it, 2 asks CAP_SYS_PTRACE of the tracer, which no
/// container should get for it, and 3 forbids ptrace altogether.
pub fn yama_refuses_trace(scope: &str) -> Option<String> {
    match scope.trim() {
        "0" | "1" => None,
        other => Some(format!(
            "kernel.yama.ptrace_scope is {other}, which refuses a container's init the ptrace of \
             its own processes (trace mode needs 0 or 1)"
        )),
    }
}

/// What trace mode leaves unemulated here of a process that switches to another user (`su`,
/// gosu, `setpriv`), given the kernel `release`. The init hands that process's first exec
/// over with SECCOMP_IOCTL_NOTIF_ADDFD (Linux 5.9); a thread of the init that takes the
/// user's ids answers its later execs, which Yama's `ptrace_scope` 1 allows too, as the init
/// is their ancestor. Returns why, and what to do.
pub fn trace_user_switch_limit(release: &str) -> Option<(String, &'static str)> {
    if kernel_version(release).is_some_and(|v| v >= (5, 9)) {
        return None;
    }
    let kernel = if release.is_empty() {
        "this kernel (its release is unknown)".to_string()
    } else {
        format!("Linux {release}")
    };
    Some((
        format!(
            "{kernel} cannot put a file descriptor into a waiting process \
             (SECCOMP_IOCTL_NOTIF_ADDFD came with 5.9): in trace mode the foreign program that \
             a process execs right after it switches to another user (su, gosu, setpriv) fails \
             with \"exec format error\""
        ),
        "run the node on Linux 5.9 or later",
    ))
}

/// What one list of qemu directories held when it was probed, per architecture.
#[derive(Default)]
struct QemuTable {
    stamp: Vec<Option<SystemTime>>,
    found: HashMap<Arch, Result<Qemu, NotFound>>,
}

/// A table per list of directories (one per crossarch config; the node admin's, so few).
static QEMU: Mutex<Option<HashMap<Vec<PathBuf>, QemuTable>>> = Mutex::new(None);

/// The directories' modification times: installing, removing or renaming a qemu in one of
/// them changes its time.
fn stamp(dirs: &[PathBuf]) -> Vec<Option<SystemTime>> {
    dirs.iter()
        .map(|d| std::fs::metadata(d).and_then(|m| m.modified()).ok())
        .collect()
}

/// Linux version as (major, minor) from a release string like "6.18.44-generic".
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Why a kernel `release` or a shim that is not root rules out a private binfmt_misc.
fn private_binfmt_unsupported(release: &str, root: bool) -> Option<String> {
    match kernel_version(release) {
        Some(v) if v >= (6, 7) => {}
        _ => {
            return Some(format!(
                "Linux {release} has no per-user-namespace binfmt_misc (needs 6.7)"
            ))
        }
    }
    if !root {
        return Some(
            "the shim does not run as root, so it cannot map every id into a user namespace".into(),
        );
    }
    None
}

/// [`crate::host::user_namespace_probe`]'s answer, through the reaper where it runs (it
/// reaps every child of the serving shim).
fn ask_for_user_namespace() -> Result<(), i32> {
    if !crate::reaper::running() {
        return crate::host::try_user_namespace();
    }
    let (_child, exit) = crate::reaper::spawn(&mut crate::host::user_namespace_probe())
        .map_err(|e| e.raw_os_error().unwrap_or(libc::EINVAL))?;
    // A signal shows as 128 + its number, which no errno of unshare(2) reaches.
    match exit.blocking_recv() {
        Ok(exit) if exit.status > 128 => crate::host::user_namespace_answer(None),
        Ok(exit) => crate::host::user_namespace_answer(Some(exit.status)),
        Err(_) => Err(libc::EINTR),
    }
}

/// Why the kernel's errno refusing `unshare(CLONE_NEWUSER)` rules out userns mode.
fn user_namespace_refused(errno: i32) -> String {
    let desc = nix::errno::Errno::from_raw(errno).desc();
    match errno {
        libc::EPERM => format!(
            "the kernel refuses the shim a user namespace ({desc}): containerd runs chrooted, \
             or an LSM or a seccomp filter denies unshare(CLONE_NEWUSER) \
             (`containerd-shim-crossarch-v2 doctor` says which)"
        ),
        libc::ENOSPC => format!(
            "the node is out of user namespaces ({desc}): user.max_user_namespaces is reached"
        ),
        _ => format!("the kernel refuses the shim a user namespace ({desc})"),
    }
}

/// Why `user.max_user_namespaces` (its file's text) rules out user namespaces.
fn user_namespaces_disabled(max_user_namespaces: &str) -> Option<String> {
    (max_user_namespaces.trim() == "0").then(|| {
        "user namespaces are disabled on this node (user.max_user_namespaces = 0)".to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yama_allows_trace_mode_at_0_and_1() {
        assert_eq!(yama_refuses_trace("0\n"), None);
        assert_eq!(yama_refuses_trace("1\n"), None);
        assert!(yama_refuses_trace("2\n")
            .unwrap()
            .contains("ptrace_scope is 2"));
        assert!(yama_refuses_trace("3").unwrap().contains("needs 0 or 1"));
    }

    #[test]
    fn trace_mode_needs_linux_5_5() {
        assert_eq!(trace_kernel_unsupported("5.5.0"), None);
        assert_eq!(trace_kernel_unsupported("6.18.44"), None);
        assert!(trace_kernel_unsupported("5.4.0-150-generic")
            .unwrap()
            .contains("needs 5.5"));
        assert!(trace_kernel_unsupported("4.18.0-553.el8").is_some());
    }

    #[test]
    fn a_user_switch_in_trace_mode_needs_linux_5_9() {
        assert_eq!(trace_user_switch_limit("6.18.44"), None);
        assert_eq!(trace_user_switch_limit("5.9.0"), None);
        // Ubuntu 22.04's, where Yama's ptrace_scope is 1: the init is the ancestor.
        assert_eq!(trace_user_switch_limit("5.15.0-1068-azure"), None);
        let (old, fix) = trace_user_switch_limit("5.8.18").unwrap();
        assert!(old.contains("5.9") && old.contains("gosu"), "{old}");
        assert!(fix.contains("5.9"));
        assert!(trace_user_switch_limit("garbage").is_some());
        let (unknown, _) = trace_user_switch_limit("").unwrap();
        assert!(
            unknown.starts_with("this kernel (its release is unknown)"),
            "{unknown}"
        );
    }

    #[test]
    fn parses_kernel_releases() {
        assert_eq!(kernel_version("6.18.44-fc-v769"), Some((6, 18)));
        assert_eq!(kernel_version("5.10.0-28-amd64"), Some((5, 10)));
        assert_eq!(kernel_version("6.7"), Some((6, 7)));
        assert_eq!(kernel_version("garbage"), None);
        assert!(kernel_version("6.6.1").unwrap() < (6, 7));
    }

    #[test]
    fn a_private_binfmt_misc_needs_linux_6_7_root_and_user_namespaces() {
        assert_eq!(private_binfmt_unsupported("6.18.44", true), None);
        assert!(private_binfmt_unsupported("6.6.30", true)
            .unwrap()
            .contains("needs 6.7"));
        assert!(private_binfmt_unsupported("6.8.0", false)
            .unwrap()
            .contains("not run as root"));
        assert!(user_namespaces_disabled("0\n")
            .unwrap()
            .contains("max_user_namespaces = 0"));
        assert_eq!(user_namespaces_disabled("63229\n"), None);
    }

    #[test]
    fn a_refused_user_namespace_says_why_and_what_to_run() {
        let chroot = user_namespace_refused(libc::EPERM);
        assert!(chroot.contains("chrooted"), "{chroot}");
        assert!(chroot.contains("doctor"), "{chroot}");
        assert!(user_namespace_refused(libc::ENOSPC).contains("max_user_namespaces is reached"));
        assert!(user_namespace_refused(libc::EINVAL).contains("refuses the shim"));
    }

    #[test]
    fn the_qemu_table_follows_its_directory() {
        use std::os::unix::fs::PermissionsExt;
        let node = node();
        if node.host.is_none() || node.runs_natively(Arch::Aarch64) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let dirs = vec![dir.path().to_path_buf()];
        let set_mtime = |secs: u64| {
            std::fs::File::open(dir.path())
                .unwrap()
                .set_modified(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
                .unwrap();
        };
        set_mtime(1_000_000);
        assert!(node.qemu(&dirs, Arch::Aarch64).is_err());

        // A static ELF of the host's machine: a header with no program headers.
        let host = node.host.unwrap().arch;
        use crossarch_route::elf::{Class, Endian};
        if host.elf_class_and_endian() != (Class::Elf64, Endian::Little) {
            return;
        }
        let mut elf = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        elf.extend(2u16.to_le_bytes()); // ET_EXEC
        elf.extend(host.elf_machine().0.to_le_bytes());
        elf.extend(1u32.to_le_bytes()); // e_version
        elf.extend([0u8; 8]); // e_entry
        elf.extend(64u64.to_le_bytes()); // e_phoff
        elf.extend([0u8; 8 + 4]); // e_shoff, e_flags
        elf.extend(64u16.to_le_bytes()); // e_ehsize
        elf.extend(56u16.to_le_bytes()); // e_phentsize
        elf.extend([0u8; 8]); // e_phnum, e_shentsize, e_shnum, e_shstrndx
        let path = dir
            .path()
            .join(&crossarch_route::qemu::file_names(Arch::Aarch64)[0]);
        std::fs::write(&path, &elf).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        set_mtime(1_000_000);
        assert!(
            node.qemu(&dirs, Arch::Aarch64).is_err(),
            "an unchanged directory is not probed again"
        );
        set_mtime(2_000_000);
        assert_eq!(node.qemu(&dirs, Arch::Aarch64).unwrap().path, path);

        std::fs::remove_file(&path).unwrap();
        set_mtime(3_000_000);
        assert!(
            node.qemu(&dirs, Arch::Aarch64).is_err(),
            "a removed qemu is gone"
        );
    }
}
