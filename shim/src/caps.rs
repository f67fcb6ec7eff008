//! Capability policy: the ceiling the node admin sets, applied to every process.

use oci_spec::runtime::{Process, Spec};
use serde::Deserialize;

use crate::error::Result;

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {}

/// What clipping changed, for the log line.
#[derive(Debug, Default)]
pub struct Report {
    pub lines: Vec<String>,
}

/// Whether the container asks to be privileged (`ctr --privileged`, a privileged pod).
pub fn is_privileged(_spec: &Spec) -> bool {
    false
}

pub fn apply_to_process(
    _policy: &Policy,
    _process: &mut Process,
    _privileged: bool,
    _container: &str,
    _exec_id: &str,
) -> Result<Report> {
    Ok(Report::default())
}
