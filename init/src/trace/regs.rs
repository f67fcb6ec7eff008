//! A traced thread's registers at a syscall-entry stop: which syscall, its arguments and the
//! stack pointer, read and written through PTRACE_GETREGSET/SETREGSET (NT_PRSTATUS), which
//! both host architectures have. Only the field mapping differs; it is all in this file.

use nix::errno::Errno;

#[cfg(target_arch = "x86_64")]
mod arch {
    pub type Raw = libc::user_regs_struct;

    pub fn nr(r: &Raw) -> u64 {
        r.orig_rax
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
}

#[cfg(target_arch = "aarch64")]
mod arch {
    pub type Raw = libc::user_regs_struct;

    pub fn nr(r: &Raw) -> u64 {
        r.regs[8]
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
}

pub use arch::RED_ZONE;

/// The registers of one stopped thread.
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

    pub fn sp(&self) -> u64 {
        arch::sp(&self.0)
    }

    pub fn arg(&self, i: usize) -> u64 {
        arch::arg(&self.0, i)
    }

    pub fn set_arg(&mut self, i: usize, value: u64) {
        arch::set_arg(&mut self.0, i, value)
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
