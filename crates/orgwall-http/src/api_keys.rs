//! API keys: create (the key is shown once), list (never keys or hashes), revoke.
//!
//! Keys authenticate org routes through the HTTP wall ([`crate::wall`]): a key acts only in
//! its own org, with its role's permissions, and stops working on the request after its
//! revocation.

use crate::body::{Body, Params, PathParams};
use crate::page::{paged, PageQuery, Paged};
use crate::problem::Problem;
use crate::routes::{route, schema, Access, Route, RouteSpec};
use crate::wall::Scoped;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::Json;
use chrono::{DateTime, Utc};
use orgwall_core::{ApiKeyId, Error, Permission};
use orgwall_store::repo::api_keys;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    /// A name to recognize the key by (1-100 characters).
    name: String,
    /// The key's role: a role key or id. It must grant nothing you do not hold.
    role: String,
    /// RFC 3339 time after which the key stops working (in the future); none: never.
    expires_at: Option<String>,
}

static LIST: RouteSpec = RouteSpec {
    method: "GET",
    path: "/api-keys",
    access: Access::Org(Some(Permission::API_KEYS_MANAGE)),
    summary: "The organization's API keys (never the keys themselves)",
    ids: &[],
    body: None,
    status: 200,
    query: Some(schema::<PageQuery>),
    ..RouteSpec::DEFAULT
};
static CREATE: RouteSpec = RouteSpec {
    method: "POST",
    path: "/api-keys",
    access: Access::Org(Some(Permission::API_KEYS_MANAGE)),
    summary: "Create an API key (the key is in this response, once)",
    ids: &[],
    body: Some(schema::<CreateKey>),
    status: 201,
    ..RouteSpec::DEFAULT
};
static REVOKE: RouteSpec = RouteSpec {
    method: "DELETE",
    path: "/api-keys/{id}",
    access: Access::Org(Some(Permission::API_KEYS_MANAGE)),
    summary: "Revoke an API key (effective on the next request)",
    ids: &[("id", "api_key")],
    body: None,
    status: 204,
    ..RouteSpec::DEFAULT
};

/// The API key routes.
pub fn routes() -> Vec<Route> {
    vec![
        route(&LIST, get(list)),
        route(&CREATE, post(create)),
        route(&REVOKE, delete(revoke)),
    ]
}

async fn create(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    Body(b): Body<CreateKey>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let expires_at = b
        .expires_at
        .as_deref()
        .map(|s| {
            DateTime::parse_from_rfc3339(s.trim())
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    Problem::from(Error::Validation(
                        "expires_at must be an RFC 3339 time, e.g. 2030-01-01T00:00:00Z".into(),
                    ))
                })
        })
        .transpose()?;
    let mut tx = state.db.write(&scope).await?;
    let (api_key, key) = api_keys::create(&mut tx, &b.name, &b.role, expires_at).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "api_key": api_key, "key": key })),
    ))
}

async fn list(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    Params(q): Params<PageQuery>,
) -> Result<Json<Paged<api_keys::ApiKey>>, Problem> {
    let page = q.page()?;
    let mut tx = state.db.read(&scope).await?;
    let rows = api_keys::list(&mut tx, page.limit + 1, page.after.map(ApiKeyId::from_uuid)).await?;
    tx.commit().await?;
    Ok(Json(paged(rows, page, |k| k.id.uuid())))
}

async fn revoke(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    params: PathParams,
) -> Result<StatusCode, Problem> {
    let id: ApiKeyId = params.id("id")?;
    let mut tx = state.db.write(&scope).await?;
    api_keys::revoke(&mut tx, id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
