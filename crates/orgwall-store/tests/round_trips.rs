//! The round-trip property of PostgreSQL transactions, asserted structurally (not timed).
//!
//! A tiny TCP proxy sits between the pool and PostgreSQL and reads the wire protocol in
//! both directions. Every request the client makes ends with a `Sync` (extended query
//! protocol) or is a simple `Query`; each is answered by exactly one `ReadyForQuery`. A
//! client message that arrives once every earlier request has been answered starts a new
//! **turn**: the client waited for every answer before it wrote again, which is one
//! network round trip.
//! Each turn records how many requests it carried.
//!
//! A warm scoped read is one round trip: `BEGIN READ ONLY`, the scope prelude and the
//! query pipelined (three requests, one turn); its `COMMIT` is then written without
//! waiting for the answer (a read-only transaction has nothing to make durable), which
//! the test proves by withholding that answer: the read still completes. A write takes
//! two turns, and its `COMMIT` is awaited: withheld, the commit does not return. If
//! `PgTx` ever awaits `BEGIN` (or the prelude) on its own, the first turn splits and the
//! test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use orgwall_core::TicketId;
use orgwall_store::access::{self, OrgScope};
use orgwall_store::repo::{notes, tickets};
use orgwall_store::Db;
use orgwall_testkit::wire::{next_message, proxied, proxied_with, turns_of, Gate};
use orgwall_testkit::Demo;

/// Requests per turn of a warm scoped read (`db.read` + one query + `commit`): BEGIN,
/// prelude and query in one round trip, then COMMIT (queued for a read).
const SCOPED_READ: &[usize] = &[3, 1];

/// The same for a single-statement write: BEGIN, the org's write fence, its directory
/// entry, the prelude and the statement in one round trip, then COMMIT (awaited) with the
/// read before it of the orgs in databases of their own whose access the write changed
/// (their access mirrors are written after it: none here).
const SCOPED_WRITE: &[usize] = &[5, 2];

/// Commits `tx` with the server's answers held back: a read's commit must return anyway
/// (it does not wait for COMMIT's answer); a write's must not return until released.
async fn commit_withheld(tx: orgwall_store::TenantTx<'_>, gate: &Gate, durable: bool) {
    gate.close();
    let mut commit = Box::pin(tx.commit());
    let early = tokio::time::timeout(std::time::Duration::from_millis(300), &mut commit).await;
    if durable {
        assert!(
            early.is_err(),
            "a write's COMMIT must be awaited: it returned while its answer was withheld"
        );
        gate.open();
        commit.await.unwrap();
    } else {
        gate.open();
        early
            .expect("a read must not wait for its COMMIT's answer")
            .unwrap();
    }
}

async fn detail_read(db: &Db, scope: &OrgScope, ticket: TicketId, gate: &Gate) {
    let mut tx = db.read(scope).await.unwrap();
    let got = tickets::get(&mut tx, ticket).await.unwrap();
    assert_eq!(got.id, ticket);
    commit_withheld(tx, gate, false).await;
}

async fn note_write(db: &Db, scope: &OrgScope, gate: &Gate) {
    let mut tx = db.write(scope).await.unwrap();
    notes::create(&mut tx, "round trip", "counted")
        .await
        .unwrap();
    commit_withheld(tx, gate, true).await;
}

async fn two_statements(db: &Db, scope: &OrgScope, gate: &Gate) {
    let mut tx = db.read(scope).await.unwrap();
    tx.query("SELECT count(*) FROM notes", &[]).await.unwrap();
    tx.query("SELECT count(*) FROM projects", &[])
        .await
        .unwrap();
    commit_withheld(tx, gate, false).await;
}

// current_thread, on purpose: the transaction's task queues BEGIN, the prelude and the
// query before the connection task runs, so a pipelined transaction reaches the wire in
// one write and the count is exact. On a multi-thread runtime the connection task may
// run on another worker and flush BEGIN alone before the rest is queued; the client
// still does not wait for it, but the proxy cannot tell that apart from a separate
// round trip (the answer to BEGIN can overtake the next write), so it would be flaky.
#[tokio::test]
async fn a_scoped_read_is_one_round_trip() {
    let (t, db, wire, gate) = proxied().await;
    let d = Demo::load(&t.db).await;
    let ticket: TicketId = {
        let scope = d.alice_in_acme(&t.db).await;
        let mut tx = t.db.read(&scope).await.unwrap();
        let rows = tx.query("SELECT id FROM tickets", &[]).await.unwrap();
        rows[0].get(0).unwrap()
    };
    let scope = access::verify_member(&db, d.alice, d.acme).await.unwrap();

    // Cold: statements are prepared on this connection first (extra turns, once).
    let cold = turns_of(&wire, detail_read(&db, &scope, ticket, &gate)).await;
    assert!(cold.len() >= SCOPED_READ.len(), "cold read: {cold:?}");
    // Warm: every statement is cached on the connection; each request's scope comes from
    // the access cache (no round trip) with its generations, checked in the prelude.
    for _ in 0..3 {
        let scope = access::verify_member(&db, d.alice, d.acme).await.unwrap();
        let warm = turns_of(&wire, detail_read(&db, &scope, ticket, &gate)).await;
        assert_eq!(
            warm, SCOPED_READ,
            "a warm scoped read must pipeline BEGIN, the prelude and the query in one \
             round trip, then queue COMMIT (requests per turn: expected {SCOPED_READ:?}, \
             got {warm:?})"
        );
    }
    // A later transaction of a scope whose checks were confirmed reads the org's
    // directory entry instead (a move may have retired its route since): one more
    // request, still one round trip.
    turns_of(&wire, detail_read(&db, &scope, ticket, &gate)).await; // prepares it
    let later = turns_of(&wire, detail_read(&db, &scope, ticket, &gate)).await;
    assert_eq!(later, [SCOPED_READ[0] + 1, SCOPED_READ[1]]);
}

#[tokio::test]
async fn a_scoped_write_and_a_second_statement_count_as_expected() {
    let (t, db, wire, gate) = proxied().await;
    let d = Demo::load(&t.db).await;
    let scope = access::verify_member(&db, d.alice, d.acme).await.unwrap();

    turns_of(&wire, note_write(&db, &scope, &gate)).await;
    assert_eq!(
        turns_of(&wire, note_write(&db, &scope, &gate)).await,
        SCOPED_WRITE,
        "a scoped write with one statement takes the same turns as a read (with the fence \
         and the directory check in its first)"
    );

    // A second statement in the transaction is one more round trip of one request: the
    // counter sees the difference (the proxy is not just counting transactions).
    turns_of(&wire, two_statements(&db, &scope, &gate)).await;
    // A request's own scope, its generations checked in the first flight.
    let scope = access::verify_member(&db, d.alice, d.acme).await.unwrap();
    let got = turns_of(&wire, two_statements(&db, &scope, &gate)).await;
    let mut expected = vec![SCOPED_READ[0], 1];
    expected.extend_from_slice(&SCOPED_READ[1..]);
    assert_eq!(got, expected);
}

// A one-flight read (`Db::read_once`) goes on a read lane: its prelude and statements in
// one request (one Sync), no BEGIN and no COMMIT (bench/README.md: PostgreSQL flushes its
// answer at every Sync). Counted on a pool of 4, one of them the lane.
#[tokio::test]
async fn a_one_flight_read_is_one_request_on_a_read_lane() {
    let (t, db, wire, _gate) = proxied_with(4).await;
    let d = Demo::load(&t.db).await;
    async fn once(db: &Db, scope: &OrgScope) -> usize {
        let mut tx = db.read_once(scope).await.unwrap();
        let rows = tx
            .data()
            .query("SELECT id FROM tickets", &[])
            .await
            .unwrap();
        tx.commit().await.unwrap();
        rows.len()
    }
    let scope = access::verify_member(&db, d.alice, d.acme).await.unwrap();
    turns_of(&wire, async {
        once(&db, &scope).await;
    })
    .await; // prepares the lane's statements
    for _ in 0..3 {
        // A request's own scope, its generations checked in the flight's prelude.
        let scope = access::verify_member(&db, d.alice, d.acme).await.unwrap();
        let mut n = 0;
        let warm = turns_of(&wire, async { n = once(&db, &scope).await }).await;
        assert_eq!(
            warm,
            [1],
            "a warm one-flight read is one request in one turn"
        );
        assert!(n > 0);
    }
    // A scope whose checks were confirmed reads the org's directory entry in the same
    // flight instead: still one request.
    turns_of(&wire, async {
        once(&db, &scope).await;
    })
    .await;
    let later = turns_of(&wire, async {
        once(&db, &scope).await;
    })
    .await;
    assert_eq!(later, [1]);
}

#[test]
fn the_framing_reader_splits_messages() {
    // Startup message: length 8 (itself and the protocol version), untyped.
    let startup = [0, 0, 0, 8, 0, 3, 0, 0];
    assert_eq!(next_message(&startup, false), Some((0, 8)));
    assert_eq!(next_message(&startup[..5], false), None);
    // Sync: 'S' and length 4; a partial Bind after it is not yet a message.
    let buf = [b'S', 0, 0, 0, 4, b'B', 0, 0];
    assert_eq!(next_message(&buf, true), Some((b'S', 5)));
    assert_eq!(next_message(&buf[5..], true), None);
}

#[tokio::test]
async fn a_warm_access_check_costs_no_round_trip() {
    let (t, db, wire, _gate) = proxied().await;
    db.set_access_cache(true);
    let d = Demo::load(&t.db).await;
    // The first lookup starts the cache's change listener (its own connection, counted by
    // the proxy like any other); wait until it listens, then fill the cache.
    for _ in 0..500 {
        orgwall_store::repo::orgs::resolve(&db, "acme")
            .await
            .unwrap();
        if db.access_cache_stats().live && wire.lock().unwrap().outstanding == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(db.access_cache_stats().live);
    let cold = turns_of(&wire, async {
        access::verify_member(&db, d.alice, d.acme).await.unwrap();
        // (The loop's last resolve may have run before the listener was live: not stored.)
        orgwall_store::repo::orgs::resolve(&db, "acme")
            .await
            .unwrap();
    })
    .await;
    assert!(
        !cold.is_empty(),
        "the first membership check reads the database"
    );

    let hits = db.access_cache_stats().hits;
    let turns = turns_of(&wire, async {
        access::verify_member(&db, d.alice, d.acme).await.unwrap();
        orgwall_store::repo::orgs::resolve(&db, "acme")
            .await
            .unwrap();
    })
    .await;
    assert_eq!(
        turns,
        Vec::<usize>::new(),
        "a warm org resolution and membership check must not reach the database"
    );
    assert_eq!(db.access_cache_stats().hits, hits + 2);
}
