//! The demo data set (`orgwall seed --demo`, `orgwall serve --demo`).
//!
//! Acme (`acme`, owner alice@acme.test) and Globex (`globex`, owner bob@globex.test),
//! carol@example.test a `member` of both; each org with projects, tickets in several
//! statuses (some assigned), comments and notes whose keys and titles overlap between
//! the orgs. Every demo email is verified; the password is [`DEMO_PASSWORD`].

use crate::access;
use crate::db::Db;
use crate::placement;
use crate::repo::{comments, memberships, notes, orgs, projects, tickets, users};
use orgwall_core::{Email, Error, Result, Slug, TicketStatus, UserId};

/// The demo password.
pub const DEMO_PASSWORD: &str = "orgwall-demo";

/// What `demo` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Seeded {
    /// The data was created.
    Created,
    /// The demo orgs already existed; nothing changed.
    AlreadyPresent,
}

async fn user(db: &Db, email: &str, name: &str, hash: &str) -> Result<UserId> {
    let email = Email::parse(email).map_err(Error::Validation)?;
    Ok(users::create(db, &email, name, hash, true).await?.id)
}

/// Seeds the demo data unless it is already there, every org shared.
pub async fn demo(db: &Db) -> Result<Seeded> {
    demo_placed(db, &[]).await
}

/// Where `serve --demo` places the demo orgs: Acme shared, Globex in a placement of its
/// own: a schema on PostgreSQL, a file of its own on SQLite.
pub fn demo_placements(db: &Db) -> Vec<(&'static str, placement::Kind)> {
    match db.kind() {
        crate::BackendKind::Postgres => vec![("globex", placement::Kind::Schema)],
        crate::BackendKind::Sqlite => vec![("globex", placement::Kind::Database(None))],
    }
}

/// Parses `slug=kind,...` (e.g. `acme=shared,globex=schema`: the tests' combinations).
pub fn parse_placements(s: &str) -> Result<Vec<(&'static str, placement::Kind)>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (slug, kind) = part
            .split_once('=')
            .ok_or_else(|| Error::Validation(format!("{part:?}: expected slug=placement")))?;
        let slug = match slug.trim() {
            "acme" => "acme",
            "globex" => "globex",
            other => {
                return Err(Error::Validation(format!(
                    "{other:?} is not a demo org (acme, globex)"
                )))
            }
        };
        out.push((slug, kind.trim().parse()?));
    }
    Ok(out)
}

/// Seeds the demo data unless it is already there, each demo org placed as `placements`
/// says (unnamed orgs are shared), before any of its data is written.
pub async fn demo_placed(db: &Db, placements: &[(&str, placement::Kind)]) -> Result<Seeded> {
    if orgs::resolve(db, "acme").await.is_ok() {
        return Ok(Seeded::AlreadyPresent);
    }
    let hash = tokio::task::spawn_blocking(|| crate::crypto::hash_password(DEMO_PASSWORD))
        .await
        .map_err(Error::internal)??;
    let alice = user(db, "alice@acme.test", "Alice Anders", &hash).await?;
    let bob = user(db, "bob@globex.test", "Bob Brandt", &hash).await?;
    let carol = user(db, "carol@example.test", "Carol Chen", &hash).await?;

    for (slug, name, owner, flavour) in [
        ("acme", "Acme Corporation", alice, "Acme"),
        ("globex", "Globex Corporation", bob, "Globex"),
    ] {
        let slug = Slug::parse(slug).map_err(Error::Validation)?;
        let (org, scope) = access::create_org(db, owner, name, &slug).await?;
        if let Some((_, kind)) = placements.iter().find(|(s, _)| *s == slug.as_str()) {
            placement::set(db, org.id, kind.clone()).await?;
        }
        let mut tx = db.write(&scope).await?;
        memberships::add(&mut tx, carol, "member").await?;
        let web = projects::create(
            &mut tx,
            "WEB",
            "Website",
            &format!("{flavour} public website"),
        )
        .await?;
        let ops = projects::create(
            &mut tx,
            "OPS",
            "Operations",
            &format!("{flavour} infrastructure"),
        )
        .await?;
        let plan = [
            (
                web.id,
                "Login page is slow",
                Some(owner),
                TicketStatus::InProgress,
            ),
            (
                web.id,
                "Update the privacy policy",
                Some(carol),
                TicketStatus::Open,
            ),
            (
                web.id,
                "Broken link in footer",
                None,
                TicketStatus::Resolved,
            ),
            (
                ops.id,
                "Rotate database credentials",
                Some(owner),
                TicketStatus::Closed,
            ),
            (
                ops.id,
                "Disk almost full on build server",
                Some(carol),
                TicketStatus::Open,
            ),
            (
                ops.id,
                "Quarterly backup restore test",
                None,
                TicketStatus::Open,
            ),
        ];
        for (i, (project_id, title, assignee, status)) in plan.into_iter().enumerate() {
            let t = tickets::create(
                &mut tx,
                tickets::NewTicket {
                    project_id,
                    title,
                    body: &format!("{flavour}: {title} (demo ticket {})", i + 1),
                    assignee_id: assignee,
                },
            )
            .await?;
            let path: &[TicketStatus] = match status {
                TicketStatus::Open => &[],
                TicketStatus::InProgress => &[TicketStatus::InProgress],
                TicketStatus::Resolved => &[TicketStatus::InProgress, TicketStatus::Resolved],
                TicketStatus::Closed => &[
                    TicketStatus::InProgress,
                    TicketStatus::Resolved,
                    TicketStatus::Closed,
                ],
            };
            for s in path {
                tickets::set_status(&mut tx, t.id, *s).await?;
            }
            if i % 2 == 0 {
                comments::add(
                    &mut tx,
                    t.id,
                    &format!("{flavour} looked at this; details in the runbook."),
                )
                .await?;
            }
        }
        for title in [
            "Onboarding checklist",
            "Meeting notes",
            "Incident postmortem",
        ] {
            notes::create(
                &mut tx,
                title,
                &format!("{flavour} internal: {title}. Confidential to {flavour}."),
            )
            .await?;
        }
        tx.commit().await?;
    }
    Ok(Seeded::Created)
}
