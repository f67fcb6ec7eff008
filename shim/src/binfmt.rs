//! binfmt_misc registrations for a container's private instance (pure).
//!
//! Each entry matches the ELF identification and machine of one architecture and names qemu
//! with flags PF: the kernel opens qemu when the entry is written (F), so qemu never has to
//! exist in the container's filesystem; P keeps argv[0] (busybox-style multi-call binaries
//! need it).
//!
//! Not C (credentials from the binary) and not O (which C implies): with C a setuid foreign
//! binary would run qemu itself as euid 0, and qemu-user reads `QEMU_*` variables (log
//! files, a gdb port, a library prefix) from its caller's environment without the
//! secure-execution checks (AT_SECURE) that the kernel and libc apply to setuid programs. So
//! setuid and setgid bits of foreign binaries are ignored, as on a nosuid mount, and a
//! foreign binary must be readable by the user who runs it.

use crossarch_route::arch::Arch;

/// Entry name prefix; names must not contain '/'.
const PREFIX: &str = "crossarch-";

/// Magic and mask over the first 20 bytes of the ELF header: identification, e_type (EXEC or
/// DYN) and e_machine. OSABI is ignored, as qemu's own binfmt configuration does.
pub fn magic_and_mask(arch: Arch) -> Option<([u8; 20], [u8; 20])> {
    use crossarch_route::elf::{Class, Endian};
    // n32 differs from o32 only in e_flags, beyond what one entry can tell apart.
    if matches!(arch, Arch::Mipsn32 | Arch::Mipsn32el) {
        return None;
    }
    let (class, endian) = arch.elf_class_and_endian();
    let (is64, big) = (class == Class::Elf64, endian == Endian::Big);
    let machine = arch.elf_machine().0;
    let mut magic = [0u8; 20];
    magic[..4].copy_from_slice(b"\x7fELF");
    magic[4] = if is64 { 2 } else { 1 };
    magic[5] = if big { 2 } else { 1 };
    magic[6] = 1;
    let mut mask = [0xffu8; 20];
    mask[7] = 0;
    let (t, m) = if big {
        ([0, 2], machine.to_be_bytes())
    } else {
        ([2, 0], machine.to_le_bytes())
    };
    magic[16..18].copy_from_slice(&t);
    magic[18..20].copy_from_slice(&m);
    // ET_EXEC (2) and ET_DYN (3) differ in the lowest bit.
    if big {
        mask[17] = 0xfe;
    } else {
        mask[16] = 0xfe;
    }
    Some((magic, mask))
}

fn escaped(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\x{b:02x}")).collect()
}

pub fn entry_name(arch: Arch) -> String {
    format!("{PREFIX}{}", arch.qemu_name())
}

/// The flags of every entry; see the module comment for why exactly these.
pub const FLAGS: &str = "PF";

/// The line written to `register` for `arch`, run by the file at `interpreter` (a path as
/// the registering process sees it).
pub fn registration(arch: Arch, interpreter: &str) -> Option<String> {
    let (magic, mask) = magic_and_mask(arch)?;
    Some(format!(
        ":{}:M::{}:{}:{interpreter}:{FLAGS}",
        entry_name(arch),
        escaped(&magic),
        escaped(&mask),
    ))
}

/// Whether an existing entry's status file (`<binfmt_misc>/<entry name>`, as the kernel's
/// `entry_status` writes it) is exactly what [`registration`] would register: enabled, the
/// same interpreter, flags, magic and mask. An entry that differs was not made by crossarch
/// for this architecture and must not be trusted.
pub fn entry_matches(status: &str, arch: Arch, interpreter: &str) -> bool {
    let Some((magic, mask)) = magic_and_mask(arch) else {
        return false;
    };
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let want = [
        "enabled".to_string(),
        format!("interpreter {interpreter}"),
        format!("flags: {FLAGS}"),
        "offset 0".to_string(),
        format!("magic {}", hex(&magic)),
        format!("mask {}", hex(&mask)),
    ];
    let got: Vec<&str> = status.lines().collect();
    got.len() == want.len() && got.iter().zip(&want).all(|(g, w)| g == w)
}

/// Whether `header` (the first bytes of a file) matches the entry for `arch`, as the kernel
/// would decide.
#[cfg(test)]
pub fn matches(arch: Arch, header: &[u8]) -> bool {
    let Some((magic, mask)) = magic_and_mask(arch) else {
        return false;
    };
    header.len() >= 20 && (0..20).all(|i| header[i] & mask[i] == magic[i] & mask[i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn corpus(name: &str) -> Vec<u8> {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/corpus/elf")
            .join(name);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn entries_match_real_binaries_of_their_arch_only() {
        let cases = [
            ("busybox-static-arm64.head", Arch::Aarch64),
            ("busybox-dynamic-arm64.head", Arch::Aarch64),
            ("busybox-static-armhf.head", Arch::Arm),
            ("busybox-static-s390x.head", Arch::S390x),
            ("busybox-static-ppc64el.head", Arch::Ppc64le),
            ("busybox-static-mips64el.head", Arch::Mips64el),
        ];
        for (name, arch) in cases {
            let header = corpus(name);
            assert!(matches(arch, &header), "{arch:?} should match {name}");
            for other in Arch::all().filter(|a| *a != arch) {
                if magic_and_mask(other).is_some() && other.elf_machine() != arch.elf_machine() {
                    assert!(!matches(other, &header), "{other:?} must not match {name}");
                }
            }
        }
        let host = corpus("x86_64-true.head");
        assert!(matches(Arch::X86_64, &host));
        assert!(!matches(Arch::Aarch64, &host));
    }

    #[test]
    fn registration_line_is_what_the_kernel_parses() {
        let line = registration(Arch::Aarch64, "/usr/bin/qemu-aarch64-static").unwrap();
        assert_eq!(
            line,
            ":crossarch-aarch64:M::\\x7f\\x45\\x4c\\x46\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:\
             \\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:\
             /usr/bin/qemu-aarch64-static:PF"
        );
        assert!(registration(Arch::Mipsn32, "/q").is_none());
    }

    #[test]
    fn only_an_identical_entry_is_trusted() {
        // As Linux 6.18 prints the entry registered above.
        let ours =
            "enabled\ninterpreter /proc/self/fd/5/qemu-aarch64-static\nflags: PF\noffset 0\n\
                    magic 7f454c460201010000000000000000000200b700\n\
                    mask ffffffffffffff00fffffffffffffffffeffffff\n";
        let q = "/proc/self/fd/5/qemu-aarch64-static";
        assert!(entry_matches(ours, Arch::Aarch64, q));
        assert!(!entry_matches(ours, Arch::S390x, q));
        assert!(!entry_matches(ours, Arch::Aarch64, "/tmp/evil"));
        assert!(!entry_matches(
            &ours.replace("flags: PF", "flags: POCF"),
            Arch::Aarch64,
            q
        ));
        assert!(!entry_matches(
            &ours.replace("enabled", "disabled"),
            Arch::Aarch64,
            q
        ));
        assert!(!entry_matches(
            &ours.replace("offset 0", "offset 2"),
            Arch::Aarch64,
            q
        ));
        assert!(!entry_matches("", Arch::Aarch64, q));
    }
}
