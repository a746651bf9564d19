//! The console's pages and forms over plain HTTP, on both backends: every section renders,
//! form errors land next to their field, invitation failures say why, settings rename,
//! export and delete.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::Server;
use orgwall_testkit::{both, Demo, TestDb};

/// The text of the error shown next to the field `name`, if any.
fn field_error(body: &str, name: &str) -> Option<String> {
    let marker = format!("id=\"f-{name}-error\"");
    let rest = body.split(&marker).nth(1)?;
    let text = rest.split_once('>')?.1.split('<').next()?;
    Some(text.to_owned())
}

both!(every_section_renders, |t: TestDb| async move {
    Demo::load(&t.db).await;
    let s = Server::start(&t.db).await;
    let alice = s.demo_login("alice@acme.test").await;
    for section in [
        "tickets", "projects", "notes", "files", "members", "roles", "api-keys", "audit", "usage",
        "settings",
    ] {
        let p = alice.get(&format!("/o/acme/{section}")).await;
        assert_eq!(p.status, 200, "{section}: {}", p.body);
        assert!(
            p.body.contains("Acme Corporation"),
            "{section}: the switcher"
        );
        assert!(!p.body.contains("Globex"), "{section}");
    }
    // Filters and search.
    let p = alice
        .get("/o/acme/tickets?status=closed&q=credentials")
        .await;
    assert!(p.body.contains("Rotate database credentials"));
    assert!(!p.body.contains("Login page is slow"));
    let p = alice.get("/o/acme/tickets?status=bogus").await;
    assert_eq!(p.status, 422);
    // `/` goes to the active org, the org list lists both of Carol's.
    let carol = s.demo_login("carol@example.test").await;
    assert_eq!(carol.get("/o/globex/tickets").await.status, 200);
    assert_eq!(carol.get("/").await.location(), "/o/globex/tickets");
    let orgs = carol.get("/orgs").await.body;
    assert!(orgs.contains("Acme Corporation") && orgs.contains("/o/globex/tickets"));
});

both!(
    form_errors_are_next_to_their_field,
    |t: TestDb| async move {
        Demo::load(&t.db).await;
        let s = Server::start(&t.db).await;
        let alice = s.demo_login("alice@acme.test").await;

        let r = alice
            .post("/orgs", &[("name", "Another"), ("slug", "acme")])
            .await;
        assert_eq!(r.status, 409);
        assert!(field_error(&r.body, "slug").is_some(), "{}", r.body);
        assert!(
            r.body.contains("value=\"Another\""),
            "the form keeps what was typed"
        );

        let r = alice
            .post("/o/acme/projects", &[("key", "lower"), ("name", "P")])
            .await;
        assert_eq!(r.status, 422);
        assert!(field_error(&r.body, "key").is_some(), "{}", r.body);

        let r = alice
            .post("/o/acme/notes", &[("title", ""), ("body", "text")])
            .await;
        assert_eq!(r.status, 422);
        assert!(field_error(&r.body, "title").is_some(), "{}", r.body);

        let r = alice
            .post(
                "/o/acme/invitations",
                &[("email", "not an email"), ("role", "member")],
            )
            .await;
        assert_eq!(r.status, 422, "{}", r.body);
        assert!(r.body.contains("role=\"alert\""));

        let r = s
            .client()
            .post(s.url("/login"))
            .header("origin", &s.base)
            .form(&[("email", "alice@acme.test"), ("password", "wrong password")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert!(r
            .text()
            .await
            .unwrap()
            .contains("Invalid email or password."));
    }
);

both!(invitation_failures_say_why, |t: TestDb| async move {
    Demo::load(&t.db).await;
    let s = Server::start(&t.db).await;
    let alice = s.demo_login("alice@acme.test").await;
    let r = alice
        .post(
            "/o/acme/invitations",
            &[("email", "bob@globex.test"), ("role", "member")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let link = s
        .email_link("bob@globex.test", "/invitations/accept?token=")
        .await;
    let token = link.split("token=").nth(1).unwrap().to_owned();

    // Carol is not the invited address.
    let carol = s.demo_login("carol@example.test").await;
    let r = carol
        .post("/invitations/accept", &[("token", &token)])
        .await;
    assert_eq!(r.status, 403);
    assert!(
        r.body.contains("sent to another email address"),
        "{}",
        r.body
    );

    // Bob accepts; the second time it is used up.
    let bob = s.demo_login("bob@globex.test").await;
    let page = bob.get(&format!("/invitations/accept?token={token}")).await;
    assert!(page.body.contains("Accept the invitation"));
    let r = bob.post("/invitations/accept", &[("token", &token)]).await;
    assert_eq!(r.location(), "/o/acme/tickets", "{}", r.body);
    let r = bob.post("/invitations/accept", &[("token", &token)]).await;
    assert_eq!(r.status, 404);
    assert!(r.body.contains("already used or revoked"), "{}", r.body);

    // Logged out, the link asks who you are first.
    let anon = s.client().get(&link).send().await.unwrap();
    let body = anon.text().await.unwrap();
    assert!(body.contains("/login?next=%2Finvitations%2Faccept%3Ftoken%3D"));
});

both!(settings_rename_export_delete, |t: TestDb| async move {
    Demo::load(&t.db).await;
    let s = Server::start(&t.db).await;
    let alice = s.demo_login("alice@acme.test").await;

    let r = alice
        .post(
            "/o/acme/settings",
            &[("name", "Acme Ltd"), ("slug", "acme-ltd")],
        )
        .await;
    assert_eq!(r.location(), "/o/acme-ltd/settings", "{}", r.body);
    let p = alice.get("/o/acme-ltd/settings").await;
    assert!(p.body.contains("Acme Ltd"));
    assert_eq!(
        alice.get("/o/acme/tickets").await.status,
        403,
        "the old slug"
    );

    let r = alice.post("/o/acme-ltd/exports", &[]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let export = alice.get(r.location()).await;
    assert_eq!(export.status, 200);
    assert!(export.body.contains("Status: "), "{}", export.body);

    let r = alice
        .post("/o/acme-ltd/settings/delete", &[("confirm", "acme")])
        .await;
    assert_eq!(r.status, 422);
    assert!(field_error(&r.body, "confirm").is_some());
    let r = alice
        .post("/o/acme-ltd/settings/delete", &[("confirm", "acme-ltd")])
        .await;
    assert_eq!(r.location(), "/orgs", "{}", r.body);
    assert_eq!(alice.get("/o/acme-ltd/tickets").await.status, 403);
    assert!(!alice.get("/orgs").await.body.contains("Acme Ltd"));
});
