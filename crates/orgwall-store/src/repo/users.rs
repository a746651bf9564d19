//! Users (global table).

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

/// The subject of the message sent to an existing account when someone signs up with
/// its email address.
pub const SIGNUP_ATTEMPT_SUBJECT: &str = "Someone tried to sign up to orgwall with your email";

/// Signs a user up: the account (unverified), a verification token and the email that
/// carries it, in one transaction. `link` turns the token into the link to mail.
///
/// An email that already has an account gets the same answer (a user as a new signup
/// would have, whose id belongs to no account), and its owner an email saying that
/// someone tried to sign up with it: signup is not an oracle of registered emails.
pub async fn signup(
    db: &Db,
    email: &Email,
    name: &str,
    password_hash: &str,
    link: impl Fn(&str) -> String,
) -> Result<User> {
    let name = super::text("name", name, 100)?;
    let id = UserId::new();
    let t = now();
    let mut tx = db.global(Mode::Write).await?;
    let inserted = tx.execute(
        "INSERT INTO users (id, email, name, password_hash, email_verified_at, password_changed_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, NULL, $5, $5, $5)",
        params![id, email.as_str(), &name, password_hash, t],
    )
    .await;
    match inserted {
        Ok(_) => {}
        Err(Error::Conflict(..)) => {
            drop(tx);
            let mut tx = db.global(Mode::Write).await?;
            super::outbox::enqueue(
                &mut tx,
                None,
                email.as_str(),
                SIGNUP_ATTEMPT_SUBJECT,
                "Hello,\n\nsomeone just tried to create an orgwall account with this email address, which already has one. Nothing was changed.\n\nIf it was you, log in with your password instead. If it was not, you can ignore this message.\n",
            )
            .await?;
            tx.commit().await?;
            return Ok(User {
                id,
                email: email.as_str().to_owned(),
                name,
                email_verified_at: None,
                created_at: t,
            });
        }
        Err(e) => return Err(e),
    }
    let token = super::verifications::create(&mut tx, id).await?;
    super::outbox::enqueue(
        &mut tx,
        None,
        email.as_str(),
        "Verify your email for orgwall",
        &format!(
            "Hello {name},\n\nconfirm your email address by opening:\n{}\n\nor POST /v1/auth/verify-email with {{\"token\": \"{token}\"}}.\nThe link expires in 48 hours.\n",
            link(&token)
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(User {
        id,
        email: email.as_str().to_owned(),
        name,
        email_verified_at: None,
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
