//! The job queue and worker on both backends: every job runs in its own org, fails closed
//! without one, is fair across orgs, survives a dead worker, retries with backoff and
//! dies visibly; the org purge removes exactly one org.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use futures::future::BoxFuture;
use futures::FutureExt;
use orgwall_core::{Email, Error, JobId, NoteId, OrgId, TicketStatus};
use orgwall_store::access::{OrgScope, Principal};
use orgwall_store::files::{BlobStore, LocalFiles};
use orgwall_store::jobs::mail::{self, Mailer};
use orgwall_store::jobs::{
    self, Claimed, JobCtx, JobError, JobInfo, Outcome, Registry, Worker, WorkerConfig,
};
use orgwall_store::repo::exports::ExportFiles;
use orgwall_store::repo::{
    api_keys, comments, exports, invitations, notes, orgs, outbox, projects, tickets,
};
use orgwall_store::{params, BackendKind, Db, Mode};
use orgwall_testkit::smtp::{SinkTls, SmtpSink};
use orgwall_testkit::{both, is_derived, store_file, tenant_tables, Demo, TestDb};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Env {
    ctx: JobCtx,
    dir: tempfile::TempDir,
}

fn env(db: &Db) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let ctx = JobCtx {
        db: db.clone(),
        files: Arc::new(LocalFiles::new(dir.path().join("files"))),
        exports: ExportFiles::new(dir.path().join("exports")),
        mailer: Arc::new(mail::LogMailer),
    };
    Env { ctx, dir }
}

fn fast() -> WorkerConfig {
    WorkerConfig {
        slots: 1,
        lease: Duration::from_secs(30),
        poll: Duration::from_millis(20),
        grace: Duration::from_secs(5),
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
    }
}

/// `test.note`: writes a note titled by the payload in the job's org, after checking the
/// scope it got names this job and the org the payload expects.
fn note_registry() -> Registry {
    Registry::builtin().tenant(
        "test.note",
        |ctx: JobCtx, scope: OrgScope, job: JobInfo| async move {
            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            struct P {
                title: String,
                expect_org: OrgId,
            }
            let p: P = job.parse()?;
            assert_eq!(scope.org_id(), p.expect_org, "the job runs in its own org");
            assert_eq!(
                scope.principal(),
                &Principal::Job {
                    kind: "test.note",
                    id: job.id
                }
            );
            let mut tx = ctx.db.write(&scope).await?;
            notes::create(&mut tx, &p.title, "written by a job").await?;
            tx.commit().await?;
            Ok(())
        },
    )
}

async fn enqueue(db: &Db, scope: &OrgScope, kind: &str, payload: serde_json::Value) -> JobId {
    let mut tx = db.write(scope).await.unwrap();
    let id = jobs::enqueue(&mut tx, kind, payload).await.unwrap();
    tx.commit().await.unwrap();
    id
}

async fn raw_job(db: &Db, org: Option<OrgId>, kind: &str, payload: serde_json::Value) -> JobId {
    let id = JobId::new();
    let t = orgwall_store::value::now();
    let mut tx = db.system("jobs", Mode::Write).await.unwrap();
    tx.execute(
        "INSERT INTO jobs (id, org_id, kind, payload, status, attempts, max_attempts, run_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'queued', 0, 5, $5, $5, $5)",
        params![id, org, kind, payload, t],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

fn outcome_of(out: &[(JobId, Outcome)], id: JobId) -> Outcome {
    out.iter()
        .find(|(j, _)| *j == id)
        .map(|(_, o)| o.clone())
        .unwrap_or_else(|| panic!("job {id} did not run: {out:?}"))
}

both!(
    interleaved_jobs_write_only_their_own_org,
    |t: TestDb| async move {
        let db = &t.db;
        let d = Demo::load(db).await;
        let (a, b) = (d.alice_in_acme(db).await, d.bob_in_globex(db).await);
        let e = env(db);
        let mut ids = Vec::new();
        for i in 0..2 {
            ids.push(
                enqueue(
                    db,
                    &a,
                    "test.note",
                    json!({"title": format!("job A{i}"), "expect_org": d.acme}),
                )
                .await,
            );
            ids.push(
                enqueue(
                    db,
                    &b,
                    "test.note",
                    json!({"title": format!("job B{i}"), "expect_org": d.globex}),
                )
                .await,
            );
        }
        let w = Worker::new(e.ctx.clone(), note_registry(), fast());
        let out = w.run_until_idle().await;
        assert_eq!(out.len(), 4, "{out:?}");
        // Round robin: the orgs alternate.
        let orgs: Vec<OrgId> = futures::future::join_all(
            out.iter()
                .map(|(id, _)| async { jobs::get(db, *id).await.unwrap().org_id.unwrap() }),
        )
        .await;
        assert_ne!(orgs[0], orgs[1]);
        assert_ne!(orgs[1], orgs[2]);
        assert_ne!(orgs[2], orgs[3]);
        for (id, o) in &out {
            assert_eq!(*o, Outcome::Done, "{id}");
            assert_eq!(jobs::get(db, *id).await.unwrap().status, "done");
        }
        for (org, mine, theirs) in [(d.acme, "A", "B"), (d.globex, "B", "A")] {
            for i in 0..2 {
                let n = t
                    .owner_count(
                        "notes",
                        &format!("org_id = '{org}' AND title = 'job {mine}{i}'"),
                    )
                    .await;
                assert_eq!(n, 1, "{org} has its own note {mine}{i}");
                let n = t
                    .owner_count(
                        "notes",
                        &format!("org_id = '{org}' AND title = 'job {theirs}{i}'"),
                    )
                    .await;
                assert_eq!(n, 0, "{org} has none of the other org's notes");
            }
        }
        let _ = e.dir;
    }
);

both!(a_handler_cannot_reach_another_org, |t: TestDb| async move {
    let db = &t.db;
    let d = Demo::load(db).await;
    let a = d.alice_in_acme(db).await;
    let e = env(db);
    let globex = d.globex;
    let before = t
        .owner_count("notes", &format!("org_id = '{globex}'"))
        .await;
    let reg = Registry::empty().tenant(
        "test.cross",
        move |ctx: JobCtx, scope: OrgScope, _job: JobInfo| async move {
            let mut tx = ctx.db.write(&scope).await?;
            // Another org's rows are invisible: an update by org id changes nothing.
            let n = tx
                .execute(
                    "UPDATE notes SET title = 'pwned' WHERE org_id = $1",
                    params![globex],
                )
                .await?;
            if n != 0 {
                return Ok(()); // the test fails below: it must not get here
            }
            // And a row for another org cannot be written.
            tx.execute(
                "INSERT INTO notes (org_id, id, title, body, created_at, updated_at)
                 VALUES ($1, $2, 'planted', '', $3, $3)",
                params![globex, NoteId::new(), orgwall_store::value::now()],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        },
    );
    let id = enqueue(db, &a, "test.cross", json!({})).await;
    let out = Worker::new(e.ctx.clone(), reg, fast())
        .run_until_idle()
        .await;
    let Outcome::Dead(err) = outcome_of(&out, id) else {
        panic!("the wall must refuse: {out:?}")
    };
    assert!(err.contains("scope violation"), "{err}");
    let job = jobs::get(db, id).await.unwrap();
    assert_eq!(job.status, "dead");
    assert!(job.last_error.unwrap().contains("scope violation"));
    assert_eq!(
        t.owner_count("notes", &format!("org_id = '{globex}'"))
            .await,
        before
    );
    assert_eq!(
        t.owner_count("notes", "title IN ('pwned', 'planted')")
            .await,
        0
    );
});

both!(
    jobs_without_an_org_and_bad_jobs_fail_closed,
    |t: TestDb| async move {
        let db = &t.db;
        let d = Demo::load(db).await;
        let a = d.alice_in_acme(db).await;
        let e = env(db);
        // The enqueue API cannot make them.
        {
            let mut tx = db.global(Mode::Write).await.unwrap();
            let r = jobs::enqueue_system(&mut tx, "test.note", json!({}), jobs::Options::default())
                .await;
            assert!(matches!(r, Err(Error::Validation(_))), "{r:?}");
        }
        {
            let mut tx = db.write(&a).await.unwrap();
            let r = jobs::enqueue(&mut tx, jobs::ORG_PURGE, json!({"org_id": d.globex})).await;
            assert!(matches!(r, Err(Error::Validation(_))), "{r:?}");
        }
        // Rows written some other way are refused by the worker.
        let no_org = raw_job(
            db,
            None,
            "test.note",
            json!({"title": "x", "expect_org": d.acme}),
        )
        .await;
        let undeclared = raw_job(db, None, "mystery.sweep", json!({})).await;
        let system_with_org =
            raw_job(db, Some(d.acme), jobs::ORG_PURGE, json!({"org_id": d.acme})).await;
        let unknown = raw_job(db, Some(d.acme), "no.such.kind", json!({})).await;
        let malformed = raw_job(db, Some(d.acme), "test.note", json!({"title": 5})).await;
        let malformed_system = raw_job(db, None, jobs::ORG_PURGE, json!({"org": "acme"})).await;
        let out = Worker::new(e.ctx.clone(), note_registry(), fast())
            .run_until_idle()
            .await;
        for (id, want) in [
            (no_org, "names no org"),
            (undeclared, "not a declared system job kind"),
            (system_with_org, "must not name an org"),
            (unknown, "unknown job kind"),
            (malformed, "malformed payload"),
            (malformed_system, "malformed payload"),
        ] {
            let Outcome::Dead(err) = outcome_of(&out, id) else {
                panic!("{want}: {out:?}")
            };
            assert!(err.contains(want), "{want}: {err}");
            let job = jobs::get(db, id).await.unwrap();
            assert_eq!((job.status.as_str(), job.attempts), ("dead", 1), "{want}");
            assert!(job.last_error.unwrap().contains(want));
        }
        // Visible in the operator's list of dead jobs.
        let dead = jobs::list(
            db,
            &jobs::ListFilter {
                status: Some("dead".into()),
                ..Default::default()
            },
            100,
        )
        .await
        .unwrap();
        assert_eq!(dead.len(), 6);
        assert_eq!(t.owner_count("notes", "title = 'x'").await, 0);
    }
);

both!(
    one_org_with_ten_thousand_jobs_does_not_starve_another,
    |t: TestDb| async move {
        let db = &t.db;
        let d = Demo::load(db).await;
        let b = d.bob_in_globex(db).await;
        let acme = d.acme;
        // Bulk insert, as the owner: 10,000 ready jobs of Acme, all older than anything else.
        match t.kind {
        BackendKind::Postgres => {
            t.owner_exec(&format!(
                "INSERT INTO jobs (id, org_id, kind, payload, status, attempts, max_attempts, run_at, created_at, updated_at)
                 SELECT gen_random_uuid(), '{acme}', 'test.noop', '{{}}', 'queued', 0, 5,
                        now() - interval '1 hour', now(), now()
                 FROM generate_series(1, 10000)"
            ))
            .await
        }
        BackendKind::Sqlite => {
            // Through the job queue's system transaction: the view's guard triggers call
            // the connection's scope functions, which an owner connection does not have.
            let past = orgwall_store::value::now().timestamp_micros() - 3_600_000_000;
            let mut tx = db.system("jobs", Mode::Write).await.unwrap();
            tx.execute(&format!(
                "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 10000)
                 INSERT INTO jobs (id, org_id, kind, payload, status, attempts, max_attempts, run_at, created_at, updated_at)
                 SELECT lower(hex(randomblob(16))), '{acme}', 'test.noop', '{{}}', 'queued', 0, 5,
                        {past}, {past}, {past}
                 FROM s"
            ), &[])
            .await
            .unwrap();
            tx.commit().await.unwrap();
        }
    }
        assert_eq!(
            t.owner_count(
                "job_queues",
                &format!("queue = '{acme}' AND pending = 10000")
            )
            .await,
            1,
            "the trigger counted the bulk insert"
        );
        let lease = Duration::from_secs(30);
        // A worker with two slots is busy with Acme's backlog.
        let first = jobs::claim(db, lease).await.unwrap().unwrap();
        assert_eq!(first.org_id, Some(acme));
        // Globex enqueues one job, newer than all of Acme's.
        let mine = enqueue(db, &b, "test.noop", json!({})).await;
        // The very next claim (the worker's other slot) takes it.
        let next = jobs::claim(db, lease).await.unwrap().unwrap();
        assert_eq!(
            next.id, mine,
            "Globex's job waits for no more than one claim"
        );
        // Then Acme again, and a second Globex job is again next in line after one Acme job.
        let again = jobs::claim(db, lease).await.unwrap().unwrap();
        assert_eq!(again.org_id, Some(acme));
        let mine2 = enqueue(db, &b, "test.noop", json!({})).await;
        let c = jobs::claim(db, lease).await.unwrap().unwrap();
        assert_eq!(c.id, mine2);
        // What a claim costs with 10,000 queued jobs of one org.
        let n = 50;
        let start = Instant::now();
        for _ in 0..n {
            let c = jobs::claim(db, lease).await.unwrap().unwrap();
            assert_eq!(c.org_id, Some(acme));
        }
        let per = start.elapsed() / n;
        eprintln!(
            "{:?}: claim with ~10,000 queued jobs: {per:?} per claim",
            t.kind
        );
        assert!(per < Duration::from_millis(250), "a claim took {per:?}");
    }
);

both!(
    a_dead_workers_job_is_reclaimed_and_done_once,
    |t: TestDb| async move {
        let db = &t.db;
        let d = Demo::load(db).await;
        let a = d.alice_in_acme(db).await;
        let e = env(db);
        let note = NoteId::new();
        // `test.once` writes one note with a fixed id, idempotently (at-least-once delivery).
        let reg = Registry::empty().tenant(
            "test.once",
            |ctx: JobCtx, scope: OrgScope, job: JobInfo| async move {
                let note: NoteId = serde_json::from_value(job.payload["note"].clone())
                    .map_err(|e| JobError::Fatal(e.to_string()))?;
                let mut tx = ctx.db.write(&scope).await?;
                let org = scope.org_id();
                let there = tx
                    .query_opt(
                        "SELECT 1 FROM notes WHERE org_id = $1 AND id = $2",
                        params![org, note],
                    )
                    .await?;
                if there.is_none() {
                    tx.execute(
                        "INSERT INTO notes (org_id, id, title, body, created_at, updated_at)
                     VALUES ($1, $2, 'once', '', $3, $3)",
                        params![org, note, orgwall_store::value::now()],
                    )
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            },
        );
        let id = enqueue(db, &a, "test.once", json!({ "note": note })).await;
        // A worker claims it with a short lease, does the work, and dies before recording it.
        let lost: Claimed = jobs::claim(db, Duration::from_millis(300))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(lost.id, id);
        assert_eq!(lost.attempt, 1);
        {
            let mut tx = db.write(&a).await.unwrap();
            tx.execute(
            "INSERT INTO notes (org_id, id, title, body, created_at, updated_at) VALUES ($1, $2, 'once', '', $3, $3)",
            params![d.acme, note, orgwall_store::value::now()],
        )
        .await
        .unwrap();
            tx.commit().await.unwrap();
        }
        drop(lost.clone());
        // While the lease holds, nobody else gets it.
        let w = Worker::new(e.ctx.clone(), reg, fast());
        assert!(w.run_until_idle().await.is_empty());
        assert_eq!(jobs::get(db, id).await.unwrap().status, "running");
        // After the lease, it is reclaimed and completes.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let out = w.run_until_idle().await;
        assert_eq!(out, vec![(id, Outcome::Done)]);
        let job = jobs::get(db, id).await.unwrap();
        assert_eq!((job.status.as_str(), job.attempts), ("done", 2));
        assert_eq!(
            t.owner_count("notes", &format!("id = '{note}'")).await,
            1,
            "done once in effect"
        );
        // The dead worker's late answer is ignored (fenced by the attempt number).
        assert!(!jobs::complete(db, &lost).await.unwrap());
        assert!(!jobs::fail(db, &lost, "late", None).await.unwrap());
        assert_eq!(jobs::get(db, id).await.unwrap().status, "done");
    }
);

both!(retries_back_off_then_die_visibly, |t: TestDb| async move {
    let db = &t.db;
    let d = Demo::load(db).await;
    let a = d.alice_in_acme(db).await;
    let e = env(db);
    let calls = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let seen = calls.clone();
    let reg = Registry::empty().tenant(
        "test.flaky",
        move |_ctx: JobCtx, _scope: OrgScope, job: JobInfo| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(Instant::now());
                Err(JobError::Retry(format!(
                    "upstream said no (attempt {})",
                    job.attempt
                )))
            }
        },
    );
    let id = {
        let mut tx = db.write(&a).await.unwrap();
        let id = jobs::enqueue_with(
            &mut tx,
            "test.flaky",
            json!({}),
            jobs::Options {
                max_attempts: 4,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        id
    };
    let cfg = WorkerConfig {
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_secs(5),
        ..fast()
    };
    let w = Worker::new(e.ctx.clone(), reg, cfg);
    let mut outcomes = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for (_, o) in w.run_until_idle().await {
            outcomes.push(o);
        }
        let job = jobs::get(db, id).await.unwrap();
        if job.status == "dead" || Instant::now() > deadline {
            break;
        }
        if job.status == "queued" {
            // Retrying: not before its backoff.
            assert!(job.run_at > job.updated_at, "scheduled later: {job:?}");
            assert!(job
                .last_error
                .as_deref()
                .unwrap()
                .contains("upstream said no"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(outcomes.len(), 4, "{outcomes:?}");
    assert!(matches!(outcomes[0], Outcome::Retrying(_)));
    assert!(matches!(outcomes[3], Outcome::Dead(_)));
    // Backoff grows: at least half of 100, 200, 400 ms between attempts.
    let at = calls.lock().unwrap().clone();
    for (i, min) in [(1, 50), (2, 100), (3, 200)] {
        let gap = at[i] - at[i - 1];
        assert!(gap >= Duration::from_millis(min), "gap {i}: {gap:?}");
    }
    let job = jobs::get(db, id).await.unwrap();
    assert_eq!((job.status.as_str(), job.attempts), ("dead", 4));
    assert_eq!(
        job.last_error.as_deref(),
        Some("upstream said no (attempt 4)")
    );
    // The operator's view lists it; retry queues it again, cancel takes it out.
    let dead = jobs::list(
        db,
        &jobs::ListFilter {
            status: Some("dead".into()),
            org: Some(d.acme),
            ..Default::default()
        },
        10,
    )
    .await
    .unwrap();
    assert_eq!(dead.iter().map(|j| j.id).collect::<Vec<_>>(), vec![id]);
    let j = jobs::retry(db, id).await.unwrap();
    assert_eq!((j.status.as_str(), j.attempts), ("queued", 0));
    assert!(matches!(
        jobs::retry(db, id).await,
        Err(Error::Conflict(..))
    ));
    let j = jobs::cancel(db, id).await.unwrap();
    assert_eq!(j.status, "cancelled");
    assert!(
        w.run_until_idle().await.is_empty(),
        "a cancelled job does not run"
    );
});

both!(
    shutdown_finishes_running_jobs_and_releases_the_rest,
    |t: TestDb| async move {
        let db = &t.db;
        let d = Demo::load(db).await;
        let a = d.alice_in_acme(db).await;
        let e = env(db);
        let reg = Registry::empty().tenant(
            "test.sleep",
            |_ctx: JobCtx, _scope: OrgScope, job: JobInfo| async move {
                let ms = job.payload["ms"].as_u64().unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(())
            },
        );
        let quick = enqueue(db, &a, "test.sleep", json!({"ms": 100})).await;
        let slow = enqueue(db, &a, "test.sleep", json!({"ms": 60_000})).await;
        let w = Worker::new(
            e.ctx.clone(),
            reg,
            WorkerConfig {
                slots: 2,
                grace: Duration::from_millis(500),
                ..fast()
            },
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(w.run(async move {
            let _ = stopped.await;
        }));
        // Both are running.
        let deadline = Instant::now() + Duration::from_secs(10);
        while jobs::get(db, slow).await.unwrap().status != "running" {
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(jobs::get(db, quick).await.unwrap().status, "done");
        let s = jobs::get(db, slow).await.unwrap();
        assert_eq!(
            (s.status.as_str(), s.attempts, s.locked_until),
            ("queued", 0, None),
            "released"
        );
    }
);

/// A mailer that fails the first `fail` sends, then records what it sends.
#[derive(Debug, Default)]
struct Flaky {
    fail: Mutex<u32>,
    sent: Mutex<Vec<mail::Email>>,
}

impl Mailer for Flaky {
    fn send<'a>(&'a self, email: &'a mail::Email) -> BoxFuture<'a, Result<(), String>> {
        async move {
            let mut f = self.fail.lock().unwrap();
            if *f > 0 {
                *f -= 1;
                return Err("421 try again later".into());
            }
            self.sent.lock().unwrap().push(email.clone());
            Ok(())
        }
        .boxed()
    }
}

both!(the_outbox_is_delivered_by_jobs, |t: TestDb| async move {
    let db = &t.db;
    let d = Demo::load(db).await;
    let a = d.alice_in_acme(db).await;
    let mut e = env(db);
    let flaky = Arc::new(Flaky {
        fail: Mutex::new(1),
        ..Default::default()
    });
    e.ctx.mailer = flaky.clone();
    let invitee = Email::parse("dora@example.test").unwrap();
    {
        let mut tx = db.write(&a).await.unwrap();
        invitations::create(&mut tx, &invitee, "member", |tok| {
            format!("http://127.0.0.1:8080/accept?token={tok}")
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    let pending = outbox::list(db, Some("pending"), Some("dora@example.test"), 10)
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    let links = pending[0].links();
    assert_eq!(links.len(), 1);
    assert!(
        links[0].starts_with("http://127.0.0.1:8080/accept?token="),
        "{links:?}"
    );
    let w = Worker::new(e.ctx.clone(), Registry::builtin(), fast());
    // First attempt: the server refuses; retried after a backoff, error visible.
    let out = w.run_until_idle().await;
    assert!(
        matches!(out.as_slice(), [(_, Outcome::Retrying(err))] if err.contains("421")),
        "{out:?}"
    );
    let m = outbox::get(db, pending[0].id).await.unwrap().unwrap();
    assert_eq!((m.status.as_str(), m.attempts), ("pending", 1));
    assert!(m.last_error.unwrap().contains("421"));
    tokio::time::sleep(Duration::from_millis(250)).await;
    let out = w.run_until_idle().await;
    assert!(matches!(out.as_slice(), [(_, Outcome::Done)]), "{out:?}");
    let m = outbox::get(db, pending[0].id).await.unwrap().unwrap();
    assert_eq!(
        (m.status.as_str(), m.attempts, m.last_error),
        ("sent", 2, None)
    );
    let sent = flaky.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, "dora@example.test");
    assert!(sent[0].body.contains(links[0]));
    // Running the delivery again (at least once) sends nothing more.
    let job = jobs::list(
        db,
        &jobs::ListFilter {
            kind: Some(jobs::OUTBOX_DELIVER.into()),
            ..Default::default()
        },
        10,
    )
    .await
    .unwrap();
    assert_eq!(job.len(), 1);
    jobs::cancel(db, job[0].id).await.unwrap_err();
    {
        let mut tx = db.system("jobs", Mode::Write).await.unwrap();
        tx.execute(
            "UPDATE jobs SET status = 'queued' WHERE id = $1",
            params![job[0].id],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    assert!(matches!(
        w.run_until_idle().await.as_slice(),
        [(_, Outcome::Done)]
    ));
    assert_eq!(flaky.sent.lock().unwrap().len(), 1);
});

/// Runs the worker until `id` is done or dead (retries back off for a few milliseconds).
async fn settle(w: &Worker, db: &Db, id: JobId) -> jobs::Job {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        w.run_until_idle().await;
        let job = jobs::get(db, id).await.unwrap();
        if job.status == "done" || job.status == "dead" {
            return job;
        }
        assert!(Instant::now() < deadline, "job did not settle: {job:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

both!(
    required_starttls_never_sends_in_clear,
    |t: TestDb| async move {
        let db = &t.db;
        // A server without STARTTLS, and one whose certificate nobody trusts.
        let plain = SmtpSink::start().await;
        let untrusted = SmtpSink::start_with(SinkTls::StartTls).await;
        for (sink, url, why) in [
            (
                &plain,
                format!("smtp://localhost:{}?tls=starttls", plain.addr.port()),
                "STARTTLS is not supported",
            ),
            (&untrusted, untrusted.url(), "certificate"),
        ] {
            let mut e = env(db);
            e.ctx.mailer = Arc::new(mail::SmtpMailer::new(&url, mail::DEFAULT_FROM).unwrap());
            let to = format!("secret{}@example.test", sink.addr.port());
            let mut tx = db.global(Mode::Write).await.unwrap();
            outbox::enqueue(&mut tx, None, &to, "token inside", "owv_secret")
                .await
                .unwrap();
            tx.commit().await.unwrap();
            let job = jobs::list(db, &jobs::ListFilter::default(), 1)
                .await
                .unwrap()[0]
                .clone();
            let w = Worker::new(e.ctx.clone(), Registry::builtin(), fast());
            let job = settle(&w, db, job.id).await;
            // Tried every time (the server was reached), refused every time, then dead.
            assert_eq!(
                (job.status.as_str(), job.attempts),
                ("dead", outbox::MAX_ATTEMPTS),
                "{url}"
            );
            assert!(sink.connections() >= outbox::MAX_ATTEMPTS as usize, "{url}");
            assert!(sink.accepted().is_empty(), "{url}: nothing sent in clear");
            let m = outbox::list(db, None, Some(&to), 1).await.unwrap()[0].clone();
            assert_eq!(m.status, "dead");
            let err = m.last_error.unwrap();
            assert!(err.contains(why), "{url}: {err}");
        }
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_delivery_is_encrypted_and_verified() {
    let email = mail::Email {
        to: "dora@example.test".into(),
        subject: "Over TLS".into(),
        body: "a token: owv_1".into(),
    };
    for mode in [SinkTls::StartTls, SinkTls::Implicit] {
        let sink = SmtpSink::start_with(mode).await;
        let url = sink.url().replacen("://", "://ops%40x:p%2Fw@", 1);
        // Checked against the Mozilla roots only, the sink's private CA is not trusted.
        let strict = mail::SmtpMailer::new(&url, mail::DEFAULT_FROM).unwrap();
        let err = strict.send(&email).await.unwrap_err();
        assert!(
            err.contains("certificate") || err.contains("UnknownIssuer"),
            "{mode:?}: {err}"
        );
        assert!(sink.accepted().is_empty());
        // Trusting it, the message goes through encrypted, with the credentials.
        let m = mail::SmtpMailer::with_root(&url, mail::DEFAULT_FROM, Some(sink.ca_pem.as_bytes()))
            .unwrap();
        m.send(&email)
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        let got = sink.accepted();
        assert_eq!(got.len(), 1, "{mode:?}");
        assert!(got[0].tls, "{mode:?}: sent over TLS");
        assert_eq!(got[0].to, vec!["dora@example.test".to_string()]);
        assert_eq!(got[0].auth, Some(("ops@x".to_string(), "p/w".to_string())));
        assert!(got[0].data.contains("a token: owv_1"));
    }
}

async fn counts(t: &TestDb, org: OrgId) -> Vec<(&'static str, i64)> {
    let mut v = Vec::new();
    for table in tenant_tables() {
        v.push((
            table,
            t.owner_count(table, &format!("org_id = '{org}'")).await,
        ));
    }
    v
}

/// Gives `scope`'s org a row in every tenant table (beyond the demo data) and a file.
async fn fill(db: &Db, scope: &OrgScope, files_store: &dyn BlobStore) {
    let mut tx = db.write(scope).await.unwrap();
    let who = Email::parse(&format!("guest-{}@example.test", scope.org_id())).unwrap();
    invitations::create(&mut tx, &who, "viewer", |t| format!("http://x.test/{t}"))
        .await
        .unwrap();
    api_keys::create(&mut tx, "ci", "viewer", None)
        .await
        .unwrap();
    let p = projects::create(&mut tx, "JOB", "Jobs", "").await.unwrap();
    let tk = tickets::create(
        &mut tx,
        tickets::NewTicket {
            project_id: p.id,
            title: "purge me",
            body: "",
            assignee_id: None,
        },
    )
    .await
    .unwrap();
    tickets::set_status(&mut tx, tk.id, TicketStatus::InProgress)
        .await
        .unwrap();
    comments::add(&mut tx, tk.id, "a comment").await.unwrap();
    notes::create(&mut tx, "a note", "").await.unwrap();
    exports::create(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    store_file(db, scope, files_store, "a.txt", b"file bytes").await;
}

both!(the_purge_removes_exactly_one_org, |t: TestDb| async move {
    let db = &t.db;
    let d = Demo::load(db).await;
    let (a, b) = (d.alice_in_acme(db).await, d.bob_in_globex(db).await);
    let e = env(db);
    fill(db, &a, e.ctx.files.as_ref()).await;
    fill(db, &b, e.ctx.files.as_ref()).await;
    // An archive of each org on disk too.
    for org in [d.acme, d.globex] {
        let dir = e.ctx.exports.org_dir(org);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("old.tar.gz"), b"x").unwrap();
    }
    let acme_before = counts(&t, d.acme).await;
    let globex_before = counts(&t, d.globex).await;
    for (table, n) in acme_before.iter().chain(&globex_before) {
        // (The search terms are derived rows that only PostgreSQL keeps.)
        let empty_here = t.kind == BackendKind::Sqlite && is_derived(table);
        assert!(
            *n > 0 || empty_here,
            "{table} has rows in both orgs before the purge"
        );
    }
    // A job of Acme's that must never run once the org is gone.
    let acme_job = enqueue(
        db,
        &a,
        "test.note",
        json!({"title": "late", "expect_org": d.acme}),
    )
    .await;

    // A purge refuses an org that is not marked for deletion.
    let early = {
        let mut tx = db.global(Mode::Write).await.unwrap();
        let id = jobs::enqueue_system(
            &mut tx,
            jobs::ORG_PURGE,
            json!({"org_id": d.acme}),
            jobs::Options::default(),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        id
    };
    let w = Worker::new(e.ctx.clone(), note_registry(), fast());
    // (Drain everything else first: invitation emails, exports, the note job.)
    jobs::cancel(db, acme_job).await.unwrap();
    let out = w.run_until_idle().await;
    let Outcome::Dead(err) = outcome_of(&out, early) else {
        panic!("{out:?}")
    };
    assert!(err.contains("not marked for deletion"), "{err}");
    let acme_before = counts(&t, d.acme).await;
    let globex_before = counts(&t, d.globex).await;

    // Delete Acme (what DELETE /v1/orgs/acme does), then let the worker purge it.
    {
        let mut tx = db.write(&a).await.unwrap();
        orgs::schedule_deletion(&mut tx).await.unwrap();
        tx.commit().await.unwrap();
    }
    let out = w.run_until_idle().await;
    assert!(out.iter().all(|(_, o)| *o == Outcome::Done), "{out:?}");
    let zero: Vec<(&str, i64)> = tenant_tables().into_iter().map(|t| (t, 0)).collect();
    assert_eq!(counts(&t, d.acme).await, zero, "every row of Acme is gone");
    assert_eq!(
        counts(&t, d.globex).await,
        globex_before,
        "Globex is untouched"
    );
    assert_eq!(
        t.owner_count("orgs", &format!("id = '{}'", d.acme)).await,
        0
    );
    if t.kind == BackendKind::Postgres {
        // Its placement of its own, if it had one (ORGWALL_TEST_PLACEMENTS), went with it.
        assert_eq!(
            t.owner_count(
                "pg_namespace",
                &format!(
                    "nspname = '{}'",
                    orgwall_store::placement::schema_name(d.acme)
                )
            )
            .await,
            0
        );
        assert_eq!(
            t.owner_count(
                "pg_database",
                &format!(
                    "datname = '{}'",
                    orgwall_store::placement::database_name(d.acme)
                )
            )
            .await,
            0
        );
    } else {
        // Its file of its own, if it had one (ORGWALL_TEST_PLACEMENTS), went with it.
        let dir = std::path::Path::new(&t.url).parent().unwrap().join("orgs");
        let name = orgwall_store::placement::database_name(d.acme);
        for suffix in ["db", "db-wal", "db-shm"] {
            assert!(!dir.join(format!("{name}.{suffix}")).exists(), "{suffix}");
        }
    }
    assert_eq!(
        t.owner_count("jobs", &format!("org_id = '{}'", d.acme))
            .await,
        0
    );
    assert_eq!(
        t.owner_count("outbox", &format!("org_id = '{}'", d.acme))
            .await,
        0
    );
    assert_eq!(
        t.owner_count("job_queues", &format!("queue = '{}'", d.acme))
            .await,
        0
    );
    assert!(!e.dir.path().join("files").join(d.acme.to_string()).exists());
    assert!(!e.ctx.exports.org_dir(d.acme).exists());
    assert!(e
        .dir
        .path()
        .join("files")
        .join(d.globex.to_string())
        .exists());
    assert!(e.ctx.exports.org_dir(d.globex).join("old.tar.gz").exists());
    assert!(acme_before
        .iter()
        .all(|(table, n)| *n > 0 || (t.kind == BackendKind::Sqlite && is_derived(table))));
    // The purge was audited in the org before it disappeared, and recorded in its job.
    let purge = jobs::list(
        db,
        &jobs::ListFilter {
            kind: Some(jobs::ORG_PURGE.into()),
            status: Some("done".into()),
            ..Default::default()
        },
        10,
    )
    .await
    .unwrap();
    assert_eq!(purge.len(), 1);
    assert_eq!(purge[0].payload["org_id"], json!(d.acme));

    // Idempotent: a second purge of the same org is done at once.
    let again = {
        let mut tx = db.global(Mode::Write).await.unwrap();
        let id = jobs::enqueue_system(
            &mut tx,
            jobs::ORG_PURGE,
            json!({"org_id": d.acme}),
            jobs::Options::default(),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        id
    };
    let out = w.run_until_idle().await;
    assert_eq!(outcome_of(&out, again), Outcome::Done);
    assert_eq!(counts(&t, d.globex).await, globex_before);
    // Globex still works.
    let mut tx = db.write(&b).await.unwrap();
    notes::create(&mut tx, "still here", "").await.unwrap();
    tx.commit().await.unwrap();
});

both!(
    concurrent_claims_never_share_a_job,
    |t: TestDb| async move {
        let db = &t.db;
        let d = Demo::load(db).await;
        let (a, b) = (d.alice_in_acme(db).await, d.bob_in_globex(db).await);
        for scope in [&a, &b] {
            let mut tx = db.write(scope).await.unwrap();
            for _ in 0..100 {
                jobs::enqueue(&mut tx, "test.noop", json!({}))
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();
        }
        // Four claimers at once (PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite: one writer).
        let claimers = (0..4).map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(c) = jobs::claim(&db, Duration::from_secs(30)).await.unwrap() {
                    got.push(c.id);
                }
                got
            })
        });
        let mut all: Vec<JobId> = Vec::new();
        for h in claimers {
            all.extend(h.await.unwrap());
        }
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!((n, all.len()), (200, 200), "every job claimed exactly once");
        assert_eq!(
            t.owner_count("job_queues", "pending = 200 OR pending = 100")
                .await,
            2,
            "running jobs still count as pending"
        );
    }
);

/// `SELECT count(*) ...`'s answer.
async fn count(tx: &mut orgwall_store::Tx, sql: &str) -> i64 {
    tx.query_one(sql, &[]).await.unwrap().get(0).unwrap()
}

// The fairness queues answer only to the job system (issue 15; PostgreSQL migration
// 0007, SQLite 0008): a tenant transaction sees no org's counts, changes none and adds
// none, on SQLite not even around the view, yet its own enqueued job is still counted
// and the worker still claims fairly.
both!(
    job_queues_answer_only_to_the_job_system,
    |t: TestDb| async move {
        let db = &t.db;
        let d = Demo::load(db).await;
        let a = d.alice_in_acme(db).await;
        let b = d.bob_in_globex(db).await;
        enqueue(db, &a, "test.noop", json!({})).await;
        enqueue(db, &b, "test.noop", json!({})).await;
        let counted = |org: OrgId| format!("queue = '{org}' AND pending = 1");
        let table = "job_queues";
        assert_eq!(t.owner_count(table, &counted(d.acme)).await, 1);
        assert_eq!(t.owner_count(table, &counted(d.globex)).await, 1);

        let mut tx = db.write(&a).await.unwrap();
        let seen = count(tx.raw(), "SELECT count(*) FROM job_queues").await;
        assert_eq!(seen, 0, "a tenant sees no queue, not even its own");
        assert_eq!(
            tx.execute("UPDATE job_queues SET pending = 0", &[])
                .await
                .unwrap(),
            0
        );
        assert_eq!(tx.execute("DELETE FROM job_queues", &[]).await.unwrap(), 0);
        let e = tx
            .execute(
                "INSERT INTO job_queues (queue, pending) VALUES ($1, 0)",
                params![d.globex],
            )
            .await;
        assert!(e.is_err(), "a tenant added a queue");
        drop(tx);
        // Around the view (SQLite's base table; no such table on PostgreSQL): refused.
        for sql in [
            "DELETE FROM job_queues_rows",
            "UPDATE job_queues_rows SET pending = 0",
            "SELECT count(*) FROM job_queues_rows",
        ] {
            let mut tx = db.write(&a).await.unwrap();
            assert!(tx.execute(sql, &[]).await.is_err(), "{sql}");
        }
        // A global transaction (no system name) sees none either.
        let mut g = db.global(Mode::Read).await.unwrap();
        let n = count(&mut g, "SELECT count(*) FROM job_queues").await;
        assert_eq!(n, 0);
        drop(g);
        // Nothing changed, and the worker still takes one job from each org in turn.
        assert_eq!(t.owner_count(table, &counted(d.acme)).await, 1);
        assert_eq!(t.owner_count(table, &counted(d.globex)).await, 1);
        let lease = Duration::from_secs(30);
        let first = jobs::claim(db, lease).await.unwrap().unwrap();
        let second = jobs::claim(db, lease).await.unwrap().unwrap();
        assert_ne!(first.org_id, second.org_id, "one job of each org");
        let mut s = db.system("jobs", Mode::Read).await.unwrap();
        let running = count(&mut s, "SELECT count(*) FROM job_queues WHERE pending = 1").await;
        assert_eq!(running, 2, "running jobs are still pending in their queues");
        drop(s);
        // SQLite: the doctor names the base table when its view is gone.
        if t.kind == BackendKind::Sqlite {
            assert!(db.doctor().await.unwrap().is_empty());
            t.owner_exec("DROP VIEW job_queues").await;
            let found = db.doctor().await.unwrap();
            assert!(
                found
                    .iter()
                    .any(|v| v.object == "job_queues_rows" && v.problem.contains("app_system()")),
                "{found:?}"
            );
        }
    }
);
