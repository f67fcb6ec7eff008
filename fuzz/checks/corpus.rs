//! The files of a fuzz corpus (fuzz/corpus/<target>/), sorted by name, for the replay tests
//! of the crates beside fuzz/.

use std::path::{Path, PathBuf};

/// Each file of the `target` corpus: its name and its bytes.
pub fn files(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

/// Runs `check` on each file of the `target` corpus, which must hold at least `min` of them,
/// and names the seed that breaks a property. Returns the files.
#[allow(dead_code)] // Not every replay test checks properties beyond not panicking.
pub fn replay(target: &str, min: usize, check: impl Fn(&[u8])) -> Vec<(String, Vec<u8>)> {
    let files = files(target);
    assert!(files.len() >= min, "the {target} seed corpus is missing");
    for (name, data) in &files {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(data)))
            .unwrap_or_else(|_| panic!("{target} seed {name} breaks a property"));
    }
    files
}
