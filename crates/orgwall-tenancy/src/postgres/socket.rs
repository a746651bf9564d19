//! The socket of a connection to a placement database, which ends only when the server
//! has ended the session.
//!
//! A dropped `tokio_postgres::Client` makes its connection send `Terminate` and close
//! the socket; its task then ends at once, while the server's backend is still leaving
//! (it holds its `max_connections` slot and its `pg_stat_activity` row until it has
//! exited its shared state, and only then closes its side of the socket). A budget
//! permit given back when the task ends would let a new connection in while the old one
//! still counts on the server. [`UntilServerCloses`] makes the close wait for the
//! server's end of file, so a placement connection's task (and its permit) ends when the
//! server no longer counts the session.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::Host;

/// How long a closed connection waits for the server to close its side before it is
/// counted ended anyway (a server that does not answer at all).
const SERVER_CLOSE_WAIT: Duration = Duration::from_secs(5);

/// A TCP or Unix-domain socket to a PostgreSQL server.
pub(crate) enum Socket {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

/// Opens a socket to the first of `cfg`'s hosts that answers (its `hostaddr`s if it
/// names any, else its hosts), with its connect timeout and TCP keepalive settings.
pub(super) async fn open(cfg: &tokio_postgres::Config) -> io::Result<Socket> {
    let ports = cfg.get_ports();
    let port = |i: usize| ports.get(i).or(ports.first()).copied().unwrap_or(5432);
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no host to connect to");
    let addrs = cfg.get_hostaddrs();
    let hosts = cfg.get_hosts();
    for i in 0..addrs.len().max(hosts.len()) {
        let attempt = async {
            match (addrs.get(i), hosts.get(i)) {
                (Some(ip), _) => tcp((*ip, port(i)), cfg).await,
                (None, Some(Host::Tcp(h))) => tcp((h.as_str(), port(i)), cfg).await,
                (None, Some(Host::Unix(dir))) => {
                    let path = dir.join(format!(".s.PGSQL.{}", port(i)));
                    tokio::net::UnixStream::connect(path)
                        .await
                        .map(Socket::Unix)
                }
                (None, None) => unreachable!("i is below one of the lengths"),
            }
        };
        let r = match cfg.get_connect_timeout() {
            Some(t) => tokio::time::timeout(*t, attempt)
                .await
                .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into())),
            None => attempt.await,
        };
        match r {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

async fn tcp(
    addr: impl tokio::net::ToSocketAddrs,
    cfg: &tokio_postgres::Config,
) -> io::Result<Socket> {
    let s = tokio::net::TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    if cfg.get_keepalives() {
        let mut ka = socket2::TcpKeepalive::new().with_time(cfg.get_keepalives_idle());
        if let Some(i) = cfg.get_keepalives_interval() {
            ka = ka.with_interval(i);
        }
        if let Some(n) = cfg.get_keepalives_retries() {
            ka = ka.with_retries(n);
        }
        socket2::SockRef::from(&s).set_tcp_keepalive(&ka)?;
    }
    Ok(Socket::Tcp(s))
}

/// A socket whose close (after `Terminate`) completes when the server has closed its
/// side, or after [`SERVER_CLOSE_WAIT`].
pub(super) struct UntilServerCloses {
    io: Socket,
    /// Set once our side is shut: the deadline for the server's.
    closing: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl UntilServerCloses {
    pub(super) fn new(io: Socket) -> Self {
        UntilServerCloses { io, closing: None }
    }
}

macro_rules! each {
    ($io:expr, $s:ident => $e:expr) => {
        match $io {
            Socket::Tcp($s) => $e,
            Socket::Unix($s) => $e,
        }
    };
}

impl AsyncRead for UntilServerCloses {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each!(&mut self.get_mut().io, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for UntilServerCloses {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(&mut self.get_mut().io, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(&mut self.get_mut().io, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let UntilServerCloses { io, closing } = self.get_mut();
        if closing.is_none() {
            ready!(each!(&mut *io, s => Pin::new(s).poll_shutdown(cx)))?;
        }
        let deadline =
            closing.get_or_insert_with(|| Box::pin(tokio::time::sleep(SERVER_CLOSE_WAIT)));
        // Whatever the server still sends is of no use now: read until its end of file.
        let mut scratch = [0u8; 512];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match each!(&mut *io, s => Pin::new(s).poll_read(cx, &mut buf)) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => continue,
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => {
                    ready!(deadline.as_mut().poll(cx));
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}
