//! A hostile Task API client: requests containerd never sends, straight to a running shim's
//! ttrpc socket. Missing fields, payloads that are not protobuf, broken and oversized frames,
//! and requests out of order must each get an error whose code is what containerd's errdefs
//! expects (NotFound for an unknown id, AlreadyExists for a duplicate, FailedPrecondition
//! for a process in the wrong state), within a bound, and the shim must go on serving its
//! container: same pid, `ctr task exec` and `ctr task ps` work, its bundle is untouched.
//!
//! The reference is containerd's Go shim (`CROSSARCH_TEST_RUNTIME=io.containerd.runc.v2`):
//! every case states what both shims answer, or what each answers where they differ (where
//! the Go shim passes a plain error on as Unknown, crossarch gives errdefs' code; where the
//! Go and the Rust ttrpc libraries differ, each is named), and the run prints a table of
//! method, input, outcome and message for every call.
//!
//! Wait on an exec that was added and not started blocks, as the Go shim's does: containerd's
//! client calls Wait before Start. The test watches it for a while, starts the exec, and
//! then the same Wait must return the exit status.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crossarch_integration::ttrpc::{
    self, any, code, frame, header, request_body, uint_field, Connection, Msg, Reply,
    MESSAGE_LENGTH_MAX, MESSAGE_TYPE_DATA, MESSAGE_TYPE_REQUEST, MESSAGE_TYPE_RESPONSE, TASK,
};
use crossarch_integration::{containerd, host, OutputExt, CONTAINER_PATH, DEFAULT_TIMEOUT};

const GROUP: &str = "io.containerd.runc.v2.group";

/// How long any one call may take before it counts as a hang.
const BOUND: Duration = Duration::from_secs(10);

/// How long a call that must block (Wait on a process that has not run) is watched.
const BLOCKS: Duration = Duration::from_secs(3);

/// Not protobuf: field 1 with wire type 7, which does not exist, then junk. Every decoder
/// stops at the first byte.
const GARBAGE: &[u8] = b"\x0f\xde\xad\xbe\xef\xff\xff\xff\xffnot protobuf";

/// The Task methods that get an empty request and a payload that is not protobuf.
const METHODS: [&str; 10] = [
    "Create",
    "Start",
    "Exec",
    "Kill",
    "Wait",
    "State",
    "Delete",
    "ResizePty",
    "CloseIO",
    "Update",
];

/// What a call may get back.
#[derive(Clone, Copy, Debug)]
enum Want {
    /// A response with this status code (OK included).
    Code(u32),
    /// Nothing within the bound, the connection still open.
    NoReply,
    /// The connection closed without a response.
    Closed,
}

impl Want {
    fn accepts(self, r: &Reply) -> bool {
        match (self, r) {
            (Want::Code(c), r) => r.code() == Some(c),
            (Want::NoReply, Reply::NoReply) | (Want::Closed, Reply::Closed) => true,
            _ => false,
        }
    }

    fn show(self) -> String {
        match self {
            Want::Code(c) => code::name(c).into(),
            Want::NoReply => "no reply".into(),
            Want::Closed => "closed".into(),
        }
    }
}

/// What crossarch must answer, and what the reference answers.
#[derive(Clone, Copy, Debug)]
struct Expect {
    crossarch: Want,
    reference: Want,
}

/// Both shims answer the same.
fn both(w: Want) -> Expect {
    Expect {
        crossarch: w,
        reference: w,
    }
}

/// The shims differ: crossarch's answer, then the Go shim's.
fn differ(crossarch: Want, reference: Want) -> Expect {
    Expect {
        crossarch,
        reference,
    }
}

const NOT_FOUND: Want = Want::Code(code::NOT_FOUND);
const OK: Want = Want::Code(code::OK);

struct Row {
    method: String,
    input: String,
    outcome: String,
    message: String,
    verdict: Option<String>,
}

/// The calls made so far, what came back, and what was wrong with it.
struct Probe {
    socket: PathBuf,
    shim: u32,
    crossarch: bool,
    rows: Vec<Row>,
    /// What was wrong beyond a row's code.
    problems: Vec<String>,
}

impl Probe {
    /// Records a reply against `expect`; also that the shim is still the same live process.
    fn record(&mut self, method: &str, input: &str, reply: &Reply, expect: Expect) {
        let want = if self.crossarch {
            expect.crossarch
        } else {
            expect.reference
        };
        let mut verdict = (!want.accepts(reply)).then(|| format!("wanted {}", want.show()));
        if !host::process_alive(self.shim) {
            verdict = Some(format!(
                "{}; the shim (pid {}) died",
                verdict.unwrap_or_default(),
                self.shim
            ));
        }
        let message: String = reply.message().replace('\n', " ");
        println!(
            "call: {method} [{input}] -> {} {message}{}",
            reply.outcome(),
            verdict
                .as_ref()
                .map(|v| format!("  <-- {v}"))
                .unwrap_or_default()
        );
        self.rows.push(Row {
            method: method.into(),
            input: input.into(),
            outcome: reply.outcome(),
            message,
            verdict,
        });
    }

    /// Calls Task `method` on a fresh connection, within [`BOUND`].
    fn call(&mut self, method: &str, input: &str, payload: &[u8], expect: Expect) -> Reply {
        let started = Instant::now();
        let reply = ttrpc::task_call(&self.socket, method, payload, BOUND);
        let input = if started.elapsed() > Duration::from_secs(2) {
            format!("{input}; took {:.1?}", started.elapsed())
        } else {
            input.to_string()
        };
        self.record(method, &input, &reply, expect);
        reply
    }

    /// Sends raw bytes on a fresh connection and reads what comes back on stream
    /// `stream_id`; with `then_close`, the write side is closed after them. If the
    /// connection is still open, a State of an unknown id on it must be answered: the
    /// server kept its place in the stream.
    fn raw(
        &mut self,
        what: &str,
        bytes: &[u8],
        stream_id: u32,
        then_close: bool,
        wait: Duration,
        expect: Expect,
    ) {
        let mut conn = match Connection::open(&self.socket) {
            Ok(c) => c,
            Err(e) => {
                self.record("(frame)", what, &Reply::Broken(e), expect);
                return;
            }
        };
        let reply = if then_close {
            match conn.send(bytes) {
                Ok(()) => {
                    conn.close_write();
                    conn.receive(stream_id, wait)
                }
                Err(e) => Reply::Broken(e),
            }
        } else {
            conn.exchange(stream_id, bytes, wait)
        };
        self.record("(frame)", what, &reply, expect);
        if matches!(reply, Reply::Ok(_) | Reply::Status { .. } | Reply::NoReply) && !then_close {
            // Past the ids the frame may have used.
            for _ in 0..4 {
                conn.stream_id();
            }
            let after = conn.call(TASK, "State", &id_exec("no-such-task", ""), BOUND);
            self.record(
                "State",
                &format!("unknown id, same connection, after: {what}"),
                &after,
                both(NOT_FOUND),
            );
        }
    }

    fn problem(&mut self, what: String) {
        println!("problem: {what}");
        self.problems.push(what);
    }

    fn table(&self, runtime: &str) -> String {
        let mut out = format!(
            "Task API under hostile requests, {runtime}:\n| # | method | input | outcome | message | verdict |\n|---|---|---|---|---|---|\n"
        );
        for (i, r) in self.rows.iter().enumerate() {
            let mut message = r.message.replace('|', "\\|");
            if message.chars().count() > 160 {
                message = message.chars().take(157).collect::<String>() + "...";
            }
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                i + 1,
                r.method,
                r.input.replace('|', "\\|"),
                r.outcome,
                message,
                r.verdict.as_deref().unwrap_or("as expected")
            ));
        }
        out
    }

    fn failures(&self) -> Vec<String> {
        self.rows
            .iter()
            .filter_map(|r| {
                r.verdict.as_ref().map(|v| {
                    format!(
                        "{} [{}]: got {} {:?}; {v}",
                        r.method, r.input, r.outcome, r.message
                    )
                })
            })
            .chain(self.problems.iter().cloned())
            .collect()
    }
}

/// A request of the `{id = 1, exec_id = 2}` shape (Start, Wait, State, Delete, ...).
fn id_exec(id: &str, exec_id: &str) -> Vec<u8> {
    Msg::new().bytes(1, id).bytes(2, exec_id).encode()
}

/// An ExecProcessRequest for `args`, without stdio, the spec as containerd sends it.
fn exec_request(id: &str, exec_id: &str, args: &[&str]) -> Vec<u8> {
    let spec = serde_json::json!({
        "args": args,
        "env": [CONTAINER_PATH],
        "cwd": "/",
        "user": {"uid": 0, "gid": 0},
        "terminal": false,
    });
    let spec = any(
        "types.containerd.io/opencontainers/runtime-spec/1/Process",
        spec.to_string().as_bytes(),
    );
    Msg::new()
        .bytes(1, id)
        .bytes(2, exec_id)
        .message(7, &spec)
        .encode()
}

/// The bundle's files (not directories), with their contents.
fn bundle_files(bundle: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(bundle)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        fs::read(e.path()).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Where `after` first differs from `before`, with some context from both.
fn first_difference(before: &[u8], after: &[u8]) -> String {
    let at = before
        .iter()
        .zip(after)
        .position(|(a, b)| a != b)
        .unwrap_or(before.len().min(after.len()));
    let around = |b: &[u8]| {
        let from = at.saturating_sub(40).min(b.len());
        let to = (at + 80).min(b.len());
        String::from_utf8_lossy(&b[from..to]).into_owned()
    };
    format!(
        "{} -> {} bytes, first difference at byte {at}:\n  before: ...{}...\n  after:  ...{}...",
        before.len(),
        after.len(),
        around(before),
        around(after)
    )
}

#[test]
fn hostile_task_api_requests_get_errdefs_codes_and_the_shim_keeps_serving() {
    let cd = containerd!();
    let crossarch = cd.runtime() == "io.containerd.crossarch.v2";
    let group = format!("{GROUP}=hostile-api");
    cd.run_detached("victim", &["--annotation", &group], &["sleep", "1000"]);
    let socket = cd.shim_socket("victim");
    let shim = cd
        .shim_pid("victim")
        .unwrap_or_else(|| panic!("no shim process serves victim: {:?}", cd.shim_pids()));
    let victim_bundle = cd.bundle("victim");
    let bundle = victim_bundle.display().to_string();
    println!(
        "runtime {}, shim pid {shim}, socket {}",
        cd.runtime(),
        socket.display()
    );

    // A second container of the same shim, created and deleted through ctr: its id is one
    // the shim served and no longer knows.
    cd.run_detached("gone", &["--annotation", &group], &["sleep", "1000"]);
    assert_eq!(cd.shim_socket("gone"), socket, "one shim serves the group");
    cd.ctr(&["task", "kill", "-s", "SIGKILL", "gone"]).ok();
    cd.wait_status("gone", "STOPPED", Duration::from_secs(30));
    cd.ctr(&["task", "delete", "gone"]).ok();
    cd.ctr(&["container", "delete", "gone"]).ok();
    assert_eq!(cd.shim_pid("victim"), Some(shim), "the shim outlives gone");

    let files_before = bundle_files(&victim_bundle);
    let mut p = Probe {
        socket: socket.clone(),
        shim,
        crossarch,
        rows: Vec::new(),
        problems: Vec::new(),
    };

    // Missing fields: every request empty. Without an id no container is found.
    for m in METHODS {
        let expect = match m {
            // No id and no bundle: an invalid request (containerd's own check of an id says
            // InvalidArgument), refused before anything is read or written. The Go shim
            // passes runc's refusal of the empty id on, as Unknown.
            "Create" => differ(
                Want::Code(code::INVALID_ARGUMENT),
                Want::Code(code::UNKNOWN),
            ),
            _ => both(NOT_FOUND),
        };
        p.call(m, "empty request", b"", expect);
    }

    // Payloads that are not protobuf: ttrpc's decoder refuses them before the shim's code
    // runs. The Rust ttrpc answers Unknown, the Go ttrpc Internal.
    for m in METHODS {
        p.call(
            m,
            "garbage payload",
            GARBAGE,
            differ(Want::Code(code::UNKNOWN), Want::Code(code::INTERNAL)),
        );
    }

    // Broken frames.
    p.raw(
        "request frame whose body is not a ttrpc.Request",
        &frame(1, MESSAGE_TYPE_REQUEST, 0, GARBAGE),
        1,
        false,
        BOUND,
        both(Want::Code(code::INVALID_ARGUMENT)),
    );
    p.raw(
        "request on an even (server-side) stream id",
        &frame(
            2,
            MESSAGE_TYPE_REQUEST,
            0,
            &request_body(TASK, "State", &id_exec("victim", "")),
        ),
        2,
        false,
        BOUND,
        both(Want::Code(code::INVALID_ARGUMENT)),
    );
    // ttrpc ignores message types it does not know, for compatibility with later versions.
    p.raw(
        "unknown message type 0x7f",
        &frame(
            1,
            0x7f,
            0,
            &request_body(TASK, "State", &id_exec("victim", "")),
        ),
        1,
        false,
        BLOCKS,
        both(Want::NoReply),
    );
    p.raw(
        "response frame sent to the server",
        &frame(1, MESSAGE_TYPE_RESPONSE, 0, b""),
        1,
        false,
        BLOCKS,
        both(Want::NoReply),
    );
    // The Rust ttrpc has streams and says this one is not open; the Go ttrpc of containerd
    // 1.6 has none and ignores the frame.
    p.raw(
        "data frame on a stream never opened",
        &frame(1, MESSAGE_TYPE_DATA, 0, b"data"),
        1,
        false,
        BLOCKS,
        differ(Want::Code(code::INVALID_ARGUMENT), Want::NoReply),
    );
    p.raw(
        "unknown service",
        &frame(
            1,
            MESSAGE_TYPE_REQUEST,
            0,
            &request_body("containerd.task.v9.Nothing", "State", b""),
        ),
        1,
        false,
        BOUND,
        differ(
            Want::Code(code::INVALID_ARGUMENT),
            Want::Code(code::UNIMPLEMENTED),
        ),
    );
    p.raw(
        "unknown method",
        &frame(
            1,
            MESSAGE_TYPE_REQUEST,
            0,
            &request_body(TASK, "Teleport", b""),
        ),
        1,
        false,
        BOUND,
        both(Want::Code(code::UNIMPLEMENTED)),
    );
    p.raw(
        "truncated header (5 of 10 bytes), then end of stream",
        &header(64, 1, MESSAGE_TYPE_REQUEST, 0)[..5],
        1,
        true,
        BOUND,
        both(Want::Closed),
    );
    let body = request_body(TASK, "State", &id_exec("victim", ""));
    let mut cut = header(body.len() as u32 + 100, 1, MESSAGE_TYPE_REQUEST, 0);
    cut.extend_from_slice(&body);
    // The Rust ttrpc closes the connection; the Go ttrpc leaves it open and silent.
    p.raw(
        "truncated body (header claims 100 bytes more), then end of stream",
        &cut,
        1,
        true,
        BLOCKS,
        differ(Want::Closed, Want::NoReply),
    );

    // Oversized: beyond ttrpc's 4 MiB. The server must skip the body and answer, then read
    // the next frame on the same connection. Go's ttrpc says ResourceExhausted, Rust's
    // InvalidArgument.
    let too_big = differ(
        Want::Code(code::INVALID_ARGUMENT),
        Want::Code(code::RESOURCE_EXHAUSTED),
    );
    let claimed = 16 << 20;
    let mut huge = header(claimed as u32, 1, MESSAGE_TYPE_REQUEST, 0);
    huge.resize(10 + claimed, 0xa5);
    p.raw(
        "header claims 16 MiB, 16 MiB of junk follow",
        &huge,
        1,
        false,
        BOUND,
        too_big,
    );
    let big = request_body(
        TASK,
        "State",
        &Msg::new()
            .bytes(1, "victim".repeat(MESSAGE_LENGTH_MAX / 6 + 10_000))
            .encode(),
    );
    p.raw(
        &format!(
            "well-formed State request of {} bytes (id of 4 MiB)",
            big.len()
        ),
        &frame(1, MESSAGE_TYPE_REQUEST, 0, &big),
        1,
        false,
        BOUND,
        too_big,
    );
    drop((huge, big));

    // Out of order.
    p.call(
        "Start",
        "id never created",
        &id_exec("never-created", ""),
        both(NOT_FOUND),
    );
    // The Go shim's process states refuse these with plain errors (Unknown); crossarch says
    // FailedPrecondition, which errdefs has for a process in the wrong state.
    p.call(
        "Start",
        "the running init again",
        &id_exec("victim", ""),
        differ(
            Want::Code(code::FAILED_PRECONDITION),
            Want::Code(code::UNKNOWN),
        ),
    );
    p.call(
        "Delete",
        "the running init",
        &id_exec("victim", ""),
        differ(
            Want::Code(code::FAILED_PRECONDITION),
            Want::Code(code::UNKNOWN),
        ),
    );
    // The Go shim runs `runc create` again in the running container's bundle, and runc's
    // refusal reaches containerd as Unknown; crossarch refuses before touching anything.
    let create = Msg::new().bytes(1, "victim").bytes(2, &bundle).encode();
    p.call(
        "Create",
        "duplicate of the running container, its real bundle",
        &create,
        differ(Want::Code(code::ALREADY_EXISTS), Want::Code(code::UNKNOWN)),
    );
    p.call(
        "Exec",
        "deleted task (gone), valid process spec",
        &exec_request("gone", "e1", &["true"]),
        both(NOT_FOUND),
    );
    p.call(
        "Kill",
        "unknown exec id, SIGTERM",
        &Msg::new()
            .bytes(1, "victim")
            .bytes(2, "no-such-exec")
            .uint(3, 15)
            .encode(),
        both(NOT_FOUND),
    );

    // An exec that was added and not started. containerd's client calls Wait before Start
    // (`ctr task exec` does), so Wait must block until the process exits, as the Go shim's
    // does; it must not fail.
    p.call(
        "Exec",
        "add exec 'pending' (true), not started",
        &exec_request("victim", "pending", &["true"]),
        both(OK),
    );
    let mut waiter = Connection::open(&socket).expect("connect for Wait");
    let wait_id = waiter.stream_id();
    let wait_frame = frame(
        wait_id,
        MESSAGE_TYPE_REQUEST,
        0,
        &request_body(TASK, "Wait", &id_exec("victim", "pending")),
    );
    let early = waiter.exchange(wait_id, &wait_frame, BLOCKS);
    p.record(
        "Wait",
        &format!("exec added, never started (watched {BLOCKS:?})"),
        &early,
        both(Want::NoReply),
    );
    p.call(
        "Exec",
        "duplicate exec id 'pending'",
        &exec_request("victim", "pending", &["true"]),
        both(Want::Code(code::ALREADY_EXISTS)),
    );
    p.call(
        "Kill",
        "exec added, never started, SIGKILL",
        &Msg::new()
            .bytes(1, "victim")
            .bytes(2, "pending")
            .uint(3, 9)
            .encode(),
        both(Want::Code(code::FAILED_PRECONDITION)),
    );
    let state = p.call(
        "State",
        "exec added, never started",
        &id_exec("victim", "pending"),
        both(OK),
    );
    if let Reply::Ok(s) = &state {
        if uint_field(s, 4) != 1 {
            p.problem(format!(
                "State of the exec added and not started is {}, not CREATED (1)",
                uint_field(s, 4)
            ));
        }
    }
    p.call(
        "Start",
        "the pending exec, its Wait still open",
        &id_exec("victim", "pending"),
        both(OK),
    );
    let waited = if early == Reply::NoReply {
        waiter.receive(wait_id, BOUND)
    } else {
        early.clone()
    };
    p.record(
        "Wait",
        "the same Wait, once the exec ran",
        &waited,
        both(OK),
    );
    if let Reply::Ok(w) = &waited {
        if uint_field(w, 1) != 0 {
            p.problem(format!(
                "Wait of the exec (`true`) says exit status {}",
                uint_field(w, 1)
            ));
        }
    }
    drop(waiter);
    p.call(
        "Delete",
        "the pending exec, after its exit",
        &id_exec("victim", "pending"),
        both(OK),
    );

    p.call(
        "ResizePty",
        "the init, which has no terminal",
        &Msg::new()
            .bytes(1, "victim")
            .uint(3, 80)
            .uint(4, 25)
            .encode(),
        // As the Go shim: a process without a terminal has nothing to resize.
        both(OK),
    );
    p.call(
        "ResizePty",
        "unknown exec id",
        &Msg::new()
            .bytes(1, "victim")
            .bytes(2, "no-such-exec")
            .uint(3, 80)
            .uint(4, 25)
            .encode(),
        both(NOT_FOUND),
    );
    // The Go shim returns its lookup's error without converting it, so containerd sees
    // Unknown (with "not found" in the message); crossarch says NotFound.
    p.call(
        "CloseIO",
        "unknown exec id",
        &Msg::new()
            .bytes(1, "victim")
            .bytes(2, "no-such-exec")
            .bool(3, true)
            .encode(),
        differ(NOT_FOUND, Want::Code(code::UNKNOWN)),
    );
    p.call(
        "Pids",
        "unknown id",
        &Msg::new().bytes(1, "no-such-task").encode(),
        both(NOT_FOUND),
    );
    p.call(
        "Stats",
        "unknown id",
        &Msg::new().bytes(1, "no-such-task").encode(),
        both(NOT_FOUND),
    );

    let table = p.table(cd.runtime());
    let failures = p.failures();
    println!("\n{table}");

    // The shim still serves its container.
    let mut after = Vec::new();
    if cd.shim_pid("victim") != Some(shim) {
        after.push(format!(
            "the shim is not pid {shim} any more: {:?}",
            cd.shim_pids()
        ));
    }
    let exec = crossarch_integration::cmd::try_run_with_timeout(
        cd.ctr_command(&[
            "task",
            "exec",
            "--exec-id",
            "after",
            "victim",
            "sh",
            "-c",
            "echo alive",
        ]),
        None,
        DEFAULT_TIMEOUT,
    );
    match &exec {
        Ok(o) if o.status.success() && o.stdout_text().trim() == "alive" => {}
        Ok(o) => after.push(format!("ctr task exec after the calls: {}", o.show())),
        Err(e) => after.push(format!("ctr task exec after the calls: {e}")),
    }
    let ps = crossarch_integration::cmd::try_run_with_timeout(
        cd.ctr_command(&["task", "ps", "victim"]),
        None,
        DEFAULT_TIMEOUT,
    );
    match &ps {
        Ok(o) if o.status.success() && o.stdout_text().lines().count() >= 2 => {
            println!("ctr task ps victim:\n{}", o.stdout_text())
        }
        Ok(o) => after.push(format!("ctr task ps after the calls: {}", o.show())),
        Err(e) => after.push(format!("ctr task ps after the calls: {e}")),
    }
    if cd.task_status("victim").as_deref() != Some("RUNNING") {
        after.push(format!("victim is {:?}", cd.task_status("victim")));
    }
    let files_after = bundle_files(&victim_bundle);
    for (name, content) in &files_before {
        match files_after.get(name) {
            None => after.push(format!("{bundle}/{name} is gone")),
            // runc's log of the container: the Go shim's duplicate Create adds runc's refusal.
            Some(c) if c != content && name != "log.json" => {
                let args = |b: &[u8]| {
                    serde_json::from_slice::<serde_json::Value>(b)
                        .map(|v| v["process"]["args"].to_string())
                        .unwrap_or_default()
                };
                after.push(format!(
                    "{bundle}/{name} of the running container was rewritten (process.args {} -> \
                     {}): {}",
                    args(content),
                    args(c),
                    first_difference(content, c)
                ));
            }
            _ => {}
        }
    }
    for name in files_after
        .keys()
        .filter(|n| !files_before.contains_key(*n))
    {
        println!("new in the bundle: {name}");
    }
    let mut all = failures;
    all.extend(after);
    assert!(
        all.is_empty(),
        "{} problem(s):\n{}\n\n{table}",
        all.len(),
        all.join("\n")
    );
}
