//! Memberships (tenant table).

use crate::db::TenantTx;
use crate::params;
use crate::value::now;
use chrono::{DateTime, Utc};
use orgwall_core::{Error, Result, RoleId, UserId};

/// A member of the transaction's organization.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Member {
    /// The user.
    pub user_id: UserId,
    /// Their email.
    pub email: String,
    /// Their name.
    pub name: String,
    /// Their role's id.
    pub role_id: RoleId,
    /// Their role's key.
    pub role: String,
    /// Since when.
    pub created_at: DateTime<Utc>,
}

/// Finds a role of this org by key or id.
pub async fn role_id(tx: &mut TenantTx<'_>, key_or_id: &str) -> Result<RoleId> {
    let org = tx.org_id();
    let row = match key_or_id.parse::<RoleId>() {
        Ok(id) => {
            tx.query_opt(
                "SELECT id FROM roles WHERE org_id = $1 AND id = $2",
                params![org, id],
            )
            .await?
        }
        Err(_) => {
            tx.query_opt(
                "SELECT id FROM roles WHERE org_id = $1 AND key = $2",
                params![org, key_or_id],
            )
            .await?
        }
    };
    row.ok_or_else(|| Error::Validation(format!("unknown role {key_or_id:?}")))?
        .get(0)
}

/// Adds `user` with the role named by `role` (key or id).
pub async fn add(tx: &mut TenantTx<'_>, user: UserId, role: &str) -> Result<()> {
    let role = role_id(tx, role).await?;
    crate::quota::check(tx, crate::quota::Quota::Members).await?;
    let org = tx.org_id();
    let t = now();
    tx.access_changed();
    tx.execute(
        "INSERT INTO memberships (org_id, user_id, role_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
        params![org, user, role, t],
    )
    .await
    .map_err(|e| match e {
        Error::Conflict(..) => Error::Conflict("already_member", "already a member".into()),
        other => other,
    })?;
    tx.project_member(user, true).await?;
    Ok(())
}

/// Lists members in user-id order.
pub async fn list(tx: &mut TenantTx<'_>) -> Result<Vec<Member>> {
    let org = tx.org_id();
    let rows = tx
        .query(
            "SELECT m.user_id, u.email, u.name, m.role_id, r.key, m.created_at
             FROM memberships m
             JOIN users u ON u.id = m.user_id
             JOIN roles r ON r.org_id = m.org_id AND r.id = m.role_id
             WHERE m.org_id = $1 ORDER BY m.user_id",
            params![org],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Member {
                user_id: r.get(0)?,
                email: r.get(1)?,
                name: r.get(2)?,
                role_id: r.get(3)?,
                role: r.get(4)?,
                created_at: r.get(5)?,
            })
        })
        .collect()
}

/// The role key of a member, if they are one.
pub async fn role_of(tx: &mut TenantTx<'_>, user: UserId) -> Result<Option<String>> {
    let org = tx.org_id();
    let row = tx
        .query_opt(
            "SELECT r.key FROM memberships m JOIN roles r ON r.org_id = m.org_id AND r.id = m.role_id
             WHERE m.org_id = $1 AND m.user_id = $2",
            params![org, user],
        )
        .await?;
    row.map(|r| r.get(0)).transpose()
}

/// Makes `to` an owner and the acting owner an admin. Only an owner may do this.
pub async fn transfer_ownership(tx: &mut TenantTx<'_>, to: UserId) -> Result<()> {
    let from = tx.scope().user_id().ok_or_else(|| {
        Error::Refused(
            "owner_required",
            "Only an owner (a user, not an API key) can transfer ownership.".into(),
        )
    })?;
    if role_of(tx, from).await?.as_deref() != Some("owner") {
        return Err(Error::Refused(
            "owner_required",
            "Only an owner can transfer ownership.".into(),
        ));
    }
    if from == to {
        return Err(Error::Validation("you are already an owner".into()));
    }
    if role_of(tx, to).await?.is_none() {
        return Err(Error::NotFound);
    }
    let owner = role_id(tx, "owner").await?;
    let admin = role_id(tx, "admin").await?;
    let org = tx.org_id();
    let t = now();
    tx.access_changed();
    tx.execute(
        "UPDATE memberships SET role_id = $3, updated_at = $4 WHERE org_id = $1 AND user_id = $2",
        params![org, to, owner, t],
    )
    .await?;
    tx.execute(
        "UPDATE memberships SET role_id = $3, updated_at = $4 WHERE org_id = $1 AND user_id = $2",
        params![org, from, admin, t],
    )
    .await?;
    super::audit::record(
        tx,
        super::audit::AuditEntry::new("org.ownership_transferred")
            .target("user", to.uuid())
            .detail(serde_json::json!({ "from": from, "to": to })),
    )
    .await?;
    Ok(())
}

// ---- Reading one member, paging, role changes and removal (with their rules). ----

use super::audit::{self as audit_log, AuditEntry};
use super::roles;
use crate::value::Row;
use orgwall_core::Permission;

pub(crate) const MEMBER_SELECT: &str =
    "SELECT m.user_id, u.email, u.name, m.role_id, r.key, m.created_at
     FROM memberships m
     JOIN users u ON u.id = m.user_id
     JOIN roles r ON r.org_id = m.org_id AND r.id = m.role_id";

pub(crate) fn member_from_row(r: &Row) -> Result<Member> {
    Ok(Member {
        user_id: r.get(0)?,
        email: r.get(1)?,
        name: r.get(2)?,
        role_id: r.get(3)?,
        role: r.get(4)?,
        created_at: r.get(5)?,
    })
}

/// One member of this org ([`Error::NotFound`] otherwise, also for other orgs' members).
pub async fn get(tx: &mut TenantTx<'_>, user: UserId) -> Result<Member> {
    let org = tx.org_id();
    let r = tx
        .query_one(
            &format!("{MEMBER_SELECT} WHERE m.org_id = $1 AND m.user_id = $2"),
            params![org, user],
        )
        .await?;
    member_from_row(&r)
}

/// Up to `limit` members after `after` (keyset, user-id order).
pub async fn list_page(
    tx: &mut TenantTx<'_>,
    limit: i64,
    after: Option<UserId>,
) -> Result<Vec<Member>> {
    let org = tx.org_id();
    let rows = match after {
        None => {
            tx.query(
                &format!("{MEMBER_SELECT} WHERE m.org_id = $1 ORDER BY m.user_id LIMIT $2"),
                params![org, limit],
            )
            .await?
        }
        Some(a) => {
            tx.query(
                &format!(
                    "{MEMBER_SELECT} WHERE m.org_id = $1 AND m.user_id > $2 ORDER BY m.user_id LIMIT $3"
                ),
                params![org, a, limit],
            )
            .await?
        }
    };
    rows.iter().map(member_from_row).collect()
}

fn owner_refusal(detail: &str) -> Error {
    Error::Refused("cannot_act_on_owner", detail.into())
}

/// Gives `user` the role named by `role` (key or id), in one transaction with its audit
/// event `member.role_changed`. Rules: the actor needs `members:update`; the new role's
/// permissions must all be held by the actor (`grant_exceeds_own`); only an owner may make
/// an owner or change an owner's role (`cannot_act_on_owner`); the last owner cannot be
/// demoted (`last_owner`, race-safe: see [`roles`]). An unknown member is
/// [`Error::NotFound`]; an unknown role a validation error.
pub async fn change_role(tx: &mut TenantTx<'_>, user: UserId, role: &str) -> Result<Member> {
    tx.scope().require(Permission::MEMBERS_UPDATE)?;
    let owner = roles::lock_owners(tx).await?;
    let me = roles::actor(tx).await?;
    me.require(Permission::MEMBERS_UPDATE)?;
    let current = get(tx, user).await?;
    let new = roles::find(tx, role)
        .await?
        .ok_or_else(|| Error::Validation(format!("unknown role {role:?}")))?;
    if current.role_id == owner && !me.is_owner {
        return Err(owner_refusal("Only an owner can change an owner's role."));
    }
    if new.id == owner && !me.is_owner {
        return Err(owner_refusal("Only an owner can make someone an owner."));
    }
    me.may_grant(new.permissions)?;
    if new.id == current.role_id {
        return Ok(current);
    }
    let org = tx.org_id();
    tx.access_changed();
    tx.execute(
        "UPDATE memberships SET role_id = $3, updated_at = $4 WHERE org_id = $1 AND user_id = $2",
        params![org, user, new.id, now()],
    )
    .await?;
    if current.role_id == owner {
        roles::ensure_owner_remains(tx, owner).await?;
    }
    audit_log::record(
        tx,
        AuditEntry::new("member.role_changed")
            .target("user", user.uuid())
            .detail(serde_json::json!({
                "from": current.role,
                "from_role_id": current.role_id,
                "to": new.key,
                "to_role_id": new.id,
            })),
    )
    .await?;
    Ok(Member {
        role_id: new.id,
        role: new.key,
        ..current
    })
}

/// How a membership ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// Someone else removed the member (`member.removed`).
    Removed,
    /// The member left (`member.left`).
    Left,
}

/// Ends `user`'s membership, in one transaction with its audit event. The acting user
/// removing themselves is leaving and needs only membership; removing someone else needs
/// `members:remove`, and removing an owner needs the actor to be an owner
/// (`cannot_act_on_owner`). The last owner can never go (`last_owner`). Tickets assigned to
/// the member are unassigned (recorded in their history). An unknown member is
/// [`Error::NotFound`].
pub async fn remove(tx: &mut TenantTx<'_>, user: UserId) -> Result<Departure> {
    let leaving = tx.scope().user_id() == Some(user);
    if !leaving {
        tx.scope().require(Permission::MEMBERS_REMOVE)?;
    }
    let owner = roles::lock_owners(tx).await?;
    let me = roles::actor(tx).await?;
    if !leaving {
        me.require(Permission::MEMBERS_REMOVE)?;
    }
    let current = get(tx, user).await?;
    if !leaving && current.role_id == owner && !me.is_owner {
        return Err(owner_refusal("Only an owner can remove an owner."));
    }
    let org = tx.org_id();
    let t = now();
    let assigned = tx
        .data()
        .query(
            "SELECT id FROM tickets WHERE org_id = $1 AND assignee_id = $2 ORDER BY id",
            params![org, user],
        )
        .await?;
    if !assigned.is_empty() {
        tx.data().execute(
            "UPDATE tickets SET assignee_id = NULL, updated_at = $3 WHERE org_id = $1 AND assignee_id = $2",
            params![org, user, t],
        )
        .await?;
        let actor = tx.scope().user_id();
        for row in &assigned {
            let ticket: uuid::Uuid = row.get(0)?;
            tx.data().execute(
                "INSERT INTO ticket_events (org_id, id, ticket_id, actor_id, field, from_value, to_value, created_at)
                 VALUES ($1, $2, $3, $4, 'assignee', $5, NULL, $6)",
                params![org, uuid::Uuid::now_v7(), ticket, actor, user.to_string(), t],
            )
            .await?;
        }
    }
    tx.access_changed();
    tx.execute(
        "DELETE FROM memberships WHERE org_id = $1 AND user_id = $2",
        params![org, user],
    )
    .await?;
    tx.project_member(user, false).await?;
    if current.role_id == owner {
        roles::ensure_owner_remains(tx, owner).await?;
    }
    let (departure, action) = if leaving {
        (Departure::Left, "member.left")
    } else {
        (Departure::Removed, "member.removed")
    };
    audit_log::record(
        tx,
        AuditEntry::new(action)
            .target("user", user.uuid())
            .detail(serde_json::json!({
                "email": current.email,
                "role": current.role,
                "role_id": current.role_id,
                "unassigned_tickets": assigned.len(),
            })),
    )
    .await?;
    Ok(departure)
}
