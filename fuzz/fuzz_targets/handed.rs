#![no_main]
//! The file init reads back when started with `--exec=` (a trace-mode hand-over after a
//! process switched users). The checks live in fuzz/checks/handed.rs, which the corpus replay
//! test shares.

use libfuzzer_sys::fuzz_target;

#[path = "../checks/handed.rs"]
mod check;
#[path = "../../init/src/trace/handed.rs"]
mod handed;

fuzz_target!(|data: &[u8]| check::check(data));
