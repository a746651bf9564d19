//! A route's declaration: method, path, who may call it, the permission it needs, which
//! path parameters are org-scoped ids, its body schema. The guard enforces it and the
//! OpenAPI document describes it.

use orgwall_core::Permission;

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

