//! Online moves on PostgreSQL (issue 13): an org moved between every pair of placement
//! kinds (shared tables, its own schema, its own database on the control server and on a
//! second server) while a writer creates and renames its tickets and a reader lists them;
//! the other org written at the same time. Then a mover stopped dead in each phase and
//! resumed, and one aborted. The servers are throwaway clusters with `wal_level =
//! logical` that the test starts itself (never the shared server's settings).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use orgwall_core::{Error, OrgId, ProjectId, TicketId, UserId};
use orgwall_store::placement::{self, Kind, Route};
use orgwall_store::repo::{projects, tickets};
use orgwall_store::{access, Db, DbConfig};
use orgwall_testkit::cluster::PgCluster;
use orgwall_testkit::{pg_client, Demo};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LOGICAL: &[&str] = &["wal_level = logical", "max_replication_slots = 20"];

/// A control database on `cluster`, migrated, with the demo world.
async fn world(cluster: &PgCluster) -> (Db, Demo, String) {
    pg_client(&cluster.url)
        .await
        .batch_execute("CREATE DATABASE orgwall_m")
        .await
        .unwrap();
    let url = cluster.url_of("orgwall_m");
    let db = Db::open(
        &DbConfig::Postgres {
            url: url.clone(),
            app_role: orgwall_store::db::DEFAULT_APP_ROLE.into(),
            pool_size: 8,
            placement_budget: None,
        },
        orgwall_store::catalog(),
    )
    .await
    .unwrap();
    db.migrate().await.unwrap();
    let d = Demo::load(&db).await;
    (db, d, url)
}

/// Makes the scope's org's first ticket written by `user` (who need not be a member).
async fn first_ticket_written_by(db: &Db, scope: &access::OrgScope, user: UserId) {
    let mut tx = db.write(scope).await.unwrap();
    let n = tx
        .data()
        .execute(
            "UPDATE tickets SET created_by = $1 WHERE id = (SELECT id FROM tickets ORDER BY id LIMIT 1)",
            &[orgwall_store::value::Val::Uuid(user.uuid())],
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(n, 1);
}

/// The org's projects (the first is where the writer writes).
async fn projects_of(db: &Db, user: UserId, org: OrgId) -> Vec<ProjectId> {
    let scope = access::verify_member(db, user, org).await.unwrap();
    let mut tx = db.read(&scope).await.unwrap();
    let p = projects::list(&mut tx, 100, None).await.unwrap();
    tx.commit().await.unwrap();
    p.into_iter().map(|p| p.id).collect()
}

/// What a writer had acknowledged: each ticket's last acknowledged title.
type Acked = Arc<Mutex<HashMap<TicketId, String>>>;

/// Creates a ticket, and renames an earlier one every third round, until `stop`; returns
/// the longest time one acknowledged write took.
async fn writer(
    db: Db,
    user: UserId,
    org: OrgId,
    project: ProjectId,
    acked: Acked,
    stop: Arc<AtomicBool>,
) -> Duration {
    let mut longest = Duration::ZERO;
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let began = Instant::now();
        // Nothing is refused while the org moves: writes wait at the fence, a transaction
        // that finds its org placed elsewhere follows it (no "send it again").
        let scope = access::verify_member(&db, user, org)
            .await
            .unwrap_or_else(|e| panic!("verify: {e}"));
        let rename = if i.is_multiple_of(3) {
            acked.lock().unwrap().keys().next().copied()
        } else {
            None
        };
        let title = format!("w{i}");
        let r: Result<TicketId, Error> = async {
            let mut tx = db.write(&scope).await?;
            let id = match rename {
                Some(id) => {
                    tickets::update(
                        &mut tx,
                        id,
                        tickets::TicketPatch {
                            title: Some(title.clone()),
                            body: None,
                            status: None,
                            assignee_id: None,
                        },
                    )
                    .await?
                    .id
                }
                None => {
                    tickets::create(
                        &mut tx,
                        tickets::NewTicket {
                            project_id: project,
                            title: &title,
                            body: "written during a move",
                            assignee_id: None,
                        },
                    )
                    .await?
                    .id
                }
            };
            tx.commit().await?;
            Ok(id)
        }
        .await;
        match r {
            Ok(id) => {
                longest = longest.max(began.elapsed());
                acked.lock().unwrap().insert(id, title);
            }
            Err(e) => panic!("write {i}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    longest
}

/// Lists the org's tickets whole, until `stop`: never a row of another project (another
/// org), never fewer tickets than were acknowledged before the read began. Returns how
/// many reads it made.
async fn reader(
    db: Db,
    user: UserId,
    org: OrgId,
    projects: Vec<ProjectId>,
    acked: Acked,
    before: usize,
    stop: Arc<AtomicBool>,
) -> usize {
    let mut reads = 0;
    while !stop.load(Ordering::Relaxed) {
        let floor = before + acked_creates(&acked);
        // Nothing is refused while the org moves: writes wait at the fence, a transaction
        // that finds its org placed elsewhere follows it (no "send it again").
        let scope = access::verify_member(&db, user, org)
            .await
            .unwrap_or_else(|e| panic!("verify: {e}"));
        match all_tickets(&db, &scope).await {
            Ok(all) => {
                assert!(
                    all.iter().all(|t| projects.contains(&t.project_id)),
                    "a reader saw another org's ticket"
                );
                assert!(
                    all.len() >= floor,
                    "a reader saw {} tickets, {floor} were acknowledged before it read",
                    all.len()
                );
                reads += 1;
            }
            Err(e) => panic!("read: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    reads
}

/// How many tickets the writer created (a rename does not add one).
fn acked_creates(acked: &Acked) -> usize {
    acked.lock().unwrap().len()
}

async fn all_tickets(db: &Db, scope: &access::OrgScope) -> Result<Vec<tickets::Ticket>, Error> {
    let mut tx = db.read(scope).await?;
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = tickets::list(&mut tx, &tickets::TicketFilter::default(), 500, after).await?;
        let last = page.last().map(|t| t.id.uuid());
        let n = page.len();
        out.extend(page);
        if n < 500 {
            break;
        }
        after = last;
    }
    tx.commit().await?;
    Ok(out)
}

/// Every acknowledged ticket is there exactly once with its last acknowledged title, and
/// there is nothing else but the `before` tickets.
async fn check_acked(db: &Db, user: UserId, org: OrgId, acked: &Acked, before: usize) {
    let scope = access::verify_member(db, user, org).await.unwrap();
    let all = all_tickets(db, &scope).await.unwrap();
    let acked = acked.lock().unwrap().clone();
    let mut seen: HashMap<TicketId, usize> = HashMap::new();
    for t in &all {
        *seen.entry(t.id).or_default() += 1;
        if let Some(title) = acked.get(&t.id) {
            assert_eq!(&t.title, title, "ticket {} lost its last write", t.id);
        }
    }
    for id in acked.keys() {
        assert_eq!(
            seen.get(id),
            Some(&1),
            "acknowledged ticket {id} is not there once"
        );
    }
    assert_eq!(
        all.len(),
        before + acked.len(),
        "tickets no writer acknowledged"
    );
    // The usage counters (derived by triggers: copied, or counted again where the rows
    // landed) agree with the rows: what the next quota check reads.
    let mut tx = db.read(&scope).await.unwrap();
    let used = orgwall_store::quota::usage(&mut tx).await.unwrap().used;
    let projects = projects::list(&mut tx, 100, None).await.unwrap().len();
    tx.commit().await.unwrap();
    assert_eq!(
        used.tickets,
        all.len() as i64,
        "ticket count after the move"
    );
    assert_eq!(
        used.projects, projects as i64,
        "project count after the move"
    );
}

/// How many of the org's tickets a search for a word of the writer's bodies finds.
async fn search_written(db: &Db, user: UserId, org: OrgId) -> usize {
    let scope = access::verify_member(db, user, org).await.unwrap();
    let mut tx = db.read(&scope).await.unwrap();
    let filter = tickets::TicketFilter {
        q: Some("written".into()),
        ..Default::default()
    };
    let mut found = 0;
    let mut after = None;
    loop {
        let page = tickets::list(&mut tx, &filter, 500, after).await.unwrap();
        found += page.len();
        if page.len() < 500 {
            break;
        }
        after = page.last().map(|t| t.id.uuid());
    }
    tx.commit().await.unwrap();
    found
}

/// Chunks this small make a copy of the tables the writer fills (tickets and their search
/// terms, hundreds to thousands of rows) several chunks, each from a snapshot of its own,
/// with the writers' changes replayed between them. (A table's copy stops at its highest
/// key at its first chunk: the tickets written later, whose ids sort after it, come with
/// the replay.)
const SMALL_CHUNKS: placement::MoveOptions = placement::MoveOptions {
    copy_bytes_per_sec: None,
    copy_chunk_rows: Some(100),
};

/// A row a chunk: every chunk's snapshot, and the replay before it, one row apart.
const ONE_ROW: placement::MoveOptions = placement::MoveOptions {
    copy_bytes_per_sec: None,
    copy_chunk_rows: Some(1),
};

async fn move_to(db: &Db, org: OrgId, kind: Kind) -> Route {
    placement::start_move(db, org, kind).await.unwrap();
    let phase = Mutex::new(String::new());
    match placement::run_move_with(db, org, SMALL_CHUNKS, &|m| {
        *phase.lock().unwrap() = m.phase.clone();
    })
    .await
    {
        Ok(r) => r,
        Err(e) => panic!("moving, in {}: {e:?}", phase.lock().unwrap()),
    }
}

/// Names a move leaves behind on a server, if any: slots, publications, placement
/// schemas and databases other than `keep`.
async fn leftovers(url: &str, keep: &[String]) -> Vec<String> {
    let c = pg_client(url).await;
    let mut out = Vec::new();
    for r in c
        .query("SELECT slot_name::text FROM pg_replication_slots", &[])
        .await
        .unwrap()
    {
        out.push(format!("slot {}", r.get::<_, String>(0)));
    }
    for r in c
        .query(
            "SELECT datname::text FROM pg_database WHERE datname LIKE 'orgwall_org_%'",
            &[],
        )
        .await
        .unwrap()
    {
        let name: String = r.get(0);
        if !keep.contains(&name) {
            out.push(format!("database {name}"));
        }
    }
    out
}

async fn schemas_and_publications(url: &str) -> Vec<String> {
    let c = pg_client(url).await;
    let mut out = Vec::new();
    for r in c
        .query(
            "SELECT 'schema ' || nspname FROM pg_namespace WHERE nspname LIKE 'org\\_%'
             UNION ALL SELECT 'publication ' || pubname FROM pg_publication",
            &[],
        )
        .await
        .unwrap()
    {
        out.push(r.get::<_, String>(0));
    }
    out
}

/// Nothing of a move is recorded or made: no move row, the org where it was, no slot,
/// database, schema or publication on the server at `url`, nothing for the doctor.
async fn nothing_moved(db: &Db, org: OrgId, url: &str, kind: &str) {
    nothing_recorded(db, org, kind).await;
    assert_eq!(leftovers(url, &[]).await, Vec::<String>::new());
    assert_eq!(schemas_and_publications(url).await, Vec::<String>::new());
}

/// No move recorded, `org` still in its `kind` of placement, nothing for the doctor.
async fn nothing_recorded(db: &Db, org: OrgId, kind: &str) {
    assert!(placement::moves(db).await.unwrap().is_empty());
    assert_eq!(placement::show(db, org).await.unwrap().kind, kind);
    assert_eq!(db.doctor().await.unwrap(), vec![]);
}

/// Schedules `org`'s deletion as `owner` (its purge is a job, not run here).
async fn schedule_deletion(db: &Db, owner: UserId, org: OrgId) {
    let scope = access::verify_member(db, owner, org).await.unwrap();
    let mut tx = db.write(&scope).await.unwrap();
    orgwall_store::repo::orgs::schedule_deletion(&mut tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

// Issue 13, bad input (PostgreSQL): a move to where the org is, to a target nobody
// registered, onto a server without logical decoding (an org placed there could not move
// on online) or through a login that is not a superuser, of an org already moving or
// being deleted, and from a server without logical decoding: each one clear error,
// nothing recorded or made on either server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_move_is_refused_with_nothing_changed() {
    let one = PgCluster::start(LOGICAL);
    let plain = PgCluster::start(&[]);
    let (db, d, url) = world(&one).await;
    placement::add_target(&db, "plain", &plain.url)
        .await
        .unwrap();
    let globex = d.globex;
    let refused = |kind: Kind| {
        let db = db.clone();
        async move { placement::start_move(&db, globex, kind).await.unwrap_err() }
    };
    let err = refused(Kind::Shared).await;
    assert!(
        matches!(&err, Error::Conflict("already_placed", m) if m.contains("already in its shared placement")),
        "{err}"
    );
    nothing_moved(&db, d.globex, &url, "shared").await;
    let err = refused(Kind::Database(Some("nowhere".into()))).await;
    assert!(
        matches!(&err, Error::Validation(m) if m.contains("no target named nowhere")),
        "{err}"
    );
    nothing_moved(&db, d.globex, &url, "shared").await;
    let err = refused(Kind::Database(Some("plain".into()))).await;
    assert!(
        matches!(&err, Error::Validation(m) if m.contains("wal_level = replica") && m.contains("nothing changed")),
        "{err}"
    );
    nothing_moved(&db, d.globex, &url, "shared").await;
    assert_eq!(leftovers(&plain.url, &[]).await, Vec::<String>::new());
    // Onto a target whose login may place orgs (it creates databases and roles) but is
    // not a superuser: the replay there needs one, so the move is refused up front, not
    // in its copy.
    pg_client(&one.url)
        .await
        .batch_execute("CREATE ROLE placer LOGIN CREATEDB CREATEROLE")
        .await
        .unwrap();
    let placer = format!("postgres://placer@127.0.0.1:{}/postgres", one.port);
    placement::add_target(&db, "placer", &placer).await.unwrap();
    let err = refused(Kind::Database(Some("placer".into()))).await;
    assert!(
        matches!(&err, Error::Validation(m) if m.contains("not a superuser") && m.contains("nothing changed")),
        "{err}"
    );
    nothing_moved(&db, d.globex, &url, "shared").await;
    // Already moving: the second is refused, the first left as it was (then taken back).
    placement::start_move(&db, d.globex, Kind::Schema)
        .await
        .unwrap();
    let err = refused(Kind::Database(None)).await;
    assert!(matches!(&err, Error::Conflict("move_running", _)), "{err}");
    let moves = placement::moves(&db).await.unwrap();
    assert_eq!(moves.len(), 1, "{moves:?}");
    assert_eq!(moves[0].phase, "prepare", "{moves:?}");
    abort(&db, d.globex).await;
    nothing_moved(&db, d.globex, &url, "shared").await;
    // Being deleted.
    schedule_deletion(&db, d.bob, d.globex).await;
    let err = refused(Kind::Database(None)).await;
    assert!(matches!(&err, Error::Conflict("org_deleting", _)), "{err}");
    nothing_moved(&db, d.globex, &url, "shared").await;
    // From a server without logical decoding: refused before anything is made.
    let (pdb, pd, purl) = world(&plain).await;
    let err = placement::start_move(&pdb, pd.globex, Kind::Database(None))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Validation(m) if m.contains("wal_level = replica") && m.contains("nothing changed")),
        "{err}"
    );
    nothing_moved(&pdb, pd.globex, &purl, "shared").await;
}

// The same on SQLite, where an org moves between the shared tables and a file of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_bad_move_is_refused_with_nothing_changed() {
    let t = orgwall_testkit::TestDb::new(orgwall_store::BackendKind::Sqlite).await;
    let db = t.db.clone();
    let d = Demo::load(&db).await;
    let kind = placement::show(&db, d.globex).await.unwrap().kind;
    let (here, other) = match kind.as_str() {
        "shared" => (Kind::Shared, Kind::Database(None)),
        _ => (Kind::Database(None), Kind::Shared),
    };
    let err = placement::start_move(&db, d.globex, here)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Conflict("already_placed", _)),
        "{err}"
    );
    nothing_recorded(&db, d.globex, &kind).await;
    for bad in [Kind::Schema, Kind::Database(Some("second".into()))] {
        let err = placement::start_move(&db, d.globex, bad).await.unwrap_err();
        assert!(
            matches!(&err, Error::Validation(m) if m.contains("on SQLite")),
            "{err}"
        );
        nothing_recorded(&db, d.globex, &kind).await;
    }
    placement::start_move(&db, d.globex, other.clone())
        .await
        .unwrap();
    let err = placement::start_move(&db, d.globex, other.clone())
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::Conflict("move_running", _)), "{err}");
    abort(&db, d.globex).await;
    nothing_recorded(&db, d.globex, &kind).await;
    schedule_deletion(&db, d.bob, d.globex).await;
    let err = placement::start_move(&db, d.globex, other)
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::Conflict("org_deleting", _)), "{err}");
    nothing_recorded(&db, d.globex, &kind).await;
}

// Globex travels shared -> its own database -> its own schema -> a database on the
// second server -> shared, while Bob's writer and reader work on it and Alice's writer
// on Acme: every acknowledged write is there once, no reader saw Acme's rows or a partial
// Globex, Acme's writes went on, and nothing of the moves is left on either server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_org_moves_through_every_placement_while_in_use() {
    orgwall_testkit::init_logs();
    let one = PgCluster::start(LOGICAL);
    let two = PgCluster::start(LOGICAL);
    let (db, d, control_url) = world(&one).await;
    placement::add_target(&db, "second", &two.url)
        .await
        .unwrap();
    let gps = projects_of(&db, d.bob, d.globex).await;
    let aps = projects_of(&db, d.alice, d.acme).await;
    assert!(gps.iter().all(|p| !aps.contains(p)));
    let (gp, ap) = (gps[0], aps[0]);
    let scope = access::verify_member(&db, d.bob, d.globex).await.unwrap();
    let before = all_tickets(&db, &scope).await.unwrap().len();
    let ascope = access::verify_member(&db, d.alice, d.acme).await.unwrap();
    let acme_before = all_tickets(&db, &ascope).await.unwrap().len();
    let stop = Arc::new(AtomicBool::new(false));
    let (g, a): (Acked, Acked) = Default::default();
    let w = tokio::spawn(writer(
        db.clone(),
        d.bob,
        d.globex,
        gp,
        g.clone(),
        stop.clone(),
    ));
    let r = tokio::spawn(reader(
        db.clone(),
        d.bob,
        d.globex,
        gps.clone(),
        g.clone(),
        before,
        stop.clone(),
    ));
    let aw = tokio::spawn(writer(
        db.clone(),
        d.alice,
        d.acme,
        ap,
        a.clone(),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let steps = [
        (Kind::Database(None), "database"),
        (Kind::Schema, "schema"),
        (Kind::Database(Some("second".into())), "database"),
        (Kind::Shared, "shared"),
    ];
    for (kind, name) in steps {
        let written = acked_creates(&g);
        let route = move_to(&db, d.globex, kind.clone()).await;
        assert_eq!(route.kind(), name);
        if route
            == (Route::Database {
                name: placement::database_name(d.globex).into(),
                target: None,
            })
        {
            // The control server registered again under another name is the same server:
            // a move "there" would drop the database that serves (review finding).
            placement::add_target(&db, "alias", &one.url).await.unwrap();
            let err = placement::start_move(&db, d.globex, Kind::Database(Some("alias".into())))
                .await
                .unwrap_err();
            assert!(err.to_string().contains("already"), "{err}");
            assert!(placement::moves(&db).await.unwrap().is_empty());
            placement::remove_target(&db, "alias").await.unwrap();
        }
        assert_eq!(placement::show(&db, d.globex).await.unwrap().kind, name);
        assert!(placement::moves(&db).await.unwrap().is_empty());
        assert_eq!(
            db.doctor().await.unwrap(),
            vec![],
            "after moving to {kind:?}"
        );
        // The search terms came along (copied, or derived again by their triggers): a word
        // of every written ticket finds each of them.
        let floor = acked_creates(&g);
        let found = search_written(&db, d.bob, d.globex).await;
        assert!(
            found >= floor,
            "search found {found} after moving to {kind:?}, {floor} written"
        );
        // Writes go on in the new placement.
        let t0 = Instant::now();
        while acked_creates(&g) < written + 10 {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "no writes after moving to {kind:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let globex_longest = w.await.unwrap();
    let reads = r.await.unwrap();
    let acme_longest = aw.await.unwrap();
    assert!(reads > 10, "the reader read {reads} times");
    check_acked(&db, d.bob, d.globex, &g, before).await;
    check_acked(&db, d.alice, d.acme, &a, acme_before).await;
    let found = search_written(&db, d.bob, d.globex).await;
    assert_eq!(found, acked_creates(&g), "search finds every moved ticket");
    eprintln!(
        "globex: {} tickets written, longest write {globex_longest:?}; acme: {}, longest {acme_longest:?}",
        acked_creates(&g),
        acked_creates(&a)
    );
    assert!(
        acme_longest < Duration::from_secs(2),
        "Acme's writes were held up {acme_longest:?} by Globex's moves"
    );
    assert_eq!(leftovers(&control_url, &[]).await, Vec::<String>::new());
    assert_eq!(leftovers(&two.url, &[]).await, Vec::<String>::new());
    assert_eq!(
        schemas_and_publications(&control_url).await,
        Vec::<String>::new()
    );
    assert_eq!(db.doctor().await.unwrap(), vec![]);
}

/// Runs `org`'s move in a task of its own and stops it dead (the task dropped at its next
/// await: its connections close, its transactions roll back, its session lock goes) once
/// it has entered `phase`. Returns whether it got there (a move may finish first).
async fn kill_in(db: &Db, org: OrgId, phase: &'static str) -> bool {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let tx = Mutex::new(Some(tx));
    let db2 = db.clone();
    let task = tokio::spawn(async move {
        placement::run_move_with(&db2, org, SMALL_CHUNKS, &move |m| {
            // In the copy, once a chunk is in: stopped between chunks.
            if m.phase == phase && (phase != "copy" || m.rows_copied > 0) {
                if let Some(t) = tx.lock().unwrap().take() {
                    let _ = t.send(());
                    // Held here (the mover's thread blocked) until the test has aborted
                    // the task: it stops at its first wait inside the phase.
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        })
        .await
    });
    let reached = rx.await.is_ok();
    task.abort();
    let _ = task.await;
    reached
}

/// Runs a move on to its end, waiting for a dead mover's session (and its lock) to go.
async fn resume(db: &Db, org: OrgId) -> Route {
    for _ in 0..100 {
        match placement::run_move_with(db, org, SMALL_CHUNKS, &|_| {}).await {
            Ok(r) => return r,
            Err(Error::Conflict("move_running", _)) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("resuming: {e:?}"),
        }
    }
    panic!("the dead mover's lock never went")
}

async fn abort(db: &Db, org: OrgId) {
    abort_with(db, org, placement::MoveOptions::default()).await;
}

/// [`abort`] with options (a paced removal of the copy).
async fn abort_with(db: &Db, org: OrgId, opts: placement::MoveOptions) {
    for _ in 0..100 {
        if placement::abort_move_with(db, org, opts).await.unwrap() {
            return;
        }
        // A mover's session still there: asked to abort; wait until the lock is free.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the move was never aborted")
}

// Issue 13, crash safety: the mover stopped dead inside each phase (prepare, copy,
// catch_up, cleanup), then resumed or aborted, while Bob's writer works on Globex: at
// every moment the org is served from one placement with all its acknowledged writes;
// after an abort the org is where it was and nothing of the move is left; an abort after
// the flip is refused (the cleanup is resumed instead); the doctor names a slot left by
// a move whose row is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mover_stopped_dead_in_any_phase_resumes_or_aborts() {
    orgwall_testkit::init_logs();
    let one = PgCluster::start(LOGICAL);
    let (db, d, control_url) = world(&one).await;
    let gps = projects_of(&db, d.bob, d.globex).await;
    let scope = access::verify_member(&db, d.bob, d.globex).await.unwrap();
    let before = all_tickets(&db, &scope).await.unwrap().len();
    let stop = Arc::new(AtomicBool::new(false));
    let g: Acked = Default::default();
    let w = tokio::spawn(writer(
        db.clone(),
        d.bob,
        d.globex,
        gps[0],
        g.clone(),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let plan: [(Kind, &str, bool, &str); 6] = [
        (Kind::Database(None), "prepare", false, "database"),
        (Kind::Schema, "copy", true, "database"),
        (Kind::Schema, "catch_up", false, "schema"),
        (Kind::Shared, "cleanup", false, "shared"),
        (Kind::Database(None), "copy", false, "database"),
        (Kind::Shared, "catch_up", true, "database"),
    ];
    for (kind, phase, aborting, lands) in plan {
        placement::start_move(&db, d.globex, kind.clone())
            .await
            .unwrap();
        assert!(kill_in(&db, d.globex, phase).await, "never reached {phase}");
        let now = placement::show(&db, d.globex).await.unwrap().kind;
        // Not placed anew while it moves: its copies are the mover's until the move ends
        // (a cleanup deletes the old copy's shared rows in batches).
        let e = placement::set(&db, d.globex, Kind::Shared)
            .await
            .unwrap_err();
        assert!(
            matches!(e, Error::Conflict("move_running", _)),
            "{phase}: {e}"
        );
        if phase == "cleanup" {
            let err = placement::abort_move(&db, d.globex).await.unwrap_err();
            assert!(matches!(err, Error::Conflict("move_flipped", _)), "{err}");
        }
        if aborting {
            abort(&db, d.globex).await;
            assert_eq!(now, lands, "the org stays where it was");
        } else {
            resume(&db, d.globex).await;
        }
        assert_eq!(placement::show(&db, d.globex).await.unwrap().kind, lands);
        assert!(placement::moves(&db).await.unwrap().is_empty());
        let keep: Vec<String> = match lands {
            "database" => vec![placement::database_name(d.globex)],
            _ => Vec::new(),
        };
        assert_eq!(
            leftovers(&control_url, &keep).await,
            Vec::<String>::new(),
            "after {phase}"
        );
        let schemas = schemas_and_publications(&control_url).await;
        let expected: Vec<String> = match lands {
            "schema" => vec![format!("schema {}", placement::schema_name(d.globex))],
            _ => Vec::new(),
        };
        assert_eq!(schemas, expected, "after {phase}");
        assert_eq!(db.doctor().await.unwrap(), vec![], "after {phase}");
        let written = acked_creates(&g);
        let t0 = Instant::now();
        while acked_creates(&g) < written + 5 {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "no writes after {phase}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    w.await.unwrap();
    check_acked(&db, d.bob, d.globex, &g, before).await;

    // A destination that differs from the source (a row changed behind the mover's back)
    // fails the content check: the directory is not flipped, the move keeps its error,
    // an abort takes it back.
    placement::start_move(&db, d.globex, Kind::Schema)
        .await
        .unwrap();
    assert!(kill_in(&db, d.globex, "catch_up").await);
    let c = pg_client(&control_url).await;
    // As the org's own transactions see it (its triggers write beside it).
    c.batch_execute(&format!(
        "SET search_path TO {}, public",
        placement::schema_name(d.globex)
    ))
    .await
    .unwrap();
    let n = c
        .execute(
            &format!(
                "UPDATE {}.tickets SET title = 'changed behind the mover' WHERE id = (SELECT id FROM {}.tickets ORDER BY id LIMIT 1)",
                placement::schema_name(d.globex),
                placement::schema_name(d.globex)
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    let err = placement::run_move(&db, d.globex, &|_| {})
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("verification failed for tickets"),
        "{err}"
    );
    assert_eq!(
        placement::show(&db, d.globex).await.unwrap().kind,
        "database"
    );
    let mv = placement::moves(&db).await.unwrap();
    assert!(
        mv[0]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("verification failed"),
        "{mv:?}"
    );
    abort(&db, d.globex).await;
    assert_eq!(
        schemas_and_publications(&control_url).await,
        Vec::<String>::new()
    );

    // A slot whose move is gone (its row deleted by hand) is a leftover the doctor names.
    placement::start_move(&db, d.globex, Kind::Shared)
        .await
        .unwrap();
    assert!(kill_in(&db, d.globex, "copy").await);
    let c = pg_client(&control_url).await;
    c.execute("DELETE FROM placement_moves", &[]).await.unwrap();
    let found = db.doctor().await.unwrap();
    let name = format!("orgwall_move_{}", d.globex.uuid().simple());
    assert!(
        found
            .iter()
            .any(|v| v.to_string().contains(&name) && v.to_string().contains("slot")),
        "{found:?}"
    );
    // So is its publication, in the database it was moving out of (Globex's own).
    assert!(
        found
            .iter()
            .any(|v| v.to_string().contains(&name) && v.to_string().contains("publication")),
        "{found:?}"
    );
}

// SQLite (issue 13 item 4): Globex between the shared tables and a file of its own, back
// and forth, while Bob's writer and reader work on it and Alice's writer on Acme; then an
// abort before the flip. (A mover stopped dead mid-phase is the CLI test's: a SQLite move
// runs on one thread without a wait to stop it at.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_an_org_moves_between_shared_and_its_file_while_in_use() {
    orgwall_testkit::init_logs();
    let t = orgwall_testkit::TestDb::new(orgwall_store::BackendKind::Sqlite).await;
    let db = t.db.clone();
    let d = Demo::load(&db).await;
    let gps = projects_of(&db, d.bob, d.globex).await;
    let aps = projects_of(&db, d.alice, d.acme).await;
    let scope = access::verify_member(&db, d.bob, d.globex).await.unwrap();
    let before = all_tickets(&db, &scope).await.unwrap().len();
    let ascope = access::verify_member(&db, d.alice, d.acme).await.unwrap();
    let acme_before = all_tickets(&db, &ascope).await.unwrap().len();
    if placement::show(&db, d.globex).await.unwrap().kind == "shared" {
        // A ticket written by somebody who is not a member (Alice, of Acme only, as a
        // former member would be): the org file's projection must name her too, or its
        // foreign key refuses the copy (review finding).
        first_ticket_written_by(&db, &scope, d.alice).await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (g, a): (Acked, Acked) = Default::default();
    let w = tokio::spawn(writer(
        db.clone(),
        d.bob,
        d.globex,
        gps[0],
        g.clone(),
        stop.clone(),
    ));
    let r = tokio::spawn(reader(
        db.clone(),
        d.bob,
        d.globex,
        gps.clone(),
        g.clone(),
        before,
        stop.clone(),
    ));
    let aw = tokio::spawn(writer(
        db.clone(),
        d.alice,
        d.acme,
        aps[0],
        a.clone(),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Wherever the demo put Globex (CI runs it placed too), it goes to the other and back.
    let start = placement::show(&db, d.globex).await.unwrap().kind;
    let (there, back) = if start == "shared" {
        ((Kind::Database(None), "database"), (Kind::Shared, "shared"))
    } else {
        ((Kind::Shared, "shared"), (Kind::Database(None), "database"))
    };
    for (kind, name) in [there.clone(), back, there] {
        let written = acked_creates(&g);
        let route = move_to(&db, d.globex, kind.clone()).await;
        assert_eq!(route.kind(), name);
        assert_eq!(placement::show(&db, d.globex).await.unwrap().kind, name);
        assert!(placement::moves(&db).await.unwrap().is_empty());
        assert_eq!(
            db.doctor().await.unwrap(),
            vec![],
            "after moving to {kind:?}"
        );
        let floor = acked_creates(&g);
        let found = search_written(&db, d.bob, d.globex).await;
        assert!(
            found >= floor,
            "search found {found} after moving to {kind:?}, {floor} written"
        );
        let t0 = Instant::now();
        while acked_creates(&g) < written + 10 {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "no writes after moving to {kind:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // The doctor during a move (both copies exist, in catch-up): nothing to report.
    let now = placement::show(&db, d.globex).await.unwrap().kind;
    let other = if now == "shared" {
        Kind::Database(None)
    } else {
        Kind::Shared
    };
    placement::start_move(&db, d.globex, other).await.unwrap();
    let seen = Mutex::new(None);
    placement::run_move(&db, d.globex, &|m| {
        if m.phase == "catch_up" && seen.lock().unwrap().is_none() {
            let found = tokio::runtime::Handle::current()
                .block_on(db.doctor())
                .unwrap();
            *seen.lock().unwrap() = Some(found);
        }
    })
    .await
    .unwrap();
    assert_eq!(
        seen.lock().unwrap().clone(),
        Some(vec![]),
        "the doctor during a move"
    );
    // An abort before the flip: the org stays, the new copy and the log go.
    let now = placement::show(&db, d.globex).await.unwrap().kind;
    let other = if now == "shared" {
        Kind::Database(None)
    } else {
        Kind::Shared
    };
    placement::start_move(&db, d.globex, other).await.unwrap();
    // Not placed anew while it moves (its copies are the mover's until the move ends).
    let e = placement::set(&db, d.globex, Kind::Shared)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Conflict("move_running", _)), "{e}");
    assert!(placement::abort_move(&db, d.globex).await.unwrap());
    assert_eq!(placement::show(&db, d.globex).await.unwrap().kind, now);
    assert!(placement::moves(&db).await.unwrap().is_empty());
    assert_eq!(db.doctor().await.unwrap(), vec![]);
    stop.store(true, Ordering::Relaxed);
    w.await.unwrap();
    assert!(r.await.unwrap() > 10);
    aw.await.unwrap();
    check_acked(&db, d.bob, d.globex, &g, before).await;
    check_acked(&db, d.alice, d.acme, &a, acme_before).await;
    assert_eq!(
        search_written(&db, d.bob, d.globex).await,
        acked_creates(&g)
    );
    // No org file but the one the directory names, no move log left.
    let files: Vec<_> = t.sqlite_org_files().into_iter().map(|(o, _)| o).collect();
    let expect: Vec<OrgId> = if now == "shared" {
        Vec::new()
    } else {
        vec![d.globex]
    };
    assert_eq!(
        files.iter().filter(|o| **o == d.globex).count(),
        expect.len()
    );
    assert_eq!(db.doctor().await.unwrap(), vec![]);
    // A log and a trigger a move left behind (a move whose row is gone) are named.
    let hex = d.acme.uuid().simple().to_string();
    t.owner_exec(&format!(
        "CREATE TABLE orgwall_move_log_{hex} (seq INTEGER PRIMARY KEY, tbl TEXT, id);
         CREATE TRIGGER orgwall_move_{hex}_notes_rows_i AFTER INSERT ON notes_rows
           BEGIN INSERT INTO orgwall_move_log_{hex} (tbl, id) VALUES ('notes_rows', NEW.id); END;"
    ))
    .await;
    let found: Vec<String> = db
        .doctor()
        .await
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    for name in [
        format!("orgwall_move_log_{hex}"),
        format!("orgwall_move_{hex}_notes_rows_i"),
    ] {
        assert!(
            found
                .iter()
                .any(|v| v.contains(&name) && v.contains("no longer runs")),
            "{name}: {found:?}"
        );
    }
}

// An org deleted while it moves: the purge takes the move back first (asking a running
// mover to abort, and being retried while it does), then deletes the org where the
// directory names it: nothing of the move (slot, publication, half-made database) and
// nothing of the org is left. Before, the purge deleted the org under the mover, whose
// slot, publication and new database stayed behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_org_deleted_while_it_moves_leaves_nothing_behind() {
    let one = PgCluster::start(LOGICAL);
    let (db, d, url) = world(&one).await;
    placement::start_move(&db, d.globex, Kind::Database(None))
        .await
        .unwrap();
    assert!(kill_in(&db, d.globex, "catch_up").await);
    let bob = access::verify_member(&db, d.bob, d.globex).await.unwrap();
    let mut tx = db.write(&bob).await.unwrap();
    orgwall_store::repo::orgs::schedule_deletion(&mut tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // A move is not started for an org being deleted (nor resumed into a new one).
    let scope = access::jobs::enter_for_purge(&db, orgwall_core::JobId::new(), d.globex)
        .await
        .unwrap()
        .unwrap();
    let mut tries = 0;
    loop {
        match access::jobs::purge_rows(&db, &scope).await {
            Ok(n) => {
                assert!(n > 0);
                break;
            }
            // The dead mover's session may still hold its lock for a moment: asked to
            // abort, the purge is retried (as its job would be).
            Err(Error::Unavailable(m)) if tries < 100 => {
                assert!(m.contains("mov"), "{m}");
                tries += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("purge: {e:?}"),
        }
    }
    assert!(placement::moves(&db).await.unwrap().is_empty());
    assert_eq!(leftovers(&url, &[]).await, Vec::<String>::new());
    assert_eq!(schemas_and_publications(&url).await, Vec::<String>::new());
    let db_url = one.url_of("orgwall_m");
    let c = pg_client(&db_url).await;
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM orgs WHERE id = $1",
            &[&d.globex.uuid()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    assert_eq!(db.doctor().await.unwrap(), vec![]);
}

// A reader whose transaction began before the flip reads the org whole to its end: the
// cleanup waits for it before removing the old copy (before, a second statement after
// the cleanup found the org's rows gone: a partial org). A reader begun after the flip,
// whose scope learned the old route and is not checked against the access generations,
// reads the directory in its first flight and follows the org.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_begun_before_the_flip_sees_the_org_whole() {
    let one = PgCluster::start(LOGICAL);
    let (db, d, _url) = world(&one).await;
    let scope = access::verify_member(&db, d.bob, d.globex).await.unwrap();
    let before = all_tickets(&db, &scope).await.unwrap().len();
    assert!(before > 0);
    let mut old = db.read(&scope).await.unwrap();
    let first = tickets::list(&mut old, &tickets::TicketFilter::default(), 500, None)
        .await
        .unwrap();
    assert_eq!(first.len(), before);
    placement::start_move(&db, d.globex, Kind::Database(None))
        .await
        .unwrap();
    let db2 = db.clone();
    let mover = tokio::spawn(async move { placement::run_move(&db2, d.globex, &|_| {}).await });
    // The flip happens; the cleanup then waits for the old reader.
    let t0 = Instant::now();
    loop {
        let kind = placement::show(&db, d.globex).await.unwrap().kind;
        if kind == "database" {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "never flipped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !mover.is_finished(),
        "the cleanup did not wait for the old reader"
    );
    let again = tickets::list(&mut old, &tickets::TicketFilter::default(), 500, None)
        .await
        .unwrap();
    assert_eq!(again.len(), before, "the old reader saw a partial org");
    old.commit().await.unwrap();
    mover.await.unwrap().unwrap();
    // The same scope (it learned the shared tables) reads where the org is now.
    let now = all_tickets(&db, &scope).await.unwrap();
    assert_eq!(now.len(), before);
    assert_eq!(db.doctor().await.unwrap(), vec![]);
    // The usage counters came along (copied into a database of its own with their
    // triggers off, not counted twice).
    let mut tx = db.read(&scope).await.unwrap();
    let used = orgwall_store::quota::usage(&mut tx).await.unwrap().used;
    let projects = projects::list(&mut tx, 1000, None).await.unwrap().len();
    tx.commit().await.unwrap();
    assert_eq!(used.tickets, before as i64);
    assert_eq!(used.projects, projects as i64);
}

/// A large org leaves the shared tables in batches (issue 13): its old copy there is
/// deleted 20,000 rows at a time, paced, in key order; with 3,000 more tickets (about
/// 30,000 search-term rows: more than one batch) nothing of it is left in any shared
/// table after the move out, nor after an aborted move back in (whose half-made copy in
/// the shared tables goes the same way), and Acme's rows are untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_org_leaves_the_shared_tables_in_batches() {
    let one = PgCluster::start(LOGICAL);
    let (db, d, url) = world(&one).await;
    let c = pg_client(&url).await;
    let project: uuid::Uuid = c
        .query_one(
            "SELECT id FROM projects WHERE org_id = $1 ORDER BY id LIMIT 1",
            &[&d.globex.uuid()],
        )
        .await
        .unwrap()
        .get(0);
    c.execute(
        "INSERT INTO tickets (org_id, id, project_id, title, body, status, created_at, updated_at)
         SELECT $1, gen_random_uuid(), $2, 'bulk ticket ' || g || ' login invoice export',
                'body ' || g || ' alpha bravo charlie delta echo', 'open', now(), now()
         FROM generate_series(1, 3000) g",
        &[&d.globex.uuid(), &project],
    )
    .await
    .unwrap();
    let tables: Vec<&str> = orgwall_store::catalog().data_tables().collect();
    let counts = |org: OrgId| {
        let (c, tables) = (&c, tables.clone());
        async move {
            let mut out = Vec::new();
            for t in tables {
                let n: i64 = c
                    .query_one(
                        &format!("SELECT count(*) FROM public.{t} WHERE org_id = $1"),
                        &[&org.uuid()],
                    )
                    .await
                    .unwrap()
                    .get(0);
                out.push((t, n));
            }
            out
        }
    };
    let terms = counts(d.globex)
        .await
        .into_iter()
        .find(|(t, _)| *t == "ticket_terms")
        .map(|(_, n)| n);
    assert!(terms > Some(20_000), "more than one batch: {terms:?}");
    let acme = counts(d.acme).await;
    let scope = access::verify_member(&db, d.bob, d.globex).await.unwrap();
    let before = all_tickets(&db, &scope).await.unwrap().len();
    let paced = placement::MoveOptions {
        copy_bytes_per_sec: Some(100_000_000),
        ..Default::default()
    };
    placement::start_move(&db, d.globex, Kind::Database(None))
        .await
        .unwrap();
    placement::run_move_with(&db, d.globex, paced, &|_| {})
        .await
        .unwrap();
    let nothing: Vec<(&str, i64)> = tables.iter().map(|t| (*t, 0)).collect();
    assert_eq!(counts(d.globex).await, nothing, "left in the shared tables");
    assert_eq!(counts(d.acme).await, acme, "Acme's rows");
    let scope = access::verify_member(&db, d.bob, d.globex).await.unwrap();
    assert_eq!(all_tickets(&db, &scope).await.unwrap().len(), before);

    // Back towards the shared tables, aborted after its copy: that copy goes in batches.
    placement::start_move(&db, d.globex, Kind::Shared)
        .await
        .unwrap();
    assert!(kill_in(&db, d.globex, "catch_up").await);
    assert!(counts(d.globex).await.iter().any(|(_, n)| *n > 0), "copied");
    // An abort with a pace (`placement move --abort --copy-rate`) deletes the copy at
    // that pace: the bytes of its rows over the pace is the least time it may take.
    let mut bytes = 0i64;
    for t in &tables {
        let b: i64 = c
            .query_one(
                &format!(
                    "SELECT coalesce(sum(pg_column_size(t.*)), 0)::int8 FROM public.{t} t WHERE org_id = $1"
                ),
                &[&d.globex.uuid()],
            )
            .await
            .unwrap()
            .get(0);
        bytes += b;
    }
    let rate = u64::try_from(bytes).unwrap() / 2; // two seconds' worth
    let t0 = Instant::now();
    abort_with(
        &db,
        d.globex,
        placement::MoveOptions {
            copy_bytes_per_sec: Some(rate),
            ..Default::default()
        },
    )
    .await;
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(1_800),
        "{bytes} bytes deleted at {rate} bytes/s in {took:?}"
    );
    assert_eq!(counts(d.globex).await, nothing, "left in the shared tables");
    assert_eq!(counts(d.acme).await, acme, "Acme's rows");
    assert_eq!(
        placement::show(&db, d.globex).await.unwrap().kind,
        "database"
    );
    let scope = access::verify_member(&db, d.bob, d.globex).await.unwrap();
    assert_eq!(all_tickets(&db, &scope).await.unwrap().len(), before);
    assert_eq!(db.doctor().await.unwrap(), vec![]);
}

/// A small org moved into a database of its own looks its rows up by key there (issue 12's
/// create workload: statistics taken right after the copy, when each table was a page or
/// two, made the foreign key checks of a growing org's search terms scan `notes` and
/// `tickets` sequentially, plans that stay cached until autovacuum analyzes again): the
/// mover leaves a table of a few pages unanalyzed, planned as at least 10 pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_org_moved_into_its_own_database_looks_rows_up_by_key() {
    let one = PgCluster::start(LOGICAL);
    let (db, d, _url) = world(&one).await;
    move_to(&db, d.globex, Kind::Database(None)).await;
    let own = pg_client(&one.url_of(&placement::database_name(d.globex))).await;
    let g = d.globex.uuid();
    for table in ["tickets", "notes", "projects"] {
        // The shape of a foreign key check against the table.
        let sql = format!("EXPLAIN SELECT 1 FROM ONLY {table} x WHERE org_id = '{g}' AND id = '{g}' FOR KEY SHARE OF x");
        let plan = orgwall_testkit::texts(&own, &sql, &[]).await;
        assert!(
            plan.iter().any(|l| l.contains("Index")),
            "{table}: {plan:#?}"
        );
    }
}

// A ticket written by somebody who is not a member of the org (Alice, of Acme only, as a
// former member would be): a move into a database of its own brings her into that
// database's members projection with the chunk that names her (read from the chunk's
// staged rows in the destination; with replica triggers no foreign key would notice her
// missing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_into_its_own_database_projects_every_user_its_rows_name() {
    let one = PgCluster::start(LOGICAL);
    let (db, d, _url) = world(&one).await;
    let scope = access::verify_member(&db, d.bob, d.globex).await.unwrap();
    first_ticket_written_by(&db, &scope, d.alice).await;
    move_to(&db, d.globex, Kind::Database(None)).await;
    let own = pg_client(&one.url_of(&placement::database_name(d.globex))).await;
    let named: i64 = own
        .query_one(
            "SELECT count(*) FROM users u WHERE u.id = $1
               AND EXISTS (SELECT 1 FROM tickets t WHERE t.created_by = u.id)",
            &[&d.alice.uuid()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(named, 1, "the projection names the ticket's author");
    let dangling: i64 = own
        .query_one(
            "SELECT count(*) FROM tickets t WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = t.created_by)
                OR (t.assignee_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = t.assignee_id))",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        dangling, 0,
        "every user a ticket names is in the projection"
    );
}

/// Lock waits of `locktypes` on `database`, or on any (the cluster's superuser sees every
/// session).
async fn waiting(cluster: &PgCluster, database: Option<&str>, locktypes: &[&str]) -> i64 {
    let types: Vec<String> = locktypes.iter().map(|t| t.to_string()).collect();
    pg_client(&cluster.url)
        .await
        .query_one(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
             WHERE ($1::text IS NULL OR a.datname = $1) AND NOT l.granted AND l.locktype = ANY ($2)",
            &[&database, &types],
        )
        .await
        .unwrap()
        .get(0)
}

/// A write to an org in a database of its own, from a scope checked against that
/// database's access mirror (a cached member's, an API key's), takes the org's write
/// fence in that database, not on the control one; so a move out of the database holds
/// the fence there too. Here such a write is held inside the database (the row it
/// updates is locked) while the org moves to the shared tables: the mover waits for it at
/// the fence (its content check's, or its cut-over's), the write commits before the last
/// changes are drained, and the shared tables hold it after the move. Without the mover's fence there, the directory flipped
/// while the write was held, and the write then committed into the copy being dropped:
/// acknowledged, and lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_fenced_in_its_orgs_own_database_is_waited_for_by_a_move() {
    let one = PgCluster::start(LOGICAL);
    let (db, d, _url) = world(&one).await;
    assert!(matches!(
        move_to(&db, d.globex, Kind::Database(None)).await,
        Route::Database { .. }
    ));
    // Cached: a scope of one dependency (the org), checked against the mirror.
    access::verify_member(&db, d.bob, d.globex).await.unwrap();
    let scope = access::verify_member(&db, d.bob, d.globex).await.unwrap();
    let location = placement::show(&db, d.globex)
        .await
        .unwrap()
        .location
        .unwrap();
    // The move is begun and stopped in its catch-up: its replication slot is made (which
    // waits for every transaction running in the database, the held one too).
    placement::start_move(&db, d.globex, Kind::Shared)
        .await
        .unwrap();
    assert!(kill_in(&db, d.globex, "catch_up").await);
    let locker = pg_client(&one.url_of(&location)).await;
    let id: uuid::Uuid = locker
        .query_one(
            "SELECT id FROM tickets WHERE org_id = $1 ORDER BY id LIMIT 1",
            &[&d.globex.uuid()],
        )
        .await
        .unwrap()
        .get(0);
    locker.batch_execute("BEGIN").await.unwrap();
    locker
        .execute("SELECT 1 FROM tickets WHERE id = $1 FOR UPDATE", &[&id])
        .await
        .unwrap();
    let db2 = db.clone();
    let org = d.globex;
    let writer = tokio::spawn(async move {
        let mut tx = db2.write(&scope).await?;
        let n = tx
            .data()
            .execute(
                "UPDATE tickets SET title = 'held at the fence' WHERE org_id = $1 AND id = $2",
                orgwall_store::params![org, id],
            )
            .await?;
        tx.commit().await?;
        Ok::<u64, Error>(n)
    });
    let t0 = Instant::now();
    while waiting(&one, Some(&location), &["transactionid", "tuple"]).await == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the write never reached the row"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let db3 = db.clone();
    let mover = tokio::spawn(async move { resume(&db3, org).await });
    // The mover waits at the write's fence, or (without one) flips.
    let t0 = Instant::now();
    loop {
        if waiting(&one, None, &["advisory"]).await > 0 {
            break;
        }
        if placement::show(&db, d.globex).await.unwrap().kind == "shared" {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the move neither waited nor flipped"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!writer.is_finished(), "the held write finished early");
    locker.batch_execute("COMMIT").await.unwrap();
    assert_eq!(writer.await.unwrap().unwrap(), 1, "the held write");
    assert_eq!(mover.await.unwrap(), Route::Shared);
    let scope = access::verify_member(&db, d.bob, d.globex).await.unwrap();
    let titles: Vec<String> = all_tickets(&db, &scope)
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.id.uuid() == id)
        .map(|t| t.title)
        .collect();
    assert_eq!(
        titles,
        vec!["held at the fence".to_owned()],
        "the acknowledged write"
    );
    assert_eq!(db.doctor().await.unwrap(), vec![]);
}

/// `org`'s access mirror in its placement database on `cluster` (`None`: no row).
async fn mirrored(cluster: &PgCluster, org: OrgId) -> Option<i64> {
    pg_client(&cluster.url_of(&placement::database_name(org)))
        .await
        .query_opt(
            "SELECT gen FROM access_mirror WHERE dep = $1",
            &[&org.uuid()],
        )
        .await
        .unwrap()
        .map(|r| r.get(0))
}

/// A scope from `authenticate`, once the access cache serves `token`'s key (so it
/// depends on the generation it was built at, checked by its first transaction, as every
/// request's scope of an instance): a late announcement of an earlier change may drop
/// the entry once, so it is asked again until a call is a cache hit.
async fn cached_key_scope(db: &Db, token: &str) -> access::OrgScope {
    for _ in 0..100 {
        access::authenticate_api_key(db, token).await.unwrap();
        let hits = db.access_cache_stats().hits;
        let scope = access::authenticate_api_key(db, token)
            .await
            .unwrap()
            .unwrap();
        if db.access_cache_stats().hits == hits + 1 {
            return scope;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the key's access was never served from the cache");
}

/// Whether `r` is the refusal of a revoked API key (found when its scope, stale, was
/// verified again).
fn revoked<T>(r: &Result<T, Error>) -> bool {
    matches!(r, Err(Error::Refused("unauthenticated", m)) if m.contains("API key"))
}

/// A scope from before an org moved out of its database and back (what an instance's
/// access cache serves when it missed the announcements in between: its route names a
/// database of the same name) is checked against the access mirror of the database the
/// org is in now. A move's destination mirror is retired from its making until the
/// cut-over opens it at the org's generation (before its flip: a mover stopped in the
/// cleanup leaves it open), and raised again in the cleanup. Before, a new placement
/// database's mirror was empty, which passes every scope: a key revoked while its org was
/// shared read the org's tickets there, half-copied or whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scope_from_before_a_move_out_and_back_finds_the_new_mirror_ahead_of_it() {
    let cluster = PgCluster::start(LOGICAL);
    let (db, d, url) = world(&cluster).await;
    move_to(&db, d.acme, Kind::Database(None)).await;
    assert_eq!(
        mirrored(&cluster, d.acme).await,
        Some(orgwall_testkit::control_generation_at(&url, d.acme).await),
        "a move's destination mirrors the org's generation once it is there"
    );
    let alice = access::verify_member(&db, d.alice, d.acme).await.unwrap();
    let mut tx = db.write(&alice).await.unwrap();
    let (key, token) = orgwall_store::repo::api_keys::create(&mut tx, "held", "member", None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // Read with once (verified): the cache knows the key's route, the org's database.
    let fresh = access::authenticate_api_key(&db, &token)
        .await
        .unwrap()
        .unwrap();
    let seen = all_tickets(&db, &fresh).await.unwrap().len();
    assert!(seen > 0);
    // Two requests' scopes from the cache, held while the org moves out and back.
    let held = [
        cached_key_scope(&db, &token).await,
        cached_key_scope(&db, &token).await,
    ];

    move_to(&db, d.acme, Kind::Shared).await;
    let alice = access::verify_member(&db, d.alice, d.acme).await.unwrap();
    let mut tx = db.write(&alice).await.unwrap();
    orgwall_store::repo::api_keys::revoke(&mut tx, key.id)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // Back into a database of the same name; the mover stopped in its copy: the half-made
    // database's mirror is retired, so a scope routed there is verified again (refused).
    placement::start_move(&db, d.acme, Kind::Database(None))
        .await
        .unwrap();
    assert!(kill_in(&db, d.acme, "copy").await);
    assert_eq!(
        mirrored(&cluster, d.acme).await,
        Some(placement::MIRROR_RETIRED),
        "a move's destination is retired until its cut-over"
    );
    let read = all_tickets(&db, &held[0]).await;
    assert!(
        revoked(&read),
        "a key revoked while its org was shared, in a half-made copy: {:?}",
        read.map(|t| t.len())
    );
    // Stopped again in the cleanup, after the flip: the mirror is open (a member's
    // cached scope reads there), whatever the cleanup did not do yet.
    assert!(kill_in(&db, d.acme, "cleanup").await);
    let open = mirrored(&cluster, d.acme).await;
    assert!(
        open.is_some_and(|g| g != placement::MIRROR_RETIRED),
        "{open:?}"
    );
    let member = {
        access::verify_member(&db, d.alice, d.acme).await.unwrap();
        access::verify_member(&db, d.alice, d.acme).await.unwrap()
    };
    assert_eq!(all_tickets(&db, &member).await.unwrap().len(), seen);
    assert_eq!(
        resume(&db, d.acme).await.kind(),
        "database",
        "moved back into its database"
    );
    assert_eq!(
        mirrored(&cluster, d.acme).await,
        Some(orgwall_testkit::control_generation_at(&url, d.acme).await)
    );
    let read = all_tickets(&db, &held[1]).await;
    assert!(
        revoked(&read),
        "a key revoked while its org was shared, in the org's new database: {:?}",
        read.map(|t| t.len())
    );
}

/// Swaps the keys of the org's first two projects (through a third key, as a client
/// would: a key is unique in its org), until `stop`; returns how many swaps were
/// acknowledged and the keys as the last one left them.
async fn key_swapper(
    db: Db,
    user: UserId,
    org: OrgId,
    (p, q): (ProjectId, ProjectId),
    stop: Arc<AtomicBool>,
) -> (usize, HashMap<ProjectId, String>) {
    let mut swaps = 0;
    let mut keys = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        let scope = access::verify_member(&db, user, org).await.unwrap();
        let mut tx = db.write(&scope).await.unwrap();
        let kp = projects::get(&mut tx, p).await.unwrap().key;
        let kq = projects::get(&mut tx, q).await.unwrap().key;
        projects::update(&mut tx, p, Some("SWAPTMP"), None, None)
            .await
            .unwrap();
        projects::update(&mut tx, q, Some(&kp), None, None)
            .await
            .unwrap();
        projects::update(&mut tx, p, Some(&kq), None, None)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        swaps += 1;
        keys = HashMap::from([(p, kq), (q, kp)]);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    (swaps, keys)
}

// A copy in chunks reads each chunk at another moment. Were the chunks simply put
// together, two projects whose keys were swapped between them would hold one key twice
// in the destination (a unique key of the org). The destination holds, after every
// chunk, a part of the source as it was at one moment: the move goes through, one row
// per chunk, while the keys are swapped again and again, and the keys are the last
// swap's (into a database of its own and back to the shared tables).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_copy_keeps_unique_keys_that_change_between_its_chunks() {
    orgwall_testkit::init_logs();
    let one = PgCluster::start(LOGICAL);
    let (db, d, control_url) = world(&one).await;
    let gps = projects_of(&db, d.bob, d.globex).await;
    assert!(gps.len() >= 2, "the demo gives Globex two projects");
    for (kind, name) in [(Kind::Database(None), "database"), (Kind::Shared, "shared")] {
        let stop = Arc::new(AtomicBool::new(false));
        let swapper = tokio::spawn(key_swapper(
            db.clone(),
            d.bob,
            d.globex,
            (gps[0], gps[1]),
            stop.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(50)).await;
        placement::start_move(&db, d.globex, kind.clone())
            .await
            .unwrap();
        let chunks = Mutex::new(0usize);
        let route = tokio::time::timeout(
            Duration::from_secs(60),
            placement::run_move_with(&db, d.globex, ONE_ROW, &|m| {
                if m.phase == "copy" {
                    *chunks.lock().unwrap() += 1;
                }
            }),
        )
        .await
        .unwrap_or_else(|_| panic!("the copy to {kind:?} never ended"))
        .unwrap_or_else(|e| panic!("moving to {kind:?}: {e}"));
        assert_eq!(route.kind(), name);
        stop.store(true, Ordering::Relaxed);
        let (swaps, keys) = swapper.await.unwrap();
        let chunks = *chunks.lock().unwrap();
        assert!(chunks > 10, "{chunks} chunks");
        assert!(swaps > 5, "{swaps} swaps");
        let scope = access::verify_member(&db, d.bob, d.globex).await.unwrap();
        let mut tx = db.read(&scope).await.unwrap();
        for (id, key) in &keys {
            assert_eq!(&projects::get(&mut tx, *id).await.unwrap().key, key);
        }
        tx.commit().await.unwrap();
        assert_eq!(
            db.doctor().await.unwrap(),
            vec![],
            "after moving to {kind:?}"
        );
    }
    assert_eq!(leftovers(&control_url, &[]).await, Vec::<String>::new());
}

// A table's copy stops at its highest key at its first chunk. Tickets created after it
// (their UUIDv7 ids sort after every earlier one) come with the replay, not with later
// chunks: before, every chunk read the newest rows again, and a copy slower than the org
// wrote never ended. Thirty tickets are created once the tickets' first chunk is in; the
// chunks copy no more rows than there were, and every ticket is there after the move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tables_copy_leaves_rows_written_after_its_first_chunk_to_the_replay() {
    orgwall_testkit::init_logs();
    let one = PgCluster::start(LOGICAL);
    let (db, d, _) = world(&one).await;
    let gps = projects_of(&db, d.bob, d.globex).await;
    // Into the shared tables, which copy the org's own tables only (no derived ones).
    move_to(&db, d.globex, Kind::Database(None)).await;
    let scope = access::verify_member(&db, d.bob, d.globex).await.unwrap();
    let before = all_tickets(&db, &scope).await.unwrap().len();
    let (db2, bob, globex, project) = (db.clone(), d.bob, d.globex, gps[0]);
    let create = async move {
        let scope = access::verify_member(&db2, bob, globex).await.unwrap();
        for i in 0..30 {
            let mut tx = db2.write(&scope).await.unwrap();
            tickets::create(
                &mut tx,
                tickets::NewTicket {
                    project_id: project,
                    title: &format!("late {i}"),
                    body: "written after the first chunk",
                    assignee_id: None,
                },
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
        }
    };
    // A row a chunk: the projects, then the tickets' first.
    let first_ticket = i64::try_from(gps.len()).unwrap() + 1;
    let (_, (copied, total)) = move_writing_at(
        &db,
        d.globex,
        Kind::Shared,
        |m| m.phase == "copy" && m.rows_copied == first_ticket,
        create,
    )
    .await;
    assert_eq!(
        copied, total,
        "rows the chunks copied, against rows there were"
    );
    let scope = access::verify_member(&db, d.bob, d.globex).await.unwrap();
    assert_eq!(all_tickets(&db, &scope).await.unwrap().len(), before + 30);
    assert_eq!(db.doctor().await.unwrap(), vec![]);
}

/// Moves `org` to `kind` a row a chunk and, at the first step of the move `at` picks (its
/// phase, rows copied), runs `write` while the mover waits. Returns where the org is then,
/// and the most rows the move had copied and counted to copy.
async fn move_writing_at(
    db: &Db,
    org: OrgId,
    kind: Kind,
    at: impl Fn(&placement::Move) -> bool + Sync,
    write: impl std::future::Future<Output = ()> + Send + 'static,
) -> (Route, (i64, i64)) {
    placement::start_move(db, org, kind).await.unwrap();
    let (go, went) = std::sync::mpsc::channel::<()>();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let (go, finished) = (Mutex::new(Some(go)), Mutex::new(finished));
    let writer = tokio::spawn(async move {
        tokio::task::spawn_blocking(move || went.recv_timeout(Duration::from_secs(60)))
            .await
            .unwrap()
            .unwrap();
        write.await;
        done.send(()).unwrap();
    });
    let seen = Mutex::new((0i64, 0i64));
    let route = placement::run_move_with(db, org, ONE_ROW, &|m| {
        let mut s = seen.lock().unwrap();
        *s = (s.0.max(m.rows_copied), s.1.max(m.rows_total));
        drop(s);
        if at(m) {
            if let Some(go) = go.lock().unwrap().take() {
                go.send(()).unwrap();
                finished
                    .lock()
                    .unwrap()
                    .recv_timeout(Duration::from_secs(60))
                    .unwrap();
            }
        }
    })
    .await
    .unwrap();
    writer.await.unwrap();
    assert!(
        go.lock().unwrap().is_none(),
        "the move never came to the step"
    );
    let seen = *seen.lock().unwrap();
    (route, seen)
}

/// [`move_writing_at`] emptying the org (a project created, then every project deleted).
async fn move_emptying(
    db: &Db,
    user: UserId,
    org: OrgId,
    kind: Kind,
    at: fn(&placement::Move) -> bool,
) -> Route {
    let db2 = db.clone();
    let empty = async move {
        let scope = access::verify_member(&db2, user, org).await.unwrap();
        let mut tx = db2.write(&scope).await.unwrap();
        projects::create(&mut tx, "TWO", "Two", "").await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = db2.write(&scope).await.unwrap();
        for p in projects::list(&mut tx, 100, None).await.unwrap() {
            projects::delete(&mut tx, p.id).await.unwrap();
        }
        tx.commit().await.unwrap();
    };
    move_writing_at(db, org, kind, at, empty).await.0
}

/// The org's usage counters as its transactions read them, and how many usage rows the
/// database at `url` holds for it (read as the superuser).
async fn usage_of(db: &Db, user: UserId, org: OrgId, url: &str) -> ((i64, i64), i64) {
    let scope = access::verify_member(db, user, org).await.unwrap();
    let mut tx = db.read(&scope).await.unwrap();
    let used = orgwall_store::quota::usage(&mut tx).await.unwrap().used;
    assert!(projects::list(&mut tx, 100, None).await.unwrap().is_empty());
    tx.commit().await.unwrap();
    let rows: i64 = pg_client(url)
        .await
        .query_one(
            "SELECT count(*) FROM org_usage WHERE org_id = $1",
            &[&org.uuid()],
        )
        .await
        .unwrap()
        .get(0);
    ((used.projects, used.tickets), rows)
}

// A usage counter is a derived row: into a placement of its own it is copied, and until
// its chunk comes, the destination counts it from the changes replayed (from nothing,
// where the org's earlier rows were copied without their triggers). An org emptied
// meanwhile has no counter row in the source any more (an emptied org forgets it): the
// destination's, counted from part of the changes (here -1 projects), goes too. And an
// org emptied while the move catches up forgets its row in the destination as in the
// source (the replay runs in the org's scope, as its transactions do; it kept a zero row,
// which `placement set` then took for data).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_org_emptied_during_a_chunked_copy_keeps_no_counter_of_its_own() {
    orgwall_testkit::init_logs();
    let one = PgCluster::start(LOGICAL);
    let (db, d, control_url) = world(&one).await;
    let (org, scope) = access::create_org(
        &db,
        d.bob,
        "Initech",
        &orgwall_core::Slug::parse("initech").unwrap(),
    )
    .await
    .unwrap();
    let org = org.id;
    let mut tx = db.write(&scope).await.unwrap();
    projects::create(&mut tx, "ONE", "One", "").await.unwrap();
    tx.commit().await.unwrap();
    // The projects copied (the first table), the rest not yet.
    let in_copy: fn(&placement::Move) -> bool = |m| m.phase == "copy" && m.rows_copied > 0;
    let route = move_emptying(&db, d.bob, org, Kind::Database(None), in_copy).await;
    assert_eq!(route.kind(), "database");
    let own = one.url_of(&placement::database_name(org));
    assert_eq!(
        usage_of(&db, d.bob, org, &own).await,
        ((0, 0), 0),
        "the emptied org's counters after its move"
    );
    assert_eq!(db.doctor().await.unwrap(), vec![]);

    let scope = access::verify_member(&db, d.bob, org).await.unwrap();
    let mut tx = db.write(&scope).await.unwrap();
    projects::create(&mut tx, "ONE", "One", "").await.unwrap();
    tx.commit().await.unwrap();
    let in_catch_up: fn(&placement::Move) -> bool = |m| m.phase == "catch_up";
    let route = move_emptying(&db, d.bob, org, Kind::Shared, in_catch_up).await;
    assert_eq!(route.kind(), "shared");
    assert_eq!(
        usage_of(&db, d.bob, org, &control_url).await,
        ((0, 0), 0),
        "the org emptied while it caught up"
    );
    assert_eq!(db.doctor().await.unwrap(), vec![]);
}
