//! Writes are API calls: a console form becomes the matching API request, dispatched in
//! process to the API router (its wall, permission check, quotas, rate limits, audit
//! events and emails are exactly the API's), and the answer comes back as a value the
//! page can show.

use crate::Console;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use bytes::Bytes;
use serde_json::Value;
use std::net::SocketAddr;
use tower::ServiceExt;

/// A successful API answer.
#[derive(Debug)]
pub struct Answer {
    /// Its status.
    pub status: StatusCode,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON (Null when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The string at a JSON pointer of the body (`/membership/slug`), or "".
    pub fn text(&self, pointer: &str) -> String {
        self.json()
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }
}

/// An API refusal (its problem+json document).
#[derive(Debug, Clone)]
pub struct Refusal {
    /// Its status.
    pub status: StatusCode,
    /// The machine code (`validation_failed`, `slug_taken`, ...).
    pub code: String,
    /// The human detail.
    pub detail: String,
}

impl Refusal {
    /// The form field the detail names, if it starts with one of `fields`.
    pub fn field<'f>(&self, fields: &[&'f str]) -> Option<&'f str> {
        fields.iter().copied().find(|f| {
            self.detail
                .strip_prefix(f)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with(':'))
        })
    }
}

impl From<Refusal> for crate::session::Fail {
    fn from(r: Refusal) -> Self {
        crate::session::Fail::Page(r.status, r.detail)
    }
}

/// Calls the API as the viewer (or anonymously) from a console request.
pub struct Api<'a> {
    c: &'a Console,
    token: Option<&'a str>,
    peer: Option<ConnectInfo<SocketAddr>>,
}

impl<'a> Api<'a> {
    /// An API client for `token` (None: anonymous), keeping the peer address for the
    /// API's per-IP limits.
    pub fn new(c: &'a Console, token: Option<&'a str>, peer: Option<SocketAddr>) -> Self {
        Api {
            c,
            token,
            peer: peer.map(ConnectInfo),
        }
    }

    /// Sends `method path` with an optional JSON body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        json: Option<Value>,
    ) -> Result<Answer, Refusal> {
        let body = match &json {
            Some(v) => Body::from(serde_json::to_vec(v).unwrap_or_default()),
            None => Body::empty(),
        };
        self.raw(
            method,
            path,
            body,
            json.is_some().then_some("application/json"),
        )
        .await
    }

    /// Sends a request with a raw body and content type.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Body,
        content_type: Option<&str>,
    ) -> Result<Answer, Refusal> {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = self.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let mut req = req.body(body).map_err(|e| internal(&e))?;
        if let Some(p) = self.peer {
            req.extensions_mut().insert(p);
        }
        let res = self
            .c
            .api
            .clone()
            .oneshot(req)
            .await
            .map_err(|e| internal(&e))?;
        let (parts, body) = res.into_parts();
        if parts.status.is_success() {
            let body = axum::body::to_bytes(body, usize::MAX)
                .await
                .map_err(|e| internal(&e))?;
            return Ok(Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            });
        }
        let body = axum::body::to_bytes(body, 1 << 20)
            .await
            .unwrap_or_default();
        let doc: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Err(Refusal {
            status: parts.status,
            code: doc
                .pointer("/code")
                .and_then(Value::as_str)
                .unwrap_or("error")
                .to_owned(),
            detail: doc
                .pointer("/detail")
                .and_then(Value::as_str)
                .unwrap_or("The request was refused.")
                .to_owned(),
        })
    }

    /// Sends a request and hands back the API's response as it is (downloads).
    pub async fn stream(&self, path: &str) -> Result<axum::response::Response, Refusal> {
        let mut req = Request::builder().method(Method::GET).uri(path);
        if let Some(t) = self.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req.body(Body::empty()).map_err(|e| internal(&e))?;
        let res = self
            .c
            .api
            .clone()
            .oneshot(req)
            .await
            .map_err(|e| internal(&e))?;
        if res.status().is_success() {
            return Ok(res);
        }
        let status = res.status();
        let body = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        let doc: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Err(Refusal {
            status,
            code: doc
                .pointer("/code")
                .and_then(Value::as_str)
                .unwrap_or("error")
                .to_owned(),
            detail: doc
                .pointer("/detail")
                .and_then(Value::as_str)
                .unwrap_or("The request was refused.")
                .to_owned(),
        })
    }
}

fn internal(e: &dyn std::fmt::Display) -> Refusal {
    tracing::error!(error = %e, "console: in-process API call failed");
    Refusal {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code: "internal".into(),
        detail: "Something went wrong on our side.".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_the_field_its_detail_starts_with() {
        let r = |d: &str| Refusal {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "validation_failed".into(),
            detail: d.into(),
        };
        let fields = &["title", "body"];
        assert_eq!(
            r("title must be 1-200 characters").field(fields),
            Some("title")
        );
        assert_eq!(r("body: too long").field(fields), Some("body"));
        assert_eq!(r("titles are hard").field(fields), None);
        assert_eq!(r("project_id is not valid").field(fields), None);
    }
}
