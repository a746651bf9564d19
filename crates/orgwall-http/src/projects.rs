//! Projects: list, create, get, update, delete.

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
use orgwall_core::ProjectId;
use orgwall_store::repo::projects::{self, Project};
use serde::Deserialize;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct CreateProject {
    key: String,
    name: String,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct UpdateProject {
    key: Option<String>,
    name: Option<String>,
    description: Option<String>,
}

const IDS: &[(&str, &str)] = &[("id", "project")];

static LIST: RouteSpec = RouteSpec {
    method: "GET",
    path: "/projects",
    access: Access::Org(Some(orgwall_store::perms::PROJECTS_READ)),
    summary: "List projects",
    ids: &[],
    body: None,
    status: 200,
    query: Some(schema::<PageQuery>),
    ..RouteSpec::DEFAULT
};
static CREATE: RouteSpec = RouteSpec {
    method: "POST",
    path: "/projects",
    access: Access::Org(Some(orgwall_store::perms::PROJECTS_WRITE)),
    summary: "Create a project (key unique in the org)",
    ids: &[],
    body: Some(schema::<CreateProject>),
    status: 201,
    ..RouteSpec::DEFAULT
};
static GET: RouteSpec = RouteSpec {
    method: "GET",
    path: "/projects/{id}",
    access: Access::Org(Some(orgwall_store::perms::PROJECTS_READ)),
    summary: "Get a project",
    ids: IDS,
    body: None,
    status: 200,
    ..RouteSpec::DEFAULT
};
static UPDATE: RouteSpec = RouteSpec {
    method: "PATCH",
    path: "/projects/{id}",
    access: Access::Org(Some(orgwall_store::perms::PROJECTS_WRITE)),
    summary: "Change a project",
    ids: IDS,
    body: Some(schema::<UpdateProject>),
    status: 200,
    ..RouteSpec::DEFAULT
};
static DELETE: RouteSpec = RouteSpec {
    method: "DELETE",
    path: "/projects/{id}",
    access: Access::Org(Some(orgwall_store::perms::PROJECTS_WRITE)),
    summary: "Delete a project and its tickets",
    ids: IDS,
    body: None,
    status: 204,
    ..RouteSpec::DEFAULT
};

/// The project routes.
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
    Params(q): Params<PageQuery>,
) -> Result<Json<Paged<Project>>, Problem> {
    let page = q.page()?;
    let mut tx = state.db.read(&scope).await?;
    let rows = projects::list(&mut tx, page.limit + 1, page.after).await?;
    tx.commit().await?;
    Ok(Json(paged(rows, page, |p| p.id.uuid())))
}

async fn create(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    Body(b): Body<CreateProject>,
) -> Result<(StatusCode, Json<Project>), Problem> {
    let mut tx = state.db.write(&scope).await?;
    let p = projects::create(&mut tx, &b.key, &b.name, &b.description).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(p)))
}

async fn get_one(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    params: PathParams,
) -> Result<Json<Project>, Problem> {
    let pid: ProjectId = params.id("id")?;
    let mut tx = state.db.read(&scope).await?;
    let project = projects::get(&mut tx, pid).await?;
    tx.commit().await?;
    Ok(Json(project))
}

async fn update(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    params: PathParams,
    Body(b): Body<UpdateProject>,
) -> Result<Json<Project>, Problem> {
    let pid: ProjectId = params.id("id")?;
    let mut tx = state.db.write(&scope).await?;
    let project = projects::update(
        &mut tx,
        pid,
        b.key.as_deref(),
        b.name.as_deref(),
        b.description.as_deref(),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(project))
}

async fn remove(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    params: PathParams,
) -> Result<StatusCode, Problem> {
    let pid: ProjectId = params.id("id")?;
    let mut tx = state.db.write(&scope).await?;
    projects::delete(&mut tx, pid).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
