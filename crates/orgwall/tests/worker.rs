//! The real `orgwall worker` process, killed with SIGKILL in the middle of a job: a second
//! worker process runs the job again once the dead one's lease expires, and in effect it
//! is done exactly once, with nothing lost. The job is an email delivery to an SMTP sink
//! the test runs, which reads the message in full and then holds it unanswered, so the
//! first worker is caught between sending and recording the send.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use orgwall_store::jobs::{self, ListFilter};
use orgwall_store::repo::outbox;
use orgwall_store::{BackendKind, Mode};
use orgwall_testkit::smtp::SmtpSink;
use orgwall_testkit::TestDb;
use std::future::Future;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A child process, killed (SIGKILL) and reaped when dropped.
struct Proc(Child);

impl Proc {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn database_url(t: &TestDb) -> String {
    match t.kind {
        BackendKind::Postgres => t.url.clone(),
        BackendKind::Sqlite => format!("sqlite:{}", t.url),
    }
}

/// `orgwall worker` with one slot and a two-second lease, sending to `sink`.
fn worker(t: &TestDb, sink: &SmtpSink, data_dir: &Path) -> Proc {
    let logs = if std::env::var_os("TEST_LOG").is_some() {
        Stdio::inherit()
    } else {
        Stdio::null()
    };
    let child = Command::new(env!("CARGO_BIN_EXE_orgwall"))
        .env_remove("DATABASE_URL")
        .env_remove("ORGWALL_DATA_DIR")
        .env_remove("ORGWALL_SMTP_URL")
        .args(["worker", "--log-format", "text", "--worker-slots", "1"])
        .args(["--worker-lease-secs", "2"])
        .arg("--database-url")
        .arg(database_url(t))
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--smtp-url")
        .arg(sink.url())
        .stdout(Stdio::null())
        .stderr(logs)
        .spawn()
        .unwrap();
    Proc(child)
}

/// Waits for `f`, failing the test (instead of hanging it) if it never happens.
async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), f)
        .await
        .unwrap_or_else(|_| panic!("gave up waiting: {what}"))
}

async fn all_sent(t: &TestDb) {
    loop {
        let pending = outbox::list(&t.db, Some("pending"), None, 100)
            .await
            .unwrap();
        let unfinished = jobs::list(&t.db, &ListFilter::default(), 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|j| j.status != "done")
            .count();
        if pending.is_empty() && unfinished == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn killed_mid_delivery(kind: BackendKind) {
    orgwall_testkit::init_logs();
    let t = TestDb::new(kind).await;
    let dir = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start().await;
    sink.hold_next(1);
    let to: Vec<String> = (0..3).map(|i| format!("user{i}@example.test")).collect();
    let mut tx = t.db.global(Mode::Write).await.unwrap();
    for r in &to {
        outbox::enqueue(&mut tx, None, r, "hello", "a body")
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();

    let mut first = worker(&t, &sink, dir.path());
    within("the first worker's delivery", sink.wait_held(1)).await;
    // Caught mid-job: attempt 1 is running, the sink has the bytes but has not said 250.
    let running = jobs::list(
        &t.db,
        &ListFilter {
            status: Some("running".into()),
            ..ListFilter::default()
        },
        10,
    )
    .await
    .unwrap();
    assert_eq!(running.len(), 1, "{running:?}");
    let held = running[0].id;
    assert_eq!(running[0].attempts, 1);
    first.kill();
    assert!(sink.accepted().is_empty());
    assert_eq!(
        jobs::get(&t.db, held).await.unwrap().status,
        "running",
        "the killed worker recorded nothing"
    );

    let mut second = worker(&t, &sink, dir.path());
    within("the second worker's deliveries", all_sent(&t)).await;
    second.kill();

    let mut got: Vec<String> = sink.accepted().iter().flat_map(|m| m.to.clone()).collect();
    got.sort();
    assert_eq!(got, to, "every message delivered exactly once");
    let job = jobs::get(&t.db, held).await.unwrap();
    assert_eq!((job.status.as_str(), job.attempts), ("done", 2));
    for j in jobs::list(&t.db, &ListFilter::default(), 100)
        .await
        .unwrap()
    {
        if j.id != held {
            assert_eq!((j.status.as_str(), j.attempts), ("done", 1), "{j:?}");
        }
    }
    for m in outbox::list(&t.db, None, None, 100).await.unwrap() {
        assert_eq!(m.status, "sent", "{m:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_process_loses_nothing_and_repeats_nothing_postgres() {
    killed_mid_delivery(BackendKind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_process_loses_nothing_and_repeats_nothing_sqlite() {
    killed_mid_delivery(BackendKind::Sqlite).await;
}
