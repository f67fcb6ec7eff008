//! The injected init: where it is on the host, and whether a container gets it.

use std::path::{Path, PathBuf};

use crate::config::{InitConfig, IN_CONTAINER_DIR};

/// Per-container opt-out: `io.crossarch/init: "false"`.
pub const ANNOTATION: &str = "io.crossarch/init";

/// Entrypoints that already are an init; a second one in front would only add a process.
const KNOWN_INITS: &[&str] = &[
    "tini",
    "tini-static",
    "dumb-init",
    "docker-init",
    "catatonit",
    "crossarch-init",
];

pub fn in_container_path() -> String {
    format!("{IN_CONTAINER_DIR}/init")
}

/// The init binary on the host: configured, or installed beside the shim.
pub fn locate(cfg: &InitConfig) -> PathBuf {
    if !cfg.path.as_os_str().is_empty() {
        return cfg.path.clone();
    }
    crate::facts::node()
        .shim_dir
        .as_ref()
        .map(|d| d.join("crossarch-init"))
        .unwrap_or_else(|| PathBuf::from("/usr/local/bin/crossarch-init"))
}

/// Refuses an init that runc could not start, before runc sees it: runc's own error would
/// only name the path inside the container (`exec: "/dev/.crossarch/init": permission denied`).
pub fn check(id: &str, host_init: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let fix = "reinstall crossarch (scripts/install.sh) or set init.enabled = false in the \
               crossarch config";
    match std::fs::metadata(host_init) {
        Ok(m) if !m.is_file() => Err(format!(
            "container {id}: the crossarch init at {} is not a regular file; {fix}",
            host_init.display()
        )),
        Ok(m) if m.permissions().mode() & 0o111 == 0 => Err(format!(
            "container {id}: the crossarch init at {} is not executable (mode {:o}); \
             chmod 0755 it, {fix}",
            host_init.display(),
            m.permissions().mode() & 0o7777
        )),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "container {id}: the crossarch init is missing at {}; {fix}",
            host_init.display()
        )),
        Err(e) => Err(format!(
            "container {id}: the crossarch init at {} cannot be read: {e}; {fix}",
            host_init.display()
        )),
    }
}

/// Why a container gets no init, or `None` when it gets one.
pub fn skip_reason(
    cfg: &InitConfig,
    own_pid_namespace: bool,
    annotation: Option<&str>,
    args: &[String],
) -> Option<&'static str> {
    if !cfg.enabled {
        return Some("init.enabled is false in the crossarch config");
    }
    if matches!(annotation, Some(v) if v.eq_ignore_ascii_case("false") || v == "0" || v.eq_ignore_ascii_case("off"))
    {
        return Some("the container's io.crossarch/init annotation opts out");
    }
    if !own_pid_namespace {
        return Some("the container shares a PID namespace, whose PID 1 already reaps");
    }
    let base = args
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a))
        .unwrap_or("");
    if KNOWN_INITS.contains(&base) {
        return Some("the entrypoint already is an init");
    }
    None
}

/// The process args with the init in front.
pub fn prefix(args: &[String], pgroup: bool, trace: bool) -> Vec<String> {
    let mut v = vec![in_container_path()];
    if pgroup {
        v.push("-g".into());
    }
    if trace {
        v.push("--trace".into());
        v.push(IN_CONTAINER_DIR.into());
    }
    v.push("--".into());
    v.extend(args.iter().cloned());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn injected_only_where_it_helps() {
        let on = InitConfig::default();
        assert_eq!(skip_reason(&on, true, None, &args(&["sh"])), None);
        assert!(skip_reason(&on, false, None, &args(&["sh"]))
            .unwrap()
            .contains("shares a PID"));
        assert!(skip_reason(&on, true, Some("false"), &args(&["sh"])).is_some());
        assert_eq!(skip_reason(&on, true, Some("true"), &args(&["sh"])), None);
        assert!(skip_reason(&on, true, None, &args(&["/sbin/tini", "--", "app"])).is_some());
        let off = InitConfig {
            enabled: false,
            ..Default::default()
        };
        assert!(skip_reason(&off, true, None, &args(&["sh"])).is_some());
    }

    #[test]
    fn an_init_runc_could_not_start_is_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let init = dir.path().join("crossarch-init");
        let e = check("web", &init).unwrap_err();
        assert!(
            e.starts_with("container web: the crossarch init is missing at"),
            "{e}"
        );
        assert!(e.contains("init.enabled = false"), "{e}");
        std::fs::write(&init, b"").unwrap();
        std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = check("web", &init).unwrap_err();
        assert!(
            e.contains("is not executable (mode 644); chmod 0755 it"),
            "{e}"
        );
        std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(check("web", &init), Ok(()));
        let e = check("web", dir.path()).unwrap_err();
        assert!(e.contains("is not a regular file"), "{e}");
    }

    #[test]
    fn prefixes_args() {
        assert_eq!(
            prefix(&args(&["sh", "-c", "x"]), false, false),
            args(&["/dev/.crossarch/init", "--", "sh", "-c", "x"])
        );
        assert_eq!(
            prefix(&args(&["sh"]), true, false),
            args(&["/dev/.crossarch/init", "-g", "--", "sh"])
        );
        assert_eq!(
            prefix(&args(&["sh"]), true, true),
            args(&[
                "/dev/.crossarch/init",
                "-g",
                "--trace",
                "/dev/.crossarch",
                "--",
                "sh"
            ])
        );
    }
}
