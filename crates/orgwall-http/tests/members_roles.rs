//! Members, roles and the permission catalogue over HTTP, on both backends: the granting
//! rules, owners, the last owner (also under concurrency), system and in-use roles,
//! pagination, bad input, and the audit trail of every change.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use orgwall_core::{Email, UserId};
use orgwall_store::repo::{audit, memberships, sessions, users};
use orgwall_testkit::{both, Demo, Resp, TestDb, TestServer};
use serde_json::{json, Value};

/// The demo world over HTTP, with a session for each demo user.
struct World {
    d: Demo,
    s: TestServer,
    alice: String,
    carol: String,
    bob: String,
}

async fn token(t: &TestDb, user: UserId) -> String {
    sessions::create(&t.db, user).await.unwrap().token
}

async fn world(t: &TestDb) -> World {
    let d = Demo::load(&t.db).await;
    let s = TestServer::start(&t.db).await;
    World {
        alice: token(t, d.alice).await,
        carol: token(t, d.carol).await,
        bob: token(t, d.bob).await,
        d,
        s,
    }
}

/// A new user with `role` in Acme (added by alice) and a session.
async fn add_member(t: &TestDb, w: &World, email: &str, role: &str) -> (UserId, String) {
    let e = Email::parse(email).unwrap();
    let u = users::create(&t.db, &e, email, "not-a-real-hash", true)
        .await
        .unwrap()
        .id;
    let scope = w.d.alice_in_acme(&t.db).await;
    let mut tx = t.db.write(&scope).await.unwrap();
    memberships::add(&mut tx, u, role).await.unwrap();
    tx.commit().await.unwrap();
    (u, token(t, u).await)
}

impl World {
    async fn call(&self, method: &str, path: &str, tok: &str, body: Option<Value>) -> Resp {
        self.s.call(method, path, Some(tok), &[], body).await
    }

    async fn set_role(&self, tok: &str, user: UserId, role: &str) -> Resp {
        self.call(
            "PATCH",
            &format!("/v1/orgs/acme/members/{user}"),
            tok,
            Some(json!({ "role": role })),
        )
        .await
    }

    async fn remove(&self, tok: &str, user: UserId) -> Resp {
        self.call(
            "DELETE",
            &format!("/v1/orgs/acme/members/{user}"),
            tok,
            None,
        )
        .await
    }

    /// Acme's members as (user id, role key), from alice's point of view.
    async fn acme_roles(&self) -> Vec<(String, String)> {
        let r = self
            .call("GET", "/v1/orgs/acme/members?limit=200", &self.alice, None)
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["user_id"].as_str().unwrap().to_owned(),
                    m["role"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    async fn acme_owners(&self) -> usize {
        self.acme_roles()
            .await
            .iter()
            .filter(|(_, r)| r == "owner")
            .count()
    }
}

/// Acme's audit events (newest first) as (action, target id, detail).
async fn acme_audit(t: &TestDb, d: &Demo) -> Vec<(String, Option<String>, Value)> {
    let scope = orgwall_store::access::verify_member(&t.db, d.alice, d.acme)
        .await
        .unwrap();
    let mut tx = t.db.read(&scope).await.unwrap();
    let events = audit::list(&mut tx, 200).await.unwrap();
    tx.commit().await.unwrap();
    events
        .into_iter()
        .map(|e| (e.action, e.target_id.map(|u| u.to_string()), e.detail))
        .collect()
}

fn assert_problem(r: &Resp, status: u16, code: &str) {
    assert_eq!((r.status, r.code()), (status, code), "{:?}", r.body);
    assert_eq!(
        r.headers["content-type"], "application/problem+json",
        "{:?}",
        r.body
    );
}

both!(permission_catalogue, |t: TestDb| async move {
    let s = TestServer::start(&t.db).await;
    let r = s.call("GET", "/v1/permissions", None, &[], None).await;
    assert_eq!(r.status, 200);
    let names: Vec<&str> = r.body["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 25);
    for p in [
        "org:read",
        "org:delete",
        "members:remove",
        "roles:manage",
        "usage:read",
    ] {
        assert!(names.contains(&p), "{p}");
    }
    let roles = r.body["system_roles"].as_array().unwrap();
    let keys: Vec<&str> = roles.iter().map(|r| r["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["owner", "admin", "member", "viewer"]);
    assert_eq!(roles[0]["permissions"].as_array().unwrap().len(), 25);
    assert_eq!(roles[1]["permissions"].as_array().unwrap().len(), 24);
    assert!(!roles[1]["permissions"]
        .as_array()
        .unwrap()
        .contains(&json!("org:delete")));
    assert!(!roles[3]["permissions"]
        .as_array()
        .unwrap()
        .contains(&json!("tickets:write")));
});

both!(members_list_paginates, |t: TestDb| async move {
    let w = world(&t).await;
    for i in 0..4 {
        add_member(&t, &w, &format!("user{i}@acme.test"), "viewer").await;
    }
    let all = w.acme_roles().await;
    assert_eq!(all.len(), 6);
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted, "ordered by user id");

    // Page through with limit 4: 4 + 2, the same members, no duplicates.
    let r = w
        .call("GET", "/v1/orgs/acme/members?limit=4", &w.alice, None)
        .await;
    assert_eq!(r.status, 200);
    let first = r.body["items"].as_array().unwrap().clone();
    assert_eq!(first.len(), 4);
    let m = &first[0];
    for field in ["user_id", "email", "name", "role", "role_id", "created_at"] {
        assert!(!m[field].is_null(), "{field} in {m}");
    }
    let cursor = r.body["next_cursor"].as_str().unwrap().to_owned();
    let r = w
        .call(
            "GET",
            &format!("/v1/orgs/acme/members?limit=4&cursor={cursor}"),
            &w.alice,
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    let second = r.body["items"].as_array().unwrap().clone();
    assert_eq!(second.len(), 2);
    assert!(r.body["next_cursor"].is_null());
    let ids: Vec<String> = first
        .iter()
        .chain(&second)
        .map(|m| m["user_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, all.iter().map(|(u, _)| u.clone()).collect::<Vec<_>>());

    // The default page holds everyone; the org-less form answers the same.
    let r = w.call("GET", "/v1/orgs/acme/members", &w.alice, None).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 6);
    let orgless =
        w.s.call(
            "GET",
            "/v1/members",
            Some(&w.alice),
            &[("x-organization-id", "acme")],
            None,
        )
        .await;
    assert_eq!(orgless.body, r.body);

    // Bad limits and cursors: 422 problems.
    for q in [
        "limit=0",
        "limit=201",
        "limit=-1",
        "limit=abc",
        "cursor=garbled!!",
        "cursor=djE6bm90LWEtdXVpZA",
    ] {
        let r = w
            .call("GET", &format!("/v1/orgs/acme/members?{q}"), &w.alice, None)
            .await;
        assert_problem(&r, 422, "validation_failed");
    }

    // Globex's owner sees none of it; a viewer may list (members:read).
    let r = w.call("GET", "/v1/orgs/acme/members", &w.bob, None).await;
    assert_problem(&r, 403, "not_a_member");
    let r = w.call("GET", "/v1/orgs/acme/members", &w.carol, None).await;
    assert_eq!(r.status, 200);
    // Globex's list is Globex's own.
    let r = w.call("GET", "/v1/orgs/globex/members", &w.bob, None).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
});

both!(role_change_rules, |t: TestDb| async move {
    let w = world(&t).await;
    let d = &w.d;
    let (dave, dave_t) = add_member(&t, &w, "dave@acme.test", "admin").await;
    let (erin, _) = add_member(&t, &w, "erin@acme.test", "member").await;

    // A member lacks members:update.
    let r = w.set_role(&w.carol, erin, "viewer").await;
    assert_problem(&r, 403, "permission_denied");
    assert_eq!(r.body["permission"], "members:update");

    // An admin demotes a member, by key and then by id.
    let r = w.set_role(&dave_t, erin, "viewer").await;
    assert_eq!(
        (r.status, r.body["role"].as_str()),
        (200, Some("viewer")),
        "{:?}",
        r.body
    );
    let roles = w.call("GET", "/v1/orgs/acme/roles", &w.alice, None).await;
    let member_role_id = roles.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "member")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = w.set_role(&dave_t, erin, &member_role_id).await;
    assert_eq!((r.status, r.body["role"].as_str()), (200, Some("member")));
    assert_eq!(r.body["role_id"], member_role_id.as_str());

    // Only an owner makes an owner; an admin cannot act on an owner.
    let r = w.set_role(&dave_t, erin, "owner").await;
    assert_problem(&r, 403, "cannot_act_on_owner");
    let r = w.set_role(&dave_t, d.alice, "admin").await;
    assert_problem(&r, 403, "cannot_act_on_owner");
    let r = w.remove(&dave_t, d.alice).await;
    assert_problem(&r, 403, "cannot_act_on_owner");

    // Nobody grants what they do not hold: a custom role with org:delete is beyond an admin.
    let r = w
        .call(
            "POST",
            "/v1/orgs/acme/roles",
            &w.alice,
            Some(json!({"key": "deleter", "name": "Deleter", "permissions": ["org:read", "org:delete"]})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = w.set_role(&dave_t, erin, "deleter").await;
    assert_problem(&r, 403, "grant_exceeds_own");
    assert!(r.body["detail"].as_str().unwrap().contains("org:delete"));
    // A narrow manager (members:read + members:update) cannot hand out the member role.
    let r = w
        .call(
            "POST",
            "/v1/orgs/acme/roles",
            &w.alice,
            Some(json!({"key": "people-ops", "name": "People ops", "permissions": ["members:read", "members:update"]})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(
        w.set_role(&w.alice, d.carol, "people-ops").await.status,
        200
    );
    let r = w.set_role(&w.carol, erin, "member").await;
    assert_problem(&r, 403, "grant_exceeds_own");
    let detail = r.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("tickets:write") && detail.contains("org:read"),
        "{detail}"
    );
    assert!(!detail.contains("members:read"), "{detail}");
    // ...but may assign a role inside its own permissions.
    assert_eq!(w.set_role(&w.carol, erin, "people-ops").await.status, 200);

    // The owner makes erin an owner; now erin is beyond dave too.
    let r = w.set_role(&w.alice, erin, "owner").await;
    assert_eq!((r.status, r.body["role"].as_str()), (200, Some("owner")));
    let r = w.set_role(&dave_t, erin, "viewer").await;
    assert_problem(&r, 403, "cannot_act_on_owner");

    // A demoted admin's very next request lacks the permission.
    assert_eq!(w.set_role(&w.alice, dave, "viewer").await.status, 200);
    let r = w.set_role(&dave_t, d.carol, "viewer").await;
    assert_problem(&r, 403, "permission_denied");

    // Every change is in the audit log, with from and to.
    let log = acme_audit(&t, d).await;
    let changes: Vec<(&str, &str)> = log
        .iter()
        .filter(|(a, _, _)| a == "member.role_changed")
        .map(|(_, _, det)| (det["from"].as_str().unwrap(), det["to"].as_str().unwrap()))
        .collect();
    assert_eq!(
        changes,
        [
            ("admin", "viewer"),
            ("people-ops", "owner"),
            ("member", "people-ops"),
            ("member", "people-ops"),
            ("viewer", "member"),
            ("member", "viewer"),
        ]
    );
    let dave_s = dave.to_string();
    assert!(log
        .iter()
        .any(|(a, target, _)| a == "member.role_changed" && target.as_deref() == Some(&dave_s)));
});

both!(member_input_is_checked, |t: TestDb| async move {
    let w = world(&t).await;
    let d = &w.d;
    let before_roles = w.acme_roles().await;
    let before_audit = acme_audit(&t, d).await.len();
    // Malformed, unknown and other orgs' user ids: 404.
    for id in [
        "not-a-uuid".to_owned(),
        "00000000-0000-0000-0000-000000000000".to_owned(),
        uuid::Uuid::now_v7().to_string(),
        d.bob.to_string(),
    ] {
        let path = format!("/v1/orgs/acme/members/{id}");
        let r = w
            .call("PATCH", &path, &w.alice, Some(json!({"role": "viewer"})))
            .await;
        assert_problem(&r, 404, "not_found");
        let r = w.call("DELETE", &path, &w.alice, None).await;
        assert_problem(&r, 404, "not_found");
        let r = w.call("GET", &path, &w.alice, None).await;
        assert_problem(&r, 404, "not_found");
    }
    let carol = format!("/v1/orgs/acme/members/{}", d.carol);
    // Unknown roles (by key, by id, another org's role), unknown fields, wrong types: 422.
    let globex_scope = d.bob_in_globex(&t.db).await;
    let mut tx = t.db.read(&globex_scope).await.unwrap();
    let globex_admin = memberships::role_id(&mut tx, "admin").await.unwrap();
    tx.commit().await.unwrap();
    for body in [
        json!({"role": "superuser"}),
        json!({"role": uuid::Uuid::now_v7().to_string()}),
        json!({"role": globex_admin.to_string()}),
        json!({"role": "viewer", "org_id": d.globex}),
        json!({"role": "viewer", "user_id": d.alice}),
        json!({"role": 3}),
        json!({}),
    ] {
        let r = w.call("PATCH", &carol, &w.alice, Some(body.clone())).await;
        assert_problem(&r, 422, "validation_failed");
    }
    // Nothing changed, nothing was recorded.
    assert_eq!(w.acme_roles().await, before_roles);
    assert_eq!(acme_audit(&t, d).await.len(), before_audit);
    // Globex is untouched by anything done in Acme.
    let r = w.call("GET", "/v1/orgs/globex/members", &w.bob, None).await;
    assert!(r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["user_id"] == d.carol.to_string().as_str() && m["role"] == "member"));
});

both!(last_owner_is_kept, |t: TestDb| async move {
    let w = world(&t).await;
    let d = &w.d;
    // The only owner can neither demote themselves nor leave.
    let r = w.set_role(&w.alice, d.alice, "admin").await;
    assert_problem(&r, 409, "last_owner");
    let r = w.remove(&w.alice, d.alice).await;
    assert_problem(&r, 409, "last_owner");
    assert_eq!(w.acme_owners().await, 1);

    // With a second owner, an owner may step down, and may leave.
    let (dave, dave_t) = add_member(&t, &w, "dave@acme.test", "member").await;
    assert_eq!(w.set_role(&w.alice, dave, "owner").await.status, 200);
    let r = w.set_role(&w.alice, d.alice, "admin").await;
    assert_eq!((r.status, r.body["role"].as_str()), (200, Some("admin")));
    // Now dave is the last owner; alice (admin) cannot touch him, and he cannot go.
    let r = w.set_role(&w.alice, dave, "admin").await;
    assert_problem(&r, 403, "cannot_act_on_owner");
    let r = w.set_role(&dave_t, dave, "member").await;
    assert_problem(&r, 409, "last_owner");
    let r = w.remove(&dave_t, dave).await;
    assert_problem(&r, 409, "last_owner");
    // Dave restores alice; alice leaves (membership alone suffices to leave).
    assert_eq!(w.set_role(&dave_t, d.alice, "owner").await.status, 200);
    let r = w.remove(&w.alice, d.alice).await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let r = w.call("GET", "/v1/orgs/acme", &w.alice, None).await;
    assert_problem(&r, 403, "not_a_member");
    assert_eq!(
        w.call("GET", "/v1/orgs/acme/members", &dave_t, None)
            .await
            .status,
        200
    );

    let scope = orgwall_store::access::verify_member(&t.db, dave, d.acme)
        .await
        .unwrap();
    let mut tx = t.db.read(&scope).await.unwrap();
    let log = audit::list(&mut tx, 50).await.unwrap();
    tx.commit().await.unwrap();
    let left = log.iter().find(|e| e.action == "member.left").unwrap();
    assert_eq!(left.target_id, Some(d.alice.uuid()));
    assert_eq!(left.actor_id, Some(d.alice.uuid()));
    assert_eq!(left.detail["role"], "owner");
});

both!(
    concurrent_owner_demotion_keeps_an_owner,
    |t: TestDb| async move {
        let w = world(&t).await;
        let d = &w.d;
        let (dave, dave_t) = add_member(&t, &w, "dave@acme.test", "member").await;
        for round in 0..4 {
            // Two owners again.
            let owners = w.acme_owners().await;
            if owners < 2 {
                let roles = w.acme_roles().await;
                let (owner_id, _) = roles.iter().find(|(_, r)| r == "owner").unwrap();
                let (owner, other) = if *owner_id == d.alice.to_string() {
                    (&w.alice, dave)
                } else {
                    (&dave_t, d.alice)
                };
                assert_eq!(w.set_role(owner, other, "owner").await.status, 200);
            }
            assert_eq!(w.acme_owners().await, 2);
            // Each demotes the other at the same time.
            let (a, b) = tokio::join!(
                w.set_role(&w.alice, dave, "admin"),
                w.set_role(&dave_t, d.alice, "admin"),
            );
            let ok = [&a, &b].iter().filter(|r| r.status == 200).count();
            // The loser is refused whichever way the race falls: the last-owner rule, the
            // owner rule, or (its scope read while it was still an owner, the other
            // demotion committed before its first statement) the access check in its
            // first flight, which verifies it again as the admin it now is: 403
            // permission_denied (revocation takes effect on the very next statement).
            for r in [&a, &b] {
                assert!(
                    r.status == 200
                        || (r.status, r.code()) == (409, "last_owner")
                        || (r.status, r.code()) == (403, "cannot_act_on_owner")
                        || (r.status, r.code()) == (403, "permission_denied"),
                    "round {round}: {:?}",
                    r.body
                );
            }
            assert_eq!(ok, 1, "round {round}: exactly one demotion lands");
            assert_eq!(w.acme_owners().await, 1, "round {round}");
        }
        // Both owners leaving at once: exactly one goes.
        let roles = w.acme_roles().await;
        let (owner_id, _) = roles.iter().find(|(_, r)| r == "owner").unwrap();
        if *owner_id == d.alice.to_string() {
            assert_eq!(w.set_role(&w.alice, dave, "owner").await.status, 200);
        } else {
            assert_eq!(w.set_role(&dave_t, d.alice, "owner").await.status, 200);
        }
        let (a, b) = tokio::join!(w.remove(&w.alice, d.alice), w.remove(&dave_t, dave));
        let mut statuses = [a.status, b.status];
        statuses.sort_unstable();
        assert_eq!(statuses, [204, 409], "{:?} {:?}", a.body, b.body);
        let remaining = if a.status == 204 { &dave_t } else { &w.alice };
        let r = w
            .call("GET", "/v1/orgs/acme/members", remaining, None)
            .await;
        let owners = r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "owner")
            .count();
        assert_eq!(owners, 1);
    }
);

both!(removal_takes_effect_at_once, |t: TestDb| async move {
    let w = world(&t).await;
    let d = &w.d;
    let assigned =
        |org: orgwall_core::OrgId| format!("org_id = '{org}' AND assignee_id = '{}'", d.carol);
    assert_eq!(t.owner_count("tickets", &assigned(d.acme)).await, 2);

    // A member may not remove others.
    let r = w.remove(&w.carol, d.alice).await;
    assert_problem(&r, 403, "permission_denied");
    assert_eq!(r.body["permission"], "members:remove");

    // Carol works, then is removed; her very next request is refused.
    assert_eq!(
        w.call("GET", "/v1/orgs/acme/members", &w.carol, None)
            .await
            .status,
        200
    );
    let r = w.remove(&w.alice, d.carol).await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let r = w.call("GET", "/v1/orgs/acme/members", &w.carol, None).await;
    assert_problem(&r, 403, "not_a_member");
    let r =
        w.s.call(
            "GET",
            "/v1/members",
            Some(&w.carol),
            &[("x-organization-id", &d.acme.to_string())],
            None,
        )
        .await;
    assert_problem(&r, 403, "not_a_member");
    // Removing again: she is not found.
    let r = w.remove(&w.alice, d.carol).await;
    assert_problem(&r, 404, "not_found");

    // Her Acme tickets were unassigned in the same transaction; Globex is untouched.
    assert_eq!(t.owner_count("tickets", &assigned(d.acme)).await, 0);
    assert_eq!(t.owner_count("tickets", &assigned(d.globex)).await, 2);
    assert_eq!(
        w.call("GET", "/v1/orgs/globex/members", &w.carol, None)
            .await
            .status,
        200
    );
    let history = t
        .owner_count(
            "ticket_events",
            &format!(
                "org_id = '{}' AND field = 'assignee' AND from_value = '{}' AND to_value IS NULL",
                d.acme, d.carol
            ),
        )
        .await;
    assert_eq!(history, 2);

    let log = acme_audit(&t, d).await;
    let (_, target, detail) = log.iter().find(|(a, _, _)| a == "member.removed").unwrap();
    assert_eq!(target.as_deref(), Some(d.carol.to_string().as_str()));
    assert_eq!(detail["unassigned_tickets"], 2);
    assert_eq!(detail["role"], "member");

    // Leaving needs no members:remove: carol leaves Globex herself.
    let r = w
        .call(
            "DELETE",
            &format!("/v1/orgs/globex/members/{}", d.carol),
            &w.carol,
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert_eq!(t.owner_count("tickets", &assigned(d.globex)).await, 0);
    let r = w.call("GET", "/v1/orgs/globex", &w.carol, None).await;
    assert_problem(&r, 403, "not_a_member");
});

both!(custom_role_round_trip, |t: TestDb| async move {
    let w = world(&t).await;
    let d = &w.d;
    let (_, dave_t) = add_member(&t, &w, "dave@acme.test", "admin").await;

    // The four system roles are listed first.
    let r = w.call("GET", "/v1/orgs/acme/roles", &w.carol, None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let keys: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["owner", "admin", "member", "viewer"]);
    assert!(r.body["next_cursor"].is_null());
    let owner_id = r.body["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["items"][0]["is_system"], true);

    // Create: 201; a member cannot (roles:manage); an admin cannot exceed its own.
    let triage = json!({"key": "triage", "name": "Triage", "permissions": ["tickets:read", "tickets:write", "org:read"]});
    let r = w
        .call(
            "POST",
            "/v1/orgs/acme/roles",
            &w.carol,
            Some(triage.clone()),
        )
        .await;
    assert_problem(&r, 403, "permission_denied");
    let r = w
        .call(
            "POST",
            "/v1/orgs/acme/roles",
            &dave_t,
            Some(json!({"key": "nuker", "name": "Nuker", "permissions": ["org:delete"]})),
        )
        .await;
    assert_problem(&r, 403, "grant_exceeds_own");
    assert!(r.body["detail"].as_str().unwrap().contains("org:delete"));
    let r = w
        .call(
            "POST",
            "/v1/orgs/acme/roles",
            &w.alice,
            Some(triage.clone()),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["key"], "triage");
    assert_eq!(r.body["is_system"], false);
    assert_eq!(
        r.body["permissions"],
        json!(["org:read", "tickets:read", "tickets:write"])
    );
    let id = r.body["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/orgs/acme/roles/{id}");
    let r = w
        .call(
            "POST",
            "/v1/orgs/acme/roles",
            &w.alice,
            Some(triage.clone()),
        )
        .await;
    assert_problem(&r, 409, "role_key_taken");
    let r = w.call("GET", &path, &w.carol, None).await;
    assert_eq!((r.status, r.body["name"].as_str()), (200, Some("Triage")));
    // Another org cannot see it, and it is not in Globex.
    let r = w
        .call("GET", &format!("/v1/orgs/globex/roles/{id}"), &w.bob, None)
        .await;
    assert_problem(&r, 404, "not_found");
    let r = w.call("GET", &path, &w.bob, None).await;
    assert_problem(&r, 403, "not_a_member");

    // Carol gets it: without members:read she can no longer list members, on her next request.
    assert_eq!(w.set_role(&w.alice, d.carol, "triage").await.status, 200);
    let r = w.call("GET", "/v1/orgs/acme/members", &w.carol, None).await;
    assert_problem(&r, 403, "permission_denied");
    // Editing the role takes effect on her next request too.
    let r = w
        .call(
            "PATCH",
            &path,
            &w.alice,
            Some(json!({"name": "Triage team", "permissions": ["org:read", "tickets:read", "members:read"]})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["name"], "Triage team");
    assert_eq!(r.body["key"], "triage");
    assert_eq!(
        w.call("GET", "/v1/orgs/acme/members", &w.carol, None)
            .await
            .status,
        200
    );
    // An admin cannot add what it lacks; renaming alone is fine.
    let r = w
        .call(
            "PATCH",
            &path,
            &dave_t,
            Some(json!({"permissions": ["org:delete"]})),
        )
        .await;
    assert_problem(&r, 403, "grant_exceeds_own");
    let r = w
        .call("PATCH", &path, &dave_t, Some(json!({"key": "triage-team"})))
        .await;
    assert_eq!(
        (r.status, r.body["key"].as_str()),
        (200, Some("triage-team"))
    );

    // In use: 409; once nobody holds it, deleted; then gone.
    let r = w.call("DELETE", &path, &w.alice, None).await;
    assert_problem(&r, 409, "role_in_use");
    assert_eq!(w.set_role(&w.alice, d.carol, "member").await.status, 200);
    let r = w.call("DELETE", &path, &w.carol, None).await;
    assert_problem(&r, 403, "permission_denied");
    let r = w.call("DELETE", &path, &w.alice, None).await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let r = w.call("GET", &path, &w.alice, None).await;
    assert_problem(&r, 404, "not_found");
    let r = w.call("DELETE", &path, &w.alice, None).await;
    assert_problem(&r, 404, "not_found");

    // System roles are immutable, even for the owner.
    let owner_path = format!("/v1/orgs/acme/roles/{owner_id}");
    let r = w
        .call(
            "PATCH",
            &owner_path,
            &w.alice,
            Some(json!({"name": "Boss"})),
        )
        .await;
    assert_problem(&r, 403, "system_role_immutable");
    let r = w.call("DELETE", &owner_path, &w.alice, None).await;
    assert_problem(&r, 403, "system_role_immutable");

    // The audit trail: created, updated (twice), deleted.
    let log = acme_audit(&t, d).await;
    let role_events: Vec<&str> = log
        .iter()
        .filter(|(a, target, _)| a.starts_with("role.") && target.as_deref() == Some(id.as_str()))
        .map(|(a, _, _)| a.as_str())
        .collect();
    assert_eq!(
        role_events,
        [
            "role.deleted",
            "role.updated",
            "role.updated",
            "role.created"
        ]
    );
    let (_, _, detail) = log.iter().find(|(a, _, _)| a == "role.created").unwrap();
    assert_eq!(detail["key"], "triage");
});

both!(role_input_is_checked, |t: TestDb| async move {
    let w = world(&t).await;
    let d = &w.d;
    let before = acme_audit(&t, d).await.len();
    for body in [
        json!({"key": "owner", "name": "Mine", "permissions": []}),
        json!({"key": "Admin2", "name": "X", "permissions": []}),
        json!({"key": "x", "name": "X", "permissions": []}),
        json!({"key": "9lives", "name": "X", "permissions": []}),
        json!({"key": "a".repeat(41), "name": "X", "permissions": []}),
        json!({"key": "ok-key", "name": "", "permissions": []}),
        json!({"key": "ok-key", "name": "X", "permissions": ["tickets:admin"]}),
        json!({"key": "ok-key", "name": "X", "permissions": ["TICKETS:READ"]}),
        json!({"key": "ok-key", "name": "X", "permissions": "tickets:read"}),
        json!({"key": "ok-key", "name": "X", "permissions": [], "org_id": d.globex}),
        json!({"key": "ok-key", "name": "X", "permissions": [], "is_system": true}),
        json!({"key": "ok-key", "name": "X"}),
    ] {
        let r = w
            .call("POST", "/v1/orgs/acme/roles", &w.alice, Some(body.clone()))
            .await;
        assert_problem(&r, 422, "validation_failed");
    }
    let r = w
        .call(
            "POST",
            "/v1/orgs/acme/roles",
            &w.alice,
            Some(json!({"key": "ok-key", "name": "Ok", "permissions": []})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/orgs/acme/roles/{id}");
    for body in [
        json!({"permissions": ["nope:nope"]}),
        json!({"key": "viewer"}),
        json!({"name": "n".repeat(101)}),
        json!({"id": uuid::Uuid::now_v7()}),
    ] {
        let r = w.call("PATCH", &path, &w.alice, Some(body.clone())).await;
        assert_problem(&r, 422, "validation_failed");
    }
    for bad in ["not-a-uuid", "00000000-0000-0000-0000-000000000000"] {
        let p = format!("/v1/orgs/acme/roles/{bad}");
        assert_problem(&w.call("GET", &p, &w.alice, None).await, 404, "not_found");
        assert_problem(
            &w.call("PATCH", &p, &w.alice, Some(json!({"name": "x"})))
                .await,
            404,
            "not_found",
        );
        assert_problem(
            &w.call("DELETE", &p, &w.alice, None).await,
            404,
            "not_found",
        );
    }
    // Another org's role id is not found here, and is untouched.
    let globex_scope = d.bob_in_globex(&t.db).await;
    let mut tx = t.db.read(&globex_scope).await.unwrap();
    let globex_member = memberships::role_id(&mut tx, "member").await.unwrap();
    tx.commit().await.unwrap();
    let p = format!("/v1/orgs/acme/roles/{globex_member}");
    assert_problem(
        &w.call("DELETE", &p, &w.alice, None).await,
        404,
        "not_found",
    );
    for q in ["limit=0", "limit=201", "cursor=%%%"] {
        let r = w
            .call("GET", &format!("/v1/orgs/acme/roles?{q}"), &w.alice, None)
            .await;
        assert_problem(&r, 422, "validation_failed");
    }
    // Only the one good create was recorded; the role is unchanged.
    assert_eq!(acme_audit(&t, d).await.len(), before + 1);
    let r = w.call("GET", &path, &w.alice, None).await;
    assert_eq!((r.status, r.body["key"].as_str()), (200, Some("ok-key")));
    assert_eq!(r.body["permissions"], json!([]));
    let r = w.call("GET", "/v1/orgs/globex/roles", &w.bob, None).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 4);
});

both!(roles_paginate, |t: TestDb| async move {
    let w = world(&t).await;
    for i in 0..5 {
        let r = w
            .call(
                "POST",
                "/v1/orgs/acme/roles",
                &w.alice,
                Some(json!({"key": format!("role{i}"), "name": format!("Role {i}"), "permissions": ["org:read"]})),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("?limit=3&cursor={c}"),
            None => "?limit=3".into(),
        };
        let r = w
            .call("GET", &format!("/v1/orgs/acme/roles{q}"), &w.alice, None)
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        keys.extend(
            r.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["key"].as_str().unwrap().to_owned()),
        );
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        keys,
        ["owner", "admin", "member", "viewer", "role0", "role1", "role2", "role3", "role4"]
    );
});

both!(roles_held_by_invitations_and_keys, |t: TestDb| async move {
    let w = world(&t).await;
    let d = &w.d;
    let mut ids = Vec::new();
    for key in ["invitee", "robot"] {
        let r = w
            .call(
                "POST",
                "/v1/orgs/acme/roles",
                &w.alice,
                Some(json!({"key": key, "name": key, "permissions": ["org:read", "members:read"]})),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        ids.push(r.body["id"].as_str().unwrap().to_owned());
    }
    let r = w
        .call(
            "POST",
            "/v1/orgs/acme/invitations",
            &w.alice,
            Some(json!({"email": "dana@example.test", "role": "invitee"})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = w
        .call(
            "POST",
            "/v1/orgs/acme/api-keys",
            &w.alice,
            Some(json!({"name": "CI", "role": "robot"})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    for id in &ids {
        let r = w
            .call(
                "DELETE",
                &format!("/v1/orgs/acme/roles/{id}"),
                &w.alice,
                None,
            )
            .await;
        assert_problem(&r, 409, "role_in_use");
    }

    // An admin API key acts under the same rules as an admin user.
    let r = w
        .call(
            "POST",
            "/v1/orgs/acme/api-keys",
            &w.alice,
            Some(json!({"name": "Ops", "role": "admin"})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let key = r.body["key"].as_str().unwrap().to_owned();
    let r = w.call("GET", "/v1/members", &key, None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = w
        .call(
            "PATCH",
            &format!("/v1/members/{}", d.alice),
            &key,
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_problem(&r, 403, "cannot_act_on_owner");
    let r = w
        .call(
            "PATCH",
            &format!("/v1/members/{}", d.carol),
            &key,
            Some(json!({"role": "owner"})),
        )
        .await;
    assert_problem(&r, 403, "cannot_act_on_owner");
    let r = w
        .call(
            "PATCH",
            &format!("/v1/members/{}", d.carol),
            &key,
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!((r.status, r.body["role"].as_str()), (200, Some("viewer")));
    // Globex stays out of reach of an Acme key.
    let r = w.call("GET", "/v1/orgs/globex/members", &key, None).await;
    assert_problem(&r, 403, "not_a_member");

    let scope = d.alice_in_acme(&t.db).await;
    let mut tx = t.db.read(&scope).await.unwrap();
    let log = audit::list(&mut tx, 50).await.unwrap();
    tx.commit().await.unwrap();
    let change = log
        .iter()
        .find(|e| e.action == "member.role_changed")
        .unwrap();
    assert_eq!(change.actor_kind, "api_key");
    assert_eq!(change.target_id, Some(d.carol.uuid()));
});
