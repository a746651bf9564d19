//! The doctor finds every deliberately broken table; migrations are all-or-nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use orgwall_store::BackendKind;
use orgwall_testkit::{both, TestDb};

fn problems_of(v: &[orgwall_store::doctor::Violation], object: &str) -> Vec<String> {
    v.iter()
        .filter(|x| x.object == object)
        .map(|x| x.problem.clone())
        .collect()
}

fn assert_flagged(v: &[orgwall_store::doctor::Violation], object: &str, needle: &str) {
    let p = problems_of(v, object);
    assert!(
        p.iter().any(|x| x.contains(needle)),
        "expected a violation on {object} containing {needle:?}; got {p:?} (all: {v:?})"
    );
}

both!(a_freshly_migrated_database_passes, |t: TestDb| async move {
    let v = t.db.doctor().await.unwrap();
    assert!(v.is_empty(), "{v:#?}");
    // Migrating again changes nothing and still passes.
    let r = t.db.migrate().await.unwrap();
    assert!(r.applied.is_empty());
    assert!(t.db.doctor().await.unwrap().is_empty());
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_doctor_catches_each_broken_table() {
    let t = TestDb::new(BackendKind::Postgres).await;
    t.owner_exec(
        "CREATE TABLE widgets (id uuid PRIMARY KEY, name text);
         CREATE TABLE gadgets (org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE, id uuid NOT NULL,
                               PRIMARY KEY (org_id, id));
         ALTER TABLE gadgets ENABLE ROW LEVEL SECURITY;
         CREATE POLICY org_isolation ON gadgets
             USING (org_id = (SELECT nullif(current_setting('app.org_id', true), '')::uuid))
             WITH CHECK (org_id = (SELECT nullif(current_setting('app.org_id', true), '')::uuid));
         CREATE TABLE bins (org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE, id uuid NOT NULL UNIQUE,
                            PRIMARY KEY (org_id, id));
         CREATE TABLE parts (org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE, id uuid NOT NULL,
                             bin_id uuid REFERENCES bins (id), PRIMARY KEY (org_id, id));
         CREATE TABLE owned (org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE, id uuid NOT NULL,
                             PRIMARY KEY (org_id, id));
         ALTER TABLE owned OWNER TO orgwall_app;
         CREATE TABLE loose (org_id uuid REFERENCES orgs (id), id uuid NOT NULL, PRIMARY KEY (id));
         CREATE VIEW peek AS SELECT * FROM notes;
         CREATE FUNCTION sneak() RETURNS bigint LANGUAGE sql SECURITY DEFINER AS 'SELECT count(*) FROM notes';",
    )
    .await;
    let v = t.db.doctor().await.unwrap();
    assert_flagged(&v, "widgets", "no org_id column");
    assert_flagged(&v, "widgets", "row-level security is not enabled");
    assert_flagged(&v, "gadgets", "not forced");
    assert_flagged(
        &v,
        "parts",
        "foreign key (bin_id) -> bins(id) is not composite",
    );
    assert_flagged(
        &v,
        "bins",
        "index bins_id_key (id) does not lead with org_id",
    );
    assert_flagged(&v, "owned", "owned by the server role");
    assert_flagged(&v, "loose", "org_id is nullable");
    assert_flagged(
        &v,
        "loose",
        "no foreign key org_id -> orgs(id) ON DELETE CASCADE",
    );
    assert_flagged(&v, "loose", "no primary or unique key leading with org_id");
    assert_flagged(&v, "peek", "security_invoker");
    assert_flagged(&v, "sneak", "SECURITY DEFINER");
    // Nothing of the real schema is flagged.
    for real in ["tickets", "notes", "memberships", "roles", "orgs", "users"] {
        assert!(
            problems_of(&v, real).is_empty(),
            "{real}: {:?}",
            problems_of(&v, real)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_doctor_catches_each_broken_table() {
    let t = TestDb::new(BackendKind::Sqlite).await;
    t.owner_exec(
        "CREATE TABLE widgets (id TEXT PRIMARY KEY, name TEXT);
         CREATE TABLE bins_rows (org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE, id TEXT NOT NULL UNIQUE,
                                 PRIMARY KEY (org_id, id));
         CREATE TABLE parts_rows (org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE, id TEXT NOT NULL,
                                  bin_id TEXT REFERENCES bins_rows (id), PRIMARY KEY (org_id, id));
         CREATE TABLE loose_rows (org_id TEXT REFERENCES orgs (id), id TEXT PRIMARY KEY);",
    )
    .await;
    let v = t.db.doctor().await.unwrap();
    assert_flagged(&v, "widgets", "no org_id column");
    assert_flagged(&v, "widgets", "not behind a scoped view");
    assert_flagged(
        &v,
        "parts_rows",
        "foreign key (bin_id) -> bins(id) is not composite",
    );
    assert_flagged(&v, "parts_rows", "no scoped view parts");
    assert_flagged(
        &v,
        "parts_rows",
        "missing guard trigger orgwall_guard_parts_rows_ins",
    );
    assert_flagged(&v, "bins_rows", "does not lead with org_id");
    assert_flagged(&v, "loose_rows", "org_id is nullable");
    assert_flagged(
        &v,
        "loose_rows",
        "no foreign key org_id -> orgs(id) ON DELETE CASCADE",
    );
    assert_flagged(
        &v,
        "loose_rows",
        "no primary or unique key leading with org_id",
    );
    for real in [
        "tickets_rows",
        "notes_rows",
        "memberships_rows",
        "orgs",
        "users",
    ] {
        assert!(
            problems_of(&v, real).is_empty(),
            "{real}: {:?}",
            problems_of(&v, real)
        );
    }

    // A correctly shaped new tenant table inherits the view and guards on the next migrate.
    let t2 = TestDb::new(BackendKind::Sqlite).await;
    t2.owner_exec(
        "CREATE TABLE widgets_rows (org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
                                    id TEXT NOT NULL, name TEXT NOT NULL DEFAULT 'w', PRIMARY KEY (org_id, id));",
    )
    .await;
    assert!(!t2.db.doctor().await.unwrap().is_empty());
    t2.db.migrate().await.unwrap();
    let v = t2.db.doctor().await.unwrap();
    assert_only_unregistered(&v, "widgets");
    let v = with_widgets(&t2).await.doctor().await.unwrap();
    assert!(v.is_empty(), "{v:?}");
}

static WIDGETS: orgwall_store::Module = orgwall_store::Module {
    name: "widgets",
    tenant_tables: &["widgets"],
    ..orgwall_store::Module::EMPTY
};

/// The same database, opened by a service that registers `widgets`.
async fn with_widgets(t: &TestDb) -> orgwall_store::Db {
    reopen(t, orgwall_store::catalog().with(&WIDGETS)).await
}

/// The walls are in place; the one thing wrong is that no module declares the table.
fn assert_only_unregistered(v: &[orgwall_store::doctor::Violation], table: &str) {
    assert_eq!(v.len(), 1, "{v:?}");
    assert_flagged(v, table, "not registered by any module");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_new_tenant_table_inherits_the_wall_on_migrate() {
    let t = TestDb::new(BackendKind::Postgres).await;
    t.owner_exec(
        "CREATE TABLE widgets (org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE, id uuid NOT NULL,
                               PRIMARY KEY (org_id, id));",
    )
    .await;
    let v = t.db.doctor().await.unwrap();
    assert!(problems_of(&v, "widgets")
        .iter()
        .any(|p| p.contains("not enabled")));
    t.db.migrate().await.unwrap();
    let v = t.db.doctor().await.unwrap();
    assert_only_unregistered(&v, "widgets");
    let v = with_widgets(&t).await.doctor().await.unwrap();
    assert!(v.is_empty(), "{v:?}");
}

both!(
    a_failed_migration_leaves_nothing_behind,
    |t: TestDb| async move {
        let fresh = TestDb::unmigrated(t.kind, 1).await;
        // A table in the way makes orgwall's migration 2 fail, after the kernel's
        // migration and orgwall's migration 1 applied in the same run.
        let blocker = match t.kind {
            BackendKind::Postgres => "CREATE TABLE projects (x int)",
            BackendKind::Sqlite => "CREATE TABLE projects_rows (x int)",
        };
        fresh.owner_exec(blocker).await;
        let err = fresh.db.migrate().await.unwrap_err();
        assert!(
            err.to_string()
                .contains("module orgwall migration 2 (workspace) failed"),
            "{err}"
        );
        // users (module tenancy) and email_verifications (orgwall's migration 1) were
        // created before projects in the same transaction; they must not exist now.
        let exists = match t.kind {
            BackendKind::Postgres => {
                let (c, conn) = tokio_postgres::connect(&fresh.url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                c.query_one("SELECT to_regclass('users') IS NOT NULL OR to_regclass('email_verifications') IS NOT NULL OR to_regclass('schema_migrations') IS NOT NULL", &[])
                .await
                .unwrap()
                .get::<_, bool>(0)
            }
            BackendKind::Sqlite => {
                let c = rusqlite::Connection::open(&fresh.url).unwrap();
                c.query_row(
                "SELECT count(*) > 0 FROM sqlite_master WHERE name IN ('users', 'email_verifications', 'schema_migrations')",
                [],
                |r| r.get::<_, bool>(0),
            )
            .unwrap()
            }
        };
        assert!(!exists, "a failed migration left tables behind");
    }
);

both!(
    a_database_from_a_newer_version_is_refused,
    |t: TestDb| async move {
        t.owner_exec(match t.kind {
        BackendKind::Postgres => "INSERT INTO schema_migrations (module, version, name, checksum) VALUES ('orgwall', 999, 'future', 'x')",
        BackendKind::Sqlite => "INSERT INTO schema_migrations (module, version, name, checksum, applied_at) VALUES ('orgwall', 999, 'future', 'x', 0)",
    })
    .await;
        let err = t.db.migrate().await.unwrap_err().to_string();
        let latest = match t.kind {
            BackendKind::Postgres => orgwall_store::MODULE.postgres.len(),
            BackendKind::Sqlite => orgwall_store::MODULE.sqlite.len(),
        };
        assert!(
            err.contains(&format!(
                "module orgwall: database schema is at version 999, newer than this build supports ({latest})"
            )),
            "{err}"
        );
    }
);

static PARTS: orgwall_store::Module = orgwall_store::Module {
    name: "parts",
    tenant_tables: &["bins", "parts"],
    cascades: &[orgwall_store::Cascade {
        parent: "bins",
        child: "parts",
        column: "bin_id",
    }],
    ..orgwall_store::Module::EMPTY
};

both!(half_registered_tables_are_named, |t: TestDb| async move {
    // A global table nobody declared, and a cascade between tenant tables.
    t.owner_exec(match t.kind {
            BackendKind::Postgres => {
                "CREATE TABLE settings (key text PRIMARY KEY, value text);
                 CREATE TABLE bins (org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
                                    id uuid NOT NULL, PRIMARY KEY (org_id, id));
                 CREATE TABLE parts (org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
                                     id uuid NOT NULL, bin_id uuid NOT NULL, PRIMARY KEY (org_id, id),
                                     FOREIGN KEY (org_id, bin_id) REFERENCES bins (org_id, id) ON DELETE CASCADE);
                 CREATE INDEX parts_bin ON parts (org_id, bin_id);"
            }
            BackendKind::Sqlite => {
                "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT);
                 CREATE TABLE bins_rows (org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
                                         id TEXT NOT NULL, PRIMARY KEY (org_id, id));
                 CREATE TABLE parts_rows (org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
                                          id TEXT NOT NULL, bin_id TEXT NOT NULL, PRIMARY KEY (org_id, id),
                                          FOREIGN KEY (org_id, bin_id) REFERENCES bins_rows (org_id, id));
                 CREATE INDEX parts_bin ON parts_rows (org_id, bin_id);"
            }
        })
        .await;
    t.db.migrate().await.unwrap();
    let v = t.db.doctor().await.unwrap();
    assert_flagged(&v, "settings", "not registered by any module");
    assert_flagged(&v, "bins", "not registered by any module");
    if t.kind == BackendKind::Postgres {
        // Registered as tables but without the cascade: SQLite would refuse the delete.
        static NO_CASCADE: orgwall_store::Module = orgwall_store::Module {
            name: "parts",
            tenant_tables: &["bins", "parts"],
            ..orgwall_store::Module::EMPTY
        };
        let db = reopen(&t, orgwall_store::catalog().with(&NO_CASCADE)).await;
        let v = db.doctor().await.unwrap();
        assert_flagged(&v, "parts", "is not declared as a Cascade");
    }
    // Registered with the cascade: on SQLite the trigger only exists after a migrate
    // by the registering service.
    let db = reopen(&t, orgwall_store::catalog().with(&PARTS)).await;
    if t.kind == BackendKind::Sqlite {
        let v = db.doctor().await.unwrap();
        assert_flagged(
            &v,
            "bins_rows",
            "missing cascade trigger orgwall_cascade_bins_parts_bin_id",
        );
        db.migrate().await.unwrap();
    }
    let v = db.doctor().await.unwrap();
    // What is left is the undeclared table, treated as a tenant table without walls.
    assert_flagged(&v, "settings", "not registered by any module");
    assert!(v.iter().all(|x| x.object == "settings"), "{v:?}");
});

async fn reopen(t: &TestDb, catalog: orgwall_store::Catalog) -> orgwall_store::Db {
    let url = match t.kind {
        BackendKind::Postgres => t.url.clone(),
        BackendKind::Sqlite => format!("sqlite:{}", t.url),
    };
    let cfg = orgwall_store::DbConfig::from_url(Some(&url), std::path::Path::new(".")).unwrap();
    orgwall_store::Db::open(&cfg, catalog).await.unwrap()
}

// Issue 15 item 6: the system tables (job queue, outbox) are checked too: forced RLS and
// the org-or-system policy on PostgreSQL, the view and guard triggers on SQLite.
both!(
    the_doctor_checks_the_wall_of_system_tables,
    |t: TestDb| async move {
        match t.kind {
            BackendKind::Postgres => {
                t.owner_exec(
                    "ALTER TABLE outbox NO FORCE ROW LEVEL SECURITY;
                     DROP POLICY org_isolation ON jobs;
                     CREATE POLICY everything ON jobs USING (true);",
                )
                .await;
                let v = t.db.doctor().await.unwrap();
                assert_flagged(&v, "outbox", "row-level security enabled and forced");
                assert_flagged(&v, "jobs", "app.system = 'jobs'");
                assert_flagged(&v, "jobs", "another permissive policy everything");
            }
            BackendKind::Sqlite => {
                t.owner_exec(
                    "DROP TRIGGER orgwall_guard_outbox_rows_upd;
                     DROP VIEW jobs; CREATE VIEW jobs AS SELECT * FROM jobs_rows;",
                )
                .await;
                let v = t.db.doctor().await.unwrap();
                assert_flagged(&v, "outbox_rows", "orgwall_guard_outbox_rows_upd");
                assert_flagged(&v, "jobs_rows", "no view jobs filtering");
            }
        }
        // Migrating again puts the wall back.
        if t.kind == BackendKind::Postgres {
            t.owner_exec("DROP POLICY everything ON jobs;").await;
        } else {
            t.owner_exec("DROP VIEW jobs;").await;
        }
        t.db.migrate().await.unwrap();
        let v = t.db.doctor().await.unwrap();
        assert!(v.is_empty(), "{v:#?}");
    }
);

// Issue 15 item 6 (job queues): a global table that carries policies (job_queues: only
// the job system's transactions) is named when its row-level security is disabled or no
// longer forced, since its policies then bind no one. Before this check the PostgreSQL
// doctor skipped global tables and passed both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_doctor_names_a_global_table_whose_policies_are_off() {
    let t = TestDb::new(BackendKind::Postgres).await;
    for (broken, mend) in [
        (
            "ALTER TABLE job_queues DISABLE ROW LEVEL SECURITY;",
            "ALTER TABLE job_queues ENABLE ROW LEVEL SECURITY;",
        ),
        (
            "ALTER TABLE job_queues NO FORCE ROW LEVEL SECURITY;",
            "ALTER TABLE job_queues FORCE ROW LEVEL SECURITY;",
        ),
    ] {
        t.owner_exec(broken).await;
        let v = t.db.doctor().await.unwrap();
        assert_flagged(&v, "job_queues", "its policies are not applied");
        assert!(v.iter().all(|x| x.object == "job_queues"), "{v:?}");
        t.owner_exec(mend).await;
        let v = t.db.doctor().await.unwrap();
        assert!(v.is_empty(), "{v:#?}");
    }
}

/// A tenant table's policy reads `app.org_id` in the expression itself (no sub-select:
/// the planner folds it with a statement's own `org_id = $1` into one comparison, no
/// InitPlan), unless another permissive policy is ORed with it (then in a sub-select, read
/// once, not for every row); `migrate` turns one form into the other as the table's
/// policies change, keeps a policy written by hand, and the new form walls off the same
/// rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migrate_gives_tenant_tables_the_policy_without_a_sub_select() {
    let t = TestDb::new(BackendKind::Postgres).await;
    orgwall_store::seed::demo_placed(&t.db, &[]).await.unwrap();
    let acme = orgwall_store::repo::orgs::resolve(&t.db, "acme")
        .await
        .unwrap();
    let owner = orgwall_testkit::pg_client(&t.url).await;
    // Tenant tables whose org_isolation policy reads the setting in a sub-select (not the
    // system tables, whose `OR app.system` always wants it) ...
    let with_sub_select =
        "SELECT c.relname::text FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND p.polname = 'org_isolation'
           AND pg_get_expr(p.polqual, p.polrelid) LIKE '%( SELECT%app.org_id%'
           AND pg_get_expr(p.polqual, p.polrelid) NOT LIKE '%app.system%'
         ORDER BY 1";
    // ... and those with another permissive policy for reads.
    let ored =
        "SELECT DISTINCT c.relname::text FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND p.polname NOT IN ('org_isolation', 'orgless_insert')
           AND p.polpermissive AND p.polcmd IN ('r', '*')
           AND EXISTS (SELECT 1 FROM pg_policy o WHERE o.polrelid = c.oid AND o.polname = 'org_isolation'
                       AND pg_get_expr(o.polqual, o.polrelid) NOT LIKE '%app.system%')
         ORDER BY 1";
    let sub_selects = orgwall_testkit::texts(&owner, with_sub_select, &[]).await;
    assert_eq!(sub_selects, orgwall_testkit::texts(&owner, ored, &[]).await);
    assert!(
        sub_selects.contains(&"memberships".to_owned()),
        "{sub_selects:?}"
    );
    assert!(!sub_selects.contains(&"tickets".to_owned()));
    // What a scoped read of one row plans.
    let plan = |table: &'static str| {
        let owner = &owner;
        async move {
            owner
                .batch_execute(&format!(
                    "BEGIN; SELECT set_config('role', 'orgwall_app', true), set_config('app.org_id', '{acme}', true);"
                ))
                .await
                .unwrap();
            let lines = orgwall_testkit::texts(
                owner,
                &format!(
                    "EXPLAIN (COSTS OFF) SELECT id FROM {table} WHERE org_id = '{acme}' AND id = '{acme}'"
                ),
                &[],
            )
            .await;
            owner.batch_execute("ROLLBACK").await.unwrap();
            lines.join("\n")
        }
    };
    let tickets_plan = plan("tickets").await;
    assert!(!tickets_plan.contains("InitPlan"), "{tickets_plan}");
    assert!(tickets_plan.contains("One-Time Filter"), "{tickets_plan}");

    // An older database: tickets with the sub-select policy, notes with one written by
    // hand; projects gains another permissive policy.
    let once = "org_id = (SELECT nullif(current_setting('app.org_id', true), '')::uuid)";
    t.owner_exec(&format!(
        "ALTER POLICY org_isolation ON tickets USING ({once}) WITH CHECK ({once});
         ALTER POLICY org_isolation ON notes USING ({once} AND id IS NOT NULL) WITH CHECK ({once});
         CREATE POLICY archived_read ON projects FOR SELECT USING (false);"
    ))
    .await;
    assert!(plan("tickets").await.contains("InitPlan"));
    t.db.migrate().await.unwrap();
    let after = orgwall_testkit::texts(&owner, with_sub_select, &[]).await;
    assert!(!after.contains(&"tickets".to_owned()), "{after:?}");
    assert!(
        after.contains(&"notes".to_owned()),
        "a policy written by hand stays"
    );
    assert!(
        after.contains(&"projects".to_owned()),
        "ORed with another: {after:?}"
    );
    let tickets_plan = plan("tickets").await;
    assert!(!tickets_plan.contains("InitPlan"), "{tickets_plan}");
    // Without the other policy, projects gets the folded form back.
    t.owner_exec("DROP POLICY archived_read ON projects;").await;
    t.db.migrate().await.unwrap();
    let after = orgwall_testkit::texts(&owner, with_sub_select, &[]).await;
    assert!(!after.contains(&"projects".to_owned()), "{after:?}");
    t.owner_exec(&format!(
        "ALTER POLICY org_isolation ON notes USING ({once}) WITH CHECK ({once});"
    ))
    .await;
    t.db.migrate().await.unwrap();
    assert_eq!(
        orgwall_testkit::texts(&owner, with_sub_select, &[]).await,
        sub_selects
    );
    assert!(t.db.doctor().await.unwrap().is_empty());

    // The folded policy: an unset scope sees no row, acme's scope only acme's.
    let count = |org: String| {
        let owner = &owner;
        async move {
            owner
                .batch_execute(&format!(
                    "BEGIN; SELECT set_config('role', 'orgwall_app', true), set_config('app.org_id', '{org}', true);"
                ))
                .await
                .unwrap();
            let n: i64 = owner
                .query_one("SELECT count(*) FROM tickets", &[])
                .await
                .unwrap()
                .get(0);
            let other: i64 = owner
                .query_one(
                    "SELECT count(*) FROM tickets WHERE org_id IS DISTINCT FROM nullif(current_setting('app.org_id', true), '')::uuid",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            owner.batch_execute("ROLLBACK").await.unwrap();
            (n, other)
        }
    };
    let all = t.owner_count("tickets", "true").await;
    let acme_rows = t
        .owner_count("tickets", &format!("org_id = '{acme}'"))
        .await;
    assert!(acme_rows > 0 && all > acme_rows, "{acme_rows} of {all}");
    assert_eq!(count(String::new()).await, (0, 0));
    assert_eq!(count(acme.to_string()).await, (acme_rows, 0));
}
