//! Quotas per plan: members, projects, tickets and storage bytes.
//!
//! Plans are rows of the global `plans` table (`free`, `pro`, `enterprise` by default;
//! edit the rows to configure them). A create checks its quota inside its own write
//! transaction with what it counts against locked (the org's `org_usage` row for
//! workspace rows, its `orgs` row for members, on PostgreSQL; SQLite's single writer
//! already serializes), so two concurrent creates at the limit cannot both pass. The
//! workspace's use is counted by triggers as rows come and go (migration 0008), so a
//! check reads one row, whatever the org's size.

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

/// What counts against a plan, by plane: the workspace's use (data plane, where the org
/// is placed: one row of `org_usage`, kept by triggers as rows come and go; no row reads
/// as zeros) and its members (control plane).
const USED_DATA: &str = "SELECT projects, tickets, storage_bytes FROM org_usage WHERE org_id = $1";
/// The same row for a create on PostgreSQL, made if missing and locked until the
/// transaction ends: concurrent creates of one org take turns at it (the row the insert's
/// trigger then updates), so two at the limit cannot both pass.
const LOCK_DATA: &str = "INSERT INTO org_usage AS u (org_id) VALUES ($1)
    ON CONFLICT (org_id) DO UPDATE SET projects = u.projects
    RETURNING projects, tickets, storage_bytes";
const USED_MEMBERS: &str = "SELECT count(*) FROM memberships WHERE org_id = $1";
const LIMITS: &str =
    "SELECT o.plan, p.max_members, p.max_projects, p.max_tickets, p.max_storage_bytes,
        coalesce(o.rate_limit_per_minute, p.rate_limit_per_minute)
    FROM orgs o JOIN plans p ON p.name = o.plan WHERE o.id = $1";
/// For a new member on PostgreSQL: the org's row locked, so member creates take turns.
const LIMITS_LOCKED: &str =
    "SELECT o.plan, p.max_members, p.max_projects, p.max_tickets, p.max_storage_bytes,
        coalesce(o.rate_limit_per_minute, p.rate_limit_per_minute)
    FROM orgs o JOIN plans p ON p.name = o.plan WHERE o.id = $1 FOR UPDATE OF o";

/// The org's plan, limits, use and rate limit, read in one flight (both planes at once
/// for an org in a database of its own). `creating` locks what that create counts
/// against (PostgreSQL; SQLite's single writer already serializes).
async fn read(
    tx: &mut Tx,
    org: OrgId,
    creating: Option<Quota>,
) -> Result<(String, Counts, Counts, i64)> {
    let pg = tx.kind() == BackendKind::Postgres;
    let data_sql = match creating {
        Some(Quota::Members) | None => USED_DATA,
        Some(_) if pg => LOCK_DATA,
        Some(_) => USED_DATA,
    };
    let limits_sql = match creating {
        Some(Quota::Members) if pg => LIMITS_LOCKED,
        _ => LIMITS,
    };
    let p = params![org];
    let (data, control) = tx
        .query_planes(&[(data_sql, p)], &[(limits_sql, p), (USED_MEMBERS, p)])
        .await?;
    let mut firsts = control.into_iter().map(|rows| rows.into_iter().next());
    let l = firsts.next().flatten().ok_or(Error::NotFound)?;
    let m = firsts.next().flatten().ok_or(Error::NotFound)?;
    let used = match data
        .into_iter()
        .next()
        .and_then(|rows| rows.into_iter().next())
    {
        Some(d) => Counts {
            members: m.get(0)?,
            projects: d.get(0)?,
            tickets: d.get(1)?,
            storage_bytes: d.get(2)?,
        },
        None => Counts {
            members: m.get(0)?,
            projects: 0,
            tickets: 0,
            storage_bytes: 0,
        },
    };
    let limits = Counts {
        members: l.get(1)?,
        projects: l.get(2)?,
        tickets: l.get(3)?,
        storage_bytes: l.get(4)?,
    };
    Ok((l.get(0)?, limits, used, l.get(5)?))
}

/// Refuses with 403 `quota_exceeded` when `q` would exceed the org's plan. Call it in the
/// write transaction that creates, before the insert.
pub async fn check(tx: &mut TenantTx<'_>, q: Quota) -> Result<()> {
    let org = tx.org_id();
    check_in(tx.raw(), org, q).await
}

/// [`check`] inside a transaction already scoped to `org`.
async fn check_in(tx: &mut Tx, org: OrgId, q: Quota) -> Result<()> {
    let (plan, max, used, _) = read(tx, org, Some(q)).await?;
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

/// Takes the org's usage row lock before deleting rows it counts (PostgreSQL; SQLite's
/// single writer needs none). Creates take it in their quota check before inserting, so
/// every writer of counted rows takes it first: a ticket create holding it while it waits
/// for its project's key, and that project's delete holding the project while its
/// cascade's trigger waits for the row, would otherwise deadlock.
pub async fn lock_for_delete(tx: &mut TenantTx<'_>) -> Result<()> {
    if tx.kind() != BackendKind::Postgres {
        return Ok(());
    }
    let org = tx.org_id();
    tx.data()
        .execute(
            "SELECT 1 FROM org_usage WHERE org_id = $1 FOR UPDATE",
            params![org],
        )
        .await?;
    Ok(())
}

/// The org's limits and use.
pub async fn usage(tx: &mut TenantTx<'_>) -> Result<Usage> {
    let org = tx.org_id();
    let (plan, limits, used, rate) = read(tx.raw(), org, None).await?;
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
