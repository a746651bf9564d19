//! The kernel's own tables: identity and access, the control plane every service shares.
//!
//! Global: `users`, `sessions`, `orgs`, `plans`. Tenant (walled by `org_id`): `roles`,
//! `memberships`, `invitations`, `api_keys`, `audit_events`. These are what a membership
//! check, an API key, an invitation and a scope-entry audit read and write; a service's
//! own tables go in modules of its own (see [`crate::module`]).
//!
//! Its migrations (`migrations/{postgres,sqlite}/0001_identity.sql` in this crate) create
//! exactly these tables, the plans' seed rows, the documented cross-org reads (PostgreSQL:
//! SELECT policies on `app.user_id` / `app.lookup`; SQLite: the hand-written views) and,
//! on PostgreSQL, the triggers that announce access changes on `orgwall_access`.
//!
//! This module holds the reads the wall itself needs ([`sessions`], [`orgs`]) and the
//! audit log every scope entry writes to ([`audit`]).

pub mod audit;
pub mod orgs;
pub mod sessions;
pub mod users;

use crate::migrate::Migration;
use crate::module::{Cascade, Catalog, Module, Plane};
use orgwall_core::{Error, Result};

/// The kernel's module, always registered first (see [`crate::module::Catalog::new`]).
pub static MODULE: Module = Module {
    name: "tenancy",
    postgres: &[
        Migration {
            version: 1,
            name: "identity",
            sql: include_str!("../../migrations/postgres/0001_identity.sql"),
            plane: Plane::Control,
        },
        Migration {
            version: 2,
            name: "access_generations",
            sql: include_str!("../../migrations/postgres/0002_access_generations.sql"),
            plane: Plane::Control,
        },
        Migration {
            version: 3,
            name: "placements",
            sql: include_str!("../../migrations/postgres/0003_placements.sql"),
            plane: Plane::Control,
        },
        Migration {
            version: 4,
            name: "placement_targets",
            sql: include_str!("../../migrations/postgres/0004_placement_targets.sql"),
            plane: Plane::Control,
        },
        Migration {
            version: 5,
            name: "placement_rules",
            sql: include_str!("../../migrations/postgres/0005_placement_rules.sql"),
            plane: Plane::Control,
        },
        Migration {
            version: 6,
            name: "placement_moves",
            sql: include_str!("../../migrations/postgres/0006_placement_moves.sql"),
            plane: Plane::Control,
        },
        Migration {
            version: 7,
            name: "target_budgets",
            sql: include_str!("../../migrations/postgres/0007_target_budgets.sql"),
            plane: Plane::Control,
        },
        Migration {
            version: 8,
            name: "access_mirror",
            sql: include_str!("../../migrations/postgres/0008_access_mirror.sql"),
            plane: Plane::Control,
        },
    ],
    sqlite: &[
        Migration {
            version: 1,
            name: "identity",
            sql: include_str!("../../migrations/sqlite/0001_identity.sql"),
            plane: Plane::Control,
        },
        Migration {
            version: 2,
            name: "access_generations",
            sql: include_str!("../../migrations/sqlite/0002_access_generations.sql"),
            plane: Plane::Control,
        },
        Migration {
            version: 3,
            name: "placements",
            sql: include_str!("../../migrations/sqlite/0003_placements.sql"),
            plane: Plane::Control,
        },
        Migration {
            version: 4,
            name: "placement_targets",
            sql: include_str!("../../migrations/sqlite/0004_placement_targets.sql"),
            plane: Plane::Control,
        },
        Migration {
            version: 5,
            name: "placement_rules",
            sql: include_str!("../../migrations/sqlite/0005_placement_rules.sql"),
            plane: Plane::Control,
        },
        Migration {
            version: 6,
            name: "placement_moves",
            sql: include_str!("../../migrations/sqlite/0006_placement_moves.sql"),
            plane: Plane::Control,
        },
        Migration {
            version: 7,
            name: "target_budgets",
            sql: include_str!("../../migrations/sqlite/0007_target_budgets.sql"),
            plane: Plane::Control,
        },
    ],
    tenant_tables: &[
        "roles",
        "memberships",
        "invitations",
        "api_keys",
        "audit_events",
    ],
    derived_tables: &[],
    global_tables: &[
        "users",
        "sessions",
        "orgs",
        "plans",
        "access_generations",
        "placements",
        "placement_rules",
        // Private to the owner (credentials): no privilege of the server role
        // (crate::placement::PRIVATE_TABLES).
        "placement_targets",
        // Private too: the running moves (PostgreSQL).
        "placement_moves",
    ],
    system_tables: &[],
    cross_org_indexes: &[
        ("memberships", "user_id"),
        ("invitations", "token_hash"),
        ("api_keys", "key_hash"),
    ],
    cascades: NO_CASCADES,
    permissions: orgwall_core::perm::KERNEL_PERMISSIONS,
    error_codes: &[
        ("unauthenticated", 401),
        ("invitation_invalid", 404),
        ("invitation_expired", 410),
        ("invitation_email_mismatch", 403),
        ("email_unverified", 403),
        ("quota_exceeded", 403),
        ("owner_required", 403),
        ("cannot_act_on_owner", 403),
        ("grant_exceeds_own", 403),
        ("system_role_immutable", 403),
    ],
};

const NO_CASCADES: &[Cascade] = &[];

impl Catalog {
    /// The kernel's own module alone; add a service's modules with [`Catalog::with`].
    pub fn new() -> Self {
        Catalog::empty().with(&MODULE)
    }
}

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
