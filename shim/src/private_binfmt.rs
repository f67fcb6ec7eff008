//! A foreign container's own binfmt_misc, which runs every process of it through qemu.
//!
//! Linux >= 6.7 gives each user namespace its own binfmt_misc instance. After `runc create`
//! (the container's init waits for Start, so nothing in it has run yet), the shim forks a
//! child (no exec: everything it needs is made before the fork, and it only makes system
//! calls). The child makes itself non-dumpable and closes every descriptor but its own, joins
//! the container's user namespace through the init's pidfd, makes a mount namespace of its
//! own (to be allowed to mount there), opens a detached binfmt_misc mount of that user
//! namespace, registers qemu, and hands the mount back to the shim over a socket. The shim
//! holds it until Delete: an instance lives as long as one of its mounts does.
//!
//! qemu is registered with F, so the kernel keeps it open, and every emulated process's
//! `/proc/PID/exe` is that open file. Under the identity mapping container root is host uid
//! 0, the owner of the host's qemu, so that file must be one it cannot change: it is reached
//! through a read-only, nosuid, nodev detached copy of qemu's directory, which the shim made
//! in its own mount namespace. That mount belongs to no namespace the container is in, so it
//! cannot be remounted; chmod, chown and setxattr through `/proc/PID/exe` fail with EROFS.
//! No binfmt_misc is mounted anywhere the container can see, and nothing on the host's mount
//! table changes.
//!
//! The child is host uid 0 inside the container's user namespace: non-dumpable, a process of
//! that user namespace (another container of a `hostUsers: false` pod) cannot ptrace it or
//! read its memory, even with CAP_SYS_PTRACE there, and it holds no descriptor of the shim's.

use std::{
    collections::BTreeMap,
    ffi::CString,
    io::Read,
    os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd},
    path::PathBuf,
    time::Duration,
};

use crossarch_route::arch::Arch;
use nix::sys::socket::{
    recvmsg, socketpair, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType,
};

use crate::{binfmt, sys};

/// The kernel's fixed inode number of the initial user namespace (PROC_USER_INIT_INO).
const INITIAL_USER_NS_INO: u64 = 0xEFFF_FFFD;

/// The descriptors the child works with: the container init's pidfd, the socket back to the
/// shim, then one read-only copy per qemu directory.
const PIDFD: RawFd = 3;
const SOCKET: RawFd = 4;
const FIRST_DIR: RawFd = 5;
/// The pidfd, the socket and a qemu directory per slot left.
const MAX_HANDED: usize = 16;

/// How long the child may take; it only makes a handful of system calls.
const CHILD_LIMIT: Duration = Duration::from_secs(10);

/// What the child registers: architecture, the descriptor of qemu's directory, qemu's name.
#[derive(Debug, PartialEq)]
struct Entry {
    arch: Arch,
    dir_fd: RawFd,
    name: String,
}

impl Entry {
    /// The interpreter path as the child sees it: through the read-only copy.
    fn interpreter(&self) -> String {
        format!("/proc/self/fd/{}/{}", self.dir_fd, self.name)
    }
}

/// Plans the child's entries and the directories it needs, in descriptor order.
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
    if order.len() + 2 > MAX_HANDED {
        return Err(format!("more than {} qemu directories", MAX_HANDED - 2));
    }
    if entries.len() > 32 {
        return Err("more than 32 architectures to register".into());
    }
    Ok((order, entries))
}

/// Where the child stopped, as it reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Done,
    Descriptors,
    JoinUserNamespace,
    NotPrivate,
    MountNamespace,
    Mount,
    Find,
    NotRegular,
    OpenRegister,
    Register,
}

const STEPS: [Step; 10] = [
    Step::Done,
    Step::Descriptors,
    Step::JoinUserNamespace,
    Step::NotPrivate,
    Step::MountNamespace,
    Step::Mount,
    Step::Find,
    Step::NotRegular,
    Step::OpenRegister,
    Step::Register,
];

/// The child's report: step, entry index, errno, and which entries existed already.
const REPORT_LEN: usize = 10;

fn encode(step: Step, index: usize, errno: i32, existed: u32) -> [u8; REPORT_LEN] {
    let mut r = [0u8; REPORT_LEN];
    r[0] = STEPS.iter().position(|s| *s == step).unwrap_or(0) as u8;
    r[1] = index as u8;
    r[2..6].copy_from_slice(&errno.to_le_bytes());
    r[6..10].copy_from_slice(&existed.to_le_bytes());
    r
}

fn decode(r: &[u8]) -> Option<(Step, usize, i32, u32)> {
    if r.len() != REPORT_LEN {
        return None;
    }
    let step = *STEPS.get(r[0] as usize)?;
    let errno = i32::from_le_bytes([r[2], r[3], r[4], r[5]]);
    let existed = u32::from_le_bytes([r[6], r[7], r[8], r[9]]);
    Some((step, r[1] as usize, errno, existed))
}

/// What went wrong, from the child's report.
fn failure(step: Step, entry: Option<&Entry>, errno: i32) -> String {
    let err = nix::errno::Errno::from_raw(errno).desc();
    let name = entry.map_or("qemu", |e| e.name.as_str());
    match step {
        Step::Done => "no failure".into(),
        Step::Descriptors => format!("cannot set up its descriptors: {err}"),
        Step::JoinUserNamespace => format!("cannot join the container's user namespace: {err}"),
        Step::NotPrivate => "refusing to register: the container has no user namespace of its \
                             own, so its binfmt_misc would be the host's"
            .into(),
        Step::MountNamespace => format!("cannot make a mount namespace: {err}"),
        Step::Mount => format!("cannot mount binfmt_misc: {err} (needs Linux >= 6.7)"),
        Step::Find => format!("cannot find {name} in its read-only copy: {err}"),
        Step::NotRegular => format!("{name} is not a regular file in its directory"),
        Step::OpenRegister => format!("cannot open binfmt_misc's register: {err}"),
        Step::Register => format!(
            "cannot register {name} for {}: {err}",
            entry.map_or("its architecture".into(), |e| e.arch.to_string())
        ),
    }
}

/// What the child needs, made before the fork: it may not allocate.
struct Work {
    /// (from, to): the parent's descriptors and where the child wants them.
    handed: [(RawFd, RawFd); MAX_HANDED],
    count: usize,
    not_userns: u64,
    userns_path: CString,
    fstype: CString,
    register: CString,
    /// Per entry: its directory's descriptor, qemu's name, the registration line.
    entries: Vec<(RawFd, CString, CString)>,
}

/// The child's work, in the container's user namespace: sends the report and, when every
/// entry is registered or was already there, the binfmt_misc mount.
///
/// # Safety
///
/// Runs in a child forked from a multithreaded process: it only makes system calls on
/// memory made before the fork.
unsafe fn child(w: &Work) -> i32 {
    let errno = || unsafe { *libc::__errno_location() };
    let send = |report: [u8; REPORT_LEN], fd: Option<RawFd>| unsafe {
        let mut iov = libc::iovec {
            iov_base: report.as_ptr() as *mut libc::c_void,
            iov_len: report.len(),
        };
        let mut control = [0u64; 4];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if let Some(fd) = fd {
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as _;
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), fd);
        }
        libc::sendmsg(SOCKET, &msg, libc::MSG_NOSIGNAL);
    };
    let fail = |step: Step, index: usize| {
        send(encode(step, index, errno(), 0), None);
        1
    };
    // Nothing of the container's may ptrace this process or read its memory.
    if libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 {
        return fail(Step::Descriptors, 0);
    }
    // First out of the way of every target, then into place; then nothing else stays open.
    let mut moved = [-1; MAX_HANDED];
    for (i, (from, _)) in w.handed[..w.count].iter().enumerate() {
        moved[i] = libc::fcntl(*from, libc::F_DUPFD_CLOEXEC, 64);
        if moved[i] < 0 {
            return 2;
        }
    }
    for (tmp, (_, to)) in moved.iter().zip(&w.handed[..w.count]) {
        if libc::dup2(*tmp, *to) < 0 {
            return 2;
        }
    }
    // The shim's stdio too: the child writes nothing but its report.
    for fd in 0..PIDFD {
        libc::close(fd);
    }
    let last = PIDFD + w.count as RawFd;
    if libc::syscall(
        libc::SYS_close_range,
        last as libc::c_uint,
        libc::c_uint::MAX,
        0,
    ) != 0
    {
        // Before Linux 5.9: close them one by one.
        for fd in last..1024 {
            libc::close(fd);
        }
    }
    if libc::setns(PIDFD, libc::CLONE_NEWUSER) != 0 {
        return fail(Step::JoinUserNamespace, 0);
    }
    let mut st: libc::stat = std::mem::zeroed();
    if libc::stat(w.userns_path.as_ptr(), &mut st) != 0
        || st.st_ino == INITIAL_USER_NS_INO
        || st.st_ino == w.not_userns
    {
        return fail(Step::NotPrivate, 0);
    }
    // Mounting needs CAP_SYS_ADMIN over the mount namespace, which ours (the shim's) is not:
    // a new one belongs to the container's user namespace. It dies with this process.
    if libc::unshare(libc::CLONE_NEWNS) != 0 {
        return fail(Step::MountNamespace, 0);
    }
    let attrs = sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC;
    let mnt = sys::detached_mount_raw(&w.fstype, attrs);
    if mnt < 0 {
        return fail(Step::Mount, 0);
    }
    let mut existed = 0u32;
    for (i, (dir, name, line)) in w.entries.iter().enumerate() {
        // The interpreter must be a regular file right in the read-only copy: a symlink
        // there could lead the kernel's open (and so /proc/PID/exe) to a writable mount.
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstatat(*dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) != 0 {
            return fail(Step::Find, i);
        }
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return fail(Step::NotRegular, i);
        }
        let reg = libc::openat(mnt, w.register.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if reg < 0 {
            return fail(Step::OpenRegister, i);
        }
        // One write(2): the kernel parses each write on its own.
        let bytes = line.as_bytes();
        if libc::write(reg, bytes.as_ptr().cast(), bytes.len()) < 0 {
            if errno() != libc::EEXIST {
                return fail(Step::Register, i);
            }
            // A user namespace shared with another container (a pod's) has it already; the
            // shim checks that it is what this one would register.
            existed |= 1 << i;
        }
        libc::close(reg);
    }
    send(encode(Step::Done, 0, 0, existed), Some(mnt));
    0
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

    let c = |s: String| CString::new(s).map_err(|_| fail("a name holds a NUL byte".into()));
    let mut work = Work {
        handed: [(-1, -1); MAX_HANDED],
        count: 0,
        not_userns: shim_userns,
        userns_path: c("/proc/self/ns/user".into())?,
        fstype: c("binfmt_misc".into())?,
        register: c("register".into())?,
        entries: Vec::with_capacity(entries.len()),
    };
    let sources = [init.as_raw_fd(), theirs.as_raw_fd()]
        .into_iter()
        .chain(copies.iter().map(|c| c.as_raw_fd()));
    for (i, from) in sources.enumerate() {
        work.handed[i] = (from, PIDFD + i as RawFd);
        work.count = i + 1;
    }
    for e in &entries {
        let line = binfmt::registration(e.arch, &e.interpreter())
            .ok_or_else(|| fail(format!("{} cannot be registered", e.arch)))?;
        work.entries.push((e.dir_fd, c(e.name.clone())?, c(line)?));
    }

    // SAFETY: `child` only makes system calls on `work`, made above and alive until the
    // child has exited.
    let pid = unsafe { crate::reaper::fork(0, || child(&work)) }
        .map_err(|e| fail(format!("cannot fork: {e}")))?;
    let exited = crate::reaper::exit_status(pid);
    drop(theirs);
    // The report comes before the child's exit; a child that dies without one ends the wait
    // too.
    // SAFETY: the AsyncFd owns `mine`, which stays open and the same until it is dropped.
    let mine = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(mine, tokio::io::Interest::READABLE)
    }
    .map_err(|e| {
        fail(format!(
            "cannot wait for the registering child: {}",
            e.into_parts().1
        ))
    })?;
    let report = async {
        let _ = mine.readable().await?;
        Ok::<_, std::io::Error>(())
    };
    let mut exited = Box::pin(exited);
    let died = tokio::select! {
        r = report => {
            r.map_err(|e| fail(format!("cannot wait for the registering child: {e}")))?;
            None
        }
        status = &mut exited => Some(status),
        _ = tokio::time::sleep(CHILD_LIMIT) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            return Err(fail(format!(
                "the registration took longer than {CHILD_LIMIT:?}"
            )));
        }
    };
    if died.is_none() {
        // Its exit is claimed off the request's path.
        tokio::spawn(exited);
    }
    drop(copies);
    let (report, mnt) = receive(mine.get_ref().as_fd()).map_err(|e| {
        fail(format!(
            "the registering child (exit status {}) sent no report: {e}",
            died.map_or("unknown".into(), |s| s.to_string())
        ))
    })?;
    let (step, index, errno, existed) = decode(&report)
        .ok_or_else(|| fail("the registering child sent a garbled report".into()))?;
    if step != Step::Done {
        return Err(fail(failure(step, entries.get(index), errno)));
    }
    let mnt = mnt.ok_or_else(|| fail("the registering child sent no binfmt_misc mount".into()))?;
    for (i, e) in entries.iter().enumerate() {
        if existed & (1 << i) == 0 {
            continue;
        }
        let name = binfmt::entry_name(e.arch);
        let status = read_entry(mnt.as_fd(), &name).unwrap_or_default();
        if !binfmt::entry_matches(&status, e.arch, &e.interpreter()) {
            return Err(fail(format!(
                "the user namespace already has a binfmt_misc entry {name} that crossarch \
                 did not make (another process of that user namespace registered it); \
                 refusing to run {} binaries through it",
                e.arch
            )));
        }
    }
    Ok(mnt)
}

/// The status file of entry `name` of the binfmt_misc mount `mnt`.
fn read_entry(mnt: BorrowedFd<'_>, name: &str) -> std::io::Result<String> {
    let fd = nix::fcntl::openat(
        mnt,
        name,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    let mut text = String::new();
    std::fs::File::from(fd)
        .take(4096)
        .read_to_string(&mut text)?;
    Ok(text)
}

/// The child's report and the descriptor that came with it.
fn receive(sock: BorrowedFd<'_>) -> Result<(Vec<u8>, Option<OwnedFd>), String> {
    let mut buf = [0u8; REPORT_LEN + 1];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!(RawFd);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| e.to_string())?;
    let mut fd = None;
    for c in msg.cmsgs().map_err(|e| e.to_string())? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for (i, raw) in fds.into_iter().enumerate() {
                // SAFETY: the kernel installed these descriptors in this process for us.
                let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                if i == 0 && fd.is_none() {
                    fd = Some(owned);
                }
            }
        }
    }
    let len = msg.bytes;
    Ok((buf[..len].to_vec(), fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_share_one_copy_per_directory() {
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
        let many: Vec<_> = (0..15)
            .map(|i| (Arch::Aarch64, PathBuf::from(format!("/d{i}/qemu"))))
            .collect();
        assert!(plan(&many).unwrap_err().contains("qemu directories"));
    }

    #[test]
    fn reports_round_trip_and_name_the_step() {
        for step in STEPS {
            let r = encode(step, 3, libc::EACCES, 0b101);
            assert_eq!(decode(&r), Some((step, 3, libc::EACCES, 0b101)));
        }
        assert_eq!(decode(&[1, 2, 3]), None);
        assert_eq!(decode(&[200, 0, 0, 0, 0, 0, 0, 0, 0, 0]), None);
        let e = Entry {
            arch: Arch::Aarch64,
            dir_fd: FIRST_DIR,
            name: "qemu-aarch64-static".into(),
        };
        let msg = failure(Step::Register, Some(&e), libc::EACCES);
        assert!(
            msg.contains("qemu-aarch64-static") && msg.contains("Permission denied"),
            "{msg}"
        );
        assert!(failure(Step::NotPrivate, None, 0).contains("would be the host's"));
    }
}
