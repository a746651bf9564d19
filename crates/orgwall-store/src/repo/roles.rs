//! Roles (tenant table): the four system roles every org is created with and the org's
//! custom roles, plus the granting rules shared with membership changes.
//!
//! Rules enforced here, inside the transaction that makes the change:
//! - nobody grants a permission they do not hold: a custom role's permissions must be a
//!   subset of the actor's (`grant_exceeds_own`, naming what is missing);
//! - system roles cannot be edited or deleted (`system_role_immutable`);
//! - a role still used by a membership, an invitation or an API key cannot be deleted
//!   (`role_in_use`).
//!
//! The actor's permissions are the scope's (verified at the start of the request)
//! intersected with what the database says now, so a concurrent demotion of the actor is
//! honoured too.

use crate::access::Principal;
use crate::db::{BackendKind, TenantTx};
use crate::params;
use crate::repo::audit::{self, AuditEntry};
use crate::value::{now, Row};
use chrono::{DateTime, Utc};
use orgwall_core::{Error, Permission, PermissionSet, Result, RoleId, SystemRole};
use serde_json::json;

/// The key of the owner role.
pub const OWNER: &str = "owner";

/// A role of the transaction's organization.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Role {
    /// Its id.
    pub id: RoleId,
    /// Its key, unique in the org (`owner`, `admin`, `member`, `viewer` or a custom key).
    pub key: String,
    /// Its display name.
    pub name: String,
    /// What it grants.
    pub permissions: PermissionSet,
    /// Whether it is one of the four system roles (immutable).
    pub is_system: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

const COLS: &str = "id, key, name, permissions, is_system, created_at, updated_at";

fn from_row(r: &Row) -> Result<Role> {
    let perms: String = r.get(3)?;
    let key: String = r.get(1)?;
    Ok(Role {
        id: r.get(0)?,
        permissions: orgwall_core::perm::role_permissions(&key, &perms),
        key,
        name: r.get(2)?,
        is_system: r.get(4)?,
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
    })
}

/// Checks a custom role key: `^[a-z][a-z0-9_-]{1,39}$`, and not a system role's key.
pub fn parse_key(key: &str) -> Result<String> {
    let ok = (2..=40).contains(&key.len())
        && key.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !ok {
        return Err(Error::Validation(
            "key must be 2-40 characters of a-z, 0-9, _ and -, starting with a letter".into(),
        ));
    }
    if SystemRole::from_key(key).is_some() {
        return Err(Error::Validation(format!(
            "key {key:?} is reserved for a system role"
        )));
    }
    Ok(key.to_owned())
}

/// Parses permission names; an unknown name is a validation error naming it.
pub fn parse_permissions<S: AsRef<str>>(names: &[S]) -> Result<PermissionSet> {
    names
        .iter()
        .map(|n| {
            n.as_ref()
                .parse::<Permission>()
                .map_err(|e| Error::Validation(e.to_string()))
        })
        .collect()
}

/// Lists up to `limit` roles after `after` (keyset, id order: the system roles first, as
/// they are created with the org).
pub async fn list(tx: &mut TenantTx<'_>, limit: i64, after: Option<RoleId>) -> Result<Vec<Role>> {
    let org = tx.org_id();
    let rows = match after {
        None => {
            tx.query(
                &format!("SELECT {COLS} FROM roles WHERE org_id = $1 ORDER BY id LIMIT $2"),
                params![org, limit],
            )
            .await?
        }
        Some(a) => {
            tx.query(
                &format!(
                    "SELECT {COLS} FROM roles WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3"
                ),
                params![org, a, limit],
            )
            .await?
        }
    };
    rows.iter().map(from_row).collect()
}

/// Gets a role of this org ([`Error::NotFound`] otherwise, also for other orgs' roles).
pub async fn get(tx: &mut TenantTx<'_>, id: RoleId) -> Result<Role> {
    let org = tx.org_id();
    let r = tx
        .query_one(
            &format!("SELECT {COLS} FROM roles WHERE org_id = $1 AND id = $2"),
            params![org, id],
        )
        .await?;
    from_row(&r)
}

/// Finds a role of this org by key or id.
pub async fn find(tx: &mut TenantTx<'_>, key_or_id: &str) -> Result<Option<Role>> {
    let org = tx.org_id();
    let row = match key_or_id.parse::<RoleId>() {
        Ok(id) => {
            tx.query_opt(
                &format!("SELECT {COLS} FROM roles WHERE org_id = $1 AND id = $2"),
                params![org, id],
            )
            .await?
        }
        Err(_) => {
            tx.query_opt(
                &format!("SELECT {COLS} FROM roles WHERE org_id = $1 AND key = $2"),
                params![org, key_or_id],
            )
            .await?
        }
    };
    row.as_ref().map(from_row).transpose()
}

/// Who is acting, as the database sees it now.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Actor {
    /// Whether the actor holds the owner role (system actors count as owners).
    pub is_owner: bool,
    /// The permissions held: the scope's, intersected with the current role's.
    pub permissions: PermissionSet,
}

impl Actor {
    /// Succeeds if `p` is held, else [`Error::PermissionDenied`].
    pub fn require(&self, p: Permission) -> Result<()> {
        if self.permissions.contains(p) {
            Ok(())
        } else {
            Err(Error::PermissionDenied(p))
        }
    }

    /// The granting rule: `wanted` must be a subset of what the actor holds.
    pub fn may_grant(&self, wanted: PermissionSet) -> Result<()> {
        let missing = wanted.missing_from(self.permissions);
        if missing.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = missing.iter().map(Permission::as_str).collect();
        Err(Error::Refused(
            "grant_exceeds_own",
            format!(
                "You cannot grant permissions you do not hold: {}.",
                names.join(", ")
            ),
        ))
    }
}

/// Reads the acting principal's current role inside the transaction. A user who is no
/// longer a member (or a revoked key) is [`Error::NotAMember`].
pub(crate) async fn actor(tx: &mut TenantTx<'_>) -> Result<Actor> {
    let org = tx.org_id();
    let scope = tx.scope();
    let row = match scope.principal() {
        Principal::System { .. } | Principal::Job { .. } => {
            return Ok(Actor {
                is_owner: true,
                permissions: scope.permissions(),
            })
        }
        Principal::User(u) => {
            tx.query_opt(
                "SELECT r.key, r.permissions FROM memberships m
                 JOIN roles r ON r.org_id = m.org_id AND r.id = m.role_id
                 WHERE m.org_id = $1 AND m.user_id = $2",
                params![org, *u],
            )
            .await?
        }
        Principal::ApiKey(k) => {
            tx.query_opt(
                "SELECT r.key, r.permissions FROM api_keys k
                 JOIN roles r ON r.org_id = k.org_id AND r.id = k.role_id
                 WHERE k.org_id = $1 AND k.id = $2 AND k.revoked_at IS NULL",
                params![org, *k],
            )
            .await?
        }
    };
    let row = row.ok_or(Error::NotAMember)?;
    let key: String = row.get(0)?;
    let current = orgwall_core::perm::role_permissions(&key, &row.get::<String>(1)?);
    let held = scope.permissions();
    Ok(Actor {
        is_owner: key == OWNER,
        permissions: held.iter().filter(|p| current.contains(*p)).collect(),
    })
}

/// The id of the org's owner role. On PostgreSQL it also locks every owner membership
/// (`FOR UPDATE`, in user-id order), so concurrent changes that could remove owners run
/// one after the other and each sees the other's result; SQLite write transactions are
/// serialized already (`BEGIN IMMEDIATE`). Call it first in any transaction that may
/// demote or remove a member, then [`ensure_owner_remains`] after the change.
pub(crate) async fn lock_owners(tx: &mut TenantTx<'_>) -> Result<RoleId> {
    let org = tx.org_id();
    let owner: RoleId = tx
        .query_one(
            "SELECT id FROM roles WHERE org_id = $1 AND key = $2",
            params![org, OWNER],
        )
        .await
        .map_err(|e| match e {
            Error::NotFound => Error::Internal("organization has no owner role".into()),
            other => other,
        })?
        .get(0)?;
    if tx.kind() == BackendKind::Postgres {
        tx.query(
            "SELECT user_id FROM memberships WHERE org_id = $1 AND role_id = $2
             ORDER BY user_id FOR UPDATE",
            params![org, owner],
        )
        .await?;
    }
    Ok(owner)
}

/// Recounts the owners after a change: none left is 409 `last_owner` (the caller's
/// transaction is then dropped, so the change never lands).
pub(crate) async fn ensure_owner_remains(tx: &mut TenantTx<'_>, owner: RoleId) -> Result<()> {
    let org = tx.org_id();
    let n: i64 = tx
        .query_one(
            "SELECT count(*) FROM memberships WHERE org_id = $1 AND role_id = $2",
            params![org, owner],
        )
        .await?
        .get(0)?;
    if n < 1 {
        return Err(Error::Refused(
            "last_owner",
            "An organization must keep at least one owner: make someone else an owner first."
                .into(),
        ));
    }
    Ok(())
}

fn immutable(role: &Role) -> Error {
    Error::Refused(
        "system_role_immutable",
        format!(
            "{} is a system role and cannot be changed or deleted.",
            role.key
        ),
    )
}

fn key_taken(e: Error, key: &str) -> Error {
    match e {
        Error::Conflict(..) => {
            Error::Conflict("role_key_taken", format!("role key {key} is taken"))
        }
        other => other,
    }
}

/// Creates a custom role. Needs `roles:manage`, and `permissions` must be held by the
/// actor. Records `role.created`.
pub async fn create(
    tx: &mut TenantTx<'_>,
    key: &str,
    name: &str,
    permissions: PermissionSet,
) -> Result<Role> {
    let key = parse_key(key)?;
    let name = super::text("name", name, 100)?;
    let me = actor(tx).await?;
    me.require(Permission::ROLES_MANAGE)?;
    me.may_grant(permissions)?;
    let org = tx.org_id();
    let id = RoleId::new();
    let t = now();
    tx.access_changed();
    tx.execute(
        "INSERT INTO roles (org_id, id, key, name, permissions, is_system, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        params![org, id, &key, &name, permissions.to_list(), false, t],
    )
    .await
    .map_err(|e| key_taken(e, &key))?;
    audit::record(
        tx,
        AuditEntry::new("role.created")
            .target("role", id.uuid())
            .detail(json!({ "key": key, "name": name, "permissions": permissions })),
    )
    .await?;
    Ok(Role {
        id,
        key,
        name,
        permissions,
        is_system: false,
        created_at: t,
        updated_at: t,
    })
}

/// A change to a custom role; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct RolePatch {
    /// New key.
    pub key: Option<String>,
    /// New name.
    pub name: Option<String>,
    /// New permissions (must be held by the actor).
    pub permissions: Option<PermissionSet>,
}

/// Changes a custom role. Needs `roles:manage`; new permissions must be held by the actor;
/// system roles are immutable. Records `role.updated` with what changed. A member who
/// holds the role has its new permissions on their next request.
pub async fn update(tx: &mut TenantTx<'_>, id: RoleId, patch: RolePatch) -> Result<Role> {
    let me = actor(tx).await?;
    me.require(Permission::ROLES_MANAGE)?;
    let old = get(tx, id).await?;
    if old.is_system {
        return Err(immutable(&old));
    }
    let key = patch.key.as_deref().map(parse_key).transpose()?;
    let name = patch
        .name
        .as_deref()
        .map(|n| super::text("name", n, 100))
        .transpose()?;
    if let Some(p) = patch.permissions {
        me.may_grant(p)?;
    }
    let new = Role {
        key: key.unwrap_or_else(|| old.key.clone()),
        name: name.unwrap_or_else(|| old.name.clone()),
        permissions: patch.permissions.unwrap_or(old.permissions),
        updated_at: now(),
        ..old.clone()
    };
    if new.key == old.key && new.name == old.name && new.permissions == old.permissions {
        return Ok(old);
    }
    let org = tx.org_id();
    tx.access_changed();
    tx.execute(
        "UPDATE roles SET key = $3, name = $4, permissions = $5, updated_at = $6
         WHERE org_id = $1 AND id = $2",
        params![
            org,
            id,
            &new.key,
            &new.name,
            new.permissions.to_list(),
            new.updated_at
        ],
    )
    .await
    .map_err(|e| key_taken(e, &new.key))?;
    let mut changes = serde_json::Map::new();
    if new.key != old.key {
        changes.insert("key".into(), json!({ "from": old.key, "to": new.key }));
    }
    if new.name != old.name {
        changes.insert("name".into(), json!({ "from": old.name, "to": new.name }));
    }
    if new.permissions != old.permissions {
        changes.insert(
            "permissions".into(),
            json!({ "from": old.permissions, "to": new.permissions }),
        );
    }
    audit::record(
        tx,
        AuditEntry::new("role.updated")
            .target("role", id.uuid())
            .detail(json!({ "key": new.key, "changes": changes })),
    )
    .await?;
    Ok(new)
}

/// Deletes a custom role. Needs `roles:manage`; system roles are immutable; a role still
/// held by a member, an invitation or an API key is 409 `role_in_use`. Records
/// `role.deleted`.
pub async fn delete(tx: &mut TenantTx<'_>, id: RoleId) -> Result<()> {
    let me = actor(tx).await?;
    me.require(Permission::ROLES_MANAGE)?;
    let role = get(tx, id).await?;
    if role.is_system {
        return Err(immutable(&role));
    }
    let org = tx.org_id();
    let uses: i64 = tx
        .query_one(
            "SELECT (SELECT count(*) FROM memberships WHERE org_id = $1 AND role_id = $2)
                  + (SELECT count(*) FROM invitations WHERE org_id = $1 AND role_id = $2)
                  + (SELECT count(*) FROM api_keys WHERE org_id = $1 AND role_id = $2)",
            params![org, id],
        )
        .await?
        .get(0)?;
    let in_use = || {
        Error::Conflict(
            "role_in_use",
            format!(
                "role {} is still held by a member, an invitation or an API key",
                role.key
            ),
        )
    };
    if uses > 0 {
        return Err(in_use());
    }
    tx.access_changed();
    tx.execute(
        "DELETE FROM roles WHERE org_id = $1 AND id = $2",
        params![org, id],
    )
    .await
    .map_err(|e| match e {
        // A reference that appeared after the count (the composite foreign keys refuse).
        Error::Conflict("in_use", _) => in_use(),
        Error::Validation(_) => in_use(),
        other => other,
    })?;
    audit::record(
        tx,
        AuditEntry::new("role.deleted")
            .target("role", id.uuid())
            .detail(json!({ "key": role.key, "name": role.name, "permissions": role.permissions })),
    )
    .await?;
    Ok(())
}
