//! Background jobs: a durable queue in the same database, fair across orgs.
//!
//! ## The queue
//! Jobs live in the system table `jobs`. A **tenant job** names its org (`org_id`), which
//! is taken from the [`TenantTx`] that enqueues it, never from input; a **system job** has
//! no org and its kind must be one of [`SYSTEM_KINDS`]. Whatever a row says, the worker
//! fails closed: a job without an org whose kind is not a registered system kind, or a
//! system kind that names an org, goes `dead` with the reason in `last_error`.
//!
//! Delivery is at least once: a claim leases the job (`locked_until`), the worker extends
//! the lease while the handler runs, and a job whose lease expires (its worker died) is
//! put back by [`reap`] and claimed again. Handlers are therefore idempotent. Every
//! state change after a claim is fenced by the attempt number, so a worker that lost its
//! lease cannot finish a job somebody else now runs. A failed attempt is retried with
//! exponential backoff and jitter ([`backoff`]) until `max_attempts`, then the job is
//! `dead`, with the last error visible (`orgwall jobs list`). Malformed payloads and unknown
//! kinds go `dead` at once.
//!
//! ## Fairness
//! Each job belongs to a queue: its org, or the nil UUID for system jobs (the generated
//! column `jobs.queue`). `job_queues` holds, per queue, how many jobs are pending (queued
//! or running, kept by triggers on `jobs`) and when the queue was last served. A claim
//! walks the queues that have pending jobs in least-recently-served order, probes each
//! (one index lookup) for a ready job, takes the first one found and marks that queue
//! served: round robin over orgs. So an org with 100,000 queued jobs delays another org's
//! next job by at most one claim per worker slot. The claim is one statement on
//! PostgreSQL (`FOR UPDATE SKIP LOCKED`, so concurrent workers never wait for each other's
//! jobs), and an `UPDATE ... RETURNING` plus the served mark under `BEGIN IMMEDIATE` on
//! SQLite (one writer at a time, so no row locks are needed).
//!
//! ## Running
//! [`Worker`] runs the jobs (inside `orgwall serve`, or alone with `orgwall worker`):
//! see [`worker`] for slots, leases and graceful shutdown, and for how a tenant job enters
//! its org. Built-in kinds: `org.purge` ([`purge`]), `outbox.deliver` ([`mail`]),
//! `placement.move` ([`moves`]),
//! `export.build` and `export.expire` ([`export`]).

pub mod export;
pub mod mail;
pub mod moves;
pub mod purge;
pub mod worker;

pub use worker::{JobCtx, JobError, JobInfo, Outcome, Registry, Worker, WorkerConfig};

use crate::db::{Db, Mode, TenantTx, Tx};
use crate::params;
use crate::value::{now, Row, Val};
use crate::BackendKind;
use chrono::{DateTime, Utc};
use orgwall_core::{Error, JobId, OrgId, Result};
use std::time::Duration;

/// The org purge (system): `{"org_id": ...}`.
pub const ORG_PURGE: &str = "org.purge";
/// Delivers one outbox message (system): `{"message_id": ...}`.
pub const OUTBOX_DELIVER: &str = "outbox.deliver";
/// Builds an org's export archive (tenant): `{"export_id": ...}`.
pub const EXPORT_BUILD: &str = "export.build";
/// Deletes an org's expired export archives (tenant), queued to run when
/// `{"export_id": ...}` expires.
pub const EXPORT_EXPIRE: &str = "export.expire";

/// Runs (or resumes) an org's online move between placements (system):
/// `{"org_id": ...}`.
pub const PLACEMENT_MOVE: &str = "placement.move";

/// The kinds that may run without an org. Nothing else may: a job without an org and
/// with any other kind is refused at enqueue and fails closed in the worker.
pub const SYSTEM_KINDS: &[&str] = &[ORG_PURGE, OUTBOX_DELIVER, PLACEMENT_MOVE];

/// The job queue's system table, and the name of the system transaction that reaches
/// every org's jobs ([`Db::system`]): a tenant transaction sees only its own org's.
pub const SYSTEM_TABLE: &str = "jobs";

/// A system transaction over the job queue.
async fn system(db: &Db, mode: Mode) -> Result<crate::Tx> {
    db.system(SYSTEM_TABLE, mode).await
}

/// Attempts a job gets unless its enqueuer says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: i64 = 5;

/// The queue of system jobs (they name no org).
pub const SYSTEM_QUEUE: uuid::Uuid = uuid::Uuid::nil();

/// A job as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// Its org (tenant jobs), or none (system jobs).
    pub org_id: Option<OrgId>,
    /// What it does.
    pub kind: String,
    /// Its input.
    pub payload: serde_json::Value,
    /// `queued`, `running`, `done`, `dead` or `cancelled`.
    pub status: String,
    /// Attempts started so far.
    pub attempts: i64,
    /// Attempts it gets before it is `dead`.
    pub max_attempts: i64,
    /// Not before this time.
    pub run_at: DateTime<Utc>,
    /// While running: the end of its lease.
    pub locked_until: Option<DateTime<Utc>>,
    /// The last failure.
    pub last_error: Option<String>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

const JOB_COLS: &str = "id, org_id, kind, payload, status, attempts, max_attempts, run_at, \
                        locked_until, last_error, created_at, updated_at";

fn job_from(r: &Row) -> Result<Job> {
    Ok(Job {
        id: r.get(0)?,
        org_id: r.get(1)?,
        kind: r.get(2)?,
        payload: r.get(3)?,
        status: r.get(4)?,
        attempts: r.get(5)?,
        max_attempts: r.get(6)?,
        run_at: r.get(7)?,
        locked_until: r.get(8)?,
        last_error: r.get(9)?,
        created_at: r.get(10)?,
        updated_at: r.get(11)?,
    })
}

/// A claimed job: the worker holds its lease for this attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// The job.
    pub id: JobId,
    /// Its org, if a tenant job.
    pub org_id: Option<OrgId>,
    /// Its kind.
    pub kind: String,
    /// Its payload.
    pub payload: serde_json::Value,
    /// This attempt's number (from 1); it fences every later state change.
    pub attempt: i64,
    /// Attempts it gets.
    pub max_attempts: i64,
}

/// When and how often a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Not before this time (default: now).
    pub run_at: Option<DateTime<Utc>>,
    /// Attempts before it is `dead` (default [`DEFAULT_MAX_ATTEMPTS`], at least 1).
    pub max_attempts: i64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            run_at: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }
}

fn check_kind(kind: &str) -> Result<()> {
    let ok = !kind.is_empty()
        && kind.len() <= 100
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-:".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::Validation(format!("invalid job kind {kind:?}")))
    }
}

async fn insert(
    tx: &mut Tx,
    org: Option<OrgId>,
    kind: &str,
    payload: serde_json::Value,
    opts: Options,
) -> Result<JobId> {
    check_kind(kind)?;
    let id = JobId::new();
    let t = now();
    tx.execute(
        "INSERT INTO jobs (id, org_id, kind, payload, status, attempts, max_attempts, run_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'queued', 0, $5, $6, $7, $7)",
        params![id, org, kind, payload, opts.max_attempts.max(1), opts.run_at.unwrap_or(t), t],
    )
    .await?;
    Ok(id)
}

/// Enqueues a tenant job in the transaction's org (committed with the transaction).
pub async fn enqueue(
    tx: &mut TenantTx<'_>,
    kind: &str,
    payload: serde_json::Value,
) -> Result<JobId> {
    enqueue_with(tx, kind, payload, Options::default()).await
}

/// [`enqueue`] with [`Options`].
pub async fn enqueue_with(
    tx: &mut TenantTx<'_>,
    kind: &str,
    payload: serde_json::Value,
    opts: Options,
) -> Result<JobId> {
    if SYSTEM_KINDS.contains(&kind) {
        return Err(Error::Validation(format!(
            "{kind} is a system job kind: it cannot run as a tenant job"
        )));
    }
    let org = tx.org_id();
    insert(tx.raw(), Some(org), kind, payload, opts).await
}

/// Enqueues a system job (no org); `kind` must be one of [`SYSTEM_KINDS`].
pub async fn enqueue_system(
    tx: &mut Tx,
    kind: &'static str,
    payload: serde_json::Value,
    opts: Options,
) -> Result<JobId> {
    if !SYSTEM_KINDS.contains(&kind) {
        return Err(Error::Validation(format!(
            "{kind} is not a declared system job kind: a job without an org must be one of {SYSTEM_KINDS:?}"
        )));
    }
    insert(tx, None, kind, payload, opts).await
}

/// The claim on PostgreSQL: one statement. The lateral probe reads a few ready jobs of
/// each queue in turn order (the turn index is walked in order and the walk stops at the
/// first lockable job: incremental sort under `LIMIT 1`); `FOR UPDATE ... SKIP LOCKED`
/// locks exactly the one row returned and skips jobs other workers are claiming. The
/// `status` test on the outer `jobs` is rechecked after the lock, so a job claimed and
/// committed meanwhile is skipped too.
const CLAIM_PG: &str = "
WITH pick AS (
    SELECT j.id, q.queue FROM job_queues q
    CROSS JOIN LATERAL (
        SELECT c.id FROM jobs c
        WHERE c.queue = q.queue AND c.status = 'queued' AND c.run_at <= $1
        ORDER BY c.run_at, c.id LIMIT 8) c
    JOIN jobs j ON j.id = c.id
    WHERE q.pending > 0 AND j.status = 'queued' AND j.run_at <= $1
    ORDER BY q.last_served_at, q.queue, j.run_at, j.id
    LIMIT 1
    FOR UPDATE OF j SKIP LOCKED
), claimed AS (
    UPDATE jobs SET status = 'running', attempts = jobs.attempts + 1, locked_until = $2,
                    updated_at = $1
    FROM pick WHERE jobs.id = pick.id
    RETURNING jobs.id, jobs.org_id, jobs.kind, jobs.payload, jobs.attempts, jobs.max_attempts
), served AS (
    UPDATE job_queues SET last_served_at = $1 FROM pick WHERE job_queues.queue = pick.queue
)
SELECT id, org_id, kind, payload, attempts, max_attempts FROM claimed";

/// The claim's pick on SQLite (one writer at a time: no locks to skip). The claim itself
/// is an UPDATE and a read of the row (`jobs` is a view there, and RETURNING through a
/// view's INSTEAD OF trigger does not return the row's unchanged columns).
const PICK_SQLITE: &str = "
SELECT next, queue FROM (
    SELECT q.last_served_at, q.queue,
           (SELECT c.id FROM jobs c
            WHERE c.queue = q.queue AND c.status = 'queued' AND c.run_at <= $1
            ORDER BY c.run_at, c.id LIMIT 1) AS next
    FROM job_queues q WHERE q.pending > 0
    ORDER BY q.last_served_at, q.queue)
WHERE next IS NOT NULL LIMIT 1";

fn lease_end(t: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    t + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX)
}

/// Claims the next job, fairly across orgs (see the module documentation), and leases it
/// for `lease`. `None` when no job is ready.
pub async fn claim(db: &Db, lease: Duration) -> Result<Option<Claimed>> {
    let t = now();
    let until = lease_end(t, lease);
    let mut tx = system(db, Mode::Write).await?;
    let row = match tx.kind() {
        BackendKind::Postgres => tx.query_opt(CLAIM_PG, params![t, until]).await?,
        BackendKind::Sqlite => match tx.query_opt(PICK_SQLITE, params![t]).await? {
            None => None,
            Some(pick) => {
                // The id as stored (text on SQLite), not re-encoded.
                let (id, queue): (String, String) = (pick.get(0)?, pick.get(1)?);
                tx.execute(
                    "UPDATE jobs SET status = 'running', attempts = attempts + 1,
                                     locked_until = $2, updated_at = $1
                     WHERE id = $3 AND status = 'queued'",
                    params![t, until, id.as_str()],
                )
                .await?;
                tx.execute(
                    "UPDATE job_queues SET last_served_at = $1 WHERE queue = $2",
                    params![t, queue.as_str()],
                )
                .await?;
                tx.query_opt(
                    "SELECT id, org_id, kind, payload, attempts, max_attempts FROM jobs WHERE id = $1",
                    params![id.as_str()],
                )
                .await?
            }
        },
    };
    tx.commit().await?;
    let Some(r) = row else { return Ok(None) };
    Ok(Some(Claimed {
        id: r.get(0)?,
        org_id: r.get(1)?,
        kind: r.get(2)?,
        payload: r.get(3)?,
        attempt: r.get(4)?,
        max_attempts: r.get(5)?,
    }))
}

async fn fenced(db: &Db, sql: &str, params: &[Val]) -> Result<bool> {
    let mut tx = system(db, Mode::Write).await?;
    let n = tx.execute(sql, params).await?;
    tx.commit().await?;
    Ok(n > 0)
}

/// Marks this attempt done. `false` if the job is no longer this attempt's (its lease
/// expired and it was claimed again, or it was cancelled).
pub async fn complete(db: &Db, c: &Claimed) -> Result<bool> {
    fenced(
        db,
        "UPDATE jobs SET status = 'done', locked_until = NULL, last_error = NULL, updated_at = $3
         WHERE id = $1 AND status = 'running' AND attempts = $2",
        params![c.id, c.attempt, now()],
    )
    .await
}

/// Records this attempt's failure: queued again at `retry_at`, or `dead` when `None`.
pub async fn fail(
    db: &Db,
    c: &Claimed,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
) -> Result<bool> {
    let error: String = error.chars().take(2000).collect();
    match retry_at {
        Some(at) => {
            fenced(
                db,
                "UPDATE jobs SET status = 'queued', run_at = $3, locked_until = NULL,
                                 last_error = $4, updated_at = $5
                 WHERE id = $1 AND status = 'running' AND attempts = $2",
                params![c.id, c.attempt, at, error, now()],
            )
            .await
        }
        None => {
            fenced(
                db,
                "UPDATE jobs SET status = 'dead', locked_until = NULL, last_error = $3,
                                 updated_at = $4
                 WHERE id = $1 AND status = 'running' AND attempts = $2",
                params![c.id, c.attempt, error, now()],
            )
            .await
        }
    }
}

/// Gives an unfinished attempt back (graceful shutdown): queued again now, and the
/// attempt does not count.
pub async fn release(db: &Db, c: &Claimed) -> Result<bool> {
    let t = now();
    fenced(
        db,
        "UPDATE jobs SET status = 'queued', attempts = attempts - 1, run_at = $3,
                         locked_until = NULL, updated_at = $3
         WHERE id = $1 AND status = 'running' AND attempts = $2",
        params![c.id, c.attempt, t],
    )
    .await
}

/// Extends this attempt's lease to `lease` from now. `false` if it is no longer ours.
pub async fn heartbeat(db: &Db, c: &Claimed, lease: Duration) -> Result<bool> {
    let t = now();
    fenced(
        db,
        "UPDATE jobs SET locked_until = $3
         WHERE id = $1 AND status = 'running' AND attempts = $2",
        params![c.id, c.attempt, lease_end(t, lease)],
    )
    .await
}

/// Puts back every running job whose lease expired (its worker died or hung): queued
/// again now, or `dead` if that was its last attempt. Returns how many.
pub async fn reap(db: &Db) -> Result<u64> {
    let t = now();
    let mut tx = system(db, Mode::Write).await?;
    let n = tx
        .execute(
            "UPDATE jobs SET status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END,
                    last_error = 'lease expired: the worker running attempt ' || attempts
                                 || ' stopped without finishing it',
                    locked_until = NULL, run_at = $1, updated_at = $1
             WHERE status = 'running' AND locked_until < $1",
            params![t],
        )
        .await?;
    tx.commit().await?;
    if n > 0 {
        tracing::warn!(jobs = n, "reclaimed jobs whose lease expired");
    }
    Ok(n)
}

/// The delay before retry number `attempt` (from 1): `base * 2^(attempt-1)`, at most
/// `max`, then a random point in its upper half (jitter, so failed jobs of many orgs do
/// not retry in lockstep).
pub fn backoff(attempt: i64, base: Duration, max: Duration) -> Duration {
    let exp = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let full = base.saturating_mul(2u32.saturating_pow(exp)).min(max);
    let half = full / 2;
    let jitter = rand::random::<f64>();
    half + half.mul_f64(jitter)
}

/// Removes an org's (now empty) fairness queue after a purge.
pub(crate) async fn forget_queue(db: &Db, org: OrgId) -> Result<()> {
    let mut tx = db.system("jobs", Mode::Write).await?;
    tx.execute(
        "DELETE FROM job_queues WHERE queue = $1 AND pending <= 0",
        params![org],
    )
    .await?;
    tx.commit().await
}

/// Filters for [`list`].
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this status.
    pub status: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this org's jobs.
    pub org: Option<OrgId>,
}

/// Jobs, newest first (an operator's view: `orgwall jobs list`).
pub async fn list(db: &Db, f: &ListFilter, limit: i64) -> Result<Vec<Job>> {
    let mut sql = format!("SELECT {JOB_COLS} FROM jobs WHERE 1 = 1");
    let mut p: Vec<Val> = Vec::new();
    if let Some(s) = &f.status {
        p.push(s.as_str().into());
        sql.push_str(&format!(" AND status = ${}", p.len()));
    }
    if let Some(k) = &f.kind {
        p.push(k.as_str().into());
        sql.push_str(&format!(" AND kind = ${}", p.len()));
    }
    if let Some(o) = f.org {
        p.push(o.into());
        sql.push_str(&format!(" AND org_id = ${}", p.len()));
    }
    p.push(limit.clamp(1, 10_000).into());
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", p.len()));
    let mut tx = system(db, Mode::Read).await?;
    let rows = tx.query(&sql, &p).await?;
    tx.commit().await?;
    rows.iter().map(job_from).collect()
}

/// One job.
pub async fn get(db: &Db, id: JobId) -> Result<Job> {
    let mut tx = system(db, Mode::Read).await?;
    let row = tx
        .query_one(
            &format!("SELECT {JOB_COLS} FROM jobs WHERE id = $1"),
            params![id],
        )
        .await?;
    tx.commit().await?;
    job_from(&row)
}

/// Queues a `dead` or `cancelled` job again, now, with a fresh set of attempts.
pub async fn retry(db: &Db, id: JobId) -> Result<Job> {
    let t = now();
    let mut tx = system(db, Mode::Write).await?;
    let n = tx
        .execute(
            "UPDATE jobs SET status = 'queued', attempts = 0, run_at = $2, locked_until = NULL,
                             updated_at = $2
             WHERE id = $1 AND status IN ('dead', 'cancelled')",
            params![id, t],
        )
        .await?;
    tx.commit().await?;
    let job = get(db, id).await?;
    if n == 0 {
        return Err(Error::Conflict(
            "job_not_retryable",
            format!(
                "job {id} is {}: only dead or cancelled jobs can be retried",
                job.status
            ),
        ));
    }
    Ok(job)
}

/// Cancels a queued or running job (a running attempt may still finish its work, but its
/// result is ignored and it is not retried).
pub async fn cancel(db: &Db, id: JobId) -> Result<Job> {
    let t = now();
    let mut tx = system(db, Mode::Write).await?;
    let n = tx
        .execute(
            "UPDATE jobs SET status = 'cancelled', locked_until = NULL, updated_at = $2
             WHERE id = $1 AND status IN ('queued', 'running')",
            params![id, t],
        )
        .await?;
    tx.commit().await?;
    let job = get(db, id).await?;
    if n == 0 {
        return Err(Error::Conflict(
            "job_not_cancellable",
            format!(
                "job {id} is {}: only queued or running jobs can be cancelled",
                job.status
            ),
        ));
    }
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let base = Duration::from_secs(2);
        let max = Duration::from_secs(60);
        for attempt in 1..40 {
            let d = backoff(attempt, base, max);
            let full = base
                .saturating_mul(
                    2u32.saturating_pow(u32::try_from(attempt - 1).unwrap_or(30).min(30)),
                )
                .min(max);
            assert!(
                d >= full / 2 && d <= full,
                "{attempt}: {d:?} not in [{:?}, {full:?}]",
                full / 2
            );
        }
        assert!(backoff(1, base, max) <= Duration::from_secs(2));
        assert!(backoff(3, base, max) >= Duration::from_secs(4));
    }

    #[test]
    fn kinds_are_checked() {
        assert!(check_kind("export.build").is_ok());
        assert!(check_kind("").is_err());
        assert!(check_kind("Drop Table").is_err());
    }
}
