//! A held thread's registers, at the stop where its exec syscall is about to be restarted
//! (see [`super`]): which syscall, its arguments and the stack pointer, read and written
//! through PTRACE_GETREGSET/SETREGSET (NT_PRSTATUS), which both host architectures have.
//! Only the field mapping differs, and where each kernel stands in the restart at that stop;
//! it is all in this file.

use nix::errno::Errno;

#[cfg(target_arch = "x86_64")]
mod arch {
    pub type Raw = libc::user_regs_struct;

    pub fn nr(r: &Raw) -> u64 {
        r.orig_rax
    }
    /// The restart takes its number from orig_rax.
    pub fn set_nr(r: &mut Raw, nr: u64) {
        r.orig_rax = nr;
    }
    pub fn sp(r: &Raw) -> u64 {
        r.rsp
    }
    pub fn arg(r: &Raw, i: usize) -> u64 {
        [r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9][i]
    }
    pub fn set_arg(r: &mut Raw, i: usize, v: u64) {
        *[
            &mut r.rdi, &mut r.rsi, &mut r.rdx, &mut r.r10, &mut r.r8, &mut r.r9,
        ][i] = v;
    }
    /// Bytes below the stack pointer that the ABI lets the program use without moving it.
    pub const RED_ZONE: u64 = 128;

    /// x86 rewinds to the syscall instruction after the stop: until then the syscall's
    /// result, the restart code, is in rax, and orig_rax says which syscall is restarted.
    pub fn restarting(r: &Raw, _tid: libc::pid_t) -> bool {
        matches!(
            r.rax as i64,
            super::ERESTARTSYS | super::ERESTARTNOINTR | super::ERESTARTNOHAND
        )
    }
    /// No syscall to restart (orig_rax -1), and rax the result.
    pub fn fail(r: &mut Raw, errno: i32) {
        r.orig_rax = u64::MAX;
        r.rax = -(errno as i64) as u64;
    }
}

#[cfg(target_arch = "aarch64")]
mod arch {
    pub type Raw = libc::user_regs_struct;

    pub fn nr(r: &Raw) -> u64 {
        r.regs[8]
    }
    /// The `svc` pc is back on reads x8.
    pub fn set_nr(r: &mut Raw, nr: u64) {
        r.regs[8] = nr;
    }
    pub fn sp(r: &Raw) -> u64 {
        r.sp
    }
    pub fn arg(r: &Raw, i: usize) -> u64 {
        r.regs[i]
    }
    pub fn set_arg(r: &mut Raw, i: usize, v: u64) {
        r.regs[i] = v;
    }
    pub const RED_ZONE: u64 = 0;

    /// `svc #0`.
    const SVC: u32 = 0xd400_0001;

    /// arm64 rewinds before the stop: pc is back on the `svc`, x0 holds the first argument
    /// again and x8 the syscall's number.
    pub fn restarting(r: &Raw, tid: libc::pid_t) -> bool {
        let mut insn = [0u8; 4];
        super::super::memory::read(super::super::memory::Memory::Of(tid), r.pc, &mut insn).is_ok()
            && u32::from_le_bytes(insn) == SVC
    }
    /// Past the `svc`, with x0 the result.
    pub fn fail(r: &mut Raw, errno: i32) {
        r.pc += 4;
        r.regs[0] = -(errno as i64) as u64;
    }
}

/// The kernel's restart codes (include/linux/errno.h), which a syscall returns when a signal
/// or a ptrace interrupt cut it short and which userspace never sees.
#[allow(dead_code)] // x86_64 reads them; arm64 has rewound by the time of the stop
const ERESTARTSYS: i64 = -512;
#[allow(dead_code)]
const ERESTARTNOINTR: i64 = -513;
#[allow(dead_code)]
const ERESTARTNOHAND: i64 = -514;

pub use arch::RED_ZONE;

/// The registers of one stopped thread.
#[derive(Clone)]
pub struct Regs(arch::Raw);

impl Regs {
    pub fn get(tid: libc::pid_t) -> Result<Regs, Errno> {
        // SAFETY: user_regs_struct is plain integers; all zeros is a valid value.
        let mut regs = Regs(unsafe { std::mem::zeroed() });
        regset(tid, &mut regs.0, true)?;
        Ok(regs)
    }

    pub fn set(&mut self, tid: libc::pid_t) -> Result<(), Errno> {
        regset(tid, &mut self.0, false)
    }

    pub fn syscall(&self) -> u64 {
        arch::nr(&self.0)
    }

    /// Makes the syscall about to be restarted the syscall `nr`.
    pub fn set_syscall(&mut self, nr: u64) {
        arch::set_nr(&mut self.0, nr)
    }

    pub fn sp(&self) -> u64 {
        arch::sp(&self.0)
    }

    pub fn arg(&self, i: usize) -> u64 {
        arch::arg(&self.0, i)
    }

    pub fn set_arg(&mut self, i: usize, value: u64) {
        arch::set_arg(&mut self.0, i, value)
    }

    /// Whether the thread `tid` these registers are of stopped on its way to restart a
    /// syscall that was cut short (then [`Regs::syscall`] says which).
    pub fn restarting(&self, tid: libc::pid_t) -> bool {
        arch::restarting(&self.0, tid)
    }

    /// Makes the syscall about to be restarted return -`errno` instead.
    pub fn fail(&mut self, errno: i32) {
        arch::fail(&mut self.0, errno)
    }
}

/// PTRACE_GETREGSET (`get`) or PTRACE_SETREGSET of NT_PRSTATUS, into or from `raw`.
fn regset(tid: libc::pid_t, raw: &mut arch::Raw, get: bool) -> Result<(), Errno> {
    let mut iov = libc::iovec {
        iov_base: (raw as *mut arch::Raw).cast(),
        iov_len: std::mem::size_of::<arch::Raw>(),
    };
    let (iov, note) = (&mut iov as *mut libc::iovec, libc::NT_PRSTATUS as usize);
    // SAFETY: the kernel reads or writes at most iov_len bytes of `raw`. (The request's C
    // type differs between C libraries, so each call names its constant.)
    let rc = unsafe {
        if get {
            libc::ptrace(libc::PTRACE_GETREGSET, tid, note, iov)
        } else {
            libc::ptrace(libc::PTRACE_SETREGSET, tid, note, iov)
        }
    };
    if rc == -1 {
        return Err(Errno::last());
    }
    Ok(())
}
