//! `GET /v1/orgs/{org}/usage`: the org's plan, its quotas and current use.

use crate::problem::Problem;
use crate::routes::{route, Access, Route, RouteSpec};
use crate::wall::Scoped;
use crate::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::Json;
use orgwall_store::quota::{self, Usage};

static USAGE: RouteSpec = RouteSpec {
    method: "GET",
    path: "/usage",
    access: Access::Org(Some(orgwall_store::perms::USAGE_READ)),
    summary:
        "The plan's quotas (members, projects, tickets, storage bytes), current use and rate limit",
    ids: &[],
    body: None,
    status: 200,
    ..RouteSpec::DEFAULT
};

/// The usage route.
pub fn routes() -> Vec<Route> {
    vec![route(&USAGE, get(usage))]
}

async fn usage(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
) -> Result<Json<Usage>, Problem> {
    let mut tx = state.db.read(&scope).await?;
    let u = quota::usage(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(u))
}
