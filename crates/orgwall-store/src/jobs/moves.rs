//! The `placement.move` job (system): runs an org's online move (see
//! [`crate::placement::run_move`]) so that it survives the process that started it.
//!
//! `orgwall placement move ORG --to KIND` records the move and queues this job; with
//! `--wait` the command also runs the move itself at once, and the job then finds it
//! done. A worker that picks the job up while another process runs the move (the move's
//! own lock) tries again later; a move that is gone (done or aborted) ends the job. The
//! move's phases are durable in `placement_moves`, so a worker killed mid-move leaves a
//! job whose next attempt resumes it.

use super::worker::{JobCtx, JobError, JobInfo};
use crate::db::{Db, Mode};
use crate::placement::{self, Kind, Move};
use orgwall_core::{Error, OrgId, Result};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    org_id: OrgId,
    /// The copy's pace (see [`placement::MoveOptions`]); absent: as fast as it goes.
    #[serde(default)]
    copy_bytes_per_sec: Option<u64>,
}

/// Attempts a move job gets (a failed attempt is retried with backoff; the move keeps its
/// phase and error for `orgwall placement list`).
const ATTEMPTS: i64 = 20;

pub(crate) async fn run(ctx: JobCtx, job: JobInfo) -> Result<(), JobError> {
    let p: Payload = job.parse()?;
    let opts = placement::MoveOptions {
        copy_bytes_per_sec: p.copy_bytes_per_sec,
        ..Default::default()
    };
    match placement::run_move_with(&ctx.db, p.org_id, opts, &|_| {}).await {
        Ok(route) => {
            tracing::info!(org_id = %p.org_id, placement = route.kind(), "move job: the org is where its move put it");
            Ok(())
        }
        Err(Error::Conflict("move_aborted", _)) => Ok(()),
        Err(Error::Conflict("move_running", m)) => Err(JobError::Retry(m)),
        Err(e) => Err(JobError::Retry(e.to_string())),
    }
}

/// Queues the job that runs (or resumes) `org`'s move.
pub async fn enqueue(
    db: &Db,
    org: OrgId,
    opts: placement::MoveOptions,
) -> Result<orgwall_core::JobId> {
    let mut tx = db.system(super::SYSTEM_TABLE, Mode::Write).await?;
    let id = super::enqueue_system(
        &mut tx,
        super::PLACEMENT_MOVE,
        serde_json::json!({ "org_id": org, "copy_bytes_per_sec": opts.copy_bytes_per_sec }),
        super::Options {
            max_attempts: ATTEMPTS,
            ..super::Options::default()
        },
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Starts moving `org` to `kind` (see [`placement::start_move`]) and queues its job; or,
/// with `kind` `None`, queues the job of the move it has (to resume it).
pub async fn start(
    db: &Db,
    org: OrgId,
    kind: Option<Kind>,
    opts: placement::MoveOptions,
) -> Result<Move> {
    let mv = match kind {
        Some(k) => placement::start_move(db, org, k).await?,
        None => placement::moves(db)
            .await?
            .into_iter()
            .find(|m| m.org == org)
            .ok_or_else(|| {
                Error::Validation(format!(
                    "organization {org} is not moving (give --to KIND to move it)"
                ))
            })?,
    };
    enqueue(db, org, opts).await?;
    Ok(mv)
}
