//! A counting proxy for the PostgreSQL wire protocol: the round-trip property of the
//! store and of whole HTTP requests, asserted structurally (not timed).
//!
//! The proxy sits between a pool and PostgreSQL and reads the protocol in both
//! directions. Every request the client makes ends with a `Sync` (extended query protocol)
//! or is a simple `Query`; each is answered by exactly one `ReadyForQuery`. A client
//! message that arrives once every earlier request has been answered starts a new
//! **turn**: the client waited for every answer before it wrote again, which is one
//! network round trip. Each turn records how many requests it carried. A [`Gate`] can hold
//! the server's answers back from the client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::TestDb;
use orgwall_store::{BackendKind, Db, DbConfig};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy saw, over every connection it carried.
#[derive(Default, Debug)]
pub struct Wire {
    /// Requests sent and not yet answered by `ReadyForQuery`.
    pub outstanding: usize,
    /// A turn has begun and not every request of it has been answered yet.
    pub open: bool,
    /// Requests (Sync or Query) carried by each turn, in order.
    pub turns: Vec<usize>,
}

pub type Shared = Arc<Mutex<Wire>>;

/// Holds the server's answers back from the client while closed.
#[derive(Default)]
pub struct Gate {
    closed: std::sync::atomic::AtomicBool,
    opened: tokio::sync::Notify,
}

impl Gate {
    pub fn close(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    pub fn open(&self) {
        self.closed
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.opened.notify_waiters();
    }
    pub async fn wait_open(&self) {
        loop {
            let opened = self.opened.notified();
            if !self.closed.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            opened.await;
        }
    }
}

/// Splits complete protocol messages off the front of `buf`: (type byte, whole message
/// length). `typed` is false only for the startup message, which has no type byte.
pub fn next_message(buf: &[u8], typed: bool) -> Option<(u8, usize)> {
    let (kind, at) = if typed { (*buf.first()?, 1) } else { (0, 0) };
    let len_bytes: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
    let len = u32::from_be_bytes(len_bytes) as usize + at;
    (buf.len() >= len).then_some((kind, len))
}

/// Forwards bytes from `from` to `to`. Each complete protocol message's type byte is
/// handed to `count` (under the wire's lock; `typed` is false only for a connection's
/// startup message) before the bytes that carry it are forwarded, so an answer can never
/// be seen before the request it answers is counted; while `gate` is closed the bytes
/// are held back.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    wire: Shared,
    gate: Option<Arc<Gate>>,
    mut typed: bool,
    mut count: impl FnMut(&mut Wire, u8, bool) + Send,
) {
    let mut pending = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        pending.extend_from_slice(&chunk[..n]);
        {
            let mut w = wire.lock().unwrap();
            while let Some((kind, len)) = next_message(&pending, typed) {
                count(&mut w, kind, typed);
                typed = true;
                pending.drain(..len);
            }
        }
        if let Some(g) = &gate {
            g.wait_open().await;
        }
        if to.write_all(&chunk[..n]).await.is_err() {
            return;
        }
    }
}

/// Client -> server: counts requests and turns.
fn count_request(w: &mut Wire, kind: u8, typed: bool) {
    if !w.open {
        w.turns.push(0);
        w.open = true;
    }
    // The startup message is answered by ReadyForQuery, like a request.
    if !typed || kind == b'S' || kind == b'Q' {
        w.outstanding += 1;
        if let Some(t) = w.turns.last_mut() {
            *t += 1;
        }
    }
}

/// Server -> client: counts answers (`ReadyForQuery`).
fn count_answer(w: &mut Wire, kind: u8, _typed: bool) {
    if kind == b'Z' {
        w.outstanding = w.outstanding.saturating_sub(1);
        if w.outstanding == 0 {
            w.open = false;
        }
    }
}

/// Starts the proxy in front of `upstream` (host:port); returns its address.
pub async fn proxy(upstream: String, wire: Shared, gate: Arc<Gate>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(&upstream).await.unwrap();
            client.set_nodelay(true).unwrap();
            server.set_nodelay(true).unwrap();
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pump(cr, sw, wire.clone(), None, false, count_request));
            tokio::spawn(pump(
                sr,
                cw,
                wire.clone(),
                Some(gate.clone()),
                true,
                count_answer,
            ));
        }
    });
    addr
}

/// A fresh PostgreSQL database with the demo data, and a pool of one connection to it
/// through the counting proxy (no read lane: see [`proxied_with`]).
pub async fn proxied() -> (TestDb, Db, Shared, Arc<Gate>) {
    proxied_with(1).await
}

/// The same with `pool_size` connections through the proxy (4: one of them a read lane,
/// three pooled).
pub async fn proxied_with(pool_size: usize) -> (TestDb, Db, Shared, Arc<Gate>) {
    let t = TestDb::new(BackendKind::Postgres).await;
    let mut url = url::Url::parse(&t.url).unwrap();
    let upstream = format!(
        "{}:{}",
        url.host_str().unwrap_or("127.0.0.1"),
        url.port().unwrap_or(5432)
    );
    let wire = Shared::default();
    let gate = Arc::new(Gate::default());
    let addr = proxy(upstream, wire.clone(), gate.clone()).await;
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(addr.port())).unwrap();
    url.query_pairs_mut().append_pair("sslmode", "disable");
    let db = Db::open(
        &DbConfig::Postgres {
            url: url.to_string(),
            app_role: "orgwall_app".into(),
            pool_size,
            placement_budget: None,
        },
        orgwall_store::catalog(),
    )
    .await
    .unwrap();
    // The access cache's listener would open a second connection through the proxy;
    // these tests count the transaction protocol alone.
    db.set_access_cache(false);
    (t, db, wire, gate)
}

/// The turns taken by `f`, which must leave nothing outstanding.
pub async fn turns_of<F: std::future::Future<Output = ()>>(wire: &Shared, f: F) -> Vec<usize> {
    settle(wire).await;
    let before = {
        let w = wire.lock().unwrap();
        assert_eq!(w.outstanding, 0, "a request was still in flight before");
        w.turns.len()
    };
    f.await;
    settle(wire).await;
    let w = wire.lock().unwrap();
    assert_eq!(w.outstanding, 0, "a request was still unanswered after");
    w.turns[before..].to_vec()
}

/// Lets queued requests reach the wire and waits (bounded) for every answer. A read's
/// COMMIT is queued, not awaited: the connection task writes it when it next runs (else
/// it would go out with the next transaction's first flight, which is fine for the server
/// but would blur the count).
pub async fn settle(wire: &Shared) {
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    for _ in 0..500 {
        if wire.lock().unwrap().outstanding == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
