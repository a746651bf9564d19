//! Notes (tenant table).

use crate::db::TenantTx;
use crate::params;
use crate::value::{now, Row};
use chrono::{DateTime, Utc};
use orgwall_core::{NoteId, Result};

/// A note.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Note {
    /// Its id.
    pub id: NoteId,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

fn from_row(r: &Row) -> Result<Note> {
    Ok(Note {
        id: r.get(0)?,
        title: r.get(1)?,
        body: r.get(2)?,
        created_at: r.get(3)?,
    })
}

/// Creates a note.
pub async fn create(tx: &mut TenantTx<'_>, title: &str, body: &str) -> Result<Note> {
    let title = super::text("title", title, 200)?;
    let body = super::long_text("body", body, 100_000)?;
    let org = tx.org_id();
    let by = tx.scope().user_id();
    let id = NoteId::new();
    let t = now();
    tx.execute(
        "INSERT INTO notes (org_id, id, title, body, created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
        params![org, id, &title, &body, by, t],
    )
    .await?;
    Ok(Note {
        id,
        title,
        body,
        created_at: t,
    })
}

/// Gets a note of this org.
pub async fn get(tx: &mut TenantTx<'_>, id: NoteId) -> Result<Note> {
    let org = tx.org_id();
    let r = tx
        .query_one(
            "SELECT id, title, body, created_at FROM notes WHERE org_id = $1 AND id = $2",
            params![org, id],
        )
        .await?;
    from_row(&r)
}

/// Lists notes in id order.
pub async fn list(tx: &mut TenantTx<'_>, limit: Option<i64>) -> Result<Vec<Note>> {
    let limit = super::page_limit(limit)?;
    let org = tx.org_id();
    let rows = tx
        .query(
            "SELECT id, title, body, created_at FROM notes WHERE org_id = $1 ORDER BY id LIMIT $2",
            params![org, limit],
        )
        .await?;
    rows.iter().map(from_row).collect()
}
