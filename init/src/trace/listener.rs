//! The seccomp filter's listener: the execs that wait for init, and init's answers
//! (SECCOMP_IOCTL_NOTIF_*), and the hand-over of the listener from the program to init.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

/// One exec waiting for init.
pub struct Notification {
    pub id: u64,
    /// The thread, in init's pid namespace.
    pub pid: libc::pid_t,
    pub nr: u64,
    pub args: [u64; 6],
}

fn ioctl<T>(fd: RawFd, request: libc::Ioctl, arg: *mut T) -> Result<(), Errno> {
    // SAFETY: each caller passes the struct its request names.
    if unsafe { libc::ioctl(fd, request, arg) } == -1 {
        return Err(Errno::last());
    }
    Ok(())
}

/// The next waiting exec; blocks until there is one.
pub fn receive(fd: RawFd) -> Result<Notification, Errno> {
    // SAFETY: plain integers; the kernel insists on all zeros.
    let mut raw: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut raw)?;
    Ok(Notification {
        id: raw.id,
        pid: raw.pid as libc::pid_t,
        nr: raw.data.nr as u32 as u64,
        args: raw.data.args,
    })
}

/// SECCOMP_IOCTL_NOTIF_ID_VALID as Linux 5.5 to 5.8 number it (`_IOR('!', 2, u64)`).
/// Linux 5.9 renumbered it (`_IOW`, libc's constant) and takes this one too, so it is the
/// number every kernel with the listener's CONTINUE accepts.
const ID_VALID_ANY_KERNEL: libc::Ioctl = (2u32 << 30 | 8 << 16 | (b'!' as u32) << 8 | 2) as _;

/// Whether the exec `id` still waits: while it does, its pid is still that thread's.
pub fn valid(fd: RawFd, id: u64) -> bool {
    let mut id = id;
    ioctl(fd, ID_VALID_ANY_KERNEL, &mut id).is_ok()
}

/// Lets the exec `id` go on as it is. It may be gone (killed, or cut short by init).
/// Before Linux 5.5 the kernel cannot (EINVAL): then the exec fails with ENOSYS rather than
/// wait for ever, and Err says so.
pub fn go_on(fd: RawFd, id: u64) -> Result<(), Errno> {
    // SAFETY: plain integers.
    let mut resp: libc::seccomp_notif_resp = unsafe { std::mem::zeroed() };
    resp.id = id;
    resp.flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32;
    match ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) {
        Err(Errno::EINVAL) => {
            resp.flags = 0;
            resp.error = -libc::ENOSYS;
            let _ = ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp);
            Err(Errno::EINVAL)
        }
        _ => Ok(()),
    }
}

/// Fails the exec `id` with `errno`. Err when the exec is gone.
pub fn fail(fd: RawFd, id: u64, errno: Errno) -> Result<(), Errno> {
    answer_error(fd, id, -(errno as i32))
}

/// Ends the wait of exec `id` with a restart code that the kernel turns into a restart of
/// the exec, whatever the process's signal handlers say (ERESTARTNOINTR): init has
/// interrupted the thread, which stops before it restarts. Err when the exec is gone.
pub fn restart(fd: RawFd, id: u64) -> Result<(), Errno> {
    /// include/linux/errno.h; never seen by userspace.
    const ERESTARTNOINTR: i32 = 513;
    answer_error(fd, id, -ERESTARTNOINTR)
}

fn answer_error(fd: RawFd, id: u64, error: i32) -> Result<(), Errno> {
    // SAFETY: plain integers.
    let mut resp: libc::seccomp_notif_resp = unsafe { std::mem::zeroed() };
    resp.id = id;
    resp.error = error;
    ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp)
}

/// Puts a copy of init's descriptor `fd` into the process waiting in `id`, without
/// close-on-exec, and returns its number there (Linux 5.9 or later).
pub fn add_fd(listener: RawFd, id: u64, fd: RawFd) -> Result<RawFd, Errno> {
    // SAFETY: plain integers.
    let mut add: libc::seccomp_notif_addfd = unsafe { std::mem::zeroed() };
    add.id = id;
    add.srcfd = fd as u32;
    // SAFETY: the struct the request names.
    let rc = unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_ADDFD, &mut add) };
    if rc < 0 {
        return Err(Errno::last());
    }
    Ok(rc)
}

/// A connected pair of sockets, close-on-exec: the program sends the listener on one, init
/// takes it on the other and answers with a go byte.
pub fn pair() -> Result<(OwnedFd, OwnedFd), Errno> {
    let mut fds = [0; 2];
    // SAFETY: socketpair writes two descriptors into `fds`.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(Errno::last());
    }
    // SAFETY: both descriptors are new and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Room for one descriptor's control message; a u64 array keeps it aligned.
const CONTROL_WORDS: usize = 4;

fn iovec(byte: &mut [u8; 1]) -> libc::iovec {
    libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    }
}

/// A message of the one byte in `iov`, with `control` as room for control messages.
fn message(iov: &mut libc::iovec, control: &mut [u64; CONTROL_WORDS]) -> libc::msghdr {
    // SAFETY: msghdr is plain data; the fields that matter are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(control) as _;
    msg
}

/// Sends `fd` over `socket` (SCM_RIGHTS) with one byte. Allocation-free: it runs between
/// fork and exec.
pub fn send_fd(socket: RawFd, fd: RawFd) -> Result<(), Errno> {
    let (mut byte, mut control) = ([0u8], [0u64; CONTROL_WORDS]);
    let mut iov = iovec(&mut byte);
    let mut msg = message(&mut iov, &mut control);
    // SAFETY: CMSG_SPACE is arithmetic.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as _;
    // SAFETY: the control buffer holds one header and an int, as CMSG_SPACE said.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
    }
    loop {
        // SAFETY: `msg` points at live buffers.
        match unsafe { libc::sendmsg(socket, &msg, libc::MSG_NOSIGNAL) } {
            1 => return Ok(()),
            -1 if Errno::last() == Errno::EINTR => continue,
            -1 => return Err(Errno::last()),
            _ => return Err(Errno::EIO),
        }
    }
}

/// Takes the descriptor [`send_fd`] sent; None when the other end closed without one.
pub fn receive_fd(socket: RawFd) -> Result<Option<OwnedFd>, Errno> {
    let (mut byte, mut control) = ([0u8], [0u64; CONTROL_WORDS]);
    let mut iov = iovec(&mut byte);
    let mut msg = message(&mut iov, &mut control);
    let n = loop {
        // SAFETY: `msg` points at live buffers.
        match unsafe { libc::recvmsg(socket, &mut msg, libc::MSG_CMSG_CLOEXEC) } {
            -1 if Errno::last() == Errno::EINTR => continue,
            -1 => return Err(Errno::last()),
            n => break n,
        }
    };
    if n == 0 {
        return Ok(None);
    }
    // SAFETY: the kernel wrote `msg_controllen` bytes of control messages.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
        {
            return Ok(None);
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
        Ok(Some(OwnedFd::from_raw_fd(fd)))
    }
}

/// Sends the one go byte on `socket`; a child that is gone gives no SIGPIPE to forward.
pub fn go(socket: RawFd) {
    // SAFETY: a one-byte send from a valid buffer.
    unsafe { libc::send(socket, [1u8].as_ptr().cast(), 1, libc::MSG_NOSIGNAL) };
}

/// The program's side: whether init let it go (false when init closed the socket).
pub fn wait_go(socket: RawFd) -> bool {
    let mut byte = [0u8];
    loop {
        // SAFETY: a one-byte read into a valid buffer.
        match unsafe { libc::read(socket, byte.as_mut_ptr().cast(), 1) } {
            1 => return byte[0] == 1,
            -1 if Errno::last() == Errno::EINTR => continue,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_check_is_numbered_as_every_kernel_takes_it() {
        const DIRECTION: u32 = 3 << 30;
        let old = ID_VALID_ANY_KERNEL as u32;
        let new = libc::SECCOMP_IOCTL_NOTIF_ID_VALID as u32;
        // The same request; only the direction bits differ (read, where 5.9 says write).
        assert_eq!(old & !DIRECTION, new & !DIRECTION);
        assert_eq!(old & DIRECTION, 2 << 30);
        assert_eq!(old, 0x8008_2102);
    }
}
