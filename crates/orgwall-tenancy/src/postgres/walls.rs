//! PostgreSQL: the migration runner and the database wall it asserts (forced row-level
//! security, the `org_isolation` policy, the server role and its grants).

use crate::migrate::{
    checksum, plan_all, quote_ident, system_predicate, Report, Side, ORG_PREDICATE,
};
use crate::module::{Catalog, Plane};
use orgwall_core::{Error, Result};

/// The advisory lock every migration, placement and doctor-free schema change takes.
pub(crate) const MIGRATION_LOCK: &str = "SELECT pg_advisory_xact_lock(7270001)";

/// Runs every registered module's PostgreSQL migrations as the connected login, then
/// asserts the wall on every tenant table, all in one transaction; then brings every
/// placement schema and placement database to the same version, each in a transaction of
/// its own (a failure
/// names the placement and leaves every other one at the old or the new version; a
/// re-run continues).
pub(crate) async fn migrate(
    client: &mut tokio_postgres::Client,
    control_url: &str,
    app_role: &str,
    catalog: &Catalog,
) -> Result<Report> {
    use super::map_err;
    super::check_role_name(app_role)?;
    let tx = client.transaction().await.map_err(map_err)?;
    tx.batch_execute(MIGRATION_LOCK).await.map_err(map_err)?;
    let mut report = apply(&tx, app_role, catalog, Plane::Control).await?;
    tx.commit().await.map_err(map_err)?;
    for (org, schema, _) in super::placement::placed(client, "schema").await? {
        let tx = client.transaction().await.map_err(map_err)?;
        tx.batch_execute(MIGRATION_LOCK).await.map_err(map_err)?;
        let r = super::placement::enter(&tx, &schema).await;
        let r = match r {
            Ok(_) => apply(&tx, app_role, catalog, Plane::Data).await,
            Err(e) => Err(e),
        };
        match r {
            Ok(_) => {
                tx.commit().await.map_err(map_err)?;
                report.placements += 1;
            }
            Err(e) => {
                return Err(Error::Internal(format!(
                    "placement of org {org} (schema {schema}) failed to migrate: {e}; \
                     the control schema and {} placement(s) before it are migrated, this one is \
                     unchanged; run migrate again to continue",
                    report.placements
                )))
            }
        }
    }
    // Every placement database, the same way: one transaction each, in its database.
    for (org, name, target) in super::placement::placed(client, "database").await? {
        let r = super::placement::migrate_database(
            client,
            control_url,
            &name,
            target.as_deref(),
            app_role,
            catalog,
        )
        .await;
        match r {
            Ok(()) => report.placements += 1,
            Err(e) => {
                return Err(Error::Internal(format!(
                    "placement of org {org} (database {name}{}) failed to migrate: {e}; \
                     the control schema and {} placement(s) before it are migrated, this one is \
                     unchanged; run migrate again to continue",
                    target
                        .map(|t| format!(" on target {t}"))
                        .unwrap_or_default(),
                    report.placements
                )))
            }
        }
    }
    Ok(report)
}

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

    let tenant_tables: Vec<String> = tx
        .query(
            "SELECT c.relname::text FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
               AND NOT (c.relname = ANY($1))
               AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                           AND a.attname = 'org_id' AND NOT a.attisdropped)
             ORDER BY 1",
            &[&catalog.global_list()],
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
                "CREATE POLICY org_isolation ON {q} USING ({ORG_PREDICATE} OR {system})
                   WITH CHECK ({ORG_PREDICATE} OR {system});"
            ));
        }
        if !policies.iter().any(|p| p == "orgless_insert") {
            sql.push_str(&format!(
                "CREATE POLICY orgless_insert ON {q} FOR INSERT WITH CHECK (org_id IS NULL);"
            ));
        }
        tx.batch_execute(&sql).await.map_err(map_err)?;
    }
    tx.batch_execute(&format!(
        "DO $$ BEGIN EXECUTE 'GRANT USAGE ON SCHEMA ' || quote_ident(current_schema()) || ' TO {role}';
           EXECUTE 'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ' || quote_ident(current_schema()) || ' TO {role}';
         END $$;
         REVOKE ALL ON schema_migrations FROM {role};
         DO $$ BEGIN IF to_regclass('placement_targets') IS NOT NULL THEN
           EXECUTE 'REVOKE ALL ON placement_targets FROM {role}';
         END IF; END $$;"
    ))
    .await
    .map_err(map_err)?;
    Ok(report)
}
