//! Placing the bench's orgs, data and all, for the placement comparison
//! (`--placements shared,schema,database`; issue 12).
//!
//! `orgwall placement set` places only an empty org (moving one with data is a move, not
//! built yet), so the bench does it by hand, as the superuser it loads with: for each org,
//! its data-plane rows are copied out of its placement (`COPY ... TO STDOUT`, all of them,
//! derived search rows too) and deleted there; the now empty org is placed through the
//! kernel's own `placement::set` (which makes the schema or database whole, with every
//! wall and the members projection, and drops the one it left); the rows are copied into
//! the new placement (`COPY ... FROM STDIN`) with `session_replication_role = replica`, so
//! no ordinary trigger rewrites them: every row arrives as it was, but for the derived
//! search rows, which their `ENABLE ALWAYS` triggers rebuild from the tickets as they
//! arrive (so they are deleted, not copied). Then `VACUUM (ANALYZE)` of the control database's
//! shared tables (an org's own schema or database is left unanalyzed, see
//! [`place_all`]) and a checkpoint. A bench tool,
//! not a move: nothing is served meanwhile.

use crate::seed::{pg_connect, pg_db_url};
use anyhow::{Context, Result};
use bytes::Bytes;
use futures::{SinkExt, TryStreamExt};
use orgwall_store::placement::{self, Kind};
use orgwall_store::{Db, DbConfig};
use std::time::Instant;
use uuid::Uuid;

/// Where an org's data-plane tables are, as the superuser reaches them.
struct Place {
    client: tokio_postgres::Client,
    /// The schema to qualify table names with.
    schema: String,
}

async fn place_of(url: &str, db: &Db, org: orgwall_core::OrgId) -> Result<Place> {
    let e = placement::show(db, org).await?;
    let (client, schema) = match (e.kind.as_str(), e.location) {
        ("schema", Some(s)) => {
            // First on the search path, as a tenant transaction has it: the search rows'
            // triggers write to the table of that name they find first.
            let c = pg_connect(url).await?;
            let control: String = c
                .query_one("SELECT current_schema()::text", &[])
                .await?
                .get(0);
            c.batch_execute(&format!(
                "SET search_path TO {}, {}",
                quote(&s),
                quote(&control)
            ))
            .await?;
            (c, s)
        }
        ("database", Some(d)) => (pg_connect(&pg_db_url(url, &d)?).await?, "public".into()),
        _ => {
            let c = pg_connect(url).await?;
            let s: String = c
                .query_one("SELECT current_schema()::text", &[])
                .await?
                .get(0);
            (c, s)
        }
    };
    client
        .batch_execute("SET session_replication_role = replica; SET synchronous_commit = off")
        .await?;
    Ok(Place { client, schema })
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Places every org of `orgs` in `kind`, with its rows. Returns the seconds it took.
pub async fn place_all(url: &str, app_role: &str, orgs: &[Uuid], kind: &Kind) -> Result<f64> {
    let started = Instant::now();
    let mut control: Option<tokio_postgres::Client> = None;
    let db = Db::open(
        &DbConfig::Postgres {
            url: url.to_owned(),
            app_role: app_role.to_owned(),
            pool_size: 2,
            placement_budget: None,
        },
        orgwall_store::catalog(),
    )
    .await?;
    let tables: Vec<&'static str> = db.catalog().data_tables().collect();
    for &id in orgs {
        let org = orgwall_core::OrgId::from_uuid(id);
        let from = place_of(url, &db, org).await?;
        let mut held: Vec<(&str, String, Vec<Bytes>)> = Vec::new();
        for t in &tables {
            let columns: Vec<String> = from
                .client
                .query(
                    "SELECT column_name::text FROM information_schema.columns
                     WHERE table_schema = $1 AND table_name = $2 AND is_generated = 'NEVER'
                     ORDER BY ordinal_position",
                    &[&from.schema, t],
                )
                .await?
                .iter()
                .map(|r| quote(&r.get::<_, String>(0)))
                .collect();
            let cols = columns.join(", ");
            let table = format!("{}.{}", quote(&from.schema), quote(t));
            let out = from
                .client
                .copy_out(&format!(
                    "COPY (SELECT {cols} FROM {table} WHERE org_id = '{id}') TO STDOUT"
                ))
                .await
                .with_context(|| format!("COPY out of {table}"))?;
            let chunks: Vec<Bytes> = out.try_collect().await?;
            from.client
                .execute(&format!("DELETE FROM {table} WHERE org_id = $1"), &[&id])
                .await?;
            held.push((t, cols, chunks));
        }
        drop(from);
        placement::set(&db, org, kind.clone())
            .await
            .with_context(|| format!("placing org {id} in {kind}"))?;
        let to = place_of(url, &db, org).await?;
        for (t, cols, chunks) in held {
            if db.catalog().is_derived(t) {
                continue; // rebuilt from its source rows by their ALWAYS triggers
            }
            let table = format!("{}.{}", quote(&to.schema), quote(t));
            let sink = to
                .client
                .copy_in::<_, Bytes>(&format!("COPY {table} ({cols}) FROM STDIN"))
                .await
                .with_context(|| format!("COPY into {table}"))?;
            futures::pin_mut!(sink);
            for c in chunks {
                sink.send(c).await?;
            }
            sink.as_mut().finish().await?;
        }
        if matches!(kind, Kind::Database(_)) {
            // Not analyzed: a database's tables hold one org's rows, a page or two here,
            // and statistics that small make PostgreSQL plan a sequential scan for the
            // foreign key checks of each new row (a note's terms check the note), which
            // the connections then keep as the tables grow, until autovacuum analyzes
            // again (up to a minute per database, longer than a run): three create runs
            // in a row went 1,512, 953, 757 req/s that way, and 2,452-2,565 unanalyzed. A
            // table never analyzed is costed by its actual size (at least 10 pages), as
            // `placement set` leaves an empty org's.
        } else {
            // The control database: analyzed once at the end (once per org made placing
            // 1,000 orgs quadratic).
            control = Some(to.client);
        }
    }
    if let Some(c) = control {
        // The shared tables and the control plane only: an org's own schema is left
        // unanalyzed, as `placement set` leaves it, for the reason given above (its
        // `notes` analyzed at about 500 rows, a note's terms checked the note with a
        // sequential scan, eight per create, as the table grew: the schema placement's
        // create ran at 971-993 req/s against shared's 2,558, `pg_stat_user_tables`
        // counting 9,589 sequential scans and no index scan of one org's `notes` for
        // 1,201 rows inserted).
        crate::seed::settle_populated(&c, "org\\_%").await?;
    }
    Ok(started.elapsed().as_secs_f64())
}
