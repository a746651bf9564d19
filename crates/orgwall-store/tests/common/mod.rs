//! Test kit: a fresh database per test, on either backend, and the demo data.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use orgwall_core::{OrgId, UserId};
use orgwall_store::access::{self, OrgScope};
use orgwall_store::{BackendKind, Db, DbConfig};
use std::path::PathBuf;

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
                let db = Db::open(&DbConfig::Sqlite {
                    path: path.clone(),
                    pool_size,
                })
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
                let db = Db::open(&DbConfig::Postgres {
                    url: url.clone(),
                    app_role: orgwall_store::db::DEFAULT_APP_ROLE.into(),
                    pool_size,
                })
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

    /// Counts rows as the owner, bypassing every wall (superuser on PostgreSQL; a plain
    /// connection on the SQLite base table).
    pub async fn owner_count(&self, table: &str, where_sql: &str) -> i64 {
        match self.kind {
            BackendKind::Postgres => {
                let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                let row = client
                    .query_one(
                        &format!("SELECT count(*) FROM {table} WHERE {where_sql}"),
                        &[],
                    )
                    .await
                    .unwrap();
                row.get(0)
            }
            BackendKind::Sqlite => {
                let c = rusqlite::Connection::open(&self.url).unwrap();
                let base = if ["users", "orgs", "sessions"].contains(&table) {
                    table.to_string()
                } else {
                    format!("{table}_rows")
                };
                c.query_row(
                    &format!("SELECT count(*) FROM {base} WHERE {where_sql}"),
                    [],
                    |r| r.get(0),
                )
                .unwrap()
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            let url = admin_url();
            // Dropping needs async I/O; do it on a thread of its own, and wait for it.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    if let Ok((client, conn)) =
                        tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                    {
                        tokio::spawn(conn);
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
    pub async fn load(db: &Db) -> Demo {
        orgwall_store::seed::demo(db).await.unwrap();
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
                let t = $crate::common::TestDb::new(orgwall_store::BackendKind::Sqlite).await;
                ($body)(t).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let t = $crate::common::TestDb::new(orgwall_store::BackendKind::Postgres).await;
                ($body)(t).await;
            }
        }
    };
}
