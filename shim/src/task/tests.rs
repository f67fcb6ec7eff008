//! The Task API's events in the order containerd needs them, from a [`TaskService`] driven
//! through its methods against the fake runc of `testing/fake-runc`: real processes, whose
//! exits the shim's own reaper sees, and the real forwarding task, delivering into a channel
//! instead of containerd.
//!
//! Each test runs in a process of its own: the test binary again, told by [`SCENARIO`] which
//! test to run. The shim's reaper waits for every child of its process, so beside the other
//! unit tests it would take the exit statuses they wait for; and that process must be the
//! subreaper that container processes are re-parented to, as the shim is.

use std::{
    future::Future,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use containerd_shim::protos::{
    events::task::TaskOOM,
    protobuf::{Message, MessageFull},
    shim::event::Envelope,
    types::task::Status as TaskStatus,
};
use crossarch_protos::{runtimeoptions::Options as RuntimeOptions, RUNTIME_OPTIONS_TYPE_URL};
use tokio::sync::mpsc;

use super::*;

/// Names the test that a process of its own runs (see the module's comment).
const SCENARIO: &str = "CROSSARCH_TASK_TEST_SCENARIO";
/// The temporary directory of that test, made and removed by the test process that started it.
const SCENARIO_DIR: &str = "CROSSARCH_TASK_TEST_DIR";
/// The fake runc's path; by default it is found beside the test binary ([`fake_runc`]).
const FAKE_RUNC: &str = "CROSSARCH_FAKE_RUNC";

const NAMESPACE: &str = "crossarch-test";
const SCENARIO_LIMIT: Duration = Duration::from_secs(60);
const EVENT_LIMIT: Duration = Duration::from_secs(10);

/// The fake runc: `cargo test --workspace` builds it into `target/<profile>/`, and this test
/// binary is `target/<profile>/deps/<name>`.
fn fake_runc() -> PathBuf {
    if let Some(path) = std::env::var_os(FAKE_RUNC) {
        return path.into();
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("fake-runc"))
        .unwrap_or_default();
    assert!(
        path.is_file(),
        "the fake runc is not at {}: `cargo test --workspace` builds it (testing/fake-runc); \
         with `cargo test -p crossarch-shim`, run `cargo build -p crossarch-fake-runc` first, \
         or set {FAKE_RUNC} to its path",
        path.display()
    );
    path
}

/// Runs `scenario` in a process of its own; `name` is the test's function name.
fn isolated<F, Fut>(name: &str, scenario: F)
where
    F: FnOnce(Harness) -> Fut,
    Fut: Future<Output = ()>,
{
    if std::env::var(SCENARIO).as_deref() == Ok(name) {
        let dir = PathBuf::from(std::env::var_os(SCENARIO_DIR).expect("the scenario's directory"));
        // SAFETY: prctl(2) with plain integers.
        let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        assert_eq!(r, 0, "cannot become a subreaper");
        // As the shim runs: one thread (main.rs).
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            reaper::start().unwrap();
            let harness = Harness::new(&dir, fake_runc());
            tokio::time::timeout(SCENARIO_LIMIT, scenario(harness))
                .await
                .unwrap_or_else(|_| panic!("{name} took longer than {SCENARIO_LIMIT:?}"));
        });
        return;
    }
    let fake = fake_runc();
    let dir = tempfile::tempdir().unwrap();
    let module = module_path!();
    let test = format!(
        "{}::{name}",
        module.split_once("::").map_or(module, |m| m.1)
    );
    let output = dir.path().join("output");
    let out = std::fs::File::create(&output).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([&test, "--exact", "--nocapture", "--test-threads=1"])
        .env(SCENARIO, name)
        .env(SCENARIO_DIR, dir.path())
        .env(FAKE_RUNC, &fake)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    // Another test's reaper may take this status first (ECHILD): the output tells anyway.
    let _ = child.wait();
    let left = remove_leftovers(&fake, &dir.path().join("runc").join(NAMESPACE));
    let output = std::fs::read_to_string(&output).unwrap_or_default();
    assert!(
        output.contains("test result: ok. 1 passed"),
        "{test} failed in its own process:\n{output}"
    );
    assert!(
        left.is_empty(),
        "{test} left containers in runc's root, not deleted: {left:?}"
    );
}

/// Deletes by force what a scenario left in the fake runc's `root`, which kills the
/// processes it started there and only those; returns the ids.
fn remove_leftovers(fake: &Path, root: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let ids: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    for id in &ids {
        let _ = Command::new(fake)
            .arg("--root")
            .arg(root)
            .args(["delete", "--force", id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    ids
}

fn ctx() -> TtrpcContext {
    TtrpcContext {
        mh: Default::default(),
        metadata: Default::default(),
        timeout_nano: 0,
    }
}

/// Unwraps a Task API answer, saying which call failed.
fn ok<T>(call: &str, r: ttrpc::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{call}: {e:?}"))
}

/// Calls the Task API's `method` with `api::Request { fields }` (each given by a variable of
/// its name), and unwraps the answer, naming the call when it fails.
macro_rules! call {
    ($api:expr, $method:ident, $request:ident { $($field:ident),* }) => {{
        let what = format!(
            concat!(stringify!($method) $(, " ", stringify!($field), "={:?}")*),
            $(&$field),*
        );
        let req = api::$request {
            $($field: $field.into(),)*
            ..Default::default()
        };
        ok(&what, $api.service.$method(&ctx(), req).await)
    }};
}

/// The Task API of one shim, whose containers run through the fake runc.
#[derive(Clone)]
struct Api {
    service: Arc<TaskService>,
    dir: PathBuf,
    fake: PathBuf,
}

/// A process spec whose args run `script` (see the fake runc's comment).
fn process(fake: &Path, script: &[&str]) -> serde_json::Value {
    let mut args = vec![fake.to_string_lossy().into_owned()];
    args.extend(script.iter().map(|s| s.to_string()));
    serde_json::json!({
        "args": args,
        "cwd": "/",
        "env": ["PATH=/usr/bin:/bin"],
        "user": {"uid": 0, "gid": 0},
    })
}

impl Api {
    /// The crossarch config of every Create: the fake runc, its root in the scenario's
    /// directory, and no injected init (the fake runs no binary in front of another).
    fn options(&self) -> Any {
        let body = format!(
            "[runc]\nbinary = {:?}\nroot = {:?}\n[init]\nenabled = false\n",
            self.fake.display().to_string(),
            self.dir.join("runc").display().to_string()
        );
        let opts = RuntimeOptions {
            config_body: body,
            ..Default::default()
        };
        Any {
            type_url: RUNTIME_OPTIONS_TYPE_URL.into(),
            value: opts.write_to_bytes().unwrap(),
            ..Default::default()
        }
    }

    /// Creates container `id`, whose init follows `script`: its pid. Its root is the host's
    /// (the fake makes none), where the shim finds args[0], the fake's native binary.
    async fn create(&self, id: &str, script: &[&str]) -> u32 {
        let bundle = self.dir.join("bundles").join(id);
        std::fs::create_dir_all(&bundle).unwrap();
        let spec = serde_json::json!({
            "ociVersion": "1.0.2",
            "process": process(&self.fake, script),
            "root": {"path": "/"},
            "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]},
        });
        std::fs::write(bundle.join("config.json"), spec.to_string()).unwrap();
        let req = api::CreateTaskRequest {
            id: id.into(),
            bundle: bundle.display().to_string(),
            options: MessageField::some(self.options()),
            ..Default::default()
        };
        ok(
            &format!("create {id}"),
            self.service.create(&ctx(), req).await,
        )
        .pid
    }

    async fn start(&self, id: &str, exec_id: &str) -> u32 {
        call!(self, start, StartRequest { id, exec_id }).pid
    }

    async fn exec(&self, id: &str, exec_id: &str, script: &[&str]) {
        let spec = MessageField::some(Any {
            type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".into(),
            value: process(&self.fake, script).to_string().into_bytes(),
            ..Default::default()
        });
        call!(self, exec, ExecProcessRequest { id, exec_id, spec });
    }

    async fn kill(&self, id: &str, exec_id: &str, signal: i32) {
        let signal = signal as u32;
        call!(
            self,
            kill,
            KillRequest {
                id,
                exec_id,
                signal
            }
        );
    }

    /// The exit status that Wait answers.
    async fn wait(&self, id: &str, exec_id: &str) -> u32 {
        call!(self, wait, WaitRequest { id, exec_id }).exit_status
    }

    async fn delete(&self, id: &str, exec_id: &str) -> api::DeleteResponse {
        call!(self, delete, DeleteRequest { id, exec_id })
    }

    async fn status(&self, id: &str, exec_id: &str) -> TaskStatus {
        call!(self, state, StateRequest { id, exec_id })
            .status
            .unwrap()
    }

    async fn pause(&self, id: &str) {
        call!(self, pause, PauseRequest { id });
    }

    async fn resume(&self, id: &str) {
        call!(self, resume, ResumeRequest { id });
    }

    async fn shutdown(&self) {
        call!(self, shutdown, ShutdownRequest {});
    }
}

/// One event as the tests compare them: "create c", "start c", "exec-added c/e",
/// "exec-started c/e", "exit c/e 5" (an exec's), "exit c 137" (the init's), "delete c 137",
/// "paused c", "resumed c", "oom c"; with the pid it names, 0 for none.
#[derive(Clone, Debug)]
struct Event {
    text: String,
    pid: u32,
}

fn decode<M: MessageFull>(envelope: &Envelope) -> M {
    let any = envelope.event.as_ref().expect("an event in the envelope");
    assert_eq!(
        any.type_url,
        M::descriptor().full_name(),
        "{}",
        envelope.topic
    );
    M::parse_from_bytes(&any.value).unwrap()
}

fn describe(envelope: &Envelope) -> Event {
    assert_eq!(envelope.namespace, NAMESPACE, "{}", envelope.topic);
    assert!(
        envelope.timestamp.is_some(),
        "{} has no time",
        envelope.topic
    );
    let (text, pid) = match envelope.topic.as_str() {
        "/tasks/create" => {
            let e: TaskCreate = decode(envelope);
            (format!("create {}", e.container_id), e.pid)
        }
        "/tasks/start" => {
            let e: TaskStart = decode(envelope);
            (format!("start {}", e.container_id), e.pid)
        }
        "/tasks/exec-added" => {
            let e: TaskExecAdded = decode(envelope);
            (format!("exec-added {}/{}", e.container_id, e.exec_id), 0)
        }
        "/tasks/exec-started" => {
            let e: TaskExecStarted = decode(envelope);
            (
                format!("exec-started {}/{}", e.container_id, e.exec_id),
                e.pid,
            )
        }
        "/tasks/exit" => {
            let e: TaskExit = decode(envelope);
            let who = if e.id == e.container_id {
                e.container_id
            } else {
                format!("{}/{}", e.container_id, e.id)
            };
            (format!("exit {who} {}", e.exit_status), e.pid)
        }
        "/tasks/delete" => {
            let e: TaskDelete = decode(envelope);
            assert_eq!(e.id, e.container_id);
            (
                format!("delete {} {}", e.container_id, e.exit_status),
                e.pid,
            )
        }
        "/tasks/paused" => (
            format!("paused {}", decode::<TaskPaused>(envelope).container_id),
            0,
        ),
        "/tasks/resumed" => (
            format!("resumed {}", decode::<TaskResumed>(envelope).container_id),
            0,
        ),
        "/tasks/oom" => (
            format!("oom {}", decode::<TaskOOM>(envelope).container_id),
            0,
        ),
        other => (other.to_string(), 0),
    };
    Event { text, pid }
}

/// The events the service sent, in the order the forwarding task delivered them.
struct Recorder {
    rx: mpsc::UnboundedReceiver<Envelope>,
    seen: Vec<Event>,
}

impl Recorder {
    /// Every event so far, once one reads `last`.
    async fn through(&mut self, last: &str) -> Vec<Event> {
        while !self.seen.iter().any(|e| e.text == last) {
            match tokio::time::timeout(EVENT_LIMIT, self.rx.recv()).await {
                Ok(Some(envelope)) => self.seen.push(describe(&envelope)),
                _ => panic!(
                    "no {last:?} event within {EVENT_LIMIT:?}; got {:?}",
                    texts(&self.seen)
                ),
            }
        }
        self.seen.clone()
    }

    /// Nothing more comes for a moment: no event twice, none astray.
    /// The events delivered so far, without waiting for more.
    fn delivered(&mut self) -> Vec<Event> {
        while let Ok(envelope) = self.rx.try_recv() {
            self.seen.push(describe(&envelope));
        }
        self.seen.clone()
    }

    async fn quiet(&mut self) {
        if let Ok(Some(envelope)) =
            tokio::time::timeout(Duration::from_millis(300), self.rx.recv()).await
        {
            panic!(
                "unexpected {:?} after {:?}",
                describe(&envelope).text,
                texts(&self.seen)
            );
        }
    }
}

fn texts(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.text.as_str()).collect()
}

/// The events of one process, `c` for an init (its exec's are not) or `c/e` for an exec.
fn of<'a>(events: &'a [Event], who: &str) -> Vec<&'a str> {
    texts(events)
        .into_iter()
        .filter(|t| t.split(' ').nth(1) == Some(who))
        .collect()
}

/// Where `text` is in `events`; it must be there once.
fn position(events: &[Event], text: &str) -> usize {
    let all = texts(events);
    let at: Vec<usize> = (0..all.len()).filter(|&i| all[i] == text).collect();
    assert_eq!(at.len(), 1, "{text:?} should be there once: {all:?}");
    at[0]
}

fn pid_of(events: &[Event], text: &str) -> u32 {
    events[position(events, text)].pid
}

struct Harness {
    api: Api,
    events: Recorder,
    exit: Arc<ExitSignal>,
}

impl Harness {
    fn new(dir: &Path, fake: PathBuf) -> Harness {
        let (events, rx) = events::Events::into_channel(NAMESPACE);
        let exit = Arc::new(ExitSignal::default());
        let service = TaskService {
            shared: Arc::new(Shared {
                namespace: NAMESPACE.into(),
                containers: Mutex::default(),
                membership: Mutex::default(),
                events,
                exit: exit.clone(),
                created: Default::default(),
            }),
        };
        Harness {
            api: Api {
                service: Arc::new(service),
                dir: dir.to_path_buf(),
                fake,
            },
            events: Recorder {
                rx,
                seen: Vec::new(),
            },
            exit,
        }
    }

    /// Kills container `id` with SIGKILL and deletes it: every event so far.
    async fn kill_and_delete(&mut self, id: &str) -> Vec<Event> {
        self.api.kill(id, "", libc::SIGKILL).await;
        assert_eq!(self.api.wait(id, "").await, 137);
        assert_eq!(self.api.delete(id, "").await.exit_status, 137);
        self.events.through(&format!("delete {id} 137")).await
    }

    async fn exit_signalled(&self) -> bool {
        tokio::time::timeout(Duration::from_millis(300), self.exit.wait())
            .await
            .is_ok()
    }
}

#[test]
fn the_init_is_created_started_exits_and_is_deleted_in_that_order() {
    isolated(
        "the_init_is_created_started_exits_and_is_deleted_in_that_order",
        |mut h| async move {
            let pid = h.api.create("c", &["exit", "3"]).await;
            let events = h.events.through("create c").await;
            assert_eq!(texts(&events), ["create c"]);
            assert_eq!(h.api.status("c", "").await, TaskStatus::CREATED);
            assert_eq!(h.api.start("c", "").await, pid);
            assert_eq!(h.api.wait("c", "").await, 3);
            let deleted = h.api.delete("c", "").await;
            assert_eq!((deleted.pid, deleted.exit_status), (pid, 3));
            let events = h.events.through("delete c 3").await;
            assert_eq!(
                texts(&events),
                ["create c", "start c", "exit c 3", "delete c 3"]
            );
            for e in &events {
                assert_eq!(e.pid, pid, "{e:?}");
            }
            h.events.quiet().await;
        },
    );
}

#[test]
fn a_process_that_exits_at_once_is_still_started_before_it_exits() {
    isolated(
        "a_process_that_exits_at_once_is_still_started_before_it_exits",
        |mut h| async move {
            let ids: Vec<String> = (0..8).map(|i| format!("c{i}")).collect();
            for id in &ids {
                h.api.create(id, &["exit", "0"]).await;
            }
            let mut starts = tokio::task::JoinSet::new();
            for id in ids.clone() {
                let api = h.api.clone();
                starts.spawn(async move { api.start(&id, "").await });
            }
            starts.join_all().await;
            for id in &ids {
                assert_eq!(h.api.wait(id, "").await, 0);
                h.api.delete(id, "").await;
            }
            let events = h.events.through(&format!("delete {} 0", ids[7])).await;
            for id in &ids {
                let (create, start, exit, delete) = (
                    format!("create {id}"),
                    format!("start {id}"),
                    format!("exit {id} 0"),
                    format!("delete {id} 0"),
                );
                assert_eq!(
                    of(&events, id),
                    [&create, &start, &exit, &delete],
                    "all: {:?}",
                    texts(&events)
                );
                assert_eq!(pid_of(&events, &start), pid_of(&events, &exit));
            }
            h.events.quiet().await;
        },
    );
}

#[test]
fn an_exec_is_added_and_started_before_it_exits() {
    isolated(
        "an_exec_is_added_and_started_before_it_exits",
        |mut h| async move {
            let init = h.api.create("c", &["sleep", "30"]).await;
            h.api.start("c", "").await;
            h.api.exec("c", "e", &["exit", "5"]).await;
            let events = h.events.through("exec-added c/e").await;
            assert_eq!(texts(&events), ["create c", "start c", "exec-added c/e"]);
            let pid = h.api.start("c", "e").await;
            assert_ne!(pid, init);
            assert_eq!(h.api.wait("c", "e").await, 5);
            let events = h.events.through("exit c/e 5").await;
            assert_eq!(
                texts(&events),
                [
                    "create c",
                    "start c",
                    "exec-added c/e",
                    "exec-started c/e",
                    "exit c/e 5"
                ]
            );
            assert_eq!(pid_of(&events, "exec-started c/e"), pid);
            assert_eq!(pid_of(&events, "exit c/e 5"), pid);
            let deleted = h.api.delete("c", "e").await;
            assert_eq!((deleted.pid, deleted.exit_status), (pid, 5));
            h.events.quiet().await;
            assert_eq!(h.api.status("c", "").await, TaskStatus::RUNNING);

            let events = h.kill_and_delete("c").await;
            assert_eq!(
                texts(&events)[5..],
                ["exit c 137", "delete c 137"],
                "{:?}",
                texts(&events)
            );
            h.events.quiet().await;
        },
    );
}

#[test]
fn killing_an_exec_reports_its_signal_and_leaves_the_init_running() {
    isolated(
        "killing_an_exec_reports_its_signal_and_leaves_the_init_running",
        |mut h| async move {
            h.api.create("c", &["sleep", "30"]).await;
            h.api.start("c", "").await;
            h.api.exec("c", "e", &["sleep", "30"]).await;
            h.api.start("c", "e").await;
            h.api.kill("c", "e", libc::SIGTERM).await;
            assert_eq!(h.api.wait("c", "e").await, 143);
            let events = h.events.through("exit c/e 143").await;
            assert_eq!(
                of(&events, "c/e"),
                ["exec-added c/e", "exec-started c/e", "exit c/e 143"]
            );
            assert_eq!(h.api.status("c", "").await, TaskStatus::RUNNING);
            h.events.quiet().await;
            h.kill_and_delete("c").await;
        },
    );
}

#[test]
fn execs_exit_before_the_init_when_the_container_is_killed() {
    isolated(
        "execs_exit_before_the_init_when_the_container_is_killed",
        |mut h| async move {
            h.api.create("c", &["sleep", "30"]).await;
            h.api.start("c", "").await;
            for e in ["a", "b"] {
                h.api.exec("c", e, &["sleep", "30"]).await;
                h.api.start("c", e).await;
            }
            h.api.kill("c", "", libc::SIGTERM).await;
            assert_eq!(h.api.wait("c", "").await, 143);
            h.events.through("exit c/a 137").await;
            h.events.through("exit c/b 137").await;
            let events = h.events.through("exit c 143").await;
            let init_exit = position(&events, "exit c 143");
            for e in ["a", "b"] {
                let exit = format!("exit c/{e} 137");
                assert!(
                    position(&events, &exit) < init_exit,
                    "{exit} should come before the init's: {:?}",
                    texts(&events)
                );
                assert_eq!(h.api.wait("c", e).await, 137);
            }
            h.api.delete("c", "").await;
            let events = h.events.through("delete c 143").await;
            assert_eq!(texts(&events).last(), Some(&"delete c 143"));
            h.events.quiet().await;
        },
    );
}

#[test]
fn concurrent_execs_keep_the_order_of_each_process() {
    isolated(
        "concurrent_execs_keep_the_order_of_each_process",
        |mut h| async move {
            h.api.create("c", &["sleep", "30"]).await;
            h.api.start("c", "").await;
            let mut execs = tokio::task::JoinSet::new();
            for i in 0..8 {
                let api = h.api.clone();
                execs.spawn(async move {
                    let e = format!("e{i}");
                    let code = i.to_string();
                    // Half exit at once, half a moment later, in among the others' starts.
                    let delay = if i % 2 == 0 { "0" } else { "0.05" };
                    api.exec("c", &e, &["sleep", delay, "exit", &code]).await;
                    let pid = api.start("c", &e).await;
                    (i, pid, api.wait("c", &e).await)
                });
            }
            let mut pids = HashMap::new();
            for (i, pid, status) in execs.join_all().await {
                assert_eq!(status, i, "e{i}'s exit status");
                pids.insert(i, pid);
            }
            for i in 0..8 {
                let e = format!("c/e{i}");
                let (added, started, exit) = (
                    format!("exec-added {e}"),
                    format!("exec-started {e}"),
                    format!("exit {e} {i}"),
                );
                let events = h.events.through(&exit).await;
                assert_eq!(
                    of(&events, &e),
                    [&added, &started, &exit],
                    "all: {:?}",
                    texts(&events)
                );
                assert_eq!(pid_of(&events, &started), pids[&i]);
                assert_eq!(pid_of(&events, &exit), pids[&i]);
            }
            h.kill_and_delete("c").await;
            h.events.quiet().await;
        },
    );
}

#[test]
fn a_container_deleted_before_its_start_exits_before_its_delete() {
    isolated(
        "a_container_deleted_before_its_start_exits_before_its_delete",
        |mut h| async move {
            let pid = h.api.create("c", &["sleep", "30"]).await;
            let deleted = h.api.delete("c", "").await;
            assert_eq!((deleted.pid, deleted.exit_status), (pid, 137));
            let events = h.events.through("delete c 137").await;
            assert_eq!(texts(&events), ["create c", "exit c 137", "delete c 137"]);
            h.events.quiet().await;
        },
    );
}

#[test]
fn pause_and_resume_are_told_between_start_and_exit() {
    isolated(
        "pause_and_resume_are_told_between_start_and_exit",
        |mut h| async move {
            h.api.create("c", &["sleep", "30"]).await;
            h.api.start("c", "").await;
            h.api.pause("c").await;
            assert_eq!(h.api.status("c", "").await, TaskStatus::PAUSED);
            h.api.resume("c").await;
            assert_eq!(h.api.status("c", "").await, TaskStatus::RUNNING);
            let events = h.kill_and_delete("c").await;
            assert_eq!(
                texts(&events),
                [
                    "create c",
                    "start c",
                    "paused c",
                    "resumed c",
                    "exit c 137",
                    "delete c 137"
                ]
            );
            h.events.quiet().await;
        },
    );
}

#[test]
fn the_shim_exits_only_once_containerd_took_the_events_before_shutdown() {
    isolated(
        "the_shim_exits_only_once_containerd_took_the_events_before_shutdown",
        |mut h| async move {
            h.api.create("c", &["exit", "0"]).await;
            h.api.start("c", "").await;
            h.api.wait("c", "").await;
            h.events.through("exit c 0").await;
            // A containerd slow to take events: the shim must not exit with one still
            // queued, or on its way (containerd then logs "failed sending message on
            // channel").
            events::slow_test_channel(Duration::from_millis(300));
            h.api.delete("c", "").await;
            h.api.shutdown().await;
            tokio::time::timeout(Duration::from_secs(5), h.exit.wait())
                .await
                .expect("the shim never exited after Shutdown");
            let delivered = h.events.delivered();
            assert!(
                texts(&delivered).contains(&"delete c 0"),
                "the shim exited before the delete event was taken: {:?}",
                texts(&delivered)
            );
            assert!(h.exit_signalled().await);
        },
    );
}

#[test]
fn shutdown_ends_the_shim_only_once_its_last_container_is_deleted() {
    isolated(
        "shutdown_ends_the_shim_only_once_its_last_container_is_deleted",
        |mut h| async move {
            h.api.create("c", &["exit", "0"]).await;
            h.api.start("c", "").await;
            h.api.shutdown().await;
            assert!(!h.exit_signalled().await, "a container is still served");
            h.api.wait("c", "").await;
            h.api.delete("c", "").await;
            h.events.through("delete c 0").await;
            h.api.shutdown().await;
            assert!(h.exit_signalled().await, "nothing is served any more");
            let bundle = h.api.dir.join("bundles").join("late");
            std::fs::create_dir_all(&bundle).unwrap();
            let req = api::CreateTaskRequest {
                id: "late".into(),
                bundle: bundle.display().to_string(),
                ..Default::default()
            };
            let e = h.api.service.create(&ctx(), req).await.unwrap_err();
            assert!(format!("{e:?}").contains("shutting down"), "{e:?}");
            h.events.quiet().await;
        },
    );
}
