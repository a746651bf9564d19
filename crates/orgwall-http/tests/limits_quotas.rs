//! Rate limits (noisy neighbour, shared through Redis across instances, Redis outage) and
//! plan quotas (exact under concurrency).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use orgwall_http::limits::{LimitConfig, Limits};
use orgwall_http::AppState;
use orgwall_testkit::{both, Demo, TestDb, TestServer};
use serde_json::json;
use std::sync::Arc;

fn generous() -> LimitConfig {
    LimitConfig {
        login_per_ip: 10_000,
        user_per_minute: 1_000_000,
        ..LimitConfig::default()
    }
}

both!(
    a_noisy_org_is_limited_and_its_neighbour_is_not,
    |t: TestDb| async move {
        let d = Demo::load(&t.db).await;
        orgwall_store::quota::set_rate_limit(&t.db, d.acme, Some(20))
            .await
            .unwrap();
        let s = TestServer::start(&t.db).await;
        let alice = s.demo_login("alice@acme.test").await;
        let bob = s.demo_login("bob@globex.test").await;
        let mut statuses = Vec::new();
        for _ in 0..30 {
            let r = s.get("/v1/orgs/acme/projects", &alice).await;
            if r.status == 429 {
                assert_eq!(r.code(), "rate_limited");
                assert!(
                    r.headers["retry-after"]
                        .to_str()
                        .unwrap()
                        .parse::<u64>()
                        .unwrap()
                        >= 1
                );
                assert_eq!(r.headers["ratelimit-remaining"], "0");
            } else {
                assert_eq!(r.headers["ratelimit-limit"], "20");
            }
            statuses.push(r.status);
            let g = s.get("/v1/orgs/globex/projects", &bob).await;
            assert_eq!(g.status, 200, "the neighbour is never limited");
        }
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 20);
        assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 10);
    }
);

both!(
    quotas_hold_exactly_under_concurrent_creates,
    |t: TestDb| async move {
        let d = Demo::load(&t.db).await;
        t.owner_exec("INSERT INTO plans (name, max_members, max_projects, max_tickets, max_storage_bytes, rate_limit_per_minute) VALUES ('tiny', 5, 4, 7, 1000, 1000000)").await;
        orgwall_store::quota::set_plan(&t.db, d.acme, "tiny")
            .await
            .unwrap();
        let s = TestServer::start(&t.db).await;
        let alice = s.demo_login("alice@acme.test").await;
        let u = s.get("/v1/orgs/acme/usage", &alice).await;
        assert_eq!(u.status, 200);
        assert_eq!(u.body["plan"], "tiny");
        assert_eq!(u.body["used"]["projects"], 2);
        assert_eq!(u.body["limits"]["projects"], 4);
        // Eight concurrent creates with two places left: exactly two succeed.
        let calls = (0..8).map(|i| {
            let s = &s;
            let alice = alice.clone();
            async move {
                s.call(
                    "POST",
                    "/v1/orgs/acme/projects",
                    Some(&alice),
                    &[],
                    Some(json!({"key": format!("Q{i}"), "name": "q"})),
                )
                .await
            }
        });
        let results = futures::future::join_all(calls).await;
        let ok = results.iter().filter(|r| r.status == 201).count();
        let refused: Vec<_> = results
            .iter()
            .filter(|r| r.status != 201)
            .map(|r| (r.status, r.code().to_owned()))
            .collect();
        assert_eq!(ok, 2, "{refused:?}");
        assert!(
            refused
                .iter()
                .all(|(s, c)| *s == 403 && c == "quota_exceeded"),
            "{refused:?}"
        );
        assert_eq!(
            t.owner_count("projects", &format!("org_id = '{}'", d.acme))
                .await,
            4
        );
        // Tickets: 6 exist, the plan allows 7.
        let p = s.get("/v1/orgs/acme/projects", &alice).await.body["items"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = s
            .call(
                "POST",
                "/v1/orgs/acme/tickets",
                Some(&alice),
                &[],
                Some(json!({"project_id": p, "title": "7th"})),
            )
            .await;
        assert_eq!(r.status, 201);
        let r = s
            .call(
                "POST",
                "/v1/orgs/acme/tickets",
                Some(&alice),
                &[],
                Some(json!({"project_id": p, "title": "8th"})),
            )
            .await;
        assert_eq!((r.status, r.code()), (403, "quota_exceeded"));
        // Globex, on the free plan, is unaffected.
        let bob = s.demo_login("bob@globex.test").await;
        let r = s
            .call(
                "POST",
                "/v1/orgs/globex/projects",
                Some(&bob),
                &[],
                Some(json!({"key": "MORE", "name": "m"})),
            )
            .await;
        assert_eq!(r.status, 201);
    }
);

/// A Redis server of the test's own, on a free port, killed when dropped.
struct OwnRedis {
    child: std::process::Child,
    url: String,
}

impl OwnRedis {
    fn start() -> OwnRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is required for this test (scripts/test installs it)");
        let url = format!("redis://127.0.0.1:{port}");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        OwnRedis { child, url }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_limit_through_redis_and_survive_its_outage() {
    let t = TestDb::new(orgwall_store::BackendKind::Sqlite).await;
    let d = Demo::load(&t.db).await;
    orgwall_store::quota::set_rate_limit(&t.db, d.acme, Some(10))
        .await
        .unwrap();
    let mut redis = OwnRedis::start();
    let mut servers = Vec::new();
    for _ in 0..2 {
        let mut state = AppState::new(t.db.clone());
        let limits = Limits::with_redis(generous(), &redis.url).await.unwrap();
        assert!(limits.shared());
        state.limits = Arc::new(limits);
        servers.push(TestServer::with_state(state).await);
    }
    let alice = servers[0].demo_login("alice@acme.test").await;
    let mut ok = 0;
    for i in 0..20 {
        let r = servers[i % 2].get("/v1/orgs/acme/projects", &alice).await;
        assert!(r.status == 200 || r.status == 429, "{}", r.status);
        ok += usize::from(r.status == 200);
    }
    assert_eq!(ok, 10, "one limit of 10 across both instances, not 10 each");

    // Redis goes away mid-test: requests are decided locally, never failed.
    redis.stop();
    let mut statuses = Vec::new();
    for i in 0..6 {
        statuses.push(
            servers[i % 2]
                .get(
                    "/v1/orgs/globex/projects",
                    &servers[1].demo_login("bob@globex.test").await,
                )
                .await
                .status,
        );
    }
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let r = servers[0].get("/v1/orgs/acme/projects", &alice).await;
    assert!(r.status == 200 || r.status == 429, "{}", r.status);
}
