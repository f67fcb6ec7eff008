//! The I/O edge of routing: reads the binary a process will run from the container's root and
//! asks the pure decision in `crossarch_route` how it runs.

use std::{path::Path, sync::OnceLock};

use crossarch_route::{
    arch::Host,
    plan::{self, Decision},
    qemu, resolve,
};

use crate::config::EmulationConfig;

fn host() -> Option<&'static Host> {
    static HOST: OnceLock<Option<Host>> = OnceLock::new();
    HOST.get_or_init(Host::detect).as_ref()
}

/// How the process `args` (with its `env` and `cwd`) runs, its binary read under `root`.
/// `None` when the binary cannot be resolved: runc then reports that in its own words.
pub fn decide(
    container: &str,
    cfg: &EmulationConfig,
    root: &Path,
    args: &[String],
    env: &[String],
    cwd: &str,
) -> Option<Decision> {
    let host = host()?;
    let arg0 = args.first()?;
    let attempt = || -> Result<_, resolve::Error> {
        let candidates = resolve::search_plan(arg0, env, cwd)?;
        let root = resolve::Root::open(root)?;
        resolve::in_root(&root, &candidates, cwd)
    };
    let resolved = match attempt() {
        Ok(r) => r,
        Err(e) => {
            log::warn!("container {container}: cannot inspect {arg0}: {e}; leaving it to runc");
            return None;
        }
    };
    let policy = cfg.policy();
    Some(plan::decide(
        container,
        &policy,
        host,
        &resolved,
        args,
        |arch| qemu::discover(&policy.qemu_dirs, arch, host.arch),
    ))
}
