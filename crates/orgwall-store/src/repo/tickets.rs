//! Tickets (tenant table), with their status history in `ticket_events`.

use crate::ahead::Flight;
use crate::db::TenantTx;
use crate::params;
use crate::value::{now, Row};
use chrono::{DateTime, Utc};
use orgwall_core::{Error, OrgId, ProjectId, Result, TicketId, TicketStatus, UserId};

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

/// A ticket from its row, which it takes (its title and body are moved, not copied).
fn from_row(mut r: Row) -> Result<Ticket> {
    Ok(Ticket {
        id: r.get(0)?,
        project_id: r.get(1)?,
        title: r.take(2)?,
        body: r.take(3)?,
        status: r.text(4)?.parse().map_err(Error::Internal)?,
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
/// foreign keys: an unknown project is a validation error, an assignee who is not a member
/// `assignee_not_member`.
pub async fn create(tx: &mut TenantTx<'_>, new: NewTicket<'_>) -> Result<Ticket> {
    let title = super::text("title", new.title, 200)?;
    let body = super::long_text("body", new.body, 50_000)?;
    crate::quota::check(tx, crate::quota::Quota::Tickets).await?;
    let org = tx.org_id();
    let created_by = tx.scope().user_id();
    let id = TicketId::new();
    let t = now();
    tx.data().execute(
        "INSERT INTO tickets (org_id, id, project_id, title, body, status, assignee_id, created_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, 'open', $6, $7, $8, $8)",
        params![org, id, new.project_id, &title, &body, new.assignee_id, created_by, t],
    )
    .await
    .map_err(|e| match (e, new.assignee_id) {
        (Error::Validation(_), Some(_)) => Error::Validation(
            "project_id must be a project of this organization and assignee_id a member of it".into(),
        ),
        (Error::Validation(_), None) => Error::Validation("project_id must be a project of this organization".into()),
        (other, _) => other,
    })?;
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
        .data()
        .query_one(
            &format!("SELECT {COLS} FROM tickets WHERE org_id = $1 AND id = $2"),
            params![org, id],
        )
        .await?;
    from_row(r)
}

/// Filters of a ticket list.
#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    /// Only this status.
    pub status: Option<TicketStatus>,
    /// Only tickets assigned to this user.
    pub assignee: Option<UserId>,
    /// Only this project.
    pub project: Option<ProjectId>,
    /// Words that must all appear in the title or body (full-text search: whole words,
    /// case-insensitive; see `repo::search`). A `q` without any word matches nothing.
    pub q: Option<String>,
}

impl TicketFilter {
    /// Whether a page of this list reads about a page of rows, whatever the org's size:
    /// at most one condition (each has its index in id order), and a search of one
    /// lexeme (see `repo::search`). Otherwise a page may read many rows to find its
    /// matches (a rare combination of common words or values): still correct, just not
    /// short.
    pub fn reads_one_page(&self) -> bool {
        let conditions = usize::from(self.status.is_some())
            + usize::from(self.assignee.is_some())
            + usize::from(self.project.is_some())
            + usize::from(self.q.is_some());
        conditions <= 1
            && self
                .q
                .as_deref()
                .is_none_or(|q| super::search::Search::parse(q).is_none_or(|s| s.one_lexeme()))
    }
}

/// Lists up to `limit` tickets after `after` (keyset, id order), filtered.
pub async fn list(
    tx: &mut TenantTx<'_>,
    filter: &TicketFilter,
    limit: i64,
    after: Option<uuid::Uuid>,
) -> Result<Vec<Ticket>> {
    let Some((sql, params)) = list_sql(tx, filter, limit, after) else {
        return Ok(Vec::new());
    };
    // A page that reads about a page of rows (at most one filter, or a search of one
    // lexeme alone) has one best plan whatever the values (see `Data::query_generic`): a
    // range scan in key order of the org's tickets, of the filter's `(org_id, column,
    // id)` index, or of the lexeme's postings (the search picks its lexeme in SQL, so no
    // plan depends on how rare it is), stopping at the limit. Other combinations keep
    // PostgreSQL's choice, which may depend on how rare the values are.
    let rows = match filter.reads_one_page() {
        true => tx.data().query_generic(&sql, &params).await?,
        false => tx.data().query(&sql, &params).await?,
    };
    rows.into_iter().map(from_row).collect()
}

/// The plan of [`list`]'s statement as this transaction would run it (PostgreSQL:
/// `EXPLAIN (ANALYZE, COSTS OFF)`, one line per row; SQLite: `EXPLAIN QUERY PLAN`), for
/// tests and measurement. Empty when the list reads nothing (a `q` without any word).
/// PostgreSQL explains the plan made for these values; [`list`] runs a page that reads
/// about a page on its generic plan, which is the same range scan (ARCHITECTURE.md,
/// *Generic plans*).
pub async fn explain_list(
    tx: &mut TenantTx<'_>,
    filter: &TicketFilter,
    limit: i64,
    after: Option<uuid::Uuid>,
) -> Result<Vec<String>> {
    let Some((sql, params)) = list_sql(tx, filter, limit, after) else {
        return Ok(Vec::new());
    };
    let (explain, col) = match tx.kind() {
        crate::BackendKind::Postgres => ("EXPLAIN (ANALYZE, COSTS OFF) ", 0),
        crate::BackendKind::Sqlite => ("EXPLAIN QUERY PLAN ", 3),
    };
    let rows = tx.data().query(&format!("{explain}{sql}"), &params).await?;
    rows.iter().map(|r| r.get(col)).collect()
}

/// [`list`]'s statement and parameters, or `None` when it reads nothing.
fn list_sql(
    tx: &TenantTx<'_>,
    filter: &TicketFilter,
    limit: i64,
    after: Option<uuid::Uuid>,
) -> Option<(String, Vec<crate::Val>)> {
    let search = match filter.q.as_deref().map(super::search::Search::parse) {
        Some(None) => return None,
        Some(Some(s)) => Some(s.sql(tx, super::search::Searched::Tickets)),
        None => None,
    };
    let org = tx.org_id();
    let mut params: Vec<crate::Val> = vec![org.into(), after.unwrap_or(uuid::Uuid::nil()).into()];
    // A search reads its candidates from its own `FROM` (see `repo::search`); its value
    // is `$3`, in the `FROM` and in its condition.
    let (from, search_cond) = match search {
        Some(s) => {
            params.push(s.value.into());
            (s.from.replace("$n", "$3"), s.cond.replace("$n", "$3"))
        }
        None => ("tickets".to_owned(), String::new()),
    };
    let mut sql = format!("SELECT {COLS} FROM {from} WHERE org_id = $1 AND id > $2{search_cond}");
    let mut add = |cond: &str, v: crate::Val| {
        params.push(v);
        sql.push_str(&cond.replace("$n", &format!("${}", params.len())));
    };
    if let Some(s) = filter.status {
        add(" AND status = $n", s.as_str().into());
    }
    if let Some(a) = filter.assignee {
        add(" AND assignee_id = $n", a.into());
    }
    if let Some(p) = filter.project {
        add(" AND project_id = $n", p.into());
    }
    params.push(limit.into());
    sql.push_str(&format!(" ORDER BY id LIMIT ${}", params.len()));
    Some((sql, params))
}

/// One recorded change of a ticket.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TicketEvent {
    /// Who.
    pub actor_id: Option<UserId>,
    /// What (`status` or `assignee`).
    pub field: String,
    /// From.
    pub from: Option<String>,
    /// To.
    pub to: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

/// A ticket's history, oldest first.
pub async fn history(tx: &mut TenantTx<'_>, id: TicketId) -> Result<Vec<TicketEvent>> {
    let org = tx.org_id();
    let rows = tx.data().query(HISTORY, params![org, id]).await?;
    rows.into_iter().map(event_from_row).collect()
}

const HISTORY: &str = "SELECT actor_id, field, from_value, to_value, created_at FROM ticket_events
     WHERE org_id = $1 AND ticket_id = $2 ORDER BY id";

fn event_from_row(mut r: crate::Row) -> Result<TicketEvent> {
    Ok(TicketEvent {
        actor_id: r.get(0)?,
        field: r.take(1)?,
        from: r.take(2)?,
        to: r.take(3)?,
        at: r.get(4)?,
    })
}

/// A ticket and its history, read together (one round trip on PostgreSQL).
pub async fn get_with_history(
    tx: &mut TenantTx<'_>,
    id: TicketId,
) -> Result<(Ticket, Vec<TicketEvent>)> {
    let flight = detail_flight(tx.org_id(), id);
    detail_from(tx.data().query_many(&flight.statements()).await?)
}

/// The one flight of [`get_with_history`]: the ticket, then its history (what the
/// ticket route reads, and sends ahead with a cold API key: `orgwall_tenancy::ahead`).
pub fn detail_flight(org: OrgId, id: TicketId) -> Flight {
    let p = params![org, id];
    Flight::new(org)
        .read(
            format!("SELECT {COLS} FROM tickets WHERE org_id = $1 AND id = $2"),
            p,
        )
        .read(HISTORY, p)
}

/// The ticket and its history from [`detail_flight`]'s answers (no ticket: not found).
pub fn detail_from(answers: Vec<Vec<Row>>) -> Result<(Ticket, Vec<TicketEvent>)> {
    let mut both = answers.into_iter();
    let ticket = both
        .next()
        .and_then(|rows| rows.into_iter().next())
        .ok_or(Error::NotFound)?;
    let events = both.next().unwrap_or_default();
    Ok((
        from_row(ticket)?,
        events
            .into_iter()
            .map(event_from_row)
            .collect::<Result<_>>()?,
    ))
}

/// Everything a ticket's page shows, read together (one round trip on PostgreSQL, like
/// [`get_with_history`]): the ticket, its project, history and comments, and the org's
/// members (names for the history and comments, choices for the assignee).
#[derive(Debug, Clone)]
pub struct TicketPage {
    /// The ticket.
    pub ticket: Ticket,
    /// Its project.
    pub project: super::projects::Project,
    /// Its history, oldest first.
    pub history: Vec<TicketEvent>,
    /// Its comments, oldest first.
    pub comments: Vec<super::comments::Comment>,
    /// The org's members.
    pub members: Vec<super::memberships::Member>,
}

/// Reads a [`TicketPage`] ([`Error::NotFound`] for a ticket not in this org).
pub async fn page(tx: &mut TenantTx<'_>, id: TicketId) -> Result<TicketPage> {
    let org = tx.org_id();
    let p = params![org, id];
    let just_org = params![org];
    let get = format!("SELECT {COLS} FROM tickets WHERE org_id = $1 AND id = $2");
    let project = format!(
        "SELECT {} FROM projects WHERE org_id = $1 AND id = (SELECT project_id FROM tickets WHERE org_id = $1 AND id = $2)",
        super::projects::COLS
    );
    let members = format!(
        "{} WHERE m.org_id = $1 ORDER BY u.name, m.user_id",
        super::memberships::MEMBER_SELECT
    );
    let (data, control) = tx
        .query_planes(
            &[
                (&get, p),
                (&project, p),
                (HISTORY, p),
                (super::comments::LIST, p),
            ],
            &[(&members, just_org)],
        )
        .await?;
    let mut all = data.into_iter().chain(control);
    let mut next = || all.next().unwrap_or_default();
    let ticket = next().into_iter().next().ok_or(Error::NotFound)?;
    let project = next().into_iter().next().ok_or(Error::NotFound)?;
    Ok(TicketPage {
        ticket: from_row(ticket)?,
        project: super::projects::from_row(&project)?,
        history: next()
            .into_iter()
            .map(event_from_row)
            .collect::<Result<_>>()?,
        comments: next()
            .iter()
            .map(super::comments::from_row)
            .collect::<Result<_>>()?,
        members: next()
            .iter()
            .map(super::memberships::member_from_row)
            .collect::<Result<_>>()?,
    })
}

async fn record(
    tx: &mut TenantTx<'_>,
    id: TicketId,
    field: &str,
    from: Option<String>,
    to: Option<String>,
) -> Result<()> {
    let org = tx.org_id();
    let actor = tx.scope().user_id();
    tx.data().execute(
        "INSERT INTO ticket_events (org_id, id, ticket_id, actor_id, field, from_value, to_value, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        params![org, uuid::Uuid::now_v7(), id, actor, field, from, to, now()],
    )
    .await?;
    Ok(())
}

/// A change to a ticket; `None` leaves a field as it is. `assignee_id: Some(None)`
/// unassigns.
#[derive(Debug, Clone, Default)]
pub struct TicketPatch {
    /// New title.
    pub title: Option<String>,
    /// New body.
    pub body: Option<String>,
    /// New status (must be a workflow move).
    pub status: Option<TicketStatus>,
    /// New assignee (a member of this org) or none.
    pub assignee_id: Option<Option<UserId>>,
}

/// Applies a change, checking the workflow and recording status and assignee changes.
pub async fn update(tx: &mut TenantTx<'_>, id: TicketId, patch: TicketPatch) -> Result<Ticket> {
    let mut ticket = get(tx, id).await?;
    if let Some(to) = patch.status {
        if to != ticket.status {
            ticket = set_status(tx, id, to).await?;
        }
    }
    let org = tx.org_id();
    if let Some(assignee) = patch.assignee_id {
        if assignee != ticket.assignee_id {
            tx.data().execute(
                "UPDATE tickets SET assignee_id = $3, updated_at = $4 WHERE org_id = $1 AND id = $2",
                params![org, id, assignee, now()],
            )
            .await
            .map_err(|e| match e {
                Error::Validation(_) => Error::Refused(
                    "assignee_not_member",
                    "the assignee must be a member of this organization".into(),
                ),
                other => other,
            })?;
            record(
                tx,
                id,
                "assignee",
                ticket.assignee_id.map(|u| u.to_string()),
                assignee.map(|u| u.to_string()),
            )
            .await?;
            ticket.assignee_id = assignee;
        }
    }
    if patch.title.is_some() || patch.body.is_some() {
        let title = patch
            .title
            .map(|t| super::text("title", &t, 200))
            .transpose()?;
        let body = patch
            .body
            .map(|b| super::long_text("body", &b, 50_000))
            .transpose()?;
        tx.data().execute(
            "UPDATE tickets SET title = coalesce($3, title), body = coalesce($4, body), updated_at = $5
             WHERE org_id = $1 AND id = $2",
            params![org, id, title.as_deref(), body.as_deref(), now()],
        )
        .await?;
        ticket = get(tx, id).await?;
    }
    Ok(ticket)
}

/// Deletes a ticket (its comments and history go with it).
pub async fn delete(tx: &mut TenantTx<'_>, id: TicketId) -> Result<()> {
    let org = tx.org_id();
    // The usage row first, as creates take it (see `quota::lock_for_delete`).
    crate::quota::lock_for_delete(tx).await?;
    let n = tx
        .data()
        .execute(
            "DELETE FROM tickets WHERE org_id = $1 AND id = $2",
            params![org, id],
        )
        .await?;
    if n == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
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
    tx.data()
        .execute(
            "UPDATE tickets SET status = $3, updated_at = $4 WHERE org_id = $1 AND id = $2",
            params![org, id, to.as_str(), now()],
        )
        .await?;
    record(
        tx,
        id,
        "status",
        Some(ticket.status.as_str().into()),
        Some(to.as_str().into()),
    )
    .await?;
    ticket.status = to;
    Ok(ticket)
}
