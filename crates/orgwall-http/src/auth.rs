//! Accounts and sessions: signup, login, logout, email verification, `GET /v1/me`,
//! `PUT /v1/me/active-org`, `PUT /v1/me/password`.

use crate::body::Body;
use crate::limits;
use crate::problem::Problem;
use crate::routes::{route, schema, Access, Route, RouteSpec};
use crate::wall::Caller;
use crate::AppState;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::Json;
use chrono::{DateTime, Utc};
use orgwall_core::{Email, Error, OrgId, PermissionSet};
use orgwall_store::access;
use orgwall_store::crypto;
use orgwall_store::repo::{orgs, outbox, sessions, users, verifications};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::net::SocketAddr;

/// Passwords: at least this many characters.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Passwords: at most this many bytes (argon2 input is bounded so hashing stays cheap).
pub const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Signup {
    email: String,
    password: String,
    name: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Login {
    email: String,
    password: String,
    /// Browser mode: the session travels in an HttpOnly, SameSite=Strict cookie, and
    /// state-changing requests must echo `csrf_token` in `X-CSRF-Token`.
    #[serde(default)]
    cookie: bool,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    token: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ActiveOrg {
    /// Org id or slug; null clears it.
    org: Option<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

static SIGNUP: RouteSpec = RouteSpec {
    method: "POST",
    path: "/v1/auth/signup",
    access: Access::Public,
    summary: "Create an account (a verification email is queued)",
    ids: &[],
    body: Some(schema::<Signup>),
    status: 201,
    errors: &[429],
    ..RouteSpec::DEFAULT
};
static LOGIN: RouteSpec = RouteSpec {
    method: "POST",
    path: "/v1/auth/login",
    access: Access::Public,
    summary: "Start a session",
    ids: &[],
    body: Some(schema::<Login>),
    status: 200,
    errors: &[401, 429],
    ..RouteSpec::DEFAULT
};
static LOGOUT: RouteSpec = RouteSpec {
    method: "POST",
    path: "/v1/auth/logout",
    access: Access::User,
    summary: "End this session",
    ids: &[],
    body: None,
    status: 204,
    ..RouteSpec::DEFAULT
};
static VERIFY: RouteSpec = RouteSpec {
    method: "POST",
    path: "/v1/auth/verify-email",
    access: Access::Public,
    summary: "Confirm an email address with its token",
    ids: &[],
    body: Some(schema::<TokenBody>),
    status: 204,
    errors: &[404, 410],
    ..RouteSpec::DEFAULT
};
static ME: RouteSpec = RouteSpec {
    method: "GET",
    path: "/v1/me",
    access: Access::User,
    summary: "The signed-in user, their memberships and active org",
    ids: &[],
    body: None,
    status: 200,
    ..RouteSpec::DEFAULT
};
static ACTIVE_ORG: RouteSpec = RouteSpec {
    method: "PUT",
    path: "/v1/me/active-org",
    access: Access::User,
    summary: "Choose the org used by org-less routes",
    ids: &[],
    body: Some(schema::<ActiveOrg>),
    status: 200,
    ..RouteSpec::DEFAULT
};
static PASSWORD: RouteSpec = RouteSpec {
    method: "PUT",
    path: "/v1/me/password",
    access: Access::User,
    summary: "Change the password (ends every session, this one too)",
    ids: &[],
    body: Some(schema::<PasswordChange>),
    status: 204,
    ..RouteSpec::DEFAULT
};

/// The account routes.
pub fn routes() -> Vec<Route> {
    vec![
        route(&SIGNUP, post(signup)),
        route(&LOGIN, post(login)),
        route(&LOGOUT, post(logout)),
        route(&VERIFY, post(verify_email)),
        route(&ME, get(me)),
        route(&ACTIVE_ORG, put(active_org)),
        route(&PASSWORD, put(change_password)),
    ]
}

fn check_password(pw: &str, email: &str) -> Result<(), Problem> {
    let chars = pw.chars().count();
    if chars < MIN_PASSWORD_CHARS || pw.len() > MAX_PASSWORD_BYTES {
        return Err(Error::Validation(format!(
            "password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_BYTES} bytes long"
        ))
        .into());
    }
    let lower = pw.to_lowercase();
    if lower == email
        || lower.chars().all(|c| lower.starts_with(c))
        || COMMON.contains(&lower.as_str())
    {
        return Err(Error::Validation("password is too easy to guess".into()).into());
    }
    Ok(())
}

/// A few of the most common passwords of at least ten characters.
const COMMON: &[&str] = &[
    "1234567890",
    "12345678910",
    "password123",
    "password12",
    "qwertyuiop",
    "0123456789",
    "1q2w3e4r5t",
    "iloveyou12",
    "passw0rd123",
    "abcdefghij",
    "qwerty1234",
    "1234qwerty",
];

async fn hash(pw: String) -> Result<String, Problem> {
    tokio::task::spawn_blocking(move || crypto::hash_password(&pw))
        .await
        .map_err(|e| Problem::from(Error::internal(e)))?
        .map_err(Problem::from)
}

async fn verify_pw(pw: String, stored: String) -> Result<bool, Problem> {
    tokio::task::spawn_blocking(move || crypto::verify_password(&pw, &stored))
        .await
        .map_err(|e| Problem::from(Error::internal(e)))
}

/// The client's IP address (the TCP peer).
pub struct ClientIp(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or_else(|| "unknown".into(), |c| c.0.ip().to_string()),
        ))
    }
}

fn parse_email(raw: &str) -> Result<Email, Problem> {
    Email::parse(raw).map_err(|e| Problem::from(Error::Validation(e)))
}

#[tracing::instrument(skip_all)]
async fn signup(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Body(b): Body<Signup>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    limits::check(
        &state.limits,
        &format!("ip:{ip}"),
        state.limits.config.login_per_ip,
    )
    .await?;
    let email = parse_email(&b.email)?;
    check_password(&b.password, email.as_str())?;
    let password_hash = hash(b.password).await?;
    let base = state.public_url.as_ref();
    let user = users::signup(&state.db, &email, &b.name, &password_hash, |t| {
        outbox::link(base, &format!("/verify-email?token={t}"))
    })
    .await?;
    Ok((StatusCode::CREATED, Json(json!({ "user": user }))))
}

#[derive(Serialize)]
struct LoginOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf_token: Option<String>,
    expires_at: DateTime<Utc>,
    user: users::User,
}

/// A stored hash to verify against when the account does not exist, so both answers
/// take the same time.
fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| crypto::hash_password("orgwall-timing-equalizer").unwrap_or_default())
}

#[tracing::instrument(skip_all)]
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Body(b): Body<Login>,
) -> Result<axum::response::Response, Problem> {
    limits::check(
        &state.limits,
        &format!("ip:{ip}"),
        state.limits.config.login_per_ip,
    )
    .await?;
    let denied = || {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Invalid email or password.",
        )
    };
    let Ok(email) = Email::parse(&b.email) else {
        return Err(denied());
    };
    limits::check(
        &state.limits,
        &format!("account:{}", email.as_str()),
        state.limits.config.login_per_account,
    )
    .await?;
    if b.password.len() > MAX_PASSWORD_BYTES {
        return Err(denied());
    }
    let found = users::find_by_email(&state.db, &email).await?;
    let stored = found
        .as_ref()
        .map_or_else(|| dummy_hash().to_owned(), |(_, h)| h.clone());
    let ok = verify_pw(b.password, stored).await?;
    let Some((user, _)) = found.filter(|_| ok) else {
        return Err(denied());
    };
    let s = sessions::create(&state.db, user.id).await?;
    if b.cookie {
        let cookie = crate::wall::session_cookie(&s.token, s.expires_at);
        let out = LoginOut {
            token: None,
            csrf_token: Some(crate::wall::csrf_token(&s.token)),
            expires_at: s.expires_at,
            user,
        };
        return Ok(([(axum::http::header::SET_COOKIE, cookie)], Json(out)).into_response());
    }
    Ok(Json(LoginOut {
        token: Some(s.token),
        csrf_token: None,
        expires_at: s.expires_at,
        user,
    })
    .into_response())
}

async fn logout(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::response::Response, Problem> {
    sessions::revoke(&state.db, caller.session_id).await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(
            axum::http::header::SET_COOKIE,
            crate::wall::clear_session_cookie(),
        )],
    )
        .into_response())
}

#[tracing::instrument(skip_all)]
async fn verify_email(
    State(state): State<AppState>,
    Body(b): Body<TokenBody>,
) -> Result<StatusCode, Problem> {
    verifications::verify(&state.db, b.token.trim()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
struct Membership {
    org_id: OrgId,
    slug: String,
    name: String,
    role: String,
    permissions: PermissionSet,
}

async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, Problem> {
    let user = users::get(&state.db, caller.user_id).await?;
    let mine = access::my_orgs(&state.db, caller.user_id).await?;
    let active = caller
        .active_org
        .filter(|a| mine.iter().any(|m| m.org_id == *a));
    let memberships: Vec<Membership> = mine
        .into_iter()
        .map(|m| Membership {
            org_id: m.org_id,
            slug: m.slug,
            name: m.name,
            role: m.role,
            permissions: m.permissions,
        })
        .collect();
    Ok(Json(
        json!({ "user": user, "memberships": memberships, "active_org_id": active }),
    ))
}

async fn active_org(
    State(state): State<AppState>,
    caller: Caller,
    Body(b): Body<ActiveOrg>,
) -> Result<Json<Value>, Problem> {
    let org = match b.org {
        None => None,
        Some(claim) => {
            let id = orgs::resolve(&state.db, &claim).await?;
            access::verify_member(&state.db, caller.user_id, id).await?;
            Some(id)
        }
    };
    sessions::set_active_org(&state.db, caller.session_id, org).await?;
    Ok(Json(json!({ "active_org_id": org })))
}

#[tracing::instrument(skip_all)]
async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    Body(b): Body<PasswordChange>,
) -> Result<StatusCode, Problem> {
    let user = users::get(&state.db, caller.user_id).await?;
    check_password(&b.new_password, &user.email)?;
    let stored = users::password_hash(&state.db, caller.user_id).await?;
    if b.current_password.len() > MAX_PASSWORD_BYTES
        || !verify_pw(b.current_password, stored).await?
    {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "wrong_password",
            "The current password is wrong.",
        ));
    }
    let new_hash = hash(b.new_password).await?;
    sessions::change_password(&state.db, caller.user_id, &new_hash, None).await?;
    Ok(StatusCode::NO_CONTENT)
}
