//! Trace mode (`emulation.mode = "trace"`), as a `ctr` user sees it: the injected init traces
//! the container's process tree and runs every foreign exec through qemu, with no
//! binfmt_misc anywhere, so it works on kernels before 6.7 and where user namespaces are
//! refused. Forced here on a kernel that has the private binfmt_misc too. Every test checks
//! that the host's binfmt_misc is untouched.

use std::path::Path;
use std::thread;

use crossarch_integration::crossarch::{
    aarch64_threads_helper, config_file, crossarch_only, exit_status_after_signal, image_run_args,
    import_busybox, route_record, run_image, run_image_detached, HostGuard, ARM64, FOREIGN,
};
use crossarch_integration::{containerd, pty::run_in_pty, Containerd, OutputExt, Step};

const WHAT: &str = "trace mode";
const TRACE: &str = "[emulation]\nmode = \"trace\"\n";

/// What most tests here start from: the host's binfmt_misc guard, a containerd with the
/// arm64 busybox image, and the trace-mode config. None (skip) without crossarch under test
/// or the arm64 fixture, or where the suite cannot start containerd.
struct Arm64 {
    guard: HostGuard,
    cd: Containerd,
    image: String,
    trace: String,
}

impl Arm64 {
    fn start() -> Option<Arm64> {
        if !(crossarch_only(WHAT) && ARM64.available()) {
            return None;
        }
        let guard = HostGuard::new();
        let cd = Containerd::start()?;
        let image = import_busybox(&cd, &ARM64);
        let trace = trace_config(&cd);
        Some(Arm64 {
            guard,
            cd,
            image,
            trace,
        })
    }
}

impl Arm64 {
    /// Runs `argv` in a trace-mode container of the image, removed after.
    fn run(&self, id: &str, argv: &[&str]) -> std::process::Output {
        let opts = ["--rm", "--runtime-config-path", &self.trace];
        run_image(&self.cd, &self.image, ARM64.platform, id, &opts, argv)
    }
}

fn trace_config(cd: &Containerd) -> String {
    config_file(cd, TRACE)
}

#[test]
fn every_process_of_a_foreign_tree_is_emulated_children_pipelines_scripts() {
    let Some(Arm64 {
        guard,
        cd,
        image,
        trace,
    }) = Arm64::start()
    else {
        return;
    };
    let out = run_image(
        &cd,
        &image,
        ARM64.platform,
        "kids",
        &["--rm", "--runtime-config-path", &trace],
        &[
            "sh",
            "-c",
            "uname -m; /bin/uname -m | cat; sh -c 'sh -c \"echo nested $(/bin/uname -m)\"'; \
             echo olleh | rev | cat | tr a-z A-Z; seq 1 200 | grep 7 | wc -l; \
             printf '#!/bin/sh\\necho script $(/bin/uname -m)\\n' > /tmp/s; chmod +x /tmp/s; /tmp/s; \
             grep -c binfmt_misc /proc/self/mountinfo; \
             grep -E '^(TracerPid|Seccomp):' /proc/self/status | tr -d '\\t'",
        ],
    );
    out.ok();
    let text = out.stdout_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "aarch64",
            "aarch64",
            "nested aarch64",
            "HELLO",
            "38",
            "script aarch64",
            "0",
            // Under the exec filter, and traced by nobody between its execs.
            "TracerPid:0",
            "Seccomp:2",
        ],
        "{}",
        out.show()
    );
    guard.check();
}

/// A multi-threaded foreign program (`integration/helpers/threads.rs`): threads that run
/// at once, two of them starting foreign children, and then an exec from a thread that is not
/// the main one while another still runs, which ends the others and takes the process's pid.
#[test]
fn a_multi_threaded_guest_starts_children_and_execs_from_its_threads() {
    let Some(Arm64 {
        guard,
        cd,
        image,
        trace,
    }) = Arm64::start()
    else {
        return;
    };
    let Some(helper) = aarch64_threads_helper() else {
        return;
    };
    let mount = format!(
        "type=bind,src={},dst=/threads,options=rbind:ro",
        helper.display()
    );
    let out = run_image(
        &cd,
        &image,
        ARM64.platform,
        "threads",
        &["--rm", "--mount", &mount, "--runtime-config-path", &trace],
        &["sh", "-c", "/threads /bin/sh"],
    );
    out.ok();
    assert_eq!(
        out.stdout_text().lines().collect::<Vec<_>>(),
        [
            "child-0 aarch64",
            "spin-1 done",
            "child-2 aarch64",
            "spin-3 done",
            "exec-from-thread same-pid",
            "aarch64",
        ],
        "{}",
        out.show()
    );
    guard.check();
}

/// containerd's default seccomp profile (what Kubernetes' RuntimeDefault gives) lets trace
/// mode's init do its work: the exec filter stacks on the profile's.
#[test]
fn a_tree_is_emulated_under_containerds_default_seccomp_profile() {
    let Some(Arm64 {
        guard,
        cd,
        image,
        trace,
    }) = Arm64::start()
    else {
        return;
    };
    let out = run_image(
        &cd,
        &image,
        ARM64.platform,
        "profiled",
        &["--rm", "--seccomp", "--runtime-config-path", &trace],
        &[
            "sh",
            "-c",
            "/bin/uname -m | cat; sh -c 'echo nested $(uname -m)'; \
             grep Seccomp_filters /proc/self/status | tr -d '\\t'",
        ],
    );
    out.ok();
    assert_eq!(
        out.stdout_text().lines().collect::<Vec<_>>(),
        ["aarch64", "nested aarch64", "Seccomp_filters:2"],
        "{}",
        out.show()
    );
    guard.check();
}

#[test]
fn the_record_says_trace_and_an_exec_is_traced_too() {
    let Some(Arm64 {
        guard,
        cd,
        image,
        trace,
    }) = Arm64::start()
    else {
        return;
    };
    run_image_detached(
        &cd,
        &image,
        ARM64.platform,
        "c",
        &["--runtime-config-path", &trace],
        &["sleep", "1000"],
    );
    let record = route_record(&cd, "c");
    assert_eq!(record["mode"], "trace", "{record:#}");
    assert_eq!(
        record["mode_why"], "emulation.mode is \"trace\" in the crossarch config",
        "{record:#}"
    );
    assert_eq!(
        record["args"].as_array().map(|a| a[..3].to_vec()),
        Some(vec![
            "/dev/.crossarch/init".into(),
            "--trace".into(),
            "/dev/.crossarch".into()
        ]),
        "{record:#}"
    );
    let out = cd.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "c",
        "sh",
        "-c",
        "uname -m; /bin/uname -m | cat; ps | grep -c '[q]emu-aarch64-static -0 sleep /bin/sleep 1000'; exit 3",
    ]);
    assert_eq!(out.code(), 3, "{}", out.show());
    // ps of the traced exec lists the container's sleep, as qemu runs it.
    assert_eq!(out.stdout_text(), "aarch64\naarch64\n1\n", "{}", out.show());
    cd.ctr(&["task", "kill", "-s", "SIGKILL", "c"]).ok();
    cd.wait_status("c", "STOPPED", std::time::Duration::from_secs(30));
    guard.check();
}

#[test]
fn exit_codes_and_sigterm_pass_through_the_tracer() {
    let Some(Arm64 {
        guard,
        cd,
        image,
        trace,
    }) = Arm64::start()
    else {
        return;
    };
    let opts = ["--rm", "--runtime-config-path", trace.as_str()];
    for code in [0, 3, 255] {
        let out = run_image(
            &cd,
            &image,
            ARM64.platform,
            &format!("exit{code}"),
            &opts,
            &["sh", "-c", &format!("/bin/sh -c 'exit {code}'; exit $?")],
        );
        assert_eq!(out.code(), code, "{}", out.show());
    }
    let ready_loop = "touch /tmp/ready; while true; do /bin/sleep 0.1; done";
    for (id, script, want) in [
        ("trapped", format!("trap 'exit 42' TERM; {ready_loop}"), 42),
        ("untrapped", ready_loop.to_string(), 143),
    ] {
        run_image_detached(
            &cd,
            &image,
            ARM64.platform,
            id,
            &["--runtime-config-path", &trace],
            &["sh", "-c", &script],
        );
        let ready = format!("/proc/{}/root/tmp/ready", cd.task_pid(id));
        assert_eq!(
            exit_status_after_signal(&cd, id, Path::new(&ready), "SIGTERM"),
            want,
            "{id}"
        );
    }
    guard.check();
}

#[test]
fn every_foreign_architecture_and_its_children() {
    if !crossarch_only(WHAT) {
        return;
    }
    let guard = HostGuard::new();
    let cd = containerd!();
    let trace = trace_config(&cd);
    let mut ran = 0;
    for arch in FOREIGN.iter().filter(|a| a.available()) {
        let image = import_busybox(&cd, arch);
        let out = run_image(
            &cd,
            &image,
            arch.platform,
            &format!("arch-{}", arch.deb),
            &["--rm", "--runtime-config-path", &trace],
            &["sh", "-c", "uname -m; /bin/uname -m | cat"],
        );
        out.ok();
        assert_eq!(
            out.stdout_text(),
            format!("{0}\n{0}\n", arch.uname),
            "{}: {}",
            arch.deb,
            out.show()
        );
        ran += 1;
    }
    assert!(ran >= 1, "no foreign fixture was available");
    guard.check();
}

#[test]
fn twenty_traced_containers_in_parallel() {
    let Some(Arm64 {
        guard,
        cd,
        image,
        trace,
    }) = Arm64::start()
    else {
        return;
    };
    let check = "m=$(/bin/uname -m | cat); echo $m; [ \"$m\" = aarch64 ] || exit 9";
    let results: Vec<(String, String, i32)> = thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let (cd, image, trace) = (&cd, &image, &trace);
                s.spawn(move || {
                    (0..5)
                        .map(|i| {
                            let id = format!("t{w}-{i}");
                            let out = run_image(
                                cd,
                                image,
                                ARM64.platform,
                                &id,
                                &["--rm", "--runtime-config-path", trace],
                                &["sh", "-c", check],
                            );
                            (id, out.show(), out.code())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    assert_eq!(results.len(), 20);
    for (id, shown, code) in &results {
        assert_eq!(*code, 0, "{id} did not see aarch64: {shown}");
    }
    guard.check();
}

/// What busybox's line editor prints at the end of each prompt: a cursor position query.
const PROMPT: &str = "\x1b[6n";

/// `ctr run -t` of a foreign shell in trace mode: job control (a background job listed and
/// killed, Ctrl-Z of a foreground one as it execs and `fg` of it), Ctrl-C of a foreground
/// one, and the shell's exit code.
#[test]
fn a_terminal_keeps_job_control_and_ctrl_c() {
    let Some(arm64) = Arm64::start() else {
        return;
    };
    let trace = arm64.trace.clone();
    arm64.terminal_session(&["--runtime-config-path", &trace]);
}

/// The same session in userns mode, where the kernel starts qemu and nothing is traced: what
/// trace mode must match.
#[test]
fn a_terminal_keeps_job_control_and_ctrl_c_in_userns_mode_too() {
    let Some(arm64) = Arm64::start() else {
        return;
    };
    let userns = config_file(&arm64.cd, "[emulation]\nmode = \"userns\"\n");
    arm64.terminal_session(&["--runtime-config-path", &userns]);
}

impl Arm64 {
    fn terminal_session(&self, config: &[&str]) {
        let Arm64 {
            guard, cd, image, ..
        } = self;
        let opts = [&["--rm", "-t"], config].concat();
        let args = image_run_args(cd, image, ARM64.platform, "tty", &opts, &["sh"]);
        let argv = cd.ctr_argv(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let res = run_in_pty(
            &argv,
            24,
            80,
            &[
                Step::Send("sleep 100 &\r".into()),
                Step::Send("jobs; echo job-$((1+1))\r".into()),
                Step::Expect("job-2".into()),
                // Each next line only at the next prompt, which busybox's line editor ends with a
                // cursor position query (ESC[6n): typed earlier, an emulated shell may read it
                // as the answer.
                Step::ExpectNew(PROMPT.into()),
                Step::Send("kill %1; wait; echo killed-$((2+1))\r".into()),
                Step::Expect("killed-3".into()),
                Step::ExpectNew(PROMPT.into()),
                // Ctrl-Z stops the foreground job just after it execs a foreign sleep, and `fg`
                // gets it back: it then runs to its end and exits 0 (a job stopped again would
                // print a second "Stopped"). One Ctrl-Z: a second one, typed while qemu-user's
                // guest is stopping for the first, is queued in qemu and stops the job again
                // after `fg`, in any mode (README).
                Step::Send("sh -c 'echo fore-$((4+4)); exec sleep 2'\r".into()),
                Step::Expect("fore-8".into()),
                Step::Send("\x1a".into()),
                Step::Expect("Stopped".into()),
                Step::ExpectNew(PROMPT.into()),
                Step::Send("echo stopped-$((2+2)); fg; echo fg-$?\r".into()),
                Step::Expect("stopped-4".into()),
                Step::Expect("fg-0".into()),
                Step::ExpectNew(PROMPT.into()),
                Step::Send("jobs; echo jobs-$((6+6))\r".into()),
                Step::Expect("jobs-12".into()),
                Step::ExpectNew(PROMPT.into()),
                // Ctrl-C interrupts the foreground job, and the shell's prompt comes back.
                Step::Send("sleep 100\r".into()),
                Step::SendUntil {
                    text: "\x03".into(),
                    until: "^C".into(),
                },
                Step::Expect("^C".into()),
                Step::ExpectNew(PROMPT.into()),
                Step::Send("echo back-$((3+4)) $(uname -m)\r".into()),
                Step::Expect("back-7 aarch64".into()),
                Step::ExpectNew(PROMPT.into()),
                Step::Send("exit 7\r".into()),
            ],
        );
        assert_eq!(res.code, 7, "{}", res.screen);
        assert!(
            res.screen.contains("Running") && res.screen.contains("sleep 100"),
            "jobs lists the background job: {}",
            res.screen
        );
        assert_eq!(
            res.screen.matches("Stopped").count(),
            1,
            "the job fg'd after Ctrl-Z ran to its end: {}",
            res.screen
        );
        guard.check();
    }
}

/// A process that switches to another user (`su`, gosu, an entrypoint that drops
/// privileges) can no longer be read by the init, which has no CAP_SYS_PTRACE, until it
/// execs: the init hands that first exec over to itself, started in the process as the user,
/// and reads the user's later execs with the user's ids. Every foreign program the user
/// starts is emulated, the memfd of the hand-over is not left open in the program, and a
/// missing program fails in the caller's exec.
#[test]
fn a_switch_to_another_user_is_emulated() {
    let Some(arm64) = Arm64::start() else {
        return;
    };
    let user = "busybox id -u; /bin/uname -m; uname -m | cat; sh -c 'uname -m; exit 3'; \
                echo inner=\\$?; ls /proc/self/fd | wc -l";
    let out = arm64.run(
        "su",
        &[
            "sh",
            "-c",
            &format!(
                "ls /proc/self/fd | wc -l; su -s /bin/sh nobody -c \"{user}\"; echo su=$?; \
                 su -s /nonexistent nobody -c true; echo missing=$?"
            ),
        ],
    );
    let fds = out
        .stdout_text()
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        out.stdout_text(),
        format!("{fds}\n65534\naarch64\naarch64\naarch64\ninner=3\n{fds}\nsu=0\nmissing=1\n"),
        "{}",
        out.show()
    );
    // A missing program fails in su's own exec, as it would natively, so that a search
    // along PATH would go on.
    assert_eq!(
        out.stderr_text(),
        "su: can't execute '/nonexistent': No such file or directory\n",
        "{}",
        out.show()
    );
    arm64.guard.check();
}

/// The attack on init while it answers another user's execs: a process of that user tries,
/// without pause, to signal PID 1, to renice it, and to signal each of its threads by id,
/// while the user execs a hundred times. Init's main thread never takes another user's ids
/// (a short-lived thread of init with that user's ids answers those execs), so the kernel
/// refuses the first two. It lets the third through while such a thread lives, and delivers
/// the signal to all of init, which does not pass it on (and says so); a SIGKILL it ignores,
/// as for any init of a pid namespace. The container's root shell is not killed. (With init taking the user's real id for an instant, an earlier
/// version, hundreds got through.)
#[test]
fn a_user_cannot_signal_init_while_it_reads_that_users_exec() {
    let Some(arm64) = Arm64::start() else {
        return;
    };
    let user = "(while :; do kill -TERM 1 2>/dev/null && echo signalled; \
                renice -n 19 -p 1 >/dev/null 2>&1 && echo reniced; \
                for t in /proc/1/task/*; do t=${t##*/}; \
                [ $t != 1 ] && kill -TERM $t 2>/dev/null && echo thread-hit >&2 && \
                kill -KILL $t 2>/dev/null; done; done) & \
                for i in $(seq 100); do /bin/true; done; kill $!";
    let sh = format!("su -s /bin/sh nobody -c '{user}'; echo alive");
    let out = arm64.run("kill1", &["sh", "-c", &sh]);
    assert_eq!(out.stdout_text(), "alive\n", "{}", out.show());
    let hits = out.stderr_text().matches("thread-hit").count();
    eprintln!("signals the kernel let through to a thread of init: {hits}");
    if hits > 0 {
        assert!(
            out.stderr_text().contains("signal 15 from process ")
                && out.stderr_text().contains("is not passed on"),
            "{}",
            out.show()
        );
    }
    arm64.guard.check();
}
