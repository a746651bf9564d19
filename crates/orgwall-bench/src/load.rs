//! The load generator: C keep-alive HTTP/1.1 connections (hyper), one task each, every
//! request to a random org with that org's own API key.
//!
//! Each task sends a request, reads the whole response, records its latency, and sends
//! the next (closed loop). Requests that complete during the warmup are not counted;
//! requests that complete inside the measured window are, and throughput is that count
//! over the window. Any status other than 2xx is an error (counted, with the first few
//! bodies kept); a broken connection is an error and is reconnected.

use crate::dataset::{Org, Rng, WORDS};
use anyhow::Result;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the requests do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// `GET /v1/orgs/{org}/tickets/{id}`: a ticket and its history.
    Detail,
    /// `GET /v1/orgs/{org}/tickets?limit=50`: the first page.
    List,
    /// `GET /v1/orgs/{org}/tickets?q=WORD&limit=50`: full-text search, one word.
    Search,
    /// `GET /v1/orgs/{org}/tickets?q=zephyr&limit=50`: a word in one title in 10,000
    /// ([`crate::dataset::RARE_WORD`]).
    SearchRare,
    /// `GET /v1/orgs/{org}/tickets?q=quetzal&limit=50`: a word in one title in 200,000
    /// ([`crate::dataset::RAREST_WORD`]).
    SearchRarest,
    /// `POST /v1/orgs/{org}/notes`: a small note.
    Create,
    /// 60% detail, 20% list, 10% search, 10% create.
    Mixed,
}

impl Workload {
    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Detail => "detail",
            Workload::List => "list",
            Workload::Search => "search",
            Workload::SearchRare => "search-rare",
            Workload::SearchRarest => "search-rarest",
            Workload::Create => "create",
            Workload::Mixed => "mixed",
        }
    }
}

/// One org as the driver sees it.
#[derive(Clone)]
pub struct Target {
    prefix: String,
    auth: HeaderValue,
    tickets: Vec<uuid::Uuid>,
    /// Which group its requests are counted in besides the whole (see
    /// [`Outcome::groups`]); 0 unless [`grouped`] says otherwise.
    group: usize,
    /// The server its requests go to, if not the run's (see [`elsewhere`]).
    addr: Option<SocketAddr>,
}

/// The driver's view of the data set.
pub fn targets(orgs: &[Org]) -> Result<Arc<Vec<Target>>> {
    orgs.iter()
        .map(|o| {
            Ok(Target {
                prefix: format!("/v1/orgs/{}", o.id.hyphenated()),
                auth: HeaderValue::from_str(&format!("Bearer {}", o.key))?,
                tickets: o.sample.clone(),
                group: 0,
                addr: None,
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(Arc::new)
}

/// The same targets with each org in a group of its own choosing (`group_of` gets the
/// org's index): a run over them reports each group's requests apart too, measured in
/// the same window under the same load (the bench's mixed placement comparison).
pub fn grouped(targets: &[Target], group_of: impl Fn(usize) -> usize) -> Arc<Vec<Target>> {
    Arc::new(
        targets
            .iter()
            .enumerate()
            .map(|(i, t)| Target {
                group: group_of(i),
                ..t.clone()
            })
            .collect(),
    )
}

/// `targets` served by another server, at `addr` (the same orgs and keys in a copy of
/// the database, e.g. with row-level security off), counted as group `group`.
pub fn elsewhere(targets: &[Target], addr: SocketAddr, group: usize) -> Vec<Target> {
    targets
        .iter()
        .map(|t| Target {
            group,
            addr: Some(addr),
            ..t.clone()
        })
        .collect()
}

/// A task's open connections, one per server it sends to.
struct Senders {
    /// The run's server (a target's unless it names another).
    default: SocketAddr,
    open: Vec<(SocketAddr, Sender)>,
}

impl Senders {
    fn new(default: SocketAddr) -> Senders {
        Senders {
            default,
            open: Vec::new(),
        }
    }

    /// The connection to `t`'s server (opened if none is) and the `Host` to send it.
    async fn to(&mut self, t: &Target) -> Result<(&mut Sender, HeaderValue)> {
        let addr = t.addr.unwrap_or(self.default);
        let host = HeaderValue::from_str(&addr.to_string())?;
        let i = match self.open.iter().position(|(a, _)| *a == addr) {
            Some(i) => i,
            None => {
                self.open.push((addr, connect(addr).await?));
                self.open.len() - 1
            }
        };
        match self.open.get_mut(i) {
            Some((_, s)) => Ok((s, host)),
            None => anyhow::bail!("no connection to {addr}"),
        }
    }

    /// Forgets the connection to `t`'s server (broken: the next request reconnects).
    fn broken(&mut self, t: &Target) {
        let addr = t.addr.unwrap_or(self.default);
        self.open.retain(|(a, _)| *a != addr);
    }
}

/// How one run went.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// Requests completed in the measured window (errors included).
    pub requests: u64,
    /// Of those, non-2xx answers and broken connections.
    pub errors: u64,
    /// Answers by status, over the measured window.
    pub statuses: BTreeMap<u16, u64>,
    /// The first few error answers.
    pub error_samples: Vec<String>,
    /// The measured window in seconds.
    pub secs: f64,
    /// Requests per second.
    pub rps: f64,
    /// Mean latency, ms.
    pub mean_ms: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Slowest, ms.
    pub max_ms: f64,
    /// Highest server RSS seen during the measured window (sampled every 100 ms), MB.
    pub peak_rss_mb: Option<f64>,
    /// CPU time per request over the measured window (see [`crate::cpu`]); a group's
    /// outcome has none (its CPU is not told apart).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_per_request: Option<crate::cpu::PerRequest>,
    /// With targets in more than one group (see [`grouped`]): each group's requests
    /// alone, by group number (its `peak_rss_mb` is the run's).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Outcome>,
}

struct Stats {
    hist: Histogram<u64>,
    requests: u64,
    errors: u64,
    statuses: BTreeMap<u16, u64>,
    samples: Vec<String>,
}

impl Stats {
    fn new() -> Result<Stats> {
        Ok(Stats {
            hist: Histogram::new_with_bounds(1, 120_000_000, 3)?,
            requests: 0,
            errors: 0,
            statuses: BTreeMap::new(),
            samples: Vec::new(),
        })
    }

    fn error(&mut self, what: String) {
        self.errors += 1;
        if self.samples.len() < 5 {
            self.samples.push(what);
        }
    }

    /// What these requests make of a window of `secs` seconds.
    #[allow(clippy::cast_precision_loss)]
    fn outcome(self, secs: f64, peak_rss_mb: Option<f64>) -> Outcome {
        let ms = |q: f64| self.hist.value_at_quantile(q) as f64 / 1000.0;
        Outcome {
            requests: self.requests,
            errors: self.errors,
            rps: self.requests as f64 / secs,
            mean_ms: self.hist.mean() / 1000.0,
            p50_ms: ms(0.50),
            p90_ms: ms(0.90),
            p99_ms: ms(0.99),
            max_ms: self.hist.max() as f64 / 1000.0,
            statuses: self.statuses,
            error_samples: self.samples,
            secs,
            peak_rss_mb,
            cpu_per_request: None,
            groups: Vec::new(),
        }
    }

    fn merge(&mut self, other: &Stats) -> Result<()> {
        self.hist.add(&other.hist)?;
        self.requests += other.requests;
        self.errors += other.errors;
        for (k, v) in &other.statuses {
            *self.statuses.entry(*k).or_default() += v;
        }
        for s in &other.samples {
            if self.samples.len() < 5 {
                self.samples.push(s.clone());
            }
        }
        Ok(())
    }
}

type Sender = SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

const NOTE: &str = r#"{"title":"bench note","body":"Created by orgwall-bench under load."}"#;

fn request(
    workload: Workload,
    t: &Target,
    rng: &mut Rng,
    host: &HeaderValue,
) -> Result<Request<Full<Bytes>>> {
    let w = match workload {
        Workload::Mixed => match rng.below(100) {
            0..=59 => Workload::Detail,
            60..=79 => Workload::List,
            80..=89 => Workload::Search,
            _ => Workload::Create,
        },
        w => w,
    };
    let (method, uri, body) = match w {
        Workload::Detail => match rng.pick(&t.tickets) {
            Some(id) => (
                Method::GET,
                format!("{}/tickets/{}", t.prefix, id.hyphenated()),
                None,
            ),
            None => (Method::GET, format!("{}/tickets?limit=50", t.prefix), None),
        },
        Workload::List | Workload::Mixed => {
            (Method::GET, format!("{}/tickets?limit=50", t.prefix), None)
        }
        Workload::Search => {
            let word = rng.pick(&WORDS).copied().unwrap_or("login");
            (
                Method::GET,
                format!("{}/tickets?q={word}&limit=50", t.prefix),
                None,
            )
        }
        Workload::SearchRare | Workload::SearchRarest => (
            Method::GET,
            format!(
                "{}/tickets?q={}&limit=50",
                t.prefix,
                match w {
                    Workload::SearchRare => crate::dataset::RARE_WORD,
                    _ => crate::dataset::RAREST_WORD,
                }
            ),
            None,
        ),
        Workload::Create => (
            Method::POST,
            format!("{}/notes", t.prefix),
            Some(Bytes::from_static(NOTE.as_bytes())),
        ),
    };
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header(HOST, host.clone())
        .header(AUTHORIZATION, t.auth.clone());
    if body.is_some() {
        b = b.header(CONTENT_TYPE, "application/json");
    }
    Ok(b.body(Full::new(body.unwrap_or_default()))?)
}

async fn worker(
    n: usize,
    addr: SocketAddr,
    targets: Arc<Vec<Target>>,
    workload: Workload,
    measure_from: Instant,
    end: Instant,
    phases: Option<Phases>,
) -> Result<Vec<Stats>> {
    let groups = group_count(&targets);
    let mut by_group = (0..groups)
        .map(|_| Stats::new())
        .collect::<Result<Vec<_>>>()?;
    // Each group's targets, for phases.
    let members: Vec<Vec<&Target>> = (0..groups)
        .map(|g| targets.iter().filter(|t| t.group == g).collect())
        .collect();
    let mut rng = Rng::new(0x5EED_u64.wrapping_add(n as u64 * 7919));
    let mut senders = Senders::new(addr);
    while Instant::now() < end {
        let picked = match phases {
            Some(p) => members
                .get(p.at(Instant::now(), groups))
                .and_then(|m| rng.pick(m).copied()),
            None => rng.pick(&targets),
        };
        let Some(t) = picked else { break };
        let Some(stats) = by_group.get_mut(t.group) else {
            break;
        };
        let (s, host) = match senders.to(t).await {
            Ok(s) => s,
            Err(e) => {
                if Instant::now() >= measure_from {
                    stats.requests += 1;
                    stats.error(format!("connect: {e}"));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let req = request(workload, t, &mut rng, &host)?;
        let what = format!("{} {}", req.method(), req.uri());
        let t0 = Instant::now();
        let res: Result<(hyper::StatusCode, Bytes)> = async {
            s.ready().await?;
            let resp = s.send_request(req).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            Ok((status, body))
        }
        .await;
        let done = Instant::now();
        if done < measure_from || done > end {
            if res.is_err() {
                senders.broken(t);
            }
            continue;
        }
        stats.requests += 1;
        let micros = u64::try_from((done - t0).as_micros()).unwrap_or(u64::MAX);
        stats.hist.saturating_record(micros.max(1));
        match res {
            Ok((status, body)) => {
                *stats.statuses.entry(status.as_u16()).or_default() += 1;
                if !status.is_success() {
                    let text: String = String::from_utf8_lossy(&body).chars().take(300).collect();
                    stats.error(format!("{status} {what}: {text}"));
                }
            }
            Err(e) => {
                senders.broken(t);
                stats.error(format!("{what}: {e}"));
            }
        }
    }
    Ok(by_group)
}

/// How many groups `targets` are in (see [`grouped`]).
fn group_count(targets: &[Target]) -> usize {
    targets.iter().map(|t| t.group + 1).max().unwrap_or(1)
}

/// Groups taking turns: from `start` on, each `len` long phase sends requests to one
/// group's orgs only (group 0, 1, ..., 0, ...). Each group's requests are then timed as
/// if that group had the server to itself, in turns short enough that a drift of the
/// machine's speed over a run (this VM's can move a run's rate by a fifth) falls on every
/// group alike. A request is counted in the group it was sent to.
#[derive(Clone, Copy, Debug)]
struct Phases {
    start: Instant,
    len: Duration,
}

impl Phases {
    /// The group whose phase `now` is in.
    fn at(self, now: Instant, groups: usize) -> usize {
        let n = now.saturating_duration_since(self.start).as_nanos() / self.len.as_nanos().max(1);
        usize::try_from(n % groups.max(1) as u128).unwrap_or(0)
    }

    /// How long each group's phases cover of `[from, to)`, in seconds.
    fn seconds(self, from: Instant, to: Instant, groups: usize) -> Vec<f64> {
        let mut secs = vec![0.0; groups.max(1)];
        let mut t = from;
        while t < to {
            let since = t.saturating_duration_since(self.start).as_nanos();
            let len = self.len.as_nanos().max(1);
            let next = self.start
                + Duration::from_nanos(u64::try_from((since / len + 1) * len).unwrap_or(u64::MAX));
            let until = next.min(to);
            if let Some(s) = secs.get_mut(self.at(t, groups)) {
                *s += (until - t).as_secs_f64();
            }
            t = until;
        }
        secs
    }
}

/// Sends one detail read to every org (each with its own key), `concurrency` at a time:
/// afterwards every org's credentials are in the server's access cache. Returns the
/// seconds it took and the number of failed requests.
pub async fn touch_all(
    addr: SocketAddr,
    targets: Arc<Vec<Target>>,
    concurrency: usize,
) -> Result<(f64, u64)> {
    let start = Instant::now();
    let c = concurrency.max(1);
    let workers: Vec<_> = (0..c)
        .map(|n| {
            let targets = targets.clone();
            tokio::spawn(async move {
                let mut rng = Rng::new(0x70C4_u64.wrapping_add(n as u64));
                let mut senders = Senders::new(addr);
                let mut failed = 0u64;
                for t in targets.iter().skip(n).step_by(c) {
                    let (sender, host) = senders.to(t).await?;
                    let req = request(Workload::Detail, t, &mut rng, &host)?;
                    sender.ready().await?;
                    let resp = sender.send_request(req).await?;
                    let ok = resp.status().is_success();
                    resp.into_body().collect().await?;
                    failed += u64::from(!ok);
                }
                Ok::<u64, anyhow::Error>(failed)
            })
        })
        .collect();
    let mut failed = 0;
    for w in workers {
        failed += w.await??;
    }
    Ok((start.elapsed().as_secs_f64(), failed))
}

/// A run's timing.
pub struct Window {
    /// Run, not measured, first.
    pub warmup: Duration,
    /// Then measured.
    pub duration: Duration,
    /// The groups of the targets take turns in phases this long (see [`Phases`]); none:
    /// every request to any target.
    pub phase: Option<Duration>,
}

/// Runs `workload` at `concurrency` against `addr` over `window`. Samples the RSS and
/// CPU time of `pid` during the measured window.
pub async fn run(
    addr: SocketAddr,
    targets: Arc<Vec<Target>>,
    workload: Workload,
    concurrency: usize,
    window: Window,
    pid: Option<u32>,
) -> Result<Outcome> {
    let Window {
        warmup,
        duration,
        phase,
    } = window;
    let start = Instant::now();
    let phases = phase.map(|len| Phases { start, len });
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let sampler = tokio::spawn(async move {
        let mut peak: Option<u64> = None;
        tokio::time::sleep_until(measure_from.into()).await;
        let from = crate::cpu::snapshot(pid);
        while Instant::now() < end {
            if let Some(kb) = pid.and_then(|pid| crate::server::proc_kb(pid, "VmRSS")) {
                peak = Some(peak.map_or(kb, |p| p.max(kb)));
            }
            tokio::time::sleep(
                Duration::from_millis(100).min(end.saturating_duration_since(Instant::now())),
            )
            .await;
        }
        (peak, from, crate::cpu::snapshot(pid))
    });
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|n| {
            tokio::spawn(worker(
                n,
                addr,
                targets.clone(),
                workload,
                measure_from,
                end,
                phases,
            ))
        })
        .collect();
    let mut groups: Vec<Stats> = Vec::new();
    for w in workers {
        for (g, stats) in w.await??.into_iter().enumerate() {
            match groups.get_mut(g) {
                Some(into) => into.merge(&stats)?,
                None => groups.push(stats),
            }
        }
    }
    let (peak, cpu_from, cpu_to) = sampler.await?;
    #[allow(clippy::cast_precision_loss)]
    let peak = peak.map(|kb| kb as f64 / 1024.0);
    let secs = duration.as_secs_f64();
    let mut all = Stats::new()?;
    for g in &groups {
        all.merge(g)?;
    }
    let mut outcome = all.outcome(secs, peak);
    outcome.cpu_per_request = crate::cpu::per_request(cpu_from, cpu_to, outcome.requests);
    if groups.len() > 1 {
        // With phases each group had the server for its phases' share of the window.
        let shares = match phases {
            Some(p) => p.seconds(measure_from, end, groups.len()),
            None => vec![secs; groups.len()],
        };
        outcome.groups = groups
            .into_iter()
            .zip(shares)
            .map(|(g, s)| g.outcome(s, peak))
            .collect();
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn phases_take_turns_and_share_a_window_by_the_turns_in_it() {
        let start = Instant::now();
        let p = Phases {
            start,
            len: Duration::from_millis(100),
        };
        let at = |ms: u64| start + Duration::from_millis(ms);
        assert_eq!(p.at(at(0), 3), 0);
        assert_eq!(p.at(at(150), 3), 1);
        assert_eq!(p.at(at(250), 3), 2);
        assert_eq!(p.at(at(350), 3), 0);
        // From 50 ms to 420 ms: group 0 has 50-100 and 300-400, group 1 100-200 and
        // 400-420, group 2 200-300.
        let secs = p.seconds(at(50), at(420), 3);
        let near = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(near(secs[0], 0.15), "{secs:?}");
        assert!(near(secs[1], 0.12), "{secs:?}");
        assert!(near(secs[2], 0.10), "{secs:?}");
        // One group: the whole window.
        assert!(near(p.seconds(at(50), at(420), 1)[0], 0.37));
    }
}
