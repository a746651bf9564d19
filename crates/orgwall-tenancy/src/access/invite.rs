//! Accepting an invitation: the one way a user who is not yet a member gets a scope in an
//! organization (a child of the access module, because it constructs an [`OrgScope`]).
//!
//! The token is looked up under `app.lookup` = its hash (the database lets that setting see
//! exactly the one invitation row it names); the same write transaction then enters the
//! invitation's org, re-checks everything, marks the invitation accepted with a guarded
//! `UPDATE` (only one of any number of concurrent accepts changes a row), adds the
//! membership and writes the audit events. Either all of it happens or none.

use super::{OrgScope, Principal};
use crate::crypto::token_hash;
use crate::db::{Db, Mode, Settings, Tx};
use crate::identity::audit::{self, AuditEntry};
use crate::params;
use crate::value::now;
use chrono::{DateTime, Utc};
use orgwall_core::{ApiKeyId, Error, InvitationId, OrgId, PermissionSet, Result, RoleId, UserId};

/// The membership an accepted invitation created.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Joined {
    /// The org id.
    pub org_id: OrgId,
    /// Its slug.
    pub slug: String,
    /// Its name.
    pub name: String,
    /// The role key the invitation carried.
    pub role: String,
    /// That role's id.
    pub role_id: RoleId,
    /// The permissions it grants.
    pub permissions: PermissionSet,
}

fn invalid() -> Error {
    Error::Refused(
        "invitation_invalid",
        "The invitation does not exist, was already used, or was revoked.".into(),
    )
}

/// The permissions the inviter holds in the org now, and whether they are an owner (a user
/// with the system `owner` role). `None` when the inviter no longer acts there: a user who
/// left or was deleted, an API key revoked or expired.
///
/// `invitations.invited_by` names the inviting user; an invitation made with an API key
/// (or whose inviter was deleted) has none, and then its `invitation.created` audit event,
/// written in the invitation's own transaction, names the key.
async fn inviter_now(
    tx: &mut Tx,
    org: OrgId,
    invitation: InvitationId,
    invited_by: Option<UserId>,
    t: DateTime<Utc>,
) -> Result<Option<(PermissionSet, bool)>> {
    let row = match invited_by {
        Some(user) => {
            tx.query_opt(
                "SELECT r.permissions, r.key, r.is_system FROM memberships m
                 JOIN roles r ON r.org_id = m.org_id AND r.id = m.role_id
                 WHERE m.org_id = $1 AND m.user_id = $2",
                params![org, user],
            )
            .await?
        }
        None => {
            let actor = tx
                .query_opt(
                    "SELECT actor_kind, actor_id FROM audit_events
                     WHERE org_id = $1 AND action = 'invitation.created'
                       AND target_kind = 'invitation' AND target_id = $2
                     ORDER BY id LIMIT 1",
                    params![org, invitation],
                )
                .await?;
            let Some(actor) = actor else { return Ok(None) };
            let kind: String = actor.get(0)?;
            let id: Option<uuid::Uuid> = actor.get(1)?;
            let (true, Some(key)) = (kind == "api_key", id) else {
                return Ok(None);
            };
            tx.query_opt(
                "SELECT r.permissions, r.key, 0 = 1 FROM api_keys k
                 JOIN roles r ON r.org_id = k.org_id AND r.id = k.role_id
                 WHERE k.org_id = $1 AND k.id = $2 AND k.revoked_at IS NULL
                   AND (k.expires_at IS NULL OR k.expires_at > $3)",
                params![org, ApiKeyId::from_uuid(key), t],
            )
            .await?
        }
    };
    let Some(row) = row else { return Ok(None) };
    let key: String = row.get(1)?;
    let perms = orgwall_core::perm::role_permissions(&key, &row.get::<String>(0)?);
    let is_system: bool = row.get(2)?;
    Ok(Some((perms, is_system && key == "owner")))
}

/// Accepts the invitation `token` names for `user` and makes them a member with the role
/// the invitation carries (stored server-side; the caller cannot name one).
///
/// Refusals: unknown, used or revoked token (or an org being deleted) `invitation_invalid`;
/// expired `invitation_expired`; another email than the invited one
/// `invitation_email_mismatch`; an unverified email `email_unverified`; already a member
/// `already_member`. The role is re-checked now: it must still exist and the inviter must
/// still hold every permission of it in the org (and still be an owner for an owner
/// invitation), else `invitation_invalid`.
pub async fn accept_invitation(db: &Db, user: UserId, token: &str) -> Result<Joined> {
    let token = token.trim();
    if !token.starts_with(INVITATION_PREFIX) || token.len() > 200 {
        return Err(invalid());
    }
    let hash = token_hash(token);
    let t = now();
    let mut tx = db
        .begin(Mode::Write, Settings::lookup(hash.clone()))
        .await?;
    let row = tx
        .query_opt(
            "SELECT i.org_id, i.id, i.email, i.role_id, i.invited_by, i.expires_at,
                    i.accepted_at, i.revoked_at
             FROM invitations i JOIN orgs o ON o.id = i.org_id
             WHERE i.token_hash = $1 AND o.deleting_at IS NULL",
            params![hash],
        )
        .await?
        .ok_or_else(invalid)?;
    let org: OrgId = row.get(0)?;
    let invitation: InvitationId = row.get(1)?;
    let email: String = row.get(2)?;
    let role_id: RoleId = row.get(3)?;
    let invited_by: Option<UserId> = row.get(4)?;
    let expires_at: DateTime<Utc> = row.get(5)?;
    let accepted_at: Option<DateTime<Utc>> = row.get(6)?;
    let revoked_at: Option<DateTime<Utc>> = row.get(7)?;
    if accepted_at.is_some() || revoked_at.is_some() {
        return Err(invalid());
    }
    if expires_at <= t {
        return Err(Error::Refused(
            "invitation_expired",
            "The invitation has expired; ask for a new one.".into(),
        ));
    }

    let me = tx
        .query_one(
            "SELECT email, email_verified_at FROM users WHERE id = $1",
            params![user],
        )
        .await?;
    let my_email: String = me.get(0)?;
    let verified: Option<DateTime<Utc>> = me.get(1)?;
    if !my_email.eq_ignore_ascii_case(&email) {
        return Err(Error::Refused(
            "invitation_email_mismatch",
            "The invitation was sent to another email address than yours.".into(),
        ));
    }
    if verified.is_none() {
        return Err(Error::Refused(
            "email_unverified",
            "Verify your email address before accepting the invitation.".into(),
        ));
    }

    // Enter the invitation's org (the lookup setting is dropped with it).
    tx.rescope(Settings::org(org)).await?;
    // Single use: of any number of concurrent accepts, exactly one changes the row (the
    // others wait for its row lock and then match nothing). Claimed first, so a refusal
    // below rolls the claim back with everything else.
    let n = tx
        .execute(
            "UPDATE invitations SET accepted_at = $3, accepted_by = $4
             WHERE org_id = $1 AND id = $2 AND accepted_at IS NULL AND revoked_at IS NULL
               AND expires_at > $3",
            params![org, invitation, t, user],
        )
        .await?;
    if n != 1 {
        return Err(invalid());
    }
    let role = tx
        .query_opt(
            "SELECT key, permissions, is_system FROM roles WHERE org_id = $1 AND id = $2",
            params![org, role_id],
        )
        .await?
        .ok_or_else(invalid)?;
    let role_key: String = role.get(0)?;
    let permissions = orgwall_core::perm::role_permissions(&role_key, &role.get::<String>(1)?);
    let is_owner_role = role.get::<bool>(2)? && role_key == "owner";
    let Some((held, inviter_is_owner)) =
        inviter_now(&mut tx, org, invitation, invited_by, t).await?
    else {
        return Err(invalid());
    };
    if !permissions.is_subset_of(held) || (is_owner_role && !inviter_is_owner) {
        return Err(invalid());
    }

    let member = tx
        .query_opt(
            "SELECT 1 FROM memberships WHERE org_id = $1 AND user_id = $2",
            params![org, user],
        )
        .await?;
    if member.is_some() {
        return Err(already_member());
    }
    member_quota(&mut tx, org).await?;
    tx.access_changed();
    tx.execute(
        "INSERT INTO memberships (org_id, user_id, role_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
        params![org, user, role_id, t],
    )
    .await
    .map_err(|e| match e {
        Error::Conflict(..) => already_member(),
        other => other,
    })?;
    let scope = OrgScope::new(org, Principal::User(user), permissions, None);
    audit::insert(
        &mut tx,
        &scope,
        AuditEntry::new("invitation.accepted")
            .target("invitation", invitation.uuid())
            .detail(serde_json::json!({ "email": email, "role": role_key })),
    )
    .await?;
    audit::insert(
        &mut tx,
        &scope,
        AuditEntry::new("member.joined")
            .target("user", user.uuid())
            .detail(serde_json::json!({ "role": role_key, "invitation_id": invitation })),
    )
    .await?;
    let o = tx
        .query_one("SELECT slug, name FROM orgs WHERE id = $1", params![org])
        .await?;
    let joined = Joined {
        org_id: org,
        slug: o.get(0)?,
        name: o.get(1)?,
        role: role_key,
        role_id,
        permissions,
    };
    tx.commit().await?;
    // The user has joined (committed): a failure to update the members projection of an
    // org in a database of its own leaves them unassignable there until the projection is
    // repaired, and the doctor names it; it does not undo the join.
    if let Err(e) = db.project_member(org, user, true).await {
        tracing::error!(org_id = %org, user_id = %user, error = %e, "the members projection of the org's database was not updated");
    }
    Ok(joined)
}

/// Prefix of invitation tokens.
pub const INVITATION_PREFIX: &str = "owi_";

/// Refuses with `quota_exceeded` when one more member would exceed the org's plan
/// (`plans.max_members`), after locking the org's row (PostgreSQL) so concurrent joins at
/// the limit cannot both pass. Runs inside a transaction scoped to `org`.
pub async fn member_quota(tx: &mut Tx, org: OrgId) -> Result<()> {
    let lock = if tx.kind() == crate::BackendKind::Postgres {
        " FOR UPDATE OF o"
    } else {
        ""
    };
    let row = tx
        .query_one(
            &format!(
                "SELECT o.plan, p.max_members FROM orgs o JOIN plans p ON p.name = o.plan
                 WHERE o.id = $1{lock}"
            ),
            params![org],
        )
        .await?;
    let (plan, limit): (String, i64) = (row.get(0)?, row.get(1)?);
    let have: i64 = tx
        .query_one(
            "SELECT count(*) FROM memberships WHERE org_id = $1",
            params![org],
        )
        .await?
        .get(0)?;
    if have.saturating_add(1) > limit {
        return Err(quota_exceeded(&plan, limit, "members", have));
    }
    Ok(())
}

/// The refusal of a create that would exceed a plan's quota.
pub fn quota_exceeded(plan: &str, limit: i64, what: &str, have: i64) -> Error {
    Error::Refused(
        "quota_exceeded",
        format!("the {plan} plan allows {limit} {what}; this organization has {have}"),
    )
}

fn already_member() -> Error {
    Error::Conflict(
        "already_member",
        "You are already a member of this organization.".into(),
    )
}
