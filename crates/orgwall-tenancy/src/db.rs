//! The database handle and transactions, one API over both backends.
//!
//! Every transaction, whatever it is for, starts by stating its scope to the database:
//! on PostgreSQL `set_config('role', ...)`, `set_config('app.org_id', ...)`,
//! `set_config('app.user_id', ...)` and `set_config('app.lookup', ...)`, all
//! transaction-local and pipelined with `BEGIN` and the first statement; on SQLite the
//! connection's scope cell read by `app_org()`, `app_user()` and `app_lookup()`. An
//! unscoped transaction states an empty scope, so nothing can inherit a previous one.
//!
//! Tenant transactions ([`TenantTx`]) can only be opened from an [`OrgScope`]; the scope
//! settings of a transaction can only be chosen inside this crate (the access module).

use crate::access::cache::{AccessCache, CacheStats, Dep};
use crate::module::Catalog;
use crate::placement::Route;
use crate::postgres as pg;
use crate::scope::OrgScope;
pub use crate::settings::Mode;
pub(crate) use crate::settings::Settings;
use crate::sqlite;
use crate::value::{Row, Val};
use orgwall_core::{Error, OrgId, Result, UserId};
use std::path::PathBuf;

/// Which backend a [`Db`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// PostgreSQL with forced row-level security.
    Postgres,
    /// Embedded SQLite with scoped views, an authorizer and guard triggers.
    Sqlite,
}

/// Where the data lives.
#[derive(Clone, Debug)]
pub enum DbConfig {
    /// A PostgreSQL server.
    Postgres {
        /// `postgres://` URL of the login (owner for migrations, or a dedicated login).
        url: String,
        /// The NOLOGIN role tenant transactions switch to (created by `migrate`).
        app_role: String,
        /// Connections in the pool.
        pool_size: usize,
        /// The connections the pools of placement databases may hold together on each
        /// server (the control server, each target without a budget of its own:
        /// [`crate::placement::set_target_budget`]; `--db-max-connections`); `None`: as
        /// many as `pool_size`.
        placement_budget: Option<usize>,
    },
    /// An embedded SQLite file.
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// Connections in the pool.
        pool_size: usize,
    },
}

/// The default name of the role tenant transactions run as on PostgreSQL.
pub const DEFAULT_APP_ROLE: &str = "orgwall_app";

impl DbConfig {
    /// Chooses the backend: PostgreSQL when `database_url` is a `postgres://` URL, SQLite
    /// when it is `sqlite:PATH` or absent (then `data_dir/orgwall.db`).
    pub fn from_url(database_url: Option<&str>, data_dir: &std::path::Path) -> Result<Self> {
        let url = database_url.map(str::trim).filter(|u| !u.is_empty());
        match url {
            None => Ok(DbConfig::Sqlite {
                path: data_dir.join("orgwall.db"),
                pool_size: 8,
            }),
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                u.parse::<tokio_postgres::Config>()
                    .map_err(|e| Error::Validation(format!("invalid database URL: {e}")))?;
                Ok(DbConfig::Postgres {
                    url: u.to_owned(),
                    app_role: DEFAULT_APP_ROLE.to_owned(),
                    pool_size: 16,
                    placement_budget: None,
                })
            }
            Some(u) if u.starts_with("sqlite:") => {
                let path = u.trim_start_matches("sqlite:").trim_start_matches("//");
                if path.is_empty() {
                    return Err(Error::Validation(
                        "invalid database URL: sqlite: needs a file path".into(),
                    ));
                }
                Ok(DbConfig::Sqlite {
                    path: PathBuf::from(path),
                    pool_size: 8,
                })
            }
            Some(u) => {
                let scheme = u.split_once(':').map_or("(none)", |(s, _)| s);
                Err(Error::Validation(format!(
                    "invalid database URL: unsupported scheme {scheme:?} (use postgres://... or sqlite:PATH)"
                )))
            }
        }
    }
}

fn sqlite_has_no_database_placement() -> Error {
    Error::Validation(
        "a placement database is a PostgreSQL database; on SQLite an org's own file is made by orgwall placement set ORG database"
            .into(),
    )
}

#[derive(Clone)]
pub(crate) enum Backend {
    Pg(pg::PgDb),
    Sqlite(sqlite::SqliteDb),
}

/// A handle to the database (cheap to clone; pooled inside). Clones share one access
/// cache (see [`crate::access::cache`]).
#[derive(Clone)]
pub struct Db {
    backend: Backend,
    cache: std::sync::Arc<AccessCache>,
    catalog: std::sync::Arc<Catalog>,
}

impl Db {
    /// Connects (and checks the connection) without migrating. `catalog` is the service's
    /// registered modules: what [`Db::migrate`] applies and [`Db::doctor`] checks.
    pub async fn open(cfg: &DbConfig, catalog: Catalog) -> Result<Db> {
        if let Some(refused) = catalog.refused() {
            return Err(Error::Validation(format!(
                "registration refused: {refused}"
            )));
        }
        let backend = match cfg {
            DbConfig::Postgres {
                url,
                app_role,
                pool_size,
                placement_budget,
            } => Backend::Pg(
                pg::PgDb::open(
                    url,
                    app_role,
                    *pool_size,
                    placement_budget.unwrap_or(*pool_size),
                )
                .await?,
            ),
            DbConfig::Sqlite { path, pool_size } => {
                Backend::Sqlite(sqlite::SqliteDb::open(path, *pool_size).await?)
            }
        };
        let cache = AccessCache::new(match &backend {
            Backend::Pg(p) => Some(p.url()),
            Backend::Sqlite(_) => None,
        });
        Ok(Db {
            backend,
            cache,
            catalog: std::sync::Arc::new(catalog),
        })
    }

    /// The access cache (access module and repositories that announce changes).
    pub(crate) fn cache(&self) -> &std::sync::Arc<AccessCache> {
        &self.cache
    }

    /// Turns the access cache off (every request reads sessions, keys and memberships
    /// from the database) or on. For benchmarks and operators; on by default.
    pub fn set_access_cache(&self, on: bool) {
        self.cache.set_enabled(on);
    }

    /// The last change announcement this handle's access cache heard from PostgreSQL
    /// (diagnostics; announcements arrive in commit order, so tests use one as a barrier).
    pub fn access_cache_last_heard(&self) -> Option<String> {
        self.cache.last_heard()
    }

    /// Hits, misses and invalidations of the access cache.
    pub fn access_cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// The registered modules.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Which backend this is.
    pub fn kind(&self) -> BackendKind {
        match &self.backend {
            Backend::Pg(_) => BackendKind::Postgres,
            Backend::Sqlite(_) => BackendKind::Sqlite,
        }
    }

    /// Applies pending migrations (as the owner) and re-asserts the database wall on every
    /// tenant table. All in one transaction: either everything applies or nothing does.
    pub async fn migrate(&self) -> Result<crate::migrate::Report> {
        self.migrate_with(&|_, _| {}).await
    }

    /// [`Db::migrate`], telling `progress` (done, total) as placements of their own are
    /// brought to the same version (PostgreSQL; a few at a time, each whole).
    pub async fn migrate_with(
        &self,
        progress: &(dyn Fn(usize, usize) + Send + Sync),
    ) -> Result<crate::migrate::Report> {
        match &self.backend {
            Backend::Pg(p) => p.migrate(&self.catalog, progress).await,
            Backend::Sqlite(s) => s.migrate(&self.catalog, progress).await,
        }
    }

    /// Creates `org`'s placement database (see [`crate::placement::provision_database`]).
    pub(crate) async fn provision_database(
        &self,
        org: OrgId,
        target: Option<&str>,
    ) -> Result<crate::placement::DatabasePlacement> {
        match &self.backend {
            Backend::Pg(p) => p.provision_database(&self.catalog, org, target).await,
            Backend::Sqlite(_) => Err(sqlite_has_no_database_placement()),
        }
    }

    /// Drops `org`'s placement database (see [`crate::placement::drop_database`]).
    pub(crate) async fn drop_placement_database(
        &self,
        org: OrgId,
        target: Option<&str>,
    ) -> Result<()> {
        match (&self.backend, target) {
            (Backend::Pg(p), _) => p.drop_placement_database(org, target).await,
            (Backend::Sqlite(s), None) => s.files().remove(&crate::placement::database_name(org)),
            (Backend::Sqlite(_), Some(_)) => Err(no_targets()),
        }
    }

    /// Drops `org`'s placement schema if it exists (PostgreSQL; see
    /// `postgres::placement::drop_schema`).
    pub(crate) async fn drop_placement_schema(&self, org: OrgId) -> Result<()> {
        match &self.backend {
            Backend::Pg(p) => p.drop_placement_schema(org).await,
            Backend::Sqlite(_) => Ok(()),
        }
    }

    /// Keeps `org`'s members projection in step after a membership change committed by a
    /// transaction without a data plane (accepting an invitation): in a transaction of
    /// its own on the org's database, if it has one. A failure here leaves the member
    /// unassignable in that database (never the reverse) and is named by the doctor.
    pub(crate) async fn project_member(
        &self,
        org: OrgId,
        user: UserId,
        member: bool,
    ) -> Result<()> {
        let route = self.lookup_route(org).await?;
        if !matches!(route, Route::Database { .. }) {
            return Ok(());
        }
        // The control transaction first (on SQLite its write lock orders this after any
        // placement change, which takes the control file's lock before the org's file).
        let mut tx = self
            .begin_on(&self.backend, Mode::Write, Settings::org(org))
            .await?;
        tx.data = self
            .placement(&route, Mode::Write, &Settings::org(org))
            .await?;
        // The membership as the control plane has it now, locked until the projection has
        // committed (data first): a removal meanwhile waits for it, and one already
        // committed is not undone here. PostgreSQL: a key-share lock on the row; SQLite:
        // the control file's write lock, which this write transaction holds.
        let sql = match self.kind() {
            BackendKind::Postgres => {
                "SELECT 1 FROM memberships WHERE org_id = $1 AND user_id = $2 FOR KEY SHARE"
            }
            BackendKind::Sqlite => "SELECT 1 FROM memberships WHERE org_id = $1 AND user_id = $2",
        };
        let present = tx
            .query_opt(sql, &[Val::Uuid(org.uuid()), Val::Uuid(user.uuid())])
            .await?
            .is_some();
        tx.project_member(user, member && present).await?;
        tx.commit().await
    }

    /// Places `org`'s data plane (see [`crate::placement::set`]); the access cache
    /// forgets the org (other instances hear it from the directory's trigger).
    pub(crate) async fn place(&self, org: OrgId, kind: crate::placement::Kind) -> Result<Route> {
        let r = match &self.backend {
            Backend::Pg(p) => p.place(&self.catalog, org, kind).await?,
            Backend::Sqlite(s) => {
                let (s, catalog) = (s.clone(), self.catalog.clone());
                tokio::task::spawn_blocking(move || {
                    sqlite::placement::place(&s, &catalog, org, &kind)
                })
                .await
                .map_err(Error::internal)??
            }
        };
        self.cache.invalidate(Dep::Org(org));
        Ok(r)
    }

    /// See [`crate::placement::start_move`].
    pub(crate) async fn start_move(
        &self,
        org: OrgId,
        kind: crate::placement::Kind,
    ) -> Result<crate::placement::Move> {
        match &self.backend {
            Backend::Pg(p) => p.start_move(org, kind).await,
            Backend::Sqlite(s) => {
                let s = s.clone();
                tokio::task::spawn_blocking(move || sqlite::mover::start(&s, org, &kind))
                    .await
                    .map_err(Error::internal)?
            }
        }
    }

    /// See [`crate::placement::run_move`].
    pub(crate) async fn run_move(
        &self,
        org: OrgId,
        opts: crate::placement::MoveOptions,
        progress: &(dyn Fn(&crate::placement::Move) + Sync),
    ) -> Result<Route> {
        match &self.backend {
            Backend::Pg(p) => p.run_move(&self.catalog, org, opts, progress).await,
            // In place on this task's thread: the progress callback is not 'static.
            Backend::Sqlite(s) => tokio::task::block_in_place(|| {
                sqlite::mover::run(s, &self.catalog, org, opts, progress)
            }),
        }
    }

    /// See [`crate::placement::abort_move_with`].
    pub(crate) async fn abort_move(
        &self,
        org: OrgId,
        opts: crate::placement::MoveOptions,
    ) -> Result<bool> {
        match &self.backend {
            Backend::Pg(p) => p.abort_move(&self.catalog, org, opts).await,
            Backend::Sqlite(s) => {
                let (s, catalog) = (s.clone(), self.catalog.clone());
                tokio::task::spawn_blocking(move || sqlite::mover::abort(&s, &catalog, org))
                    .await
                    .map_err(Error::internal)?
            }
        }
    }

    /// See [`crate::placement::moves`].
    pub(crate) async fn moves(&self) -> Result<Vec<crate::placement::Move>> {
        match &self.backend {
            Backend::Pg(p) => p.moves().await,
            Backend::Sqlite(s) => {
                let s = s.clone();
                tokio::task::spawn_blocking(move || sqlite::mover::list(&s))
                    .await
                    .map_err(Error::internal)?
            }
        }
    }

    /// Drops this process's cached access and route of `org` (after its placement changed).
    pub(crate) fn forget_org(&self, org: OrgId) {
        self.cache.invalidate(Dep::Org(org));
    }

    /// See [`crate::placement::add_target`].
    pub(crate) async fn add_target(
        &self,
        name: &str,
        url: &str,
        max_connections: Option<u32>,
    ) -> Result<crate::placement::Target> {
        match &self.backend {
            Backend::Pg(p) => p.add_target(name, url, max_connections).await,
            Backend::Sqlite(_) => Err(no_targets()),
        }
    }

    /// See [`crate::placement::set_target_budget`].
    pub(crate) async fn set_target_budget(
        &self,
        name: &str,
        max_connections: Option<u32>,
    ) -> Result<crate::placement::Target> {
        match &self.backend {
            Backend::Pg(p) => p.set_target_budget(name, max_connections).await,
            Backend::Sqlite(_) => Err(no_targets()),
        }
    }

    /// See [`crate::placement::targets`].
    pub(crate) async fn targets(&self) -> Result<Vec<crate::placement::Target>> {
        match &self.backend {
            Backend::Pg(p) => p.targets().await,
            Backend::Sqlite(_) => Ok(Vec::new()),
        }
    }

    /// See [`crate::placement::remove_target`].
    pub(crate) async fn remove_target(&self, name: &str) -> Result<()> {
        match &self.backend {
            Backend::Pg(p) => p.remove_target(name).await,
            Backend::Sqlite(_) => Err(no_targets()),
        }
    }

    /// The data-plane versions recorded in a placement schema, and its size in bytes
    /// (operators).
    pub(crate) async fn placement_versions(
        &self,
        schema: &str,
    ) -> Result<(Vec<(String, i64)>, i64)> {
        match &self.backend {
            Backend::Pg(p) => p.placement_versions(schema).await,
            Backend::Sqlite(_) => Ok((Vec::new(), 0)),
        }
    }

    /// The data-plane versions recorded in placement database `name` on `target` (on
    /// SQLite, the org's file), and its size in bytes.
    pub(crate) async fn database_versions(
        &self,
        name: &str,
        target: Option<&str>,
    ) -> Result<(Vec<(String, i64)>, i64)> {
        match (&self.backend, target) {
            (Backend::Pg(p), _) => p.database_versions(name, target).await,
            (Backend::Sqlite(s), None) => {
                let (s, name) = (s.clone(), name.to_owned());
                tokio::task::spawn_blocking(move || sqlite::placement::versions(s.files(), &name))
                    .await
                    .map_err(Error::internal)?
            }
            (Backend::Sqlite(_), Some(_)) => Err(no_targets()),
        }
    }

    /// Checks the walls against the live catalog.
    pub async fn doctor(&self) -> Result<Vec<crate::doctor::Violation>> {
        match &self.backend {
            Backend::Pg(p) => p.doctor(&self.catalog).await,
            Backend::Sqlite(s) => s.doctor(&self.catalog).await,
        }
    }

    /// (connections allowed, connections in use) of the pool.
    pub fn pool_status(&self) -> (usize, usize) {
        match &self.backend {
            Backend::Pg(p) => p.pool_status(),
            Backend::Sqlite(s) => s.pool_status(),
        }
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<()> {
        let mut tx = self.global(Mode::Read).await?;
        tx.query("SELECT 1", &[]).await?;
        tx.commit().await
    }

    /// The one place that decides which database serves an organization's data plane,
    /// given its route (see [`crate::placement`]): the shared tables and placement
    /// schemas live in the control database (the route's schema goes on the transaction's
    /// search path in its prelude); an org's own database gets a transaction of its own
    /// beside the control one, for the data-plane statements ([`TenantTx::data`]).
    async fn placement(
        &self,
        route: &Route,
        mode: Mode,
        settings: &Settings,
    ) -> Result<Option<Box<Placed>>> {
        let tx = match (route, &self.backend) {
            (Route::Shared | Route::Schema(_), _) => return Ok(None),
            (Route::Database { name, target }, Backend::Pg(p)) => PlacedTx::Pg(
                p.begin_placed(name, target.as_ref(), mode, settings.clone())
                    .await?,
            ),
            (Route::Database { name, target: None }, Backend::Sqlite(s)) => {
                PlacedTx::Sqlite(s.begin_placed(name, mode, settings.clone()).await?)
            }
            (Route::Database { .. }, Backend::Sqlite(_)) => {
                return Err(Error::Internal(
                    "an org placed on a target server on SQLite".into(),
                ))
            }
        };
        Ok(Some(Box::new(Placed {
            tx,
            route: route.clone(),
            settings: settings.clone(),
        })))
    }

    /// Where `scope`'s org lives: as read with its access, else from the directory (and
    /// remembered in the scope for its next transactions).
    async fn route(&self, scope: &OrgScope) -> Result<Route> {
        if let Some(r) = scope.route() {
            return Ok(r);
        }
        let r = self.lookup_route(scope.org_id()).await?;
        scope.set_route(r.clone());
        Ok(r)
    }

    /// Reads `org`'s route from the directory (an org with no entry is shared).
    pub(crate) async fn lookup_route(&self, org: OrgId) -> Result<Route> {
        let mut tx = self.global(Mode::Read).await?;
        let row = tx
            .query_opt(
                "SELECT kind, location, target FROM placements WHERE org_id = $1",
                &[Val::Uuid(org.uuid())],
            )
            .await?;
        tx.commit().await?;
        match row {
            None => Ok(Route::Shared),
            Some(r) => Route::from_parts(&r.get::<String>(0)?, r.get(1)?, r.get(2)?),
        }
    }

    async fn begin_on(&self, backend: &Backend, mode: Mode, settings: Settings) -> Result<Tx> {
        self.begin_checked(backend, mode, settings, None, false)
            .await
    }

    async fn begin_checked(
        &self,
        backend: &Backend,
        mode: Mode,
        settings: Settings,
        recheck: Option<Recheck>,
        lazy: bool,
    ) -> Result<Tx> {
        let org = settings.org;
        let inner = match backend {
            Backend::Pg(p) if lazy => TxInner::Pg(p.begin_lazy(mode, settings)),
            Backend::Pg(p) => TxInner::Pg(p.begin(mode, settings).await?),
            Backend::Sqlite(s) => TxInner::Sqlite(s.begin(mode, settings).await?),
        };
        Ok(Tx {
            inner,
            data: None,
            cache: self.cache.clone(),
            org,
            announce: Announce::Nothing,
            projected: Projected::default(),
            recheck,
            router: None,
            stales: 0,
            // Set by `tenant` once its own checks (SQLite's directory read) are done.
            once: None,
        })
    }

    /// Opens a transaction with exactly `settings` as its scope (access module only):
    /// on the control plane (no placement route).
    pub(crate) async fn begin(&self, mode: Mode, settings: Settings) -> Result<Tx> {
        self.begin_on(&self.backend, mode, settings).await
    }

    /// A transaction over global tables (users, sessions, orgs, jobs). Tenant tables are
    /// unreachable from it: zero rows on PostgreSQL, refused on SQLite.
    pub async fn global(&self, mode: Mode) -> Result<Tx> {
        self.begin(mode, Settings::default()).await
    }

    /// A named system transaction: it reaches every org's rows (and the org-less ones) of
    /// the system table `table` (a job queue, an outbox) and nothing more than a global
    /// transaction otherwise: no tenant table, no other system table's rows. `table` must
    /// be a system table a registered module declares ([`crate::Module::system_tables`]);
    /// anything else is refused. Each one is logged (`system` field, at debug level: the
    /// worker opens several per job).
    pub async fn system(&self, table: &str, mode: Mode) -> Result<Tx> {
        let Some(name) = self.catalog.system_table(table) else {
            return Err(Error::Validation(format!(
                "{table:?} is not a system table any registered module declares"
            )));
        };
        tracing::debug!(system = name, ?mode, "system transaction");
        self.begin(
            mode,
            Settings {
                system: Some(name),
                ..Settings::default()
            },
        )
        .await
    }

    /// A read-only transaction inside `scope`'s organization.
    pub async fn read<'s>(&self, scope: &'s OrgScope) -> Result<TenantTx<'s>> {
        self.tenant(scope, Mode::Read, false, true).await
    }

    /// A read-only transaction inside `scope`'s organization that sends **one flight**
    /// (one `query`, `execute` or `query_many`; a second is refused): on PostgreSQL a read
    /// lane carries it, as one implicit transaction pipelined with other requests' (see
    /// ARCHITECTURE.md, *Read lanes*). For the hot reads of one statement or one batch; a
    /// read of several dependent steps takes [`Db::read`], whose transaction a move's
    /// cleanup waits for.
    pub async fn read_once<'s>(&self, scope: &'s OrgScope) -> Result<TenantTx<'s>> {
        self.tenant(scope, Mode::Read, true, true).await
    }

    /// A read-write transaction inside `scope`'s organization.
    pub async fn write<'s>(&self, scope: &'s OrgScope) -> Result<TenantTx<'s>> {
        self.tenant(scope, Mode::Write, false, true).await
    }

    async fn tenant<'s>(
        &self,
        scope: &'s OrgScope,
        mode: Mode,
        once: bool,
        again: bool,
    ) -> Result<TenantTx<'s>> {
        let mut settings = Settings::org(scope.org_id());
        settings.once = once;
        settings.route = self.route(scope).await?;
        settings.routed = true;
        let placed = matches!(settings.route, Route::Database { .. });
        let sqlite = matches!(self.backend, Backend::Sqlite(_));
        let backend = &self.backend;
        let fresh = scope.fresh();
        // Only PostgreSQL needs the check: on SQLite (one embedded server) the changing
        // transaction invalidates the only cache there is when it commits.
        let recheck = match backend {
            Backend::Pg(_)
                if !fresh.checks.is_empty()
                    && !fresh.confirmed.load(std::sync::atomic::Ordering::SeqCst) =>
            {
                settings.checks = fresh.checks.clone();
                Some(Recheck {
                    org: scope.org_id(),
                    principal: scope.principal().clone(),
                    session: fresh.session,
                    slug: fresh.slug.clone(),
                    held: scope.permissions(),
                    confirmed: fresh.confirmed.clone(),
                })
            }
            _ => None,
        };
        // (Before the org's own database is opened: a read there from such a scope
        // checks it in its own first flight, see `PgDb::begin_placed`.)
        let data = if placed && !sqlite {
            // Boxed: only an org in a database of its own pays for its future.
            match Box::pin(self.placement(&settings.route, mode, &settings)).await {
                Ok(d) => d,
                // The database the scope learned may be gone: its org moved out (a move's
                // cleanup, or `placement set` of an empty org, dropped it). Routed anew,
                // once, if the directory now says so; else the error stands.
                Err(e) if again => {
                    let now = Box::pin(self.lookup_route(scope.org_id())).await?;
                    if now == settings.route {
                        return Err(e);
                    }
                    self.cache.invalidate(Dep::Org(scope.org_id()));
                    scope.set_route(now);
                    return Box::pin(self.tenant(scope, mode, once, false)).await;
                }
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        // What can find the org placed elsewhere in its first flight: an access check, or
        // the directory read in it (a write's after the fence; PostgreSQL; SQLite checks
        // below).
        let router = match backend {
            Backend::Pg(_) => Some(Box::new(Router {
                db: self.clone(),
                route: scope.route_cell(),
            })),
            Backend::Sqlite(_) => None,
        };
        let route = settings.route.clone();
        // A mirrored read may send nothing to the control database: it borrows a
        // connection there only if it does.
        let lazy = tx_mirrored(&data);
        let mut tx = self
            .begin_checked(backend, mode, settings.clone(), recheck, lazy)
            .await?;
        tx.data = data;
        tx.router = router;
        if sqlite {
            // Boxed: SQLite only, and it keeps every PostgreSQL request's future small.
            if let Err(e) = Box::pin(self.directory_agrees(&mut tx, scope, &route)).await {
                // The org moved since its route was learned: routed anew, once.
                drop(tx);
                return match again {
                    true => Box::pin(self.tenant(scope, mode, once, false)).await,
                    false => Err(e),
                };
            }
        }
        if placed && sqlite {
            // After the control transaction: its write lock comes first, as in placing.
            match Box::pin(self.placement(&route, mode, &settings)).await {
                Ok(d) => tx.data = d,
                // A read's control snapshot may predate a move out of the file, whose
                // cleanup removed it since (a write holds the control file's write lock,
                // which the flip takes, so it cannot be that late). Routed anew, once, if
                // the directory now says so; else the error stands.
                Err(e) if again => {
                    drop(tx);
                    let now = Box::pin(self.lookup_route(scope.org_id())).await?;
                    if now == route {
                        return Err(e);
                    }
                    self.cache.invalidate(Dep::Org(scope.org_id()));
                    scope.set_route(now);
                    return Box::pin(self.tenant(scope, mode, once, false)).await;
                }
                Err(e) => return Err(e),
            }
        }
        tx.once = once.then_some(false);
        Ok(TenantTx { tx, scope })
    }
}

impl Db {
    /// SQLite transactions: the route is checked against the directory (one indexed read),
    /// writes holding the control file's write lock, so a placement changed since the
    /// scope learned its route is not written past (see `sqlite::placement::place` and
    /// `sqlite::mover`, which take the same lock); reads in their control snapshot, so a
    /// read never follows a route the directory no longer names (a move out of the shared
    /// tables deletes the org's rows there in the transaction that flips the directory,
    /// and another process's move is not announced to this one's cache). On a mismatch the
    /// scope forgets its route and the transaction is begun again once on the new one.
    async fn directory_agrees(&self, tx: &mut Tx, scope: &OrgScope, route: &Route) -> Result<()> {
        let now = tx
            .query_opt(
                "SELECT kind, location FROM placements WHERE org_id = $1",
                &[Val::Uuid(scope.org_id().uuid())],
            )
            .await?;
        let now = match now {
            Some(r) => Route::from_parts(&r.get::<String>(0)?, r.get(1)?, None)?,
            None => Route::Shared,
        };
        if now != *route {
            self.cache.invalidate(Dep::Org(scope.org_id()));
            scope.forget_route();
            return Err(Error::Unavailable(
                "the organization's placement changed while the request was served; send it again"
                    .into(),
            ));
        }
        Ok(())
    }
}

// Not boxed: a transaction per request, and a box would be an allocation per request for
// a value that lives in one future.
#[allow(clippy::large_enum_variant)]
pub(crate) enum TxInner {
    Pg(pg::PgTx),
    Sqlite(sqlite::SqliteTx),
}

/// How a tenant transaction opened from a scope with cached access re-verifies it when its
/// first flight finds the access changed (see [`crate::access::OrgScope`]).
pub(crate) struct Recheck {
    org: OrgId,
    principal: crate::access::Principal,
    session: Option<orgwall_core::SessionId>,
    slug: Option<std::sync::Arc<str>>,
    held: orgwall_core::PermissionSet,
    confirmed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// How a routed tenant transaction on PostgreSQL follows its org when its first flight
/// finds the org placed elsewhere (a move's cut-over, a `placement set`, found after the
/// write fence or by a stale access check): the route is read again and the transaction
/// begun again there before anything was answered to its caller (see [`Tx::verify_again`]).
pub(crate) struct Router {
    db: Db,
    /// The scope's route: replaced by the one read again (a placement change also bumps
    /// the org's access generation, so cached scopes find it in their access check).
    route: crate::scope::RouteCell,
}

/// What an operation's answer asks of its caller (see [`Tx::settle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    /// The answer stands.
    Done,
    /// Send the same flight again (the scope was verified again).
    Again,
    /// The org is served from another placement now: dispatch the operation again, on
    /// this transaction's new planes (a data statement may now go to another database).
    Rerouted,
}

/// The error a first flight answers when the access it checked changed (PostgreSQL).
pub(crate) const STALE: &str = "access_stale";

/// Whether `data` is a transaction on an org's own database that checks its scope against
/// the database's access mirror.
fn tx_mirrored(data: &Option<Box<Placed>>) -> bool {
    matches!(data.as_deref(), Some(Placed { tx: PlacedTx::Pg(d), .. }) if d.mirror_pending())
}

/// Whether `r` is a first flight's answer that its scope is stale.
fn is_stale<T>(r: &Result<T>) -> bool {
    matches!(r, Err(Error::Refused(code, _)) if *code == STALE)
}

/// Flights of one transaction that may find its scope stale before giving up.
const STALE_RETRIES: u32 = 5;

/// The wait before verifying a stale scope the second time, four times longer each time
/// after (5, 20, 80 ms before the third, fourth and fifth flights): a scope found stale
/// again and again is one whose org's access is changing in a burst (a member removed
/// and added back, roles edited), and tries sent back to back all land inside it (three
/// did, once, in CI's two-instance revocation test: 503 for an unrelated read).
const STALE_PAUSE: std::time::Duration = std::time::Duration::from_millis(5);

/// What a transaction's commit announces to the access cache.
#[derive(Debug)]
enum Announce {
    Nothing,
    Some(Vec<Dep>),
    All,
}

/// A database transaction. Dropping it without [`Tx::commit`] rolls it back.
///
/// A transaction whose code declared an access change ([`Tx::access_changed`]) announces
/// it to this process's access cache when it commits.
pub struct Tx {
    inner: TxInner,
    /// The transaction on the org's own database, with its route (an org placed in a
    /// database of its own: its data-plane statements run there, see [`TenantTx::data`]).
    /// (Boxed: only such an org pays for its size.) The settings are its first flight's,
    /// kept to start it again after a stale check.
    data: Option<Box<Placed>>,
    cache: std::sync::Arc<AccessCache>,
    /// The org of the current scope.
    org: Option<OrgId>,
    announce: Announce,
    /// Set while the first flight's access check is pending.
    recheck: Option<Recheck>,
    /// Set for a routed tenant transaction on PostgreSQL (boxed: a write of an unplaced
    /// scope and every cached one carry it, the rest pay a pointer).
    router: Option<Box<Router>>,
    /// What this transaction did to its org's members projection (the commit order
    /// follows from it, see [`Tx::commit`]).
    projected: Projected,
    /// How many times its scope was found stale (see [`STALE_PAUSE`]).
    stales: u32,
    /// A one-flight read ([`Db::read_once`]): `Some(false)` until its flight was sent,
    /// then `Some(true)`; a second is refused on every backend and pool size, not only
    /// where a read lane carries it.
    once: Option<bool>,
}

/// Members projection changes of one transaction.
#[derive(Default, Clone, Copy)]
struct Projected {
    added: bool,
    removed: bool,
}

impl Tx {
    /// After an operation: a stale scope (or a route found stale after the write fence)
    /// is verified again and the transaction follows its org (see [`Settled`]); anything
    /// else is the answer, and confirms the scope if it succeeded.
    async fn settle<T>(&mut self, r: &Result<T>) -> Result<Settled> {
        match r {
            // Boxed: rare, and it keeps every statement's future small.
            Err(Error::Refused(code, _)) if *code == STALE => Box::pin(self.verify_again()).await,
            Ok(_) => {
                if let Some(rc) = self.recheck.take() {
                    rc.confirmed
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                }
                Ok(Settled::Done)
            }
            Err(_) => Ok(Settled::Done),
        }
    }

    /// Verifies a stale scope again, reads the org's route again and follows it (see
    /// [`Tx::settle`]). Only a first flight finds a scope stale: nothing this transaction
    /// did was answered to its caller yet, and what it sent was rolled back.
    async fn verify_again(&mut self) -> Result<Settled> {
        self.stales = self.stales.saturating_add(1);
        if let TxInner::Pg(t) = &mut self.inner {
            // Verifying borrows from the pool this transaction holds a connection of.
            t.release_unsent();
        }
        if (2..STALE_RETRIES).contains(&self.stales) {
            tokio::time::sleep(STALE_PAUSE * 4u32.saturating_pow(self.stales - 2)).await;
        }
        let Some(router) = &self.router else {
            if let Some(org) = self.org {
                self.cache.invalidate(Dep::Org(org));
            }
            return Err(Error::Unavailable(
                "the organization's placement changed while the request was served; send it again"
                    .into(),
            ));
        };
        let db = router.db.clone();
        let cell = router.route.clone();
        let Some(org) = self.org else {
            return Err(Error::Internal(
                "a routed transaction without an org".into(),
            ));
        };
        let mut checks = Vec::new();
        match &self.recheck {
            Some(rc) => {
                // Boxed: verifying runs transactions of its own (without checks).
                let fresh: Result<Vec<(uuid::Uuid, i64)>> = Box::pin(crate::access::reverify(
                    &db,
                    rc.org,
                    &rc.principal,
                    rc.session,
                    rc.held,
                ))
                .await;
                checks = fresh?;
                if let Some(slug) = &rc.slug {
                    // `reverify` dropped the org's cache entries, the slug's among them.
                    let now = Box::pin(crate::identity::orgs::resolve(&db, slug)).await;
                    if !matches!(now, Ok(id) if id == rc.org) {
                        return Err(Error::Unavailable(format!(
                            "the organization {slug} changed while the request was served; send it again"
                        )));
                    }
                }
                tracing::info!(org_id = %rc.org, "cached access was stale: verified again before use");
            }
            // A scope verified for this request, not from the cache: its access stands (a
            // move changes no access); only its route was stale.
            None => self.cache.invalidate(Dep::Org(org)),
        }
        let route = Box::pin(db.lookup_route(org)).await?;
        *cell
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(route.clone());
        let before = self.data.as_ref().map(|d| d.route.clone());
        let now_in_database = matches!(route, Route::Database { .. });
        let relaid = match &before {
            Some(r) => *r != route,
            None => now_in_database,
        };
        // The new data plane first: if it cannot be opened, the transaction is left as it
        // was (its first flight unsent, on the old route), so sending anything again finds
        // the route stale again, never a data statement on the wrong plane.
        let data = match relaid {
            true => {
                let (mode, mut settings) = self.settings_for(&route)?;
                settings.checks.clone_from(&checks);
                Some(Box::pin(db.placement(&route, mode, &settings)).await?)
            }
            false => None,
        };
        if let TxInner::Pg(t) = &mut self.inner {
            t.set_checks(checks, route).await?;
        }
        let Some(data) = data else {
            return Ok(Settled::Again);
        };
        // The transaction on the database the org left (if any) is dropped unsent or
        // with its ROLLBACK queued (see `PgTx`'s drop). A move's cut-over held the fence
        // this write waited at, so the new placement holds every acknowledged write.
        self.data = data;
        tracing::info!(org_id = %org, "the org was placed elsewhere: the transaction follows it");
        Ok(Settled::Rerouted)
    }

    /// This transaction's mode and first-flight settings with `route` (the data plane
    /// of a transaction that follows its org, see [`Tx::verify_again`]).
    fn settings_for(&self, route: &Route) -> Result<(Mode, Settings)> {
        let TxInner::Pg(t) = &self.inner else {
            return Err(Error::Internal("rerouted on SQLite".into()));
        };
        let Some(mut settings) = t.pending_settings() else {
            return Err(Error::Internal(
                "rerouted after the first flight was answered".into(),
            ));
        };
        settings.route = route.clone();
        Ok((t.mode(), settings))
    }

    /// Whether the next data-plane operation of an org in a database of its own must ride
    /// beside a control flight (see [`Tx::both`]): the scope's access check is pending,
    /// or the route check (a write's after its org's fence) has not been sent yet.
    fn checking(&self) -> bool {
        self.recheck.is_some() || matches!(&self.inner, TxInner::Pg(t) if t.route_unsent())
    }

    /// Runs `op` on the control transaction, sent again while the scope is found stale.
    /// `None`: the org was rerouted and `op` is a data-plane operation: the caller
    /// dispatches it again (it may now belong to another database).
    async fn on_inner(&mut self, op: &DataOp<'_>, data: bool) -> Result<Option<DataOut>> {
        for _ in 0..STALE_RETRIES {
            // (Each time: a stale flight is sent again, maybe beside a new data plane.)
            self.control_first();
            let r = match &mut self.inner {
                TxInner::Pg(t) => op.run(t).await,
                TxInner::Sqlite(t) => op.run_sqlite(t).await,
            };
            match self.settle(&r).await? {
                Settled::Done => return r.map(Some),
                Settled::Rerouted if data => return Ok(None),
                Settled::Again | Settled::Rerouted => {}
            }
        }
        Err(still_stale())
    }

    /// Runs a control-plane `op` (see [`Tx::on_inner`]).
    async fn control_op(&mut self, op: DataOp<'_>) -> Result<DataOut> {
        self.one_flight(&op)?;
        let r = self
            .on_inner(&op, false)
            .await?
            .ok_or_else(|| Error::Internal("a control operation rerouted".into()));
        self.flown(&op);
        r
    }

    /// Refuses a one-flight read's second flight.
    fn one_flight(&self, op: &DataOp<'_>) -> Result<()> {
        match (self.once, op) {
            (Some(true), op) if !matches!(op, DataOp::Columns(_)) => Err(Error::Internal(
                "a one-flight read sent a second flight".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Notes a one-flight read's flight sent.
    fn flown(&mut self, op: &DataOp<'_>) {
        if self.once.is_some() && !matches!(op, DataOp::Columns(_)) {
            self.once = Some(true);
        }
    }

    /// Which backend runs this transaction (for the rare statement whose SQL differs).
    pub fn kind(&self) -> BackendKind {
        match &self.inner {
            TxInner::Pg(_) => BackendKind::Postgres,
            TxInner::Sqlite(_) => BackendKind::Sqlite,
        }
    }

    /// Records that the commit must announce `dep` (crate only: session changes).
    pub(crate) fn announce(&mut self, dep: Dep) {
        match &mut self.announce {
            Announce::All => {}
            Announce::Some(v) => v.push(dep),
            a @ Announce::Nothing => *a = Announce::Some(vec![dep]),
        }
    }

    /// Declares that this transaction changes access data (an org's row or plan, its
    /// memberships, roles or API keys, or a plan): when it commits, this process's access
    /// cache forgets the org of its scope, or everything when it has none. Every
    /// repository that writes those tables calls it; other processes hear the change from
    /// the database (PostgreSQL `NOTIFY` triggers on the same tables).
    pub fn access_changed(&mut self) {
        match self.org {
            Some(o) => self.announce(Dep::Org(o)),
            None => self.announce = Announce::All,
        }
    }

    /// Runs a statement written with `$1, $2, ...` placeholders and returns its rows.
    pub async fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>> {
        match self.control_op(DataOp::Query(sql, params)).await? {
            DataOut::Rows(r) => Ok(r),
            _ => Err(other_kind()),
        }
    }

    /// Runs independent read statements together and returns each one's rows, in order.
    /// On PostgreSQL they are pipelined: one network round trip for all of them.
    pub async fn query_many(&mut self, stmts: &[(&str, &[Val])]) -> Result<Vec<Vec<Row>>> {
        match self.control_op(DataOp::Many(stmts)).await? {
            DataOut::Many(r) => Ok(r),
            _ => Err(other_kind()),
        }
    }

    /// Runs a statement and returns the number of rows it changed.
    pub async fn execute(&mut self, sql: &str, params: &[Val]) -> Result<u64> {
        match self.control_op(DataOp::Execute(sql, params)).await? {
            DataOut::Count(n) => Ok(n),
            _ => Err(other_kind()),
        }
    }

    /// The first row, or `None`.
    pub async fn query_opt(&mut self, sql: &str, params: &[Val]) -> Result<Option<Row>> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    /// The first row, or [`Error::NotFound`].
    pub async fn query_one(&mut self, sql: &str, params: &[Val]) -> Result<Row> {
        self.query_opt(sql, params).await?.ok_or(Error::NotFound)
    }

    /// Commits, then announces any access change it made. An org in a database of its
    /// own commits its data plane first, then the control plane: a failure between the
    /// two leaves the data change without its control-plane side (an audit event, a
    /// queued job), never a control change (a removed member) without the data
    /// projection that enforces it. A transaction that only *added* members to the
    /// projection commits the other way round, for the same reason: a failure between
    /// leaves a member not yet projected (unassignable until the doctor's repair), never
    /// a projected user whose membership was rolled back.
    pub async fn commit(mut self) -> Result<()> {
        // A write to an org in a database of its own passes the org's write fence before
        // its data plane commits: in that database (its mirrored first flight; the
        // control transaction is then unfenced), or else on the control database (its
        // control transaction's first flight, which also reads the directory). A move's
        // cut-over holds both, so no data commit lands in the placement an org is leaving
        // after the drain. (Every data statement of a write fenced on the control
        // database rides beside that flight, see [`Tx::checking`]: one still unsent here
        // means nothing was written yet, and a route found stale now just moves this
        // empty transaction along, see [`Tx::verify_again`].)
        if matches!(
            self.data.as_deref(),
            Some(Placed {
                tx: PlacedTx::Pg(_),
                ..
            })
        ) {
            if let TxInner::Pg(t) = &self.inner {
                if t.fence_unsent() {
                    const PASS: &[(&str, &[Val])] = &[(pg::BARE, &[])];
                    self.query_many(PASS).await?;
                }
            }
        }
        let control_first = self.projected.added && !self.projected.removed;
        let mut data = self.data;
        // Boxed: only an org in a database of its own pays for its future.
        if !control_first {
            if let Some(d) = data.take() {
                Box::pin(d.tx.commit()).await?;
            }
        }
        let mirrors = match self.inner {
            TxInner::Pg(t) => t.commit_deferred().await?,
            TxInner::Sqlite(t) => {
                t.commit().await?;
                None
            }
        };
        if let Some(d) = data {
            Box::pin(d.tx.commit()).await?;
        }
        // Once both planes' connections are back in their pools.
        if let Some(m) = mirrors {
            Box::pin(m.write()).await?;
        }
        match self.announce {
            Announce::Nothing => {}
            Announce::Some(deps) => deps.into_iter().for_each(|d| self.cache.invalidate(d)),
            Announce::All => self.cache.invalidate_all(),
        }
        Ok(())
    }

    /// Rolls back (dropping does the same, without waiting).
    pub async fn rollback(self) -> Result<()> {
        if let Some(data) = self.data {
            Box::pin(data.tx.rollback()).await?;
        }
        match self.inner {
            TxInner::Pg(t) => t.rollback().await,
            TxInner::Sqlite(t) => t.rollback().await,
        }
    }

    /// The columns a statement returns, each with whether its values can be read (the
    /// export names each row's fields). The statement is compiled, not run.
    pub async fn columns(&mut self, sql: &str) -> Result<Vec<(String, bool)>> {
        match &mut self.inner {
            TxInner::Pg(t) => t.columns(sql).await,
            TxInner::Sqlite(t) => Ok(t
                .columns(sql)
                .await?
                .into_iter()
                .map(|c| (c, true))
                .collect()),
        }
    }

    /// Deletes the org row of this transaction's own scope, and with it (cascade) every
    /// tenant row of that org, if it is marked for deletion. The org purge's named system
    /// path: called only by `access::jobs::purge_rows`, with a purge scope. On SQLite the
    /// cascade needs the authorizer's purge phase (see `sqlite::SqliteTx::purge_org`).
    /// (An org placed in a schema or database of its own lost it just before, see
    /// `purge_rows`.)
    pub(crate) async fn purge_org_row(&mut self, org: OrgId) -> Result<u64> {
        self.announce(Dep::Org(org));
        match &mut self.inner {
            TxInner::Pg(t) => {
                let n = t
                    .execute(
                        "DELETE FROM orgs WHERE id = $1 AND deleting_at IS NOT NULL
                       AND id = (SELECT nullif(current_setting('app.org_id', true), '')::uuid)",
                        &[Val::Uuid(org.uuid())],
                    )
                    .await?;
                Ok(n)
            }
            TxInner::Sqlite(t) => t.purge_org(org).await,
        }
    }

    /// Changes the scope inside an open transaction (access module only: creating an org
    /// writes its global row, then its tenant rows, in one transaction).
    pub(crate) async fn rescope(&mut self, settings: Settings) -> Result<()> {
        self.org = settings.org;
        match &mut self.inner {
            TxInner::Pg(t) => t.rescope(settings).await,
            TxInner::Sqlite(t) => t.rescope(settings).await,
        }
    }
}

impl Tx {
    /// For an org in a database of its own: runs `op` on its database and, when the scope
    /// was built from cached access and not confirmed yet, `control` (or a bare `SELECT 1`)
    /// on the control transaction at the same time, whose first flight carries the access
    /// check. If the check finds the access changed, what `op` did is rolled back and its
    /// answer dropped, the scope is verified again, and both are sent again: a data read is
    /// never served, nor a data write committed, on revoked access, at no extra round trip.
    async fn both(
        &mut self,
        control: &[(&str, &[Val])],
        op: &DataOp<'_>,
    ) -> Result<Option<(Vec<Vec<Row>>, DataOut)>> {
        const BARE: &[(&str, &[Val])] = &[(pg::BARE, &[])];
        for _ in 0..STALE_RETRIES {
            self.control_first();
            let sent = if self.checking() && control.is_empty() {
                BARE
            } else {
                control
            };
            let (c, d) = match (&mut self.inner, self.data.as_deref_mut()) {
                (
                    TxInner::Pg(c),
                    Some(Placed {
                        tx: PlacedTx::Pg(d),
                        ..
                    }),
                ) => {
                    // Boxed: both futures at once are large, and only such an org pays.
                    Box::pin(async { futures::join!(c.query_many(sent), op.run(d)) }).await
                }
                _ => return Err(Error::Internal("no data plane of its own".into())),
            };
            // Either flight may find the scope stale: the control one, or the data one
            // against its database's access mirror (a mirrored read, see `PgDb::begin_placed`).
            let stale = is_stale(&c) || is_stale(&d);
            let settled = match stale {
                true => Box::pin(self.verify_again()).await?,
                false => Box::pin(self.settle(&c)).await?,
            };
            if stale && settled == Settled::Again {
                // The same database again: what the data flight did is rolled back and
                // its first flight sent anew. (Rerouted: that transaction is gone, and its
                // database may be too.)
                self.restart_data().await?;
            }
            match settled {
                Settled::Done => {
                    let c = c?;
                    let c = if std::ptr::eq(sent, BARE) {
                        Vec::new()
                    } else {
                        c
                    };
                    return Ok(Some((c, d?)));
                }
                Settled::Rerouted => return Ok(None),
                Settled::Again => {}
            }
        }
        Err(still_stale())
    }

    /// Sends the first flight of the org's own database's transaction again, after its
    /// scope was verified again (a mirrored one checks the scope's new generations).
    async fn restart_data(&mut self) -> Result<()> {
        let checks = match &self.inner {
            TxInner::Pg(t) => t.pending_settings().map(|s| s.checks).unwrap_or_default(),
            TxInner::Sqlite(_) => Vec::new(),
        };
        if let Some(Placed {
            tx: PlacedTx::Pg(d),
            settings,
            ..
        }) = self.data.as_deref_mut()
        {
            d.restart(settings.clone(), checks).await?;
        }
        Ok(())
    }

    /// Before a flight on the control database: if it is the transaction's first and a
    /// write's, the org's own database's transaction (first flight unsent) leaves the
    /// scope's check and the org's write fence to it. Both planes of one write take the
    /// fence in one place, and in the order a move takes them (the control database's
    /// first): a write fenced in its org's database that then waited for a lock on the
    /// control database could wait for a move waiting for it.
    fn control_first(&mut self) {
        if let (
            TxInner::Pg(c),
            Some(Placed {
                tx: PlacedTx::Pg(d),
                ..
            }),
        ) = (&self.inner, self.data.as_deref_mut())
        {
            if c.mode() == Mode::Write && c.unsent() {
                d.unmirror();
            }
        }
    }

    /// Whether the org's own database's transaction checks the scope in its first flight,
    /// against that database's access mirror (see `PgDb::begin_placed`), with that check
    /// still pending: its data operations need no control flight beside them.
    fn mirrored(&self) -> bool {
        self.recheck.is_some()
            && matches!(
                self.data.as_deref(),
                Some(Placed { tx: PlacedTx::Pg(d), .. }) if d.mirror_pending()
            )
    }

    /// A data-plane operation: on the org's own database (see [`Tx::both`]), else on the
    /// transaction itself; dispatched again if its first flight finds the org placed
    /// elsewhere ([`Settled::Rerouted`]).
    async fn data_op(&mut self, op: DataOp<'_>) -> Result<DataOut> {
        self.one_flight(&op)?;
        // Boxed: every statement's future goes through here, and nested in a request's
        // it would weigh on the stack of every caller (debug builds overflowed).
        let r = Box::pin(self.data_op_inner(&op)).await;
        self.flown(&op);
        r
    }

    async fn data_op_inner(&mut self, op: &DataOp<'_>) -> Result<DataOut> {
        for _ in 0..STALE_RETRIES {
            // (A statement compiled, not run, sends no flight: it checks nothing, and
            // must not confirm the scope. It goes beside a control check instead.)
            if self.mirrored() && !matches!(op, DataOp::Columns(_)) {
                // One flight on one database: the data and the check of the scope.
                let r = match self.placed() {
                    Some(d) => op.run_on(d).await,
                    None => Err(Error::Internal("no data plane of its own".into())),
                };
                match Box::pin(self.settle(&r)).await? {
                    Settled::Done => {
                        // A write granted its fence in its org's database (held to its
                        // end, even if a statement after it failed) is fenced there, so
                        // never again on the control database, whatever it sends there
                        // next; the scope's check is left out there only if it passed here.
                        let (fenced, checked) = match self.placed() {
                            Some(PlacedTx::Pg(d)) => (d.fence_taken(), d.check_passed()),
                            _ => (false, false),
                        };
                        match &mut self.inner {
                            TxInner::Pg(c) if fenced && c.mode() == Mode::Write => {
                                c.unfence(checked)
                            }
                            _ => {}
                        }
                        return r;
                    }
                    Settled::Again => self.restart_data().await?,
                    Settled::Rerouted => {}
                }
                continue;
            }
            if self.data.is_none() {
                if let DataOp::Columns(sql) = op {
                    return self.columns(sql).await.map(DataOut::Columns);
                }
                match self.on_inner(op, true).await? {
                    Some(out) => return Ok(out),
                    None => continue,
                }
            }
            if !self.checking() {
                return match self.placed() {
                    Some(d) => op.run_on(d).await,
                    None => Err(Error::Internal("no data plane of its own".into())),
                };
            }
            if let Some((_, out)) = self.both(&[], op).await? {
                return Ok(out);
            }
        }
        Err(still_stale())
    }

    /// The data plane of this transaction (see [`TenantTx::data`]); for a transaction
    /// without an org of its own, the transaction itself.
    pub fn data(&mut self) -> Data<'_> {
        self.on(crate::module::Plane::Data)
    }

    /// The data plane or, for `Plane::Control`, the transaction itself: for code that
    /// serves tables of either plane (the export walks every tenant table).
    pub fn on(&mut self, plane: crate::module::Plane) -> Data<'_> {
        Data { tx: self, plane }
    }

    /// Runs data-plane reads and control-plane reads together, each plane's rows in
    /// order: one flight where both planes are one connection; two flights at once where
    /// the org has a database of its own.
    pub async fn query_planes(
        &mut self,
        data: &[(&str, &[Val])],
        control: &[(&str, &[Val])],
    ) -> Result<(Vec<Vec<Row>>, Vec<Vec<Row>>)> {
        for _ in 0..STALE_RETRIES {
            if self.data.is_none() {
                let all: Vec<(&str, &[Val])> = data.iter().chain(control).copied().collect();
                let Some(out) = self.on_inner(&DataOp::Many(&all), true).await? else {
                    continue;
                };
                let DataOut::Many(mut rows) = out else {
                    return Err(other_kind());
                };
                let c = rows.split_off(data.len().min(rows.len()));
                return Ok((rows, c));
            }
            if matches!(self.placed(), Some(PlacedTx::Sqlite(_))) {
                // One embedded server, no flights to share: one plane after the other.
                let d = self.data_query_many(data).await?;
                return Ok((d, self.query_many(control).await?));
            }
            match self.both(control, &DataOp::Many(data)).await? {
                Some((c, DataOut::Many(d))) => return Ok((d, c)),
                Some(_) => return Err(other_kind()),
                None => {}
            }
        }
        Err(still_stale())
    }

    /// Keeps the members projection of an org in a database of its own in step with a
    /// membership change of this transaction (see [`crate::placement::provision_database`]):
    /// `member` says whether `user` is now a member of the transaction's org. Nothing to do
    /// for an org in the control database (the real memberships table is the foreign keys'
    /// target there). The projection is private to the owner: its statements run as the
    /// login, transaction-locally, and the role is switched back after them.
    pub(crate) async fn project_member(&mut self, user: UserId, member: bool) -> Result<()> {
        let Some(org) = self.org else {
            return Ok(());
        };
        if self.checking() {
            // The first flight first (the access check, the write fence and the route
            // check ride on it): where the org lives is settled before deciding.
            const PASS: &[(&str, &[Val])] = &[("SELECT 1", &[])];
            self.query_many(PASS).await?;
        }
        if self.data.is_none() {
            return Ok(());
        }
        if member {
            self.projected.added = true;
        } else {
            self.projected.removed = true;
        }
        let d = match self.placed() {
            None => return Ok(()),
            Some(PlacedTx::Sqlite(d)) => return d.project_member(org, user, member).await,
            Some(PlacedTx::Pg(d)) => d,
        };
        let role = d.role();
        d.execute("SELECT set_config('role', 'none', true)", &[])
            .await?;
        if member {
            d.execute(
                "INSERT INTO users (id) VALUES ($1) ON CONFLICT DO NOTHING",
                &[Val::Uuid(user.uuid())],
            )
            .await?;
            d.execute(
                "INSERT INTO memberships (org_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[Val::Uuid(org.uuid()), Val::Uuid(user.uuid())],
            )
            .await?;
        } else {
            d.execute(
                "DELETE FROM memberships WHERE org_id = $1 AND user_id = $2",
                &[Val::Uuid(org.uuid()), Val::Uuid(user.uuid())],
            )
            .await?;
        }
        d.execute("SELECT set_config('role', $1, true)", &[Val::Text(role)])
            .await?;
        Ok(())
    }

    fn placed(&mut self) -> Option<&mut PlacedTx> {
        self.data.as_mut().map(|d| &mut d.tx)
    }

    async fn data_query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>> {
        match self.data_op(DataOp::Query(sql, params)).await? {
            DataOut::Rows(r) => Ok(r),
            _ => Err(other_kind()),
        }
    }

    async fn data_query_many(&mut self, stmts: &[(&str, &[Val])]) -> Result<Vec<Vec<Row>>> {
        match self.data_op(DataOp::Many(stmts)).await? {
            DataOut::Many(r) => Ok(r),
            _ => Err(other_kind()),
        }
    }

    async fn data_execute(&mut self, sql: &str, params: &[Val]) -> Result<u64> {
        match self.data_op(DataOp::Execute(sql, params)).await? {
            DataOut::Count(n) => Ok(n),
            _ => Err(other_kind()),
        }
    }

    async fn data_columns(&mut self, sql: &str) -> Result<Vec<(String, bool)>> {
        match self.data_op(DataOp::Columns(sql)).await? {
            DataOut::Columns(c) => Ok(c),
            _ => Err(other_kind()),
        }
    }
}

/// A data-plane operation (see [`Tx::data_op`]).
enum DataOp<'a> {
    Query(&'a str, &'a [Val]),
    Many(&'a [(&'a str, &'a [Val])]),
    Execute(&'a str, &'a [Val]),
    Columns(&'a str),
}

/// Its answer.
enum DataOut {
    Rows(Vec<Row>),
    Many(Vec<Vec<Row>>),
    Count(u64),
    Columns(Vec<(String, bool)>),
}

impl DataOp<'_> {
    async fn run(&self, d: &mut pg::PgTx) -> Result<DataOut> {
        match *self {
            DataOp::Query(sql, p) => d.query(sql, p).await.map(DataOut::Rows),
            DataOp::Many(stmts) => d.query_many(stmts).await.map(DataOut::Many),
            DataOp::Execute(sql, p) => d.execute(sql, p).await.map(DataOut::Count),
            DataOp::Columns(sql) => d.columns(sql).await.map(DataOut::Columns),
        }
    }

    async fn run_sqlite(&self, d: &mut sqlite::SqliteTx) -> Result<DataOut> {
        match *self {
            DataOp::Query(sql, p) => d.query(sql, p).await.map(DataOut::Rows),
            DataOp::Many(stmts) => {
                let mut out = Vec::with_capacity(stmts.len());
                for (sql, p) in stmts {
                    out.push(d.query(sql, p).await?);
                }
                Ok(DataOut::Many(out))
            }
            DataOp::Execute(sql, p) => d.execute(sql, p).await.map(DataOut::Count),
            DataOp::Columns(sql) => Ok(DataOut::Columns(
                d.columns(sql)
                    .await?
                    .into_iter()
                    .map(|c| (c, true))
                    .collect(),
            )),
        }
    }

    async fn run_on(&self, d: &mut PlacedTx) -> Result<DataOut> {
        match d {
            PlacedTx::Pg(d) => self.run(d).await,
            PlacedTx::Sqlite(d) => self.run_sqlite(d).await,
        }
    }
}

/// The transaction on an org's own database, with its route and the settings of its
/// first flight (kept to start it again after a stale check).
pub(crate) struct Placed {
    tx: PlacedTx,
    route: Route,
    settings: Settings,
}

/// An org's own database: a PostgreSQL database, or a SQLite file.
// Not boxed here: `Placed` is boxed as a whole.
#[allow(clippy::large_enum_variant)]
pub(crate) enum PlacedTx {
    Pg(pg::PgTx),
    Sqlite(sqlite::SqliteTx),
}

impl PlacedTx {
    async fn commit(self) -> Result<()> {
        match self {
            PlacedTx::Pg(t) => t.commit().await,
            PlacedTx::Sqlite(t) => t.commit().await,
        }
    }

    async fn rollback(self) -> Result<()> {
        match self {
            PlacedTx::Pg(t) => t.rollback().await,
            PlacedTx::Sqlite(t) => t.rollback().await,
        }
    }
}

fn other_kind() -> Error {
    Error::Internal("a data plane answer of another kind".into())
}

fn still_stale() -> Error {
    Error::Unavailable("access kept changing while the request was verified; retry".into())
}

/// A transaction inside one organization, opened from its [`OrgScope`]. Repository
/// functions take it and bind `org_id` from [`TenantTx::org_id`], never from input.
pub struct TenantTx<'s> {
    tx: Tx,
    scope: &'s OrgScope,
}

impl<'s> TenantTx<'s> {
    /// The organization this transaction is confined to.
    pub fn org_id(&self) -> OrgId {
        self.scope.org_id()
    }

    /// The verified scope it was opened from.
    pub fn scope(&self) -> &'s OrgScope {
        self.scope
    }

    /// The transaction itself, with the same scope (helpers that serve both scoped and
    /// creation-time transactions take a `&mut Tx`).
    pub fn raw(&mut self) -> &mut Tx {
        &mut self.tx
    }

    /// See [`Tx::query`].
    pub async fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>> {
        self.tx.query(sql, params).await
    }

    /// See [`Tx::execute`].
    pub async fn execute(&mut self, sql: &str, params: &[Val]) -> Result<u64> {
        self.tx.execute(sql, params).await
    }

    /// See [`Tx::query_many`].
    pub async fn query_many(&mut self, stmts: &[(&str, &[Val])]) -> Result<Vec<Vec<Row>>> {
        self.tx.query_many(stmts).await
    }

    /// See [`Tx::query_opt`].
    pub async fn query_opt(&mut self, sql: &str, params: &[Val]) -> Result<Option<Row>> {
        self.tx.query_opt(sql, params).await
    }

    /// See [`Tx::query_one`].
    pub async fn query_one(&mut self, sql: &str, params: &[Val]) -> Result<Row> {
        self.tx.query_one(sql, params).await
    }

    /// See [`Tx::kind`].
    pub fn kind(&self) -> BackendKind {
        self.tx.kind()
    }

    /// The org's **data plane**: statements on its workspace tables (the tenant tables of
    /// [`crate::Plane::Data`] migrations) go through this, and name no control-plane
    /// table. Where the org's data lives in the control database (shared tables, a schema
    /// of its own) this is the transaction itself; for an org in a database of its own it
    /// is the transaction on that database, beside the control one, committed with it
    /// ([`Tx::commit`]). Statements called on the `TenantTx` itself are the control
    /// plane's (access, audit, jobs).
    pub fn data(&mut self) -> Data<'_> {
        self.tx.data()
    }

    /// See [`Tx::query_planes`].
    pub async fn query_planes(
        &mut self,
        data: &[(&str, &[Val])],
        control: &[(&str, &[Val])],
    ) -> Result<(Vec<Vec<Row>>, Vec<Vec<Row>>)> {
        self.tx.query_planes(data, control).await
    }

    /// See [`Tx::project_member`] (a membership change keeps an org's own database's
    /// members projection in step, in this transaction).
    pub async fn project_member(&mut self, user: UserId, member: bool) -> Result<()> {
        // Boxed: a handful of statements, run on membership changes only.
        Box::pin(self.tx.project_member(user, member)).await
    }

    /// See [`Tx::access_changed`]: the commit invalidates this org's cached access.
    pub fn access_changed(&mut self) {
        self.tx.access_changed()
    }

    /// Commits.
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await
    }

    /// Rolls back.
    pub async fn rollback(self) -> Result<()> {
        self.tx.rollback().await
    }
}

/// [`Data::query_generic`]'s statement before its read: the plan cache mode in force,
/// kept in a setting of the transaction, then generic plans forced.
const GENERIC_ON: &str = "SELECT set_config('orgwall.plan_cache_mode', \
     current_setting('plan_cache_mode'), true), \
     set_config('plan_cache_mode', 'force_generic_plan', true)";
/// And after it: the plan cache mode as it was.
const GENERIC_OFF: &str = "SELECT set_config('plan_cache_mode', \
     current_setting('orgwall.plan_cache_mode'), true)";

/// The data plane of a [`TenantTx`] (see [`TenantTx::data`]).
pub struct Data<'t> {
    tx: &'t mut Tx,
    plane: crate::module::Plane,
}

impl Data<'_> {
    fn control(&self) -> bool {
        self.plane == crate::module::Plane::Control
    }

    /// See [`Tx::query`].
    pub async fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>> {
        if self.control() {
            return self.tx.query(sql, params).await;
        }
        self.tx.data_query(sql, params).await
    }

    /// See [`Tx::query_many`].
    pub async fn query_many(&mut self, stmts: &[(&str, &[Val])]) -> Result<Vec<Vec<Row>>> {
        if self.control() {
            return self.tx.query_many(stmts).await;
        }
        self.tx.data_query_many(stmts).await
    }

    /// Runs a read whose best plan does not depend on its parameters (a key-ordered
    /// range of one org, say) on a plan made once per connection. PostgreSQL plans a
    /// prepared statement afresh at each of its first five runs, then keeps a generic plan
    /// only if its estimated cost is no higher than the fresh ones'; for a page of a list
    /// (`id > $2 ... LIMIT $3`) its generic guesses (a third of the rows after `$2`, a
    /// tenth for the limit) can look costlier than the plan made for the values, though
    /// the plan is the same, and it then plans the statement again at every run, the
    /// policy's quals and all. Here the statement is bound with `plan_cache_mode =
    /// force_generic_plan`, set just before it and restored just after it in the same
    /// flight, so nothing else in the transaction is planned differently. On SQLite, the
    /// same as [`Data::query`].
    pub async fn query_generic(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>> {
        if self.tx.kind() == BackendKind::Sqlite {
            return self.query(sql, params).await;
        }
        let mut answers = self
            .query_many(&[(GENERIC_ON, &[]), (sql, params), (GENERIC_OFF, &[])])
            .await?;
        match answers.len() {
            3 => Ok(answers.swap_remove(1)),
            n => Err(Error::Internal(format!("{n} answers to a generic read"))),
        }
    }

    /// See [`Tx::execute`].
    pub async fn execute(&mut self, sql: &str, params: &[Val]) -> Result<u64> {
        if self.control() {
            return self.tx.execute(sql, params).await;
        }
        self.tx.data_execute(sql, params).await
    }

    /// See [`Tx::query_opt`].
    pub async fn query_opt(&mut self, sql: &str, params: &[Val]) -> Result<Option<Row>> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    /// See [`Tx::query_one`].
    pub async fn query_one(&mut self, sql: &str, params: &[Val]) -> Result<Row> {
        self.query_opt(sql, params).await?.ok_or(Error::NotFound)
    }

    /// See [`Tx::columns`].
    pub async fn columns(&mut self, sql: &str) -> Result<Vec<(String, bool)>> {
        if self.control() {
            return self.tx.columns(sql).await;
        }
        self.tx.data_columns(sql).await
    }

    /// See [`Tx::kind`].
    pub fn kind(&self) -> BackendKind {
        self.tx.kind()
    }
}

/// Target servers on SQLite: none (an org's own database there is a file).
fn no_targets() -> Error {
    Error::Validation(
        "target servers are PostgreSQL servers; this database is SQLite (an org's database of its own there is a file under the data directory)"
            .into(),
    )
}
