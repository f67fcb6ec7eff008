//! Replays the `config` fuzz corpus (fuzz/corpus/config/) through the fuzz target's own
//! property checks on stable Rust, so CI exercises every seed.

#[path = "../../fuzz/checks/config.rs"]
mod check;
#[path = "../../fuzz/checks/corpus.rs"]
mod corpus;

use crossarch_shim::config::{Config, EmulationMode};

#[test]
fn config_corpus_keeps_its_properties() {
    let files = corpus::replay("config", 8, check::check);
    // The file seeds reach what they are named for.
    let text = |name: &str| {
        let (_, data) = files.iter().find(|(n, _)| n == name).unwrap();
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
