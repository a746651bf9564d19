//! The doctor on PostgreSQL (see [`crate::doctor`] for the rules).

use crate::doctor::{check_shape, Backend, Findings, TableShape, Violation};
use crate::module::Catalog;
use orgwall_core::Result;

/// Checks a PostgreSQL database (current schema) as seen by the connected login.
pub(crate) async fn check(
    client: &tokio_postgres::Client,
    control_url: &str,
    app_role: &str,
    catalog: &Catalog,
) -> Result<Vec<Violation>> {
    let e = super::map_err;
    let mut f = Findings::new(catalog);
    let control: String = client
        .query_one("SELECT current_schema()::text", &[])
        .await
        .map_err(e)?
        .get(0);

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

    schema_walls(client, app_role, role_oid, &mut f).await?;
    directory(client, &mut f).await?;
    if role_oid.is_some() {
        private_tables(client, app_role, &mut f).await?;
    }
    for (org, schema, _) in super::placement::placed(client, "schema").await? {
        let exists = client
            .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema])
            .await
            .map_err(e)?
            .is_some();
        if !exists {
            f.add(
                &format!("org {org}"),
                format!("placed in schema {schema}, which does not exist"),
            );
            continue;
        }
        client
            .batch_execute(&format!(
                "SET search_path TO {schema}, {}",
                crate::migrate::quote_ident(&control)
            ))
            .await
            .map_err(e)?;
        f.placement(&schema);
        let r = schema_walls(client, app_role, role_oid, &mut f).await;
        f.control();
        client.batch_execute("RESET search_path").await.map_err(e)?;
        r?;
        in_shared_tables_too(client, org, &format!("schema {schema}"), &mut f).await?;
    }
    let running = running_moves(client).await?;
    for (org, name, target) in super::placement::placed(client, "database").await? {
        placement_database(
            client,
            control_url,
            app_role,
            (org, &name, target.as_deref()),
            &running,
            &mut f,
        )
        .await?;
    }
    orphan_databases(client, control_url, &mut f).await?;
    move_leftovers(client, control_url, &running, &mut f).await?;
    Ok(f.found)
}

/// One placement database: reachable; walls 2 and 3 there (every data-plane table, nothing
/// of the control plane but the members projection); the projection private to the owner
/// and in step with the control plane (the org, its members); no row of the org left in
/// the shared tables.
async fn placement_database(
    control: &tokio_postgres::Client,
    control_url: &str,
    app_role: &str,
    (org, name, target): (orgwall_core::OrgId, &str, Option<&str>),
    running: &[String],
    f: &mut Findings<'_>,
) -> Result<()> {
    let e = super::map_err;
    let login = super::placement::server_login(control, control_url, target).await?;
    let placed = match login.connect_db(name).await {
        Ok(c) => c,
        Err(err) => {
            f.add(
                &format!("org {org}"),
                format!(
                    "placed in database {name} on {}, which cannot be reached: {err}",
                    target.unwrap_or("the control server")
                ),
            );
            return Ok(());
        }
    };
    let role_oid: Option<u32> = placed
        .query_opt("SELECT oid FROM pg_roles WHERE rolname = $1", &[&app_role])
        .await
        .map_err(e)?
        .map(|r| r.get(0));
    if role_oid.is_none() {
        f.add(
            &format!("org {org}"),
            format!("placed in database {name}, whose server has no role {app_role} (run orgwall migrate)"),
        );
    }
    f.placement_database(name);
    let walls = schema_walls(&placed, app_role, role_oid, f).await;
    let mut projection = Ok(());
    if walls.is_ok() {
        projection = projection_in_step(control, &placed, app_role, org, f).await;
    }
    // A move out of this database publishes the org's changes here.
    let published = stray_publications(&placed, running, f).await;
    f.control();
    walls?;
    projection?;
    published?;
    in_shared_tables_too(control, org, &format!("database {name}"), f).await
}

/// Rows of an org placed elsewhere (`placed_in`) in the control database's shared tables:
/// the org would live in two places.
async fn in_shared_tables_too(
    control: &tokio_postgres::Client,
    org: orgwall_core::OrgId,
    placed_in: &str,
    f: &mut Findings<'_>,
) -> Result<()> {
    let e = super::map_err;
    // A move in or out of the shared tables has the org's rows in both until it is done.
    let moving = control
        .query_opt(
            "SELECT 1 FROM placement_moves WHERE org_id = $1 AND 'shared' IN (from_kind, to_kind)",
            &[&org.uuid()],
        )
        .await
        .map_err(e)?
        .is_some();
    if moving {
        return Ok(());
    }
    control.batch_execute("BEGIN READ ONLY").await.map_err(e)?;
    let stray = super::placement::tables_with_rows(control, f.catalog, org, None).await;
    // After a failed read COMMIT rolls back; the read's own error is the answer then.
    control.batch_execute("COMMIT").await.map_err(e)?;
    let stray = stray?;
    if !stray.is_empty() {
        f.add(
            &format!("org {org}"),
            format!(
                "placed in {placed_in} but has rows in the shared tables too: {}",
                stray.join(", ")
            ),
        );
    }
    Ok(())
}

/// The members projection of a placement database: private to the owner, holding exactly
/// the org and its members as the control plane has them.
async fn projection_in_step(
    control: &tokio_postgres::Client,
    placed: &tokio_postgres::Client,
    app_role: &str,
    org: orgwall_core::OrgId,
    f: &mut Findings<'_>,
) -> Result<()> {
    let e = super::map_err;
    for t in crate::placement::PROJECTION_TABLES {
        let granted: Option<bool> = placed
            .query_opt(
                "SELECT has_table_privilege($1, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
                 FROM pg_class c WHERE c.relname = $2 AND c.relnamespace = current_schema()::regnamespace",
                &[&app_role, &t],
            )
            .await
            .map_err(e)?
            .map(|r| r.get(0));
        if granted == Some(true) {
            f.add(t, "the server role holds a privilege on the members projection (it is the owner's; run orgwall migrate)");
        }
    }
    let orgs: Vec<uuid::Uuid> = placed
        .query("SELECT id FROM orgs ORDER BY id", &[])
        .await
        .map_err(e)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if orgs != [org.uuid()] {
        f.add(
            "orgs",
            format!("the projection must hold exactly its org {org}; it holds {orgs:?}"),
        );
    }
    // The control plane's members of the org, read inside its scope (forced RLS binds
    // the owner too), against the projection's.
    control.batch_execute("BEGIN READ ONLY").await.map_err(e)?;
    let want = async {
        control
            .execute(
                "SELECT set_config('app.org_id', $1, true)",
                &[&org.to_string()],
            )
            .await?;
        control
            .query(
                "SELECT user_id FROM memberships WHERE org_id = $1 ORDER BY user_id",
                &[&org.uuid()],
            )
            .await
    }
    .await;
    control.batch_execute("COMMIT").await.map_err(e)?;
    let want: Vec<uuid::Uuid> = want.map_err(e)?.iter().map(|r| r.get(0)).collect();
    // The projection's, inside the org's scope too (forced RLS covers it like any table
    // with an org_id, and binds a login that is not a superuser).
    placed.batch_execute("BEGIN READ ONLY").await.map_err(e)?;
    let have = async {
        placed
            .execute(
                "SELECT set_config('app.org_id', $1, true)",
                &[&org.to_string()],
            )
            .await?;
        placed
            .query(
                "SELECT user_id FROM memberships WHERE org_id = $1 ORDER BY user_id",
                &[&org.uuid()],
            )
            .await
    }
    .await;
    placed.batch_execute("COMMIT").await.map_err(e)?;
    let have: Vec<uuid::Uuid> = have.map_err(e)?.iter().map(|r| r.get(0)).collect();
    let missing: Vec<_> = want.iter().filter(|u| !have.contains(u)).collect();
    let extra: Vec<_> = have.iter().filter(|u| !want.contains(u)).collect();
    if !missing.is_empty() || !extra.is_empty() {
        f.add(
            "memberships",
            format!(
                "the members projection is out of step with the control plane: missing {missing:?}, not members any more {extra:?}"
            ),
        );
    }
    mirror_in_step(control, placed, app_role, org, f).await
}

/// The access mirror of a placement database: readable by the server role, never ahead of
/// the control plane's generation (reads there would be refused as stale, again and
/// again), retired only while the org is moving out.
async fn mirror_in_step(
    control: &tokio_postgres::Client,
    placed: &tokio_postgres::Client,
    app_role: &str,
    org: orgwall_core::OrgId,
    f: &mut Findings<'_>,
) -> Result<()> {
    let e = super::map_err;
    let t = crate::placement::MIRROR_TABLE;
    let readable: Option<bool> = placed
        .query_opt(
            "SELECT has_table_privilege($1, c.oid, 'SELECT') FROM pg_class c
             WHERE c.relname = $2 AND c.relnamespace = current_schema()::regnamespace",
            &[&app_role, &t],
        )
        .await
        .map_err(e)?
        .map(|r| r.get(0));
    match readable {
        None => {
            f.add(t, "the access mirror is missing (run orgwall migrate)");
            return Ok(());
        }
        Some(false) => f.add(
            t,
            "the server role cannot read the access mirror (run orgwall migrate)",
        ),
        Some(true) => {}
    }
    let mirrored: Option<i64> = placed
        .query_opt(
            &format!("SELECT gen FROM {t} WHERE dep = $1"),
            &[&org.uuid()],
        )
        .await
        .map_err(e)?
        .map(|r| r.get(0));
    let gen: i64 = control
        .query_opt(
            "SELECT gen FROM access_generations WHERE dep = $1",
            &[&org.uuid()],
        )
        .await
        .map_err(e)?
        .map_or(0, |r| r.get(0));
    let moving = control
        .query_opt(
            "SELECT 1 FROM placement_moves WHERE org_id = $1",
            &[&org.uuid()],
        )
        .await
        .map_err(e)?
        .is_some();
    let Some(mirrored) = mirrored else {
        if gen > 0 {
            f.add(t, "the access mirror has no row for the org: cached reads there are not checked against its access changes until the next one writes it");
        }
        return Ok(());
    };
    if mirrored == crate::placement::MIRROR_RETIRED && !moving {
        f.add(t, "the access mirror is retired but the org is not moving out: every cached read there is refused (run the move's job again, or abort it)");
    } else if mirrored != crate::placement::MIRROR_RETIRED && mirrored > gen {
        f.add(t, format!("the access mirror ({mirrored}) is ahead of the control plane's generation ({gen}): cached reads there are refused as stale"));
    }
    Ok(())
}

/// Placement databases on the control server that no directory entry names, for orgs of
/// this control database (a database named after an org another control database holds
/// is not this one's to judge).
async fn orphan_databases(
    client: &tokio_postgres::Client,
    _control_url: &str,
    f: &mut Findings<'_>,
) -> Result<()> {
    let rows = client
        .query(
            "SELECT d.datname::text FROM pg_database d
             WHERE d.datname LIKE 'orgwall\\_org\\_%'
               AND EXISTS (SELECT 1 FROM orgs o WHERE 'orgwall_org_' || replace(o.id::text, '-', '') = d.datname)
               AND NOT EXISTS (SELECT 1 FROM placements pl
                               WHERE pl.kind = 'database' AND pl.target IS NULL AND pl.location = d.datname)
               AND NOT EXISTS (SELECT 1 FROM placement_moves m
                               WHERE d.datname IN (m.from_location, m.to_location))
             ORDER BY 1",
            &[],
        )
        .await
        .map_err(super::map_err)?;
    for r in rows {
        let name: String = r.get(0);
        if crate::placement::is_database_name(&name) {
            f.add(
                &name,
                "placement database that no org is placed in (an orphan: drop it once checked)",
            );
        }
    }
    Ok(())
}

/// The slot and publication names of the moves that run (`orgwall_move_<org>`).
async fn running_moves(client: &tokio_postgres::Client) -> Result<Vec<String>> {
    Ok(client
        .query("SELECT org_id FROM placement_moves", &[])
        .await
        .map_err(super::map_err)?
        .iter()
        .map(|r| super::mover::move_name(orgwall_core::OrgId::from_uuid(r.get(0))))
        .collect())
}

/// What an interrupted and abandoned move leaves: replication slots named for a move
/// (`orgwall_move_<org>`) that no running move owns, on the control server and on every
/// registered target (a slot holds WAL on its server until it is dropped), and such
/// publications in the control database (those in placement databases are named with
/// each database).
async fn move_leftovers(
    client: &tokio_postgres::Client,
    control_url: &str,
    running: &[String],
    f: &mut Findings<'_>,
) -> Result<()> {
    let e = super::map_err;
    let mut servers: Vec<(String, Option<String>)> = vec![("the control server".into(), None)];
    for t in super::placement::targets(client).await? {
        servers.push((format!("target {}", t.name), Some(t.name)));
    }
    for (shown, target) in servers {
        let login = super::placement::server_login(client, control_url, target.as_deref()).await?;
        let Ok(c) = super::placement::connect_to(&login.cfg, &login.shown).await else {
            continue; // an unreachable target is named where an org is placed on it
        };
        let slots = c
            .query(
                "SELECT slot_name::text, database::text FROM pg_replication_slots WHERE slot_name LIKE 'orgwall\\_move\\_%'",
                &[],
            )
            .await
            .map_err(e)?;
        for r in slots {
            let (name, database): (String, Option<String>) = (r.get(0), r.get(1));
            if super::mover::is_move_name(&name) && !running.contains(&name) {
                f.add(
                    &name,
                    format!(
                        "replication slot of a move that no longer runs, on {shown} (database {}): it holds WAL there; drop it (SELECT pg_drop_replication_slot('{name}'))",
                        database.unwrap_or_default()
                    ),
                );
            }
        }
    }
    stray_publications(client, running, f).await
}

/// Publications named for a move that no running move owns, in the database `c` is
/// connected to (findings are named with the database being checked).
async fn stray_publications(
    c: &tokio_postgres::Client,
    running: &[String],
    f: &mut Findings<'_>,
) -> Result<()> {
    for r in c
        .query(
            "SELECT pubname::text FROM pg_publication WHERE pubname LIKE 'orgwall\\_move\\_%'",
            &[],
        )
        .await
        .map_err(super::map_err)?
    {
        let name: String = r.get(0);
        if super::mover::is_move_name(&name) && !running.contains(&name) {
            f.add(
                &name,
                "publication of a move that no longer runs (DROP PUBLICATION it)",
            );
        }
    }
    Ok(())
}

/// The directory: every org placed exactly once, no placement schema that no org names.
/// The kernel's private tables ([`crate::placement::PRIVATE_TABLES`]: target servers'
/// credentials): the server role must hold no privilege on them.
async fn private_tables(
    client: &tokio_postgres::Client,
    app_role: &str,
    f: &mut Findings<'_>,
) -> Result<()> {
    for &t in crate::placement::PRIVATE_TABLES {
        let granted: Option<bool> = client
            .query_opt(
                "SELECT has_table_privilege($1, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
                 FROM pg_class c WHERE c.relname = $2 AND c.relnamespace = current_schema()::regnamespace",
                &[&app_role, &t],
            )
            .await
            .map_err(super::map_err)?
            .map(|r| r.get(0));
        match granted {
            None => f.add(t, "missing (run orgwall migrate)"),
            Some(true) => f.add(
                t,
                "the server role holds a privilege on it (it keeps target servers' credentials; run orgwall migrate)",
            ),
            Some(false) => {}
        }
    }
    // The directory: the server role reads it and adds a new org's entry (a second entry
    // for an org is refused by its key), and changes or deletes none.
    let writes: Option<bool> = client
        .query_opt(
            "SELECT has_table_privilege($1, c.oid, 'UPDATE, DELETE, TRUNCATE')
             FROM pg_class c WHERE c.relname = 'placements' AND c.relnamespace = current_schema()::regnamespace",
            &[&app_role],
        )
        .await
        .map_err(super::map_err)?
        .map(|r| r.get(0));
    if writes == Some(true) {
        f.add(
            "placements",
            "the server role may write the placement directory (only the owner places orgs; run orgwall migrate)",
        );
    }
    Ok(())
}

async fn directory(client: &tokio_postgres::Client, f: &mut Findings<'_>) -> Result<()> {
    let e = super::map_err;
    for r in client
        .query(
            "SELECT o.id FROM orgs o WHERE NOT EXISTS (SELECT 1 FROM placements pl WHERE pl.org_id = o.id)
             ORDER BY o.id",
            &[],
        )
        .await
        .map_err(e)?
    {
        let org: uuid::Uuid = r.get(0);
        f.add(
            &format!("org {org}"),
            "has no placement entry (every org is placed exactly once; run orgwall placement set ORG shared)",
        );
    }
    for r in client
        .query(
            "SELECT n.nspname::text FROM pg_namespace n
             WHERE n.nspname LIKE 'org\\_%'
               AND NOT EXISTS (SELECT 1 FROM placements pl WHERE pl.kind = 'schema' AND pl.location = n.nspname)
               AND NOT EXISTS (SELECT 1 FROM placement_moves m
                               WHERE n.nspname IN (m.from_location, m.to_location))
             ORDER BY 1",
            &[],
        )
        .await
        .map_err(e)?
    {
        let schema: String = r.get(0);
        if crate::placement::is_schema_name(&schema) {
            f.add(
                &schema,
                "placement schema that no org is placed in (an orphan: drop it once checked)",
            );
        }
    }
    Ok(())
}

/// Walls 2 and 3 in the current schema (the control schema, or a placement schema first on
/// the search path).
async fn schema_walls(
    client: &tokio_postgres::Client,
    app_role: &str,
    role_oid: Option<u32>,
    f: &mut Findings<'_>,
) -> Result<()> {
    let e = super::map_err;
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
    let present: Vec<String> = tables.iter().map(|t| t.get(1)).collect();
    f.registration(&present);
    for t in &tables {
        let oid: u32 = t.get(0);
        let name: String = t.get(1);
        if role_oid == Some(t.get::<_, u32>(4)) {
            f.add(&name, format!("owned by the server role {app_role} (owners bypass policies unless forced, and can alter them)"));
        }
        if f.catalog.is_system(&name) {
            if !t.get::<_, bool>(2) || !t.get::<_, bool>(3) {
                f.add(
                    &name,
                    "system table without row-level security enabled and forced",
                );
            }
            let like = format!("%app.system%'{name}'%");
            let policy = client
                .query(
                    "SELECT 1 FROM pg_policy WHERE polrelid = $1 AND polcmd = '*' AND polpermissive
                       AND pg_get_expr(polqual, polrelid) LIKE '%app.org_id%'
                       AND pg_get_expr(polqual, polrelid) LIKE $2
                       AND pg_get_expr(polwithcheck, polrelid) LIKE '%app.org_id%'",
                    &[&oid, &like],
                )
                .await
                .map_err(e)?;
            if policy.is_empty() {
                f.add(&name, format!("system table without a policy for all commands on org_id = app.org_id or app.system = '{name}'"));
            }
            let others = client
                .query(
                    "SELECT polname::text FROM pg_policy WHERE polrelid = $1 AND polpermissive
                       AND NOT (polcmd = '*' AND pg_get_expr(polqual, polrelid) LIKE '%app.org_id%'
                                AND pg_get_expr(polqual, polrelid) LIKE $2)
                       AND NOT (polname = 'orgless_insert' AND polcmd = 'a'
                                AND pg_get_expr(polwithcheck, polrelid) = '(org_id IS NULL)')",
                    &[&oid, &like],
                )
                .await
                .map_err(e)?;
            for p in others {
                let pol: String = p.get(0);
                f.add(&name, format!("system table has another permissive policy {pol} (it could widen what a tenant sees)"));
            }
            continue;
        }
        if f.is_global(&name) {
            // A global table needs no tenant wall, but one that was given policies (the job
            // queues: only the job system's transactions) must keep them applied: policies
            // on a table whose row-level security was disabled or unforced bind no one.
            if !t.get::<_, bool>(2) || !t.get::<_, bool>(3) {
                let policies = client
                    .query("SELECT 1 FROM pg_policy WHERE polrelid = $1", &[&oid])
                    .await
                    .map_err(e)?;
                if !policies.is_empty() {
                    f.add(
                        &name,
                        "global table with policies but without row-level security enabled and forced (its policies are not applied)",
                    );
                }
            }
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
            Backend::Postgres,
            f,
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
    Ok(())
}
