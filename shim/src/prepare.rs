//! Everything crossarch changes about a process before runc starts it, in one order:
//! capabilities, then routing (qemu for a foreign binary), then the init in front.

use std::path::Path;

use crossarch_route::{
    arch::Arch,
    plan::{Decision, Route},
    resolve,
};
use oci_spec::runtime::Process;
use serde_json::Value;

use crate::{
    caps,
    config::{Config, EmulationMode},
    error::{Error, Result},
    init, route,
    spec::{self, Document},
    staging::{self, Staged},
};

/// The file in the bundle that records how the init process was routed.
pub const DECISION_FILE: &str = "crossarch-route.json";

fn view(p: &Process) -> (Vec<String>, Vec<String>, String) {
    (
        p.args().clone().unwrap_or_default(),
        p.env().clone().unwrap_or_default(),
        p.cwd().to_string_lossy().into_owned(),
    )
}

/// Applies the route to `process`; the qemu mount is the caller's to add.
fn apply_route(decision: &Decision, process: &mut Process) -> Result<()> {
    match &decision.route {
        Route::Native => Ok(()),
        Route::Wrap { args, .. } => {
            process.set_args(Some(args.clone()));
            Ok(())
        }
        Route::Refused { reason } => Err(Error::FailedPrecondition(reason.to_string())),
    }
}

/// Where the spec mounts things, which runc sees and the rootfs does not.
fn mount_destinations(value: &Value) -> Vec<String> {
    value["mounts"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .filter_map(|m| m["destination"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub struct CreateInput<'a> {
    pub id: &'a str,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub config: &'a Config,
    pub privileged: bool,
    pub own_pid_namespace: bool,
}

/// What Create decided that the container keeps.
#[derive(Debug, Default)]
pub struct Prepared {
    /// What its private binfmt_misc runs (empty without one).
    pub registered: Registered,
    /// The container has a user namespace of its own and joins namespaces that another one
    /// owns: runc before 1.3 cannot exec into it ([`EXEC_HINT`]). Only then is runc's
    /// version worth asking.
    pub exec_needs_two_stage_runc: bool,
    /// Read-only host mounts to make before runc sees the spec (see `staging`).
    pub staged: Vec<Staged>,
    /// The architecture whose qemu is mounted in the container (wrap mode).
    pub wrapped: Option<Arch>,
}

/// Why exec into a container with a user namespace of its own that joins another user
/// namespace's network, IPC or UTS namespace fails with runc before 1.3 (it enters the user
/// namespace first, and from there may not enter the others), and what to do.
pub const EXEC_HINT: &str = "it has a user namespace of its own for its private binfmt_misc, \
    but joins the pod's network, IPC or UTS namespace, which another user namespace owns; \
    runc before 1.3 cannot exec into such a container (it enters the user namespace first: \
    opencontainers/runc#4390). Use runc 1.3 or later (opencontainers/runc#4492), or set \
    emulation.mode = \"wrap\" for this runtime handler (then only the container's own \
    process is emulated)";

/// How a foreign container is emulated.
#[derive(Debug, PartialEq)]
pub enum Mode {
    Userns,
    /// With the reason userns mode was not used.
    Wrap(String),
}

/// A container given a user namespace of its own while it shares namespaces that another
/// user namespace owns (a pod's, or the host's): binds the pseudo filesystems it cannot
/// mount, and lets it bind ports below 1024 in a pod's network namespace, which its root
/// could not otherwise (CAP_NET_BIND_SERVICE counts in the user namespace that owns the
/// network namespace).
fn adapt_to_shared_namespaces(
    id: &str,
    bundle: &Path,
    value: &mut Value,
    staged: &mut Vec<Staged>,
) {
    let done = spec::bind_pod_pseudo_filesystems(value, &staging::sysfs_path(bundle));
    if !done.bound.is_empty() {
        staged.push(Staged::Sysfs {
            netns: spec::joined_namespace(value, "network").map(Into::into),
        });
        log::info!(
            "container {id}: shares a network namespace of another user namespace: {} is a read-only sysfs of it that the shim mounts",
            done.bound.join(", ")
        );
    }
    if !done.dropped.is_empty() {
        log::info!(
            "container {id}: shares an IPC namespace of another user namespace: no {} mount (message queues still work)",
            done.dropped.join(", ")
        );
    }
    // Absent from the spec: the host's (hostNetwork). A network namespace of its own
    // belongs to its own user namespace, where its root may bind low ports.
    let host_netns = match spec::joined_namespace(value, "network") {
        Some(path) => crate::ns::same_namespace(path, "/proc/self/ns/net"),
        None => spec::shares_namespace(value, "network"),
    };
    if spec::open_low_ports(value, host_netns) {
        log::info!(
            "container {id}: {}=0 in the pod's network namespace, so its root can bind ports below 1024",
            spec::UNPRIVILEGED_PORT_START
        );
    } else if host_netns {
        log::warn!(
            "container {id}: in the host's network namespace its root cannot bind ports below 1024 \
             from a user namespace of its own; set emulation.mode = \"wrap\" if it must"
        );
    }
}

/// Picks the mode from the config and what the node supports (`unsupported` says why not).
pub fn choose_mode(
    id: &str,
    configured: EmulationMode,
    unsupported: Option<String>,
) -> Result<Mode> {
    match (configured, unsupported) {
        (EmulationMode::Wrap, _) => Ok(Mode::Wrap(
            "emulation.mode is \"wrap\" in the crossarch config".into(),
        )),
        (EmulationMode::Userns | EmulationMode::Auto, None) => Ok(Mode::Userns),
        (EmulationMode::Auto, Some(why)) => Ok(Mode::Wrap(why)),
        (EmulationMode::Userns, Some(why)) => Err(Error::FailedPrecondition(format!(
            "container {id}: emulation.mode is \"userns\" but {why}; use \"auto\" or \"wrap\""
        ))),
        // Refused earlier by the routing policy; never reached with a Wrap route.
        (EmulationMode::Off, _) => Ok(Mode::Wrap("emulation is off".into())),
    }
}

/// The architectures a container's private binfmt_misc runs, empty without one.
pub type Registered = Vec<(Arch, std::path::PathBuf)>;

/// Binds the host file `source` read-only at `destination`. In a container with a user
/// namespace the bind comes from a staged copy, so that its flags are locked and even a
/// CAP_SYS_ADMIN allowed by the ceiling cannot make it writable.
fn add_host_file(
    value: &mut Value,
    staged: &mut Vec<Staged>,
    bundle: &Path,
    source: &Path,
    destination: &str,
    name: &str,
) {
    if spec::has_user_namespace(value) {
        staged.push(Staged::File {
            name: name.into(),
            source: source.into(),
        });
        spec::add_bind_mount(value, &staging::path(bundle, name), destination);
    } else {
        spec::add_bind_mount(value, source, destination);
    }
}

pub fn for_create(input: &CreateInput, doc: &mut Document) -> Result<Prepared> {
    let CreateInput { id, config, .. } = *input;
    let report = doc.with_process(id, |p| {
        caps::apply_to_process(&config.capabilities, p, input.privileged, id, "")
    })?;
    report.lines.iter().for_each(|l| log::info!("{l}"));

    if input.privileged && config.capabilities.privileged == caps::PrivilegedMode::Clip {
        spec::unprivilege(&mut doc.value);
        log::info!("container {id}: privileged, clipped: no host devices, /proc masked, sysfs and cgroupfs read-only (privileged = \"clip\")");
    }
    let (args, env, cwd) = doc.with_process(id, |p| Ok(view(p)))?;
    let mounts = mount_destinations(&doc.value);
    let (decision, missing) = match route::decide(
        id,
        &config.emulation,
        input.rootfs,
        &args,
        &env,
        &cwd,
        &mounts,
    ) {
        route::Inspection::Decided(d) => (Some(*d), None),
        route::Inspection::Missing(why) => (None, Some(why)),
        route::Inspection::Invalid(why) => {
            return Err(Error::InvalidArgument(format!("container {id}: {why}")))
        }
        route::Inspection::Unknown => (None, None),
    };
    let mut prepared = Prepared::default();
    if let Some(d) = &decision {
        log::info!("{d}");
        let mode = match &d.route {
            Route::Wrap { .. } => Some(choose_mode(
                id,
                config.emulation.mode,
                crate::facts::node()
                    .userns_unsupported()
                    .or_else(|| spec::new_user_namespace_blocked(&doc.value)),
            )?),
            _ => None,
        };
        match &mode {
            Some(Mode::Userns) => {
                prepared.registered = crate::facts::node().registrations(
                    &config.emulation.qemu_dirs,
                    config.emulation.allowed.as_deref(),
                );
                let added = spec::ensure_user_namespace(&mut doc.value);
                if added {
                    // The pod's namespaces belong to another user namespace here.
                    adapt_to_shared_namespaces(
                        id,
                        input.bundle,
                        &mut doc.value,
                        &mut prepared.staged,
                    );
                    prepared.exec_needs_two_stage_runc =
                        spec::joins_another_users_namespaces(&doc.value);
                }
                let arches: Vec<String> = prepared
                    .registered
                    .iter()
                    .map(|(a, _)| a.to_string())
                    .collect();
                log::info!(
                    "container {id}: every process is emulated through a private binfmt_misc in {} user namespace ({})",
                    if added { "a new" } else { "its own" },
                    arches.join(", ")
                );
            }
            Some(Mode::Wrap(why)) => {
                log::warn!(
                    "container {id}: only {} itself is emulated (wrap mode: {why}); programs it starts \
                     of another architecture fail with \"exec format error\"",
                    d.path_in_root.display()
                );
                doc.with_process(id, |p| apply_route(d, p))?;
                if let Route::Wrap {
                    arch,
                    qemu_host_path,
                    qemu_in_container_path,
                    ..
                } = &d.route
                {
                    add_host_file(
                        &mut doc.value,
                        &mut prepared.staged,
                        input.bundle,
                        qemu_host_path,
                        &qemu_in_container_path.to_string_lossy(),
                        &format!("qemu-{}", arch.qemu_name()),
                    );
                    prepared.wrapped = Some(*arch);
                }
            }
            None => doc.with_process(id, |p| apply_route(d, p))?,
        }
        let mut decision = serde_json::to_value(d).unwrap_or_default();
        if mode == Some(Mode::Userns) {
            // The kernel runs qemu; the process is left exactly as the image asked.
            decision["args"] = serde_json::json!(args);
            decision["qemu_in_container_path"] = Value::Null;
        }
        let record = serde_json::json!({
            "decision": decision,
            "mode": match &mode { Some(Mode::Userns) => "userns", Some(Mode::Wrap(_)) => "wrap", None => "native" },
            "mode_why": match &mode { Some(Mode::Wrap(why)) => why.as_str(), _ => "" },
            "binfmt": prepared.registered.iter().map(|(a, p)| (a.to_string(), p.clone())).collect::<std::collections::BTreeMap<_, _>>(),
        });
        if let Ok(json) = serde_json::to_vec_pretty(&record) {
            let _ = std::fs::write(input.bundle.join(DECISION_FILE), json);
        }
    }

    let annotation = spec::annotation(&doc.value, init::ANNOTATION).map(str::to_owned);
    let args = doc.with_process(id, |p| Ok(p.args().clone().unwrap_or_default()))?;
    match init::skip_reason(
        &config.init,
        input.own_pid_namespace,
        annotation.as_deref(),
        &args,
    ) {
        Some(why) => log::info!("container {id}: no injected init: {why}"),
        None => {
            // runc would refuse a missing binary at Create; in front of it the init would
            // start and exit 127 instead, so refuse it the same way.
            if let Some(why) = missing {
                return Err(Error::Internal(format!(
                    "container {id}: exec: {why}: no such file or directory; check the image's \
                     entrypoint, the command and PATH"
                )));
            }
            let host_init = init::locate(&config.init);
            init::check(id, &host_init).map_err(Error::FailedPrecondition)?;
            add_host_file(
                &mut doc.value,
                &mut prepared.staged,
                input.bundle,
                &host_init,
                &init::in_container_path(),
                "init",
            );
            doc.with_process(id, |p| {
                p.set_args(Some(init::prefix(&args, config.init.pgroup)));
                Ok(())
            })?;
        }
    }
    Ok(prepared)
}

pub struct ExecInput<'a> {
    pub id: &'a str,
    pub exec_id: &'a str,
    /// The running container's root, opened from `/proc/<init pid>/root` while the init was
    /// known to be alive: it sees the volumes too.
    pub root: &'a resolve::Root,
    pub config: &'a Config,
    pub privileged: bool,
    /// The request's terminal flag; it wins over the process spec's, as with runc-v2.
    pub terminal: bool,
    /// What the container's private binfmt_misc runs; the kernel routes those itself.
    pub registered: &'a Registered,
    /// The architecture whose qemu was mounted in the container at Create (wrap mode).
    pub wrapped: Option<Arch>,
}

/// Edits an exec's process (JSON as containerd sent it) and returns it serialized.
pub fn for_exec(input: &ExecInput, mut slot: Value) -> Result<Vec<u8>> {
    let ExecInput {
        id,
        exec_id,
        config,
        ..
    } = *input;
    let what = crate::error::subject(id, exec_id);
    let report = spec::edit_process(&what, &mut slot, |p| {
        caps::apply_to_process(&config.capabilities, p, input.privileged, id, exec_id)
    })?;
    report.lines.iter().for_each(|l| log::info!("{l}"));
    let (args, env, cwd) = spec::edit_process(&what, &mut slot, |p| {
        p.set_terminal(Some(input.terminal));
        Ok(view(p))
    })?;
    let label = format!("{id} (exec {exec_id})");
    // What the container holds runs without the host's qemu, which may be gone since Create.
    let mut held = input.registered.clone();
    if let Some(arch) = input.wrapped {
        let name = format!("qemu-{}-static", arch.qemu_name());
        held.push((arch, Path::new(crate::config::IN_CONTAINER_DIR).join(name)));
    }
    let inspection = route::decide_in(
        &label,
        &config.emulation,
        input.root,
        &args,
        &env,
        &cwd,
        &[],
        &held,
    );
    if let route::Inspection::Invalid(why) = inspection {
        return Err(Error::InvalidArgument(format!("{what}: {why}")));
    }
    if let route::Inspection::Decided(d) = inspection {
        log::info!("{d}");
        if let Route::Wrap { arch, .. } = &d.route {
            if input.registered.iter().any(|(a, _)| a == arch) {
                // The container's binfmt_misc runs it; the process is left as it is.
                return serde_json::to_vec(&slot)
                    .map_err(|e| Error::Internal(format!("{what}: {e}")));
            }
        }
        if let Route::Wrap {
            arch,
            qemu_in_container_path,
            ..
        } = &d.route
        {
            // What Create mounted decides, not a look into the container's /dev, which the
            // container may have filled with symlinks to host paths.
            if input.wrapped != Some(*arch) {
                return Err(Error::FailedPrecondition(format!(
                    "{what}: {} is {arch} and needs {} inside the container, which is only mounted \
                     when the container itself starts as that architecture; run it in a container \
                     of that architecture",
                    d.path_in_root.display(),
                    qemu_in_container_path.display()
                )));
            }
        }
        spec::edit_process(&what, &mut slot, |p| apply_route(&d, p))?;
    }
    serde_json::to_vec(&slot).map_err(|e| Error::Internal(format!("{what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_follows_config_and_node() {
        let no = || Some("Linux 5.10 has no per-user-namespace binfmt_misc".to_string());
        assert_eq!(
            choose_mode("a", EmulationMode::Auto, None).unwrap(),
            Mode::Userns
        );
        assert!(
            matches!(choose_mode("a", EmulationMode::Auto, no()).unwrap(), Mode::Wrap(w) if w.contains("5.10"))
        );
        assert!(matches!(
            choose_mode("a", EmulationMode::Wrap, None).unwrap(),
            Mode::Wrap(_)
        ));
        let e = choose_mode("web", EmulationMode::Userns, no()).unwrap_err();
        assert!(matches!(e, Error::FailedPrecondition(_)));
        assert!(
            e.to_string()
                .starts_with("container web: emulation.mode is \"userns\" but Linux 5.10"),
            "{e}"
        );
    }
}
