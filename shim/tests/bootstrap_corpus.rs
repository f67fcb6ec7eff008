//! Replays the `bootstrap` fuzz corpus (fuzz/corpus/bootstrap/) through the fuzz target's own
//! property checks on stable Rust, so CI exercises every seed.

#[path = "../../fuzz/checks/bootstrap.rs"]
mod check;
#[path = "../../fuzz/checks/corpus.rs"]
mod corpus;

use crossarch_shim::bootstrap::{decide, Flags, Protocol};

#[test]
fn bootstrap_corpus_keeps_its_properties() {
    let files = corpus::replay("bootstrap", 8, check::check);
    // The seeds reach the protocol they are named for.
    let flags = Flags {
        id: "web",
        namespace: "k8s.io",
        ..Default::default()
    };
    for (name, data) in &files {
        let input = if data.first().is_some_and(|m| m % 2 == 1) {
            [&b"\x0a\x03web\x12\x06k8s.io"[..], &data[1..]].concat()
        } else {
            data[1..].to_vec()
        };
        let want = if name.starts_with("boot-") {
            Protocol::Bootstrap
        } else {
            Protocol::Legacy
        };
        assert_eq!(decide(&input, &flags).protocol, want, "{name}");
    }
}
