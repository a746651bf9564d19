//! `orgwall serve` against slow, idle and greedy clients, with raw sockets: header-read,
//! body-read and idle timeouts, the bound on open connections, a body refused before it
//! is read (413 at once for an oversized Content-Length, `Connection: close` so keep-alive
//! never breaks), and metrics only on their own listener.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    /// `127.0.0.1:PORT`.
    addr: String,
    metrics: Option<String>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_orgwall"))
        .env_remove("DATABASE_URL")
        .env_remove("ORGWALL_S3_BUCKET")
        .args([
            "serve",
            "--demo",
            "--no-worker",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "text",
            "--data-dir",
        ])
        .arg(dir.path())
        .args(args)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut metrics = None;
    let mut addr = None;
    let want_metrics = args.contains(&"--metrics-listen");
    while addr.is_none() || (want_metrics && metrics.is_none()) {
        let line = lines
            .next()
            .expect("server exited before listening")
            .unwrap();
        if let Some(rest) = line.strip_prefix("orgwall metrics on http://") {
            metrics = Some(rest.trim_end_matches("/metrics").to_owned());
        }
        if let Some(rest) = line.strip_prefix("orgwall listening on http://") {
            addr = Some(rest.split_whitespace().next().unwrap().to_owned());
        }
    }
    let addr = addr.unwrap();
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        addr,
        metrics,
        _dir: dir,
    }
}

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads until the server closes the connection (or `limit` passes); returns what came
/// and how long it took.
fn read_to_close(s: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let start = Instant::now();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!(
                    "the connection stayed open for {limit:?}; got {:?}",
                    String::from_utf8_lossy(&out)
                )
            }
            Err(_) => break, // reset
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), start.elapsed())
}

/// Reads one response (headers and a Content-Length body) from `s`.
fn read_response(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 1];
    while !out.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut buf).expect("a response");
        assert!(
            n > 0,
            "closed before a response: {:?}",
            String::from_utf8_lossy(&out)
        );
        out.push(buf[0]);
    }
    let head = String::from_utf8_lossy(&out).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    head + &String::from_utf8_lossy(&body)
}

fn has_header(response: &str, name: &str, value: &str) -> bool {
    response.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.eq_ignore_ascii_case(name) && v.trim().eq_ignore_ascii_case(value)
        })
    })
}

const TIMEOUTS: &[&str] = &[
    "--header-read-timeout",
    "400ms",
    "--body-read-timeout",
    "400ms",
    "--idle-timeout",
    "800ms",
];

#[test]
fn partial_headers_are_cut_off() {
    let s = start(TIMEOUTS);
    let mut c = connect(&s.addr);
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let (_, took) = read_to_close(&mut c, Duration::from_secs(5));
    assert!(took >= Duration::from_millis(300), "{took:?}");
    // Dripping the headers a byte at a time does not keep them alive either.
    let mut c = connect(&s.addr);
    let start = Instant::now();
    let mut closed = false;
    for b in b"GET /healthz HTTP/1.1\r\nX-Slow: "
        .iter()
        .cycle()
        .take(200)
    {
        if c.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        if start.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    if !closed {
        let (_, _) = read_to_close(&mut c, Duration::from_secs(2));
    }
    assert!(start.elapsed() < Duration::from_secs(4));
}

#[test]
fn partial_bodies_time_out() {
    let s = start(TIMEOUTS);
    let mut c = connect(&s.addr);
    c.write_all(
        b"POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"email\":",
    )
    .unwrap();
    let (out, took) = read_to_close(&mut c, Duration::from_secs(5));
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
    assert!(out.contains("application/problem+json"), "{out}");
    assert!(took >= Duration::from_millis(300), "{took:?}");
}

#[test]
fn idle_connections_are_closed() {
    let s = start(TIMEOUTS);
    // Never sends anything.
    let mut c = connect(&s.addr);
    let (out, took) = read_to_close(&mut c, Duration::from_secs(5));
    assert_eq!(out, "");
    assert!(took >= Duration::from_millis(700), "{took:?}");
    // Keep-alive after a request: served, then closed when idle.
    let mut c = connect(&s.addr);
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let r = read_response(&mut c);
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let (out, took) = read_to_close(&mut c, Duration::from_secs(5));
    assert_eq!(out, "");
    assert!(took >= Duration::from_millis(700), "{took:?}");
}

#[test]
fn open_connections_are_bounded() {
    let s = start(&["--max-connections", "2", "--idle-timeout", "30s"]);
    let a = connect(&s.addr);
    let _b = connect(&s.addr);
    std::thread::sleep(Duration::from_millis(200));
    // The third client waits: no answer while two connections are open...
    let mut c = connect(&s.addr);
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    c.set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut buf = [0u8; 1];
    assert!(c.read(&mut buf).is_err(), "served beyond the bound");
    // ...and is served as soon as one closes.
    drop(a);
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let r = read_response(&mut c);
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}

#[test]
fn oversized_content_length_is_refused_at_once_and_keep_alive_survives() {
    let s = start(&[]);
    // Headers only: the body is never sent, and the answer does not wait for it.
    let mut c = connect(&s.addr);
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    c.write_all(
        b"POST /v1/auth/signup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n",
    )
    .unwrap();
    let r = read_response(&mut c);
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    assert!(has_header(&r, "connection", "close"), "{r}");

    // A body refused before it is read (no credentials), the next request right behind
    // it on the same connection: the client is told the connection closes, or served.
    for (req, status) in [
        (
            "POST /v1/orgs/acme/notes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"title\":\"hi\"}",
            "401",
        ),
        (
            "POST /v1/auth/signup HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}",
            "415",
        ),
    ] {
        let mut c = connect(&s.addr);
        c.write_all(format!("{req}GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        let first = read_response(&mut c);
        assert!(first.starts_with(&format!("HTTP/1.1 {status}")), "{first}");
        if !has_header(&first, "connection", "close") {
            let second = read_response(&mut c);
            assert!(second.starts_with("HTTP/1.1 200"), "{second}");
        }
    }
}

#[test]
fn metrics_are_only_on_their_own_listener_behind_the_token() {
    let s = start(&[
        "--metrics-listen",
        "127.0.0.1:0",
        "--metrics-token",
        "s3cret",
    ]);
    let m = s.metrics.clone().expect("metrics listener");
    let get = |addr: &str, auth: &str| {
        let mut c = connect(addr);
        c.write_all(format!("GET /metrics HTTP/1.1\r\nHost: x\r\n{auth}\r\n").as_bytes())
            .unwrap();
        read_response(&mut c)
    };
    let mut c = connect(&s.addr);
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(read_response(&mut c).starts_with("HTTP/1.1 200"));
    let r = get(&s.addr, "");
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
    let r = get(&s.addr, "Authorization: Bearer s3cret\r\n");
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
    let r = get(&m, "");
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");
    let r = get(&m, "Authorization: Bearer nope\r\n");
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");
    let r = get(&m, "Authorization: Bearer s3cret\r\n");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.contains("orgwall_http_requests_total"), "{r}");
}
