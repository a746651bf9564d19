//! Notes: list (with `q`), create, get, update, delete.

use crate::body::{Body, Params, PathParams};
use crate::page::{paged, PageQuery, Paged};
use crate::problem::Problem;
use crate::routes::{route, schema, Access, Route, RouteSpec};
use crate::wall::Scoped;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, patch, post};
use axum::Json;
use orgwall_core::NoteId;
use orgwall_store::repo::notes::{self, Note};
use serde::Deserialize;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct CreateNote {
    title: String,
    #[serde(default)]
    body: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct UpdateNote {
    title: Option<String>,
    body: Option<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Full-text search: every word must appear (whole words, any case).
    #[schemars(length(max = 200))]
    q: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[schemars(with = "Option<i64>", range(min = 1, max = 200))]
    limit: Option<String>,
    /// Opaque cursor from the previous page's `next_cursor`.
    cursor: Option<String>,
}

const IDS: &[(&str, &str)] = &[("id", "note")];

static LIST: RouteSpec = RouteSpec {
    method: "GET",
    path: "/notes",
    access: Access::Org(Some(orgwall_store::perms::NOTES_READ)),
    summary: "List notes; `q`: full-text search, every word must appear (whole words, any case)",
    ids: &[],
    body: None,
    status: 200,
    query: Some(schema::<ListQuery>),
    ..RouteSpec::DEFAULT
};
static CREATE: RouteSpec = RouteSpec {
    method: "POST",
    path: "/notes",
    access: Access::Org(Some(orgwall_store::perms::NOTES_WRITE)),
    summary: "Create a note",
    ids: &[],
    body: Some(schema::<CreateNote>),
    status: 201,
    ..RouteSpec::DEFAULT
};
static GET: RouteSpec = RouteSpec {
    method: "GET",
    path: "/notes/{id}",
    access: Access::Org(Some(orgwall_store::perms::NOTES_READ)),
    summary: "Get a note",
    ids: IDS,
    body: None,
    status: 200,
    ..RouteSpec::DEFAULT
};
static UPDATE: RouteSpec = RouteSpec {
    method: "PATCH",
    path: "/notes/{id}",
    access: Access::Org(Some(orgwall_store::perms::NOTES_WRITE)),
    summary: "Change a note",
    ids: IDS,
    body: Some(schema::<UpdateNote>),
    status: 200,
    ..RouteSpec::DEFAULT
};
static DELETE: RouteSpec = RouteSpec {
    method: "DELETE",
    path: "/notes/{id}",
    access: Access::Org(Some(orgwall_store::perms::NOTES_DELETE)),
    summary: "Delete a note",
    ids: IDS,
    body: None,
    status: 204,
    ..RouteSpec::DEFAULT
};

/// The note routes.
pub fn routes() -> Vec<Route> {
    vec![
        route(&LIST, get(list)),
        route(&CREATE, post(create)),
        route(&GET, get(get_one)),
        route(&UPDATE, patch(update)),
        route(&DELETE, delete(remove)),
    ]
}

async fn list(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    Params(q): Params<ListQuery>,
) -> Result<Json<Paged<Note>>, Problem> {
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .page()?;
    let text = q.q.as_deref().map(str::trim).filter(|t| !t.is_empty());
    if text.is_some_and(|t| t.chars().count() > 200) {
        return Err(
            orgwall_core::Error::Validation("q must be at most 200 characters".into()).into(),
        );
    }
    let mut tx = state.db.read(&scope).await?;
    let rows = notes::list(&mut tx, text, page.limit + 1, page.after).await?;
    tx.commit().await?;
    Ok(Json(paged(rows, page, |n| n.id.uuid())))
}

async fn create(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    Body(b): Body<CreateNote>,
) -> Result<(StatusCode, Json<Note>), Problem> {
    let mut tx = state.db.write(&scope).await?;
    let n = notes::create(&mut tx, &b.title, &b.body).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(n)))
}

async fn get_one(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    params: PathParams,
) -> Result<Json<Note>, Problem> {
    let nid: NoteId = params.id("id")?;
    let mut tx = state.db.read(&scope).await?;
    let n = notes::get(&mut tx, nid).await?;
    tx.commit().await?;
    Ok(Json(n))
}

async fn update(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    params: PathParams,
    Body(b): Body<UpdateNote>,
) -> Result<Json<Note>, Problem> {
    let nid: NoteId = params.id("id")?;
    let mut tx = state.db.write(&scope).await?;
    let n = notes::update(&mut tx, nid, b.title.as_deref(), b.body.as_deref()).await?;
    tx.commit().await?;
    Ok(Json(n))
}

async fn remove(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    params: PathParams,
) -> Result<StatusCode, Problem> {
    let nid: NoteId = params.id("id")?;
    let mut tx = state.db.write(&scope).await?;
    notes::delete(&mut tx, nid).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
