//! Sign-up, login, logout, email verification, invitation acceptance, the org list and
//! org creation, and `/` (to the active org).

use super::Peer;
use crate::api::{Api, Refusal};
use crate::layout::{bare, csrf, form_error, input, FormErr};
use crate::session::{self, same_origin, Fail, Form, Viewer};
use crate::Console;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize, Default)]
pub(crate) struct Next {
    next: Option<String>,
}

/// A safe place to go after login: a path of this site, never another origin.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control)
                && n.len() < 2048 =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `/`: the active org's tickets, else the first org's, else the org list.
pub(crate) async fn home(State(c): State<Console>, headers: HeaderMap) -> Result<Response, Fail> {
    let Some(v) = Viewer::find(&c, &headers).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let me = c.switcher.get(&c.state.db, v.user_id, None).await?;
    let target = me
        .orgs
        .iter()
        .find(|o| Some(o.org_id) == v.active_org)
        .or_else(|| me.orgs.first());
    Ok(match target {
        Some(o) => Redirect::to(&format!("/o/{}/tickets", o.slug)).into_response(),
        None => Redirect::to("/orgs").into_response(),
    })
}

fn login_form(next: &str, email: &str, err: Option<&FormErr>) -> Markup {
    bare(
        "Log in",
        None,
        html! {
            section.card.narrow {
                h1 { "Log in" }
                form method="post" action="/login" {
                    input type="hidden" name="next" value=(next);
                    (form_error(FormErr::general(err, "login")))
                    (input("Email", "email", "email", email, FormErr::on(err, "login", "email"), true))
                    (input("Password", "password", "password", "", FormErr::on(err, "login", "password"), true))
                    button type="submit" { "Log in" }
                }
                p { "No account yet? " a href={ "/signup?next=" (enc(next)) } { "Sign up" } }
            }
        },
    )
}

pub(crate) async fn login_page(Query(q): Query<Next>) -> Markup {
    login_form(&safe_next(q.next.as_deref()), "", None)
}

/// Logs in through the API (`cookie: true`) and hands its session cookie to the browser.
async fn start_session(
    c: &Console,
    peer: Peer,
    email: &str,
    password: &str,
) -> Result<String, Refusal> {
    let a = Api::new(c, None, peer.0)
        .send(
            Method::POST,
            "/v1/auth/login",
            Some(json!({ "email": email, "password": password, "cookie": true })),
        )
        .await?;
    Ok(a.headers
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned())
}

pub(crate) async fn login(
    State(c): State<Console>,
    peer: Peer,
    req: Request,
) -> Result<Response, Fail> {
    same_origin(req.headers())?;
    let f = session::fields(req).await?;
    let get = |k: &str| {
        f.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let next = safe_next(Some(&get("next")));
    match start_session(&c, peer, get("email").trim(), &get("password")).await {
        Ok(cookie) => Ok(([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()),
        Err(r) => {
            let err = FormErr {
                form: "login",
                field: None,
                message: if r.status == StatusCode::UNAUTHORIZED {
                    "Invalid email or password.".into()
                } else {
                    r.detail
                },
            };
            Ok((r.status, login_form(&next, &get("email"), Some(&err))).into_response())
        }
    }
}

fn signup_form(next: &str, email: &str, name: &str, err: Option<&FormErr>) -> Markup {
    bare(
        "Sign up",
        None,
        html! {
            section.card.narrow {
                h1 { "Create your account" }
                form method="post" action="/signup" {
                    input type="hidden" name="next" value=(next);
                    (form_error(FormErr::general(err, "signup")))
                    (input("Name", "name", "text", name, FormErr::on(err, "signup", "name"), true))
                    (input("Email", "email", "email", email, FormErr::on(err, "signup", "email"), true))
                    (input("Password (at least 10 characters)", "password", "password", "", FormErr::on(err, "signup", "password"), true))
                    button type="submit" { "Sign up" }
                }
                p { "Already have an account? " a href={ "/login?next=" (enc(next)) } { "Log in" } }
            }
        },
    )
}

pub(crate) async fn signup_page(Query(q): Query<Next>) -> Markup {
    signup_form(&safe_next(q.next.as_deref()), "", "", None)
}

pub(crate) async fn signup(
    State(c): State<Console>,
    peer: Peer,
    req: Request,
) -> Result<Response, Fail> {
    same_origin(req.headers())?;
    let f = session::fields(req).await?;
    let get = |k: &str| {
        f.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let next = safe_next(Some(&get("next")));
    let (email, name, password) = (get("email").trim().to_owned(), get("name"), get("password"));
    let res = Api::new(&c, None, peer.0)
        .send(
            Method::POST,
            "/v1/auth/signup",
            Some(json!({ "email": email, "password": password, "name": name.trim() })),
        )
        .await;
    if let Err(r) = res {
        let err = FormErr {
            form: "signup",
            field: r.field(&["email", "password", "name"]),
            message: r.detail,
        };
        return Ok((r.status, signup_form(&next, &email, &name, Some(&err))).into_response());
    }
    // The API answers a registered email exactly like a new one; logging in with the
    // password just given succeeds only for the account it names.
    match start_session(&c, peer, &email, &password).await {
        Ok(cookie) => Ok(([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()),
        Err(_) => Ok(check_email_page().into_response()),
    }
}

fn check_email_page() -> Markup {
    bare(
        "Check your email",
        None,
        html! {
            section.card.narrow {
                h1 { "Check your email" }
                p { "We sent a link to confirm your address. Then " a href="/login" { "log in" } "." }
            }
        },
    )
}

pub(crate) async fn logout(State(c): State<Console>, form: Form) -> Result<Response, Fail> {
    let _ = Api::new(&c, Some(&form.viewer.token), None)
        .send(Method::POST, "/v1/auth/logout", None)
        .await;
    c.switcher.forget(form.viewer.user_id);
    Ok((
        [(
            header::SET_COOKIE,
            orgwall_http::wall::clear_session_cookie(),
        )],
        Redirect::to("/login"),
    )
        .into_response())
}

#[derive(Deserialize, Default)]
pub(crate) struct TokenQuery {
    token: Option<String>,
}

fn token_form(title: &str, action: &str, token: &str, button: &str, extra: Markup) -> Markup {
    bare(
        title,
        None,
        html! {
            section.card.narrow {
                h1 { (title) }
                (extra)
                form method="post" action=(action) {
                    input type="hidden" name="token" value=(token);
                    button type="submit" { (button) }
                }
            }
        },
    )
}

/// The verification email's link: a button that confirms (a link preview or scanner that
/// opens the URL does not use the token up).
pub(crate) async fn verify_page(Query(q): Query<TokenQuery>) -> Markup {
    token_form(
        "Confirm your email",
        "/verify-email",
        q.token.as_deref().unwrap_or(""),
        "Confirm my email address",
        html! {},
    )
}

pub(crate) async fn verify(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
    req: Request,
) -> Result<Response, Fail> {
    same_origin(req.headers())?;
    let f = session::fields(req).await?;
    let token = f
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    let res = Api::new(&c, None, peer.0)
        .send(
            Method::POST,
            "/v1/auth/verify-email",
            Some(json!({ "token": token })),
        )
        .await;
    let signed_in = Viewer::find(&c, &headers).await?;
    if let Some(v) = &signed_in {
        c.switcher.forget(v.user_id);
    }
    let (status, title, msg) = match res {
        Ok(_) => (
            StatusCode::OK,
            "Email confirmed",
            "Your email address is confirmed.",
        ),
        Err(r) if r.code == "verification_expired" => (
            r.status,
            "Link expired",
            "This confirmation link has expired. Sign up again to get a new one.",
        ),
        Err(r) => (
            r.status,
            "Link not valid",
            "This confirmation link is not valid or was already used.",
        ),
    };
    Ok((
        status,
        bare(
            title,
            None,
            html! {
                section.card.narrow {
                    h1 { (title) }
                    p { (msg) }
                    p { a.button href=(if signed_in.is_some() { "/" } else { "/login" }) { "Continue" } }
                }
            },
        ),
    )
        .into_response())
}

/// The invitation email's link: asks who you are first, then offers to accept.
pub(crate) async fn accept_page(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Result<Response, Fail> {
    let token = q.token.unwrap_or_default();
    let here = format!("/invitations/accept?token={}", enc(&token));
    let Some(v) = Viewer::find(&c, &headers).await? else {
        return Ok(bare(
            "Accept the invitation",
            None,
            html! {
                section.card.narrow {
                    h1 { "You are invited" }
                    p { "Log in, or create an account with the address the invitation was sent to, to accept it." }
                    p.row {
                        a.button href={ "/login?next=" (enc(&here)) } { "Log in" }
                        a.button href={ "/signup?next=" (enc(&here)) } { "Sign up" }
                    }
                }
            },
        )
        .into_response());
    };
    let me = c.switcher.get(&c.state.db, v.user_id, None).await?;
    Ok(bare(
        "Accept the invitation",
        Some((&v, &me)),
        html! {
            section.card.narrow {
                h1 { "You are invited" }
                p { "Signed in as " strong { (me.user.email) } "." }
                form method="post" action="/invitations/accept" {
                    (csrf(&v))
                    input type="hidden" name="token" value=(token);
                    button type="submit" { "Accept the invitation" }
                }
            }
        },
    )
    .into_response())
}

pub(crate) async fn accept(State(c): State<Console>, form: Form) -> Result<Response, Fail> {
    let token = form.get("token");
    let res = Api::new(&c, Some(&form.viewer.token), None)
        .send(
            Method::POST,
            "/v1/invitations/accept",
            Some(json!({ "token": token })),
        )
        .await;
    c.switcher.forget(form.viewer.user_id);
    match res {
        Ok(a) => {
            let slug = a.text("/membership/slug");
            Ok(Redirect::to(&format!("/o/{slug}/tickets")).into_response())
        }
        Err(r) => {
            let me = c
                .switcher
                .get(&c.state.db, form.viewer.user_id, None)
                .await?;
            let reason = match r.code.as_str() {
                "invitation_expired" => "This invitation has expired. Ask for a new one.".to_owned(),
                "invitation_email_mismatch" => format!(
                    "This invitation was sent to another email address; you are signed in as {}. Log out and sign in with the invited address.",
                    me.user.email
                ),
                "email_unverified" => "Confirm your email address first (use the link we emailed you), then open the invitation link again.".to_owned(),
                "already_member" => "You are already a member of this organization.".to_owned(),
                "invitation_invalid" => "This invitation is not valid: it was already used or revoked, or the link is incomplete.".to_owned(),
                _ => r.detail.clone(),
            };
            Ok((
                r.status,
                bare(
                    "Invitation not accepted",
                    Some((&form.viewer, &me)),
                    html! {
                        section.card.narrow {
                            h1 { "The invitation could not be accepted" }
                            p.error #reason data-code=(r.code) { (reason) }
                            p { a href="/" { "Back to the console" } }
                        }
                    },
                ),
            )
                .into_response())
        }
    }
}

fn orgs_page(
    v: &Viewer,
    me: &crate::switcher::Me,
    name: &str,
    slug: &str,
    err: Option<&FormErr>,
) -> Markup {
    bare(
        "Organizations",
        Some((v, me)),
        html! {
            h1 { "Your organizations" }
            @if me.orgs.is_empty() {
                p.muted { "You are not a member of any organization yet. Create one, or accept an invitation from its email link." }
            } @else {
                section.card {
                    ul {
                        @for o in &me.orgs {
                            li { a href={ "/o/" (o.slug) "/tickets" } { (o.name) } " " span.role { (o.role) } }
                        }
                    }
                }
            }
            @if me.user.email_verified_at.is_none() {
                p.notice { "Your email address is not confirmed yet: use the link we emailed you (accepting invitations needs it)." }
            }
            section.card {
                h2 { "Create an organization" }
                form method="post" action="/orgs" {
                    (csrf(v))
                    (form_error(FormErr::general(err, "org")))
                    (input("Name", "name", "text", name, FormErr::on(err, "org", "name"), true))
                    (input("Slug (lowercase letters, digits and dashes; used in URLs)", "slug", "text", slug, FormErr::on(err, "org", "slug"), true))
                    button type="submit" { "Create organization" }
                }
            }
        },
    )
}

pub(crate) async fn orgs(State(c): State<Console>, v: Viewer) -> Result<Markup, Fail> {
    let me = c.switcher.get(&c.state.db, v.user_id, None).await?;
    Ok(orgs_page(&v, &me, "", "", None))
}

pub(crate) async fn create_org(State(c): State<Console>, form: Form) -> Result<Response, Fail> {
    let (name, slug) = (form.get("name"), form.get("slug"));
    let res = Api::new(&c, Some(&form.viewer.token), None)
        .send(
            Method::POST,
            "/v1/orgs",
            Some(json!({ "name": name, "slug": slug })),
        )
        .await;
    c.switcher.forget(form.viewer.user_id);
    match res {
        Ok(a) => {
            let slug = a.text("/slug");
            Ok(Redirect::to(&format!("/o/{slug}/tickets")).into_response())
        }
        Err(r) => {
            let me = c
                .switcher
                .get(&c.state.db, form.viewer.user_id, None)
                .await?;
            let field = if r.code == "slug_taken" {
                Some("slug")
            } else {
                r.field(&["name", "slug"])
            };
            let err = FormErr {
                form: "org",
                field,
                message: r.detail,
            };
            Ok((
                r.status,
                orgs_page(&form.viewer, &me, &name, &slug, Some(&err)),
            )
                .into_response())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn after_login_only_paths_of_this_site() {
        for ok in ["/", "/o/acme/tickets", "/invitations/accept?token=owi_1"] {
            assert_eq!(safe_next(Some(ok)), ok);
        }
        for bad in [
            "https://evil.test/",
            "//evil.test/x",
            "/\\evil.test",
            "javascript:alert(1)",
            "",
            "/a\nb",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
