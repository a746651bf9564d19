//! `orgwall`: the server and its command line.
//!
//! ```text
//! orgwall serve [--listen ADDR] [--demo]    run the server (migrates first)
//! orgwall migrate                           apply migrations and the database wall
//! orgwall seed --demo                       load the Acme/Globex demo data
//! orgwall doctor                            check the schema and database walls
//! orgwall worker                            run only the job worker
//! orgwall jobs list|retry ID|cancel ID      inspect and steer background jobs
//! orgwall outbox                            print queued email with its links
//! ```
//!
//! Every flag has an `ORGWALL_*` environment equivalent (`DATABASE_URL` for the
//! database). With no configuration, data lives in SQLite under `./orgwall-data/` and
//! file bytes under `./orgwall-data/files/` (`--s3-bucket` puts them in S3 instead).

/// mimalloc instead of the system allocator: a request allocates and frees on both
/// runtime threads, where glibc's malloc takes its arena locks (bench/README.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use orgwall_store::{Db, DbConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

mod files_cli;
mod jobs_cli;

#[derive(Parser, Debug)]
#[command(
    name = "orgwall",
    version,
    about = "Multi-tenant SaaS backend where cross-tenant access is impossible by construction"
)]
struct Cli {
    /// Directory for the embedded SQLite database and stored files.
    #[arg(
        long,
        env = "ORGWALL_DATA_DIR",
        default_value = "./orgwall-data",
        global = true
    )]
    data_dir: PathBuf,

    /// PostgreSQL URL (postgres://user@host:port/db). Without it, orgwall uses SQLite in
    /// the data directory. `sqlite:PATH` names a SQLite file explicitly.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,

    /// PostgreSQL only: the NOLOGIN role tenant transactions switch to (created by migrate).
    #[arg(long, env = "ORGWALL_DB_APP_ROLE", default_value = orgwall_store::db::DEFAULT_APP_ROLE, global = true)]
    db_app_role: String,

    /// PostgreSQL only: the connections the pools of placement databases (orgs in a
    /// database of their own) may hold together on each server, the control server and
    /// each target without a budget of its own (`placement target set NAME
    /// --max-connections N`), per instance (default: the control pool's size, 16). Past it, the
    /// least recently used idle pool is closed, or a request waits up to 10 s, then 503.
    #[arg(long, env = "ORGWALL_DB_MAX_CONNECTIONS", global = true, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    db_max_connections: Option<u32>,

    /// Log format: json (default) or text.
    #[arg(
        long,
        env = "ORGWALL_LOG_FORMAT",
        default_value = "json",
        global = true
    )]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum LogFormat {
    Json,
    Text,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the HTTP server. Migrates the database first unless --no-migrate.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "ORGWALL_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Seed the Acme/Globex demo data if it is not there yet.
        #[arg(long, env = "ORGWALL_DEMO")]
        demo: bool,
        /// Do not migrate at start (for a dedicated server login that owns nothing;
        /// run `orgwall migrate` as the owner instead).
        #[arg(long, env = "ORGWALL_NO_MIGRATE")]
        no_migrate: bool,
        /// Base domain for org subdomains: `{slug}.{base}` names an org on org-less routes.
        #[arg(long, env = "ORGWALL_BASE_DOMAIN")]
        base_domain: Option<String>,
        /// Largest file upload accepted, in bytes.
        #[arg(long, env = "ORGWALL_MAX_UPLOAD_BYTES", default_value_t = orgwall_http::files::DEFAULT_MAX_UPLOAD_BYTES, value_parser = clap::value_parser!(u64).range(1..))]
        max_upload_bytes: u64,
        /// Redis URL: rate limits are shared by every instance using it (else per process).
        #[arg(long, env = "REDIS_URL", hide_env_values = true)]
        redis_url: Option<String>,
        /// Requests per minute per user (or API key) within one org.
        #[arg(long, env = "ORGWALL_RATE_USER_PER_MINUTE", default_value_t = 600)]
        rate_user_per_minute: u32,
        /// Login and signup attempts per minute per client IP.
        #[arg(long, env = "ORGWALL_RATE_LOGIN_PER_IP", default_value_t = 60)]
        rate_login_per_ip: u32,
        /// Login attempts per minute per account.
        #[arg(long, env = "ORGWALL_RATE_LOGIN_PER_ACCOUNT", default_value_t = 10)]
        rate_login_per_account: u32,
        /// Read sessions, API keys and memberships from the database on every request
        /// instead of the invalidated in-memory cache (for measuring; the cache is exact).
        #[arg(long, env = "ORGWALL_NO_ACCESS_CACHE")]
        no_access_cache: bool,
        /// Serve `GET /metrics` (Prometheus) on this separate address, for operators only;
        /// without it there are no metrics over HTTP. Never on the public listener.
        #[arg(long, env = "ORGWALL_METRICS_LISTEN")]
        metrics_listen: Option<SocketAddr>,
        /// Bearer token the metrics listener requires (`Authorization: Bearer TOKEN`).
        #[arg(long, env = "ORGWALL_METRICS_TOKEN", hide_env_values = true)]
        metrics_token: Option<String>,
        /// Time from a request's first byte to the end of its headers (e.g. 10s, 500ms).
        #[arg(long, env = "ORGWALL_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = duration)]
        header_read_timeout: std::time::Duration,
        /// Longest wait for the next piece of a request body being read.
        #[arg(long, env = "ORGWALL_BODY_READ_TIMEOUT", default_value = "30s", value_parser = duration)]
        body_read_timeout: std::time::Duration,
        /// A connection with no request in progress and nothing received for this long
        /// (or whose response does not move for this long) is closed.
        #[arg(long, env = "ORGWALL_IDLE_TIMEOUT", default_value = "60s", value_parser = duration)]
        idle_timeout: std::time::Duration,
        /// Open connections at most; more clients wait until one closes.
        #[arg(long, env = "ORGWALL_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
        max_connections: u32,
        #[command(flatten)]
        files: files_cli::FileStoreArgs,
        #[command(flatten)]
        worker: jobs_cli::ServeWorkerArgs,
    },
    /// Run only the background job worker (org purges, exports, email), until stopped.
    Worker {
        #[command(flatten)]
        files: files_cli::FileStoreArgs,
        #[command(flatten)]
        worker: jobs_cli::WorkerArgs,
    },
    /// Inspect and steer background jobs.
    Jobs {
        #[command(subcommand)]
        cmd: jobs_cli::JobsCommand,
    },
    /// Print queued and sent email (recipient, subject, body and its links), for
    /// following invitation and verification links without SMTP.
    Outbox(jobs_cli::OutboxArgs),
    /// Apply pending migrations and re-assert the database wall, in one transaction.
    Migrate,
    /// Load demo data: orgs acme and globex, users alice, bob and carol (password orgwall-demo).
    Seed {
        /// The demo data set (the only one there is).
        #[arg(long, required = true)]
        demo: bool,
    },
    /// Check the schema and database walls against the live catalog; exits 1 naming each violation.
    Doctor,
    /// Set an org's plan (its quotas and default rate limit): free, pro, enterprise or any
    /// row of the `plans` table.
    SetPlan {
        /// The org (id or slug).
        org: String,
        /// The plan.
        plan: String,
    },
    /// Set an org's own requests-per-minute limit (overrides its plan's); `default` clears it.
    SetRateLimit {
        /// The org (id or slug).
        org: String,
        /// Requests per minute, or `default`.
        per_minute: String,
    },
    /// Probe any API for cross-tenant leaks from its OpenAPI document and two tenants'
    /// credentials (exit 0: no leak, 1: leak, 2: could not run). See `orgwall probe --help`.
    Probe(orgwall_probe::cli::Args),
    /// Where each organization's data lives: the shared tables, a schema or a database of its own.
    Placement {
        #[command(subcommand)]
        cmd: PlacementCommand,
    },
}

#[derive(Subcommand, Debug)]
enum PlacementCommand {
    /// Every org with its placement and, for a placement of its own, its data-plane version.
    List,
    /// One org's placement.
    Show {
        /// The org (id or slug).
        org: String,
    },
    /// Place an org that holds no data yet: `shared` (the shared tables), `schema` (a
    /// schema of its own) or `database[:TARGET]` (a database of its own, on the control
    /// server or a registered target), PostgreSQL. Created at the current version with
    /// every wall before the directory names it; the old schema or database is dropped.
    Set {
        /// The org (id or slug).
        org: String,
        /// shared, schema, database or database:TARGET.
        placement: String,
    },
    /// Move an org to another placement while it stays in use (PostgreSQL; the source
    /// server needs wal_level = logical): its rows are copied, its changes caught up, and
    /// under a moment's write fence (writes wait, reads go on) checked, counted and
    /// flipped; the old copy is removed afterwards. Runs as a durable job (the server's
    /// worker, or `orgwall worker`), so it survives this command; --wait runs it here (or
    /// follows the process running it) with its progress. Without --to, resumes the org's move.
    Move {
        /// The org (id or slug).
        org: String,
        /// shared, schema, database or database:TARGET.
        #[arg(long, conflicts_with = "abort")]
        to: Option<String>,
        /// Run the move here and wait for its end (Ctrl-C or a crash leaves it to the job);
        /// when another process (a worker) runs it already, follow its progress, and run
        /// it here if that one stops. Fails if the move is aborted meanwhile.
        #[arg(long, conflicts_with = "abort")]
        wait: bool,
        /// Pace the copy (and the cleanup's deletes from the shared tables) to at most
        /// this many megabytes of rows per second, decimals allowed (0.01 to 100000),
        /// leaving the servers to the other orgs meanwhile (default: as fast as they go).
        /// Give it again when resuming; with --abort, paces the removal of rows a move
        /// into the shared tables copied there.
        #[arg(long, value_name = "MB_PER_SEC",
              value_parser = orgwall_store::placement::parse_copy_rate)]
        copy_rate: Option<u64>,
        /// Abort the org's move before its flip: its new copy, slot and publication go;
        /// the org stays where it was.
        #[arg(long)]
        abort: bool,
    },
    /// Where new orgs go: a rule per plan and a server default, applied when an org is
    /// created and when its plan changes while it holds no data.
    Rule {
        #[command(subcommand)]
        cmd: RuleCommand,
    },
    /// The PostgreSQL servers orgs placed in a database of their own may live on.
    Target {
        #[command(subcommand)]
        cmd: TargetCommand,
    },
}

#[derive(Subcommand, Debug)]
enum RuleCommand {
    /// The rules: the default first, then one per plan.
    List,
    /// Set the rule of a plan (or of every plan without one: `default`). Orgs already
    /// placed stay where they are.
    Set {
        /// A plan's name, or `default`.
        plan: String,
        /// shared, schema, database or database:TARGET.
        placement: String,
    },
    /// Remove the rule of a plan (or the default).
    Clear {
        /// A plan's name, or `default`.
        plan: String,
    },
}

#[derive(Subcommand, Debug)]
enum TargetCommand {
    /// Register a server: checked first (reachable within 5 s, PostgreSQL 15+, a login that
    /// may create databases and roles), then stored in the control database, private to
    /// the owner. Its password is never printed or logged.
    Add {
        /// Its name: a lowercase letter, then lowercase letters, digits or hyphens.
        name: String,
        /// Its connection URL, postgres://user:password@host:port/database. Prefer the
        /// environment variable: a command line is visible to every user of the machine.
        #[arg(env = "ORGWALL_TARGET_URL", hide_env_values = true)]
        url: String,
        /// The connections each instance may hold to the placement databases on this
        /// server together (default: the instance's --db-max-connections).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        max_connections: Option<u32>,
    },
    /// Change a server's connection budget (running instances read it at their restart).
    Set {
        /// Its name.
        name: String,
        /// The connections each instance may hold to the placement databases on this
        /// server together, or `default` (the instance's --db-max-connections).
        #[arg(long)]
        max_connections: String,
    },
    /// The registered servers (without credentials).
    List,
    /// Remove a server no placement uses.
    Remove {
        /// Its name.
        name: String,
    },
}

/// A target's connection budget, as the CLI shows it.
fn target_budget(t: &orgwall_store::placement::Target) -> String {
    match t.max_connections {
        Some(n) => format!("at most {n} connections per instance"),
        None => "the instance's --db-max-connections".into(),
    }
}

/// A move's state in one line.
fn describe_move(m: &orgwall_store::placement::Move) -> String {
    let mut s = format!(
        "moving {} -> {}: {}",
        placed_at(&m.from),
        placed_at(&m.to),
        m.phase
    );
    match m.phase.as_str() {
        "copy" if m.rows_total > 0 => {
            s.push_str(&format!(" {}/{} rows", m.rows_copied, m.rows_total));
        }
        "catch_up" => s.push_str(&format!(" ({} changes replayed)", m.changes_applied)),
        "cleanup" => {
            s.push_str(&format!(" ({} changes replayed", m.changes_applied));
            if let Some(p) = m.pause_ms {
                s.push_str(&format!("; the cut-over held writes {p} ms"));
            }
            s.push(')');
        }
        _ => {}
    }
    if let Some(e) = &m.error {
        s.push_str(&format!("; last error: {e}"));
    }
    s
}

fn print_placement(e: &orgwall_store::placement::Entry) {
    let versions = e.versions.as_ref().map_or(String::new(), |v| {
        let v: Vec<String> = v.iter().map(|(m, n)| format!("{m} {n}")).collect();
        format!("  [{}]", v.join(", "))
    });
    let at = e
        .target
        .as_ref()
        .map_or(String::new(), |t| format!(" on {t}"));
    let size = e.size_bytes.map_or("-".to_owned(), human_bytes);
    println!(
        "{:<24} {}  {:<8} {}{}  {}{}",
        e.slug,
        e.org_id,
        e.kind,
        e.location.as_deref().unwrap_or("-"),
        at,
        size,
        versions
    );
}

/// Bytes for people: `812 B`, `4.0 kB`, `1.3 MB`, `2.1 GB`.
fn human_bytes(n: i64) -> String {
    let mut v = n as f64;
    let mut unit = "B";
    for u in ["kB", "MB", "GB", "TB"] {
        if v < 1000.0 {
            break;
        }
        v /= 1000.0;
        unit = u;
    }
    if unit == "B" {
        format!("{n} B")
    } else {
        format!("{v:.1} {unit}")
    }
}

/// A progress bar on stderr: redrawn in place on a terminal (at most ten times a
/// second), a line per tenth of the way otherwise; nothing when there is nothing to do.
struct ProgressBar {
    what: &'static str,
    tty: bool,
    last: std::sync::Mutex<(std::time::Instant, usize)>,
}

impl ProgressBar {
    fn new(what: &'static str) -> Self {
        use std::io::IsTerminal;
        ProgressBar {
            what,
            tty: std::io::stderr().is_terminal(),
            last: std::sync::Mutex::new((std::time::Instant::now(), usize::MAX)),
        }
    }

    fn show(&self, done: usize, total: usize) {
        if total == 0 {
            return;
        }
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let tenth = |n: usize| n * 10 / total;
        let due = if self.tty {
            done == total || last.0.elapsed() >= std::time::Duration::from_millis(100)
        } else {
            last.1 == usize::MAX || tenth(done) != tenth(last.1) || done == total
        };
        if !due || last.1 == done {
            return;
        }
        *last = (std::time::Instant::now(), done);
        let width = 30;
        let filled = done * width / total;
        let line = format!(
            "{} [{}{}] {done}/{total}",
            self.what,
            "#".repeat(filled),
            ".".repeat(width - filled)
        );
        if self.tty {
            eprint!("\r{line}");
        } else {
            eprintln!("{line}");
        }
    }

    fn finish(&self) {
        let last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.tty && last.1 != usize::MAX {
            eprintln!();
        }
    }
}

/// Where a route places an org, in words.
fn placed_at(route: &orgwall_store::placement::Route) -> String {
    use orgwall_store::placement::Route;
    match route {
        Route::Shared => "shared".into(),
        Route::Schema(s) => format!("schema {s}"),
        Route::Database { name, target } => format!(
            "database {name} on {}",
            target.as_deref().unwrap_or("the control server")
        ),
    }
}

/// The plan a rule command names (`default`: none).
fn rule_plan(plan: &str) -> Option<&str> {
    (plan != "default").then_some(plan)
}

/// A duration: `500ms`, `10s`, `2m`, or plain seconds (`10`).
fn duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (n, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as 10s or 500ms"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("{s:?}: the unit must be ms, s or m")),
    };
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("{s:?} must be more than zero"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

fn init_logs(format: LogFormat) {
    // object_store says each retry at info; its final error is ours to report.
    let filter = orgwall_http::log_filter(
        &std::env::var("ORGWALL_LOG").unwrap_or_else(|_| "info,object_store=warn".into()),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn open(cli: &Cli) -> anyhow::Result<Db> {
    let mut cfg = DbConfig::from_url(cli.database_url.as_deref(), &cli.data_dir)?;
    if let DbConfig::Postgres {
        app_role,
        placement_budget,
        ..
    } = &mut cfg
    {
        app_role.clone_from(&cli.db_app_role);
        *placement_budget = cli.db_max_connections.map(|n| n as usize);
    }
    Ok(Db::open(&cfg, orgwall_store::catalog()).await?)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Serve {
            listen,
            demo,
            no_migrate,
            base_domain,
            max_upload_bytes,
            redis_url,
            rate_user_per_minute,
            rate_login_per_ip,
            rate_login_per_account,
            files,
            no_access_cache,
            worker,
            metrics_listen,
            metrics_token,
            header_read_timeout,
            body_read_timeout,
            idle_timeout,
            max_connections,
        } => {
            // The file store first: a bad S3 setting stops the start before any database work.
            let files = files.open(&cli.data_dir).await?;
            let db = open(&cli).await?;
            if *no_access_cache {
                db.set_access_cache(false);
            }
            if !no_migrate {
                let r = db.migrate().await?;
                tracing::info!(versions = ?r.versions, applied = ?r.applied, "database migrated");
            }
            if *demo {
                let s = orgwall_store::seed::demo_placed(
                    &db,
                    &orgwall_store::seed::demo_placements(&db),
                )
                .await?;
                tracing::info!(result = ?s, "demo data");
            }
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
            let addr = listener.local_addr()?;
            tracing::info!(%addr, backend = ?db.kind(), "orgwall listening");
            eprintln!("orgwall listening on http://{addr} ({:?})", db.kind());
            let mut state = orgwall_http::AppState::with_files(db, cli.data_dir.join("files"));
            state.files = files;
            state.max_upload_bytes = *max_upload_bytes;
            let limit_config = orgwall_http::limits::LimitConfig {
                login_per_ip: *rate_login_per_ip,
                login_per_account: *rate_login_per_account,
                user_per_minute: *rate_user_per_minute,
                ..Default::default()
            };
            state.limits = std::sync::Arc::new(
                match redis_url.as_deref().filter(|u| !u.is_empty()) {
                    None => orgwall_http::limits::Limits::new(limit_config),
                    Some(url) => {
                        match orgwall_http::limits::Limits::with_redis(limit_config.clone(), url)
                            .await
                        {
                            Ok(l) => {
                                tracing::info!("rate limits shared through Redis");
                                l
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "Redis unavailable at start; rate limits are per process");
                                orgwall_http::limits::Limits::new(limit_config)
                            }
                        }
                    }
                },
            );
            state.base_domain = base_domain
                .as_deref()
                .map(|d| d.trim_start_matches('.').to_ascii_lowercase().into());
            state.exports =
                orgwall_store::repo::exports::ExportFiles::new(cli.data_dir.join("exports"));
            state.public_url.clone_from(&worker.worker.public_url);
            let running = if worker.no_worker {
                None
            } else {
                Some(jobs_cli::start(
                    state.db.clone(),
                    state.files.clone(),
                    state.exports.clone(),
                    &worker.worker,
                )?)
            };
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let stopped = move || {
                let mut rx = stop_rx.clone();
                async move {
                    let _ = rx.wait_for(|s| *s).await;
                }
            };
            let metrics = match metrics_listen {
                None => None,
                Some(addr) => {
                    let l = tokio::net::TcpListener::bind(addr)
                        .await
                        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
                    let at = l.local_addr()?;
                    tracing::info!(addr = %at, "metrics listening");
                    eprintln!("orgwall metrics on http://{at}/metrics");
                    let router =
                        orgwall_http::metrics::router(state.clone(), metrics_token.clone());
                    Some(tokio::spawn(orgwall_http::serve(
                        l,
                        router,
                        orgwall_http::ServeConfig::default(),
                        stopped(),
                    )))
                }
            };
            let config = orgwall_http::ServeConfig {
                header_read_timeout: *header_read_timeout,
                body_read_timeout: *body_read_timeout,
                idle_timeout: *idle_timeout,
                max_connections: usize::try_from(*max_connections).unwrap_or(usize::MAX),
                ..Default::default()
            };
            // The console at `/` and the API under `/v1`, on one origin.
            let app = orgwall_console::app(state);
            tokio::spawn(async move {
                shutdown_signal().await;
                let _ = stop_tx.send(true);
            });
            orgwall_http::serve(listener, app, config, stopped()).await?;
            if let Some(m) = metrics {
                let _ = m.await;
            }
            if let Some(w) = running {
                w.stop().await;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Worker { files, worker } => {
            let files = files.open(&cli.data_dir).await?;
            let db = open(&cli).await?;
            jobs_cli::run_alone(db, files, &cli.data_dir, worker, shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Jobs { cmd } => {
            let db = open(&cli).await?;
            jobs_cli::jobs_command(&db, cmd).await
        }
        Command::Outbox(args) => {
            let db = open(&cli).await?;
            jobs_cli::outbox_command(&db, args).await
        }
        Command::Migrate => {
            let db = open(&cli).await?;
            let started = std::time::Instant::now();
            let bar = ProgressBar::new("placements");
            let r = db.migrate_with(&|done, total| bar.show(done, total)).await;
            bar.finish();
            let r = r?;
            let versions: Vec<String> =
                r.versions.iter().map(|(m, v)| format!("{m} {v}")).collect();
            println!(
                "migrated: {} ({} applied now; {} placement(s) of their own at the same version) in {:.1} s",
                versions.join(", "),
                r.applied.len(),
                r.placements,
                started.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Seed { .. } => {
            let db = open(&cli).await?;
            db.migrate().await?;
            match orgwall_store::seed::demo_placed(&db, &orgwall_store::seed::demo_placements(&db)).await? {
                orgwall_store::seed::Seeded::Created => println!(
                    "seeded: orgs acme and globex; users alice@acme.test, bob@globex.test, carol@example.test (password {})",
                    orgwall_store::seed::DEMO_PASSWORD
                ),
                orgwall_store::seed::Seeded::AlreadyPresent => println!("demo data already present"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Probe(_) => Ok(ExitCode::SUCCESS), // handled in main, before logging starts
        Command::SetPlan { org, plan } => {
            let db = open(&cli).await?;
            let id = orgwall_store::repo::orgs::resolve(&db, org)
                .await
                .map_err(|_| anyhow::anyhow!("no organization {org:?}"))?;
            let followed = orgwall_store::quota::set_plan(&db, id, plan).await?;
            use orgwall_store::placement::Followed;
            match followed {
                Followed::Unchanged(r) => println!("{org}: plan {plan} (placement: {})", placed_at(&r)),
                Followed::Placed(r) => println!("{org}: plan {plan}, placed by its rule: {}", placed_at(&r)),
                Followed::Kept(r, kind) => println!(
                    "{org}: plan {plan}; it holds data, so it stays {} (its plan's rule says {kind}: that takes a move)",
                    placed_at(&r)
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::SetRateLimit { org, per_minute } => {
            let db = open(&cli).await?;
            let id = orgwall_store::repo::orgs::resolve(&db, org)
                .await
                .map_err(|_| anyhow::anyhow!("no organization {org:?}"))?;
            let limit = match per_minute.as_str() {
                "default" => None,
                n => Some(n.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    anyhow::anyhow!("per-minute must be a positive integer or `default`")
                })?),
            };
            orgwall_store::quota::set_rate_limit(&db, id, limit).await?;
            println!(
                "{org}: rate limit {}",
                limit.map_or("from its plan".to_string(), |n| format!("{n}/min"))
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Placement { cmd } => {
            use orgwall_store::placement;
            let db = open(&cli).await?;
            match cmd {
                PlacementCommand::List => {
                    let moves = placement::moves(&db).await?;
                    for e in placement::list(&db).await? {
                        print_placement(&e);
                        if let Some(m) = moves.iter().find(|m| m.org == e.org_id) {
                            println!("{:<24} {}", "", describe_move(m));
                        }
                    }
                }
                PlacementCommand::Move {
                    org,
                    to,
                    wait,
                    abort,
                    copy_rate,
                } => {
                    let id = orgwall_store::repo::orgs::resolve(&db, org)
                        .await
                        .map_err(|_| anyhow::anyhow!("no organization {org:?}"))?;
                    let opts = placement::MoveOptions {
                        copy_bytes_per_sec: *copy_rate,
                        ..Default::default()
                    };
                    if *abort {
                        if placement::abort_move_with(&db, id, opts).await? {
                            println!("{org}: move aborted; it stays where it was");
                        } else {
                            println!(
                                "{org}: its mover was asked to abort (it does at its next step)"
                            );
                        }
                        return Ok(ExitCode::SUCCESS);
                    }
                    let kind = to.as_deref().map(str::parse).transpose()?;
                    let mv = orgwall_store::jobs::moves::start(&db, id, kind, opts).await?;
                    println!("{org}: {}", describe_move(&mv));
                    if !*wait {
                        println!("{org}: queued for the worker (orgwall placement list shows its progress)");
                        return Ok(ExitCode::SUCCESS);
                    }
                    let started = std::time::Instant::now();
                    let last = std::sync::Mutex::new(String::new());
                    let show = |m: &placement::Move| {
                        let line = describe_move(m);
                        let mut l = last
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        if *l != line {
                            eprintln!("{org}: {line}");
                            *l = line;
                        }
                    };
                    let mut following = false;
                    let route = loop {
                        match placement::run_move_with(&db, id, opts, &show).await {
                            // Another process runs the move (a worker took its job first):
                            // follow its progress, and run it here if that one stops.
                            Err(orgwall_core::Error::Conflict("move_running", _)) => {
                                if !following {
                                    eprintln!("{org}: its move runs in another process (a worker); following it");
                                    following = true;
                                }
                                let moves = placement::moves(&db).await?;
                                if let Some(m) = moves.iter().find(|m| m.org == id) {
                                    show(m);
                                }
                                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                            }
                            r => break r?,
                        }
                    };
                    if route != mv.to {
                        anyhow::bail!(
                            "{org}: its move was aborted; it stays {}",
                            placed_at(&route)
                        );
                    }
                    println!(
                        "{org}: moved, now {} ({:.1} s)",
                        placed_at(&route),
                        started.elapsed().as_secs_f64()
                    );
                }
                PlacementCommand::Show { org } => {
                    let id = orgwall_store::repo::orgs::resolve(&db, org)
                        .await
                        .map_err(|_| anyhow::anyhow!("no organization {org:?}"))?;
                    print_placement(&placement::show(&db, id).await?);
                }
                PlacementCommand::Set {
                    org,
                    placement: kind,
                } => {
                    let kind: placement::Kind = kind.parse()?;
                    let id = orgwall_store::repo::orgs::resolve(&db, org)
                        .await
                        .map_err(|_| anyhow::anyhow!("no organization {org:?}"))?;
                    let route = placement::set(&db, id, kind).await?;
                    println!("{org}: {}", placed_at(&route));
                }
                PlacementCommand::Rule { cmd } => match cmd {
                    RuleCommand::List => {
                        for r in placement::rules(&db).await? {
                            println!(
                                "{:<16} {}",
                                r.plan.as_deref().unwrap_or("default"),
                                r.placement
                            );
                        }
                    }
                    RuleCommand::Set {
                        plan,
                        placement: kind,
                    } => {
                        placement::set_rule(&db, rule_plan(plan), kind.parse()?).await?;
                        println!("rule {plan}: {kind}");
                    }
                    RuleCommand::Clear { plan } => {
                        if placement::clear_rule(&db, rule_plan(plan)).await? {
                            println!("rule {plan} removed");
                        } else {
                            println!("no rule {plan}");
                        }
                    }
                },
                PlacementCommand::Target { cmd } => match cmd {
                    TargetCommand::Add {
                        name,
                        url,
                        max_connections,
                    } => {
                        let t =
                            placement::add_target_with(&db, name, url, *max_connections).await?;
                        println!(
                            "target {} registered: {} ({})",
                            t.name,
                            t.shown,
                            target_budget(&t)
                        );
                    }
                    TargetCommand::Set {
                        name,
                        max_connections,
                    } => {
                        let max = match max_connections.as_str() {
                            "default" => None,
                            n => Some(n.parse::<u32>().map_err(|_| {
                                anyhow::anyhow!(
                                    "--max-connections takes a number from 1 to 10000 or `default`, not {n:?}"
                                )
                            })?),
                        };
                        let t = placement::set_target_budget(&db, name, max).await.map_err(
                            |e| match e {
                                orgwall_core::Error::NotFound => {
                                    anyhow::anyhow!("no target named {name:?}")
                                }
                                other => other.into(),
                            },
                        )?;
                        println!(
                            "target {}: {} (running instances take it at their restart)",
                            t.name,
                            target_budget(&t)
                        );
                    }
                    TargetCommand::List => {
                        for t in placement::targets(&db).await? {
                            println!(
                                "{:<16} {}  ({}; since {})",
                                t.name,
                                t.shown,
                                target_budget(&t),
                                t.created_at.format("%Y-%m-%d %H:%M UTC")
                            );
                        }
                    }
                    TargetCommand::Remove { name } => {
                        placement::remove_target(&db, name)
                            .await
                            .map_err(|e| match e {
                                orgwall_core::Error::NotFound => {
                                    anyhow::anyhow!("no target named {name:?}")
                                }
                                other => other.into(),
                            })?;
                        println!("target {name} removed");
                    }
                },
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor => {
            let db = open(&cli).await?;
            let violations = db.doctor().await?;
            if violations.is_empty() {
                println!("doctor: every wall stands ({:?})", db.kind());
                Ok(ExitCode::SUCCESS)
            } else {
                for v in &violations {
                    println!("violation: {v}");
                }
                println!("doctor: {} violation(s)", violations.len());
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

/// One line naming the problem (domain errors without their category prefix).
fn describe(e: &anyhow::Error) -> String {
    use orgwall_core::Error as E;
    match e.downcast_ref::<E>() {
        Some(E::Validation(d) | E::Unavailable(d) | E::Internal(d)) => d.clone(),
        Some(other) => other.to_string(),
        None => e.to_string(),
    }
    .replace('\n', " ")
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Probe(args) = cli.command {
        return orgwall_probe::cli::main(args).await;
    }
    init_logs(cli.log_format);
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}
