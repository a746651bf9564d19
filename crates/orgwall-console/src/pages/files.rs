//! Files: upload (the size limit and the storage quota shown), list, download, delete.
//!
//! The upload form is multipart; its body goes to the API's upload route untouched
//! (streamed, so the API's size limit and quota hold before anything is stored). A
//! multipart body cannot carry the CSRF token ahead of the file without the console
//! parsing it, so this one form sends the token in its action URL (`?csrf=`), checked the
//! same way (constant time) before the body is read; `Referrer-Policy: same-origin` keeps
//! it from leaving the site, and logs record route templates, not URLs.

use super::id;
use crate::api::Api;
use crate::layout::{self, form_error, page, size, when, FormErr};
use crate::session::{same, Fail, Form, OrgPage};
use crate::Console;
use axum::extract::{Path, Query, Request};
use axum::http::{header, Method};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use orgwall_core::FileId;
use orgwall_store::quota::{self, Usage};
use orgwall_store::repo::files::{self, FileMeta};
use serde::Deserialize;

pub(crate) fn routes() -> Router<Console> {
    Router::new()
        .route("/o/{org}/files", get(list).post(upload))
        .route("/o/{org}/files/{id}/download", get(download))
        .route("/o/{org}/files/{id}/delete", post(delete))
}

async fn load(p: &OrgPage) -> Result<(Vec<FileMeta>, Usage), Fail> {
    let mut tx = p.read().await?;
    let rows = files::list(&mut tx, 200, None).await?;
    let usage = quota::usage(&mut tx).await?;
    tx.commit().await?;
    Ok((rows, usage))
}

fn view(p: &OrgPage, rows: &[FileMeta], usage: &Usage, err: Option<&FormErr>) -> Markup {
    let max = i64::try_from(p.c.state.max_upload_bytes).unwrap_or(i64::MAX);
    let used = usage.used.storage_bytes;
    let limit = usage.limits.storage_bytes;
    page(
        p,
        "Files",
        "/files",
        html! {
            h1 { "Files" }
            p #storage {
                "Storage: " (size(used)) " of " (size(limit)) " used (" (usage.plan) " plan). Largest upload: " (size(max)) "."
            }
            @if p.can(orgwall_store::perms::FILES_WRITE) {
                section.card {
                    h2 { "Upload" }
                    form method="post" enctype="multipart/form-data"
                         action={ (p.href("/files")) "?csrf=" (p.viewer.csrf) } {
                        (form_error(FormErr::general(err, "upload")))
                        div.field {
                            label for="f-file" { "File (up to " (size(max.min((limit - used).max(0)))) ")" }
                            input #f-file type="file" name="file" required;
                        }
                        button type="submit" { "Upload" }
                    }
                }
            }
            @if rows.is_empty() { p.muted { "No files." } } @else {
                table.stack {
                    thead { tr { th { "Name" } th { "Size" } th { "Type" } th { "Uploaded" } th { span.muted { "Actions" } } } }
                    tbody {
                        @for f in rows {
                            tr {
                                td { a href=(p.href(&format!("/files/{}/download", f.id))) download { (f.name) } }
                                td { (size(f.size_bytes)) }
                                td { (f.content_type) }
                                td { (when(&f.created_at)) }
                                td {
                                    @if p.can(orgwall_store::perms::FILES_DELETE) {
                                        (layout::button_form(&p.viewer, &p.href(&format!("/files/{}/delete", f.id)), "Delete", Some("Delete this file?")))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

async fn list(p: OrgPage) -> Result<Markup, Fail> {
    p.require(orgwall_store::perms::FILES_READ)?;
    let (rows, usage) = load(&p).await?;
    Ok(view(&p, &rows, &usage, None))
}

#[derive(Deserialize)]
struct Csrf {
    csrf: Option<String>,
}

async fn upload(p: OrgPage, Query(q): Query<Csrf>, req: Request) -> Result<Response, Fail> {
    if !same(q.csrf.as_deref().unwrap_or(""), &p.viewer.csrf) {
        return Err(Fail::csrf());
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let res = Api::new(&p.c, Some(&p.viewer.token), None)
        .raw(
            Method::POST,
            &p.api("/files"),
            req.into_body(),
            content_type.as_deref(),
        )
        .await;
    match res {
        Ok(_) => Ok(Redirect::to(&p.href("/files")).into_response()),
        Err(r) if r.code == "permission_denied" || r.code == "not_a_member" => Err(r.into()),
        Err(r) => {
            let (rows, usage) = load(&p).await?;
            let message = if r.status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                format!(
                    "The file is larger than the upload limit ({}).",
                    size(i64::try_from(p.c.state.max_upload_bytes).unwrap_or(i64::MAX))
                )
            } else {
                r.detail.clone()
            };
            let err = FormErr {
                form: "upload",
                field: None,
                message,
            };
            Ok((r.status, view(&p, &rows, &usage, Some(&err))).into_response())
        }
    }
}

async fn download(p: OrgPage, Path((_, raw)): Path<(String, String)>) -> Result<Response, Fail> {
    p.require(orgwall_store::perms::FILES_READ)?;
    let fid: FileId = id(&raw)?;
    Ok(Api::new(&p.c, Some(&p.viewer.token), None)
        .stream(&p.api(&format!("/files/{fid}/content")))
        .await?)
}

async fn delete(
    p: OrgPage,
    Path((_, raw)): Path<(String, String)>,
    form: Form,
) -> Result<Response, Fail> {
    let fid: FileId = id(&raw)?;
    Api::new(&p.c, Some(&form.viewer.token), None)
        .send(Method::DELETE, &p.api(&format!("/files/{fid}")), None)
        .await?;
    Ok(Redirect::to(&p.href("/files")).into_response())
}
