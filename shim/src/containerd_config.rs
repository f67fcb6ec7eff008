//! What containerd's own config says about crossarch: which CRI runtime handlers run it.
//! Only Kubernetes needs one (a RuntimeClass names a handler); `ctr run --runtime` and
//! `nerdctl run --runtime` name the runtime type itself.

use std::path::{Path, PathBuf};

/// Where containerd reads its config unless started with `--config`.
pub const DEFAULT_PATH: &str = "/etc/containerd/config.toml";

/// The CRI plugin tables that hold `containerd.runtimes.<handler>`, by config layout:
/// version 2 (containerd 1.6, 1.7; 2.x migrates it) and version 3 (containerd 2.x).
const RUNTIME_TABLES: &[(&str, u32)] = &[(CRI_PLUGIN_V2, 2), (CRI_PLUGIN_V3, 3)];

/// The plugin of a version 2 config (containerd 1.6, 1.7) that holds the CRI runtimes.
pub const CRI_PLUGIN_V2: &str = "io.containerd.grpc.v1.cri";

/// The plugin of a version 3 config (containerd 2.x) that holds the CRI runtimes.
pub const CRI_PLUGIN_V3: &str = "io.containerd.cri.v1.runtime";

/// A handler whose `runtime_type` is crossarch's.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Handler {
    pub name: String,
    /// The config layout it was found in: 2 or 3.
    pub layout: u32,
    /// Whether it has an `options` table. For a runtime type other than runc's, CRI turns
    /// one into a `runtimeoptions.v1.Options`, and containerd 2.0 to 2.3 then fail to start
    /// any container of a pod with a user namespace of its own (`hostUsers: false`): "can't
    /// unmarshal type runtimeoptions.v1.Options to output containerd.runc.v1.Options".
    pub options: bool,
}

/// What a containerd config holds for crossarch.
#[derive(Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Found {
    pub handlers: Vec<Handler>,
    /// Its `imports`: other files containerd merges in, as written.
    pub imports: Vec<String>,
    /// The imported files that were read ([`read`]), in containerd's order.
    pub imported: Vec<String>,
}

/// How deep `imports` are followed: containerd follows them recursively too.
const MAX_IMPORT_DEPTH: usize = 8;

/// The crossarch handlers in the containerd config at `path` and in the files it imports
/// (recursively, in order; a later file's handler of the same name replaces an earlier
/// one, as containerd merges them). `None` when `path` does not exist. An import is a path,
/// relative to the importing file's directory unless absolute, whose last component may
/// hold `*` and `?`; one that matches nothing is skipped, as containerd skips it.
pub fn read(path: &Path, runtime_type: &str) -> Option<Result<Found, String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => return Some(Err(e.to_string())),
    };
    let mut found = match handlers(&text, runtime_type) {
        Ok(f) => f,
        Err(e) => return Some(Err(e)),
    };
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let mut seen = vec![canonical(path)];
    let mut pending: Vec<(PathBuf, Vec<String>, usize)> = vec![(
        path.parent().unwrap_or(Path::new("/")).to_path_buf(),
        found.imports.clone(),
        1,
    )];
    while let Some((dir, imports, depth)) = pending.pop() {
        for import in imports {
            for file in expand(&dir.join(&import)) {
                let file = canonical(&file);
                if seen.contains(&file) || depth > MAX_IMPORT_DEPTH {
                    continue;
                }
                seen.push(file.clone());
                let sub = std::fs::read_to_string(&file)
                    .map_err(|e| e.to_string())
                    .and_then(|t| handlers(&t, runtime_type))
                    .map_err(|e| format!("{} (imported): {e}", file.display()));
                let sub = match sub {
                    Ok(s) => s,
                    Err(e) => return Some(Err(e)),
                };
                found.imported.push(file.display().to_string());
                for h in sub.handlers {
                    found.handlers.retain(|old| old.name != h.name);
                    found.handlers.push(h);
                }
                pending.push((
                    file.parent().unwrap_or(Path::new("/")).to_path_buf(),
                    sub.imports,
                    depth + 1,
                ));
            }
        }
    }
    Some(Ok(found))
}

/// The files `pattern` names: itself when it has no wildcard, else the entries of its
/// directory whose names match its last component, sorted (as Go's filepath.Glob sorts).
fn expand(pattern: &Path) -> Vec<PathBuf> {
    let name = pattern
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let Some(name) = name.filter(|n| n.contains(['*', '?'])) else {
        return if pattern.is_file() {
            vec![pattern.to_path_buf()]
        } else {
            Vec::new()
        };
    };
    let dir = pattern.parent().unwrap_or(Path::new("/"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| wildcard_match(&name, &e.file_name().to_string_lossy()))
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Whether `name` matches `pattern`, where `*` is any run of characters and `?` one.
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // The classic two-pointer match with backtracking to the last `*`.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

/// The crossarch handlers in containerd config `text`.
pub fn handlers(text: &str, runtime_type: &str) -> Result<Found, String> {
    let doc: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| e.message().to_string())?;
    let mut found = Found::default();
    if let Some(imports) = doc.get("imports").and_then(|v| v.as_array()) {
        found.imports = imports
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
    }
    let plugins = doc.get("plugins").and_then(|p| p.as_table());
    for (plugin, layout) in RUNTIME_TABLES {
        let runtimes = plugins
            .and_then(|p| p.get(*plugin))
            .and_then(|c| c.get("containerd"))
            .and_then(|c| c.get("runtimes"))
            .and_then(|r| r.as_table());
        for (name, runtime) in runtimes.into_iter().flatten() {
            if runtime.get("runtime_type").and_then(|t| t.as_str()) == Some(runtime_type) {
                found.handlers.push(Handler {
                    name: name.clone(),
                    layout: *layout,
                    options: runtime.get("options").is_some(),
                });
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TYPE: &str = "io.containerd.crossarch.v2";

    #[test]
    fn finds_the_handler_in_both_layouts() {
        let v2 = r#"
version = 2
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.crossarch]
  runtime_type = "io.containerd.crossarch.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.crossarch.options]
    ConfigPath = "/etc/crossarch/crossarch-handler.toml"
"#;
        assert_eq!(
            handlers(v2, TYPE).unwrap().handlers,
            [Handler {
                name: "crossarch".into(),
                layout: 2,
                options: true,
            }]
        );
        let v3 = r#"
version = 3
imports = ["/etc/containerd/conf.d/*.toml"]
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.multiarch]
  runtime_type = 'io.containerd.crossarch.v2'
"#;
        let found = handlers(v3, TYPE).unwrap();
        assert_eq!(
            found.handlers,
            [Handler {
                name: "multiarch".into(),
                layout: 3,
                options: false,
            }]
        );
        assert_eq!(found.imports, ["/etc/containerd/conf.d/*.toml"]);
    }

    #[test]
    fn wildcards_match_as_globs_do_in_one_component() {
        for (p, n, want) in [
            ("*.toml", "crossarch.toml", true),
            ("*.toml", "crossarch.toml.bak", false),
            ("10-?.toml", "10-a.toml", true),
            ("10-?.toml", "10-ab.toml", false),
            ("*", "", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("plain", "plain", true),
        ] {
            assert_eq!(wildcard_match(p, n), want, "{p} {n}");
        }
    }

    #[test]
    fn imports_are_read_relative_to_their_file_recursively_and_once() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("conf.d")).unwrap();
        std::fs::write(
            d.join("config.toml"),
            "version = 3\nimports = [\"conf.d/*.toml\", \"missing.toml\"]\n",
        )
        .unwrap();
        let handler = |name: &str| {
            format!(
                "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.{name}]\n\
                 runtime_type = '{TYPE}'\n"
            )
        };
        std::fs::write(
            d.join("conf.d/20-crossarch.toml"),
            format!(
                "imports = [\"../more.toml\", \"../config.toml\"]\n{}",
                handler("crossarch")
            ),
        )
        .unwrap();
        std::fs::write(d.join("conf.d/10-other.toml.disabled"), handler("nope")).unwrap();
        std::fs::write(d.join("more.toml"), handler("crossarch-arm64")).unwrap();
        let found = read(&d.join("config.toml"), TYPE).unwrap().unwrap();
        let names: Vec<_> = found.handlers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["crossarch", "crossarch-arm64"]);
        assert_eq!(
            found.imported,
            [
                d.join("conf.d/20-crossarch.toml").display().to_string(),
                d.join("more.toml").display().to_string(),
            ],
            "the main config imported back is not read twice"
        );
        std::fs::write(d.join("more.toml"), "[broken").unwrap();
        let err = read(&d.join("config.toml"), TYPE).unwrap().unwrap_err();
        assert!(err.contains("more.toml (imported)"), "{err}");
        assert!(read(&d.join("absent.toml"), TYPE).is_none());
    }

    #[test]
    fn no_handler_and_broken_configs() {
        let runc_only = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\nruntime_type = \"io.containerd.runc.v2\"\n";
        assert_eq!(handlers(runc_only, TYPE).unwrap(), Found::default());
        assert_eq!(handlers("", TYPE).unwrap(), Found::default());
        // A v3 handler table in a v2 plugin's place is not where containerd looks.
        let misplaced = "[plugins.\"io.containerd.grpc.v1.cri\".runtimes.crossarch]\nruntime_type = \"io.containerd.crossarch.v2\"\n";
        assert!(handlers(misplaced, TYPE).unwrap().handlers.is_empty());
        assert!(handlers("[plugins\nversion =", TYPE).is_err());
    }
}
