//! The node's capability policy (`[capabilities]` of the crossarch config), seen from inside
//! real containers: the sets in `/proc/self/status`, `NoNewPrivs`, and a dropped capability
//! that really fails. The policy is per container: each test writes a config file and passes
//! it with `ctr run --runtime-config-path`, which `ctr` 1.6 sends as
//! `runtimeoptions.v1.Options{config_path}` to any runtime but runc's.
//!
//! These are crossarch's own rules, so they run only with the crossarch runtime: with another
//! `CROSSARCH_TEST_RUNTIME` (the runc reference) they skip.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crossarch_integration::{
    containerd, containerd_major, fixtures_dir, host_arch, wait_until, Containerd, OutputExt,
};

use crossarch_integration::crossarch::copy_dir;

/// Capability names by kernel bit number (capabilities(7), linux/capability.h).
const CAP_NAMES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// crossarch's default ceiling: containerd's default set minus CAP_NET_RAW and CAP_MKNOD.
const DEFAULT_CEILING: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Whether the runtime under test is crossarch; says why the test skips when it is not.
fn crossarch_only() -> bool {
    crossarch_integration::crossarch::crossarch_only("the capability policy")
}

/// A hex mask from /proc/<pid>/status as capability names in kernel bit order.
fn decode(hex: &str) -> Vec<String> {
    let mask = u64::from_str_radix(hex.trim(), 16)
        .unwrap_or_else(|e| panic!("capability mask {hex:?}: {e}"));
    (0..64)
        .filter(|bit| mask & (1u64 << bit) != 0)
        .map(|bit| {
            CAP_NAMES
                .get(bit)
                .map_or_else(|| format!("bit {bit}"), |n| n.to_string())
        })
        .collect()
}

/// `names` in kernel bit order, to compare with [`decode`]d masks.
fn sorted(names: &[&str]) -> Vec<String> {
    let mut v: Vec<&str> = names.to_vec();
    v.sort_by_key(|n| {
        CAP_NAMES
            .iter()
            .position(|c| c == n)
            .unwrap_or_else(|| panic!("{n} is not a capability"))
    });
    v.into_iter().map(str::to_string).collect()
}

/// The capability lines of /proc/self/status, decoded.
#[derive(Debug, PartialEq)]
struct Caps {
    eff: Vec<String>,
    prm: Vec<String>,
    bnd: Vec<String>,
    inh: Vec<String>,
    amb: Vec<String>,
    no_new_privs: bool,
}

impl Caps {
    fn parse(status: &str) -> Caps {
        let field = |name: &str| -> String {
            status
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}:")))
                .unwrap_or_else(|| panic!("no {name} in /proc/self/status:\n{status}"))
                .trim()
                .to_string()
        };
        Caps {
            eff: decode(&field("CapEff")),
            prm: decode(&field("CapPrm")),
            bnd: decode(&field("CapBnd")),
            inh: decode(&field("CapInh")),
            amb: decode(&field("CapAmb")),
            no_new_privs: field("NoNewPrivs") == "1",
        }
    }

    /// What a root process holds when its bounding, effective and permitted sets are `set`.
    fn root_with(set: &[&str], no_new_privs: bool) -> Caps {
        Caps {
            eff: sorted(set),
            prm: sorted(set),
            bnd: sorted(set),
            inh: vec![],
            amb: vec![],
            no_new_privs,
        }
    }
}

/// Writes a crossarch config for one container and returns its path.
fn policy(cd: &Containerd, toml: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let path = cd.dir().join(format!(
        "crossarch-{}.toml",
        N.fetch_add(1, Ordering::SeqCst)
    ));
    fs::write(&path, toml).unwrap();
    path.display().to_string()
}

/// `ctr run --rm --runtime-config-path CONFIG OPTS ID cat /proc/self/status`, decoded.
fn run_status(cd: &Containerd, id: &str, config: &str, opts: &[&str]) -> Caps {
    let mut all = vec!["--rm", "--runtime-config-path", config];
    all.extend_from_slice(opts);
    let out = cd.run(id, &all, &["cat", "/proc/self/status"]);
    out.ok();
    Caps::parse(&out.stdout_text())
}

/// The shim logs one line per container naming what it dropped; containerd copies it into
/// its own log a moment later.
fn wait_for_log(cd: &Containerd, text: &str) {
    let log = cd.log_path();
    wait_until(
        &format!("{text:?} in the containerd log {}", log.display()),
        Duration::from_secs(10),
        || fs::read_to_string(&log).is_ok_and(|l| l.contains(text)),
    );
}

/// The capabilities of this test process, which `ctr --privileged` copies into the spec.
fn own_effective() -> Vec<String> {
    Caps::parse(&fs::read_to_string("/proc/self/status").unwrap()).eff
}

#[test]
fn a_default_container_gets_the_ceiling_and_no_new_privileges() {
    if !crossarch_only() {
        return;
    }
    let cd = containerd!();
    let config = policy(&cd, "");
    let caps = run_status(&cd, "plain", &config, &[]);
    assert_eq!(caps, Caps::root_with(DEFAULT_CEILING, true));
    wait_for_log(
        &cd,
        "container plain: dropped CAP_NET_RAW, CAP_MKNOD (not in the node's capability ceiling)",
    );
}

#[test]
fn sys_admin_asked_for_is_dropped() {
    if !crossarch_only() {
        return;
    }
    let cd = containerd!();
    let config = policy(&cd, "[capabilities]\n");
    let caps = run_status(&cd, "admin", &config, &["--cap-add", "CAP_SYS_ADMIN"]);
    assert_eq!(caps, Caps::root_with(DEFAULT_CEILING, true));
    wait_for_log(
        &cd,
        "container admin: dropped CAP_NET_RAW, CAP_SYS_ADMIN, CAP_MKNOD (not in the node's \
         capability ceiling)",
    );
}

#[test]
fn requests_are_honoured_within_the_configured_ceiling() {
    if !crossarch_only() {
        return;
    }
    let cd = containerd!();
    let config = policy(
        &cd,
        "[capabilities]\nallowed = [\"chown\", \"Sys_Admin\", \"CAP_KILL\"]\n\
         no_new_privileges = false\n",
    );
    let caps = run_status(
        &cd,
        "within",
        &config,
        &["--cap-add", "CAP_SYS_ADMIN", "--cap-drop", "CAP_KILL"],
    );
    assert_eq!(
        caps,
        Caps::root_with(&["CAP_CHOWN", "CAP_SYS_ADMIN"], true),
        "SYS_ADMIN is asked for and allowed; KILL is allowed but dropped by the request; \
         no_new_privileges = false does not force NoNewPrivs, but ctr's spec asks for it"
    );
}

#[test]
fn privileged_clip_gives_the_ceiling() {
    if !crossarch_only() {
        return;
    }
    let cd = containerd!();
    let config = policy(&cd, "[capabilities]\nprivileged = \"clip\"\n");
    let caps = run_status(&cd, "priv", &config, &["--privileged"]);
    assert_eq!(caps, Caps::root_with(DEFAULT_CEILING, true));
    wait_for_log(&cd, "container priv: dropped CAP_DAC_READ_SEARCH, ");
}

/// A block device of the host, which `ctr --privileged` puts into the container's /dev.
fn host_block_device() -> Option<String> {
    fs::read_dir("/sys/block")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find(|n| !n.starts_with("loop") && Path::new("/dev").join(n).exists())
}

#[test]
fn privileged_clip_also_takes_back_devices_and_proc() {
    if !crossarch_only() {
        return;
    }
    let Some(dev) = host_block_device() else {
        println!("SKIPPED: this host has no block device to look for");
        return;
    };
    // A file runc masks for unprivileged containers; which exist depends on the kernel.
    let Some(masked) = [
        "/proc/timer_list",
        "/proc/keys",
        "/proc/sched_debug",
        "/proc/kcore",
    ]
    .into_iter()
    .find(|p| fs::read(p).is_ok_and(|b| !b.is_empty())) else {
        println!("SKIPPED: none of the masked /proc files exists on this host");
        return;
    };
    let cd = containerd!();
    let probe = format!("ls /dev/{dev} 2>&1; cat {masked} | wc -c; echo done");
    let clip = policy(&cd, "[capabilities]\nprivileged = \"clip\"\n");
    let out = cd.run(
        "clip",
        &["--rm", "--runtime-config-path", &clip, "--privileged"],
        &["sh", "-c", &probe],
    );
    out.ok();
    let text = out.stdout_text();
    assert!(
        text.contains("No such file"),
        "/dev/{dev} must be absent: {text}"
    );
    assert!(
        text.ends_with("\n0\ndone\n"),
        "{masked} must be masked: {text}"
    );

    // The same container under privileged = "allow" sees the host's device and the file.
    let allow = policy(&cd, "[capabilities]\nprivileged = \"allow\"\n");
    let out = cd.run(
        "allow",
        &["--rm", "--runtime-config-path", &allow, "--privileged"],
        &["sh", "-c", &probe],
    );
    out.ok();
    let text = out.stdout_text();
    assert!(text.starts_with(&format!("/dev/{dev}\n")), "{}", out.show());
    assert!(
        !text.ends_with("\n0\ndone\n"),
        "{masked} is readable when allowed: {text}"
    );
}

#[test]
fn privileged_allow_keeps_what_it_asks_for() {
    if !crossarch_only() {
        return;
    }
    let cd = containerd!();
    let config = policy(&cd, "[capabilities]\nprivileged = \"allow\"\n");
    let caps = run_status(&cd, "priv", &config, &["--privileged"]);
    let all = own_effective();
    assert!(all.iter().any(|c| c == "CAP_SYS_ADMIN"), "{all:?}");
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    assert_eq!(caps, Caps::root_with(&all, true));
    wait_for_log(
        &cd,
        "container priv: privileged, capabilities left as requested",
    );
}

#[test]
fn privileged_deny_refuses_the_container_with_the_fix() {
    if !crossarch_only() {
        return;
    }
    let cd = containerd!();
    let config = policy(&cd, "[capabilities]\nprivileged = \"deny\"\n");
    let out = cd.run(
        "priv",
        &["--rm", "--runtime-config-path", &config, "--privileged"],
        &["true"],
    );
    assert_ne!(out.code(), 0, "{}", out.show());
    let err = out.stderr_text();
    // containerd 2 keeps the code (FailedPrecondition) out of the text ctr prints.
    assert!(
        err.contains("container priv: privileged containers are refused")
            && err.contains("crossarch config")
            && (containerd_major() >= 2 || err.contains("failed precondition")),
        "{}",
        out.show()
    );
    assert_eq!(cd.task("priv"), None, "no task is left behind");

    // The same policy lets an ordinary container through.
    let caps = run_status(&cd, "plain", &config, &[]);
    assert_eq!(caps, Caps::root_with(DEFAULT_CEILING, true));
}

#[test]
fn an_exec_asking_for_more_than_the_ceiling_is_clipped() {
    if !crossarch_only() {
        return;
    }
    let cd = containerd!();
    let config = policy(&cd, "");
    cd.run_detached(
        "c",
        &[
            "--runtime-config-path",
            &config,
            "--cap-add",
            "CAP_SYS_ADMIN",
            "--cap-add",
            "CAP_SYS_PTRACE",
        ],
        &["sleep", "1000"],
    );
    // `ctr task exec` builds the exec's process from the container's spec as containerd
    // stored it, before the shim clipped the bundle's copy: the exec asks for SYS_ADMIN too.
    let asked = cd.spec("c")["process"]["capabilities"]["bounding"].clone();
    assert!(
        asked
            .as_array()
            .is_some_and(|a| a.iter().any(|c| c == "CAP_SYS_ADMIN")),
        "{asked}"
    );
    let out = cd.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "c",
        "cat",
        "/proc/self/status",
    ]);
    out.ok();
    assert_eq!(
        Caps::parse(&out.stdout_text()),
        Caps::root_with(DEFAULT_CEILING, true)
    );
    wait_for_log(
        &cd,
        "exec e1 of container c: dropped CAP_NET_RAW, CAP_SYS_PTRACE, CAP_SYS_ADMIN, CAP_MKNOD \
         (not in the node's capability ceiling)",
    );
    cd.ctr(&["task", "kill", "-s", "SIGKILL", "c"]).ok();
}

#[test]
fn a_privileged_containers_exec_is_clipped_too() {
    if !crossarch_only() {
        return;
    }
    let cd = containerd!();
    let config = policy(&cd, "");
    cd.run_detached(
        "c",
        &["--runtime-config-path", &config, "--privileged"],
        &["sleep", "1000"],
    );
    let out = cd.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "c",
        "cat",
        "/proc/self/status",
    ]);
    out.ok();
    assert_eq!(
        Caps::parse(&out.stdout_text()),
        Caps::root_with(DEFAULT_CEILING, true)
    );
    cd.ctr(&["task", "kill", "-s", "SIGKILL", "c"]).ok();
}

const MKNOD: &str = "mknod /tmp/$0 c 1 3 && echo made";

#[test]
fn a_dropped_capability_really_fails() {
    if !crossarch_only() {
        return;
    }
    let cd = containerd!();
    // MKNOD is outside the default ceiling: refused.
    let config = policy(&cd, "");
    let out = cd.run(
        "denied",
        &["--rm", "--runtime-config-path", &config],
        &["sh", "-c", MKNOD, "denied"],
    );
    assert_ne!(out.code(), 0, "{}", out.show());
    assert!(
        out.stderr_text().contains("Operation not permitted"),
        "{}",
        out.show()
    );
    assert!(!cd.rootfs().join("tmp/denied").exists());

    // The same request succeeds once the node allows MKNOD...
    let mut allowed: Vec<&str> = DEFAULT_CEILING.to_vec();
    allowed.push("CAP_MKNOD");
    let config = policy(&cd, &format!("[capabilities]\nallowed = {allowed:?}\n"));
    let out = cd.run(
        "allowed",
        &["--rm", "--runtime-config-path", &config],
        &["sh", "-c", MKNOD, "allowed"],
    );
    out.ok();
    assert_eq!(out.stdout_text(), "made\n");

    // ...for a privileged container under privileged = "allow"...
    let config = policy(&cd, "[capabilities]\nprivileged = \"allow\"\n");
    let out = cd.run(
        "privileged",
        &["--rm", "--runtime-config-path", &config, "--privileged"],
        &["sh", "-c", MKNOD, "privileged"],
    );
    out.ok();
    assert_eq!(out.stdout_text(), "made\n");

    // ...and under containerd's own runc shim, which keeps containerd's default set.
    let runc_args = cd.run_args("reference", &["--rm"], &["sh", "-c", MKNOD, "reference"]);
    let mut runc_args: Vec<&str> = runc_args.iter().map(String::as_str).collect();
    runc_args[2] = "io.containerd.runc.v2";
    let out = cd.ctr(&runc_args);
    out.ok();
    assert_eq!(out.stdout_text(), "made\n");
}

#[test]
fn an_unknown_name_in_the_config_fails_the_create_naming_it() {
    if !crossarch_only() {
        return;
    }
    let cd = containerd!();
    let config = policy(
        &cd,
        "[capabilities]\nallowed = [\"CAP_CHOWN\", \"CAP_SYS_ADMN\"]\n",
    );
    let out = cd.run("c", &["--rm", "--runtime-config-path", &config], &["true"]);
    assert_ne!(out.code(), 0, "{}", out.show());
    let err = out.stderr_text();
    assert!(
        err.contains(&format!("crossarch config {config} is invalid"))
            && err.contains("CAP_SYS_ADMN")
            && err.contains("correct or remove it"),
        "{}",
        out.show()
    );
    assert_eq!(cd.task("c"), None);
}

#[test]
fn an_unknown_name_in_the_spec_is_dropped_with_a_warning() {
    if !crossarch_only() {
        return;
    }
    let cd = containerd!();
    let config = policy(&cd, "");
    let caps = run_status(&cd, "odd", &config, &["--cap-add", "CAP_FROBNICATE"]);
    assert_eq!(caps, Caps::root_with(DEFAULT_CEILING, true));
    wait_for_log(&cd, "container odd: dropped unknown capability");
}

/// A foreign-architecture container (emulated through qemu, in its own user namespace) gets
/// the same ceiling: emulation adds no privilege.
#[test]
fn a_foreign_container_gets_the_same_ceiling() {
    if !crossarch_only() {
        return;
    }
    // (fixture dir, what `uname -m` says under qemu)
    let foreign = [
        ("arm64", "aarch64"),
        ("riscv64", "riscv64"),
        ("s390x", "s390x"),
        ("armhf", "armv7l"),
    ]
    .into_iter()
    .filter(|(a, _)| *a != host_arch())
    .map(|(a, m)| (fixtures_dir().join("rootfs").join(a), m))
    .find(|(d, _)| d.join("bin/busybox").is_file());
    let Some((fixture, machine)) = foreign else {
        eprintln!(
            "SKIPPED: no foreign rootfs in {}/rootfs; run scripts/fixtures.sh",
            fixtures_dir().display()
        );
        return;
    };
    let cd = containerd!();
    let rootfs = cd.dir().join("foreign");
    copy_dir(&fixture, &rootfs);
    let config = policy(&cd, "");
    let rootfs = rootfs.display().to_string();
    let run = |id: &str, argv: &[&str]| {
        let mut args = vec![
            "run",
            "--rm",
            "--runtime",
            cd.runtime(),
            "--runtime-config-path",
            &config,
            "--cap-add",
            "CAP_SYS_ADMIN",
            "--rootfs",
            &rootfs,
            id,
        ];
        args.extend_from_slice(argv);
        let out = cd.ctr(&args);
        out.ok();
        out.stdout_text()
    };
    // One process per container: this test is about capabilities, not child execs.
    assert_eq!(
        run("arch", &["/bin/busybox", "uname", "-m"]).trim(),
        machine,
        "{} runs emulated",
        fixture.display()
    );
    let status = run("foreign", &["/bin/busybox", "cat", "/proc/self/status"]);
    assert_eq!(
        Caps::parse(&status),
        Caps::root_with(DEFAULT_CEILING, true),
        "from {}",
        fixture.display()
    );
}

#[test]
fn decode_reads_kernel_masks() {
    assert_eq!(
        decode("00000000a80425fb"),
        sorted(&[
            "CAP_CHOWN",
            "CAP_DAC_OVERRIDE",
            "CAP_FOWNER",
            "CAP_FSETID",
            "CAP_KILL",
            "CAP_SETGID",
            "CAP_SETUID",
            "CAP_SETPCAP",
            "CAP_NET_BIND_SERVICE",
            "CAP_NET_RAW",
            "CAP_SYS_CHROOT",
            "CAP_MKNOD",
            "CAP_AUDIT_WRITE",
            "CAP_SETFCAP",
        ])
    );
    assert_eq!(decode("0"), Vec::<String>::new());
    assert_eq!(decode("8000000000000000"), ["bit 63"]);
}
