//! SQLite: the migration runner and the wall it generates (scoped views, `INSTEAD OF`
//! triggers, guard triggers, named cascade triggers).

use crate::migrate::{checksum, plan_all, quote_ident, Report, Side};
use crate::module::{Catalog, Plane};
use orgwall_core::{Error, Result};

/// What a placed file's migration runs first, in its transaction (the members projection
/// of a new file).
pub(crate) type First<'a> = &'a dyn Fn(&rusqlite::Transaction<'_>) -> rusqlite::Result<()>;

/// Runs every registered module's SQLite migrations on an owner connection (no
/// authorizer), then generates the wall, all in one transaction.
pub(crate) fn migrate(conn: &mut rusqlite::Connection, catalog: &Catalog) -> Result<Report> {
    run(conn, catalog, None)
}

/// Brings an org's own file (see `sqlite::placement`) to the current data-plane version:
/// `first`, then the data-plane migrations not applied yet, the walls and the cascades
/// between data-plane tables, in one transaction.
pub(crate) fn migrate_placed(
    conn: &mut rusqlite::Connection,
    catalog: &Catalog,
    first: First<'_>,
) -> Result<()> {
    run(conn, catalog, Some(first)).map(|_| ())
}

fn run(
    conn: &mut rusqlite::Connection,
    catalog: &Catalog,
    placed: Option<First<'_>>,
) -> Result<Report> {
    let e = |e: rusqlite::Error| Error::Internal(format!("sqlite migration: {e}"));
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(|err| Error::Unavailable(format!("cannot lock the SQLite database: {err}")))?;
    if let Some(first) = placed {
        first(&tx).map_err(e)?;
    }
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             module TEXT NOT NULL,
             version INTEGER NOT NULL,
             name TEXT NOT NULL,
             checksum TEXT NOT NULL,
             applied_at INTEGER NOT NULL,
             PRIMARY KEY (module, version))",
    )
    .map_err(e)?;
    let has_module: bool = tx
        .query_row(
            "SELECT count(*) FROM pragma_table_info('schema_migrations') WHERE name = 'module'",
            [],
            |r| r.get::<_, i64>(0).map(|n| n > 0),
        )
        .map_err(e)?;
    if !has_module {
        return Err(crate::migrate::legacy_layout());
    }
    let applied: Vec<(String, i64, String)> = {
        let mut st = tx
            .prepare(
                "SELECT module, version, checksum FROM schema_migrations ORDER BY module, version",
            )
            .map_err(e)?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(e)?;
        rows.collect::<rusqlite::Result<_>>().map_err(e)?
    };
    let mut report = Report::default();
    let todo = plan_all(catalog, Side::Sqlite, &applied, &mut report)?;
    let todo = todo
        .iter()
        .filter(|s| placed.is_none() || s.migration.plane == Plane::Data);
    for step in todo {
        let m = step.migration;
        tx.execute_batch(m.sql).map_err(|err| {
            Error::Internal(format!(
                "module {} migration {} ({}) failed: {err}",
                step.module, m.version, m.name
            ))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (module, version, name, checksum, applied_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![step.module, m.version, m.name, checksum(m.sql), crate::value::now().timestamp_micros()],
        )
        .map_err(e)?;
        report.applied(step);
    }
    walls(&tx, catalog).map_err(e)?;
    cascades(&tx, catalog, placed.is_some()).map_err(e)?;
    tx.commit().map_err(e)?;
    Ok(report)
}

/// Generates the named trigger of every declared cascade: deleting a parent row deletes
/// the child rows of the same org that reference it. (Not a foreign-key action: SQLite
/// runs those as anonymous programs, which the authorizer cannot tell apart from
/// top-level SQL; inside a named trigger every read is attributed to the trigger, and the
/// guard triggers still check every deleted row.)
/// In an org's own file (`placed`) only those between data-plane tables.
fn cascades(
    tx: &rusqlite::Transaction<'_>,
    catalog: &Catalog,
    placed: bool,
) -> rusqlite::Result<()> {
    for c in catalog
        .cascades()
        .filter(|c| !placed || (catalog.is_data(c.parent) && catalog.is_data(c.child)))
    {
        let name = quote_ident(&c.trigger_name());
        let parent = quote_ident(&format!("{}_rows", c.parent));
        let child = quote_ident(&format!("{}_rows", c.child));
        let column = quote_ident(c.column);
        tx.execute_batch(&format!(
            "DROP TRIGGER IF EXISTS {name};
             CREATE TRIGGER {name} AFTER DELETE ON {parent} BEGIN
                 DELETE FROM {child} WHERE org_id = OLD.org_id AND {column} = OLD.id;
             END;"
        ))?;
    }
    Ok(())
}

struct Column {
    name: String,
    default: Option<String>,
    pk: i64,
}

/// Generates, for every `<t>_rows` table, the scoped view, its INSTEAD OF triggers and the
/// guard triggers. Idempotent: triggers are recreated from the current columns.
fn walls(tx: &rusqlite::Transaction<'_>, catalog: &Catalog) -> rusqlite::Result<()> {
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
        // A system table: its named system transaction reaches every row, a tenant only
        // its own org's rows (and may add org-less ones).
        let system = catalog
            .system_table(&view)
            .map(|t| format!("app_system() IS '{}'", t.replace('\'', "''")));
        if !view_exists {
            let filter = match &system {
                Some(sys) => format!("{sys} OR org_id = app_org()"),
                None => "org_id = app_org()".to_owned(),
            };
            tx.execute_batch(&format!(
                "CREATE VIEW {qv} AS SELECT * FROM {qb} WHERE {filter};"
            ))?;
        }
        // CASE, not AND/OR: its branches are evaluated lazily, so an unscoped transaction
        // adding an org-less row never calls app_org() (which raises without a scope).
        let (guard_ins, guard_upd, guard_del) = match &system {
            Some(sys) => (
                format!("CASE WHEN NEW.org_id IS NULL OR {sys} THEN 0 ELSE NEW.org_id IS NOT app_org() END"),
                format!("CASE WHEN {sys} THEN 0 ELSE (OLD.org_id IS NOT app_org() OR NEW.org_id IS NOT app_org()) END"),
                format!("CASE WHEN {sys} THEN 0 ELSE OLD.org_id IS NOT app_org() END"),
            ),
            None => (
                "NEW.org_id IS NOT app_org()".to_owned(),
                "OLD.org_id IS NOT app_org() OR NEW.org_id IS NOT app_org()".to_owned(),
                "OLD.org_id IS NOT app_org()".to_owned(),
            ),
        };
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
        let raise = format!("SELECT RAISE(ABORT, '{}')", super::GUARD_MESSAGE);
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
                 WHEN {guard_ins} BEGIN {raise}; END;
             CREATE TRIGGER {gu} BEFORE UPDATE ON {qb}
                 WHEN {guard_upd} BEGIN {raise}; END;
             CREATE TRIGGER {gd} BEFORE DELETE ON {qb}
                 WHEN {guard_del} BEGIN {raise}; END;",
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
