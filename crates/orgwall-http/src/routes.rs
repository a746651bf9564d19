//! orgwall's route table: every feature module's declared routes, installed behind the
//! kernel's wall (see `orgwall_tenancy_http::routes`).

use crate::AppState;

pub use orgwall_tenancy_http::routes::{install, route, schema, Access, RouteSpec, SchemaFn};

/// A declared route of orgwall's product and its handler.
pub type Route = orgwall_tenancy_http::routes::Route<AppState>;

/// Every route of the application, the OpenAPI document of them included.
pub fn all() -> Vec<Route> {
    let mut v = features();
    let mut specs: Vec<&'static RouteSpec> = v.iter().map(|r| r.spec).collect();
    specs.push(&orgwall_tenancy_http::openapi::OPENAPI);
    v.push(orgwall_tenancy_http::openapi::route(
        &crate::openapi::INFO,
        &specs,
    ));
    v
}

/// The routes of the feature modules.
fn features() -> Vec<Route> {
    let mut v = Vec::new();
    v.extend(crate::health::routes());
    v.extend(crate::auth::routes());
    v.extend(crate::orgs::routes());
    v.extend(crate::projects::routes());
    v.extend(crate::tickets::routes());
    v.extend(crate::notes::routes());
    v.extend(crate::files::routes());
    v.extend(crate::invitations::routes());
    v.extend(crate::api_keys::routes());
    v.extend(crate::members::routes());
    v.extend(crate::roles::routes());
    v.extend(crate::audit::routes());
    v.extend(crate::exports::routes());
    v.extend(crate::usage::routes());
    v
}

/// The declarations of every route (for the OpenAPI document and tests).
pub fn specs() -> Vec<&'static RouteSpec> {
    let mut v: Vec<&'static RouteSpec> = features().iter().map(|r| r.spec).collect();
    v.push(&orgwall_tenancy_http::openapi::OPENAPI);
    v
}
