//! A real package manager step in trace mode (`emulation.mode = "trace"`): arm64 dpkg
//! unpacks and configures arm64 packages in an arm64 Debian root, so their maintainer scripts
//! (`#!/bin/sh` scripts that dpkg, itself emulated, starts) run, and start cp, chown,
//! update-alternatives and the rest, every one an arm64 exec that the injected init's tracer
//! hands to qemu; then switches to another user (setpriv, gosu) and that user's execs. No
//! binfmt_misc anywhere; the host's is checked untouched.
//!
//! The root is debootstrap's first stage (`debootstrap --foreign --arch=arm64
//! --variant=minbase bookworm`), which scripts/fixture-debroot.sh builds into
//! `fixtures/out/debroot/arm64` (scripts/fixtures.sh runs it): the packages are extracted
//! but none is configured, and their .debs are in `/var/cache/apt/archives`. The test works
//! on a copy, so the cache stays as built. Without the fixture it skips (fails in CI).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crossarch_integration::cmd::run_with_timeout;
use crossarch_integration::crossarch::{config_file, copy_dir, crossarch_only, HostGuard, ARM64};
use crossarch_integration::{containerd, fixtures_dir, wait_until, OutputExt, CONTAINER_PATH};

const WHAT: &str = "trace mode";
const TRACE: &str = "[emulation]\nmode = \"trace\"\n";

/// Installed in this order, one `dpkg --install` each, as debootstrap's second stage installs
/// its core packages: base-passwd's postinst writes /etc/passwd and /etc/group, which
/// base-files' postinst then needs for `chown root:utmp`; mawk provides the awk that
/// base-files pre-depends on, and its postinst runs the arm64 `update-alternatives`.
const PACKAGES: [&str; 3] = ["base-passwd", "mawk", "base-files"];

/// The switch of user that entrypoints make (`exec gosu postgres "$0" "$@"`), which the first
/// stage only downloads (`--include=gosu`).
const GOSU: &str = "gosu";

/// dpkg under qemu, every exec traced: a few seconds here, with room for a loaded machine.
const DPKG_TIMEOUT: Duration = Duration::from_secs(300);

/// The first-stage root, if scripts/fixture-debroot.sh built it; else says why the test
/// skips (a failure in CI).
fn debroot() -> Option<PathBuf> {
    let root = fixtures_dir().join("debroot").join(ARM64.deb);
    let complete = root.join("debootstrap/debootstrap").is_file()
        && PACKAGES
            .iter()
            .chain(&[GOSU])
            .all(|p| deb_of(&root, p).is_some());
    if complete {
        return Some(root);
    }
    let why = format!(
        "no first-stage arm64 Debian root with {} and {GOSU} in {}; run scripts/fixture-debroot.sh",
        PACKAGES.join(", "),
        root.display()
    );
    if std::env::var_os("CI").is_some() {
        panic!("{why}");
    }
    eprintln!("SKIPPED: {why}");
    None
}

/// The .deb of `package` that the first stage left in the root's apt cache.
fn deb_of(root: &Path, package: &str) -> Option<String> {
    let prefix = format!("{package}_");
    let suffix = format!("_{}.deb", ARM64.deb);
    fs::read_dir(root.join("var/cache/apt/archives"))
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with(&prefix) && n.ends_with(&suffix))
}

/// The lines after `== NAME` up to the next `== ` line of the container's output.
fn section<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let head = format!("== {name}");
    text.lines()
        .skip_while(|l| *l != head)
        .skip(1)
        .take_while(|l| !l.starts_with("== "))
        .collect()
}

/// The numeric id of `name` in a group file's text.
fn gid_of(group: &str, name: &str) -> Option<u32> {
    group.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 3 && f[0] == name).then(|| f[2].parse().ok())?
    })
}

#[test]
fn dpkg_installs_arm64_packages_and_runs_their_maintainer_scripts() {
    if !(crossarch_only(WHAT) && ARM64.available()) {
        return;
    }
    let Some(cache) = debroot() else {
        return;
    };
    let guard = HostGuard::new();
    let cd = containerd!();
    let root = cd.dir().join("debroot");
    copy_dir(&cache, &root);
    // What the maintainer scripts make is not there before they run.
    for made in [
        "etc/passwd",
        "etc/group",
        "etc/alternatives/awk",
        "root/.profile",
    ] {
        assert!(
            fs::symlink_metadata(root.join(made)).is_err(),
            "/{made} is in the first-stage root already"
        );
    }

    let mut script = String::from("echo \"== uname\"; uname -m\ncd /var/cache/apt/archives\n");
    for p in PACKAGES {
        let deb = deb_of(&root, p).unwrap();
        script.push_str(&format!(
            "echo \"== dpkg --install {p}\"\n\
             dpkg --force-depends --install {deb} || {{ echo \"dpkg exit $? for {p}\"; exit 10; }}\n"
        ));
    }
    for p in PACKAGES {
        script.push_str(&format!(
            "echo \"== dpkg -s {p}\"; dpkg -s {p} || exit 11\n"
        ));
    }
    // Switches of user in that root, then the shell's own execs as nobody:
    // - setpriv (glibc, util-linux) looks `sh` up along PATH, so its first execs as nobody,
    //   which the init hands over, fail (ENOENT) until /usr/bin/sh;
    // - gosu (Go), as entrypoints use it, changes its ids from every one of its threads.
    let gosu = deb_of(&root, GOSU).expect("the first stage downloads gosu");
    let as_nobody = "sh -c 'id -u; uname -m; dpkg --print-architecture'";
    script.push_str(&format!(
        "echo \"== setpriv\"; setpriv --reuid=65534 --regid=65534 --clear-groups \
         {as_nobody} || exit 12\n\
         dpkg --install {gosu} >/dev/null || exit 13\n\
         echo \"== gosu\"; gosu nobody {as_nobody} || exit 14\n"
    ));
    script.push_str("echo \"== done\"\n");

    let trace = config_file(&cd, TRACE);
    let id = "dpkg";
    let rootfs = root.display().to_string();
    let args = [
        "run",
        "--rm",
        "--runtime",
        cd.runtime(),
        "--runtime-config-path",
        &trace,
        "--platform",
        ARM64.platform,
        "--env",
        CONTAINER_PATH,
        "--env",
        "DEBIAN_FRONTEND=noninteractive",
        "--rootfs",
        &rootfs,
        id,
        "/bin/sh",
        "-c",
        &script,
    ];
    let started = std::time::Instant::now();
    let out = run_with_timeout(cd.ctr_command(&args), None, DPKG_TIMEOUT);
    println!(
        "dpkg of {} took {:?}",
        PACKAGES.join(", "),
        started.elapsed()
    );
    let shown = out.show();
    assert_eq!(out.code(), 0, "dpkg in trace mode: {shown}");
    let log = cd.log_path();
    wait_until(
        "the shim's trace-mode line in containerd's log",
        Duration::from_secs(10),
        || {
            fs::read_to_string(&log).is_ok_and(|l| {
                l.contains(&format!(
                    "container {id}: every process is emulated by the injected init"
                ))
            })
        },
    );
    let text = out.stdout_text();
    assert_eq!(section(&text, "uname"), ["aarch64"], "{shown}");
    for p in PACKAGES {
        let setting_up = section(&text, &format!("dpkg --install {p}"));
        assert!(
            setting_up
                .iter()
                .any(|l| l.starts_with(&format!("Setting up {p} "))),
            "dpkg configured {p}: {shown}"
        );
        let status = section(&text, &format!("dpkg -s {p}"));
        assert!(
            status.contains(&"Status: install ok installed"),
            "dpkg -s {p}: {status:?}\n{shown}"
        );
    }
    for switch in ["setpriv", "gosu"] {
        assert_eq!(
            section(&text, switch),
            ["65534", "aarch64", "arm64"],
            "{shown}"
        );
    }
    assert_eq!(text.lines().last(), Some("== done"), "{shown}");

    // base-passwd's postinst: cp of its master files.
    let passwd = fs::read_to_string(root.join("etc/passwd")).expect("/etc/passwd from base-passwd");
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with("root:") && l.contains(":0:0:")),
        "{passwd}"
    );
    let group = fs::read_to_string(root.join("etc/group")).expect("/etc/group from base-passwd");
    // mawk's postinst: the arm64 update-alternatives.
    assert_eq!(
        fs::read_link(root.join("etc/alternatives/awk")).ok(),
        Some(PathBuf::from("/usr/bin/mawk")),
        "/etc/alternatives/awk from mawk's postinst"
    );
    assert_eq!(
        fs::read_link(root.join("usr/bin/awk")).ok(),
        Some(PathBuf::from("/etc/alternatives/awk"))
    );
    // base-files' postinst: cp -p, and chown root:utmp, by the name base-passwd gave.
    assert!(root.join("root/.profile").is_file(), "/root/.profile");
    let utmp = gid_of(&group, "utmp").unwrap_or_else(|| panic!("no utmp group: {group}"));
    let wtmp = fs::metadata(root.join("var/log/wtmp")).expect("/var/log/wtmp from base-files");
    assert_eq!(
        (wtmp.uid(), wtmp.gid(), wtmp.mode() & 0o7777),
        (0, utmp, 0o664),
        "/var/log/wtmp"
    );
    guard.check();
}
