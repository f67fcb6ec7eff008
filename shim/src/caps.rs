//! Capability policy: the ceiling the node admin sets, applied to every process.
//!
//! A pod spec, a `ctr --cap-add` or a `--privileged` flag is a request; the `[capabilities]`
//! table of the crossarch config is the node's answer. Every process crossarch starts (the
//! container's init and each Exec) has its five capability sets cut down to the ceiling before
//! runc sees the spec, so no container on the node holds more than the admin allows, emulated
//! or not.
//!
//! Everything here is a pure function of OCI types (or the process JSON) and the policy: the
//! shim does the reading, writing and logging.

use std::fmt;

use caps::Capability as Cap;
use oci_spec::runtime::{Capabilities, Capability as OciCap, LinuxCapabilities, Process, Spec};
use serde::{de, Deserialize, Deserializer};

use crate::error::{Error, Result};

/// The default ceiling: containerd's default capability set minus `CAP_NET_RAW` and `CAP_MKNOD`.
///
/// containerd's (and Docker's) default set is what images are built and tested against, so
/// ordinary workloads (package managers, `chown` in entrypoints, servers that bind port 80 and
/// drop to another user) keep working. Two members are removed:
/// - `CAP_NET_RAW` allows crafting raw packets: ARP and DNS spoofing on the pod network, and it
///   has been the entry point of several kernel CVEs. `ping` in busybox and iputils works
///   without it through ICMP datagram sockets where `net.ipv4.ping_group_range` allows.
///   Kubernetes' restricted Pod Security profile drops it too.
/// - `CAP_MKNOD` creates device nodes. The device cgroup still guards access, but a container
///   that needs a device should be given it explicitly, not make one. In a user namespace,
///   which crossarch uses for foreign containers, the kernel refuses device `mknod` anyway, so
///   keeping it would only make native and foreign containers differ.
///
/// The remaining twelve: `CAP_CHOWN`, `CAP_DAC_OVERRIDE`, `CAP_FSETID`, `CAP_FOWNER`,
/// `CAP_SETGID`, `CAP_SETUID`, `CAP_SETFCAP`, `CAP_SETPCAP`, `CAP_NET_BIND_SERVICE`,
/// `CAP_SYS_CHROOT`, `CAP_KILL`, `CAP_AUDIT_WRITE`. A node that needs more (or less) says so
/// with `capabilities.allowed` in the crossarch config.
pub const DEFAULT_CEILING: &[Cap] = &[
    Cap::CAP_CHOWN,
    Cap::CAP_DAC_OVERRIDE,
    Cap::CAP_FSETID,
    Cap::CAP_FOWNER,
    Cap::CAP_SETGID,
    Cap::CAP_SETUID,
    Cap::CAP_SETFCAP,
    Cap::CAP_SETPCAP,
    Cap::CAP_NET_BIND_SERVICE,
    Cap::CAP_SYS_CHROOT,
    Cap::CAP_KILL,
    Cap::CAP_AUDIT_WRITE,
];

/// The `[capabilities]` table of the crossarch config.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// The most any process may hold, in any of its five sets.
    pub allowed: Ceiling,
    /// Sets `process.noNewPrivileges`, so setuid binaries and file capabilities cannot raise a
    /// process above what it started with.
    pub no_new_privileges: bool,
    pub privileged: PrivilegedMode,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            allowed: Ceiling::default(),
            no_new_privileges: true,
            privileged: PrivilegedMode::default(),
        }
    }
}

/// What to do with a container that asks to be privileged (see [`is_privileged`]).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PrivilegedMode {
    /// Run it, with its capabilities cut to the ceiling like any other container.
    #[default]
    Clip,
    /// Run it with the capabilities it asks for: the node trusts its privileged workloads.
    Allow,
    /// Refuse to create it.
    Deny,
}

impl PrivilegedMode {
    fn name(self) -> &'static str {
        match self {
            PrivilegedMode::Clip => "clip",
            PrivilegedMode::Allow => "allow",
            PrivilegedMode::Deny => "deny",
        }
    }
}

/// A set of capabilities as the kernel's bit mask (bit n is capability number n).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct CapMask(u64);

impl CapMask {
    pub fn from_caps<'a>(caps: impl IntoIterator<Item = &'a Cap>) -> CapMask {
        CapMask(caps.into_iter().fold(0, |m, c| m | c.bitmask()))
    }

    pub fn contains(self, cap: Cap) -> bool {
        self.0 & cap.bitmask() != 0
    }

    fn and(self, other: CapMask) -> CapMask {
        CapMask(self.0 & other.0)
    }

    fn or(self, other: CapMask) -> CapMask {
        CapMask(self.0 | other.0)
    }

    fn minus(self, other: CapMask) -> CapMask {
        CapMask(self.0 & !other.0)
    }

    fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The capabilities in kernel order, so logs and rewritten specs are stable.
    pub fn caps(self) -> Vec<Cap> {
        let mut all: Vec<Cap> = caps::all()
            .into_iter()
            .filter(|c| self.contains(*c))
            .collect();
        all.sort_by_key(|c| c.index());
        all
    }

    /// `CAP_A, CAP_B` (or `none`).
    pub fn names(self) -> String {
        let names: Vec<String> = self.caps().iter().map(Cap::to_string).collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    }
}

impl fmt::Debug for CapMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{}}}", self.names())
    }
}

/// `capabilities.allowed`: names are accepted with or without `CAP_`, in any case; an unknown
/// name makes the whole config invalid, so a typo never silently narrows or widens the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ceiling(pub CapMask);

impl Default for Ceiling {
    fn default() -> Self {
        Ceiling(CapMask::from_caps(DEFAULT_CEILING))
    }
}

impl<'de> Deserialize<'de> for Ceiling {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        let mut caps = Vec::with_capacity(names.len());
        for name in &names {
            let cap = parse_name(name).ok_or_else(|| {
                de::Error::custom(format!(
                    "capabilities.allowed names an unknown capability {name:?}; correct or \
                     remove it (names are those of capabilities(7), e.g. \"CAP_NET_ADMIN\", \
                     with or without the CAP_ prefix, in any case)"
                ))
            })?;
            caps.push(cap);
        }
        Ok(Ceiling(CapMask::from_caps(&caps)))
    }
}

/// `CAP_SYS_ADMIN`, `sys_admin`, `Cap_Sys_Admin` → `CAP_SYS_ADMIN`.
pub fn parse_name(name: &str) -> Option<Cap> {
    caps::to_canonical(name.trim()).parse().ok()
}

/// oci-spec and the caps crate list the same capabilities; a name one of them lacks (a newer
/// kernel's) is treated like any unknown name.
fn from_oci(c: &OciCap) -> Option<Cap> {
    parse_name(&c.to_string())
}

fn to_oci(c: Cap) -> Option<OciCap> {
    c.to_string().trim_start_matches("CAP_").parse().ok()
}

fn mask_of(set: &Capabilities) -> CapMask {
    CapMask::from_caps(&set.iter().filter_map(from_oci).collect::<Vec<_>>())
}

fn set_of(mask: CapMask) -> Capabilities {
    mask.caps().into_iter().filter_map(to_oci).collect()
}

/// What clipping changed, for the log line.
#[derive(Debug, Default)]
pub struct Report {
    pub lines: Vec<String>,
}

/// Capabilities that together only a privileged container holds: `WithPrivileged` grants
/// every capability the caller has, and no workload adds all of these one by one. Each is in
/// the bounding set of root on every node this runs on (a node may lack others, such as
/// CAP_SYS_RESOURCE, which `WithPrivileged` then leaves out too).
const PRIVILEGED_MARKS: &[OciCap] = &[
    OciCap::SysAdmin,
    OciCap::SysModule,
    OciCap::SysRawio,
    OciCap::SysBoot,
    OciCap::SysPtrace,
    OciCap::SysTime,
    OciCap::NetAdmin,
    OciCap::DacReadSearch,
];

/// Whether the container asks to be privileged (`ctr --privileged`, a privileged pod).
///
/// OCI has no "privileged" flag; containerd's `WithPrivileged` (used by `ctr --privileged`,
/// nerdctl and CRI for `securityContext.privileged`) grants every capability the caller has
/// and empties `maskedPaths` and `readonlyPaths`. A spec is privileged when both show: its
/// bounding set holds all of [`PRIVILEGED_MARKS`] (or it names no capabilities at all, which
/// runc reads as keeping all of root's), and /proc is left unmasked. Neither alone is
/// enough: `--cap-add CAP_SYS_ADMIN` adds one capability, and containerd 1.6's CRI leaves
/// `maskedPaths` null for any container whose client sends none, so a plain pod container
/// that adds SYS_ADMIN has SYS_ADMIN and an unmasked /proc, and is not privileged.
pub fn is_privileged(spec: &Spec) -> bool {
    let Some(process) = spec.process() else {
        return false;
    };
    let all_caps = match process.capabilities() {
        None => true,
        Some(c) => c
            .bounding()
            .as_ref()
            .is_some_and(|b| PRIVILEGED_MARKS.iter().all(|m| b.contains(m))),
    };
    let empty = |v: &Option<Vec<String>>| v.as_deref().unwrap_or_default().is_empty();
    let unmasked = match spec.linux() {
        None => true,
        Some(l) => empty(l.masked_paths()) && empty(l.readonly_paths()),
    };
    all_caps && unmasked
}

/// Clips `process` to the policy: every set to the ceiling, ambient to permitted ∩ inheritable,
/// and `noNewPrivileges` when the policy asks for it. `exec_id` is empty for the init process.
pub fn apply_to_process(
    policy: &Policy,
    process: &mut Process,
    privileged: bool,
    container: &str,
    exec_id: &str,
) -> Result<Report> {
    let who = crate::error::subject(container, exec_id);
    let mut report = Report::default();
    if policy.no_new_privileges && process.no_new_privileges() != Some(true) {
        process.set_no_new_privileges(Some(true));
        report.lines.push(format!(
            "{who}: set noNewPrivileges, which its spec leaves off (no_new_privileges = true \
             in the [capabilities] table of the crossarch config)"
        ));
    }
    let ceiling = policy.allowed.0;
    let mut why = "not in the node's capability ceiling".to_string();
    if privileged {
        match policy.privileged {
            PrivilegedMode::Deny => {
                return Err(Error::failed_precondition(format!(
                    "{who}: privileged containers are refused on this node (privileged = \
                     \"deny\" in the [capabilities] table of the crossarch config); run it \
                     without --privileged, or have the node admin set privileged = \"clip\" or \
                     \"allow\" there"
                )))
            }
            PrivilegedMode::Allow => {
                report.lines.push(format!(
                    "{who}: privileged, capabilities left as requested (privileged = \"allow\" \
                     in the crossarch config)"
                ));
                return Ok(report);
            }
            PrivilegedMode::Clip => {
                why = format!(
                    "privileged, clipped to the node's capability ceiling (privileged = \"{}\")",
                    PrivilegedMode::Clip.name()
                );
            }
        }
    }
    let Some(requested) = process.capabilities().clone() else {
        // runc leaves a process that names no capabilities with all of root's.
        let given = Some(set_of(ceiling));
        let mut caps = LinuxCapabilities::default();
        caps.set_bounding(given.clone())
            .set_effective(given.clone())
            .set_permitted(given)
            .set_inheritable(Some(Capabilities::new()))
            .set_ambient(Some(Capabilities::new()));
        process.set_capabilities(Some(caps));
        let privileged = if privileged { ", privileged" } else { "" };
        report.lines.push(format!(
            "{who}: the spec names no capabilities, which runc reads as all of them; gave it \
             the node's capability ceiling instead ({}{privileged})",
            ceiling.names()
        ));
        return Ok(report);
    };

    let mut dropped = CapMask::default();
    let mut clip = |set: &Option<Capabilities>| -> Option<CapMask> {
        let m = mask_of(set.as_ref()?);
        dropped = dropped.or(m.minus(ceiling));
        Some(m.and(ceiling))
    };
    let bounding = clip(requested.bounding());
    let effective = clip(requested.effective());
    let permitted = clip(requested.permitted());
    let inheritable = clip(requested.inheritable());
    let ambient = clip(requested.ambient());
    // The kernel refuses to raise an ambient capability that is not both permitted and
    // inheritable, and runc only warns about it: take those out here, where it is logged.
    let ambient_room = permitted
        .unwrap_or_default()
        .and(inheritable.unwrap_or_default());
    let ambient_dropped = ambient.unwrap_or_default().minus(ambient_room);
    let ambient = ambient.map(|a| a.and(ambient_room));

    let mut out = requested.clone();
    out.set_bounding(bounding.map(set_of))
        .set_effective(effective.map(set_of))
        .set_permitted(permitted.map(set_of))
        .set_inheritable(inheritable.map(set_of))
        .set_ambient(ambient.map(set_of));
    process.set_capabilities(Some(out));

    if !dropped.is_empty() {
        report
            .lines
            .push(format!("{who}: dropped {} ({why})", dropped.names()));
    } else if privileged {
        report.lines.push(format!("{who}: {why}"));
    }
    if !ambient_dropped.is_empty() {
        report.lines.push(format!(
            "{who}: removed {} from the ambient set (ambient capabilities must also be \
             permitted and inheritable)",
            ambient_dropped.names()
        ));
    }
    Ok(report)
}

/// Removes the capability names crossarch does not know from a process given as JSON (the
/// `process` of config.json or an Exec's process spec), one warning line for each set that
/// lost names. It must run before the process is read as [`Process`], whose capability type
/// rejects unknown names outright, so that such a name is dropped instead of failing the
/// container.
pub fn drop_unknown_names(
    process: &mut serde_json::Value,
    container: &str,
    exec_id: &str,
) -> Report {
    let who = crate::error::subject(container, exec_id);
    let mut report = Report::default();
    let Some(sets) = process
        .get_mut("capabilities")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return report;
    };
    for set in [
        "bounding",
        "effective",
        "permitted",
        "inheritable",
        "ambient",
    ] {
        let Some(names) = sets.get_mut(set).and_then(serde_json::Value::as_array_mut) else {
            continue;
        };
        let mut unknown = Vec::new();
        names.retain(|n| {
            let known = n.as_str().is_some_and(|s| {
                parse_name(s).is_some() && serde_json::from_value::<OciCap>(n.clone()).is_ok()
            });
            if !known {
                unknown.push(n.to_string());
            }
            known
        });
        if !unknown.is_empty() {
            report.lines.push(format!(
                "warning: {who}: dropped unknown capability {} from the {set} set (not a \
                 capability this crossarch knows; check the spelling in the pod spec or \
                 --cap-add)",
                unknown.join(", ")
            ));
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{config::Config, error::Kind};
    use serde_json::json;

    /// containerd 1.6's default set, what `ctr run` and CRI give a container.
    const CONTAINERD_DEFAULT: &[&str] = &[
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE",
    ];

    fn process(caps: serde_json::Value) -> Process {
        serde_json::from_value(
            // noNewPrivileges as containerd's default spec sets it.
            json!({"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "capabilities": caps,
                   "noNewPrivileges": true}),
        )
        .unwrap()
    }

    fn containerd_default_process() -> Process {
        process(json!({
            "bounding": CONTAINERD_DEFAULT,
            "effective": CONTAINERD_DEFAULT,
            "permitted": CONTAINERD_DEFAULT,
        }))
    }

    fn names(set: &Option<Capabilities>) -> Option<String> {
        set.as_ref().map(|s| mask_of(s).names())
    }

    /// (bounding, effective, permitted, inheritable, ambient) as name lists.
    fn sets(p: &Process) -> [Option<String>; 5] {
        let c = p.capabilities().as_ref().expect("capabilities");
        [
            names(c.bounding()),
            names(c.effective()),
            names(c.permitted()),
            names(c.inheritable()),
            names(c.ambient()),
        ]
    }

    fn default_ceiling_names() -> String {
        Ceiling::default().0.names()
    }

    fn config(toml: &str) -> crate::error::Result<Config> {
        Config::parse(toml, "/etc/crossarch/config.toml")
    }

    fn spec(v: serde_json::Value) -> Spec {
        serde_json::from_value(v).unwrap()
    }

    const DEFAULT_MASKS: &[&str] = &["/proc/kcore", "/proc/keys", "/sys/firmware"];
    const DEFAULT_RO: &[&str] = &["/proc/sys", "/proc/sysrq-trigger"];

    #[test]
    fn the_default_policy_is_containerds_set_minus_net_raw_and_mknod() {
        let p = Policy::default();
        assert_eq!(
            p.allowed.0.names(),
            "CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID, CAP_KILL, CAP_SETGID, \
             CAP_SETUID, CAP_SETPCAP, CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT, CAP_AUDIT_WRITE, \
             CAP_SETFCAP"
        );
        assert!(p.no_new_privileges);
        assert_eq!(p.privileged, PrivilegedMode::Clip);
        // An absent table and an empty one mean the same.
        assert_eq!(config("").unwrap().capabilities, p);
        assert_eq!(config("[capabilities]\n").unwrap().capabilities, p);
    }

    #[test]
    fn config_names_are_accepted_with_or_without_prefix_in_any_case() {
        let c = config(
            "[capabilities]\nallowed = [\"CAP_CHOWN\", \"net_admin\", \"Cap_Sys_Ptrace\", \
             \" kill \"]\nno_new_privileges = false\nprivileged = \"deny\"\n",
        )
        .unwrap();
        assert_eq!(
            c.capabilities.allowed.0.names(),
            "CAP_CHOWN, CAP_KILL, CAP_NET_ADMIN, CAP_SYS_PTRACE"
        );
        assert!(!c.capabilities.no_new_privileges);
        assert_eq!(c.capabilities.privileged, PrivilegedMode::Deny);
        let empty = config("[capabilities]\nallowed = []\n").unwrap();
        assert!(empty.capabilities.allowed.0.is_empty());
    }

    #[test]
    fn an_unknown_name_in_the_config_is_a_clear_error() {
        let e =
            config("[capabilities]\nallowed = [\"CAP_CHOWN\", \"CAP_SYS_ADMN\"]\n").unwrap_err();
        assert_eq!(e.kind(), Kind::InvalidArgument);
        let msg = e.to_string();
        assert!(
            msg.starts_with("crossarch config /etc/crossarch/config.toml is invalid")
                && msg.contains("\"CAP_SYS_ADMN\"")
                && msg.contains("capabilities.allowed")
                && msg.contains("correct or remove it"),
            "{msg}"
        );
    }

    #[test]
    fn a_bad_privileged_mode_or_field_is_a_clear_error() {
        let msg = config("[capabilities]\nprivileged = \"yes\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("yes") && msg.contains("clip") && msg.contains("deny"),
            "{msg}"
        );
        let msg = config("[capabilities]\nallow = [\"CAP_CHOWN\"]\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("allow") && msg.contains("allowed"), "{msg}");
    }

    #[test]
    fn a_default_container_loses_net_raw_and_mknod() {
        let mut p = containerd_default_process();
        let r = apply_to_process(&Policy::default(), &mut p, false, "web", "").unwrap();
        let ceiling = Some(default_ceiling_names());
        assert_eq!(
            sets(&p),
            [ceiling.clone(), ceiling.clone(), ceiling, None, None]
        );
        assert_eq!(
            r.lines,
            [
                "container web: dropped CAP_NET_RAW, CAP_MKNOD (not in the node's capability \
              ceiling)"
            ]
        );
        assert_eq!(p.no_new_privileges(), Some(true));
    }

    #[test]
    fn a_request_for_sys_admin_is_cut_from_all_five_sets() {
        let want = ["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_NET_RAW"];
        let mut p = process(json!({
            "bounding": want, "effective": want, "permitted": want,
            "inheritable": want, "ambient": want,
        }));
        let r = apply_to_process(&Policy::default(), &mut p, false, "web", "").unwrap();
        let chown = Some("CAP_CHOWN".to_string());
        assert_eq!(
            sets(&p),
            [
                chown.clone(),
                chown.clone(),
                chown.clone(),
                chown.clone(),
                chown
            ]
        );
        assert_eq!(
            r.lines,
            [
                "container web: dropped CAP_NET_RAW, CAP_SYS_ADMIN (not in the node's capability \
              ceiling)"
            ]
        );
    }

    #[test]
    fn ambient_never_exceeds_permitted_and_inheritable() {
        let mut p = process(json!({
            "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_SETUID"],
            "permitted": ["CAP_CHOWN", "CAP_KILL"],
            "inheritable": ["CAP_CHOWN", "CAP_SETUID"],
            "ambient": ["CAP_CHOWN", "CAP_KILL", "CAP_SETUID"],
        }));
        let r = apply_to_process(&Policy::default(), &mut p, false, "c", "e1").unwrap();
        assert_eq!(sets(&p)[4].as_deref(), Some("CAP_CHOWN"));
        assert_eq!(
            r.lines,
            [
                "exec e1 of container c: removed CAP_KILL, CAP_SETUID from the ambient set \
              (ambient capabilities must also be permitted and inheritable)"
            ]
        );
    }

    #[test]
    fn a_process_within_the_ceiling_is_left_alone_and_not_logged() {
        let mut p = process(json!({"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"]}));
        let before = p.capabilities().clone();
        let r = apply_to_process(&Policy::default(), &mut p, false, "c", "").unwrap();
        assert_eq!(p.capabilities(), &before);
        assert!(r.lines.is_empty(), "{:?}", r.lines);
    }

    #[test]
    fn a_process_naming_no_capabilities_gets_the_ceiling_not_everything() {
        let mut p: Process = serde_json::from_value(
            json!({"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "noNewPrivileges": true}),
        )
        .unwrap();
        let r = apply_to_process(&Policy::default(), &mut p, false, "c", "").unwrap();
        let ceiling = Some(default_ceiling_names());
        let none = Some("none".to_string());
        assert_eq!(
            sets(&p),
            [
                ceiling.clone(),
                ceiling.clone(),
                ceiling,
                none.clone(),
                none
            ]
        );
        assert!(
            r.lines[0].contains("names no capabilities"),
            "{:?}",
            r.lines
        );
    }

    #[test]
    fn the_configured_ceiling_is_the_limit() {
        let policy = config("[capabilities]\nallowed = [\"NET_RAW\", \"SYS_ADMIN\"]\n")
            .unwrap()
            .capabilities;
        let mut p = containerd_default_process();
        apply_to_process(&policy, &mut p, false, "c", "").unwrap();
        assert_eq!(sets(&p)[0].as_deref(), Some("CAP_NET_RAW"));
        let mut p = process(json!({"bounding": ["CAP_SYS_ADMIN"]}));
        apply_to_process(&policy, &mut p, false, "c", "").unwrap();
        assert_eq!(sets(&p)[0].as_deref(), Some("CAP_SYS_ADMIN"));
    }

    #[test]
    fn no_new_privileges_is_set_only_when_the_policy_asks() {
        let mut p = containerd_default_process();
        p.set_no_new_privileges(None);
        let off = Policy {
            no_new_privileges: false,
            ..Policy::default()
        };
        let r = apply_to_process(&off, &mut p, false, "c", "").unwrap();
        assert_eq!(p.no_new_privileges(), None);
        assert!(!r.lines.iter().any(|l| l.contains("noNewPrivileges")));
        let r = apply_to_process(&Policy::default(), &mut p, false, "c", "").unwrap();
        assert_eq!(p.no_new_privileges(), Some(true));
        assert!(
            r.lines
                .iter()
                .any(|l| l.starts_with("container c: set noNewPrivileges")),
            "the override is logged like a capability drop: {:?}",
            r.lines
        );
        // Already on: nothing to say.
        let r = apply_to_process(&Policy::default(), &mut p, false, "c", "").unwrap();
        assert!(!r.lines.iter().any(|l| l.contains("noNewPrivileges")));
    }

    fn all_names() -> Vec<String> {
        CapMask::from_caps(&caps::all())
            .caps()
            .iter()
            .map(Cap::to_string)
            .collect()
    }

    /// What containerd 1.6's `WithPrivileged` makes of a spec, as `ctr run --privileged` sends.
    fn privileged_spec() -> Spec {
        let all = all_names();
        spec(json!({
            "ociVersion": "1.0.2",
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "capabilities": {
                "bounding": all, "effective": all, "permitted": all}, "noNewPrivileges": true},
            "linux": {},
        }))
    }

    fn default_spec(caps: &[&str]) -> Spec {
        spec(json!({
            "ociVersion": "1.0.2",
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps}},
            "linux": {"maskedPaths": DEFAULT_MASKS, "readonlyPaths": DEFAULT_RO},
        }))
    }

    #[test]
    fn privileged_is_all_capabilities_with_proc_unmasked() {
        assert!(is_privileged(&privileged_spec()));
        assert!(!is_privileged(&default_spec(CONTAINERD_DEFAULT)));
        // --cap-add CAP_SYS_ADMIN alone keeps /proc masked: not privileged.
        let mut with_admin = CONTAINERD_DEFAULT.to_vec();
        with_admin.push("CAP_SYS_ADMIN");
        assert!(!is_privileged(&default_spec(&with_admin)));
        // containerd 1.6's CRI: a container that adds SYS_ADMIN, its maskedPaths null.
        let s = spec(json!({
            "ociVersion": "1.0.2",
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "capabilities": {
                "bounding": with_admin, "effective": with_admin, "permitted": with_admin}},
            "linux": {},
        }));
        assert!(!is_privileged(&s));
        // Privileged on a node whose root lacks CAP_SYS_RESOURCE.
        let without_resource: Vec<String> = all_names()
            .into_iter()
            .filter(|c| c != "CAP_SYS_RESOURCE")
            .collect();
        let s = spec(json!({
            "ociVersion": "1.0.2",
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "capabilities": {
                "bounding": without_resource}},
            "linux": {},
        }));
        assert!(is_privileged(&s));
        // Unmasked /proc without SYS_ADMIN (procMount: Unmasked) is not privileged either.
        let s = spec(json!({
            "ociVersion": "1.0.2",
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "capabilities": {
                "bounding": CONTAINERD_DEFAULT}},
            "linux": {"maskedPaths": [], "readonlyPaths": []},
        }));
        assert!(!is_privileged(&s));
        // A hand-written spec with no capabilities and no masks keeps everything under runc.
        let s = spec(
            json!({"ociVersion": "1.0.2", "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}}}),
        );
        assert!(is_privileged(&s));
    }

    #[test]
    fn privileged_clip_gives_the_ceiling_not_all_capabilities() {
        let spec = privileged_spec();
        let mut p = spec.process().clone().unwrap();
        let r = apply_to_process(&Policy::default(), &mut p, true, "admin", "").unwrap();
        let ceiling = Some(default_ceiling_names());
        assert_eq!(
            sets(&p),
            [ceiling.clone(), ceiling.clone(), ceiling, None, None]
        );
        assert_eq!(r.lines.len(), 1, "{:?}", r.lines);
        assert!(
            r.lines[0].starts_with("container admin: dropped CAP_DAC_READ_SEARCH, ")
                && r.lines[0].contains("CAP_SYS_ADMIN")
                && r.lines[0].ends_with(
                    "(privileged, clipped to the node's capability ceiling \
                     (privileged = \"clip\"))"
                ),
            "{}",
            r.lines[0]
        );
    }

    #[test]
    fn privileged_allow_leaves_capabilities_alone() {
        let policy = Policy {
            privileged: PrivilegedMode::Allow,
            ..Policy::default()
        };
        let mut p = privileged_spec().process().clone().unwrap();
        let before = p.capabilities().clone();
        let r = apply_to_process(&policy, &mut p, true, "admin", "").unwrap();
        assert_eq!(p.capabilities(), &before);
        assert_eq!(p.no_new_privileges(), Some(true));
        assert_eq!(
            r.lines,
            [
                "container admin: privileged, capabilities left as requested (privileged = \
              \"allow\" in the crossarch config)"
            ]
        );
        // "allow" is about privileged containers only: others are still clipped.
        let mut p = containerd_default_process();
        apply_to_process(&policy, &mut p, false, "web", "").unwrap();
        assert_eq!(sets(&p)[0], Some(default_ceiling_names()));
    }

    #[test]
    fn privileged_deny_fails_naming_the_container_and_the_fix() {
        let policy = Policy {
            privileged: PrivilegedMode::Deny,
            ..Policy::default()
        };
        let mut p = privileged_spec().process().clone().unwrap();
        let e = apply_to_process(&policy, &mut p, true, "admin", "").unwrap_err();
        assert_eq!(e.kind(), Kind::FailedPrecondition);
        let msg = e.to_string();
        assert!(
            msg.starts_with("container admin: privileged containers are refused")
                && msg.contains("privileged = \"clip\" or \"allow\"")
                && msg.contains("crossarch config"),
            "{msg}"
        );
        // An unprivileged container is not affected by "deny".
        let mut p = containerd_default_process();
        apply_to_process(&policy, &mut p, false, "web", "").unwrap();
    }

    #[test]
    fn unknown_names_in_a_spec_are_dropped_with_a_warning() {
        let mut v = json!({
            "args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "noNewPrivileges": true,
            "capabilities": {
                "bounding": ["CAP_CHOWN", "CAP_FROB", "sys_admin"],
                "effective": ["CAP_CHOWN", 7],
                "permitted": ["CAP_CHOWN"],
            },
        });
        let r = drop_unknown_names(&mut v, "web", "e2");
        assert_eq!(
            v["capabilities"]["bounding"],
            json!(["CAP_CHOWN", "sys_admin"])
        );
        assert_eq!(v["capabilities"]["effective"], json!(["CAP_CHOWN"]));
        assert_eq!(
            r.lines,
            [
                "warning: exec e2 of container web: dropped unknown capability \"CAP_FROB\" \
                 from the bounding set (not a capability this crossarch knows; check the \
                 spelling in the pod spec or --cap-add)",
                "warning: exec e2 of container web: dropped unknown capability 7 from the \
                 effective set (not a capability this crossarch knows; check the spelling in \
                 the pod spec or --cap-add)",
            ]
        );
        // What is left now reads as a Process, and clips like any other.
        let mut p: Process = serde_json::from_value(v).unwrap();
        let r = apply_to_process(&Policy::default(), &mut p, false, "web", "e2").unwrap();
        assert_eq!(sets(&p)[0].as_deref(), Some("CAP_CHOWN"));
        assert_eq!(
            r.lines,
            [
                "exec e2 of container web: dropped CAP_SYS_ADMIN (not in the node's capability \
              ceiling)"
            ]
        );
        // No capabilities at all: nothing to do.
        let mut v = json!({"args": ["sh"]});
        assert!(drop_unknown_names(&mut v, "web", "").lines.is_empty());
    }

    #[test]
    fn oci_and_caps_crate_agree_on_every_capability() {
        for cap in caps::all() {
            let oci = to_oci(cap).unwrap_or_else(|| panic!("oci-spec lacks {cap}"));
            assert_eq!(from_oci(&oci), Some(cap));
        }
    }
}
