//! `containerd-shim-crossarch-v2 binfmt-hook`: the createContainer hook that gives a foreign
//! container its own binfmt_misc.
//!
//! runc runs it inside the container's user and mount namespaces, before pivot_root, with full
//! capabilities. It mounts a binfmt_misc instance at `<rootfs>/proc/sys/fs/binfmt_misc` (on
//! Linux >= 6.7 each user namespace has its own), registers qemu for each architecture by its
//! host path, and makes the mount read-only so the workload cannot change it. The instance and
//! its entries vanish with the container's mount namespace; the host's instance is never seen.

use std::{
    io::{Read, Write},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use crossarch_route::arch::Arch;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::binfmt;

pub const COMMAND: &str = "binfmt-hook";

/// The kernel's fixed inode number of the initial user namespace (PROC_USER_INIT_INO).
const INITIAL_USER_NS_INO: u64 = 0xEFFF_FFFD;

/// This process's user namespace, as an inode number.
pub fn user_namespace() -> std::io::Result<u64> {
    std::fs::metadata("/proc/self/ns/user").map(|m| m.ino())
}

/// The hook's command line, after the shim binary.
pub fn args(container: &str, shim_userns: u64, qemus: &[(Arch, PathBuf)]) -> Vec<String> {
    let mut v = vec![
        "containerd-shim-crossarch-v2".to_string(),
        COMMAND.to_string(),
        "--container".to_string(),
        container.to_string(),
        "--not-userns".to_string(),
        shim_userns.to_string(),
    ];
    v.extend(
        qemus
            .iter()
            .map(|(a, p)| format!("{}={}", a.qemu_name(), p.display())),
    );
    v
}

struct Request {
    container: String,
    not_userns: u64,
    qemus: Vec<(Arch, PathBuf)>,
}

fn parse(args: &[String]) -> Result<Request, String> {
    let mut r = Request {
        container: String::new(),
        not_userns: 0,
        qemus: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--container" => r.container = it.next().cloned().unwrap_or_default(),
            "--not-userns" => {
                r.not_userns = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--not-userns needs an inode number")?
            }
            pair => {
                let (name, path) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("bad argument {pair:?}"))?;
                let arch = Arch::all()
                    .find(|a| a.qemu_name() == name)
                    .ok_or_else(|| format!("unknown architecture {name:?}"))?;
                r.qemus.push((arch, PathBuf::from(path)));
            }
        }
    }
    Ok(r)
}

fn rootfs_from_state(state: &[u8]) -> Result<PathBuf, String> {
    #[derive(serde::Deserialize)]
    struct State {
        bundle: PathBuf,
    }
    let state: State =
        serde_json::from_slice(state).map_err(|e| format!("bad OCI state on stdin: {e}"))?;
    let spec: serde_json::Value = std::fs::read(state.bundle.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("cannot read the bundle's config.json")?;
    let root = PathBuf::from(spec["root"]["path"].as_str().unwrap_or("rootfs"));
    Ok(if root.is_absolute() {
        root
    } else {
        state.bundle.join(root)
    })
}

fn register_all(target: &Path, qemus: &[(Arch, PathBuf)]) -> Result<(), String> {
    for (arch, qemu) in qemus {
        let line = binfmt::registration(*arch, qemu)
            .ok_or_else(|| format!("{arch:?} cannot be registered"))?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(target.join("register"))
            .map_err(|e| format!("cannot open {}/register: {e}", target.display()))?;
        // One write(2): the kernel parses each write on its own.
        match f.write(line.as_bytes()) {
            Ok(_) => {}
            // A user namespace shared with another container already has it.
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => {
                return Err(format!(
                    "cannot register {} for {arch}: {e}",
                    qemu.display()
                ))
            }
        }
    }
    Ok(())
}

fn run(args: &[String]) -> Result<(), String> {
    let req = parse(args)?;
    let userns = user_namespace().map_err(|e| format!("cannot read the user namespace: {e}"))?;
    if userns == INITIAL_USER_NS_INO || userns == req.not_userns {
        return Err(
            "refusing to mount binfmt_misc: the container has no user namespace of its own, \
                    so it would be the host's instance"
                .into(),
        );
    }
    let mut state = Vec::new();
    std::io::stdin()
        .read_to_end(&mut state)
        .map_err(|e| format!("cannot read the OCI state: {e}"))?;
    let target = rootfs_from_state(&state)?.join("proc/sys/fs/binfmt_misc");
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(
        Some("binfmt_misc"),
        &target,
        Some("binfmt_misc"),
        flags,
        None::<&str>,
    )
    .map_err(|e| {
        format!(
            "cannot mount binfmt_misc at {}: {e} (needs Linux >= 6.7)",
            target.display()
        )
    })?;
    let done = register_all(&target, &req.qemus).and_then(|()| {
        mount(
            None::<&str>,
            &target,
            None::<&str>,
            flags | MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(|e| format!("cannot make {} read-only: {e}", target.display()))
    });
    if done.is_err() {
        let _ = umount2(&target, MntFlags::MNT_DETACH);
    }
    done
}

/// Runs the hook; returns the process exit code.
pub fn main(args: &[String]) -> i32 {
    match run(args) {
        Ok(()) => 0,
        Err(e) => {
            let container = parse(args).map(|r| r.container).unwrap_or_default();
            let _ = writeln!(
                std::io::stderr(),
                "crossarch binfmt hook, container {container}: {e}; set emulation.mode = \"wrap\" \
                 in the crossarch config to run without a private binfmt_misc"
            );
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_round_trip() {
        let qemus = vec![(Arch::Aarch64, PathBuf::from("/usr/bin/qemu-aarch64-static"))];
        let a = args("web", 4026532000, &qemus);
        assert_eq!(a[1], COMMAND);
        let r = parse(&a[2..]).unwrap();
        assert_eq!(r.container, "web");
        assert_eq!(r.not_userns, 4026532000);
        assert_eq!(r.qemus, qemus);
        assert!(parse(&["riscv9=/x".into()]).is_err());
    }

    #[test]
    fn rootfs_comes_from_the_bundle() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"root":{"path":"rootfs"}}"#,
        )
        .unwrap();
        let state = format!(
            r#"{{"ociVersion":"1.0.2","id":"a","bundle":"{}"}}"#,
            dir.path().display()
        );
        assert_eq!(
            rootfs_from_state(state.as_bytes()).unwrap(),
            dir.path().join("rootfs")
        );
    }

    #[test]
    fn the_shims_own_namespace_is_refused() {
        // The test runs in the shim's position: its own namespace must be refused.
        let me = user_namespace().unwrap();
        let a = args("web", me, &[]);
        let e = run(&a[2..]).unwrap_err();
        assert!(e.contains("refusing"), "{e}");
    }
}
