//! The domain error. Storage returns it; the HTTP layer maps it to problem+json in one place.

use std::fmt;

/// A result with the domain [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in terms a client can be told (except [`Error::Internal`], whose
/// detail stays in the log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The named resource does not exist in the caller's scope (also: exists elsewhere).
    #[error("not found")]
    NotFound,
    /// A uniqueness or state conflict; the string is a stable machine code.
    #[error("conflict: {0}")]
    Conflict(&'static str, String),
    /// A rule of the domain refused the request; the string is a stable machine code
    /// (e.g. `invitation_expired`, `last_owner`), mapped to a status in one table.
    #[error("{1}")]
    Refused(&'static str, String),
    /// Input that parsed but breaks a rule.
    #[error("validation failed: {0}")]
    Validation(String),
    /// The caller is not a member of the claimed organization (or it does not exist).
    #[error("not a member of this organization")]
    NotAMember,
    /// The caller lacks a permission.
    #[error("permission denied: {0} is required")]
    PermissionDenied(crate::Permission),
    /// A statement tried to cross the tenant wall (database guard fired).
    #[error("tenant scope violation")]
    ScopeViolation,
    /// The database is unreachable or misconfigured.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else; the detail is for the log only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Wraps any displayable error as [`Error::Internal`].
    pub fn internal(e: impl fmt::Display) -> Self {
        Error::Internal(e.to_string())
    }
}
