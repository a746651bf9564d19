//! # orgwall-tenancy: the tenant wall, as a kernel other Rust services build on
//!
//! A multi-tenant service keeps many organizations' rows in one database. This crate makes
//! a cross-organization read or write impossible by construction, in three walls that do
//! not depend on each other or on the service's own code:
//!
//! 1. **Type wall.** Tenant data is reachable only through a [`TenantTx`], which can only
//!    be opened from an [`access::OrgScope`], which only membership verification
//!    ([`access::verify_member`]), an API key ([`access::authenticate_api_key`]), org
//!    creation or a named, audited system entry can construct.
//! 2. **Schema wall.** Every tenant table has `org_id NOT NULL` referencing `orgs`, a key
//!    `(org_id, id)` and composite foreign keys, so no row can point into another org.
//! 3. **Database wall.** PostgreSQL: row-level security enabled and forced on every tenant
//!    table, each transaction switched to a role that owns nothing, its org stated
//!    transaction-locally. SQLite: scoped views, guard triggers and an authorizer.
//!
//! The migration runner applies walls 2 and 3 to every table a module creates, in the
//! same transaction, and [`Db::doctor`] checks them against the live catalog.
//!
//! ## Building a service on it
//!
//! `examples/courses` in the repository is the tutorial: four tenant tables, their routes
//! behind the HTTP guard of `orgwall-tenancy-http`, in a few hundred lines. In short:
//!
//! 1. Describe your tables as a [`module::Module`]: migrations per backend (on SQLite
//!    name tenant tables `<t>_rows`; the runner creates the scoped view `<t>`), the
//!    tenant and global tables, cross-org indexes, cascades between tenant tables.
//! 2. Open the database with a [`module::Catalog`] of your modules
//!    ([`Db::open`]) and call [`Db::migrate`]; [`Db::doctor`] must report nothing.
//! 3. Write repository functions that take `&mut TenantTx` and bind
//!    [`TenantTx::org_id`] for `org_id`; never take an org from input.
//! 4. A repository that writes access data (memberships, roles, API keys, an org's plan)
//!    calls [`Tx::access_changed`] so the access cache forgets it on commit.
//!
//! Tenant SQL stays inside the tenant: a query in a tenant transaction names only tenant
//! tables of its own module or the kernel's; what it needs of the control plane (the
//! org's plan, a user's name) comes in through the scope or a separate global read.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod access;
pub mod ahead;
pub mod crypto;
pub mod db;
pub mod doctor;
pub mod identity;
pub mod migrate;
pub mod module;
pub mod placement;
mod postgres;
pub mod rows;
pub mod scope;
mod settings;
mod sqlite;
pub mod value;

pub use db::{BackendKind, Db, DbConfig, Mode, TenantTx, Tx};
pub use module::{Cascade, Catalog, Module, Plane};
pub use value::{FromVal, Row, Val};
