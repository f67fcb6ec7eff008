//! The shim's error type and how each kind reaches containerd.
//!
//! containerd turns ttrpc status codes back into its `errdefs` errors, so the kind decides what
//! `ctr` and the kubelet see ("not found", "already exists", ...). Every message names the
//! container or process it concerns. The error that caused it (an `io::Error`, an errno, a
//! JSON error, ...) stays a value behind [`std::error::Error::source`], and the text the user
//! reads is `message: source`, then what was appended (usually what to do about it).

use std::{error::Error as StdError, fmt};

use containerd_shim::protos::ttrpc::{self, Code};

/// What went wrong, as containerd classifies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    Unimplemented,
    Internal,
    DeadlineExceeded,
}

impl Kind {
    /// The ttrpc code containerd reads back into its errdefs error.
    pub fn code(self) -> Code {
        match self {
            Kind::NotFound => Code::NOT_FOUND,
            Kind::AlreadyExists => Code::ALREADY_EXISTS,
            Kind::FailedPrecondition => Code::FAILED_PRECONDITION,
            Kind::InvalidArgument => Code::INVALID_ARGUMENT,
            Kind::Unimplemented => Code::UNIMPLEMENTED,
            Kind::Internal => Code::UNKNOWN,
            Kind::DeadlineExceeded => Code::DEADLINE_EXCEEDED,
        }
    }
}

#[derive(Debug)]
pub struct Error {
    kind: Kind,
    message: String,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
    /// Text after the source's, such as "; install runc": appended text goes at the end of
    /// what the user reads, so a fix can follow the cause and the cause still stays a value.
    tail: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            source: None,
            tail: String::new(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(Kind::NotFound, message)
    }

    pub fn already_exists(message: impl Into<String>) -> Error {
        Error::new(Kind::AlreadyExists, message)
    }

    pub fn failed_precondition(message: impl Into<String>) -> Error {
        Error::new(Kind::FailedPrecondition, message)
    }

    pub fn invalid_argument(message: impl Into<String>) -> Error {
        Error::new(Kind::InvalidArgument, message)
    }

    pub fn unimplemented(message: impl Into<String>) -> Error {
        Error::new(Kind::Unimplemented, message)
    }

    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(Kind::Internal, message)
    }

    pub fn deadline_exceeded(message: impl Into<String>) -> Error {
        Error::new(Kind::DeadlineExceeded, message)
    }

    /// Keeps `source` as the cause; the text becomes `message: source`.
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Error {
        self.source = Some(Box::new(source));
        self
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// What was wrong, without the source's text or what was appended.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Names the container or process concerned, unless the message already does.
    pub fn context(mut self, what: &str) -> Error {
        if !(self.message.starts_with("container ") || self.message.starts_with("exec ")) {
            self.message = format!("{what}: {}", self.message);
        }
        self
    }

    /// Adds `more` at the end of the text, after the source's.
    pub fn append(mut self, more: &str) -> Error {
        self.tail.push_str(more);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        f.write_str(&self.tail)
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}

impl From<Error> for ttrpc::Error {
    fn from(e: Error) -> Self {
        ttrpc::Error::RpcStatus(ttrpc::get_status(e.kind.code(), e.to_string()))
    }
}

/// What a message is about: `container web`, or `exec e1 of container web` (`exec_id` is
/// empty for the container's init).
pub fn subject(container: &str, exec_id: &str) -> String {
    if exec_id.is_empty() {
        format!("container {container}")
    } else {
        format!("exec {exec_id} of container {container}")
    }
}

/// Shorthand for an internal error caused by an OS error, with what was being done.
pub fn io(context: impl Into<String>, e: impl StdError + Send + Sync + 'static) -> Error {
    Error::internal(context).with_source(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(e: Error) -> (Code, String) {
        match ttrpc::Error::from(e) {
            ttrpc::Error::RpcStatus(s) => (s.code(), s.message().to_string()),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn context_names_the_process_once() {
        let e =
            Error::invalid_argument("unsupported stdio scheme").context("exec e1 of container web");
        assert_eq!(
            e.to_string(),
            "exec e1 of container web: unsupported stdio scheme"
        );
        assert_eq!(e.kind(), Kind::InvalidArgument);
        let named =
            Error::internal("container web: logger not ready").context("exec e1 of container web");
        assert_eq!(named.to_string(), "container web: logger not ready");
    }

    #[test]
    fn the_source_stays_the_cause_and_its_text_follows_the_message() {
        let os = std::io::Error::from_raw_os_error(libc::ENOENT);
        let os_text = os.to_string();
        let e = io("cannot open /dev/null", os).context("container web");
        assert_eq!(e.kind(), Kind::Internal);
        assert_eq!(e.message(), "container web: cannot open /dev/null");
        assert_eq!(
            e.to_string(),
            format!("container web: cannot open /dev/null: {os_text}")
        );
        let cause = e.source().expect("the io::Error is kept");
        let cause = cause
            .downcast_ref::<std::io::Error>()
            .expect("an io::Error");
        assert_eq!(cause.raw_os_error(), Some(libc::ENOENT));
        assert!(Error::internal("x").source().is_none());
    }

    #[test]
    fn a_chain_of_errors_is_walked_through_source() {
        let json = serde_json::from_str::<u32>("nope").unwrap_err();
        let json_text = json.to_string();
        let inner = Error::invalid_argument("bad spec").with_source(json);
        let outer = Error::internal("container web: cannot prepare").with_source(inner);
        let mut chain = Vec::new();
        let mut next: Option<&(dyn StdError + 'static)> = Some(&outer);
        while let Some(e) = next {
            chain.push(e.to_string());
            if e.source().is_none() {
                assert!(
                    e.is::<serde_json::Error>(),
                    "the chain ends at the JSON error"
                );
            }
            next = e.source();
        }
        assert_eq!(
            chain,
            [
                format!("container web: cannot prepare: bad spec: {json_text}"),
                format!("bad spec: {json_text}"),
                json_text,
            ]
        );
    }

    #[test]
    fn appended_text_comes_after_the_source() {
        let e = Error::failed_precondition("exec e1 of container web: cannot run /usr/bin/runc")
            .with_source(std::io::Error::other("gone"))
            .append("; install runc");
        assert_eq!(
            e.to_string(),
            "exec e1 of container web: cannot run /usr/bin/runc: gone; install runc"
        );
        assert_eq!(
            e.message(),
            "exec e1 of container web: cannot run /usr/bin/runc"
        );
        let plain = Error::internal("container web: runc exec failed: setns").append("; a hint");
        assert_eq!(
            plain.to_string(),
            "container web: runc exec failed: setns; a hint"
        );
        // Still named once, and the appended text stays last.
        let named = e.context("container web");
        assert!(
            named.to_string().ends_with(": gone; install runc"),
            "{named}"
        );
        assert!(named.to_string().starts_with("exec e1 of container web: "));
    }

    #[test]
    fn the_status_carries_the_whole_text() {
        let e = Error::not_found("container a: cannot read the cgroup of pid 7")
            .with_source(std::io::Error::other("no such process"))
            .append("; has it exited?");
        assert_eq!(
            status(e),
            (
                Code::NOT_FOUND,
                "container a: cannot read the cgroup of pid 7: no such process; has it exited?"
                    .into()
            )
        );
    }

    #[test]
    fn codes_reach_containerd_as_errdefs_expects() {
        type Make = fn(&'static str) -> Error;
        let cases: [(Make, Kind, Code); 7] = [
            (Error::not_found, Kind::NotFound, Code::NOT_FOUND),
            (
                Error::already_exists,
                Kind::AlreadyExists,
                Code::ALREADY_EXISTS,
            ),
            (
                Error::failed_precondition,
                Kind::FailedPrecondition,
                Code::FAILED_PRECONDITION,
            ),
            (
                Error::invalid_argument,
                Kind::InvalidArgument,
                Code::INVALID_ARGUMENT,
            ),
            (
                Error::unimplemented,
                Kind::Unimplemented,
                Code::UNIMPLEMENTED,
            ),
            (Error::internal, Kind::Internal, Code::UNKNOWN),
            (
                Error::deadline_exceeded,
                Kind::DeadlineExceeded,
                Code::DEADLINE_EXCEEDED,
            ),
        ];
        for (make, kind, code) in cases {
            let e = make("container a: not found");
            assert_eq!(e.kind(), kind);
            assert_eq!(status(e), (code, "container a: not found".to_string()));
            assert_eq!(status(Error::new(kind, "x")).0, code, "{kind:?}");
        }
    }
}
