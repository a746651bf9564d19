//! Email delivery: the `outbox.deliver` job and the mailers.
//!
//! Every outbox message is written in the transaction that causes it, together with its
//! `outbox.deliver` job (see [`crate::repo::outbox::enqueue`]). The job sends it through
//! the configured [`Mailer`]: SMTP when `ORGWALL_SMTP_URL` is set ([`SmtpMailer`]: plain,
//! STARTTLS required, or implicit TLS, with rustls and the Mozilla roots), else
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
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
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

/// How an SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// None (`smtp://host`): local relays and development catchers.
    Plain,
    /// STARTTLS, required (`smtp://host?tls=starttls`, or lettre's `tls=required`): a
    /// server that does not offer it, or whose certificate does not verify, gets nothing,
    /// never a message in clear.
    StartTls,
    /// TLS from the first byte (`smtps://host`).
    Implicit,
}

/// An SMTP server as `ORGWALL_SMTP_URL` names it.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpTarget {
    /// How the connection is protected.
    pub security: SmtpSecurity,
    /// The host (also the name its certificate must carry).
    pub host: String,
    /// The port: 25 plain, 587 STARTTLS, 465 implicit TLS unless given.
    pub port: u16,
    /// User and password, percent-decoded.
    credentials: Option<(String, String)>,
}

impl fmt::Debug for SmtpTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpTarget")
            .field("security", &self.security)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.credentials.as_ref().map(|(u, _)| u))
            .finish_non_exhaustive()
    }
}

impl SmtpTarget {
    /// Parses `smtp://[user:password@]host[:port][?tls=starttls]` or
    /// `smtps://[user:password@]host[:port]`. The error never repeats the URL (it may
    /// carry a password).
    pub fn parse(url: &str) -> Result<SmtpTarget> {
        let bad = |why: &str| Error::Validation(format!("invalid ORGWALL_SMTP_URL: {why}"));
        let u = url::Url::parse(url.trim()).map_err(|e| bad(&e.to_string()))?;
        let mut security = match u.scheme() {
            "smtp" => SmtpSecurity::Plain,
            "smtps" => SmtpSecurity::Implicit,
            other => {
                return Err(bad(&format!(
                    "scheme {other:?} is not supported (use smtp://host:port, smtp://host:port?tls=starttls or smtps://host:port)"
                )))
            }
        };
        let host = u
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if !matches!(u.path(), "" | "/") || u.fragment().is_some() {
            return Err(bad("it must not have a path or a fragment"));
        }
        for (k, v) in u.query_pairs() {
            match (k.as_ref(), v.as_ref(), security) {
                ("tls", "starttls" | "required", SmtpSecurity::Plain | SmtpSecurity::StartTls) => {
                    security = SmtpSecurity::StartTls;
                }
                ("tls", "none", SmtpSecurity::Plain) => {}
                ("tls", _, SmtpSecurity::Implicit) => {
                    return Err(bad("smtps:// is TLS already: drop ?tls="));
                }
                ("tls", other, _) => {
                    return Err(bad(&format!(
                        "tls={other:?} is not supported (use tls=starttls, or smtps:// for implicit TLS)"
                    )))
                }
                (other, _, _) => return Err(bad(&format!("unknown parameter {other:?}"))),
            }
        }
        let port = u.port().unwrap_or(match security {
            SmtpSecurity::Plain => 25,
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::Implicit => 465,
        });
        let credentials = (!u.username().is_empty()).then(|| {
            (
                percent_decode(u.username()),
                percent_decode(u.password().unwrap_or("")),
            )
        });
        Ok(SmtpTarget {
            security,
            host,
            port,
            credentials,
        })
    }

    /// The user, if any.
    pub fn user(&self) -> Option<&str> {
        self.credentials.as_ref().map(|(u, _)| u.as_str())
    }
}

/// Sends through an SMTP server (see [`SmtpTarget::parse`] for the URL).
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
    /// A mailer for `url`, sending as `from`; TLS certificates are checked against the
    /// Mozilla roots.
    pub fn new(url: &str, from: &str) -> Result<Self> {
        Self::with_root(url, from, None)
    }

    /// [`SmtpMailer::new`], also trusting the PEM certificate `root` (a private CA).
    pub fn with_root(url: &str, from: &str, root: Option<&[u8]>) -> Result<Self> {
        let t = SmtpTarget::parse(url)?;
        let from: Mailbox = from
            .parse()
            .map_err(|e| Error::Validation(format!("invalid ORGWALL_SMTP_FROM {from:?}: {e}")))?;
        let tls = |wrap: fn(TlsParameters) -> Tls| -> Result<Tls> {
            let mut p = TlsParameters::builder(t.host.clone());
            if let Some(pem) = root {
                if !String::from_utf8_lossy(pem).contains("-----BEGIN CERTIFICATE-----") {
                    return Err(Error::Validation(
                        "invalid SMTP root certificate: no PEM certificate in it".into(),
                    ));
                }
                let cert = Certificate::from_pem(pem).map_err(|e| {
                    Error::Validation(format!("invalid SMTP root certificate: {e}"))
                })?;
                p = p.add_root_certificate(cert);
            }
            let p = p
                .build_rustls()
                .map_err(|e| Error::Validation(format!("cannot set up SMTP TLS: {e}")))?;
            Ok(wrap(p))
        };
        let (tls, how) = match t.security {
            SmtpSecurity::Plain => (Tls::None, "plain"),
            SmtpSecurity::StartTls => (tls(Tls::Required)?, "STARTTLS"),
            SmtpSecurity::Implicit => (tls(Tls::Wrapper)?, "TLS"),
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(t.host.clone())
            .port(t.port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(30)));
        if let Some((user, pass)) = &t.credentials {
            b = b.credentials(Credentials::new(user.clone(), pass.clone()));
        }
        Ok(SmtpMailer {
            transport: b.build(),
            from,
            target: format!("{}:{} ({how})", t.host, t.port),
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
        use SmtpSecurity::{Implicit, Plain, StartTls};
        for (url, security, host, port, user) in [
            ("smtp://127.0.0.1:2525", Plain, "127.0.0.1", 2525, None),
            ("smtp://mail.local", Plain, "mail.local", 25, None),
            ("smtp://mail.local?tls=none", Plain, "mail.local", 25, None),
            (
                "smtp://mail.local?tls=starttls",
                StartTls,
                "mail.local",
                587,
                None,
            ),
            (
                "smtp://mail.local?tls=required",
                StartTls,
                "mail.local",
                587,
                None,
            ),
            (
                "smtp://mail.local:2587/?tls=starttls",
                StartTls,
                "mail.local",
                2587,
                None,
            ),
            ("smtps://mail.local", Implicit, "mail.local", 465, None),
            (
                "smtps://u%40x:p%2Fw@mail.local:4650",
                Implicit,
                "mail.local",
                4650,
                Some("u@x"),
            ),
            (
                "smtp://u%40x:p%2Fw@mail.local",
                Plain,
                "mail.local",
                25,
                Some("u@x"),
            ),
            ("smtps://[::1]:465", Implicit, "::1", 465, None),
        ] {
            let t = SmtpTarget::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(
                (t.security, t.host.as_str(), t.port, t.user()),
                (security, host, port, user),
                "{url}"
            );
            assert!(SmtpMailer::new(url, DEFAULT_FROM).is_ok(), "{url}");
        }
        let t =
            SmtpTarget::parse("smtps://u%40x:p%2Fw@mail.local").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.credentials, Some(("u@x".into(), "p/w".into())));
        assert!(!format!("{t:?}").contains("p/w"), "no password in Debug");
        for (url, why) in [
            ("ftp://mail.local", "scheme \"ftp\" is not supported"),
            ("not a url", "relative URL"),
            ("smtp://:pw@/", "empty host"),
            ("smtp://mail.local?tls=ssl", "tls=\"ssl\" is not supported"),
            ("smtps://mail.local?tls=starttls", "TLS already"),
            (
                "smtp://mail.local?verify=no",
                "unknown parameter \"verify\"",
            ),
            ("smtp://mail.local/inbox", "path"),
            ("smtp://u:s3cret@mail.local:99999", "invalid port"),
        ] {
            let e = SmtpTarget::parse(url)
                .map(|t| format!("{t:?}"))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("invalid ORGWALL_SMTP_URL") && e.contains(why),
                "{url}: {e}"
            );
            assert!(!e.contains("s3cret"), "{e}");
        }
        assert!(SmtpMailer::new("smtp://127.0.0.1", "not an address").is_err());
        assert!(SmtpMailer::with_root("smtps://mail.local", DEFAULT_FROM, Some(b"junk")).is_err());
        assert_eq!(percent_decode("a%40b%2Fc%zz"), "a@b/c%zz");
    }
}
