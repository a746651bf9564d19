//! Online moves on PostgreSQL (see [`crate::placement::start_move`]): one org's data plane
//! from one placement to another (shared tables, its own schema, its own database on the
//! control server or a registered target) while it is in use.
//!
//! The phases, each resumable from the `placement_moves` row (the move's durable state):
//!
//! 1. `prepare`: the destination made empty with every wall (a database with its members
//!    projection, a schema, or nothing for the shared tables), and in the source database
//!    a publication of the org's data-plane tables (row filter `org_id = ORG`) and a
//!    logical replication slot (`pgoutput`), both named `orgwall_move_<org hex>`.
//! 2. `copy`: in chunks (a table's next rows in primary-key order), each from a snapshot
//!    of its own: under the org's write fence (held for a moment) the source's WAL
//!    position `L` is read and a repeatable-read snapshot opened (every transaction of the
//!    org committed before `L` is in the snapshot, every later one in the slot after it);
//!    the fence is let go, the slot replayed into the destination up to `L`, and the
//!    chunk's rows copied from the snapshot (`COPY`) and added where not already there.
//!    No snapshot lives longer than a chunk (see [`Mover::copy`]).
//! 3. `catch_up`: the slot's changes (whole transactions committed after `L`) are read
//!    with `pg_logical_slot_peek_binary_changes` and replayed in the destination (each
//!    batch in one transaction there, then the slot is advanced: a mover that dies between
//!    replays the batch again, and replaying is idempotent: inserts are upserts, updates and
//!    deletes name the key). Then the cut-over: the fence taken exclusive (the org's writes
//!    wait), the rest of the changes drained up to the source's position, per-table row
//!    counts and checksums compared, the members projection brought in step, and the
//!    directory flipped with the move's phase in the same control transaction; its commit
//!    lifts the fence, and waiting writes read the new route.
//! 4. `cleanup`: the slot and publication dropped, the old copy removed (the org's shared
//!    rows deleted, its schema or database dropped), the move's row deleted.
//!
//! Why PostgreSQL's own logical decoding read by the mover rather than a subscription: a
//! subscription applies into a table of the same name, so it cannot move an org between
//! the shared tables and a schema of the same database, and it needs a subscription owner
//! on every target; one reader that replays through ordinary statements serves every pair
//! of placements alike, on one server or two. Replay runs with `session_replication_role
//! = replica` (as PostgreSQL's own apply does): foreign keys and cascades already held in
//! the source, and the search-terms triggers (`ENABLE ALWAYS`) rebuild the derived rows.

use super::map_err;
use super::pgoutput::{self, Message, Relation, Value};
use super::placement::{connect_to, server_login};
use crate::module::Catalog;
use crate::placement::{flipped, Kind, Move, Route, ABORT_REQUESTED};
use orgwall_core::{Error, OrgId, Result};
use std::collections::HashMap;
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

/// The session lock a mover holds for the whole run of one org's move (one mover at a
/// time; a mover that dies lets go with its session).
const MOVER_LOCK: &str = "SELECT pg_try_advisory_lock(7270003, hashtext($1))";

/// How many changes one replay batch reads at most (whole transactions: more when one
/// transaction is larger).
const BATCH: i32 = 2_000;

/// How long a cleanup waits for transactions that may still read the old copy (see
/// `Mover::wait_for_old_readers`).
const OLD_READERS_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// A copy's chunks (see [`Mover::copy`]): the first of each table reads this many rows;
/// the next ones about this many seconds of the pace, or this many bytes at full speed,
/// within these bounds of rows.
const FIRST_CHUNK_ROWS: u64 = 1_000;
const CHUNK_SECONDS: u64 = 2;
const CHUNK_BYTES: u64 = 32 << 20;
const MIN_CHUNK_BYTES: u64 = 64 << 10;
const MIN_CHUNK_ROWS: u64 = 100;
const MAX_CHUNK_ROWS: u64 = 1_000_000;

/// How long a mark of the slot's restart point may wait for the source's running
/// transactions (see [`mark_restart_point`]) before the cut-over.
const MARK_TIMEOUT_MS: u32 = 2_000;
/// The same before each chunk of a copy, where a long transaction on the source would
/// otherwise slow every chunk.
const CHUNK_MARK_TIMEOUT_MS: u32 = 250;
/// How many chunks go unmarked after a chunk's mark timed out.
const CHUNKS_UNMARKED_AFTER_TIMEOUT: u32 = 10;

/// A copy's rows go to the destination in buffers of this many bytes (see [`Mover::copy`]).
const COPY_BUFFER: usize = 64 << 10;

/// Below this many pages a freshly copied table is not vacuumed nor analyzed (see
/// [`Mover::copy`]): PostgreSQL's planner takes a never-analyzed table for at least 10.
const SMALL_TABLE_PAGES: i64 = 10;

/// The slot and publication name of `org`'s move.
pub(crate) fn move_name(org: OrgId) -> String {
    format!("orgwall_move_{}", org.uuid().simple())
}

/// Whether `s` is a move's slot or publication name (`orgwall_move_` and 32 hex digits).
pub(crate) fn is_move_name(s: &str) -> bool {
    s.len() == 45
        && s.starts_with("orgwall_move_")
        && s.get(13..).is_some_and(|h| {
            h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

fn parse_lsn(s: &str) -> Result<u64> {
    let (hi, lo) = s
        .split_once('/')
        .ok_or_else(|| Error::Internal(format!("{s:?} is not an LSN")))?;
    let hi = u64::from_str_radix(hi, 16).map_err(Error::internal)?;
    let lo = u64::from_str_radix(lo, 16).map_err(Error::internal)?;
    Ok((hi << 32) | lo)
}

fn show_lsn(l: u64) -> String {
    format!("{:X}/{:X}", l >> 32, l & 0xFFFF_FFFF)
}

fn q(ident: &str) -> String {
    crate::migrate::quote_ident(ident)
}

/// The phase names stored in `placement_moves`.
const PHASES: [&str; 4] = ["prepare", "copy", "catch_up", "cleanup"];

fn route_parts(r: &Route) -> (&'static str, Option<String>, Option<String>) {
    match r {
        Route::Shared => ("shared", None, None),
        Route::Schema(s) => ("schema", Some(s.to_string()), None),
        Route::Database { name, target } => (
            "database",
            Some(name.to_string()),
            target.as_deref().map(str::to_owned),
        ),
    }
}

const MOVE_COLUMNS: &str = "org_id, from_kind, from_location, from_target, to_kind, to_location, to_target, phase, start_lsn::text, rows_copied, rows_total, changes_applied, error, pause_ms";

fn move_of(r: &tokio_postgres::Row) -> Result<Move> {
    Ok(Move {
        org: OrgId::from_uuid(r.try_get(0).map_err(map_err)?),
        from: Route::from_parts(
            r.try_get(1).map_err(map_err)?,
            r.try_get(2).map_err(map_err)?,
            r.try_get(3).map_err(map_err)?,
        )?,
        to: Route::from_parts(
            r.try_get(4).map_err(map_err)?,
            r.try_get(5).map_err(map_err)?,
            r.try_get(6).map_err(map_err)?,
        )?,
        phase: r.try_get(7).map_err(map_err)?,
        start_lsn: r.try_get(8).map_err(map_err)?,
        rows_copied: r.try_get(9).map_err(map_err)?,
        rows_total: r.try_get(10).map_err(map_err)?,
        changes_applied: r.try_get(11).map_err(map_err)?,
        error: r.try_get(12).map_err(map_err)?,
        pause_ms: r.try_get(13).map_err(map_err)?,
    })
}

/// Where the directory places `org` now.
pub(super) async fn route_of(
    control: &impl tokio_postgres::GenericClient,
    org: OrgId,
) -> Result<Route> {
    let row = control
        .query_opt(
            "SELECT kind, location, target FROM placements WHERE org_id = $1",
            &[&org.uuid()],
        )
        .await
        .map_err(map_err)?;
    match row {
        None => Ok(Route::Shared),
        Some(r) => Route::from_parts(r.get(0), r.get(1), r.get(2)),
    }
}

/// Every running move.
pub(crate) async fn list(control: &Client) -> Result<Vec<Move>> {
    control
        .query(
            &format!("SELECT {MOVE_COLUMNS} FROM placement_moves ORDER BY started_at"),
            &[],
        )
        .await
        .map_err(map_err)?
        .iter()
        .map(move_of)
        .collect()
}

/// `org`'s move, if one runs.
pub(crate) async fn get(control: &Client, org: OrgId) -> Result<Option<Move>> {
    control
        .query_opt(
            &format!("SELECT {MOVE_COLUMNS} FROM placement_moves WHERE org_id = $1"),
            &[&org.uuid()],
        )
        .await
        .map_err(map_err)?
        .as_ref()
        .map(move_of)
        .transpose()
}

/// Records a move of `org` to `kind` (see [`crate::placement::start_move`]).
pub(crate) async fn start(
    control: &mut Client,
    control_url: &str,
    org: OrgId,
    kind: Kind,
) -> Result<Move> {
    let tx = control.transaction().await.map_err(map_err)?;
    let row = tx
        .query_opt(
            "SELECT pl.kind, pl.location, pl.target, (SELECT phase FROM placement_moves m WHERE m.org_id = o.id),
                    o.deleting_at IS NOT NULL
             FROM orgs o LEFT JOIN placements pl ON pl.org_id = o.id WHERE o.id = $1 FOR UPDATE OF o",
            &[&org.uuid()],
        )
        .await
        .map_err(map_err)?
        .ok_or_else(|| Error::Validation(format!("no organization {org}")))?;
    let from = match row.get::<_, Option<String>>(0) {
        Some(k) => Route::from_parts(&k, row.get(1), row.get(2))?,
        None => Route::Shared,
    };
    if row.get::<_, bool>(4) {
        return Err(Error::Conflict(
            "org_deleting",
            format!("organization {org} is being deleted: it does not move"),
        ));
    }
    if let Some(phase) = row.get::<_, Option<String>>(3) {
        return Err(Error::Conflict(
            "move_running",
            format!("organization {org} is already moving (phase {phase}): see orgwall placement list, or --abort it"),
        ));
    }
    let to = crate::placement::route_for(org, &kind);
    if from == to {
        return Err(Error::Conflict(
            "already_placed",
            format!(
                "organization {org} is already in its {} placement: nothing to move",
                to.kind()
            ),
        ));
    }
    let (fk, fl, ft) = route_parts(&from);
    let (tk, tl, tt) = route_parts(&to);
    // The destination's server: the control server, or the target named (which must be
    // registered).
    let dest = server_login(&tx, control_url, tt.as_deref()).await?;
    // What logical decoding needs, said before anything is made.
    let source = open_side(&tx, control_url, &from).await?;
    let (wal, may, system) = server_facts(&source.client).await?;
    if wal != "logical" {
        return Err(Error::Validation(format!(
            "an online move reads the source server's changes by logical decoding, and {} has wal_level = {wal}: set wal_level = logical there (a restart) and move again; nothing changed",
            source.shown
        )));
    }
    if !may {
        return Err(Error::Validation(format!(
            "the login on {} is not a superuser: a move reads logical decoding and replays with session_replication_role = replica, which need one: nothing changed",
            source.shown
        )));
    }
    // The destination through another login (another target, or the control server
    // from a target) is checked the same way; through the source's login it just was.
    if ft != tt {
        let there = connect_to(&dest.cfg, &dest.shown).await?;
        let (wal, may, other) = server_facts(&there).await?;
        // A server an org moves onto must let it move on the same way (to another server,
        // or back when this one is retired): its changes are read there by logical
        // decoding too.
        if wal != "logical" {
            return Err(Error::Validation(format!(
                "{} has wal_level = {wal}: an org moved there could not move on from it online (a move reads its source's changes by logical decoding); set wal_level = logical there (a restart) and move again; nothing changed",
                dest.shown
            )));
        }
        if !may {
            return Err(Error::Validation(format!(
                "the login on {} is not a superuser: a move replays the org's rows there with session_replication_role = replica, which needs one: nothing changed",
                dest.shown
            )));
        }
        // A target that is the control server (or another target) under a second name
        // would make the two ends one database: the mover would drop the copy that serves.
        if fk == tk && fl == tl && other == system {
            return Err(Error::Validation(format!(
                "{} is the server organization {org} is on already (the same database under another target name): nothing changed",
                dest.shown
            )));
        }
    }
    tx.execute(
        "INSERT INTO placement_moves (org_id, from_kind, from_location, from_target, to_kind, to_location, to_target, phase, started_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'prepare', now(), now())",
        &[&org.uuid(), &fk, &fl, &ft, &tk, &tl, &tt],
    )
    .await
    .map_err(map_err)?;
    tx.commit().await.map_err(map_err)?;
    get(control, org)
        .await?
        .ok_or_else(|| Error::Internal("the move just recorded is gone".into()))
}

/// What a move needs to know of a server, through a login to it: its `wal_level`, whether
/// the login is a superuser, and the server's system identifier (one server under two
/// names has one).
async fn server_facts(c: &tokio_postgres::Client) -> Result<(String, bool, i64)> {
    let row = c
        .query_one(
            "SELECT current_setting('wal_level'),
                    (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
                    (SELECT system_identifier FROM pg_control_system())",
            &[],
        )
        .await
        .map_err(map_err)?;
    Ok((row.get(0), row.get(1), row.get(2)))
}

/// One end of a move: a connection to the database holding the placement (as the owner)
/// and the schema its data-plane tables are in.
struct Side {
    client: Client,
    schema: String,
    route: Route,
    shown: String,
}

impl Side {
    fn table(&self, t: &str) -> String {
        format!("{}.{}", q(&self.schema), q(t))
    }
}

async fn open_side(
    control: &impl tokio_postgres::GenericClient,
    control_url: &str,
    route: &Route,
) -> Result<Side> {
    let (login, db) = match route {
        Route::Database { name, target } => (
            server_login(control, control_url, target.as_deref()).await?,
            Some(name.clone()),
        ),
        _ => (server_login(control, control_url, None).await?, None),
    };
    let mut cfg = login.cfg.clone();
    let mut shown = login.shown.clone();
    if let Some(d) = &db {
        cfg.dbname(&**d);
        shown = format!("{shown} (database {d})");
    }
    let client = connect_to(&cfg, &shown).await?;
    // Values compared as text (the content check) print alike on every server.
    client
        .batch_execute(
            "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres';
             SET extra_float_digits = 3; SET standard_conforming_strings = on",
        )
        .await
        .map_err(map_err)?;
    let schema = match route {
        Route::Schema(s) => {
            // As a tenant transaction of the org sees it: its schema first, so what the
            // data plane's triggers write (the search terms) lands there too.
            let control: String = client
                .query_one("SELECT current_schema()::text", &[])
                .await
                .map_err(map_err)?
                .get(0);
            if !crate::placement::is_schema_name(s) {
                return Err(Error::Internal(format!("{s:?} is not a placement schema")));
            }
            client
                .batch_execute(&format!("SET search_path TO {s}, {}", q(&control)))
                .await
                .map_err(map_err)?;
            s.to_string()
        }
        _ => client
            .query_one("SELECT current_schema()::text", &[])
            .await
            .map_err(map_err)?
            .get(0),
    };
    Ok(Side {
        client,
        schema,
        route: route.clone(),
        shown,
    })
}

/// What the mover knows of one destination table.
struct Table {
    /// Its logical name.
    name: &'static str,
    /// Non-generated columns, in order: (name, type as `format_type` says).
    columns: Vec<(String, String)>,
    key: Vec<String>,
    /// Columns referencing the users table (a database destination's projection must hold
    /// every user they name).
    user_columns: Vec<String>,
}

async fn describe(side: &Side, name: &'static str) -> Result<Table> {
    let qualified = side.table(name);
    let rows = side
        .client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod),
                    EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisprimary
                            AND a.attnum = ANY (i.indkey))
             FROM pg_attribute a
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
             ORDER BY a.attnum",
            &[&qualified],
        )
        .await
        .map_err(map_err)?;
    if rows.is_empty() {
        return Err(Error::Internal(format!(
            "{qualified} is missing on {}",
            side.shown
        )));
    }
    let columns: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let key: Vec<String> = rows
        .iter()
        .filter(|r| r.get::<_, bool>(2))
        .map(|r| r.get(0))
        .collect();
    if key.is_empty() {
        return Err(Error::Internal(format!("{qualified} has no primary key")));
    }
    let users = format!("{}.users", q(&side.schema));
    let user_columns = side
        .client
        .query(
            "SELECT a.attname::text FROM pg_constraint c
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
             WHERE c.contype = 'f' AND c.conrelid = to_regclass($1)
               AND c.confrelid = to_regclass($2) AND cardinality(c.conkey) = 1",
            &[&qualified, &users],
        )
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(Table {
        name,
        columns,
        key,
        user_columns,
    })
}

/// Everything one run of a move holds.
struct Mover<'a> {
    control: Client,
    control_url: &'a str,
    app_role: &'a str,
    catalog: &'a Catalog,
    org: OrgId,
    name: String,
    /// The data-plane tables that move (derived ones are rebuilt by their triggers).
    tables: Vec<&'static str>,
    opts: crate::placement::MoveOptions,
    progress: &'a (dyn Fn(&Move) + Sync),
    /// The owner's connection the copy's chunks take the org's fence on, made at the first
    /// chunk and kept for the next ones (see [`Mover::snapshot_at_fence`]).
    fence: tokio::sync::Mutex<Option<Client>>,
}

/// Runs (or resumes) `org`'s move to its end (see the module's doc). Returns where the org
/// is now.
pub(crate) async fn run(
    control_url: &str,
    app_role: &str,
    catalog: &Catalog,
    org: OrgId,
    opts: crate::placement::MoveOptions,
    progress: &(dyn Fn(&Move) + Sync),
) -> Result<Route> {
    let (control, conn) = tokio_postgres::connect(control_url, tokio_postgres::NoTls)
        .await
        .map_err(|e| super::connect_error(control_url, e))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "mover connection closed");
        }
    });
    let held: bool = control
        .query_one(MOVER_LOCK, &[&org.to_string()])
        .await
        .map_err(map_err)?
        .get(0);
    if !held {
        return Err(Error::Conflict(
            "move_running",
            format!("another mover is running organization {org}'s move"),
        ));
    }
    let m = Mover {
        control,
        control_url,
        app_role,
        catalog,
        org,
        name: move_name(org),
        tables: catalog
            .data_tables()
            .filter(|t| !catalog.is_derived(t))
            .collect(),
        opts,
        progress,
        fence: tokio::sync::Mutex::default(),
    };
    if let Some(mv) = get(&m.control, org).await? {
        if mv.phase != "cleanup" {
            // A cut-over that died between retiring the old database's mirror and the
            // flip left it retired: restored before anything else.
            m.unretire(&mv.from).await?;
        }
    }
    loop {
        let Some(mv) = get(&m.control, org).await? else {
            return route_of(&m.control, org).await;
        };
        (m.progress)(&mv);
        if mv.error.as_deref() == Some(ABORT_REQUESTED) && mv.phase != "cleanup" {
            m.finish(&mv, false).await?;
            return Err(Error::Conflict(
                "move_aborted",
                format!("organization {org}'s move was aborted; it stays where it was"),
            ));
        }
        let step = match mv.phase.as_str() {
            "prepare" => m.prepare(&mv).await,
            "copy" => m.copy(&mv).await,
            "catch_up" => m.catch_up(&mv).await,
            "cleanup" => m.finish(&mv, true).await,
            other => Err(Error::Internal(format!("a move in phase {other:?}"))),
        };
        if let Err(e) = step {
            // Said on the row (for `placement list`), then returned: a run again resumes.
            let _ = m
                .control
                .execute(
                    "UPDATE placement_moves SET error = $2, updated_at = now() WHERE org_id = $1 AND error IS DISTINCT FROM $3",
                    &[&org.uuid(), &e.to_string(), &ABORT_REQUESTED],
                )
                .await;
            return Err(e);
        }
    }
}

/// Aborts `org`'s move (see [`crate::placement::abort_move`]): at once when no mover runs
/// it, else by asking the running mover (which aborts at its next step). Returns whether
/// it is gone.
pub(crate) async fn abort(
    control_url: &str,
    app_role: &str,
    catalog: &Catalog,
    org: OrgId,
    opts: crate::placement::MoveOptions,
) -> Result<bool> {
    let (control, conn) = tokio_postgres::connect(control_url, tokio_postgres::NoTls)
        .await
        .map_err(|e| super::connect_error(control_url, e))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "mover connection closed");
        }
    });
    let Some(mv) = get(&control, org).await? else {
        return Err(Error::Validation(format!(
            "organization {org} is not moving: nothing to abort"
        )));
    };
    if mv.phase == "cleanup" {
        return Err(flipped(org));
    }
    let held: bool = control
        .query_one(MOVER_LOCK, &[&org.to_string()])
        .await
        .map_err(map_err)?
        .get(0);
    if !held {
        let n = control
            .execute(
                "UPDATE placement_moves SET error = $2, updated_at = now() WHERE org_id = $1 AND phase <> 'cleanup'",
                &[&org.uuid(), &ABORT_REQUESTED],
            )
            .await
            .map_err(map_err)?;
        if n == 0 {
            return Err(flipped(org));
        }
        return Ok(false);
    }
    // Read again under the lock: no mover runs it now.
    let Some(mv) = get(&control, org).await? else {
        return Ok(true);
    };
    if mv.phase == "cleanup" {
        return Err(flipped(org));
    }
    let m = Mover {
        control,
        control_url,
        app_role,
        catalog,
        org,
        name: move_name(org),
        tables: Vec::new(),
        opts,
        progress: &|_| {},
        fence: tokio::sync::Mutex::default(),
    };
    m.finish(&mv, false).await?;
    Ok(true)
}

impl Mover<'_> {
    async fn set_phase(&self, phase: &str, start_lsn: Option<u64>) -> Result<()> {
        debug_assert!(PHASES.contains(&phase));
        self.control
            .execute(
                "UPDATE placement_moves SET phase = $2, start_lsn = coalesce($3::text::pg_lsn, start_lsn),
                   error = CASE WHEN error = 'abort requested' THEN error END, updated_at = now()
                 WHERE org_id = $1",
                &[&self.org.uuid(), &phase, &start_lsn.map(show_lsn)],
            )
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn note(&self, column: &str, value: i64) -> Result<()> {
        let column = match column {
            "rows_copied" | "rows_total" | "changes_applied" => column,
            _ => return Err(Error::Internal(format!("no move column {column}"))),
        };
        self.control
            .execute(
                &format!("UPDATE placement_moves SET {column} = $2, updated_at = now() WHERE org_id = $1"),
                &[&self.org.uuid(), &value],
            )
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// Makes the destination (empty, every wall), the publication and the slot.
    async fn prepare(&self, mv: &Move) -> Result<()> {
        // A destination left by an earlier run of this phase is half made: made again.
        self.drop_placement(&mv.to).await?;
        match &mv.to {
            Route::Shared => {}
            Route::Schema(schema) => {
                let mut c = self.owner().await?;
                let tx = c.transaction().await.map_err(map_err)?;
                tx.batch_execute(super::walls::MIGRATION_LOCK)
                    .await
                    .map_err(map_err)?;
                tx.batch_execute(&format!("CREATE SCHEMA {schema}"))
                    .await
                    .map_err(map_err)?;
                let control = super::placement::enter(&tx, schema).await?;
                super::walls::apply(&tx, self.app_role, self.catalog, crate::module::Plane::Data)
                    .await?;
                tx.batch_execute(&format!("SET LOCAL search_path TO {control}"))
                    .await
                    .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
            }
            Route::Database { name, target } => {
                let login =
                    server_login(&self.control, self.control_url, target.as_deref()).await?;
                let members = self.members().await?;
                // Its access mirror retired until a cut-over opens it: a request with a
                // route into a database of this name from before (a cache that missed the
                // announcements of a move out and back) finds its scope stale there, and
                // never reads or writes a half-made copy.
                let projection = super::placement::Projection {
                    org: self.org,
                    users: members.clone(),
                    members,
                    mirror: crate::placement::MIRROR_RETIRED,
                };
                super::placement::provision_database(
                    &login,
                    name,
                    self.app_role,
                    self.catalog,
                    &projection,
                )
                .await?;
            }
        }
        let source = self.side(&mv.from).await?;
        let exists = source
            .client
            .query_opt(
                "SELECT 1 FROM pg_publication WHERE pubname = $1",
                &[&self.name],
            )
            .await
            .map_err(map_err)?
            .is_some();
        if !exists {
            let id = self.org.uuid();
            let tables: Vec<String> = self
                .tables
                .iter()
                .map(|t| format!("{} WHERE (org_id = '{id}')", source.table(t)))
                .collect();
            source
                .client
                .batch_execute(&format!(
                    "CREATE PUBLICATION {} FOR TABLE {}",
                    self.name,
                    tables.join(", ")
                ))
                .await
                .map_err(map_err)?;
        }
        let slot = source
            .client
            .query_opt(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
                &[&self.name],
            )
            .await
            .map_err(map_err)?
            .is_some();
        if !slot {
            source
                .client
                .execute(
                    "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
                    &[&self.name],
                )
                .await
                .map_err(map_err)?;
        }
        self.set_phase("copy", None).await
    }

    async fn owner(&self) -> Result<Client> {
        let login = server_login(&self.control, self.control_url, None).await?;
        connect_to(&login.cfg, &login.shown).await
    }

    async fn side(&self, route: &Route) -> Result<Side> {
        open_side(&self.control, self.control_url, route).await
    }

    /// The org's members' user ids (as the control plane says).
    async fn members(&self) -> Result<Vec<uuid::Uuid>> {
        let mut c = self.owner().await?;
        let tx = c.transaction().await.map_err(map_err)?;
        tx.execute(
            "SELECT set_config('app.org_id', $1, true)",
            &[&self.org.to_string()],
        )
        .await
        .map_err(map_err)?;
        Ok(tx
            .query(
                "SELECT user_id FROM memberships WHERE org_id = $1 ORDER BY user_id",
                &[&self.org.uuid()],
            )
            .await
            .map_err(map_err)?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    /// Copies the org's rows in chunks, each read from a short snapshot of its own (see
    /// the module's doc): under the org's fence for a moment, a snapshot `S` and the
    /// source's position `L`; the slot replayed into the destination up to `L` exactly
    /// (the destination then holds a part of what `S` holds, each row as `S` has it); the
    /// chunk (the next rows of one table in primary-key order) read from `S` and added to
    /// the destination, each row not already there (one that is, a row written since the
    /// copy began, is already as `S` has it). So after every chunk the destination holds a
    /// part of the source as it was at one moment, which breaks no constraint the source
    /// keeps (a project's unique key included), and after the last one it holds all of it.
    ///
    /// Why chunks and not one snapshot for the whole copy: PostgreSQL keeps every version
    /// of every row updated in the source database while a snapshot there is open (the
    /// other orgs' hot rows included, such as each org's usage counters, updated on every
    /// create), and a paced copy of a large org lasts minutes.
    async fn copy(&self, mv: &Move) -> Result<()> {
        let source = self.side(&mv.from).await?;
        let mut snap_side = self.side(&mv.from).await?;
        let mut dest = self.side(&mv.to).await?;
        // Into a placement of its own (not serving yet) the derived tables are copied too,
        // with the triggers that derive them off for each chunk's transaction: rebuilding
        // them row by row is most of the time a large org's copy takes. Into the shared
        // tables (whose triggers serve every org) they are derived as usual.
        let dest_shared = dest.route == Route::Shared;
        let copied: Vec<&'static str> = if dest_shared {
            self.tables.clone()
        } else {
            self.catalog.data_tables().collect()
        };
        let mut described = Vec::with_capacity(copied.len());
        for t in &copied {
            described.push(describe(&dest, t).await?);
        }
        let org = self.org.to_string();
        let dest_schema = dest.schema.clone();
        let dest_database = matches!(dest.route, Route::Database { .. });
        {
            let tx = dest.client.transaction().await.map_err(map_err)?;
            tx.batch_execute("SET LOCAL session_replication_role = replica")
                .await
                .map_err(map_err)?;
            tx.execute("SELECT set_config('app.org_id', $1, true)", &[&org])
                .await
                .map_err(map_err)?;
            empty(&tx, &dest_schema, dest_shared, self.catalog, self.org).await?;
            tx.commit().await.map_err(map_err)?;
        }
        // How many rows there are to copy (for the progress bar): each table counted in a
        // statement of its own, no snapshot held across them.
        let total = {
            let tx = snap_side.client.transaction().await.map_err(map_err)?;
            tx.execute("SELECT set_config('app.org_id', $1, true)", &[&org])
                .await
                .map_err(map_err)?;
            let mut total = 0i64;
            for t in &described {
                let n: i64 = tx
                    .query_one(
                        &format!(
                            "SELECT count(*) FROM {} WHERE org_id = $1",
                            source.table(t.name)
                        ),
                        &[&self.org.uuid()],
                    )
                    .await
                    .map_err(map_err)?
                    .get(0);
                total += n;
            }
            tx.commit().await.map_err(map_err)?;
            total
        };
        self.note("rows_total", total).await?;
        let mut replay = Replay::new(&dest, &self.tables, self.org).await?;
        let mut pacer = crate::placement::Pacer::new(self.opts);
        let mut copied = 0i64;
        // The position of the first chunk's snapshot: the destination holds nothing
        // before it, so the replay skips what committed earlier.
        let mut first: Option<u64> = None;
        let mut last = 0u64;
        let mut unmarked = 0u32;
        for t in &described {
            let src = source.table(t.name);
            let dst = dest.table(t.name);
            let cols: Vec<String> = t.columns.iter().map(|(c, _)| q(c)).collect();
            let cols = cols.join(", ");
            let key = key_after_org(&source.client, &src).await?;
            let stage = format!("orgwall_move_stage_{}", t.name);
            dest.client
                .batch_execute(&format!(
                    "DROP TABLE IF EXISTS pg_temp.{stage};
                     CREATE TEMP TABLE {stage} ON COMMIT DELETE ROWS AS SELECT {cols} FROM {dst} WITH NO DATA"
                ))
                .await
                .map_err(map_err)?;
            // A row already in the destination was written there by the replay since the
            // copy began. One of the org's own rows is then as the chunk's snapshot has it,
            // and stays. A derived row (written by the destination's triggers) may hold only
            // part of what the source's does (a usage counter, counted from the changes
            // replayed so far): the chunk's version replaces it, and later changes count on.
            let arbiter: Vec<String> = t.key.iter().map(|k| q(k)).collect();
            let sets: Vec<String> = t
                .columns
                .iter()
                .filter(|(c, _)| !t.key.contains(c))
                .map(|(c, _)| format!("{0} = EXCLUDED.{0}", q(c)))
                .collect();
            let on_conflict = if self.catalog.is_derived(t.name) && !sets.is_empty() {
                format!(
                    "ON CONFLICT ({}) DO UPDATE SET {}",
                    arbiter.join(", "),
                    sets.join(", ")
                )
            } else {
                format!("ON CONFLICT ({}) DO NOTHING", arbiter.join(", "))
            };
            let derived_whole = key.is_empty() && self.catalog.is_derived(t.name);
            let mut lower: Option<Vec<String>> = None;
            // The table's highest key at its first chunk: the copy stops there. A row
            // written later (keys that grow with time, as UUIDv7 ids do, all land above
            // it) committed after that chunk's position and comes with the replay; a copy
            // reading on past it would chase the org's newest rows for as long as it
            // writes faster than the pace.
            let mut end: Option<Option<Vec<String>>> = None;
            let mut rows = self.chunk_rows(None);
            loop {
                if let Some(m) = get(&self.control, self.org).await? {
                    if m.error.as_deref() == Some(ABORT_REQUESTED) {
                        return Ok(()); // the run loop aborts
                    }
                    (self.progress)(&m);
                }
                // The chunk's replay reads the slot up to its position and confirms it
                // there, so a restart point marked just before lets the next chunk's reads
                // decode from here, not from up to 15 s of the source's WAL back (twice
                // a chunk: the peek and the advance). Measured in bench/README.md.
                // After a mark that timed out (a long transaction on the source), the
                // next few chunks do without.
                if unmarked > 0 {
                    unmarked -= 1;
                } else if !mark_restart_point(&source, &self.name, CHUNK_MARK_TIMEOUT_MS).await {
                    unmarked = CHUNKS_UNMARKED_AFTER_TIMEOUT;
                }
                let (snap, lsn) = self
                    .snapshot_at_fence(&mv.from, &mut snap_side.client)
                    .await?;
                let start = *first.get_or_insert(lsn);
                last = lsn;
                snap.execute("SELECT set_config('app.org_id', $1, true)", &[&org])
                    .await
                    .map_err(map_err)?;
                replay
                    .drain(
                        &source,
                        &mut dest,
                        (&self.name, start),
                        lsn,
                        Advance::Always,
                    )
                    .await?;
                let (upper, done) = if key.is_empty() {
                    (None, true)
                } else {
                    let max = match &end {
                        Some(m) => m.clone(),
                        None => {
                            let m = key_max(&snap, &src, &key, self.org).await?;
                            end = Some(m.clone());
                            m
                        }
                    };
                    match max {
                        // No rows at the first chunk: whatever comes, comes with the replay.
                        None => (None, true),
                        Some(max) => {
                            let at = (lower.as_deref(), Some(max.as_slice()));
                            match chunk_end(&snap, &src, &key, at, rows, self.org).await? {
                                Some(k) if k != max => (Some(k), false),
                                _ => (Some(max), true),
                            }
                        }
                    }
                };
                let range = key_range(&key, lower.as_deref(), upper.as_deref());
                let into = dest.client.transaction().await.map_err(map_err)?;
                into.batch_execute("SET LOCAL session_replication_role = replica")
                    .await
                    .map_err(map_err)?;
                into.execute("SELECT set_config('app.org_id', $1, true)", &[&org])
                    .await
                    .map_err(map_err)?;
                let paused = if dest_shared {
                    Vec::new()
                } else {
                    pause_triggers(&into, &dst).await?
                };
                let out = snap
                    .copy_out(&format!(
                        "COPY (SELECT {cols} FROM {src} WHERE org_id = '{}' {range}) TO STDOUT (FORMAT binary)",
                        self.org.uuid()
                    ))
                    .await
                    .map_err(map_err)?;
                let sink = into
                    .copy_in::<_, bytes::Bytes>(&format!(
                        "COPY pg_temp.{stage} ({cols}) FROM STDIN (FORMAT binary)"
                    ))
                    .await
                    .map_err(map_err)?;
                futures::pin_mut!(out);
                futures::pin_mut!(sink);
                let mut bytes = 0usize;
                {
                    use futures::{SinkExt, StreamExt};
                    // The source sends a message a row: they are gathered into buffers of
                    // [`COPY_BUFFER`] bytes, each fed to the destination without a flush and
                    // paced as one. A send (feed and flush) and a pace a row cost a wake-up
                    // of both connections' tasks and a timer a row: 14,000 a second at 1
                    // MB/s, about a quarter of a core of the process the mover runs in
                    // (measured: bench/README.md, *Online moves*).
                    let mut buf = bytes::BytesMut::with_capacity(COPY_BUFFER);
                    loop {
                        let next = out.next().await.transpose().map_err(map_err)?;
                        if let Some(row) = &next {
                            bytes += row.len();
                            buf.extend_from_slice(row);
                        }
                        if buf.len() >= COPY_BUFFER || (next.is_none() && !buf.is_empty()) {
                            let part = buf.split().freeze();
                            let wait = pacer.sent(part.len());
                            sink.feed(part).await.map_err(map_err)?;
                            if let Some(w) = wait {
                                tokio::time::sleep(w).await;
                            }
                        }
                        if next.is_none() {
                            break;
                        }
                    }
                }
                let n = sink.as_mut().finish().await.map_err(map_err)?;
                if derived_whole {
                    // One derived row per org (usage counters), counted in the destination
                    // from the changes replayed so far, where the source has none (an org
                    // emptied meanwhile forgets its row): it goes.
                    into.execute(
                        &format!(
                            "DELETE FROM {dst} WHERE org_id = $1 AND NOT EXISTS (SELECT 1 FROM pg_temp.{stage})"
                        ),
                        &[&self.org.uuid()],
                    )
                    .await
                    .map_err(map_err)?;
                }
                into.execute(
                    &format!(
                        "INSERT INTO {dst} ({cols}) SELECT {cols} FROM pg_temp.{stage} {on_conflict}"
                    ),
                    &[],
                )
                .await
                .map_err(map_err)?;
                for (name, state) in &paused {
                    into.batch_execute(&format!(
                        "ALTER TABLE {dst} {} TRIGGER {}",
                        trigger_state(state),
                        q(name)
                    ))
                    .await
                    .map_err(map_err)?;
                }
                if dest_database {
                    // Every user the chunk's rows name, in the projection: read from the
                    // chunk's rows as staged in the destination (they are still there
                    // until this transaction commits), not the source again, whose CPU
                    // the org's neighbours share.
                    let mut users: Vec<uuid::Uuid> = Vec::new();
                    for c in &t.user_columns {
                        let found = into
                            .query(
                                &format!(
                                    "SELECT DISTINCT {c} FROM pg_temp.{stage} WHERE {c} IS NOT NULL",
                                    c = q(c)
                                ),
                                &[],
                            )
                            .await
                            .map_err(map_err)?;
                        users.extend(found.iter().map(|r| r.get::<_, uuid::Uuid>(0)));
                    }
                    project_users(&into, &dest_schema, &users).await?;
                }
                into.commit().await.map_err(map_err)?;
                snap.commit().await.map_err(map_err)?;
                copied += i64::try_from(n).unwrap_or(i64::MAX);
                tracing::debug!(table = t.name, rows = n, bytes, at = %show_lsn(lsn), "a move copied a chunk");
                self.note("rows_copied", copied).await?;
                if done {
                    break;
                }
                lower = upper;
                rows = self.chunk_rows(Some((n, bytes)));
            }
            dest.client
                .batch_execute(&format!("DROP TABLE pg_temp.{stage}"))
                .await
                .map_err(map_err)?;
        }
        if !dest_shared {
            // A placement of its own, freshly filled: its statistics (the org's queries
            // plan on them from the flip on) and its visibility map (the row counts under
            // the cut-over's fence read the indexes alone, not millions of heap pages).
            // Paced like the copy when the copy is (autovacuum's own cost delay).
            if self.opts.copy_bytes_per_sec.is_some() {
                dest.client
                    .batch_execute("SET vacuum_cost_delay = '2ms'")
                    .await
                    .map_err(map_err)?;
            }
            // A table of a few pages is left as it is: never vacuumed nor analyzed,
            // PostgreSQL plans it as at least 10 pages and looks rows up by key. Recorded
            // at a page or two, a sequential scan is cheaper, and that plan stays cached
            // (foreign key checks, prepared statements) as the org grows, until autovacuum
            // analyzes it again (measured on a database placement: 14,749 scans of a
            // growing `notes` for its terms' key checks, create -42%).
            for t in &described {
                let dst = dest.table(t.name);
                let pages: i64 = dest
                    .client
                    .query_one(
                        "SELECT pg_relation_size($1::text::regclass) / current_setting('block_size')::bigint",
                        &[&dst],
                    )
                    .await
                    .map_err(map_err)?
                    .get(0);
                if pages < SMALL_TABLE_PAGES {
                    continue;
                }
                dest.client
                    .batch_execute(&format!("VACUUM (ANALYZE) {dst}"))
                    .await
                    .map_err(map_err)?;
            }
        }
        // The destination holds the source as it was at the last chunk's snapshot: the
        // catch-up replays what committed after it.
        self.set_phase("catch_up", Some(last)).await
    }

    /// How many rows the next chunk of a table reads: about [`CHUNK_SECONDS`] of the
    /// pace (or [`CHUNK_BYTES`] at full speed) at the bytes per row of the chunk before
    /// (`(rows, bytes)`), [`FIRST_CHUNK_ROWS`] for a table's first chunk; at most
    /// [`crate::placement::MoveOptions::copy_chunk_rows`].
    fn chunk_rows(&self, before: Option<(u64, usize)>) -> u64 {
        let target = self.opts.copy_bytes_per_sec.map_or(CHUNK_BYTES, |r| {
            r.saturating_mul(CHUNK_SECONDS).max(MIN_CHUNK_BYTES)
        });
        let rows = match before {
            Some((rows, bytes)) if rows > 0 && bytes > 0 => {
                let per_row = (bytes as u64 / rows).max(1);
                (target / per_row).clamp(MIN_CHUNK_ROWS, MAX_CHUNK_ROWS)
            }
            _ => FIRST_CHUNK_ROWS,
        };
        self.opts
            .copy_chunk_rows
            .map_or(rows, |cap| rows.min(cap.max(1)))
    }

    /// A repeatable-read snapshot of the source on `client` and the source's WAL insert
    /// position, both taken while the org's fence is held for a moment: every org
    /// transaction committed before the position is in the snapshot, every later one is
    /// in the slot after it.
    async fn snapshot_at_fence<'c>(
        &self,
        from: &Route,
        client: &'c mut Client,
    ) -> Result<(tokio_postgres::Transaction<'c>, u64)> {
        let mut kept = self.fence.lock().await;
        let conn = match kept.take().filter(|c| !c.is_closed()) {
            Some(c) => kept.insert(c),
            None => kept.insert(self.owner().await?),
        };
        let held = self.database_fence(from).await?;
        let fence = conn.transaction().await.map_err(map_err)?;
        fence
            .execute(super::FENCE_EXCLUSIVE_SQL, &[&self.org.to_string()])
            .await
            .map_err(map_err)?;
        self.fence_database(&held).await?;
        let snap = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(map_err)?;
        let lsn: String = snap
            .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
            .await
            .map_err(map_err)?
            .get(0);
        fence.commit().await.map_err(map_err)?;
        if let Some(held) = held {
            held.batch_execute("COMMIT").await.map_err(map_err)?;
        }
        Ok((snap, parse_lsn(&lsn)?))
    }

    /// A transaction on a connection of its own to the database the org leaves, when that
    /// is a database of its own (`None` for any other placement), to hold the org's write
    /// fence there ([`Mover::fence_database`]): its writes checked against that database's
    /// access mirror take the fence there, not on the control database (see
    /// `PgTx::flight`). Opened before the control database's fence is taken, so the
    /// connection's making is not part of the writes' pause.
    async fn database_fence(&self, from: &Route) -> Result<Option<Client>> {
        if !matches!(from, Route::Database { .. }) {
            return Ok(None);
        }
        let side = self.side(from).await?;
        side.client.batch_execute("BEGIN").await.map_err(map_err)?;
        Ok(Some(side.client))
    }

    /// Takes the org's write fence exclusive in `held`'s database (after the control
    /// database's: the order every write meets them in), until its transaction ends
    /// (COMMIT, or the connection dropped).
    async fn fence_database(&self, held: &Option<Client>) -> Result<()> {
        if let Some(c) = held {
            c.execute(super::FENCE_EXCLUSIVE_SQL, &[&self.org.to_string()])
                .await
                .map_err(map_err)?;
        }
        Ok(())
    }

    /// Replays the slot until it is nearly caught up, checks the content at a checkpoint,
    /// catches up again with what was written meanwhile, then cuts over.
    async fn catch_up(&self, mv: &Move) -> Result<()> {
        let start = parse_lsn(
            mv.start_lsn
                .as_deref()
                .ok_or_else(|| Error::Internal("a move catching up without its start".into()))?,
        )?;
        let source = self.side(&mv.from).await?;
        let mut dest = self.side(&mv.to).await?;
        let mut replay = Replay::new(&dest, &self.tables, self.org).await?;
        let mut applied = mv.changes_applied;
        if !self
            .keep_up(&source, &mut dest, &mut replay, start, &mut applied)
            .await?
        {
            return Ok(()); // the run loop aborts
        }
        let n = self
            .checkpoint(mv, &source, &mut dest, &mut replay, start)
            .await?;
        applied += i64::try_from(n).unwrap_or(i64::MAX);
        self.note("changes_applied", applied).await?;
        // The content check of a large org takes a while, and the org's writers go on: what
        // they wrote meanwhile is replayed now, not under the fence; then once more past a
        // restart point marked now, so the fence's reads of the slot start from there.
        if !self
            .keep_up(&source, &mut dest, &mut replay, start, &mut applied)
            .await?
        {
            return Ok(());
        }
        let _ = mark_restart_point(&source, &self.name, MARK_TIMEOUT_MS).await;
        // The slot confirmed past the mark (to the source's position now, even when the
        // org wrote nothing since: a short batch read everything below it), so its restart
        // point can move up to the mark.
        let here = position(&source).await?;
        let n = replay
            .drain(
                &source,
                &mut dest,
                (&self.name, start),
                here,
                Advance::Always,
            )
            .await?;
        applied += i64::try_from(n).unwrap_or(i64::MAX);
        self.cut_over(mv, &source, &mut dest, &mut replay, start, applied)
            .await
    }

    /// Replays the slot until a batch comes back small (the rest waits for the cut-over).
    /// `false`: an abort was asked for.
    async fn keep_up(
        &self,
        source: &Side,
        dest: &mut Side,
        replay: &mut Replay,
        start: u64,
        applied: &mut i64,
    ) -> Result<bool> {
        for _ in 0..1_000 {
            let (read, n) = replay
                .batch(source, dest, &self.name, start, None, Advance::Always)
                .await?;
            *applied += i64::try_from(n).unwrap_or(i64::MAX);
            self.note("changes_applied", *applied).await?;
            if read < usize::try_from(BATCH / 4).unwrap_or(0) {
                break;
            }
            if let Some(mv) = get(&self.control, self.org).await? {
                if mv.error.as_deref() == Some(ABORT_REQUESTED) {
                    return Ok(false);
                }
                (self.progress)(&mv);
            }
        }
        Ok(true)
    }

    async fn cut_over(
        &self,
        mv: &Move,
        source: &Side,
        dest: &mut Side,
        replay: &mut Replay,
        start: u64,
        mut applied: i64,
    ) -> Result<()> {
        let org = self.org.to_string();
        let mut conn = self.owner().await?;
        let held = self.database_fence(&source.route).await?;
        let fence = conn.transaction().await.map_err(map_err)?;
        fence
            .execute(super::FENCE_EXCLUSIVE_SQL, &[&org])
            .await
            .map_err(map_err)?;
        let paused = std::time::Instant::now();
        let asked: Option<String> = fence
            .query_one(
                "SELECT error FROM placement_moves WHERE org_id = $1 FOR UPDATE",
                &[&self.org.uuid()],
            )
            .await
            .map_err(map_err)?
            .get(0);
        if asked.as_deref() == Some(ABORT_REQUESTED) {
            return Ok(()); // the run loop aborts (the fence goes with this transaction)
        }
        // The fence in the database the org leaves, held past the flip: a write waiting
        // there goes on once the directory names the new placement, and finds the mirror
        // retired (its scope stale), so it follows the org. If this mover dies before the
        // flip commits, the fence goes with its connection while the mirror stays retired
        // (such writes are answered 503, never written to the copy the org leaves) until
        // the move is run again and restores it.
        self.fence_database(&held).await?;
        // No org write commits now: everything up to here is the org's last state.
        let end = position(source).await?;
        let n = replay
            .drain(source, dest, (&self.name, start), end, Advance::IfFull)
            .await?;
        applied += i64::try_from(n).unwrap_or(i64::MAX);
        let drained_ms = paused.elapsed().as_millis();
        self.verify((&source.client, &source.schema), dest, false)
            .await?;
        let counted_ms = paused.elapsed().as_millis() - drained_ms;
        if let Route::Database { .. } = &dest.route {
            // The members as the control plane has them, the org row locked: a membership
            // (an invitation accepted, which takes no fence) waits for the flip.
            fence
                .execute(
                    "SELECT 1 FROM orgs WHERE id = $1 FOR UPDATE",
                    &[&self.org.uuid()],
                )
                .await
                .map_err(map_err)?;
            fence
                .execute("SELECT set_config('app.org_id', $1, true)", &[&org])
                .await
                .map_err(map_err)?;
            let members: Vec<uuid::Uuid> = fence
                .query(
                    "SELECT user_id FROM memberships WHERE org_id = $1",
                    &[&self.org.uuid()],
                )
                .await
                .map_err(map_err)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            fence
                .execute("SELECT set_config('app.org_id', '', true)", &[])
                .await
                .map_err(map_err)?;
            sync_members(dest, self.org, &members).await?;
        }
        if let Route::Database { .. } = &dest.route {
            // The destination's mirror, retired since it was made, opened at the org's
            // generation before the directory names it (and again after, in the cleanup).
            super::placement::open_mirror(&fence, &dest.client, self.org).await?;
        }
        let (kind, location, target) = route_parts(&mv.to);
        let n = fence
            .execute(
                "UPDATE placements SET kind = $2, location = $3, target = $4, updated_at = now() WHERE org_id = $1",
                &[&self.org.uuid(), &kind, &location, &target],
            )
            .await
            .map_err(map_err)?;
        if n == 0 {
            fence
                .execute(
                    "INSERT INTO placements (org_id, kind, location, target, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, now(), now())",
                    &[&self.org.uuid(), &kind, &location, &target],
                )
                .await
                .map_err(map_err)?;
        }
        fence
            .execute(
                "UPDATE placement_moves SET phase = 'cleanup', changes_applied = $2, pause_ms = $3, error = NULL, updated_at = now() WHERE org_id = $1",
                &[
                    &self.org.uuid(),
                    &applied,
                    &i64::try_from(paused.elapsed().as_millis()).unwrap_or(i64::MAX),
                ],
            )
            .await
            .map_err(map_err)?;
        // The database the org leaves stops serving reads from cached scopes before the
        // directory flips (which lifts the fence): a read there checks the scope against
        // that database's access mirror alone, so the mirror is retired first. Until the
        // flip commits such reads wait or are answered 503, never from a copy the org's
        // next writes miss; if it does not commit, the mirror is restored.
        if let Route::Database { .. } = &source.route {
            retire_mirror(&source.client, self.org).await?;
        }
        // The fence there still held (its session alive, its transaction not aborted) up
        // to the retirement: if it was lost on the way, a write may have committed there
        // after the drain, and the org stays where it is (the move goes on later).
        let still = match &held {
            Some(c) => c.batch_execute("SELECT 1").await.map_err(map_err),
            None => Ok(()),
        };
        let committed = match still {
            Ok(()) => fence.commit().await.map_err(map_err),
            Err(e) => {
                drop(fence);
                Err(e)
            }
        };
        if let Err(e) = committed {
            if let Err(u) = self.unretire(&mv.from).await {
                tracing::warn!(org_id = %self.org, error = %u, "the access mirror of the database a move did not leave stays retired until the move runs again");
            }
            return Err(e);
        }
        if let Some(held) = held {
            // The flip is durable: the fence's connection going away would let go as well.
            let _ = held.batch_execute("COMMIT").await;
        }
        let paused_ms = u64::try_from(paused.elapsed().as_millis()).unwrap_or(u64::MAX);
        // Where the fence's time went (drained: the last changes replayed; counted: the
        // row counts on both ends), for the benchmark's breakdown.
        tracing::info!(org_id = %self.org, paused_ms, drained_ms, drained = n, counted_ms, to = mv.to.kind(), "moved: the directory names the new placement");
        Ok(())
    }

    /// Per table: the org's row count and a checksum of its rows, in the source and the
    /// destination, the same (the fence is held: neither changes).
    async fn verify(
        &self,
        source: (&(impl tokio_postgres::GenericClient + Sync), &str),
        dest: &Side,
        content: bool,
    ) -> Result<()> {
        let org = self.org.to_string();
        let (src, src_schema) = source;
        for c in [src.client(), &dest.client] {
            c.execute("SELECT set_config('app.org_id', $1, false)", &[&org])
                .await
                .map_err(map_err)?;
        }
        for t in &self.tables {
            let d = describe(dest, t).await?;
            let cols: Vec<String> = d.columns.iter().map(|(c, _)| q(c)).collect();
            let sql = |schema: &str| {
                let table = format!("{}.{}", q(schema), q(t));
                if content {
                    format!(
                        "SELECT count(*), coalesce(sum(hashtext(r::text)::bigint), 0)::bigint FROM (SELECT {} FROM {table} WHERE org_id = $1) r",
                        cols.join(", ")
                    )
                } else {
                    format!("SELECT count(*), 0::bigint FROM {table} WHERE org_id = $1")
                }
            };
            let (a, b) = (sql(src_schema), sql(&dest.schema));
            let id = self.org.uuid();
            let (xs, ys) = if content && self.opts.copy_bytes_per_sec.is_some() {
                // Paced like the copy: the content check of a large org reads every row
                // on both ends, which at full speed takes the machine's cores from others.
                let (mut pa, mut pb) = (
                    crate::placement::Pacer::new(self.opts),
                    crate::placement::Pacer::new(self.opts),
                );
                let (src_table, dest_table) =
                    (format!("{}.{}", q(src_schema), q(t)), dest.table(t));
                let (x, y) = futures::join!(
                    tally_paced(src, &src_table, &d, &id, &mut pa),
                    tally_paced(&dest.client, &dest_table, &d, &id, &mut pb)
                );
                (x?, y?)
            } else {
                let p: [&(dyn ToSql + Sync); 1] = [&id];
                let (x, y) = futures::join!(src.query_one(&a, &p), dest.client.query_one(&b, &p));
                let (x, y) = (x.map_err(map_err)?, y.map_err(map_err)?);
                ((x.get(0), x.get(1)), (y.get(0), y.get(1)))
            };
            if xs != ys {
                return Err(Error::Internal(format!(
                    "verification failed for {t}: the source holds {} rows (checksum {}), the destination {} (checksum {}); the directory was not flipped",
                    xs.0, xs.1, ys.0, ys.1
                )));
            }
        }
        for c in [src.client(), &dest.client] {
            c.execute("SELECT set_config('app.org_id', '', false)", &[])
                .await
                .map_err(map_err)?;
        }
        Ok(())
    }

    /// The content check, before the cut-over and without holding writes: under the fence
    /// for a moment the source's position `M` is read and a snapshot opened; the slot is
    /// replayed up to `M` exactly (the destination then holds what the snapshot holds), and
    /// every table's row count and checksum compared. Returns the changes replayed.
    async fn checkpoint(
        &self,
        mv: &Move,
        source: &Side,
        dest: &mut Side,
        replay: &mut Replay,
        start: u64,
    ) -> Result<usize> {
        let mut snap_side = self.side(&mv.from).await?;
        let snap_schema = snap_side.schema.clone();
        let (snap, point) = self
            .snapshot_at_fence(&mv.from, &mut snap_side.client)
            .await?;
        let applied = replay
            .drain(source, dest, (&self.name, start), point, Advance::Always)
            .await?;
        self.verify((&snap, &snap_schema), dest, true).await?;
        snap.commit().await.map_err(map_err)?;
        Ok(applied)
    }

    /// After the flip (`flipped`: the old copy goes) or before it (an abort: the new one
    /// goes): the slot and publication, the copy the directory does not name, the move's
    /// row.
    async fn finish(&self, mv: &Move, flipped: bool) -> Result<()> {
        if !flipped {
            self.unretire(&mv.from).await?;
        } else if let Route::Database { .. } = &mv.to {
            // An access change that committed while the cut-over flipped the directory
            // read the old placement with its commit and wrote no mirror here: raised to
            // the org's generation now (again if this cleanup is resumed).
            let dest = self.side(&mv.to).await?;
            super::placement::open_mirror(&self.control, &dest.client, self.org).await?;
        }
        self.drop_replication(&mv.from).await?;
        if flipped {
            self.wait_for_old_readers(&mv.from).await?;
        }
        self.drop_placement(if flipped { &mv.from } else { &mv.to })
            .await?;
        self.control
            .execute(
                "DELETE FROM placement_moves WHERE org_id = $1 AND (phase = 'cleanup') = $2",
                &[&self.org.uuid(), &flipped],
            )
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// Restores the access mirror of the database `from` (the org's placement still: no
    /// flip committed) if a cut-over retired it and then failed or died: to the org's
    /// generation on the control plane, whose row is locked meanwhile, so an access change
    /// committing now writes its own generation into the mirror after this one.
    async fn unretire(&self, from: &Route) -> Result<()> {
        if !matches!(from, Route::Database { .. }) {
            return Ok(());
        }
        let Some(side) = self.old_side(from).await? else {
            return Ok(());
        };
        let mut control = self.owner().await?;
        super::placement::restore_mirror(&mut control, &side.client, self.org).await
    }

    /// Waits until every transaction that may still read the old copy has ended: those
    /// begun before now in the database that holds it. A reader that learned the old route
    /// before the flip reads there until its transaction ends, and sees the org whole; a
    /// later one reads the directory in its first flight (or finds its cached access
    /// stale) and follows the new route. Bounded: past [`OLD_READERS_WAIT`] the cleanup
    /// fails and is run again later (by the move's job), naming what it waits for.
    async fn wait_for_old_readers(&self, from: &Route) -> Result<()> {
        let Some(side) = self.old_side(from).await? else {
            return Ok(());
        };
        let cutoff: String = side
            .client
            .query_one("SELECT now()::text", &[])
            .await
            .map_err(map_err)?
            .get(0);
        let began = std::time::Instant::now();
        loop {
            let open: i64 = side
                .client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE datname = current_database() AND pid <> pg_backend_pid()
                       AND backend_type = 'client backend' AND xact_start < $1::text::timestamptz",
                    &[&cutoff],
                )
                .await
                .map_err(map_err)?
                .get(0);
            if open == 0 {
                return Ok(());
            }
            if began.elapsed() > OLD_READERS_WAIT {
                return Err(Error::Unavailable(format!(
                    "{open} transaction(s) begun before organization {}'s move flipped are still open where its old copy is; the cleanup runs again later",
                    self.org
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// The placement a move leaves, or `None` if it is a database dropped already (a
    /// cleanup run again: nothing of the move is left there).
    async fn old_side(&self, from: &Route) -> Result<Option<Side>> {
        match self.side(from).await {
            Ok(s) => Ok(Some(s)),
            Err(e)
                if matches!(from, Route::Database { .. })
                    && e.to_string().contains("does not exist") =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    async fn drop_replication(&self, from: &Route) -> Result<()> {
        let Some(source) = self.old_side(from).await? else {
            return Ok(());
        };
        source
            .client
            .execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
                &[&self.name],
            )
            .await
            .map_err(map_err)?;
        source
            .client
            .batch_execute(&format!("DROP PUBLICATION IF EXISTS {}", self.name))
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// Deletes the org's rows from the shared tables (its old copy after the flip, or the
    /// destination of an aborted move) in batches of [`DELETE_BATCH`] rows, each committed
    /// on its own and paced like the copy ([`MoveOptions::copy_bytes_per_sec`], counting
    /// the deleted rows' bytes): one transaction deleting a large org's millions of rows
    /// held the other orgs' writers back for as long as it ran. Each batch takes the next
    /// rows in primary-key order after the last one deleted (so no batch walks over the
    /// dead rows of the ones before it), and a last sweep takes any row a concurrent
    /// update moved (a user's deletion setting its columns to NULL). Nothing reads these
    /// rows any more (the directory names another placement, the readers begun before the
    /// flip have ended, and the org cannot be placed anew while its move exists), so the
    /// batches' in-between states are never seen; a cleanup stopped between two batches
    /// deletes the rest when it runs again. Foreign-key triggers are skipped
    /// (`session_replication_role = replica`), so the order is free: tables whose rows
    /// name members go first, since a membership cannot be removed while a row there
    /// still names it (the rest children before parents).
    ///
    /// [`MoveOptions::copy_bytes_per_sec`]: crate::placement::MoveOptions
    async fn delete_shared_rows(&self) -> Result<()> {
        let side = self.side(&Route::Shared).await?;
        let c = &side.client;
        c.batch_execute("SET session_replication_role = replica")
            .await
            .map_err(map_err)?;
        c.execute(
            "SELECT set_config('app.org_id', $1, false)",
            &[&self.org.to_string()],
        )
        .await
        .map_err(map_err)?;
        let members = format!("{}.memberships", q(&side.schema));
        let mut order = Vec::new();
        for t in self
            .catalog
            .data_tables()
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            let names_members: bool = c
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE contype = 'f'
                       AND conrelid = to_regclass($1) AND confrelid = to_regclass($2))",
                    &[&side.table(t), &members],
                )
                .await
                .map_err(map_err)?
                .get(0);
            order.push((!names_members, t));
        }
        order.sort_by_key(|(later, _)| *later); // stable: children before parents
        let mut pacer = crate::placement::Pacer::new(self.opts);
        for (_, t) in order {
            delete_org_rows(c, &side.table(t), self.org, &mut pacer).await?;
        }
        Ok(())
    }

    /// Removes a copy of the org the directory does not name (a destination of an aborted
    /// move, a source after the flip).
    async fn drop_placement(&self, route: &Route) -> Result<()> {
        let named = route_of(&self.control, self.org).await?;
        if &named == route {
            return Err(Error::Internal(format!(
                "the directory places organization {} in its {} placement: not removed",
                self.org,
                route.kind()
            )));
        }
        match route {
            Route::Shared => self.delete_shared_rows().await?,
            Route::Schema(s) => super::placement::drop_schema(&mut self.owner().await?, s).await?,
            Route::Database { name, target } => {
                let login =
                    server_login(&self.control, self.control_url, target.as_deref()).await?;
                super::placement::drop_database(&login, name).await?;
            }
        }
        Ok(())
    }
}

/// Rows a cleanup deletes from a shared table per statement (and per transaction).
const DELETE_BATCH: usize = 20_000;

/// Rows a paced content check reads per statement.
const CHECK_CHUNK: usize = 2_000;

/// The org's row count and the checksum of its rows in `table` (laid out as `t`), as the
/// unpaced check computes them, read in chunks of [`CHECK_CHUNK`] in primary-key order
/// with the pacer's wait after each (the bytes read). The source's chunks are read in one
/// snapshot (its transaction); the destination changes only by the mover, which waits.
async fn tally_paced(
    c: &(impl tokio_postgres::GenericClient + Sync),
    table: &str,
    t: &Table,
    id: &uuid::Uuid,
    pacer: &mut crate::placement::Pacer,
) -> Result<(i64, i64)> {
    let key = key_after_org(c, table).await?;
    let cols: Vec<String> = t.columns.iter().map(|(c, _)| q(c)).collect();
    if key.is_empty() {
        // No key beside org_id to walk by (one row per org): one statement.
        let row = c
            .query_one(
                &format!(
                    "SELECT count(*), coalesce(sum(hashtext(r::text)::bigint), 0)::bigint
                     FROM (SELECT {} FROM {table} WHERE org_id = $1) r",
                    cols.join(", ")
                ),
                &[id],
            )
            .await
            .map_err(map_err)?;
        return Ok((row.get(0), row.get(1)));
    }
    let w = Walk::new(&key, "");
    let chunk = |after: &str| {
        format!(
            "WITH r AS MATERIALIZED (SELECT {cols} FROM {table} WHERE org_id = $1 {after}
                                     ORDER BY {order} LIMIT {CHECK_CHUNK})
             SELECT count(*), coalesce(pg_catalog.sum(pg_column_size(r.*)), 0)::int8,
                    (SELECT ARRAY[{last}] FROM r ORDER BY {descending} LIMIT 1),
                    coalesce(pg_catalog.sum(hashtext(r::text)::bigint), 0)::bigint
             FROM r",
            cols = cols.join(", "),
            order = w.cols,
            last = w.last,
            descending = w.descending,
        )
    };
    let (mut rows, mut sum) = (0i64, 0i64);
    w.run(c, (&chunk(""), &chunk(&w.after())), id, pacer, |r| {
        rows += r.get::<_, i64>(0);
        sum = sum.wrapping_add(r.get::<_, i64>(3));
    })
    .await?;
    Ok((rows, sum))
}

/// A text as an SQL string literal (the sessions that use it keep
/// `standard_conforming_strings` on, PostgreSQL's default: a backslash is itself).
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The condition that keeps a chunk's rows (see [`Mover::copy`]): after `lower` and up to
/// `upper` (the key's values as text, `None`: no bound) in the order of `key` (its
/// columns after `org_id`, with their types). Literals, as `COPY` takes no parameters.
fn key_range(
    key: &[(String, String)],
    lower: Option<&[String]>,
    upper: Option<&[String]>,
) -> String {
    let row = |vals: &[String]| -> String {
        key.iter()
            .zip(vals)
            .map(|((_, ty), v)| format!("{}::text::{ty}", literal(v)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let cols = key.iter().map(|(c, _)| q(c)).collect::<Vec<_>>().join(", ");
    let mut out = String::new();
    if let Some(l) = lower {
        out.push_str(&format!(" AND ({cols}) > ({})", row(l)));
    }
    if let Some(u) = upper {
        out.push_str(&format!(" AND ({cols}) <= ({})", row(u)));
    }
    out
}

/// The key (as text) of the `rows`-th row of `org` in `table` after `lower` and up to
/// `upper`, in key order: a chunk's last row; `None` when fewer are left.
async fn chunk_end(
    c: &(impl tokio_postgres::GenericClient + Sync),
    table: &str,
    key: &[(String, String)],
    (lower, upper): (Option<&[String]>, Option<&[String]>),
    rows: u64,
    org: OrgId,
) -> Result<Option<Vec<String>>> {
    let w = Walk::new(key, "");
    let offset = i64::try_from(rows.saturating_sub(1)).unwrap_or(i64::MAX);
    let range = key_range(key, lower, upper);
    first_key(
        c,
        table,
        &w,
        org,
        &format!("{range} ORDER BY {} OFFSET {offset}", w.cols),
    )
    .await
}

/// The highest key (as text) of `org`'s rows in `table`; `None` when it has none.
async fn key_max(
    c: &(impl tokio_postgres::GenericClient + Sync),
    table: &str,
    key: &[(String, String)],
    org: OrgId,
) -> Result<Option<Vec<String>>> {
    let w = Walk::new(key, "");
    first_key(c, table, &w, org, &format!("ORDER BY {}", w.descending)).await
}

/// The key (as text) of the first of `org`'s rows in `table` that `tail` (conditions after
/// the org's, an order, an offset) picks.
async fn first_key(
    c: &(impl tokio_postgres::GenericClient + Sync),
    table: &str,
    w: &Walk,
    org: OrgId,
    tail: &str,
) -> Result<Option<Vec<String>>> {
    let row = c
        .query_opt(
            &format!(
                "SELECT ARRAY[{}] FROM {table} WHERE org_id = $1 {tail} LIMIT 1",
                w.last
            ),
            &[&org.uuid()],
        )
        .await
        .map_err(map_err)?;
    Ok(row.map(|r| r.get(0)))
}

/// Turns off, in `tx` (until it ends), the triggers of the destination table `table` that
/// derive rows (a chunk into a placement of its own copies the derived rows too); returns
/// each one's name and state, for [`trigger_state`].
async fn pause_triggers(
    tx: &tokio_postgres::Transaction<'_>,
    table: &str,
) -> Result<Vec<(String, String)>> {
    let mut paused = Vec::new();
    for r in tx
        .query(
            "SELECT tgname::text, tgenabled::text FROM pg_trigger
             WHERE tgrelid = to_regclass($1) AND NOT tgisinternal AND tgenabled <> 'D'",
            &[&table],
        )
        .await
        .map_err(map_err)?
    {
        let (name, state): (String, String) = (r.get(0), r.get(1));
        tx.batch_execute(&format!("ALTER TABLE {table} DISABLE TRIGGER {}", q(&name)))
            .await
            .map_err(map_err)?;
        paused.push((name, state));
    }
    Ok(paused)
}

/// The `ALTER TABLE ... TRIGGER` words that give a trigger back its `pg_trigger.tgenabled`.
fn trigger_state(state: &str) -> &'static str {
    match state {
        "A" => "ENABLE ALWAYS",
        "R" => "ENABLE REPLICA",
        _ => "ENABLE",
    }
}

/// The primary key's columns of `table` after `org_id`, in the index's order, with their
/// types.
async fn key_after_org(
    c: &(impl tokio_postgres::GenericClient + Sync),
    table: &str,
) -> Result<Vec<(String, String)>> {
    Ok(c
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod)
             FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             WHERE i.indrelid = to_regclass($1) AND i.indisprimary ORDER BY k.n",
            &[&table],
        )
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .filter(|(name, _): &(String, String)| name != "org_id")
        .collect())
}

/// A walk over an org's rows of a table in primary-key order, a statement at a time: the
/// SQL parts that name the key (`alias` qualifies its columns), and [`Walk::run`].
struct Walk {
    /// The key's columns, in order.
    cols: String,
    /// `ARRAY[...]` of the key as text, for the last row read.
    last: String,
    /// The key's order, reversed.
    descending: String,
    /// `$2...` cast to the key's types.
    bound: String,
}

impl Walk {
    fn new(key: &[(String, String)], alias: &str) -> Walk {
        let list = |f: &dyn Fn(usize, &str, &str) -> String| -> String {
            key.iter()
                .enumerate()
                .map(|(i, (n, ty))| f(i, n, ty))
                .collect::<Vec<_>>()
                .join(", ")
        };
        Walk {
            cols: list(&|_, n, _| format!("{alias}{}", q(n))),
            last: list(&|_, n, _| format!("{}::text", q(n))),
            descending: list(&|_, n, _| format!("{} DESC", q(n))),
            bound: list(&|i, _, ty| format!("${}::text::{ty}", i + 2)),
        }
    }

    /// The condition of every statement after the first: past the last key read.
    fn after(&self) -> String {
        format!("AND ({}) > ({})", self.cols, self.bound)
    }

    /// Runs `first` (`$1` the org), then `next` with the last key read, until a statement
    /// reports no rows. Each statement returns one row: the rows it read or wrote, their
    /// bytes (for the pacer's wait after it), the last key as a text array, then anything
    /// `each` reads.
    async fn run(
        &self,
        c: &(impl tokio_postgres::GenericClient + Sync),
        (first, next): (&str, &str),
        id: &uuid::Uuid,
        pacer: &mut crate::placement::Pacer,
        mut each: impl FnMut(&tokio_postgres::Row),
    ) -> Result<()> {
        let first = c.prepare(first).await.map_err(map_err)?;
        let next = c.prepare(next).await.map_err(map_err)?;
        let mut after: Option<Vec<String>> = None;
        loop {
            let row = match &after {
                None => c.query_one(&first, &[id]).await,
                Some(k) => {
                    let mut params: Vec<&(dyn ToSql + Sync)> = vec![id];
                    params.extend(k.iter().map(|v| v as &(dyn ToSql + Sync)));
                    c.query_one(&next, &params).await
                }
            }
            .map_err(map_err)?;
            let (rows, bytes): (i64, i64) = (row.get(0), row.get(1));
            if rows == 0 {
                return Ok(());
            }
            each(&row);
            after = row.get::<_, Option<Vec<String>>>(2);
            if let Some(wait) = pacer.sent(usize::try_from(bytes).unwrap_or(0)) {
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Deletes `org`'s rows from the shared table `table` in batches of [`DELETE_BATCH`] in
/// its primary key's order (see [`Mover::delete_shared_rows`]), then sweeps what is left.
async fn delete_org_rows(
    c: &Client,
    table: &str,
    org: OrgId,
    pacer: &mut crate::placement::Pacer,
) -> Result<()> {
    let key = key_after_org(c, table).await?;
    let sweep = format!("DELETE FROM {table} WHERE org_id = $1");
    let id = org.uuid();
    if !key.is_empty() {
        let w = Walk::new(&key, "b.");
        let batch = |after: &str| {
            format!(
                "WITH batch AS MATERIALIZED (
                     SELECT b.ctid AS at, {cols} FROM {table} b WHERE b.org_id = $1 {after}
                     ORDER BY {cols} LIMIT {DELETE_BATCH}),
                 gone AS (DELETE FROM {table} d WHERE d.ctid = ANY(ARRAY(SELECT at FROM batch))
                          RETURNING pg_column_size(d.*) AS size)
                 SELECT (SELECT count(*) FROM gone), (SELECT coalesce(sum(size), 0)::int8 FROM gone),
                        (SELECT ARRAY[{last}] FROM batch ORDER BY {descending} LIMIT 1)",
                cols = w.cols,
                last = w.last,
                descending = w.descending,
            )
        };
        w.run(c, (&batch(""), &batch(&w.after())), &id, pacer, |_| {})
            .await?;
    }
    c.execute(&sweep, &[&id]).await.map_err(map_err)?;
    Ok(())
}

/// Empties the destination of the org's rows (a copy run again starts from nothing).
async fn empty(
    tx: &tokio_postgres::Transaction<'_>,
    schema: &str,
    shared: bool,
    catalog: &Catalog,
    org: OrgId,
) -> Result<()> {
    let all: Vec<&'static str> = catalog.data_tables().collect();
    let table = |t: &str| format!("{}.{}", q(schema), q(t));
    match shared {
        true => {
            for t in all.iter().rev() {
                tx.execute(
                    &format!("DELETE FROM {} WHERE org_id = $1", table(t)),
                    &[&org.uuid()],
                )
                .await
                .map_err(map_err)?;
            }
        }
        false => {
            let names: Vec<String> = all.iter().map(|t| table(t)).collect();
            tx.batch_execute(&format!("TRUNCATE {}", names.join(", ")))
                .await
                .map_err(map_err)?;
        }
    }
    Ok(())
}

/// Adds `users` to a database destination's projection (its foreign keys' target).
async fn project_users(
    tx: &impl tokio_postgres::GenericClient,
    schema: &str,
    users: &[uuid::Uuid],
) -> Result<()> {
    if users.is_empty() {
        return Ok(());
    }
    tx.execute(
        &format!(
            "INSERT INTO {}.users (id) SELECT DISTINCT unnest($1::uuid[]) ON CONFLICT DO NOTHING",
            q(schema)
        ),
        &[&users],
    )
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Brings a database destination's memberships projection to `members` (under the fence:
/// the control plane's memberships do not change meanwhile).
async fn sync_members(dest: &mut Side, org: OrgId, members: &[uuid::Uuid]) -> Result<()> {
    let dest_schema = dest.schema.clone();
    let s = q(&dest.schema);
    let tx = dest.client.transaction().await.map_err(map_err)?;
    project_users(&tx, &dest_schema, members).await?;
    tx.execute(
        &format!(
            "INSERT INTO {s}.memberships (org_id, user_id) SELECT $1, unnest($2::uuid[]) ON CONFLICT DO NOTHING"
        ),
        &[&org.uuid(), &members],
    )
    .await
    .map_err(map_err)?;
    tx.execute(
        &format!("DELETE FROM {s}.memberships WHERE org_id = $1 AND NOT user_id = ANY($2)"),
        &[&org.uuid(), &members],
    )
    .await
    .map_err(map_err)?;
    tx.commit().await.map_err(map_err)
}

/// Replays logical replication changes into a destination.
struct Replay {
    tables: HashMap<String, Table>,
    relations: HashMap<u32, Relation>,
    statements: HashMap<String, tokio_postgres::Statement>,
    dest_schema: String,
    /// Whether the destination is a database (its projection gets every user a row names).
    projects: bool,
    /// The org (as text), in each replayed transaction's `app.org_id`: as in the org's own
    /// transactions, so what the destination's triggers do by it is done (an org emptied
    /// by the changes forgets its usage row, `orgwall_usage_forget_empty`).
    org: String,
}

impl Replay {
    async fn new(dest: &Side, tables: &[&'static str], org: OrgId) -> Result<Replay> {
        let mut map = HashMap::new();
        for t in tables {
            map.insert((*t).to_owned(), describe(dest, t).await?);
        }
        Ok(Replay {
            tables: map,
            relations: HashMap::new(),
            statements: HashMap::new(),
            dest_schema: dest.schema.clone(),
            projects: matches!(dest.route, Route::Database { .. }),
            org: org.to_string(),
        })
    }

    /// Replays everything committed before `upto` (the source's WAL flushed that far
    /// first): batches until one comes back short of its limit (decoding stopped at `upto`,
    /// not at the limit, so nothing below it is left). Returns the changes replayed.
    ///
    /// Every peek and every advance of the slot decodes the WAL from its restart point
    /// again, so under the fence (`last`: [`Advance::IfFull`]) the last batch does not
    /// advance the slot: the flip drops it, and a move that does not flip reads that
    /// batch again (replaying is idempotent).
    async fn drain(
        &mut self,
        source: &Side,
        dest: &mut Side,
        (slot, start): (&str, u64),
        upto: u64,
        last: Advance,
    ) -> Result<usize> {
        flush(source).await?;
        let mut applied = 0;
        loop {
            let (read, n) = self
                .batch(source, dest, slot, start, Some(upto), last)
                .await?;
            applied += n;
            if read < usize::try_from(BATCH).unwrap_or(usize::MAX) {
                return Ok(applied);
            }
        }
    }

    /// Reads whole transactions from the slot (up to `upto`, the source's position, when
    /// given), replays those committed after `start` in one destination transaction, then
    /// advances the slot past them. Returns how many messages were read and how many
    /// changes replayed.
    async fn batch(
        &mut self,
        source: &Side,
        dest: &mut Side,
        slot: &str,
        start: u64,
        upto: Option<u64>,
        advance_slot: Advance,
    ) -> Result<(usize, usize)> {
        let rows = source
            .client
            .query(
                "SELECT data FROM pg_logical_slot_peek_binary_changes($1, $2::text::pg_lsn, $3, 'proto_version', '1', 'publication_names', $4)",
                &[&slot, &upto.map(show_lsn), &BATCH, &slot],
            )
            .await
            .map_err(map_err)?;
        let full = rows.len() >= usize::try_from(BATCH).unwrap_or(usize::MAX);
        let advancing = advance_slot == Advance::Always || full;
        if rows.is_empty() {
            if let (Some(u), true) = (upto, advancing) {
                advance(source, slot, u).await?;
            }
            return Ok((0, 0));
        }
        let tx = dest.client.transaction().await.map_err(map_err)?;
        tx.batch_execute("SET LOCAL session_replication_role = replica")
            .await
            .map_err(map_err)?;
        tx.execute("SELECT set_config('app.org_id', $1, true)", &[&self.org])
            .await
            .map_err(map_err)?;
        let mut in_tx = false;
        let mut skip = false;
        let mut last_end: Option<u64> = None;
        let mut n = 0usize;
        let mut users: Vec<uuid::Uuid> = Vec::new();
        let mut steps: Vec<Step> = Vec::new();
        for r in &rows {
            let data: &[u8] = r.get(0);
            match pgoutput::parse(data)? {
                Message::Begin { final_lsn } => {
                    in_tx = true;
                    skip = final_lsn < start;
                    tracing::debug!(final_lsn = %show_lsn(final_lsn), skip, "a move reads a transaction");
                }
                Message::Commit { end_lsn } => {
                    in_tx = false;
                    last_end = Some(end_lsn);
                }
                Message::Relation(rel) => {
                    self.relations.insert(rel.id, rel);
                }
                Message::Truncate => {
                    return Err(Error::Internal(
                        "a TRUNCATE of a moving org's table: the move cannot replay it".into(),
                    ))
                }
                Message::Other => {}
                change if !skip => {
                    self.apply(&tx, &change, &mut users, &mut steps).await?;
                    n += 1;
                }
                _ => {}
            }
        }
        if in_tx {
            return Err(Error::Internal(
                "logical decoding returned part of a transaction".into(),
            ));
        }
        run_steps(&tx, steps).await?;
        if self.projects && !users.is_empty() {
            users.sort_unstable();
            users.dedup();
            tx.execute(
                &format!(
                    "INSERT INTO {}.users (id) SELECT unnest($1::uuid[]) ON CONFLICT DO NOTHING",
                    q(&self.dest_schema)
                ),
                &[&users],
            )
            .await
            .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        tracing::debug!(rows = rows.len(), replayed = n, start = %show_lsn(start), upto = ?upto.map(show_lsn), last_end = ?last_end.map(show_lsn), "a move replayed a batch");
        // A batch short of its limit read everything below `upto`: the slot can go there.
        let to = match upto {
            Some(u) if !full => Some(u),
            _ => last_end,
        };
        if let (Some(to), true) = (to, advancing) {
            advance(source, slot, to).await?;
        }
        Ok((rows.len(), n))
    }

    /// The steps that replay `change` (appended to `out`; statements prepared once).
    async fn apply(
        &mut self,
        tx: &tokio_postgres::Transaction<'_>,
        change: &Message,
        users: &mut Vec<uuid::Uuid>,
        out: &mut Vec<Step>,
    ) -> Result<()> {
        let (rel, old, new) = match change {
            Message::Insert { rel, new } => (*rel, None, Some(new)),
            Message::Update { rel, old, new } => (*rel, old.as_ref(), Some(new)),
            Message::Delete { rel, old } => (*rel, Some(old), None),
            _ => return Ok(()),
        };
        let relation = self.relations.get(&rel).ok_or_else(|| {
            Error::Internal(format!("a change of relation {rel} before its description"))
        })?;
        let table = self.tables.get(&relation.name).ok_or_else(|| {
            Error::Internal(format!(
                "a change of {}.{}, which does not move",
                relation.schema, relation.name
            ))
        })?;
        let qualified = format!("{}.{}", q(&self.dest_schema), q(table.name));
        let type_of = |c: &str| -> Result<&str> {
            table
                .columns
                .iter()
                .find(|(n, _)| n == c)
                .map(|(_, t)| t.as_str())
                .ok_or_else(|| {
                    Error::Internal(format!(
                        "column {c} of {} is not in the destination (do both placements run the same version?)",
                        table.name
                    ))
                })
        };
        let values = |tuple: &[Value]| -> Vec<(String, Value)> {
            relation
                .columns
                .iter()
                .cloned()
                .zip(tuple.iter().cloned())
                .collect()
        };
        if let Some(new) = new {
            for (c, v) in values(new) {
                if let Value::Text(s) = &v {
                    if table.user_columns.contains(&c) {
                        if let Ok(u) = uuid::Uuid::parse_str(s) {
                            users.push(u);
                        }
                    }
                }
            }
        }
        // A changed key: the old row goes first.
        let key_changed = match (old, new) {
            (Some(o), Some(nw)) => {
                let keyed = |t: &[Value]| -> Vec<Value> {
                    relation
                        .key
                        .iter()
                        .zip(t)
                        .filter(|(k, _)| **k)
                        .map(|(_, v)| v.clone())
                        .collect()
                };
                keyed(o) != keyed(nw)
            }
            _ => false,
        };
        let mut stmts: Vec<(String, Vec<Option<String>>)> = Vec::new();
        if let Some(o) = old {
            if new.is_none() || key_changed {
                let mut conds = Vec::new();
                let mut params = Vec::new();
                for ((c, v), is_key) in values(o).into_iter().zip(&relation.key) {
                    if !is_key {
                        continue;
                    }
                    let Value::Text(s) = v else {
                        return Err(Error::Internal(format!(
                            "a key of {} without its value",
                            table.name
                        )));
                    };
                    params.push(Some(s));
                    conds.push(format!(
                        "{} = ${}::text::{}",
                        q(&c),
                        params.len(),
                        type_of(&c)?
                    ));
                }
                stmts.push((
                    format!("DELETE FROM {qualified} WHERE {}", conds.join(" AND ")),
                    params,
                ));
            }
        }
        if let Some(nw) = new {
            let vals = values(nw);
            let whole = !vals.iter().any(|(_, v)| *v == Value::Unchanged);
            let mut params = Vec::new();
            if whole {
                let mut cols = Vec::new();
                let mut exprs = Vec::new();
                for (c, v) in &vals {
                    params.push(match v {
                        Value::Text(s) => Some(s.clone()),
                        _ => None,
                    });
                    cols.push(q(c));
                    exprs.push(format!("${}::text::{}", params.len(), type_of(c)?));
                }
                let keys: Vec<String> = table.key.iter().map(|k| q(k)).collect();
                let sets: Vec<String> = vals
                    .iter()
                    .filter(|(c, _)| !table.key.contains(c))
                    .map(|(c, _)| format!("{0} = EXCLUDED.{0}", q(c)))
                    .collect();
                let conflict = if sets.is_empty() {
                    "DO NOTHING".to_owned()
                } else {
                    format!("DO UPDATE SET {}", sets.join(", "))
                };
                stmts.push((
                    format!(
                        "INSERT INTO {qualified} ({}) VALUES ({}) ON CONFLICT ({}) {conflict}",
                        cols.join(", "),
                        exprs.join(", "),
                        keys.join(", ")
                    ),
                    params,
                ));
            } else {
                if key_changed {
                    return Err(Error::Internal(format!(
                        "a key change of {} with values left out: the move cannot replay it",
                        table.name
                    )));
                }
                let mut sets = Vec::new();
                let mut conds = Vec::new();
                for ((c, v), is_key) in vals.iter().zip(&relation.key) {
                    match v {
                        Value::Unchanged => continue,
                        Value::Text(s) => params.push(Some(s.clone())),
                        Value::Null => params.push(None),
                    }
                    let e = format!("{} = ${}::text::{}", q(c), params.len(), type_of(c)?);
                    if *is_key {
                        conds.push(e);
                    } else {
                        sets.push(e);
                    }
                }
                stmts.push((
                    format!(
                        "UPDATE {qualified} SET {} WHERE {}",
                        sets.join(", "),
                        conds.join(" AND ")
                    ),
                    params,
                ));
            }
        }
        for (sql, params) in stmts {
            let delete = sql.starts_with("DELETE");
            let stmt = match self.statements.get(&sql) {
                Some(s) => s.clone(),
                None => {
                    let s = tx.prepare(&sql).await.map_err(map_err)?;
                    self.statements.insert(sql, s.clone());
                    s
                }
            };
            // A delete runs with the destination's own cascades (replica mode skips them),
            // so rows derived from the deleted one (search terms, which do not travel)
            // go with it as they did in the source.
            if delete {
                out.push(Step::Role("origin"));
            }
            out.push(Step::Run(stmt, params));
            if delete {
                out.push(Step::Role("replica"));
            }
        }
        Ok(())
    }
}

/// One statement of a replayed batch (see [`Replay::batch`]).
enum Step {
    /// `SET LOCAL session_replication_role` to this.
    Role(&'static str),
    /// A prepared statement with its parameters (as text).
    Run(tokio_postgres::Statement, Vec<Option<String>>),
}

/// Runs a batch's steps in order, pipelined: all written to the connection back to back
/// (polled in order, so sent and run in order) and answered together, instead of a round
/// trip per change. A failure fails the batch (its transaction is rolled back; the batch
/// is read again from the slot).
/// Retires `org`'s access mirror in the placement database `client` is connected to (see
/// [`crate::placement::MIRROR_RETIRED`]).
pub(super) async fn retire_mirror(client: &Client, org: OrgId) -> Result<()> {
    client
        .execute(
            &format!(
                "INSERT INTO {t} AS m (dep, gen) VALUES ($1, $2)
                 ON CONFLICT (dep) DO UPDATE SET gen = excluded.gen",
                t = crate::placement::MIRROR_TABLE
            ),
            &[&org.uuid(), &crate::placement::MIRROR_RETIRED],
        )
        .await
        .map_err(map_err)
        .map(drop)
}

async fn run_steps(tx: &tokio_postgres::Transaction<'_>, steps: Vec<Step>) -> Result<()> {
    let runs = steps.into_iter().map(|step| async move {
        match step {
            Step::Role(role) => {
                tx.batch_execute(&format!("SET LOCAL session_replication_role = {role}"))
                    .await
            }
            Step::Run(stmt, params) => {
                let refs: Vec<&(dyn ToSql + Sync)> =
                    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
                tx.execute(&stmt, &refs).await.map(|_| ())
            }
        }
    });
    futures::future::try_join_all(runs).await.map_err(map_err)?;
    Ok(())
}

/// The source's WAL insert position.
async fn position(source: &Side) -> Result<u64> {
    let lsn: String = source
        .client
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .await
        .map_err(map_err)?
        .get(0);
    parse_lsn(&lsn)
}

/// Whether a replayed batch advances the slot past what it read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Advance {
    Always,
    /// Only a batch that came back full (more may follow below the same end).
    IfFull,
}

/// Makes the source log its running transactions now, so the slot's restart point can
/// move up to here once the slot is confirmed past it: PostgreSQL 15 logs them only every
/// 15 s (or at a checkpoint), and every peek and every advance of the slot decodes the WAL
/// from the restart point (up to 15 s of every org's writes on a busy server). Creating a
/// temporary logical slot logs them (`pg_log_standby_snapshot()` is PostgreSQL 16+); it
/// waits for the transactions running then to end, so it is bounded (`timeout_ms`) and
/// only a help: on failure the next reads of the slot decode a little more.
async fn mark_restart_point(source: &Side, name: &str, timeout_ms: u32) -> bool {
    let mark = format!("{name}_mark");
    let r = source
        .client
        .batch_execute(&format!(
            "SET statement_timeout = {timeout_ms};
             SELECT pg_create_logical_replication_slot('{mark}', 'pgoutput', true);
             SELECT pg_drop_replication_slot('{mark}');
             RESET statement_timeout"
        ))
        .await;
    if let Err(e) = r {
        tracing::warn!(error = %e, "a move could not mark a restart point in its slot");
        let _ = source
            .client
            .batch_execute(&format!(
                "RESET statement_timeout;
                 SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
                  WHERE slot_name = '{mark}' AND active_pid = pg_backend_pid()"
            ))
            .await;
        return false;
    }
    true
}

/// Logical decoding reads only WAL flushed to disk; a commit made with `synchronous_commit
/// = off` may not be yet. A transaction of our own that writes WAL (a logical message,
/// which the publication does not carry) and commits with it on flushes everything
/// before it.
async fn flush(source: &Side) -> Result<()> {
    source
        .client
        .batch_execute(
            "BEGIN; SET LOCAL synchronous_commit = on;
             SELECT pg_logical_emit_message(true, 'orgwall_move', 'flush'); COMMIT",
        )
        .await
        .map_err(map_err)
}

async fn advance(source: &Side, slot: &str, to: u64) -> Result<()> {
    source
        .client
        .execute(
            "SELECT pg_replication_slot_advance($1, $2::text::pg_lsn)",
            &[&slot, &show_lsn(to)],
        )
        .await
        .map_err(map_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunks_range_quotes_its_bounds() {
        let key = vec![
            ("term".to_owned(), "text".to_owned()),
            ("id".to_owned(), "uuid".to_owned()),
        ];
        assert_eq!(key_range(&key, None, None), "");
        let lower = [
            "it's".to_owned(),
            "00000000-0000-0000-0000-000000000001".to_owned(),
        ];
        let upper = [
            "o'k\\".to_owned(),
            "00000000-0000-0000-0000-000000000002".to_owned(),
        ];
        assert_eq!(
            key_range(&key, Some(&lower), Some(&upper)),
            " AND (\"term\", \"id\") > ('it''s'::text::text, '00000000-0000-0000-0000-000000000001'::text::uuid) \
             AND (\"term\", \"id\") <= ('o''k\\'::text::text, '00000000-0000-0000-0000-000000000002'::text::uuid)"
        );
    }

    #[test]
    fn lsns_and_names_round_trip() {
        for l in [0u64, 0x1543C08, (7u64 << 32) | 0xABC] {
            assert_eq!(parse_lsn(&show_lsn(l)).unwrap(), l);
        }
        assert!(parse_lsn("nope").is_err());
        let org = OrgId::new();
        assert!(is_move_name(&move_name(org)));
        assert!(!is_move_name("orgwall_move_x; DROP"));
    }

    /// The paced content check (in key-ordered chunks) counts and sums exactly what the
    /// single statement does, over several chunks and a composite key, and only the org's
    /// rows. On the test server (`ORGWALL_TEST_DATABASE_URL`, as the test kit), in a
    /// temporary table.
    #[tokio::test]
    async fn a_paced_check_tallies_what_the_whole_one_does() {
        let url = std::env::var("ORGWALL_TEST_DATABASE_URL")
            .or_else(|_| std::env::var("DATABASE_URL"))
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        c.batch_execute(
            "CREATE TEMP TABLE tally (org_id uuid, a int, b text, v text, PRIMARY KEY (org_id, a, b));
             INSERT INTO tally SELECT '00000000-0000-0000-0000-00000000000a', g % 1000, 'k' || (g / 1000), 'row ' || g
               FROM generate_series(1, 2 * 2000 + 7) g;
             INSERT INTO tally SELECT '00000000-0000-0000-0000-00000000000b', g, 'x', 'other ' || g
               FROM generate_series(1, 500) g;",
        )
        .await
        .unwrap();
        let t = Table {
            name: "tally",
            columns: [
                ("org_id", "uuid"),
                ("a", "integer"),
                ("b", "text"),
                ("v", "text"),
            ]
            .iter()
            .map(|(n, ty)| ((*n).to_owned(), (*ty).to_owned()))
            .collect(),
            key: vec!["org_id".into(), "a".into(), "b".into()],
            user_columns: vec![],
        };
        let org = uuid::Uuid::from_u128(0xa);
        let whole = c
            .query_one(
                "SELECT count(*), coalesce(sum(hashtext(r::text)::bigint), 0)::bigint
                 FROM (SELECT org_id, a, b, v FROM tally WHERE org_id = $1) r",
                &[&org],
            )
            .await
            .unwrap();
        let mut pacer = crate::placement::Pacer::new(crate::placement::MoveOptions {
            copy_bytes_per_sec: Some(1_000_000_000),
            ..Default::default()
        });
        let paced = tally_paced(&c, "tally", &t, &org, &mut pacer)
            .await
            .unwrap();
        assert_eq!(paced.0, 2 * 2000 + 7);
        assert_eq!(paced, (whole.get::<_, i64>(0), whole.get::<_, i64>(1)));
        // A row changed past the first chunk changes the sum.
        c.execute(
            "UPDATE tally SET v = 'changed' WHERE org_id = $1 AND a = 999 AND b = 'k3'",
            &[&org],
        )
        .await
        .unwrap();
        let again = tally_paced(&c, "tally", &t, &org, &mut pacer)
            .await
            .unwrap();
        assert_eq!(again.0, paced.0);
        assert_ne!(again.1, paced.1);
    }
}
