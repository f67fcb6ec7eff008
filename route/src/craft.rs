//! Crafted ELF files for tests, here and in the shim (the `craft` feature): a header,
//! program headers right after it, and an optional PT_INTERP string.

use crate::elf::{Class, Endian, MAGIC, PT_INTERP};

/// A crafted ELF: header, program headers right after it, then an optional PT_INTERP
/// string placed at `interp_at` (or right after the table).
pub struct Craft {
    pub class: Class,
    pub endian: Endian,
    pub machine: u16,
    pub e_type: u16,
    pub flags: u32,
    pub interp: Option<&'static [u8]>,
    pub interp_at: Option<u64>,
    pub extra_phdrs: u16,
}

impl Default for Craft {
    fn default() -> Self {
        Craft {
            class: Class::Elf64,
            endian: Endian::Little,
            machine: 62,
            e_type: 2,
            flags: 0,
            interp: None,
            interp_at: None,
            extra_phdrs: 1,
        }
    }
}

impl Craft {
    pub fn bytes(&self) -> Vec<u8> {
        let (ehsize, phentsize) = match self.class {
            Class::Elf32 => (52usize, 32usize),
            Class::Elf64 => (64, 56),
        };
        let phnum = self.extra_phdrs as usize + usize::from(self.interp.is_some());
        let table_end = ehsize + phnum * phentsize;
        let interp_at = self.interp_at.unwrap_or(table_end as u64) as usize;
        let interp = self.interp.unwrap_or_default();
        let mut out = vec![0u8; table_end.max(interp_at + interp.len())];
        out[..4].copy_from_slice(MAGIC);
        out[4] = if self.class == Class::Elf32 { 1 } else { 2 };
        out[5] = if self.endian == Endian::Little { 1 } else { 2 };
        out[6] = 1;
        let mut w = Writer {
            out: &mut out,
            endian: self.endian,
        };
        w.u16(16, self.e_type);
        w.u16(18, self.machine);
        w.u32(20, 1);
        match self.class {
            Class::Elf32 => {
                w.u32(28, 52);
                w.u32(36, self.flags);
                w.u16(40, 52);
                w.u16(42, 32);
                w.u16(44, phnum as u16);
            }
            Class::Elf64 => {
                w.u64(32, 64);
                w.u32(48, self.flags);
                w.u16(52, 64);
                w.u16(54, 56);
                w.u16(56, phnum as u16);
            }
        }
        for i in 0..phnum {
            let base = ehsize + i * phentsize;
            let is_interp = self.interp.is_some() && i == 0;
            // PT_LOAD for the filler entries.
            w.u32(base, if is_interp { PT_INTERP } else { 1 });
            if is_interp {
                match self.class {
                    Class::Elf32 => {
                        w.u32(base + 4, interp_at as u32);
                        w.u32(base + 16, interp.len() as u32);
                    }
                    Class::Elf64 => {
                        w.u64(base + 8, interp_at as u64);
                        w.u64(base + 32, interp.len() as u64);
                    }
                }
            }
        }
        out[interp_at..interp_at + interp.len()].copy_from_slice(interp);
        out
    }
}

struct Writer<'a> {
    out: &'a mut [u8],
    endian: Endian,
}

impl Writer<'_> {
    fn put(&mut self, at: usize, le: &[u8]) {
        let dst = &mut self.out[at..at + le.len()];
        dst.copy_from_slice(le);
        if self.endian == Endian::Big {
            dst.reverse();
        }
    }
    fn u16(&mut self, at: usize, v: u16) {
        self.put(at, &v.to_le_bytes())
    }
    fn u32(&mut self, at: usize, v: u32) {
        self.put(at, &v.to_le_bytes())
    }
    fn u64(&mut self, at: usize, v: u64) {
        self.put(at, &v.to_le_bytes())
    }
}
