//! # orgwall-tenancy-http: the HTTP wall of the orgwall kernel (axum)
//!
//! Every route is declared once, as a [`routes::RouteSpec`] (method, path, who may call
//! it, the permission it needs, which path parameters are org-scoped ids).
//! [`routes::install`] puts the HTTP wall ([`wall`]) in front of each handler from that
//! declaration, and [`openapi`] documents the same declarations, so what is enforced and
//! what is documented cannot drift. Errors leave as RFC 9457 problem+json through
//! [`problem::Problem`], mapped from the domain error in one place.
//!
//! Before any handler of an org route runs, the wall authenticates (401), resolves the
//! claimed org (400), verifies membership inside that org's scope (403 `not_a_member`,
//! the same answer for an org that does not exist), checks the route's permission (403)
//! and the org's and caller's rate limits (429). The handler receives
//! [`wall::Scoped`]: a verified `OrgScope`, the only way to open a tenant transaction.
//!
//! A service keeps its own router state `S` (anything `Clone`); the wall runs with the
//! [`Kernel`] it is given at [`routes::install`].
#![forbid(unsafe_code)]

pub mod body;
pub mod limits;
pub mod openapi;
pub mod page;
pub mod problem;
pub mod resource;
pub mod routes;
pub mod serve;
pub mod spec;
pub mod wall;

use orgwall_tenancy::Db;
use std::sync::Arc;

/// What the wall needs: the database (sessions, API keys, memberships, through the
/// access cache), the subdomain setting and the rate limiters.
#[derive(Clone)]
pub struct Kernel {
    /// The database.
    pub db: Db,
    /// `{slug}.{base}` hosts name an org (e.g. `ORGWALL_BASE_DOMAIN`).
    pub base_domain: Option<Arc<str>>,
    /// Rate limiters.
    pub limits: Arc<limits::Limits>,
    /// Called with the limit's scope (`org`, `user`) whenever a request is refused by a
    /// rate limit (metrics).
    pub on_rate_limited: Option<Arc<dyn Fn(&'static str) + Send + Sync>>,
}

impl Kernel {
    /// The wall over `db` with default limits and no subdomains.
    pub fn new(db: Db) -> Self {
        Kernel {
            db,
            base_domain: None,
            limits: Arc::new(limits::Limits::default()),
            on_rate_limited: None,
        }
    }
}
