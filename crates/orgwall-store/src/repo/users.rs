//! Users: signing up (the account, its verification token and email).

use crate::db::Mode;
use crate::params;
use crate::value::now;
use crate::Db;
use orgwall_core::{Email, Error, Result, UserId};

pub use orgwall_tenancy::identity::users::{create, find_by_email, get, password_hash, User};

/// Signs a user up: the account (unverified), a verification token and the email that
/// carries it, in one transaction. `link` turns the token into the link to mail.
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
    tx.execute(
        "INSERT INTO users (id, email, name, password_hash, email_verified_at, password_changed_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, NULL, $5, $5, $5)",
        params![id, email.as_str(), &name, password_hash, t],
    )
    .await
    .map_err(|e| match e {
        Error::Conflict(..) => Error::Conflict("email_taken", "an account with this email exists".into()),
        other => other,
    })?;
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
