//! What containerd's own config says about crossarch: which CRI runtime handlers run it.
//! Only Kubernetes needs one (a RuntimeClass names a handler); `ctr run --runtime` and
//! `nerdctl run --runtime` name the runtime type itself.

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
}

/// What a containerd config holds for crossarch.
#[derive(Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Found {
    pub handlers: Vec<Handler>,
    /// Its `imports`: other files containerd merges in, which this does not read.
    pub imports: Vec<String>,
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
                layout: 2
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
                layout: 3
            }]
        );
        assert_eq!(found.imports, ["/etc/containerd/conf.d/*.toml"]);
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
