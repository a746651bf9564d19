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
    tx.data().execute(
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
        .data()
        .query_one(
            "SELECT id, title, body, created_at FROM notes WHERE org_id = $1 AND id = $2",
            params![org, id],
        )
        .await?;
    from_row(&r)
}

/// Lists up to `limit` notes after `after` (keyset, id order), optionally only those whose
/// title or body hold every word of `q` (full-text search: whole words, case-insensitive;
/// see `repo::search`). A `q` without any word matches nothing.
pub async fn list(
    tx: &mut TenantTx<'_>,
    q: Option<&str>,
    limit: i64,
    after: Option<uuid::Uuid>,
) -> Result<Vec<Note>> {
    let org = tx.org_id();
    let after = after.unwrap_or(uuid::Uuid::nil());
    let rows = match q {
        None => {
            // A key-ordered page: one plan whatever the values (`Data::query_generic`).
            tx.data().query_generic(
                "SELECT id, title, body, created_at FROM notes WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                params![org, after, limit],
            )
            .await?
        }
        Some(q) => {
            let Some(search) = super::search::Search::parse(q) else {
                return Ok(Vec::new());
            };
            let one_lexeme = search.one_lexeme();
            let s = search.sql(tx, super::search::Searched::Notes);
            let sql = format!(
                "SELECT id, title, body, created_at FROM {} WHERE org_id = $1 AND id > $2{}
                 ORDER BY id LIMIT $4",
                s.from.replace("$n", "$3"),
                s.cond.replace("$n", "$3")
            );
            let params = params![org, after, s.value, limit];
            // One lexeme: a page of its postings in key order, one plan whatever the word
            // (as a ticket search's, see `tickets::list`).
            match one_lexeme {
                true => tx.data().query_generic(&sql, params).await?,
                false => tx.data().query(&sql, params).await?,
            }
        }
    };
    rows.iter().map(from_row).collect()
}

/// Changes a note's title or body.
pub async fn update(
    tx: &mut TenantTx<'_>,
    id: NoteId,
    title: Option<&str>,
    body: Option<&str>,
) -> Result<Note> {
    let title = title.map(|t| super::text("title", t, 200)).transpose()?;
    let body = body
        .map(|b| super::long_text("body", b, 100_000))
        .transpose()?;
    let org = tx.org_id();
    let n = tx.data().execute(
            "UPDATE notes SET title = coalesce($3, title), body = coalesce($4, body), updated_at = $5
             WHERE org_id = $1 AND id = $2",
            params![org, id, title.as_deref(), body.as_deref(), now()],
        )
        .await?;
    if n == 0 {
        return Err(orgwall_core::Error::NotFound);
    }
    get(tx, id).await
}

/// Deletes a note.
pub async fn delete(tx: &mut TenantTx<'_>, id: NoteId) -> Result<()> {
    let org = tx.org_id();
    let n = tx
        .data()
        .execute(
            "DELETE FROM notes WHERE org_id = $1 AND id = $2",
            params![org, id],
        )
        .await?;
    if n == 0 {
        return Err(orgwall_core::Error::NotFound);
    }
    Ok(())
}
