//! The audit log: `GET /v1/orgs/{org}/audit-events` with filters (action, actor, time
//! range), newest first, keyset-paginated.

use crate::body::Params;
use crate::page::{paged, PageQuery, Paged};
use crate::problem::Problem;
use crate::routes::{route, schema, Access, Route, RouteSpec};
use crate::wall::Scoped;
use crate::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::Json;
use chrono::{DateTime, Utc};
use orgwall_core::{Error, Permission};
use orgwall_store::repo::audit::{self, AuditEvent, AuditFilter};
use serde::Deserialize;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Query {
    /// Only events with this action (e.g. `member.removed`).
    #[schemars(length(max = 100))]
    action: Option<String>,
    /// Only events by this actor (user or API key id).
    #[schemars(extend("format" = "uuid"))]
    actor: Option<String>,
    /// Only events at or after this time (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    since: Option<String>,
    /// Only events before this time (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    until: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[schemars(with = "Option<i64>", range(min = 1, max = 200))]
    limit: Option<String>,
    /// Opaque cursor from the previous page's `next_cursor`.
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
    query: Some(schema::<Query>),
    ..RouteSpec::DEFAULT
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
