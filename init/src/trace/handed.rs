//! The memfd of a hand-over ([`super::handover`]): what init puts into a process that switched
//! users, and reads back in it as `/dev/fd/N`. Pure and std-only, so the fuzz target
//! (fuzz/fuzz_targets/handed.rs) builds it too: init may be started with `--exec=` by anyone,
//! on any file, so [`parse`] reads untrusted bytes.

use std::os::fd::RawFd;

/// What the memfd holds after its `#!` line.
const MAGIC: &[u8] = b"crossarch-exec 1";

/// The handed-over exec, as init in the process reads it back.
#[derive(Debug, PartialEq, Eq)]
pub struct Handed {
    pub path: Vec<u8>,
    pub argv0: Vec<u8>,
    /// Whether the process had SIGPIPE ignored, which an exec keeps (Rust's runtime ignores
    /// it in init, so init puts it back).
    pub sigpipe_ignored: bool,
}

/// The memfd's bytes: `#!INIT --exec=DIR`, then the magic, the SIGPIPE flag, the path and
/// argv[0], each ended by a NUL.
pub fn script(init: &[u8], qemu_dir: &[u8], handed: &Handed) -> Vec<u8> {
    let mut out = b"#!".to_vec();
    out.extend_from_slice(init);
    out.extend_from_slice(b" --exec=");
    out.extend_from_slice(qemu_dir);
    out.push(b'\n');
    for field in [
        MAGIC,
        if handed.sigpipe_ignored {
            b"ign"
        } else {
            b"dfl"
        },
        &handed.path,
        &handed.argv0,
    ] {
        out.extend_from_slice(field);
        out.push(0);
    }
    out
}

/// Reads [`script`]'s bytes back: a `#!` line (which the kernel has already read; its text
/// is not checked), then exactly what `script` writes after it. Anything else is None: init
/// may be started with `--exec=` by anyone, on any file.
pub fn parse(bytes: &[u8]) -> Option<Handed> {
    if !bytes.starts_with(b"#!") {
        return None;
    }
    let newline = bytes.iter().position(|&b| b == b'\n')?;
    let mut fields = bytes[newline + 1..].split(|&b| b == 0);
    if fields.next()? != MAGIC {
        return None;
    }
    let sigpipe_ignored = match fields.next()? {
        b"ign" => true,
        b"dfl" => false,
        _ => return None,
    };
    let path = fields.next()?.to_vec();
    let argv0 = fields.next()?.to_vec();
    // The last NUL ends argv[0]; nothing may follow it.
    if fields.next()? != b"" || fields.next().is_some() || path.is_empty() {
        return None;
    }
    Some(Handed {
        path,
        argv0,
        sigpipe_ignored,
    })
}

/// The descriptor number in a `/dev/fd/N` path.
pub fn fd_in(path: &[u8]) -> Option<RawFd> {
    let digits = path.strip_prefix(b"/dev/fd/")?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) || digits.len() > 9 {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handed() -> Handed {
        Handed {
            path: b"/usr/local/bin/docker-entrypoint.sh".to_vec(),
            argv0: b"docker-entrypoint.sh".to_vec(),
            sigpipe_ignored: false,
        }
    }

    #[test]
    fn the_script_reads_back_and_starts_init() {
        let bytes = script(b"/dev/.crossarch/init", b"/dev/.crossarch", &handed());
        assert!(bytes.starts_with(b"#!/dev/.crossarch/init --exec=/dev/.crossarch\n"));
        assert_eq!(parse(&bytes), Some(handed()));
        let ignored = Handed {
            sigpipe_ignored: true,
            argv0: Vec::new(),
            ..handed()
        };
        assert_eq!(parse(&script(b"/i", b"/d", &ignored)), Some(ignored));
    }

    #[test]
    fn anything_else_is_refused() {
        let good = script(b"/i", b"/d", &handed());
        let mut extra = good.clone();
        extra.extend_from_slice(b"more\0");
        let mut empty_field = good.clone();
        empty_field.push(0);
        let mut magic = good.clone();
        let at = magic.iter().position(|&b| b == b'\n').unwrap() + 1;
        magic[at] = b'X';
        for bad in [
            &b""[..],
            b"#!/i --exec=/d",
            b"#!/i --exec=/d\n",
            &good[..good.len() - 1],
            &extra,
            &empty_field,
            &magic,
            b"#!/i\ncrossarch-exec 1\0maybe\0/bin/sh\0sh\0",
            b"#!/i\ncrossarch-exec 1\0dfl\0\0sh\0",
            b"junk\ncrossarch-exec 1\0dfl\0/bin/sh\0sh\0",
        ] {
            assert_eq!(parse(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn only_a_dev_fd_path_names_a_descriptor() {
        assert_eq!(fd_in(b"/dev/fd/7"), Some(7));
        assert_eq!(fd_in(b"/dev/fd/123"), Some(123));
        for bad in [
            &b"/dev/fd/"[..],
            b"/dev/fd/-1",
            b"/dev/fd/1x",
            b"/proc/self/fd/3",
            b"/dev/fd/9999999999",
        ] {
            assert_eq!(fd_in(bad), None);
        }
    }
}
