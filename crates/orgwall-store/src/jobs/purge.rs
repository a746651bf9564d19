//! The `org.purge` job (system): deletes every row and every stored byte of one org.
//!
//! Queued by `DELETE /v1/orgs/{org}` ([`crate::repo::orgs::schedule_deletion`]), which
//! also marks the org `deleting_at` so no request reaches it any more. The job:
//! 1. enters the org by name (`access::jobs::enter_for_purge`): audited in the org (the
//!    last event it gets) and logged; an org that is not marked for deletion is refused
//!    (the job goes dead), an org already gone means a previous run finished;
//! 2. deletes the org's file blobs (under its prefix in the blob store) and its export
//!    archives (`<exports>/<org_id>/`), before the rows that name them, so a failure here
//!    leaves the rows to retry with;
//! 3. deletes the org row inside the org's own scope, which cascades to every tenant row
//!    of the org and to nothing else (`access::jobs::purge_rows`; on SQLite through the
//!    authorizer's purge phase, with the guard triggers checking every row);
//! 4. drops the org's (now empty) fairness queue.
//!
//! Running it twice is fine: the second run finds the org gone and only re-removes the
//! (already absent) blobs and archives.

use super::worker::{JobCtx, JobError, JobInfo};
use crate::access;
use orgwall_core::OrgId;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    org_id: OrgId,
}

fn io_retry(what: &str) -> impl Fn(std::io::Error) -> JobError + '_ {
    move |e| JobError::Retry(format!("{what}: {e}"))
}

pub(crate) async fn run(ctx: JobCtx, job: JobInfo) -> Result<(), JobError> {
    let p: Payload = job.parse()?;
    let org = p.org_id;
    let scope = access::jobs::enter_for_purge(&ctx.db, job.id, org).await?;
    ctx.files
        .purge_org(org)
        .await
        .map_err(|e| JobError::Retry(format!("deleting the org's files: {e}")))?;
    ctx.exports
        .purge_org(org)
        .await
        .map_err(io_retry("deleting the org's export archives"))?;
    let rows = match &scope {
        Some(scope) => access::jobs::purge_rows(&ctx.db, scope).await?,
        None => 0,
    };
    super::forget_queue(&ctx.db, org).await?;
    if scope.is_some() {
        tracing::warn!(org_id = %org, rows, "organization purged: every row and file deleted");
    } else {
        tracing::info!(org_id = %org, "organization already purged");
    }
    Ok(())
}
