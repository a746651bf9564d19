//! Per-tenant placement on PostgreSQL: an org's data plane in a schema of its own, with
//! every wall standing (raw SQL through the server's role), the directory, the doctor,
//! migrations over placements and the clean deletion of a placement.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use orgwall_core::Error;
use orgwall_store::migrate::Migration;
use orgwall_store::placement::{self, schema_name, Kind, Route};
use orgwall_store::{params, BackendKind, Db, DbConfig, Module, Plane};
use orgwall_testkit::{Demo, TestDb};

/// The demo world with Globex in a schema of its own and Acme shared.
async fn placed() -> (TestDb, Demo, String) {
    let t = TestDb::new(BackendKind::Postgres).await;
    orgwall_store::seed::demo_placed(&t.db, &[("globex", Kind::Schema)])
        .await
        .unwrap();
    let d = Demo::load(&t.db).await;
    let schema = schema_name(d.globex);
    (t, d, schema)
}

async fn count(tx: &mut orgwall_store::TenantTx<'_>, sql: &str) -> i64 {
    tx.query_one(sql, &[]).await.unwrap().get(0).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_placed_org_lives_in_its_schema_behind_every_wall() {
    let (t, d, schema) = placed().await;
    let db = &t.db;
    // Where the rows really are (as the owner, past every wall; `public.` names the
    // shared table alone, a bare name would count every placement).
    let g = d.globex.uuid();
    assert_eq!(
        t.owner_count("public.tickets", &format!("org_id = '{g}'"))
            .await,
        0,
        "Globex's tickets must not be in the shared table"
    );
    assert_eq!(t.owner_count(&format!("{schema}.tickets"), "true").await, 6);
    assert!(
        t.owner_count("tickets", &format!("org_id = '{}'", d.acme.uuid()))
            .await
            > 0
    );
    for table in db.catalog().data_tables() {
        assert_eq!(
            t.owner_count(&format!("{schema}.{table}"), &format!("org_id <> '{g}'"))
                .await,
            0,
            "{schema}.{table} holds another org's row"
        );
    }

    // Bob reads and writes Globex through the API's own path: the schema.
    let bob = d.bob_in_globex(db).await;
    let mut tx = db.read(&bob).await.unwrap();
    assert_eq!(count(&mut tx, "SELECT count(*) FROM tickets").await, 6);
    // Control-plane tables still resolve (memberships, roles: the control schema).
    assert!(count(&mut tx, "SELECT count(*) FROM memberships").await >= 2);
    tx.commit().await.unwrap();

    // Raw SQL in Acme's scope, on Acme's placement, sees and changes nothing of Globex,
    // wherever it names it.
    let alice = d.alice_in_acme(db).await;
    let mut tx = db.write(&alice).await.unwrap();
    let acme_tickets = count(&mut tx, "SELECT count(*) FROM tickets").await;
    assert!(acme_tickets > 0);
    for table in db.catalog().data_tables() {
        let n = count(&mut tx, &format!("SELECT count(*) FROM {schema}.{table}")).await;
        assert_eq!(n, 0, "Acme's scope read {schema}.{table}");
        let n = tx
            .execute(&format!("DELETE FROM {schema}.{table}"), &[])
            .await
            .unwrap();
        assert_eq!(n, 0, "Acme's scope deleted from {schema}.{table}");
    }
    // Routed to the wrong schema on purpose: row-level security still shows nothing.
    tx.execute(
        &format!("SELECT set_config('search_path', '{schema}, public', true)"),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(count(&mut tx, "SELECT count(*) FROM tickets").await, 0);
    // A row claiming Globex, written through the wrong path, is refused by the policy.
    let err = tx
        .execute(
            "INSERT INTO notes (org_id, id, title, body, created_at, updated_at)
             VALUES ($1, $2, 'x', '', now(), now())",
            params![d.globex, uuid::Uuid::now_v7()],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ScopeViolation | Error::Internal(_) | Error::Conflict(..)
        ),
        "{err:?}"
    );
    drop(tx);

    // Globex's scope cannot reach Acme's shared rows either.
    let mut tx = db.write(&bob).await.unwrap();
    let n = count(&mut tx, "SELECT count(*) FROM public.tickets").await;
    assert_eq!(n, 0, "Globex's scope read the shared tickets");
    drop(tx);
    assert_eq!(db.doctor().await.unwrap(), vec![], "doctor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placing_refuses_what_it_cannot_do_and_changes_nothing() {
    let (t, d, schema) = placed().await;
    let db = &t.db;
    // An org with data: refused, still shared.
    let err = placement::set(db, d.acme, Kind::Schema).await.unwrap_err();
    assert!(
        matches!(&err, Error::Conflict("placement_not_empty", m) if m.contains("tickets")),
        "{err:?}"
    );
    assert_eq!(placement::show(db, d.acme).await.unwrap().kind, "shared");
    assert_eq!(
        t.owner_count(
            "pg_namespace",
            &format!("nspname = '{}'", schema_name(d.acme))
        )
        .await,
        0
    );
    // Globex has data in its schema: back to shared is refused too.
    let err = placement::set(db, d.globex, Kind::Shared)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Conflict("placement_not_empty", _)),
        "{err:?}"
    );
    let e = placement::show(db, d.globex).await.unwrap();
    assert_eq!(
        (e.kind.as_str(), e.location.as_deref()),
        ("schema", Some(schema.as_str()))
    );
    // Unknown placements and not-yet-served ones: a clear line.
    for (input, says) in [
        ("database", "not available yet"),
        ("moon", "unknown placement"),
    ] {
        let e = input.parse::<Kind>().unwrap_err().to_string();
        assert!(e.contains(says), "{input}: {e}");
    }
    // A new, empty org: placed in a schema, then back to shared (the schema is dropped).
    let owner = d.carol;
    let slug = orgwall_core::Slug::parse("initech").unwrap();
    let (org, _) = orgwall_store::access::create_org(db, owner, "Initech", &slug)
        .await
        .unwrap();
    // A schema already there under its name (left behind by hand): refused, nothing changed.
    let s = schema_name(org.id);
    t.owner_exec(&format!("CREATE SCHEMA {s}")).await;
    let err = placement::set(db, org.id, Kind::Schema).await.unwrap_err();
    assert!(
        matches!(&err, Error::Conflict("placement_exists", _)),
        "{err:?}"
    );
    assert_eq!(placement::show(db, org.id).await.unwrap().kind, "shared");
    t.owner_exec(&format!("DROP SCHEMA {s}")).await;
    assert_eq!(
        placement::set(db, org.id, Kind::Schema).await.unwrap(),
        Route::Schema(s.clone().into())
    );
    let e = placement::show(db, org.id).await.unwrap();
    assert!(
        e.versions
            .as_ref()
            .is_some_and(|v| v.iter().any(|(m, n)| m == "orgwall" && *n > 0)),
        "{e:?}"
    );
    assert_eq!(
        placement::set(db, org.id, Kind::Shared).await.unwrap(),
        Route::Shared
    );
    assert_eq!(
        t.owner_count("pg_namespace", &format!("nspname = '{s}'"))
            .await,
        0
    );
    assert_eq!(db.doctor().await.unwrap(), vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doctor_names_each_placement_fault() {
    let (t, d, schema) = placed().await;
    let db = &t.db;
    assert_eq!(db.doctor().await.unwrap(), vec![]);
    let found = |v: &[orgwall_store::doctor::Violation], object: &str, says: &str| {
        v.iter()
            .any(|x| x.object == object && x.problem.contains(says))
    };

    // A placement table whose row-level security is not forced.
    t.owner_exec(&format!(
        "ALTER TABLE {schema}.notes NO FORCE ROW LEVEL SECURITY"
    ))
    .await;
    let v = db.doctor().await.unwrap();
    assert!(found(&v, &format!("{schema}.notes"), "not forced"), "{v:?}");
    t.owner_exec(&format!(
        "ALTER TABLE {schema}.notes FORCE ROW LEVEL SECURITY"
    ))
    .await;

    // An org without a directory entry.
    t.owner_exec(&format!(
        "DELETE FROM placements WHERE org_id = '{}'",
        d.acme.uuid()
    ))
    .await;
    let v = db.doctor().await.unwrap();
    assert!(
        found(&v, &format!("org {}", d.acme.uuid()), "no placement entry"),
        "{v:?}"
    );
    t.owner_exec(&format!(
        "INSERT INTO placements (org_id, kind, created_at, updated_at) VALUES ('{}', 'shared', now(), now())",
        d.acme.uuid()
    ))
    .await;

    // An orphan schema.
    let orphan = schema_name(orgwall_core::OrgId::new());
    t.owner_exec(&format!("CREATE SCHEMA {orphan}")).await;
    let v = db.doctor().await.unwrap();
    assert!(found(&v, &orphan, "orphan"), "{v:?}");
    t.owner_exec(&format!("DROP SCHEMA {orphan}")).await;

    // An org with rows in two placements.
    t.owner_exec(&format!(
        "INSERT INTO public.notes (org_id, id, title, body, created_at, updated_at)
         VALUES ('{}', '{}', 'stray', '', now(), now())",
        d.globex.uuid(),
        uuid::Uuid::now_v7()
    ))
    .await;
    let v = db.doctor().await.unwrap();
    assert!(
        found(
            &v,
            &format!("org {}", d.globex.uuid()),
            "shared tables too: notes"
        ),
        "{v:?}"
    );
    t.owner_exec(&format!(
        "DELETE FROM public.notes WHERE org_id = '{}'",
        d.globex.uuid()
    ))
    .await;

    // A placement missing a data-plane table.
    t.owner_exec(&format!("DROP TABLE {schema}.files")).await;
    let v = db.doctor().await.unwrap();
    assert!(
        found(
            &v,
            &format!("{schema}.files"),
            "missing from this placement"
        ),
        "{v:?}"
    );
}

/// A later data-plane migration, for the resumable-migration test.
static LATER: Module = Module {
    name: "later",
    postgres: &[Migration {
        version: 1,
        name: "widgets",
        sql: "CREATE TABLE widgets (
                  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
                  id uuid NOT NULL,
                  PRIMARY KEY (org_id, id));",
        plane: Plane::Data,
    }],
    tenant_tables: &["widgets"],
    ..Module::EMPTY
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_reach_every_placement_and_a_failed_one_resumes() {
    let (t, d, globex_schema) = placed().await;
    // Two more placements: three in all.
    let mut schemas = vec![globex_schema];
    for slug in ["initech", "umbrella"] {
        let (org, _) = orgwall_store::access::create_org(
            &t.db,
            d.carol,
            slug,
            &orgwall_core::Slug::parse(slug).unwrap(),
        )
        .await
        .unwrap();
        placement::set(&t.db, org.id, Kind::Schema).await.unwrap();
        schemas.push(schema_name(org.id));
    }
    schemas.sort();
    // A table in the way in the second placement: its migration fails there.
    let blocked = &schemas[1];
    t.owner_exec(&format!("CREATE TABLE {blocked}.widgets (x int)"))
        .await;

    let later = Db::open(
        &DbConfig::Postgres {
            url: t.url.clone(),
            app_role: orgwall_store::db::DEFAULT_APP_ROLE.into(),
            pool_size: 2,
        },
        orgwall_store::catalog().with(&LATER),
    )
    .await
    .unwrap();
    let err = later.migrate().await.unwrap_err().to_string();
    assert!(
        err.contains(blocked.as_str()),
        "the failure names the placement: {err}"
    );
    let has = |s: &str| {
        let t = &t;
        let s = s.to_owned();
        async move {
            t.owner_count(&format!("{s}.schema_migrations"), "module = 'later'")
                .await
        }
    };
    // The control schema and the placement before it are at the new version, the failed
    // one and the one after it at the old one.
    assert_eq!(
        t.owner_count("schema_migrations", "module = 'later'").await,
        1
    );
    assert_eq!(has(&schemas[0]).await, 1);
    assert_eq!(has(&schemas[1]).await, 0);
    assert_eq!(has(&schemas[2]).await, 0);

    // Out of the way, a re-run finishes the job.
    t.owner_exec(&format!("DROP TABLE {blocked}.widgets")).await;
    let r = later.migrate().await.unwrap();
    assert_eq!(r.placements, 3);
    for s in &schemas {
        assert_eq!(has(s).await, 1, "{s}");
        assert_eq!(
            t.owner_count(
                "pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace",
                &format!("n.nspname = '{s}' AND c.relname = 'widgets' AND c.relforcerowsecurity"),
            )
            .await,
            1,
            "{s}.widgets has forced RLS"
        );
    }
    assert_eq!(later.doctor().await.unwrap(), vec![]);
}

/// Target servers (issue 12): checked before anything is stored, private to the owner
/// (the server's role cannot read their credentials; the doctor checks), never shown with
/// their password, and not removable while a placement names one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_are_checked_private_and_never_show_their_password() {
    let t = TestDb::new(BackendKind::Postgres).await;
    let db = &t.db;
    let app = orgwall_store::db::DEFAULT_APP_ROLE;
    let msg = |e: Error| e.to_string();

    // Bad input: one clear error each, nothing stored.
    let e = placement::add_target(db, "EU", &t.url).await.unwrap_err();
    assert!(matches!(e, Error::Validation(_)), "{e}");
    let e = msg(placement::add_target(db, "eu-1", "not a url at all")
        .await
        .unwrap_err());
    assert!(e.contains("not a PostgreSQL connection URL"), "{e}");
    let e = msg(
        placement::add_target(db, "eu-1", "postgres://127.0.0.1:5432")
            .await
            .unwrap_err(),
    );
    assert!(e.contains("must name a host, a user and a database"), "{e}");
    let e = msg(
        placement::add_target(db, "eu-1", "postgres://u:hunter2-secret@127.0.0.1:1/db")
            .await
            .unwrap_err(),
    );
    assert!(
        e.contains("eu-1") && e.contains("cannot connect to u@127.0.0.1:1/db"),
        "{e}"
    );
    assert!(!e.contains("hunter2"), "a password in an error: {e}");
    assert!(placement::targets(db).await.unwrap().is_empty());
    assert_eq!(t.owner_count("placement_targets", "true").await, 0);

    // A real server: this test's own, with a password in its URL (trust ignores it).
    let mut url = url::Url::parse(&t.url).unwrap();
    url.set_password(Some("s3cret-pw")).unwrap();
    let added = placement::add_target(db, "eu-1", url.as_str())
        .await
        .unwrap();
    assert!(!added.shown.contains("s3cret"), "{}", added.shown);
    assert!(added.shown.contains("@127.0.0.1:"), "{}", added.shown);
    let e = placement::add_target(db, "eu-1", url.as_str())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Conflict("target_exists", _)), "{e}");
    let listed = placement::targets(db).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "eu-1");
    assert!(!format!("{listed:?}").contains("s3cret"));

    // Private: the server's role reads nothing of it, even in a global transaction.
    let mut tx = db.global(orgwall_store::Mode::Read).await.unwrap();
    let e = tx
        .query("SELECT url FROM placement_targets", &[])
        .await
        .unwrap_err();
    assert!(!e.to_string().contains("s3cret"), "{e}");
    drop(tx);
    assert!(db.doctor().await.unwrap().is_empty());
    t.owner_exec(&format!("GRANT SELECT ON placement_targets TO {app}"))
        .await;
    let found = db.doctor().await.unwrap();
    assert!(
        found
            .iter()
            .any(|v| v.object == "placement_targets" && v.problem.contains("credentials")),
        "{found:?}"
    );
    db.migrate().await.unwrap();
    assert!(
        db.doctor().await.unwrap().is_empty(),
        "migrate revokes it again"
    );

    // A target a placement names is not removed.
    let d = Demo::load(db).await;
    let g = d.globex.uuid();
    t.owner_exec(&format!(
        "UPDATE placements SET target = 'eu-1' WHERE org_id = '{g}'"
    ))
    .await;
    let e = placement::remove_target(db, "eu-1").await.unwrap_err();
    assert!(matches!(e, Error::Refused("target_in_use", _)), "{e}");
    t.owner_exec(&format!(
        "UPDATE placements SET target = NULL WHERE org_id = '{g}'"
    ))
    .await;
    placement::remove_target(db, "eu-1").await.unwrap();
    assert!(matches!(
        placement::remove_target(db, "eu-1").await.unwrap_err(),
        Error::NotFound
    ));
    assert!(placement::targets(db).await.unwrap().is_empty());

    // SQLite serves no target server: refused, clearly.
    let s = TestDb::new(BackendKind::Sqlite).await;
    let e = msg(placement::add_target(&s.db, "eu-1", &t.url)
        .await
        .unwrap_err());
    assert!(e.contains("SQLite"), "{e}");
}
