//! Reads of the host's own files that the decisions depend on: what the kernel runs natively,
//! and the qemu binaries in the configured directories. What they mean is decided in the
//! route crate ([`arch::ia32_enabled`], [`qemu::from_prefix`], [`qemu::choose`]); `facts`
//! decides when to read them again.

use std::{
    io::Read,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use crossarch_route::{
    arch::{self, Arch, Host, HostFacts},
    elf,
    qemu::{self, Candidate, Inspection, NotFound, Qemu},
};

/// The running host, or `None` on an architecture crossarch does not know.
pub fn detect() -> Option<Host> {
    let arch = Arch::host()?;
    Some(Host {
        arch,
        facts: facts(arch),
    })
}

/// Probes the running kernel. Errs on the side of "not native": wrongly routing a binary
/// through qemu only costs speed, wrongly running it natively fails with ENOEXEC.
///
/// - x86_64: `/proc/sys/abi/vsyscall32` exists only when the kernel was built with
///   `CONFIG_IA32_EMULATION`; since 6.7 it can still be switched off with `ia32_emulation=0`
///   on the command line, or off by default (`CONFIG_IA32_EMULATION_DEFAULT_DISABLED`, read
///   from `/boot/config-<release>` when that file exists; `/proc/config.gz` is not
///   decompressed).
/// - aarch64: arm (32-bit) runs natively where the kernel has `CONFIG_COMPAT` and the CPUs
///   have AArch32 EL0 (Neoverse N1 parts have it, many newer server cores have none), which
///   the kernel answers through `personality(PER_LINUX32)` ([`aarch32_el0`]).
/// - Other hosts: no compat32.
fn facts(host: Arch) -> HostFacts {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let compat32 = match host {
        Arch::X86_64 => {
            let release = read("/proc/sys/kernel/osrelease").unwrap_or_default();
            let config = read(&format!("/boot/config-{}", release.trim()));
            arch::ia32_enabled(
                Path::new("/proc/sys/abi/vsyscall32").exists(),
                &read("/proc/cmdline").unwrap_or_default(),
                config.as_deref(),
            )
        }
        Arch::Aarch64 => aarch32_el0(),
        _ => false,
    };
    HostFacts { compat32 }
}

/// Whether an arm64 kernel runs AArch32 binaries. Its `personality(2)` refuses `PER_LINUX32`
/// with EINVAL exactly when `system_supports_32bit_el0()` is false, the test its ELF loader
/// applies to arm binaries (`compat_elf_check_arch`): no `CONFIG_COMPAT`, or no CPU with
/// AArch32 EL0 (on a system where only some CPUs have it, the kernel allows it only with
/// `allow_mismatched_32bit_el0`, and then runs 32-bit tasks on those CPUs). The
/// `/sys/devices/system/cpu/aarch32_el0` list exists only in that mismatched case.
///
/// The persona is the calling thread's; it is put back at once.
fn aarch32_el0() -> bool {
    // <linux/personality.h>; the libc crate does not name them.
    const PER_LINUX32: libc::c_ulong = 0x0008;
    const PER_MASK: libc::c_ulong = 0x00ff;
    const QUERY: libc::c_ulong = 0xffff_ffff;
    // SAFETY: personality(2) only reads and sets this thread's execution domain.
    unsafe {
        let current = libc::personality(QUERY);
        if current < 0 {
            return false;
        }
        let current = current as libc::c_ulong;
        if libc::personality((current & !PER_MASK) | PER_LINUX32) < 0 {
            return false;
        }
        libc::personality(current);
    }
    true
}

/// What is at `path` on the host (following symlinks, as exec would).
pub fn inspect(path: &Path) -> Inspection {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Inspection::Missing,
        Err(e) => return Inspection::Unusable(format!("cannot be read ({e})")),
    };
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Inspection::NotExecutableFile;
    }
    let mut prefix = Vec::with_capacity(elf::PREFIX_LEN);
    let read = std::fs::File::open(path)
        .and_then(|f| f.take(elf::PREFIX_LEN as u64).read_to_end(&mut prefix));
    if let Err(e) = read {
        return Inspection::Unusable(format!("cannot be read ({e})"));
    }
    qemu::from_prefix(&prefix)
}

/// Finds qemu for `arch` in `dirs` on this host; when there is none, the error names the
/// package this distribution ships it in.
pub fn discover_qemu(dirs: &[PathBuf], arch: Arch, host: Arch) -> Result<Qemu, NotFound> {
    let inspected: Vec<Candidate> = qemu::candidates(dirs, arch)
        .into_iter()
        .map(|path| Candidate {
            inspection: inspect(&path),
            path,
        })
        .collect();
    qemu::choose(arch, host, dirs, &inspected).map_err(|mut e| {
        e.package = qemu_package();
        e
    })
}

/// The package that provides static qemu-user here, from `/etc/os-release` (read once).
pub fn qemu_package() -> &'static str {
    static PACKAGE: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    PACKAGE.get_or_init(|| {
        // os-release(5): /etc/os-release, else /usr/lib/os-release.
        let text = std::fs::read_to_string("/etc/os-release")
            .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
            .unwrap_or_default();
        qemu::package_for(&text)
    })
}

/// A file's (device, inode), following symlinks: what tells two roots apart.
pub fn file_id(path: &str) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// A kernel or LSM setting, trimmed, or `None` when the file does not exist (the feature is
/// not built in or not enabled).
pub fn setting(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// A child that tries `unshare(CLONE_NEWUSER)`, as runc does for a foreign container in
/// userns mode, and exits with 0 or the errno. This is the kernel's own answer, covering
/// every reason it refuses (a chroot, `max_user_namespaces`, an LSM, seccomp).
///
/// The child exits before it would exec, so neither a program nor /dev/null has to exist (a
/// bare chroot may hold neither), and spawning it never fails for the answer: std reaps a
/// child whose pre-exec step failed itself, which would race the serving shim's reaper.
pub fn user_namespace_probe() -> std::process::Command {
    let mut child = std::process::Command::new("/");
    then_try_user_namespace(&mut child);
    child
}

/// Makes `child` try `unshare(CLONE_NEWUSER)` after its other pre-exec steps, and exit.
fn then_try_user_namespace(child: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: unshare(2) and _exit(2) are plain syscalls, safe between fork and exec; the
    // child is single-threaded, as CLONE_NEWUSER requires.
    unsafe {
        child.pre_exec(|| {
            let code = match nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER) {
                Ok(()) => 0,
                Err(errno) => errno as i32,
            };
            libc::_exit(code)
        });
    }
}

/// The kernel's answer from [`user_namespace_probe`]'s exit code (`None`: killed): `Ok`, or
/// the errno it refused with.
pub fn user_namespace_answer(code: Option<i32>) -> Result<(), i32> {
    match code {
        Some(0) => Ok(()),
        Some(errno) => Err(errno),
        None => Err(libc::EINTR),
    }
}

/// [`user_namespace_probe`] for a process without the shim's reaper (`doctor`).
pub fn try_user_namespace() -> Result<(), i32> {
    match user_namespace_probe().status() {
        Ok(status) => user_namespace_answer(status.code()),
        Err(e) => Err(e.raw_os_error().unwrap_or(libc::EINVAL)),
    }
}

/// The step of [`try_private_binfmt`] that the kernel refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinfmtStep {
    /// unshare(CLONE_NEWUSER | CLONE_NEWNS).
    UserNamespace,
    /// Writing its uid_map, gid_map or setgroups.
    IdMaps,
    /// The process was still in the initial user namespace: nothing was mounted.
    NotPrivate,
    /// fsopen, fsconfig or fsmount of binfmt_misc.
    Mount,
    /// Opening or writing `register`.
    Register,
    /// The registered entry was not there afterwards.
    Readback,
}

const BINFMT_STEPS: [BinfmtStep; 6] = [
    BinfmtStep::UserNamespace,
    BinfmtStep::IdMaps,
    BinfmtStep::NotPrivate,
    BinfmtStep::Mount,
    BinfmtStep::Register,
    BinfmtStep::Readback,
];

/// The entry [`try_private_binfmt`] registers: a magic no file has, run by `interpreter`
/// (opened at registration, flag F, as crossarch registers qemu).
pub fn probe_registration(interpreter: &Path) -> String {
    format!(
        ":crossarch-doctor-probe:M::CROSSARCH-DOCTOR-PROBE::{}:F",
        interpreter.display()
    )
}

/// Does what a foreign container's private binfmt_misc needs, in a child that makes a user
/// and a mount namespace of its own: mount a binfmt_misc there (that user namespace's
/// instance, never the host's: the child checks it left the initial user namespace first),
/// register [`probe_registration`] and read it back. The instance goes with the child. An
/// AppArmor or SELinux policy, a seccomp filter or an old kernel (< 6.7) refuses one of the
/// steps; the error is the step and the errno.
pub fn try_private_binfmt(interpreter: &Path) -> Result<(), (BinfmtStep, i32)> {
    use std::os::{fd::AsRawFd, unix::process::CommandExt};
    let c = |s: &str| std::ffi::CString::new(s).map_err(|_| (BinfmtStep::Register, libc::EINVAL));
    let line = probe_registration(interpreter);
    // Everything the child uses is made here: after fork it only makes system calls.
    let strings = [
        c("/proc/self/setgroups")?,
        c("/proc/self/gid_map")?,
        c("/proc/self/uid_map")?,
        c("/proc/self/ns/user")?,
        c("binfmt_misc")?,
        c("register")?,
        c("crossarch-doctor-probe")?,
    ];
    let line = c(&line)?;
    let (report_r, report_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| (BinfmtStep::UserNamespace, e as i32))?;
    let w = report_w.as_raw_fd();
    let mut child = std::process::Command::new("/");
    // SAFETY: the closure runs in the forked child and only makes system calls on the
    // strings made above and on its own descriptors, then exits; it never returns to exec.
    unsafe {
        child.pre_exec(move || {
            let [setgroups, gid_map, uid_map, userns, fstype, register, entry] = &strings;
            let fail = |step: usize| -> ! {
                let errno = *libc::__errno_location();
                let mut msg = [0u8; 5];
                msg[0] = step as u8;
                msg[1..].copy_from_slice(&errno.to_le_bytes());
                libc::write(w, msg.as_ptr().cast(), msg.len());
                libc::_exit(1)
            };
            let write_file = |path: &std::ffi::CString, text: &[u8]| {
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                fd >= 0 && libc::write(fd, text.as_ptr().cast(), text.len()) == text.len() as isize
            };
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) != 0 {
                fail(0);
            }
            if !write_file(setgroups, b"deny")
                || !write_file(gid_map, b"0 0 1")
                || !write_file(uid_map, b"0 0 1")
            {
                fail(1);
            }
            let mut st: libc::stat = std::mem::zeroed();
            if libc::stat(userns.as_ptr(), &mut st) != 0 || st.st_ino == 0xEFFF_FFFD {
                fail(2);
            }
            let mnt = crate::sys::detached_mount_raw(fstype, 0);
            if mnt < 0 {
                fail(3);
            }
            let reg = libc::openat(
                mnt as i32,
                register.as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC,
            );
            let bytes = line.as_bytes();
            if reg < 0
                || libc::write(reg, bytes.as_ptr().cast(), bytes.len()) != bytes.len() as isize
            {
                fail(4);
            }
            if libc::faccessat(mnt as i32, entry.as_ptr(), libc::F_OK, 0) != 0 {
                fail(5);
            }
            libc::_exit(0)
        });
    }
    let status = child.status().map_err(|e| {
        (
            BinfmtStep::UserNamespace,
            e.raw_os_error().unwrap_or(libc::EINVAL),
        )
    })?;
    drop(report_w);
    let mut msg = Vec::new();
    let _ = std::fs::File::from(report_r).read_to_end(&mut msg);
    match (status.code(), msg.as_slice()) {
        (Some(0), _) => Ok(()),
        (_, [step, e @ ..]) if e.len() == 4 => {
            let step = BINFMT_STEPS
                .get(*step as usize)
                .copied()
                .unwrap_or(BinfmtStep::Register);
            Err((step, i32::from_le_bytes([e[0], e[1], e[2], e[3]])))
        }
        _ => Err((BinfmtStep::UserNamespace, libc::ECHILD)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_refuses_a_user_namespace_to_a_chrooted_process() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED: not root");
            return;
        }
        assert_eq!(
            try_user_namespace(),
            Ok(()),
            "this host allows user namespaces"
        );
        // The probe, from a child chrooted into a directory that holds nothing: what a
        // chrooted containerd's shim meets.
        let root = tempfile::tempdir().unwrap();
        let mut probe = std::process::Command::new("/");
        let dir = std::ffi::CString::new(root.path().as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: chroot(2) is a plain syscall; it runs before the probe's own step.
        unsafe {
            use std::os::unix::process::CommandExt;
            probe.pre_exec(move || {
                if libc::chroot(dir.as_ptr()) != 0 {
                    libc::_exit(200);
                }
                Ok(())
            });
        }
        then_try_user_namespace(&mut probe);
        let status = probe.status().unwrap();
        assert_eq!(
            user_namespace_answer(status.code()),
            Err(libc::EPERM),
            "{status}"
        );
    }

    #[test]
    fn inspects_real_host_files() {
        // This test binary is dynamic on glibc hosts, static on musl; either way it is an ELF.
        let me = inspect(&std::env::current_exe().unwrap());
        assert!(
            matches!(me, Inspection::Dynamic { .. } | Inspection::Static(Ok(_))),
            "{me:?}"
        );
        assert_eq!(inspect(Path::new("/nonexistent/qemu")), Inspection::Missing);
        assert_eq!(inspect(Path::new("/")), Inspection::NotExecutableFile);
    }

    #[test]
    fn the_aarch32_probe_puts_the_persona_back() {
        // SAFETY: a query of this thread's persona.
        let before = unsafe { libc::personality(0xffff_ffff) };
        let accepted = aarch32_el0();
        // SAFETY: as above.
        assert_eq!(unsafe { libc::personality(0xffff_ffff) }, before);
        // An x86_64 kernel takes PER_LINUX32 too (setarch linux32); on arm64 it is the answer.
        if cfg!(target_arch = "x86_64") {
            assert!(accepted);
        }
    }

    #[test]
    fn installed_qemu_user_static_is_found_when_present() {
        let host = Arch::host().unwrap();
        let target = if host == Arch::Aarch64 {
            Arch::X86_64
        } else {
            Arch::Aarch64
        };
        let path = Path::new("/usr/bin").join(format!("qemu-{}-static", target.qemu_name()));
        if !path.exists() {
            eprintln!("skipping: {} is not installed", path.display());
            return;
        }
        let q = discover_qemu(&qemu::default_dirs(), target, host).unwrap();
        assert_eq!(q.path, path);
    }
}
