//! The S3 file store against a real S3-compatible server (moto, started by
//! `scripts/test` and named by `ORGWALL_TEST_S3_URL`; see `orgwall_testkit::s3`): the
//! same promises as the local store (keys of the acting org only, size limit, SHA-256,
//! all or nothing, idempotent deletes, the org purge) proven by listing the bucket, and
//! the export and org purge jobs running on it. Each test has a bucket of its own.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use bytes::Bytes;
use futures::StreamExt;
use orgwall_core::{FileId, OrgId};
use orgwall_store::files::{
    check_key, Blob, BlobError, BlobStore, ByteStream, S3Config, S3Files, PART_BYTES,
};
use orgwall_store::jobs::{mail, JobCtx, Outcome, Registry, Worker, WorkerConfig};
use orgwall_store::repo::exports::ExportFiles;
use orgwall_store::repo::{exports, orgs};
use orgwall_store::BackendKind;
use orgwall_testkit::s3::TestBucket;
use orgwall_testkit::{foreign_keys, store_file, untar, Demo, TestDb};
use sha2::{Digest, Sha256};
use std::io;
use std::sync::Arc;
use std::time::Duration;

async fn read_all(b: Blob) -> Vec<u8> {
    let mut out = Vec::new();
    let mut s = b.stream;
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    out
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// `len` bytes of a pattern that differs from part to part.
fn data(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i >> 20) as u8)
        .collect()
}

/// `bytes` as an upload of 64 KiB chunks, optionally breaking after `break_after` chunks.
fn chunked(bytes: &[u8], break_after: Option<usize>) -> ByteStream<'static> {
    let mut items: Vec<io::Result<Bytes>> = bytes
        .chunks(64 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    if let Some(n) = break_after {
        items.truncate(n);
        items.push(Err(io::Error::other("client went away")));
    }
    futures::stream::iter(items).boxed()
}

#[tokio::test]
async fn round_trip_with_sha256_under_the_prefix() {
    let Some(bucket) = TestBucket::create().await else {
        return;
    };
    let s = bucket.store(Some("tenant-files"));
    let (org, file) = (OrgId::new(), FileId::new());
    let st = s
        .put_bytes(org, file, Bytes::from_static(b"hello"))
        .await
        .unwrap();
    assert_eq!(st.key, format!("{org}/{file}"));
    assert_eq!(st.size_bytes, 5);
    assert_eq!(
        st.sha256,
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
    assert_eq!(
        bucket.names().await,
        vec![format!("tenant-files/{org}/{file}")]
    );
    let b = s.open(org, &st.key).await.unwrap();
    assert_eq!(b.len, 5);
    assert_eq!(read_all(b).await, b"hello");

    // Larger than a part: a multipart upload, streamed back whole.
    let big = data(2 * PART_BYTES + 12_345);
    let big_file = FileId::new();
    let st2 = s
        .put(org, big_file, chunked(&big, None), 3 * PART_BYTES as u64)
        .await
        .unwrap();
    assert_eq!(st2.size_bytes, big.len() as u64);
    assert_eq!(st2.sha256, sha256_hex(&big));
    let b = s.open(org, &st2.key).await.unwrap();
    assert_eq!(b.len, big.len() as u64);
    assert!(read_all(b).await == big, "the bytes come back as stored");
    assert_eq!(bucket.open_uploads().await, 0);

    // Deleting, and deleting again.
    for key in [&st.key, &st2.key] {
        s.delete(org, key).await.unwrap();
        assert!(matches!(s.open(org, key).await, Err(BlobError::NotFound)));
        s.delete(org, key).await.unwrap();
    }
    // An empty file is a file.
    let empty = s.put_bytes(org, file, Bytes::new()).await.unwrap();
    assert_eq!(empty.size_bytes, 0);
    assert_eq!(read_all(s.open(org, &empty.key).await.unwrap()).await, b"");
    s.delete(org, &empty.key).await.unwrap();
    assert_eq!(bucket.names().await, Vec::<String>::new());
    bucket.remove().await;
}

#[tokio::test]
async fn too_large_uploads_leave_nothing_in_the_bucket() {
    let Some(bucket) = TestBucket::create().await else {
        return;
    };
    let s = bucket.store(None);
    let org = OrgId::new();
    let small = || {
        futures::stream::iter(vec![
            Ok(Bytes::from_static(b"0123456789")),
            Ok(Bytes::from_static(b"0123456789")),
        ])
        .boxed()
    };
    let r = s.put(org, FileId::new(), small(), 15).await;
    assert!(matches!(r, Err(BlobError::TooLarge(15))), "{r:?}");
    // Past the limit after a part was already sent: the multipart upload is aborted.
    let big = data(2 * PART_BYTES + 10);
    let limit = PART_BYTES as u64 + 100;
    let r = s.put(org, FileId::new(), chunked(&big, None), limit).await;
    assert!(
        matches!(r, Err(BlobError::TooLarge(l)) if l == limit),
        "{r:?}"
    );
    assert_eq!(bucket.names().await, Vec::<String>::new());
    assert_eq!(bucket.open_uploads().await, 0);
    // Exactly the limit is fine, on both paths.
    let f = FileId::new();
    let st = s.put(org, f, small(), 20).await.unwrap();
    assert_eq!(st.size_bytes, 20);
    let g = FileId::new();
    let exact = data(PART_BYTES + 100);
    s.put(org, g, chunked(&exact, None), limit).await.unwrap();
    let mut want = vec![format!("{org}/{f}"), format!("{org}/{g}")];
    want.sort();
    assert_eq!(bucket.names().await, want);
    s.purge_org(org).await.unwrap();
    assert_eq!(bucket.names().await, Vec::<String>::new());
    bucket.remove().await;
}

#[tokio::test]
async fn broken_or_abandoned_uploads_leave_nothing() {
    let Some(bucket) = TestBucket::create().await else {
        return;
    };
    let s = bucket.store(Some("p"));
    let org = OrgId::new();
    let small = data(1000);
    let r = s
        .put(org, FileId::new(), chunked(&small, Some(1)), 1 << 30)
        .await;
    assert!(matches!(r, Err(BlobError::Source(_))), "{r:?}");
    // Broken after two parts went out.
    let big = data(3 * PART_BYTES);
    let chunks_in_two_parts = 2 * PART_BYTES / (64 * 1024) + 1;
    let r = s
        .put(
            org,
            FileId::new(),
            chunked(&big, Some(chunks_in_two_parts)),
            1 << 30,
        )
        .await;
    assert!(matches!(r, Err(BlobError::Source(_))), "{r:?}");
    assert_eq!(bucket.names().await, Vec::<String>::new());
    assert_eq!(bucket.open_uploads().await, 0);

    // Abandoned mid-way (the request went away): aborted in the background.
    let never_ends = chunked(&big[..PART_BYTES + 10], None)
        .chain(futures::stream::pending())
        .boxed();
    let r = tokio::time::timeout(
        Duration::from_secs(2),
        s.put(org, FileId::new(), never_ends, 1 << 30),
    )
    .await;
    assert!(r.is_err(), "the upload cannot finish");
    let mut open = usize::MAX;
    for _ in 0..50 {
        open = bucket.open_uploads().await;
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(open, 0, "the abandoned multipart upload was aborted");
    assert_eq!(bucket.names().await, Vec::<String>::new());
    bucket.remove().await;
}

#[tokio::test]
async fn another_orgs_key_is_refused_without_touching_the_store() {
    let Some(bucket) = TestBucket::create().await else {
        return;
    };
    let s = bucket.store(Some("p"));
    let (a, b) = (OrgId::new(), OrgId::new());
    let st = s
        .put_bytes(b, FileId::new(), Bytes::from_static(b"b's"))
        .await
        .unwrap();
    // Every foreign key, B's real one among them, is refused, also by a store whose server
    // is not there (any request would fail with an I/O error): the refusal came first.
    let nowhere = S3Files::new(&S3Config {
        endpoint: Some("http://127.0.0.1:9".into()),
        ..bucket.config(Some("p"))
    })
    .unwrap();
    for key in foreign_keys(a, b).into_iter().chain([st.key.clone()]) {
        for store in [&s, &nowhere] {
            assert!(
                matches!(store.open(a, &key).await, Err(BlobError::ForeignKey(_))),
                "{key}"
            );
            assert!(
                matches!(store.delete(a, &key).await, Err(BlobError::ForeignKey(_))),
                "{key}"
            );
        }
        assert!(check_key(a, &key).is_err(), "{key}");
    }
    // Still there for its owner, and nothing else is.
    assert_eq!(read_all(s.open(b, &st.key).await.unwrap()).await, b"b's");
    assert_eq!(bucket.names().await, vec![format!("p/{}", st.key)]);
    s.purge_org(b).await.unwrap();
    bucket.remove().await;
}

#[tokio::test]
async fn the_purge_removes_only_that_orgs_objects() {
    let Some(bucket) = TestBucket::create().await else {
        return;
    };
    let s = bucket.store(Some("files"));
    // Another deployment sharing the bucket under another prefix.
    let other = bucket.store(Some("files-2"));
    let (a, b) = (OrgId::new(), OrgId::new());
    let mut kept = Vec::new();
    for _ in 0..3 {
        s.put_bytes(a, FileId::new(), Bytes::from_static(b"a"))
            .await
            .unwrap();
    }
    for _ in 0..2 {
        let st = s
            .put_bytes(b, FileId::new(), Bytes::from_static(b"b"))
            .await
            .unwrap();
        kept.push(format!("files/{}", st.key));
    }
    let st = other
        .put_bytes(a, FileId::new(), Bytes::from_static(b"a elsewhere"))
        .await
        .unwrap();
    kept.push(format!("files-2/{}", st.key));
    kept.sort();
    assert_eq!(bucket.names().await.len(), 6);

    s.purge_org(a).await.unwrap();
    assert_eq!(bucket.names().await, kept);
    // Idempotent.
    s.purge_org(a).await.unwrap();
    assert_eq!(bucket.names().await, kept);
    s.purge_org(b).await.unwrap();
    other.purge_org(a).await.unwrap();
    assert_eq!(bucket.names().await, Vec::<String>::new());
    bucket.remove().await;
}

#[tokio::test]
async fn the_check_tells_a_missing_bucket() {
    let Some(bucket) = TestBucket::create().await else {
        return;
    };
    bucket.store(Some("p")).check().await.unwrap();
    let missing = S3Files::new(&S3Config {
        bucket: format!("{}-missing", bucket.name),
        ..bucket.config(None)
    })
    .unwrap();
    let e = missing.check().await.unwrap_err().to_string();
    assert!(e.contains("blob storage failed"), "{e}");
    bucket.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_and_purge_jobs_work_on_s3() {
    let Some(bucket) = TestBucket::create().await else {
        return;
    };
    let t = TestDb::new(BackendKind::Sqlite).await;
    let d = Demo::load(&t.db).await;
    let (acme, globex) = (d.alice_in_acme(&t.db).await, d.bob_in_globex(&t.db).await);
    let store: Arc<dyn BlobStore> = Arc::new(bucket.store(Some("files")));
    let dir = tempfile::tempdir().unwrap();
    let ctx = JobCtx {
        db: t.db.clone(),
        files: store.clone(),
        exports: ExportFiles::new(dir.path().join("exports")),
        mailer: Arc::new(mail::LogMailer),
    };
    let fa = store_file(&t.db, &acme, store.as_ref(), "a.txt", b"acme's bytes").await;
    let fg = store_file(&t.db, &globex, store.as_ref(), "g.txt", b"globex's bytes").await;
    let worker = Worker::new(
        ctx.clone(),
        Registry::builtin(),
        WorkerConfig {
            slots: 1,
            poll: Duration::from_millis(20),
            ..WorkerConfig::default()
        },
    );

    // The export of Acme carries Acme's file, read from the bucket.
    let export = {
        let mut tx = t.db.write(&acme).await.unwrap();
        let e = exports::create(&mut tx).await.unwrap();
        tx.commit().await.unwrap();
        e
    };
    let out = worker.run_until_idle().await;
    assert!(out.iter().all(|(_, o)| *o == Outcome::Done), "{out:?}");
    let gz = std::fs::read(ctx.exports.path_of(d.acme, export.id)).unwrap();
    let found: Vec<(String, Vec<u8>)> = untar(&gz)
        .into_iter()
        .filter(|(name, _)| name.starts_with("files/"))
        .collect();
    assert_eq!(
        found,
        vec![(format!("files/{fa}"), b"acme's bytes".to_vec())]
    );

    // Deleting Acme purges its objects, and only those.
    {
        let mut tx = t.db.write(&acme).await.unwrap();
        orgs::schedule_deletion(&mut tx).await.unwrap();
        tx.commit().await.unwrap();
    }
    let out = worker.run_until_idle().await;
    assert!(out.iter().all(|(_, o)| *o == Outcome::Done), "{out:?}");
    assert_eq!(
        bucket.names().await,
        vec![format!("files/{}/{fg}", d.globex)]
    );
    store.purge_org(d.globex).await.unwrap();
    bucket.remove().await;
}
