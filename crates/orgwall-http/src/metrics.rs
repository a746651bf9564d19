//! `GET /metrics` (Prometheus text format) on the operator's own listener ([`router`]),
//! and the layer that measures every request.
//!
//! Series: `orgwall_http_requests_total{method,route,status}`,
//! `orgwall_http_request_duration_seconds{method,route}`,
//! `orgwall_rate_limited_total{scope}`, `orgwall_jobs{status}` and
//! `orgwall_jobs_oldest_age_seconds{status}` (read from the queue at scrape time),
//! `orgwall_db_pool_connections{state}`, `orgwall_access_cache_total{event}` (hits,
//! misses and invalidations of the access cache). Routes are labelled by their template
//! (`/v1/orgs/{org}/tickets/{id}`), never by concrete ids, so the series stay few and
//! carry no tenant data.

use crate::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::time::Instant;

/// The registry and the series the server updates.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    /// Requests refused by a rate limit, by scope (`org`, `user`, `login`).
    pub rate_limited: IntCounterVec,
    jobs: IntGaugeVec,
    jobs_age: IntGaugeVec,
    pool: IntGaugeVec,
    cache: IntCounterVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry.
    // The definitions are constants: a failure here is a programming error that every
    // test would hit at once.
    #[allow(clippy::expect_used)]
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "orgwall_http_requests_total",
                "HTTP requests by route template and status",
            ),
            &["method", "route", "status"],
        )
        .expect("valid metric definition");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "orgwall_http_request_duration_seconds",
                "HTTP request latency by route template",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["method", "route"],
        )
        .expect("valid metric definition");
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "orgwall_rate_limited_total",
                "Requests refused by a rate limit",
            ),
            &["scope"],
        )
        .expect("valid metric definition");
        let jobs = IntGaugeVec::new(
            Opts::new("orgwall_jobs", "Jobs in the queue by status"),
            &["status"],
        )
        .expect("valid metric definition");
        let jobs_age = IntGaugeVec::new(
            Opts::new(
                "orgwall_jobs_oldest_age_seconds",
                "Age of the oldest job by status",
            ),
            &["status"],
        )
        .expect("valid metric definition");
        let pool = IntGaugeVec::new(
            Opts::new("orgwall_db_pool_connections", "Database pool connections"),
            &["state"],
        )
        .expect("valid metric definition");
        let cache = IntCounterVec::new(
            Opts::new(
                "orgwall_access_cache_total",
                "Access cache (sessions, API keys, memberships, slugs) hits, misses and invalidations",
            ),
            &["event"],
        )
        .expect("valid metric definition");
        for c in [
            Box::new(cache.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(requests.clone()),
            Box::new(duration.clone()),
            Box::new(rate_limited.clone()),
            Box::new(jobs.clone()),
            Box::new(jobs_age.clone()),
            Box::new(pool.clone()),
        ] {
            let _ = registry.register(c);
        }
        Metrics {
            registry,
            requests,
            duration,
            rate_limited,
            jobs,
            jobs_age,
            pool,
            cache,
        }
    }
}

/// Measures one request (installed around every route).
pub async fn measure(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let res = next.run(req).await;
    let m = &state.metrics;
    m.requests
        .with_label_values(&[&method, &route, res.status().as_str()])
        .inc();
    m.duration
        .with_label_values(&[&method, &route])
        .observe(start.elapsed().as_secs_f64());
    res
}

/// The operator's metrics listener: `GET /metrics` only, never on the public listener
/// (`serve --metrics-listen`). With a `token`, a scrape must send `Authorization: Bearer
/// <token>` (401 otherwise). Its figures span every org (request counts by route
/// template, jobs, the pool), so no tenant may read them.
pub fn router(state: AppState, token: Option<String>) -> axum::Router {
    let token: Option<std::sync::Arc<str>> = token.filter(|t| !t.is_empty()).map(Into::into);
    axum::Router::new()
        .route("/metrics", get(scrape))
        .route_layer(axum::middleware::from_fn(
            move |req: Request, next: Next| {
                let token = token.clone();
                async move {
                    if let Some(want) = token.as_deref() {
                        let sent = req
                            .headers()
                            .get(header::AUTHORIZATION)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.strip_prefix("Bearer "))
                            .unwrap_or("");
                        if !same(sent.trim(), want) {
                            return crate::problem::Problem::new(
                                axum::http::StatusCode::UNAUTHORIZED,
                                "unauthenticated",
                                "The metrics listener needs its bearer token.",
                            )
                            .into_response();
                        }
                    }
                    next.run(req).await
                }
            },
        ))
        .fallback(crate::problem::not_found_fallback)
        .with_state(state)
}

/// Compares in constant time.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

async fn scrape(State(state): State<AppState>) -> Response {
    let m = &state.metrics;
    let (size, in_use) = state.db.pool_status();
    m.pool
        .with_label_values(&["max"])
        .set(i64::try_from(size).unwrap_or(i64::MAX));
    m.pool
        .with_label_values(&["in_use"])
        .set(i64::try_from(in_use).unwrap_or(i64::MAX));
    let c = state.db.access_cache_stats();
    for (event, now) in [
        ("hit", c.hits),
        ("miss", c.misses),
        ("invalidation", c.invalidations),
    ] {
        let counter = m.cache.with_label_values(&[event]);
        counter.inc_by(now.saturating_sub(counter.get()));
    }
    if let Ok(depth) = queue_depth(&state).await {
        for (status, count, age) in depth {
            m.jobs.with_label_values(&[&status]).set(count);
            m.jobs_age.with_label_values(&[&status]).set(age);
        }
    }
    let mut buf = Vec::new();
    if TextEncoder::new()
        .encode(&m.registry.gather(), &mut buf)
        .is_err()
    {
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], buf).into_response()
}

/// (status, count, age of the oldest in seconds) of queued and running jobs.
async fn queue_depth(state: &AppState) -> orgwall_core::Result<Vec<(String, i64, i64)>> {
    let now = orgwall_store::value::now();
    let mut tx = state
        .db
        .system(orgwall_store::jobs::SYSTEM_TABLE, orgwall_store::Mode::Read)
        .await?;
    let rows = tx
        .query(
            "SELECT status, count(*), min(created_at) FROM jobs WHERE status IN ('queued', 'running') GROUP BY status",
            &[],
        )
        .await?;
    tx.commit().await?;
    let mut out = vec![("queued".to_owned(), 0, 0), ("running".to_owned(), 0, 0)];
    for r in rows {
        let status: String = r.get(0)?;
        let count: i64 = r.get(1)?;
        let oldest: Option<chrono::DateTime<chrono::Utc>> = r.get(2)?;
        let age = oldest.map_or(0, |o| (now - o).num_seconds().max(0));
        if let Some(e) = out.iter_mut().find(|e| e.0 == status) {
            *e = (status, count, age);
        }
    }
    Ok(out)
}
