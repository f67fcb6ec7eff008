//! Hostile containers: each test runs a real attack from inside a real container and asserts
//! that it fails. The attacks aim at what crossarch adds to runc: the host's qemu and the
//! injected init reachable from a container, the pod namespaces crossarch makes, the host's
//! `/sys` bound into foreign containers, and the shim's own reading of a container's files
//! (huge inputs, leases, planted links, hostile root filesystems).
//!
//! The system calls come from a static x86_64 helper (`integration/helpers/attack.c`, built
//! with `cc -static` into the test's directory and bind-mounted at `/attack`), which runs
//! natively in every container, a foreign one included. Each attempt prints one `RESULT`
//! line, and every test prints what each attempt returned.
//!
//! Every test holds a [`HostFilesGuard`]: mode, owner and extended attributes of the host's
//! `qemu-*-static` and of the shim and its init are recorded first, compared at the end, and
//! restored (then the test fails) when a container changed them. The host's
//! `/proc/sys/fs/binfmt_misc` is only ever read ([`HostGuard`]).
//!
//! crossarch's own behaviour: with another `CROSSARCH_TEST_RUNTIME` these tests skip.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crossarch_integration::cmd::try_run_with_timeout;
use crossarch_integration::crossarch::{
    build_static_helper, config_file, copy_dir, crossarch_only, image_run_args, import_busybox,
    Arch, HostFilesGuard, HostGuard, MappedSpecConfig, ARM64, S390X,
};
use crossarch_integration::{
    host, host_arch, shim_dir, wait_until, Containerd, Options, OutputExt, CONTAINER_PATH,
};

const WHAT: &str = "crossarch's defences against hostile containers";
const LONG: Duration = Duration::from_secs(30);
const SANDBOX: &str = "io.kubernetes.cri.container-type=sandbox";
const GROUP: &str = "io.containerd.runc.v2.group";

/// The default capability ceiling plus CAP_SYS_ADMIN.
const SYS_ADMIN_CEILING: &str = "[capabilities]\nallowed = [\"CAP_CHOWN\", \
    \"CAP_DAC_OVERRIDE\", \"CAP_FSETID\", \"CAP_FOWNER\", \"CAP_SETGID\", \"CAP_SETUID\", \
    \"CAP_SETFCAP\", \"CAP_SETPCAP\", \"CAP_NET_BIND_SERVICE\", \"CAP_SYS_CHROOT\", \
    \"CAP_KILL\", \"CAP_AUDIT_WRITE\", \"CAP_SYS_ADMIN\"]\n";

/// A test's private containerd, the attack helper, and the guards of the host.
struct Hostile {
    // Dropped in this order: the containers go before the guards look at the host.
    cd: Containerd,
    helper: PathBuf,
    files: HostFilesGuard,
    binfmt: HostGuard,
}

impl Hostile {
    /// `None` (after saying why) when crossarch is not under test or a prerequisite is
    /// missing: one of `arches`, containerd, runc, a C compiler.
    fn start(arches: &[Arch]) -> Option<Hostile> {
        Hostile::start_with(arches, Options::default())
    }

    fn start_with(arches: &[Arch], options: Options) -> Option<Hostile> {
        if !crossarch_only(WHAT) || !arches.iter().all(|a| a.available()) {
            return None;
        }
        let files = HostFilesGuard::new();
        let binfmt = HostGuard::new();
        let cd = Containerd::start_with_options(options)?;
        let helper = build_static_helper("attack", cd.dir())?;
        Some(Hostile {
            cd,
            helper,
            files,
            binfmt,
        })
    }

    /// `--mount` of the helper at /attack, read-only.
    fn helper_mount(&self) -> String {
        format!(
            "type=bind,src={},dst=/attack,options=rbind:ro",
            self.helper.display()
        )
    }

    /// Stops every container, then checks (and restores) the host files and checks the
    /// host's binfmt_misc. Called before the attacks' outcomes are asserted, so a changed
    /// host file is always reported and restored first.
    fn finish(self) {
        let Hostile {
            cd, files, binfmt, ..
        } = self;
        drop(cd);
        files.check();
        binfmt.check();
    }
}

/// One attempt of the helper (or of a script that prints the same form).
#[derive(Debug, Clone)]
struct Attempt {
    what: String,
    succeeded: bool,
    detail: String,
}

/// The `RESULT <what> ok|fail <detail>` lines of `text`.
fn attempts(text: &str) -> Vec<Attempt> {
    text.lines()
        .filter_map(|l| l.strip_prefix("RESULT "))
        .map(|l| {
            let mut f = l.splitn(3, ' ');
            let what = f.next().unwrap_or_default().to_string();
            let verdict = f.next().unwrap_or_default();
            Attempt {
                what,
                succeeded: verdict == "ok",
                detail: f.next().unwrap_or_default().to_string(),
            }
        })
        .collect()
}

fn show_attempts(label: &str, all: &[Attempt]) {
    for a in all {
        println!(
            "{label}: {} -> {}{}",
            a.what,
            if a.succeeded { "SUCCEEDED" } else { "failed" },
            if a.detail.is_empty() {
                String::new()
            } else {
                format!(" ({})", a.detail)
            }
        );
    }
}

/// The attempts of `label` that succeeded, as `label: what` lines.
fn succeeded(label: &str, all: &[Attempt]) -> Vec<String> {
    all.iter()
        .filter(|a| a.succeeded)
        .map(|a| format!("{label}: {}", a.what))
        .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Runs `ctr ARGS` with a deadline; returns the output (or why it did not finish) and how
/// long it took.
fn ctr_bounded(
    cd: &Containerd,
    args: &[String],
    bound: Duration,
) -> (Result<Output, String>, Duration) {
    let started = Instant::now();
    let out = try_run_with_timeout(cd.ctr_command(&strs(args)), None, bound);
    (out, started.elapsed())
}

/// `run --runtime R --env PATH OPTS --rootfs ROOTFS ID ARGV`.
fn rootfs_run_args(
    cd: &Containerd,
    rootfs: &Path,
    id: &str,
    opts: &[&str],
    argv: &[&str],
) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "run".into(),
        "--runtime".into(),
        cd.runtime().into(),
        "--env".into(),
        CONTAINER_PATH.into(),
    ];
    args.extend(opts.iter().map(|s| s.to_string()));
    args.push("--rootfs".into());
    args.push(rootfs.display().to_string());
    args.push(id.into());
    args.extend(argv.iter().map(|s| s.to_string()));
    args
}

/// `ctr run` of `args` to completion (within the harness's deadline), its output printed.
fn run_shown(cd: &Containerd, label: &str, args: &[String]) -> Output {
    let out = cd.ctr(&strs(args));
    println!("--- {label}: {}", out.show());
    out
}

/// `ctr task exec` with a fresh exec id.
fn exec(cd: &Containerd, id: &str, argv: &[&str]) -> Output {
    static N: AtomicU32 = AtomicU32::new(0);
    let exec_id = format!("x{}", N.fetch_add(1, Ordering::SeqCst));
    let mut args = vec!["task", "exec", "--exec-id", &exec_id, id];
    args.extend_from_slice(argv);
    cd.ctr(&args)
}

fn ns(pid: u32, kind: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

fn own_ns(kind: &str) -> String {
    fs::read_link(format!("/proc/self/ns/{kind}"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// Runs a host command that must succeed.
fn host_cmd(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", out.show());
    out.stdout_text()
}

/// The first `CapEff:` mask in `text` (a copy of /proc/self/status).
fn cap_eff(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
}

/// Prints the lines of containerd's log (which has the shim's) that contain `text`.
fn print_log_lines(cd: &Containerd, text: &str) {
    let log = fs::read_to_string(cd.log_path()).unwrap_or_default();
    for l in log.lines().filter(|l| l.contains(text)) {
        println!("log: {l}");
    }
}

// ---------------------------------------------------------------------------------------
// 1. /proc/PID/exe

/// Writes to the file behind /proc/PID/exe: setuid, owner, file capabilities.
fn exe_attack(target: &str) -> String {
    format!(
        "/attack readlink {target}; /attack chmod 4755 {target}; /attack chown 1 1 {target}; \
         /attack setcap {target}; "
    )
}

/// The host's qemu behind an emulated process: `/proc/PID/exe` of a foreign `sleep` and of
/// the foreign shell itself, in userns mode (the kernel's binfmt_misc opened qemu), in
/// wrap mode and in trace mode (qemu is bind-mounted, and in trace mode the init's exec of
/// it replaced the guest's). Nothing may change the host's file.
#[test]
fn proc_pid_exe_of_an_emulated_process_cannot_change_the_hosts_qemu() {
    let Some(t) = Hostile::start(&[ARM64]) else {
        return;
    };
    let cd = &t.cd;
    let image = import_busybox(cd, &ARM64);
    let wrap = config_file(cd, "[emulation]\nmode = \"wrap\"\n");
    let trace = config_file(cd, "[emulation]\nmode = \"trace\"\n");
    // A node whose qemu is found through a symlink (as in Debian's /usr/libexec/qemu-binfmt):
    // the link must not lead the kernel's open to a writable mount.
    let links = cd.dir().join("qemu-links");
    fs::create_dir_all(&links).unwrap();
    let host_qemu = ARM64.host_qemu().expect("available() found it");
    std::os::unix::fs::symlink(&host_qemu, links.join(host_qemu.file_name().unwrap())).unwrap();
    let linked = config_file(
        cd,
        &format!("[emulation]\nqemu_dirs = [\"{}\"]\n", links.display()),
    );
    let mount = t.helper_mount();
    let script = format!(
        "sleep 30 & s=$!; {}{}kill $s 2>/dev/null; true",
        exe_attack("/proc/$s/exe"),
        exe_attack("/proc/$$/exe")
    );
    let mut outcomes = Vec::new();
    for (id, opts) in [
        ("exe-userns", vec!["--rm", "--mount", &mount]),
        (
            "exe-wrap",
            vec!["--rm", "--mount", &mount, "--runtime-config-path", &wrap],
        ),
        (
            "exe-trace",
            vec!["--rm", "--mount", &mount, "--runtime-config-path", &trace],
        ),
        (
            "exe-linked-qemu",
            vec!["--rm", "--mount", &mount, "--runtime-config-path", &linked],
        ),
    ] {
        let args = image_run_args(
            cd,
            &image,
            ARM64.platform,
            id,
            &opts,
            &["sh", "-c", &script],
        );
        let out = run_shown(cd, id, &args);
        let all = attempts(&out.stdout_text());
        show_attempts(id, &all);
        outcomes.push((id, all, out.show()));
    }
    t.finish();
    for (id, all, shown) in &outcomes {
        assert_eq!(all.len(), 6, "{id}: six attempts: {shown}");
        let won = succeeded(id, all);
        assert!(won.is_empty(), "attacks that succeeded: {won:?}");
    }
}

/// Runs `script` in the arm64 busybox in trace mode, with the attack helper at /attack, and
/// returns its output and attempts once every container is gone and the host is checked.
fn in_trace_mode(id: &str, script: &str) -> Option<(Output, Vec<Attempt>)> {
    let t = Hostile::start(&[ARM64])?;
    let cd = &t.cd;
    let image = import_busybox(cd, &ARM64);
    let trace = config_file(cd, "[emulation]\nmode = \"trace\"\n");
    let mount = t.helper_mount();
    let args = image_run_args(
        cd,
        &image,
        ARM64.platform,
        id,
        &["--rm", "--mount", &mount, "--runtime-config-path", &trace],
        &["sh", "-c", script],
    );
    let out = run_shown(cd, id, &args);
    let all = attempts(&out.stdout_text());
    show_attempts(id, &all);
    t.finish();
    Some((out, all))
}

/// A traced process hands trace mode's init hostile exec arguments (unmapped path, argv and
/// argv[0], a path running into an unmapped page, and its stack pointer moved to an
/// unmapped page, where the init would write the qemu exec). Each exec fails as it would
/// without a tracer, the init says once what it could not write, and it goes on tracing:
/// the foreign children after it are still emulated.
#[test]
fn hostile_exec_arguments_do_not_break_trace_modes_init() {
    let Some((out, all)) = in_trace_mode(
        "badexec",
        "/attack badexec /bin/true; echo attack=$?; uname -m; /bin/uname -m | cat",
    ) else {
        return;
    };
    let text = out.stdout_text();
    let shown = out.show();
    assert_eq!(all.len(), 5, "five hostile execs: {shown}");
    let won = succeeded("badexec", &all);
    assert!(won.is_empty(), "execs that ran: {won:?}");
    assert!(
        text.ends_with("attack=0\naarch64\naarch64\n"),
        "the init still traces after them: {shown}"
    );
    assert!(
        out.stderr_text()
            .contains("crossarch-init: warning: trace mode: cannot write the qemu exec"),
        "{shown}"
    );
}

/// Not an attack, the other side of the same design: trace mode's init attaches to a thread
/// only for the instant of a foreign exec, so a debugger in the container (what gdb and
/// strace do) can attach to a process there, and after it the tree is still emulated.
#[test]
fn a_debugger_in_a_trace_mode_container_can_attach() {
    let Some((out, all)) =
        in_trace_mode("debug", "/attack debug; echo debug=$?; /bin/uname -m | cat")
    else {
        return;
    };
    let text = out.stdout_text();
    let shown = out.show();
    assert_eq!(all.len(), 4, "{shown}");
    assert!(all.iter().all(|a| a.succeeded), "{shown}");
    assert!(text.ends_with("debug=4\naarch64\n"), "{shown}");
}

/// A process that catches a signal, and is sent it without pause or every few microseconds,
/// while it execs a foreign program: with SA_RESTART on the handler, the exec runs with its
/// own arguments every time. Trace mode's init writes the qemu exec's arguments below the
/// thread's stack pointer, where a handler builds its frame, so it blocks the thread's
/// signals until the exec has begun. Without SA_RESTART, a native exec never fails with
/// EINTR; in trace mode it can only while the exec waits for the init to take it (the
/// kernel's listener cuts that wait short), not once the init has it: rarely, then, even
/// with a signal every 100 µs.
#[test]
fn signals_caught_at_a_foreign_exec_do_not_spoil_it() {
    let Some((out, all)) = in_trace_mode(
        "execsig",
        "/attack execsig 150 /bin/sh restart 0; echo attack=$?; \
         /attack execsig 150 /bin/sh restart 20; echo attack=$?; \
         /attack execsig 100 /bin/sh 0 100; echo attack=$?; /bin/uname -m | cat",
    ) else {
        return;
    };
    let text = out.stdout_text();
    let summary: Vec<&str> = text.lines().filter(|l| !l.starts_with("RESULT")).collect();
    let shown = format!("{summary:?}\n{}", out.show());
    let won = succeeded("execsig", &all);
    let (restart, eintr): (Vec<_>, Vec<_>) = won.iter().partition(|w| w.contains("-restart-"));
    assert!(restart.is_empty(), "execs spoiled: {restart:?}\n{shown}");
    // Before the init took the exec's wait out of the signals' reach, nearly all failed.
    assert!(
        eintr.len() < 20,
        "{} execs of 100 failed: {shown}",
        eintr.len()
    );
    assert!(
        summary.len() == 7 && summary[1] == "attack=0" && summary[3] == "attack=0",
        "{shown}"
    );
    assert!(text.ends_with("\naarch64\n"), "{shown}");
}

/// The injected init, `/proc/1/exe`: in a native container, and arm64 ones in userns, wrap
/// and trace mode (where the init is also the tracer).
#[test]
fn proc_1_exe_cannot_change_the_hosts_init() {
    let Some(t) = Hostile::start(&[ARM64]) else {
        return;
    };
    let cd = &t.cd;
    let image = import_busybox(cd, &ARM64);
    let wrap = config_file(cd, "[emulation]\nmode = \"wrap\"\n");
    let trace = config_file(cd, "[emulation]\nmode = \"trace\"\n");
    let mount = t.helper_mount();
    let script = format!("{}true", exe_attack("/proc/1/exe"));
    let argv = ["sh", "-c", script.as_str()];
    let runs = [
        (
            "init-native",
            rootfs_run_args(
                cd,
                cd.rootfs(),
                "init-native",
                &["--rm", "--mount", &mount],
                &argv,
            ),
        ),
        (
            "init-userns",
            image_run_args(
                cd,
                &image,
                ARM64.platform,
                "init-userns",
                &["--rm", "--mount", &mount],
                &argv,
            ),
        ),
        (
            "init-wrap",
            image_run_args(
                cd,
                &image,
                ARM64.platform,
                "init-wrap",
                &["--rm", "--mount", &mount, "--runtime-config-path", &wrap],
                &argv,
            ),
        ),
        (
            "init-trace",
            image_run_args(
                cd,
                &image,
                ARM64.platform,
                "init-trace",
                &["--rm", "--mount", &mount, "--runtime-config-path", &trace],
                &argv,
            ),
        ),
    ];
    let mut outcomes = Vec::new();
    for (id, args) in &runs {
        let out = run_shown(cd, id, args);
        let all = attempts(&out.stdout_text());
        show_attempts(id, &all);
        outcomes.push((*id, all, out.show()));
    }
    t.finish();
    for (id, all, shown) in &outcomes {
        assert_eq!(all.len(), 3, "{id}: three attempts: {shown}");
        let won = succeeded(id, all);
        assert!(won.is_empty(), "attacks that succeeded: {won:?}");
    }
}

// ---------------------------------------------------------------------------------------
// 2. Remounts with CAP_SYS_ADMIN in the container's own user namespace

/// A foreign container in userns mode whose ceiling allows CAP_SYS_ADMIN (and asks for it,
/// not privileged) tries to make writable again what crossarch put there read-only: the
/// init's bind mount (then chmod 4755 through it), the private binfmt_misc, and whatever
/// backs the qemu of an emulated process. After the fix no binfmt_misc is mounted in the
/// container at all.
#[test]
fn sys_admin_in_the_containers_user_namespace_cannot_remount_crossarchs_mounts() {
    let Some(t) = Hostile::start(&[ARM64]) else {
        return;
    };
    let cd = &t.cd;
    let image = import_busybox(cd, &ARM64);
    let admin = config_file(cd, SYS_ADMIN_CEILING);
    let mount = t.helper_mount();
    // The binfmt_misc steps only ever run in a user namespace that is not the host's.
    let script = format!(
        "sleep 30 & s=$!; \
        grep CapEff /proc/self/status; readlink /proc/self/ns/user; \
        echo '--- binfmt_misc in mountinfo:'; grep binfmt_misc /proc/self/mountinfo; \
        echo \"grep-binfmt=$?\"; echo '--- crossarch mounts:'; grep /dev/.crossarch /proc/self/mountinfo; \
        /attack readlink /proc/$s/exe; \
        /attack remount /dev/.crossarch/init; \
        /attack chmod 4755 /dev/.crossarch/init; \
        if [ \"$(readlink /proc/self/ns/user)\" = '{host_userns}' ]; then echo 'IN THE HOST USER NAMESPACE'; else \
        /attack remount /proc/sys/fs/binfmt_misc; \
        /attack writable /proc/sys/fs/binfmt_misc/register; fi; \
        /attack remount /proc/$s/exe; \
        for m in $(grep -o ' /dev/.crossarch/qemu[^ ]*' /proc/$s/mountinfo); do /attack remount $m; done; \
        kill $s 2>/dev/null; true",
        host_userns = own_ns("user")
    );
    let args = image_run_args(
        cd,
        &image,
        ARM64.platform,
        "admin",
        &[
            "--rm",
            "--mount",
            &mount,
            "--runtime-config-path",
            &admin,
            "--cap-add",
            "CAP_SYS_ADMIN",
        ],
        &["sh", "-c", &script],
    );
    let out = run_shown(cd, "admin", &args);
    let text = out.stdout_text();
    let all = attempts(&text);
    show_attempts("admin", &all);
    let binfmt_lines: Vec<String> = text
        .lines()
        .skip_while(|l| !l.starts_with("--- binfmt_misc"))
        .skip(1)
        .take_while(|l| !l.starts_with("grep-binfmt="))
        .map(str::to_string)
        .collect();
    println!("binfmt_misc mounts the container sees: {binfmt_lines:?}");
    print_log_lines(cd, "container admin:");
    let shown = out.show();
    t.finish();
    assert!(
        cap_eff(&text).is_some_and(|c| c & (1 << 21) != 0),
        "the container holds CAP_SYS_ADMIN (bit 21) as asked: {shown}"
    );
    assert!(
        !text.contains("IN THE HOST USER NAMESPACE"),
        "a foreign container in userns mode has a user namespace of its own: {shown}"
    );
    // init remount and chmod, binfmt_misc remount (one more while it is mounted) and
    // register, the qemu behind /proc/PID/exe.
    assert!(all.len() >= 5, "every attempt ran: {shown}");
    let won = succeeded("admin", &all);
    assert!(won.is_empty(), "attacks that succeeded: {won:?}");
    assert!(
        binfmt_lines.is_empty(),
        "no binfmt_misc may be mounted in the container: {binfmt_lines:?}"
    );
}

// ---------------------------------------------------------------------------------------
// 3. Capabilities over a pod's namespaces

/// What a container of a pod tries against the pod's network and UTS namespaces: none of it
/// is in the default ceiling (NET_ADMIN, SYS_ADMIN, NET_RAW). It first checks that it is in
/// the pod's namespaces (never the host's), and stops otherwise.
fn pod_attack_script(net: &str, uts: &str) -> String {
    format!(
        "n=$(readlink /proc/self/ns/net); u=$(readlink /proc/self/ns/uts); \
         if [ \"$n\" != '{net}' ] || [ \"$u\" != '{uts}' ]; then echo \"WRONG NAMESPACES $n $u\"; exit 99; fi; \
         grep -E '^Cap(Eff|Bnd)' /proc/self/status; readlink /proc/self/ns/user; \
         if ip addr add 10.254.0.1/32 dev lo; then echo 'RESULT ip-addr-add-10.254.0.1/32-dev-lo ok'; \
         else echo \"RESULT ip-addr-add-10.254.0.1/32-dev-lo fail rc=$?\"; fi; \
         if hostname xx; then echo 'RESULT hostname-xx ok'; else echo \"RESULT hostname-xx fail rc=$?\"; fi; \
         /attack rawsock; true"
    )
}

/// The pod's view from the host: the addresses of its loopback and its hostname.
fn pod_state(sandbox: u32) -> (String, String) {
    let addrs = host_cmd(&[
        "nsenter",
        &format!("--net=/proc/{sandbox}/ns/net"),
        "ip",
        "-o",
        "addr",
        "show",
        "dev",
        "lo",
    ]);
    let name = host_cmd(&[
        "nsenter",
        &format!("--uts=/proc/{sandbox}/ns/uts"),
        "hostname",
    ]);
    (addrs, name.trim().to_string())
}

/// Runs the attack from a native and from an arm64 container that join the sandbox's
/// network, IPC and UTS namespaces in shim group `group`; asserts every attempt failed and
/// the pod is unchanged.
fn attack_pod_from_native_and_foreign(t: Hostile, sandbox: u32, group: &str, shape: &str) {
    let cd = &t.cd;
    let image = import_busybox(cd, &ARM64);
    let before = pod_state(sandbox);
    println!(
        "{shape}: sandbox user namespace {} (the host's is {}), lo: {}",
        ns(sandbox, "user"),
        own_ns("user"),
        before.0.trim()
    );
    let script = pod_attack_script(&ns(sandbox, "net"), &ns(sandbox, "uts"));
    let mount = t.helper_mount();
    let group = format!("{GROUP}={group}");
    let joins: Vec<String> = ["network:net", "ipc:ipc", "uts:uts"]
        .iter()
        .map(|kn| {
            let (kind, file) = kn.split_once(':').unwrap();
            format!("{kind}:/proc/{sandbox}/ns/{file}")
        })
        .flat_map(|j| ["--with-ns".to_string(), j])
        .collect();
    let mut opts: Vec<&str> = vec!["--rm", "--mount", &mount, "--annotation", &group];
    opts.extend(strs(&joins));
    let argv = ["sh", "-c", script.as_str()];
    let runs = [
        (
            "native",
            rootfs_run_args(cd, cd.rootfs(), "pod-native", &opts, &argv),
        ),
        (
            "arm64",
            image_run_args(cd, &image, ARM64.platform, "pod-arm64", &opts, &argv),
        ),
    ];
    let mut outcomes = Vec::new();
    for (which, args) in &runs {
        let label = format!("{shape}, {which} container");
        let out = run_shown(cd, &label, args);
        let all = attempts(&out.stdout_text());
        show_attempts(&label, &all);
        outcomes.push((label, all, out.show()));
    }
    let after = pod_state(sandbox);
    println!(
        "{shape}: after: lo: {}, hostname {:?} (before {:?})",
        after.0.trim(),
        after.1,
        before.1
    );
    t.finish();
    let mut won = Vec::new();
    for (label, all, shown) in &outcomes {
        assert!(!shown.contains("WRONG NAMESPACES"), "{label}: {shown}");
        assert_eq!(all.len(), 4, "{label}: four attempts: {shown}");
        won.extend(succeeded(label, all));
    }
    assert!(won.is_empty(), "attacks that succeeded: {won:?}");
    assert!(
        !after.0.contains("10.254.0.1"),
        "an address was added to the pod's loopback: {}",
        after.0
    );
    assert_eq!(after.1, before.1, "the pod's hostname changed");
}

/// A pod whose sandbox makes its own network namespace (crossarch gives it a user namespace,
/// which then owns the pod's namespaces): neither a native nor a foreign container of the pod
/// gets NET_ADMIN, SYS_ADMIN or NET_RAW over them.
#[test]
fn a_sandbox_made_pod_gives_its_containers_no_capability_beyond_the_ceiling() {
    let Some(t) = Hostile::start(&[ARM64]) else {
        return;
    };
    let group = format!("{GROUP}=pod-a");
    t.cd.run_detached(
        "sandbox",
        &["--annotation", SANDBOX, "--annotation", &group],
        &["sleep", "1000"],
    );
    let sandbox = t.cd.task_pid("sandbox");
    attack_pod_from_native_and_foreign(t, sandbox, "pod-a", "sandbox-made pod");
}

/// Starts the sandbox of a pod whose network namespace the host made, as containerd's CRI
/// does (bound at `<daemon dir>/netns`, which the daemon's cleanup unmounts), in shim group
/// `group`; returns its task pid.
fn start_cri_sandbox(cd: &Containerd, group: &str) -> u32 {
    let path = crossarch_integration::crossarch::host_made_netns(cd);
    let network = format!("network:{path}");
    let group = format!("{GROUP}={group}");
    cd.run_detached(
        "sandbox",
        &[
            "--annotation",
            SANDBOX,
            "--annotation",
            &group,
            "--with-ns",
            &network,
        ],
        &["sleep", "1000"],
    );
    cd.task_pid("sandbox")
}

/// A pod whose network namespace the host made (as CRI does): the same attacks fail.
#[test]
fn a_host_made_pod_gives_its_containers_no_capability_beyond_the_ceiling() {
    let Some(t) = Hostile::start(&[ARM64]) else {
        return;
    };
    let sandbox = start_cri_sandbox(&t.cd, "pod-b");
    attack_pod_from_native_and_foreign(t, sandbox, "pod-b", "host-made pod");
}

// ---------------------------------------------------------------------------------------
// 4. /sys

/// Filesystems under the host's /sys that a container must never see.
const HOST_SYS_SUBMOUNTS: &[&str] = &[
    "debugfs",
    "tracefs",
    "securityfs",
    "bpf",
    "pstore",
    "configfs",
    "fusectl",
];

/// A mount as /proc/PID/mountinfo shows it.
#[derive(Debug, Clone)]
struct MountLine {
    point: String,
    options: String,
    fstype: String,
}

fn parse_mountinfo(text: &str) -> Vec<MountLine> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let fstype = l.split_once(" - ")?.1.split(' ').next()?.to_string();
            Some(MountLine {
                point: f.get(4)?.to_string(),
                options: f.get(5)?.to_string(),
                fstype,
            })
        })
        .collect()
}

fn under_sys(mounts: &[MountLine]) -> Vec<MountLine> {
    mounts
        .iter()
        .filter(|m| m.point == "/sys" || m.point.starts_with("/sys/"))
        .cloned()
        .collect()
}

/// debugfs at the host's /sys/kernel/debug for the test, when the host has none; unmounted
/// when dropped (only if this mounted it).
struct HostDebugfs {
    mounted: bool,
}

const DEBUGFS: &str = "/sys/kernel/debug";

impl HostDebugfs {
    fn ensure() -> HostDebugfs {
        let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
        if parse_mountinfo(&info).iter().any(|m| m.point == DEBUGFS) {
            println!("the host has a mount at {DEBUGFS} already");
            return HostDebugfs { mounted: false };
        }
        host_cmd(&["mount", "-t", "debugfs", "debugfs", DEBUGFS]);
        println!("mounted debugfs at the host's {DEBUGFS} for this test");
        HostDebugfs { mounted: true }
    }
}

impl Drop for HostDebugfs {
    fn drop(&mut self) {
        if self.mounted {
            let out = Command::new("umount").arg(DEBUGFS).output();
            if !matches!(&out, Ok(o) if o.status.success()) {
                eprintln!("umount {DEBUGFS}: {out:?}; detaching it");
                host::unmount(Path::new(DEBUGFS));
            }
        }
    }
}

/// What a container sees under /sys: its mounts there, from its own mountinfo.
fn sys_view(cd: &Containerd, label: &str, args: &[String]) -> Vec<MountLine> {
    let out = cd.ctr(&strs(args));
    out.ok();
    let sys = under_sys(&parse_mountinfo(&out.stdout_text()));
    println!("{label}: {} mounts under /sys:", sys.len());
    for m in &sys {
        println!("  {label}: {} {} {}", m.point, m.fstype, m.options);
    }
    sys
}

/// What is wrong with a foreign container's /sys compared with the native one's.
fn sys_problems(label: &str, foreign: &[MountLine], native: &[MountLine]) -> Vec<String> {
    let mut problems = Vec::new();
    for m in foreign {
        if HOST_SYS_SUBMOUNTS.contains(&m.fstype.as_str()) {
            problems.push(format!("{label}: the host's {} at {}", m.fstype, m.point));
        } else if !native.iter().any(|n| n.point == m.point) {
            problems.push(format!(
                "{label}: {} ({}) which a native container does not have",
                m.point, m.fstype
            ));
        }
    }
    match foreign.iter().find(|m| m.point == "/sys") {
        Some(sys) if sys.options.split(',').any(|o| o == "ro") => {}
        Some(sys) => problems.push(format!("{label}: /sys is not read-only: {}", sys.options)),
        None => problems.push(format!("{label}: no /sys mount")),
    }
    problems
}

/// A foreign container in a pod whose network namespace the host made, and one with host
/// networking, bind the host's /sys instead of a fresh sysfs. They must see no more of it
/// than a native container in the same place: none of the host's submounts, read-only.
#[test]
fn sys_of_a_foreign_container_shows_only_what_a_native_one_sees() {
    let Some(t) = Hostile::start(&[ARM64]) else {
        return;
    };
    let debugfs = HostDebugfs::ensure();
    let cd = &t.cd;
    let image = import_busybox(cd, &ARM64);
    let sandbox = start_cri_sandbox(cd, "pod-sys");
    let joins: Vec<String> = ["network:net", "ipc:ipc", "uts:uts"]
        .iter()
        .map(|kn| {
            let (kind, file) = kn.split_once(':').unwrap();
            format!("{kind}:/proc/{sandbox}/ns/{file}")
        })
        .flat_map(|j| ["--with-ns".to_string(), j])
        .collect();
    let mut pod: Vec<&str> = vec!["--rm"];
    pod.extend(strs(&joins));
    let argv = ["cat", "/proc/self/mountinfo"];
    let host_net = ["--rm", "--net-host"];
    let native_pod = sys_view(
        cd,
        "pod, native",
        &rootfs_run_args(cd, cd.rootfs(), "sys-pod-native", &pod, &argv),
    );
    let foreign_pod = sys_view(
        cd,
        "pod, arm64",
        &image_run_args(cd, &image, ARM64.platform, "sys-pod-arm64", &pod, &argv),
    );
    let native_host = sys_view(
        cd,
        "host network, native",
        &rootfs_run_args(cd, cd.rootfs(), "sys-host-native", &host_net, &argv),
    );
    let foreign_host = sys_view(
        cd,
        "host network, arm64",
        &image_run_args(
            cd,
            &image,
            ARM64.platform,
            "sys-host-arm64",
            &host_net,
            &argv,
        ),
    );
    t.finish();
    drop(debugfs);
    let mut problems = sys_problems("pod, arm64", &foreign_pod, &native_pod);
    problems.extend(sys_problems(
        "host network, arm64",
        &foreign_host,
        &native_host,
    ));
    // The native containers are the reference; they must be clean too.
    for (label, native) in [
        ("pod, native", &native_pod),
        ("host network, native", &native_host),
    ] {
        problems.extend(
            native
                .iter()
                .filter(|m| HOST_SYS_SUBMOUNTS.contains(&m.fstype.as_str()))
                .map(|m| format!("{label}: the host's {} at {}", m.fstype, m.point)),
        );
    }
    assert!(
        problems.is_empty(),
        "/sys problems:\n{}",
        problems.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// 5. Huge PATH and args[0]

/// A PATH of 30,000 colons and an args[0] of 30,000 bytes: 30,001 candidate paths of 30 KB.
/// `ctr run` must fail soon, with a short error that names the container, and containerd
/// must not see an oversized message.
#[test]
fn a_huge_path_and_args0_fail_soon_with_a_short_error() {
    let Some(t) = Hostile::start(&[]) else {
        return;
    };
    let cd = &t.cd;
    let path = format!("PATH={}", ":".repeat(30_000));
    let arg0 = "a".repeat(30_000);
    let args = rootfs_run_args(
        cd,
        cd.rootfs(),
        "hugepath",
        &["--rm", "--env", &path],
        &[&arg0],
    );
    let (out, took) = ctr_bounded(cd, &args, LONG);
    println!("ctr run took {took:?}");
    let (finished, code, err) = match &out {
        Ok(o) => (true, o.code(), o.stderr_text()),
        Err(e) => (false, -1, e.clone()),
    };
    println!(
        "exit {code}, stderr {} bytes: {}",
        err.len(),
        err.chars().take(600).collect::<String>()
    );
    let log = fs::read_to_string(cd.log_path()).unwrap_or_default();
    let oversized: Vec<String> = log
        .lines()
        .filter(|l| l.contains("exceed maximum message size"))
        .map(|l| l.chars().take(400).collect())
        .collect();
    println!("containerd log lines about oversized messages: {oversized:?}");
    cd.ctr(&["container", "delete", "hugepath"]);
    t.finish();
    assert!(finished, "ctr run did not finish within {LONG:?}: {err}");
    assert_ne!(code, 0, "the container cannot run");
    assert!(
        err.len() < 4096,
        "the error is {} bytes, not a few KiB at most",
        err.len()
    );
    assert!(
        err.contains("hugepath"),
        "the error names the container: {err}"
    );
    assert!(
        oversized.is_empty(),
        "containerd saw an oversized message: {oversized:?}"
    );
}

// ---------------------------------------------------------------------------------------
// 6. A lease on a binary an exec runs

/// A container takes a write lease on a binary and never answers the lease break; an exec
/// of that binary then waits for the kernel's lease-break-time. Meanwhile the other
/// container of the same shim must still be served, and the exec must end.
#[test]
fn a_leased_binary_does_not_stall_the_shims_other_containers() {
    let Some(t) = Hostile::start(&[]) else {
        return;
    };
    let cd = &t.cd;
    let break_time = fs::read_to_string("/proc/sys/fs/lease-break-time").unwrap_or_default();
    println!("lease-break-time: {}s", break_time.trim());
    let group = format!("{GROUP}=leases");
    let mount = t.helper_mount();
    cd.run_detached(
        "leaser",
        &["--annotation", &group, "--mount", &mount],
        &[
            "sh",
            "-c",
            "mkdir -p /tmp/leased && exec /attack lease /bin/busybox /tmp/leased/busybox",
        ],
    );
    cd.run_detached("bystander", &["--annotation", &group], &["sleep", "1000"]);
    assert_eq!(
        cd.shim_socket("leaser"),
        cd.shim_socket("bystander"),
        "both containers are served by one shim"
    );
    let ready = format!(
        "/proc/{}/root/tmp/leased/busybox.ready",
        cd.task_pid("leaser")
    );
    wait_until("the lease to be taken", LONG, || Path::new(&ready).exists());

    let bound = Duration::from_secs(90);
    let args: Vec<String> = [
        "task",
        "exec",
        "--exec-id",
        "leased",
        "leaser",
        "/tmp/leased/busybox",
        "echo",
        "leased-ran",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (exec_out, exec_took, ps_out, ps_took) = std::thread::scope(|s| {
        let pending = s.spawn(|| ctr_bounded(cd, &args, bound));
        // Time for the exec to reach the shim; the wait below is what is measured.
        std::thread::sleep(Duration::from_secs(2));
        let still_pending = !pending.is_finished();
        println!("exec still pending after 2s: {still_pending}");
        let (ps_out, ps_took) = ctr_bounded(
            cd,
            &["task".into(), "ps".into(), "bystander".into()],
            Duration::from_secs(60),
        );
        println!("`ctr task ps bystander` took {ps_took:?}");
        let (exec_out, exec_took) = pending.join().unwrap();
        (exec_out, exec_took, ps_out, ps_took)
    });
    println!(
        "the exec of the leased binary took {exec_took:?}: {}",
        match &exec_out {
            Ok(o) => o.show(),
            Err(e) => e.clone(),
        }
    );
    let ps_ok = matches!(&ps_out, Ok(o) if o.status.success());
    t.finish();
    assert!(
        ps_ok,
        "ctr task ps of the other container failed: {ps_out:?}"
    );
    assert!(
        ps_took <= Duration::from_secs(5),
        "ctr task ps of the other container of the shim took {ps_took:?} while an exec waited \
         for a lease"
    );
    let exec_out =
        exec_out.unwrap_or_else(|e| panic!("the exec did not end within {bound:?}: {e}"));
    if exec_out.status.success() {
        assert_eq!(
            exec_out.stdout_text(),
            "leased-ran\n",
            "{}",
            exec_out.show()
        );
    } else {
        assert!(
            exec_out.stderr_text().contains("leaser"),
            "a failed exec says which container: {}",
            exec_out.show()
        );
    }
}

// ---------------------------------------------------------------------------------------
// 7. A symlink planted where wrap mode looks for qemu

/// In a wrap-mode arm64 container, the container plants `/dev/.crossarch/qemu-s390x-static`
/// as a link to an absolute host path, then an s390x binary is exec'd. The shim's answer must
/// not depend on whether that host path exists: it must not look at host paths through a
/// container's links.
#[test]
fn a_planted_qemu_link_does_not_make_the_shim_probe_host_paths() {
    let Some(t) = Hostile::start(&[ARM64, S390X]) else {
        return;
    };
    let cd = &t.cd;
    let root = cd.dir().join("arm64-s390x");
    copy_dir(&ARM64.rootfs(), &root);
    fs::create_dir_all(root.join("s390x")).unwrap();
    fs::copy(
        S390X.rootfs().join("bin/busybox"),
        root.join("s390x/busybox"),
    )
    .unwrap();
    let wrap = config_file(cd, "[emulation]\nmode = \"wrap\"\n");
    let mount = t.helper_mount();
    let args = rootfs_run_args(
        cd,
        &root,
        "planter",
        &["-d", "--mount", &mount, "--runtime-config-path", &wrap],
        &["sleep", "1000"],
    );
    cd.ctr(&strs(&args)).ok();
    cd.wait_status("planter", "RUNNING", LONG);
    let marker = cd
        .dir()
        .join(format!("host-only-marker-{}", std::process::id()));
    let marker_path = marker.display().to_string();
    let plant = exec(
        cd,
        "planter",
        &[
            "/attack",
            "symlink",
            &marker_path,
            "/dev/.crossarch/qemu-s390x-static",
        ],
    );
    println!("plant: {}", plant.show());
    let planted = attempts(&plant.stdout_text());
    assert!(
        planted.len() == 1 && planted[0].succeeded,
        "the link is planted: {}",
        plant.show()
    );
    let mut answers = Vec::new();
    for exists in [true, false] {
        if exists {
            fs::write(&marker, "host only\n").unwrap();
        } else {
            let _ = fs::remove_file(&marker);
        }
        let out = cd.ctr(&[
            "task",
            "exec",
            "--exec-id",
            "probe",
            "planter",
            "/s390x/busybox",
            "echo",
            "s390x-ran",
        ]);
        println!(
            "with {marker_path} {}: {}",
            if exists { "present" } else { "absent" },
            out.show()
        );
        answers.push((out.code(), out.stderr_text(), out.stdout_text()));
    }
    t.finish();
    assert_eq!(
        answers[0], answers[1],
        "the exec's outcome depends on whether a host path exists"
    );
}

// ---------------------------------------------------------------------------------------
// 8. setuid and QEMU_* variables

/// An OCI spec (as `ctr oci spec` prints it) for `rootfs`, running `args` with `env`.
fn spec_for(cd: &Containerd, id: &str, rootfs: &Path, args: &[&str]) -> serde_json::Value {
    let out = cd.ctr(&["oci", "spec"]);
    out.ok();
    let mut spec: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    spec["root"] = serde_json::json!({"path": rootfs.display().to_string(), "readonly": false});
    spec["process"]["args"] = serde_json::json!(args);
    spec["process"]["env"] = serde_json::json!([CONTAINER_PATH]);
    spec["linux"]["cgroupsPath"] = serde_json::json!(format!("/{}/{}", cd.namespace(), id));
    spec
}

/// `ctr run --rm --config SPEC [--runtime-config-path CONFIG] ID`.
fn run_spec(cd: &Containerd, id: &str, spec: &serde_json::Value, config: Option<&str>) -> Output {
    let file = cd.dir().join(format!("{id}.json"));
    fs::write(&file, serde_json::to_vec_pretty(spec).unwrap()).unwrap();
    let file = file.display().to_string();
    let mut args = vec!["run", "--rm", "--runtime", cd.runtime(), "--config", &file];
    if let Some(c) = config {
        args.extend(["--runtime-config-path", c]);
    }
    args.push(id);
    let out = cd.ctr(&args);
    println!("--- {id}: {}", out.show());
    out
}

/// An arm64 image with a setuid-root busybox, run as uid 1000 without no_new_privileges,
/// with QEMU_LOG_FILENAME and QEMU_LOG in its environment. The setuid bit must not make qemu
/// run as root: the log qemu writes is not root's, and the guest never gets euid 0 (`su` of
/// that busybox, for a root without password, would then give a root shell).
#[test]
fn setuid_under_emulation_does_not_run_qemu_as_root() {
    let Some(t) = Hostile::start(&[ARM64]) else {
        return;
    };
    let cd = &t.cd;
    let root = cd.dir().join("suid");
    copy_dir(&ARM64.rootfs(), &root);
    let suid = root.join("bin/busybox-suid");
    fs::copy(root.join("bin/busybox"), &suid).unwrap();
    std::os::unix::fs::chown(&suid, Some(0), Some(0)).unwrap();
    fs::set_permissions(&suid, fs::Permissions::from_mode(0o4755)).unwrap();
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    let passwd = fs::read_to_string(root.join("etc/passwd")).unwrap();
    let passwd = passwd.replacen("root:x:", "root::", 1) + "user:x:1000:1000::/tmp:/bin/sh\n";
    fs::write(root.join("etc/passwd"), passwd).unwrap();
    println!(
        "{}: mode {:o}, owner {}",
        suid.display(),
        fs::metadata(&suid).unwrap().mode(),
        fs::metadata(&suid).unwrap().uid()
    );
    let unprivileged = |mut spec: serde_json::Value, env: &[&str]| {
        spec["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1000});
        spec["process"]["noNewPrivileges"] = serde_json::json!(false);
        for set in ["effective", "permitted", "inheritable", "ambient"] {
            spec["process"]["capabilities"][set] = serde_json::json!([]);
        }
        let mut all = vec![CONTAINER_PATH.to_string()];
        all.extend(env.iter().map(|e| e.to_string()));
        spec["process"]["env"] = serde_json::json!(all);
        spec
    };
    // The default mode (userns here), and trace mode, where the init turns the exec of the
    // setuid binary into an exec of qemu.
    let mut outcomes = Vec::new();
    for (mode, extra) in [("", ""), ("-trace", "[emulation]\nmode = \"trace\"\n")] {
        let config = config_file(
            cd,
            &format!("[capabilities]\nno_new_privileges = false\n{extra}"),
        );
        let qlog = root.join("tmp/qlog");
        let _ = fs::remove_file(&qlog);
        // qemu opens its log before the guest runs, with the credentials exec gave it.
        let id = format!("suid-id{mode}");
        let id_spec = unprivileged(
            spec_for(cd, &id, &root, &["/bin/busybox-suid", "id", "-u"]),
            &["QEMU_LOG_FILENAME=/tmp/qlog", "QEMU_LOG=page"],
        );
        let id_out = run_spec(cd, &id, &id_spec, Some(&config));
        let log_owner = fs::metadata(&qlog)
            .ok()
            .map(|m| (m.uid(), m.gid(), m.len()));
        println!(
            "{id}: qemu's log {}: {}",
            qlog.display(),
            match log_owner {
                Some((u, g, len)) => format!("owner {u}:{g}, {len} bytes"),
                None => "not created".into(),
            }
        );
        // su needs euid 0; root has no password in this image.
        let su = format!("suid-su{mode}");
        let su_spec = unprivileged(
            spec_for(
                cd,
                &su,
                &root,
                &[
                    "/bin/busybox-suid",
                    "su",
                    "root",
                    "-c",
                    "echo GUEST-EUID $(id -u); grep Uid /proc/self/status",
                ],
            ),
            &[],
        );
        let su_out = run_spec(cd, &su, &su_spec, Some(&config));
        outcomes.push((id, id_out, log_owner, su_out));
    }
    t.finish();
    for (id, id_out, log_owner, su_out) in outcomes {
        assert!(
            id_out.status.success() && !id_out.stdout_text().starts_with("0\n"),
            "{id}: the guest ran as root, or not at all: {}",
            id_out.show()
        );
        assert!(
            log_owner.is_none_or(|(uid, _, _)| uid != 0),
            "{id}: qemu wrote QEMU_LOG_FILENAME as root for uid 1000: {log_owner:?}"
        );
        assert!(
            !su_out.stdout_text().contains("GUEST-EUID 0"),
            "{id}: uid 1000 got a root shell through a setuid foreign binary: {}",
            su_out.show()
        );
    }
}

// ---------------------------------------------------------------------------------------
// 9. A binfmt_misc entry planted in a user namespace a foreign container joins

/// The identity mapping of every id, as OCI writes it.
fn identity_map() -> serde_json::Value {
    serde_json::json!([{"containerID": 0, "hostID": 0, "size": 4294967295u64}])
}

/// The registration crossarch's hook would make for aarch64, but run by `/evil`: same name,
/// same magic and mask (see shim/src/binfmt.rs), written as binfmt_misc parses it.
const PLANTED_AARCH64: &str = ":crossarch-aarch64:M::\
    \\x7f\\x45\\x4c\\x46\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:\
    \\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:\
    /evil:F";

/// A native container with a user namespace of its own (identity mapping) and CAP_SYS_ADMIN
/// mounts that namespace's binfmt_misc and registers `crossarch-aarch64` with its own
/// interpreter. A foreign container that joins that user namespace must not run through it:
/// either Create fails clearly, or the container runs through qemu.
#[test]
fn a_planted_binfmt_entry_in_a_joined_user_namespace_is_never_used() {
    // The planter's spec maps a user namespace; with ctr 1.7 and later its config is the
    // daemon's, so the joiner gets the same ceiling (it asks for no capability beyond it).
    let mapped = MappedSpecConfig::new();
    let Some(t) = Hostile::start_with(&[ARM64], mapped.daemon_options()) else {
        return;
    };
    let cd = &t.cd;
    let xroot = cd.dir().join("planter-root");
    copy_dir(cd.rootfs(), &xroot);
    fs::copy(&t.helper, xroot.join("evil")).unwrap();
    let admin = mapped.ctr_args(cd, SYS_ADMIN_CEILING);
    let mut spec = spec_for(cd, "planter", &xroot, &["sleep", "1000"]);
    spec["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"type": "user"}));
    spec["linux"]["uidMappings"] = identity_map();
    spec["linux"]["gidMappings"] = identity_map();
    for set in ["bounding", "effective", "permitted"] {
        spec["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push("CAP_SYS_ADMIN".into());
    }
    let file = cd.dir().join("planter.json");
    fs::write(&file, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    let file = file.display().to_string();
    let mut args = vec!["run", "-d", "--runtime", cd.runtime()];
    args.extend(admin.iter().map(String::as_str));
    args.extend(["--config", &file, "planter"]);
    cd.ctr(&args).ok();
    cd.wait_status("planter", "RUNNING", LONG);
    let planter = cd.task_pid("planter");
    let userns = ns(planter, "user");
    println!(
        "planter: user namespace {userns} (the host's is {})",
        own_ns("user")
    );
    // Never mount binfmt_misc from the host's user namespace: that is the host's instance.
    assert_ne!(
        userns,
        own_ns("user"),
        "the planter has a user namespace of its own"
    );
    assert!(!userns.is_empty());
    let plant = format!(
        "if [ \"$(readlink /proc/self/ns/user)\" != '{userns}' ]; then echo WRONG USER NAMESPACE; exit 99; fi; \
         mkdir -p /tmp/b && mount -t binfmt_misc binfmt_misc /tmp/b && \
         printf '%s\\n' '{PLANTED_AARCH64}' > /tmp/b/register && ls /tmp/b && cat /tmp/b/crossarch-aarch64"
    );
    let planted = exec(cd, "planter", &["sh", "-c", &plant]);
    println!("planting: {}", planted.show());
    if !planted.status.success() {
        t.finish();
        panic!("the entry could not be planted: {}", planted.show());
    }

    // The foreign container joins the planter's user namespace; runc 1.1 wants its mappings.
    let yroot = cd.dir().join("joiner-root");
    copy_dir(&ARM64.rootfs(), &yroot);
    let mut spec = spec_for(cd, "joiner", &yroot, &["uname", "-m"]);
    spec["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"type": "user", "path": format!("/proc/{planter}/ns/user")}));
    spec["linux"]["uidMappings"] = identity_map();
    spec["linux"]["gidMappings"] = identity_map();
    let out = run_spec(cd, "joiner", &spec, None);
    print_log_lines(cd, "container joiner:");
    t.finish();
    assert!(
        !out.stdout_text().contains("HIJACKED"),
        "the foreign container ran through the planted interpreter: {}",
        out.show()
    );
    if out.status.success() {
        assert_eq!(out.stdout_text(), "aarch64\n", "{}", out.show());
    } else {
        assert!(
            out.stderr_text().contains("container joiner"),
            "a clear Create error names the container: {}",
            out.show()
        );
    }
}

// ---------------------------------------------------------------------------------------
// 10. Hostile root filesystems

/// Plants the hostile files in `root` and returns the cases: (name, args[0]).
fn plant_hostile_files(root: &Path, marker: &Path) -> Vec<(&'static str, String)> {
    use std::os::unix::fs::symlink;
    let bin = root.join("bin");
    let mode = |p: &Path, m: u32| fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
    symlink("loop-b", bin.join("loop-a")).unwrap();
    symlink("loop-a", bin.join("loop-b")).unwrap();
    let up = "../../../../../../../../..";
    let init = shim_dir().join("crossarch-init").display().to_string();
    let marker = marker.display().to_string();
    symlink(&init, bin.join("esc-init-abs")).unwrap();
    symlink(format!("{up}{init}"), bin.join("esc-init-rel")).unwrap();
    symlink(&marker, bin.join("esc-marker-abs")).unwrap();
    symlink(format!("{up}{marker}"), bin.join("esc-marker-rel")).unwrap();

    // A valid ELF header (this root's own busybox's), then 2 GB of holes.
    let header: Vec<u8> = fs::read(bin.join("busybox")).unwrap()[..64].to_vec();
    let sparse = bin.join("sparse");
    fs::write(&sparse, &header).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(&sparse)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    mode(&sparse, 0o755);

    let c = |p: &Path| std::ffi::CString::new(p.display().to_string()).unwrap();
    let fifo = bin.join("fifo");
    // SAFETY: the path is NUL-terminated.
    assert_eq!(unsafe { libc::mkfifo(c(&fifo).as_ptr(), 0o755) }, 0);
    mode(&fifo, 0o755);
    let dev = bin.join("chardev");
    // SAFETY: as above; makedev has no preconditions.
    let r = unsafe { libc::mknod(c(&dev).as_ptr(), libc::S_IFCHR | 0o755, libc::makedev(1, 3)) };
    assert_eq!(r, 0, "mknod: {}", std::io::Error::last_os_error());
    let socket = bin.join("socket");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    mode(&socket, 0o755);

    let script = |name: &str, body: &[u8]| {
        let p = bin.join(name);
        fs::write(&p, body).unwrap();
        mode(&p, 0o755);
    };
    script("bad-utf8", b"#!/bin/\xff\xfe\n");
    // Six #! hops: more than crossarch follows (4) and than the kernel allows (5).
    for n in 1..6 {
        script(
            &format!("deep{n}"),
            format!("#!/bin/deep{}\n", n + 1).as_bytes(),
        );
    }
    script("deep6", b"#!/bin/sh\necho deep\n");
    script(
        "long-shebang",
        format!("#!/bin/{}\necho long\n", "x".repeat(300)).as_bytes(),
    );
    [
        ("loop", "/bin/loop-a"),
        ("esc-init-abs", "/bin/esc-init-abs"),
        ("esc-init-rel", "/bin/esc-init-rel"),
        ("esc-marker-abs", "/bin/esc-marker-abs"),
        ("esc-marker-rel", "/bin/esc-marker-rel"),
        ("sparse", "/bin/sparse"),
        ("fifo", "/bin/fifo"),
        ("chardev", "/bin/chardev"),
        ("socket", "/bin/socket"),
        ("bad-utf8", "/bin/bad-utf8"),
        ("deep", "/bin/deep1"),
        ("long-shebang", "/bin/long-shebang"),
    ]
    .into_iter()
    .map(|(n, a)| (n, a.to_string()))
    .collect()
}

/// Watches a host file for opens and reads (inotify), to prove nobody read it.
struct ReadWatch {
    fd: i32,
}

impl ReadWatch {
    fn new(path: &Path) -> ReadWatch {
        // SAFETY: plain syscalls on a NUL-terminated path.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        assert!(
            fd >= 0,
            "inotify_init1: {}",
            std::io::Error::last_os_error()
        );
        let c = std::ffi::CString::new(path.display().to_string()).unwrap();
        // SAFETY: as above.
        let w = unsafe { libc::inotify_add_watch(fd, c.as_ptr(), libc::IN_OPEN | libc::IN_ACCESS) };
        assert!(
            w >= 0,
            "inotify_add_watch: {}",
            std::io::Error::last_os_error()
        );
        ReadWatch { fd }
    }

    /// How many open or read events arrived.
    fn events(&self) -> usize {
        let mut buf = [0u8; 4096];
        let mut n = 0;
        loop {
            // SAFETY: buf is valid for its length.
            let len = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
            if len <= 0 {
                return n;
            }
            let mut off = 0usize;
            while off + std::mem::size_of::<libc::inotify_event>() <= len as usize {
                // SAFETY: the kernel wrote a whole event at off.
                let ev: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buf.as_ptr().add(off).cast()) };
                n += 1;
                off += std::mem::size_of::<libc::inotify_event>() + ev.len as usize;
            }
        }
    }
}

impl Drop for ReadWatch {
    fn drop(&mut self) {
        // SAFETY: fd is ours.
        unsafe { libc::close(self.fd) };
    }
}

/// Hostile image content as args[0] (a symlink loop, links out of the root, a sparse 2 GB
/// ELF, a FIFO, a device node, a socket, a non-UTF-8 `#!`, a `#!` chain too deep, a `#!`
/// line too long), in a native and an arm64 root: each `ctr run` ends within 30 s with an
/// error that names the container, or with the kernel's own verdict on the exec (as under
/// runc); the shim of their group keeps serving its other container; nothing outside the
/// root is read.
#[test]
fn hostile_root_filesystems_fail_clearly_and_the_shim_keeps_serving() {
    let Some(t) = Hostile::start(&[ARM64]) else {
        return;
    };
    let cd = &t.cd;
    let group = format!("{GROUP}=hostile-roots");
    cd.run_detached("witness", &["--annotation", &group], &["sleep", "1000"]);
    let shim = cd.shim_pid("witness");
    println!("the group's shim: {shim:?}");
    let marker = cd.dir().join("host-only-program");
    fs::write(&marker, "#!/bin/sh\necho ESCAPED-TO-HOST\n").unwrap();
    fs::set_permissions(&marker, fs::Permissions::from_mode(0o755)).unwrap();
    let watch = ReadWatch::new(&marker);
    let mut results = Vec::new();
    for (arch, fixture) in [
        (host_arch(), cd.rootfs().to_path_buf()),
        ("arm64", ARM64.rootfs()),
    ] {
        let root = cd.dir().join(format!("hostile-{arch}"));
        copy_dir(&fixture, &root);
        for (case, arg0) in plant_hostile_files(&root, &marker) {
            let id = format!("{case}-{arch}");
            let args = rootfs_run_args(cd, &root, &id, &["--rm", "--annotation", &group], &[&arg0]);
            let (out, took) = ctr_bounded(cd, &args, LONG);
            let (finished, code, stdout, stderr) = match &out {
                Ok(o) => (true, o.code(), o.stdout_text(), o.stderr_text()),
                Err(e) => (false, -1, String::new(), e.clone()),
            };
            cd.ctr(&["container", "delete", &id]);
            let witness = cd.ctr(&["task", "exec", "--exec-id", "alive", "witness", "true"]);
            let shim_alive = shim.is_some_and(host::process_alive);
            println!(
                "{id}: took {took:?}, exit {code}, stdout {:?}, stderr {:?}; witness exec exit {}, shim alive {shim_alive}",
                stdout.trim(),
                stderr.trim().chars().take(500).collect::<String>(),
                witness.code()
            );
            results.push((
                id,
                finished,
                code,
                stdout,
                stderr,
                witness.status.success(),
                shim_alive,
            ));
        }
    }
    let reads = watch.events();
    println!(
        "opens and reads of the host-only file {}: {reads}",
        marker.display()
    );
    t.finish();
    let mut problems = Vec::new();
    for (id, finished, code, stdout, stderr, witness, shim_alive) in &results {
        if !finished {
            problems.push(format!("{id}: did not end within {LONG:?}"));
            continue;
        }
        if *code == 0 {
            problems.push(format!("{id}: ran (exit 0): {stdout}"));
        }
        // Either Create refuses it with an error that names the container, or the kernel's
        // own verdict stands, as under runc: the process starts and its exec fails (126 or
        // 127 with the kernel's errno from the init, or qemu's own error), or it dies of a
        // signal (a crafted ELF that the kernel maps and runs).
        let refused = stderr.contains(id.as_str());
        let exec_failed =
            matches!(code, 126 | 127) && stderr.contains("crossarch-init: cannot run");
        let qemu_refused = *code != 0 && stderr.contains("qemu-");
        let killed = *code > 128;
        if !(refused || exec_failed || qemu_refused || killed) {
            problems.push(format!(
                "{id}: neither an error naming the container nor the kernel's own verdict: exit {code}, {:?}",
                stderr.trim()
            ));
        }
        if stdout.contains("ESCAPED") {
            problems.push(format!("{id}: ran a host program"));
        }
        if !witness || !shim_alive {
            problems.push(format!(
                "{id}: afterwards the shim is {} and the other container's exec {}",
                if *shim_alive { "alive" } else { "gone" },
                if *witness { "works" } else { "fails" }
            ));
        }
    }
    if reads > 0 {
        problems.push(format!("a file outside the root was opened {reads} times"));
    }
    assert!(
        problems.is_empty(),
        "hostile roots:\n{}",
        problems.join("\n")
    );
}
