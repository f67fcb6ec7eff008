//! The Create and Exec pipelines, each step in its own module:
//!
//! spec read ([`spec::Document`]) → typed view ([`view`]) → what the process runs, read in
//! the container's root ([`route`]) → what the node means for it ([`facts`]) → the pure plan
//! ([`plan`]) → applied to the spec once ([`spec::apply`]) → runc.
//!
//! Both read the container's files, which may hang: the caller runs them off the ttrpc
//! thread, bounded in time.

use crossarch_route::plan::Route;
use serde_json::Value;

use crate::{
    caps,
    config::Config,
    error::{self, Error, Result},
    facts,
    plan::{self, ExecContext, Plan, DECISION_FILE},
    route::{self, Inspection},
    spec::{self, Document},
    view::ContainerView,
};

fn emit(log: &[(log::Level, String)]) {
    log.iter()
        .for_each(|(level, line)| log::log!(*level, "{line}"));
}

/// Plans container `view`'s Create, applies the plan to its spec `doc` and stores both.
pub fn create(config: &Config, view: &ContainerView, doc: &mut Document) -> Result<Plan> {
    let id = view.id.as_str();
    let started = std::time::Instant::now();
    let (args, env, cwd) = view.command();
    let inspection = route::decide(
        id,
        &config.emulation,
        &view.rootfs,
        &args,
        &env,
        &cwd,
        &view.lookup_mounts(),
    );
    let foreign =
        matches!(&inspection, Inspection::Decided(d) if matches!(d.route, Route::Wrap { .. }));
    let node = facts::node().for_container(config, view, foreign);
    let plan = plan::create(&node, config, view, inspection)?;
    let planned = started.elapsed();
    emit(&plan.log);
    let logged = started.elapsed();
    spec::apply(doc, id, &plan)?;
    doc.store(id, &view.bundle)?;
    if let Some(record) = &plan.record {
        let path = view.bundle.join(DECISION_FILE);
        match serde_json::to_vec_pretty(record) {
            Ok(json) => {
                if let Err(e) = std::fs::write(&path, json) {
                    log::warn!("container {id}: cannot write {}: {e}", path.display());
                }
            }
            Err(e) => log::warn!("container {id}: cannot encode its decision record: {e}"),
        }
    }
    log::debug!(
        "container {id}: inspected and planned in {} µs (then logged in {} µs, applied and \
         stored in {} µs)",
        planned.as_micros(),
        (logged - planned).as_micros(),
        (started.elapsed() - logged).as_micros()
    );
    Ok(plan)
}

/// Plans an exec whose process containerd sent as `slot`, in the running container's
/// `root`, and returns the process serialized for runc.
pub fn exec(ctx: &ExecContext, root: &crate::inspect::Root, mut slot: Value) -> Result<Vec<u8>> {
    let what = error::subject(ctx.id, ctx.exec_id);
    caps::drop_unknown_names(&mut slot, ctx.id, ctx.exec_id)
        .lines
        .iter()
        .for_each(|l| log::warn!("{l}"));
    let process = spec::read_process(&what, &slot)?;
    let inspection = route::decide_in(
        &format!("{} (exec {})", ctx.id, ctx.exec_id),
        &ctx.config.emulation,
        root,
        process.args().as_deref().unwrap_or_default(),
        process.env().as_deref().unwrap_or_default(),
        &process.cwd().to_string_lossy(),
        &[],
        &ctx.held(),
    );
    let (process, log) = plan::exec(ctx, process, inspection)?;
    emit(&log);
    spec::set_process(&what, &mut slot, &process)?;
    serde_json::to_vec(&slot).map_err(|e| Error::internal(what).with_source(e))
}
