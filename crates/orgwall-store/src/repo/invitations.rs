//! Invitations (tenant table `invitations`): create (the token is returned once and mailed
//! through the outbox; only its SHA-256 is stored), list, revoke.
//!
//! Accepting an invitation gives a user who is not yet a member a scope in the org, so it
//! lives in the access module ([`crate::access::accept_invitation`]).

use crate::crypto::{new_token, token_hash};
use crate::db::TenantTx;
use crate::params;
use crate::repo::audit::{self, AuditEntry};
use crate::repo::{memberships, outbox};
use crate::value::{now, Row};
use chrono::{DateTime, Duration, Utc};
use orgwall_core::{Email, Error, InvitationId, Permission, Result, RoleId, UserId};

pub use orgwall_tenancy::access::INVITATION_PREFIX;

/// How long an invitation stays valid.
pub const INVITATION_TTL: Duration = Duration::days(7);

/// An invitation (never carries its token or the token's hash).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Invitation {
    /// Its id.
    pub id: InvitationId,
    /// The invited address (lower case).
    pub email: String,
    /// The role the invitee gets.
    pub role: String,
    /// That role's id.
    pub role_id: RoleId,
    /// `pending`, `accepted`, `revoked` or `expired`.
    pub status: &'static str,
    /// The inviting user (none when an API key invited or the user is gone).
    pub invited_by: Option<UserId>,
    /// When it stops being valid.
    pub expires_at: DateTime<Utc>,
    /// When it was accepted.
    pub accepted_at: Option<DateTime<Utc>>,
    /// By whom.
    pub accepted_by: Option<UserId>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

const COLS: &str = "i.id, i.email, r.key, i.role_id, i.invited_by, i.expires_at, i.accepted_at, \
                    i.accepted_by, i.revoked_at, i.created_at";

fn from_row(r: &Row, t: DateTime<Utc>) -> Result<Invitation> {
    let expires_at: DateTime<Utc> = r.get(5)?;
    let accepted_at: Option<DateTime<Utc>> = r.get(6)?;
    let revoked_at: Option<DateTime<Utc>> = r.get(8)?;
    let status = if accepted_at.is_some() {
        "accepted"
    } else if revoked_at.is_some() {
        "revoked"
    } else if expires_at <= t {
        "expired"
    } else {
        "pending"
    };
    Ok(Invitation {
        id: r.get(0)?,
        email: r.get(1)?,
        role: r.get(2)?,
        role_id: r.get(3)?,
        status,
        invited_by: r.get(4)?,
        expires_at,
        accepted_at,
        accepted_by: r.get(7)?,
        revoked_at,
        created_at: r.get(9)?,
    })
}

/// A role of the transaction's org that the acting principal may hand out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Grantable {
    /// The role's id.
    pub id: RoleId,
    /// Its key.
    pub key: String,
    /// Whether it is the system `owner` role.
    pub is_owner: bool,
}

/// Finds the role named by `role` (key or id; unknown is 422) and checks the granting rule:
/// the acting principal must hold every permission of it (else 403 `grant_exceeds_own`).
pub(crate) async fn grantable_role(tx: &mut TenantTx<'_>, role: &str) -> Result<Grantable> {
    let id = memberships::role_id(tx, role.trim()).await?;
    let org = tx.org_id();
    let row = tx
        .query_one(
            "SELECT key, permissions, is_system FROM roles WHERE org_id = $1 AND id = $2",
            params![org, id],
        )
        .await?;
    let key: String = row.get(0)?;
    let perms = orgwall_core::perm::role_permissions(&key, &row.get::<String>(1)?);
    let is_system: bool = row.get(2)?;
    let held = tx.scope().permissions();
    if !perms.is_subset_of(held) {
        let missing: Vec<&str> = perms
            .missing_from(held)
            .iter()
            .map(Permission::as_str)
            .collect();
        return Err(Error::Refused(
            "grant_exceeds_own",
            format!(
                "The role {key} grants permissions you do not hold: {}.",
                missing.join(", ")
            ),
        ));
    }
    Ok(Grantable {
        id,
        is_owner: is_system && key == "owner",
        key,
    })
}

/// Invites `email` into the transaction's org with `role` (key or id). The inviter must
/// hold `members:invite` and every permission of the role; only an owner (a user) invites
/// an owner. A pending invitation for the same address is revoked in the same transaction.
/// The invitation email (with `link(token)`) is queued in the outbox and an
/// `invitation.created` audit event is written, both in this transaction.
///
/// Returns the invitation and its token: the only time the token exists outside the
/// invitee's mailbox.
pub async fn create(
    tx: &mut TenantTx<'_>,
    email: &Email,
    role: &str,
    link: impl Fn(&str) -> String,
) -> Result<(Invitation, String)> {
    let scope = tx.scope();
    scope.require(Permission::MEMBERS_INVITE)?;
    let org = tx.org_id();
    let role = grantable_role(tx, role).await?;
    if role.is_owner {
        let inviter_is_owner = match scope.user_id() {
            Some(u) => memberships::role_of(tx, u).await?.as_deref() == Some("owner"),
            None => false,
        };
        if !inviter_is_owner {
            return Err(Error::Refused(
                "owner_required",
                "Only an owner (a user, not an API key) can invite an owner.".into(),
            ));
        }
    }
    let existing = tx
        .query_opt(
            "SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id
             WHERE m.org_id = $1 AND u.email = $2",
            params![org, email.as_str()],
        )
        .await?;
    if existing.is_some() {
        return Err(Error::Conflict(
            "already_member",
            format!("{email} is already a member of this organization."),
        ));
    }
    let t = now();
    let superseded = tx
        .execute(
            "UPDATE invitations SET revoked_at = $3
             WHERE org_id = $1 AND email = $2 AND accepted_at IS NULL AND revoked_at IS NULL",
            params![org, email.as_str(), t],
        )
        .await?;
    let token = new_token(INVITATION_PREFIX);
    let id = InvitationId::new();
    let expires_at = t + INVITATION_TTL;
    let invited_by = scope.user_id();
    tx.execute(
        "INSERT INTO invitations (org_id, id, email, role_id, token_hash, invited_by, expires_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        params![org, id, email.as_str(), role.id, token_hash(&token), invited_by, expires_at, t],
    )
    .await?;
    let org_name: String = tx
        .query_one("SELECT name FROM orgs WHERE id = $1", params![org])
        .await?
        .get(0)?;
    outbox::enqueue(
        tx.raw(),
        Some(org),
        email.as_str(),
        &format!("You are invited to join {org_name} on orgwall"),
        &format!(
            "Hello,\n\nyou have been invited to join {org_name} on orgwall as {role}.\n\n\
             Accept the invitation by opening:\n{link}\n\n\
             or, signed in as {email}, POST /v1/invitations/accept with {{\"token\": \"{token}\"}}.\n\
             The invitation expires at {expires_at}.\n",
            role = role.key,
            link = link(&token),
            expires_at = expires_at.to_rfc3339(),
        ),
    )
    .await?;
    audit::record(
        tx,
        AuditEntry::new("invitation.created")
            .target("invitation", id.uuid())
            .detail(serde_json::json!({
                "email": email.as_str(),
                "role": role.key,
                "role_id": role.id,
                "expires_at": expires_at,
                "superseded": superseded,
            })),
    )
    .await?;
    Ok((
        Invitation {
            id,
            email: email.as_str().to_owned(),
            role: role.key,
            role_id: role.id,
            status: "pending",
            invited_by,
            expires_at,
            accepted_at: None,
            accepted_by: None,
            revoked_at: None,
            created_at: t,
        },
        token,
    ))
}

/// Lists the org's invitations in id order (keyset: those after `after`), at most `limit`
/// (clamped to 1..=1000; callers ask for one more than a page to learn whether another
/// page follows).
pub async fn list(
    tx: &mut TenantTx<'_>,
    limit: i64,
    after: Option<InvitationId>,
) -> Result<Vec<Invitation>> {
    let limit = limit.clamp(1, 1000);
    let org = tx.org_id();
    let base = format!(
        "SELECT {COLS} FROM invitations i JOIN roles r ON r.org_id = i.org_id AND r.id = i.role_id
         WHERE i.org_id = $1"
    );
    let rows = match after {
        None => {
            tx.query(
                &format!("{base} ORDER BY i.id LIMIT $2"),
                params![org, limit],
            )
            .await?
        }
        Some(a) => {
            tx.query(
                &format!("{base} AND i.id > $2 ORDER BY i.id LIMIT $3"),
                params![org, a, limit],
            )
            .await?
        }
    };
    let t = now();
    rows.iter().map(|r| from_row(r, t)).collect()
}

/// Gets one invitation of this org.
pub async fn get(tx: &mut TenantTx<'_>, id: InvitationId) -> Result<Invitation> {
    let org = tx.org_id();
    let row = tx
        .query_one(
            &format!(
                "SELECT {COLS} FROM invitations i JOIN roles r ON r.org_id = i.org_id AND r.id = i.role_id
                 WHERE i.org_id = $1 AND i.id = $2"
            ),
            params![org, id],
        )
        .await?;
    from_row(&row, now())
}

/// Revokes a pending invitation (its token stops working at once), with an
/// `invitation.revoked` audit event. Unknown in this org: [`Error::NotFound`]; already
/// revoked: nothing to do; already accepted: 409 `invitation_accepted`.
pub async fn revoke(tx: &mut TenantTx<'_>, id: InvitationId) -> Result<()> {
    tx.scope().require(Permission::MEMBERS_INVITE)?;
    let org = tx.org_id();
    let t = now();
    let n = tx
        .execute(
            "UPDATE invitations SET revoked_at = $3
             WHERE org_id = $1 AND id = $2 AND accepted_at IS NULL AND revoked_at IS NULL",
            params![org, id, t],
        )
        .await?;
    if n == 0 {
        let inv = get(tx, id).await?;
        return match inv.status {
            "accepted" => Err(Error::Conflict(
                "invitation_accepted",
                "The invitation was already accepted; remove the member instead.".into(),
            )),
            _ => Ok(()),
        };
    }
    let email: String = tx
        .query_one(
            "SELECT email FROM invitations WHERE org_id = $1 AND id = $2",
            params![org, id],
        )
        .await?
        .get(0)?;
    audit::record(
        tx,
        AuditEntry::new("invitation.revoked")
            .target("invitation", id.uuid())
            .detail(serde_json::json!({ "email": email })),
    )
    .await?;
    Ok(())
}
