//! The page shell (header with the org switcher, navigation, main), form helpers and the
//! error pages. Every value is interpolated through maud, which escapes it.

use crate::session::{OrgPage, Viewer};
use crate::switcher::Me;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};
use orgwall_core::Permission;

/// A form's error: the field it belongs to (shown next to it) or the form as a whole.
#[derive(Debug, Clone, Default)]
pub struct FormErr {
    /// Which form on the page (its name).
    pub form: &'static str,
    /// The field, if the error names one.
    pub field: Option<&'static str>,
    /// What to tell the user.
    pub message: String,
}

impl FormErr {
    /// The error for `form`'s `field`, if this is it.
    pub fn on(this: Option<&FormErr>, form: &str, field: &str) -> Option<String> {
        this.filter(|e| e.form == form && e.field == Some(field))
            .map(|e| e.message.clone())
    }

    /// The form-level error of `form` (one that names no field of it).
    pub fn general(this: Option<&FormErr>, form: &str) -> Option<String> {
        this.filter(|e| e.form == form && e.field.is_none())
            .map(|e| e.message.clone())
    }
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · orgwall" }
            link rel="stylesheet" href="/assets/console.css";
            script src="/assets/console.js" defer {}
        }
    }
}

/// A page outside any org (login, sign-up, the org list).
pub fn bare(title: &str, viewer: Option<(&Viewer, &Me)>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "orgwall" }
                    @if let Some((v, me)) = viewer {
                        (switcher(None, me))
                        (user_menu(v, me))
                    }
                }
                main #main { (body) }
            }
        }
    }
}

fn switcher(current: Option<&OrgPage>, me: &Me) -> Markup {
    let label = current.map_or("Organizations", |p| p.org_name());
    html! {
        details.switcher {
            summary aria-label="Switch organization" {
                span.org-name { (label) }
                @if let Some(p) = current { " " span.role { (p.role()) } }
            }
            nav aria-label="Your organizations" {
                ul {
                    @for o in &me.orgs {
                        li {
                            a href={ "/o/" (o.slug) "/tickets" }
                              aria-current=[current.filter(|p| p.scope.org_id() == o.org_id).map(|_| "page")] {
                                (o.name) " " span.role { (o.role) }
                            }
                        }
                    }
                }
                a.create href="/orgs" { "Create an organization" }
            }
        }
    }
}

fn user_menu(v: &Viewer, me: &Me) -> Markup {
    html! {
        div.user {
            span.who title=(me.user.email) { (me.user.name) }
            form method="post" action="/logout" {
                (csrf(v))
                button.link type="submit" { "Log out" }
            }
        }
    }
}

/// The navigation entries: (path, label, permission needed to see it).
const NAV: &[(&str, &str, Permission)] = &[
    ("/tickets", "Tickets", orgwall_store::perms::TICKETS_READ),
    ("/projects", "Projects", orgwall_store::perms::PROJECTS_READ),
    ("/notes", "Notes", orgwall_store::perms::NOTES_READ),
    ("/files", "Files", orgwall_store::perms::FILES_READ),
    ("/members", "Members", Permission::MEMBERS_READ),
    ("/roles", "Roles", Permission::ROLES_READ),
    ("/api-keys", "API keys", Permission::API_KEYS_MANAGE),
    ("/audit", "Audit log", Permission::AUDIT_READ),
    ("/usage", "Usage", orgwall_store::perms::USAGE_READ),
    ("/settings", "Settings", Permission::ORG_READ),
];

/// A page of an org: header with the switcher, the org's navigation, then `body`.
pub fn page(p: &OrgPage, title: &str, section: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "orgwall" }
                    (switcher(Some(p), &p.me))
                    (user_menu(&p.viewer, &p.me))
                }
                nav.sections aria-label="Sections" {
                    ul {
                        @for (path, label, perm) in NAV {
                            @if p.can(*perm) {
                                li {
                                    a href=(p.href(path))
                                      aria-current=[(section == *path).then_some("page")] { (label) }
                                }
                            }
                        }
                    }
                }
                main #main { (body) }
            }
        }
    }
}

/// The hidden CSRF field of a state-changing form.
pub fn csrf(v: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(v.csrf); }
}

/// A labelled input with its error next to it.
pub fn input(
    label: &str,
    name: &str,
    kind: &str,
    value: &str,
    error: Option<String>,
    required: bool,
) -> Markup {
    let id = format!("f-{name}");
    let err_id = format!("{id}-error");
    html! {
        div.field.invalid[error.is_some()] {
            label for=(id) { (label) }
            input id=(id) name=(name) type=(kind) value=(value) required[required]
                  aria-invalid=[error.as_ref().map(|_| "true")]
                  aria-describedby=[error.as_ref().map(|_| err_id.as_str())];
            @if let Some(e) = &error { p.error id=(err_id) role="alert" { (e) } }
        }
    }
}

/// A labelled textarea with its error next to it.
pub fn textarea(label: &str, name: &str, value: &str, error: Option<String>) -> Markup {
    let id = format!("f-{name}");
    let err_id = format!("{id}-error");
    html! {
        div.field.invalid[error.is_some()] {
            label for=(id) { (label) }
            textarea id=(id) name=(name) rows="5"
                     aria-invalid=[error.as_ref().map(|_| "true")]
                     aria-describedby=[error.as_ref().map(|_| err_id.as_str())] { (value) }
            @if let Some(e) = &error { p.error id=(err_id) role="alert" { (e) } }
        }
    }
}

/// A labelled select of (value, label) options.
pub fn select(
    label: &str,
    name: &str,
    options: &[(String, String)],
    selected: &str,
    error: Option<String>,
) -> Markup {
    let id = format!("f-{name}");
    html! {
        div.field.invalid[error.is_some()] {
            label for=(id) { (label) }
            select id=(id) name=(name) {
                @for (v, l) in options {
                    option value=(v) selected[v == selected] { (l) }
                }
            }
            @if let Some(e) = &error { p.error role="alert" { (e) } }
        }
    }
}

/// A form-level error.
pub fn form_error(e: Option<String>) -> Markup {
    html! { @if let Some(e) = e { p.error.form-error role="alert" { (e) } } }
}

/// A one-button form posting to `action` (with a confirmation question if given).
pub fn button_form(v: &Viewer, action: &str, label: &str, confirm: Option<&str>) -> Markup {
    html! {
        form.inline method="post" action=(action) data-confirm=[confirm] {
            (csrf(v))
            button type="submit" class=[confirm.map(|_| "danger")] { (label) }
        }
    }
}

/// A timestamp for people.
pub fn when(t: &DateTime<Utc>) -> Markup {
    html! { time datetime=(t.to_rfc3339()) { (t.format("%Y-%m-%d %H:%M UTC")) } }
}

/// Bytes for people.
pub fn size(n: i64) -> String {
    let n = n.max(0);
    #[allow(clippy::cast_precision_loss)]
    let f = n as f64;
    if n >= 1 << 30 {
        format!("{:.1} GiB", f / f64::from(1u32 << 30))
    } else if n >= 1 << 20 {
        format!("{:.1} MiB", f / f64::from(1u32 << 20))
    } else if n >= 1 << 10 {
        format!("{:.1} KiB", f / 1024.0)
    } else {
        format!("{n} B")
    }
}

/// The error page (403, 404, 500, ...).
pub fn error_page(status: StatusCode, message: &str) -> Markup {
    let title = match status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::INTERNAL_SERVER_ERROR => "Something went wrong",
        s => s.canonical_reason().unwrap_or("Error"),
    };
    bare(
        title,
        None,
        html! {
            section.error-page {
                h1 { (title) }
                p { (message) }
                p.status { "Error " (status.as_u16()) }
                p { a href="/" { "Back to the console" } }
            }
        },
    )
}

/// The 404 page of a path the console does not know.
pub fn not_found() -> (StatusCode, Markup) {
    (
        StatusCode::NOT_FOUND,
        error_page(StatusCode::NOT_FOUND, "There is no such page."),
    )
}
