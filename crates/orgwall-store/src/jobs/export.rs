//! The `export.build` job (tenant, audited): one org's data as a `.tar.gz`.
//!
//! The archive holds `tables/<table>.jsonl` for every tenant table but the derived ones
//! (`Module::derived_tables`: the search terms, rebuilt from the rows) (one JSON object per
//! row, the table's columns by name, read through the org's own scope: the database wall
//! decides which rows there are, and every one carries the org's `org_id`), `files/<id>`
//! for every stored file of the org (its metadata is in `tables/files.jsonl`) and
//! `manifest.json` (row counts, files, columns left out). Tenant tables are found in the
//! catalog, so a table added later is exported without code. Columns holding secret
//! hashes (`*_hash`) are left out. Timestamps are RFC 3339 on both backends.
//!
//! It is written to a temporary file in the org's directory and renamed into
//! `<exports>/<org_id>/<export_id>.tar.gz` when complete, so an archive is either whole or
//! absent: any failure (a full disk, a broken blob, the database) removes the partial
//! file, marks the export `failed` with the error (or queued again, if the job has
//! attempts left) and fails the job.
//!
//! A finished archive is kept for [`ExportFiles::ttl`]: marking it done also queues an
//! `export.expire` job ([`expire`], tenant, audited: it enters the org's scope, writing
//! `system.scope_entered`) to run when it expires. That job deletes the bytes of every
//! archive of its org whose time is up (its own, and any a failed earlier run left) and
//! records each as expired, with an `export.expired` audit event. The bytes go first, so
//! a failure leaves the row to retry with; the download refuses an expired export from
//! `expires_at` on, whether or not the job has run yet.

use super::worker::{JobCtx, JobError, JobInfo};
use crate::access::OrgScope;
use crate::repo::audit::{self, AuditEntry};
use crate::repo::exports::{self, ExportFiles};
use crate::value::Val;
use crate::BackendKind;
use chrono::{TimeZone, Utc};
use flate2::write::GzEncoder;
use futures::StreamExt;
use orgwall_core::{Error, ExportId, FileId};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    export_id: ExportId,
}

/// Rows read per query.
const BATCH: i64 = 1000;

pub(crate) async fn run(ctx: JobCtx, scope: OrgScope, job: JobInfo) -> Result<(), JobError> {
    let p: Payload = job.parse()?;
    let id = p.export_id;
    let org = scope.org_id();
    let mut tx = ctx.db.write(&scope).await?;
    let e = match exports::get(&mut tx, id).await {
        Ok(e) => e,
        Err(Error::NotFound) => {
            return Err(JobError::Fatal(format!(
                "export {id} does not exist in this organization"
            )))
        }
        Err(e) => return Err(e.into()),
    };
    let path = ctx.exports.path_of(org, id);
    if e.status == "done" && tokio::fs::try_exists(&path).await.unwrap_or(false) {
        return Ok(()); // a previous attempt finished
    }
    exports::set_running(&mut tx, id).await?;
    tx.commit().await?;

    match build(&ctx, &scope, id).await {
        Ok(size) => {
            let expires_at = crate::value::now()
                + chrono::Duration::from_std(ctx.exports.ttl()).unwrap_or(chrono::Duration::MAX);
            let mut tx = ctx.db.write(&scope).await?;
            exports::set_done(&mut tx, id, &ExportFiles::key(org, id), size, expires_at).await?;
            audit::record(
                &mut tx,
                AuditEntry::new("export.completed")
                    .target("export", id.uuid())
                    .detail(serde_json::json!({ "size_bytes": size })),
            )
            .await?;
            tx.commit().await?;
            tracing::info!(export_id = %id, size_bytes = size, "export archive written");
            Ok(())
        }
        Err(err) => {
            let fatal = matches!(err, JobError::Fatal(_)) || job.is_last_attempt();
            let msg = err.to_string();
            let mut tx = ctx.db.write(&scope).await?;
            exports::set_failed(&mut tx, id, &msg, !fatal).await?;
            if fatal {
                audit::record(
                    &mut tx,
                    AuditEntry::new("export.failed")
                        .target("export", id.uuid())
                        .detail(serde_json::json!({ "error": msg })),
                )
                .await?;
            }
            tx.commit().await?;
            Err(err)
        }
    }
}

/// The `export.expire` handler: deletes the bytes of this org's expired archives and
/// marks them expired (see the module documentation).
pub(crate) async fn expire(ctx: JobCtx, scope: OrgScope, job: JobInfo) -> Result<(), JobError> {
    let _: Payload = job.parse()?;
    let org = scope.org_id();
    let due = {
        let mut tx = ctx.db.read(&scope).await?;
        let due = exports::due_for_expiry(&mut tx).await?;
        tx.commit().await?;
        due
    };
    for id in due {
        ctx.exports
            .remove(org, id)
            .await
            .map_err(|e| io_err(&format!("deleting the archive of export {id}"), e))?;
        let mut tx = ctx.db.write(&scope).await?;
        if exports::set_expired(&mut tx, id).await? {
            tracing::info!(export_id = %id, "expired export archive deleted");
        }
        tx.commit().await?;
    }
    Ok(())
}

/// Removes a file when dropped, unless disarmed.
struct Scratch(Option<PathBuf>);

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A writer that fails like a full disk past a cap (the configured archive size limit).
struct Capped<W> {
    inner: W,
    left: Option<u64>,
    cap: u64,
}

impl<W: Write> Write for Capped<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(left) = self.left {
            if u64::try_from(buf.len()).unwrap_or(u64::MAX) > left {
                return Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    format!(
                        "no space left for the archive (exports are limited to {} bytes)",
                        self.cap
                    ),
                ));
            }
        }
        let n = self.inner.write(buf)?;
        if let Some(left) = &mut self.left {
            *left = left.saturating_sub(u64::try_from(n).unwrap_or(u64::MAX));
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

type TarGz = tar::Builder<GzEncoder<Capped<std::fs::File>>>;

/// The archive being written; appends run on the blocking pool.
struct Archive {
    tar: Option<TarGz>,
}

fn io_err(what: &str, e: impl std::fmt::Display) -> JobError {
    JobError::Retry(format!("{what}: {e}"))
}

impl Archive {
    async fn create(path: PathBuf, max_bytes: Option<u64>) -> Result<Archive, JobError> {
        let tar = tokio::task::spawn_blocking(move || -> io::Result<TarGz> {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)?;
            let capped = Capped {
                inner: f,
                left: max_bytes,
                cap: max_bytes.unwrap_or(0),
            };
            let mut b = tar::Builder::new(GzEncoder::new(capped, flate2::Compression::default()));
            b.mode(tar::HeaderMode::Deterministic);
            Ok(b)
        })
        .await
        .map_err(|e| io_err("creating the archive", e))?
        .map_err(|e| io_err("creating the archive", e))?;
        Ok(Archive { tar: Some(tar) })
    }

    /// Appends the file at `path` as `name`.
    async fn append(&mut self, name: String, path: PathBuf) -> Result<(), JobError> {
        let mut tar = self
            .tar
            .take()
            .ok_or_else(|| JobError::Retry("the archive was lost after an error".into()))?;
        let (tar, r) = tokio::task::spawn_blocking(move || {
            let r = tar.append_path_with_name(&path, &name);
            (tar, r)
        })
        .await
        .map_err(|e| io_err("writing the archive", e))?;
        r.map_err(|e| io_err("writing the archive", e))?;
        self.tar = Some(tar);
        Ok(())
    }

    /// Finishes the tar and gzip streams and flushes the file to disk.
    async fn finish(mut self) -> Result<(), JobError> {
        let tar = self
            .tar
            .take()
            .ok_or_else(|| JobError::Retry("the archive was lost after an error".into()))?;
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            let gz = tar.into_inner()?;
            let capped = gz.finish()?;
            capped.inner.sync_all()
        })
        .await
        .map_err(|e| io_err("writing the archive", e))?
        .map_err(|e| io_err("writing the archive", e))
    }
}

/// Builds the archive and renames it into place; returns its size.
async fn build(ctx: &JobCtx, scope: &OrgScope, id: ExportId) -> Result<u64, JobError> {
    let org = scope.org_id();
    let dir = ctx.exports.org_dir(org);
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| io_err("creating the export directory", e))?;
    let salt = rand::random::<u64>();
    let tmp_path = dir.join(format!(".tmp-{id}-{salt:016x}.tar.gz"));
    let part_path = dir.join(format!(".part-{id}-{salt:016x}"));
    let mut tmp = Scratch(Some(tmp_path.clone()));
    let _part = Scratch(Some(part_path.clone()));
    let mut ar = Archive::create(tmp_path.clone(), ctx.exports.max_bytes()).await?;

    // Every tenant table the service registered, by name, but the derived ones (search
    // terms: computed from the rows the archive holds, not data of their own).
    let mut tables: Vec<&'static str> = ctx.db.catalog().exported_tables().collect();
    tables.sort_unstable();
    let steps = i64::try_from(tables.len())
        .unwrap_or(i64::MAX)
        .saturating_add(1);
    let mut manifest_tables = Vec::new();
    let mut left_out = Vec::new();
    for (i, table) in tables.iter().enumerate() {
        let (rows, skipped) = dump_table(ctx, scope, table, &part_path).await?;
        ar.append(format!("tables/{table}.jsonl"), part_path.clone())
            .await?;
        manifest_tables.push(serde_json::json!({ "table": table, "rows": rows }));
        for c in skipped {
            left_out.push(format!("{table}.{c}"));
        }
        let done = i64::try_from(i).unwrap_or(i64::MAX).saturating_add(1);
        progress(ctx, scope, id, done.saturating_mul(100) / steps).await?;
    }

    let files = {
        let mut tx = ctx.db.read(scope).await?;
        let rows = tx
            .data()
            .query(
                "SELECT id, storage_key FROM files WHERE org_id = $1 ORDER BY id",
                crate::params![org],
            )
            .await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| Ok((r.get::<FileId>(0)?, r.get::<String>(1)?)))
            .collect::<orgwall_core::Result<Vec<_>>>()?
    };
    let mut missing = Vec::new();
    for (file, key) in &files {
        match ctx.files.open(org, key).await {
            Ok(blob) => {
                copy_blob(blob, &part_path).await?;
                ar.append(format!("files/{file}"), part_path.clone())
                    .await?;
            }
            Err(crate::files::BlobError::NotFound) => missing.push(file.to_string()),
            Err(e) => return Err(io_err(&format!("reading file {file}"), e)),
        }
    }

    let manifest = serde_json::json!({
        "format": "orgwall-export/1",
        "org_id": org,
        "export_id": id,
        "created_at": crate::value::now(),
        "backend": match ctx.db.kind() { BackendKind::Postgres => "postgres", BackendKind::Sqlite => "sqlite" },
        "tables": manifest_tables,
        "files": files.len() - missing.len(),
        "missing_files": missing,
        "columns_left_out": left_out,
    });
    let text =
        serde_json::to_vec_pretty(&manifest).map_err(|e| io_err("writing the manifest", e))?;
    tokio::fs::write(&part_path, text)
        .await
        .map_err(|e| io_err("writing the manifest", e))?;
    ar.append("manifest.json".into(), part_path.clone()).await?;
    ar.finish().await?;

    let dest = ctx.exports.path_of(org, id);
    tokio::fs::rename(&tmp_path, &dest)
        .await
        .map_err(|e| io_err("moving the archive into place", e))?;
    tmp.0 = None;
    if let Ok(d) = tokio::fs::File::open(&dir).await {
        let _ = d.sync_all().await;
    }
    let size = tokio::fs::metadata(&dest)
        .await
        .map_err(|e| io_err("reading the archive", e))?
        .len();
    Ok(size)
}

async fn progress(ctx: &JobCtx, scope: &OrgScope, id: ExportId, p: i64) -> Result<(), JobError> {
    let mut tx = ctx.db.write(scope).await?;
    exports::set_progress(&mut tx, id, p).await?;
    tx.commit().await?;
    Ok(())
}

async fn copy_blob(blob: crate::files::Blob, to: &Path) -> Result<(), JobError> {
    let mut out = tokio::fs::File::create(to)
        .await
        .map_err(|e| io_err("staging a file", e))?;
    let mut s = blob.stream;
    while let Some(chunk) = s.next().await {
        let chunk = chunk.map_err(|e| io_err("reading a file", e))?;
        out.write_all(&chunk)
            .await
            .map_err(|e| io_err("staging a file", e))?;
    }
    out.flush().await.map_err(|e| io_err("staging a file", e))
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Writes `table`'s rows of the scope's org to `to` as JSON lines. Returns the row count
/// and the columns left out (secret hashes, unreadable types).
async fn dump_table(
    ctx: &JobCtx,
    scope: &OrgScope,
    table: &str,
    to: &Path,
) -> Result<(u64, Vec<String>), JobError> {
    let org = scope.org_id();
    let mut tx = ctx.db.read(scope).await?;
    // Each table from where it lives: a data-plane table from the org's placement.
    let plane = if ctx.db.catalog().is_data(table) {
        crate::Plane::Data
    } else {
        crate::Plane::Control
    };
    let all = tx
        .raw()
        .on(plane)
        .columns(&format!("SELECT * FROM {} WHERE 1 = 0", quote(table)))
        .await?;
    let mut cols = Vec::new();
    let mut skipped = Vec::new();
    for (name, readable) in all {
        if readable && !name.ends_with("_hash") {
            cols.push(name);
        } else {
            skipped.push(name);
        }
    }
    // Keyset pagination on the row's id within the org (`id`, or for a table keyed by
    // another id, such as memberships' user_id, that one).
    let key = cols
        .iter()
        .find(|c| *c == "id")
        .or_else(|| cols.iter().find(|c| c.ends_with("_id") && *c != "org_id"))
        .cloned();
    let list = cols.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
    let mut out = tokio::io::BufWriter::new(
        tokio::fs::File::create(to)
            .await
            .map_err(|e| io_err("staging a table", e))?,
    );
    let mut count = 0u64;
    let mut after: Option<Val> = None;
    loop {
        let rows = match (&key, &after) {
            (Some(k), Some(a)) => {
                tx.raw().on(plane).query(
                    &format!(
                        "SELECT {list} FROM {t} WHERE org_id = $1 AND {k} > $2 ORDER BY {k} LIMIT $3",
                        t = quote(table),
                        k = quote(k)
                    ),
                    &[org.into(), a.clone(), BATCH.into()],
                )
                .await?
            }
            (Some(k), None) => {
                tx.raw().on(plane).query(
                    &format!(
                        "SELECT {list} FROM {t} WHERE org_id = $1 ORDER BY {k} LIMIT $2",
                        t = quote(table),
                        k = quote(k)
                    ),
                    &[org.into(), BATCH.into()],
                )
                .await?
            }
            (None, _) => {
                tx.raw().on(plane).query(
                    &format!("SELECT {list} FROM {t} WHERE org_id = $1", t = quote(table)),
                    &[org.into()],
                )
                .await?
            }
        };
        let n = rows.len();
        for r in &rows {
            let mut obj = serde_json::Map::new();
            for (name, v) in cols.iter().zip(r.values()) {
                obj.insert(name.clone(), to_json(name, v));
            }
            let mut line = serde_json::to_vec(&serde_json::Value::Object(obj))
                .map_err(|e| io_err("encoding a row", e))?;
            line.push(b'\n');
            out.write_all(&line)
                .await
                .map_err(|e| io_err("staging a table", e))?;
            count += 1;
        }
        let pos = key.as_ref().and_then(|k| cols.iter().position(|c| c == k));
        match (pos, rows.last()) {
            (Some(i), Some(last)) if i64::try_from(n).unwrap_or(0) == BATCH => {
                after = last.values().get(i).cloned();
            }
            _ => break,
        }
    }
    tx.commit().await?;
    out.flush()
        .await
        .map_err(|e| io_err("staging a table", e))?;
    Ok((count, skipped))
}

/// One stored value as JSON. SQLite keeps timestamps as integer microseconds: columns
/// named `*_at` become RFC 3339 text, as PostgreSQL's do.
fn to_json(name: &str, v: &Val) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Val::Null => J::Null,
        Val::Bool(b) => J::Bool(*b),
        Val::Int(i) if name.ends_with("_at") => match Utc.timestamp_micros(*i).single() {
            Some(t) => J::String(t.to_rfc3339()),
            None => J::from(*i),
        },
        Val::Int(i) => J::from(*i),
        Val::Float(f) => J::from(*f),
        Val::Text(s) => J::String(s.clone()),
        Val::Uuid(u) => J::String(u.hyphenated().to_string()),
        Val::Time(t) => J::String(t.to_rfc3339()),
        Val::Bytes(b) => J::String(hex::encode(b)),
        Val::Json(j) => j.clone(),
    }
}
