//! Results: the machine, every run, pgbench, the targets of DESIGN.md section 7, as JSON
//! and as a markdown table under `bench/results/`.

use crate::load::{Outcome, Workload};
use anyhow::Result;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The machine the numbers come from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical CPUs.
    pub cores: usize,
    /// CPU model.
    pub cpu: String,
    /// Memory, GiB.
    pub ram_gib: f64,
    /// Kernel release.
    pub kernel: String,
    /// `rustc -V`.
    pub rustc: String,
    /// PostgreSQL server version (when PostgreSQL was used).
    pub postgres: Option<String>,
    /// `pgbench --version`.
    pub pgbench: Option<String>,
    /// `/proc/loadavg` before the first run: how busy the machine was.
    pub loadavg_before: String,
    /// `/proc/loadavg` after the last run.
    pub loadavg_after: String,
}

fn first_line(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_owned()
    })
}

/// `/proc/loadavg`, first three fields.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

impl Machine {
    /// Reads what it can about this machine.
    pub fn detect(postgres: Option<String>) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let mem_kb: f64 = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|n| n.parse().ok())
            })
            .unwrap_or(0.0);
        Machine {
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            cpu: cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
                .unwrap_or_default(),
            ram_gib: (mem_kb / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
            rustc: first_line("rustc", &["-V"]).unwrap_or_else(|| "unknown".into()),
            postgres,
            pgbench: first_line("pgbench", &["--version"]),
            loadavg_before: loadavg(),
            loadavg_after: String::new(),
        }
    }
}

/// The commit the binaries were built from, and whether tracked files had changes.
pub fn commit() -> (String, bool) {
    let hash =
        first_line("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "nocommit".into());
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    (hash, dirty)
}

/// One data set as seeded.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetRecord {
    /// Orgs.
    pub orgs: usize,
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// Tickets in all.
    pub tickets: u64,
    /// Tickets of the large org.
    pub large_org_tickets: u64,
    /// Seconds the seed took (migrations and index builds included).
    pub seed_secs: f64,
}

/// One load run.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    /// Orgs in the data set.
    pub orgs: usize,
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// `rls on`, `rls off` (PostgreSQL) or `-` (SQLite).
    pub variant: &'static str,
    /// What the requests did.
    pub workload: Workload,
    /// Connections.
    pub concurrency: usize,
    /// Which measurement of this workload (1-based; see `--rounds`).
    pub round: usize,
    /// The numbers.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// One pgbench run next to the matching server run.
#[derive(Debug, Clone, Serialize)]
pub struct PgbenchRecord {
    /// Orgs in the data set.
    pub orgs: usize,
    /// `pipeline` or `plain`.
    pub mode: crate::pgbench::Mode,
    /// Clients.
    pub concurrency: usize,
    /// Its transactions per second.
    pub tps: f64,
    /// Its average latency, ms.
    pub latency_avg_ms: Option<f64>,
    /// Our detail-read requests per second at the same concurrency (PostgreSQL, RLS on).
    pub ours_rps: Option<f64>,
    /// ours_rps / tps.
    pub ratio: Option<f64>,
    /// The command (URL left out).
    pub command: String,
}

/// A target of DESIGN.md section 7 and what was measured for it.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    /// What is compared.
    pub what: String,
    /// The target.
    pub target: String,
    /// The measurement.
    pub measured: String,
    /// Met, missed, or not measurable from this run.
    pub met: Option<bool>,
}

/// Everything one invocation produced.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `orgwall-bench`.
    pub tool: &'static str,
    /// UTC start.
    pub started_at: String,
    /// UTC end.
    pub finished_at: String,
    /// Short commit.
    pub commit: String,
    /// Tracked files had uncommitted changes.
    pub dirty: bool,
    /// The machine.
    pub machine: Machine,
    /// The options of this run.
    pub config: serde_json::Value,
    /// The data sets.
    pub datasets: Vec<DatasetRecord>,
    /// The runs.
    pub runs: Vec<RunRecord>,
    /// pgbench.
    pub pgbench: Vec<PgbenchRecord>,
    /// The targets.
    pub targets: Vec<TargetCheck>,
    /// `--migrate-placements`: `orgwall migrate` over many placements.
    pub migrations: Vec<crate::migrations::Timings>,
    /// Remarks (what the bench changed, what was skipped).
    pub notes: Vec<String>,
}

/// Medians over rounds.
#[derive(Debug, Clone, Copy)]
pub struct Median {
    /// Requests per second.
    pub rps: f64,
    /// The machine's CPU time per request, microseconds (runs that measured it).
    pub cpu_us: Option<f64>,
    /// p50, ms.
    pub p50_ms: f64,
    /// Rounds it is the median of.
    pub rounds: usize,
}

fn pct(x: f64) -> String {
    format!("{:+.1}%", x * 100.0)
}

fn rounds_note(rounds: usize) -> String {
    if rounds > 1 {
        format!(" (medians of {rounds})")
    } else {
        String::new()
    }
}

impl Report {
    /// Median req/s and median p50 (ms) over the rounds matching these, if any.
    pub fn median(
        &self,
        orgs: usize,
        backend: &str,
        variant: &str,
        workload: Workload,
        concurrency: usize,
    ) -> Option<Median> {
        let runs: Vec<&RunRecord> = self
            .runs_of(orgs, backend, variant, workload, concurrency)
            .collect();
        Some(Median {
            cpu_us: median_of(
                runs.iter()
                    .filter_map(|r| r.outcome.cpu_per_request.map(|c| c.machine_us))
                    .collect(),
            ),
            rps: median_of(runs.iter().map(|r| r.outcome.rps).collect())?,
            p50_ms: median_of(runs.iter().map(|r| r.outcome.p50_ms).collect())?,
            rounds: runs.len(),
        })
    }

    /// The runs matching these, every round.
    fn runs_of<'a>(
        &'a self,
        orgs: usize,
        backend: &'a str,
        variant: &'a str,
        workload: Workload,
        concurrency: usize,
    ) -> impl Iterator<Item = &'a RunRecord> + 'a {
        self.runs.iter().filter(move |r| {
            r.orgs == orgs
                && r.backend == backend
                && r.variant == variant
                && r.workload == workload
                && r.concurrency == concurrency
        })
    }

    /// For each round that has both (PostgreSQL), what variant `v.0` costs over variant
    /// `v.1`: its fewer req/s (`by_rate`: `1 - a/b`) or its longer mean latency
    /// (`a/b - 1`).
    fn paired(
        &self,
        orgs: usize,
        v: (&str, &str),
        workload: Workload,
        concurrency: usize,
        by_rate: bool,
    ) -> Vec<f64> {
        self.runs_of(orgs, "postgres", v.0, workload, concurrency)
            .filter_map(|a| {
                let b = self
                    .runs_of(orgs, "postgres", v.1, workload, concurrency)
                    .find(|b| b.round == a.round)?;
                let (a, b) = (&a.outcome, &b.outcome);
                match by_rate {
                    true => (b.rps > 0.0).then(|| 1.0 - a.rps / b.rps),
                    false => (b.mean_ms > 0.0).then(|| a.mean_ms / b.mean_ms - 1.0),
                }
            })
            .collect()
    }

    /// The check that run `a`'s median p50 is at most `max` times run `b`'s (each given
    /// as its label, variant and workload), if both ran.
    #[allow(clippy::too_many_arguments)]
    fn p50_ratio(
        &self,
        orgs: usize,
        backend: &str,
        a: (&str, &str, Workload),
        b: (&str, &str, Workload),
        concurrency: usize,
        max: f64,
        what: String,
        target: &str,
    ) -> Option<TargetCheck> {
        let ma = self.median(orgs, backend, a.1, a.2, concurrency)?;
        let mb = self.median(orgs, backend, b.1, b.2, concurrency)?;
        if mb.p50_ms <= 0.0 {
            return None;
        }
        let ratio = ma.p50_ms / mb.p50_ms;
        Some(TargetCheck {
            what,
            target: target.into(),
            measured: format!(
                "{} {:.2} ms ({:.0} req/s), {} {:.2} ms ({:.0} req/s): {ratio:.2}x",
                a.0, ma.p50_ms, ma.rps, b.0, mb.p50_ms, mb.rps
            ),
            met: Some(ratio <= max),
        })
    }

    /// Computes the target checks from the runs.
    pub fn check_targets(&mut self, concurrency: usize, rss_concurrency: usize) {
        let mut checks = Vec::new();
        let mut sizes: Vec<usize> = self.runs.iter().map(|r| r.orgs).collect();
        sizes.sort_unstable();
        sizes.dedup();
        // RLS on vs off, per size and workload.
        for &orgs in &sizes {
            for w in [
                Workload::Detail,
                Workload::List,
                Workload::Search,
                Workload::SearchRare,
                Workload::SearchRarest,
                Workload::Create,
                Workload::Mixed,
            ] {
                let (Some(on), Some(off)) = (
                    self.median(orgs, "postgres", "rls on", w, concurrency),
                    self.median(orgs, "postgres", "rls off", w, concurrency),
                ) else {
                    continue;
                };
                if off.rps <= 0.0 {
                    continue;
                }
                let cost = 1.0 - on.rps / off.rps;
                checks.push(TargetCheck {
                    what: format!("RLS cost, {} at {orgs} orgs, c={concurrency}", w.name()),
                    target: "<= 5% fewer req/s with RLS on".into(),
                    measured: format!(
                        "on {:.0} req/s, off {:.0} req/s{}: {}",
                        on.rps,
                        off.rps,
                        rounds_note(on.rounds),
                        pct(cost)
                    ),
                    met: Some(cost <= 0.05),
                });
            }
        }
        // Each placement of its own vs the shared tables, same sitting (issue 12).
        for &orgs in &sizes {
            for w in [Workload::Detail, Workload::List, Workload::Create] {
                let Some(shared) = self.median(orgs, "postgres", "placed shared", w, concurrency)
                else {
                    continue;
                };
                for variant in ["placed schema", "placed database"] {
                    let Some(m) = self.median(orgs, "postgres", variant, w, concurrency) else {
                        continue;
                    };
                    if shared.rps <= 0.0 {
                        continue;
                    }
                    let cost = 1.0 - m.rps / shared.rps;
                    checks.push(TargetCheck {
                        what: format!(
                            "{variant} vs shared, {} at {orgs} orgs, c={concurrency}",
                            w.name()
                        ),
                        target: "<= 5% fewer req/s than shared".into(),
                        measured: format!(
                            "{:.0} req/s (p50 {:.2} ms) vs {:.0} req/s (p50 {:.2} ms){}: {}",
                            m.rps,
                            m.p50_ms,
                            shared.rps,
                            shared.p50_ms,
                            rounds_note(m.rounds),
                            pct(cost)
                        ),
                        met: Some(cost <= 0.05),
                    });
                    // The same runs' work per request: what a create costs the machine,
                    // which a sitting's slower flushes move far less than its rate.
                    if let (Some(a), Some(b)) = (m.cpu_us, shared.cpu_us) {
                        let more = a / b - 1.0;
                        checks.push(TargetCheck {
                            what: format!(
                                "{variant} vs shared, CPU per {} at {orgs} orgs, c={concurrency}",
                                w.name()
                            ),
                            target: "<= 5% more CPU per request than shared".into(),
                            measured: format!(
                                "{a:.0} us vs {b:.0} us (the machine's, medians){}: {}",
                                rounds_note(m.rounds),
                                pct(more)
                            ),
                            met: Some(more <= 0.05),
                        });
                    }
                }
            }
        }
        // Each placement of its own vs the shared tables within the same runs
        // (`--placement-mix`): per run, a placement's req/s over the shared tables' as
        // they took turns, or its mean latency's over theirs in a random mix; the median
        // over runs.
        for &orgs in &sizes {
            for w in [Workload::Detail, Workload::List, Workload::Create] {
                for (variant, shared, by_rate) in [
                    ("turns rls on", "turns rls off", true),
                    ("turns rls on (copy)", "turns rls on", true),
                    ("turns schema", "turns shared", true),
                    ("turns database", "turns shared", true),
                    ("mixed schema", "mixed shared", false),
                    ("mixed database", "mixed shared", false),
                ] {
                    let costs = self.paired(orgs, (variant, shared), w, concurrency, by_rate);
                    let Some(cost) = median_of(costs.clone()) else {
                        continue;
                    };
                    let (lo, hi) = costs
                        .iter()
                        .fold((f64::MAX, f64::MIN), |(l, h), r| (l.min(*r), h.max(*r)));
                    checks.push(TargetCheck {
                        what: format!(
                            "{variant} vs {shared}, {} at {orgs} orgs, c={concurrency}, same runs",
                            w.name()
                        ),
                        target: match by_rate {
                            true => format!("<= 5% fewer req/s than {shared}"),
                            false => format!("<= 5% more time per request than {shared}"),
                        },
                        measured: format!(
                            "{} (median of {} runs, {} to {})",
                            pct(cost),
                            costs.len(),
                            pct(lo),
                            pct(hi)
                        ),
                        met: Some(cost <= 0.05),
                    });
                }
            }
        }
        // p50 of a detail read, smallest vs largest org count.
        if let (Some(&small), Some(&large)) = (sizes.first(), sizes.last()) {
            for (backend, variant) in [("sqlite", "-"), ("postgres", "rls on")] {
                let (Some(a), Some(b)) = (
                    self.median(small, backend, variant, Workload::Detail, concurrency),
                    self.median(large, backend, variant, Workload::Detail, concurrency),
                ) else {
                    continue;
                };
                if small == large || a.p50_ms <= 0.0 {
                    continue;
                }
                let change = b.p50_ms / a.p50_ms - 1.0;
                checks.push(TargetCheck {
                    what: format!("detail p50, {small} vs {large} orgs, {backend} {variant}"),
                    target: "within 20% (DESIGN: 10 vs 100,000 orgs)".into(),
                    measured: format!(
                        "{:.2} ms -> {:.2} ms{}: {}",
                        a.p50_ms,
                        b.p50_ms,
                        rounds_note(a.rounds),
                        pct(change)
                    ),
                    met: if large >= 100_000 && small <= 10 {
                        Some(change.abs() <= 0.20)
                    } else {
                        None
                    },
                });
            }
        }
        // A rare word's search vs a detail read (issue 16: p50 at most 2x), per size and
        // variant, when both ran.
        for &orgs in &sizes {
            for (backend, variant) in [("sqlite", "-"), ("postgres", "rls on")] {
                for (w, what) in [
                    (Workload::SearchRare, "rare-word (a page of 50 hits)"),
                    (
                        Workload::SearchRarest,
                        "rarest-word (fewer hits than a page)",
                    ),
                ] {
                    checks.extend(self.p50_ratio(
                        orgs,
                        backend,
                        ("search", variant, w),
                        ("detail", variant, Workload::Detail),
                        concurrency,
                        2.0,
                        format!("{what} search p50 vs detail p50, {backend} {variant} at {orgs} orgs, c={concurrency}"),
                        "at most 2x (issue 16, in an org of 1,000,000 tickets)",
                    ));
                }
            }
        }
        // The cold path: a fresh server's first requests (--cold-first), and every request
        // cold on a server without its access cache (--all-cold), vs warm ones.
        for &orgs in &sizes {
            for (variant, what, target) in [
                ("cold", "cold-path", "within 1.5x of warm (issue 16)"),
                (
                    "all cold",
                    "every request cold (access cache off)",
                    "within 1.5x of warm (issue 16, any share of cold keys)",
                ),
            ] {
                checks.extend(self.p50_ratio(
                    orgs,
                    "postgres",
                    (variant, variant, Workload::Detail),
                    ("warm", "rls on", Workload::Detail),
                    concurrency,
                    1.5,
                    format!("{what} detail p50 at {orgs} orgs, c={concurrency}"),
                    target,
                ));
            }
        }
        // RSS at the high concurrency.
        for r in self
            .runs
            .iter()
            .filter(|r| r.concurrency == rss_concurrency)
        {
            if let Some(mb) = r.outcome.peak_rss_mb {
                checks.push(TargetCheck {
                    what: format!(
                        "server RSS, {} {} at {} orgs, c={}",
                        r.backend, r.variant, r.orgs, r.concurrency
                    ),
                    target: "<= 100 MB".into(),
                    measured: format!("{mb:.1} MB peak"),
                    met: Some(mb <= 100.0),
                });
            }
        }
        for p in &self.pgbench {
            if let Some(ratio) = p.ratio {
                checks.push(TargetCheck {
                    what: format!(
                        "ours / pgbench ({:?}), detail at {} orgs, c={}",
                        p.mode, p.orgs, p.concurrency
                    )
                    .to_lowercase(),
                    target: "report".into(),
                    measured: format!(
                        "{:.0} req/s / {:.0} tps = {ratio:.2}",
                        p.ours_rps.unwrap_or(0.0),
                        p.tps
                    ),
                    met: None,
                });
            }
        }
        self.targets = checks;
    }

    /// The markdown version.
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# orgwall bench, {} ({}{})\n",
            self.started_at,
            self.commit,
            if self.dirty { ", dirty" } else { "" }
        );
        let _ = writeln!(
            s,
            "Machine: {} cores ({}), {} GiB RAM, Linux {}, {}{}. Load average before/after: {} / {}.\n",
            m.cores,
            m.cpu,
            m.ram_gib,
            m.kernel,
            m.rustc,
            m.postgres.as_deref().map(|p| format!(", PostgreSQL {p}")).unwrap_or_default(),
            m.loadavg_before,
            m.loadavg_after
        );
        if let Some(cmd) = self.config.get("command").and_then(|c| c.as_str()) {
            let _ = writeln!(s, "Command: `{cmd}`\n");
        }
        if self.datasets.is_empty() && self.runs.is_empty() {
            let _ = writeln!(s, "No data set was measured.\n");
        }
        let _ = writeln!(s, "## Data sets\n\n| orgs | backend | tickets | large org | seed s |\n| ---: | --- | ---: | ---: | ---: |");
        for d in &self.datasets {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {:.1} |",
                d.orgs, d.backend, d.tickets, d.large_org_tickets, d.seed_secs
            );
        }
        let _ = writeln!(
            s,
            "\n## Requests\n\n| orgs | backend | variant | workload | conc | req/s | p50 ms | p99 ms | errors | peak RSS MB |\n| ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        let rounds = self.runs.iter().map(|r| r.round).max().unwrap_or(1);
        for r in &self.runs {
            let o = &r.outcome;
            let workload = if rounds > 1 {
                format!("{} #{}", r.workload.name(), r.round)
            } else {
                r.workload.name().to_owned()
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {} | {} |",
                r.orgs,
                r.backend,
                r.variant,
                workload,
                r.concurrency,
                o.rps,
                o.p50_ms,
                o.p99_ms,
                o.errors,
                o.peak_rss_mb
                    .map(|v| format!("{v:.1}"))
                    .unwrap_or_else(|| "-".into())
            );
        }
        if !self.pgbench.is_empty() {
            let _ = writeln!(
                s,
                "\n## pgbench, the detail read's SQL\n\n| orgs | mode | clients | pgbench tps | ours req/s | ours / pgbench |\n| ---: | --- | ---: | ---: | ---: | ---: |"
            );
            for p in &self.pgbench {
                let _ = writeln!(
                    s,
                    "| {} | {:?} | {} | {:.0} | {} | {} |",
                    p.orgs,
                    p.mode,
                    p.concurrency,
                    p.tps,
                    p.ours_rps
                        .map(|v| format!("{v:.0}"))
                        .unwrap_or_else(|| "-".into()),
                    p.ratio
                        .map(|v| format!("{v:.2}"))
                        .unwrap_or_else(|| "-".into())
                );
            }
        }
        if !self.targets.is_empty() {
            let _ = writeln!(s, "\n## Targets (DESIGN.md section 7)\n\n| what | target | measured | met |\n| --- | --- | --- | --- |");
            for t in &self.targets {
                let met = match t.met {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "-",
                };
                let _ = writeln!(s, "| {} | {} | {} | {met} |", t.what, t.target, t.measured);
            }
        }
        let errors: Vec<&RunRecord> = self.runs.iter().filter(|r| r.outcome.errors > 0).collect();
        if !errors.is_empty() {
            let _ = writeln!(s, "\n## Errors\n");
            for r in errors {
                let _ = writeln!(
                    s,
                    "- {} orgs, {} {}, {} c={}: {} errors, statuses {:?}",
                    r.orgs,
                    r.backend,
                    r.variant,
                    r.workload.name(),
                    r.concurrency,
                    r.outcome.errors,
                    r.outcome.statuses
                );
                for e in &r.outcome.error_samples {
                    let _ = writeln!(s, "  - `{}`", e.replace('`', "'"));
                }
            }
        }
        if !self.migrations.is_empty() {
            let _ = writeln!(
                s,
                "\n## Migrations over placements of their own (PostgreSQL)\n\n| schemas | databases | made in s | migrate, nothing pending, s | migrate, one new data-plane migration, s |\n| ---: | ---: | ---: | ---: | ---: |"
            );
            for m in &self.migrations {
                let _ = writeln!(
                    s,
                    "| {} | {} | {:.1} | {:.1} | {:.1} |",
                    m.schemas,
                    m.databases,
                    m.setup_secs,
                    m.nothing_pending_secs,
                    m.one_migration_secs
                );
            }
        }
        if !self.notes.is_empty() {
            let _ = writeln!(s, "\n## Notes\n");
            for n in &self.notes {
                let _ = writeln!(s, "- {n}");
            }
        }
        s
    }

    /// Writes `<date>-<commit>.json` and `.md` into `dir`; returns the paths.
    pub fn write(&self, dir: &Path) -> Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir)?;
        let date = self.started_at.get(..10).unwrap_or("undated");
        let mut stem = format!("{date}-{}", self.commit);
        let mut n = 2;
        while dir.join(format!("{stem}.json")).exists() {
            stem = format!("{date}-{}-{n}", self.commit);
            n += 1;
        }
        let json = dir.join(format!("{stem}.json"));
        let md = dir.join(format!("{stem}.md"));
        std::fs::write(&json, serde_json::to_string_pretty(self)? + "\n")?;
        std::fs::write(&md, self.markdown())?;
        Ok((json, md))
    }
}

/// The median of `v` (the mean of the middle two for an even count).
fn median_of(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return None;
    }
    let hi = v.get(n / 2).copied()?;
    let lo = v.get((n - 1) / 2).copied()?;
    Some((hi + lo) / 2.0)
}
