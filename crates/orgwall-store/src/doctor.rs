//! `orgwall doctor`: checks the schema wall and the database wall against the live
//! catalog, on either backend, and names every violation.
//!
//! A table outside [`GLOBAL_TABLES`] is a tenant table and must have:
//! `org_id NOT NULL`; a foreign key from `org_id` to `orgs(id)` with `ON DELETE CASCADE`;
//! a primary or unique key leading with `org_id` (with at least one more column);
//! composite foreign keys (including `org_id = org_id`) to every other tenant table it
//! references; every index leading with `org_id` (except the documented cross-org lookup
//! indexes in [`CROSS_ORG_INDEXES`]).
//! On PostgreSQL it must also have row-level security enabled **and forced** with a policy
//! on `app.org_id`, and must not be owned by the server role; the server role must not be
//! superuser or have BYPASSRLS; views must be `security_invoker`; no SECURITY DEFINER
//! function may be executable by PUBLIC.
//! On SQLite it must be a `<t>_rows` base table behind the scoped view `<t>` with its
//! `INSTEAD OF` triggers and the three guard triggers.
//!
//! One documented exemption on SQLite: a full-text index is an FTS5 virtual table
//! `<t>_fts_rows` over `<t>_rows`. A virtual table has no keys, foreign keys or indexes
//! and cannot carry triggers, so the rules above do not apply to it nor to the shadow
//! tables FTS5 creates for it ([`FTS5_SHADOW_TABLES`]). Instead it must be FTS5, have an
//! `org_id` column, sit behind the scoped view `<t>_fts` and be kept in sync by the named
//! triggers `orgwall_fts_<t>_rows_{ins,upd,del}` on its base table; its guard is the
//! authorizer, which refuses top-level reads of it and of its shadow tables, and writes to
//! it that do not come from a trigger. Any other virtual table is a violation.

use orgwall_core::{Error, Result};
use std::fmt;

/// Tables that are not tenant data (the documented allowlist).
pub const GLOBAL_TABLES: &[&str] = &[
    "users",
    "sessions",
    "email_verifications",
    "orgs",
    "jobs",
    "job_queues",
    "outbox",
    "plans",
    "schema_migrations",
];

/// Indexes that serve a documented cross-org read: (table, leading column).
pub const CROSS_ORG_INDEXES: &[(&str, &str)] = &[
    ("memberships", "user_id"),
    ("invitations", "token_hash"),
    ("api_keys", "key_hash"),
];

/// The shadow tables FTS5 creates for an index `x`: `x_data`, `x_idx`, ...
pub const FTS5_SHADOW_TABLES: &[&str] = &["data", "idx", "content", "docsize", "config"];

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The table, view, role or function concerned.
    pub object: String,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.object, self.problem)
    }
}

#[derive(Default)]
struct Findings(Vec<Violation>);

impl Findings {
    fn add(&mut self, object: &str, problem: impl Into<String>) {
        self.0.push(Violation {
            object: object.to_owned(),
            problem: problem.into(),
        });
    }
}

/// A table's shape, read from either catalog.
struct TableShape {
    name: String,
    /// The logical name (SQLite: without `_rows`).
    logical: String,
    org_id_not_null: Option<bool>,
    /// (columns, referenced table (logical), referenced columns, cascades on delete)
    fks: Vec<(Vec<String>, String, Vec<String>, bool)>,
    /// (name, columns, unique)
    indexes: Vec<(String, Vec<String>, bool)>,
}

fn is_global(logical: &str) -> bool {
    GLOBAL_TABLES.contains(&logical)
}

fn check_shape(t: &TableShape, f: &mut Findings) {
    let name = t.name.as_str();
    match t.org_id_not_null {
        None => f.add(name, "tenant table has no org_id column"),
        Some(false) => f.add(name, "org_id is nullable (must be NOT NULL)"),
        Some(true) => {}
    }
    let org_fk = t.fks.iter().any(|(cols, rt, rcols, cascade)| {
        cols == &["org_id"] && rt == "orgs" && rcols == &["id"] && *cascade
    });
    if !org_fk {
        f.add(name, "no foreign key org_id -> orgs(id) ON DELETE CASCADE");
    }
    let keyed = t.indexes.iter().any(|(_, cols, unique)| {
        *unique && cols.len() >= 2 && cols.first().is_some_and(|c| c == "org_id")
    });
    if !keyed {
        f.add(
            name,
            "no primary or unique key leading with org_id, e.g. (org_id, id)",
        );
    }
    for (cols, rt, rcols, _) in &t.fks {
        if rt == "orgs" || is_global(rt) {
            continue;
        }
        let pairs_org = cols
            .iter()
            .zip(rcols)
            .any(|(c, r)| c == "org_id" && r == "org_id");
        if !pairs_org || cols.len() < 2 {
            f.add(
                name,
                format!(
                    "foreign key ({}) -> {rt}({}) is not composite with org_id: a row could point into another organization",
                    cols.join(", "),
                    rcols.join(", ")
                ),
            );
        }
    }
    for (idx, cols, _) in &t.indexes {
        let lead = cols.first().map(String::as_str).unwrap_or("");
        if lead == "org_id" || CROSS_ORG_INDEXES.contains(&(t.logical.as_str(), lead)) {
            continue;
        }
        f.add(
            name,
            format!(
                "index {idx} ({}) does not lead with org_id",
                cols.join(", ")
            ),
        );
    }
}

/// Checks a PostgreSQL database (current schema) as seen by the connected login.
pub(crate) async fn postgres(
    client: &tokio_postgres::Client,
    app_role: &str,
) -> Result<Vec<Violation>> {
    let e = crate::pg::map_err;
    let mut f = Findings::default();

    let role = client
        .query_opt(
            "SELECT oid, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1",
            &[&app_role],
        )
        .await
        .map_err(e)?;
    let role_oid: Option<u32> = match role {
        None => {
            f.add(
                app_role,
                "the server role does not exist (run orgwall migrate)",
            );
            None
        }
        Some(r) => {
            if r.get::<_, bool>(1) {
                f.add(app_role, "the server role is a superuser");
            }
            if r.get::<_, bool>(2) {
                f.add(app_role, "the server role has BYPASSRLS");
            }
            Some(r.get(0))
        }
    };

    let tables = client
        .query(
            "SELECT c.oid, c.relname::text, c.relrowsecurity, c.relforcerowsecurity, c.relowner
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
             ORDER BY c.relname",
            &[],
        )
        .await
        .map_err(e)?;
    for t in &tables {
        let oid: u32 = t.get(0);
        let name: String = t.get(1);
        if role_oid == Some(t.get::<_, u32>(4)) {
            f.add(&name, format!("owned by the server role {app_role} (owners bypass policies unless forced, and can alter them)"));
        }
        if is_global(&name) {
            continue;
        }
        let org_col = client
            .query_opt(
                "SELECT attnotnull FROM pg_attribute WHERE attrelid = $1 AND attname = 'org_id' AND NOT attisdropped",
                &[&oid],
            )
            .await
            .map_err(e)?
            .map(|r| r.get::<_, bool>(0));
        let fks = client
            .query(
                "SELECT ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
                              JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i),
                        r.relname::text,
                        ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, i)
                              JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i),
                        c.confdeltype = 'c'
                 FROM pg_constraint c JOIN pg_class r ON r.oid = c.confrelid
                 WHERE c.conrelid = $1 AND c.contype = 'f'",
                &[&oid],
            )
            .await
            .map_err(e)?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect();
        let indexes = client
            .query(
                "SELECT ci.relname::text,
                        ARRAY(SELECT coalesce(a.attname::text, '(expression)')
                              FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, o)
                              LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n
                              ORDER BY k.o),
                        i.indisunique
                 FROM pg_index i JOIN pg_class ci ON ci.oid = i.indexrelid
                 WHERE i.indrelid = $1",
                &[&oid],
            )
            .await
            .map_err(e)?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        check_shape(
            &TableShape {
                logical: name.clone(),
                name: name.clone(),
                org_id_not_null: org_col,
                fks,
                indexes,
            },
            &mut f,
        );
        if !t.get::<_, bool>(2) {
            f.add(&name, "row-level security is not enabled");
        }
        if !t.get::<_, bool>(3) {
            f.add(
                &name,
                "row-level security is not forced (FORCE ROW LEVEL SECURITY)",
            );
        }
        let policy = client
            .query(
                "SELECT 1 FROM pg_policy WHERE polrelid = $1 AND polcmd = '*' AND polpermissive
                   AND pg_get_expr(polqual, polrelid) LIKE '%app.org_id%'
                   AND pg_get_expr(polwithcheck, polrelid) LIKE '%app.org_id%'",
                &[&oid],
            )
            .await
            .map_err(e)?;
        if policy.is_empty() {
            f.add(&name, "no policy for all commands comparing org_id with app.org_id in USING and WITH CHECK");
        }
    }

    for v in client
        .query(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = current_schema() AND c.relkind IN ('v', 'm')
               AND NOT coalesce('security_invoker=true' = ANY(c.reloptions), false)
             ORDER BY 1",
            &[],
        )
        .await
        .map_err(e)?
    {
        let name: String = v.get(0);
        f.add(&name, "view without security_invoker (it would read with its owner's rights, past row-level security)");
    }
    for p in client
        .query(
            "SELECT p.proname::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = current_schema() AND p.prosecdef
               AND (p.proacl IS NULL OR EXISTS (
                   SELECT 1 FROM aclexplode(p.proacl) x WHERE x.grantee = 0 AND x.privilege_type = 'EXECUTE'))
             ORDER BY 1",
            &[],
        )
        .await
        .map_err(e)?
    {
        let name: String = p.get(0);
        f.add(&name, "SECURITY DEFINER function executable by PUBLIC");
    }
    Ok(f.0)
}

/// Checks a SQLite database.
pub(crate) fn sqlite(conn: &rusqlite::Connection) -> Result<Vec<Violation>> {
    let e = |e: rusqlite::Error| Error::Internal(format!("doctor: {e}"));
    let mut f = Findings::default();
    let objects: Vec<(String, String, String, String)> = {
        let mut st = conn
            .prepare(
                "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master ORDER BY name",
            )
            .map_err(e)?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .map_err(e)?;
        rows.collect::<rusqlite::Result<_>>().map_err(e)?
    };
    let has = |kind: &str, name: &str, must_contain: &str| {
        objects
            .iter()
            .any(|(k, n, _, sql)| k == kind && n == name && sql.contains(must_contain))
    };
    let logical = |t: &str| t.strip_suffix("_rows").unwrap_or(t).to_owned();
    let virtuals: Vec<&str> = objects
        .iter()
        .filter(|(k, n, _, sql)| {
            k == "table"
                && !is_global(n)
                && sql
                    .trim_start()
                    .to_ascii_uppercase()
                    .starts_with("CREATE VIRTUAL TABLE")
        })
        .map(|(_, n, _, _)| n.as_str())
        .collect();
    let shadow = |t: &str| {
        virtuals.iter().any(|v| {
            crate::sqlite::is_fts_index(v)
                && t.strip_prefix(v)
                    .and_then(|r| r.strip_prefix('_'))
                    .is_some_and(|s| FTS5_SHADOW_TABLES.contains(&s))
        })
    };
    for vt in &virtuals {
        sqlite_fts_index(conn, &objects, vt, &mut f).map_err(e)?;
    }
    for (kind, name, _, _) in &objects {
        if kind != "table" || name.starts_with("sqlite_") || is_global(name) {
            continue;
        }
        if virtuals.contains(&name.as_str()) || shadow(name) {
            continue; // checked above
        }
        let base = name.as_str();
        let view = logical(base);
        if !base.ends_with("_rows") {
            f.add(base, format!("tenant table is not behind a scoped view: name it {base}_rows and let the migration runner generate the view {base}"));
        }
        let org_col: Option<bool> = conn
            .query_row(
                "SELECT \"notnull\" FROM pragma_table_info(?1) WHERE name = 'org_id'",
                [base],
                |r| r.get::<_, i64>(0).map(|n| n != 0),
            )
            .ok();
        let mut fks: Vec<(Vec<String>, String, Vec<String>, bool)> = Vec::new();
        {
            let mut st = conn
                .prepare("SELECT id, \"table\", \"from\", \"to\", on_delete FROM pragma_foreign_key_list(?1) ORDER BY id, seq")
                .map_err(e)?;
            let rows = st
                .query_map([base], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                })
                .map_err(e)?;
            let mut last = -1;
            for row in rows {
                let (id, table, from, to, on_delete) = row.map_err(e)?;
                if id != last {
                    fks.push((
                        Vec::new(),
                        logical(&table),
                        Vec::new(),
                        on_delete == "CASCADE",
                    ));
                    last = id;
                }
                if let Some(fk) = fks.last_mut() {
                    fk.0.push(from);
                    fk.2.push(to.unwrap_or_else(|| "(primary key)".into()));
                }
            }
        }
        let mut indexes = Vec::new();
        {
            let mut st = conn
                .prepare("SELECT name, \"unique\" FROM pragma_index_list(?1)")
                .map_err(e)?;
            let list: Vec<(String, bool)> = st
                .query_map([base], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? != 0)))
                .map_err(e)?
                .collect::<rusqlite::Result<_>>()
                .map_err(e)?;
            for (idx, unique) in list {
                let mut st = conn
                    .prepare("SELECT coalesce(name, '(expression)') FROM pragma_index_info(?1) ORDER BY seqno")
                    .map_err(e)?;
                let cols: Vec<String> = st
                    .query_map([&idx], |r| r.get(0))
                    .map_err(e)?
                    .collect::<rusqlite::Result<_>>()
                    .map_err(e)?;
                indexes.push((idx, cols, unique));
            }
        }
        check_shape(
            &TableShape {
                name: base.to_owned(),
                logical: view.clone(),
                org_id_not_null: org_col,
                fks,
                indexes,
            },
            &mut f,
        );
        if base.ends_with("_rows") {
            if !has("view", &view, "app_org()") {
                f.add(
                    base,
                    format!("no scoped view {view} filtering on app_org()"),
                );
            }
            for s in ["ins", "upd", "del"] {
                if !has("trigger", &format!("{view}_{s}"), "INSTEAD OF") {
                    f.add(base, format!("missing INSTEAD OF trigger {view}_{s}"));
                }
                if !has("trigger", &format!("orgwall_guard_{base}_{s}"), "app_org()") {
                    f.add(
                        base,
                        format!("missing guard trigger orgwall_guard_{base}_{s}"),
                    );
                }
            }
        }
    }
    Ok(f.0)
}

/// Checks one virtual table: it must be a full-text index as documented at the top.
fn sqlite_fts_index(
    conn: &rusqlite::Connection,
    objects: &[(String, String, String, String)],
    vt: &str,
    f: &mut Findings,
) -> rusqlite::Result<()> {
    let Some(source) = vt
        .strip_suffix("_fts_rows")
        .filter(|s| !s.is_empty() && crate::sqlite::is_fts_index(vt))
    else {
        f.add(vt, "virtual table is not a full-text index named <t>_fts_rows over <t>_rows (the authorizer guards only those)");
        return Ok(());
    };
    let sql = objects
        .iter()
        .find(|(k, n, _, _)| k == "table" && n == vt)
        .map(|(_, _, _, sql)| sql.to_ascii_lowercase())
        .unwrap_or_default();
    if !sql.contains("using fts5") {
        f.add(vt, "full-text index is not an FTS5 table");
    }
    let has_org: bool = conn.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info(?1) WHERE name = 'org_id'",
        [vt],
        |r| r.get(0),
    )?;
    if !has_org {
        f.add(vt, "full-text index has no org_id column");
    }
    let view = format!("{source}_fts");
    let scoped = objects.iter().any(|(k, n, _, sql)| {
        k == "view" && *n == view && sql.contains("app_org()") && sql.contains(vt)
    });
    if !scoped {
        f.add(
            vt,
            format!("no scoped view {view} over {vt} filtering on app_org()"),
        );
    }
    let base = format!("{source}_rows");
    if !objects
        .iter()
        .any(|(k, n, _, _)| k == "table" && *n == base)
    {
        f.add(vt, format!("indexes {base}, which does not exist"));
    }
    for (s, event) in [
        ("ins", "AFTER INSERT"),
        ("upd", "AFTER UPDATE"),
        ("del", "AFTER DELETE"),
    ] {
        let name = format!("orgwall_fts_{base}_{s}");
        let ok = objects.iter().any(|(k, n, tbl, sql)| {
            k == "trigger"
                && *n == name
                && *tbl == base
                && sql.to_ascii_uppercase().contains(event)
                && sql.contains(vt)
        });
        if !ok {
            f.add(
                vt,
                format!("missing sync trigger {name} ({event} ON {base}, writing {vt})"),
            );
        }
    }
    Ok(())
}
