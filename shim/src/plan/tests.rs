//! Table tests of the plan: each row of the README's behaviour, from the spec a container
//! arrives with, what the node offers and what its binary is, to what Create does.

use std::path::{Path, PathBuf};

use crossarch_route::{
    arch::Arch,
    plan::{Decision, Refusal, RefusalKind, Route},
};
use serde_json::{json, Value};

use super::*;
use crate::{config::Config, error::Kind, spec::Document, view::ContainerView};

const QEMU: &str = "/usr/bin/qemu-aarch64-static";
const QEMU_IN: &str = "/dev/.crossarch/qemu-aarch64-static";
const INIT: &str = "/usr/bin/crossarch-init";
const BUNDLE: &str = "/run/b";

/// A container's spec as containerd sends it, with `namespaces` and `mounts`.
fn spec(namespaces: Value, mounts: Value) -> Value {
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "args": ["sh", "-c", "exec httpd"], "cwd": "/", "user": {"uid": 0, "gid": 0},
            "env": ["PATH=/bin"], "noNewPrivileges": true,
            "capabilities": {
                "bounding": ["CAP_CHOWN", "CAP_NET_RAW"],
                "effective": ["CAP_CHOWN", "CAP_NET_RAW"],
                "permitted": ["CAP_CHOWN", "CAP_NET_RAW"]
            }
        },
        "root": {"path": "rootfs"},
        "mounts": mounts,
        "linux": {
            "namespaces": namespaces,
            "maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"]
        }
    })
}

/// A container of its own: every namespace its own.
fn alone() -> Value {
    spec(
        json!([{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]),
        json!([{"destination": "/proc", "type": "proc", "source": "proc"},
               {"destination": "/sys", "type": "sysfs", "source": "sysfs"}]),
    )
}

/// A container of a Kubernetes pod: the pod's network and IPC namespaces.
fn in_pod() -> Value {
    spec(
        json!([{"type": "pid"}, {"type": "network", "path": "/var/run/netns/pod"},
               {"type": "ipc", "path": "/proc/9/ns/ipc"}, {"type": "uts"}, {"type": "mount"}]),
        json!([{"destination": "/proc", "type": "proc", "source": "proc"},
               {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["ro"]},
               {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue"}]),
    )
}

fn view_of(value: Value) -> (ContainerView, Document) {
    let mut doc = Document::from_value(value);
    let view = ContainerView::read("web", Path::new(BUNDLE), &mut doc).unwrap();
    (view, doc)
}

/// A node that can do everything.
fn node() -> NodeView<'static> {
    NodeView {
        userns_unsupported: None,
        trace_unsupported: None,
        registrations: Box::new(|| vec![(Arch::Aarch64, QEMU.into())]),
        init: Ok(INIT.into()),
        joins_host_network: false,
    }
}

fn decision(route: Route) -> Inspection {
    Inspection::Decided(Box::new(Decision {
        container: "web".into(),
        path_in_root: "/bin/sh".into(),
        interpreters: Vec::new(),
        elf_path: "/bin/busybox".into(),
        loader: None,
        arch: Some(Arch::Aarch64),
        host: Arch::X86_64,
        route,
        why: "it is linux/arm64".into(),
    }))
}

fn native() -> Inspection {
    decision(Route::Native)
}

fn foreign() -> Inspection {
    decision(Route::Wrap {
        arch: Arch::Aarch64,
        qemu_host_path: QEMU.into(),
        qemu_in_container_path: QEMU_IN.into(),
        args: vec![
            QEMU_IN.into(),
            "-0".into(),
            "sh".into(),
            "/bin/sh".into(),
            "-c".into(),
            "exec httpd".into(),
        ],
    })
}

fn run(node: &NodeView<'_>, config: &Config, value: Value, what: Inspection) -> Result<Plan> {
    let (view, _) = view_of(value);
    create(node, config, &view, what)
}

fn args(plan: &Plan) -> Vec<String> {
    plan.process.args().clone().unwrap()
}

fn with_init(args: &[&str]) -> Vec<String> {
    let mut v = vec!["/dev/.crossarch/init".to_string(), "--".to_string()];
    v.extend(args.iter().map(|s| s.to_string()));
    v
}

/// `args` behind the init in trace mode.
fn with_tracing_init(args: &[&str]) -> Vec<String> {
    let mut v = vec!["/dev/.crossarch/init", "--trace", "/dev/.crossarch"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    v.extend(with_init(args).into_iter().skip(1));
    v
}

fn staged(name: &str) -> PathBuf {
    crate::staging::path(Path::new(BUNDLE), name)
}

fn logged(plan: &Plan, level: log::Level, part: &str) -> bool {
    plan.log
        .iter()
        .any(|(l, line)| *l == level && line.contains(part))
}

#[test]
fn a_native_container_keeps_its_args_behind_the_init() {
    let plan = run(&node(), &Config::default(), alone(), native()).unwrap();
    assert_eq!(plan.mode, Mode::Native);
    assert_eq!(args(&plan), with_init(&["sh", "-c", "exec httpd"]));
    assert!(!plan.add_user_namespace);
    assert_eq!(
        plan.binds,
        [Bind {
            source: INIT.into(),
            destination: "/dev/.crossarch/init".into()
        }],
        "no user namespace: the host's init is bound as it is"
    );
    assert!(plan.staged.is_empty() && plan.registered.is_empty());
    assert!(logged(&plan, log::Level::Info, "dropped CAP_NET_RAW"));
    assert_eq!(plan.record.unwrap().mode, "native");
}

#[test]
fn a_foreign_container_gets_a_user_namespace_and_every_qemu() {
    let plan = run(&node(), &Config::default(), alone(), foreign()).unwrap();
    assert_eq!(plan.mode, Mode::Userns);
    assert!(plan.add_user_namespace);
    assert_eq!(plan.registered, [(Arch::Aarch64, PathBuf::from(QEMU))]);
    // The kernel runs qemu: the process is left as the image asked.
    assert_eq!(args(&plan), with_init(&["sh", "-c", "exec httpd"]));
    assert_eq!(
        plan.binds[0].source,
        staged("init"),
        "a locked read-only copy"
    );
    assert_eq!(plan.wrapped, None);
    // Its own network and IPC namespaces belong to its own user namespace.
    assert!(plan.sysfs_binds.is_empty() && plan.mqueue_drops.is_empty());
    assert!(!plan.open_low_ports && !plan.exec_needs_two_stage_runc);
    let record = plan.record.unwrap();
    assert_eq!((record.mode, record.mode_why.as_str()), ("userns", ""));
    assert_eq!(record.binfmt["linux/arm64"], PathBuf::from(QEMU));
    assert_eq!(record.args, with_init(&["sh", "-c", "exec httpd"]));
}

#[test]
fn an_existing_user_namespace_is_kept_as_kubernetes_host_users_false_gives_it() {
    let mut v = in_pod();
    v["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    let plan = run(&node(), &Config::default(), v, foreign()).unwrap();
    assert_eq!(plan.mode, Mode::Userns);
    assert!(!plan.add_user_namespace);
    assert!(
        plan.sysfs_binds.is_empty() && !plan.open_low_ports,
        "its user namespace owns the pod's namespaces"
    );
    assert!(logged(&plan, log::Level::Info, "in its own user namespace"));
}

#[test]
fn a_foreign_container_of_a_pod_gets_the_pods_sysfs_and_low_ports() {
    let plan = run(&node(), &Config::default(), in_pod(), foreign()).unwrap();
    assert_eq!(plan.mode, Mode::Userns);
    assert_eq!(plan.sysfs_binds, ["/sys"]);
    assert_eq!(plan.mqueue_drops, ["/dev/mqueue"]);
    assert!(plan.staged.contains(&Staged::Sysfs {
        netns: Some("/var/run/netns/pod".into())
    }));
    assert!(plan.open_low_ports);
    assert!(
        plan.exec_needs_two_stage_runc,
        "runc before 1.3 cannot exec into it"
    );
}

#[test]
fn a_port_start_in_the_spec_wins() {
    let mut v = in_pod();
    v["linux"]["sysctl"] = json!({"net.ipv4.ip_unprivileged_port_start": "80"});
    let plan = run(&node(), &Config::default(), v, foreign()).unwrap();
    assert!(!plan.open_low_ports);
}

#[test]
fn the_hosts_network_namespace_is_never_changed() {
    // hostNetwork: no network entry at all.
    let mut v = in_pod();
    v["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "network");
    let plan = run(&node(), &Config::default(), v, foreign()).unwrap();
    assert!(!plan.open_low_ports);
    assert_eq!(plan.sysfs_binds, ["/sys"]);
    assert!(plan.staged.contains(&Staged::Sysfs { netns: None }));
    assert!(logged(
        &plan,
        log::Level::Warn,
        "cannot bind ports below 1024"
    ));
    // The host's, joined by path.
    let host = NodeView {
        joins_host_network: true,
        ..node()
    };
    let plan = run(&host, &Config::default(), in_pod(), foreign()).unwrap();
    assert!(!plan.open_low_ports);
    assert!(logged(
        &plan,
        log::Level::Warn,
        "cannot bind ports below 1024"
    ));
}

#[test]
fn a_shared_pid_namespace_means_wrap_mode_or_a_clear_error() {
    let mut v = in_pod();
    v["linux"]["namespaces"][0]["path"] = "/proc/9/ns/pid".into();
    let plan = run(&node(), &Config::default(), v.clone(), foreign()).unwrap();
    let Mode::Wrap(why) = &plan.mode else {
        panic!("{:?}", plan.mode)
    };
    assert!(why.contains("/proc/9/ns/pid"), "{why}");
    // qemu runs the process, without an init: a shared PID namespace has one already.
    assert_eq!(args(&plan)[..2], [QEMU_IN, "-0"]);
    assert_eq!(plan.record.unwrap().mode_why, *why);

    let mut config = Config::default();
    config.emulation.mode = EmulationMode::Userns;
    let e = run(&node(), &config, v, foreign()).unwrap_err();
    assert_eq!(e.kind(), Kind::FailedPrecondition);
    assert!(
        e.to_string().starts_with(
            "container web: emulation.mode is \"userns\" but it joins the PID namespace"
        ),
        "{e}"
    );
}

#[test]
fn an_old_kernel_means_trace_mode_with_every_qemu_bound_in_and_the_init_tracing() {
    let old = NodeView {
        userns_unsupported: Some("Linux 6.1.0 has no per-user-namespace binfmt_misc".into()),
        registrations: Box::new(|| {
            vec![
                (Arch::Aarch64, QEMU.into()),
                (Arch::S390x, "/usr/bin/qemu-s390x-static".into()),
            ]
        }),
        ..node()
    };
    let plan = run(&old, &Config::default(), alone(), foreign()).unwrap();
    assert!(
        matches!(&plan.mode, Mode::Trace(w) if w.contains("6.1.0")),
        "{:?}",
        plan.mode
    );
    // The process is the image's; the init in front traces it.
    assert_eq!(args(&plan), with_tracing_init(&["sh", "-c", "exec httpd"]));
    for (source, destination) in [
        (QEMU, QEMU_IN),
        (
            "/usr/bin/qemu-s390x-static",
            "/dev/.crossarch/qemu-s390x-static",
        ),
    ] {
        assert!(plan.binds.contains(&Bind {
            source: source.into(),
            destination: destination.into()
        }));
    }
    assert_eq!(plan.traced.len(), 2);
    assert_eq!(plan.wrapped, None);
    assert!(plan.registered.is_empty() && !plan.add_user_namespace);
    let record = plan.record.unwrap();
    assert_eq!(
        (record.mode, record.mode_why.contains("6.1.0")),
        ("trace", true)
    );

    // With the init off there is nothing to trace: wrap mode, and why.
    let mut config = Config::default();
    config.init.enabled = false;
    let plan = run(&old, &config, alone(), foreign()).unwrap();
    assert!(
        matches!(&plan.mode, Mode::Wrap(w) if w.contains("binfmt_misc; and trace mode cannot run: the injected init, which traces, is not used (init.enabled is false")),
        "{:?}",
        plan.mode
    );
    // A seccomp profile that refuses ptrace: the same.
    let mut v = alone();
    v["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []});
    let plan = run(&old, &Config::default(), v, foreign()).unwrap();
    assert!(
        matches!(&plan.mode, Mode::Wrap(w) if w.contains("its seccomp profile refuses ptrace")),
        "{:?}",
        plan.mode
    );
}

#[test]
fn an_old_kernel_without_ptrace_means_wrap_mode_with_qemu_bound_in() {
    let old = NodeView {
        userns_unsupported: Some("Linux 6.1.0 has no per-user-namespace binfmt_misc".into()),
        trace_unsupported: Some("kernel.yama.ptrace_scope is 3".into()),
        ..node()
    };
    let plan = run(&old, &Config::default(), alone(), foreign()).unwrap();
    assert!(matches!(&plan.mode, Mode::Wrap(w) if w.contains("6.1.0")));
    assert_eq!(
        args(&plan),
        with_init(&[QEMU_IN, "-0", "sh", "/bin/sh", "-c", "exec httpd"])
    );
    assert!(plan.binds.contains(&Bind {
        source: QEMU.into(),
        destination: QEMU_IN.into()
    }));
    assert_eq!(plan.wrapped, Some(Arch::Aarch64));
    assert!(plan.registered.is_empty() && !plan.add_user_namespace);
    assert!(logged(&plan, log::Level::Warn, "exec format error"));
}

#[test]
fn wrap_mode_in_a_user_namespace_binds_a_locked_copy_of_qemu() {
    let mut v = alone();
    v["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    let mut config = Config::default();
    config.emulation.mode = EmulationMode::Wrap;
    let plan = run(&node(), &config, v, foreign()).unwrap();
    assert!(plan.binds.contains(&Bind {
        source: staged("qemu-aarch64"),
        destination: QEMU_IN.into()
    }));
}

#[test]
fn a_refused_binary_fails_create_with_the_routes_reason() {
    let refused = decision(Route::Refused {
        reason: Refusal {
            container: "web".into(),
            binary: "/bin/sh".into(),
            elf_path: "/bin/busybox".into(),
            host: Arch::X86_64,
            kind: RefusalKind::Disabled {
                arch: Arch::Aarch64,
            },
        },
    });
    let e = run(&node(), &Config::default(), alone(), refused).unwrap_err();
    assert_eq!(e.kind(), Kind::FailedPrecondition);
    assert!(e.to_string().starts_with("container web: /bin/sh"), "{e}");
}

#[test]
fn privileged_containers_follow_the_privileged_mode() {
    let mut v = alone();
    v["linux"]["maskedPaths"] = json!([]);
    v["linux"]["readonlyPaths"] = json!([]);
    v["process"].as_object_mut().unwrap().remove("capabilities");
    let plan = run(&node(), &Config::default(), v.clone(), native()).unwrap();
    assert!(plan.unprivilege, "clip: /proc masked, no host devices");
    let mut deny = Config::default();
    deny.capabilities.privileged = caps::PrivilegedMode::Deny;
    assert_eq!(
        run(&node(), &deny, v.clone(), native())
            .map(drop)
            .unwrap_err()
            .kind(),
        Kind::FailedPrecondition
    );
    let mut allow = Config::default();
    allow.capabilities.privileged = caps::PrivilegedMode::Allow;
    let plan = run(&node(), &allow, v, native()).unwrap();
    assert!(!plan.unprivilege && plan.process.capabilities().is_none());
}

#[test]
fn the_init_is_left_out_where_it_has_no_place() {
    let skipped = |plan: &Plan| {
        assert_eq!(args(plan)[0], "sh");
        assert!(plan.binds.is_empty());
    };
    let mut v = alone();
    v["annotations"] = json!({"io.crossarch/init": "false"});
    skipped(&run(&node(), &Config::default(), v, native()).unwrap());
    let mut v = alone();
    v["linux"]["namespaces"][0]["path"] = "/proc/9/ns/pid".into();
    skipped(&run(&node(), &Config::default(), v, native()).unwrap());
    let mut v = alone();
    v["process"]["args"] = json!(["/sbin/tini", "--", "app"]);
    let plan = run(&node(), &Config::default(), v, native()).unwrap();
    assert_eq!(args(&plan)[0], "/sbin/tini");
    let mut off = Config::default();
    off.init.enabled = false;
    skipped(&run(&node(), &off, alone(), native()).unwrap());
}

#[test]
fn a_missing_init_or_binary_is_an_error_that_says_what_to_do() {
    let missing = NodeView {
        init: Err(
            "container web: the crossarch init is missing at /opt/crossarch-init; reinstall".into(),
        ),
        ..node()
    };
    let e = run(&missing, &Config::default(), alone(), native()).unwrap_err();
    assert!(
        e.to_string()
            .contains("the crossarch init is missing at /opt/crossarch-init"),
        "{e}"
    );
    let e = run(
        &node(),
        &Config::default(),
        alone(),
        Inspection::Missing("sh not found in PATH".into()),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("container web: exec: sh not found in PATH: no such file"),
        "{e}"
    );
    let e = run(
        &node(),
        &Config::default(),
        alone(),
        Inspection::Invalid("args[0] is longer than PATH_MAX".into()),
    )
    .unwrap_err();
    assert_eq!(e.kind(), Kind::InvalidArgument);
    // Not inspected: runc decides, and there is no record.
    let plan = run(&node(), &Config::default(), alone(), Inspection::Unknown).unwrap();
    assert!(plan.record.is_none());
}

#[test]
fn the_plan_is_applied_to_the_spec_in_one_place() {
    let (view, mut doc) = view_of(in_pod());
    let plan = create(&node(), &Config::default(), &view, foreign()).unwrap();
    crate::spec::apply(&mut doc, "web", &plan).unwrap();
    let v = &doc.value;
    assert_eq!(
        v["process"]["args"],
        json!(with_init(&["sh", "-c", "exec httpd"]))
    );
    assert_eq!(
        v["process"]["capabilities"]["bounding"],
        json!(["CAP_CHOWN"])
    );
    let ns = v["linux"]["namespaces"].as_array().unwrap();
    assert!(ns.iter().any(|n| n["type"] == "user"));
    assert_eq!(v["linux"]["uidMappings"][0]["size"], 4294967295u64);
    assert_eq!(
        v["linux"]["sysctl"]["net.ipv4.ip_unprivileged_port_start"],
        "0"
    );
    let mounts = v["mounts"].as_array().unwrap();
    assert!(!mounts.iter().any(|m| m["type"] == "mqueue"));
    let sys = mounts.iter().find(|m| m["destination"] == "/sys").unwrap();
    assert_eq!(sys["type"], "bind");
    assert_eq!(
        sys["source"],
        staging::sysfs_path(Path::new(BUNDLE)).to_str().unwrap()
    );
    let init = mounts
        .iter()
        .find(|m| m["destination"] == "/dev/.crossarch/init")
        .unwrap();
    assert_eq!(init["source"], staged("init").to_str().unwrap());
    assert_eq!(init["options"], json!(["bind", "ro", "nosuid", "nodev"]));
}

fn exec_ctx<'a>(
    config: &'a Config,
    registered: &'a Registered,
    wrapped: Option<Arch>,
) -> ExecContext<'a> {
    ExecContext {
        id: "web",
        exec_id: "e1",
        config,
        privileged: false,
        terminal: true,
        registered,
        wrapped,
        traced: &NONE,
    }
}

static NONE: Registered = Vec::new();

fn exec_process() -> Process {
    let (view, _) = view_of(alone());
    view.process
}

#[test]
fn an_exec_runs_through_the_containers_binfmt_misc_or_its_wrap_mount() {
    let config = Config::default();
    let registered = vec![(Arch::Aarch64, PathBuf::from(QEMU))];
    let (p, _) = exec(
        &exec_ctx(&config, &registered, None),
        exec_process(),
        foreign(),
    )
    .unwrap();
    assert_eq!(p.args().clone().unwrap(), ["sh", "-c", "exec httpd"]);
    assert_eq!(p.terminal(), Some(true), "the request's terminal flag wins");

    let none = Vec::new();
    let (p, _) = exec(
        &exec_ctx(&config, &none, Some(Arch::Aarch64)),
        exec_process(),
        foreign(),
    )
    .unwrap();
    assert_eq!(p.args().clone().unwrap()[..2], [QEMU_IN, "-0"]);

    let e = exec(&exec_ctx(&config, &none, None), exec_process(), foreign()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("exec e1 of container web: /bin/sh is linux/arm64 and needs"),
        "{e}"
    );
    let (p, log) = exec(&exec_ctx(&config, &none, None), exec_process(), native()).unwrap();
    assert_eq!(p.args().clone().unwrap()[0], "sh");
    assert!(log
        .iter()
        .any(|(_, l)| l.starts_with("exec e1 of container web: dropped CAP_NET_RAW")));
}

#[test]
fn an_exec_into_a_traced_container_runs_under_a_tracing_init() {
    let config = Config::default();
    let traced = vec![(Arch::Aarch64, PathBuf::from(QEMU_IN))];
    let ctx = ExecContext {
        traced: &traced,
        ..exec_ctx(&config, &NONE, None)
    };
    for what in [foreign(), native()] {
        let (p, log) = exec(&ctx, exec_process(), what).unwrap();
        assert_eq!(
            p.args().clone().unwrap(),
            with_tracing_init(&["sh", "-c", "exec httpd"])
        );
        assert!(log.iter().any(|(_, l)| l.contains("(trace mode)")));
    }
    assert_eq!(ctx.held(), traced);
}

#[test]
fn mode_follows_config_and_node() {
    let no = || Some("Linux 5.10 has no per-user-namespace binfmt_misc".to_string());
    let yama = || Some("kernel.yama.ptrace_scope is 3".to_string());
    assert_eq!(
        choose_mode("a", EmulationMode::Auto, None, yama()).unwrap(),
        Mode::Userns
    );
    assert!(
        matches!(choose_mode("a", EmulationMode::Auto, no(), None).unwrap(), Mode::Trace(w) if w.contains("5.10"))
    );
    assert!(
        matches!(choose_mode("a", EmulationMode::Auto, no(), yama()).unwrap(), Mode::Wrap(w) if w.contains("5.10") && w.contains("ptrace_scope"))
    );
    assert!(matches!(
        choose_mode("a", EmulationMode::Wrap, None, None).unwrap(),
        Mode::Wrap(_)
    ));
    assert!(matches!(
        choose_mode("a", EmulationMode::Trace, None, None).unwrap(),
        Mode::Trace(_)
    ));
    let e = choose_mode("web", EmulationMode::Trace, None, yama()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("container web: emulation.mode is \"trace\" but kernel.yama"),
        "{e}"
    );
    let e = choose_mode("web", EmulationMode::Userns, no(), None).unwrap_err();
    assert_eq!(e.kind(), Kind::FailedPrecondition);
    assert!(
        e.to_string()
            .starts_with("container web: emulation.mode is \"userns\" but Linux 5.10"),
        "{e}"
    );
}
