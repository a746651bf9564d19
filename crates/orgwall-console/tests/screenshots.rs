//! Screenshots of the console's main pages, for the README: runs only when
//! `ORGWALL_TEST_SCREENSHOTS` names a directory (`docs/screenshots` in the repository):
//!
//! ```sh
//! ORGWALL_TEST_SCREENSHOTS=$PWD/docs/screenshots cargo test -p orgwall-console --test screenshots
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use orgwall_store::BackendKind;
use orgwall_testkit::browser::Browser;
use orgwall_testkit::{Demo, TestDb};
use serde_json::json;
use std::path::PathBuf;

async fn shoot(b: &Browser, dir: &std::path::Path, name: &str, width: u32) {
    b.resize(width, 800).await;
    let h = b
        .script("return document.documentElement.scrollHeight", json!([]))
        .await
        .as_u64()
        .unwrap_or(800);
    b.resize(width, u32::try_from(h).unwrap_or(800).clamp(400, 2400))
        .await;
    b.screenshot_to(&dir.join(format!("{name}.png"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn main_pages() {
    let Some(dir) = std::env::var_os("ORGWALL_TEST_SCREENSHOTS").map(PathBuf::from) else {
        eprintln!("skipping: set ORGWALL_TEST_SCREENSHOTS to a directory to write screenshots");
        return;
    };
    let Some(b) = Browser::start().await else {
        return;
    };
    let t = TestDb::new(BackendKind::Sqlite).await;
    Demo::load(&t.db).await;
    let s = common::Server::start(&t.db).await;

    b.goto(&s.url("/login")).await;
    shoot(&b, &dir, "login", 1100).await;
    b.fill("#f-email", "alice@acme.test").await;
    b.fill("#f-password", "orgwall-demo").await;
    b.click("main form button[type=submit]").await;
    b.wait_text("Log out").await;

    b.goto(&s.url("/o/acme/tickets")).await;
    shoot(&b, &dir, "tickets", 1100).await;
    b.click("table a").await;
    b.wait_text("History").await;
    b.fill(
        "#f-comment",
        "Profiling shows the session lookup; looking into it.",
    )
    .await;
    b.click("form[method=post][action$='/comments'] button")
        .await;
    b.wait_text("Profiling shows").await;
    shoot(&b, &dir, "ticket", 1100).await;
    shoot(&b, &dir, "ticket-phone", 390).await;

    b.goto(&s.url("/o/acme/members")).await;
    b.click(".switcher summary").await;
    shoot(&b, &dir, "members", 1100).await;
    b.goto(&s.url("/o/acme/roles")).await;
    shoot(&b, &dir, "roles", 1100).await;
    b.goto(&s.url("/o/acme/api-keys")).await;
    b.fill("#f-name", "CI deploys").await;
    b.click("form[method=post][action='/o/acme/api-keys'] button")
        .await;
    b.wait_text("shown only once").await;
    shoot(&b, &dir, "api-keys", 1100).await;

    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("q3-report.txt");
    std::fs::write(&file, "numbers\n").unwrap();
    b.goto(&s.url("/o/acme/files")).await;
    b.set_file("#f-file", &file).await;
    b.click("form[enctype='multipart/form-data'] button").await;
    b.wait_text("q3-report.txt").await;
    shoot(&b, &dir, "files", 1100).await;
    b.goto(&s.url("/o/acme/usage")).await;
    shoot(&b, &dir, "usage", 1100).await;
    b.goto(&s.url("/o/acme/audit")).await;
    shoot(&b, &dir, "audit", 1100).await;
    b.goto(&s.url("/o/acme/settings")).await;
    shoot(&b, &dir, "settings", 1100).await;
    b.goto(&s.url(&format!("/o/acme/tickets/{}", uuid_like())))
        .await;
    shoot(&b, &dir, "not-found", 1100).await;
}

/// A well-formed id that names nothing.
fn uuid_like() -> &'static str {
    "01900000-0000-7000-8000-000000000000"
}
