//! The seccomp filter a traced program starts under: `execve` and `execveat` of the host's
//! own syscall ABI wait for init on the filter's listener (SECCOMP_RET_USER_NOTIF), and so
//! do the calls that change a process's user or group ids (`setuid` and its kin), the last
//! moment at which init can still read a process that leaves root; everything else runs
//! untouched, and so does an `execveat` whose directory is
//! [`QEMU_EXEC`]: the exec of qemu that init writes in place of a foreign one, which must not
//! wait again. (A program that makes such a call itself gains nothing: it is an exec that
//! the kernel does as it would without trace mode, and its directory, an invalid descriptor,
//! is ignored only for an absolute path.)
//!
//! Written out by hand, seventeen instructions, rather than built with a filter crate: those
//! check the architecture and kill the process on a mismatch, and a container may run
//! 32-bit programs natively (i386 on x86_64, arm on arm64) whose syscalls carry another
//! AUDIT_ARCH. Here such syscalls are allowed and not traced.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD (0) | BPF_W (0) | BPF_ABS (0x20)
const BPF_JEQ_K: u16 = 0x15; // BPF_JMP (5) | BPF_JEQ (0x10) | BPF_K (0)
const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K

/// Offsets in `struct seccomp_data`.
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;
/// The low half of `args[0]` (both host architectures are little-endian): the kernel takes
/// a descriptor as an int.
const ARG0_OFFSET: u32 = 16;

/// The `execveat` directory that marks init's exec of qemu; neither AT_FDCWD nor any
/// descriptor.
pub const QEMU_EXEC: i32 = -0x7158;

/// The host ABI whose exec syscalls wait for init.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Abi {
    pub audit_arch: u32,
    /// The syscall numbers that wait. (x32's, with bit 30 set, carry 32-bit pointers and
    /// are left alone.)
    pub execve: u32,
    pub execveat: u32,
    /// setuid, setgid, setreuid, setregid, setresuid, setresgid, setfsuid, setfsgid.
    pub setids: [u32; 8],
}

#[allow(dead_code)] // on an aarch64 host, only the tests use it
pub const X86_64: Abi = Abi {
    audit_arch: 0xc000_003e, // AUDIT_ARCH_X86_64
    execve: 59,
    execveat: 322,
    setids: [105, 106, 113, 114, 117, 119, 122, 123],
};

#[allow(dead_code)] // on an x86_64 host, only the tests use it
pub const AARCH64: Abi = Abi {
    audit_arch: 0xc000_00b7, // AUDIT_ARCH_AARCH64
    execve: 221,
    execveat: 281,
    setids: [146, 144, 145, 143, 147, 149, 151, 152],
};

#[cfg(target_arch = "x86_64")]
pub const HOST: Abi = X86_64;
#[cfg(target_arch = "aarch64")]
pub const HOST: Abi = AARCH64;

/// The program: load the arch, allow any other; load the number, notify init of `execve`
/// and of the id changes, allow all but `execveat`; load its directory, allow init's exec of
/// qemu, notify init of the rest.
pub fn program(abi: Abi) -> Vec<Insn> {
    let stmt = |code, k| Insn {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    // A jump's offsets count the instructions skipped.
    let jeq = |k, jt, jf| Insn {
        code: BPF_JEQ_K,
        jt,
        jf,
        k,
    };
    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
    const NOTIFY: u32 = libc::SECCOMP_RET_USER_NOTIF;
    // Laid out as: arch check, number load, one jump per notified number, the execveat
    // check (three), then ALLOW and NOTIFY.
    let notified: Vec<u32> = std::iter::once(abi.execve).chain(abi.setids).collect();
    let n = notified.len() as u8;
    let mut prog = vec![
        stmt(BPF_LD_W_ABS, ARCH_OFFSET),
        jeq(abi.audit_arch, 0, n + 4), // another ABI: to ALLOW
        stmt(BPF_LD_W_ABS, NR_OFFSET),
    ];
    for (i, &nr) in notified.iter().enumerate() {
        // To NOTIFY, past the rest of these, the execveat check and ALLOW.
        prog.push(jeq(nr, n - 1 - i as u8 + 4, 0));
    }
    prog.extend([
        jeq(abi.execveat, 0, 2), // anything else: to ALLOW
        stmt(BPF_LD_W_ABS, ARG0_OFFSET),
        jeq(QEMU_EXEC as u32, 0, 1), // init's qemu: ALLOW; else NOTIFY
        stmt(BPF_RET_K, ALLOW),
        stmt(BPF_RET_K, NOTIFY),
    ]);
    prog
}

/// Whether the host's syscall `nr` is one of the id changes the filter notifies.
pub fn is_setid(nr: u64) -> bool {
    HOST.setids.contains(&(nr as u32))
}

/// SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV.
const WAIT_KILLABLE_RECV: libc::c_ulong = 1 << 5;

/// Installs `prog` on the calling thread, after setting no_new_privs (which an unprivileged
/// filter needs), and returns the filter's listener (close-on-exec). Allocation-free: it runs
/// between fork and exec.
pub fn install(prog: &[Insn]) -> Result<OwnedFd, Errno> {
    #[repr(C)]
    struct SockFprog {
        len: u16,
        filter: *const Insn,
    }
    let fprog = SockFprog {
        len: prog.len() as u16,
        filter: prog.as_ptr(),
    };
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(Errno::last());
    }
    // Once init has taken an exec, only SIGKILL cuts its wait short (Linux 5.19 or later;
    // before, a signal can make the exec fail with EINTR, which init cannot prevent).
    let mut flags = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER | WAIT_KILLABLE_RECV;
    let rc = loop {
        // SAFETY: `fprog` points at `prog`, both alive for the call; the kernel copies them.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                flags,
                &fprog as *const SockFprog,
            )
        };
        if rc >= 0 {
            break rc;
        }
        match Errno::last() {
            Errno::EINVAL if flags & WAIT_KILLABLE_RECV != 0 => flags &= !WAIT_KILLABLE_RECV,
            err => return Err(err),
        }
    };
    // SAFETY: the kernel just made this descriptor for us.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as RawFd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ELSE: u64 = 3;

    /// Runs the classic BPF `prog` on one `seccomp_data` (arch, nr, args[0]), as the kernel
    /// would.
    fn run(prog: &[Insn], arch: u32, nr: u32, arg0: u64) -> u32 {
        let mut acc = 0u32;
        let mut pc = 0usize;
        loop {
            let insn = prog[pc];
            match insn.code {
                BPF_LD_W_ABS => {
                    acc = match insn.k {
                        ARCH_OFFSET => arch,
                        NR_OFFSET => nr,
                        ARG0_OFFSET => arg0 as u32,
                        other => panic!("load of offset {other}"),
                    };
                    pc += 1;
                }
                BPF_JEQ_K => {
                    let skip = if acc == insn.k { insn.jt } else { insn.jf };
                    pc += 1 + skip as usize;
                }
                BPF_RET_K => return insn.k,
                other => panic!("instruction {other:#x}"),
            }
        }
    }

    #[test]
    fn only_the_host_abis_execs_wait_for_init() {
        for abi in [X86_64, AARCH64] {
            let prog = program(abi);
            for nr in [abi.execve, abi.execveat] {
                for dirfd in [libc::AT_FDCWD, 0, 3, i32::MAX] {
                    let arg0 = dirfd as i64 as u64;
                    assert_eq!(
                        run(&prog, abi.audit_arch, nr, arg0),
                        libc::SECCOMP_RET_USER_NOTIF
                    );
                    // The same number from a 32-bit program runs as it is, never killed.
                    assert_eq!(run(&prog, 0x4000_0003, nr, arg0), libc::SECCOMP_RET_ALLOW);
                }
            }
            for nr in abi.setids {
                assert_eq!(
                    run(&prog, abi.audit_arch, nr, ELSE),
                    libc::SECCOMP_RET_USER_NOTIF
                );
                assert_eq!(run(&prog, 0x4000_0003, nr, ELSE), libc::SECCOMP_RET_ALLOW);
            }
            for nr in [
                0, 1, 57, 56, 104, 107, 116, 118, 120, 124, 142, 148, 150, 153, 220,
            ] {
                if ![abi.execve, abi.execveat].contains(&nr) && !abi.setids.contains(&nr) {
                    assert_eq!(
                        run(&prog, abi.audit_arch, nr, ELSE),
                        libc::SECCOMP_RET_ALLOW
                    );
                }
            }
        }
    }

    #[test]
    fn inits_exec_of_qemu_does_not_wait_again() {
        for abi in [X86_64, AARCH64] {
            let prog = program(abi);
            let mark = QEMU_EXEC as i64 as u64;
            assert_eq!(
                run(&prog, abi.audit_arch, abi.execveat, mark),
                libc::SECCOMP_RET_ALLOW
            );
            // The kernel takes the descriptor's low half only.
            assert_eq!(
                run(&prog, abi.audit_arch, abi.execveat, mark as u32 as u64),
                libc::SECCOMP_RET_ALLOW
            );
            // execve has no directory: its first argument, a path pointer, is never read.
            assert_eq!(
                run(&prog, abi.audit_arch, abi.execve, mark),
                libc::SECCOMP_RET_USER_NOTIF
            );
        }
    }

    #[test]
    fn the_numbers_are_the_kernels() {
        assert_eq!(
            [HOST.execve, HOST.execveat],
            [libc::SYS_execve as u32, libc::SYS_execveat as u32]
        );
        assert_eq!(
            HOST.setids,
            [
                libc::SYS_setuid,
                libc::SYS_setgid,
                libc::SYS_setreuid,
                libc::SYS_setregid,
                libc::SYS_setresuid,
                libc::SYS_setresgid,
                libc::SYS_setfsuid,
                libc::SYS_setfsgid,
            ]
            .map(|nr| nr as u32)
        );
        assert_ne!(QEMU_EXEC, libc::AT_FDCWD);
    }
}
