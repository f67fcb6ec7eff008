//! Finds a qemu-user emulator on the host that can run inside any container.
//!
//! It must be statically linked: in the binfmt_misc mode the kernel starts it in the
//! container's mount namespace, and in the fallback it is bind-mounted into the container,
//! where the host's libraries do not exist. [`choose`] decides from what the shim read of
//! each [`candidates`] path, which [`from_prefix`] classifies.

use crate::arch::Arch;
use crate::elf;
use serde::Serialize;
use std::fmt;
use std::path::PathBuf;

/// Where distributions install qemu-user-static.
pub const DEFAULT_DIRS: &[&str] = &["/usr/bin", "/usr/local/bin", "/usr/libexec/qemu-binfmt"];

/// A usable emulator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Qemu {
    /// The architecture it emulates.
    pub arch: Arch,
    /// Its path on the host, as found (not canonicalized).
    pub path: PathBuf,
}

/// What is at a candidate path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inspection {
    Missing,
    NotExecutableFile,
    /// A static ELF for this architecture.
    Static(Result<Arch, elf::Machine>),
    /// A dynamically linked ELF, with its loader if the path was in the first 4 KiB.
    Dynamic {
        loader: Option<String>,
    },
    /// Not an ELF we can read, or unreadable.
    Unusable(String),
}

/// A candidate path and what was found there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub path: PathBuf,
    pub inspection: Inspection,
}

/// No usable emulator. The message says what to install, and why files that exist were
/// rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct NotFound {
    pub arch: Arch,
    pub dirs: Vec<PathBuf>,
    /// Files that exist but cannot be used, with the reason.
    pub rejected: Vec<(PathBuf, String)>,
    /// The distribution's package that provides static qemu-user ([`package_for`]).
    pub package: &'static str,
}

impl fmt::Display for NotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dirs: Vec<String> = self.dirs.iter().map(|d| d.display().to_string()).collect();
        write!(
            f,
            "no qemu-{}-static in {}",
            self.arch.qemu_name(),
            dirs.join(", ")
        )?;
        for (path, why) in &self.rejected {
            write!(f, "; {} {why}", path.display())?;
        }
        write!(f, "; install {}", self.package)
    }
}

/// The package most distributions ship static qemu-user in.
pub const DEFAULT_PACKAGE: &str = "qemu-user-static";

/// The package that provides static qemu-user on the distribution `/etc/os-release`
/// describes (its text). Debian 13 (trixie) builds qemu-user itself statically, with
/// unsuffixed names (`/usr/bin/qemu-aarch64`), and sid has no qemu-user-static; Debian 12 and
/// Ubuntu 24.04 ship `qemu-<arch>-static` in qemu-user-static. Debian derivatives number
/// their releases their own way, so only Debian's own version is read.
pub fn package_for(os_release: &str) -> &'static str {
    let field = |key: &str| {
        os_release.lines().find_map(|l| {
            let v = l.trim().strip_prefix(key)?.strip_prefix('=')?;
            Some(v.trim().trim_matches(|c| c == '"' || c == '\''))
        })
    };
    if field("ID") != Some("debian") {
        return DEFAULT_PACKAGE;
    }
    match field("VERSION_ID") {
        Some(v) => match v.split('.').next().and_then(|m| m.parse::<u32>().ok()) {
            Some(major) if major >= 13 => "qemu-user",
            _ => DEFAULT_PACKAGE,
        },
        // testing and sid carry no VERSION_ID; both are past bookworm.
        None => match field("VERSION_CODENAME") {
            Some("bookworm" | "bullseye" | "buster") => DEFAULT_PACKAGE,
            _ => "qemu-user",
        },
    }
}

/// The file names tried, best first: Debian's `qemu-<name>-static`, then a plain
/// `qemu-<name>` (other distributions and self-built static qemu), then the
/// `<name>-binfmt-P` links Debian keeps in /usr/libexec/qemu-binfmt.
pub fn file_names(arch: Arch) -> [String; 3] {
    let name = arch.qemu_name();
    [
        format!("qemu-{name}-static"),
        format!("qemu-{name}"),
        format!("{name}-binfmt-P"),
    ]
}

/// Every path to inspect, in order of preference: each name in every directory before the
/// next name, so a static build anywhere wins over a plain name that may be dynamic.
pub fn candidates(dirs: &[PathBuf], arch: Arch) -> Vec<PathBuf> {
    file_names(arch)
        .iter()
        .flat_map(|name| dirs.iter().map(move |d| d.join(name)))
        .collect()
}

/// Picks the first candidate that is a static ELF for the host (qemu itself runs natively).
pub fn choose(
    arch: Arch,
    host: Arch,
    dirs: &[PathBuf],
    inspected: &[Candidate],
) -> Result<Qemu, NotFound> {
    let mut rejected = Vec::new();
    for c in inspected {
        let why = match &c.inspection {
            Inspection::Missing => continue,
            Inspection::Static(Ok(a)) if *a == host => {
                return Ok(Qemu {
                    arch,
                    path: c.path.clone(),
                })
            }
            Inspection::Static(Ok(a)) => format!("is built for {a}, not for this {host} host"),
            Inspection::Static(Err(m)) => format!("is built for {m}, not for this {host} host"),
            Inspection::NotExecutableFile => "is not an executable file".to_owned(),
            Inspection::Dynamic { loader } => format!(
                "is dynamically linked{} and cannot run inside a container",
                loader
                    .as_deref()
                    .map(|l| format!(" (needs {l})"))
                    .unwrap_or_default()
            ),
            Inspection::Unusable(why) => why.clone(),
        };
        rejected.push((c.path.clone(), why));
    }
    Err(NotFound {
        arch,
        dirs: dirs.to_vec(),
        rejected,
        package: DEFAULT_PACKAGE,
    })
}

/// The inspection of a file from its first bytes.
pub fn from_prefix(prefix: &[u8]) -> Inspection {
    let elf = match elf::parse(prefix) {
        Ok(elf) => elf,
        Err(e) => return Inspection::Unusable(format!("is not usable: {e}")),
    };
    match elf.interp(prefix) {
        Ok(elf::Interp::None) => {
            Inspection::Static(crate::arch::Arch::from_elf(&elf).map_err(|_| elf.machine))
        }
        Ok(elf::Interp::Path(p)) => Inspection::Dynamic {
            loader: Some(String::from_utf8_lossy(p).into_owned()),
        },
        Ok(elf::Interp::At(_)) => Inspection::Dynamic { loader: None },
        Err(e) => Inspection::Unusable(format!("is not usable: {e}")),
    }
}

/// [`DEFAULT_DIRS`] as paths.
pub fn default_dirs() -> Vec<PathBuf> {
    DEFAULT_DIRS.iter().map(PathBuf::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs() -> Vec<PathBuf> {
        vec!["/usr/bin".into(), "/usr/local/bin".into()]
    }

    fn cand(path: &str, inspection: Inspection) -> Candidate {
        Candidate {
            path: path.into(),
            inspection,
        }
    }

    #[test]
    fn candidate_order_prefers_static_names_everywhere() {
        let c = candidates(&dirs(), Arch::Aarch64);
        assert_eq!(
            c,
            [
                "/usr/bin/qemu-aarch64-static",
                "/usr/local/bin/qemu-aarch64-static",
                "/usr/bin/qemu-aarch64",
                "/usr/local/bin/qemu-aarch64",
                "/usr/bin/aarch64-binfmt-P",
                "/usr/local/bin/aarch64-binfmt-P",
            ]
            .map(PathBuf::from)
        );
    }

    #[test]
    fn first_static_host_binary_wins() {
        let found = choose(
            Arch::Aarch64,
            Arch::X86_64,
            &dirs(),
            &[
                cand("/usr/bin/qemu-aarch64-static", Inspection::Missing),
                cand(
                    "/usr/local/bin/qemu-aarch64-static",
                    Inspection::Static(Ok(Arch::Aarch64)),
                ),
                cand(
                    "/usr/bin/qemu-aarch64",
                    Inspection::Static(Ok(Arch::X86_64)),
                ),
            ],
        )
        .unwrap();
        assert_eq!(found.path, PathBuf::from("/usr/bin/qemu-aarch64"));
    }

    #[test]
    fn on_an_arm64_host_qemu_must_be_built_for_arm64() {
        // qemu-user-static:amd64 copied to an arm64 node, then the arm64 package's binary.
        let inspected = [
            cand(
                "/usr/bin/qemu-x86_64-static",
                Inspection::Static(Ok(Arch::X86_64)),
            ),
            cand(
                "/usr/local/bin/qemu-x86_64-static",
                Inspection::Static(Ok(Arch::Aarch64)),
            ),
        ];
        let found = choose(Arch::X86_64, Arch::Aarch64, &dirs(), &inspected).unwrap();
        assert_eq!(
            found.path,
            PathBuf::from("/usr/local/bin/qemu-x86_64-static")
        );
        assert_eq!(found.arch, Arch::X86_64);
        let err = choose(Arch::X86_64, Arch::Aarch64, &dirs(), &inspected[..1]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no qemu-x86_64-static in /usr/bin, /usr/local/bin; /usr/bin/qemu-x86_64-static is \
             built for linux/amd64, not for this linux/arm64 host; install qemu-user-static"
        );
        assert_eq!(
            candidates(&dirs(), Arch::I386)[0],
            PathBuf::from("/usr/bin/qemu-i386-static")
        );
    }

    #[test]
    fn dynamic_qemu_is_refused_with_a_reason() {
        let err = choose(
            Arch::Aarch64,
            Arch::X86_64,
            &dirs(),
            &[
                cand("/usr/bin/qemu-aarch64-static", Inspection::Missing),
                cand(
                    "/usr/bin/qemu-aarch64",
                    Inspection::Dynamic {
                        loader: Some("/lib64/ld-linux-x86-64.so.2".into()),
                    },
                ),
            ],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "no qemu-aarch64-static in /usr/bin, /usr/local/bin; /usr/bin/qemu-aarch64 is \
             dynamically linked (needs /lib64/ld-linux-x86-64.so.2) and cannot run inside a \
             container; install qemu-user-static"
        );
    }

    #[test]
    fn the_hint_names_the_distribution_s_package() {
        let bookworm = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n";
        let trixie = "ID=debian\nVERSION_ID=\"13\"\nVERSION_CODENAME=trixie\n";
        let sid = "PRETTY_NAME=\"Debian GNU/Linux forky/sid\"\nID=debian\nVERSION_CODENAME=forky\n";
        let noble = "ID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"24.04\"\n";
        let kali = "ID=kali\nID_LIKE=debian\nVERSION_ID=\"2025.1\"\n";
        assert_eq!(package_for(bookworm), "qemu-user-static");
        assert_eq!(package_for(trixie), "qemu-user");
        assert_eq!(package_for(sid), "qemu-user");
        assert_eq!(package_for(noble), "qemu-user-static");
        assert_eq!(package_for(kali), "qemu-user-static");
        assert_eq!(package_for(""), "qemu-user-static");

        let mut err = choose(Arch::S390x, Arch::X86_64, &dirs(), &[]).unwrap_err();
        err.package = package_for(trixie);
        assert!(err.to_string().ends_with("; install qemu-user"), "{err}");
    }

    #[test]
    fn nothing_at_all() {
        let err = choose(Arch::S390x, Arch::X86_64, &dirs(), &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no qemu-s390x-static in /usr/bin, /usr/local/bin; install qemu-user-static"
        );
    }
}
