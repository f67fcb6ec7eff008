//! Architectures crossarch can route, their names in qemu, OCI/Go and Debian, and what the host
//! kernel runs without help.

use crate::elf::{Class, Elf, Endian, Machine, MipsAbi};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A Linux user-space ABI that one qemu-user target runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Arch {
    X86_64,
    I386,
    Aarch64,
    Aarch64Be,
    Arm,
    Armeb,
    Riscv64,
    Ppc,
    Ppc64,
    Ppc64le,
    S390x,
    Mips,
    Mipsel,
    Mipsn32,
    Mipsn32el,
    Mips64,
    Mips64el,
    Loongarch64,
}

struct Names {
    arch: Arch,
    qemu: &'static str,
    oci: &'static str,
    debian: Option<&'static str>,
}

const fn row(
    arch: Arch,
    qemu: &'static str,
    oci: &'static str,
    debian: Option<&'static str>,
) -> Names {
    Names {
        arch,
        qemu,
        oci,
        debian,
    }
}

// OCI platform names are Go's GOARCH values; Debian has no port for some big-endian ABIs.
const TABLE: &[Names] = &[
    row(Arch::X86_64, "x86_64", "amd64", Some("amd64")),
    row(Arch::I386, "i386", "386", Some("i386")),
    row(Arch::Aarch64, "aarch64", "arm64", Some("arm64")),
    row(Arch::Aarch64Be, "aarch64_be", "arm64be", None),
    // armel binaries run under qemu-arm too; Debian's name depends on the float ABI.
    row(Arch::Arm, "arm", "arm", Some("armhf")),
    row(Arch::Armeb, "armeb", "armbe", None),
    row(Arch::Riscv64, "riscv64", "riscv64", Some("riscv64")),
    row(Arch::Ppc, "ppc", "ppc", Some("powerpc")),
    row(Arch::Ppc64, "ppc64", "ppc64", Some("ppc64")),
    row(Arch::Ppc64le, "ppc64le", "ppc64le", Some("ppc64el")),
    row(Arch::S390x, "s390x", "s390x", Some("s390x")),
    row(Arch::Mips, "mips", "mips", Some("mips")),
    row(Arch::Mipsel, "mipsel", "mipsle", Some("mipsel")),
    row(Arch::Mipsn32, "mipsn32", "mips64p32", None),
    row(Arch::Mipsn32el, "mipsn32el", "mips64p32le", None),
    row(Arch::Mips64, "mips64", "mips64", None),
    row(Arch::Mips64el, "mips64el", "mips64le", Some("mips64el")),
    row(Arch::Loongarch64, "loongarch64", "loong64", Some("loong64")),
];

/// A binary whose machine, class and byte order match no qemu-user target crossarch knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{machine} {bits}-bit {endian}-endian binaries have no qemu-user target crossarch knows")]
pub struct UnsupportedBinary {
    pub machine: Machine,
    pub bits: u8,
    pub endian: &'static str,
}

/// A name in a config file that is no known architecture.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown architecture {0:?}; use an OCI name (amd64, arm64, s390x, ...), a qemu name or a Debian name")]
pub struct UnknownArchName(pub String);

impl Arch {
    /// Every architecture in the table.
    pub fn all() -> impl Iterator<Item = Arch> {
        TABLE.iter().map(|r| r.arch)
    }

    fn names(self) -> &'static Names {
        // Every variant has a row; the fallback only avoids a panic path.
        TABLE.iter().find(|r| r.arch == self).unwrap_or(&TABLE[0])
    }

    /// The qemu target name: `qemu-<name>-static`.
    pub fn qemu_name(self) -> &'static str {
        self.names().qemu
    }

    /// The OCI platform `architecture` (Go's GOARCH), as in `linux/arm64`.
    pub fn oci_name(self) -> &'static str {
        self.names().oci
    }

    /// The Debian architecture name, if Debian has a port.
    pub fn debian_name(self) -> Option<&'static str> {
        self.names().debian
    }

    /// Accepts an OCI, qemu or Debian name, as an admin would write in the config.
    pub fn from_name(name: &str) -> Result<Arch, UnknownArchName> {
        TABLE
            .iter()
            .find(|r| r.oci == name || r.qemu == name || r.debian == Some(name))
            .map(|r| r.arch)
            // Common spellings that are in no table column.
            .or(match name {
                "x86-64" | "x64" => Some(Arch::X86_64),
                "armel" | "armv7" | "armv7l" | "armhf" => Some(Arch::Arm),
                _ => None,
            })
            .ok_or_else(|| UnknownArchName(name.to_owned()))
    }

    /// The architecture of a parsed binary, using class, byte order and ABI flags where the
    /// machine number alone is ambiguous (ppc64 vs ppc64le, the three MIPS ABIs, ...).
    pub fn from_elf(elf: &Elf) -> Result<Arch, UnsupportedBinary> {
        use Class::*;
        use Endian::*;
        let arch = Arch::all().find(|a| {
            a.elf_machine() == elf.machine
                && a.elf_class_and_endian() == (elf.class, elf.endian)
                && a.mips_abi()
                    .is_none_or(|abi| elf.abi == crate::elf::Abi::Mips(abi))
        });
        arch.ok_or(UnsupportedBinary {
            machine: elf.machine,
            bits: match elf.class {
                Elf32 => 32,
                Elf64 => 64,
            },
            endian: match elf.endian {
                Little => "little",
                Big => "big",
            },
        })
    }

    /// The ELF class and byte order of this architecture's binaries.
    pub fn elf_class_and_endian(self) -> (Class, Endian) {
        use Arch::*;
        use Class::*;
        use Endian::*;
        match self {
            X86_64 | Aarch64 | Riscv64 | Ppc64le | Mips64el | Loongarch64 => (Elf64, Little),
            Aarch64Be | Ppc64 | S390x | Mips64 => (Elf64, Big),
            I386 | Arm | Mipsel | Mipsn32el => (Elf32, Little),
            Armeb | Ppc | Mips | Mipsn32 => (Elf32, Big),
        }
    }

    /// The MIPS ABI (from `e_flags`) that tells the three MIPS ABIs of one machine apart.
    fn mips_abi(self) -> Option<MipsAbi> {
        match self {
            Arch::Mips | Arch::Mipsel => Some(MipsAbi::O32),
            Arch::Mipsn32 | Arch::Mipsn32el => Some(MipsAbi::N32),
            Arch::Mips64 | Arch::Mips64el => Some(MipsAbi::N64),
            _ => None,
        }
    }

    /// The `e_machine` binaries of this architecture carry.
    pub fn elf_machine(self) -> Machine {
        match self {
            Arch::X86_64 => Machine::X86_64,
            Arch::I386 => Machine::I386,
            Arch::Aarch64 | Arch::Aarch64Be => Machine::AARCH64,
            Arch::Arm | Arch::Armeb => Machine::ARM,
            Arch::Riscv64 => Machine::RISCV,
            Arch::Ppc => Machine::PPC,
            Arch::Ppc64 | Arch::Ppc64le => Machine::PPC64,
            Arch::S390x => Machine::S390,
            Arch::Mips
            | Arch::Mipsel
            | Arch::Mipsn32
            | Arch::Mipsn32el
            | Arch::Mips64
            | Arch::Mips64el => Machine::MIPS,
            Arch::Loongarch64 => Machine::LOONGARCH,
        }
    }

    /// The architecture this crate was compiled for, which is the host's.
    pub fn host() -> Option<Arch> {
        Arch::from_rust_target(std::env::consts::ARCH, cfg!(target_endian = "big"))
    }

    /// Maps Rust's `target_arch` (and endianness, which Rust keeps separate) to an `Arch`.
    pub fn from_rust_target(arch: &str, big_endian: bool) -> Option<Arch> {
        let pick = |little, big| Some(if big_endian { big } else { little });
        match arch {
            "x86_64" => Some(Arch::X86_64),
            "x86" => Some(Arch::I386),
            "aarch64" => pick(Arch::Aarch64, Arch::Aarch64Be),
            "arm" => pick(Arch::Arm, Arch::Armeb),
            "riscv64" => Some(Arch::Riscv64),
            "powerpc" => Some(Arch::Ppc),
            "powerpc64" => pick(Arch::Ppc64le, Arch::Ppc64),
            "s390x" => Some(Arch::S390x),
            "mips" => pick(Arch::Mipsel, Arch::Mips),
            "mips64" => pick(Arch::Mips64el, Arch::Mips64),
            "loongarch64" => Some(Arch::Loongarch64),
            _ => None,
        }
    }

    /// The 32-bit ABIs a 64-bit kernel of this architecture can run when its compat layer is
    /// there (see [`HostFacts::compat32`]).
    fn compat32(self) -> &'static [Arch] {
        match self {
            Arch::X86_64 => &[Arch::I386],
            Arch::Aarch64 => &[Arch::Arm],
            Arch::Ppc64 => &[Arch::Ppc],
            Arch::Mips64 => &[Arch::Mips, Arch::Mipsn32],
            Arch::Mips64el => &[Arch::Mipsel, Arch::Mipsn32el],
            _ => &[],
        }
    }
}

impl fmt::Display for Arch {
    /// `linux/<oci name>`, the way users see platforms in image manifests.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "linux/{}", self.oci_name())
    }
}

impl TryFrom<String> for Arch {
    type Error = UnknownArchName;
    fn try_from(name: String) -> Result<Arch, UnknownArchName> {
        Arch::from_name(&name)
    }
}

impl From<Arch> for String {
    fn from(arch: Arch) -> String {
        arch.oci_name().to_owned()
    }
}

/// What the host kernel can run beyond its own architecture. The caller supplies these,
/// normally probed by the shim, possibly overridden by the node's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HostFacts {
    /// The 64-bit kernel runs its 32-bit companion ABI natively: i386 on x86_64
    /// (`CONFIG_IA32_EMULATION`), arm on aarch64 (`CONFIG_COMPAT` and a CPU with AArch32 EL0).
    pub compat32: bool,
}

/// The host: its architecture and what its kernel runs natively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Host {
    pub arch: Arch,
    pub facts: HostFacts,
}

/// Whether the host kernel executes binaries of `binary` without an emulator.
pub fn runs_natively(host: Arch, binary: Arch, facts: &HostFacts) -> bool {
    binary == host || (facts.compat32 && host.compat32().contains(&binary))
}

/// Whether an x86_64 kernel runs i386 binaries, from what the shim reads of it: whether
/// `/proc/sys/abi/vsyscall32` exists, `/proc/cmdline`, and `/boot/config-<release>`.
pub fn ia32_enabled(vsyscall32_present: bool, cmdline: &str, kernel_config: Option<&str>) -> bool {
    if !vsyscall32_present {
        return false;
    }
    // Arguments after "--" belong to init, not the kernel; the last setting wins.
    let from_cmdline = cmdline
        .split_whitespace()
        .take_while(|w| *w != "--")
        .filter_map(|w| w.strip_prefix("ia32_emulation="))
        .filter_map(kernel_bool)
        .last();
    from_cmdline.unwrap_or_else(|| {
        !kernel_config.is_some_and(|c| {
            c.lines()
                .any(|l| l.trim() == "CONFIG_IA32_EMULATION_DEFAULT_DISABLED=y")
        })
    })
}

/// The kernel's `kstrtobool`.
fn kernel_bool(s: &str) -> Option<bool> {
    match s.as_bytes() {
        [b'y' | b'Y' | b't' | b'T' | b'e' | b'E' | b'1', ..] => Some(true),
        [b'n' | b'N' | b'f' | b'F' | b'd' | b'D' | b'0', ..] => Some(false),
        [b'o' | b'O', b'n' | b'N', ..] => Some(true),
        [b'o' | b'O', b'f' | b'F', ..] => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::craft::Craft;
    use crate::elf;

    fn arch_of(c: Craft) -> Result<Arch, UnsupportedBinary> {
        Arch::from_elf(&elf::parse(&c.bytes()).unwrap())
    }

    #[test]
    fn names_from_the_table() {
        let cases = [
            (Arch::X86_64, "x86_64", "amd64", Some("amd64")),
            (Arch::I386, "i386", "386", Some("i386")),
            (Arch::Aarch64, "aarch64", "arm64", Some("arm64")),
            (Arch::Arm, "arm", "arm", Some("armhf")),
            (Arch::Armeb, "armeb", "armbe", None),
            (Arch::Riscv64, "riscv64", "riscv64", Some("riscv64")),
            (Arch::Ppc64le, "ppc64le", "ppc64le", Some("ppc64el")),
            (Arch::Ppc64, "ppc64", "ppc64", Some("ppc64")),
            (Arch::S390x, "s390x", "s390x", Some("s390x")),
            (Arch::Mips64el, "mips64el", "mips64le", Some("mips64el")),
            (Arch::Mips64, "mips64", "mips64", None),
            (Arch::Loongarch64, "loongarch64", "loong64", Some("loong64")),
        ];
        for (arch, qemu, oci, debian) in cases {
            assert_eq!(arch.qemu_name(), qemu);
            assert_eq!(arch.oci_name(), oci);
            assert_eq!(arch.debian_name(), debian);
            assert_eq!(Arch::from_name(qemu), Ok(arch));
            assert_eq!(Arch::from_name(oci), Ok(arch));
        }
        assert_eq!(Arch::Aarch64.to_string(), "linux/arm64");
        assert!(Arch::from_name("sparc64")
            .unwrap_err()
            .to_string()
            .contains("unknown architecture \"sparc64\""));
    }

    #[test]
    fn every_arch_round_trips_its_names_and_machine() {
        for arch in Arch::all() {
            assert_eq!(Arch::from_name(arch.qemu_name()), Ok(arch));
            assert_eq!(Arch::from_name(arch.oci_name()), Ok(arch));
            let json = serde_json::to_string(&arch).unwrap();
            assert_eq!(serde_json::from_str::<Arch>(&json).unwrap(), arch);
            let _ = arch.elf_machine();
        }
    }

    #[test]
    fn arch_from_crafted_binaries() {
        use Class::*;
        use Endian::*;
        let c = |class, endian, machine, flags| Craft {
            class,
            endian,
            machine,
            flags,
            ..Craft::default()
        };
        assert_eq!(arch_of(c(Elf64, Little, 62, 0)), Ok(Arch::X86_64));
        assert_eq!(arch_of(c(Elf32, Little, 3, 0)), Ok(Arch::I386));
        assert_eq!(arch_of(c(Elf64, Little, 183, 0)), Ok(Arch::Aarch64));
        assert_eq!(arch_of(c(Elf32, Little, 40, 0x0500_0400)), Ok(Arch::Arm));
        assert_eq!(arch_of(c(Elf32, Big, 40, 0)), Ok(Arch::Armeb));
        assert_eq!(arch_of(c(Elf64, Little, 243, 5)), Ok(Arch::Riscv64));
        assert_eq!(arch_of(c(Elf64, Little, 21, 2)), Ok(Arch::Ppc64le));
        assert_eq!(arch_of(c(Elf64, Big, 21, 1)), Ok(Arch::Ppc64));
        assert_eq!(arch_of(c(Elf64, Big, 22, 0)), Ok(Arch::S390x));
        assert_eq!(arch_of(c(Elf64, Little, 8, 0)), Ok(Arch::Mips64el));
        assert_eq!(arch_of(c(Elf64, Big, 8, 0)), Ok(Arch::Mips64));
        assert_eq!(arch_of(c(Elf32, Little, 8, 0x20)), Ok(Arch::Mipsn32el));
        assert_eq!(arch_of(c(Elf32, Little, 8, 0x1000)), Ok(Arch::Mipsel));
        assert_eq!(arch_of(c(Elf64, Little, 258, 0)), Ok(Arch::Loongarch64));
        // x32, 31-bit s390 and unknown machines have no emulator.
        let x32 = arch_of(c(Elf32, Little, 62, 0)).unwrap_err();
        assert_eq!(
            x32.to_string(),
            "x86-64 32-bit little-endian binaries have no qemu-user target crossarch knows"
        );
        assert!(arch_of(c(Elf32, Big, 22, 0)).is_err());
        assert!(arch_of(c(Elf64, Little, 0x1234, 0)).is_err());
    }

    #[test]
    fn host_mapping() {
        assert_eq!(Arch::from_rust_target("x86_64", false), Some(Arch::X86_64));
        assert_eq!(
            Arch::from_rust_target("powerpc64", false),
            Some(Arch::Ppc64le)
        );
        assert_eq!(Arch::from_rust_target("powerpc64", true), Some(Arch::Ppc64));
        assert_eq!(
            Arch::from_rust_target("mips64", false),
            Some(Arch::Mips64el)
        );
        assert_eq!(Arch::from_rust_target("wasm32", false), None);
        assert!(Arch::host().is_some());
    }

    #[test]
    fn native_and_compat32() {
        let yes = HostFacts { compat32: true };
        let no = HostFacts { compat32: false };
        assert!(runs_natively(Arch::X86_64, Arch::X86_64, &no));
        assert!(runs_natively(Arch::X86_64, Arch::I386, &yes));
        assert!(!runs_natively(Arch::X86_64, Arch::I386, &no));
        assert!(runs_natively(Arch::Aarch64, Arch::Arm, &yes));
        assert!(!runs_natively(Arch::Aarch64, Arch::Armeb, &yes));
        assert!(!runs_natively(Arch::X86_64, Arch::Aarch64, &yes));
        assert!(!runs_natively(Arch::I386, Arch::X86_64, &yes));
        assert!(runs_natively(Arch::Mips64el, Arch::Mipsn32el, &yes));
    }

    #[test]
    fn ia32_probe_rules() {
        assert!(ia32_enabled(true, "console=ttyS0 quiet", None));
        assert!(!ia32_enabled(false, "ia32_emulation=1", None));
        assert!(!ia32_enabled(true, "ia32_emulation=0", None));
        assert!(!ia32_enabled(true, "ia32_emulation=off", None));
        assert!(ia32_enabled(
            true,
            "ia32_emulation=0 ia32_emulation=on",
            None
        ));
        // After "--" the words go to init.
        assert!(ia32_enabled(true, "quiet -- ia32_emulation=0", None));
        let disabled = "CONFIG_IA32_EMULATION=y\nCONFIG_IA32_EMULATION_DEFAULT_DISABLED=y\n";
        assert!(!ia32_enabled(true, "quiet", Some(disabled)));
        assert!(ia32_enabled(true, "ia32_emulation=true", Some(disabled)));
        assert!(ia32_enabled(
            true,
            "",
            Some("# CONFIG_IA32_EMULATION_DEFAULT_DISABLED is not set")
        ));
    }
}
