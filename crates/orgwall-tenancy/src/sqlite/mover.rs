//! Online moves on SQLite (see [`crate::placement::start_move`]): an org between the shared
//! tables of the control file and a file of its own, while it is in use.
//!
//! SQLite has no change stream to read, so the source records its own: for the move's
//! length, triggers on the source's data-plane base tables (`orgwall_move_<t>_{i,u,d}`,
//! firing only for the moving org's rows) append the key of every changed row to
//! `orgwall_move_log` in the same file (a trigger writes only beside it). The phases,
//! resumable from the `placement_moves` row:
//!
//! 1. `prepare`: a destination file made whole (for a move into a file), the log and its
//!    triggers in the source.
//! 2. `copy`: from one read snapshot of the source, the log's last position `S` and the
//!    org's rows, written to the destination in transactions of [`CHUNK`] rows (so another
//!    org's writes to the same file wait for one chunk at most, not the whole copy). Every
//!    change after the snapshot is in the log after `S`.
//! 3. `catch_up`: from a new read snapshot each round, the log's entries after the last
//!    applied position; each named row is written as the snapshot has it (an upsert by
//!    key) or deleted when the snapshot no longer has it: replaying twice is harmless.
//!    When a round drained everything up to its snapshot, the destination equals it: the
//!    rows' counts and a checksum of their values are compared there. Then the cut-over,
//!    under the control file's write lock (which every SQLite write transaction takes
//!    first, so it is the fence): the last entries applied, counts compared, the directory
//!    flipped, the triggers and log dropped, and for a move out of the shared tables the
//!    org's rows deleted there, all in the lock's transaction.
//! 4. `cleanup` (a move out of a file): the old file removed.

use super::placement::{self as files, data_bases};
use super::{open_conn, sqlite_err, Guard, SqliteDb};
use crate::migrate::quote_ident as q;
use crate::module::Catalog;
use crate::placement::{database_name, Kind, Move, Route};
use orgwall_core::{Error, OrgId, Result};
use rusqlite::types::Value;
use rusqlite::OptionalExtension as _;
use std::path::{Path, PathBuf};

/// Rows per destination transaction while copying.
const CHUNK: usize = 2_000;

/// The prefix of the log of changed keys a moving org's source keeps
/// (`orgwall_move_log_<org hex>`: one per moving org, so two orgs may move out of one file).
pub(crate) const LOG: &str = "orgwall_move_log_";

fn log_name(org: OrgId) -> String {
    format!("{LOG}{}", org.uuid().simple())
}

fn e(err: rusqlite::Error) -> Error {
    sqlite_err(err)
}

fn now() -> i64 {
    crate::value::now().timestamp_micros()
}

const COLUMNS: &str = "org_id, from_kind, from_location, to_kind, to_location, phase, start_lsn, rows_copied, rows_total, changes_applied, error";

fn read(conn: &rusqlite::Connection, org: Option<OrgId>) -> Result<Vec<Move>> {
    let sql = match org {
        Some(_) => format!("SELECT {COLUMNS} FROM placement_moves WHERE org_id = ?1"),
        None => format!("SELECT {COLUMNS} FROM placement_moves ORDER BY started_at"),
    };
    let mut st = conn.prepare(&sql).map_err(e)?;
    let map = |r: &rusqlite::Row<'_>| -> rusqlite::Result<_> {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, Option<String>>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, Option<String>>(6)?,
            (
                r.get::<_, i64>(7)?,
                r.get::<_, i64>(8)?,
                r.get::<_, i64>(9)?,
            ),
            r.get::<_, Option<String>>(10)?,
        ))
    };
    let rows: Vec<_> = match org {
        Some(o) => st.query_map([o.to_string()], map),
        None => st.query_map([], map),
    }
    .map_err(e)?
    .collect::<rusqlite::Result<_>>()
    .map_err(e)?;
    rows.into_iter()
        .map(
            |(id, fk, fl, tk, tl, phase, pos, (copied, total, applied), error)| {
                Ok(Move {
                    org: OrgId::from_uuid(uuid::Uuid::parse_str(&id).map_err(Error::internal)?),
                    from: Route::from_parts(&fk, fl, None)?,
                    to: Route::from_parts(&tk, tl, None)?,
                    phase,
                    start_lsn: pos,
                    rows_copied: copied,
                    rows_total: total,
                    changes_applied: applied,
                    pause_ms: None,
                    error,
                })
            },
        )
        .collect()
}

/// Every running move.
pub(crate) fn list(db: &SqliteDb) -> Result<Vec<Move>> {
    read(&open_conn(db.path(), Guard::Owner, false)?.conn, None)
}

fn get(conn: &rusqlite::Connection, org: OrgId) -> Result<Option<Move>> {
    Ok(read(conn, Some(org))?.into_iter().next())
}

/// The route `kind` gives `org` on SQLite (shared or a file of its own).
fn wanted(org: OrgId, kind: &Kind) -> Result<Route> {
    match kind {
        Kind::Shared => Ok(Route::Shared),
        Kind::Database(None) => Ok(Route::Database {
            name: database_name(org).into(),
            target: None,
        }),
        _ => Err(Error::Validation(
            "on SQLite an org moves between the shared tables (shared) and a file of its own (database)".into(),
        )),
    }
}

/// Records a move of `org` to `kind`.
pub(crate) fn start(db: &SqliteDb, org: OrgId, kind: &Kind) -> Result<Move> {
    let to = wanted(org, kind)?;
    let mut conn = open_as(db.path(), org)?;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(e)?;
    let row: Option<(Option<String>, Option<String>, bool)> = tx
        .query_row(
            "SELECT pl.kind, pl.location, o.deleting_at IS NOT NULL
             FROM orgs o LEFT JOIN placements pl ON pl.org_id = o.id WHERE o.id = ?1",
            [org.to_string()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(e)?;
    let (k, l, deleting) =
        row.ok_or_else(|| Error::Validation(format!("no organization {org}")))?;
    let from = match k {
        Some(k) => Route::from_parts(&k, l, None)?,
        None => Route::Shared,
    };
    if deleting {
        return Err(Error::Conflict(
            "org_deleting",
            format!("organization {org} is being deleted: it does not move"),
        ));
    }
    if let Some(m) = get(&tx, org)? {
        return Err(Error::Conflict(
            "move_running",
            format!("organization {org} is already moving (phase {}): see orgwall placement list, or --abort it", m.phase),
        ));
    }
    if from == to {
        return Err(Error::Conflict(
            "already_placed",
            format!(
                "organization {org} is already in its {} placement: nothing to move",
                to.kind()
            ),
        ));
    }
    let loc = |r: &Route| match r {
        Route::Database { name, .. } => Some(name.to_string()),
        _ => None,
    };
    let t = now();
    tx.execute(
        "INSERT INTO placement_moves (org_id, from_kind, from_location, to_kind, to_location, phase, started_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'prepare', ?6, ?6)",
        rusqlite::params![org.to_string(), from.kind(), loc(&from), to.kind(), loc(&to), t],
    )
    .map_err(e)?;
    let m =
        get(&tx, org)?.ok_or_else(|| Error::Internal("the move just recorded is gone".into()))?;
    tx.commit().map_err(e)?;
    Ok(m)
}

/// An owner connection to `path` inside `org`'s scope (the base tables' guard triggers
/// check every row a mover writes or deletes against it).
fn open_as(path: &Path, org: OrgId) -> Result<rusqlite::Connection> {
    let c = open_conn(path, Guard::Owner, false)?;
    *c.scope
        .lock()
        .map_err(|_| Error::Internal("scope lock poisoned".into()))? =
        crate::settings::Settings::org(org);
    Ok(c.conn)
}

/// A write transaction on `conn` (its lock taken at once), foreign keys checked at commit
/// (rows arrive table by table, not in the order their keys need).
fn writing(conn: &mut rusqlite::Connection) -> Result<rusqlite::Transaction<'_>> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(e)?;
    tx.execute_batch("PRAGMA defer_foreign_keys = ON")
        .map_err(e)?;
    Ok(tx)
}

/// One end of a move: its file.
fn file_of(db: &SqliteDb, route: &Route) -> Result<PathBuf> {
    match route {
        Route::Database { name, .. } => db.files().path(name),
        _ => Ok(db.path().to_path_buf()),
    }
}

/// The lock file that makes one mover per org (released when its process dies), removed
/// when its mover is done with it.
fn lock(db: &SqliteDb, org: OrgId) -> Result<MoverLock> {
    lock_in(db.files().dir(), org)
}

fn lock_in(dir: &std::path::Path, org: OrgId) -> Result<MoverLock> {
    std::fs::create_dir_all(dir)
        .map_err(|err| Error::Unavailable(format!("cannot create {}: {err}", dir.display())))?;
    let path = dir.join(format!(".move-{}.lock", org.uuid().simple()));
    loop {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|err| Error::Unavailable(format!("cannot open {}: {err}", path.display())))?;
        match f.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Conflict(
                    "move_running",
                    format!("another mover is running organization {org}'s move"),
                ))
            }
            Err(std::fs::TryLockError::Error(err)) => {
                return Err(Error::Unavailable(format!(
                    "cannot lock {}: {err}",
                    path.display()
                )))
            }
        }
        // The mover before may have removed the file between our open and our lock (it
        // removes it still holding its lock): a lock on a file no longer at the path
        // excludes nobody, so open it again.
        if same_file(&f, &path) {
            return Ok(MoverLock { path, _file: f });
        }
    }
}

/// Whether `path` still names the file `f` has open.
#[cfg(unix)]
fn same_file(f: &std::fs::File, path: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (f.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_: &std::fs::File, path: &std::path::Path) -> bool {
    path.exists()
}

/// A held mover lock: its file is removed while still locked when it is let go (so the
/// data directory keeps no lock file per org ever moved), then unlocked.
struct MoverLock {
    path: PathBuf,
    _file: std::fs::File,
}

impl Drop for MoverLock {
    fn drop(&mut self) {
        // Unix only: elsewhere an open file cannot be removed, and a lock on a file no
        // longer at its path would not exclude the next mover.
        #[cfg(unix)]
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The moving tables (the derived ones are derived again by the destination's triggers),
/// by base table name, each checked to be keyed `(org_id, id)`.
fn tables(conn: &rusqlite::Connection, catalog: &Catalog) -> Result<Vec<(String, Vec<String>)>> {
    let mut out = Vec::new();
    for (t, base) in data_bases(conn, catalog)? {
        if catalog.is_derived(t) {
            continue;
        }
        let cols: Vec<(String, i64)> = {
            let mut st = conn
                .prepare(&format!("SELECT name, pk FROM pragma_table_info('{base}')"))
                .map_err(e)?;
            let rows = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(e)?;
            rows.collect::<rusqlite::Result<_>>().map_err(e)?
        };
        let key: Vec<&str> = cols
            .iter()
            .filter(|(_, pk)| *pk > 0)
            .map(|(n, _)| n.as_str())
            .collect();
        if key.len() != 2 || !key.contains(&"org_id") || !key.contains(&"id") {
            return Err(Error::Validation(format!(
                "{t} is not keyed (org_id, id): an org with such a table cannot move on SQLite"
            )));
        }
        out.push((base, cols.into_iter().map(|(n, _)| n).collect()));
    }
    Ok(out)
}

fn trigger_names(org: OrgId, base: &str) -> [String; 3] {
    let hex = org.uuid().simple();
    ["i", "u", "d"].map(|k| format!("orgwall_move_{hex}_{base}_{k}"))
}

/// Installs the log and its triggers in the source file.
fn install_log(path: &Path, catalog: &Catalog, org: OrgId) -> Result<()> {
    let log = log_name(org);
    let mut conn = open_as(path, org)?;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(e)?;
    tx.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {log} (seq INTEGER PRIMARY KEY AUTOINCREMENT, tbl TEXT NOT NULL, id NOT NULL)"
    ))
    .map_err(e)?;
    let id = org.to_string();
    for (base, _) in tables(&tx, catalog)? {
        let [i, u, d] = trigger_names(org, &base);
        tx.execute_batch(&format!(
            "DROP TRIGGER IF EXISTS {i}; DROP TRIGGER IF EXISTS {u}; DROP TRIGGER IF EXISTS {d};
             CREATE TRIGGER {i} AFTER INSERT ON {base} WHEN NEW.org_id = '{id}'
               BEGIN INSERT INTO {log} (tbl, id) VALUES ('{base}', NEW.id); END;
             CREATE TRIGGER {u} AFTER UPDATE ON {base} WHEN NEW.org_id = '{id}' OR OLD.org_id = '{id}'
               BEGIN INSERT INTO {log} (tbl, id) VALUES ('{base}', OLD.id);
                     INSERT INTO {log} (tbl, id) SELECT '{base}', NEW.id WHERE NEW.id IS NOT OLD.id; END;
             CREATE TRIGGER {d} AFTER DELETE ON {base} WHEN OLD.org_id = '{id}'
               BEGIN INSERT INTO {log} (tbl, id) VALUES ('{base}', OLD.id); END;"
        ))
        .map_err(e)?;
    }
    tx.commit().map_err(e)
}

/// Drops the log and its triggers (in `conn`'s open transaction, or on their own).
fn drop_log(conn: &rusqlite::Connection, catalog: &Catalog, org: OrgId) -> Result<()> {
    let log = log_name(org);
    for (t, base) in data_bases(conn, catalog)? {
        if catalog.is_derived(t) {
            continue;
        }
        for n in trigger_names(org, &base) {
            conn.execute_batch(&format!("DROP TRIGGER IF EXISTS {n}"))
                .map_err(e)?;
        }
    }
    conn.execute_batch(&format!("DROP TABLE IF EXISTS {log}"))
        .map_err(e)
}

/// Runs (or resumes) `org`'s move to its end. Returns where the org is now.
pub(crate) fn run(
    db: &SqliteDb,
    catalog: &Catalog,
    org: OrgId,
    opts: crate::placement::MoveOptions,
    progress: &(dyn Fn(&Move) + Sync),
) -> Result<Route> {
    let _lock = lock(db, org)?;
    let control = open_as(db.path(), org)?;
    loop {
        let Some(mv) = get(&control, org)? else {
            return route_of(&control, org);
        };
        progress(&mv);
        if mv.error.as_deref() == Some(crate::placement::ABORT_REQUESTED) && mv.phase != "cleanup" {
            finish(db, catalog, &control, &mv, false)?;
            return Err(Error::Conflict(
                "move_aborted",
                format!("organization {org}'s move was aborted; it stays where it was"),
            ));
        }
        let step = match mv.phase.as_str() {
            "prepare" => prepare(db, catalog, &control, &mv),
            "copy" => copy(db, catalog, &control, &mv, opts),
            "catch_up" => catch_up(db, catalog, &control, &mv),
            "cleanup" => finish(db, catalog, &control, &mv, true),
            other => Err(Error::Internal(format!("a move in phase {other:?}"))),
        };
        if let Err(err) = step {
            let _ = control.execute(
                "UPDATE placement_moves SET error = ?2, updated_at = ?3 WHERE org_id = ?1 AND error IS NOT ?4",
                rusqlite::params![org.to_string(), err.to_string(), now(), crate::placement::ABORT_REQUESTED],
            );
            return Err(err);
        }
    }
}

fn route_of(control: &rusqlite::Connection, org: OrgId) -> Result<Route> {
    let row: Option<(String, Option<String>)> = control
        .query_row(
            "SELECT kind, location FROM placements WHERE org_id = ?1",
            [org.to_string()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(e)?;
    match row {
        None => Ok(Route::Shared),
        Some((k, l)) => Route::from_parts(&k, l, None),
    }
}

fn set(
    control: &rusqlite::Connection,
    org: OrgId,
    sets: &str,
    params: &[&dyn rusqlite::ToSql],
) -> Result<()> {
    let mut all: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(params.len() + 2);
    let id = org.to_string();
    let t = now();
    all.push(&id);
    all.push(&t);
    all.extend_from_slice(params);
    control
        .execute(
            &format!("UPDATE placement_moves SET {sets}, updated_at = ?2 WHERE org_id = ?1"),
            all.as_slice(),
        )
        .map_err(e)?;
    Ok(())
}

fn prepare(
    db: &SqliteDb,
    catalog: &Catalog,
    control: &rusqlite::Connection,
    mv: &Move,
) -> Result<()> {
    if let Route::Database { name, .. } = &mv.to {
        // A file left by an earlier run of this phase is half made: made again.
        db.files().remove(name)?;
        let members: Vec<String> = {
            let mut st = control
                .prepare("SELECT user_id FROM memberships_rows WHERE org_id = ?1 ORDER BY user_id")
                .map_err(e)?;
            let rows = st
                .query_map([mv.org.to_string()], |r| r.get(0))
                .map_err(e)?;
            rows.collect::<rusqlite::Result<_>>().map_err(e)?
        };
        files::provision(&db.files().path(name)?, catalog, mv.org, &members)?;
    }
    install_log(&file_of(db, &mv.from)?, catalog, mv.org)?;
    set(
        control,
        mv.org,
        "phase = 'copy', error = CASE WHEN error = 'abort requested' THEN error END",
        &[],
    )
}

/// A row of a moving table as the source has it.
fn row_of(
    src: &rusqlite::Connection,
    base: &str,
    cols: &[String],
    org: &str,
    id: &Value,
) -> Result<Option<Vec<Value>>> {
    let list: Vec<String> = cols.iter().map(|c| q(c)).collect();
    let mut st = src
        .prepare_cached(&format!(
            "SELECT {} FROM {base} WHERE org_id = ?1 AND id = ?2",
            list.join(", ")
        ))
        .map_err(e)?;
    let mut rows = st.query(rusqlite::params![org, id]).map_err(e)?;
    match rows.next().map_err(e)? {
        None => Ok(None),
        Some(r) => (0..cols.len())
            .map(|i| r.get::<_, Value>(i).map_err(e))
            .collect::<Result<Vec<_>>>()
            .map(Some),
    }
}

fn upsert(
    dst: &rusqlite::Connection,
    base: &str,
    cols: &[String],
    values: &[Value],
    project: bool,
) -> Result<()> {
    if project {
        // An org file's foreign keys point at its projection: every user a row names
        // joins it (a former member who wrote the row, too).
        let named: Vec<String> = {
            let mut st = dst
                .prepare_cached(
                    "SELECT \"from\" FROM pragma_foreign_key_list(?1) WHERE \"table\" = 'users'",
                )
                .map_err(e)?;
            let rows = st.query_map([base], |r| r.get(0)).map_err(e)?;
            rows.collect::<rusqlite::Result<_>>().map_err(e)?
        };
        for c in named {
            if let Some(v) = cols
                .iter()
                .position(|x| *x == c)
                .and_then(|i| values.get(i))
            {
                if *v != Value::Null {
                    dst.prepare_cached("INSERT OR IGNORE INTO users (id) VALUES (?1)")
                        .map_err(e)?
                        .execute([v])
                        .map_err(e)?;
                }
            }
        }
    }
    let list: Vec<String> = cols.iter().map(|c| q(c)).collect();
    let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
    let sets: Vec<String> = cols
        .iter()
        .filter(|c| *c != "org_id" && *c != "id")
        .map(|c| format!("{0} = excluded.{0}", q(c)))
        .collect();
    let conflict = if sets.is_empty() {
        "DO NOTHING".to_owned()
    } else {
        format!("DO UPDATE SET {}", sets.join(", "))
    };
    dst.prepare_cached(&format!(
        "INSERT INTO {base} ({}) VALUES ({}) ON CONFLICT (org_id, id) {conflict}",
        list.join(", "),
        marks.join(", ")
    ))
    .map_err(e)?
    .execute(rusqlite::params_from_iter(values.iter()))
    .map_err(e)?;
    Ok(())
}

/// About how many bytes a value is (for pacing a copy).
fn value_bytes(v: &Value) -> usize {
    match v {
        Value::Null => 1,
        Value::Integer(_) | Value::Real(_) => 8,
        Value::Text(t) => t.len(),
        Value::Blob(b) => b.len(),
    }
}

fn values(r: &rusqlite::Row<'_>, n: usize) -> Result<Vec<Value>> {
    (0..n).map(|i| r.get::<_, Value>(i).map_err(e)).collect()
}

fn copy(
    db: &SqliteDb,
    catalog: &Catalog,
    control: &rusqlite::Connection,
    mv: &Move,
    opts: crate::placement::MoveOptions,
) -> Result<()> {
    let org = mv.org.to_string();
    let log = log_name(mv.org);
    let project = matches!(mv.to, Route::Database { .. });
    let src = open_as(&file_of(db, &mv.from)?, mv.org)?;
    let mut dst = open_as(&file_of(db, &mv.to)?, mv.org)?;
    let moving = tables(&src, catalog)?;
    // The destination emptied of the org first (a copy run again starts from nothing).
    {
        let tx = writing(&mut dst)?;
        for (_, base) in data_bases(&tx, catalog)?.iter().rev() {
            tx.execute(&format!("DELETE FROM {base} WHERE org_id = ?1"), [&org])
                .map_err(e)?;
        }
        tx.commit().map_err(e)?;
    }
    // One read snapshot of the source: the log's position and every row.
    src.execute_batch("BEGIN").map_err(e)?;
    let pos: i64 = src
        .query_row(
            &format!("SELECT coalesce(max(seq), 0) FROM {log}"),
            [],
            |r| r.get(0),
        )
        .map_err(e)?;
    let mut total = 0i64;
    for (base, _) in &moving {
        let n: i64 = src
            .query_row(
                &format!("SELECT count(*) FROM {base} WHERE org_id = ?1"),
                [&org],
                |r| r.get(0),
            )
            .map_err(e)?;
        total += n;
    }
    set(control, mv.org, "rows_total = ?3", &[&total])?;
    let mut copied = 0i64;
    let mut pacer = crate::placement::Pacer::new(opts);
    for (base, cols) in &moving {
        let list: Vec<String> = cols.iter().map(|c| q(c)).collect();
        let mut st = src
            .prepare(&format!(
                "SELECT {} FROM {base} WHERE org_id = ?1 ORDER BY id",
                list.join(", ")
            ))
            .map_err(e)?;
        let mut rows = st.query([&org]).map_err(e)?;
        let mut batch: Vec<Vec<Value>> = Vec::with_capacity(CHUNK);
        loop {
            let row = rows.next().map_err(e)?;
            let end = row.is_none();
            if let Some(r) = row {
                batch.push(values(r, cols.len())?);
            }
            if batch.len() >= CHUNK || (end && !batch.is_empty()) {
                let tx = writing(&mut dst)?;
                for v in &batch {
                    upsert(&tx, base, cols, v, project)?;
                }
                tx.commit().map_err(e)?;
                copied += i64::try_from(batch.len()).unwrap_or(i64::MAX);
                let bytes: usize = batch.iter().flatten().map(value_bytes).sum();
                batch.clear();
                set(control, mv.org, "rows_copied = ?3", &[&copied])?;
                if let Some(w) = pacer.sent(bytes) {
                    // The destination's write lock is let go while the copy waits.
                    std::thread::sleep(w);
                }
            }
            if end {
                break;
            }
        }
    }
    src.execute_batch("COMMIT").map_err(e)?;
    set(
        control,
        mv.org,
        "phase = 'catch_up', start_lsn = ?3, changes_applied = 0, error = CASE WHEN error = 'abort requested' THEN error END",
        &[&pos.to_string()],
    )
}

/// Applies the log's entries after `from` up to `to` (at most `limit`), reading each row
/// as `src` (in a read transaction: one snapshot) has it, writing `dst` (in a transaction
/// of the caller's). Returns the last position applied and how many rows it wrote.
fn apply(
    src: &rusqlite::Connection,
    dst: &rusqlite::Connection,
    moving: &[(String, Vec<String>)],
    (org, log, project): (&str, &str, bool),
    (from, to): (i64, i64),
) -> Result<(i64, usize)> {
    let entries: Vec<(i64, String, Value)> = {
        let mut st = src
            .prepare_cached(&format!(
                "SELECT seq, tbl, id FROM {log} WHERE seq > ?1 AND seq <= ?2 ORDER BY seq LIMIT {CHUNK}"
            ))
            .map_err(e)?;
        let rows = st
            .query_map([from, to], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(e)?;
        rows.collect::<rusqlite::Result<_>>().map_err(e)?
    };
    let mut last = from;
    let mut n = 0;
    for (seq, base, id) in entries {
        last = seq;
        let Some((_, cols)) = moving.iter().find(|(b, _)| *b == base) else {
            return Err(Error::Internal(format!(
                "a logged change of {base}, which does not move"
            )));
        };
        match row_of(src, &base, cols, org, &id)? {
            Some(v) => upsert(dst, &base, cols, &v, project)?,
            None => {
                dst.prepare_cached(&format!("DELETE FROM {base} WHERE org_id = ?1 AND id = ?2"))
                    .map_err(e)?
                    .execute(rusqlite::params![org, id])
                    .map_err(e)?;
            }
        }
        n += 1;
    }
    Ok((last, n))
}

/// The org's rows of every moving table in `conn` (in a read transaction): per table,
/// the count and a digest of every value, in key order.
fn digest(
    conn: &rusqlite::Connection,
    moving: &[(String, Vec<String>)],
    org: &str,
    content: bool,
) -> Result<Vec<(String, i64, String)>> {
    use sha2::Digest as _;
    let mut out = Vec::new();
    for (base, cols) in moving {
        if !content {
            let n: i64 = conn
                .query_row(
                    &format!("SELECT count(*) FROM {base} WHERE org_id = ?1"),
                    [org],
                    |r| r.get(0),
                )
                .map_err(e)?;
            out.push((base.clone(), n, String::new()));
            continue;
        }
        let list: Vec<String> = cols.iter().map(|c| q(c)).collect();
        let mut st = conn
            .prepare(&format!(
                "SELECT {} FROM {base} WHERE org_id = ?1 ORDER BY id",
                list.join(", ")
            ))
            .map_err(e)?;
        let mut rows = st.query([org]).map_err(e)?;
        let mut h = sha2::Sha256::new();
        let mut n = 0i64;
        while let Some(r) = rows.next().map_err(e)? {
            for v in values(r, cols.len())? {
                h.update(format!("{v:?}\u{1f}").as_bytes());
            }
            h.update(b"\x1e");
            n += 1;
        }
        out.push((base.clone(), n, hex::encode(h.finalize())));
    }
    Ok(out)
}

fn compare(a: &[(String, i64, String)], b: &[(String, i64, String)]) -> Result<()> {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return Err(Error::Internal(format!(
                "verification failed for {}: the source holds {} rows (checksum {}), the destination {} (checksum {}); the directory was not flipped",
                x.0, x.1, x.2, y.1, y.2
            )));
        }
    }
    Ok(())
}

fn catch_up(
    db: &SqliteDb,
    catalog: &Catalog,
    control: &rusqlite::Connection,
    mv: &Move,
) -> Result<()> {
    let org = mv.org.to_string();
    let mut pos: i64 = mv
        .start_lsn
        .as_deref()
        .unwrap_or("0")
        .parse()
        .map_err(Error::internal)?;
    let src_path = file_of(db, &mv.from)?;
    let dst_path = file_of(db, &mv.to)?;
    let src = open_as(&src_path, mv.org)?;
    let mut dst = open_as(&dst_path, mv.org)?;
    let moving = tables(&src, catalog)?;
    let log = log_name(mv.org);
    let project = matches!(mv.to, Route::Database { .. });
    let mut applied = mv.changes_applied;
    // Rounds until one is small; the last one drains its snapshot and compares content.
    let mut rounds = 0;
    loop {
        rounds += 1;
        src.execute_batch("BEGIN").map_err(e)?;
        let upto: i64 = src
            .query_row(
                &format!("SELECT coalesce(max(seq), 0) FROM {log}"),
                [],
                |r| r.get(0),
            )
            .map_err(e)?;
        let mut round = 0;
        while pos < upto {
            let tx = writing(&mut dst)?;
            let (last, n) = apply(&src, &tx, &moving, (&org, &log, project), (pos, upto))?;
            tx.commit().map_err(e)?;
            pos = last;
            round += n;
        }
        applied += i64::try_from(round).unwrap_or(i64::MAX);
        let last_round = round < 200 || rounds >= 1_000;
        if last_round {
            // The destination now holds what this snapshot holds.
            dst.execute_batch("BEGIN").map_err(e)?;
            let checked = digest(&src, &moving, &org, true)
                .and_then(|a| Ok((a, digest(&dst, &moving, &org, true)?)))
                .and_then(|(a, b)| compare(&a, &b));
            dst.execute_batch("COMMIT").map_err(e)?;
            src.execute_batch("COMMIT").map_err(e)?;
            set(
                control,
                mv.org,
                "start_lsn = ?3, changes_applied = ?4",
                &[&pos.to_string(), &applied],
            )?;
            checked?;
            break;
        }
        src.execute_batch("COMMIT").map_err(e)?;
        set(
            control,
            mv.org,
            "start_lsn = ?3, changes_applied = ?4",
            &[&pos.to_string(), &applied],
        )?;
        if let Some(m) = get(control, mv.org)? {
            if m.error.as_deref() == Some(crate::placement::ABORT_REQUESTED) {
                return Ok(()); // the run loop aborts
            }
        }
    }
    drop(src);
    drop(dst);
    cut_over(db, catalog, control, mv, pos, applied)
}

/// Under the control file's write lock (the fence of every SQLite write): the last
/// entries, counts, the flip.
fn cut_over(
    db: &SqliteDb,
    catalog: &Catalog,
    control: &rusqlite::Connection,
    mv: &Move,
    mut pos: i64,
    mut applied: i64,
) -> Result<()> {
    let org = mv.org.to_string();
    let log = log_name(mv.org);
    let from_control = mv.from == Route::Shared;
    control.execute_batch("BEGIN IMMEDIATE").map_err(e)?;
    let done = (|| -> Result<bool> {
        if get(control, mv.org)?.and_then(|m| m.error).as_deref()
            == Some(crate::placement::ABORT_REQUESTED)
        {
            return Ok(false);
        }
        // The org's file (source or destination), beside the control file's transaction.
        let file = match (&mv.from, &mv.to) {
            (Route::Database { name, .. }, _) | (_, Route::Database { name, .. }) => {
                open_as(&db.files().path(name)?, mv.org)?
            }
            _ => return Err(Error::Internal("a SQLite move without a file".into())),
        };
        let (src, dst) = if from_control {
            (control, &file)
        } else {
            (&file, control)
        };
        let moving = tables(src, catalog)?;
        file.execute_batch("BEGIN IMMEDIATE").map_err(e)?;
        let upto: i64 = src
            .query_row(
                &format!("SELECT coalesce(max(seq), 0) FROM {log}"),
                [],
                |r| r.get(0),
            )
            .map_err(e)?;
        dst.execute_batch("PRAGMA defer_foreign_keys = ON")
            .map_err(e)?;
        while pos < upto {
            let (last, n) = apply(src, dst, &moving, (&org, &log, from_control), (pos, upto))?;
            pos = last;
            applied += i64::try_from(n).unwrap_or(i64::MAX);
        }
        compare(
            &digest(src, &moving, &org, false)?,
            &digest(dst, &moving, &org, false)?,
        )?;
        // Out of the shared tables: the log goes, and the org's rows in this same
        // transaction, and the file's memberships are the control plane's (an org file's
        // log needs no dropping: the file goes in cleanup, and a resumed cut-over reads it).
        if from_control {
            drop_log(src, catalog, mv.org)?;
            let members: Vec<String> = {
                let mut st = control
                    .prepare("SELECT user_id FROM memberships_rows WHERE org_id = ?1")
                    .map_err(e)?;
                let rows = st.query_map([&org], |r| r.get(0)).map_err(e)?;
                rows.collect::<rusqlite::Result<_>>().map_err(e)?
            };
            let had: Vec<String> = {
                let mut st = file
                    .prepare("SELECT user_id FROM memberships_rows WHERE org_id = ?1")
                    .map_err(e)?;
                let rows = st.query_map([&org], |r| r.get(0)).map_err(e)?;
                rows.collect::<rusqlite::Result<_>>().map_err(e)?
            };
            for m in &members {
                file.execute("INSERT OR IGNORE INTO users (id) VALUES (?1)", [m])
                    .map_err(e)?;
                file.execute(
                    "INSERT OR IGNORE INTO memberships_rows (org_id, user_id) VALUES (?1, ?2)",
                    [&org, m],
                )
                .map_err(e)?;
            }
            for h in had.iter().filter(|h| !members.contains(h)) {
                file.execute(
                    "DELETE FROM memberships_rows WHERE org_id = ?1 AND user_id = ?2",
                    [&org, h],
                )
                .map_err(e)?;
            }
            for (_, base) in data_bases(control, catalog)?.iter().rev() {
                control
                    .execute(&format!("DELETE FROM {base} WHERE org_id = ?1"), [&org])
                    .map_err(e)?;
            }
        }
        file.execute_batch("COMMIT").map_err(e)?;
        let (k, location) = match &mv.to {
            Route::Database { name, .. } => ("database", Some(name.to_string())),
            _ => ("shared", None),
        };
        let t = now();
        control
            .execute(
                "INSERT INTO placements (org_id, kind, location, target, created_at, updated_at)
                 VALUES (?1, ?2, ?3, NULL, ?4, ?4)
                 ON CONFLICT (org_id) DO UPDATE SET kind = excluded.kind, location = excluded.location,
                     target = NULL, updated_at = excluded.updated_at",
                rusqlite::params![org, k, location, t],
            )
            .map_err(e)?;
        if from_control {
            control
                .execute("DELETE FROM placement_moves WHERE org_id = ?1", [&org])
                .map_err(e)?;
        } else {
            set(
                control,
                mv.org,
                "phase = 'cleanup', changes_applied = ?3, error = NULL",
                &[&applied],
            )?;
        }
        Ok(true)
    })();
    match done {
        Ok(true) => control.execute_batch("COMMIT").map_err(e),
        Ok(false) => control.execute_batch("ROLLBACK").map_err(e),
        Err(err) => {
            let _ = control.execute_batch("ROLLBACK");
            Err(err)
        }
    }
}

/// After the flip (`flipped`: the old file goes) or before it (an abort: the log, its
/// triggers and the new copy go): the move's row last.
fn finish(
    db: &SqliteDb,
    catalog: &Catalog,
    control: &rusqlite::Connection,
    mv: &Move,
    flipped: bool,
) -> Result<()> {
    let org = mv.org.to_string();
    if flipped {
        if let Route::Database { name, .. } = &mv.from {
            db.files().remove(name)?;
        }
    } else {
        if file_of(db, &mv.from)?.exists() {
            let src = open_as(&file_of(db, &mv.from)?, mv.org)?;
            src.execute_batch("BEGIN IMMEDIATE").map_err(e)?;
            drop_log(&src, catalog, mv.org)?;
            src.execute_batch("COMMIT").map_err(e)?;
        }
        match &mv.to {
            Route::Database { name, .. } => db.files().remove(name)?,
            _ => {
                control.execute_batch("BEGIN IMMEDIATE").map_err(e)?;
                let r = (|| -> Result<()> {
                    if route_of(control, mv.org)? == Route::Shared {
                        return Err(Error::Internal(
                            "the directory places the org in the shared tables: its rows stay"
                                .into(),
                        ));
                    }
                    for (_, base) in data_bases(control, catalog)?.iter().rev() {
                        control
                            .execute(&format!("DELETE FROM {base} WHERE org_id = ?1"), [&org])
                            .map_err(e)?;
                    }
                    Ok(())
                })();
                match r {
                    Ok(()) => control.execute_batch("COMMIT").map_err(e)?,
                    Err(err) => {
                        let _ = control.execute_batch("ROLLBACK");
                        return Err(err);
                    }
                }
            }
        }
    }
    control
        .execute(
            "DELETE FROM placement_moves WHERE org_id = ?1 AND (phase = 'cleanup') = ?2",
            rusqlite::params![org, flipped],
        )
        .map_err(e)?;
    Ok(())
}

/// Aborts `org`'s move before its flip (see [`crate::placement::abort_move`]).
pub(crate) fn abort(db: &SqliteDb, catalog: &Catalog, org: OrgId) -> Result<bool> {
    let control = open_as(db.path(), org)?;
    let Some(mv) = get(&control, org)? else {
        return Err(Error::Validation(format!(
            "organization {org} is not moving: nothing to abort"
        )));
    };
    if mv.phase == "cleanup" {
        return Err(crate::placement::flipped(org));
    }
    let lock = match lock(db, org) {
        Ok(l) => l,
        Err(Error::Conflict("move_running", _)) => {
            let n = control
                .execute(
                    "UPDATE placement_moves SET error = ?2, updated_at = ?3 WHERE org_id = ?1 AND phase <> 'cleanup'",
                    rusqlite::params![org.to_string(), crate::placement::ABORT_REQUESTED, now()],
                )
                .map_err(e)?;
            if n == 0 {
                return Err(crate::placement::flipped(org));
            }
            return Ok(false);
        }
        Err(err) => return Err(err),
    };
    let Some(mv) = get(&control, org)? else {
        return Ok(true);
    };
    if mv.phase == "cleanup" {
        return Err(crate::placement::flipped(org));
    }
    finish(db, catalog, &control, &mv, false)?;
    drop(lock);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One mover per org, with the lock file removed by each holder as it lets go: four
    /// threads taking the lock over and over are never inside at once (without the check
    /// that the path still names the locked file, a thread that opened the file before
    /// its holder removed it locks a file nobody else can see, and two are inside).
    #[test]
    fn a_removed_lock_file_still_excludes_a_second_mover() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let dir = std::env::temp_dir().join(format!("orgwall-lock-{}", uuid::Uuid::now_v7()));
        let org = OrgId::new();
        let inside = AtomicUsize::new(0);
        let (held, refused) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..20_000 {
                        match lock_in(&dir, org) {
                            Ok(l) => {
                                assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two movers");
                                std::thread::yield_now();
                                inside.fetch_sub(1, Ordering::SeqCst);
                                held.fetch_add(1, Ordering::SeqCst);
                                drop(l);
                            }
                            Err(Error::Conflict("move_running", _)) => {
                                refused.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                });
            }
        });
        assert!(held.load(Ordering::SeqCst) > 0 && refused.load(Ordering::SeqCst) > 0);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "no lock file is left"
        );
        std::fs::remove_dir(&dir).unwrap();
    }
}
