//! The OpenAPI document checked against every answer the test suite sees.
//!
//! [`crate::TestServer`] passes each response through a [`Conformance`] built from
//! `orgwall_http::openapi::document()`: the request is matched to its operation (path
//! template and method, static segments before parameters, as the router does), and a
//! status the operation does not document, or an error (4xx/5xx) that is not
//! `application/problem+json`, is a violation. The server fails its test when it is
//! dropped with violations (each test is its own process under nextest, so every test
//! checks its own answers; no ordering between tests is needed).

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// One documented path: its segments (None for a `{parameter}`) and, per method, the
/// documented statuses.
struct PathItem {
    template: String,
    segments: Vec<Option<String>>,
    methods: BTreeMap<String, BTreeSet<u16>>,
}

/// The documented operations and the violations seen so far.
pub struct Conformance {
    paths: Vec<PathItem>,
    violations: Mutex<Vec<String>>,
}

impl Conformance {
    /// Reads the operations of an OpenAPI document.
    pub fn new(doc: &Value) -> Arc<Conformance> {
        let mut paths = Vec::new();
        if let Some(ps) = doc["paths"].as_object() {
            for (template, item) in ps {
                let segments = template
                    .split('/')
                    .map(|s| {
                        if s.starts_with('{') && s.ends_with('}') {
                            None
                        } else {
                            Some(s.to_owned())
                        }
                    })
                    .collect();
                let mut methods = BTreeMap::new();
                for (m, op) in item.as_object().into_iter().flatten() {
                    let statuses = op["responses"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .filter_map(|(s, _)| s.parse().ok())
                        .collect();
                    methods.insert(m.to_ascii_uppercase(), statuses);
                }
                paths.push(PathItem {
                    template: template.clone(),
                    segments,
                    methods,
                });
            }
        }
        Arc::new(Conformance {
            paths,
            violations: Mutex::new(Vec::new()),
        })
    }

    /// The documented path a request path is routed to, if any.
    fn route(&self, path: &str) -> Option<&PathItem> {
        let segs: Vec<&str> = path.split('/').collect();
        self.paths
            .iter()
            .filter(|p| {
                p.segments.len() == segs.len()
                    && p.segments.iter().zip(&segs).all(|(t, s)| match t {
                        Some(lit) => lit == s,
                        None => !s.is_empty(),
                    })
            })
            .max_by_key(|p| p.segments.iter().map(Option::is_some).collect::<Vec<_>>())
    }

    /// Checks one answer; returns the violation, if any, and remembers it.
    pub fn check(
        &self,
        method: &str,
        path: &str,
        status: u16,
        content_type: Option<&str>,
    ) -> Option<String> {
        let item = self.route(path);
        let what = item.map_or_else(|| path.to_owned(), |i| i.template.clone());
        let mut problem = None;
        if let Some(statuses) = item.and_then(|i| i.methods.get(method)) {
            if !statuses.contains(&status) {
                problem = Some(format!(
                    "{method} {what}: status {status} is not documented (documented: {statuses:?})"
                ));
            }
        }
        if problem.is_none()
            && status >= 400
            && content_type.map(|c| c.split(';').next().unwrap_or("").trim())
                != Some("application/problem+json")
        {
            problem = Some(format!(
                "{method} {what}: error {status} is not application/problem+json ({content_type:?})"
            ));
        }
        if let Some(p) = &problem {
            self.violations.lock().unwrap().push(p.clone());
        }
        problem
    }

    /// The violations seen so far (deduplicated, in order).
    pub fn violations(&self) -> Vec<String> {
        let mut seen = BTreeSet::new();
        self.violations
            .lock()
            .unwrap()
            .iter()
            .filter(|v| seen.insert((*v).clone()))
            .cloned()
            .collect()
    }

    /// Forgets the violations seen so far (for a test that provokes one on purpose).
    pub fn clear(&self) {
        self.violations.lock().unwrap().clear();
    }
}

/// The middleware that checks every answer of the app against `c`.
pub async fn layer(
    c: Arc<Conformance>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let res = next.run(req).await;
    let ct = res
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    c.check(&method, &path, res.status().as_u16(), ct);
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_problem_bodies_are_checked() {
        let doc = orgwall_http::openapi::document();
        let c = Conformance::new(&doc);
        let problem = Some("application/problem+json");
        // Documented.
        assert_eq!(
            c.check(
                "GET",
                "/v1/orgs/acme/tickets",
                200,
                Some("application/json")
            ),
            None
        );
        assert_eq!(c.check("GET", "/v1/tickets", 422, problem), None);
        // Static segments win: /v1/orgs is its own route, not /v1/orgs/{org} less one.
        assert_eq!(
            c.check("POST", "/v1/orgs", 201, Some("application/json")),
            None
        );
        // Undocumented status.
        assert!(c.check("GET", "/v1/healthz-nope", 404, problem).is_none());
        assert!(c.check("GET", "/v1/me", 418, problem).is_some());
        // An error that is not a problem.
        assert!(c.check("PUT", "/v1/orgs/acme/tickets", 405, None).is_some());
        assert_eq!(c.violations().len(), 2);
    }
}
