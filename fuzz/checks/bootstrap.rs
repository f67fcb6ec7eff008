//! The property checks of the `bootstrap` fuzz target, shared with the corpus replay test
//! (shim/tests/bootstrap_corpus.rs) so CI runs the very same checks on stable Rust.
//!
//! The input is what containerd writes on the start action's stdin. The first byte picks how
//! the rest is used:
//!
//! - even: as it is;
//! - odd: after the id and namespace fields the command line names, so that most inputs take
//!   the bootstrap path and the fuzzer explores what follows them (log level, extensions,
//!   socket_dir, unknown fields).
//!
//! Properties, beyond not panicking: the protocol is the bootstrap one exactly when the input
//! decodes as `BootstrapParams` naming the command line's container; the legacy one keeps the
//! command line's values and answers with the bare address; a bootstrap answer decodes as a
//! `BootstrapResult` of version 2 over ttrpc with that address; a socket address is always
//! `unix://` + a directory of at most 42 bytes + a 64-digit hash, or an error that says which
//! setting to fix.

use containerd_shim::protos::protobuf::Message;
use crossarch_protos::bootstrap::{BootstrapParams, BootstrapResult};
use crossarch_shim::bootstrap::{decide, Flags, Protocol, INPUT_LIMIT, SOCKET_DIR_MAX};

const ID: &str = "web";
const NAMESPACE: &str = "k8s.io";
/// The id and namespace fields, encoded.
const PREFIX: &[u8] = b"\x0a\x03web\x12\x06k8s.io";

fn flags() -> Flags<'static> {
    Flags {
        id: ID,
        namespace: NAMESPACE,
        address: "/run/containerd/containerd.sock",
        ttrpc_address: "/run/containerd/containerd.sock.ttrpc",
        debug: false,
    }
}

pub fn check(data: &[u8]) {
    let input = match data.split_first() {
        Some((mode, rest)) if mode % 2 == 1 => [PREFIX, rest].concat(),
        Some((_, rest)) => rest.to_vec(),
        None => Vec::new(),
    };
    let f = flags();
    let s = decide(&input, &f);
    let params = (input.len() <= INPUT_LIMIT && !input.is_empty())
        .then(|| BootstrapParams::parse_from_bytes(&input).ok())
        .flatten();
    let ours = params
        .as_ref()
        .is_some_and(|p| p.instance_id == ID && p.namespace == NAMESPACE);
    assert_eq!(s.protocol == Protocol::Bootstrap, ours, "{input:?}");
    assert_eq!((s.id.as_str(), s.namespace.as_str()), (ID, NAMESPACE));
    match s.protocol {
        Protocol::Legacy => {
            assert_eq!(s.grpc_address, f.address);
            assert_eq!(s.ttrpc_address, f.ttrpc_address);
            assert_eq!(s.socket_dir, None);
            assert_eq!(
                s.reply("unix:///run/containerd/s/x"),
                b"unix:///run/containerd/s/x"
            );
        }
        Protocol::Bootstrap => {
            let p = params.unwrap();
            if !p.containerd_grpc_address.is_empty() {
                assert_eq!(s.grpc_address, p.containerd_grpc_address);
            }
            let reply = s.reply("unix:///run/containerd/s/x");
            let r = BootstrapResult::parse_from_bytes(&reply).unwrap();
            assert_eq!(
                (r.version, r.address.as_str()),
                (2, "unix:///run/containerd/s/x")
            );
            assert_eq!(r.protocol, "ttrpc");
        }
    }
    match s.socket_address("group") {
        Ok(a) => {
            let rest = a.strip_prefix("unix://").expect("a unix:// address");
            let (dir, hash) = rest.rsplit_once('/').unwrap();
            assert!(dir.len() <= SOCKET_DIR_MAX, "{a}");
            assert!(dir.is_empty() || dir.starts_with('/'), "{a}");
            assert!(
                hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
                "{a}"
            );
            assert!(rest.len() < 108, "{a}");
        }
        Err(e) => {
            assert!(s.socket_dir.is_some(), "{e}");
            assert!(
                e.contains("socket_dir") && e.len() < 1024 + 10 * input.len(),
                "{e}"
            );
        }
    }
}
