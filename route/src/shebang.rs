//! `#!` lines, read exactly the way the kernel's binfmt_script reads them, so crossarch follows
//! a script to the same interpreter the kernel would run.

/// The kernel looks at no more than this much of a script (`BINPRM_BUF_SIZE`).
pub const BUF_LEN: usize = 256;

/// Why a file is not a script the kernel would run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("not a script (it does not start with #!)")]
    NotScript,
    #[error("#! line names no interpreter")]
    NoInterpreter,
    /// Linux 5.1 and later refuse to run a cut-off interpreter path (binfmt_script's
    /// load_script() returns ENOEXEC); older kernels ran the cut-off path.
    #[error(
        "#! line does not end its interpreter path within the first {BUF_LEN} bytes, the most \
         the kernel reads, so execve fails with ENOEXEC"
    )]
    Truncated,
}

/// The interpreter line of a script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shebang<'a> {
    /// The interpreter path as written: absolute, or relative to the process's cwd.
    pub interpreter: &'a [u8],
    /// Everything after the interpreter up to the end of the line, trailing blanks removed,
    /// passed as one argument however many words it holds.
    pub arg: Option<&'a [u8]>,
}

/// Parses the first [`BUF_LEN`] bytes of `prefix` (more are ignored, like the kernel does).
pub fn parse(prefix: &[u8]) -> Result<Shebang<'_>, Error> {
    let buf = prefix.get(..BUF_LEN).unwrap_or(prefix);
    if !buf.starts_with(b"#!") {
        return Err(Error::NotScript);
    }
    // The kernel's buffer is zero-padded to BUF_LEN, so a short file ends in NULs.
    let at = |i: usize| buf.get(i).copied().unwrap_or(0);
    let last = BUF_LEN - 1;
    let blank = |c: u8| c == b' ' || c == b'\t';
    let terminator = |c: u8| blank(c) || c == 0;

    // strnchr stops at the first NUL: a newline after it does not end the line.
    let newline = buf
        .iter()
        .take_while(|&&c| c != 0)
        .position(|&c| c == b'\n');
    let mut end = match newline {
        Some(newline) => newline,
        None => {
            // Without a newline the path may have been cut off at the buffer's end; the kernel
            // accepts the line only if something after the path's start ends it.
            let start = (2..=last)
                .find(|&i| !blank(at(i)))
                .ok_or(Error::NoInterpreter)?;
            if !(start..=last).any(|i| terminator(at(i))) {
                return Err(Error::Truncated);
            }
            // The kernel writes its terminating NUL over the buffer's last byte.
            last
        }
    };
    while end > 2 && blank(at(end - 1)) {
        end -= 1;
    }
    let name = match (2..=end).find(|&i| !blank(at(i))) {
        Some(i) if i != end => i,
        _ => return Err(Error::NoInterpreter),
    };
    let sep = (name..=end).find(|&i| terminator(at(i))).unwrap_or(end);
    let interpreter = c_str(buf, name, sep);
    if interpreter.is_empty() {
        return Err(Error::NoInterpreter);
    }
    let arg = if sep < end && at(sep) != 0 {
        (sep..=end)
            .find(|&i| !blank(at(i)))
            .filter(|&i| i < end)
            .map(|i| c_str(buf, i, end))
    } else {
        None
    };
    Ok(Shebang { interpreter, arg })
}

/// `buf[from..to]`, cut at the first NUL as the kernel's C strings are.
fn c_str(buf: &[u8], from: usize, to: usize) -> &[u8] {
    let s = buf.get(from..to.min(buf.len())).unwrap_or_default();
    s.split(|&c| c == 0).next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &[u8]) -> (String, Option<String>) {
        let sb = parse(s).unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(s)));
        (
            String::from_utf8_lossy(sb.interpreter).into_owned(),
            sb.arg.map(|a| String::from_utf8_lossy(a).into_owned()),
        )
    }

    fn is(interp: &str, arg: Option<&str>) -> (String, Option<String>) {
        (interp.to_owned(), arg.map(str::to_owned))
    }

    #[test]
    fn plain_lines() {
        assert_eq!(ok(b"#!/bin/sh\necho hi\n"), is("/bin/sh", None));
        assert_eq!(ok(b"#! /bin/sh\n"), is("/bin/sh", None));
        assert_eq!(ok(b"#!\t/bin/sh \t \n"), is("/bin/sh", None));
        assert_eq!(ok(b"#!/bin/sh"), is("/bin/sh", None));
        assert_eq!(ok(b"#!sh\n"), is("sh", None));
    }

    #[test]
    fn one_argument_keeps_inner_blanks() {
        assert_eq!(ok(b"#!/bin/sh -e\n"), is("/bin/sh", Some("-e")));
        assert_eq!(
            ok(b"#!/usr/bin/env python3 -u  \n"),
            is("/usr/bin/env", Some("python3 -u"))
        );
        assert_eq!(
            ok(b"#!/usr/bin/env\t  -S  a b\n"),
            is("/usr/bin/env", Some("-S  a b"))
        );
    }

    #[test]
    fn carriage_return_is_part_of_the_path() {
        // The classic CRLF script: the kernel looks for "/bin/sh\r" and fails with ENOENT.
        assert_eq!(ok(b"#!/bin/sh\r\n"), is("/bin/sh\r", None));
    }

    #[test]
    fn missing_interpreter() {
        assert_eq!(parse(b"#!\n"), Err(Error::NoInterpreter));
        assert_eq!(parse(b"#!   \t\n"), Err(Error::NoInterpreter));
        assert_eq!(parse(b"#!"), Err(Error::NoInterpreter));
        assert_eq!(parse(b"#!\0/bin/sh\n"), Err(Error::NoInterpreter));
        assert_eq!(parse(&[b' '; 300]), Err(Error::NotScript));
        let mut blanks = b"#!".to_vec();
        blanks.resize(300, b' ');
        assert_eq!(parse(&blanks), Err(Error::NoInterpreter));
    }

    #[test]
    fn not_scripts() {
        assert_eq!(parse(b""), Err(Error::NotScript));
        assert_eq!(parse(b"#"), Err(Error::NotScript));
        assert_eq!(parse(b"\x7fELF"), Err(Error::NotScript));
        assert_eq!(parse(b" #!/bin/sh"), Err(Error::NotScript));
    }

    #[test]
    fn long_lines_follow_the_kernel() {
        // A path that runs past 256 bytes with no newline is cut off: refused.
        let mut long = b"#!/".to_vec();
        long.resize(400, b'a');
        assert_eq!(parse(&long), Err(Error::Truncated));
        // A complete path followed by a long argument is fine; the argument is cut at 255.
        let mut arg = b"#!/bin/sh ".to_vec();
        arg.resize(400, b'x');
        let sb = parse(&arg).unwrap();
        assert_eq!(sb.interpreter, b"/bin/sh");
        assert_eq!(sb.arg.unwrap().len(), BUF_LEN - 1 - 10);
        // A newline beyond the buffer does not count.
        let mut late = b"#!/bin/sh ".to_vec();
        late.resize(300, b'x');
        late.push(b'\n');
        assert_eq!(parse(&late).unwrap().arg.unwrap().len(), 245);
    }

    #[test]
    fn nul_ends_strings() {
        assert_eq!(ok(b"#!/bin/sh\0junk\n"), is("/bin/sh", None));
        assert_eq!(ok(b"#!/bin/sh -e\0x\n"), is("/bin/sh", Some("-e")));
    }
}
