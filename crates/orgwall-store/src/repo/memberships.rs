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
    let org = tx.org_id();
    let t = now();
    tx.execute(
        "INSERT INTO memberships (org_id, user_id, role_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
        params![org, user, role, t],
    )
    .await
    .map_err(|e| match e {
        Error::Conflict(..) => Error::Conflict("already_member", "already a member".into()),
        other => other,
    })?;
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
