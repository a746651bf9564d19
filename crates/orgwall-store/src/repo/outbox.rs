//! The email outbox (global table): messages are written in the same transaction as the
//! change that causes them, each with its `outbox.deliver` job, and delivered by that job
//! (SMTP, or the log; see [`crate::jobs::mail`]). `orgwall outbox` prints them with their
//! links for a developer without SMTP.
//!
//! Links in email are server-relative (`/verify-email?token=...`) unless the server has a
//! public base URL ([`PublicUrl`], `--public-url`): then [`link`] makes them absolute when
//! the message is written, and a worker that has one makes any relative link left in a
//! message absolute when it sends it ([`absolute_links`], through
//! [`crate::jobs::mail::with_public_url`]).

use crate::db::{Db, Mode, Tx};
use crate::jobs::{self, OUTBOX_DELIVER};
use crate::params;
use crate::value::{now, Row, Val};
use chrono::{DateTime, Utc};
use orgwall_core::{Error, OrgId, Result};
use uuid::Uuid;

/// The outbox's system table, and the name of the system transaction that reaches every
/// org's messages ([`Db::system`]): a tenant transaction sees only its own org's (and the
/// invitation tokens in them), never another org's or the org-less ones.
pub const SYSTEM_TABLE: &str = "outbox";

/// Attempts a message gets before it is `dead`.
pub const MAX_ATTEMPTS: i64 = 8;

/// Queues one email and its delivery job (both committed with `tx`).
pub async fn enqueue(
    tx: &mut Tx,
    org: Option<OrgId>,
    to: &str,
    subject: &str,
    body: &str,
) -> Result<()> {
    let id = Uuid::now_v7();
    tx.execute(
        "INSERT INTO outbox (id, org_id, recipient, subject, body, status, attempts, created_at)
         VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6)",
        params![id, org, to, subject, body, now()],
    )
    .await?;
    jobs::enqueue_system(
        tx,
        OUTBOX_DELIVER,
        serde_json::json!({ "message_id": id }),
        jobs::Options {
            max_attempts: MAX_ATTEMPTS,
            ..jobs::Options::default()
        },
    )
    .await?;
    Ok(())
}

/// A queued email.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Message {
    /// Its id.
    pub id: Uuid,
    /// The org it concerns, if any.
    pub org_id: Option<OrgId>,
    /// The recipient.
    pub recipient: String,
    /// The subject.
    pub subject: String,
    /// The body (may carry a token).
    pub body: String,
    /// `pending`, `sent` or `dead`.
    pub status: String,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// The last delivery error.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When it was sent.
    pub sent_at: Option<DateTime<Utc>>,
}

impl Message {
    /// The links in the body (`http://` and `https://`), in order.
    pub fn links(&self) -> Vec<&str> {
        links(&self.body)
    }
}

/// The server's public base URL (`--public-url`): `http(s)://host[:port][/path]`, without
/// query, fragment or credentials, kept without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(String);

impl PublicUrl {
    /// Parses and checks a base URL.
    pub fn parse(raw: &str) -> Result<PublicUrl> {
        let bad = |why: &str| Error::Validation(format!("invalid public URL {raw:?}: {why}"));
        let u = url::Url::parse(raw.trim()).map_err(|e| bad(&e.to_string()))?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err(bad("it must start with http:// or https://"));
        }
        if u.host_str().is_none_or(str::is_empty) {
            return Err(bad("it names no host"));
        }
        if u.query().is_some() || u.fragment().is_some() {
            return Err(bad("it must not have a query (?...) or a fragment (#...)"));
        }
        if !u.username().is_empty() || u.password().is_some() {
            return Err(bad("it must not carry credentials"));
        }
        Ok(PublicUrl(u.as_str().trim_end_matches('/').to_owned()))
    }

    /// The base, without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The link to a server-relative `path` (`/verify-email?token=...`): absolute under `base`
/// when there is one, else as it is.
pub fn link(base: Option<&PublicUrl>, path: &str) -> String {
    match base {
        Some(b) => format!("{}{path}", b.as_str()),
        None => path.to_owned(),
    }
}

fn is_separator(c: char) -> bool {
    c.is_whitespace() || matches!(c, '<' | '>' | '"' | '\'')
}

fn trim_word(w: &str) -> &str {
    w.trim_end_matches(['.', ',', ';', ')', ']'])
}

/// A server-relative link as the server writes it: a path with a query.
fn is_relative_link(w: &str) -> bool {
    w.starts_with('/') && !w.starts_with("//") && w.len() > 1 && w.contains('?')
}

/// The links in a text, in order: `http://` and `https://` URLs, and the server-relative
/// links the server writes when it has no public base URL (`/verify-email?token=...`: a
/// path with a query).
pub fn links(text: &str) -> Vec<&str> {
    text.split(is_separator)
        .map(trim_word)
        .filter(|w| w.starts_with("http://") || w.starts_with("https://") || is_relative_link(w))
        .collect()
}

/// `text` with every server-relative link (as [`links`] finds them) made absolute under
/// `base`; everything else is kept as it is.
pub fn absolute_links(text: &str, base: &PublicUrl) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    for piece in text.split_inclusive(is_separator) {
        let word = piece.strip_suffix(is_separator).unwrap_or(piece);
        if is_relative_link(trim_word(word)) {
            out.push_str(base.as_str());
        }
        out.push_str(piece);
    }
    out
}

const COLS: &str =
    "id, org_id, recipient, subject, body, status, attempts, last_error, created_at, sent_at";

fn from_row(r: &Row) -> Result<Message> {
    Ok(Message {
        id: r.get(0)?,
        org_id: r.get(1)?,
        recipient: r.get(2)?,
        subject: r.get(3)?,
        body: r.get(4)?,
        status: r.get(5)?,
        attempts: r.get(6)?,
        last_error: r.get(7)?,
        created_at: r.get(8)?,
        sent_at: r.get(9)?,
    })
}

/// The newest `limit` messages (optionally of one status, or to one recipient), oldest
/// first (an operator's and developer's view: `orgwall outbox`).
pub async fn list(
    db: &Db,
    status: Option<&str>,
    recipient: Option<&str>,
    limit: i64,
) -> Result<Vec<Message>> {
    let mut sql = format!("SELECT {COLS} FROM outbox WHERE 1 = 1");
    let mut p: Vec<Val> = Vec::new();
    if let Some(s) = status {
        p.push(s.into());
        sql.push_str(&format!(" AND status = ${}", p.len()));
    }
    if let Some(r) = recipient {
        p.push(r.trim().to_lowercase().into());
        sql.push_str(&format!(" AND lower(recipient) = ${}", p.len()));
    }
    p.push(limit.clamp(1, 10_000).into());
    sql.push_str(&format!(
        " ORDER BY created_at DESC, id DESC LIMIT ${}",
        p.len()
    ));
    let mut tx = db.system(SYSTEM_TABLE, Mode::Read).await?;
    let rows = tx.query(&sql, &p).await?;
    tx.commit().await?;
    let mut out = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    out.reverse();
    Ok(out)
}

/// One message, if it exists.
pub async fn get(db: &Db, id: Uuid) -> Result<Option<Message>> {
    let mut tx = db.system(SYSTEM_TABLE, Mode::Read).await?;
    let row = tx
        .query_opt(
            &format!("SELECT {COLS} FROM outbox WHERE id = $1"),
            params![id],
        )
        .await?;
    tx.commit().await?;
    row.as_ref().map(from_row).transpose()
}

/// Marks a pending message sent.
pub(crate) async fn mark_sent(db: &Db, id: Uuid) -> Result<()> {
    let mut tx = db.system(SYSTEM_TABLE, Mode::Write).await?;
    tx.execute(
        "UPDATE outbox SET status = 'sent', sent_at = $2, attempts = attempts + 1, last_error = NULL
         WHERE id = $1 AND status = 'pending'",
        params![id, now()],
    )
    .await?;
    tx.commit().await
}

/// Records a failed delivery; with `dead`, gives up on the message.
pub(crate) async fn mark_failed(db: &Db, id: Uuid, error: &str, dead: bool) -> Result<()> {
    let error: String = error.chars().take(2000).collect();
    let mut tx = db.system(SYSTEM_TABLE, Mode::Write).await?;
    tx.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = $2,
                           status = CASE WHEN $3 THEN 'dead' ELSE status END
         WHERE id = $1 AND status = 'pending'",
        params![id, error, dead],
    )
    .await?;
    tx.commit().await
}

#[cfg(test)]
mod tests {
    #[test]
    fn links_are_found() {
        let body =
            "Open:\nhttp://127.0.0.1:8080/invite?token=owi_abc.\nor <https://x.test/a>, done";
        assert_eq!(
            super::links(body),
            vec![
                "http://127.0.0.1:8080/invite?token=owi_abc",
                "https://x.test/a"
            ]
        );
        let body = "opening:\n/verify-email?token=owv_1\n\nor POST /v1/auth/verify-email with {}.";
        assert_eq!(super::links(body), vec!["/verify-email?token=owv_1"]);
    }

    #[test]
    fn public_urls_are_checked() {
        use super::PublicUrl;
        for (raw, want) in [
            ("https://app.example.test", "https://app.example.test"),
            ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
            (" https://Example.test/app/ ", "https://example.test/app"),
        ] {
            assert_eq!(PublicUrl::parse(raw).unwrap().as_str(), want, "{raw}");
        }
        for (raw, why) in [
            ("ftp://example.test", "http:// or https://"),
            ("example.test", "relative URL"),
            ("https://example.test/?a=1", "query"),
            ("https://example.test/?", "query"),
            ("https://example.test/#x", "fragment"),
            ("https://u:p@example.test", "credentials"),
            ("mailto:x@example.test", "http:// or https://"),
        ] {
            let e = PublicUrl::parse(raw).unwrap_err().to_string();
            assert!(
                e.contains("invalid public URL") && e.contains(why),
                "{raw}: {e}"
            );
        }
    }

    #[test]
    fn relative_links_become_absolute_and_nothing_else_changes() {
        let base = super::PublicUrl::parse("https://app.example.test/base/").unwrap();
        assert_eq!(
            super::link(Some(&base), "/verify-email?token=owv_1"),
            "https://app.example.test/base/verify-email?token=owv_1"
        );
        assert_eq!(
            super::link(None, "/verify-email?token=owv_1"),
            "/verify-email?token=owv_1"
        );
        let body = "Hi,\nopen:\n/invitations/accept?token=owi_1.\n\nor POST /v1/invitations/accept with {\"token\": \"owi_1\"}.\nSee <https://x.test/a?b> and //evil.test/?x\n";
        let out = super::absolute_links(body, &base);
        assert_eq!(
            out,
            body.replace(
                "\n/invitations/accept",
                "\nhttps://app.example.test/base/invitations/accept"
            )
        );
        assert_eq!(
            super::links(&out),
            vec![
                "https://app.example.test/base/invitations/accept?token=owi_1",
                "https://x.test/a?b"
            ]
        );
        // Already absolute: unchanged.
        assert_eq!(super::absolute_links(&out, &base), out);
    }
}
