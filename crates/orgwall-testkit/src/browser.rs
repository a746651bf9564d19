//! A real headless Chromium for browser tests, driven over W3C WebDriver by
//! `chromedriver` (Debian's `chromium` and `chromium-driver`).
//!
//! WebDriver is a small JSON-over-HTTP protocol; the handful of commands the tests need
//! (navigate, find, click, type, read text and source, screenshot, run a script) are
//! spoken here with reqwest, which the test kit already has, rather than through another
//! client crate and its dependency tree.
//!
//! [`Browser::start`] returns `None` (the test then skips, saying why) when no browser is
//! installed, unless `ORGWALL_TEST_REQUIRE_BROWSER` is set (`scripts/test` and `.ci/run`
//! set it after installing one), in which case it panics: CI fails rather than skips.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The W3C element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long `find` and friends wait for an element to appear.
pub const WAIT: Duration = Duration::from_secs(10);

fn find_binary(env: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Ok(p) = std::env::var(env) {
        return Some(PathBuf::from(p));
    }
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

/// A headless Chromium session (its chromedriver and profile die with it).
pub struct Browser {
    http: reqwest::Client,
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

/// An element of the current page.
#[derive(Clone, Debug)]
pub struct El(String);

impl Browser {
    /// Starts chromedriver on a free port and a fresh headless Chromium session, or
    /// `None` if no browser is installed and `ORGWALL_TEST_REQUIRE_BROWSER` is unset.
    pub async fn start() -> Option<Browser> {
        let required = std::env::var_os("ORGWALL_TEST_REQUIRE_BROWSER").is_some();
        let chrome = find_binary(
            "ORGWALL_TEST_CHROMIUM",
            &[
                "/usr/bin/chromium",
                "/usr/bin/chromium-browser",
                "/usr/bin/google-chrome",
            ],
        );
        let driver = find_binary("ORGWALL_TEST_CHROMEDRIVER", &["/usr/bin/chromedriver"]);
        let (Some(chrome), Some(driver)) = (chrome, driver) else {
            assert!(
                !required,
                "ORGWALL_TEST_REQUIRE_BROWSER is set but chromium/chromedriver are not installed"
            );
            eprintln!("skipping browser test: chromium and chromedriver are not installed (set ORGWALL_TEST_REQUIRE_BROWSER to fail instead)");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http
                .get(format!("{base}/status"))
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success());
            if ready.is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "unhandledPromptBehavior": "accept",
            "goog:chromeOptions": {
                "binary": chrome,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {r}"))
            .to_owned();
        Some(Browser {
            http,
            session: format!("{base}/session/{session}"),
            driver: child,
            _profile: profile,
        })
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut rb = self
            .http
            .request(method.clone(), format!("{}{path}", self.session));
        if let Some(b) = body {
            rb = rb.json(&b);
        } else if method == reqwest::Method::POST {
            rb = rb.json(&json!({}));
        }
        let r: Value = rb.send().await.unwrap().json().await.unwrap();
        r["value"].clone()
    }

    fn failed(v: &Value) -> Option<String> {
        v.get("error")
            .map(|e| format!("{e}: {}", v["message"].as_str().unwrap_or("")))
    }

    /// Opens a URL and waits for it to load.
    pub async fn goto(&self, url: &str) {
        let v = self
            .cmd(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
        if let Some(e) = Self::failed(&v) {
            panic!("goto {url}: {e}");
        }
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.cmd(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The current page's HTML.
    pub async fn source(&self) -> String {
        self.cmd(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The page's visible text (`document.body.innerText`).
    pub async fn text(&self) -> String {
        self.script(
            "return document.body ? document.body.innerText : ''",
            json!([]),
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Runs a script in the page and returns its result.
    pub async fn script(&self, script: &str, args: Value) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// Runs an asynchronous script (its last argument is the callback to call with the
    /// result) and returns the result.
    pub async fn script_async(&self, script: &str, args: Value) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/async",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// Fetches `path` from the page, with the browser's cookies, and returns
    /// `[status, body text]` (a download as the browser makes it).
    pub async fn fetch(&self, path: &str) -> (u16, String) {
        let v = self
            .script_async(
                "const done = arguments[arguments.length - 1]; \
                 fetch(arguments[0], { credentials: 'same-origin' }) \
                   .then(r => r.text().then(t => done([r.status, t]))) \
                   .catch(e => done([0, String(e)]));",
                json!([path]),
            )
            .await;
        (
            v[0].as_u64().unwrap_or(0) as u16,
            v[1].as_str().unwrap_or_default().to_owned(),
        )
    }

    /// The first element matching `css`, if there is one now.
    pub async fn try_find(&self, css: &str) -> Option<El> {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        v.get(ELEMENT)
            .and_then(Value::as_str)
            .map(|s| El(s.to_owned()))
    }

    /// The first element matching `css`, waiting up to [`WAIT`] for it.
    pub async fn find(&self, css: &str) -> El {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(e) = self.try_find(css).await {
                return e;
            }
            if Instant::now() > deadline {
                let url = self.url().await;
                let text = self.text().await;
                panic!("no element {css:?} on {url}:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every element matching `css` now.
    pub async fn find_all(&self, css: &str) -> Vec<El> {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/elements",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.get(ELEMENT).and_then(Value::as_str))
                    .map(|s| El(s.to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Clicks the element matching `css` (and waits for a navigation it starts).
    pub async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.click_el(&e).await;
    }

    /// Clicks an element.
    pub async fn click_el(&self, e: &El) {
        let v = self
            .cmd(
                reqwest::Method::POST,
                &format!("/element/{}/click", e.0),
                None,
            )
            .await;
        if let Some(err) = Self::failed(&v) {
            panic!("click: {err}");
        }
    }

    /// Replaces the value of the field matching `css` with `text`.
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{}/clear", e.0),
            None,
        )
        .await;
        let v = self
            .cmd(
                reqwest::Method::POST,
                &format!("/element/{}/value", e.0),
                Some(json!({ "text": text })),
            )
            .await;
        if let Some(err) = Self::failed(&v) {
            panic!("fill {css}: {err}");
        }
    }

    /// Chooses a local file for the file input matching `css`.
    pub async fn set_file(&self, css: &str, path: &Path) {
        let e = self.find(css).await;
        let v = self
            .cmd(
                reqwest::Method::POST,
                &format!("/element/{}/value", e.0),
                Some(json!({ "text": path.display().to_string() })),
            )
            .await;
        if let Some(err) = Self::failed(&v) {
            panic!("set_file {css}: {err}");
        }
    }

    /// Chooses the option with value `value` of the select matching `css`.
    pub async fn choose(&self, css: &str, value: &str) {
        self.find(css).await;
        let v = self
            .script(
                "const s = document.querySelector(arguments[0]); s.value = arguments[1]; \
                 return s.value === arguments[1];",
                json!([css, value]),
            )
            .await;
        assert_eq!(v, json!(true), "no option {value:?} in {css}");
    }

    /// The visible text of the element matching `css`.
    pub async fn text_of(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.cmd(
            reqwest::Method::GET,
            &format!("/element/{}/text", e.0),
            None,
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Waits until the page text contains `needle`.
    pub async fn wait_text(&self, needle: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = self.text().await;
            if text.contains(needle) {
                return;
            }
            if Instant::now() > deadline {
                panic!("{needle:?} not on {}:\n{text}", self.url().await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `script` returns true.
    pub async fn wait_until(&self, script: &str) {
        let deadline = Instant::now() + WAIT;
        while self.script(script, json!([])).await != json!(true) {
            if Instant::now() > deadline {
                panic!("never true on {}: {script}", self.url().await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Resizes the window (CSS pixels).
    pub async fn resize(&self, width: u32, height: u32) {
        self.cmd(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .await;
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let v = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .unwrap()
    }

    /// Writes a PNG of the viewport to `path`.
    pub async fn screenshot_to(&self, path: &Path) {
        let png = self.screenshot().await;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }

    /// Forgets every cookie (a new visitor).
    pub async fn clear_cookies(&self) {
        self.cmd(reqwest::Method::DELETE, "/cookie", None).await;
    }

    /// The cookies the browser holds for the current page, as WebDriver reports them.
    pub async fn cookies(&self) -> Value {
        self.cmd(reqwest::Method::GET, "/cookie", None).await
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // End the session (closes Chromium), then the driver.
        let url = self.session.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(async {
                    let _ = reqwest::Client::new()
                        .delete(url)
                        .timeout(Duration::from_secs(5))
                        .send()
                        .await;
                });
            }
        })
        .join();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
