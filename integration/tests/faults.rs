//! Faults around the shim: containerd restarting or SIGKILLed under it, the shim itself
//! dying, and what it needs going missing (runc, qemu, the init, space for the bundle).
//! Each failure must name the container, say what to do, and leave nothing behind.

use std::time::Duration;

use crossarch_integration::{
    containerd, containerd_deletes_exited_tasks_at_start, containerd_version, host, wait_until,
    OutputExt,
};

const LONG: Duration = Duration::from_secs(30);

#[test]
fn a_running_container_survives_a_containerd_restart() {
    let mut cd = containerd!();
    cd.run_detached(
        "c",
        &[],
        &[
            "sh",
            "-c",
            "trap 'exit 9' TERM; while true; do sleep 0.1; done",
        ],
    );
    let pid = cd.task_pid("c");
    let shim = cd.shim_pid("c").expect("a shim serves c");

    cd.restart();

    assert!(host::process_alive(shim), "the shim outlived containerd");
    assert_eq!(cd.task("c"), Some((pid, "RUNNING".to_string())));
    let out = cd.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "after",
        "c",
        "echo",
        "still-here",
    ]);
    out.ok();
    assert_eq!(out.stdout_text().trim(), "still-here");

    let ev = cd.events();
    cd.ctr(&["task", "kill", "c"]).ok();
    let exit = ev.wait_topic("/tasks/exit", "c", LONG);
    assert_eq!(exit.number("exit_status"), 9);
    cd.wait_status("c", "STOPPED", LONG);
    cd.ctr(&["task", "delete", "c"]).ok();
    cd.ctr(&["container", "delete", "c"]).ok();
    wait_until("the shim to exit", LONG, || !host::process_alive(shim));
}

#[test]
fn a_killed_shim_is_cleaned_up_after() {
    let cd = containerd!();
    cd.run_detached("c", &[], &["sleep", "1000"]);
    let init = cd.task_pid("c");
    let shim = cd.shim_pid("c").expect("a shim serves c");
    let cgroup = cd.cgroups_path("c");
    let bundle = cd.bundle("c");
    assert!(
        host::cgroup_dirs(&cgroup).iter().any(|d| d.exists()),
        "the container has a cgroup at {cgroup}"
    );

    let ev = cd.events();
    assert!(host::signal(shim, libc::SIGKILL));

    // containerd notices, runs the shim binary's `delete` action, and reports the exit.
    let exit = ev.wait_topic("/tasks/exit", "c", LONG);
    assert_eq!(exit.number("exit_status"), 137, "{:?}", exit.payload);
    cd.wait_no_task("c", LONG);
    cd.ctr(&["container", "delete", "c"]).ok();

    wait_until("the container's init to be gone", LONG, || {
        !host::process_alive(init)
    });
    cd.assert_nothing_left("c", &bundle, &cgroup);

    // The id is free again.
    cd.run("c", &["--rm"], &["true"]).ok();
}

#[test]
fn a_killed_shim_leaves_no_snapshot_mount() {
    let cd = containerd!();
    let image = cd.import_image();
    cd.ctr(&[
        "run",
        "-d",
        "--runtime",
        cd.runtime(),
        &image,
        "img",
        "sleep",
        "1000",
    ])
    .ok();
    cd.wait_status("img", "RUNNING", LONG);
    let bundle = cd.bundle("img");
    assert!(
        !host::mounts_under(&bundle).is_empty(),
        "an image container's root is a mount under its bundle"
    );
    let shim = cd.shim_pid("img").expect("a shim serves img");

    let ev = cd.events();
    assert!(host::signal(shim, libc::SIGKILL));
    ev.wait_topic("/tasks/exit", "img", LONG);
    cd.wait_no_task("img", LONG);
    assert!(
        host::mounts_under(&bundle).is_empty(),
        "mounts left under the bundle: {:?}",
        host::mounts_under(&bundle)
    );
    cd.ctr(&["container", "delete", "img"]).ok();
    assert!(!bundle.exists(), "bundle left: {}", bundle.display());
}

/// Waits for the `ctr` clients the test started, killing those still there after `timeout`.
fn reap_clients(clients: Vec<std::process::Child>, timeout: Duration) {
    for mut c in clients {
        let deadline = std::time::Instant::now() + timeout;
        while matches!(c.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// containerd SIGKILLed while several containers run and execs are in flight, and some
/// containers exit while it is down. Once it is back, every task is there as the shim sees
/// it, the exits it missed reach it, and everything can still be stopped and deleted.
#[test]
fn a_sigkilled_containerd_finds_every_task_and_the_exits_it_missed() {
    let mut cd = containerd!();
    let tmp = cd.rootfs().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let forever = "trap 'exit 9' TERM; while true; do sleep 0.1; done";
    let live = ["live1", "live2"];
    for id in live {
        cd.run_detached(id, &[], &["sh", "-c", forever]);
    }
    // These exit on a file the test creates while containerd is down.
    let exiting = [("exit7", 7), ("exit0", 0)];
    for (id, code) in exiting {
        let script = format!("while [ ! -e /tmp/go-{id} ]; do sleep 0.05; done; exit {code}");
        cd.run_detached(id, &[], &["sh", "-c", &script]);
    }
    let all: Vec<&str> = live
        .iter()
        .chain(exiting.iter().map(|(id, _)| id))
        .copied()
        .collect();
    let before: Vec<(String, u32, String, std::path::PathBuf)> = all
        .iter()
        .map(|id| {
            (
                id.to_string(),
                cd.task_pid(id),
                cd.cgroups_path(id),
                cd.bundle(id),
            )
        })
        .collect();
    let shims: Vec<u32> = all
        .iter()
        .map(|id| cd.shim_pid(id).expect("a shim serves each container"))
        .collect();

    // Execs in flight: their clients are attached when containerd dies, and they end only
    // once it is down (a fixed sleep let a slow start end one before, on a busy machine).
    let mut clients = Vec::new();
    for n in 0..3 {
        let script = format!(
            "touch /tmp/started-{n}; while [ ! -e /tmp/go-execs ]; do sleep 0.05; done; \
             touch /tmp/finished-{n}"
        );
        let mut c = cd.ctr_command(&[
            "task",
            "exec",
            "--exec-id",
            &format!("inflight{n}"),
            live[n % 2],
            "sh",
            "-c",
            &script,
        ]);
        c.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        clients.push(c.spawn().expect("start ctr task exec"));
    }
    for n in 0..3 {
        wait_until(&format!("exec {n} to start"), LONG, || {
            tmp.join(format!("started-{n}")).exists()
        });
    }

    cd.kill_daemon();
    std::fs::write(tmp.join("go-execs"), "").unwrap();
    for (id, _) in exiting {
        std::fs::write(tmp.join(format!("go-{id}")), "").unwrap();
    }
    for (id, pid, _, _) in &before {
        if exiting.iter().any(|(e, _)| e == id) {
            wait_until(&format!("{id}'s init to exit"), LONG, || {
                !host::process_alive(*pid)
            });
        }
    }
    for n in 0..3 {
        wait_until(&format!("exec {n} to finish"), LONG, || {
            tmp.join(format!("finished-{n}")).exists()
        });
    }
    reap_clients(clients, Duration::from_secs(5));
    for &shim in &shims {
        assert!(host::process_alive(shim), "a shim died with containerd");
    }
    let log_before = std::fs::metadata(cd.log_path())
        .map(|m| m.len())
        .unwrap_or(0) as usize;
    cd.start_daemon();
    let ev = cd.events();

    // Every task is there, as it is; containerd 1.7 and later delete the exited ones, and
    // those shims with them (runc-v2's too).
    let deleted = containerd_deletes_exited_tasks_at_start();
    for (id, pid, _, _) in &before {
        let exited = exiting.iter().any(|(e, _)| e == id);
        if exited && deleted {
            assert_eq!(cd.task(id), None, "task {id} after the restart");
            let log = std::fs::read_to_string(cd.log_path()).unwrap_or_default();
            assert!(
                log.get(log_before..)
                    .unwrap_or_default()
                    .lines()
                    .any(|l| l.contains("cleaning leaked shim process")
                        && l.contains(&format!("id={id} "))),
                "containerd {:?} says why task {id} is gone; log:\n{}",
                containerd_version(),
                cd.log_tail(40)
            );
            continue;
        }
        let want = if exited { "STOPPED" } else { "RUNNING" };
        assert_eq!(
            cd.task(id),
            Some((*pid, want.to_string())),
            "task {id} after the restart"
        );
    }
    let out = cd.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "after",
        "live1",
        "echo",
        "still-here",
    ]);
    out.ok();
    assert_eq!(out.stdout_text().trim(), "still-here");

    // The exits containerd missed reach it once it is back: the shims retry. A shim may
    // send one before `ctr events` subscribed (crossarch retries within 50 ms): containerd
    // still took it, as its log shows ("event forwarded"), and only the events seen must
    // carry the right status.
    let expected: Vec<(String, String, u64)> = exiting
        .iter()
        .filter(|_| !deleted)
        .map(|(id, code)| (id.to_string(), id.to_string(), *code as u64))
        .chain((0..3).map(|n| ("live".to_string(), format!("inflight{n}"), 0)))
        .collect();
    let forwarded_exits = || {
        let log = std::fs::read_to_string(cd.log_path()).unwrap_or_default();
        log.get(log_before..)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("event forwarded") && l.contains("topic=/tasks/exit"))
            .count()
    };
    wait_until("containerd to take every exit it missed", LONG, || {
        let exits: Vec<_> = ev
            .list()
            .into_iter()
            .filter(|e| e.topic == "/tasks/exit")
            .collect();
        let unseen = expected
            .iter()
            .filter(|(_, id, _)| !exits.iter().any(|e| e.field("id") == id.as_str()))
            .count();
        unseen <= forwarded_exits().saturating_sub(exits.len())
    });
    for (container, id, code) in &expected {
        if let Some(exit) = ev
            .list()
            .into_iter()
            .find(|e| e.topic == "/tasks/exit" && e.field("id") == id.as_str())
        {
            assert_eq!(
                exit.number("exit_status"),
                *code,
                "{container}/{id}: {:?}",
                exit.payload
            );
        }
    }
    // The exit status is what Delete returns (`ctr task delete` exits with it).
    for (id, code) in exiting.into_iter().filter(|_| !deleted) {
        let out = cd.ctr(&["task", "delete", id]);
        out.ok();
        let warned = format!("task {id} exit with non-zero exit code {code}");
        assert_eq!(
            out.stderr_text().contains(&warned),
            code != 0,
            "ctr task delete {id}: {}",
            out.show()
        );
    }
    for id in live {
        cd.ctr(&["task", "kill", id]).ok();
        let exit = ev.wait_topic("/tasks/exit", id, LONG);
        assert_eq!(exit.number("exit_status"), 9, "{id}: {:?}", exit.payload);
        cd.wait_status(id, "STOPPED", LONG);
        cd.ctr(&["task", "delete", id]).ok();
    }
    for (id, _, cgroup, bundle) in &before {
        cd.ctr(&["container", "delete", id]).ok();
        cd.assert_nothing_left(id, bundle, cgroup);
    }
    for shim in shims {
        wait_until("every shim to exit", LONG, || !host::process_alive(shim));
    }
    cd.run("exit7", &["--rm"], &["true"]).ok();
}

/// Mount points and types of every mount this process's (the host's) mount table has.
fn host_mounts() -> Vec<(String, String)> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let point = l.split(' ').nth(4)?.to_string();
            let fstype = l.split_once(" - ")?.1.split(' ').next()?.to_string();
            Some((point, fstype))
        })
        .collect()
}

/// The host's binfmt_misc mounts and crossarch's staging mounts.
fn binfmt_and_staging_mounts() -> Vec<(String, String)> {
    host_mounts()
        .into_iter()
        .filter(|(point, fstype)| fstype == "binfmt_misc" || point.contains("/crossarch-host"))
        .collect()
}

/// Processes whose user namespace is `userns` (as `readlink /proc/PID/ns/user` names it).
fn processes_in_user_namespace(userns: &std::path::Path) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/ns/user")).is_ok_and(|l| l == userns))
        .collect()
}

/// The shim of a foreign container in userns mode SIGKILLed: containerd cleans up through
/// the shim binary's `delete` action, and neither the container's private binfmt_misc nor
/// the host-side staging under its bundle (`crossarch-host`) survives anywhere.
#[test]
fn a_killed_shim_of_a_foreign_container_leaves_no_binfmt_misc_or_staging() {
    use crossarch_integration::crossarch::{
        config_file, crossarch_only, import_busybox, run_image_detached, HostGuard, ARM64,
    };
    if !crossarch_only("emulation in a user namespace") || !ARM64.available() {
        return;
    }
    let guard = HostGuard::new();
    let before = binfmt_and_staging_mounts();
    let cd = containerd!();
    let image = import_busybox(&cd, &ARM64);
    let userns = config_file(&cd, "[emulation]\nmode = \"userns\"\n");
    run_image_detached(
        &cd,
        &image,
        ARM64.platform,
        "arm",
        &["--runtime-config-path", &userns],
        &["sh", "-c", "sleep 1000 | cat"],
    );
    let init = cd.task_pid("arm");
    let shim = cd.shim_pid("arm").expect("a shim serves arm");
    let bundle = cd.bundle("arm");
    let cgroup = cd.cgroups_path("arm");
    let userns_link = std::fs::read_link(format!("/proc/{init}/ns/user")).unwrap();
    assert_ne!(
        userns_link,
        std::fs::read_link("/proc/self/ns/user").unwrap(),
        "the foreign container has a user namespace of its own"
    );
    let staging = bundle.join("crossarch-host");
    assert!(
        host::mounts_under(&staging)
            .iter()
            .any(|m| m.starts_with(&staging)),
        "the init is staged under {}: {:?}",
        staging.display(),
        host::mounts_under(&bundle)
    );
    let out = cd.ctr(&["task", "exec", "--exec-id", "m", "arm", "uname", "-m"]);
    out.ok();
    assert_eq!(
        out.stdout_text().trim(),
        ARM64.uname,
        "emulated before the kill"
    );

    let ev = cd.events();
    assert!(host::signal(shim, libc::SIGKILL));
    let exit = ev.wait_topic("/tasks/exit", "arm", LONG);
    assert_eq!(exit.number("exit_status"), 137, "{:?}", exit.payload);
    cd.wait_no_task("arm", LONG);
    wait_until("the container's processes to be gone", LONG, || {
        processes_in_user_namespace(&userns_link).is_empty()
    });
    assert!(!host::process_alive(init));
    cd.ctr(&["container", "delete", "arm"]).ok();
    cd.assert_nothing_left("arm", &bundle, &cgroup);
    let ours: Vec<_> = host_mounts()
        .into_iter()
        .filter(|(point, _)| point.starts_with(&*cd.dir().to_string_lossy()))
        .filter(|(point, fstype)| fstype == "binfmt_misc" || point.contains("crossarch-host"))
        .collect();
    assert!(ours.is_empty(), "left in the host's mount table: {ours:?}");
    let after = binfmt_and_staging_mounts();
    let new: Vec<_> = after.iter().filter(|m| !before.contains(m)).collect();
    assert!(
        new.iter()
            .all(|(point, _)| !point.starts_with(&*cd.dir().to_string_lossy())),
        "new binfmt_misc or staging mounts: {new:?}"
    );
    assert!(
        !new.iter().any(|(_, fstype)| fstype == "binfmt_misc"),
        "a binfmt_misc was mounted on the host: {new:?}"
    );
    guard.check();

    // The id is free again, and emulation works for it.
    let out = crossarch_integration::crossarch::run_image(
        &cd,
        &image,
        ARM64.platform,
        "arm",
        &["--rm", "--runtime-config-path", &userns],
        &["uname", "-m"],
    );
    out.ok();
    assert_eq!(out.stdout_text().trim(), ARM64.uname);
}

fn is_crossarch() -> bool {
    crossarch_integration::runtime() == crossarch_integration::crossarch::CROSSARCH
}

/// What a failed `ctr run` must leave: an error naming the container (crossarch; containerd's
/// runc-v2 seldom does) with each of `wanted`, no task, and nothing on the node. The
/// container record `ctr run --rm` may keep is removed, so the id can be used again.
fn assert_failed_cleanly(
    cd: &crossarch_integration::Containerd,
    id: &str,
    out: &std::process::Output,
    wanted: &[&str],
) {
    assert_ne!(out.code(), 0, "{}", out.show());
    let err = out.stderr_text();
    eprintln!("{} on {id}: {}", cd.runtime(), err.trim());
    // What containerd refuses before any shim runs names the container by its bundle path.
    if is_crossarch() {
        assert!(
            err.contains(&format!("container {id}")) || err.contains(&format!("/{id}/")),
            "{}",
            out.show()
        );
    }
    for w in wanted {
        // Go's and Rust's errno texts differ in case ("No space left on device").
        assert!(
            err.to_lowercase().contains(&w.to_lowercase()),
            "{w:?} missing: {}",
            out.show()
        );
    }
    assert_eq!(cd.task(id), None, "no task is left behind");
    let _ = cd.ctr(&["container", "delete", id]);
    let cgroup = format!("/{}/{id}", cd.namespace());
    cd.assert_nothing_left(id, &cd.bundle(id), &cgroup);
    wait_until("no shim left", LONG, || cd.shim_pid(id).is_none());
}

/// `ctr run --rm` of `args` with the runc binary `runc`: crossarch's `runc.binary`, runc-v2's
/// `BinaryName` (`ctr run --runc-binary`).
fn run_with_runc(
    cd: &crossarch_integration::Containerd,
    id: &str,
    runc: &str,
    args: &[&str],
) -> std::process::Output {
    if is_crossarch() {
        let config = crossarch_integration::crossarch::config_file(
            cd,
            &format!("[runc]\nbinary = \"{runc}\"\n"),
        );
        cd.run(id, &["--rm", "--runtime-config-path", &config], args)
    } else {
        cd.run(id, &["--rm", "--runc-binary", runc], args)
    }
}

/// A runc binary that does not exist, as configured.
#[test]
fn a_configured_runc_that_does_not_exist_fails_create_cleanly() {
    let cd = containerd!();
    let missing = "/nonexistent/crossarch-test/runc";
    let out = run_with_runc(&cd, "norunc", missing, &["true"]);
    let hint: &[&str] = if is_crossarch() {
        &[missing, "install runc or set runc.binary"]
    } else {
        &[missing]
    };
    assert_failed_cleanly(&cd, "norunc", &out, hint);
    cd.run("norunc", &["--rm"], &["true"]).ok();
}

/// containerd's PATH, where the shims find runc, without runc in it: only containerd and the
/// shims, linked into a dir of the test's own.
#[test]
fn no_runc_in_path_fails_create_cleanly() {
    use crossarch_integration::{Containerd, Options};
    let bin = tempfile::Builder::new()
        .prefix("cx-bin-")
        .tempdir_in("/tmp")
        .unwrap();
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["containerd", "containerd-shim-runc-v2"] {
        if let Some(found) = std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
        {
            std::os::unix::fs::symlink(found, bin.path().join(name)).unwrap();
        }
    }
    let dirs = [crossarch_integration::shim_dir(), bin.path().to_path_buf()];
    assert!(
        dirs.iter().all(|d| !d.join("runc").exists()),
        "runc is in {dirs:?}"
    );
    let Some(cd) = Containerd::start_with_options(Options {
        path: Some(std::env::join_paths(dirs).unwrap()),
        ..Default::default()
    }) else {
        return;
    };
    let out = cd.run("nopath", &["--rm"], &["true"]);
    let hint: &[&str] = if is_crossarch() {
        &["install runc or set runc.binary"]
    } else {
        &["runc"]
    };
    assert_failed_cleanly(&cd, "nopath", &out, hint);
}

/// A container whose process dies between Create and Start (runc's init killed while it
/// waits to be started, as the OOM killer or an admin's `kill` may): Start (or Create, when
/// the shim finds it reaped already) must fail, say so, and leave nothing. crossarch starts
/// a container by reading runc's exec fifo itself (not with `runc start`); this is the case
/// where nothing ever comes through it. The runc used is the host's, behind a wrapper that
/// is named `runc`, as crossarch requires for that.
#[test]
fn a_process_killed_before_start_fails_cleanly() {
    let cd = containerd!();
    let real = crossarch_integration::in_path("runc").expect("runc in PATH");
    let dir = tempfile::Builder::new()
        .prefix("cx-runc-")
        .tempdir_in("/tmp")
        .unwrap();
    let runc = dir.path().join("runc");
    // After a successful create, kill the process in its pid file.
    std::fs::write(
        &runc,
        format!(
            "#!/bin/sh\n{} \"$@\" || exit\ncase \" $* \" in *\" create \"*) ;; *) exit 0;; esac\n\
             while [ $# -gt 0 ]; do [ \"$1\" = --pid-file ] && kill -9 \"$(cat \"$2\")\"; shift; done\n",
            real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&runc, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = run_with_runc(
        &cd,
        "killed",
        &runc.display().to_string(),
        &["sh", "-c", "echo ran"],
    );
    assert!(!out.stdout_text().contains("ran"), "{}", out.show());
    let hint: &[&str] = if is_crossarch() {
        &["already dead"]
    } else {
        &[]
    };
    assert_failed_cleanly(&cd, "killed", &out, hint);
    cd.run("killed", &["--rm"], &["true"]).ok();
}

/// A spec that runc refuses at create: a sysctl that is not namespaced.
#[test]
fn a_spec_runc_refuses_fails_create_cleanly() {
    let cd = containerd!();
    let out = cd.ctr(&["oci", "spec"]);
    out.ok();
    let mut spec: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    spec["root"] = serde_json::json!({"path": cd.rootfs().display().to_string()});
    spec["process"]["args"] = serde_json::json!(["true"]);
    spec["process"]["env"] = serde_json::json!([crossarch_integration::CONTAINER_PATH]);
    spec["linux"]["cgroupsPath"] = serde_json::json!(format!("/{}/badspec", cd.namespace()));
    spec["linux"]["sysctl"] = serde_json::json!({"vm.swappiness": "10"});
    let file = cd.dir().join("badspec.json");
    std::fs::write(&file, serde_json::to_vec(&spec).unwrap()).unwrap();
    let out = cd.ctr(&[
        "run",
        "--rm",
        "--runtime",
        cd.runtime(),
        "--config",
        &file.display().to_string(),
        "badspec",
    ]);
    assert_failed_cleanly(&cd, "badspec", &out, &["vm.swappiness"]);
    cd.run("badspec", &["--rm"], &["true"]).ok();
}

/// The qemu a foreign container was created with removed from the host while it runs:
/// what was registered (userns) or staged (wrap) at Create holds the file, so its processes
/// and new execs still run emulated. The qemu is a copy in a dir of the test's own,
/// configured as the only qemu dir; the host's are never touched. A container created after
/// the removal fails with an error naming it and the fix, and leaves nothing.
#[test]
fn removing_qemu_after_create_does_not_stop_a_foreign_container() {
    use crossarch_integration::crossarch::{
        config_file, crossarch_only, import_busybox, qemu_package, run_image, run_image_detached,
        HostFilesGuard, HostGuard, ARM64,
    };
    if !crossarch_only("emulation") || !ARM64.available() {
        return;
    }
    let files = HostFilesGuard::new();
    let guard = HostGuard::new();
    let cd = containerd!();
    let image = import_busybox(&cd, &ARM64);
    for mode in ["userns", "wrap"] {
        let qemu_dir = cd.dir().join(format!("qemu-{mode}"));
        std::fs::create_dir_all(&qemu_dir).unwrap();
        let host_qemu = ARM64.host_qemu().expect("available() found it");
        let qemu = qemu_dir.join(host_qemu.file_name().unwrap());
        std::fs::copy(&host_qemu, &qemu).unwrap();
        let config = config_file(
            &cd,
            &format!(
                "[emulation]\nmode = \"{mode}\"\nqemu_dirs = [\"{}\"]\n",
                qemu_dir.display()
            ),
        );
        let id = format!("q{mode}");
        run_image_detached(
            &cd,
            &image,
            ARM64.platform,
            &id,
            &["--runtime-config-path", &config],
            &["sleep", "1000"],
        );
        let bundle = cd.bundle(&id);
        let cgroup = cd.cgroups_path(&id);
        std::fs::remove_file(&qemu).unwrap();
        // In wrap mode only the process itself is emulated, so a pipeline is userns's alone.
        let script = if mode == "userns" {
            "uname -m | cat"
        } else {
            "echo $(( 6 * 7 ))"
        };
        for (exec, argv) in [("m", vec!["uname", "-m"]), ("sh", vec!["sh", "-c", script])] {
            let mut args = vec!["task", "exec", "--exec-id", exec, &id];
            args.extend(argv);
            let out = cd.ctr(&args);
            out.ok();
            let want = if exec == "m" || mode == "userns" {
                ARM64.uname
            } else {
                "42"
            };
            assert_eq!(out.stdout_text().trim(), want, "{mode}: {}", out.show());
        }

        // A new container with that config has no qemu any more.
        let fresh = format!("new{mode}");
        let out = run_image(
            &cd,
            &image,
            ARM64.platform,
            &fresh,
            &["--rm", "--runtime-config-path", &config],
            &["uname", "-m"],
        );
        let hint = format!("install {}", qemu_package(&ARM64));
        assert_failed_cleanly(&cd, &fresh, &out, &[ARM64.qemu, &hint]);

        let ev = cd.events();
        cd.ctr(&["task", "kill", "-s", "KILL", &id]).ok();
        ev.wait_topic("/tasks/exit", &id, LONG);
        cd.wait_status(&id, "STOPPED", LONG);
        cd.ctr(&["task", "delete", &id]).ok();
        cd.ctr(&["container", "delete", &id]).ok();
        cd.assert_nothing_left(&id, &bundle, &cgroup);
        let left = host::mounts_under(&qemu_dir);
        assert!(
            left.is_empty(),
            "{mode}: mounts left on the qemu dir: {left:?}"
        );
        std::fs::remove_dir(&qemu_dir).unwrap();
    }
    guard.check();
    files.check();
}

/// The init crossarch injects missing, or not executable: Create fails with an error naming
/// the container, the file and the fix, and leaves nothing. The init is a copy configured
/// with `init.path`, never the staged one other tests use.
#[test]
fn a_missing_or_unexecutable_init_fails_create_with_the_fix() {
    use crossarch_integration::crossarch::{config_file, crossarch_only, HostFilesGuard};
    if !crossarch_only("the injected init") {
        return;
    }
    let files = HostFilesGuard::new();
    let cd = containerd!();
    let init = cd.dir().join("init-copy");
    let config = config_file(&cd, &format!("[init]\npath = \"{}\"\n", init.display()));
    let path = init.display().to_string();

    let out = cd.run(
        "noinit",
        &["--rm", "--runtime-config-path", &config],
        &["true"],
    );
    assert_failed_cleanly(&cd, "noinit", &out, &[&path, "init.enabled = false"]);

    std::fs::copy(
        crossarch_integration::shim_dir().join("crossarch-init"),
        &init,
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = cd.run(
        "noexec",
        &["--rm", "--runtime-config-path", &config],
        &["true"],
    );
    assert_failed_cleanly(
        &cd,
        "noexec",
        &out,
        &[&path, "not executable", "init.enabled = false"],
    );

    // Fixed, the same ids run.
    std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755)).unwrap();
    for id in ["noinit", "noexec"] {
        let out = cd.run(
            id,
            &["--rm", "--runtime-config-path", &config],
            &["echo", "ok"],
        );
        out.ok();
        assert_eq!(out.stdout_text().trim(), "ok");
    }
    files.check();
}

/// Fills `dir` with 4 KiB files until its file system is full; returns them.
fn fill(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let fill = dir.join("fill");
    std::fs::create_dir_all(&fill).unwrap();
    let mut files = Vec::new();
    for n in 0.. {
        let f = fill.join(n.to_string());
        match std::fs::write(&f, [0u8; 4096]) {
            Ok(()) => files.push(f),
            Err(e) => {
                assert_eq!(
                    e.raw_os_error(),
                    Some(libc::ENOSPC),
                    "fill {}: {e}",
                    f.display()
                );
                let _ = std::fs::remove_file(&f);
                break;
            }
        }
    }
    files
}

/// The file system of the bundles (containerd's state dir, a small tmpfs here) full: Create
/// fails with the file system's error and leaves nothing, at every amount of space left from
/// none to enough (containerd, the shim's start action and runc each run out in turn; when
/// containerd gives up after the shim started, the shim must still go); once there is room,
/// the same id runs.
#[test]
fn a_full_state_dir_fails_create_cleanly_and_recovers() {
    use crossarch_integration::{Containerd, Options};
    let Some(cd) = Containerd::start_with_options(Options {
        state_tmpfs_bytes: Some(4 << 20),
        ..Default::default()
    }) else {
        return;
    };
    let mut files = fill(&cd.state_dir());
    let mut freed = 0;
    let mut ran = false;
    for step in [0, 1, 1, 1, 1, 2, 2, 4, 4, 8, 16, 32, 64] {
        for _ in 0..step {
            if let Some(f) = files.pop() {
                std::fs::remove_file(f).unwrap();
                freed += 4;
            }
        }
        let out = cd.run("full", &["--rm"], &["echo", "ok"]);
        if out.code() == 0 {
            println!("{}: ran with {freed} KiB freed", cd.runtime());
            assert_eq!(out.stdout_text().trim(), "ok", "{}", out.show());
            ran = true;
            break;
        }
        eprintln!("{freed} KiB freed:");
        // runc-v2 may only say "runc did not terminate successfully" (runc could not write
        // its log); crossarch always passes the file system's error on.
        let wanted: &[&str] = if is_crossarch() {
            &["no space left on device"]
        } else {
            &[]
        };
        assert_failed_cleanly(&cd, "full", &out, wanted);
    }
    assert!(ran, "no container ran with {freed} KiB free");
    for f in files {
        std::fs::remove_file(f).unwrap();
    }
    cd.run_detached("full", &[], &["sleep", "1000"]);
    let out = cd.ctr(&["task", "exec", "--exec-id", "e", "full", "echo", "ok"]);
    out.ok();
    cd.ctr(&["task", "kill", "-s", "KILL", "full"]).ok();
    cd.wait_status("full", "STOPPED", LONG);
    cd.ctr(&["task", "delete", "full"]).ok();
    cd.ctr(&["container", "delete", "full"]).ok();
}

/// An exit while containerd is down for longer than the crate publisher's retries last
/// (five tries over about 15 s, as runc-v2's): crossarch keeps the event at the head of its
/// queue and sends it once containerd is back.
///
/// The exit is an exec's, so the task is still running when containerd loads it again
/// (containerd 1.7 and later delete a task whose init exited meanwhile: see
/// `containerd_deletes_exited_tasks_at_start`); the exit status is the shim's State of it.
#[test]
fn an_exit_outlives_a_long_containerd_outage() {
    use crossarch_integration::crossarch::crossarch_only;
    use crossarch_integration::ttrpc::{self, Msg, Reply};
    if !crossarch_only("event delivery") {
        return;
    }
    const OUTAGE: Duration = Duration::from_secs(20);
    let mut cd = containerd!();
    let tmp = cd.rootfs().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    cd.run_detached("late", &[], &["sleep", "1000"]);
    cd.ctr(&[
        "task",
        "exec",
        "-d",
        "--exec-id",
        "waiter",
        "late",
        "sh",
        "-c",
        "touch /tmp/waiting; while [ ! -e /tmp/go ]; do sleep 0.05; done; exit 5",
    ])
    .ok();
    wait_until("the exec to start", LONG, || tmp.join("waiting").exists());
    let socket = cd.shim_socket("late");
    let exec_state = Msg::new().bytes(1, "late").bytes(2, "waiter").encode();
    let state = || match ttrpc::task_call(&socket, "State", &exec_state, LONG) {
        Reply::Ok(payload) => payload,
        r => panic!("State of exec waiter: {} {}", r.outcome(), r.message()),
    };
    let exec_pid = ttrpc::uint_field(&state(), 3) as u32;
    assert!(exec_pid != 0, "the exec has a pid");
    cd.kill_daemon();
    std::fs::write(tmp.join("go"), "").unwrap();
    wait_until("the exec to exit", LONG, || !host::process_alive(exec_pid));
    std::thread::sleep(OUTAGE);
    let log_before = std::fs::metadata(cd.log_path())
        .map(|m| m.len())
        .unwrap_or(0) as usize;
    cd.start_daemon();
    wait_until("containerd to take the exit", LONG, || {
        let log = std::fs::read_to_string(cd.log_path()).unwrap_or_default();
        log.get(log_before..)
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("event forwarded") && l.contains("topic=/tasks/exit"))
    });
    let log = std::fs::read_to_string(cd.log_path()).unwrap_or_default();
    let sent = log
        .lines()
        .find(|l| l.contains("sent the /tasks/exit event after"))
        .unwrap_or("(no retry line)");
    println!("after a {OUTAGE:?} outage: {sent}");
    assert_eq!(cd.task("late").map(|t| t.1), Some("RUNNING".to_string()));
    // Status 3 is STOPPED; field 9 the exit status.
    let s = state();
    assert_eq!(
        (ttrpc::uint_field(&s, 4), ttrpc::uint_field(&s, 9)),
        (3, 5),
        "the exec stopped with its status"
    );
    cd.ctr(&["task", "kill", "-s", "KILL", "late"]).ok();
    cd.wait_status("late", "STOPPED", LONG);
    cd.ctr(&["task", "delete", "late"]).ok();
    cd.ctr(&["container", "delete", "late"]).ok();
}
