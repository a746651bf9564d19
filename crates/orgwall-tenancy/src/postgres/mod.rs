//! PostgreSQL backend: tokio-postgres with a deadpool pool.
//!
//! A transaction is opened lazily: `BEGIN`, the scope prelude (one statement of four
//! `set_config(..., true)` calls: role, `app.org_id`, `app.user_id`, `app.lookup`) and the
//! first real statement are sent together and answered in one network round trip
//! (tokio-postgres pipelines requests issued concurrently on one connection). Statements
//! are prepared once per connection and reused.

mod doctor;
mod lane;
mod mover;
mod pgoutput;
mod placement;
mod socket;
mod walls;

use crate::module::Catalog;
use crate::settings::{Mode, Settings};
use crate::value::{Row, Val};
use bytes::BytesMut;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use futures::FutureExt;
use orgwall_core::{Error, Result};
use std::sync::Arc;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::NoTls;

// The scope prelude's parts (`concat!` takes literals only, so the parts are macros).
/// The five settings of every prelude.
macro_rules! settings {
    () => {
        "SELECT set_config('role', $1, true), set_config('app.org_id', $2, true), \
         set_config('app.user_id', $3, true), set_config('app.lookup', $4, true), \
         set_config('app.system', $5, true)"
    };
}
/// A scope built from cached access checks its dependencies' generations in the same
/// statement (the last column says whether one changed: `$6`/`$8` the dependencies, the
/// org and a session's user; `$7`/`$9` the generations the scope was built at). A
/// scope's freshness is checked in the flight it already pays for, without a statement
/// of its own (`access_generations` is a global table, readable whatever the role).
/// Primary-key probes: about a third of the cost of a join over `unnest` of the same
/// pairs; one probe when the scope has one dependency (an API key's), the first probe
/// costing most (bench/README.md).
macro_rules! check1 {
    () => {
        ", coalesce((SELECT g.gen FROM access_generations g WHERE g.dep = $6), 0) <> $7"
    };
}
macro_rules! check2 {
    () => {
        " OR coalesce((SELECT g.gen FROM access_generations g WHERE g.dep = $8), 0) <> $9"
    };
}
/// An org placed in a schema of its own puts it first on the transaction's search path
/// (the last column, after the check if any); the shared orgs' prelude does not change.
macro_rules! route {
    ($n:literal) => {
        concat!(", set_config('search_path', $", $n, ", true)")
    };
}

/// The prelude of a transaction in an org's own database from a scope built from cached access
/// (an API key's: one dependency, the org): the org's access generation as that database
/// mirrors it (see [`crate::placement::MIRROR_TABLE`]), against the generation the scope
/// was built at. The mirror holds generations the control plane has committed, written
/// after each access change commits and before it is answered; so it can lag the control
/// plane for a moment, never lead it, and the check is "changed since", not "different":
/// a scope verified after a change, while the mirror still holds the value before it, is
/// not stale. A database its org is leaving holds [`crate::placement::MIRROR_RETIRED`].
const MIRRORED: &str = concat!(
    settings!(),
    ", coalesce((SELECT m.gen FROM access_mirror m WHERE m.dep = $6), 0) > $7"
);

/// The preludes, by the number of dependencies checked (0, 1, 2), unrouted and routed.
const PRELUDES: [[&str; 2]; 3] = [
    [settings!(), concat!(settings!(), route!(6))],
    [
        concat!(settings!(), check1!()),
        concat!(settings!(), check1!(), route!(8)),
    ],
    [
        concat!(settings!(), check1!(), check2!()),
        concat!(settings!(), check1!(), check2!(), route!(10)),
    ],
];

/// A prelude as a read lane sends it: read-only too (a lane's flight has no `BEGIN READ
/// ONLY`; `transaction_read_only` set on holds to its end). Built once per prelude.
fn lane_prelude(sql: &'static str) -> &'static str {
    static BUILT: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<&'static str, &'static str>>,
    > = std::sync::OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = match built.lock() {
        Ok(b) => b,
        Err(p) => p.into_inner(),
    };
    built.entry(sql).or_insert_with(|| {
        Box::leak(
            format!("{sql}, set_config('transaction_read_only', 'on', true)").into_boxed_str(),
        )
    })
}

#[derive(Clone)]
pub(crate) struct PgDb {
    pool: Pool,
    app_role: Arc<str>,
    url: Arc<str>,
    /// The pools of placement databases, each opened on first use.
    placed: Arc<Placed>,
    /// The login's current schema: where the control plane (and the shared placement)
    /// lives; a placement schema's transactions put it second on their search path.
    control: Arc<str>,
    /// The read lanes of the control database (none with a pool of fewer than
    /// [`MIN_POOL_FOR_LANES`]): every one-flight read there (`Db::read_once`) sends its
    /// flight on them, not on a pooled connection (see [`lane`]).
    lanes: Option<Arc<lane::Lanes>>,
}

/// A control pool smaller than this keeps every transaction on it (no read lane).
const MIN_POOL_FOR_LANES: usize = 4;

/// How many of the control database's `pool_size` connections are read lanes: a quarter,
/// at most 4, none below [`MIN_POOL_FOR_LANES`] (`ORGWALL_PG_READ_LANES` overrides it, for
/// measuring; 0 turns lanes off). The pool keeps the rest, so the login's connections stay
/// `pool_size` in all.
fn read_lanes(pool_size: usize) -> usize {
    let n = std::env::var("ORGWALL_PG_READ_LANES")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or_else(|| match pool_size >= MIN_POOL_FOR_LANES {
            true => (pool_size / 4).clamp(1, 4),
            false => 0,
        });
    n.min(pool_size.saturating_sub(1))
}

/// The pools of an instance's placement databases: one per database, opened on first use
/// with the same login as the control database's (or the target's), under **one
/// connection budget per server**: every connection to a placement database holds a
/// permit of its server's budget (a target's own, else `budget` permits) from before it
/// connects until its
/// session has ended, so the pools of one server never hold more than `budget`
/// connections together, however many databases they serve. A pool starts with room for
/// one connection and grows (up to `size`) only while the budget has a permit free: past
/// that, a database waits for its own connections, which is shorter than connecting. A
/// database's first connection, when the budget is taken, closes the server's least
/// recently used wholly idle pool (ending its sessions, awaited) or waits for a permit
/// (up to [`BUDGET_WAIT`], then 503); one waiting longer than [`STARVING`] makes the busy
/// pools give connections up as they come back ([`yield_to_waiters`]). Pools idle for
/// [`PLACED_IDLE`] are closed by a sweeper, so 1,000 databases do not keep 1,000 pools.
struct Placed {
    pools: std::sync::Mutex<std::collections::HashMap<PlacedKey, PlacedPool>>,
    /// Server logins by target (`None`: the control server), read once.
    logins: std::sync::Mutex<std::collections::HashMap<Option<Arc<str>>, placement::Login>>,
    /// Each server's budget (`None`: the control server).
    budgets: std::sync::Mutex<std::collections::HashMap<Option<Arc<str>>, Arc<Budget>>>,
    size: usize,
    budget: usize,
    /// Transactions at work at once on one server's placement databases (the control
    /// pool's size; see [`Budget::at_work`]).
    at_work: usize,
    /// Read lanes per placement database (1, or 0 where the control database has none):
    /// see [`PgDb::placed_lanes`].
    lanes: usize,
}

impl Placed {
    /// Lets the pool of `key` hold one more connection when all it holds are in use,
    /// it is below its size and its fair share of the server's budget (the budget split
    /// evenly over the server's open pools, rounded down, at least one: every busy
    /// database the same, none ahead because it grew first), and there is room: a permit of the server's
    /// budget free now, or another database's pool wholly idle for [`STALE_POOL`] (closed
    /// by the new connection, [`Placed::evict_one`]). A database never grows by closing
    /// a connection another database is using, nor one it used a moment ago: it waits for
    /// its own instead, which is shorter than connecting. (Without the fair share the
    /// databases busy first took the budget, and the requests of one left with a single
    /// connection queued behind each other: measured at 32 concurrent requests over 10
    /// databases, a p99 of 18 ms against 6 ms in the shared tables. Rounded up, a budget
    /// of 16 over 10 databases still let six grow to 2 sessions while four kept 1, whose
    /// requests queued: detail reads 10-12% behind the shared tables, p99 17 ms; rounded
    /// down, 3-5% behind, p99 11 ms, in alternating sittings.)
    ///
    /// "All it holds are in use" counts the callers already in the pool (holding a
    /// connection or waiting for one) against its size, not the connections it has made:
    /// deadpool counts a connection only once it is made, so a burst that arrived while
    /// the pool's first connection was being made saw room for it and did not grow the
    /// pool (the burst queued on one connection until later callers came). Found by
    /// reading after `placement.rs::a_server_budget_is_shared_fairly_and_its_work_is_bounded`
    /// failed once in a loaded full-suite run with one session where two were due; not
    /// reproduced since, with or without this.
    fn grow(&self, key: &PlacedKey, pool: &Pool) {
        let st = pool.status();
        let budget = self.budget_of(&key.0, None);
        // Holding or waiting (deadpool: `available` only when none waits).
        let callers = st.size + st.waiting - st.available;
        if callers < st.max_size || st.max_size >= self.size.min(budget.total) {
            return;
        }
        let pools = self
            .pools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let open = pools.keys().filter(|k| k.0 == key.0).count().max(1);
        if st.max_size >= (budget.total / open).max(1) {
            return;
        }
        let room = budget.permits.available_permits() > 0
            || pools.iter().any(|(k, p)| {
                k.0 == key.0
                    && k != key
                    && p.idle()
                    && p.holds()
                    && p.last_used.elapsed() >= STALE_POOL
            });
        drop(pools);
        if room {
            pool.resize(st.max_size + 1);
        }
    }

    /// The budget of `server`: made on first use with `own` permits (the target's own
    /// budget) or the instance's.
    fn budget_of(&self, server: &Option<Arc<str>>, own: Option<usize>) -> Arc<Budget> {
        self.budgets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(server.clone())
            .or_insert_with(|| Arc::new(Budget::new(own.unwrap_or(self.budget), self.at_work)))
            .clone()
    }

    /// Closes the read lane of one of `server`'s databases, so that its budget permit
    /// comes free (once its flights in progress are answered): one with no flight for at
    /// least `idle` (the longest idle first), or with `idle` `None` any (a connection
    /// starving for the budget: lanes give way as pooled connections do,
    /// [`yield_to_waiters`]; reads there go on pools meanwhile). `false` if there is none.
    async fn close_lane(
        &self,
        server: &Option<Arc<str>>,
        idle: Option<std::time::Duration>,
    ) -> bool {
        let lanes = self
            .pools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|(k, _)| k.0 == *server)
            .filter_map(|(_, p)| p.lanes.as_ref().filter(|l| l.holds()))
            .filter_map(|l| match (l.idle_for(), idle) {
                (Some(d), Some(min)) if d >= min => Some((Some(d), l.clone())),
                (d, None) => Some((d, l.clone())),
                _ => None,
            })
            .max_by_key(|(d, _)| *d)
            .map(|(_, l)| l);
        match lanes {
            Some(l) => {
                l.close().await;
                true
            }
            None => false,
        }
    }

    /// Closes `server`'s least recently used pool that is wholly idle (none of its
    /// connections in use or asked for), other than `own`'s, so that its budget permits
    /// come free; `false` if there is none.
    async fn evict_one(&self, server: &Option<Arc<str>>, own: &PlacedKey) -> bool {
        let removed = {
            let mut pools = self
                .pools
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let victim = pools
                .iter()
                .filter(|(k, p)| k.0 == *server && *k != own && p.idle() && p.holds())
                .min_by_key(|(_, p)| p.last_used)
                .map(|(k, _)| k.clone());
            let Some(p) = victim.and_then(|k| pools.remove(&k)) else {
                return false;
            };
            p
        };
        removed.close().await;
        true
    }
}

/// Ends connections taken out of a pool: each ends its own session and is awaited until
/// the server has closed it (its budget permit is given back then), at most a second.
async fn end_sessions(clients: Vec<deadpool_postgres::ClientWrapper>) {
    for client in clients {
        end_session(&client).await;
    }
}

/// Ends `client`'s session on the server and waits (at most a second) until the server
/// has closed it.
async fn end_session(client: &tokio_postgres::Client) {
    let _ = client
        .batch_execute("SELECT pg_terminate_backend(pg_backend_pid())")
        .await;
    until_closed(|| client.is_closed()).await;
}

/// Waits until `closed()` (a session's end seen by its client), polling each millisecond,
/// for at most a second: the server has let its connection and budget permit go then.
pub(crate) async fn until_closed(closed: impl Fn() -> bool) {
    for _ in 0..1000 {
        if closed() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// One server's connection budget: a permit per connection to a placement database there.
struct Budget {
    permits: tokio::sync::Semaphore,
    /// A permit per transaction at work on the server's placement databases, taken once
    /// it holds its connection and kept until it ends (first come, first served across
    /// the server's databases). Sessions stay open up to `permits` (each database keeps
    /// a few ready), but no more of them are busy at once than the control pool has
    /// connections: many databases then share the server's cores as one pool of that
    /// size would. Without it, either one database's requests queue for its own few
    /// connections while another's sit idle (measured: p99 13-18 ms against 6 ms at 32
    /// concurrent requests over 10 databases, a budget of 16), or with a larger budget
    /// forty busy sessions on two cores cost the server more wakeups and preemptions
    /// per request than sixteen (kernel samples +25%).
    at_work: Arc<tokio::sync::Semaphore>,
    /// Its permits in all (one database's pool grows to at most this many).
    total: usize,
    /// Connections waiting for a permit longer than [`STARVING`]. While there are any, a
    /// connection of this server taken out of its pool idle gives its permit up instead
    /// of serving ([`yield_to_waiters`]): busy databases cannot starve another one. (Not
    /// every waiter: most find an idle connection to close within a few milliseconds,
    /// and yielding to them would turn every checkout into a new connection.)
    waiting: std::sync::atomic::AtomicUsize,
}

impl Budget {
    /// `total` sessions, at most `at_work` of them at work at once.
    fn new(total: usize, at_work: usize) -> Budget {
        let total = total.max(1);
        Budget {
            permits: tokio::sync::Semaphore::new(total),
            at_work: Arc::new(tokio::sync::Semaphore::new(at_work.clamp(1, total))),
            total,
            waiting: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

/// How long a connection waits for a budget permit before the server's busy pools give
/// theirs up ([`Budget::waiting`]).
const STARVING: std::time::Duration = std::time::Duration::from_millis(50);

/// Counts a connection starving for a budget permit while it lives.
struct Waiting<'a>(&'a Budget);

impl<'a> Waiting<'a> {
    fn new(b: &'a Budget) -> Self {
        b.waiting.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Waiting(b)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0
            .waiting
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A transaction's permit to work on its server's placement databases
/// ([`Budget::at_work`]).
struct AtWork {
    _permit: tokio::sync::OwnedSemaphorePermit,
}

/// A budget permit held by a connection's task (given back when it ends or is aborted).
struct Permit(Arc<Budget>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.permits.add_permits(1);
    }
}

/// A placement pool's `pre_recycle` hook: an idle connection about to serve again ends
/// its session instead (awaited, so its permit is free when it is gone) while another
/// connection of its server starves for the budget; the pool then makes a new connection,
/// which queues for a permit behind the waiter (first come, first served).
fn yield_to_waiters(budget: Arc<Budget>) -> deadpool_postgres::Hook {
    deadpool_postgres::Hook::async_fn(move |client, _| {
        let budget = budget.clone();
        Box::pin(async move {
            if budget.waiting.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                return Ok(());
            }
            end_session(client).await;
            Err(deadpool_postgres::HookError::message(
                "gave its budget permit to a waiting connection",
            ))
        })
    })
}

/// How a placement database's pool connects: within its server's budget (see [`Placed`]).
struct BudgetConnect {
    placed: std::sync::Weak<Placed>,
    key: PlacedKey,
    budget: Arc<Budget>,
}

impl deadpool_postgres::Connect for BudgetConnect {
    fn connect(
        &self,
        cfg: &tokio_postgres::Config,
    ) -> futures::future::BoxFuture<
        '_,
        std::result::Result<
            (tokio_postgres::Client, tokio::task::JoinHandle<()>),
            tokio_postgres::Error,
        >,
    > {
        let cfg = cfg.clone();
        Box::pin(async move {
            let budget = self.budget.clone();
            match budget.permits.try_acquire() {
                Ok(p) => p.forget(),
                Err(_) => {
                    let since = std::time::Instant::now();
                    let mut starving = None;
                    loop {
                        if starving.is_none() && since.elapsed() >= STARVING {
                            starving = Some(Waiting::new(&budget));
                        }
                        if let Some(placed) = self.placed.upgrade() {
                            // A read lane no flight used for a while goes first (its
                            // database reads on its pool again); once this connection
                            // starves, any lane.
                            let idle = match starving {
                                Some(_) => None,
                                None => Some(STALE_POOL),
                            };
                            let freed = placed.close_lane(&self.key.0, idle).await
                                || placed.evict_one(&self.key.0, &self.key).await;
                            if freed {
                                if let Ok(p) = budget.permits.try_acquire() {
                                    p.forget();
                                    break;
                                }
                            }
                        }
                        // Nothing idle to close: wait for a connection to end (the
                        // caller bounds the wait), looking again for an idle one now
                        // and then.
                        let wait = budget.permits.acquire();
                        if let Ok(Ok(p)) =
                            tokio::time::timeout(std::time::Duration::from_millis(5), wait).await
                        {
                            p.forget();
                            break;
                        }
                    }
                }
            }
            // From here the permit is the connection's: its task gives it back when the
            // server has ended the session (`socket`).
            let permit = Permit(budget);
            let keep = |conn: futures::future::BoxFuture<'static, _>| {
                tokio::spawn(async move {
                    let _permit = permit;
                    let _: std::result::Result<(), tokio_postgres::Error> = conn.await;
                })
            };
            match socket::open(&cfg).await {
                Ok(s) => {
                    let (client, conn) = cfg
                        .connect_raw(socket::UntilServerCloses::new(s), NoTls)
                        .await?;
                    Ok((client, keep(conn.boxed())))
                }
                // No socket: tokio-postgres tries again and says why in its own error.
                Err(_) => {
                    let (client, conn) = cfg.connect(NoTls).await?;
                    Ok((client, keep(conn.boxed())))
                }
            }
        })
    }
}

#[derive(Clone)]
struct PlacedPool {
    pool: Pool,
    shown: Arc<str>,
    last_used: std::time::Instant,
    /// Its read lane (opened while the server's budget has room, see
    /// [`PgDb::placed_lanes`]).
    lanes: Option<Arc<lane::Lanes>>,
}

impl PlacedPool {
    /// No connection of it handed out or waited for, no flight on its read lane.
    fn idle(&self) -> bool {
        let s = self.pool.status();
        s.available == s.size
            && s.waiting == 0
            && self.lanes.as_ref().is_none_or(|l| l.idle_for().is_some())
    }

    /// Whether it holds a session (a connection or its lane's): closing it frees permits.
    fn holds(&self) -> bool {
        self.pool.status().size > 0 || self.lanes.as_ref().is_some_and(|l| l.holds())
    }

    /// Closes it: its idle connections and its lane's sessions end (awaited, so their
    /// permits are free when this returns).
    async fn close(self) {
        let removed = self.pool.retain(|_, _| false).removed;
        self.pool.close();
        end_sessions(removed).await;
        if let Some(l) = self.lanes {
            l.close().await;
        }
    }
}

/// A pool wholly idle this long may be closed to let a busy database grow.
const STALE_POOL: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a transaction waits for room under its server's connection budget.
const BUDGET_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// A placement database's pool unused this long is closed.
const PLACED_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

/// Closes the pools of placement databases idle for [`PLACED_IDLE`], until the handle is
/// gone.
async fn sweep_placed(placed: std::sync::Weak<Placed>) {
    loop {
        tokio::time::sleep(PLACED_IDLE / 4).await;
        let Some(placed) = placed.upgrade() else {
            return;
        };
        let mut ended = Vec::new();
        placed
            .pools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|_, p| {
                let keep = !p.idle() || p.last_used.elapsed() < PLACED_IDLE;
                if !keep {
                    ended.push(p.clone());
                }
                keep
            });
        drop(placed);
        for p in ended {
            p.close().await;
        }
    }
}

/// A pool of at most `size` connections to `cfg` (connections are made on first use).
fn pool_of(cfg: tokio_postgres::Config, size: usize) -> Result<Pool> {
    let mgr = Manager::from_config(
        cfg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(mgr)
        .max_size(size)
        .build()
        .map_err(Error::internal)
}

/// A placement database's pool: like [`pool_of`], each connection within its server's
/// budget ([`BudgetConnect`]).
fn placed_pool_of(
    cfg: tokio_postgres::Config,
    size: usize,
    connect: BudgetConnect,
) -> Result<Pool> {
    let budget = connect.budget.clone();
    let mgr = Manager::from_connect(
        cfg,
        connect,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(mgr)
        .max_size(size)
        .pre_recycle(yield_to_waiters(budget))
        .build()
        .map_err(Error::internal)
}

/// A placement database: (target, database name).
type PlacedKey = (Option<Arc<str>>, Arc<str>);

/// Where a placement database's read on its lane takes a connection if the lane closes
/// before its flight: (the handle, the database, its target).
type Unlaned = (PgDb, Arc<str>, Option<Arc<str>>);

/// Checks that a role name is a plain identifier (it is interpolated into DDL).
pub(crate) fn check_role_name(role: &str) -> Result<()> {
    let ok = !role.is_empty()
        && role.len() <= 63
        && role
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && role
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::Validation(format!("invalid role name {role:?}")))
    }
}

/// Where `url` points, without credentials: `user@host:port/database` (or `host:port/
/// database` without a user), for messages and listings.
pub(crate) fn describe_login(url: &str) -> String {
    match url.parse::<tokio_postgres::Config>() {
        Ok(c) => match c.get_user() {
            Some(u) => format!("{u}@{}", describe_target(url)),
            None => describe_target(url),
        },
        Err(_) => "(invalid URL)".into(),
    }
}

fn describe_target(url: &str) -> String {
    match url.parse::<tokio_postgres::Config>() {
        Ok(c) => {
            let host = c
                .get_hosts()
                .first()
                .map(|h| match h {
                    tokio_postgres::config::Host::Tcp(s) => s.clone(),
                    tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
                })
                .unwrap_or_else(|| "localhost".into());
            let port = c.get_ports().first().copied().unwrap_or(5432);
            let db = c.get_dbname().unwrap_or("(default)");
            format!("{host}:{port}/{db}")
        }
        Err(_) => "(invalid URL)".into(),
    }
}

pub(crate) fn connect_error(url: &str, e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!(
        "cannot connect to PostgreSQL at {}: {e}",
        describe_target(url)
    ))
}

impl PgDb {
    pub(crate) async fn open(
        url: &str,
        app_role: &str,
        pool_size: usize,
        placement_budget: usize,
    ) -> Result<PgDb> {
        check_role_name(app_role)?;
        let cfg: tokio_postgres::Config = url
            .parse()
            .map_err(|e| Error::Validation(format!("invalid database URL: {e}")))?;
        // Lanes connect as the pool does, but to the first server that answers: not with
        // a URL that needs a particular kind of server (`target_session_attrs`), nor one
        // without a user.
        let plain = cfg.get_target_session_attrs()
            == tokio_postgres::config::TargetSessionAttrs::Any
            && cfg.get_user().is_some();
        let lanes = match plain {
            true => read_lanes(pool_size.max(1)),
            false => 0,
        };
        let lane_set =
            (lanes > 0).then(|| Arc::new(lane::Lanes::new(cfg.clone(), url.into(), lanes)));
        let pool = pool_of(cfg, pool_size.max(1) - lanes)?;
        // Fail now, with a clear line, if the server is not there.
        let conn = pool.get().await.map_err(|e| connect_error(url, e))?;
        let control: String = conn
            .query_one("SELECT coalesce(current_schema(), 'public')::text", &[])
            .await
            .map_err(map_err)?
            .get(0);
        drop(conn);
        Ok(PgDb {
            pool,
            app_role: app_role.into(),
            url: url.into(),
            placed: {
                // A quarter of the control pool per database (at least 2), never more
                // than the whole budget of its server (see `grow`).
                let budget = placement_budget.max(1);
                let size = pool_size.div_ceil(4).max(2);
                let placed = Arc::new(Placed {
                    pools: std::sync::Mutex::default(),
                    logins: std::sync::Mutex::default(),
                    budgets: std::sync::Mutex::default(),
                    size,
                    budget,
                    at_work: pool_size.max(1),
                    lanes: usize::from(lanes > 0),
                });
                tokio::spawn(sweep_placed(Arc::downgrade(&placed)));
                placed
            },
            control: crate::migrate::quote_ident(&control).into(),
            lanes: lane_set,
        })
    }

    /// The login URL (the access cache's listener connects with it).
    pub(crate) fn url(&self) -> Arc<str> {
        self.url.clone()
    }

    /// (connections allowed, connections in use).
    pub(crate) fn pool_status(&self) -> (usize, usize) {
        let st = self.pool.status();
        (st.max_size, st.size.saturating_sub(st.available))
    }

    /// A direct connection as the login (migrations, doctor, tests).
    pub(crate) async fn owner_client(&self) -> Result<tokio_postgres::Client> {
        let (client, conn) = tokio_postgres::connect(&self.url, NoTls)
            .await
            .map_err(|e| connect_error(&self.url, e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "owner connection closed");
            }
        });
        Ok(client)
    }

    pub(crate) async fn begin(&self, mode: Mode, settings: Settings) -> Result<PgTx> {
        if Self::laned(mode, &settings) && self.lanes.is_some() {
            return Ok(self.unconnected(mode, settings, None));
        }
        let obj = self
            .pool
            .get()
            .await
            .map_err(|e| connect_error(&self.url, e))?;
        Ok(self.unconnected(mode, settings, Some(obj)))
    }

    /// Whether a transaction goes on the read lanes: a one-flight read.
    fn laned(mode: Mode, settings: &Settings) -> bool {
        mode == Mode::Read && settings.once
    }

    /// A transaction that borrows its connection when it first sends something (the
    /// control transaction beside a mirrored read, which may send nothing).
    pub(crate) fn begin_lazy(&self, mode: Mode, settings: Settings) -> PgTx {
        self.unconnected(mode, settings, None)
    }

    fn unconnected(&self, mode: Mode, settings: Settings, obj: Option<Object>) -> PgTx {
        PgTx {
            obj,
            _at_work: None,
            lanes: match Self::laned(mode, &settings) {
                true => self.lanes.clone(),
                false => None,
            },
            unlaned: None,
            pool: self.pool.clone(),
            schema: schema_of(&settings.route),
            fence: true,
            mirror: false,
            mirrors: match mode {
                Mode::Write => Some(self.clone()),
                Mode::Read => None,
            },
            pending: Some(settings),
            mode,
            role: self.app_role.clone(),
            control: self.control.clone(),
            used: false,
            done: false,
            broken: std::sync::atomic::AtomicBool::new(false),
            fenced: std::sync::atomic::AtomicBool::new(false),
            checked: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The owner login of `target` (or the control server), read once per handle.
    async fn placed_login(&self, target: Option<&Arc<str>>) -> Result<placement::Login> {
        let key = target.cloned();
        if let Some(l) = self
            .placed
            .logins
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
        {
            return Ok(l.clone());
        }
        let control = self.owner_client().await?;
        let login = self.server_login(&control, target.map(|t| &**t)).await?;
        self.placed
            .logins
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, login.clone());
        Ok(login)
    }

    /// The pool of placement database `name` on `target` (or the control server), with
    /// how that database is shown (`user@host:port/name`, no password) and its read lane,
    /// within the server's connection budget (see [`Placed`]).
    async fn placed_pool(&self, name: &Arc<str>, target: Option<&Arc<str>>) -> Result<PlacedPool> {
        if !crate::placement::is_database_name(name) {
            return Err(Error::Internal(format!(
                "{name:?} is not a placement database name"
            )));
        }
        let key: PlacedKey = (target.cloned(), name.clone());
        let placed = &self.placed;
        let found = |pools: &mut std::collections::HashMap<PlacedKey, PlacedPool>| {
            pools.get_mut(&key).map(|p| {
                p.last_used = std::time::Instant::now();
                p.clone()
            })
        };
        if let Some(f) = found(
            &mut placed
                .pools
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        ) {
            return Ok(f);
        }
        let login = self.placed_login(target).await?;
        let mut pools = placed
            .pools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(f) = found(&mut pools) {
            return Ok(f);
        }
        let mut cfg = login.cfg;
        cfg.dbname(&**name);
        let shown: Arc<str> = match login.shown.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}").into(),
            None => name.clone(),
        };
        let connect = BudgetConnect {
            placed: Arc::downgrade(placed),
            key: key.clone(),
            budget: placed.budget_of(&key.0, login.budget),
        };
        let lanes = (placed.lanes > 0).then(|| {
            Arc::new(lane::Lanes::budgeted(
                cfg.clone(),
                shown.clone(),
                placed.lanes,
            ))
        });
        // One connection to start with; more while the budget has room ([`grow`]).
        let p = PlacedPool {
            pool: placed_pool_of(cfg, 1, connect)?,
            shown,
            last_used: std::time::Instant::now(),
            lanes,
        };
        pools.insert(key, p.clone());
        Ok(p)
    }

    /// The read lane of placement database `p` (`key`), if it has one live or can open
    /// one now: with a permit of its server's budget that is free, or else one that an
    /// idle connection of its own pool gives up (a read on the lane needs no pooled
    /// connection). Never by waiting or by closing another database's sessions: a
    /// database whose lane cannot open reads on its pool, as without lanes. (So with
    /// many more databases than the budget, as at 1,000 databases, reads stay on pools.)
    async fn placed_lanes(&self, key: &PlacedKey, p: &PlacedPool) -> Option<Arc<lane::Lanes>> {
        let lanes = p.lanes.as_ref()?;
        if lanes.usable() {
            return Some(lanes.clone());
        }
        let budget = self.placed.budget_of(&key.0, None);
        if budget.total < MIN_POOL_FOR_LANES
            || budget.waiting.load(std::sync::atomic::Ordering::SeqCst) > 0
        {
            // Too small a budget to give a session to reads alone, or a connection is
            // starving for it.
            return None;
        }
        let pool = p.pool.clone();
        let permit = || async move {
            let take = |b: &Arc<Budget>| {
                b.permits.try_acquire().ok().map(|p| {
                    p.forget();
                    Box::new(Permit(b.clone())) as Box<dyn Send>
                })
            };
            if let Some(p) = take(&budget) {
                return Some(p);
            }
            // One idle connection of its own ends, and its permit is taken at once (a
            // connection waiting for a permit may take it first: then no lane).
            let mut one = true;
            let removed = pool
                .retain(|_, _| !std::mem::replace(&mut one, false))
                .removed;
            if removed.is_empty() {
                return None;
            }
            end_sessions(removed).await;
            take(&budget)
        };
        lanes.open_with(permit).await.then(|| lanes.clone())
    }

    /// Opens a transaction on `org`'s placement database (its data plane; see
    /// [`crate::placement::Route::Database`]): the same role and scope settings as the
    /// control transaction beside it. A transaction from a scope built from cached access
    /// with the org as its only dependency (an API key's) checks it against the database's
    /// access mirror in its own first flight ([`MIRRORED`]), a write taking its org's write
    /// fence there too: one transaction on one database, as for an org in the shared
    /// tables (unless the control transaction's first flight goes first, see
    /// [`PgTx::unmirror`]). Any other keeps no check (the control transaction beside it
    /// carries it).
    ///
    /// A one-flight read goes on the database's read lane where it has one
    /// ([`PgDb::placed_lanes`]), holding no pooled connection.
    pub(crate) async fn begin_placed(
        &self,
        name: &Arc<str>,
        target: Option<&Arc<str>>,
        mode: Mode,
        settings: Settings,
    ) -> Result<PgTx> {
        let (mut laned, mut found) = (None, None);
        if Self::laned(mode, &settings) && self.placed.lanes > 0 {
            let p = self.placed_pool(name, target).await?;
            let key: PlacedKey = (target.cloned(), name.clone());
            match self.placed_lanes(&key, &p).await {
                Some(lanes) => laned = Some((p.pool, lanes)),
                None => found = Some(p),
            }
        }
        let (pool, obj, at_work, lanes, unlaned) = match laned {
            Some((pool, lanes)) => {
                let unlaned = Box::new((self.clone(), name.clone(), target.cloned()));
                (pool, None, None, Some(lanes), Some(unlaned))
            }
            None => {
                let (pool, obj, at_work) = self.placed_connection(name, target, found).await?;
                (pool, Some(obj), Some(at_work), None, None)
            }
        };
        let mirror = mirrorable(&settings);
        Ok(PgTx {
            obj,
            _at_work: at_work,
            lanes,
            unlaned,
            pool,
            pending: Some(Settings {
                checks: match mirror {
                    true => settings.checks.clone(),
                    false => Vec::new(),
                },
                ..settings
            }),
            mode,
            role: self.app_role.clone(),
            control: "public".into(),
            schema: None,
            fence: false,
            mirror,
            mirrors: None,
            used: false,
            done: false,
            broken: std::sync::atomic::AtomicBool::new(false),
            fenced: std::sync::atomic::AtomicBool::new(false),
            checked: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Writes `org`'s access generation `gen` (committed on the control plane) into the
    /// access mirror of its placement database `name` on `target`, unless the mirror holds
    /// a later one already (see [`MIRRORED`]).
    pub(crate) async fn mirror_generation(
        &self,
        org: uuid::Uuid,
        name: &Arc<str>,
        target: Option<&Arc<str>>,
        gen: i64,
    ) -> Result<()> {
        let (_, obj, _at_work) = self.placed_connection(name, target, None).await?;
        let r = obj
            .execute(MIRROR_SQL, &[&org, &gen])
            .await
            .map_err(map_err);
        if r.is_err() {
            drop(Object::take(obj));
        }
        r.map(drop)
    }

    /// A connection to placement database `name` on `target`, within its server's budget,
    /// and its permit to work there ([`Budget::at_work`]). `found`: its pool, if the
    /// caller has just looked it up.
    async fn placed_connection(
        &self,
        name: &Arc<str>,
        target: Option<&Arc<str>>,
        mut found: Option<PlacedPool>,
    ) -> Result<(Pool, Object, AtWork)> {
        let since = std::time::Instant::now();
        let busy = || {
            Error::Unavailable(format!(
                "the connection budget for placement databases on {} is in use; retry",
                target.map_or("the control server", |t| &**t)
            ))
        };
        let key: PlacedKey = (target.cloned(), name.clone());
        // A pool closed by the budget between finding it and taking a connection from it
        // is found again (made anew).
        let mut tries = 0;
        let (pool, obj) = loop {
            let PlacedPool { pool, shown, .. } = match found.take() {
                Some(p) => p,
                None => self.placed_pool(name, target).await?,
            };
            self.placed.grow(&key, &pool);
            let got =
                tokio::time::timeout(BUDGET_WAIT.saturating_sub(since.elapsed()), pool.get()).await;
            match got {
                Ok(Ok(obj)) => break (pool, obj),
                Ok(Err(deadpool_postgres::PoolError::Closed)) if tries < 3 => tries += 1,
                Ok(Err(e)) => {
                    return Err(Error::Unavailable(format!(
                        "cannot connect to PostgreSQL at {shown}: {e}"
                    )))
                }
                Err(_) => return Err(busy()),
            }
        };
        let at_work = self.placed.budget_of(&key.0, None).at_work.clone();
        let permit = tokio::time::timeout(
            BUDGET_WAIT.saturating_sub(since.elapsed()),
            at_work.acquire_owned(),
        )
        .await
        .map_err(|_| busy())?
        .map_err(Error::internal)?;
        Ok((pool, obj, AtWork { _permit: permit }))
    }

    pub(crate) async fn migrate(
        &self,
        catalog: &Catalog,
        progress: walls::Progress<'_>,
    ) -> Result<crate::migrate::Report> {
        let mut client = self.owner_client().await?;
        walls::migrate(&mut client, &self.url, &self.app_role, catalog, progress).await
    }

    pub(crate) async fn place(
        &self,
        catalog: &Catalog,
        org: orgwall_core::OrgId,
        kind: crate::placement::Kind,
    ) -> Result<crate::placement::Route> {
        let mut client = self.owner_client().await?;
        placement::place(&mut client, &self.url, &self.app_role, catalog, org, kind).await
    }

    pub(crate) async fn start_move(
        &self,
        org: orgwall_core::OrgId,
        kind: crate::placement::Kind,
    ) -> Result<crate::placement::Move> {
        let mut client = self.owner_client().await?;
        mover::start(&mut client, &self.url, org, kind).await
    }

    pub(crate) async fn run_move(
        &self,
        catalog: &Catalog,
        org: orgwall_core::OrgId,
        opts: crate::placement::MoveOptions,
        progress: &(dyn Fn(&crate::placement::Move) + Sync),
    ) -> Result<crate::placement::Route> {
        mover::run(&self.url, &self.app_role, catalog, org, opts, progress).await
    }

    pub(crate) async fn abort_move(
        &self,
        catalog: &Catalog,
        org: orgwall_core::OrgId,
        opts: crate::placement::MoveOptions,
    ) -> Result<bool> {
        mover::abort(&self.url, &self.app_role, catalog, org, opts).await
    }

    pub(crate) async fn moves(&self) -> Result<Vec<crate::placement::Move>> {
        mover::list(&self.owner_client().await?).await
    }

    /// The owner login of `target` (a registered target) or of the control server.
    async fn server_login(
        &self,
        control: &tokio_postgres::Client,
        target: Option<&str>,
    ) -> Result<placement::Login> {
        placement::server_login(control, &self.url, target).await
    }

    pub(crate) async fn provision_database(
        &self,
        catalog: &Catalog,
        org: orgwall_core::OrgId,
        target: Option<&str>,
    ) -> Result<crate::placement::DatabasePlacement> {
        let mut control = self.owner_client().await?;
        let server = self.server_login(&control, target).await?;
        // The org's members, read inside its scope (forced RLS binds the owner too).
        let tx = control.transaction().await.map_err(map_err)?;
        tx.execute(
            "SELECT set_config('app.org_id', $1, true)",
            &[&org.to_string()],
        )
        .await
        .map_err(map_err)?;
        if tx
            .query_opt("SELECT 1 FROM orgs WHERE id = $1", &[&org.uuid()])
            .await
            .map_err(map_err)?
            .is_none()
        {
            return Err(Error::Validation(format!("no organization {org}")));
        }
        let members: Vec<uuid::Uuid> = tx
            .query(
                "SELECT user_id FROM memberships WHERE org_id = $1 ORDER BY user_id",
                &[&org.uuid()],
            )
            .await
            .map_err(map_err)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        tx.rollback().await.map_err(map_err)?;
        let name = crate::placement::database_name(org);
        // An org is placed while it is empty: the users its rows may name are its members.
        let projection = placement::Projection {
            org,
            users: members.clone(),
            members,
            mirror: placement::control_generation(&control, org).await?,
        };
        placement::provision_database(&server, &name, &self.app_role, catalog, &projection).await?;
        Ok(crate::placement::DatabasePlacement {
            database: name,
            target: target.map(str::to_owned),
            shown: server.shown,
        })
    }

    pub(crate) async fn drop_placement_database(
        &self,
        org: orgwall_core::OrgId,
        target: Option<&str>,
    ) -> Result<()> {
        let control = self.owner_client().await?;
        let server = self.server_login(&control, target).await?;
        let name = crate::placement::database_name(org);
        // This instance's connections to it go first (the drop ends every session).
        let key: PlacedKey = (target.map(Into::into), name.as_str().into());
        let p = self
            .placed
            .pools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&key);
        if let Some(p) = p {
            p.close().await;
        }
        placement::drop_database(&server, &name).await
    }

    /// Drops `org`'s placement schema, if it exists (see [`placement::drop_schema`]).
    pub(crate) async fn drop_placement_schema(&self, org: orgwall_core::OrgId) -> Result<()> {
        let mut control = self.owner_client().await?;
        placement::drop_schema(&mut control, &crate::placement::schema_name(org)).await
    }

    pub(crate) async fn add_target(
        &self,
        name: &str,
        url: &str,
        max_connections: Option<u32>,
    ) -> Result<crate::placement::Target> {
        let client = self.owner_client().await?;
        placement::add_target(&client, name, url, max_connections).await
    }

    pub(crate) async fn set_target_budget(
        &self,
        name: &str,
        max_connections: Option<u32>,
    ) -> Result<crate::placement::Target> {
        let client = self.owner_client().await?;
        placement::set_target_budget(&client, name, max_connections).await
    }

    pub(crate) async fn targets(&self) -> Result<Vec<crate::placement::Target>> {
        let client = self.owner_client().await?;
        placement::targets(&client).await
    }

    pub(crate) async fn remove_target(&self, name: &str) -> Result<()> {
        let client = self.owner_client().await?;
        placement::remove_target(&client, name).await
    }

    pub(crate) async fn database_versions(
        &self,
        name: &str,
        target: Option<&str>,
    ) -> Result<(Vec<(String, i64)>, i64)> {
        let control = self.owner_client().await?;
        let login = self.server_login(&control, target).await?;
        let client = login.connect_db(name).await?;
        placement::versions(&client, None).await
    }

    pub(crate) async fn placement_versions(
        &self,
        schema: &str,
    ) -> Result<(Vec<(String, i64)>, i64)> {
        let client = self.owner_client().await?;
        placement::versions(&client, Some(schema)).await
    }

    pub(crate) async fn doctor(&self, catalog: &Catalog) -> Result<Vec<crate::doctor::Violation>> {
        let client = self.owner_client().await?;
        doctor::check(&client, &self.url, &self.app_role, catalog).await
    }
}

#[derive(Clone, Copy)]
enum Op {
    Query,
    Execute,
}

enum Out {
    Rows(Vec<tokio_postgres::Row>),
    /// A read lane's rows, decoded already.
    Lane(Vec<Row>),
    Count(u64),
}

pub(crate) struct PgTx {
    obj: Option<Object>,
    /// A one-flight read: its flight goes on a read lane of its database (the control
    /// one's or its org's own), one implicit transaction with its prelude (see [`lane`]);
    /// it never holds `obj`, unless its placement database's lane closed before its
    /// flight ([`PgTx::unlane`]).
    lanes: Option<Arc<lane::Lanes>>,
    /// A placement database's read on its lane: where it takes a connection if the lane
    /// closes before its flight (the handle, the database, its target), within the
    /// budget as any transaction there ([`PgDb::placed_connection`]).
    unlaned: Option<Box<Unlaned>>,
    /// On a placement database: its permit to work there, given back with the connection
    /// (also when it gives the connection back to borrow one again).
    _at_work: Option<AtWork>,
    /// Where a transaction whose first flight found its scope stale borrows its next
    /// connection (it gives its own back while the scope is verified again, so verifying
    /// never waits for a connection it holds).
    pool: Pool,
    /// BEGIN and the scope prelude not yet sent: they go out with the first statement.
    pending: Option<Settings>,
    /// READ ONLY or read-write (BEGIN says which; a read's COMMIT is not awaited).
    mode: Mode,
    role: Arc<str>,
    /// The control schema (quoted), second on a placement schema's search path.
    control: Arc<str>,
    /// The placement schema on its search path, if any: its statements are prepared under
    /// names of their own (see [`PgTx::prepare`]).
    schema: Option<Arc<str>>,
    /// A control transaction: an org-scoped write takes the org's write fence (see
    /// [`FENCE_SQL`]), unless its org's own database's transaction took the fence there
    /// first ([`PgTx::unfence`]); a placement database's transaction does not.
    fence: bool,
    /// A transaction on an org's own database whose first flight checks the scope against
    /// that database's access mirror (see [`MIRRORED`]); else its control transaction
    /// carries the check. A write so checked takes its org's write fence in that
    /// database, in the same flight (see [`PgTx::flight`]).
    mirror: bool,
    /// A control write: what its commit must tell the placement databases whose orgs'
    /// access it changed (see [`PgTx::commit`]).
    mirrors: Option<PgDb>,
    /// Whether it ran a statement other than a bare `SELECT 1` (the control transaction
    /// of a write to an org in a database of its own sends only that, beside its fence and
    /// prelude, unless it writes to the control plane too).
    used: bool,
    done: bool,
    /// The connection failed under this transaction (the server went away): it is not
    /// given back to the pool, whose quick check could still see it open.
    broken: std::sync::atomic::AtomicBool,
    /// Its first flight was granted the org's write fence (answered, whatever its
    /// statements answered after it): see [`PgTx::fence_taken`].
    fenced: std::sync::atomic::AtomicBool,
    /// Its first flight's access check passed: see [`PgTx::check_passed`].
    checked: std::sync::atomic::AtomicBool,
}

fn prelude_params(role: &str, s: &Settings) -> [String; 5] {
    [
        role.to_owned(),
        s.org.map(|o| o.to_string()).unwrap_or_default(),
        s.user.map(|u| u.to_string()).unwrap_or_default(),
        s.lookup.clone().unwrap_or_default(),
        s.system.unwrap_or_default().to_owned(),
    ]
}

/// The prelude's parameters as the driver takes them.
struct PreludeParams {
    text: [String; 5],
    /// The (dependency, generation) pairs to check: none, the org, or the org and a
    /// session's user.
    checks: Vec<(uuid::Uuid, i64)>,
    /// The search path of an org placed in a schema of its own.
    path: Option<String>,
    /// The check reads the org's own database's mirror (see [`MIRRORED`]).
    mirror: bool,
}

impl PreludeParams {
    fn new(role: &str, control: &str, s: &Settings, mirror: bool) -> Result<Self> {
        // A scope depends on its org and, through a session, on its user: never more (a
        // check dropped here would serve revoked access, so more is refused, not cut).
        if s.checks.len() >= PRELUDES.len() {
            return Err(Error::Internal(format!(
                "{} access dependencies, at most {} are checked",
                s.checks.len(),
                PRELUDES.len() - 1
            )));
        }
        let path = match &s.route {
            crate::placement::Route::Shared => None,
            // Checked when read from the directory: `org_` and 32 hex digits.
            crate::placement::Route::Schema(schema) => Some(format!("{schema}, {control}")),
            // Its own database: the data plane's tables are the database's own.
            crate::placement::Route::Database { .. } => None,
        };
        Ok(PreludeParams {
            text: prelude_params(role, s),
            checks: s.checks.clone(),
            path,
            mirror,
        })
    }

    /// The prelude to send with these parameters.
    fn sql(&self) -> Result<&'static str> {
        if self.mirror && !self.checks.is_empty() {
            return match (self.checks.len(), &self.path) {
                (1, None) => Ok(MIRRORED),
                _ => Err(Error::Internal(
                    "a mirrored check is one dependency, unrouted".into(),
                )),
            };
        }
        PRELUDES
            .get(self.checks.len())
            .and_then(|by_route| by_route.get(usize::from(self.path.is_some())))
            .copied()
            .ok_or_else(|| Error::Internal("no prelude for these settings".into()))
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        let mut v: Vec<&(dyn ToSql + Sync)> =
            self.text.iter().map(|s| s as &(dyn ToSql + Sync)).collect();
        for (dep, gen) in &self.checks {
            v.push(dep);
            v.push(gen);
        }
        if let Some(p) = &self.path {
            v.push(p);
        }
        v
    }

    /// Whether the prelude's answer says the scope is stale.
    fn stale(&self, row: &tokio_postgres::Row) -> Result<bool> {
        if self.checks.is_empty() {
            return Ok(false);
        }
        row.try_get(5).map_err(map_err)
    }
}

fn refs(params: &[Val]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

/// An org's write fence: every org-scoped write transaction on the control database takes
/// it shared (in its first flight, before its prelude), or one in the org's own database
/// takes it there (see [`PgTx::flight`]); whoever must stop the org's writes for a moment
/// (placing it, moving it) takes it exclusive in a transaction (in both databases for an
/// org in one of its own, the control database's first), so writes
/// already running finish first and new ones wait (they do not fail) until that
/// transaction ends. Keyed by the org (`hashtext` of its id; a collision only makes two
/// orgs wait for each other).
pub(crate) const FENCE_SQL: &str = "SELECT pg_advisory_xact_lock_shared(7270002, hashtext($1))";

/// The fence taken exclusive (see [`FENCE_SQL`]).
pub(crate) const FENCE_EXCLUSIVE_SQL: &str = "SELECT pg_advisory_xact_lock(7270002, hashtext($1))";

/// The access mirrors a committed control write must raise (see [`PgTx::commit_deferred`]).
pub(crate) struct MirrorWrites {
    db: PgDb,
    bumps: Vec<Bump>,
}

/// An org whose access generation a committed write bumped: (the org, its database, the
/// database's target, the org's generation now).
type Bump = (uuid::Uuid, Arc<str>, Option<Arc<str>>, i64);

impl MirrorWrites {
    /// Writes each org's generation into its database's access mirror, before the change
    /// is answered: from then on no instance serves a read there from a scope built before
    /// it (see [`MIRRORED`]). If a mirror cannot be written, the change stands (committed)
    /// and is answered 503: other instances hear of it from the control plane's
    /// announcement instead, a moment later.
    pub(crate) async fn write(self) -> Result<()> {
        for (org, name, target, gen) in &self.bumps {
            if let Err(e) = self
                .db
                .mirror_generation(*org, name, target.as_ref(), *gen)
                .await
            {
                tracing::warn!(org_id = %org, error = %e, "an access change committed, but its org's database could not mirror it");
                return Err(Error::Unavailable(format!(
                    "the change was saved, but organization {org}'s own database could not be told of it ({e}); other instances learn of it within moments"
                )));
            }
        }
        Ok(())
    }
}

/// Whether a transaction on an org's own database with `settings` checks its scope against
/// the database's access mirror (see [`PgDb::begin_placed`]): a scope with one dependency,
/// its org (an API key's, a member's without a session). A write so checked fences
/// itself in that database, unless its control transaction's first flight goes first
/// ([`PgTx::unmirror`]).
pub(crate) fn mirrorable(settings: &Settings) -> bool {
    matches!((settings.checks.as_slice(), settings.org), ([(dep, _)], Some(org)) if *dep == org.uuid())
}

/// Raises an org's generation in its placement database's access mirror (`$1` the org,
/// `$2` a generation the control plane committed): never lowered, so writes of two
/// changes arriving out of order leave the later one.
pub(crate) const MIRROR_SQL: &str = "INSERT INTO access_mirror AS m (dep, gen) VALUES ($1, $2)
     ON CONFLICT (dep) DO UPDATE SET gen = greatest(m.gen, excluded.gen)";

/// Read by a control write just before its COMMIT (same flight): the orgs in databases of
/// their own whose access generation it bumped (the access trigger notes them in
/// `orgwall.bumped`), where they are, and their generation now (this transaction's).
const BUMPED_SQL: &str = "SELECT pl.org_id, pl.location, pl.target, g.gen FROM placements pl
     JOIN access_generations g ON g.dep = pl.org_id
     WHERE pl.kind = 'database'
       AND pl.org_id = ANY (string_to_array(nullif(current_setting('orgwall.bumped', true), ''), ',')::uuid[])";

/// The statement a control transaction sends when it has nothing of its own to send
/// beside a check (its first flight carries the check, the fence and the route).
pub(crate) const BARE: &str = "SELECT 1";

/// Where the directory places an org, read by a write after the fence.
const ROUTE_SQL: &str = "SELECT kind, location, target FROM placements WHERE org_id = $1";

/// How a transaction's first flight is sent.
#[derive(Clone, Copy)]
struct Flight<'a> {
    role: &'a str,
    control: &'a str,
    mode: Mode,
    fence: bool,
    mirror: bool,
    /// Set once the fence is granted.
    fenced: &'a std::sync::atomic::AtomicBool,
    /// Set once the access check passed.
    checked: &'a std::sync::atomic::AtomicBool,
}

impl<'a> Flight<'a> {
    fn of(tx: &'a PgTx) -> Flight<'a> {
        Flight {
            role: &tx.role,
            control: &tx.control,
            mode: tx.mode,
            fence: tx.fence,
            mirror: tx.mirror,
            fenced: &tx.fenced,
            checked: &tx.checked,
        }
    }
}

/// A first flight's directory read (pooled or on a lane): the org must still be where the
/// scope routed it. If not, it is refused as a stale scope: the scope is verified again
/// (its route read afresh) and the flight sent again, or the request is.
fn same_route(settings: &Settings, now: &crate::placement::Route) -> Result<()> {
    match *now == settings.route {
        true => Ok(()),
        false => Err(Error::Refused(
            crate::db::STALE,
            "the organization's placement changed".into(),
        )),
    }
}

/// A first flight's access check (pooled or on a lane): `stale` as its prelude answered.
/// A scope whose cached access changed in the database is refused as stale; one checked
/// and current is noted in `checked` ([`PgTx::check_passed`]).
fn access_current(
    settings: &Settings,
    stale: bool,
    checked: &std::sync::atomic::AtomicBool,
) -> Result<()> {
    if stale {
        return Err(Error::Refused(
            crate::db::STALE,
            "the cached access of this scope changed".into(),
        ));
    }
    if !settings.checks.is_empty() {
        checked.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(())
}

/// The placement schema a route puts on the search path.
fn schema_of(route: &crate::placement::Route) -> Option<Arc<str>> {
    match route {
        crate::placement::Route::Schema(s) => Some(s.clone()),
        _ => None,
    }
}

/// How many statements one connection keeps prepared before it forgets them all (only
/// reached with many placement schemas: each prepares its statements under names of its
/// own).
const STATEMENTS_PER_CONNECTION: usize = 2_000;

impl PgTx {
    /// Prepares `sql` on this connection once and reuses it. A placement schema's
    /// transaction prepares it under a name of its own (the schema in a leading comment):
    /// PostgreSQL re-plans a prepared statement whenever it runs under another search path
    /// than it was planned for, so one statement shared by the shared tables and several
    /// schemas was re-planned on nearly every use; one per schema keeps its plan. A
    /// connection holding more than [`STATEMENTS_PER_CONNECTION`] forgets them all.
    async fn prepare(&self, obj: &Object, sql: &str) -> Result<tokio_postgres::Statement> {
        if self.schema.is_none() {
            return obj.prepare_cached(sql).await.map_err(map_err);
        }
        if obj.statement_cache.size() > STATEMENTS_PER_CONNECTION {
            obj.statement_cache.clear();
        }
        obj.prepare_cached(&self.named(sql)).await.map_err(map_err)
    }

    /// The name `sql` is prepared under: a placement schema's transaction's own (the
    /// schema in a leading comment), else itself.
    fn named<'s>(&self, sql: &'s str) -> std::borrow::Cow<'s, str> {
        match &self.schema {
            Some(schema) => format!("/* {schema} */ {sql}").into(),
            None => sql.into(),
        }
    }

    /// Sends `stmts` as the flight of a one-flight read, on a read lane: the prelude (with
    /// its checks and, for an unchecked routed scope, the directory read, as any first
    /// flight), then the statements, one implicit transaction. Each statement's rows and
    /// count. A second flight is refused: between two flights a lane holds no transaction
    /// (a move's cleanup could not wait for the reader, who could see a partial org).
    async fn lane_flight(&mut self, stmts: &[(&str, &[Val])]) -> Result<Vec<(Vec<Row>, u64)>> {
        let lanes = self
            .lanes
            .clone()
            .ok_or_else(|| Error::Internal("not a lane transaction".into()))?;
        if self.done {
            return Err(Error::Internal("transaction already finished".into()));
        }
        let Some(settings) = self.pending.take() else {
            return Err(Error::Internal(
                "a one-flight read sent a second flight".into(),
            ));
        };
        let (r, sent) = self.lane_flight_once(&lanes, &settings, stmts).await;
        if !sent {
            // Nothing reached the server (a statement that does not compile): the flight
            // is still to send, as a pooled transaction's BEGIN and prelude stay pending.
            self.pending = Some(settings);
            return r;
        }
        self.restart_if_stale(&r, Some(settings));
        r
    }

    /// A lane flight's rows and counts, and whether anything of it was sent.
    async fn lane_flight_once(
        &self,
        lanes: &lane::Lanes,
        settings: &Settings,
        stmts: &[(&str, &[Val])],
    ) -> (Result<Vec<(Vec<Row>, u64)>>, bool) {
        let pp = match PreludeParams::new(&self.role, &self.control, settings, self.mirror) {
            Ok(pp) => pp,
            Err(e) => return (Err(e), false),
        };
        let prelude = match pp.sql() {
            Ok(sql) => lane_prelude(sql),
            Err(e) => return (Err(e), false),
        };
        let pr = pp.refs();
        let route = match settings.org {
            Some(org) if self.fence && settings.routed && settings.checks.is_empty() => {
                Some(org.uuid())
            }
            _ => None,
        };
        let route_params: Vec<&(dyn ToSql + Sync)> = route.iter().map(|u| u as _).collect();
        // Read after the prelude (a lane runs nothing before it), so named in the control
        // schema: an org's schema first on the search path holds no directory. Built only
        // for a flight that reads it.
        let route_sql = route.map(|_| {
            format!(
                "SELECT kind, location, target FROM {}.placements WHERE org_id = $1",
                self.control
            )
        });
        let names: Vec<_> = stmts.iter().map(|(sql, _)| self.named(sql)).collect();
        let params: Vec<Vec<&(dyn ToSql + Sync)>> = stmts.iter().map(|(_, p)| refs(p)).collect();
        let mut all: Vec<lane::Stmt<'_>> = Vec::with_capacity(stmts.len() + 1);
        if let Some(sql) = &route_sql {
            all.push((sql, &route_params));
        }
        all.extend(
            names
                .iter()
                .map(|n| n.as_ref())
                .zip(params.iter().map(Vec::as_slice)),
        );
        match lanes.flight((prelude, &pr), &all).await {
            lane::Flown::Unsent(e) => (Err(e), false),
            lane::Flown::Sent(Err(e)) => (Err(e), true),
            lane::Flown::Sent(Ok(answers)) => (
                self.lane_answers(settings, route.is_some(), answers, stmts.len()),
                true,
            ),
        }
    }

    /// A lane flight's answers, checked as [`PgTx::flight`] checks a first flight's: the
    /// directory's route (if read) and the scope's access check (if any).
    fn lane_answers(
        &self,
        settings: &Settings,
        routed: bool,
        answers: Vec<lane::Answer>,
        n: usize,
    ) -> Result<Vec<(Vec<Row>, u64)>> {
        let mut answers = answers.into_iter();
        let mut next = || -> Result<(Vec<Row>, u64)> {
            match answers.next() {
                Some(lane::Answer::Done(rows, n)) => Ok((rows, n)),
                Some(lane::Answer::Failed(e)) => Err(e),
                Some(lane::Answer::Skipped) | None => Err(Error::Internal(
                    "a statement of a lane flight did not run".into(),
                )),
            }
        };
        let (prelude_rows, _) = next()?;
        if routed {
            let (rows, _) = next()?;
            let now = match rows.first() {
                Some(r) => {
                    crate::placement::Route::from_parts(&r.get::<String>(0)?, r.get(1)?, r.get(2)?)?
                }
                None => crate::placement::Route::Shared,
            };
            same_route(settings, &now)?;
        }
        let stale = match settings.checks.is_empty() {
            true => false,
            false => prelude_rows
                .first()
                .ok_or_else(|| Error::Internal("the prelude answered no row".into()))?
                .get(5)?,
        };
        access_current(settings, stale, &self.checked)?;
        (0..n).map(|_| next()).collect()
    }

    /// Gives its connection back to the pool while nothing was sent on it (BEGIN not
    /// either): the control transaction beside a mirrored read (which may never send
    /// anything), or one whose scope is verified again (which needs a connection of that
    /// pool). Its next statement borrows one again ([`PgTx::connect`]).
    pub(crate) fn release_unsent(&mut self) {
        if self.pending.is_some() {
            self.obj = None;
            self._at_work = None;
        }
    }

    /// Borrows a connection again after [`PgTx::release_unsent`].
    async fn connect(&mut self) -> Result<()> {
        if self.pending.is_none() {
            return Ok(());
        }
        if self.obj.is_none() && self.lanes.is_none() {
            if let Some(placed) = self.unlaned.take() {
                let (db, name, target) = *placed;
                // Boxed: rare, and it keeps every transaction's future small.
                let (pool, obj, at_work) =
                    Box::pin(db.placed_connection(&name, target.as_ref(), None)).await?;
                self.pool = pool;
                self.obj = Some(obj);
                self._at_work = Some(at_work);
                return Ok(());
            }
        }
        self.borrow().await
    }

    /// Borrows a connection from its pool if it holds none (given back after a stale
    /// first flight, or never taken: see [`PgTx::release_unsent`]).
    async fn borrow(&mut self) -> Result<()> {
        if self.obj.is_none() && self.lanes.is_none() {
            let obj = self.pool.get().await;
            self.obj = Some(obj.map_err(|e| Error::Unavailable(format!("PostgreSQL pool: {e}")))?);
        }
        Ok(())
    }

    /// Notes a lost connection in `r`.
    fn note<T>(&self, r: Result<T>) -> Result<T> {
        if let Err(Error::Unavailable(_)) = &r {
            self.broken
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        r
    }

    fn obj(&self) -> Result<&Object> {
        self.obj
            .as_ref()
            .ok_or_else(|| Error::Internal("transaction already finished".into()))
    }

    /// The role its tenant statements run as.
    pub(crate) fn role(&self) -> String {
        self.role.to_string()
    }

    /// Whether its first flight, still unsent, checks its scope against its database's
    /// access mirror.
    pub(crate) fn mirror_pending(&self) -> bool {
        self.mirror && self.pending.as_ref().is_some_and(|s| !s.checks.is_empty())
    }

    /// Leaves the scope's check to the control transaction, whose first flight goes first
    /// (so the org's write fence is taken there, as for an org in the control database):
    /// a write that took its fence in its org's database and then waited at the control
    /// database could wait for a move that holds the control one and waits for it.
    pub(crate) fn unmirror(&mut self) {
        if let Some(p) = self.pending.as_mut() {
            self.mirror = false;
            p.checks.clear();
        }
    }

    /// The control transaction of a write whose org's own database fenced it (its
    /// mirrored first flight was answered): no fence here, nor a route read, which that
    /// flight's check stood for; nor the scope's check, which it made (a control flight
    /// finding the scope stale after data statements were answered could not follow
    /// the org without losing them; while this write holds the fence there, no move
    /// out of that database can flip).
    /// `checked`: that flight's check passed, and the scope's check here is left out too
    /// (else it is still sent here).
    pub(crate) fn unfence(&mut self, checked: bool) {
        self.fence = false;
        if let (Some(p), true) = (self.pending.as_mut(), checked) {
            p.checks.clear();
        }
    }

    /// Whether its first flight is still unsent.
    pub(crate) fn unsent(&self) -> bool {
        self.pending.is_some()
    }

    /// Its first flight is to be sent again (what it was granted was rolled back).
    fn begun_again(&self) {
        self.fenced
            .store(false, std::sync::atomic::Ordering::Relaxed);
        self.checked
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether its first flight was granted the org's write fence (then held to its end,
    /// even if a statement after it failed).
    pub(crate) fn fence_taken(&self) -> bool {
        self.fenced.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether its first flight's access check passed.
    pub(crate) fn check_passed(&self) -> bool {
        self.checked.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether it may write.
    pub(crate) fn mode(&self) -> Mode {
        self.mode
    }

    /// The settings its first flight will send, while it is unsent.
    pub(crate) fn pending_settings(&self) -> Option<Settings> {
        self.pending.clone()
    }

    /// Runs `main` (futures over this connection's client, not yet polled), preceded by
    /// BEGIN and the scope prelude if they are still pending: all written back to back
    /// and answered in one round trip.
    async fn flight<T>(
        obj: &Object,
        how: Flight<'_>,
        pending: Option<Settings>,
        main: impl std::future::Future<Output = std::result::Result<T, tokio_postgres::Error>>,
    ) -> Result<T> {
        let Some(settings) = pending else {
            return main.await.map_err(map_err);
        };
        // A write's statements after its fence see what committed while it waited (each
        // its own snapshot), whatever the server's default isolation: the route read
        // after the control fence, the mirror's check after a placement database's.
        let begin_sql = match how.mode {
            Mode::Read => "BEGIN READ ONLY",
            Mode::Write => "BEGIN ISOLATION LEVEL READ COMMITTED",
        };
        let begin = obj.prepare_cached(begin_sql).await.map_err(map_err)?;
        let pp = PreludeParams::new(how.role, how.control, &settings, how.mirror)?;
        let prelude = obj.prepare_cached(pp.sql()?).await.map_err(map_err)?;
        let pr = pp.refs();
        let client: &tokio_postgres::Client = obj;
        // An org-scoped write on the control database first waits at the org's write
        // fence, then reads where the directory places the org (after the wait: a
        // statement of its own, so a snapshot of its own).
        //
        // A read whose scope is not checked against the access generations (verified for
        // this request, or a job's) reads the directory in its flight too, without the
        // fence: it never follows a route a move retired since the scope learned it (a
        // checked scope learns that from its generation, which the flip bumps).
        //
        // A write in an org's own database whose scope is checked against that database's
        // access mirror takes the org's fence there instead (a move out of the database
        // holds it through its cut-over and retires the mirror before letting go, so a
        // write that waited finds its scope stale and follows the org), and reads no
        // route: the mirror's check is the route's.
        let fenced = match (how.fence, how.mode, settings.org) {
            (true, Mode::Write, Some(org)) if settings.routed => Some((
                Some(obj.prepare_cached(FENCE_SQL).await.map_err(map_err)?),
                Some(obj.prepare_cached(ROUTE_SQL).await.map_err(map_err)?),
                org.uuid(),
                org.to_string(),
            )),
            (true, Mode::Read, Some(org)) if settings.routed && settings.checks.is_empty() => {
                Some((
                    None,
                    Some(obj.prepare_cached(ROUTE_SQL).await.map_err(map_err)?),
                    org.uuid(),
                    org.to_string(),
                ))
            }
            (false, Mode::Write, Some(org)) if how.mirror && !settings.checks.is_empty() => Some((
                Some(obj.prepare_cached(FENCE_SQL).await.map_err(map_err)?),
                None,
                org.uuid(),
                org.to_string(),
            )),
            _ => None,
        };
        // Boxed, and only for such a write: it keeps every other flight's future small.
        type Fenced<'f> = std::pin::Pin<
            Box<
                dyn std::future::Future<
                        Output = std::result::Result<
                            Option<Option<tokio_postgres::Row>>,
                            tokio_postgres::Error,
                        >,
                    > + Send
                    + 'f,
            >,
        >;
        let fencing: Option<Fenced<'_>> = fenced.as_ref().map(|(fence, route, id, text)| {
            Box::pin(async move {
                let fp: [&(dyn ToSql + Sync); 1] = [text];
                let rp: [&(dyn ToSql + Sync); 1] = [id];
                let fencing = async {
                    match fence {
                        Some(fence) => client.execute(fence, &fp).await.map(Some),
                        None => Ok(None),
                    }
                };
                let routing = async {
                    match route {
                        Some(route) => client.query_opt(route, &rp).await.map(Some),
                        None => Ok(None),
                    }
                };
                let (f, r) = futures::join!(fencing, routing);
                if f?.is_some() {
                    how.fenced.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                r
            }) as Fenced<'_>
        });
        let fence = async {
            match fencing {
                Some(f) => f.await.map(Some),
                None => Ok(None),
            }
        };
        // futures::join! polls in argument order: BEGIN, the fence, the prelude and the
        // statements are written back to back and answered in one round trip.
        let (b, fr, s, q) = futures::join!(
            client.execute(&begin, &[]),
            fence,
            client.query_one(&prelude, &pr),
            main
        );
        b.map_err(map_err)?;
        // Either check failing: whatever the statements did is rolled back (queued before
        // the connection is used again, as on drop) and their rows are never returned.
        let rollback = || {
            let _ = obj.batch_execute("ROLLBACK").now_or_never();
        };
        if let Some(Some(row)) = fr.map_err(map_err)? {
            let now = match row {
                Some(r) => crate::placement::Route::from_parts(r.get(0), r.get(1), r.get(2))?,
                None => crate::placement::Route::Shared,
            };
            same_route(&settings, &now).inspect_err(|_| rollback())?;
        }
        let stale = pp.stale(&s.map_err(map_err)?)?;
        access_current(&settings, stale, how.checked).inspect_err(|_| rollback())?;
        q.map_err(map_err)
    }

    /// The generations the next first flight checks (after a stale scope was verified
    /// again; the transaction is back to nothing sent).
    pub(crate) async fn set_checks(
        &mut self,
        checks: Vec<(uuid::Uuid, i64)>,
        route: crate::placement::Route,
    ) -> Result<()> {
        if let Some(p) = self.pending.as_mut() {
            p.checks = checks;
            self.schema = schema_of(&route);
            p.route = route;
        }
        // Its connection is borrowed again with its next statement ([`PgTx::connect`]),
        // not here: the transaction on the org's own database begins anew first
        // (`Tx::restart_data`), and a control connection held while waiting for a
        // connection there would turn around the order every other transaction takes
        // them in (the org's database first, then the control one): stuck both ways
        // under load until the budget's wait answered 503.
        Ok(())
    }

    /// Starts a transaction whose first flight was sent again from nothing (a data-plane
    /// transaction whose control check found the scope stale): its ROLLBACK is queued on
    /// the connection, which goes back to the pool with it, and BEGIN with `settings`' prelude
    /// goes in front of the next statement, on a connection from the pool. A mirrored
    /// one checks `checks` (the scope's, verified again).
    pub(crate) async fn restart(
        &mut self,
        settings: Settings,
        checks: Vec<(uuid::Uuid, i64)>,
    ) -> Result<()> {
        if self.pending.is_none() {
            if let Some(obj) = self.obj.take() {
                let _ = obj.batch_execute("ROLLBACK").now_or_never();
            }
        }
        // Its permit to work goes with its connection: a transaction waiting for a
        // connection never holds one (others may hold that pool's connections waiting for
        // a permit); once begun again it works unpermitted, past the bound for a moment.
        self._at_work = None;
        self.begun_again();
        self.pending = Some(Settings {
            checks: match self.mirror {
                true => checks,
                false => Vec::new(),
            },
            ..settings
        });
        self.borrow().await
    }

    /// Puts BEGIN and the prelude back in front of the next statement after a stale
    /// first flight.
    fn restart_if_stale<T>(&mut self, r: &Result<T>, settings: Option<Settings>) {
        if let (Err(Error::Refused(code, _)), Some(s)) = (r, settings) {
            if *code == crate::db::STALE {
                self.begun_again();
                self.pending = Some(s);
                // Its ROLLBACK is queued on the connection: back to the pool with it
                // (the next borrower's BEGIN follows it on the wire, as after a drop).
                self.obj = None;
            }
        }
    }

    /// Whether this is a placement database's read whose lane closed (the budget took it
    /// back) before its flight was sent: it then goes on a pooled connection instead.
    fn unlane(&mut self) -> bool {
        let closed = self.pending.is_some() && self.lanes.as_ref().is_some_and(|l| !l.usable());
        if closed {
            self.lanes = None;
        }
        closed
    }

    /// Runs `f` on this transaction's read lane, if it has one: `None` when it has none,
    /// or when the lane closed before anything was sent (see [`PgTx::unlane`]); the
    /// caller then goes on a pooled connection.
    async fn on_lane<T>(
        &mut self,
        f: impl AsyncFnOnce(&mut Self) -> Result<T>,
    ) -> Option<Result<T>> {
        self.unlane();
        self.lanes.as_ref()?;
        match f(self).await {
            // Its lane closed while it was being sent: nothing went.
            Err(Error::Unavailable(_)) if self.unlane() => None,
            r => Some(r),
        }
    }

    async fn run(&mut self, sql: &str, params: &[Val], op: Op) -> Result<Out> {
        // Boxed (here and below): it keeps the pooled path's future as small as it was.
        let lane = async |t: &mut Self| Box::pin(t.lane_flight(&[(sql, params)])).await;
        if let Some(r) = self.on_lane(lane).await {
            let (rows, n) = r?
                .pop()
                .ok_or_else(|| Error::Internal("a lane flight answered nothing".into()))?;
            return Ok(match op {
                Op::Query => Out::Lane(rows),
                Op::Execute => Out::Count(n),
            });
        }
        self.connect().await?;
        // Prepared before the first flight is taken: a statement that does not compile
        // leaves BEGIN and the prelude pending (nothing was sent), so the next statement
        // still begins the transaction in its scope.
        let stmt = self.prepare(self.obj()?, sql).await?;
        self.used |= sql != BARE;
        let pending = self.pending.take();
        let again = pending.clone();
        let r = self.run_once(&stmt, params, op, pending).await;
        self.restart_if_stale(&r, again);
        r
    }

    async fn run_once(
        &self,
        stmt: &tokio_postgres::Statement,
        params: &[Val],
        op: Op,
        pending: Option<Settings>,
    ) -> Result<Out> {
        let obj = self.obj()?;
        let p = refs(params);
        let client: &tokio_postgres::Client = obj;
        let main = async {
            match op {
                Op::Query => client.query(stmt, &p).await.map(Out::Rows),
                Op::Execute => client.execute(stmt, &p).await.map(Out::Count),
            }
        };
        let how = Flight::of(self);
        Self::flight(obj, how, pending, main).await
    }

    /// Runs several independent queries pipelined: one round trip for all of them (and
    /// for BEGIN and the prelude, if this is the transaction's first flight).
    async fn query_many_inner(&mut self, stmts: &[(&str, &[Val])]) -> Result<Vec<Vec<Row>>> {
        let lane = async |t: &mut Self| Box::pin(t.lane_flight(stmts)).await;
        if let Some(r) = self.on_lane(lane).await {
            return Ok(r?.into_iter().map(|(rows, _)| rows).collect());
        }
        self.connect().await?;
        // Prepared before the first flight is taken (see [`PgTx::run`]).
        let mut prepared = Vec::with_capacity(stmts.len());
        for (sql, _) in stmts {
            prepared.push(self.prepare(self.obj()?, sql).await?);
        }
        self.used |= stmts.iter().any(|(sql, _)| *sql != BARE);
        let pending = self.pending.take();
        let again = pending.clone();
        let r = self.query_many_once(stmts, &prepared, pending).await;
        self.restart_if_stale(&r, again);
        r
    }

    async fn query_many_once(
        &self,
        stmts: &[(&str, &[Val])],
        prepared: &[tokio_postgres::Statement],
        pending: Option<Settings>,
    ) -> Result<Vec<Vec<Row>>> {
        let obj = self.obj()?;
        let params: Vec<Vec<&(dyn ToSql + Sync)>> = stmts.iter().map(|(_, p)| refs(p)).collect();
        let client: &tokio_postgres::Client = obj;
        let main = async {
            let all = futures::future::join_all(
                prepared
                    .iter()
                    .zip(&params)
                    .map(|(s, p)| client.query(s, p)),
            )
            .await;
            all.into_iter().collect::<std::result::Result<Vec<_>, _>>()
        };
        let results = Self::flight(obj, Flight::of(self), pending, main).await?;
        results
            .iter()
            .map(|rows| rows.iter().map(pg_row).collect())
            .collect()
    }

    async fn query_inner(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>> {
        match self.run(sql, params, Op::Query).await? {
            Out::Rows(rows) => rows.iter().map(pg_row).collect(),
            Out::Lane(rows) => Ok(rows),
            Out::Count(_) => Ok(Vec::new()),
        }
    }

    async fn execute_inner(&mut self, sql: &str, params: &[Val]) -> Result<u64> {
        match self.run(sql, params, Op::Execute).await? {
            Out::Count(n) => Ok(n),
            Out::Rows(rows) => Ok(rows.len() as u64),
            Out::Lane(rows) => Ok(rows.len() as u64),
        }
    }

    /// Column names of a statement (prepared, not run), each with whether its type can be
    /// read into a [`Val`] (a `tsvector`, for one, cannot).
    async fn columns_inner(&mut self, sql: &str) -> Result<Vec<(String, bool)>> {
        let lane = async |t: &mut Self| match t.lanes.clone() {
            Some(lanes) => lanes.columns(&t.named(sql)).await,
            None => Err(Error::Internal("not a lane transaction".into())),
        };
        if let Some(r) = self.on_lane(lane).await {
            return Ok(r?
                .into_iter()
                .map(|(name, t)| (name, readable(&t)))
                .collect());
        }
        self.connect().await?;
        let stmt = self.obj()?.prepare_cached(sql).await.map_err(map_err)?;
        Ok(stmt
            .columns()
            .iter()
            .map(|c| (c.name().to_owned(), readable(c.type_())))
            .collect())
    }

    async fn rescope_inner(&mut self, settings: Settings) -> Result<()> {
        if self.pending.is_none() && self.lanes.is_some() {
            return Err(Error::Internal(
                "a one-flight read was scoped again after its flight".into(),
            ));
        }
        self.schema = schema_of(&settings.route);
        if self.pending.is_some() {
            self.pending = Some(settings);
            return Ok(());
        }
        let pp = PreludeParams::new(&self.role, &self.control, &settings, self.mirror)?;
        let obj = self.obj()?;
        let prelude = obj.prepare_cached(pp.sql()?).await.map_err(map_err)?;
        obj.execute(&prelude, &pp.refs()).await.map_err(map_err)?;
        Ok(())
    }

    async fn commit_inner(&mut self) -> Result<Option<MirrorWrites>> {
        self.done = true;
        if self.pending.is_some() || self.lanes.is_some() {
            // A lane read's flights each ended their own implicit transaction.
            return Ok(None); // nothing was sent: nothing to commit
        }
        let mirrors = self.mirrors.take();
        let obj = self.obj()?;
        let stmt = obj.prepare_cached("COMMIT").await.map_err(map_err)?;
        // A write that sent nothing but its fence, prelude and bare checks wrote nothing
        // here: nothing to make durable, its COMMIT only lifts the fence, after its org's
        // database committed (see `Tx::commit`); queued like a read's.
        let idle = self.mode == Mode::Write && !self.used;
        if let (Some(db), false) = (mirrors, idle) {
            return Self::commit_mirrored(obj, &stmt, &self.named(BUMPED_SQL), db).await;
        }
        if self.mode == Mode::Read || idle {
            // A READ ONLY transaction has nothing to make durable: its COMMIT is queued on
            // the connection (the first poll writes it) and not waited for. The next
            // borrower's BEGIN follows it on the wire and is answered after it, so a
            // scoped read costs one round trip. A lost connection shows up to that
            // borrower, never as a lost write.
            let _ = obj.execute(&stmt, &[]).now_or_never();
            return Ok(None);
        }
        obj.execute(&stmt, &[]).await.map_err(map_err)?;
        Ok(None)
    }

    /// Commits a control write and reads, in the COMMIT's flight ([`BUMPED_SQL`]), the
    /// access generations it bumped of orgs in databases of their own: what the caller
    /// writes into those databases' mirrors ([`MirrorWrites::write`]) once every
    /// connection of the transaction is back in its pool, before the change is answered.
    /// `bumped_sql` is [`BUMPED_SQL`] under the transaction's statement name: in a
    /// placement schema's write it runs on that schema's search path, and one statement
    /// shared by every search path was planned again at nearly every commit (11,681
    /// plans for about 14,000 notes created in ten schemas, `log_planner_stats`; 15% of
    /// PostgreSQL's CPU in `GetCachedPlan`).
    async fn commit_mirrored(
        obj: &Object,
        commit: &tokio_postgres::Statement,
        bumped_sql: &str,
        db: PgDb,
    ) -> Result<Option<MirrorWrites>> {
        let bumped = obj.prepare_cached(bumped_sql).await.map_err(map_err)?;
        let (rows, c) = futures::join!(obj.query(&bumped, &[]), obj.execute(commit, &[]));
        // A failed read aborts the transaction, whose COMMIT then answers ROLLBACK (no
        // error): the read's error is the transaction's.
        let rows = rows.map_err(map_err)?;
        c.map_err(map_err)?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut bumps = Vec::with_capacity(rows.len());
        for r in &rows {
            let route = crate::placement::Route::from_parts("database", r.get(1), r.get(2))?;
            if let crate::placement::Route::Database { name, target } = route {
                bumps.push((r.get(0), name, target, r.get(3)));
            }
        }
        Ok(Some(MirrorWrites { db, bumps }))
    }

    async fn rollback_inner(&mut self) -> Result<()> {
        self.done = true;
        if self.pending.is_some() || self.lanes.is_some() {
            return Ok(());
        }
        let obj = self.obj()?;
        obj.batch_execute("ROLLBACK").await.map_err(map_err)
    }

    /// Runs several independent queries pipelined: one round trip for all of them (and
    /// for BEGIN and the prelude, if this is the transaction's first flight).
    pub(crate) async fn query_many(&mut self, stmts: &[(&str, &[Val])]) -> Result<Vec<Vec<Row>>> {
        let r = self.query_many_inner(stmts).await;
        self.note(r)
    }

    pub(crate) async fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>> {
        let r = self.query_inner(sql, params).await;
        self.note(r)
    }

    pub(crate) async fn execute(&mut self, sql: &str, params: &[Val]) -> Result<u64> {
        let r = self.execute_inner(sql, params).await;
        self.note(r)
    }

    /// Column names of a statement (prepared, not run), each with whether its type can be
    /// read into a [`Val`].
    pub(crate) async fn columns(&mut self, sql: &str) -> Result<Vec<(String, bool)>> {
        let r = self.columns_inner(sql).await;
        self.note(r)
    }

    pub(crate) async fn rescope(&mut self, settings: Settings) -> Result<()> {
        let r = self.rescope_inner(settings).await;
        self.note(r)
    }

    /// Whether this is an org-scoped control write that has not sent its first flight (so
    /// has not passed its org's write fence yet).
    pub(crate) fn fence_unsent(&self) -> bool {
        matches!(self.mode, Mode::Write) && self.route_unsent()
    }

    /// Whether this routed control transaction has not sent its first flight, which reads
    /// its org's directory entry (a write's after the fence; a read's when its scope is
    /// not checked against the access generations, see [`PgTx::flight`]).
    pub(crate) fn route_unsent(&self) -> bool {
        self.fence
            && self.pending.as_ref().is_some_and(|s| {
                s.routed && s.org.is_some() && (self.mode == Mode::Write || s.checks.is_empty())
            })
    }

    pub(crate) async fn commit(self) -> Result<()> {
        match self.commit_deferred().await? {
            Some(m) => m.write().await,
            None => Ok(()),
        }
    }

    /// Commits; the access mirrors its commit must write are returned, to be written once
    /// the caller has given back its other connections (a placement database's budget
    /// may have room for one connection only).
    pub(crate) async fn commit_deferred(mut self) -> Result<Option<MirrorWrites>> {
        let r = self.commit_inner().await;
        self.note(r)
    }

    pub(crate) async fn rollback(mut self) -> Result<()> {
        let r = self.rollback_inner().await;
        self.note(r)
    }
}

impl Drop for PgTx {
    fn drop(&mut self) {
        if self.broken.load(std::sync::atomic::Ordering::Relaxed) {
            if let Some(obj) = self.obj.take() {
                // Out of the pool for good: the next borrower gets a new connection.
                drop(Object::take(obj));
            }
            return;
        }
        if self.done || self.pending.is_some() {
            return;
        }
        if let Some(obj) = self.obj.as_ref() {
            // Queue ROLLBACK on the connection before it goes back to the pool: the first
            // poll writes the request, and requests on one connection are answered in
            // order, so the next borrower's BEGIN comes after it.
            let _ = obj.batch_execute("ROLLBACK").now_or_never();
        }
    }
}

impl ToSql for Val {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Val::Null => Ok(IsNull::Yes),
            Val::Bool(b) => b.to_sql(ty, out),
            Val::Int(i) => match *ty {
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                _ => i.to_sql(ty, out),
            },
            Val::Float(f) => match *ty {
                #[allow(clippy::cast_possible_truncation)]
                Type::FLOAT4 => (*f as f32).to_sql(ty, out),
                _ => f.to_sql(ty, out),
            },
            Val::Text(s) => match *ty {
                Type::UUID => uuid::Uuid::parse_str(s)?.to_sql(ty, out),
                _ => s.to_sql(ty, out),
            },
            Val::Uuid(u) => match *ty {
                Type::TEXT | Type::VARCHAR => u.hyphenated().to_string().to_sql(ty, out),
                _ => u.to_sql(ty, out),
            },
            Val::Time(t) => t.to_sql(ty, out),
            Val::Bytes(b) => b.to_sql(ty, out),
            Val::Json(j) => j.to_sql(ty, out),
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// Whether [`pg_row`] reads a column of this type.
fn readable(t: &Type) -> bool {
    [
        Type::BOOL,
        Type::INT2,
        Type::INT4,
        Type::INT8,
        Type::OID,
        Type::CHAR,
        Type::FLOAT4,
        Type::FLOAT8,
        Type::TEXT,
        Type::VARCHAR,
        Type::NAME,
        Type::BPCHAR,
        Type::UUID,
        Type::TIMESTAMPTZ,
        Type::BYTEA,
        Type::JSON,
        Type::JSONB,
    ]
    .contains(t)
}

fn pg_row(r: &tokio_postgres::Row) -> Result<Row> {
    let mut vals = Vec::with_capacity(r.len());
    for (i, col) in r.columns().iter().enumerate() {
        let raw: Raw<'_> = r
            .try_get(i)
            .map_err(|e| Error::Internal(format!("column {}: {e}", col.name())))?;
        vals.push(pg_val(col.name(), col.type_(), raw.0)?);
    }
    Ok(Row(vals))
}

/// A row of a read lane's flight (see [`lane`]), its columns' names and types as the
/// statement's description gave them: decoded as [`pg_row`] decodes a pooled one.
pub(crate) fn decode_row(
    body: &postgres_protocol::message::backend::DataRowBody,
    columns: &[(String, Type)],
) -> Result<Row> {
    use fallible_iterator::FallibleIterator;
    let buf = body.buffer();
    let mut ranges = body.ranges();
    // The message's own column count (what the iterator has left to give).
    let (given, _) = ranges.size_hint();
    if given != columns.len() {
        return Err(Error::Internal(format!(
            "a row of {given} columns where {} were described",
            columns.len()
        )));
    }
    let mut vals = Vec::with_capacity(columns.len());
    for (name, t) in columns {
        let Some(range) = ranges.next().map_err(Error::internal)? else {
            return Err(Error::Internal(format!("column {name}: missing")));
        };
        let raw = match range {
            Some(r) => Some(
                buf.get(r)
                    .ok_or_else(|| Error::Internal(format!("column {name}: out of bounds")))?,
            ),
            None => None,
        };
        vals.push(pg_val(name, t, raw)?);
    }
    Ok(Row(vals))
}

/// A column's value as it came on the wire (binary format), decoded by [`pg_val`].
struct Raw<'a>(Option<&'a [u8]>);

impl<'a> tokio_postgres::types::FromSql<'a> for Raw<'a> {
    fn from_sql(
        _: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(Some(raw)))
    }

    fn from_sql_null(
        _: &Type,
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(None))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// One column's value (binary format; `None` for NULL) as a [`Val`], by its type.
fn pg_val(name: &str, t: &Type, raw: Option<&[u8]>) -> Result<Val> {
    use tokio_postgres::types::FromSql;
    fn get<'a, T: FromSql<'a>>(name: &str, t: &Type, raw: Option<&'a [u8]>) -> Result<Option<T>> {
        <Option<T> as FromSql>::from_sql_nullable(t, raw)
            .map_err(|e| Error::Internal(format!("column {name}: {e}")))
    }
    let v = match *t {
        Type::BOOL => get::<bool>(name, t, raw)?.map(Val::Bool),
        Type::INT2 => get::<i16>(name, t, raw)?.map(|x| Val::Int(x.into())),
        Type::INT4 => get::<i32>(name, t, raw)?.map(|x| Val::Int(x.into())),
        Type::INT8 => get::<i64>(name, t, raw)?.map(Val::Int),
        Type::OID => get::<u32>(name, t, raw)?.map(|x| Val::Int(x.into())),
        Type::CHAR => get::<i8>(name, t, raw)?.map(|x| Val::Int(x.into())),
        Type::FLOAT4 => get::<f32>(name, t, raw)?.map(|x| Val::Float(x.into())),
        Type::FLOAT8 => get::<f64>(name, t, raw)?.map(Val::Float),
        Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR => {
            get::<String>(name, t, raw)?.map(Val::Text)
        }
        Type::UUID => get::<uuid::Uuid>(name, t, raw)?.map(Val::Uuid),
        Type::TIMESTAMPTZ => get::<DateTime<Utc>>(name, t, raw)?.map(Val::Time),
        Type::BYTEA => get::<Vec<u8>>(name, t, raw)?.map(Val::Bytes),
        Type::JSON | Type::JSONB => get::<serde_json::Value>(name, t, raw)?.map(Val::Json),
        _ => {
            return Err(Error::Internal(format!(
                "column {name} has unsupported type {t}"
            )))
        }
    };
    Ok(v.unwrap_or(Val::Null))
}

/// Maps a PostgreSQL error to the domain error.
pub(crate) fn map_err(e: tokio_postgres::Error) -> Error {
    let Some(db) = e.as_db_error() else {
        // The connection broke (closed, reset, timed out): the server is gone or going,
        // not the request's fault.
        let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
        if e.is_closed() || io {
            return Error::Unavailable(format!("PostgreSQL connection lost: {e}"));
        }
        return Error::Internal(e.to_string());
    };
    map_db(db.code(), db.message(), db.constraint().unwrap_or(""))
}

/// Maps a PostgreSQL error (its SQLSTATE, message and constraint, if any) to the domain
/// error: a pooled connection's ([`map_err`]) and a read lane's alike.
pub(crate) fn map_db(code: &SqlState, message: &str, constraint: &str) -> Error {
    let constraint = constraint.to_owned();
    // Class 08 (connection exception), 57P01-57P03 (the server is shutting down or
    // restarting: e.g. pg_terminate_backend, a fast shutdown), class 53 (out of
    // connections, memory or disk): the server cannot serve now.
    let class = code.code().get(..2).unwrap_or("");
    if class == "08"
        || class == "53"
        || *code == SqlState::ADMIN_SHUTDOWN
        || *code == SqlState::CRASH_SHUTDOWN
        || *code == SqlState::CANNOT_CONNECT_NOW
    {
        return Error::Unavailable(format!("{}: {}", code.code(), message));
    }
    if *code == SqlState::UNIQUE_VIOLATION || *code == SqlState::EXCLUSION_VIOLATION {
        Error::Conflict("conflict", constraint)
    } else if *code == SqlState::FOREIGN_KEY_VIOLATION {
        if message.contains("is still referenced") {
            Error::Conflict("in_use", constraint)
        } else {
            Error::Validation(format!(
                "a referenced row does not exist in this organization ({constraint})"
            ))
        }
    } else if *code == SqlState::CHECK_VIOLATION || *code == SqlState::NOT_NULL_VIOLATION {
        Error::Validation(format!("constraint {constraint} failed"))
    } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
        Error::ScopeViolation
    } else if *code == SqlState::READ_ONLY_SQL_TRANSACTION {
        Error::Internal("write attempted in a read-only transaction".into())
    } else {
        Error::Internal(format!("{}: {}", code.code(), message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A placement connection dropped without ending its session (as one coming back to
    /// a pool closed meanwhile is) gives its budget permit back only once the server no
    /// longer shows its session: the budget bounds what the server counts, not only what
    /// this process holds. On the test server (`ORGWALL_TEST_DATABASE_URL`, as the test
    /// kit), its sessions told apart by an application name of their own.
    #[tokio::test]
    async fn a_dropped_connection_frees_its_permit_once_the_server_let_it_go() {
        let url = std::env::var("ORGWALL_TEST_DATABASE_URL")
            .or_else(|_| std::env::var("DATABASE_URL"))
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("orgwall_budget_{}", uuid::Uuid::now_v7().simple());
        let mut cfg: tokio_postgres::Config = url.parse().unwrap();
        cfg.application_name(&name);
        let (admin, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
        tokio::spawn(conn);
        let budget = Arc::new(Budget::new(1, 1));
        let connect = BudgetConnect {
            placed: std::sync::Weak::new(),
            key: (None, "postgres".into()),
            budget: budget.clone(),
        };
        for _ in 0..40 {
            let (client, _task) = deadpool_postgres::Connect::connect(&connect, &cfg)
                .await
                .unwrap();
            client.simple_query("SELECT 1").await.unwrap();
            assert_eq!(
                budget.permits.available_permits(),
                0,
                "the connection holds it"
            );
            drop(client);
            let permit = budget.permits.acquire().await.unwrap();
            let n: i64 = admin
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                    &[&name],
                )
                .await
                .unwrap()
                .get(0);
            assert_eq!(
                n, 0,
                "the permit came back while the server still counted it"
            );
            drop(permit);
        }
    }
}
