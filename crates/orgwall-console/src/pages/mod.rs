//! The console's pages, one module per area; [`routes`] mounts them all.

mod admin;
mod auth;
mod content;
mod files;
mod members;
mod tickets;

use crate::layout::FormErr;
use crate::session::Fail;
use crate::Console;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::Router;
use std::net::SocketAddr;

/// The TCP peer of a request (for the API's per-IP limits), if known.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Peer(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        ))
    }
}

/// Parses an id of the URL; a malformed id is the 404 page, like another org's.
pub(crate) fn id<T: std::str::FromStr>(raw: &str) -> Result<T, Fail> {
    raw.parse().map_err(|_| Fail::not_found())
}

/// A form's error from an API refusal, placed on the field its detail names.
pub(crate) fn form_err(
    form: &'static str,
    fields: &[&'static str],
    r: &crate::api::Refusal,
) -> FormErr {
    FormErr {
        form,
        field: r.field(fields),
        message: r.detail.clone(),
    }
}

pub(crate) fn routes() -> Router<Console> {
    Router::new()
        .route("/", get(auth::home))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/signup", get(auth::signup_page).post(auth::signup))
        .route("/logout", post(auth::logout))
        .route("/verify-email", get(auth::verify_page).post(auth::verify))
        .route(
            "/invitations/accept",
            get(auth::accept_page).post(auth::accept),
        )
        .route("/orgs", get(auth::orgs).post(auth::create_org))
        .merge(tickets::routes())
        .merge(content::routes())
        .merge(files::routes())
        .merge(members::routes())
        .merge(admin::routes())
        .route("/o/{org}", get(tickets::to_tickets))
        .route("/o/{org}/{*rest}", get(unknown).post(unknown))
}

/// Any other path under an org: verified like every page, then the 404 page.
async fn unknown(_: crate::OrgPage) -> Fail {
    Fail::not_found()
}
