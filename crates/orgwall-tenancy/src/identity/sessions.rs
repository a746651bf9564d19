//! Login sessions (global table). Tokens are 256-bit secrets shown once; only their
//! SHA-256 is stored. A session ends at its absolute expiry, after an idle period, on
//! logout, and (all of a user's sessions) on password change.

use crate::access::cache::{Dep, SessionEntry};
use crate::crypto::{new_token, token_hash};
use crate::db::{Db, Mode};
use crate::params;
use crate::value::now;
use chrono::{DateTime, Duration, Utc};
use orgwall_core::{Error, OrgId, Result, SessionId, UserId};

/// Prefix of session tokens (lets logs and scanners recognize them; never logged).
pub const SESSION_PREFIX: &str = "ows_";

/// How long a session lives at most.
pub const ABSOLUTE_TTL: Duration = Duration::days(30);
/// How long a session lives without use.
pub const IDLE_TTL: Duration = Duration::days(7);
/// Use is recorded at most this often (so a busy session is not a write per request).
const TOUCH_EVERY: Duration = Duration::minutes(1);

/// A new session and its token (the only time the token exists outside the client).
#[derive(Debug)]
pub struct NewSession {
    /// The session id.
    pub id: SessionId,
    /// The bearer token.
    pub token: String,
    /// Absolute expiry.
    pub expires_at: DateTime<Utc>,
}

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Its id.
    pub id: SessionId,
    /// Its user.
    pub user_id: UserId,
    /// The org chosen with `PUT /v1/me/active-org`.
    pub active_org_id: Option<OrgId>,
    /// The user's access generation when the session was read (see
    /// [`crate::access::OrgScope::through_session`]).
    pub(crate) gen: i64,
}

/// The access generation of a live session's user, read from the database; `None` if
/// the session is revoked or expired (re-verification of a stale scope).
pub(crate) async fn live_generation(db: &Db, id: SessionId) -> Result<Option<i64>> {
    let t = now();
    let mut tx = db.global(Mode::Read).await?;
    let row = tx
        .query_opt(
            "SELECT coalesce((SELECT g.gen FROM access_generations g WHERE g.dep = s.user_id), 0)
             FROM sessions s
             WHERE s.id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2 AND s.idle_expires_at > $2",
            params![id, t],
        )
        .await?;
    tx.commit().await?;
    row.map(|r| r.get(0)).transpose()
}

/// Starts a session for `user`.
pub async fn create(db: &Db, user: UserId) -> Result<NewSession> {
    let token = new_token(SESSION_PREFIX);
    let id = SessionId::new();
    let t = now();
    let expires_at = t + ABSOLUTE_TTL;
    let mut tx = db.global(Mode::Write).await?;
    tx.execute(
        "INSERT INTO sessions (id, user_id, token_hash, created_at, last_seen_at, idle_expires_at, expires_at)
         VALUES ($1, $2, $3, $4, $4, $5, $6)",
        params![id, user, token_hash(&token), t, t + IDLE_TTL, expires_at],
    )
    .await?;
    tx.commit().await?;
    Ok(NewSession {
        id,
        token,
        expires_at,
    })
}

/// Finds the live session a token names, recording its use (at most every minute).
/// Served from the access cache when warm; a revoked session or a changed active org is
/// announced by the functions below, so the cache never outlives them.
pub async fn authenticate(db: &Db, token: &str) -> Result<Option<Session>> {
    let t = now();
    let hash = token_hash(token);
    let cache = db.cache();
    let load = async {
        let mut tx = db.global(Mode::Read).await?;
        let row = tx
            .query_opt(
                "SELECT id, user_id, active_org_id, last_seen_at, expires_at, idle_expires_at,
                        coalesce((SELECT g.gen FROM access_generations g WHERE g.dep = sessions.user_id), 0)
                 FROM sessions
                 WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2 AND idle_expires_at > $2",
                params![hash.as_str(), t],
            )
            .await?;
        tx.commit().await?;
        let Some(row) = row else { return Ok(None) };
        let e = SessionEntry {
            id: row.get(0)?,
            user_id: row.get(1)?,
            active_org_id: row.get(2)?,
            last_seen_at: row.get(3)?,
            expires_at: row.get(4)?,
            idle_expires_at: row.get(5)?,
            gen: row.get(6)?,
        };
        Ok(Some((Dep::User(e.user_id), e)))
    };
    let Some(entry) = cache.get_or_load(hash.clone(), load).await? else {
        return Ok(None);
    };
    if expired(&entry, t) {
        return Ok(None);
    }
    if t - entry.last_seen_at > TOUCH_EVERY {
        let mut tx = db.global(Mode::Write).await?;
        tx.execute(
            "UPDATE sessions SET last_seen_at = $2, idle_expires_at = $3 WHERE id = $1",
            params![entry.id, t, t + IDLE_TTL],
        )
        .await?;
        tx.commit().await?;
        cache.refresh::<SessionEntry>(&hash, |s| {
            s.last_seen_at = t;
            s.idle_expires_at = t + IDLE_TTL;
        });
    }
    Ok(Some(Session {
        id: entry.id,
        user_id: entry.user_id,
        active_org_id: entry.active_org_id,
        gen: entry.gen,
    }))
}

fn expired(e: &SessionEntry, t: DateTime<Utc>) -> bool {
    e.expires_at <= t || e.idle_expires_at <= t
}

/// Ends one session.
pub async fn revoke(db: &Db, id: SessionId) -> Result<()> {
    let mut tx = db.global(Mode::Write).await?;
    let rows = tx
        .query(
            "UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL RETURNING user_id",
            params![id, now()],
        )
        .await?;
    announce_users(&mut tx, &rows)?;
    tx.commit().await
}

/// Announces (at commit) that the sessions of the users in column 0 of `rows` changed.
fn announce_users(tx: &mut crate::Tx, rows: &[crate::Row]) -> Result<()> {
    for r in rows {
        tx.announce(Dep::User(r.get(0)?));
    }
    Ok(())
}

/// Sets (or clears) the session's active org.
pub async fn set_active_org(db: &Db, id: SessionId, org: Option<OrgId>) -> Result<()> {
    let mut tx = db.global(Mode::Write).await?;
    let rows = tx
        .query(
            "UPDATE sessions SET active_org_id = $2 WHERE id = $1 RETURNING user_id",
            params![id, org],
        )
        .await?;
    announce_users(&mut tx, &rows)?;
    tx.commit().await?;
    if rows.is_empty() {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// Changes a user's password hash and ends every session but `keep`.
pub async fn change_password(
    db: &Db,
    user: UserId,
    new_hash: &str,
    keep: Option<SessionId>,
) -> Result<()> {
    let t = now();
    let mut tx = db.global(Mode::Write).await?;
    tx.announce(Dep::User(user));
    tx.execute(
        "UPDATE users SET password_hash = $2, password_changed_at = $3, updated_at = $3 WHERE id = $1",
        params![user, new_hash, t],
    )
    .await?;
    match keep {
        Some(keep) => {
            tx.execute(
                "UPDATE sessions SET revoked_at = $3 WHERE user_id = $1 AND revoked_at IS NULL AND id <> $2",
                params![user, keep, t],
            )
            .await?
        }
        None => {
            tx.execute(
                "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
                params![user, t],
            )
            .await?
        }
    };
    tx.commit().await
}
