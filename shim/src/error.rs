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
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    fn code(&self) -> Code {
        match self {
            Error::NotFound(_) => Code::NOT_FOUND,
            Error::AlreadyExists(_) => Code::ALREADY_EXISTS,
            Error::FailedPrecondition(_) => Code::FAILED_PRECONDITION,
            Error::InvalidArgument(_) => Code::INVALID_ARGUMENT,
            Error::Unimplemented(_) => Code::UNIMPLEMENTED,
            Error::Internal(_) => Code::UNKNOWN,
        }
    }
}

impl From<Error> for ttrpc::Error {
    fn from(e: Error) -> Self {
        ttrpc::Error::RpcStatus(ttrpc::get_status(e.code(), e.to_string()))
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
    }
}
