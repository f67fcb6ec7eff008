//! Replays the `config` fuzz corpus (fuzz/corpus/config/) through the fuzz target's own
//! property checks on stable Rust, so CI exercises every seed.

#[path = "../../fuzz/checks/config.rs"]
mod check;

use crossarch_shim::config::{Config, EmulationMode};
use std::path::{Path, PathBuf};

#[test]
fn config_corpus_keeps_its_properties() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/config");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(files.len() >= 8, "the seed corpus is missing");
    for f in &files {
        let data = std::fs::read(f).unwrap();
        let shown = f.display().to_string();
        std::panic::catch_unwind(|| check::check(&data))
            .unwrap_or_else(|_| panic!("{shown} breaks a property"));
    }
    // The file seeds reach what they are named for.
    let text = |name: &str| {
        let data = std::fs::read(dir.join(name)).unwrap();
        String::from_utf8(data[1..].to_vec()).unwrap()
    };
    let parse = |name: &str| Config::parse(&text(name), name);
    assert_eq!(parse("file-etc-default.toml").unwrap(), Config::default());
    let full = parse("file-full.toml").unwrap();
    assert_eq!(full.emulation.mode, EmulationMode::Userns);
    assert_eq!(full.capabilities.allowed.0.caps().len(), 3);
    assert!(parse("file-inline.toml").is_ok());
    for bad in ["file-unknown-cap.toml", "file-typo.toml"] {
        assert!(parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn the_default_config_round_trips() {
    let c = Config::default();
    let text = check::render(&c);
    assert_eq!(Config::parse(&text, "t").unwrap(), c);
    // Every mode with an empty rest, and no input at all.
    for mode in 0..=5u8 {
        check::check(&[mode]);
    }
    check::check(&[]);
}
