//! The job worker inside `serve` and alone (`orgwall worker`), and the operator commands
//! `orgwall jobs list|retry|cancel` and `orgwall outbox`.

use orgwall_core::{JobId, OrgId};
use orgwall_store::files::BlobStore;
use orgwall_store::jobs::{self, mail, JobCtx, Registry, Worker, WorkerConfig};
use orgwall_store::repo::exports::ExportFiles;
use orgwall_store::repo::outbox::{self, PublicUrl};
use orgwall_store::Db;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

/// How the job worker runs.
#[derive(clap::Args, Debug, Clone)]
pub struct WorkerArgs {
    /// Jobs the worker runs at once.
    #[arg(long, env = "ORGWALL_WORKER_SLOTS", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub worker_slots: u16,
    /// SMTP server for outgoing email: `smtp://[user:password@]host[:port]` (plain, port
    /// 25), `smtp://...?tls=starttls` (STARTTLS required, port 587) or `smtps://...`
    /// (implicit TLS, port 465); certificates are checked against the Mozilla roots.
    /// Without it, email is written to the log (recipient and subject) and shown by
    /// `orgwall outbox`.
    #[arg(long, env = "ORGWALL_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// The sender of outgoing email.
    #[arg(long, env = "ORGWALL_SMTP_FROM", default_value = mail::DEFAULT_FROM)]
    pub smtp_from: String,
    /// Largest export archive written, in bytes (none: no limit but the disk).
    #[arg(long, env = "ORGWALL_EXPORT_MAX_BYTES")]
    pub export_max_bytes: Option<u64>,
    /// Hours a finished export archive is kept: from then on its download answers 410
    /// `export_expired`, and the archive is deleted.
    #[arg(long, env = "ORGWALL_EXPORT_TTL_HOURS", default_value_t = 168, value_parser = clap::value_parser!(u64).range(1..=87_600))]
    pub export_ttl_hours: u64,
    /// Seconds a running job stays leased without a heartbeat (renewed every third of
    /// it): the job of a worker that died runs again this long after its last heartbeat.
    #[arg(long, env = "ORGWALL_WORKER_LEASE_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub worker_lease_secs: u64,
    /// The server's public base URL (http or https, no query), e.g.
    /// `https://app.example.com`: links in invitation and verification email are made
    /// absolute with it. Without it they are server-relative (`/verify-email?token=...`).
    #[arg(long, env = "ORGWALL_PUBLIC_URL", value_parser = parse_public_url)]
    pub public_url: Option<PublicUrl>,
}

fn parse_public_url(raw: &str) -> Result<PublicUrl, String> {
    PublicUrl::parse(raw).map_err(|e| match e {
        orgwall_core::Error::Validation(why) => why,
        other => other.to_string(),
    })
}

/// `serve`'s worker flags.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeWorkerArgs {
    /// Do not run the job worker inside the server (run `orgwall worker` instead).
    #[arg(long, env = "ORGWALL_NO_WORKER")]
    pub no_worker: bool,
    #[command(flatten)]
    pub worker: WorkerArgs,
}

/// `orgwall jobs ...`.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum JobsCommand {
    /// List jobs, newest first.
    List {
        /// Only jobs in this status: queued, running, done, dead or cancelled.
        #[arg(long)]
        status: Option<String>,
        /// Only jobs of this kind (e.g. export.build).
        #[arg(long)]
        kind: Option<String>,
        /// Only jobs of this org (id or slug).
        #[arg(long)]
        org: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Queue a dead or cancelled job again, now, with a fresh set of attempts.
    Retry {
        /// The job id.
        id: String,
    },
    /// Cancel a queued or running job.
    Cancel {
        /// The job id.
        id: String,
    },
}

/// `orgwall outbox`.
#[derive(clap::Args, Debug, Clone)]
pub struct OutboxArgs {
    /// Only messages in this status: pending, sent or dead.
    #[arg(long)]
    pub status: Option<String>,
    /// Only messages to this address.
    #[arg(long)]
    pub to: Option<String>,
    /// How many of the newest messages.
    #[arg(long, default_value_t = 20)]
    pub limit: i64,
    /// Print server-relative links (`/verify-email?token=...`) against this base URL, e.g.
    /// `http://127.0.0.1:8080`.
    #[arg(long, env = "ORGWALL_OUTBOX_BASE_URL")]
    pub base_url: Option<String>,
}

fn ctx(
    db: Db,
    files: Arc<dyn BlobStore>,
    exports: ExportFiles,
    args: &WorkerArgs,
) -> anyhow::Result<JobCtx> {
    let mailer = mail::with_public_url(
        mail::mailer(args.smtp_url.as_deref(), Some(&args.smtp_from))?,
        args.public_url.clone(),
    );
    tracing::info!(mailer = ?mailer, "email delivery");
    Ok(JobCtx {
        db,
        files,
        exports: exports
            .with_max_bytes(args.export_max_bytes)
            .with_ttl(std::time::Duration::from_secs(args.export_ttl_hours * 3600)),
        mailer,
    })
}

fn config(args: &WorkerArgs) -> WorkerConfig {
    WorkerConfig {
        slots: usize::from(args.worker_slots),
        lease: std::time::Duration::from_secs(args.worker_lease_secs),
        ..WorkerConfig::default()
    }
}

/// A worker running in the background of `serve`.
pub struct Running {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops claiming, lets running jobs finish (within the grace period) and releases
    /// the rest.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts the worker next to the server (same file store and export directory).
pub fn start(
    db: Db,
    files: Arc<dyn BlobStore>,
    exports: ExportFiles,
    args: &WorkerArgs,
) -> anyhow::Result<Running> {
    let w = Worker::new(
        ctx(db, files, exports, args)?,
        Registry::builtin(),
        config(args),
    );
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(w.run(async move {
        let _ = stopped.wait_for(|s| *s).await;
    }));
    Ok(Running { stop, task })
}

/// `orgwall worker`: runs jobs until `shutdown`, over the file store `files`.
pub async fn run_alone(
    db: Db,
    files: Arc<dyn BlobStore>,
    data_dir: &Path,
    args: &WorkerArgs,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let exports = ExportFiles::new(data_dir.join("exports"));
    eprintln!(
        "orgwall worker running ({:?}, {} slots)",
        db.kind(),
        args.worker_slots
    );
    let w = Worker::new(
        ctx(db, files, exports, args)?,
        Registry::builtin(),
        config(args),
    );
    w.run(shutdown).await;
    Ok(())
}

fn one_line(s: &str, max: usize) -> String {
    let s: String = s.replace(['\n', '\r'], " ");
    if s.chars().count() > max {
        let cut: String = s.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        s
    }
}

async fn org_of(db: &Db, claim: &str) -> anyhow::Result<OrgId> {
    if let Ok(id) = claim.parse::<OrgId>() {
        return Ok(id); // also an org being deleted, whose jobs are of interest
    }
    orgwall_store::repo::orgs::resolve(db, claim)
        .await
        .map_err(|_| anyhow::anyhow!("no organization {claim:?}"))
}

fn job_id(s: &str) -> anyhow::Result<JobId> {
    s.trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("{s:?} is not a job id"))
}

fn print_job(j: &jobs::Job) {
    println!(
        "{id}  {status:<9} {kind:<16} org={org:<36} attempts={a}/{m} run_at={run}{err}",
        id = j.id,
        status = j.status,
        kind = j.kind,
        org = j
            .org_id
            .map_or_else(|| "(system)".to_string(), |o| o.to_string()),
        a = j.attempts,
        m = j.max_attempts,
        run = j.run_at.to_rfc3339(),
        err = j
            .last_error
            .as_deref()
            .map(|e| format!("  error: {}", one_line(e, 200)))
            .unwrap_or_default(),
    );
}

/// `orgwall jobs ...`.
pub async fn jobs_command(db: &Db, cmd: &JobsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        JobsCommand::List {
            status,
            kind,
            org,
            limit,
        } => {
            let org = match org {
                Some(o) => Some(org_of(db, o).await?),
                None => None,
            };
            let list = jobs::list(
                db,
                &jobs::ListFilter {
                    status: status.clone(),
                    kind: kind.clone(),
                    org,
                },
                *limit,
            )
            .await?;
            for j in &list {
                print_job(j);
            }
            println!("{} job(s)", list.len());
        }
        JobsCommand::Retry { id } => {
            let j = jobs::retry(db, job_id(id)?).await?;
            print_job(&j);
        }
        JobsCommand::Cancel { id } => {
            let j = jobs::cancel(db, job_id(id)?).await?;
            print_job(&j);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `orgwall outbox`: each message's recipient, subject, body and links.
pub async fn outbox_command(db: &Db, args: &OutboxArgs) -> anyhow::Result<ExitCode> {
    let list = outbox::list(db, args.status.as_deref(), args.to.as_deref(), args.limit).await?;
    if list.is_empty() {
        println!("the outbox is empty");
    }
    for m in &list {
        println!("=== {} [{}] {}", m.id, m.status, m.created_at.to_rfc3339());
        println!("To:      {}", m.recipient);
        println!("Subject: {}", m.subject);
        if let Some(e) = &m.last_error {
            println!("Error:   {}", one_line(e, 300));
        }
        println!();
        println!("{}", m.body.trim_end());
        let links = m.links();
        if !links.is_empty() {
            println!();
            println!("Links:");
            for l in links {
                match (&args.base_url, l.starts_with('/')) {
                    (Some(base), true) => println!("  {}{l}", base.trim_end_matches('/')),
                    _ => println!("  {l}"),
                }
            }
        }
        println!();
    }
    Ok(ExitCode::SUCCESS)
}
