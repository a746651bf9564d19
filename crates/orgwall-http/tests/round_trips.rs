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

/// A cold API key (not in the access cache) costs one extra flight before the request's
/// own: the key lookup and its role are read in one transaction, two pipelined statements
/// (issue 16 item 4; it was two transactions, one flight each, one after the other).
/// Counted per key, each key new to the cache; the first keys prepare the statements on
/// the pool's connections.
#[tokio::test]
async fn a_cold_api_key_costs_one_extra_flight() {
    let (t, db, wire, _gate) = proxied().await;
    db.set_access_cache(true);
    let d = Demo::load(&t.db).await;
    let server = TestServer::with_state(AppState::new(db.clone())).await;
    let token = server.demo_login("alice@acme.test").await;
    let list = server.get("/v1/orgs/acme/tickets?limit=1", &token).await;
    assert_eq!(list.status, 200, "{:?}", list.body);
    let id = list.body["items"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/orgs/acme/tickets/{id}");
    let scope = d.alice_in_acme(&t.db).await;
    let mut keys = Vec::new();
    for i in 0..8 {
        let mut tx = t.db.write(&scope).await.unwrap();
        let (_, k) =
            orgwall_store::repo::api_keys::create(&mut tx, &format!("k{i}"), "member", None)
                .await
                .unwrap();
        tx.commit().await.unwrap();
        keys.push(k);
    }
    until_listening(&db, || async {
        assert_eq!(server.get(&path, &token).await.status, 200);
    })
    .await;
    let last = keys.pop().unwrap();
    // Warm the slug and every connection's prepared statements with the other keys.
    for k in &keys {
        for _ in 0..2 {
            let r = server.get(&path, k).await;
            assert_eq!(r.status, 200, "{:?}", r.body);
        }
    }
    let turns = turns_of(&wire, async {
        let r = server.get(&path, &last).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body["id"].as_str(), Some(id.as_str()));
    })
    .await;
    // The lookup's COMMIT is queued, not awaited: on the same connection it rides with
    // the request's flight (4 + 1), on another one it is a turn of its own.
    assert!(
        turns == vec![4, 5, 1] || turns == vec![4, 1, 4, 1],
        "a cold key: one flight (BEGIN, lookup prelude, key, role) with its queued COMMIT, \
         then the request's own flight and COMMIT; got {turns:?}"
    );
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
