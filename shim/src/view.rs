//! The container as crossarch's decisions see it, read once from its config.json: its
//! namespaces, process, privilege, annotations, rootfs and mounts. Pure: it reads a
//! [`Document`] that the caller loaded.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use oci_spec::runtime::Process;
use serde_json::Value;

use crate::{
    caps,
    error::{Error, Result},
    spec::Document,
};

/// Where one of the container's namespaces comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ns {
    /// runc makes a new one (listed without a path, or with an empty one, as runc reads it).
    Own,
    /// An existing one, joined by path (a pod's, usually).
    Joined(String),
    /// Not listed: the one runc itself is in, the host's (`hostNetwork`, `hostPID`, ...).
    Host,
}

impl Ns {
    /// Not its own: joined, or the host's.
    pub fn shared(&self) -> bool {
        *self != Ns::Own
    }

    pub fn joined(&self) -> Option<&str> {
        match self {
            Ns::Joined(p) => Some(p),
            _ => None,
        }
    }
}

/// The namespaces crossarch's decisions look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespaces {
    pub pid: Ns,
    pub network: Ns,
    pub ipc: Ns,
    pub uts: Ns,
    pub user: Ns,
}

impl Namespaces {
    /// From the spec's `linux.namespaces`.
    pub fn from_spec(value: &Value) -> Namespaces {
        let list = value["linux"]["namespaces"].as_array();
        let of = |kind: &str| {
            let Some(n) = list.and_then(|ns| ns.iter().find(|n| n["type"] == kind)) else {
                return Ns::Host;
            };
            match n.get("path").and_then(Value::as_str) {
                Some(p) if !p.is_empty() => Ns::Joined(p.to_string()),
                _ => Ns::Own,
            }
        };
        Namespaces {
            pid: of("pid"),
            network: of("network"),
            ipc: of("ipc"),
            uts: of("uts"),
            user: of("user"),
        }
    }

    /// Whether it has a user namespace, its own or joined.
    pub fn has_user(&self) -> bool {
        self.user != Ns::Host
    }

    /// Whether it joins a network, IPC or UTS namespace by path. Given a user namespace of
    /// its own, a runc that joins the user namespace first cannot enter it there at exec (the
    /// host's namespaces, absent from the spec, are not joined).
    pub fn joins_other_than_user(&self) -> bool {
        [&self.network, &self.ipc, &self.uts]
            .iter()
            .any(|n| n.joined().is_some())
    }
}

/// One of the spec's mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountView {
    pub destination: String,
    pub kind: String,
    /// A bind mount's host source (type `bind`, or a `bind`/`rbind` option, as runc reads
    /// it).
    pub bind_source: Option<PathBuf>,
}

/// What crossarch's decisions read of a container.
#[derive(Debug, Clone)]
pub struct ContainerView {
    pub id: String,
    pub bundle: PathBuf,
    /// The root filesystem on the host.
    pub rootfs: PathBuf,
    pub namespaces: Namespaces,
    /// Whether it asks to be privileged ([`caps::is_privileged`]).
    pub privileged: bool,
    /// Its process, with capability names crossarch does not know already dropped.
    pub process: Process,
    pub annotations: HashMap<String, String>,
    pub mounts: Vec<MountView>,
    /// The spec sets `net.ipv4.ip_unprivileged_port_start` itself.
    pub sets_port_start: bool,
    /// Why the container's seccomp profile would stop trace mode's init, if it does.
    pub seccomp_refuses_trace: Option<String>,
}

impl ContainerView {
    /// Reads the view of container `id` from its spec; capability names the process lists
    /// that crossarch does not know are dropped from `doc` first, each with a warning.
    pub fn read(id: &str, bundle: &Path, doc: &mut Document) -> Result<ContainerView> {
        caps::drop_unknown_names(&mut doc.value["process"], id, "")
            .lines
            .iter()
            .for_each(|l| log::warn!("{l}"));
        let spec = doc.spec(id)?;
        let process = spec.process().clone().ok_or_else(|| {
            Error::invalid_argument(format!("container {id}: the OCI spec has no process"))
        })?;
        let rootfs = match spec.root().as_ref().map(|r| r.path().clone()) {
            Some(p) if p.is_absolute() => p,
            Some(p) => bundle.join(p),
            None => bundle.join("rootfs"),
        };
        let value = &doc.value;
        let mounts = value["mounts"]
            .as_array()
            .map(|ms| {
                ms.iter()
                    .filter_map(|m| {
                        let kind = m["type"].as_str().unwrap_or_default().to_owned();
                        let bind = kind == "bind"
                            || m["options"].as_array().is_some_and(|os| {
                                os.iter()
                                    .any(|o| matches!(o.as_str(), Some("bind" | "rbind")))
                            });
                        Some(MountView {
                            destination: m["destination"].as_str()?.to_owned(),
                            kind,
                            bind_source: m["source"].as_str().filter(|_| bind).map(PathBuf::from),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(ContainerView {
            id: id.to_owned(),
            bundle: bundle.to_owned(),
            rootfs,
            namespaces: Namespaces::from_spec(value),
            privileged: caps::is_privileged(&spec),
            process,
            annotations: spec.annotations().clone().unwrap_or_default(),
            mounts,
            sets_port_start: value["linux"]["sysctl"]
                .get(crate::spec::UNPRIVILEGED_PORT_START)
                .is_some(),
            seccomp_refuses_trace: seccomp_refuses_trace(&value["linux"]["seccomp"]),
        })
    }

    /// A PID namespace of its own: its init is PID 1 there.
    pub fn own_pid_namespace(&self) -> bool {
        self.namespaces.pid == Ns::Own
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(String::as_str)
    }

    /// The mounts, as the lookup of what the process runs needs them: a binary under one is
    /// only there once runc has mounted it, and a bind mount's is in its source already.
    pub fn lookup_mounts(&self) -> Vec<crate::inspect::Mount> {
        self.mounts
            .iter()
            .map(|m| crate::inspect::Mount {
                destination: PathBuf::from(&m.destination),
                bind_source: m.bind_source.clone(),
            })
            .collect()
    }

    /// The process's args, env and cwd, for resolving what it runs.
    pub fn command(&self) -> (Vec<String>, Vec<String>, String) {
        let p = &self.process;
        (
            p.args().clone().unwrap_or_default(),
            p.env().clone().unwrap_or_default(),
            p.cwd().to_string_lossy().into_owned(),
        )
    }
}

/// The syscalls trace mode's init makes that a seccomp profile may refuse: its child sets
/// no_new_privs, installs the exec filter and hands init the filter's listener over a socket
/// pair; init waits on it and its signals (signalfd4, and poll, which musl makes ppoll on
/// arm64), answers its execs (ioctl), looks up their targets in the process's root, and,
/// for a foreign one, attaches with ptrace. (It reads and writes the process's memory
/// through /proc/PID/mem, which no profile refuses.)
const TRACE_SYSCALLS: [&str; 10] = [
    "ptrace",
    "prctl",
    "seccomp",
    "openat2",
    "socketpair",
    "sendmsg",
    "recvmsg",
    "ioctl",
    "signalfd4",
    #[cfg(target_arch = "x86_64")]
    "poll",
    #[cfg(not(target_arch = "x86_64"))]
    "ppoll",
];

/// Which of [`TRACE_SYSCALLS`] the OCI seccomp profile `seccomp` refuses, as a sentence;
/// None when there is no profile or it allows them all. A rule with argument conditions
/// counts as allowing, as containerd's and Docker's default profiles allow ptrace on every
/// kernel this runs on.
pub fn seccomp_refuses_trace(seccomp: &serde_json::Value) -> Option<String> {
    if !seccomp.is_object() {
        return None;
    }
    if seccomp["listenerPath"]
        .as_str()
        .is_some_and(|p| !p.is_empty())
    {
        return Some(
            "its seccomp profile hands its notifications to an agent (listenerPath), and a \
             process can be under only one seccomp listener, which trace mode's init needs"
                .into(),
        );
    }
    let allows = |action: &serde_json::Value| {
        matches!(action.as_str(), Some("SCMP_ACT_ALLOW" | "SCMP_ACT_LOG"))
    };
    let default_allows = allows(&seccomp["defaultAction"]);
    let rules = seccomp["syscalls"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let refused: Vec<&str> = TRACE_SYSCALLS
        .into_iter()
        .filter(|name| {
            let naming: Vec<_> = rules
                .iter()
                .filter(|r| {
                    r["names"]
                        .as_array()
                        .is_some_and(|n| n.iter().any(|n| n.as_str() == Some(name)))
                })
                .collect();
            if naming.iter().any(|r| allows(&r["action"])) {
                return false;
            }
            let unconditional_refusal = naming.iter().any(|r| {
                r["args"].as_array().is_none_or(|a| a.is_empty()) && !allows(&r["action"])
            });
            unconditional_refusal || !default_allows
        })
        .collect();
    (!refused.is_empty()).then(|| {
        format!(
            "its seccomp profile refuses {}, which trace mode's init needs",
            refused.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn trace_mode_needs_ptrace_and_seccomp_from_the_profile() {
        assert_eq!(seccomp_refuses_trace(&serde_json::Value::Null), None);
        // containerd's and Docker's default shape: errno by default, an allow list.
        let default = json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["read", "ptrace", "prctl", "seccomp", "openat2", "socketpair",
                       "sendmsg", "recvmsg", "ioctl", "signalfd4", "poll", "ppoll"],
             "action": "SCMP_ACT_ALLOW"},
        ]});
        assert_eq!(seccomp_refuses_trace(&default), None);
        let mut agent = default.clone();
        agent["listenerPath"] = json!("/run/agent.sock");
        assert!(seccomp_refuses_trace(&agent)
            .unwrap()
            .contains("listenerPath"));
        let no_ptrace = json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["read", "prctl", "seccomp", "openat2", "socketpair", "sendmsg",
                       "recvmsg", "ioctl", "signalfd4", "poll", "ppoll"],
             "action": "SCMP_ACT_ALLOW"},
        ]});
        assert_eq!(
            seccomp_refuses_trace(&no_ptrace).unwrap(),
            "its seccomp profile refuses ptrace, which trace mode's init needs"
        );
        let denied = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["ptrace", "ioctl"], "action": "SCMP_ACT_ERRNO"},
        ]});
        assert!(seccomp_refuses_trace(&denied)
            .unwrap()
            .contains("ptrace, ioctl,"));
        let conditional = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["ptrace"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0}]},
        ]});
        assert_eq!(seccomp_refuses_trace(&conditional), None);
    }

    #[test]
    fn an_empty_path_is_a_namespace_of_its_own_as_runc_reads_it() {
        let ns = Namespaces::from_spec(&json!({"linux": {"namespaces": [
            {"type": "pid", "path": ""},
            {"type": "network", "path": "/var/run/netns/pod"},
            {"type": "ipc"},
        ]}}));
        assert_eq!(ns.pid, Ns::Own);
        assert_eq!(ns.network, Ns::Joined("/var/run/netns/pod".into()));
        assert_eq!(ns.ipc, Ns::Own);
        assert_eq!(ns.uts, Ns::Host);
        assert_eq!(ns.user, Ns::Host);
        assert!(!ns.has_user());
        assert!(ns.joins_other_than_user());
        assert!(ns.network.shared() && ns.uts.shared() && !ns.pid.shared());
    }

    #[test]
    fn no_namespaces_at_all_are_the_hosts() {
        let ns = Namespaces::from_spec(&json!({}));
        assert_eq!(ns.pid, Ns::Host);
        assert!(!ns.joins_other_than_user());
    }
}
