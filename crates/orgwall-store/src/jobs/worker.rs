//! The worker: claims jobs fairly, runs each in its org's scope, records the outcome.
//!
//! - **Slots.** Up to [`WorkerConfig::slots`] jobs run at once; a free slot claims the next
//!   job at once, an idle worker polls every [`WorkerConfig::poll`].
//! - **Scope.** A tenant job's handler gets an [`OrgScope`] for the job's org and nothing
//!   else: the worker enters the org through `access::jobs::enter` (principal
//!   [`crate::access::Principal::Job`], kind and job id) before the handler runs, and the
//!   scope is dropped when it returns. Kinds registered with
//!   [`Registry::tenant_audited`] (exports) write `system.scope_entered` in the org on
//!   entry; ordinary tenant jobs are not audited on entry (see `access::jobs`). System
//!   handlers get no scope at all: to touch tenant data they must enter each org by name
//!   through the access module (the purge does).
//! - **Fail closed.** A job without an org whose kind is not a registered system kind, a
//!   system kind that names an org, an unknown kind, or a payload its handler cannot parse
//!   goes `dead` at once with the reason in `last_error`.
//! - **Leases.** The lease is extended every third of [`WorkerConfig::lease`] while the
//!   handler runs; expired leases are reaped (see [`super::reap`]) every lease.
//! - **Shutdown.** When the shutdown future completes the worker stops claiming, waits up
//!   to [`WorkerConfig::grace`] for running jobs, then aborts the rest and releases them
//!   (queued again at once, the attempt not counted).

use super::{Claimed, ORG_PURGE, OUTBOX_DELIVER};
use crate::access::OrgScope;
use crate::db::Db;
use crate::files::BlobStore;
use crate::repo::exports::ExportFiles;
use futures::future::BoxFuture;
use futures::FutureExt;
use orgwall_core::{Error, JobId, OrgId};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tracing::Instrument;

/// What handlers can reach.
#[derive(Clone)]
pub struct JobCtx {
    /// The database.
    pub db: Db,
    /// Tenant file bytes.
    pub files: Arc<dyn BlobStore>,
    /// Where export archives go.
    pub exports: ExportFiles,
    /// Sends outbox messages.
    pub mailer: Arc<dyn super::mail::Mailer>,
}

impl std::fmt::Debug for JobCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobCtx")
            .field("backend", &self.db.kind())
            .field("files", &self.files)
            .field("exports", &self.exports)
            .field("mailer", &self.mailer)
            .finish()
    }
}

/// The job a handler runs.
#[derive(Debug, Clone, PartialEq)]
pub struct JobInfo {
    /// Its id.
    pub id: JobId,
    /// Its kind.
    pub kind: String,
    /// Its payload.
    pub payload: serde_json::Value,
    /// This attempt (from 1).
    pub attempt: i64,
    /// Attempts it gets.
    pub max_attempts: i64,
}

impl JobInfo {
    /// Whether a failure now makes the job `dead`.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }

    /// The payload as `T`; a payload that does not parse is [`JobError::Fatal`].
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, JobError> {
        serde_json::from_value(self.payload.clone())
            .map_err(|e| JobError::Fatal(format!("malformed payload for {}: {e}", self.kind)))
    }
}

/// Why a handler failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt (after a backoff).
    #[error("{0}")]
    Retry(String),
    /// Will never succeed: the job is `dead` at once.
    #[error("{0}")]
    Fatal(String),
}

impl From<Error> for JobError {
    /// The database being away and internal errors are retried; every other domain error
    /// (not found, refused, validation, a scope violation) is a permanent answer.
    fn from(e: Error) -> Self {
        match e {
            Error::Unavailable(_) | Error::Internal(_) => JobError::Retry(e.to_string()),
            other => JobError::Fatal(other.to_string()),
        }
    }
}

type TenantFn = Arc<
    dyn Fn(JobCtx, OrgScope, JobInfo) -> BoxFuture<'static, Result<(), JobError>> + Send + Sync,
>;
type SystemFn =
    Arc<dyn Fn(JobCtx, JobInfo) -> BoxFuture<'static, Result<(), JobError>> + Send + Sync>;

#[derive(Clone)]
struct TenantHandler {
    kind: &'static str,
    audited: bool,
    run: TenantFn,
}

/// The handlers, by kind. Tenant handlers run only for jobs that name an org, system
/// handlers only for jobs that name none.
#[derive(Clone, Default)]
pub struct Registry {
    tenant: HashMap<&'static str, TenantHandler>,
    system: HashMap<&'static str, SystemFn>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut t: Vec<_> = self.tenant.keys().collect();
        t.sort();
        let mut s: Vec<_> = self.system.keys().collect();
        s.sort();
        f.debug_struct("Registry")
            .field("tenant", &t)
            .field("system", &s)
            .finish()
    }
}

impl Registry {
    /// No handlers.
    pub fn empty() -> Self {
        Registry::default()
    }

    /// The built-in kinds: `org.purge`, `outbox.deliver` and `placement.move` (system),
    /// `export.build` and
    /// `export.expire` (tenant, audited).
    pub fn builtin() -> Self {
        Registry::empty()
            .system(ORG_PURGE, super::purge::run)
            .system(OUTBOX_DELIVER, super::mail::deliver)
            .system(super::PLACEMENT_MOVE, super::moves::run)
            .tenant_audited(super::EXPORT_BUILD, super::export::run)
            .tenant_audited(super::EXPORT_EXPIRE, super::export::expire)
    }

    fn add_tenant<F, Fut>(mut self, kind: &'static str, audited: bool, f: F) -> Self
    where
        F: Fn(JobCtx, OrgScope, JobInfo) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        let run: TenantFn = Arc::new(move |ctx, scope, job| f(ctx, scope, job).boxed());
        self.tenant
            .insert(kind, TenantHandler { kind, audited, run });
        self
    }

    /// Registers a tenant job kind: the handler gets the job's org scope (entry not
    /// audited; the job id is in the scope's principal).
    pub fn tenant<F, Fut>(self, kind: &'static str, f: F) -> Self
    where
        F: Fn(JobCtx, OrgScope, JobInfo) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        self.add_tenant(kind, false, f)
    }

    /// Registers a tenant job kind whose entry into the org is audited
    /// (`system.scope_entered`): for jobs that read or destroy much of an org.
    pub fn tenant_audited<F, Fut>(self, kind: &'static str, f: F) -> Self
    where
        F: Fn(JobCtx, OrgScope, JobInfo) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        self.add_tenant(kind, true, f)
    }

    /// Registers a system kind (built-ins only: the kind must be in `SYSTEM_KINDS`).
    fn system<F, Fut>(mut self, kind: &'static str, f: F) -> Self
    where
        F: Fn(JobCtx, JobInfo) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        if super::SYSTEM_KINDS.contains(&kind) {
            let run: SystemFn = Arc::new(move |ctx, job| f(ctx, job).boxed());
            self.system.insert(kind, run);
        }
        self
    }
}

/// How a worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerConfig {
    /// Jobs run at once.
    pub slots: usize,
    /// How long a claim holds a job without a heartbeat.
    pub lease: Duration,
    /// How often an idle worker looks for work.
    pub poll: Duration,
    /// How long shutdown waits for running jobs.
    pub grace: Duration,
    /// The first retry's delay (doubling from there, see [`super::backoff`]).
    pub backoff_base: Duration,
    /// The longest retry delay.
    pub backoff_max: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            slots: 2,
            lease: Duration::from_secs(60),
            poll: Duration::from_millis(500),
            grace: Duration::from_secs(30),
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(3600),
        }
    }
}

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Done,
    /// Failed; queued again after a backoff.
    Retrying(String),
    /// Failed for good.
    Dead(String),
    /// The job was no longer this attempt's when it finished (lease lost, or cancelled).
    Lost,
}

struct Inner {
    ctx: JobCtx,
    registry: Registry,
    cfg: WorkerConfig,
}

/// Runs jobs. Cheap to clone.
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("registry", &self.inner.registry)
            .field("cfg", &self.inner.cfg)
            .finish()
    }
}

impl Worker {
    /// A worker over `ctx` with `registry`'s handlers.
    pub fn new(ctx: JobCtx, registry: Registry, cfg: WorkerConfig) -> Self {
        let cfg = WorkerConfig {
            slots: cfg.slots.max(1),
            ..cfg
        };
        Worker {
            inner: Arc::new(Inner { ctx, registry, cfg }),
        }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.inner.ctx.db
    }

    /// Runs until `shutdown` completes, then drains (see the module documentation).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let cfg = self.inner.cfg;
        tracing::info!(
            slots = cfg.slots,
            lease_s = cfg.lease.as_secs(),
            "job worker started"
        );
        let mut running: JoinSet<()> = JoinSet::new();
        let mut claimed: HashMap<tokio::task::Id, Claimed> = HashMap::new();
        let mut last_reap: Option<Instant> = None;
        let mut shutdown = std::pin::pin!(shutdown);
        'outer: loop {
            if last_reap.is_none_or(|t| t.elapsed() >= cfg.lease) {
                if let Err(e) = super::reap(self.db()).await {
                    tracing::error!(error = %e, "reaping expired leases failed");
                }
                last_reap = Some(Instant::now());
            }
            // Fill free slots.
            while running.len() < cfg.slots {
                match super::claim(self.db(), cfg.lease).await {
                    Ok(Some(c)) => {
                        let w = self.clone();
                        let job = c.clone();
                        let h = running.spawn(async move {
                            w.execute(job).await;
                        });
                        claimed.insert(h.id(), c);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!(error = %e, "claiming a job failed");
                        break;
                    }
                }
                if (&mut shutdown).now_or_never().is_some() {
                    break 'outer;
                }
            }
            tokio::select! {
                () = &mut shutdown => break,
                Some(done) = running.join_next_with_id(), if !running.is_empty() => {
                    self.settle(done, &mut claimed).await;
                }
                () = tokio::time::sleep(cfg.poll) => {}
            }
        }
        tracing::info!(
            running = running.len(),
            grace_s = cfg.grace.as_secs(),
            "job worker stopping"
        );
        let deadline = tokio::time::sleep(cfg.grace);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                next = running.join_next_with_id() => match next {
                    Some(done) => self.settle(done, &mut claimed).await,
                    None => break,
                },
                () = &mut deadline => {
                    running.abort_all();
                    while let Some(done) = running.join_next_with_id().await {
                        self.settle(done, &mut claimed).await;
                    }
                    break;
                }
            }
        }
        tracing::info!("job worker stopped");
    }

    /// Handles a finished slot task: a panic fails the attempt (retried), an abort
    /// (shutdown) releases the job.
    async fn settle(
        &self,
        done: Result<(tokio::task::Id, ()), tokio::task::JoinError>,
        claimed: &mut HashMap<tokio::task::Id, Claimed>,
    ) {
        match done {
            Ok((id, ())) => {
                claimed.remove(&id);
            }
            Err(e) => {
                let Some(c) = claimed.remove(&e.id()) else {
                    return;
                };
                if e.is_cancelled() {
                    match super::release(self.db(), &c).await {
                        Ok(_) => {
                            tracing::info!(job_id = %c.id, kind = %c.kind, "released unfinished job")
                        }
                        Err(err) => {
                            tracing::error!(job_id = %c.id, error = %err, "releasing a job failed; its lease will expire")
                        }
                    }
                } else {
                    self.record(&c, Err(JobError::Retry("the job handler panicked".into())))
                        .await;
                }
            }
        }
    }

    /// Runs jobs one at a time until none is ready (reaping expired leases first);
    /// returns each job's outcome in order. For tests, scripts and draining by hand.
    pub async fn run_until_idle(&self) -> Vec<(JobId, Outcome)> {
        let mut out = Vec::new();
        if let Err(e) = super::reap(self.db()).await {
            tracing::error!(error = %e, "reaping expired leases failed");
        }
        loop {
            match super::claim(self.db(), self.inner.cfg.lease).await {
                Ok(Some(c)) => {
                    let id = c.id;
                    out.push((id, self.execute(c).await));
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = %e, "claiming a job failed");
                    break;
                }
            }
        }
        out
    }

    /// Runs one claimed attempt to its end and records the outcome.
    pub async fn execute(&self, c: Claimed) -> Outcome {
        let span = tracing::info_span!(
            "job",
            job_id = %c.id,
            kind = %c.kind,
            org_id = c.org_id.map(|o| o.to_string()).unwrap_or_default(),
            attempt = c.attempt,
        );
        async {
            let lease = self.inner.cfg.lease;
            let work = self.dispatch(&c);
            tokio::pin!(work);
            let mut beat = tokio::time::interval((lease / 3).max(Duration::from_millis(10)));
            beat.tick().await;
            let result = loop {
                tokio::select! {
                    r = &mut work => break r,
                    _ = beat.tick() => {
                        match super::heartbeat(self.db(), &c, lease).await {
                            Ok(true) => {}
                            Ok(false) => tracing::warn!("lease lost (reclaimed or cancelled); the result will be ignored"),
                            Err(e) => tracing::warn!(error = %e, "extending the lease failed"),
                        }
                    }
                }
            };
            self.record(&c, result).await
        }
        .instrument(span)
        .await
    }

    async fn dispatch(&self, c: &Claimed) -> Result<(), JobError> {
        let r = &self.inner.registry;
        let kind = c.kind.as_str();
        let info = JobInfo {
            id: c.id,
            kind: c.kind.clone(),
            payload: c.payload.clone(),
            attempt: c.attempt,
            max_attempts: c.max_attempts,
        };
        let ctx = self.inner.ctx.clone();
        match c.org_id {
            None => match r.system.get(kind) {
                Some(run) => run(ctx, info).await,
                None if r.tenant.contains_key(kind) => Err(JobError::Fatal(format!(
                    "refused: {kind} is a tenant job kind and this job names no org (a job without an org must be a declared system kind)"
                ))),
                None => Err(JobError::Fatal(format!(
                    "refused: {kind:?} is not a declared system job kind, and this job names no org"
                ))),
            },
            Some(org) => match r.tenant.get(kind) {
                Some(h) => {
                    let scope = enter(&ctx.db, h, c.id, org).await?;
                    (h.run)(ctx, scope, info).await
                }
                None if r.system.contains_key(kind) => Err(JobError::Fatal(format!(
                    "refused: {kind} is a system job kind and must not name an org"
                ))),
                None => Err(JobError::Fatal(format!("unknown job kind {kind:?}"))),
            },
        }
    }

    async fn record(&self, c: &Claimed, result: Result<(), JobError>) -> Outcome {
        let db = self.db();
        let cfg = self.inner.cfg;
        let (stored, outcome) = match result {
            Ok(()) => (super::complete(db, c).await, Outcome::Done),
            Err(JobError::Retry(e)) if c.attempt < c.max_attempts => {
                let delay = super::backoff(c.attempt, cfg.backoff_base, cfg.backoff_max);
                let at = crate::value::now()
                    + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis(), "job attempt failed; retrying");
                (super::fail(db, c, &e, Some(at)).await, Outcome::Retrying(e))
            }
            Err(JobError::Retry(e) | JobError::Fatal(e)) => {
                tracing::error!(error = %e, "job failed for good (dead)");
                (super::fail(db, c, &e, None).await, Outcome::Dead(e))
            }
        };
        match stored {
            Ok(true) => outcome,
            Ok(false) => {
                tracing::warn!("the job was no longer this attempt's: outcome not recorded");
                Outcome::Lost
            }
            Err(e) => {
                tracing::error!(error = %e, "recording the job outcome failed; its lease will expire and it will run again");
                Outcome::Lost
            }
        }
    }
}

async fn enter(db: &Db, h: &TenantHandler, job: JobId, org: OrgId) -> Result<OrgScope, JobError> {
    crate::access::jobs::enter(db, h.kind, job, org, h.audited)
        .await
        .map_err(JobError::from)
}
