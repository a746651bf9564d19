//! The command line, shared by `orgwall-probe` and `orgwall probe`.
//!
//! Exit codes: 0 no leak found (and the run was complete), 1 at least one leak, 2 the
//! probe could not run or could not finish (bad document, unreachable server, credentials
//! that do not work, budget exhausted): partial results are still reported.

use crate::client::Principal;
use crate::Config;
use clap::Parser;
use std::process::ExitCode;
use std::time::Duration;

/// Prove from an OpenAPI document and two tenants' credentials that no endpoint leaks.
#[derive(Parser, Debug, Clone)]
#[command(name = "orgwall-probe", version)]
pub struct Args {
    /// OpenAPI 3.x document (JSON or YAML): a URL or a file. Default:
    /// `<base-url>/v1/openapi.json`.
    #[arg(long, env = "PROBE_SPEC")]
    pub spec: Option<String>,
    /// Base URL of the API.
    #[arg(long, env = "PROBE_BASE_URL")]
    pub base_url: String,
    /// A header of principal A (the attacker), `Name: value`; repeatable.
    #[arg(long = "a-header", value_name = "HEADER")]
    pub a_headers: Vec<String>,
    /// A's tenant (value of the tenant path parameter / header).
    #[arg(long = "a-org")]
    pub a_org: Option<String>,
    /// A header of principal B (the victim); repeatable.
    #[arg(long = "b-header", value_name = "HEADER")]
    pub b_headers: Vec<String>,
    /// B's tenant.
    #[arg(long = "b-org")]
    pub b_org: Option<String>,
    /// The tenant path parameter's name (e.g. `workspace`), when the probe does not infer
    /// it: a parameter named like a tenant, else the one that prefixes every collection.
    #[arg(long, value_name = "NAME")]
    pub tenant_param: Option<String>,
    /// The tenant header's name (e.g. `X-Account-Id`), when the probe does not infer it
    /// from a header named like a tenant. Sent on every operation with no tenant path
    /// parameter.
    #[arg(long, value_name = "NAME")]
    pub tenant_header: Option<String>,
    /// Create resources as B to plant canaries (writes to B's tenant).
    #[arg(long)]
    pub write: bool,
    /// Skip the check that every operation denies requests without credentials.
    #[arg(long)]
    pub no_anonymous: bool,
    /// Statuses that count as a denial.
    #[arg(long, value_delimiter = ',', default_value = "401,403,404")]
    pub deny: Vec<u16>,
    /// Request budget.
    #[arg(long, default_value_t = 20_000)]
    pub max_requests: usize,
    /// Requests per second at most (0: unbounded).
    #[arg(long, default_value_t = 0)]
    pub rate: u32,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
    /// Write the JSON report here.
    #[arg(long)]
    pub json: Option<String>,
    /// Write a JUnit XML report here.
    #[arg(long)]
    pub junit: Option<String>,
    /// Fail (exit 1) if any operation of the document was not exercised.
    #[arg(long)]
    pub require_all: bool,
    /// Quiet: no progress lines.
    #[arg(long, short)]
    pub quiet: bool,
}

impl Args {
    /// Parses `std::env::args`.
    pub fn parse_args() -> Self {
        Args::parse()
    }
}

fn headers(raw: &[String]) -> Result<Vec<(String, String)>, String> {
    raw.iter()
        .map(|h| {
            h.split_once(':')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| format!("invalid header {h:?}: expected `Name: value`"))
        })
        .collect()
}

/// Builds the configuration.
pub fn config(a: &Args) -> Result<Config, String> {
    let base = a.base_url.trim_end_matches('/').to_owned();
    url::Url::parse(&base).map_err(|e| format!("invalid --base-url {base:?}: {e}"))?;
    Ok(Config {
        spec: a
            .spec
            .clone()
            .unwrap_or_else(|| format!("{base}/v1/openapi.json")),
        base_url: base,
        a: Principal {
            name: "A".into(),
            headers: headers(&a.a_headers)?,
            org: a.a_org.clone(),
        },
        b: Principal {
            name: "B".into(),
            headers: headers(&a.b_headers)?,
            org: a.b_org.clone(),
        },
        anonymous: !a.no_anonymous,
        write: a.write,
        deny: a.deny.clone(),
        max_requests: a.max_requests,
        rate_per_sec: a.rate,
        timeout: Duration::from_secs(a.timeout.max(1)),
        ids_per_kind: 2,
        progress: !a.quiet,
        tenant_param: a.tenant_param.clone(),
        tenant_header: a.tenant_header.clone(),
    })
}

/// Runs and prints; returns the exit code.
pub async fn main(a: Args) -> ExitCode {
    let cfg = match config(&a) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let report = match crate::run(&cfg).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    print!("{}", report.table());
    for (path, text) in [(&a.json, report.json()), (&a.junit, report.junit())] {
        if let Some(p) = path {
            if let Err(e) = std::fs::write(p, text) {
                eprintln!("error: cannot write {p}: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let unexercised = report.unexercised();
    if !unexercised.is_empty() {
        eprintln!("{} operation(s) not exercised:", unexercised.len());
        for o in &unexercised {
            eprintln!(
                "  {} {} ({})",
                o.method,
                o.path,
                o.skipped.as_deref().unwrap_or("no reason")
            );
        }
    }
    if report.leaks() > 0 {
        ExitCode::from(1)
    } else if !report.complete() {
        eprintln!("the run was incomplete (transport errors, budget or credentials): no verdict");
        ExitCode::from(2)
    } else if a.require_all && !unexercised.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
