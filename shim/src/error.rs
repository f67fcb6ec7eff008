//! The shim's error type and how each kind reaches containerd.
//!
//! containerd turns ttrpc status codes back into its `errdefs` errors, so the code decides what
//! `ctr` and the kubelet see ("not found", "already exists", ...). Every message names the
//! container or process it concerns.

use containerd_shim::protos::ttrpc::{self, Code};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Unimplemented(String),
    #[error("{0}")]
    Internal(String),
    #[error("{0}")]
    DeadlineExceeded(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Names the container or process concerned, unless the message already does.
    pub fn context(self, what: &str) -> Error {
        let prefix = |m: String| {
            if m.starts_with("container ") || m.starts_with("exec ") {
                m
            } else {
                format!("{what}: {m}")
            }
        };
        match self {
            Error::NotFound(m) => Error::NotFound(prefix(m)),
            Error::AlreadyExists(m) => Error::AlreadyExists(prefix(m)),
            Error::FailedPrecondition(m) => Error::FailedPrecondition(prefix(m)),
            Error::InvalidArgument(m) => Error::InvalidArgument(prefix(m)),
            Error::Unimplemented(m) => Error::Unimplemented(prefix(m)),
            Error::Internal(m) => Error::Internal(prefix(m)),
            Error::DeadlineExceeded(m) => Error::DeadlineExceeded(prefix(m)),
        }
    }

    /// Adds `more` at the end of the message.
    pub fn append(self, more: &str) -> Error {
        match self {
            Error::NotFound(m) => Error::NotFound(m + more),
            Error::AlreadyExists(m) => Error::AlreadyExists(m + more),
            Error::FailedPrecondition(m) => Error::FailedPrecondition(m + more),
            Error::InvalidArgument(m) => Error::InvalidArgument(m + more),
            Error::Unimplemented(m) => Error::Unimplemented(m + more),
            Error::Internal(m) => Error::Internal(m + more),
            Error::DeadlineExceeded(m) => Error::DeadlineExceeded(m + more),
        }
    }

    fn code(&self) -> Code {
        match self {
            Error::NotFound(_) => Code::NOT_FOUND,
            Error::AlreadyExists(_) => Code::ALREADY_EXISTS,
            Error::FailedPrecondition(_) => Code::FAILED_PRECONDITION,
            Error::InvalidArgument(_) => Code::INVALID_ARGUMENT,
            Error::Unimplemented(_) => Code::UNIMPLEMENTED,
            Error::Internal(_) => Code::UNKNOWN,
            Error::DeadlineExceeded(_) => Code::DEADLINE_EXCEEDED,
        }
    }
}

impl From<Error> for ttrpc::Error {
    fn from(e: Error) -> Self {
        ttrpc::Error::RpcStatus(ttrpc::get_status(e.code(), e.to_string()))
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

/// Shorthand for an internal error that wraps an OS error with what was being done.
pub fn io(context: impl std::fmt::Display, e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("{context}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_names_the_process_once() {
        let e = Error::InvalidArgument("unsupported stdio scheme".into())
            .context("exec e1 of container web");
        assert_eq!(
            e.to_string(),
            "exec e1 of container web: unsupported stdio scheme"
        );
        assert!(matches!(e, Error::InvalidArgument(_)));
        let named = Error::Internal("container web: logger not ready".into())
            .context("exec e1 of container web");
        assert_eq!(named.to_string(), "container web: logger not ready");
    }

    #[test]
    fn codes_reach_containerd_as_errdefs_expects() {
        let status = |e: Error| match ttrpc::Error::from(e) {
            ttrpc::Error::RpcStatus(s) => (s.code(), s.message().to_string()),
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(
            status(Error::NotFound("container a: not found".into())),
            (Code::NOT_FOUND, "container a: not found".into())
        );
        assert_eq!(
            status(Error::Unimplemented("x".into())).0,
            Code::UNIMPLEMENTED
        );
        assert_eq!(
            status(Error::AlreadyExists("x".into())).0,
            Code::ALREADY_EXISTS
        );
        assert_eq!(
            status(Error::FailedPrecondition("x".into())).0,
            Code::FAILED_PRECONDITION
        );
        assert_eq!(
            status(Error::InvalidArgument("x".into())).0,
            Code::INVALID_ARGUMENT
        );
        assert_eq!(
            status(Error::DeadlineExceeded("x".into())).0,
            Code::DEADLINE_EXCEEDED
        );
    }
}
