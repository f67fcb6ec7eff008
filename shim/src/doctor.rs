//! `containerd-shim-crossarch-v2 doctor`: whether this node is ready for crossarch, and what
//! to do where it is not. Exits non-zero when something would make containers fail.

use std::path::Path;

use crossarch_route::qemu;

use crate::{config::Config, facts, init};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Ok,
    Warn,
    Fail,
}

struct Report {
    worst: Level,
}

impl Report {
    fn line(&mut self, level: Level, what: &str, msg: impl AsRef<str>) {
        let tag = match level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        println!("{tag}  {what:<12} {}", msg.as_ref());
        self.worst = self.worst.max(level);
    }
}

pub fn main(args: &[String]) -> i32 {
    let path = match args.iter().position(|a| a == "--config") {
        Some(i) => args
            .get(i + 1)
            .map(Into::into)
            .unwrap_or_else(Config::default_file),
        None => Config::default_file(),
    };
    let mut r = Report { worst: Level::Ok };
    println!("crossarch {} doctor", env!("CARGO_PKG_VERSION"));

    let config = match Config::load(&path) {
        Ok(c) => {
            let origin = if path.exists() {
                path.display().to_string()
            } else {
                format!("{} absent: defaults", path.display())
            };
            r.line(Level::Ok, "config", origin);
            c
        }
        Err(e) => {
            r.line(Level::Fail, "config", e.to_string());
            Config::default()
        }
    };

    if !nix::unistd::geteuid().is_root() {
        r.line(
            Level::Warn,
            "user",
            "not root: run doctor as root, as containerd runs the shim",
        );
    }

    match crate::runc::version_line(&config.runc.binary) {
        Some(v) => {
            r.line(Level::Ok, "runc", &v);
            let userns_possible = matches!(
                config.emulation.mode,
                crate::config::EmulationMode::Auto | crate::config::EmulationMode::Userns
            );
            if userns_possible && crate::runc::joins_user_namespace_first(&v) {
                r.line(
                    Level::Warn,
                    "pod exec",
                    "runc before 1.3 cannot exec into a foreign container of a Kubernetes pod \
                     (opencontainers/runc#4390): kubectl exec and exec probes fail there. runc \
                     1.3 joins namespaces in two stages (opencontainers/runc#4492) and can; \
                     until then use HTTP or TCP probes, or emulation.mode = \"wrap\"",
                );
            }
        }
        None => r.line(
            Level::Fail,
            "runc",
            format!(
                "{} does not run; install runc or set runc.binary",
                config.runc.binary
            ),
        ),
    }
    match crate::runc::version_line("containerd") {
        Some(v) => r.line(Level::Ok, "containerd", v),
        None => r.line(
            Level::Warn,
            "containerd",
            "not in PATH; crossarch is a containerd runtime",
        ),
    }

    let init_path = init::locate(&config.init);
    if !config.init.enabled {
        r.line(
            Level::Warn,
            "init",
            "disabled (init.enabled = false): foreign containers may freeze on SIGTERM",
        );
    } else {
        match crate::host::inspect(&init_path) {
            qemu::Inspection::Static(_) => {
                r.line(Level::Ok, "init", init_path.display().to_string())
            }
            qemu::Inspection::Missing => r.line(
                Level::Fail,
                "init",
                format!(
                    "{} is missing; install crossarch-init beside the shim (scripts/install.sh)",
                    init_path.display()
                ),
            ),
            _ => r.line(
                Level::Fail,
                "init",
                format!(
                    "{} is not a static executable; reinstall crossarch",
                    init_path.display()
                ),
            ),
        }
    }

    // The facts Create decides by.
    let node = facts::node();
    match node.userns_unsupported() {
        None => r.line(
            Level::Ok,
            "emulation",
            format!(
                "mode {}: private binfmt_misc per container available",
                format!("{:?}", config.emulation.mode).to_lowercase()
            ),
        ),
        Some(why) => r.line(
            Level::Warn,
            "emulation",
            format!("wrap mode only ({why}): children of emulated programs fail"),
        ),
    }
    let host = node.host.map(|h| h.arch);
    let found = node.registrations(
        &config.emulation.qemu_dirs,
        config.emulation.allowed.as_deref(),
    );
    if found.is_empty() {
        r.line(Level::Warn, "qemu", format!(
            "no static qemu-user in {}: foreign containers will be refused; install qemu-user-static",
            config.emulation.qemu_dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
        ));
    } else {
        let names: Vec<String> = found.iter().map(|(a, _)| a.to_string()).collect();
        r.line(Level::Ok, "qemu", names.join(" "));
    }
    if let (Some(host), Some(allowed)) = (host, &config.emulation.allowed) {
        for a in allowed
            .iter()
            .filter(|a| !found.iter().any(|(f, _)| f == *a))
        {
            if host != *a && !node.runs_natively(*a) {
                r.line(
                    Level::Warn,
                    "qemu",
                    format!("{a} is allowed but has no qemu-{}-static", a.qemu_name()),
                );
            }
        }
    }

    let host_binfmt = Path::new("/proc/sys/fs/binfmt_misc/register").exists();
    r.line(
        Level::Ok,
        "host binfmt",
        if host_binfmt {
            "mounted on the host; crossarch neither reads nor needs it"
        } else {
            "not mounted on the host; crossarch does not need it"
        },
    );
    let cgroups = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "v2"
    } else if Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists() {
        "v1 (hybrid)"
    } else {
        "v1"
    };
    r.line(Level::Ok, "cgroups", cgroups);

    match r.worst {
        Level::Fail => {
            println!("not ready: fix the FAIL lines above");
            1
        }
        Level::Warn => {
            println!("ready, with warnings");
            0
        }
        Level::Ok => {
            println!("ready");
            0
        }
    }
}
