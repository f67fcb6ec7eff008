//! Starting a created container's program without a `runc start` process.
//!
//! After `runc create`, runc's init waits in an open of the container's exec fifo
//! (`<runc root>/<id>/exec.fifo`) for writing. `runc start` opens it for reading, reads the
//! byte the init then writes, waits until the init closes it (the close-on-exec of the
//! program's exec), and removes the fifo, which is how runc tells a created container from a
//! running one (runc 1.1 to 1.3 alike). The shim does the same: one runc process fewer for
//! every container, about 8 ms of each start.

use std::{
    fs::File,
    io::{self, Read},
    os::{
        fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd},
        unix::fs::{FileTypeExt, OpenOptionsExt},
    },
    path::Path,
};

use tokio::io::{unix::AsyncFd, Interest};

/// How a start through the fifo ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Started {
    /// The init's byte was read and its end closed: it went on to exec its program.
    Yes,
    /// No fifo to read (or not a fifo): the container is not waiting there, and `runc start`
    /// is the one to say why.
    NoFifo,
    /// The init ended without writing its byte.
    InitEnded,
}

/// A pidfd, polled by tokio.
struct Pidfd(OwnedFd);

impl AsRawFd for Pidfd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// Reads `fifo` as `runc start` does, while `init` (the init's pidfd) is watched for its end.
pub async fn start(fifo: &Path, init: BorrowedFd<'_>) -> io::Result<Started> {
    // Made ready before the fifo is opened, since the open alone lets the init go on to its
    // program.
    // SAFETY: an `OwnedFd` owns its fd and keeps it open, the same file, until it is dropped
    // with its `AsyncFd`.
    let init = unsafe {
        AsyncFd::register_with_interest(Pidfd(init.try_clone_to_owned()?), Interest::READABLE)
    }
    .map_err(io::Error::from)?;
    // Non-blocking: an open for reading that waits for no writer, a read that waits for
    // nothing. Before the init has opened its end, the kernel reports nothing to poll (no
    // hang-up until a writer has come), so the first wake-up is its byte or its end.
    let file = match File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(fifo)
    {
        Ok(file) => file,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ELOOP)) => {
            return Ok(Started::NoFifo)
        }
        Err(e) => return Err(e),
    };
    if !file.metadata()?.file_type().is_fifo() {
        return Ok(Started::NoFifo);
    }
    // SAFETY: a `File` owns its fd in the same way.
    let fifo_fd = unsafe { AsyncFd::register_with_interest(file, Interest::READABLE) }
        .map_err(io::Error::from)?;
    let mut went = false;
    let mut buf = [0u8; 8];
    loop {
        tokio::select! {
            biased;
            ready = fifo_fd.readable() => {
                let mut ready = ready?;
                match ready.try_io(|f| f.get_ref().read(&mut buf)) {
                    // The init's end closed: it is in the program's exec (or ended).
                    Ok(Ok(0)) => break,
                    Ok(Ok(_)) => went = true,
                    Ok(Err(e)) => return Err(e),
                    Err(_would_block) => {}
                }
            }
            _ = init.readable() => {
                // Its end is closed now; what it wrote before is still there.
                while let Ok(1..) = fifo_fd.get_ref().read(&mut buf) {
                    went = true;
                }
                break;
            }
        }
    }
    if !went {
        return Ok(Started::InitEnded);
    }
    // Until it is gone, runc takes the container for created.
    std::fs::remove_file(fifo)?;
    Ok(Started::Yes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::time::Duration;

    fn fifo(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("exec.fifo");
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        path
    }

    /// A child that stands in for runc's init: it opens the fifo for writing (waiting for
    /// the reader), writes `byte` if any, and exits after `linger`.
    fn writer(path: &Path, byte: Option<u8>, linger: Duration) -> (std::process::Child, OwnedFd) {
        let script = format!(
            "exec 3>{}; {} sleep {}",
            path.display(),
            byte.map_or(String::new(), |b| format!("printf '{}' >&3;", b as char)),
            linger.as_secs_f64()
        );
        let child = std::process::Command::new("sh")
            .args(["-c", &script])
            .spawn()
            .unwrap();
        let pidfd = crate::sys::pidfd_open(child.id() as i32).unwrap();
        (child, pidfd)
    }

    #[tokio::test]
    async fn the_go_is_read_and_the_fifo_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = fifo(dir.path());
        let (mut child, pidfd) = writer(&path, Some(b'0'), Duration::ZERO);
        assert_eq!(start(&path, pidfd.as_fd()).await.unwrap(), Started::Yes);
        assert!(!path.exists(), "the fifo is removed, as runc start does");
        child.wait().unwrap();
    }

    #[tokio::test]
    async fn a_start_waits_for_the_inits_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = fifo(dir.path());
        let closing = dir.path().join("closing");
        // Writes the go, then closes its end only a while later, and lives on.
        let script = format!(
            "exec 3>{}; printf 0 >&3; sleep 0.3; : >{}; exec 3>&-; sleep 30",
            path.display(),
            closing.display()
        );
        let mut child = std::process::Command::new("sh")
            .args(["-c", &script])
            .spawn()
            .unwrap();
        let pidfd = crate::sys::pidfd_open(child.id() as i32).unwrap();
        assert_eq!(start(&path, pidfd.as_fd()).await.unwrap(), Started::Yes);
        assert!(
            closing.exists(),
            "returned before the writer closed its end"
        );
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[tokio::test]
    async fn an_init_that_ends_without_the_go_is_told() {
        let dir = tempfile::tempdir().unwrap();
        let path = fifo(dir.path());
        // Ends without ever opening the fifo.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pidfd = crate::sys::pidfd_open(child.id() as i32).unwrap();
        let started = start(&path, pidfd.as_fd());
        let started = tokio::time::timeout(Duration::from_secs(10), started).await;
        assert_eq!(started.unwrap().unwrap(), Started::InitEnded);
        assert!(path.exists(), "an unstarted container's fifo stays");
        child.wait().unwrap();
        // Opens it and ends without writing.
        let (mut child, pidfd) = writer(&path, None, Duration::ZERO);
        assert_eq!(
            start(&path, pidfd.as_fd()).await.unwrap(),
            Started::InitEnded
        );
        child.wait().unwrap();
    }

    #[tokio::test]
    async fn no_fifo_is_left_to_runc() {
        let dir = tempfile::tempdir().unwrap();
        let me = crate::sys::pidfd_open(std::process::id() as i32).unwrap();
        let missing = dir.path().join("exec.fifo");
        assert_eq!(start(&missing, me.as_fd()).await.unwrap(), Started::NoFifo);
        let plain = dir.path().join("plain");
        std::fs::File::create(&plain)
            .unwrap()
            .write_all(b"0")
            .unwrap();
        assert_eq!(start(&plain, me.as_fd()).await.unwrap(), Started::NoFifo);
        assert!(plain.exists());
        let link = dir.path().join("link");
        let target = fifo(dir.path());
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert_eq!(start(&link, me.as_fd()).await.unwrap(), Started::NoFifo);
        assert!(target.exists(), "a link is not followed");
    }
}
