//! The benchmark's data set, generated the same way for both backends.
//!
//! N orgs, each with an owner and a member (users), the four system roles, one API key
//! (role `admin`), a few projects and notes, and tickets: `tickets` in all, half of them
//! (`large_share`) in org 0, the large org, the rest spread evenly. Ticket titles and
//! bodies draw from a small vocabulary ([`WORDS`]) so that a one-word search finds a full
//! page after a few hundred rows. Ids are UUIDv7 like the server's own.
//!
//! The generator keeps, per org, a sample of ticket ids spread over its range (the
//! driver's detail reads pick from it), never the whole set.

use chrono::{DateTime, Utc};
use orgwall_core::SystemRole;
use uuid::Uuid;

/// A word in one ticket title in [`RARE_EVERY`] (the first ticket of every org has it):
/// the `search-rare` workload's query, a rare word in a large org (issue 16: its search
/// should cost about what a detail read does).
pub const RARE_WORD: &str = "zephyr";
/// See [`RARE_WORD`].
pub const RARE_EVERY: u64 = 10_000;
/// A word in one ticket title in [`RAREST_EVERY`] (the eighth ticket of every org has it):
/// the `search-rarest` workload's query, a word with fewer hits than a page (5 in an org
/// of 1,000,000 tickets), so its search measures finding the rows, not a page of 50.
pub const RAREST_WORD: &str = "quetzal";
/// See [`RAREST_WORD`].
pub const RAREST_EVERY: u64 = 200_000;

/// Words of ticket titles and bodies; searches ask for one of them.
pub const WORDS: [&str; 16] = [
    "login", "billing", "export", "timeout", "database", "invoice", "search", "upload", "report",
    "network", "cache", "deploy", "email", "password", "latency", "backup",
];

/// The `i`-th word, cycling.
pub fn word(i: usize) -> &'static str {
    WORDS.get(i % WORDS.len()).copied().unwrap_or("ticket")
}

/// Ticket statuses as stored.
pub const STATUSES: [&str; 4] = ["open", "in_progress", "resolved", "closed"];

/// How big the data set is.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Spec {
    /// Organizations.
    pub orgs: usize,
    /// Tickets over all orgs.
    pub tickets: u64,
    /// Share of the tickets in org 0 (the large org).
    pub large_share: f64,
    /// Projects per org.
    pub projects_per_org: usize,
    /// Notes per org at the start.
    pub notes_per_org: usize,
    /// Ticket ids kept per org for the driver.
    pub sample_per_org: usize,
}

impl Spec {
    /// Tickets of org `i`.
    pub fn tickets_of(&self, i: usize) -> u64 {
        if self.orgs <= 1 {
            return self.tickets;
        }
        let large = self.large_tickets();
        let rest = self.tickets - large;
        let others = (self.orgs - 1) as u64;
        if i == 0 {
            large
        } else {
            let base = rest / others;
            let extra = u64::from(((i - 1) as u64) < rest % others);
            base + extra
        }
    }

    /// Tickets of the large org.
    pub fn large_tickets(&self) -> u64 {
        if self.orgs <= 1 {
            return self.tickets;
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let large = (self.tickets as f64 * self.large_share.clamp(0.0, 1.0)) as u64;
        large.min(self.tickets)
    }
}

/// One org of the data set and what the driver needs to act in it.
#[derive(Clone, Debug)]
pub struct Org {
    /// Its id.
    pub id: Uuid,
    /// Its slug (`bench-<i>`).
    pub slug: String,
    /// Owner user.
    pub owner: Uuid,
    /// Member user.
    pub member: Uuid,
    /// Role ids in [`SystemRole::ALL`] order.
    pub roles: Vec<(SystemRole, Uuid)>,
    /// The API key's id.
    pub key_id: Uuid,
    /// The API key (the secret; only its hash is stored).
    pub key: String,
    /// Project ids.
    pub projects: Vec<Uuid>,
    /// Tickets it holds.
    pub tickets: u64,
    /// Some of its ticket ids, spread over the whole range.
    pub sample: Vec<Uuid>,
}

impl Org {
    /// The id of the role `role`.
    pub fn role(&self, role: SystemRole) -> Uuid {
        self.roles
            .iter()
            .find(|(r, _)| *r == role)
            .map_or(Uuid::nil(), |(_, id)| *id)
    }
}

/// A small, fast, deterministic generator (splitmix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`; 0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        #[allow(clippy::cast_possible_truncation)]
        let v = ((u128::from(self.next_u64()) * n as u128) >> 64) as usize;
        v
    }

    /// One of `items` (which must not be empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.below(items.len()))
    }
}

/// The orgs of a data set (everything but tickets and notes, which are streamed).
pub fn orgs(spec: &Spec) -> Vec<Org> {
    (0..spec.orgs)
        .map(|i| Org {
            id: Uuid::now_v7(),
            slug: format!("bench-{i}"),
            owner: Uuid::now_v7(),
            member: Uuid::now_v7(),
            roles: SystemRole::ALL
                .iter()
                .map(|r| (*r, Uuid::now_v7()))
                .collect(),
            key_id: Uuid::now_v7(),
            key: orgwall_store::crypto::new_token(orgwall_store::access::API_KEY_PREFIX),
            projects: (0..spec.projects_per_org.max(1))
                .map(|_| Uuid::now_v7())
                .collect(),
            tickets: spec.tickets_of(i),
            sample: Vec::new(),
        })
        .collect()
}

/// One ticket row.
pub struct Ticket<'a> {
    /// Its org.
    pub org: &'a Org,
    /// Its id.
    pub id: Uuid,
    /// Its project.
    pub project: Uuid,
    /// Title.
    pub title: &'a str,
    /// Body.
    pub body: &'a str,
    /// Status.
    pub status: &'static str,
    /// Assignee (owner, member or none).
    pub assignee: Option<Uuid>,
}

/// Generates every ticket, org by org, calling `f` for each, and fills each org's
/// sample. Deterministic text for a given seed (ids are UUIDv7, so time-based).
pub fn for_each_ticket<E>(
    spec: &Spec,
    orgs: &mut [Org],
    mut f: impl FnMut(&Ticket<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let mut rng = Rng::new(7);
    let mut title = String::with_capacity(64);
    let mut body = String::with_capacity(128);
    for org in orgs.iter_mut() {
        let every = (org.tickets / spec.sample_per_org.max(1) as u64).max(1);
        let mut sample = Vec::with_capacity(spec.sample_per_org.min(4096));
        for j in 0..org.tickets {
            let id = Uuid::now_v7();
            title.clear();
            body.clear();
            let w = |rng: &mut Rng| word(rng.below(WORDS.len()));
            let (a, b, c, d) = (w(&mut rng), w(&mut rng), w(&mut rng), w(&mut rng));
            use std::fmt::Write;
            let _ = write!(title, "{a} {b} problem #{j}");
            if j % RARE_EVERY == 0 {
                let _ = write!(title, " {RARE_WORD}");
            }
            if j % RAREST_EVERY == 7 {
                let _ = write!(title, " {RAREST_WORD}");
            }
            let _ = write!(
                body,
                "Customers report {c} and {d} trouble since the last release; see ticket {j}."
            );
            let assignee = match rng.below(3) {
                0 => None,
                1 => Some(org.owner),
                _ => Some(org.member),
            };
            let t = Ticket {
                org: &*org,
                id,
                project: org
                    .projects
                    .get(rng.below(org.projects.len()))
                    .copied()
                    .unwrap_or_default(),
                title: &title,
                body: &body,
                status: STATUSES
                    .get(rng.below(STATUSES.len()))
                    .copied()
                    .unwrap_or("open"),
                assignee,
            };
            f(&t)?;
            if j % every == 0 && sample.len() < spec.sample_per_org {
                sample.push(id);
            }
        }
        org.sample = sample;
    }
    Ok(())
}

/// The notes of an org at the start: (id, title, body).
pub fn notes(spec: &Spec, org: usize) -> Vec<(Uuid, String, String)> {
    (0..spec.notes_per_org)
        .map(|n| {
            (
                Uuid::now_v7(),
                format!("Note {n} of bench-{org}"),
                format!("Meeting notes {n}: {} and {}", word(n), word(n + 5)),
            )
        })
        .collect()
}

/// The data set's fixed timestamp (everything is created "now").
pub fn created_at() -> DateTime<Utc> {
    Utc::now()
}
