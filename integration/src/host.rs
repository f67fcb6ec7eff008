//! What the host shows about containers: cgroups, processes, mounts.

use std::fs;
use std::path::{Path, PathBuf};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// True on a pure cgroup v2 host (the unified hierarchy mounted at /sys/fs/cgroup).
pub fn cgroup_v2_only() -> bool {
    Path::new(CGROUP_ROOT).join("cgroup.controllers").exists()
}

/// Every cgroup directory a cgroups path (like `/<ns>/<id>`) maps to on this host:
/// one per v1 hierarchy plus the v2 one, or the single v2 one.
pub fn cgroup_dirs(cgroups_path: &str) -> Vec<PathBuf> {
    let rel = cgroups_path.trim_start_matches('/');
    if cgroup_v2_only() {
        return vec![Path::new(CGROUP_ROOT).join(rel)];
    }
    let Ok(entries) = fs::read_dir(CGROUP_ROOT) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.path().join(rel))
        .collect()
}

/// The memory limit the kernel enforces for a cgroups path, as the host reads it.
pub fn memory_limit(cgroups_path: &str) -> Option<u64> {
    let rel = cgroups_path.trim_start_matches('/');
    let file = if cgroup_v2_only() {
        Path::new(CGROUP_ROOT).join(rel).join("memory.max")
    } else {
        Path::new(CGROUP_ROOT)
            .join("memory")
            .join(rel)
            .join("memory.limit_in_bytes")
    };
    fs::read_to_string(file).ok()?.trim().parse().ok()
}

/// Removes a cgroup directory tree (innermost first). Cgroup directories are removed with
/// rmdir alone; their control files go with them.
pub fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.filter_map(Result::ok) {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

/// The argv of a live process, empty for a zombie or a process that is gone.
pub fn cmdline(pid: u32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Pids of live processes whose argv satisfies `pred`.
pub fn find_processes(pred: impl Fn(&[String]) -> bool) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            let argv = cmdline(pid);
            !argv.is_empty() && pred(&argv)
        })
        .collect()
}

/// True while the process exists and is not a zombie.
pub fn process_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may hold spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Mount points of this mount namespace at or below `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount_path)
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape_mount_path(s: &str) -> PathBuf {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let oct: String = chars.by_ref().take(3).collect();
            if let Ok(v) = u8::from_str_radix(&oct, 8) {
                out.push(v as char);
                continue;
            }
            out.push(c);
            out.push_str(&oct);
        } else {
            out.push(c);
        }
    }
    PathBuf::from(out)
}

/// Detaches a mount; leftovers of a failed test must not pin the temp dir.
pub fn unmount(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return;
    };
    // SAFETY: c is a valid NUL-terminated path for the duration of the call.
    unsafe {
        libc::umount2(c.as_ptr(), libc::MNT_DETACH);
    }
}

/// Sends a signal to one process by pid.
pub fn signal(pid: u32, sig: i32) -> bool {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid as libc::pid_t, sig) == 0 }
}

/// What a process (a shim, in the leak and concurrency tests) holds, from /proc.
#[derive(Debug, Clone)]
pub struct Usage {
    pub fds: usize,
    pub pipes: usize,
    pub threads: usize,
    pub rss_kb: u64,
    /// Thread names (`comm`) and how many threads have each.
    pub names: std::collections::BTreeMap<String, usize>,
    /// Where each fd points (`readlink /proc/<pid>/fd/N`).
    pub links: Vec<String>,
}

impl Usage {
    pub fn of(pid: u32) -> Usage {
        let links: Vec<String> = fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/fd (is the shim alive?): {e}"))
            .filter_map(Result::ok)
            .filter_map(|e| fs::read_link(e.path()).ok())
            .map(|l| l.display().to_string())
            .collect();
        let mut names = std::collections::BTreeMap::new();
        let mut threads = 0;
        for t in fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/task: {e}"))
            .filter_map(Result::ok)
        {
            threads += 1;
            let comm = fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            *names.entry(comm.trim().to_string()).or_insert(0) += 1;
        }
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rss_kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        Usage {
            fds: links.len(),
            pipes: links.iter().filter(|l| l.starts_with("pipe:")).count(),
            threads,
            rss_kb,
            names,
            links,
        }
    }

    pub fn show(&self) -> String {
        format!(
            "{} fds ({} pipes), {} threads, RSS {} kB",
            self.fds, self.pipes, self.threads, self.rss_kb
        )
    }

    /// fds and threads at most `tolerance` above `base`'s.
    pub fn within(&self, base: &Usage, tolerance: usize) -> bool {
        self.fds <= base.fds + tolerance && self.threads <= base.threads + tolerance
    }

    /// Waits until `pid` is back [`Usage::within`] `tolerance` of `base`, at most `settle`,
    /// and returns its last figures.
    pub fn settled(pid: u32, base: &Usage, tolerance: usize, settle: std::time::Duration) -> Usage {
        let deadline = std::time::Instant::now() + settle;
        loop {
            let now = Usage::of(pid);
            if now.within(base, tolerance) || std::time::Instant::now() > deadline {
                return now;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
}

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} fds, {} threads", self.fds, self.threads)
    }
}
