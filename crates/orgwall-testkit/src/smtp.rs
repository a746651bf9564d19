//! A tiny SMTP server for tests: it speaks just enough SMTP for lettre, keeps every
//! message it accepted, and can be told to hold the next messages forever after reading
//! them in full (never answering the final `250`), so a test can catch a sender
//! mid-delivery and kill it. A message counts as delivered only once the sink has
//! answered `250` to its data, as in real SMTP.
//!
//! It speaks plain SMTP, or offers STARTTLS, or speaks TLS from the first byte
//! ([`SinkTls`]), with a certificate for `localhost` issued by a CA made for the sink
//! ([`SmtpSink::ca_pem`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// One message the sink accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The envelope sender.
    pub from: String,
    /// The envelope recipients.
    pub to: Vec<String>,
    /// The message as sent (headers and body, dot-unstuffed).
    pub data: String,
    /// The `AUTH PLAIN` identity used, if any: (user, password).
    pub auth: Option<(String, String)>,
    /// Whether the message came over TLS.
    pub tls: bool,
}

/// How the sink protects its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkTls {
    /// Plain SMTP, no STARTTLS offered.
    None,
    /// Plain SMTP that offers STARTTLS.
    StartTls,
    /// TLS from the first byte (as on port 465).
    Implicit,
}

#[derive(Default)]
struct State {
    accepted: Mutex<Vec<Received>>,
    hold: AtomicUsize,
    held: AtomicUsize,
    connections: AtomicUsize,
    changed: Notify,
}

/// A running sink on 127.0.0.1 (stopped when dropped).
pub struct SmtpSink {
    /// Where it listens.
    pub addr: SocketAddr,
    /// How it protects connections.
    pub tls: SinkTls,
    /// The PEM certificate of the CA that issued its `localhost` certificate.
    pub ca_pem: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

/// A stream the sink can speak over.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

impl SmtpSink {
    /// Starts a plain sink that accepts every message.
    pub async fn start() -> SmtpSink {
        Self::start_with(SinkTls::None).await
    }

    /// Starts a sink that protects connections as `tls` says.
    pub async fn start_with(tls: SinkTls) -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (ca_pem, acceptor) = tls_acceptor();
        let state = Arc::new(State::default());
        let st = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                st.connections.fetch_add(1, Ordering::SeqCst);
                st.changed.notify_waiters();
                let st = st.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let io: Box<dyn Io> = Box::new(sock);
                    let _ = match tls {
                        SinkTls::Implicit => match acceptor.accept(io).await {
                            Ok(s) => session(Box::new(s), st, None, true).await,
                            Err(_) => Ok(()),
                        },
                        SinkTls::StartTls => session(io, st, Some(acceptor), false).await,
                        SinkTls::None => session(io, st, None, false).await,
                    };
                });
            }
        });
        SmtpSink {
            addr,
            tls,
            ca_pem,
            state,
            task,
        }
    }

    /// The URL that reaches it: `smtp://127.0.0.1:PORT`, or by the name its certificate
    /// carries, `smtp://localhost:PORT?tls=starttls` or `smtps://localhost:PORT`.
    pub fn url(&self) -> String {
        let port = self.addr.port();
        match self.tls {
            SinkTls::None => format!("smtp://{}", self.addr),
            SinkTls::StartTls => format!("smtp://localhost:{port}?tls=starttls"),
            SinkTls::Implicit => format!("smtps://localhost:{port}"),
        }
    }

    /// The next `n` messages are read in full and then held: never answered, never
    /// accepted, until the sender goes away.
    pub fn hold_next(&self, n: usize) {
        self.state.hold.store(n, Ordering::SeqCst);
    }

    /// Waits until `n` messages are being held (or have been).
    pub async fn wait_held(&self, n: usize) {
        self.wait(|s| s.held.load(Ordering::SeqCst) >= n).await;
    }

    /// Waits until `n` messages have been accepted.
    pub async fn wait_accepted(&self, n: usize) {
        self.wait(|s| s.accepted.lock().unwrap().len() >= n).await;
    }

    async fn wait(&self, done: impl Fn(&State) -> bool) {
        loop {
            let changed = self.state.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if done(&self.state) {
                return;
            }
            changed.await;
        }
    }

    /// The messages accepted so far, in order.
    pub fn accepted(&self) -> Vec<Received> {
        self.state.accepted.lock().unwrap().clone()
    }

    /// Connections made so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A CA and a `localhost` certificate it issued; returns the CA's PEM and an acceptor
/// serving the certificate.
fn tls_acceptor() -> (String, tokio_rustls::TlsAcceptor) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    (ca.pem(), tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

fn plain_auth(b64: &str) -> Option<(String, String)> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let mut parts = raw.split(|b| *b == 0);
    let _authzid = parts.next()?;
    let user = String::from_utf8(parts.next()?.to_vec()).ok()?;
    let pass = String::from_utf8(parts.next()?.to_vec()).ok()?;
    Some((user, pass))
}

async fn reply(s: &mut BufReader<Box<dyn Io>>, line: &str) -> std::io::Result<()> {
    s.write_all(line.as_bytes()).await?;
    s.write_all(b"\r\n").await?;
    s.flush().await
}

fn addr_of(arg: &str) -> String {
    let a = arg.split_once(':').map_or(arg, |(_, a)| a).trim();
    let a = a.split_whitespace().next().unwrap_or("");
    a.trim_start_matches('<').trim_end_matches('>').to_owned()
}

/// One SMTP session; `secure` if it is TLS already, `starttls` offered until used.
async fn session(
    io: Box<dyn Io>,
    st: Arc<State>,
    mut starttls: Option<tokio_rustls::TlsAcceptor>,
    mut secure: bool,
) -> std::io::Result<()> {
    let mut s = BufReader::new(io);
    reply(&mut s, "220 orgwall-test-sink ESMTP").await?;
    let (mut from, mut to, mut auth) = (String::new(), Vec::new(), None);
    let mut line = String::new();
    loop {
        line.clear();
        if s.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end();
        let upper = cmd.to_ascii_uppercase();
        if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            reply(&mut s, "250-orgwall-test-sink").await?;
            if starttls.is_some() {
                reply(&mut s, "250-STARTTLS").await?;
            }
            reply(&mut s, "250-AUTH PLAIN").await?;
            reply(&mut s, "250 8BITMIME").await?;
        } else if upper == "STARTTLS" {
            let Some(acceptor) = starttls.take() else {
                reply(&mut s, "502 5.5.1 STARTTLS not offered").await?;
                continue;
            };
            reply(&mut s, "220 2.0.0 ready to start TLS").await?;
            let tls = acceptor.accept(s.into_inner()).await?;
            s = BufReader::new(Box::new(tls));
            secure = true;
            (from, to, auth) = (String::new(), Vec::new(), None);
        } else if let Some(rest) = upper.strip_prefix("AUTH PLAIN") {
            let arg = cmd.get(cmd.len() - rest.len()..).unwrap_or("").trim();
            auth = plain_auth(arg);
            reply(&mut s, "235 2.7.0 authenticated").await?;
        } else if upper.starts_with("MAIL FROM") {
            from = addr_of(cmd);
            to.clear();
            reply(&mut s, "250 2.1.0 ok").await?;
        } else if upper.starts_with("RCPT TO") {
            to.push(addr_of(cmd));
            reply(&mut s, "250 2.1.5 ok").await?;
        } else if upper == "DATA" {
            reply(&mut s, "354 end data with <CR><LF>.<CR><LF>").await?;
            let mut data = String::new();
            loop {
                line.clear();
                if s.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            let hold = st
                .hold
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if hold {
                st.held.fetch_add(1, Ordering::SeqCst);
                st.changed.notify_waiters();
                // Never answer; wait for the sender to go away.
                let mut rest = Vec::new();
                let _ = tokio::io::AsyncReadExt::read_to_end(&mut s, &mut rest).await;
                return Ok(());
            }
            st.accepted.lock().unwrap().push(Received {
                from: from.clone(),
                to: to.clone(),
                data,
                auth: auth.clone(),
                tls: secure,
            });
            st.changed.notify_waiters();
            reply(&mut s, "250 2.0.0 queued").await?;
        } else if upper == "QUIT" {
            reply(&mut s, "221 2.0.0 bye").await?;
            return Ok(());
        } else if upper == "RSET" || upper == "NOOP" {
            reply(&mut s, "250 2.0.0 ok").await?;
        } else {
            reply(&mut s, "502 5.5.2 not implemented").await?;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn plain_auth_is_decoded() {
        assert_eq!(
            super::plain_auth("AHVAeABwL3c=").unwrap(),
            ("u@x".to_string(), "p/w".to_string())
        );
        assert_eq!(super::plain_auth("not base64!"), None);
    }
}
