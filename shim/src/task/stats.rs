//! Task stats in the types containerd's Go shim returns: `io.containerd.cgroups.v1.Metrics` on
//! cgroup v1 (and hybrid hosts, where the controllers are v1) and
//! `io.containerd.cgroups.v2.Metrics` on a unified host.

use std::{collections::HashMap, fs, path::PathBuf};

use containerd_shim::protos::{
    cgroups::metrics as v1,
    cgroups_v2::metrics as v2,
    protobuf::{well_known_types::any::Any, Message, MessageField},
};

use super::cgroup::Cgroups;
use crate::error::{Error, Result};

/// Parses "key value" lines, as in memory.stat and cpu.stat.
pub fn flat_keyed(text: &str) -> HashMap<&str, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k, v.trim().parse().ok()?))
        })
        .collect()
}

/// A single number; "max" (no limit) reads as 0, as the Go shim reports it.
fn single(path: PathBuf) -> u64 {
    fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn read(path: PathBuf) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

const USER_HZ_NS: u64 = 10_000_000;

fn collect_v1(dirs: &HashMap<String, PathBuf>) -> v1::Metrics {
    let mut m = v1::Metrics::new();
    if let Some(d) = dirs.get("pids") {
        m.pids = MessageField::some(v1::PidsStat {
            current: single(d.join("pids.current")),
            limit: single(d.join("pids.max")),
            ..Default::default()
        });
    }
    if let Some(d) = dirs.get("cpuacct") {
        let stat = read(d.join("cpuacct.stat"));
        let stat = flat_keyed(&stat);
        let per_cpu = read(d.join("cpuacct.usage_percpu"))
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        let mut cpu = v1::CPUStat::new();
        cpu.usage = MessageField::some(v1::CPUUsage {
            total: single(d.join("cpuacct.usage")),
            user: stat.get("user").copied().unwrap_or(0) * USER_HZ_NS,
            kernel: stat.get("system").copied().unwrap_or(0) * USER_HZ_NS,
            per_cpu,
            ..Default::default()
        });
        if let Some(c) = dirs.get("cpu") {
            let t = read(c.join("cpu.stat"));
            let t = flat_keyed(&t);
            cpu.throttling = MessageField::some(v1::Throttle {
                periods: t.get("nr_periods").copied().unwrap_or(0),
                throttled_periods: t.get("nr_throttled").copied().unwrap_or(0),
                throttled_time: t.get("throttled_time").copied().unwrap_or(0),
                ..Default::default()
            });
        }
        m.cpu = MessageField::some(cpu);
    }
    if let Some(d) = dirs.get("memory") {
        let text = read(d.join("memory.stat"));
        let s = flat_keyed(&text);
        let g = |k: &str| s.get(k).copied().unwrap_or(0);
        let entry = |prefix: &str| v1::MemoryEntry {
            usage: single(d.join(format!("{prefix}.usage_in_bytes"))),
            max: single(d.join(format!("{prefix}.max_usage_in_bytes"))),
            limit: single(d.join(format!("{prefix}.limit_in_bytes"))),
            failcnt: single(d.join(format!("{prefix}.failcnt"))),
            ..Default::default()
        };
        m.memory = MessageField::some(v1::MemoryStat {
            cache: g("cache"),
            rss: g("rss"),
            rss_huge: g("rss_huge"),
            mapped_file: g("mapped_file"),
            dirty: g("dirty"),
            writeback: g("writeback"),
            pg_pg_in: g("pgpgin"),
            pg_pg_out: g("pgpgout"),
            pg_fault: g("pgfault"),
            pg_maj_fault: g("pgmajfault"),
            inactive_anon: g("inactive_anon"),
            active_anon: g("active_anon"),
            inactive_file: g("inactive_file"),
            active_file: g("active_file"),
            unevictable: g("unevictable"),
            hierarchical_memory_limit: g("hierarchical_memory_limit"),
            hierarchical_swap_limit: g("hierarchical_memsw_limit"),
            total_cache: g("total_cache"),
            total_rss: g("total_rss"),
            total_rss_huge: g("total_rss_huge"),
            total_mapped_file: g("total_mapped_file"),
            total_dirty: g("total_dirty"),
            total_writeback: g("total_writeback"),
            total_pg_pg_in: g("total_pgpgin"),
            total_pg_pg_out: g("total_pgpgout"),
            total_pg_fault: g("total_pgfault"),
            total_pg_maj_fault: g("total_pgmajfault"),
            total_inactive_anon: g("total_inactive_anon"),
            total_active_anon: g("total_active_anon"),
            total_inactive_file: g("total_inactive_file"),
            total_active_file: g("total_active_file"),
            total_unevictable: g("total_unevictable"),
            usage: MessageField::some(entry("memory")),
            swap: MessageField::some(entry("memory.memsw")),
            kernel: MessageField::some(entry("memory.kmem")),
            kernel_tcp: MessageField::some(entry("memory.kmem.tcp")),
            ..Default::default()
        });
        let oom = read(d.join("memory.oom_control"));
        let oom = flat_keyed(&oom);
        m.memory_oom_control = MessageField::some(v1::MemoryOomControl {
            oom_kill_disable: oom.get("oom_kill_disable").copied().unwrap_or(0),
            under_oom: oom.get("under_oom").copied().unwrap_or(0),
            oom_kill: oom.get("oom_kill").copied().unwrap_or(0),
            ..Default::default()
        });
    }
    m
}

fn collect_v2(dir: &std::path::Path) -> v2::Metrics {
    let mut m = v2::Metrics::new();
    m.pids = MessageField::some(v2::PidsStat {
        current: single(dir.join("pids.current")),
        limit: single(dir.join("pids.max")),
        ..Default::default()
    });
    let cpu = read(dir.join("cpu.stat"));
    let c = flat_keyed(&cpu);
    let gc = |k: &str| c.get(k).copied().unwrap_or(0);
    m.cpu = MessageField::some(v2::CPUStat {
        usage_usec: gc("usage_usec"),
        user_usec: gc("user_usec"),
        system_usec: gc("system_usec"),
        nr_periods: gc("nr_periods"),
        nr_throttled: gc("nr_throttled"),
        throttled_usec: gc("throttled_usec"),
        ..Default::default()
    });
    let mem = read(dir.join("memory.stat"));
    let s = flat_keyed(&mem);
    let g = |k: &str| s.get(k).copied().unwrap_or(0);
    m.memory = MessageField::some(v2::MemoryStat {
        anon: g("anon"),
        file: g("file"),
        kernel_stack: g("kernel_stack"),
        slab: g("slab"),
        sock: g("sock"),
        shmem: g("shmem"),
        file_mapped: g("file_mapped"),
        file_dirty: g("file_dirty"),
        file_writeback: g("file_writeback"),
        anon_thp: g("anon_thp"),
        inactive_anon: g("inactive_anon"),
        active_anon: g("active_anon"),
        inactive_file: g("inactive_file"),
        active_file: g("active_file"),
        unevictable: g("unevictable"),
        slab_reclaimable: g("slab_reclaimable"),
        slab_unreclaimable: g("slab_unreclaimable"),
        pgfault: g("pgfault"),
        pgmajfault: g("pgmajfault"),
        usage: single(dir.join("memory.current")),
        usage_limit: single(dir.join("memory.max")),
        max_usage: single(dir.join("memory.peak")),
        swap_usage: single(dir.join("memory.swap.current")),
        swap_limit: single(dir.join("memory.swap.max")),
        ..Default::default()
    });
    let ev = read(dir.join("memory.events"));
    let e = flat_keyed(&ev);
    let ge = |k: &str| e.get(k).copied().unwrap_or(0);
    m.memory_events = MessageField::some(v2::MemoryEvents {
        low: ge("low"),
        high: ge("high"),
        max: ge("max"),
        oom: ge("oom"),
        oom_kill: ge("oom_kill"),
        ..Default::default()
    });
    m
}

/// Reads the metrics of the cgroup that holds `pid`, packed as containerd expects.
pub fn collect(id: &str, pid: i32) -> Result<Any> {
    let cgroups = Cgroups::of(pid).map_err(|e| {
        Error::not_found(format!(
            "container {id}: cannot read the cgroup of pid {pid}"
        ))
        .with_source(e)
        .append("; has it exited?")
    })?;
    let dirs = &cgroups.v1;
    let (type_url, value) = if dirs.contains_key("memory") || dirs.contains_key("cpuacct") {
        (
            "io.containerd.cgroups.v1.Metrics",
            collect_v1(dirs).write_to_bytes(),
        )
    } else {
        let dir = cgroups.unified.as_ref().ok_or_else(|| {
            Error::not_found(format!("container {id}: pid {pid} is in no cgroup"))
        })?;
        (
            "io.containerd.cgroups.v2.Metrics",
            collect_v2(dir).write_to_bytes(),
        )
    };
    let value = value.map_err(|e| {
        Error::internal(format!("container {id}: cannot encode stats")).with_source(e)
    })?;
    Ok(Any {
        type_url: type_url.into(),
        value,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_flat_keyed_files() {
        let m = flat_keyed("cache 4096\nrss 8192\nbroken\nx y\n");
        assert_eq!(m["cache"], 4096);
        assert_eq!(m["rss"], 8192);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn v2_metrics_come_from_the_cgroup_files() {
        let dir = tempfile::tempdir().unwrap();
        let w = |f: &str, s: &str| fs::write(dir.path().join(f), s).unwrap();
        w("pids.current", "3\n");
        w("pids.max", "max\n");
        w("cpu.stat", "usage_usec 100\nuser_usec 60\nsystem_usec 40\n");
        w("memory.current", "1048576\n");
        w("memory.max", "33554432\n");
        w("memory.stat", "anon 4096\nfile 8192\n");
        w("memory.events", "low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n");
        let m = collect_v2(dir.path());
        assert_eq!(m.pids.current, 3);
        assert_eq!(m.pids.limit, 0);
        assert_eq!(m.cpu.usage_usec, 100);
        assert_eq!(m.memory.usage, 1048576);
        assert_eq!(m.memory.usage_limit, 33554432);
        assert_eq!(m.memory.anon, 4096);
        assert_eq!(m.memory_events.oom_kill, 1);
    }
}
