//! Namespace identity, for edits that depend on which namespace a container joins.

use std::os::unix::fs::MetadataExt;

/// Whether two namespace paths name the same namespace.
pub fn same_namespace(a: &str, b: &str) -> bool {
    let ino = |p: &str| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    matches!((ino(a), ino(b)), (Some(x), Some(y)) if x == y)
}
