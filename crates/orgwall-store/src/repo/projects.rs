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

const COLS: &str = "id, key, name, description, created_at";

fn from_row(r: &Row) -> Result<Project> {
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
    let org = tx.org_id();
    let created_by = tx.scope().user_id();
    let id = ProjectId::new();
    let t = now();
    tx.execute(
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
        .query_one(
            &format!("SELECT {COLS} FROM projects WHERE org_id = $1 AND id = $2"),
            params![org, id],
        )
        .await?;
    from_row(&r)
}

/// Lists projects after `after` (keyset), in id order.
pub async fn list(
    tx: &mut TenantTx<'_>,
    limit: Option<i64>,
    after: Option<ProjectId>,
) -> Result<Vec<Project>> {
    let limit = super::page_limit(limit)?;
    let org = tx.org_id();
    let rows = match after {
        None => {
            tx.query(
                &format!("SELECT {COLS} FROM projects WHERE org_id = $1 ORDER BY id LIMIT $2"),
                params![org, limit],
            )
            .await?
        }
        Some(a) => {
            tx.query(
                &format!("SELECT {COLS} FROM projects WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3"),
                params![org, a, limit],
            )
            .await?
        }
    };
    rows.iter().map(from_row).collect()
}
