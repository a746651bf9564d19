//! Reads sent ahead with a cold API key's lookup (`orgwall_tenancy::ahead`): what they
//! read, whose they are, and when they are kept. The HTTP side (one round trip for a cold
//! key, refused requests dropping the read) is `orgwall-http/tests/round_trips.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use orgwall_core::{OrgId, TicketId};
use orgwall_store::access::{self, OrgScope};
use orgwall_store::ahead::Flight;
use orgwall_store::placement::Kind;
use orgwall_store::repo::{api_keys, tickets};
use orgwall_store::{params, BackendKind, Db, Row};
use orgwall_testkit::{Demo, TestDb};

async fn new_key(db: &Db, scope: &OrgScope, name: &str) -> (orgwall_core::ApiKeyId, String) {
    let mut tx = db.write(scope).await.unwrap();
    let (k, token) = api_keys::create(&mut tx, name, "member", None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (k.id, token)
}

/// The org's first ticket (or last, `desc`).
async fn a_ticket_by(db: &Db, scope: &OrgScope, desc: bool) -> TicketId {
    let order = if desc { "DESC" } else { "" };
    let mut tx = db.read(scope).await.unwrap();
    let r = tx
        .data()
        .query_one(
            &format!("SELECT id FROM tickets WHERE org_id = $1 ORDER BY id {order} LIMIT 1"),
            params![scope.org_id()],
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    r.get(0).unwrap()
}

async fn a_ticket(db: &Db, scope: &OrgScope) -> TicketId {
    a_ticket_by(db, scope, false).await
}

/// A cold key's ticket detail with its read sent ahead: whether that read was kept, and
/// the ticket the handler's call of `read_flight` returns.
async fn detail_ahead(db: &Db, key: &str, org: OrgId, ticket: TicketId) -> (bool, TicketId) {
    let flight = tickets::detail_flight(org, ticket);
    let (scope, read) = access::authenticate_api_key_ahead(db, key, || Some(flight.clone()))
        .await
        .unwrap()
        .unwrap();
    let kept = read.is_some();
    let answers = db.read_flight(&scope, read, &flight).await.unwrap();
    (kept, tickets::detail_from(answers).unwrap().0.id)
}

fn orgs_of(rows: &[Row]) -> Vec<OrgId> {
    rows.iter().map(|r| r.get(0).unwrap()).collect()
}

/// Every lookup reads the database (each one is a cold key).
async fn world(kind: BackendKind, placements: &[(&str, Kind)]) -> (TestDb, Demo) {
    let t = TestDb::new(kind).await;
    orgwall_store::seed::demo_placed(&t.db, placements)
        .await
        .unwrap();
    let d = Demo::load(&t.db).await;
    t.db.set_access_cache(false);
    (t, d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_sent_ahead_reads_in_the_keys_org_only() {
    let (t, d) = world(BackendKind::Postgres, &[]).await;
    let db = &t.db;
    let (alice, bob) = (d.alice_in_acme(db).await, d.bob_in_globex(db).await);
    let (_, acme_key) = new_key(db, &alice, "a").await;
    let (globex_key_id, globex_key) = new_key(db, &bob, "g").await;
    let (acme_ticket, globex_ticket) = (a_ticket(db, &alice).await, a_ticket(db, &bob).await);

    // The key's own org: the read comes back with the scope, and is what the handler
    // would have read.
    let flight = tickets::detail_flight(d.acme, acme_ticket);
    let (scope, read) = access::authenticate_api_key_ahead(db, &acme_key, || Some(flight.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(scope.org_id(), d.acme);
    let read = read.expect("read ahead for the key's own org");
    assert_eq!(read.flight(), &flight);
    let answers = db
        .read_flight(&scope, Some(read.clone()), &flight)
        .await
        .unwrap();
    let (ticket, _) = tickets::detail_from(answers).unwrap();
    assert_eq!(ticket.id, acme_ticket);

    // Another flight than the one read ahead is sent, not answered from it.
    let other = tickets::detail_flight(d.acme, a_ticket_by(db, &alice, true).await);
    assert_ne!(other, flight);
    let answers = db.read_flight(&scope, Some(read), &other).await.unwrap();
    let (ticket, _) = tickets::detail_from(answers).unwrap();
    assert_ne!(ticket.id, acme_ticket);

    // A key of another org: nothing is kept for the org the flight names.
    let (scope, read) =
        access::authenticate_api_key_ahead(db, &globex_key, || Some(flight.clone()))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(scope.org_id(), d.globex);
    assert!(read.is_none(), "a flight for Acme, read with Globex's key");

    // And the database itself admits the key's org only: statements that name no org,
    // or another org, read Globex's rows or nothing, under the org the key row entered.
    let probe = Flight::new(d.globex)
        .read("SELECT DISTINCT org_id FROM tickets", &[])
        .read(
            "SELECT org_id FROM tickets WHERE org_id = $1",
            params![d.acme],
        )
        .read(
            "SELECT org_id FROM tickets WHERE id = $1",
            params![acme_ticket],
        )
        .read(
            "SELECT org_id FROM tickets WHERE id = $1",
            params![globex_ticket],
        );
    let (_, read) = access::authenticate_api_key_ahead(db, &globex_key, || Some(probe.clone()))
        .await
        .unwrap()
        .unwrap();
    let answers = db
        .read_flight(&bob, read, &probe)
        .await
        .unwrap()
        .iter()
        .map(|rows| orgs_of(rows))
        .collect::<Vec<_>>();
    assert_eq!(
        answers,
        vec![vec![d.globex], vec![], vec![], vec![d.globex]],
        "under the key's org only"
    );

    // The key's hash is no longer a setting once the org is entered: the read runs in
    // the key's org alone, as the handler's own would.
    let settings = Flight::new(d.globex).read(
        "SELECT coalesce(current_setting('app.lookup', true), ''), current_setting('app.org_id', true)",
        &[],
    );
    let (_, read) = access::authenticate_api_key_ahead(db, &globex_key, || Some(settings.clone()))
        .await
        .unwrap()
        .unwrap();
    assert!(read.is_some(), "read ahead");
    let answers = db.read_flight(&bob, read, &settings).await.unwrap();
    let row = &answers[0][0];
    assert_eq!(row.get::<String>(0).unwrap(), "");
    assert_eq!(row.get::<String>(1).unwrap(), d.globex.to_string());

    // A revoked key authenticates nothing, and nothing read ahead comes back.
    let mut tx = db.write(&bob).await.unwrap();
    api_keys::revoke(&mut tx, globex_key_id).await.unwrap();
    tx.commit().await.unwrap();
    assert!(
        access::authenticate_api_key_ahead(db, &globex_key, || Some(probe.clone()))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        access::authenticate_api_key_ahead(db, "owk_unknown", || Some(probe.clone()))
            .await
            .unwrap()
            .is_none()
    );
}

/// An org served from a schema of its own has no rows in the shared tables: nothing read
/// there is kept, and the handler reads from its placement as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_org_placed_elsewhere_keeps_no_read_ahead() {
    let (t, d) = world(BackendKind::Postgres, &[("globex", Kind::Schema)]).await;
    let db = &t.db;
    let bob = d.bob_in_globex(db).await;
    let (_, key) = new_key(db, &bob, "g").await;
    let ticket = a_ticket(db, &bob).await;
    let (kept, got) = detail_ahead(db, &key, d.globex, ticket).await;
    assert!(!kept, "the org is not in the shared tables");
    assert_eq!(got, ticket);
}

/// SQLite reads in process: nothing is sent ahead, the handler reads as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sends_nothing_ahead() {
    let (t, d) = world(BackendKind::Sqlite, &[]).await;
    let db = &t.db;
    let alice = d.alice_in_acme(db).await;
    let (_, key) = new_key(db, &alice, "a").await;
    let ticket = a_ticket(db, &alice).await;
    let (kept, got) = detail_ahead(db, &key, d.acme, ticket).await;
    assert!(!kept);
    assert_eq!(got, ticket);
}
