//! `install-config` end to end: the shim binary edits a copy of the installed containerd's own
//! default config (`containerd config default`: version 2 from containerd 1.6 on the host,
//! version 3 from containerd 2.x in the sid lane, which runs this test too), and that
//! containerd then loads the result with the CRI plugin on and sees the `crossarch` handler.
//! `--undo` gives the file back byte for byte.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const SHIM: &str = env!("CARGO_BIN_EXE_containerd-shim-crossarch-v2");
const V2_DEFAULT: &str = include_str!("fixtures/install_config/containerd-1.6-default.toml");

fn install_config(args: &[&str]) -> Output {
    Command::new(SHIM)
        .arg("install-config")
        .args(args)
        .output()
        .expect("run the shim")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The installed containerd's default config (containerd 1.6's fixture where it prints
/// none), with every path and socket moved into `dir` and NRI off, so the daemon shares
/// nothing with the node's.
fn private_config(dir: &Path) -> String {
    let default = Command::new("containerd")
        .args(["config", "default"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|| V2_DEFAULT.to_string());
    let mut doc: toml_edit::DocumentMut = default.parse().unwrap();
    let d = dir.display();
    doc["root"] = toml_edit::value(format!("{d}/root"));
    doc["state"] = toml_edit::value(format!("{d}/state"));
    doc["grpc"]["address"] = toml_edit::value(format!("{d}/containerd.sock"));
    doc["ttrpc"]["address"] = toml_edit::value(format!("{d}/containerd.sock.ttrpc"));
    let plugins = doc["plugins"].as_table_like_mut().unwrap();
    if let Some(opt) = plugins.get_mut("io.containerd.internal.v1.opt") {
        opt["path"] = toml_edit::value(format!("{d}/opt"));
    }
    if let Some(nri) = plugins.get_mut("io.containerd.nri.v1.nri") {
        nri["disable"] = toml_edit::value(true);
        nri["socket_path"] = toml_edit::value(format!("{d}/nri.sock"));
    }
    doc.to_string()
}

/// The config layout containerd's default config has.
fn layout(config: &str) -> i64 {
    let doc: toml_edit::DocumentMut = config.parse().unwrap();
    doc.get("version").and_then(|v| v.as_integer()).unwrap_or(1)
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_installed_containerd_loads_the_edited_default_config() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: starting containerd needs root");
        return;
    }
    if Command::new("containerd")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no containerd in PATH (scripts/install-deps.sh installs it)");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("crossarch-ic.")
        .tempdir_in("/tmp")
        .unwrap();
    let config = dir.path().join("config.toml");
    let original = private_config(dir.path());
    std::fs::write(&config, &original).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640)).unwrap();
    let c = config.to_str().unwrap();

    let dry = install_config(&["--config", c, "--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry));
    let header = match layout(&original) {
        2 => "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.crossarch]",
        3 => "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.crossarch]",
        other => panic!("containerd's default config has version {other}"),
    };
    println!(
        "containerd's default config: version {}, {} bytes",
        layout(&original),
        original.len()
    );
    assert!(
        text(&dry)
            .lines()
            .any(|l| l.starts_with('+') && l.trim_start_matches('+').trim() == header),
        "{header} missing:\n{}",
        text(&dry)
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), original);

    let add = install_config(&["--config", c]);
    assert_eq!(add.status.code(), Some(0), "{}", text(&add));
    assert!(text(&add).contains("restart containerd"), "{}", text(&add));
    let edited = std::fs::read_to_string(&config).unwrap();
    assert_ne!(edited, original);
    let meta = std::fs::metadata(&config).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    let backup = dir.path().join("config.toml.crossarch-backup");
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), original);

    let again = install_config(&["--config", c]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(text(&again).contains("nothing to do"), "{}", text(&again));
    assert_eq!(std::fs::read_to_string(&config).unwrap(), edited);
    assert_eq!(std::fs::metadata(&config).unwrap().ino(), meta.ino());

    // containerd exits at once on a config it cannot parse; the CRI plugin logs the runtime
    // handlers it took from it.
    let log = std::fs::File::create(dir.path().join("containerd.log")).unwrap();
    let mut daemon = Daemon(
        Command::new("containerd")
            .args(["--config", c])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let sock = dir.path().join("containerd.sock");
    let deadline = Instant::now() + Duration::from_secs(20);
    let log_text = || std::fs::read_to_string(dir.path().join("containerd.log")).unwrap();
    loop {
        if let Some(status) = daemon.0.try_wait().unwrap() {
            panic!(
                "containerd exited ({status}) on the edited config:\n{}",
                log_text()
            );
        }
        let up = Command::new("ctr")
            .arg("--address")
            .arg(&sock)
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success());
        if up {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "containerd did not answer:\n{}",
            log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let plugins = Command::new("ctr")
        .arg("--address")
        .arg(&sock)
        .args(["plugins", "ls"])
        .output()
        .unwrap();
    let plugins = String::from_utf8_lossy(&plugins.stdout).to_string();
    // containerd 1.6's CRI is io.containerd.grpc.v1 cri; 2.x has it as io.containerd.cri.v1
    // runtime (the handlers) beside io.containerd.grpc.v1 cri (the API).
    for (kind, name) in [("io.containerd.grpc.v1", "cri")]
        .into_iter()
        .chain((layout(&original) >= 3).then_some(("io.containerd.cri.v1", "runtime")))
    {
        let line = plugins
            .lines()
            .find(|l| {
                let mut f = l.split_whitespace();
                f.next() == Some(kind) && f.next() == Some(name)
            })
            .unwrap_or_else(|| panic!("no {kind} {name} plugin:\n{plugins}"));
        assert!(
            line.trim_end().ends_with("ok"),
            "{kind} {name}: {line}\n{}",
            log_text()
        );
    }
    // 1.6 logs its config as Go structs, 2.x as quoted JSON: either way one line has the handler
    // with its runtime type.
    assert!(
        log_text().lines().any(|l| {
            l.contains("crossarch:{Type:io.containerd.crossarch.v2")
                || l.contains(r#"\"crossarch\":{\"runtimeType\":\"io.containerd.crossarch.v2\""#)
        }),
        "the CRI plugin did not take the handler:\n{}",
        log_text()
    );
    drop(daemon);

    let undo = install_config(&["--config", c, "--undo"]);
    assert_eq!(undo.status.code(), Some(0), "{}", text(&undo));
    assert_eq!(std::fs::read_to_string(&config).unwrap(), original);
    let undo = install_config(&["--config", c, "--undo"]);
    assert!(text(&undo).contains("nothing to undo"), "{}", text(&undo));
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let bad = install_config(&["--frobnicate"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(text(&bad).contains("--frobnicate"));
    let help = install_config(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(text(&help).contains("--undo"));
}

#[test]
fn a_missing_file_is_created_for_the_named_containerd_and_a_version_1_file_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("etc/containerd/config.toml");
    let c = config.to_str().unwrap();
    let made = install_config(&["--config", c, "--containerd-version", "2.0.4"]);
    assert_eq!(made.status.code(), Some(0), "{}", text(&made));
    let t = std::fs::read_to_string(&config).unwrap();
    assert!(t.contains("version = 3"), "{t}");
    assert!(t.contains("[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.crossarch]"));
    assert!(!dir
        .path()
        .join("etc/containerd/config.toml.crossarch-backup")
        .exists());

    std::fs::write(&config, "[plugins.cri]\n").unwrap();
    let refused = install_config(&["--config", c]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(text(&refused).contains("version 1"), "{}", text(&refused));
    assert_eq!(std::fs::read_to_string(&config).unwrap(), "[plugins.cri]\n");
}
