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
/// answer is no existence oracle. Served from the access cache when warm (a slug change
/// or a deletion is announced by the org's own transaction).
pub async fn resolve(db: &Db, claim: &str) -> Result<OrgId> {
    let claim = claim.trim();
    let load = async {
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
        row.map(|r| r.get(0).map(|id| (crate::access::cache::Dep::Org(id), id)))
            .transpose()
    };
    db.cache()
        .get_or_load(claim.to_owned(), load)
        .await?
        .ok_or(Error::NotAMember)
}

/// The org a claim (id or slug) names, if the access cache knows it (reads nothing).
pub fn cached(db: &Db, claim: &str) -> Option<OrgId> {
    db.cache().get::<OrgId>(&claim.trim().to_owned())
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

/// Renames an org or changes its slug (the org is the transaction's own), with an audit
/// event in the same transaction.
pub async fn update(
    tx: &mut crate::TenantTx<'_>,
    name: Option<&str>,
    slug: Option<&orgwall_core::Slug>,
) -> Result<Org> {
    let org = tx.org_id();
    let name = name.map(|n| super::text("name", n, 100)).transpose()?;
    let t = crate::value::now();
    tx.access_changed();
    tx.execute(
        "UPDATE orgs SET name = coalesce($2, name), slug = coalesce($3, slug), updated_at = $4 WHERE id = $1",
        params![org, name.as_deref(), slug.map(|s| s.as_str()), t],
    )
    .await
    .map_err(|e| match e {
        Error::Conflict(..) => Error::Conflict("slug_taken", "that slug is taken".into()),
        other => other,
    })?;
    super::audit::record(
        tx,
        super::audit::AuditEntry::new("org.updated")
            .target("org", org.uuid())
            .detail(serde_json::json!({ "name": name, "slug": slug.map(|s| s.as_str()) })),
    )
    .await?;
    let row = tx
        .query_one(
            "SELECT id, slug, name, plan, created_at FROM orgs WHERE id = $1",
            params![org],
        )
        .await?;
    from_row(&row)
}

/// Marks the org as being deleted (every session stops seeing it at once: resolution
/// skips it) and queues the purge job, with an audit event, in one transaction.
pub async fn schedule_deletion(tx: &mut crate::TenantTx<'_>) -> Result<()> {
    let org = tx.org_id();
    let t = crate::value::now();
    tx.access_changed();
    tx.execute(
        "UPDATE orgs SET deleting_at = $2, updated_at = $2 WHERE id = $1 AND deleting_at IS NULL",
        params![org, t],
    )
    .await?;
    super::audit::record(
        tx,
        super::audit::AuditEntry::new("org.deletion_requested").target("org", org.uuid()),
    )
    .await?;
    // A system job (no org_id: the row must outlive the org it purges).
    tx.execute(
        "INSERT INTO jobs (id, org_id, kind, payload, status, attempts, max_attempts, run_at, created_at, updated_at)
         VALUES ($1, NULL, 'org.purge', $2, 'queued', 0, 10, $3, $3, $3)",
        params![uuid::Uuid::now_v7(), serde_json::json!({ "org_id": org }), t],
    )
    .await?;
    Ok(())
}
