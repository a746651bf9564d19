//! Organizations (global table; its own id is its tenant key).

use crate::db::{Db, Mode};
use crate::params;
use crate::value::Row;
use chrono::{DateTime, Utc};
use orgwall_core::{Error, OrgId, Result};

/// An organization.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Org {
    /// Its id.
    pub id: OrgId,
    /// Its slug.
    pub slug: String,
    /// Its name.
    pub name: String,
    /// Its plan.
    pub plan: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

fn from_row(r: &Row) -> Result<Org> {
    Ok(Org {
        id: r.get(0)?,
        slug: r.get(1)?,
        name: r.get(2)?,
        plan: r.get(3)?,
        created_at: r.get(4)?,
    })
}

/// Resolves an org claim (id or slug) to an id. An unknown org answers
/// [`Error::NotAMember`], exactly like an org the caller does not belong to, so the
/// answer is no existence oracle.
pub async fn resolve(db: &Db, claim: &str) -> Result<OrgId> {
    let claim = claim.trim();
    let mut tx = db.global(Mode::Read).await?;
    let row = match claim.parse::<OrgId>() {
        Ok(id) => {
            tx.query_opt(
                "SELECT id FROM orgs WHERE id = $1 AND deleting_at IS NULL",
                params![id],
            )
            .await?
        }
        Err(_) => {
            tx.query_opt(
                "SELECT id FROM orgs WHERE slug = $1 AND deleting_at IS NULL",
                params![claim],
            )
            .await?
        }
    };
    tx.commit().await?;
    row.ok_or(Error::NotAMember)?.get(0)
}

/// Gets an organization by id.
pub async fn get(db: &Db, id: OrgId) -> Result<Org> {
    let mut tx = db.global(Mode::Read).await?;
    let row = tx
        .query_one(
            "SELECT id, slug, name, plan, created_at FROM orgs WHERE id = $1 AND deleting_at IS NULL",
            params![id],
        )
        .await?;
    tx.commit().await?;
    from_row(&row)
}
