//! A minimal ttrpc client for the shim's Task API, for calls `ctr` 1.6 cannot make (it has
//! no `task update`) and for requests no well-behaved client sends (missing fields, garbage,
//! broken frames, oversized messages). Hand-encoded protobuf keeps this crate free of
//! generated code and exercises the shim exactly as containerd's own client would over the
//! wire.
//!
//! A ttrpc frame is a 10-byte header (length of the body, u32 big-endian; stream id, u32
//! big-endian; message type; flags) and the body. A request's body is a `ttrpc.Request`
//! (service = 1, method = 2, payload = 3, timeout_nano = 4, metadata = 5); a response's is a
//! `ttrpc.Response` (status = 1 with code = 1 and message = 2; payload = 2).

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// The Task API service, as containerd names it.
pub const TASK: &str = "containerd.task.v2.Task";

pub const MESSAGE_TYPE_REQUEST: u8 = 1;
pub const MESSAGE_TYPE_RESPONSE: u8 = 2;
pub const MESSAGE_TYPE_DATA: u8 = 3;

/// The length of a frame header.
pub const HEADER_LENGTH: usize = 10;

/// The largest message ttrpc accepts (Go and Rust alike): 4 MiB.
pub const MESSAGE_LENGTH_MAX: usize = 4 << 20;

/// gRPC status codes, which ttrpc carries and containerd's errdefs maps from.
pub mod code {
    pub const OK: u32 = 0;
    pub const CANCELLED: u32 = 1;
    pub const UNKNOWN: u32 = 2;
    pub const INVALID_ARGUMENT: u32 = 3;
    pub const DEADLINE_EXCEEDED: u32 = 4;
    pub const NOT_FOUND: u32 = 5;
    pub const ALREADY_EXISTS: u32 = 6;
    pub const PERMISSION_DENIED: u32 = 7;
    pub const RESOURCE_EXHAUSTED: u32 = 8;
    pub const FAILED_PRECONDITION: u32 = 9;
    pub const ABORTED: u32 = 10;
    pub const OUT_OF_RANGE: u32 = 11;
    pub const UNIMPLEMENTED: u32 = 12;
    pub const INTERNAL: u32 = 13;
    pub const UNAVAILABLE: u32 = 14;
    pub const DATA_LOSS: u32 = 15;
    pub const UNAUTHENTICATED: u32 = 16;

    /// The code's name as gRPC spells it.
    pub fn name(code: u32) -> &'static str {
        [
            "OK",
            "Canceled",
            "Unknown",
            "InvalidArgument",
            "DeadlineExceeded",
            "NotFound",
            "AlreadyExists",
            "PermissionDenied",
            "ResourceExhausted",
            "FailedPrecondition",
            "Aborted",
            "OutOfRange",
            "Unimplemented",
            "Internal",
            "Unavailable",
            "DataLoss",
            "Unauthenticated",
        ]
        .get(code as usize)
        .copied()
        .unwrap_or("(undefined)")
    }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn bytes_field(out: &mut Vec<u8>, field: u32, data: &[u8]) {
    varint(out, u64::from(field << 3 | 2));
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

/// A protobuf message under construction: fields in the order they are added.
#[derive(Clone, Debug, Default)]
pub struct Msg(Vec<u8>);

impl Msg {
    pub fn new() -> Msg {
        Msg::default()
    }
    /// A string or bytes field (wire type 2).
    pub fn bytes(mut self, field: u32, data: impl AsRef<[u8]>) -> Msg {
        bytes_field(&mut self.0, field, data.as_ref());
        self
    }
    /// An embedded message.
    pub fn message(self, field: u32, m: &Msg) -> Msg {
        self.bytes(field, &m.0)
    }
    /// A uint32, uint64 or enum field (wire type 0).
    pub fn uint(mut self, field: u32, v: u64) -> Msg {
        varint(&mut self.0, u64::from(field << 3));
        varint(&mut self.0, v);
        self
    }
    pub fn bool(self, field: u32, v: bool) -> Msg {
        self.uint(field, u64::from(v))
    }
    pub fn encode(&self) -> Vec<u8> {
        self.0.clone()
    }
}

/// A `google.protobuf.Any`.
pub fn any(type_url: &str, value: &[u8]) -> Msg {
    Msg::new().bytes(1, type_url).bytes(2, value)
}

/// Reads one protobuf field: (field number, wire type, varint value or length-delimited bytes).
fn next_field<'a>(buf: &mut &'a [u8]) -> Option<(u32, u64, &'a [u8])> {
    fn read_varint(buf: &mut &[u8]) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = buf.split_first()?;
            *buf = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    if buf.is_empty() {
        return None;
    }
    let key = read_varint(buf)?;
    let (field, wire) = ((key >> 3) as u32, key & 7);
    match wire {
        0 => Some((field, read_varint(buf)?, &[])),
        2 => {
            let len = read_varint(buf)? as usize;
            if buf.len() < len {
                return None;
            }
            let (data, rest) = buf.split_at(len);
            *buf = rest;
            Some((field, 0, data))
        }
        1 => {
            *buf = buf.get(8..)?;
            Some((field, 0, &[]))
        }
        5 => {
            *buf = buf.get(4..)?;
            Some((field, 0, &[]))
        }
        _ => None,
    }
}

/// Every field of an encoded message (see [`next_field`]), or `None` when the bytes do not
/// decode to the end.
pub fn fields(message: &[u8]) -> Option<Vec<(u32, u64, Vec<u8>)>> {
    let mut buf = message;
    let mut out = Vec::new();
    while !buf.is_empty() {
        let (field, value, data) = next_field(&mut buf)?;
        out.push((field, value, data.to_vec()));
    }
    Some(out)
}

/// The varint field `field` of an encoded message (0 when absent, as proto3 has it).
pub fn uint_field(message: &[u8], field: u32) -> u64 {
    let mut buf = message;
    let mut value = 0;
    while let Some((f, v, _)) = next_field(&mut buf) {
        if f == field {
            value = v;
        }
    }
    value
}

/// The body of a ttrpc request for `service`/`method` with an encoded `payload`.
pub fn request_body(service: &str, method: &str, payload: &[u8]) -> Vec<u8> {
    Msg::new()
        .bytes(1, service)
        .bytes(2, method)
        .bytes(3, payload)
        .encode()
}

/// A frame header: `length` is what the header claims, whatever follows it.
pub fn header(length: u32, stream_id: u32, message_type: u8, flags: u8) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_LENGTH);
    h.extend_from_slice(&length.to_be_bytes());
    h.extend_from_slice(&stream_id.to_be_bytes());
    h.push(message_type);
    h.push(flags);
    h
}

/// A whole frame whose header tells the body's true length.
pub fn frame(stream_id: u32, message_type: u8, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut f = header(body.len() as u32, stream_id, message_type, flags);
    f.extend_from_slice(body);
    f
}

/// What came back for a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A response without an error status, with its encoded payload.
    Ok(Vec<u8>),
    /// A response with an error status.
    Status { code: u32, message: String },
    /// Nothing within the deadline; the connection is still open.
    NoReply,
    /// The server closed the connection without answering.
    Closed,
    /// Anything else: a write that failed, a frame that was not a response, ...
    Broken(String),
}

impl Reply {
    /// The status code (OK for a response without one), if a response came.
    pub fn code(&self) -> Option<u32> {
        match self {
            Reply::Ok(_) => Some(code::OK),
            Reply::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// A short name for the outcome: the code's name, or what happened instead.
    pub fn outcome(&self) -> String {
        match self {
            Reply::Ok(_) => "OK".into(),
            Reply::Status { code, .. } => format!("{} ({code})", code::name(*code)),
            Reply::NoReply => "no reply".into(),
            Reply::Closed => "closed".into(),
            Reply::Broken(_) => "broken".into(),
        }
    }

    pub fn message(&self) -> String {
        match self {
            Reply::Status { message, .. } | Reply::Broken(message) => message.clone(),
            Reply::Ok(payload) => format!("{} payload bytes", payload.len()),
            Reply::NoReply | Reply::Closed => String::new(),
        }
    }
}

/// Decodes a `ttrpc.Response` body.
fn decode_response(body: &[u8]) -> Reply {
    let mut buf = body;
    let mut payload = Vec::new();
    let (mut code, mut message) = (code::OK, String::new());
    while let Some((field, _, data)) = next_field(&mut buf) {
        match field {
            1 => {
                let mut status = data;
                while let Some((f, v, d)) = next_field(&mut status) {
                    match f {
                        1 => code = v as u32,
                        2 => message = String::from_utf8_lossy(d).into_owned(),
                        _ => {}
                    }
                }
            }
            2 => payload = data.to_vec(),
            _ => {}
        }
    }
    if code == code::OK {
        Reply::Ok(payload)
    } else {
        Reply::Status { code, message }
    }
}

/// How a bounded read ended short.
enum ReadShort {
    /// Nothing at all came before the deadline.
    Timeout,
    /// End of stream.
    Eof,
    /// Part of what was expected, or an error.
    Other(String),
}

/// One connection to a ttrpc server, for several frames in a row.
pub struct Connection {
    stream: UnixStream,
    next_stream_id: u32,
}

impl Connection {
    pub fn open(socket: &Path) -> Result<Connection, String> {
        let stream = UnixStream::connect(socket)
            .map_err(|e| format!("connect to shim at {}: {e}", socket.display()))?;
        stream
            .set_write_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        Ok(Connection {
            stream,
            next_stream_id: 1,
        })
    }

    /// The next odd stream id (clients open odd ones), not used on this connection yet.
    pub fn stream_id(&mut self) -> u32 {
        let id = self.next_stream_id;
        self.next_stream_id += 2;
        id
    }

    /// Writes raw bytes, whatever they are.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .map_err(|e| format!("write {} bytes: {e}", bytes.len()))
    }

    /// Closes the connection's write side: the server reads end of stream.
    pub fn close_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    fn read_full(&mut self, buf: &mut [u8], deadline: Instant) -> Result<(), ReadShort> {
        let mut got = 0;
        while got < buf.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(if got == 0 {
                    ReadShort::Timeout
                } else {
                    ReadShort::Other(format!("timed out after {got} of {} bytes", buf.len()))
                });
            }
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| ReadShort::Other(e.to_string()))?;
            match self.stream.read(&mut buf[got..]) {
                Ok(0) if got == 0 => return Err(ReadShort::Eof),
                Ok(0) => {
                    return Err(ReadShort::Other(format!(
                        "end of stream after {got} of {} bytes",
                        buf.len()
                    )))
                }
                Ok(n) => got += n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset && got == 0 => {
                    return Err(ReadShort::Eof)
                }
                Err(e) => return Err(ReadShort::Other(e.to_string())),
            }
        }
        Ok(())
    }

    /// Reads the next frame within `timeout`: (stream id, message type, body).
    pub fn receive_frame(&mut self, timeout: Duration) -> Result<(u32, u8, Vec<u8>), Reply> {
        let deadline = Instant::now() + timeout;
        let mut h = [0u8; HEADER_LENGTH];
        self.read_full(&mut h, deadline).map_err(|e| match e {
            ReadShort::Timeout => Reply::NoReply,
            ReadShort::Eof => Reply::Closed,
            ReadShort::Other(m) => Reply::Broken(format!("read response header: {m}")),
        })?;
        let len = u32::from_be_bytes(h[0..4].try_into().unwrap()) as usize;
        let stream_id = u32::from_be_bytes(h[4..8].try_into().unwrap());
        if len > MESSAGE_LENGTH_MAX {
            return Err(Reply::Broken(format!("response claims {len} bytes")));
        }
        let mut body = vec![0u8; len];
        self.read_full(&mut body, deadline).map_err(|e| match e {
            ReadShort::Timeout | ReadShort::Eof => {
                Reply::Broken(format!("response body of {len} bytes cut short"))
            }
            ReadShort::Other(m) => Reply::Broken(format!("read response body: {m}")),
        })?;
        Ok((stream_id, h[8], body))
    }

    /// Reads the response to stream `stream_id` within `timeout`. A frame of another stream
    /// or type is an answer nobody asked for: [`Reply::Broken`].
    pub fn receive(&mut self, stream_id: u32, timeout: Duration) -> Reply {
        match self.receive_frame(timeout) {
            Err(r) => r,
            Ok((id, MESSAGE_TYPE_RESPONSE, body)) if id == stream_id => decode_response(&body),
            Ok((id, kind, body)) => Reply::Broken(format!(
                "got a frame of type {kind} on stream {id} ({} bytes: {}) while waiting for \
                 stream {stream_id}",
                body.len(),
                decode_response(&body).outcome()
            )),
        }
    }

    /// Sends `frame` (which should open stream `stream_id`) and reads its response.
    pub fn exchange(&mut self, stream_id: u32, frame: &[u8], timeout: Duration) -> Reply {
        if let Err(e) = self.send(frame) {
            // The server may have answered and closed before reading all of it.
            return match self.receive(stream_id, Duration::from_secs(1)) {
                Reply::NoReply | Reply::Closed => Reply::Broken(e),
                r => r,
            };
        }
        self.receive(stream_id, timeout)
    }

    /// Calls `service`/`method` with an encoded payload and waits at most `timeout`.
    pub fn call(
        &mut self,
        service: &str,
        method: &str,
        payload: &[u8],
        timeout: Duration,
    ) -> Reply {
        let id = self.stream_id();
        let f = frame(
            id,
            MESSAGE_TYPE_REQUEST,
            0,
            &request_body(service, method, payload),
        );
        self.exchange(id, &f, timeout)
    }
}

/// Calls Task `method` on a fresh connection to `socket`, waiting at most `timeout`.
pub fn task_call(socket: &Path, method: &str, payload: &[u8], timeout: Duration) -> Reply {
    match Connection::open(socket) {
        Ok(mut c) => c.call(TASK, method, payload, timeout),
        Err(e) => Reply::Broken(e),
    }
}

/// Calls `service`/`method` on the ttrpc server at `socket` with an encoded request, and
/// returns the encoded response, or the error status's code and message.
pub fn call(socket: &Path, service: &str, method: &str, payload: &[u8]) -> Result<Vec<u8>, String> {
    let mut conn = Connection::open(socket)?;
    match conn.call(service, method, payload, Duration::from_secs(30)) {
        Reply::Ok(payload) => Ok(payload),
        Reply::Status { code, message } => Err(format!("ttrpc status {code}: {message}")),
        Reply::NoReply => Err(format!("no response to {service}/{method} within 30s")),
        Reply::Closed => Err(format!("the shim closed the connection on {method}")),
        Reply::Broken(m) => Err(m),
    }
}

/// `containerd.task.v2.Task/Update` with OCI `LinuxResources`, encoded the way containerd's
/// typeurl does for this non-protobuf type: as JSON inside an `Any`.
pub fn update_resources(
    shim_socket: &Path,
    container_id: &str,
    resources: &serde_json::Value,
) -> Result<(), String> {
    let any = any(
        "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources",
        resources.to_string().as_bytes(),
    );
    let req = Msg::new().bytes(1, container_id).message(2, &any).encode();
    call(shim_socket, TASK, "Update", &req).map(|_| ())
}
