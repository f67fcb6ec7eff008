//! Many clients at once: containers started ten at a time, execs racing into one container,
//! the members of one pod group created and deleted concurrently in their shim, and a group
//! whose next member is being created while its last other member is deleted (and two
//! Creates of one id sent to a shim at once). Every exit must be reported exactly once, with
//! its own status, through `ctr` and through the `/tasks/exit` events; nothing may be left
//! behind.
//!
//! Every `ctr` call is bounded (the harness's deadlines), so a hang fails the test naming the
//! call. Each test prints its figures (counts, wall time per phase, the shim's fds and
//! threads); none is a timing assertion. The tests of this file run one at a time: each
//! already loads the machine with ten clients.
//!
//! Under io.containerd.runc.v2 (`CROSSARCH_TEST_RUNTIME`), the reference, the same tests run
//! with native containers only; under crossarch some containers are arm64.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use crossarch_integration::crossarch::{image_run_args, import_busybox, ARM64, CROSSARCH};
use crossarch_integration::host::Usage;
use crossarch_integration::{
    containerd, host, host_arch, wait_until, Containerd, Events, OutputExt,
};

const LONG: Duration = Duration::from_secs(60);

/// How many clients work at once.
const CLIENTS: usize = 10;

/// How far above the warm-up figures the shim's fds and threads may end (a blocking-pool
/// thread that has not idled out yet, a log fd), as in leaks.rs.
const TOLERANCE: usize = 3;

/// How long the shim may take to settle: idle blocking-pool threads leave after 10 s.
const SETTLE: Duration = Duration::from_secs(20);

const GROUP: &str = "io.containerd.runc.v2.group";

/// The tests of this file take turns.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

/// The exit code of process `i`: distinct for every i < 256 (37 is prime to 256), spread
/// over the whole range, never 0.
fn code(i: usize) -> u64 {
    ((i * 37 + 1) % 256) as u64
}

/// Runs `job(0..n)` on [`CLIENTS`] threads and returns the results in index order. A panic
/// in a job (a failed assertion, a `ctr` over its deadline) fails the test once every thread
/// has finished.
fn in_parallel<T: Send>(n: usize, job: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let done = Mutex::new(Vec::with_capacity(n));
    thread::scope(|s| {
        for _ in 0..CLIENTS.min(n) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= n {
                    return;
                }
                let r = job(i);
                done.lock().unwrap().push((i, r));
            });
        }
    });
    let mut done = done.into_inner().unwrap();
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// Times `f` and prints how long the phase took.
fn phase<T>(label: &str, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let r = f();
    println!("  {label}: {:.2}s", started.elapsed().as_secs_f64());
    r
}

/// The `/tasks/exit` events seen so far that `select` picks, by the id they name (the
/// container's for an init, the exec id for an exec), with every status reported for it.
fn exits(ev: &Events, select: impl Fn(&str, &str) -> bool) -> BTreeMap<String, Vec<u64>> {
    let mut by_id: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for e in ev.list().iter().filter(|e| e.topic == "/tasks/exit") {
        if select(e.field("container_id"), e.field("id")) {
            by_id
                .entry(e.field("id").to_string())
                .or_default()
                .push(e.number("exit_status"));
        }
    }
    by_id
}

/// Waits (bounded) until every id of `expected` has an exit event that `select` picks.
fn wait_exits(
    ev: &Events,
    expected: &BTreeMap<String, u64>,
    select: impl Fn(&str, &str) -> bool,
) -> BTreeMap<String, Vec<u64>> {
    let deadline = Instant::now() + LONG;
    loop {
        let seen = exits(ev, &select);
        if expected.keys().all(|id| seen.contains_key(id)) {
            return seen;
        }
        if Instant::now() > deadline {
            let missing: Vec<&String> = expected
                .keys()
                .filter(|id| !seen.contains_key(*id))
                .collect();
            panic!(
                "no /tasks/exit within {LONG:?} for {} of {}: {missing:?}",
                missing.len(),
                expected.len()
            );
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Asserts that the events report exactly one exit per expected id, with its status, and no
/// exit of an id nobody started.
fn assert_one_exit_each(seen: &BTreeMap<String, Vec<u64>>, expected: &BTreeMap<String, u64>) {
    let mut wrong = Vec::new();
    for (id, want) in expected {
        match seen.get(id).map(Vec::as_slice) {
            Some([got]) if got == want => {}
            Some(got) => wrong.push(format!("{id}: want one exit {want}, events say {got:?}")),
            None => wrong.push(format!("{id}: no exit event")),
        }
    }
    for (id, got) in seen {
        if !expected.contains_key(id) {
            wrong.push(format!(
                "{id}: exit events {got:?} for a process never started"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} exits misreported:\n{}",
        wrong.len(),
        expected.len(),
        wrong.join("\n")
    );
}

/// The exit code `ctr task delete` reports for a stopped task (`... exit code N` on stderr,
/// nothing for 0), or the failure.
fn delete_task(cd: &Containerd, id: &str) -> u64 {
    let out = cd.ctr(&["task", "delete", id]);
    assert!(out.status.success(), "ctr task delete {id}: {}", out.show());
    let err = out.stderr_text();
    match err.split("exit code ").nth(1) {
        Some(rest) => rest
            .trim()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("ctr task delete {id}: unreadable: {}", out.show())),
        None => 0,
    }
}

/// Deletes the stopped task and the container `id`, checks the exit code `ctr` reports, and
/// that the container left nothing behind.
fn delete_checked(cd: &Containerd, id: &str, want: u64) {
    let cgroup = cd.cgroups_path(id);
    let bundle = cd.bundle(id);
    let got = delete_task(cd, id);
    assert_eq!(got, want, "ctr task delete {id} reports its exit code");
    cd.ctr(&["container", "delete", id]).ok();
    cd.assert_nothing_left(id, &bundle, &cgroup);
}

const STARTED: usize = 50;

/// 50 containers started ten at a time, each of whose init exits at once with a code of its
/// own. Even ones run on a plain rootfs; odd ones from an image, arm64 under crossarch (when
/// its fixture and qemu are here), the host's under another runtime. Every exit code comes
/// back through `ctr task delete` and through exactly one `/tasks/exit` event.
#[test]
fn fifty_containers_started_ten_at_a_time_report_every_exit_once() {
    let _turn = one_at_a_time();
    let cd = containerd!();
    let foreign = cd.runtime() == CROSSARCH && ARM64.available();
    let (image, platform) = if foreign {
        (import_busybox(&cd, &ARM64), ARM64.platform.to_string())
    } else {
        (cd.import_image(), format!("linux/{}", host_arch()))
    };
    let ids: Vec<String> = (0..STARTED).map(|i| format!("c{i:02}")).collect();
    let expected: BTreeMap<String, u64> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), code(i)))
        .collect();
    let ev = cd.events();
    println!(
        "{STARTED} containers, {CLIENTS} clients, {} ({} from the image {image} for {platform}):",
        cd.runtime(),
        STARTED / 2
    );
    let total = Instant::now();

    phase("ctr run -d of all", || {
        in_parallel(STARTED, |i| {
            let exit = format!("exit {}", code(i));
            let argv = ["sh", "-c", exit.as_str()];
            let args = if i % 2 == 0 {
                cd.run_args(&ids[i], &["-d"], &argv)
            } else {
                image_run_args(&cd, &image, &platform, &ids[i], &["-d"], &argv)
            };
            let out = cd.ctr(&args.iter().map(String::as_str).collect::<Vec<_>>());
            assert!(
                out.status.success(),
                "ctr run -d {}: {}",
                ids[i],
                out.show()
            );
        })
    });
    let seen = phase("until every /tasks/exit arrived", || {
        wait_exits(&ev, &expected, |container, id| container == id)
    });
    phase("ctr task delete + container delete of all", || {
        in_parallel(STARTED, |i| delete_checked(&cd, &ids[i], code(i)))
    });
    phase("until every shim exited", || {
        wait_until("every shim to exit", LONG, || cd.shim_pids().is_empty())
    });
    // Anything late (a duplicate) has had the whole delete phase to arrive.
    let late = exits(&ev, |container, id| container == id);
    let deletes = ev
        .list()
        .iter()
        .filter(|e| e.topic == "/tasks/delete")
        .count();
    println!(
        "  events: {} exits at first count, {} exits and {deletes} deletes in the end; total {:.2}s",
        seen.values().map(Vec::len).sum::<usize>(),
        late.values().map(Vec::len).sum::<usize>(),
        total.elapsed().as_secs_f64()
    );
    assert_one_exit_each(&late, &expected);
    assert_eq!(deletes, STARTED, "one /tasks/delete per container");
}

const EXECS: usize = 100;

/// 100 execs into one container, ten at a time, each exiting with a code of its own: `ctr`
/// gets each code, the events report exactly one exit per exec id, and the shim is back to
/// the fds it had after a warm-up at the same concurrency, and to its threads (crossarch; the
/// reference's are printed).
#[test]
fn a_hundred_concurrent_execs_report_every_exit_once_and_leave_nothing() {
    let _turn = one_at_a_time();
    let cd = containerd!();
    cd.run_detached("c", &[], &["sleep", "100000"]);
    let pid = cd.shim_pid("c").expect("a shim serves c");
    let exec = |exec_id: &str, code: u64| {
        let exit = format!("exit {code}");
        let out = cd.ctr(&["task", "exec", "--exec-id", exec_id, "c", "sh", "-c", &exit]);
        assert_eq!(
            out.code() as u64,
            code,
            "ctr task exec --exec-id {exec_id}: {}",
            out.show()
        );
    };
    println!(
        "{EXECS} execs into one container, {CLIENTS} clients, {}:",
        cd.runtime()
    );
    let start = Usage::of(pid);
    // Warm up at the same concurrency: the shim's thread pools reach the size this load
    // gives them (Go's threads never leave; tokio's idle out).
    phase("warm-up: 2 x 10 concurrent execs", || {
        in_parallel(2 * CLIENTS, |i| exec(&format!("w{i}"), 0))
    });
    let warm = Usage::of(pid);
    let ev = cd.events();
    let ids: Vec<String> = (0..EXECS).map(|i| format!("e{i}")).collect();
    let expected: BTreeMap<String, u64> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), code(i)))
        .collect();
    let busy = Mutex::new(warm.clone());
    phase(&format!("{EXECS} execs"), || {
        in_parallel(EXECS, |i| {
            exec(&ids[i], code(i));
            let now = Usage::of(pid);
            let mut peak = busy.lock().unwrap();
            peak.fds = peak.fds.max(now.fds);
            peak.threads = peak.threads.max(now.threads);
        })
    });
    phase("until every /tasks/exit arrived", || {
        wait_exits(&ev, &expected, |container, id| {
            container == "c" && id != "c"
        })
    });
    let after = phase("until the shim settled", || {
        Usage::settled(pid, &warm, TOLERANCE, SETTLE)
    });
    let seen = exits(&ev, |container, id| container == "c" && id != "c");
    println!(
        "  shim: {start} at start, {warm} after warm-up, peak {} during, {after} after\n  \
         events: {} exec exits for {} exec ids",
        busy.lock().unwrap(),
        seen.values().map(Vec::len).sum::<usize>(),
        seen.len()
    );
    assert_one_exit_each(&seen, &expected);
    assert!(
        after.fds <= warm.fds + TOLERANCE,
        "the shim kept fds of {EXECS} finished execs (more than +{TOLERANCE}): {warm} after \
         the warm-up, {after} after"
    );
    // Go's runtime never ends an OS thread it made for a blocking call: the reference's
    // count keeps its high-water mark, which concurrency moves. crossarch's idle out.
    if cd.runtime() == CROSSARCH {
        assert!(
            after.threads <= warm.threads + TOLERANCE,
            "the shim kept threads of {EXECS} finished execs (more than +{TOLERANCE}): {warm} \
             after the warm-up, {after} after"
        );
    } else if after.threads > warm.threads + TOLERANCE {
        println!(
            "  NOT ASSERTED for {}: threads {} after the warm-up, {} after (Go keeps its threads)",
            cd.runtime(),
            warm.threads,
            after.threads
        );
    }
    // It still serves its container.
    let out = cd.ctr(&["task", "exec", "--exec-id", "last", "c", "echo", "ok"]);
    out.ok();
    assert_eq!(out.stdout_text(), "ok\n");
    cd.ctr(&["task", "kill", "-s", "SIGKILL", "c"]).ok();
    ev.wait_topic("/tasks/exit", "c", LONG);
    delete_checked(&cd, "c", 137);
}

const MEMBERS: usize = 20;

/// The file member `id` writes into the shared rootfs once its trap is set.
fn ready_file(cd: &Containerd, id: &str) -> PathBuf {
    cd.rootfs().join("tmp").join(format!("ready-{id}"))
}

/// 20 members of one pod group, beside the pod's long-lived first container, created and
/// deleted concurrently in their one shim: ten created, then ten more created while the first
/// ten are stopped and deleted, then those stopped and deleted. Each exits on SIGTERM with a
/// code of its own. The shim serves every member, outlives each delete while a member is
/// left, and exits after the last; no member leaves anything behind.
#[test]
fn a_pod_groups_members_are_created_and_deleted_concurrently_in_one_shim() {
    let _turn = one_at_a_time();
    let cd = containerd!();
    let group = format!("{GROUP}=conc-pod");
    let opts = ["-d", "--annotation", group.as_str()];
    cd.run_detached("pod", &opts[1..], &["sleep", "100000"]);
    let shim = cd.shim_pid("pod").expect("a shim serves the pod");
    let address = fs::read_to_string(cd.bundle("pod").join("address")).unwrap();
    let ids: Vec<String> = (0..MEMBERS).map(|i| format!("m{i:02}")).collect();
    let expected: BTreeMap<String, u64> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), code(i)))
        .collect();
    let ev = cd.events();
    let before = Usage::of(shim);

    let create = |i: usize| {
        let id = &ids[i];
        let script = format!(
            "trap 'exit {}' TERM; touch /tmp/ready-{id}; sleep 100000 & wait",
            code(i)
        );
        let args = cd.run_args(id, &opts, &["sh", "-c", &script]);
        let out = cd.ctr(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(out.status.success(), "ctr run -d {id}: {}", out.show());
        let ready = ready_file(&cd, id);
        wait_until(&format!("{id} to set its trap"), LONG, || ready.exists());
        let joined = fs::read_to_string(cd.bundle(id).join("address")).unwrap();
        assert_eq!(joined, address, "{id} is served by the pod's shim");
    };
    let stop_and_delete = |i: usize| {
        let id = &ids[i];
        cd.ctr(&["task", "kill", "-s", "SIGTERM", id]).ok();
        let deadline = Instant::now() + LONG;
        while !exits(&ev, |container, e| container == id && e == id).contains_key(id) {
            assert!(
                Instant::now() < deadline,
                "no /tasks/exit for {id} within {LONG:?}"
            );
            thread::sleep(Duration::from_millis(100));
        }
        delete_checked(&cd, id, code(i));
        assert!(
            host::process_alive(shim),
            "the pod's shim exited after {id}'s delete, with the pod still there"
        );
    };
    let half = MEMBERS / 2;
    println!(
        "{MEMBERS} members of one pod group, {CLIENTS} clients, {}:",
        cd.runtime()
    );
    phase(&format!("create {half}"), || in_parallel(half, create));
    let busy = Usage::of(shim);
    phase(
        &format!("create {half} more while deleting the first {half}"),
        || {
            in_parallel(2 * half, |j| {
                if j % 2 == 0 {
                    create(half + j / 2)
                } else {
                    stop_and_delete(j / 2)
                }
            })
        },
    );
    assert_eq!(cd.shim_pids(), vec![shim], "one shim serves the whole pod");
    phase(&format!("delete the last {half}"), || {
        in_parallel(half, |i| stop_and_delete(half + i))
    });
    let after = Usage::settled(shim, &before, TOLERANCE, SETTLE);
    let seen = exits(&ev, |container, id| container == id && container != "pod");
    println!(
        "  shim {shim}: {before} with the pod alone, {busy} with {half} members, {after} after \
         the last member\n  events: {} member exits for {} members",
        seen.values().map(Vec::len).sum::<usize>(),
        seen.len()
    );
    assert_one_exit_each(&seen, &expected);

    // The shim still serves the pod, and exits once it is gone.
    let out = cd.ctr(&["task", "exec", "--exec-id", "still", "pod", "echo", "ok"]);
    out.ok();
    assert_eq!(out.stdout_text(), "ok\n");
    assert!(host::process_alive(shim), "the pod's shim is alive");
    cd.ctr(&["task", "kill", "-s", "SIGKILL", "pod"]).ok();
    ev.wait_topic("/tasks/exit", "pod", LONG);
    delete_checked(&cd, "pod", 137);
    phase("until the shim exited", || {
        wait_until(
            "the pod's shim to exit after the last container",
            LONG,
            || !host::process_alive(shim),
        )
    });
    assert!(
        cd.shim_pids().is_empty(),
        "no shim left: {:?}",
        cd.shim_pids()
    );
}

const HANDOVERS: usize = 15;

/// A pod group handed from member to member: a new member's Create is under way in the
/// group's shim (runc is creating it) when the delete of the group's only other member
/// arrives. That delete's Shutdown must not end the shim under the Create: the new member
/// starts, in a live shim. Under crossarch the new members are arm64 (when the fixture and
/// qemu are here), whose Create takes longer.
#[test]
fn a_member_created_while_the_last_other_member_is_deleted_keeps_the_shim() {
    let _turn = one_at_a_time();
    let cd = containerd!();
    let foreign = cd.runtime() == CROSSARCH && ARM64.available();
    let image = foreign.then(|| import_busybox(&cd, &ARM64));
    let group = format!("{GROUP}=handover");
    let opts = ["-d", "--annotation", group.as_str()];
    let run = |id: &str| {
        let argv = ["sleep", "100000"];
        let args = match &image {
            Some(image) => image_run_args(&cd, image, ARM64.platform, id, &opts, &argv),
            None => cd.run_args(id, &opts, &argv),
        };
        cd.ctr(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let runc_state = |id: &str| {
        std::path::Path::new(crossarch_integration::RUNC_ROOT)
            .join(cd.namespace())
            .join(id)
    };
    println!(
        "{HANDOVERS} handovers in one pod group, {} ({}):",
        cd.runtime(),
        if foreign {
            "arm64 members"
        } else {
            "native members"
        }
    );
    run("h00").ok();
    cd.wait_status("h00", "RUNNING", LONG);
    let mut shims = std::collections::BTreeSet::new();
    let mut overlapped = 0;
    let started = Instant::now();
    for n in 1..=HANDOVERS {
        let (prev, id) = (format!("h{:02}", n - 1), format!("h{n:02}"));
        cd.ctr(&["task", "kill", "-s", "SIGKILL", &prev]).ok();
        cd.wait_status(&prev, "STOPPED", LONG);
        let cgroup = cd.cgroups_path(&prev);
        let (out, deleted_first) = thread::scope(|s| {
            let creating = s.spawn(|| run(&id));
            // runc is creating the new member: its Create is in the shim.
            let deadline = Instant::now() + LONG;
            while !runc_state(&id).exists() && !creating.is_finished() {
                assert!(Instant::now() < deadline, "{id}: runc never created it");
                thread::sleep(Duration::from_millis(1));
            }
            let got = delete_task(&cd, &prev);
            assert_eq!(got, 137, "ctr task delete {prev} reports SIGKILL");
            let deleted_first = !creating.is_finished();
            (creating.join().unwrap(), deleted_first)
        });
        overlapped += usize::from(deleted_first);
        assert!(
            out.status.success(),
            "handover {n}: {id} was being created when {prev}, the group's last other member, \
             was deleted: {}",
            out.show()
        );
        cd.ctr(&["container", "delete", &prev]).ok();
        cd.assert_nothing_left(&prev, &cd.bundle(&prev), &cgroup);
        cd.wait_status(&id, "RUNNING", LONG);
        let pids = cd.shim_pids();
        assert_eq!(
            pids.len(),
            1,
            "handover {n}: one shim serves {id}: {pids:?}"
        );
        shims.insert(pids[0]);
    }
    let last = format!("h{HANDOVERS:02}");
    let out = cd.ctr(&["task", "exec", "--exec-id", "still", &last, "true"]);
    assert!(out.status.success(), "exec into {last}: {}", out.show());
    println!(
        "  {HANDOVERS} handovers in {:.2}s; the delete ended first (while the Create ran) in \
         {overlapped}; shims seen: {}",
        started.elapsed().as_secs_f64(),
        shims.len()
    );
    cd.ctr(&["task", "kill", "-s", "SIGKILL", &last]).ok();
    cd.wait_status(&last, "STOPPED", LONG);
    delete_checked(&cd, &last, 137);
    wait_until("every shim to exit", LONG, || cd.shim_pids().is_empty());
}

/// Two Creates of one new id at once, straight to a shim's socket (containerd never sends
/// them together; any client of the socket can): one container is made, and the refused
/// Create leaves it alone.
#[test]
fn two_creates_of_one_id_at_once_make_one_container() {
    use crossarch_integration::ttrpc::{code, task_call, uint_field, Msg, Reply};

    let _turn = one_at_a_time();
    let cd = containerd!();
    cd.run_detached("keeper", &[], &["sleep", "100000"]);
    let socket = cd.shim_socket("keeper");
    // A bundle containerd knows nothing of: the keeper's spec as containerd stores it.
    let mut spec = cd.spec("keeper");
    spec["root"]["path"] = cd.rootfs().display().to_string().into();
    spec["linux"]["cgroupsPath"] = format!("/{}/dup", cd.namespace()).into();
    let bundle = cd.dir().join("dup");
    fs::create_dir_all(&bundle).unwrap();
    fs::write(bundle.join("config.json"), spec.to_string()).unwrap();
    let create = Msg::new()
        .bytes(1, "dup")
        .bytes(2, bundle.display().to_string())
        .encode();
    let by_id = Msg::new().bytes(1, "dup").encode();
    let barrier = std::sync::Barrier::new(2);
    let replies: Vec<Reply> = thread::scope(|s| {
        let calls: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    task_call(&socket, "Create", &create, LONG)
                })
            })
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let shown: Vec<String> = replies
        .iter()
        .map(|r| format!("{}: {}", r.outcome(), r.message()))
        .collect();
    println!(
        "two Creates of dup at once, {}:\n  {}",
        cd.runtime(),
        shown.join("\n  ")
    );
    let made = replies
        .iter()
        .filter(|r| r.code() == Some(code::OK))
        .count();
    let refused = replies
        .iter()
        .filter(|r| matches!(r, Reply::Status { .. }))
        .count();
    assert_eq!((made, refused), (1, 1), "one made, one refused: {shown:?}");
    let state = |what: &str| match task_call(&socket, "State", &by_id, LONG) {
        Reply::Ok(payload) => payload,
        r => panic!("State of dup {what}: {} {}", r.outcome(), r.message()),
    };
    let pid = uint_field(&state("after the Creates"), 3) as u32;
    assert!(
        pid != 0 && host::process_alive(pid),
        "the refused Create undid the container the other made: its init {pid} is gone"
    );

    // Kill and delete it: containerd would not.
    let kill = Msg::new().bytes(1, "dup").uint(3, 9).encode();
    let r = task_call(&socket, "Kill", &kill, LONG);
    assert_eq!(r.code(), Some(code::OK), "Kill dup: {}", r.message());
    // Status 3 is STOPPED.
    wait_until("dup to stop", LONG, || {
        uint_field(&state("after Kill"), 4) == 3
    });
    let r = task_call(&socket, "Delete", &by_id, LONG);
    assert_eq!(r.code(), Some(code::OK), "Delete dup: {}", r.message());
    assert!(!host::process_alive(pid), "dup's init {pid} is gone");
}
