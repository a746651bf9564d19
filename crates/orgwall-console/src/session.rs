//! Who is asking: the session cookie ([`Viewer`]), the verified org of the URL
//! ([`OrgPage`]), CSRF-checked form posts ([`Form`]), and the console's failures
//! ([`Fail`]), which render as HTML pages or redirects, never JSON.

use crate::switcher::Me;
use crate::{layout, Console};
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use orgwall_core::{Error, OrgId, Permission, SessionId, UserId};
use orgwall_http::wall::{csrf_token, SESSION_COOKIE};
use orgwall_store::access::{self, OrgScope};
use orgwall_store::repo::{orgs, sessions};
use std::sync::Arc;

/// Why a console request did not get its page.
#[derive(Debug)]
pub enum Fail {
    /// No (valid) session: to the login page, then back to `next`.
    Login {
        /// Where to return after login (a path of this site).
        next: String,
    },
    /// An error page with this status and message.
    Page(StatusCode, String),
}

impl Fail {
    /// 404: the same page for a missing id and another org's id.
    pub fn not_found() -> Fail {
        Fail::Page(
            StatusCode::NOT_FOUND,
            "There is no such page in this organization.".into(),
        )
    }

    /// 403 for a CSRF failure.
    pub fn csrf() -> Fail {
        Fail::Page(
            StatusCode::FORBIDDEN,
            "This form has expired or did not come from this site. Go back, reload the page and try again.".into(),
        )
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        match e {
            Error::NotFound | Error::ScopeViolation => Fail::not_found(),
            Error::NotAMember => Fail::Page(
                StatusCode::FORBIDDEN,
                "This organization does not exist or you are not a member of it.".into(),
            ),
            Error::PermissionDenied(p) => Fail::Page(
                StatusCode::FORBIDDEN,
                format!("Your role does not allow this: it needs the {p} permission."),
            ),
            Error::Validation(d) => Fail::Page(StatusCode::UNPROCESSABLE_ENTITY, d),
            // The session itself is gone (revoked, expired, logged out on another
            // instance: found when a stale cached scope is verified again): sign in again,
            // as for a session this instance already knew to be gone.
            Error::Refused("unauthenticated", _) => Fail::Login {
                next: String::new(),
            },
            Error::Conflict(_, d) | Error::Refused(_, d) => Fail::Page(StatusCode::CONFLICT, d),
            Error::Unavailable(detail) => {
                tracing::error!(%detail, "database unavailable");
                Fail::Page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The service is temporarily unavailable. Try again in a moment.".into(),
                )
            }
            Error::Internal(detail) => {
                tracing::error!(%detail, "console: internal error");
                Fail::Page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong on our side.".into(),
                )
            }
        }
    }
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        match self {
            Fail::Login { next } if next.is_empty() => Redirect::to("/login").into_response(),
            Fail::Login { next } => {
                let next: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
                Redirect::to(&format!("/login?next={next}")).into_response()
            }
            Fail::Page(status, message) => {
                (status, layout::error_page(status, &message)).into_response()
            }
        }
    }
}

/// The session token of the request's cookie, if it has one of the right shape.
pub fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_owned())
        .filter(|t| t.starts_with(sessions::SESSION_PREFIX) && t.len() <= 200)
}

/// Compares in constant time (how much of a CSRF token matched must not leak).
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A signed-in user, from the session cookie.
#[derive(Clone, Debug)]
pub struct Viewer {
    /// The session token (the bearer token of the console's API calls).
    pub token: String,
    /// The user.
    pub user_id: UserId,
    /// The session.
    pub session_id: SessionId,
    /// The session's active org.
    pub active_org: Option<OrgId>,
    /// The session's CSRF token, for hidden form fields.
    pub csrf: String,
    /// The session as read (pages' scopes depend on it: a session revoked through another
    /// instance is refused on the very next page).
    pub session: sessions::Session,
}

fn here(parts: &Parts) -> String {
    if parts.method == Method::GET {
        parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned())
    } else {
        "/".to_owned()
    }
}

impl Viewer {
    /// The viewer of a request, if its cookie names a live session.
    pub async fn find(c: &Console, headers: &HeaderMap) -> Result<Option<Viewer>, Fail> {
        let Some(token) = cookie_token(headers) else {
            return Ok(None);
        };
        let Some(s) = sessions::authenticate(&c.state.db, &token).await? else {
            return Ok(None);
        };
        Ok(Some(Viewer {
            csrf: csrf_token(&token),
            token,
            user_id: s.user_id,
            session_id: s.id,
            active_org: s.active_org_id,
            session: s,
        }))
    }
}

impl FromRequestParts<Console> for Viewer {
    type Rejection = Fail;
    async fn from_request_parts(parts: &mut Parts, c: &Console) -> Result<Self, Fail> {
        if let Some(v) = parts.extensions.get::<Viewer>() {
            return Ok(v.clone());
        }
        let v = Viewer::find(c, &parts.headers)
            .await?
            .ok_or_else(|| Fail::Login { next: here(parts) })?;
        parts.extensions.insert(v.clone());
        Ok(v)
    }
}

/// A page of one org: the viewer, verified as a member of the org named by `{org}` in
/// the path (by [`access::verify_member`], on every request), with the switcher's list.
#[derive(Clone)]
pub struct OrgPage {
    /// The console.
    pub c: Console,
    /// The signed-in user.
    pub viewer: Viewer,
    /// The org's slug as in the URL (it resolved to [`OrgPage::scope`]'s org).
    pub slug: String,
    /// The verified scope.
    pub scope: Arc<OrgScope>,
    /// The user and their orgs (the switcher).
    pub me: Arc<Me>,
}

impl OrgPage {
    /// Whether the viewer holds `p` here (controls that need it are not rendered).
    pub fn can(&self, p: Permission) -> bool {
        self.scope.permissions().contains(p)
    }

    /// Fails with the API's 403 unless the viewer holds `p`.
    pub fn require(&self, p: Permission) -> Result<(), Fail> {
        self.scope.require(p).map_err(Fail::from)
    }

    /// A read transaction of this org's scope.
    pub async fn read(&self) -> Result<orgwall_store::TenantTx<'_>, Fail> {
        Ok(self.c.state.db.read(&self.scope).await?)
    }

    /// `/o/{slug}{rest}`.
    pub fn href(&self, rest: &str) -> String {
        format!("/o/{}{rest}", self.slug)
    }

    /// The API path of this org: `/v1/orgs/{slug}{rest}`.
    pub fn api(&self, rest: &str) -> String {
        format!("/v1/orgs/{}{rest}", self.slug)
    }

    /// The viewer's role key here.
    pub fn role(&self) -> &str {
        self.me
            .orgs
            .iter()
            .find(|o| o.org_id == self.scope.org_id())
            .map_or("", |o| o.role.as_str())
    }

    /// The org's display name.
    pub fn org_name(&self) -> &str {
        self.me
            .orgs
            .iter()
            .find(|o| o.org_id == self.scope.org_id())
            .map_or(self.slug.as_str(), |o| o.name.as_str())
    }
}

impl FromRequestParts<Console> for OrgPage {
    type Rejection = Fail;
    async fn from_request_parts(parts: &mut Parts, c: &Console) -> Result<Self, Fail> {
        let viewer = Viewer::from_request_parts(parts, c).await?;
        let params = RawPathParams::from_request_parts(parts, c)
            .await
            .map_err(|_| Fail::not_found())?;
        let slug = params
            .iter()
            .find(|(k, _)| *k == "org")
            .map(|(_, v)| v.to_owned())
            .ok_or_else(Fail::not_found)?;
        // Canonical slugs only (an org id, or a slug with spaces or capitals that the
        // lookup would tidy, is not a console URL): the slug goes into links and into the
        // API paths of the page's forms as it is.
        let canonical = orgwall_core::Slug::parse(&slug).is_ok_and(|s| s.as_str() == slug);
        if !canonical || slug.parse::<OrgId>().is_ok() {
            return Err(Error::NotAMember.into());
        }
        let org = orgs::resolve(&c.state.db, &slug).await?;
        let scope = access::verify_member(&c.state.db, viewer.user_id, org)
            .await?
            .through_session(&viewer.session)
            .through_slug(&slug);
        // A page view counts against the org's and the user's rate limits like an API
        // request (a form post is counted by the API request it becomes).
        if parts.method == Method::GET {
            rate_limit(c, &scope, viewer.user_id).await?;
        }
        let me = c
            .switcher
            .get(
                &c.state.db,
                viewer.user_id,
                Some((org, scope.permissions())),
            )
            .await?;
        // Remember the active org (a write only when it changes).
        if viewer.active_org != Some(org) && parts.method == Method::GET {
            sessions::set_active_org(&c.state.db, viewer.session_id, Some(org)).await?;
        }
        Ok(OrgPage {
            c: c.clone(),
            viewer,
            slug,
            scope: Arc::new(scope),
            me,
        })
    }
}

async fn rate_limit(c: &Console, scope: &OrgScope, user: UserId) -> Result<(), Fail> {
    let limits = &c.state.limits;
    let org = scope.org_id();
    let org_limit = scope
        .rate_limit_per_minute()
        .unwrap_or(limits.config.org_default_per_minute);
    let too_many = |_| {
        Fail::Page(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests for this organization right now. Wait a moment and reload.".into(),
        )
    };
    orgwall_http::limits::check(limits, &format!("org:{org}"), org_limit)
        .await
        .map_err(too_many)?;
    orgwall_http::limits::check(
        limits,
        &format!("org:{org}:user:{user}"),
        limits.config.user_per_minute,
    )
    .await
    .map_err(too_many)?;
    Ok(())
}

/// A form post: the viewer, the CSRF token checked (constant time) before anything
/// else, and the urlencoded fields.
pub struct Form {
    /// The signed-in user.
    pub viewer: Viewer,
    /// The fields, in order.
    pub fields: Vec<(String, String)>,
}

impl Form {
    /// The first value of `name`, trimmed ("" when absent).
    pub fn get(&self, name: &str) -> String {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    }

    /// Every value of `name` (checkbox groups).
    pub fn all(&self, name: &str) -> Vec<String> {
        self.fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// The largest form body the console reads.
pub const MAX_FORM_BYTES: usize = 256 * 1024;

/// Reads and parses an urlencoded body.
pub async fn fields(req: Request) -> Result<Vec<(String, String)>, Fail> {
    let bytes = axum::body::to_bytes(req.into_body(), MAX_FORM_BYTES)
        .await
        .map_err(|_| {
            Fail::Page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "The form is too large.".into(),
            )
        })?;
    Ok(url::form_urlencoded::parse(&bytes)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect())
}

impl FromRequest<Console> for Form {
    type Rejection = Fail;
    async fn from_request(req: Request, c: &Console) -> Result<Self, Fail> {
        let (mut parts, body) = req.into_parts();
        let viewer = Viewer::from_request_parts(&mut parts, c).await?;
        let fields = fields(Request::from_parts(parts, body)).await?;
        let sent = fields
            .iter()
            .find(|(k, _)| k == "csrf")
            .map_or("", |(_, v)| v.as_str());
        if !same(sent, &viewer.csrf) {
            return Err(Fail::csrf());
        }
        Ok(Form { viewer, fields })
    }
}

/// For forms without a session (login, sign-up): the request must come from this site.
pub fn same_origin(headers: &HeaderMap) -> Result<(), Fail> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return match site {
            "same-origin" | "none" => Ok(()),
            _ => Err(Fail::csrf()),
        };
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        // No Origin at all: not a browser's cross-site form post.
        None => Ok(()),
        Some(origin) => {
            let origin_host = origin
                .split_once("://")
                .map(|(_, rest)| rest.trim_end_matches('/'));
            if origin_host.is_some() && origin_host == host {
                Ok(())
            } else {
                Err(Fail::csrf())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_comparison_needs_the_whole_token() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("ab", "abc"));
        assert!(!same("", "abc"));
    }

    #[test]
    fn cookie_token_reads_only_the_session_cookie() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=b; orgwall_session=ows_123; c=d".parse().unwrap(),
        );
        assert_eq!(cookie_token(&h).as_deref(), Some("ows_123"));
        h.insert(header::COOKIE, "orgwall_session=owk_123".parse().unwrap());
        assert_eq!(cookie_token(&h), None, "an API key is not a session");
    }

    #[test]
    fn cross_site_forms_are_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        assert!(same_origin(&h).is_ok(), "no Origin: not a browser form");
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(same_origin(&h).is_ok());
        h.insert(header::ORIGIN, "https://evil.test".parse().unwrap());
        assert!(same_origin(&h).is_err());
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(same_origin(&h).is_err());
        h.insert("sec-fetch-site", "same-origin".parse().unwrap());
        assert!(same_origin(&h).is_ok());
    }
}
