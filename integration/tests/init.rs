//! The injected init (issue 5) in real containers: it reaps orphans, forwards signals,
//! passes exit statuses through, keeps a terminal's job control working, passes stdin's EOF
//! on, is PID 1 only where it should be, and keeps a foreign container's untrapped SIGTERM
//! from freezing it (qemu is never PID 1).
//!
//! crossarch's own behaviour: with another `CROSSARCH_TEST_RUNTIME` these tests skip.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crossarch_integration::crossarch::{
    config_file, crossarch_only, exit_status_after_signal, import_busybox, run_image_detached,
    Arch, HostGuard, ARM64,
};
use crossarch_integration::{
    containerd, pid1_cmdline, pty::run_in_pty, wait_until, OutputExt, Step,
};

const LONG: Duration = Duration::from_secs(30);
const WHAT: &str = "the injected init";

#[test]
fn orphans_leave_no_zombie() {
    if !crossarch_only(WHAT) {
        return;
    }
    let cd = containerd!();
    // 100 grandchildren whose parent subshell exits at once: they are orphans, re-parented
    // to PID 1. The shell waits (bounded) until none is alive, then counts zombies.
    let script = "for i in $(seq 100); do (sleep 0.2 &); done; \
        n=0; while [ $n -lt 200 ] && [ $(ps -o args | grep -cx 'sleep 0.2') -gt 0 ]; do \
        sleep 0.1; n=$((n+1)); done; \
        echo alive=$(ps -o args | grep -cx 'sleep 0.2'); sleep 0.3; \
        echo zombies=$(ps -o stat | grep -c Z)";
    let out = cd.run("orphans", &["--rm"], &["sh", "-c", script]);
    out.ok();
    assert_eq!(
        out.stdout_text(),
        "alive=0\nzombies=0\n",
        "every orphan ended and was reaped: {}",
        out.show()
    );
}

#[test]
fn signals_reach_a_trapping_shell_and_untrapped_ones_give_128_plus_n() {
    if !crossarch_only(WHAT) {
        return;
    }
    let cd = containerd!();
    // (signal, number, the trap's exit code)
    let signals = [
        ("SIGTERM", 15, 41),
        ("SIGINT", 2, 42),
        ("SIGHUP", 1, 43),
        ("SIGUSR1", 10, 44),
    ];
    // Every container starts before any is signalled: they share the wait.
    for (sig, _, code) in signals {
        let name = sig.trim_start_matches("SIG");
        let trapped = format!(
            "trap 'echo got-{name} > /tmp/got-{name}; exit {code}' {name}; \
             touch /tmp/ready-trap-{name}; while true; do sleep 0.1; done"
        );
        cd.run_detached(&format!("trap-{name}"), &[], &["sh", "-c", &trapped]);
        let untrapped = format!("touch /tmp/ready-plain-{name}; while true; do sleep 0.1; done");
        cd.run_detached(&format!("plain-{name}"), &[], &["sh", "-c", &untrapped]);
    }
    let tmp = cd.rootfs().join("tmp");
    for (sig, n, code) in signals {
        let name = sig.trim_start_matches("SIG");
        let status = exit_status_after_signal(
            &cd,
            &format!("trap-{name}"),
            &tmp.join(format!("ready-trap-{name}")),
            sig,
        );
        assert_eq!(status, code, "{sig} to a shell that traps it");
        assert_eq!(
            fs::read_to_string(tmp.join(format!("got-{name}"))).unwrap_or_default(),
            format!("got-{name}\n"),
            "the trap of {sig} ran"
        );
        let status = exit_status_after_signal(
            &cd,
            &format!("plain-{name}"),
            &tmp.join(format!("ready-plain-{name}")),
            sig,
        );
        assert_eq!(status, 128 + n, "untrapped {sig}");
    }
}

#[test]
fn exit_codes_pass_through() {
    if !crossarch_only(WHAT) {
        return;
    }
    let cd = containerd!();
    for code in [0, 1, 2, 126, 127, 128, 137, 143, 255] {
        let out = cd.run(
            &format!("exit{code}"),
            &["--rm"],
            &["sh", "-c", &format!("exit {code}")],
        );
        assert_eq!(out.code(), code, "{}", out.show());
    }
    // A payload killed by a signal gives 128+n, as its own status would through a shell.
    let out = cd.run("killed", &["--rm"], &["sh", "-c", "kill -9 $$"]);
    assert_eq!(out.code(), 137, "{}", out.show());
}

#[test]
fn tty_job_control_and_ctrl_c() {
    if !crossarch_only(WHAT) {
        return;
    }
    let cd = containerd!();
    let args = cd.run_args("tty", &["--rm", "-t"], &["sh"]);
    let argv = cd.ctr_argv(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let res = run_in_pty(
        &argv,
        24,
        80,
        &[
            // Job control: a background job is listed, and the shell owns the terminal.
            Step::Send("sleep 100 &\r".into()),
            Step::Send("jobs; echo job-$((1+1))\r".into()),
            Step::Expect("job-2".into()),
            Step::Send("kill %1; echo killed-$((2+1))\r".into()),
            Step::Expect("killed-3".into()),
            // Ctrl-C interrupts the foreground job, and the shell's prompt comes back.
            Step::Send("sleep 100\r".into()),
            Step::SendUntil {
                text: "\x03".into(),
                until: "^C".into(),
            },
            Step::Send("echo back-$((3+4))\r".into()),
            Step::Expect("back-7".into()),
            Step::Send("exit 7\r".into()),
        ],
    );
    assert_eq!(res.code, 7, "{}", res.screen);
    assert!(
        res.screen.contains("Running") && res.screen.contains("sleep 100"),
        "jobs lists the background job: {}",
        res.screen
    );
}

#[test]
fn stdin_eof_reaches_the_payload() {
    if !crossarch_only(WHAT) {
        return;
    }
    let cd = containerd!();
    let out = cd.run_stdin("cat", &["--rm"], &["cat"], b"one\ntwo\n");
    assert_eq!(out.code(), 0, "cat must see EOF and exit: {}", out.show());
    assert_eq!(out.stdout_text(), "one\ntwo\n");
    let out = cd.run_stdin(
        "sh",
        &["--rm"],
        &["sh", "-c", "wc -l; echo after-eof"],
        b"a\nb\nc\n",
    );
    out.ok();
    assert_eq!(out.stdout_text(), "3\nafter-eof\n", "{}", out.show());
}

/// `/proc/1/cmdline` (NULs as spaces), and whether the payload's process group differs
/// from PID 1's, as the container sees them.
const WHO_IS_PID1: &str = "tr '\\0' ' ' < /proc/1/cmdline; echo; \
    p1=$(cut -d' ' -f5 /proc/1/stat); me=$(cut -d' ' -f5 /proc/$$/stat); \
    [ \"$p1\" != \"$me\" ] && echo own-pgrp || echo same-pgrp";

#[test]
fn pid_1_is_the_init_and_the_payload_has_its_own_process_group() {
    if !crossarch_only(WHAT) {
        return;
    }
    let cd = containerd!();
    let out = cd.run("c", &["--rm"], &["sh", "-c", WHO_IS_PID1]);
    out.ok();
    let expected = format!(
        "{} \nown-pgrp\n",
        pid1_cmdline(&["sh", "-c", WHO_IS_PID1]).replace('\0', " ")
    );
    assert_eq!(out.stdout_text(), expected, "{}", out.show());
    assert!(out
        .stdout_text()
        .starts_with("/dev/.crossarch/init -- sh -c "));
}

#[test]
fn the_annotation_and_the_config_remove_the_init() {
    if !crossarch_only(WHAT) {
        return;
    }
    let cd = containerd!();
    let bare = "cat /proc/1/cmdline ";
    // PID 1 is the payload itself: cat.
    let out = cd.run(
        "annotated",
        &["--rm", "--annotation", "io.crossarch/init=false"],
        &["cat", "/proc/1/cmdline"],
    );
    out.ok();
    assert_eq!(out.stdout_text().replace('\0', " "), bare, "{}", out.show());

    let config = config_file(&cd, "[init]\nenabled = false\n");
    let out = cd.run(
        "configured",
        &["--rm", "--runtime-config-path", &config],
        &["cat", "/proc/1/cmdline"],
    );
    out.ok();
    assert_eq!(out.stdout_text().replace('\0', " "), bare, "{}", out.show());

    // And without either, the init is there.
    let out = cd.run("default", &["--rm"], &["cat", "/proc/1/cmdline"]);
    out.ok();
    assert_eq!(
        out.stdout_text().replace('\0', " "),
        "/dev/.crossarch/init -- cat /proc/1/cmdline ",
        "{}",
        out.show()
    );
}

#[test]
fn a_shared_pid_namespace_gets_no_second_init() {
    if !crossarch_only(WHAT) {
        return;
    }
    let cd = containerd!();
    cd.run_detached("first", &[], &["sleep", "1000"]);
    let pid = cd.task_pid("first");
    let ns = format!("pid:/proc/{pid}/ns/pid");
    let out = cd.run(
        "second",
        &["--with-ns", &ns],
        &[
            "sh",
            "-c",
            "tr '\\0' ' ' < /proc/1/cmdline; echo; ps -o args | grep -c '^/dev/.crossarch/init'",
        ],
    );
    out.ok();
    assert_eq!(
        out.stdout_text(),
        "/dev/.crossarch/init -- sleep 1000 \n1\n",
        "PID 1 is the first container's init, and the second added none: {}",
        out.show()
    );
    let spec: serde_json::Value = cd.spec("second");
    assert_eq!(spec["process"]["args"][0], "sh", "{spec:#}");
    cd.ctr(&["container", "delete", "second"]).ok();
    cd.ctr(&["task", "kill", "-s", "SIGKILL", "first"]).ok();
}

/// qemu would freeze as PID 1 on an untrapped SIGTERM; behind the init, the container ends
/// with 143, in userns mode and in wrap mode.
#[test]
fn a_foreign_container_ends_with_143_on_an_untrapped_sigterm() {
    if !crossarch_only(WHAT) || !Arch::available(&ARM64) {
        return;
    }
    let guard = HostGuard::new();
    let cd = containerd!();
    let image = import_busybox(&cd, &ARM64);
    let wrap = config_file(&cd, "[emulation]\nmode = \"wrap\"\n");
    let userns = config_file(&cd, "[emulation]\nmode = \"userns\"\n");
    for (id, config) in [("userns", &userns), ("wrap", &wrap)] {
        run_image_detached(
            &cd,
            &image,
            ARM64.platform,
            id,
            &["--runtime-config-path", config],
            &["sleep", "1000"],
        );
    }
    for id in ["userns", "wrap"] {
        // Once the init (the task's pid) has started its child, the payload, qemu running sleep.
        let pid = cd.task_pid(id);
        let children = format!("/proc/{pid}/task/{pid}/children");
        wait_until(
            &format!("the init of {id} to start its payload"),
            LONG,
            || fs::read_to_string(&children).is_ok_and(|c| !c.trim().is_empty()),
        );
        let status = exit_status_after_signal(&cd, id, Path::new(&children), "SIGTERM");
        assert_eq!(status, 143, "{id} mode");
    }
    guard.check();
}
