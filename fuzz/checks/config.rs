//! The property checks of the `config` fuzz target, shared with the corpus replay test
//! (shim/tests/config_corpus.rs) so CI runs the very same checks on stable Rust.
//!
//! The first byte picks what the rest of the input is:
//!
//! - 0: the text of a crossarch config file, given to `Config::parse`.
//! - 1: the value of a runtime `options` Any whose type URL the second byte picks among the
//!   ones containerd sends (and one it does not), given to `config::resolve`.
//! - 2: the TOML body of a CRI `runtimeoptions.v1.Options`, which must resolve exactly as the
//!   same text parsed as a file does.
//! - 3: a whole encoded `Any`, type URL included.
//! - 4: a config file named by `config_path` in CRI options, read from a scratch file.
//!
//! Properties, beyond not panicking: a config that parses renders back to TOML that parses
//! to the same config (and renders to the same text again); every error is an
//! InvalidArgument whose message is bounded by the input's size; options that carry no
//! config resolve to the base config; runc's options override only what they set.

use containerd_shim::protos::{
    protobuf::{well_known_types::any::Any, Message},
    shim::oci::Options as RuncOptions,
};
use crossarch_protos::{
    runctypes::CreateOptions, runtimeoptions::Options as RuntimeOptions, CREATE_OPTIONS_TYPE_URL,
    RUNTIME_OPTIONS_TYPE_URL,
};
use crossarch_shim::{
    config::{self, Config, EmulationMode},
    error::{Error, Kind},
};
use std::fmt::Write as _;
use std::path::Path;

const TYPE_URLS: &[&str] = &[
    "runtimeoptions.v1.Options",
    "type.googleapis.com/runtimeoptions.v1.Options",
    "containerd.runc.v1.Options",
    "io.containerd.runc.v1.Options",
    "type.googleapis.com/containerd.runc.v1.Options",
    "containerd.linux.runc.CreateOptions",
    "example.com/Unknown",
];

/// An error message may quote the input (a key, a capability name, a type URL), escaped:
/// `{:?}` turns one byte into at most 10 characters (`\u{10ffff}` for 4 bytes is less).
fn bounded(e: &Error, input_len: usize) {
    assert_eq!(
        e.kind(),
        Kind::InvalidArgument,
        "not an InvalidArgument: {e:?}"
    );
    let msg = e.to_string();
    assert!(!msg.is_empty());
    assert!(
        msg.len() <= 1024 + 10 * input_len,
        "a {}-byte message for a {input_len}-byte input",
        msg.len()
    );
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn path(p: &Path) -> String {
    // A config's paths come from TOML strings, so they are UTF-8.
    quote(p.to_str().expect("a path from TOML is UTF-8"))
}

fn list<I: IntoIterator<Item = String>>(items: I) -> String {
    format!("[{}]", items.into_iter().collect::<Vec<_>>().join(", "))
}

/// Every field of `c`, as a crossarch config file.
pub fn render(c: &Config) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "[runc]");
    let _ = writeln!(s, "binary = {}", quote(&c.runc.binary));
    let _ = writeln!(s, "root = {}", path(&c.runc.root));
    let _ = writeln!(s, "systemd_cgroup = {}", c.runc.systemd_cgroup);
    let _ = writeln!(s, "[capabilities]");
    let names = c
        .capabilities
        .allowed
        .0
        .caps()
        .into_iter()
        .map(|c| quote(&c.to_string()));
    let _ = writeln!(s, "allowed = {}", list(names));
    let _ = writeln!(
        s,
        "no_new_privileges = {}",
        c.capabilities.no_new_privileges
    );
    let privileged = format!("{:?}", c.capabilities.privileged).to_lowercase();
    let _ = writeln!(s, "privileged = {}", quote(&privileged));
    let _ = writeln!(s, "[init]");
    let _ = writeln!(s, "enabled = {}", c.init.enabled);
    let _ = writeln!(s, "path = {}", path(&c.init.path));
    let _ = writeln!(s, "pgroup = {}", c.init.pgroup);
    let _ = writeln!(s, "[emulation]");
    let mode = match c.emulation.mode {
        EmulationMode::Auto => "auto",
        EmulationMode::Userns => "userns",
        EmulationMode::Trace => "trace",
        EmulationMode::Wrap => "wrap",
        EmulationMode::Off => "off",
    };
    let _ = writeln!(s, "mode = {}", quote(mode));
    if let Some(allowed) = &c.emulation.allowed {
        let _ = writeln!(
            s,
            "allowed = {}",
            list(allowed.iter().map(|a| quote(a.oci_name())))
        );
    }
    let dirs = c.emulation.qemu_dirs.iter().map(|d| path(d));
    let _ = writeln!(s, "qemu_dirs = {}", list(dirs));
    s
}

/// What a parsed config must satisfy.
fn round_trips(c: &Config) {
    let text = render(c);
    let again = Config::parse(&text, "rendered")
        .unwrap_or_else(|e| panic!("the rendering of {c:?} does not parse: {e}\n{text}"));
    assert_eq!(&again, c, "rendered as\n{text}");
    assert_eq!(render(&again), text);
    // The policy the route crate gets carries the same choices.
    let policy = c.emulation.policy();
    assert_eq!(policy.enabled, c.emulation.mode != EmulationMode::Off);
    assert_eq!(policy.allowed, c.emulation.allowed);
    assert_eq!(policy.qemu_dirs, c.emulation.qemu_dirs);
}

fn parse_text(text: &str) -> Result<Config, Error> {
    let parsed = Config::parse(text, "/etc/crossarch/config.toml");
    match &parsed {
        Ok(c) => round_trips(c),
        Err(e) => {
            bounded(e, text.len());
            assert!(e.to_string().starts_with("crossarch config "), "{e}");
        }
    }
    parsed
}

fn same(a: &Result<Config, Error>, b: &Result<Config, Error>) {
    match (a, b) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(_), Err(_)) => {}
        _ => panic!("{a:?} but {b:?}"),
    }
}

/// A base config that is not the default, so falling back to it can be told apart.
fn base() -> Config {
    let mut c = Config::default();
    c.runc.binary = "/base/runc".into();
    c.init.pgroup = true;
    c
}

fn resolve(any: &Any, input_len: usize) -> Option<Result<config::Resolved, Error>> {
    let name = any
        .type_url
        .rsplit_once('/')
        .map_or(&*any.type_url, |(_, n)| n);
    if name == RUNTIME_OPTIONS_TYPE_URL {
        // A config_path would make resolve read whatever host file it names.
        if let Ok(o) = RuntimeOptions::parse_from_bytes(&any.value) {
            if o.config_body.is_empty() && !o.config_path.is_empty() {
                return None;
            }
        }
    }
    let r = config::resolve(Some(any), || Ok(base()));
    match &r {
        Ok(resolved) => {
            round_trips(&resolved.config);
            check_resolved(any, name, resolved);
        }
        Err(e) => bounded(e, input_len),
    }
    Some(r)
}

fn check_resolved(any: &Any, name: &str, r: &config::Resolved) {
    if any.type_url.is_empty() {
        assert_eq!(r.config, base());
        assert!(r.runc_options.is_none());
    } else if name == RUNTIME_OPTIONS_TYPE_URL {
        let o = RuntimeOptions::parse_from_bytes(&any.value).unwrap();
        if o.config_body.is_empty() {
            assert_eq!(r.config, base());
        } else {
            let direct = Config::parse(&o.config_body, "direct").unwrap();
            assert_eq!(r.config, direct);
        }
        assert!(r.runc_options.is_none());
    } else if name == CREATE_OPTIONS_TYPE_URL {
        let o = CreateOptions::parse_from_bytes(&any.value).unwrap();
        assert_eq!(r.config, base());
        let runc = r.runc_options.as_ref().unwrap();
        assert_eq!(runc.io_uid, o.io_uid);
        assert_eq!(runc.criu_image_path, o.criu_image_path);
        assert_eq!(runc.no_pivot_root, o.no_pivot_root);
    } else {
        // runc's Options: they override the base's runc table and nothing else.
        let o = RuncOptions::parse_from_bytes(&any.value).unwrap();
        let b = base();
        let want_binary = if o.binary_name.is_empty() {
            &b.runc.binary
        } else {
            &o.binary_name
        };
        assert_eq!(&r.config.runc.binary, want_binary);
        if !o.root.is_empty() {
            assert_eq!(r.config.runc.root, Path::new(&o.root));
        } else {
            assert_eq!(r.config.runc.root, b.runc.root);
        }
        assert_eq!(r.config.runc.systemd_cgroup, o.systemd_cgroup);
        assert_eq!(r.config.capabilities, b.capabilities);
        assert_eq!(r.config.init, b.init);
        assert_eq!(r.config.emulation, b.emulation);
        assert_eq!(r.runc_options.as_ref(), Some(&o));
    }
}

/// A scratch file for mode 4, one per process.
fn scratch_file() -> std::path::PathBuf {
    let dir = if Path::new("/dev/shm").is_dir() {
        "/dev/shm".into()
    } else {
        std::env::temp_dir()
    };
    // Unique per call, and made here (create_new): a name shared with another process, or
    // another input of this one, would let one overwrite or remove the file the other reads.
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    loop {
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file = dir.join(format!(
            "crossarch-fuzz-config-{}-{n}-{nanos}.toml",
            std::process::id()
        ));
        if std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&file)
            .is_ok()
        {
            return file;
        }
    }
}

pub fn check(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        // No options at all: the base config.
        let r = config::resolve(None, || Ok(base())).unwrap();
        assert_eq!(r.config, base());
        return;
    };
    match mode % 5 {
        0 => {
            let _ = parse_text(&String::from_utf8_lossy(rest));
        }
        1 => {
            let Some((&url, value)) = rest.split_first() else {
                return;
            };
            let any = Any {
                type_url: TYPE_URLS[url as usize % TYPE_URLS.len()].into(),
                value: value.to_vec(),
                ..Default::default()
            };
            let r = resolve(&any, data.len());
            if any.type_url.ends_with("Unknown") {
                assert!(matches!(r, Some(Err(_))));
            }
        }
        2 => {
            let text = String::from_utf8_lossy(rest);
            let direct = parse_text(&text);
            let opts = RuntimeOptions {
                type_url: "io.containerd.crossarch.v2".into(),
                config_body: text.clone().into_owned(),
                ..Default::default()
            };
            let any = Any {
                type_url: format!("type.googleapis.com/{RUNTIME_OPTIONS_TYPE_URL}"),
                value: opts.write_to_bytes().unwrap(),
                ..Default::default()
            };
            let r = resolve(&any, data.len() * 2).expect("a config body is always parsed");
            let expect = if text.is_empty() { Ok(base()) } else { direct };
            same(&r.map(|r| r.config), &expect);
        }
        3 => {
            if let Ok(any) = Any::parse_from_bytes(rest) {
                let _ = resolve(&any, data.len());
            }
        }
        _ => {
            let text = String::from_utf8_lossy(rest);
            let file = scratch_file();
            std::fs::write(&file, text.as_bytes()).unwrap();
            let opts = RuntimeOptions {
                config_path: file.display().to_string(),
                ..Default::default()
            };
            let any = Any {
                type_url: RUNTIME_OPTIONS_TYPE_URL.into(),
                value: opts.write_to_bytes().unwrap(),
                ..Default::default()
            };
            let r = config::resolve(Some(&any), || unreachable!("the file is named"));
            let _ = std::fs::remove_file(&file);
            let direct = Config::parse(&text, "direct");
            same(
                &r.as_ref()
                    .map(|r| r.config.clone())
                    .map_err(|_| Error::internal("")),
                &direct,
            );
            match r {
                Ok(r) => round_trips(&r.config),
                Err(e) => {
                    bounded(&e, text.len() + file.as_os_str().len());
                    assert!(e.to_string().contains(&*file.to_string_lossy()), "{e}");
                }
            }
        }
    }
}
