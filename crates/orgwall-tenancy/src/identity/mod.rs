//! The kernel's own tables: identity and access, the control plane every service shares.
//!
//! Global: `users`, `sessions`, `orgs`, `plans`. Tenant (walled by `org_id`): `roles`,
//! `memberships`, `invitations`, `api_keys`, `audit_events`. These are what a membership
//! check, an API key, an invitation and a scope-entry audit read and write; a service's
//! own tables go in modules of its own (see [`crate::module`]).
//!
//! This module holds the reads the wall itself needs ([`sessions`], [`orgs`]) and the
//! audit log every scope entry writes to ([`audit`]).

pub mod audit;
pub mod orgs;
pub mod sessions;

use crate::module::{Cascade, Module};
use orgwall_core::{Error, Result};

/// The kernel's module, always registered first (see [`crate::module::Catalog::new`]).
pub static MODULE: Module = Module {
    name: "tenancy",
    postgres: &[],
    sqlite: &[],
    tenant_tables: &[
        "roles",
        "memberships",
        "invitations",
        "api_keys",
        "audit_events",
    ],
    global_tables: &["users", "sessions", "orgs", "plans"],
    cross_org_indexes: &[
        ("memberships", "user_id"),
        ("invitations", "token_hash"),
        ("api_keys", "key_hash"),
    ],
    cascades: NO_CASCADES,
};

const NO_CASCADES: &[Cascade] = &[];

/// Checks a required one-line text field (a name, a title): no control characters
/// ([`orgwall_core::text::check_line`]), 1 to `max` characters after trimming.
pub fn text(field: &str, value: &str, max: usize) -> Result<String> {
    orgwall_core::text::check_line(value).map_err(|e| Error::Validation(format!("{field} {e}")))?;
    let v = value.trim();
    if v.is_empty() || v.chars().count() > max {
        return Err(Error::Validation(format!(
            "{field} must be 1-{max} characters"
        )));
    }
    Ok(v.to_owned())
}

/// Checks a required long text field (a comment): the long-text rule, 1 to `max`
/// characters after trimming.
pub fn required_long_text(field: &str, value: &str, max: usize) -> Result<String> {
    if value.trim().is_empty() {
        return Err(Error::Validation(format!(
            "{field} must be 1-{max} characters"
        )));
    }
    long_text(field, value.trim(), max)
}

/// Checks an optional long text field: no control characters but tab, LF and CR
/// ([`orgwall_core::text::check_long_text`]), at most `max` characters.
pub fn long_text(field: &str, value: &str, max: usize) -> Result<String> {
    orgwall_core::text::check_long_text(value)
        .map_err(|e| Error::Validation(format!("{field} {e}")))?;
    if value.chars().count() > max {
        return Err(Error::Validation(format!(
            "{field} must be at most {max} characters"
        )));
    }
    Ok(value.to_owned())
}
