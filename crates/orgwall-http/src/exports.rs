//! Exports: ask for an archive of the org's data, watch it, download it.
//!
//! `GET /exports` lists the org's exports (newest first). `POST /exports` answers 202 with the export's id and status; a job builds the archive
//! (see `orgwall_store::jobs::export`). `GET /exports/{id}` shows its status and progress
//! (0-100) and, once done, when it expires (`expires_at`); `GET /exports/{id}/download`
//! streams the `.tar.gz` once it is done (409 `export_not_ready` before, 410
//! `export_expired` from `expires_at` on, when the archive is deleted). All of them need
//! `exports:create`: an export holds the whole org. The archive is read from the org's own prefix, by a path built from the scope's
//! org id and the export id.

use crate::body::{Params, PathOf};
use crate::page::{paged, PageQuery, Paged};
use crate::problem::Problem;
use crate::routes::{route, schema, Access, Route, RouteSpec};
use crate::wall::{id, Scoped};
use crate::AppState;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use orgwall_core::{Error, ExportId};
use orgwall_store::files::BlobError;
use orgwall_store::repo::exports::{self, Export};
use serde::Deserialize;

#[derive(Deserialize)]
struct ExportPath {
    id: String,
}

const IDS: &[(&str, &str)] = &[("id", "export")];

static LIST: RouteSpec = RouteSpec {
    method: "GET",
    path: "/exports",
    access: Access::Org(Some(orgwall_store::perms::EXPORTS_CREATE)),
    summary: "The org's exports, newest first",
    ids: &[],
    body: None,
    status: 200,
    query: Some(schema::<ListQuery>),
    ..RouteSpec::DEFAULT
};
static CREATE: RouteSpec = RouteSpec {
    method: "POST",
    path: "/exports",
    access: Access::Org(Some(orgwall_store::perms::EXPORTS_CREATE)),
    summary: "Ask for an archive of all of the org's data (202; a job builds it)",
    ids: &[],
    body: None,
    status: 202,
    ..RouteSpec::DEFAULT
};
static GET: RouteSpec = RouteSpec {
    method: "GET",
    path: "/exports/{id}",
    access: Access::Org(Some(orgwall_store::perms::EXPORTS_CREATE)),
    summary: "An export's status and progress (0-100)",
    ids: IDS,
    body: None,
    status: 200,
    ..RouteSpec::DEFAULT
};
static DOWNLOAD: RouteSpec = RouteSpec {
    method: "GET",
    path: "/exports/{id}/download",
    access: Access::Org(Some(orgwall_store::perms::EXPORTS_CREATE)),
    summary: "Download a finished export (.tar.gz: one JSON-lines file per table, the files)",
    ids: IDS,
    body: None,
    status: 200,
    errors: &[409, 410],
    ..RouteSpec::DEFAULT
};

/// The export routes.
pub fn routes() -> Vec<Route> {
    vec![
        route(&LIST, get(list)),
        route(&CREATE, post(create)),
        route(&GET, get(get_one)),
        route(&DOWNLOAD, get(download)),
    ]
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Page size, 1 to 200 (default 50).
    #[schemars(with = "Option<i64>", range(min = 1, max = 200))]
    limit: Option<String>,
    /// Opaque cursor from the previous page's `next_cursor`.
    cursor: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    Params(q): Params<ListQuery>,
) -> Result<Json<Paged<Export>>, Problem> {
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .page()?;
    let mut tx = state.db.read(&scope).await?;
    let rows = exports::list(&mut tx, page.limit + 1, page.after.map(ExportId::from_uuid)).await?;
    tx.commit().await?;
    Ok(Json(paged(rows, page, |e| e.id.uuid())))
}

#[derive(serde::Serialize)]
struct Created {
    id: ExportId,
    status: String,
}

async fn create(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
) -> Result<(StatusCode, Json<Created>), Problem> {
    let mut tx = state.db.write(&scope).await?;
    let e = exports::create(&mut tx).await?;
    tx.commit().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Created {
            id: e.id,
            status: e.status,
        }),
    ))
}

async fn get_one(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    PathOf(p): PathOf<ExportPath>,
) -> Result<Json<Export>, Problem> {
    let eid: ExportId = id(&p.id)?;
    let mut tx = state.db.read(&scope).await?;
    let e = exports::get(&mut tx, eid).await?;
    tx.commit().await?;
    Ok(Json(e))
}

async fn download(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    PathOf(p): PathOf<ExportPath>,
) -> Result<Response, Problem> {
    let eid: ExportId = id(&p.id)?;
    let mut tx = state.db.read(&scope).await?;
    let e = exports::get(&mut tx, eid).await?;
    tx.commit().await?;
    if e.is_expired() {
        return Err(Error::Refused(
            "export_expired",
            format!(
                "the export expired at {} and its archive is deleted; ask for a new export",
                e.expires_at
                    .map_or_else(|| "an earlier time".to_string(), |t| t.to_rfc3339())
            ),
        )
        .into());
    }
    if e.status != "done" {
        return Err(Error::Conflict(
            "export_not_ready",
            format!("the export is {} ({}%)", e.status, e.progress),
        )
        .into());
    }
    let blob = state
        .exports
        .open(scope.org_id(), eid)
        .await
        .map_err(|err| {
            Problem::from(match err {
                BlobError::NotFound => {
                    Error::Internal(format!("the archive of export {eid} is missing"))
                }
                other => Error::from(other),
            })
        })?;
    let name = format!("orgwall-export-{eid}.tar.gz");
    let mut res = axum::body::Body::from_stream(blob.stream).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/gzip"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(blob.len));
    if let Ok(v) = HeaderValue::from_str(&crate::files::content_disposition(&name)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(res)
}
