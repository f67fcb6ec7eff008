//! One exec: what the process is about to execute, and, when it is foreign, the exec of qemu
//! that replaces it. [`plan`] only reads the process; [`apply`] writes the plan into it.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crossarch_rootfs::Root;
use crossarch_route::arch::Arch;
use crossarch_route::plan;
use crossarch_route::resolve::Resolved;

use super::filter::QEMU_EXEC;
use super::memory::{self, Arg, Memory};
use super::regs::{self, Regs};

/// The kernel's limits: a path, one argument string, and (far above what ARG_MAX lets
/// through) the number of arguments init will read.
pub(super) const PATH_MAX: usize = 4096;
pub(super) const ARG_MAX_STRLEN: usize = 128 * 1024;
pub(super) const MAX_ARGS: usize = 1 << 18;

/// The exec syscall as the tracee made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    /// `execveat`'s directory (None: AT_FDCWD, and always for `execve`).
    pub dirfd: Option<i32>,
    pub path: u64,
    pub argv: u64,
    pub envp: u64,
    /// `execveat`'s flags.
    pub flags: i32,
    pub at: bool,
}

impl Call {
    /// The exec syscall `nr` with arguments `args`; None for any other syscall.
    pub fn new(nr: u64, args: [u64; 6]) -> Option<Call> {
        // The kernel (and seccomp) take the number's low 32 bits.
        let nr = nr as u32;
        if nr == libc::SYS_execve as u32 {
            Some(Call {
                dirfd: None,
                path: args[0],
                argv: args[1],
                envp: args[2],
                flags: 0,
                at: false,
            })
        } else if nr == libc::SYS_execveat as u32 {
            let dirfd = args[0] as i32;
            Some(Call {
                dirfd: (dirfd != libc::AT_FDCWD).then_some(dirfd),
                path: args[1],
                argv: args[2],
                envp: args[3],
                flags: args[4] as i32,
                at: true,
            })
        } else {
            None
        }
    }

    /// The exec a held thread is about to restart, from its registers.
    pub fn restarted(regs: &Regs, tid: libc::pid_t) -> Option<Call> {
        if !regs.restarting(tid) {
            return None;
        }
        Call::new(regs.syscall(), std::array::from_fn(|i| regs.arg(i)))
    }
}

/// The exec of qemu that replaces a foreign one.
#[derive(Debug)]
pub struct Rewrite {
    /// The foreign program, as the process's root has it (for messages).
    pub target: Vec<u8>,
    /// qemu's path as the process sees it.
    qemu: Vec<u8>,
    argv: Vec<Arg>,
}

/// `host_path`, a path as init sees it, as the tracee whose root init sees at `root` sees
/// it; None when it is outside that root.
pub fn in_tracee_root(root: &[u8], host_path: &[u8]) -> Option<Vec<u8>> {
    if root == b"/" {
        return Some(host_path.to_vec());
    }
    let rest = host_path.strip_prefix(root)?;
    match rest {
        [] => Some(b"/".to_vec()),
        [b'/', ..] => Some(rest.to_vec()),
        _ => None,
    }
}

/// The absolute path, in the tracee's root, that the exec names: `path` against `base` (the
/// cwd, or `execveat`'s directory), or the directory's file itself for AT_EMPTY_PATH.
pub fn target(path: &[u8], base: &[u8], empty_path: bool) -> Vec<u8> {
    if path.is_empty() && empty_path {
        return base.to_vec();
    }
    if path.starts_with(b"/") {
        return path.to_vec();
    }
    let mut out = base.to_vec();
    if !out.ends_with(b"/") {
        out.push(b'/');
    }
    out.extend_from_slice(path);
    out
}

fn readlink(path: &str) -> std::io::Result<Vec<u8>> {
    std::fs::read_link(path).map(|p| p.into_os_string().into_encoded_bytes())
}

fn errno(e: &std::io::Error) -> &'static str {
    nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)).desc()
}

/// The kernel refused init the process's memory or /proc files: it runs as another user (or
/// made itself non-dumpable), and init has no CAP_SYS_PTRACE.
#[derive(Debug, PartialEq, Eq)]
pub struct Denied;

/// Whether an error is the kernel's ptrace access check refusing.
fn denied(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES))
}

/// What the exec `call` of `tid` runs instead: None when it goes on as it is, because the
/// target is native, not emulated here, or anything about it unreadable (the kernel then
/// decides, and refuses what it cannot run). Err only when the kernel refused init the
/// process (that is told).
pub fn plan(qemu_dir: &Path, tid: libc::pid_t, call: &Call) -> Result<Option<Rewrite>, Denied> {
    let memory = Memory::Of(tid);
    // Until it is known to be foreign, anything unreadable is the kernel's to refuse, but a
    // refused access check means no exec of that process can be emulated: that is said.
    let path = match memory::read_cstr(memory, call.path, PATH_MAX) {
        Ok(path) => path,
        Err(e) if denied(&e) => return Err(Denied),
        Err(_) => return Ok(None),
    };
    let Ok(argv) = memory::read_pointers(memory, call.argv, MAX_ARGS) else {
        return Ok(None);
    };
    let root_link = match readlink(&format!("/proc/{tid}/root")) {
        Ok(link) => link,
        Err(e) if denied(&e) => return Err(Denied),
        Err(_) => return Ok(None),
    };
    let view =
        |link: std::io::Result<Vec<u8>>| link.ok().and_then(|l| in_tracee_root(&root_link, &l));
    let Some(cwd) = view(readlink(&format!("/proc/{tid}/cwd"))) else {
        return Ok(None);
    };
    let empty_path = call.flags & libc::AT_EMPTY_PATH != 0;
    let base = match call.dirfd {
        // The kernel ignores the directory of an absolute path.
        Some(fd) if call.at && !path.starts_with(b"/") => {
            match view(readlink(&format!("/proc/{tid}/fd/{fd}"))) {
                Some(dir) => dir,
                None => return Ok(None),
            }
        }
        _ => cwd.clone(),
    };
    let target = target(&path, &base, empty_path);
    let Ok(cwd) = String::from_utf8(cwd) else {
        return Ok(None);
    };

    let Ok(root) = Root::open(format!("/proc/{tid}/root")) else {
        return Ok(None);
    };
    let Some((resolved, name)) = foreign(qemu_dir, &root, &target, &cwd) else {
        return Ok(None);
    };
    let qemu = qemu_for(qemu_dir, &name, &root_link);

    let argv0 = match argv.first() {
        Some(&at) => match memory::read_cstr(memory, at, ARG_MAX_STRLEN) {
            Ok(s) => vec![String::from_utf8_lossy(&s).into_owned()],
            Err(_) => return Ok(None),
        },
        None => Vec::new(),
    };
    let wrapped = plan::wrapped_argv(&String::from_utf8_lossy(&qemu), &resolved, &argv0);
    let argv = wrapped
        .into_iter()
        .map(|s| Arg::New(s.into_bytes()))
        .chain(argv.iter().skip(1).map(|&p| Arg::Old(p)))
        .collect();
    Ok(Some(Rewrite { target, qemu, argv }))
}

/// The program that `target` (an absolute path in `root`) runs, and the name of the qemu in
/// `qemu_dir` that runs it, when it is foreign and emulated here. None leaves the exec to the
/// kernel: native, not emulated on this node, or unreadable.
pub fn foreign(
    qemu_dir: &Path,
    root: &Root,
    target: &[u8],
    cwd: &str,
) -> Option<(Resolved, String)> {
    let candidate = PathBuf::from(OsStr::from_bytes(target));
    let resolved = crossarch_rootfs::in_root(root, &[candidate], cwd).ok()?;
    let arch = Arch::from_elf(&resolved.elf).ok()?;
    if Some(arch) == Arch::host() {
        return None;
    }
    let name = plan::qemu_file_name(arch);
    qemu_dir.join(&name).is_file().then_some((resolved, name))
}

/// Writes `rewrite` below the stack of the held thread `tid` and points `regs` (its
/// registers, set by the caller) at it, in place of `call`: an `execveat` of qemu marked
/// [`QEMU_EXEC`], which the filter lets through.
pub fn apply(
    tid: libc::pid_t,
    regs: &mut Regs,
    call: &Call,
    rewrite: &Rewrite,
) -> Result<(), String> {
    let block = memory::layout(
        regs.sp(),
        regs::RED_ZONE + 128,
        &rewrite.qemu,
        &rewrite.argv,
    )
    .ok_or_else(|| format!("no room below the stack of {tid}"))?;
    memory::write(Memory::Of(tid), block.base, &block.bytes).map_err(|e| {
        format!(
            "cannot write the qemu exec of {} below the stack of {tid}: {}",
            String::from_utf8_lossy(&rewrite.target),
            errno(&e)
        )
    })?;
    // The environment stays where the program had it.
    let envp = call.envp;
    regs.set_syscall(libc::SYS_execveat as u64);
    regs.set_arg(0, QEMU_EXEC as i64 as u64);
    regs.set_arg(1, block.filename);
    regs.set_arg(2, block.argv);
    regs.set_arg(3, envp);
    regs.set_arg(4, 0);
    Ok(())
}

/// The qemu's path as the tracee sees it: init's own path when they share a root, and
/// through `/proc/<init>/root` when the tracee has chrooted (a package's maintainer
/// script, debootstrap's second stage) and needs its own /proc for it.
fn qemu_for(qemu_dir: &Path, name: &str, root_link: &[u8]) -> Vec<u8> {
    let path = qemu_dir.join(name);
    if root_link == b"/" {
        return path.into_os_string().into_encoded_bytes();
    }
    let mut through = format!("/proc/{}/root", std::process::id()).into_bytes();
    through.extend_from_slice(path.as_os_str().as_bytes());
    through
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_seen_from_the_tracees_root() {
        assert_eq!(in_tracee_root(b"/", b"/a/b").unwrap(), b"/a/b");
        assert_eq!(in_tracee_root(b"/target", b"/target/a").unwrap(), b"/a");
        assert_eq!(in_tracee_root(b"/target", b"/target").unwrap(), b"/");
        assert_eq!(in_tracee_root(b"/target", b"/targetx/a"), None);
        assert_eq!(in_tracee_root(b"/target", b"/etc"), None);
    }

    #[test]
    fn the_target_is_the_path_against_its_base() {
        assert_eq!(target(b"/bin/sh", b"/home", false), b"/bin/sh");
        assert_eq!(target(b"./x", b"/home", false), b"/home/./x");
        assert_eq!(target(b"x", b"/", false), b"/x");
        assert_eq!(target(b"", b"/bin/sh", true), b"/bin/sh");
        assert_eq!(target(b"", b"/bin", false), b"/bin/");
    }
}
