//! `containerd-shim-crossarch-v2 doctor` on this node, as a node-image baker runs it.

use std::process::Command;

use crossarch_integration::{runtime, shim_dir};

fn doctor(config: &std::path::Path) -> (i32, String) {
    let shim = shim_dir().join("containerd-shim-crossarch-v2");
    let out = Command::new(&shim)
        .args(["doctor", "--config"])
        .arg(config)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; run scripts/build.sh", shim.display()));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn a_ready_node_says_so_and_a_broken_config_fails() {
    if runtime() != "io.containerd.crossarch.v2" {
        println!(
            "SKIPPED: doctor is crossarch's own; CROSSARCH_TEST_RUNTIME is {}",
            runtime()
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[emulation]\nallowed = [\"arm64\"]\n").unwrap();
    let (code, out) = doctor(&good);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("ok    runc") && out.contains("ok    init"),
        "{out}"
    );
    assert!(
        out.contains("linux/arm64"),
        "qemu for arm64 is found: {out}"
    );
    assert!(
        out.lines().last().unwrap_or("").starts_with("ready"),
        "{out}"
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[emulation]\nmode = \"fast\"\n").unwrap();
    let (code, out) = doctor(&bad);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL  config") && out.contains("fast"),
        "{out}"
    );

    let no_runc = dir.path().join("norunc.toml");
    std::fs::write(&no_runc, "[runc]\nbinary = \"/nonexistent/runc\"\n").unwrap();
    let (code, out) = doctor(&no_runc);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL  runc") && out.contains("install runc"),
        "{out}"
    );
}
