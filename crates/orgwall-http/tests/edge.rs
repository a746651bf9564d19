//! Bad input refused at the edge, on both backends, and an OpenAPI document that says
//! what the API does: query parameters, error answers, the multipart upload, the rules
//! that are not one permission, 405s as problems. (Every answer of every test is also
//! checked against the document by the test server: see `orgwall_testkit::conformance`.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use orgwall_testkit::{both, Demo, TestDb, TestServer};
use serde_json::{json, Value};

both!(
    control_characters_are_refused_everywhere_with_one_rule,
    |t: TestDb| async move {
        Demo::load(&t.db).await;
        let s = TestServer::start(&t.db).await;
        let alice = s.demo_login("alice@acme.test").await;
        let project = s.get("/v1/orgs/acme/projects", &alice).await.body["items"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let post = |path: &'static str, body: Value| {
            let (s, alice) = (&s, &alice);
            async move { s.call("POST", path, Some(alice), &[], Some(body)).await }
        };
        // NUL anywhere: names, titles, bodies, nested or not, keys too.
        for (path, body) in [
            ("/v1/orgs/acme/notes", json!({"title": "a\u{0}b"})),
            (
                "/v1/orgs/acme/notes",
                json!({"title": "ok", "body": "x\u{0}"}),
            ),
            ("/v1/orgs/acme/projects", json!({"name": "p\u{0}"})),
            (
                "/v1/orgs/acme/tickets",
                json!({"project_id": project, "title": "t", "body": "\u{0}"}),
            ),
            (
                "/v1/orgs/acme/roles",
                json!({"key": "k\u{0}", "name": "n", "permissions": []}),
            ),
            (
                "/v1/orgs/acme/api-keys",
                json!({"name": "k\u{0}", "role": "viewer"}),
            ),
            (
                "/v1/orgs/acme/invitations",
                json!({"email": "x\u{0}@example.test", "role": "viewer"}),
            ),
            ("/v1/orgs/acme/notes", json!({"title\u{0}": "ok"})),
            // Other control characters: none in long text but tab and line breaks...
            (
                "/v1/orgs/acme/notes",
                json!({"title": "ok", "body": "red \u{1b}[31m"}),
            ),
            (
                "/v1/orgs/acme/notes",
                json!({"title": "ok", "body": "\u{7f}"}),
            ),
            (
                "/v1/orgs/acme/notes",
                json!({"title": "ok", "body": "\u{85}"}),
            ),
            // ...and none at all in names and titles.
            ("/v1/orgs/acme/notes", json!({"title": "two\nlines"})),
            ("/v1/orgs/acme/projects", json!({"name": "tab\there"})),
            (
                "/v1/orgs/acme/tickets",
                json!({"project_id": project, "title": "a\rb"}),
            ),
        ] {
            let r = post(path, body.clone()).await;
            assert_eq!(
                (r.status, r.code()),
                (422, "validation_failed"),
                "{path} {body}"
            );
        }
        let r = s
            .call(
                "POST",
                "/v1/auth/signup",
                None,
                &[],
                Some(json!({"email": "n@example.test", "password": "long enough\u{0}pass", "name": "N"})),
            )
            .await;
        assert_eq!((r.status, r.code()), (422, "validation_failed"));
        let r = s
            .call(
                "POST",
                "/v1/auth/signup",
                None,
                &[],
                Some(json!({"email": "n@example.test", "password": "long enough pass", "name": "N\u{1}"})),
            )
            .await;
        assert_eq!((r.status, r.code()), (422, "validation_failed"));
        // Updates too.
        let note = post("/v1/orgs/acme/notes", json!({"title": "fine"})).await;
        assert_eq!(note.status, 201);
        let id = note.body["id"].as_str().unwrap();
        let r = s
            .call(
                "PATCH",
                &format!("/v1/orgs/acme/notes/{id}"),
                Some(&alice),
                &[],
                Some(json!({"title": "x\u{0}"})),
            )
            .await;
        assert_eq!((r.status, r.code()), (422, "validation_failed"));
        let r = s
            .call(
                "PATCH",
                "/v1/orgs/acme",
                Some(&alice),
                &[],
                Some(json!({"name": "Acme\n"})),
            )
            .await;
        assert_eq!((r.status, r.code()), (422, "validation_failed"));
        // Query values.
        for q in ["q=a%00b", "q=%1b", "cursor=%00", "zz%00=1"] {
            let r = s.get(&format!("/v1/orgs/acme/notes?{q}"), &alice).await;
            assert_eq!((r.status, r.code()), (422, "validation_failed"), "{q}");
        }
        // An org claim in the path that is not text names no route: 404, never 500.
        for path in [
            "/v1/orgs/a%00b/notes",
            "/v1/orgs/acme%00/notes",
            "/v1/orgs/%0a/notes",
        ] {
            let r = s.get(path, &alice).await;
            assert_eq!((r.status, r.code()), (404, "not_found"), "{path}");
        }
        // Long text keeps tabs and line breaks; names keep any printable text.
        let r = post(
            "/v1/orgs/acme/notes",
            json!({"title": "Été — 🎉", "body": "line one\r\n\tline two\n"}),
        )
        .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        assert_eq!(r.body["body"], "line one\r\n\tline two\n");
        let ticket = post(
            "/v1/orgs/acme/tickets",
            json!({"project_id": project, "title": "t"}),
        )
        .await;
        let tid = ticket.body["id"].as_str().unwrap();
        let r = s
            .call(
                "POST",
                &format!("/v1/orgs/acme/tickets/{tid}/comments"),
                Some(&alice),
                &[],
                Some(json!({"body": "multi\nline"})),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
);

both!(json_arrays_are_not_objects, |t: TestDb| async move {
    Demo::load(&t.db).await;
    let s = TestServer::start(&t.db).await;
    let alice = s.demo_login("alice@acme.test").await;
    let before = t.owner_count("notes", "1 = 1").await;
    for body in [
        json!(["by position", "body"]),
        json!("title"),
        json!(1),
        json!(null),
    ] {
        let r = s
            .call(
                "POST",
                "/v1/orgs/acme/notes",
                Some(&alice),
                &[],
                Some(body.clone()),
            )
            .await;
        assert_eq!((r.status, r.code()), (422, "validation_failed"), "{body}");
    }
    let r = s
        .call(
            "POST",
            "/v1/auth/login",
            None,
            &[],
            Some(json!(["alice@acme.test", "orgwall-demo"])),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "validation_failed"));
    assert_eq!(t.owner_count("notes", "1 = 1").await, before);
});

both!(wrong_methods_are_problems, |t: TestDb| async move {
    let s = TestServer::start(&t.db).await;
    for (m, path) in [
        ("PUT", "/v1/orgs/acme/notes"),
        ("DELETE", "/v1/auth/login"),
        ("POST", "/healthz"),
    ] {
        let r = s.call(m, path, None, &[], None).await;
        assert_eq!(
            (r.status, r.code()),
            (405, "method_not_allowed"),
            "{m} {path}"
        );
        assert_eq!(r.headers["content-type"], "application/problem+json");
    }
});

fn op<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let o = &doc["paths"][path][method];
    assert!(o.is_object(), "{method} {path} is not in the document");
    o
}

fn param_names(o: &Value, place: &str) -> Vec<String> {
    o["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["in"] == place)
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

both!(
    the_document_describes_queries_errors_uploads_and_rules,
    |t: TestDb| async move {
        Demo::load(&t.db).await;
        let s = TestServer::start(&t.db).await;
        let doc = s
            .call("GET", "/v1/openapi.json", None, &[], None)
            .await
            .body;
        let mut q = param_names(op(&doc, "get", "/v1/orgs/{org}/tickets"), "query");
        q.sort();
        assert_eq!(q, ["assignee", "cursor", "limit", "project", "q", "status"]);
        let limit = op(&doc, "get", "/v1/tickets")["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "limit")
            .unwrap()
            .clone();
        assert_eq!(limit["schema"]["type"], "integer");
        assert_eq!(limit["schema"]["maximum"], 200);
        let mut q = param_names(op(&doc, "get", "/v1/orgs/{org}/audit-events"), "query");
        q.sort();
        assert_eq!(q, ["action", "actor", "cursor", "limit", "since", "until"]);
        for path in [
            "/v1/orgs/{org}/notes",
            "/v1/orgs/{org}/members",
            "/v1/orgs/{org}/roles",
            "/v1/orgs/{org}/files",
            "/v1/orgs/{org}/exports",
            "/v1/orgs/{org}/projects",
            "/v1/orgs/{org}/api-keys",
            "/v1/orgs/{org}/invitations",
        ] {
            let q = param_names(op(&doc, "get", path), "query");
            assert!(
                q.contains(&"limit".to_owned()) && q.contains(&"cursor".to_owned()),
                "{path}"
            );
        }
        // Errors: derived from the access kind and the body, plus the route's own.
        let codes = |o: &Value| -> Vec<String> {
            o["responses"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect()
        };
        let create_note = codes(op(&doc, "post", "/v1/orgs/{org}/notes"));
        for c in [
            "201", "400", "401", "403", "404", "413", "415", "422", "429", "503",
        ] {
            assert!(create_note.contains(&c.to_owned()), "{c} {create_note:?}");
        }
        assert!(
            codes(op(&doc, "get", "/v1/orgs/{org}/exports/{id}/download"))
                .contains(&"410".to_owned())
        );
        assert!(codes(op(&doc, "post", "/v1/invitations/accept")).contains(&"410".to_owned()));
        assert!(codes(op(&doc, "post", "/v1/auth/login")).contains(&"429".to_owned()));
        // The upload's body.
        let upload = &op(&doc, "post", "/v1/orgs/{org}/files")["requestBody"]["content"]
            ["multipart/form-data"]["schema"];
        assert_eq!(upload["properties"]["file"]["format"], "binary");
        // Every org route that needs no single permission says what it does need.
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (m, o) in item.as_object().unwrap() {
                if o["x-access"] == "org" && o["x-permission"].is_null() {
                    assert!(
                        o["x-rule"].is_string(),
                        "{m} {path} says nothing of its rule"
                    );
                }
            }
        }
        assert!(
            op(&doc, "delete", "/v1/orgs/{org}/members/{user_id}")["x-rule"]
                .as_str()
                .unwrap()
                .contains("members:remove")
        );
        // /metrics is not a public route.
        assert!(doc["paths"]["/metrics"].is_null());

        // Each GET, sent a parameter it does not know: a route that refuses it (422)
        // documents its parameters (the server checks the status against the document).
        let alice = s.demo_login("alice@acme.test").await;
        for (path, item) in doc["paths"].as_object().unwrap() {
            if item["get"].is_null() || path.contains('{') && !path.starts_with("/v1/orgs/{org}") {
                continue;
            }
            if path.matches('{').count() > 1 {
                continue;
            }
            let concrete = path.replace("{org}", "acme");
            let r = s.get(&format!("{concrete}?zz_unknown=1"), &alice).await;
            if r.status == 422 {
                assert!(
                    !param_names(&item["get"], "query").is_empty(),
                    "GET {path} refuses unknown parameters but documents none"
                );
            }
        }
    }
);
