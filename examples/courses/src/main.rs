//! `courses`: migrate, check, seed and serve the example service.

use anyhow::Context;
use clap::{Parser, Subcommand};
use orgwall_core::{Email, Slug};
use orgwall_tenancy::identity::{sessions, users};
use orgwall_tenancy::{access, crypto, Db, DbConfig};
use orgwall_tenancy_http::Kernel;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(about = "A learning platform built on the orgwall kernel")]
struct Cli {
    /// `postgres://...` or `sqlite:PATH` (default: SQLite under --data-dir).
    #[arg(long, env = "DATABASE_URL", global = true)]
    database_url: Option<String>,
    /// Where the SQLite file lives.
    #[arg(long, default_value = "./courses-data", global = true)]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply the kernel's and this service's migrations.
    Migrate,
    /// Check the walls; exit 1 on any violation.
    Doctor,
    /// Create two organizations with an owner each; print `SLUG TOKEN` per line.
    Seed,
    /// Migrate and serve.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: String,
    },
}

async fn open(cli: &Cli) -> anyhow::Result<Db> {
    std::fs::create_dir_all(&cli.data_dir).context("creating the data directory")?;
    let cfg = DbConfig::from_url(cli.database_url.as_deref(), &cli.data_dir)?;
    Ok(Db::open(&cfg, courses::catalog()).await?)
}

async fn seed(db: &Db) -> anyhow::Result<()> {
    let hash = crypto::hash_password("courses-demo")?;
    for slug in ["alpha", "beta"] {
        let email = Email::parse(&format!("owner@{slug}.test")).map_err(anyhow::Error::msg)?;
        let user = users::create(db, &email, slug, &hash, true).await?;
        let slug = Slug::parse(slug).map_err(anyhow::Error::msg)?;
        access::create_org(db, user.id, slug.as_str(), &slug).await?;
        println!("{slug} {}", sessions::create(db, user.id).await?.token);
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let db = open(&cli).await?;
    match &cli.command {
        Command::Migrate => {
            db.migrate().await?;
        }
        Command::Doctor => {
            let found = db.doctor().await?;
            for v in &found {
                println!("{v}");
            }
            if !found.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
            println!("doctor: no violation");
        }
        Command::Seed => seed(&db).await?,
        Command::Serve { listen } => {
            db.migrate().await?;
            let listener = tokio::net::TcpListener::bind(listen).await?;
            println!("courses listening on http://{}", listener.local_addr()?);
            axum::serve(listener, courses::app(Kernel::new(db))).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
