//! Projects, tickets, comments and notes over HTTP, on both backends: the rules and the
//! cross-org cases that usually leak.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use orgwall_testkit::{both, Demo, TestDb, TestServer};
use serde_json::{json, Value};

fn ids(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

both!(
    the_seed_scenario_note_of_another_org,
    |t: TestDb| async move {
        Demo::load(&t.db).await;
        let s = TestServer::start(&t.db).await;
        let bob = s.demo_login("bob@globex.test").await;
        let alice = s.demo_login("alice@acme.test").await;
        let globex_note = ids(&s.get("/v1/orgs/globex/notes", &bob).await.body)[0].clone();
        let r = s
            .get(&format!("/v1/orgs/acme/notes/{globex_note}"), &alice)
            .await;
        assert_eq!((r.status, r.code()), (404, "not_found"));
        let r = s
            .get(&format!("/v1/orgs/globex/notes/{globex_note}"), &alice)
            .await;
        assert_eq!((r.status, r.code()), (403, "not_a_member"));
        // Org-less forms behave the same.
        let r = s
            .call(
                "GET",
                &format!("/v1/notes/{globex_note}"),
                Some(&alice),
                &[("x-organization-id", "acme")],
                None,
            )
            .await;
        assert_eq!((r.status, r.code()), (404, "not_found"));
    }
);

both!(
    writes_naming_another_orgs_ids_change_nothing,
    |t: TestDb| async move {
        let d = Demo::load(&t.db).await;
        let s = TestServer::start(&t.db).await;
        let bob = s.demo_login("bob@globex.test").await;
        let alice = s.demo_login("alice@acme.test").await;
        let gp = ids(&s.get("/v1/orgs/globex/projects", &bob).await.body)[0].clone();
        let gt = ids(&s.get("/v1/orgs/globex/tickets", &bob).await.body)[0].clone();
        let ap = ids(&s.get("/v1/orgs/acme/projects", &alice).await.body)[0].clone();
        let before = t
            .owner_count("tickets", &format!("org_id = '{}'", d.globex))
            .await;

        let r = s
            .call(
                "POST",
                "/v1/orgs/acme/tickets",
                Some(&alice),
                &[],
                Some(json!({"project_id": gp, "title": "x"})),
            )
            .await;
        assert_eq!(r.status, 422, "{:?}", r.body);
        let r = s
            .call(
                "POST",
                "/v1/orgs/acme/tickets",
                Some(&alice),
                &[],
                Some(json!({"project_id": ap, "title": "x", "assignee_id": d.bob})),
            )
            .await;
        assert_eq!(r.status, 422, "{:?}", r.body);
        for (m, path, body) in [
            (
                "PATCH",
                format!("/v1/orgs/acme/tickets/{gt}"),
                Some(json!({"title": "pwned"})),
            ),
            ("DELETE", format!("/v1/orgs/acme/tickets/{gt}"), None),
            (
                "POST",
                format!("/v1/orgs/acme/tickets/{gt}/comments"),
                Some(json!({"body": "pwned"})),
            ),
            ("GET", format!("/v1/orgs/acme/tickets/{gt}/comments"), None),
            (
                "PATCH",
                format!("/v1/orgs/acme/projects/{gp}"),
                Some(json!({"name": "pwned"})),
            ),
            ("DELETE", format!("/v1/orgs/acme/projects/{gp}"), None),
        ] {
            let r = s.call(m, &path, Some(&alice), &[], body).await;
            assert_eq!((r.status, r.code()), (404, "not_found"), "{m} {path}");
        }
        assert_eq!(
            t.owner_count("tickets", &format!("org_id = '{}'", d.globex))
                .await,
            before
        );
        assert_eq!(t.owner_count("tickets", "title = 'pwned'").await, 0);
        assert_eq!(t.owner_count("ticket_comments", "body = 'pwned'").await, 0);
        assert_eq!(t.owner_count("projects", "name = 'pwned'").await, 0);
        // Filters naming another org's ids find nothing.
        let r = s
            .get(&format!("/v1/orgs/acme/tickets?project={gp}"), &alice)
            .await;
        assert_eq!((r.status, ids(&r.body).len()), (200, 0));
        let r = s
            .get(&format!("/v1/orgs/acme/tickets?assignee={}", d.bob), &alice)
            .await;
        assert_eq!((r.status, ids(&r.body).len()), (200, 0));
    }
);

both!(search_returns_only_this_orgs_rows, |t: TestDb| async move {
    Demo::load(&t.db).await;
    let s = TestServer::start(&t.db).await;
    let alice = s.demo_login("alice@acme.test").await;
    let bob = s.demo_login("bob@globex.test").await;
    // A term only Globex has.
    let r = s
        .call(
            "POST",
            "/v1/orgs/globex/notes",
            Some(&bob),
            &[],
            Some(json!({"title": "Zanzibar plan", "body": "secret"})),
        )
        .await;
    assert_eq!(r.status, 201);
    let r = s.get("/v1/orgs/acme/notes?q=zanzibar", &alice).await;
    assert_eq!((r.status, ids(&r.body).len()), (200, 0));
    let r = s.get("/v1/orgs/globex/notes?q=ZANZIBAR", &bob).await;
    assert_eq!(ids(&r.body).len(), 1);
    // A term both have: each sees only its own.
    let a = s.get("/v1/orgs/acme/tickets?q=login", &alice).await;
    let b = s.get("/v1/orgs/globex/tickets?q=login", &bob).await;
    assert_eq!(ids(&a.body).len(), 1);
    assert_eq!(ids(&b.body).len(), 1);
    assert_ne!(ids(&a.body), ids(&b.body));
    // LIKE wildcards are literal.
    let r = s.get("/v1/orgs/acme/notes?q=%25", &alice).await;
    assert_eq!(ids(&r.body).len(), 0);
});

both!(workflow_assignment_and_history, |t: TestDb| async move {
    let d = Demo::load(&t.db).await;
    let s = TestServer::start(&t.db).await;
    let alice = s.demo_login("alice@acme.test").await;
    let ap = ids(&s.get("/v1/orgs/acme/projects", &alice).await.body)[0].clone();
    let r = s
        .call(
            "POST",
            "/v1/orgs/acme/tickets",
            Some(&alice),
            &[],
            Some(json!({"project_id": ap, "title": "New"})),
        )
        .await;
    assert_eq!(r.status, 201);
    let tid = r.body["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/orgs/acme/tickets/{tid}");
    let r = s
        .call(
            "PATCH",
            &path,
            Some(&alice),
            &[],
            Some(json!({"status": "closed"})),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "invalid_transition"));
    let r = s
        .call(
            "PATCH",
            &path,
            Some(&alice),
            &[],
            Some(json!({"status": "done"})),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "validation_failed"));
    for st in ["in_progress", "resolved", "closed", "open"] {
        let r = s
            .call(
                "PATCH",
                &path,
                Some(&alice),
                &[],
                Some(json!({"status": st})),
            )
            .await;
        assert_eq!(r.status, 200, "{st}: {:?}", r.body);
    }
    let r = s
        .call(
            "PATCH",
            &path,
            Some(&alice),
            &[],
            Some(json!({"assignee_id": d.bob})),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "assignee_not_member"));
    let r = s
        .call(
            "PATCH",
            &path,
            Some(&alice),
            &[],
            Some(json!({"assignee_id": d.carol})),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = s
        .call(
            "PATCH",
            &path,
            Some(&alice),
            &[],
            Some(json!({"assignee_id": null})),
        )
        .await;
    assert_eq!((r.status, r.body["assignee_id"].is_null()), (200, true));
    let r = s.get(&path, &alice).await;
    let fields: Vec<(&str, &str)> = r.body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["field"].as_str().unwrap(), e["to"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        fields,
        [
            ("status", "in_progress"),
            ("status", "resolved"),
            ("status", "closed"),
            ("status", "open"),
            ("assignee", &*d.carol.to_string()),
            ("assignee", "")
        ]
    );
    // Use after delete.
    assert_eq!(
        s.call("DELETE", &path, Some(&alice), &[], None)
            .await
            .status,
        204
    );
    for (m, p) in [
        ("GET", path.clone()),
        ("PATCH", path.clone()),
        ("GET", format!("{path}/comments")),
    ] {
        let body = (m == "PATCH").then(|| json!({"title": "x"}));
        let r = s.call(m, &p, Some(&alice), &[], body).await;
        assert_eq!((r.status, r.code()), (404, "not_found"), "{m} {p}");
    }
});

both!(
    pagination_has_no_duplicates_or_gaps_under_inserts,
    |t: TestDb| async move {
        Demo::load(&t.db).await;
        let s = TestServer::start(&t.db).await;
        let alice = s.demo_login("alice@acme.test").await;
        for i in 0..7 {
            s.call(
                "POST",
                "/v1/orgs/acme/notes",
                Some(&alice),
                &[],
                Some(json!({"title": format!("n{i}")})),
            )
            .await;
        }
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                None => "/v1/orgs/acme/notes?limit=3".to_string(),
                Some(c) => format!("/v1/orgs/acme/notes?limit=3&cursor={c}"),
            };
            let r = s.get(&path, &alice).await;
            assert_eq!(r.status, 200);
            seen.extend(ids(&r.body));
            // Insert while paging.
            s.call(
                "POST",
                "/v1/orgs/acme/notes",
                Some(&alice),
                &[],
                Some(json!({"title": "late"})),
            )
            .await;
            match r.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
            assert!(seen.len() < 100);
        }
        let mut dedup = seen.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), seen.len(), "duplicates across pages");
        let all = ids(&s.get("/v1/orgs/acme/notes?limit=200", &alice).await.body);
        assert_eq!(
            seen,
            all[..seen.len()].to_vec(),
            "a gap: pages must be a prefix of the full list"
        );
        for bad in [
            "limit=0",
            "limit=201",
            "limit=x",
            "cursor=garbage!!",
            "cursor=djE6bm90LWEtdXVpZA",
            "unknown=1",
        ] {
            let r = s.get(&format!("/v1/orgs/acme/notes?{bad}"), &alice).await;
            assert_eq!((r.status, r.code()), (422, "validation_failed"), "{bad}");
        }
    }
);

/// Percent-encodes a query value (every byte but ASCII letters and digits).
fn qv(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

// Full-text search over HTTP: scoped to the caller's org in both route forms, and any `q`
// (query syntax of FTS5, tsquery, SQL or LIKE) is answered 200, never 500.
both!(
    full_text_search_is_scoped_and_takes_any_text,
    |t: TestDb| async move {
        Demo::load(&t.db).await;
        let s = TestServer::start(&t.db).await;
        let alice = s.demo_login("alice@acme.test").await;
        let bob = s.demo_login("bob@globex.test").await;
        for (path, n) in [("tickets", 6), ("notes", 3)] {
            let r = s
                .get(&format!("/v1/orgs/acme/{path}?q=globex"), &alice)
                .await;
            assert_eq!((r.status, ids(&r.body).len()), (200, 0), "{path}");
            let r = s
                .call(
                    "GET",
                    &format!("/v1/{path}?q=Globex"),
                    Some(&alice),
                    &[("x-organization-id", "acme")],
                    None,
                )
                .await;
            assert_eq!((r.status, ids(&r.body).len()), (200, 0), "{path}");
            let r = s
                .get(&format!("/v1/orgs/globex/{path}?q=GLOBEX"), &bob)
                .await;
            assert_eq!((r.status, ids(&r.body).len()), (200, n), "{path}");
        }
        let r = s
            .get("/v1/orgs/acme/tickets?q=login%20page&limit=1", &alice)
            .await;
        assert_eq!(ids(&r.body).len(), 1);
        for q in [
            ") OR 1=1 --",
            "*",
            "NEAR(",
            "\"",
            "'",
            "login\" OR \"x",
            "doc: login",
            "a:* & !b",
            "%_",
            "\\",
            "((",
            "🎉",
        ] {
            for path in ["tickets", "notes"] {
                let r = s
                    .get(&format!("/v1/orgs/acme/{path}?q={}", qv(q)), &alice)
                    .await;
                assert_eq!(r.status, 200, "{path} q={q:?}: {:?}", r.body);
                assert!(r.body["items"].is_array(), "{path} q={q:?}");
            }
        }
        // Text with NUL or control characters is refused at the edge (one rule).
        for path in ["tickets", "notes"] {
            let r = s
                .get(&format!("/v1/orgs/acme/{path}?q={}", qv("x\u{0}y")), &alice)
                .await;
            assert_eq!((r.status, r.code()), (422, "validation_failed"), "{path}");
        }
    }
);

both!(
    comments_are_deleted_by_their_author_or_with_tickets_delete,
    |t: TestDb| async move {
        Demo::load(&t.db).await;
        let s = TestServer::start(&t.db).await;
        let alice = s.demo_login("alice@acme.test").await;
        let carol = s.demo_login("carol@example.test").await;
        let tid = ids(&s.get("/v1/orgs/acme/tickets", &alice).await.body)[0].clone();
        let base = format!("/v1/orgs/acme/tickets/{tid}/comments");
        let mine = s
            .call(
                "POST",
                &base,
                Some(&carol),
                &[],
                Some(json!({"body": "carol's"})),
            )
            .await;
        assert_eq!(mine.status, 201);
        let theirs = s
            .call(
                "POST",
                &base,
                Some(&alice),
                &[],
                Some(json!({"body": "alice's"})),
            )
            .await;
        assert_eq!(theirs.status, 201);
        let (mine, theirs) = (
            mine.body["id"].as_str().unwrap().to_owned(),
            theirs.body["id"].as_str().unwrap().to_owned(),
        );
        // A member (no tickets:delete) cannot delete someone else's comment, but can delete her own.
        let r = s
            .call(
                "DELETE",
                &format!("{base}/{theirs}"),
                Some(&carol),
                &[],
                None,
            )
            .await;
        assert_eq!((r.status, r.code()), (403, "permission_denied"));
        assert_eq!(
            s.call("DELETE", &format!("{base}/{mine}"), Some(&carol), &[], None)
                .await
                .status,
            204
        );
        // The owner holds tickets:delete.
        assert_eq!(
            s.call(
                "DELETE",
                &format!("{base}/{theirs}"),
                Some(&alice),
                &[],
                None
            )
            .await
            .status,
            204
        );
        let r = s.get(&base, &alice).await;
        assert!(!r.body.to_string().contains("carol's") && !r.body.to_string().contains("alice's"));
        // Gone is gone.
        assert_eq!(
            s.call("DELETE", &format!("{base}/{mine}"), Some(&carol), &[], None)
                .await
                .status,
            404
        );
        // Use after delete on notes and projects too.
        let n = s
            .call(
                "POST",
                "/v1/orgs/acme/notes",
                Some(&alice),
                &[],
                Some(json!({"title": "tmp"})),
            )
            .await
            .body["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            s.call(
                "DELETE",
                &format!("/v1/orgs/acme/notes/{n}"),
                Some(&alice),
                &[],
                None
            )
            .await
            .status,
            204
        );
        for m in ["GET", "PATCH", "DELETE"] {
            let body = (m == "PATCH").then(|| json!({"title": "x"}));
            assert_eq!(
                s.call(
                    m,
                    &format!("/v1/orgs/acme/notes/{n}"),
                    Some(&alice),
                    &[],
                    body
                )
                .await
                .status,
                404,
                "{m}"
            );
        }
        let p = s
            .call(
                "POST",
                "/v1/orgs/acme/projects",
                Some(&alice),
                &[],
                Some(json!({"key": "TMP", "name": "tmp"})),
            )
            .await
            .body["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            s.call(
                "DELETE",
                &format!("/v1/orgs/acme/projects/{p}"),
                Some(&alice),
                &[],
                None
            )
            .await
            .status,
            204
        );
        assert_eq!(
            s.get(&format!("/v1/orgs/acme/projects/{p}"), &alice)
                .await
                .status,
            404
        );
        let r = s
            .call(
                "POST",
                "/v1/orgs/acme/tickets",
                Some(&alice),
                &[],
                Some(json!({"project_id": p, "title": "orphan"})),
            )
            .await;
        assert_eq!(r.status, 422, "a deleted project cannot take tickets");
    }
);
