//! Files (tenant table): the metadata of stored blobs. The bytes live in a
//! [`crate::files::BlobStore`] under the key recorded here, which must be the org's own
//! key for the file ([`crate::files::key_for`]); a row can never name another org's blob.

use crate::db::TenantTx;
use crate::files::key_for;
use crate::params;
use crate::repo::audit::{self, AuditEntry};
use crate::value::{now, Row};
use chrono::{DateTime, Utc};
use orgwall_core::{Error, FileId, Result, UserId};

/// A stored file's metadata.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileMeta {
    /// Its id.
    pub id: FileId,
    /// Display name (sanitized by the caller; never a path).
    pub name: String,
    /// The content type it is served with.
    pub content_type: String,
    /// Size in bytes.
    pub size_bytes: i64,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
    /// Who uploaded it (none for API keys and system actors).
    pub created_by: Option<UserId>,
    /// When it was uploaded.
    pub created_at: DateTime<Utc>,
    /// Where the bytes are (server-side only, never serialized).
    #[serde(skip)]
    pub storage_key: String,
}

/// A file to record.
#[derive(Debug, Clone)]
pub struct NewFile<'a> {
    /// The id its blob was stored under.
    pub id: FileId,
    /// Display name.
    pub name: &'a str,
    /// Content type.
    pub content_type: &'a str,
    /// Size in bytes.
    pub size_bytes: u64,
    /// The blob's key: must be `key_for(org, id)`.
    pub storage_key: &'a str,
    /// SHA-256, lowercase hex.
    pub sha256: &'a str,
}

const COLS: &str =
    "id, name, content_type, size_bytes, sha256, created_by, created_at, storage_key";

fn from_row(r: &Row) -> Result<FileMeta> {
    Ok(FileMeta {
        id: r.get(0)?,
        name: r.get(1)?,
        content_type: r.get(2)?,
        size_bytes: r.get(3)?,
        sha256: r.get(4)?,
        created_by: r.get(5)?,
        created_at: r.get(6)?,
        storage_key: r.get(7)?,
    })
}

/// Records a stored file (and an audit event), within the org's storage quota (403
/// `quota_exceeded` otherwise: the caller then removes the bytes).
pub async fn insert(tx: &mut TenantTx<'_>, f: NewFile<'_>) -> Result<FileMeta> {
    let org = tx.org_id();
    if f.storage_key != key_for(org, f.id) {
        return Err(Error::ScopeViolation);
    }
    let name = super::text("name", f.name, 255)?;
    let content_type = super::text("content_type", f.content_type, 100)?;
    let size_bytes = i64::try_from(f.size_bytes)
        .map_err(|_| Error::Validation("size_bytes is out of range".into()))?;
    crate::quota::check(tx, crate::quota::Quota::StorageBytes(size_bytes)).await?;
    let by = tx.scope().user_id();
    let t = now();
    tx.data().execute(
        "INSERT INTO files (org_id, id, name, content_type, size_bytes, storage_key, sha256, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        params![org, f.id, &name, &content_type, size_bytes, f.storage_key, f.sha256, by, t],
    )
    .await?;
    audit::record(
        tx,
        AuditEntry::new("file.uploaded")
            .target("file", f.id.uuid())
            .detail(serde_json::json!({ "name": &name, "size_bytes": size_bytes })),
    )
    .await?;
    Ok(FileMeta {
        id: f.id,
        name,
        content_type,
        size_bytes,
        sha256: f.sha256.to_owned(),
        created_by: by,
        created_at: t,
        storage_key: f.storage_key.to_owned(),
    })
}

/// Gets a file of this org.
pub async fn get(tx: &mut TenantTx<'_>, id: FileId) -> Result<FileMeta> {
    let org = tx.org_id();
    let r = tx
        .data()
        .query_one(
            &format!("SELECT {COLS} FROM files WHERE org_id = $1 AND id = $2"),
            params![org, id],
        )
        .await?;
    from_row(&r)
}

/// Lists up to `limit` files after `after` (keyset, id order: upload order).
pub async fn list(
    tx: &mut TenantTx<'_>,
    limit: i64,
    after: Option<uuid::Uuid>,
) -> Result<Vec<FileMeta>> {
    let org = tx.org_id();
    // A key-ordered page: one plan whatever the values (`Data::query_generic`).
    let rows = tx
        .data()
        .query_generic(
            &format!("SELECT {COLS} FROM files WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3"),
            params![org, after.unwrap_or(uuid::Uuid::nil()), limit],
        )
        .await?;
    rows.iter().map(from_row).collect()
}

/// Deletes a file's row (and records an audit event); returns what was deleted, so the
/// caller can delete the blob once the transaction has committed.
pub async fn delete(tx: &mut TenantTx<'_>, id: FileId) -> Result<FileMeta> {
    let f = get(tx, id).await?;
    let org = tx.org_id();
    // The usage row first, as creates take it (see `quota::lock_for_delete`).
    crate::quota::lock_for_delete(tx).await?;
    let n = tx
        .data()
        .execute(
            "DELETE FROM files WHERE org_id = $1 AND id = $2",
            params![org, id],
        )
        .await?;
    if n == 0 {
        return Err(Error::NotFound);
    }
    audit::record(
        tx,
        AuditEntry::new("file.deleted")
            .target("file", id.uuid())
            .detail(serde_json::json!({ "name": &f.name, "size_bytes": f.size_bytes })),
    )
    .await?;
    Ok(f)
}

/// The number of files of this org and their total size in bytes.
pub async fn totals(tx: &mut TenantTx<'_>) -> Result<(i64, i64)> {
    let org = tx.org_id();
    let r = tx.data().query_one(
            "SELECT count(*), CAST(coalesce(sum(size_bytes), 0) AS bigint) FROM files WHERE org_id = $1",
            params![org],
        )
        .await?;
    Ok((r.get(0)?, r.get(1)?))
}

/// The total size in bytes of this org's files (what a storage quota counts).
pub async fn total_bytes(tx: &mut TenantTx<'_>) -> Result<i64> {
    Ok(totals(tx).await?.1)
}
