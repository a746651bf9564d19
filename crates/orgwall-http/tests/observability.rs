//! Observability: a full scenario's logs, captured at TRACE level from every crate, carry
//! the tenant fields and never a token or password; `/metrics` speaks Prometheus with
//! route templates (no tenant data).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use orgwall_testkit::{Demo, TestDb, TestServer};
use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture() -> &'static Capture {
    static C: OnceLock<Capture> = OnceLock::new();
    C.get_or_init(|| {
        let c = Capture::default();
        let w = c.clone();
        tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_env_filter(orgwall_http::log_filter("trace"))
            .with_writer(move || w.clone())
            .try_init()
            .unwrap();
        c
    })
}

async fn outbox_token(t: &TestDb, prefix: &str, to: &str) -> String {
    let mut tx =
        t.db.system("outbox", orgwall_store::Mode::Read)
            .await
            .unwrap();
    let row = tx
        .query_one(
            "SELECT body FROM outbox WHERE recipient = $1 ORDER BY id DESC LIMIT 1",
            orgwall_store::params![to],
        )
        .await
        .unwrap();
    let body: String = row.get(0).unwrap();
    let i = body.find(prefix).unwrap();
    body[i..i + prefix.len() + 64].to_owned()
}

async fn scenario(t: &TestDb, secrets: &mut Vec<String>) -> String {
    Demo::load(&t.db).await;
    let s = TestServer::start(&t.db).await;
    let pw = format!("a secret password {}", uuid::Uuid::now_v7().simple());
    secrets.push(pw.clone());
    let r = s
        .call(
            "POST",
            "/v1/auth/signup",
            None,
            &[],
            Some(json!({"email": "dora@example.test", "password": pw, "name": "Dora"})),
        )
        .await;
    assert_eq!(r.status, 201);
    let verify = outbox_token(t, "owv_", "dora@example.test").await;
    secrets.push(verify.clone());
    assert_eq!(
        s.call(
            "POST",
            "/v1/auth/verify-email",
            None,
            &[],
            Some(json!({"token": verify}))
        )
        .await
        .status,
        204
    );
    let dora = s.login("dora@example.test", &pw).await;
    let alice = s.demo_login("alice@acme.test").await;
    secrets.extend([dora.clone(), alice.clone()]);
    let r = s
        .call(
            "POST",
            "/v1/orgs/acme/invitations",
            Some(&alice),
            &[],
            Some(json!({"email": "dora@example.test", "role": "member"})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let invite = r.body["token"].as_str().unwrap().to_owned();
    secrets.push(invite.clone());
    assert_eq!(
        s.call(
            "POST",
            "/v1/invitations/accept",
            Some(&dora),
            &[],
            Some(json!({"token": invite}))
        )
        .await
        .status,
        200
    );
    let r = s
        .call(
            "POST",
            "/v1/orgs/acme/api-keys",
            Some(&alice),
            &[],
            Some(json!({"name": "ci", "role": "viewer"})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let key = r.body["key"].as_str().unwrap().to_owned();
    secrets.push(key.clone());
    assert_eq!(s.get("/v1/orgs/acme/projects", &key).await.status, 200);
    assert_eq!(s.get("/v1/orgs/acme/notes", &dora).await.status, 200);
    // A failed login with a wrong password must not log it either.
    let wrong = format!("wrong password {}", uuid::Uuid::now_v7().simple());
    secrets.push(wrong.clone());
    s.call(
        "POST",
        "/v1/auth/login",
        None,
        &[],
        Some(json!({"email": "dora@example.test", "password": wrong})),
    )
    .await;
    s.call("POST", "/v1/auth/logout", Some(&dora), &[], None)
        .await;

    // Not on the public listener: the operator's own (`serve --metrics-listen`).
    let public = s.call("GET", "/metrics", None, &[], None).await;
    assert_eq!((public.status, public.code()), (404, "not_found"));
    s.metrics().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_carry_tenant_fields_and_no_secret_and_metrics_are_exposed() {
    let cap = capture();
    let mut secrets = Vec::new();
    for kind in [
        orgwall_store::BackendKind::Sqlite,
        orgwall_store::BackendKind::Postgres,
    ] {
        let t = TestDb::new(kind).await;
        let metrics = scenario(&t, &mut secrets).await;
        assert!(metrics.contains("orgwall_http_requests_total{method=\"GET\",route=\"/v1/orgs/{org}/projects\",status=\"200\"}"), "{metrics}");
        assert!(metrics.contains("orgwall_http_request_duration_seconds_bucket"));
        assert!(metrics.contains("orgwall_db_pool_connections{state=\"max\"}"));
        assert!(metrics.contains("orgwall_jobs{status=\"queued\"}"));
        assert!(
            !metrics.contains("acme") && !metrics.contains("owk_") && !metrics.contains("ows_")
        );
    }
    let logs = String::from_utf8(cap.0.lock().unwrap().clone()).unwrap();
    assert!(logs.len() > 1000, "the capture works");
    for s in &secrets {
        assert!(
            !logs.contains(s.as_str()),
            "a secret reached the logs: {}...",
            &s[..12.min(s.len())]
        );
    }
    // Request spans carry the tenant fields.
    let tagged = logs
        .lines()
        .filter(|l| {
            l.contains("\"request_id\"") && l.contains("\"org_id\"") && l.contains("\"user_id\"")
        })
        .count();
    assert!(
        tagged > 0,
        "no log line carries request_id, org_id and user_id"
    );
}
