//! Accounts, sessions and the org routes over HTTP, on both backends.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use orgwall_testkit::{both, Demo, TestDb, TestServer};
use serde_json::json;

both!(signup_verify_login_logout, |t: TestDb| async move {
    let s = TestServer::start(&t.db).await;
    let r = s
        .call("POST", "/v1/auth/signup", None, &[], Some(json!({"email": "Dana@Example.test", "password": "a long enough pass", "name": "Dana"})))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["user"]["email"], "dana@example.test");
    assert!(r.body["user"]["email_verified_at"].is_null());
    // The same email again, in any case: 409.
    let r = s
        .call(
            "POST",
            "/v1/auth/signup",
            None,
            &[],
            Some(
                json!({"email": "DANA@example.test", "password": "another long pass", "name": "D"}),
            ),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "email_taken"));

    // Login: wrong password and unknown email answer the same.
    let bad1 = s
        .call(
            "POST",
            "/v1/auth/login",
            None,
            &[],
            Some(json!({"email": "dana@example.test", "password": "wrong password!"})),
        )
        .await;
    let bad2 = s
        .call(
            "POST",
            "/v1/auth/login",
            None,
            &[],
            Some(json!({"email": "nobody@example.test", "password": "wrong password!"})),
        )
        .await;
    assert_eq!(bad1.status, 401);
    assert_eq!(bad1.body, bad2.body);

    let token = s.login("dana@example.test", "a long enough pass").await;
    assert!(token.starts_with("ows_") && token.len() >= 4 + 64);
    let me = s.get("/v1/me", &token).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["memberships"], json!([]));

    // A second login is a second, different token.
    let token2 = s.login("dana@example.test", "a long enough pass").await;
    assert_ne!(token, token2);

    let r = s
        .call("POST", "/v1/auth/logout", Some(&token), &[], None)
        .await;
    assert_eq!(r.status, 204);
    let r = s.get("/v1/me", &token).await;
    assert_eq!((r.status, r.code()), (401, "unauthenticated"));
    assert_eq!(s.get("/v1/me", &token2).await.status, 200);
});

both!(password_change_ends_every_session, |t: TestDb| async move {
    Demo::load(&t.db).await;
    let s = TestServer::start(&t.db).await;
    let a = s.demo_login("alice@acme.test").await;
    let b = s.demo_login("alice@acme.test").await;
    let r = s
        .call("PUT", "/v1/me/password", Some(&a), &[], Some(json!({"current_password": "wrong-wrong-wrong", "new_password": "brand new secret 1"})))
        .await;
    assert_eq!((r.status, r.code()), (403, "wrong_password"));
    let r = s
        .call(
            "PUT",
            "/v1/me/password",
            Some(&a),
            &[],
            Some(json!({"current_password": "orgwall-demo", "new_password": "brand new secret 1"})),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert_eq!(s.get("/v1/me", &a).await.status, 401);
    assert_eq!(s.get("/v1/me", &b).await.status, 401);
    s.login("alice@acme.test", "brand new secret 1").await;
});

both!(
    tenant_resolution_and_header_spoofing,
    |t: TestDb| async move {
        let d = Demo::load(&t.db).await;
        let s = TestServer::start(&t.db).await;
        let alice = s.demo_login("alice@acme.test").await;
        let r = s.get("/v1/orgs/acme", &alice).await;
        assert_eq!(r.status, 200);
        let by_id = s.get(&format!("/v1/orgs/{}", d.acme), &alice).await;
        assert_eq!(by_id.body, r.body);
        // Someone else's org, by slug, by id, through the header: the same 403.
        for (path, hdr) in [
            ("/v1/orgs/globex", None),
            (&*format!("/v1/orgs/{}", d.globex), None),
            ("/v1/org", Some("globex")),
        ] {
            let headers: Vec<(&str, &str)> = hdr
                .map(|h| vec![("x-organization-id", h)])
                .unwrap_or_default();
            let r = s.call("GET", path, Some(&alice), &headers, None).await;
            assert_eq!((r.status, r.code()), (403, "not_a_member"), "{path}");
        }
        // An org that does not exist answers exactly like one you are not in.
        let ghost = s.get("/v1/orgs/no-such-org", &alice).await;
        let foreign = s.get("/v1/orgs/globex", &alice).await;
        assert_eq!((ghost.status, &ghost.body), (foreign.status, &foreign.body));
        // Path and header disagree: 400.
        let r = s
            .call(
                "GET",
                "/v1/orgs/acme",
                Some(&alice),
                &[("x-organization-id", "globex")],
                None,
            )
            .await;
        assert_eq!((r.status, r.code()), (400, "org_mismatch"));
        // Org-less without any org: 400; then with an active org: served.
        let r = s.get("/v1/org", &alice).await;
        assert_eq!((r.status, r.code()), (400, "org_required"));
        let r = s
            .call(
                "PUT",
                "/v1/me/active-org",
                Some(&alice),
                &[],
                Some(json!({"org": "globex"})),
            )
            .await;
        assert_eq!((r.status, r.code()), (403, "not_a_member"));
        let r = s
            .call(
                "PUT",
                "/v1/me/active-org",
                Some(&alice),
                &[],
                Some(json!({"org": "acme"})),
            )
            .await;
        assert_eq!(r.status, 200);
        let r = s.get("/v1/org", &alice).await;
        assert_eq!((r.status, r.body["slug"].as_str()), (200, Some("acme")));
        // Mass assignment through a body is refused.
        let r = s
            .call(
                "PATCH",
                "/v1/orgs/acme",
                Some(&alice),
                &[],
                Some(json!({"name": "X", "org_id": d.globex})),
            )
            .await;
        assert_eq!((r.status, r.code()), (422, "validation_failed"));
    }
);

both!(org_lifecycle, |t: TestDb| async move {
    let d = Demo::load(&t.db).await;
    let s = TestServer::start(&t.db).await;
    let carol = s.demo_login("carol@example.test").await;
    let r = s
        .call(
            "POST",
            "/v1/orgs",
            Some(&carol),
            &[],
            Some(json!({"name": "Initech", "slug": "initech"})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = s
        .call(
            "POST",
            "/v1/orgs",
            Some(&carol),
            &[],
            Some(json!({"name": "Initech 2", "slug": "initech"})),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "slug_taken"));
    let r = s
        .call(
            "POST",
            "/v1/orgs",
            Some(&carol),
            &[],
            Some(json!({"name": "Bad", "slug": "Not A Slug"})),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "validation_failed"));
    let r = s.get("/v1/orgs", &carol).await;
    let slugs: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["acme", "globex", "initech"]);
    // A member cannot rename or delete acme.
    let r = s
        .call(
            "PATCH",
            "/v1/orgs/acme",
            Some(&carol),
            &[],
            Some(json!({"name": "Mine now"})),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "permission_denied"));
    assert_eq!(r.body["permission"], "org:update");
    // The owner deletes initech: 202, and it is gone for every session at once.
    let r = s
        .call("DELETE", "/v1/orgs/initech", Some(&carol), &[], None)
        .await;
    assert_eq!(r.status, 202);
    let r = s.get("/v1/orgs/initech", &carol).await;
    assert_eq!((r.status, r.code()), (403, "not_a_member"));
    let _ = d;
});

both!(bad_bodies_are_problems, |t: TestDb| async move {
    let s = TestServer::start(&t.db).await;
    let url = format!("{}/v1/auth/signup", s.base);
    let r = s
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = s
        .http
        .post(&url)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let huge = format!(
        "{{\"email\":\"a@b.test\",\"password\":\"{}\",\"name\":\"x\"}}",
        "p".repeat(100_000)
    );
    let r = s
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    for body in [
        json!({"email": "not-an-email", "password": "long enough pass", "name": "x"}),
        json!({"email": "a@b.test", "password": "short", "name": "x"}),
        json!({"email": "a@b.test", "password": "p".repeat(2000), "name": "x"}),
        json!({"email": "a@b.test", "password": "1234567890", "name": "x"}),
        json!({"email": "a@b.test", "password": "long enough pass", "name": ""}),
        json!({"email": "a@b.test", "password": "long enough pass", "name": "x", "role": "owner"}),
        json!({"email": "a@b.test", "password": "long enough pass"}),
    ] {
        let r = s
            .call("POST", "/v1/auth/signup", None, &[], Some(body.clone()))
            .await;
        assert_eq!((r.status, r.code()), (422, "validation_failed"), "{body}");
    }
    // Nothing was created.
    assert_eq!(t.owner_count("users", "1 = 1").await, 0);
});
