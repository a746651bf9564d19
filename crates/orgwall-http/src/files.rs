//! Files: upload (multipart), list, metadata, download, delete; and the org's stats.
//!
//! Upload rules:
//! - one multipart part named `file`; the body is capped at the configured upload size
//!   ([`crate::AppState::max_upload_bytes`], default 10 MiB) plus a little framing, and the
//!   file's bytes at exactly that size: 413 `payload_too_large` beyond it, nothing stored;
//! - the client's filename is display text only: any path is stripped, control and
//!   bidirectional-override characters removed, at most 255 characters, `file` if empty;
//!   the storage key is the server's `<org_id>/<file_id>`;
//! - the part's declared content type must be in [`ALLOWED_TYPES`] (415
//!   `unsupported_media_type` otherwise; a part without one is `application/octet-stream`)
//!   and agree with the bytes' signature (PNG, JPEG, GIF, PDF): a declared image or PDF
//!   must carry its signature and a declared text or JSON file must not carry one (422
//!   `content_type_mismatch`);
//! - the bytes are written (temp file, fsync, rename) before the row is inserted; if the
//!   row cannot be inserted the bytes are removed.
//!
//! Downloads are served as attachments with `X-Content-Type-Options: nosniff` and the
//! stored content type. A file id of another org is 404 (the row lookup is scoped), and
//! the store refuses keys outside the acting org's prefix besides.

use crate::body::{Params, PathOf};
use crate::page::{paged, PageQuery, Paged};
use crate::problem::Problem;
use crate::routes::{route, schema, Access, Route, RouteSpec};
use crate::wall::{id, Scoped};
use crate::AppState;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Json;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use orgwall_core::{Error, FileId, OrgId, Permission};
use orgwall_store::files::{BlobError, BlobStore};
use orgwall_store::repo::files::{self, FileMeta, NewFile};
use orgwall_store::repo::stats::{self, OrgStats};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// The default upload limit: 10 MiB.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 10 * 1024 * 1024;

/// Room for multipart framing (boundaries, part headers) on top of the file itself.
const MULTIPART_OVERHEAD: u64 = 16 * 1024;

/// The content types a file may be uploaded as.
pub const ALLOWED_TYPES: &[&str] = &[
    "text/plain",
    "text/csv",
    "application/json",
    "application/pdf",
    "image/png",
    "image/jpeg",
    "image/gif",
    "application/octet-stream",
];

/// The longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 255;

/// Bytes needed to recognize every signature in [`sniff`].
const SNIFF_LEN: usize = 8;

/// A directory for the files of an [`AppState::new`](crate::AppState::new) state: under
/// the system temp dir, unique per process and state.
pub fn scratch_root() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "orgwall-files-{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        uuid::Uuid::now_v7().simple()
    ))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Page size, 1 to 200 (default 50).
    #[schemars(with = "Option<i64>", range(min = 1, max = 200))]
    limit: Option<String>,
    /// Opaque cursor from the previous page's `next_cursor`.
    cursor: Option<String>,
}

#[derive(Deserialize)]
struct FilePath {
    id: String,
}

const IDS: &[(&str, &str)] = &[("id", "file")];

static UPLOAD: RouteSpec = RouteSpec {
    method: "POST",
    path: "/files",
    access: Access::Org(Some(orgwall_store::perms::FILES_WRITE)),
    summary: "Upload a file: multipart/form-data with one part named `file`",
    ids: &[],
    body: None,
    status: 201,
    multipart: Some(upload_form),
    ..RouteSpec::DEFAULT
};
static LIST: RouteSpec = RouteSpec {
    method: "GET",
    path: "/files",
    access: Access::Org(Some(orgwall_store::perms::FILES_READ)),
    summary: "List files (metadata)",
    ids: &[],
    body: None,
    status: 200,
    query: Some(schema::<ListQuery>),
    ..RouteSpec::DEFAULT
};
static GET: RouteSpec = RouteSpec {
    method: "GET",
    path: "/files/{id}",
    access: Access::Org(Some(orgwall_store::perms::FILES_READ)),
    summary: "Get a file's metadata",
    ids: IDS,
    body: None,
    status: 200,
    ..RouteSpec::DEFAULT
};
static CONTENT: RouteSpec = RouteSpec {
    method: "GET",
    path: "/files/{id}/content",
    access: Access::Org(Some(orgwall_store::perms::FILES_READ)),
    summary: "Download a file's bytes (as an attachment)",
    ids: IDS,
    body: None,
    status: 200,
    ..RouteSpec::DEFAULT
};
static DELETE: RouteSpec = RouteSpec {
    method: "DELETE",
    path: "/files/{id}",
    access: Access::Org(Some(orgwall_store::perms::FILES_DELETE)),
    summary: "Delete a file and its bytes",
    ids: IDS,
    body: None,
    status: 204,
    ..RouteSpec::DEFAULT
};
static STATS: RouteSpec = RouteSpec {
    method: "GET",
    path: "/stats",
    access: Access::Org(Some(Permission::ORG_READ)),
    summary: "Counts of this organization's data: tickets by status and project, notes, files, storage, members",
    ids: &[],
    body: None,
    status: 200,
    ..RouteSpec::DEFAULT
};

/// The upload's `multipart/form-data` body, for the document.
fn upload_form() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "required": ["file"],
        "additionalProperties": false,
        "properties": {
            "file": {
                "type": "string",
                "format": "binary",
                "description": "The file's bytes; the part's filename is display text, its content type one of the accepted types (default application/octet-stream) and must agree with the bytes"
            }
        }
    })
}

/// The file routes and the stats route.
pub fn routes() -> Vec<Route> {
    vec![
        // The app-wide 64 KiB JSON limit does not apply here: the handler enforces the
        // configured upload limit itself (it is state, not known when routes are built).
        route(&UPLOAD, post(upload).layer(DefaultBodyLimit::disable())),
        route(&LIST, get(list)),
        route(&GET, get(get_one)),
        route(&CONTENT, get(content)),
        route(&DELETE, delete(remove)),
        route(&STATS, get(org_stats)),
    ]
}

/// The display name of an uploaded file: the last path segment (`/` or `\`), without
/// control or bidirectional-formatting characters, trimmed, at most 255 characters;
/// `file` when nothing is left.
pub fn display_name(raw: &str) -> String {
    let clean: String = raw
        .chars()
        .filter(|c| !c.is_control() && !is_bidi_or_invisible(*c))
        .collect();
    let last = clean.rsplit(['/', '\\']).next().unwrap_or("").trim();
    let last = if last == "." || last == ".." {
        ""
    } else {
        last
    };
    let name: String = last.chars().take(MAX_NAME_CHARS).collect();
    let name = name.trim();
    if name.is_empty() {
        "file".to_owned()
    } else {
        name.to_owned()
    }
}

fn is_bidi_or_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// The content type a file's leading bytes identify, if any.
pub fn sniff(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if head.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else {
        None
    }
}

/// Whether bytes starting with `head` may be stored as `declared`.
pub fn agrees(declared: &str, head: &[u8]) -> bool {
    match declared {
        "image/png" | "image/jpeg" | "image/gif" | "application/pdf" => {
            sniff(head) == Some(declared)
        }
        "application/octet-stream" => true,
        _ => sniff(head).is_none(),
    }
}

/// `image/PNG; x=y` -> `image/png`.
fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn too_large(max: u64) -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("A file must be at most {max} bytes."),
    )
}

fn bad_multipart(detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "invalid_multipart", detail)
}

fn not_multipart() -> Problem {
    Problem::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "The body must be multipart/form-data with one part named file.",
    )
}

/// Caps the request body at `cap` bytes (`hit` records that the cap, not the client's
/// framing, broke the stream) and hands it on one chunk per poll.
fn capped(body: axum::body::Body, cap: u64, hit: Arc<AtomicBool>) -> axum::body::Body {
    let mut seen: u64 = 0;
    let stream = body.into_data_stream().map(move |chunk| {
        let chunk = chunk?;
        seen = seen.saturating_add(u64::try_from(chunk.len()).unwrap_or(u64::MAX));
        if seen > cap {
            hit.store(true, Ordering::Relaxed);
            return Err(axum::Error::new(std::io::Error::other(
                "request body too large",
            )));
        }
        Ok(chunk)
    });
    axum::body::Body::from_stream(OneChunkPerPoll {
        inner: stream,
        ready: false,
    })
}

/// Yields to the executor before each chunk. The multipart parser reads its input until
/// it would block, so on a fast connection it would buffer a whole upload in memory while
/// the disk catches up; one chunk per poll keeps its buffer at one chunk.
struct OneChunkPerPoll<S> {
    inner: S,
    ready: bool,
}

impl<S: futures::Stream + Unpin> futures::Stream for OneChunkPerPoll<S> {
    type Item = S::Item;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<S::Item>> {
        if !self.ready {
            self.ready = true;
            cx.waker().wake_by_ref();
            return std::task::Poll::Pending;
        }
        let next = self.inner.poll_next_unpin(cx);
        if next.is_ready() {
            self.ready = false;
        }
        next
    }
}

/// Removes a stored blob unless disarmed: explicitly on a failed insert, and (spawned)
/// if the request is abandoned between the write and the commit.
struct Orphan {
    store: Arc<dyn BlobStore>,
    org: OrgId,
    key: Option<String>,
}

impl Orphan {
    fn disarm(mut self) {
        self.key = None;
    }

    async fn remove(mut self) {
        if let Some(key) = self.key.take() {
            remove_blob(self.store.as_ref(), self.org, &key).await;
        }
    }
}

impl Drop for Orphan {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let (store, org) = (self.store.clone(), self.org);
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { remove_blob(store.as_ref(), org, &key).await });
            }
        }
    }
}

async fn remove_blob(store: &dyn BlobStore, org: OrgId, key: &str) {
    if let Err(e) = store.delete(org, key).await {
        tracing::error!(%org, key, error = %e, "could not remove a file's bytes");
    }
}

async fn upload(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    req: Request,
) -> Result<(StatusCode, Json<FileMeta>), Problem> {
    let max = state.max_upload_bytes;
    let cap = max.saturating_add(MULTIPART_OVERHEAD);
    let declared_len = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_len.is_some_and(|n| n > cap) {
        return Err(too_large(max));
    }
    // An org with no storage left is refused before a byte is read or written (the
    // insert checks the quota again, exactly, in its own transaction).
    {
        let mut tx = state.db.read(&scope).await?;
        let usage = orgwall_store::quota::usage(&mut tx).await?;
        tx.commit().await?;
        if usage.used.storage_bytes >= usage.limits.storage_bytes {
            return Err(Error::Refused(
                "quota_exceeded",
                format!("the {} plan's storage is used up", usage.plan),
            )
            .into());
        }
    }
    let hit = Arc::new(AtomicBool::new(false));
    let req = req.map(|b| capped(b, cap, hit.clone()));
    let mut mp = Multipart::from_request(req, &state)
        .await
        .map_err(|_| not_multipart())?;
    let read_err = |e: axum::extract::multipart::MultipartError| {
        if hit.load(Ordering::Relaxed) {
            too_large(max)
        } else {
            bad_multipart(format!(
                "The multipart body is malformed: {}",
                e.body_text()
            ))
        }
    };

    let mut field = match mp.next_field().await.map_err(read_err)? {
        Some(f) if f.name() == Some("file") => f,
        Some(f) => {
            let name: String = f.name().unwrap_or("").chars().take(50).collect();
            return Err(Error::Validation(format!(
                "unknown part {name:?}: send one part named file"
            ))
            .into());
        }
        None => return Err(Error::Validation("the body has no part named file".into()).into()),
    };
    let name = display_name(field.file_name().unwrap_or(""));
    // The raw header: a type that does not parse is refused, not taken as absent.
    let content_type = match field.headers().get(header::CONTENT_TYPE) {
        None => "application/octet-stream".to_owned(),
        Some(v) => essence(v.to_str().unwrap_or("")),
    };
    if !ALLOWED_TYPES.contains(&content_type.as_str()) {
        let shown: String = content_type.chars().take(100).collect();
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "Files of type {shown:?} are not accepted; allowed: {}.",
                ALLOWED_TYPES.join(", ")
            ),
        ));
    }
    let mut head = BytesMut::new();
    while head.len() < SNIFF_LEN {
        match field.chunk().await.map_err(read_err)? {
            Some(c) => head.extend_from_slice(&c),
            None => break,
        }
    }
    if !agrees(&content_type, &head) {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "content_type_mismatch",
            format!("The file's bytes are not {content_type}."),
        ));
    }

    let org = scope.org_id();
    let file_id = FileId::new();
    let head: Bytes = head.freeze();
    let rest = futures::stream::unfold(field, |mut f| async move {
        match f.chunk().await {
            Ok(Some(c)) => Some((Ok(c), f)),
            Ok(None) => None,
            Err(e) => Some((Err(std::io::Error::other(e)), f)),
        }
    });
    let body = futures::stream::once(async move { Ok(head) })
        .chain(rest)
        .boxed();
    let stored = state
        .files
        .put(org, file_id, body, max)
        .await
        .map_err(|e| match e {
            BlobError::TooLarge(_) => too_large(max),
            BlobError::Source(_) if hit.load(Ordering::Relaxed) => too_large(max),
            BlobError::Source(e) => bad_multipart(format!("The multipart body is malformed: {e}")),
            other => Problem::from(Error::from(other)),
        })?;
    let orphan = Orphan {
        store: state.files.clone(),
        org,
        key: Some(stored.key.clone()),
    };

    let trailing = match mp.next_field().await {
        Ok(None) => None,
        Ok(Some(_)) => Some(Problem::from(Error::Validation(
            "send exactly one part, named file".into(),
        ))),
        Err(e) => Some(read_err(e)),
    };
    if let Some(p) = trailing {
        orphan.remove().await;
        return Err(p);
    }

    let inserted = async {
        let mut tx = state.db.write(&scope).await?;
        let meta = files::insert(
            &mut tx,
            NewFile {
                id: file_id,
                name: &name,
                content_type: &content_type,
                size_bytes: stored.size_bytes,
                storage_key: &stored.key,
                sha256: &stored.sha256,
            },
        )
        .await?;
        tx.commit().await?;
        Ok::<_, Error>(meta)
    }
    .await;
    match inserted {
        Ok(meta) => {
            orphan.disarm();
            Ok((StatusCode::CREATED, Json(meta)))
        }
        Err(e) => {
            orphan.remove().await;
            Err(e.into())
        }
    }
}

async fn list(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    Params(q): Params<ListQuery>,
) -> Result<Json<Paged<FileMeta>>, Problem> {
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .page()?;
    let mut tx = state.db.read(&scope).await?;
    let rows = files::list(&mut tx, page.limit + 1, page.after).await?;
    tx.commit().await?;
    Ok(Json(paged(rows, page, |f| f.id.uuid())))
}

async fn get_one(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    PathOf(p): PathOf<FilePath>,
) -> Result<Json<FileMeta>, Problem> {
    let fid: FileId = id(&p.id)?;
    let mut tx = state.db.read(&scope).await?;
    let f = files::get(&mut tx, fid).await?;
    tx.commit().await?;
    Ok(Json(f))
}

/// `attachment; filename="<ascii>"; filename*=UTF-8''<percent-encoded>` (RFC 6266).
pub fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if (c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '%')) || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        // RFC 8187 attr-char.
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

async fn content(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    PathOf(p): PathOf<FilePath>,
) -> Result<Response, Problem> {
    let fid: FileId = id(&p.id)?;
    let mut tx = state.db.read(&scope).await?;
    let f = files::get(&mut tx, fid).await?;
    tx.commit().await?;
    let blob = state
        .files
        .open(scope.org_id(), &f.storage_key)
        .await
        .map_err(|e| {
            Problem::from(match e {
                BlobError::NotFound => {
                    Error::Internal(format!("the bytes of file {} are missing", f.id))
                }
                other => Error::from(other),
            })
        })?;
    if u64::try_from(f.size_bytes).ok() != Some(blob.len) {
        tracing::error!(file = %f.id, recorded = f.size_bytes, stored = blob.len, "a file's stored size differs from its row");
        return Err(Error::Internal(format!("file {} has a size mismatch", f.id)).into());
    }
    let ct = HeaderValue::from_str(&f.content_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    let disposition = HeaderValue::from_str(&content_disposition(&f.name))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    let mut res = axum::body::Body::from_stream(blob.stream).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, ct);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(blob.len));
    h.insert(header::CONTENT_DISPOSITION, disposition);
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(res)
}

async fn remove(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
    PathOf(p): PathOf<FilePath>,
) -> Result<StatusCode, Problem> {
    let fid: FileId = id(&p.id)?;
    let mut tx = state.db.write(&scope).await?;
    let f = files::delete(&mut tx, fid).await?;
    tx.commit().await?;
    // The row is gone for good; the bytes follow. A failure here leaves unreachable bytes
    // (logged), never a row without bytes.
    remove_blob(state.files.as_ref(), scope.org_id(), &f.storage_key).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn org_stats(
    State(state): State<AppState>,
    Scoped(scope): Scoped,
) -> Result<Json<OrgStats>, Problem> {
    let mut tx = state.db.read(&scope).await?;
    let s = stats::org_stats(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_display_text_only() {
        for (raw, want) in [
            ("../../etc/passwd", "passwd"),
            ("..\\..\\windows\\win.ini", "win.ini"),
            ("/abs/path/report.pdf", "report.pdf"),
            ("a/b/", "file"),
            ("..", "file"),
            ("", "file"),
            ("   ", "file"),
            ("na\u{0}me\r\n.txt", "name.txt"),
            ("evil\u{202E}fdp.exe", "evilfdp.exe"),
            ("ok name (1).txt", "ok name (1).txt"),
            ("résumé.pdf", "résumé.pdf"),
            ("../\u{0}../x", "x"),
        ] {
            assert_eq!(display_name(raw), want, "{raw:?}");
        }
        let long = "é".repeat(300);
        assert_eq!(display_name(&long).chars().count(), MAX_NAME_CHARS);
    }

    #[test]
    fn signatures() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\nrest"), Some("image/png"));
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
        assert_eq!(sniff(b"GIF89a..."), Some("image/gif"));
        assert_eq!(sniff(b"%PDF-1.7"), Some("application/pdf"));
        assert_eq!(sniff(b"hello"), None);
        assert!(agrees("image/png", b"\x89PNG\r\n\x1a\n"));
        assert!(!agrees("image/png", b"hello world"));
        assert!(!agrees("image/png", b""));
        assert!(!agrees("image/gif", b"\x89PNG\r\n\x1a\n"));
        assert!(agrees("text/plain", b"hello"));
        assert!(agrees("text/plain", b""));
        assert!(!agrees("text/plain", b"%PDF-1.7"));
        assert!(agrees("application/octet-stream", b"%PDF-1.7"));
        assert_eq!(essence(" Image/PNG ; q=1"), "image/png");
    }

    #[test]
    fn dispositions() {
        assert_eq!(
            content_disposition("report.pdf"),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
        assert_eq!(
            content_disposition("a \"b\" é%.txt"),
            "attachment; filename=\"a _b_ __.txt\"; filename*=UTF-8''a%20%22b%22%20%C3%A9%25.txt"
        );
    }
}
