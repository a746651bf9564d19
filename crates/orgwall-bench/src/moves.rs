//! The online-move benchmark (issue 13): `orgwall-bench --moves 10000,100000,1000000`.
//!
//! For each size, on throwaway clusters of its own (`initdb`, `wal_level = logical`, the
//! test kit's [`PgCluster`]): the demo world, then Globex given that many tickets (their
//! history-free rows plus the search terms their triggers derive), then two moves while
//! writers work:
//!
//! 1. *one server*: Globex from the shared tables to a database of its own on the same
//!    server;
//! 2. *two servers*: from that database to a database of its own on a second server.
//!
//! With `--move-two-machines` the two servers stand for two machines (each kept to one
//! of this machine's two CPUs, the bench with the first) and only a move across them is
//! run, from the shared tables: see [`Setup::two_machines`].
//!
//! During each move four writers on Globex and four on Acme create tickets (through the
//! library, as the server's handlers do: verify the member, one write transaction,
//! commit), each write timed: on a fixed schedule of `--move-write-rate` writes a second
//! per org (open loop, the default: a write's latency counts from when it was due, so the
//! machine is not saturated by the writers themselves and a pause shows in every write it
//! delayed), or back to back (closed loop, rate 0). Reported per move: the total time, the rows
//! moved, and the writers' latency (p50, p99, max) in the seconds before the move and
//! during it, for the moving org (its write pause is the extra latency over its own
//! baseline, the cut-over's fence the largest part of it) and for the other org.

use anyhow::{Context, Result};
use orgwall_core::{OrgId, UserId};
use orgwall_store::placement::{self, Kind};
use orgwall_store::repo::{projects, tickets};
use orgwall_store::{access, Db, DbConfig};
use orgwall_testkit::cluster::{log_entries, PgCluster};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SETTINGS: &[&str] = &[
    "wal_level = logical",
    "shared_buffers = 512MB",
    "max_wal_size = 8GB",
    "checkpoint_timeout = 30min",
    "maintenance_work_mem = 256MB",
    // What the servers did at the moments of the slowest writes (see [`SlowWrite`]).
    "log_min_duration_statement = 20",
    "log_autovacuum_min_duration = 0",
    "log_checkpoints = on",
    // A lock waited on for 50 ms is logged with who holds it (`log_lock_waits`).
    "deadlock_timeout = '50ms'",
    "log_timezone = 'UTC'",
    "log_line_prefix = '%m [%p] %q%d %a: '",
];

/// How many of each org's slowest writes during a move are shown.
const SLOWEST: usize = 5;

/// Latency figures of a set of writes, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub writes: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

fn latency(mut v: Vec<Duration>) -> Latency {
    v.sort_unstable();
    let at = |q: f64| -> f64 {
        if v.is_empty() {
            return 0.0;
        }
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        v.get(i.min(v.len() - 1))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Latency {
        writes: v.len(),
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        max_ms: v.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
    }
}

/// One move measured.
#[derive(Debug, Clone, Serialize)]
pub struct MoveRun {
    pub tickets: u64,
    /// `one server` or `two servers`.
    pub between: &'static str,
    pub from: String,
    pub to: String,
    /// Data-plane rows of the org moved (every table, derived ones included).
    pub rows: i64,
    pub total_s: f64,
    /// How long the cut-over held the moving org's writes (the fence).
    pub fence_ms: Option<i64>,
    pub moving_before: Latency,
    pub moving_during: Latency,
    pub other_before: Latency,
    pub other_during: Latency,
    /// Writes of the moving org refused with "send it again" during the move.
    pub moving_refused: usize,
    /// The copy's pace (MB/s), if paced.
    pub copy_rate_mb: Option<String>,
    /// Seconds of writes measured before the move (the *before* columns).
    pub baseline_s: u64,
    /// Writes started per second per org (open loop); `None`: back to back.
    pub write_rate: Option<u64>,
    /// The writes of both orgs by the mover's phase they began in.
    pub by_phase: Vec<PhaseRun>,
    /// With `--move-probe-snapshot`: the writes of both orgs before the move in three
    /// windows: the baseline, a repeatable-read snapshot held open in the database the
    /// move reads (nothing else running), and as long again after it ended.
    pub probe: Vec<PhaseRun>,
    /// The baseline in two halves, each with no move running: how far two windows of
    /// the same writes differ by themselves (the noise a phase's figures stand against).
    pub baseline_halves: Vec<PhaseRun>,
    /// The slowest writes of each org during the move.
    pub slowest: Vec<SlowWrite>,
}

/// A clock to print an [`Instant`] as the servers' logs print time.
#[derive(Debug, Clone, Copy)]
struct WallClock {
    then: Instant,
    utc: chrono::DateTime<chrono::Utc>,
}

impl WallClock {
    fn now() -> WallClock {
        WallClock {
            then: Instant::now(),
            utc: chrono::Utc::now(),
        }
    }

    fn at(&self, t: Instant) -> chrono::NaiveDateTime {
        let since =
            chrono::Duration::from_std(t.saturating_duration_since(self.then)).unwrap_or_default();
        let before =
            chrono::Duration::from_std(self.then.saturating_duration_since(t)).unwrap_or_default();
        (self.utc + since - before).naive_utc()
    }
}

/// The stamp at the head of a server's log line (`log_line_prefix` `%m`, UTC).
fn stamped(line: &str) -> Option<chrono::NaiveDateTime> {
    let head = line.get(..23)?;
    chrono::NaiveDateTime::parse_from_str(head, "%Y-%m-%d %H:%M:%S%.3f").ok()
}

/// The entries of a server's log (a head line and the `DETAIL:`, `STATEMENT:`, ...
/// lines after it from the same process) that overlap `[start, end]`: a statement's
/// `duration:` line is stamped when it ended and spans its duration back; any other entry
/// counts from its stamp to `span` after (half a second for a server's log: when what it
/// tells of was under way; a sample's interval for [`sample_waits`]'s).
fn overlapping(
    text: &str,
    start: chrono::NaiveDateTime,
    end: chrono::NaiveDateTime,
    span: Duration,
) -> Vec<&str> {
    let span = chrono::Duration::from_std(span).unwrap_or_default();
    log_entries(text)
        .into_iter()
        .filter(|entry| {
            let Some((head, t)) = entry.first().and_then(|h| Some((h, stamped(h)?))) else {
                return false;
            };
            let took = head
                .split("duration: ")
                .nth(1)
                .and_then(|r| r.split(" ms").next())
                .and_then(|ms| ms.parse::<f64>().ok());
            let (from, to) = match took {
                Some(ms) => (t - chrono::Duration::microseconds((ms * 1000.0) as i64), t),
                None => (t, t + span),
            };
            from <= end && to >= start
        })
        .flatten()
        .collect()
}

/// How often [`sample_waits`] looks.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// Until `stop`, every [`SAMPLE_EVERY`] lists what each busy process of the server at `url`
/// is doing (`pg_stat_activity`: its wait event, or `CPU` if none, and its statement), one
/// line each, stamped as the server's log is.
async fn sample_waits(url: String, stop: Arc<AtomicBool>) -> Result<String> {
    let c = connect(&url).await?;
    let idle = [
        "WalSenderMain",
        "AutoVacuumMain",
        "CheckpointerMain",
        "BgWriterHibernate",
        "BgWriterMain",
        "WalWriterMain",
        "LogicalLauncherMain",
        "LogicalApplyMain",
        "ArchiverMain",
    ];
    let mut out = String::new();
    while !stop.load(Ordering::Relaxed) {
        let rows = c
            .query(
                "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS'),
                        pid, coalesce(datname, ''), backend_type,
                        coalesce(wait_event_type || ':' || wait_event, 'CPU'),
                        left(regexp_replace(coalesce(query, ''), '\\s+', ' ', 'g'), 80)
                 FROM pg_stat_activity
                 WHERE pid <> pg_backend_pid()
                   AND (state = 'active' OR backend_type <> 'client backend')
                   AND coalesce(wait_event, '') <> ALL ($1)",
                &[&&idle[..]],
            )
            .await?;
        for r in rows {
            let (t, pid, db, kind, wait, query): (String, i32, String, String, String, String) =
                (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
            out.push_str(&format!("{t} UTC [{pid}] {db} {kind}: {wait} {query}\n"));
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
    Ok(out)
}

/// The `SLOWEST` slowest writes of `log` in `[from, to)`, each with the entries of `logs`
/// (a server's name, its log, and the span of an entry without a duration) that overlap
/// it.
#[allow(clippy::too_many_arguments)]
fn slowest(
    org: &'static str,
    log: &Log,
    from: Instant,
    to: Instant,
    phases: &[(Instant, String)],
    clock: WallClock,
    logs: &[(&str, &str, Duration)],
) -> Vec<SlowWrite> {
    let mut writes = timed_between(log, from, to);
    writes.sort_by_key(|w| std::cmp::Reverse(w.took));
    writes.truncate(SLOWEST);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    writes
        .into_iter()
        .map(|w| {
            let (start, end) = (clock.at(w.at), clock.at(w.at + w.took));
            let logged = logs
                .iter()
                .flat_map(|(name, text, span)| {
                    overlapping(text, start, end, *span)
                        .into_iter()
                        .map(move |l| format!("{name}: {l}"))
                })
                .take(80)
                .collect();
            SlowWrite {
                org,
                at_s: w.at.saturating_duration_since(from).as_secs_f64(),
                utc: start.format("%H:%M:%S%.3f").to_string(),
                phase: phases
                    .iter()
                    .rev()
                    .find(|(t, _)| *t <= w.at)
                    .map_or_else(String::new, |(_, p)| p.clone()),
                took_ms: ms(w.took),
                steps_ms: STEPS.iter().copied().zip(w.steps.map(ms)).collect(),
                logged,
                logged_above: 0,
            }
        })
        .collect()
}

/// Leaves out of each slow write's `logged` the lines an earlier one of `writes` has.
fn shown_once(writes: &mut [SlowWrite]) {
    let mut seen = std::collections::HashSet::new();
    for w in writes {
        let all = std::mem::take(&mut w.logged);
        let n = all.len();
        w.logged = all.into_iter().filter(|l| seen.insert(l.clone())).collect();
        w.logged_above = n - w.logged.len();
    }
}

/// One of the slowest writes during a move, with where its time went and what the servers
/// logged while it ran (statements over 20 ms, autovacuum, checkpoints).
#[derive(Debug, Clone, Serialize)]
pub struct SlowWrite {
    /// `moving` or `other`.
    pub org: &'static str,
    /// Seconds since the move began.
    pub at_s: f64,
    /// When it was due, UTC (as the servers' logs print time).
    pub utc: String,
    pub phase: String,
    pub took_ms: f64,
    /// Each of the write's steps (`late`, `member`, `begin`, `project`, `insert`,
    /// `commit`) in ms.
    pub steps_ms: Vec<(&'static str, f64)>,
    /// The servers' log entries that overlap the write (see [`overlapping`]), `one:` or
    /// `two:` first; those of a slower write of the same move left out (slow writes of one
    /// stall overlap the same entries), counted in `logged_above`.
    pub logged: Vec<String>,
    pub logged_above: usize,
}

/// The writes begun during one phase of a move.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseRun {
    pub phase: String,
    pub seconds: f64,
    pub moving: Latency,
    pub other: Latency,
}

/// Splits the writes of the move's span by phase (`phases`: when each began, in order).
fn by_phase(phases: &[(Instant, String)], ended: Instant, glog: &Log, alog: &Log) -> Vec<PhaseRun> {
    phases
        .iter()
        .enumerate()
        .map(|(i, (from, phase))| {
            let to = phases.get(i + 1).map_or(ended, |(t, _)| *t);
            PhaseRun {
                phase: phase.clone(),
                seconds: to.duration_since(*from).as_secs_f64(),
                moving: latency(between(glog, *from, to)),
                other: latency(between(alog, *from, to)),
            }
        })
        .collect()
}
/// How a writer paces its writes.
#[derive(Debug, Clone, Copy)]
enum Pace {
    /// Back to back.
    Closed,
    /// One write due every `every`, the first at `first`.
    Open { first: Instant, every: Duration },
}

/// The steps of one write, in order: how late it began (its task run after it was due:
/// the runtime busy), the member check, the write transaction's start (a pooled
/// connection, the route), reading the project, the insert, the commit.
const STEPS: [&str; 6] = ["late", "member", "begin", "project", "insert", "commit"];

/// One timed write: when it was due (or began, back to back), how long it took from
/// then, and how long each of its [`STEPS`] took.
#[derive(Debug, Clone, Copy)]
struct Timed {
    at: Instant,
    took: Duration,
    steps: [Duration; STEPS.len()],
}

/// Timed writes.
type Log = Arc<Mutex<Vec<Timed>>>;

async fn writer(
    db: Db,
    user: UserId,
    org: OrgId,
    log: Log,
    refused: Arc<Mutex<usize>>,
    stop: Arc<AtomicBool>,
    pace: Pace,
) -> Result<()> {
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let began = match pace {
            Pace::Closed => Instant::now(),
            Pace::Open { first, every } => {
                let due = first + every * u32::try_from(i - 1).unwrap_or(u32::MAX);
                tokio::time::sleep_until(due.into()).await;
                due
            }
        };
        let mut steps = [Duration::ZERO; STEPS.len()];
        let mut mark = began;
        let mut step = |k: usize| {
            let now = Instant::now();
            if let Some(s) = steps.get_mut(k) {
                *s = now.saturating_duration_since(mark);
            }
            mark = now;
        };
        step(0);
        let r: orgwall_core::Result<()> = async {
            let scope = access::verify_member(&db, user, org).await?;
            step(1);
            let mut tx = db.write(&scope).await?;
            step(2);
            let project = projects::list(&mut tx, 1, None)
                .await?
                .first()
                .map(|p| p.id)
                .ok_or(orgwall_core::Error::NotFound)?;
            step(3);
            tickets::create(
                &mut tx,
                tickets::NewTicket {
                    project_id: project,
                    title: &format!("bench write {i}"),
                    body: "written while the org moves",
                    assignee_id: None,
                },
            )
            .await?;
            step(4);
            tx.commit().await?;
            step(5);
            Ok(())
        }
        .await;
        match r {
            Ok(()) => log
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(Timed {
                    at: began,
                    took: began.elapsed(),
                    steps,
                }),
            Err(orgwall_core::Error::Unavailable(_)) => {
                *refused
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
            }
            Err(e) => anyhow::bail!("write: {e}"),
        }
    }
    Ok(())
}

/// Holds a repeatable-read snapshot open in the database at `url` for `seconds` (as a
/// move's copy does in its source, with nothing else of a move running), then waits as
/// long again. Returns when the snapshot was taken, when it ended, and when the wait after
/// it ended.
async fn probe_snapshot(url: &str, seconds: u64, say: &impl Fn(String)) -> Result<[Instant; 3]> {
    let c = connect(url).await?;
    let held = Instant::now();
    c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM pg_class")
        .await?;
    say(format!("moves: probe: a snapshot held for {seconds} s"));
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    c.batch_execute("COMMIT").await?;
    let ended = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    Ok([held, ended, Instant::now()])
}

fn between(log: &Log, from: Instant, to: Instant) -> Vec<Duration> {
    timed_between(log, from, to)
        .iter()
        .map(|w| w.took)
        .collect()
}

fn timed_between(log: &Log, from: Instant, to: Instant) -> Vec<Timed> {
    log.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .filter(|w| w.at >= from && w.at < to)
        .copied()
        .collect()
}

async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    tokio::spawn(conn);
    Ok(c)
}

/// Gives `org` `n` tickets (as the superuser, in batches; the search-terms triggers derive
/// their rows as for any insert).
async fn fill(url: &str, org: OrgId, n: u64, say: &impl Fn(String)) -> Result<()> {
    let c = connect(url).await?;
    c.batch_execute("SET synchronous_commit = off; UPDATE orgs SET plan = 'enterprise'")
        .await?;
    let project: uuid::Uuid = c
        .query_one(
            "SELECT id FROM projects WHERE org_id = $1 ORDER BY id LIMIT 1",
            &[&org.uuid()],
        )
        .await?
        .get(0);
    let started = Instant::now();
    let batch = 50_000u64;
    let mut done = 0u64;
    while done < n {
        let k = batch.min(n - done);
        c.execute(
            "INSERT INTO tickets (org_id, id, project_id, title, body, status, created_at, updated_at)
             SELECT $1, gen_random_uuid(), $2,
                    'moved ticket ' || g || ' ' || (ARRAY['login','invoice','export','search','billing','mobile','crash','latency'])[1 + g % 8],
                    'body of ticket ' || g || ' about ' || (ARRAY['alpha','bravo','charlie','delta'])[1 + g % 4],
                    'open', now(), now()
             FROM generate_series($3::bigint, $4::bigint) g",
            &[&org.uuid(), &project, &(done as i64), &((done + k - 1) as i64)],
        )
        .await?;
        done += k;
        say(format!(
            "moves: {done}/{n} tickets ({:.0} s)",
            started.elapsed().as_secs_f64()
        ));
    }
    c.batch_execute("ANALYZE").await?;
    Ok(())
}

/// How the moves are run (the `--move-*` options).
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// The copy's pace: as given (MB/s) and in bytes a second; `None`: full speed.
    pub copy_rate: Option<(String, u64)>,
    /// Seconds of writes measured before each move.
    pub baseline_s: u64,
    /// Writes started a second per org; 0: back to back.
    pub write_rate: u64,
    /// Seconds of a snapshot held before each move (the probe); 0: none.
    pub probe_s: u64,
    /// At most this many rows in one chunk of the copy.
    pub chunk_rows: Option<u64>,
    /// Two machines stood for by one: the first server and this process kept to CPU 0,
    /// the second server to CPU 1, and only the move across the two servers run (from
    /// the shared tables on the first to a database of its own on the second), so the
    /// copy's work on the destination does not take the CPU the other org's server
    /// has, as it would not on two machines.
    pub two_machines: bool,
    /// The mover on a thread (and a single-threaded runtime) of its own, not on the
    /// runtime the writers are timed on; with `two_machines`, kept to CPU 1 (with the
    /// second server): an orgwall instance elsewhere than the source server.
    pub own_thread: bool,
    /// Sample what each busy process of both servers waits on every 10 ms during each
    /// move, shown with the slowest writes.
    pub sample_waits: bool,
}

/// The stop signal and the thread of a mover run by [`on_own_thread`].
type MoverThread = (
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
);

/// Runs `org`'s move on a thread of its own with a single-threaded runtime, kept to CPU
/// `cpu` if given; returns where the org is now and the thread. The thread's runtime keeps
/// running (until the sender is used) after the move: a connection the move opened in a
/// shared pool has its task there, and the writers may still use it.
async fn on_own_thread(
    db: &Db,
    org: OrgId,
    opts: placement::MoveOptions,
    cpu: Option<&'static str>,
    progress: impl Fn(&placement::Move) + Send + Sync + 'static,
) -> Result<(placement::Route, MoverThread)> {
    let db = db.clone();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("mover".into())
        .spawn(move || {
            if let Some(cpu) = cpu {
                if let Err(e) = pin_thread(cpu) {
                    let _ = done_tx.send(Err(e));
                    return;
                }
            }
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = done_tx.send(Err(anyhow::Error::from(e)));
                    return;
                }
            };
            rt.block_on(async move {
                let r = placement::run_move_with(&db, org, opts, &progress).await;
                let _ = done_tx.send(r.map_err(anyhow::Error::from));
                let _ = stop_rx.await;
            });
        })?;
    let route = done_rx.await.context("the mover's thread ended")??;
    Ok((route, (stop_tx, thread)))
}

/// Keeps every thread of this process to CPU `cpu` (threads made later inherit it).
fn pin_self(cpu: &str) -> Result<()> {
    taskset(&["-a", "-p", "-c", cpu, &std::process::id().to_string()])
}

/// Keeps the calling thread (alone) to CPU `cpu`.
fn pin_thread(cpu: &str) -> Result<()> {
    // `/proc/thread-self` links to `<pid>/task/<tid>`.
    let link = std::fs::read_link("/proc/thread-self")?;
    let tid = link
        .file_name()
        .and_then(|t| t.to_str())
        .context("/proc/thread-self names no thread")?
        .to_owned();
    taskset(&["-p", "-c", cpu, &tid])
}

fn taskset(args: &[&str]) -> Result<()> {
    let ok = std::process::Command::new("taskset")
        .args(args)
        .output()
        .with_context(|| "running taskset (util-linux)")?;
    anyhow::ensure!(
        ok.status.success(),
        "taskset {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&ok.stderr)
    );
    Ok(())
}

/// Runs the benchmark for each size; returns the runs.
pub async fn run(sizes: &[u64], setup: &Setup, say: impl Fn(String)) -> Result<Vec<MoveRun>> {
    const WRITERS: u32 = 4;
    let Setup {
        copy_rate,
        baseline_s,
        write_rate,
        probe_s,
        chunk_rows,
        two_machines,
        own_thread,
        sample_waits: sampling,
    } = setup.clone();
    let opts = placement::MoveOptions {
        copy_bytes_per_sec: copy_rate.as_ref().map(|(_, bytes)| *bytes),
        copy_chunk_rows: chunk_rows,
    };
    let copy_rate_mb = copy_rate.map(|(mb, _)| mb);
    let cpus = |cpu| two_machines.then_some(cpu);
    if two_machines {
        pin_self("0")?;
    }
    let mut runs = Vec::new();
    for &n in sizes {
        let one = PgCluster::start_on(SETTINGS, cpus("0"));
        let two = PgCluster::start_on(SETTINGS, cpus("1"));
        connect(&one.url)
            .await?
            .batch_execute("CREATE DATABASE orgwall_moves")
            .await?;
        let url = one.url_of("orgwall_moves");
        let db = Db::open(
            &DbConfig::Postgres {
                url: url.clone(),
                app_role: orgwall_store::db::DEFAULT_APP_ROLE.into(),
                pool_size: 16,
                placement_budget: None,
            },
            orgwall_store::catalog(),
        )
        .await?;
        db.migrate().await?;
        orgwall_store::seed::demo_placed(&db, &[]).await?;
        let globex = orgwall_store::repo::orgs::resolve(&db, "globex").await?;
        let acme = orgwall_store::repo::orgs::resolve(&db, "acme").await?;
        let user = |e: &'static str| {
            let db = db.clone();
            async move {
                let email =
                    orgwall_core::Email::parse(e).map_err(orgwall_core::Error::Validation)?;
                orgwall_store::repo::users::find_by_email(&db, &email)
                    .await?
                    .map(|u| u.0.id)
                    .ok_or(orgwall_core::Error::NotFound)
            }
        };
        let (bob, alice) = (
            user("bob@globex.test").await?,
            user("alice@acme.test").await?,
        );
        say(format!("moves: filling Globex with {n} tickets"));
        fill(&url, globex, n, &say).await?;
        placement::add_target(&db, "second", &two.url).await?;
        let moves = [
            (Kind::Database(None), "one server"),
            (Kind::Database(Some("second".into())), "two servers"),
        ];
        for (kind, name) in moves.into_iter().skip(usize::from(two_machines)) {
            let name = if two_machines {
                "two machines (CPU 0, CPU 1)"
            } else {
                name
            };
            let stop = Arc::new(AtomicBool::new(false));
            let (glog, alog): (Log, Log) = Default::default();
            let refused = Arc::new(Mutex::new(0usize));
            let mut tasks = Vec::new();
            let first = Instant::now();
            for w in 0..WRITERS {
                // Each writer a quarter of the rate, the four staggered evenly.
                let pace = match write_rate {
                    0 => Pace::Closed,
                    r => {
                        let every = Duration::from_secs_f64(f64::from(WRITERS) / r as f64);
                        Pace::Open {
                            first: first + every * w / WRITERS,
                            every,
                        }
                    }
                };
                tasks.push(tokio::spawn(writer(
                    db.clone(),
                    bob,
                    globex,
                    glog.clone(),
                    refused.clone(),
                    stop.clone(),
                    pace,
                )));
                tasks.push(tokio::spawn(writer(
                    db.clone(),
                    alice,
                    acme,
                    alog.clone(),
                    Arc::new(Mutex::new(0)),
                    stop.clone(),
                    pace,
                )));
            }
            let warm = Instant::now();
            tokio::time::sleep(Duration::from_secs(2)).await;
            let base = Instant::now();
            tokio::time::sleep(Duration::from_secs(baseline_s)).await;
            let from = placement::show(&db, globex).await?;
            let (baseline_end, probe) = if probe_s > 0 {
                let source = match &from.location {
                    Some(name) if from.kind == "database" => one.url_of(name),
                    _ => url.clone(),
                };
                let probed = probe_snapshot(&source, probe_s, &say).await?;
                let windows = [
                    (base, "baseline".to_owned()),
                    (probed[0], "snapshot held (probe)".to_owned()),
                    (probed[1], "after it (probe)".to_owned()),
                ];
                (probed[0], by_phase(&windows, probed[2], &glog, &alog))
            } else {
                (Instant::now(), Vec::new())
            };
            let started = Instant::now();
            let clock = WallClock::now();
            let sampled = Arc::new(AtomicBool::new(false));
            let samplers: Vec<_> = if sampling {
                [one.url_of("postgres"), two.url_of("postgres")]
                    .into_iter()
                    .map(|u| tokio::spawn(sample_waits(u, sampled.clone())))
                    .collect()
            } else {
                Vec::new()
            };
            let mv = placement::start_move(&db, globex, kind.clone()).await?;
            let rows = Arc::new(Mutex::new(0i64));
            let pause = Arc::new(Mutex::new(None));
            let phases: Arc<Mutex<Vec<(Instant, String)>>> =
                Arc::new(Mutex::new(vec![(started, "start".to_owned())]));
            let (r2, p2, ph) = (rows.clone(), pause.clone(), phases.clone());
            let progress = move |m: &placement::Move| {
                let mut ph = ph.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if ph.last().is_none_or(|(_, p)| *p != m.phase) {
                    ph.push((Instant::now(), m.phase.clone()));
                }
                drop(ph);
                if m.rows_total > 0 {
                    *r2.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = m.rows_total;
                }
                if m.pause_ms.is_some() {
                    *p2.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = m.pause_ms;
                }
            };
            let (route, mover) = if own_thread {
                let (route, mover) = on_own_thread(&db, globex, opts, cpus("1"), progress).await?;
                (route, Some(mover))
            } else {
                let route = placement::run_move_with(&db, globex, opts, &progress).await?;
                (route, None)
            };
            let ended = Instant::now();
            let total_s = started.elapsed().as_secs_f64();
            sampled.store(true, Ordering::Relaxed);
            let mut samples = Vec::new();
            for s in samplers {
                samples.push(s.await??);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            stop.store(true, Ordering::Relaxed);
            for t in tasks {
                t.await??;
            }
            if let Some((stop_mover, thread)) = mover {
                let _ = stop_mover.send(());
                let _ = tokio::task::spawn_blocking(move || thread.join()).await;
            }
            let _ = warm;
            let phases = phases
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            let half = Duration::from_millis(500);
            let mut logs = vec![("one", one.log_text(), half), ("two", two.log_text(), half)];
            for (name, text) in ["one (sampled)", "two (sampled)"].into_iter().zip(samples) {
                logs.push((name, text, SAMPLE_EVERY));
            }
            if let Ok(dir) = std::env::var("ORGWALL_BENCH_MOVE_LOGS") {
                // Every line, for reading at leisure.
                std::fs::create_dir_all(&dir)?;
                for (name, text, _) in &logs {
                    let file = format!("{n}-{}.log", name.replace([' ', '(', ')'], ""));
                    std::fs::write(std::path::Path::new(&dir).join(file), text)?;
                }
            }
            let logs: Vec<(&str, &str, Duration)> =
                logs.iter().map(|(n, t, s)| (*n, t.as_str(), *s)).collect();
            let mut slowest: Vec<SlowWrite> = [("moving", &glog), ("other", &alog)]
                .into_iter()
                .flat_map(|(org, log)| slowest(org, log, started, ended, &phases, clock, &logs))
                .collect();
            shown_once(&mut slowest);
            let run = MoveRun {
                tickets: n,
                between: name,
                from: from.kind.clone(),
                to: format!("{} ({:?})", route.kind(), mv.to),
                rows: *rows
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
                total_s,
                fence_ms: *pause
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
                moving_before: latency(between(&glog, base, baseline_end)),
                moving_during: latency(between(&glog, started, ended)),
                other_before: latency(between(&alog, base, baseline_end)),
                other_during: latency(between(&alog, started, ended)),
                moving_refused: *refused
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
                copy_rate_mb: copy_rate_mb.clone(),
                baseline_s,
                write_rate: (write_rate > 0).then_some(write_rate),
                by_phase: by_phase(&phases, ended, &glog, &alog),
                probe,
                baseline_halves: {
                    let mid = base + baseline_end.duration_since(base) / 2;
                    let halves = [
                        (base, "first half".to_owned()),
                        (mid, "second half".to_owned()),
                    ];
                    by_phase(&halves, baseline_end, &glog, &alog)
                },
                slowest,
            };
            say(format!("moves: {n} tickets, {name}: {total_s:.1} s; moving org during {:?}; other org during {:?}", run.moving_during, run.other_during));
            runs.push(run);
        }
        drop(db);
        drop(two);
        drop(one);
    }
    Ok(runs)
}

/// `p50 / p99 / max` of a set of writes, as the tables show it.
fn shown(x: &Latency) -> String {
    format!("{:.1} / {:.1} / {:.1}", x.p50_ms, x.p99_ms, x.max_ms)
}

/// Appends a row per window (`windows` picks them from a run) to a Markdown table of
/// both orgs' writes by window.
fn phase_rows(s: &mut String, runs: &[MoveRun], windows: fn(&MoveRun) -> &[PhaseRun]) {
    let l = shown;
    for r in runs {
        for p in windows(r) {
            s.push_str(&format!(
                "| {} | {} | {} | {:.1} | {} | {} |\n",
                r.tickets,
                r.between,
                p.phase,
                p.seconds,
                l(&p.moving),
                l(&p.other)
            ));
        }
    }
}

/// The runs as a Markdown table.
pub fn markdown(runs: &[MoveRun], command: &str, commit: &str) -> String {
    let mut s = format!(
        "# Online moves: orgwall-bench --moves\n\nCommit `{commit}`, command `{command}`. Two throwaway PostgreSQL 15 clusters on this machine (`wal_level = logical`, shared_buffers 512MB). Four writers on the moving org (Globex) and four on the other (Acme), each creating tickets through the library (verify member, write transaction, commit): *writes* says how, either back to back (closed loop) or N writes started a second per org on a fixed schedule (open loop; a write's latency counts from when it was due). Latency in ms, p50 / p99 / max, in the seconds before the move (*baseline*) and during it. Rows: the org's data-plane rows in the copy's snapshot (search terms included).\n\n| tickets | between | copy pace | writes | baseline (s) | rows | move total (s) | fence held (ms) | moving org before | moving org during | other org before | other org during | refused (503) |\n| ---: | --- | --- | --- | ---: | ---: | ---: | ---: | --- | --- | --- | --- | ---: |\n"
    );
    let l = shown;
    for r in runs {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {:.1} | {} | {} | {} | {} | {} | {} |\n",
            r.tickets,
            r.between,
            r.copy_rate_mb
                .as_ref()
                .map_or("full speed".to_owned(), |mb| format!("{mb} MB/s")),
            r.write_rate
                .map_or("back to back".to_owned(), |n| format!("{n}/s per org")),
            r.baseline_s,
            r.rows,
            r.total_s,
            r.fence_ms.map_or("-".to_owned(), |f| f.to_string()),
            l(&r.moving_before),
            l(&r.moving_during),
            l(&r.other_before),
            l(&r.other_during),
            r.moving_refused
        ));
    }
    s.push_str("\nBy the mover's phase (a write counted in the phase it began in; *catch_up* holds the content check and the cut-over's fence, *cleanup* begins at the flip): p50 / p99 / max ms of the moving org, then of the other.\n\n| tickets | between | phase | seconds | moving org | other org |\n| ---: | --- | --- | ---: | --- | --- |\n");
    phase_rows(&mut s, runs, |r| &r.by_phase);
    s.push_str("\nThe baseline in two halves (no move running; what two windows of the same writes differ by, against which the phases above stand): p50 / p99 / max ms of the moving org, then of the other.\n\n| tickets | between | window | seconds | moving org | other org |\n| ---: | --- | --- | ---: | --- | --- |\n");
    phase_rows(&mut s, runs, |r| &r.baseline_halves);
    s.push_str(&format!("\nThe {SLOWEST} slowest writes of each org during each move: when (seconds into the move, UTC), in which phase, where the time went (ms per step: *late* is how long after it was due its task ran), and what the servers logged while it ran (statements over 20 ms, locks waited on for 50 ms, autovacuum, checkpoints).\n"));
    for r in runs {
        for w in &r.slowest {
            let steps: Vec<String> = w
                .steps_ms
                .iter()
                .map(|(n, ms)| format!("{n} {ms:.1}"))
                .collect();
            s.push_str(&format!(
                "\n- {} tickets, {}: {} org at {:.2} s ({}), {}, {:.1} ms: {}\n",
                r.tickets,
                r.between,
                w.org,
                w.at_s,
                w.utc,
                w.phase,
                w.took_ms,
                steps.join(", ")
            ));
            for l in &w.logged {
                s.push_str(&format!("  - `{l}`\n"));
            }
            if w.logged_above > 0 {
                s.push_str(&format!(
                    "  - (and {} log lines shown above)\n",
                    w.logged_above
                ));
            }
        }
    }
    if runs.iter().any(|r| !r.probe.is_empty()) {
        s.push_str("\nThe probe (`--move-probe-snapshot`), before each move: the baseline, then a repeatable-read snapshot held open in the database the move reads (nothing else of a move running), then as long again after it ended: p50 / p99 / max ms of the org that moves next, then of the other.\n\n| tickets | between | window | seconds | moving org | other org |\n| ---: | --- | --- | ---: | --- | --- |\n");
        phase_rows(&mut s, runs, |r| &r.probe);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> chrono::NaiveDateTime {
        chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.3f").unwrap()
    }

    #[test]
    fn a_write_is_shown_what_overlapped_it_and_nothing_else() {
        let log = "\
2026-12-07 05:14:22.500 UTC [1] db app: LOG:  checkpoint starting: time
2026-12-07 05:14:22.873 UTC [2] db app: LOG:  process 2 still waiting for ShareLock
2026-12-07 05:14:22.873 UTC [2] db app: DETAIL:  Process holding the lock: 3.
2026-12-07 05:14:22.873 UTC [4] db app: DETAIL:  another process's detail
2026-12-07 05:14:22.966 UTC [3] db app: LOG:  duration: 151.859 ms  execute s1: INSERT INTO tickets (org_id)
\t VALUES ($1)
2026-12-07 05:14:25.000 UTC [5] db app: LOG:  duration: 2500.000 ms  statement: SELECT 1
2026-12-07 05:14:40.000 UTC [6] db app: LOG:  duration: 30.000 ms  statement: SELECT 2
";
        let shown = overlapping(
            log,
            at("2026-12-07 05:14:22.811"),
            at("2026-12-07 05:14:22.970"),
            Duration::from_millis(500),
        );
        let pids: Vec<&str> = shown
            .iter()
            .filter_map(|l| orgwall_testkit::cluster::log_process(l))
            .collect();
        // The checkpoint began 311 ms before (within its half second), the lock wait and
        // its own detail, the insert (stamped at its end, spanning back over the write)
        // with its continued text, and the 2-second statement that ran through it; not
        // another process's detail, nor a statement long after.
        assert_eq!(pids, ["1", "2", "2", "3", "5"], "{shown:#?}");
        assert!(shown.contains(&"\t VALUES ($1)"), "{shown:#?}");
        let none = overlapping(
            log,
            at("2026-12-07 05:14:30.000"),
            at("2026-12-07 05:14:31.000"),
            Duration::from_millis(500),
        );
        assert!(none.is_empty(), "{none:#?}");
    }

    #[test]
    fn a_log_line_is_shown_with_the_first_write_it_overlapped() {
        let write = |logged: &[&str]| SlowWrite {
            org: "other",
            at_s: 0.0,
            utc: String::new(),
            phase: String::new(),
            took_ms: 0.0,
            steps_ms: Vec::new(),
            logged: logged.iter().map(|l| (*l).to_owned()).collect(),
            logged_above: 0,
        };
        let mut w = vec![write(&["a", "b"]), write(&["b", "c"]), write(&["a", "b"])];
        shown_once(&mut w);
        let got: Vec<(Vec<String>, usize)> =
            w.into_iter().map(|w| (w.logged, w.logged_above)).collect();
        assert_eq!(
            got,
            [
                (vec!["a".to_owned(), "b".to_owned()], 0),
                (vec!["c".to_owned()], 1),
                (vec![], 2)
            ]
        );
    }

    #[test]
    fn a_wall_clock_prints_instants_either_side_of_its_reading() {
        let clock = WallClock::now();
        let later = clock.then + Duration::from_millis(1500);
        assert_eq!(
            clock.at(later) - clock.utc.naive_utc(),
            chrono::Duration::milliseconds(1500)
        );
        if let Some(earlier) = clock.then.checked_sub(Duration::from_millis(250)) {
            assert_eq!(
                clock.at(earlier) - clock.utc.naive_utc(),
                chrono::Duration::milliseconds(-250)
            );
        }
    }
}
