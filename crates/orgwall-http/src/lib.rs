//! # orgwall-http: the HTTP layer
//!
//! One module per feature, each exporting `router()`; [`app`] merges them and adds the
//! layers once (request ids, tracing). Errors leave as RFC 9457 problem+json through
//! [`problem::Problem`], mapped from the domain error in one place.
//!
//! The HTTP wall (authenticate, resolve the org, verify membership, check the route's
//! permission, all before any handler) lands with the identity routes; this crate
//! already carries the health routes and the error shape they will share.
#![forbid(unsafe_code)]

pub mod health;
pub mod problem;

use axum::Router;
use orgwall_store::Db;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub db: Db,
}

/// The whole application.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .fallback(problem::not_found_fallback)
        .with_state(state)
        .layer(TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}
