//! Configuration: runtime options sent with each Create, the config file, built-in defaults.
//!
//! CRI sends `runtimeoptions.v1.Options` (the raw TOML of the handler's `options` table, or a
//! path) to every runtime type except `io.containerd.runc.v2`; `ctr` and nerdctl may send runc's
//! own `Options`, or nothing. With nothing, the config file applies, then the defaults.

use std::path::{Path, PathBuf};

use containerd_shim::protos::{
    protobuf::{self, well_known_types::any::Any, Message},
    shim::oci::Options as RuncOptions,
};
use crossarch_protos::{
    runctypes::CreateOptions, runtimeoptions::Options as RuntimeOptions, CREATE_OPTIONS_TYPE_URL,
    RUNTIME_OPTIONS_TYPE_URL,
};
use serde::Deserialize;

use crate::error::{Error, Result};

pub const DEFAULT_CONFIG_PATH: &str = "/etc/crossarch/config.toml";
const RUNC_OPTIONS_TYPE_URLS: &[&str] = &[
    "containerd.runc.v1.Options",
    "io.containerd.runc.v1.Options",
];

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub runc: RuncConfig,
    pub capabilities: crate::caps::Policy,
    pub init: InitConfig,
    pub emulation: EmulationConfig,
}

/// The injected init (PID 1 of every container with its own PID namespace).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct InitConfig {
    pub enabled: bool,
    /// The static init binary; empty means `crossarch-init` beside the shim binary.
    pub path: PathBuf,
    /// Forward signals to the payload's whole process group instead of the payload only.
    pub pgroup: bool,
}

impl Default for InitConfig {
    fn default() -> Self {
        InitConfig {
            enabled: true,
            path: PathBuf::new(),
            pgroup: false,
        }
    }
}

/// How foreign-architecture binaries run.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EmulationMode {
    /// The best mode the node and container allow.
    #[default]
    Auto,
    /// A private binfmt_misc in the container's user namespace: every process is emulated.
    Userns,
    /// The injected init traces the process tree (ptrace, a seccomp filter on exec) and
    /// runs every foreign exec through qemu: every process emulated, on any kernel.
    Trace,
    /// qemu in front of the process itself only; its children are not emulated.
    Wrap,
    /// Foreign binaries are refused.
    Off,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EmulationConfig {
    pub mode: EmulationMode,
    /// Foreign architectures that may run (OCI names: arm64, s390x, ...); absent means all.
    pub allowed: Option<Vec<crossarch_route::arch::Arch>>,
    /// Where qemu-user-static is looked for on the host.
    pub qemu_dirs: Vec<PathBuf>,
}

impl Default for EmulationConfig {
    fn default() -> Self {
        EmulationConfig {
            mode: EmulationMode::Auto,
            allowed: None,
            qemu_dirs: crossarch_route::qemu::default_dirs(),
        }
    }
}

pub use crossarch_route::plan::IN_CONTAINER_DIR;

impl EmulationConfig {
    pub fn policy(&self) -> crossarch_route::plan::Policy {
        crossarch_route::plan::Policy {
            enabled: self.mode != EmulationMode::Off,
            allowed: self.allowed.clone(),
            qemu_dirs: self.qemu_dirs.clone(),
            qemu_dir_in_container: IN_CONTAINER_DIR.into(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RuncConfig {
    /// runc binary, a name looked up in PATH or an absolute path.
    pub binary: String,
    /// Base of runc's state; the containerd namespace is appended.
    pub root: PathBuf,
    pub systemd_cgroup: bool,
}

impl Default for RuncConfig {
    fn default() -> Self {
        RuncConfig {
            binary: "runc".into(),
            root: "/run/containerd/runc".into(),
            systemd_cgroup: false,
        }
    }
}

impl Config {
    pub fn parse(toml_text: &str, origin: &str) -> Result<Config> {
        toml::from_str(toml_text).map_err(|e| {
            Error::invalid_argument(format!(
                "crossarch config {origin} is invalid: {}; fix it or remove it to use the defaults",
                e.message()
            ))
        })
    }

    pub fn load(path: &Path) -> Result<Config> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(Error::invalid_argument(format!(
                "crossarch config {} cannot be read",
                path.display()
            ))
            .with_source(e)),
        }
    }

    /// The config file when no runtime options name one.
    pub fn default_file() -> PathBuf {
        std::env::var_os("CROSSARCH_CONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|| DEFAULT_CONFIG_PATH.into())
    }
}

/// What the runtime options of one Create resolve to.
#[derive(Debug, Default)]
pub struct Resolved {
    pub config: Config,
    /// runc's own options, kept for the fields crossarch passes on (criu path, io uid, ...).
    pub runc_options: Option<RuncOptions>,
}

fn strip_type_prefix(url: &str) -> &str {
    url.rsplit_once('/').map_or(url, |(_, name)| name)
}

fn undecodable(name: &str, e: protobuf::Error) -> Error {
    Error::invalid_argument(format!("runtime options {name} cannot be decoded")).with_source(e)
}

/// Decodes the `options` of a CreateTaskRequest. `base` is the config used when the options do
/// not carry one (the config file or defaults).
pub fn resolve(options: Option<&Any>, base: impl FnOnce() -> Result<Config>) -> Result<Resolved> {
    let Some(any) = options.filter(|a| !a.type_url.is_empty()) else {
        return Ok(Resolved {
            config: base()?,
            runc_options: None,
        });
    };
    let name = strip_type_prefix(&any.type_url);
    if name == RUNTIME_OPTIONS_TYPE_URL {
        let opts =
            RuntimeOptions::parse_from_bytes(&any.value).map_err(|e| undecodable(name, e))?;
        let config = if !opts.config_body.is_empty() {
            Config::parse(&opts.config_body, "from the runtime handler's options")?
        } else if !opts.config_path.is_empty() {
            Config::load(Path::new(&opts.config_path))?
        } else {
            base()?
        };
        return Ok(Resolved {
            config,
            runc_options: None,
        });
    }
    if RUNC_OPTIONS_TYPE_URLS.contains(&name) {
        let opts = RuncOptions::parse_from_bytes(&any.value).map_err(|e| undecodable(name, e))?;
        let mut config = base()?;
        if !opts.binary_name.is_empty() {
            config.runc.binary = opts.binary_name.clone();
        }
        if !opts.root.is_empty() {
            config.runc.root = opts.root.clone().into();
        }
        config.runc.systemd_cgroup |= opts.systemd_cgroup;
        return Ok(Resolved {
            config,
            runc_options: Some(opts),
        });
    }
    if name == CREATE_OPTIONS_TYPE_URL {
        let opts = CreateOptions::parse_from_bytes(&any.value).map_err(|e| undecodable(name, e))?;
        let runc = RuncOptions {
            no_pivot_root: opts.no_pivot_root,
            no_new_keyring: opts.no_new_keyring,
            shim_cgroup: opts.shim_cgroup,
            io_uid: opts.io_uid,
            io_gid: opts.io_gid,
            criu_work_path: opts.criu_work_path,
            criu_image_path: opts.criu_image_path,
            ..Default::default()
        };
        return Ok(Resolved {
            config: base()?,
            runc_options: Some(runc),
        });
    }
    Err(Error::invalid_argument(format!(
        "unsupported runtime options type {:?}: crossarch accepts {RUNTIME_OPTIONS_TYPE_URL} \
         (CRI), containerd.runc.v1.Options or containerd.linux.runc.CreateOptions; fix the \
         runtime handler's options",
        any.type_url
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    fn any(type_url: &str, msg: &dyn containerd_shim::protos::protobuf::MessageDyn) -> Any {
        Any {
            type_url: type_url.into(),
            value: msg.write_to_bytes_dyn().unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn no_options_use_the_base_config() {
        let r = resolve(None, || Ok(Config::default())).unwrap();
        assert_eq!(r.config, Config::default());
        assert_eq!(r.config.runc.binary, "runc");
    }

    #[test]
    fn cri_options_carry_toml() {
        let opts = RuntimeOptions {
            type_url: "crossarch".into(),
            config_body: "[runc]\nbinary = \"/opt/runc\"\nsystemd_cgroup = true\n".into(),
            ..Default::default()
        };
        let r = resolve(
            Some(&any("runtimeoptions.v1.Options", &opts)),
            || unreachable!(),
        )
        .unwrap();
        assert_eq!(r.config.runc.binary, "/opt/runc");
        assert!(r.config.runc.systemd_cgroup);
    }

    #[test]
    fn cri_options_with_a_path_read_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[runc]\nroot = \"/run/x\"\n").unwrap();
        let opts = RuntimeOptions {
            config_path: p.display().to_string(),
            ..Default::default()
        };
        let url = "type.googleapis.com/runtimeoptions.v1.Options";
        let r = resolve(Some(&any(url, &opts)), || unreachable!()).unwrap();
        assert_eq!(r.config.runc.root, PathBuf::from("/run/x"));
    }

    #[test]
    fn runc_options_override_binary_and_root() {
        let opts = RuncOptions {
            binary_name: "/usr/sbin/runc".into(),
            root: "/run/r".into(),
            ..Default::default()
        };
        let r = resolve(Some(&any("containerd.runc.v1.Options", &opts)), || {
            Ok(Config::default())
        })
        .unwrap();
        assert_eq!(r.config.runc.binary, "/usr/sbin/runc");
        assert_eq!(r.config.runc.root, PathBuf::from("/run/r"));
        assert!(r.runc_options.is_some());
    }

    #[test]
    fn legacy_create_options_are_accepted() {
        let opts = CreateOptions {
            no_pivot_root: true,
            io_uid: 1000,
            ..Default::default()
        };
        let r = resolve(
            Some(&any("containerd.linux.runc.CreateOptions", &opts)),
            || Ok(Config::default()),
        )
        .unwrap();
        let runc = r.runc_options.unwrap();
        assert!(runc.no_pivot_root);
        assert_eq!(runc.io_uid, 1000);
        assert_eq!(r.config, Config::default());
    }

    #[test]
    fn unknown_type_url_is_a_clear_error() {
        let a = Any {
            type_url: "example.com/Other".into(),
            ..Default::default()
        };
        let e = resolve(Some(&a), || Ok(Config::default())).unwrap_err();
        assert_eq!(e.kind(), Kind::InvalidArgument);
        assert!(e.to_string().contains("example.com/Other"), "{e}");
    }

    #[test]
    fn bad_toml_names_the_problem() {
        let e = Config::parse("[runc]\nbinray = 1\n", "/etc/crossarch/config.toml").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("/etc/crossarch/config.toml") && msg.contains("binray"),
            "{msg}"
        );
    }

    #[test]
    fn emulation_and_init_tables() {
        let c = Config::parse(
            "[emulation]\nmode = \"wrap\"\nallowed = [\"arm64\", \"s390x\"]\n[init]\nenabled = false\n",
            "test",
        )
        .unwrap();
        assert_eq!(c.emulation.mode, EmulationMode::Wrap);
        assert_eq!(c.emulation.allowed.as_ref().unwrap().len(), 2);
        assert!(!c.init.enabled);
        let e = Config::parse("[emulation]\nmode = \"fast\"\n", "test").unwrap_err();
        assert!(e.to_string().contains("fast"), "{e}");
    }

    #[test]
    fn missing_file_means_defaults() {
        let c = Config::load(Path::new("/nonexistent/crossarch.toml")).unwrap();
        assert_eq!(c, Config::default());
    }
}
