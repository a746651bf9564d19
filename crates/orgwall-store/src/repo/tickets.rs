//! Tickets (tenant table), with their status history in `ticket_events`.

use crate::db::TenantTx;
use crate::params;
use crate::value::{now, Row};
use chrono::{DateTime, Utc};
use orgwall_core::{Error, ProjectId, Result, TicketId, TicketStatus, UserId};

/// A ticket.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Ticket {
    /// Its id.
    pub id: TicketId,
    /// Its project.
    pub project_id: ProjectId,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// Workflow status.
    pub status: TicketStatus,
    /// The assigned member.
    pub assignee_id: Option<UserId>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

const COLS: &str = "id, project_id, title, body, status, assignee_id, created_at";

fn from_row(r: &Row) -> Result<Ticket> {
    let status: String = r.get(4)?;
    Ok(Ticket {
        id: r.get(0)?,
        project_id: r.get(1)?,
        title: r.get(2)?,
        body: r.get(3)?,
        status: status.parse().map_err(Error::Internal)?,
        assignee_id: r.get(5)?,
        created_at: r.get(6)?,
    })
}

/// What a new ticket holds.
#[derive(Debug, Clone)]
pub struct NewTicket<'a> {
    /// Its project (must be in this org).
    pub project_id: ProjectId,
    /// Title.
    pub title: &'a str,
    /// Body.
    pub body: &'a str,
    /// Assignee (must be a member of this org).
    pub assignee_id: Option<UserId>,
}

/// Creates a ticket. A project or assignee of another org is refused by the composite
/// foreign keys (reported as a validation error).
pub async fn create(tx: &mut TenantTx<'_>, new: NewTicket<'_>) -> Result<Ticket> {
    let title = super::text("title", new.title, 200)?;
    let body = super::long_text("body", new.body, 50_000)?;
    let org = tx.org_id();
    let created_by = tx.scope().user_id();
    let id = TicketId::new();
    let t = now();
    tx.execute(
        "INSERT INTO tickets (org_id, id, project_id, title, body, status, assignee_id, created_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, 'open', $6, $7, $8, $8)",
        params![org, id, new.project_id, &title, &body, new.assignee_id, created_by, t],
    )
    .await?;
    Ok(Ticket {
        id,
        project_id: new.project_id,
        title,
        body,
        status: TicketStatus::Open,
        assignee_id: new.assignee_id,
        created_at: t,
    })
}

/// Gets a ticket of this org.
pub async fn get(tx: &mut TenantTx<'_>, id: TicketId) -> Result<Ticket> {
    let org = tx.org_id();
    let r = tx
        .query_one(
            &format!("SELECT {COLS} FROM tickets WHERE org_id = $1 AND id = $2"),
            params![org, id],
        )
        .await?;
    from_row(&r)
}

/// Lists tickets after `after` (keyset), in id order.
pub async fn list(
    tx: &mut TenantTx<'_>,
    limit: Option<i64>,
    after: Option<TicketId>,
) -> Result<Vec<Ticket>> {
    let limit = super::page_limit(limit)?;
    let org = tx.org_id();
    // The first page starts below every UUIDv7 (PostgreSQL cannot type `$2 IS NULL`).
    let after = after.map_or(uuid::Uuid::nil(), |a| a.uuid());
    let rows = tx
        .query(
            &format!(
                "SELECT {COLS} FROM tickets WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3"
            ),
            params![org, after, limit],
        )
        .await?;
    rows.iter().map(from_row).collect()
}

/// Moves a ticket along the workflow, recording who, when, from and to.
pub async fn set_status(tx: &mut TenantTx<'_>, id: TicketId, to: TicketStatus) -> Result<Ticket> {
    let mut ticket = get(tx, id).await?;
    if !ticket.status.can_move_to(to) {
        return Err(Error::Conflict(
            "invalid_transition",
            format!("cannot move a ticket from {} to {to}", ticket.status),
        ));
    }
    let org = tx.org_id();
    let actor = tx.scope().user_id();
    let t = now();
    tx.execute(
        "UPDATE tickets SET status = $3, updated_at = $4 WHERE org_id = $1 AND id = $2",
        params![org, id, to.as_str(), t],
    )
    .await?;
    tx.execute(
        "INSERT INTO ticket_events (org_id, id, ticket_id, actor_id, field, from_value, to_value, created_at)
         VALUES ($1, $2, $3, $4, 'status', $5, $6, $7)",
        params![org, uuid::Uuid::now_v7(), id, actor, ticket.status.as_str(), to.as_str(), t],
    )
    .await?;
    ticket.status = to;
    Ok(ticket)
}
