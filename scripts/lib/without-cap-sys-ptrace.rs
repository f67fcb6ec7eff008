//! `without-cap-sys-ptrace PROG ARGS...`: runs PROG as root without CAP_SYS_PTRACE, as runc
//! runs a container's processes (the default capability set leaves it out), so that the
//! arm64 VM's trace checks (scripts/test-trace-arm64-vm.sh) meet the kernel's ptrace rules
//! as the init in a container does. It drops the capability from the bounding set; the exec
//! then leaves it out of root's capabilities. Built for aarch64 by that script, std only.

use std::os::unix::process::CommandExt;
use std::process::{exit, Command};

extern "C" {
    fn prctl(option: i32, ...) -> i32;
}

const PR_CAPBSET_DROP: i32 = 24;
const CAP_SYS_PTRACE: u64 = 19;

fn main() {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let Some((prog, rest)) = args.split_first() else {
        eprintln!("usage: without-cap-sys-ptrace PROG ARGS...");
        exit(2);
    };
    // SAFETY: prctl with integer arguments.
    if unsafe { prctl(PR_CAPBSET_DROP, CAP_SYS_PTRACE, 0u64, 0u64, 0u64) } != 0 {
        eprintln!(
            "without-cap-sys-ptrace: PR_CAPBSET_DROP: {}",
            std::io::Error::last_os_error()
        );
        exit(1);
    }
    let err = Command::new(prog).args(rest).exec();
    eprintln!("without-cap-sys-ptrace: {}: {err}", prog.to_string_lossy());
    exit(127);
}
