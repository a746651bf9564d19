//! Migrations, per backend, and the database wall applied on top of them.
//!
//! Each backend has its own numbered SQL files under `migrations/<backend>/`. `migrate`
//! runs as the owner, in one transaction (all pending migrations apply, or none), under a
//! lock so two processes cannot migrate at once. It refuses a database whose recorded
//! version is newer than this binary, or whose applied migrations were edited.
//!
//! After the files, the runner (re)asserts the database wall on **every** tenant table,
//! so a table added by a later migration inherits it without writing it out:
//! - PostgreSQL: `ENABLE` and `FORCE ROW LEVEL SECURITY`, the `org_isolation` policy,
//!   the NOLOGIN server role (created if missing) and its grants;
//! - SQLite: for each `<t>_rows` base table, the scoped view `<t>` (unless the migration
//!   wrote its own), its `INSTEAD OF` triggers and the guard triggers.
//!
//! `orgwall doctor` then checks the result (see [`crate::doctor`]).

use crate::doctor::GLOBAL_TABLES;
use orgwall_core::{Error, Result};
use sha2::{Digest, Sha256};

/// One migration file.
pub struct Migration {
    /// Its number (from 1, no gaps).
    pub version: i64,
    /// Its name.
    pub name: &'static str,
    /// Its SQL.
    pub sql: &'static str,
}

/// PostgreSQL migrations.
pub const POSTGRES: &[Migration] = &[
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
];

/// SQLite migrations.
pub const SQLITE: &[Migration] = &[
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
];

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Versions applied by this run.
    pub applied: Vec<i64>,
    /// The schema version after the run.
    pub version: i64,
}

/// The policy expression: an unset `app.org_id` is NULL, which matches no row.
pub const ORG_PREDICATE: &str =
    "org_id = (SELECT nullif(current_setting('app.org_id', true), '')::uuid)";

fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

/// Decides what to apply given what is recorded.
fn plan<'m>(known: &'m [Migration], applied: &[(i64, String)]) -> Result<Vec<&'m Migration>> {
    let latest = known.last().map_or(0, |m| m.version);
    for (version, sum) in applied {
        if *version > latest {
            return Err(Error::Validation(format!(
                "database schema is at version {version}, newer than this orgwall supports ({latest}); upgrade orgwall"
            )));
        }
        if let Some(m) = known.iter().find(|m| m.version == *version) {
            if checksum(m.sql) != *sum {
                return Err(Error::Validation(format!(
                    "migration {version} ({}) was changed after it was applied",
                    m.name
                )));
            }
        }
    }
    Ok(known
        .iter()
        .filter(|m| !applied.iter().any(|(v, _)| *v == m.version))
        .collect())
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Runs PostgreSQL migrations as the connected login.
pub(crate) async fn postgres(
    client: &mut tokio_postgres::Client,
    app_role: &str,
) -> Result<Report> {
    use crate::pg::map_err;
    crate::pg::check_role_name(app_role)?;
    let tx = client.transaction().await.map_err(map_err)?;
    tx.batch_execute(
        "SELECT pg_advisory_xact_lock(7270001);
         CREATE TABLE IF NOT EXISTS schema_migrations (
             version bigint PRIMARY KEY,
             name text NOT NULL,
             checksum text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .map_err(map_err)?;
    let applied: Vec<(i64, String)> = tx
        .query(
            "SELECT version, checksum FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let todo = plan(POSTGRES, &applied)?;
    let mut report = Report {
        applied: Vec::new(),
        version: applied.iter().map(|(v, _)| *v).max().unwrap_or(0),
    };
    for m in todo {
        tx.batch_execute(m.sql).await.map_err(|e| {
            Error::Internal(format!(
                "migration {} ({}) failed: {}",
                m.version,
                m.name,
                map_err(e)
            ))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            &[&m.version, &m.name, &checksum(m.sql)],
        )
        .await
        .map_err(map_err)?;
        report.applied.push(m.version);
        report.version = m.version;
    }

    // The server role: NOLOGIN, no superuser, no BYPASSRLS, owns nothing. Roles are
    // cluster-wide, so another database may create it concurrently: tolerate that.
    let role = app_role;
    tx.batch_execute(&format!(
        "DO $$ BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
                CREATE ROLE {role} NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
            END IF;
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
         END $$;
         DO $$ BEGIN
            IF NOT pg_has_role(current_user, '{role}', 'MEMBER') THEN
                EXECUTE 'GRANT {role} TO ' || quote_ident(current_user);
            END IF;
         END $$;"
    ))
    .await
    .map_err(map_err)?;

    let tenant_tables: Vec<String> = tx
        .query(
            "SELECT c.relname::text FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
               AND NOT (c.relname = ANY($1))
               AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                           AND a.attname = 'org_id' AND NOT a.attisdropped)
             ORDER BY 1",
            &[&GLOBAL_TABLES],
        )
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for t in &tenant_tables {
        let q = quote_ident(t);
        let has_policy = !tx
            .query(
                "SELECT 1 FROM pg_policies WHERE schemaname = current_schema()
                 AND tablename = $1 AND policyname = 'org_isolation'",
                &[t],
            )
            .await
            .map_err(map_err)?
            .is_empty();
        let mut sql = format!(
            "ALTER TABLE {q} ENABLE ROW LEVEL SECURITY; ALTER TABLE {q} FORCE ROW LEVEL SECURITY;"
        );
        if !has_policy {
            sql.push_str(&format!(
                "CREATE POLICY org_isolation ON {q} USING ({ORG_PREDICATE}) WITH CHECK ({ORG_PREDICATE});"
            ));
        }
        tx.batch_execute(&sql).await.map_err(map_err)?;
    }
    tx.batch_execute(&format!(
        "DO $$ BEGIN EXECUTE 'GRANT USAGE ON SCHEMA ' || quote_ident(current_schema()) || ' TO {role}';
           EXECUTE 'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ' || quote_ident(current_schema()) || ' TO {role}';
         END $$;
         REVOKE ALL ON schema_migrations FROM {role};"
    ))
    .await
    .map_err(map_err)?;
    tx.commit().await.map_err(map_err)?;
    Ok(report)
}

/// Runs SQLite migrations on an owner connection (no authorizer).
pub(crate) fn sqlite(conn: &mut rusqlite::Connection) -> Result<Report> {
    let e = |e: rusqlite::Error| Error::Internal(format!("sqlite migration: {e}"));
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(|err| Error::Unavailable(format!("cannot lock the SQLite database: {err}")))?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER PRIMARY KEY,
             name TEXT NOT NULL,
             checksum TEXT NOT NULL,
             applied_at INTEGER NOT NULL)",
    )
    .map_err(e)?;
    let applied: Vec<(i64, String)> = {
        let mut st = tx
            .prepare("SELECT version, checksum FROM schema_migrations ORDER BY version")
            .map_err(e)?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(e)?;
        rows.collect::<rusqlite::Result<_>>().map_err(e)?
    };
    let todo = plan(SQLITE, &applied)?;
    let mut report = Report {
        applied: Vec::new(),
        version: applied.iter().map(|(v, _)| *v).max().unwrap_or(0),
    };
    for m in todo {
        tx.execute_batch(m.sql).map_err(|err| {
            Error::Internal(format!(
                "migration {} ({}) failed: {err}",
                m.version, m.name
            ))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![m.version, m.name, checksum(m.sql), crate::value::now().timestamp_micros()],
        )
        .map_err(e)?;
        report.applied.push(m.version);
        report.version = m.version;
    }
    sqlite_walls(&tx).map_err(e)?;
    tx.commit().map_err(e)?;
    Ok(report)
}

struct Column {
    name: String,
    default: Option<String>,
    pk: i64,
}

/// Generates, for every `<t>_rows` table, the scoped view, its INSTEAD OF triggers and the
/// guard triggers. Idempotent: triggers are recreated from the current columns.
fn sqlite_walls(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    let bases: Vec<String> = {
        let mut st = tx.prepare(
            // Virtual tables (the FTS5 indexes `<t>_fts_rows`) are skipped: they cannot carry
            // triggers; their migration writes their view and sync triggers (see the doctor).
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '%\\_rows' ESCAPE '\\'
               AND sql NOT LIKE 'CREATE VIRTUAL TABLE%' ORDER BY name",
        )?;
        let rows = st.query_map([], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for base in bases {
        let view = base.trim_end_matches("_rows").to_owned();
        let cols: Vec<Column> = {
            let mut st = tx.prepare("SELECT name, dflt_value, pk FROM pragma_table_info(?1)")?;
            let rows = st.query_map([&base], |r| {
                Ok(Column {
                    name: r.get(0)?,
                    default: r.get(1)?,
                    pk: r.get(2)?,
                })
            })?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let has_org = cols.iter().any(|c| c.name == "org_id");
        if !has_org {
            continue; // the doctor reports it
        }
        let (qb, qv) = (quote_ident(&base), quote_ident(&view));
        let view_exists: bool = tx.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'view' AND name = ?1",
            [&view],
            |r| r.get::<_, i64>(0).map(|n| n > 0),
        )?;
        if !view_exists {
            tx.execute_batch(&format!(
                "CREATE VIEW {qv} AS SELECT * FROM {qb} WHERE org_id = app_org();"
            ))?;
        }
        let names: Vec<String> = cols.iter().map(|c| quote_ident(&c.name)).collect();
        let values: Vec<String> = cols
            .iter()
            .map(|c| match &c.default {
                Some(d) => format!("coalesce(NEW.{}, {d})", quote_ident(&c.name)),
                None => format!("NEW.{}", quote_ident(&c.name)),
            })
            .collect();
        let sets: Vec<String> = names.iter().map(|n| format!("{n} = NEW.{n}")).collect();
        let mut pk: Vec<&Column> = cols.iter().filter(|c| c.pk > 0).collect();
        pk.sort_by_key(|c| c.pk);
        let key: Vec<String> = pk
            .iter()
            .map(|c| format!("{0} = OLD.{0}", quote_ident(&c.name)))
            .collect();
        let key = key.join(" AND ");
        let t = |suffix: &str| quote_ident(&format!("{view}_{suffix}"));
        let g = |suffix: &str| quote_ident(&format!("orgwall_guard_{base}_{suffix}"));
        let raise = format!("SELECT RAISE(ABORT, '{}')", crate::sqlite::GUARD_MESSAGE);
        tx.execute_batch(&format!(
            "DROP TRIGGER IF EXISTS {ins}; DROP TRIGGER IF EXISTS {upd}; DROP TRIGGER IF EXISTS {del};
             DROP TRIGGER IF EXISTS {gi}; DROP TRIGGER IF EXISTS {gu}; DROP TRIGGER IF EXISTS {gd};
             CREATE TRIGGER {ins} INSTEAD OF INSERT ON {qv} BEGIN
                 INSERT INTO {qb} ({cols}) VALUES ({vals}); END;
             CREATE TRIGGER {upd} INSTEAD OF UPDATE ON {qv} BEGIN
                 UPDATE {qb} SET {sets} WHERE {key}; END;
             CREATE TRIGGER {del} INSTEAD OF DELETE ON {qv} BEGIN
                 DELETE FROM {qb} WHERE {key}; END;
             CREATE TRIGGER {gi} BEFORE INSERT ON {qb}
                 WHEN NEW.org_id IS NOT app_org() BEGIN {raise}; END;
             CREATE TRIGGER {gu} BEFORE UPDATE ON {qb}
                 WHEN OLD.org_id IS NOT app_org() OR NEW.org_id IS NOT app_org() BEGIN {raise}; END;
             CREATE TRIGGER {gd} BEFORE DELETE ON {qb}
                 WHEN OLD.org_id IS NOT app_org() BEGIN {raise}; END;",
            ins = t("ins"),
            upd = t("upd"),
            del = t("del"),
            gi = g("ins"),
            gu = g("upd"),
            gd = g("del"),
            cols = names.join(", "),
            vals = values.join(", "),
            sets = sets.join(", "),
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_database_is_refused() {
        let applied = vec![(99, "x".to_string())];
        let err = plan(SQLITE, &applied)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("newer than this orgwall"), "{err}");
    }

    #[test]
    fn edited_migration_is_refused() {
        let applied = vec![(1, "not-the-checksum".to_string())];
        assert!(plan(POSTGRES, &applied).is_err());
    }

    #[test]
    fn versions_are_contiguous() {
        for set in [POSTGRES, SQLITE] {
            for (i, m) in set.iter().enumerate() {
                assert_eq!(m.version, i as i64 + 1);
            }
        }
    }
}
