//! The audit log: `GET /v1/orgs/{org}/audit-events` with filters (action, actor, time
//! range), newest first, keyset-paginated.

use crate::body::Params;
use crate::page::{paged, PageQuery, Paged};
use crate::problem::Problem;
use crate::routes::{route, Access, Route, RouteSpec};
use crate::wall::Scoped;
use crate::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::Json;
use chrono::{DateTime, Utc};
use orgwall_core::{Error, Permission};
use orgwall_store::repo::audit::{self, AuditEvent, AuditFilter};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Query {
    action: Option<String>,
    actor: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

static LIST: RouteSpec = RouteSpec {
    method: "GET",
    path: "/audit-events",
    access: Access::Org(Some(Permission::AUDIT_READ)),
    summary: "The org's audit log, newest first; filters action, actor, since, until (RFC 3339)",
    ids: &[],
    body: None,
    status: 200,
};

/// The audit routes.
pub fn routes() -> Vec<Route> {
    vec![route(&LIST, get(list))]
}

fn time(field: &str, raw: Option<&str>) -> Result<Option<DateTime<Utc>>, Problem> {
    raw.map(|t| {
        DateTime::parse_from_rfc3339(t)
            .map(|d| d.with_timezone(&Utc))
            .map_err(|_| {
                Problem::from(Error::Validation(format!(
                    "{field} must be an RFC 3339 time"
                )))
            })
    })
    .transpose()
}

async fn list(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    Params(q): Params<Query>,
) -> Result<Json<Paged<AuditEvent>>, Problem> {
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .page()?;
    let filter = AuditFilter {
        action: q.action.filter(|a| !a.is_empty() && a.len() <= 100),
        actor: q
            .actor
            .as_deref()
            .map(|a| {
                a.parse()
                    .map_err(|_| Problem::from(Error::Validation("actor must be an id".into())))
            })
            .transpose()?,
        since: time("since", q.since.as_deref())?,
        until: time("until", q.until.as_deref())?,
    };
    let mut tx = state.db.read(&scope).await?;
    let rows = audit::search(&mut tx, &filter, page.limit + 1, page.after).await?;
    tx.commit().await?;
    Ok(Json(paged(rows, page, |e| e.id.uuid())))
}
