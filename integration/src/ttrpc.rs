//! A minimal ttrpc client for the shim's Task API, for calls `ctr` 1.6 cannot make
//! (it has no `task update`). Hand-encoded protobuf keeps this crate free of generated code
//! and exercises the shim exactly as containerd's own client would over the wire.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

const MESSAGE_TYPE_REQUEST: u8 = 1;
const MESSAGE_TYPE_RESPONSE: u8 = 2;

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

/// Calls `service`/`method` on the ttrpc server at `socket` with an encoded request, and
/// returns the encoded response, or the error status's code and message.
pub fn call(socket: &Path, service: &str, method: &str, payload: &[u8]) -> Result<Vec<u8>, String> {
    let mut stream = UnixStream::connect(socket)
        .map_err(|e| format!("connect to shim at {}: {e}", socket.display()))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut request = Vec::new();
    bytes_field(&mut request, 1, service.as_bytes());
    bytes_field(&mut request, 2, method.as_bytes());
    bytes_field(&mut request, 3, payload);
    let stream_id: u32 = 1;
    let mut frame = Vec::with_capacity(10 + request.len());
    frame.extend_from_slice(&(request.len() as u32).to_be_bytes());
    frame.extend_from_slice(&stream_id.to_be_bytes());
    frame.push(MESSAGE_TYPE_REQUEST);
    frame.push(0);
    frame.extend_from_slice(&request);
    stream.write_all(&frame).map_err(|e| e.to_string())?;

    let mut header = [0u8; 10];
    stream
        .read_exact(&mut header)
        .map_err(|e| format!("read ttrpc response header: {e}"))?;
    let len = u32::from_be_bytes(header[0..4].try_into().unwrap()) as usize;
    if header[8] != MESSAGE_TYPE_RESPONSE {
        return Err(format!("unexpected ttrpc message type {}", header[8]));
    }
    let mut body = vec![0u8; len];
    stream
        .read_exact(&mut body)
        .map_err(|e| format!("read ttrpc response: {e}"))?;

    let mut buf = body.as_slice();
    let mut payload_out = Vec::new();
    while let Some((field, _, data)) = next_field(&mut buf) {
        match field {
            1 => {
                let (mut code, mut message) = (0, String::new());
                let mut status = data;
                while let Some((f, v, d)) = next_field(&mut status) {
                    match f {
                        1 => code = v,
                        2 => message = String::from_utf8_lossy(d).into_owned(),
                        _ => {}
                    }
                }
                if code != 0 {
                    return Err(format!("ttrpc status {code}: {message}"));
                }
            }
            2 => payload_out = data.to_vec(),
            _ => {}
        }
    }
    Ok(payload_out)
}

/// `containerd.task.v2.Task/Update` with OCI `LinuxResources`, encoded the way containerd's
/// typeurl does for this non-protobuf type: as JSON inside an `Any`.
pub fn update_resources(
    shim_socket: &Path,
    container_id: &str,
    resources: &serde_json::Value,
) -> Result<(), String> {
    let mut any = Vec::new();
    bytes_field(
        &mut any,
        1,
        b"types.containerd.io/opencontainers/runtime-spec/1/LinuxResources",
    );
    bytes_field(&mut any, 2, resources.to_string().as_bytes());
    let mut req = Vec::new();
    bytes_field(&mut req, 1, container_id.as_bytes());
    bytes_field(&mut req, 2, &any);
    call(shim_socket, "containerd.task.v2.Task", "Update", &req).map(|_| ())
}
