//! Login sessions (global table). Tokens are 256-bit secrets shown once; only their
//! SHA-256 is stored. A session ends at its absolute expiry, after an idle period, on
//! logout, and (all of a user's sessions) on password change.

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

/// Finds the live session a token names, recording its use.
pub async fn authenticate(db: &Db, token: &str) -> Result<Option<Session>> {
    let t = now();
    let mut tx = db.global(Mode::Read).await?;
    let row = tx
        .query_opt(
            "SELECT id, user_id, active_org_id, last_seen_at FROM sessions
             WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2 AND idle_expires_at > $2",
            params![token_hash(token), t],
        )
        .await?;
    tx.commit().await?;
    let Some(row) = row else { return Ok(None) };
    let session = Session {
        id: row.get(0)?,
        user_id: row.get(1)?,
        active_org_id: row.get(2)?,
    };
    let last_seen: DateTime<Utc> = row.get(3)?;
    if t - last_seen > TOUCH_EVERY {
        let mut tx = db.global(Mode::Write).await?;
        tx.execute(
            "UPDATE sessions SET last_seen_at = $2, idle_expires_at = $3 WHERE id = $1",
            params![session.id, t, t + IDLE_TTL],
        )
        .await?;
        tx.commit().await?;
    }
    Ok(Some(session))
}

/// Ends one session.
pub async fn revoke(db: &Db, id: SessionId) -> Result<()> {
    let mut tx = db.global(Mode::Write).await?;
    tx.execute(
        "UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        params![id, now()],
    )
    .await?;
    tx.commit().await
}

/// Sets (or clears) the session's active org.
pub async fn set_active_org(db: &Db, id: SessionId, org: Option<OrgId>) -> Result<()> {
    let mut tx = db.global(Mode::Write).await?;
    let n = tx
        .execute(
            "UPDATE sessions SET active_org_id = $2 WHERE id = $1",
            params![id, org],
        )
        .await?;
    tx.commit().await?;
    if n == 0 {
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
