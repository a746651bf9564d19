//! A bucket of its own for one test, on the S3-compatible test server named by
//! `ORGWALL_TEST_S3_URL` (`scripts/test` starts moto and sets it; the server must accept
//! any credentials and unsigned bucket creation, as moto does).
//!
//! Without the variable an S3 test is skipped with a message, unless S3 is required
//! (`CI` or `ORGWALL_TEST_REQUIRE_S3` set, as `scripts/test` does): then it fails.

use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::ObjectStore;
use orgwall_store::files::{S3Config, S3Files};

/// The variable naming the S3 test server.
pub const URL_VAR: &str = "ORGWALL_TEST_S3_URL";

/// The S3 test server's URL, or `None` (after saying so) when there is none and S3 tests
/// may be skipped. Panics when S3 is required and missing.
pub fn url() -> Option<String> {
    if let Some(url) = std::env::var(URL_VAR).ok().filter(|u| !u.is_empty()) {
        return Some(url.trim_end_matches('/').to_owned());
    }
    let required = ["CI", "ORGWALL_TEST_REQUIRE_S3"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|x| !x.is_empty() && x != "0" && x != "false"));
    if required {
        panic!(
            "{URL_VAR} is not set, and S3 tests are required here (CI or \
             ORGWALL_TEST_REQUIRE_S3): run them through scripts/test, which starts an \
             S3-compatible server (moto)"
        );
    }
    eprintln!("skipped: {URL_VAR} is not set (scripts/test starts an S3 server and sets it)");
    None
}

/// A fresh, empty bucket on the test server.
pub struct TestBucket {
    /// The server's URL.
    pub url: String,
    /// The bucket's name (unique per test).
    pub name: String,
    admin: AmazonS3,
    http: reqwest::Client,
}

impl TestBucket {
    /// Creates a bucket with a unique name; `None` when S3 tests are skipped (see [`url`]).
    pub async fn create() -> Option<TestBucket> {
        let url = url()?;
        let name = format!("orgwall-test-{}", uuid::Uuid::now_v7().simple());
        let http = reqwest::Client::new();
        let r = http
            .put(format!("{url}/{name}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("the S3 test server at {url} does not answer: {e}"));
        assert!(
            r.status().is_success(),
            "creating bucket {name} at {url}: {}",
            r.status()
        );
        let admin = AmazonS3Builder::new()
            .with_endpoint(&url)
            .with_allow_http(true)
            .with_bucket_name(&name)
            .with_access_key_id("testing")
            .with_secret_access_key("testing")
            .build()
            .unwrap();
        Some(TestBucket {
            url,
            name,
            admin,
            http,
        })
    }

    /// The store settings for this bucket, under `prefix`.
    pub fn config(&self, prefix: Option<&str>) -> S3Config {
        S3Config {
            bucket: self.name.clone(),
            endpoint: Some(self.url.clone()),
            region: Some("us-east-1".into()),
            prefix: prefix.map(Into::into),
            access_key_id: Some("testing".into()),
            secret_access_key: Some("testing".into()),
            allow_http: false,
        }
    }

    /// A store on this bucket, under `prefix`.
    pub fn store(&self, prefix: Option<&str>) -> S3Files {
        S3Files::new(&self.config(prefix)).unwrap()
    }

    /// The name of every object in the bucket, sorted.
    pub async fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .admin
            .list(None)
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap();
        v.sort();
        v
    }

    /// How many multipart uploads are open (started, neither completed nor aborted).
    pub async fn open_uploads(&self) -> usize {
        let r = self
            .http
            .get(format!("{}/{}?uploads", self.url, self.name))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "listing uploads: {}", r.status());
        r.text().await.unwrap().matches("<UploadId>").count()
    }

    /// Deletes every object, then the bucket.
    pub async fn remove(self) {
        let names = self.admin.list(None).map_ok(|m| m.location).boxed();
        self.admin
            .delete_stream(names)
            .try_for_each(|_| async { Ok(()) })
            .await
            .unwrap();
        let r = self
            .http
            .delete(format!("{}/{}", self.url, self.name))
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "deleting bucket {}: {}",
            self.name,
            r.status()
        );
    }
}
