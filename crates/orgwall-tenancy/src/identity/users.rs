//! Users (global table): create, read, find by email.

use crate::db::{Db, Mode};
use crate::params;
use crate::value::{now, Row};
use chrono::{DateTime, Utc};
use orgwall_core::{Email, Error, Result, UserId};

/// A user account (never carries the password hash).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// Normalized email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// When the email was verified.
    pub email_verified_at: Option<DateTime<Utc>>,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

const COLS: &str = "id, email, name, email_verified_at, created_at";

fn from_row(r: &Row) -> Result<User> {
    Ok(User {
        id: r.get(0)?,
        email: r.get(1)?,
        name: r.get(2)?,
        email_verified_at: r.get(3)?,
        created_at: r.get(4)?,
    })
}

/// Creates a user with an already hashed password.
pub async fn create(
    db: &Db,
    email: &Email,
    name: &str,
    password_hash: &str,
    verified: bool,
) -> Result<User> {
    let name = super::text("name", name, 100)?;
    let id = UserId::new();
    let t = now();
    let mut tx = db.global(Mode::Write).await?;
    tx.execute(
        "INSERT INTO users (id, email, name, password_hash, email_verified_at, password_changed_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6, $6)",
        params![id, email.as_str(), &name, password_hash, verified.then_some(t), t],
    )
    .await
    .map_err(|e| match e {
        Error::Conflict(..) => Error::Conflict("email_taken", "an account with this email exists".into()),
        other => other,
    })?;
    tx.commit().await?;
    Ok(User {
        id,
        email: email.as_str().to_owned(),
        name,
        email_verified_at: verified.then_some(t),
        created_at: t,
    })
}

/// A user's password hash.
pub async fn password_hash(db: &Db, id: UserId) -> Result<String> {
    let mut tx = db.global(Mode::Read).await?;
    let row = tx
        .query_one("SELECT password_hash FROM users WHERE id = $1", params![id])
        .await?;
    tx.commit().await?;
    row.get(0)
}

/// Finds a user and their password hash by email.
pub async fn find_by_email(db: &Db, email: &Email) -> Result<Option<(User, String)>> {
    let mut tx = db.global(Mode::Read).await?;
    let row = tx
        .query_opt(
            &format!("SELECT {COLS}, password_hash FROM users WHERE email = $1"),
            params![email.as_str()],
        )
        .await?;
    tx.commit().await?;
    row.map(|r| Ok((from_row(&r)?, r.get(5)?))).transpose()
}

/// Gets a user by id.
pub async fn get(db: &Db, id: UserId) -> Result<User> {
    let mut tx = db.global(Mode::Read).await?;
    let row = tx
        .query_one(
            &format!("SELECT {COLS} FROM users WHERE id = $1"),
            params![id],
        )
        .await?;
    tx.commit().await?;
    from_row(&row)
}
