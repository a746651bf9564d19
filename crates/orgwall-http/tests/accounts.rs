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
    let first = r;
    // The same email again, in any case: exactly the answer a new email gets (no account
    // oracle), nothing changes, and the account's owner is told by email.
    let r = s
        .call(
            "POST",
            "/v1/auth/signup",
            None,
            &[],
            Some(
                json!({"email": "DANA@example.test", "password": "another long pass", "name": "Dana"}),
            ),
        )
        .await;
    let fresh = s
        .call(
            "POST",
            "/v1/auth/signup",
            None,
            &[],
            Some(json!({"email": "Erin@Example.test", "password": "another long pass", "name": "Dana"})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(fresh.status, 201, "{:?}", fresh.body);
    let shape = |v: &serde_json::Value| {
        let mut u = v["user"].clone();
        let o = u.as_object_mut().unwrap();
        let keys: Vec<String> = o.keys().cloned().collect();
        (keys, o.remove("name"), o.remove("email_verified_at"))
    };
    assert_eq!(shape(&r.body), shape(&fresh.body));
    assert_eq!(shape(&r.body), shape(&first.body));
    assert_eq!(r.body["user"]["email"], "dana@example.test");
    assert_ne!(r.body["user"]["id"], first.body["user"]["id"]);
    let headers = |h: &reqwest::header::HeaderMap| {
        let mut k: Vec<String> = h
            .keys()
            .map(|k| k.to_string())
            .filter(|k| k != "x-request-id" && k != "date")
            .collect();
        k.sort();
        k
    };
    assert_eq!(headers(&r.headers), headers(&fresh.headers));
    assert_eq!(
        t.owner_count("users", "email = 'dana@example.test'").await,
        1
    );
    assert_eq!(
        t.owner_count(
            "outbox",
            &format!(
                "recipient = 'dana@example.test' AND subject = '{}'",
                orgwall_store::repo::users::SIGNUP_ATTEMPT_SUBJECT
            )
        )
        .await,
        1
    );

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

both!(
    cookie_sessions_need_the_csrf_token_to_change_state,
    |t: TestDb| async move {
        Demo::load(&t.db).await;
        let s = TestServer::start(&t.db).await;
        let r = s
            .call(
                "POST",
                "/v1/auth/login",
                None,
                &[],
                Some(
                    json!({"email": "alice@acme.test", "password": "orgwall-demo", "cookie": true}),
                ),
            )
            .await;
        assert_eq!(r.status, 200);
        assert!(
            r.body.get("token").is_none(),
            "cookie mode never shows the token to scripts"
        );
        let csrf = r.body["csrf_token"].as_str().unwrap().to_owned();
        let set_cookie = r.headers["set-cookie"].to_str().unwrap().to_owned();
        assert!(
            set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
            "{set_cookie}"
        );
        let cookie = set_cookie.split(';').next().unwrap().to_owned();
        // Reads need only the cookie.
        let r = s
            .call("GET", "/v1/orgs/acme", None, &[("cookie", &cookie)], None)
            .await;
        assert_eq!(r.status, 200);
        // A change without the CSRF token (a cross-site form) is refused and changes nothing.
        let r = s
            .call(
                "PATCH",
                "/v1/orgs/acme",
                None,
                &[("cookie", &cookie)],
                Some(json!({"name": "Hijacked"})),
            )
            .await;
        assert_eq!((r.status, r.code()), (403, "csrf_failed"));
        let r = s
            .call(
                "PATCH",
                "/v1/orgs/acme",
                None,
                &[("cookie", &cookie), ("x-csrf-token", "0000")],
                Some(json!({"name": "Hijacked"})),
            )
            .await;
        assert_eq!((r.status, r.code()), (403, "csrf_failed"));
        assert_eq!(t.owner_count("orgs", "name = 'Hijacked'").await, 0);
        let r = s
            .call(
                "PATCH",
                "/v1/orgs/acme",
                None,
                &[("cookie", &cookie), ("x-csrf-token", &csrf)],
                Some(json!({"name": "Acme Renamed"})),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let r = s
            .call(
                "POST",
                "/v1/auth/logout",
                None,
                &[("cookie", &cookie), ("x-csrf-token", &csrf)],
                None,
            )
            .await;
        assert_eq!(r.status, 204);
        assert!(r.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0"));
        assert_eq!(
            s.call("GET", "/v1/orgs/acme", None, &[("cookie", &cookie)], None)
                .await
                .status,
            401
        );
    }
);

both!(
    secrets_are_stored_only_as_hashes_with_owasp_argon2,
    |t: TestDb| async move {
        let s = TestServer::start(&t.db).await;
        let r = s
        .call("POST", "/v1/auth/signup", None, &[], Some(json!({"email": "eve@example.test", "password": "correct horse battery", "name": "Eve"})))
        .await;
        assert_eq!(r.status, 201);
        // The stored password hash: argon2id with at least OWASP's minimum parameters.
        assert_eq!(
        t.owner_count("users", "email = 'eve@example.test' AND password_hash LIKE '$argon2id$v=19$m=19456,t=2,p=1$%'").await,
        1
    );
        assert_eq!(
            t.owner_count("users", "password_hash LIKE '%correct horse%'")
                .await,
            0
        );
        // The verification token is in the queued email, only its hash in the table.
        let token = {
            let body = match t.kind {
                orgwall_store::BackendKind::Postgres => {
                    let (c, conn) = tokio_postgres::connect(&t.url, tokio_postgres::NoTls)
                        .await
                        .unwrap();
                    tokio::spawn(conn);
                    c.query_one(
                        "SELECT body FROM outbox WHERE recipient = 'eve@example.test'",
                        &[],
                    )
                    .await
                    .unwrap()
                    .get::<_, String>(0)
                }
                orgwall_store::BackendKind::Sqlite => rusqlite::Connection::open(&t.url)
                    .unwrap()
                    .query_row(
                        "SELECT body FROM outbox_rows WHERE recipient = 'eve@example.test'",
                        [],
                        |r| r.get::<_, String>(0),
                    )
                    .unwrap(),
            };
            let i = body.find("owv_").unwrap();
            body[i..i + 4 + 64].to_owned()
        };
        let hash = orgwall_store::crypto::token_hash(&token);
        assert_eq!(
            t.owner_count("email_verifications", &format!("token_hash = '{hash}'"))
                .await,
            1
        );
        assert_eq!(
            t.owner_count("email_verifications", &format!("token_hash = '{token}'"))
                .await,
            0
        );
        let r = s
            .call(
                "POST",
                "/v1/auth/verify-email",
                None,
                &[],
                Some(json!({"token": token})),
            )
            .await;
        assert_eq!(r.status, 204);
        let r = s
            .call(
                "POST",
                "/v1/auth/verify-email",
                None,
                &[],
                Some(json!({"token": token})),
            )
            .await;
        assert_eq!(
            (r.status, r.code()),
            (404, "verification_invalid"),
            "single use"
        );
        // Session tokens: 256 bits of hex after the prefix, stored only as SHA-256.
        let session = s.login("eve@example.test", "correct horse battery").await;
        let hex = session.strip_prefix("ows_").unwrap();
        assert!(hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()));
        let h = orgwall_store::crypto::token_hash(&session);
        assert_eq!(
            t.owner_count("sessions", &format!("token_hash = '{h}'"))
                .await,
            1
        );
        assert_eq!(
            t.owner_count("sessions", &format!("token_hash = '{session}'"))
                .await,
            0
        );
        let me = s.get("/v1/me", &session).await;
        assert!(me.body["user"]["email_verified_at"].is_string());
    }
);

both!(login_is_rate_limited_per_account, |t: TestDb| async move {
    Demo::load(&t.db).await;
    let s = TestServer::start(&t.db).await;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let r = s
            .call(
                "POST",
                "/v1/auth/login",
                None,
                &[],
                Some(json!({"email": "alice@acme.test", "password": "wrong password!"})),
            )
            .await;
        statuses.push(r.status);
        if r.status == 429 {
            assert_eq!(r.code(), "rate_limited");
            let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!(wait >= 1);
        }
    }
    assert_eq!(&statuses[..10], &[401; 10]);
    assert_eq!(&statuses[10..], &[429, 429]);
    // Another account from the same client is not locked out by alice's failures.
    let r = s
        .call(
            "POST",
            "/v1/auth/login",
            None,
            &[],
            Some(json!({"email": "bob@globex.test", "password": "orgwall-demo"})),
        )
        .await;
    assert_eq!(r.status, 200);
});

// Regression: an undecodable path segment made the wall drop the path's org claim and
// fall back to the session's active org.
both!(
    an_undecodable_path_never_falls_back_to_another_org,
    |t: TestDb| async move {
        Demo::load(&t.db).await;
        let s = TestServer::start(&t.db).await;
        let carol = s.demo_login("carol@example.test").await;
        let r = s
            .call(
                "PUT",
                "/v1/me/active-org",
                Some(&carol),
                &[],
                Some(json!({"org": "globex"})),
            )
            .await;
        assert_eq!(r.status, 200);
        for path in [
            "/v1/orgs/%FF/members",
            "/v1/orgs/%FF",
            "/v1/orgs/acme/members/%FF",
            "/v1/orgs/acme/notes/%FF",
        ] {
            let r = s.get(path, &carol).await;
            assert_eq!(
                (r.status, r.code()),
                (404, "not_found"),
                "{path}: {:?}",
                r.body
            );
        }
    }
);
