//! SQLite placements: an org's data plane in a file of its own (see
//! [`crate::placement`]).
//!
//! The file is `orgs/<name>.db` beside the control file, `<name>` the org's placement
//! database name ([`crate::placement::database_name`]). It holds the data-plane tables at
//! the current version behind the same wall as the control file (scoped views, `INSTEAD
//! OF` triggers, guard triggers, named cascades, an authorizer on every server
//! connection), and the members projection the data plane's foreign keys point at:
//! `orgs` (the org's id), `users` (ids) and `memberships_rows` (key columns), written only
//! by statements compiled in the projecting phase (see `authorize_placed`).
//!
//! A file exists whole or not at all: it is made under a name of its own, filled in one
//! transaction, and only then renamed into place.

use super::{open_conn, walls, Guard, Pool, SqliteDb};
use crate::migrate::quote_ident;
use crate::module::Catalog;
use crate::placement::{database_name, is_database_name, Kind, Route};
use orgwall_core::{Error, OrgId, Result};
use rusqlite::OptionalExtension;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// How many org files one process keeps pools open for at once: past that, the least
/// recently used one is closed (its connections once its transactions end). Each open
/// connection holds three file descriptors (the file, its WAL and its shared memory).
const OPEN_FILES: usize = 64;

/// Connections per org file (at most).
const FILE_POOL: usize = 4;

/// The members projection of an org's own file (its tables named as the data plane's
/// foreign keys name them).
pub(crate) const PROJECTION_DDL: &str = "
CREATE TABLE orgs (id TEXT PRIMARY KEY);
CREATE TABLE users (id TEXT PRIMARY KEY);
CREATE TABLE memberships_rows (
    org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (org_id, user_id)
);";

/// The pools of org files in use, by placement name, with when each was last used.
type Pools = HashMap<String, (Arc<Pool>, Instant)>;

/// The org files of one control file, and the pools of those in use.
pub(crate) struct Files {
    dir: PathBuf,
    pool_size: usize,
    pools: Mutex<Pools>,
}

impl Files {
    /// The org files of the control file at `control`: the directory `orgs` beside it.
    pub(crate) fn new(control: &Path, pool_size: usize) -> Files {
        let dir = control
            .parent()
            .map_or_else(|| PathBuf::from("orgs"), |d| d.join("orgs"));
        Files {
            dir,
            pool_size: pool_size.clamp(1, FILE_POOL),
            pools: Mutex::new(HashMap::new()),
        }
    }

    /// The directory holding them.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of placement `name` (a checked placement name).
    pub(crate) fn path(&self, name: &str) -> Result<PathBuf> {
        if !is_database_name(name) {
            return Err(Error::Internal(format!(
                "{name:?} is not a placement database name"
            )));
        }
        Ok(self.dir.join(format!("{name}.db")))
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Pools>> {
        self.pools
            .lock()
            .map_err(|_| Error::Internal("placement pools lock poisoned".into()))
    }

    /// The pool of placement `name`, opened on first use (its connections lazily, never
    /// creating the file).
    pub(crate) fn pool(&self, name: &str) -> Result<Arc<Pool>> {
        let path = self.path(name)?;
        let mut pools = self.lock()?;
        if let Some((pool, used)) = pools.get_mut(name) {
            *used = Instant::now();
            return Ok(pool.clone());
        }
        if pools.len() >= OPEN_FILES {
            let oldest = pools
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(n, _)| n.clone());
            if let Some(n) = oldest {
                pools.remove(&n);
            }
        }
        let pool = Arc::new(Pool::new(path, self.pool_size, Guard::Placed, false));
        pools.insert(name.to_owned(), (pool.clone(), Instant::now()));
        Ok(pool)
    }

    /// Forgets the pool of placement `name` (its connections close as their
    /// transactions end).
    pub(crate) fn forget(&self, name: &str) -> Result<()> {
        self.lock()?.remove(name);
        Ok(())
    }

    /// Removes placement `name`'s file (and its WAL and shared memory), if it exists.
    pub(crate) fn remove(&self, name: &str) -> Result<()> {
        self.forget(name)?;
        let path = self.path(name)?;
        remove_file_set(&path)
    }

    /// The placement files found in the directory (their names), by name.
    pub(crate) fn found(&self) -> Result<Vec<String>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(Error::Unavailable(format!(
                    "cannot read {}: {e}",
                    self.dir.display()
                )))
            }
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.strip_suffix(".db")
                    .filter(|s| is_database_name(s))
                    .map(str::to_owned)
            })
            .collect();
        names.sort();
        Ok(names)
    }

    /// Files left half-made by a placement that did not finish (`<name>.db.making`).
    pub(crate) fn half_made(&self) -> Result<Vec<String>> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Ok(Vec::new());
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".db.making"))
            .collect();
        names.sort();
        Ok(names)
    }
}

/// `path` with `suffix` appended to its file name (a SQLite file's `-wal`, `-shm`, ...).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// Removes a SQLite file with its WAL and shared-memory files (a missing one is fine).
fn remove_file_set(path: &Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let p = with_suffix(path, suffix);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::Unavailable(format!(
                    "cannot remove {}: {e}",
                    Path::new(&p).display()
                )))
            }
        }
    }
    Ok(())
}

fn internal(e: rusqlite::Error) -> Error {
    super::sqlite_err(e)
}

/// The data-plane tables of `org` holding rows in the file `conn` is open on (an owner
/// connection: it reads the base tables).
pub(crate) fn tables_with_rows(
    conn: &rusqlite::Connection,
    catalog: &Catalog,
    org: OrgId,
) -> Result<Vec<&'static str>> {
    let mut found = Vec::new();
    for (t, base) in data_bases(conn, catalog)? {
        let any: bool = conn
            .query_row(
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM {} WHERE org_id = ?1)",
                    quote_ident(&base)
                ),
                [org.to_string()],
                |r| r.get(0),
            )
            .map_err(internal)?;
        if any {
            found.push(t);
        }
    }
    Ok(found)
}

/// The data-plane tables whose base table (`<t>_rows`) the file `conn` is open on holds:
/// (logical name, base table name).
pub(crate) fn data_bases(
    conn: &rusqlite::Connection,
    catalog: &Catalog,
) -> Result<Vec<(&'static str, String)>> {
    let mut out = Vec::new();
    for t in catalog.data_tables() {
        let base = format!("{t}_rows");
        let exists: bool = conn
            .query_row(
                "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [&base],
                |r| r.get(0),
            )
            .map_err(internal)?;
        if exists {
            out.push((t, base));
        }
    }
    Ok(out)
}

/// Makes `org`'s file at `path` whole: under a temporary name, in one transaction, the
/// members projection (the org and `members`), the data-plane migrations at the current
/// version and their walls; then renamed into place. A file already there is refused.
pub(crate) fn provision(
    path: &Path,
    catalog: &Catalog,
    org: OrgId,
    members: &[String],
) -> Result<()> {
    if path.exists() {
        return Err(Error::Conflict(
            "placement_exists",
            format!(
                "{} already exists (an earlier placement left behind?); remove it or check it with orgwall doctor: nothing changed",
                path.display()
            ),
        ));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
    }
    let making = with_suffix(path, ".making");
    remove_file_set(&making)?;
    let made = (|| -> Result<()> {
        let mut conn = open_conn(&making, Guard::Owner, true)?.conn;
        walls::migrate_placed(&mut conn, catalog, &|tx| {
            tx.execute_batch(PROJECTION_DDL)?;
            tx.execute("INSERT INTO orgs (id) VALUES (?1)", [org.to_string()])?;
            for m in members {
                tx.execute("INSERT INTO users (id) VALUES (?1)", [m])?;
                tx.execute(
                    "INSERT INTO memberships_rows (org_id, user_id) VALUES (?1, ?2)",
                    [&org.to_string(), m],
                )?;
            }
            Ok(())
        })?;
        // One file, no WAL beside it, before it is renamed into place.
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE;")
            .map_err(internal)?;
        drop(conn);
        std::fs::rename(&making, path).map_err(|e| {
            Error::Unavailable(format!("cannot rename into {}: {e}", path.display()))
        })?;
        // The rename made durable before the directory names the file.
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| Error::Unavailable(format!("cannot sync {}: {e}", dir.display())))?;
        }
        Ok(())
    })();
    if made.is_err() {
        let _ = remove_file_set(&making);
    }
    made
}

/// Places `org` on SQLite (see [`crate::placement::set`]): `shared` or `database` (a file
/// of its own), only while it holds no data-plane row. The control file is locked for
/// writing (`BEGIN IMMEDIATE`) from the first read to the directory change, and a file
/// being left is locked from its emptiness check until it is removed, so no write lands
/// in either meanwhile (a tenant write transaction checks the directory once it holds
/// the control file's lock, see [`crate::Db`]).
pub(crate) fn place(db: &SqliteDb, catalog: &Catalog, org: OrgId, kind: &Kind) -> Result<Route> {
    let wanted = match kind {
        Kind::Shared => Route::Shared,
        Kind::Database(None) => Route::Database {
            name: database_name(org).into(),
            target: None,
        },
        Kind::Schema => {
            return Err(Error::Validation(
                "placement schema needs PostgreSQL (SQLite has no schemas); on SQLite an org is shared or in a file of its own (database)"
                    .into(),
            ))
        }
        Kind::Database(Some(t)) => {
            return Err(Error::Validation(format!(
                "no target named {t}: target servers are PostgreSQL servers; on SQLite an org's database of its own is a file under the data directory (placement database)"
            )))
        }
    };
    let files = db.files();
    let mut control = open_conn(db.path(), Guard::Owner, true)?.conn;
    let tx = control
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(internal)?;
    let row: Option<(Option<String>, Option<String>)> = {
        let mut st = tx
            .prepare(
                "SELECT pl.kind, pl.location FROM orgs o LEFT JOIN placements pl ON pl.org_id = o.id
                 WHERE o.id = ?1",
            )
            .map_err(internal)?;
        let mut rows = st
            .query_map([org.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(internal)?;
        rows.next().transpose().map_err(internal)?
    };
    let (kind_now, location) =
        row.ok_or_else(|| Error::Validation(format!("no organization {org}")))?;
    let current = match kind_now {
        Some(k) => Route::from_parts(&k, location, None)?,
        None => Route::Shared,
    };
    let moving: Option<String> = tx
        .query_row(
            "SELECT phase FROM placement_moves WHERE org_id = ?1",
            [org.to_string()],
            |r| r.get(0),
        )
        .optional()
        .map_err(internal)?;
    crate::placement::moving_refusal(org, moving)?;
    let missing = match &current {
        Route::Database { name, .. } => !files.path(name)?.exists(),
        _ => false,
    };
    // Placed where it is asked to be (a missing file is made anew: the org had lost it).
    if current == wanted && !missing {
        return Ok(current);
    }
    // Leaving a file of its own: held locked until it is removed. A file gone missing (the
    // doctor names it) holds nothing any more: the org may leave it.
    let mut old: Option<(String, Option<rusqlite::Connection>)> = None;
    let holding = match &current {
        Route::Database { name, .. } if !files.path(name)?.exists() => {
            tracing::warn!(org = %org, file = %name, "the org's file is missing; placing it anew");
            old = Some((name.to_string(), None));
            Vec::new()
        }
        Route::Database { name, .. } => {
            let path = files.path(name)?;
            let conn = open_conn(&path, Guard::Owner, false)?.conn;
            conn.execute_batch("BEGIN IMMEDIATE").map_err(internal)?;
            let found = tables_with_rows(&conn, catalog, org)?;
            old = Some((name.to_string(), Some(conn)));
            found
        }
        _ => tables_with_rows(&tx, catalog, org)?,
    };
    crate::placement::empty_or_refuse(org, &current, &holding)?;
    let mut made: Option<String> = None;
    if let Route::Database { name, .. } = &wanted {
        let members: Vec<String> = {
            let mut st = tx
                .prepare("SELECT user_id FROM memberships_rows WHERE org_id = ?1 ORDER BY user_id")
                .map_err(internal)?;
            let rows = st
                .query_map([org.to_string()], |r| r.get(0))
                .map_err(internal)?;
            rows.collect::<rusqlite::Result<_>>().map_err(internal)?
        };
        provision(&files.path(name)?, catalog, org, &members)?;
        made = Some(name.to_string());
    }
    let (k, location) = match &wanted {
        Route::Database { name, .. } => ("database", Some(name.to_string())),
        _ => ("shared", None),
    };
    let now = crate::value::now().timestamp_micros();
    let flipped = tx
        .execute(
            "INSERT INTO placements (org_id, kind, location, target, created_at, updated_at)
             VALUES (?1, ?2, ?3, NULL, ?4, ?4)
             ON CONFLICT (org_id) DO UPDATE SET kind = excluded.kind, location = excluded.location,
                 target = NULL, updated_at = excluded.updated_at",
            rusqlite::params![org.to_string(), k, location, now],
        )
        .and_then(|_| tx.commit())
        .map_err(internal);
    if let Err(e) = flipped {
        if let Some(name) = made {
            if let Err(d) = files.remove(&name) {
                tracing::warn!(file = %name, error = %d, "could not remove an org file the directory does not name");
            }
        }
        return Err(e);
    }
    // The old file goes once the directory no longer names it (it held no data-plane
    // row); a failure leaves an orphan the doctor names. Its lock is let go only after.
    if let Some((name, conn)) = old.filter(|(n, _)| made.as_deref() != Some(n.as_str())) {
        if let Err(e) = files.remove(&name) {
            tracing::warn!(file = %name, error = %e, "the old org file could not be removed");
        }
        drop(conn);
    }
    Ok(wanted)
}

/// Every org placed in a file of its own: (org, placement name), by name.
pub(crate) fn placed(conn: &rusqlite::Connection) -> Result<Vec<(String, String)>> {
    let mut st = conn
        .prepare(
            "SELECT org_id, location FROM placements WHERE kind = 'database' ORDER BY location",
        )
        .map_err(internal)?;
    let rows = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(internal)?;
    rows.collect::<rusqlite::Result<_>>().map_err(internal)
}

/// Brings every org file to the current data-plane version with its walls, each in one
/// transaction of its own, telling `progress` (done, total). A failure names the org's
/// file and leaves the others as they are (each at the old or the new version); a re-run
/// continues.
pub(crate) async fn migrate_files(
    db: &SqliteDb,
    catalog: &Catalog,
    progress: &(dyn Fn(usize, usize) + Send + Sync),
) -> Result<usize> {
    let conn = db.owner_conn().await?;
    let placed = tokio::task::spawn_blocking(move || placed(&conn))
        .await
        .map_err(Error::internal)??;
    let total = placed.len();
    progress(0, total);
    for (i, (org, name)) in placed.into_iter().enumerate() {
        let path = db.files().path(&name)?;
        let c = catalog.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let mut conn = open_conn(&path, Guard::Owner, false)?.conn;
            walls::migrate_placed(&mut conn, &c, &|_| Ok(()))
        })
        .await
        .map_err(Error::internal)?
        .map_err(|e| {
            Error::Internal(format!(
                "placement {} of {total} (org {org}, file {name}.db) failed to migrate: {e}; the others are unchanged or done, run migrate again",
                i + 1
            ))
        })?;
        progress(i + 1, total);
    }
    Ok(total)
}

/// The data-plane versions recorded in placement file `name`, per module, and its size in
/// bytes (with its write-ahead log).
pub(crate) fn versions(files: &Files, name: &str) -> Result<(Vec<(String, i64)>, i64)> {
    let path = files.path(name)?;
    let conn = open_conn(&path, Guard::Owner, false)?.conn;
    let mut size = 0;
    for suffix in ["", "-wal"] {
        size += std::fs::metadata(with_suffix(&path, suffix)).map_or(0, |m| m.len());
    }
    let mut st = conn
        .prepare(
            "SELECT module, max(version) FROM schema_migrations GROUP BY module ORDER BY module",
        )
        .map_err(internal)?;
    let rows = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(internal)?;
    let versions = rows.collect::<rusqlite::Result<_>>().map_err(internal)?;
    Ok((versions, i64::try_from(size).unwrap_or(i64::MAX)))
}
