//! CPU time spent during a measured window, read from `/proc` (Linux): the whole
//! machine's (busy, every process and the kernel's own work), the server process's and
//! PostgreSQL's (every process named `postgres`). Divided by the window's requests it is
//! the work a request costs, a figure that a slower disk flush or a neighbour's burst in
//! one run moves far less than the requests per second (a write waiting for a flush
//! spends no CPU while it waits).

use serde::Serialize;

/// `/proc` counts CPU time in ticks of 1/100 s (USER_HZ, 100 on every Linux
/// architecture this runs on).
const TICKS_PER_SEC: f64 = 100.0;

/// Cumulative CPU ticks at one moment.
#[derive(Clone, Copy, Debug, Default)]
pub struct Snapshot {
    machine_busy: u64,
    server: Option<u64>,
    postgres: u64,
}

/// CPU microseconds per request over a window.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct PerRequest {
    /// Every core's busy time (user, system, interrupts; not idle or I/O wait).
    pub machine_us: f64,
    /// The server process's.
    pub server_us: Option<f64>,
    /// PostgreSQL's processes' (backends and background alike; on a machine running one
    /// server, the bench's).
    pub postgres_us: f64,
}

/// Reads the counters now; `server` is the server's pid, if any.
pub fn snapshot(server: Option<u32>) -> Snapshot {
    Snapshot {
        machine_busy: machine_busy().unwrap_or(0),
        server: server.and_then(process_ticks),
        postgres: postgres_ticks(),
    }
}

/// The CPU time between `from` and `to` over `requests` requests.
#[allow(clippy::cast_precision_loss)]
pub fn per_request(from: Snapshot, to: Snapshot, requests: u64) -> Option<PerRequest> {
    if requests == 0 || to.machine_busy == 0 {
        return None;
    }
    let us = |ticks: u64| ticks as f64 / TICKS_PER_SEC * 1e6 / requests as f64;
    Some(PerRequest {
        machine_us: us(to.machine_busy.saturating_sub(from.machine_busy)),
        server_us: match (from.server, to.server) {
            (Some(a), Some(b)) => Some(us(b.saturating_sub(a))),
            _ => None,
        },
        postgres_us: us(to.postgres.saturating_sub(from.postgres)),
    })
}

/// The `cpu` line of `/proc/stat`: user, nice, system, idle, iowait, irq, softirq, steal;
/// busy is all but idle, iowait and steal.
fn machine_busy() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|n| n.parse().ok())
        .collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    Some(at(0) + at(1) + at(2) + at(5) + at(6))
}

/// A process's user and system ticks (`/proc/PID/stat` fields 14 and 15), with its
/// command name.
fn stat_of(pid: &str) -> Option<(String, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name is in parentheses and may hold spaces; the fields after it are plain.
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let name = s.get(open + 1..close)?.to_owned();
    let rest: Vec<&str> = s.get(close + 2..)?.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime 15.
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

fn process_ticks(pid: u32) -> Option<u64> {
    stat_of(&pid.to_string()).map(|(_, t)| t)
}

/// Every `postgres` process's ticks (a backend that exits during a window takes its
/// ticks with it; the bench's pooled connections live through their runs).
fn postgres_ticks() -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name();
            let pid = name.to_str()?;
            if !pid.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let (comm, ticks) = stat_of(pid)?;
            (comm == "postgres").then_some(ticks)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn this_process_is_read_and_a_busy_window_costs_cpu() {
        let before = snapshot(Some(std::process::id()));
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(300) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let after = snapshot(Some(std::process::id()));
        let per = per_request(before, after, 1).unwrap();
        // 300 ms of spinning: at least 150 ms counted for this process and the machine.
        assert!(per.server_us.unwrap() >= 150_000.0, "{per:?}");
        assert!(per.machine_us >= 150_000.0, "{per:?}");
        assert!(per_request(before, after, 0).is_none());
    }
}
