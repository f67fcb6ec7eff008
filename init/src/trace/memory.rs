//! A process's memory: reading the strings and pointer arrays an exec names, and writing the
//! new argv below its stack pointer. Every address comes from the tracee and is untrusted:
//! reads are bounded, and a bad address is an error, never a fault in init.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

/// One argv entry of the rewritten exec: a string of ours, or one the tracee already has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    New(Vec<u8>),
    Old(u64),
}

/// What to write into the tracee, and where its parts land.
#[derive(Debug, PartialEq, Eq)]
pub struct Block {
    pub base: u64,
    pub bytes: Vec<u8>,
    /// Address of the new filename (a NUL-terminated string).
    pub filename: u64,
    /// Address of the new argv (a NULL-terminated array of pointers).
    pub argv: u64,
}

/// The new exec's filename and argv laid out in one block that ends `below` bytes under the
/// stack pointer `sp`, 16-byte aligned: the pointer array first, then the strings. Memory
/// under the stack pointer (past the red zone) is free for anyone to clobber, and a
/// successful exec replaces it all. None if it would not fit in the address space.
pub fn layout(sp: u64, below: u64, filename: &[u8], argv: &[Arg]) -> Option<Block> {
    let pointers = (argv.len() as u64 + 1) * 8;
    let strings: u64 = std::iter::once(filename)
        .chain(argv.iter().filter_map(|a| match a {
            Arg::New(s) => Some(s.as_slice()),
            Arg::Old(_) => None,
        }))
        .map(|s| s.len() as u64 + 1)
        .sum();
    let size = pointers + strings;
    let base = sp.checked_sub(below)?.checked_sub(size)? & !15;
    let mut bytes = vec![0u8; pointers as usize];
    let mut next = base + pointers;
    let mut push = |bytes: &mut Vec<u8>, s: &[u8]| {
        let at = next;
        bytes.extend_from_slice(s);
        bytes.push(0);
        next += s.len() as u64 + 1;
        at
    };
    let filename_at = push(&mut bytes, filename);
    for (i, arg) in argv.iter().enumerate() {
        let at = match arg {
            Arg::New(s) => push(&mut bytes, s),
            Arg::Old(at) => *at,
        };
        bytes[i * 8..i * 8 + 8].copy_from_slice(&at.to_ne_bytes());
    }
    Some(Block {
        base,
        bytes,
        filename: filename_at,
        argv: base,
    })
}

/// Whose memory, and how init reaches it.
#[derive(Debug, Clone, Copy)]
pub enum Memory {
    /// A thread's, opened for each access through `/proc/TID/mem`, under the kernel's ptrace
    /// access check, rather than with process_vm_readv/writev: containerd's default seccomp
    /// profile (Kubernetes' RuntimeDefault) refuses those to a process without
    /// CAP_SYS_PTRACE.
    Of(libc::pid_t),
    /// Through a `/proc/PID/mem` opened earlier (read and write), while the kernel still let
    /// init open it. It stays bound to the memory it was opened on: once that process has
    /// exec'd or ended, every access fails.
    Opened(RawFd),
}

fn remote(memory: Memory, addr: u64, local: libc::iovec, write: bool) -> io::Result<usize> {
    let opened;
    let fd = match memory {
        Memory::Of(tid) => {
            opened = std::fs::OpenOptions::new()
                .read(!write)
                .write(write)
                .open(format!("/proc/{tid}/mem"))?;
            opened.as_raw_fd()
        }
        Memory::Opened(fd) => fd,
    };
    // The file offset is the address, which must fit an off_t.
    let offset = i64::try_from(addr).map_err(|_| io::Error::from_raw_os_error(libc::EFAULT))?;
    // SAFETY: `local` describes memory of ours that is valid for its length; the remote side
    // is checked by the kernel, which fails (EIO) rather than faulting us.
    let n = unsafe {
        if write {
            libc::pwrite64(fd, local.iov_base, local.iov_len, offset)
        } else {
            libc::pread64(fd, local.iov_base, local.iov_len, offset)
        }
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Reads `buf.len()` bytes at `addr`, or fails.
pub fn read(memory: Memory, addr: u64, buf: &mut [u8]) -> io::Result<()> {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    match remote(memory, addr, local, false)? {
        n if n == buf.len() => Ok(()),
        _ => Err(io::Error::from_raw_os_error(libc::EFAULT)),
    }
}

/// Writes `bytes` at `addr`, or fails.
pub fn write(memory: Memory, addr: u64, bytes: &[u8]) -> io::Result<()> {
    let local = libc::iovec {
        iov_base: bytes.as_ptr().cast_mut().cast(),
        iov_len: bytes.len(),
    };
    match remote(memory, addr, local, true)? {
        n if n == bytes.len() => Ok(()),
        _ => Err(io::Error::from_raw_os_error(libc::EFAULT)),
    }
}

const PAGE: u64 = 4096;

/// The NUL-terminated string at `addr`, at most `max` bytes before the NUL. Read a page at a
/// time, so that a string ending just before an unmapped page is still read.
pub fn read_cstr(memory: Memory, addr: u64, max: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = addr;
    let mut chunk = [0u8; PAGE as usize];
    loop {
        let len = (PAGE - at % PAGE) as usize;
        read(memory, at, &mut chunk[..len])?;
        if let Some(end) = chunk[..len].iter().position(|&b| b == 0) {
            out.extend_from_slice(&chunk[..end]);
            return Ok(out);
        }
        out.extend_from_slice(&chunk[..len]);
        if out.len() > max {
            return Err(io::Error::from_raw_os_error(libc::E2BIG));
        }
        at = at
            .checked_add(len as u64)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EFAULT))?;
    }
}

/// The pointers of the NULL-terminated array at `addr`, at most `max` of them.
pub fn read_pointers(memory: Memory, addr: u64, max: usize) -> io::Result<Vec<u64>> {
    let mut out = Vec::new();
    if addr == 0 {
        return Ok(out);
    }
    let mut at = addr;
    let mut chunk = [0u8; PAGE as usize];
    loop {
        let len = (PAGE - at % PAGE) as usize & !7;
        let len = if len == 0 { 8 } else { len };
        read(memory, at, &mut chunk[..len])?;
        for word in chunk[..len].chunks_exact(8) {
            let p = u64::from_ne_bytes(word.try_into().expect("8 bytes"));
            if p == 0 {
                return Ok(out);
            }
            if out.len() == max {
                return Err(io::Error::from_raw_os_error(libc::E2BIG));
            }
            out.push(p);
        }
        at = at
            .checked_add(len as u64)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EFAULT))?;
    }
}

/// The test process's own `/proc/self/mem`, opened to read and write; None (the test is
/// skipped) under qemu-user, which does not give its guest one.
#[cfg(test)]
pub fn own_memory() -> Option<std::fs::File> {
    if std::env::var_os("CROSSARCH_TEST_EMULATOR").is_some_and(|e| !e.is_empty()) {
        eprintln!("skipped under emulation: qemu-user does not give its guest /proc/self/mem");
        return None;
    }
    let mem = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/proc/self/mem");
    Some(mem.expect("/proc/self/mem opens"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cstr_at(block: &Block, addr: u64) -> &[u8] {
        let off = (addr - block.base) as usize;
        let end = block.bytes[off..].iter().position(|&b| b == 0).unwrap();
        &block.bytes[off..off + end]
    }

    fn pointer(block: &Block, i: usize) -> u64 {
        let off = (block.argv - block.base) as usize + i * 8;
        u64::from_ne_bytes(block.bytes[off..off + 8].try_into().unwrap())
    }

    #[test]
    fn the_block_sits_below_the_red_zone_aligned_with_new_and_old_strings() {
        let sp = 0x7fff_0000_1234;
        let argv = [
            Arg::New(b"/dev/.crossarch/qemu-aarch64-static".to_vec()),
            Arg::New(b"-0".to_vec()),
            Arg::Old(0x5555_0000),
            Arg::New(b"/bin/busybox".to_vec()),
            Arg::Old(0x5555_0010),
        ];
        let block = layout(sp, 128, b"/dev/.crossarch/qemu-aarch64-static", &argv).unwrap();
        assert_eq!(block.base % 16, 0);
        assert!(block.base + block.bytes.len() as u64 <= sp - 128);
        assert_eq!(block.argv, block.base);
        assert_eq!(
            cstr_at(&block, block.filename),
            b"/dev/.crossarch/qemu-aarch64-static"
        );
        assert_eq!(
            cstr_at(&block, pointer(&block, 0)),
            b"/dev/.crossarch/qemu-aarch64-static"
        );
        assert_eq!(cstr_at(&block, pointer(&block, 1)), b"-0");
        assert_eq!(pointer(&block, 2), 0x5555_0000);
        assert_eq!(cstr_at(&block, pointer(&block, 3)), b"/bin/busybox");
        assert_eq!(pointer(&block, 4), 0x5555_0010);
        assert_eq!(pointer(&block, 5), 0, "argv ends with NULL");
    }

    #[test]
    fn a_stack_pointer_near_zero_gives_no_block() {
        assert_eq!(layout(100, 128, b"x", &[]), None);
        assert_eq!(layout(140, 128, b"long filename", &[]), None);
        assert!(layout(200, 128, b"long filename", &[]).is_some());
    }

    #[test]
    fn reads_of_our_own_memory_stop_at_nul_and_at_bad_addresses() {
        if std::env::var_os("CROSSARCH_TEST_EMULATOR").is_some_and(|e| !e.is_empty()) {
            eprintln!("skipped under emulation: qemu-user does not give its guest /proc/self/mem");
            return;
        }
        let me = Memory::Of(std::process::id() as libc::pid_t);
        let s = b"hello\0world";
        assert_eq!(read_cstr(me, s.as_ptr() as u64, 64).unwrap(), b"hello");
        assert!(read_cstr(me, 8, 64).is_err(), "address 8 is never mapped");
        let long = vec![b'a'; 10_000];
        assert!(read_cstr(me, long.as_ptr() as u64, 4096).is_err());
        let ptrs: [u64; 3] = [1, 2, 0];
        assert_eq!(
            read_pointers(me, ptrs.as_ptr() as u64, 10).unwrap(),
            vec![1, 2]
        );
        assert!(read_pointers(me, ptrs.as_ptr() as u64, 1).is_err());
        assert_eq!(read_pointers(me, 0, 10).unwrap(), Vec::<u64>::new());
    }

    #[test]
    fn an_opened_memory_reads_and_writes_until_its_process_has_ended() {
        let Some(mem) = own_memory() else {
            return;
        };
        let opened = Memory::Opened(mem.as_raw_fd());
        let buf = *b"abc\0";
        write(opened, buf.as_ptr() as u64, b"xy").unwrap();
        assert_eq!(read_cstr(opened, buf.as_ptr() as u64, 8).unwrap(), b"xyc");
        // A child's memory reads while it lives, and never once it has ended.
        let mut child = std::process::Command::new("sleep")
            .arg("10")
            .spawn()
            .unwrap();
        let exe = format!("/proc/{}/exe", child.id());
        while std::fs::read_link(&exe).map_or(true, |p| !p.ends_with("sleep")) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let mem = std::fs::File::open(format!("/proc/{}/mem", child.id())).unwrap();
        let maps = std::fs::read_to_string(format!("/proc/{}/maps", child.id())).unwrap();
        let start = maps.split('-').next().unwrap();
        let mapped = u64::from_str_radix(start, 16).unwrap();
        let mut byte = [0u8];
        let theirs = Memory::Opened(mem.as_raw_fd());
        read(theirs, mapped, &mut byte).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(read(theirs, mapped, &mut byte).is_err());
    }
}
