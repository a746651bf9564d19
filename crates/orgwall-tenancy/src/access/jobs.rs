//! Scopes for background jobs (a child of the access module, because it constructs
//! [`OrgScope`]s), and the org purge's named system path.
//!
//! - [`enter`]: a tenant job re-enters its org before it does anything. The scope's
//!   principal is [`Principal::Job`] (the job's kind and id), so whatever the job writes
//!   to the audit log names the job. Entering is audited (`system.scope_entered` in the
//!   org, committed before the scope is returned) for the kinds registered as audited
//!   (exports, and every system job that enters an org); ordinary tenant jobs are not
//!   audited on entry, since one event per job would flood the log: the job row (kind,
//!   org, payload, attempts, errors) is their record, and the job id travels in the scope.
//! - [`enter_for_purge`] and [`purge_rows`]: the `org.purge` job enters the org by name
//!   (audited in that org before it disappears, and logged), then deletes the org row,
//!   which cascades to every tenant row of that org, inside that org's own scope (see
//!   [`crate::db::Tx::purge_org_row`]).

use super::{OrgScope, Principal};
use crate::db::{Db, Mode, Settings};
use crate::identity::audit::{self, AuditEntry};
use crate::params;
use chrono::{DateTime, Utc};
use orgwall_core::{Error, JobId, OrgId, PermissionSet, Result};

/// The kind of the org purge job (a declared system kind).
pub const PURGE_KIND: &str = "org.purge";

fn job_scope(kind: &'static str, job: JobId, org: OrgId) -> OrgScope {
    OrgScope::new(
        org,
        Principal::Job { kind, id: job },
        PermissionSet::all(),
        None,
    )
}

/// Enters `org` for tenant job `job` of `kind`. Refuses an org that is gone or being
/// deleted (its jobs must not run any more). With `audited`, writes
/// `system.scope_entered` into the org's audit log first.
pub async fn enter(
    db: &Db,
    kind: &'static str,
    job: JobId,
    org: OrgId,
    audited: bool,
) -> Result<OrgScope> {
    if kind == PURGE_KIND {
        return Err(Error::ScopeViolation);
    }
    let scope = job_scope(kind, job, org);
    let mode = if audited { Mode::Write } else { Mode::Read };
    let mut tx = db.begin(mode, Settings::org(org)).await?;
    let live = tx
        .query_opt(
            "SELECT 1 FROM orgs WHERE id = $1 AND deleting_at IS NULL",
            params![org],
        )
        .await?;
    if live.is_none() {
        return Err(Error::Refused(
            "org_gone",
            format!("organization {org} does not exist or is being deleted"),
        ));
    }
    if audited {
        audit::insert(
            &mut tx,
            &scope,
            AuditEntry::new("system.scope_entered")
                .target("job", job.uuid())
                .detail(serde_json::json!({
                    "system": format!("job:{kind}"),
                    "job_id": job,
                    "reason": "background job",
                })),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(scope)
}

/// Enters `org` to purge it, for purge job `job`. `None` if the org row is already gone
/// (a purge that ran before: nothing left to enter). Refuses an org that is not marked
/// for deletion. Writes `system.scope_entered` into the org's audit log (the last event
/// it gets) and logs the entry.
pub async fn enter_for_purge(db: &Db, job: JobId, org: OrgId) -> Result<Option<OrgScope>> {
    let mut tx = db.begin(Mode::Write, Settings::org(org)).await?;
    let row = tx
        .query_opt("SELECT deleting_at FROM orgs WHERE id = $1", params![org])
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let deleting: Option<DateTime<Utc>> = row.get(0)?;
    if deleting.is_none() {
        return Err(Error::Refused(
            "org_not_deleting",
            format!("organization {org} is not marked for deletion: refusing to purge it"),
        ));
    }
    let scope = job_scope(PURGE_KIND, job, org);
    audit::insert(
        &mut tx,
        &scope,
        AuditEntry::new("system.scope_entered")
            .target("org", org.uuid())
            .detail(serde_json::json!({
                "system": format!("job:{PURGE_KIND}"),
                "job_id": job,
                "reason": "org purge: every row and file of the organization is deleted",
            })),
    )
    .await?;
    tx.commit().await?;
    tracing::warn!(org_id = %org, job_id = %job, "entered organization to purge it");
    Ok(Some(scope))
}

/// Deletes the org row of a purge scope, and with it every tenant row of that org, in
/// one transaction inside the org's own scope. Only a scope made by [`enter_for_purge`]
/// may do this. Returns the number of rows deleted (0 if the org was already gone).
pub async fn purge_rows(db: &Db, scope: &OrgScope) -> Result<u64> {
    if !matches!(scope.principal(), Principal::Job { kind, .. } if *kind == PURGE_KIND) {
        return Err(Error::ScopeViolation);
    }
    // A move of the org is taken back first: its copy, slot and publication go with it,
    // and the purge then deletes where the directory names, nothing left elsewhere. (A
    // move cannot start once the org is marked; one running is asked to abort and the
    // purge is retried; one past its flip finishes its cleanup first.)
    let org = scope.org_id();
    if db.moves().await?.iter().any(|m| m.org == org) {
        match db.abort_move(org, crate::placement::MoveOptions::default()).await {
            Ok(true) => {}
            Ok(false) => {
                return Err(Error::Unavailable(format!(
                    "organization {org} is moving: its mover was asked to abort; the purge runs again after"
                )))
            }
            Err(Error::Conflict("move_flipped", m)) => {
                return Err(Error::Unavailable(format!(
                    "{m}; the purge runs again after it"
                )))
            }
            Err(e) => return Err(e),
        }
    }
    // An org in a schema or database of its own loses it first (the clean deletion that
    // is the point of the model; DROP DATABASE runs outside any transaction, and a
    // schema's drop holds nothing else while it waits for its locks, see
    // `postgres::placement::drop_schema`), then its org row in a control transaction: a
    // failure in between leaves the org marked for deletion, and the purge job's retry
    // drops nothing more (IF EXISTS) and goes on. The route is read afresh (a move may
    // have flipped it since the scope was made).
    let route = db.lookup_route(org).await?;
    scope.set_route(route.clone());
    let n = match &route {
        crate::placement::Route::Shared => {
            let mut tx = db.write(scope).await?;
            let n = tx.raw().purge_org_row(org).await?;
            tx.commit().await?;
            n
        }
        placed => {
            match placed {
                crate::placement::Route::Database { target, .. } => {
                    db.drop_placement_database(org, target.as_deref()).await?;
                }
                _ => db.drop_placement_schema(org).await?,
            }
            let mut tx = db.begin(Mode::Write, Settings::org(org)).await?;
            let n = tx.purge_org_row(org).await?;
            tx.commit().await?;
            n
        }
    };
    Ok(n)
}
