//! The property checks of the `handed` fuzz target, shared with the corpus replay test
//! (init/tests/handed_corpus.rs) so CI runs the very same checks on stable Rust. Both include
//! init's init/src/trace/handed.rs as `crate::handed`: init is a binary crate.
//!
//! The input is the file init reads back when it is started with `--exec=DIR /dev/fd/N`,
//! which anyone may do with any file. Properties, beyond not panicking:
//!
//! - what [`parse`] accepts is a `#!` line and then exactly what [`script`] writes after its
//!   own: the script of what was read, with a non-empty path;
//! - a hand-over made of any path and argv[0] without NULs reads back as itself;
//! - [`fd_in`] accepts only `/dev/fd/` and decimal digits, and its number reads back.

use crate::handed::{fd_in, parse, script, Handed};

pub fn check(data: &[u8]) {
    if let Some(handed) = parse(data) {
        assert!(!handed.path.is_empty() && data.starts_with(b"#!"));
        let body = |bytes: &[u8]| {
            let newline = bytes.iter().position(|&b| b == b'\n').unwrap();
            bytes[newline + 1..].to_vec()
        };
        assert_eq!(body(data), body(&script(b"/i", b"/d", &handed)));
    }

    // The same bytes as a path and argv[0], split at the first NUL and without the others.
    let mut parts = data.splitn(2, |&b| b == 0);
    let clean = |b: Option<&[u8]>| -> Vec<u8> {
        b.unwrap_or_default()
            .iter()
            .copied()
            .filter(|&c| c != 0)
            .collect()
    };
    let path = clean(parts.next());
    let argv0 = clean(parts.next());
    if !path.is_empty() {
        let handed = Handed {
            sigpipe_ignored: argv0.len() % 2 == 1,
            path,
            argv0,
        };
        let bytes = script(b"/dev/.crossarch/init", b"/dev/.crossarch", &handed);
        assert_eq!(parse(&bytes), Some(handed));
    }

    if let Some(fd) = fd_in(data) {
        let digits = data.strip_prefix(b"/dev/fd/").unwrap();
        assert!(!digits.is_empty() && digits.iter().all(u8::is_ascii_digit));
        assert_eq!(fd_in(format!("/dev/fd/{fd}").as_bytes()), Some(fd));
    }
}
