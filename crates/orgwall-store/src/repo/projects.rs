//! Projects (tenant table).

use crate::db::TenantTx;
use crate::params;
use crate::value::{now, Row};
use chrono::{DateTime, Utc};
use orgwall_core::{Error, ProjectId, Result};

/// A project.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Project {
    /// Its id.
    pub id: ProjectId,
    /// Its key, unique in the org (e.g. `WEB`).
    pub key: String,
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

pub(crate) const COLS: &str = "id, key, name, description, created_at";

pub(crate) fn from_row(r: &Row) -> Result<Project> {
    Ok(Project {
        id: r.get(0)?,
        key: r.get(1)?,
        name: r.get(2)?,
        description: r.get(3)?,
        created_at: r.get(4)?,
    })
}

/// Checks a project key: 2-10 of `A-Z0-9`, starting with a letter.
pub fn parse_key(key: &str) -> Result<String> {
    let ok = (2..=10).contains(&key.len())
        && key.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
        && key
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if ok {
        Ok(key.to_owned())
    } else {
        Err(Error::Validation(
            "key must be 2-10 characters of A-Z and 0-9, starting with a letter".into(),
        ))
    }
}

/// Creates a project.
pub async fn create(
    tx: &mut TenantTx<'_>,
    key: &str,
    name: &str,
    description: &str,
) -> Result<Project> {
    let key = parse_key(key)?;
    let name = super::text("name", name, 200)?;
    let description = super::long_text("description", description, 10_000)?;
    crate::quota::check(tx, crate::quota::Quota::Projects).await?;
    let org = tx.org_id();
    let created_by = tx.scope().user_id();
    let id = ProjectId::new();
    let t = now();
    tx.data().execute(
        "INSERT INTO projects (org_id, id, key, name, description, created_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        params![org, id, &key, &name, &description, created_by, t],
    )
    .await
    .map_err(|e| match e {
        Error::Conflict(..) => Error::Conflict("conflict", format!("project key {key} is taken")),
        other => other,
    })?;
    Ok(Project {
        id,
        key,
        name,
        description,
        created_at: t,
    })
}

/// Gets a project of this org.
pub async fn get(tx: &mut TenantTx<'_>, id: ProjectId) -> Result<Project> {
    let org = tx.org_id();
    let r = tx
        .data()
        .query_one(
            &format!("SELECT {COLS} FROM projects WHERE org_id = $1 AND id = $2"),
            params![org, id],
        )
        .await?;
    from_row(&r)
}

/// Lists up to `limit` projects after `after` (keyset, id order).
pub async fn list(
    tx: &mut TenantTx<'_>,
    limit: i64,
    after: Option<uuid::Uuid>,
) -> Result<Vec<Project>> {
    let org = tx.org_id();
    // A key-ordered page: one plan whatever the values (`Data::query_generic`).
    let rows = tx
        .data()
        .query_generic(
            &format!(
                "SELECT {COLS} FROM projects WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3"
            ),
            params![org, after.unwrap_or(uuid::Uuid::nil()), limit],
        )
        .await?;
    rows.iter().map(from_row).collect()
}

/// Changes a project's key, name or description.
pub async fn update(
    tx: &mut TenantTx<'_>,
    id: ProjectId,
    key: Option<&str>,
    name: Option<&str>,
    description: Option<&str>,
) -> Result<Project> {
    let key = key.map(parse_key).transpose()?;
    let name = name.map(|n| super::text("name", n, 200)).transpose()?;
    let description = description
        .map(|d| super::long_text("description", d, 10_000))
        .transpose()?;
    let org = tx.org_id();
    let n = tx
        .data()
        .execute(
            "UPDATE projects SET key = coalesce($3, key), name = coalesce($4, name),
                 description = coalesce($5, description), updated_at = $6
             WHERE org_id = $1 AND id = $2",
            params![
                org,
                id,
                key.as_deref(),
                name.as_deref(),
                description.as_deref(),
                now()
            ],
        )
        .await
        .map_err(|e| match e {
            Error::Conflict(..) => Error::Conflict("conflict", "that project key is taken".into()),
            other => other,
        })?;
    if n == 0 {
        return Err(Error::NotFound);
    }
    get(tx, id).await
}

/// Deletes a project and (by cascade) its tickets.
pub async fn delete(tx: &mut TenantTx<'_>, id: ProjectId) -> Result<()> {
    let org = tx.org_id();
    // The usage row first, as creates take it (see `quota::lock_for_delete`).
    crate::quota::lock_for_delete(tx).await?;
    let n = tx
        .data()
        .execute(
            "DELETE FROM projects WHERE org_id = $1 AND id = $2",
            params![org, id],
        )
        .await?;
    if n == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}
