//! A whole warm HTTP request costs PostgreSQL one round trip, asserted structurally with
//! the counting proxy of `orgwall_testkit::wire` (not timed): the session, the org slug in
//! the path, the membership and its permissions come from the access cache; the handler's
//! transaction sends `BEGIN READ ONLY`, the scope prelude, the ticket and its history in
//! one flight (one turn of four requests), then queues `COMMIT` (a turn of one request that
//! nobody waits for: the store's round-trip test proves it by withholding its answer).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use orgwall_http::AppState;
use orgwall_testkit::wire::{proxied, turns_of};
use orgwall_testkit::{until_listening, Demo, TestServer};

#[tokio::test]
async fn a_warm_scoped_request_is_one_round_trip() {
    let (t, db, wire, _gate) = proxied().await;
    db.set_access_cache(true);
    Demo::load(&t.db).await;
    let server = TestServer::with_state(AppState::new(db.clone())).await;
    let token = server.demo_login("alice@acme.test").await;
    let list = server.get("/v1/orgs/acme/tickets?limit=1", &token).await;
    assert_eq!(list.status, 200, "{:?}", list.body);
    let id = list.body["items"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/orgs/acme/tickets/{id}");

    // The first lookups start the cache's change listener; wait until it listens.
    until_listening(&db, || async {
        assert_eq!(server.get(&path, &token).await.status, 200);
    })
    .await;
    // Fill the cache and the connection's prepared statements.
    for _ in 0..2 {
        turns_of(&wire, async {
            assert_eq!(server.get(&path, &token).await.status, 200);
        })
        .await;
    }

    let hits = db.access_cache_stats().hits;
    let turns = turns_of(&wire, async {
        let r = server.get(&path, &token).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body["id"].as_str(), Some(id.as_str()));
    })
    .await;
    assert_eq!(
        turns,
        vec![4, 1],
        "a warm detail request must be one round trip (BEGIN, prelude, ticket, history), \
         then the queued COMMIT"
    );
    assert!(
        db.access_cache_stats().hits >= hits + 3,
        "session, org slug and membership must come from the cache"
    );
}

/// A cold API key (not in the access cache) costs no extra flight for a route that names
/// its one-flight read (`RouteSpec::ahead`): the key lookup, its role and the ticket with
/// its history are read in one transaction, four pipelined statements (issue 16 item 4:
/// it was two transactions one after the other, then one plus the request's own). A
/// route that names none, or a request that names its org only through the key, costs
/// one extra flight. Counted per key, each key new to the cache; the first keys prepare
/// the statements on the pool's connections.
#[tokio::test]
async fn a_cold_api_key_costs_one_round_trip() {
    let (t, db, wire, d, server, token, ticket) = acme_through_the_proxy().await;
    let id = ticket["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/orgs/acme/tickets/{id}");
    let scope = d.alice_in_acme(&t.db).await;
    let mut keys = Vec::new();
    for _ in 0..12 {
        keys.push(new_key(&t.db, &scope, "member").await.1);
    }
    until_listening(&db, || async {
        assert_eq!(server.get(&path, &token).await.status, 200);
    })
    .await;
    let fresh = keys.split_off(8);
    // Warm the slug and every connection's prepared statements with the other keys.
    let orgless = format!("/v1/tickets/{id}");
    let comments = format!("/v1/orgs/acme/tickets/{id}/comments");
    for k in &keys {
        for p in [&path, &orgless, &comments] {
            let r = server.get(p, k).await;
            assert_eq!(r.status, 200, "{:?}", r.body);
        }
    }
    let cold = |key: &str, path: &str, headers: Vec<(&'static str, String)>| {
        let (server, wire, key, path) = (&server, &wire, key.to_owned(), path.to_owned());
        async move {
            let mut body = serde_json::Value::Null;
            let turns = turns_of(wire, async {
                let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let r = server.call("GET", &path, Some(&key), &h, None).await;
                assert_eq!(r.status, 200, "{:?}", r.body);
                body = r.body;
            })
            .await;
            (turns, body)
        }
    };
    // The org named in the path (by slug, from the cache), or by id in the header.
    let (turns, body) = cold(&fresh[0], &path, vec![]).await;
    assert_eq!(body["id"].as_str(), Some(id.as_str()));
    assert_eq!(
        turns,
        vec![6, 1],
        "a cold key: one flight (BEGIN, lookup prelude, key, role, ticket, history), then \
         its queued COMMIT"
    );
    let (turns, body) = cold(
        &fresh[1],
        &orgless,
        vec![("x-organization-id", d.acme.to_string())],
    )
    .await;
    assert_eq!(body["id"].as_str(), Some(id.as_str()));
    assert_eq!(turns, vec![6, 1], "the org named by id in the header");
    // No org named but through the key, or a route that names no flight: the lookup's
    // flight (BEGIN, lookup prelude, key, role), then the request's own. (Their queued
    // COMMITs ride with the next flight on the same connection, or are turns of one.)
    for (key, p) in [(&fresh[2], &orgless), (&fresh[3], &comments)] {
        let (turns, _) = cold(key, p, vec![]).await;
        assert!(
            turns.first() == Some(&4) && turns.iter().filter(|&&n| n > 1).count() == 2,
            "{p}: the lookup's flight, then the request's own; got {turns:?}"
        );
    }
    // And an unknown key is refused after that one flight too, with nothing read.
    let turns = turns_of(&wire, async {
        let r = server.get(&path, "owk_not_a_key_at_all").await;
        assert_eq!(r.status, 401, "{:?}", r.body);
    })
    .await;
    assert!(
        turns.len() <= 2,
        "an unknown key: one flight at most, got {turns:?}"
    );
}

/// The demo through the counting proxy, the access cache on, a server, Alice's session
/// and Acme's first ticket.
async fn acme_through_the_proxy() -> (
    orgwall_testkit::TestDb,
    orgwall_store::Db,
    orgwall_testkit::wire::Shared,
    Demo,
    TestServer,
    String,
    serde_json::Value,
) {
    let (t, db, wire, _gate) = proxied().await;
    db.set_access_cache(true);
    let d = Demo::load(&t.db).await;
    let server = TestServer::with_state(AppState::new(db.clone())).await;
    let token = server.demo_login("alice@acme.test").await;
    let list = server.get("/v1/orgs/acme/tickets?limit=1", &token).await;
    assert_eq!(list.status, 200, "{:?}", list.body);
    let ticket = list.body["items"][0].clone();
    (t, db, wire, d, server, token, ticket)
}

async fn new_key(
    db: &orgwall_store::Db,
    scope: &orgwall_store::access::OrgScope,
    role: &str,
) -> (orgwall_core::ApiKeyId, String) {
    let mut tx = db.write(scope).await.unwrap();
    let (k, token) = orgwall_store::repo::api_keys::create(&mut tx, "k", role, None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (k.id, token)
}

/// What a cold key's lookup read ahead reaches no request the wall refuses: a key of
/// another org (403 whether the path names that org's ticket or the key's own org), a
/// role without the route's permission (403), a revoked key (401); a key's own org with
/// another org's ticket id is 404. Each refused after its one flight, nothing of the
/// ticket in the answer.
#[tokio::test]
async fn a_read_sent_ahead_reaches_no_refused_request() {
    let (t, db, wire, d, server, alice, ticket) = acme_through_the_proxy().await;
    let (id, title) = (
        ticket["id"].as_str().unwrap().to_owned(),
        ticket["title"].as_str().unwrap().to_owned(),
    );
    let acme = d.alice_in_acme(&t.db).await;
    let globex = d.bob_in_globex(&t.db).await;
    let key = |scope, role| new_key(&t.db, scope, role);
    // A role that may not read tickets.
    let mut tx = t.db.write(&acme).await.unwrap();
    orgwall_store::repo::roles::create(
        &mut tx,
        "auditor",
        "Auditor",
        orgwall_core::PermissionSet::from_iter([orgwall_store::perms::PROJECTS_READ]),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    until_listening(&db, || async {
        let p = format!("/v1/orgs/acme/tickets/{id}");
        assert_eq!(server.get(&p, &alice).await.status, 200);
    })
    .await;
    // Warm every connection's statements (a warm-up key per case's shape).
    for _ in 0..2 {
        let (_, k) = key(&acme, "member").await;
        let p = format!("/v1/orgs/{}/tickets/{id}", d.acme);
        assert_eq!(server.get(&p, &k).await.status, 200);
    }
    let (revoked_id, revoked) = key(&acme, "member").await;
    let mut tx = t.db.write(&acme).await.unwrap();
    orgwall_store::repo::api_keys::revoke(&mut tx, revoked_id)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let cases = [
        (key(&globex, "member").await.1, d.acme, 403, "not_a_member"),
        (key(&globex, "member").await.1, d.globex, 404, "not_found"),
        (
            key(&acme, "auditor").await.1,
            d.acme,
            403,
            "permission_denied",
        ),
        (revoked, d.acme, 401, "unauthenticated"),
    ];
    for (token, org, status, code) in cases {
        let path = format!("/v1/orgs/{org}/tickets/{id}");
        let mut answer = None;
        let turns = turns_of(&wire, async {
            answer = Some(server.get(&path, &token).await);
        })
        .await;
        let r = answer.unwrap();
        assert_eq!(r.status, status, "{path}: {:?}", r.body);
        assert_eq!(r.body["code"].as_str(), Some(code), "{:?}", r.body);
        let text = r.body.to_string();
        assert!(!text.contains(&title), "{path}: {text}");
        assert!(
            turns.len() <= 2 && turns.first() == Some(&6),
            "{path}: the lookup's one flight with the read, then at most its COMMIT: {turns:?}"
        );
    }
}
