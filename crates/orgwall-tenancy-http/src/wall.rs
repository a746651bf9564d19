//! The HTTP wall, run before any handler of a declared route:
//!
//! 1. authenticate: `Authorization: Bearer` session token or org API key (401
//!    `unauthenticated` when missing, malformed, expired or revoked);
//! 2. resolve the claimed org: path `{org}` (id or slug), `X-Organization-Id`, the
//!    `{slug}.{base domain}` subdomain, the session's active org, or an API key's own org
//!    (400 `org_required` when none; 400 `org_mismatch` when path and header or subdomain
//!    name different orgs);
//! 3. verify membership inside that org's scope (403 `not_a_member`, the same for an org
//!    that does not exist); an API key only ever acts in its own org;
//! 4. check the route's permission (403 `permission_denied`, naming it).
//!
//! The handler receives the resulting [`Scoped`] (and, for sessions, [`Caller`]); it never
//! sees an unverified org id.

use crate::limits;
use crate::problem::Problem;
use crate::spec::{Access, AheadFn, PathIds, RouteSpec};
use crate::Kernel;
use axum::extract::{FromRequestParts, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use orgwall_core::{Error, OrgId, SessionId, UserId};
use orgwall_tenancy::access::{self, OrgScope, API_KEY_PREFIX};
use orgwall_tenancy::ahead::ReadAhead;
use orgwall_tenancy::identity::{orgs, sessions};
use std::sync::Arc;

/// The header naming the org on org-less routes.
pub const ORG_HEADER: &str = "x-organization-id";

/// A signed-in user (session routes and org routes called with a session).
#[derive(Clone, Debug)]
pub struct Caller {
    /// The user.
    pub user_id: UserId,
    /// The session.
    pub session_id: SessionId,
    /// The session's active org.
    pub active_org: Option<OrgId>,
}

/// The verified scope of an org route.
#[derive(Clone, Debug)]
pub struct Scoped(pub Arc<OrgScope>);

enum Authn {
    Session(Caller, sessions::Session),
    /// With the route's read, when it was sent ahead with a cold key's lookup.
    ApiKey(OrgScope, Option<ReadAhead>),
}

fn unauthenticated(detail: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "unauthenticated", detail)
}

/// The cookie of browser sessions.
pub const SESSION_COOKIE: &str = "orgwall_session";
/// The header carrying the CSRF token in cookie mode.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The `Set-Cookie` value of a browser session.
pub fn session_cookie(token: &str, expires: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; Secure; SameSite=Strict; Expires={}",
        expires.format("%a, %d %b %Y %H:%M:%S GMT")
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_session_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0")
}

/// The CSRF token of a cookie session: derived from the session token (which page
/// scripts cannot read), so it needs no storage and dies with the session.
pub fn csrf_token(session_token: &str) -> String {
    orgwall_tenancy::crypto::token_hash(&format!("orgwall-csrf:{session_token}"))
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// Compares in constant time (the CSRF check must not leak how much matched).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

async fn session(state: &Kernel, token: &str) -> Result<Authn, Problem> {
    let s = sessions::authenticate(&state.db, token)
        .await
        .map_err(Problem::from)?
        .ok_or_else(|| unauthenticated("The session is invalid, expired or revoked."))?;
    Ok(Authn::Session(
        Caller {
            user_id: s.user_id,
            session_id: s.id,
            active_org: s.active_org_id,
        },
        s,
    ))
}

async fn authenticate(
    state: &Kernel,
    headers: &HeaderMap,
    method: &axum::http::Method,
    ahead: Option<AheadFrom>,
) -> Result<Option<Authn>, Problem> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        // Browser mode: the session cookie, with the CSRF token on anything that changes state.
        let Some(token) = cookie_token(headers) else {
            return Ok(None);
        };
        if !token.starts_with(sessions::SESSION_PREFIX) {
            return Err(unauthenticated("The session cookie is not valid."));
        }
        if !method.is_safe() {
            let sent = headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !same(sent, &csrf_token(&token)) {
                return Err(Problem::new(
                    StatusCode::FORBIDDEN,
                    "csrf_failed",
                    "Cookie sessions must send X-CSRF-Token on state-changing requests.",
                ));
            }
        }
        return session(state, &token).await.map(Some);
    };
    let token = bearer(value)
        .ok_or_else(|| unauthenticated("The Authorization header must be: Bearer <token>."))?;
    if token.starts_with(sessions::SESSION_PREFIX) {
        return session(state, token).await.map(Some);
    }
    if token.starts_with(API_KEY_PREFIX) {
        let flight = || ahead.and_then(|a| (a.read)(a.org, &PathIds(&a.params)));
        let (scope, read) = access::authenticate_api_key_ahead(&state.db, token, flight)
            .await
            .map_err(Problem::from)?
            .ok_or_else(|| unauthenticated("The API key is invalid, expired or revoked."))?;
        return Ok(Some(Authn::ApiKey(scope, read)));
    }
    Err(unauthenticated("The token is not recognized."))
}

/// The token of an `Authorization: Bearer <token>` header (trimmed, 1..=200 bytes).
fn bearer(value: &axum::http::HeaderValue) -> Option<&str> {
    value
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 200)
}

/// What the route's one-flight read is built from, if the key lookup sends it ahead (it
/// is built only then: a warm key's request builds nothing).
struct AheadFrom {
    read: AheadFn,
    org: OrgId,
    params: RawPathParams,
}

/// The route's one-flight read to send ahead with the key lookup (see
/// [`RouteSpec::ahead`]): only for an org route that declares one, a request with an API
/// key, and an org claimed by id or by a slug the access cache knows (the path's, else
/// the header's; a claim that turns out not to be the key's org reads nothing, and the
/// wall answers as it would have).
async fn flight_ahead(
    state: &Kernel,
    parts: &mut Parts,
    spec: &'static RouteSpec,
) -> Option<AheadFrom> {
    let read = spec.ahead?;
    let key = bearer(parts.headers.get(header::AUTHORIZATION)?)?.starts_with(API_KEY_PREFIX);
    if !key || !matches!(spec.access, Access::Org(_)) {
        return None;
    }
    let params = RawPathParams::from_request_parts(parts, state).await.ok()?;
    let claim = match params.iter().find(|(k, _)| *k == "org") {
        Some((_, v)) => v.trim().to_owned(),
        None => parts
            .headers
            .get(ORG_HEADER)?
            .to_str()
            .ok()?
            .trim()
            .to_owned(),
    };
    let org = match claim.parse::<OrgId>() {
        Ok(id) => id,
        Err(_) => orgs::cached(&state.db, &claim)?,
    };
    Some(AheadFrom { read, org, params })
}

/// The org claim of the subdomain, if a base domain is configured and the host is under it.
fn subdomain_claim(state: &Kernel, headers: &HeaderMap) -> Option<String> {
    let base = state.base_domain.as_deref()?;
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let host = host
        .rsplit_once(':')
        .map_or(host, |(h, _)| h)
        .to_ascii_lowercase();
    let label = host.strip_suffix(base)?.strip_suffix('.')?;
    (!label.is_empty() && !label.contains('.')).then(|| label.to_owned())
}

/// An org claim's id, and the slug when the claim is one. An id is taken as it is,
/// without a lookup: whatever follows (the membership read in that org's scope, or the
/// API key's own org) answers 403 `not_a_member` for an org that does not exist or is
/// being deleted, exactly as a lookup would. A slug is looked up (from the access cache
/// when warm) and kept, to be checked again if the scope's cached access turns out stale.
async fn resolve(state: &Kernel, claim: &str) -> Result<(OrgId, Option<String>), Problem> {
    let claim = claim.trim();
    if let Ok(id) = claim.parse::<OrgId>() {
        return Ok((id, None));
    }
    let id = orgs::resolve(&state.db, claim)
        .await
        .map_err(Problem::from)?;
    Ok((id, Some(claim.to_owned())))
}

async fn org_wall(
    state: &Kernel,
    parts: &mut Parts,
    authn: Authn,
    spec: &'static RouteSpec,
) -> Result<Option<limits::Decision>, Problem> {
    // A path that does not decode must never fall back to another org claim: refuse it.
    let params = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|_| Problem::from(Error::NotFound))?;
    let path_claim = params
        .iter()
        .find(|(k, _)| *k == "org")
        .map(|(_, v)| v.to_owned());
    // A path claim that is not text (NUL, control characters) names no org: the path
    // does not exist, as for a malformed resource id.
    if path_claim
        .as_deref()
        .is_some_and(|c| orgwall_core::text::check_line(c).is_err())
    {
        return Err(Problem::from(Error::NotFound));
    }
    let header_claim = match parts.headers.get(ORG_HEADER) {
        None => None,
        Some(v) => Some(v.to_str().map(str::to_owned).map_err(|_| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "org_required",
                "X-Organization-Id is not valid text.",
            )
        })?),
    };
    let sub_claim = subdomain_claim(state, &parts.headers);

    let mut org: Option<OrgId> = None;
    // A slug the request named the org by (checked again if the scope turns out stale).
    let mut slug: Option<String> = None;
    for claim in [path_claim, header_claim, sub_claim].into_iter().flatten() {
        let (id, named) = resolve(state, &claim).await?;
        slug = named.or(slug);
        match org {
            Some(prev) if prev != id => {
                return Err(Problem::new(
                    StatusCode::BAD_REQUEST,
                    "org_mismatch",
                    "The organization named by the path, header or host differ.",
                ))
            }
            _ => org = Some(id),
        }
    }
    let mut ahead = None;
    let scope = match authn {
        Authn::Session(caller, session) => {
            let org = match org.or(caller.active_org) {
                Some(o) => o,
                None => {
                    return Err(Problem::new(
                        StatusCode::BAD_REQUEST,
                        "org_required",
                        "Name the organization in the path, the X-Organization-Id header, or set an active org.",
                    ))
                }
            };
            // Through the session: the scope's first transaction also checks, on every
            // instance, that the session was not revoked since it was read (the cache).
            let scope = access::verify_member(&state.db, caller.user_id, org)
                .await
                .map_err(Problem::from)?
                .through_session(&session);
            parts.extensions.insert(caller);
            scope
        }
        Authn::ApiKey(scope, read) => {
            if org.is_some_and(|o| o != scope.org_id()) {
                return Err(Problem::from(Error::NotAMember));
            }
            ahead = read;
            scope
        }
    };
    let scope = match &slug {
        Some(s) => scope.through_slug(s),
        None => scope,
    };
    if let Access::Org(Some(p)) = spec.access {
        scope.require(p).map_err(Problem::from)?;
    }
    let span = tracing::Span::current();
    span.record("org_id", tracing::field::display(scope.org_id()));
    span.record(
        "user_id",
        tracing::field::display(principal_label(scope.principal())),
    );
    let decision = rate_limit(state, &scope).await?;
    // Authorized in full: the handler may have the read sent ahead.
    if let Some(read) = ahead {
        parts.extensions.insert(read);
    }
    parts.extensions.insert(Scoped(Arc::new(scope)));
    Ok(Some(decision))
}

async fn run(spec: &'static RouteSpec, state: Kernel, req: Request, next: Next) -> Response {
    if spec.access == Access::Public {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let ahead = match spec.ahead {
        Some(_) => flight_ahead(&state, &mut parts, spec).await,
        None => None,
    };
    let authn = match authenticate(&state, &parts.headers, &parts.method, ahead).await {
        Ok(Some(a)) => a,
        Ok(None) => return unauthenticated("Authentication is required.").into_response(),
        Err(p) => return p.into_response(),
    };
    match spec.access {
        Access::Public => {}
        Access::User => match authn {
            Authn::Session(caller, _) => {
                parts.extensions.insert(caller);
            }
            Authn::ApiKey(..) => {
                return unauthenticated("This route needs a user session, not an API key.")
                    .into_response()
            }
        },
        Access::Org(_) => match org_wall(&state, &mut parts, authn, spec).await {
            Ok(Some(d)) => {
                let mut res = next.run(Request::from_parts(parts, body)).await;
                limits::headers(&d, res.headers_mut());
                return res;
            }
            Ok(None) => {}
            Err(p) => return p.into_response(),
        },
    }
    next.run(Request::from_parts(parts, body)).await
}

/// `user:<id>`, `key:<id>` or the system actor's name: for logs and limiter keys.
fn principal_label(p: &access::Principal) -> String {
    match p {
        access::Principal::User(u) => format!("user:{u}"),
        access::Principal::ApiKey(k) => format!("key:{k}"),
        other => format!("system:{other:?}"),
    }
}

/// The org's and the caller's rate limits; the tighter decision is reported.
async fn rate_limit(state: &Kernel, scope: &OrgScope) -> Result<limits::Decision, Problem> {
    let org = scope.org_id();
    let org_limit = scope
        .rate_limit_per_minute()
        .unwrap_or(state.limits.config.org_default_per_minute);
    let who = match scope.principal() {
        access::Principal::User(u) => format!("user:{u}"),
        access::Principal::ApiKey(k) => format!("key:{k}"),
        access::Principal::System { name } => format!("system:{name}"),
        access::Principal::Job { kind, id } => format!("job:{kind}:{id}"),
    };
    let counted = |scope: &'static str| {
        let hook = state.on_rate_limited.clone();
        move |p: Problem| {
            if let Some(h) = &hook {
                h(scope);
            }
            p
        }
    };
    let o = limits::check(&state.limits, &format!("org:{org}"), org_limit)
        .await
        .map_err(counted("org"))?;
    let u = limits::check(
        &state.limits,
        &format!("org:{org}:{who}"),
        state.limits.config.user_per_minute,
    )
    .await
    .map_err(counted("user"))?;
    Ok(if u.remaining < o.remaining { u } else { o })
}

/// The middleware for one route.
#[allow(clippy::type_complexity)]
pub fn guard(
    spec: &'static RouteSpec,
) -> impl Fn(State<Kernel>, Request, Next) -> BoxFuture<'static, Response> + Clone + Send + Sync + 'static
{
    move |State(state): State<Kernel>, req: Request, next: Next| {
        Box::pin(run(spec, state, req, next))
    }
}

fn missing(what: &str) -> Problem {
    tracing::error!(
        what,
        "route handler asked for a value its wall did not provide"
    );
    Problem::from(Error::Internal(format!("missing {what}")))
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| missing("caller"))
    }
}

/// The handler's one-flight read, when the wall read it ahead with a cold API key's
/// lookup and then authorized the request (see [`RouteSpec::ahead`]); pass it to
/// [`orgwall_tenancy::Db::read_flight`] with the same flight.
pub struct Ahead(pub Option<ReadAhead>);

impl<S: Send + Sync> FromRequestParts<S> for Ahead {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Ahead(parts.extensions.remove::<ReadAhead>()))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Scoped {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        parts
            .extensions
            .get::<Scoped>()
            .cloned()
            .ok_or_else(|| missing("scope"))
    }
}

/// Parses a resource id from a path; a malformed id is simply not found.
pub fn id<T: std::str::FromStr>(raw: &str) -> Result<T, Problem> {
    raw.parse().map_err(|_| Problem::from(Error::NotFound))
}
