//! API keys (tenant table `api_keys`): create (the key is returned once; only its SHA-256
//! and a short, non-secret display prefix are stored), list, revoke.
//!
//! Authenticating with a key is a cross-org lookup by the key's hash and lives in the
//! access module ([`crate::access::authenticate_api_key`]); a key only ever acts in its own
//! org, with its role's permissions.

use crate::access::API_KEY_PREFIX;
use crate::crypto::{new_token, token_hash};
use crate::db::TenantTx;
use crate::params;
use crate::repo::audit::{self, AuditEntry};
use crate::repo::invitations::grantable_role;
use crate::value::{now, Row};
use chrono::{DateTime, Utc};
use orgwall_core::{ApiKeyId, Error, Permission, Result, RoleId, UserId};

/// How many leading characters of a key are kept for display (`owk_` and 8 hex digits:
/// 32 of the key's 256 random bits, not enough to matter).
pub const DISPLAY_PREFIX_CHARS: usize = 12;

/// An API key (never carries the key or its hash).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiKey {
    /// Its id.
    pub id: ApiKeyId,
    /// Its name.
    pub name: String,
    /// Its role's key.
    pub role: String,
    /// Its role's id.
    pub role_id: RoleId,
    /// The key's first characters, to recognize it.
    pub prefix: String,
    /// The user who created it (none when another key did, or the user is gone).
    pub created_by: Option<UserId>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

const COLS: &str =
    "k.id, k.name, r.key, k.role_id, k.prefix, k.created_by, k.expires_at, k.revoked_at, k.created_at";

fn from_row(r: &Row) -> Result<ApiKey> {
    Ok(ApiKey {
        id: r.get(0)?,
        name: r.get(1)?,
        role: r.get(2)?,
        role_id: r.get(3)?,
        prefix: r.get(4)?,
        created_by: r.get(5)?,
        expires_at: r.get(6)?,
        revoked_at: r.get(7)?,
        created_at: r.get(8)?,
    })
}

/// Creates a key in the transaction's org with `role` (key or id), which must grant no
/// permission the creator lacks (403 `grant_exceeds_own`). An `expires_at` that is not in
/// the future is 422. Writes an `api_key.created` audit event (never the key).
///
/// Returns the key's record and the key itself: the only time it exists outside the client.
pub async fn create(
    tx: &mut TenantTx<'_>,
    name: &str,
    role: &str,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(ApiKey, String)> {
    tx.scope().require(Permission::API_KEYS_MANAGE)?;
    let name = super::text("name", name, 100)?;
    let t = now();
    if expires_at.is_some_and(|e| e <= t) {
        return Err(Error::Validation("expires_at must be in the future".into()));
    }
    let role = grantable_role(tx, role).await?;
    let org = tx.org_id();
    let id = ApiKeyId::new();
    let key = new_token(API_KEY_PREFIX);
    let prefix: String = key.chars().take(DISPLAY_PREFIX_CHARS).collect();
    let created_by = tx.scope().user_id();
    tx.access_changed();
    tx.execute(
        "INSERT INTO api_keys (org_id, id, name, role_id, key_hash, prefix, created_by, expires_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        params![org, id, &name, role.id, token_hash(&key), &prefix, created_by, expires_at, t],
    )
    .await?;
    audit::record(
        tx,
        AuditEntry::new("api_key.created")
            .target("api_key", id.uuid())
            .detail(serde_json::json!({
                "name": &name,
                "role": &role.key,
                "role_id": role.id,
                "prefix": &prefix,
                "expires_at": expires_at,
            })),
    )
    .await?;
    Ok((
        ApiKey {
            id,
            name,
            role: role.key,
            role_id: role.id,
            prefix,
            created_by,
            expires_at,
            revoked_at: None,
            created_at: t,
        },
        key,
    ))
}

/// Lists the org's keys in id order (keyset: those after `after`), at most `limit`
/// (clamped to 1..=1000; callers ask for one more than a page to learn whether another
/// page follows).
pub async fn list(
    tx: &mut TenantTx<'_>,
    limit: i64,
    after: Option<ApiKeyId>,
) -> Result<Vec<ApiKey>> {
    let limit = limit.clamp(1, 1000);
    let org = tx.org_id();
    let base = format!(
        "SELECT {COLS} FROM api_keys k JOIN roles r ON r.org_id = k.org_id AND r.id = k.role_id
         WHERE k.org_id = $1"
    );
    let rows = match after {
        None => {
            tx.query(
                &format!("{base} ORDER BY k.id LIMIT $2"),
                params![org, limit],
            )
            .await?
        }
        Some(a) => {
            tx.query(
                &format!("{base} AND k.id > $2 ORDER BY k.id LIMIT $3"),
                params![org, a, limit],
            )
            .await?
        }
    };
    rows.iter().map(from_row).collect()
}

/// Gets one key of this org.
pub async fn get(tx: &mut TenantTx<'_>, id: ApiKeyId) -> Result<ApiKey> {
    let org = tx.org_id();
    let row = tx
        .query_one(
            &format!(
                "SELECT {COLS} FROM api_keys k JOIN roles r ON r.org_id = k.org_id AND r.id = k.role_id
                 WHERE k.org_id = $1 AND k.id = $2"
            ),
            params![org, id],
        )
        .await?;
    from_row(&row)
}

/// Revokes a key: the very next request made with it is unauthenticated. Writes an
/// `api_key.revoked` audit event. Unknown in this org: [`Error::NotFound`]; already
/// revoked: nothing to do.
pub async fn revoke(tx: &mut TenantTx<'_>, id: ApiKeyId) -> Result<()> {
    tx.scope().require(Permission::API_KEYS_MANAGE)?;
    let org = tx.org_id();
    tx.access_changed();
    let n = tx
        .execute(
            "UPDATE api_keys SET revoked_at = $3 WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL",
            params![org, id, now()],
        )
        .await?;
    let key = get(tx, id).await?;
    if n == 0 {
        return Ok(());
    }
    audit::record(
        tx,
        AuditEntry::new("api_key.revoked")
            .target("api_key", id.uuid())
            .detail(serde_json::json!({ "name": key.name, "prefix": key.prefix })),
    )
    .await?;
    Ok(())
}
