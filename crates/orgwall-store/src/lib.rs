//! # orgwall-store: tenant-scoped storage on PostgreSQL and SQLite
//!
//! - [`access`]: the only constructors of [`access::OrgScope`] (membership verification,
//!   org creation, named and audited system scopes) and the documented cross-org reads;
//! - [`db`]: [`Db`], [`Tx`] and [`TenantTx`], one API over both backends, every
//!   transaction stating its scope to the database first;
//! - [`repo`]: repositories (see there for **how to add a tenant table**);
//! - [`migrate`] and [`doctor`]: the schema and its checker;
//! - [`seed`]: demo data; [`crypto`]: password hashing and tokens.
//!
//! The database wall differs per backend: forced row-level security on PostgreSQL
//! (module `pg`), scoped views, guard triggers and an authorizer on SQLite (module
//! `sqlite`). Both stand without the repositories: raw SQL through a tenant
//! transaction sees and touches only its org.
#![forbid(unsafe_code)]

pub mod access;
pub mod crypto;
pub mod db;
pub mod doctor;
pub mod files;
pub mod jobs;
pub mod migrate;
mod pg;
pub mod quota;
pub mod repo;
pub mod seed;
mod sqlite;
pub mod value;

pub use db::{BackendKind, Db, DbConfig, Mode, TenantTx, Tx};
pub use value::{FromVal, Row, Val};
