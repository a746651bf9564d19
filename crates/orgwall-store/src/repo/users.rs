//! Users: signing up (the account, its verification token and email).

use crate::db::Mode;
use crate::params;
use crate::value::now;
use crate::Db;
use orgwall_core::{Email, Error, Result, UserId};

pub use orgwall_tenancy::identity::users::{create, find_by_email, get, password_hash, User};

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
