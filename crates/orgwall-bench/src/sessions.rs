//! Sessions on the PostgreSQL server during a placement run (issue 12: "never more than
//! the budget open", read from `pg_stat_activity`): a task samples it every 100 ms while
//! the orgs are placed or served and keeps the peaks.

use crate::seed::pg_connect;
use anyhow::Result;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The largest values seen over the samples.
#[derive(Debug, Default, Clone, Copy)]
pub struct Peak {
    pub samples: u64,
    /// Client sessions on the orgs' own databases, all together.
    pub placement_sessions: i64,
    /// Of those databases, how many had a session at the same moment.
    pub databases_with_sessions: i64,
    /// Client sessions on the control database (the sampler's own not counted).
    pub control_sessions: i64,
    /// Autovacuum workers busy at once (anywhere on the server).
    pub autovacuum_workers: i64,
}

impl std::fmt::Display for Peak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "peak {} sessions on the orgs' databases ({} databases at once), {} on the control database, {} autovacuum workers ({} samples)",
            self.placement_sessions,
            self.databases_with_sessions,
            self.control_sessions,
            self.autovacuum_workers,
            self.samples
        )
    }
}

/// A running sampler; [`Sampler::finish`] stops it and returns the peaks.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Result<Peak>>,
}

impl Sampler {
    /// Samples the server at `admin_url` (a superuser: it sees every session), counting
    /// sessions on `databases` (the orgs' own) and on `control`.
    pub async fn start(admin_url: &str, control: &str, databases: Vec<String>) -> Result<Sampler> {
        let client = pg_connect(admin_url).await?;
        let stmt = client
            .prepare(
                "SELECT count(*) FILTER (WHERE backend_type = 'client backend' AND datname = ANY($1)),
                        count(DISTINCT datname) FILTER (WHERE backend_type = 'client backend' AND datname = ANY($1)),
                        count(*) FILTER (WHERE backend_type = 'client backend' AND datname = $2 AND pid <> pg_backend_pid()),
                        count(*) FILTER (WHERE backend_type = 'autovacuum worker')
                   FROM pg_stat_activity",
            )
            .await?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let control = control.to_owned();
        let task = tokio::spawn(async move {
            let mut peak = Peak::default();
            while !flag.load(Ordering::Relaxed) {
                let row = client.query_one(&stmt, &[&databases, &control]).await?;
                let get = |i: usize| row.get::<_, i64>(i);
                peak.samples += 1;
                peak.placement_sessions = peak.placement_sessions.max(get(0));
                peak.databases_with_sessions = peak.databases_with_sessions.max(get(1));
                peak.control_sessions = peak.control_sessions.max(get(2));
                peak.autovacuum_workers = peak.autovacuum_workers.max(get(3));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(peak)
        });
        Ok(Sampler { stop, task })
    }

    /// Stops sampling; the peaks seen.
    pub async fn finish(self) -> Result<Peak> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await?
    }
}
