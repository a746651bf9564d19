//! Per-tenant placement on SQLite: an org's data plane in a file of its own, with the
//! same wall as the control file (scoped views, guard triggers, the authorizer), the
//! members projection private to the owner, the directory, the doctor, migrations over
//! every file and the clean deletion of a file.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use orgwall_core::{Error, OrgId, UserId};
use orgwall_store::migrate::Migration;
use orgwall_store::placement::{self, database_name, Kind, Route};
use orgwall_store::{params, BackendKind, Db, DbConfig, Module, Plane};
use orgwall_testkit::{Demo, TestDb};
use std::path::PathBuf;

/// The demo world with Globex in a file of its own and Acme shared.
async fn placed() -> (TestDb, Demo) {
    let t = TestDb::new(BackendKind::Sqlite).await;
    orgwall_store::seed::demo_placed(&t.db, &[("globex", Kind::Database(None))])
        .await
        .unwrap();
    let d = Demo::load(&t.db).await;
    (t, d)
}

/// The file of `org`'s own placement.
fn file_of(t: &TestDb, org: OrgId) -> PathBuf {
    PathBuf::from(&t.url)
        .parent()
        .unwrap()
        .join("orgs")
        .join(format!("{}.db", database_name(org)))
}

/// An owner connection (no authorizer) to the control file.
fn control(t: &TestDb) -> rusqlite::Connection {
    rusqlite::Connection::open(&t.url).unwrap()
}

/// An owner connection to the file at `path` acting for `org` (the guard triggers ask
/// `app_org()`): what a bug or a tampering hand would do below every wall.
fn owner_as(path: impl AsRef<std::path::Path>, org: OrgId) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(path).unwrap();
    let org = org.to_string();
    c.create_scalar_function(
        "app_org",
        0,
        rusqlite::functions::FunctionFlags::SQLITE_UTF8,
        move |_| Ok(org.clone()),
    )
    .unwrap();
    c
}

/// Raw SQL adding a note titled `x` for `org` (through the scoped view).
fn note(org: OrgId) -> String {
    format!(
        "INSERT INTO notes (org_id, id, title, body, created_at, updated_at) VALUES ('{org}', '{}', 'x', '', 0, 0)",
        uuid::Uuid::now_v7()
    )
}

fn count(c: &rusqlite::Connection, sql: &str) -> i64 {
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// The user ids of the members projection in `org`'s own file.
fn projected(t: &TestDb, org: OrgId) -> Vec<String> {
    let c = rusqlite::Connection::open(file_of(t, org)).unwrap();
    let mut st = c
        .prepare("SELECT user_id FROM memberships_rows ORDER BY user_id")
        .unwrap();
    let rows = st.query_map([], |r| r.get(0)).unwrap();
    rows.collect::<rusqlite::Result<_>>().unwrap()
}

/// A new org made by `owner` (created the way the API creates one).
async fn new_org(db: &Db, owner: UserId, slug: &str) -> (OrgId, orgwall_store::access::OrgScope) {
    let (org, scope) = orgwall_store::access::create_org(
        db,
        owner,
        slug,
        &orgwall_core::Slug::parse(slug).unwrap(),
    )
    .await
    .unwrap();
    (org.id, scope)
}

fn msg(e: Error) -> String {
    e.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_placed_org_lives_in_its_file_behind_every_wall() {
    let (t, d) = placed().await;
    let db = &t.db;
    let file = file_of(&t, d.globex);
    assert!(file.exists(), "{}", file.display());
    // Where the rows really are (as the owner, past every wall).
    let (g, a) = (d.globex.to_string(), d.acme.to_string());
    let c = control(&t);
    let f = rusqlite::Connection::open(&file).unwrap();
    for table in db.catalog().data_tables() {
        let base = format!("{table}_rows");
        assert_eq!(
            count(
                &c,
                &format!("SELECT count(*) FROM {base} WHERE org_id = '{g}'")
            ),
            0,
            "Globex's {table} in the control file"
        );
        assert_eq!(
            count(
                &f,
                &format!("SELECT count(*) FROM {base} WHERE org_id <> '{g}'")
            ),
            0,
            "another org's {table} in Globex's file"
        );
    }
    assert_eq!(count(&f, "SELECT count(*) FROM tickets_rows"), 6);
    assert!(
        count(
            &c,
            &format!("SELECT count(*) FROM tickets_rows WHERE org_id = '{a}'")
        ) > 0
    );
    // The control plane stays in the control file: its tables are not in Globex's file.
    for table in [
        "roles_rows",
        "api_keys_rows",
        "audit_events_rows",
        "jobs_rows",
        "sessions",
    ] {
        assert_eq!(
            count(
                &f,
                &format!("SELECT count(*) FROM sqlite_master WHERE name = '{table}'")
            ),
            0,
            "{table} in an org's file"
        );
    }
    let ids: Vec<String> = f
        .prepare("SELECT id FROM orgs")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(ids, vec![g.clone()], "acme {a}");

    // Bob reads and writes Globex through the API's own path: its file.
    let bob = d.bob_in_globex(db).await;
    let mut tx = db.read(&bob).await.unwrap();
    let n: i64 = tx
        .data()
        .query_one("SELECT count(*) FROM tickets", &[])
        .await
        .unwrap()
        .get(0)
        .unwrap();
    assert_eq!(n, 6);
    // Control-plane tables answer on the control transaction.
    let n: i64 = tx
        .query_one("SELECT count(*) FROM memberships", &[])
        .await
        .unwrap()
        .get(0)
        .unwrap();
    assert!(n >= 2);
    drop(tx);

    // Raw SQL in Globex's file, through the server's own connection: the same wall.
    let mut tx = db.write(&bob).await.unwrap();
    for sql in [
        "SELECT count(*) FROM tickets_rows".to_owned(),
        "DELETE FROM notes_rows".to_owned(),
        note(d.acme),
        // The members projection is the owner's: no statement of the server's writes it.
        format!("INSERT INTO users (id) VALUES ('{}')", d.alice),
        format!(
            "INSERT INTO memberships (org_id, user_id) VALUES ('{g}', '{}')",
            d.alice
        ),
        "DELETE FROM memberships".to_owned(),
        format!("DELETE FROM memberships_rows WHERE org_id = '{g}'"),
        "DELETE FROM orgs".to_owned(),
        "UPDATE orgs SET id = id".to_owned(),
        "DROP TRIGGER orgwall_guard_tickets_rows_ins".to_owned(),
        "PRAGMA foreign_keys = OFF".to_owned(),
        format!("ATTACH '{}' AS control", t.url),
    ] {
        let err = tx.data().execute(&sql, &[]).await.unwrap_err();
        assert!(matches!(err, Error::ScopeViolation), "{sql}: {err:?}");
    }
    // A ticket assigned to someone who is not a member of Globex: refused by the foreign
    // key to the members projection, inside Globex's file.
    let err = tx
        .data()
        .execute("UPDATE tickets SET assignee_id = $1", params![d.alice])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Validation(_)), "{err:?}");
    // Its own rows it may change.
    let n = tx.data().execute(&note(d.globex), &[]).await.unwrap();
    assert!(n >= 1, "{n}");
    drop(tx);

    // Acme's scope, on Acme's placement (the control file), sees none of Globex's rows:
    // they are not there.
    let alice = d.alice_in_acme(db).await;
    let mut tx = db.read(&alice).await.unwrap();
    let rows = tx
        .data()
        .query("SELECT DISTINCT org_id FROM tickets", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<uuid::Uuid>(0).unwrap(), d.acme.uuid());
    drop(tx);
    assert_eq!(db.doctor().await.unwrap(), vec![], "doctor");
    // The listing names the file and its version.
    let e = placement::show(db, d.globex).await.unwrap();
    assert_eq!(e.kind, "database");
    assert_eq!(
        e.location.as_deref(),
        Some(database_name(d.globex).as_str())
    );
    let size = std::fs::metadata(&file).unwrap().len();
    assert!(
        e.size_bytes.unwrap() >= i64::try_from(size).unwrap(),
        "{e:?}"
    );
    assert_eq!(placement::show(db, d.acme).await.unwrap().size_bytes, None);
    assert!(e
        .versions
        .unwrap()
        .iter()
        .any(|(m, v)| m == "orgwall" && *v > 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placing_on_sqlite_refuses_what_it_cannot_do_and_keeps_the_projection() {
    let (t, d) = placed().await;
    let db = &t.db;
    // Orgs with data stay where they are, whichever way.
    for (org, kind) in [(d.globex, Kind::Shared), (d.acme, Kind::Database(None))] {
        let err = placement::set(db, org, kind).await.unwrap_err();
        assert!(
            matches!(&err, Error::Conflict("placement_not_empty", m) if m.contains("tickets")),
            "{err:?}"
        );
    }
    assert!(!file_of(&t, d.acme).exists());
    assert_eq!(placement::show(db, d.acme).await.unwrap().kind, "shared");
    assert_eq!(
        placement::show(db, d.globex).await.unwrap().kind,
        "database"
    );

    // An empty org: what SQLite does not serve is refused with one clear line.
    let (org, owner) = new_org(db, d.carol, "initech").await;
    for (kind, says) in [
        (Kind::Schema, "PostgreSQL"),
        (Kind::Database(Some("eu-1".into())), "no target named eu-1"),
    ] {
        let e = msg(placement::set(db, org, kind).await.unwrap_err());
        assert!(e.contains(says), "{e}");
    }
    // Into a file of its own and back, while empty: the file comes and goes.
    assert_eq!(
        placement::set(db, org, Kind::Database(None)).await.unwrap(),
        Route::Database {
            name: database_name(org).into(),
            target: None
        }
    );
    assert!(file_of(&t, org).exists());
    assert_eq!(projected(&t, org), vec![d.carol.to_string()]);
    // The creator's scope still works (its route is read again).
    let mut tx = db.write(&owner).await.unwrap();
    orgwall_store::repo::memberships::add(&mut tx, d.alice, "member")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut both = vec![d.alice.to_string(), d.carol.to_string()];
    both.sort();
    assert_eq!(projected(&t, org), both, "a new member is projected");
    let mut tx = db.write(&owner).await.unwrap();
    orgwall_store::repo::memberships::remove(&mut tx, d.alice)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        projected(&t, org),
        vec![d.carol.to_string()],
        "a removed one is not"
    );
    assert_eq!(db.doctor().await.unwrap(), vec![]);

    placement::set(db, org, Kind::Shared).await.unwrap();
    assert!(
        !file_of(&t, org).exists(),
        "the file went with the placement"
    );
    // A file already in the way: refused, nothing changed.
    std::fs::write(file_of(&t, org), b"not mine").unwrap();
    let err = placement::set(db, org, Kind::Database(None))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Conflict("placement_exists", _)),
        "{err:?}"
    );
    assert_eq!(placement::show(db, org).await.unwrap().kind, "shared");
    assert_eq!(std::fs::read(file_of(&t, org)).unwrap(), b"not mine");
    std::fs::remove_file(file_of(&t, org)).unwrap();
    // Rules may now say database on SQLite (not schema, not a target).
    placement::set_rule(db, Some("enterprise"), Kind::Database(None))
        .await
        .unwrap();
    let (rich, _) = new_org(db, d.carol, "umbrella").await;
    assert_eq!(
        orgwall_store::quota::set_plan(db, rich, "enterprise")
            .await
            .unwrap(),
        placement::Followed::Placed(Route::Database {
            name: database_name(rich).into(),
            target: None
        })
    );
    assert!(file_of(&t, rich).exists());
    assert_eq!(db.doctor().await.unwrap(), vec![]);
}

// Reaches every org file, and fails only in an org file that already has the table.
static LATER: Module = Module {
    name: "later",
    sqlite: &[Migration {
        version: 1,
        name: "widgets",
        sql: "CREATE TABLE widgets_rows (
                  org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
                  id TEXT NOT NULL,
                  PRIMARY KEY (org_id, id));",
        plane: Plane::Data,
    }],
    tenant_tables: &["widgets"],
    ..Module::EMPTY
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doctor_and_migrate_reach_every_org_file() {
    let (t, d) = placed().await;
    let db = &t.db;
    let (org, _) = new_org(db, d.carol, "initech").await;
    placement::set(db, org, Kind::Database(None)).await.unwrap();
    assert_eq!(db.doctor().await.unwrap(), vec![]);
    let g = d.globex.to_string();
    let name = database_name(d.globex);
    let found = |v: &[orgwall_store::doctor::Violation], object: &str, says: &str| {
        v.iter()
            .any(|x| x.object.contains(object) && x.problem.contains(says))
    };

    // A guard trigger dropped in Globex's file; an extra member projected there; a note of
    // Globex's in the shared tables too; a file no org is placed in.
    let gf = owner_as(file_of(&t, d.globex), d.globex);
    gf.execute_batch(&format!(
        "DROP TRIGGER orgwall_guard_notes_rows_ins;
         INSERT INTO users (id) VALUES ('{a}');
         INSERT INTO memberships_rows (org_id, user_id) VALUES ('{g}', '{a}');",
        a = d.alice
    ))
    .unwrap();
    drop(gf);
    let c = owner_as(&t.url, d.globex);
    c.execute(
        "INSERT INTO notes_rows (org_id, id, title, body, created_at, updated_at) VALUES (?1, ?2, 'stray', '', 0, 0)",
        [g.clone(), uuid::Uuid::now_v7().to_string()],
    )
    .unwrap();
    let orphan = file_of(&t, OrgId::new());
    std::fs::copy(file_of(&t, org), &orphan).unwrap();
    let v = db.doctor().await.unwrap();
    assert!(
        found(&v, &format!("{name}.notes_rows"), "missing guard trigger"),
        "{v:#?}"
    );
    assert!(
        found(&v, &format!("{name}.memberships"), "out of step"),
        "{v:#?}"
    );
    assert!(
        found(&v, &format!("org {g}"), "shared tables too"),
        "{v:#?}"
    );
    assert!(
        found(&v, &orphan.file_name().unwrap().to_string_lossy(), "orphan"),
        "{v:#?}"
    );
    assert_eq!(v.len(), 4, "{v:#?}");
    // Put right: migrate regenerates the guard; the rest by hand.
    db.migrate().await.unwrap();
    std::fs::remove_file(&orphan).unwrap();
    c.execute("DELETE FROM notes_rows WHERE title = 'stray'", [])
        .unwrap();
    let gf = owner_as(file_of(&t, d.globex), d.globex);
    gf.execute_batch(&format!(
        "DELETE FROM memberships_rows WHERE user_id = '{}'",
        d.alice
    ))
    .unwrap();
    drop(gf);
    assert_eq!(db.doctor().await.unwrap(), vec![]);

    // A file gone missing is named.
    let away = file_of(&t, org).with_extension("away");
    std::fs::rename(file_of(&t, org), &away).unwrap();
    let v = db.doctor().await.unwrap();
    assert!(found(&v, &format!("org {org}"), "does not exist"), "{v:#?}");
    std::fs::rename(&away, file_of(&t, org)).unwrap();

    // A new data-plane migration reaches every file; a failure in one names it and leaves
    // each file at the old or the new version, whole; a re-run finishes the job.
    let mut files = vec![database_name(d.globex), database_name(org)];
    files.sort();
    let blocked = &files[0];
    let path = |n: &str| {
        PathBuf::from(&t.url)
            .parent()
            .unwrap()
            .join("orgs")
            .join(format!("{n}.db"))
    };
    let bf = rusqlite::Connection::open(path(blocked)).unwrap();
    bf.execute_batch("CREATE TABLE widgets_rows (x INTEGER)")
        .unwrap();
    drop(bf);
    let later = Db::open(
        &DbConfig::Sqlite {
            path: PathBuf::from(&t.url),
            pool_size: 2,
        },
        orgwall_store::catalog().with(&LATER),
    )
    .await
    .unwrap();
    let err = later.migrate().await.unwrap_err().to_string();
    assert!(
        err.contains(blocked.as_str()),
        "the failure names the file: {err}"
    );
    let version = |n: &str| {
        count(
            &rusqlite::Connection::open(path(n)).unwrap(),
            "SELECT count(*) FROM schema_migrations WHERE module = 'later'",
        )
    };
    assert_eq!(
        count(
            &control(&t),
            "SELECT count(*) FROM schema_migrations WHERE module = 'later'"
        ),
        1
    );
    assert_eq!(version(blocked), 0);
    let bf = rusqlite::Connection::open(path(blocked)).unwrap();
    bf.execute_batch("DROP TABLE widgets_rows").unwrap();
    drop(bf);
    let seen = std::sync::Mutex::new(Vec::new());
    let r = later
        .migrate_with(&|done, total| seen.lock().unwrap().push((done, total)))
        .await
        .unwrap();
    assert_eq!(r.placements, 2);
    assert_eq!(seen.into_inner().unwrap(), vec![(0, 2), (1, 2), (2, 2)]);
    for f in &files {
        assert_eq!(version(f), 1, "{f}");
        let c = rusqlite::Connection::open(path(f)).unwrap();
        assert_eq!(
            count(&c, "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name = 'orgwall_guard_widgets_rows_ins'"),
            1,
            "{f}: the new table has its wall"
        );
    }
    assert_eq!(later.doctor().await.unwrap(), vec![]);
}

// A scope that learned its org's route before the org was placed in a file of its own
// (another instance, the CLI) must not write into the shared tables: the write
// transaction checks the directory under the control file's write lock, answers "send it
// again", and the scope's next transaction goes to the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_with_a_route_learned_before_placing_lands_nowhere() {
    let (t, d) = placed().await;
    let db = &t.db;
    let (org, owner) = new_org(db, d.carol, "initech").await;
    drop(db.read(&owner).await.unwrap()); // the scope now knows: shared
    placement::set(db, org, Kind::Database(None)).await.unwrap();
    // The write finds its route stale against the directory and is begun again on the
    // new one (before moves it was refused with 503 "send it again").
    let mut tx = db.write(&owner).await.unwrap();
    orgwall_store::repo::projects::create(&mut tx, "NEW", "New", "")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let o = org.to_string();
    assert_eq!(
        count(
            &control(&t),
            &format!("SELECT count(*) FROM projects_rows WHERE org_id = '{o}'")
        ),
        0
    );
    let f = rusqlite::Connection::open(file_of(&t, org)).unwrap();
    assert_eq!(count(&f, "SELECT count(*) FROM projects_rows"), 1);
    assert_eq!(db.doctor().await.unwrap(), vec![]);
}

// Review of the first version (each of these failed before its fix).

// The directory and the migrations' record are the owner's: raw SQL through the server's
// own connections (any scope, either file) writes neither. Before: Acme's scope could
// re-route Globex, point itself at Globex's file and read its members, and delete an
// org file's migration record (breaking `orgwall migrate` for every later file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_and_the_migration_record_are_out_of_reach() {
    let (t, d) = placed().await;
    let db = &t.db;
    let (g, a) = (d.globex, d.acme);
    let alice = d.alice_in_acme(db).await;
    let bob = d.bob_in_globex(db).await;
    for sql in [
        format!("UPDATE placements SET kind = 'shared', location = NULL WHERE org_id = '{g}'"),
        format!(
            "UPDATE placements SET kind = 'database', location = '{}' WHERE org_id = '{a}'",
            database_name(g)
        ),
        format!("DELETE FROM placements WHERE org_id = '{g}'"),
        format!("INSERT INTO placements (org_id, kind, created_at, updated_at) VALUES ('{g}', 'shared', 0, 0)"),
        "DELETE FROM schema_migrations".to_owned(),
        "UPDATE schema_migrations SET checksum = 'x'".to_owned(),
    ] {
        // (An entry is added only with its org: a second one for an org is refused by its key.)
        let mut tx = db.write(&alice).await.unwrap();
        let err = tx.execute(&sql, &[]).await.unwrap_err();
        assert!(
            matches!(err, Error::ScopeViolation | Error::Conflict(..)),
            "{sql}: {err:?}"
        );
        drop(tx);
        let mut tx = db.write(&bob).await.unwrap();
        let err = tx.data().execute(&sql, &[]).await.unwrap_err();
        assert!(matches!(err, Error::ScopeViolation | Error::Internal(_)), "globex file: {sql}: {err:?}");
    }
    assert_eq!(placement::show(db, g).await.unwrap().kind, "database");
    assert_eq!(placement::show(db, a).await.unwrap().kind, "shared");
    assert_eq!(db.doctor().await.unwrap(), vec![]);
}

// A read transaction cannot write, on either file (as PostgreSQL's READ ONLY). Before: a
// read with a route learned before its org was placed wrote into the shared tables,
// past the directory check that guards writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_transaction_writes_nothing() {
    let (t, d) = placed().await;
    let db = &t.db;
    let alice = d.alice_in_acme(db).await;
    let mut tx = db.read(&alice).await.unwrap();
    assert!(tx.data().execute(&note(d.acme), &[]).await.is_err());
    drop(tx);
    let bob = d.bob_in_globex(db).await;
    let mut tx = db.read(&bob).await.unwrap();
    assert!(tx.data().execute(&note(d.globex), &[]).await.is_err());
    drop(tx);
    // The same connections write again in write transactions.
    for (scope, org) in [(&alice, d.acme), (&bob, d.globex)] {
        let mut tx = db.write(scope).await.unwrap();
        tx.data().execute(&note(org), &[]).await.unwrap();
        tx.commit().await.unwrap();
    }
    let (t2, d2) = (&t, &d);
    let n = t2
        .owner_count(
            "notes",
            &format!("title = 'x' AND org_id IN ('{}', '{}')", d2.acme, d2.globex),
        )
        .await;
    assert_eq!(n, 2);
}

// Another process (the CLI) places an org back in the shared tables and then in a file
// again: a pooled connection of the server, still open on the first file (removed), must
// not take the server's next write there. Before: the write was acknowledged, read back on
// that connection, and lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_made_again_is_not_written_through_a_connection_to_the_old_one() {
    let (t, d) = placed().await;
    let db = &t.db;
    let (org, owner) = new_org(db, d.carol, "initech").await;
    placement::set(db, org, Kind::Database(None)).await.unwrap();
    drop(db.read(&owner).await.unwrap()); // a connection to the file, now idle in the pool
    let cli = Db::open(
        &DbConfig::Sqlite {
            path: PathBuf::from(&t.url),
            pool_size: 2,
        },
        orgwall_store::catalog(),
    )
    .await
    .unwrap();
    placement::set(&cli, org, Kind::Shared).await.unwrap();
    placement::set(&cli, org, Kind::Database(None))
        .await
        .unwrap();
    let mut tx = db.write(&owner).await.unwrap();
    orgwall_store::repo::projects::create(&mut tx, "NEW", "New", "")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let f = rusqlite::Connection::open(file_of(&t, org)).unwrap();
    assert_eq!(
        count(&f, "SELECT count(*) FROM projects_rows"),
        1,
        "the write is in the file the directory names"
    );
}

// Accepting an invitation projects the new member into the org's own file. Before: the
// projection's statement used PostgreSQL's FOR KEY SHARE, failed on SQLite, and the
// invitee could not be assigned a ticket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_invitation_is_projected_into_the_orgs_file() {
    let (t, d) = placed().await;
    let db = &t.db;
    let bob = d.bob_in_globex(db).await;
    let mut tx = db.write(&bob).await.unwrap();
    let (_, token) = orgwall_store::repo::invitations::create(
        &mut tx,
        &orgwall_core::Email::parse("alice@acme.test").unwrap(),
        "member",
        |t| t.to_owned(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    orgwall_store::access::accept_invitation(db, d.alice, &token)
        .await
        .unwrap();
    assert!(projected(&t, d.globex).contains(&d.alice.to_string()));
    let mut tx = db.write(&bob).await.unwrap();
    tx.data()
        .execute("UPDATE tickets SET assignee_id = $1", params![d.alice])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(db.doctor().await.unwrap(), vec![]);
}

// The doctor reads what the walls cannot stop once foreign keys are off (a restore, the
// sqlite3 shell): another org's row in an org's file, a foreign key pointing at nothing,
// a file a placement left half-made; and an org whose file went missing is placed anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doctor_reads_an_org_file_written_around_the_walls() {
    let (t, d) = placed().await;
    let db = &t.db;
    let gf = owner_as(file_of(&t, d.globex), d.globex);
    gf.execute_batch(&format!(
        "PRAGMA foreign_keys = OFF; UPDATE tickets_rows SET assignee_id = '{}';",
        d.alice
    ))
    .unwrap();
    drop(gf);
    let af = owner_as(file_of(&t, d.globex), d.acme);
    af.execute_batch(&format!(
        "PRAGMA foreign_keys = OFF;
         INSERT INTO notes_rows (org_id, id, title, body, created_at, updated_at) VALUES ('{}', '{}', 'stray', '', 0, 0);",
        d.acme,
        uuid::Uuid::now_v7()
    ))
    .unwrap();
    drop(af);
    let half = file_of(&t, OrgId::new()).with_extension("db.making");
    std::fs::write(&half, b"").unwrap();
    let v = db.doctor().await.unwrap();
    let found = |object: &str, says: &str| {
        v.iter()
            .any(|x| x.object.contains(object) && x.problem.contains(says))
    };
    assert!(found("notes_rows", "another org"), "{v:#?}");
    assert!(found("tickets_rows", "points at nothing"), "{v:#?}");
    assert!(found(".db.making", "half-made"), "{v:#?}");

    // A file gone missing: the org can be placed again (anew), or back in the shared tables.
    let (org, _) = new_org(db, d.carol, "initech").await;
    placement::set(db, org, Kind::Database(None)).await.unwrap();
    std::fs::remove_file(file_of(&t, org)).unwrap();
    placement::set(db, org, Kind::Database(None)).await.unwrap();
    assert!(file_of(&t, org).exists(), "made anew");
    std::fs::remove_file(file_of(&t, org)).unwrap();
    placement::set(db, org, Kind::Shared).await.unwrap();
    assert_eq!(placement::show(db, org).await.unwrap().kind, "shared");
}
