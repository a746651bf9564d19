//! Search under row-level security (PostgreSQL, migration 0006): the terms tables follow
//! every write, stay inside the wall, and the search that reads them finds exactly what
//! the plain `search @@ plainto_tsquery(..)` scan finds, through the terms index.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use orgwall_core::{TicketId, TicketStatus};
use orgwall_store::access::OrgScope;
use orgwall_store::repo::{notes, projects, tickets};
use orgwall_store::{params, BackendKind, Db};
use orgwall_testkit::{Demo, TestDb};

async fn pg() -> TestDb {
    TestDb::new(BackendKind::Postgres).await
}

async fn owner(t: &TestDb) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&t.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// Rows of `terms` that differ from the lexemes of `table`'s stored vectors (either way).
async fn drift(t: &TestDb, table: &str, terms: &str) -> i64 {
    owner(t)
        .await
        .query_one(
            &format!(
                "WITH want AS (SELECT r.org_id, l.term, r.id FROM {table} r,
                                      unnest(tsvector_to_array(r.search)) AS l (term)),
                      have AS (SELECT org_id, term, id FROM {terms})
                 SELECT (SELECT count(*) FROM (SELECT * FROM want EXCEPT SELECT * FROM have) a)
                      + (SELECT count(*) FROM (SELECT * FROM have EXCEPT SELECT * FROM want) b)"
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

async fn terms_of(t: &TestDb, terms: &str, id: uuid::Uuid) -> Vec<String> {
    orgwall_testkit::texts(
        &owner(t).await,
        &format!("SELECT term FROM {terms} WHERE id = $1 ORDER BY term"),
        &[&id],
    )
    .await
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terms_follow_inserts_updates_and_deletes() {
    let t = pg().await;
    let db = &t.db;
    let d = Demo::load(db).await;
    let alice = d.alice_in_acme(db).await;
    // The demo data, written before any search: already indexed.
    assert_eq!(drift(&t, "tickets", "ticket_terms").await, 0);
    assert_eq!(drift(&t, "notes", "note_terms").await, 0);
    assert!(t.owner_count("ticket_terms", "true").await > 0);
    assert!(t.owner_count("note_terms", "true").await > 0);

    let id = new_ticket(
        db,
        &alice,
        "Quokka Login",
        "the login of the QUOKKA, e-mail",
    )
    .await;
    assert_eq!(
        terms_of(&t, "ticket_terms", id.uuid()).await,
        ["e", "e-mail", "login", "mail", "of", "quokka", "the"]
    );
    let mut tx = db.write(&alice).await.unwrap();
    tickets::update(
        &mut tx,
        id,
        tickets::TicketPatch {
            title: Some("Wombat login".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    tickets::set_status(&mut tx, id, TicketStatus::InProgress)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        terms_of(&t, "ticket_terms", id.uuid()).await,
        ["e", "e-mail", "login", "mail", "of", "quokka", "the", "wombat"]
    );
    let mut tx = db.write(&alice).await.unwrap();
    tickets::update(
        &mut tx,
        id,
        tickets::TicketPatch {
            body: Some("nothing else".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        terms_of(&t, "ticket_terms", id.uuid()).await,
        ["else", "login", "nothing", "wombat"]
    );

    let mut tx = db.write(&alice).await.unwrap();
    let n = notes::create(&mut tx, "Numbat", "numbat notes")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        terms_of(&t, "note_terms", n.id.uuid()).await,
        ["notes", "numbat"]
    );
    let mut tx = db.write(&alice).await.unwrap();
    notes::update(&mut tx, n.id, None, Some("bilby"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        terms_of(&t, "note_terms", n.id.uuid()).await,
        ["bilby", "numbat"]
    );

    // A multi-row insert as the owner (what a COPY does), under replica mode as the
    // bench seeds: the ALWAYS triggers still fill the terms.
    owner(&t)
        .await
        .batch_execute(&format!(
            "SET session_replication_role = replica;
             INSERT INTO notes (org_id, id, title, body, created_at, updated_at)
             SELECT '{}', gen_random_uuid(), 'bulk ' || g, 'row', now(), now()
             FROM generate_series(1, 50) g;",
            d.acme
        ))
        .await
        .unwrap();
    assert_eq!(drift(&t, "tickets", "ticket_terms").await, 0);
    assert_eq!(drift(&t, "notes", "note_terms").await, 0);

    let mut tx = db.write(&alice).await.unwrap();
    tickets::delete(&mut tx, id).await.unwrap();
    notes::delete(&mut tx, n.id).await.unwrap();
    tx.commit().await.unwrap();
    assert!(terms_of(&t, "ticket_terms", id.uuid()).await.is_empty());
    assert!(terms_of(&t, "note_terms", n.id.uuid()).await.is_empty());
    assert_eq!(drift(&t, "tickets", "ticket_terms").await, 0);
    assert_eq!(drift(&t, "notes", "note_terms").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_orgs_terms_are_behind_the_wall() {
    let t = pg().await;
    let db = &t.db;
    let d = Demo::load(db).await;
    let alice = d.alice_in_acme(db).await;
    let bob = d.bob_in_globex(db).await;
    let theirs = new_ticket(db, &bob, "Zanzibar", "zanzibar").await;

    let mut tx = db.write(&alice).await.unwrap();
    for terms in ["ticket_terms", "note_terms"] {
        let rows = tx
            .query(&format!("SELECT org_id FROM {terms}"), &[])
            .await
            .unwrap();
        assert!(!rows.is_empty(), "{terms}");
        for r in &rows {
            assert_eq!(r.get::<uuid::Uuid>(0).unwrap(), d.acme.uuid(), "{terms}");
        }
    }
    let n: i64 = tx
        .query_one(
            "SELECT count(*) FROM ticket_terms WHERE term = 'zanzibar' OR id = $1",
            params![theirs],
        )
        .await
        .unwrap()
        .get(0)
        .unwrap();
    assert_eq!(n, 0);
    // Nor can a tenant write another org's terms (or its own by hand for another's row).
    let e = tx
        .execute(
            "INSERT INTO ticket_terms (org_id, term, id) VALUES ($1, 'x', $2)",
            params![d.globex, theirs],
        )
        .await;
    assert!(e.is_err(), "{e:?}");
    drop(tx);
    let mut tx = db.write(&alice).await.unwrap();
    let n = tx
        .execute(
            "DELETE FROM ticket_terms WHERE term = 'zanzibar'",
            params![],
        )
        .await
        .unwrap();
    assert_eq!(n, 0);
    drop(tx);
    assert_eq!(
        t.owner_count("ticket_terms", &format!("id = '{theirs}'"))
            .await,
        1
    );
}

/// What the search did before the terms tables: the plain `@@` scan of the org's rows
/// (the words of `q` as `repo::search` reads them).
async fn plain(
    db: &Db,
    scope: &OrgScope,
    table: &str,
    q: &str,
    status: Option<&str>,
) -> Vec<uuid::Uuid> {
    let words: Vec<&str> = q
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .collect();
    if words.is_empty() {
        return Vec::new();
    }
    let mut tx = db.read(scope).await.unwrap();
    let org = scope.org_id();
    let status_cond = if status.is_some() {
        " AND status = $3"
    } else {
        ""
    };
    let sql = format!(
        "SELECT id FROM {table} WHERE org_id = $1 AND search @@ plainto_tsquery('simple', $2){status_cond} ORDER BY id"
    );
    let text = words.join(" ");
    let rows = match status {
        Some(s) => tx.query(&sql, params![org, text, s]).await.unwrap(),
        None => tx.query(&sql, params![org, text]).await.unwrap(),
    };
    rows.iter().map(|r| r.get(0).unwrap()).collect()
}

/// Every page of a ticket search (pages of `limit`), concatenated.
async fn paged_tickets(
    db: &Db,
    scope: &OrgScope,
    filter: &tickets::TicketFilter,
    limit: i64,
) -> Vec<uuid::Uuid> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let mut tx = db.read(scope).await.unwrap();
        let page = tickets::list(&mut tx, filter, limit, after).await.unwrap();
        drop(tx);
        assert!(page.len() as i64 <= limit);
        let Some(last) = page.last() else { break };
        after = Some(last.id.uuid());
        all.extend(page.iter().map(|t| t.id.uuid()));
        if (page.len() as i64) < limit {
            break;
        }
    }
    all
}

async fn paged_notes(db: &Db, scope: &OrgScope, q: &str, limit: i64) -> Vec<uuid::Uuid> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let mut tx = db.read(scope).await.unwrap();
        let page = notes::list(&mut tx, Some(q), limit, after).await.unwrap();
        drop(tx);
        let Some(last) = page.last() else { break };
        after = Some(last.id.uuid());
        all.extend(page.iter().map(|n| n.id.uuid()));
        if (page.len() as i64) < limit {
            break;
        }
    }
    all
}

const QUERIES: &[&str] = &[
    "login",
    "LOGIN page",
    "page login slow",
    "alpha",
    "alpha beta",
    "beta alpha gamma",
    "alpha delta",
    "rare",
    "rare alpha",
    "common rare",
    "common",
    "e-mail",
    "mail e",
    "mail-e",
    "globex",
    "zanzibar",
    "1.5",
    "v1.5 release",
    "café",
    "CAFÉ naïve",
    "日本語",
    "the",
    "the the the",
    ") OR 1=1 --",
    "login*",
    "(login)",
    "a:* & !b | c <-> d",
    "*",
    "%",
    "",
    "\u{301}",
    "foo_bar",
    "foo bar",
    "x\" x\" x\"",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_what_the_plain_scan_finds() {
    let t = pg().await;
    let db = &t.db;
    let d = Demo::load(db).await;
    let alice = d.alice_in_acme(db).await;
    let bob = d.bob_in_globex(db).await;
    let texts = [
        ("Alpha beta", "common words and a rare one"),
        ("alpha", "common gamma"),
        ("Beta", "alpha gamma common"),
        ("e-mail trouble", "mail for e"),
        ("release v1.5", "see 1.5 notes, common"),
        ("Café naïve", "日本語 text"),
        ("foo_bar", "the the common"),
        ("delta", "alpha alpha delta common"),
        ("Login page is slower", "common"),
    ];
    for i in 0..30 {
        let (title, body) = texts[i % texts.len()];
        new_ticket(db, &alice, title, body).await;
        new_ticket(db, &bob, title, body).await;
        let mut tx = db.write(&alice).await.unwrap();
        let n = notes::create(&mut tx, title, body).await.unwrap();
        if i % 4 == 0 {
            notes::update(&mut tx, n.id, None, Some("common only"))
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
    // Some tickets change status, for the filtered searches.
    let all = {
        let mut tx = db.read(&alice).await.unwrap();
        tickets::list(&mut tx, &Default::default(), 500, None)
            .await
            .unwrap()
    };
    let mut tx = db.write(&alice).await.unwrap();
    for tk in all
        .iter()
        .filter(|t| t.status == TicketStatus::Open)
        .step_by(3)
    {
        tickets::set_status(&mut tx, tk.id, TicketStatus::InProgress)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();

    for q in QUERIES {
        let want = plain(db, &alice, "tickets", q, None).await;
        let filter = tickets::TicketFilter {
            q: Some((*q).to_owned()),
            ..Default::default()
        };
        for limit in [1, 2, 7, 200] {
            assert_eq!(
                paged_tickets(db, &alice, &filter, limit).await,
                want,
                "tickets {q:?} by {limit}"
            );
        }
        let want = plain(db, &alice, "tickets", q, Some("in_progress")).await;
        let filter = tickets::TicketFilter {
            q: Some((*q).to_owned()),
            status: Some(TicketStatus::InProgress),
            ..Default::default()
        };
        assert_eq!(
            paged_tickets(db, &alice, &filter, 3).await,
            want,
            "in progress {q:?}"
        );
        let want = plain(db, &alice, "notes", q, None).await;
        for limit in [1, 3, 200] {
            assert_eq!(
                paged_notes(db, &alice, q, limit).await,
                want,
                "notes {q:?} by {limit}"
            );
        }
    }
    // The queries are not vacuous.
    assert!(plain(db, &alice, "tickets", "alpha", None).await.len() > 10);
    assert!(!plain(db, &alice, "tickets", "rare alpha", None)
        .await
        .is_empty());
    assert!(!plain(db, &alice, "notes", "e-mail", None).await.is_empty());
    assert!(!plain(db, &alice, "tickets", "café", None).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_reads_the_terms_index_under_row_level_security() {
    let t = pg().await;
    let db = &t.db;
    let d = Demo::load(db).await;
    let alice = d.alice_in_acme(db).await;
    // Enough rows that the plan is a real choice: 5,000 tickets, one with a rare word.
    owner(&t)
        .await
        .batch_execute(&format!(
            "INSERT INTO tickets (org_id, id, project_id, title, body, created_at, updated_at)
             SELECT p.org_id, gen_random_uuid(), p.id, 'Ticket ' || g,
                    'common words ' || CASE WHEN g = 4321 THEN 'kinkajou' ELSE 'only' END, now(), now()
             FROM generate_series(1, 5000) g,
                  (SELECT org_id, id FROM projects WHERE org_id = '{}' LIMIT 1) p;
             ANALYZE",
            d.acme
        ))
        .await
        .unwrap();
    for q in ["kinkajou", "common", "common kinkajou"] {
        let mut tx = db.read(&alice).await.unwrap();
        let filter = tickets::TicketFilter {
            q: Some(q.to_owned()),
            ..Default::default()
        };
        let plan = tickets::explain_list(&mut tx, &filter, 50, None)
            .await
            .unwrap()
            .join("\n");
        drop(tx);
        // As the server role, under forced RLS: the postings' primary key, in order (no
        // sort), then the ticket by its primary key, re-checked with @@.
        assert!(
            plan.contains("Index Only Scan using ticket_terms_pkey on ticket_terms p"),
            "{q}: {plan}"
        );
        assert!(
            plan.contains("Index Scan using tickets_pkey on tickets"),
            "{q}: {plan}"
        );
        assert!(
            !plan.contains("Sort Key: r.id")
                && !plan.contains("Seq Scan")
                && !plan.contains("Gather"),
            "{q}: {plan}"
        );
        let scanned = plan
            .lines()
            .find(|l| l.contains("on ticket_terms p"))
            .unwrap()
            .to_owned();
        let want = if q == "common" { "rows=50 " } else { "rows=1 " };
        assert!(
            scanned.contains(want),
            "{q}: reads only what it returns: {plan}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_searches_its_fts5_index_and_keeps_the_terms_tables_empty() {
    let t = TestDb::new(BackendKind::Sqlite).await;
    let db = &t.db;
    let d = Demo::load(db).await;
    let alice = d.alice_in_acme(db).await;
    new_ticket(db, &alice, "Quokka", "quokka").await;
    let mut tx = db.read(&alice).await.unwrap();
    let filter = tickets::TicketFilter {
        q: Some("quokka".into()),
        ..Default::default()
    };
    let plan = tickets::explain_list(&mut tx, &filter, 50, None)
        .await
        .unwrap()
        .join("\n");
    assert!(plan.contains("tickets_fts_rows"), "{plan}");
    assert_eq!(
        tickets::list(&mut tx, &filter, 50, None)
            .await
            .unwrap()
            .len(),
        1
    );
    drop(tx);
    assert_eq!(t.owner_count("ticket_terms", "1").await, 0);
    assert_eq!(t.owner_count("note_terms", "1").await, 0);
}

/// A ticket list counted as one page's read (`TicketFilter::reads_one_page`, which sends it
/// on a read lane) with a search is a search of exactly one lexeme, as PostgreSQL parses
/// it: every posting a hit, so a page reads a page of postings. Random words, ASCII and
/// not, with and without punctuation, each checked against `to_tsvector('simple', ..)`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_read_as_one_page_is_one_lexeme_for_postgres() {
    use proptest::strategy::{Strategy, ValueTree};
    let t = pg().await;
    let strategy = proptest::prop_oneof![
        proptest::string::string_regex("[A-Za-z0-9]{1,24}").unwrap(),
        proptest::string::string_regex(
            " ?[A-Za-z0-9\u{e9}\u{65e5}]{1,8}([ ._'@/:+-]{0,2}[A-Za-z0-9]{0,6}){0,2} ?"
        )
        .unwrap(),
        proptest::string::string_regex("\\PC{1,12}").unwrap(),
    ];
    let mut runner = proptest::test_runner::TestRunner::default();
    let words: Vec<String> = (0..2000)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect();
    // A `q` without a letter or digit holds no word: the list reads nothing (no statement).
    let one_page: Vec<String> = words
        .into_iter()
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .filter(|w| {
            tickets::TicketFilter {
                q: Some(w.clone()),
                ..Default::default()
            }
            .reads_one_page()
        })
        .collect();
    assert!(one_page.len() > 500, "{} one-page searches", one_page.len());
    let rows = owner(&t)
        .await
        .query(
            "SELECT w, numnode(plainto_tsquery('simple', w)) FROM unnest($1::text[]) AS w
              WHERE numnode(plainto_tsquery('simple', w)) <> 1",
            &[&one_page],
        )
        .await
        .unwrap();
    let many: Vec<(String, i32)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert!(
        many.is_empty(),
        "read as one page, not one lexeme: {many:?}"
    );
    // And the other side of the rule: two conditions, or two words, are not one page.
    let two = tickets::TicketFilter {
        status: Some(TicketStatus::Open),
        q: Some("zephyr".into()),
        ..Default::default()
    };
    let words = tickets::TicketFilter {
        q: Some("login page".into()),
        ..Default::default()
    };
    assert!(!two.reads_one_page() && !words.reads_one_page());
}
