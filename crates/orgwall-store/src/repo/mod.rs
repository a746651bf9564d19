//! Repositories: one module per table (or aggregate).
//!
//! Tenant repositories take a [`crate::TenantTx`] and bind `org_id` from
//! [`crate::TenantTx::org_id`], never from input. Global repositories (users, orgs) take
//! the [`crate::Db`].
//!
//! ## Adding a tenant table
//!
//! 1. Write a migration for each backend: on PostgreSQL `CREATE TABLE widgets (org_id uuid
//!    NOT NULL REFERENCES orgs (id) ON DELETE CASCADE, id uuid NOT NULL, ..., PRIMARY KEY
//!    (org_id, id))`, composite foreign keys `(org_id, x_id) REFERENCES x (org_id, id)`,
//!    indexes leading with `org_id`; on SQLite the same table named `widgets_rows`.
//! 2. Run `orgwall migrate`: the runner enables and forces row-level security with the
//!    `org_isolation` policy and grants the server role (PostgreSQL), or generates the
//!    scoped view `widgets`, its `INSTEAD OF` triggers and the guard triggers (SQLite).
//! 3. Write `repo/widgets.rs` with functions taking `&mut TenantTx` and using
//!    `tx.org_id()` for `org_id`. Queries name `widgets` on both backends.
//! 4. Run `orgwall doctor`: it fails, naming the rule, if any wall is missing.

pub mod api_keys;
pub use orgwall_tenancy::identity::audit;
pub mod comments;
pub mod exports;
pub mod files;
pub mod invitations;
pub mod memberships;
pub mod notes;
pub use orgwall_tenancy::identity::orgs;
pub mod outbox;
pub mod projects;
pub mod roles;
mod search;
pub use orgwall_tenancy::identity::sessions;
pub mod stats;
pub mod tickets;
pub mod users;
pub mod verifications;

pub(crate) use orgwall_tenancy::identity::{long_text, required_long_text, text};
