//! The first exec after a process has switched to another user, which init can no longer
//! read or attach to: the kernel made the process non-dumpable at the switch, and init holds
//! no CAP_SYS_PTRACE. So init keeps, at each `setuid` and its kin (which the filter makes
//! wait for init, while the process is still root), that process's `/proc/PID/mem`
//! ([`Switching`]). At the process's next exec init hands it over: it puts a sealed memfd
//! into the process (SECCOMP_IOCTL_NOTIF_ADDFD) that holds a `#!` line naming init with
//! `--exec=DIR`, the exec's path and argv[0], and overwrites the exec's path with
//! `/dev/fd/N`, the memfd. The kernel then starts init in that process, as that user, with
//! the rest of the exec's arguments ([`run`]), and init resolves the path as the process
//! sees it and execs the program, or qemu for a foreign one.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;

use super::exec::{self, Call};
use super::filter::QEMU_EXEC;
use super::handed::{fd_in, parse, script, Handed};
use super::listener;
use super::memory::{self, Memory};
use super::owner;
use crate::complain;

/// A process, told from a later one with its pid by its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    tgid: libc::pid_t,
    start: u64,
}

impl Identity {
    fn of(tid: libc::pid_t) -> Option<Identity> {
        let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
        let tgid = owner::status_field(&status, "Tgid:")?.parse().ok()?;
        Some(Identity {
            tgid,
            start: start_time(tgid)?,
        })
    }

    fn alive(&self) -> bool {
        start_time(self.tgid) == Some(self.start)
    }
}

/// Field 22 of `/proc/PID/stat`, counted after the command's closing parenthesis.
fn start_time(pid: libc::pid_t) -> Option<u64> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether `tid` may share its memory with its parent, which waits in the clone that made
/// it (vfork, posix_spawn, Go's os/exec): writing the exec's path there would change the
/// parent's. So does an unreadable parent.
fn vforked(tid: libc::pid_t) -> bool {
    let ppid = std::fs::read_to_string(format!("/proc/{tid}/status"))
        .ok()
        .and_then(|s| owner::status_field(&s, "PPid:"));
    let Some(syscall) =
        ppid.and_then(|p| std::fs::read_to_string(format!("/proc/{p}/syscall")).ok())
    else {
        return true;
    };
    let nr = syscall
        .split_whitespace()
        .next()
        .and_then(|n| n.parse::<i64>().ok());
    #[cfg(target_arch = "x86_64")]
    let cloning = [libc::SYS_clone, libc::SYS_clone3, libc::SYS_vfork];
    #[cfg(not(target_arch = "x86_64"))]
    let cloning = [libc::SYS_clone, libc::SYS_clone3];
    nr.is_some_and(|nr| cloning.contains(&nr))
}

/// The memories of processes that asked to change their ids, opened while init could.
#[derive(Default)]
pub struct Switching {
    entries: Vec<(Identity, OwnedFd)>,
}

/// At most this many are kept (the oldest goes first): a process switches and execs within
/// moments, and one that never execs must not make init keep descriptors without end.
const KEPT: usize = 32;

impl Switching {
    /// At a `setuid` or its kin by `tid`, before the kernel has done it: keeps the process's
    /// memory if init may open it, that is, while it is still init's user and dumpable, and
    /// it shares init's root (a chrooted process would not see init at its path).
    pub fn note(&mut self, tid: libc::pid_t) {
        let Some(id) = Identity::of(tid) else {
            return;
        };
        if vforked(tid) {
            return;
        }
        if std::fs::read_link(format!("/proc/{tid}/root"))
            .ok()
            .as_deref()
            != Some(Path::new("/"))
        {
            return;
        }
        let Ok(mem) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/proc/{tid}/mem"))
        else {
            return;
        };
        self.entries.retain(|(kept, _)| *kept != id && kept.alive());
        if self.entries.len() == KEPT {
            self.entries.remove(0);
        }
        self.entries.push((id, mem.into()));
    }

    /// The memory kept for the process of `tid`. It stays kept until the process is handed
    /// over: an exec that fails (a search along PATH) is followed by another.
    fn find(&self, tid: libc::pid_t) -> Option<(Identity, RawFd)> {
        let id = Identity::of(tid)?;
        let (_, mem) = self.entries.iter().find(|(kept, _)| *kept == id)?;
        Some((id, mem.as_raw_fd()))
    }

    fn forget(&mut self, id: Identity) {
        self.entries.retain(|(kept, _)| *kept != id);
    }

    /// At an exec of `tid` that init answers as any other: the memory kept for its process
    /// is not its memory any more once that exec is done, and may be another process's that
    /// shared it (`CLONE_VM`).
    pub fn exec_seen(&mut self, tid: libc::pid_t) {
        if self.entries.is_empty() {
            return;
        }
        if let Some(id) = Identity::of(tid) {
            self.forget(id);
        }
    }
}

/// What became of an exec init could not read.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It now starts init in the process: it goes on.
    Handed,
    /// Its file does not exist: it fails with this errno, as the kernel would fail it, so
    /// that a search along PATH goes on to the next directory.
    Fails(Errno),
    /// It goes on as it is (no memory kept for it, an exec relative to a directory
    /// descriptor, no `/dev/fd`, a kernel without ADDFD).
    AsItIs,
}

/// Hands the exec `call` of `tid` (notification `id` on `listener`) over to init started in
/// that process, as described above.
pub fn hand_over(
    switching: &mut Switching,
    init: &[u8],
    qemu_dir: &Path,
    listener: RawFd,
    id: u64,
    tid: libc::pid_t,
    call: &Call,
) -> Outcome {
    if call.at && (call.dirfd.is_some() || call.flags != 0) {
        return Outcome::AsItIs;
    }
    let Some((process, mem)) = switching.find(tid) else {
        return Outcome::AsItIs;
    };
    let memory = Memory::Opened(mem);
    let Some((handed, argv)) = read_exec(memory, tid, call) else {
        // Its memory is gone (it has exec'd since), or the exec has no argv[0].
        switching.forget(process);
        return Outcome::AsItIs;
    };
    // Paths that name the process's own descriptors or /proc files mean something else to
    // init, and an fexecve of a close-on-exec descriptor would lose it to the hand-over.
    if [&b"/proc/"[..], b"/dev/fd/", b"/dev/std"]
        .iter()
        .any(|p| handed.path.starts_with(p))
    {
        return Outcome::AsItIs;
    }
    // The process shares init's root (see `note`), so its absolute paths are init's.
    if handed.path.starts_with(b"/") {
        if let Err(err) = std::fs::metadata(OsStr::from_bytes(&handed.path)) {
            match err.raw_os_error() {
                Some(errno @ (libc::ENOENT | libc::ENOTDIR)) => {
                    return Outcome::Fails(Errno::from_raw(errno))
                }
                _ => return Outcome::AsItIs,
            }
        }
    }
    if !Path::new("/dev/fd/").is_dir() || !room_for_path(memory, call, &handed, &argv) {
        return Outcome::AsItIs;
    }
    let bytes = script(init, qemu_dir.as_os_str().as_bytes(), &handed);
    let memfd = match sealed_memfd(&bytes) {
        Ok(fd) => fd,
        Err(err) => {
            complain!(
                "warning: trace mode: cannot hand the exec of {} over: memfd: {err}",
                String::from_utf8_lossy(&handed.path)
            );
            return Outcome::AsItIs;
        }
    };
    let fd = match listener::add_fd(listener, id, memfd.as_raw_fd()) {
        Ok(fd) if fd < 1000 => fd,
        _ => return Outcome::AsItIs,
    };
    let path = format!("/dev/fd/{fd}\0");
    if listener::valid(listener, id) && memory::write(memory, call.path, path.as_bytes()).is_ok() {
        switching.forget(process);
        Outcome::Handed
    } else {
        Outcome::AsItIs
    }
}

/// The exec's path and argv[0], and its argv pointers.
fn read_exec(memory: Memory, tid: libc::pid_t, call: &Call) -> Option<(Handed, Vec<u64>)> {
    let path = memory::read_cstr(memory, call.path, exec::PATH_MAX).ok()?;
    let argv = memory::read_pointers(memory, call.argv, exec::MAX_ARGS).ok()?;
    let argv0 = memory::read_cstr(memory, *argv.first()?, exec::ARG_MAX_STRLEN).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    let ignored = u64::from_str_radix(&owner::status_field(&status, "SigIgn:")?, 16).ok()?;
    let handed = Handed {
        path,
        argv0,
        sigpipe_ignored: ignored & (1 << (libc::SIGPIPE - 1)) != 0,
    };
    Some((handed, argv))
}

/// The longest path init writes, `/dev/fd/N` for N below 1000, with its NUL.
const NEW_PATH_MAX: u64 = "/dev/fd/999".len() as u64 + 1;

/// Whether `/dev/fd/N` can be written over the exec's path: the bytes it covers must hold
/// nothing else this exec reads (the arrays of its argv and environment, their strings but
/// argv[0], which the kernel drops for a `#!` script), and, where the path is shorter, be
/// mapped, so that the write is whole. Past a shorter path they may hold the process's other
/// data: that matters only if this exec failed, and it is made to a static init and a memfd
/// that exist.
fn room_for_path(memory: Memory, call: &Call, handed: &Handed, argv: &[u64]) -> bool {
    let Some(last) = call.path.checked_add(NEW_PATH_MAX) else {
        return false;
    };
    let mut bytes = [0u8; NEW_PATH_MAX as usize];
    if memory::read(memory, call.path, &mut bytes).is_err()
        && handed.path.len() as u64 + 1 < NEW_PATH_MAX
    {
        return false;
    }
    let Ok(envp) = memory::read_pointers(memory, call.envp, exec::MAX_ARGS) else {
        return false;
    };
    let overlaps = |start: u64, len: u64| start < last && start.saturating_add(len) > call.path;
    let array = |at: u64, n: usize| overlaps(at, (n as u64 + 1) * 8);
    if array(call.argv, argv.len()) || array(call.envp, envp.len()) {
        return false;
    }
    argv.iter().skip(1).chain(&envp).all(|&s| {
        memory::read_cstr(memory, s, exec::ARG_MAX_STRLEN)
            .is_ok_and(|string| !overlaps(s, string.len() as u64 + 1))
    })
}

/// A memfd holding `bytes`, sealed against any change, executable.
fn sealed_memfd(bytes: &[u8]) -> io::Result<OwnedFd> {
    let name = c"crossarch-exec";
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // MFD_EXEC, where vm.memfd_noexec would otherwise make it unexecutable (Linux 6.3);
    // older kernels refuse the flag and make every memfd executable.
    // SAFETY: a valid name and integer flags.
    let mut fd = unsafe { libc::memfd_create(name.as_ptr(), flags | libc::MFD_EXEC) };
    if fd < 0 && Errno::last() == Errno::EINVAL {
        // SAFETY: as above.
        fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    }
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor, ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let file = std::fs::File::from(fd);
    io::Write::write_all(&mut &file, bytes)?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: integer arguments.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(file.into())
}

extern "C" {
    static environ: *const *const libc::c_char;
}

/// Init as the handed-over program's process (`--exec=DIR SCRIPT ARGS...`, from the `#!`
/// line): reads the exec back from SCRIPT (`/dev/fd/N`), closes it, and execs the program
/// as the process sees it, through the qemu in DIR when it is foreign. Returns only on
/// failure, with the exit code.
pub fn run(qemu_dir: &Path, script: &OsStr, args: &[std::ffi::OsString]) -> i32 {
    let Some(fd) = fd_in(script.as_bytes()) else {
        complain!("--exec is init's own, for trace mode");
        return 2;
    };
    let mut bytes = vec![0u8; 2 * exec::PATH_MAX + 2 * exec::ARG_MAX_STRLEN];
    // SAFETY: reads at most the buffer's length into it.
    let n = unsafe { libc::pread(fd, bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    let handed = usize::try_from(n).ok().and_then(|n| parse(&bytes[..n]));
    let Some(handed) = handed else {
        complain!("--exec is init's own, for trace mode");
        return 2;
    };
    // SAFETY: the descriptor the kernel ran us from, which the program must not see.
    unsafe { libc::close(fd) };
    let disposition = if handed.sigpipe_ignored {
        libc::SIG_IGN
    } else {
        libc::SIG_DFL
    };
    // SAFETY: a valid signal and disposition.
    unsafe { libc::signal(libc::SIGPIPE, disposition) };

    let err = exec_handed(qemu_dir, &handed, args);
    complain!(
        "cannot run {}: {}",
        String::from_utf8_lossy(&handed.path),
        err.desc()
    );
    crate::exit::exec_failure_code(err)
}

fn exec_handed(qemu_dir: &Path, handed: &Handed, args: &[std::ffi::OsString]) -> Errno {
    let cstr = |b: &[u8]| CString::new(b).map_err(|_| Errno::EINVAL);
    let rest: Result<Vec<CString>, Errno> = args.iter().map(|a| cstr(a.as_bytes())).collect();
    let Ok(rest) = rest else {
        return Errno::EINVAL;
    };
    let cwd = std::env::current_dir()
        .ok()
        .and_then(|d| d.into_os_string().into_string().ok());
    let target = cwd
        .as_deref()
        .map(|cwd| exec::target(&handed.path, cwd.as_bytes(), false));
    let emulated = match (cwd.as_deref(), target, crossarch_rootfs::Root::open("/")) {
        (Some(cwd), Some(target), Ok(root)) => exec::foreign(qemu_dir, &root, &target, cwd),
        _ => None,
    };
    let (path, argv, at) = match emulated {
        Some((resolved, name)) => {
            let qemu = qemu_dir.join(name);
            let argv0 = String::from_utf8_lossy(&handed.argv0).into_owned();
            let wrapped =
                crossarch_route::plan::wrapped_argv(&qemu.to_string_lossy(), &resolved, &[argv0]);
            let wrapped: Result<Vec<CString>, Errno> =
                wrapped.iter().map(|a| cstr(a.as_bytes())).collect();
            let Ok(wrapped) = wrapped else {
                return Errno::EINVAL;
            };
            (qemu.into_os_string().into_encoded_bytes(), wrapped, true)
        }
        None => {
            let Ok(argv0) = cstr(&handed.argv0) else {
                return Errno::EINVAL;
            };
            (handed.path.clone(), vec![argv0], false)
        }
    };
    let Ok(path) = cstr(&path) else {
        return Errno::EINVAL;
    };
    let mut pointers: Vec<*const libc::c_char> =
        argv.iter().chain(&rest).map(|a| a.as_ptr()).collect();
    pointers.push(std::ptr::null());
    // SAFETY: NUL-terminated strings and NULL-terminated arrays that outlive the call; the
    // environment is the process's own.
    unsafe {
        if at {
            // qemu's exec, which the filter lets through.
            libc::syscall(
                libc::SYS_execveat,
                QEMU_EXEC,
                path.as_ptr(),
                pointers.as_ptr(),
                environ,
                0,
            );
        } else {
            // A native program: its exec comes to init as any other.
            libc::execve(path.as_ptr(), pointers.as_ptr(), environ);
        }
    }
    Errno::last()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_new_path_never_lands_on_another_string_of_the_exec() {
        let Some(mem) = memory::own_memory() else {
            return;
        };
        let memory = Memory::Opened(mem.as_raw_fd());
        // "/bin/sh" is shorter than /dev/fd/N: the 12 bytes from it may be written.
        let area = *b"/bin/sh\0xxxxxxx\0true\0";
        let at = |offset: u64| area.as_ptr() as u64 + offset;
        let dash_c = *b"-c\0";
        let path = b"/bin/sh";
        let env = *b"HOME=/\0";
        let envp = [env.as_ptr() as u64, 0];
        let handed = Handed {
            path: path.to_vec(),
            argv0: b"sh".to_vec(),
            sigpipe_ignored: false,
        };
        let call = |argv: &[u64], envp: &[u64]| Call {
            dirfd: None,
            path: at(0),
            argv: argv.as_ptr() as u64,
            envp: envp.as_ptr() as u64,
            flags: 0,
            at: false,
        };
        let room = |argv: &[u64], envp: &[u64]| {
            room_for_path(memory, &call(argv, envp), &handed, &argv[..argv.len() - 1])
        };
        let dash_c = dash_c.as_ptr() as u64;
        // argv[0] the path's own tail ("sh"): the kernel drops it.
        assert!(room(&[at(5), dash_c, at(16), 0], &envp));
        // An argument right after the path would be overwritten.
        assert!(!room(&[at(5), at(8), at(16), 0], &envp));
        // So would one that shares the path's bytes.
        assert!(!room(&[at(5), dash_c, at(5), 0], &envp));
        // Or the environment.
        assert!(!room(&[at(5), 0], &[at(8), 0]));
    }

    #[test]
    fn a_process_is_told_by_its_start_time() {
        let me = std::process::id() as libc::pid_t;
        let id = Identity::of(me).unwrap();
        assert_eq!(id.tgid, me);
        assert!(id.alive());
        assert!(!Identity {
            start: id.start + 1,
            ..id
        }
        .alive());
    }
}
