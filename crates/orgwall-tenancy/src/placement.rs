//! Per-tenant placement: where an organization's data plane lives.
//!
//! The control plane (identity and access: the kernel's tables, and every migration a
//! module marks [`Plane::Control`]) always lives in the control database. The data plane
//! (the tenant tables of [`Plane::Data`] migrations: an org's workspace) follows the org:
//!
//! - `shared` (the default): the control database's shared tables, walled by `org_id`,
//!   composite keys and forced row-level security;
//! - `schema` (PostgreSQL): a schema of the org's own in the control database
//!   (`org_<32 hex digits of the org id>`) holding the data-plane tables, created by the
//!   same data-plane migrations and carrying the same walls (RLS enabled and forced, the
//!   `org_isolation` policy, grants to the server role). A tenant transaction is routed
//!   there by its prelude (`set_config('search_path', 'org_..., <control schema>', true)`,
//!   in the same statement as the scope settings: no extra round trip), so a wrong search
//!   path still shows no other org's rows (RLS) and control-plane tables resolve to the
//!   control schema, where foreign keys to `orgs`, `users` and `memberships` point;
//! - `database`: a database of its own on PostgreSQL (on the control server or a
//!   registered target), a file of its own on SQLite (see `sqlite::placement`), each with
//!   the data-plane tables, the same walls and a members projection the data plane's
//!   foreign keys point at.
//!
//! The directory is the control table `placements` (one row per org, written with the org
//! and by [`set`]); it is read with the org's access (the same statement as a membership or
//! API key), cached with it, and a change bumps the org's access generation like any other
//! access change, so every instance routes an org to the same place.

use crate::db::Db;
use crate::value::Row;
use orgwall_core::{Error, OrgId, Result};
use std::sync::Arc;

/// Where a tenant transaction of an org runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Route {
    /// The shared tables of the control database.
    #[default]
    Shared,
    /// The org's own schema in the control database (its name).
    Schema(Arc<str>),
    /// The org's own database: its name, on a registered target server or (`None`) on
    /// the control server (PostgreSQL), or its own file beside the control file (SQLite,
    /// `orgs/<name>.db`). Its data-plane statements run there; the control-plane ones
    /// (access, audit, jobs) in the control database.
    Database {
        /// The database ([`database_name`]).
        name: Arc<str>,
        /// The registered target server holding it, or `None` for the control server.
        target: Option<Arc<str>>,
    },
}

impl Route {
    /// The route a directory row names (`kind`, `location`, `target`).
    pub(crate) fn from_parts(
        kind: &str,
        location: Option<String>,
        target: Option<String>,
    ) -> Result<Route> {
        match (kind, location) {
            ("shared", _) => Ok(Route::Shared),
            ("schema", Some(s)) if is_schema_name(&s) => Ok(Route::Schema(s.into())),
            ("database", Some(d)) if is_database_name(&d) => Ok(Route::Database {
                name: d.into(),
                target: target.map(Into::into),
            }),
            (k, l) => Err(Error::Internal(format!(
                "placement {k} at {l:?} is not served by this build"
            ))),
        }
    }

    /// The route of the directory columns `i` (kind), `i + 1` (location) and `i + 2`
    /// (target) of `row` ([`COLUMNS`]); an org with no directory row (a LEFT JOIN) is
    /// shared.
    pub(crate) fn from_row(row: &Row, i: usize) -> Result<Route> {
        match row.get::<Option<String>>(i)? {
            None => Ok(Route::Shared),
            Some(kind) => Route::from_parts(&kind, row.get(i + 1)?, row.get(i + 2)?),
        }
    }

    /// The kind's name (`shared`, `schema`, `database`).
    pub fn kind(&self) -> &'static str {
        match self {
            Route::Shared => "shared",
            Route::Schema(_) => "schema",
            Route::Database { .. } => "database",
        }
    }
}

/// The directory columns to add to a statement that reads an org `o` with `LEFT JOIN
/// placements pl ON pl.org_id = o.id`.
pub(crate) const COLUMNS: &str = "pl.kind, pl.location, pl.target";

/// The schema an org gets when placed in a schema of its own.
pub fn schema_name(org: OrgId) -> String {
    format!("org_{}", org.uuid().simple())
}

/// Whether `s` is a placement schema's name (`org_` and 32 lowercase hex digits): the
/// only schema names the prelude ever states.
pub fn is_schema_name(s: &str) -> bool {
    s.len() == 36
        && s.starts_with("org_")
        && s[4..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The database an org gets when placed in a database of its own (on the control server
/// or a registered target): `orgwall_org_` and the 32 hex digits of its id.
pub fn database_name(org: OrgId) -> String {
    format!("orgwall_org_{}", org.uuid().simple())
}

/// Whether `s` is a placement database's name (see [`database_name`]): the only database
/// names placement code creates, connects to or drops.
pub fn is_database_name(s: &str) -> bool {
    s.len() == 44
        && s.starts_with("orgwall_org_")
        && s[12..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A placement database (see [`provision_database`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DatabasePlacement {
    /// The database's name ([`database_name`]).
    pub database: String,
    /// The registered target it is on (`None`: the control server).
    pub target: Option<String>,
    /// Where it is, without credentials: `user@host:port/database`.
    pub shown: String,
}

/// Creates `org`'s placement database on `target` (a registered target server, or the
/// control server when `None`) with every wall: the data-plane tables at the current
/// version with forced row-level security and the `org_isolation` policy, the server role
/// and its grants, and the members projection (the org, its members' user ids and its
/// memberships: key columns only, private to the owner) that keeps the data plane's
/// foreign keys (a ticket's assignee is a member of the ticket's org) enforced inside that
/// database. All or nothing: on any failure the database is dropped again.
///
/// The building block of `orgwall placement set ORG database[:TARGET]` (which then names
/// it in the directory); the directory does not name the database this makes. Its access
/// mirror starts at the org's generation now, so a request with a route from before into
/// a database of that name (its org moved out since, which bumped the generation) finds
/// its scope stale there. PostgreSQL only (SQLite makes an org's file in
/// [`set`]).
pub async fn provision_database(
    db: &Db,
    org: OrgId,
    target: Option<&str>,
) -> Result<DatabasePlacement> {
    if let Some(t) = target {
        check_target_name(t)?;
    }
    db.provision_database(org, target).await
}

/// Drops `org`'s placement database on `target` (see [`provision_database`]). Refused
/// while the directory places the org there (leaving it is `placement set`; the purge
/// drops it with the org).
pub async fn drop_database(db: &Db, org: OrgId, target: Option<&str>) -> Result<()> {
    if let Some(t) = target {
        check_target_name(t)?;
    }
    if let Route::Database { target: t, .. } = db.lookup_route(org).await? {
        if t.as_deref() == target {
            return Err(Error::Conflict(
                "placement_in_use",
                format!("organization {org} is placed in that database: nothing dropped"),
            ));
        }
    }
    db.drop_placement_database(org, target).await
}

/// What an operator asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The shared tables.
    Shared,
    /// A schema of its own (PostgreSQL).
    Schema,
    /// A database of its own, on a registered target server or (`None`) on the control
    /// server: `database` or `database:TARGET` (PostgreSQL); on SQLite `database` is a file
    /// of its own.
    Database(Option<String>),
}

impl std::str::FromStr for Kind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Kind> {
        match s {
            "shared" => Ok(Kind::Shared),
            "schema" => Ok(Kind::Schema),
            "database" => Ok(Kind::Database(None)),
            other => match other.strip_prefix("database:") {
                Some(target) => {
                    check_target_name(target)?;
                    Ok(Kind::Database(Some(target.to_owned())))
                }
                None => Err(Error::Validation(format!(
                    "unknown placement {other:?} (use shared, schema, database or database:TARGET)"
                ))),
            },
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kind::Shared => f.write_str("shared"),
            Kind::Schema => f.write_str("schema"),
            Kind::Database(None) => f.write_str("database"),
            Kind::Database(Some(t)) => write!(f, "database:{t}"),
        }
    }
}

impl Kind {
    /// The directory's `kind` and `target` columns for it.
    fn parts(&self) -> (&'static str, Option<&str>) {
        match self {
            Kind::Shared => ("shared", None),
            Kind::Schema => ("schema", None),
            Kind::Database(t) => ("database", t.as_deref()),
        }
    }

    /// The kind a stored `kind` / `target` pair names.
    fn from_parts(kind: &str, target: Option<String>) -> Result<Kind> {
        match kind {
            "shared" => Ok(Kind::Shared),
            "schema" => Ok(Kind::Schema),
            "database" => Ok(Kind::Database(target)),
            other => Err(Error::Internal(format!("placement rule of kind {other:?}"))),
        }
    }

    /// Whether this kind is what `route` is.
    fn is(&self, route: &Route) -> bool {
        match (self, route) {
            (Kind::Shared, Route::Shared) | (Kind::Schema, Route::Schema(_)) => true,
            (Kind::Database(t), Route::Database { target, .. }) => {
                t.as_deref() == target.as_deref()
            }
            _ => false,
        }
    }
}

/// The plan key of the server default rule.
const DEFAULT_PLAN: &str = "*";

/// A placement rule (operators: `orgwall placement rule`): where an org of `plan` (or,
/// for the default, of any plan without a rule of its own) is placed when it is created
/// and when its plan changes while it holds no data. Stored in the control database, so
/// every instance and the CLI place alike. No rule at all: shared.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Rule {
    /// The plan it is for, or `None` for the server default.
    pub plan: Option<String>,
    /// Where such an org goes (`shared`, `schema`, `database`, `database:TARGET`).
    pub placement: String,
}

/// The placement rules, the default first, then by plan.
pub async fn rules(db: &Db) -> Result<Vec<Rule>> {
    let mut tx = db.global(crate::Mode::Read).await?;
    let rows = tx
        .query(
            "SELECT plan, kind, target FROM placement_rules ORDER BY plan <> '*', plan",
            &[],
        )
        .await?;
    tx.commit().await?;
    rows.into_iter()
        .map(|r| {
            let plan: String = r.get(0)?;
            Ok(Rule {
                plan: (plan != DEFAULT_PLAN).then_some(plan),
                placement: Kind::from_parts(&r.get::<String>(1)?, r.get(2)?)?.to_string(),
            })
        })
        .collect()
}

/// Sets the rule of `plan` (`None`: the server default). The plan must exist, the kind
/// must be one this backend serves, and a target must be registered; otherwise nothing
/// changes. Orgs already placed stay where they are.
pub async fn set_rule(db: &Db, plan: Option<&str>, kind: Kind) -> Result<()> {
    let served = matches!(kind, Kind::Shared | Kind::Database(None));
    if db.kind() == crate::BackendKind::Sqlite && !served {
        return Err(Error::Validation(format!(
            "placement {kind} is not served on SQLite: a rule there can say shared or database (a file of its own)"
        )));
    }
    let (k, target) = kind.parts();
    let mut tx = db.global(crate::Mode::Write).await?;
    if let Some(p) = plan {
        if tx
            .query_opt("SELECT 1 FROM plans WHERE name = $1", crate::params![p])
            .await?
            .is_none()
        {
            return Err(Error::Validation(format!("unknown plan {p:?}")));
        }
    }
    if let Some(t) = target {
        if !db.targets().await?.iter().any(|x| x.name == t) {
            return Err(Error::Validation(format!("no target named {t}")));
        }
    }
    tx.execute(
        "INSERT INTO placement_rules (plan, kind, target, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (plan) DO UPDATE SET kind = excluded.kind, target = excluded.target,
             updated_at = excluded.updated_at",
        crate::params![plan.unwrap_or(DEFAULT_PLAN), k, target, crate::value::now()],
    )
    .await?;
    tx.commit().await
}

/// Removes the rule of `plan` (`None`: the server default); `false` if there was none.
pub async fn clear_rule(db: &Db, plan: Option<&str>) -> Result<bool> {
    let mut tx = db.global(crate::Mode::Write).await?;
    let n = tx
        .execute(
            "DELETE FROM placement_rules WHERE plan = $1",
            crate::params![plan.unwrap_or(DEFAULT_PLAN)],
        )
        .await?;
    tx.commit().await?;
    Ok(n > 0)
}

/// Where the rules place an org of `plan`: its plan's rule, else the default, else shared.
pub(crate) async fn rule_for(tx: &mut crate::Tx, plan: &str) -> Result<Kind> {
    let row = tx
        .query_opt(
            "SELECT kind, target FROM placement_rules WHERE plan = $1 OR plan = '*'
             ORDER BY plan = '*' LIMIT 1",
            crate::params![plan],
        )
        .await?;
    match row {
        None => Ok(Kind::Shared),
        Some(r) => Kind::from_parts(&r.get::<String>(0)?, r.get(1)?),
    }
}

/// What following the rules did to an org's placement ([`follow_rules`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Followed {
    /// It already is where its plan's rule places it.
    Unchanged(Route),
    /// It was empty and is now where the rule places it.
    Placed(Route),
    /// It holds data, so it stays where it is (moving data is a move); the rule's kind.
    Kept(Route, Kind),
}

/// Places `org` where the rules place an org of its plan (after its plan changed), if it
/// holds no data-plane row yet; an org with data stays where it is ([`Followed::Kept`]).
pub async fn follow_rules(db: &Db, org: OrgId) -> Result<Followed> {
    let mut tx = db.global(crate::Mode::Read).await?;
    let plan: String = tx
        .query_opt("SELECT plan FROM orgs WHERE id = $1", crate::params![org])
        .await?
        .ok_or(Error::NotFound)?
        .get(0)?;
    let kind = rule_for(&mut tx, &plan).await?;
    tx.commit().await?;
    let now = db.lookup_route(org).await?;
    if kind.is(&now) {
        return Ok(Followed::Unchanged(now));
    }
    match set(db, org, kind.clone()).await {
        Ok(r) => Ok(Followed::Placed(r)),
        Err(Error::Conflict("placement_not_empty", _)) => Ok(Followed::Kept(now, kind)),
        Err(e) => Err(e),
    }
}

/// One org's directory entry.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    /// The org.
    pub org_id: OrgId,
    /// Its slug.
    pub slug: String,
    /// `shared`, `schema` or `database`.
    pub kind: String,
    /// The registered target server (`database` only).
    pub target: Option<String>,
    /// The schema or database name (`None` when shared).
    pub location: Option<String>,
    /// The data-plane migration version of its placement, per module (`None` when
    /// shared: the control schema's).
    pub versions: Option<Vec<(String, i64)>>,
    /// The size of its placement of its own in bytes: a schema's tables with their
    /// indexes, a whole database, a file (`None` when shared).
    pub size_bytes: Option<i64>,
}

/// Every org with its placement, by slug (operators: `orgwall placement list`).
pub async fn list(db: &Db) -> Result<Vec<Entry>> {
    entries(db, None).await
}

/// One org's entry.
pub async fn show(db: &Db, org: OrgId) -> Result<Entry> {
    entries(db, Some(org))
        .await?
        .into_iter()
        .next()
        .ok_or(Error::NotFound)
}

/// The entries of every org, or of `only` (its placement's versions and size read from
/// its placement alone: `show` does not visit every placement).
async fn entries(db: &Db, only: Option<OrgId>) -> Result<Vec<Entry>> {
    let mut tx = db.global(crate::Mode::Read).await?;
    const ENTRIES: &str = "SELECT o.id, o.slug, pl.kind, pl.target, pl.location FROM orgs o
             LEFT JOIN placements pl ON pl.org_id = o.id";
    let rows = match only {
        Some(org) => {
            tx.query(&format!("{ENTRIES} WHERE o.id = $1"), crate::params![org])
                .await?
        }
        None => tx.query(&format!("{ENTRIES} ORDER BY o.slug"), &[]).await?,
    };
    tx.commit().await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let kind: Option<String> = r.get(2)?;
        let location: Option<String> = r.get(4)?;
        let facts = match (&kind, &location) {
            (Some(k), Some(l)) if k == "schema" => Some(db.placement_versions(l).await?),
            (Some(k), Some(l)) if k == "database" => Some(
                db.database_versions(l, r.get::<Option<String>>(3)?.as_deref())
                    .await?,
            ),
            _ => None,
        };
        let (versions, size_bytes) = match facts {
            Some((v, s)) => (Some(v), Some(s)),
            None => (None, None),
        };
        out.push(Entry {
            org_id: r.get(0)?,
            slug: r.get(1)?,
            kind: kind.unwrap_or_else(|| "(none)".into()),
            target: r.get(3)?,
            location,
            versions,
            size_bytes,
        });
    }
    Ok(out)
}

/// The control-plane tables a placement database holds as a projection (key columns,
/// its org's rows only; private to the owner): what the data plane's foreign keys point at.
pub const PROJECTION_TABLES: [&str; 3] = ["orgs", "users", "memberships"];

/// The table of a placement database (PostgreSQL) that mirrors its org's access
/// generation (`dep`, the org's id, and `gen`): written by the owner only (after each access change of
/// the org commits on the control plane), read by the server role in a cached scope's
/// first flight there (see the PostgreSQL backend's placed prelude).
pub const MIRROR_TABLE: &str = "access_mirror";

/// The mirror's value for a placement database its org is leaving (a move's cut-over and
/// `placement set` write it just before the directory flips): every cached scope's check
/// there fails, so no read is served from the old copy after the flip, and no write
/// fenced there (which waited through the flip) lands in it.
pub const MIRROR_RETIRED: i64 = i64::MAX;

/// The kernel's tables private to the owner: the server role holds no privilege on them
/// (the migration runner revokes it, the doctor checks). `placement_targets` holds the
/// target servers' connection URLs, credentials included; `placement_moves` the running
/// moves, whose phase decides what a mover drops.
pub const PRIVATE_TABLES: &[&str] = &["placement_targets", "placement_moves"];

/// A registered target server: a PostgreSQL server that orgs placed in a database of
/// their own may live on.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Target {
    /// Its name (`[a-z][a-z0-9-]*`, at most 40 characters).
    pub name: String,
    /// Where it is, without credentials: `user@host:port/database`.
    pub shown: String,
    /// When it was registered.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The connections each instance may hold to the placement databases on it, together
    /// (`None`: the instance's own `--db-max-connections`, as on the control server).
    pub max_connections: Option<u32>,
}

/// The largest per-target connection budget (the column's check says the same).
pub const MAX_TARGET_CONNECTIONS: u32 = 10_000;

/// Checks a target's connection budget: 1 to [`MAX_TARGET_CONNECTIONS`].
fn check_target_budget(max: Option<u32>) -> Result<()> {
    match max {
        Some(n) if !(1..=MAX_TARGET_CONNECTIONS).contains(&n) => Err(Error::Validation(format!(
            "max connections {n} must be from 1 to {MAX_TARGET_CONNECTIONS}"
        ))),
        _ => Ok(()),
    }
}

/// Checks a target's name: a lowercase letter, then lowercase letters, digits and
/// hyphens, at most 40 characters (it appears in commands, listings and the directory).
pub fn check_target_name(name: &str) -> Result<()> {
    let ok = (1..=40).contains(&name.len())
        && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::Validation(format!(
            "target name {name:?} must be a lowercase letter, then lowercase letters, digits or hyphens (at most 40)"
        )))
    }
}

/// Registers a target server (operators: `orgwall placement target add NAME URL`). The
/// URL is checked before anything is stored: it must parse and name a host, a user and a
/// database; the server must answer within 5 seconds, run PostgreSQL 15 or newer and let
/// that login create databases and roles (what placing an org there takes). A taken
/// name is refused. Errors and listings never show the URL's password.
pub async fn add_target(db: &Db, name: &str, url: &str) -> Result<Target> {
    add_target_with(db, name, url, None).await
}

/// [`add_target`] with a connection budget of its own (`--max-connections`; see
/// [`set_target_budget`]).
pub async fn add_target_with(
    db: &Db,
    name: &str,
    url: &str,
    max_connections: Option<u32>,
) -> Result<Target> {
    check_target_name(name)?;
    check_target_budget(max_connections)?;
    db.add_target(name, url, max_connections).await
}

/// Sets (or, with `None`, clears) a target's connection budget: the connections each
/// instance may hold to the placement databases on that server together, in place of the
/// instance's `--db-max-connections` (operators: `orgwall placement target set NAME
/// --max-connections N|default`). An instance reads it when it first connects to the
/// server, so a change reaches running instances at their restart.
pub async fn set_target_budget(
    db: &Db,
    name: &str,
    max_connections: Option<u32>,
) -> Result<Target> {
    check_target_name(name)?;
    check_target_budget(max_connections)?;
    db.set_target_budget(name, max_connections).await
}

/// The registered target servers, by name, without credentials.
pub async fn targets(db: &Db) -> Result<Vec<Target>> {
    db.targets().await
}

/// Removes a target server no placement names (one that does is refused).
pub async fn remove_target(db: &Db, name: &str) -> Result<()> {
    check_target_name(name)?;
    db.remove_target(name).await
}

/// Refuses to place `org` while it is moving (`phase`: its move's): a move's copies are
/// the mover's until its cleanup has ended (after the flip, the old copy's rows are deleted
/// in paced batches; placing the org back there meanwhile would serve it half of them).
pub(crate) fn moving_refusal(org: OrgId, phase: Option<String>) -> Result<()> {
    match phase {
        None => Ok(()),
        Some(phase) => Err(Error::Conflict(
            "move_running",
            format!("organization {org} is moving (phase {phase}): it is placed anew once its move has ended (see orgwall placement list); nothing changed"),
        )),
    }
}

/// Refuses to place `org` elsewhere while its `current` placement holds rows (`holding`:
/// the data-plane tables that do): moving data is a move, not a placement.
pub(crate) fn empty_or_refuse(org: OrgId, current: &Route, holding: &[&str]) -> Result<()> {
    if holding.is_empty() {
        return Ok(());
    }
    Err(Error::Conflict(
        "placement_not_empty",
        format!(
            "organization {org} has data in its {} placement ({}); placing it elsewhere would move data, which placement set does not do: nothing changed",
            current.kind(),
            holding.join(", ")
        ),
    ))
}

/// The route `kind` gives `org`.
pub(crate) fn route_for(org: OrgId, kind: &Kind) -> Route {
    match kind {
        Kind::Shared => Route::Shared,
        Kind::Schema => Route::Schema(schema_name(org).into()),
        Kind::Database(target) => Route::Database {
            name: database_name(org).into(),
            target: target.as_deref().map(Into::into),
        },
    }
}

/// A running move of an org between placements (see [`start_move`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Move {
    /// The org.
    pub org: OrgId,
    /// Where it was when the move started (its placement until the flip).
    #[serde(skip)]
    pub from: Route,
    /// Where it goes.
    #[serde(skip)]
    pub to: Route,
    /// `prepare`, `copy`, `catch_up` (then the cut-over) or `cleanup` (after the flip).
    pub phase: String,
    /// The source's WAL position the copy was taken at (PostgreSQL).
    pub start_lsn: Option<String>,
    /// Rows copied so far, of `rows_total`.
    pub rows_copied: i64,
    /// The org's rows in the snapshot copied.
    pub rows_total: i64,
    /// Changes replayed since the copy.
    pub changes_applied: i64,
    /// How long the cut-over held the org's writes, once it has flipped (PostgreSQL).
    pub pause_ms: Option<i64>,
    /// The last failure of a run (a run again resumes), or `abort requested`.
    pub error: Option<String>,
}

/// Starts moving `org` to `kind` while it stays in use (operators: `orgwall placement move
/// ORG --to KIND`): records the move (its durable state) after checking what it needs (the
/// target registered, the source server's `wal_level = logical`, a login that may use
/// logical replication); [`run_move`] does the work. Refused while a move of the org runs
/// or when it already is there. On SQLite an org moves between the shared tables and a
/// file of its own.
pub async fn start_move(db: &Db, org: OrgId, kind: Kind) -> Result<Move> {
    if let Kind::Database(Some(t)) = &kind {
        check_target_name(t)?;
    }
    db.start_move(org, kind).await
}

/// Runs `org`'s move (or resumes it, from its recorded phase) to its end: copy, catch up,
/// cut over under the org's write fence (writes wait; reads go on), flip the directory,
/// clean up. `progress` hears the move's state at each step. Returns where the org is
/// now. A failure leaves the move recorded with its error: running it again resumes it,
/// [`abort_move`] takes it back.
pub async fn run_move(db: &Db, org: OrgId, progress: &(dyn Fn(&Move) + Sync)) -> Result<Route> {
    run_move_with(db, org, MoveOptions::default(), progress).await
}

/// [`run_move`] with options (a paced copy).
pub async fn run_move_with(
    db: &Db,
    org: OrgId,
    opts: MoveOptions,
    progress: &(dyn Fn(&Move) + Sync),
) -> Result<Route> {
    let r = db.run_move(org, opts, progress).await;
    db.forget_org(org);
    r
}

/// How a move runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MoveOptions {
    /// The copy's pace: at most this many bytes of row data per second (PostgreSQL: the
    /// binary COPY stream, and the rows a cleanup deletes from the shared tables; SQLite:
    /// the values copied), so that the copy leaves the
    /// servers' CPU and disks to the other orgs (a copy at full speed on a small machine
    /// raises everyone's latency while it runs). `None`: as fast as the servers go.
    pub copy_bytes_per_sec: Option<u64>,
    /// PostgreSQL: at most this many rows in one chunk of the copy (each chunk reads its
    /// own short snapshot of the source, see `postgres::mover`). `None`: chunks sized to
    /// about two seconds of the pace (or 32 MB at full speed).
    pub copy_chunk_rows: Option<u64>,
}

/// Parses a copy pace given in megabytes per second, decimals allowed (`20`, `0.25`),
/// into bytes per second ([`MoveOptions::copy_bytes_per_sec`]): at least 0.01 (10 kB/s),
/// at most 100,000. The one reading of `orgwall placement move --copy-rate` and the
/// bench's `--move-copy-rate`.
///
/// # Errors
/// Anything else, with what was wrong.
pub fn parse_copy_rate(s: &str) -> std::result::Result<u64, String> {
    let mb: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of megabytes per second (e.g. 20 or 0.25)"))?;
    if !mb.is_finite() || !(0.01..=100_000.0).contains(&mb) {
        return Err(format!(
            "{s:?}: a copy rate is between 0.01 and 100000 megabytes per second"
        ));
    }
    // In range and positive: the product fits a u64 exactly enough for a pace.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok((mb * 1_000_000.0).round() as u64)
}

/// Paces a copy to [`MoveOptions::copy_bytes_per_sec`].
pub(crate) struct Pacer {
    rate: Option<u64>,
    began: std::time::Instant,
    sent: u64,
}

impl Pacer {
    pub(crate) fn new(opts: MoveOptions) -> Pacer {
        Pacer {
            rate: opts.copy_bytes_per_sec.filter(|r| *r > 0),
            began: std::time::Instant::now(),
            sent: 0,
        }
    }

    /// Counts `n` bytes sent; returns how long to wait before sending more.
    pub(crate) fn sent(&mut self, n: usize) -> Option<std::time::Duration> {
        let rate = self.rate?;
        self.sent = self.sent.saturating_add(n as u64);
        // Precision to the microsecond is plenty for sleeps.
        #[allow(clippy::cast_precision_loss)]
        let due = std::time::Duration::from_secs_f64(self.sent as f64 / rate as f64);
        due.checked_sub(self.began.elapsed())
            .filter(|d| *d >= std::time::Duration::from_millis(1))
    }
}

/// Aborts `org`'s move before its flip: the slot, the publication and the half-made
/// destination are removed and the org stays where it was. With a mover running, asks
/// it to abort at its next step and returns `false`; `true` when it is gone. After the
/// flip only the cleanup is left, and an abort is refused.
pub async fn abort_move(db: &Db, org: OrgId) -> Result<bool> {
    abort_move_with(db, org, MoveOptions::default()).await
}

/// [`abort_move`] with options: on PostgreSQL, an abort of a move into the shared tables
/// deletes the rows copied there in batches paced by [`MoveOptions::copy_bytes_per_sec`],
/// as a cleanup after the flip does (an aborting mover that runs uses its own). SQLite
/// removes a half-made copy as one local transaction.
pub async fn abort_move_with(db: &Db, org: OrgId, opts: MoveOptions) -> Result<bool> {
    db.abort_move(org, opts).await
}

/// The `error` a `--abort` leaves on a move whose mover is running: it aborts at its next
/// step.
pub(crate) const ABORT_REQUESTED: &str = "abort requested";

/// The refusal of an abort after the flip.
pub(crate) fn flipped(org: OrgId) -> Error {
    Error::Conflict(
        "move_flipped",
        format!("organization {org}'s move has flipped the directory (it is served from its new placement); only its cleanup is left, which a run of the move finishes"),
    )
}

/// Every running move.
pub async fn moves(db: &Db) -> Result<Vec<Move>> {
    db.moves().await
}

/// Places `org` (operators: `orgwall placement set`). Only while the org holds no
/// data-plane row (moving data is a move, not a placement): anything else is refused with
/// nothing changed. Placing in a schema creates the schema at the current version with
/// every wall, in one transaction with the directory change.
pub async fn set(db: &Db, org: OrgId, kind: Kind) -> Result<Route> {
    db.place(org, kind).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_rate_is_read_in_megabytes_with_decimals_and_bounded() {
        assert_eq!(parse_copy_rate("20"), Ok(20_000_000));
        assert_eq!(parse_copy_rate("0.25"), Ok(250_000));
        assert_eq!(parse_copy_rate(" 1.5 "), Ok(1_500_000));
        assert_eq!(parse_copy_rate("0.01"), Ok(10_000));
        assert_eq!(parse_copy_rate("100000"), Ok(100_000_000_000));
        for bad in [
            "0", "0.001", "-1", "100001", "NaN", "inf", "", "1MB", "1e400",
        ] {
            let e = parse_copy_rate(bad).unwrap_err();
            assert!(e.contains("megabytes per second"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_paced_copy_waits_for_its_rate() {
        // Unpaced: never waits.
        let mut p = Pacer::new(MoveOptions::default());
        assert_eq!(p.sent(1 << 30), None);
        assert_eq!(
            Pacer::new(MoveOptions {
                copy_bytes_per_sec: Some(0),
                ..MoveOptions::default()
            })
            .sent(1 << 30),
            None
        );
        // 1 MB/s: a megabyte just sent is due a second after the start.
        let mut p = Pacer::new(MoveOptions {
            copy_bytes_per_sec: Some(1_000_000),
            ..MoveOptions::default()
        });
        let w = p.sent(1_000_000).unwrap();
        assert!(
            w > std::time::Duration::from_millis(900) && w <= std::time::Duration::from_secs(1),
            "{w:?}"
        );
        // Another half megabyte: due at 1.5 s.
        let w = p.sent(500_000).unwrap();
        assert!(
            w > std::time::Duration::from_millis(1400)
                && w <= std::time::Duration::from_millis(1500),
            "{w:?}"
        );
        // A rate the bytes sent are well under: no wait.
        let mut p = Pacer::new(MoveOptions {
            copy_bytes_per_sec: Some(u64::MAX),
            ..MoveOptions::default()
        });
        assert_eq!(p.sent(1_000_000), None);
    }

    #[test]
    fn schema_names_are_checked() {
        let org = OrgId::new();
        let s = schema_name(org);
        assert!(is_schema_name(&s), "{s}");
        assert!(!is_schema_name("public"));
        assert!(!is_schema_name("org_x; DROP TABLE orgs"));
        assert!(!is_schema_name(&s.to_uppercase()));
        assert!(Route::from_parts("schema", Some("public".into()), None).is_err());
        assert!(Route::from_parts("database", Some("postgres".into()), None).is_err());
        assert_eq!(
            Route::from_parts("shared", None, None).ok(),
            Some(Route::Shared)
        );
    }

    #[test]
    fn target_names_are_checked() {
        for ok in ["eu-1", "a", "us-east-2b"] {
            assert!(check_target_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1eu", "EU", "eu_1", "eu 1", "eu;drop", &"x".repeat(41)] {
            assert!(check_target_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn kinds_parse_with_clear_errors() {
        assert_eq!("schema".parse::<Kind>().ok(), Some(Kind::Schema));
        assert_eq!("database".parse::<Kind>().ok(), Some(Kind::Database(None)));
        assert_eq!(
            "database:eu-1".parse::<Kind>().ok(),
            Some(Kind::Database(Some("eu-1".into())))
        );
        assert!("database:EU 1".parse::<Kind>().is_err());
        assert!("database:".parse::<Kind>().is_err());
        assert!("elsewhere".parse::<Kind>().is_err());
    }
}
