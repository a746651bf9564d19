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

pub use orgwall_tenancy::{access, ahead, crypto, db, doctor, migrate, placement, value};

pub mod files;
pub mod jobs;
pub mod perms;
pub mod quota;
pub mod repo;
pub mod seed;

pub use orgwall_tenancy::{params, BackendKind, Catalog, Db, DbConfig, Mode, TenantTx, Tx};
pub use orgwall_tenancy::{FromVal, Row, Val};

use orgwall_tenancy::migrate::Migration;
pub use orgwall_tenancy::{Cascade, Module, Plane};

/// orgwall's product: accounts, the ticket workspace, files, jobs, email and exports.
pub static MODULE: Module = Module {
    name: "orgwall",
    postgres: &[
        Migration {
            version: 1,
            name: "accounts",
            sql: include_str!("../migrations/postgres/0001_accounts.sql"),
            plane: Plane::Control,
        },
        Migration {
            version: 2,
            name: "workspace",
            sql: include_str!("../migrations/postgres/0002_workspace.sql"),
            plane: Plane::Data,
        },
        Migration {
            version: 3,
            name: "search",
            sql: include_str!("../migrations/postgres/0003_search.sql"),
            plane: Plane::Data,
        },
        Migration {
            version: 4,
            name: "jobs",
            sql: include_str!("../migrations/postgres/0004_jobs.sql"),
            plane: Plane::Control,
        },
        Migration {
            version: 5,
            name: "exports",
            sql: include_str!("../migrations/postgres/0005_exports.sql"),
            plane: Plane::Data,
        },
        Migration {
            version: 6,
            name: "search_terms",
            sql: include_str!("../migrations/postgres/0006_search_terms.sql"),
            plane: Plane::Data,
        },
        Migration {
            version: 7,
            name: "job_queues_wall",
            sql: include_str!("../migrations/postgres/0007_job_queues_wall.sql"),
            plane: Plane::Control,
        },
        Migration {
            version: 8,
            name: "usage_counters",
            sql: include_str!("../migrations/postgres/0008_usage_counters.sql"),
            plane: Plane::Data,
        },
        Migration {
            version: 9,
            name: "search_without_gin",
            sql: include_str!("../migrations/postgres/0009_search_without_gin.sql"),
            plane: Plane::Data,
        },
    ],
    sqlite: &[
        Migration {
            version: 1,
            name: "accounts",
            sql: include_str!("../migrations/sqlite/0001_accounts.sql"),
            plane: Plane::Control,
        },
        Migration {
            version: 2,
            name: "workspace",
            sql: include_str!("../migrations/sqlite/0002_workspace.sql"),
            plane: Plane::Data,
        },
        Migration {
            version: 3,
            name: "search",
            sql: include_str!("../migrations/sqlite/0003_search.sql"),
            plane: Plane::Data,
        },
        Migration {
            version: 4,
            name: "jobs",
            sql: include_str!("../migrations/sqlite/0004_jobs.sql"),
            plane: Plane::Control,
        },
        Migration {
            version: 5,
            name: "exports",
            sql: include_str!("../migrations/sqlite/0005_exports.sql"),
            plane: Plane::Data,
        },
        Migration {
            version: 6,
            name: "system_walls",
            sql: include_str!("../migrations/sqlite/0006_system_walls.sql"),
            plane: Plane::Control,
        },
        Migration {
            version: 7,
            name: "search_terms",
            sql: include_str!("../migrations/sqlite/0007_search_terms.sql"),
            plane: Plane::Data,
        },
        Migration {
            version: 8,
            name: "job_queues_wall",
            sql: include_str!("../migrations/sqlite/0008_job_queues_wall.sql"),
            plane: Plane::Control,
        },
        Migration {
            version: 9,
            name: "usage_counters",
            sql: include_str!("../migrations/sqlite/0009_usage_counters.sql"),
            plane: Plane::Data,
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
        "ticket_terms",
        "note_terms",
        "org_usage",
    ],
    // The search terms (PostgreSQL's inverted index under row-level security, migration
    // 0006) and the usage counters (0008): kept by triggers, not exported.
    derived_tables: &["ticket_terms", "note_terms", "org_usage"],
    global_tables: &["email_verifications", "job_queues"],
    system_tables: &[jobs::SYSTEM_TABLE, repo::outbox::SYSTEM_TABLE],
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
        Cascade {
            parent: "tickets",
            child: "ticket_terms",
            column: "id",
        },
        Cascade {
            parent: "notes",
            child: "note_terms",
            column: "id",
        },
    ],
    permissions: perms::DEFINITIONS,
    error_codes: &[
        ("invalid_transition", 422),
        ("assignee_not_member", 422),
        ("verification_invalid", 404),
        ("verification_expired", 410),
        ("export_expired", 410),
    ],
};

/// The kernel's catalog with orgwall's product registered.
pub fn catalog() -> Catalog {
    Catalog::new().with(&MODULE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The tables a migration list creates (`CREATE TABLE <name>`, not virtual tables),
    /// by logical name (`<t>_rows` is `<t>` on SQLite).
    fn created(migrations: &[Migration], sqlite: bool) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for m in migrations {
            let mut rest = m.sql;
            while let Some(at) = rest.find("CREATE TABLE ") {
                rest = &rest[at + "CREATE TABLE ".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let name = match name.strip_suffix("_rows") {
                    Some(t) if sqlite => t.to_owned(),
                    _ => name,
                };
                names.insert(name);
            }
        }
        names
    }

    #[test]
    fn each_module_creates_exactly_the_tables_it_declares() {
        for m in catalog().modules() {
            let declared: BTreeSet<String> = m
                .tenant_tables
                .iter()
                .chain(m.global_tables)
                .chain(m.system_tables)
                .map(|t| (*t).to_owned())
                .collect();
            assert_eq!(
                created(m.postgres, false),
                declared,
                "module {} (PostgreSQL)",
                m.name
            );
            assert_eq!(
                created(m.sqlite, true),
                declared,
                "module {} (SQLite)",
                m.name
            );
        }
    }

    #[test]
    fn derived_tables_are_tenant_tables() {
        for m in catalog().modules() {
            for t in m.derived_tables {
                assert!(m.tenant_tables.contains(t), "module {}: {t}", m.name);
            }
        }
    }

    #[test]
    fn versions_are_contiguous() {
        for m in catalog().modules() {
            for set in [m.postgres, m.sqlite] {
                for (i, mig) in set.iter().enumerate() {
                    assert_eq!(mig.version, i as i64 + 1, "module {}", m.name);
                }
            }
        }
    }
}
