//! The I/O edge of routing: reads the binary a process will run from the container's root and
//! asks the pure decision in `crossarch_route` how it runs.

use std::path::{Path, PathBuf};

use crossarch_route::{
    arch::Arch,
    plan::{self, Decision},
    qemu, resolve,
};

use crate::{config::EmulationConfig, facts, inspect::Mount};

/// What inspecting a process's binary found.
pub enum Inspection {
    Decided(Box<Decision>),
    /// args[0] is nowhere in the root, and no mount could provide it: runc would fail.
    Missing(String),
    /// args\[0\], the cwd or `PATH` is beyond what the kernel or crossarch accepts.
    Invalid(String),
    /// The binary could not be inspected; runc reports whatever is wrong in its own words.
    Unknown,
}

/// How the process `args` (with its `env` and `cwd`) runs, its binary read under `root`.
/// `mounts` are the spec's mounts: a binary under one is only there once runc has mounted
/// it, so its absence from the root proves nothing; under a bind mount it is read in the
/// mount's source.
pub fn decide(
    container: &str,
    cfg: &EmulationConfig,
    root: &Path,
    args: &[String],
    env: &[String],
    cwd: &str,
    mounts: &[Mount],
) -> Inspection {
    match crate::inspect::Root::open(root) {
        Ok(root) => decide_in(container, cfg, &root, args, env, cwd, mounts, &[]),
        Err(e) => {
            log::warn!("container {container}: cannot inspect its root: {e}; leaving it to runc");
            Inspection::Unknown
        }
    }
}

/// [`decide`] in a root that is already open. `held` are the qemus a running container
/// already holds (registered in its binfmt_misc, or mounted in wrap mode): an exec of those
/// architectures needs no qemu on the host any more, so they are not looked up there.
#[allow(clippy::too_many_arguments)]
pub fn decide_in(
    container: &str,
    cfg: &EmulationConfig,
    root: &crate::inspect::Root,
    args: &[String],
    env: &[String],
    cwd: &str,
    mounts: &[Mount],
    held: &[(Arch, PathBuf)],
) -> Inspection {
    let node = facts::node();
    let (Some(host), Some(arg0)) = (node.host.as_ref(), args.first()) else {
        return Inspection::Unknown;
    };
    let candidates = match resolve::search_plan(arg0, env, cwd) {
        Ok(c) => c,
        Err(resolve::Error::NotFound { .. }) => return Inspection::Unknown,
        Err(e) => return Inspection::Invalid(e.to_string()),
    };
    let resolved = match crate::inspect::in_root_with_mounts(root, mounts, &candidates, cwd) {
        Ok(r) => r,
        Err(e @ resolve::Error::NotFound { .. }) if !under_any(&candidates, mounts) => {
            return Inspection::Missing(e.to_string());
        }
        Err(e) => {
            log::warn!(
                "container {container}: cannot inspect {}: {e}; leaving it to runc",
                shorten(arg0)
            );
            return Inspection::Unknown;
        }
    };
    let policy = cfg.policy();
    Inspection::Decided(Box::new(plan::decide(
        container,
        &policy,
        host,
        &resolved,
        args,
        |arch| match held.iter().find(|(a, _)| *a == arch) {
            Some((arch, path)) => Ok(qemu::Qemu {
                arch: *arch,
                path: path.clone(),
            }),
            None => node.qemu(&policy.qemu_dirs, arch),
        },
    )))
}

/// args\[0\] as a log line may show it: an image chooses it, and may make it huge.
fn shorten(arg0: &str) -> String {
    const SHOWN: usize = 256;
    match arg0.char_indices().nth(SHOWN) {
        Some((i, _)) => format!("{}... ({} bytes)", &arg0[..i], arg0.len()),
        None => arg0.to_string(),
    }
}

/// Whether any candidate lies under (or is) one of the mount destinations.
fn under_any(candidates: &[PathBuf], mounts: &[Mount]) -> bool {
    candidates
        .iter()
        .any(|c| crate::inspect::place(c, mounts) != crate::inspect::Place::Root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_under_a_mount_may_still_appear() {
        let c = vec![
            PathBuf::from("/usr/local/bin/app"),
            PathBuf::from("/opt/tools/app"),
        ];
        let at = |dsts: &[&str]| -> Vec<Mount> {
            dsts.iter()
                .map(|d| Mount {
                    destination: PathBuf::from(d),
                    bind_source: None,
                })
                .collect()
        };
        assert!(under_any(&c, &at(&["/opt/tools"])));
        assert!(!under_any(&c, &at(&["/proc", "/dev", "/"])));
        assert!(
            !under_any(&c, &at(&["/opt/tool"])),
            "components, not string prefixes"
        );
    }
}
