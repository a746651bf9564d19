//! A route's declaration: method, path, who may call it, the permission it needs, which
//! path parameters are org-scoped ids, its body and query schemas, the errors it can
//! answer. The guard enforces it and the OpenAPI document describes it.

use orgwall_core::{OrgId, Permission};
use orgwall_tenancy::ahead::Flight;

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health, signup, login).
    Public,
    /// An authenticated user session (no org).
    User,
    /// A member of the resolved org (user or API key) holding the permission, if any.
    Org(Option<Permission>),
}

/// A body or response shape for the OpenAPI document.
pub type SchemaFn = fn() -> serde_json::Value;

/// The one-flight read a route's handler sends, from the org and the path parameters
/// (`None` when the path does not name one, e.g. a malformed id): see [`RouteSpec::ahead`].
pub type AheadFn = fn(OrgId, &PathIds<'_>) -> Option<Flight>;

/// A request's path parameters by name, for an [`AheadFn`].
pub struct PathIds<'a>(pub(crate) &'a axum::extract::RawPathParams);

impl PathIds<'_> {
    /// The path parameter `name` as a resource id (`None`: missing or malformed).
    pub fn id<T: std::str::FromStr>(&self, name: &str) -> Option<T> {
        self.0
            .iter()
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.parse().ok())
    }
}

/// One route.
#[derive(Debug)]
pub struct RouteSpec {
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: &'static str,
    /// For [`Access::Org`] routes the path after the org part (`/members/{user_id}`; empty
    /// for the org itself): it is served as `/v1/orgs/{org}{path}` and, org-less, as
    /// `/v1{path}` (or `/v1/org` for the org itself). Other routes: the full path.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// One line for the document.
    pub summary: &'static str,
    /// Path parameters that are org-scoped resource ids: (parameter, resource kind).
    pub ids: &'static [(&'static str, &'static str)],
    /// The JSON request body's schema.
    pub body: Option<SchemaFn>,
    /// The success status.
    pub status: u16,
    /// The query parameters' schema (an object whose properties are the parameters), for
    /// the document: derive it from the handler's `Params<T>` type with [`schema`].
    pub query: Option<SchemaFn>,
    /// A `multipart/form-data` request body's schema (uploads).
    pub multipart: Option<SchemaFn>,
    /// Error statuses this route can answer besides those its access kind, body and query
    /// imply (see [`RouteSpec::error_statuses`]): e.g. 409 for a conflict, 410 for expired.
    pub errors: &'static [u16],
    /// What the route requires when it is not a single permission (documented as
    /// `x-rule`; the route's own code enforces it), e.g. "members:remove, or your own
    /// user id (leaving)".
    pub rule: Option<&'static str>,
    /// For an org route whose handler reads in one flight with
    /// [`orgwall_tenancy::Db::read_flight`]: that flight. A request with an API key that is
    /// not in the access cache then sends it ahead, in the key lookup's own flight, and
    /// the handler takes its answer once the wall has authorized the request (one round
    /// trip for a cold key, as for a warm one; see [`orgwall_tenancy::ahead`]). Its
    /// statements fail only as the handler's own read would: an error of the flight is
    /// the key lookup's error (typed parameters parsed from the path, no value a client
    /// can make fail in SQL).
    pub ahead: Option<AheadFn>,
}

impl RouteSpec {
    /// A declaration with every optional part empty, for `..RouteSpec::DEFAULT`.
    pub const DEFAULT: RouteSpec = RouteSpec {
        method: "GET",
        path: "",
        access: Access::Public,
        summary: "",
        ids: &[],
        body: None,
        status: 200,
        query: None,
        multipart: None,
        errors: &[],
        rule: None,
        ahead: None,
    };

    /// Every error status the route can answer, ascending: from its access kind (401,
    /// 403, 400 for org resolution, 404, 429 for rate limits), its body (400 invalid JSON,
    /// 408, 413, 415, 422), its query (422), path ids (404), 409 for writes, 503 (database
    /// unavailable) and its own [`RouteSpec::errors`].
    pub fn error_statuses(&self) -> Vec<u16> {
        let mut s: Vec<u16> = vec![503];
        match self.access {
            Access::Public => {}
            // 403: a cookie session without its CSRF token on a state-changing request.
            Access::User => s.extend([401, 403]),
            Access::Org(_) => s.extend([400, 401, 403, 404, 429]),
        }
        // A write can meet a uniqueness or state conflict (409), e.g. `in_use`.
        if self.method != "GET" && self.access != Access::Public {
            s.push(409);
        }
        // A body: invalid JSON or multipart (400), a client that stops sending it (408),
        // too large (413), the wrong content type (415), fields that do not validate (422).
        if self.body.is_some() || self.multipart.is_some() {
            s.extend([400, 408, 413, 415, 422]);
        }
        if self.query.is_some() {
            s.push(422);
        }
        if !self.ids.is_empty() {
            s.push(404);
        }
        s.extend(self.errors.iter().copied());
        s.sort_unstable();
        s.dedup();
        s
    }
}

/// The schema of a request type (for [`RouteSpec::body`]).
pub fn schema<T: schemars::JsonSchema>() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(T)).unwrap_or_default()
}

impl RouteSpec {
    /// The concrete paths this route is served at.
    pub fn paths(&self) -> Vec<String> {
        match self.access {
            Access::Org(_) => {
                let orgless = if self.path.is_empty() {
                    "/v1/org".to_string()
                } else {
                    format!("/v1{}", self.path)
                };
                vec![format!("/v1/orgs/{{org}}{}", self.path), orgless]
            }
            _ => vec![self.path.to_string()],
        }
    }
}
