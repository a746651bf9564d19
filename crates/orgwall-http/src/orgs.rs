//! Organizations: create, list mine, get, update, delete (202, purged by a job), and
//! ownership transfer.

use crate::body::Body;
use crate::problem::Problem;
use crate::routes::{route, schema, Access, Route, RouteSpec};
use crate::wall::{Caller, Scoped};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, patch, post};
use axum::Json;
use orgwall_core::{Error, Permission, Slug, UserId};
use orgwall_store::access;
use orgwall_store::repo::{memberships, orgs};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct CreateOrg {
    name: String,
    slug: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct UpdateOrg {
    name: Option<String>,
    slug: Option<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Transfer {
    user_id: String,
}

static CREATE: RouteSpec = RouteSpec {
    method: "POST",
    path: "/v1/orgs",
    access: Access::User,
    summary: "Create an organization (you become its owner)",
    ids: &[],
    body: Some(schema::<CreateOrg>),
    status: 201,
    ..RouteSpec::DEFAULT
};
static LIST: RouteSpec = RouteSpec {
    method: "GET",
    path: "/v1/orgs",
    access: Access::User,
    summary: "The organizations you belong to",
    ids: &[],
    body: None,
    status: 200,
    ..RouteSpec::DEFAULT
};
static GET: RouteSpec = RouteSpec {
    method: "GET",
    path: "",
    access: Access::Org(Some(Permission::ORG_READ)),
    summary: "The organization",
    ids: &[],
    body: None,
    status: 200,
    ..RouteSpec::DEFAULT
};
static UPDATE: RouteSpec = RouteSpec {
    method: "PATCH",
    path: "",
    access: Access::Org(Some(Permission::ORG_UPDATE)),
    summary: "Rename the organization or change its slug",
    ids: &[],
    body: Some(schema::<UpdateOrg>),
    status: 200,
    ..RouteSpec::DEFAULT
};
static DELETE: RouteSpec = RouteSpec {
    method: "DELETE",
    path: "",
    access: Access::Org(Some(Permission::ORG_DELETE)),
    summary: "Delete the organization (every row and file is purged by a job)",
    ids: &[],
    body: None,
    status: 202,
    ..RouteSpec::DEFAULT
};
static TRANSFER: RouteSpec = RouteSpec {
    method: "POST",
    path: "/transfer-ownership",
    access: Access::Org(None),
    summary: "Make another member an owner; you become an admin (owners only)",
    ids: &[],
    body: Some(schema::<Transfer>),
    status: 204,
    rule: Some("owner: only an owner can transfer ownership"),
    ..RouteSpec::DEFAULT
};

/// The organization routes.
pub fn routes() -> Vec<Route> {
    vec![
        route(&CREATE, post(create)),
        route(&LIST, get(list)),
        route(&GET, get(get_org)),
        route(&UPDATE, patch(update)),
        route(&DELETE, delete(delete_org)),
        route(&TRANSFER, post(transfer)),
    ]
}

fn slug(raw: &str) -> Result<Slug, Problem> {
    Slug::parse(raw).map_err(|e| Problem::from(Error::Validation(e)))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(b): Body<CreateOrg>,
) -> Result<(StatusCode, Json<orgs::Org>), Problem> {
    let slug = slug(&b.slug)?;
    let (org, _) = access::create_org(&state.db, caller.user_id, &b.name, &slug).await?;
    Ok((
        StatusCode::CREATED,
        Json(orgs::get(&state.db, org.id).await?),
    ))
}

async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, Problem> {
    let mine = access::my_orgs(&state.db, caller.user_id).await?;
    Ok(Json(json!({ "items": mine, "next_cursor": null })))
}

async fn get_org(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
) -> Result<Json<orgs::Org>, Problem> {
    Ok(Json(orgs::get(&state.db, scope.org_id()).await?))
}

async fn update(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    Body(b): Body<UpdateOrg>,
) -> Result<Json<orgs::Org>, Problem> {
    let slug = b.slug.as_deref().map(slug).transpose()?;
    let mut tx = state.db.write(&scope).await?;
    let org = orgs::update(&mut tx, b.name.as_deref(), slug.as_ref()).await?;
    tx.commit().await?;
    Ok(Json(org))
}

async fn delete_org(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let mut tx = state.db.write(&scope).await?;
    orgs::schedule_deletion(&mut tx).await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "status": "deleting" }))))
}

async fn transfer(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    Body(b): Body<Transfer>,
) -> Result<StatusCode, Problem> {
    let to: UserId = crate::wall::id(&b.user_id)?;
    let mut tx = state.db.write(&scope).await?;
    memberships::transfer_ownership(&mut tx, to).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
