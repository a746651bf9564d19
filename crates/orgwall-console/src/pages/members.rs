//! Members (roles, remove, leave, transfer ownership), invitations (invite, revoke) and
//! roles (the system roles, custom roles with their permissions).

use super::{form_err, id};
use crate::api::{Api, Refusal};
use crate::layout::{self, csrf, form_error, input, page, select, when, FormErr};
use crate::session::{Fail, Form, OrgPage};
use crate::Console;
use axum::extract::Path;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use orgwall_core::{InvitationId, Permission, PermissionSet, RoleId, UserId};
use orgwall_store::repo::invitations::{self, Invitation};
use orgwall_store::repo::memberships::{self, Member};
use orgwall_store::repo::roles::{self, Role};
use serde_json::json;

pub(crate) fn routes() -> Router<Console> {
    Router::new()
        .route("/o/{org}/members", get(members_page))
        .route("/o/{org}/members/{user}", get(member_page))
        .route("/o/{org}/members/{user}/role", post(change_role))
        .route("/o/{org}/members/{user}/remove", post(remove))
        .route("/o/{org}/transfer-ownership", post(transfer))
        .route("/o/{org}/invitations", post(invite))
        .route("/o/{org}/invitations/{id}", get(invitation_page))
        .route("/o/{org}/invitations/{id}/revoke", post(revoke))
        .route("/o/{org}/roles", get(roles_page).post(create_role))
        .route("/o/{org}/roles/{id}", get(role_page).post(edit_role))
        .route("/o/{org}/roles/{id}/delete", post(delete_role))
}

struct Data {
    members: Vec<Member>,
    invitations: Vec<Invitation>,
    roles: Vec<Role>,
}

async fn load(p: &OrgPage) -> Result<Data, Fail> {
    let mut tx = p.read().await?;
    let members = memberships::list(&mut tx).await?;
    let invitations = invitations::list(&mut tx, 200, None).await?;
    let roles = if p.can(Permission::ROLES_READ) || p.can(Permission::MEMBERS_INVITE) {
        roles::list(&mut tx, 200, None).await?
    } else {
        Vec::new()
    };
    tx.commit().await?;
    Ok(Data {
        members,
        invitations,
        roles,
    })
}

fn role_options(roles: &[Role], owner: bool) -> Vec<(String, String)> {
    roles
        .iter()
        .filter(|r| owner || r.key != roles::OWNER)
        .map(|r| (r.key.clone(), r.name.clone()))
        .collect()
}

fn role_form(p: &OrgPage, m: &Member, roles: &[Role]) -> Markup {
    html! {
        form.inline.row method="post" action=(p.href(&format!("/members/{}/role", m.user_id))) {
            (csrf(&p.viewer))
            label.sr for={ "role-" (m.user_id) } { "Role of " (m.name) }
            select id={ "role-" (m.user_id) } name="role" {
                @for (k, l) in role_options(roles, false) {
                    option value=(k) selected[k == m.role] { (l) }
                }
            }
            button.secondary type="submit" { "Change role" }
        }
    }
}

fn members_view(p: &OrgPage, d: &Data, new: &[(String, String)], err: Option<&FormErr>) -> Markup {
    let me = p.viewer.user_id;
    let owner = p.role() == roles::OWNER;
    let pending: Vec<&Invitation> = d
        .invitations
        .iter()
        .filter(|i| i.status == "pending")
        .collect();
    let email = new
        .iter()
        .find(|(k, _)| k == "email")
        .map_or("", |(_, v)| v.as_str());
    page(
        p,
        "Members",
        "/members",
        html! {
            h1 { "Members" }
            (form_error(FormErr::general(err, "members")))
            table.stack #members {
                thead { tr { th { "Name" } th { "Email" } th { "Role" } th { "Since" } th { span.muted { "Actions" } } } }
                tbody {
                    @for m in &d.members {
                        tr data-email=(m.email) {
                            td { a href=(p.href(&format!("/members/{}", m.user_id))) { (m.name) } }
                            td { (m.email) }
                            td {
                                @if p.can(Permission::MEMBERS_UPDATE) && m.user_id != me && m.role != roles::OWNER && !d.roles.is_empty() {
                                    (role_form(p, m, &d.roles))
                                } @else {
                                    span.role { (m.role) }
                                }
                            }
                            td { (when(&m.created_at)) }
                            td {
                                @if m.user_id == me {
                                    @if m.role != roles::OWNER {
                                        (layout::button_form(&p.viewer, &p.href(&format!("/members/{}/remove", m.user_id)), "Leave organization", Some("Leave this organization?")))
                                    }
                                } @else if p.can(Permission::MEMBERS_REMOVE) && m.role != roles::OWNER {
                                    (layout::button_form(&p.viewer, &p.href(&format!("/members/{}/remove", m.user_id)), "Remove", Some("Remove this member?")))
                                }
                            }
                        }
                    }
                }
            }
            @if p.can(Permission::MEMBERS_INVITE) {
                section.card {
                    h2 { "Invite" }
                    form method="post" action=(p.href("/invitations")) {
                        (csrf(&p.viewer))
                        (form_error(FormErr::general(err, "invite")))
                        (input("Email", "email", "email", email, FormErr::on(err, "invite", "email"), true))
                        (select("Role", "role", &role_options(&d.roles, false), "member", FormErr::on(err, "invite", "role")))
                        button type="submit" { "Send invitation" }
                    }
                }
            }
            section.card {
                h2 { "Pending invitations" }
                @if pending.is_empty() { p.muted { "None." } }
                ul #invitations {
                    @for i in &pending {
                        li {
                            a href=(p.href(&format!("/invitations/{}", i.id))) { (i.email) } " "
                            span.role { (i.role) } " · expires " (when(&i.expires_at)) " "
                            @if p.can(Permission::MEMBERS_INVITE) {
                                (layout::button_form(&p.viewer, &p.href(&format!("/invitations/{}/revoke", i.id)), "Revoke", Some("Revoke this invitation?")))
                            }
                        }
                    }
                }
            }
            @if owner {
                section.card {
                    h2 { "Transfer ownership" }
                    p.muted { "The new owner must already be a member; you become an admin." }
                    form method="post" action=(p.href("/transfer-ownership")) data-confirm="Transfer ownership of this organization?" {
                        (csrf(&p.viewer))
                        (form_error(FormErr::general(err, "transfer")))
                        (select("New owner", "user_id",
                            &d.members.iter().filter(|m| m.user_id != me)
                                .map(|m| (m.user_id.to_string(), format!("{} ({})", m.name, m.email))).collect::<Vec<_>>(),
                            "", None))
                        button.danger type="submit" { "Transfer ownership" }
                    }
                }
            }
        },
    )
}

async fn members_page(p: OrgPage) -> Result<Markup, Fail> {
    p.require(Permission::MEMBERS_READ)?;
    let d = load(&p).await?;
    Ok(members_view(&p, &d, &[], None))
}

async fn member_page(p: OrgPage, Path((_, raw)): Path<(String, String)>) -> Result<Markup, Fail> {
    p.require(Permission::MEMBERS_READ)?;
    let uid: UserId = id(&raw)?;
    let mut tx = p.read().await?;
    let m = memberships::get(&mut tx, uid).await?;
    let roles = if p.can(Permission::MEMBERS_UPDATE) {
        roles::list(&mut tx, 200, None).await?
    } else {
        Vec::new()
    };
    tx.commit().await?;
    Ok(page(
        &p,
        &m.name,
        "/members",
        html! {
            p.muted { a href=(p.href("/members")) { "Members" } }
            h1 { (m.name) }
            p { (m.email) " · " span.role { (m.role) } " · member since " (when(&m.created_at)) }
            @if !roles.is_empty() && m.user_id != p.viewer.user_id && m.role != roles::OWNER {
                section.card { (role_form(&p, &m, &roles)) }
            }
        },
    ))
}

/// Sends a members change; refusals the user can act on come back on the members page.
async fn members_change(
    p: &OrgPage,
    form: &Form,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
    which: &'static str,
    fields: &[&'static str],
) -> Result<Result<crate::api::Answer, Response>, Fail> {
    let res = Api::new(&p.c, Some(&form.viewer.token), None)
        .send(method, &p.api(path), body)
        .await;
    p.c.switcher.forget(form.viewer.user_id);
    match res {
        Ok(a) => Ok(Ok(a)),
        Err(r) if answerable(&r) => {
            let d = load(p).await?;
            let err = form_err(which, fields, &r);
            Ok(Err((
                r.status,
                members_view(p, &d, &form.fields, Some(&err)),
            )
                .into_response()))
        }
        Err(r) => Err(r.into()),
    }
}

fn answerable(r: &Refusal) -> bool {
    r.status == StatusCode::UNPROCESSABLE_ENTITY
        || r.status == StatusCode::CONFLICT
        || matches!(
            r.code.as_str(),
            "quota_exceeded" | "owner_required" | "cannot_act_on_owner" | "grant_exceeds_own"
        )
}

async fn change_role(
    p: OrgPage,
    Path((_, raw)): Path<(String, String)>,
    form: Form,
) -> Result<Response, Fail> {
    let uid: UserId = id(&raw)?;
    let body = json!({ "role": form.get("role") });
    Ok(
        match members_change(
            &p,
            &form,
            Method::PATCH,
            &format!("/members/{uid}"),
            Some(body),
            "members",
            &[],
        )
        .await?
        {
            Ok(_) => Redirect::to(&p.href("/members")).into_response(),
            Err(page) => page,
        },
    )
}

async fn remove(
    p: OrgPage,
    Path((_, raw)): Path<(String, String)>,
    form: Form,
) -> Result<Response, Fail> {
    let uid: UserId = id(&raw)?;
    Ok(
        match members_change(
            &p,
            &form,
            Method::DELETE,
            &format!("/members/{uid}"),
            None,
            "members",
            &[],
        )
        .await?
        {
            Ok(_) if uid == form.viewer.user_id => Redirect::to("/").into_response(),
            Ok(_) => Redirect::to(&p.href("/members")).into_response(),
            Err(page) => page,
        },
    )
}

async fn transfer(p: OrgPage, form: Form) -> Result<Response, Fail> {
    let body = json!({ "user_id": form.get("user_id") });
    Ok(
        match members_change(
            &p,
            &form,
            Method::POST,
            "/transfer-ownership",
            Some(body),
            "transfer",
            &[],
        )
        .await?
        {
            Ok(_) => Redirect::to(&p.href("/members")).into_response(),
            Err(page) => page,
        },
    )
}

async fn invite(p: OrgPage, form: Form) -> Result<Response, Fail> {
    let body = json!({ "email": form.get("email"), "role": form.get("role") });
    Ok(
        match members_change(
            &p,
            &form,
            Method::POST,
            "/invitations",
            Some(body),
            "invite",
            &["email", "role"],
        )
        .await?
        {
            Ok(_) => Redirect::to(&p.href("/members")).into_response(),
            Err(page) => page,
        },
    )
}

async fn invitation_page(
    p: OrgPage,
    Path((_, raw)): Path<(String, String)>,
) -> Result<Markup, Fail> {
    p.require(Permission::MEMBERS_READ)?;
    let iid: InvitationId = id(&raw)?;
    let mut tx = p.read().await?;
    let i = invitations::get(&mut tx, iid).await?;
    tx.commit().await?;
    Ok(page(
        &p,
        "Invitation",
        "/members",
        html! {
            p.muted { a href=(p.href("/members")) { "Members" } }
            h1 { "Invitation for " (i.email) }
            p { span.role { (i.role) } " · " (i.status) " · sent " (when(&i.created_at)) " · expires " (when(&i.expires_at)) }
            @if i.status == "pending" && p.can(Permission::MEMBERS_INVITE) {
                (layout::button_form(&p.viewer, &p.href(&format!("/invitations/{}/revoke", i.id)), "Revoke", Some("Revoke this invitation?")))
            }
        },
    ))
}

async fn revoke(
    p: OrgPage,
    Path((_, raw)): Path<(String, String)>,
    form: Form,
) -> Result<Response, Fail> {
    let iid: InvitationId = id(&raw)?;
    Api::new(&p.c, Some(&form.viewer.token), None)
        .send(Method::DELETE, &p.api(&format!("/invitations/{iid}")), None)
        .await?;
    Ok(Redirect::to(&p.href("/members")).into_response())
}

// ---- roles ----

fn perm_boxes(held: PermissionSet, err: Option<String>) -> Markup {
    html! {
        fieldset.field.invalid[err.is_some()] {
            legend { "Permissions" }
            div.perms {
                @for def in orgwall_core::perm::catalogue() {
                    label title=(def.description) {
                        input type="checkbox" name="permissions" value=(def.permission.as_str()) checked[held.contains(def.permission)];
                        " " (def.permission.as_str())
                    }
                }
            }
            @if let Some(e) = err { p.error role="alert" { (e) } }
        }
    }
}

fn roles_view(
    p: &OrgPage,
    roles: &[Role],
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
        "Roles",
        "/roles",
        html! {
            h1 { "Roles" }
            table.stack {
                thead { tr { th { "Role" } th { "Key" } th { "Permissions" } } }
                tbody {
                    @for r in roles {
                        tr {
                            td {
                                @if r.is_system { (r.name) " " span.role { "system" } }
                                @else { a href=(p.href(&format!("/roles/{}", r.id))) { (r.name) } }
                            }
                            td { (r.key) }
                            td.muted { (r.permissions.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(", ")) }
                        }
                    }
                }
            }
            @if p.can(Permission::ROLES_MANAGE) {
                section.card {
                    h2 { "New custom role" }
                    form method="post" action=(p.href("/roles")) {
                        (csrf(&p.viewer))
                        (form_error(FormErr::general(err, "new")))
                        (input("Name", "name", "text", v("name"), FormErr::on(err, "new", "name"), true))
                        (input("Key (lowercase, e.g. support)", "key", "text", v("key"), FormErr::on(err, "new", "key"), true))
                        (perm_boxes(PermissionSet::default(), FormErr::on(err, "new", "permissions")))
                        button type="submit" { "Create role" }
                    }
                }
            }
        },
    )
}

async fn load_roles(p: &OrgPage) -> Result<Vec<Role>, Fail> {
    let mut tx = p.read().await?;
    let r = roles::list(&mut tx, 200, None).await?;
    tx.commit().await?;
    Ok(r)
}

async fn roles_page(p: OrgPage) -> Result<Markup, Fail> {
    p.require(Permission::ROLES_READ)?;
    let roles = load_roles(&p).await?;
    Ok(roles_view(&p, &roles, &[], None))
}

const ROLE_FIELDS: &[&str] = &["name", "key", "permissions"];

async fn create_role(p: OrgPage, form: Form) -> Result<Response, Fail> {
    let body = json!({ "key": form.get("key"), "name": form.get("name"), "permissions": form.all("permissions") });
    match Api::new(&p.c, Some(&form.viewer.token), None)
        .send(Method::POST, &p.api("/roles"), Some(body))
        .await
    {
        Ok(_) => Ok(Redirect::to(&p.href("/roles")).into_response()),
        Err(r) if answerable(&r) => {
            let roles = load_roles(&p).await?;
            let err = form_err("new", ROLE_FIELDS, &r);
            Ok((r.status, roles_view(&p, &roles, &form.fields, Some(&err))).into_response())
        }
        Err(r) => Err(r.into()),
    }
}

fn role_view(p: &OrgPage, r: &Role, err: Option<&FormErr>) -> Markup {
    let base = p.href(&format!("/roles/{}", r.id));
    page(
        p,
        &r.name,
        "/roles",
        html! {
            p.muted { a href=(p.href("/roles")) { "Roles" } }
            h1 { (r.name) }
            @if p.can(Permission::ROLES_MANAGE) && !r.is_system {
                section.card {
                    form method="post" action=(base) {
                        (csrf(&p.viewer))
                        (form_error(FormErr::general(err, "edit")))
                        (input("Name", "name", "text", &r.name, FormErr::on(err, "edit", "name"), true))
                        (input("Key", "key", "text", &r.key, FormErr::on(err, "edit", "key"), true))
                        (perm_boxes(r.permissions, FormErr::on(err, "edit", "permissions")))
                        button type="submit" { "Save" }
                    }
                }
                section.card {
                    (layout::button_form(&p.viewer, &format!("{base}/delete"), "Delete role", Some("Delete this role?")))
                }
            } @else {
                p { (r.permissions.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(", ")) }
            }
        },
    )
}

async fn load_role(p: &OrgPage, raw: &str) -> Result<Role, Fail> {
    let rid: RoleId = id(raw)?;
    let mut tx = p.read().await?;
    let r = roles::get(&mut tx, rid).await?;
    tx.commit().await?;
    Ok(r)
}

async fn role_page(p: OrgPage, Path((_, raw)): Path<(String, String)>) -> Result<Markup, Fail> {
    p.require(Permission::ROLES_READ)?;
    let r = load_role(&p, &raw).await?;
    Ok(role_view(&p, &r, None))
}

async fn edit_role(
    p: OrgPage,
    Path((_, raw)): Path<(String, String)>,
    form: Form,
) -> Result<Response, Fail> {
    let rid: RoleId = id(&raw)?;
    let body = json!({ "key": form.get("key"), "name": form.get("name"), "permissions": form.all("permissions") });
    let res = Api::new(&p.c, Some(&form.viewer.token), None)
        .send(Method::PATCH, &p.api(&format!("/roles/{rid}")), Some(body))
        .await;
    p.c.switcher.forget(form.viewer.user_id);
    match res {
        Ok(_) => Ok(Redirect::to(&p.href(&format!("/roles/{rid}"))).into_response()),
        Err(r) if answerable(&r) => {
            let role = load_role(&p, &raw).await?;
            let err = form_err("edit", ROLE_FIELDS, &r);
            Ok((r.status, role_view(&p, &role, Some(&err))).into_response())
        }
        Err(r) => Err(r.into()),
    }
}

async fn delete_role(
    p: OrgPage,
    Path((_, raw)): Path<(String, String)>,
    form: Form,
) -> Result<Response, Fail> {
    let rid: RoleId = id(&raw)?;
    Api::new(&p.c, Some(&form.viewer.token), None)
        .send(Method::DELETE, &p.api(&format!("/roles/{rid}")), None)
        .await?;
    Ok(Redirect::to(&p.href("/roles")).into_response())
}
