//! Read lanes (`crates/orgwall-tenancy/src/postgres/lane.rs`): one-flight reads of many
//! requests share a few PostgreSQL sessions, each flight one implicit transaction with
//! its own prelude. The wall under that sharing: every flight sees its own org and
//! nothing else, whatever ran before it on the session (another org's flight, a failed
//! one), a flight writes nothing, a one-flight read sends one flight, and a lane whose
//! session ended answers 503 and then serves again. PostgreSQL only (SQLite has no
//! lanes); `TestDb::new`'s pool of 4 has exactly one lane, so every flight here shares it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use orgwall_core::Error;
use orgwall_store::access::OrgScope;
use orgwall_store::placement::Kind;
use orgwall_store::{BackendKind, Db};
use orgwall_testkit::{Demo, TestDb};
use std::sync::Arc;

/// The last statement of [`seen`]'s flight: the org setting and the role it ran as.
const WHO: &str = "SELECT current_setting('app.org_id'), current_user::text";

/// Sessions on `org`'s own database whose last statement was [`seen`]'s last: lane
/// sessions (a pooled read's last statement is its COMMIT; a lane sends none).
async fn lane_sessions(t: &TestDb, org: orgwall_core::OrgId) -> i64 {
    t.owner_count(
        "pg_stat_activity",
        &format!(
            "datname = '{}' AND query = '{}'",
            orgwall_store::placement::database_name(org),
            WHO.replace('\'', "''")
        ),
    )
    .await
}

/// What a flight of `scope` sees: the org ids of every ticket, the org setting and the
/// role it ran as.
async fn seen(
    db: &Db,
    scope: &OrgScope,
) -> orgwall_core::Result<(Vec<uuid::Uuid>, String, String)> {
    let mut tx = db.read_once(scope).await?;
    let mut all = tx
        .data()
        .query_many(&[("SELECT org_id FROM tickets", &[]), (WHO, &[])])
        .await?;
    tx.commit().await?;
    let who = all.pop().unwrap();
    let orgs = all.pop().unwrap();
    Ok((
        orgs.iter().map(|r| r.get(0).unwrap()).collect(),
        who[0].get(0).unwrap(),
        who[0].get(1).unwrap(),
    ))
}

/// How many tickets `scope` reads in a pooled transaction (`Db::read`, no lane).
async fn tickets_read_pooled(db: &Db, scope: &OrgScope) -> usize {
    let mut tx = db.read(scope).await.unwrap();
    let n = tx
        .data()
        .query("SELECT id FROM tickets", &[])
        .await
        .unwrap()
        .len();
    tx.commit().await.unwrap();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flights_of_two_orgs_on_one_lane_each_see_their_own_org_only() {
    let t = TestDb::new(BackendKind::Postgres).await;
    let db = &t.db;
    let d = Demo::load(db).await;
    let scopes = Arc::new([d.alice_in_acme(db).await, d.bob_in_globex(db).await]);
    let orgs = [d.acme.uuid(), d.globex.uuid()];
    let mut counts = [0, 0];
    for (i, s) in scopes.iter().enumerate() {
        counts[i] = tickets_read_pooled(db, s).await;
    }
    assert!(counts[0] > 0 && counts[1] > 0);
    let mut tasks = Vec::new();
    for k in 0..240usize {
        let (db, scopes) = (db.clone(), scopes.clone());
        tasks.push(tokio::spawn(async move {
            let i = k % 2;
            if k % 5 == 0 {
                // A request dropped while its flight is out: its answer is read and
                // thrown away, and the flights after it still get their own.
                let wait = std::time::Duration::from_micros((k as u64 * 37) % 400);
                return match tokio::time::timeout(wait, seen(&db, &scopes[i])).await {
                    Ok(r) => (i, Some(r.unwrap())),
                    Err(_) => (i, None),
                };
            }
            if k % 7 == 0 {
                // A flight failing after its prelude: nothing of it stays on the session.
                let mut tx = db.read_once(&scopes[i]).await.unwrap();
                let r = tx.data().query("SELECT 1 / 0 FROM tickets", &[]).await;
                assert!(r.is_err(), "division by zero answered {r:?}");
                return (i, None);
            }
            (i, Some(seen(&db, &scopes[i]).await.unwrap()))
        }));
    }
    let mut checked = 0;
    for task in tasks {
        let (i, got) = task.await.unwrap();
        let Some((rows, org, role)) = got else {
            continue;
        };
        assert_eq!(
            rows.len(),
            counts[i],
            "org {i} saw another number of tickets"
        );
        assert!(
            rows.iter().all(|o| *o == orgs[i]),
            "org {i} saw another org's ticket"
        );
        assert_eq!(org, orgs[i].to_string());
        assert_eq!(role, "orgwall_app");
        checked += 1;
    }
    assert!(checked > 150, "{checked} flights checked");
    // After all of them, a flight still stands alone.
    let (rows, org, _) = seen(db, &scopes[1]).await.unwrap();
    assert_eq!(rows.len(), counts[1]);
    assert_eq!(org, orgs[1].to_string());
}

/// A one-flight read of `scope` whose second flight is refused.
async fn second_flight_refused(db: &Db, scope: &OrgScope) {
    let mut tx = db.read_once(scope).await.unwrap();
    tx.data()
        .query("SELECT id FROM tickets", &[])
        .await
        .unwrap();
    match tx.data().query("SELECT id FROM projects", &[]).await {
        Err(Error::Internal(m)) => assert!(m.contains("second flight"), "{m}"),
        other => panic!("a second flight answered {other:?}"),
    }
}

#[tokio::test]
async fn a_one_flight_read_sends_one_flight_and_writes_nothing() {
    let t = TestDb::new(BackendKind::Postgres).await;
    let db = &t.db;
    let d = Demo::load(db).await;
    let alice = d.alice_in_acme(db).await;
    async fn titles(db: &Db, scope: &OrgScope) -> Vec<String> {
        let mut tx = db.read(scope).await.unwrap();
        let rows = tx
            .data()
            .query("SELECT title FROM tickets ORDER BY id", &[])
            .await
            .unwrap();
        tx.commit().await.unwrap();
        rows.iter().map(|r| r.get::<String>(0).unwrap()).collect()
    }
    let before = titles(db, &alice).await;

    second_flight_refused(db, &alice).await;

    let mut tx = db.read_once(&alice).await.unwrap();
    let r = tx
        .data()
        .execute("UPDATE tickets SET title = 'written on a lane'", &[])
        .await;
    assert!(r.is_err(), "a write on a lane answered {r:?}");
    drop(tx);
    assert_eq!(titles(db, &alice).await, before);

    // A statement that answers no rows (here one that would end the flight's
    // transaction, and its scope, before the statements after it) is refused unsent.
    for sql in ["COMMIT", "BEGIN", "SET search_path = public"] {
        let mut tx = db.read_once(&alice).await.unwrap();
        match tx.data().query(sql, &[]).await {
            Err(Error::Internal(m)) => assert!(m.contains("rows only"), "{sql}: {m}"),
            other => panic!("{sql} on a lane answered {other:?}"),
        }
    }

    // A flight whose statement does not compile sends nothing, and the next one serves.
    let mut tx = db.read_once(&alice).await.unwrap();
    assert!(tx
        .data()
        .query("SELECT nope FROM tickets", &[])
        .await
        .is_err());
    drop(tx);
    let (rows, _, _) = seen(db, &alice).await.unwrap();
    assert_eq!(rows.len(), before.len());
}

#[tokio::test]
async fn a_lane_whose_session_ended_answers_503_then_serves_again() {
    let t = TestDb::new(BackendKind::Postgres).await;
    let db = &t.db;
    let d = Demo::load(db).await;
    let alice = d.alice_in_acme(db).await;
    let (rows, _, _) = seen(db, &alice).await.unwrap();
    let n = rows.len();
    t.owner_exec(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .await;
    let mut lost = 0;
    let mut served = false;
    for _ in 0..100 {
        match seen(db, &alice).await {
            Ok((rows, org, _)) => {
                assert_eq!(rows.len(), n);
                assert_eq!(org, d.acme.uuid().to_string());
                served = true;
                break;
            }
            Err(Error::Unavailable(_)) => lost += 1,
            Err(e) => panic!("a lost lane answered {e:?}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        served,
        "the lane never served again ({lost} times unavailable)"
    );
}

/// Flights of an org placed elsewhere and of a shared one, alternating: each reads its own
/// placement (a schema's statements, prepared under the control schema's search path, run
/// under the org's, on the one lane; a database's on the org's own database, on its lane
/// there).
async fn placed_orgs_read_their_own_placement(kind: Kind) -> (TestDb, Demo) {
    let t = TestDb::new(BackendKind::Postgres).await;
    let db = &t.db;
    orgwall_store::seed::demo_placed(db, &[("globex", kind)])
        .await
        .unwrap();
    let d = Demo::load(db).await;
    let (alice, bob) = (d.alice_in_acme(db).await, d.bob_in_globex(db).await);
    let acme = tickets_read_pooled(db, &alice).await;
    for _ in 0..3 {
        let (rows, org, _) = seen(db, &bob).await.unwrap();
        assert_eq!(rows.len(), 6, "Globex reads its placement's tickets");
        assert!(rows.iter().all(|o| *o == d.globex.uuid()));
        assert_eq!(org, d.globex.uuid().to_string());
        let (rows, _, _) = seen(db, &alice).await.unwrap();
        assert_eq!(rows.len(), acme, "Acme reads the shared tickets");
        assert!(rows.iter().all(|o| *o == d.acme.uuid()));
    }
    (t, d)
}

#[tokio::test]
async fn a_schema_placed_org_reads_its_schema_on_a_lane() {
    placed_orgs_read_their_own_placement(Kind::Schema).await;
}

#[tokio::test]
async fn a_database_placed_org_reads_its_database_on_a_lane_there() {
    let (t, d) = placed_orgs_read_their_own_placement(Kind::Database(None)).await;
    // Its reads went on a lane of its own database.
    assert_eq!(
        lane_sessions(&t, d.globex).await,
        1,
        "one lane session on Globex's database"
    );
}

/// A placement database's lane holds a permit of its server's connection budget, and a
/// connection starving for one takes it back. A read that began on the lane and sends its
/// flight after that goes on a pooled connection (within the budget) instead of failing.
/// Budget 4 (`TestDb::new`'s pool; 2 connections per database), three orgs in databases
/// of their own: Globex's lane open, a write holding its pool's connection, its read
/// begun; Acme's two writes take the last two permits; a third org's first connection
/// finds no idle pool to close, starves, and closes Globex's lane for its permit; then
/// the read sends its flight, waits for a connection, and reads Globex's tickets once
/// Globex's write ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placement_read_whose_lane_the_budget_took_back_goes_pooled() {
    let t = TestDb::new(BackendKind::Postgres).await;
    let db = &t.db;
    let kind = Kind::Database(None);
    orgwall_store::seed::demo_placed(db, &[("globex", kind.clone()), ("acme", kind.clone())])
        .await
        .unwrap();
    let d = Demo::load(db).await;
    let (third, carol) = orgwall_store::access::create_org(
        db,
        d.carol,
        "Third",
        &orgwall_core::Slug::parse("third").unwrap(),
    )
    .await
    .unwrap();
    orgwall_store::placement::set(db, third.id, kind)
        .await
        .unwrap();
    let (alice, bob) = (d.alice_in_acme(db).await, d.bob_in_globex(db).await);
    let globex_lanes = || lane_sessions(&t, d.globex);
    seen(db, &bob).await.unwrap();
    assert_eq!(globex_lanes().await, 1, "Globex's lane is open");
    let globex_write = db.write(&bob).await.unwrap();
    let mut read = db.read_once(&bob).await.unwrap();
    let acme = [
        db.write(&alice).await.unwrap(),
        db.write(&alice).await.unwrap(),
    ];
    assert_eq!(
        globex_lanes().await,
        1,
        "the budget is taken, the lane still open"
    );
    let third_write = tokio::time::timeout(std::time::Duration::from_secs(5), db.write(&carol))
        .await
        .expect("the third org's write took the lane's permit")
        .unwrap();
    assert_eq!(globex_lanes().await, 0, "the budget closed the lane");
    let reading = async {
        let rows = read.data().query("SELECT org_id FROM tickets", &[]).await;
        read.commit().await.map(|()| rows)
    };
    tokio::pin!(reading);
    let waited = tokio::time::timeout(std::time::Duration::from_millis(100), &mut reading).await;
    assert!(waited.is_err(), "the read waits for a connection");
    drop(globex_write);
    let rows = reading.await.unwrap().unwrap();
    assert_eq!(rows.len(), 6, "Globex's tickets, read pooled");
    assert!(rows
        .iter()
        .all(|r| r.get::<uuid::Uuid>(0).unwrap() == d.globex.uuid()));
    drop((acme, third_write));
}

#[tokio::test]
async fn a_one_flight_read_sends_one_flight_on_sqlite_too() {
    // No lane there: the rule holds anyway, so code that breaks it fails on every backend.
    let t = TestDb::new(BackendKind::Sqlite).await;
    let db = &t.db;
    let d = Demo::load(db).await;
    let alice = d.alice_in_acme(db).await;
    second_flight_refused(db, &alice).await;
}
