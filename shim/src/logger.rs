//! Logs in containerd's shim log format (logrus text) to the `log` fifo in the bundle, which
//! containerd copies into its own log.

use std::{
    fmt::Write as _,
    fs::{File, OpenOptions},
    io::Write,
    os::unix::fs::OpenOptionsExt,
    sync::Mutex,
};

use log::{Level, LevelFilter, Log, Metadata, Record};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

pub const RUNTIME: &str = "io.containerd.crossarch.v2";

/// The environment variable that sets the shim's log level (the admin's, or the level
/// containerd 2.3 asked for at start).
pub const LEVEL_ENV: &str = "CROSSARCH_LOG_LEVEL";

struct FifoLogger {
    out: Mutex<File>,
    fields: String,
}

/// Quotes a value as logrus does when it holds spaces, quotes or control characters.
pub fn quote(v: &str) -> String {
    let plain = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._/@^+:".contains(c));
    if plain {
        return v.to_string();
    }
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\t' => s.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

pub fn format_line(now: OffsetDateTime, level: Level, msg: &str, fields: &str) -> String {
    let level = match level {
        Level::Error => "error",
        Level::Warn => "warning",
        Level::Info => "info",
        Level::Debug => "debug",
        Level::Trace => "trace",
    };
    let ts = now.format(&Rfc3339).unwrap_or_default();
    format!("time=\"{ts}\" level={level} msg={}{fields}\n", quote(msg))
}

impl Log for FifoLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format_line(
            OffsetDateTime::now_utc(),
            record.level(),
            &record.args().to_string(),
            &self.fields,
        );
        // Non-blocking: a full fifo (containerd gone) drops the line instead of stalling.
        let _ = self.out.lock().unwrap().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Sends the log to `./log` (the bundle's fifo), or stderr when there is none.
pub fn init(debug: bool, namespace: &str, id: &str) {
    // O_RDWR: opening never blocks or fails for lack of a reader (containerd may be restarting),
    // and writes never raise SIGPIPE.
    let out = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("log")
        .or_else(|_| File::options().write(true).open("/dev/stderr"));
    let Ok(out) = out else { return };
    let level = std::env::var(LEVEL_ENV)
        .ok()
        .and_then(|l| l.parse::<LevelFilter>().ok())
        .unwrap_or(if debug {
            LevelFilter::Debug
        } else {
            LevelFilter::Info
        });
    let fields = format!(
        " namespace={} id={} runtime={RUNTIME}",
        quote(namespace),
        quote(id)
    );
    if log::set_boxed_logger(Box::new(FifoLogger {
        out: Mutex::new(out),
        fields,
    }))
    .is_ok()
    {
        log::set_max_level(level);
    }
    // containerd does not read a serving shim's stderr: a panic goes to the log, or no one
    // would ever see it.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        log::error!("{PANIC_MARK} {info}; this is a bug in crossarch, please report it");
        default_hook(info);
    }));
}

/// What a panic's log line starts with, so that tests and operators can look for it.
pub const PANIC_MARK: &str = "shim panicked:";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_look_like_logrus() {
        let t = OffsetDateTime::from_unix_timestamp(0).unwrap();
        let line = format_line(t, Level::Warn, "runc said \"no\"\nbye", " id=a");
        assert_eq!(
            line,
            "time=\"1970-01-01T00:00:00Z\" level=warning msg=\"runc said \\\"no\\\"\\nbye\" id=a\n"
        );
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote(""), "\"\"");
    }
}
