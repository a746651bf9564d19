//! The doctor on SQLite (see [`crate::doctor`] for the rules).

use crate::doctor::{check_shape, Backend, Findings, TableShape, Violation, FTS5_SHADOW_TABLES};
use crate::module::Catalog;
use orgwall_core::{Error, Result};

fn e(e: rusqlite::Error) -> Error {
    Error::Internal(format!("doctor: {e}"))
}

/// Checks a SQLite database: the control file and every org's own file.
pub(crate) fn check(
    conn: &rusqlite::Connection,
    catalog: &Catalog,
    files: &super::placement::Files,
) -> Result<Vec<Violation>> {
    let mut f = Findings::new(catalog);
    walls(conn, &mut f)?;
    directory(conn, catalog, files, &mut f)?;
    move_leftovers(conn, &running_moves(conn)?, &mut f)?;
    Ok(f.found)
}

/// The orgs with a move recorded, as the hex digits their move objects are named with.
fn running_moves(conn: &rusqlite::Connection) -> Result<Vec<String>> {
    let mut st = conn
        .prepare("SELECT org_id FROM placement_moves")
        .map_err(e)?;
    let rows = st.query_map([], |r| r.get::<_, String>(0)).map_err(e)?;
    Ok(rows
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(e)?
        .into_iter()
        .map(|o| o.replace('-', ""))
        .collect())
}

/// What an abandoned move leaves in a file: its change log (`orgwall_move_log_<org>`) and
/// the triggers that fill it (`orgwall_move_<org>_<table>_{i,u,d}`, which tax every write
/// to those tables), for an org with no move recorded. Checked in the control file (moves
/// out of the shared tables) and in every org file (moves out of a file).
fn move_leftovers(
    conn: &rusqlite::Connection,
    running: &[String],
    f: &mut Findings<'_>,
) -> Result<()> {
    let mut st = conn
        .prepare(
            "SELECT type, name FROM sqlite_master WHERE name LIKE 'orgwall\\_move\\_%' ESCAPE '\\'",
        )
        .map_err(e)?;
    let objects: Vec<(String, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(e)?
        .collect::<rusqlite::Result<_>>()
        .map_err(e)?;
    for (kind, name) in objects {
        let hex = match name.strip_prefix(super::mover::LOG) {
            Some(h) => h,
            None => name.get(13..45).unwrap_or(""),
        };
        if !running.iter().any(|r| r == hex) {
            f.add(
                &name,
                format!("{kind} of a move that no longer runs: drop it"),
            );
        }
    }
    Ok(())
}

/// Checks the walls of the file `conn` is open on (the control file, or an org's own
/// after [`Findings::placement_database`]).
fn walls(conn: &rusqlite::Connection, f: &mut Findings<'_>) -> Result<()> {
    let catalog = f.catalog;
    let placed = f.in_placement();
    let objects: Vec<(String, String, String, String)> = {
        let mut st = conn
            .prepare(
                "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master ORDER BY name",
            )
            .map_err(e)?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .map_err(e)?;
        rows.collect::<rusqlite::Result<_>>().map_err(e)?
    };
    let has = |kind: &str, name: &str, must_contain: &str| {
        objects
            .iter()
            .any(|(k, n, _, sql)| k == kind && n == name && sql.contains(must_contain))
    };
    let logical = |t: &str| t.strip_suffix("_rows").unwrap_or(t).to_owned();
    let virtuals: Vec<&str> = objects
        .iter()
        .filter(|(k, n, _, sql)| {
            k == "table"
                && !f.is_global(n)
                && sql
                    .trim_start()
                    .to_ascii_uppercase()
                    .starts_with("CREATE VIRTUAL TABLE")
        })
        .map(|(_, n, _, _)| n.as_str())
        .collect();
    let shadow = |t: &str| {
        virtuals.iter().any(|v| {
            super::is_fts_index(v)
                && t.strip_prefix(v)
                    .and_then(|r| r.strip_prefix('_'))
                    .is_some_and(|s| FTS5_SHADOW_TABLES.contains(&s))
        })
    };
    let present: Vec<String> = objects
        .iter()
        .filter(|(k, n, _, _)| {
            k == "table"
                && !n.starts_with("sqlite_")
                && !n.starts_with(super::mover::LOG)
                && !virtuals.contains(&n.as_str())
                && !shadow(n)
        })
        .map(|(_, n, _, _)| logical(n))
        .collect();
    f.registration(&present);
    for c in catalog
        .cascades()
        .filter(|c| !placed || (catalog.is_data(c.parent) && catalog.is_data(c.child)))
    {
        let parent = format!("{}_rows", c.parent);
        let trigger = c.trigger_name();
        let generated = objects.iter().any(|(k, n, t, sql)| {
            k == "trigger" && *n == trigger && *t == parent && sql.contains("AFTER DELETE")
        });
        if !generated {
            f.add(
                &parent,
                format!("missing cascade trigger {trigger} (run migrate: the runner generates it)"),
            );
        }
    }
    for vt in &virtuals {
        sqlite_fts_index(conn, &objects, vt, f).map_err(e)?;
    }
    for (kind, name, _, _) in &objects {
        if kind != "table"
            || name.starts_with("sqlite_")
            || name.starts_with(super::mover::LOG)
            || (f.is_global(name) && !f.catalog.is_system(name))
        {
            continue;
        }
        if virtuals.contains(&name.as_str()) || shadow(name) {
            continue; // checked above
        }
        let base = name.as_str();
        let view = logical(base);
        if base.ends_with("_rows") && f.catalog.is_system(&view) {
            let sys = format!("app_system() IS '{view}'");
            if !has("view", &view, &sys) || !has("view", &view, "app_org()") {
                f.add(
                    base,
                    format!("no view {view} filtering on {sys} or app_org()"),
                );
            }
            for s in ["ins", "upd", "del"] {
                if !has("trigger", &format!("{view}_{s}"), "INSTEAD OF") {
                    f.add(base, format!("missing INSTEAD OF trigger {view}_{s}"));
                }
                let guard = format!("orgwall_guard_{base}_{s}");
                let ok = objects.iter().any(|(k, n, _, sql)| {
                    k == "trigger" && *n == guard && sql.contains("app_org()") && sql.contains(&sys)
                });
                if !ok {
                    f.add(base, format!("missing guard trigger {guard}"));
                }
            }
            continue;
        }
        // A global table kept behind a view of its own (orgwall's job_queues): its rows
        // answer only to a named system transaction, and nothing else is asked of it.
        if base.ends_with("_rows") && f.is_global(&view) && !f.catalog.is_system(&view) {
            if !has("view", &view, "app_system()") {
                f.add(
                    base,
                    format!("global rows behind no view {view} filtering on app_system()"),
                );
            }
            continue;
        }
        if f.catalog.is_system(base) {
            f.add(base, format!("system table is not behind its view: name it {base}_rows and let the migration runner generate the view {base}"));
            continue;
        }
        if !base.ends_with("_rows") {
            f.add(base, format!("tenant table is not behind a scoped view: name it {base}_rows and let the migration runner generate the view {base}"));
        }
        let org_col: Option<bool> = conn
            .query_row(
                "SELECT \"notnull\" FROM pragma_table_info(?1) WHERE name = 'org_id'",
                [base],
                |r| r.get::<_, i64>(0).map(|n| n != 0),
            )
            .ok();
        let mut fks: Vec<(Vec<String>, String, Vec<String>, bool)> = Vec::new();
        {
            let mut st = conn
                .prepare("SELECT id, \"table\", \"from\", \"to\", on_delete FROM pragma_foreign_key_list(?1) ORDER BY id, seq")
                .map_err(e)?;
            let rows = st
                .query_map([base], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                })
                .map_err(e)?;
            let mut last = -1;
            for row in rows {
                let (id, table, from, to, on_delete) = row.map_err(e)?;
                if id != last {
                    fks.push((
                        Vec::new(),
                        logical(&table),
                        Vec::new(),
                        on_delete == "CASCADE",
                    ));
                    last = id;
                }
                if let Some(fk) = fks.last_mut() {
                    fk.0.push(from);
                    fk.2.push(to.unwrap_or_else(|| "(primary key)".into()));
                }
            }
        }
        let mut indexes = Vec::new();
        {
            let mut st = conn
                .prepare("SELECT name, \"unique\" FROM pragma_index_list(?1)")
                .map_err(e)?;
            let list: Vec<(String, bool)> = st
                .query_map([base], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? != 0)))
                .map_err(e)?
                .collect::<rusqlite::Result<_>>()
                .map_err(e)?;
            for (idx, unique) in list {
                let mut st = conn
                    .prepare("SELECT coalesce(name, '(expression)') FROM pragma_index_info(?1) ORDER BY seqno")
                    .map_err(e)?;
                let cols: Vec<String> = st
                    .query_map([&idx], |r| r.get(0))
                    .map_err(e)?
                    .collect::<rusqlite::Result<_>>()
                    .map_err(e)?;
                indexes.push((idx, cols, unique));
            }
        }
        check_shape(
            &TableShape {
                name: base.to_owned(),
                logical: view.clone(),
                org_id_not_null: org_col,
                fks,
                indexes,
            },
            Backend::Sqlite,
            f,
        );
        if base.ends_with("_rows") {
            if !has("view", &view, "app_org()") {
                f.add(
                    base,
                    format!("no scoped view {view} filtering on app_org()"),
                );
            }
            for s in ["ins", "upd", "del"] {
                if !has("trigger", &format!("{view}_{s}"), "INSTEAD OF") {
                    f.add(base, format!("missing INSTEAD OF trigger {view}_{s}"));
                }
                if !has("trigger", &format!("orgwall_guard_{base}_{s}"), "app_org()") {
                    f.add(
                        base,
                        format!("missing guard trigger orgwall_guard_{base}_{s}"),
                    );
                }
            }
        }
    }
    Ok(())
}

/// The directory: every org placed exactly once, shared or in a file of its own; each
/// such file whole (its walls, its members projection in step with the control file's
/// memberships), the org's rows in no other placement, and no file the directory does
/// not name.
fn directory(
    conn: &rusqlite::Connection,
    catalog: &Catalog,
    files: &super::placement::Files,
    f: &mut Findings<'_>,
) -> Result<()> {
    let has_directory: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'placements'",
            [],
            |r| r.get(0),
        )
        .map_err(e)?;
    if has_directory {
        let mut stmt = conn
            .prepare(
                "SELECT o.id, pl.kind, pl.target FROM orgs o LEFT JOIN placements pl ON pl.org_id = o.id
                 WHERE pl.org_id IS NULL OR pl.kind NOT IN ('shared', 'database') OR pl.target IS NOT NULL
                 ORDER BY o.id",
            )
            .map_err(e)?;
        let rows: Vec<(String, Option<String>, Option<String>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(e)?
            .collect::<std::result::Result<_, _>>()
            .map_err(e)?;
        for (org, kind, target) in rows {
            match (kind, target) {
                (None, _) => f.add(&format!("org {org}"), "has no placement entry (every org is placed exactly once; run orgwall placement set ORG shared)"),
                (Some(k), None) => f.add(&format!("org {org}"), format!("placed as {k}, which SQLite does not serve (shared or database: a file of its own)")),
                (Some(_), Some(t)) => f.add(&format!("org {org}"), format!("placed on target {t}: SQLite has no target servers")),
            }
        }
    } else {
        return Ok(());
    }
    let placed = super::placement::placed(conn)?;
    let running = running_moves(conn)?;
    // A running move has the org in two places until it is done: its org and its files.
    let moving: Vec<(String, Option<String>, Option<String>)> = {
        let mut st = conn
            .prepare("SELECT org_id, from_location, to_location FROM placement_moves")
            .map_err(e)?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(e)?;
        rows.collect::<rusqlite::Result<_>>().map_err(e)?
    };
    let in_move = |name: &str| {
        moving
            .iter()
            .any(|(_, a, b)| a.as_deref() == Some(name) || b.as_deref() == Some(name))
    };
    for (org, name) in &placed {
        let org_id: orgwall_core::OrgId = org
            .parse()
            .map_err(|_| Error::Internal(format!("placements names org {org:?}")))?;
        let shared = super::placement::tables_with_rows(conn, catalog, org_id)?;
        if !shared.is_empty() && !moving.iter().any(|(o, _, _)| o == org) {
            f.add(
                &format!("org {org}"),
                format!(
                    "placed in its own file {name}.db but holds rows in the shared tables too ({})",
                    shared.join(", ")
                ),
            );
        }
        let path = files.path(name)?;
        if !path.exists() {
            f.add(
                &format!("org {org}"),
                format!("placed in {}, which does not exist", path.display()),
            );
            continue;
        }
        let placed_conn = super::open_conn(&path, super::Guard::Owner, false)?.conn;
        f.placement_database(name);
        let checked = walls(&placed_conn, f)
            .and_then(|()| projection_in_step(conn, &placed_conn, org, f))
            .and_then(|()| only_its_org(&placed_conn, catalog, org, f))
            .and_then(|()| move_leftovers(&placed_conn, &running, f));
        f.control();
        checked?;
    }
    for leftover in files.half_made()? {
        f.add(
            &format!("{}/{leftover}", files.dir().display()),
            "a half-made org file (a placement that did not finish); nothing names it: remove it",
        );
    }
    for name in files.found()? {
        if !placed.iter().any(|(_, n)| *n == name) && !in_move(&name) {
            f.add(
                &format!("{}/{name}.db", files.dir().display()),
                "orphan org file: no organization is placed in it (left by an earlier placement or purge?); remove it once you know what it holds",
            );
        }
    }
    Ok(())
}

/// Every row of an org's own file is its org's, and every foreign key holds (a file
/// written with foreign keys off, restored or edited by hand, could hold either).
fn only_its_org(
    placed: &rusqlite::Connection,
    catalog: &Catalog,
    org: &str,
    f: &mut Findings<'_>,
) -> Result<()> {
    for (_, base) in super::placement::data_bases(placed, catalog)? {
        let others: i64 = placed
            .query_row(
                &format!(
                    "SELECT count(*) FROM {} WHERE org_id IS NOT ?1",
                    crate::migrate::quote_ident(&base)
                ),
                [org],
                |r| r.get(0),
            )
            .map_err(e)?;
        if others > 0 {
            f.add(
                &base,
                format!("{others} rows of another org in this org's own file"),
            );
        }
    }
    let mut st = placed
        .prepare("SELECT \"table\", count(*) FROM pragma_foreign_key_check GROUP BY 1 ORDER BY 1")
        .map_err(e)?;
    let broken: Vec<(String, i64)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(e)?
        .collect::<rusqlite::Result<_>>()
        .map_err(e)?;
    for (table, n) in broken {
        f.add(
            &table,
            format!("{n} rows whose foreign key points at nothing (a ticket assigned to a non-member, say)"),
        );
    }
    Ok(())
}

/// The members projection of an org's own file: exactly its org, and exactly the members
/// the control file has.
fn projection_in_step(
    control: &rusqlite::Connection,
    placed: &rusqlite::Connection,
    org: &str,
    f: &mut Findings<'_>,
) -> Result<()> {
    let list = |c: &rusqlite::Connection, sql: &str, p: &[&str]| -> Result<Vec<String>> {
        let mut st = c.prepare(sql).map_err(e)?;
        let rows = st
            .query_map(rusqlite::params_from_iter(p.iter()), |r| r.get(0))
            .map_err(e)?;
        rows.collect::<rusqlite::Result<_>>().map_err(e)
    };
    let orgs = list(placed, "SELECT id FROM orgs ORDER BY id", &[])?;
    if orgs != [org] {
        f.add(
            "orgs",
            format!("the projection must hold exactly its org {org}; it holds {orgs:?}"),
        );
    }
    let sql = "SELECT user_id FROM memberships_rows WHERE org_id = ?1 ORDER BY user_id";
    let want = list(control, sql, &[org])?;
    let have = list(
        placed,
        "SELECT user_id FROM memberships_rows ORDER BY user_id",
        &[],
    )?;
    if want != have {
        let missing: Vec<&String> = want.iter().filter(|u| !have.contains(u)).collect();
        let extra: Vec<&String> = have.iter().filter(|u| !want.contains(u)).collect();
        f.add(
            "memberships",
            format!("the members projection is out of step with the control file: missing {missing:?}, not members any more {extra:?}"),
        );
    }
    Ok(())
}

/// Checks one virtual table: it must be a full-text index as documented at the top.
fn sqlite_fts_index(
    conn: &rusqlite::Connection,
    objects: &[(String, String, String, String)],
    vt: &str,
    f: &mut Findings,
) -> rusqlite::Result<()> {
    let Some(source) = vt
        .strip_suffix("_fts_rows")
        .filter(|s| !s.is_empty() && super::is_fts_index(vt))
    else {
        f.add(vt, "virtual table is not a full-text index named <t>_fts_rows over <t>_rows (the authorizer guards only those)");
        return Ok(());
    };
    let sql = objects
        .iter()
        .find(|(k, n, _, _)| k == "table" && n == vt)
        .map(|(_, _, _, sql)| sql.to_ascii_lowercase())
        .unwrap_or_default();
    if !sql.contains("using fts5") {
        f.add(vt, "full-text index is not an FTS5 table");
    }
    let has_org: bool = conn.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info(?1) WHERE name = 'org_id'",
        [vt],
        |r| r.get(0),
    )?;
    if !has_org {
        f.add(vt, "full-text index has no org_id column");
    }
    let view = format!("{source}_fts");
    let scoped = objects.iter().any(|(k, n, _, sql)| {
        k == "view" && *n == view && sql.contains("app_org()") && sql.contains(vt)
    });
    if !scoped {
        f.add(
            vt,
            format!("no scoped view {view} over {vt} filtering on app_org()"),
        );
    }
    let base = format!("{source}_rows");
    if !objects
        .iter()
        .any(|(k, n, _, _)| k == "table" && *n == base)
    {
        f.add(vt, format!("indexes {base}, which does not exist"));
    }
    for (s, event) in [
        ("ins", "AFTER INSERT"),
        ("upd", "AFTER UPDATE"),
        ("del", "AFTER DELETE"),
    ] {
        let name = format!("orgwall_fts_{base}_{s}");
        let ok = objects.iter().any(|(k, n, tbl, sql)| {
            k == "trigger"
                && *n == name
                && *tbl == base
                && sql.to_ascii_uppercase().contains(event)
                && sql.contains(vt)
        });
        if !ok {
            f.add(
                vt,
                format!("missing sync trigger {name} ({event} ON {base}, writing {vt})"),
            );
        }
    }
    Ok(())
}
