#![no_main]
//! Feeds arbitrary bytes to the ELF parser as a file prefix, then to everything that reads
//! its result, the way the shim does with the first 4 KiB of an image binary.

use crossarch_route::{arch::Arch, elf, qemu};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let prefix = &data[..data.len().min(elf::PREFIX_LEN)];
    if let Ok(header) = elf::Header::parse(prefix) {
        if let Ok(table) = header.program_headers() {
            assert!(table.len <= elf::MAX_PROGRAM_HEADERS_LEN);
            // The rest of the input stands in for bytes read from further in the file.
            let _ = header.finish(&data[prefix.len()..]);
        }
    }
    if let Ok(parsed) = elf::parse(prefix) {
        let _ = Arch::from_elf(&parsed).map(|a| (a.qemu_name(), a.oci_name()));
        match parsed.interp(prefix) {
            Ok(elf::Interp::At(seg)) => {
                assert!(seg.len <= elf::MAX_INTERP_LEN);
                assert!(seg.offset.checked_add(seg.len).is_some());
            }
            Ok(elf::Interp::Path(p)) => assert!(!p.is_empty() && !p.contains(&0)),
            _ => {}
        }
    }
    let _ = elf::interp_path(data);
    let _ = qemu::from_prefix(prefix);
});
