//! Members of an organization: list (keyset-paginated), read one, change a member's role,
//! remove a member or leave.
//!
//! `DELETE /members/{user_id}` is declared with membership alone (`x-permission: null`):
//! for the caller's own user id it is *leaving*, which any member may do (except the last
//! owner); for anyone else the store requires `members:remove` before touching anything.
//! Every rule (granting no more than one holds, owners only acted on by owners, the last
//! owner) is enforced in `orgwall_store::repo::memberships`, inside the transaction that
//! makes the change.

use crate::body::{Body, Params, PathParams};
use crate::page::{paged, PageQuery, Paged};
use crate::problem::Problem;
use crate::routes::{route, schema, Access, Route, RouteSpec};
use crate::wall::Scoped;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, patch};
use axum::Json;
use orgwall_core::{Permission, UserId};
use orgwall_store::repo::memberships::{self, Member};
use serde::Deserialize;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct UpdateMember {
    /// The new role: a role key (`owner`, `admin`, `member`, `viewer`, a custom key) or id.
    role: String,
}

static LIST: RouteSpec = RouteSpec {
    method: "GET",
    path: "/members",
    access: Access::Org(Some(Permission::MEMBERS_READ)),
    summary: "The organization's members (keyset-paginated by user id: ?limit=&cursor=)",
    ids: &[],
    body: None,
    status: 200,
    query: Some(schema::<PageQuery>),
    ..RouteSpec::DEFAULT
};
static GET_ONE: RouteSpec = RouteSpec {
    method: "GET",
    path: "/members/{user_id}",
    access: Access::Org(Some(Permission::MEMBERS_READ)),
    summary: "One member",
    ids: &[("user_id", "member")],
    body: None,
    status: 200,
    ..RouteSpec::DEFAULT
};
static UPDATE: RouteSpec = RouteSpec {
    method: "PATCH",
    path: "/members/{user_id}",
    access: Access::Org(Some(Permission::MEMBERS_UPDATE)),
    summary: "Change a member's role (only roles whose permissions you hold; only owners make or act on owners; the last owner stays)",
    ids: &[("user_id", "member")],
    body: Some(schema::<UpdateMember>),
    status: 200,
    ..RouteSpec::DEFAULT
};
static REMOVE: RouteSpec = RouteSpec {
    method: "DELETE",
    path: "/members/{user_id}",
    access: Access::Org(None),
    summary: "Remove a member (needs members:remove; owners only by owners) or, with your own user id, leave (membership suffices); the last owner cannot go",
    ids: &[("user_id", "member")],
    body: None,
    status: 204,
    rule: Some("members:remove to remove another member (owners only by owners); with your own user id, leaving, which membership alone allows; the last owner cannot go"),
    ..RouteSpec::DEFAULT
};

/// The member routes.
pub fn routes() -> Vec<Route> {
    vec![
        route(&LIST, get(list)),
        route(&GET_ONE, get(get_member)),
        route(&UPDATE, patch(update)),
        route(&REMOVE, delete(remove)),
    ]
}

async fn list(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    Params(q): Params<PageQuery>,
) -> Result<Json<Paged<Member>>, Problem> {
    let page = q.page()?;
    let mut tx = state.db.read(&scope).await?;
    let rows =
        memberships::list_page(&mut tx, page.limit + 1, page.after.map(UserId::from_uuid)).await?;
    tx.commit().await?;
    Ok(Json(paged(rows, page, |m| m.user_id.uuid())))
}

async fn get_member(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    params: PathParams,
) -> Result<Json<Member>, Problem> {
    let user: UserId = params.id("user_id")?;
    let mut tx = state.db.read(&scope).await?;
    let m = memberships::get(&mut tx, user).await?;
    tx.commit().await?;
    Ok(Json(m))
}

async fn update(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    params: PathParams,
    Body(b): Body<UpdateMember>,
) -> Result<Json<Member>, Problem> {
    let user: UserId = params.id("user_id")?;
    let mut tx = state.db.write(&scope).await?;
    let m = memberships::change_role(&mut tx, user, &b.role).await?;
    tx.commit().await?;
    Ok(Json(m))
}

async fn remove(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    params: PathParams,
) -> Result<StatusCode, Problem> {
    let user: UserId = params.id("user_id")?;
    let mut tx = state.db.write(&scope).await?;
    memberships::remove(&mut tx, user).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
