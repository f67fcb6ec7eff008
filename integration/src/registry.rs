//! A private image registry for the tests that pull as a node pulls: Debian's
//! `docker-registry` (the distribution project's registry), on a free port of 127.0.0.1 only,
//! with its storage in a temporary directory. Dropping the [`Registry`] stops the process it
//! started and removes the storage.
//!
//! containerd talks plain HTTP to a registry on localhost with a port, as it does for a
//! node's local mirror, so no TLS or hosts.toml is needed.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The registry's binary, from Debian's `docker-registry` package.
pub const BINARY: &str = "docker-registry";

pub struct Registry {
    child: Child,
    host: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry and waits until it answers; `None` when [`BINARY`] is not on PATH.
    pub fn start() -> Option<Registry> {
        let binary = crate::in_path(BINARY)?;
        let dir = tempfile::Builder::new()
            .prefix("cx-registry")
            .tempdir()
            .unwrap();
        // A port nobody holds now; the registry binds it a moment later.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("find a free port on 127.0.0.1")
            .port();
        let host = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: {host}\n",
                dir.path().join("storage").display()
            ),
        )
        .unwrap();
        let log = dir.path().join("registry.log");
        let child = Command::new(binary)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.path().join("registry.err")).unwrap())
            .spawn()
            .expect("start docker-registry");
        let mut registry = Registry {
            child,
            host,
            log,
            _dir: dir,
        };
        crate::wait_until(
            &format!("the registry at {} to answer", registry.host),
            Duration::from_secs(30),
            || {
                if let Ok(Some(status)) = registry.child.try_wait() {
                    panic!("docker-registry exited ({status}): {}", registry.logs());
                }
                registry.answers()
            },
        );
        Some(registry)
    }

    /// `127.0.0.1:PORT`, the first component of the registry's image names.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The registry's own output, for a failure message.
    pub fn logs(&self) -> String {
        let err = self.log.with_file_name("registry.err");
        format!(
            "{}{}",
            std::fs::read_to_string(&self.log).unwrap_or_default(),
            std::fs::read_to_string(err).unwrap_or_default()
        )
    }

    /// Whether `GET /v2/` gets the registry's 200.
    fn answers(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(&self.host) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let request = format!("GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n", self.host);
        let mut reply = String::new();
        s.write_all(request.as_bytes()).is_ok()
            && s.read_to_string(&mut reply).is_ok()
            && reply.split_whitespace().nth(1) == Some("200")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
