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
    fn bad_process_is_invalid_argument() {
        let mut slot = serde_json::json!({"args": 5});
        let e = edit_process("exec e1 of container a", &mut slot, |_| Ok(())).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)));
        assert!(e
            .to_string()
            .starts_with("exec e1 of container a: invalid process spec"));
    }
}
