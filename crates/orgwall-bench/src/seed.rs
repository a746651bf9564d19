//! Bulk loading of the data set.
//!
//! PostgreSQL: `COPY ... FROM STDIN` (text format) as the owner, a superuser in dev, with
//! `session_replication_role = replica` so the foreign-key triggers do not run per row
//! (every row is written with its correct `org_id` and consistent references by
//! construction); the tickets' secondary indexes are dropped for the load and rebuilt
//! from their own definitions after it; then `ANALYZE`. Superusers are not subject to
//! row-level security, forced or not.
//!
//! SQLite: one transaction of prepared inserts into the base tables (`<t>_rows`) on a
//! direct connection. The guard triggers stay in place and check every row against
//! `app_org()`, which this connection registers as "the org being loaded" (set org by
//! org); the full-text sync triggers fill the search index as they do for the server.
//!
//! Both run the migrations first through [`orgwall_store::Db::migrate`].

use crate::dataset::{self, Org, Spec, Ticket};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::SinkExt;
use orgwall_core::SystemRole;
use orgwall_store::crypto::{hash_password, token_hash};
use orgwall_store::repo::api_keys::DISPLAY_PREFIX_CHARS;
use orgwall_store::{Db, DbConfig};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use uuid::Uuid;

/// Rows per second of rate limit given to every bench org (60M/min: one request per
/// microsecond, far above anything this machine can serve).
pub const RATE_LIMIT_PER_MINUTE: i64 = 60_000_000;

/// The password of every bench user (they never log in; the hash is real all the same).
const PASSWORD: &str = "orgwall-bench";

/// What seeding produced.
pub struct Seeded {
    /// The orgs, with their keys and ticket samples.
    pub orgs: Vec<Org>,
    /// Seconds it took (migrations included).
    pub secs: f64,
}

fn owner_email(i: usize) -> String {
    format!("owner-{i}@bench.test")
}

fn member_email(i: usize) -> String {
    format!("member-{i}@bench.test")
}

fn key_prefix(key: &str) -> String {
    key.chars().take(DISPLAY_PREFIX_CHARS).collect()
}

// ---------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------

/// COPY text format: `\N` for NULL, backslash escapes for the few special characters.
fn esc(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// Builds COPY text, one row at a time, cut into chunks of about 1 MiB.
struct CopyText {
    buf: String,
    first: bool,
    chunks: Vec<Bytes>,
}

impl CopyText {
    fn new() -> CopyText {
        CopyText {
            buf: String::with_capacity(1 << 20),
            first: true,
            chunks: Vec::new(),
        }
    }

    fn field(&mut self, s: &str) -> &mut Self {
        if !self.first {
            self.buf.push('\t');
        }
        self.first = false;
        esc(&mut self.buf, s);
        self
    }

    fn uuid(&mut self, u: Uuid) -> &mut Self {
        if !self.first {
            self.buf.push('\t');
        }
        self.first = false;
        let _ = write!(self.buf, "{}", u.hyphenated());
        self
    }

    fn opt_uuid(&mut self, u: Option<Uuid>) -> &mut Self {
        match u {
            Some(u) => self.uuid(u),
            None => self.field_raw("\\N"),
        }
    }

    fn field_raw(&mut self, s: &str) -> &mut Self {
        if !self.first {
            self.buf.push('\t');
        }
        self.first = false;
        self.buf.push_str(s);
        self
    }

    /// Ends a row; returns a full chunk when one is ready.
    fn end(&mut self) -> Option<Bytes> {
        self.buf.push('\n');
        self.first = true;
        (self.buf.len() >= (1 << 20)).then(|| self.take())
    }

    fn take(&mut self) -> Bytes {
        Bytes::from(std::mem::replace(
            &mut self.buf,
            String::with_capacity(1 << 20),
        ))
    }

    /// Ends a row, keeping full chunks.
    fn row(&mut self) {
        if let Some(c) = self.end() {
            self.chunks.push(c);
        }
    }

    fn finish(mut self) -> Vec<Bytes> {
        if !self.buf.is_empty() {
            let c = self.take();
            self.chunks.push(c);
        }
        self.chunks
    }
}

fn pg_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string()
}

async fn copy_chunks(
    client: &tokio_postgres::Client,
    sql: &str,
    chunks: Vec<Bytes>,
) -> Result<u64> {
    let sink = client
        .copy_in::<_, Bytes>(sql)
        .await
        .with_context(|| sql.to_owned())?;
    futures::pin_mut!(sink);
    for c in chunks {
        sink.send(c).await.with_context(|| sql.to_owned())?;
    }
    sink.as_mut().finish().await.with_context(|| sql.to_owned())
}

/// The URL of database `name` on the server of `admin_url`.
pub fn pg_db_url(admin_url: &str, name: &str) -> Result<String> {
    let mut u = url::Url::parse(admin_url).context("invalid PostgreSQL URL")?;
    u.set_path(&format!("/{name}"));
    Ok(u.to_string())
}

/// A direct connection (its driver runs on a task of its own).
pub async fn pg_connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("cannot connect to PostgreSQL ({})", redact(url)))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// A URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "(invalid URL)".into(),
    }
}

/// Tables under this many pages are not vacuumed nor analyzed by the bench (the size below which the
/// mover leaves a table unanalyzed too).
const SMALL_TABLE_PAGES: i64 = 10;

/// Vacuums and analyzes the tables of the database `client` is connected to that hold at
/// least [`SMALL_TABLE_PAGES`] pages, in schemas not matching the `LIKE` pattern `skip`
/// (none when empty), then checkpoints: a measured run that follows does not share the
/// machine with autovacuum's first pass over the seed (a table that took more than a
/// thousand inserts gets one within a minute: the hint bits and visibility map of every
/// page, millions of rows at 1,000,000 tickets an org) nor with the checkpointer writing
/// the seed's pages out (pgbench vacuums before its runs for the same reason). A smaller
/// table is left as it is: never vacuumed nor analyzed, PostgreSQL plans it as at least 10
/// pages and looks rows up by key; analyzed empty (the seed has no notes), it
/// is planned at its size of the moment, and the key checks of the first creates cache a
/// sequential scan that every connection keeps as the table grows, until autovacuum
/// analyzes it again: the first create run after the seed's `ANALYZE` of an empty `notes`
/// ran at 376-401 req/s (p50 38-40 ms, 78,125 scans of `notes` reading 604 million rows),
/// the runs after it at 2,300-2,550.
pub async fn settle_populated(client: &tokio_postgres::Client, skip: &str) -> Result<()> {
    let tables: Vec<String> = client
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
               AND n.nspname NOT LIKE 'pg\\_%' AND ($1 = '' OR n.nspname NOT LIKE $1)
               AND pg_relation_size(c.oid) / current_setting('block_size')::bigint >= $2",
            &[&skip, &SMALL_TABLE_PAGES],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !tables.is_empty() {
        client
            .batch_execute(&format!("VACUUM (ANALYZE) {}", tables.join(", ")))
            .await?;
    }
    client.batch_execute("CHECKPOINT").await?;
    Ok(())
}

/// Creates database `name` afresh (dropping an old one) on the admin URL's server.
pub async fn pg_recreate(admin_url: &str, name: &str) -> Result<String> {
    let admin = pg_connect(admin_url).await?;
    // Two statements: DROP DATABASE refuses to run in the implicit transaction of a
    // multi-statement query.
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        admin
            .batch_execute(&sql)
            .await
            .with_context(|| format!("cannot create database {name}"))?;
    }
    pg_db_url(admin_url, name)
}

/// Drops database `name`.
pub async fn pg_drop(admin_url: &str, name: &str) -> Result<()> {
    let admin = pg_connect(admin_url).await?;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .with_context(|| format!("cannot drop database {name}"))?;
    Ok(())
}

/// Migrates the database at `url` and loads the data set into it.
pub async fn postgres(url: &str, app_role: &str, spec: &Spec) -> Result<Seeded> {
    let started = Instant::now();
    let db = Db::open(
        &DbConfig::Postgres {
            url: url.to_owned(),
            app_role: app_role.to_owned(),
            pool_size: 1,
            placement_budget: None,
        },
        orgwall_store::catalog(),
    )
    .await?;
    db.migrate().await?;
    drop(db);

    let client = pg_connect(url).await?;
    let superuser: bool = client
        .query_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await?
        .get(0);
    if !superuser {
        bail!(
            "the bench loads PostgreSQL as a superuser (COPY past row-level security, \
             session_replication_role); {} is not one",
            redact(url)
        );
    }
    client
        .batch_execute(
            "SET session_replication_role = replica; SET synchronous_commit = off; \
             SET maintenance_work_mem = '256MB'",
        )
        .await?;

    let mut orgs = dataset::orgs(spec);
    let t = dataset::created_at();
    let ts = pg_time(t);
    let hash = tokio::task::spawn_blocking(|| hash_password(PASSWORD)).await??;

    let mut users = CopyText::new();
    let mut org_rows = CopyText::new();
    let mut roles = CopyText::new();
    let mut members = CopyText::new();
    let mut keys = CopyText::new();
    let mut projects = CopyText::new();
    let mut notes = CopyText::new();
    let rate = RATE_LIMIT_PER_MINUTE.to_string();
    for (i, o) in orgs.iter().enumerate() {
        for (id, email, name) in [
            (o.owner, owner_email(i), "Bench Owner"),
            (o.member, member_email(i), "Bench Member"),
        ] {
            users
                .uuid(id)
                .field(&email)
                .field(name)
                .field(&hash)
                .field(&ts)
                .field(&ts)
                .field(&ts)
                .field(&ts)
                .row();
        }
        org_rows
            .uuid(o.id)
            .field(&o.slug)
            .field(&format!("Bench org {i}"))
            .field("enterprise")
            .field(&rate)
            .field(&ts)
            .field(&ts)
            .row();
        for (role, id) in &o.roles {
            roles
                .uuid(o.id)
                .uuid(*id)
                .field(role.key())
                .field(role.display_name())
                .field(&role.permissions().to_list())
                .field("t")
                .field(&ts)
                .field(&ts)
                .row();
        }
        for (user, role) in [(o.owner, SystemRole::Owner), (o.member, SystemRole::Member)] {
            members
                .uuid(o.id)
                .uuid(user)
                .uuid(o.role(role))
                .field(&ts)
                .field(&ts)
                .row();
        }
        keys.uuid(o.id)
            .uuid(o.key_id)
            .field("bench")
            .uuid(o.role(SystemRole::Admin))
            .field(&token_hash(&o.key))
            .field(&key_prefix(&o.key))
            .uuid(o.owner)
            .field(&ts)
            .row();
        for (n, p) in o.projects.iter().enumerate() {
            projects
                .uuid(o.id)
                .uuid(*p)
                .field(&format!("P{n}"))
                .field(&format!("Project {n}"))
                .field("A bench project")
                .uuid(o.owner)
                .field(&ts)
                .field(&ts)
                .row();
        }
        for (id, title, body) in dataset::notes(spec, i) {
            notes
                .uuid(o.id)
                .uuid(id)
                .field(&title)
                .field(&body)
                .uuid(o.owner)
                .field(&ts)
                .field(&ts)
                .row();
        }
    }
    for (sql, data) in [
        ("COPY users (id, email, name, password_hash, email_verified_at, password_changed_at, created_at, updated_at) FROM STDIN", users),
        ("COPY orgs (id, slug, name, plan, rate_limit_per_minute, created_at, updated_at) FROM STDIN", org_rows),
        ("COPY roles (org_id, id, key, name, permissions, is_system, created_at, updated_at) FROM STDIN", roles),
        ("COPY memberships (org_id, user_id, role_id, created_at, updated_at) FROM STDIN", members),
        ("COPY api_keys (org_id, id, name, role_id, key_hash, prefix, created_by, created_at) FROM STDIN", keys),
        ("COPY projects (org_id, id, key, name, description, created_by, created_at, updated_at) FROM STDIN", projects),
        ("COPY notes (org_id, id, title, body, created_by, created_at, updated_at) FROM STDIN", notes),
    ] {
        copy_chunks(&client, sql, data.finish()).await?;
    }

    // Tickets: secondary indexes off for the load, rebuilt from their definitions after.
    let indexes: Vec<(String, String)> = client
        .query(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i
             WHERE i.schemaname = current_schema() AND i.tablename = 'tickets'
               AND NOT EXISTS (SELECT 1 FROM pg_constraint c
                               WHERE c.conindid = format('%I.%I', i.schemaname, i.indexname)::regclass)",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (name, _) in &indexes {
        client
            .batch_execute(&format!("DROP INDEX \"{}\"", name.replace('"', "\"\"")))
            .await?;
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let spec2 = spec.clone();
    let ts2 = ts.clone();
    let generator = tokio::task::spawn_blocking(move || -> Result<Vec<Org>> {
        let mut text = CopyText::new();
        dataset::for_each_ticket(&spec2, &mut orgs, |t: &Ticket<'_>| -> Result<()> {
            text.uuid(t.org.id)
                .uuid(t.id)
                .uuid(t.project)
                .field(t.title)
                .field(t.body)
                .field(t.status)
                .opt_uuid(t.assignee)
                .uuid(t.org.owner)
                .field(&ts2)
                .field(&ts2);
            if let Some(chunk) = text.end() {
                tx.blocking_send(chunk)
                    .map_err(|_| anyhow::anyhow!("the COPY of tickets stopped"))?;
            }
            Ok(())
        })?;
        for chunk in text.finish() {
            tx.blocking_send(chunk)
                .map_err(|_| anyhow::anyhow!("the COPY of tickets stopped"))?;
        }
        Ok(orgs)
    });
    let copy = async {
        let sql = "COPY tickets (org_id, id, project_id, title, body, status, assignee_id, created_by, created_at, updated_at) FROM STDIN";
        let sink = client
            .copy_in::<_, Bytes>(sql)
            .await
            .context("COPY tickets")?;
        futures::pin_mut!(sink);
        while let Some(chunk) = rx.recv().await {
            sink.send(chunk).await.context("COPY tickets")?;
        }
        sink.as_mut().finish().await.context("COPY tickets")
    };
    let copied = copy.await;
    let orgs = generator.await??;
    copied?;
    for (_, def) in &indexes {
        client
            .batch_execute(def)
            .await
            .with_context(|| def.clone())?;
    }
    settle_populated(&client, "").await?;
    Ok(Seeded {
        orgs,
        secs: started.elapsed().as_secs_f64(),
    })
}

// ---------------------------------------------------------------------------------------
// SQLite
// ---------------------------------------------------------------------------------------

/// Migrates the SQLite file at `path` and loads the data set into it.
pub async fn sqlite(path: &Path, spec: &Spec) -> Result<Seeded> {
    let started = Instant::now();
    let db = Db::open(
        &DbConfig::Sqlite {
            path: path.to_owned(),
            pool_size: 1,
        },
        orgwall_store::catalog(),
    )
    .await?;
    db.migrate().await?;
    drop(db);
    let hash = tokio::task::spawn_blocking(|| hash_password(PASSWORD)).await??;
    let path = path.to_owned();
    let spec = spec.clone();
    let orgs = tokio::task::spawn_blocking(move || sqlite_load(&path, &spec, &hash)).await??;
    Ok(Seeded {
        orgs,
        secs: started.elapsed().as_secs_f64(),
    })
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn sqlite_load(path: &Path, spec: &Spec, hash: &str) -> Result<Vec<Org>> {
    use rusqlite::functions::FunctionFlags;
    let mut conn = rusqlite::Connection::open(path)?;
    // The org being loaded: what the guard triggers compare every row with.
    let current: Arc<Mutex<Option<String>>> = Arc::default();
    let cur = current.clone();
    conn.create_scalar_function("app_org", 0, FunctionFlags::SQLITE_UTF8, move |_| {
        Ok(cur.lock().ok().and_then(|c| c.clone()))
    })?;
    for name in ["app_user", "app_lookup"] {
        conn.create_scalar_function(name, 0, FunctionFlags::SQLITE_UTF8, |_| Ok(None::<String>))?;
    }
    conn.execute_batch(
        "PRAGMA synchronous = OFF; PRAGMA cache_size = -262144; PRAGMA temp_store = MEMORY;",
    )?;
    let mut orgs = dataset::orgs(spec);
    let t = micros(dataset::created_at());
    let set_org = |id: Uuid| {
        if let Ok(mut c) = current.lock() {
            *c = Some(id.hyphenated().to_string());
        }
    };
    let tx = conn.transaction()?;
    {
        let mut user = tx.prepare(
            "INSERT INTO users (id, email, name, password_hash, email_verified_at, password_changed_at, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?5, ?5)",
        )?;
        let mut org = tx.prepare(
            "INSERT INTO orgs (id, slug, name, plan, rate_limit_per_minute, created_at, updated_at)
             VALUES (?1, ?2, ?3, 'enterprise', ?4, ?5, ?5)",
        )?;
        let mut role = tx.prepare(
            "INSERT INTO roles_rows (org_id, id, key, name, permissions, is_system, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?6)",
        )?;
        let mut member = tx.prepare(
            "INSERT INTO memberships_rows (org_id, user_id, role_id, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?4)",
        )?;
        let mut key = tx.prepare(
            "INSERT INTO api_keys_rows (org_id, id, name, role_id, key_hash, prefix, created_by, created_at)
             VALUES (?1, ?2, 'bench', ?3, ?4, ?5, ?6, ?7)",
        )?;
        let mut project = tx.prepare(
            "INSERT INTO projects_rows (org_id, id, key, name, description, created_by, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, 'A bench project', ?5, ?6, ?6)",
        )?;
        let mut note = tx.prepare(
            "INSERT INTO notes_rows (org_id, id, title, body, created_by, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        )?;
        let s = |u: Uuid| u.hyphenated().to_string();
        for (i, o) in orgs.iter().enumerate() {
            user.execute(rusqlite::params![
                s(o.owner),
                owner_email(i),
                "Bench Owner",
                hash,
                t
            ])?;
            user.execute(rusqlite::params![
                s(o.member),
                member_email(i),
                "Bench Member",
                hash,
                t
            ])?;
            org.execute(rusqlite::params![
                s(o.id),
                o.slug,
                format!("Bench org {i}"),
                RATE_LIMIT_PER_MINUTE,
                t
            ])?;
            set_org(o.id);
            for (r, id) in &o.roles {
                role.execute(rusqlite::params![
                    s(o.id),
                    s(*id),
                    r.key(),
                    r.display_name(),
                    r.permissions().to_list(),
                    t
                ])?;
            }
            member.execute(rusqlite::params![
                s(o.id),
                s(o.owner),
                s(o.role(SystemRole::Owner)),
                t
            ])?;
            member.execute(rusqlite::params![
                s(o.id),
                s(o.member),
                s(o.role(SystemRole::Member)),
                t
            ])?;
            key.execute(rusqlite::params![
                s(o.id),
                s(o.key_id),
                s(o.role(SystemRole::Admin)),
                token_hash(&o.key),
                key_prefix(&o.key),
                s(o.owner),
                t
            ])?;
            for (n, p) in o.projects.iter().enumerate() {
                project.execute(rusqlite::params![
                    s(o.id),
                    s(*p),
                    format!("P{n}"),
                    format!("Project {n}"),
                    s(o.owner),
                    t
                ])?;
            }
            for (id, title, body) in dataset::notes(spec, i) {
                note.execute(rusqlite::params![
                    s(o.id),
                    s(id),
                    title,
                    body,
                    s(o.owner),
                    t
                ])?;
            }
        }
        let mut ticket = tx.prepare(
            "INSERT INTO tickets_rows (org_id, id, project_id, title, body, status, assignee_id, created_by, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
        )?;
        let mut loading: Option<Uuid> = None;
        dataset::for_each_ticket(spec, &mut orgs, |tk: &Ticket<'_>| -> Result<()> {
            if loading != Some(tk.org.id) {
                set_org(tk.org.id);
                loading = Some(tk.org.id);
            }
            ticket.execute(rusqlite::params![
                s(tk.org.id),
                s(tk.id),
                s(tk.project),
                tk.title,
                tk.body,
                tk.status,
                tk.assignee.map(s),
                s(tk.org.owner),
                t
            ])?;
            Ok(())
        })?;
    }
    tx.commit()?;
    if let Ok(mut c) = current.lock() {
        *c = None;
    }
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
    Ok(orgs)
}
