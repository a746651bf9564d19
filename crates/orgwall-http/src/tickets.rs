//! Tickets (with filters, search, workflow and assignment) and their comments.

use crate::body::{Body, Params, PathParams};
use crate::page::{paged, PageQuery, Paged};
use crate::problem::Problem;
use crate::routes::{route, schema, Access, Route, RouteSpec};
use crate::wall::{Ahead, Scoped};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, patch, post};
use axum::Json;
use orgwall_core::{CommentId, Error, ProjectId, TicketId, TicketStatus, UserId};
use orgwall_store::repo::comments::{self, Comment};
use orgwall_store::repo::tickets::{
    self, NewTicket, Ticket, TicketEvent, TicketFilter, TicketPatch,
};
use serde::{Deserialize, Serialize};

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct CreateTicket {
    project_id: String,
    title: String,
    #[serde(default)]
    body: String,
    assignee_id: Option<String>,
}

/// `assignee_id`: absent leaves it, null unassigns, an id assigns.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct UpdateTicket {
    title: Option<String>,
    body: Option<String>,
    /// `open`, `in_progress`, `resolved` or `closed` (workflow moves only).
    status: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schemars(with = "Option<String>")]
    assignee_id: Option<Option<String>>,
}

fn double_option<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct CreateComment {
    body: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only tickets in this workflow status.
    #[schemars(extend("enum" = ["open", "in_progress", "resolved", "closed"]))]
    status: Option<String>,
    /// Only tickets assigned to this member (user id).
    #[schemars(extend("format" = "uuid"))]
    assignee: Option<String>,
    /// Only tickets of this project (id).
    #[schemars(extend("format" = "uuid"))]
    project: Option<String>,
    /// Full-text search: every word must appear (whole words, any case).
    #[schemars(length(max = 200))]
    q: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[schemars(with = "Option<i64>", range(min = 1, max = 200))]
    limit: Option<String>,
    /// Opaque cursor from the previous page's `next_cursor`.
    cursor: Option<String>,
}

#[derive(Serialize)]
struct TicketDetail {
    #[serde(flatten)]
    ticket: Ticket,
    history: Vec<TicketEvent>,
}

const TICKET: &[(&str, &str)] = &[("id", "ticket")];
const COMMENT: &[(&str, &str)] = &[("id", "ticket"), ("comment_id", "comment")];

static LIST: RouteSpec = RouteSpec {
    method: "GET",
    path: "/tickets",
    access: Access::Org(Some(orgwall_store::perms::TICKETS_READ)),
    summary: "List tickets; filters status, assignee, project; `q`: full-text search, every word must appear",
    ids: &[],
    body: None,
    status: 200,
    query: Some(schema::<ListQuery>),
    ..RouteSpec::DEFAULT
};
static CREATE: RouteSpec = RouteSpec {
    method: "POST",
    path: "/tickets",
    access: Access::Org(Some(orgwall_store::perms::TICKETS_WRITE)),
    summary: "Create a ticket in a project of this org, optionally assigned to a member",
    ids: &[],
    body: Some(schema::<CreateTicket>),
    status: 201,
    ..RouteSpec::DEFAULT
};
static GET: RouteSpec = RouteSpec {
    method: "GET",
    path: "/tickets/{id}",
    access: Access::Org(Some(orgwall_store::perms::TICKETS_READ)),
    summary: "Get a ticket with its history",
    ids: TICKET,
    body: None,
    status: 200,
    ahead: Some(|org, path| Some(tickets::detail_flight(org, path.id("id")?))),
    ..RouteSpec::DEFAULT
};
static UPDATE: RouteSpec = RouteSpec {
    method: "PATCH",
    path: "/tickets/{id}",
    access: Access::Org(Some(orgwall_store::perms::TICKETS_WRITE)),
    summary: "Change a ticket: title, body, workflow status, assignee",
    ids: TICKET,
    body: Some(schema::<UpdateTicket>),
    status: 200,
    ..RouteSpec::DEFAULT
};
static DELETE: RouteSpec = RouteSpec {
    method: "DELETE",
    path: "/tickets/{id}",
    access: Access::Org(Some(orgwall_store::perms::TICKETS_DELETE)),
    summary: "Delete a ticket",
    ids: TICKET,
    body: None,
    status: 204,
    ..RouteSpec::DEFAULT
};
static COMMENTS: RouteSpec = RouteSpec {
    method: "GET",
    path: "/tickets/{id}/comments",
    access: Access::Org(Some(orgwall_store::perms::TICKETS_READ)),
    summary: "List a ticket's comments",
    ids: TICKET,
    body: None,
    status: 200,
    ..RouteSpec::DEFAULT
};
static ADD_COMMENT: RouteSpec = RouteSpec {
    method: "POST",
    path: "/tickets/{id}/comments",
    access: Access::Org(Some(orgwall_store::perms::COMMENTS_WRITE)),
    summary: "Comment on a ticket",
    ids: TICKET,
    body: Some(schema::<CreateComment>),
    status: 201,
    ..RouteSpec::DEFAULT
};
static DELETE_COMMENT: RouteSpec = RouteSpec {
    method: "DELETE",
    path: "/tickets/{id}/comments/{comment_id}",
    access: Access::Org(Some(orgwall_store::perms::COMMENTS_WRITE)),
    summary: "Delete a comment (its author, or whoever holds tickets:delete)",
    ids: COMMENT,
    body: None,
    status: 204,
    ..RouteSpec::DEFAULT
};

/// The ticket and comment routes.
pub fn routes() -> Vec<Route> {
    vec![
        route(&LIST, get(list)),
        route(&CREATE, post(create)),
        route(&GET, get(get_one)),
        route(&UPDATE, patch(update)),
        route(&DELETE, delete(remove)),
        route(&COMMENTS, get(list_comments)),
        route(&ADD_COMMENT, post(add_comment)),
        route(&DELETE_COMMENT, delete(delete_comment)),
    ]
}

fn invalid(field: &str) -> Problem {
    Problem::from(Error::Validation(format!("{field} is not valid")))
}

/// A referenced id in a body or query: malformed is a validation error (not 404).
fn ref_id<T: std::str::FromStr>(field: &str, raw: &str) -> Result<T, Problem> {
    raw.parse().map_err(|_| invalid(field))
}

async fn list(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    Params(q): Params<ListQuery>,
) -> Result<Json<Paged<Ticket>>, Problem> {
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .page()?;
    let filter = TicketFilter {
        status: q
            .status
            .as_deref()
            .map(|s| s.parse().map_err(|_| invalid("status")))
            .transpose()?,
        assignee: q
            .assignee
            .as_deref()
            .map(|a| ref_id::<UserId>("assignee", a))
            .transpose()?,
        project: q
            .project
            .as_deref()
            .map(|p| ref_id::<ProjectId>("project", p))
            .transpose()?,
        q: q.q.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()),
    };
    if filter.q.as_ref().is_some_and(|t| t.chars().count() > 200) {
        return Err(invalid("q"));
    }
    // A page that reads about a page of rows is one short flight, on a read lane. One
    // that may read many rows to fill itself (two conditions, a search of several
    // words) takes a pooled transaction: a lane answers in order, and a slow flight
    // there would hold back the flights queued behind it.
    let mut tx = if filter.reads_one_page() {
        state.db.read_once(&scope).await?
    } else {
        state.db.read(&scope).await?
    };
    let rows = tickets::list(&mut tx, &filter, page.limit + 1, page.after).await?;
    tx.commit().await?;
    Ok(Json(paged(rows, page, |t| t.id.uuid())))
}

async fn create(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    Body(b): Body<CreateTicket>,
) -> Result<(StatusCode, Json<Ticket>), Problem> {
    let project_id: ProjectId = ref_id("project_id", &b.project_id)?;
    let assignee_id = b
        .assignee_id
        .as_deref()
        .map(|a| ref_id::<UserId>("assignee_id", a))
        .transpose()?;
    let mut tx = state.db.write(&scope).await?;
    let t = tickets::create(
        &mut tx,
        NewTicket {
            project_id,
            title: &b.title,
            body: &b.body,
            assignee_id,
        },
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(t)))
}

async fn get_one(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    Ahead(ahead): Ahead,
    params: PathParams,
) -> Result<Json<TicketDetail>, Problem> {
    let tid: TicketId = params.id("id")?;
    // The flight `GET`'s spec names: read ahead with a cold API key, or sent now.
    let flight = tickets::detail_flight(scope.org_id(), tid);
    let answers = state.db.read_flight(&scope, ahead, &flight).await?;
    let (ticket, history) = tickets::detail_from(answers)?;
    Ok(Json(TicketDetail { ticket, history }))
}

async fn update(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    params: PathParams,
    Body(b): Body<UpdateTicket>,
) -> Result<Json<Ticket>, Problem> {
    let tid: TicketId = params.id("id")?;
    let assignee_id = match b.assignee_id {
        None => None,
        Some(None) => Some(None),
        Some(Some(a)) => Some(Some(ref_id::<UserId>("assignee_id", &a)?)),
    };
    let status = b
        .status
        .as_deref()
        .map(|s| s.parse::<TicketStatus>().map_err(|_| invalid("status")))
        .transpose()?;
    let mut tx = state.db.write(&scope).await?;
    let t = tickets::update(
        &mut tx,
        tid,
        TicketPatch {
            title: b.title,
            body: b.body,
            status,
            assignee_id,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Json(t))
}

async fn remove(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    params: PathParams,
) -> Result<StatusCode, Problem> {
    let tid: TicketId = params.id("id")?;
    let mut tx = state.db.write(&scope).await?;
    tickets::delete(&mut tx, tid).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_comments(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    params: PathParams,
) -> Result<Json<Paged<Comment>>, Problem> {
    let tid: TicketId = params.id("id")?;
    let mut tx = state.db.read(&scope).await?;
    let items = comments::list(&mut tx, tid).await?;
    tx.commit().await?;
    Ok(Json(Paged {
        items,
        next_cursor: None,
    }))
}

async fn add_comment(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    params: PathParams,
    Body(b): Body<CreateComment>,
) -> Result<(StatusCode, Json<Comment>), Problem> {
    let tid: TicketId = params.id("id")?;
    let mut tx = state.db.write(&scope).await?;
    let c = comments::add(&mut tx, tid, &b.body).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(c)))
}

async fn delete_comment(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    params: PathParams,
) -> Result<StatusCode, Problem> {
    let tid: TicketId = params.id("id")?;
    let cid: CommentId = params.id("comment_id")?;
    let mut tx = state.db.write(&scope).await?;
    comments::delete(&mut tx, tid, cid).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
