//! Read lanes: a few sessions to the control database (and one to each placement database
//! while its server's connection budget has room for it), each carrying the read flights
//! of many transactions at once, each flight one implicit transaction ended by one `Sync`.
//!
//! A pooled connection carries one transaction at a time, and tokio-postgres ends every
//! statement with a `Sync`, after which PostgreSQL flushes its answer: a scoped read
//! (`BEGIN`, the prelude, its statements, the previous `COMMIT`) cost five sends on the
//! server's side and one wake-up per transaction. A lane sends a flight as the extended
//! protocol allows: `Bind`/`Execute` of the prelude, then of each statement, then one
//! `Sync`. Until that `Sync` the messages run in one implicit transaction, so the
//! prelude's transaction-local settings (the role switch, `app.org_id`, ...,
//! `transaction_read_only`) hold for the statements after it and are undone at its end,
//! committed or not; an error skips everything up to the `Sync` and rolls the transaction
//! back. Flights from many requests follow each other on one session, each written whole
//! (one buffer, one write), and PostgreSQL answers them in order, reading several per
//! wake-up when they arrive together.
//!
//! The wall: a flight always begins with the prelude ([`Lanes::flight`] takes it apart
//! from the statements and sends it first), and nothing is ever sent on a lane outside a
//! flight but `Parse`/`Describe` of a statement. After a flight's `Sync` the session is
//! its login again: a statement sent alone would run outside any scope, which is why the
//! prelude cannot be left out. A flight whose prelude fails runs nothing after it.
//!
//! Measured (bench/README.md): the server's detail flight, 32 clients over 16 pooled
//! connections, 14-16k transactions/s; over 4 lanes, 41-47k.

use super::{decode_row, map_db};
use crate::value::Row;
use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use orgwall_core::{Error, Result};
use postgres_protocol::message::{backend::Message, frontend};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::{ToSql, Type};

/// How many statements one lane session prepares before it is retired (many placement
/// schemas, each with statements of its own).
const STATEMENTS_PER_LANE: usize = 2_000;

/// The lanes of one database: the control database's, or a placement database's.
pub(crate) struct Lanes {
    cfg: tokio_postgres::Config,
    url: Arc<str>,
    lanes: Vec<Lane>,
    next: AtomicUsize,
    /// Whether a lane opens a session of its own when it has none (the control
    /// database's). A placement database's is opened only by [`Lanes::open_with`], its
    /// session holding a permit of its server's connection budget.
    opens: bool,
    /// When it was made, and when its last flight was answered (milliseconds since then).
    made: std::time::Instant,
    last: AtomicU64,
}

/// One lane: its live session, if any, opened on first use and again after it broke.
struct Lane {
    live: Mutex<Option<Arc<Session>>>,
    opening: tokio::sync::Mutex<()>,
    /// Flights sent on it and not yet answered: a flight goes on the least busy lane, so
    /// one slow flight (a lane answers in order) holds back only what queued behind it
    /// before the others were freer.
    in_flight: AtomicUsize,
}

/// One statement of a flight: its SQL and its parameters.
pub(crate) type Stmt<'a> = (&'a str, &'a [&'a (dyn ToSql + Sync)]);

/// How a flight went.
pub(crate) enum Flown {
    /// Nothing of it reached the server.
    Unsent(Error),
    /// Sent: each statement's answer, or the session's failure.
    Sent(Result<Vec<Answer>>),
}

/// What one statement of a flight answered.
pub(crate) enum Answer {
    /// Its rows (a statement that returns none: none) and its command tag's count.
    Done(Vec<Row>, u64),
    /// It failed; nothing after it in the flight ran.
    Failed(Error),
    /// It did not run: a statement before it failed.
    Skipped,
}

impl Lanes {
    /// `n` lanes to the database of `cfg` (none opened yet), each opening its session on
    /// first use.
    pub(crate) fn new(cfg: tokio_postgres::Config, url: Arc<str>, n: usize) -> Lanes {
        Lanes {
            cfg,
            url,
            lanes: (0..n)
                .map(|_| Lane {
                    live: Mutex::new(None),
                    opening: tokio::sync::Mutex::new(()),
                    in_flight: AtomicUsize::new(0),
                })
                .collect(),
            next: AtomicUsize::new(0),
            opens: true,
            made: std::time::Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    /// `n` lanes to the database of `cfg` whose sessions are opened only by
    /// [`Lanes::open_with`] (a placement database's, within its server's budget).
    pub(crate) fn budgeted(cfg: tokio_postgres::Config, url: Arc<str>, n: usize) -> Lanes {
        Lanes {
            opens: false,
            ..Lanes::new(cfg, url, n)
        }
    }

    /// Whether a flight can go on it now: every lane opens its own session, or one has a
    /// live session.
    pub(crate) fn usable(&self) -> bool {
        self.opens || self.lanes.iter().any(|l| l.live().is_some())
    }

    /// Whether some lane holds a session (live or still ending).
    pub(crate) fn holds(&self) -> bool {
        self.lanes
            .iter()
            .any(|l| l.live.lock().is_ok_and(|s| s.is_some()))
    }

    /// Notes a flight answered now.
    fn touch(&self) {
        let now = u64::try_from(self.made.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(now, Ordering::Relaxed);
    }

    /// Whether no flight is on it, and for how long none has been.
    pub(crate) fn idle_for(&self) -> Option<std::time::Duration> {
        if self
            .lanes
            .iter()
            .any(|l| l.in_flight.load(Ordering::Relaxed) > 0)
        {
            return None;
        }
        let last = std::time::Duration::from_millis(self.last.load(Ordering::Relaxed));
        Some(self.made.elapsed().saturating_sub(last))
    }

    /// Opens the session of its first lane without a live one, holding what `permit`
    /// gives (a permit of its server's connection budget) until the session has ended.
    /// `true` if a lane is live now; `false` if `permit` gave nothing or the session could
    /// not be opened (the permit is given back then).
    pub(crate) async fn open_with<F>(&self, permit: impl FnOnce() -> F) -> bool
    where
        F: std::future::Future<Output = Option<Box<dyn Send>>>,
    {
        let Some(lane) = self.lanes.iter().find(|l| l.live().is_none()) else {
            return !self.lanes.is_empty();
        };
        // Reads of the database arriving meanwhile wait for it (a connection's set-up)
        // rather than each taking a pooled connection: measured, sending them to the pool
        // made them take the budget's permits, starve, and close the lanes again (a p99
        // of 55 ms for detail reads at 32 connections over 10 databases, against 6).
        let _opening = lane.opening.lock().await;
        if lane.live().is_some() {
            return true;
        }
        // A retired or broken session gives its slot (and, once ended, its permit) up
        // first.
        if let Ok(mut live) = lane.live.lock() {
            *live = None;
        }
        let Some(permit) = permit().await else {
            return false;
        };
        match Session::open(&self.cfg, Some(permit)).await {
            Ok(s) => {
                // Not idle from the start: a lane just opened is not the first to close.
                self.touch();
                if let Ok(mut live) = lane.live.lock() {
                    *live = Some(Arc::new(s));
                    return true;
                }
                false
            }
            Err(e) => {
                tracing::debug!(database = %self.url, error = %e, "a read lane did not open");
                false
            }
        }
    }

    /// Ends its sessions (each once its flights are answered) and waits, at most a
    /// second, until the server has closed them: their budget permits are free then.
    pub(crate) async fn close(&self) {
        let mut ending = Vec::new();
        for lane in &self.lanes {
            if let Some(s) = lane.live.lock().ok().and_then(|mut l| l.take()) {
                ending.push(s.closed.clone());
            }
        }
        for closed in ending {
            super::until_closed(|| closed.load(Ordering::Relaxed)).await;
        }
    }

    /// The least busy lane (ties taken in turn).
    fn pick(&self) -> Result<&Lane> {
        let n = self.lanes.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .filter_map(|k| self.lanes.get((start + k) % n.max(1)))
            .min_by_key(|l| l.in_flight.load(Ordering::Relaxed))
            .ok_or_else(|| Error::Internal("no read lane".into()))
    }

    /// Runs `prelude` and then `stmts` as one implicit transaction on a lane: one write,
    /// one answer. The answers come in order, the prelude's first. Statements not yet
    /// prepared on the lane are prepared first (a round trip each, once per lane). An
    /// error before anything of the flight was sent (a statement that does not compile,
    /// a parameter that does not encode, no session) is [`Flown::Unsent`].
    pub(crate) async fn flight(&self, prelude: Stmt<'_>, stmts: &[Stmt<'_>]) -> Flown {
        let lane = match self.pick() {
            Ok(l) => l,
            Err(e) => return Flown::Unsent(e),
        };
        let session = match self.session(lane).await {
            Ok(s) => s,
            Err(e) => return Flown::Unsent(e),
        };
        let mut prepared = Vec::with_capacity(stmts.len() + 1);
        for (sql, _) in std::iter::once(&prelude).chain(stmts) {
            match session.prepare(sql).await {
                Ok(p) => prepared.push(p),
                Err(e) => return Flown::Unsent(e),
            }
        }
        // Encoded whole before anything is sent: a parameter that does not encode fails
        // the flight with nothing sent.
        let mut buf = BytesMut::new();
        for ((_, params), stmt) in std::iter::once(&prelude).chain(stmts).zip(&prepared) {
            if let Err(e) = encode(&mut buf, stmt, params) {
                return Flown::Unsent(e);
            }
        }
        frontend::sync(&mut buf);
        lane.in_flight.fetch_add(1, Ordering::Relaxed);
        let sent = session.send(buf).await;
        self.touch();
        lane.in_flight.fetch_sub(1, Ordering::Relaxed);
        Flown::Sent(sent.and_then(|messages| answers(messages, &prepared)))
    }

    /// Column names and types of `sql` (prepared on a lane, not run).
    pub(crate) async fn columns(&self, sql: &str) -> Result<Vec<(String, Type)>> {
        let lane = self
            .lanes
            .first()
            .ok_or_else(|| Error::Internal("no read lane".into()))?;
        let session = self.session(lane).await?;
        Ok(session.prepare(sql).await?.columns.clone())
    }

    async fn session(&self, lane: &Lane) -> Result<Arc<Session>> {
        if let Some(s) = lane.live() {
            return Ok(s);
        }
        if !self.opens {
            return Err(Error::Unavailable(format!(
                "the read lane of {} is closed",
                self.url
            )));
        }
        let _opening = lane.opening.lock().await;
        if let Some(s) = lane.live() {
            return Ok(s);
        }
        let s = Arc::new(
            Session::open(&self.cfg, None)
                .await
                .map_err(|e| super::connect_error(&self.url, e))?,
        );
        *lane.live.lock().map_err(poisoned)? = Some(s.clone());
        Ok(s)
    }
}

impl Lane {
    fn live(&self) -> Option<Arc<Session>> {
        let live = self.live.lock().ok()?;
        live.as_ref().filter(|s| !s.is_dead()).cloned()
    }
}

fn poisoned<T>(_: T) -> Error {
    Error::Internal("a read lane's lock is poisoned".into())
}

/// A statement prepared on a lane session.
struct Prepared {
    name: String,
    params: Vec<Type>,
    columns: Vec<(String, Type)>,
}

/// What a session's reader owes its senders: one answer per `Sync`, in order.
#[derive(Default)]
struct Waiting {
    queue: VecDeque<oneshot::Sender<Vec<Message>>>,
    /// The session broke: nobody will be answered any more.
    dead: bool,
}

/// One lane session: a writer task sends whole flights, a reader task hands each its
/// messages up to its `ReadyForQuery`.
struct Session {
    out: mpsc::UnboundedSender<(BytesMut, oneshot::Sender<Vec<Message>>)>,
    statements: Mutex<HashMap<String, Arc<Prepared>>>,
    names: AtomicU64,
    /// The session broke (its reader or writer ended): the lane opens another.
    dead: Arc<AtomicBool>,
    /// The server closed it (what it held, a budget permit, is given back then).
    closed: Arc<AtomicBool>,
}

impl Session {
    fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Relaxed)
    }

    /// Opens a session holding `keep` (a budget permit) until the server has closed it.
    async fn open(
        cfg: &tokio_postgres::Config,
        keep: Option<Box<dyn Send>>,
    ) -> std::io::Result<Session> {
        // The pool's own way to the server: its hosts in turn, its connect timeout and
        // TCP keepalives (a server gone silent ends the session instead of holding its
        // flights).
        let socket = super::socket::open(cfg).await?;
        let timeout = cfg
            .get_connect_timeout()
            .copied()
            .unwrap_or(std::time::Duration::from_secs(10));
        let dead = Arc::new(AtomicBool::new(false));
        let closed = Arc::new(AtomicBool::new(false));
        let held = Held {
            closed: closed.clone(),
            _keep: keep,
        };
        let waiting = Arc::new(Mutex::new(Waiting::default()));
        let (tx, rx) = mpsc::unbounded_channel();
        let go = async {
            match socket {
                super::socket::Socket::Unix(mut s) => {
                    startup(&mut s, cfg).await?;
                    let (r, w) = s.into_split();
                    spawn_io(r, w, rx, waiting.clone(), dead.clone(), held);
                }
                super::socket::Socket::Tcp(mut s) => {
                    startup(&mut s, cfg).await?;
                    let (r, w) = s.into_split();
                    spawn_io(r, w, rx, waiting.clone(), dead.clone(), held);
                }
            }
            Ok::<_, std::io::Error>(())
        };
        tokio::time::timeout(timeout, go).await.map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
        })??;
        Ok(Session {
            out: tx,
            statements: Mutex::new(HashMap::new()),
            names: AtomicU64::new(0),
            dead,
            closed,
        })
    }

    /// Sends `buf` (ending with exactly one `Sync`) and waits for its answer.
    async fn send(&self, buf: BytesMut) -> Result<Vec<Message>> {
        let (tx, rx) = oneshot::channel();
        if self.out.send((buf, tx)).is_err() {
            self.dead.store(true, Ordering::Relaxed);
            return Err(lost());
        }
        rx.await.map_err(|_| lost())
    }

    async fn prepare(&self, sql: &str) -> Result<Arc<Prepared>> {
        if let Some(p) = self.statements.lock().map_err(poisoned)?.get(sql) {
            return Ok(p.clone());
        }
        let name = format!("l{}", self.names.fetch_add(1, Ordering::Relaxed));
        let mut buf = BytesMut::new();
        frontend::parse(&name, sql, std::iter::empty(), &mut buf).map_err(Error::internal)?;
        frontend::describe(b'S', &name, &mut buf).map_err(Error::internal)?;
        frontend::sync(&mut buf);
        let mut params = Vec::new();
        let mut columns = Vec::new();
        for m in self.send(buf).await? {
            match m {
                Message::ErrorResponse(body) => return Err(db_error(&body)),
                Message::ParameterDescription(body) => {
                    params = body
                        .parameters()
                        .map(|oid| Ok(type_of(oid)))
                        .collect()
                        .map_err(Error::internal)?;
                }
                Message::NoData => {
                    // No rows to answer: a transaction-control, SET or other utility
                    // statement, which could end the flight's transaction (and with it
                    // its scope) before the statements after it. A lane carries queries.
                    return Err(Error::Internal(format!(
                        "a read lane carries statements that return rows only: {sql}"
                    )));
                }
                Message::RowDescription(body) => {
                    columns = body
                        .fields()
                        .map(|f| Ok((f.name().to_owned(), type_of(f.type_oid()))))
                        .collect()
                        .map_err(Error::internal)?;
                }
                _ => {}
            }
        }
        let p = Arc::new(Prepared {
            name,
            params,
            columns,
        });
        let mut statements = self.statements.lock().map_err(poisoned)?;
        statements.insert(sql.to_owned(), p.clone());
        if statements.len() >= STATEMENTS_PER_LANE {
            // Retired: the lane opens a new session for its next flight, and this one
            // ends (with every statement it prepared) once its flights are answered.
            self.dead.store(true, Ordering::Relaxed);
        }
        Ok(p)
    }
}

fn lost() -> Error {
    Error::Unavailable("PostgreSQL connection lost (read lane)".into())
}

/// A type by its oid; one this crate does not know is carried as `unknown` (never
/// decoded: [`decode_row`] refuses it by name).
fn type_of(oid: u32) -> Type {
    Type::from_oid(oid).unwrap_or(Type::UNKNOWN)
}

/// The domain error of an `ErrorResponse`.
fn db_error(body: &postgres_protocol::message::backend::ErrorResponseBody) -> Error {
    let mut code = String::new();
    let mut message = String::new();
    let mut constraint = String::new();
    let mut fields = body.fields();
    while let Ok(Some(f)) = fields.next() {
        match f.type_() {
            b'C' => code = String::from_utf8_lossy(f.value_bytes()).into_owned(),
            b'M' => message = String::from_utf8_lossy(f.value_bytes()).into_owned(),
            b'n' => constraint = String::from_utf8_lossy(f.value_bytes()).into_owned(),
            _ => {}
        }
    }
    map_db(
        &tokio_postgres::error::SqlState::from_code(&code),
        &message,
        &constraint,
    )
}

/// Appends `Bind` and `Execute` of `stmt` with `params` (binary, both ways) to `buf`,
/// or nothing if a parameter does not encode.
fn encode(buf: &mut BytesMut, stmt: &Prepared, params: &[&(dyn ToSql + Sync)]) -> Result<()> {
    if params.len() != stmt.params.len() {
        return Err(Error::Internal(format!(
            "statement takes {} parameters, {} given",
            stmt.params.len(),
            params.len()
        )));
    }
    let mut one = BytesMut::new();
    let mut failed = None;
    frontend::bind(
        "",
        &stmt.name,
        Some(1),
        params.iter().zip(&stmt.params),
        |(p, t), out| match p.to_sql_checked(t, out) {
            Ok(tokio_postgres::types::IsNull::No) => Ok(postgres_protocol::IsNull::No),
            Ok(tokio_postgres::types::IsNull::Yes) => Ok(postgres_protocol::IsNull::Yes),
            Err(e) => {
                failed = Some(e.to_string());
                Err(e)
            }
        },
        Some(1),
        &mut one,
    )
    .map_err(|_| {
        Error::Validation(format!(
            "a parameter does not encode: {}",
            failed.take().unwrap_or_default()
        ))
    })?;
    frontend::execute("", 0, &mut one).map_err(Error::internal)?;
    buf.extend_from_slice(&one);
    Ok(())
}

/// Splits a flight's messages into one answer per statement.
fn answers(messages: Vec<Message>, prepared: &[Arc<Prepared>]) -> Result<Vec<Answer>> {
    let mut out = Vec::with_capacity(prepared.len());
    let mut rows = Vec::new();
    let mut failed = false;
    for m in messages {
        let stmt = prepared
            .get(out.len())
            .ok_or_else(|| Error::Internal("a read lane answered more than it was asked".into()));
        match m {
            Message::BindComplete => {}
            Message::DataRow(body) => rows.push(decode_row(&body, &stmt?.columns)?),
            Message::CommandComplete(body) => {
                let tag = body.tag().map_err(Error::internal)?;
                let n = tag
                    .rsplit(' ')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                out.push(Answer::Done(std::mem::take(&mut rows), n));
            }
            Message::EmptyQueryResponse => out.push(Answer::Done(Vec::new(), 0)),
            Message::ErrorResponse(body) => {
                failed = true;
                out.push(Answer::Failed(db_error(&body)));
                break;
            }
            _ => {}
        }
    }
    if !failed && out.len() != prepared.len() {
        return Err(Error::Internal(
            "a read lane's flight was answered in part".into(),
        ));
    }
    while out.len() < prepared.len() {
        out.push(Answer::Skipped);
    }
    Ok(out)
}

/// The startup exchange: the login, then its authentication, up to the first
/// `ReadyForQuery`.
async fn startup<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    cfg: &tokio_postgres::Config,
) -> std::io::Result<()> {
    let invalid = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    let user = cfg.get_user().ok_or_else(|| invalid("no user"))?;
    let mut params = vec![("user", user), ("client_encoding", "UTF8")];
    if let Some(db) = cfg.get_dbname() {
        params.push(("database", db));
    }
    if let Some(app) = cfg.get_application_name() {
        params.push(("application_name", app));
    }
    if let Some(o) = cfg.get_options() {
        params.push(("options", o));
    }
    let mut buf = BytesMut::new();
    frontend::startup_message(params, &mut buf)?;
    s.write_all(&buf).await?;
    let password = cfg.get_password().unwrap_or_default();
    let mut scram: Option<postgres_protocol::authentication::sasl::ScramSha256> = None;
    let mut rb = BytesMut::new();
    loop {
        let m = loop {
            if let Some(m) = Message::parse(&mut rb)? {
                break m;
            }
            if s.read_buf(&mut rb).await? == 0 {
                return Err(invalid("the server closed the connection"));
            }
        };
        buf.clear();
        match m {
            Message::AuthenticationOk
            | Message::ParameterStatus(_)
            | Message::BackendKeyData(_)
            | Message::NoticeResponse(_) => continue,
            Message::ReadyForQuery(_) => return Ok(()),
            Message::AuthenticationCleartextPassword => {
                frontend::password_message(password, &mut buf)?;
            }
            Message::AuthenticationMd5Password(body) => {
                let hashed = postgres_protocol::authentication::md5_hash(
                    user.as_bytes(),
                    password,
                    body.salt(),
                );
                frontend::password_message(hashed.as_bytes(), &mut buf)?;
            }
            Message::AuthenticationSasl(body) => {
                let mut mechanisms = body.mechanisms();
                let mut found = false;
                while let Some(m) = mechanisms.next()? {
                    found |= m == postgres_protocol::authentication::sasl::SCRAM_SHA_256;
                }
                if !found {
                    return Err(invalid("the server offers no SCRAM-SHA-256"));
                }
                let sc = postgres_protocol::authentication::sasl::ScramSha256::new(
                    password,
                    postgres_protocol::authentication::sasl::ChannelBinding::unsupported(),
                );
                frontend::sasl_initial_response(
                    postgres_protocol::authentication::sasl::SCRAM_SHA_256,
                    sc.message(),
                    &mut buf,
                )?;
                scram = Some(sc);
            }
            Message::AuthenticationSaslContinue(body) => {
                let sc = scram.as_mut().ok_or_else(|| invalid("unexpected SASL"))?;
                sc.update(body.data())?;
                frontend::sasl_response(sc.message(), &mut buf)?;
            }
            Message::AuthenticationSaslFinal(body) => {
                let sc = scram.as_mut().ok_or_else(|| invalid("unexpected SASL"))?;
                sc.finish(body.data())?;
                continue;
            }
            Message::ErrorResponse(body) => {
                let mut fields = body.fields();
                let mut msg = String::from("the server refused the connection");
                while let Some(f) = fields.next()? {
                    if f.type_() == b'M' {
                        msg = String::from_utf8_lossy(f.value_bytes()).into_owned();
                    }
                }
                return Err(std::io::Error::other(msg));
            }
            _ => return Err(invalid("unexpected message while connecting")),
        }
        s.write_all(&buf).await?;
    }
}

/// What a session's reader holds until the server has closed the session: then it gives
/// back what it keeps (a budget permit) and says so.
struct Held {
    closed: Arc<AtomicBool>,
    _keep: Option<Box<dyn Send>>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Relaxed);
    }
}

/// Starts a session's writer and reader.
fn spawn_io<R, W>(
    mut r: R,
    mut w: W,
    mut rx: mpsc::UnboundedReceiver<(BytesMut, oneshot::Sender<Vec<Message>>)>,
    waiting: Arc<Mutex<Waiting>>,
    dead: Arc<AtomicBool>,
    held: Held,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    // Ends the session for everyone: no waiter is ever left without an answer.
    fn end(waiting: &Mutex<Waiting>, dead: &AtomicBool) {
        dead.store(true, Ordering::Relaxed);
        if let Ok(mut w) = waiting.lock() {
            w.dead = true;
            w.queue.clear();
        }
    }
    // The reader found the session unusable: the writer ends it (Terminate, then its
    // half of the socket closes), so the server closes it too.
    let kill = Arc::new(tokio::sync::Notify::new());
    let (wq, wd, wk) = (waiting.clone(), dead.clone(), kill.clone());
    tokio::spawn(async move {
        let mut out = BytesMut::new();
        loop {
            let first = tokio::select! {
                m = rx.recv() => m,
                () = wk.notified() => None,
            };
            let Some(first) = first else {
                break;
            };
            let mut next = Some(first);
            // Every flight queued meanwhile goes in the same write, each whole.
            while let Some((bytes, reply)) = next.take().or_else(|| rx.try_recv().ok()) {
                let Ok(mut q) = wq.lock() else {
                    end(&wq, &wd);
                    break;
                };
                if q.dead {
                    break;
                }
                q.queue.push_back(reply);
                drop(q);
                out.extend_from_slice(&bytes);
            }
            if wd.load(Ordering::Relaxed) || w.write_all(&out).await.is_err() {
                break;
            }
            out.clear();
        }
        // Every sender is gone, or the session broke: it ends (Terminate, then the socket
        // closes).
        out.clear();
        frontend::terminate(&mut out);
        let _ = w.write_all(&out).await;
        let _ = w.shutdown().await;
        end(&wq, &wd);
    });
    tokio::spawn(async move {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let eof = read_answers(&mut r, &mut buf, &waiting).await;
        end(&waiting, &dead);
        if !eof {
            // Not closed by the server yet: the writer ends the session, and what it
            // holds (a budget permit) is given back once the server has closed it (at
            // most 5 s later: a server gone silent is left to TCP keepalives).
            kill.notify_one();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                loop {
                    buf.clear();
                    match r.read_buf(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            })
            .await;
        }
        drop(held);
    });
}

/// Hands each waiter its messages up to its `ReadyForQuery`, until the session ends:
/// `true` if the server closed it (end of file or a read error), `false` if it became
/// unusable (it must be ended from this side).
async fn read_answers<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    waiting: &Mutex<Waiting>,
) -> bool {
    let mut answer = Vec::new();
    loop {
        match r.read_buf(buf).await {
            Ok(0) | Err(_) => return true,
            Ok(_) => {}
        }
        loop {
            let m = match Message::parse(buf) {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(_) => return false,
            };
            match m {
                // A flight ends its implicit transaction: a session left in a
                // transaction block (a statement that began one) would carry its
                // settings to the next flight, and a COPY would take the next
                // flights' messages for its data. Neither is ever sent; either ends
                // the session (every waiter answered 503; a message the parser does
                // not know, such as CopyBothResponse, ends it too).
                Message::ReadyForQuery(body) if body.status() != b'I' => return false,
                Message::CopyInResponse(_) | Message::CopyOutResponse(_) => return false,
                Message::ReadyForQuery(_) => {
                    let Ok(mut q) = waiting.lock() else {
                        return false;
                    };
                    let Some(reply) = q.queue.pop_front() else {
                        return false;
                    };
                    drop(q);
                    let _ = reply.send(std::mem::take(&mut answer));
                }
                // Asynchronous messages belong to no flight.
                Message::NoticeResponse(_)
                | Message::ParameterStatus(_)
                | Message::NotificationResponse(_) => {}
                m => answer.push(m),
            }
        }
    }
}
