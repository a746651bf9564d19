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

/// A request body.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// Sent as `application/json`.
    Json(&'a Value),
    /// Sent as `multipart/form-data`: each field of the object is a part; the fields
    /// named in the list are files (a small text file whose name and content carry the
    /// field's value, a canary).
    Multipart(&'a Value, &'a [String]),
}

/// The multipart form for an object: arrays give one part per element, `null`s none.
pub fn form(fields: &Value, files: &[String]) -> reqwest::multipart::Form {
    let mut f = reqwest::multipart::Form::new();
    let Some(m) = fields.as_object() else {
        return f;
    };
    for (k, v) in m {
        let items: Vec<&Value> = match v {
            Value::Array(a) => a.iter().collect(),
            v => vec![v],
        };
        for x in items {
            let text = match x {
                Value::Null => continue,
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if files.contains(k) {
                let part = reqwest::multipart::Part::bytes(
                    format!("orgwall-probe upload {text}\n").into_bytes(),
                )
                .file_name(format!("{text}.txt"));
                let part = match part.mime_str("text/plain") {
                    Ok(p) => p,
                    Err(_) => continue,
                };
                f = f.part(k.clone(), part);
            } else {
                f = f.text(k.clone(), text);
            }
        }
    }
    f
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
        body: Option<Payload<'_>>,
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
        // An operation's own headers (the tenant header) replace the principal's.
        let overridden = |k: &str| extra_headers.iter().any(|(e, _)| e.eq_ignore_ascii_case(k));
        for (k, v) in who
            .headers
            .iter()
            .filter(|(k, _)| !overridden(k))
            .chain(extra_headers)
        {
            rb = rb.header(k.as_str(), v.as_str());
        }
        match body {
            Some(Payload::Json(b)) => rb = rb.json(b),
            Some(Payload::Multipart(b, files)) => rb = rb.multipart(form(b, files)),
            None => {}
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
