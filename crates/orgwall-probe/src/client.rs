//! The HTTP side: one client, a request budget, a rate bound, progress on stderr.

use reqwest::Method;
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Who sends a request.
#[derive(Debug, Clone, Default)]
pub struct Principal {
    /// A label for reports (`A`, `B`, `anonymous`).
    pub name: String,
    /// Headers sent with every request (e.g. `Authorization: Bearer ...`).
    pub headers: Vec<(String, String)>,
    /// The value for the tenant path parameter (and tenant header, if the operation has one).
    pub org: Option<String>,
}

/// A response.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Body text.
    pub text: String,
}

impl Reply {
    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.text).ok()
    }

    /// Whether the status is 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Why a request could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The request budget is spent.
    Budget,
    /// Network error or timeout.
    Transport(String),
}

/// A budgeted, rate-bounded client.
pub struct Client {
    http: reqwest::Client,
    base: String,
    max_requests: usize,
    sent: AtomicUsize,
    min_interval: Duration,
    last: Mutex<Option<Instant>>,
    progress: bool,
}

impl Client {
    /// A client for `base` (no trailing slash needed).
    pub fn new(
        base: &str,
        timeout: Duration,
        max_requests: usize,
        rate_per_sec: u32,
        progress: bool,
    ) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_owned(),
            max_requests,
            sent: AtomicUsize::new(0),
            min_interval: if rate_per_sec == 0 {
                Duration::ZERO
            } else {
                Duration::from_secs(1) / rate_per_sec
            },
            last: Mutex::new(None),
            progress,
        })
    }

    /// Requests sent so far.
    pub fn sent(&self) -> usize {
        self.sent.load(Ordering::Relaxed)
    }

    /// Sends one request: `path` already has its parameters filled in (query included).
    pub async fn send(
        &self,
        who: &Principal,
        method: &str,
        path: &str,
        extra_headers: &[(String, String)],
        body: Option<&Value>,
    ) -> Result<Reply, SendError> {
        let n = self.sent.fetch_add(1, Ordering::Relaxed);
        if n >= self.max_requests {
            return Err(SendError::Budget);
        }
        if self.progress && n > 0 && n.is_multiple_of(200) {
            eprintln!("probe: {n} requests sent");
        }
        if !self.min_interval.is_zero() {
            let mut last = self.last.lock().await;
            if let Some(t) = *last {
                let next = t + self.min_interval;
                let now = Instant::now();
                if next > now {
                    tokio::time::sleep(next - now).await;
                }
            }
            *last = Some(Instant::now());
        }
        let m = Method::from_bytes(method.as_bytes())
            .map_err(|e| SendError::Transport(e.to_string()))?;
        let mut rb = self.http.request(m, format!("{}{}", self.base, path));
        for (k, v) in who.headers.iter().chain(extra_headers) {
            rb = rb.header(k.as_str(), v.as_str());
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let r = rb
            .send()
            .await
            .map_err(|e| SendError::Transport(describe(&e)))?;
        let status = r.status().as_u16();
        let text = r
            .text()
            .await
            .map_err(|e| SendError::Transport(describe(&e)))?;
        Ok(Reply { status, text })
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        format!("cannot connect: {e}")
    } else {
        e.to_string()
    }
}
