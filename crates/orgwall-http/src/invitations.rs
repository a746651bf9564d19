//! Invitations: invite (the token is shown once and mailed), list, revoke, and accept.
//!
//! Accepting is a user-session route outside any org: the org and the role come from the
//! invitation the token names, never from the request (the body is only `{token}`).

use crate::body::{Body, Params, PathParams};
use crate::page::{paged, PageQuery, Paged};
use crate::problem::Problem;
use crate::routes::{route, schema, Access, Route, RouteSpec};
use crate::wall::{Caller, Scoped};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::Json;
use orgwall_core::{Email, Error, InvitationId, Permission};
use orgwall_store::access;
use orgwall_store::repo::invitations;
use orgwall_store::repo::outbox::{self, PublicUrl};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct CreateInvitation {
    /// The address to invite (the invitation is bound to it).
    email: String,
    /// The role the invitee gets: a role key (`admin`, `member`, ...) or id.
    role: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct AcceptInvitation {
    /// The invitation token from the email.
    token: String,
}

static CREATE: RouteSpec = RouteSpec {
    method: "POST",
    path: "/invitations",
    access: Access::Org(Some(Permission::MEMBERS_INVITE)),
    summary: "Invite someone by email (the token is in this response, once, and in the email)",
    ids: &[],
    body: Some(schema::<CreateInvitation>),
    status: 201,
    ..RouteSpec::DEFAULT
};
static LIST: RouteSpec = RouteSpec {
    method: "GET",
    path: "/invitations",
    access: Access::Org(Some(Permission::MEMBERS_READ)),
    summary: "The organization's invitations (never their tokens)",
    ids: &[],
    body: None,
    status: 200,
    query: Some(schema::<PageQuery>),
    ..RouteSpec::DEFAULT
};
static REVOKE: RouteSpec = RouteSpec {
    method: "DELETE",
    path: "/invitations/{id}",
    access: Access::Org(Some(Permission::MEMBERS_INVITE)),
    summary: "Revoke a pending invitation",
    ids: &[("id", "invitation")],
    body: None,
    status: 204,
    ..RouteSpec::DEFAULT
};
static ACCEPT: RouteSpec = RouteSpec {
    method: "POST",
    path: "/v1/invitations/accept",
    access: Access::User,
    summary: "Accept an invitation with its token (single use; bound to your verified email)",
    ids: &[],
    body: Some(schema::<AcceptInvitation>),
    status: 200,
    errors: &[404, 409, 410],
    ..RouteSpec::DEFAULT
};

/// The invitation routes.
pub fn routes() -> Vec<Route> {
    vec![
        route(&CREATE, post(create)),
        route(&LIST, get(list)),
        route(&REVOKE, delete(revoke)),
        route(&ACCEPT, post(accept)),
    ]
}

/// The link mailed with an invitation (absolute under the public URL, if there is one).
fn accept_link(base: Option<&PublicUrl>, token: &str) -> String {
    outbox::link(base, &format!("/invitations/accept?token={token}"))
}

async fn create(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    Body(b): Body<CreateInvitation>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let email = Email::parse(&b.email).map_err(|e| Problem::from(Error::Validation(e)))?;
    let mut tx = state.db.write(&scope).await?;
    let (invitation, token) = invitations::create(&mut tx, &email, &b.role, |t| {
        accept_link(state.public_url.as_ref(), t)
    })
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "invitation": invitation, "token": token })),
    ))
}

async fn list(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    Params(q): Params<PageQuery>,
) -> Result<Json<Paged<invitations::Invitation>>, Problem> {
    let page = q.page()?;
    let mut tx = state.db.read(&scope).await?;
    let rows = invitations::list(
        &mut tx,
        page.limit + 1,
        page.after.map(InvitationId::from_uuid),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(paged(rows, page, |i| i.id.uuid())))
}

async fn revoke(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    params: PathParams,
) -> Result<StatusCode, Problem> {
    let id: InvitationId = params.id("id")?;
    let mut tx = state.db.write(&scope).await?;
    invitations::revoke(&mut tx, id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn accept(
    State(state): State<AppState>,
    caller: Caller,
    Body(b): Body<AcceptInvitation>,
) -> Result<Json<Value>, Problem> {
    let joined = access::accept_invitation(&state.db, caller.user_id, &b.token).await?;
    Ok(Json(json!({ "membership": joined })))
}
