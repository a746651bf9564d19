//! Tickets: the list (filters, search, pages), a ticket (history, comments, workflow,
//! assignment, edit, delete) and the forms that change them.

use super::{form_err, id};
use crate::api::Api;
use crate::layout::{self, csrf, form_error, input, page, select, textarea, when, FormErr};
use crate::session::{Fail, Form, OrgPage};
use crate::Console;
use axum::extract::{Path, Query};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use orgwall_core::{Permission, ProjectId, TicketId, TicketStatus, UserId};
use orgwall_store::repo::memberships::{self, Member};
use orgwall_store::repo::projects::{self, Project};
use orgwall_store::repo::tickets::{self, Ticket, TicketFilter, TicketPage};
use serde::Deserialize;
use serde_json::{json, Value};

/// Tickets per list page.
const PAGE: i64 = 25;

pub(crate) fn routes() -> Router<Console> {
    Router::new()
        .route("/o/{org}/tickets", get(list).post(create))
        .route("/o/{org}/tickets/{id}", get(show).post(edit))
        .route("/o/{org}/tickets/{id}/status", post(move_to))
        .route("/o/{org}/tickets/{id}/assign", post(assign))
        .route("/o/{org}/tickets/{id}/comments", post(comment))
        .route(
            "/o/{org}/tickets/{id}/comments/{comment}/delete",
            post(delete_comment),
        )
        .route("/o/{org}/tickets/{id}/delete", post(delete))
}

pub(crate) async fn to_tickets(p: OrgPage) -> Redirect {
    Redirect::to(&p.href("/tickets"))
}

/// A status for people.
pub(crate) fn status_label(s: TicketStatus) -> &'static str {
    match s {
        TicketStatus::Open => "Open",
        TicketStatus::InProgress => "In progress",
        TicketStatus::Resolved => "Resolved",
        TicketStatus::Closed => "Closed",
    }
}

fn badge(s: TicketStatus) -> Markup {
    html! { span class={ "status status-" (s.as_str()) } { (status_label(s)) } }
}

fn name_of(members: &[Member], u: Option<UserId>) -> String {
    match u {
        None => "Unassigned".into(),
        Some(u) => members
            .iter()
            .find(|m| m.user_id == u)
            .map_or_else(|| "A former member".into(), |m| m.name.clone()),
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct ListQuery {
    status: Option<String>,
    assignee: Option<String>,
    project: Option<String>,
    q: Option<String>,
    after: Option<String>,
}

struct ListData {
    rows: Vec<Ticket>,
    more: bool,
    members: Vec<Member>,
    projects: Vec<Project>,
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

async fn load_list(p: &OrgPage, q: &ListQuery) -> Result<ListData, Fail> {
    let bad = |f: &str| {
        Fail::Page(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("The {f} filter is not valid."),
        )
    };
    let filter = TicketFilter {
        status: nonempty(&q.status)
            .map(|s| s.parse().map_err(|_| bad("status")))
            .transpose()?,
        assignee: nonempty(&q.assignee)
            .map(|a| a.parse::<UserId>().map_err(|_| bad("assignee")))
            .transpose()?,
        project: nonempty(&q.project)
            .map(|a| a.parse::<ProjectId>().map_err(|_| bad("project")))
            .transpose()?,
        q: nonempty(&q.q).map(|s| s.chars().take(200).collect()),
    };
    let after = nonempty(&q.after)
        .map(|a| a.parse::<uuid::Uuid>().map_err(|_| bad("page")))
        .transpose()?;
    let mut tx = p.read().await?;
    let mut rows = tickets::list(&mut tx, &filter, PAGE + 1, after).await?;
    let members = memberships::list(&mut tx).await?;
    let projects = if p.can(orgwall_store::perms::PROJECTS_READ) {
        projects::list(&mut tx, 200, None).await?
    } else {
        Vec::new()
    };
    tx.commit().await?;
    let more = rows.len() > usize::try_from(PAGE).unwrap_or(0);
    rows.truncate(usize::try_from(PAGE).unwrap_or(0));
    Ok(ListData {
        rows,
        more,
        members,
        projects,
    })
}

/// Assignee choices: names, and emails only for those who may read the member list.
fn member_options(p: &OrgPage, members: &[Member], none: &str) -> Vec<(String, String)> {
    let emails = p.can(Permission::MEMBERS_READ);
    std::iter::once((String::new(), none.to_owned()))
        .chain(members.iter().map(|m| {
            let label = if emails {
                format!("{} ({})", m.name, m.email)
            } else {
                m.name.clone()
            };
            (m.user_id.to_string(), label)
        }))
        .collect()
}

fn project_options(projects: &[Project], none: Option<&str>) -> Vec<(String, String)> {
    none.map(|n| (String::new(), n.to_owned()))
        .into_iter()
        .chain(
            projects
                .iter()
                .map(|pr| (pr.id.to_string(), format!("{} — {}", pr.key, pr.name))),
        )
        .collect()
}

fn list_view(
    p: &OrgPage,
    q: &ListQuery,
    d: &ListData,
    new: &[(String, String)],
    err: Option<&FormErr>,
) -> Markup {
    let val = |k: &str| {
        new.iter()
            .find(|(n, _)| n == k)
            .map_or("", |(_, v)| v.as_str())
    };
    let statuses: Vec<(String, String)> = std::iter::once((String::new(), "Any status".to_owned()))
        .chain(
            TicketStatus::ALL
                .iter()
                .map(|s| (s.as_str().to_owned(), status_label(*s).to_owned())),
        )
        .collect();
    let next = d.more.then(|| {
        let mut u = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("status", &q.status),
            ("assignee", &q.assignee),
            ("project", &q.project),
            ("q", &q.q),
        ] {
            if let Some(v) = nonempty(v) {
                u.append_pair(k, v);
            }
        }
        if let Some(last) = d.rows.last() {
            u.append_pair("after", &last.id.to_string());
        }
        format!("{}?{}", p.href("/tickets"), u.finish())
    });
    page(
        p,
        "Tickets",
        "/tickets",
        html! {
            h1 { "Tickets" }
            form.card.filters method="get" action=(p.href("/tickets")) role="search" {
                div.field {
                    label for="f-q" { "Search" }
                    input #f-q type="search" name="q" value=(nonempty(&q.q).unwrap_or("")) placeholder="Words in title or text";
                }
                (select("Status", "status", &statuses, nonempty(&q.status).unwrap_or(""), None))
                (select("Assignee", "assignee", &member_options(p, &d.members, "Anyone"), nonempty(&q.assignee).unwrap_or(""), None))
                @if p.can(orgwall_store::perms::PROJECTS_READ) {
                    (select("Project", "project", &project_options(&d.projects, Some("Any project")), nonempty(&q.project).unwrap_or(""), None))
                }
                button.secondary type="submit" { "Filter" }
            }
            @if d.rows.is_empty() {
                p.muted { "No tickets match." }
            } @else {
                table.stack {
                    thead { tr { th { "Title" } th { "Status" } th { "Assignee" } th { "Created" } } }
                    tbody {
                        @for t in &d.rows {
                            tr {
                                td { a href=(p.href(&format!("/tickets/{}", t.id))) { (t.title) } }
                                td { (badge(t.status)) }
                                td { (name_of(&d.members, t.assignee_id)) }
                                td { (when(&t.created_at)) }
                            }
                        }
                    }
                }
            }
            @if let Some(n) = next { p.pager { a href=(n) rel="next" { "Next page" } } }
            @if p.can(orgwall_store::perms::TICKETS_WRITE) {
                section.card {
                    h2 #new-ticket { "New ticket" }
                    @if d.projects.is_empty() {
                        p.muted { "Create a project first: every ticket belongs to one." }
                    } @else {
                        form method="post" action=(p.href("/tickets")) {
                            (csrf(&p.viewer))
                            (form_error(FormErr::general(err, "new")))
                            (select("Project", "project_id", &project_options(&d.projects, None), val("project_id"), FormErr::on(err, "new", "project_id")))
                            (input("Title", "title", "text", val("title"), FormErr::on(err, "new", "title"), true))
                            (textarea("Description", "body", val("body"), FormErr::on(err, "new", "body")))
                            (select("Assignee", "assignee_id", &member_options(p, &d.members, "Unassigned"), val("assignee_id"), FormErr::on(err, "new", "assignee_id")))
                            button type="submit" { "Create ticket" }
                        }
                    }
                }
            }
        },
    )
}

async fn list(p: OrgPage, Query(q): Query<ListQuery>) -> Result<Markup, Fail> {
    p.require(orgwall_store::perms::TICKETS_READ)?;
    let d = load_list(&p, &q).await?;
    Ok(list_view(&p, &q, &d, &[], None))
}

async fn create(p: OrgPage, form: Form) -> Result<Response, Fail> {
    let assignee = Some(form.get("assignee_id")).filter(|a| !a.is_empty());
    let body = json!({
        "project_id": form.get("project_id"),
        "title": form.get("title"),
        "body": form.get("body"),
        "assignee_id": assignee,
    });
    match Api::new(&p.c, Some(&form.viewer.token), None)
        .send(Method::POST, &p.api("/tickets"), Some(body))
        .await
    {
        Ok(a) => {
            let tid = a.text("/id");
            Ok(Redirect::to(&p.href(&format!("/tickets/{tid}"))).into_response())
        }
        Err(r)
            if r.status == StatusCode::UNPROCESSABLE_ENTITY
                || r.status == StatusCode::CONFLICT
                || r.code == "quota_exceeded" =>
        {
            let err = form_err("new", &["project_id", "title", "body", "assignee_id"], &r);
            let q = ListQuery::default();
            let d = load_list(&p, &q).await?;
            Ok((r.status, list_view(&p, &q, &d, &form.fields, Some(&err))).into_response())
        }
        Err(r) => Err(r.into()),
    }
}

async fn load(p: &OrgPage, raw: &str) -> Result<TicketPage, Fail> {
    let tid: TicketId = id(raw)?;
    let mut tx = p.read().await?;
    let d = tickets::page(&mut tx, tid).await?;
    tx.commit().await?;
    Ok(d)
}

fn event_text(d: &TicketPage, field: &str, v: Option<&str>) -> String {
    match (field, v) {
        (_, None) => "none".into(),
        ("status", Some(s)) => s
            .parse::<TicketStatus>()
            .map_or_else(|_| s.to_owned(), |s| status_label(s).to_owned()),
        ("assignee", Some(u)) => name_of(&d.members, u.parse().ok()),
        (_, Some(s)) => s.to_owned(),
    }
}

fn ticket_view(p: &OrgPage, d: &TicketPage, err: Option<&FormErr>) -> Markup {
    let t = &d.ticket;
    let base = p.href(&format!("/tickets/{}", t.id));
    let moves: Vec<TicketStatus> = TicketStatus::ALL
        .into_iter()
        .filter(|s| t.status.can_move_to(*s))
        .collect();
    let me = p.viewer.user_id;
    page(
        p,
        &t.title,
        "/tickets",
        html! {
            p.muted { a href=(p.href("/tickets")) { "Tickets" } " / " (d.project.key) }
            h1 #ticket-title { (t.title) }
            p.row {
                (badge(t.status))
                span { "Project: " (d.project.name) }
                span { "Assignee: " strong #assignee { (name_of(&d.members, t.assignee_id)) } }
                span.muted { "Created " (when(&t.created_at)) }
            }
            @if !t.body.is_empty() { section.card { p.body { (t.body) } } }
            @if p.can(orgwall_store::perms::TICKETS_WRITE) {
                section.card {
                    h2 { "Workflow" }
                    (form_error(FormErr::general(err, "status")))
                    @if moves.is_empty() {
                        p.muted { "No moves from here." }
                    }
                    div.row {
                        @for s in &moves {
                            form.inline method="post" action={ (base) "/status" } {
                                (csrf(&p.viewer))
                                input type="hidden" name="status" value=(s.as_str());
                                button.secondary type="submit" data-status=(s.as_str()) {
                                    @if *s == TicketStatus::Open { "Reopen" } @else { "Move to " (status_label(*s)) }
                                }
                            }
                        }
                    }
                    form method="post" action={ (base) "/assign" } {
                        (csrf(&p.viewer))
                        (select("Assignee", "assignee_id", &member_options(p, &d.members, "Unassigned"),
                            &t.assignee_id.map(|u| u.to_string()).unwrap_or_default(), FormErr::on(err, "assign", "assignee_id")))
                        button.secondary type="submit" { "Assign" }
                    }
                }
                details.card {
                    summary { "Edit title and description" }
                    form method="post" action=(base) {
                        (csrf(&p.viewer))
                        (form_error(FormErr::general(err, "edit")))
                        (input("Title", "title", "text", &t.title, FormErr::on(err, "edit", "title"), true))
                        (textarea("Description", "body", &t.body, FormErr::on(err, "edit", "body")))
                        button type="submit" { "Save" }
                    }
                }
            }
            section.card {
                h2 { "History" }
                @if d.history.is_empty() { p.muted { "No changes yet." } }
                ol.history {
                    @for e in &d.history {
                        li {
                            (name_of(&d.members, e.actor_id)) " changed " (e.field) " from "
                            em { (event_text(d, &e.field, e.from.as_deref())) } " to "
                            em { (event_text(d, &e.field, e.to.as_deref())) } " · " (when(&e.at))
                        }
                    }
                }
            }
            section.card {
                h2 { "Comments" }
                @if d.comments.is_empty() { p.muted { "No comments yet." } }
                ul.comments {
                    @for c in &d.comments {
                        li {
                            p.muted { (name_of(&d.members, c.author_id)) " · " (when(&c.created_at)) }
                            p.body { (c.body) }
                            @if p.can(orgwall_store::perms::COMMENTS_WRITE) && (c.author_id == Some(me) || p.can(orgwall_store::perms::TICKETS_DELETE)) {
                                (layout::button_form(&p.viewer, &format!("{base}/comments/{}/delete", c.id), "Delete comment", Some("Delete this comment?")))
                            }
                        }
                    }
                }
                @if p.can(orgwall_store::perms::COMMENTS_WRITE) {
                    form method="post" action={ (base) "/comments" } {
                        (csrf(&p.viewer))
                        (form_error(FormErr::general(err, "comment")))
                        (textarea("Add a comment", "comment", "", FormErr::on(err, "comment", "body")))
                        button type="submit" { "Comment" }
                    }
                }
            }
            @if p.can(orgwall_store::perms::TICKETS_DELETE) {
                section.card {
                    h2 { "Delete" }
                    (layout::button_form(&p.viewer, &format!("{base}/delete"), "Delete ticket", Some("Delete this ticket and its comments?")))
                }
            }
        },
    )
}

async fn show(p: OrgPage, Path((_, raw)): Path<(String, String)>) -> Result<Markup, Fail> {
    p.require(orgwall_store::perms::TICKETS_READ)?;
    let d = load(&p, &raw).await?;
    Ok(ticket_view(&p, &d, None))
}

#[allow(clippy::too_many_arguments)]
/// Sends a change of the ticket; on a refusal the ticket page again with the error on
/// `form` (and `fields`), else back to the ticket.
async fn change(
    p: &OrgPage,
    form: &Form,
    raw: &str,
    method: Method,
    rest: &str,
    body: Option<Value>,
    which: &'static str,
    fields: &[&'static str],
) -> Result<Response, Fail> {
    let tid: TicketId = id(raw)?;
    let res = Api::new(&p.c, Some(&form.viewer.token), None)
        .send(method, &p.api(&format!("/tickets/{tid}{rest}")), body)
        .await;
    match res {
        Ok(_) => Ok(Redirect::to(&p.href(&format!("/tickets/{tid}"))).into_response()),
        Err(r)
            if r.status == StatusCode::UNPROCESSABLE_ENTITY || r.status == StatusCode::CONFLICT =>
        {
            let d = load(p, raw).await?;
            let err = form_err(which, fields, &r);
            Ok((r.status, ticket_view(p, &d, Some(&err))).into_response())
        }
        Err(r) => Err(r.into()),
    }
}

async fn edit(
    p: OrgPage,
    Path((_, raw)): Path<(String, String)>,
    form: Form,
) -> Result<Response, Fail> {
    let body = json!({ "title": form.get("title"), "body": form.get("body") });
    change(
        &p,
        &form,
        &raw,
        Method::PATCH,
        "",
        Some(body),
        "edit",
        &["title", "body"],
    )
    .await
}

async fn move_to(
    p: OrgPage,
    Path((_, raw)): Path<(String, String)>,
    form: Form,
) -> Result<Response, Fail> {
    let body = json!({ "status": form.get("status") });
    change(
        &p,
        &form,
        &raw,
        Method::PATCH,
        "",
        Some(body),
        "status",
        &[],
    )
    .await
}

async fn assign(
    p: OrgPage,
    Path((_, raw)): Path<(String, String)>,
    form: Form,
) -> Result<Response, Fail> {
    let a = form.get("assignee_id");
    let body = json!({ "assignee_id": if a.is_empty() { Value::Null } else { Value::String(a) } });
    change(
        &p,
        &form,
        &raw,
        Method::PATCH,
        "",
        Some(body),
        "assign",
        &["assignee_id"],
    )
    .await
}

async fn comment(
    p: OrgPage,
    Path((_, raw)): Path<(String, String)>,
    form: Form,
) -> Result<Response, Fail> {
    let body = json!({ "body": form.get("comment") });
    change(
        &p,
        &form,
        &raw,
        Method::POST,
        "/comments",
        Some(body),
        "comment",
        &["body"],
    )
    .await
}

async fn delete_comment(
    p: OrgPage,
    Path((_, raw, cid)): Path<(String, String, String)>,
    form: Form,
) -> Result<Response, Fail> {
    let cid: orgwall_core::CommentId = id(&cid)?;
    change(
        &p,
        &form,
        &raw,
        Method::DELETE,
        &format!("/comments/{cid}"),
        None,
        "comment",
        &[],
    )
    .await
}

async fn delete(
    p: OrgPage,
    Path((_, raw)): Path<(String, String)>,
    form: Form,
) -> Result<Response, Fail> {
    let tid: TicketId = id(&raw)?;
    Api::new(&p.c, Some(&form.viewer.token), None)
        .send(Method::DELETE, &p.api(&format!("/tickets/{tid}")), None)
        .await?;
    Ok(Redirect::to(&p.href("/tickets")).into_response())
}
