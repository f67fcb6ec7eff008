//! `containerd-shim-crossarch-v2 doctor`: whether this node is ready for crossarch, and what
//! to do where it is not. Exits non-zero when something would make containers fail.
//!
//! The probes are the node's facts ([`facts`], read by [`crate::host`]) and a few reads of
//! the kernel's and containerd's settings here; what each means is decided by the pure
//! `*_check` functions below, which the unit tests drive.

use std::{collections::BTreeMap, path::Path, path::PathBuf};

use crossarch_route::{arch::Arch, qemu};
use serde::Serialize;

use crate::{
    config::{Config, EmulationMode},
    containerd_config, facts, init,
};

const HELP: &str = "\
Usage: containerd-shim-crossarch-v2 doctor [--config PATH] [--containerd-config PATH] [--json]

Checks whether this node is ready for crossarch: its config, runc, containerd and its CRI
runtime handler, the init, user namespaces, a chroot, AppArmor and SELinux, and which
architectures have a static qemu. Each problem comes with its fix.

  --config PATH             the crossarch config to check (default: $CROSSARCH_CONFIG, else
                            /etc/crossarch/config.toml)
  --containerd-config PATH  containerd's config (default /etc/containerd/config.toml)
  --json                    one JSON document: version, ready, checks, facts
  --help, -h                this help

Exit codes: 0 ready (perhaps with warnings), 1 something would make containers fail,
2 usage error.
";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
enum Level {
    Ok,
    Warn,
    Fail,
}

/// One line of the report: `fix` says what to do when `level` is not ok.
#[derive(Debug, Serialize)]
struct Check {
    name: &'static str,
    level: Level,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

impl Check {
    fn new(level: Level, name: &'static str, message: impl Into<String>) -> Check {
        Check {
            name,
            level,
            message: message.into(),
            fix: None,
        }
    }

    fn fix(mut self, fix: impl Into<String>) -> Check {
        self.fix = Some(fix.into());
        self
    }

    fn text(&self) -> String {
        let tag = match self.level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        let fix = self
            .fix
            .as_deref()
            .map(|f| format!("; {f}"))
            .unwrap_or_default();
        format!("{tag}  {:<12} {}{fix}", self.name, self.message)
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Args {
    config: PathBuf,
    containerd_config: PathBuf,
    json: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    Run(Args),
    Help,
    Usage(String),
}

fn parse_args(args: &[String]) -> Parsed {
    let mut parsed = Args {
        config: Config::default_file(),
        containerd_config: containerd_config::DEFAULT_PATH.into(),
        json: false,
    };
    let usage = |what: String| {
        Parsed::Usage(format!(
            "containerd-shim-crossarch-v2 doctor: {what}; see containerd-shim-crossarch-v2 doctor --help"
        ))
    };
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        match flag {
            "--help" | "-h" | "help" => return Parsed::Help,
            "--json" if inline.is_none() => parsed.json = true,
            "--config" | "--containerd-config" => {
                let Some(value) = inline.or_else(|| rest.next().cloned()) else {
                    return usage(format!("{flag} needs a path"));
                };
                if flag == "--config" {
                    parsed.config = value.into();
                } else {
                    parsed.containerd_config = value.into();
                }
            }
            _ if arg.starts_with('-') => return usage(format!("unknown flag {arg}")),
            _ => return usage(format!("unexpected argument {arg:?}")),
        }
    }
    Parsed::Run(parsed)
}

pub fn main(args: &[String]) -> i32 {
    let args = match parse_args(args) {
        Parsed::Run(a) => a,
        Parsed::Help => {
            out(HELP);
            return 0;
        }
        Parsed::Usage(line) => {
            eprintln!("{line}");
            return 2;
        }
    };
    let (checks, facts) = run(&args);
    let worst = checks.iter().map(|c| c.level).max().unwrap_or(Level::Ok);
    let ready = worst != Level::Fail;
    if args.json {
        let doc = Document {
            version: env!("CARGO_PKG_VERSION"),
            ready,
            checks,
            facts,
        };
        match serde_json::to_string_pretty(&doc) {
            Ok(s) => out(&format!("{s}\n")),
            Err(e) => {
                eprintln!("containerd-shim-crossarch-v2 doctor: cannot write JSON: {e}");
                return 1;
            }
        }
    } else {
        let mut table = format!("crossarch {} doctor\n", env!("CARGO_PKG_VERSION"));
        for c in &checks {
            table.push_str(&c.text());
            table.push('\n');
        }
        table.push_str(match worst {
            Level::Fail => "not ready: fix the FAIL lines above\n",
            Level::Warn => "ready, with warnings\n",
            Level::Ok => "ready\n",
        });
        out(&table);
    }
    if ready {
        0
    } else {
        1
    }
}

/// Writes to stdout, quietly when its reader has gone (`doctor | head`), where `print!`
/// would panic.
pub fn out(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// `doctor --json`. The schema is described in the README ("doctor --json"); add to it,
/// do not rename.
#[derive(Serialize)]
struct Document {
    version: &'static str,
    ready: bool,
    checks: Vec<Check>,
    facts: Facts,
}

/// The node facts the shim decides by, as doctor found them.
#[derive(Serialize)]
struct Facts {
    /// `linux/amd64`, ..., or `None` on an architecture crossarch does not know.
    host: Option<String>,
    /// The architectures the kernel runs without qemu.
    native: Vec<String>,
    kernel: String,
    euid: u32,
    emulation_mode: String,
    private_binfmt: PrivateBinfmt,
    /// Whether the injected init can trace its processes here (trace mode).
    trace: Trace,
    /// The modes a foreign container can run in on this node, best first: `userns`,
    /// `trace`, `wrap`.
    modes: Vec<&'static str>,
    user_namespaces: UserNamespaces,
    /// Whether `/` differs from PID 1's root; `None` when either cannot be read.
    root_differs_from_pid1: Option<bool>,
    /// Whether the kernel refuses user namespaces because the shim runs chrooted.
    chrooted: bool,
    apparmor_enabled: Option<bool>,
    selinux_enforcing: Option<bool>,
    /// For each foreign architecture the policy allows: the static qemu found, or `None`.
    qemu: BTreeMap<String, Option<PathBuf>>,
    /// The package the hints name for a missing qemu.
    qemu_package: &'static str,
    /// The init injected into containers, or `None` with `init.enabled = false`.
    init: Option<PathBuf>,
    containerd_config: ContainerdConfig,
}

#[derive(Serialize)]
struct PrivateBinfmt {
    supported: bool,
    why_not: Option<String>,
}

#[derive(Serialize)]
struct Trace {
    supported: bool,
    why_not: Option<String>,
    /// What trace mode leaves unemulated here of a process that switches to another user.
    user_switch_why_not: Option<String>,
}

#[derive(Serialize)]
struct UserNamespaces {
    /// Whether the kernel let this process create one just now.
    allowed: bool,
    /// Why not, as the kernel said.
    error: Option<String>,
    max_user_namespaces: Option<u64>,
    apparmor_restrict_unprivileged_userns: Option<bool>,
}

#[derive(Serialize)]
struct ContainerdConfig {
    path: PathBuf,
    /// `None` when the file is absent or cannot be parsed.
    handlers: Option<Vec<containerd_config::Handler>>,
}

/// A file's (device, inode).
type FileId = (u64, u64);

/// The user-namespace settings and probes, read once, that several checks decide by.
struct Userns {
    mode: EmulationMode,
    max: Option<String>,
    apparmor_restrict: Option<String>,
    /// The errno of a failed `unshare(CLONE_NEWUSER)` in a child, or `Ok`.
    create: Result<(), i32>,
    /// `/`'s and `/proc/1/root`'s (device, inode).
    roots: (Option<FileId>, Option<FileId>),
    /// Whether a mount is at `/` ([`root_is_a_mount`]), `None` without /proc.
    root_mount: Option<bool>,
    /// Whether trace mode works here, so that auto falls back to it.
    trace_ok: bool,
}

fn run(args: &Args) -> (Vec<Check>, Facts) {
    let mut checks = Vec::new();
    let path = &args.config;
    let config = match Config::load(path) {
        Ok(c) => {
            let origin = if path.exists() {
                path.display().to_string()
            } else {
                format!("{} absent: defaults", path.display())
            };
            checks.push(Check::new(Level::Ok, "config", origin));
            c
        }
        Err(e) => {
            checks.push(Check::new(Level::Fail, "config", e.to_string()));
            Config::default()
        }
    };

    let euid = nix::unistd::geteuid();
    if !euid.is_root() {
        checks.push(
            Check::new(Level::Warn, "user", "not root")
                .fix("run doctor as root, as containerd runs the shim"),
        );
    }

    let userns_possible = matches!(
        config.emulation.mode,
        EmulationMode::Auto | EmulationMode::Userns
    );
    match crate::runc::version_line(&config.runc.binary) {
        Some(v) => {
            checks.push(Check::new(Level::Ok, "runc", &v));
            if userns_possible && crate::runc::joins_user_namespace_first(&v) {
                checks.push(
                    Check::new(
                        Level::Warn,
                        "pod exec",
                        "runc before 1.3 cannot exec into a foreign container of a Kubernetes \
                         pod (opencontainers/runc#4390): kubectl exec and exec probes fail \
                         there. runc 1.3 joins namespaces in two stages \
                         (opencontainers/runc#4492) and can",
                    )
                    .fix("until then use HTTP or TCP probes, or emulation.mode = \"wrap\""),
                );
            }
        }
        None => checks.push(
            Check::new(
                Level::Fail,
                "runc",
                format!("{} does not run", config.runc.binary),
            )
            .fix("install runc or set runc.binary"),
        ),
    }
    match crate::runc::version_line("containerd") {
        Some(v) => checks.push(Check::new(Level::Ok, "containerd", v)),
        None => checks.push(Check::new(
            Level::Warn,
            "containerd",
            "not in PATH; crossarch is a containerd runtime",
        )),
    }
    let cri = containerd_config::read(&args.containerd_config, crate::logger::RUNTIME);
    checks.push(handler_check(&args.containerd_config, cri.as_ref()));

    let init_path = init::locate(&config.init);
    if !config.init.enabled {
        checks.push(Check::new(
            Level::Warn,
            "init",
            "disabled (init.enabled = false): foreign containers may freeze on SIGTERM",
        ));
    } else {
        checks.push(match crate::host::inspect(&init_path) {
            qemu::Inspection::Static(_) => {
                Check::new(Level::Ok, "init", init_path.display().to_string())
            }
            qemu::Inspection::Missing => Check::new(
                Level::Fail,
                "init",
                format!("{} is missing", init_path.display()),
            )
            .fix("install crossarch-init beside the shim (scripts/install.sh)"),
            _ => Check::new(
                Level::Fail,
                "init",
                format!("{} is not a static executable", init_path.display()),
            )
            .fix("reinstall crossarch"),
        });
    }

    // The facts Create decides by.
    let node = facts::node();
    let mode_name = format!("{:?}", config.emulation.mode).to_lowercase();
    let userns_unsupported = node.userns_unsupported();
    let trace = try_trace(node, &config, &init_path);
    checks.push(match (&userns_unsupported, &trace) {
        (None, _) => Check::new(
            Level::Ok,
            "emulation",
            format!("mode {mode_name}: private binfmt_misc per container available"),
        ),
        (Some(why), Ok(())) => Check::new(
            Level::Ok,
            "emulation",
            format!(
                "no private binfmt_misc ({why}): auto picks trace mode, where the injected \
                 init runs every foreign exec through qemu"
            ),
        ),
        (Some(why), Err(trace_why)) => Check::new(
            Level::Warn,
            "emulation",
            format!(
                "wrap mode only ({why}; and trace mode cannot run: {trace_why}): children of \
                 emulated programs fail"
            ),
        ),
    });
    checks.push(trace_check(config.emulation.mode, &trace));
    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let user_switch = facts::trace_user_switch_limit(&kernel);
    let trace_in_use = match config.emulation.mode {
        EmulationMode::Trace => true,
        EmulationMode::Auto => userns_unsupported.is_some(),
        EmulationMode::Userns | EmulationMode::Wrap | EmulationMode::Off => false,
    };
    if trace.is_ok() {
        checks.push(user_switch_check(trace_in_use, &user_switch));
    }

    let userns = Userns {
        mode: config.emulation.mode,
        max: crate::host::setting("/proc/sys/user/max_user_namespaces"),
        apparmor_restrict: crate::host::setting(
            "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
        ),
        create: crate::host::try_user_namespace(),
        roots: (
            crate::host::file_id("/"),
            crate::host::file_id("/proc/1/root"),
        ),
        root_mount: std::fs::read_to_string("/proc/self/mountinfo")
            .ok()
            .map(|m| root_is_a_mount(&m)),
        trace_ok: trace.is_ok(),
    };
    checks.push(userns_check(&userns));
    checks.push(chroot_check(&userns));
    let apparmor = crate::host::setting("/sys/module/apparmor/parameters/enabled");
    let selinux = crate::host::setting("/sys/fs/selinux/enforce");
    checks.extend(lsm_checks(apparmor.as_deref(), selinux.as_deref()));
    let binfmt_tried = match (&userns_unsupported, userns.create) {
        (None, Ok(())) => Some(
            std::env::current_exe()
                .map_err(|e| {
                    (
                        crate::host::BinfmtStep::Register,
                        e.raw_os_error().unwrap_or(0),
                    )
                })
                .and_then(|exe| crate::host::try_private_binfmt(&exe)),
        ),
        _ => None,
    };
    checks.push(binfmt_check(
        config.emulation.mode,
        binfmt_tried,
        trace.is_ok(),
    ));

    let host = node.host.map(|h| h.arch);
    let dirs = &config.emulation.qemu_dirs;
    let allowed = config.emulation.allowed.as_deref();
    let found = node.registrations(dirs, allowed);
    let package = crate::host::qemu_package();
    if found.is_empty() {
        checks.push(
            Check::new(
                Level::Warn,
                "qemu",
                format!(
                    "no static qemu-user in {}: foreign containers will be refused",
                    dirs.iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .fix(format!("install {package}")),
        );
    } else {
        let names: Vec<String> = found.iter().map(|(a, _)| a.to_string()).collect();
        checks.push(Check::new(Level::Ok, "qemu", names.join(" ")));
    }
    if let (Some(host), Some(allowed)) = (host, &config.emulation.allowed) {
        for a in allowed
            .iter()
            .filter(|a| !found.iter().any(|(f, _)| f == *a))
        {
            if host != *a && !node.runs_natively(*a) {
                checks.push(
                    Check::new(
                        Level::Warn,
                        "qemu",
                        format!("{a} is allowed but has no qemu-{}-static", a.qemu_name()),
                    )
                    .fix(format!("install {package}")),
                );
            }
        }
    }

    let host_binfmt = Path::new("/proc/sys/fs/binfmt_misc/register").exists();
    checks.push(Check::new(
        Level::Ok,
        "host binfmt",
        if host_binfmt {
            "mounted on the host; crossarch neither reads nor needs it"
        } else {
            "not mounted on the host; crossarch does not need it"
        },
    ));
    let cgroups = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "v2"
    } else if Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists() {
        "v1 (hybrid)"
    } else {
        "v1"
    };
    checks.push(Check::new(Level::Ok, "cgroups", cgroups));

    let qemu_table = Arch::all()
        .filter(|a| allowed.is_none_or(|allowed| allowed.contains(a)))
        .filter(|a| host.is_some() && !node.runs_natively(*a))
        .map(|a| (a.to_string(), node.qemu(dirs, a).ok().map(|q| q.path)))
        .collect();
    let facts = Facts {
        host: host.map(|h| h.to_string()),
        native: Arch::all()
            .filter(|a| node.runs_natively(*a))
            .map(|a| a.to_string())
            .collect(),
        kernel,
        euid: euid.as_raw(),
        emulation_mode: mode_name,
        modes: [
            ("userns", userns_unsupported.is_none()),
            ("trace", trace.is_ok()),
            ("wrap", true),
        ]
        .into_iter()
        .filter_map(|(m, ok)| ok.then_some(m))
        .collect(),
        private_binfmt: PrivateBinfmt {
            supported: userns_unsupported.is_none(),
            why_not: userns_unsupported,
        },
        trace: Trace {
            supported: trace.is_ok(),
            why_not: trace.err(),
            user_switch_why_not: user_switch.map(|(why, _)| why),
        },
        user_namespaces: UserNamespaces {
            allowed: userns.create.is_ok(),
            error: userns
                .create
                .err()
                .map(|e| nix::errno::Errno::from_raw(e).desc().to_string()),
            max_user_namespaces: userns.max.as_deref().and_then(|m| m.parse().ok()),
            apparmor_restrict_unprivileged_userns: userns
                .apparmor_restrict
                .as_deref()
                .map(|v| v == "1"),
        },
        chrooted: chrooted(&userns),
        root_differs_from_pid1: match userns.roots {
            (Some(a), Some(b)) => Some(a != b),
            _ => None,
        },
        apparmor_enabled: apparmor.map(|v| v == "Y"),
        selinux_enforcing: selinux.map(|v| v == "1"),
        qemu: qemu_table,
        qemu_package: package,
        init: config.init.enabled.then_some(init_path),
        containerd_config: ContainerdConfig {
            path: args.containerd_config.clone(),
            handlers: cri.and_then(Result::ok).map(|f| f.handlers),
        },
    };
    (checks, facts)
}

const INSTALL_CONFIG: &str = "containerd-shim-crossarch-v2 install-config";

/// Whether containerd's config at `path` (`None`: absent; else parsed or why not) has a CRI
/// runtime handler for crossarch. Only Kubernetes needs one, so its absence is a warning.
fn handler_check(path: &Path, found: Option<&Result<containerd_config::Found, String>>) -> Check {
    let without = "Kubernetes (a RuntimeClass) cannot use crossarch; ctr and nerdctl \
                   --runtime io.containerd.crossarch.v2 work without one";
    let p = path.display();
    match found {
        None => Check::new(
            Level::Warn,
            "cri handler",
            format!("no {p}, so containerd has no crossarch runtime handler: {without}"),
        )
        .fix(INSTALL_CONFIG),
        Some(Err(e)) => Check::new(Level::Warn, "cri handler", format!("cannot read {p} ({e})"))
            .fix(format!("fix {p}, then {INSTALL_CONFIG}")),
        Some(Ok(found)) if found.handlers.is_empty() => {
            let imports = if found.imported.is_empty() {
                String::new()
            } else {
                format!(" or the files it imports ({})", found.imported.join(", "))
            };
            Check::new(
                Level::Warn,
                "cri handler",
                format!(
                    "no runtime in {p}{imports} has runtime_type = \"{}\": {without}",
                    crate::logger::RUNTIME
                ),
            )
            .fix(INSTALL_CONFIG)
        }
        Some(Ok(found)) => {
            let names = found
                .handlers
                .iter()
                .map(|h| format!("{} (config version {})", h.name, h.layout))
                .collect::<Vec<_>>()
                .join(", ");
            let with_options: Vec<&str> = found
                .handlers
                .iter()
                .filter(|h| h.options && h.layout >= 3)
                .map(|h| h.name.as_str())
                .collect();
            if with_options.is_empty() {
                return Check::new(Level::Ok, "cri handler", names);
            }
            Check::new(
                Level::Warn,
                "cri handler",
                format!(
                    "{names}; {} has an options table, so containerd 2.x cannot start the \
                     containers of pods with hostUsers: false through it (CRI passes the \
                     table as runtimeoptions.v1.Options and fails with \"can't unmarshal type \
                     runtimeoptions.v1.Options\")",
                    with_options.join(", ")
                ),
            )
            .fix(format!(
                "remove the options table of {} from {p} and put its settings in \
                 /etc/crossarch/config.toml",
                with_options.join(", ")
            ))
        }
    }
}

/// The level of a problem that keeps containers from getting a user namespace: a failure
/// when `mode` needs one and does not fall back by itself (`auto` falls back to trace mode
/// where that works, and to wrap mode for what `facts` knows: the kernel, the shim's euid,
/// `max_user_namespaces`).
fn without_userns(mode: EmulationMode, auto_falls_back: bool) -> Level {
    match mode {
        EmulationMode::Userns => Level::Fail,
        EmulationMode::Auto if auto_falls_back => Level::Warn,
        EmulationMode::Auto => Level::Fail,
        EmulationMode::Trace | EmulationMode::Wrap | EmulationMode::Off => Level::Ok,
    }
}

fn chrooted(u: &Userns) -> bool {
    u.create == Err(libc::EPERM)
        && (matches!(u.roots, (Some(a), Some(b)) if a != b) || u.root_mount == Some(false))
}

/// Whether runc can give a foreign container its user namespace here.
fn userns_check(u: &Userns) -> Check {
    let max: Option<u64> = u.max.as_deref().and_then(|m| m.parse().ok());
    if !matches!(u.mode, EmulationMode::Auto | EmulationMode::Userns) {
        return Check::new(
            Level::Ok,
            "userns",
            format!("not needed in mode {:?}", u.mode).to_lowercase(),
        );
    }
    if max == Some(0) {
        return Check::new(
            without_userns(u.mode, true),
            "userns",
            "user.max_user_namespaces = 0: user namespaces are disabled (Talos sets this), \
             so no container gets a private binfmt_misc and auto picks wrap mode",
        )
        .fix(
            "set user.max_user_namespaces above 0 (sysctl -w user.max_user_namespaces=15000, \
             and in /etc/sysctl.d/; on Talos in machine.sysctls), or emulation.mode = \"wrap\"",
        );
    }
    match u.create {
        Ok(()) => {
            let mut msg = match max {
                Some(n) => format!("can be created (user.max_user_namespaces = {n})"),
                None => "can be created".to_string(),
            };
            if u.apparmor_restrict.as_deref() == Some("1") {
                msg.push_str(
                    "; kernel.apparmor_restrict_unprivileged_userns = 1 restricts the user \
                     namespaces that unconfined processes without CAP_SYS_ADMIN create: the \
                     shim and runc run as root, with it",
                );
            }
            Check::new(Level::Ok, "userns", msg)
        }
        Err(_) if chrooted(u) => Check::new(
            without_userns(u.mode, u.trace_ok),
            "userns",
            "the kernel refused to create one (EPERM): see chroot",
        ),
        Err(errno) if errno == libc::ENOSPC => Check::new(
            without_userns(u.mode, u.trace_ok),
            "userns",
            "the kernel refused to create one (ENOSPC): user.max_user_namespaces is reached",
        )
        .fix("raise user.max_user_namespaces"),
        Err(errno) => Check::new(
            without_userns(u.mode, u.trace_ok),
            "userns",
            format!(
                "the kernel refused to create one ({}): runc fails foreign containers in \
                 userns mode",
                nix::errno::Errno::from_raw(errno).desc()
            ),
        )
        .fix(
            "look for what denies unshare(CLONE_NEWUSER) to containerd: a seccomp filter, \
             an AppArmor or SELinux denial in the kernel's audit log; or emulation.mode = \
             \"wrap\"",
        ),
    }
}

/// Whether the shim runs chrooted: the kernel refuses CLONE_NEWUSER to a process whose root
/// is not its mount namespace's (`current_chrooted()` in `create_user_ns`). `/` differing
/// from PID 1's root alone is not that (containerd may run in a mount namespace of its own
/// after pivot_root), so the kernel's answer decides, and the roots only say why.
fn chroot_check(u: &Userns) -> Check {
    let needs = matches!(u.mode, EmulationMode::Auto | EmulationMode::Userns);
    if u.create.is_ok() {
        return Check::new(
            Level::Ok,
            "chroot",
            "no (the kernel lets the shim create user namespaces)",
        );
    }
    if chrooted(u) {
        let evidence = if matches!(u.roots, (Some(a), Some(b)) if a != b) {
            "/ is not PID 1's root"
        } else {
            "/ is no mount point"
        };
        let msg = format!(
            "chrooted ({evidence}): the kernel refuses user namespaces in a chroot \
             (CLONE_NEWUSER fails with EPERM), so runc fails foreign containers with a bare \
             \"EOF\""
        );
        let check = Check::new(without_userns(u.mode, u.trace_ok), "chroot", msg);
        return if needs {
            check.fix(
                "run containerd under pivot_root (in a mount namespace of its own), not \
                 chroot; or emulation.mode = \"wrap\"",
            )
        } else {
            let mode = format!("{:?}", u.mode).to_lowercase();
            Check {
                message: format!("{}; mode {mode} needs none", check.message),
                ..check
            }
        };
    }
    match u.roots {
        (Some(a), Some(b)) if a == b => Check::new(Level::Ok, "chroot", "no (/ is PID 1's root)"),
        _ => Check::new(
            if needs { Level::Warn } else { Level::Ok },
            "chroot",
            "cannot tell: user namespaces are refused, and / cannot be compared with PID 1's \
             root (/proc/1/root is unreadable)",
        ),
    }
}

/// Whether trace mode works here, tried for real: Yama's ptrace_scope, then the injected init
/// in trace mode, which attaches to a child of its own, puts it under its exec filter and
/// sees it exec (the init itself, `--version`). It runs in doctor's security context, which
/// may differ from containerd's, and without the container's seccomp profile, which Create
/// checks per container.
fn try_trace(node: &facts::Node, config: &Config, init: &Path) -> Result<(), String> {
    if let Some(why) = node.trace_unsupported() {
        return Err(why);
    }
    if !config.init.enabled {
        return Err("the injected init, which traces, is off (init.enabled = false)".into());
    }
    let out = std::process::Command::new(init)
        .args(["--trace", "/nonexistent", "--"])
        .arg(init)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("{} does not run: {e}", init.display()))?;
    if out.status.success() && out.stdout.starts_with(b"crossarch-init ") {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&out.stderr);
    Err(format!(
        "the injected init could not trace a process ({}): {}",
        out.status,
        said.trim()
    ))
}

/// What [`try_trace`] found, at the level the configured mode gives it.
fn trace_check(mode: EmulationMode, tried: &Result<(), String>) -> Check {
    match (mode, tried) {
        (EmulationMode::Wrap | EmulationMode::Off, _) => Check::new(
            Level::Ok,
            "trace",
            format!("not needed in mode {mode:?}").to_lowercase(),
        ),
        (_, Ok(())) => Check::new(
            Level::Ok,
            "trace",
            "the injected init can trace its processes (ptrace and a seccomp filter on exec)",
        ),
        (mode, Err(why)) => Check::new(
            if mode == EmulationMode::Trace {
                Level::Fail
            } else {
                Level::Warn
            },
            "trace",
            format!("trace mode cannot run: {why}"),
        )
        .fix(
            "set kernel.yama.ptrace_scope to 0 or 1, and let containerd's shims use ptrace and \
             seccomp (an AppArmor or SELinux denial, a seccomp filter); or emulation.mode = \
             \"userns\" or \"wrap\"",
        ),
    }
}

/// Whether trace mode emulates a process that switches to another user (`limit`, from
/// [`facts::trace_user_switch_limit`]); a warning only where trace mode is the one in use.
fn user_switch_check(in_use: bool, limit: &Option<(String, &'static str)>) -> Check {
    const NAME: &str = "user switch";
    match limit {
        None => Check::new(
            Level::Ok,
            NAME,
            "trace mode emulates the processes of a user that a process switches to (su, gosu, \
             setpriv) too",
        ),
        Some((why, _)) if !in_use => Check::new(
            Level::Ok,
            NAME,
            format!("{why}; it does not concern the mode in use here"),
        ),
        Some((why, fix)) => Check::new(Level::Warn, NAME, why.clone()).fix(*fix),
    }
}

/// Whether `/proc/self/mountinfo` (its text) lists a mount at `/`. In a chroot into a
/// directory that is no mount point, none is: the kernel leaves out the mounts whose mount
/// point is outside the process's root (`show_mountinfo`).
pub fn root_is_a_mount(mountinfo: &str) -> bool {
    mountinfo.lines().any(|l| l.split(' ').nth(4) == Some("/"))
}

/// Whether a foreign container can get its private binfmt_misc here, from
/// [`crate::host::try_private_binfmt`] (`None`: not tried, since the kernel or user
/// namespaces already rule userns mode out, and other checks say why). It runs in doctor's
/// own security context, which may differ from containerd's (an AppArmor profile for
/// containerd, an SELinux domain).
fn binfmt_check(
    mode: EmulationMode,
    tried: Option<Result<(), (crate::host::BinfmtStep, i32)>>,
    trace_ok: bool,
) -> Check {
    use crate::host::BinfmtStep as Step;
    let Some(result) = tried else {
        return Check::new(
            Level::Ok,
            "binfmt_misc",
            "not tried: userns mode is not available here",
        );
    };
    let (step, errno) = match result {
        Ok(()) => {
            return Check::new(
                Level::Ok,
                "binfmt_misc",
                "a private instance was mounted in a new user namespace and took a \
                 registration (F flag)",
            )
        }
        Err(e) => e,
    };
    let err = nix::errno::Errno::from_raw(errno).desc();
    let what = match step {
        Step::UserNamespace => format!("making a user and mount namespace was refused ({err})"),
        Step::IdMaps => format!("writing the new user namespace's id maps was refused ({err})"),
        Step::NotPrivate => "the probe was still in the host's user namespace, so it mounted \
                             nothing"
            .to_string(),
        Step::Mount => format!("mounting binfmt_misc in a user namespace was refused ({err})"),
        Step::Register => format!("writing binfmt_misc's register was refused ({err})"),
        Step::Readback => "a registration was accepted but is not there".to_string(),
    };
    let lsm = matches!(errno, libc::EACCES | libc::EPERM);
    Check::new(
        without_userns(mode, trace_ok),
        "binfmt_misc",
        format!("{what}: foreign containers in userns mode would fail"),
    )
    .fix(if lsm {
        "look for apparmor=\"DENIED\" (journalctl -k) or AVC denials (ausearch -m avc) that \
         name binfmt_misc, and allow the mount and the write to register for containerd's \
         shims; or set emulation.mode = \"wrap\""
    } else {
        "set emulation.mode = \"wrap\" in the crossarch config"
    })
}

/// What AppArmor and SELinux could deny: the binfmt_misc mount and the `register` writes the
/// shim makes for a foreign container. Only their state is known here, not their policy.
fn lsm_checks(apparmor_enabled: Option<&str>, selinux_enforce: Option<&str>) -> [Check; 2] {
    let apparmor = match apparmor_enabled {
        Some("Y") => Check::new(
            Level::Ok,
            "apparmor",
            "enabled: if a foreign container fails to mount binfmt_misc or to register qemu, \
             look for apparmor=\"DENIED\" in the kernel log (journalctl -k)",
        ),
        _ => Check::new(Level::Ok, "apparmor", "not enabled"),
    };
    let selinux = match selinux_enforce {
        Some("1") => Check::new(
            Level::Warn,
            "selinux",
            "enforcing: if a foreign container fails to mount binfmt_misc or to register \
             qemu, look for AVC denials (ausearch -m avc -ts recent)",
        ),
        Some(_) => Check::new(Level::Ok, "selinux", "permissive"),
        None => Check::new(Level::Ok, "selinux", "not enabled"),
    };
    [apparmor, selinux]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn userns(mode: EmulationMode, max: &str, create: Result<(), i32>) -> Userns {
        Userns {
            mode,
            max: Some(max.into()),
            apparmor_restrict: None,
            create,
            roots: (Some((1, 2)), Some((1, 2))),
            root_mount: Some(true),
            trace_ok: false,
        }
    }

    #[test]
    fn doctor_flags() {
        let args = |v: &[&str]| parse_args(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let Parsed::Run(a) = args(&["--json", "--containerd-config=/x.toml", "--config", "/c"])
        else {
            panic!()
        };
        assert!(a.json);
        assert_eq!(a.containerd_config, PathBuf::from("/x.toml"));
        assert_eq!(a.config, PathBuf::from("/c"));
        assert_eq!(args(&["-h"]), Parsed::Help);
        for (bad, what) in [
            (&["--jsn"][..], "unknown flag --jsn"),
            (&["--config"][..], "--config needs a path"),
            (&["now"][..], "unexpected argument \"now\""),
        ] {
            let Parsed::Usage(line) = args(bad) else {
                panic!("{bad:?} accepted")
            };
            assert!(line.contains(what) && !line.contains('\n'), "{line}");
        }
    }

    #[test]
    fn a_missing_cri_handler_is_a_warning_with_the_fix() {
        let path = Path::new("/etc/containerd/config.toml");
        let absent = handler_check(path, None);
        assert_eq!(absent.level, Level::Warn);
        assert_eq!(absent.fix.as_deref(), Some(INSTALL_CONFIG));
        let none = handler_check(path, Some(&Ok(containerd_config::Found::default())));
        assert_eq!(none.level, Level::Warn);
        assert!(none.message.contains("ctr and nerdctl"), "{}", none.message);
        let found = containerd_config::handlers(
            "[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.crossarch]\n\
             runtime_type = \"io.containerd.crossarch.v2\"\n",
            "io.containerd.crossarch.v2",
        );
        let ok = handler_check(path, Some(&found));
        assert_eq!(ok.level, Level::Ok);
        assert_eq!(ok.message, "crossarch (config version 3)");
    }

    #[test]
    fn the_binfmt_misc_probe_names_the_refused_step_and_the_fix() {
        use crate::host::BinfmtStep;
        assert_eq!(
            binfmt_check(EmulationMode::Auto, Some(Ok(())), false).level,
            Level::Ok
        );
        assert_eq!(
            binfmt_check(EmulationMode::Auto, None, false).level,
            Level::Ok
        );
        let denied = binfmt_check(
            EmulationMode::Auto,
            Some(Err((BinfmtStep::Mount, libc::EACCES))),
            false,
        );
        assert_eq!(denied.level, Level::Fail);
        assert!(
            denied.message.contains("mounting binfmt_misc"),
            "{}",
            denied.message
        );
        assert!(denied.fix.unwrap().contains("apparmor=\"DENIED\""));
        let wrap = binfmt_check(
            EmulationMode::Wrap,
            Some(Err((BinfmtStep::Register, libc::EINVAL))),
            false,
        );
        assert_eq!(wrap.level, Level::Ok, "wrap mode needs no binfmt_misc");
        assert!(wrap.fix.unwrap().contains("wrap"));
    }

    /// The real probe on this machine, which allows it: a private instance, and the host's
    /// binfmt_misc unchanged by it.
    #[test]
    fn the_binfmt_misc_probe_succeeds_here_and_leaves_the_host_alone() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED: not root");
            return;
        }
        // The host's mount table, not the directory: listing an autofs there would mount it.
        let binfmt_mounts = || {
            std::fs::read_to_string("/proc/self/mountinfo")
                .unwrap()
                .lines()
                .filter(|l| l.contains("binfmt_misc"))
                .map(String::from)
                .collect::<Vec<_>>()
        };
        let before = binfmt_mounts();
        let exe = std::env::current_exe().unwrap();
        assert_eq!(crate::host::try_private_binfmt(&exe), Ok(()));
        assert_eq!(binfmt_mounts(), before, "nothing was mounted on the host");
        // An interpreter that cannot be opened is refused at registration: the probe can fail.
        assert_eq!(
            crate::host::try_private_binfmt(Path::new("/nonexistent/qemu")),
            Err((crate::host::BinfmtStep::Register, libc::ENOENT))
        );
    }

    #[test]
    fn a_v3_handler_with_options_warns_that_user_namespaced_pods_cannot_start() {
        let path = Path::new("/etc/containerd/config.toml");
        let with = |version: &str, plugin: &str| {
            let text = format!(
                "version = {version}\n[plugins.\"{plugin}\".containerd.runtimes.crossarch]\n\
                 runtime_type = \"io.containerd.crossarch.v2\"\n\
                 [plugins.\"{plugin}\".containerd.runtimes.crossarch.options]\n\
                 ConfigPath = \"/etc/crossarch/k8s.toml\"\n"
            );
            handler_check(
                path,
                Some(&containerd_config::handlers(
                    &text,
                    "io.containerd.crossarch.v2",
                )),
            )
        };
        let v3 = with("3", containerd_config::CRI_PLUGIN_V3);
        assert_eq!(v3.level, Level::Warn);
        assert!(v3.message.contains("hostUsers: false"), "{}", v3.message);
        assert!(v3
            .fix
            .unwrap()
            .contains("remove the options table of crossarch"));
        // containerd 1.6 reads version 2 and has no user-namespaced pods.
        assert_eq!(with("2", containerd_config::CRI_PLUGIN_V2).level, Level::Ok);
    }

    #[test]
    fn user_namespaces_off_warns_in_auto_and_fails_in_userns() {
        let off = userns(EmulationMode::Auto, "0\n".trim(), Err(libc::ENOSPC));
        let c = userns_check(&off);
        assert_eq!(c.level, Level::Warn);
        assert!(c.message.contains("max_user_namespaces = 0"));
        assert!(c.fix.unwrap().contains("sysctl"));
        let strict = userns(EmulationMode::Userns, "0", Err(libc::ENOSPC));
        assert_eq!(userns_check(&strict).level, Level::Fail);
        let wrap = userns(EmulationMode::Wrap, "0", Err(libc::ENOSPC));
        assert_eq!(userns_check(&wrap).level, Level::Ok);

        let mut ubuntu = userns(EmulationMode::Auto, "63229", Ok(()));
        ubuntu.apparmor_restrict = Some("1".into());
        let c = userns_check(&ubuntu);
        assert_eq!(c.level, Level::Ok);
        assert!(c.message.contains("without CAP_SYS_ADMIN"), "{}", c.message);

        let denied = userns(EmulationMode::Auto, "63229", Err(libc::EACCES));
        let c = userns_check(&denied);
        assert_eq!(c.level, Level::Fail, "auto does not fall back for this");
        assert!(c.message.contains("Permission denied"), "{}", c.message);
    }

    #[test]
    fn a_chroot_is_told_from_a_mount_namespace_of_its_own() {
        let same = userns(EmulationMode::Auto, "100", Ok(()));
        assert_eq!(chroot_check(&same).level, Level::Ok);

        let mut chroot = userns(EmulationMode::Auto, "100", Err(libc::EPERM));
        chroot.roots = (Some((1, 2)), Some((3, 4)));
        let c = chroot_check(&chroot);
        assert_eq!(c.level, Level::Fail);
        assert!(c.message.contains("EOF") && c.fix.unwrap().contains("pivot_root"));
        assert_eq!(userns_check(&chroot).level, Level::Fail);
        assert!(userns_check(&chroot).message.contains("see chroot"));
        chroot.mode = EmulationMode::Wrap;
        assert_eq!(chroot_check(&chroot).level, Level::Ok);

        let mut pivoted = userns(EmulationMode::Auto, "100", Ok(()));
        pivoted.roots = (Some((1, 2)), Some((3, 4)));
        assert_eq!(chroot_check(&pivoted).level, Level::Ok);

        // PID 1's root unreadable (no CAP_SYS_PTRACE over it): a chroot into a plain
        // directory shows no mount at /.
        let mut hidden = userns(EmulationMode::Auto, "100", Err(libc::EPERM));
        hidden.roots = (Some((1, 2)), None);
        assert!(chroot_check(&hidden).message.contains("cannot tell"));
        hidden.root_mount = Some(false);
        assert_eq!(chroot_check(&hidden).level, Level::Fail);
        assert!(chroot_check(&hidden).message.contains("no mount point"));

        let pivot = "36 25 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
                     37 36 0:5 / /proc rw - proc proc rw\n";
        let chroot = "37 36 0:5 / /proc rw - proc proc rw\n";
        assert!(root_is_a_mount(pivot));
        assert!(!root_is_a_mount(chroot));
    }

    #[test]
    fn lsm_states() {
        let [a, s] = lsm_checks(Some("Y"), Some("1"));
        assert_eq!((a.level, s.level), (Level::Ok, Level::Warn));
        assert!(a.message.contains("DENIED") && s.message.contains("avc"));
        let [a, s] = lsm_checks(None, None);
        assert_eq!(
            (a.message.as_str(), s.message.as_str()),
            ("not enabled", "not enabled")
        );
    }

    #[test]
    fn trace_mode_levels_follow_the_configured_mode() {
        let refused = Err("kernel.yama.ptrace_scope is 3".to_string());
        assert_eq!(trace_check(EmulationMode::Auto, &Ok(())).level, Level::Ok);
        assert_eq!(
            trace_check(EmulationMode::Auto, &refused).level,
            Level::Warn
        );
        let forced = trace_check(EmulationMode::Trace, &refused);
        assert_eq!(forced.level, Level::Fail);
        assert!(
            forced.message.contains("ptrace_scope is 3"),
            "{}",
            forced.message
        );
        assert!(forced.fix.unwrap().contains("ptrace_scope to 0 or 1"));
        assert_eq!(trace_check(EmulationMode::Wrap, &refused).level, Level::Ok);
        // Where trace mode works, a refused user namespace only makes auto fall back.
        let mut u = userns(EmulationMode::Auto, "100", Err(libc::EACCES));
        assert_eq!(userns_check(&u).level, Level::Fail);
        u.trace_ok = true;
        assert_eq!(userns_check(&u).level, Level::Warn);
    }

    #[test]
    fn a_limited_user_switch_warns_only_where_trace_mode_is_used() {
        let limit = facts::trace_user_switch_limit("5.4.0-216-generic");
        let used = user_switch_check(true, &limit);
        assert_eq!(used.level, Level::Warn);
        assert!(used.message.contains("Linux 5.4.0"), "{}", used.message);
        assert_eq!(
            used.fix.as_deref(),
            Some("run the node on Linux 5.9 or later")
        );
        let unused = user_switch_check(false, &limit);
        assert_eq!((unused.level, unused.fix), (Level::Ok, None));
        assert_eq!(user_switch_check(true, &None).level, Level::Ok);
    }

    #[test]
    fn json_levels_are_lowercase_and_fix_is_optional() {
        let c = serde_json::to_value(Check::new(Level::Warn, "qemu", "m")).unwrap();
        assert_eq!(
            c,
            serde_json::json!({"name": "qemu", "level": "warn", "message": "m"})
        );
    }
}
