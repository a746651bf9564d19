//! Full-text search (`q` of the ticket and note lists) on both backends, inside the walls:
//! scoped to the caller's org, safe against any input, kept in sync by writes, and (on
//! SQLite) an index that raw SQL cannot read or write around its scoped view.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use orgwall_core::{Error, NoteId, TicketId};
use orgwall_store::access::OrgScope;
use orgwall_store::repo::{notes, projects, tickets};
use orgwall_store::{params, BackendKind, Db, Mode};
use orgwall_testkit::{both, Demo, TestDb};

async fn find_tickets(db: &Db, scope: &OrgScope, q: &str) -> Vec<TicketId> {
    let mut tx = db.read(scope).await.unwrap();
    let filter = tickets::TicketFilter {
        q: Some(q.to_owned()),
        ..Default::default()
    };
    let rows = tickets::list(&mut tx, &filter, 200, None).await.unwrap();
    tx.commit().await.unwrap();
    rows.into_iter().map(|t| t.id).collect()
}

async fn find_notes(db: &Db, scope: &OrgScope, q: &str) -> Vec<NoteId> {
    let mut tx = db.read(scope).await.unwrap();
    let rows = notes::list(&mut tx, Some(q), 200, None).await.unwrap();
    tx.commit().await.unwrap();
    rows.into_iter().map(|n| n.id).collect()
}

async fn new_ticket(db: &Db, scope: &OrgScope, title: &str, body: &str) -> TicketId {
    let mut tx = db.write(scope).await.unwrap();
    let project = projects::list(&mut tx, 50, None).await.unwrap()[0].id;
    let t = tickets::create(
        &mut tx,
        tickets::NewTicket {
            project_id: project,
            title,
            body,
            assignee_id: None,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    t.id
}

async fn new_note(db: &Db, scope: &OrgScope, title: &str, body: &str) -> NoteId {
    let mut tx = db.write(scope).await.unwrap();
    let n = notes::create(&mut tx, title, body).await.unwrap();
    tx.commit().await.unwrap();
    n.id
}

both!(
    a_term_only_another_org_has_finds_nothing,
    |t: TestDb| async move {
        let db = &t.db;
        let d = Demo::load(db).await;
        let alice = d.alice_in_acme(db).await;
        let bob = d.bob_in_globex(db).await;
        let ticket = new_ticket(db, &bob, "Zanzibar rollout", "ship the zanzibar build").await;
        let note = new_note(db, &bob, "Zanzibar plan", "secret").await;

        assert!(find_tickets(db, &alice, "zanzibar").await.is_empty());
        assert!(find_notes(db, &alice, "zanzibar").await.is_empty());
        assert_eq!(find_tickets(db, &bob, "ZANZIBAR").await, vec![ticket]);
        assert_eq!(find_notes(db, &bob, "Zanzibar").await, vec![note]);

        // The demo text names its own org: "Globex" is in every Globex ticket and note,
        // and in nothing of Acme's.
        assert!(find_tickets(db, &alice, "globex").await.is_empty());
        assert!(find_notes(db, &alice, "globex").await.is_empty());
        assert_eq!(find_tickets(db, &bob, "globex").await.len(), 6);
        assert_eq!(find_notes(db, &bob, "globex").await.len(), 3);
    }
);

both!(
    a_term_both_orgs_have_finds_only_the_callers_rows,
    |t: TestDb| async move {
        let db = &t.db;
        let d = Demo::load(db).await;
        let alice = d.alice_in_acme(db).await;
        let bob = d.bob_in_globex(db).await;

        let a = find_tickets(db, &alice, "login").await;
        let b = find_tickets(db, &bob, "login").await;
        assert_eq!((a.len(), b.len()), (1, 1));
        assert_ne!(a, b);
        let mut tx = db.read(&alice).await.unwrap();
        assert_eq!(
            tickets::get(&mut tx, a[0]).await.unwrap().title,
            "Login page is slow"
        );
        assert_eq!(tickets::get(&mut tx, b[0]).await, Err(Error::NotFound));
        drop(tx);

        // Every word must appear; words are whole words; case does not matter.
        assert_eq!(find_tickets(db, &alice, "LOGIN page").await, a);
        assert_eq!(find_tickets(db, &alice, "page login slow").await, a);
        assert!(find_tickets(db, &alice, "login footer").await.is_empty());
        assert!(find_tickets(db, &alice, "logi").await.is_empty());

        let a = find_notes(db, &alice, "postmortem").await;
        let b = find_notes(db, &bob, "postmortem").await;
        assert_eq!((a.len(), b.len()), (1, 1));
        assert_ne!(a, b);
        assert_eq!(find_notes(db, &alice, "confidential").await.len(), 3);
        assert_eq!(find_notes(db, &bob, "confidential").await.len(), 3);

        // Other filters still apply, and keyset pages over a search neither skip nor repeat.
        for i in 0..5 {
            new_note(db, &alice, &format!("Pagination {i}"), "kangaroo").await;
        }
        new_note(db, &bob, "Pagination", "kangaroo").await;
        let all = find_notes(db, &alice, "kangaroo").await;
        assert_eq!(all.len(), 5);
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let mut tx = db.read(&alice).await.unwrap();
            let page = notes::list(&mut tx, Some("kangaroo"), 2, after)
                .await
                .unwrap();
            drop(tx);
            if page.is_empty() {
                break;
            }
            after = page.last().map(|n| n.id.uuid());
            seen.extend(page.into_iter().map(|n| n.id));
            assert!(seen.len() <= 5);
        }
        assert_eq!(seen, all);
        let mut tx = db.read(&alice).await.unwrap();
        let open = tickets::list(
            &mut tx,
            &tickets::TicketFilter {
                status: Some(orgwall_core::TicketStatus::Open),
                q: Some("login".into()),
                ..Default::default()
            },
            50,
            None,
        )
        .await
        .unwrap();
        assert!(open.is_empty(), "the login ticket is in progress");
    }
);

/// Search strings that are query syntax somewhere (FTS5, tsquery, SQL, LIKE).
const HOSTILE: &[&str] = &[
    ") OR 1=1 --",
    "*",
    "NEAR(",
    "NEAR(login page, 2)",
    "\"",
    "\"\"",
    "'",
    "login\" OR \"page",
    "doc: login",
    "org_key : x",
    "{doc org_key}: login",
    "^login",
    "login*",
    "AND",
    "OR login",
    "NOT login",
    "login AND NOT page",
    "((",
    "\\",
    "%_%",
    "\u{0}",
    "login\u{0}page",
    "'; DROP TABLE tickets; --",
    "a:* & !b | c <-> d",
    "-login",
    "+",
    "<->",
    "e-mail",
    "\u{301}",
    "日本語",
    "🎉",
];

both!(hostile_search_strings_never_error, |t: TestDb| async move {
    let db = &t.db;
    let d = Demo::load(db).await;
    let alice = d.alice_in_acme(db).await;
    let long = "x\" ".repeat(100);
    for q in HOSTILE.iter().copied().chain([long.as_str()]) {
        let mut tx = db.read(&alice).await.unwrap();
        let filter = tickets::TicketFilter {
            q: Some(q.to_owned()),
            ..Default::default()
        };
        let found = tickets::list(&mut tx, &filter, 50, None).await;
        assert!(found.is_ok(), "tickets q={q:?}: {found:?}");
        let found = notes::list(&mut tx, Some(q), 50, None).await;
        assert!(found.is_ok(), "notes q={q:?}: {found:?}");
        tx.commit().await.unwrap();
    }
    // Syntax is read as text: the words are still searched for.
    assert_eq!(find_tickets(db, &alice, "login*").await.len(), 1);
    assert_eq!(find_tickets(db, &alice, "(login)").await.len(), 1);
    assert!(find_tickets(db, &alice, "OR login").await.is_empty());
    assert!(find_tickets(db, &alice, ") OR 1=1 --").await.is_empty());
    assert!(find_tickets(db, &alice, "*").await.is_empty());
    assert!(find_notes(db, &alice, "%").await.is_empty());
});

both!(
    updates_and_deletes_keep_the_index_in_sync,
    |t: TestDb| async move {
        let db = &t.db;
        let d = Demo::load(db).await;
        let alice = d.alice_in_acme(db).await;
        let bob = d.bob_in_globex(db).await;

        // Tickets.
        let id = new_ticket(db, &alice, "Quokka migration", "move the quokka servers").await;
        let other = new_ticket(db, &bob, "Quokka migration", "globex quokka").await;
        assert_eq!(find_tickets(db, &alice, "quokka").await, vec![id]);
        let mut tx = db.write(&alice).await.unwrap();
        tickets::update(
            &mut tx,
            id,
            tickets::TicketPatch {
                title: Some("Wombat migration".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(find_tickets(db, &alice, "wombat").await, vec![id]);
        assert_eq!(
            find_tickets(db, &alice, "quokka").await,
            vec![id],
            "still in the body"
        );
        assert!(find_tickets(db, &alice, "quokka migration wombat")
            .await
            .contains(&id));
        let mut tx = db.write(&alice).await.unwrap();
        tickets::update(
            &mut tx,
            id,
            tickets::TicketPatch {
                body: Some("move the platypus servers".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        // A change that is not text leaves the entry as it is.
        tickets::set_status(&mut tx, id, orgwall_core::TicketStatus::InProgress)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert!(find_tickets(db, &alice, "quokka").await.is_empty());
        assert_eq!(find_tickets(db, &alice, "platypus wombat").await, vec![id]);
        let mut tx = db.write(&alice).await.unwrap();
        tickets::delete(&mut tx, id).await.unwrap();
        tx.commit().await.unwrap();
        assert!(find_tickets(db, &alice, "wombat").await.is_empty());
        assert!(find_tickets(db, &alice, "platypus").await.is_empty());
        assert_eq!(find_tickets(db, &bob, "quokka").await, vec![other]);

        // Notes.
        let note = new_note(db, &alice, "Echidna notes", "first draft").await;
        assert_eq!(find_notes(db, &alice, "echidna").await, vec![note]);
        let mut tx = db.write(&alice).await.unwrap();
        notes::update(&mut tx, note, Some("Numbat notes"), Some("second draft"))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert!(find_notes(db, &alice, "echidna").await.is_empty());
        assert!(find_notes(db, &alice, "first").await.is_empty());
        assert_eq!(find_notes(db, &alice, "numbat second").await, vec![note]);
        let mut tx = db.write(&alice).await.unwrap();
        notes::delete(&mut tx, note).await.unwrap();
        tx.commit().await.unwrap();
        assert!(find_notes(db, &alice, "numbat").await.is_empty());

        // A rolled-back write leaves nothing in the index.
        let mut tx = db.write(&alice).await.unwrap();
        notes::create(&mut tx, "Bilby", "rolled back")
            .await
            .unwrap();
        drop(tx);
        assert!(find_notes(db, &alice, "bilby").await.is_empty());

        // Deleting a project cascades to its tickets and to their index entries.
        let mut tx = db.write(&alice).await.unwrap();
        let web = projects::list(&mut tx, 50, None)
            .await
            .unwrap()
            .into_iter()
            .find(|p| p.key == "WEB")
            .unwrap();
        projects::delete(&mut tx, web.id).await.unwrap();
        tx.commit().await.unwrap();
        assert!(find_tickets(db, &alice, "login").await.is_empty());
        assert_eq!(find_tickets(db, &bob, "login").await.len(), 1);

        if t.kind == BackendKind::Sqlite {
            // The index holds exactly one entry per row, for every org.
            let c = rusqlite::Connection::open(&t.url).unwrap();
            for table in ["tickets", "notes"] {
                let (rows, entries, orphans): (i64, i64, i64) = c
                    .query_row(
                        &format!(
                            "SELECT (SELECT count(*) FROM {table}_rows),
                                    (SELECT count(*) FROM {table}_fts_rows),
                                    (SELECT count(*) FROM {table}_fts_rows f WHERE NOT EXISTS (
                                        SELECT 1 FROM {table}_rows r WHERE r.org_id = f.org_id
                                          AND r.id = f.id AND f.doc = r.title || char(10) || r.body))"
                        ),
                        [],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .unwrap();
                assert_eq!((rows, orphans), (entries, 0), "{table}");
            }
            // secure-delete: the terms of deleted text are gone from the index pages.
            for (table, term) in [
                ("tickets", "wombat"),
                ("tickets", "platypus"),
                ("notes", "echidna"),
                ("notes", "numbat"),
                ("notes", "bilby"),
            ] {
                let n: i64 = c
                    .query_row(
                        &format!(
                            "SELECT count(*) FROM {table}_fts_rows_data
                             WHERE instr(block, CAST(?1 AS BLOB)) > 0"
                        ),
                        [term],
                        |r| r.get(0),
                    )
                    .unwrap();
                assert_eq!(n, 0, "{term} still in {table}_fts_rows_data");
            }
        }
    }
);

both!(
    the_doctor_accepts_the_search_indexes,
    |t: TestDb| async move {
        let v = t.db.doctor().await.unwrap();
        assert!(v.is_empty(), "{v:#?}");
        if t.kind == BackendKind::Postgres {
            // No GIN index anywhere an org's rows are (migration 0009): the server role
            // cannot use one under the wall, and its pending list's merge stalled one
            // insert in about 20,000 for 130-210 ms while the org's other writers waited.
            let d = Demo::load(&t.db).await;
            for org in [d.acme, d.globex] {
                let gin = t
                    .owner_count_for(
                        org,
                        "pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                         JOIN pg_am a ON a.oid = c.relam",
                        "a.amname = 'gin'",
                    )
                    .await;
                assert_eq!(gin, 0, "GIN indexes where {org} is placed");
            }
        }
    }
);

/// SQLite only: the FTS5 indexes and their shadow tables are out of reach of raw SQL; the
/// scoped views are the only way in, and they show the caller's org only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_fts_tables_are_out_of_reach() {
    let t = TestDb::new(BackendKind::Sqlite).await;
    let db = &t.db;
    let d = Demo::load(db).await;
    let alice = d.alice_in_acme(db).await;
    let owner = rusqlite::Connection::open(&t.url).unwrap();
    let shadows: Vec<String> = owner
        .prepare("SELECT name FROM pragma_table_list WHERE type = 'shadow' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(
        shadows,
        [
            "notes_fts_rows_config",
            "notes_fts_rows_content",
            "notes_fts_rows_data",
            "notes_fts_rows_idx",
            "tickets_fts_rows_config",
            "tickets_fts_rows_content",
            "tickets_fts_rows_data",
            "tickets_fts_rows_idx",
        ]
    );
    let entries = |c: &rusqlite::Connection| -> i64 {
        c.query_row(
            "SELECT (SELECT count(*) FROM tickets_fts_rows) + (SELECT count(*) FROM notes_fts_rows)",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    // Both demo orgs' entries, wherever each lives (the control file, or an org's own file
    // under ORGWALL_TEST_PLACEMENTS).
    let files: Vec<rusqlite::Connection> = t
        .sqlite_org_files()
        .into_iter()
        .map(|(_, f)| rusqlite::Connection::open(f).unwrap())
        .collect();
    let all =
        |owner: &rusqlite::Connection| entries(owner) + files.iter().map(entries).sum::<i64>();
    let before = all(&owner);
    assert_eq!(before, 18);
    let bob = d.bob_in_globex(db).await;

    let mut refused: Vec<String> = Vec::new();
    for table in ["tickets_fts_rows", "notes_fts_rows"]
        .into_iter()
        .map(String::from)
        .chain(shadows.iter().cloned())
    {
        refused.push(format!("SELECT * FROM {table}"));
        refused.push(format!("SELECT count(*) FROM {table}"));
        refused.push(format!(
            "SELECT title FROM tickets WHERE EXISTS (SELECT 1 FROM {table})"
        ));
    }
    refused
        .extend(["DELETE FROM tickets_fts_rows", "DELETE FROM notes_fts_rows"].map(String::from));
    refused.extend(
        [
            "SELECT id FROM tickets_fts_rows WHERE tickets_fts_rows MATCH 'globex'",
            "SELECT bm25(tickets_fts_rows) FROM tickets_fts_rows WHERE tickets_fts_rows MATCH 'login'",
            "SELECT block FROM tickets_fts_rows_data",
            "SELECT term FROM tickets_fts_rows_idx",
            "SELECT c4 FROM notes_fts_rows_content",
            "SELECT k, v FROM notes_fts_rows_config",
            "UPDATE tickets_fts_rows SET doc = 'x'",
            "INSERT INTO tickets_fts_rows (tickets_fts_rows) VALUES ('delete-all')",
            "INSERT INTO tickets_fts_rows (tickets_fts_rows) VALUES ('rebuild')",
            "INSERT INTO notes_fts_rows (org_id, id, org_key, doc_key, doc) VALUES ('x', 'y', 'x', 'y', 'z')",
            "CREATE VIRTUAL TABLE temp.peek USING fts5vocab(main, 'tickets_fts_rows', 'row')",
            "DROP TRIGGER orgwall_fts_tickets_rows_del",
            "DROP VIEW tickets_fts",
        ]
        .map(String::from),
    );
    for sql in &refused {
        let mut tx = db.write(&alice).await.unwrap();
        let r = tx.query(sql, &[]).await;
        assert_eq!(r.unwrap_err(), Error::ScopeViolation, "{sql}");
        drop(tx);
        // And on Globex's data plane (its own file, when it has one).
        let mut tx = db.write(&bob).await.unwrap();
        let r = tx.data().query(sql, &[]).await;
        assert_eq!(r.unwrap_err(), Error::ScopeViolation, "globex: {sql}");
    }
    // Writes to the shadow tables: SQLite's defensive mode refuses them before the
    // authorizer (which refuses them too) is asked.
    for table in &shadows {
        for sql in [
            format!("DELETE FROM {table}"),
            format!("UPDATE {table} SET rowid = rowid"),
            format!("INSERT INTO {table} SELECT * FROM {table}"),
        ] {
            let mut tx = db.write(&alice).await.unwrap();
            assert!(tx.query(&sql, &[]).await.is_err(), "{sql}");
            drop(tx);
            let mut tx = db.write(&bob).await.unwrap();
            assert!(tx.data().query(&sql, &[]).await.is_err(), "globex: {sql}");
        }
    }
    // Through the scoped views: the caller's org only, and no ranking across orgs.
    let mut tx = db.read(&alice).await.unwrap();
    for view in ["tickets_fts", "notes_fts"] {
        let rows = tx
            .data()
            .query(&format!("SELECT org_id FROM {view}"), &[])
            .await
            .unwrap();
        assert!(!rows.is_empty());
        for r in rows {
            assert_eq!(r.get::<uuid::Uuid>(0).unwrap(), d.acme.uuid(), "{view}");
        }
        let n: i64 = tx
            .data()
            .query_one(
                &format!("SELECT count(*) FROM {view} WHERE doc MATCH $1"),
                params!["globex"],
            )
            .await
            .unwrap()
            .get(0)
            .unwrap();
        assert_eq!(n, 0, "{view}");
    }
    for sql in [
        "SELECT bm25(tickets_fts) FROM tickets_fts WHERE doc MATCH 'login'",
        "SELECT rank FROM tickets_fts WHERE doc MATCH 'login'",
        "INSERT INTO tickets_fts (org_id, id, doc) VALUES ('x', 'y', 'z')",
    ] {
        assert!(tx.data().query(sql, &[]).await.is_err(), "{sql}");
    }
    drop(tx);
    // Without a scope, even the views refuse.
    let mut tx = db.global(Mode::Read).await.unwrap();
    assert_eq!(
        tx.query("SELECT id FROM tickets_fts WHERE doc MATCH 'login'", &[])
            .await
            .unwrap_err(),
        Error::ScopeViolation
    );
    drop(tx);
    assert_eq!(all(&owner), before, "nothing written around the wall");
    assert_eq!(find_tickets(db, &alice, "login").await.len(), 1);
}

/// SQLite only: FTS5 connects an index (reading its own `_config`) the first time a
/// connection uses it and again after every schema change. When that first use is a
/// trigger (a write), those reads happen while the statement compiles; the wall must let
/// the write through without letting raw SQL read the shadow tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_writes_work_on_fresh_connections_and_after_schema_changes() {
    let t = TestDb::with_pool(BackendKind::Sqlite, 1).await;
    let db = &t.db;
    let d = Demo::load(db).await;
    let alice = d.alice_in_acme(db).await;
    for round in 0..3 {
        // A schema change from another connection (migrate recreates every trigger).
        db.migrate().await.unwrap();
        // First through the repository (a cached statement, recompiled while it runs)...
        let id = new_note(db, &alice, &format!("Round{round}"), "after migrate").await;
        db.migrate().await.unwrap();
        // ...then a statement this connection has never compiled: the trigger that writes
        // the index is compiled with it, and FTS5 connects the index right then.
        let mut tx = db.write(&alice).await.unwrap();
        let raw = NoteId::new();
        tx.data()
            .execute(
                &format!(
                    "INSERT INTO notes (org_id, id, title, body, created_at, updated_at)
                 VALUES ($1, $2, 'Raw{round}', '', $3, $3) -- round {round}"
                ),
                params![d.acme, raw, orgwall_store::value::now()],
            )
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            find_notes(db, &alice, &format!("raw{round}")).await,
            vec![raw]
        );
        let mut tx = db.read(&alice).await.unwrap();
        assert_eq!(
            tx.query("SELECT k FROM notes_fts_rows_config", &[])
                .await
                .unwrap_err(),
            Error::ScopeViolation
        );
        drop(tx);
        assert_eq!(
            find_notes(db, &alice, &format!("round{round}")).await,
            vec![id]
        );
    }
}

/// SQLite only: a search reads the FTS5 index (not a scan), starting from the org's own
/// postings, and the list query drives the ticket lookups by key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_search_uses_the_fts_index() {
    let t = TestDb::new(BackendKind::Sqlite).await;
    let db = &t.db;
    let d = Demo::load(db).await;
    let alice = d.alice_in_acme(db).await;
    let mut tx = db.read(&alice).await.unwrap();
    let plan: Vec<String> = tx
        .query(
            "EXPLAIN QUERY PLAN SELECT id FROM tickets WHERE org_id = $1 AND id > $2
               AND id IN (SELECT id FROM tickets_fts WHERE doc MATCH $3) ORDER BY id LIMIT 50",
            params![d.acme, uuid::Uuid::nil(), "\"login\""],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String>(3).unwrap())
        .collect();
    let text = plan.join("\n");
    // FTS5 describes a plan with two MATCH constraints (org_key and doc) as M..M...
    assert!(
        plan.iter()
            .any(|p| p.contains("tickets_fts_rows VIRTUAL TABLE INDEX")
                && p.matches('M').count() >= 2),
        "{text}"
    );
    assert!(
        plan.iter()
            .any(|p| p.contains("tickets_rows USING") && p.contains("INDEX")),
        "{text}"
    );
    assert!(
        !plan.iter().any(|p| p.starts_with("SCAN tickets_rows")),
        "{text}"
    );
}

/// SQLite only: the doctor's exemption for full-text indexes is narrow: a broken index,
/// a stray virtual table and its shadow tables are all named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_doctor_flags_broken_fts_indexes() {
    let t = TestDb::new(BackendKind::Sqlite).await;
    t.owner_exec(
        "DROP TRIGGER orgwall_fts_notes_rows_del;
         DROP VIEW tickets_fts;
         CREATE VIEW tickets_fts AS SELECT org_id, id, doc FROM tickets_fts_rows;
         CREATE VIRTUAL TABLE stray USING fts5(doc);
         CREATE VIRTUAL TABLE widgets_fts_rows USING fts5(doc);
         CREATE VIRTUAL TABLE boxes_fts_rows USING rtree(id, x0, x1);",
    )
    .await;
    let v = t.db.doctor().await.unwrap();
    let flagged = |object: &str, needle: &str| {
        assert!(
            v.iter()
                .any(|x| x.object == object && x.problem.contains(needle)),
            "expected {object}: {needle:?} in {v:#?}"
        );
    };
    flagged(
        "notes_fts_rows",
        "missing sync trigger orgwall_fts_notes_rows_del",
    );
    flagged("tickets_fts_rows", "no scoped view tickets_fts");
    flagged("stray", "not a full-text index named <t>_fts_rows");
    flagged("stray_content", "no org_id column");
    flagged("stray_idx", "not behind a scoped view");
    flagged("widgets_fts_rows", "no org_id column");
    flagged(
        "widgets_fts_rows",
        "indexes widgets_rows, which does not exist",
    );
    flagged(
        "widgets_fts_rows",
        "missing sync trigger orgwall_fts_widgets_rows_ins",
    );
    flagged("boxes_fts_rows", "not an FTS5 table");
    for clean in [
        "tickets_rows",
        "notes_rows",
        "tickets_fts_rows_data",
        "notes_fts_rows_idx",
    ] {
        assert!(
            v.iter().all(|x| x.object != clean),
            "{clean} flagged: {v:#?}"
        );
    }
}
