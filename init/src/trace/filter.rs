//! The seccomp filter a traced program starts under: `execve` and `execveat` of the host's
//! own syscall ABI wait for init on the filter's listener (SECCOMP_RET_USER_NOTIF);
//! everything else runs untouched.
//!
//! Written out by hand, seven instructions, rather than built with a filter crate: those
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

/// The host ABI whose exec syscalls wait for init.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Abi {
    pub audit_arch: u32,
    /// The syscall numbers that wait: execve and execveat. (x32's, with bit 30 set, carry
    /// 32-bit pointers and are left alone.)
    pub exec_syscalls: &'static [u32],
}

#[allow(dead_code)] // on an aarch64 host, only the tests use it
pub const X86_64: Abi = Abi {
    audit_arch: 0xc000_003e, // AUDIT_ARCH_X86_64
    exec_syscalls: &[59, 322],
};

#[allow(dead_code)] // on an x86_64 host, only the tests use it
pub const AARCH64: Abi = Abi {
    audit_arch: 0xc000_00b7, // AUDIT_ARCH_AARCH64
    exec_syscalls: &[221, 281],
};

#[cfg(target_arch = "x86_64")]
pub const HOST: Abi = X86_64;
#[cfg(target_arch = "aarch64")]
pub const HOST: Abi = AARCH64;

/// The program: load the arch, allow any other; load the number, notify init of the exec
/// ones, allow the rest.
pub fn program(abi: Abi) -> Vec<Insn> {
    let n = abi.exec_syscalls.len();
    let stmt = |code, k| Insn {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let mut prog = Vec::with_capacity(n + 5);
    prog.push(stmt(BPF_LD_W_ABS, ARCH_OFFSET));
    // Not this ABI: jump over the number checks and the NOTIFY to the ALLOW.
    prog.push(Insn {
        code: BPF_JEQ_K,
        jt: 0,
        jf: (n + 1) as u8,
        k: abi.audit_arch,
    });
    prog.push(stmt(BPF_LD_W_ABS, NR_OFFSET));
    for (i, &nr) in abi.exec_syscalls.iter().enumerate() {
        // A match jumps over the remaining checks and the ALLOW, to the NOTIFY.
        prog.push(Insn {
            code: BPF_JEQ_K,
            jt: (n - i) as u8,
            jf: 0,
            k: nr,
        });
    }
    prog.push(stmt(BPF_RET_K, libc::SECCOMP_RET_ALLOW));
    prog.push(stmt(BPF_RET_K, libc::SECCOMP_RET_USER_NOTIF));
    prog
}

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
    // SAFETY: `fprog` points at `prog`, both alive for the call; the kernel copies them.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &fprog as *const SockFprog,
        )
    };
    if rc < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel just made this descriptor for us.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as RawFd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the classic BPF `prog` on one `seccomp_data` (arch, nr), as the kernel would.
    fn run(prog: &[Insn], arch: u32, nr: u32) -> u32 {
        let mut acc = 0u32;
        let mut pc = 0usize;
        loop {
            let insn = prog[pc];
            match insn.code {
                BPF_LD_W_ABS => {
                    acc = match insn.k {
                        ARCH_OFFSET => arch,
                        NR_OFFSET => nr,
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
            for &nr in abi.exec_syscalls {
                assert_eq!(run(&prog, abi.audit_arch, nr), libc::SECCOMP_RET_USER_NOTIF);
                // The same number from a 32-bit program runs as it is, never killed.
                assert_eq!(run(&prog, 0x4000_0003, nr), libc::SECCOMP_RET_ALLOW);
            }
            for nr in [0, 1, 57, 56, 220, 435, 1000] {
                if !abi.exec_syscalls.contains(&nr) {
                    assert_eq!(run(&prog, abi.audit_arch, nr), libc::SECCOMP_RET_ALLOW);
                }
            }
        }
    }

    #[test]
    fn the_numbers_are_the_kernels() {
        assert_eq!(
            HOST.exec_syscalls,
            &[libc::SYS_execve as u32, libc::SYS_execveat as u32]
        );
    }
}
