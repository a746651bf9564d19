//! API keys (create, shown once with copy; list; revoke), the audit log with filters,
//! usage against the plan's quotas, and org settings (rename, slug, export and download,
//! delete with confirmation).

use super::{form_err, id};
use crate::api::Api;
use crate::layout::{self, csrf, form_error, input, page, select, size, when, FormErr};
use crate::session::{Fail, Form, OrgPage};
use crate::Console;
use axum::extract::{Path, Query};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{NaiveDate, TimeZone, Utc};
use maud::{html, Markup};
use orgwall_core::{ApiKeyId, ExportId, Permission};
use orgwall_store::quota;
use orgwall_store::repo::api_keys::{self, ApiKey};
use orgwall_store::repo::audit::{self, AuditFilter};
use orgwall_store::repo::exports::{self, Export};
use orgwall_store::repo::{orgs, roles};
use serde::Deserialize;
use serde_json::json;

pub(crate) fn routes() -> Router<Console> {
    Router::new()
        .route("/o/{org}/api-keys", get(keys_page).post(create_key))
        .route("/o/{org}/api-keys/{id}", get(key_page))
        .route("/o/{org}/api-keys/{id}/revoke", post(revoke_key))
        .route("/o/{org}/audit", get(audit_page))
        .route("/o/{org}/usage", get(usage_page))
        .route("/o/{org}/settings", get(settings_page).post(update_org))
        .route("/o/{org}/settings/delete", post(delete_org))
        .route("/o/{org}/exports", post(start_export))
        .route("/o/{org}/exports/{id}", get(export_page))
        .route("/o/{org}/exports/{id}/download", get(download_export))
}

// ---- API keys ----

struct KeysData {
    keys: Vec<ApiKey>,
    roles: Vec<(String, String)>,
}

async fn load_keys(p: &OrgPage) -> Result<KeysData, Fail> {
    let mut tx = p.read().await?;
    let keys = api_keys::list(&mut tx, 200, None).await?;
    let roles = roles::list(&mut tx, 200, None)
        .await?
        .into_iter()
        .filter(|r| r.key != roles::OWNER && r.permissions.is_subset_of(p.scope.permissions()))
        .map(|r| (r.key, r.name))
        .collect();
    tx.commit().await?;
    Ok(KeysData { keys, roles })
}

fn keys_view(
    p: &OrgPage,
    d: &KeysData,
    created: Option<(&str, &str)>,
    new: &[(String, String)],
    err: Option<&FormErr>,
) -> Markup {
    let v = |k: &str| {
        new.iter()
            .find(|(n, _)| n == k)
            .map_or("", |(_, v)| v.as_str())
    };
    page(
        p,
        "API keys",
        "/api-keys",
        html! {
            h1 { "API keys" }
            @if let Some((name, key)) = created {
                section.card.notice role="status" {
                    h2 { "New key “" (name) "”" }
                    p { "Copy it now: it is shown only once." }
                    p.secret #new-key { (key) }
                    button.secondary type="button" data-copy="new-key" hidden { "Copy" }
                }
            }
            @if d.keys.is_empty() { p.muted { "No API keys." } } @else {
                table.stack #keys {
                    thead { tr { th { "Name" } th { "Prefix" } th { "Role" } th { "Created" } th { "Status" } th { span.muted { "Actions" } } } }
                    tbody {
                        @for k in &d.keys {
                            tr {
                                td { a href=(p.href(&format!("/api-keys/{}", k.id))) { (k.name) } }
                                td { code { (k.prefix) "…" } }
                                td { span.role { (k.role) } }
                                td { (when(&k.created_at)) }
                                td {
                                    @if k.revoked_at.is_some() { "revoked" }
                                    @else if let Some(e) = &k.expires_at { "expires " (when(e)) }
                                    @else { "active" }
                                }
                                td {
                                    @if k.revoked_at.is_none() {
                                        (layout::button_form(&p.viewer, &p.href(&format!("/api-keys/{}/revoke", k.id)), "Revoke", Some("Revoke this key? Programs using it stop working.")))
                                    }
                                }
                            }
                        }
                    }
                }
            }
            section.card {
                h2 { "New key" }
                form method="post" action=(p.href("/api-keys")) {
                    (csrf(&p.viewer))
                    (form_error(FormErr::general(err, "new")))
                    (input("Name", "name", "text", v("name"), FormErr::on(err, "new", "name"), true))
                    (select("Role", "role", &d.roles, if v("role").is_empty() { "member" } else { v("role") }, FormErr::on(err, "new", "role")))
                    (input("Expires on (optional)", "expires_on", "date", v("expires_on"), FormErr::on(err, "new", "expires_at"), false))
                    button type="submit" { "Create key" }
                }
            }
        },
    )
}

async fn keys_page(p: OrgPage) -> Result<Markup, Fail> {
    p.require(Permission::API_KEYS_MANAGE)?;
    let d = load_keys(&p).await?;
    Ok(keys_view(&p, &d, None, &[], None))
}

async fn create_key(p: OrgPage, form: Form) -> Result<Response, Fail> {
    let expires = form.get("expires_on");
    let expires_at = if expires.is_empty() {
        None
    } else {
        match NaiveDate::parse_from_str(&expires, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
        {
            Some(t) => Some(Utc.from_utc_datetime(&t).to_rfc3339()),
            None => {
                let d = load_keys(&p).await?;
                let err = FormErr {
                    form: "new",
                    field: Some("expires_at"),
                    message: "Give a date like 2027-01-31.".into(),
                };
                return Ok((
                    StatusCode::UNPROCESSABLE_ENTITY,
                    keys_view(&p, &d, None, &form.fields, Some(&err)),
                )
                    .into_response());
            }
        }
    };
    let body =
        json!({ "name": form.get("name"), "role": form.get("role"), "expires_at": expires_at });
    let res = Api::new(&p.c, Some(&form.viewer.token), None)
        .send(Method::POST, &p.api("/api-keys"), Some(body))
        .await;
    let d = load_keys(&p).await?;
    match res {
        Ok(a) => {
            let (name, key) = (a.text("/api_key/name"), a.text("/key"));
            Ok((
                StatusCode::CREATED,
                keys_view(&p, &d, Some((&name, &key)), &[], None),
            )
                .into_response())
        }
        Err(r)
            if r.status == StatusCode::UNPROCESSABLE_ENTITY
                || r.status == StatusCode::CONFLICT
                || r.code == "grant_exceeds_own" =>
        {
            let err = form_err("new", &["name", "role", "expires_at"], &r);
            Ok((r.status, keys_view(&p, &d, None, &form.fields, Some(&err))).into_response())
        }
        Err(r) => Err(r.into()),
    }
}

async fn key_page(p: OrgPage, Path((_, raw)): Path<(String, String)>) -> Result<Markup, Fail> {
    p.require(Permission::API_KEYS_MANAGE)?;
    let kid: ApiKeyId = id(&raw)?;
    let mut tx = p.read().await?;
    let k = api_keys::get(&mut tx, kid).await?;
    tx.commit().await?;
    Ok(page(
        &p,
        &k.name,
        "/api-keys",
        html! {
            p.muted { a href=(p.href("/api-keys")) { "API keys" } }
            h1 { (k.name) }
            p { code { (k.prefix) "…" } " · " span.role { (k.role) } " · created " (when(&k.created_at)) }
            @if let Some(r) = &k.revoked_at { p { "Revoked " (when(r)) } }
            @else {
                (layout::button_form(&p.viewer, &p.href(&format!("/api-keys/{}/revoke", k.id)), "Revoke", Some("Revoke this key?")))
            }
        },
    ))
}

async fn revoke_key(
    p: OrgPage,
    Path((_, raw)): Path<(String, String)>,
    form: Form,
) -> Result<Response, Fail> {
    let kid: ApiKeyId = id(&raw)?;
    Api::new(&p.c, Some(&form.viewer.token), None)
        .send(Method::DELETE, &p.api(&format!("/api-keys/{kid}")), None)
        .await?;
    Ok(Redirect::to(&p.href("/api-keys")).into_response())
}

// ---- audit ----

#[derive(Deserialize, Default)]
pub(crate) struct AuditQuery {
    action: Option<String>,
    actor: Option<String>,
    since: Option<String>,
    until: Option<String>,
    before: Option<String>,
}

fn day(s: &Option<String>) -> Result<Option<chrono::DateTime<Utc>>, Fail> {
    match s.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| Some(Utc.from_utc_datetime(&t)))
            .ok_or_else(|| {
                Fail::Page(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Dates look like 2027-01-31.".into(),
                )
            }),
    }
}

async fn audit_page(p: OrgPage, Query(q): Query<AuditQuery>) -> Result<Markup, Fail> {
    p.require(Permission::AUDIT_READ)?;
    let trim = |s: &Option<String>| {
        s.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let bad = || {
        Fail::Page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The filter is not valid.".into(),
        )
    };
    let filter = AuditFilter {
        action: trim(&q.action).map(|a| a.chars().take(100).collect()),
        actor: trim(&q.actor)
            .map(|a| a.parse().map_err(|_| bad()))
            .transpose()?,
        since: day(&q.since)?,
        until: day(&q.until)?,
    };
    let before = trim(&q.before)
        .map(|b| b.parse().map_err(|_| bad()))
        .transpose()?;
    let mut tx = p.read().await?;
    let mut rows = audit::search(&mut tx, &filter, 51, before).await?;
    tx.commit().await?;
    let more = rows.len() > 50;
    rows.truncate(50);
    let next = more.then(|| {
        let mut u = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("action", &q.action),
            ("actor", &q.actor),
            ("since", &q.since),
            ("until", &q.until),
        ] {
            if let Some(v) = trim(v) {
                u.append_pair(k, &v);
            }
        }
        if let Some(last) = rows.last() {
            u.append_pair("before", &last.id.to_string());
        }
        format!("{}?{}", p.href("/audit"), u.finish())
    });
    let v = |s: &Option<String>| trim(s).unwrap_or_default();
    Ok(page(
        &p,
        "Audit log",
        "/audit",
        html! {
            h1 { "Audit log" }
            form.card.filters method="get" action=(p.href("/audit")) {
                (input("Action (e.g. member.removed)", "action", "text", &v(&q.action), None, false))
                (input("Actor id", "actor", "text", &v(&q.actor), None, false))
                (input("Since", "since", "date", &v(&q.since), None, false))
                (input("Until", "until", "date", &v(&q.until), None, false))
                button.secondary type="submit" { "Filter" }
            }
            @if rows.is_empty() { p.muted { "No events." } } @else {
                table.stack {
                    thead { tr { th { "When" } th { "Action" } th { "Actor" } th { "Target" } } }
                    tbody {
                        @for e in &rows {
                            tr {
                                td { (when(&e.created_at)) }
                                td { code { (e.action) } }
                                td { (e.actor_name.clone().unwrap_or_else(|| e.actor_kind.clone())) }
                                td.muted { (e.target_kind.clone().unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
            @if let Some(n) = next { p.pager { a href=(n) rel="next" { "Older events" } } }
        },
    ))
}

// ---- usage ----

fn meter(label: &str, used: i64, limit: i64, fmt: fn(i64) -> String) -> Markup {
    let pct = if limit > 0 {
        (used.saturating_mul(100) / limit).clamp(0, 100)
    } else {
        100
    };
    html! {
        div.field {
            label { (label) ": " (fmt(used)) " of " (fmt(limit)) }
            div.meter role="meter" aria-valuenow=(used) aria-valuemin="0" aria-valuemax=(limit) aria-label=(label) {
                span.{ "w" (pct / 10 * 10) } {}
            }
        }
    }
}

async fn usage_page(p: OrgPage) -> Result<Markup, Fail> {
    p.require(orgwall_store::perms::USAGE_READ)?;
    let mut tx = p.read().await?;
    let u = quota::usage(&mut tx).await?;
    tx.commit().await?;
    let n = |x: i64| x.to_string();
    Ok(page(
        &p,
        "Usage",
        "/usage",
        html! {
            h1 { "Usage" }
            section.card {
                p { "Plan: " strong { (u.plan) } " · " (u.rate_limit_per_minute) " requests per minute" }
                (meter("Members", u.used.members, u.limits.members, n))
                (meter("Projects", u.used.projects, u.limits.projects, n))
                (meter("Tickets", u.used.tickets, u.limits.tickets, n))
                (meter("Storage", u.used.storage_bytes, u.limits.storage_bytes, size))
            }
        },
    ))
}

// ---- settings, exports, deletion ----

async fn settings_view(
    p: &OrgPage,
    new: &[(String, String)],
    err: Option<&FormErr>,
) -> Result<Markup, Fail> {
    let org = orgs::get(&p.c.state.db, p.scope.org_id()).await?;
    let exports: Vec<Export> = if p.can(orgwall_store::perms::EXPORTS_CREATE) {
        let mut tx = p.read().await?;
        let e = exports::list(&mut tx, 20, None).await?;
        tx.commit().await?;
        e
    } else {
        Vec::new()
    };
    let v = |k: &str, d: &str| {
        new.iter()
            .find(|(n, _)| n == k)
            .map_or_else(|| d.to_owned(), |(_, v)| v.clone())
    };
    Ok(page(
        p,
        "Settings",
        "/settings",
        html! {
            h1 { "Settings" }
            section.card {
                h2 { "Organization" }
                p.muted { "Plan: " (org.plan) " · created " (when(&org.created_at)) }
                @if p.can(Permission::ORG_UPDATE) {
                    form method="post" action=(p.href("/settings")) {
                        (csrf(&p.viewer))
                        (form_error(FormErr::general(err, "org")))
                        (input("Name", "name", "text", &v("name", &org.name), FormErr::on(err, "org", "name"), true))
                        (input("Slug (changes every console and API URL of the organization)", "slug", "text", &v("slug", &org.slug), FormErr::on(err, "org", "slug"), true))
                        button type="submit" { "Save" }
                    }
                } @else {
                    p { (org.name) " (" (org.slug) ")" }
                }
            }
            @if p.can(orgwall_store::perms::EXPORTS_CREATE) {
                section.card {
                    h2 { "Export" }
                    p.muted { "An archive of all the organization's data and files, built in the background." }
                    (layout::button_form(&p.viewer, &p.href("/exports"), "Start an export", None))
                    ul #exports {
                        @for e in &exports {
                            li {
                                a href=(p.href(&format!("/exports/{}", e.id))) { "Export of " (when(&e.created_at)) }
                                " · " (e.status)
                                @if let Some(s) = e.size_bytes { " · " (size(s)) }
                                @if e.status == "done" && !e.is_expired() {
                                    " · " a href=(p.href(&format!("/exports/{}/download", e.id))) { "Download" }
                                }
                            }
                        }
                    }
                }
            }
            @if p.can(Permission::ORG_DELETE) {
                section.card {
                    h2 { "Delete the organization" }
                    p { "Deletes every project, ticket, note, file and membership. This cannot be undone." }
                    form method="post" action=(p.href("/settings/delete")) data-confirm="Delete this organization and all its data?" {
                        (csrf(&p.viewer))
                        (input("Type the slug to confirm", "confirm", "text", "", FormErr::on(err, "delete", "confirm"), true))
                        button.danger type="submit" { "Delete organization" }
                    }
                }
            }
        },
    ))
}

async fn settings_page(p: OrgPage) -> Result<Markup, Fail> {
    p.require(Permission::ORG_READ)?;
    settings_view(&p, &[], None).await
}

async fn update_org(p: OrgPage, form: Form) -> Result<Response, Fail> {
    let body = json!({ "name": form.get("name"), "slug": form.get("slug") });
    let res = Api::new(&p.c, Some(&form.viewer.token), None)
        .send(Method::PATCH, &p.api(""), Some(body))
        .await;
    p.c.switcher.forget(form.viewer.user_id);
    match res {
        Ok(a) => Ok(Redirect::to(&format!("/o/{}/settings", a.text("/slug"))).into_response()),
        Err(r)
            if r.status == StatusCode::UNPROCESSABLE_ENTITY || r.status == StatusCode::CONFLICT =>
        {
            let mut err = form_err("org", &["name", "slug"], &r);
            if r.code == "slug_taken" {
                err.field = Some("slug");
            }
            Ok((r.status, settings_view(&p, &form.fields, Some(&err)).await?).into_response())
        }
        Err(r) => Err(r.into()),
    }
}

async fn delete_org(p: OrgPage, form: Form) -> Result<Response, Fail> {
    if form.get("confirm") != p.slug {
        let err = FormErr {
            form: "delete",
            field: Some("confirm"),
            message: format!("Type {} to confirm.", p.slug),
        };
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            settings_view(&p, &[], Some(&err)).await?,
        )
            .into_response());
    }
    Api::new(&p.c, Some(&form.viewer.token), None)
        .send(Method::DELETE, &p.api(""), None)
        .await?;
    p.c.switcher.forget(form.viewer.user_id);
    Ok(Redirect::to("/orgs").into_response())
}

async fn start_export(p: OrgPage, form: Form) -> Result<Response, Fail> {
    let a = Api::new(&p.c, Some(&form.viewer.token), None)
        .send(Method::POST, &p.api("/exports"), None)
        .await?;
    Ok(Redirect::to(&p.href(&format!("/exports/{}", a.text("/id")))).into_response())
}

async fn export_page(p: OrgPage, Path((_, raw)): Path<(String, String)>) -> Result<Markup, Fail> {
    p.require(orgwall_store::perms::EXPORTS_CREATE)?;
    let eid: ExportId = id(&raw)?;
    let mut tx = p.read().await?;
    let e = exports::get(&mut tx, eid).await?;
    tx.commit().await?;
    Ok(page(
        &p,
        "Export",
        "/settings",
        html! {
            p.muted { a href=(p.href("/settings")) { "Settings" } }
            h1 { "Export of " (when(&e.created_at)) }
            p #export-status { "Status: " (e.status) " (" (e.progress) "%)" }
            @if let Some(err) = &e.error { p.error { (err) } }
            @if e.status == "done" && !e.is_expired() {
                p { a.button href=(p.href(&format!("/exports/{}/download", e.id))) { "Download the archive" } }
            } @else if e.status != "failed" {
                p { a href=(p.href(&format!("/exports/{}", e.id))) { "Refresh" } }
            }
        },
    ))
}

async fn download_export(
    p: OrgPage,
    Path((_, raw)): Path<(String, String)>,
) -> Result<Response, Fail> {
    p.require(orgwall_store::perms::EXPORTS_CREATE)?;
    let eid: ExportId = id(&raw)?;
    Ok(Api::new(&p.c, Some(&p.viewer.token), None)
        .stream(&p.api(&format!("/exports/{eid}/download")))
        .await?)
}
