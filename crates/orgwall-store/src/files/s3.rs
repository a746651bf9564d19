//! [`S3Files`]: blobs in an S3-compatible bucket, through the `object_store` crate.
//!
//! The object name of a blob is `<prefix>/<org_id>/<file_id>`: the prefix is configured,
//! the rest is the storage key, rebuilt from the ids [`check_key`] parsed out of it (never
//! from the key's text), so every method refuses another org's key before any request.
//!
//! An upload of up to [`PART_BYTES`] is buffered and sent with one PUT once the stream
//! has ended within the limit. A larger one becomes a multipart upload of
//! [`PART_BYTES`] parts (at most [`PARTS_IN_FLIGHT`] at once), completed only after the
//! last chunk: S3 shows no object before the completion, and any error (too large, a
//! broken stream, a failed part) aborts the upload so its parts are removed. A dropped
//! (abandoned) upload is aborted in the background. So a blob is complete or absent.

use super::{check_key, key_for, Blob, BlobError, BlobStore, ByteStream, Intake, Stored};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{
    BackoffConfig, MultipartUpload, ObjectStore, PutPayload, PutPayloadMut, RetryConfig,
};
use orgwall_core::{FileId, OrgId};
use std::fmt;
use std::io;
use std::time::Duration;
use tokio::task::JoinSet;

/// The size of a multipart upload's parts (S3's smallest allowed part), and the most an
/// upload buffers before it starts one.
pub const PART_BYTES: usize = 5 * 1024 * 1024;

/// Parts of one upload being sent at once.
pub const PARTS_IN_FLIGHT: usize = 2;

/// Where an [`S3Files`] store keeps its blobs, and how it signs in.
#[derive(Clone, Default)]
pub struct S3Config {
    /// The bucket (it must exist).
    pub bucket: String,
    /// The endpoint of an S3-compatible server, e.g. `http://127.0.0.1:9000`; none: AWS.
    pub endpoint: Option<String>,
    /// The region (AWS's default, `us-east-1`, when none).
    pub region: Option<String>,
    /// A prefix for every object name, e.g. `orgwall/files`; none: the bucket's root.
    pub prefix: Option<String>,
    /// The access key id; none: the `AWS_*` environment.
    pub access_key_id: Option<String>,
    /// The secret access key; none: the `AWS_*` environment.
    pub secret_access_key: Option<String>,
    /// Plain HTTP to a non-loopback endpoint (plain HTTP to a loopback endpoint is always
    /// allowed).
    pub allow_http: bool,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// A configuration [`S3Files::new`] cannot work with.
#[derive(Debug, thiserror::Error)]
#[error("S3 file store: {0}")]
pub struct S3ConfigError(String);

/// `AWS_*` variables that give object_store credentials without a key pair.
const AWS_CREDENTIAL_VARS: [&str; 4] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
];

impl S3Config {
    /// True if `endpoint` is plain HTTP to this machine.
    fn loopback_http(endpoint: &str) -> bool {
        let Ok(url) = url::Url::parse(endpoint) else {
            return false;
        };
        url.scheme() == "http"
            && match url.host() {
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            }
    }

    fn builder(&self) -> Result<AmazonS3Builder, S3ConfigError> {
        let bad = |m: String| Err(S3ConfigError(m));
        if self.bucket.trim().is_empty() {
            return bad("the bucket name is empty".into());
        }
        // The AWS_* environment first, so that the explicit settings win.
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(self.bucket.trim())
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 3,
                retry_timeout: Duration::from_secs(30),
            });
        if let Some(region) = &self.region {
            b = b.with_region(region);
        }
        if let Some(endpoint) = &self.endpoint {
            let url = match url::Url::parse(endpoint) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => u,
                _ => return bad(format!("the endpoint {endpoint:?} is not an http(s) URL")),
            };
            if url.scheme() == "http" && !self.allow_http && !Self::loopback_http(endpoint) {
                return bad(format!(
                    "the endpoint {endpoint} is plain HTTP to another machine (allow it explicitly)"
                ));
            }
            b = b
                .with_endpoint(endpoint)
                .with_allow_http(url.scheme() == "http")
                .with_virtual_hosted_style_request(false);
        } else if self.allow_http {
            b = b.with_allow_http(true);
        }
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(id), Some(secret)) => {
                b = b.with_access_key_id(id).with_secret_access_key(secret);
            }
            (None, None) => {
                // Without this, object_store would ask the cloud's instance metadata
                // service, which is only ever right on a cloud machine set up for it.
                if !AWS_CREDENTIAL_VARS
                    .iter()
                    .any(|v| std::env::var_os(v).is_some())
                {
                    return bad(
                        "no credentials: set an access key id and a secret access key \
                         (or the standard AWS_* environment variables)"
                            .into(),
                    );
                }
            }
            _ => {
                return bad("the access key id and the secret access key go together".into());
            }
        }
        Ok(b)
    }

    fn root(&self) -> Result<Path, S3ConfigError> {
        let prefix = self.prefix.as_deref().unwrap_or("").trim_matches('/');
        Path::parse(prefix)
            .map_err(|e| S3ConfigError(format!("the prefix {prefix:?} is not usable: {e}")))
    }
}

/// Blobs in an S3-compatible bucket: `<prefix>/<org_id>/<file_id>`.
pub struct S3Files {
    store: AmazonS3,
    root: Path,
    bucket: String,
    endpoint: Option<String>,
}

impl fmt::Debug for S3Files {
    // The client's own Debug would show its credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Files")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("prefix", &self.root.as_ref())
            .finish_non_exhaustive()
    }
}

/// A store failure as [`BlobError::Io`].
fn io_err(e: object_store::Error) -> BlobError {
    BlobError::Io(io::Error::other(e))
}

impl S3Files {
    /// A store for `config` (no request is made: see [`S3Files::check`]).
    pub fn new(config: &S3Config) -> Result<Self, S3ConfigError> {
        let root = config.root()?;
        let store = config
            .builder()?
            .build()
            .map_err(|e| S3ConfigError(e.to_string()))?;
        Ok(S3Files {
            store,
            root,
            bucket: config.bucket.trim().to_owned(),
            endpoint: config.endpoint.clone(),
        })
    }

    /// Lists the first objects under the prefix: the bucket exists, answers and lets
    /// these credentials list it (the org purge lists).
    pub async fn check(&self) -> Result<(), BlobError> {
        match self.store.list(Some(&self.root)).next().await {
            Some(Err(e)) => Err(io_err(e)),
            _ => Ok(()),
        }
    }

    fn org_root(&self, org: OrgId) -> Path {
        self.root.child(org.to_string())
    }

    /// The object name of the blob under `key`, which must be one of `org`'s; built from
    /// the parsed ids, never from the key's text.
    pub fn path_of(&self, org: OrgId, key: &str) -> Result<Path, BlobError> {
        let file = check_key(org, key)?;
        Ok(self.org_root(org).child(file.to_string()))
    }

    async fn write(
        &self,
        org: OrgId,
        file: FileId,
        mut body: ByteStream<'_>,
        max_bytes: u64,
    ) -> Result<Stored, BlobError> {
        let key = key_for(org, file);
        let mut upload = Upload {
            store: &self.store,
            path: self.path_of(org, &key)?,
            buf: PutPayloadMut::new(),
            multipart: None,
            parts: JoinSet::new(),
        };
        let mut intake = Intake::new(max_bytes);
        let sent = async {
            while let Some(chunk) = body.next().await {
                upload.push(intake.take(chunk)?).await?;
            }
            upload.finish().await
        }
        .await;
        if let Err(e) = sent {
            upload.abort().await;
            return Err(e);
        }
        Ok(intake.stored(key))
    }

    async fn read(&self, org: OrgId, key: &str) -> Result<Blob, BlobError> {
        let path = self.path_of(org, key)?;
        let got = self.store.get(&path).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => BlobError::NotFound,
            other => io_err(other),
        })?;
        let len = got.meta.size;
        let stream = got.into_stream().map_err(io::Error::other).boxed();
        Ok(Blob { len, stream })
    }

    async fn remove(&self, org: OrgId, key: &str) -> Result<(), BlobError> {
        let path = self.path_of(org, key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(io_err(e)),
        }
    }

    async fn remove_org(&self, org: OrgId) -> Result<(), BlobError> {
        let names = self
            .store
            .list(Some(&self.org_root(org)))
            .map_ok(|meta| meta.location)
            .boxed();
        self.store
            .delete_stream(names)
            .try_for_each(|_| async { Ok(()) })
            .await
            .map_err(io_err)
    }
}

/// One upload on its way: a buffer of up to [`PART_BYTES`], then a multipart upload.
struct Upload<'a> {
    store: &'a AmazonS3,
    path: Path,
    buf: PutPayloadMut,
    multipart: Option<Box<dyn MultipartUpload>>,
    parts: JoinSet<object_store::Result<()>>,
}

impl Upload<'_> {
    /// Takes the next chunk, sending every part it completes.
    async fn push(&mut self, mut bytes: Bytes) -> Result<(), BlobError> {
        while !bytes.is_empty() {
            let room = PART_BYTES.saturating_sub(self.buf.content_length());
            if bytes.len() < room {
                self.buf.push(bytes);
                return Ok(());
            }
            self.buf.push(bytes.split_to(room));
            let part = std::mem::take(&mut self.buf).freeze();
            self.send_part(part).await?;
        }
        Ok(())
    }

    async fn send_part(&mut self, part: PutPayload) -> Result<(), BlobError> {
        while self.parts.len() >= PARTS_IN_FLIGHT {
            self.next_part_done().await?;
        }
        let multipart = match &mut self.multipart {
            Some(m) => m,
            None => self
                .multipart
                .insert(self.store.put_multipart(&self.path).await.map_err(io_err)?),
        };
        self.parts.spawn(multipart.put_part(part));
        Ok(())
    }

    async fn next_part_done(&mut self) -> Result<(), BlobError> {
        match self.parts.join_next().await {
            Some(Ok(r)) => r.map_err(io_err),
            Some(Err(e)) => Err(BlobError::Io(io::Error::other(e))),
            None => Ok(()),
        }
    }

    /// Stores what came: one PUT if no part was sent yet, else the last part and the
    /// completion of the multipart upload.
    async fn finish(&mut self) -> Result<(), BlobError> {
        let rest = std::mem::take(&mut self.buf).freeze();
        if self.multipart.is_none() {
            self.store.put(&self.path, rest).await.map_err(io_err)?;
            return Ok(());
        }
        if rest.content_length() > 0 {
            self.send_part(rest).await?;
        }
        while !self.parts.is_empty() {
            self.next_part_done().await?;
        }
        if let Some(m) = &mut self.multipart {
            m.complete().await.map_err(io_err)?;
        }
        self.multipart = None;
        Ok(())
    }

    /// Abandons a multipart upload, removing the parts already sent (best effort).
    async fn abort(&mut self) {
        self.parts.shutdown().await;
        if let Some(mut m) = self.multipart.take() {
            if let Err(e) = m.abort().await {
                tracing::warn!(error = %e, "aborting a multipart upload failed");
            }
        }
    }
}

impl Drop for Upload<'_> {
    /// An upload dropped before it finished (the request went away) is aborted in the
    /// background.
    fn drop(&mut self) {
        if let Some(mut m) = self.multipart.take() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = m.abort().await;
                });
            }
        }
    }
}

impl BlobStore for S3Files {
    fn put<'a>(
        &'a self,
        org: OrgId,
        file: FileId,
        body: ByteStream<'a>,
        max_bytes: u64,
    ) -> BoxFuture<'a, Result<Stored, BlobError>> {
        self.write(org, file, body, max_bytes).boxed()
    }

    fn open<'a>(&'a self, org: OrgId, key: &'a str) -> BoxFuture<'a, Result<Blob, BlobError>> {
        self.read(org, key).boxed()
    }

    fn delete<'a>(&'a self, org: OrgId, key: &'a str) -> BoxFuture<'a, Result<(), BlobError>> {
        self.remove(org, key).boxed()
    }

    fn purge_org(&self, org: OrgId) -> BoxFuture<'_, Result<(), BlobError>> {
        self.remove_org(org).boxed()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn config() -> S3Config {
        S3Config {
            bucket: "b".into(),
            endpoint: Some("http://127.0.0.1:9000".into()),
            access_key_id: Some("id".into()),
            secret_access_key: Some("s3cr3t-value".into()),
            ..S3Config::default()
        }
    }

    #[test]
    fn object_names_are_prefix_org_file() {
        let (org, file) = (OrgId::new(), FileId::new());
        let key = key_for(org, file);
        for (prefix, want) in [
            (None, format!("{org}/{file}")),
            (
                Some("/orgwall/files/"),
                format!("orgwall/files/{org}/{file}"),
            ),
        ] {
            let s = S3Files::new(&S3Config {
                prefix: prefix.map(Into::into),
                ..config()
            })
            .unwrap();
            assert_eq!(s.path_of(org, &key).unwrap().as_ref(), want);
            assert!(matches!(
                s.path_of(OrgId::new(), &key),
                Err(BlobError::ForeignKey(_))
            ));
        }
    }

    #[test]
    fn bad_configurations_are_refused_with_a_reason() {
        for (c, want) in [
            (
                S3Config {
                    bucket: " ".into(),
                    ..config()
                },
                "bucket",
            ),
            (
                S3Config {
                    endpoint: Some("127.0.0.1:9000".into()),
                    ..config()
                },
                "not an http(s) URL",
            ),
            (
                S3Config {
                    endpoint: Some("http://s3.example.test".into()),
                    ..config()
                },
                "plain HTTP",
            ),
            (
                S3Config {
                    secret_access_key: None,
                    ..config()
                },
                "go together",
            ),
            (
                S3Config {
                    prefix: Some("a//b".into()),
                    ..config()
                },
                "prefix",
            ),
        ] {
            let e = S3Files::new(&c).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
        // Plain HTTP elsewhere only when asked for.
        S3Files::new(&S3Config {
            endpoint: Some("http://s3.example.test".into()),
            allow_http: true,
            ..config()
        })
        .unwrap();
    }

    #[test]
    fn debug_shows_no_secret() {
        let c = config();
        assert!(!format!("{c:?}").contains("s3cr3t"), "{c:?}");
        let s = S3Files::new(&c).unwrap();
        assert!(!format!("{s:?}").contains("s3cr3t"), "{s:?}");
    }
}
