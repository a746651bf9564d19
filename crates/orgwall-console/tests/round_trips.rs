//! A warm console ticket page costs PostgreSQL what the API's detail read costs: one round
//! trip, then the queued COMMIT. Counted on the wire with `orgwall_testkit::wire` (not
//! timed). The page reads more in that one flight (the ticket, its project, history,
//! comments and the org's members: 5 statements after BEGIN and the scope prelude, where
//! the API's detail sends 2); the session, the org slug and the membership come from the
//! access cache as for the API, and the switcher's list from the console's own.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use orgwall_testkit::wire::{proxied, turns_of};
use orgwall_testkit::Demo;

#[tokio::test]
async fn a_warm_ticket_page_is_one_round_trip_like_the_api_detail() {
    let (t, db, wire, _gate) = proxied().await;
    db.set_access_cache(true);
    Demo::load(&t.db).await;
    let s = common::Server::start(&db).await;
    let v = s.demo_login("alice@acme.test").await;
    let list = v.get("/o/acme/tickets").await;
    assert_eq!(list.status, 200);
    let id = list
        .body
        .split("href=\"/o/acme/tickets/")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let page = format!("/o/acme/tickets/{id}");
    let api = format!("/v1/orgs/acme/tickets/{id}");
    let api_get = || async {
        let r = v
            .http
            .get(s.url(&api))
            .bearer_auth(&v.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    };

    orgwall_testkit::until_listening(&db, || async {
        assert_eq!(v.get(&page).await.status, 200);
    })
    .await;
    // Fill the caches and both connections' prepared statements.
    for _ in 0..2 {
        turns_of(&wire, async {
            assert_eq!(v.get(&page).await.status, 200);
            api_get().await;
        })
        .await;
    }

    let api_turns = turns_of(&wire, api_get()).await;
    let page_turns = turns_of(&wire, async {
        let r = v.get(&page).await;
        assert_eq!(r.status, 200);
        assert!(r.body.contains("History"));
    })
    .await;
    assert_eq!(api_turns, vec![4, 1], "the API's detail read");
    assert_eq!(
        page_turns,
        vec![7, 1],
        "a warm ticket page must be one round trip (BEGIN, prelude, ticket, project, \
         history, comments, members), then the queued COMMIT"
    );
    assert_eq!(page_turns.len(), api_turns.len());
}
