//! The one place that edits a container's OCI spec: [`apply`] carries out a [`Plan`].
//!
//! The spec is read once ([`Document::load`]) and written once ([`Document::store`]). It is
//! edited as JSON so that fields this crate's OCI types do not model survive; each edit
//! deserializes only the part it changes.

use std::path::Path;

use oci_spec::runtime::Process;
use serde_json::Value;

use crate::{
    error::{self, Error, Result},
    plan::Plan,
};

/// Carries out `plan` on container `id`'s spec.
pub fn apply(doc: &mut Document, id: &str, plan: &Plan) -> Result<()> {
    let value = &mut doc.value;
    let process = value.get_mut("process").ok_or_else(|| {
        Error::invalid_argument(format!("container {id}: the OCI spec has no process"))
    })?;
    set_process(&format!("container {id}"), process, &plan.process)?;
    if plan.unprivilege {
        unprivilege(value);
    }
    if plan.add_user_namespace {
        ensure_user_namespace(value);
    }
    if let Some(mounts) = value["mounts"].as_array_mut() {
        let is = |m: &Value, kind: &str, list: &[String]| {
            m["type"] == kind && list.iter().any(|d| m["destination"] == d.as_str())
        };
        mounts.retain(|m| !is(m, "mqueue", &plan.mqueue_drops));
        for m in mounts
            .iter_mut()
            .filter(|m| is(m, "sysfs", &plan.sysfs_binds))
        {
            m["type"] = "bind".into();
            m["source"] = plan.sysfs_source.to_string_lossy().into_owned().into();
            m["options"] = serde_json::json!(["bind", "ro", "nosuid", "nodev", "noexec"]);
        }
    }
    if plan.open_low_ports {
        if !value["linux"]["sysctl"].is_object() {
            value["linux"]["sysctl"] = serde_json::json!({});
        }
        value["linux"]["sysctl"][UNPRIVILEGED_PORT_START] = "0".into();
    }
    for b in &plan.binds {
        add_bind_mount(value, &b.source, &b.destination);
    }
    Ok(())
}

/// Writes `process` over the process given as JSON, keeping the fields the typed model does
/// not know.
pub fn set_process(what: &str, slot: &mut Value, process: &Process) -> Result<()> {
    let new = serde_json::to_value(process).map_err(|e| Error::internal(what).with_source(e))?;
    if let (Value::Object(old), Value::Object(new)) = (&mut *slot, new) {
        for (k, v) in new {
            old.insert(k, v);
        }
    }
    Ok(())
}

/// The process given as JSON, typed.
pub fn read_process(what: &str, slot: &Value) -> Result<Process> {
    serde_json::from_value(slot.clone()).map_err(|e| {
        Error::invalid_argument(format!("{what}: invalid process spec")).with_source(e)
    })
}

/// config.json as JSON, with what was read so it is rewritten only when changed.
pub struct Document {
    pub value: Value,
    original: Value,
}

impl Document {
    pub fn load(id: &str, bundle: &Path) -> Result<Document> {
        let path = bundle.join("config.json");
        let bytes = std::fs::read(&path).map_err(|e| {
            Error::invalid_argument(format!(
                "container {id}: cannot read the OCI spec {}",
                path.display()
            ))
            .with_source(e)
            .append("; the bundle is incomplete")
        })?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            Error::invalid_argument(format!(
                "container {id}: the OCI spec {} is not valid JSON",
                path.display()
            ))
            .with_source(e)
        })?;
        Ok(Document::from_value(value))
    }

    pub fn from_value(value: Value) -> Document {
        Document {
            original: value.clone(),
            value,
        }
    }

    /// The typed spec, for the decisions that read it.
    pub fn spec(&self, id: &str) -> Result<oci_spec::runtime::Spec> {
        serde_json::from_value(self.value.clone()).map_err(|e| {
            Error::invalid_argument(format!(
                "container {id}: the OCI spec config.json is invalid"
            ))
            .with_source(e)
        })
    }

    pub fn store(&self, id: &str, bundle: &Path) -> Result<()> {
        if self.value == self.original {
            return Ok(());
        }
        let path = bundle.join("config.json");
        let bytes = serde_json::to_vec(&self.value)
            .map_err(|e| Error::internal(format!("container {id}")).with_source(e))?;
        std::fs::write(&path, bytes).map_err(|e| {
            error::io(
                format!("container {id}: cannot write {}", path.display()),
                e,
            )
        })
    }
}

pub const UNPRIVILEGED_PORT_START: &str = "net.ipv4.ip_unprivileged_port_start";

/// Adds a read-only bind mount of a host file.
fn add_bind_mount(value: &mut Value, source: &Path, destination: &str) {
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
fn has_user_namespace(value: &Value) -> bool {
    value["linux"]["namespaces"]
        .as_array()
        .is_some_and(|ns| ns.iter().any(|n| n["type"] == "user"))
}

/// Gives the container a user namespace unless it has one (an existing mapping, as Kubernetes
/// `hostUsers: false` sets, is kept). Returns whether one was added.
fn ensure_user_namespace(value: &mut Value) -> bool {
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
fn unprivilege(value: &mut Value) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    #[test]
    fn unknown_fields_survive_an_edit() {
        let mut slot = serde_json::json!({
            "args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "futureField": 7
        });
        let mut p = read_process("container a", &slot).unwrap();
        p.set_args(Some(vec!["/init".into(), "sh".into()]));
        set_process("container a", &mut slot, &p).unwrap();
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
        let slot = serde_json::json!({"args": 5});
        let e = read_process("exec e1 of container a", &slot).unwrap_err();
        assert_eq!(e.kind(), Kind::InvalidArgument);
        assert!(e
            .to_string()
            .starts_with("exec e1 of container a: invalid process spec"));
    }
}
