//! # orgwall-probe: prove that no endpoint leaks across tenants
//!
//! Given an OpenAPI 3.x document (JSON or YAML), a base URL and two principals (A and B,
//! each a set of headers plus the value of the tenant path parameter or header), the
//! probe:
//!
//! 1. **discovers** as A and as B: walks every collection read (following `next_cursor`
//!    pagination) and, with `write`, creates resources as B with unique canary strings in
//!    its text fields and uploaded files (JSON and `multipart/form-data` bodies are
//!    synthesized from the document), collecting each principal's ids by resource kind;
//! 2. **attacks** as A, operation by operation: B's ids in every id position (path,
//!    query, body references), B's tenant in the path, the tenant header and the body,
//!    tenant-ish fields added to A's writes (mass assignment), and every operation without
//!    credentials; where B's id is refused, an id of the same shape that exists nowhere
//!    too (a different answer is an existence oracle);
//! 3. **judges**: a detail, nested or write route must deny (401/403/404 by default), a
//!    response to A must never contain one of B's ids (that A cannot see itself) or
//!    canaries, a write referencing B's ids must be refused, B's id must be refused just as
//!    an id that exists nowhere is, and B's data must be unchanged afterwards (re-read as B).
//!
//! It works against any HTTP API: the tenant parameter and header are given
//! ([`Config::tenant_param`], [`Config::tenant_header`]) or inferred ([`spec::Tenancy`]),
//! ids are recognized in any case style (`{documentId}`, `{doc_id}`, `{uuid}`). orgwall's
//! hints (`x-org` on the tenant parameter, `x-org-scoped-id` on id parameters,
//! `x-permission`) make it more precise but are not required. The result is a [`Report`]
//! (human table, JSON, JUnit XML).
#![forbid(unsafe_code)]

pub mod cli;
pub mod client;
pub mod report;
pub mod spec;

use client::{Client, Payload, Principal, Reply, SendError};
use serde_json::{json, Map, Value};
use spec::{Location, Media, Operation};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

pub use report::{Finding, FindingKind, OpReport, Report};

/// What to probe and how.
#[derive(Debug, Clone)]
pub struct Config {
    /// The OpenAPI document: a URL (`http(s)://`) or a file path.
    pub spec: String,
    /// The API's base URL (paths of the document are appended).
    pub base_url: String,
    /// The attacker.
    pub a: Principal,
    /// The victim.
    pub b: Principal,
    /// Also check that every operation denies requests without credentials.
    pub anonymous: bool,
    /// Create resources as B during discovery (planting canaries).
    pub write: bool,
    /// Statuses that count as a denial.
    pub deny: Vec<u16>,
    /// Total request budget.
    pub max_requests: usize,
    /// Requests per second at most (0: unbounded).
    pub rate_per_sec: u32,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Ids of each kind to try per position.
    pub ids_per_kind: usize,
    /// Progress lines on stderr.
    pub progress: bool,
    /// The tenant path parameter's name, when the probe should not infer it.
    pub tenant_param: Option<String>,
    /// The tenant header's name, when the probe should not infer it.
    pub tenant_header: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            spec: String::new(),
            base_url: String::new(),
            a: Principal {
                name: "A".into(),
                ..Principal::default()
            },
            b: Principal {
                name: "B".into(),
                ..Principal::default()
            },
            anonymous: true,
            write: false,
            deny: vec![401, 403, 404],
            max_requests: 20_000,
            rate_per_sec: 0,
            timeout: Duration::from_secs(10),
            ids_per_kind: 2,
            progress: false,
            tenant_param: None,
            tenant_header: None,
        }
    }
}

/// Why the probe could not run at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunError(pub String);

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Loads the document (JSON or YAML) from a URL or a file.
pub async fn load_spec(
    source: &str,
    timeout: Duration,
    tenancy: &spec::Tenancy,
) -> Result<Vec<Operation>, RunError> {
    let (text, format) = if source.starts_with("http://") || source.starts_with("https://") {
        let c = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| RunError(e.to_string()))?;
        let r =
            c.get(source).send().await.map_err(|e| {
                RunError(format!("cannot fetch the OpenAPI document {source}: {e}"))
            })?;
        if !r.status().is_success() {
            return Err(RunError(format!(
                "cannot fetch the OpenAPI document {source}: HTTP {}",
                r.status()
            )));
        }
        let ct = r
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = r
            .text()
            .await
            .map_err(|e| RunError(format!("cannot read the OpenAPI document: {e}")))?;
        (text, spec::Format::guess(source, ct.as_deref()))
    } else {
        let text = std::fs::read_to_string(source)
            .map_err(|e| RunError(format!("cannot read the OpenAPI document {source}: {e}")))?;
        (text, spec::Format::guess(source, None))
    };
    spec::parse_with(&text, format, tenancy)
        .map_err(|e| RunError(format!("invalid OpenAPI document {source}: {e}")))
}

/// What one principal can see.
#[derive(Debug, Default, Clone)]
struct Seen {
    /// Ids by kind.
    ids: BTreeMap<String, BTreeSet<String>>,
    /// Canary strings planted by this principal.
    canaries: BTreeSet<String>,
    /// The bodies of the collection reads (to look for another principal's canaries).
    texts: Vec<String>,
}

impl Seen {
    fn all_ids(&self) -> BTreeSet<&String> {
        self.ids.values().flatten().collect()
    }

    /// The ids of a kind, or of a kind it abbreviates or that abbreviates it (`doc` and
    /// `document`).
    fn of_kind(&self, kind: &str) -> Option<&BTreeSet<String>> {
        self.ids.get(kind).or_else(|| {
            self.ids
                .iter()
                .find(|(k, _)| spec::same_kind(kind, k))
                .map(|(_, v)| v)
        })
    }

    fn first(&self, kind: &str) -> Option<&String> {
        self.of_kind(kind).and_then(|s| s.iter().next())
    }

    fn add(&mut self, kind: &str, id: &str) {
        if looks_like_id(id) {
            self.ids
                .entry(kind.to_owned())
                .or_default()
                .insert(id.to_owned());
        }
    }
}

/// An id worth tracking: long enough not to appear by chance (UUIDs, prefixed ids, long
/// numbers are fine; `1` or `open` are not).
fn looks_like_id(s: &str) -> bool {
    s.len() >= 8
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The kind of the collection a path reads: its last static segment.
fn path_kind(path: &str) -> String {
    path.split('/')
        .rfind(|s| !s.is_empty() && !s.starts_with('{'))
        .map(spec::singular)
        .unwrap_or_default()
}

/// The kind an id field names, in any case style: `id`, `uuid`, `ID` -> the enclosing
/// kind; `project_id`, `projectId`, `ProjectID`, `project-uuid` -> `project`.
fn id_field_kind(key: &str, kind: &str) -> Option<String> {
    let (stem, had) = spec::id_stem(key, spec::FIELD_ID_WORDS);
    match (had, stem.is_empty()) {
        (false, _) => None,
        (true, true) => Some(kind.to_owned()),
        (true, false) => Some(stem),
    }
}

/// Keys that wrap the payload without naming a kind.
fn is_wrapper(key: &str) -> bool {
    matches!(
        key,
        "items" | "data" | "results" | "result" | "records" | "page" | "payload"
    )
}

fn collect(v: &Value, kind: &str, seen: &mut Seen) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match x {
                    Value::String(s) => {
                        if let Some(k) = id_field_kind(k, kind) {
                            seen.add(&k, s);
                        }
                    }
                    Value::Object(_) if !is_wrapper(k) => collect(x, &spec::singular(k), seen),
                    _ => collect(x, kind, seen),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect(x, kind, seen)),
        _ => {}
    }
}

fn percent(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Fills a path template; `None` when a value is missing.
fn fill(path: &str, values: &BTreeMap<String, String>) -> Option<String> {
    let mut out = String::new();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => out.push_str(&percent(values.get(name)?)),
            None => out.push_str(seg),
        }
    }
    Some(if out.is_empty() { "/".into() } else { out })
}

fn with_query(path: &str, q: &[(String, String)]) -> String {
    if q.is_empty() {
        return path.to_owned();
    }
    let qs: Vec<String> = q
        .iter()
        .map(|(k, v)| format!("{}={}", percent(k), percent(v)))
        .collect();
    format!("{path}?{}", qs.join("&"))
}

fn canary() -> String {
    format!("probecanary{:016x}", rand::random::<u64>())
}

/// A plausible value for a body field. `tenant` names fields that name the tenant beyond
/// those named like one (`--tenant-param`, `--tenant-header`); they are left out.
fn synth(
    name: &str,
    schema: &Value,
    own: &Seen,
    tenant: &[String],
    canaries: &mut BTreeSet<String>,
    depth: usize,
) -> Option<Value> {
    if depth > 4 {
        return None;
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if let Some(e) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find(|v| !v.is_null()))
    {
        return Some(e.clone());
    }
    let mut planted = || {
        let c = canary();
        canaries.insert(c.clone());
        c
    };
    // File content (a multipart file part, or base64 in JSON): a canary.
    if spec::is_binary(schema) {
        return Some(json!(planted()));
    }
    if types.contains(&"array") && schema.get("items").is_some_and(spec::is_binary) {
        return Some(json!([planted()]));
    }
    if types.contains(&"object") || schema.get("properties").is_some() {
        let props = schema.get("properties").and_then(Value::as_object)?;
        let mut m = Map::new();
        for (k, s) in props {
            if let Some(v) = synth(k, s, own, tenant, canaries, depth + 1) {
                m.insert(k.clone(), v);
            }
        }
        return Some(Value::Object(m));
    }
    if types.contains(&"array") {
        return Some(json!([]));
    }
    if types.contains(&"integer") || types.contains(&"number") {
        return Some(json!(1));
    }
    if types.contains(&"boolean") {
        return Some(json!(false));
    }
    // Strings (or untyped).
    if is_org_field(name, tenant) {
        return None;
    }
    let (stem, is_id) = spec::id_stem(name, spec::FIELD_ID_WORDS);
    if is_id && !stem.is_empty() {
        return own.first(&stem).map(|id| json!(id));
    }
    let snake = spec::words(name).join("_");
    let r = rand::random::<u32>();
    let v = match snake.as_str() {
        "email" => format!("probe{r}@example.test"),
        "key" => format!("P{}", r % 1_000_000),
        "slug" => format!("probe-{r}"),
        "password" | "new_password" | "current_password" => format!("Probe-{r}-long-password"),
        "role" => "viewer".into(),
        "token" => format!("probe-token-{r}"),
        "status" | "cursor" => return None,
        n if n.ends_with("_at") => "2099-01-01T00:00:00Z".into(),
        _ => planted(),
    };
    Some(json!(v))
}

/// Whether a body field names the tenant: named like one (`org_id`, `workspaceId`,
/// `account`), or named as the tenant parameter or header given.
fn is_org_field(name: &str, tenant: &[String]) -> bool {
    spec::is_tenant_name(name) || tenant.iter().any(|t| t.eq_ignore_ascii_case(name))
}

/// Fields a mass-assignment attempt adds to a write.
const MASS_FIELDS: &[&str] = &[
    "org_id",
    "tenant_id",
    "organization_id",
    "owner_id",
    "created_by",
    "orgId",
    "tenantId",
    "workspaceId",
    "accountId",
    "ownerId",
];

struct Probe<'c> {
    cfg: &'c Config,
    client: Client,
    ops: Vec<Operation>,
    report: Report,
    transport_errors: usize,
    /// Canaries A planted in its own writes (they must never show up in B's data).
    a_canaries: BTreeSet<String>,
    /// The tenant parameter and header names given (body fields so named are the tenant).
    tenant_names: Vec<String>,
}

impl Probe<'_> {
    fn org_of(&self, who: &Principal) -> Option<String> {
        who.org.clone()
    }

    async fn send(
        &mut self,
        op_index: usize,
        who: &Principal,
        path: &str,
        headers: &[(String, String)],
        body: Option<&Value>,
    ) -> Option<Reply> {
        let (method, media, files) = self
            .ops
            .get(op_index)
            .map(|o| (o.method.clone(), o.media, o.files.clone()))
            .unwrap_or_default();
        let payload = body.map(|b| match media {
            Media::Json => Payload::Json(b),
            Media::Multipart => Payload::Multipart(b, &files),
        });
        match self.client.send(who, &method, path, headers, payload).await {
            Ok(r) => Some(r),
            Err(SendError::Budget) => {
                self.report.budget_exhausted = true;
                None
            }
            Err(SendError::Transport(e)) => {
                self.transport_errors += 1;
                if let Some(r) = self.report.ops.get_mut(op_index) {
                    r.errors.push(format!("{method} {path}: {e}"));
                }
                None
            }
        }
    }

    /// Path values for `who`: the tenant parameter and ids of their own.
    fn own_values(&self, op: &Operation, who: &Principal, seen: &Seen) -> BTreeMap<String, String> {
        let mut v = BTreeMap::new();
        for p in op.params.iter().filter(|p| p.location == Location::Path) {
            if p.is_org {
                // The tenant given, else one this principal discovered (`GET /workspaces`).
                let o = self
                    .org_of(who)
                    .or_else(|| p.kind.as_deref().and_then(|k| seen.first(k)).cloned());
                if let Some(o) = o {
                    v.insert(p.name.clone(), o);
                }
            } else if let Some(id) = p.kind.as_deref().and_then(|k| seen.first(k)) {
                v.insert(p.name.clone(), id.clone());
            }
        }
        v
    }

    fn org_headers(&self, op: &Operation, who: &Principal) -> Vec<(String, String)> {
        match (op.org_header(), self.org_of(who)) {
            (Some(h), Some(o)) if op.org_path_param().is_none() => vec![(h.name.clone(), o)],
            _ => vec![],
        }
    }

    /// A's tenant-scoped reads without ids (lists, counts, stats): (op, path, body).
    async fn tenant_reads(&mut self, who: &Principal, seen: &Seen) -> Vec<(usize, String, String)> {
        let mut out = Vec::new();
        for i in 0..self.ops.len() {
            let Some(op) = self.ops.get(i).cloned() else {
                continue;
            };
            let tenant = op.org_path_param().is_some() || op.org_header().is_some();
            if op.method != "GET" || op.public || !tenant || op.id_params().next().is_some() {
                continue;
            }
            let Some(path) = fill(&op.path, &self.own_values(&op, who, seen)) else {
                continue;
            };
            let headers = self.org_headers(&op, who);
            if let Some(r) = self.send(i, who, &path, &headers, None).await {
                if r.ok() {
                    out.push((i, path, r.text));
                }
            }
        }
        out
    }

    /// Reads every collection as `who`, following pagination; with `write`, creates.
    async fn discover(&mut self, who: &Principal, write: bool) -> Seen {
        let mut seen = Seen::default();
        for round in 0..3 {
            let before = seen.all_ids().len();
            for i in 0..self.ops.len() {
                let Some(op) = self.ops.get(i).cloned() else {
                    continue;
                };
                if op.method == "GET" {
                    let values = self.own_values(&op, who, &seen);
                    let Some(path) = fill(&op.path, &values) else {
                        continue;
                    };
                    let headers = self.org_headers(&op, who);
                    let kind = path_kind(&op.path);
                    let mut cursor: Option<String> = None;
                    for _page in 0..20 {
                        let q: Vec<(String, String)> = cursor
                            .iter()
                            .map(|c| ("cursor".to_string(), c.clone()))
                            .collect();
                        let Some(r) = self
                            .send(i, who, &with_query(&path, &q), &headers, None)
                            .await
                        else {
                            break;
                        };
                        let Some(j) = r.ok().then(|| r.json()).flatten() else {
                            break;
                        };
                        collect(&j, &kind, &mut seen);
                        if seen.texts.len() < 2_000 {
                            seen.texts.push(r.text.clone());
                        }
                        match j
                            .get("next_cursor")
                            .or_else(|| j.get("nextCursor"))
                            .or_else(|| j.get("next"))
                            .and_then(Value::as_str)
                        {
                            Some(c) if !c.is_empty() && Some(c) != cursor.as_deref() => {
                                cursor = Some(c.to_owned())
                            }
                            _ => break,
                        }
                    }
                } else if write && round == 0 && op.method == "POST" && !op.public {
                    let values = self.own_values(&op, who, &seen);
                    let Some(path) = fill(&op.path, &values) else {
                        continue;
                    };
                    if op.org_path_param().is_none() && op.org_header().is_none() {
                        continue; // only tenant resources
                    }
                    let mut canaries = BTreeSet::new();
                    let body = op
                        .body
                        .as_ref()
                        .and_then(|s| synth("", s, &seen, &self.tenant_names, &mut canaries, 0));
                    let headers = self.org_headers(&op, who);
                    if let Some(r) = self.send(i, who, &path, &headers, body.as_ref()).await {
                        if r.ok() {
                            if let Some(j) = r.json() {
                                collect(&j, &path_kind(&op.path), &mut seen);
                            }
                            seen.canaries.extend(canaries);
                        }
                    }
                }
            }
            if seen.all_ids().len() == before && round > 0 {
                break;
            }
        }
        seen
    }

    fn judge_leak(
        &mut self,
        i: usize,
        what: &str,
        path: &str,
        sent: &str,
        r: &Reply,
        secrets: &[String],
    ) {
        for s in secrets {
            if r.text.contains(s.as_str()) && !sent.contains(s.as_str()) {
                self.finding(
                    i,
                    FindingKind::Leak,
                    format!("{what}: response {} contains B's {s}", r.status),
                    path,
                );
                return;
            }
        }
    }

    fn finding(&mut self, i: usize, kind: FindingKind, detail: String, path: &str) {
        if let Some(r) = self.report.ops.get_mut(i) {
            r.findings.push(Finding {
                kind,
                detail,
                request: path.to_owned(),
            });
        }
    }

    fn count(&mut self, i: usize, denied: bool) {
        if let Some(r) = self.report.ops.get_mut(i) {
            r.tried += 1;
            if denied {
                r.denied += 1;
            }
        }
    }

    /// One attack request: expects a denial when `must_deny`. Returns the answer.
    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &mut self,
        i: usize,
        label: &str,
        path: &str,
        headers: &[(String, String)],
        body: Option<&Value>,
        must_deny: bool,
        secrets: &[String],
    ) -> Option<Reply> {
        let a = self.cfg.a.clone();
        let r = self.send(i, &a, path, headers, body).await?;
        let denied = self.cfg.deny.contains(&r.status);
        self.count(i, denied);
        let sent = format!(
            "{path} {headers:?} {}",
            body.map(Value::to_string).unwrap_or_default()
        );
        self.judge_leak(i, label, path, &sent, &r, secrets);
        if must_deny && r.ok() {
            self.finding(
                i,
                FindingKind::Leak,
                format!("{label}: answered {} instead of a denial", r.status),
                path,
            );
        } else if must_deny && !denied && r.status >= 500 {
            self.finding(
                i,
                FindingKind::Warning,
                format!(
                    "{label}: answered {} (server error) instead of a denial",
                    r.status
                ),
                path,
            );
        }
        Some(r)
    }

    /// After A was denied B's id `bid` in `{name}` (answer `to_b`), A asks for an id of
    /// the same shape that exists nowhere: a different answer (status, problem code or
    /// body shape) tells A that B's id exists. A second nowhere-id must be answered like
    /// the first, so an answer that varies anyway is not taken for an oracle.
    #[allow(clippy::too_many_arguments)]
    async fn existence_oracle(
        &mut self,
        i: usize,
        template: &str,
        values: &BTreeMap<String, String>,
        name: &str,
        bid: &str,
        to_b: &Reply,
        headers: &[(String, String)],
        body: Option<&Value>,
    ) {
        let a = self.cfg.a.clone();
        let mut ghosts = Vec::new();
        for _ in 0..2 {
            let ghost = nowhere_like(bid);
            let mut v = values.clone();
            v.insert(name.to_owned(), ghost);
            let Some(path) = fill(template, &v) else {
                return;
            };
            let Some(r) = self.send(i, &a, &path, headers, body).await else {
                return;
            };
            self.count(i, self.cfg.deny.contains(&r.status));
            if !oracle_comparable(&r) {
                return;
            }
            match ghosts.first() {
                None => {
                    if difference(to_b, &r).is_none() {
                        return; // B's id is answered like an id that exists nowhere
                    }
                }
                Some(first) => {
                    if difference(first, &r).is_some() {
                        return; // the answers to ids that exist nowhere vary
                    }
                }
            }
            ghosts.push(r);
        }
        let (Some(ghost), Some(b_path)) = (ghosts.first(), fill(template, values)) else {
            return;
        };
        let what = difference(to_b, ghost).unwrap_or_default();
        self.finding(
            i,
            FindingKind::ExistenceOracle,
            format!("B's id in {{{name}}}: {what}; A learns that the id exists in another tenant"),
            &b_path,
        );
    }

    async fn attack(&mut self, a_seen: &Seen, b_seen: &Seen) {
        let a_ids = a_seen.all_ids();
        let mut secrets: Vec<String> = b_seen
            .all_ids()
            .into_iter()
            .filter(|id| !a_ids.contains(id))
            .cloned()
            .collect();
        secrets.extend(b_seen.canaries.iter().cloned());
        if let Some(o) = self
            .cfg
            .b
            .org
            .clone()
            .filter(|o| looks_like_id(o) && o.len() >= 16)
        {
            secrets.push(o);
        }
        let b_only = |kind: &str| -> Vec<String> {
            b_seen
                .of_kind(kind)
                .map(|s| {
                    s.iter()
                        .filter(|id| !a_ids.contains(id))
                        .take(self.cfg.ids_per_kind)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default()
        };
        let any_b: Vec<String> = secrets
            .iter()
            .filter(|s| !s.starts_with("probecanary"))
            .take(self.cfg.ids_per_kind)
            .cloned()
            .collect();
        let b_org = self.cfg.b.org.clone();
        for i in 0..self.ops.len() {
            let Some(op) = self.ops.get(i).cloned() else {
                continue;
            };
            if self.cfg.progress {
                eprintln!(
                    "probe: {} {} ({}/{})",
                    op.method,
                    op.path,
                    i + 1,
                    self.ops.len()
                );
            }
            // Without credentials.
            if self.cfg.anonymous && !op.public {
                let mut values = self.own_values(&op, &self.cfg.a, a_seen);
                for p in op.id_params() {
                    if let Some(id) = p
                        .kind
                        .as_deref()
                        .map(&b_only)
                        .and_then(|v| v.into_iter().next())
                        .or_else(|| any_b.first().cloned())
                    {
                        values.insert(p.name.clone(), id);
                    }
                }
                if let Some(path) =
                    fill(&op.path, &values).or_else(|| fill(&op.path, &placeholder_values(&op)))
                {
                    let anon = Principal {
                        name: "anonymous".into(),
                        ..Principal::default()
                    };
                    let headers = self.org_headers(&op, &self.cfg.a);
                    let body = op.body.as_ref().map(|_| json!({}));
                    if let Some(r) = self.send(i, &anon, &path, &headers, body.as_ref()).await {
                        let denied = r.status == 401 || r.status == 403;
                        self.count(i, denied);
                        if !denied {
                            self.finding(
                                i,
                                if r.ok() {
                                    FindingKind::Leak
                                } else {
                                    FindingKind::Warning
                                },
                                format!(
                                    "without credentials: answered {} instead of 401/403",
                                    r.status
                                ),
                                &path,
                            );
                        }
                        self.judge_leak(i, "without credentials", &path, &path, &r, &secrets);
                    }
                }
            }
            if op.public {
                // Public operations: exercised anonymously with a plausible body; nothing of
                // B's may come back.
                let path =
                    fill(&op.path, &placeholder_values(&op)).unwrap_or_else(|| op.path.clone());
                let mut c = BTreeSet::new();
                let body = op
                    .body
                    .as_ref()
                    .and_then(|s| synth("", s, &Seen::default(), &self.tenant_names, &mut c, 0));
                let anon = Principal::default();
                if let Some(r) = self.send(i, &anon, &path, &[], body.as_ref()).await {
                    self.count(i, false);
                    self.judge_leak(i, "public operation", &path, &path, &r, &secrets);
                }
                continue;
            }
            let own = self.own_values(&op, &self.cfg.a, a_seen);
            let own_headers = self.org_headers(&op, &self.cfg.a);
            let mut c = BTreeSet::new();
            let own_body = op
                .body
                .as_ref()
                .and_then(|s| synth("", s, a_seen, &self.tenant_names, &mut c, 0));
            self.a_canaries.extend(c);
            // B's tenant in the path.
            let b_tenant = op.org_path_param().and_then(|p| {
                b_org.clone().or_else(|| {
                    p.kind
                        .as_deref()
                        .map(&b_only)
                        .and_then(|x| x.into_iter().next())
                })
            });
            if let (Some(p), Some(bo)) = (op.org_path_param(), b_tenant) {
                let mut v = own.clone();
                v.insert(p.name.clone(), bo);
                for ip in op.id_params() {
                    v.entry(ip.name.clone()).or_insert_with(|| {
                        ip.kind
                            .as_deref()
                            .map(&b_only)
                            .and_then(|x| x.into_iter().next())
                            .unwrap_or_else(placeholder_id)
                    });
                }
                if let Some(path) = fill(&op.path, &v) {
                    self.attempt(
                        i,
                        "B's tenant in the path",
                        &path,
                        &[],
                        own_body.as_ref(),
                        true,
                        &secrets,
                    )
                    .await;
                }
            }
            // B's tenant in the header.
            if let (Some(h), Some(bo)) = (op.org_header(), b_org.clone()) {
                if op.org_path_param().is_none() {
                    let mut v = own.clone();
                    for ip in op.id_params() {
                        v.entry(ip.name.clone()).or_insert_with(placeholder_id);
                    }
                    if let Some(path) = fill(&op.path, &v) {
                        // A header the document does not declare for this operation may be
                        // ignored by it: then only B's data in the answer is a leak.
                        let headers = vec![(h.name.clone(), bo)];
                        self.attempt(
                            i,
                            "B's tenant in the header",
                            &path,
                            &headers,
                            own_body.as_ref(),
                            h.declared,
                            &secrets,
                        )
                        .await;
                    }
                }
            }
            // B's ids in each path id position (other positions: A's own ids).
            let id_params: Vec<_> = op.id_params().cloned().collect();
            for p in &id_params {
                let candidates = p
                    .kind
                    .as_deref()
                    .map(&b_only)
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| any_b.clone());
                let mut oracle_checked = false;
                for bid in candidates {
                    let mut v = own.clone();
                    for other in &id_params {
                        if other.name != p.name {
                            v.entry(other.name.clone()).or_insert_with(placeholder_id);
                        }
                    }
                    v.insert(p.name.clone(), bid.clone());
                    let Some(path) = fill(&op.path, &v) else {
                        continue;
                    };
                    let r = self
                        .attempt(
                            i,
                            &format!("B's id in {{{}}}", p.name),
                            &path,
                            &own_headers,
                            own_body.as_ref(),
                            true,
                            &secrets,
                        )
                        .await;
                    if let Some(r) =
                        r.filter(|r| !oracle_checked && !r.ok() && oracle_comparable(r))
                    {
                        oracle_checked = true;
                        self.existence_oracle(
                            i,
                            &op.path,
                            &v,
                            &p.name,
                            &bid,
                            &r,
                            &own_headers,
                            own_body.as_ref(),
                        )
                        .await;
                    }
                }
            }
            let Some(base) = fill(&op.path, &own) else {
                if self.report.ops.get(i).is_some_and(|r| r.tried == 0) {
                    if let Some(r) = self.report.ops.get_mut(i) {
                        r.skipped = Some("needs ids A does not have (none discovered)".into());
                    }
                }
                continue;
            };
            // A's own read: nothing of B's.
            if op.method == "GET" {
                let a = self.cfg.a.clone();
                if let Some(r) = self.send(i, &a, &base, &own_headers, None).await {
                    self.count(i, false);
                    self.judge_leak(i, "A's own read", &base, &base, &r, &secrets);
                }
                // Query references to B's ids (filters).
                for q in op
                    .params
                    .iter()
                    .filter(|p| p.location == Location::Query && p.kind.is_some())
                {
                    let kind = q.kind.clone().unwrap_or_default();
                    let cands = {
                        let v = b_only(&kind);
                        if v.is_empty() {
                            any_b.clone()
                        } else {
                            v
                        }
                    };
                    for bid in cands {
                        let path = with_query(&base, &[(q.name.clone(), bid)]);
                        self.attempt(
                            i,
                            &format!("B's id in ?{}", q.name),
                            &path,
                            &own_headers,
                            None,
                            false,
                            &secrets,
                        )
                        .await;
                    }
                }
                // Search: B's canaries as the query text.
                if let Some(q) = op.params.iter().find(|p| {
                    p.location == Location::Query
                        && matches!(p.name.as_str(), "q" | "search" | "query")
                }) {
                    for c in b_seen.canaries.iter().take(25).cloned().collect::<Vec<_>>() {
                        let path = with_query(&base, &[(q.name.clone(), c)]);
                        self.attempt(
                            i,
                            "search for B's canary",
                            &path,
                            &own_headers,
                            None,
                            false,
                            &secrets,
                        )
                        .await;
                    }
                }
            }
            // Writes: body references to B's ids and tenant, and mass assignment.
            if op.method != "GET" && op.method != "DELETE" {
                if let Some(Value::Object(body)) = own_body.clone() {
                    let props: Vec<String> = op
                        .body
                        .as_ref()
                        .and_then(|s| s.get("properties"))
                        .and_then(Value::as_object)
                        .map(|m| m.keys().cloned().collect())
                        .unwrap_or_default();
                    for f in props.iter().filter(|f| !op.files.contains(f)) {
                        let (stem, is_id) = spec::id_stem(f, spec::FIELD_ID_WORDS);
                        let target = if is_org_field(f, &self.tenant_names) {
                            b_org.clone().into_iter().collect::<Vec<_>>()
                        } else if is_id && !stem.is_empty() {
                            let v = b_only(&stem);
                            if v.is_empty() {
                                any_b.clone()
                            } else {
                                v
                            }
                        } else {
                            continue;
                        };
                        for bid in target {
                            let mut b2 = body.clone();
                            b2.insert(f.clone(), json!(bid));
                            self.attempt(
                                i,
                                &format!("B's id in body field {f}"),
                                &base,
                                &own_headers,
                                Some(&Value::Object(b2)),
                                true,
                                &secrets,
                            )
                            .await;
                        }
                    }
                    if let Some(bo) = b_org.clone() {
                        let mut accepted = Vec::new();
                        let mut status = 0;
                        for f in MASS_FIELDS
                            .iter()
                            .filter(|f| !props.iter().any(|p| p == *f))
                        {
                            let mut b2 = body.clone();
                            b2.insert((*f).to_owned(), json!(bo));
                            let a = self.cfg.a.clone();
                            if let Some(r) = self
                                .send(i, &a, &base, &own_headers, Some(&Value::Object(b2)))
                                .await
                            {
                                self.count(i, !r.ok());
                                if r.ok() {
                                    accepted.push(*f);
                                    status = r.status;
                                }
                            }
                        }
                        if !accepted.is_empty() {
                            self.finding(
                                i,
                                FindingKind::Warning,
                                format!(
                                    "mass assignment: unknown field(s) {} accepted ({status}); checking B's data",
                                    accepted.join(", ")
                                ),
                                &base,
                            );
                        }
                    }
                }
            }
            if self.report.ops.get(i).is_some_and(|r| r.tried == 0) {
                if let Some(r) = self.report.ops.get_mut(i) {
                    r.skipped
                        .get_or_insert_with(|| "no tenant-controlled position to probe".into());
                }
            }
        }
    }
}

/// Whether an answer can be compared for an existence oracle: a refusal that is not about
/// credentials, rate or the server's health.
fn oracle_comparable(r: &Reply) -> bool {
    (400..500).contains(&r.status) && !matches!(r.status, 401 | 408 | 429)
}

/// The fields of an error body that classify it (problem `code`, `type`, `title`...).
fn error_class(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for k in [
        "code",
        "error",
        "type",
        "title",
        "error_code",
        "errorCode",
        "reason",
        "status",
    ] {
        match v.get(k) {
            Some(Value::String(s)) => out.push(format!("{k}={s}")),
            Some(Value::Number(n)) => out.push(format!("{k}={n}")),
            Some(Value::Object(o)) => {
                for (kk, x) in o {
                    if matches!(kk.as_str(), "code" | "type" | "status") {
                        out.push(format!("{k}.{kk}={x}"));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The shape of a JSON body: its key paths and value types, values left out.
fn shape(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                shape(x, &format!("{prefix}/{k}"), out);
            }
        }
        Value::Array(a) => {
            for x in a {
                shape(x, &format!("{prefix}[]"), out);
            }
            out.insert(format!("{prefix}:array"));
        }
        Value::Null => {
            out.insert(format!("{prefix}:null"));
        }
        Value::Bool(_) => {
            out.insert(format!("{prefix}:bool"));
        }
        Value::Number(_) => {
            out.insert(format!("{prefix}:number"));
        }
        Value::String(_) => {
            out.insert(format!("{prefix}:string"));
        }
    }
}

/// How two refusals differ, if they do: status, then error class, then body shape.
/// Messages (which may quote the id) are not compared.
fn difference(b: &Reply, ghost: &Reply) -> Option<String> {
    if b.status != ghost.status {
        return Some(format!(
            "answered {}, an id that exists nowhere {}",
            b.status, ghost.status
        ));
    }
    let (Some(jb), Some(jg)) = (b.json(), ghost.json()) else {
        return (b.json().is_some() != ghost.json().is_some()).then(|| {
            format!(
                "answered {} with a {} body, an id that exists nowhere with a {} body",
                b.status,
                if b.json().is_some() {
                    "JSON"
                } else {
                    "non-JSON"
                },
                if ghost.json().is_some() {
                    "JSON"
                } else {
                    "non-JSON"
                }
            )
        });
    };
    let (cb, cg) = (error_class(&jb), error_class(&jg));
    if cb != cg {
        return Some(format!(
            "answered {} [{}], an id that exists nowhere {} [{}]",
            b.status,
            cb.join(", "),
            ghost.status,
            cg.join(", ")
        ));
    }
    let (mut sb, mut sg) = (BTreeSet::new(), BTreeSet::new());
    shape(&jb, "", &mut sb);
    shape(&jg, "", &mut sg);
    (sb != sg).then(|| {
        format!(
            "answered {} with a body shaped differently from the answer to an id that exists nowhere ({})",
            b.status,
            sb.symmetric_difference(&sg)
                .take(4)
                .cloned()
                .collect::<Vec<_>>()
                .join(" ")
        )
    })
}

/// A fresh id shaped like `id` that exists nowhere: a UUID keeps its version and variant,
/// a prefixed id its prefix (`doc_`, `acct-`) and first character, and every other
/// character is replaced by a random one of its class (digit, hex, lower, upper).
fn nowhere_like(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    let is_uuid = chars.len() == 36
        && chars.iter().enumerate().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                *c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    let hexish = chars
        .iter()
        .filter(|c| c.is_ascii_alphanumeric())
        .all(char::is_ascii_hexdigit);
    let prefix = if is_uuid {
        0
    } else {
        match chars.iter().position(|c| *c == '_' || *c == '-') {
            Some(at) if chars.iter().take(at).all(char::is_ascii_alphabetic) => at + 1,
            _ => 0,
        }
    };
    let pick = |set: &[u8]| -> char {
        let n = set.len().max(1);
        set.get(rand::random::<usize>() % n)
            .map_or('0', |b| char::from(*b))
    };
    for _ in 0..8 {
        let out: String = chars
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let keep = i < prefix
                    || !c.is_ascii_alphanumeric()
                    || (is_uuid && (i == 14 || i == 19))
                    || (!is_uuid && i == prefix);
                if keep {
                    c
                } else if c.is_ascii_digit() {
                    pick(b"0123456789")
                } else if hexish && c.is_ascii_lowercase() {
                    pick(b"0123456789abcdef")
                } else if hexish {
                    pick(b"0123456789ABCDEF")
                } else if c.is_ascii_lowercase() {
                    pick(b"abcdefghijklmnopqrstuvwxyz")
                } else {
                    pick(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")
                }
            })
            .collect();
        if out != id {
            return out;
        }
    }
    format!("{id}0")
}

fn placeholder_id() -> String {
    "00000000-0000-7000-8000-000000000000".into()
}

fn placeholder_values(op: &Operation) -> BTreeMap<String, String> {
    op.params
        .iter()
        .filter(|p| p.location == Location::Path)
        .map(|p| (p.name.clone(), placeholder_id()))
        .collect()
}

/// What the run took for the tenant, and flags that named nothing.
fn tenancy_notes(ops: &[Operation], t: &spec::Tenancy) -> Vec<String> {
    let names = |loc: Location| -> BTreeSet<&str> {
        ops.iter()
            .flat_map(|o| &o.params)
            .filter(|p| p.is_org && p.location == loc)
            .map(|p| p.name.as_str())
            .collect()
    };
    let (params, headers) = (names(Location::Path), names(Location::Header));
    let mut notes = Vec::new();
    if let Some(n) = &t.param {
        if !params.iter().any(|p| p.eq_ignore_ascii_case(n)) {
            notes.push(format!(
                "--tenant-param {n} names no path parameter of the document"
            ));
        }
    }
    if params.is_empty() && headers.is_empty() {
        notes.push("no tenant path parameter or header found in the document: if the API has one, name it with --tenant-param or --tenant-header".into());
    } else {
        let list = |s: &BTreeSet<&str>, f: &dyn Fn(&str) -> String| {
            s.iter().map(|x| f(x)).collect::<Vec<_>>().join(", ")
        };
        notes.push(format!(
            "tenant: path parameter(s) [{}], header(s) [{}]",
            list(&params, &|x| format!("{{{x}}}")),
            list(&headers, &str::to_owned)
        ));
    }
    notes
}

/// Runs the probe.
pub async fn run(cfg: &Config) -> Result<Report, RunError> {
    let tenancy = spec::Tenancy {
        param: cfg.tenant_param.clone().filter(|s| !s.is_empty()),
        header: cfg.tenant_header.clone().filter(|s| !s.is_empty()),
    };
    let ops = load_spec(&cfg.spec, cfg.timeout, &tenancy).await?;
    let client = Client::new(
        &cfg.base_url,
        cfg.timeout,
        cfg.max_requests,
        cfg.rate_per_sec,
        cfg.progress,
    )
    .map_err(RunError)?;
    let mut report = Report::new(&cfg.base_url, &ops);
    report.spec = cfg.spec.clone();
    report.notes.extend(tenancy_notes(&ops, &tenancy));
    let mut p = Probe {
        cfg,
        client,
        ops,
        report,
        transport_errors: 0,
        a_canaries: BTreeSet::new(),
        tenant_names: [cfg.tenant_param.clone(), cfg.tenant_header.clone()]
            .into_iter()
            .flatten()
            .collect(),
    };

    // Can we reach the server and do the credentials work?
    let a_seen = p.discover(&cfg.a.clone(), false).await;
    let a_before = p.tenant_reads(&cfg.a.clone(), &a_seen).await;
    if p.transport_errors > 0 && p.client.sent() == p.transport_errors {
        return Err(RunError(format!(
            "cannot reach {}: every request failed",
            cfg.base_url
        )));
    }
    let b_seen = p.discover(&cfg.b.clone(), cfg.write).await;
    if a_seen.all_ids().is_empty() && b_seen.all_ids().is_empty() {
        p.report.notes.push(
            "no ids were discovered for A or B: check the credentials and tenant values".into(),
        );
    }
    // A's credentials must work too, or every attack is "denied" for the wrong reason.
    if a_before.is_empty()
        && p.ops.iter().any(|o| {
            o.method == "GET"
                && !o.public
                && (o.org_path_param().is_some() || o.org_header().is_some())
        })
    {
        p.report.credentials_failed = true;
        p.report.notes.push(
            "A's credentials were refused on every tenant read: the attacks prove nothing".into(),
        );
    }
    if b_seen.all_ids().is_empty() {
        p.report.credentials_failed = true;
        p.report.notes.push(
            "B's credentials found nothing: every id position was probed with placeholders only"
                .into(),
        );
    }
    // Counts, stats and searches of A must not move when only B wrote.
    if cfg.write && !b_seen.canaries.is_empty() {
        let a_after = p.tenant_reads(&cfg.a.clone(), &a_seen).await;
        for (i, path, before) in &a_before {
            if let Some((_, _, after)) = a_after.iter().find(|(j, q, _)| j == i && q == path) {
                if after != before {
                    p.finding(*i, FindingKind::Leak, "A's answer changed when only B wrote (a count, list or search crosses tenants)".into(), path);
                }
            }
        }
    }
    p.report.discovered_a = a_seen.all_ids().len();
    p.report.discovered_b = b_seen.all_ids().len();
    p.report.canaries = b_seen.canaries.len();
    p.attack(&a_seen, &b_seen).await;

    // B's data must be unchanged, and none of A's writes may have landed in it.
    let after = p.discover(&cfg.b.clone(), false).await;
    let mut missing: Vec<&String> = Vec::new();
    for (kind, ids) in &b_seen.ids {
        for id in ids {
            if !after.ids.get(kind).is_some_and(|s| s.contains(id))
                && !a_seen.all_ids().contains(id)
            {
                missing.push(id);
            }
        }
    }
    let b_before = b_seen.all_ids();
    let gained: Vec<&String> = after
        .all_ids()
        .into_iter()
        .filter(|id| !b_before.contains(id))
        .collect();
    if !missing.is_empty() {
        p.report.integrity.push(format!(
            "B's data changed during the attack: {} of B's ids are gone (e.g. {})",
            missing.len(),
            missing.first().map_or("", |s| s.as_str())
        ));
    }
    // New rows in B are not by themselves A's doing: B's own background work adds rows
    // (a live orgwall writes audit events when B's export job runs). A's writes are
    // traced by the canaries they carry (below); new rows are only noted.
    if !gained.is_empty() {
        p.report.notes.push(format!(
            "B's data gained {} rows during the run without any of A's canaries (e.g. {}): B's own background work?",
            gained.len(),
            gained.first().map_or("", |s| s.as_str())
        ));
    }
    if let Some(c) = p
        .a_canaries
        .iter()
        .find(|c| after.texts.iter().any(|t| t.contains(c.as_str())))
    {
        p.report.integrity.push(format!(
            "A's write landed in B's data (canary {c} found in B's reads)"
        ));
    }
    p.report.requests = p.client.sent();
    p.report.transport_errors = p.transport_errors;
    Ok(p.report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status,
            text: body.into(),
        }
    }

    #[test]
    fn ids_that_exist_nowhere_keep_the_shape() {
        let uuid = "0192f0c4-7a1b-7c3d-9e4f-0123456789ab";
        let g = nowhere_like(uuid);
        assert_ne!(g, uuid);
        assert_eq!(g.len(), uuid.len());
        assert_eq!(g.chars().nth(14), Some('7'));
        assert_eq!(g.chars().nth(19), Some('9'));
        assert!(g
            .chars()
            .enumerate()
            .all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) {
                c == '-'
            } else {
                c.is_ascii_hexdigit() && !c.is_ascii_uppercase()
            }));
        let g = nowhere_like("doc_01HZX3K9QW");
        assert!(g.starts_with("doc_0") && g.len() == 14 && g != "doc_01HZX3K9QW");
        assert!(g
            .chars()
            .skip(4)
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
        let g = nowhere_like("123456789");
        assert!(g.len() == 9 && g.starts_with('1') && g.chars().all(|c| c.is_ascii_digit()));
    }

    #[test]
    fn refusals_are_compared_without_their_messages() {
        let f = reply(403, r#"{"code":"forbidden","detail":"not yours: abc"}"#);
        let n = reply(404, r#"{"code":"not_found","detail":"no abc"}"#);
        assert!(difference(&f, &n).unwrap().contains("403"));
        // Same status, different problem code.
        let a = reply(404, r#"{"code":"not_in_workspace","detail":"x"}"#);
        let b = reply(404, r#"{"code":"not_found","detail":"y"}"#);
        assert!(difference(&a, &b).unwrap().contains("not_in_workspace"));
        // Same status and code, different shape.
        let a = reply(404, r#"{"code":"not_found","owner":{"id":"x"}}"#);
        let b = reply(404, r#"{"code":"not_found"}"#);
        assert!(difference(&a, &b).is_some());
        // Only the message differs (it quotes the id): the same answer.
        let a = reply(
            404,
            r#"{"code":"not_found","detail":"document 1 not found"}"#,
        );
        let b = reply(
            404,
            r#"{"code":"not_found","detail":"document 2 not found"}"#,
        );
        assert!(difference(&a, &b).is_none());
        assert!(difference(&reply(404, "gone 1"), &reply(404, "gone 2")).is_none());
        assert!(!oracle_comparable(&reply(429, "")) && !oracle_comparable(&reply(500, "")));
        assert!(oracle_comparable(&reply(403, "")));
    }

    #[test]
    fn ids_are_collected_in_any_case_style() {
        let mut seen = Seen::default();
        let body = json!({"data": [
            {"documentId": "doc-aaaaaaaa", "workspaceId": "ws-bbbbbbbb", "uuid": "cccccccc-1"},
            {"doc_id": "doc-dddddddd", "ParentID": "eeeeeeee-2", "valid": "ffffffffff"}
        ], "nextCursor": null});
        collect(&body, "document", &mut seen);
        let ids = |k: &str| seen.ids.get(k).cloned().unwrap_or_default();
        assert!(ids("document").contains("doc-aaaaaaaa"));
        assert!(ids("document").contains("cccccccc-1"));
        assert!(ids("workspace").contains("ws-bbbbbbbb"));
        assert!(ids("doc").contains("doc-dddddddd"));
        assert!(ids("parent").contains("eeeeeeee-2"));
        assert!(!seen.all_ids().contains(&"ffffffffff".to_string()));
        // `doc` and `document` name the same kind when one of them is missing.
        assert_eq!(
            seen.of_kind("ws").map(|s| s.len()),
            Some(1),
            "{:?}",
            seen.ids
        );
    }

    #[test]
    fn synthesized_bodies_fill_files_and_leave_the_tenant_out() {
        let mut own = Seen::default();
        own.add("folder", "folder-11111111");
        let schema = json!({"type": "object", "properties": {
            "file": {"type": "string", "format": "binary"},
            "title": {"type": "string"},
            "folderId": {"type": "string"},
            "workspaceId": {"type": "string"},
            "ctx": {"type": "string"},
            "expiresAt": {"type": "string"}
        }});
        let mut c = BTreeSet::new();
        let v = synth("", &schema, &own, &["ctx".into()], &mut c, 0).unwrap();
        assert!(v["file"].as_str().unwrap().starts_with("probecanary"));
        assert!(v["title"].as_str().unwrap().starts_with("probecanary"));
        assert_eq!(v["folderId"], "folder-11111111");
        assert!(v.get("workspaceId").is_none() && v.get("ctx").is_none());
        assert_eq!(v["expiresAt"], "2099-01-01T00:00:00Z");
        assert_eq!(c.len(), 2);
    }
}
