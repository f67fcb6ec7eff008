//! Drives the runc binary.
//!
//! runc is run as a plain child (registered with the shim's reaper). Its errors are read back
//! from its JSON log, so the user sees runc's own words, not just an exit code.

use std::{
    ffi::OsString,
    fs,
    io::{Read, Seek, SeekFrom},
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use serde::Deserialize;
use tokio::io::AsyncReadExt;

use crate::{
    error::{Error, Result},
    reaper,
};

/// How to reach runc, from the runtime options or the config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Runc {
    pub binary: PathBuf,
    /// State root, already including the containerd namespace.
    pub root: PathBuf,
    pub systemd_cgroup: bool,
    /// `log.json` in the bundle: runc's errors are read from there.
    pub log: PathBuf,
}

/// The stdio the container process inherits from runc.
#[derive(Default)]
pub struct Stdio3 {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

impl Runc {
    fn command(&self, args: &[OsString]) -> Command {
        let binary = in_path(&self.binary, std::env::var_os("PATH").as_deref());
        let mut cmd = Command::new(binary);
        // argv[0] as configured, as a search by the spawn would give it.
        std::os::unix::process::CommandExt::arg0(&mut cmd, &self.binary);
        cmd.arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(&self.log)
            .arg("--log-format")
            .arg("json");
        if self.systemd_cgroup {
            cmd.arg("--systemd-cgroup");
        }
        cmd.args(args);
        cmd
    }

    /// `runc --version`'s first line, asked once per binary for the life of the shim. Run as
    /// any runc call is, so the shim's reaper cannot take its exit status away.
    pub async fn version(&self) -> Option<String> {
        static SEEN: std::sync::OnceLock<
            std::sync::Mutex<std::collections::HashMap<PathBuf, String>>,
        > = std::sync::OnceLock::new();
        let seen = SEEN.get_or_init(Default::default);
        if let Some(v) = seen.lock().unwrap().get(&self.binary) {
            return Some(v.clone());
        }
        let out = self
            .run(
                "runc --version",
                args(["--version"]),
                Default::default(),
                None,
            )
            .await
            .ok()?;
        let line = String::from_utf8_lossy(&out)
            .lines()
            .next()?
            .trim()
            .to_string();
        seen.lock()
            .unwrap()
            .insert(self.binary.clone(), line.clone());
        Some(line)
    }

    /// Runs `runc ARGS`, returning its stdout. `what` names the operation and container for
    /// error messages, e.g. "container web: runc create".
    pub async fn run(
        &self,
        what: &str,
        args: Vec<OsString>,
        stdio: Stdio3,
        input: Option<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        let log_start = fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
        let mut cmd = self.command(&args);
        let capture = stdio.stdout.is_none();
        cmd.stdin(match (stdio.stdin, input.is_some()) {
            (Some(fd), _) => Stdio::from(fd),
            (None, true) => Stdio::piped(),
            (None, false) => Stdio::null(),
        });
        cmd.stdout(stdio.stdout.map_or_else(Stdio::piped, Stdio::from));
        cmd.stderr(stdio.stderr.map_or_else(Stdio::piped, Stdio::from));
        let (mut child, exit) = reaper::spawn(&mut cmd).map_err(|e| {
            Error::failed_precondition(format!("{what}: cannot run {}", self.binary.display()))
                .with_source(e)
                .append("; install runc or set runc.binary in the crossarch config")
        })?;
        if let (Some(data), Some(mut w)) = (input, child.stdin.take()) {
            // Small JSON documents only: fits in the pipe buffer, so this cannot block long.
            std::thread::spawn(move || {
                let _ = std::io::Write::write_all(&mut w, &data);
            });
        }
        let out = read_all(child.stdout.take().map(OwnedFd::from));
        let err = read_all(child.stderr.take().map(OwnedFd::from));
        let (out, err) = tokio::join!(out, err);
        let status = exit.await.map(|e| e.status).unwrap_or(-1);
        if status == 0 {
            return Ok(if capture { out } else { Vec::new() });
        }
        let mut msg = self.log_error_since(log_start);
        if msg.is_empty() {
            msg = String::from_utf8_lossy(&err).trim().to_string();
        }
        if msg.is_empty() {
            msg = format!("exit status {status}");
            if let Some(why) = self.bundle_full() {
                msg.push_str(&format!("; {why}"));
            }
        }
        Err(classify(what, &msg))
    }

    /// Why runc may have failed without a word: the file system of the bundle, where it
    /// writes its log and pid file, is (nearly) full.
    fn bundle_full(&self) -> Option<String> {
        const LOW: u64 = 1 << 20;
        let dir = self.log.parent()?;
        let free = nix::sys::statvfs::statvfs(dir)
            .ok()
            .map(|v| v.blocks_available().saturating_mul(v.fragment_size()))?;
        (free < LOW).then(|| {
            format!(
                "the file system of {} has only {} KiB free, too little for runc's log and pid \
                 file (no space left on device): free space where containerd keeps its state",
                dir.display(),
                free / 1024
            )
        })
    }

    /// The last error runc logged after `offset`.
    fn log_error_since(&self, offset: u64) -> String {
        #[derive(Deserialize)]
        struct Line {
            level: String,
            msg: String,
        }
        let mut text = String::new();
        if let Ok(mut f) = fs::File::open(&self.log) {
            let _ = f.seek(SeekFrom::Start(offset));
            let _ = f.take(1 << 20).read_to_string(&mut text);
        }
        text.lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<Line>(l).ok())
            .find(|l| l.level == "error" || l.level == "fatal")
            .map(|l| l.msg)
            .unwrap_or_default()
    }

    /// The exec fifo that `runc start` reads for container `id`, for the shim to read
    /// itself ([`crate::task`]'s start). None where `runc start` must run: a runtime binary
    /// that is not runc (its fifo may be another's), or `notify_socket` (NOTIFY_SOCKET set),
    /// with which runc waits for the program's READY=1.
    pub fn exec_fifo(&self, id: &str, notify_socket: bool) -> Option<PathBuf> {
        let runc = self.binary.file_name().is_some_and(|name| name == "runc");
        (runc && !notify_socket).then(|| self.root.join(id).join("exec.fifo"))
    }

    pub async fn ps(&self, id: &str) -> Result<Vec<i32>> {
        let out = self
            .run(
                &format!("container {id}: runc ps"),
                args(["ps", "--format", "json", id]),
                Stdio3::default(),
                None,
            )
            .await?;
        serde_json::from_slice::<Option<Vec<i32>>>(&out)
            .map(Option::unwrap_or_default)
            .map_err(|e| {
                Error::internal(format!("container {id}: runc ps: bad output")).with_source(e)
            })
    }
}

async fn read_all(fd: Option<OwnedFd>) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(fd) = fd {
        if let Ok(mut rx) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd) {
            let _ = rx.read_to_end(&mut buf).await;
        }
    }
    buf
}

/// Where a bare program name such as `runc` is in `path` (PATH), as exec would find it: the
/// first regular file with an execute bit. Looked up with stats before each spawn, because a
/// spawn of a bare name tries an exec in every PATH directory before runc's, each a failed
/// exec in the child while the shim waits for it. A path, or a name found in no absolute
/// PATH directory, is returned as it is, for the spawn's own search and error.
fn in_path(binary: &Path, path: Option<&std::ffi::OsStr>) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    if binary.as_os_str().is_empty() || binary.as_os_str().as_bytes().contains(&b'/') {
        return binary.to_path_buf();
    }
    path.into_iter()
        .flat_map(std::env::split_paths)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(binary))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
        .unwrap_or_else(|| binary.to_path_buf())
}

pub fn args<const N: usize>(a: [&str; N]) -> Vec<OsString> {
    a.iter().map(OsString::from).collect()
}

/// Maps runc's message to the error code containerd expects.
fn classify(what: &str, msg: &str) -> Error {
    // runc's own message often starts with "runc create failed"; do not say it twice.
    let text = match what.rsplit_once(": runc ") {
        Some((subject, op)) if msg.starts_with(&format!("runc {op} failed")) => {
            format!("{subject}: {msg}")
        }
        _ => format!("{what} failed: {msg}"),
    };
    let lower = msg.to_ascii_lowercase();
    if lower.contains("container does not exist") || lower.contains("container not found") {
        Error::not_found(text)
    } else if lower.contains("already exists") {
        Error::already_exists(text)
    } else if lower.contains("not running")
        || lower.contains("not paused")
        || lower.contains("cannot ")
        || lower.contains("is paused")
        || lower.contains("stopped")
    {
        Error::failed_precondition(text)
    } else {
        Error::internal(text)
    }
}

/// The first line of `BINARY --version` (runc's, containerd's), when it runs.
pub fn version_line(binary: &str) -> Option<String> {
    let out = std::process::Command::new(binary)
        .arg("--version")
        .output()
        .ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string()
    })
}

/// Whether `runc --version`'s first line names a release before 1.3. Those join a
/// container's user namespace first at exec, and then may not enter the namespaces another
/// user namespace owns (opencontainers/runc#4390, fixed by #4492 in 1.3).
pub fn joins_user_namespace_first(version_line: &str) -> bool {
    let Some(v) = version_line.strip_prefix("runc version ") else {
        return false;
    };
    let mut parts = v
        .split(|c: char| !c.is_ascii_digit())
        .map(str::parse::<u32>);
    matches!((parts.next(), parts.next()), (Some(Ok(major)), Some(Ok(minor))) if (major, minor) < (1, 3))
}

/// The runc state root for a containerd namespace, as the Go shim lays it out.
pub fn root_for(base: &Path, namespace: &str) -> PathBuf {
    base.join(namespace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    #[test]
    fn releases_that_join_the_user_namespace_first_are_named() {
        assert!(joins_user_namespace_first("runc version 1.1.5+ds1"));
        assert!(joins_user_namespace_first("runc version 1.0.0-rc93"));
        assert!(joins_user_namespace_first("runc version 1.2.9"));
        assert!(!joins_user_namespace_first("runc version 1.3.0-rc.1"));
        assert!(!joins_user_namespace_first("runc version 1.3.6+ds1"));
        assert!(!joins_user_namespace_first("crun version 1.8"));
        assert!(!joins_user_namespace_first("runc version"));
    }

    #[test]
    fn only_runc_is_started_through_its_fifo() {
        let runc = |binary: &str| Runc {
            binary: binary.into(),
            root: "/run/containerd/runc/k8s.io".into(),
            systemd_cgroup: false,
            log: "/b/log.json".into(),
        };
        let fifo = Some(PathBuf::from("/run/containerd/runc/k8s.io/web/exec.fifo"));
        assert_eq!(runc("runc").exec_fifo("web", false), fifo);
        assert_eq!(runc("/usr/local/sbin/runc").exec_fifo("web", false), fifo);
        assert_eq!(runc("runc").exec_fifo("web", true), None);
        assert_eq!(runc("/usr/bin/crun").exec_fifo("web", false), None);
        assert_eq!(runc("/opt/runc-wrapper").exec_fifo("web", false), None);
    }

    #[test]
    fn a_bare_name_is_looked_up_in_path_as_exec_would() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        for d in [&a, &b] {
            fs::create_dir(d).unwrap();
        }
        // Not executable in a, executable in b; a directory of that name in a too.
        fs::write(a.join("runc"), "").unwrap();
        fs::create_dir(a.join("tool")).unwrap();
        for name in ["runc", "tool"] {
            fs::write(b.join(name), "").unwrap();
            fs::set_permissions(b.join(name), fs::Permissions::from_mode(0o755)).unwrap();
        }
        let path = std::env::join_paths([&a, &b]).unwrap();
        let found = |name: &str| in_path(Path::new(name), Some(&path));
        assert_eq!(found("runc"), b.join("runc"));
        assert_eq!(found("tool"), b.join("tool"));
        assert_eq!(found("missing"), PathBuf::from("missing"));
        assert_eq!(found("/usr/sbin/runc"), PathBuf::from("/usr/sbin/runc"));
        assert_eq!(found("bin/runc"), PathBuf::from("bin/runc"));
        assert_eq!(in_path(Path::new("runc"), None), PathBuf::from("runc"));
        // A relative PATH entry is left to the spawn's own search.
        let relative = std::ffi::OsString::from("relative:".to_string() + &b.display().to_string());
        assert_eq!(in_path(Path::new("runc"), Some(&relative)), b.join("runc"));
    }

    #[test]
    fn classifies_runc_messages() {
        assert_eq!(
            classify("container a: runc kill", "container does not exist").kind(),
            Kind::NotFound
        );
        assert_eq!(
            classify("x", "container with id exists: a already exists").kind(),
            Kind::AlreadyExists
        );
        assert_eq!(
            classify("x", "container not running").kind(),
            Kind::FailedPrecondition
        );
        // As with runc-v2, a missing executable is not a missing container.
        let e = classify(
            "container a: runc create",
            "exec: \"nope\": executable file not found in $PATH",
        );
        assert_eq!(e.kind(), Kind::Internal);
        assert!(e
            .to_string()
            .starts_with("container a: runc create failed: exec"));
        let e = classify(
            "container a: runc create",
            "runc create failed: unable to start",
        );
        assert_eq!(
            e.to_string(),
            "container a: runc create failed: unable to start"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn runc_errors_come_from_its_log() {
        reaper::start().unwrap();
        let dir = tempfile::tempdir().unwrap();
        // A stand-in that logs like runc and fails, so this runs without root.
        let fake = dir.path().join("fake-runc");
        fs::write(
            &fake,
            "#!/bin/sh\nwhile [ \"$1\" != --log ]; do shift; done\n\
             echo '{\"level\":\"error\",\"msg\":\"container not running\"}' >> \"$2\"\nexit 1\n",
        )
        .unwrap();
        std::os::unix::fs::PermissionsExt::set_mode(
            &mut fs::metadata(&fake).unwrap().permissions(),
            0o755,
        );
        fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let runc = Runc {
            binary: fake,
            root: dir.path().join("root"),
            systemd_cgroup: false,
            log: dir.path().join("log.json"),
        };
        let err = runc
            .run(
                "container a: runc pause",
                args(["pause", "a"]),
                Stdio3::default(),
                None,
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), Kind::FailedPrecondition, "{err:?}");
        assert_eq!(
            err.to_string(),
            "container a: runc pause failed: container not running"
        );
        let missing = Runc {
            binary: "/nonexistent/runc".into(),
            ..runc
        };
        let err = missing
            .run(
                "container a: runc start",
                args(["start", "a"]),
                Stdio3::default(),
                None,
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("install runc"), "{err}");
    }
}
