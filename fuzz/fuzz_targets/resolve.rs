#![no_main]
//! args[0] resolution inside a generated container root. The checks live in
//! fuzz/checks/resolve.rs, which the corpus replay test shares.

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

#[path = "../checks/resolve.rs"]
mod check;

fuzz_target!(|data: &[u8]| {
    // One scratch directory per process, rebuilt for each input.
    static SCRATCH: OnceLock<check::Scratch> = OnceLock::new();
    let _ = check::check(SCRATCH.get_or_init(check::Scratch::new), data);
});
