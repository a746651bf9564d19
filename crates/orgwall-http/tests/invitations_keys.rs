//! Invitations and API keys over HTTP, on both backends.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use orgwall_core::{Email, OrgId, UserId};
use orgwall_store::repo::{memberships, outbox, users};
use orgwall_store::{crypto, params, Mode};
use orgwall_testkit::{both, Demo, TestDb, TestServer};
use serde_json::{json, Value};

const PW: &str = "a long enough pass";

/// Creates a user directly in the store (verified or not) and logs them in.
async fn new_user(t: &TestDb, s: &TestServer, email: &str, verified: bool) -> (UserId, String) {
    let e = Email::parse(email).unwrap();
    let u = users::create(
        &t.db,
        &e,
        "Test User",
        &crypto::hash_password(PW).unwrap(),
        verified,
    )
    .await
    .unwrap();
    (u.id, s.login(email, PW).await)
}

async fn invite(s: &TestServer, token: &str, org: &str, email: &str, role: &str) -> Value {
    let r = s
        .call(
            "POST",
            &format!("/v1/orgs/{org}/invitations"),
            Some(token),
            &[],
            Some(json!({ "email": email, "role": role })),
        )
        .await;
    assert_eq!(r.status, 201, "invite {email} as {role}: {:?}", r.body);
    r.body
}

async fn accept(s: &TestServer, session: &str, body: Value) -> orgwall_testkit::Resp {
    s.call(
        "POST",
        "/v1/invitations/accept",
        Some(session),
        &[],
        Some(body),
    )
    .await
}

async fn accept_token(s: &TestServer, session: &str, token: &str) -> orgwall_testkit::Resp {
    accept(s, session, json!({ "token": token })).await
}

fn token_of(body: &Value) -> String {
    body["token"].as_str().unwrap().to_owned()
}

/// Runs one statement inside `org` as its owner-scope user (through the store's walls).
async fn exec_in(t: &TestDb, user: UserId, org: OrgId, sql: &str, p: &[orgwall_store::Val]) {
    let scope = orgwall_store::access::verify_member(&t.db, user, org)
        .await
        .unwrap();
    let mut tx = t.db.write(&scope).await.unwrap();
    // Raw SQL that changes access data says so, as the repositories do.
    tx.access_changed();
    tx.execute(sql, p).await.unwrap();
    tx.commit().await.unwrap();
}

async fn outbox_for(t: &TestDb, to: &str) -> Vec<(Option<uuid::Uuid>, String)> {
    let mut tx = t.db.system("outbox", Mode::Read).await.unwrap();
    let rows = tx
        .query(
            "SELECT org_id, body FROM outbox WHERE recipient = $1 ORDER BY id",
            params![to],
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    rows.iter()
        .map(|r| (r.get(0).unwrap(), r.get(1).unwrap()))
        .collect()
}

fn assert_no_secret_fields(v: &Value) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                assert!(
                    !["token", "token_hash", "key", "key_hash"].contains(&k.as_str()),
                    "secret field {k} in {m:?}"
                );
                assert_no_secret_fields(v);
            }
        }
        Value::Array(a) => a.iter().for_each(assert_no_secret_fields),
        _ => {}
    }
}

both!(
    email_links_are_absolute_under_the_public_url,
    |t: TestDb| async move {
        Demo::load(&t.db).await;
        // Without a public URL, links are server-relative.
        let s = TestServer::start(&t.db).await;
        let alice = s.demo_login("alice@acme.test").await;
        let token = token_of(&invite(&s, &alice, "acme", "rel@example.test", "viewer").await);
        let mail = outbox_for(&t, "rel@example.test").await;
        assert!(
            mail[0]
                .1
                .contains(&format!("\n/invitations/accept?token={token}\n")),
            "{}",
            mail[0].1
        );
        // With one, the invitation and the verification links are absolute under it.
        let mut state = orgwall_http::AppState::new(t.db.clone());
        state.public_url =
            Some(outbox::PublicUrl::parse("https://app.example.test/orgwall/").unwrap());
        let s = TestServer::with_state(state).await;
        let alice = s.demo_login("alice@acme.test").await;
        let token = token_of(&invite(&s, &alice, "acme", "abs@example.test", "viewer").await);
        let mail = outbox_for(&t, "abs@example.test").await;
        let want = format!("https://app.example.test/orgwall/invitations/accept?token={token}");
        assert_eq!(
            outbox::links(&mail[0].1),
            vec![want.as_str()],
            "{}",
            mail[0].1
        );
        let r = s
            .call(
                "POST",
                "/v1/auth/signup",
                None,
                &[],
                Some(json!({"email": "new@example.test", "password": PW, "name": "New"})),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        let mail = outbox_for(&t, "new@example.test").await;
        let links = outbox::links(&mail[0].1);
        assert_eq!(links.len(), 1, "{}", mail[0].1);
        assert!(
            links[0].starts_with("https://app.example.test/orgwall/verify-email?token=owv_"),
            "{links:?}"
        );
    }
);

both!(invite_then_accept, |t: TestDb| async move {
    let d = Demo::load(&t.db).await;
    let s = TestServer::start(&t.db).await;
    let alice = s.demo_login("alice@acme.test").await;
    let body = invite(&s, &alice, "acme", "Dana@Example.test", "member").await;
    let inv = &body["invitation"];
    assert_eq!(inv["email"], "dana@example.test");
    assert_eq!(inv["role"], "member");
    assert_eq!(inv["status"], "pending");
    assert!(
        inv["id"].is_string() && inv["expires_at"].is_string() && inv["created_at"].is_string()
    );
    assert_no_secret_fields(inv);
    // Default expiry: 7 days.
    let created: chrono::DateTime<chrono::Utc> =
        inv["created_at"].as_str().unwrap().parse().unwrap();
    let expires: chrono::DateTime<chrono::Utc> =
        inv["expires_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(expires - created, chrono::Duration::days(7));

    // The token: owi_ + 256 bits in hex, stored only as its hash.
    let token = token_of(&body);
    let hex = token.strip_prefix("owi_").unwrap();
    assert_eq!(hex.len(), 64);
    assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
    let hash = crypto::token_hash(&token);
    assert_eq!(
        t.owner_count("invitations", &format!("token_hash = '{hash}'"))
            .await,
        1
    );
    assert_eq!(
        t.owner_count(
            "invitations",
            &format!("token_hash LIKE '%{hex}%' OR email LIKE '%{hex}%'")
        )
        .await,
        0
    );
    assert_eq!(
        t.owner_count(
            "audit_events",
            &format!("CAST(detail AS TEXT) LIKE '%{hex}%'")
        )
        .await,
        0
    );
    assert_eq!(
        t.owner_count("audit_events", "action = 'invitation.created'")
            .await,
        1
    );
    // The email is queued, in the org, with the token.
    let mail = outbox_for(&t, "dana@example.test").await;
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].0, Some(d.acme.uuid()));
    assert!(mail[0].1.contains(&token));

    // The list never shows the token.
    let r = s.get("/v1/orgs/acme/invitations", &alice).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    assert!(r.body["next_cursor"].is_null());
    assert_no_secret_fields(&r.body);
    assert!(!r.body.to_string().contains(hex));

    // Dana signs in and accepts: a member of acme with the stored role.
    let (dana_id, dana) = new_user(&t, &s, "dana@example.test", true).await;
    assert_eq!(s.get("/v1/orgs/acme", &dana).await.status, 403);
    let r = accept_token(&s, &dana, &token).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["membership"]["org_id"], json!(d.acme));
    assert_eq!(r.body["membership"]["slug"], "acme");
    assert_eq!(r.body["membership"]["role"], "member");
    assert_eq!(s.get("/v1/orgs/acme", &dana).await.status, 200);
    assert_eq!(s.get("/v1/orgs/globex", &dana).await.code(), "not_a_member");
    assert_eq!(
        t.owner_count("memberships", &format!("user_id = '{dana_id}'"))
            .await,
        1
    );
    assert_eq!(
        t.owner_count("audit_events", "action = 'invitation.accepted'")
            .await,
        1
    );
    assert_eq!(
        t.owner_count("audit_events", "action = 'member.joined'")
            .await,
        1
    );
    let r = s.get("/v1/orgs/acme/invitations", &alice).await;
    assert_eq!(r.body["items"][0]["status"], "accepted");
    assert_eq!(r.body["items"][0]["accepted_by"], json!(dana_id));

    // Single use.
    let r = accept_token(&s, &dana, &token).await;
    assert_eq!((r.status, r.code()), (404, "invitation_invalid"));
    // Unknown tokens, of any shape.
    for bogus in ["owi_0000", "nope", "", &format!("owi_{}", "0".repeat(64))] {
        let r = accept_token(&s, &dana, bogus).await;
        assert_eq!((r.status, r.code()), (404, "invitation_invalid"), "{bogus}");
    }
    // The org-less form works with the header.
    let r = s
        .call(
            "POST",
            "/v1/invitations",
            Some(&alice),
            &[("x-organization-id", "acme")],
            Some(json!({"email": "omar@example.test", "role": "viewer"})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["invitation"]["id"].as_str().unwrap().to_owned();
    let r = s
        .call(
            "DELETE",
            &format!("/v1/invitations/{id}"),
            Some(&alice),
            &[("x-organization-id", "acme")],
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
});

both!(
    concurrent_accepts_make_one_membership,
    |t: TestDb| async move {
        Demo::load(&t.db).await;
        let s = TestServer::start(&t.db).await;
        let alice = s.demo_login("alice@acme.test").await;
        for round in 0..3 {
            let email = format!("erin{round}@example.test");
            let token = token_of(&invite(&s, &alice, "acme", &email, "member").await);
            let (erin_id, erin) = new_user(&t, &s, &email, true).await;
            let erin2 = s.login(&email, PW).await;
            let (a, b) = tokio::join!(
                accept_token(&s, &erin, &token),
                accept_token(&s, &erin2, &token)
            );
            let mut got = [
                (a.status, a.code().to_owned()),
                (b.status, b.code().to_owned()),
            ];
            got.sort();
            assert_eq!(
                got,
                [(200, String::new()), (404, "invitation_invalid".to_owned())],
                "{a:?} {b:?}"
            );
            assert_eq!(
                t.owner_count("memberships", &format!("user_id = '{erin_id}'"))
                    .await,
                1
            );
        }
        assert_eq!(
            t.owner_count("audit_events", "action = 'invitation.accepted'")
                .await,
            3
        );
    }
);

both!(accept_refusals, |t: TestDb| async move {
    let d = Demo::load(&t.db).await;
    let s = TestServer::start(&t.db).await;
    let alice = s.demo_login("alice@acme.test").await;
    let bob = s.demo_login("bob@globex.test").await;

    // Another user's invitation: 403, and it stays usable for the right one.
    let token = token_of(&invite(&s, &alice, "acme", "fay@example.test", "viewer").await);
    let r = accept_token(&s, &bob, &token).await;
    assert_eq!((r.status, r.code()), (403, "invitation_email_mismatch"));
    // The right address, unverified: 403.
    let (_, fay) = new_user(&t, &s, "FAY@example.test", false).await;
    let r = accept_token(&s, &fay, &token).await;
    assert_eq!((r.status, r.code()), (403, "email_unverified"));
    assert_eq!(s.get("/v1/orgs/acme", &fay).await.status, 403);

    // Expired: 410.
    let token = token_of(&invite(&s, &alice, "acme", "gus@example.test", "viewer").await);
    let (_, gus) = new_user(&t, &s, "gus@example.test", true).await;
    exec_in(
        &t,
        d.alice,
        d.acme,
        "UPDATE invitations SET expires_at = $1 WHERE org_id = $2 AND email = $3",
        params![
            chrono::Utc::now() - chrono::Duration::hours(1),
            d.acme,
            "gus@example.test"
        ],
    )
    .await;
    let r = accept_token(&s, &gus, &token).await;
    assert_eq!((r.status, r.code()), (410, "invitation_expired"));
    let r = s.get("/v1/orgs/acme/invitations", &alice).await;
    let statuses: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["pending", "expired"]);

    // Revoked: 404; revoking twice is fine; unknown and malformed ids are 404.
    let body = invite(&s, &alice, "acme", "hal@example.test", "viewer").await;
    let (token, id) = (
        token_of(&body),
        body["invitation"]["id"].as_str().unwrap().to_owned(),
    );
    let (_, hal) = new_user(&t, &s, "hal@example.test", true).await;
    // Another org cannot revoke it (and cannot tell it exists).
    let r = s
        .call(
            "DELETE",
            &format!("/v1/orgs/globex/invitations/{id}"),
            Some(&bob),
            &[],
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    for _ in 0..2 {
        let r = s
            .call(
                "DELETE",
                &format!("/v1/orgs/acme/invitations/{id}"),
                Some(&alice),
                &[],
                None,
            )
            .await;
        assert_eq!(r.status, 204, "{:?}", r.body);
    }
    assert_eq!(
        t.owner_count("audit_events", "action = 'invitation.revoked'")
            .await,
        1
    );
    let r = accept_token(&s, &hal, &token).await;
    assert_eq!((r.status, r.code()), (404, "invitation_invalid"));
    for bad in [uuid::Uuid::now_v7().to_string(), "not-a-uuid".to_owned()] {
        let r = s
            .call(
                "DELETE",
                &format!("/v1/orgs/acme/invitations/{bad}"),
                Some(&alice),
                &[],
                None,
            )
            .await;
        assert_eq!((r.status, r.code()), (404, "not_found"), "{bad}");
    }

    // Re-inviting the same address (any case) revokes the previous invitation.
    let first = token_of(&invite(&s, &alice, "acme", "ivy@example.test", "viewer").await);
    let second = token_of(&invite(&s, &alice, "acme", "IVY@Example.TEST", "member").await);
    let (_, ivy) = new_user(&t, &s, "ivy@example.test", true).await;
    let r = accept_token(&s, &ivy, &first).await;
    assert_eq!((r.status, r.code()), (404, "invitation_invalid"));
    let r = accept_token(&s, &ivy, &second).await;
    assert_eq!(
        (r.status, r.body["membership"]["role"].as_str()),
        (200, Some("member"))
    );

    // Inviting a member: 409. A pending invitation whose invitee became a member some other
    // way: 409 at accept, and the invitation stays pending.
    let r = s
        .call(
            "POST",
            "/v1/orgs/acme/invitations",
            Some(&alice),
            &[],
            Some(json!({"email": "carol@example.test", "role": "viewer"})),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "already_member"));
    let token = token_of(&invite(&s, &alice, "acme", "jo@example.test", "viewer").await);
    let (jo_id, jo) = new_user(&t, &s, "jo@example.test", true).await;
    let scope = d.alice_in_acme(&t.db).await;
    let mut tx = t.db.write(&scope).await.unwrap();
    memberships::add(&mut tx, jo_id, "viewer").await.unwrap();
    tx.commit().await.unwrap();
    let r = accept_token(&s, &jo, &token).await;
    assert_eq!((r.status, r.code()), (409, "already_member"));
    assert_eq!(
        t.owner_count(
            "invitations",
            "email = 'jo@example.test' AND accepted_at IS NULL"
        )
        .await,
        1
    );

    // Accepting needs a user session: no credentials, or an API key, are 401.
    let r = s
        .call(
            "POST",
            "/v1/invitations/accept",
            None,
            &[],
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(r.status, 401);
    let key = s
        .call(
            "POST",
            "/v1/orgs/acme/api-keys",
            Some(&alice),
            &[],
            Some(json!({"name": "k", "role": "admin"})),
        )
        .await;
    let key = key.body["key"].as_str().unwrap().to_owned();
    let r = accept_token(&s, &key, &token).await;
    assert_eq!((r.status, r.code()), (401, "unauthenticated"));
});

both!(the_role_is_the_stored_one, |t: TestDb| async move {
    let d = Demo::load(&t.db).await;
    let s = TestServer::start(&t.db).await;
    let alice = s.demo_login("alice@acme.test").await;
    let token = token_of(&invite(&s, &alice, "acme", "mia@example.test", "viewer").await);
    let (_, mia) = new_user(&t, &s, "mia@example.test", true).await;
    for body in [
        json!({"token": token, "role": "owner"}),
        json!({"token": token, "role_id": "x"}),
        json!({"token": token, "org_id": d.globex}),
        json!({"token": token, "org": "globex"}),
        json!({}),
    ] {
        let r = accept(&s, &mia, body.clone()).await;
        assert_eq!((r.status, r.code()), (422, "validation_failed"), "{body}");
    }
    let r = accept_token(&s, &mia, &token).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["membership"]["role"], "viewer");
    let me = s.get("/v1/me", &mia).await;
    let m = me.body["memberships"].as_array().unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(
        (m[0]["slug"].as_str(), m[0]["role"].as_str()),
        (Some("acme"), Some("viewer"))
    );
});

both!(
    nobody_invites_beyond_their_own_rights,
    |t: TestDb| async move {
        let d = Demo::load(&t.db).await;
        let s = TestServer::start(&t.db).await;
        let alice = s.demo_login("alice@acme.test").await;
        let carol = s.demo_login("carol@example.test").await;

        // A member lacks members:invite.
        let r = s
            .call(
                "POST",
                "/v1/orgs/acme/invitations",
                Some(&carol),
                &[],
                Some(json!({"email": "x@example.test", "role": "viewer"})),
            )
            .await;
        assert_eq!((r.status, r.code()), (403, "permission_denied"));
        assert_eq!(r.body["permission"], "members:invite");

        // An admin cannot invite an owner.
        let token = token_of(&invite(&s, &alice, "acme", "adam@example.test", "admin").await);
        let (adam_id, adam) = new_user(&t, &s, "adam@example.test", true).await;
        assert_eq!(accept_token(&s, &adam, &token).await.status, 200);
        let r = s
            .call(
                "POST",
                "/v1/orgs/acme/invitations",
                Some(&adam),
                &[],
                Some(json!({"email": "x@example.test", "role": "owner"})),
            )
            .await;
        assert_eq!(r.status, 403, "{:?}", r.body);
        assert_eq!(r.code(), "grant_exceeds_own");
        // An owner can.
        invite(&s, &alice, "acme", "x@example.test", "owner").await;

        // A custom role with members:invite but little else can invite only within it.
        exec_in(
        &t,
        d.alice,
        d.acme,
        "INSERT INTO roles (org_id, id, key, name, permissions, is_system, created_at, updated_at)
         VALUES ($1, $2, 'inviter', 'Inviter', 'org:read members:read members:invite', $3, $4, $4)",
        params![d.acme, uuid::Uuid::now_v7(), false, chrono::Utc::now()],
    )
    .await;
        let (ivan_id, ivan) = new_user(&t, &s, "ivan@example.test", true).await;
        let scope = d.alice_in_acme(&t.db).await;
        let mut tx = t.db.write(&scope).await.unwrap();
        memberships::add(&mut tx, ivan_id, "inviter").await.unwrap();
        tx.commit().await.unwrap();
        for role in ["member", "viewer", "admin", "owner"] {
            let r = s
                .call(
                    "POST",
                    "/v1/orgs/acme/invitations",
                    Some(&ivan),
                    &[],
                    Some(json!({"email": "y@example.test", "role": role})),
                )
                .await;
            assert_eq!((r.status, r.code()), (403, "grant_exceeds_own"), "{role}");
        }
        invite(&s, &ivan, "acme", "y@example.test", "inviter").await;

        // The grant is re-checked at accept time: an admin's invitation to admin stops working
        // once the admin is demoted.
        let token = token_of(&invite(&s, &adam, "acme", "hank@example.test", "admin").await);
        let (_, hank) = new_user(&t, &s, "hank@example.test", true).await;
        let scope = d.alice_in_acme(&t.db).await;
        let mut tx = t.db.write(&scope).await.unwrap();
        let member_role = memberships::role_id(&mut tx, "member").await.unwrap();
        tx.execute(
            "UPDATE memberships SET role_id = $1 WHERE org_id = $2 AND user_id = $3",
            params![member_role, d.acme, adam_id],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let r = accept_token(&s, &hank, &token).await;
        assert_eq!((r.status, r.code()), (404, "invitation_invalid"));
        assert_eq!(s.get("/v1/orgs/acme", &hank).await.status, 403);

        // Invitations made with an API key are re-checked against that key.
        let key = s
            .call(
                "POST",
                "/v1/orgs/acme/api-keys",
                Some(&alice),
                &[],
                Some(json!({"name": "hr bot", "role": "admin"})),
            )
            .await;
        assert_eq!(key.status, 201, "{:?}", key.body);
        let (key_id, key) = (
            key.body["api_key"]["id"].as_str().unwrap().to_owned(),
            key.body["key"].as_str().unwrap().to_owned(),
        );
        let r = s
            .call(
                "POST",
                "/v1/invitations",
                Some(&key),
                &[],
                Some(json!({"email": "kate@example.test", "role": "owner"})),
            )
            .await;
        assert_eq!(r.status, 403, "{:?}", r.body);
        let kate_token = token_of(&invite(&s, &key, "acme", "kate@example.test", "member").await);
        let lena_token = token_of(&invite(&s, &key, "acme", "lena@example.test", "member").await);
        let (_, kate) = new_user(&t, &s, "kate@example.test", true).await;
        let (_, lena) = new_user(&t, &s, "lena@example.test", true).await;
        assert_eq!(accept_token(&s, &kate, &kate_token).await.status, 200);
        let r = s
            .call(
                "DELETE",
                &format!("/v1/orgs/acme/api-keys/{key_id}"),
                Some(&alice),
                &[],
                None,
            )
            .await;
        assert_eq!(r.status, 204);
        let r = accept_token(&s, &lena, &lena_token).await;
        assert_eq!((r.status, r.code()), (404, "invitation_invalid"));
    }
);

both!(
    invitation_bad_input_changes_nothing,
    |t: TestDb| async move {
        let d = Demo::load(&t.db).await;
        let s = TestServer::start(&t.db).await;
        let alice = s.demo_login("alice@acme.test").await;
        let scope = d.bob_in_globex(&t.db).await;
        let mut tx = t.db.read(&scope).await.unwrap();
        let globex_member = memberships::role_id(&mut tx, "member").await.unwrap();
        tx.commit().await.unwrap();
        for body in [
            json!({"email": "z@example.test", "role": "viewer", "org_id": d.globex}),
            json!({"email": "z@example.test", "role": "viewer", "token": "owi_x"}),
            json!({"email": "not an email", "role": "viewer"}),
            json!({"email": "z@example.test", "role": "no-such-role"}),
            json!({"email": "z@example.test", "role": globex_member.to_string()}),
            json!({"email": "z@example.test"}),
            json!({"email": "z@example.test", "role": 7}),
        ] {
            let r = s
                .call(
                    "POST",
                    "/v1/orgs/acme/invitations",
                    Some(&alice),
                    &[],
                    Some(body.clone()),
                )
                .await;
            assert_eq!((r.status, r.code()), (422, "validation_failed"), "{body}");
            assert_eq!(r.headers["content-type"], "application/problem+json");
        }
        assert_eq!(t.owner_count("invitations", "1 = 1").await, 0);
        assert!(outbox_for(&t, "z@example.test").await.is_empty());

        // Pagination: limit, cursor, garbage.
        for i in 0..5 {
            invite(&s, &alice, "acme", &format!("p{i}@example.test"), "viewer").await;
        }
        let r = s.get("/v1/orgs/acme/invitations?limit=2", &alice).await;
        assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
        let mut seen: Vec<String> = r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["email"].as_str().unwrap().to_owned())
            .collect();
        let mut cursor = r.body["next_cursor"].as_str().unwrap().to_owned();
        loop {
            let r = s
                .get(
                    &format!("/v1/orgs/acme/invitations?limit=2&cursor={cursor}"),
                    &alice,
                )
                .await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            seen.extend(
                r.body["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i["email"].as_str().unwrap().to_owned()),
            );
            match r.body["next_cursor"].as_str() {
                Some(c) => cursor = c.to_owned(),
                None => break,
            }
        }
        assert_eq!(
            seen,
            (0..5)
                .map(|i| format!("p{i}@example.test"))
                .collect::<Vec<_>>()
        );
        for q in [
            "limit=0",
            "limit=201",
            "limit=x",
            "cursor=garbage!",
            "cursor=djE6bm9wZQ",
        ] {
            let r = s
                .get(&format!("/v1/orgs/acme/invitations?{q}"), &alice)
                .await;
            assert_eq!((r.status, r.code()), (422, "validation_failed"), "{q}");
        }
        // Another org sees none of them.
        let bob = s.demo_login("bob@globex.test").await;
        let r = s.get("/v1/orgs/globex/invitations", &bob).await;
        assert_eq!(r.body["items"], json!([]));
        // A member can list (members:read) but not invite or revoke.
        let carol = s.demo_login("carol@example.test").await;
        assert_eq!(s.get("/v1/orgs/acme/invitations", &carol).await.status, 200);
    }
);

both!(api_keys_lifecycle, |t: TestDb| async move {
    let d = Demo::load(&t.db).await;
    let s = TestServer::start(&t.db).await;
    let alice = s.demo_login("alice@acme.test").await;
    let r = s
        .call(
            "POST",
            "/v1/orgs/acme/api-keys",
            Some(&alice),
            &[],
            Some(json!({"name": "ci", "role": "member"})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let key = r.body["key"].as_str().unwrap().to_owned();
    let api_key = r.body["api_key"].clone();
    let hex = key.strip_prefix("owk_").unwrap();
    assert_eq!(hex.len(), 64);
    assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(api_key["prefix"].as_str(), key.get(..12));
    assert_eq!(api_key["role"], "member");
    assert_eq!(api_key["name"], "ci");
    assert!(api_key["expires_at"].is_null() && api_key["created_at"].is_string());
    assert_no_secret_fields(&api_key);
    let hash = crypto::token_hash(&key);
    assert_eq!(
        t.owner_count("api_keys", &format!("key_hash = '{hash}'"))
            .await,
        1
    );
    assert_eq!(
        t.owner_count(
            "api_keys",
            &format!("key_hash LIKE '%{hex}%' OR name LIKE '%{hex}%'")
        )
        .await,
        0
    );
    assert_eq!(
        t.owner_count(
            "audit_events",
            &format!("CAST(detail AS TEXT) LIKE '%{hex}%'")
        )
        .await,
        0
    );
    assert_eq!(
        t.owner_count("audit_events", "action = 'api_key.created'")
            .await,
        1
    );

    // The key works in its org, path or org-less.
    assert_eq!(s.get("/v1/orgs/acme", &key).await.status, 200);
    let r = s.get("/v1/org", &key).await;
    assert_eq!((r.status, r.body["slug"].as_str()), (200, Some("acme")));
    assert_eq!(s.get("/v1/orgs/acme/projects", &key).await.status, 200);
    // Nowhere else.
    for (path, hdr) in [
        ("/v1/orgs/globex", None),
        (&*format!("/v1/orgs/{}", d.globex), None),
        ("/v1/org", Some("globex")),
        ("/v1/projects", Some("globex")),
    ] {
        let headers: Vec<(&str, &str)> = hdr
            .map(|h| vec![("x-organization-id", h)])
            .unwrap_or_default();
        let r = s.call("GET", path, Some(&key), &headers, None).await;
        assert_eq!((r.status, r.code()), (403, "not_a_member"), "{path}");
    }
    // Only with its role's permissions.
    let r = s.get("/v1/orgs/acme/api-keys", &key).await;
    assert_eq!((r.status, r.code()), (403, "permission_denied"));

    // The list never carries keys or hashes.
    let r = s.get("/v1/orgs/acme/api-keys", &alice).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    assert!(r.body["next_cursor"].is_null());
    assert_no_secret_fields(&r.body);
    assert!(!r.body.to_string().contains(hex));
    let bob = s.demo_login("bob@globex.test").await;
    assert_eq!(
        s.get("/v1/orgs/globex/api-keys", &bob).await.body["items"],
        json!([])
    );

    // Revoke: 204, and the very next request with it is 401.
    let id = api_key["id"].as_str().unwrap();
    let r = s
        .call(
            "DELETE",
            &format!("/v1/orgs/globex/api-keys/{id}"),
            Some(&bob),
            &[],
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    assert_eq!(s.get("/v1/orgs/acme", &key).await.status, 200);
    let r = s
        .call(
            "DELETE",
            &format!("/v1/orgs/acme/api-keys/{id}"),
            Some(&alice),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let r = s.get("/v1/orgs/acme", &key).await;
    assert_eq!((r.status, r.code()), (401, "unauthenticated"));
    assert_eq!(
        t.owner_count("audit_events", "action = 'api_key.revoked'")
            .await,
        1
    );
    let r = s.get("/v1/orgs/acme/api-keys", &alice).await;
    assert!(r.body["items"][0]["revoked_at"].is_string());
    for bad in [uuid::Uuid::now_v7().to_string(), "nope".to_owned()] {
        let r = s
            .call(
                "DELETE",
                &format!("/v1/orgs/acme/api-keys/{bad}"),
                Some(&alice),
                &[],
                None,
            )
            .await;
        assert_eq!((r.status, r.code()), (404, "not_found"), "{bad}");
    }

    // Expiry: a key past its expires_at is 401.
    let soon = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let r = s
        .call(
            "POST",
            "/v1/orgs/acme/api-keys",
            Some(&alice),
            &[],
            Some(json!({"name": "temp", "role": "viewer", "expires_at": soon})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert!(r.body["api_key"]["expires_at"].is_string());
    let temp = r.body["key"].as_str().unwrap().to_owned();
    assert_eq!(s.get("/v1/orgs/acme", &temp).await.status, 200);
    exec_in(
        &t,
        d.alice,
        d.acme,
        "UPDATE api_keys SET expires_at = $1 WHERE org_id = $2 AND name = 'temp'",
        params![chrono::Utc::now() - chrono::Duration::seconds(1), d.acme],
    )
    .await;
    let r = s.get("/v1/orgs/acme", &temp).await;
    assert_eq!((r.status, r.code()), (401, "unauthenticated"));
});

both!(api_key_grants_and_bad_input, |t: TestDb| async move {
    Demo::load(&t.db).await;
    let s = TestServer::start(&t.db).await;
    let alice = s.demo_login("alice@acme.test").await;
    let carol = s.demo_login("carol@example.test").await;
    // A member cannot manage keys at all.
    let r = s
        .call(
            "POST",
            "/v1/orgs/acme/api-keys",
            Some(&carol),
            &[],
            Some(json!({"name": "mine", "role": "viewer"})),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "permission_denied"));
    assert_eq!(r.body["permission"], "api_keys:manage");
    // An admin cannot make an owner key; an admin key cannot either, nor escalate itself.
    let token = token_of(&invite(&s, &alice, "acme", "adam@example.test", "admin").await);
    let (_, adam) = new_user(&t, &s, "adam@example.test", true).await;
    assert_eq!(accept_token(&s, &adam, &token).await.status, 200);
    let r = s
        .call(
            "POST",
            "/v1/orgs/acme/api-keys",
            Some(&adam),
            &[],
            Some(json!({"name": "root", "role": "owner"})),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "grant_exceeds_own"));
    let r = s
        .call(
            "POST",
            "/v1/orgs/acme/api-keys",
            Some(&adam),
            &[],
            Some(json!({"name": "adm", "role": "admin"})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let admin_key = r.body["key"].as_str().unwrap().to_owned();
    let r = s
        .call(
            "POST",
            "/v1/api-keys",
            Some(&admin_key),
            &[],
            Some(json!({"name": "root", "role": "owner"})),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "grant_exceeds_own"));
    let r = s
        .call(
            "POST",
            "/v1/api-keys",
            Some(&admin_key),
            &[],
            Some(json!({"name": "ro", "role": "viewer"})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(t.owner_count("api_keys", "1 = 1").await, 2);

    let past = (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
    for body in [
        json!({"name": "k", "role": "viewer", "org_id": "x"}),
        json!({"name": "k", "role": "viewer", "key": "owk_mine"}),
        json!({"name": "k", "role": "viewer", "created_by": "x"}),
        json!({"name": "", "role": "viewer"}),
        json!({"name": "k".repeat(101), "role": "viewer"}),
        json!({"name": "k", "role": "root"}),
        json!({"name": "k"}),
        json!({"name": "k", "role": "viewer", "expires_at": past}),
        json!({"name": "k", "role": "viewer", "expires_at": "tomorrow"}),
    ] {
        let r = s
            .call(
                "POST",
                "/v1/orgs/acme/api-keys",
                Some(&alice),
                &[],
                Some(body.clone()),
            )
            .await;
        assert_eq!((r.status, r.code()), (422, "validation_failed"), "{body}");
        assert_eq!(r.headers["content-type"], "application/problem+json");
    }
    assert_eq!(t.owner_count("api_keys", "1 = 1").await, 2);
    for q in ["limit=0", "cursor=%%%"] {
        let r = s.get(&format!("/v1/orgs/acme/api-keys?{q}"), &alice).await;
        assert_eq!(r.status / 100, 4, "{q}");
    }
    // The routes are documented with their permissions.
    let doc = s
        .call("GET", "/v1/openapi.json", None, &[], None)
        .await
        .body;
    assert_eq!(
        doc["paths"]["/v1/orgs/{org}/api-keys"]["post"]["x-permission"],
        "api_keys:manage"
    );
    assert_eq!(
        doc["paths"]["/v1/orgs/{org}/invitations/{id}"]["delete"]["x-permission"],
        "members:invite"
    );
    assert!(doc["paths"]["/v1/invitations/accept"]["post"].is_object());
});
