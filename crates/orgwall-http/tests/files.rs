//! Files and stats over HTTP, on both backends: uploads (limits, names, content types),
//! downloads, deletes, the cross-org cases, and stats that count one org only.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use futures::future::BoxFuture;
use orgwall_core::{Email, FileId, OrgId};
use orgwall_http::AppState;
use orgwall_store::files::{Blob, BlobError, BlobStore, ByteStream, LocalFiles, Stored};
use orgwall_store::repo::{api_keys, memberships, notes, sessions, users};
use orgwall_store::BackendKind;
use orgwall_testkit::{both, Demo, Resp, TestDb, TestServer};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\xff\x00binary";
const PDF: &[u8] = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n";

/// A local store that records every open and delete (to show which keys were touched).
#[derive(Debug)]
struct Recording {
    inner: LocalFiles,
    opened: Mutex<Vec<(OrgId, String)>>,
    deleted: Mutex<Vec<(OrgId, String)>>,
}

impl BlobStore for Recording {
    fn put<'a>(
        &'a self,
        org: OrgId,
        file: FileId,
        body: ByteStream<'a>,
        max_bytes: u64,
    ) -> BoxFuture<'a, Result<Stored, BlobError>> {
        self.inner.put(org, file, body, max_bytes)
    }
    fn open<'a>(&'a self, org: OrgId, key: &'a str) -> BoxFuture<'a, Result<Blob, BlobError>> {
        self.opened.lock().unwrap().push((org, key.to_owned()));
        self.inner.open(org, key)
    }
    fn delete<'a>(&'a self, org: OrgId, key: &'a str) -> BoxFuture<'a, Result<(), BlobError>> {
        self.deleted.lock().unwrap().push((org, key.to_owned()));
        self.inner.delete(org, key)
    }
    fn purge_org(&self, org: OrgId) -> BoxFuture<'_, Result<(), BlobError>> {
        self.inner.purge_org(org)
    }
}

struct Env {
    s: TestServer,
    d: Demo,
    /// `<tmp>/files`.
    root: PathBuf,
    store: Arc<Recording>,
    _dir: tempfile::TempDir,
}

async fn env(t: &TestDb, max_upload_bytes: u64) -> Env {
    let d = Demo::load(&t.db).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("files");
    let store = Arc::new(Recording {
        inner: LocalFiles::new(&root),
        opened: Mutex::default(),
        deleted: Mutex::default(),
    });
    let mut state = AppState::with_files(t.db.clone(), &root);
    state.files = store.clone();
    state.max_upload_bytes = max_upload_bytes;
    let s = TestServer::with_state(state).await;
    Env {
        s,
        d,
        root,
        store,
        _dir: dir,
    }
}

/// Every regular file under `dir`, relative, sorted.
fn disk(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(base, &p, out);
                } else {
                    out.push(p.strip_prefix(base).unwrap().display().to_string());
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

const BOUNDARY: &str = "orgwall-test-boundary-4f9c2a";

struct Part<'a> {
    name: &'a str,
    filename: Option<&'a str>,
    content_type: Option<&'a str>,
    data: &'a [u8],
}

fn file_part<'a>(filename: &'a str, content_type: &'a str, data: &'a [u8]) -> Part<'a> {
    Part {
        name: "file",
        filename: Some(filename),
        content_type: Some(content_type),
        data,
    }
}

fn multipart(parts: &[Part<'_>]) -> Vec<u8> {
    let mut b = Vec::new();
    for p in parts {
        b.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let mut cd = format!("Content-Disposition: form-data; name=\"{}\"", p.name);
        if let Some(f) = p.filename {
            cd.push_str(&format!("; filename=\"{f}\""));
        }
        b.extend_from_slice(cd.as_bytes());
        b.extend_from_slice(b"\r\n");
        if let Some(ct) = p.content_type {
            b.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        b.extend_from_slice(b"\r\n");
        b.extend_from_slice(p.data);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    b
}

async fn post_raw(
    s: &TestServer,
    path: &str,
    token: &str,
    content_type: &str,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> Resp {
    let mut rb = s
        .http
        .post(format!("{}{}", s.base, path))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.unwrap();
    Resp {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

async fn upload_parts(s: &TestServer, token: &str, org: &str, parts: &[Part<'_>]) -> Resp {
    post_raw(
        s,
        &format!("/v1/orgs/{org}/files"),
        token,
        &format!("multipart/form-data; boundary={BOUNDARY}"),
        multipart(parts),
        &[],
    )
    .await
}

async fn upload(s: &TestServer, token: &str, org: &str, name: &str, ct: &str, data: &[u8]) -> Resp {
    upload_parts(s, token, org, &[file_part(name, ct, data)]).await
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

fn header<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    h.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
}

/// SHA-256 hex of UTF-8 bytes (the token hash is exactly that).
fn sha256_hex(b: &[u8]) -> String {
    orgwall_store::crypto::token_hash(std::str::from_utf8(b).unwrap())
}

async fn file_count(t: &TestDb, org: OrgId) -> i64 {
    t.owner_count("files", &format!("org_id = '{org}'")).await
}

/// Rewrites the storage key of acme's file `id` to `key`, as the owner, below every wall
/// (what a bug or a tampered row would do).
async fn forge_storage_key(t: &TestDb, acme: OrgId, id: &str, key: &str) {
    match t.kind {
        BackendKind::Postgres => {
            let n = t
                .owner_exec_for(
                    acme,
                    &format!("UPDATE files SET storage_key = '{key}' WHERE id = '{id}'"),
                )
                .await;
            assert_eq!(n, 1);
        }
        BackendKind::Sqlite => {
            // Acme's own file, if it has one (the guard triggers ask app_org()).
            let c = t.sqlite_owner_for(acme);
            let acme = acme.to_string();
            c.create_scalar_function(
                "app_org",
                0,
                rusqlite::functions::FunctionFlags::SQLITE_UTF8,
                move |_| Ok(acme.clone()),
            )
            .unwrap();
            let n = c
                .execute(
                    "UPDATE files_rows SET storage_key = ?1 WHERE id = ?2",
                    [key, id],
                )
                .unwrap();
            assert_eq!(n, 1);
        }
    }
}

/// A user holding `role` in acme, with a session.
async fn acme_user(t: &TestDb, d: &Demo, email: &str, role: &str) -> String {
    let u = users::create(&t.db, &Email::parse(email).unwrap(), "Test", "x", true)
        .await
        .unwrap();
    let scope = d.alice_in_acme(&t.db).await;
    let mut tx = t.db.write(&scope).await.unwrap();
    memberships::add(&mut tx, u.id, role).await.unwrap();
    tx.commit().await.unwrap();
    sessions::create(&t.db, u.id).await.unwrap().token
}

both!(
    upload_list_get_download_round_trip,
    |t: TestDb| async move {
        let e = env(&t, 1024 * 1024).await;
        let s = &e.s;
        let alice = s.demo_login("alice@acme.test").await;

        let text = b"hello, files\n".to_vec();
        let r = upload(s, &alice, "acme", "hello.txt", "text/plain", &text).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        let id = r.body["id"].as_str().unwrap().to_owned();
        assert_eq!(r.body["name"], "hello.txt");
        assert_eq!(r.body["content_type"], "text/plain");
        assert_eq!(r.body["size_bytes"], text.len());
        assert_eq!(r.body["sha256"], sha256_hex(&text));
        assert_eq!(r.body["created_by"], json!(e.d.alice));
        assert!(r.body.get("storage_key").is_none(), "{:?}", r.body);
        assert!(r.body.get("org_id").is_none(), "{:?}", r.body);
        // The bytes are where the server says, under the org's own prefix.
        assert_eq!(disk(&e.root), vec![format!("{}/{id}", e.d.acme)]);

        let r = s.get(&format!("/v1/orgs/acme/files/{id}"), &alice).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body["sha256"], sha256_hex(&text));
        // The org-less form behaves the same.
        let r2 = s
            .call(
                "GET",
                &format!("/v1/files/{id}"),
                Some(&alice),
                &[("x-organization-id", "acme")],
                None,
            )
            .await;
        assert_eq!((r2.status, &r2.body), (200, &r.body));

        let (st, h, bytes) =
            download(s, &format!("/v1/orgs/acme/files/{id}/content"), &alice).await;
        assert_eq!(st, 200);
        assert_eq!(bytes, text);
        assert_eq!(header(&h, "content-type"), "text/plain");
        assert_eq!(header(&h, "content-length"), text.len().to_string());
        assert_eq!(header(&h, "x-content-type-options"), "nosniff");
        assert_eq!(
            header(&h, "content-disposition"),
            "attachment; filename=\"hello.txt\"; filename*=UTF-8''hello.txt"
        );

        // Binary files come back byte for byte, with their type.
        let r = upload(s, &alice, "acme", "pixel.png", "image/png", PNG).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        let png_id = r.body["id"].as_str().unwrap().to_owned();
        let (st, h, bytes) =
            download(s, &format!("/v1/orgs/acme/files/{png_id}/content"), &alice).await;
        assert_eq!((st, bytes.as_slice()), (200, PNG));
        assert_eq!(header(&h, "content-type"), "image/png");

        // A name that is not plain ASCII is offered both ways.
        let r = upload(s, &alice, "acme", "résumé 2024.pdf", "application/pdf", PDF).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        let pdf_id = r.body["id"].as_str().unwrap().to_owned();
        let (_, h, _) = download(s, &format!("/v1/orgs/acme/files/{pdf_id}/content"), &alice).await;
        let cd = header(&h, "content-disposition").to_owned();
        assert_eq!(
            cd,
            "attachment; filename=\"r_sum_ 2024.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%202024.pdf"
        );

        // A part without a content type is application/octet-stream; an API key uploads too.
        let key = {
            let scope = e.d.alice_in_acme(&t.db).await;
            let mut tx = t.db.write(&scope).await.unwrap();
            let (_, k) = api_keys::create(&mut tx, "uploader", "member", None)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            k
        };
        let r = upload_parts(
            s,
            &key,
            "acme",
            &[Part {
                name: "file",
                filename: Some("blob.bin"),
                content_type: None,
                data: b"\x00\x01\x02",
            }],
        )
        .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        assert_eq!(r.body["content_type"], "application/octet-stream");
        assert_eq!(r.body["created_by"], Value::Null);

        // Keyset pagination over the four files, in upload order.
        let p1 = s.get("/v1/orgs/acme/files?limit=3", &alice).await;
        assert_eq!(p1.status, 200);
        let items: Vec<&str> = p1.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap())
            .collect();
        assert_eq!(items, vec![id.as_str(), png_id.as_str(), pdf_id.as_str()]);
        let cursor = p1.body["next_cursor"].as_str().unwrap();
        let p2 = s
            .get(
                &format!("/v1/orgs/acme/files?limit=3&cursor={cursor}"),
                &alice,
            )
            .await;
        assert_eq!(p2.body["items"].as_array().unwrap().len(), 1);
        assert_eq!(p2.body["next_cursor"], Value::Null);
        let r = s.get("/v1/orgs/acme/files?sort=name", &alice).await;
        assert_eq!((r.status, r.code()), (422, "validation_failed"));
        // Globex sees none of them.
        let bob = s.demo_login("bob@globex.test").await;
        let r = s.get("/v1/orgs/globex/files", &bob).await;
        assert_eq!(r.body["items"], json!([]));
    }
);

both!(client_names_never_reach_the_disk, |t: TestDb| async move {
    let e = env(&t, 1024 * 1024).await;
    let s = &e.s;
    let alice = s.demo_login("alice@acme.test").await;
    let mut ids = Vec::new();
    for (raw, want) in [
        ("../../etc/passwd", "passwd"),
        ("/etc/shadow", "shadow"),
        ("..", "file"),
        ("", "file"),
        ("a/b/../../../../evil.txt", "evil.txt"),
    ] {
        let r = upload(s, &alice, "acme", raw, "text/plain", b"x").await;
        assert_eq!(r.status, 201, "{raw}: {:?}", r.body);
        assert_eq!(r.body["name"], want, "{raw}");
        ids.push(r.body["id"].as_str().unwrap().to_owned());
    }
    let long = "n".repeat(400);
    let r = upload(s, &alice, "acme", &long, "text/plain", b"x").await;
    assert_eq!(r.body["name"].as_str().unwrap().len(), 255);
    ids.push(r.body["id"].as_str().unwrap().to_owned());

    // Every byte is under <root>/<acme>/<file id>, and nothing was written anywhere else.
    let mut want: Vec<String> = ids.iter().map(|i| format!("{}/{i}", e.d.acme)).collect();
    want.sort();
    assert_eq!(disk(&e.root), want);
    assert_eq!(disk(e.root.parent().unwrap()).len(), want.len());
});

both!(oversize_uploads_store_nothing, |t: TestDb| async move {
    let e = env(&t, 1000).await;
    let s = &e.s;
    let alice = s.demo_login("alice@acme.test").await;

    // Exactly the limit is fine.
    let r = upload(
        s,
        &alice,
        "acme",
        "ok.bin",
        "application/octet-stream",
        &[7u8; 1000],
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let ok_id = r.body["id"].as_str().unwrap().to_owned();
    let before = disk(&e.root);
    assert_eq!(before, vec![format!("{}/{ok_id}", e.d.acme)]);

    // One byte more: refused while streaming (the body itself is within the framing allowance).
    let r = upload(
        s,
        &alice,
        "acme",
        "big.bin",
        "application/octet-stream",
        &[7u8; 1001],
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (413, "payload_too_large"),
        "{:?}",
        r.body
    );
    assert_eq!(
        header(&r.headers, "content-type"),
        "application/problem+json"
    );
    // Far more: refused from Content-Length before reading.
    let r = upload(
        s,
        &alice,
        "acme",
        "huge.bin",
        "application/octet-stream",
        &vec![7u8; 200_000],
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (413, "payload_too_large"),
        "{:?}",
        r.body
    );
    // Chunked (no Content-Length), the excess outside the file part: the body cap holds.
    let mut body = vec![b'p'; 40_000];
    body.extend_from_slice(b"\r\n");
    body.extend_from_slice(&multipart(&[file_part("x.txt", "text/plain", b"x")]));
    let (status, text) = chunked_post(s, "/v1/orgs/acme/files", &alice, &body).await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("payload_too_large"), "{text}");

    assert_eq!(file_count(&t, e.d.acme).await, 1);
    assert_eq!(disk(&e.root), before);
});

/// Sends a chunked POST over a raw connection; returns the status and the response text.
async fn chunked_post(s: &TestServer, path: &str, token: &str, body: &[u8]) -> (u16, String) {
    let addr = s.base.trim_start_matches("http://");
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n"
    );
    let mut req = head.into_bytes();
    for chunk in body.chunks(4096) {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    // The server may answer (and close) before reading everything.
    let _ = c.write_all(&req).await;
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

both!(
    declared_types_must_be_allowed_and_true,
    |t: TestDb| async move {
        let e = env(&t, 1024 * 1024).await;
        let s = &e.s;
        let alice = s.demo_login("alice@acme.test").await;

        for (ct, data) in [
            ("image/png", b"this is text, not a png".as_slice()),
            ("image/jpeg", PNG),
            ("image/gif", b"".as_slice()),
            ("application/pdf", b"<html>".as_slice()),
            ("text/plain", PDF),
            ("application/json", PNG),
        ] {
            let r = upload(s, &alice, "acme", "x", ct, data).await;
            assert_eq!(
                (r.status, r.code()),
                (422, "content_type_mismatch"),
                "{ct}: {:?}",
                r.body
            );
        }
        for ct in [
            "text/html",
            "image/svg+xml",
            "application/x-msdownload",
            "nonsense",
        ] {
            let r = upload(s, &alice, "acme", "x", ct, b"<script>alert(1)</script>").await;
            assert_eq!(
                (r.status, r.code()),
                (415, "unsupported_media_type"),
                "{ct}: {:?}",
                r.body
            );
        }
        // Parameters and case do not matter for the allowlist.
        let r = upload(
            s,
            &alice,
            "acme",
            "a.csv",
            "Text/CSV; charset=utf-8",
            b"a,b\n1,2\n",
        )
        .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        assert_eq!(r.body["content_type"], "text/csv");
        let ok = r.body["id"].as_str().unwrap().to_owned();

        // Not multipart at all; no part named file; more than one part.
        let r = s
            .call(
                "POST",
                "/v1/orgs/acme/files",
                Some(&alice),
                &[],
                Some(json!({"name": "x"})),
            )
            .await;
        assert_eq!((r.status, r.code()), (415, "unsupported_media_type"));
        let r = upload_parts(
            s,
            &alice,
            "acme",
            &[Part {
                name: "upload",
                filename: Some("x.txt"),
                content_type: Some("text/plain"),
                data: b"x",
            }],
        )
        .await;
        assert_eq!((r.status, r.code()), (422, "validation_failed"));
        let r = upload_parts(s, &alice, "acme", &[]).await;
        assert_eq!((r.status, r.code()), (422, "validation_failed"));
        let r = upload_parts(
            s,
            &alice,
            "acme",
            &[
                file_part("x.txt", "text/plain", b"x"),
                Part {
                    name: "org_id",
                    filename: None,
                    content_type: None,
                    data: e.d.globex.to_string().as_bytes(),
                },
            ],
        )
        .await;
        assert_eq!((r.status, r.code()), (422, "validation_failed"));
        // A broken body.
        let r = post_raw(
            s,
            "/v1/orgs/acme/files",
            &alice,
            &format!("multipart/form-data; boundary={BOUNDARY}"),
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nno end")
                .into_bytes(),
            &[],
        )
        .await;
        assert_eq!(
            (r.status, r.code()),
            (400, "invalid_multipart"),
            "{:?}",
            r.body
        );

        assert_eq!(file_count(&t, e.d.acme).await, 1);
        assert_eq!(disk(&e.root), vec![format!("{}/{ok}", e.d.acme)]);
    }
);

both!(
    another_orgs_file_is_not_found_and_never_opened,
    |t: TestDb| async move {
        let e = env(&t, 1024 * 1024).await;
        let s = &e.s;
        let alice = s.demo_login("alice@acme.test").await;
        let bob = s.demo_login("bob@globex.test").await;
        let r = upload(
            s,
            &bob,
            "globex",
            "secret.txt",
            "text/plain",
            b"globex only",
        )
        .await;
        assert_eq!(r.status, 201);
        let gid = r.body["id"].as_str().unwrap().to_owned();
        let r = upload(s, &alice, "acme", "mine.txt", "text/plain", b"acme's").await;
        let aid = r.body["id"].as_str().unwrap().to_owned();
        e.store.opened.lock().unwrap().clear();

        for (m, p) in [
            ("GET", format!("/v1/orgs/acme/files/{gid}")),
            ("GET", format!("/v1/orgs/acme/files/{gid}/content")),
            ("DELETE", format!("/v1/orgs/acme/files/{gid}")),
        ] {
            let r = s.call(m, &p, Some(&alice), &[], None).await;
            assert_eq!((r.status, r.code()), (404, "not_found"), "{m} {p}");
            let r = s
                .call(
                    m,
                    &p.replace("/orgs/acme", ""),
                    Some(&alice),
                    &[("x-organization-id", "acme")],
                    None,
                )
                .await;
            assert_eq!((r.status, r.code()), (404, "not_found"), "{m} {p} org-less");
            let r = s
                .call(
                    m,
                    &p.replace("/orgs/acme", "/orgs/globex"),
                    Some(&alice),
                    &[],
                    None,
                )
                .await;
            assert_eq!(
                (r.status, r.code()),
                (403, "not_a_member"),
                "{m} {p} in globex"
            );
        }
        let r = s.get("/v1/orgs/globex/files", &alice).await;
        assert_eq!((r.status, r.code()), (403, "not_a_member"));
        let r = upload(s, &alice, "globex", "x.txt", "text/plain", b"x").await;
        assert_eq!((r.status, r.code()), (403, "not_a_member"));
        assert!(
            e.store.opened.lock().unwrap().is_empty(),
            "no blob was opened"
        );
        assert!(
            e.store.deleted.lock().unwrap().is_empty(),
            "no blob was deleted"
        );

        // Bob still has his file, byte for byte.
        let (st, _, bytes) =
            download(s, &format!("/v1/orgs/globex/files/{gid}/content"), &bob).await;
        assert_eq!((st, bytes.as_slice()), (200, b"globex only".as_slice()));

        // Second wall: even a row of acme rewritten (as the owner, below every wall) to name
        // globex's blob cannot make the store read it.
        let forged = format!("{}/{gid}", e.d.globex);
        forge_storage_key(&t, e.d.acme, &aid, &forged).await;
        e.store.opened.lock().unwrap().clear();
        let (st, _, bytes) =
            download(s, &format!("/v1/orgs/acme/files/{aid}/content"), &alice).await;
        assert_eq!(st, 404, "{}", String::from_utf8_lossy(&bytes));
        assert!(!String::from_utf8_lossy(&bytes).contains("globex only"));
        assert_eq!(
            *e.store.opened.lock().unwrap(),
            vec![(e.d.acme, forged)],
            "refused by the store"
        );
    }
);

both!(
    the_s3_store_serves_files_over_http,
    |t: TestDb| async move {
        let Some(bucket) = orgwall_testkit::s3::TestBucket::create().await else {
            return;
        };
        let d = Demo::load(&t.db).await;
        let mut state = AppState::new(t.db.clone());
        state.files = Arc::new(bucket.store(Some("files")));
        state.max_upload_bytes = 1024 * 1024;
        let s = &TestServer::with_state(state).await;
        let alice = s.demo_login("alice@acme.test").await;
        let bob = s.demo_login("bob@globex.test").await;

        let text = b"hello, bucket\n";
        let r = upload(s, &alice, "acme", "hello.txt", "text/plain", text).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        assert_eq!(r.body["sha256"], sha256_hex(text));
        let aid = r.body["id"].as_str().unwrap().to_owned();
        let r = upload(s, &bob, "globex", "g.txt", "text/plain", b"globex only").await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        let gid = r.body["id"].as_str().unwrap().to_owned();
        let mut both_objects = vec![
            format!("files/{}/{aid}", d.acme),
            format!("files/{}/{gid}", d.globex),
        ];
        both_objects.sort();
        assert_eq!(bucket.names().await, both_objects);

        let (st, h, bytes) =
            download(s, &format!("/v1/orgs/acme/files/{aid}/content"), &alice).await;
        assert_eq!((st, bytes.as_slice()), (200, text.as_slice()));
        assert_eq!(header(&h, "content-length"), text.len().to_string());

        // Too large: refused, nothing more in the bucket.
        let big = vec![b'x'; 1024 * 1024 + 1];
        let r = upload(
            s,
            &alice,
            "acme",
            "big.bin",
            "application/octet-stream",
            &big,
        )
        .await;
        assert_eq!((r.status, r.code()), (413, "payload_too_large"));
        assert_eq!(bucket.names().await, both_objects);

        // A row of acme forged to name globex's object cannot make the store read it.
        let forged = format!("{}/{gid}", d.globex);
        forge_storage_key(&t, d.acme, &aid, &forged).await;
        let (st, _, bytes) =
            download(s, &format!("/v1/orgs/acme/files/{aid}/content"), &alice).await;
        assert_eq!(st, 404, "{}", String::from_utf8_lossy(&bytes));
        assert!(!String::from_utf8_lossy(&bytes).contains("globex only"));
        forge_storage_key(&t, d.acme, &aid, &format!("{}/{aid}", d.acme)).await;

        let r = s
            .call(
                "DELETE",
                &format!("/v1/orgs/acme/files/{aid}"),
                Some(&alice),
                &[],
                None,
            )
            .await;
        assert_eq!(r.status, 204, "{:?}", r.body);
        assert_eq!(
            bucket.names().await,
            vec![format!("files/{}/{gid}", d.globex)]
        );
        let (st, _, bytes) =
            download(s, &format!("/v1/orgs/globex/files/{gid}/content"), &bob).await;
        assert_eq!((st, bytes.as_slice()), (200, b"globex only".as_slice()));
        let r = s
            .call(
                "DELETE",
                &format!("/v1/orgs/globex/files/{gid}"),
                Some(&bob),
                &[],
                None,
            )
            .await;
        assert_eq!(r.status, 204, "{:?}", r.body);
        assert_eq!(bucket.names().await, Vec::<String>::new());
        bucket.remove().await;
    }
);

both!(delete_removes_row_and_bytes, |t: TestDb| async move {
    let e = env(&t, 1024 * 1024).await;
    let s = &e.s;
    let alice = s.demo_login("alice@acme.test").await;
    let carol = s.demo_login("carol@example.test").await;
    let r = upload(s, &carol, "acme", "carol.txt", "text/plain", b"by carol").await;
    assert_eq!(r.status, 201, "members upload");
    let id = r.body["id"].as_str().unwrap().to_owned();
    let keep = upload(s, &alice, "acme", "keep.txt", "text/plain", b"keep")
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(disk(&e.root).len(), 2);

    // Members may not delete (files:delete).
    let r = s
        .call(
            "DELETE",
            &format!("/v1/orgs/acme/files/{id}"),
            Some(&carol),
            &[],
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "permission_denied"));
    assert_eq!(r.body["permission"], "files:delete");

    let r = s
        .call(
            "DELETE",
            &format!("/v1/orgs/acme/files/{id}"),
            Some(&alice),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert_eq!(disk(&e.root), vec![format!("{}/{keep}", e.d.acme)]);
    assert_eq!(file_count(&t, e.d.acme).await, 1);
    let r = s.get(&format!("/v1/orgs/acme/files/{id}"), &alice).await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    let (st, _, _) = download(s, &format!("/v1/orgs/acme/files/{id}/content"), &alice).await;
    assert_eq!(st, 404);
    let r = s
        .call(
            "DELETE",
            &format!("/v1/orgs/acme/files/{id}"),
            Some(&alice),
            &[],
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    // Upload and delete are audited.
    let n = t
        .owner_count(
            "audit_events",
            &format!("org_id = '{}' AND action IN ('file.uploaded', 'file.deleted') AND target_id = '{id}'", e.d.acme),
        )
        .await;
    assert_eq!(n, 2);
});

both!(storage_quota_counts_uploads, |t: TestDb| async move {
    let e = env(&t, 1024 * 1024).await;
    let s = &e.s;
    let alice = s.demo_login("alice@acme.test").await;
    t.owner_exec("UPDATE plans SET max_storage_bytes = 10")
        .await;
    let r = upload(s, &alice, "acme", "a.txt", "text/plain", b"12345678").await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let r = upload(s, &alice, "acme", "b.txt", "text/plain", b"12345").await;
    assert_eq!(
        (r.status, r.code()),
        (403, "quota_exceeded"),
        "{:?}",
        r.body
    );
    // The refused upload's bytes were written first, then removed.
    assert_eq!(disk(&e.root), vec![format!("{}/{id}", e.d.acme)]);
    assert_eq!(file_count(&t, e.d.acme).await, 1);
    let r = upload(s, &alice, "acme", "c.txt", "text/plain", b"12").await;
    assert_eq!(r.status, 201, "exactly at the quota: {:?}", r.body);
});

both!(viewers_read_but_cannot_upload, |t: TestDb| async move {
    let e = env(&t, 1024 * 1024).await;
    let s = &e.s;
    let viewer = acme_user(&t, &e.d, "viewer@acme.test", "viewer").await;
    let alice = s.demo_login("alice@acme.test").await;
    let id = upload(s, &alice, "acme", "a.txt", "text/plain", b"a")
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let r = upload(s, &viewer, "acme", "v.txt", "text/plain", b"v").await;
    assert_eq!((r.status, r.code()), (403, "permission_denied"));
    assert_eq!(r.body["permission"], "files:write");
    let r = s
        .call(
            "DELETE",
            &format!("/v1/orgs/acme/files/{id}"),
            Some(&viewer),
            &[],
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "permission_denied"));
    let (st, _, bytes) = download(s, &format!("/v1/orgs/acme/files/{id}/content"), &viewer).await;
    assert_eq!((st, bytes.as_slice()), (200, b"a".as_slice()));
    assert_eq!(file_count(&t, e.d.acme).await, 1);
    // No credentials: 401 before anything is read.
    let r = s.call("POST", "/v1/orgs/acme/files", None, &[], None).await;
    assert_eq!((r.status, r.code()), (401, "unauthenticated"));
});

async fn direct_stats(t: &TestDb, org: OrgId) -> Value {
    let c = |table: &'static str, extra: String| async move {
        t.owner_count(table, &format!("org_id = '{org}'{extra}"))
            .await
    };
    let mut by_status = serde_json::Map::new();
    for st in ["open", "in_progress", "resolved", "closed"] {
        by_status.insert(
            st.into(),
            json!(c("tickets", format!(" AND status = '{st}'")).await),
        );
    }
    json!({
        "tickets_total": c("tickets", String::new()).await,
        "by_status": by_status,
        "projects": c("projects", String::new()).await,
        "notes": c("notes", String::new()).await,
        "files": c("files", String::new()).await,
        "members": c("memberships", String::new()).await,
    })
}

fn shape(stats: &Value) -> Value {
    json!({
        "tickets_total": stats["tickets"]["total"],
        "by_status": stats["tickets"]["by_status"],
        "projects": stats["projects"],
        "notes": stats["notes"],
        "files": stats["files"],
        "members": stats["members"],
    })
}

both!(stats_count_this_org_only, |t: TestDb| async move {
    let e = env(&t, 1024 * 1024).await;
    let s = &e.s;
    let alice = s.demo_login("alice@acme.test").await;
    let bob = s.demo_login("bob@globex.test").await;
    // Make the orgs differ, so a count that strayed would show.
    assert_eq!(
        upload(s, &alice, "acme", "a", "text/plain", b"12345")
            .await
            .status,
        201
    );
    assert_eq!(
        upload(s, &alice, "acme", "b", "text/plain", b"1234567")
            .await
            .status,
        201
    );
    assert_eq!(
        upload(s, &bob, "globex", "g", "text/plain", &[b'g'; 100])
            .await
            .status,
        201
    );
    {
        let scope = e.d.bob_in_globex(&t.db).await;
        let mut tx = t.db.write(&scope).await.unwrap();
        notes::create(&mut tx, "only in globex", "").await.unwrap();
        tx.commit().await.unwrap();
    }

    let r = s.get("/v1/orgs/acme/stats", &alice).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let acme = r.body;
    assert_eq!(shape(&acme), direct_stats(&t, e.d.acme).await);
    assert_eq!(acme["storage_bytes"], 12);
    assert_eq!(acme["tickets"]["by_project_truncated"], false);
    let by_project = acme["tickets"]["by_project"].as_array().unwrap();
    assert_eq!(by_project.len() as i64, acme["projects"].as_i64().unwrap());
    assert!(
        acme["tickets"]["total"].as_i64().unwrap() > 0,
        "the demo has tickets"
    );
    let acme_projects: Vec<Value> = s.get("/v1/orgs/acme/projects", &alice).await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| json!([p["id"], p["key"]]))
        .collect();
    let mut sum = 0;
    for p in by_project {
        assert!(acme_projects.contains(&json!([p["id"], p["key"]])), "{p}");
        let n = t
            .owner_count(
                "tickets",
                &format!(
                    "org_id = '{}' AND project_id = '{}'",
                    e.d.acme,
                    p["id"].as_str().unwrap()
                ),
            )
            .await;
        assert_eq!(p["count"], n, "{p}");
        sum += n;
    }
    assert_eq!(acme["tickets"]["total"], sum);

    let globex = s.get("/v1/orgs/globex/stats", &bob).await.body;
    assert_eq!(shape(&globex), direct_stats(&t, e.d.globex).await);
    assert_eq!(globex["storage_bytes"], 100);
    assert_ne!(acme["notes"], globex["notes"]);

    // The org-less form is the same; a viewer may read stats; non-members may not.
    let r = s
        .call(
            "GET",
            "/v1/stats",
            Some(&alice),
            &[("x-organization-id", "acme")],
            None,
        )
        .await;
    assert_eq!((r.status, &r.body), (200, &acme));
    let viewer = acme_user(&t, &e.d, "viewer@acme.test", "viewer").await;
    let r = s.get("/v1/orgs/acme/stats", &viewer).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["members"], acme["members"].as_i64().unwrap() + 1);
    let r = s.get("/v1/orgs/globex/stats", &alice).await;
    assert_eq!((r.status, r.code()), (403, "not_a_member"));
    let r = s
        .call(
            "GET",
            "/v1/stats",
            Some(&alice),
            &[("x-organization-id", "globex")],
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "not_a_member"));
});
