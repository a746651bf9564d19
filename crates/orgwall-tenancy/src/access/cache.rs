//! The access cache: what the wall reads on every request (sessions, API keys,
//! memberships with their permissions, org slugs), kept in memory once read, so a warm
//! request reaches the database only for its own work.
//!
//! Every entry that depends on an org carries that org in its key or its dependency, and
//! is dropped whenever anything of that org's access changes. Staleness is prevented by
//! **generations**, not by deleting entries:
//!
//! - a global counter is read (a *stamp*) before the database read that fills an entry;
//! - invalidating an org (or a user, for sessions) records the counter's next value as
//!   that org's generation; invalidating everything bumps an epoch;
//! - an entry is served only if its dependency's generation is not newer than its stamp,
//!   the epoch is unchanged, and it is younger than [`TTL`].
//!
//! So a read that raced a change (read the old rows, stored after the change was
//! announced) is never served: its stamp predates the change's generation.
//!
//! Changes are announced:
//! - **in this process**, by the transaction that made them, right after its commit
//!   ([`crate::db::Tx`] notices writes to `orgs`, `memberships`, `roles`, `api_keys`
//!   and `plans`; session changes are declared by the sessions repository), so the next
//!   request sees them;
//! - **across processes** on PostgreSQL by triggers calling `pg_notify('orgwall_access',
//!   'org:<id>' | 'user:<id>' | 'all')`, delivered at commit to every instance's listener.
//!   While an instance is not listening (not yet connected, or the connection was lost)
//!   its cache serves nothing and stores nothing; on (re)connection everything is dropped.
//! - On SQLite (one embedded server) another process's changes (`orgwall set-plan` on the
//!   same file) are seen within [`TTL`].

use crate::scope::{OrgScope, Principal};
use orgwall_core::{ApiKeyId, OrgId, PermissionSet, SessionId, UserId};
use quick_cache::sync::Cache;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant};

/// The longest an entry is served, whatever else happens (the bound on staleness if an
/// announcement is ever missed, and on SQLite for changes made by another process).
pub const TTL: Duration = Duration::from_secs(60);

/// The PostgreSQL channel of access changes.
pub const CHANNEL: &str = "orgwall_access";

/// The `application_name` of the listener's connection (visible in `pg_stat_activity`).
pub const LISTENER_NAME: &str = "orgwall-access-listener";

/// Entries per map: beyond this the least useful are evicted (not a correctness matter;
/// a few hundred bytes each, so tens of MB at most when every map is full).
const CAPACITY: usize = 200_000;

/// What an entry depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Dep {
    /// Anything of this org's access: its row, plan, roles, memberships, API keys.
    Org(OrgId),
    /// This user's sessions.
    User(UserId),
}

/// Taken before the database read that fills an entry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stamp {
    counter: u64,
    epoch: u64,
    at: Instant,
}

#[derive(Clone)]
pub(crate) struct Entry<V> {
    value: V,
    dep: Dep,
    stamp: Stamp,
}

/// A principal's standing in an org: what a scope is built from.
#[derive(Clone, Debug)]
pub(crate) struct Grant {
    pub permissions: PermissionSet,
    pub rate_limit_per_minute: Option<u32>,
    /// The org's access generation, read with the grant (0 on SQLite).
    pub gen: i64,
    /// Where the org's data plane lives, read with the grant.
    pub route: crate::placement::Route,
}

/// A live API key and its grant.
#[derive(Clone, Debug)]
pub(crate) struct KeyGrant {
    pub org: OrgId,
    pub key: ApiKeyId,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    pub grant: Grant,
}

/// A live session as the wall needs it.
#[derive(Clone, Debug)]
pub(crate) struct SessionEntry {
    pub id: SessionId,
    pub user_id: UserId,
    pub active_org_id: Option<OrgId>,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    pub idle_expires_at: chrono::DateTime<chrono::Utc>,
    pub last_seen_at: chrono::DateTime<chrono::Utc>,
    /// The user's access generation, read with the session (0 on SQLite).
    pub gen: i64,
}

/// Hit and miss counts (for `/metrics`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from memory.
    pub hits: u64,
    /// Lookups that went to the database.
    pub misses: u64,
    /// Invalidations applied (org, user or everything).
    pub invalidations: u64,
    /// Whether entries are served now (on, and on PostgreSQL hearing other instances).
    pub live: bool,
}

/// The cache of one [`crate::Db`] (one per process in production).
pub(crate) struct AccessCache {
    enabled: AtomicBool,
    /// Whether announcements from other processes arrive (always on SQLite).
    live: AtomicBool,
    counter: AtomicU64,
    epoch: AtomicU64,
    gens: RwLock<HashMap<Dep, u64>>,
    members: Cache<(OrgId, UserId), Entry<Grant>>,
    keys: Cache<String, Entry<KeyGrant>>,
    sessions: Cache<String, Entry<SessionEntry>>,
    slugs: Cache<String, Entry<OrgId>>,
    hits: AtomicU64,
    misses: AtomicU64,
    invalidations: AtomicU64,
    /// PostgreSQL: the URL the listener connects with; started on first use.
    listen_url: Option<Arc<str>>,
    listener: OnceLock<()>,
    /// The last announcement heard from the database (diagnostics; tests use it as a
    /// barrier: announcements arrive in commit order).
    last_heard: Mutex<Option<String>>,
    /// Dropped with the cache: stops the listener.
    stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

/// Which cache map a value lives in.
pub(crate) trait Slot: Clone + Send + Sync + 'static {
    type Key: Eq + std::hash::Hash + Clone + Send + Sync + 'static;
    fn map(cache: &AccessCache) -> &Cache<Self::Key, Entry<Self>>;
}

impl Slot for Grant {
    type Key = (OrgId, UserId);
    fn map(c: &AccessCache) -> &Cache<Self::Key, Entry<Self>> {
        &c.members
    }
}

impl Slot for KeyGrant {
    type Key = String;
    fn map(c: &AccessCache) -> &Cache<Self::Key, Entry<Self>> {
        &c.keys
    }
}

impl Slot for SessionEntry {
    type Key = String;
    fn map(c: &AccessCache) -> &Cache<Self::Key, Entry<Self>> {
        &c.sessions
    }
}

impl Slot for OrgId {
    type Key = String;
    fn map(c: &AccessCache) -> &Cache<Self::Key, Entry<Self>> {
        &c.slugs
    }
}

impl AccessCache {
    /// A cache; `listen_url` is PostgreSQL's (announcements from other processes), `None`
    /// for SQLite.
    pub(crate) fn new(listen_url: Option<Arc<str>>) -> Arc<AccessCache> {
        Arc::new(AccessCache {
            enabled: AtomicBool::new(true),
            live: AtomicBool::new(listen_url.is_none()),
            counter: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            gens: RwLock::new(HashMap::new()),
            members: Cache::new(CAPACITY),
            keys: Cache::new(CAPACITY),
            sessions: Cache::new(CAPACITY),
            slugs: Cache::new(CAPACITY),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            listen_url,
            listener: OnceLock::new(),
            last_heard: Mutex::new(None),
            stop: Mutex::new(None),
        })
    }

    /// Turns the cache off (every lookup reads the database) or back on.
    pub(crate) fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::SeqCst);
        self.invalidate_all();
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            invalidations: self.invalidations.load(Ordering::Relaxed),
            live: self.enabled.load(Ordering::SeqCst) && self.live.load(Ordering::SeqCst),
        }
    }

    pub(crate) fn last_heard(&self) -> Option<String> {
        self.last_heard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Whether entries may be served and stored now (starts the listener if needed).
    fn usable(self: &Arc<Self>) -> bool {
        if !self.enabled.load(Ordering::SeqCst) {
            return false;
        }
        if let Some(url) = &self.listen_url {
            self.listener
                .get_or_init(|| self.start_listener(url.clone()));
        }
        self.live.load(Ordering::SeqCst)
    }

    /// The stamp for a database read about to fill an entry; `None` when nothing may be
    /// stored (cache off, or not listening).
    pub(crate) fn stamp(self: &Arc<Self>) -> Option<Stamp> {
        if !self.usable() {
            return None;
        }
        // The generation map's read lock orders this against a concurrent invalidation.
        let _g = self
            .gens
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Some(Stamp {
            counter: self.counter.load(Ordering::SeqCst),
            epoch: self.epoch.load(Ordering::SeqCst),
            at: Instant::now(),
        })
    }

    fn fresh(&self, dep: Dep, stamp: &Stamp) -> bool {
        if stamp.epoch != self.epoch.load(Ordering::SeqCst) || stamp.at.elapsed() >= TTL {
            return false;
        }
        let gens = self
            .gens
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        gens.get(&dep).is_none_or(|g| *g <= stamp.counter)
    }

    /// The cached value under `key`, if still valid.
    pub(crate) fn get<V: Slot>(self: &Arc<Self>, key: &V::Key) -> Option<V> {
        if !self.usable() {
            return None;
        }
        let map = V::map(self);
        match map.get(key) {
            Some(e) if self.fresh(e.dep, &e.stamp) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(e.value)
            }
            Some(_) => {
                map.remove(key);
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// The value under `key`: from memory if still valid, else from `load` (a database
    /// read, not started yet: the stamp is taken first, so a change announced while it
    /// runs keeps its result from being served). `load` answers the value and what it
    /// depends on, or `None` (nothing is stored for an absent value).
    pub(crate) async fn get_or_load<V: Slot>(
        self: &Arc<Self>,
        key: V::Key,
        load: impl std::future::Future<Output = orgwall_core::Result<Option<(Dep, V)>>>,
    ) -> orgwall_core::Result<Option<V>> {
        if let Some(v) = self.get::<V>(&key) {
            return Ok(Some(v));
        }
        let stamp = self.stamp();
        let Some((dep, v)) = load.await? else {
            return Ok(None);
        };
        self.put(stamp, key, dep, v.clone());
        Ok(Some(v))
    }

    /// Stores a value read from the database after `stamp` was taken.
    pub(crate) fn put<V: Slot>(&self, stamp: Option<Stamp>, key: V::Key, dep: Dep, value: V) {
        let Some(stamp) = stamp else { return };
        if self.fresh(dep, &stamp) {
            V::map(self).insert(key, Entry { value, dep, stamp });
        }
    }

    /// Updates a value in place, keeping its stamp (a change that announces nothing,
    /// such as a session's last use).
    pub(crate) fn refresh<V: Slot>(&self, key: &V::Key, f: impl FnOnce(&mut V)) {
        let map = V::map(self);
        if let Some(mut e) = map.get(key) {
            f(&mut e.value);
            map.insert(key.clone(), e);
        }
    }

    /// Drops every entry that depends on `dep`.
    pub(crate) fn invalidate(&self, dep: Dep) {
        let mut gens = self
            .gens
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let g = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
        gens.insert(dep, g);
        self.invalidations.fetch_add(1, Ordering::Relaxed);
    }

    /// Drops everything.
    pub(crate) fn invalidate_all(&self) {
        let mut gens = self
            .gens
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        gens.clear();
        self.invalidations.fetch_add(1, Ordering::Relaxed);
        drop(gens);
        self.members.clear();
        self.keys.clear();
        self.sessions.clear();
        self.slugs.clear();
    }

    /// Applies an announcement: `org:<uuid>`, `user:<uuid>` or `all` (anything else is
    /// treated as `all`: when in doubt, forget).
    pub(crate) fn apply(&self, payload: &str) {
        let dep = match payload.split_once(':') {
            Some(("org", id)) => id.parse().ok().map(Dep::Org),
            Some(("user", id)) => id.parse().ok().map(Dep::User),
            _ => None,
        };
        match dep {
            Some(d) => self.invalidate(d),
            None => {
                if payload != "all" {
                    tracing::warn!(
                        payload,
                        "unknown access announcement; dropping the whole access cache"
                    );
                }
                self.invalidate_all();
            }
        }
    }

    fn start_listener(self: &Arc<Self>, url: Arc<str>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        *self
            .stop
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(tx);
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(listen(url, Arc::downgrade(self), rx));
            }
            Err(_) => tracing::warn!("no async runtime: the access cache stays off"),
        }
    }
}

impl Drop for AccessCache {
    fn drop(&mut self) {
        // Dropping the sender wakes the listener, which closes its connection.
        self.stop
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }
}

/// Keeps a `LISTEN orgwall_access` connection open and applies what arrives; marks the
/// cache not live (serving nothing) whenever it is not connected.
async fn listen(
    url: Arc<str>,
    cache: Weak<AccessCache>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    use futures::StreamExt;
    let mut delay = Duration::from_millis(100);
    let mut warned = false;
    loop {
        let connected = match url.parse::<tokio_postgres::Config>() {
            Ok(mut cfg) => {
                cfg.application_name(LISTENER_NAME);
                cfg.connect(tokio_postgres::NoTls).await
            }
            Err(e) => Err(e),
        };
        match connected {
            Err(e) => {
                if !warned {
                    tracing::warn!(error = %e, "access cache: cannot listen for changes; serving without the cache until connected");
                    warned = true;
                }
            }
            Ok((client, mut conn)) => {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Option<String>>();
                let driver = tokio::spawn(async move {
                    let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
                    loop {
                        match messages.next().await {
                            Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                                if tx.send(Some(n.payload().to_owned())).is_err() {
                                    return;
                                }
                            }
                            Some(Ok(_)) => {}
                            Some(Err(_)) | None => {
                                let _ = tx.send(None);
                                return;
                            }
                        }
                    }
                });
                if client
                    .batch_execute(&format!("LISTEN {CHANNEL}"))
                    .await
                    .is_ok()
                {
                    let Some(c) = cache.upgrade() else { return };
                    // Whatever changed before LISTEN took effect was not heard: forget it all.
                    c.invalidate_all();
                    c.live.store(true, Ordering::SeqCst);
                    drop(c);
                    if warned {
                        tracing::info!("access cache: listening for changes again");
                    }
                    delay = Duration::from_millis(100);
                    loop {
                        tokio::select! {
                            _ = &mut stop => {
                                driver.abort();
                                return;
                            }
                            m = rx.recv() => match (m, cache.upgrade()) {
                                (Some(Some(p)), Some(c)) => {
                                    c.apply(&p);
                                    *c.last_heard.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(p);
                                }
                                (_, None) => {
                                    driver.abort();
                                    return;
                                }
                                _ => break,
                            },
                        }
                    }
                    if let Some(c) = cache.upgrade() {
                        c.live.store(false, Ordering::SeqCst);
                        c.invalidate_all();
                    }
                    tracing::warn!("access cache: lost the change listener; serving without the cache until reconnected");
                    warned = true;
                }
                driver.abort();
                drop(client);
            }
        }
        tokio::select! {
            _ = &mut stop => return,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
        if cache.strong_count() == 0 {
            return;
        }
    }
}

/// The principal a cached grant stands for (keeps scope building in one place).
pub(crate) fn scope(org: OrgId, principal: Principal, g: &Grant) -> OrgScope {
    OrgScope::new(org, principal, g.permissions, g.rate_limit_per_minute)
        .depending_on(org.uuid(), g.gen)
        .routed(g.route.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache, an org, a membership key in it and a grant to store.
    fn fixture() -> (Arc<AccessCache>, OrgId, (OrgId, UserId), Grant) {
        let org = OrgId::new();
        let g = Grant {
            permissions: PermissionSet::EMPTY,
            rate_limit_per_minute: None,
            gen: 0,
            route: crate::placement::Route::Shared,
        };
        (AccessCache::new(None), org, (org, UserId::new()), g)
    }

    #[test]
    fn a_read_that_raced_a_change_is_never_served() {
        let (c, org, key, g) = fixture();
        // Stamp, then the change is announced, then the (old) value is stored.
        let s = c.stamp();
        c.invalidate(Dep::Org(org));
        c.put(s, key, Dep::Org(org), g.clone());
        assert!(c.get::<Grant>(&key).is_none());
        // A read after the change is served until the next change.
        let s = c.stamp();
        c.put(s, key, Dep::Org(org), g.clone());
        assert!(c.get::<Grant>(&key).is_some());
        c.invalidate(Dep::Org(OrgId::new()));
        assert!(
            c.get::<Grant>(&key).is_some(),
            "another org's change keeps it"
        );
        c.invalidate(Dep::Org(org));
        assert!(c.get::<Grant>(&key).is_none());
        // Everything goes with `all`, and a disabled cache neither serves nor stores.
        let s = c.stamp();
        c.put(s, key, Dep::Org(org), g.clone());
        c.apply("all");
        assert!(c.get::<Grant>(&key).is_none());
        c.set_enabled(false);
        assert!(c.stamp().is_none());
    }

    #[test]
    fn announcements_parse_and_unknown_ones_drop_everything() {
        let (c, org, key, g) = fixture();
        let s = c.stamp();
        c.put(s, key, Dep::Org(org), g.clone());
        c.apply(&format!("user:{}", UserId::new()));
        assert!(c.get::<Grant>(&key).is_some());
        c.apply(&format!("org:{org}"));
        assert!(c.get::<Grant>(&key).is_none());
        let s = c.stamp();
        c.put(s, key, Dep::Org(org), g);
        c.apply("garbage");
        assert!(c.get::<Grant>(&key).is_none());
    }

    /// One step of a random interleaving of loads, stores, lookups and announcements.
    #[derive(Clone, Debug)]
    enum Step {
        /// A request starts a database read of key `k` (takes a stamp, reads the truth).
        Load(usize),
        /// The `i`-th load in flight (mod their number) stores what it read.
        Store(usize),
        /// A lookup of key `k`.
        Get(usize),
        /// A change of org `o` is announced.
        Change(usize),
        /// Everything is dropped (a lost listener, an unknown announcement).
        All,
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            (0..6usize).prop_map(Step::Load),
            (0..8usize).prop_map(Step::Store),
            (0..6usize).prop_map(Step::Get),
            (0..3usize).prop_map(Step::Change),
            Just(Step::All),
        ]
    }

    proptest::proptest! {
        /// Whatever the interleaving, a lookup never returns what was read before the
        /// latest change of its org: the cache answers either nothing or the truth.
        #[test]
        fn a_lookup_never_serves_a_value_older_than_the_last_change(
            steps in proptest::collection::vec(step(), 1..200)
        ) {
            let c = AccessCache::new(None);
            let orgs: Vec<OrgId> = (0..3).map(|_| OrgId::new()).collect();
            let users: Vec<UserId> = (0..2).map(|_| UserId::new()).collect();
            // Key k is (org k % 3, user k % 2); the "truth" of an org is its change count.
            let key = |k: usize| (orgs[k % 3], users[k % 2]);
            let mut truth = [0u32; 3];
            let mut in_flight: Vec<(Option<Stamp>, usize, u32)> = Vec::new();
            for s in steps {
                match s {
                    Step::Load(k) => {
                        let stamp = c.stamp();
                        in_flight.push((stamp, k, truth[k % 3]));
                    }
                    Step::Store(i) => {
                        if !in_flight.is_empty() {
                            let (stamp, k, seen) = in_flight.remove(i % in_flight.len());
                            let g = Grant {
                                permissions: PermissionSet::EMPTY,
                                rate_limit_per_minute: Some(seen),
                                gen: 0,
                                route: crate::placement::Route::Shared,
                            };
                            c.put(stamp, key(k), Dep::Org(orgs[k % 3]), g);
                        }
                    }
                    Step::Get(k) => {
                        if let Some(g) = c.get::<Grant>(&key(k)) {
                            proptest::prop_assert_eq!(g.rate_limit_per_minute, Some(truth[k % 3]));
                        }
                    }
                    Step::Change(o) => {
                        truth[o] += 1;
                        c.invalidate(Dep::Org(orgs[o]));
                    }
                    Step::All => c.invalidate_all(),
                }
            }
        }
    }
}
