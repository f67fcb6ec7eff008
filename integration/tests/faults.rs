//! Faults around the shim: containerd restarting under it, the shim itself dying.

use std::time::Duration;

use crossarch_integration::{containerd, host, wait_until, OutputExt};

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
