//! Every decision crossarch makes about a container process, and no I/O: how it runs
//! (natively, or through qemu-user-static), from bytes and facts the shim reads for it. Each
//! module can be unit-tested and fuzzed without a container, a host or a kernel:
//!
//! - [`elf`]: the ELF header and program headers of a binary prefix.
//! - [`shebang`]: a `#!` line, parsed the way the kernel's binfmt_script does.
//! - [`arch`]: the architecture table (qemu, OCI/Go and Debian names) and what the host runs.
//! - [`qemu`]: which of the candidate emulators to use, from what is at each path.
//! - [`resolve`]: the paths runc tries for args\[0\] ([`resolve::search_plan`]), and the walk
//!   from there through `#!` interpreters to the ELF and its loader ([`resolve::walk`]),
//!   over a [`resolve::Lookup`] of the container's root.
//! - [`plan`]: the routing decision, [`plan::decide`], and its loggable [`plan::Decision`].
//!
//! The shim holds the edges: it implements [`resolve::Lookup`] with
//! `openat2(RESOLVE_IN_ROOT)`, reads the host's qemu binaries and `/proc`, and applies the
//! decision to the container's spec.

#![forbid(unsafe_code)]

pub mod arch;
#[cfg(any(test, feature = "craft"))]
pub mod craft;
pub mod elf;
pub mod mounts;
pub mod plan;
pub mod qemu;
pub mod resolve;
pub mod shebang;
