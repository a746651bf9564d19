//! # orgwall-console: the web console, inside the same walls as the API
//!
//! `orgwall serve` answers `/` with this console on the same origin as the API: sign-up,
//! login, email verification and invitation acceptance (the pages the email links open),
//! an org switcher, tickets, projects, notes, files, members, invitations, roles, API keys,
//! the audit log, usage and org settings.
//!
//! ## Why this stack
//!
//! - **Server-rendered HTML with [`maud`]**: templates are Rust, checked at compile time,
//!   and every interpolated value is HTML-escaped unless a template says otherwise (none
//!   does), so user text is never rendered unescaped. Nothing to build: the pages, the
//!   stylesheet and the one script are compiled into the binary (`include_str!`), so
//!   `cargo run -p orgwall -- serve` still does everything.
//! - **One small script of our own** (`assets/console.js`, served as a file, no inline
//!   script, no third-party code): a loading state on submit, copy-to-clipboard for a new
//!   API key, confirmation of destructive forms. Every page works without it.
//! - **Strict headers on every console response**: a Content-Security-Policy that allows
//!   only our own script and style (`script-src 'self'`, `frame-ancestors 'none'`,
//!   `form-action 'self'`, `base-uri 'none'`), `nosniff`, `Referrer-Policy: same-origin`,
//!   `Cache-Control: no-store` on pages.
//!
//! ## The walls
//!
//! - **Session**: the API's own browser session cookie (`orgwall_session`, HttpOnly,
//!   SameSite=Strict), read with [`orgwall_store::repo::sessions::authenticate`] on every
//!   request (from the access cache when warm).
//! - **CSRF**: every state-changing form carries the session's CSRF token
//!   ([`orgwall_http::wall::csrf_token`], derived from the session token) in a hidden
//!   field, compared in constant time before anything runs; forms without a session
//!   (login, sign-up) must come from this origin (`Origin` or `Sec-Fetch-Site`).
//! - **Reads** go through the same access function and repositories as the API: the org
//!   in the URL is resolved by slug and verified with
//!   [`orgwall_store::access::verify_member`] on every page (a removed member's next
//!   page view is refused), then read with the repositories through a [`orgwall_store::TenantTx`] of that
//!   scope, so another org's id in any console URL reads zero rows: a 404 page.
//! - **Writes are API calls**: a form post is turned into the matching `/v1/orgs/{org}/...`
//!   request and dispatched in process to the API router with the session as bearer
//!   token ([`api`]). The HTTP wall, the permission check, quotas, rate limits, audit
//!   events and emails are exactly the API's; the console only translates the answer
//!   (a redirect, or the form again with the error next to its field).
//!
//! Controls the user's permissions do not allow are not rendered (the scope's permission
//! set decides), and the API refuses them anyway.
//!
//! ## Database work per page
//!
//! A ticket page is one transaction of the org's scope, its statements sent in one flight
//! ([`orgwall_store::repo::tickets::page`]): one round trip once warm, like the API's
//! detail read (`tests/round_trips.rs` counts it on the wire). The org switcher's list
//! (the user's orgs across tenants, a separate read) is kept per user for
//! [`switcher::TTL`] and dropped when the user changes a membership through the console,
//! or when the current org's permissions differ from the cached row; it is navigation
//! only: following a stale entry meets `verify_member` like any URL.
//!
//! ## Adding a page
//!
//! Add a handler taking [`OrgPage`] (verified scope, user, switcher) to a module under
//! `pages`, read through `page.read()`, render with [`layout::page`], and mount it in
//! [`router`]. A form posts to a handler taking [`Form`] (CSRF already checked) that calls
//! [`api::Api`] and redirects.
#![forbid(unsafe_code)]

pub mod api;
mod assets;
pub mod layout;
mod pages;
pub mod session;
pub mod switcher;

pub use session::{Form, OrgPage, Viewer};

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Router;
use orgwall_http::AppState;
use std::sync::Arc;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// The Content-Security-Policy of every console response.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// What every console handler can reach.
#[derive(Clone)]
pub struct Console {
    /// The API's state (database, file store, limits).
    pub state: AppState,
    /// The API router, called in process for every write.
    pub api: Router,
    /// The org switcher's per-user lists.
    pub switcher: Arc<switcher::Switcher>,
}

/// The whole application: the console's routes, and the API for everything else.
///
/// API paths (`/v1/...`, `/healthz`, `/readyz`, `/metrics`) go to the API untouched; any
/// other path the console does not know is the console's 404 page.
pub fn app(state: AppState) -> Router {
    let api = orgwall_http::app(state.clone());
    let console = router(state, api.clone());
    console.fallback_service(tower::service_fn(move |req: axum::extract::Request| {
        let api = api.clone();
        async move {
            let path = req.uri().path();
            let to_api = path == "/v1"
                || path.starts_with("/v1/")
                || matches!(path, "/healthz" | "/readyz" | "/metrics");
            if to_api {
                tower::ServiceExt::oneshot(api, req).await
            } else {
                Ok(secure_headers(layout::not_found().into_response()).await)
            }
        }
    }))
}

/// The console's routes over `state`, writing through `api`.
pub fn router(state: AppState, api: Router) -> Router {
    let console = Console {
        state,
        api,
        switcher: Arc::new(switcher::Switcher::default()),
    };
    pages::routes()
        .merge(assets::routes())
        .with_state(console)
        .layer(axum::middleware::map_response(secure_headers))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// The span of one console request: the request id and the route template, never the
/// URI (queries carry search text and tokens).
fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |m| m.as_str());
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!("console", method = %req.method(), route, request_id)
}

async fn secure_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}
