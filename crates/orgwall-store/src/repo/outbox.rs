//! The email outbox (global table): messages are written in the same transaction as the
//! change that causes them and delivered by a job (SMTP, or the log and `orgwall outbox`).

use crate::db::Tx;
use crate::params;
use crate::value::now;
use orgwall_core::{OrgId, Result};

/// Queues one email.
pub async fn enqueue(
    tx: &mut Tx,
    org: Option<OrgId>,
    to: &str,
    subject: &str,
    body: &str,
) -> Result<()> {
    tx.execute(
        "INSERT INTO outbox (id, org_id, recipient, subject, body, status, attempts, created_at)
         VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6)",
        params![uuid::Uuid::now_v7(), org, to, subject, body, now()],
    )
    .await?;
    Ok(())
}
