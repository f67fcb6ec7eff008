//! The plan: everything crossarch changes about a container or an exec before runc sees it,
//! decided in one place and without I/O. Create's plan holds the mode (native, userns,
//! wrap, or an error that says why not), the process (capabilities, args), the namespace
//! and mount edits, what the shim stages on the host side, and the decision record;
//! `spec::apply` carries it out. Exec's plan is its process.
//!
//! The inputs are read at the edges first: the container's [`ContainerView`], the node's
//! facts and what they mean for this container ([`NodeView`]), and what the process runs
//! ([`Inspection`], from `route`).

use std::{collections::BTreeMap, path::PathBuf};

use crossarch_route::{
    arch::Arch,
    plan::{Decision, Route},
};
use oci_spec::runtime::Process;
use serde::Serialize;

use crate::{
    caps,
    config::{Config, EmulationMode, IN_CONTAINER_DIR},
    error::{self, Error, Result},
    init,
    route::Inspection,
    staging::{self, Staged},
    view::{ContainerView, Namespaces, Ns},
};

/// The file in the bundle that records how the init process was routed.
pub const DECISION_FILE: &str = "crossarch-route.json";

/// Why exec into a container with a user namespace of its own that joins another user
/// namespace's network, IPC or UTS namespace fails with runc before 1.3 (it enters the user
/// namespace first, and from there may not enter the others), and what to do.
pub const EXEC_HINT: &str = "it has a user namespace of its own for its private binfmt_misc, \
    but joins the pod's network, IPC or UTS namespace, which another user namespace owns; \
    runc before 1.3 cannot exec into such a container (it enters the user namespace first: \
    opencontainers/runc#4390). Use runc 1.3 or later (opencontainers/runc#4492), or set \
    emulation.mode = \"wrap\" for this runtime handler (then only the container's own \
    process is emulated)";

/// The architectures a container's private binfmt_misc runs, empty without one.
pub type Registered = Vec<(Arch, PathBuf)>;

/// What the node means for one container, found out before planning.
pub struct NodeView<'a> {
    /// Why this node cannot give containers a private binfmt_misc, `None` when it can.
    pub userns_unsupported: Option<String>,
    /// Why this node refuses trace mode's ptrace, `None` when it allows it.
    pub trace_unsupported: Option<String>,
    /// What a private binfmt_misc would register. Asked only in userns mode: a shim serves
    /// one container, mostly, so a probe of the qemu table is paid by that Create alone.
    pub registrations: Box<dyn Fn() -> Registered + 'a>,
    /// The init on the host, or why runc could not start it (`init::check`).
    pub init: std::result::Result<PathBuf, String>,
    /// The network namespace the container joins by path is the shim's, the host's.
    pub joins_host_network: bool,
}

/// How a container runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Its binary is the host's, or was not inspected.
    Native,
    /// Every process emulated through a private binfmt_misc.
    Userns,
    /// Every process emulated by the injected init, which traces their execs; with the
    /// reason userns mode was not used.
    Trace(String),
    /// Only its own process emulated, with the reason neither userns nor trace mode was used.
    Wrap(String),
}

impl Mode {
    fn name(&self) -> &'static str {
        match self {
            Mode::Native => "native",
            Mode::Userns => "userns",
            Mode::Trace(_) => "trace",
            Mode::Wrap(_) => "wrap",
        }
    }
}

/// A host file bound read-only into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub source: PathBuf,
    pub destination: String,
}

/// The decision record, `crossarch-route.json` in the bundle.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// What the route crate found.
    pub decision: Decision,
    pub mode: &'static str,
    /// Why wrap mode and not userns mode; empty otherwise.
    pub mode_why: String,
    /// What the private binfmt_misc registers.
    pub binfmt: BTreeMap<String, PathBuf>,
    /// The process args runc runs (the init in front, where there is one).
    pub args: Vec<String>,
}

/// What Create changes and keeps.
#[derive(Debug, Clone)]
pub struct Plan {
    pub mode: Mode,
    /// The process runc runs.
    pub process: Process,
    /// Take back what "privileged" grants besides capabilities (`privileged = "clip"`).
    pub unprivilege: bool,
    /// Give the container a user namespace with the identity mapping.
    pub add_user_namespace: bool,
    /// Destinations of sysfs mounts that become binds of `sysfs_source`.
    pub sysfs_binds: Vec<String>,
    /// The read-only sysfs of the pod's network namespace that the shim stages.
    pub sysfs_source: PathBuf,
    /// Destinations of mqueue mounts left out.
    pub mqueue_drops: Vec<String>,
    /// Set `net.ipv4.ip_unprivileged_port_start=0` in the network namespace it joins.
    pub open_low_ports: bool,
    pub binds: Vec<Bind>,
    /// Read-only host mounts to make before runc sees the spec.
    pub staged: Vec<Staged>,
    /// `None` when what the process runs could not be inspected.
    pub record: Option<Record>,
    /// What its private binfmt_misc registers (empty without one).
    pub registered: Registered,
    /// The architecture whose qemu is mounted in the container (wrap mode).
    pub wrapped: Option<Arch>,
    /// The qemus mounted in the container for its tracing init, at their paths in it
    /// (trace mode; empty otherwise).
    pub traced: Registered,
    /// A user namespace of its own while it joins namespaces another one owns: runc before
    /// 1.3 cannot exec into it ([`EXEC_HINT`]).
    pub exec_needs_two_stage_runc: bool,
    /// What to log, in order.
    pub log: Vec<(log::Level, String)>,
}

impl Plan {
    fn new(view: &ContainerView) -> Plan {
        Plan {
            mode: Mode::Native,
            process: view.process.clone(),
            unprivilege: false,
            add_user_namespace: false,
            sysfs_binds: Vec::new(),
            sysfs_source: staging::sysfs_path(&view.bundle),
            mqueue_drops: Vec::new(),
            open_low_ports: false,
            binds: Vec::new(),
            staged: Vec::new(),
            record: None,
            registered: Vec::new(),
            wrapped: None,
            traced: Vec::new(),
            exec_needs_two_stage_runc: false,
            log: Vec::new(),
        }
    }

    fn info(&mut self, line: impl Into<String>) {
        self.log.push((log::Level::Info, line.into()));
    }

    fn warn(&mut self, line: impl Into<String>) {
        self.log.push((log::Level::Warn, line.into()));
    }

    fn args(&self) -> Vec<String> {
        self.process.args().clone().unwrap_or_default()
    }

    /// Binds the host file `source` read-only at `destination`. In a container with a user
    /// namespace the bind comes from a staged copy, so that its flags are locked and even a
    /// CAP_SYS_ADMIN allowed by the ceiling cannot make it writable.
    fn host_file(
        &mut self,
        view: &ContainerView,
        source: PathBuf,
        destination: String,
        name: &str,
    ) {
        let source = if view.namespaces.has_user() || self.add_user_namespace {
            self.staged.push(Staged::File {
                name: name.into(),
                source,
            });
            staging::path(&view.bundle, name)
        } else {
            source
        };
        self.binds.push(Bind {
            source,
            destination,
        });
    }
}

/// Picks the mode of a foreign container from the config, what stands in userns mode's way
/// (`userns_blocked`) and what stands in trace mode's (`trace_blocked`). Auto takes the
/// first of userns, trace and wrap that can run.
pub fn choose_mode(
    id: &str,
    configured: EmulationMode,
    userns_blocked: Option<String>,
    trace_blocked: Option<String>,
) -> Result<Mode> {
    let refuse = |mode: &str, why: String| {
        Error::failed_precondition(format!(
            "container {id}: emulation.mode is \"{mode}\" but {why}; use \"auto\" or \"wrap\""
        ))
    };
    match (configured, userns_blocked, trace_blocked) {
        (EmulationMode::Wrap, _, _) => Ok(Mode::Wrap(
            "emulation.mode is \"wrap\" in the crossarch config".into(),
        )),
        (EmulationMode::Userns | EmulationMode::Auto, None, _) => Ok(Mode::Userns),
        (EmulationMode::Userns, Some(why), _) => Err(refuse("userns", why)),
        (EmulationMode::Trace, _, None) => Ok(Mode::Trace(
            "emulation.mode is \"trace\" in the crossarch config".into(),
        )),
        (EmulationMode::Trace, _, Some(why)) => Err(refuse("trace", why)),
        (EmulationMode::Auto, Some(why), None) => Ok(Mode::Trace(why)),
        (EmulationMode::Auto, Some(userns), Some(trace)) => Ok(Mode::Wrap(format!(
            "{userns}; and trace mode cannot run: {trace}"
        ))),
        // Refused earlier by the routing policy; never reached with a Wrap route.
        (EmulationMode::Off, _, _) => Ok(Mode::Wrap("emulation is off".into())),
    }
}

/// Why a container must not be given a user namespace of its own (it has none, and joins
/// no pod's): its `/proc` is a fresh mount of its PID namespace, which needs privilege in the
/// user namespace that owns that namespace. A PID namespace it shares (a pod's with
/// `shareProcessNamespace`, or the host's with `hostPID`) belongs to another one.
pub fn new_user_namespace_blocked(ns: &Namespaces) -> Option<String> {
    if ns.has_user() || !ns.pid.shared() {
        return None;
    }
    let which = match &ns.pid {
        Ns::Joined(path) => {
            format!("it joins the PID namespace {path} (a pod that shares its process namespace)")
        }
        _ => "it runs in the host's PID namespace (hostPID)".to_string(),
    };
    Some(format!(
        "{which}, which another user namespace owns; from a user namespace of its own it could \
         not mount that namespace's /proc"
    ))
}

/// The plan of container `view`'s Create.
pub fn create(
    node: &NodeView<'_>,
    config: &Config,
    view: &ContainerView,
    inspection: Inspection,
) -> Result<Plan> {
    let id = view.id.as_str();
    let mut plan = Plan::new(view);
    let report = caps::apply_to_process(
        &config.capabilities,
        &mut plan.process,
        view.privileged,
        id,
        "",
    )?;
    report.lines.into_iter().for_each(|l| plan.info(l));
    if view.privileged && config.capabilities.privileged == caps::PrivilegedMode::Clip {
        plan.unprivilege = true;
        plan.info(format!("container {id}: privileged, clipped: no host devices, /proc masked, sysfs and cgroupfs read-only (privileged = \"clip\")"));
    }

    let (decision, missing) = match inspection {
        Inspection::Decided(d) => (Some(*d), None),
        Inspection::Missing(why) => (None, Some(why)),
        Inspection::Invalid(why) => {
            return Err(Error::invalid_argument(format!("container {id}: {why}")))
        }
        Inspection::Unknown => (None, None),
    };
    if let Some(d) = &decision {
        plan.info(d.to_string());
        match &d.route {
            Route::Native => {}
            Route::Refused { reason } => {
                return Err(Error::failed_precondition(reason.to_string()))
            }
            Route::Wrap {
                arch,
                qemu_host_path,
                qemu_in_container_path,
                args,
            } => {
                let blocked = node
                    .userns_unsupported
                    .clone()
                    .or_else(|| new_user_namespace_blocked(&view.namespaces));
                let trace_blocked = trace_blocked(node, config, view, &plan.args());
                plan.mode = choose_mode(id, config.emulation.mode, blocked, trace_blocked)?;
                match plan.mode.clone() {
                    Mode::Userns => userns(&mut plan, node, view),
                    Mode::Trace(why) => trace(&mut plan, node, view, &why),
                    Mode::Wrap(why) => {
                        plan.warn(format!(
                            "container {id}: only {} itself is emulated (wrap mode: {why}); programs it starts \
                             of another architecture fail with \"exec format error\"",
                            d.path_in_root.display()
                        ));
                        plan.process.set_args(Some(args.clone()));
                        plan.host_file(
                            view,
                            qemu_host_path.clone(),
                            qemu_in_container_path.to_string_lossy().into_owned(),
                            &format!("qemu-{}", arch.qemu_name()),
                        );
                        plan.wrapped = Some(*arch);
                    }
                    Mode::Native => {}
                }
            }
        }
    }

    let args = plan.args();
    match init::skip_reason(
        &config.init,
        view.own_pid_namespace(),
        view.annotation(init::ANNOTATION),
        &args,
    ) {
        Some(why) => plan.info(format!("container {id}: no injected init: {why}")),
        None => {
            // runc would refuse a missing binary at Create; in front of it the init would
            // start and exit 127 instead, so refuse it the same way.
            if let Some(why) = missing {
                return Err(Error::internal(format!(
                    "container {id}: exec: {why}: no such file or directory; check the image's \
                     entrypoint, the command and PATH"
                )));
            }
            let host_init = node.init.clone().map_err(Error::failed_precondition)?;
            plan.host_file(view, host_init, init::in_container_path(), "init");
            let traced = matches!(plan.mode, Mode::Trace(_));
            plan.process
                .set_args(Some(init::prefix(&args, config.init.pgroup, traced)));
        }
    }

    if let Some(decision) = decision {
        plan.record = Some(Record {
            decision,
            mode: plan.mode.name(),
            mode_why: match &plan.mode {
                Mode::Wrap(why) | Mode::Trace(why) => why.clone(),
                _ => String::new(),
            },
            binfmt: plan
                .registered
                .iter()
                .map(|(a, p)| (a.to_string(), p.clone()))
                .collect(),
            args: plan.args(),
        });
    }
    Ok(plan)
}

/// Why trace mode cannot run container `view` with `args`: the node's ptrace policy, the
/// container's seccomp profile, or no injected init to do the tracing.
fn trace_blocked(
    node: &NodeView<'_>,
    config: &Config,
    view: &ContainerView,
    args: &[String],
) -> Option<String> {
    node.trace_unsupported
        .clone()
        .or_else(|| view.seccomp_refuses_trace.clone())
        .or_else(|| {
            init::skip_reason(
                &config.init,
                view.own_pid_namespace(),
                view.annotation(init::ANNOTATION),
                args,
            )
            .map(|why| format!("the injected init, which traces, is not used ({why})"))
        })
}

/// Trace mode: the injected init runs every foreign exec of the tree through a qemu bound
/// read-only in the container, one per architecture the node emulates; the process is left
/// as the image asked.
fn trace(plan: &mut Plan, node: &NodeView<'_>, view: &ContainerView, why: &str) {
    for (arch, host_path) in (node.registrations)() {
        let destination = std::path::Path::new(IN_CONTAINER_DIR)
            .join(crossarch_route::plan::qemu_file_name(arch));
        plan.host_file(
            view,
            host_path,
            destination.to_string_lossy().into_owned(),
            &format!("qemu-{}", arch.qemu_name()),
        );
        plan.traced.push((arch, destination));
    }
    let arches: Vec<String> = plan.traced.iter().map(|(a, _)| a.to_string()).collect();
    plan.info(format!(
        "container {}: every process is emulated by the injected init, which traces their execs \
         (trace mode: {why}) ({})",
        view.id,
        arches.join(", ")
    ));
}

/// Userns mode: the kernel runs qemu for every process; the process is left as the image
/// asked. A container given a user namespace of its own while it shares namespaces that
/// another user namespace owns (a pod's, or the host's) gets the pseudo filesystems it cannot
/// mount bound or left out, and may bind ports below 1024 in a pod's network namespace, which
/// its root could not otherwise (CAP_NET_BIND_SERVICE counts in the user namespace that owns
/// the network namespace).
fn userns(plan: &mut Plan, node: &NodeView<'_>, view: &ContainerView) {
    let id = view.id.as_str();
    let ns = &view.namespaces;
    plan.registered = (node.registrations)();
    plan.add_user_namespace = !ns.has_user();
    if plan.add_user_namespace {
        // A fresh sysfs (mqueue) cannot be mounted from the new user namespace in a network
        // (IPC) namespace another one owns. Another mount namespace's instance cannot be
        // bound either, so sysfs becomes a bind of a read-only sysfs of that network
        // namespace that the shim mounts on the host side (what runc mounts for a native
        // container there, without the host's submounts), and mqueue is left out (mq_open
        // works without it).
        for m in &view.mounts {
            match m.kind.as_str() {
                "sysfs" if ns.network.shared() => plan.sysfs_binds.push(m.destination.clone()),
                "mqueue" if ns.ipc.shared() => plan.mqueue_drops.push(m.destination.clone()),
                _ => {}
            }
        }
        if !plan.sysfs_binds.is_empty() {
            plan.staged.push(Staged::Sysfs {
                netns: ns.network.joined().map(Into::into),
            });
            plan.info(format!(
                "container {id}: shares a network namespace of another user namespace: {} is a read-only sysfs of it that the shim mounts",
                plan.sysfs_binds.join(", ")
            ));
        }
        if !plan.mqueue_drops.is_empty() {
            plan.info(format!(
                "container {id}: shares an IPC namespace of another user namespace: no {} mount (message queues still work)",
                plan.mqueue_drops.join(", ")
            ));
        }
        // A network namespace of its own belongs to its own user namespace, where its root
        // may bind low ports.
        let host_netns = match &ns.network {
            Ns::Joined(_) => node.joins_host_network,
            Ns::Host => true,
            Ns::Own => false,
        };
        plan.open_low_ports = !host_netns && ns.network.joined().is_some() && !view.sets_port_start;
        if plan.open_low_ports {
            plan.info(format!(
                "container {id}: {}=0 in the pod's network namespace, so its root can bind ports below 1024",
                crate::spec::UNPRIVILEGED_PORT_START
            ));
        } else if host_netns {
            plan.warn(format!(
                "container {id}: in the host's network namespace its root cannot bind ports below 1024 \
                 from a user namespace of its own; set emulation.mode = \"wrap\" if it must"
            ));
        }
        plan.exec_needs_two_stage_runc = ns.joins_other_than_user();
    }
    let arches: Vec<String> = plan.registered.iter().map(|(a, _)| a.to_string()).collect();
    plan.info(format!(
        "container {id}: every process is emulated through a private binfmt_misc in {} user namespace ({})",
        if plan.add_user_namespace { "a new" } else { "its own" },
        arches.join(", ")
    ));
}

/// What an exec runs in, from its container.
pub struct ExecContext<'a> {
    pub id: &'a str,
    pub exec_id: &'a str,
    pub config: &'a Config,
    pub privileged: bool,
    /// The request's terminal flag; it wins over the process spec's, as with runc-v2.
    pub terminal: bool,
    /// What the container's private binfmt_misc runs; the kernel routes those itself.
    pub registered: &'a Registered,
    /// The architecture whose qemu was mounted in the container at Create (wrap mode).
    pub wrapped: Option<Arch>,
    /// The qemus mounted for the container's tracing init (trace mode).
    pub traced: &'a Registered,
}

impl ExecContext<'_> {
    /// The qemus the container holds, which run without the host's qemu (it may be gone
    /// since Create): what its private binfmt_misc registered, or the one mounted in it.
    pub fn held(&self) -> Registered {
        let mut held = self.registered.clone();
        held.extend(self.traced.iter().cloned());
        if let Some(arch) = self.wrapped {
            let name = crossarch_route::plan::qemu_file_name(arch);
            held.push((arch, std::path::Path::new(IN_CONTAINER_DIR).join(name)));
        }
        held
    }
}

/// The process an exec runs, and what to log.
pub fn exec(
    ctx: &ExecContext,
    mut process: Process,
    inspection: Inspection,
) -> Result<(Process, Vec<(log::Level, String)>)> {
    let what = error::subject(ctx.id, ctx.exec_id);
    let report = caps::apply_to_process(
        &ctx.config.capabilities,
        &mut process,
        ctx.privileged,
        ctx.id,
        ctx.exec_id,
    )?;
    let mut log: Vec<_> = report
        .lines
        .into_iter()
        .map(|l| (log::Level::Info, l))
        .collect();
    process.set_terminal(Some(ctx.terminal));
    let d = match inspection {
        Inspection::Invalid(why) => return Err(Error::invalid_argument(format!("{what}: {why}"))),
        Inspection::Decided(d) => d,
        Inspection::Missing(_) | Inspection::Unknown => return Ok((process, log)),
    };
    log.push((log::Level::Info, d.to_string()));
    match &d.route {
        Route::Native => {}
        Route::Refused { reason } => return Err(Error::failed_precondition(reason.to_string())),
        // The container's binfmt_misc runs it; the process is left as it is.
        Route::Wrap { arch, .. } if ctx.registered.iter().any(|(a, _)| a == arch) => {}
        // The init in front, below, runs it through qemu.
        Route::Wrap { arch, .. } if ctx.traced.iter().any(|(a, _)| a == arch) => {}
        Route::Wrap {
            arch,
            qemu_in_container_path,
            args,
            ..
        } => {
            // What Create mounted decides, not a look into the container's /dev, which the
            // container may have filled with symlinks to host paths.
            if ctx.wrapped != Some(*arch) {
                return Err(Error::failed_precondition(format!(
                    "{what}: {} is {arch} and needs {} inside the container, which is only mounted \
                     when the container itself starts as that architecture; run it in a container \
                     of that architecture",
                    d.path_in_root.display(),
                    qemu_in_container_path.display()
                )));
            }
            process.set_args(Some(args.clone()));
        }
    }
    if !ctx.traced.is_empty() {
        // Trace mode: the exec's tree is traced by an init of its own, as the container's is.
        let args = process.args().clone().unwrap_or_default();
        process.set_args(Some(init::prefix(&args, ctx.config.init.pgroup, true)));
        log.push((
            log::Level::Info,
            format!("{what}: runs under the injected init, which traces its execs (trace mode)"),
        ));
    }
    Ok((process, log))
}

#[cfg(test)]
mod tests;
