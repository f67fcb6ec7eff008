//! `-info`: what containerd 2.x asks each runtime with `shim -info`, the runtime's options on
//! stdin, before it uses it. CRI reads the `features` (runc's own, from `runc features`) to tell
//! the kubelet whether the handler supports user namespaces, that is `hostUsers: false` pods
//! (they need "user" among the namespaces and idmapped mounts). crossarch runs containers
//! through runc, so it reports runc's features, as containerd's runc shim does.

use std::io::Write;

use containerd_shim::protos::{
    protobuf::{well_known_types::any::Any, Message, MessageField},
    types::introspection::{RuntimeInfo, RuntimeVersion},
};

use crate::{config, logger::RUNTIME};

/// The type URL containerd registers for runtime-spec's `features.Features`, whose `Any`
/// holds the JSON `runc features` prints.
pub const FEATURES_TYPE_URL: &str =
    "types.containerd.io/opencontainers/runtime-spec/1/features/Features";

/// The info for runtime options `options`, with `features` (the JSON of `runc features`)
/// when runc gave them.
pub fn runtime_info(options: Option<Any>, features: Option<Vec<u8>>) -> RuntimeInfo {
    RuntimeInfo {
        name: RUNTIME.to_string(),
        version: MessageField::some(RuntimeVersion {
            version: env!("CARGO_PKG_VERSION").to_string(),
            revision: option_env!("CROSSARCH_REVISION")
                .unwrap_or("unknown")
                .to_string(),
            ..Default::default()
        }),
        options: options.into(),
        features: features
            .map(|json| Any {
                type_url: FEATURES_TYPE_URL.to_string(),
                value: json,
                ..Default::default()
            })
            .into(),
        ..Default::default()
    }
}

/// The runtime options on stdin (an `Any`, as for the start action), if any.
pub fn options(input: &[u8]) -> Option<Any> {
    Any::parse_from_bytes(input)
        .ok()
        .filter(|a| !a.type_url.is_empty())
}

/// Whether `out` is a JSON object, as `runc features` prints.
fn is_features(out: &[u8]) -> bool {
    matches!(
        serde_json::from_slice::<serde_json::Value>(out),
        Ok(serde_json::Value::Object(_))
    )
}

/// Prints the info on stdout. A runc without `runc features` (before 1.1) gives info without
/// features: containerd then takes the handler for one without user namespace support.
pub fn main(input: &[u8]) -> i32 {
    let options = options(input);
    let config = match config::resolve(options.as_ref(), || {
        config::Config::load(&config::Config::default_file())
    }) {
        Ok(r) => r.config,
        Err(e) => {
            eprintln!("{RUNTIME}: -info: {e}");
            return 1;
        }
    };
    let runc = &config.runc.binary;
    let features = match std::process::Command::new(runc).arg("features").output() {
        Ok(out) if out.status.success() && is_features(&out.stdout) => Some(out.stdout),
        Ok(out) => {
            eprintln!(
                "{RUNTIME}: -info: `{runc} features` gave no features ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
            None
        }
        Err(e) => {
            eprintln!("{RUNTIME}: -info: cannot run `{runc} features`: {e}");
            None
        }
    };
    let bytes = match runtime_info(options, features).write_to_bytes() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{RUNTIME}: -info: cannot encode the runtime info: {e}");
            return 1;
        }
    };
    match std::io::stdout().lock().write_all(&bytes) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{RUNTIME}: -info: cannot write the runtime info: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_info_names_the_runtime_and_carries_runcs_features_and_the_options() {
        let opts = Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: vec![0x0a, 0x01, b'x'],
            ..Default::default()
        };
        let info = runtime_info(
            Some(opts.clone()),
            Some(br#"{"ociVersionMin":"1.0.0"}"#.to_vec()),
        );
        let back = RuntimeInfo::parse_from_bytes(&info.write_to_bytes().unwrap()).unwrap();
        assert_eq!(back.name, "io.containerd.crossarch.v2");
        assert_eq!(back.version.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(back.options.as_ref(), Some(&opts));
        assert_eq!(back.features.type_url, FEATURES_TYPE_URL);
        assert_eq!(back.features.value, br#"{"ociVersionMin":"1.0.0"}"#);
        assert!(runtime_info(None, None).features.is_none());
    }

    #[test]
    fn only_an_any_with_a_type_counts_as_options_and_only_an_object_as_features() {
        assert_eq!(options(b""), None);
        assert_eq!(options(b"\xff\xff"), None);
        let any = Any {
            type_url: "runtimeoptions.v1.Options".into(),
            ..Default::default()
        };
        assert_eq!(options(&any.write_to_bytes().unwrap()), Some(any));
        assert!(is_features(br#"{"linux":{"namespaces":["user"]}}"#));
        assert!(!is_features(b"runc: unknown command features"));
        assert!(!is_features(b"[]"));
    }
}
