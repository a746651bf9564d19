//! Projects and notes: list, search, create, edit, delete.

use super::{form_err, id};
use crate::api::Api;
use crate::layout::{self, csrf, form_error, input, page, textarea, when, FormErr};
use crate::session::{Fail, Form, OrgPage};
use crate::Console;
use axum::extract::{Path, Query};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use orgwall_core::{NoteId, ProjectId};
use orgwall_store::repo::notes::{self, Note};
use orgwall_store::repo::projects::{self, Project};
use serde::Deserialize;
use serde_json::json;

pub(crate) fn routes() -> Router<Console> {
    Router::new()
        .route("/o/{org}/projects", get(projects_page).post(create_project))
        .route(
            "/o/{org}/projects/{id}",
            get(project_page).post(edit_project),
        )
        .route("/o/{org}/projects/{id}/delete", post(delete_project))
        .route("/o/{org}/notes", get(notes_page).post(create_note))
        .route("/o/{org}/notes/{id}", get(note_page).post(edit_note))
        .route("/o/{org}/notes/{id}/delete", post(delete_note))
}

#[derive(Deserialize, Default)]
pub(crate) struct Search {
    q: Option<String>,
}

impl Search {
    fn text(&self) -> &str {
        self.q.as_deref().map_or("", str::trim)
    }
}

fn val<'a>(fields: &'a [(String, String)], k: &str) -> &'a str {
    fields
        .iter()
        .find(|(n, _)| n == k)
        .map_or("", |(_, v)| v.as_str())
}

fn search_form(action: &str, q: &str, what: &str) -> Markup {
    html! {
        form.card.filters method="get" action=(action) role="search" {
            div.field {
                label for="f-q" { "Search " (what) }
                input #f-q type="search" name="q" value=(q);
            }
            button.secondary type="submit" { "Search" }
        }
    }
}

/// Refusals a form can show next to its fields; anything else is an error page.
fn shown_on_form(r: &crate::api::Refusal) -> bool {
    r.status == StatusCode::UNPROCESSABLE_ENTITY
        || r.status == StatusCode::CONFLICT
        || r.code == "quota_exceeded"
}

// ---- projects ----

async fn load_projects(p: &OrgPage, q: &str) -> Result<Vec<Project>, Fail> {
    let mut tx = p.read().await?;
    let rows = projects::list(&mut tx, 500, None).await?;
    tx.commit().await?;
    let q = q.to_lowercase();
    Ok(rows
        .into_iter()
        .filter(|pr| {
            q.is_empty()
                || pr.name.to_lowercase().contains(&q)
                || pr.key.to_lowercase().contains(&q)
                || pr.description.to_lowercase().contains(&q)
        })
        .collect())
}

fn projects_view(
    p: &OrgPage,
    q: &str,
    rows: &[Project],
    new: &[(String, String)],
    err: Option<&FormErr>,
) -> Markup {
    page(
        p,
        "Projects",
        "/projects",
        html! {
            h1 { "Projects" }
            (search_form(&p.href("/projects"), q, "projects"))
            @if rows.is_empty() { p.muted { "No projects." } } @else {
                table.stack {
                    thead { tr { th { "Key" } th { "Name" } th { "Description" } th { "Tickets" } } }
                    tbody {
                        @for pr in rows {
                            tr {
                                td { (pr.key) }
                                td { a href=(p.href(&format!("/projects/{}", pr.id))) { (pr.name) } }
                                td { (pr.description) }
                                td { a href=(p.href(&format!("/tickets?project={}", pr.id))) { "Tickets" } }
                            }
                        }
                    }
                }
            }
            @if p.can(orgwall_store::perms::PROJECTS_WRITE) {
                section.card {
                    h2 { "New project" }
                    form method="post" action=(p.href("/projects")) {
                        (csrf(&p.viewer))
                        (form_error(FormErr::general(err, "new")))
                        (input("Key (2-10 capital letters or digits, e.g. WEB)", "key", "text", val(new, "key"), FormErr::on(err, "new", "key"), true))
                        (input("Name", "name", "text", val(new, "name"), FormErr::on(err, "new", "name"), true))
                        (textarea("Description", "description", val(new, "description"), FormErr::on(err, "new", "description")))
                        button type="submit" { "Create project" }
                    }
                }
            }
        },
    )
}

async fn projects_page(p: OrgPage, Query(s): Query<Search>) -> Result<Markup, Fail> {
    p.require(orgwall_store::perms::PROJECTS_READ)?;
    let rows = load_projects(&p, s.text()).await?;
    Ok(projects_view(&p, s.text(), &rows, &[], None))
}

const PROJECT_FIELDS: &[&str] = &["key", "name", "description"];

async fn create_project(p: OrgPage, form: Form) -> Result<Response, Fail> {
    let body = json!({ "key": form.get("key"), "name": form.get("name"), "description": form.get("description") });
    match Api::new(&p.c, Some(&form.viewer.token), None)
        .send(Method::POST, &p.api("/projects"), Some(body))
        .await
    {
        Ok(a) => Ok(Redirect::to(&p.href(&format!("/projects/{}", a.text("/id")))).into_response()),
        Err(r) if shown_on_form(&r) => {
            let rows = load_projects(&p, "").await?;
            let err = form_err("new", PROJECT_FIELDS, &r);
            Ok((
                r.status,
                projects_view(&p, "", &rows, &form.fields, Some(&err)),
            )
                .into_response())
        }
        Err(r) => Err(r.into()),
    }
}

fn project_view(p: &OrgPage, pr: &Project, err: Option<&FormErr>) -> Markup {
    let base = p.href(&format!("/projects/{}", pr.id));
    page(
        p,
        &pr.name,
        "/projects",
        html! {
            p.muted { a href=(p.href("/projects")) { "Projects" } " / " (pr.key) }
            h1 { (pr.name) }
            p { (pr.description) }
            p { a href=(p.href(&format!("/tickets?project={}", pr.id))) { "Tickets of this project" } " · created " (when(&pr.created_at)) }
            @if p.can(orgwall_store::perms::PROJECTS_WRITE) {
                section.card {
                    h2 { "Edit" }
                    form method="post" action=(base) {
                        (csrf(&p.viewer))
                        (form_error(FormErr::general(err, "edit")))
                        (input("Key", "key", "text", &pr.key, FormErr::on(err, "edit", "key"), true))
                        (input("Name", "name", "text", &pr.name, FormErr::on(err, "edit", "name"), true))
                        (textarea("Description", "description", &pr.description, FormErr::on(err, "edit", "description")))
                        button type="submit" { "Save" }
                    }
                }
                section.card {
                    h2 { "Delete" }
                    (layout::button_form(&p.viewer, &format!("{base}/delete"), "Delete project", Some("Delete this project?")))
                }
            }
        },
    )
}

async fn load_project(p: &OrgPage, raw: &str) -> Result<Project, Fail> {
    let pid: ProjectId = id(raw)?;
    let mut tx = p.read().await?;
    let pr = projects::get(&mut tx, pid).await?;
    tx.commit().await?;
    Ok(pr)
}

async fn project_page(p: OrgPage, Path((_, raw)): Path<(String, String)>) -> Result<Markup, Fail> {
    p.require(orgwall_store::perms::PROJECTS_READ)?;
    let pr = load_project(&p, &raw).await?;
    Ok(project_view(&p, &pr, None))
}

async fn edit_project(
    p: OrgPage,
    Path((_, raw)): Path<(String, String)>,
    form: Form,
) -> Result<Response, Fail> {
    let pid: ProjectId = id(&raw)?;
    let body = json!({ "key": form.get("key"), "name": form.get("name"), "description": form.get("description") });
    match Api::new(&p.c, Some(&form.viewer.token), None)
        .send(
            Method::PATCH,
            &p.api(&format!("/projects/{pid}")),
            Some(body),
        )
        .await
    {
        Ok(_) => Ok(Redirect::to(&p.href(&format!("/projects/{pid}"))).into_response()),
        Err(r) if shown_on_form(&r) => {
            let pr = load_project(&p, &raw).await?;
            let err = form_err("edit", PROJECT_FIELDS, &r);
            Ok((r.status, project_view(&p, &pr, Some(&err))).into_response())
        }
        Err(r) => Err(r.into()),
    }
}

async fn delete_project(
    p: OrgPage,
    Path((_, raw)): Path<(String, String)>,
    form: Form,
) -> Result<Response, Fail> {
    let pid: ProjectId = id(&raw)?;
    Api::new(&p.c, Some(&form.viewer.token), None)
        .send(Method::DELETE, &p.api(&format!("/projects/{pid}")), None)
        .await?;
    Ok(Redirect::to(&p.href("/projects")).into_response())
}

// ---- notes ----

async fn load_notes(p: &OrgPage, q: &str) -> Result<Vec<Note>, Fail> {
    let q = Some(q).filter(|q| !q.is_empty());
    let mut tx = p.read().await?;
    let rows = notes::list(&mut tx, q, 100, None).await?;
    tx.commit().await?;
    Ok(rows)
}

fn notes_view(
    p: &OrgPage,
    q: &str,
    rows: &[Note],
    new: &[(String, String)],
    err: Option<&FormErr>,
) -> Markup {
    page(
        p,
        "Notes",
        "/notes",
        html! {
            h1 { "Notes" }
            (search_form(&p.href("/notes"), q, "notes"))
            @if rows.is_empty() { p.muted { "No notes." } } @else {
                table.stack {
                    thead { tr { th { "Title" } th { "Created" } } }
                    tbody {
                        @for n in rows {
                            tr {
                                td { a href=(p.href(&format!("/notes/{}", n.id))) { (n.title) } }
                                td { (when(&n.created_at)) }
                            }
                        }
                    }
                }
            }
            @if p.can(orgwall_store::perms::NOTES_WRITE) {
                section.card {
                    h2 { "New note" }
                    form method="post" action=(p.href("/notes")) {
                        (csrf(&p.viewer))
                        (form_error(FormErr::general(err, "new")))
                        (input("Title", "title", "text", val(new, "title"), FormErr::on(err, "new", "title"), true))
                        (textarea("Text", "body", val(new, "body"), FormErr::on(err, "new", "body")))
                        button type="submit" { "Create note" }
                    }
                }
            }
        },
    )
}

async fn notes_page(p: OrgPage, Query(s): Query<Search>) -> Result<Markup, Fail> {
    p.require(orgwall_store::perms::NOTES_READ)?;
    let rows = load_notes(&p, s.text()).await?;
    Ok(notes_view(&p, s.text(), &rows, &[], None))
}

async fn create_note(p: OrgPage, form: Form) -> Result<Response, Fail> {
    let body = json!({ "title": form.get("title"), "body": form.get("body") });
    match Api::new(&p.c, Some(&form.viewer.token), None)
        .send(Method::POST, &p.api("/notes"), Some(body))
        .await
    {
        Ok(a) => Ok(Redirect::to(&p.href(&format!("/notes/{}", a.text("/id")))).into_response()),
        Err(r) if shown_on_form(&r) => {
            let rows = load_notes(&p, "").await?;
            let err = form_err("new", &["title", "body"], &r);
            Ok((
                r.status,
                notes_view(&p, "", &rows, &form.fields, Some(&err)),
            )
                .into_response())
        }
        Err(r) => Err(r.into()),
    }
}

fn note_view(p: &OrgPage, n: &Note, err: Option<&FormErr>) -> Markup {
    let base = p.href(&format!("/notes/{}", n.id));
    page(
        p,
        &n.title,
        "/notes",
        html! {
            p.muted { a href=(p.href("/notes")) { "Notes" } }
            h1 { (n.title) }
            section.card { p.body { (n.body) } p.muted { "Created " (when(&n.created_at)) } }
            @if p.can(orgwall_store::perms::NOTES_WRITE) {
                section.card {
                    h2 { "Edit" }
                    form method="post" action=(base) {
                        (csrf(&p.viewer))
                        (form_error(FormErr::general(err, "edit")))
                        (input("Title", "title", "text", &n.title, FormErr::on(err, "edit", "title"), true))
                        (textarea("Text", "body", &n.body, FormErr::on(err, "edit", "body")))
                        button type="submit" { "Save" }
                    }
                }
            }
            @if p.can(orgwall_store::perms::NOTES_DELETE) {
                section.card {
                    h2 { "Delete" }
                    (layout::button_form(&p.viewer, &format!("{base}/delete"), "Delete note", Some("Delete this note?")))
                }
            }
        },
    )
}

async fn load_note(p: &OrgPage, raw: &str) -> Result<Note, Fail> {
    let nid: NoteId = id(raw)?;
    let mut tx = p.read().await?;
    let n = notes::get(&mut tx, nid).await?;
    tx.commit().await?;
    Ok(n)
}

async fn note_page(p: OrgPage, Path((_, raw)): Path<(String, String)>) -> Result<Markup, Fail> {
    p.require(orgwall_store::perms::NOTES_READ)?;
    let n = load_note(&p, &raw).await?;
    Ok(note_view(&p, &n, None))
}

async fn edit_note(
    p: OrgPage,
    Path((_, raw)): Path<(String, String)>,
    form: Form,
) -> Result<Response, Fail> {
    let nid: NoteId = id(&raw)?;
    let body = json!({ "title": form.get("title"), "body": form.get("body") });
    match Api::new(&p.c, Some(&form.viewer.token), None)
        .send(Method::PATCH, &p.api(&format!("/notes/{nid}")), Some(body))
        .await
    {
        Ok(_) => Ok(Redirect::to(&p.href(&format!("/notes/{nid}"))).into_response()),
        Err(r) if shown_on_form(&r) => {
            let n = load_note(&p, &raw).await?;
            let err = form_err("edit", &["title", "body"], &r);
            Ok((r.status, note_view(&p, &n, Some(&err))).into_response())
        }
        Err(r) => Err(r.into()),
    }
}

async fn delete_note(
    p: OrgPage,
    Path((_, raw)): Path<(String, String)>,
    form: Form,
) -> Result<Response, Fail> {
    let nid: NoteId = id(&raw)?;
    Api::new(&p.c, Some(&form.viewer.token), None)
        .send(Method::DELETE, &p.api(&format!("/notes/{nid}")), None)
        .await?;
    Ok(Redirect::to(&p.href("/notes")).into_response())
}
