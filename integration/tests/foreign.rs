//! Foreign-architecture containers (issues 3 and 4), as a `ctr` user sees them: busybox
//! images of arm64, armhf, s390x (big-endian), riscv64 and ppc64le run on this host through
//! qemu-user, in userns mode (a private binfmt_misc, so every child is emulated too) and in
//! wrap mode (only the container's process itself); trace mode has tests/trace.rs. Every test also proves that the host's
//! `/proc/sys/fs/binfmt_misc` is untouched: no mount and no entry before or after. That
//! directory is only ever read.
//!
//! These are crossarch's own features: with another `CROSSARCH_TEST_RUNTIME` they skip. They
//! need the fixtures of scripts/fixtures.sh and qemu-user-static; without them they skip
//! (fail in CI).

use std::fs;
use std::path::Path;
use std::thread;
use std::time::Duration;

use crossarch_integration::crossarch::{
    config_file, copy_dir, crossarch_only, exit_status_after_signal, import_archive,
    import_busybox, qemu_package, route_record, run_image, run_image_detached, Arch, HostBinfmt,
    HostGuard, MappedSpecConfig, ARM64, FOREIGN, S390X,
};
use crossarch_integration::{
    containerd, fixtures_dir, host, host_arch, wait_until, Containerd, OutputExt, CONTAINER_PATH,
};

const LONG: Duration = Duration::from_secs(30);
const WHAT: &str = "foreign-architecture emulation";

/// `uname -m` of this host.
fn host_machine() -> &'static str {
    std::env::consts::ARCH
}

/// Waits until containerd's log (which gets the shim's log lines) contains `text`.
fn wait_for_log(cd: &Containerd, text: &str) {
    let log = cd.log_path();
    wait_until(
        &format!("{text:?} in the containerd log {}", log.display()),
        Duration::from_secs(10),
        || fs::read_to_string(&log).is_ok_and(|l| l.contains(text)),
    );
}

/// Prerequisites of a test on `arch`: crossarch under test, fixtures and qemu present.
fn ready(arch: &Arch) -> bool {
    crossarch_only(WHAT) && arch.available()
}

/// The exit status of task `id` once `signal` is sent to it, after the container wrote
/// `/tmp/ready` (so a trap is in place). Bounded: a frozen container fails the test.
fn status_after_signal(cd: &Containerd, id: &str, signal: &str) -> u64 {
    let ready = format!("/proc/{}/root/tmp/ready", cd.task_pid(id));
    exit_status_after_signal(cd, id, Path::new(&ready), signal)
}

#[test]
fn every_foreign_busybox_echoes_and_names_its_machine() {
    if !crossarch_only(WHAT) {
        return;
    }
    let arches: Vec<Arch> = FOREIGN.into_iter().filter(Arch::available).collect();
    if arches.is_empty() {
        return;
    }
    let guard = HostGuard::new();
    let cd = containerd!();
    for arch in &arches {
        let image = import_busybox(&cd, arch);
        let id = format!("echo-{}", arch.deb);
        let out = run_image(&cd, &image, arch.platform, &id, &["--rm"], &["echo", "hi"]);
        out.ok();
        assert_eq!(out.stdout_text(), "hi\n", "{}: {}", arch.deb, out.show());

        let id = format!("uname-{}", arch.deb);
        let out = run_image(&cd, &image, arch.platform, &id, &["--rm"], &["uname", "-m"]);
        out.ok();
        assert_eq!(
            out.stdout_text().trim(),
            arch.uname,
            "{} under the default mode: {}",
            arch.deb,
            out.show()
        );
        // The default mode (auto) picked the private binfmt_misc on this kernel.
        wait_for_log(
            &cd,
            &format!("container {id}: every process is emulated through a private binfmt_misc"),
        );
    }
    guard.check();
}

#[test]
fn wrap_mode_runs_arm64_and_s390x() {
    if !crossarch_only(WHAT) {
        return;
    }
    let arches: Vec<Arch> = [ARM64, S390X].into_iter().filter(Arch::available).collect();
    if arches.is_empty() {
        return;
    }
    let guard = HostGuard::new();
    let cd = containerd!();
    let wrap = config_file(&cd, "[emulation]\nmode = \"wrap\"\n");
    for arch in &arches {
        let image = import_busybox(&cd, arch);
        let opts = ["--rm", "--runtime-config-path", &wrap];
        let id = format!("echo-{}", arch.deb);
        let out = run_image(&cd, &image, arch.platform, &id, &opts, &["echo", "hi"]);
        out.ok();
        assert_eq!(out.stdout_text(), "hi\n", "{}: {}", arch.deb, out.show());
        let id = format!("uname-{}", arch.deb);
        let out = run_image(&cd, &image, arch.platform, &id, &opts, &["uname", "-m"]);
        out.ok();
        assert_eq!(out.stdout_text().trim(), arch.uname, "{}", out.show());
        wait_for_log(
            &cd,
            &format!("container {id}: only /bin/uname itself is emulated (wrap mode"),
        );
    }
    guard.check();
}

/// A chrooted containerd (some node images run it so): the kernel refuses its shims and
/// runc user namespaces, so runc would fail a userns-mode container with a bare "EOF".
/// Auto mode asks the kernel first and picks trace mode, saying why; with the injected init
/// turned off, which trace mode needs, it picks wrap mode.
#[test]
fn auto_mode_picks_trace_then_wrap_where_the_kernel_refuses_user_namespaces() {
    if !ready(&ARM64) {
        return;
    }
    let guard = HostGuard::new();
    let Some(cd) = Containerd::start_with_options(crossarch_integration::Options {
        chroot: true,
        ..Default::default()
    }) else {
        return;
    };
    let image = import_busybox(&cd, &ARM64);
    let out = run_image(
        &cd,
        &image,
        ARM64.platform,
        "chrooted",
        &["--rm"],
        &["sh", "-c", "uname -m; /bin/uname -m"],
    );
    out.ok();
    assert_eq!(out.stdout_text(), "aarch64\naarch64\n", "{}", out.show());
    wait_for_log(
        &cd,
        "container chrooted: every process is emulated by the injected init, which traces their \
         execs (trace mode: the kernel refuses the shim a user namespace (Operation not \
         permitted): containerd runs chrooted",
    );
    let no_init = config_file(&cd, "[init]\nenabled = false\n");
    let out = run_image(
        &cd,
        &image,
        ARM64.platform,
        "chrooted-no-init",
        &["--rm", "--runtime-config-path", &no_init],
        &["uname", "-m"],
    );
    out.ok();
    assert_eq!(out.stdout_text().trim(), ARM64.uname, "{}", out.show());
    wait_for_log(
        &cd,
        "container chrooted-no-init: only /bin/uname itself is emulated (wrap mode: the kernel \
         refuses the shim a user namespace (Operation not permitted): containerd runs chrooted",
    );
    guard.check();
}

#[test]
fn userns_mode_emulates_children_pipelines_and_nested_shells() {
    if !ready(&ARM64) {
        return;
    }
    let guard = HostGuard::new();
    let cd = containerd!();
    let image = import_busybox(&cd, &ARM64);
    let userns = config_file(&cd, "[emulation]\nmode = \"userns\"\n");
    let out = run_image(
        &cd,
        &image,
        ARM64.platform,
        "kids",
        &["--runtime-config-path", &userns],
        &[
            "sh",
            "-c",
            "uname -m; ls / | wc -l; sleep 0.1; sh -c \"echo nested\"; \
             echo olleh | rev | cat | tr a-z A-Z; seq 1 200 | grep 7 | wc -l",
        ],
    );
    out.ok();
    let text = out.stdout_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{}", out.show());
    assert_eq!(lines[0], "aarch64");
    let entries: u32 = lines[1]
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("ls / | wc -l gave {:?}", lines[1]));
    assert!(entries >= 5, "ls / listed {entries} entries");
    assert_eq!(lines[2], "nested");
    assert_eq!(lines[3], "HELLO");
    // 7, 17, 27, ..., 97 (10), 70..79 (10, 77 counted once), 107, ..., 197 (10), 170..179.
    assert_eq!(lines[4].trim(), "38");

    guard.check();
}

/// What a container runs may come from a volume rather than the image (a ConfigMap's
/// entrypoint script, a tool an init container copied): the shim reads it in the bind
/// mount's source at Create, so a foreign one is emulated as if the image held it, in every
/// mode. Here a volume's `#!/bin/sh` script, an arm64 binary bound as a single
/// file, and symlinks followed across mounts as in the running container: a volume's link
/// into the image, and the image's links to a program a mount replaced.
#[test]
fn a_foreign_program_from_a_bind_mount_is_emulated() {
    if !ready(&ARM64) {
        return;
    }
    let guard = HostGuard::new();
    let cd = containerd!();
    let image = import_busybox(&cd, &ARM64);
    let volume = cd.dir().join("volume");
    fs::create_dir_all(&volume).unwrap();
    fs::write(
        volume.join("run.sh"),
        "#!/bin/sh\necho script $(uname -m)\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(volume.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    // A volume's link that points into the image, as it will once the volume is mounted.
    std::os::unix::fs::symlink("/bin/busybox", volume.join("busybox")).unwrap();
    let bind = |src: &Path, dst: &str| {
        format!("type=bind,src={},dst={dst},options=rbind:ro", src.display())
    };
    let scripts = bind(&volume, "/scripts");
    let tool = bind(
        &fixtures_dir().join("rootfs/arm64/bin/busybox"),
        "/tool/busybox",
    );
    // The host's busybox over the image's: the image's links to it (/usr/bin/env ->
    // ../../bin/busybox) now name a native program.
    let native = bind(
        &fixtures_dir().join("rootfs/amd64/bin/busybox"),
        "/bin/busybox",
    );
    let volume_mounts = [scripts.as_str(), tool.as_str()];
    // Wrap mode emulates args[0] alone, as the record says: it shows the record is right.
    for mode in ["userns", "trace", "wrap"] {
        let config = config_file(&cd, &format!("[emulation]\nmode = \"{mode}\"\n"));
        for (id, mounts, argv, want) in [
            (
                "script",
                &volume_mounts[..],
                &["/scripts/run.sh"][..],
                "script aarch64",
            ),
            (
                "tool",
                &volume_mounts[..],
                &["/tool/busybox", "uname", "-m"][..],
                "aarch64",
            ),
            (
                "link",
                &volume_mounts[..],
                &["/scripts/busybox", "uname", "-m"][..],
                "aarch64",
            ),
            (
                "native",
                &[native.as_str()][..],
                &["/usr/bin/env", "uname", "-m"][..],
                "x86_64",
            ),
        ] {
            // The script's child (uname) is not args[0].
            if (id, mode) == ("script", "wrap") {
                continue;
            }
            let id = format!("{id}-{mode}");
            let mut args = vec!["--rm"];
            for mount in mounts {
                args.extend(["--mount", mount]);
            }
            args.extend(["--runtime-config-path", &config]);
            let out = run_image(&cd, &image, ARM64.platform, &id, &args, argv);
            out.ok();
            assert_eq!(out.stdout_text().trim(), want, "{id}: {}", out.show());
        }
    }
    guard.check();
}

/// The container's binfmt_misc is mounted nowhere it can see: the shim holds it. Its
/// /proc/sys/fs/binfmt_misc is the plain, empty procfs directory, so nothing there can be
/// written, and every process is still emulated.
#[test]
fn no_binfmt_misc_is_mounted_inside() {
    if !ready(&ARM64) {
        return;
    }
    let guard = HostGuard::new();
    let cd = containerd!();
    let image = import_busybox(&cd, &ARM64);
    let out = run_image(
        &cd,
        &image,
        ARM64.platform,
        "ro",
        &["--rm"],
        &[
            "sh",
            "-c",
            "echo mounts=$(grep -c binfmt_misc /proc/self/mountinfo); \
             echo entries=$(ls /proc/sys/fs/binfmt_misc | wc -l); \
             echo ':x:E::zz::/bin/sh:' > /proc/sys/fs/binfmt_misc/register; echo register=$?; \
             uname -m",
        ],
    );
    out.ok();
    let text = out.stdout_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "mounts=0", "{}", out.show());
    assert_eq!(lines[1], "entries=0", "{}", out.show());
    assert!(
        lines[2].starts_with("register=") && lines[2] != "register=0",
        "writing register must fail: {}",
        out.show()
    );
    assert_eq!(lines[3], "aarch64", "still emulated: {}", out.show());
    guard.check();
}

#[test]
fn exec_into_a_running_foreign_container() {
    if !ready(&ARM64) {
        return;
    }
    let guard = HostGuard::new();
    let cd = containerd!();
    let image = import_busybox(&cd, &ARM64);
    run_image_detached(&cd, &image, ARM64.platform, "c", &[], &["sleep", "1000"]);
    // auto chose userns. The decision is where a user can read it.
    let record = route_record(&cd, "c");
    assert_eq!(record["mode"], "userns", "{record:#}");
    assert_eq!(record["decision"]["arch"], "arm64", "{record:#}");
    assert_eq!(
        record["decision"]["path_in_root"], "/bin/sleep",
        "{record:#}"
    );
    assert!(
        record["binfmt"]["linux/arm64"]
            .as_str()
            .is_some_and(|q| Some(Path::new(q)) == ARM64.host_qemu().as_deref()),
        "{record:#}"
    );
    // The container got the identity-mapped user namespace.
    let spec: serde_json::Value =
        serde_json::from_slice(&fs::read(cd.bundle("c").join("config.json")).unwrap()).unwrap();
    assert_eq!(
        spec["linux"]["uidMappings"],
        serde_json::json!([{"containerID": 0, "hostID": 0, "size": 4294967295u32}])
    );
    let out = cd.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "c",
        "sh",
        "-c",
        "ps; uname -m",
    ]);
    out.ok();
    let text = out.stdout_text();
    assert!(
        text.starts_with("PID"),
        "ps prints its table: {}",
        out.show()
    );
    assert!(text.contains("sleep 1000"), "{}", out.show());
    assert!(text.ends_with("aarch64\n"), "{}", out.show());

    let out = cd.ctr(&["task", "exec", "--exec-id", "e2", "c", "sh", "-c", "exit 3"]);
    assert_eq!(out.code(), 3, "{}", out.show());
    cd.ctr(&["task", "kill", "-s", "SIGKILL", "c"]).ok();
    cd.wait_status("c", "STOPPED", LONG);
    guard.check();
}

#[test]
fn exit_codes_pass_through_emulation() {
    if !ready(&ARM64) {
        return;
    }
    let guard = HostGuard::new();
    let cd = containerd!();
    let image = import_busybox(&cd, &ARM64);
    for code in [0, 3, 255] {
        let out = run_image(
            &cd,
            &image,
            ARM64.platform,
            &format!("exit{code}"),
            &["--rm"],
            &["sh", "-c", &format!("exit {code}")],
        );
        assert_eq!(out.code(), code, "{}", out.show());
    }
    guard.check();
}

#[test]
fn sigterm_gives_the_guests_code_or_143_and_never_freezes() {
    if !ready(&ARM64) {
        return;
    }
    let guard = HostGuard::new();
    let cd = containerd!();
    let image = import_busybox(&cd, &ARM64);
    run_image_detached(
        &cd,
        &image,
        ARM64.platform,
        "trapped",
        &[],
        &[
            "sh",
            "-c",
            "trap 'exit 42' TERM; touch /tmp/ready; while true; do sleep 0.1; done",
        ],
    );
    run_image_detached(
        &cd,
        &image,
        ARM64.platform,
        "untrapped",
        &[],
        &[
            "sh",
            "-c",
            "touch /tmp/ready; while true; do sleep 0.1; done",
        ],
    );
    assert_eq!(status_after_signal(&cd, "trapped", "SIGTERM"), 42);
    assert_eq!(status_after_signal(&cd, "untrapped", "SIGTERM"), 143);
    guard.check();
}

#[test]
fn wrap_mode_emulates_only_the_process_itself() {
    if !ready(&ARM64) {
        return;
    }
    let guard = HostGuard::new();
    let cd = containerd!();
    let image = import_busybox(&cd, &ARM64);
    let wrap = config_file(&cd, "[emulation]\nmode = \"wrap\"\n");
    let out = run_image(
        &cd,
        &image,
        ARM64.platform,
        "wrapped",
        &["--rm", "--runtime-config-path", &wrap],
        &[
            "sh",
            "-c",
            "uname -m; cat /etc/hostname; echo \"child exit $?\"",
        ],
    );
    out.ok();
    let text = out.stdout_text();
    assert!(
        text.starts_with("aarch64\n"),
        "the process itself runs: {}",
        out.show()
    );
    // The documented limit: a child exec of a foreign binary is not emulated.
    let child = text
        .lines()
        .find_map(|l| l.strip_prefix("child exit "))
        .unwrap_or_else(|| panic!("{}", out.show()));
    assert_ne!(child, "0", "{}", out.show());
    assert!(
        out.stderr_text().contains("Exec format error"),
        "{}",
        out.show()
    );
    guard.check();
}

#[test]
fn native_and_foreign_containers_side_by_side() {
    if !ready(&ARM64) {
        return;
    }
    let guard = HostGuard::new();
    let cd = containerd!();
    let image = import_busybox(&cd, &ARM64);
    cd.run_detached("native", &[], &["sleep", "1000"]);
    run_image_detached(
        &cd,
        &image,
        ARM64.platform,
        "foreign",
        &[],
        &["sleep", "1000"],
    );
    for (id, machine) in [("native", host_machine()), ("foreign", "aarch64")] {
        let out = cd.ctr(&[
            "task",
            "exec",
            "--exec-id",
            "m",
            id,
            "sh",
            "-c",
            "uname -m; ls /bin | wc -l",
        ]);
        out.ok();
        assert!(
            out.stdout_text().starts_with(&format!("{machine}\n")),
            "{id}: {}",
            out.show()
        );
    }
    // A native container needs none of the machinery.
    let spec: serde_json::Value =
        serde_json::from_slice(&fs::read(cd.bundle("native").join("config.json")).unwrap())
            .unwrap();
    let namespaces = spec["linux"]["namespaces"].as_array().unwrap();
    assert!(
        !namespaces.iter().any(|n| n["type"] == "user"),
        "a native container gets no user namespace: {namespaces:?}"
    );
    assert!(spec["hooks"].is_null(), "{spec:#}");
    for id in ["native", "foreign"] {
        cd.ctr(&["task", "kill", "-s", "SIGKILL", id]).ok();
    }
    guard.check();
}

/// 20 foreign containers, 4 `ctr run --rm` at a time. Each checks its own machine and says
/// so by its exit code (`short_lived_output_is_never_lost` covers their output).
#[test]
fn twenty_foreign_containers_in_parallel() {
    if !ready(&ARM64) {
        return;
    }
    let guard = HostGuard::new();
    let cd = containerd!();
    let image = import_busybox(&cd, &ARM64);
    let check = "m=$(uname -m | cat); echo $m; [ \"$m\" = aarch64 ] || exit 9";
    let results: Vec<(String, String, i32)> = thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let (cd, image) = (&cd, &image);
                s.spawn(move || {
                    (0..5)
                        .map(|i| {
                            let id = format!("p{w}-{i}");
                            let out = run_image(
                                cd,
                                image,
                                ARM64.platform,
                                &id,
                                &["--rm"],
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
    assert_eq!(cd.ctr(&["container", "ls", "-q"]).stdout_text(), "");
    guard.check();
}

/// Short-lived containers started in parallel: every one's output arrives.
#[test]
fn short_lived_output_is_never_lost() {
    if !crossarch_only(WHAT) {
        return;
    }
    let cd = containerd!();
    let lost: Vec<String> = thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let cd = &cd;
                s.spawn(move || {
                    (0..50)
                        .filter_map(|i| {
                            let id = format!("o{w}-{i}");
                            let out = cd.run(&id, &["--rm"], &["echo", &id]);
                            (out.code() != 0 || out.stdout_text() != format!("{id}\n"))
                                .then(|| format!("{id}: {}", out.show()))
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
    assert!(
        lost.is_empty(),
        "{} of 200 lost output:\n{}",
        lost.len(),
        lost.join("\n")
    );
}

/// An OCI spec (as `ctr oci spec` prints it) for `rootfs`, running `args`, in this daemon's
/// namespace's cgroup.
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

/// An arm64 busybox container `id` whose spec already has a user namespace mapping the
/// container's root to host uid/gid 100000 (as Kubernetes `hostUsers: false` gives), with a
/// rootfs owned accordingly. Returns the rootfs and the spec file for `ctr run --config`.
fn mapped_spec(
    cd: &Containerd,
    id: &str,
    args: &[&str],
) -> (std::path::PathBuf, std::path::PathBuf) {
    let rootfs = cd.dir().join(id);
    copy_dir(&ARM64.rootfs(), &rootfs);
    let chown = std::process::Command::new("chown")
        .args(["-R", "100000:100000"])
        .arg(&rootfs)
        .output()
        .unwrap();
    assert!(chown.status.success(), "{}", chown.show());
    let mut spec = spec_for(cd, id, &rootfs, args);
    spec["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"type": "user"}));
    let map = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    spec["linux"]["uidMappings"] = map.clone();
    spec["linux"]["gidMappings"] = map;
    let file = cd.dir().join(format!("{id}.json"));
    fs::write(&file, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    (rootfs, file)
}

/// A container whose spec already has a user namespace (as Kubernetes `hostUsers: false`
/// gives) keeps its mapping, and its children are still emulated.
///
/// The spec is given with `ctr run --config`: `ctr run --uidmap` cannot be used with
/// crossarch, see `ctr_run_uidmap_is_accepted`.
#[test]
fn an_existing_user_namespace_mapping_is_kept() {
    if !ready(&ARM64) {
        return;
    }
    let guard = HostGuard::new();
    let cd = containerd!();
    let (rootfs, file) = mapped_spec(
        &cd,
        "mapped",
        &[
            "sh",
            "-c",
            "cat /proc/self/uid_map /proc/self/gid_map; uname -m; sh -c 'echo nested'; \
             stat -c %u:%g /bin/busybox; touch /tmp/written && echo wrote",
        ],
    );
    let out = cd.ctr(&[
        "run",
        "--rm",
        "--runtime",
        cd.runtime(),
        "--config",
        &file.display().to_string(),
        "mapped",
    ]);
    out.ok();
    let lines: Vec<Vec<String>> = out
        .stdout_text()
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    assert_eq!(lines.len(), 6, "{}", out.show());
    assert_eq!(
        lines[0],
        ["0", "100000", "65536"],
        "uid_map: {}",
        out.show()
    );
    assert_eq!(
        lines[1],
        ["0", "100000", "65536"],
        "gid_map: {}",
        out.show()
    );
    assert_eq!(lines[2], ["aarch64"]);
    assert_eq!(lines[3], ["nested"], "children are emulated");
    assert_eq!(lines[4], ["0:0"], "the files are the container root's");
    assert_eq!(lines[5], ["wrote"]);
    let written = fs::metadata(rootfs.join("tmp/written")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (written.uid(), written.gid()),
        (100000, 100000),
        "a file the container's root wrote is host uid 100000's"
    );
    wait_for_log(
        &cd,
        "container mapped: every process is emulated through a private binfmt_misc in its own user namespace",
    );
    guard.check();
}

/// When registering qemu in a container's own binfmt_misc fails, Create fails with an error
/// that names the container and the fix, and nothing is left: no task, no mount, no runc
/// state, no cgroup, and the host's binfmt_misc unchanged.
///
/// The failure is a real one: qemu sits on a noexec file system. The shim finds it, but the
/// kernel refuses to open it as an interpreter.
#[test]
fn a_failing_registration_fails_create_and_leaves_nothing() {
    if !ready(&ARM64) {
        return;
    }
    let guard = HostGuard::new();
    let config = MappedSpecConfig::new();
    let Some(cd) = Containerd::start_with_options(config.daemon_options()) else {
        return;
    };
    // A qemu that looks fine but that the kernel will not open for execution: its file
    // system is mounted noexec.
    let private = cd.dir().join("noexec");
    fs::create_dir_all(&private).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "noexec,size=64m", "crossarch-test"])
        .arg(&private)
        .status()
        .unwrap();
    assert!(
        mounted.success(),
        "mount a noexec tmpfs at {}",
        private.display()
    );
    let host_qemu = ARM64.host_qemu().expect("available() found it");
    let qemu_name = host_qemu
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let qemu = private.join(&qemu_name);
    fs::copy(&host_qemu, &qemu).unwrap();
    let config = config.ctr_args(
        &cd,
        &format!(
            "[emulation]\nmode = \"userns\"\nqemu_dirs = [\"{}\"]\n",
            private.display()
        ),
    );
    let (rootfs, file) = mapped_spec(&cd, "hookfail", &["uname", "-m"]);
    let file = file.display().to_string();
    let mut args = vec!["run", "--rm", "--runtime", cd.runtime()];
    args.extend(config.iter().map(String::as_str));
    args.extend(["--config", &file, "hookfail"]);
    let out = cd.ctr(&args);
    assert_ne!(out.code(), 0, "{}", out.show());
    let err = out.stderr_text();
    for wanted in [
        "container hookfail",
        "cannot register",
        &qemu_name,
        "set emulation.mode = \"wrap\"",
    ] {
        assert!(err.contains(wanted), "{wanted:?} missing: {}", out.show());
    }
    assert!(out.stdout_text().is_empty(), "{}", out.show());
    assert_eq!(cd.task("hookfail"), None, "no task is left behind");
    assert!(
        !cd.ctr(&["container", "ls", "-q"])
            .stdout_text()
            .contains("hookfail"),
        "`ctr run --rm` removed the container"
    );
    let bundle = cd.bundle("hookfail");
    let cgroup = format!("/{}/hookfail", cd.namespace());
    let mounts = host::mounts_under(&rootfs);
    assert!(mounts.is_empty(), "mounts left on the rootfs: {mounts:?}");
    cd.assert_nothing_left("hookfail", &bundle, &cgroup);
    host::unmount(&private);
    guard.check();
}

/// `ctr run --uidmap/--gidmap` with a runtime not named `io.containerd.runc.*` sends the
/// task options as the legacy `containerd.linux.runc.CreateOptions` (io_uid/io_gid), as do
/// the containerd client's WithUIDOwner/WithGIDOwner/WithNoPivotRoot (`ctr run --no-pivot`).
#[test]
fn ctr_run_uidmap_is_accepted() {
    if !ready(&ARM64) {
        return;
    }
    let guard = HostGuard::new();
    let cd = containerd!();
    let image = import_busybox(&cd, &ARM64);
    let out = run_image(
        &cd,
        &image,
        ARM64.platform,
        "uidmap",
        &[
            "--rm",
            "--uidmap",
            "0:100000:65536",
            "--gidmap",
            "0:100000:65536",
        ],
        &[
            "sh",
            "-c",
            "cat /proc/self/uid_map; uname -m; sh -c 'echo nested'",
        ],
    );
    out.ok();
    let text = out.stdout_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["0", "100000", "65536"],
        "{}",
        out.show()
    );
    assert_eq!(&lines[1..], ["aarch64", "nested"], "{}", out.show());

    let out = run_image(
        &cd,
        &image,
        ARM64.platform,
        "nopivot",
        &["--rm", "--no-pivot"],
        &["uname", "-m"],
    );
    out.ok();
    assert_eq!(out.stdout_text(), "aarch64\n");
    guard.check();
}

#[test]
fn script_entrypoint_images_run() {
    if !crossarch_only(WHAT) {
        return;
    }
    let images = fixtures_dir().join("images");
    let native = images.join(format!("script-{}.tar", host_arch()));
    let foreign = images.join("script-arm64.tar");
    if !native.is_file() || !foreign.is_file() || !ARM64.available() {
        eprintln!(
            "SKIPPED: no script images in {}; run scripts/fixtures.sh",
            images.display()
        );
        return;
    }
    let guard = HostGuard::new();
    let cd = containerd!();
    import_archive(&cd, &native);
    import_archive(&cd, &foreign);
    let native_image = format!("crossarch.test/script:{}", host_arch());
    let platform = format!("linux/{}", host_arch());

    // The native image's Entrypoint is the script.
    let out = run_image(&cd, &native_image, &platform, "native", &["--rm"], &[]);
    out.ok();
    assert!(
        out.stdout_text()
            .starts_with(&format!("crossarch-hello: {} pid ", host_machine())),
        "{}",
        out.show()
    );

    // The arm64 image's Cmd is the script: #! leads to the arm64 /bin/sh.
    let out = run_image(
        &cd,
        "crossarch.test/script:arm64",
        ARM64.platform,
        "foreign",
        &["--rm"],
        &[],
    );
    out.ok();
    assert!(
        out.stdout_text()
            .starts_with("crossarch-hello: aarch64 pid "),
        "{}",
        out.show()
    );
    // With arguments, the script execs them: a child of the script, emulated too.
    let out = run_image(
        &cd,
        "crossarch.test/script:arm64",
        ARM64.platform,
        "foreign-args",
        &["--rm"],
        &["/usr/local/bin/crossarch-hello", "uname", "-m"],
    );
    out.ok();
    let text = out.stdout_text();
    assert!(
        text.starts_with("crossarch-hello: aarch64 pid ")
            && text.ends_with("args: uname -m\naarch64\n"),
        "{}",
        out.show()
    );
    guard.check();
}

/// `ctr run --rootfs DIR` with the runtime under test.
fn run_rootfs(cd: &Containerd, rootfs: &Path, id: &str, opts: &[&str], argv: &[&str]) -> String {
    let rootfs = rootfs.display().to_string();
    let mut args = vec![
        "run",
        "--rm",
        "--runtime",
        cd.runtime(),
        "--env",
        CONTAINER_PATH,
    ];
    args.extend_from_slice(opts);
    args.extend_from_slice(&["--rootfs", &rootfs, id]);
    args.extend_from_slice(argv);
    let out = cd.ctr(&args);
    out.show()
}

/// Links crafted to leave the root (`../../../..` and absolute) are resolved inside it: a
/// file that only the host has is never run, and a link to `/bin/busybox` is the rootfs's
/// arm64 busybox, not the host's.
#[test]
fn symlinks_cannot_escape_the_root() {
    if !ready(&ARM64) {
        return;
    }
    let guard = HostGuard::new();
    let cd = containerd!();
    let root = cd.dir().join("escape");
    copy_dir(&ARM64.rootfs(), &root);
    // A host-only program with a recognizable output.
    let marker = cd.dir().join("host-only");
    fs::write(&marker, "#!/bin/sh\necho ESCAPED-TO-HOST\n").unwrap();
    fs::set_permissions(&marker, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let up = "../../../../../../../..";
    let links = [
        ("bin/app", format!("{up}{}", marker.display())),
        ("bin/app-abs", marker.display().to_string()),
        // A host binary that the rootfs does not have.
        ("bin/app-usr", "../../../../usr/bin/containerd".to_string()),
        ("bin/app-usr-abs", "/usr/bin/containerd".to_string()),
    ];
    assert!(
        Path::new("/usr/bin/containerd").is_file()
            || Path::new("/usr/local/bin/containerd").is_file()
    );
    for (link, target) in &links {
        std::os::unix::fs::symlink(target, root.join(link)).unwrap();
    }
    let wrap = config_file(&cd, "[emulation]\nmode = \"wrap\"\n");
    for (n, (link, _)) in links.iter().enumerate() {
        for (m, opts) in [vec![], vec!["--runtime-config-path", wrap.as_str()]]
            .iter()
            .enumerate()
        {
            let shown = run_rootfs(
                &cd,
                &root,
                &format!("esc{n}-{m}"),
                opts,
                &[&format!("/{link}"), "--version"],
            );
            assert!(!shown.starts_with("exit 0"), "/{link} ran: {shown}");
            assert!(!shown.contains("ESCAPED-TO-HOST"), "{shown}");
            assert!(!shown.contains("containerd github.com"), "{shown}");
            assert!(
                shown.contains(&format!("/{link} does not exist in the container")),
                "{shown}"
            );
        }
    }

    // Links that lead "out" and back to /bin/busybox: the rootfs's arm64 busybox (the
    // host's is x86_64), found through PATH (/usr/local/bin comes first).
    std::os::unix::fs::symlink(
        format!("{up}/bin/busybox"),
        root.join("usr/local/bin/uname"),
    )
    .unwrap();
    std::os::unix::fs::symlink("/bin/busybox", root.join("usr/local/bin/arch")).unwrap();
    for (m, opts) in [vec![], vec!["--runtime-config-path", wrap.as_str()]]
        .iter()
        .enumerate()
    {
        let shown = run_rootfs(&cd, &root, &format!("in-uname-{m}"), opts, &["uname", "-m"]);
        assert!(
            shown.starts_with("exit 0\n--- stdout ---\naarch64\n"),
            "{shown}"
        );
        let shown = run_rootfs(&cd, &root, &format!("in-arch-{m}"), opts, &["arch"]);
        assert!(
            shown.starts_with("exit 0\n--- stdout ---\naarch64\n"),
            "{shown}"
        );
    }
    wait_for_log(
        &cd,
        "container in-uname-1: only /usr/local/bin/uname itself is emulated",
    );
    guard.check();
}

#[test]
fn off_mode_and_a_disallowed_arch_fail_create_with_the_fix() {
    if !ready(&ARM64) {
        return;
    }
    let guard = HostGuard::new();
    let cd = containerd!();
    let image = import_busybox(&cd, &ARM64);
    let hint = format!("install {}", qemu_package(&ARM64));
    let cases = [
        (
            "off",
            "[emulation]\nmode = \"off\"\n".to_string(),
            vec![
                "container off: /bin/uname is linux/arm64",
                "emulation of foreign binaries is turned off",
                "turn it on or use a linux/amd64 image",
            ],
        ),
        (
            "disallowed",
            "[emulation]\nallowed = [\"s390x\"]\n".to_string(),
            vec![
                "container disallowed: /bin/uname is linux/arm64",
                "does not allow",
                "add arm64 to the allowed architectures",
            ],
        ),
        (
            "noqemu",
            format!(
                "[emulation]\nqemu_dirs = [\"{}\"]\n",
                cd.dir().join("empty").display()
            ),
            vec![
                "container noqemu: /bin/uname is linux/arm64",
                "no qemu-aarch64-static in",
                &hint,
            ],
        ),
    ];
    fs::create_dir_all(cd.dir().join("empty")).unwrap();
    for (id, toml, wanted) in &cases {
        let config = config_file(&cd, toml);
        let out = run_image(
            &cd,
            &image,
            ARM64.platform,
            id,
            &["--runtime-config-path", &config],
            &["uname", "-m"],
        );
        assert_ne!(out.code(), 0, "{}", out.show());
        let err = out.stderr_text();
        for w in wanted {
            let w = w.replace("linux/amd64", &format!("linux/{}", host_arch()));
            assert!(err.contains(&w), "{w:?} missing: {}", out.show());
        }
        assert!(out.stdout_text().is_empty(), "{}", out.show());
        assert_eq!(cd.task(id), None, "no task is left behind");
        cd.ctr(&["container", "delete", id]).ok();
    }
    guard.check();
}

/// The host's binfmt_misc across foreign containers of every mode: nothing mounted there,
/// no entry added, while each container's own registrations emulate its processes.
#[test]
fn the_hosts_binfmt_misc_is_untouched() {
    if !ready(&ARM64) {
        return;
    }
    let before = HostBinfmt::read();
    eprintln!("host binfmt_misc before: {before:?}");
    assert!(
        before
            .qemu_entries()
            .iter()
            .all(|e| !e.starts_with("crossarch")),
        "{before:?}"
    );
    let guard = HostGuard::new();
    let cd = containerd!();
    let image = import_busybox(&cd, &ARM64);
    let wrap = config_file(&cd, "[emulation]\nmode = \"wrap\"\n");
    run_image_detached(&cd, &image, ARM64.platform, "u", &[], &["sleep", "1000"]);
    run_image_detached(
        &cd,
        &image,
        ARM64.platform,
        "w",
        &["--runtime-config-path", &wrap],
        &["sleep", "1000"],
    );
    // While they run: the container sees its own instance, the host none of it.
    let out = cd.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "ls",
        "u",
        "sh",
        "-c",
        "uname -m; ls /proc/sys/fs/binfmt_misc | wc -l",
    ]);
    out.ok();
    assert_eq!(
        out.stdout_text(),
        "aarch64\n0\n",
        "emulated through an instance mounted nowhere in the container: {}",
        out.show()
    );
    let during = HostBinfmt::read();
    assert_eq!(during, before, "while foreign containers run");
    if !before.has_binfmt_mount() {
        assert!(!during.has_binfmt_mount(), "{during:?}");
    }
    for id in ["u", "w"] {
        cd.ctr(&["task", "kill", "-s", "SIGKILL", id]).ok();
        cd.wait_status(id, "STOPPED", LONG);
        cd.ctr(&["task", "delete", id]).ok();
    }
    drop(cd);
    guard.check();
    let after = HostBinfmt::read();
    eprintln!("host binfmt_misc after: {after:?}");
    if !before.has_binfmt_mount() {
        assert!(!after.has_binfmt_mount(), "{after:?}");
        assert!(after.entries.is_empty(), "{after:?}");
    }
}
