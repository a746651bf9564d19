//! Every cold API key request to the ticket detail, against a model of the wall: each
//! key (live, revoked, of either org, with or without `tickets:read`) x each way of
//! naming the org (its id or slug in the path, its id in the header, none) x each org's
//! ticket, with the access cache off so that every request is a cold key's and, where the
//! org is named by id on PostgreSQL, carries its read in the lookup's flight
//! (`orgwall_tenancy::ahead`). The answer is the model's, and nothing of a ticket reaches
//! a request that may not read it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use orgwall_core::{OrgId, PermissionSet};
use orgwall_store::access::OrgScope;
use orgwall_store::repo::{api_keys, roles};
use orgwall_testkit::{both, Demo, TestDb, TestServer};

struct Key {
    token: String,
    org: OrgId,
    live: bool,
    reads_tickets: bool,
}

async fn key(t: &TestDb, scope: &OrgScope, role: &str, live: bool, reads: bool) -> Key {
    let mut tx = t.db.write(scope).await.unwrap();
    let (k, token) = api_keys::create(&mut tx, "cold", role, None).await.unwrap();
    if !live {
        api_keys::revoke(&mut tx, k.id).await.unwrap();
    }
    tx.commit().await.unwrap();
    Key {
        token,
        org: scope.org_id(),
        live,
        reads_tickets: reads,
    }
}

/// How a request names its org.
#[derive(Clone, Copy, Debug)]
enum Claim {
    PathId(OrgId),
    PathSlug(OrgId, &'static str),
    Header(OrgId),
    Nothing,
}

/// The wall's answer: status and problem code (`None`: the ticket).
fn model(k: &Key, claim: Claim, ticket_org: OrgId) -> (u16, Option<&'static str>) {
    if !k.live {
        return (401, Some("unauthenticated"));
    }
    let org = match claim {
        Claim::PathId(o) | Claim::PathSlug(o, _) | Claim::Header(o) => o,
        Claim::Nothing => k.org,
    };
    if org != k.org {
        return (403, Some("not_a_member"));
    }
    if !k.reads_tickets {
        return (403, Some("permission_denied"));
    }
    if ticket_org != org {
        return (404, Some("not_found"));
    }
    (200, None)
}

both!(
    every_cold_key_request_answers_as_the_wall_says,
    |t: TestDb| async move {
        let d = Demo::load(&t.db).await;
        let s = TestServer::start(&t.db).await;
        t.db.set_access_cache(false);
        let alice = d.alice_in_acme(&t.db).await;
        let bob = d.bob_in_globex(&t.db).await;
        let mut tx = t.db.write(&alice).await.unwrap();
        roles::create(
            &mut tx,
            "auditor",
            "Auditor",
            PermissionSet::from_iter([orgwall_store::perms::PROJECTS_READ]),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let keys = [
            key(&t, &alice, "member", true, true).await,
            key(&t, &alice, "auditor", true, false).await,
            key(&t, &alice, "member", false, true).await,
            key(&t, &bob, "member", true, true).await,
        ];
        // Each org's first ticket, with its title (which no refused answer may hold).
        let owner = s.demo_login("alice@acme.test").await;
        let mut tickets = Vec::new();
        for (org, slug) in [(d.acme, "acme"), (d.globex, "globex")] {
            let token = match slug {
                "acme" => owner.clone(),
                _ => s.demo_login("bob@globex.test").await,
            };
            let r = s
                .get(&format!("/v1/orgs/{slug}/tickets?limit=1"), &token)
                .await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            let it = &r.body["items"][0];
            tickets.push((
                org,
                it["id"].as_str().unwrap().to_owned(),
                it["title"].as_str().unwrap().to_owned(),
            ));
        }
        let claims = [
            Claim::PathId(d.acme),
            Claim::PathId(d.globex),
            Claim::PathSlug(d.acme, "acme"),
            Claim::PathSlug(d.globex, "globex"),
            Claim::Header(d.acme),
            Claim::Header(d.globex),
            Claim::Nothing,
        ];
        let mut served = 0;
        for k in &keys {
            for claim in claims {
                for (ticket_org, id, title) in &tickets {
                    let (path, header) = match claim {
                        Claim::PathId(o) => (format!("/v1/orgs/{o}/tickets/{id}"), None),
                        Claim::PathSlug(_, slug) => (format!("/v1/orgs/{slug}/tickets/{id}"), None),
                        Claim::Header(o) => (format!("/v1/tickets/{id}"), Some(o.to_string())),
                        Claim::Nothing => (format!("/v1/tickets/{id}"), None),
                    };
                    let headers: Vec<(&str, &str)> = header
                        .as_deref()
                        .map(|h| ("x-organization-id", h))
                        .into_iter()
                        .collect();
                    let r = s.call("GET", &path, Some(&k.token), &headers, None).await;
                    let (status, code) = model(k, claim, *ticket_org);
                    let what = format!("{claim:?}, ticket of {ticket_org}, key of {}", k.org);
                    assert_eq!(r.status, status, "{what}: {:?}", r.body);
                    match code {
                        Some(code) => {
                            assert_eq!(r.body["code"].as_str(), Some(code), "{what}");
                            let text = r.body.to_string();
                            for (_, _, title) in &tickets {
                                assert!(!text.contains(title.as_str()), "{what}: {text}");
                            }
                        }
                        None => {
                            served += 1;
                            assert_eq!(r.body["id"].as_str(), Some(id.as_str()), "{what}");
                            assert_eq!(r.body["title"].as_str(), Some(title.as_str()), "{what}");
                        }
                    }
                }
            }
        }
        // Each live reader's own ticket through each of the four ways to name its org.
        assert_eq!(served, 8);
    }
);
