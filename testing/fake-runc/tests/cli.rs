//! The fake runc on its own, as the shim's tests rely on it: real processes, real statuses,
//! runc's error words in its log.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

const FAKE: &str = env!("CARGO_BIN_EXE_fake-runc");

struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    /// A state root; this test process becomes the subreaper of what the fake starts, so
    /// that it can wait for the container's processes as the shim does.
    fn new() -> Root {
        // SAFETY: prctl(2) with plain integers.
        assert_eq!(
            unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) },
            0
        );
        Root {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A bundle whose process follows `script`.
    fn bundle(&self, name: &str, script: &[&str]) -> PathBuf {
        let bundle = self.path(name);
        fs::create_dir(&bundle).unwrap();
        let mut args = vec![FAKE];
        args.extend(script);
        let spec =
            serde_json::json!({"process": {"args": args, "cwd": "/"}, "root": {"path": "/"}});
        fs::write(bundle.join("config.json"), spec.to_string()).unwrap();
        bundle
    }

    /// Runs `fake-runc --root .. --log .. ARGS`: its success and stdout.
    fn run(&self, args: &[&str]) -> (bool, String) {
        let mut cmd = Command::new(FAKE);
        cmd.arg("--root")
            .arg(self.path("state"))
            .arg("--log")
            .arg(self.path("log.json"))
            .args(["--log-format", "json"])
            .args(args);
        if matches!(args.first(), Some(&"create" | &"exec")) {
            // The container's process inherits them: a pipe would stay open as long as it runs.
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, out) = self.run(args);
        assert!(ok, "fake-runc {args:?} failed: {}", self.last_error());
        out
    }

    fn last_error(&self) -> String {
        let log = fs::read_to_string(self.path("log.json")).unwrap_or_default();
        let line = log.lines().last().unwrap_or("{}");
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["level"], "error", "{line}");
        v["msg"].as_str().unwrap().to_string()
    }

    fn status(&self, id: &str) -> String {
        let v: serde_json::Value = serde_json::from_str(&self.ok(&["state", id])).unwrap();
        v["status"].as_str().unwrap().to_string()
    }

    /// Creates `id` following `script`; the init's pid.
    fn create(&self, id: &str, script: &[&str]) -> i32 {
        let bundle = self.bundle(id, script);
        let pid_file = self.path(&format!("{id}.pid"));
        let (b, p) = (bundle.to_str().unwrap(), pid_file.to_str().unwrap());
        self.ok(&["create", "--bundle", b, "--pid-file", p, id]);
        read_pid(&pid_file)
    }

    /// Execs `script` in `id`; its pid.
    fn exec(&self, id: &str, name: &str, script: &[&str]) -> i32 {
        let mut args = vec![FAKE];
        args.extend(script);
        let process = self.path(&format!("{name}.json"));
        fs::write(&process, serde_json::json!({"args": args}).to_string()).unwrap();
        let pid_file = self.path(&format!("{name}.pid"));
        let (pr, p) = (process.to_str().unwrap(), pid_file.to_str().unwrap());
        self.ok(&["exec", "--detach", "--process", pr, "--pid-file", p, id]);
        read_pid(&pid_file)
    }
}

impl Drop for Root {
    /// Kills what a failed test left running: the processes the fake started, and only them.
    fn drop(&mut self) {
        let ids: Vec<String> = fs::read_dir(self.path("state"))
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        for id in ids {
            self.run(&["delete", "--force", &id]);
        }
    }
}

fn read_pid(path: &Path) -> i32 {
    fs::read_to_string(path).unwrap().parse().unwrap()
}

/// What a shell reports for `pid`'s exit: the code, or 128 + the signal.
fn wait(pid: i32) -> i32 {
    let mut status = 0;
    // SAFETY: waits for one child of this process.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        libc::WEXITSTATUS(status)
    }
}

#[test]
fn the_init_waits_for_start_then_follows_its_script() {
    let root = Root::new();
    let pid = root.create("c", &["exit", "3"]);
    assert_eq!(root.status("c"), "created");
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(root.status("c"), "created", "it waits for start");
    root.ok(&["start", "c"]);
    assert_eq!(wait(pid), 3);
    assert_eq!(root.status("c"), "stopped");
    let (ok, _) = root.run(&["start", "c"]);
    assert!(!ok);
    root.ok(&["delete", "c"]);
    let (ok, _) = root.run(&["state", "c"]);
    assert!(!ok);
    assert_eq!(root.last_error(), "container does not exist: c");
}

#[test]
fn signals_are_real_and_execs_die_with_the_init() {
    let root = Root::new();
    let init = root.create("c", &["sleep", "30"]);
    root.ok(&["start", "c"]);
    assert_eq!(root.status("c"), "running");
    let quick = root.exec("c", "quick", &["echo", "hi", "exit", "5"]);
    assert_eq!(wait(quick), 5);
    let slow = root.exec("c", "slow", &["sleep", "30"]);
    let ps: Vec<i32> = serde_json::from_str(&root.ok(&["ps", "--format", "json", "c"])).unwrap();
    assert_eq!(ps, [init, slow]);
    root.ok(&["pause", "c"]);
    assert_eq!(root.status("c"), "paused");
    root.ok(&["resume", "c"]);
    let (ok, _) = root.run(&["delete", "c"]);
    assert!(!ok, "a running container is only deleted by force");
    assert!(root.last_error().contains("not stopped"));
    root.ok(&["kill", "c", "15"]);
    assert_eq!(wait(init), 143);
    assert_eq!(wait(slow), 137, "killed as its PID namespace would be");
    let (ok, _) = root.run(&["kill", "c", "15"]);
    assert!(!ok);
    assert_eq!(root.last_error(), "container not running");
    root.ok(&["delete", "c"]);
}

#[test]
fn delete_force_kills_a_container_that_never_started() {
    let root = Root::new();
    let init = root.create("c", &["exit", "0"]);
    root.ok(&["delete", "--force", "c"]);
    assert_eq!(wait(init), 137);
}

#[test]
fn what_the_shim_does_not_use_is_refused() {
    let root = Root::new();
    let (ok, _) = root.run(&["checkpoint", "c"]);
    assert!(!ok);
    assert!(root.last_error().contains("unsupported subcommand"));
    let (ok, _) = root.run(&["kill", "--signal-all", "c"]);
    assert!(!ok);
    assert!(root.last_error().contains("unsupported flag"));
}
