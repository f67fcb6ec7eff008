//! Looks inside a container's root: the I/O half of resolving args\[0\], whose rules are the
//! route crate's [`resolve::walk`].
//!
//! Every path is opened with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` relative to
//! the root held open, so that `/`, `..` and absolute symlinks in the image stop at the
//! container's root and never reach the host's files. A candidate is first opened with
//! O_PATH and checked, so that a FIFO or a device node in the image is never opened; only a
//! regular file is reopened for reading, through `/proc/self/fd`, the very inode that was
//! checked. The image is untrusted, and its files may sit on a hung volume: callers run
//! [`in_root`] off the ttrpc thread, with a time bound.

use std::{
    fs::File,
    io,
    os::{
        fd::{AsFd, AsRawFd, OwnedFd},
        unix::{
            ffi::OsStrExt,
            fs::{FileExt, OpenOptionsExt},
        },
    },
    path::{Path, PathBuf},
};

use crossarch_route::mounts::{leads_to_a_mount, mount_at, Walk, MAX_STEPS};
pub use crossarch_route::mounts::{place, Mount, Place};
use crossarch_route::resolve::PATH_MAX;
use crossarch_route::resolve::{self, Error, Lookup, MissKind, Resolved};
use nix::{
    errno::Errno,
    fcntl::{openat2, OFlag, OpenHow, ResolveFlag},
};

/// The root directory of a container, held open so every lookup is relative to it.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

impl Root {
    /// Opens a root: the bundle's rootfs at Create, `/proc/<init pid>/root` at Exec (which
    /// also sees the container's volume mounts).
    pub fn open(path: impl AsRef<Path>) -> Result<Root, Error> {
        let path = path.as_ref();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(path)
            .map_err(|source| Error::Root {
                path: path.to_owned(),
                source,
            })?;
        Ok(Root {
            fd: file.into(),
            path: path.to_owned(),
        })
    }

    /// The host path the root was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// openat2 with `RESOLVE_IN_ROOT`: `/` and `..` stop at the root, absolute symlinks are
    /// resolved against it, and magic links (`/proc/self/root`, ...) are refused.
    fn open_in_root(&self, path: &Path) -> Result<Result<OwnedFd, MissKind>, Error> {
        self.open_at(path, Links::Follow)
    }

    /// The O_PATH fd of `path` in the root, following symlinks as `links` says.
    fn open_at(&self, path: &Path, links: Links) -> Result<Result<OwnedFd, MissKind>, Error> {
        if path.as_os_str().as_bytes().contains(&0) {
            return Ok(Err(MissKind::NotFound));
        }
        // O_PATH: opening a FIFO would block, and opening a device node from an image could
        // have side effects on the host device it names. openat2 rejects any flag O_PATH
        // ignores, O_NOCTTY included.
        let (flags, resolve) = match links {
            Links::Follow => (OFlag::empty(), ResolveFlag::RESOLVE_NO_MAGICLINKS),
            Links::Refuse => (OFlag::O_NOFOLLOW, ResolveFlag::RESOLVE_NO_SYMLINKS),
        };
        let how = || {
            OpenHow::new()
                .flags(OFlag::O_PATH | OFlag::O_CLOEXEC | flags)
                .resolve(ResolveFlag::RESOLVE_IN_ROOT | resolve)
        };
        // EAGAIN means a rename or mount raced with the lookup; the kernel asks us to retry.
        for _ in 0..16 {
            match openat2(self.fd.as_fd(), path, how()) {
                Ok(fd) => return Ok(Ok(fd)),
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                Err(e @ (Errno::ENOSYS | Errno::E2BIG)) => return Err(Error::NoOpenat2(e.into())),
                Err(e) => return Ok(Err(miss_from(&e.into()))),
            }
        }
        Ok(Err(MissKind::Os(libc::EAGAIN)))
    }
}

/// Resolves args\[0\] inside `root`: the first of `candidates` (from
/// [`resolve::search_plan`]) that is an executable regular file, then its `#!` interpreters,
/// then its ELF loader.
pub fn in_root(root: &Root, candidates: &[PathBuf], cwd: &str) -> Result<Resolved, Error> {
    resolve::walk(&mut &*root, candidates, cwd)
}

impl Lookup for &Root {
    type Found = OwnedFd;
    type File = File;

    fn executable(&mut self, path: &Path) -> Result<Result<OwnedFd, MissKind>, Error> {
        Ok(self.open_in_root(path)?.and_then(executable))
    }

    fn open(&mut self, fd: OwnedFd) -> Result<File, MissKind> {
        // Reopening through /proc/self/fd reads the very inode that was checked, so the file
        // cannot be swapped for a device node in between.
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        // A write lease another process holds (F_SETLEASE) makes a plain open wait up to
        // lease-break-time, 45 s by default; with O_NONBLOCK, break_lease() (fs/locks.c)
        // fails with EWOULDBLOCK at once, still telling the holder to let go. Reads of a
        // regular file ignore the flag.
        match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK)
            .open(path)
        {
            Ok(file) => Ok(file),
            Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Err(MissKind::Leased),
            Err(e) => Err(miss_from(&e)),
        }
    }

    fn regular_file(&mut self, path: &Path) -> Result<Result<(), MissKind>, Error> {
        Ok(self.open_in_root(path)?.and_then(regular))
    }

    fn read_at(&mut self, file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        file.read_at(buf, offset)
    }

    fn len(&mut self, file: &File) -> u64 {
        file.metadata().map(|m| m.len()).unwrap_or(0)
    }
}

/// `fd` (O_PATH), when it is an executable regular file.
fn executable(fd: OwnedFd) -> Result<OwnedFd, MissKind> {
    let st = fstat(&fd).map_err(|e| miss_from(&e))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(MissKind::NotRegularFile);
    }
    // Go's LookPath, which runc uses, accepts any of the three execute bits.
    if st.st_mode & 0o111 == 0 {
        return Err(MissKind::NotExecutable { mode: st.st_mode });
    }
    Ok(fd)
}

fn regular(fd: OwnedFd) -> Result<(), MissKind> {
    match fstat(&fd) {
        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFREG => Ok(()),
        _ => Err(MissKind::NotRegularFile),
    }
}

/// Whether a lookup follows symlinks.
#[derive(Clone, Copy)]
enum Links {
    Follow,
    /// The trailing link itself, as an O_PATH fd; any other link fails with ELOOP.
    Refuse,
}

/// [`in_root`] for a container not started yet: a path under one of its bind `mounts` is
/// read in that mount's source, the rest in `root`, with the same confinement. Symlinks
/// are followed one at a time as in the running container: from a source into the root,
/// from the root into a source ([`Walk`]). The destinations are first resolved as runc
/// resolves them when it mounts, in order, through the image's links and the earlier mounts.
pub fn in_root_with_mounts(
    root: &Root,
    mounts: &[Mount],
    candidates: &[PathBuf],
    cwd: &str,
) -> Result<Resolved, Error> {
    let mut with = WithMounts {
        root,
        mounts: Vec::with_capacity(mounts.len()),
        steps: std::cell::Cell::new(0),
    };
    for m in mounts {
        let destination = with
            .resolve(&m.destination, Lenient::Yes)?
            .unwrap_or_else(|_| {
                // Too many lookups already: as written.
                m.destination.clone()
            });
        with.mounts.push(Mount {
            destination,
            bind_source: m.bind_source.clone(),
        });
    }
    resolve::walk(&mut with, candidates, cwd)
}

struct WithMounts<'a> {
    root: &'a Root,
    /// The spec's mounts, each destination resolved.
    mounts: Vec<Mount>,
    /// Components looked up so far, at most [`MAX_STEPS`].
    steps: std::cell::Cell<usize>,
}

/// A missing component: the end of the lookup, or (for a mount destination, which runc
/// creates) a directory to be made, with the rest taken as written.
#[derive(Clone, Copy, PartialEq)]
enum Lenient {
    Yes,
    No,
}

impl WithMounts<'_> {
    /// `path` with every symlink followed, each read where it is: in the root, in a mount's
    /// source, or the source itself at a bind's destination.
    fn resolve(&self, path: &Path, lenient: Lenient) -> Result<Result<PathBuf, MissKind>, Error> {
        if path.as_os_str().len() >= PATH_MAX {
            return Ok(Err(MissKind::Os(libc::ENAMETOOLONG)));
        }
        let mut walk = Walk::new(path);
        while let Some(step) = walk.next_step() {
            let step = step.to_owned();
            if self.steps.get() >= MAX_STEPS {
                return Ok(Err(MissKind::TooManySteps));
            }
            self.steps.set(self.steps.get() + 1);
            let mode = match mount_at(&step, &self.mounts) {
                // runc made it: a directory, whose files nothing can read yet.
                Some(m) if m.bind_source.is_none() => libc::S_IFDIR,
                _ => match self.open(&step, Links::Refuse)? {
                    Ok(fd) => match fstat(&fd).map(|st| st.st_mode & libc::S_IFMT) {
                        Ok(libc::S_IFLNK) => {
                            let followed = link_target(&fd).and_then(|target| {
                                walk.symlink(&target).map_err(|_| MissKind::SymlinkLoop)
                            });
                            match followed {
                                Ok(()) => continue,
                                Err(miss) => return Ok(Err(miss)),
                            }
                        }
                        Ok(mode) => mode,
                        Err(e) => return Ok(Err(miss_from(&e))),
                    },
                    // runc makes the directories on the way to a mount.
                    Err(MissKind::NotFound) if leads_to_a_mount(&step, &self.mounts) => {
                        libc::S_IFDIR
                    }
                    Err(_) if lenient == Lenient::Yes => {
                        while walk.next_step().is_some() {}
                        break;
                    }
                    Err(miss) => return Ok(Err(miss)),
                },
            };
            if mode != libc::S_IFDIR && walk.has_more() {
                return Ok(Err(MissKind::NotFound));
            }
        }
        Ok(Ok(walk.resolved().to_owned()))
    }

    /// The O_PATH fd of the container's `path` (without `..` or links to follow in the
    /// container), opened where [`place`] puts it.
    fn open(&self, path: &Path, links: Links) -> Result<Result<OwnedFd, MissKind>, Error> {
        match place(path, &self.mounts) {
            Place::Root => self.root.open_at(path, links),
            Place::Bind { dir, rel } => match Root::open(&dir) {
                Ok(source) => source.open_at(&rel, links),
                // runc fails on a missing source in its own words.
                Err(_) => Ok(Err(MissKind::NotFound)),
            },
            // A host path from the spec, which the mount resolves on the host, links and all.
            Place::Source(source) => Ok(std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
                .open(&source)
                .map(OwnedFd::from)
                .map_err(|e| miss_from(&e))),
            Place::Unknowable => Ok(Err(MissKind::NotFound)),
        }
    }

    /// The O_PATH fd of what `path` resolves to.
    fn find(&self, path: &Path) -> Result<Result<OwnedFd, MissKind>, Error> {
        match self.resolve(path, Lenient::No)? {
            Ok(resolved) => self.open(&resolved, Links::Follow),
            Err(miss) => Ok(Err(miss)),
        }
    }
}

impl Lookup for WithMounts<'_> {
    type Found = OwnedFd;
    type File = File;

    fn executable(&mut self, path: &Path) -> Result<Result<OwnedFd, MissKind>, Error> {
        Ok(self.find(path)?.and_then(executable))
    }

    fn open(&mut self, fd: OwnedFd) -> Result<File, MissKind> {
        self.root.open(fd)
    }

    fn regular_file(&mut self, path: &Path) -> Result<Result<(), MissKind>, Error> {
        Ok(self.find(path)?.and_then(regular))
    }

    fn read_at(&mut self, file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.root.read_at(file, buf, offset)
    }

    fn len(&mut self, file: &File) -> u64 {
        self.root.len(file)
    }
}

/// What the symlink `fd` (O_PATH) points to; an empty target names nothing, as for the kernel.
fn link_target(fd: &OwnedFd) -> Result<PathBuf, MissKind> {
    match nix::fcntl::readlinkat(fd, "") {
        Ok(target) if !target.is_empty() => Ok(PathBuf::from(target)),
        Ok(_) => Err(MissKind::NotFound),
        Err(e) => Err(miss_from(&e.into())),
    }
}

fn fstat(fd: &OwnedFd) -> io::Result<libc::stat> {
    nix::sys::stat::fstat(fd).map_err(io::Error::from)
}

fn miss_from(e: &io::Error) -> MissKind {
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => MissKind::NotFound,
        Some(libc::ELOOP) => MissKind::SymlinkLoop,
        Some(errno) => MissKind::Os(errno),
        None => MissKind::Os(libc::EIO),
    }
}

#[cfg(test)]
mod tests;
