//! PostgreSQL placements: an org's data plane in a schema of its own (see
//! [`crate::placement`]). Everything here runs as the login (the owner), under the
//! migration lock, each change in one transaction with its directory entry.

use super::map_err;
use super::walls::{apply, MIGRATION_LOCK};
use crate::migrate::quote_ident;
use crate::module::{Catalog, Plane};
use crate::placement::{is_schema_name, schema_name, Kind, Route};
use orgwall_core::{Error, OrgId, Result};

/// Every org placed in a `kind` (`schema` or `database`) of its own: (org, the schema's or
/// database's name, the target server of a database), by name. A name that is not a
/// placement name of that kind (the only names placement code uses in SQL) is refused.
pub(crate) async fn placed(
    client: &tokio_postgres::Client,
    kind: &str,
) -> Result<Vec<(OrgId, String, Option<String>)>> {
    let valid: fn(&str) -> bool = match kind {
        "schema" => is_schema_name,
        "database" => crate::placement::is_database_name,
        other => return Err(Error::Internal(format!("no placement kind {other:?}"))),
    };
    let rows = client
        .query(
            "SELECT org_id, location, target FROM placements WHERE kind = $1 ORDER BY location",
            &[&kind],
        )
        .await
        .map_err(map_err)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let org: uuid::Uuid = r.get(0);
        let name: String = r.get(1);
        if !valid(&name) {
            return Err(Error::Internal(format!(
                "placement of org {org} names {kind} {name:?}, which is not a placement {kind} name"
            )));
        }
        out.push((OrgId::from_uuid(org), name, r.get(2)));
    }
    Ok(out)
}

/// The owner login of `target` (a registered target, read from the control database as
/// its owner) or, for `None`, of the control server (`control_url`, the login's own URL).
pub(crate) async fn server_login(
    control: &impl tokio_postgres::GenericClient,
    control_url: &str,
    target: Option<&str>,
) -> Result<Login> {
    match target {
        Some(t) => target_login(control, t).await,
        None => Ok(Login {
            cfg: control_url
                .parse()
                .map_err(|_| Error::Internal("the login URL does not parse".into()))?,
            shown: super::describe_login(control_url),
            budget: None,
        }),
    }
}

/// Brings placement database `name` (on `target`, or the control server) to the current
/// data-plane version with its walls, in one transaction there: what `migrate` does for
/// each database placement.
pub(crate) async fn migrate_database(
    control: &tokio_postgres::Client,
    control_url: &str,
    name: &str,
    target: Option<&str>,
    app_role: &str,
    catalog: &Catalog,
) -> Result<()> {
    let login = server_login(control, control_url, target).await?;
    let mut client = login.connect_db(name).await?;
    let tx = client.transaction().await.map_err(map_err)?;
    tx.batch_execute(MIGRATION_LOCK).await.map_err(map_err)?;
    apply(&tx, app_role, catalog, Plane::Data).await?;
    revoke_projection(&tx, app_role).await?;
    mirror(&tx, app_role).await?;
    tx.commit().await.map_err(map_err)
}

/// Creates the access mirror of a placement database if it lacks it (a database placed
/// before it existed gets it from `orgwall migrate`), readable by the server role.
async fn mirror(tx: &tokio_postgres::Transaction<'_>, app_role: &str) -> Result<()> {
    super::check_role_name(app_role)?;
    let t = crate::placement::MIRROR_TABLE;
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {t} (
             dep uuid PRIMARY KEY REFERENCES orgs (id) ON DELETE CASCADE,
             gen bigint NOT NULL
         );
         COMMENT ON TABLE {t} IS 'orgwall placement projection (control plane: this org''s access generation)';
         REVOKE ALL ON {t} FROM {app_role};
         GRANT SELECT ON {t} TO {app_role};"
    ))
    .await
    .map_err(map_err)
}

/// Puts `schema` (a checked placement schema name) first on `tx`'s search path, the
/// control schema second: what the data-plane migrations and walls run in. Returns the
/// control schema (quoted).
pub(crate) async fn enter(tx: &tokio_postgres::Transaction<'_>, schema: &str) -> Result<String> {
    if !is_schema_name(schema) {
        return Err(Error::Internal(format!(
            "{schema:?} is not a placement schema name"
        )));
    }
    let control: String = tx
        .query_one("SELECT current_schema()::text", &[])
        .await
        .map_err(map_err)?
        .get(0);
    let control = quote_ident(&control);
    tx.batch_execute(&format!("SET LOCAL search_path TO {schema}, {control}"))
        .await
        .map_err(map_err)?;
    Ok(control)
}

/// The data-plane tables of `org` that hold rows in `schema` (the control schema when
/// `None`), as the owner inside the org's own scope (so forced row-level security shows
/// the org's rows to a login that is not a superuser). `tx` must be in a transaction:
/// the scope is set transaction-locally.
pub(crate) async fn tables_with_rows(
    tx: &impl tokio_postgres::GenericClient,
    catalog: &Catalog,
    org: OrgId,
    schema: Option<&str>,
) -> Result<Vec<&'static str>> {
    tx.execute(
        "SELECT set_config('app.org_id', $1, true)",
        &[&org.to_string()],
    )
    .await
    .map_err(map_err)?;
    let mut found = Vec::new();
    for t in catalog.data_tables() {
        let table = match schema {
            Some(s) => format!("{s}.{}", quote_ident(t)),
            None => quote_ident(t),
        };
        let row = tx
            .query_one(
                &format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE org_id = $1)"),
                &[&org.uuid()],
            )
            .await
            .map_err(map_err)?;
        if row.get::<_, bool>(0) {
            found.push(t);
        }
    }
    tx.execute("SELECT set_config('app.org_id', '', true)", &[])
        .await
        .map_err(map_err)?;
    Ok(found)
}

/// Places `org` (see [`crate::placement::set`]). `control` is the login's own URL (a
/// database placement on the control server is made with it).
pub(crate) async fn place(
    client: &mut tokio_postgres::Client,
    control_url: &str,
    app_role: &str,
    catalog: &Catalog,
    org: OrgId,
    kind: Kind,
) -> Result<Route> {
    let tx = client.transaction().await.map_err(map_err)?;
    tx.batch_execute(MIGRATION_LOCK).await.map_err(map_err)?;
    // The org's write fence (see `FENCE_SQL`): its writes running now finish first, new
    // ones wait until the directory has changed and then read it (so none lands in the
    // placement the org leaves).
    tx.execute(super::FENCE_EXCLUSIVE_SQL, &[&org.to_string()])
        .await
        .map_err(map_err)?;
    // Leaving a database of its own: the fence there too (writes checked against its
    // access mirror take it there, not here; see `PgTx::flight`), taken before any row
    // lock here, since such a write may lock rows here after taking that fence. Every
    // change of the directory holds this fence, so the route read now stands.
    let before = super::mover::route_of(&tx, org).await?;
    let mut old: Option<(Login, String, tokio_postgres::Client)> = None;
    if let Route::Database { name, target } = &before {
        let login = server_login(&tx, control_url, target.as_deref()).await?;
        let placed = login.connect_db(name).await?;
        placed.batch_execute("BEGIN").await.map_err(map_err)?;
        placed
            .execute(super::FENCE_EXCLUSIVE_SQL, &[&org.to_string()])
            .await
            .map_err(map_err)?;
        old = Some((login, name.to_string(), placed));
    }
    // The org row locked: memberships (whose foreign key takes a key-share lock on it)
    // wait until the placement is decided, so the projection copied below is complete.
    let row = tx
        .query_opt(
            "SELECT pl.kind, pl.location, pl.target FROM orgs o LEFT JOIN placements pl ON pl.org_id = o.id
             WHERE o.id = $1 FOR UPDATE OF o",
            &[&org.uuid()],
        )
        .await
        .map_err(map_err)?
        .ok_or_else(|| Error::Validation(format!("no organization {org}")))?;
    let current = match row.get::<_, Option<String>>(0) {
        Some(k) => Route::from_parts(&k, row.get(1), row.get(2))?,
        None => Route::Shared,
    };
    // A move's start locks the org row too, so none begins after this read.
    let moving = tx
        .query_opt(
            "SELECT phase FROM placement_moves WHERE org_id = $1",
            &[&org.uuid()],
        )
        .await
        .map_err(map_err)?
        .map(|r| r.get(0));
    crate::placement::moving_refusal(org, moving)?;
    let wanted = match &kind {
        Kind::Shared => Route::Shared,
        Kind::Schema => Route::Schema(schema_name(org).into()),
        Kind::Database(target) => Route::Database {
            name: crate::placement::database_name(org).into(),
            target: target.as_deref().map(Into::into),
        },
    };
    if current != before {
        return Err(Error::Internal(format!(
            "organization {org}'s placement changed under its write fence"
        )));
    }
    if current == wanted {
        return Ok(current); // nothing to do; the transactions roll back
    }
    // Leaving a database of its own: the fence held there (and here) from the emptiness
    // check on, so no tenant write lands there meanwhile: one checked against its mirror
    // waits there, any other here (the projection's org row is no longer locked for it:
    // the mirror's retirement below inserts a row referencing it).
    let holding = match (&current, &old) {
        (Route::Shared, _) => tables_with_rows(&tx, catalog, org, None).await?,
        (Route::Schema(s), _) => tables_with_rows(&tx, catalog, org, Some(s)).await?,
        (Route::Database { .. }, Some((_, _, placed))) => {
            tables_with_rows(placed, catalog, org, None).await?
        }
        (Route::Database { .. }, None) => {
            return Err(Error::Internal(
                "no connection to the old placement database".into(),
            ))
        }
    };
    crate::placement::empty_or_refuse(org, &current, &holding)?;
    // Made before the directory names it; dropped again if the directory change fails.
    let mut made: Option<(Login, String)> = None;
    match &wanted {
        Route::Database { name, target } => {
            let login = server_login(&tx, control_url, target.as_deref()).await?;
            let members: Vec<uuid::Uuid> = {
                tx.execute(
                    "SELECT set_config('app.org_id', $1, true)",
                    &[&org.to_string()],
                )
                .await
                .map_err(map_err)?;
                let rows = tx
                    .query(
                        "SELECT user_id FROM memberships WHERE org_id = $1 ORDER BY user_id",
                        &[&org.uuid()],
                    )
                    .await
                    .map_err(map_err)?;
                tx.execute("SELECT set_config('app.org_id', '', true)", &[])
                    .await
                    .map_err(map_err)?;
                rows.iter().map(|r| r.get(0)).collect()
            };
            // An org is placed while it is empty: the users its rows may name are its
            // members.
            let projection = Projection {
                org,
                users: members.clone(),
                members,
                mirror: control_generation(&tx, org).await?,
            };
            provision_database(&login, name, app_role, catalog, &projection).await?;
            made = Some((login, name.to_string()));
        }
        Route::Schema(schema) => {
            let exists = tx
                .query_opt(
                    "SELECT 1 FROM pg_namespace WHERE nspname = $1",
                    &[&schema.as_ref()],
                )
                .await
                .map_err(map_err)?
                .is_some();
            if exists {
                return Err(Error::Conflict(
                    "placement_exists",
                    format!("schema {schema} already exists (an earlier placement left behind?); drop it or check it with orgwall doctor: nothing changed"),
                ));
            }
            tx.batch_execute(&format!("CREATE SCHEMA {schema}"))
                .await
                .map_err(map_err)?;
            let control = enter(&tx, schema).await?;
            apply(&tx, app_role, catalog, Plane::Data).await?;
            tx.batch_execute(&format!("SET LOCAL search_path TO {control}"))
                .await
                .map_err(map_err)?;
        }
        Route::Shared => {}
    }
    let flipped = flip(&tx, org, &wanted).await;
    // The database left stops serving writes and reads from cached scopes before the
    // directory flips (as a move's cut-over does): if its drop below fails, or this
    // process dies before it, a write that waited at its fence finds its scope stale and
    // follows the org instead of landing in a database the directory no longer names.
    let retired = match (&flipped, &old) {
        (Ok(()), Some((login, name, _))) => Some(retire_in(login, name, org).await),
        _ => None,
    };
    let flipped = match (flipped, retired) {
        (Ok(()), None | Some(Ok(()))) => match tx.commit().await.map_err(map_err) {
            Ok(()) => Ok(()),
            // A COMMIT answered with an error (a lost connection) may have committed: the
            // directory, read again, says. Unknown: nothing is undone (the database made
            // stays, for the doctor or a `placement set` again to settle), since undoing
            // a change that committed would drop the database the directory names.
            Err(e) => match directory_now(control_url, org).await {
                Ok(now) if now == wanted => Ok(()),
                Ok(_) => Err(e),
                Err(u) => {
                    tracing::warn!(org_id = %org, error = %e, unknown = %u, "a placement change's commit failed and its outcome is unknown: nothing undone");
                    return Err(e);
                }
            },
        },
        (Ok(()), Some(Err(e))) | (Err(e), _) => {
            drop(tx);
            Err(e)
        }
    };
    if let Err(e) = flipped {
        if let Some((login, name, _)) = &old {
            let restored = async {
                let placed = login.connect_db(name).await?;
                restore_mirror(client, &placed, org).await
            };
            if let Err(u) = restored.await {
                tracing::warn!(org_id = %org, error = %u, "the access mirror of the database a placement change did not leave stays retired (orgwall doctor names it)");
            }
        }
        if let Some((login, name)) = made {
            if let Err(d) = drop_database(&login, &name).await {
                tracing::warn!(database = %name, error = %d, "could not drop a placement database the directory does not name");
            }
        }
        return Err(e);
    }
    if let Some((login, name)) = &made {
        // Made with its access mirror at the org's generation as read under the org's
        // lock: raised to the generation now that the directory names it (see
        // `raise_mirror`; the directory change itself bumped it). If that fails, the next
        // access change of the org raises it.
        let raised = async {
            let placed = login.connect_db(name).await?;
            raise_mirror(&*client, &placed, org).await
        };
        if let Err(e) = raised.await {
            tracing::warn!(org_id = %org, database = %name, error = %e, "the new placement database's access mirror could not be raised");
        }
    }
    // The old schema or database goes once the directory no longer names it (the org
    // had no data-plane row there); a failure leaves an orphan the doctor names. The
    // schema's drop holds nothing else while it waits for its locks (see `drop_schema`).
    if let Route::Schema(schema) = &current {
        if let Err(e) = drop_schema(client, schema).await {
            tracing::warn!(schema = %schema, error = %e, "the old placement schema could not be dropped");
        }
    }
    if let Some((login, name, placed)) = old {
        // The fence there let go first: a write that waited at it finds the mirror
        // retired and follows the org (its scope found stale, the directory read again).
        let _ = placed.batch_execute("COMMIT").await;
        if let Err(e) = drop_database(&login, &name).await {
            tracing::warn!(database = %name, error = %e, "the old placement database could not be dropped");
        }
        drop(placed);
    }
    Ok(wanted)
}

/// `org`'s route as the directory holds it now, read on a connection of its own to the
/// control database at `control_url`.
async fn directory_now(control_url: &str, org: OrgId) -> Result<Route> {
    let cfg: tokio_postgres::Config = control_url.parse().map_err(map_err)?;
    let c = connect_to(&cfg, "the control database").await?;
    super::mover::route_of(&c, org).await
}

/// Retires `org`'s access mirror in its placement database `name` (committed on a
/// connection of its own; see [`crate::placement::MIRROR_RETIRED`]).
async fn retire_in(login: &Login, name: &str, org: OrgId) -> Result<()> {
    let c = login.connect_db(name).await?;
    super::mover::retire_mirror(&c, org).await
}

/// Restores `org`'s access mirror in the placement database `placed` is connected to, if
/// it is retired (a directory change that retired it did not commit, or a mover died
/// between the two): to the org's generation on the control plane, whose row is locked
/// meanwhile, so an access change committing now writes its own generation into the
/// mirror after this one.
pub(crate) async fn restore_mirror(
    control: &mut tokio_postgres::Client,
    placed: &tokio_postgres::Client,
    org: OrgId,
) -> Result<()> {
    let tx = control.transaction().await.map_err(map_err)?;
    let gen: i64 = tx
        .query_opt(
            "SELECT gen FROM access_generations WHERE dep = $1 FOR UPDATE",
            &[&org.uuid()],
        )
        .await
        .map_err(map_err)?
        .map_or(0, |r| r.get(0));
    placed
        .execute(
            &format!(
                "UPDATE {} SET gen = $2 WHERE dep = $1 AND gen = $3",
                crate::placement::MIRROR_TABLE
            ),
            &[&org.uuid(), &gen, &crate::placement::MIRROR_RETIRED],
        )
        .await
        .map_err(map_err)?;
    tx.commit().await.map_err(map_err)
}

/// `org`'s access generation on the control plane as `control` reads it now (0: none).
pub(crate) async fn control_generation(
    control: &impl tokio_postgres::GenericClient,
    org: OrgId,
) -> Result<i64> {
    Ok(control
        .query_opt(
            "SELECT gen FROM access_generations WHERE dep = $1",
            &[&org.uuid()],
        )
        .await
        .map_err(map_err)?
        .map_or(0, |r| r.get(0)))
}

/// Opens `org`'s access mirror in a move's destination database (retired since it was
/// made): un-retired, or raised, to the org's generation as `control` reads it. Under
/// the move's fence before its directory change; and after it, in the cleanup, since an
/// access change that committed in between read the old placement with its commit and
/// raised the mirror there instead. Only a move opens a mirror: no other placement
/// change runs while its row is there, so none is retiring this one meanwhile.
pub(crate) async fn open_mirror(
    control: &impl tokio_postgres::GenericClient,
    placed: &tokio_postgres::Client,
    org: OrgId,
) -> Result<()> {
    mirror_control(control, placed, org, true).await
}

/// Raises `org`'s access mirror in the placement database `placed` is connected to, to
/// the org's generation on the control plane now (never lowered; a retired mirror stays
/// retired: another placement change may be leaving it already): once a directory
/// change that names that database has committed (`placement set`), every access change
/// committed before it is mirrored there, though its own writer raised the mirror of the
/// placement the directory named then. Without it a new database's mirror stayed empty
/// until the org's next access change, and a scope cached before a change (by an
/// instance its announcement had not reached, with a route into a database of the same
/// name from before) passed the mirror's check there.
pub(crate) async fn raise_mirror(
    control: &impl tokio_postgres::GenericClient,
    placed: &tokio_postgres::Client,
    org: OrgId,
) -> Result<()> {
    mirror_control(control, placed, org, false).await
}

/// Writes `org`'s access generation as `control` reads it now into the mirror `placed`
/// holds: raised ([`super::MIRROR_SQL`]), and with `open` un-retired too.
async fn mirror_control(
    control: &impl tokio_postgres::GenericClient,
    placed: &tokio_postgres::Client,
    org: OrgId,
    open: bool,
) -> Result<()> {
    let gen = control_generation(control, org).await?;
    let written = if open {
        let sql = format!(
            "INSERT INTO {t} AS m (dep, gen) VALUES ($1, $2)
             ON CONFLICT (dep) DO UPDATE SET gen = CASE WHEN m.gen = $3 THEN excluded.gen
                                                   ELSE greatest(m.gen, excluded.gen) END",
            t = crate::placement::MIRROR_TABLE
        );
        placed
            .execute(
                &sql,
                &[&org.uuid(), &gen, &crate::placement::MIRROR_RETIRED],
            )
            .await
    } else {
        placed
            .execute(super::MIRROR_SQL, &[&org.uuid(), &gen])
            .await
    };
    written.map_err(map_err).map(drop)
}

/// How long dropping a placement schema waits for each lock it needs before it lets go
/// of what it holds and tries again (see [`drop_schema`]).
const DROP_LOCK_WAIT: &str = "50ms";

/// How long [`drop_schema`] keeps trying before it gives up (the caller's job or command
/// then fails and is run again).
const DROP_TRIES_FOR: std::time::Duration = std::time::Duration::from_secs(60);

/// Drops placement schema `schema` (if it exists) as its owner, on `client`, in a
/// transaction of its own that holds no other lock (a lock held from before would outlast
/// every try, and a cycle through it would no longer be broken by PostgreSQL's deadlock
/// check within a second but wait out the tries). A schema's tables hold foreign keys
/// into control tables (`users`, `memberships`), so dropping them takes those tables'
/// exclusive locks one after another:
/// waiting for one while holding another stalls every org's access reads behind it and
/// closes a cycle with any statement that reads them in another order (a member's
/// verification was answered `deadlock detected` in a move's cleanup). So each try waits
/// at most [`DROP_LOCK_WAIT`] for each lock and, if one is busy, gives back everything
/// it took (a savepoint) and tries again a little later.
pub(crate) async fn drop_schema(client: &mut tokio_postgres::Client, schema: &str) -> Result<()> {
    if !is_schema_name(schema) {
        return Err(Error::Internal(format!(
            "{schema:?} is not a placement schema"
        )));
    }
    let tx = client.transaction().await.map_err(map_err)?;
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(5);
    loop {
        let r = tx
            .batch_execute(&format!(
                "SAVEPOINT orgwall_drop_schema;
                 SET LOCAL lock_timeout = '{DROP_LOCK_WAIT}';
                 DROP SCHEMA IF EXISTS {schema} CASCADE;
                 RELEASE SAVEPOINT orgwall_drop_schema"
            ))
            .await;
        let e = match r {
            Ok(()) => return tx.commit().await.map_err(map_err),
            Err(e) => e,
        };
        if e.code() != Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE)
            || started.elapsed() > DROP_TRIES_FOR
        {
            return Err(map_err(e));
        }
        tx.batch_execute(
            "ROLLBACK TO SAVEPOINT orgwall_drop_schema; RELEASE SAVEPOINT orgwall_drop_schema",
        )
        .await
        .map_err(map_err)?;
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(500));
    }
}

/// The directory change of [`place`], in its transaction: names the new placement (the
/// old schema, empty, is dropped after the commit).
async fn flip(tx: &tokio_postgres::Transaction<'_>, org: OrgId, wanted: &Route) -> Result<()> {
    let (location, target) = match wanted {
        Route::Shared => (None, None),
        Route::Schema(s) => (Some(s.to_string()), None),
        Route::Database { name, target } => {
            (Some(name.to_string()), target.as_deref().map(str::to_owned))
        }
    };
    let n = tx
        .execute(
            "UPDATE placements SET kind = $2, location = $3, target = $4, updated_at = now() WHERE org_id = $1",
            &[&org.uuid(), &wanted.kind(), &location, &target],
        )
        .await
        .map_err(map_err)?;
    if n == 0 {
        tx.execute(
            "INSERT INTO placements (org_id, kind, location, target, created_at, updated_at)
             VALUES ($1, $2, $3, $4, now(), now())",
            &[&org.uuid(), &wanted.kind(), &location, &target],
        )
        .await
        .map_err(map_err)?;
    }
    Ok(())
}

/// The data-plane versions recorded in a placement schema (`Some`) or in the database
/// `client` is connected to (`None`: a placement database), per module, and its size in
/// bytes (the schema's tables with their indexes and TOAST; the whole database).
pub(crate) async fn versions(
    client: &tokio_postgres::Client,
    schema: Option<&str>,
) -> Result<(Vec<(String, i64)>, i64)> {
    let table = match schema {
        Some(s) if is_schema_name(s) => format!("{s}.schema_migrations"),
        Some(s) => {
            return Err(Error::Internal(format!(
                "{s:?} is not a placement schema name"
            )))
        }
        None => "schema_migrations".to_owned(),
    };
    let rows = client
        .query(
            &format!("SELECT module, max(version) FROM {table} GROUP BY module ORDER BY module"),
            &[],
        )
        .await
        .map_err(map_err)?;
    let size = match schema {
        Some(s) => {
            client
                .query_one(
                    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = $1 AND c.relkind IN ('r', 'm', 'p')",
                    &[&s],
                )
                .await
        }
        None => {
            client
                .query_one("SELECT pg_database_size(current_database())", &[])
                .await
        }
    }
    .map_err(map_err)?
    .get(0);
    Ok((rows.iter().map(|r| (r.get(0), r.get(1))).collect(), size))
}

/// How long a target server has to answer when it is registered.
const TARGET_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Registers a target server in the control database (as the owner: the table is private
/// to it), after checking it (see [`crate::placement::add_target`]). Messages name the
/// target by name and `user@host:port/database`, never with its password.
pub(crate) async fn add_target(
    client: &tokio_postgres::Client,
    name: &str,
    url: &str,
    max_connections: Option<u32>,
) -> Result<crate::placement::Target> {
    let bad = |why: String| Error::Validation(format!("target {name}: {why}"));
    let cfg: tokio_postgres::Config = url
        .parse()
        .map_err(|_| bad("the URL is not a PostgreSQL connection URL".into()))?;
    if cfg.get_hosts().is_empty() || cfg.get_user().is_none() || cfg.get_dbname().is_none() {
        return Err(bad(
            "the URL must name a host, a user and a database (postgres://user[:password]@host[:port]/database)"
                .into(),
        ));
    }
    let shown = super::describe_login(url);
    let (target, conn) = tokio::time::timeout(TARGET_TIMEOUT, cfg.connect(tokio_postgres::NoTls))
        .await
        .map_err(|_| {
            bad(format!(
                "{shown} did not answer within {} s",
                TARGET_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| {
            let cause = std::error::Error::source(&e).map_or(String::new(), |c| format!(" ({c})"));
            bad(format!("cannot connect to {shown}: {e}{cause}"))
        })?;
    let task = tokio::spawn(conn);
    let checked = target
        .query_one(
            "SELECT current_setting('server_version_num')::int,
                    r.rolsuper OR (r.rolcreatedb AND r.rolcreaterole)
             FROM pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .await
        .map_err(|e| bad(format!("{shown} did not answer the checks: {e}")));
    drop(target);
    task.abort();
    let row = checked?;
    let version: i32 = row.get(0);
    if version < 150_000 {
        return Err(bad(format!(
            "{shown} runs PostgreSQL {}.{}; placements need 15 or newer",
            version / 10_000,
            version % 10_000 / 100
        )));
    }
    if !row.get::<_, bool>(1) {
        return Err(bad(format!(
            "the login of {shown} may not create databases and roles (it needs CREATEDB and CREATEROLE, or superuser)"
        )));
    }
    let created = client
        .query_opt(
            "INSERT INTO placement_targets (name, url, created_at, max_connections)
             VALUES ($1, $2, now(), $3)
             ON CONFLICT (name) DO NOTHING RETURNING created_at",
            &[&name, &url, &budget_column(max_connections)],
        )
        .await
        .map_err(map_err)?
        .ok_or_else(|| {
            Error::Conflict(
                "target_exists",
                format!("a target named {name} already exists"),
            )
        })?;
    Ok(crate::placement::Target {
        name: name.to_owned(),
        shown,
        created_at: created.get(0),
        max_connections,
    })
}

/// A budget as the column holds it.
fn budget_column(max_connections: Option<u32>) -> Option<i32> {
    max_connections.map(|n| i32::try_from(n).unwrap_or(i32::MAX))
}

/// A target as `SELECT name, url, created_at, max_connections` reads it.
fn target_of(r: &tokio_postgres::Row) -> crate::placement::Target {
    crate::placement::Target {
        name: r.get(0),
        shown: super::describe_login(r.get(1)),
        created_at: r.get(2),
        max_connections: r
            .get::<_, Option<i32>>(3)
            .and_then(|n| u32::try_from(n).ok()),
    }
}

/// Sets or clears a target's connection budget.
pub(crate) async fn set_target_budget(
    client: &tokio_postgres::Client,
    name: &str,
    max_connections: Option<u32>,
) -> Result<crate::placement::Target> {
    client
        .query_opt(
            "UPDATE placement_targets SET max_connections = $2 WHERE name = $1
             RETURNING name, url, created_at, max_connections",
            &[&name, &budget_column(max_connections)],
        )
        .await
        .map_err(map_err)?
        .map(|r| target_of(&r))
        .ok_or(Error::NotFound)
}

/// The registered targets, without credentials.
pub(crate) async fn targets(
    client: &tokio_postgres::Client,
) -> Result<Vec<crate::placement::Target>> {
    let rows = client
        .query(
            "SELECT name, url, created_at, max_connections FROM placement_targets ORDER BY name",
            &[],
        )
        .await
        .map_err(map_err)?;
    Ok(rows.iter().map(target_of).collect())
}

/// Removes a target no placement names.
pub(crate) async fn remove_target(client: &tokio_postgres::Client, name: &str) -> Result<()> {
    match client
        .execute("DELETE FROM placement_targets WHERE name = $1", &[&name])
        .await
    {
        Ok(0) => Err(Error::NotFound),
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION) => {
            Err(Error::Refused(
                "target_in_use",
                format!("target {name} holds placements or a placement rule names it; move them or change the rule first"),
            ))
        }
        Err(e) => Err(map_err(e)),
    }
}

/// The control-plane tables a placement database holds as a **projection**: only the key
/// columns, only its org's rows (the org, the users its rows may name, its memberships),
/// so that the data-plane migrations' foreign keys (`REFERENCES orgs (id)`, `users (id)`,
/// `memberships (org_id, user_id)`) hold inside the placement database exactly as they do
/// in the control one: a ticket's assignee must be a member of the ticket's org, enforced
/// by the database that stores the ticket. The server role holds no privilege on them
/// (data-plane statements name no control-plane table; foreign-key checks run as the
/// owner), so a tenant transaction can neither read nor change them; they change only
/// from the control plane, as the owner.
pub(crate) use crate::placement::PROJECTION_TABLES;

const PROJECTION_DDL: &str = "
CREATE TABLE orgs (id uuid PRIMARY KEY);
CREATE TABLE users (id uuid PRIMARY KEY);
CREATE TABLE memberships (
    org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (org_id, user_id)
);
COMMENT ON TABLE orgs IS 'orgwall placement projection (control plane: key columns of this org only)';
COMMENT ON TABLE users IS 'orgwall placement projection (control plane: key columns of this org''s users only)';
COMMENT ON TABLE memberships IS 'orgwall placement projection (control plane: key columns of this org''s memberships only)';
";

/// Connects to `cfg` (the owner login of a placement's server or database).
pub(crate) async fn connect_to(
    cfg: &tokio_postgres::Config,
    shown: &str,
) -> Result<tokio_postgres::Client> {
    let (client, conn) = tokio::time::timeout(TARGET_TIMEOUT, cfg.connect(tokio_postgres::NoTls))
        .await
        .map_err(|_| {
            Error::Unavailable(format!(
                "{shown} did not answer within {} s",
                TARGET_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| Error::Unavailable(format!("cannot connect to {shown}: {e}")))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "placement connection closed");
        }
    });
    Ok(client)
}

/// The server role's privileges in a placement database after the walls: none on the
/// projection, nothing on `schema_migrations` (the walls already revoke that).
async fn revoke_projection(tx: &tokio_postgres::Transaction<'_>, app_role: &str) -> Result<()> {
    super::check_role_name(app_role)?;
    tx.batch_execute(&format!(
        "REVOKE ALL ON {} FROM {app_role}",
        PROJECTION_TABLES.join(", ")
    ))
    .await
    .map_err(map_err)
}

/// A server's owner login, and how it is shown (`user@host:port/database`, never the
/// password).
#[derive(Clone)]
pub(crate) struct Login {
    pub(crate) cfg: tokio_postgres::Config,
    pub(crate) shown: String,
    /// The server's connection budget, if it has one of its own (a target's
    /// `max_connections`).
    pub(crate) budget: Option<usize>,
}

impl Login {
    /// A connection of its own to database `name` on this login's server.
    pub(crate) async fn connect_db(&self, name: &str) -> Result<tokio_postgres::Client> {
        let mut cfg = self.cfg.clone();
        cfg.dbname(name);
        connect_to(&cfg, &self.shown).await
    }
}

/// What a placement database's projection holds for its org.
pub(crate) struct Projection {
    pub(crate) org: OrgId,
    /// Every user id the org's rows may name.
    pub(crate) users: Vec<uuid::Uuid>,
    /// The org's members' user ids.
    pub(crate) members: Vec<uuid::Uuid>,
    /// What the database's access mirror starts at: the org's generation on the control
    /// plane, or [`crate::placement::MIRROR_RETIRED`] for a move's destination (opened by
    /// its cut-over). Never empty: an empty mirror passes every scope, a request with a
    /// route from before into a database of the same name included.
    pub(crate) mirror: i64,
}

/// Creates an org's placement database `name` on the server the login `server` reaches
/// (any database of it: `CREATE DATABASE` works from each), then, in one transaction in
/// the new database: the projection tables filled from `projection`, the data-plane
/// migrations of `catalog` at the current version, the walls (forced RLS and the `org_isolation` policy
/// on every data-plane table, the server role created if the server lacks it, its grants)
/// and the projection made private. Anything failing after `CREATE DATABASE` drops the
/// database again: a placement database exists whole or not at all.
pub(crate) async fn provision_database(
    server: &Login,
    name: &str,
    app_role: &str,
    catalog: &Catalog,
    projection: &Projection,
) -> Result<()> {
    let shown = server.shown.as_str();
    if !crate::placement::is_database_name(name) {
        return Err(Error::Internal(format!(
            "{name:?} is not a placement database name"
        )));
    }
    let admin = connect_to(&server.cfg, shown).await?;
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .map_err(map_err)?
        .is_some();
    if exists {
        return Err(Error::Conflict(
            "placement_exists",
            format!("database {name} already exists on {shown} (an earlier placement left behind?); drop it or check it with orgwall doctor: nothing changed"),
        ));
    }
    // Template 0 and UTF-8: the same encoding whatever the server's default template holds.
    admin
        .batch_execute(&format!(
            "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'"
        ))
        .await
        .map_err(map_err)?;
    let mut cfg = server.cfg.clone();
    cfg.dbname(name);
    let filled = async {
        let mut client = connect_to(&cfg, &format!("{shown} (database {name})")).await?;
        let tx = client.transaction().await.map_err(map_err)?;
        tx.batch_execute(MIGRATION_LOCK).await.map_err(map_err)?;
        tx.batch_execute(PROJECTION_DDL).await.map_err(map_err)?;
        tx.execute(
            "INSERT INTO orgs (id) VALUES ($1)",
            &[&projection.org.uuid()],
        )
        .await
        .map_err(map_err)?;
        tx.execute(
            "INSERT INTO users (id) SELECT DISTINCT unnest($1::uuid[])",
            &[&projection.users],
        )
        .await
        .map_err(map_err)?;
        tx.execute(
            "INSERT INTO memberships (org_id, user_id) SELECT $1, unnest($2::uuid[])",
            &[&projection.org.uuid(), &projection.members],
        )
        .await
        .map_err(map_err)?;
        apply(&tx, app_role, catalog, Plane::Data).await?;
        revoke_projection(&tx, app_role).await?;
        mirror(&tx, app_role).await?;
        tx.execute(
            &format!(
                "INSERT INTO {} (dep, gen) VALUES ($1, $2)",
                crate::placement::MIRROR_TABLE
            ),
            &[&projection.org.uuid(), &projection.mirror],
        )
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }
    .await;
    if let Err(e) = filled {
        let dropped = admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
        if let Err(d) = dropped {
            tracing::warn!(database = name, error = %d, "could not drop a half-made placement database");
        }
        return Err(e);
    }
    Ok(())
}

/// Drops `org`'s placement database `name` on the server `server` reaches (connections
/// still open to it are ended: the org's data goes with it, which is the point of a
/// dedicated placement's deletion).
pub(crate) async fn drop_database(server: &Login, name: &str) -> Result<()> {
    if !crate::placement::is_database_name(name) {
        return Err(Error::Internal(format!(
            "{name:?} is not a placement database name"
        )));
    }
    let c = connect_to(&server.cfg, &server.shown).await?;
    // Sessions still running a statement there finish it first (up to 2 s): a write that
    // waited at the org's fence, let go just before this, is answering that its scope is
    // stale (it then follows the org); ended mid-answer it would be a 503 instead
    // (`a_write_waiting_while_an_empty_org_leaves_its_database_follows_it`, once under
    // load). Idle ones are ended by FORCE.
    for _ in 0..200 {
        let busy: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = $1 AND state = 'active' AND backend_type = 'client backend'
                   AND pid <> pg_backend_pid()",
                &[&name],
            )
            .await
            .map_err(map_err)?
            .get(0);
        if busy == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .map_err(map_err)
}

/// The login configuration of a registered target, and how it is shown (the owner reads
/// `placement_targets`, private to it).
pub(crate) async fn target_login(
    client: &impl tokio_postgres::GenericClient,
    name: &str,
) -> Result<Login> {
    let row = client
        .query_opt(
            "SELECT url, max_connections FROM placement_targets WHERE name = $1",
            &[&name],
        )
        .await
        .map_err(map_err)?
        .ok_or_else(|| {
            Error::Validation(format!(
                "no target named {name} (see orgwall placement target list)"
            ))
        })?;
    let url: String = row.get(0);
    let cfg = url
        .parse()
        .map_err(|_| Error::Internal(format!("target {name}: its stored URL does not parse")))?;
    Ok(Login {
        cfg,
        shown: super::describe_login(&url),
        budget: row
            .get::<_, Option<i32>>(1)
            .and_then(|n| usize::try_from(n).ok()),
    })
}
