//! Exports and the org purge over HTTP, on both backends: an export archive holds exactly
//! one org's rows and files, a failed build leaves nothing and says why, and deleting an
//! org shuts it at once and purges it in a job.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use orgwall_core::{ExportId, FileId, OrgId};
use orgwall_http::AppState;
use orgwall_store::access::OrgScope;
use orgwall_store::jobs::{self, mail, JobCtx, Registry, Worker, WorkerConfig};
use orgwall_store::{params, Mode};
use orgwall_testkit::{
    both, exported_tables, is_derived, store_file, tenant_tables, untar, Demo, TestDb, TestServer,
};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Env {
    s: TestServer,
    d: Demo,
    state: AppState,
    root: PathBuf,
    _dir: tempfile::TempDir,
}

async fn env(t: &TestDb, max_archive_bytes: Option<u64>) -> Env {
    let d = Demo::load(&t.db).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let mut state = AppState::with_files(t.db.clone(), root.join("files"));
    assert_eq!(state.exports.root(), root.join("exports"));
    state.exports = state.exports.clone().with_max_bytes(max_archive_bytes);
    let s = TestServer::with_state(state.clone()).await;
    Env {
        s,
        d,
        state,
        root,
        _dir: dir,
    }
}

fn worker(state: &AppState) -> Worker {
    Worker::new(
        JobCtx {
            db: state.db.clone(),
            files: state.files.clone(),
            exports: state.exports.clone(),
            mailer: Arc::new(mail::LogMailer),
        },
        Registry::builtin(),
        WorkerConfig {
            slots: 1,
            backoff_base: Duration::from_millis(20),
            backoff_max: Duration::from_millis(100),
            ..WorkerConfig::default()
        },
    )
}

/// Runs the worker until no job is queued or running any more, but for archive expiries
/// not yet due (they wait for their time).
async fn drain(state: &AppState) {
    let w = worker(state);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        w.run_until_idle().await;
        let now = orgwall_store::value::now();
        let busy = jobs::list(&state.db, &jobs::ListFilter::default(), 10_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|j| j.kind != jobs::EXPORT_EXPIRE || j.run_at <= now)
            .any(|j| j.status == "queued" || j.status == "running");
        if !busy {
            return;
        }
        assert!(Instant::now() < deadline, "jobs did not settle");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

async fn add_file(state: &AppState, scope: &OrgScope, bytes: &'static [u8]) -> FileId {
    store_file(&state.db, scope, state.files.as_ref(), "report.txt", bytes).await
}

async fn download(
    s: &TestServer,
    path: &str,
    token: &str,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let r = s
        .http
        .get(format!("{}{}", s.base, path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.bytes().await.unwrap().to_vec())
}

async fn counts(t: &TestDb, org: OrgId) -> Vec<i64> {
    let mut v = Vec::new();
    for tb in tenant_tables() {
        v.push(t.owner_count(tb, &format!("org_id = '{org}'")).await);
    }
    v
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

both!(
    an_export_holds_exactly_one_orgs_data,
    |t: TestDb| async move {
        let e = env(&t, None).await;
        let (s, d) = (&e.s, &e.d);
        let (acme, globex) = (d.acme, d.globex);
        let a = d.alice_in_acme(&t.db).await;
        let b = d.bob_in_globex(&t.db).await;
        let acme_file = add_file(&e.state, &a, b"acme's quarterly numbers").await;
        let globex_file = add_file(&e.state, &b, b"globex's secret plans").await;
        let alice = s.demo_login("alice@acme.test").await;
        let bob = s.demo_login("bob@globex.test").await;
        let carol = s.demo_login("carol@example.test").await;
        // An invitation and an API key in each org (the demo has none).
        for (org, tok) in [("acme", &alice), ("globex", &bob)] {
            let r = s
                .call(
                    "POST",
                    &format!("/v1/orgs/{org}/invitations"),
                    Some(tok),
                    &[],
                    Some(json!({"email": format!("new@{org}.test"), "role": "viewer"})),
                )
                .await;
            assert_eq!(r.status, 201, "{:?}", r.body);
            let r = s
                .call(
                    "POST",
                    &format!("/v1/orgs/{org}/api-keys"),
                    Some(tok),
                    &[],
                    Some(json!({"name": "ci", "role": "viewer"})),
                )
                .await;
            assert_eq!(r.status, 201, "{:?}", r.body);
        }

        // Only holders of exports:create may ask (a member may not).
        let r = s
            .call("POST", "/v1/orgs/acme/exports", Some(&carol), &[], None)
            .await;
        assert_eq!((r.status, r.code()), (403, "permission_denied"));
        let r = s
            .call("POST", "/v1/orgs/acme/exports", Some(&alice), &[], None)
            .await;
        assert_eq!(r.status, 202, "{:?}", r.body);
        assert_eq!(r.body["status"], "queued");
        let id = r.body["id"].as_str().unwrap().to_owned();
        // One at a time.
        let r = s
            .call(
                "POST",
                "/v1/exports",
                Some(&alice),
                &[("x-organization-id", "acme")],
                None,
            )
            .await;
        assert_eq!((r.status, r.code()), (409, "export_in_progress"));
        // Not ready yet.
        let r = s.get(&format!("/v1/orgs/acme/exports/{id}"), &alice).await;
        assert_eq!(
            (
                r.status,
                r.body["status"].as_str(),
                r.body["progress"].as_i64()
            ),
            (200, Some("queued"), Some(0))
        );
        let (st, _, _) = download(s, &format!("/v1/orgs/acme/exports/{id}/download"), &alice).await;
        assert_eq!(st, 409);
        // Another org sees nothing of it: not a member of acme; unknown in its own org.
        let r = s.get(&format!("/v1/orgs/acme/exports/{id}"), &bob).await;
        assert_eq!((r.status, r.code()), (403, "not_a_member"));
        let r = s.get(&format!("/v1/orgs/globex/exports/{id}"), &bob).await;
        assert_eq!((r.status, r.code()), (404, "not_found"));
        let (st, _, _) = download(s, &format!("/v1/orgs/globex/exports/{id}/download"), &bob).await;
        assert_eq!(st, 404);

        drain(&e.state).await;
        let r = s.get(&format!("/v1/orgs/acme/exports/{id}"), &alice).await;
        assert_eq!(
            (
                r.status,
                r.body["status"].as_str(),
                r.body["progress"].as_i64()
            ),
            (200, Some("done"), Some(100)),
            "{:?}",
            r.body
        );
        let l = s.get("/v1/orgs/acme/exports", &alice).await;
        assert_eq!(
            (l.status, l.body["items"][0]["id"].as_str()),
            (200, Some(id.as_str())),
            "{l:?}"
        );
        let l = s.get("/v1/orgs/globex/exports", &bob).await;
        assert_eq!(
            (l.status, l.body["items"].as_array().map(Vec::len)),
            (200, Some(0))
        );
        let (st, h, gz) =
            download(s, &format!("/v1/orgs/{acme}/exports/{id}/download"), &alice).await;
        assert_eq!(st, 200);
        assert_eq!(h["content-type"], "application/gzip");
        assert_eq!(r.body["size_bytes"].as_u64(), Some(gz.len() as u64));
        // Stored under the org's own prefix, by a server-made name.
        assert_eq!(
            files_under(&e.root.join("exports").join(acme.to_string())),
            vec![format!("{id}.tar.gz")]
        );

        let entries = untar(&gz);
        let manifest: Value = serde_json::from_slice(&entries["manifest.json"]).unwrap();
        assert_eq!(manifest["org_id"], json!(acme));
        // Every tenant table but the derived ones (the search terms, rebuilt from rows).
        for table in tenant_tables().into_iter().filter(|t| is_derived(t)) {
            let name = format!("tables/{table}.jsonl");
            assert!(!entries.contains_key(&name), "{name} is derived data");
        }
        let listed: Vec<&str> = manifest["tables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["table"].as_str().unwrap())
            .collect();
        let mut want = exported_tables();
        want.sort_unstable();
        assert_eq!(listed, want);
        for table in exported_tables() {
            let name = format!("tables/{table}.jsonl");
            let body = entries
                .get(&name)
                .unwrap_or_else(|| panic!("{name} is missing"));
            let rows: Vec<Value> = std::str::from_utf8(body)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert!(!rows.is_empty(), "{table} has rows");
            for row in &rows {
                assert_eq!(row["org_id"], json!(acme), "{table}: {row}");
                assert!(row.get("key_hash").is_none() && row.get("token_hash").is_none());
            }
            let stored = t.owner_count(table, &format!("org_id = '{acme}'")).await;
            if table == "audit_events" {
                // The export's own completion event is written after the dump.
                assert!(
                    rows.len() as i64 >= stored - 1 && rows.len() as i64 <= stored,
                    "{table}"
                );
            } else {
                assert_eq!(rows.len() as i64, stored, "{table}");
            }
        }
        assert_eq!(
            entries[&format!("files/{acme_file}")],
            b"acme's quarterly numbers"
        );
        assert!(!entries.contains_key(&format!("files/{globex_file}")));
        // Not one byte names the other org.
        for (name, bytes) in &entries {
            let text = String::from_utf8_lossy(bytes);
            assert!(!text.contains(&globex.to_string()), "{name} names globex");
            assert!(
                !text.contains(&globex_file.to_string()),
                "{name} names globex's file"
            );
            assert!(!text.contains("secret plans"), "{name}");
        }
        // Audited: requested by alice, entered by the job, completed.
        for action in [
            "export.requested",
            "system.scope_entered",
            "export.completed",
        ] {
            assert_eq!(
                t.owner_count(
                    "audit_events",
                    &format!("org_id = '{acme}' AND action = '{action}'")
                )
                .await,
                1,
                "{action}"
            );
        }
    }
);

/// Asks for an export of `org` and builds it; returns its id.
async fn built_export(e: &Env, org: &str, token: &str) -> String {
    let r =
        e.s.call(
            "POST",
            &format!("/v1/orgs/{org}/exports"),
            Some(token),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    drain(&e.state).await;
    r.body["id"].as_str().unwrap().to_owned()
}

both!(
    an_expired_export_is_refused_then_deleted_in_its_own_org,
    |t: TestDb| async move {
        let e = env(&t, None).await;
        let (s, d) = (&e.s, &e.d);
        let alice = s.demo_login("alice@acme.test").await;
        let bob = s.demo_login("bob@globex.test").await;
        let id = built_export(&e, "acme", &alice).await;
        let gid = built_export(&e, "globex", &bob).await;
        let eid: ExportId = id.parse().unwrap();
        let r = s.get(&format!("/v1/orgs/acme/exports/{id}"), &alice).await;
        assert_eq!(r.body["status"], "done", "{:?}", r.body);
        // Kept for the default 7 days.
        let at = |k: &str| {
            chrono::DateTime::parse_from_rfc3339(r.body[k].as_str().unwrap())
                .unwrap()
                .with_timezone(&chrono::Utc)
        };
        let kept = at("expires_at") - at("finished_at");
        assert!(
            kept <= chrono::Duration::days(7)
                && kept > chrono::Duration::days(7) - chrono::Duration::seconds(60),
            "{kept:?}"
        );
        let archive = e.state.exports.path_of(d.acme, eid);
        let (st, _, _) = download(s, &format!("/v1/orgs/acme/exports/{id}/download"), &alice).await;
        assert_eq!(st, 200);
        // Each archive's expiry is a job of its own org, waiting for its time.
        let expiries = jobs::list(
            &t.db,
            &jobs::ListFilter {
                kind: Some(jobs::EXPORT_EXPIRE.into()),
                ..jobs::ListFilter::default()
            },
            10,
        )
        .await
        .unwrap();
        let mut orgs: Vec<_> = expiries
            .iter()
            .map(|j| (j.org_id, j.status.clone()))
            .collect();
        orgs.sort();
        let mut want = vec![
            (Some(d.acme), "queued".to_string()),
            (Some(d.globex), "queued".to_string()),
        ];
        want.sort();
        assert_eq!(orgs, want);
        assert!(expiries
            .iter()
            .all(|j| j.run_at > orgwall_store::value::now() + chrono::Duration::days(6)));

        // Time passes for acme's archive: its expiry (and its job's) moves into the past.
        let past = orgwall_store::value::now() - chrono::Duration::seconds(1);
        let a = d.alice_in_acme(&t.db).await;
        let mut tx = t.db.write(&a).await.unwrap();
        tx.data()
            .execute(
                "UPDATE exports SET expires_at = $3 WHERE org_id = $1 AND id = $2",
                params![d.acme, eid, past],
            )
            .await
            .unwrap();
        tx.commit().await.unwrap();
        // Refused from that moment on, before any job has run.
        let r = s.get(&format!("/v1/orgs/acme/exports/{id}"), &alice).await;
        assert_eq!(r.body["status"], "expired", "{:?}", r.body);
        let r = s
            .get(&format!("/v1/orgs/acme/exports/{id}/download"), &alice)
            .await;
        assert_eq!(
            (r.status, r.code()),
            (410, "export_expired"),
            "{:?}",
            r.body
        );
        assert_eq!(r.headers["content-type"], "application/problem+json");
        assert!(archive.exists(), "the bytes wait for the job");

        let mut tx = t.db.system("jobs", Mode::Write).await.unwrap();
        tx.execute(
            "UPDATE jobs SET run_at = $1 WHERE kind = 'export.expire' AND org_id = $2",
            params![past, d.acme],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        drain(&e.state).await;
        assert!(!archive.exists(), "the expired archive is deleted");
        assert!(files_under(&e.root.join("exports").join(d.acme.to_string())).is_empty());
        let r = s
            .get(&format!("/v1/orgs/acme/exports/{id}/download"), &alice)
            .await;
        assert_eq!((r.status, r.code()), (410, "export_expired"));
        // Inside acme's own scope, audited there; globex's archive is untouched.
        let acme = d.acme;
        assert_eq!(
            t.owner_count(
                "audit_events",
                &format!("org_id = '{acme}' AND action = 'export.expired'")
            )
            .await,
            1
        );
        assert_eq!(
            t.owner_count(
                "audit_events",
                &format!("org_id = '{acme}' AND action = 'system.scope_entered'")
            )
            .await,
            2,
            "the build and the expiry each entered acme"
        );
        let globex = d.globex;
        assert_eq!(
            t.owner_count(
                "audit_events",
                &format!("org_id = '{globex}' AND action = 'export.expired'")
            )
            .await,
            0
        );
        let (st, _, _) =
            download(s, &format!("/v1/orgs/globex/exports/{gid}/download"), &bob).await;
        assert_eq!(st, 200);
        // A new export can be asked for.
        let again = built_export(&e, "acme", &alice).await;
        let (st, _, _) = download(
            s,
            &format!("/v1/orgs/acme/exports/{again}/download"),
            &alice,
        )
        .await;
        assert_eq!(st, 200);
    }
);

both!(
    a_failed_export_leaves_nothing_and_says_why,
    |t: TestDb| async move {
        // A disk that fills up after 2 KiB of archive.
        let e = env(&t, Some(2048)).await;
        let s = &e.s;
        let a = e.d.alice_in_acme(&t.db).await;
        add_file(&e.state, &a, b"some bytes").await;
        let alice = s.demo_login("alice@acme.test").await;
        let r = s
            .call("POST", "/v1/orgs/acme/exports", Some(&alice), &[], None)
            .await;
        assert_eq!(r.status, 202);
        let id = r.body["id"].as_str().unwrap().to_owned();
        drain(&e.state).await;
        let r = s.get(&format!("/v1/orgs/acme/exports/{id}"), &alice).await;
        assert_eq!(r.body["status"], "failed", "{:?}", r.body);
        let err = r.body["error"].as_str().unwrap();
        assert!(err.contains("no space left"), "{err}");
        assert_eq!(r.body["size_bytes"], Value::Null);
        // No partial archive, no temporary file.
        assert_eq!(
            files_under(&e.root.join("exports").join(e.d.acme.to_string())),
            Vec::<String>::new()
        );
        let (st, _, _) = download(s, &format!("/v1/orgs/acme/exports/{id}/download"), &alice).await;
        assert_eq!(st, 409);
        // The job is dead after its attempts, with the same error.
        let dead = jobs::list(
            &t.db,
            &jobs::ListFilter {
                kind: Some(jobs::EXPORT_BUILD.into()),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!((dead[0].status.as_str(), dead[0].attempts), ("dead", 3));
        assert!(dead[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("no space left"));
        assert_eq!(
            t.owner_count(
                "audit_events",
                &format!("org_id = '{}' AND action = 'export.failed'", e.d.acme)
            )
            .await,
            1
        );
        // A new export may be asked for.
        let r = s
            .call("POST", "/v1/orgs/acme/exports", Some(&alice), &[], None)
            .await;
        assert_eq!(r.status, 202);
    }
);

both!(
    deleting_an_org_shuts_it_at_once_and_purges_it,
    |t: TestDb| async move {
        let e = env(&t, None).await;
        let (s, d) = (&e.s, &e.d);
        let a = d.alice_in_acme(&t.db).await;
        let acme: OrgId = d.acme;
        let acme_file = add_file(&e.state, &a, b"to be purged").await;
        let globex_file = {
            let b = d.bob_in_globex(&t.db).await;
            add_file(&e.state, &b, b"to be kept").await
        };
        let alice = s.demo_login("alice@acme.test").await;
        let carol = s.demo_login("carol@example.test").await;
        let r = s
            .call(
                "PUT",
                "/v1/me/active-org",
                Some(&carol),
                &[],
                Some(json!({"org": "acme"})),
            )
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(s.get("/v1/projects", &carol).await.status, 200);
        let r = s
            .call("POST", "/v1/orgs/acme/exports", Some(&alice), &[], None)
            .await;
        assert_eq!(r.status, 202);
        drain(&e.state).await;

        let r = s
            .call("DELETE", "/v1/orgs/acme", Some(&alice), &[], None)
            .await;
        assert_eq!(r.status, 202, "{:?}", r.body);
        // At once, before the purge ran: nobody reaches the org.
        let r = s.get("/v1/orgs/acme/projects", &alice).await;
        assert_eq!((r.status, r.code()), (403, "not_a_member"));
        let r = s.get("/v1/projects", &carol).await;
        assert!(matches!(r.status, 400 | 403), "{r:?}");
        let before_globex = counts(&t, d.globex).await;

        drain(&e.state).await;
        for tb in tenant_tables() {
            assert_eq!(
                t.owner_count(tb, &format!("org_id = '{acme}'")).await,
                0,
                "{tb}"
            );
        }
        let after_globex = counts(&t, d.globex).await;
        assert_eq!(before_globex, after_globex);
        assert!(
            !e.root.join("files").join(acme.to_string()).exists(),
            "{acme_file}"
        );
        assert!(!e.root.join("exports").join(acme.to_string()).exists());
        assert!(e
            .root
            .join("files")
            .join(d.globex.to_string())
            .join(globex_file.to_string())
            .exists());
        let r = s.get("/v1/projects", &carol).await;
        assert!(matches!(r.status, 400 | 403), "{r:?}");
        let r = s.get("/v1/orgs/globex/projects", &carol).await;
        assert_eq!(r.status, 200);
        // The slug is free again.
        let r = s
            .call(
                "POST",
                "/v1/orgs",
                Some(&alice),
                &[],
                Some(json!({"name": "Acme again", "slug": "acme"})),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
);
