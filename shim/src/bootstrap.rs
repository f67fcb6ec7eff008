//! What the start action reads on stdin and answers on stdout, in both of containerd's start
//! protocols.
//!
//! - **Bootstrap (containerd 2.3 and later).** stdin carries a protobuf `BootstrapParams`
//!   (`api/runtime/bootstrap/v1`): the id, namespace, containerd's addresses, a log level, an
//!   optional socket directory, and the runtime handler's options as an extension (the same
//!   `Any` older containerds wrote alone). The answer is a protobuf `BootstrapResult`.
//! - **Legacy (containerd 1.6 to 2.2).** The flags and environment say everything; stdin is
//!   empty or carries the runtime options as a bare `Any`. The answer is the bare address,
//!   which containerd 1.6 and 1.7 need (they take stdout as the address, whatever it is).
//!
//! Both are binary protobuf, and an `Any` (type_url = 1, value = 2) often decodes as a
//! `BootstrapParams` (instance_id = 1, namespace = 2). So, as containerd's own shim library
//! does since it met that ambiguity, the input counts as `BootstrapParams` only when it
//! decodes and its id and namespace are the ones on the command line, which containerd 2.3
//! still passes. Anything else (empty, garbage, too long, an `Any` of options) is the legacy
//! protocol: the start action never fails over what it finds on stdin.
//!
//! Everything here is pure, so that it can be unit-tested and fuzzed; the bytes come from
//! containerd but are treated as untrusted.

use std::io::Read;

use containerd_shim::protos::{
    protobuf::{well_known_types::any::Any, Message},
    shim::oci::Options as RuncOptions,
};
use crossarch_protos::bootstrap::{BootstrapParams, BootstrapResult};
use log::LevelFilter;

/// The most the start action reads from stdin. containerd's messages are a few KB (a CRI
/// handler's options are a small TOML table); ttrpc itself refuses messages over 4 MiB.
pub const INPUT_LIMIT: usize = 4 << 20;

/// Where shim sockets go when containerd names no directory (as runc-v2 and containerd do).
pub const DEFAULT_SOCKET_DIR: &str = "/run/containerd/s";

/// The longest socket directory: a socket is named by a 64-digit hash, and a unix socket path
/// has 107 bytes (containerd refuses a longer `socket_dir` for the same reason).
pub const SOCKET_DIR_MAX: usize = 42;

/// The Task API version crossarch serves: v2, which containerd 1.6, 1.7 and 2.x accept.
pub const TASK_API_VERSION: i32 = 2;

/// containerd's `LogLevel` values (an open enum).
pub mod level {
    pub const TRACE: i32 = -8;
    pub const DEBUG: i32 = -4;
    pub const INFO: i32 = 0;
    pub const WARN: i32 = 4;
    pub const ERROR: i32 = 8;
    pub const FATAL: i32 = 10;
    pub const PANIC: i32 = 12;
}

/// What the start action got on its command line and in its environment.
#[derive(Clone, Debug, Default)]
pub struct Flags<'a> {
    pub id: &'a str,
    pub namespace: &'a str,
    /// `-address`: containerd's gRPC socket.
    pub address: &'a str,
    /// `TTRPC_ADDRESS`.
    pub ttrpc_address: &'a str,
    pub debug: bool,
}

/// Which protocol the start action answers in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Legacy,
    Bootstrap,
}

/// What the start action goes by, from whichever protocol containerd spoke.
#[derive(Clone, Debug, PartialEq)]
pub struct Start {
    pub protocol: Protocol,
    pub id: String,
    pub namespace: String,
    /// containerd's gRPC address, which also names the shim's socket.
    pub grpc_address: String,
    /// containerd's ttrpc address, where events go.
    pub ttrpc_address: String,
    /// The level containerd asked the shim to log at.
    pub level: LevelFilter,
    /// The directory containerd wants the socket in, as it sent it (checked by
    /// [`Start::socket_address`]).
    pub socket_dir: Option<String>,
    /// The runtime handler's options: runc's `Options`, CRI's `runtimeoptions.v1.Options`, ...
    pub options: Option<Any>,
    /// The containerd that sent `BootstrapParams`; empty for the legacy protocol.
    pub containerd_version: String,
}

/// containerd's log level as the shim's: the nearest known level, as the protocol asks of an
/// unknown value (halfway between two goes to the more verbose one). FATAL and PANIC, which
/// the shim never logs at, keep errors.
pub fn log_level(v: i32) -> LevelFilter {
    match v {
        i32::MIN..=-6 => LevelFilter::Trace,
        -5..=-2 => LevelFilter::Debug,
        -1..=2 => LevelFilter::Info,
        3..=6 => LevelFilter::Warn,
        _ => LevelFilter::Error,
    }
}

/// The type URL without the `type.googleapis.com/`-style prefix containerd may give it.
fn type_name(url: &str) -> &str {
    url.rsplit_once('/').map_or(url, |(_, name)| name)
}

/// The message types containerd sends as a runtime handler's options.
const OPTIONS_TYPES: &[&str] = &[
    "containerd.runc.v1.Options",
    "io.containerd.runc.v1.Options",
    crossarch_protos::RUNTIME_OPTIONS_TYPE_URL,
    crossarch_protos::CREATE_OPTIONS_TYPE_URL,
];

/// runc's `Options` (for the shim's cgroup), when `options` are those.
pub fn runc_options(options: Option<&Any>) -> Option<RuncOptions> {
    let any = options?;
    let name = type_name(&any.type_url);
    if !OPTIONS_TYPES[..2].contains(&name) {
        return None;
    }
    RuncOptions::parse_from_bytes(&any.value).ok()
}

/// Reads what containerd wrote on stdin: at most [`INPUT_LIMIT`] + 1 bytes (more is not
/// understood, see [`decide`]). A read error counts as nothing written.
pub fn read_input(r: impl Read) -> Vec<u8> {
    let mut input = Vec::new();
    match r.take(INPUT_LIMIT as u64 + 1).read_to_end(&mut input) {
        Ok(_) => input,
        Err(_) => Vec::new(),
    }
}

fn legacy(input: &[u8], flags: &Flags) -> Start {
    let options = if input.is_empty() || input.len() > INPUT_LIMIT {
        None
    } else {
        Any::parse_from_bytes(input)
            .ok()
            .filter(|a| !a.type_url.is_empty())
    };
    Start {
        protocol: Protocol::Legacy,
        id: flags.id.into(),
        namespace: flags.namespace.into(),
        grpc_address: flags.address.into(),
        ttrpc_address: flags.ttrpc_address.into(),
        level: if flags.debug {
            LevelFilter::Debug
        } else {
            LevelFilter::Info
        },
        socket_dir: None,
        options,
        containerd_version: String::new(),
    }
}

/// A value from the command line must match the one in `BootstrapParams`; one absent from
/// the command line must be present there.
fn same(cli: &str, param: &str) -> bool {
    if cli.is_empty() {
        !param.is_empty()
    } else {
        cli == param
    }
}

/// Decides which protocol containerd spoke from what it wrote on stdin, and what the start
/// action then goes by.
pub fn decide(input: &[u8], flags: &Flags) -> Start {
    if input.is_empty() || input.len() > INPUT_LIMIT {
        return legacy(input, flags);
    }
    let Ok(params) = BootstrapParams::parse_from_bytes(input) else {
        return legacy(input, flags);
    };
    if !same(flags.id, &params.instance_id) || !same(flags.namespace, &params.namespace) {
        return legacy(input, flags);
    }
    let or = |param: &str, cli: &str| {
        if param.is_empty() {
            cli.to_string()
        } else {
            param.to_string()
        }
    };
    let options = params
        .extensions
        .iter()
        .filter_map(|e| e.value.as_ref())
        .find(|a| OPTIONS_TYPES.contains(&type_name(&a.type_url)))
        .cloned();
    Start {
        protocol: Protocol::Bootstrap,
        grpc_address: or(&params.containerd_grpc_address, flags.address),
        ttrpc_address: or(&params.containerd_ttrpc_address, flags.ttrpc_address),
        level: log_level(params.log_level),
        socket_dir: params.socket_dir.clone().filter(|d| !d.is_empty()),
        options,
        containerd_version: params.containerd_version.clone(),
        id: params.instance_id,
        namespace: params.namespace,
    }
}

impl Start {
    /// The socket of the shim serving `group`: named as containerd and runc-v2 name it (the
    /// SHA-256 of containerd's address, the namespace and the group), in the directory
    /// containerd asked for. Err says what is wrong with that directory and what to do.
    pub fn socket_address(&self, group: &str) -> Result<String, String> {
        let default = containerd_shim::socket_address(&self.grpc_address, &self.namespace, group);
        let Some(dir) = &self.socket_dir else {
            return Ok(default);
        };
        let fix = "set socket_dir in the [plugins.\"io.containerd.shim.v1.manager\"] table of \
                   containerd's config to a short absolute path, or remove it";
        if !dir.starts_with('/') || dir.contains('\0') {
            return Err(format!(
                "containerd asked for the shim's socket in {dir:?}, which is not an absolute \
                 path; {fix}"
            ));
        }
        let dir = dir.trim_end_matches('/');
        let dir = if dir.is_empty() { "/" } else { dir };
        if dir.len() > SOCKET_DIR_MAX {
            return Err(format!(
                "containerd asked for the shim's socket in {dir:?}, which is longer than the \
                 {SOCKET_DIR_MAX} bytes a unix socket path leaves for it; {fix}"
            ));
        }
        let hash = default.rsplit('/').next().unwrap_or_default();
        Ok(format!(
            "unix://{}/{hash}",
            if dir == "/" { "" } else { dir }
        ))
    }

    /// What the start action prints: the bare address (legacy), or a `BootstrapResult`.
    pub fn reply(&self, address: &str) -> Vec<u8> {
        match self.protocol {
            Protocol::Legacy => address.as_bytes().to_vec(),
            Protocol::Bootstrap => {
                let result = BootstrapResult {
                    version: TASK_API_VERSION,
                    address: address.into(),
                    protocol: "ttrpc".into(),
                    ..Default::default()
                };
                // Encoding a message of three plain fields cannot fail.
                result.write_to_bytes().unwrap_or_default()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim::protos::protobuf::MessageField;
    use crossarch_protos::{bootstrap::Extension, runtimeoptions::Options as RuntimeOptions};

    const GRPC: &str = "/run/containerd/containerd.sock";

    fn flags() -> Flags<'static> {
        Flags {
            id: "web",
            namespace: "k8s.io",
            address: GRPC,
            ttrpc_address: "/run/containerd/containerd.sock.ttrpc",
            debug: false,
        }
    }

    fn runc_any(opts: &RuncOptions) -> Any {
        Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: opts.write_to_bytes().unwrap(),
            ..Default::default()
        }
    }

    /// `BootstrapParams` as containerd 2.3's `pkg/shim.Command` fills it.
    fn params(options: Option<Any>) -> BootstrapParams {
        BootstrapParams {
            instance_id: "web".into(),
            namespace: "k8s.io".into(),
            log_level: level::INFO,
            containerd_version: "v2.3.4".into(),
            containerd_grpc_address: GRPC.into(),
            containerd_ttrpc_address: "/run/containerd/containerd.sock.ttrpc".into(),
            containerd_binary: "/usr/bin/containerd".into(),
            extensions: options
                .map(|a| Extension {
                    value: MessageField::some(a),
                    ..Default::default()
                })
                .into_iter()
                .collect(),
            socket_dir: Some("/run/containerd/s".into()),
            ..Default::default()
        }
    }

    #[test]
    fn bootstrap_params_are_read() {
        let opts = RuncOptions {
            binary_name: "/opt/runc".into(),
            systemd_cgroup: true,
            shim_cgroup: "/pods/shim".into(),
            ..Default::default()
        };
        let mut p = params(Some(runc_any(&opts)));
        p.log_level = level::DEBUG;
        p.containerd_ttrpc_address = "/other.ttrpc".into();
        let s = decide(&p.write_to_bytes().unwrap(), &flags());
        assert_eq!(s.protocol, Protocol::Bootstrap);
        assert_eq!((s.id.as_str(), s.namespace.as_str()), ("web", "k8s.io"));
        assert_eq!(s.ttrpc_address, "/other.ttrpc");
        assert_eq!(s.grpc_address, GRPC);
        assert_eq!(s.level, LevelFilter::Debug);
        assert_eq!(s.containerd_version, "v2.3.4");
        assert_eq!(runc_options(s.options.as_ref()), Some(opts));
        // The address is runc-v2's for the same group, in the directory asked for.
        let default = containerd_shim::socket_address(GRPC, "k8s.io", "pod1");
        assert_eq!(s.socket_address("pod1").unwrap(), default);
        assert!(default.starts_with("unix:///run/containerd/s/"));
    }

    #[test]
    fn cri_options_and_other_extensions() {
        let cri = RuntimeOptions {
            type_url: "io.containerd.crossarch.v2".into(),
            config_path: "/etc/crossarch/handler.toml".into(),
            ..Default::default()
        };
        let cri = Any {
            type_url: crossarch_protos::RUNTIME_OPTIONS_TYPE_URL.into(),
            value: cri.write_to_bytes().unwrap(),
            ..Default::default()
        };
        let mut p = params(None);
        // An extension of a kind crossarch does not know comes first; it is passed over.
        for a in [
            Any {
                type_url: "containerd.io/nri.v1.PluginConfig".into(),
                value: b"\x0a\x01x".to_vec(),
                ..Default::default()
            },
            cri.clone(),
        ] {
            p.extensions.push(Extension {
                value: MessageField::some(a),
                ..Default::default()
            });
        }
        let s = decide(&p.write_to_bytes().unwrap(), &flags());
        assert_eq!(s.protocol, Protocol::Bootstrap);
        assert_eq!(s.options, Some(cri));
        assert_eq!(runc_options(s.options.as_ref()), None);
    }

    #[test]
    fn legacy_input_stays_legacy() {
        let opts = RuncOptions {
            shim_cgroup: "/pods/shim".into(),
            ..Default::default()
        };
        let any = runc_any(&opts);
        let bytes = any.write_to_bytes().unwrap();
        // The ambiguity: a legacy Any decodes as BootstrapParams, with the type URL as its id.
        let as_params = BootstrapParams::parse_from_bytes(&bytes).unwrap();
        assert_eq!(as_params.instance_id, "containerd.runc.v1.Options");
        for (what, debug) in [("without -debug", false), ("with -debug", true)] {
            let f = Flags { debug, ..flags() };
            let s = decide(&bytes, &f);
            assert_eq!(s.protocol, Protocol::Legacy, "{what}");
            assert_eq!(s.options.as_ref(), Some(&any));
            assert_eq!(runc_options(s.options.as_ref()), Some(opts.clone()));
            let want = if debug {
                LevelFilter::Debug
            } else {
                LevelFilter::Info
            };
            assert_eq!(s.level, want);
            assert_eq!((s.id.as_str(), s.grpc_address.as_str()), ("web", GRPC));
            assert_eq!(
                s.reply("unix:///run/containerd/s/ab"),
                b"unix:///run/containerd/s/ab"
            );
        }
        for input in [
            &b""[..],
            b"\xff\xfe garbage",
            b"{\"version\":2}",
            b"\x0a\x03web\x12\x06k8s.i", // cut short
            b"\x0a\x03web\x12",
        ] {
            let s = decide(input, &flags());
            assert_eq!(s.protocol, Protocol::Legacy, "{input:?}");
            assert_eq!(s.options, None, "{input:?}");
        }
    }

    #[test]
    fn params_of_another_container_are_not_taken() {
        for (id, ns) in [("other", "k8s.io"), ("web", "default"), ("", "k8s.io")] {
            let mut p = params(None);
            p.instance_id = id.into();
            p.namespace = ns.into();
            let s = decide(&p.write_to_bytes().unwrap(), &flags());
            assert_eq!(s.protocol, Protocol::Legacy, "{id}/{ns}");
            assert_eq!(s.id, "web");
        }
        // Without the flags, the params say who the shim is for.
        let no_flags = Flags::default();
        let s = decide(&params(None).write_to_bytes().unwrap(), &no_flags);
        assert_eq!(s.protocol, Protocol::Bootstrap);
        assert_eq!((s.id.as_str(), s.grpc_address.as_str()), ("web", GRPC));
    }

    #[test]
    fn too_much_input_is_not_read_as_options() {
        let mut p = params(None);
        p.containerd_binary = "x".repeat(INPUT_LIMIT);
        let bytes = p.write_to_bytes().unwrap();
        assert!(bytes.len() > INPUT_LIMIT);
        let read = read_input(&bytes[..]);
        assert_eq!(read.len(), INPUT_LIMIT + 1);
        assert_eq!(decide(&read, &flags()).protocol, Protocol::Legacy);
    }

    /// What containerd 2.3.4 wrote on the start action's stdin on this project's machine, for
    /// `ctr -n wt23 run --runtime io.containerd.crossarch.v2 --runtime-config-path
    /// /etc/crossarch/handler.toml ... web`, with its log level at debug and `socket_dir`
    /// set, and the address it then connected to.
    const CONTAINERD_2_3_4: &str = "0a0377656212047774323318fcffffffffffffffff01220676322e332e342a162f746d702f777432332f632e736f636b2e747472706332102f746d702f777432332f632e736f636b3a1f2f746d702f77742d626f6f742d6374642f62696e2f636f6e7461696e657264423c0a3a0a1972756e74696d656f7074696f6e732e76312e4f7074696f6e73121d121b2f6574632f63726f7373617263682f68616e646c65722e746f6d6c4a0b2f746d702f777432332f73";
    const CONTAINERD_2_3_4_ADDRESS: &str =
        "unix:///tmp/wt23/s/7a1f5fe4c8f5a270e703e838f90cc7c8b45ffb3660fb645e8284e3c804461fa8";

    #[test]
    fn what_containerd_2_3_4_sent() {
        let hex = CONTAINERD_2_3_4.as_bytes();
        let input: Vec<u8> = hex
            .chunks(2)
            .map(|b| u8::from_str_radix(std::str::from_utf8(b).unwrap(), 16).unwrap())
            .collect();
        let f = Flags {
            id: "web",
            namespace: "wt23",
            address: "/tmp/wt23/c.sock",
            ttrpc_address: "/tmp/wt23/c.sock.ttrpc",
            debug: true,
        };
        let s = decide(&input, &f);
        assert_eq!(s.protocol, Protocol::Bootstrap);
        assert_eq!(s.level, LevelFilter::Debug);
        assert_eq!(s.containerd_version, "v2.3.4");
        assert_eq!(s.ttrpc_address, "/tmp/wt23/c.sock.ttrpc");
        assert_eq!(s.socket_dir.as_deref(), Some("/tmp/wt23/s"));
        let options = s.options.as_ref().unwrap();
        assert_eq!(options.type_url, crossarch_protos::RUNTIME_OPTIONS_TYPE_URL);
        let cri = RuntimeOptions::parse_from_bytes(&options.value).unwrap();
        assert_eq!(cri.config_path, "/etc/crossarch/handler.toml");
        assert_eq!(s.socket_address("web").unwrap(), CONTAINERD_2_3_4_ADDRESS);
    }

    #[test]
    fn log_levels_map_to_the_nearest() {
        use LevelFilter::*;
        for (v, want) in [
            (level::TRACE, Trace),
            (-100, Trace),
            (i32::MIN, Trace),
            (-7, Trace),
            (-6, Trace),
            (level::DEBUG, Debug),
            (-2, Debug),
            (-1, Info),
            (level::INFO, Info),
            (2, Info),
            (3, Warn),
            (level::WARN, Warn),
            (7, Error),
            (level::ERROR, Error),
            (level::FATAL, Error),
            (level::PANIC, Error),
            (i32::MAX, Error),
        ] {
            assert_eq!(log_level(v), want, "{v}");
        }
    }

    #[test]
    fn socket_dir_is_checked() {
        let mut s = decide(&params(None).write_to_bytes().unwrap(), &flags());
        let hash = containerd_shim::socket_address(GRPC, "k8s.io", "g")
            .rsplit('/')
            .next()
            .unwrap()
            .to_string();
        assert_eq!(hash.len(), 64);
        for (dir, want) in [
            ("/tmp/cx/s", format!("unix:///tmp/cx/s/{hash}")),
            ("/tmp/cx/s/", format!("unix:///tmp/cx/s/{hash}")),
            ("/", format!("unix:///{hash}")),
        ] {
            s.socket_dir = Some(dir.into());
            assert_eq!(s.socket_address("g").unwrap(), want, "{dir}");
        }
        for (dir, what) in [
            ("run/s", "not an absolute path"),
            (&*format!("/{}", "d".repeat(SOCKET_DIR_MAX)), "longer than"),
        ] {
            s.socket_dir = Some(dir.into());
            let e = s.socket_address("g").unwrap_err();
            assert!(e.contains(what) && e.contains("socket_dir"), "{e}");
        }
    }

    #[test]
    fn the_result_is_what_containerd_decodes() {
        let s = decide(&params(None).write_to_bytes().unwrap(), &flags());
        let address = "unix:///run/containerd/s/0123";
        let bytes = s.reply(address);
        let r = BootstrapResult::parse_from_bytes(&bytes).unwrap();
        assert_eq!((r.version, r.address.as_str()), (2, address));
        assert_eq!(r.protocol, "ttrpc");
        // containerd 2.3.0 to 2.3.3 trim white space off the reply before decoding it.
        assert!(!bytes[0].is_ascii_whitespace() && !bytes.last().unwrap().is_ascii_whitespace());
        // Field by field, as Go's encoder writes it.
        let mut want = vec![0x08, 2, 0x12, address.len() as u8];
        want.extend_from_slice(address.as_bytes());
        want.extend_from_slice(b"\x1a\x05ttrpc");
        assert_eq!(bytes, want);
    }
}
