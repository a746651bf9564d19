//! The JSON body extractor: content type checked, size limited, unknown fields rejected
//! (request types use `#[serde(deny_unknown_fields)]`), every failure a problem+json.
//!
//! The edge's rules for every body and query, whatever the route:
//! - a `Content-Length` over the limit is 413 at once, before a byte of the body is read;
//! - the body must be a JSON object (an array is not taken as fields by position): 422;
//! - every string in it, at any depth, and every query value follows the text rule of
//!   `orgwall_core::text` (no NUL, no control characters but tab, LF, CR): 422. Names and
//!   titles are held to one line by the stores (`orgwall_tenancy::identity::text`).

use crate::problem::Problem;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use bytes::Bytes;
use serde::de::DeserializeOwned;

/// Largest JSON body accepted.
pub const MAX_JSON_BYTES: usize = 64 * 1024;

/// A parsed JSON request body.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let is_json = ct
            .split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "The body must be application/json.",
            ));
        }
        if declared_length(req.headers()).is_some_and(|n| n > MAX_JSON_BYTES as u64) {
            return Err(too_large(MAX_JSON_BYTES as u64));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| read_failed(&e, MAX_JSON_BYTES as u64))?;
        parse(&bytes).map(Body)
    }
}

/// The request's `Content-Length`, if it has a valid one.
pub fn declared_length(headers: &axum::http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// 413 `payload_too_large`.
pub fn too_large(max: u64) -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("The body must be at most {max} bytes."),
    )
}

/// The answer to a body that could not be read: over the limit (413), or the client
/// stopped sending it in time (408, see `crate::serve`), or the connection broke (400).
fn read_failed(e: &axum::extract::rejection::BytesRejection, max: u64) -> Problem {
    let text = e.body_text();
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large(max)
    } else if text.contains(crate::serve::BODY_TIMEOUT_MESSAGE) {
        Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "The body did not arrive in time.",
        )
    } else {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "The body could not be read.",
        )
    }
}

fn unprocessable(detail: impl Into<String>) -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        detail,
    )
}

/// Applies the text rule to every string (and key) of a JSON value; `at` names where.
fn check_strings(v: &serde_json::Value, at: &str) -> Result<(), Problem> {
    use serde_json::Value;
    let bad = |at: &str, e: String| {
        let at = if at.is_empty() { "the body" } else { at };
        let at: String = at.chars().filter(|c| !c.is_control()).take(100).collect();
        unprocessable(format!("{at} {e}"))
    };
    match v {
        Value::String(s) => orgwall_core::text::check_long_text(s).map_err(|e| bad(at, e)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, x)| check_strings(x, &format!("{at}[{i}]"))),
        Value::Object(fields) => fields.iter().try_for_each(|(k, x)| {
            let at = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            orgwall_core::text::check_long_text(k).map_err(|e| bad("a field name", e))?;
            check_strings(x, &at)
        }),
        _ => Ok(()),
    }
}

/// Parses JSON bytes into `T` with the same error mapping: 400 for bytes that are not
/// JSON, 422 for a body that is not an object, text that breaks the text rule, and
/// fields of the wrong type or unknown.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => unprocessable(e.to_string().chars().take(300).collect::<String>()),
            _ => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                "The body is not valid JSON.",
            ),
        }
    })?;
    if !value.is_object() {
        return Err(unprocessable("The body must be a JSON object."));
    }
    check_strings(&value, "")?;
    serde_json::from_value(value)
        .map_err(|e| unprocessable(e.to_string().chars().take(300).collect::<String>()))
}

/// Query parameters, with unknown or malformed parameters answered 422 problem+json
/// (query types use `#[serde(deny_unknown_fields)]`).
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for Params<T> {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Problem> {
        let raw = parts.uri.query().unwrap_or("");
        for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
            if let Err(e) = orgwall_core::text::check_long_text(&k)
                .and_then(|()| orgwall_core::text::check_long_text(&v))
            {
                let k: String = k.chars().filter(|c| !c.is_control()).take(50).collect();
                return Err(unprocessable(format!("query parameter {k:?} {e}")));
            }
        }
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Params(v)),
            Err(e) => {
                let msg: String = e.body_text().chars().take(300).collect();
                Err(Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    msg,
                ))
            }
        }
    }
}

/// Path parameters; a path that does not decode (e.g. `%FF`) is simply not found.
pub struct PathOf<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> axum::extract::FromRequestParts<S> for PathOf<T> {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Problem> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| PathOf(v))
            .map_err(|_| Problem::from(orgwall_core::Error::NotFound))
    }
}

/// Path parameters by name, for handlers that look ids up with [`PathParams::id`].
pub type PathParams = PathOf<std::collections::HashMap<String, String>>;

impl PathParams {
    /// The path parameter `name` as a resource id; missing or malformed is 404.
    pub fn id<T: std::str::FromStr>(&self, name: &str) -> Result<T, Problem> {
        crate::wall::id(self.0.get(name).map_or("", String::as_str))
    }
}
