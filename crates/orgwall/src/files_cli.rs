//! Where `serve` and `worker` keep file bytes: under `DATA_DIR/files`, or in an
//! S3-compatible bucket when `--s3-bucket` is set.

use orgwall_store::files::{BlobStore, LocalFiles, S3Config, S3Files};
use std::path::Path;
use std::sync::Arc;

/// The file store's flags (shared by `serve` and `worker`).
#[derive(clap::Args, Debug, Clone)]
pub struct FileStoreArgs {
    /// Keep file bytes in this S3 bucket (it must exist) instead of DATA_DIR/files.
    #[arg(long, env = "ORGWALL_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// Endpoint of an S3-compatible server, e.g. http://127.0.0.1:9000 (default: AWS).
    #[arg(long, env = "ORGWALL_S3_ENDPOINT", requires = "s3_bucket")]
    pub s3_endpoint: Option<String>,
    /// The bucket's region (default: AWS_DEFAULT_REGION, else us-east-1).
    #[arg(long, env = "ORGWALL_S3_REGION", requires = "s3_bucket")]
    pub s3_region: Option<String>,
    /// Prefix of every object name: objects are PREFIX/ORG_ID/FILE_ID.
    #[arg(long, env = "ORGWALL_S3_PREFIX", requires = "s3_bucket")]
    pub s3_prefix: Option<String>,
    /// Allow plain HTTP to a non-loopback endpoint (plain HTTP to 127.0.0.1 or localhost is
    /// always allowed).
    #[arg(long, env = "ORGWALL_S3_ALLOW_HTTP", requires = "s3_bucket")]
    pub s3_allow_http: bool,
    /// The access key id (else the standard AWS_* environment).
    #[arg(long, env = "ORGWALL_S3_ACCESS_KEY_ID", hide_env_values = true)]
    pub s3_access_key_id: Option<String>,
    /// The secret access key (else the standard AWS_* environment). Prefer the
    /// environment variable to the flag: flags show in the process list.
    #[arg(long, env = "ORGWALL_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,
}

impl FileStoreArgs {
    /// The S3 settings, if a bucket is configured.
    fn s3(&self) -> Option<S3Config> {
        let bucket = self.s3_bucket.as_deref().filter(|b| !b.is_empty())?;
        let set = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        Some(S3Config {
            bucket: bucket.to_owned(),
            endpoint: set(&self.s3_endpoint),
            region: set(&self.s3_region),
            prefix: set(&self.s3_prefix),
            access_key_id: set(&self.s3_access_key_id),
            secret_access_key: set(&self.s3_secret_access_key),
            allow_http: self.s3_allow_http,
        })
    }

    /// Opens the configured store. An S3 bucket is checked with one listing, so a wrong
    /// name, endpoint or credential stops the start with one line saying so.
    pub async fn open(&self, data_dir: &Path) -> anyhow::Result<Arc<dyn BlobStore>> {
        let Some(config) = self.s3() else {
            let root = data_dir.join("files");
            std::fs::create_dir_all(&root)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", root.display()))?;
            return Ok(Arc::new(LocalFiles::new(root)));
        };
        let store = S3Files::new(&config)?;
        store.check().await.map_err(|e| {
            anyhow::anyhow!(
                "S3 bucket {:?}{} is not usable: {e}",
                config.bucket,
                config
                    .endpoint
                    .as_deref()
                    .map(|u| format!(" at {u}"))
                    .unwrap_or_default()
            )
        })?;
        tracing::info!(store = ?store, "file bytes are kept in S3");
        Ok(Arc::new(store))
    }
}
