//! The binary end to end: the embedded default serves, and bad input gives one clear line.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn orgwall() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_orgwall"));
    c.env_remove("DATABASE_URL")
        .env_remove("ORGWALL_DATA_DIR")
        .env_remove("ORGWALL_S3_BUCKET");
    c
}

/// Runs and returns (success, stdout, stderr).
fn run(args: &[&str]) -> (bool, String, String) {
    let out = orgwall().args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_one_error_line(args: &[&str], needle: &str) {
    let (ok, _, err) = run(args);
    assert!(!ok, "{args:?} should fail");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(lines[0].contains(needle), "{needle:?} not in {err}");
}

#[test]
fn bad_database_urls_are_named() {
    assert_one_error_line(
        &["migrate", "--database-url", "mysql://root@localhost/x"],
        "unsupported scheme \"mysql\"",
    );
    assert_one_error_line(
        &["migrate", "--database-url", "postgres://u@h:notaport/x"],
        "invalid database URL",
    );
    assert_one_error_line(
        &[
            "migrate",
            "--database-url",
            "postgres://postgres@127.0.0.1:1/nowhere",
        ],
        "cannot connect to PostgreSQL at 127.0.0.1:1/nowhere",
    );
}

#[test]
fn a_bad_public_url_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    for (cmd, url, why) in [
        ("worker", "ftp://mail.example.test", "http:// or https://"),
        ("serve", "https://app.example.test/?next=1", "query"),
        ("worker", "app.example.test", "relative URL"),
    ] {
        let out = orgwall()
            .args([cmd, "--public-url", url])
            .current_dir(dir.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{cmd} --public-url {url}");
        assert!(
            err.contains("--public-url") && err.contains("invalid public URL") && err.contains(why),
            "{err}"
        );
    }
    assert!(
        !dir.path().join("orgwall-data").exists(),
        "nothing was created"
    );
}

#[test]
fn an_unusable_data_dir_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    let bad = file.join("data");
    assert_one_error_line(
        &["migrate", "--data-dir", bad.to_str().unwrap()],
        "cannot create data directory",
    );
}

#[test]
fn bad_s3_settings_are_named_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    for cmd in ["serve", "worker"] {
        let with = |extra: &[&'static str]| {
            let mut v = vec![cmd, "--data-dir", data, "--s3-bucket", "b"];
            v.extend_from_slice(extra);
            v
        };
        assert_one_error_line(
            &with(&["--s3-endpoint", "127.0.0.1:9000"]),
            "S3 file store: the endpoint \"127.0.0.1:9000\" is not an http(s) URL",
        );
        let nowhere = [
            "--s3-endpoint",
            "http://127.0.0.1:1",
            "--s3-access-key-id",
            "k",
        ];
        assert_one_error_line(
            &with(&nowhere),
            "the access key id and the secret access key go together",
        );
        // Nothing answers there: one line naming the bucket and the endpoint.
        assert_one_error_line(
            &with(&[&nowhere[..], &["--s3-secret-access-key", "s"]].concat()),
            "S3 bucket \"b\" at http://127.0.0.1:1 is not usable",
        );
    }
    // No database was touched.
    assert!(!dir.path().join("data").exists());
}

#[test]
fn a_newer_database_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    assert!(run(&["migrate", "--data-dir", d]).0);
    let c = rusqlite::Connection::open(dir.path().join("orgwall.db")).unwrap();
    c.execute("INSERT INTO schema_migrations (module, version, name, checksum, applied_at) VALUES ('orgwall', 77, 'x', 'y', 0)", [])
        .unwrap();
    assert_one_error_line(
        &["migrate", "--data-dir", d],
        "schema is at version 77, newer than this build supports",
    );
    let n: i64 = c
        .query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0))
        .unwrap();
    let registered: usize = orgwall_store::catalog()
        .modules()
        .iter()
        .map(|m| m.sqlite.len())
        .sum();
    assert_eq!(n, registered as i64 + 1);
}

#[test]
fn doctor_exits_non_zero_naming_the_violation() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (ok, out, _) = run(&["migrate", "--data-dir", d]);
    assert!(ok, "{out}");
    let (ok, out, _) = run(&["doctor", "--data-dir", d]);
    assert!(ok, "{out}");
    assert!(out.contains("every wall stands"));
    let c = rusqlite::Connection::open(dir.path().join("orgwall.db")).unwrap();
    c.execute_batch("CREATE TABLE widgets (id TEXT PRIMARY KEY)")
        .unwrap();
    let (ok, out, _) = run(&["doctor", "--data-dir", d]);
    assert!(!ok);
    assert!(
        out.contains("violation: widgets: tenant table has no org_id column"),
        "{out}"
    );
}

#[test]
fn serve_demo_on_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = orgwall()
        .args([
            "serve",
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "text",
        ])
        .current_dir(dir.path())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("server exited before listening")
            .unwrap();
        if let Some(rest) = line.strip_prefix("orgwall listening on ") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    // With no configuration the data lands in ./orgwall-data.
    assert!(dir.path().join("orgwall-data/orgwall.db").exists());

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let r = http.get(format!("{addr}/healthz")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers().contains_key("x-request-id"));
        let r = http
            .get(format!("{addr}/readyz"))
            .header("x-request-id", "abc-123")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-request-id"], "abc-123");
        let r = http
            .get(format!("{addr}/v1/no/such/route"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["code"], "not_found");
        assert_eq!(body["status"], 404);
        // The console answers `/` (to its login page) on the same origin.
        let r = http.get(format!("{addr}/login")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
    });
    child.kill().unwrap();
    let _ = child.wait();

    // The demo data is there: a second seed finds it and changes nothing.
    let (ok, out, _) = run(&[
        "seed",
        "--demo",
        "--data-dir",
        dir.path().join("orgwall-data").to_str().unwrap(),
    ]);
    assert!(ok);
    assert!(out.contains("already present"), "{out}");
}

/// A target's connection budget from the command line (PostgreSQL): given at `add`,
/// changed and cleared by `target set`, shown by `target list`; a bad value is one line
/// and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_connection_budget_is_set_and_shown() {
    let t = orgwall_testkit::TestDb::new(orgwall_store::BackendKind::Postgres).await;
    let url = t.url.clone();
    let cli = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--database-url", url.as_str()]);
        run(&all)
    };
    let (ok, out, err) = cli(&[
        "placement",
        "target",
        "add",
        "here",
        &url,
        "--max-connections",
        "8",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("at most 8 connections per instance"), "{out}");
    for bad in ["0", "lots", "10001"] {
        let (ok, _, err) = cli(&[
            "placement",
            "target",
            "set",
            "here",
            "--max-connections",
            bad,
        ]);
        assert!(!ok, "{bad} accepted");
        assert!(
            err.contains("max connections") || err.contains("--max-connections"),
            "{err}"
        );
    }
    let (ok, _, err) = cli(&[
        "placement",
        "target",
        "set",
        "nowhere",
        "--max-connections",
        "3",
    ]);
    assert!(!ok && err.contains("no target named \"nowhere\""), "{err}");
    let (_, out, _) = cli(&["placement", "target", "list"]);
    assert!(out.contains("at most 8 connections per instance"), "{out}");
    let (ok, out, err) = cli(&[
        "placement",
        "target",
        "set",
        "here",
        "--max-connections",
        "3",
    ]);
    assert!(ok && out.contains("at most 3 connections"), "{out}{err}");
    let (ok, out, err) = cli(&[
        "placement",
        "target",
        "set",
        "here",
        "--max-connections",
        "default",
    ]);
    assert!(ok && out.contains("--db-max-connections"), "{out}{err}");
    let (_, out, _) = cli(&["placement", "target", "list"]);
    assert!(
        out.contains("here") && out.contains("the instance's --db-max-connections"),
        "{out}"
    );
}
