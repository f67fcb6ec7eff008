//! Messages that reach the shim as `Any` and are not part of `containerd-shim-protos`.

#[allow(
    clippy::all,
    missing_docs,
    unused_attributes,
    unused_mut,
    non_upper_case_globals
)]
pub mod runtimeoptions {
    include!(concat!(env!("OUT_DIR"), "/runtimeoptions.rs"));
}

#[allow(
    clippy::all,
    missing_docs,
    unused_attributes,
    unused_mut,
    non_upper_case_globals
)]
pub mod runctypes {
    include!(concat!(env!("OUT_DIR"), "/runctypes.rs"));
}

#[allow(
    clippy::all,
    missing_docs,
    unused_attributes,
    unused_mut,
    non_upper_case_globals
)]
pub mod bootstrap {
    include!(concat!(env!("OUT_DIR"), "/bootstrap.rs"));
}

/// The type URL of the legacy task options containerd's client sends to non-runc runtimes.
pub const CREATE_OPTIONS_TYPE_URL: &str = "containerd.linux.runc.CreateOptions";

/// The type URL CRI gives `runtimeoptions.v1.Options`.
pub const RUNTIME_OPTIONS_TYPE_URL: &str = "runtimeoptions.v1.Options";

#[cfg(test)]
mod tests {
    use super::runtimeoptions::Options;
    use protobuf::Message;

    #[test]
    fn round_trips_config_body() {
        let opts = Options {
            config_body: "emulation = \"auto\"\n".into(),
            ..Default::default()
        };
        let bytes = opts.write_to_bytes().unwrap();
        let back = Options::parse_from_bytes(&bytes).unwrap();
        assert_eq!(back.config_body, "emulation = \"auto\"\n");
    }
}
