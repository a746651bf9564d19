//! PostgreSQL: the migration runner and the database wall it asserts (forced row-level
//! security, the `org_isolation` policy, the server role and its grants).

use crate::migrate::{
    checksum, plan_all, quote_ident, system_predicate, Report, Side, ORG_PREDICATE,
    ORG_PREDICATE_ONCE, ORG_PREDICATE_PRINTED,
};
use crate::module::{Catalog, Plane};
use orgwall_core::{Error, Result};

/// The advisory lock every migration, placement and doctor-free schema change takes.
pub(crate) const MIGRATION_LOCK: &str = "SELECT pg_advisory_xact_lock(7270001)";

/// Placements migrated at the same time by [`migrate`].
pub(crate) const PLACEMENT_JOBS: usize = 4;

/// Called as placements are migrated: (done, total).
pub type Progress<'a> = &'a (dyn Fn(usize, usize) + Send + Sync);

/// One placement for [`migrate`] to bring to the current version.
enum Placement {
    Schema(orgwall_core::OrgId, String),
    Database(orgwall_core::OrgId, String, Option<String>),
}

impl std::fmt::Display for Placement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Placement::Schema(org, s) => write!(f, "placement of org {org} (schema {s})"),
            Placement::Database(org, d, None) => write!(f, "placement of org {org} (database {d})"),
            Placement::Database(org, d, Some(t)) => {
                write!(f, "placement of org {org} (database {d} on target {t})")
            }
        }
    }
}

/// Runs every registered module's PostgreSQL migrations as the connected login, then
/// asserts the wall on every tenant table, all in one transaction; then brings every
/// placement schema and placement database to the same version, [`PLACEMENT_JOBS`] at a
/// time, each in a transaction of its own: a failure names the placement, no placement
/// is started after it, and every placement is left at the old or the new version,
/// whole; a re-run continues. `progress` hears (done, total) as placements finish.
pub(crate) async fn migrate(
    client: &mut tokio_postgres::Client,
    control_url: &str,
    app_role: &str,
    catalog: &Catalog,
    progress: Progress<'_>,
) -> Result<Report> {
    use super::map_err;
    super::check_role_name(app_role)?;
    let tx = client.transaction().await.map_err(map_err)?;
    tx.batch_execute(MIGRATION_LOCK).await.map_err(map_err)?;
    let mut report = apply(&tx, app_role, catalog, Plane::Control).await?;
    tx.commit().await.map_err(map_err)?;
    let client = &*client;
    let mut todo = std::collections::VecDeque::new();
    for (org, schema, _) in super::placement::placed(client, "schema").await? {
        todo.push_back(Placement::Schema(org, schema));
    }
    for (org, name, target) in super::placement::placed(client, "database").await? {
        todo.push_back(Placement::Database(org, name, target));
    }
    let total = todo.len();
    progress(0, total);
    let run = Run {
        client,
        control_url,
        app_role,
        catalog,
        progress,
        total,
        todo: std::sync::Mutex::new(todo),
        done: std::sync::atomic::AtomicUsize::new(0),
        failed: std::sync::Mutex::new(None),
    };
    futures::future::join_all((0..PLACEMENT_JOBS.min(total)).map(|_| run.worker())).await;
    let done = run.done.load(std::sync::atomic::Ordering::SeqCst);
    report.placements = done;
    let failed = run
        .failed
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((p, e)) = failed {
        return Err(Error::Internal(format!(
            "{p} failed to migrate: {e}; it is unchanged; the control schema and {done} of {total} \
             placement(s) are migrated, the others are at the old version, each whole: run \
             migrate again to continue"
        )));
    }
    Ok(report)
}

/// The shared state of one [`migrate`] run's placement workers.
struct Run<'a> {
    client: &'a tokio_postgres::Client,
    control_url: &'a str,
    app_role: &'a str,
    catalog: &'a Catalog,
    progress: Progress<'a>,
    total: usize,
    todo: std::sync::Mutex<std::collections::VecDeque<Placement>>,
    done: std::sync::atomic::AtomicUsize,
    /// The first placement that failed; no worker starts another after it.
    failed: std::sync::Mutex<Option<(Placement, Error)>>,
}

impl Run<'_> {
    fn next(&self) -> Option<Placement> {
        if self
            .failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some()
        {
            return None;
        }
        self.todo
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop_front()
    }

    /// Takes placements until none is left (or one failed); schemas on a control
    /// connection of its own, opened on the first.
    async fn worker(&self) {
        let mut own: Option<tokio_postgres::Client> = None;
        while let Some(p) = self.next() {
            let r = match &p {
                Placement::Schema(_, schema) => {
                    if own.is_none() {
                        match connect(self.client, self.control_url).await {
                            Ok(c) => own = Some(c),
                            Err(e) => {
                                self.fail(p, e);
                                return;
                            }
                        }
                    }
                    match own.as_mut() {
                        Some(c) => migrate_schema(c, schema, self.app_role, self.catalog).await,
                        None => Err(Error::Internal("no connection".into())),
                    }
                }
                Placement::Database(_, name, target) => {
                    super::placement::migrate_database(
                        self.client,
                        self.control_url,
                        name,
                        target.as_deref(),
                        self.app_role,
                        self.catalog,
                    )
                    .await
                }
            };
            match r {
                Ok(()) => {
                    let n = self.done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    (self.progress)(n, self.total);
                }
                Err(e) => {
                    self.fail(p, e);
                    return;
                }
            }
        }
    }

    fn fail(&self, p: Placement, e: Error) {
        let mut f = self
            .failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if f.is_none() {
            *f = Some((p, e));
        }
    }
}

/// A connection of the login at `url` (the control database's).
async fn connect(client: &tokio_postgres::Client, url: &str) -> Result<tokio_postgres::Client> {
    let login = super::placement::server_login(client, url, None).await?;
    super::placement::connect_to(&login.cfg, &login.shown).await
}

/// Brings placement schema `schema` to the current data-plane version with its walls, in
/// one transaction, under a lock of its own (two `migrate` runs never apply the same
/// placement's migrations at once; different placements go at the same time).
async fn migrate_schema(
    client: &mut tokio_postgres::Client,
    schema: &str,
    app_role: &str,
    catalog: &Catalog,
) -> Result<()> {
    use super::map_err;
    let tx = client.transaction().await.map_err(map_err)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(7270001, hashtext($1))",
        &[&schema],
    )
    .await
    .map_err(map_err)?;
    super::placement::enter(&tx, schema).await?;
    apply(&tx, app_role, catalog, Plane::Data).await?;
    tx.commit().await.map_err(map_err)
}

/// The autovacuum thresholds of every tenant table: no automatic `ANALYZE` (nor `VACUUM`
/// for dead rows) before a thousand rows changed, instead of fifty.
///
/// A placement of its own starts empty. With PostgreSQL's default thresholds autovacuum
/// analyzes its tables at about fifty rows, a page; costed at a page, a primary key
/// lookup is a sequential scan, and that is the plan every pooled connection then keeps
/// for the foreign key checks into the table (a note's eight search terms each check
/// the note) while the table grows, until autovacuum analyzes it again, up to a naptime
/// later: an org importing fast in its first minute checks each new row against all its
/// rows. Never analyzed, a table is costed at its actual size but at least ten pages,
/// which plans the index; at a thousand rows (20-30 pages) the index is the cheaper plan
/// on real statistics too (checked on PostgreSQL 15: a generic plan of the key check is
/// the index scan unanalyzed, a sequential scan analyzed at 60 rows, the index again
/// analyzed at 1,000). Set by the runner on every tenant table of every placement, so a
/// module's table inherits it; on the large shared tables the scale factor decides as
/// before. Test: `orgwall-store/tests/plans.rs`, with autovacuum on. Written as
/// PostgreSQL keeps them in `pg_class.reloptions`, so a table that has them is seen as such.
const YOUNG_TABLE_AUTOVACUUM: [&str; 2] = [
    "autovacuum_analyze_threshold=1000",
    "autovacuum_vacuum_threshold=1000",
];

/// Applies what is pending in the current schema (the first on the search path) and
/// asserts the walls there, in `tx`: with [`Plane::Control`] every migration (the control
/// schema, which is also the shared placement); with [`Plane::Data`] only the data-plane
/// ones (a placement schema).
pub(crate) async fn apply(
    tx: &tokio_postgres::Transaction<'_>,
    app_role: &str,
    catalog: &Catalog,
    part: Plane,
) -> Result<Report> {
    use super::map_err;
    super::check_role_name(app_role)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             module text NOT NULL,
             version bigint NOT NULL,
             name text NOT NULL,
             checksum text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now(),
             PRIMARY KEY (module, version))",
    )
    .await
    .map_err(map_err)?;
    let has_module = tx
        .query_opt(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()
               AND table_name = 'schema_migrations' AND column_name = 'module'",
            &[],
        )
        .await
        .map_err(map_err)?
        .is_some();
    if !has_module {
        return Err(crate::migrate::legacy_layout());
    }
    let applied: Vec<(String, i64, String)> = tx
        .query(
            "SELECT module, version, checksum FROM schema_migrations ORDER BY module, version",
            &[],
        )
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let mut report = Report::default();
    let todo = plan_all(catalog, Side::Postgres, &applied, &mut report)?;
    for step in todo
        .iter()
        .filter(|s| part == Plane::Control || s.migration.plane == Plane::Data)
    {
        let m = step.migration;
        tx.batch_execute(m.sql).await.map_err(|e| {
            Error::Internal(format!(
                "module {} migration {} ({}) failed: {}",
                step.module,
                m.version,
                m.name,
                map_err(e)
            ))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (module, version, name, checksum) VALUES ($1, $2, $3, $4)",
            &[&step.module, &m.version, &m.name, &checksum(m.sql)],
        )
        .await
        .map_err(map_err)?;
        report.applied(step);
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

    // (name, whether its autovacuum thresholds are already set)
    let tenant_tables: Vec<(String, bool)> = tx
        .query(
            "SELECT c.relname::text, coalesce(c.reloptions @> $2, false) FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
               AND NOT (c.relname = ANY($1))
               AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                           AND a.attname = 'org_id' AND NOT a.attisdropped)
             ORDER BY 1",
            &[&catalog.global_list(), &YOUNG_TABLE_AUTOVACUUM.as_slice()],
        )
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (t, thresholds_set) in &tenant_tables {
        let q = quote_ident(t);
        // The table's policy as PostgreSQL prints it (USING, WITH CHECK), if it has one,
        // and whether another permissive policy reads it (ORed with the wall's: then the
        // setting is read once, in a sub-select; else in the expression, which the
        // planner folds with a statement's own org).
        let row = tx
            .query_one(
                "SELECT (SELECT ARRAY[pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)]
                         FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = 'org_isolation'),
                        EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid
                                AND p.polname <> 'org_isolation' AND p.polpermissive
                                AND p.polcmd IN ('r', '*'))
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = current_schema() AND c.relname = $1",
                &[t],
            )
            .await
            .map_err(map_err)?;
        let printed: Option<Vec<Option<String>>> = row.get(0);
        let ored: bool = row.get(1);
        let (want, other_printed) = match ored {
            false => (ORG_PREDICATE, ORG_PREDICATE_PRINTED[1]),
            true => (ORG_PREDICATE_ONCE, ORG_PREDICATE_PRINTED[0]),
        };
        let mut sql = format!(
            "ALTER TABLE {q} ENABLE ROW LEVEL SECURITY; ALTER TABLE {q} FORCE ROW LEVEL SECURITY;"
        );
        if !thresholds_set {
            sql.push_str(&format!(
                "ALTER TABLE {q} SET ({});",
                YOUNG_TABLE_AUTOVACUUM.join(", ")
            ));
        }
        let is = |text: &str| {
            printed.as_deref() == Some(&[Some(text.to_owned()), Some(text.to_owned())][..])
        };
        if printed.is_none() {
            sql.push_str(&format!(
                "CREATE POLICY org_isolation ON {q} USING ({want}) WITH CHECK ({want});"
            ));
        } else if is(other_printed) {
            sql.push_str(&format!(
                "ALTER POLICY org_isolation ON {q} USING ({want}) WITH CHECK ({want});"
            ));
        }
        tx.batch_execute(&sql).await.map_err(map_err)?;
    }
    // System tables (global, rows with an optional org_id): a tenant sees and changes only
    // its own org's rows and may add org-less ones; the named system transaction of the
    // table reaches every row.
    for t in catalog.system_tables() {
        let has_org = tx
            .query_opt(
                "SELECT 1 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = current_schema() AND c.relname = $1
                   AND a.attname = 'org_id' AND NOT a.attisdropped",
                &[&t],
            )
            .await
            .map_err(map_err)?
            .is_some();
        if !has_org {
            continue; // the doctor names it
        }
        let policies: Vec<String> = tx
            .query(
                "SELECT policyname::text FROM pg_policies WHERE schemaname = current_schema()
                 AND tablename = $1",
                &[&t],
            )
            .await
            .map_err(map_err)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let q = quote_ident(t);
        let system = system_predicate(t);
        let mut sql = format!(
            "ALTER TABLE {q} ENABLE ROW LEVEL SECURITY; ALTER TABLE {q} FORCE ROW LEVEL SECURITY;"
        );
        if !policies.iter().any(|p| p == "org_isolation") {
            sql.push_str(&format!(
                "CREATE POLICY org_isolation ON {q} USING ({ORG_PREDICATE_ONCE} OR {system})
                   WITH CHECK ({ORG_PREDICATE_ONCE} OR {system});"
            ));
        }
        if !policies.iter().any(|p| p == "orgless_insert") {
            sql.push_str(&format!(
                "CREATE POLICY orgless_insert ON {q} FOR INSERT WITH CHECK (org_id IS NULL);"
            ));
        }
        tx.batch_execute(&sql).await.map_err(map_err)?;
    }
    // The kernel's private tables (plain lowercase names, checked by a test).
    let private = crate::placement::PRIVATE_TABLES
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(", ");
    tx.batch_execute(&format!(
        "DO $$ BEGIN EXECUTE 'GRANT USAGE ON SCHEMA ' || quote_ident(current_schema()) || ' TO {role}';
           EXECUTE 'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ' || quote_ident(current_schema()) || ' TO {role}';
         END $$;
         REVOKE ALL ON schema_migrations FROM {role};
         DO $$ DECLARE t text; BEGIN
         FOREACH t IN ARRAY ARRAY[{private}] LOOP
           IF to_regclass(quote_ident(current_schema()) || '.' || t) IS NOT NULL THEN
             EXECUTE 'REVOKE ALL ON ' || quote_ident(current_schema()) || '.' || quote_ident(t) || ' FROM {role}';
           END IF;
         END LOOP;
         IF to_regclass(quote_ident(current_schema()) || '.placements') IS NOT NULL THEN
           EXECUTE 'REVOKE UPDATE, DELETE, TRUNCATE ON ' || quote_ident(current_schema()) || '.placements FROM {role}';
         END IF; END $$;"
    ))
    .await
    .map_err(map_err)?;
    Ok(report)
}
