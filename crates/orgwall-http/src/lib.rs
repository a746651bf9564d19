//! # orgwall-http: the HTTP layer
//!
//! Every route is declared once in a feature module as a [`routes::RouteSpec`] (method,
//! path, who may call it, the permission it needs, which path parameters are org-scoped
//! ids). [`routes::install`] puts the HTTP wall ([`wall`]) in front of each handler from
//! that declaration, and [`openapi`] documents the same declarations, so what is enforced
//! and what is documented cannot drift. Errors leave as RFC 9457 problem+json through
//! [`problem::Problem`], mapped from the domain error in one place.
#![forbid(unsafe_code)]

pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod body;
pub mod files;
pub mod health;
pub mod invitations;
pub mod limits;
pub mod members;
pub mod notes;
pub mod openapi;
pub mod orgs;
pub mod page;
pub mod problem;
pub mod projects;
pub mod roles;
pub mod routes;
pub mod tickets;
pub mod usage;
pub mod wall;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use orgwall_store::Db;
use std::sync::Arc;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub db: Db,
    /// `ORGWALL_BASE_DOMAIN`: `{slug}.{base}` hosts name an org.
    pub base_domain: Option<Arc<str>>,
    /// Rate limiters.
    pub limits: Arc<limits::Limits>,
    /// Where file bytes are stored.
    pub files: Arc<dyn orgwall_store::files::BlobStore>,
    /// The largest file upload accepted, in bytes.
    pub max_upload_bytes: u64,
}

impl AppState {
    /// State with default limits and no base domain; files go to a fresh directory under
    /// the system temp dir (see [`AppState::with_files`] for a real one).
    pub fn new(db: Db) -> Self {
        Self::with_files(db, files::scratch_root())
    }

    /// State with default limits and no base domain, storing files under `root`.
    pub fn with_files(db: Db, root: impl Into<std::path::PathBuf>) -> Self {
        AppState {
            db,
            base_domain: None,
            limits: Arc::new(limits::Limits::default()),
            files: Arc::new(orgwall_store::files::LocalFiles::new(root)),
            max_upload_bytes: files::DEFAULT_MAX_UPLOAD_BYTES,
        }
    }
}

/// The whole application.
pub fn app(state: AppState) -> Router {
    routes::install(&state, routes::all())
        .fallback(problem::not_found_fallback)
        .with_state(state)
        .layer(DefaultBodyLimit::max(body::MAX_JSON_BYTES))
        .layer(TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}
