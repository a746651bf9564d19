//! # orgwall-testkit
//!
//! - [`TestDb`]: a fresh database per test on either backend (PostgreSQL through
//!   `ORGWALL_TEST_DATABASE_URL`, created and dropped per test; SQLite in a temp dir);
//! - [`Demo`]: the seeded Acme/Globex world with ids and scopes at hand;
//! - [`TestServer`]: the real application on 127.0.0.1:0 (served by `orgwall_http::serve`,
//!   as `orgwall serve` does), with a small JSON client; every answer it gives is
//!   checked against the OpenAPI document ([`conformance`]) and the test fails on a
//!   status the operation does not document or an error that is not problem+json;
//! - [`both!`]: one test body, run once per backend;
//! - [`s3::TestBucket`]: a bucket of its own on the S3-compatible test server; file
//!   helpers: [`store_file`], [`foreign_keys`], [`untar`].
//! - [`smtp::SmtpSink`]: an SMTP server that keeps what it accepts and can hold a
//!   message mid-delivery.
//!
//! Test logs stay silent unless `TEST_LOG` is set.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod browser;
pub mod cluster;
pub mod conformance;
pub mod s3;
pub mod smtp;
pub mod wire;

use orgwall_core::{OrgId, UserId};
use orgwall_store::access::{self, OrgScope};
use orgwall_store::{BackendKind, Db, DbConfig};
use std::path::PathBuf;

/// Every tenant table orgwall registers (the kernel's and the product's), from the
/// catalog: a table is covered by the tests that walk this list the moment its module
/// declares it.
pub fn tenant_tables() -> Vec<&'static str> {
    orgwall_store::catalog().tenant_tables().collect()
}

/// The tenant tables that hold an org's own data: every tenant table but the derived
/// ones (the search terms), i.e. what an export archives.
pub fn exported_tables() -> Vec<&'static str> {
    orgwall_store::catalog().exported_tables().collect()
}

/// Whether `table` is a derived tenant table (kept by triggers from other tables' rows;
/// the search terms, which stay empty on SQLite).
pub fn is_derived(table: &str) -> bool {
    orgwall_store::catalog().is_derived(table)
}

/// `org`'s access generation as the control database at `url` holds it (see
/// [`TestDb::control_generation`]; for control databases a test made itself, such as on a
/// [`cluster::PgCluster`]).
pub async fn control_generation_at(url: &str, org: OrgId) -> i64 {
    pg_client(url)
        .await
        .query_one(
            "SELECT gen FROM access_generations WHERE dep = $1",
            &[&org.uuid()],
        )
        .await
        .unwrap()
        .get(0)
}

/// The admin URL tests create their databases through.
pub fn admin_url() -> String {
    std::env::var("ORGWALL_TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database that exists for one test and is removed after it.
pub struct TestDb {
    pub db: Db,
    pub kind: BackendKind,
    /// PostgreSQL: the test database's URL. SQLite: the file.
    pub url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

fn with_db_name(url: &str, name: &str) -> String {
    let mut u = url::Url::parse(url).expect("admin URL");
    u.set_path(&format!("/{name}"));
    u.to_string()
}

/// A connection to `url` (its connection task spawned); panics naming the URL if it fails.
pub async fn pg_client(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    tokio::spawn(conn);
    client
}

/// The first column of each row `sql` returns on `client`, as text.
pub async fn texts(
    client: &tokio_postgres::Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Vec<String> {
    client
        .query(sql, params)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn admin_exec(sql: &str) {
    let (client, conn) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is required for tests ({}): {e}", admin_url()));
    tokio::spawn(conn);
    client.batch_execute(sql).await.unwrap();
}

impl TestDb {
    /// A fresh, migrated database.
    pub async fn new(kind: BackendKind) -> TestDb {
        Self::with_pool(kind, 4).await
    }

    /// A fresh, migrated database with a pool of `pool_size` connections.
    pub async fn with_pool(kind: BackendKind, pool_size: usize) -> TestDb {
        let t = Self::unmigrated(kind, pool_size).await;
        t.db.migrate().await.expect("migrate");
        t
    }

    /// A fresh database with nothing in it.
    pub async fn unmigrated(kind: BackendKind, pool_size: usize) -> TestDb {
        match kind {
            BackendKind::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let path: PathBuf = dir.path().join("test.db");
                let db = Db::open(
                    &DbConfig::Sqlite {
                        path: path.clone(),
                        pool_size,
                    },
                    orgwall_store::catalog(),
                )
                .await
                .unwrap();
                TestDb {
                    db,
                    kind,
                    url: path.display().to_string(),
                    pg_name: None,
                    _dir: Some(dir),
                }
            }
            BackendKind::Postgres => {
                let name = format!("orgwall_t_{}", uuid::Uuid::now_v7().simple());
                admin_exec(&format!("CREATE DATABASE {name}")).await;
                let url = with_db_name(&admin_url(), &name);
                let db = Db::open(
                    &DbConfig::Postgres {
                        url: url.clone(),
                        app_role: orgwall_store::db::DEFAULT_APP_ROLE.into(),
                        pool_size,
                        placement_budget: None,
                    },
                    orgwall_store::catalog(),
                )
                .await
                .unwrap();
                TestDb {
                    db,
                    kind,
                    url,
                    pg_name: Some(name),
                    _dir: None,
                }
            }
        }
    }

    /// Runs owner-level SQL directly (no scope, no authorizer, no role switch): for
    /// building deliberately broken tables and for checking what really is stored.
    pub async fn owner_exec(&self, sql: &str) {
        match self.kind {
            BackendKind::Postgres => {
                let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                client.batch_execute(sql).await.unwrap();
            }
            BackendKind::Sqlite => {
                let c = rusqlite::Connection::open(&self.url).unwrap();
                c.execute_batch(sql).unwrap();
            }
        }
    }

    /// The files of this SQLite database's orgs placed in a file of their own: (org, path).
    pub fn sqlite_org_files(&self) -> Vec<(OrgId, PathBuf)> {
        let c = rusqlite::Connection::open(&self.url).unwrap();
        let dir = PathBuf::from(&self.url)
            .parent()
            .map_or_else(|| PathBuf::from("orgs"), |d| d.join("orgs"));
        let mut st = c
            .prepare("SELECT org_id, location FROM placements WHERE kind = 'database' ORDER BY 2")
            .unwrap();
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .unwrap();
        rows.map(|r| {
            let (org, name) = r.unwrap();
            (org.parse().unwrap(), dir.join(format!("{name}.db")))
        })
        .collect()
    }

    /// A SQLite owner connection (no authorizer) to `org`'s placement: its own file if it
    /// has one, else the control file.
    pub fn sqlite_owner_for(&self, org: OrgId) -> rusqlite::Connection {
        let file = self
            .sqlite_org_files()
            .into_iter()
            .find(|(o, _)| *o == org)
            .map_or_else(|| PathBuf::from(&self.url), |(_, p)| p);
        let c = rusqlite::Connection::open(file).unwrap();
        c.execute_batch("PRAGMA foreign_keys = ON").unwrap();
        c
    }

    /// Like [`TestDb::owner_exec`], on `org`'s placement: on PostgreSQL its own schema, if
    /// it has one, goes first on the search path (unqualified data-plane tables are then
    /// the org's). Returns the number of rows the last statement changed (PostgreSQL).
    pub async fn owner_exec_for(&self, org: OrgId, sql: &str) -> u64 {
        if self.kind == BackendKind::Sqlite {
            let c = self.sqlite_owner_for(org);
            c.execute_batch(sql).unwrap();
            return c.changes();
        }
        self.owner_client_for(org)
            .await
            .execute(sql, &[])
            .await
            .unwrap()
    }

    /// `org`'s access generation as the control plane holds it (PostgreSQL): what an
    /// access change's commit writes into the access mirror of the org's own database.
    pub async fn control_generation(&self, org: OrgId) -> i64 {
        assert_eq!(self.kind, BackendKind::Postgres, "PostgreSQL only");
        control_generation_at(&self.url, org).await
    }

    /// Like [`TestDb::owner_count`], on `org`'s placement only (see
    /// [`TestDb::owner_exec_for`]): a subquery in `where_sql` reads the same placement.
    pub async fn owner_count_for(&self, org: OrgId, table: &str, where_sql: &str) -> i64 {
        if self.kind == BackendKind::Sqlite {
            let c = self.sqlite_owner_for(org);
            return c
                .query_row(
                    &format!(
                        "SELECT count(*) FROM {} WHERE {where_sql}",
                        self.sqlite_base(&c, table)
                    ),
                    [],
                    |r| r.get(0),
                )
                .unwrap();
        }
        self.owner_client_for(org)
            .await
            .query_one(
                &format!("SELECT count(*) FROM {table} WHERE {where_sql}"),
                &[],
            )
            .await
            .unwrap()
            .get(0)
    }

    /// A PostgreSQL owner connection to `org`'s placement: its own database if it has
    /// one; else the control database, with its own schema, if it has one, first on the
    /// search path.
    async fn owner_client_for(&self, org: OrgId) -> tokio_postgres::Client {
        let client = pg_client(&self.url).await;
        let placed: Option<(String, String, Option<String>)> = client
            .query_opt(
                "SELECT kind, location, target FROM placements WHERE org_id = $1 AND kind <> 'shared'",
                &[&org.uuid()],
            )
            .await
            .unwrap()
            .map(|r| (r.get(0), r.get(1), r.get(2)));
        match placed {
            Some((kind, s, _)) if kind == "schema" => {
                client
                    .batch_execute(&format!("SET search_path TO {s}, public"))
                    .await
                    .unwrap();
                client
            }
            Some((_, name, target)) => {
                pg_client(&self.placement_url(&client, &name, target).await).await
            }
            None => client,
        }
    }

    /// The owner URL of placement database `name` (on `target`, or the control server).
    async fn placement_url(
        &self,
        control: &tokio_postgres::Client,
        name: &str,
        target: Option<String>,
    ) -> String {
        let server = match target {
            Some(t) => control
                .query_one("SELECT url FROM placement_targets WHERE name = $1", &[&t])
                .await
                .unwrap()
                .get(0),
            None => self.url.clone(),
        };
        with_db_name(&server, name)
    }

    /// Owner connections to every placement database of this test database's orgs.
    async fn placement_clients(
        &self,
        control: &tokio_postgres::Client,
    ) -> Vec<tokio_postgres::Client> {
        let mut out = Vec::new();
        for r in control
            .query(
                "SELECT location, target FROM placements WHERE kind = 'database' ORDER BY 1",
                &[],
            )
            .await
            .unwrap()
        {
            let url = self
                .placement_url(control, &r.get::<_, String>(0), r.get(1))
                .await;
            out.push(pg_client(&url).await);
        }
        out
    }

    /// Counts rows as the owner, bypassing every wall (superuser on PostgreSQL; a plain
    /// connection on the SQLite base table). On PostgreSQL a data-plane table named
    /// without a schema is counted in every placement: the shared table and each org's
    /// own schema.
    pub async fn owner_count(&self, table: &str, where_sql: &str) -> i64 {
        match self.kind {
            BackendKind::Postgres => {
                let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                let mut tables = vec![table.to_owned()];
                if self.db.catalog().is_data(table) {
                    for r in client
                        .query(
                            "SELECT location FROM placements WHERE kind = 'schema' ORDER BY 1",
                            &[],
                        )
                        .await
                        .unwrap()
                    {
                        tables.push(format!("{}.{table}", r.get::<_, String>(0)));
                    }
                }
                let sum: Vec<String> = tables
                    .iter()
                    .map(|t| format!("(SELECT count(*) FROM {t} WHERE {where_sql})"))
                    .collect();
                let row = client
                    .query_one(&format!("SELECT {}", sum.join(" + ")), &[])
                    .await
                    .unwrap();
                let mut n: i64 = row.get(0);
                // And in each org's database of its own.
                if self.db.catalog().is_data(table) {
                    for placed in self.placement_clients(&client).await {
                        let r = placed
                            .query_one(
                                &format!("SELECT count(*) FROM {table} WHERE {where_sql}"),
                                &[],
                            )
                            .await
                            .unwrap();
                        n += r.get::<_, i64>(0);
                    }
                }
                n
            }
            BackendKind::Sqlite => {
                let c = rusqlite::Connection::open(&self.url).unwrap();
                let count = |c: &rusqlite::Connection| -> i64 {
                    c.query_row(
                        &format!(
                            "SELECT count(*) FROM {} WHERE {where_sql}",
                            self.sqlite_base(c, table)
                        ),
                        [],
                        |r| r.get(0),
                    )
                    .unwrap()
                };
                let mut n = count(&c);
                // And in each org's file of its own.
                if self.db.catalog().is_data(table) {
                    for (_, file) in self.sqlite_org_files() {
                        n += count(&rusqlite::Connection::open(file).unwrap());
                    }
                }
                n
            }
        }
    }

    /// The SQLite table holding `table`'s rows: its base table `<t>_rows`, or the table
    /// itself for a global table (unless its rows sit behind a view of its own, as
    /// orgwall's job_queues do).
    fn sqlite_base(&self, c: &rusqlite::Connection, table: &str) -> String {
        let cat = self.db.catalog();
        let behind_view = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [format!("{table}_rows")],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
            > 0;
        if cat.is_global(table) && !cat.is_system(table) && !behind_view {
            table.to_string()
        } else {
            format!("{table}_rows")
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            let url = admin_url();
            let test_url = self.url.clone();
            // Dropping needs async I/O; do it on a thread of its own, and wait for it.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    // Placement databases of its orgs on this server go with it, even
                    // those a failed test left behind (they are named after the org).
                    let mut placements = Vec::new();
                    if let Ok((client, conn)) =
                        tokio_postgres::connect(&test_url, tokio_postgres::NoTls).await
                    {
                        tokio::spawn(conn);
                        if let Ok(rows) = client.query("SELECT id FROM orgs", &[]).await {
                            for r in rows {
                                let id: uuid::Uuid = r.get(0);
                                placements.push(orgwall_store::placement::database_name(
                                    orgwall_core::OrgId::from_uuid(id),
                                ));
                            }
                        }
                    }
                    if let Ok((client, conn)) =
                        tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                    {
                        tokio::spawn(conn);
                        let existing = client
                            .query(
                                "SELECT datname::text FROM pg_database WHERE datname = ANY($1)",
                                &[&placements],
                            )
                            .await
                            .map(|rows| rows.iter().map(|r| r.get::<_, String>(0)).collect())
                            .unwrap_or_else(|_| Vec::new());
                        for p in existing {
                            let _ = client
                                .batch_execute(&format!("DROP DATABASE IF EXISTS {p} WITH (FORCE)"))
                                .await;
                        }
                        let _ = client
                            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

/// The demo world, with handy ids and scopes.
pub struct Demo {
    pub acme: OrgId,
    pub globex: OrgId,
    pub alice: UserId,
    pub bob: UserId,
    pub carol: UserId,
}

impl Demo {
    /// Seeds the demo data. Both orgs get a rate limit high enough that ordinary tests
    /// never meet it (rate-limit tests lower it again).
    ///
    /// `ORGWALL_TEST_PLACEMENTS` (e.g. `globex=schema` or `acme=schema,globex=database`)
    /// places the demo orgs before their data is written: CI runs the HTTP suite, the
    /// matrix and the prober with each combination. On SQLite only the kinds it serves
    /// apply (`database`: a file of its own); a `schema` there is left shared.
    pub async fn load(db: &Db) -> Demo {
        let mut placements = match std::env::var("ORGWALL_TEST_PLACEMENTS") {
            Ok(s) => orgwall_store::seed::parse_placements(&s).expect("ORGWALL_TEST_PLACEMENTS"),
            Err(_) => Vec::new(),
        };
        if db.kind() == BackendKind::Sqlite {
            placements.retain(|(_, k)| *k == orgwall_store::placement::Kind::Database(None));
        }
        orgwall_store::seed::demo_placed(db, &placements)
            .await
            .unwrap();
        let acme = orgwall_store::repo::orgs::resolve(db, "acme")
            .await
            .unwrap();
        let globex = orgwall_store::repo::orgs::resolve(db, "globex")
            .await
            .unwrap();
        let user = |e: &'static str| async move {
            let email = orgwall_core::Email::parse(e).unwrap();
            orgwall_store::repo::users::find_by_email(db, &email)
                .await
                .unwrap()
                .unwrap()
                .0
                .id
        };
        Demo {
            acme,
            globex,
            alice: user("alice@acme.test").await,
            bob: user("bob@globex.test").await,
            carol: user("carol@example.test").await,
        }
    }

    pub async fn alice_in_acme(&self, db: &Db) -> OrgScope {
        access::verify_member(db, self.alice, self.acme)
            .await
            .unwrap()
    }

    pub async fn bob_in_globex(&self, db: &Db) -> OrgScope {
        access::verify_member(db, self.bob, self.globex)
            .await
            .unwrap()
    }
}

/// Defines one test per backend from one body: `both!(name, |t: TestDb| async move { .. })`.
#[macro_export]
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $crate::init_logs();
                let t = $crate::TestDb::new(orgwall_store::BackendKind::Sqlite).await;
                // Boxed: a test body's future holds every step's state, too much for a
                // test thread's stack once it grows (it did: a stack overflow).
                Box::pin(($body)(t)).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $crate::init_logs();
                let t = $crate::TestDb::new(orgwall_store::BackendKind::Postgres).await;
                // Boxed: a test body's future holds every step's state, too much for a
                // test thread's stack once it grows (it did: a stack overflow).
                Box::pin(($body)(t)).await;
            }
        }
    };
}

/// Test logs go nowhere unless `TEST_LOG` is set (then to the test's output).
/// Sends `request` until `db`'s access-cache listener is live (its first lookups start
/// it), at most 500 times, 10 ms apart; fails the test if it never listens.
pub async fn until_listening<F, Fut>(db: &Db, mut request: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..500 {
        request().await;
        if db.access_cache_stats().live {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the access cache's change listener never started listening");
}

pub fn init_logs() {
    if let Ok(filter) = std::env::var("TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::new(if filter.is_empty() {
                "info"
            } else {
                &filter
            }))
            .try_init();
    }
}

/// The real application, listening on an ephemeral port for one test.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The database behind it.
    pub db: Db,
    /// A client.
    pub http: reqwest::Client,
    /// Every answer is checked against the OpenAPI document; the server fails its test
    /// when dropped with violations (see [`conformance`]).
    pub conformance: std::sync::Arc<conformance::Conformance>,
    /// The application's state.
    pub state: orgwall_http::AppState,
    task: tokio::task::JoinHandle<()>,
}

/// A response: status, headers and JSON body (Null when empty or not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: serde_json::Value,
}

impl Resp {
    /// The problem+json `code`, if any.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

impl TestServer {
    /// Starts the app over `db`, with per-user limits high enough that ordinary tests
    /// never meet them (login limits stay at their defaults; rate-limit tests build
    /// their own state).
    pub async fn start(db: &Db) -> TestServer {
        let mut state = orgwall_http::AppState::new(db.clone());
        state.limits = std::sync::Arc::new(orgwall_http::limits::Limits::new(
            orgwall_http::limits::LimitConfig {
                login_per_ip: 10_000,
                user_per_minute: 1_000_000,
                ..Default::default()
            },
        ));
        Self::with_state(state).await
    }

    /// Starts the app with a custom state.
    pub async fn with_state(state: orgwall_http::AppState) -> TestServer {
        let db = state.db.clone();
        let kept = state.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let checker = conformance::Conformance::new(&orgwall_http::openapi::document());
        let c = checker.clone();
        let app = orgwall_http::app(state).layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                conformance::layer(c.clone(), req, next)
            },
        ));
        let task = tokio::spawn(async move {
            orgwall_http::serve(listener, app, Default::default(), std::future::pending())
                .await
                .unwrap();
        });
        TestServer {
            base: format!("http://{addr}"),
            db,
            http: reqwest::Client::new(),
            conformance: checker,
            state: kept,
            task,
        }
    }

    /// Sends a request. `token` becomes a bearer token; `body` is sent as JSON.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<serde_json::Value>,
    ) -> Resp {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self.http.request(m, format!("{}{}", self.base, path));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Resp {
            status,
            headers,
            body,
        }
    }

    /// The operator's metrics (`GET /metrics` of the metrics listener, which is not the
    /// public one).
    pub async fn metrics(&self) -> String {
        use tower::ServiceExt;
        let res = orgwall_http::metrics::router(self.state.clone(), None)
            .oneshot(
                axum::http::Request::get("/metrics")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// GET with a token.
    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call("GET", path, Some(token), &[], None).await
    }

    /// Logs in and returns the session token.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let r = self
            .call(
                "POST",
                "/v1/auth/login",
                None,
                &[],
                Some(serde_json::json!({ "email": email, "password": password })),
            )
            .await;
        assert_eq!(r.status, 200, "login {email}: {:?}", r.body);
        r.body["token"].as_str().unwrap().to_owned()
    }

    /// Logs in a demo user (password `orgwall-demo`).
    pub async fn demo_login(&self, email: &str) -> String {
        self.login(email, orgwall_store::seed::DEMO_PASSWORD).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
        let v = self.conformance.violations();
        if !v.is_empty() && !std::thread::panicking() {
            panic!(
                "answers the OpenAPI document does not describe:\n  {}",
                v.join("\n  ")
            );
        }
    }
}

/// Stores `bytes` as a file named `name` in `scope`'s org: the blob in `store`, the row
/// in the database.
pub async fn store_file(
    db: &Db,
    scope: &OrgScope,
    store: &dyn orgwall_store::files::BlobStore,
    name: &str,
    bytes: &'static [u8],
) -> orgwall_core::FileId {
    use orgwall_store::repo::files;
    let f = orgwall_core::FileId::new();
    let st = store
        .put_bytes(scope.org_id(), f, bytes::Bytes::from_static(bytes))
        .await
        .unwrap();
    let mut tx = db.write(scope).await.unwrap();
    files::insert(
        &mut tx,
        files::NewFile {
            id: f,
            name,
            content_type: "text/plain",
            size_bytes: st.size_bytes,
            storage_key: &st.key,
            sha256: &st.sha256,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    f
}

/// Storage keys that a blob store acting for `acting` must refuse without touching
/// storage: `other`'s, traversals, extra or missing segments, non-canonical ids.
pub fn foreign_keys(acting: OrgId, other: OrgId) -> Vec<String> {
    let (a, b, f) = (acting, other, orgwall_core::FileId::new());
    vec![
        format!("{b}/{f}"),
        format!("{a}/../{b}/{f}"),
        format!("{a}/{f}/x"),
        format!("{a}/{}", f.uuid().simple()),
        format!("{a}/{}", f.to_string().to_uppercase()),
        format!("{a}//{f}"),
        format!("/{a}/{f}"),
        format!("files/{a}/{f}"),
        format!("{a}/../../etc/passwd"),
        format!("{}/{f}", a.to_string().to_uppercase()),
        String::new(),
        f.to_string(),
    ]
}

/// The entries of a `.tar.gz` archive: name -> bytes.
pub fn untar(gz: &[u8]) -> std::collections::BTreeMap<String, Vec<u8>> {
    use std::io::Read;
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(gz));
    let mut out = std::collections::BTreeMap::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let mut b = Vec::new();
        e.read_to_end(&mut b).unwrap();
        out.insert(name, b);
    }
    out
}
