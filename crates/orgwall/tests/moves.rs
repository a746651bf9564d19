//! Issue 13 end to end: `orgwall placement move ORG --to KIND --wait` killed with SIGKILL in
//! each phase of the move (prepare, copy, catch_up, cleanup) while a writer works on the
//! org; the move's job, run by a separate `orgwall worker` process, resumes it to its end:
//! every acknowledged write is there once, nothing of the move is left. The server is a
//! throwaway cluster with `wal_level = logical`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use orgwall_store::repo::{projects, tickets};
use orgwall_store::{access, Db, DbConfig};
use orgwall_testkit::cluster::PgCluster;
use orgwall_testkit::Demo;
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn orgwall(url: &str, data: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_orgwall"));
    c.env_remove("ORGWALL_S3_BUCKET")
        .env("DATABASE_URL", url)
        .env("ORGWALL_DATA_DIR", data);
    c
}

fn run(url: &str, data: &std::path::Path, args: &[&str]) -> String {
    let out = orgwall(url, data).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "orgwall {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A data directory with the demo seeded on the embedded default (`seed --demo`: Globex
/// in a file of its own), its URL, and a handle on it with a pool of `pool_size`.
async fn sqlite_demo(pool_size: usize) -> (tempfile::TempDir, String, Db) {
    let data = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", data.path().join("orgwall.db").display());
    run(&url, data.path(), &["seed", "--demo"]);
    let db = Db::open(
        &DbConfig::Sqlite {
            path: data.path().join("orgwall.db"),
            pool_size,
        },
        orgwall_store::catalog(),
    )
    .await
    .unwrap();
    (data, url, db)
}

/// Starts `orgwall placement move globex --to KIND --wait` and SIGKILLs it as soon as it
/// says it has entered `phase`.
fn kill_in(url: &str, data: &std::path::Path, to: &str, phase: &str) {
    let mut child = orgwall(url, data)
        .args(["placement", "move", "globex", "--to", to, "--wait"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        let entered =
            line.ends_with(&format!(": {phase}")) || line.contains(&format!(": {phase} "));
        seen.push(line);
        if entered {
            std::thread::sleep(Duration::from_millis(10));
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return;
        }
    }
    let _ = child.wait();
    panic!("the move never said it entered {phase}: {seen:?}");
}

// The same on the embedded default: `seed --demo` puts Globex in a file of its own; it
// moves to the shared tables and back with the command SIGKILLed in each phase, the job
// resuming it in a worker process, a writer working on it throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_move_killed_in_each_phase_is_resumed_by_its_job() {
    let (data, url, db) = sqlite_demo(4).await;
    killed_and_resumed(
        &db,
        &url,
        data.path(),
        &[
            ("shared", "copy", "shared"),
            ("database", "catch_up", "database"),
            ("shared", "cleanup", "shared"),
            ("database", "prepare", "database"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_killed_in_each_phase_is_resumed_by_its_job() {
    let cluster = PgCluster::start(&["wal_level = logical"]);
    let (admin, conn) = tokio_postgres::connect(&cluster.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    admin
        .batch_execute("CREATE DATABASE orgwall_k")
        .await
        .unwrap();
    let url = cluster.url_of("orgwall_k");
    let data = tempfile::tempdir().unwrap();
    run(&url, data.path(), &["seed", "--demo"]);
    let db = Db::open(
        &DbConfig::Postgres {
            url: url.clone(),
            app_role: orgwall_store::db::DEFAULT_APP_ROLE.into(),
            pool_size: 4,
            placement_budget: None,
        },
        orgwall_store::catalog(),
    )
    .await
    .unwrap();
    killed_and_resumed(
        &db,
        &url,
        data.path(),
        &[
            ("database", "copy", "database"),
            ("schema", "catch_up", "schema"),
            ("shared", "cleanup", "shared"),
            ("database", "prepare", "database"),
        ],
    )
    .await;
}

/// Runs `plan` (move to, kill in phase, lands in) against `db` with a writer working on
/// Globex and a worker process resuming what the kills leave.
async fn killed_and_resumed(
    db: &Db,
    url: &str,
    data: &std::path::Path,
    plan: &[(&str, &str, &str)],
) {
    let d = Demo::load(db).await;
    // A writer on Globex the whole time (through the library, as a server would).
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<orgwall_core::TicketId>>> = Default::default();
    let writer = {
        let (db, stop, acked) = (db.clone(), stop.clone(), acked.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let r: orgwall_core::Result<orgwall_core::TicketId> = async {
                    let scope = access::verify_member(&db, d.bob, d.globex).await?;
                    let mut tx = db.write(&scope).await?;
                    let project = projects::list(&mut tx, 1, None).await?[0].id;
                    let t = tickets::create(
                        &mut tx,
                        tickets::NewTicket {
                            project_id: project,
                            title: &format!("k{i}"),
                            body: "written while movers die",
                            assignee_id: None,
                        },
                    )
                    .await?;
                    tx.commit().await?;
                    Ok(t.id)
                }
                .await;
                match r {
                    Ok(id) => acked.lock().unwrap().push(id),
                    // Never refused: a write waits at the fence and follows its org.
                    Err(e) => panic!("write {i}: {e}"),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    for &(to, phase, lands) in plan {
        let from = placed_kind(db, d.globex).await;
        kill_in(url, data, to, phase);
        // The job (queued when the move started) resumes it in a worker process, started
        // only now: one running before would take the job before the command's own run
        // (the command then follows it, and killing it would kill no mover).
        let mut worker = orgwall(url, data)
            .args(["worker"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        loop {
            let list = run(url, data, &["placement", "list"]);
            if !list.contains("moving") {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "the move from {from} to {to} never finished: {list}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        worker.kill().unwrap();
        worker.wait().unwrap();
        let now = placed_kind(db, d.globex).await;
        assert_eq!(now, lands, "killed in {phase}");
        let doctor = orgwall(url, data).args(["doctor"]).output().unwrap();
        assert!(
            doctor.status.success(),
            "after a kill in {phase}: {}",
            String::from_utf8_lossy(&doctor.stdout)
        );
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    // Every acknowledged ticket is there once.
    let scope = access::verify_member(db, d.bob, d.globex).await.unwrap();
    let mut tx = db.read(&scope).await.unwrap();
    let mut ids = HashSet::new();
    let mut after = None;
    loop {
        let page = tickets::list(&mut tx, &tickets::TicketFilter::default(), 500, after)
            .await
            .unwrap();
        for t in &page {
            assert!(ids.insert(t.id), "ticket {} twice", t.id);
        }
        if page.len() < 500 {
            break;
        }
        after = page.last().map(|t| t.id.uuid());
    }
    tx.commit().await.unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 20, "{} writes", acked.len());
    for id in &acked {
        assert!(ids.contains(id), "acknowledged ticket {id} was lost");
    }
    let jobs = run(url, data, &["jobs", "list"]);
    assert!(jobs.contains("placement.move"), "{jobs}");
    // A pace of nothing is refused, nothing recorded; a paced move runs to its end.
    let before = placed_kind(db, d.globex).await;
    let to = if before == "shared" {
        "database"
    } else {
        "shared"
    };
    let paced = |rate: &'static str| {
        [
            "placement",
            "move",
            "globex",
            "--to",
            to,
            "--copy-rate",
            rate,
            "--wait",
        ]
    };
    for rate in ["0", "0.001", "fast"] {
        let bad = orgwall(url, data).args(paced(rate)).output().unwrap();
        assert!(!bad.status.success());
        let err = String::from_utf8_lossy(&bad.stderr);
        assert!(
            err.contains("copy-rate") && err.contains("megabytes per second"),
            "{err}"
        );
    }
    assert!(!run(url, data, &["placement", "list"]).contains("moving"));
    // A pace in decimals (half a megabyte a second).
    run(url, data, &paced("0.5"));
    assert_eq!(placed_kind(db, d.globex).await, to);
}

// `placement move --wait` when another process runs the move (a worker that took its job
// first; here the test holding the SQLite mover's lock): the command follows its progress,
// runs the move itself once the other stops, and fails if the move was aborted meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_move_follows_the_process_running_it() {
    let (data, url, db) = sqlite_demo(2).await;
    let d = Demo::load(&db).await;
    let lock_path = data
        .path()
        .join("orgs")
        .join(format!(".move-{}.lock", d.globex.uuid().simple()));
    for (to, abort) in [("shared", false), ("database", true), ("database", false)] {
        let from = placed_kind(&db, d.globex).await;
        run(
            &url,
            data.path(),
            &["placement", "move", "globex", "--to", to],
        );
        // Another mover holds the move.
        std::fs::create_dir_all(lock_path.parent().unwrap()).unwrap();
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .unwrap();
        lock.try_lock().unwrap();
        let mut child = orgwall(&url, data.path())
            .args(["placement", "move", "globex", "--wait"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = Vec::new();
        loop {
            let line = lines.next().unwrap_or_else(|| panic!("{seen:?}")).unwrap();
            let following = line.contains("following it");
            seen.push(line);
            if following {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            placed_kind(&db, d.globex).await,
            from,
            "nothing ran meanwhile"
        );
        if abort {
            let said = run(
                &url,
                data.path(),
                &["placement", "move", "globex", "--abort", "--copy-rate", "1"],
            );
            assert!(said.contains("asked to abort"), "{said}");
        }
        drop(lock); // the other mover stops
        let _rest: Vec<_> = lines.collect();
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        if abort {
            assert!(!out.status.success(), "{stdout}");
            assert_eq!(placed_kind(&db, d.globex).await, from);
        } else {
            assert!(out.status.success(), "{seen:?} {stdout}");
            assert!(stdout.contains("moved, now"), "{stdout}");
            assert_eq!(placed_kind(&db, d.globex).await, to);
        }
        assert!(!run(&url, data.path(), &["placement", "list"]).contains("moving"));
        // The mover that took over removed its lock file (none is left per org moved).
        assert!(!lock_path.exists(), "{} left behind", lock_path.display());
    }
}

async fn placed_kind(db: &Db, org: orgwall_core::OrgId) -> String {
    orgwall_store::placement::show(db, org).await.unwrap().kind
}
