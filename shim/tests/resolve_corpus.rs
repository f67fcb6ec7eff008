//! Replays the `resolve` fuzz corpus (fuzz/corpus/resolve/) on stable Rust: each seed builds
//! its tree in a scratch directory and runs the fuzz target's property checks on the shim's
//! lookup in that root, so CI exercises every seed.

#[path = "../../fuzz/checks/resolve.rs"]
mod resolve_check;

#[path = "../../fuzz/checks/corpus.rs"]
mod corpus;
use corpus::files as corpus;

#[test]
fn resolve_corpus_keeps_its_properties() {
    let files = corpus("resolve");
    assert!(files.len() >= 8, "the seed corpus is missing");
    let scratch = resolve_check::Scratch::new();
    let mut outcomes = std::collections::HashMap::new();
    for (name, data) in &files {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            resolve_check::check(&scratch, data)
        }))
        .unwrap_or_else(|_| panic!("resolve seed {name} breaks a property"));
        outcomes.insert(name.as_str(), outcome);
    }
    // The seeds reach what they are named for.
    let expected = [
        ("static-sh", "found /bin/sh via 0 scripts, loader None"),
        (
            "dynamic-loader",
            "found /bin/sh via 0 scripts, loader Some(\"/lib/ld.so\")",
        ),
        (
            "dynamic-far-interp",
            "found /bin/sh via 0 scripts, loader Some(\"/lib/ld.so\")",
        ),
        (
            "missing-loader",
            "its dynamic loader /lib64/ld.so does not exist",
        ),
        ("script-chain", "found /bin/sh via 2 scripts"),
        ("script-crlf", "DOS line endings"),
        ("escape-links", "sh is not in the container's PATH"),
        (
            "escape-links-relative-to-host",
            "is not in the container's PATH",
        ),
        ("loops", "symbolic link loop"),
        ("not-regular-not-exec", "is not executable (mode 0644)"),
        ("relative-cwd", "found /bin/x via 0 scripts"),
        ("trailing-slash-link", "is not in the container's PATH"),
        ("empty-path", "PATH is empty"),
        ("setuid-object", "is not an executable"),
    ];
    for (name, want) in expected {
        let got = outcomes
            .get(name)
            .unwrap_or_else(|| panic!("resolve seed {name} is missing"));
        assert!(got.contains(want), "{name}: {got}");
    }
}
