//! The permission catalogue (`GET /v1/permissions`) and an organization's roles: list,
//! read, create, change and delete custom roles. The four system roles are listed but
//! immutable. Rules (granting no more than one holds, system roles immutable, roles in use
//! kept) are enforced in `orgwall_store::repo::roles`, inside the changing transaction.

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
use orgwall_core::{Permission, RoleId, SystemRole};
use orgwall_store::repo::roles::{self, Role, RolePatch};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct CreateRole {
    /// `^[a-z][a-z0-9_-]{1,39}$`, not a system role's key.
    key: String,
    /// Display name, 1-100 characters.
    name: String,
    /// Permission names from `GET /v1/permissions`; you must hold each of them.
    permissions: Vec<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct UpdateRole {
    key: Option<String>,
    name: Option<String>,
    /// Replaces the role's permissions; you must hold each of them.
    permissions: Option<Vec<String>>,
}

static PERMISSIONS: RouteSpec = RouteSpec {
    method: "GET",
    path: "/v1/permissions",
    access: Access::Public,
    summary: "The permission catalogue and the four system roles",
    ids: &[],
    body: None,
    status: 200,
    ..RouteSpec::DEFAULT
};
static LIST: RouteSpec = RouteSpec {
    method: "GET",
    path: "/roles",
    access: Access::Org(Some(Permission::ROLES_READ)),
    summary: "The organization's roles, system roles first (keyset-paginated: ?limit=&cursor=)",
    ids: &[],
    body: None,
    status: 200,
    query: Some(schema::<PageQuery>),
    ..RouteSpec::DEFAULT
};
static GET_ONE: RouteSpec = RouteSpec {
    method: "GET",
    path: "/roles/{role_id}",
    access: Access::Org(Some(Permission::ROLES_READ)),
    summary: "One role",
    ids: &[("role_id", "role")],
    body: None,
    status: 200,
    ..RouteSpec::DEFAULT
};
static CREATE: RouteSpec = RouteSpec {
    method: "POST",
    path: "/roles",
    access: Access::Org(Some(Permission::ROLES_MANAGE)),
    summary: "Create a custom role (only with permissions you hold)",
    ids: &[],
    body: Some(schema::<CreateRole>),
    status: 201,
    ..RouteSpec::DEFAULT
};
static UPDATE: RouteSpec = RouteSpec {
    method: "PATCH",
    path: "/roles/{role_id}",
    access: Access::Org(Some(Permission::ROLES_MANAGE)),
    summary: "Change a custom role (system roles are immutable; only permissions you hold)",
    ids: &[("role_id", "role")],
    body: Some(schema::<UpdateRole>),
    status: 200,
    ..RouteSpec::DEFAULT
};
static DELETE: RouteSpec = RouteSpec {
    method: "DELETE",
    path: "/roles/{role_id}",
    access: Access::Org(Some(Permission::ROLES_MANAGE)),
    summary: "Delete a custom role no member, invitation or API key holds",
    ids: &[("role_id", "role")],
    body: None,
    status: 204,
    ..RouteSpec::DEFAULT
};

/// The catalogue and role routes.
pub fn routes() -> Vec<Route> {
    vec![
        route(&PERMISSIONS, get(catalogue)),
        route(&LIST, get(list)),
        route(&GET_ONE, get(get_role)),
        route(&CREATE, post(create)),
        route(&UPDATE, patch(update)),
        route(&DELETE, delete(delete_role)),
    ]
}

async fn catalogue() -> Json<Value> {
    let permissions: Vec<Value> = orgwall_core::perm::catalogue()
        .iter()
        .map(|d| json!({ "name": d.permission.as_str(), "description": d.description }))
        .collect();
    let system_roles: Vec<Value> = SystemRole::ALL
        .iter()
        .map(|r| {
            json!({
                "key": r.key(),
                "name": r.display_name(),
                "permissions": r.permissions(),
            })
        })
        .collect();
    Json(json!({ "permissions": permissions, "system_roles": system_roles }))
}

async fn list(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    Params(q): Params<PageQuery>,
) -> Result<Json<Paged<Role>>, Problem> {
    let page = q.page()?;
    let mut tx = state.db.read(&scope).await?;
    let rows = roles::list(&mut tx, page.limit + 1, page.after.map(RoleId::from_uuid)).await?;
    tx.commit().await?;
    Ok(Json(paged(rows, page, |r| r.id.uuid())))
}

async fn get_role(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    params: PathParams,
) -> Result<Json<Role>, Problem> {
    let id: RoleId = params.id("role_id")?;
    let mut tx = state.db.read(&scope).await?;
    let role = roles::get(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(role))
}

async fn create(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    Body(b): Body<CreateRole>,
) -> Result<(StatusCode, Json<Role>), Problem> {
    let perms = roles::parse_permissions(&b.permissions)?;
    let mut tx = state.db.write(&scope).await?;
    let role = roles::create(&mut tx, &b.key, &b.name, perms).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(role)))
}

async fn update(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    params: PathParams,
    Body(b): Body<UpdateRole>,
) -> Result<Json<Role>, Problem> {
    let id: RoleId = params.id("role_id")?;
    let patch = RolePatch {
        key: b.key,
        name: b.name,
        permissions: b
            .permissions
            .as_deref()
            .map(roles::parse_permissions)
            .transpose()?,
    };
    let mut tx = state.db.write(&scope).await?;
    let role = roles::update(&mut tx, id, patch).await?;
    tx.commit().await?;
    Ok(Json(role))
}

async fn delete_role(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    params: PathParams,
) -> Result<StatusCode, Problem> {
    let id: RoleId = params.id("role_id")?;
    let mut tx = state.db.write(&scope).await?;
    roles::delete(&mut tx, id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
