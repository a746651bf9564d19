//! Email delivery: the `outbox.deliver` job and the mailers.
//!
//! Every outbox message is written in the transaction that causes it, together with its
//! `outbox.deliver` job (see [`crate::repo::outbox::enqueue`]). The job sends it through
//! the configured [`Mailer`]: SMTP when `ORGWALL_SMTP_URL` is set ([`SmtpMailer`]), else
//! the log ([`LogMailer`]), which records that the message was delivered to the log, with
//! its recipient and subject, never its body (bodies carry tokens). `orgwall outbox`
//! prints bodies and their links for a developer without SMTP. A failed send is retried
//! with the job's backoff; after the last attempt the message is `dead`, its error in
//! `last_error`. Delivery is at least once: a crash between sending and marking the
//! message sent sends it again.

use super::worker::{JobCtx, JobError, JobInfo};
use crate::repo::outbox;
use futures::future::BoxFuture;
use futures::FutureExt;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use orgwall_core::{Error, Result};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// The recipient's address.
    pub to: String,
    /// The subject.
    pub subject: String,
    /// The plain-text body (may carry tokens: never log it).
    pub body: String,
}

/// Sends email.
pub trait Mailer: Send + Sync + fmt::Debug + 'static {
    /// Sends one message; the error is a one-line reason (no secrets).
    fn send<'a>(&'a self, email: &'a Email) -> BoxFuture<'a, std::result::Result<(), String>>;
}

/// Delivers to the log: recipient and subject only. `orgwall outbox` shows the bodies.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogMailer;

impl Mailer for LogMailer {
    fn send<'a>(&'a self, email: &'a Email) -> BoxFuture<'a, std::result::Result<(), String>> {
        async move {
            tracing::info!(
                recipient = %email.to,
                subject = %email.subject,
                "email delivered to log (no SMTP configured; `orgwall outbox` shows it)"
            );
            Ok(())
        }
        .boxed()
    }
}

/// Sends through an SMTP server (`smtp://[user:password@]host[:port]`, plain SMTP as
/// local relays and development catchers speak it).
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    target: String,
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("server", &self.target)
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// A mailer for `url`, sending as `from`.
    pub fn new(url: &str, from: &str) -> Result<Self> {
        let bad = |why: &str| Error::Validation(format!("invalid ORGWALL_SMTP_URL: {why}"));
        let u = url::Url::parse(url.trim()).map_err(|e| bad(&e.to_string()))?;
        if u.scheme() != "smtp" {
            return Err(bad(&format!(
                "scheme {:?} is not supported (use smtp://host:port; TLS (smtps, STARTTLS) is not built in)",
                u.scheme()
            )));
        }
        let host = u
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?
            .to_owned();
        let port = u.port().unwrap_or(25);
        let from: Mailbox = from
            .parse()
            .map_err(|e| Error::Validation(format!("invalid ORGWALL_SMTP_FROM {from:?}: {e}")))?;
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(port)
            .timeout(Some(Duration::from_secs(30)));
        if !u.username().is_empty() {
            let user = percent_decode(u.username());
            let pass = percent_decode(u.password().unwrap_or(""));
            b = b.credentials(Credentials::new(user, pass));
        }
        Ok(SmtpMailer {
            transport: b.build(),
            from,
            target: format!("{host}:{port}"),
        })
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = hex {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Mailer for SmtpMailer {
    fn send<'a>(&'a self, email: &'a Email) -> BoxFuture<'a, std::result::Result<(), String>> {
        async move {
            let to: Mailbox = email
                .to
                .parse()
                .map_err(|e| format!("invalid recipient address: {e}"))?;
            let msg = Message::builder()
                .from(self.from.clone())
                .to(to)
                .subject(email.subject.clone())
                .body(email.body.clone())
                .map_err(|e| format!("cannot build the message: {e}"))?;
            self.transport
                .send(msg)
                .await
                .map(|_| ())
                .map_err(|e| format!("SMTP {} refused or failed: {e}", self.target))
        }
        .boxed()
    }
}

/// Sends through another mailer with every server-relative link of the body made
/// absolute under the public base URL (for messages written without one).
#[derive(Debug)]
struct AbsoluteLinks {
    base: outbox::PublicUrl,
    inner: Arc<dyn Mailer>,
}

impl Mailer for AbsoluteLinks {
    fn send<'a>(&'a self, email: &'a Email) -> BoxFuture<'a, std::result::Result<(), String>> {
        async move {
            let email = Email {
                body: outbox::absolute_links(&email.body, &self.base),
                ..email.clone()
            };
            self.inner.send(&email).await
        }
        .boxed()
    }
}

/// `mailer`, making server-relative links absolute under `public_url` when there is one.
pub fn with_public_url(
    mailer: Arc<dyn Mailer>,
    public_url: Option<outbox::PublicUrl>,
) -> Arc<dyn Mailer> {
    match public_url {
        Some(base) => Arc::new(AbsoluteLinks {
            base,
            inner: mailer,
        }),
        None => mailer,
    }
}

/// The default sender address.
pub const DEFAULT_FROM: &str = "orgwall <no-reply@orgwall.localhost>";

/// The mailer for a configuration: SMTP when `smtp_url` is set, else the log.
pub fn mailer(smtp_url: Option<&str>, from: Option<&str>) -> Result<Arc<dyn Mailer>> {
    match smtp_url.map(str::trim).filter(|u| !u.is_empty()) {
        Some(url) => Ok(Arc::new(SmtpMailer::new(
            url,
            from.unwrap_or(DEFAULT_FROM),
        )?)),
        None => Ok(Arc::new(LogMailer)),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    message_id: uuid::Uuid,
}

/// The `outbox.deliver` handler: sends one pending message and marks it sent. A message
/// that is gone (its org was purged) or no longer pending is done already.
pub(crate) async fn deliver(ctx: JobCtx, job: JobInfo) -> std::result::Result<(), JobError> {
    let p: Payload = job.parse()?;
    let Some(m) = outbox::get(&ctx.db, p.message_id).await? else {
        return Ok(());
    };
    if m.status != "pending" {
        return Ok(());
    }
    let email = Email {
        to: m.recipient,
        subject: m.subject,
        body: m.body,
    };
    match ctx.mailer.send(&email).await {
        Ok(()) => {
            outbox::mark_sent(&ctx.db, m.id).await?;
            tracing::info!(outbox_id = %m.id, "outbox message sent");
            Ok(())
        }
        Err(e) => {
            outbox::mark_failed(&ctx.db, m.id, &e, job.is_last_attempt()).await?;
            Err(JobError::Retry(format!(
                "delivering outbox message {}: {e}",
                m.id
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Debug, Default)]
    struct Recorder(Mutex<Vec<Email>>);

    impl Mailer for Recorder {
        fn send<'a>(&'a self, email: &'a Email) -> BoxFuture<'a, std::result::Result<(), String>> {
            self.0.lock().map(|mut v| v.push(email.clone())).ok();
            async { Ok(()) }.boxed()
        }
    }

    #[tokio::test]
    async fn a_worker_with_a_public_url_sends_absolute_links() {
        let rec = Arc::new(Recorder::default());
        let email = Email {
            to: "a@example.test".into(),
            subject: "Verify".into(),
            body: "open:\n/verify-email?token=owv_1\n".into(),
        };
        let base = outbox::PublicUrl::parse("https://app.example.test").ok();
        with_public_url(rec.clone(), base).send(&email).await.ok();
        with_public_url(rec.clone(), None).send(&email).await.ok();
        let sent = rec.0.lock().map(|v| v.clone()).unwrap_or_default();
        let bodies: Vec<&str> = sent.iter().map(|e| e.body.as_str()).collect();
        assert_eq!(
            bodies,
            vec![
                "open:\nhttps://app.example.test/verify-email?token=owv_1\n",
                "open:\n/verify-email?token=owv_1\n"
            ]
        );
        assert_eq!(sent.first().map(|e| e.to.as_str()), Some("a@example.test"));
    }

    #[test]
    fn smtp_urls() {
        assert!(SmtpMailer::new("smtp://127.0.0.1:2525", DEFAULT_FROM).is_ok());
        assert!(SmtpMailer::new("smtp://u%40x:p%2Fw@mail.local", DEFAULT_FROM).is_ok());
        assert!(SmtpMailer::new("smtps://mail.local", DEFAULT_FROM).is_err());
        assert!(SmtpMailer::new("not a url", DEFAULT_FROM).is_err());
        assert!(SmtpMailer::new("smtp://127.0.0.1", "not an address").is_err());
        assert_eq!(percent_decode("a%40b%2Fc%zz"), "a@b/c%zz");
    }
}
