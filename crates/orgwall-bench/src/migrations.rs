//! `--migrate-placements SCHEMAS,DATABASES`: the time `orgwall migrate` takes over many
//! placements of their own (issue 12, item 6).
//!
//! On a bench database of its own: that many empty orgs placed in a schema of their own
//! and that many in a database of their own (on the same server), through the kernel's
//! own `create_org` and `placement::set`; then timed, as `orgwall migrate` runs it
//! (`Db::migrate`, the placements a few at a time):
//!
//! - **nothing pending**: every placement checked at the current version, its walls
//!   asserted again (what every `serve` start does);
//! - **one new data-plane migration** (a module registering a tenant table `bench_tags`):
//!   applied to the control schema and to every placement, each in a transaction of its
//!   own with its walls.
//!
//! Everything it made is dropped afterwards (unless `--keep`).

use crate::seed::{pg_connect, pg_drop, pg_recreate};
use anyhow::{Context, Result};
use orgwall_store::migrate::Migration;
use orgwall_store::placement::{self, Kind};
use orgwall_store::{Db, DbConfig, Module, Plane};
use std::time::Instant;

/// The bench's later module: one data-plane migration.
static LATER: Module = Module {
    name: "bench_later",
    postgres: &[Migration {
        version: 1,
        name: "bench_tags",
        sql: "CREATE TABLE bench_tags (
                  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
                  id uuid NOT NULL,
                  name text NOT NULL,
                  PRIMARY KEY (org_id, id));",
        plane: Plane::Data,
    }],
    tenant_tables: &["bench_tags"],
    ..Module::EMPTY
};

/// What was measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Timings {
    /// Placements in a schema of their own.
    pub schemas: usize,
    /// Placements in a database of their own.
    pub databases: usize,
    /// Seconds to make them (orgs created and placed).
    pub setup_secs: f64,
    /// Seconds of `migrate` with nothing pending.
    pub nothing_pending_secs: f64,
    /// Seconds of `migrate` applying one new data-plane migration everywhere.
    pub one_migration_secs: f64,
    /// Placements `migrate` reported.
    pub placements: usize,
}

async fn open(url: &str, app_role: &str, later: bool) -> Result<Db> {
    let catalog = if later {
        orgwall_store::catalog().with(&LATER)
    } else {
        orgwall_store::catalog()
    };
    Ok(Db::open(
        &DbConfig::Postgres {
            url: url.to_owned(),
            app_role: app_role.to_owned(),
            pool_size: 4,
            placement_budget: None,
        },
        catalog,
    )
    .await?)
}

/// Runs the measurement on a bench database of its own on the server of `admin`.
pub async fn run(
    admin: &str,
    app_role: &str,
    schemas: usize,
    databases: usize,
    keep: bool,
    say: impl Fn(String),
) -> Result<Timings> {
    let name = "orgwall_bench_migrate";
    let url = pg_recreate(admin, name).await?;
    let measured = measure(&url, app_role, schemas, databases, &say).await;
    // Dropped whatever happened (a failed run left 200 databases behind once).
    if !keep {
        let control = pg_connect(&url).await?;
        let dbs: Vec<String> = control
            .query(
                "SELECT location FROM placements WHERE kind = 'database'",
                &[],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        drop(control);
        for d in dbs {
            pg_drop(admin, &d).await?;
        }
        pg_drop(admin, name).await?;
    }
    measured
}

async fn measure(
    url: &str,
    app_role: &str,
    schemas: usize,
    databases: usize,
    say: &impl Fn(String),
) -> Result<Timings> {
    let url = url.to_owned();
    let db = open(&url, app_role, false).await?;
    db.migrate().await?;
    let started = Instant::now();
    let email = orgwall_core::Email::parse("owner@bench.test").map_err(anyhow::Error::msg)?;
    // The hash of no password: the bench user never logs in.
    let owner = orgwall_store::repo::users::create(&db, &email, "Bench Owner", "!", true)
        .await
        .context("creating the bench user")?
        .id;
    let mut made = Vec::new();
    for i in 0..schemas + databases {
        let slug = format!("m{i}");
        let (org, _) = orgwall_store::access::create_org(
            &db,
            owner,
            &slug,
            &orgwall_core::Slug::parse(&slug).map_err(anyhow::Error::msg)?,
        )
        .await?;
        let kind = if i < schemas {
            Kind::Schema
        } else {
            Kind::Database(None)
        };
        placement::set(&db, org.id, kind).await?;
        made.push(org.id);
        if (i + 1) % 100 == 0 {
            say(format!(
                "migrations: {} of {} placements made ({:.0} s)",
                i + 1,
                schemas + databases,
                started.elapsed().as_secs_f64()
            ));
        }
    }
    let setup_secs = started.elapsed().as_secs_f64();
    drop(db);

    let db = open(&url, app_role, false).await?;
    let t = Instant::now();
    let r = db.migrate().await?;
    let nothing_pending_secs = t.elapsed().as_secs_f64();
    drop(db);
    say(format!(
        "migrations: nothing pending over {} placements: {nothing_pending_secs:.1} s",
        r.placements
    ));

    let db = open(&url, app_role, true).await?;
    let t = Instant::now();
    let r = db.migrate().await?;
    let one_migration_secs = t.elapsed().as_secs_f64();
    say(format!(
        "migrations: one new data-plane migration over {} placements: {one_migration_secs:.1} s",
        r.placements
    ));
    let placements = r.placements;
    drop(db);
    Ok(Timings {
        schemas,
        databases,
        setup_secs,
        nothing_pending_secs,
        one_migration_secs,
        placements,
    })
}
