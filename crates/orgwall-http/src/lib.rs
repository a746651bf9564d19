//! # orgwall-http: orgwall's product routes
//!
//! Every route is declared once in a feature module as a [`routes::RouteSpec`] (method,
//! path, who may call it, the permission it needs, which path parameters are org-scoped
//! ids) and installed behind the kernel's HTTP wall (`orgwall-tenancy-http`), exactly as
//! an outside service's routes are; [`openapi`] documents the same declarations, so what
//! is enforced and what is documented cannot drift. The wall's modules are re-exported
//! here under their old names ([`wall`], [`routes`], [`problem`], [`body`], [`page`],
//! [`limits`]).
#![forbid(unsafe_code)]

pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod exports;
pub mod files;
pub mod health;
pub mod invitations;
pub mod members;
pub mod metrics;
pub mod notes;
pub mod openapi;
pub mod orgs;
pub mod projects;
pub mod roles;
pub mod routes;
pub mod tickets;
pub mod usage;

pub use orgwall_tenancy_http::serve::{serve, ServeConfig};
pub use orgwall_tenancy_http::{body, limits, page, problem, wall};

use axum::extract::DefaultBodyLimit;
use axum::Router;
use orgwall_store::Db;
use std::sync::Arc;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub db: Db,
    /// `ORGWALL_BASE_DOMAIN`: `{slug}.{base}` hosts name an org.
    pub base_domain: Option<Arc<str>>,
    /// Rate limiters.
    pub limits: Arc<limits::Limits>,
    /// Where file bytes are stored.
    pub files: Arc<dyn orgwall_store::files::BlobStore>,
    /// The largest file upload accepted, in bytes.
    pub max_upload_bytes: u64,
    /// Where export archives are stored (`<data_dir>/exports` for `serve`).
    pub exports: orgwall_store::repo::exports::ExportFiles,
    /// Prometheus metrics.
    pub metrics: Arc<metrics::Metrics>,
    /// `ORGWALL_PUBLIC_URL`: links in email are absolute under it (else server-relative).
    pub public_url: Option<orgwall_store::repo::outbox::PublicUrl>,
}

impl AppState {
    /// State with default limits and no base domain; files go to a fresh directory under
    /// the system temp dir (see [`AppState::with_files`] for a real one).
    pub fn new(db: Db) -> Self {
        Self::with_files(db, files::scratch_root())
    }

    /// State with default limits and no base domain, storing files under `root`.
    pub fn with_files(db: Db, root: impl Into<std::path::PathBuf>) -> Self {
        let root = root.into();
        AppState {
            exports: orgwall_store::repo::exports::ExportFiles::next_to_files(&root),
            db,
            base_domain: None,
            limits: Arc::new(limits::Limits::default()),
            files: Arc::new(orgwall_store::files::LocalFiles::new(root)),
            max_upload_bytes: files::DEFAULT_MAX_UPLOAD_BYTES,
            metrics: Arc::new(metrics::Metrics::new()),
            public_url: None,
        }
    }
}

/// The log filter for `directives` (e.g. `ORGWALL_LOG=debug`), with one cap that no
/// setting lifts: the PostgreSQL driver logs statement parameters at debug level, and
/// parameters carry secrets on their way to the database (an email body with an
/// invitation link, a password hash), so it never logs below warn (its info lines are server notices).
pub fn log_filter(directives: &str) -> tracing_subscriber::EnvFilter {
    let base = tracing_subscriber::EnvFilter::try_new(directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    match "tokio_postgres=warn".parse() {
        Ok(cap) => base.add_directive(cap),
        Err(_) => base,
    }
}

/// The span of one request: every log line inside carries the request id, and the wall
/// fills in `org_id` and `user_id` once it has verified them. Only the route template is
/// recorded, never the URI (query strings may carry search text).
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
    tracing::info_span!(
        "request",
        method = %req.method(),
        route,
        request_id,
        org_id = tracing::field::Empty,
        user_id = tracing::field::Empty,
    )
}

impl AppState {
    /// The kernel's HTTP wall over this state (rate-limit refusals counted in metrics).
    pub fn kernel(&self) -> orgwall_tenancy_http::Kernel {
        let metrics = self.metrics.clone();
        orgwall_tenancy_http::Kernel {
            db: self.db.clone(),
            base_domain: self.base_domain.clone(),
            limits: self.limits.clone(),
            on_rate_limited: Some(Arc::new(move |scope: &'static str| {
                metrics.rate_limited.with_label_values(&[scope]).inc();
            })),
        }
    }
}

/// The whole application.
pub fn app(state: AppState) -> Router {
    routes::install(&state.kernel(), routes::all())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::measure,
        ))
        .fallback(problem::not_found_fallback)
        .method_not_allowed_fallback(problem::method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(body::MAX_JSON_BYTES))
        .layer(axum::middleware::from_fn(
            orgwall_tenancy_http::serve::close_unread,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}
