//! The console in a real headless Chromium (see `orgwall_testkit::browser`): the whole
//! journey of two new users, and the walls as a browser meets them. Skipped when no
//! browser is installed unless `ORGWALL_TEST_REQUIRE_BROWSER` is set (as `scripts/test`
//! and `.ci/run` do).

mod common;

use common::Server;
use orgwall_store::BackendKind;
use orgwall_testkit::browser::Browser;
use orgwall_testkit::{Demo, TestDb};
use serde_json::json;

const PASSWORD: &str = "a long enough password";

async fn log_in(b: &Browser, s: &Server, email: &str, password: &str) {
    b.goto(&s.url("/login")).await;
    b.fill("#f-email", email).await;
    b.fill("#f-password", password).await;
    b.click("main form button[type=submit]").await;
    b.wait_text("Log out").await;
}

async fn log_out(b: &Browser) {
    b.click("form[method=post][action='/logout'] button").await;
    b.wait_text("Log in").await;
    assert!(b.url().await.ends_with("/login"));
}

async fn sign_up(b: &Browser, name: &str, email: &str) {
    b.fill("#f-name", name).await;
    b.fill("#f-email", email).await;
    b.fill("#f-password", PASSWORD).await;
    b.click("main form button[type=submit]").await;
    b.wait_text("Log out").await;
}

/// Opens the newest verification link sent to `email` and confirms.
async fn verify(b: &Browser, s: &Server, email: &str) {
    let link = s.email_link(email, "/verify-email?token=").await;
    b.goto(&link).await;
    b.click("main form button[type=submit]").await;
    b.wait_text("Your email address is confirmed.").await;
}

/// Sign up, verify through the email link, create an org, invite a second user who
/// accepts through the email link, a ticket through its workflow with a comment, a file
/// up and down, a role change that takes controls away, switching orgs, revoking a key,
/// logging out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journey() {
    orgwall_testkit::init_logs();
    let Some(b) = Browser::start().await else {
        return;
    };
    let t = TestDb::new(BackendKind::Postgres).await;
    let s = Server::start(&t.db).await;

    // Dana signs up; the console says her address is not confirmed yet.
    b.goto(&s.url("/")).await;
    assert!(b.url().await.ends_with("/login"));
    b.click("a[href^='/signup']").await;
    sign_up(&b, "Dana Diaz", "dana@initech.test").await;
    b.wait_text("not confirmed yet").await;
    verify(&b, &s, "dana@initech.test").await;

    // Her organization, a project, an invitation and an API key.
    b.goto(&s.url("/orgs")).await;
    b.fill("#f-name", "Initech").await;
    b.fill("#f-slug", "initech").await;
    b.click("form[method=post][action='/orgs'] button").await;
    b.wait_text("New ticket").await;
    assert!(b.url().await.ends_with("/o/initech/tickets"));
    b.goto(&s.url("/o/initech/projects")).await;
    b.fill("#f-key", "APP").await;
    b.fill("#f-name", "The app").await;
    b.click("form[method=post][action='/o/initech/projects'] button")
        .await;
    b.wait_text("Tickets of this project").await;
    b.goto(&s.url("/o/initech/members")).await;
    b.fill("#f-email", "evan@initech.test").await;
    b.choose("#f-role", "member").await;
    b.click("form[method=post][action='/o/initech/invitations'] button")
        .await;
    b.wait_text("evan@initech.test").await;
    assert!(b
        .text_of("#invitations")
        .await
        .contains("evan@initech.test"));
    b.goto(&s.url("/o/initech/api-keys")).await;
    b.fill("#f-name", "deploy bot").await;
    b.click("form[method=post][action='/o/initech/api-keys'] button")
        .await;
    let key = b.text_of("#new-key").await;
    assert!(key.starts_with("owk_"), "{key}");
    // The copy button is there with the script (and hidden without it).
    let copy_visible = b
        .script(
            "return !document.querySelector('[data-copy]').hidden",
            json!([]),
        )
        .await;
    assert_eq!(copy_visible, json!(true));
    b.goto(&s.url("/o/initech/api-keys")).await;
    assert!(!b.source().await.contains(&key), "a key is shown only once");

    // A ticket through its workflow: only the allowed moves are offered.
    b.goto(&s.url("/o/initech/tickets")).await;
    b.fill("#f-title", "Printer on fire").await;
    b.fill("#f-body", "Third floor.").await;
    b.click("form[method=post][action='/o/initech/tickets'] button")
        .await;
    b.wait_text("Workflow").await;
    let ticket_url = b.url().await;
    let mut from = "Open";
    for (to, label) in [
        ("in_progress", "In progress"),
        ("resolved", "Resolved"),
        ("closed", "Closed"),
        ("open", "Open"),
    ] {
        let offered: Vec<String> = b
            .script(
                "return [...document.querySelectorAll('button[data-status]')].map(b => b.dataset.status)",
                json!([]),
            )
            .await
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        assert!(
            offered.contains(&to.to_owned()),
            "{to} not offered: {offered:?}"
        );
        if to == "in_progress" {
            assert_eq!(offered, vec!["in_progress"], "from open only in_progress");
        }
        b.click(&format!("button[data-status='{to}']")).await;
        b.wait_text(&format!("from {from} to {label}")).await;
        from = label;
    }
    assert!(b.text_of(".history").await.contains("from Closed to Open"));
    b.fill("#f-comment", "Extinguisher is on its way.").await;
    b.click("form[method=post][action$='/comments'] button")
        .await;
    b.wait_text("Extinguisher is on its way.").await;

    // A file up and down.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("floor-plan.txt");
    std::fs::write(&path, "room 3F-12\n").unwrap();
    b.goto(&s.url("/o/initech/files")).await;
    assert!(b.text_of("#storage").await.contains("Largest upload"));
    b.set_file("#f-file", &path).await;
    b.click("form[enctype='multipart/form-data'] button").await;
    b.wait_text("floor-plan.txt").await;
    let href = b
        .script(
            "return document.querySelector('a[download]').getAttribute('href')",
            json!([]),
        )
        .await;
    let (status, body) = b.fetch(href.as_str().unwrap()).await;
    assert_eq!((status, body.as_str()), (200, "room 3F-12\n"));
    log_out(&b).await;

    // Evan follows the invitation link: signs up on the way, is told to confirm his
    // address first, confirms, and accepts.
    let invite = s
        .email_link("evan@initech.test", "/invitations/accept?token=")
        .await;
    b.goto(&invite).await;
    b.click("a[href^='/signup']").await;
    sign_up(&b, "Evan Ellis", "evan@initech.test").await;
    b.wait_text("You are invited").await;
    b.click("main form button[type=submit]").await;
    b.wait_text("Confirm your email address first").await;
    verify(&b, &s, "evan@initech.test").await;
    b.goto(&invite).await;
    b.click("main form button[type=submit]").await;
    b.wait_text("New ticket").await;
    assert!(b.url().await.ends_with("/o/initech/tickets"));
    b.goto(&ticket_url).await;
    b.wait_text("Workflow").await;
    log_out(&b).await;

    // Dana makes Evan a viewer...
    log_in(&b, &s, "dana@initech.test", PASSWORD).await;
    b.goto(&s.url("/o/initech/members")).await;
    let evan_form = "tr[data-email='evan@initech.test'] form[method=post][action$='/role']";
    b.choose(&format!("{evan_form} select"), "viewer").await;
    b.click(&format!("{evan_form} button")).await;
    b.wait_until(
        "const s = document.querySelector(\"tr[data-email='evan@initech.test'] select\"); \
         return !!s && s.value === 'viewer' && !document.querySelector('form[aria-busy]')",
    )
    .await;
    // ... and revokes the key, which stops working at once.
    b.goto(&s.url("/o/initech/api-keys")).await;
    b.click("#keys form button").await;
    b.wait_text("revoked").await;
    let r = reqwest::Client::new()
        .get(s.url("/v1/orgs/initech/tickets"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    log_out(&b).await;

    // Evan's controls are gone.
    log_in(&b, &s, "evan@initech.test", PASSWORD).await;
    b.goto(&s.url("/o/initech/tickets")).await;
    b.wait_text("Tickets").await;
    assert!(b.try_find("#new-ticket").await.is_none());
    b.goto(&ticket_url).await;
    b.wait_text("History").await;
    assert!(b.try_find("button[data-status]").await.is_none());
    assert!(b.try_find("#f-comment").await.is_none());
    assert!(!b.text().await.contains("Workflow"));

    // He creates an org of his own and switches between the two; `/` remembers.
    b.goto(&s.url("/orgs")).await;
    b.fill("#f-name", "Evan & Co").await;
    b.fill("#f-slug", "evan-co").await;
    b.click("form[method=post][action='/orgs'] button").await;
    b.wait_text("New ticket").await;
    b.click(".switcher summary").await;
    let switcher = b.text_of(".switcher nav").await;
    assert!(
        switcher.contains("Initech") && switcher.contains("Evan & Co"),
        "{switcher}"
    );
    b.click(".switcher a[href='/o/initech/tickets']").await;
    b.wait_text("Tickets").await;
    assert!(b.url().await.ends_with("/o/initech/tickets"));
    assert!(b.text_of(".switcher summary").await.contains("viewer"));
    b.goto(&s.url("/")).await;
    b.wait_text("Tickets").await;
    assert!(b.url().await.ends_with("/o/initech/tickets"));

    // Logged out, the console is closed.
    log_out(&b).await;
    b.goto(&ticket_url).await;
    b.wait_text("Log in").await;
    assert!(b.url().await.contains("/login?next="));
}

/// Logged in as Alice (Acme): every console URL with a Globex id is the 404 page and
/// shows no Globex text; a `<script>` title is text; a form without its CSRF token is
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walls_in_the_browser() {
    orgwall_testkit::init_logs();
    let Some(b) = Browser::start().await else {
        return;
    };
    let t = TestDb::new(BackendKind::Sqlite).await;
    let demo = Demo::load(&t.db).await;
    let s = Server::start(&t.db).await;
    let g = common::globex_ids(&s, &demo).await;

    log_in(&b, &s, "alice@acme.test", "orgwall-demo").await;
    for path in common::foreign_urls("acme", &g) {
        b.goto(&s.url(&path)).await;
        let text = b.text().await;
        let source = b.source().await;
        assert!(
            text.contains("Not found") && text.contains("Error 404"),
            "{path}: {text}"
        );
        for secret in &g.secrets {
            assert!(!source.contains(secret.as_str()), "{path} shows {secret}");
        }
    }
    // Globex itself, by slug: refused, without naming it.
    b.goto(&s.url("/o/globex/tickets")).await;
    let text = b.text().await;
    assert!(text.contains("Error 403"), "{text}");
    assert!(!b.source().await.to_lowercase().contains("globex"));

    // A ticket titled with markup is shown as text.
    let evil = "<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned = 2\">";
    b.goto(&s.url("/o/acme/tickets")).await;
    b.fill("#f-title", evil).await;
    b.click("form[method=post][action='/o/acme/tickets'] button")
        .await;
    b.wait_text("Workflow").await;
    assert_eq!(b.text_of("#ticket-title").await, evil);
    assert_eq!(
        b.script("return window.__pwned === undefined", json!([]))
            .await,
        json!(true)
    );
    assert_eq!(
        b.script(
            "return document.querySelectorAll('main script, main img').length",
            json!([])
        )
        .await,
        json!(0)
    );

    // A form posted without its CSRF token is refused, and nothing is created.
    b.goto(&s.url("/o/acme/notes")).await;
    b.fill("#f-title", "forged note").await;
    b.script(
        "document.querySelector(\"form[method=post][action='/o/acme/notes'] input[name=csrf]\").remove()",
        json!([]),
    )
    .await;
    b.click("form[method=post][action='/o/acme/notes'] button")
        .await;
    b.wait_text("Error 403").await;
    b.goto(&s.url("/o/acme/notes")).await;
    assert!(!b.text().await.contains("forged note"));
}
