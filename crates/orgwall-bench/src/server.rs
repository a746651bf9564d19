//! The server under test: `orgwall serve` (release build) as a child process.

use anyhow::{bail, Context, Result};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where the server keeps its data.
pub enum Backend<'a> {
    /// SQLite in this data directory (`orgwall.db` inside).
    Sqlite(&'a Path),
    /// PostgreSQL at this URL; the data directory holds only files.
    Postgres(&'a str, &'a Path),
}

/// A running server.
pub struct Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    log: Arc<Mutex<VecDeque<String>>>,
}

/// Whether `orgwall serve` knows `--no-worker` (the in-process job worker; off for the
/// bench so that only requests use the machine).
fn knows_no_worker(bin: &Path) -> bool {
    Command::new(bin)
        .args(["serve", "--help"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("--no-worker"))
        .unwrap_or(false)
}

impl Server {
    /// Starts `bin serve` on 127.0.0.1:0 without migrating (the seed did), with rate
    /// limits out of the way, and waits for its `orgwall listening on http://...` line.
    pub fn start(bin: &Path, backend: &Backend<'_>) -> Result<Server> {
        Server::start_with(bin, backend, &[])
    }

    /// [`Server::start`] with more environment variables for the server.
    pub fn start_with(bin: &Path, backend: &Backend<'_>, env: &[(&str, &str)]) -> Result<Server> {
        let mut cmd = Command::new(bin);
        cmd.envs(env.iter().copied());
        cmd.args([
            "--log-format",
            "text",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-migrate",
            "--rate-user-per-minute",
        ])
        .arg(crate::seed::RATE_LIMIT_PER_MINUTE.to_string());
        if knows_no_worker(bin) {
            cmd.arg("--no-worker");
        }
        match backend {
            Backend::Sqlite(dir) => {
                cmd.arg("--data-dir").arg(dir).env_remove("DATABASE_URL");
            }
            Backend::Postgres(url, dir) => {
                cmd.arg("--data-dir")
                    .arg(dir)
                    .arg("--database-url")
                    .arg(url);
            }
        }
        cmd.env("ORGWALL_LOG", "warn")
            .env_remove("REDIS_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let stderr = child.stderr.take().context("no stderr")?;
        let log: Arc<Mutex<VecDeque<String>>> = Arc::default();
        let (tx, rx) = std::sync::mpsc::channel::<SocketAddr>();
        let keep = log.clone();
        // Reads stderr for the whole life of the server (a full pipe would block it),
        // keeping the last lines for error messages.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("orgwall listening on http://") {
                    if let Some(addr) = rest.split_whitespace().next().and_then(|a| a.parse().ok())
                    {
                        let _ = tx.send(addr);
                    }
                }
                if let Ok(mut l) = keep.lock() {
                    if l.len() >= 40 {
                        l.pop_front();
                    }
                    l.push_back(line);
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(addr) = rx.recv_timeout(Duration::from_millis(100)) {
                return Ok(Server { child, addr, log });
            }
            if let Some(status) = child.try_wait()? {
                let tail = log
                    .lock()
                    .map(|l| l.iter().cloned().collect::<Vec<_>>().join("\n"));
                bail!(
                    "orgwall serve exited ({status}):\n{}",
                    tail.unwrap_or_default()
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("orgwall serve did not say where it listens within 120 s");
            }
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines it wrote to stderr.
    pub fn log_tail(&self) -> String {
        self.log
            .lock()
            .map(|l| l.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }

    /// Stops it: SIGTERM (graceful shutdown), then SIGKILL after 10 s.
    pub fn stop(mut self) -> Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A field of `/proc/<pid>/status` in kB (`VmRSS`, `VmHWM`).
pub fn proc_kb(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// A fresh directory for one run's data.
pub fn fresh_dir(base: &Path, name: &str) -> Result<PathBuf> {
    let dir = base.join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
