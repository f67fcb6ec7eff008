#![no_main]
//! Feeds arbitrary bytes to the `#!` parser, and checks what it returns is a sub-slice of the
//! first 256 bytes with the kernel's shape: no blanks or NULs in the interpreter.

use crossarch_route::shebang;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(line) = shebang::parse(data) {
        let window = &data[..data.len().min(shebang::BUF_LEN)];
        assert!(!line.interpreter.is_empty());
        assert!(!line
            .interpreter
            .iter()
            .any(|&c| c == b' ' || c == b'\t' || c == 0 || c == b'\n'));
        assert!(line.interpreter.len() < window.len());
        if let Some(arg) = line.arg {
            assert!(!arg.contains(&0) && !arg.contains(&b'\n'));
            assert!(arg.len() < window.len());
        }
    }
});
