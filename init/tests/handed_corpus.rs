//! Replays the `handed` fuzz corpus (fuzz/corpus/handed/) through the fuzz target's own
//! property checks on stable Rust, so CI exercises every seed.

#[path = "../../fuzz/checks/handed.rs"]
mod check;
#[path = "../../fuzz/checks/corpus.rs"]
mod corpus;
#[path = "../src/trace/handed.rs"]
#[allow(dead_code)]
mod handed;

#[test]
fn handed_corpus_keeps_its_properties() {
    let files = corpus::replay("handed", 6, check::check);
    // The seeds reach what they are named for.
    let parsed = |name: &str| {
        let (_, data) = files.iter().find(|(n, _)| n == name).unwrap();
        handed::parse(data)
    };
    assert!(parsed("valid-dfl").is_some_and(|h| !h.sigpipe_ignored));
    assert!(parsed("valid-ign-empty-argv0").is_some_and(|h| h.sigpipe_ignored));
    for bad in [
        "truncated",
        "extra-field",
        "double-nul-end",
        "no-shebang",
        "bad-magic",
        "empty-path",
    ] {
        assert_eq!(parsed(bad), None, "{bad}");
    }
    let fd = |name: &str| {
        let (_, data) = files.iter().find(|(n, _)| n == name).unwrap();
        handed::fd_in(data)
    };
    assert_eq!(fd("dev-fd-7"), Some(7));
    assert_eq!(fd("dev-fd-leading-zeros"), Some(7));
    assert_eq!(fd("dev-fd-ten-digits"), None);
}
