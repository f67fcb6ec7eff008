//! Where a process's cgroups are, parsed once from `/proc/<pid>/cgroup` for both the stats
//! and the OOM watch.

use std::{collections::HashMap, path::PathBuf};

/// A process's cgroup directories.
#[derive(Debug, Default, PartialEq)]
pub struct Cgroups {
    /// Each v1 controller's directory (a hybrid or v1 host).
    pub v1: HashMap<String, PathBuf>,
    /// Its directory in the unified (v2) hierarchy.
    pub unified: Option<PathBuf>,
}

/// Where a process's memory cgroup lives.
#[derive(Debug, PartialEq)]
pub enum MemoryCgroup {
    V1(PathBuf),
    V2(PathBuf),
}

impl Cgroups {
    /// From the text of `/proc/<pid>/cgroup`, with the unified hierarchy mounted at
    /// `unified_root`.
    pub fn parse(proc_cgroup: &str, unified_root: &str) -> Cgroups {
        let mut cgroups = Cgroups::default();
        for line in proc_cgroup.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let rel = path.trim_start_matches('/');
            if controllers.is_empty() {
                cgroups.unified = Some(PathBuf::from(unified_root).join(rel));
                continue;
            }
            let dir = PathBuf::from("/sys/fs/cgroup").join(controllers).join(rel);
            for c in controllers.split(',') {
                cgroups.v1.insert(c.to_string(), dir.clone());
            }
        }
        cgroups
    }

    /// The cgroups of `pid`.
    pub fn of(pid: i32) -> std::io::Result<Cgroups> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
        Ok(Cgroups::parse(&text, unified_root()))
    }

    /// The memory controller's cgroup: v1's where it is there, else the unified one.
    pub fn memory(&self) -> Option<MemoryCgroup> {
        match self.v1.get("memory") {
            Some(dir) => Some(MemoryCgroup::V1(dir.clone())),
            None => self.unified.clone().map(MemoryCgroup::V2),
        }
    }
}

/// Where the unified hierarchy is: `/sys/fs/cgroup/unified` on a hybrid host.
pub fn unified_root() -> &'static str {
    if std::path::Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists() {
        "/sys/fs/cgroup/unified"
    } else {
        "/sys/fs/cgroup"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_each_v1_controller_to_its_directory() {
        let c = Cgroups::parse(
            "4:cpu,cpuacct:/ns/c\n3:memory:/ns/c\n0::/ns/c\n",
            "/sys/fs/cgroup/unified",
        );
        let d = &c.v1;
        assert_eq!(
            d["cpuacct"],
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/ns/c")
        );
        assert_eq!(d["cpu"], PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/ns/c"));
        assert_eq!(d["memory"], PathBuf::from("/sys/fs/cgroup/memory/ns/c"));
        assert_eq!(d.len(), 3);
        assert_eq!(
            c.unified,
            Some(PathBuf::from("/sys/fs/cgroup/unified/ns/c"))
        );
    }

    #[test]
    fn finds_v1_memory_on_a_hybrid_host() {
        let text = "12:memory:/ns/c1\n11:cpu,cpuacct:/ns/c1\n0::/ns/c1\n";
        assert_eq!(
            Cgroups::parse(text, "/sys/fs/cgroup/unified").memory(),
            Some(MemoryCgroup::V1("/sys/fs/cgroup/memory/ns/c1".into()))
        );
    }

    #[test]
    fn finds_v2_on_a_unified_host() {
        assert_eq!(
            Cgroups::parse("0::/kubepods/pod1/c1\n", "/sys/fs/cgroup").memory(),
            Some(MemoryCgroup::V2("/sys/fs/cgroup/kubepods/pod1/c1".into()))
        );
    }

    #[test]
    fn garbage_is_no_cgroup() {
        assert_eq!(Cgroups::parse("garbage\n1:memory\n", "/u").memory(), None);
    }
}
