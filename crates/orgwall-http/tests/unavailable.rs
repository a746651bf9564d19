//! PostgreSQL going away under a request in flight is 503 with `Retry-After`, not 500:
//! the request's backend is terminated (`pg_terminate_backend`, what a server shutdown
//! does to it) while the request waits on a lock, and the next request, once the
//! server is back, is served.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use orgwall_testkit::{Demo, TestDb, TestServer};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_backend_mid_request_is_503_with_retry_after() {
    orgwall_testkit::init_logs();
    let t = TestDb::new(orgwall_store::BackendKind::Postgres).await;
    Demo::load(&t.db).await;
    let s = TestServer::start(&t.db).await;
    let alice = s.demo_login("alice@acme.test").await;
    // Warm: the wall's reads come from the access cache, the request reaches the notes.
    assert_eq!(s.get("/v1/orgs/acme/notes", &alice).await.status, 200);

    let (admin, conn) = tokio_postgres::connect(&t.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    admin
        .batch_execute("BEGIN; LOCK TABLE notes IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let (s2, token) = (&s, alice.clone());
    let request = async move {
        s2.call(
            "POST",
            "/v1/orgs/acme/notes",
            Some(&token),
            &[],
            Some(json!({"title": "while the server goes away"})),
        )
        .await
    };
    let killer = async {
        // Wait until the request's backend waits on the lock, then terminate it.
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let rows = admin
                .query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                      WHERE datname = current_database() AND pid <> pg_backend_pid()
                        AND wait_event_type = 'Lock'",
                    &[],
                )
                .await
                .unwrap();
            if !rows.is_empty() {
                return;
            }
        }
        panic!("the request never waited on the lock");
    };
    let (r, ()) = tokio::join!(request, killer);
    assert_eq!((r.status, r.code()), (503, "unavailable"), "{:?}", r.body);
    assert!(r.headers.contains_key("retry-after"), "{:?}", r.headers);
    admin.batch_execute("ROLLBACK").await.unwrap();
    // The pool recovers: the next request is served.
    let r = s
        .call(
            "POST",
            "/v1/orgs/acme/notes",
            Some(&alice),
            &[],
            Some(json!({"title": "after"})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
}
