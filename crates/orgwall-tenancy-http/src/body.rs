//! The JSON body extractor: content type checked, size limited, unknown fields rejected
//! (request types use `#[serde(deny_unknown_fields)]`), every failure a problem+json.

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
        let bytes = Bytes::from_request(req, state).await.map_err(|_| {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("The body must be at most {MAX_JSON_BYTES} bytes."),
            )
        })?;
        parse(&bytes).map(Body)
    }
}

/// Parses JSON bytes into `T` with the same error mapping.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => {
                let msg: String = e.to_string().chars().take(300).collect();
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", msg)
            }
            _ => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                "The body is not valid JSON.",
            ),
        }
    })
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
