//! Email verification tokens (global table): single use, expiring, stored as hashes.

use crate::crypto::{new_token, token_hash};
use crate::db::{Db, Mode, Tx};
use crate::params;
use crate::value::now;
use chrono::{DateTime, Duration, Utc};
use orgwall_core::{Error, Result, UserId};

/// Prefix of verification tokens.
pub const VERIFY_PREFIX: &str = "owv_";
/// How long a verification token lives.
pub const TTL: Duration = Duration::hours(48);

/// Creates a token for `user` in `tx` and returns it (to be mailed, never stored).
pub async fn create(tx: &mut Tx, user: UserId) -> Result<String> {
    let token = new_token(VERIFY_PREFIX);
    let t = now();
    tx.execute(
        "INSERT INTO email_verifications (id, user_id, token_hash, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)",
        params![uuid::Uuid::now_v7(), user, token_hash(&token), t + TTL, t],
    )
    .await?;
    Ok(token)
}

/// Uses a token: marks the user's email verified. Unknown or used tokens are
/// `verification_invalid`; expired ones `verification_expired`.
pub async fn verify(db: &Db, token: &str) -> Result<UserId> {
    let t = now();
    let mut tx = db.global(Mode::Write).await?;
    let row = tx
        .query_opt(
            "SELECT id, user_id, expires_at, used_at FROM email_verifications WHERE token_hash = $1",
            params![token_hash(token)],
        )
        .await?;
    let invalid = || {
        Error::Refused(
            "verification_invalid",
            "The verification token is unknown or used.".into(),
        )
    };
    let row = row.ok_or_else(invalid)?;
    let (id, user, expires, used): (uuid::Uuid, UserId, DateTime<Utc>, Option<DateTime<Utc>>) =
        (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
    if used.is_some() {
        return Err(invalid());
    }
    if expires <= t {
        return Err(Error::Refused(
            "verification_expired",
            "The verification token has expired.".into(),
        ));
    }
    // Single use even under concurrency: only one UPDATE can flip used_at.
    let n = tx
        .execute(
            "UPDATE email_verifications SET used_at = $2 WHERE id = $1 AND used_at IS NULL",
            params![id, t],
        )
        .await?;
    if n != 1 {
        return Err(invalid());
    }
    tx.execute(
        "UPDATE users SET email_verified_at = coalesce(email_verified_at, $2), updated_at = $2 WHERE id = $1",
        params![user, t],
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}
