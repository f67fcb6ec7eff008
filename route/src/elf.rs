//! What an ELF binary is, from a prefix of its bytes.
//!
//! The input is untrusted image content, so this parser never panics, never indexes without a
//! bounds check, uses checked arithmetic for every offset, and never allocates: the program
//! header table is walked in place, and its size is capped like the kernel caps it.
//!
//! The caller reads at most [`PREFIX_LEN`] bytes. Almost every executable has its program
//! headers and its `PT_INTERP` string inside that prefix; for the rare ones that do not,
//! [`Header::program_headers`] and [`Interp::At`] say exactly which bytes to read next.

use serde::Serialize;
use std::fmt;

/// How much of a file the caller should read first. Linkers put the program headers right
/// after the 52/64-byte ELF header, and the kernel reads the same amount of a `#!` script.
pub const PREFIX_LEN: usize = 4096;

/// The kernel refuses a `PT_INTERP` longer than `PATH_MAX` (fs/binfmt_elf.c).
pub const MAX_INTERP_LEN: u64 = 4096;

/// The kernel refuses a program header table larger than this (`load_elf_phdrs`), so a huge
/// `e_phnum` can never make us read or walk more.
pub const MAX_PROGRAM_HEADERS_LEN: u64 = 65536;

pub(crate) const MAGIC: &[u8; 4] = b"\x7fELF";
pub(crate) const PT_INTERP: u32 = 3;
const EF_ARM_ABI_FLOAT_SOFT: u32 = 0x200;
const EF_ARM_ABI_FLOAT_HARD: u32 = 0x400;
const EF_MIPS_ABI2: u32 = 0x20;
const EF_MIPS_ABI: u32 = 0xf000;
const E_MIPS_ABI_O32: u32 = 0x1000;

/// Why a prefix is not an ELF executable we can reason about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("not an ELF file (it does not start with \\x7fELF)")]
    NotElf,
    #[error("truncated ELF file: {need} bytes needed, only {have} available")]
    Truncated { need: u64, have: u64 },
    #[error("bad ELF class {0} (expected 1 for 32-bit or 2 for 64-bit)")]
    BadClass(u8),
    #[error("bad ELF data encoding {0} (expected 1 for little-endian or 2 for big-endian)")]
    BadEndian(u8),
    #[error("bad ELF program header entry size {found} (expected {expected} for this class)")]
    BadProgramHeaderSize { found: u16, expected: u16 },
    #[error(
        "ELF program header table of {count} entries is too large ({bytes} bytes; the kernel accepts at most {MAX_PROGRAM_HEADERS_LEN})"
    )]
    TooManyProgramHeaders { count: u16, bytes: u64 },
    #[error("ELF offsets overflow (offset {offset} + length {len})")]
    Overflow { offset: u64, len: u64 },
    #[error("ELF PT_INTERP of {0} bytes is invalid (the kernel accepts 2 to {MAX_INTERP_LEN})")]
    BadInterpLen(u64),
    #[error("ELF PT_INTERP is not NUL-terminated")]
    InterpNotTerminated,
    #[error("ELF PT_INTERP names an empty path")]
    EmptyInterp,
}

/// `EI_CLASS`: the word size of the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    Elf32,
    Elf64,
}

/// `EI_DATA`: the byte order of the binary, and of every field after `e_ident`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Endian {
    Little,
    Big,
}

/// `e_machine`, kept as the raw number so unknown machines survive into messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Machine(pub u16);

impl Machine {
    pub const I386: Machine = Machine(3);
    pub const MIPS: Machine = Machine(8);
    pub const PPC: Machine = Machine(20);
    pub const PPC64: Machine = Machine(21);
    pub const S390: Machine = Machine(22);
    pub const ARM: Machine = Machine(40);
    pub const X86_64: Machine = Machine(62);
    pub const AARCH64: Machine = Machine(183);
    pub const RISCV: Machine = Machine(243);
    pub const LOONGARCH: Machine = Machine(258);
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match *self {
            Machine::I386 => "i386",
            Machine::MIPS => "MIPS",
            Machine::PPC => "PowerPC",
            Machine::PPC64 => "PowerPC64",
            Machine::S390 => "S/390",
            Machine::ARM => "ARM",
            Machine::X86_64 => "x86-64",
            Machine::AARCH64 => "AArch64",
            Machine::RISCV => "RISC-V",
            Machine::LOONGARCH => "LoongArch",
            Machine(n) => return write!(f, "ELF machine {n:#x}"),
        };
        f.write_str(name)
    }
}

/// `e_type`. The kernel only executes [`Type::Exec`] and [`Type::Dyn`] (PIE and static-PIE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Type {
    Rel,
    Exec,
    Dyn,
    Core,
    Other(u16),
}

impl Type {
    fn from_raw(raw: u16) -> Type {
        match raw {
            1 => Type::Rel,
            2 => Type::Exec,
            3 => Type::Dyn,
            4 => Type::Core,
            n => Type::Other(n),
        }
    }

    /// Whether the kernel's ELF loader would run a file of this type at all.
    pub fn is_executable(self) -> bool {
        matches!(self, Type::Exec | Type::Dyn)
    }
}

/// The ARM EABI float ABI (`EF_ARM_ABI_FLOAT_*`): Debian's armhf versus armel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FloatAbi {
    Hard,
    Soft,
}

/// The MIPS ABI, which picks between qemu-mips(el), qemu-mipsn32(el) and qemu-mips64(el).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MipsAbi {
    O32,
    N32,
    N64,
    /// O64, EABI32, EABI64: no qemu-user target runs these.
    Other,
}

/// The parts of `e_flags` that change which emulator or Debian arch fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Abi {
    /// No flags we act on for this machine.
    Unspecified,
    Arm {
        /// `EF_ARM_EABIMASK`: 5 for every current toolchain, 0 for old GNU/OABI binaries.
        eabi: u8,
        float: Option<FloatAbi>,
    },
    Mips(MipsAbi),
}

/// A byte range of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Segment {
    pub offset: u64,
    pub len: u64,
}

impl Segment {
    /// The range inside `bytes` when it starts at file offset 0 and holds the whole segment.
    fn within(self, bytes: &[u8]) -> Option<&[u8]> {
        let start = usize::try_from(self.offset).ok()?;
        let end = start.checked_add(usize::try_from(self.len).ok()?)?;
        bytes.get(start..end)
    }
}

/// The ELF file header: enough to know the architecture and where the program headers are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub class: Class,
    pub endian: Endian,
    pub machine: Machine,
    pub e_type: Type,
    pub flags: u32,
    phoff: u64,
    phnum: u16,
}

/// What the ELF binary is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Elf {
    pub class: Class,
    pub endian: Endian,
    pub machine: Machine,
    pub e_type: Type,
    /// Raw `e_flags`; [`Elf::abi`] holds the parts crossarch acts on.
    pub flags: u32,
    pub abi: Abi,
    /// The first `PT_INTERP` segment, already checked for a length the kernel accepts.
    pub interp: Option<Segment>,
}

/// Where the dynamic loader's path is, if the binary has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interp<'a> {
    /// No `PT_INTERP`: a static (or static-PIE) binary.
    None,
    /// The loader path, without its NUL.
    Path(&'a [u8]),
    /// The string lies beyond the prefix: read these bytes and pass them to [`interp_path`].
    At(Segment),
}

/// Parses the ELF header and program headers from a prefix of the file (normally the first
/// [`PREFIX_LEN`] bytes). Fails with [`Error::Truncated`] if the program header table does
/// not fit in `prefix`; use [`Header::parse`] and [`Header::finish`] to read it separately.
pub fn parse(prefix: &[u8]) -> Result<Elf, Error> {
    let header = Header::parse(prefix)?;
    let table = header.program_headers()?;
    if table.len == 0 {
        return header.finish(&[]);
    }
    match table.within(prefix) {
        Some(bytes) => header.finish(bytes),
        None => Err(Error::Truncated {
            need: table.offset.saturating_add(table.len),
            have: prefix.len() as u64,
        }),
    }
}

/// Validates the bytes of a `PT_INTERP` segment, read from the file at [`Interp::At`], and
/// returns the path without its terminating NUL.
pub fn interp_path(bytes: &[u8]) -> Result<&[u8], Error> {
    let len = bytes.len() as u64;
    if !(2..=MAX_INTERP_LEN).contains(&len) {
        return Err(Error::BadInterpLen(len));
    }
    // The kernel insists on the last byte being NUL, then uses the string as a C string.
    if bytes.last() != Some(&0) {
        return Err(Error::InterpNotTerminated);
    }
    let path = bytes.split(|&b| b == 0).next().unwrap_or_default();
    if path.is_empty() {
        return Err(Error::EmptyInterp);
    }
    Ok(path)
}

impl Header {
    /// Parses the ELF file header from the start of the file.
    pub fn parse(prefix: &[u8]) -> Result<Header, Error> {
        let magic_len = prefix.len().min(MAGIC.len());
        if prefix.get(..magic_len) != MAGIC.get(..magic_len) {
            return Err(Error::NotElf);
        }
        let ident = prefix.get(..16).ok_or(Error::Truncated {
            need: 16,
            have: prefix.len() as u64,
        })?;
        let class = match ident[4] {
            1 => Class::Elf32,
            2 => Class::Elf64,
            n => return Err(Error::BadClass(n)),
        };
        let endian = match ident[5] {
            1 => Endian::Little,
            2 => Endian::Big,
            n => return Err(Error::BadEndian(n)),
        };
        let r = Reader {
            bytes: prefix,
            endian,
        };
        let (size, phoff, flags_at, phentsize_at, expected_phentsize) = match class {
            Class::Elf32 => (52, r.u32(28).map(u64::from), 36, 42, 32),
            Class::Elf64 => (64, r.u64(32), 48, 54, 56),
        };
        if prefix.len() < size {
            return Err(Error::Truncated {
                need: size as u64,
                have: prefix.len() as u64,
            });
        }
        // Cannot fail after the length check; errors rather than unwraps keep this panic-free.
        let truncated = Error::Truncated {
            need: size as u64,
            have: prefix.len() as u64,
        };
        let e_type = Type::from_raw(r.u16(16).ok_or(truncated.clone())?);
        let machine = Machine(r.u16(18).ok_or(truncated.clone())?);
        let phoff = phoff.ok_or(truncated.clone())?;
        let flags = r.u32(flags_at).ok_or(truncated.clone())?;
        let phentsize = r.u16(phentsize_at).ok_or(truncated.clone())?;
        let phnum = r.u16(phentsize_at + 2).ok_or(truncated)?;
        // An object file has no program headers and may leave e_phentsize at 0; any other
        // size would make us misread every entry, and the kernel refuses it too.
        if phnum != 0 && phentsize != expected_phentsize {
            return Err(Error::BadProgramHeaderSize {
                found: phentsize,
                expected: expected_phentsize,
            });
        }
        let bytes = u64::from(phnum) * u64::from(expected_phentsize);
        if bytes > MAX_PROGRAM_HEADERS_LEN {
            return Err(Error::TooManyProgramHeaders {
                count: phnum,
                bytes,
            });
        }
        Ok(Header {
            class,
            endian,
            machine,
            e_type,
            flags,
            phoff,
            phnum,
        })
    }

    /// Where the program header table is. Its length is at most [`MAX_PROGRAM_HEADERS_LEN`].
    pub fn program_headers(&self) -> Result<Segment, Error> {
        let len = u64::from(self.phnum) * u64::from(self.phentsize());
        if self.phoff.checked_add(len).is_none() {
            return Err(Error::Overflow {
                offset: self.phoff,
                len,
            });
        }
        Ok(Segment {
            offset: self.phoff,
            len,
        })
    }

    /// Completes the parse with the program header table (the bytes at
    /// [`Header::program_headers`]).
    pub fn finish(self, table: &[u8]) -> Result<Elf, Error> {
        let entsize = usize::from(self.phentsize());
        let expected = u64::from(self.phnum) * entsize as u64;
        if (table.len() as u64) < expected {
            return Err(Error::Truncated {
                need: self.phoff.saturating_add(expected),
                have: self.phoff.saturating_add(table.len() as u64),
            });
        }
        let r = Reader {
            bytes: table,
            endian: self.endian,
        };
        let mut interp = None;
        for i in 0..usize::from(self.phnum) {
            let base = i * entsize;
            if r.u32(base) != Some(PT_INTERP) {
                continue;
            }
            let (offset, len) = match self.class {
                Class::Elf32 => (
                    r.u32(base + 4).map(u64::from),
                    r.u32(base + 16).map(u64::from),
                ),
                Class::Elf64 => (r.u64(base + 8), r.u64(base + 32)),
            };
            let (Some(offset), Some(len)) = (offset, len) else {
                return Err(Error::Truncated {
                    need: self.phoff.saturating_add(expected),
                    have: self.phoff.saturating_add(table.len() as u64),
                });
            };
            if !(2..=MAX_INTERP_LEN).contains(&len) {
                return Err(Error::BadInterpLen(len));
            }
            if offset.checked_add(len).is_none() {
                return Err(Error::Overflow { offset, len });
            }
            // Like the kernel, only the first PT_INTERP counts.
            interp = Some(Segment { offset, len });
            break;
        }
        Ok(Elf {
            class: self.class,
            endian: self.endian,
            machine: self.machine,
            e_type: self.e_type,
            flags: self.flags,
            abi: abi(self.machine, self.class, self.flags),
            interp,
        })
    }

    fn phentsize(&self) -> u16 {
        match self.class {
            Class::Elf32 => 32,
            Class::Elf64 => 56,
        }
    }
}

impl Elf {
    /// True when there is no `PT_INTERP`: nothing but the file itself has to exist to run it.
    pub fn is_static(&self) -> bool {
        self.interp.is_none()
    }

    /// The loader path, looked up in `prefix` (the bytes from file offset 0 that were parsed).
    pub fn interp<'a>(&self, prefix: &'a [u8]) -> Result<Interp<'a>, Error> {
        let Some(segment) = self.interp else {
            return Ok(Interp::None);
        };
        match segment.within(prefix) {
            Some(bytes) => interp_path(bytes).map(Interp::Path),
            None => Ok(Interp::At(segment)),
        }
    }
}

fn abi(machine: Machine, class: Class, flags: u32) -> Abi {
    match machine {
        Machine::ARM => Abi::Arm {
            eabi: (flags >> 24) as u8,
            float: if flags & EF_ARM_ABI_FLOAT_HARD != 0 {
                Some(FloatAbi::Hard)
            } else if flags & EF_ARM_ABI_FLOAT_SOFT != 0 {
                Some(FloatAbi::Soft)
            } else {
                None
            },
        },
        Machine::MIPS => Abi::Mips(match class {
            Class::Elf64 => MipsAbi::N64,
            Class::Elf32 if flags & EF_MIPS_ABI2 != 0 => MipsAbi::N32,
            // Old o32 objects leave the ABI field at 0.
            Class::Elf32 if matches!(flags & EF_MIPS_ABI, 0 | E_MIPS_ABI_O32) => MipsAbi::O32,
            Class::Elf32 => MipsAbi::Other,
        }),
        _ => Abi::Unspecified,
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    endian: Endian,
}

impl Reader<'_> {
    fn array<const N: usize>(&self, at: usize) -> Option<[u8; N]> {
        self.bytes.get(at..at.checked_add(N)?)?.try_into().ok()
    }

    fn u16(&self, at: usize) -> Option<u16> {
        let b = self.array(at)?;
        Some(match self.endian {
            Endian::Little => u16::from_le_bytes(b),
            Endian::Big => u16::from_be_bytes(b),
        })
    }

    fn u32(&self, at: usize) -> Option<u32> {
        let b = self.array(at)?;
        Some(match self.endian {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        })
    }

    fn u64(&self, at: usize) -> Option<u64> {
        let b = self.array(at)?;
        Some(match self.endian {
            Endian::Little => u64::from_le_bytes(b),
            Endian::Big => u64::from_be_bytes(b),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::craft::Craft;

    #[test]
    fn static_x86_64() {
        let elf = parse(&Craft::default().bytes()).unwrap();
        assert_eq!(elf.class, Class::Elf64);
        assert_eq!(elf.endian, Endian::Little);
        assert_eq!(elf.machine, Machine::X86_64);
        assert_eq!(elf.e_type, Type::Exec);
        assert!(elf.is_static());
        assert_eq!(elf.interp(&[]).unwrap(), Interp::None);
    }

    #[test]
    fn dynamic_with_interp_inside_prefix() {
        let bytes = Craft {
            machine: 183,
            e_type: 3,
            interp: Some(b"/lib/ld-linux-aarch64.so.1\0"),
            ..Craft::default()
        }
        .bytes();
        let elf = parse(&bytes).unwrap();
        assert_eq!(elf.machine, Machine::AARCH64);
        assert_eq!(elf.e_type, Type::Dyn);
        assert!(!elf.is_static());
        assert_eq!(
            elf.interp(&bytes).unwrap(),
            Interp::Path(b"/lib/ld-linux-aarch64.so.1")
        );
    }

    #[test]
    fn interp_beyond_prefix_is_located_not_read() {
        let bytes = Craft {
            interp: Some(b"/lib64/ld-linux-x86-64.so.2\0"),
            interp_at: Some(10_000),
            ..Craft::default()
        }
        .bytes();
        let prefix = &bytes[..PREFIX_LEN];
        let elf = parse(prefix).unwrap();
        let Interp::At(seg) = elf.interp(prefix).unwrap() else {
            panic!("expected Interp::At");
        };
        assert_eq!(
            seg,
            Segment {
                offset: 10_000,
                len: 28
            }
        );
        let rest = &bytes[10_000..10_028];
        assert_eq!(interp_path(rest).unwrap(), b"/lib64/ld-linux-x86-64.so.2");
    }

    #[test]
    fn interp_straddling_the_prefix_end_is_located() {
        let bytes = Craft {
            interp: Some(b"/lib/ld.so\0"),
            interp_at: Some(PREFIX_LEN as u64 - 4),
            ..Craft::default()
        }
        .bytes();
        let prefix = &bytes[..PREFIX_LEN];
        let elf = parse(prefix).unwrap();
        assert!(matches!(elf.interp(prefix).unwrap(), Interp::At(_)));
    }

    #[test]
    fn interp_must_be_nul_terminated_and_sized_like_the_kernel_wants() {
        assert_eq!(interp_path(b"/lib/ld.so"), Err(Error::InterpNotTerminated));
        assert_eq!(interp_path(b"\0"), Err(Error::BadInterpLen(1)));
        assert_eq!(interp_path(b"\0\0"), Err(Error::EmptyInterp));
        assert_eq!(interp_path(b"/a\0junk\0").unwrap(), b"/a");
        let long = vec![b'a'; 5000];
        assert_eq!(interp_path(&long), Err(Error::BadInterpLen(5000)));
        let bytes = Craft {
            interp: Some(b"x"),
            ..Craft::default()
        }
        .bytes();
        assert_eq!(parse(&bytes), Err(Error::BadInterpLen(1)));
    }

    #[test]
    fn big_endian_s390x() {
        let bytes = Craft {
            endian: Endian::Big,
            machine: 22,
            interp: Some(b"/lib/ld64.so.1\0"),
            ..Craft::default()
        }
        .bytes();
        // The machine number is big-endian on disk: a little-endian read would say 0x1600.
        assert_eq!(&bytes[18..20], &[0, 22]);
        let elf = parse(&bytes).unwrap();
        assert_eq!(elf.endian, Endian::Big);
        assert_eq!(elf.machine, Machine::S390);
        assert_eq!(elf.interp(&bytes).unwrap(), Interp::Path(b"/lib/ld64.so.1"));
    }

    #[test]
    fn elf32_arm_float_abi() {
        for (flags, float) in [
            (0x0500_0400, Some(FloatAbi::Hard)),
            (0x0500_0200, Some(FloatAbi::Soft)),
            (0, None),
        ] {
            let elf = parse(
                &Craft {
                    class: Class::Elf32,
                    machine: 40,
                    flags,
                    interp: Some(b"/lib/ld-linux-armhf.so.3\0"),
                    ..Craft::default()
                }
                .bytes(),
            )
            .unwrap();
            assert_eq!(elf.class, Class::Elf32);
            assert_eq!(
                elf.abi,
                Abi::Arm {
                    eabi: (flags >> 24) as u8,
                    float
                }
            );
        }
    }

    #[test]
    fn mips_abis() {
        let abi = |class, flags| {
            parse(
                &Craft {
                    class,
                    machine: 8,
                    flags,
                    ..Craft::default()
                }
                .bytes(),
            )
            .unwrap()
            .abi
        };
        assert_eq!(abi(Class::Elf64, 0), Abi::Mips(MipsAbi::N64));
        assert_eq!(abi(Class::Elf32, 0x7000_1007), Abi::Mips(MipsAbi::O32));
        assert_eq!(abi(Class::Elf32, 0x20), Abi::Mips(MipsAbi::N32));
        assert_eq!(abi(Class::Elf32, 0x2000), Abi::Mips(MipsAbi::Other));
    }

    #[test]
    fn truncated_headers() {
        let bytes = Craft::default().bytes();
        assert_eq!(
            parse(&bytes[..2]),
            Err(Error::Truncated { need: 16, have: 2 })
        );
        assert_eq!(
            parse(&bytes[..40]),
            Err(Error::Truncated { need: 64, have: 40 })
        );
        // Header complete, program header table cut short.
        assert_eq!(
            parse(&bytes[..80]),
            Err(Error::Truncated {
                need: 120,
                have: 80
            })
        );
        assert_eq!(parse(&[]), Err(Error::Truncated { need: 16, have: 0 }));
    }

    #[test]
    fn wrong_class_and_encoding() {
        let mut bytes = Craft::default().bytes();
        bytes[4] = 3;
        assert_eq!(parse(&bytes), Err(Error::BadClass(3)));
        bytes[4] = 2;
        bytes[5] = 0;
        assert_eq!(parse(&bytes), Err(Error::BadEndian(0)));
    }

    #[test]
    fn garbage_is_not_elf() {
        assert_eq!(parse(b"#!/bin/sh\n"), Err(Error::NotElf));
        assert_eq!(parse(b"\x7fEL!"), Err(Error::NotElf));
        assert_eq!(parse(&[0xff; 4096]), Err(Error::NotElf));
        let msg = parse(b"MZ\x90\0").unwrap_err().to_string();
        assert!(msg.contains("not an ELF file"), "{msg}");
    }

    #[test]
    fn huge_phnum_is_refused_before_any_walk() {
        let mut bytes = Craft::default().bytes();
        bytes[56..58].copy_from_slice(&0xffffu16.to_le_bytes());
        assert_eq!(
            parse(&bytes),
            Err(Error::TooManyProgramHeaders {
                count: 0xffff,
                bytes: 0xffff * 56
            })
        );
    }

    #[test]
    fn wrong_phentsize_and_overflowing_offsets() {
        let mut bytes = Craft::default().bytes();
        bytes[54..56].copy_from_slice(&40u16.to_le_bytes());
        assert_eq!(
            parse(&bytes),
            Err(Error::BadProgramHeaderSize {
                found: 40,
                expected: 56
            })
        );
        let mut bytes = Craft::default().bytes();
        bytes[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(parse(&bytes), Err(Error::Overflow { .. })));
        // PT_INTERP at an offset that wraps around.
        let mut bytes = Craft {
            interp: Some(b"/lib/ld.so\0"),
            ..Craft::default()
        }
        .bytes();
        bytes[64 + 8..64 + 16].copy_from_slice(&(u64::MAX - 3).to_le_bytes());
        assert!(matches!(parse(&bytes), Err(Error::Overflow { .. })));
    }

    #[test]
    fn program_headers_beyond_prefix_can_be_read_separately() {
        let mut bytes = Craft::default().bytes();
        let table = bytes[64..120].to_vec();
        bytes.resize(8192, 0);
        bytes[32..40].copy_from_slice(&6000u64.to_le_bytes());
        bytes[6000..6056].copy_from_slice(&table);
        let prefix = &bytes[..PREFIX_LEN];
        assert!(matches!(parse(prefix), Err(Error::Truncated { .. })));
        let header = Header::parse(prefix).unwrap();
        let seg = header.program_headers().unwrap();
        assert_eq!(
            seg,
            Segment {
                offset: 6000,
                len: 56
            }
        );
        let elf = header.finish(&bytes[6000..6056]).unwrap();
        assert!(elf.is_static());
    }

    #[test]
    fn object_files_parse_but_are_not_executable() {
        let elf = parse(
            &Craft {
                e_type: 1,
                extra_phdrs: 0,
                ..Craft::default()
            }
            .bytes(),
        )
        .unwrap();
        assert_eq!(elf.e_type, Type::Rel);
        assert!(!elf.e_type.is_executable());
    }

    #[test]
    fn every_prefix_of_a_valid_file_is_handled() {
        let bytes = Craft {
            interp: Some(b"/lib/ld-linux-aarch64.so.1\0"),
            machine: 183,
            ..Craft::default()
        }
        .bytes();
        for n in 0..=bytes.len() {
            let _ = parse(&bytes[..n]).and_then(|e| e.interp(&bytes[..n]).map(|_| ()));
        }
    }

    #[test]
    fn this_test_binary_is_native() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let prefix = &exe[..exe.len().min(PREFIX_LEN)];
        let elf = parse(prefix).unwrap();
        let arch = crate::arch::Arch::from_elf(&elf).unwrap();
        assert_eq!(Some(arch), crate::arch::Arch::host());
    }
}
