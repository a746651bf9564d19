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
use orgwall_testkit::{pg_client, texts, Demo};

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
    // A list's first page and a later one (PostgreSQL's own choice re-planned these at
    // every request: its generic estimate of `id > $2` and `LIMIT $3` looks costlier than
    // a custom plan, though the plan is the same).
    let all = tickets::TicketFilter::default();
    let mut tx = db.read(&key).await.unwrap();
    let first = tickets::list(&mut tx, &all, 51, None).await.unwrap();
    // A read after a list in the same transaction plans as PostgreSQL chooses (a list's
    // generic plan is forced for its own statement only).
    assert_eq!(tickets::get(&mut tx, t.id).await.unwrap().id, t.id);
    tx.commit().await.unwrap();
    let mut tx = db.read(&key).await.unwrap();
    let next = tickets::list(&mut tx, &all, 51, Some(first[0].id.uuid()))
        .await
        .unwrap();
    assert_eq!(next.first().map(|t| t.id), first.get(1).map(|t| t.id));
    tx.commit().await.unwrap();
    let mut tx = db.read(&key).await.unwrap();
    assert!(!notes::list(&mut tx, None, 50, None)
        .await
        .unwrap()
        .is_empty());
    tx.commit().await.unwrap();
    // Searches of one word (each org has a ticket and a note titled "plan ...").
    let word = tickets::TicketFilter {
        q: Some("plan".into()),
        ..Default::default()
    };
    let mut tx = db.read(&key).await.unwrap();
    let found = tickets::list(&mut tx, &word, 51, None).await.unwrap();
    assert!(!found.is_empty());
    tx.commit().await.unwrap();
    let mut tx = db.read(&key).await.unwrap();
    let found = notes::list(&mut tx, Some("plan"), 50, None).await.unwrap();
    assert!(!found.is_empty());
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

/// The statements run since the last reset, on every database of the cluster (the
/// placement database's too): how many times each was planned, how many times it ran.
async fn statements(admin: &tokio_postgres::Client) -> Vec<(i64, i64, String)> {
    admin
        .query(
            "SELECT plans, calls, left(regexp_replace(query, '\\s+', ' ', 'g'), 160)
             FROM pg_stat_statements
             WHERE query NOT LIKE '%pg_stat_statements%'
             ORDER BY plans DESC",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// A database of `cluster` migrated, with the demo world: Acme in the shared tables,
/// Globex in a schema of its own, and Initech (Carol's, one project) in a database of
/// its own; with each org's member scope.
async fn world(cluster: &PgCluster, pool_size: usize) -> (Db, [(OrgId, OrgScope); 3]) {
    pg_client(&cluster.url)
        .await
        .batch_execute("CREATE DATABASE orgwall_plans")
        .await
        .unwrap();
    let db = Db::open(
        &DbConfig::Postgres {
            url: cluster.url_of("orgwall_plans"),
            app_role: orgwall_store::db::DEFAULT_APP_ROLE.into(),
            pool_size,
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
    assert_eq!(placement::show(&db, d.globex).await.unwrap().kind, "schema");
    assert_eq!(
        placement::show(&db, initech.id).await.unwrap().kind,
        "database"
    );
    let scopes = [
        (d.acme, d.alice_in_acme(&db).await),
        (d.globex, d.bob_in_globex(&db).await),
        (initech.id, owner),
    ];
    (db, scopes)
}

/// On a cluster started with `settings` (and `pg_stat_statements`), the demo world's
/// requests (see [`round`]) on one connection, every org's transactions taking turns on
/// it: `warm` rounds, then `measured` more; the statements run in those (see
/// [`statements`]).
async fn steady_state(settings: &[&str], warm: usize, measured: usize) -> Vec<(i64, i64, String)> {
    let settings: Vec<&str> = STATEMENTS.iter().chain(settings).copied().collect();
    let cluster = PgCluster::start(&settings);
    let admin = pg_client(&cluster.url).await;
    let (db, scopes) = world(&cluster, 1).await;
    let mut orgs = Vec::new();
    for (id, member) in scopes {
        orgs.push(org(&db, id, member).await);
    }
    admin
        .batch_execute("CREATE EXTENSION pg_stat_statements")
        .await
        .unwrap();
    rounds(&db, &orgs, warm).await;
    admin
        .batch_execute("SELECT pg_stat_statements_reset()")
        .await
        .unwrap();
    rounds(&db, &orgs, measured).await;
    statements(&admin).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_every_placement_plan_nothing_once_warm() {
    let again: Vec<_> = steady_state(&[], 8, 10)
        .await
        .into_iter()
        .filter(|(plans, _, _)| *plans > 0)
        .collect();
    assert!(
        again.is_empty(),
        "statements planned again in steady state (plans, statement):\n{}",
        again
            .iter()
            .map(|(n, _, q)| format!("{n:>5}  {q}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// A page of a list (tickets, projects, notes, and a search of one word) runs on one plan
/// per connection whatever PostgreSQL would choose.
///
/// The bench's ticket list (two orgs of 1,000 tickets in the shared tables) was planned at every
/// request: 44,589 plans for 44,585 calls in `pg_stat_statements` (PostgreSQL's generic
/// estimate of `id > $2` and `LIMIT $3` looked costlier than the plan made for the
/// values, though the plan is the same), and planning under the policy is what made the
/// list's RLS cost (bench/README.md). Which layouts make PostgreSQL choose so is hard to
/// stage, so this cluster makes it choose so for everything (`plan_cache_mode =
/// force_custom_plan`): in steady state a ticket read is planned at every run, and the
/// pages, which the store runs with generic plans forced (`Data::query_generic`), never.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_plan_once_whatever_postgresql_prefers() {
    let run = steady_state(&["plan_cache_mode = force_custom_plan"], 2, 3).await;
    let list = |q: &String| q.contains("WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT");
    let read = |q: &String| q.contains("FROM tickets WHERE org_id = $1 AND id = $2");
    // Every ticket read planned at each run, also those right after a list in the same
    // transaction: the list's forced mode was restored.
    let reads: Vec<_> = run.iter().filter(|(_, _, q)| read(q)).collect();
    assert!(
        reads.iter().any(|(_, calls, _)| *calls >= 6)
            && reads.iter().all(|(plans, calls, _)| plans == calls),
        "a ticket read is planned at every run here: {reads:?}"
    );
    let search = |q: &String| q.contains("_terms p JOIN");
    let lists: Vec<_> = run
        .iter()
        .filter(|(_, _, q)| list(q) || search(q))
        .collect();
    for table in [
        "FROM tickets WHERE",
        "FROM projects WHERE",
        "FROM notes WHERE",
        "FROM ticket_terms p",
        "FROM note_terms p",
    ] {
        assert!(
            lists
                .iter()
                .any(|(_, calls, q)| *calls >= 3 && q.contains(table)),
            "{table} lists ran: {lists:?}"
        );
    }
    let lists: Vec<_> = lists.iter().filter(|(plans, _, _)| *plans > 0).collect();
    assert!(lists.is_empty(), "lists planned again: {lists:?}");
}

/// Polls `sql` (one boolean) on `client` every 200 ms until it is true; panics naming
/// `what` after a minute.
async fn until(client: &tokio_postgres::Client, sql: &str, what: &str) {
    for _ in 0..300 {
        if client.query_one(sql, &[]).await.unwrap().get::<_, bool>(0) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("waited a minute for {what}");
}

/// A young placement keeps its key checks on the index with autovacuum on.
///
/// With PostgreSQL's default thresholds, autovacuum analyzed a new placement's `notes`
/// at about fifty rows, a page, and the foreign key checks into it (each search term of a
/// note checks its note) were then planned as sequential scans, kept by every connection
/// as the table grew. The runner now sets every tenant table's thresholds to a thousand
/// rows (`walls::YOUNG_TABLE_AUTOVACUUM`). On a throwaway cluster with autovacuum every
/// second: 60 notes (and about 660 terms) in a schema placement and in a database placement,
/// then a pass of autovacuum over each database after their counts were in (a canary
/// table analyzed); neither table was analyzed, and the generic plan of the key check
/// into `notes` is its primary key's index. Fails without the thresholds (both analyzed,
/// a sequential scan).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn young_placements_keep_key_checks_on_the_index_under_autovacuum() {
    let cluster = PgCluster::start(&["autovacuum = on", "autovacuum_naptime = 1"]);
    let (db, scopes) = world(&cluster, 2).await;
    let [_, (globex, bob), (initech, carol)] = scopes;
    let schema = placement::show(&db, globex)
        .await
        .unwrap()
        .location
        .unwrap();
    let database = placement::show(&db, initech)
        .await
        .unwrap()
        .location
        .unwrap();
    for scope in [&bob, &carol] {
        for batch in 0..4 {
            let mut tx = db.write(scope).await.unwrap();
            for i in 0..15 {
                notes::create(
                    &mut tx,
                    &format!("young note {batch} {i}"),
                    "alpha bravo charlie delta echo foxtrot golf hotel",
                )
                .await
                .unwrap();
            }
            tx.commit().await.unwrap();
        }
    }
    // (the client of a database, the schema its tables are in)
    let places = [
        (pg_client(&cluster.url_of("orgwall_plans")).await, schema),
        (
            pg_client(&cluster.url_of(&database)).await,
            "public".to_owned(),
        ),
    ];
    for (c, schema) in &places {
        until(
            c,
            &format!(
                "SELECT coalesce((SELECT n_mod_since_analyze >= 60 FROM pg_stat_user_tables
                   WHERE schemaname = '{schema}' AND relname = 'notes'), false)"
            ),
            "the notes' inserts counted",
        )
        .await;
        c.batch_execute(
            "CREATE TABLE autovacuum_canary (n int);
             INSERT INTO autovacuum_canary SELECT generate_series(1, 500)",
        )
        .await
        .unwrap();
        until(
            c,
            "SELECT coalesce((SELECT last_autoanalyze IS NOT NULL FROM pg_stat_user_tables
               WHERE relname = 'autovacuum_canary'), false)",
            "autovacuum to analyze the canary",
        )
        .await;
        for table in ["notes", "note_terms"] {
            let analyzed: Option<std::time::SystemTime> = c
                .query_one(
                    "SELECT last_autoanalyze FROM pg_stat_user_tables
                     WHERE schemaname = $1 AND relname = $2",
                    &[schema, &table],
                )
                .await
                .unwrap()
                .get(0);
            assert_eq!(
                analyzed, None,
                "autovacuum analyzed {schema}.{table} while it was young"
            );
        }
        // The shape of PostgreSQL's own check (`ri_triggers.c`), planned generic as a
        // connection keeps it.
        c.batch_execute(&format!(
            "SET plan_cache_mode = force_generic_plan;
             PREPARE key_check (uuid, uuid) AS SELECT 1 FROM ONLY \"{schema}\".notes x
               WHERE org_id = $1 AND id = $2 FOR KEY SHARE OF x"
        ))
        .await
        .unwrap();
        let plan = texts(
            c,
            "EXPLAIN EXECUTE key_check (gen_random_uuid(), gen_random_uuid())",
            &[],
        )
        .await
        .join("\n");
        assert!(
            plan.contains("Index Scan") && !plan.contains("Seq Scan"),
            "the key check into {schema}.notes:\n{plan}"
        );
    }
}
