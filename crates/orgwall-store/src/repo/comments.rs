//! Ticket comments (tenant table).

use crate::db::TenantTx;
use crate::params;
use crate::value::now;
use chrono::{DateTime, Utc};
use orgwall_core::{CommentId, Result, TicketId, UserId};

/// A comment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Comment {
    /// Its id.
    pub id: CommentId,
    /// Its ticket.
    pub ticket_id: TicketId,
    /// Its author.
    pub author_id: Option<UserId>,
    /// Text.
    pub body: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Adds a comment to a ticket of this org.
pub async fn add(tx: &mut TenantTx<'_>, ticket_id: TicketId, body: &str) -> Result<Comment> {
    let body = super::required_long_text("body", body, 20_000)?;
    super::tickets::get(tx, ticket_id).await?;
    let org = tx.org_id();
    let author = tx.scope().user_id();
    let id = CommentId::new();
    let t = now();
    tx.data().execute(
        "INSERT INTO ticket_comments (org_id, id, ticket_id, author_id, body, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        params![org, id, ticket_id, author, &body, t],
    )
    .await?;
    Ok(Comment {
        id,
        ticket_id,
        author_id: author,
        body,
        created_at: t,
    })
}

/// A ticket's comments, oldest first (parameters: org, ticket).
pub(crate) const LIST: &str =
    "SELECT id, ticket_id, author_id, body, created_at FROM ticket_comments
     WHERE org_id = $1 AND ticket_id = $2 ORDER BY id";

pub(crate) fn from_row(r: &crate::Row) -> Result<Comment> {
    Ok(Comment {
        id: r.get(0)?,
        ticket_id: r.get(1)?,
        author_id: r.get(2)?,
        body: r.get(3)?,
        created_at: r.get(4)?,
    })
}

/// Lists a ticket's comments, oldest first.
pub async fn list(tx: &mut TenantTx<'_>, ticket_id: TicketId) -> Result<Vec<Comment>> {
    super::tickets::get(tx, ticket_id).await?;
    let org = tx.org_id();
    let rows = tx.data().query(LIST, params![org, ticket_id]).await?;
    rows.iter().map(from_row).collect()
}

/// Deletes a comment of a ticket: the author may, and so may whoever holds
/// `tickets:delete`.
pub async fn delete(tx: &mut TenantTx<'_>, ticket_id: TicketId, id: CommentId) -> Result<()> {
    let org = tx.org_id();
    let row = tx.data().query_opt(
            "SELECT author_id FROM ticket_comments WHERE org_id = $1 AND ticket_id = $2 AND id = $3",
            params![org, ticket_id, id],
        )
        .await?
        .ok_or(orgwall_core::Error::NotFound)?;
    let author: Option<UserId> = row.get(0)?;
    let is_author = author.is_some() && author == tx.scope().user_id();
    if !is_author {
        tx.scope().require(crate::perms::TICKETS_DELETE)?;
    }
    tx.data()
        .execute(
            "DELETE FROM ticket_comments WHERE org_id = $1 AND ticket_id = $2 AND id = $3",
            params![org, ticket_id, id],
        )
        .await?;
    Ok(())
}
