//! A foreign container's own binfmt_misc, which runs every process of it through qemu.
//!
//! Linux >= 6.7 gives each user namespace its own binfmt_misc instance. After `runc create`
//! (the container's init waits for Start, so nothing in it has run yet), the shim starts
//! itself as `binfmt-register`. That process joins the container's user namespace through
//! the init's pidfd, makes a mount namespace of its own (to be allowed to mount there), opens
//! a detached binfmt_misc mount of that user namespace, registers qemu, and hands the mount
//! back to the shim over a socket. The shim holds it until Delete: an instance lives as long
//! as one of its mounts does.
//!
//! qemu is registered with F, so the kernel keeps it open, and every emulated process's
//! `/proc/PID/exe` is that open file. Under the identity mapping container root is host uid
//! 0, the owner of the host's qemu, so that file must be one it cannot change: it is reached
//! through a read-only, nosuid, nodev detached copy of qemu's directory, which the shim made
//! in its own mount namespace. That mount belongs to no namespace the container is in, so it
//! cannot be remounted; chmod, chown and setxattr through `/proc/PID/exe` fail with EROFS.
//! No binfmt_misc is mounted anywhere the container can see, and nothing on the host's mount
//! table changes.

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    os::{
        fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd},
        unix::{fs::MetadataExt, process::CommandExt},
    },
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use crossarch_route::arch::Arch;
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};

use crate::{binfmt, sys};

pub const COMMAND: &str = "binfmt-register";

/// The kernel's fixed inode number of the initial user namespace (PROC_USER_INIT_INO).
const INITIAL_USER_NS_INO: u64 = 0xEFFF_FFFD;

/// The descriptors the helper gets: the container init's pidfd, the socket back to the shim,
/// then one read-only copy per qemu directory.
const PIDFD: RawFd = 3;
const SOCKET: RawFd = 4;
const FIRST_DIR: RawFd = 5;
/// The pidfd, the socket and a qemu directory per slot left.
const MAX_HANDED: usize = 16;

/// How long the helper may take; it only makes a handful of system calls.
const HELPER_LIMIT: Duration = Duration::from_secs(10);

/// This process's user namespace, as an inode number.
pub fn user_namespace() -> std::io::Result<u64> {
    std::fs::metadata("/proc/self/ns/user").map(|m| m.ino())
}

/// What the helper registers: architecture, the descriptor of qemu's directory, qemu's name.
#[derive(Debug, PartialEq)]
struct Entry {
    arch: Arch,
    dir_fd: RawFd,
    name: String,
}

impl Entry {
    /// The interpreter path as the helper sees it: through the read-only copy.
    fn interpreter(&self) -> String {
        format!("/proc/self/fd/{}/{}", self.dir_fd, self.name)
    }
}

/// Plans the helper's entries and the directories it needs, in descriptor order.
fn plan(qemus: &[(Arch, PathBuf)]) -> Result<(Vec<PathBuf>, Vec<Entry>), String> {
    let mut dirs: BTreeMap<PathBuf, RawFd> = BTreeMap::new();
    let mut order = Vec::new();
    let mut entries = Vec::new();
    for (arch, qemu) in qemus {
        let (Some(dir), Some(name)) = (qemu.parent(), qemu.file_name()) else {
            return Err(format!("{} is not a file path", qemu.display()));
        };
        let name = name
            .to_str()
            .ok_or_else(|| format!("{} is not UTF-8", qemu.display()))?;
        let next = FIRST_DIR + dirs.len() as RawFd;
        let fd = *dirs.entry(dir.to_path_buf()).or_insert_with(|| {
            order.push(dir.to_path_buf());
            next
        });
        entries.push(Entry {
            arch: *arch,
            dir_fd: fd,
            name: name.to_string(),
        });
    }
    Ok((order, entries))
}

fn args(container: &str, shim_userns: u64, entries: &[Entry]) -> Vec<String> {
    let mut v = vec![
        COMMAND.to_string(),
        "--container".to_string(),
        container.to_string(),
        "--not-userns".to_string(),
        shim_userns.to_string(),
    ];
    v.extend(
        entries
            .iter()
            .map(|e| format!("{}={}/{}", e.arch.qemu_name(), e.dir_fd, e.name)),
    );
    v
}

struct Request {
    container: String,
    not_userns: u64,
    entries: Vec<Entry>,
}

fn parse(args: &[String]) -> Result<Request, String> {
    let mut r = Request {
        container: String::new(),
        not_userns: 0,
        entries: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--container" => r.container = it.next().cloned().unwrap_or_default(),
            "--not-userns" => {
                r.not_userns = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--not-userns needs an inode number")?
            }
            pair => {
                let bad = || format!("bad argument {pair:?}");
                let (arch, rest) = pair.split_once('=').ok_or_else(bad)?;
                let (fd, name) = rest.split_once('/').ok_or_else(bad)?;
                let arch = Arch::all()
                    .find(|a| a.qemu_name() == arch)
                    .ok_or_else(|| format!("unknown architecture {arch:?}"))?;
                let dir_fd = fd.parse().map_err(|_| bad())?;
                if name.contains('/') || dir_fd < FIRST_DIR {
                    return Err(bad());
                }
                r.entries.push(Entry {
                    arch,
                    dir_fd,
                    name: name.to_string(),
                });
            }
        }
    }
    Ok(r)
}

/// Gives the container whose init is `init` (a pidfd) a private binfmt_misc that runs
/// `qemus`. Returns the instance's mount, which must be held for as long as the container
/// lives.
pub async fn register(
    container: &str,
    init: BorrowedFd<'_>,
    qemus: &[(Arch, PathBuf)],
) -> Result<OwnedFd, String> {
    let fail = |e: String| {
        format!(
            "container {container}: cannot give it a private binfmt_misc: {e}; set \
             emulation.mode = \"wrap\" in the crossarch config to run without one"
        )
    };
    let shim_userns = crate::facts::node()
        .user_namespace
        .ok_or_else(|| fail("cannot read the shim's user namespace".into()))?;
    // The real file: a qemu found through a symlink (Debian's /usr/libexec/qemu-binfmt has
    // them) must be opened in its own directory's read-only copy, not through a link that
    // would lead out of it to a writable mount.
    let real = qemus
        .iter()
        .map(|(a, q)| {
            std::fs::canonicalize(q)
                .map(|p| (*a, p))
                .map_err(|e| fail(format!("cannot resolve {}: {e}", q.display())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (dirs, entries) = plan(&real).map_err(fail)?;
    let copies = dirs
        .iter()
        .map(|d| {
            sys::detached_copy(
                d,
                sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV,
            )
            .map_err(|e| {
                fail(format!(
                    "cannot make a read-only copy of {}: {e}",
                    d.display()
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (mine, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| fail(format!("socketpair: {e}")))?;
    let exe =
        std::env::current_exe().map_err(|e| fail(format!("cannot find the shim binary: {e}")))?;

    // Built before fork: the child may not allocate.
    let mut handed = [(-1, -1); MAX_HANDED];
    let sources = [init.as_raw_fd(), theirs.as_raw_fd()]
        .into_iter()
        .chain(copies.iter().map(|c| c.as_raw_fd()));
    let mut count = 0;
    for (i, from) in sources.enumerate() {
        let slot = handed
            .get_mut(i)
            .ok_or_else(|| fail(format!("more than {} qemu directories", MAX_HANDED - 2)))?;
        *slot = (from, PIDFD + i as RawFd);
        count = i + 1;
    }
    let mut cmd = Command::new(&exe);
    cmd.args(args(container, shim_userns, &entries))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: between fork and exec the closure only calls fcntl and dup2, which are
    // async-signal-safe, on descriptors the parent keeps open until the child has exited,
    // and it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            // First out of the way of every target, then into place (dup2 clears CLOEXEC).
            let mut moved = [-1; MAX_HANDED];
            for (i, (from, _)) in handed[..count].iter().enumerate() {
                moved[i] = libc::fcntl(*from, libc::F_DUPFD_CLOEXEC, 64);
                if moved[i] < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (tmp, (_, to)) in moved.iter().zip(&handed[..count]) {
                if libc::dup2(*tmp, *to) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let (mut child, exit) = crate::reaper::spawn(&mut cmd)
        .map_err(|e| fail(format!("cannot start {}: {e}", exe.display())))?;
    drop(theirs);
    let status = match tokio::time::timeout(HELPER_LIMIT, exit).await {
        Ok(Ok(exit)) => exit.status,
        Ok(Err(_)) => return Err(fail("the helper's exit was lost".into())),
        Err(_) => {
            let _ = child.kill();
            return Err(fail(format!(
                "the helper took longer than {HELPER_LIMIT:?}"
            )));
        }
    };
    let mut stderr = String::new();
    if let Some(e) = child.stderr.take() {
        let _ = e.take(4096).read_to_string(&mut stderr);
    }
    if status != 0 {
        let why = stderr.trim();
        return Err(fail(if why.is_empty() {
            format!("the helper failed with exit status {status}")
        } else {
            why.to_string()
        }));
    }
    receive_fd(mine.as_fd()).map_err(|e| fail(format!("the helper sent no binfmt_misc mount: {e}")))
}

fn receive_fd(sock: BorrowedFd<'_>) -> Result<OwnedFd, String> {
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!(RawFd);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| e.to_string())?;
    for c in msg.cmsgs().map_err(|e| e.to_string())? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            let mut fds = fds.into_iter();
            if let Some(fd) = fds.next() {
                // SAFETY: the kernel installed these descriptors in this process for us.
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                for extra in fds {
                    // SAFETY: as above; unexpected extras are closed.
                    drop(unsafe { OwnedFd::from_raw_fd(extra) });
                }
                return Ok(owned);
            }
        }
    }
    Err("no descriptor in the message".into())
}

/// The helper's work, in the container's user namespace; returns the binfmt_misc mount.
fn run(req: &Request) -> Result<OwnedFd, String> {
    // SAFETY: the shim handed this descriptor to us at PIDFD; we own it from here on.
    let init = unsafe { OwnedFd::from_raw_fd(PIDFD) };
    nix::sched::setns(&init, nix::sched::CloneFlags::CLONE_NEWUSER)
        .map_err(|e| format!("cannot join the container's user namespace: {e}"))?;
    let userns = user_namespace().map_err(|e| format!("cannot read the user namespace: {e}"))?;
    if userns == INITIAL_USER_NS_INO || userns == req.not_userns {
        return Err(
            "refusing to register: the container has no user namespace of its own, \
                    so its binfmt_misc would be the host's"
                .into(),
        );
    }
    // Mounting needs CAP_SYS_ADMIN over the mount namespace, which ours (the host's) is not:
    // a new one belongs to the container's user namespace. It dies with this process.
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("cannot make a mount namespace: {e}"))?;
    let mnt = sys::new_detached_mount(
        "binfmt_misc",
        sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC,
    )
    .map_err(|e| format!("cannot mount binfmt_misc: {e} (needs Linux >= 6.7)"))?;
    let root = format!("/proc/self/fd/{}", mnt.as_raw_fd());
    for e in &req.entries {
        // The interpreter must be a regular file right in the read-only copy: a symlink
        // there could lead the kernel's open (and so /proc/PID/exe) to a writable mount.
        let st = nix::sys::stat::fstatat(
            // SAFETY: the shim handed the directory copy to us at this descriptor.
            unsafe { BorrowedFd::borrow_raw(e.dir_fd) },
            e.name.as_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|err| format!("cannot find {} in its read-only copy: {err}", e.name))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(format!("{} is not a regular file in its directory", e.name));
        }
        let interpreter = e.interpreter();
        let line = binfmt::registration(e.arch, &interpreter)
            .ok_or_else(|| format!("{} cannot be registered", e.arch))?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(format!("{root}/register"))
            .map_err(|err| format!("cannot open binfmt_misc's register: {err}"))?;
        // One write(2): the kernel parses each write on its own.
        match f.write(line.as_bytes()) {
            Ok(_) => {}
            Err(err) if err.raw_os_error() == Some(libc::EEXIST) => {
                // A user namespace shared with another container (a pod's) already has one.
                let name = binfmt::entry_name(e.arch);
                let status = std::fs::read_to_string(format!("{root}/{name}")).unwrap_or_default();
                if !binfmt::entry_matches(&status, e.arch, &interpreter) {
                    return Err(format!(
                        "the user namespace already has a binfmt_misc entry {name} that crossarch \
                         did not make (another process of that user namespace registered it); \
                         refusing to run {} binaries through it",
                        e.arch
                    ));
                }
            }
            Err(err) => return Err(format!("cannot register {} for {}: {err}", e.name, e.arch)),
        }
    }
    Ok(mnt)
}

/// Runs the helper; returns the process exit code.
pub fn main(args: &[String]) -> i32 {
    let result = parse(args).and_then(|req| {
        let mnt = run(&req)?;
        // SAFETY: the shim handed this socket to us at SOCKET; we own it from here on.
        let sock = unsafe { OwnedFd::from_raw_fd(SOCKET) };
        let fds = [mnt.as_raw_fd()];
        let iov = [std::io::IoSlice::new(b"m")];
        sendmsg::<()>(
            sock.as_raw_fd(),
            &iov,
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .map_err(|e| format!("cannot hand the mount back to the shim: {e}"))?;
        Ok(())
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "{e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_round_trip_and_share_directories() {
        let qemus = vec![
            (Arch::Aarch64, PathBuf::from("/usr/bin/qemu-aarch64-static")),
            (Arch::S390x, PathBuf::from("/usr/local/bin/qemu-s390x")),
            (Arch::Riscv64, PathBuf::from("/usr/bin/qemu-riscv64-static")),
        ];
        let (dirs, entries) = plan(&qemus).unwrap();
        assert_eq!(
            dirs,
            [PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")]
        );
        assert_eq!(entries[2].dir_fd, FIRST_DIR, "one copy per directory");
        assert_eq!(entries[1].interpreter(), "/proc/self/fd/6/qemu-s390x");
        let a = args("web", 4026532000, &entries);
        let r = parse(&a[1..]).unwrap();
        assert_eq!(r.container, "web");
        assert_eq!(r.not_userns, 4026532000);
        assert_eq!(r.entries, entries);
        assert!(parse(&["riscv9=5/x".into()]).is_err());
        assert!(parse(&["aarch64=5/../x/y".into()]).is_err());
        assert!(
            parse(&["aarch64=2/x".into()]).is_err(),
            "not the helper's own fds"
        );
    }
}
