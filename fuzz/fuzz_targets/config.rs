#![no_main]
//! The shim's configuration: config files and the runtime options containerd sends with each
//! Create. The checks live in fuzz/checks/config.rs, which the corpus replay test shares.

use libfuzzer_sys::fuzz_target;

#[path = "../checks/config.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::check(data));
