//! The audit log route: filters, paging, permission, and one org's events only.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use orgwall_testkit::{both, Demo, TestDb, TestServer};
use serde_json::{json, Value};

fn actions(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

both!(
    audit_log_filters_pages_and_stays_in_its_org,
    |t: TestDb| async move {
        let d = Demo::load(&t.db).await;
        let s = TestServer::start(&t.db).await;
        let alice = s.demo_login("alice@acme.test").await;
        let bob = s.demo_login("bob@globex.test").await;
        let carol = s.demo_login("carol@example.test").await;
        for name in ["Acme 1", "Acme 2", "Acme 3"] {
            let r = s
                .call(
                    "PATCH",
                    "/v1/orgs/acme",
                    Some(&alice),
                    &[],
                    Some(json!({"name": name})),
                )
                .await;
            assert_eq!(r.status, 200);
        }
        let r = s
            .call(
                "PATCH",
                "/v1/orgs/globex",
                Some(&bob),
                &[],
                Some(json!({"name": "Globex 2"})),
            )
            .await;
        assert_eq!(r.status, 200);

        let r = s
            .get("/v1/orgs/acme/audit-events?action=org.updated", &alice)
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(actions(&r.body), ["org.updated"; 3]);
        // Newest first.
        assert_eq!(r.body["items"][0]["detail"]["name"], "Acme 3");
        // Only acme's events, never globex's.
        let all = s.get("/v1/orgs/acme/audit-events?limit=200", &alice).await;
        assert!(all.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["detail"]["name"] != "Globex 2"));
        // By actor.
        let r = s
            .get(
                &format!("/v1/orgs/acme/audit-events?actor={}", d.bob),
                &alice,
            )
            .await;
        assert_eq!(actions(&r.body).len(), 0);
        let r = s
            .get(
                &format!(
                    "/v1/orgs/acme/audit-events?actor={}&action=org.updated",
                    d.alice
                ),
                &alice,
            )
            .await;
        assert_eq!(actions(&r.body).len(), 3);
        // Time range.
        let r = s
            .get(
                "/v1/orgs/acme/audit-events?until=2000-01-01T00:00:00Z",
                &alice,
            )
            .await;
        assert_eq!(actions(&r.body).len(), 0);
        let r = s
            .get(
                "/v1/orgs/acme/audit-events?since=2000-01-01T00:00:00Z&action=org.updated",
                &alice,
            )
            .await;
        assert_eq!(actions(&r.body).len(), 3);
        // Paging: no duplicates, newest first throughout.
        let p1 = s
            .get(
                "/v1/orgs/acme/audit-events?limit=2&action=org.updated",
                &alice,
            )
            .await;
        let c = p1.body["next_cursor"].as_str().unwrap().to_owned();
        let p2 = s
            .get(
                &format!("/v1/orgs/acme/audit-events?limit=2&action=org.updated&cursor={c}"),
                &alice,
            )
            .await;
        assert_eq!(actions(&p1.body).len() + actions(&p2.body).len(), 3);
        assert_eq!(p2.body["items"][0]["detail"]["name"], "Acme 1");
        // A member lacks audit:read; bad filters are 422.
        let r = s.get("/v1/orgs/acme/audit-events", &carol).await;
        assert_eq!((r.status, r.code()), (403, "permission_denied"));
        for bad in ["since=yesterday", "actor=nobody", "limit=0", "org_id=x"] {
            let r = s
                .get(&format!("/v1/orgs/acme/audit-events?{bad}"), &alice)
                .await;
            assert_eq!((r.status, r.code()), (422, "validation_failed"), "{bad}");
        }
    }
);
