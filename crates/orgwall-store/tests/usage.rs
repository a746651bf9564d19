//! The usage counters (`org_usage`, kept by triggers): what a quota check reads instead of
//! counting the org's rows. They follow creates, deletes and cascades on both backends,
//! in the shared tables and in an org's own database, and a quota refuses at them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use orgwall_core::{Error, FileId, OrgId};
use orgwall_store::placement::{self, Kind};
use orgwall_store::quota::{self, Counts};
use orgwall_store::repo::{files, projects, tickets};
use orgwall_store::BackendKind;
use orgwall_testkit::{both, Demo, TestDb};

/// The counters as the app reads them, and the rows as the owner counts them.
async fn counted(t: &TestDb, scope: &orgwall_store::access::OrgScope) -> (Counts, Counts) {
    let org: OrgId = scope.org_id();
    let mut tx = t.db.read(scope).await.unwrap();
    let used = quota::usage(&mut tx).await.unwrap().used;
    tx.commit().await.unwrap();
    let w = format!("org_id = '{org}'");
    let bytes = t
        .owner_count_for(org, "files", &format!("{w} AND size_bytes > 0"))
        .await;
    let real = Counts {
        members: used.members,
        projects: t.owner_count_for(org, "projects", &w).await,
        tickets: t.owner_count_for(org, "tickets", &w).await,
        // Every file of these tests is 100 bytes.
        storage_bytes: bytes * 100,
    };
    (used, real)
}

async fn exercise(t: &TestDb, scope: &orgwall_store::access::OrgScope) {
    let (used, real) = counted(t, scope).await;
    assert_eq!(used, real, "before");
    let mut tx = t.db.write(scope).await.unwrap();
    let p = projects::create(&mut tx, "USG", "Usage", "").await.unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        let tk = tickets::create(
            &mut tx,
            tickets::NewTicket {
                project_id: p.id,
                title: &format!("u{i}"),
                body: "counted",
                assignee_id: None,
            },
        )
        .await
        .unwrap();
        ids.push(tk.id);
    }
    let org = scope.org_id();
    for _ in 0..3 {
        let id = FileId::new();
        files::insert(
            &mut tx,
            files::NewFile {
                id,
                name: "f.txt",
                content_type: "text/plain",
                size_bytes: 100,
                storage_key: &orgwall_store::files::key_for(org, id),
                sha256: "00",
            },
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let (after, real) = counted(t, scope).await;
    assert_eq!(after, real, "after creates");
    assert_eq!(after.tickets, used.tickets + 5);
    assert_eq!(after.projects, used.projects + 1);
    assert_eq!(after.storage_bytes, used.storage_bytes + 300);
    // A ticket deleted, then its project with the other four (a cascade), a file deleted.
    let mut tx = t.db.write(scope).await.unwrap();
    tickets::delete(&mut tx, ids[0]).await.unwrap();
    projects::delete(&mut tx, p.id).await.unwrap();
    let some = files::list(&mut tx, 10, None).await.unwrap();
    files::delete(&mut tx, some[0].id).await.unwrap();
    tx.commit().await.unwrap();
    let (end, real) = counted(t, scope).await;
    assert_eq!(end, real, "after deletes");
    assert_eq!(end.tickets, used.tickets);
    assert_eq!(end.projects, used.projects);
    assert_eq!(end.storage_bytes, used.storage_bytes + 200);
    // A rolled-back create counts nothing.
    let mut tx = t.db.write(scope).await.unwrap();
    projects::create(&mut tx, "GONE", "Rolled back", "")
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(counted(t, scope).await.0, end);
}

both!(usage_counters_follow_every_change, |t: TestDb| async move {
    let d = Demo::load(&t.db).await;
    let alice = d.alice_in_acme(&t.db).await;
    exercise(&t, &alice).await;
    // An org in a database (or file) of its own counts there.
    let (org, owner) = orgwall_store::access::create_org(
        &t.db,
        d.carol,
        "Initech",
        &orgwall_core::Slug::parse("initech").unwrap(),
    )
    .await
    .unwrap();
    placement::set(&t.db, org.id, Kind::Database(None))
        .await
        .unwrap();
    let owner = orgwall_store::access::verify_member(&t.db, d.carol, org.id)
        .await
        .map_or(owner, |s| s);
    exercise(&t, &owner).await;
    assert_eq!(t.db.doctor().await.unwrap(), vec![]);
    if t.kind == BackendKind::Postgres {
        // The counter row is the org's like any tenant row: not another org's to read.
        let mut tx = t.db.read(&alice).await.unwrap();
        let n = tx
            .raw()
            .data()
            .query("SELECT org_id FROM org_usage", &[])
            .await
            .unwrap();
        assert!(n
            .iter()
            .all(|r| r.get::<uuid::Uuid>(0).unwrap() == d.acme.uuid()));
    }
});

both!(a_quota_refuses_at_the_counted_use, |t: TestDb| async move {
    let d = Demo::load(&t.db).await;
    let alice = d.alice_in_acme(&t.db).await;
    let (used, _) = counted(&t, &alice).await;
    t.owner_exec(&format!(
        "INSERT INTO plans (name, max_members, max_projects, max_tickets, max_storage_bytes, rate_limit_per_minute) VALUES ('edge', 50, {}, 1000, 1000000, 1000)",
        used.projects + 1
    ))
    .await;
    quota::set_plan(&t.db, d.acme, "edge").await.unwrap();
    let mut tx = t.db.write(&alice).await.unwrap();
    let p = projects::create(&mut tx, "LAST", "The last one", "")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = t.db.write(&alice).await.unwrap();
    let err = projects::create(&mut tx, "ONEMORE", "Over", "")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Refused(code, _) if *code == "quota_exceeded"),
        "{err:?}"
    );
    drop(tx);
    // Deleting one makes room again.
    let mut tx = t.db.write(&alice).await.unwrap();
    projects::delete(&mut tx, p.id).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = t.db.write(&alice).await.unwrap();
    projects::create(&mut tx, "ONEMORE", "Room again", "")
        .await
        .unwrap();
    tx.commit().await.unwrap();
});
