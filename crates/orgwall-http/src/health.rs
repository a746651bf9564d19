//! `GET /healthz` (the process answers) and `GET /readyz` (the database answers).

use crate::problem::Problem;
use crate::routes::{route, Access, Route, RouteSpec};
use crate::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::Json;
use serde_json::{json, Value};

static HEALTHZ: RouteSpec = RouteSpec {
    method: "GET",
    path: "/healthz",
    access: Access::Public,
    summary: "The process is up",
    ids: &[],
    body: None,
    status: 200,
    ..RouteSpec::DEFAULT
};
static READYZ: RouteSpec = RouteSpec {
    method: "GET",
    path: "/readyz",
    access: Access::Public,
    summary: "The database answers",
    ids: &[],
    body: None,
    status: 200,
    ..RouteSpec::DEFAULT
};

/// The health routes.
pub fn routes() -> Vec<Route> {
    vec![route(&HEALTHZ, get(healthz)), route(&READYZ, get(readyz))]
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, Problem> {
    match state.db.ping().await {
        Ok(()) => Ok(Json(json!({ "status": "ready" }))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(Problem::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "The database is not reachable.",
            ))
        }
    }
}
