//! `pgbench` running the detail read's own SQL, for the ratio of our requests/s to its
//! transactions/s.
//!
//! The script is the tenant transaction of `GET /v1/orgs/{org}/tickets/{id}` exactly as
//! the server sends it (`crates/orgwall-store/src/pg.rs` and `repo/tickets.rs`):
//! `BEGIN READ ONLY`, the scope prelude (role `orgwall_app`, `app.org_id`), the ticket
//! `SELECT`, the history `SELECT`, `COMMIT`, with `-M prepared` (the server prepares
//! every statement once per connection). Random (org, ticket) pairs come from a table
//! `bench_pairs` filled from the driver's ticket samples, read with `\gset` before the
//! transaction: one extra, cheap round trip per transaction that the server does not
//! make (it has the ids from the URL), which favours the server in the ratio.
//!
//! Two modes: `pipeline` sends the transaction's five statements in one pipeline (one
//! round trip; what the server aims for); `plain` sends them one by one (five round
//! trips; what a naive driver does). pgbench does not do what the server does before
//! that transaction (today three more short transactions per request: the API key's
//! lookup, its role, the org named in the path), so the ratio prices the whole wall.

use crate::dataset::{Org, Rng};
use crate::seed::pg_connect;
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use futures::SinkExt;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// Which script pgbench runs, and how it sends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The server's detail transaction in one pipeline (`\startpipeline` ..
    /// `\endpipeline`): one round trip, what the server sends.
    Pipeline,
    /// The server's detail transaction one statement at a time: a round trip each.
    Plain,
    /// Issue 16's anchor, PostgreSQL's own naive RLS transaction: `BEGIN; SELECT
    /// set_config('app.org_id', ...); SELECT the ticket; COMMIT`, one round trip each, as
    /// a login that is neither the owner nor a superuser (a login member of the app role,
    /// so the policies apply without a role switch).
    Naive,
    /// The floor of any read: the ticket's one prepared `SELECT`, as the admin (no RLS,
    /// no transaction block).
    Floor,
    /// Only the pair lookup every script starts with (see [`script`]): what to subtract.
    Pairs,
    /// Breakdown, step 1: `BEGIN READ ONLY; COMMIT` pipelined.
    StepBegin,
    /// Step 2: + the scope prelude without the access check (five `set_config`).
    StepPrelude,
    /// Step 3: + the access-generation check column (a scope from cached access).
    StepCheck,
    /// Step 4: + the ticket `SELECT`; step 5 (+ the history `SELECT`) is `pipeline`.
    StepTicket,
}

impl Mode {
    /// Whether the script runs as [`NAIVE_LOGIN`] instead of the admin URL's user.
    pub fn naive_login(self) -> bool {
        self == Mode::Naive
    }
}

/// The login role the naive anchor connects as (created `IN ROLE` the app role).
pub const NAIVE_LOGIN: &str = "orgwall_bench_login";

const PAIR: &str = "\\set n random(1, :npairs)\n\
     SELECT pair_org AS org, pair_ticket AS tid FROM bench_pairs WHERE n = :n \\gset\n";
const TICKET: &str = "SELECT id, project_id, title, body, status, assignee_id, created_at FROM tickets WHERE org_id = :org AND id = :tid;\n";
const HISTORY: &str = "SELECT actor_id, field, from_value, to_value, created_at FROM ticket_events WHERE org_id = :org AND ticket_id = :tid ORDER BY id;\n";

/// The pgbench script. Every script first draws a random (org, ticket) pair from
/// `bench_pairs` with `\gset`: one extra, cheap round trip per transaction that the
/// server does not make (it has the ids from the URL), which favours the server in the
/// ratios (`pairs` measures it alone).
pub fn script(mode: Mode, app_role: &str) -> String {
    let prelude = format!(
        "SELECT set_config('role', '{app_role}', true), set_config('app.org_id', :org, true), \
         set_config('app.user_id', '', true), set_config('app.lookup', '', true), \
         set_config('app.system', '', true)"
    );
    // The server's check column for a scope built from an API key's cached access: the
    // org's one probe (crates/orgwall-tenancy/src/postgres/mod.rs, PRELUDES).
    let check =
        ", coalesce((SELECT g.gen FROM access_generations g WHERE g.dep = :org::uuid), 0) <> 0";
    let pipelined = |body: String| format!("{PAIR}\\startpipeline\n{body}\\endpipeline\n");
    match mode {
        Mode::Pipeline => pipelined(format!(
            "BEGIN READ ONLY;\n{prelude}{check};\n{TICKET}{HISTORY}COMMIT;\n"
        )),
        Mode::Plain => format!(
            "{PAIR}BEGIN READ ONLY;\n{prelude}{check};\n{TICKET}{HISTORY}COMMIT;\n"
        ),
        Mode::Naive => format!(
            "{PAIR}BEGIN;\nSELECT set_config('app.org_id', :org, true);\n\
             SELECT id, project_id, title, body, status, assignee_id, created_at FROM tickets WHERE id = :tid;\n\
             COMMIT;\n"
        ),
        Mode::Floor => format!("{PAIR}{TICKET}"),
        Mode::Pairs => PAIR.to_owned(),
        Mode::StepBegin => pipelined("BEGIN READ ONLY;\nCOMMIT;\n".to_owned()),
        Mode::StepPrelude => pipelined(format!("BEGIN READ ONLY;\n{prelude};\nCOMMIT;\n")),
        Mode::StepCheck => pipelined(format!("BEGIN READ ONLY;\n{prelude}{check};\nCOMMIT;\n")),
        Mode::StepTicket => pipelined(format!(
            "BEGIN READ ONLY;\n{prelude}{check};\n{TICKET}COMMIT;\n"
        )),
    }
}

/// The admin URL with the user (and password) replaced: `postgres://USER@host...`.
pub fn with_user(url: &str, user: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let host = match rest[..authority_end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    format!("{scheme}://{user}@{host}")
}

/// Creates [`NAIVE_LOGIN`] (a login member of `app_role`: no owner, no superuser, so
/// row-level security applies to it) if it is missing.
pub async fn ensure_naive_login(url: &str, app_role: &str) -> Result<()> {
    let client = pg_connect(url).await?;
    client
        .batch_execute(&format!(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{NAIVE_LOGIN}') THEN
                 CREATE ROLE {NAIVE_LOGIN} LOGIN NOSUPERUSER NOBYPASSRLS IN ROLE {app_role};
               END IF;
             END $$;
             GRANT SELECT ON bench_pairs TO {NAIVE_LOGIN};"
        ))
        .await?;
    Ok(())
}

/// Pairs in `bench_pairs` at most.
const MAX_PAIRS: usize = 100_000;

/// Fills `bench_pairs` (owner connection) with (org, ticket) pairs drawn the way the
/// driver draws them (a uniformly random org, then a random ticket of its sample); returns
/// how many pairs there are.
pub async fn load_pairs(url: &str, orgs: &[Org]) -> Result<usize> {
    let client = pg_connect(url).await?;
    client
        .batch_execute(
            "DROP TABLE IF EXISTS bench_pairs;
             CREATE TABLE bench_pairs (n integer PRIMARY KEY, pair_org text NOT NULL, pair_ticket text NOT NULL)",
        )
        .await?;
    let total: usize = orgs.iter().map(|o| o.sample.len()).sum();
    let mut rng = Rng::new(0xBE7C);
    let mut text = String::new();
    let mut n = 0usize;
    while n < total.min(MAX_PAIRS) {
        let Some(o) = rng.pick(orgs) else { break };
        let Some(t) = rng.pick(&o.sample) else {
            continue;
        };
        n += 1;
        let _ = writeln!(text, "{n}\t{}\t{}", o.id.hyphenated(), t.hyphenated());
    }
    let sink = client
        .copy_in::<_, Bytes>("COPY bench_pairs (n, pair_org, pair_ticket) FROM STDIN")
        .await?;
    futures::pin_mut!(sink);
    sink.send(Bytes::from(text)).await?;
    sink.as_mut().finish().await?;
    client.batch_execute("ANALYZE bench_pairs").await?;
    Ok(n)
}

/// Drops `bench_pairs`.
pub async fn drop_pairs(url: &str) -> Result<()> {
    pg_connect(url)
        .await?
        .batch_execute("DROP TABLE IF EXISTS bench_pairs")
        .await?;
    Ok(())
}

/// What pgbench reported.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// Transactions per second (without initial connection time).
    pub tps: f64,
    /// Average latency, ms.
    pub latency_avg_ms: Option<f64>,
    /// Failed transactions (pgbench 15 aborts the client on an error instead).
    pub failed: Option<u64>,
}

fn parse(out: &str) -> Option<Outcome> {
    let num = |prefix: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
    };
    Some(Outcome {
        tps: num("tps =")?,
        latency_avg_ms: num("latency average ="),
        failed: out
            .lines()
            .find_map(|l| l.trim().strip_prefix("number of failed transactions:"))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok()),
    })
}

/// Runs pgbench: `-n -M prepared -c C -j 2 -T secs -f script -D npairs=N URL`.
pub fn run(
    url: &str,
    script_dir: &Path,
    mode: Mode,
    app_role: &str,
    concurrency: usize,
    secs: u64,
    pairs: usize,
) -> Result<(Outcome, String)> {
    let path = script_dir.join(format!("detail-{mode:?}.sql").to_lowercase());
    std::fs::write(&path, script(mode, app_role))?;
    let url = if mode.naive_login() {
        with_user(url, NAIVE_LOGIN)
    } else {
        url.to_owned()
    };
    // Without TLS, as the server's own connections to PostgreSQL (tokio-postgres with
    // `NoTls`): libpq's default `sslmode=prefer` encrypts whenever the server has `ssl = on`
    // (Debian's default), which cost pgbench a third of its transactions on this machine and
    // flattered every ratio to it. A URL that names an `sslmode` still wins.
    let out = Command::new("pgbench")
        .env("PGSSLMODE", "disable")
        .args(["-n", "-M", "prepared", "-j", "2"])
        .arg("-c")
        .arg(concurrency.to_string())
        .arg("-T")
        .arg(secs.to_string())
        .arg("-f")
        .arg(&path)
        .arg("-D")
        .arg(format!("npairs={pairs}"))
        .arg(&url)
        .output()
        .context("cannot run pgbench (install postgresql-client)")?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let command = format!(
        "PGSSLMODE=disable pgbench -n -M prepared -j 2 -c {concurrency} -T {secs} -f {} -D npairs={pairs} URL",
        path.display()
    );
    match parse(&stdout) {
        Some(o) if out.status.success() => Ok((o, command)),
        _ => bail!(
            "pgbench failed ({}):\n{stdout}\n{}",
            out.status,
            stderr.lines().rev().take(10).collect::<Vec<_>>().join("\n")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pgbench_15_output() {
        let out = "transaction type: detail.sql\nscaling factor: 1\nnumber of clients: 64\n\
                   number of transactions actually processed: 12345\n\
                   number of failed transactions: 0 (0.000%)\n\
                   latency average = 5.123 ms\ninitial connection time = 80.1 ms\n\
                   tps = 12492.345678 (without initial connection time)\n";
        let o = parse(out).unwrap_or(Outcome {
            tps: 0.0,
            latency_avg_ms: None,
            failed: None,
        });
        assert!((o.tps - 12492.345678).abs() < 1e-6);
        assert_eq!(o.latency_avg_ms, Some(5.123));
        assert_eq!(o.failed, Some(0));
    }

    #[test]
    fn the_script_is_the_servers_sql() {
        let s = script(Mode::Pipeline, "orgwall_app");
        assert!(s.contains("\\startpipeline\nBEGIN READ ONLY;"));
        assert!(s.contains("FROM tickets WHERE org_id = :org AND id = :tid"));
        assert!(s.ends_with("COMMIT;\n\\endpipeline\n"));
        assert!(!script(Mode::Plain, "orgwall_app").contains("pipeline"));
        // The breakdown's last step plus the history is the server's transaction.
        let step = script(Mode::StepTicket, "orgwall_app");
        assert_eq!(step.replace("COMMIT;", &format!("{HISTORY}COMMIT;")), s);
        assert!(script(Mode::Naive, "orgwall_app").contains("WHERE id = :tid"));
    }

    #[test]
    fn the_naive_login_replaces_the_user() {
        assert_eq!(
            with_user("postgres://postgres:pw@127.0.0.1:5432/db?x=1", "u"),
            "postgres://u@127.0.0.1:5432/db?x=1"
        );
        assert_eq!(with_user("postgres://h/db", "u"), "postgres://u@h/db");
    }
}
