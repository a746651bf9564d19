//! Requests in steady state plan nothing again, in every placement (PostgreSQL).
//!
//! PostgreSQL keeps a prepared statement's plan, and the plans of what it runs inside
//! (foreign key checks, trigger statements), until something invalidates them; one thing
//! that does is running under another `search_path` than the plan was made under. A
//! placement schema's transaction runs on its schema's search path, so a statement one
//! connection shares between a schema's transactions and anyone else's is planned again
//! each time it changes hands. Found that way: the access generations a control write
//! bumped, read in every write's COMMIT flight, was planned again at nearly every create
//! in a schema (11,681 plans for about 14,000 notes; create 10-23% behind the shared
//! tables, `orgwall-bench --placements`).
//!
//! The test runs on a throwaway cluster with `pg_stat_statements` (`track = all`,
//! `track_planning = on`: nested statements and their plans counted), one pooled
//! connection taking turns between an org in the shared tables, one in a schema of its
//! own and one in a database of its own, with API key scopes (what the HTTP API serves)
//! and members' scopes. After a warm-up (PostgreSQL plans each statement afresh for its
//! first five runs before it settles on a generic plan), more rounds of the same requests
//! must plan nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use orgwall_core::{OrgId, Slug};
use orgwall_store::access::{self, OrgScope};
use orgwall_store::placement::{self, Kind};
use orgwall_store::repo::{api_keys, notes, projects, tickets};
use orgwall_store::{Db, DbConfig};
use orgwall_testkit::cluster::PgCluster;
use orgwall_testkit::{pg_client, Demo};

const STATEMENTS: &[&str] = &[
    "shared_preload_libraries = 'pg_stat_statements'",
    "pg_stat_statements.track = all",
    "pg_stat_statements.track_planning = on",
];

/// One org's scopes: an API key's (from the access cache once read) and a member's.
struct Org {
    id: OrgId,
    member: OrgScope,
    token: String,
}

async fn org(db: &Db, id: OrgId, member: OrgScope) -> Org {
    let mut tx = db.write(&member).await.unwrap();
    let (_, token) = api_keys::create(&mut tx, "plans", "admin", None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    Org { id, member, token }
}

/// One round of an org's requests: with its API key, a note and a ticket created and
/// both read; with its member, a note created.
async fn round(db: &Db, o: &Org) {
    let key = access::authenticate_api_key(db, &o.token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(key.org_id(), o.id);
    let mut tx = db.write(&key).await.unwrap();
    let n = notes::create(&mut tx, "plan note", "Written to count plans.")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = db.read(&key).await.unwrap();
    let project = projects::list(&mut tx, 1, None).await.unwrap()[0].id;
    tx.commit().await.unwrap();
    let mut tx = db.write(&key).await.unwrap();
    let t = tickets::create(
        &mut tx,
        tickets::NewTicket {
            project_id: project,
            title: "plan ticket",
            body: "Written to count plans.",
            assignee_id: None,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let mut tx = db.read(&key).await.unwrap();
    assert_eq!(notes::get(&mut tx, n.id).await.unwrap().id, n.id);
    assert_eq!(tickets::get(&mut tx, t.id).await.unwrap().id, t.id);
    tx.commit().await.unwrap();
    let mut tx = db.write(&o.member).await.unwrap();
    notes::create(&mut tx, "member note", "Written by a member.")
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// `n` rounds of every org's requests, the orgs taking turns.
async fn rounds(db: &Db, orgs: &[Org], n: usize) {
    for _ in 0..n {
        for o in orgs {
            round(db, o).await;
        }
    }
}

/// The statements planned since the last reset, on every database of the cluster (the
/// placement database's too), with how many times each was.
async fn planned(admin: &tokio_postgres::Client) -> Vec<(i64, String)> {
    admin
        .query(
            "SELECT plans, left(regexp_replace(query, '\\s+', ' ', 'g'), 160)
             FROM pg_stat_statements
             WHERE plans > 0 AND query NOT LIKE '%pg_stat_statements%'
             ORDER BY plans DESC",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_every_placement_plan_nothing_once_warm() {
    let cluster = PgCluster::start(STATEMENTS);
    let admin = pg_client(&cluster.url).await;
    admin
        .batch_execute("CREATE DATABASE orgwall_plans")
        .await
        .unwrap();
    let url = cluster.url_of("orgwall_plans");
    let db = Db::open(
        &DbConfig::Postgres {
            url: url.clone(),
            app_role: orgwall_store::db::DEFAULT_APP_ROLE.into(),
            // One connection: every org's transactions take turns on it.
            pool_size: 1,
            placement_budget: None,
        },
        orgwall_store::catalog(),
    )
    .await
    .unwrap();
    db.migrate().await.unwrap();
    orgwall_store::seed::demo_placed(&db, &[("globex", Kind::Schema)])
        .await
        .unwrap();
    let d = Demo::load(&db).await;
    let (initech, owner) =
        access::create_org(&db, d.carol, "Initech", &Slug::parse("initech").unwrap())
            .await
            .unwrap();
    placement::set(&db, initech.id, Kind::Database(None))
        .await
        .unwrap();
    let mut tx = db.write(&owner).await.unwrap();
    projects::create(&mut tx, "OPS", "Operations", "")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let owner = access::verify_member(&db, d.carol, initech.id)
        .await
        .unwrap();
    let orgs = [
        org(&db, d.acme, d.alice_in_acme(&db).await).await,
        org(&db, d.globex, d.bob_in_globex(&db).await).await,
        org(&db, initech.id, owner).await,
    ];
    assert_eq!(placement::show(&db, d.globex).await.unwrap().kind, "schema");
    assert_eq!(
        placement::show(&db, initech.id).await.unwrap().kind,
        "database"
    );
    admin
        .batch_execute("CREATE EXTENSION pg_stat_statements")
        .await
        .unwrap();

    rounds(&db, &orgs, 8).await;
    admin
        .batch_execute("SELECT pg_stat_statements_reset()")
        .await
        .unwrap();
    rounds(&db, &orgs, 10).await;
    let again = planned(&admin).await;
    assert!(
        again.is_empty(),
        "statements planned again in steady state (plans, statement):\n{}",
        again
            .iter()
            .map(|(n, q)| format!("{n:>5}  {q}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
