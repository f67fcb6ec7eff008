//! Decides how a container process runs: natively, or through qemu-user-static.
//!
//! The pure modules take bytes and facts and return decisions, so they can be unit-tested
//! and fuzzed without a container:
//!
//! - [`elf`]: the ELF header and program headers of a binary prefix.
//! - [`shebang`]: a `#!` line, parsed the way the kernel's binfmt_script does.
//! - [`arch`]: the architecture table (qemu, OCI/Go and Debian names) and what the host runs.
//! - [`plan`]: the routing decision, [`plan::decide`], and its loggable [`plan::Decision`].
//!
//! The I/O edges are small and separate:
//!
//! - [`resolve::in_root`] finds args\[0\] inside a container root with `openat2(RESOLVE_IN_ROOT)`.
//! - [`qemu::discover`] finds a usable static qemu on the host.
//! - [`arch::HostFacts::detect`] probes what the host kernel runs natively.
//!
//! A typical call sequence in the shim:
//!
//! ```no_run
//! use crossarch_route::{arch, plan, qemu, resolve};
//! # fn demo(args: Vec<String>, env: Vec<String>) -> Result<(), Box<dyn std::error::Error>> {
//! let root = resolve::Root::open("/run/bundle/rootfs")?;
//! let candidates = resolve::search_plan(&args[0], &env, "/")?;
//! let resolved = resolve::in_root(&root, &candidates, "/")?;
//! let host = arch::Host::detect().ok_or("unknown host architecture")?;
//! let policy = plan::Policy::default();
//! let decision = plan::decide("web", &policy, &host, &resolved, &args, |a| {
//!     qemu::discover(&policy.qemu_dirs, a, host.arch)
//! });
//! eprintln!("{decision}"); // and serde_json::to_string(&decision) for structured logs
//! match decision.route {
//!     plan::Route::Native => {}
//!     plan::Route::Wrap { .. } => { /* binfmt_misc registration, or rewrite args */ }
//!     plan::Route::Refused { reason } => return Err(reason.into()),
//! }
//! # Ok(()) }
//! ```

// Its system calls go through std and nix; only tests call libc directly.
#![cfg_attr(not(test), forbid(unsafe_code))]

pub mod arch;
pub mod elf;
pub mod plan;
pub mod qemu;
pub mod resolve;
pub mod shebang;
