//! Edits crossarch makes to a container's OCI spec before runc sees it.
//!
//! The spec is edited as JSON so that fields this crate's OCI types do not model survive; each
//! edit deserializes only the part it changes.

use std::path::Path;

use oci_spec::runtime::Process;
use serde_json::Value;

use crate::error::{Error, Result};

/// config.json as JSON, with what was read so it is rewritten only when changed.
pub struct Document {
    pub value: Value,
    original: Value,
}

impl Document {
    pub fn load(id: &str, bundle: &Path) -> Result<Document> {
        let path = bundle.join("config.json");
        let bytes = std::fs::read(&path).map_err(|e| {
            Error::InvalidArgument(format!(
                "container {id}: cannot read the OCI spec {}: {e}; the bundle is incomplete",
                path.display()
            ))
        })?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            Error::InvalidArgument(format!(
                "container {id}: the OCI spec {} is not valid JSON: {e}",
                path.display()
            ))
        })?;
        Ok(Document {
            original: value.clone(),
            value,
        })
    }

    /// The typed spec, for the decisions that read it.
    pub fn spec(&self, id: &str) -> Result<oci_spec::runtime::Spec> {
        serde_json::from_value(self.value.clone()).map_err(|e| {
            Error::InvalidArgument(format!(
                "container {id}: the OCI spec config.json is invalid: {e}"
            ))
        })
    }

    pub fn store(&self, id: &str, bundle: &Path) -> Result<()> {
        if self.value == self.original {
            return Ok(());
        }
        let path = bundle.join("config.json");
        let bytes = serde_json::to_vec(&self.value)
            .map_err(|e| Error::Internal(format!("container {id}: {e}")))?;
        std::fs::write(&path, bytes).map_err(|e| {
            Error::Internal(format!(
                "container {id}: cannot write {}: {e}",
                path.display()
            ))
        })
    }

    /// Runs `f` on the spec's process, writing the result back.
    pub fn with_process<R>(
        &mut self,
        id: &str,
        f: impl FnOnce(&mut Process) -> Result<R>,
    ) -> Result<R> {
        let slot = self.value.get_mut("process").ok_or_else(|| {
            Error::InvalidArgument(format!("container {id}: the OCI spec has no process"))
        })?;
        edit_process(id, slot, f)
    }
}

/// Adds a read-only bind mount of a host file.
pub fn add_bind_mount(value: &mut Value, source: &Path, destination: &str) {
    let mount = serde_json::json!({
        "destination": destination,
        "type": "bind",
        "source": source,
        "options": ["bind", "ro", "nosuid", "nodev"],
    });
    match value.get_mut("mounts").and_then(Value::as_array_mut) {
        Some(mounts) => mounts.push(mount),
        None => value["mounts"] = Value::Array(vec![mount]),
    }
}

/// The identity mapping of every id: file ownership is unchanged inside the user namespace.
fn identity_mapping() -> Value {
    serde_json::json!([{"containerID": 0, "hostID": 0, "size": 4294967295u64}])
}

fn namespaces(value: &mut Value) -> &mut Vec<Value> {
    let linux = &mut value["linux"];
    if !linux["namespaces"].is_array() {
        linux["namespaces"] = Value::Array(Vec::new());
    }
    linux["namespaces"]
        .as_array_mut()
        .expect("just made an array")
}

/// Whether the container has a user namespace (its own or joined).
pub fn has_user_namespace(value: &Value) -> bool {
    value["linux"]["namespaces"]
        .as_array()
        .is_some_and(|ns| ns.iter().any(|n| n["type"] == "user"))
}

/// Gives the container a user namespace unless it has one (an existing mapping, as Kubernetes
/// `hostUsers: false` sets, is kept). Returns whether one was added.
pub fn ensure_user_namespace(value: &mut Value) -> bool {
    if has_user_namespace(value) {
        return false;
    }
    namespaces(value).push(serde_json::json!({"type": "user"}));
    for key in ["uidMappings", "gidMappings"] {
        if !value["linux"][key].is_array() {
            value["linux"][key] = identity_mapping();
        }
    }
    true
}

/// The path of the namespace of `kind` the spec joins, if any.
pub fn joined_namespace<'a>(value: &'a Value, kind: &str) -> Option<&'a str> {
    value["linux"]["namespaces"]
        .as_array()?
        .iter()
        .find(|n| n["type"] == kind)?
        .get("path")?
        .as_str()
        .filter(|p| !p.is_empty())
}

/// Whether the spec joins an existing namespace of `kind` (a pod's sandbox, usually).
pub fn joins_namespace(value: &Value, kind: &str) -> bool {
    value["linux"]["namespaces"].as_array().is_some_and(|ns| {
        ns.iter()
            .any(|n| n["type"] == kind && n.get("path").is_some_and(|p| p != ""))
    })
}

/// Whether the container's namespace of `kind` is not its own: joined by path (a pod's), or
/// absent from the spec, which means the host's (`hostNetwork`, `hostIPC`, `hostPID`).
pub fn shares_namespace(value: &Value, kind: &str) -> bool {
    let own = value["linux"]["namespaces"].as_array().is_some_and(|ns| {
        ns.iter()
            .any(|n| n["type"] == kind && n.get("path").is_none_or(|p| p == ""))
    });
    !own
}

/// What became of the pseudo filesystems a container could not mount fresh.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PseudoFilesystems {
    /// Destinations of the sysfs mounts turned into a read-only bind of the host's `/sys`.
    pub bound: Vec<String>,
    /// Destinations of the mqueue mounts left out.
    pub dropped: Vec<String>,
}

/// A container with a user namespace of its own cannot mount a fresh sysfs (mqueue) in a
/// network (IPC) namespace that another user namespace owns: a pod's that CRI created, or
/// the host's. Another mount namespace's instance cannot be bound either, so:
/// - sysfs becomes a bind of `sysfs_source`: a fresh read-only sysfs of that network
///   namespace that the shim mounts on the host side (see `staging`), which is what runc
///   mounts for a native container there: none of the host's submounts (debugfs, tracefs,
///   bpf, securityfs, the cgroup tree, ...);
/// - mqueue is left out: binding the host's would show the host's queues, and `mq_open(3)`
///   works without it, in the container's IPC namespace.
pub fn bind_pod_pseudo_filesystems(value: &mut Value, sysfs_source: &Path) -> PseudoFilesystems {
    let shares_net = shares_namespace(value, "network");
    let shares_ipc = shares_namespace(value, "ipc");
    let mut done = PseudoFilesystems::default();
    let Some(mounts) = value["mounts"].as_array_mut() else {
        return done;
    };
    mounts.retain_mut(|m| {
        let dest = m["destination"].as_str().unwrap_or_default().to_string();
        match m["type"].as_str() {
            Some("sysfs") if shares_net => {
                m["type"] = "bind".into();
                m["source"] = sysfs_source.to_string_lossy().into_owned().into();
                m["options"] = serde_json::json!(["bind", "ro", "nosuid", "nodev", "noexec"]);
                done.bound.push(dest);
                true
            }
            Some("mqueue") if shares_ipc => {
                done.dropped.push(dest);
                false
            }
            _ => true,
        }
    });
    done
}

/// Why a container must not be given a user namespace of its own (it has none, and joins
/// no pod's): its `/proc` is a fresh mount of its PID namespace, which needs privilege in the
/// user namespace that owns that namespace. A PID namespace it shares (a pod's with
/// `shareProcessNamespace`, or the host's with `hostPID`) belongs to another one.
pub fn new_user_namespace_blocked(value: &Value) -> Option<String> {
    let has_user = value["linux"]["namespaces"]
        .as_array()
        .is_some_and(|ns| ns.iter().any(|n| n["type"] == "user"));
    if has_user || !shares_namespace(value, "pid") {
        return None;
    }
    let which = match joined_namespace(value, "pid") {
        Some(path) => {
            format!("it joins the PID namespace {path} (a pod that shares its process namespace)")
        }
        None => "it runs in the host's PID namespace (hostPID)".to_string(),
    };
    Some(format!(
        "{which}, which another user namespace owns; from a user namespace of its own it could \
         not mount that namespace's /proc"
    ))
}

/// Whether the spec joins a network, IPC or UTS namespace by path. Given a user namespace
/// of its own, the container cannot be entered there by a runc that joins the user
/// namespace first (the host's namespaces, absent from the spec, are not joined at exec).
pub fn joins_another_users_namespaces(value: &Value) -> bool {
    ["network", "ipc", "uts"]
        .iter()
        .any(|kind| joins_namespace(value, kind))
}

pub const UNPRIVILEGED_PORT_START: &str = "net.ipv4.ip_unprivileged_port_start";

/// Sets `net.ipv4.ip_unprivileged_port_start=0` for a container that joins an existing
/// network namespace other than the host's (`host_netns`), unless the spec sets it. The
/// value holds for the whole namespace: every container of the pod, as long as the pod
/// lives. Docker sets it for every container, and containerd 2.x's CRI for every pod.
/// Returns whether it was set.
pub fn open_low_ports(value: &mut Value, host_netns: bool) -> bool {
    if host_netns
        || !joins_namespace(value, "network")
        || value["linux"]["sysctl"]
            .get(UNPRIVILEGED_PORT_START)
            .is_some()
    {
        return false;
    }
    if !value["linux"]["sysctl"].is_object() {
        value["linux"]["sysctl"] = serde_json::json!({});
    }
    value["linux"]["sysctl"][UNPRIVILEGED_PORT_START] = "0".into();
    true
}

/// What containerd gives an unprivileged container.
const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
];
const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Takes back what "privileged" grants besides capabilities: the host's device nodes and
/// access to every device, an unmasked /proc, and writable sysfs and cgroupfs. runc adds the
/// usual harmless devices (/dev/null, ...) itself.
pub fn unprivilege(value: &mut Value) {
    let linux = &mut value["linux"];
    if let Some(obj) = linux.as_object_mut() {
        obj.remove("devices");
    }
    linux["resources"]["devices"] = serde_json::json!([{"allow": false, "access": "rwm"}]);
    linux["maskedPaths"] = serde_json::json!(MASKED_PATHS);
    linux["readonlyPaths"] = serde_json::json!(READONLY_PATHS);
    if let Some(mounts) = value["mounts"].as_array_mut() {
        for m in mounts
            .iter_mut()
            .filter(|m| m["type"] == "sysfs" || m["type"] == "cgroup")
        {
            let opts = m["options"].as_array_mut();
            if let Some(opts) = opts {
                opts.retain(|o| o != "rw");
                if !opts.iter().any(|o| o == "ro") {
                    opts.push("ro".into());
                }
            }
        }
    }
}

/// A spec annotation.
pub fn annotation<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get("annotations")?.get(key)?.as_str()
}

/// Runs `f` on a process given as JSON, writing the result back in place.
pub fn edit_process<R>(
    what: &str,
    slot: &mut Value,
    f: impl FnOnce(&mut Process) -> Result<R>,
) -> Result<R> {
    let mut process: Process = serde_json::from_value(slot.clone())
        .map_err(|e| Error::InvalidArgument(format!("{what}: invalid process spec: {e}")))?;
    let r = f(&mut process)?;
    let new =
        serde_json::to_value(&process).map_err(|e| Error::Internal(format!("{what}: {e}")))?;
    if let (Value::Object(old), Value::Object(new)) = (&mut *slot, new) {
        // Keep fields the typed model does not know.
        for (k, v) in new {
            old.insert(k, v);
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_survive_an_edit() {
        let mut slot = serde_json::json!({
            "args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "futureField": 7
        });
        edit_process("container a", &mut slot, |p| {
            p.set_args(Some(vec!["/init".into(), "sh".into()]));
            Ok(())
        })
        .unwrap();
        assert_eq!(slot["futureField"], 7);
        assert_eq!(slot["args"], serde_json::json!(["/init", "sh"]));
    }

    #[test]
    fn bind_mounts_are_appended_read_only() {
        let mut v = serde_json::json!({"mounts": [{"destination": "/proc", "type": "proc"}]});
        add_bind_mount(
            &mut v,
            Path::new("/usr/bin/qemu-aarch64-static"),
            "/dev/.crossarch/qemu",
        );
        assert_eq!(v["mounts"][1]["source"], "/usr/bin/qemu-aarch64-static");
        assert_eq!(v["mounts"][1]["options"][1], "ro");
        let mut empty = serde_json::json!({});
        add_bind_mount(&mut empty, Path::new("/x"), "/y");
        assert_eq!(empty["mounts"][0]["destination"], "/y");
    }

    #[test]
    fn a_user_namespace_is_added_with_the_identity_mapping() {
        let mut v = serde_json::json!({"linux": {"namespaces": [{"type": "pid"}]}});
        assert!(ensure_user_namespace(&mut v));
        assert_eq!(v["linux"]["namespaces"][1]["type"], "user");
        assert_eq!(v["linux"]["uidMappings"][0]["size"], 4294967295u64);
        assert!(!ensure_user_namespace(&mut v), "only once");
        assert!(has_user_namespace(&v));
    }

    #[test]
    fn an_existing_mapping_is_kept() {
        let mut v = serde_json::json!({"linux": {
            "namespaces": [{"type": "user"}],
            "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]
        }});
        assert!(!ensure_user_namespace(&mut v));
        assert_eq!(v["linux"]["uidMappings"][0]["hostID"], 100000);
    }

    #[test]
    fn pods_pseudo_filesystems_are_bound_or_left_out() {
        let mut v = serde_json::json!({
            "linux": {"namespaces": [
                {"type": "network", "path": "/proc/9/ns/net"},
                {"type": "ipc"},
                {"type": "pid"}
            ]},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["ro"]},
                {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue"}
            ]
        });
        assert!(joins_namespace(&v, "network") && shares_namespace(&v, "network"));
        assert!(!shares_namespace(&v, "ipc"));
        let staged = Path::new("/run/b/crossarch-host/sys");
        let done = bind_pod_pseudo_filesystems(&mut v, staged);
        assert_eq!(done.bound, ["/sys"]);
        assert!(done.dropped.is_empty());
        assert_eq!(v["mounts"][1]["type"], "bind");
        assert_eq!(v["mounts"][1]["source"], "/run/b/crossarch-host/sys");
        let options = v["mounts"][1]["options"].as_array().unwrap();
        assert!(
            !options.contains(&"rbind".into()) && options.contains(&"ro".into()),
            "{options:?}"
        );
        assert_eq!(v["mounts"][0]["type"], "proc");
        assert_eq!(
            v["mounts"][2]["type"], "mqueue",
            "the IPC namespace is its own"
        );

        v["linux"]["namespaces"][1]["path"] = "/proc/9/ns/ipc".into();
        let done = bind_pod_pseudo_filesystems(&mut v, staged);
        assert_eq!(done.dropped, ["/dev/mqueue"]);
        assert_eq!(v["mounts"].as_array().unwrap().len(), 2);

        // hostNetwork and hostIPC: no entry at all.
        let mut host = serde_json::json!({
            "linux": {"namespaces": [{"type": "pid"}]},
            "mounts": [
                {"destination": "/sys", "type": "sysfs", "source": "sysfs"},
                {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue"}
            ]
        });
        let done = bind_pod_pseudo_filesystems(&mut host, staged);
        assert_eq!((done.bound.len(), done.dropped.len()), (1, 1));
    }

    #[test]
    fn a_joined_pid_namespace_blocks_a_new_user_namespace() {
        let mut v = serde_json::json!({"linux": {"namespaces": [
            {"type": "network", "path": "/proc/9/ns/net"},
            {"type": "pid"}
        ]}});
        assert_eq!(new_user_namespace_blocked(&v), None);
        assert!(joins_another_users_namespaces(&v));
        v["linux"]["namespaces"][1]["path"] = "/proc/9/ns/pid".into();
        let why = new_user_namespace_blocked(&v).unwrap();
        assert!(
            why.contains("/proc/9/ns/pid") && why.contains("/proc"),
            "{why}"
        );
        v["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"type": "user"}));
        assert_eq!(
            new_user_namespace_blocked(&v),
            None,
            "it has its own already"
        );
        let own =
            serde_json::json!({"linux": {"namespaces": [{"type": "network"}, {"type": "uts"}]}});
        assert!(!joins_another_users_namespaces(&own));
    }

    #[test]
    fn low_ports_open_in_a_joined_network_namespace_unless_set() {
        let mut v = serde_json::json!({"linux": {"namespaces": [{"type": "network"}]}});
        assert!(!open_low_ports(&mut v, false), "its own network namespace");
        let mut host = serde_json::json!({"linux": {"namespaces": []}});
        assert!(
            !open_low_ports(&mut host, false),
            "hostNetwork: never the host's"
        );
        v["linux"]["namespaces"][0]["path"] = "/proc/1/ns/net".into();
        assert!(!open_low_ports(&mut v, true), "the host's, joined by path");
        v["linux"]["namespaces"][0]["path"] = "/proc/9/ns/net".into();
        assert!(open_low_ports(&mut v, false));
        assert_eq!(v["linux"]["sysctl"][UNPRIVILEGED_PORT_START], "0");
        v["linux"]["sysctl"][UNPRIVILEGED_PORT_START] = "80".into();
        assert!(!open_low_ports(&mut v, false), "the spec's value wins");
        assert_eq!(v["linux"]["sysctl"][UNPRIVILEGED_PORT_START], "80");
    }

    #[test]
    fn unprivilege_takes_back_devices_and_masks() {
        let mut v = serde_json::json!({
            "linux": {
                "devices": [{"path": "/dev/sda", "type": "b", "major": 8, "minor": 0}],
                "resources": {"devices": [{"allow": true, "access": "rwm"}], "memory": {"limit": 1}},
                "maskedPaths": [], "readonlyPaths": []
            },
            "mounts": [{"destination": "/sys", "type": "sysfs", "options": ["nosuid", "rw"]}]
        });
        unprivilege(&mut v);
        assert!(v["linux"].get("devices").is_none());
        assert_eq!(
            v["linux"]["resources"]["devices"],
            serde_json::json!([{"allow": false, "access": "rwm"}])
        );
        assert_eq!(
            v["linux"]["resources"]["memory"]["limit"], 1,
            "other resources stay"
        );
        assert!(v["linux"]["maskedPaths"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "/proc/kcore"));
        assert_eq!(
            v["mounts"][0]["options"],
            serde_json::json!(["nosuid", "ro"])
        );
    }

    #[test]
    fn bad_process_is_invalid_argument() {
        let mut slot = serde_json::json!({"args": 5});
        let e = edit_process("exec e1 of container a", &mut slot, |_| Ok(())).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)));
        assert!(e
            .to_string()
            .starts_with("exec e1 of container a: invalid process spec"));
    }
}
