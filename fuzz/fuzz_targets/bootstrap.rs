#![no_main]
//! What containerd writes on the start action's stdin: containerd 2.3's BootstrapParams, or
//! the legacy runtime options. The checks live in fuzz/checks/bootstrap.rs, which the corpus
//! replay test shares.

use libfuzzer_sys::fuzz_target;

#[path = "../checks/bootstrap.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::check(data));
