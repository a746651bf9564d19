//! RFC 9457 problem details: `application/problem+json` with `type`, `title`, `status`,
//! `detail` and a stable machine `code`.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use orgwall_core::Error;
use serde::Serialize;

/// An error response (boxed: errors travel through many `Result`s and should be small).
#[derive(Debug, Clone)]
pub struct Problem(Box<ProblemBody>);

/// The serialized problem document.
#[derive(Debug, Clone, Serialize)]
struct ProblemBody {
    #[serde(rename = "type")]
    kind: String,
    title: String,
    #[serde(serialize_with = "ser_status")]
    status: StatusCode,
    detail: String,
    code: &'static str,
    #[serde(skip)]
    headers: Vec<(&'static str, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    permission: Option<&'static str>,
}

fn ser_status<S: serde::Serializer>(s: &StatusCode, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_u16(s.as_u16())
}

impl Problem {
    /// A problem with a status, a stable code and a human detail.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Problem(Box::new(ProblemBody {
            kind: format!("https://orgwall.dev/problems/{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status,
            detail: detail.into(),
            code,
            headers: Vec::new(),
            permission: None,
        }))
    }

    /// Adds a response header (e.g. `retry-after`).
    pub fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.0.headers.push((name, value));
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The code.
    pub fn code(&self) -> &'static str {
        self.0.code
    }
}

static CODES: std::sync::RwLock<Vec<(&'static str, u16)>> = std::sync::RwLock::new(Vec::new());

/// Makes the rule codes the catalog's modules declare answer with their status
/// (called by [`crate::routes::install`]).
pub fn register_codes(catalog: &orgwall_tenancy::Catalog) {
    let mut codes = match CODES.write() {
        Ok(c) => c,
        Err(poisoned) => poisoned.into_inner(),
    };
    for m in catalog.modules() {
        for (code, status) in m.error_codes {
            if !codes.iter().any(|(c, _)| c == code) {
                codes.push((code, *status));
            }
        }
    }
}

/// The status of each rule code: as its module declared it, everything else 409.
fn status_for(code: &str) -> StatusCode {
    let declared = match CODES.read() {
        Ok(c) => c.iter().find(|(c, _)| *c == code).map(|(_, s)| *s),
        Err(poisoned) => poisoned
            .into_inner()
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, s)| *s),
    };
    declared
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::CONFLICT)
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound => Problem::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "No such resource in this organization.",
            ),
            Error::Conflict(code, detail) | Error::Refused(code, detail) => {
                Problem::new(status_for(code), code, detail)
            }
            Error::Validation(detail) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                detail,
            ),
            Error::NotAMember => Problem::new(
                StatusCode::FORBIDDEN,
                "not_a_member",
                "The organization does not exist or you are not a member of it.",
            ),
            Error::PermissionDenied(p) => {
                let mut pr = Problem::new(
                    StatusCode::FORBIDDEN,
                    "permission_denied",
                    format!("This requires the {p} permission."),
                );
                pr.0.permission = Some(p.as_str());
                pr
            }
            Error::ScopeViolation => {
                tracing::error!("tenant scope violation reached the HTTP layer");
                Problem::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "No such resource in this organization.",
                )
            }
            Error::Unavailable(detail) => {
                tracing::error!(%detail, "database unavailable");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "The service is temporarily unavailable.",
                )
                .with_header("retry-after", "5".into())
            }
            Error::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Something went wrong on our side.",
                )
            }
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&*self.0).unwrap_or_default();
        let mut res = (
            self.0.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response();
        for (name, value) in self.0.headers {
            if let Ok(v) = axum::http::HeaderValue::from_str(&value) {
                res.headers_mut().insert(name, v);
            }
        }
        res
    }
}

/// The answer to a route that does not exist.
pub async fn not_found_fallback() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not_found", "No such route.")
}

/// The answer to a known route called with a method it does not have.
pub async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "This route does not accept that method.",
    )
}
