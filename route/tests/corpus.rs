//! Replays the fuzz corpus (fuzz/corpus/<target>/) through the parsers on stable Rust, so CI
//! exercises every seed and every input the fuzzer kept, and checks the real binaries among
//! the seeds (Debian busybox-static for five architectures, qemu, /bin/true) parse to the
//! architecture and linkage a user would expect.

#[path = "../../fuzz/checks/resolve.rs"]
mod resolve_check;

use crossarch_route::arch::Arch;
use crossarch_route::{elf, qemu, shebang};
use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

#[test]
fn elf_corpus_never_panics() {
    let files = corpus("elf");
    assert!(files.len() >= 8, "the seed corpus is missing");
    for (_, data) in &files {
        let prefix = &data[..data.len().min(elf::PREFIX_LEN)];
        if let Ok(parsed) = elf::parse(prefix) {
            let _ = Arch::from_elf(&parsed);
            let _ = parsed.interp(prefix);
        }
        let _ = elf::interp_path(data);
        let _ = qemu::from_prefix(prefix);
        let _ = shebang::parse(data);
    }
}

#[test]
fn shebang_corpus_never_panics() {
    for (_, data) in corpus("shebang") {
        let _ = shebang::parse(&data);
        let _ = elf::parse(&data);
    }
}

/// Each seed builds its tree in a scratch directory and runs the `resolve` fuzz target's
/// property checks on it.
#[test]
fn resolve_corpus_keeps_its_properties() {
    let files = corpus("resolve");
    assert!(files.len() >= 8, "the seed corpus is missing");
    let scratch = resolve_check::Scratch::new();
    let mut outcomes = std::collections::HashMap::new();
    for (name, data) in &files {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            resolve_check::check(&scratch, data)
        }))
        .unwrap_or_else(|_| panic!("resolve seed {name} breaks a property"));
        outcomes.insert(name.as_str(), outcome);
    }
    // The seeds reach what they are named for.
    let expected = [
        ("static-sh", "found /bin/sh via 0 scripts, loader None"),
        (
            "dynamic-loader",
            "found /bin/sh via 0 scripts, loader Some(\"/lib/ld.so\")",
        ),
        (
            "dynamic-far-interp",
            "found /bin/sh via 0 scripts, loader Some(\"/lib/ld.so\")",
        ),
        (
            "missing-loader",
            "its dynamic loader /lib64/ld.so does not exist",
        ),
        ("script-chain", "found /bin/sh via 2 scripts"),
        ("script-crlf", "DOS line endings"),
        ("escape-links", "sh is not in the container's PATH"),
        (
            "escape-links-relative-to-host",
            "is not in the container's PATH",
        ),
        ("loops", "symbolic link loop"),
        ("not-regular-not-exec", "is not executable (mode 0644)"),
        ("relative-cwd", "found /bin/x via 0 scripts"),
        ("trailing-slash-link", "is not in the container's PATH"),
        ("empty-path", "PATH is empty"),
        ("setuid-object", "is not an executable"),
    ];
    for (name, want) in expected {
        let got = outcomes
            .get(name)
            .unwrap_or_else(|| panic!("resolve seed {name} is missing"));
        assert!(got.contains(want), "{name}: {got}");
    }
}

#[test]
fn real_binaries_in_the_seeds() {
    // (seed, architecture, PT_INTERP)
    let expected: &[(&str, Arch, Option<&str>)] = &[
        ("busybox-static-arm64.head", Arch::Aarch64, None),
        ("busybox-static-armhf.head", Arch::Arm, None),
        ("busybox-static-s390x.head", Arch::S390x, None),
        ("busybox-static-ppc64el.head", Arch::Ppc64le, None),
        ("busybox-static-mips64el.head", Arch::Mips64el, None),
        (
            "busybox-dynamic-arm64.head",
            Arch::Aarch64,
            Some("/lib/ld-linux-aarch64.so.1"),
        ),
        (
            "busybox-dynamic-armhf.head",
            Arch::Arm,
            Some("/lib/ld-linux-armhf.so.3"),
        ),
        ("qemu-aarch64-static-amd64.head", Arch::X86_64, None),
        (
            "x86_64-true.head",
            Arch::X86_64,
            Some("/lib64/ld-linux-x86-64.so.2"),
        ),
    ];
    let files = corpus("elf");
    for (name, arch, interp) in expected {
        let (_, data) = files
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("seed {name} is missing"));
        let parsed = elf::parse(data).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(Arch::from_elf(&parsed).unwrap(), *arch, "{name}");
        let got = match parsed.interp(data).unwrap() {
            elf::Interp::None => None,
            elf::Interp::Path(p) => Some(String::from_utf8(p.to_vec()).unwrap()),
            elf::Interp::At(seg) => panic!("{name}: interp beyond the first 4 KiB at {seg:?}"),
        };
        assert_eq!(got.as_deref(), *interp, "{name}");
    }
    let armhf = elf::parse(
        &files
            .iter()
            .find(|(n, _)| n == "busybox-static-armhf.head")
            .unwrap()
            .1,
    )
    .unwrap();
    assert_eq!(
        armhf.abi,
        elf::Abi::Arm {
            eabi: 5,
            float: Some(elf::FloatAbi::Hard)
        }
    );
    let s390x = &files
        .iter()
        .find(|(n, _)| n == "busybox-static-s390x.head")
        .unwrap()
        .1;
    assert_eq!(elf::parse(s390x).unwrap().endian, elf::Endian::Big);
    // A static qemu is what discovery accepts; a dynamic binary is refused.
    let qemu_head = &files
        .iter()
        .find(|(n, _)| n == "qemu-aarch64-static-amd64.head")
        .unwrap()
        .1;
    assert_eq!(
        qemu::from_prefix(qemu_head),
        qemu::Inspection::Static(Ok(Arch::X86_64))
    );
    let dynamic = &files
        .iter()
        .find(|(n, _)| n == "x86_64-true.head")
        .unwrap()
        .1;
    assert!(matches!(
        qemu::from_prefix(dynamic),
        qemu::Inspection::Dynamic { .. }
    ));
}

#[test]
fn broken_seeds_fail_cleanly() {
    let files = corpus("elf");
    let get = |name: &str| &files.iter().find(|(n, _)| n == name).unwrap().1;
    assert!(matches!(
        elf::parse(get("truncated-s390x.head")),
        Err(elf::Error::Truncated { .. })
    ));
    assert!(matches!(
        elf::parse(get("huge-phnum.head")),
        Err(elf::Error::TooManyProgramHeaders { count: 0xffff, .. })
    ));
}
