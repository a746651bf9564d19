//! Counts of one organization's data (the `/stats` route). Every count is of the
//! transaction's org only: each statement binds `org_id` from the scope, and the database
//! wall would hide other orgs' rows anyway.

use crate::db::TenantTx;
use crate::params;
use orgwall_core::{ProjectId, Result, TicketStatus};
use std::collections::BTreeMap;

/// At most this many projects are listed in [`TicketStats::by_project`].
pub const MAX_PROJECTS: i64 = 500;

/// The counts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OrgStats {
    /// Tickets.
    pub tickets: TicketStats,
    /// Projects.
    pub projects: i64,
    /// Notes.
    pub notes: i64,
    /// Files.
    pub files: i64,
    /// Total size of the files in bytes.
    pub storage_bytes: i64,
    /// Members.
    pub members: i64,
}

/// Ticket counts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TicketStats {
    /// All tickets.
    pub total: i64,
    /// Per status (every status present, zero included).
    pub by_status: BTreeMap<&'static str, i64>,
    /// Per project, by project key (projects without tickets included), at most
    /// [`MAX_PROJECTS`] of them.
    pub by_project: Vec<ProjectCount>,
    /// Whether `by_project` was cut at [`MAX_PROJECTS`].
    pub by_project_truncated: bool,
}

/// The tickets of one project.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProjectCount {
    /// The project.
    pub id: ProjectId,
    /// Its key.
    pub key: String,
    /// Its tickets.
    pub count: i64,
}

/// Counts this org's data.
pub async fn org_stats(tx: &mut TenantTx<'_>) -> Result<OrgStats> {
    let org = tx.org_id();
    let [s0, s1, s2, s3] = TicketStatus::ALL.map(TicketStatus::as_str);
    let counts = "SELECT (SELECT count(*) FROM tickets WHERE org_id = $1 AND status = $2),
                    (SELECT count(*) FROM tickets WHERE org_id = $1 AND status = $3),
                    (SELECT count(*) FROM tickets WHERE org_id = $1 AND status = $4),
                    (SELECT count(*) FROM tickets WHERE org_id = $1 AND status = $5),
                    (SELECT count(*) FROM projects WHERE org_id = $1),
                    (SELECT count(*) FROM notes WHERE org_id = $1),
                    (SELECT count(*) FROM files WHERE org_id = $1),
                    (SELECT CAST(coalesce(sum(size_bytes), 0) AS bigint) FROM files WHERE org_id = $1)";
    let members = "SELECT count(*) FROM memberships WHERE org_id = $1";
    let (data, control) = tx
        .query_planes(
            &[(counts, params![org, s0, s1, s2, s3])],
            &[(members, params![org])],
        )
        .await?;
    let first = |rows: Vec<Vec<crate::Row>>| {
        rows.into_iter()
            .next()
            .and_then(|r| r.into_iter().next())
            .ok_or(orgwall_core::Error::NotFound)
    };
    let r = first(data)?;
    let m = first(control)?;
    let mut by_status = BTreeMap::new();
    let mut total = 0i64;
    for (i, s) in [s0, s1, s2, s3].into_iter().enumerate() {
        let n: i64 = r.get(i)?;
        total = total.saturating_add(n);
        by_status.insert(s, n);
    }
    let rows = tx
        .data()
        .query(
            "SELECT p.id, p.key, count(t.id) FROM projects p
               LEFT JOIN tickets t ON t.org_id = p.org_id AND t.project_id = p.id
             WHERE p.org_id = $1
             GROUP BY p.id, p.key
             ORDER BY p.key
             LIMIT $2",
            params![org, MAX_PROJECTS + 1],
        )
        .await?;
    let mut by_project = rows
        .iter()
        .map(|r| {
            Ok(ProjectCount {
                id: r.get(0)?,
                key: r.get(1)?,
                count: r.get(2)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let by_project_truncated = by_project.len() > usize::try_from(MAX_PROJECTS).unwrap_or(0);
    by_project.truncate(usize::try_from(MAX_PROJECTS).unwrap_or(0));
    Ok(OrgStats {
        tickets: TicketStats {
            total,
            by_status,
            by_project,
            by_project_truncated,
        },
        projects: r.get(4)?,
        notes: r.get(5)?,
        files: r.get(6)?,
        storage_bytes: r.get(7)?,
        members: m.get(0)?,
    })
}
