//! PostgreSQL placements: an org's data plane in a schema of its own (see
//! [`crate::placement`]). Everything here runs as the login (the owner), under the
//! migration lock, each change in one transaction with its directory entry.

use super::map_err;
use super::walls::{apply, MIGRATION_LOCK};
use crate::migrate::quote_ident;
use crate::module::{Catalog, Plane};
use crate::placement::{is_schema_name, schema_name, Kind, Route};
use orgwall_core::{Error, OrgId, Result};

/// Every org placed in a schema of its own: (org, schema), by schema name.
pub(crate) async fn schemas(client: &tokio_postgres::Client) -> Result<Vec<(OrgId, String)>> {
    let rows = client
        .query(
            "SELECT org_id, location FROM placements WHERE kind = 'schema' ORDER BY location",
            &[],
        )
        .await
        .map_err(map_err)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let org: uuid::Uuid = r.get(0);
        let schema: String = r.get(1);
        if !is_schema_name(&schema) {
            return Err(Error::Internal(format!(
                "placement of org {org} names schema {schema:?}, which is not a placement schema name"
            )));
        }
        out.push((OrgId::from_uuid(org), schema));
    }
    Ok(out)
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
/// the org's rows to a login that is not a superuser).
async fn tables_with_rows(
    tx: &tokio_postgres::Transaction<'_>,
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

/// Places `org` (see [`crate::placement::set`]).
pub(crate) async fn place(
    client: &mut tokio_postgres::Client,
    app_role: &str,
    catalog: &Catalog,
    org: OrgId,
    kind: Kind,
) -> Result<Route> {
    let tx = client.transaction().await.map_err(map_err)?;
    tx.batch_execute(MIGRATION_LOCK).await.map_err(map_err)?;
    let row = tx
        .query_opt(
            "SELECT pl.kind, pl.location FROM orgs o LEFT JOIN placements pl ON pl.org_id = o.id
             WHERE o.id = $1 FOR UPDATE OF o",
            &[&org.uuid()],
        )
        .await
        .map_err(map_err)?
        .ok_or_else(|| Error::Validation(format!("no organization {org}")))?;
    let current = match row.get::<_, Option<String>>(0) {
        Some(k) => Route::from_parts(&k, row.get(1))?,
        None => Route::Shared,
    };
    let wanted = match kind {
        Kind::Shared => Route::Shared,
        Kind::Schema => Route::Schema(schema_name(org).into()),
    };
    if current == wanted {
        return Ok(current); // nothing to do; the transaction rolls back
    }
    let holding = match &current {
        Route::Shared => tables_with_rows(&tx, catalog, org, None).await?,
        Route::Schema(s) => tables_with_rows(&tx, catalog, org, Some(s)).await?,
    };
    if !holding.is_empty() {
        return Err(Error::Conflict(
            "placement_not_empty",
            format!(
                "organization {org} has data in its {} placement ({}); placing it elsewhere would move data, which placement set does not do: nothing changed",
                current.kind(),
                holding.join(", ")
            ),
        ));
    }
    match &wanted {
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
    if let Route::Schema(old) = &current {
        tx.batch_execute(&format!("DROP SCHEMA {old} CASCADE"))
            .await
            .map_err(map_err)?;
    }
    let location = match &wanted {
        Route::Shared => None,
        Route::Schema(s) => Some(s.to_string()),
    };
    let n = tx
        .execute(
            "UPDATE placements SET kind = $2, location = $3, target = NULL, updated_at = now() WHERE org_id = $1",
            &[&org.uuid(), &wanted.kind(), &location],
        )
        .await
        .map_err(map_err)?;
    if n == 0 {
        tx.execute(
            "INSERT INTO placements (org_id, kind, location, created_at, updated_at)
             VALUES ($1, $2, $3, now(), now())",
            &[&org.uuid(), &wanted.kind(), &location],
        )
        .await
        .map_err(map_err)?;
    }
    tx.commit().await.map_err(map_err)?;
    Ok(wanted)
}

/// The data-plane versions recorded in a placement schema, per module.
pub(crate) async fn versions(
    client: &tokio_postgres::Client,
    schema: &str,
) -> Result<Vec<(String, i64)>> {
    if !is_schema_name(schema) {
        return Err(Error::Internal(format!(
            "{schema:?} is not a placement schema name"
        )));
    }
    let rows = client
        .query(
            &format!(
                "SELECT module, max(version) FROM {schema}.schema_migrations GROUP BY module ORDER BY module"
            ),
            &[],
        )
        .await
        .map_err(map_err)?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
