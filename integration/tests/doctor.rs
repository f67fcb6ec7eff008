//! `containerd-shim-crossarch-v2 doctor` on this node, as a node-image baker runs it, and the
//! shim's command line (`--help`, an unknown flag).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crossarch_integration::{runtime, shim_dir};

fn shim() -> PathBuf {
    shim_dir().join("containerd-shim-crossarch-v2")
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}; run scripts/build.sh", cmd))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn doctor(config: &Path) -> (i32, String) {
    let out = run(Command::new(shim())
        .args(["doctor", "--config"])
        .arg(config));
    (out.status.code().unwrap_or(-1), text(&out.stdout))
}

/// Whether these tests apply: doctor and the CLI are crossarch's own.
fn crossarch() -> bool {
    if runtime() != "io.containerd.crossarch.v2" {
        println!(
            "SKIPPED: doctor is crossarch's own; CROSSARCH_TEST_RUNTIME is {}",
            runtime()
        );
        return false;
    }
    true
}

#[test]
fn a_ready_node_says_so_and_a_broken_config_fails() {
    if !crossarch() {
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

#[test]
fn help_lists_the_commands() {
    if !crossarch() {
        return;
    }
    for flag in ["--help", "-h", "help"] {
        let out = run(Command::new(shim()).arg(flag));
        let help = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{flag}: {help}");
        for word in [
            "doctor",
            "install-config",
            "-namespace",
            "CROSSARCH_CONFIG",
            "Exit codes",
        ] {
            assert!(help.contains(word), "{flag} lists {word}: {help}");
        }
    }
    let out = run(Command::new(shim()).args(["doctor", "--help"]));
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("--containerd-config"));
}

#[test]
fn an_unknown_flag_is_one_line_and_exit_code_2() {
    if !crossarch() {
        return;
    }
    for args in [
        &["--frobnicate"][..],
        &["-namespace", "x", "-frobnicate", "start"],
        &["doctor", "--frobnicate"],
    ] {
        let out = run(Command::new(shim()).args(args));
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.contains("frobnicate") && err.contains("--help"),
            "{err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

fn json(cmd: &mut Command) -> (i32, serde_json::Value) {
    let out = run(cmd);
    let doc = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}{}", text(&out.stdout), text(&out.stderr)));
    (out.status.code().unwrap_or(-1), doc)
}

fn check<'a>(doc: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check: {doc:#}"))
}

#[test]
fn doctor_json_has_the_schema() {
    if !crossarch() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[emulation]\nallowed = [\"arm64\"]\n").unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[emulation]\nmode = \"fast\"\n").unwrap();
    for (config, want) in [(good, 0), (bad, 1)] {
        let (code, doc) = json(
            Command::new(shim())
                .args(["doctor", "--json", "--config"])
                .arg(&config),
        );
        assert_eq!(code, want, "{doc:#}");
        assert_eq!(doc["ready"], serde_json::json!(code == 0), "{doc:#}");
        assert!(doc["version"].is_string());
        for c in doc["checks"].as_array().unwrap() {
            assert!(c["name"].is_string() && c["message"].is_string(), "{c}");
            assert!(
                ["ok", "warn", "fail"].contains(&c["level"].as_str().unwrap()),
                "{c}"
            );
        }
        let facts = &doc["facts"];
        for key in [
            "host",
            "native",
            "private_binfmt",
            "trace",
            "modes",
            "user_namespaces",
            "qemu",
            "qemu_package",
            "init",
            "containerd_config",
        ] {
            assert!(facts.get(key).is_some(), "facts.{key}: {doc:#}");
        }
        assert!(facts["user_namespaces"]["allowed"].is_boolean());
        if want == 0 {
            assert!(facts["qemu"]["linux/arm64"].is_string(), "{doc:#}");
        }
    }
}

/// Which modes a foreign container can get here: trace mode is tried for real, with the
/// injected init beside the shim, and drops out when the init is turned off. What trace mode
/// leaves of a user switch here warns only where trace mode is the one used.
#[test]
fn doctor_says_which_modes_run_here() {
    if !crossarch() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let default = dir.path().join("default.toml");
    std::fs::write(&default, "").unwrap();
    let no_init = dir.path().join("no-init.toml");
    std::fs::write(&no_init, "[init]\nenabled = false\n").unwrap();
    let forced = dir.path().join("trace.toml");
    std::fs::write(
        &forced,
        "[init]\nenabled = false\n[emulation]\nmode = \"trace\"\n",
    )
    .unwrap();
    let trace_with_init = dir.path().join("trace-with-init.toml");
    std::fs::write(&trace_with_init, "[emulation]\nmode = \"trace\"\n").unwrap();
    let doctor = |config: &Path| {
        json(
            Command::new(shim())
                .args(["doctor", "--json", "--config"])
                .arg(config),
        )
    };
    let (_, doc) = doctor(&default);
    assert_eq!(doc["facts"]["trace"]["supported"], true, "{doc:#}");
    assert_eq!(
        doc["facts"]["modes"],
        serde_json::json!(["userns", "trace", "wrap"]),
        "{doc:#}"
    );
    assert_eq!(check(&doc, "trace")["level"], "ok", "{doc:#}");
    // Where auto picks userns mode, trace mode's limits are no warning.
    assert_eq!(check(&doc, "user switch")["level"], "ok", "{doc:#}");
    let (_, traced) = doctor(&trace_with_init);
    let limit = &traced["facts"]["trace"]["user_switch_why_not"];
    assert_eq!(
        check(&traced, "user switch")["level"],
        if limit.is_null() { "ok" } else { "warn" },
        "{traced:#}"
    );

    let (_, doc) = doctor(&no_init);
    assert!(
        !doc["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "user switch"),
        "no user-switch check where trace mode cannot run: {doc:#}"
    );
    assert_eq!(doc["facts"]["modes"], serde_json::json!(["userns", "wrap"]));
    assert!(doc["facts"]["trace"]["why_not"]
        .as_str()
        .unwrap()
        .contains("init.enabled = false"));
    assert_eq!(check(&doc, "trace")["level"], "warn", "{doc:#}");

    let (code, doc) = doctor(&forced);
    assert_eq!(
        code, 1,
        "trace mode forced where it cannot run fails: {doc:#}"
    );
    let trace = check(&doc, "trace");
    assert_eq!(trace["level"], "fail", "{doc:#}");
    assert!(trace["fix"].as_str().unwrap().contains("ptrace_scope"));
}

#[test]
fn doctor_finds_the_cri_handler_or_says_how_to_add_it() {
    if !crossarch() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("crossarch.toml");
    std::fs::write(&config, "").unwrap();
    let containerd = |name: &str, body: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        let (code, out) = {
            let out = run(Command::new(shim())
                .args(["doctor", "--config"])
                .arg(&config)
                .arg("--containerd-config")
                .arg(&path));
            (out.status.code().unwrap_or(-1), text(&out.stdout))
        };
        let line = out
            .lines()
            .find(|l| l.contains("cri handler"))
            .unwrap_or_else(|| panic!("no cri handler line: {out}"))
            .to_string();
        (code, line)
    };
    let (code, line) = containerd(
        "runc-only.toml",
        "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n\
         runtime_type = \"io.containerd.runc.v2\"\n",
    );
    assert!(
        line.starts_with("warn") && line.contains("install-config"),
        "{line}"
    );
    assert_eq!(code, 0, "a missing handler is only a warning");
    for (name, body) in [
        (
            "v2.toml",
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.crossarch]\n\
             runtime_type = \"io.containerd.crossarch.v2\"\n",
        ),
        (
            "v3.toml",
            "version = 3\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.crossarch]\n\
             runtime_type = 'io.containerd.crossarch.v2'\n",
        ),
    ] {
        let (_, line) = containerd(name, body);
        assert!(
            line.starts_with("ok") && line.contains("crossarch (config version"),
            "{name}: {line}"
        );
    }
}

/// `user.max_user_namespaces` is per user namespace: set to 0 inside a fresh one, it limits
/// only that namespace and its children, so the host's value is never changed.
#[test]
fn doctor_warns_when_user_namespaces_are_off() {
    if !crossarch() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("crossarch.toml");
    std::fs::write(&config, "").unwrap();
    let host_before = std::fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap();
    let out = run(Command::new("unshare")
        .args(["-U", "-r", "sh", "-c"])
        .arg("echo 0 > /proc/sys/user/max_user_namespaces && exec \"$0\" doctor --json --config \"$1\"")
        .arg(shim())
        .arg(&config));
    if out.stdout.is_empty() {
        println!(
            "SKIPPED: cannot make a user namespace here: {}",
            text(&out.stderr)
        );
        return;
    }
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let userns = check(&doc, "userns");
    assert_eq!(userns["level"], "warn", "{doc:#}");
    assert!(userns["message"]
        .as_str()
        .unwrap()
        .contains("max_user_namespaces = 0"));
    assert!(userns["fix"].as_str().unwrap().contains("sysctl"));
    assert_eq!(doc["facts"]["user_namespaces"]["allowed"], false);
    assert_eq!(doc["facts"]["user_namespaces"]["max_user_namespaces"], 0);
    // Without user namespaces, auto falls back to trace mode, which runs here.
    assert_eq!(
        doc["facts"]["modes"],
        serde_json::json!(["trace", "wrap"]),
        "{doc:#}"
    );
    assert!(check(&doc, "emulation")["message"]
        .as_str()
        .unwrap()
        .contains("auto picks trace mode"));
    assert_eq!(
        std::fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap(),
        host_before,
        "the host's value is unchanged"
    );
}

/// A chroot holding only the static shim and a /proc mounted in a mount namespace of the
/// test's own, so the host's mounts are never touched.
#[test]
fn doctor_fails_in_a_chroot() {
    if !crossarch() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("proc")).unwrap();
    std::fs::copy(shim(), root.path().join("containerd-shim-crossarch-v2")).unwrap();
    let out = run(Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(
            "mount -t proc proc \"$0/proc\" && exec chroot \"$0\" /containerd-shim-crossarch-v2 \
             doctor --json --config /none.toml --containerd-config /none.toml",
        )
        .arg(root.path()));
    if out.stdout.is_empty() {
        println!(
            "SKIPPED: cannot mount /proc in a mount namespace here: {}",
            text(&out.stderr)
        );
        return;
    }
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)));
    assert_eq!(out.status.code(), Some(1), "{doc:#}");
    let chroot = check(&doc, "chroot");
    assert_eq!(chroot["level"], "fail", "{doc:#}");
    let message = chroot["message"].as_str().unwrap();
    assert!(
        message.contains("EPERM") && message.contains("EOF"),
        "{message}"
    );
    assert!(chroot["fix"].as_str().unwrap().contains("pivot_root"));
    assert_eq!(doc["facts"]["chrooted"], true);
}
