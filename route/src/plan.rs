//! The routing decision: run natively, wrap in qemu, or refuse with a reason.
//!
//! [`decide`] is pure given its inputs. Finding qemu is passed in as a function so the shim
//! can use [`crate::qemu::discover`], a cache of it, or a test fake, and so it only happens
//! for foreign binaries.

use crate::arch::{self, Arch, Host, UnsupportedBinary};
use crate::qemu::{self, Qemu};
use crate::resolve::Resolved;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

/// Where crossarch puts its own files inside a container (the init, and qemu in the fallback):
/// under /dev, a tmpfs runc creates, so nothing is written into the image's rootfs.
pub const IN_CONTAINER_DIR: &str = "/dev/.crossarch";

/// The node admin's routing policy, normally from the shim's config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// The off switch: when false, foreign binaries are refused instead of emulated.
    pub enabled: bool,
    /// Foreign architectures that may be emulated; `None` allows every one crossarch knows.
    pub allowed: Option<Vec<Arch>>,
    /// Host directories searched for qemu-user-static.
    pub qemu_dirs: Vec<PathBuf>,
    /// Where qemu appears inside the container in the fallback (no user namespace) mode.
    pub qemu_dir_in_container: PathBuf,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            enabled: true,
            allowed: None,
            qemu_dirs: qemu::default_dirs(),
            qemu_dir_in_container: IN_CONTAINER_DIR.into(),
        }
    }
}

/// How the process runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "route", rename_all = "lowercase")]
pub enum Route {
    /// The host kernel runs it; the spec is left alone.
    Native,
    /// It runs through qemu. In the binfmt_misc mode the shim registers `qemu_host_path` in
    /// the container's own binfmt_misc instance and leaves args alone; in the fallback it
    /// bind-mounts qemu at `qemu_in_container_path` and replaces process.args with `args`.
    Wrap {
        arch: Arch,
        qemu_host_path: PathBuf,
        qemu_in_container_path: PathBuf,
        /// `[qemu, "-0", argv0, resolved path, args...]`. qemu is configured by flags only:
        /// it passes its whole environment to the guest, so no `QEMU_*` variables are set.
        args: Vec<String>,
    },
    /// It cannot run here; the message says why and what to do.
    Refused { reason: Refusal },
}

/// Why a process cannot run, with what the user sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct Refusal {
    pub container: String,
    /// args\[0\] resolved in the container.
    pub binary: PathBuf,
    /// The ELF that would run, when a `#!` chain leads elsewhere.
    pub elf_path: PathBuf,
    pub host: Arch,
    #[serde(serialize_with = "display")]
    pub kind: RefusalKind,
}

/// The reasons a process is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefusalKind {
    /// The binary is foreign and the policy's off switch is set.
    Disabled { arch: Arch },
    /// The binary's architecture is not in the policy's allowed list.
    NotAllowed { arch: Arch, allowed: Vec<Arch> },
    /// No usable qemu on the host.
    NoQemu(qemu::NotFound),
    /// No emulator exists for this kind of binary.
    Unsupported(UnsupportedBinary),
}

impl fmt::Display for RefusalKind {
    /// A short tag for logs; [`Refusal`]'s Display has the full sentence.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RefusalKind::Disabled { .. } => "disabled",
            RefusalKind::NotAllowed { .. } => "not-allowed",
            RefusalKind::NoQemu(_) => "no-qemu",
            RefusalKind::Unsupported(_) => "unsupported",
        })
    }
}

fn display<T: fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "container {}: {}", self.container, self.binary.display())?;
        if self.elf_path != self.binary {
            write!(f, " (#! {})", self.elf_path.display())?;
        }
        let host = self.host;
        match &self.kind {
            RefusalKind::Disabled { arch } => write!(
                f,
                " is {arch}, but emulation of foreign binaries is turned off in the crossarch \
                 config of this {host} node; turn it on or use a {host} image"
            ),
            RefusalKind::NotAllowed { arch, allowed } => {
                let allowed: Vec<&str> = allowed.iter().map(|a| a.oci_name()).collect();
                write!(
                    f,
                    " is {arch}, which the crossarch config of this {host} node does not allow \
                     (allowed: {}); add {} to the allowed architectures or use a {host} image",
                    if allowed.is_empty() {
                        "none".to_owned()
                    } else {
                        allowed.join(", ")
                    },
                    arch.oci_name()
                )
            }
            RefusalKind::NoQemu(nf) => write!(f, " is {}; {nf}", nf.arch),
            RefusalKind::Unsupported(u) => write!(
                f,
                ": {u}, and this {host} node cannot run it natively; use a {host} image"
            ),
        }
    }
}

/// The decision, as the shim logs it and shows it to whoever asks why a process runs the
/// way it does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub container: String,
    /// args\[0\] resolved in the container.
    pub path_in_root: PathBuf,
    /// The `#!` interpreters between `path_in_root` and the ELF.
    pub interpreters: Vec<PathBuf>,
    /// The ELF that runs.
    pub elf_path: PathBuf,
    pub loader: Option<PathBuf>,
    /// The binary's architecture, when crossarch knows it.
    pub arch: Option<Arch>,
    pub host: Arch,
    #[serde(flatten)]
    pub route: Route,
    /// One sentence: why this route.
    pub why: String,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.route {
            Route::Refused { reason } => write!(f, "{reason}"),
            _ => write!(
                f,
                "container {}: {}: {}",
                self.container,
                self.path_in_root.display(),
                self.why
            ),
        }
    }
}

/// The name qemu for `arch` has in the container's qemu directory.
pub fn qemu_file_name(arch: Arch) -> String {
    format!("qemu-{}-static", arch.qemu_name())
}

/// The argv that runs `args`, resolved as `resolved`, through the qemu at `qemu`:
/// `[qemu, "-0", argv0, ELF, args...]`, where argv0 and the args are what the kernel would
/// hand the ELF after its `#!` hops ([`Resolved::exec_argv`]).
pub fn wrapped_argv(qemu: &str, resolved: &Resolved, args: &[String]) -> Vec<String> {
    let argv = resolved.exec_argv(args);
    let mut wrapped = vec![qemu.to_owned(), "-0".to_owned()];
    wrapped.extend(argv.first().cloned());
    wrapped.push(resolved.elf_path.to_string_lossy().into_owned());
    wrapped.extend(argv.into_iter().skip(1));
    wrapped
}

/// Decides how the process `args`, resolved as `resolved`, runs in `container` on `host`.
/// `find_qemu` is called at most once, and only for a foreign binary the policy allows.
pub fn decide(
    container: &str,
    policy: &Policy,
    host: &Host,
    resolved: &Resolved,
    args: &[String],
    find_qemu: impl FnOnce(Arch) -> Result<Qemu, qemu::NotFound>,
) -> Decision {
    let binary_arch = Arch::from_elf(&resolved.elf);
    let refuse = |kind| Route::Refused {
        reason: Refusal {
            container: container.to_owned(),
            binary: resolved.path_in_root.clone(),
            elf_path: resolved.elf_path.clone(),
            host: host.arch,
            kind,
        },
    };
    let (route, why) = match binary_arch {
        Err(unsupported) if resolved.elf.machine == host.arch.elf_machine() => (
            Route::Native,
            format!("{unsupported}, but it is the host's machine, so the kernel decides"),
        ),
        Err(unsupported) => (refuse(RefusalKind::Unsupported(unsupported)), String::new()),
        Ok(arch) if arch == host.arch => (Route::Native, format!("{arch} binary, native")),
        Ok(arch) if arch::runs_natively(host.arch, arch, &host.facts) => (
            Route::Native,
            format!("{arch} binary, run natively by the {} kernel", host.arch),
        ),
        Ok(arch) if !policy.enabled => (refuse(RefusalKind::Disabled { arch }), String::new()),
        Ok(arch) if policy.allowed.as_ref().is_some_and(|a| !a.contains(&arch)) => (
            refuse(RefusalKind::NotAllowed {
                arch,
                allowed: policy.allowed.clone().unwrap_or_default(),
            }),
            String::new(),
        ),
        Ok(arch) => match find_qemu(arch) {
            Ok(q) => {
                let in_container = policy.qemu_dir_in_container.join(qemu_file_name(arch));
                let wrapped = wrapped_argv(&in_container.to_string_lossy(), resolved, args);
                let why = format!(
                    "{arch} binary on a {} host, emulated by {}",
                    host.arch,
                    q.path.display()
                );
                (
                    Route::Wrap {
                        arch,
                        qemu_host_path: q.path,
                        qemu_in_container_path: in_container,
                        args: wrapped,
                    },
                    why,
                )
            }
            Err(nf) => (refuse(RefusalKind::NoQemu(nf)), String::new()),
        },
    };
    let why = match &route {
        Route::Refused { reason } => reason.to_string(),
        _ => why,
    };
    Decision {
        container: container.to_owned(),
        path_in_root: resolved.path_in_root.clone(),
        interpreters: resolved
            .scripts
            .iter()
            .map(|s| s.interpreter.clone())
            .collect(),
        elf_path: resolved.elf_path.clone(),
        loader: resolved.loader.clone(),
        arch: binary_arch.ok(),
        host: host.arch,
        route,
        why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::HostFacts;
    use crate::craft::Craft;
    use crate::elf::{self, Class, Endian};
    use crate::resolve::Script;

    const AMD64: Host = Host {
        arch: Arch::X86_64,
        facts: HostFacts { compat32: true },
    };

    fn resolved(path: &str, craft: Craft) -> Resolved {
        Resolved {
            path_in_root: path.into(),
            scripts: vec![],
            elf_path: path.into(),
            elf: elf::parse(&craft.bytes()).unwrap(),
            loader: None,
        }
    }

    fn arm64() -> Craft {
        Craft {
            machine: 183,
            ..Craft::default()
        }
    }

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn found(a: Arch) -> Result<Qemu, qemu::NotFound> {
        Ok(Qemu {
            arch: a,
            path: format!("/usr/bin/qemu-{}-static", a.qemu_name()).into(),
        })
    }

    fn no_qemu(a: Arch) -> Result<Qemu, qemu::NotFound> {
        Err(qemu::NotFound {
            arch: a,
            dirs: vec!["/usr/bin".into(), "/usr/local/bin".into()],
            rejected: vec![],
            package: qemu::DEFAULT_PACKAGE,
        })
    }

    fn never(_: Arch) -> Result<Qemu, qemu::NotFound> {
        panic!("qemu must not be looked up for a native binary")
    }

    #[test]
    fn native_binary_stays_native() {
        let d = decide(
            "web",
            &Policy::default(),
            &AMD64,
            &resolved("/bin/sh", Craft::default()),
            &args(&["sh"]),
            never,
        );
        assert_eq!(d.route, Route::Native);
        assert_eq!(d.arch, Some(Arch::X86_64));
        assert_eq!(
            d.to_string(),
            "container web: /bin/sh: linux/amd64 binary, native"
        );
    }

    #[test]
    fn i386_is_native_only_with_compat32() {
        let i386 = Craft {
            class: Class::Elf32,
            machine: 3,
            ..Craft::default()
        };
        let r = resolved("/bin/sh", i386);
        let d = decide("c", &Policy::default(), &AMD64, &r, &args(&["sh"]), never);
        assert_eq!(d.route, Route::Native);
        let no_ia32 = Host {
            facts: HostFacts { compat32: false },
            ..AMD64
        };
        let d = decide("c", &Policy::default(), &no_ia32, &r, &args(&["sh"]), found);
        assert!(matches!(
            d.route,
            Route::Wrap {
                arch: Arch::I386,
                ..
            }
        ));
    }

    #[test]
    fn foreign_binary_is_wrapped_with_argv0_kept() {
        let d = decide(
            "web",
            &Policy::default(),
            &AMD64,
            &resolved("/bin/sh", arm64()),
            &args(&["sh", "-c", "uname -m"]),
            found,
        );
        let Route::Wrap {
            arch,
            qemu_host_path,
            qemu_in_container_path,
            args: wrapped,
        } = &d.route
        else {
            panic!("{:?}", d.route)
        };
        assert_eq!(*arch, Arch::Aarch64);
        assert_eq!(
            qemu_host_path,
            &PathBuf::from("/usr/bin/qemu-aarch64-static")
        );
        assert_eq!(
            qemu_in_container_path,
            &PathBuf::from("/dev/.crossarch/qemu-aarch64-static")
        );
        assert_eq!(
            wrapped,
            &args(&[
                "/dev/.crossarch/qemu-aarch64-static",
                "-0",
                "sh",
                "/bin/sh",
                "-c",
                "uname -m"
            ])
        );
        assert!(!wrapped.iter().any(|a| a.starts_with("QEMU_")));
        assert_eq!(
            d.to_string(),
            "container web: /bin/sh: linux/arm64 binary on a linux/amd64 host, emulated by /usr/bin/qemu-aarch64-static"
        );
    }

    #[test]
    fn foreign_script_wraps_the_interpreter() {
        let mut r = resolved("/app/run.sh", arm64());
        r.elf_path = "/bin/busybox".into();
        r.scripts = vec![Script {
            path: "/app/run.sh".into(),
            interpreter_as_written: "/bin/sh".into(),
            interpreter: "/bin/busybox".into(),
            arg: Some("-e".into()),
        }];
        let d = decide(
            "job",
            &Policy::default(),
            &AMD64,
            &r,
            &args(&["run.sh", "x"]),
            found,
        );
        let Route::Wrap { args: wrapped, .. } = &d.route else {
            panic!("{:?}", d.route)
        };
        assert_eq!(
            wrapped,
            &args(&[
                "/dev/.crossarch/qemu-aarch64-static",
                "-0",
                "/bin/sh",
                "/bin/busybox",
                "-e",
                "/app/run.sh",
                "x"
            ])
        );
        assert_eq!(d.interpreters, vec![PathBuf::from("/bin/busybox")]);
    }

    #[test]
    fn missing_qemu_is_refused_with_the_project_message() {
        let d = decide(
            "web",
            &Policy::default(),
            &AMD64,
            &resolved("/bin/sh", arm64()),
            &args(&["sh"]),
            no_qemu,
        );
        assert!(matches!(d.route, Route::Refused { .. }));
        assert_eq!(
            d.to_string(),
            "container web: /bin/sh is linux/arm64; no qemu-aarch64-static in /usr/bin, /usr/local/bin; install qemu-user-static"
        );
        assert_eq!(d.why, d.to_string());
    }

    #[test]
    fn off_switch_and_allow_list() {
        let r = resolved("/bin/sh", arm64());
        let off = Policy {
            enabled: false,
            ..Policy::default()
        };
        let d = decide("web", &off, &AMD64, &r, &args(&["sh"]), never);
        assert!(
            d.to_string()
                .contains("is linux/arm64, but emulation of foreign binaries is turned off"),
            "{d}"
        );
        // The off switch never blocks native binaries.
        let native = resolved("/bin/sh", Craft::default());
        assert_eq!(
            decide("web", &off, &AMD64, &native, &args(&["sh"]), never).route,
            Route::Native
        );
        let only_s390x = Policy {
            allowed: Some(vec![Arch::S390x]),
            ..Policy::default()
        };
        let d = decide("web", &only_s390x, &AMD64, &r, &args(&["sh"]), never);
        assert_eq!(
            d.to_string(),
            "container web: /bin/sh is linux/arm64, which the crossarch config of this linux/amd64 node does not allow (allowed: s390x); add arm64 to the allowed architectures or use a linux/amd64 image"
        );
    }

    #[test]
    fn unknown_machines() {
        let sparc = Craft {
            machine: 43,
            endian: Endian::Big,
            ..Craft::default()
        };
        let d = decide(
            "web",
            &Policy::default(),
            &AMD64,
            &resolved("/app", sparc),
            &args(&["/app"]),
            never,
        );
        assert_eq!(
            d.to_string(),
            "container web: /app: ELF machine 0x2b 64-bit big-endian binaries have no qemu-user target crossarch knows, and this linux/amd64 node cannot run it natively; use a linux/amd64 image"
        );
        // x32 is the host's machine: left to the kernel.
        let x32 = Craft {
            class: Class::Elf32,
            ..Craft::default()
        };
        let d = decide(
            "web",
            &Policy::default(),
            &AMD64,
            &resolved("/app", x32),
            &args(&["/app"]),
            never,
        );
        assert_eq!(d.route, Route::Native);
    }

    #[test]
    fn decision_serializes_for_logs() {
        let d = decide(
            "web",
            &Policy::default(),
            &AMD64,
            &resolved("/bin/sh", arm64()),
            &args(&["sh"]),
            found,
        );
        let v: serde_json::Value = serde_json::to_value(&d).unwrap();
        assert_eq!(v["route"], "wrap");
        assert_eq!(v["arch"], "arm64");
        assert_eq!(v["host"], "amd64");
        assert_eq!(v["qemu_host_path"], "/usr/bin/qemu-aarch64-static");
        let refused = decide(
            "web",
            &Policy::default(),
            &AMD64,
            &resolved("/bin/sh", arm64()),
            &args(&["sh"]),
            no_qemu,
        );
        let v = serde_json::to_value(&refused).unwrap();
        assert_eq!(v["route"], "refused");
        assert!(v["why"]
            .as_str()
            .unwrap()
            .contains("install qemu-user-static"));
    }

    /// An arm64 node (Graviton, Ampere, Cobalt) whose CPU has AArch32 EL0, and one without.
    const ARM64: Host = Host {
        arch: Arch::Aarch64,
        facts: HostFacts { compat32: true },
    };
    const ARM64_NO_AARCH32: Host = Host {
        facts: HostFacts { compat32: false },
        ..ARM64
    };

    fn i386() -> Craft {
        Craft {
            class: Class::Elf32,
            machine: 3,
            ..Craft::default()
        }
    }

    /// An armhf binary: EABI 5, hard float.
    fn armhf() -> Craft {
        Craft {
            class: Class::Elf32,
            machine: 40,
            flags: 0x0500_0400,
            ..Craft::default()
        }
    }

    /// The route on `host` of a `/bin/sh` built as `craft`, run as `sh -c true`.
    fn route_on(host: &Host, craft: Craft) -> Decision {
        decide(
            "web",
            &Policy::default(),
            host,
            &resolved("/bin/sh", craft),
            &args(&["sh", "-c", "true"]),
            found,
        )
    }

    /// The qemu a decision wraps the process in (host path, in the container), or None.
    fn qemu_of(d: &Decision) -> Option<(Arch, &str, &str)> {
        match &d.route {
            Route::Wrap {
                arch,
                qemu_host_path,
                qemu_in_container_path,
                ..
            } => Some((
                *arch,
                qemu_host_path.to_str().unwrap(),
                qemu_in_container_path.to_str().unwrap(),
            )),
            _ => None,
        }
    }

    #[test]
    fn on_an_arm64_host_amd64_and_386_go_to_their_qemu() {
        for host in [ARM64, ARM64_NO_AARCH32] {
            let d = route_on(&host, Craft::default());
            assert_eq!(
                qemu_of(&d),
                Some((
                    Arch::X86_64,
                    "/usr/bin/qemu-x86_64-static",
                    "/dev/.crossarch/qemu-x86_64-static"
                )),
                "{d:?}"
            );
            let Route::Wrap { args: wrapped, .. } = &d.route else {
                unreachable!()
            };
            assert_eq!(
                wrapped,
                &args(&[
                    "/dev/.crossarch/qemu-x86_64-static",
                    "-0",
                    "sh",
                    "/bin/sh",
                    "-c",
                    "true"
                ])
            );
            assert_eq!(
                d.to_string(),
                "container web: /bin/sh: linux/amd64 binary on a linux/arm64 host, emulated by /usr/bin/qemu-x86_64-static"
            );
            // i386 is x86_64's compat ABI, never aarch64's: emulated even with AArch32.
            let d = route_on(&host, i386());
            assert_eq!(
                qemu_of(&d),
                Some((
                    Arch::I386,
                    "/usr/bin/qemu-i386-static",
                    "/dev/.crossarch/qemu-i386-static"
                )),
                "{d:?}"
            );
            assert_eq!(d.host, Arch::Aarch64);
        }
    }

    #[test]
    fn on_an_arm64_host_arm_is_native_only_with_aarch32() {
        let d = route_on(&ARM64, armhf());
        assert_eq!(d.route, Route::Native);
        assert_eq!(d.arch, Some(Arch::Arm));
        assert_eq!(
            d.to_string(),
            "container web: /bin/sh: linux/arm binary, run natively by the linux/arm64 kernel"
        );
        let d = route_on(&ARM64_NO_AARCH32, armhf());
        assert_eq!(
            qemu_of(&d),
            Some((
                Arch::Arm,
                "/usr/bin/qemu-arm-static",
                "/dev/.crossarch/qemu-arm-static"
            )),
            "{d:?}"
        );
        // Big-endian arm is no AArch32 EL0 ABI Linux runs.
        let armeb = Craft {
            endian: Endian::Big,
            ..armhf()
        };
        assert!(matches!(
            route_on(&ARM64, armeb).route,
            Route::Wrap {
                arch: Arch::Armeb,
                ..
            }
        ));
    }

    #[test]
    fn on_an_arm64_host_arm64_is_native_and_refusals_name_it() {
        let d = decide(
            "web",
            &Policy::default(),
            &ARM64,
            &resolved("/bin/sh", arm64()),
            &args(&["sh"]),
            never,
        );
        assert_eq!(d.route, Route::Native);
        assert_eq!(
            d.to_string(),
            "container web: /bin/sh: linux/arm64 binary, native"
        );
        let d = decide(
            "web",
            &Policy::default(),
            &ARM64,
            &resolved("/bin/sh", Craft::default()),
            &args(&["sh"]),
            no_qemu,
        );
        assert_eq!(
            d.to_string(),
            "container web: /bin/sh is linux/amd64; no qemu-x86_64-static in /usr/bin, /usr/local/bin; install qemu-user-static"
        );
        // x32 is not the host's machine here, and no qemu runs it.
        let x32 = Craft {
            class: Class::Elf32,
            ..Craft::default()
        };
        let d = decide(
            "web",
            &Policy::default(),
            &ARM64,
            &resolved("/app", x32),
            &args(&["/app"]),
            never,
        );
        assert_eq!(
            d.to_string(),
            "container web: /app: x86-64 32-bit little-endian binaries have no qemu-user target crossarch knows, and this linux/arm64 node cannot run it natively; use a linux/arm64 image"
        );
        let only_amd64 = Policy {
            allowed: Some(vec![Arch::X86_64]),
            ..Policy::default()
        };
        let d = decide(
            "web",
            &only_amd64,
            &ARM64,
            &resolved("/bin/sh", i386()),
            &args(&["sh"]),
            never,
        );
        assert!(
            d.to_string().contains("is linux/386, which the crossarch config of this linux/arm64 node does not allow (allowed: amd64)"),
            "{d}"
        );
    }

    /// The decisions of a shim built for aarch64 as the shim makes them, with the host from
    /// [`Arch::host`]: scripts/test.sh runs this under qemu-aarch64-static and checks that it
    /// ran.
    #[cfg(target_arch = "aarch64")]
    #[test]
    fn aarch64_build_decides_as_an_arm64_host() {
        let arch = Arch::host().expect("a known host");
        assert_eq!(arch, Arch::Aarch64);
        for compat32 in [true, false] {
            let host = Host {
                arch,
                facts: HostFacts { compat32 },
            };
            let amd64 = route_on(&host, Craft::default());
            assert_eq!(
                qemu_of(&amd64).map(|q| q.1),
                Some("/usr/bin/qemu-x86_64-static")
            );
            let i386 = route_on(&host, i386());
            assert_eq!(
                qemu_of(&i386).map(|q| q.1),
                Some("/usr/bin/qemu-i386-static")
            );
            let arm = route_on(&host, armhf());
            if compat32 {
                assert_eq!(arm.route, Route::Native);
            } else {
                assert_eq!(qemu_of(&arm).map(|q| q.1), Some("/usr/bin/qemu-arm-static"));
            }
            assert_eq!(route_on(&host, arm64()).route, Route::Native);
        }
    }

    /// The same for an x86_64 build, the other node kind crossarch ships for.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x86_64_build_decides_as_an_amd64_host() {
        let arch = Arch::host().expect("a known host");
        assert_eq!(arch, Arch::X86_64);
        let host = Host {
            arch,
            facts: HostFacts { compat32: true },
        };
        assert_eq!(route_on(&host, Craft::default()).route, Route::Native);
        assert_eq!(route_on(&host, i386()).route, Route::Native);
        let arm64 = route_on(&host, arm64());
        assert_eq!(
            qemu_of(&arm64).map(|q| q.1),
            Some("/usr/bin/qemu-aarch64-static")
        );
        let arm = route_on(&host, armhf());
        assert_eq!(qemu_of(&arm).map(|q| q.1), Some("/usr/bin/qemu-arm-static"));
    }

    #[test]
    fn policy_reads_from_config_text() {
        let p: Policy =
            serde_json::from_str(r#"{"enabled": true, "allowed": ["arm64", "s390x", "armhf"]}"#)
                .unwrap();
        assert_eq!(p.allowed, Some(vec![Arch::Aarch64, Arch::S390x, Arch::Arm]));
        assert_eq!(p.qemu_dirs, qemu::default_dirs());
        assert!(serde_json::from_str::<Policy>(r#"{"allowed": ["vax"]}"#).is_err());
    }
}
