//! The role x endpoint matrix of the HTTP wall, over every route of the route table (so a
//! new route is covered the day it is declared), in both its path and org-less forms, on
//! both backends.
//!
//! Principals: owner, admin, member, viewer (of acme), a user of another org only, no
//! credentials, an expired session, a revoked API key, another org's API key, and acme's
//! own API keys. For each (route, principal) the wall's decision is exact: 401
//! `unauthenticated`, 403 `not_a_member`, 403 `permission_denied` (naming the permission),
//! or passing the wall (whatever the handler then says about an empty body or an unknown
//! id, it is not one of the wall's answers).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use orgwall_core::{Email, Permission, PermissionSet, SystemRole, UserId};
use orgwall_http::routes::{Access, RouteSpec};
use orgwall_store::access;
use orgwall_store::repo::{api_keys, memberships, sessions, users};
use orgwall_testkit::{both, Demo, TestDb, TestServer};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Pass,
    Unauthenticated,
    NotAMember,
    Denied(Permission),
}

struct Who {
    name: &'static str,
    token: Option<String>,
    /// Permissions in acme (None: not a member / not valid).
    perms: Option<PermissionSet>,
    /// Valid credentials of some kind (a session or a live key).
    authenticated: bool,
    /// An API key rather than a session.
    key: bool,
}

/// Routes open to every member whose handler checks a permission for some targets:
/// removing someone else needs `members:remove` (removing oneself is leaving).
fn handler_permission(spec: &RouteSpec) -> Option<Permission> {
    match (spec.method, spec.path) {
        ("DELETE", "/members/{user_id}") => Some(Permission::MEMBERS_REMOVE),
        _ => None,
    }
}

fn expect(spec: &RouteSpec, who: &Who) -> Expect {
    let access = match (spec.access, handler_permission(spec)) {
        (Access::Org(None), Some(p)) => Access::Org(Some(p)),
        (a, _) => a,
    };
    match access {
        Access::Public => Expect::Pass,
        Access::User => {
            if who.authenticated && !who.key {
                Expect::Pass
            } else {
                Expect::Unauthenticated
            }
        }
        Access::Org(p) => {
            if !who.authenticated {
                return Expect::Unauthenticated;
            }
            match (who.perms, p) {
                (None, _) => Expect::NotAMember,
                (Some(_), None) => Expect::Pass,
                (Some(have), Some(p)) if have.contains(p) => Expect::Pass,
                (Some(_), Some(p)) => Expect::Denied(p),
            }
        }
    }
}

/// Routes whose success would change the principal itself or end the world for the
/// following calls; they are exercised for the wall's refusals only.
fn destructive(spec: &RouteSpec) -> bool {
    matches!(
        (spec.method, spec.path),
        ("DELETE", "")
            | ("POST", "/v1/auth/logout")
            | ("PUT", "/v1/me/password")
            | ("POST", "/transfer-ownership")
    )
}

fn concrete(path: &str, org_in_path: bool) -> String {
    let mut out = String::new();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        if seg == "{org}" {
            assert!(org_in_path);
            out.push_str("acme");
        } else if seg.starts_with('{') {
            out.push_str(&uuid::Uuid::now_v7().to_string());
        } else {
            out.push_str(seg);
        }
    }
    out
}

async fn user_with_role(t: &TestDb, d: &Demo, email: &str, role: &str) -> UserId {
    let u = users::create(&t.db, &Email::parse(email).unwrap(), "Matrix", "x", true)
        .await
        .unwrap();
    let scope = d.alice_in_acme(&t.db).await;
    let mut tx = t.db.write(&scope).await.unwrap();
    memberships::add(&mut tx, u.id, role).await.unwrap();
    tx.commit().await.unwrap();
    u.id
}

async fn session(t: &TestDb, user: UserId) -> String {
    sessions::create(&t.db, user).await.unwrap().token
}

async fn key(t: &TestDb, scope: &access::OrgScope, role: &str) -> String {
    let mut tx = t.db.write(scope).await.unwrap();
    let (_, k) = api_keys::create(&mut tx, "matrix", role, None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    k
}

both!(every_route_every_principal, |t: TestDb| async move {
    let d = Demo::load(&t.db).await;
    let s = TestServer::start(&t.db).await;
    let admin = user_with_role(&t, &d, "admin@acme.test", "admin").await;
    let viewer = user_with_role(&t, &d, "viewer@acme.test", "viewer").await;

    let expired = session(&t, d.alice).await;
    t.owner_exec(&format!(
        "UPDATE sessions SET expires_at = {} WHERE token_hash = '{}'",
        if t.kind == orgwall_store::BackendKind::Postgres {
            "now() - interval '1 day'".to_string()
        } else {
            "0".to_string()
        },
        orgwall_store::crypto::token_hash(&expired)
    ))
    .await;
    let alice_scope = d.alice_in_acme(&t.db).await;
    let revoked = key(&t, &alice_scope, "member").await;
    {
        let mut tx = t.db.write(&alice_scope).await.unwrap();
        let keys = api_keys::list(&mut tx, 200, None).await.unwrap();
        api_keys::revoke(&mut tx, keys[0].id).await.unwrap();
        tx.commit().await.unwrap();
    }
    let globex_key = key(&t, &d.bob_in_globex(&t.db).await, "owner").await;
    let acme_viewer_key = key(&t, &alice_scope, "viewer").await;
    let acme_admin_key = key(&t, &alice_scope, "admin").await;

    let who = vec![
        Who {
            name: "owner",
            token: Some(session(&t, d.alice).await),
            perms: Some(SystemRole::Owner.permissions()),
            authenticated: true,
            key: false,
        },
        Who {
            name: "admin",
            token: Some(session(&t, admin).await),
            perms: Some(SystemRole::Admin.permissions()),
            authenticated: true,
            key: false,
        },
        Who {
            name: "member",
            token: Some(session(&t, d.carol).await),
            perms: Some(SystemRole::Member.permissions()),
            authenticated: true,
            key: false,
        },
        Who {
            name: "viewer",
            token: Some(session(&t, viewer).await),
            perms: Some(SystemRole::Viewer.permissions()),
            authenticated: true,
            key: false,
        },
        Who {
            name: "other org's user",
            token: Some(session(&t, d.bob).await),
            perms: None,
            authenticated: true,
            key: false,
        },
        Who {
            name: "no credentials",
            token: None,
            perms: None,
            authenticated: false,
            key: false,
        },
        Who {
            name: "expired session",
            token: Some(expired),
            perms: None,
            authenticated: false,
            key: false,
        },
        Who {
            name: "revoked API key",
            token: Some(revoked),
            perms: None,
            authenticated: false,
            key: true,
        },
        Who {
            name: "other org's API key",
            token: Some(globex_key),
            perms: None,
            authenticated: true,
            key: true,
        },
        Who {
            name: "acme viewer key",
            token: Some(acme_viewer_key),
            perms: Some(SystemRole::Viewer.permissions()),
            authenticated: true,
            key: true,
        },
        Who {
            name: "acme admin key",
            token: Some(acme_admin_key),
            perms: Some(SystemRole::Admin.permissions()),
            authenticated: true,
            key: true,
        },
    ];

    let mut checked = 0;
    for route in orgwall_http::routes::all() {
        let spec = route.spec;
        for path in spec.paths() {
            let org_in_path = path.contains("{org}");
            for w in &who {
                let want = expect(spec, w);
                if want == Expect::Pass && destructive(spec) {
                    continue;
                }
                let url = concrete(&path, org_in_path);
                // Org-less form: name acme in the header (an API key may also rely on its own org).
                let headers: Vec<(&str, &str)> =
                    if matches!(spec.access, Access::Org(_)) && !org_in_path {
                        vec![("x-organization-id", "acme")]
                    } else {
                        vec![]
                    };
                let body = (spec.method != "GET" && spec.method != "DELETE")
                    .then(|| serde_json::json!({}));
                let r = s
                    .call(spec.method, &url, w.token.as_deref(), &headers, body)
                    .await;
                let ctx = format!(
                    "{} {} as {}: {} {:?}",
                    spec.method, url, w.name, r.status, r.body
                );
                match want {
                    Expect::Unauthenticated => {
                        assert_eq!((r.status, r.code()), (401, "unauthenticated"), "{ctx}")
                    }
                    Expect::NotAMember => {
                        assert_eq!((r.status, r.code()), (403, "not_a_member"), "{ctx}")
                    }
                    Expect::Denied(p) => {
                        assert_eq!((r.status, r.code()), (403, "permission_denied"), "{ctx}");
                        assert_eq!(r.body["permission"], p.as_str(), "{ctx}");
                    }
                    Expect::Pass => {
                        assert_ne!(r.status, 401, "{ctx}");
                        assert!(
                            !(r.status == 403
                                && ["not_a_member", "permission_denied"].contains(&r.code())),
                            "{ctx}"
                        );
                        assert_ne!(r.status, 500, "{ctx}");
                    }
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 300, "only {checked} combinations checked");
});
