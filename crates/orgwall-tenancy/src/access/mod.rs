//! The access module: the only code that can construct an [`OrgScope`].
//!
//! An `OrgScope` is proof that the holder may act inside one organization. It is built
//! only by:
//! - [`verify_member`]: a read *inside the claimed org's scope* of the caller's membership
//!   (not a member means zero rows, means [`Error::NotAMember`]);
//! - [`create_org`]: the creator of a new organization, in the transaction that creates
//!   it and makes them its owner;
//! - [`enter_system`]: an explicit, named system actor (jobs, operators), which writes an
//!   audit event in the organization it enters before it gets the scope.
//!
//! Its fields are private and it has no public constructor, so code outside this module
//! cannot forge one:
//!
//! ```compile_fail,E0451
//! // A struct literal does not compile outside the access module: the fields are private.
//! let scope = orgwall_tenancy::access::OrgScope {
//!     org_id: orgwall_core::OrgId::new(),
//!     principal: orgwall_tenancy::access::Principal::System { name: "forged" },
//!     permissions: orgwall_core::PermissionSet::all(),
//! };
//! ```
//!
//! ```compile_fail,E0624
//! // Nor can its constructor be called: it is private to the kernel.
//! let scope = orgwall_tenancy::access::OrgScope::new(orgwall_core::OrgId::new());
//! ```
//!
//! ```compile_fail,E0277
//! // Nor can a scope be conjured from Default or cloned into a different org.
//! let scope: orgwall_tenancy::access::OrgScope = Default::default();
//! ```
//!
//! The public accessors, on the other hand, are usable anywhere:
//!
//! ```
//! fn describe(scope: &orgwall_tenancy::access::OrgScope) -> String {
//!     format!("{} as {:?}", scope.org_id(), scope.principal())
//! }
//! ```

pub(crate) mod cache;
pub use crate::scope::{OrgScope, Principal};
pub use cache::{CacheStats, LISTENER_NAME, TTL as ACCESS_CACHE_TTL};
mod invite;
pub use invite::*;
pub mod jobs;

use crate::db::{Db, Mode, Settings};
use crate::identity::audit::{self, AuditEntry};
use crate::params;
use crate::value::now;
use orgwall_core::{
    ApiKeyId, Error, OrgId, PermissionSet, Result, RoleId, Slug, SystemRole, UserId,
};

/// The org's effective rate limit: its own override, else its plan's.
const RATE_LIMIT: &str = "coalesce(o.rate_limit_per_minute, p.rate_limit_per_minute)";

fn rate_limit(row: &crate::Row, i: usize) -> Result<Option<u32>> {
    Ok(row
        .get::<Option<i64>>(i)?
        .and_then(|n| u32::try_from(n).ok()))
}

/// Verifies that `user` is a member of `org` and returns their scope there.
///
/// The membership read runs inside `org`'s own scope, so the database wall answers it:
/// a user who is not a member (or an org that does not exist, or is being deleted) reads
/// zero rows.
pub async fn verify_member(db: &Db, user: UserId, org: OrgId) -> Result<OrgScope> {
    let load = async {
        let mut tx = db.begin(Mode::Read, Settings::org(org)).await?;
        let row = tx
            .query_opt(
                &format!(
                    "SELECT r.permissions, {RATE_LIMIT}, r.key, {GEN}, {PLACED} FROM memberships m
                     JOIN roles r ON r.org_id = m.org_id AND r.id = m.role_id
                     JOIN orgs o ON o.id = m.org_id JOIN plans p ON p.name = o.plan
                     LEFT JOIN placements pl ON pl.org_id = o.id
                     WHERE m.org_id = $1 AND m.user_id = $2 AND o.deleting_at IS NULL"
                ),
                params![org, user],
            )
            .await?;
        tx.commit().await?;
        row.map(|r| Ok((cache::Dep::Org(org), grant(&r)?)))
            .transpose()
    };
    let g = db
        .cache()
        .get_or_load((org, user), load)
        .await?
        .ok_or(Error::NotAMember)?;
    Ok(cache::scope(org, Principal::User(user), &g))
}

/// Stored permissions (column 0), the effective rate limit (column 1), the role key
/// (column 2), the org's access generation (column 3) and its placement (columns 4 and
/// 5, [`PLACED`]) of a row.
fn grant(row: &crate::Row) -> Result<cache::Grant> {
    let perms: String = row.get(0)?;
    let key: String = row.get(2)?;
    Ok(cache::Grant {
        permissions: orgwall_core::perm::role_permissions(&key, &perms),
        rate_limit_per_minute: rate_limit(row, 1)?,
        gen: row.get(3)?,
        route: crate::placement::Route::from_row(row, 4)?,
    })
}

/// The org's placement, read with its access (`pl`: `LEFT JOIN placements pl ON
/// pl.org_id = o.id`), so routing it costs no statement of its own.
const PLACED: &str = crate::placement::COLUMNS;

/// The org's access generation, as a column of a statement that reads its access (so
/// both come from one snapshot); `o` is the orgs row.
const GEN: &str = "coalesce((SELECT g.gen FROM access_generations g WHERE g.dep = o.id), 0)";

/// Verifies again, from the database, the access a stale scope was built from (see
/// [`Fresh`]), after dropping what the cache holds of it. Returns the generations to
/// check from now on; fails if the access is gone or was reduced meanwhile.
pub(crate) async fn reverify(
    db: &Db,
    org: OrgId,
    principal: &Principal,
    session: Option<orgwall_core::SessionId>,
    held: PermissionSet,
) -> Result<Vec<(uuid::Uuid, i64)>> {
    let cache = db.cache();
    cache.invalidate(cache::Dep::Org(org));
    let mut checks = Vec::new();
    let now_held = match principal {
        Principal::User(user) => {
            cache.invalidate(cache::Dep::User(*user));
            if let Some(s) = session {
                let gen = crate::identity::sessions::live_generation(db, s)
                    .await?
                    .ok_or_else(|| {
                        Error::Refused(
                            "unauthenticated",
                            "The session is invalid, expired or revoked.".into(),
                        )
                    })?;
                checks.push((user.uuid(), gen));
            }
            let scope = verify_member(db, *user, org).await?;
            checks.extend(scope.fresh().checks.iter().copied());
            scope.permissions()
        }
        Principal::ApiKey(key) => {
            let mut tx = db.begin(Mode::Read, Settings::org(org)).await?;
            let row = tx
                .query_opt(
                    &format!(
                        "SELECT r.permissions, {RATE_LIMIT}, r.key, {GEN}, {PLACED} FROM api_keys k
                         JOIN roles r ON r.org_id = k.org_id AND r.id = k.role_id
                         JOIN orgs o ON o.id = k.org_id JOIN plans p ON p.name = o.plan
                         LEFT JOIN placements pl ON pl.org_id = o.id
                         WHERE k.org_id = $1 AND k.id = $2 AND k.revoked_at IS NULL
                           AND (k.expires_at IS NULL OR k.expires_at > $3) AND o.deleting_at IS NULL"
                    ),
                    params![org, *key, now()],
                )
                .await?;
            tx.commit().await?;
            let g = grant(&row.ok_or_else(|| {
                Error::Refused(
                    "unauthenticated",
                    "The API key is invalid, expired or revoked.".into(),
                )
            })?)?;
            checks.push((org.uuid(), g.gen));
            g.permissions
        }
        Principal::System { .. } | Principal::Job { .. } => return Ok(checks),
    };
    if let Some(p) = held.missing_from(now_held).iter().next() {
        return Err(Error::PermissionDenied(p));
    }
    Ok(checks)
}

/// Enters `org` as a named system actor. Writes `system.scope_entered` to the org's audit
/// log (committed before the scope is returned), so every system entry is visible there.
pub async fn enter_system(
    db: &Db,
    name: &'static str,
    org: OrgId,
    reason: &str,
) -> Result<OrgScope> {
    let scope = OrgScope::new(org, Principal::System { name }, PermissionSet::all(), None);
    let mut tx = db.write(&scope).await?;
    audit::record(
        &mut tx,
        AuditEntry::new("system.scope_entered").detail(serde_json::json!({
            "system": name,
            "reason": reason,
        })),
    )
    .await?;
    tx.commit().await?;
    Ok(scope)
}

/// A newly created organization.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NewOrg {
    /// Its id.
    pub id: OrgId,
    /// Its slug.
    pub slug: String,
    /// Its name.
    pub name: String,
    /// The id of its `owner` role.
    pub owner_role: RoleId,
}

/// Creates an organization: the org row, its four system roles, the creator's owner
/// membership and an audit event. Returns the creator's scope in it.
///
/// It is placed by the placement rules ([`crate::placement::rules`]): shared (no rule, the
/// common case) in one transaction; elsewhere in three steps, the org and its roles, then
/// the placement (a schema or database made whole), then the creator's membership and the
/// event, so that nobody can reach the org (it has no member) until it is where the rule
/// places it. A failure on the way takes the org back whole: nothing is left.
pub async fn create_org(
    db: &Db,
    creator: UserId,
    name: &str,
    slug: &Slug,
) -> Result<(NewOrg, OrgScope)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::Validation("name must be 1-100 characters".into()));
    }
    let org = OrgId::new();
    let t = now();
    let mut tx = db.begin(Mode::Write, Settings::default()).await?;
    tx.access_changed();
    let kind = crate::placement::rule_for(&mut tx, NEW_ORG_PLAN).await?;
    tx.execute(
        "INSERT INTO orgs (id, slug, name, plan, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
        params![org, slug.as_str(), name, NEW_ORG_PLAN, t],
    )
    .await
    .map_err(|e| match e {
        Error::Conflict(..) => Error::Conflict("slug_taken", format!("slug {slug} is taken")),
        other => other,
    })?;
    // Shared until placed (see crate::placement).
    tx.execute(
        "INSERT INTO placements (org_id, kind, created_at, updated_at) VALUES ($1, 'shared', $2, $2)",
        params![org, t],
    )
    .await?;
    tx.rescope(Settings::org(org)).await?;
    let mut owner_role = RoleId::new();
    for role in SystemRole::ALL {
        let id = RoleId::new();
        if role == SystemRole::Owner {
            owner_role = id;
        }
        tx.execute(
            "INSERT INTO roles (org_id, id, key, name, permissions, is_system, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
            params![org, id, role.key(), role.display_name(), role.permissions().to_list(), true, t],
        )
        .await?;
    }
    let scope = OrgScope::new(
        org,
        Principal::User(creator),
        SystemRole::Owner.permissions(),
        None,
    );
    let new = NewOrg {
        id: org,
        slug: slug.as_str().to_owned(),
        name: name.to_owned(),
        owner_role,
    };
    if kind == crate::placement::Kind::Shared {
        owner_joins(&mut tx, &scope, &new, t).await?;
        tx.commit().await?;
        return Ok((new, scope));
    }
    tx.commit().await?;
    let placed = async {
        crate::placement::set(db, org, kind).await?;
        let mut tx = db.write(&scope).await?;
        owner_joins(tx.raw(), &scope, &new, t).await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = placed {
        if let Err(undo) = take_back(db, org).await {
            tracing::error!(org_id = %org, error = %undo, "a new organization that could not be placed was not taken back");
        }
        return Err(e);
    }
    Ok((new, scope))
}

/// The plan a new organization starts on.
const NEW_ORG_PLAN: &str = "free";

/// The creator's owner membership (projected into the org's own database, if it has one)
/// and the `org.created` event.
async fn owner_joins(
    tx: &mut crate::db::Tx,
    scope: &OrgScope,
    new: &NewOrg,
    t: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    let Principal::User(creator) = scope.principal() else {
        return Err(Error::Internal("an org created by a non-user".into()));
    };
    tx.execute(
        "INSERT INTO memberships (org_id, user_id, role_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
        params![new.id, *creator, new.owner_role, t],
    )
    .await?;
    tx.project_member(*creator, true).await?;
    audit::insert(
        tx,
        scope,
        AuditEntry::new("org.created")
            .target("org", new.id.uuid())
            .detail(serde_json::json!({ "slug": new.slug, "name": new.name })),
    )
    .await?;
    Ok(())
}

/// Takes back a new org that could not be placed (nobody can have reached it: it has no
/// member): leaves any schema or database made for it, then deletes it.
async fn take_back(db: &Db, org: OrgId) -> Result<()> {
    crate::placement::set(db, org, crate::placement::Kind::Shared).await?;
    let mut tx = db.begin(Mode::Write, Settings::org(org)).await?;
    tx.execute(
        "UPDATE orgs SET deleting_at = $2 WHERE id = $1",
        params![org, now()],
    )
    .await?;
    tx.purge_org_row(org).await?;
    tx.commit().await
}

/// One of a user's own memberships (the documented cross-org read).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MyOrg {
    /// The org id.
    pub org_id: OrgId,
    /// Its slug.
    pub slug: String,
    /// Its name.
    pub name: String,
    /// The user's role key there.
    pub role: String,
    /// The permissions that role grants.
    pub permissions: PermissionSet,
}

/// Lists the organizations `user` belongs to: the least a caller needs (id, slug, name,
/// role), read under `app.user_id` (the database lets that setting see only the user's
/// own membership rows and their roles).
pub async fn my_orgs(db: &Db, user: UserId) -> Result<Vec<MyOrg>> {
    let mut tx = db
        .begin(
            Mode::Read,
            Settings {
                user: Some(user),
                ..Settings::default()
            },
        )
        .await?;
    let rows = tx
        .query(
            "SELECT o.id, o.slug, o.name, r.key, r.permissions FROM memberships m
             JOIN orgs o ON o.id = m.org_id
             JOIN roles r ON r.org_id = m.org_id AND r.id = m.role_id
             WHERE m.user_id = $1 AND o.deleting_at IS NULL
             ORDER BY o.slug",
            params![user],
        )
        .await?;
    tx.commit().await?;
    rows.iter()
        .map(|r| {
            Ok(MyOrg {
                org_id: r.get(0)?,
                slug: r.get(1)?,
                name: r.get(2)?,
                role: r.get(3)?,
                permissions: orgwall_core::perm::role_permissions(
                    &r.get::<String>(3)?,
                    &r.get::<String>(4)?,
                ),
            })
        })
        .collect()
}

/// Prefix of API keys.
pub const API_KEY_PREFIX: &str = "owk_";

/// Finds the live API key a token names and returns its scope in its own org (an API key
/// only ever acts there). `None` for unknown, revoked or expired keys, or a deleted org.
///
/// The lookup runs under `app.lookup` = the token's hash, which the database lets see
/// exactly the one key row that hash names; the role is then read inside the key's org.
/// On PostgreSQL both happen in one transaction and one flight (a cold key costs one
/// round trip, not two): the lookup statement itself enters the key's org
/// (`set_config('app.org_id', ...)` of the row it found, transaction-local), and the role
/// statement, pipelined behind it, reads under that org's wall. An unknown hash finds no
/// row, sets nothing, and the role statement reads under no org: zero rows.
pub async fn authenticate_api_key(db: &Db, token: &str) -> Result<Option<OrgScope>> {
    Ok(authenticate_api_key_ahead(db, token, || None)
        .await?
        .map(|(scope, _)| scope))
}

/// [`authenticate_api_key`], with a route's one-flight read sent ahead in the lookup's
/// flight when the key is not in the access cache (see [`crate::ahead`]; `ahead` builds
/// it, called only then): its answer comes back only if the key is live, belongs to the
/// org the flight reads, and that org is served from the shared tables. The caller
/// authorizes the request before using it.
pub async fn authenticate_api_key_ahead(
    db: &Db,
    token: &str,
    ahead: impl FnOnce() -> Option<crate::ahead::Flight>,
) -> Result<Option<(OrgScope, Option<crate::ahead::ReadAhead>)>> {
    let hash = crate::crypto::token_hash(token);
    let t = now();
    // The flight sent with the lookup, and its answers (none when the key was cached).
    let mut sent = None;
    let mut read = Vec::new();
    let load = async {
        sent = ahead();
        let (found, rows) = load_api_key(db, &hash, t, sent.as_ref()).await?;
        read = rows;
        let Some((key, role)) = found else {
            return Ok(None);
        };
        let (org, key_id, expires_at): (OrgId, ApiKeyId, _) =
            (key.get(0)?, key.get(1)?, key.get(3)?);
        let mut g = grant(&role)?;
        // The generation read with the key (the earlier read): a change after it makes
        // the entry stale, even if the role read already saw it.
        g.gen = key.get(4)?;
        let k = cache::KeyGrant {
            org,
            key: key_id,
            expires_at,
            grant: g,
        };
        Ok(Some((cache::Dep::Org(org), k)))
    };
    let key = db.cache().get_or_load(hash.clone(), load).await?;
    // A cached key may have expired since it was read.
    let Some(k) = key.filter(|k| k.expires_at.is_none_or(|e| e > t)) else {
        return Ok(None);
    };
    let ahead = sent
        .filter(|f| {
            !read.is_empty() && f.org() == k.org && k.grant.route == crate::placement::Route::Shared
        })
        .and_then(|f| crate::ahead::ReadAhead::new(f, read));
    Ok(Some((
        cache::scope(k.org, Principal::ApiKey(k.key), &k.grant),
        ahead,
    )))
}

/// The live key row a hash names (org, id, role, expiry, the org's generation) under
/// `app.lookup`, and its role's grant row ([`grant`]) read in the key's org; on
/// PostgreSQL with the answers of `ahead`'s statements, read in the same flight under the
/// org the key row entered (empty without them, or on SQLite).
#[allow(clippy::type_complexity)]
async fn load_api_key(
    db: &Db,
    hash: &str,
    t: chrono::DateTime<chrono::Utc>,
    ahead: Option<&crate::ahead::Flight>,
) -> Result<(Option<(crate::Row, crate::Row)>, Vec<Vec<crate::Row>>)> {
    const KEY: &str = "FROM api_keys k JOIN orgs o ON o.id = k.org_id
         WHERE k.key_hash = $1 AND k.revoked_at IS NULL
           AND (k.expires_at IS NULL OR k.expires_at > $2) AND o.deleting_at IS NULL";
    const COLS: &str = "k.org_id, k.id, k.role_id, k.expires_at";
    let key_sql = format!("SELECT {COLS}, {GEN} {KEY}");
    let role_sql = |org: &str, role: &str| {
        format!(
            "SELECT r.permissions, {RATE_LIMIT}, r.key, {GEN}, {PLACED} FROM roles r
             JOIN orgs o ON o.id = r.org_id JOIN plans p ON p.name = o.plan
             LEFT JOIN placements pl ON pl.org_id = o.id
             WHERE r.org_id = {org} AND r.id = {role}"
        )
    };
    // One flight on PostgreSQL: a read lane carries it (see `Db::read_once`).
    let mut tx = db
        .begin(
            Mode::Read,
            Settings {
                once: true,
                ..Settings::lookup(hash.to_owned())
            },
        )
        .await?;
    if tx.kind() == crate::db::BackendKind::Postgres {
        // One flight: the key statement enters the key's org, the role statement reads
        // there (its key is found again by hash, now visible under the org's wall too).
        // The key's sub-select names the org entered, not the role row's: it runs once,
        // and the role is one probe of its primary key (correlated with `r`, it ran for
        // every role of the org, which were all read).
        // It also leaves `app.lookup` (read once, by this statement's policy): what
        // follows reads as the key's org alone, a route's read sent ahead included.
        let enter = format!(
            "SELECT {COLS}, {GEN}, set_config('app.org_id', k.org_id::text, true),
                    set_config('app.lookup', '', true) {KEY}"
        );
        const ENTERED: &str = "nullif(current_setting('app.org_id', true), '')::uuid";
        let role = role_sql(
            ENTERED,
            &format!(
                "(SELECT k2.role_id FROM api_keys k2 WHERE k2.key_hash = $1 AND k2.org_id = {ENTERED})"
            ),
        );
        let key_params = [crate::Val::from(hash), crate::Val::from(t)];
        let role_params = [crate::Val::from(hash)];
        let mut statements = vec![
            (enter.as_str(), &key_params[..]),
            (role.as_str(), &role_params[..]),
        ];
        // A route's read, sent ahead: under the org the key row entered, or under none.
        statements.extend(ahead.map(|f| f.statements()).unwrap_or_default());
        let mut answers = tx.query_many(&statements).await?.into_iter();
        tx.commit().await?;
        let mut first = || answers.next().and_then(|r| r.into_iter().next());
        let (key, role) = (first(), first());
        return Ok((key.zip(role), answers.collect()));
    }
    // SQLite (in process: a second statement costs no round trip): the org is entered
    // from the key row, as a new scope.
    let Some(key) = tx.query_opt(&key_sql, params![hash, t]).await? else {
        tx.commit().await?;
        return Ok((None, Vec::new()));
    };
    tx.commit().await?;
    let (org, role): (OrgId, RoleId) = (key.get(0)?, key.get(2)?);
    let mut tx = db.begin(Mode::Read, Settings::org(org)).await?;
    let role = tx
        .query_opt(&role_sql("$1", "$2"), params![org, role])
        .await?;
    tx.commit().await?;
    Ok((role.map(|r| (key, r)), Vec::new()))
}
