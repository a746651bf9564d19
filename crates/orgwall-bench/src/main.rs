//! `orgwall-bench`: measures orgwall under load on SQLite and PostgreSQL.
//!
//! For each org count: seed a data set in bulk, start the release server on it, drive it
//! over loopback with C connections (random org per request, that org's own API key),
//! for each workload; on PostgreSQL with row-level security on and then off (a bench-only
//! switch on the bench's own database), and pgbench on the detail read's SQL. Writes a
//! markdown table and a JSON file under `bench/results/`. Run it through `scripts/bench`,
//! which builds the release binaries first; see `bench/README.md`.
//!
//! Never a timed test: nothing in CI runs it.

mod chart;
mod cpu;
mod dataset;
mod load;
mod migrations;
mod moves;
mod pgbench;
mod placed;
mod report;
mod seed;
mod server;
mod sessions;

use anyhow::{bail, Context, Result};
use clap::Parser;
use load::Workload;
use report::{DatasetRecord, Machine, PgbenchRecord, Report, RunRecord};
use server::{Backend, Server};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum BackendArg {
    Sqlite,
    Postgres,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum Rls {
    /// Row-level security as `orgwall migrate` leaves it: enabled and forced.
    On,
    /// Disabled on every table of the bench database (bench only).
    Off,
}

/// `--rls-turns-sides`: which of the two databases taking turns has RLS off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum RlsSides {
    /// The copy (the second server) has RLS off: the measurement.
    Copy,
    /// The bench database (the first server) has RLS off, the copy on: the same
    /// comparison with the servers' roles swapped, to show a difference follows RLS and
    /// not the server or the database it runs on.
    Swapped,
    /// Both on: an A/A check of the method (the bench database vs its copy, RLS alike).
    Neither,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum PlacementArg {
    Shared,
    Schema,
    Database,
}

impl PlacementArg {
    fn kind(self) -> orgwall_store::placement::Kind {
        use orgwall_store::placement::Kind;
        match self {
            PlacementArg::Shared => Kind::Shared,
            PlacementArg::Schema => Kind::Schema,
            PlacementArg::Database => Kind::Database(None),
        }
    }

    fn variant(self) -> &'static str {
        match self {
            PlacementArg::Shared => "placed shared",
            PlacementArg::Schema => "placed schema",
            PlacementArg::Database => "placed database",
        }
    }

    /// Its variant in a mixed run (`--placement-mix`): `turns ...` with phases (see
    /// [`Args::mix_phase_ms`]), `mixed ...` without.
    fn mixed_variant(self, turns: bool) -> &'static str {
        match (self, turns) {
            (PlacementArg::Shared, true) => "turns shared",
            (PlacementArg::Schema, true) => "turns schema",
            (PlacementArg::Database, true) => "turns database",
            (PlacementArg::Shared, false) => "mixed shared",
            (PlacementArg::Schema, false) => "mixed schema",
            (PlacementArg::Database, false) => "mixed database",
        }
    }
}

#[derive(Parser, Debug, serde::Serialize)]
#[command(
    name = "orgwall-bench",
    about = "Benchmark orgwall on SQLite and PostgreSQL (see bench/README.md)"
)]
struct Args {
    /// Backends to measure.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    backends: Vec<BackendArg>,
    /// Org counts (one data set each).
    #[arg(long, value_delimiter = ',', default_value = "10,1000")]
    orgs: Vec<usize>,
    /// Adds the 100,000-org data set (10 million tickets).
    #[arg(long)]
    full: bool,
    /// Tickets per org on average (total capped at 10 million).
    #[arg(long, default_value_t = 100)]
    tickets_per_org: u64,
    /// Share of all tickets in the one large org.
    #[arg(long, default_value_t = 0.5)]
    large_share: f64,
    /// Workloads, in order (creates last keeps the reads on the seeded data).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "detail,list,search,mixed,create"
    )]
    workloads: Vec<Workload>,
    /// Concurrent connections.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Connections of the extra runs that check the server's RSS (0: none).
    #[arg(long, default_value_t = 256)]
    rss_concurrency: usize,
    /// The workloads measured at `--rss-concurrency` (one run each, in order).
    #[arg(long, value_delimiter = ',', default_value = "detail")]
    rss_workloads: Vec<Workload>,
    /// Before the workloads, send one request to every org (so that every org's
    /// credentials are in the server's access cache: a warm-cache measurement at any
    /// org count). Without it, at 100,000 orgs most requests meet a cold cache.
    #[arg(long)]
    touch_all_orgs: bool,
    /// PostgreSQL: before anything else, measure the detail read against the freshly
    /// started server (variant `cold`: every org's first request meets an empty access
    /// cache), then send every org one request and go on warm (implies
    /// `--touch-all-orgs`). With `--rounds N`, N cold runs, each against a server started
    /// afresh. The report checks the median cold p50 against warm (issue 16: within 1.5x).
    #[arg(long)]
    cold_first: bool,
    /// PostgreSQL: also measure the detail read against a server with its access cache
    /// off (variant `all cold`: every request's API key is read from the database, as a
    /// cold key's is), so the cold path's cost is measured whatever share of requests a
    /// `--cold-first` run finds cold. The report checks its p50 against warm.
    #[arg(long)]
    all_cold: bool,
    /// Seconds of warmup before each measured run.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Seconds measured per run.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// PostgreSQL variants.
    #[arg(long, value_delimiter = ',', default_value = "on,off")]
    rls: Vec<Rls>,
    /// pgbench scripts: the detail read's SQL (`pipeline`, `plain`), the anchors
    /// (`naive`: PostgreSQL's own naive RLS transaction; `floor`: one prepared SELECT;
    /// `pairs`: the pair lookup every script pays) and the breakdown (`step-begin`,
    /// `step-prelude`, `step-check`, `step-ticket`, then `pipeline`).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "pipeline,plain,naive,floor,pairs,step-begin,step-prelude,step-check,step-ticket"
    )]
    pgbench: Vec<pgbench::Mode>,
    /// PostgreSQL: after the other runs, place every org (rows and all) in each of these
    /// in turn and measure `--placement-workloads` there with RLS on, against a server
    /// started afresh each time (issue 12: a schema or database of its own vs shared).
    /// Rounds alternate the order.
    #[arg(long, value_delimiter = ',')]
    placements: Vec<PlacementArg>,
    /// With `--placements`: place the orgs in all of them at once instead of in turn (org
    /// i of round r in placement (i + r) mod k, so each org takes each placement over k
    /// rounds), one server for them all, and measure each workload over every org in the
    /// same runs (see `--mix-phase-ms`): a drift of the machine's speed falls on all
    /// placements alike.
    #[arg(long)]
    placement_mix: bool,
    /// With `--placement-mix` (and `--rls-turns`): the placements (the two servers) take
    /// turns in phases this long, each phase's requests to one placement's orgs only, so
    /// each one's req/s is measured as if it had the server to itself; 0: every request
    /// to any org at random, each placement compared by mean latency under the same
    /// mixed load.
    #[arg(long, default_value_t = 1000)]
    mix_phase_ms: u64,
    /// PostgreSQL, with `--rls on,off`: instead of RLS on and off in separate runs, a
    /// copy of the bench database with RLS off (`CREATE DATABASE ... TEMPLATE`) served by
    /// a second server, and the two taking turns in phases of `--mix-phase-ms` within
    /// each run (`turns rls on`, `turns rls off`): the same drift of the machine's speed
    /// falls on both.
    #[arg(long)]
    rls_turns: bool,
    /// With `--rls-turns`: which side has RLS off (`copy`; `swapped`, the bench database
    /// off and its copy on; `neither`, an A/A check of the method).
    #[arg(long, value_enum, default_value = "copy")]
    rls_turns_sides: RlsSides,
    /// The workloads of the placement comparison.
    #[arg(long, value_delimiter = ',', default_value = "detail,list,create")]
    placement_workloads: Vec<Workload>,
    /// PostgreSQL: time `orgwall migrate` over this many placements in a schema of their
    /// own and this many in a database of their own (`SCHEMAS,DATABASES`, e.g.
    /// `1000,200`), with nothing pending and with one new data-plane migration, on a
    /// bench database of its own; then drop it all. Runs before the workloads.
    #[arg(long, value_delimiter = ',', value_name = "SCHEMAS,DATABASES")]
    migrate_placements: Option<Vec<usize>>,
    /// Measure online moves of an org of each of these many tickets (e.g.
    /// `10000,100000,1000000`) on throwaway clusters of its own (`wal_level = logical`):
    /// shared to its own database, then to a database on a second server, with writers
    /// on the moving org and another; writes `<out>/<date>-<commit>-moves-<sizes>[-paced<MB>].{md,json}` and
    /// exits (nothing else is measured).
    #[arg(long, value_delimiter = ',')]
    moves: Vec<u64>,
    /// With `--moves`: pace each move's copy to this many MB/s, decimals allowed
    /// (`orgwall placement move --copy-rate`); default: full speed.
    #[arg(long, value_name = "MB_PER_SEC")]
    move_copy_rate: Option<String>,
    /// With `--moves`: seconds of writes measured before each move (the baseline its
    /// latencies are compared with; as long as the move gives a p99 over as many writes).
    #[arg(long, value_name = "SECONDS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    move_baseline: u64,
    /// With `--moves`: each org's writers together start this many writes a second, on a
    /// fixed schedule (open loop: a write's latency counts from when it was due, so a
    /// paused write also delays the ones due after it); 0: back to back (closed loop).
    #[arg(long, value_name = "PER_SEC", default_value_t = 100)]
    move_write_rate: u64,
    /// With `--moves`: before each move, after its baseline, hold a repeatable-read
    /// snapshot open in the database the move reads for this many seconds (what a copy's
    /// snapshot costs other writers, with nothing else of a move running), then wait as
    /// long again; reported as three windows of writes. 0: no probe.
    #[arg(long, value_name = "SECONDS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    move_probe_snapshot: u64,
    /// With `--moves`: at most this many rows in one chunk of the copy (each chunk a short
    /// snapshot of its own, its rows written to the destination in one statement);
    /// default: chunks of about two seconds of the pace.
    #[arg(long, value_name = "ROWS", value_parser = clap::value_parser!(u64).range(1..))]
    move_chunk_rows: Option<u64>,
    /// With `--moves`: let this 2-core machine stand for two machines: the first server
    /// and the bench kept to CPU 0, the second server to CPU 1 (`taskset`), and only the
    /// move across the two servers run (shared tables on the first to a database of its
    /// own on the second), so the other org's server does not share its CPU with the
    /// copy's destination.
    #[arg(long)]
    move_two_machines: bool,
    /// With `--moves`: run the mover on a thread of its own (its own single-threaded
    /// runtime), not on the two runtime threads the writers are timed on, as a mover run
    /// by another process (`orgwall placement move`, a job worker elsewhere) would be; with
    /// `--move-two-machines` that thread is kept to CPU 1 (with the second server), so the
    /// first server's CPU has only the source's side of the copy.
    #[arg(long)]
    move_own_thread: bool,
    /// With `--moves`: sample what each busy process of both servers waits on
    /// (`pg_stat_activity`) every 10 ms during each move, shown with each org's slowest
    /// writes (a diagnosis: the sampling is work of its own on the servers). With
    /// `ORGWALL_BENCH_MOVE_LOGS=DIR` the servers' logs and the samples are written there.
    #[arg(long)]
    move_sample_waits: bool,
    /// Measure no workload (with `--migrate-placements`: the migrations alone).
    #[arg(long)]
    no_workloads: bool,
    /// Skip pgbench.
    #[arg(long)]
    no_pgbench: bool,
    /// PostgreSQL admin URL (a superuser); the bench creates `orgwall_bench_<orgs>` there.
    #[arg(long, env = "ORGWALL_BENCH_DATABASE_URL", hide_env_values = true)]
    pg_url: Option<String>,
    /// The NOLOGIN role tenant transactions switch to.
    #[arg(long, default_value = orgwall_store::db::DEFAULT_APP_ROLE)]
    app_role: String,
    /// The server binary (a release build).
    #[arg(
        long,
        env = "ORGWALL_BENCH_ORGWALL_BIN",
        default_value = "target/release/orgwall"
    )]
    orgwall_bin: PathBuf,
    /// Where SQLite files and server data go during the run.
    #[arg(
        long,
        env = "ORGWALL_BENCH_WORK_DIR",
        default_value = "target/bench-work"
    )]
    work_dir: PathBuf,
    /// Where the results go.
    #[arg(long, env = "ORGWALL_BENCH_OUT", default_value = "bench/results")]
    out: PathBuf,
    /// Measure each workload this many times (PostgreSQL: RLS on and off alternate
    /// within each round); the targets use the median.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Keep the databases and files after the run.
    #[arg(long)]
    keep: bool,
    /// Threads of the load generator (the server and PostgreSQL share the rest).
    #[arg(long, default_value_t = 1)]
    driver_threads: usize,
    /// Ticket ids per org the driver picks from (spread over the org's range).
    #[arg(long, default_value_t = 1000)]
    sample_per_org: usize,
    /// Write no result files (print only).
    #[arg(long)]
    no_write: bool,
    /// Draw the chart of an earlier results file (`bench/results/*.json`) next to it
    /// (`.png`) and exit; nothing is measured.
    #[arg(long, value_name = "JSON")]
    chart_from: Option<PathBuf>,
}

const MAX_TICKETS: u64 = 10_000_000;

fn spec(args: &Args, orgs: usize) -> dataset::Spec {
    dataset::Spec {
        orgs,
        tickets: (orgs as u64)
            .saturating_mul(args.tickets_per_org)
            .min(MAX_TICKETS)
            .max(orgs as u64),
        large_share: args.large_share,
        projects_per_org: 5,
        notes_per_org: 3,
        sample_per_org: args.sample_per_org,
    }
}

fn say(msg: impl AsRef<str>) {
    eprintln!("[bench] {}", msg.as_ref());
}

/// Everything one backend/size needs to run workloads against a started server.
struct Ctx<'a> {
    args: &'a Args,
    rt: &'a tokio::runtime::Runtime,
    report: &'a mut Report,
}

/// One measured run's coordinates.
struct Run<'a> {
    server: &'a Server,
    targets: &'a std::sync::Arc<Vec<load::Target>>,
    orgs: usize,
    backend: &'static str,
    variant: &'static str,
    round: usize,
}

impl Ctx<'_> {
    /// `--touch-all-orgs`: one request per org before the workloads.
    fn touch(&self, server: &Server, targets: &std::sync::Arc<Vec<load::Target>>) -> Result<()> {
        if !self.args.touch_all_orgs && !self.args.cold_first {
            return Ok(());
        }
        let (secs, failed) = self.rt.block_on(load::touch_all(
            server.addr,
            targets.clone(),
            self.args.concurrency,
        ))?;
        say(format!(
            "touched {} orgs in {secs:.1} s ({failed} failed)",
            targets.len()
        ));
        Ok(())
    }

    /// Stops a sampler of `pg_stat_activity`, says its peaks and notes them in the report.
    fn sessions(&mut self, (what, s): (String, sessions::Sampler)) -> Result<()> {
        let peak = self.rt.block_on(s.finish())?;
        let line = format!("{what}: {peak}");
        say(&line);
        self.report
            .notes
            .push(format!("Sessions (pg_stat_activity) {line}."));
        Ok(())
    }

    fn measure(&mut self, run: &Run<'_>, w: Workload, c: usize) -> Result<()> {
        self.measure_groups(run, w, c, &[])
    }

    /// [`Ctx::measure`], and with `groups` (the variant of each group of the targets, see
    /// [`load::grouped`]) each group's requests also recorded apart, as a run of that
    /// variant.
    fn measure_groups(
        &mut self,
        run: &Run<'_>,
        w: Workload,
        c: usize,
        groups: &[&'static str],
    ) -> Result<()> {
        let outcome = self.rt.block_on(load::run(
            run.server.addr,
            run.targets.clone(),
            w,
            c,
            load::Window {
                warmup: Duration::from_secs(self.args.warmup),
                duration: Duration::from_secs(self.args.duration.max(1)),
                phase: (!groups.is_empty() && self.args.mix_phase_ms > 0)
                    .then(|| Duration::from_millis(self.args.mix_phase_ms)),
            },
            Some(run.server.pid()),
        ))?;
        say(format!(
            "{} orgs, {} {}, {} c={c}{}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, errors {}{}{}",
            run.orgs,
            run.backend,
            run.variant,
            w.name(),
            if self.args.rounds > 1 {
                format!(" round {}", run.round)
            } else {
                String::new()
            },
            outcome.rps,
            outcome.p50_ms,
            outcome.p99_ms,
            outcome.errors,
            outcome
                .peak_rss_mb
                .map(|m| format!(", RSS {m:.1} MB"))
                .unwrap_or_default(),
            outcome
                .cpu_per_request
                .map(|c| format!(
                    ", CPU per request {:.0} us (server {}, postgres {:.0})",
                    c.machine_us,
                    c.server_us.map_or("-".into(), |s| format!("{s:.0}")),
                    c.postgres_us
                ))
                .unwrap_or_default()
        ));
        if let Some(e) = outcome.error_samples.first() {
            say(format!("  first error: {e}"));
        }
        for (variant, g) in groups.iter().zip(&outcome.groups) {
            say(format!(
                "  {variant}: {} requests, mean {:.2} ms, p50 {:.2} ms, p99 {:.2} ms, errors {}",
                g.requests, g.mean_ms, g.p50_ms, g.p99_ms, g.errors
            ));
            self.report.runs.push(RunRecord {
                orgs: run.orgs,
                backend: run.backend,
                variant,
                workload: w,
                concurrency: c,
                round: run.round,
                outcome: g.clone(),
            });
        }
        self.report.runs.push(RunRecord {
            orgs: run.orgs,
            backend: run.backend,
            variant: run.variant,
            workload: w,
            concurrency: c,
            round: run.round,
            outcome,
        });
        Ok(())
    }
}

fn bench_sqlite(ctx: &mut Ctx<'_>, orgs: usize) -> Result<()> {
    let args = ctx.args;
    let spec = spec(args, orgs);
    let dir = server::fresh_dir(&args.work_dir, &format!("sqlite-{orgs}"))?;
    say(format!(
        "{orgs} orgs, sqlite: seeding {} tickets ({} in the large org) into {}",
        spec.tickets,
        spec.large_tickets(),
        dir.display()
    ));
    let seeded = ctx
        .rt
        .block_on(seed::sqlite(&dir.join("orgwall.db"), &spec))?;
    say(format!("seeded in {:.1} s", seeded.secs));
    ctx.report.datasets.push(DatasetRecord {
        orgs,
        backend: "sqlite",
        tickets: spec.tickets,
        large_org_tickets: spec.large_tickets(),
        seed_secs: seeded.secs,
    });
    let targets = load::targets(&seeded.orgs)?;
    let server = Server::start(&args.orgwall_bin, &Backend::Sqlite(&dir))?;
    say(format!("server on {} (pid {})", server.addr, server.pid()));
    ctx.touch(&server, &targets)?;
    let result = (|| -> Result<()> {
        for &w in &args.workloads {
            for round in 1..=args.rounds.max(1) {
                let run = Run {
                    server: &server,
                    targets: &targets,
                    orgs,
                    backend: "sqlite",
                    variant: "-",
                    round,
                };
                ctx.measure(&run, w, args.concurrency)?;
            }
        }
        if args.rss_concurrency > 0 {
            let run = Run {
                server: &server,
                targets: &targets,
                orgs,
                backend: "sqlite",
                variant: "-",
                round: 1,
            };
            for &w in &args.rss_workloads {
                ctx.measure(&run, w, args.rss_concurrency)?;
            }
        }
        Ok(())
    })();
    if result.is_err() {
        say(format!("server log:\n{}", server.log_tail()));
    }
    server.stop()?;
    result?;
    if !args.keep {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}

/// Turns row-level security off (`on == false`: `NO FORCE`, `DISABLE`) or back on
/// (`ENABLE`, `FORCE`) on every tenant table of the bench database (owner connection):
/// the tables that have the `org_isolation` policy. Returns how many tables.
async fn rls_switch(url: &str, on: bool) -> Result<usize> {
    let client = seed::pg_connect(url).await?;
    let tables: Vec<String> = client
        .query(
            "SELECT DISTINCT format('%I.%I', schemaname, tablename) FROM pg_policies
             WHERE policyname = 'org_isolation' AND schemaname = current_schema()",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if tables.is_empty() {
        bail!("no table has the org_isolation policy: is this an orgwall database?");
    }
    let sql: String = tables
        .iter()
        .map(|t| {
            if on {
                format!("ALTER TABLE {t} ENABLE ROW LEVEL SECURITY; ALTER TABLE {t} FORCE ROW LEVEL SECURITY;")
            } else {
                format!("ALTER TABLE {t} NO FORCE ROW LEVEL SECURITY; ALTER TABLE {t} DISABLE ROW LEVEL SECURITY;")
            }
        })
        .collect();
    client.batch_execute(&sql).await?;
    Ok(tables.len())
}

/// Tables with row-level security enabled and forced.
async fn rls_tables(url: &str) -> Result<i64> {
    let client = seed::pg_connect(url).await?;
    Ok(client
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind = 'r' AND c.relrowsecurity AND c.relforcerowsecurity
               AND n.nspname = current_schema()",
            &[],
        )
        .await?
        .get(0))
}

fn bench_postgres(ctx: &mut Ctx<'_>, orgs: usize, admin: &str) -> Result<()> {
    let args = ctx.args;
    let spec = spec(args, orgs);
    let name = format!("orgwall_bench_{orgs}");
    let url = ctx.rt.block_on(seed::pg_recreate(admin, &name))?;
    say(format!(
        "{orgs} orgs, postgres: seeding {} tickets ({} in the large org) into database {name}",
        spec.tickets,
        spec.large_tickets()
    ));
    let seeded = ctx
        .rt
        .block_on(seed::postgres(&url, &args.app_role, &spec))?;
    say(format!("seeded in {:.1} s", seeded.secs));
    ctx.report.datasets.push(DatasetRecord {
        orgs,
        backend: "postgres",
        tickets: spec.tickets,
        large_org_tickets: spec.large_tickets(),
        seed_secs: seeded.secs,
    });
    let targets = load::targets(&seeded.orgs)?;
    let dir = server::fresh_dir(&args.work_dir, &format!("postgres-{orgs}"))?;
    let with_on = args.rls.contains(&Rls::On);
    let with_off = args.rls.contains(&Rls::Off);
    let n = ctx.rt.block_on(rls_tables(&url))?;
    say(format!(
        "row-level security enabled and forced on {n} tables"
    ));
    let turns_copy = match args.rls_turns && with_on && with_off {
        true => Some(
            ctx.rt
                .block_on(rls_turns_copy(admin, &url, &name, args.rls_turns_sides))?,
        ),
        false => None,
    };
    let result = (|| -> Result<()> {
        let server = Server::start(&args.orgwall_bin, &Backend::Postgres(&url, &dir))?;
        say(format!("server on {} (pid {})", server.addr, server.pid()));
        if args.cold_first && with_on {
            // Each round against a server of its own, started afresh (an empty access
            // cache): the first round's is the one the rest of the run uses.
            for round in 1..=args.rounds.max(1) {
                let fresh = match round {
                    1 => None,
                    _ => Some(Server::start(
                        &args.orgwall_bin,
                        &Backend::Postgres(&url, &dir),
                    )?),
                };
                let run = Run {
                    server: fresh.as_ref().unwrap_or(&server),
                    targets: &targets,
                    orgs,
                    backend: "postgres",
                    variant: "cold",
                    round,
                };
                ctx.measure(&run, Workload::Detail, args.concurrency)?;
            }
        }
        if args.all_cold && with_on {
            let uncached = Server::start_with(
                &args.orgwall_bin,
                &Backend::Postgres(&url, &dir),
                &[("ORGWALL_NO_ACCESS_CACHE", "true")],
            )?;
            say(format!(
                "server without access cache on {} (pid {})",
                uncached.addr,
                uncached.pid()
            ));
            for round in 1..=args.rounds.max(1) {
                let run = Run {
                    server: &uncached,
                    targets: &targets,
                    orgs,
                    backend: "postgres",
                    variant: "all cold",
                    round,
                };
                ctx.measure(&run, Workload::Detail, args.concurrency)?;
            }
        }
        ctx.touch(&server, &targets)?;
        let r = (|| -> Result<()> {
            if let Some(copy_url) = &turns_copy {
                let swapped = args.rls_turns_sides == RlsSides::Swapped;
                if swapped {
                    let n = ctx.rt.block_on(rls_switch(&url, false))?;
                    say(format!("{name}: RLS off on {n} tables for the turns"));
                }
                rls_turns(ctx, &server, copy_url, &targets, orgs)?;
                if swapped {
                    // What runs after the turns measures the wall as migrate leaves it.
                    ctx.rt.block_on(rls_switch(&url, true))?;
                }
            }
            // Else RLS on and off back to back for each workload, against the same
            // server: the switch is DDL on the bench database, which PostgreSQL's plan
            // cache follows (prepared statements are re-planned). Odd rounds measure on
            // first, even rounds off first.
            let separate = turns_copy.is_none();
            for &w in args.workloads.iter().filter(|_| separate) {
                for round in 1..=args.rounds.max(1) {
                    let order: &[Rls] = match (with_on, with_off, round % 2 == 1) {
                        (true, true, true) => &[Rls::On, Rls::Off],
                        (true, true, false) => &[Rls::Off, Rls::On],
                        (true, false, _) => &[Rls::On],
                        (false, true, _) => &[Rls::Off],
                        (false, false, _) => &[],
                    };
                    for v in order {
                        let variant = match v {
                            Rls::On => "rls on",
                            Rls::Off => "rls off",
                        };
                        if *v == Rls::Off {
                            let n = ctx.rt.block_on(rls_switch(&url, false))?;
                            if !ctx.report.notes.iter().any(|n| n.starts_with("RLS off")) {
                                ctx.report.notes.push(format!(
                                    "RLS off: for each `rls off` run the bench ran `ALTER TABLE ... NO FORCE ROW LEVEL SECURITY; ALTER TABLE ... DISABLE ROW LEVEL SECURITY` on every table of its own database ({n} tables) as the owner, against the same running server (started with --no-migrate), and switched it back on (`ENABLE` + `FORCE`) right after; the server role then reads without policies. `orgwall migrate` re-asserted the wall at the end."
                                ));
                            }
                        }
                        let run = Run {
                            server: &server,
                            targets: &targets,
                            orgs,
                            backend: "postgres",
                            variant,
                            round,
                        };
                        let measured = ctx.measure(&run, w, args.concurrency);
                        if *v == Rls::Off {
                            ctx.rt.block_on(rls_switch(&url, true))?;
                        }
                        measured?;
                    }
                }
            }
            if args.rss_concurrency > 0 {
                let run = Run {
                    server: &server,
                    targets: &targets,
                    orgs,
                    backend: "postgres",
                    variant: "rls on",
                    round: 1,
                };
                for &w in &args.rss_workloads {
                    ctx.measure(&run, w, args.rss_concurrency)?;
                }
            }
            Ok(())
        })();
        if r.is_err() {
            say(format!("server log:\n{}", server.log_tail()));
        }
        server.stop()?;
        r?;
        if !args.no_pgbench && !args.pgbench.is_empty() {
            run_pgbench(ctx, &url, &seeded.orgs, orgs, &dir)?;
        }
        if !args.placements.is_empty() {
            compare_placements(ctx, &url, &seeded.orgs, &targets, orgs, &dir)?;
        }
        Ok(())
    })();
    // Leave the wall as migrate makes it, whatever happened.
    let restored = ctx.rt.block_on(restore_rls(&url, &args.app_role));
    result?;
    restored?;
    let n = ctx.rt.block_on(rls_tables(&url))?;
    say(format!(
        "row-level security enabled and forced on {n} tables after the run"
    ));
    if !args.keep {
        ctx.rt.block_on(seed::pg_drop(admin, &name))?;
        if turns_copy.is_some() {
            ctx.rt
                .block_on(seed::pg_drop(admin, &turns_copy_name(&name)))?;
        }
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}

/// `--rls-turns`: a copy of the bench database at `url` (its name, `name`), made before
/// any server connects to it (the copy needs the database without sessions), with RLS off
/// on the side `sides` names. Returns the copy's URL.
async fn rls_turns_copy(admin: &str, url: &str, name: &str, sides: RlsSides) -> Result<String> {
    let off_name = turns_copy_name(name);
    let c = seed::pg_connect(admin).await?;
    c.batch_execute(&format!("DROP DATABASE IF EXISTS {off_name} WITH (FORCE)"))
        .await?;
    // The seed's own sessions may not have ended yet.
    c.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = $1 AND pid <> pg_backend_pid()",
        &[&name],
    )
    .await?;
    c.batch_execute(&format!("CREATE DATABASE {off_name} TEMPLATE {name}"))
        .await?;
    let copy_url = seed::pg_db_url(url, &off_name)?;
    // (`swapped` turns the bench database's off just before the turns, so that what its
    // server measures before them, `--cold-first`, runs with the wall as migrate left it.)
    if sides == RlsSides::Copy {
        let n = rls_switch(&copy_url, false).await?;
        say(format!("{off_name}: RLS off on {n} tables"));
    }
    say(format!("{off_name}: a copy of {name}"));
    Ok(copy_url)
}

/// The name of the bench database `name`'s copy for `--rls-turns`.
fn turns_copy_name(name: &str) -> String {
    format!("{name}_rls_off")
}

/// `--rls-turns`: the bench database's server (`server`) and a second server on its copy
/// at `copy_url` (see [`rls_turns_copy`]) taking turns within each run of each workload.
fn rls_turns(
    ctx: &mut Ctx<'_>,
    server: &Server,
    copy_url: &str,
    targets: &std::sync::Arc<Vec<load::Target>>,
    orgs: usize,
) -> Result<()> {
    let args = ctx.args;
    let off_dir = server::fresh_dir(&args.work_dir, "postgres-rls-off")?;
    let off = Server::start(&args.orgwall_bin, &Backend::Postgres(copy_url, &off_dir))?;
    let r = (|| -> Result<()> {
        let off_targets = std::sync::Arc::new(load::elsewhere(targets, off.addr, 1));
        ctx.touch(&off, &off_targets)?;
        let both = std::sync::Arc::new(
            targets
                .iter()
                .cloned()
                .chain(off_targets.iter().cloned())
                .collect(),
        );
        for &w in &args.workloads {
            for round in 1..=args.rounds.max(1) {
                let run = Run {
                    server,
                    targets: &both,
                    orgs,
                    backend: "postgres",
                    variant: "turns rls",
                    round,
                };
                // The first group is the bench database's server, the second its copy's.
                let groups = match args.rls_turns_sides {
                    RlsSides::Copy => ["turns rls on", "turns rls off"],
                    RlsSides::Swapped => ["turns rls off", "turns rls on"],
                    RlsSides::Neither => ["turns rls on", "turns rls on (copy)"],
                };
                ctx.measure_groups(&run, w, args.concurrency, &groups)?;
            }
        }
        Ok(())
    })();
    if r.is_err() {
        say(format!("the copy's server log:\n{}", off.log_tail()));
    }
    off.stop()?;
    if !args.keep {
        std::fs::remove_dir_all(&off_dir)?;
    }
    ctx.report.notes.push(format!(
        "RLS in turns: a copy of the bench database made after seeding (`CREATE DATABASE ... TEMPLATE`), served by a second server; {}; in each run the two took turns in phases of {} ms (each phase's requests to one server only), each side's req/s its requests over its phases' share of the window.",
        match args.rls_turns_sides {
            RlsSides::Copy => "`turns rls off` is the copy, with `NO FORCE` and `DISABLE ROW LEVEL SECURITY` on every tenant table",
            RlsSides::Swapped => "sides swapped: `turns rls off` is the bench database (the first server), with `NO FORCE` and `DISABLE ROW LEVEL SECURITY` on every tenant table, `turns rls on` the copy",
            RlsSides::Neither => "an A/A check: RLS on in both, `turns rls on (copy)` the copy",
        },
        args.mix_phase_ms
    ));
    r
}

/// `--placements`: every org placed in each placement in turn (rows and all, see
/// [`placed`]), a server started afresh on it, the placement workloads measured; rounds
/// alternate the order. With `--placement-mix`, the orgs in all of them at once instead
/// (see [`Args::placement_mix`]). Every org ends back in the shared tables.
fn compare_placements(
    ctx: &mut Ctx<'_>,
    url: &str,
    seeded: &[dataset::Org],
    targets: &std::sync::Arc<Vec<load::Target>>,
    orgs: usize,
    dir: &Path,
) -> Result<()> {
    let args = ctx.args;
    let ids: Vec<uuid::Uuid> = seeded.iter().map(|o| o.id).collect();
    let databases: Vec<String> = ids
        .iter()
        .map(|&id| orgwall_store::placement::database_name(orgwall_core::OrgId::from_uuid(id)))
        .collect();
    let control = url::Url::parse(url)?
        .path()
        .trim_start_matches('/')
        .to_owned();
    let rt = ctx.rt;
    let sample = |what: String| {
        let (control, databases) = (control.clone(), databases.clone());
        rt.block_on(async move {
            // The control database's URL is a superuser's: it sees every session.
            let s = sessions::Sampler::start(url, &control, databases).await?;
            anyhow::Ok((what, s))
        })
    };
    let kinds = &args.placements;
    for round in 1..=args.rounds.max(1) {
        // Each layout (the placement of each org) is served by a server of its own.
        let layouts: Vec<Vec<PlacementArg>> = if args.placement_mix {
            vec![(0..ids.len())
                .filter_map(|i| kinds.get((i + round - 1) % kinds.len()).copied())
                .collect()]
        } else {
            let mut order = kinds.clone();
            if round % 2 == 0 {
                order.reverse();
            }
            order.into_iter().map(|p| vec![p; ids.len()]).collect()
        };
        for layout in layouts {
            let kinds_here: Vec<PlacementArg> = kinds
                .iter()
                .copied()
                .filter(|k| layout.contains(k))
                .collect();
            let label = kinds_here
                .iter()
                .map(|p| p.kind().to_string())
                .collect::<Vec<_>>()
                .join(" + ");
            let placing = sample(format!("placing {orgs} orgs in {label}"))?;
            for &p in &kinds_here {
                let these: Vec<uuid::Uuid> = ids
                    .iter()
                    .zip(&layout)
                    .filter(|(_, k)| **k == p)
                    .map(|(id, _)| *id)
                    .collect();
                let secs =
                    ctx.rt
                        .block_on(placed::place_all(url, &args.app_role, &these, &p.kind()))?;
                say(format!(
                    "{} orgs placed in {} (rows and all) in {secs:.1} s",
                    these.len(),
                    p.kind()
                ));
            }
            ctx.sessions(placing)?;
            let serving = sample(format!("serving {orgs} orgs in {label} (round {round})"))?;
            let server = Server::start(&args.orgwall_bin, &Backend::Postgres(url, dir))?;
            let r = (|| -> Result<()> {
                ctx.touch(&server, targets)?;
                let (grouped, variant, groups) = match args.placement_mix {
                    true => (
                        load::grouped(targets, |i| {
                            layout
                                .get(i)
                                .and_then(|k| kinds.iter().position(|x| x == k))
                                .unwrap_or(0)
                        }),
                        if args.mix_phase_ms > 0 {
                            "turns"
                        } else {
                            "mixed"
                        },
                        kinds
                            .iter()
                            .map(|k| k.mixed_variant(args.mix_phase_ms > 0))
                            .collect(),
                    ),
                    false => (
                        targets.clone(),
                        layout.first().map_or("placed", |p| p.variant()),
                        Vec::new(),
                    ),
                };
                for &w in &args.placement_workloads {
                    let run = Run {
                        server: &server,
                        targets: &grouped,
                        orgs,
                        backend: "postgres",
                        variant,
                        round,
                    };
                    ctx.measure_groups(&run, w, args.concurrency, &groups)?;
                }
                Ok(())
            })();
            if r.is_err() {
                say(format!("server log:\n{}", server.log_tail()));
            }
            server.stop()?;
            ctx.sessions(serving)?;
            r?;
        }
    }
    ctx.rt.block_on(placed::place_all(
        url,
        &args.app_role,
        &ids,
        &orgwall_store::placement::Kind::Shared,
    ))?;
    ctx.report.notes.push(match args.placement_mix {
        true => format!(
            "Placements, mixed: in round r org i was placed in the ((i + r - 1) mod {}) th of {} with its rows (the bench copies them out, places the empty org with `placement::set`, copies them in; see crates/orgwall-bench/src/placed.rs), then one server was started afresh and touched every org, and each workload ran over all orgs. {} RLS on.",
            kinds.len(),
            kinds.iter().map(|k| k.kind().to_string()).collect::<Vec<_>>().join(", "),
            match args.mix_phase_ms {
                0 => "Every request went to any org at random: each `mixed ...` run is the requests of that placement's orgs within such a run (timed in the same window, under the same load), compared by mean latency; `mixed` is all of them.".to_owned(),
                ms => format!("The placements took turns in phases of {ms} ms (each phase's requests to one placement's orgs only): each `turns ...` run is that placement's requests over its phases' share of the window (its req/s as if it had the server to itself, in turns that a drift of the machine's speed falls on alike); `turns` is all of them."),
            }
        ),
        false => format!(
            "Placements: for each `placed ...` variant every org was placed there with its rows (the bench copies them out, places the empty org with `placement::set`, copies them in; see crates/orgwall-bench/src/placed.rs), then a server was started afresh and touched every org before the runs; RLS on. Orders: {}.",
            if args.rounds > 1 { "alternating per round" } else { "as given" }
        ),
    });
    Ok(())
}

async fn restore_rls(url: &str, app_role: &str) -> Result<()> {
    let db = orgwall_store::Db::open(
        &orgwall_store::DbConfig::Postgres {
            url: url.to_owned(),
            app_role: app_role.to_owned(),
            pool_size: 1,
            placement_budget: None,
        },
        orgwall_store::catalog(),
    )
    .await?;
    db.migrate().await?;
    Ok(())
}

fn run_pgbench(
    ctx: &mut Ctx<'_>,
    url: &str,
    seeded: &[dataset::Org],
    orgs: usize,
    dir: &Path,
) -> Result<()> {
    let args = ctx.args;
    let pairs = ctx.rt.block_on(pgbench::load_pairs(url, seeded))?;
    if args.pgbench.iter().any(|m| m.naive_login()) {
        ctx.rt
            .block_on(pgbench::ensure_naive_login(url, &args.app_role))?;
    }
    let max_conn: usize = ctx.rt.block_on(async {
        let c = seed::pg_connect(url).await?;
        let v: String = c.query_one("SHOW max_connections", &[]).await?.get(0);
        anyhow::Ok(v.parse().unwrap_or(100))
    })?;
    let clients = args.concurrency.min(max_conn.saturating_sub(10).max(1));
    if clients < args.concurrency {
        ctx.report.notes.push(format!(
            "pgbench ran {clients} clients, not {}: max_connections is {max_conn}",
            args.concurrency
        ));
    }
    let ours = ctx
        .report
        .median(
            orgs,
            "postgres",
            "rls on",
            Workload::Detail,
            args.concurrency,
        )
        .map(|m| m.rps);
    for mode in &args.pgbench {
        say(format!(
            "{orgs} orgs, pgbench {mode:?} c={clients} for {} s",
            args.duration
        ));
        let run = pgbench::run(
            url,
            dir,
            *mode,
            &args.app_role,
            clients,
            args.duration.max(1),
            pairs,
        );
        let (o, command) = match run {
            Ok(x) => x,
            Err(e) => {
                say(format!("pgbench failed: {e:#}"));
                ctx.report
                    .notes
                    .push(format!("pgbench {mode:?} failed at {orgs} orgs: {e}"));
                continue;
            }
        };
        let ratio = ours.map(|r| r / o.tps);
        say(format!(
            "pgbench {mode:?}: {:.0} tps{}",
            o.tps,
            ratio
                .map(|r| format!(", ours / pgbench = {r:.2}"))
                .unwrap_or_default()
        ));
        ctx.report.pgbench.push(PgbenchRecord {
            orgs,
            mode: *mode,
            concurrency: clients,
            tps: o.tps,
            latency_avg_ms: o.latency_avg_ms,
            ours_rps: ours,
            ratio,
            command,
        });
    }
    ctx.rt.block_on(pgbench::drop_pairs(url))?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("orgwall-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<()> {
    let mut args = Args::parse();
    if let Some(json) = &args.chart_from {
        let png = chart::redraw(json)?;
        say(format!("drew {}", png.display()));
        return Ok(());
    }
    if !args.moves.is_empty() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        // The mover's own lines (where each cut-over's fence time went) with
        // TEST_LOG=orgwall_tenancy::postgres::mover=info.
        orgwall_testkit::init_logs();
        let pace = args
            .move_copy_rate
            .as_deref()
            .map(|r| {
                orgwall_store::placement::parse_copy_rate(r)
                    .map(|bytes| (r.trim().to_owned(), bytes))
                    .map_err(|e| anyhow::anyhow!("--move-copy-rate: {e}"))
            })
            .transpose()?;
        let setup = moves::Setup {
            copy_rate: pace.clone(),
            baseline_s: args.move_baseline,
            write_rate: args.move_write_rate,
            probe_s: args.move_probe_snapshot,
            chunk_rows: args.move_chunk_rows,
            two_machines: args.move_two_machines,
            own_thread: args.move_own_thread,
            sample_waits: args.move_sample_waits,
        };
        let runs = rt.block_on(moves::run(&args.moves, &setup, say))?;
        let (commit, _) = report::commit();
        let command: Vec<String> = std::env::args().collect();
        let md = moves::markdown(&runs, &command.join(" "), &commit);
        println!("{md}");
        if !args.no_write {
            std::fs::create_dir_all(&args.out)?;
            // Runs of one commit with other sizes or paces do not overwrite each other.
            let sizes: Vec<String> = args.moves.iter().map(u64::to_string).collect();
            let stem = args.out.join(format!(
                "{}-{commit}-moves-{}{}",
                chrono::Utc::now().format("%Y-%m-%d"),
                sizes.join("-"),
                pace.as_ref()
                    .map(|(mb, _)| format!("-paced{mb}"))
                    .unwrap_or_default()
                    + &(if args.move_probe_snapshot > 0 {
                        format!("-probe{}", args.move_probe_snapshot)
                    } else {
                        String::new()
                    })
                    + &args
                        .move_chunk_rows
                        .map(|n| format!("-chunk{n}"))
                        .unwrap_or_default()
                    + if args.move_two_machines {
                        "-two-machines"
                    } else {
                        ""
                    }
                    + if args.move_own_thread {
                        "-own-thread"
                    } else {
                        ""
                    }
            ));
            // (Not `with_extension`: a pace in decimals has a dot of its own.)
            let file = |ext: &str| {
                let mut f = stem.clone().into_os_string();
                f.push(ext);
                std::path::PathBuf::from(f)
            };
            std::fs::write(file(".md"), &md)?;
            std::fs::write(file(".json"), serde_json::to_string_pretty(&runs)?)?;
            say(format!("wrote {}", file(".md").display()));
        }
        return Ok(());
    }
    if args.full && !args.orgs.contains(&100_000) {
        args.orgs.push(100_000);
    }
    args.orgs.sort_unstable();
    args.orgs.dedup();
    if args.orgs.iter().any(|&n| n == 0 || n > 100_000) {
        bail!("--orgs: each count must be 1..=100000");
    }
    if !args.orgwall_bin.exists() {
        bail!(
            "{} does not exist: build it with `cargo build --release -p orgwall` (scripts/bench does)",
            args.orgwall_bin.display()
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.driver_threads.max(1))
        .enable_all()
        .build()?;
    let use_pg = args.backends.contains(&BackendArg::Postgres);
    let admin = match (&args.pg_url, use_pg) {
        (Some(u), true) => Some(u.clone()),
        (None, true) => bail!(
            "PostgreSQL needs --pg-url or ORGWALL_BENCH_DATABASE_URL (scripts/bench finds one)"
        ),
        (_, false) => None,
    };
    let pg_version = match &admin {
        Some(a) => Some(rt.block_on(async {
            let c = seed::pg_connect(a).await?;
            let v: String = c.query_one("SHOW server_version", &[]).await?.get(0);
            anyhow::Ok(v)
        })?),
        None => None,
    };
    let (commit, dirty) = report::commit();
    // The command as given, but the admin URL (it may hold a password) left out.
    let mut words: Vec<String> = Vec::new();
    for a in std::env::args() {
        let after_flag = words.last().is_some_and(|w| w == "--pg-url");
        words.push(if after_flag {
            "URL".into()
        } else if a.starts_with("--pg-url=") {
            "--pg-url=URL".into()
        } else {
            a
        });
    }
    let command = words.join(" ");
    let mut config = serde_json::to_value(&args)?;
    if let Some(obj) = config.as_object_mut() {
        obj.remove("pg_url");
        obj.insert("command".into(), command.into());
    }
    let mut report = Report {
        tool: "orgwall-bench",
        started_at: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        finished_at: String::new(),
        commit,
        dirty,
        machine: Machine::detect(pg_version),
        config,
        datasets: Vec::new(),
        runs: Vec::new(),
        pgbench: Vec::new(),
        targets: Vec::new(),
        migrations: Vec::new(),
        notes: vec![format!(
            "Load generator: {} connection(s) per run over loopback (HTTP/1.1 keep-alive, hyper), {} driver thread(s) on the same machine as the server and PostgreSQL; warmup {} s, measured {} s; random org per request with that org's own API key (role admin){}.",
            args.concurrency, args.driver_threads, args.warmup, args.duration,
            if args.touch_all_orgs { "; every org was sent one request before the workloads (warm access cache)" } else { "" }
        )],
    };
    if report
        .machine
        .loadavg_before
        .split_whitespace()
        .next()
        .and_then(|l| l.parse::<f64>().ok())
        .unwrap_or(0.0)
        > 0.5
    {
        report.notes.push(format!(
            "The machine was not idle when the run started (load average {}): absolute numbers are noisy.",
            report.machine.loadavg_before
        ));
    }
    std::fs::create_dir_all(&args.work_dir)
        .with_context(|| format!("cannot create {}", args.work_dir.display()))?;
    let mut ctx = Ctx {
        args: &args,
        rt: &rt,
        report: &mut report,
    };
    let mut failures = Vec::new();
    if let (Some(m), Some(a)) = (&args.migrate_placements, &admin) {
        let (schemas, databases) = (
            m.first().copied().unwrap_or(0),
            m.get(1).copied().unwrap_or(0),
        );
        match rt.block_on(migrations::run(
            a,
            &args.app_role,
            schemas,
            databases,
            args.keep,
            say,
        )) {
            Ok(t) => ctx.report.migrations.push(t),
            Err(e) => {
                say(format!("migrations failed: {e:#}"));
                ctx.report.notes.push(format!("migrations failed: {e}"));
                failures.push("migrations".to_string());
            }
        }
    }
    let sizes: &[usize] = if args.no_workloads { &[] } else { &args.orgs };
    for &orgs in sizes {
        for b in &args.backends {
            let r = match (b, &admin) {
                (BackendArg::Sqlite, _) => bench_sqlite(&mut ctx, orgs),
                (BackendArg::Postgres, Some(a)) => bench_postgres(&mut ctx, orgs, a),
                (BackendArg::Postgres, None) => Ok(()),
            };
            if let Err(e) = r {
                say(format!("{orgs} orgs, {b:?} failed: {e:#}"));
                ctx.report
                    .notes
                    .push(format!("{orgs} orgs, {b:?} failed: {e}"));
                failures.push(format!("{orgs} orgs {b:?}"));
            }
        }
    }
    report.machine.loadavg_after = report::loadavg();
    report.finished_at = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    report.check_targets(args.concurrency, args.rss_concurrency);
    let md = report.markdown();
    println!("{md}");
    if !args.no_write {
        let (json, mdp) = report.write(&args.out)?;
        say(format!("wrote {} and {}", json.display(), mdp.display()));
        let png = json.with_extension("png");
        match chart::draw(&serde_json::to_value(&report)?, &png) {
            Ok(()) => say(format!("drew {}", png.display())),
            Err(e) => say(format!("no chart: {e:#}")),
        }
    }
    if !failures.is_empty() {
        bail!("failed: {}", failures.join(", "));
    }
    Ok(())
}
