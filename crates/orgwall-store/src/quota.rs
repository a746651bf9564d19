//! Quotas per plan: members, projects, tickets and storage bytes.
//!
//! Plans are rows of the global `plans` table (`free`, `pro`, `enterprise` by default;
//! edit the rows to configure them). A create checks its quota inside its own write
//! transaction after locking the org's row (`FOR UPDATE` on PostgreSQL; SQLite's single
//! writer already serializes), so two concurrent creates at the limit cannot both pass.

use crate::db::{BackendKind, Db, Mode, TenantTx, Tx};
use crate::params;
use orgwall_core::{Error, OrgId, Result};
use serde::Serialize;

/// What a create consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    /// One more member.
    Members,
    /// One more project.
    Projects,
    /// One more ticket.
    Tickets,
    /// This many more stored bytes.
    StorageBytes(i64),
}

/// Limits and use of one org.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// The plan's name.
    pub plan: String,
    /// The plan's limits.
    pub limits: Counts,
    /// Current use.
    pub used: Counts,
    /// Requests per minute allowed (override or plan).
    pub rate_limit_per_minute: i64,
}

/// One number per quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Members.
    pub members: i64,
    /// Projects.
    pub projects: i64,
    /// Tickets.
    pub tickets: i64,
    /// Stored bytes.
    pub storage_bytes: i64,
}

/// What counts against a plan, by plane: the workspace's rows (data plane, where the org
/// is placed) and its members (control plane).
const USED_DATA: &str = "SELECT
    (SELECT count(*) FROM projects WHERE org_id = $1),
    (SELECT count(*) FROM tickets WHERE org_id = $1),
    (SELECT CAST(coalesce(sum(size_bytes), 0) AS BIGINT) FROM files WHERE org_id = $1)";
const USED_MEMBERS: &str = "SELECT count(*) FROM memberships WHERE org_id = $1";

async fn limits(tx: &mut Tx, org: OrgId, lock: bool) -> Result<(String, Counts, i64)> {
    let lock = if lock && tx.kind() == BackendKind::Postgres {
        " FOR UPDATE OF o"
    } else {
        ""
    };
    let row = tx
        .query_one(
            &format!(
                "SELECT o.plan, p.max_members, p.max_projects, p.max_tickets, p.max_storage_bytes,
                        coalesce(o.rate_limit_per_minute, p.rate_limit_per_minute)
                 FROM orgs o JOIN plans p ON p.name = o.plan WHERE o.id = $1{lock}"
            ),
            params![org],
        )
        .await?;
    Ok((
        row.get(0)?,
        Counts {
            members: row.get(1)?,
            projects: row.get(2)?,
            tickets: row.get(3)?,
            storage_bytes: row.get(4)?,
        },
        row.get(5)?,
    ))
}

async fn used(tx: &mut Tx, org: OrgId) -> Result<Counts> {
    let p = params![org];
    let (data, control) = tx
        .query_planes(&[(USED_DATA, p)], &[(USED_MEMBERS, p)])
        .await?;
    let d = data
        .into_iter()
        .next()
        .and_then(|rows| rows.into_iter().next())
        .ok_or(orgwall_core::Error::NotFound)?;
    let m = control
        .into_iter()
        .next()
        .and_then(|rows| rows.into_iter().next())
        .ok_or(orgwall_core::Error::NotFound)?;
    Ok(Counts {
        members: m.get(0)?,
        projects: d.get(0)?,
        tickets: d.get(1)?,
        storage_bytes: d.get(2)?,
    })
}

/// Refuses with 403 `quota_exceeded` when `q` would exceed the org's plan. Call it in the
/// write transaction that creates, before the insert.
pub async fn check(tx: &mut TenantTx<'_>, q: Quota) -> Result<()> {
    let org = tx.org_id();
    check_in(tx.raw(), org, q).await
}

/// [`check`] inside a transaction already scoped to `org`.
async fn check_in(tx: &mut Tx, org: OrgId, q: Quota) -> Result<()> {
    let (plan, max, _) = limits(tx, org, true).await?;
    let used = used(tx, org).await?;
    let (name, have, add, limit) = match q {
        Quota::Members => ("members", used.members, 1, max.members),
        Quota::Projects => ("projects", used.projects, 1, max.projects),
        Quota::Tickets => ("tickets", used.tickets, 1, max.tickets),
        Quota::StorageBytes(n) => ("storage bytes", used.storage_bytes, n, max.storage_bytes),
    };
    if have.saturating_add(add) > limit {
        return Err(orgwall_tenancy::access::quota_exceeded(
            &plan, limit, name, have,
        ));
    }
    Ok(())
}

/// The org's limits and use.
pub async fn usage(tx: &mut TenantTx<'_>) -> Result<Usage> {
    let org = tx.org_id();
    let (plan, limits, rate) = limits(tx.raw(), org, false).await?;
    let used = used(tx.raw(), org).await?;
    Ok(Usage {
        plan,
        limits,
        used,
        rate_limit_per_minute: rate,
    })
}

/// Sets an org's plan (operator command). Unknown plans are refused. Then the org follows
/// the placement rules of its new plan if it holds no data yet (see
/// [`crate::placement::follow_rules`]): what that did is returned.
pub async fn set_plan(db: &Db, org: OrgId, plan: &str) -> Result<crate::placement::Followed> {
    let mut tx = db.global(Mode::Write).await?;
    if tx
        .query_opt("SELECT name FROM plans WHERE name = $1", params![plan])
        .await?
        .is_none()
    {
        return Err(Error::Validation(format!("unknown plan {plan:?}")));
    }
    tx.access_changed();
    let n = tx
        .execute(
            "UPDATE orgs SET plan = $2 WHERE id = $1",
            params![org, plan],
        )
        .await?;
    tx.commit().await?;
    if n == 0 {
        return Err(Error::NotFound);
    }
    crate::placement::follow_rules(db, org).await
}

/// Sets (or clears) an org's own rate limit, overriding its plan's.
pub async fn set_rate_limit(db: &Db, org: OrgId, per_minute: Option<u32>) -> Result<()> {
    let mut tx = db.global(Mode::Write).await?;
    tx.access_changed();
    let n = tx
        .execute(
            "UPDATE orgs SET rate_limit_per_minute = $2 WHERE id = $1",
            params![org, per_minute.map(i64::from)],
        )
        .await?;
    tx.commit().await?;
    if n == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}
