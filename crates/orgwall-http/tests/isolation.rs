//! The isolation suite: the probe (a harness that walks the OpenAPI document) against the
//! real application with the demo data, on both backends. Acme's owner attacks Globex,
//! whose owner first plants canaries in every writable resource. Every route of the
//! document is exercised (a route added tomorrow is covered automatically), and the suite
//! fails on any leak or any route left unexercised.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use orgwall_probe::client::Principal;
use orgwall_probe::Config;
use orgwall_testkit::{both, Demo, TestDb, TestServer};

both!(no_route_leaks_across_orgs, |t: TestDb| async move {
    Demo::load(&t.db).await;
    let s = TestServer::start(&t.db).await;
    let alice = s.demo_login("alice@acme.test").await;
    let bob = s.demo_login("bob@globex.test").await;
    // The document cannot describe a multipart upload to the probe, so Globex's file is
    // uploaded here: its id is then discovered and tried in every file route.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"globex confidential".to_vec())
            .file_name("plan.txt")
            .mime_str("text/plain")
            .unwrap(),
    );
    let r = s
        .http
        .post(format!("{}/v1/orgs/globex/files", s.base))
        .bearer_auth(&bob)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let cfg = Config {
        spec: format!("{}/v1/openapi.json", s.base),
        base_url: s.base.clone(),
        a: Principal {
            name: "alice@acme".into(),
            headers: vec![("Authorization".into(), format!("Bearer {alice}"))],
            org: Some("acme".into()),
        },
        b: Principal {
            name: "bob@globex".into(),
            headers: vec![("Authorization".into(), format!("Bearer {bob}"))],
            org: Some("globex".into()),
        },
        write: true,
        ..Config::default()
    };
    let r = orgwall_probe::run(&cfg).await.unwrap();
    assert_eq!(r.leaks(), 0, "{}", r.table());
    assert!(r.complete(), "{}", r.table());
    let unexercised: Vec<String> = r
        .unexercised()
        .iter()
        .map(|o| format!("{} {}", o.method, o.path))
        .collect();
    assert!(unexercised.is_empty(), "not exercised: {unexercised:?}");
    // The document really is walked: every declared route is in the report.
    let declared: usize = orgwall_http::routes::all()
        .iter()
        .map(|r| r.spec.paths().len())
        .sum();
    assert_eq!(r.ops.len(), declared);
    assert!(r.discovered_b > 20 && r.canaries > 5, "{}", r.table());
    // Globex's data is intact and Acme's session still works.
    assert!(r.integrity.is_empty(), "{:?}", r.integrity);
    assert_eq!(s.get("/v1/me", &alice).await.status, 200);
});
