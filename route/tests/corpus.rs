//! Replays the fuzz corpus (fuzz/corpus/<target>/) through the parsers on stable Rust, so CI
//! exercises every seed and every input the fuzzer kept (the `resolve` corpus, which needs
//! the shim's lookup in a real root, replays in shim/tests/resolve_corpus.rs), and checks the real binaries among
//! the seeds (Debian busybox-static for five architectures, qemu, /bin/true) parse to the
//! architecture and linkage a user would expect.

use crossarch_route::arch::Arch;
use crossarch_route::{elf, qemu, shebang};

#[path = "../../fuzz/checks/corpus.rs"]
mod corpus;
use corpus::files as corpus;

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
