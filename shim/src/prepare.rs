//! Everything crossarch changes about a process before runc starts it, in one order:
//! capabilities, then routing (qemu for a foreign binary), then the init in front.

use std::path::Path;

use crossarch_route::plan::{Decision, Route};
use oci_spec::runtime::Process;
use serde_json::Value;

use crate::{
    caps,
    config::Config,
    error::{Error, Result},
    init, route,
    spec::{self, Document},
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

pub struct CreateInput<'a> {
    pub id: &'a str,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub config: &'a Config,
    pub privileged: bool,
    pub own_pid_namespace: bool,
}

pub fn for_create(input: &CreateInput, doc: &mut Document) -> Result<()> {
    let CreateInput { id, config, .. } = *input;
    let report = doc.with_process(id, |p| {
        caps::apply_to_process(&config.capabilities, p, input.privileged, id, "")
    })?;
    report.lines.iter().for_each(|l| log::info!("{l}"));

    let (args, env, cwd) = doc.with_process(id, |p| Ok(view(p)))?;
    let decision = route::decide(id, &config.emulation, input.rootfs, &args, &env, &cwd);
    if let Some(d) = &decision {
        log::info!("{d}");
        doc.with_process(id, |p| apply_route(d, p))?;
        if let Route::Wrap {
            qemu_host_path,
            qemu_in_container_path,
            ..
        } = &d.route
        {
            spec::add_bind_mount(
                &mut doc.value,
                qemu_host_path,
                &qemu_in_container_path.to_string_lossy(),
            );
        }
        if let Ok(json) = serde_json::to_vec_pretty(d) {
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
            let host_init = init::locate(&config.init);
            if !host_init.is_file() {
                return Err(Error::FailedPrecondition(format!(
                    "container {id}: the crossarch init is missing at {}; reinstall crossarch \
                     (scripts/install.sh) or set init.enabled = false in the crossarch config",
                    host_init.display()
                )));
            }
            spec::add_bind_mount(&mut doc.value, &host_init, &init::in_container_path());
            doc.with_process(id, |p| {
                p.set_args(Some(init::prefix(&args, config.init.pgroup)));
                Ok(())
            })?;
        }
    }
    Ok(())
}

pub struct ExecInput<'a> {
    pub id: &'a str,
    pub exec_id: &'a str,
    /// The running container's root, `/proc/<init pid>/root`: it sees the volumes too.
    pub root: &'a Path,
    pub config: &'a Config,
    pub privileged: bool,
    /// The request's terminal flag; it wins over the process spec's, as with runc-v2.
    pub terminal: bool,
}

/// Edits an exec's process (JSON as containerd sent it) and returns it serialized.
pub fn for_exec(input: &ExecInput, mut slot: Value) -> Result<Vec<u8>> {
    let ExecInput {
        id,
        exec_id,
        config,
        ..
    } = *input;
    let what = format!("exec {exec_id} of container {id}");
    let report = spec::edit_process(&what, &mut slot, |p| {
        caps::apply_to_process(&config.capabilities, p, input.privileged, id, exec_id)
    })?;
    report.lines.iter().for_each(|l| log::info!("{l}"));
    let (args, env, cwd) = spec::edit_process(&what, &mut slot, |p| {
        p.set_terminal(Some(input.terminal));
        Ok(view(p))
    })?;
    let label = format!("{id} (exec {exec_id})");
    if let Some(d) = route::decide(&label, &config.emulation, input.root, &args, &env, &cwd) {
        log::info!("{d}");
        if let Route::Wrap {
            qemu_in_container_path,
            ..
        } = &d.route
        {
            let inside = input.root.join(
                qemu_in_container_path
                    .strip_prefix("/")
                    .unwrap_or(qemu_in_container_path),
            );
            if !inside.exists() {
                return Err(Error::FailedPrecondition(format!(
                    "{what}: {} is {} and needs {} inside the container, which is only mounted \
                     when the container itself starts as that architecture; run it in a container \
                     of that architecture",
                    d.path_in_root.display(),
                    d.arch.map(|a| a.to_string()).unwrap_or_default(),
                    qemu_in_container_path.display()
                )));
            }
        }
        spec::edit_process(&what, &mut slot, |p| apply_route(&d, p))?;
    }
    serde_json::to_vec(&slot).map_err(|e| Error::Internal(format!("{what}: {e}")))
}
