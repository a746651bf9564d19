//! Serving a router on a TCP listener with the edge's connection rules (HTTP/1.1):
//!
//! - **header-read timeout**: once the first byte of a request has arrived, its headers
//!   must be complete within [`ServeConfig::header_read_timeout`];
//! - **body-read timeout**: while a handler reads the request body, each piece of it must
//!   arrive within [`ServeConfig::body_read_timeout`] of the previous one (the read fails,
//!   the JSON extractor answers 408, and the connection is closed);
//! - **idle timeout**: a connection with no request in progress and no byte read for
//!   [`ServeConfig::idle_timeout`] (a keep-alive connection between requests, or one that
//!   never sent anything), or whose response has not moved for as long (a client that
//!   stopped reading), is closed;
//! - **open connections**: at most [`ServeConfig::max_connections`] at once; further
//!   clients wait in the listen backlog until one closes;
//! - a request whose body the handler did not read to its end is answered with
//!   `Connection: close` ([`close_unread`], installed by the app), so a client never sends
//!   its next request down a connection the server is about to close.
//!
//! Shutdown: stop accepting, let each connection finish its request in progress, close
//! idle ones, and return when all are gone (or after a grace period).

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// The text of the error a request body read fails with when the client stops sending
/// it (the JSON extractor answers 408 for it).
pub const BODY_TIMEOUT_MESSAGE: &str = "request body read timed out";

/// The connection rules of [`serve`].
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// From a request's first byte to the end of its headers.
    pub header_read_timeout: Duration,
    /// Between two pieces of a request body while it is read.
    pub body_read_timeout: Duration,
    /// A connection with nothing in progress and nothing received (or a response that
    /// does not move) for this long is closed.
    pub idle_timeout: Duration,
    /// Open connections at most.
    pub max_connections: usize,
    /// How long shutdown waits for requests in progress.
    pub shutdown_grace: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

const NONE: u64 = u64::MAX;

/// What one connection has been doing (milliseconds since it opened).
struct Activity {
    opened: Instant,
    /// The last byte read or written.
    last_io: AtomicU64,
    /// The first byte read since the connection became free ([`NONE`] if none yet).
    first_read: AtomicU64,
    /// Requests in progress (from their headers to the end of their response).
    busy: AtomicUsize,
    /// Responses being sent.
    responding: AtomicUsize,
    /// When the connection last became free (opened, or a response finished).
    free_since: AtomicU64,
}

impl Activity {
    fn new() -> Arc<Activity> {
        Arc::new(Activity {
            opened: Instant::now(),
            last_io: AtomicU64::new(0),
            first_read: AtomicU64::new(NONE),
            busy: AtomicUsize::new(0),
            responding: AtomicUsize::new(0),
            free_since: AtomicU64::new(0),
        })
    }

    fn now(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn read(&self, n: usize) {
        if n > 0 {
            let now = self.now();
            self.last_io.store(now, Ordering::Relaxed);
            if self.busy.load(Ordering::Relaxed) == 0 {
                let _ = self.first_read.compare_exchange(
                    NONE,
                    now,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
        }
    }

    fn wrote(&self, n: usize) {
        if n > 0 {
            self.last_io.store(self.now(), Ordering::Relaxed);
        }
    }

    /// Why the connection should be closed now, if it should.
    fn expired(&self, cfg: &ServeConfig) -> Option<&'static str> {
        let now = self.now();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(NONE - 1);
        if self.busy.load(Ordering::Relaxed) == 0 {
            let first = self.first_read.load(Ordering::Relaxed);
            if first != NONE {
                if now.saturating_sub(first) > ms(cfg.header_read_timeout) {
                    return Some("header read timeout");
                }
            } else if now.saturating_sub(self.free_since.load(Ordering::Relaxed))
                > ms(cfg.idle_timeout)
            {
                return Some("idle timeout");
            }
        } else if self.responding.load(Ordering::Relaxed) > 0
            && now.saturating_sub(self.last_io.load(Ordering::Relaxed)) > ms(cfg.idle_timeout)
        {
            // A handler may think for a while (its body reads have their own timeout);
            // a response the client does not read may not wait forever.
            return Some("response stalled");
        }
        None
    }
}

/// One request in progress: the connection is busy until its response has been sent
/// (or abandoned).
struct InProgress {
    act: Arc<Activity>,
    responding: bool,
}

impl InProgress {
    fn start(act: &Arc<Activity>) -> InProgress {
        act.busy.fetch_add(1, Ordering::Relaxed);
        InProgress {
            act: act.clone(),
            responding: false,
        }
    }

    fn responding(&mut self) {
        self.responding = true;
        self.act.responding.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        if self.responding {
            self.act.responding.fetch_sub(1, Ordering::Relaxed);
        }
        self.act.first_read.store(NONE, Ordering::Relaxed);
        self.act.free_since.store(self.act.now(), Ordering::Relaxed);
        self.act.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The socket, noting when bytes move.
struct Tracked {
    io: TcpStream,
    act: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            self.act.read(buf.filled().len().saturating_sub(before));
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.act.wrote(n);
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            self.act.wrote(n);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A request body whose pieces must each arrive within a timeout.
struct TimedBody {
    inner: hyper::body::Incoming,
    timeout: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(r) => {
                self.sleep = None;
                Poll::Ready(r.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let timeout = self.timeout;
                let sleep = self
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(io::Error::new(
                        io::ErrorKind::TimedOut,
                        BODY_TIMEOUT_MESSAGE,
                    ))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its request in progress until it is sent or dropped.
struct Sending {
    inner: Body,
    _progress: InProgress,
}

impl http_body::Body for Sending {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `app` on `listener` under `cfg` until `shutdown` completes, then lets requests
/// in progress finish (at most [`ServeConfig::shutdown_grace`]).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    cfg: ServeConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(cfg.max_connections.max(1)));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut conns = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, addr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let (app, cfg, stop) = (app.clone(), cfg.clone(), stop_rx.clone());
        conns.spawn(async move {
            connection(stream, addr, app, cfg, stop).await;
            drop(permit);
        });
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let grace = cfg.shutdown_grace;
    if tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period; closing them");
        conns.abort_all();
    }
    Ok(())
}

async fn connection(
    stream: TcpStream,
    addr: SocketAddr,
    app: Router,
    cfg: ServeConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let act = Activity::new();
    let io = hyper_util::rt::TokioIo::new(Tracked {
        io: stream,
        act: act.clone(),
    });
    let body_timeout = cfg.body_read_timeout;
    let svc_act = act.clone();
    let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let mut progress = InProgress::start(&svc_act);
        let app = app.clone();
        async move {
            let mut req = req.map(|b| {
                Body::new(TimedBody {
                    inner: b,
                    timeout: body_timeout,
                    sleep: None,
                })
            });
            req.extensions_mut().insert(ConnectInfo(addr));
            let res = tower::ServiceExt::oneshot(app, req).await?;
            progress.responding();
            Ok::<_, std::convert::Infallible>(res.map(|b| Sending {
                inner: b,
                _progress: progress,
            }))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, svc);
    tokio::pin!(conn);
    let shortest = cfg
        .header_read_timeout
        .min(cfg.idle_timeout)
        .min(cfg.body_read_timeout);
    let mut tick = tokio::time::interval(
        (shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(1)),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stopping = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = tick.tick() => {
                if let Some(why) = act.expired(&cfg) {
                    tracing::debug!(%addr, why, "closing connection");
                    return;
                }
            }
            r = stop.changed(), if !stopping => {
                stopping = true;
                if r.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Middleware: a request whose body the handler did not read to its end is answered
/// with `Connection: close` (the server will not read the rest to find the next
/// request, and the client must not send one down this connection).
pub async fn close_unread(req: Request, next: Next) -> Response {
    let has_body = crate::body::declared_length(req.headers()).is_some_and(|n| n > 0)
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    if !has_body {
        return next.run(req).await;
    }
    let done = Arc::new(AtomicBool::new(false));
    let watched = done.clone();
    let req = req.map(|b| {
        Body::new(Watched {
            inner: b,
            done: watched,
        })
    });
    let mut res = next.run(req).await;
    if !done.load(Ordering::Relaxed) {
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}

/// A request body that notes when it has been read to its end.
struct Watched {
    inner: Body,
    done: Arc<AtomicBool>,
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(r, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.done.store(true, Ordering::Relaxed);
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
