//! `-info`, as containerd 2.x runs it for each runtime handler: the runtime's options (an
//! `Any`) on stdin, a protobuf `RuntimeInfo` on stdout. CRI tells the kubelet from its
//! `features` whether the handler runs `hostUsers: false` pods.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use containerd_shim::protos::{
    protobuf::{well_known_types::any::Any, Message},
    types::introspection::RuntimeInfo,
};

const SHIM: &str = env!("CARGO_BIN_EXE_containerd-shim-crossarch-v2");

fn ask_info(stdin: &[u8]) -> (Output, RuntimeInfo) {
    let mut child = Command::new(SHIM)
        .args([
            "-namespace",
            "k8s.io",
            "-address",
            "/run/containerd/containerd.sock",
            "-info",
        ])
        .env("CROSSARCH_CONFIG", "/nonexistent/crossarch.toml")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let info = RuntimeInfo::parse_from_bytes(&out.stdout).unwrap();
    (out, info)
}

/// runc's `Options` with `BinaryName`, as containerd marshals them.
fn runc_options(binary: &str) -> Any {
    let mut value = vec![0x32, binary.len() as u8];
    value.extend_from_slice(binary.as_bytes());
    Any {
        type_url: "containerd.runc.v1.Options".into(),
        value,
        ..Default::default()
    }
}

#[test]
fn info_carries_runcs_features_as_containerd_reads_them() {
    let Ok(runc) = which("runc") else {
        eprintln!("SKIPPED: no runc on PATH");
        return;
    };
    let (_, info) = ask_info(b"");
    assert_eq!(info.name, "io.containerd.crossarch.v2");
    assert_eq!(info.version.version, env!("CARGO_PKG_VERSION"));
    assert!(info.options.is_none());
    assert_eq!(
        info.features.type_url,
        "types.containerd.io/opencontainers/runtime-spec/1/features/Features"
    );
    let features: serde_json::Value = serde_json::from_slice(&info.features.value).unwrap();
    let expected: serde_json::Value =
        serde_json::from_slice(&Command::new(&runc).arg("features").output().unwrap().stdout)
            .unwrap();
    assert_eq!(features, expected);

    // The runc the options name is the one asked, and the options come back.
    let opts = runc_options(&runc);
    let (_, info) = ask_info(&opts.write_to_bytes().unwrap());
    assert_eq!(info.options.as_ref(), Some(&opts));
    assert!(info.features.is_some());
}

#[test]
fn info_without_features_says_why_and_still_answers() {
    let opts = runc_options("/nonexistent/runc");
    let (out, info) = ask_info(&opts.write_to_bytes().unwrap());
    assert!(info.features.is_none());
    assert_eq!(info.name, "io.containerd.crossarch.v2");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot run `/nonexistent/runc features`"),
        "{stderr}"
    );
}

fn which(name: &str) -> Result<String, ()> {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .map_err(drop)?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() && !path.is_empty() {
        Ok(path)
    } else {
        Err(())
    }
}
