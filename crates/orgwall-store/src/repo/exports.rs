//! Exports (tenant table): an archive of one org's data, built by the `export.build` job
//! ([`crate::jobs::export`]) and stored by [`ExportFiles`] under the org's own prefix,
//! `<root>/<org_id>/<export_id>.tar.gz`, a path the server builds from the two ids.
//!
//! An archive expires ([`ExportFiles::ttl`] after it is done, 7 days by default): from
//! `expires_at` on, the export reads `expired` and its download answers 410
//! `export_expired`, and the `export.expire` job, queued with the finished archive to run
//! at that moment, deletes the bytes inside the org's own scope (see
//! [`crate::jobs::export::expire`]).

use crate::db::TenantTx;
use crate::files::{Blob, BlobError};
use crate::jobs;
use crate::params;
use crate::repo::audit::{self, AuditEntry};
use crate::value::{now, Row};
use bytes::BytesMut;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use orgwall_core::{Error, ExportId, OrgId, Result, UserId};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// An export.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Export {
    /// Its id.
    pub id: ExportId,
    /// `queued`, `running`, `done`, `failed` or `expired` (done, and past `expires_at`).
    pub status: String,
    /// 0-100.
    pub progress: i64,
    /// The archive's size, once done.
    pub size_bytes: Option<i64>,
    /// Why it failed (or why the last attempt failed, while it is retried).
    pub error: Option<String>,
    /// Who asked for it.
    pub created_by: Option<UserId>,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When it was done or failed.
    pub finished_at: Option<DateTime<Utc>>,
    /// Once done: when the archive expires (it is deleted then, and no longer served).
    pub expires_at: Option<DateTime<Utc>>,
}

impl Export {
    /// Whether the archive may no longer be served.
    pub fn is_expired(&self) -> bool {
        self.status == "expired"
    }
}

const COLS: &str =
    "id, status, progress, size_bytes, error, created_by, created_at, finished_at, expires_at, expired_at";

fn from_row(r: &Row) -> Result<Export> {
    let expires_at: Option<DateTime<Utc>> = r.get(8)?;
    let expired_at: Option<DateTime<Utc>> = r.get(9)?;
    let mut status: String = r.get(1)?;
    if status == "done" && (expired_at.is_some() || expires_at.is_some_and(|t| t <= now())) {
        status = "expired".into();
    }
    Ok(Export {
        id: r.get(0)?,
        status,
        progress: r.get(2)?,
        size_bytes: r.get(3)?,
        error: r.get(4)?,
        created_by: r.get(5)?,
        created_at: r.get(6)?,
        finished_at: r.get(7)?,
        expires_at,
    })
}

/// Asks for an export: the row, an audit event and the job that builds it, in the
/// transaction. One export at a time per org: while one is queued or running, 409
/// `export_in_progress`.
pub async fn create(tx: &mut TenantTx<'_>) -> Result<Export> {
    let org = tx.org_id();
    let busy = tx
        .data()
        .query_opt(
            "SELECT id FROM exports WHERE org_id = $1 AND status IN ('queued', 'running') LIMIT 1",
            params![org],
        )
        .await?;
    if let Some(r) = busy {
        let other: ExportId = r.get(0)?;
        return Err(Error::Conflict(
            "export_in_progress",
            format!("export {other} of this organization is not finished yet"),
        ));
    }
    let id = ExportId::new();
    let by = tx.scope().user_id();
    let t = now();
    tx.data()
        .execute(
            "INSERT INTO exports (org_id, id, status, progress, created_by, created_at)
         VALUES ($1, $2, 'queued', 0, $3, $4)",
            params![org, id, by, t],
        )
        .await?;
    let job = jobs::enqueue_with(
        tx,
        jobs::EXPORT_BUILD,
        serde_json::json!({ "export_id": id }),
        jobs::Options {
            max_attempts: 3,
            ..jobs::Options::default()
        },
    )
    .await?;
    audit::record(
        tx,
        AuditEntry::new("export.requested")
            .target("export", id.uuid())
            .detail(serde_json::json!({ "job_id": job })),
    )
    .await?;
    get(tx, id).await
}

/// One export of this org.
pub async fn get(tx: &mut TenantTx<'_>, id: ExportId) -> Result<Export> {
    let org = tx.org_id();
    let row = tx
        .data()
        .query_one(
            &format!("SELECT {COLS} FROM exports WHERE org_id = $1 AND id = $2"),
            params![org, id],
        )
        .await?;
    from_row(&row)
}

/// This org's exports, newest first (keyset by id).
pub async fn list(
    tx: &mut TenantTx<'_>,
    limit: i64,
    before: Option<ExportId>,
) -> Result<Vec<Export>> {
    let org = tx.org_id();
    // Key-ordered pages: one plan whatever the values (`Data::query_generic`).
    let rows = match before {
        Some(b) => {
            tx.data().query_generic(
                &format!("SELECT {COLS} FROM exports WHERE org_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"),
                params![org, b, limit],
            )
            .await?
        }
        None => {
            tx.data().query_generic(
                &format!("SELECT {COLS} FROM exports WHERE org_id = $1 ORDER BY id DESC LIMIT $2"),
                params![org, limit],
            )
            .await?
        }
    };
    rows.iter().map(from_row).collect()
}

/// The build started (again).
pub(crate) async fn set_running(tx: &mut TenantTx<'_>, id: ExportId) -> Result<()> {
    let org = tx.org_id();
    tx.data()
        .execute(
            "UPDATE exports SET status = 'running', progress = 0 WHERE org_id = $1 AND id = $2",
            params![org, id],
        )
        .await?;
    Ok(())
}

/// Progress (0-99 while running).
pub(crate) async fn set_progress(tx: &mut TenantTx<'_>, id: ExportId, progress: i64) -> Result<()> {
    let org = tx.org_id();
    tx.data()
        .execute(
            "UPDATE exports SET progress = $3 WHERE org_id = $1 AND id = $2 AND status = 'running'",
            params![org, id, progress.clamp(0, 99)],
        )
        .await?;
    Ok(())
}

/// The archive is in place, until `expires_at`: the export is done, and its
/// `export.expire` job is queued to run then.
pub(crate) async fn set_done(
    tx: &mut TenantTx<'_>,
    id: ExportId,
    storage_key: &str,
    size_bytes: u64,
    expires_at: DateTime<Utc>,
) -> Result<()> {
    let org = tx.org_id();
    tx.data()
        .execute(
            "UPDATE exports SET status = 'done', progress = 100, storage_key = $3, size_bytes = $4,
                            error = NULL, finished_at = $5, expires_at = $6, expired_at = NULL
         WHERE org_id = $1 AND id = $2",
            params![
                org,
                id,
                storage_key,
                i64::try_from(size_bytes).unwrap_or(i64::MAX),
                now(),
                expires_at
            ],
        )
        .await?;
    jobs::enqueue_with(
        tx,
        jobs::EXPORT_EXPIRE,
        serde_json::json!({ "export_id": id }),
        jobs::Options {
            run_at: Some(expires_at),
            ..jobs::Options::default()
        },
    )
    .await?;
    Ok(())
}

/// This org's archives whose time is up and whose bytes are not yet deleted.
pub(crate) async fn due_for_expiry(tx: &mut TenantTx<'_>) -> Result<Vec<ExportId>> {
    let org = tx.org_id();
    let rows = tx
        .data()
        .query(
            "SELECT id FROM exports
             WHERE org_id = $1 AND status = 'done' AND expired_at IS NULL AND expires_at <= $2
             ORDER BY id",
            params![org, now()],
        )
        .await?;
    rows.iter().map(|r| r.get(0)).collect()
}

/// Records that an archive's bytes are gone (with an `export.expired` audit event).
/// `false` if that was recorded already.
pub(crate) async fn set_expired(tx: &mut TenantTx<'_>, id: ExportId) -> Result<bool> {
    let org = tx.org_id();
    let n = tx
        .data()
        .execute(
            "UPDATE exports SET expired_at = $3, storage_key = NULL
             WHERE org_id = $1 AND id = $2 AND status = 'done' AND expired_at IS NULL",
            params![org, id, now()],
        )
        .await?;
    if n > 0 {
        audit::record(
            tx,
            AuditEntry::new("export.expired").target("export", id.uuid()),
        )
        .await?;
    }
    Ok(n > 0)
}

/// The build failed: `failed` for good, or queued again (`retrying`) with the error.
pub(crate) async fn set_failed(
    tx: &mut TenantTx<'_>,
    id: ExportId,
    error: &str,
    retrying: bool,
) -> Result<()> {
    let org = tx.org_id();
    let error: String = error.chars().take(2000).collect();
    if retrying {
        tx.data().execute(
            "UPDATE exports SET status = 'queued', progress = 0, error = $3 WHERE org_id = $1 AND id = $2",
            params![org, id, format!("{error} (retrying)")],
        )
        .await?;
    } else {
        tx.data().execute(
            "UPDATE exports SET status = 'failed', error = $3, storage_key = NULL, size_bytes = NULL,
                                finished_at = $4
             WHERE org_id = $1 AND id = $2",
            params![org, id, error, now()],
        )
        .await?;
    }
    Ok(())
}

/// Where export archives live: `<root>/<org_id>/<export_id>.tar.gz`. Every path is built
/// from an org id and an export id, never from text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportFiles {
    /// Shared, so cloning the server's state allocates nothing.
    root: std::sync::Arc<Path>,
    max_bytes: Option<u64>,
    ttl: Duration,
}

/// How long a finished archive is kept unless configured otherwise: 7 days.
pub const DEFAULT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

impl ExportFiles {
    /// Archives under `root` (`<data_dir>/exports` for `serve`).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ExportFiles {
            root: std::sync::Arc::from(root.into()),
            max_bytes: None,
            ttl: DEFAULT_TTL,
        }
    }

    /// Archives next to a file store's root: `<dir>/exports` beside `<dir>/files`, else
    /// `<root>-exports`.
    pub fn next_to_files(files_root: &Path) -> Self {
        match (files_root.file_name(), files_root.parent()) {
            (Some(n), Some(parent)) if n == "files" => Self::new(parent.join("exports")),
            _ => {
                let mut s = files_root.as_os_str().to_owned();
                s.push("-exports");
                Self::new(PathBuf::from(s))
            }
        }
    }

    /// Caps an archive's size: writing past it fails like a full disk.
    pub fn with_max_bytes(mut self, max_bytes: Option<u64>) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Keeps a finished archive for `ttl` (then it expires and is deleted).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How long a finished archive is kept.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The archive size cap, if any.
    pub fn max_bytes(&self) -> Option<u64> {
        self.max_bytes
    }

    /// The org's directory.
    pub fn org_dir(&self, org: OrgId) -> PathBuf {
        self.root.join(org.to_string())
    }

    /// The storage key recorded for an archive: `<org_id>/<export_id>.tar.gz`.
    pub fn key(org: OrgId, id: ExportId) -> String {
        format!("{org}/{id}.tar.gz")
    }

    /// The archive's path.
    pub fn path_of(&self, org: OrgId, id: ExportId) -> PathBuf {
        self.org_dir(org).join(format!("{id}.tar.gz"))
    }

    /// Opens a finished archive of `org`.
    pub async fn open(&self, org: OrgId, id: ExportId) -> std::result::Result<Blob, BlobError> {
        let f = tokio::fs::File::open(self.path_of(org, id))
            .await
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    BlobError::NotFound
                } else {
                    BlobError::Io(e)
                }
            })?;
        let len = f.metadata().await.map_err(BlobError::Io)?.len();
        let stream = futures::stream::unfold(Some(f), |state| async move {
            let mut f = state?;
            let mut buf = BytesMut::with_capacity(64 * 1024);
            match f.read_buf(&mut buf).await {
                Ok(0) => None,
                Ok(_) => Some((Ok(buf.freeze()), Some(f))),
                Err(e) => Some((Err(e), None)),
            }
        })
        .boxed();
        Ok(Blob { len, stream })
    }

    /// Deletes one archive of `org`. Already gone is fine.
    pub async fn remove(&self, org: OrgId, id: ExportId) -> std::io::Result<()> {
        match tokio::fs::remove_file(self.path_of(org, id)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Deletes every archive of `org` (the org purge). Already gone is fine.
    pub async fn purge_org(&self, org: OrgId) -> std::io::Result<()> {
        match tokio::fs::remove_dir_all(self.org_dir(org)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
