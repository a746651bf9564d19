//! # orgwall-store: orgwall's product storage, built on the `orgwall-tenancy` kernel
//!
//! orgwall's own product registers with the kernel exactly as an outside service does:
//! [`MODULE`] declares its migrations, tenant and global tables, cross-org indexes and
//! cascades, and [`catalog`] is the kernel's catalog with it.
//!
//! - [`repo`]: repositories (see there for **how to add a tenant table**);
//! - [`jobs`]: the job queue, the worker, email, the org purge and exports;
//! - [`files`]: blob stores (local directory, S3-compatible);
//! - [`quota`]: plan quotas; [`seed`]: demo data.
//!
//! The kernel's modules are re-exported under their old names ([`access`], [`db`],
//! [`doctor`], [`migrate`], [`value`], [`crypto`]) for the layers above.
#![forbid(unsafe_code)]

pub use orgwall_tenancy::{access, crypto, db, doctor, migrate, value};

pub mod files;
pub mod jobs;
pub mod quota;
pub mod repo;
pub mod seed;

pub use orgwall_tenancy::{params, BackendKind, Catalog, Db, DbConfig, Mode, TenantTx, Tx};
pub use orgwall_tenancy::{FromVal, Row, Val};

use orgwall_tenancy::migrate::Migration;
pub use orgwall_tenancy::{Cascade, Module};

/// orgwall's product: accounts, the ticket workspace, files, jobs, email and exports.
pub static MODULE: Module = Module {
    name: "orgwall",
    postgres: &[
        Migration {
            version: 1,
            name: "init",
            sql: include_str!("../migrations/postgres/0001_init.sql"),
        },
        Migration {
            version: 2,
            name: "search",
            sql: include_str!("../migrations/postgres/0002_search.sql"),
        },
        Migration {
            version: 3,
            name: "plans_limits",
            sql: include_str!("../migrations/postgres/0003_plans_limits.sql"),
        },
        Migration {
            version: 4,
            name: "jobs",
            sql: include_str!("../migrations/postgres/0004_jobs.sql"),
        },
        Migration {
            version: 5,
            name: "export_expiry",
            sql: include_str!("../migrations/postgres/0005_export_expiry.sql"),
        },
        Migration {
            version: 6,
            name: "access_notify",
            sql: include_str!("../migrations/postgres/0006_access_notify.sql"),
        },
    ],
    sqlite: &[
        Migration {
            version: 1,
            name: "init",
            sql: include_str!("../migrations/sqlite/0001_init.sql"),
        },
        Migration {
            version: 2,
            name: "search",
            sql: include_str!("../migrations/sqlite/0002_search.sql"),
        },
        Migration {
            version: 3,
            name: "plans_limits",
            sql: include_str!("../migrations/sqlite/0003_plans_limits.sql"),
        },
        Migration {
            version: 4,
            name: "jobs",
            sql: include_str!("../migrations/sqlite/0004_jobs.sql"),
        },
        Migration {
            version: 5,
            name: "export_expiry",
            sql: include_str!("../migrations/sqlite/0005_export_expiry.sql"),
        },
    ],
    tenant_tables: &[
        "projects",
        "tickets",
        "ticket_events",
        "ticket_comments",
        "notes",
        "files",
        "exports",
    ],
    global_tables: &["email_verifications", "jobs", "job_queues", "outbox"],
    cross_org_indexes: &[],
    cascades: &[
        Cascade {
            parent: "projects",
            child: "tickets",
            column: "project_id",
        },
        Cascade {
            parent: "tickets",
            child: "ticket_comments",
            column: "ticket_id",
        },
        Cascade {
            parent: "tickets",
            child: "ticket_events",
            column: "ticket_id",
        },
    ],
};

/// The kernel's catalog with orgwall's product registered.
pub fn catalog() -> Catalog {
    Catalog::new().with(&MODULE)
}
