//! The database and schema walls, shown with raw SQL that bypasses the repositories,
//! on both backends from one suite.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use orgwall_core::{Error, TicketId};
use orgwall_store::repo::{projects, tickets};
use orgwall_store::{params, BackendKind, Mode};
use orgwall_testkit::{both, tenant_tables, Demo, TestDb};

/// The plane `table` lives on (the export and these tests walk tables of both).
fn plane(db: &orgwall_store::Db, table: &str) -> orgwall_store::Plane {
    if db.catalog().is_data(table) {
        orgwall_store::Plane::Data
    } else {
        orgwall_store::Plane::Control
    }
}

both!(
    raw_sql_in_one_org_cannot_see_or_touch_another,
    |t: TestDb| async move {
        let db = &t.db;
        let d = Demo::load(db).await;
        let alice = d.alice_in_acme(db).await;
        let globex_ticket: uuid::Uuid = {
            let bob = d.bob_in_globex(db).await;
            let mut tx = db.read(&bob).await.unwrap();
            let rows = tx
                .data()
                .query("SELECT id FROM tickets", &[])
                .await
                .unwrap();
            assert_eq!(rows.len(), 6);
            rows[0].get(0).unwrap()
        };

        let mut tx = db.write(&alice).await.unwrap();
        // No WHERE at all: only Acme's rows come back, from every tenant table.
        for table in tenant_tables() {
            let rows = tx
                .raw()
                .on(plane(db, table))
                .query(&format!("SELECT org_id FROM {table}"), &[])
                .await
                .unwrap();
            for r in &rows {
                assert_eq!(
                    r.get::<uuid::Uuid>(0).unwrap(),
                    d.acme.uuid(),
                    "{table} leaked a row"
                );
            }
        }
        // Asking for Globex's rows by org id or by row id finds nothing.
        let n: i64 = tx
            .data()
            .query_one(
                "SELECT count(*) FROM tickets WHERE org_id = $1",
                params![d.globex],
            )
            .await
            .unwrap()
            .get(0)
            .unwrap();
        assert_eq!(n, 0);
        assert!(tx
            .data()
            .query_opt(
                "SELECT title FROM tickets WHERE id = $1",
                params![globex_ticket]
            )
            .await
            .unwrap()
            .is_none());
        // Updates and deletes aimed at Globex change nothing.
        let changed = tx
            .data()
            .execute(
                "UPDATE tickets SET title = 'pwned' WHERE org_id = $1",
                params![d.globex],
            )
            .await
            .unwrap();
        assert_eq!(changed, 0);
        let changed = tx
            .data()
            .execute(
                "UPDATE tickets SET title = 'pwned' WHERE id = $1",
                params![globex_ticket],
            )
            .await
            .unwrap();
        assert_eq!(changed, 0);
        let deleted = tx
            .data()
            .execute("DELETE FROM notes WHERE org_id = $1", params![d.globex])
            .await
            .unwrap();
        assert_eq!(deleted, 0);
        tx.commit().await.unwrap();

        // Inserting a row stamped with Globex is refused by the database.
        let mut tx = db.write(&alice).await.unwrap();
        let err = tx
        .data()
        .execute(
            "INSERT INTO notes (org_id, id, title, body, created_at, updated_at) VALUES ($1, $2, 'x', 'y', $3, $3)",
            params![d.globex, uuid::Uuid::now_v7(), orgwall_store::value::now()],
        )
        .await
        .unwrap_err();
        assert_eq!(err, Error::ScopeViolation, "{err}");
        drop(tx);

        // Moving one of Acme's rows into Globex is refused too.
        let mut tx = db.write(&alice).await.unwrap();
        let err = tx
            .data()
            .execute("UPDATE notes SET org_id = $1", params![d.globex])
            .await
            .unwrap_err();
        assert_eq!(err, Error::ScopeViolation, "{err}");
        drop(tx);

        assert_eq!(t.owner_count("tickets", "title = 'pwned'").await, 0);
        assert_eq!(
            t.owner_count("notes", &format!("org_id = '{}'", d.globex))
                .await,
            3
        );
        assert_eq!(
            t.owner_count("notes", &format!("org_id = '{}'", d.acme))
                .await,
            3
        );
    }
);

both!(no_scope_sees_no_tenant_rows, |t: TestDb| async move {
    let db = &t.db;
    Demo::load(db).await;
    for table in tenant_tables() {
        let mut tx = db.global(Mode::Read).await.unwrap();
        let r = tx
            .query(&format!("SELECT count(*) FROM {table}"), &[])
            .await;
        match t.kind {
            BackendKind::Postgres => {
                let n: i64 = r.unwrap()[0].get(0).unwrap();
                assert_eq!(n, 0, "{table} visible without a scope");
            }
            BackendKind::Sqlite => {
                assert_eq!(
                    r.unwrap_err(),
                    Error::ScopeViolation,
                    "{table} readable without a scope"
                );
            }
        }
    }
    // Writes without a scope are refused.
    let mut tx = db.global(Mode::Write).await.unwrap();
    let r = tx.execute("DELETE FROM notes", &[]).await;
    match t.kind {
        BackendKind::Postgres => assert_eq!(r.unwrap(), 0),
        BackendKind::Sqlite => assert_eq!(r.unwrap_err(), Error::ScopeViolation),
    }
    drop(tx);
    assert_eq!(t.owner_count("notes", "1 = 1").await, 6);
});

both!(
    a_ticket_cannot_reference_another_orgs_project_or_member,
    |t: TestDb| async move {
        let db = &t.db;
        let d = Demo::load(db).await;
        let globex_project = {
            let bob = d.bob_in_globex(db).await;
            let mut tx = db.read(&bob).await.unwrap();
            projects::list(&mut tx, 50, None).await.unwrap()[0].id
        };
        let alice = d.alice_in_acme(db).await;
        let acme_project = {
            let mut tx = db.read(&alice).await.unwrap();
            projects::list(&mut tx, 50, None).await.unwrap()[0].id
        };

        // Through the repository.
        let mut tx = db.write(&alice).await.unwrap();
        let err = tickets::create(
            &mut tx,
            tickets::NewTicket {
                project_id: globex_project,
                title: "x",
                body: "",
                assignee_id: None,
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(err, Error::Validation(_)), "{err:?}");
        drop(tx);
        let mut tx = db.write(&alice).await.unwrap();
        let err = tickets::create(
            &mut tx,
            tickets::NewTicket {
                project_id: acme_project,
                title: "x",
                body: "",
                assignee_id: Some(d.bob),
            },
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, Error::Validation(_)),
            "bob is not an Acme member: {err:?}"
        );
        drop(tx);

        // A shared member (carol) can be assigned in both orgs.
        let mut tx = db.write(&alice).await.unwrap();
        tickets::create(
            &mut tx,
            tickets::NewTicket {
                project_id: acme_project,
                title: "ok",
                body: "",
                assignee_id: Some(d.carol),
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();

        // As the owner, with every other wall out of the way, the composite keys still refuse.
        let now = orgwall_store::value::now();
        let micros = now.timestamp_micros();
        let ts = match t.kind {
            BackendKind::Postgres => format!("'{}'", now.to_rfc3339()),
            BackendKind::Sqlite => micros.to_string(),
        };
        let table = match t.kind {
            BackendKind::Postgres => "tickets",
            BackendKind::Sqlite => "tickets_rows",
        };
        let sql = format!(
        "INSERT INTO {table} (org_id, id, project_id, title, body, status, created_at, updated_at)
         VALUES ('{}', '{}', '{}', 't', '', 'open', {ts}, {ts})",
        d.acme,
        TicketId::new(),
        globex_project
    );
        let refused = match t.kind {
            BackendKind::Postgres => {
                let (client, conn) = tokio_postgres::connect(&t.url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                client.batch_execute(&sql).await.is_err()
            }
            BackendKind::Sqlite => {
                let c = rusqlite::Connection::open(&t.url).unwrap();
                c.execute_batch("PRAGMA foreign_keys = ON").unwrap();
                // The guard triggers call app_org(), which only server connections define.
                let _ = c.create_scalar_function(
                    "app_org",
                    0,
                    rusqlite::functions::FunctionFlags::SQLITE_UTF8,
                    move |_| Ok(Some(d.acme.to_string())),
                );
                c.execute_batch(&sql).is_err()
            }
        };
        assert!(
            refused,
            "composite foreign key let a ticket point into another org"
        );
    }
);

both!(
    one_pooled_connection_never_carries_a_scope_over,
    |t: TestDb| async move {
        drop(t.db.clone());
        let t1 = TestDb::with_pool(t.kind, 1).await;
        let db = &t1.db;
        let d = Demo::load(db).await;
        let alice = d.alice_in_acme(db).await;
        let bob = d.bob_in_globex(db).await;

        let orgs_seen = |rows: Vec<orgwall_store::Row>| {
            rows.iter()
                .map(|r| r.get::<uuid::Uuid>(0).unwrap())
                .collect::<std::collections::BTreeSet<_>>()
        };
        let mut backends = std::collections::BTreeSet::new();
        for (scope, org) in [(&alice, d.acme), (&bob, d.globex), (&alice, d.acme)] {
            let mut tx = db.read(scope).await.unwrap();
            let seen = orgs_seen(
                tx.data()
                    .query("SELECT org_id FROM tickets", &[])
                    .await
                    .unwrap(),
            );
            assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![org.uuid()]);
            if t.kind == BackendKind::Postgres {
                let pid: i64 = tx
                    .query_one("SELECT pg_backend_pid()::bigint", &[])
                    .await
                    .unwrap()
                    .get(0)
                    .unwrap();
                backends.insert(pid);
            }
            tx.commit().await.unwrap();
        }
        if t.kind == BackendKind::Postgres {
            assert_eq!(backends.len(), 1, "the pool of one reused one connection");
        }

        let assert_unscoped = || async {
            let mut tx = db.global(Mode::Read).await.unwrap();
            match t.kind {
                BackendKind::Postgres => {
                    let row = tx
                    .query_one(
                        "SELECT coalesce(current_setting('app.org_id', true), ''), current_user::text, (SELECT count(*) FROM tickets)",
                        &[],
                    )
                    .await
                    .unwrap();
                    assert_eq!(row.get::<String>(0).unwrap(), "");
                    assert_eq!(row.get::<String>(1).unwrap(), "orgwall_app");
                    assert_eq!(row.get::<i64>(2).unwrap(), 0);
                }
                BackendKind::Sqlite => {
                    let e = tx
                        .query("SELECT count(*) FROM tickets", &[])
                        .await
                        .unwrap_err();
                    assert_eq!(e, Error::ScopeViolation);
                }
            }
        };
        assert_unscoped().await;

        // A transaction that failed mid-way, then was dropped.
        let mut tx = db.write(&alice).await.unwrap();
        tx.data()
            .query("SELECT count(*) FROM notes", &[])
            .await
            .unwrap();
        assert!(tx
            .data()
            .query("SELECT no_such_column FROM notes", &[])
            .await
            .is_err());
        drop(tx);
        assert_unscoped().await;

        // A transaction dropped mid-way without error (its writes must not survive either).
        let mut tx = db.write(&alice).await.unwrap();
        let n = tx
            .data()
            .execute("DELETE FROM ticket_comments", &[])
            .await
            .unwrap();
        assert!(n > 0);
        drop(tx);
        assert_unscoped().await;
        assert_eq!(
            t1.owner_count("ticket_comments", &format!("org_id = '{}'", d.acme))
                .await,
            3
        );

        // And a scoped read right after still sees exactly its own org.
        let mut tx = db.read(&bob).await.unwrap();
        let seen = orgs_seen(
            tx.data()
                .query("SELECT org_id FROM notes", &[])
                .await
                .unwrap(),
        );
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![d.globex.uuid()]);
    }
);

both!(
    membership_is_verified_inside_the_claimed_org,
    |t: TestDb| async move {
        let db = &t.db;
        let d = Demo::load(db).await;
        let e = orgwall_store::access::verify_member(db, d.alice, d.globex)
            .await
            .unwrap_err();
        assert_eq!(e, Error::NotAMember);
        let e = orgwall_store::access::verify_member(db, d.alice, orgwall_core::OrgId::new())
            .await
            .unwrap_err();
        assert_eq!(
            e,
            Error::NotAMember,
            "an unknown org answers like a foreign one"
        );
        let carol = orgwall_store::access::verify_member(db, d.carol, d.globex)
            .await
            .unwrap();
        assert_eq!(
            carol.permissions(),
            orgwall_core::SystemRole::Member.permissions()
        );
        let alice = d.alice_in_acme(db).await;
        assert_eq!(alice.permissions(), orgwall_core::PermissionSet::all());

        // The documented cross-org read: a user's own orgs, nothing else.
        let mine = orgwall_store::access::my_orgs(db, d.carol).await.unwrap();
        let slugs: Vec<_> = mine
            .iter()
            .map(|o| (o.slug.as_str(), o.role.as_str()))
            .collect();
        assert_eq!(slugs, vec![("acme", "member"), ("globex", "member")]);
        let mine = orgwall_store::access::my_orgs(db, d.alice).await.unwrap();
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].role, "owner");
    }
);

both!(
    system_scope_is_named_and_audited_in_the_org_it_enters,
    |t: TestDb| async move {
        let db = &t.db;
        let d = Demo::load(db).await;
        let sys =
            orgwall_store::access::enter_system(db, "test:janitor", d.globex, "regression test")
                .await
                .unwrap();
        assert_eq!(sys.org_id(), d.globex);
        let mut tx = db.read(&sys).await.unwrap();
        let events = orgwall_store::repo::audit::list(&mut tx, 10).await.unwrap();
        let e = events
            .iter()
            .find(|e| e.action == "system.scope_entered")
            .expect("audited");
        assert_eq!(e.actor_kind, "system");
        assert_eq!(e.actor_name.as_deref(), Some("test:janitor"));
        drop(tx);
        let alice = d.alice_in_acme(db).await;
        let mut tx = db.read(&alice).await.unwrap();
        let events = orgwall_store::repo::audit::list(&mut tx, 50).await.unwrap();
        assert!(
            events.iter().all(|e| e.action != "system.scope_entered"),
            "audit of another org"
        );
    }
);

both!(org_creation_is_one_transaction, |t: TestDb| async move {
    let db = &t.db;
    let d = Demo::load(db).await;
    let slug = orgwall_core::Slug::parse("acme").unwrap();
    let err = orgwall_store::access::create_org(db, d.carol, "Another Acme", &slug)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict("slug_taken", _)), "{err:?}");
    assert_eq!(t.owner_count("orgs", "1 = 1").await, 2);
    assert_eq!(
        t.owner_count("roles", "1 = 1").await,
        8,
        "no roles left behind"
    );

    let slug = orgwall_core::Slug::parse("initech").unwrap();
    let (org, scope) = orgwall_store::access::create_org(db, d.carol, "Initech", &slug)
        .await
        .unwrap();
    assert_eq!(scope.org_id(), org.id);
    let mut tx = db.read(&scope).await.unwrap();
    let members = orgwall_store::repo::memberships::list(&mut tx)
        .await
        .unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].role, "owner");
    let roles = tx
        .query("SELECT key FROM roles ORDER BY key", &[])
        .await
        .unwrap();
    let keys: Vec<String> = roles.iter().map(|r| r.get(0).unwrap()).collect();
    assert_eq!(keys, ["admin", "member", "owner", "viewer"]);
    let audit = orgwall_store::repo::audit::list(&mut tx, 10).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].action, "org.created");
});

/// SQLite only: the base tables behind the views are out of reach of raw SQL, and the
/// guard cannot be switched off from SQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_base_tables_and_guards_are_out_of_reach() {
    let t = TestDb::new(BackendKind::Sqlite).await;
    let db = &t.db;
    let d = Demo::load(db).await;
    let alice = d.alice_in_acme(db).await;
    for sql in [
        "SELECT * FROM tickets_rows",
        "SELECT count(*) FROM notes_rows",
        "SELECT title FROM tickets WHERE id IN (SELECT id FROM tickets_rows)",
        "UPDATE notes_rows SET title = 'x' WHERE org_id IS NOT NULL",
        "DROP TRIGGER orgwall_guard_notes_rows_ins",
        "DROP VIEW notes",
        "CREATE TEMP VIEW peek AS SELECT * FROM notes_rows",
        "PRAGMA foreign_keys = OFF",
        "ATTACH DATABASE ':memory:' AS other",
        // Regression: dbstat reads raw pages, so it counted every org's rows.
        "SELECT name, sum(ncell) FROM dbstat GROUP BY name",
        "SELECT count(*) FROM dbstat",
    ] {
        let mut tx = db.write(&alice).await.unwrap();
        let r = tx.query(sql, &[]).await;
        assert_eq!(r.unwrap_err(), Error::ScopeViolation, "{sql}");
    }
    // A delete of every base row is stopped by the guard at Globex's first row.
    let mut tx = db.write(&alice).await.unwrap();
    assert_eq!(
        tx.execute("DELETE FROM notes_rows", &[]).await.unwrap_err(),
        Error::ScopeViolation
    );
    drop(tx);
    assert_eq!(t.owner_count("notes", "1 = 1").await, 6);
}

/// PostgreSQL only: tenant transactions really run as the non-owner role, and the
/// policies are in force for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tenant_transactions_run_as_the_unprivileged_role() {
    let t = TestDb::new(BackendKind::Postgres).await;
    let db = &t.db;
    let d = Demo::load(db).await;
    let alice = d.alice_in_acme(db).await;
    let mut tx = db.read(&alice).await.unwrap();
    let r = tx
        .query_one(
            "SELECT current_user::text, r.rolsuper, r.rolbypassrls, current_setting('app.org_id')
             FROM pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<String>(0).unwrap(), "orgwall_app");
    assert!(!r.get::<bool>(1).unwrap());
    assert!(!r.get::<bool>(2).unwrap());
    assert_eq!(r.get::<String>(3).unwrap(), d.acme.to_string());
    // The read transaction is read-only.
    assert!(tx.execute("DELETE FROM notes", &[]).await.is_err());
}

// Regression: on SQLite, foreign-key cascade actions run as anonymous programs that the
// authorizer refused, so deleting a ticket or project failed; cascades are now named
// triggers. Deleting a project removes its tickets, comments and history, and nothing of
// any other org.
both!(
    deleting_a_project_cascades_inside_its_org_only,
    |t: TestDb| async move {
        let db = &t.db;
        let d = Demo::load(db).await;
        let alice = d.alice_in_acme(db).await;
        let count = |table: &'static str, org: orgwall_core::OrgId| {
            let t = &t;
            async move { t.owner_count(table, &format!("org_id = '{org}'")).await }
        };
        let globex_before = (
            count("tickets", d.globex).await,
            count("ticket_comments", d.globex).await,
            count("ticket_events", d.globex).await,
        );
        let mut tx = db.write(&alice).await.unwrap();
        let web = projects::list(&mut tx, 50, None)
            .await
            .unwrap()
            .into_iter()
            .find(|p| p.key == "WEB")
            .unwrap();
        projects::delete(&mut tx, web.id).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            count("tickets", d.acme).await,
            3,
            "the three WEB tickets are gone"
        );
        assert_eq!(
            t.owner_count_for(
                d.acme,
                "ticket_comments",
                &format!(
                    "org_id = '{}' AND ticket_id NOT IN (SELECT id FROM {})",
                    d.acme,
                    if t.kind == BackendKind::Sqlite {
                        "tickets_rows"
                    } else {
                        "tickets"
                    }
                )
            )
            .await,
            0,
            "no orphaned comments"
        );
        let globex_after = (
            count("tickets", d.globex).await,
            count("ticket_comments", d.globex).await,
            count("ticket_events", d.globex).await,
        );
        assert_eq!(globex_before, globex_after);
    }
);

// Issue 15 item 6: the system tables that carry `org_id` (the job queue and the outbox,
// which holds every org's invitation tokens) are inside the database wall too: raw SQL in
// a tenant transaction sees only its own org's rows, never another org's and never the
// org-less (system) ones, and cannot change them.
both!(
    system_tables_show_a_tenant_only_its_own_rows,
    |t: TestDb| async move {
        use orgwall_store::jobs;
        use orgwall_store::repo::outbox;
        let db = &t.db;
        let d = Demo::load(db).await;
        let alice = d.alice_in_acme(db).await;
        let bob = d.bob_in_globex(db).await;
        // One tenant job and one email per org, and an org-less email (a signup's).
        for scope in [&alice, &bob] {
            let mut tx = db.write(scope).await.unwrap();
            let org = tx.org_id();
            jobs::enqueue(&mut tx, "test.noop", serde_json::json!({}))
                .await
                .unwrap();
            outbox::enqueue(
                tx.raw(),
                Some(org),
                "x@example.test",
                "secret",
                &format!("owi_{org}"),
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
        }
        let mut tx = db.global(Mode::Write).await.unwrap();
        outbox::enqueue(&mut tx, None, "y@example.test", "verify", "owv_orgless")
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let globex = format!("org_id = '{}'", d.globex);
        let (globex_jobs, globex_mail) = (
            t.owner_count("jobs", &globex).await,
            t.owner_count("outbox", &globex).await,
        );
        assert!(globex_jobs >= 1 && globex_mail >= 1);

        let mut tx = db.write(&alice).await.unwrap();
        for table in ["jobs", "outbox"] {
            let rows = tx
                .query(&format!("SELECT org_id FROM {table}"), &[])
                .await
                .unwrap();
            assert!(!rows.is_empty(), "{table}: Acme sees its own rows");
            for r in &rows {
                assert_eq!(
                    r.get::<Option<uuid::Uuid>>(0).unwrap(),
                    Some(d.acme.uuid()),
                    "{table} leaked a row of another org or of the system to Acme"
                );
            }
            let n: i64 = tx
                .query_one(
                    &format!("SELECT count(*) FROM {table} WHERE org_id = $1 OR org_id IS NULL"),
                    params![d.globex],
                )
                .await
                .unwrap()
                .get(0)
                .unwrap();
            assert_eq!(n, 0, "{table}: Globex's or org-less rows visible to Acme");
        }
        let bodies = tx.query("SELECT body FROM outbox", &[]).await.unwrap();
        for b in &bodies {
            let body: String = b.get(0).unwrap();
            assert!(!body.contains(&d.globex.to_string()) && !body.contains("owv_"));
        }
        // Writes aimed at other orgs' rows change nothing.
        for sql in [
            "UPDATE outbox SET recipient = 'attacker@example.test' WHERE org_id IS DISTINCT FROM $1",
            "DELETE FROM jobs WHERE org_id IS DISTINCT FROM $1",
            "DELETE FROM outbox WHERE org_id IS DISTINCT FROM $1",
        ] {
            let n = tx.execute(sql, params![d.acme]).await;
            assert!(matches!(n, Ok(0) | Err(Error::ScopeViolation)), "{sql}: {n:?}");
        }
        drop(tx);
        // Without a scope: nothing (PostgreSQL) or refused (SQLite), as for tenant tables.
        for table in ["jobs", "outbox"] {
            let mut tx = db.global(Mode::Read).await.unwrap();
            let r = tx.query(&format!("SELECT org_id FROM {table}"), &[]).await;
            match t.kind {
                BackendKind::Postgres => assert!(r.unwrap().is_empty(), "{table}"),
                BackendKind::Sqlite => assert_eq!(r.unwrap_err(), Error::ScopeViolation),
            }
        }
        // The named system transaction of each table reaches every row of it, and no
        // other system table's rows.
        let mut tx = db.system("outbox", Mode::Read).await.unwrap();
        let orgs: Vec<Option<uuid::Uuid>> = tx
            .query("SELECT org_id FROM outbox", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0).unwrap())
            .collect();
        for o in [Some(d.acme.uuid()), Some(d.globex.uuid()), None] {
            assert!(orgs.contains(&o), "the outbox system sees {o:?}");
        }
        let r = tx.query("SELECT org_id FROM jobs", &[]).await.unwrap();
        assert!(r.is_empty(), "the outbox system sees no job");
        drop(tx);
        let mut tx = db.system("jobs", Mode::Read).await.unwrap();
        let n: i64 = tx
            .query_one(
                "SELECT count(*) FROM jobs WHERE org_id = $1",
                params![d.globex],
            )
            .await
            .unwrap()
            .get(0)
            .unwrap();
        assert_eq!(n, globex_jobs);
        drop(tx);
        // Only declared system tables have a system transaction.
        assert!(db.system("notes", Mode::Read).await.is_err());
        assert!(db.system("users", Mode::Read).await.is_err());
        assert_eq!(t.owner_count("jobs", &globex).await, globex_jobs);
        assert_eq!(t.owner_count("outbox", &globex).await, globex_mail);
        assert_eq!(
            t.owner_count("outbox", "recipient = 'attacker@example.test'")
                .await,
            0
        );
    }
);
