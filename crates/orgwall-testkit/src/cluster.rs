//! A second PostgreSQL server of a test's own: a throwaway cluster (`initdb` into a temp
//! directory, trust authentication, TCP on 127.0.0.1 only, a free port), stopped and
//! deleted when the value is dropped. For placements on another server and for moves,
//! which need a server other than the shared one and settings of their own (e.g.
//! `wal_level = logical`), never changed on the shared server.
//!
//! The server programs come from the newest `/usr/lib/postgresql/VERSION/bin` (Debian's
//! layout) or the `PATH`. As root, `initdb` and `pg_ctl` run as the `postgres` OS user
//! (`initdb` refuses root).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A running throwaway cluster.
pub struct PgCluster {
    /// `postgres://postgres@127.0.0.1:PORT/postgres` (the superuser, trust auth).
    pub url: String,
    /// Its port.
    pub port: u16,
    bindir: PathBuf,
    dir: tempfile::TempDir,
}

/// Lines that continue a server log's entry, from the process that wrote its head line.
const CONTINUING: [&str; 4] = ["DETAIL:", "STATEMENT:", "CONTEXT:", "HINT:"];

/// The process a server's log line is from: the `[pid]` after its stamp (`%m [%p]`, the
/// default `log_line_prefix` and the benchmarks').
pub fn log_process(line: &str) -> Option<&str> {
    let rest = line.get(23..)?;
    let open = rest.find('[')?;
    let close = rest[open..].find(']')?;
    rest.get(open + 1..open + close)
}

/// A server log's entries, in order: each head line (stamped, not a [`CONTINUING`] line)
/// with the lines that continue it: the unstamped lines after it (a statement's text
/// over several lines) and the `DETAIL:`, `STATEMENT:`, `CONTEXT:` and `HINT:` lines of
/// the same process, which other processes' lines may come between. A continuing line
/// whose process wrote no head line yet is left out.
pub fn log_entries(text: &str) -> Vec<Vec<&str>> {
    let mut entries: Vec<Vec<&str>> = Vec::new();
    let mut last_of: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut last: Option<usize> = None;
    for line in text.lines() {
        if !line.starts_with("20") {
            if let Some(e) = last.and_then(|i| entries.get_mut(i)) {
                e.push(line);
            }
            continue;
        }
        let pid = log_process(line).unwrap_or("");
        if CONTINUING.iter().any(|c| line.contains(c)) {
            last = last_of.get(pid).copied();
            if let Some(e) = last.and_then(|i| entries.get_mut(i)) {
                e.push(line);
            }
            continue;
        }
        last_of.insert(pid, entries.len());
        last = Some(entries.len());
        entries.push(vec![line]);
    }
    entries
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `program args...`, as the `postgres` OS user when we are root.
fn as_owner(program: &Path, args: &[&str]) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program).args(args);
        c
    } else {
        let mut c = Command::new(program);
        c.args(args);
        c
    }
}

/// The directory holding `initdb` and `pg_ctl`: the newest Debian version, else the PATH.
fn bindir() -> Option<PathBuf> {
    let mut best: Option<(u32, PathBuf)> = None;
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        for e in entries.flatten() {
            let Some(v) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let bin = e.path().join("bin");
            if bin.join("initdb").is_file()
                && bin.join("pg_ctl").is_file()
                && best.as_ref().is_none_or(|(b, _)| v > *b)
            {
                best = Some((v, bin));
            }
        }
    }
    best.map(|(_, p)| p).or_else(|| {
        let out = Command::new("sh")
            .args(["-c", "command -v initdb"])
            .output()
            .ok()?;
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        path.parent().map(Path::to_path_buf)
    })
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().expect("its address").port()
}

impl PgCluster {
    /// Starts a cluster with `settings` appended to its `postgresql.conf` (lines such as
    /// `wal_level = logical`). Panics with what went wrong if it cannot: a test that
    /// needs a second server does not pass without one.
    pub fn start(settings: &[&str]) -> PgCluster {
        Self::start_on(settings, None)
    }

    /// [`PgCluster::start`], with every process of the server kept to the CPUs `cpus`
    /// (a `taskset -c` list such as `1` or `0-1`) if given: the benchmarks' way to let two
    /// clusters on one machine stand for two machines, each with cores of its own.
    pub fn start_on(settings: &[&str], cpus: Option<&str>) -> PgCluster {
        let bindir = bindir().expect(
            "a second PostgreSQL server needs initdb and pg_ctl (Debian package postgresql)",
        );
        // Under /tmp: the postgres OS user must reach it.
        let dir = tempfile::Builder::new()
            .prefix("orgwall-pg2.")
            .tempdir_in("/tmp")
            .expect("a temp dir");
        let data = dir.path().join("data");
        if is_root() {
            let ok = Command::new("chown")
                .args(["postgres:", &dir.path().display().to_string()])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown of {} to postgres failed", dir.path().display());
        }
        let data_s = data.display().to_string();
        let out = as_owner(
            &bindir.join("initdb"),
            &[
                "-D",
                &data_s,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )
        .current_dir(dir.path())
        .output()
        .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut conf = String::from(
            "\n# orgwall test cluster\nlisten_addresses = '127.0.0.1'\n\
             unix_socket_directories = ''\nfsync = off\nsynchronous_commit = off\n\
             full_page_writes = off\nmax_connections = 100\nlog_lock_waits = on\n",
        );
        for s in settings {
            conf.push_str(s);
            conf.push('\n');
        }
        let conf_path = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path).expect("postgresql.conf");
        text.push_str(&conf);
        std::fs::write(&conf_path, text).expect("write postgresql.conf");
        let log = dir.path().join("server.log").display().to_string();
        for _ in 0..5 {
            let port = free_port();
            let opts = format!("-p {port}");
            let pg_ctl = bindir.join("pg_ctl").display().to_string();
            let mut args = vec![
                "-D", &data_s, "-l", &log, "-o", &opts, "-w", "-t", "60", "start",
            ];
            // The postmaster inherits pg_ctl's CPUs, and every backend the postmaster's.
            let program = match cpus {
                Some(list) => {
                    args.splice(0..0, ["-c", list, pg_ctl.as_str()]);
                    PathBuf::from("taskset")
                }
                None => PathBuf::from(&pg_ctl),
            };
            let started = as_owner(&program, &args)
                .current_dir(dir.path())
                .output()
                .is_ok_and(|o| o.status.success());
            if started {
                return PgCluster {
                    url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
                    port,
                    bindir,
                    dir,
                };
            }
        }
        panic!(
            "the test cluster did not start; its log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// What the server has written to its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The URL of database `name` on this cluster (as the superuser).
    pub fn url_of(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // A failing test shows what its server said (a deadlock's cycle, a crash),
            // which the temp dir below takes with it.
            let log = self.dir.path().join("server.log");
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            // Each entry's head line, then its DETAIL, STATEMENT and continued lines.
            let said: Vec<&str> = log_entries(&text)
                .into_iter()
                .filter(|e| {
                    ["ERROR:", "FATAL:", "PANIC:", "WARNING:", "still waiting"]
                        .iter()
                        .any(|w| e.first().is_some_and(|head| head.contains(w)))
                })
                .flatten()
                .collect();
            eprintln!(
                "the test cluster's log (warnings and errors, last 80 lines):\n{}",
                said[said.len().saturating_sub(80)..].join("\n")
            );
        }
        let data = self.dir.path().join("data").display().to_string();
        let _ = as_owner(
            &self.bindir.join("pg_ctl"),
            &["-D", &data, "-m", "immediate", "-w", "stop"],
        )
        .current_dir(self.dir.path())
        .output();
    }
}
