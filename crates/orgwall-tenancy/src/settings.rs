//! What a transaction states to the database before anything else: its mode and its
//! scope settings (shared by the database handle and both backends).

use orgwall_core::{OrgId, UserId};

/// Whether a transaction may write. Read transactions are `READ ONLY` on PostgreSQL and
/// deferred on SQLite; write transactions take SQLite's write lock up front.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Reads only.
    Read,
    /// Reads and writes.
    Write,
}

/// The scope a transaction states to the database. Only this crate builds one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Settings {
    /// `app.org_id`: the tenant whose rows are visible and writable.
    pub org: Option<OrgId>,
    /// `app.user_id`: lets a user read their own memberships across orgs.
    pub user: Option<UserId>,
    /// `app.lookup`: lets a secret's hash find the one row it names.
    pub lookup: Option<String>,
    /// `app.system`: a named system transaction, which reaches every org's rows of the
    /// one system table of that name (set only by [`crate::Db::system`]).
    pub system: Option<&'static str>,
    /// Access generations the transaction's first flight checks (PostgreSQL; see
    /// [`crate::scope::Fresh`]): (dependency, expected generation).
    pub checks: Vec<(uuid::Uuid, i64)>,
    /// Where the org's data plane lives (PostgreSQL: a placement schema goes first on the
    /// transaction's search path, set in the prelude).
    pub route: crate::placement::Route,
    /// Whether `route` was read from the directory for this transaction (a tenant
    /// transaction): a PostgreSQL write then checks it against the directory after the
    /// org's write fence. Kernel transactions scoped to an org that touch no data plane
    /// (`Settings::org`) leave it unset.
    pub routed: bool,
    /// A read that sends one flight only ([`crate::Db::read_once`]): on PostgreSQL a read
    /// lane carries it (`postgres/lane.rs`); a second flight is refused.
    pub once: bool,
}

impl Settings {
    pub(crate) fn org(org: OrgId) -> Self {
        Settings {
            org: Some(org),
            ..Settings::default()
        }
    }

    /// Lets a secret's hash find the one row it names (`app.lookup`), nothing else.
    pub(crate) fn lookup(hash: String) -> Self {
        Settings {
            lookup: Some(hash),
            ..Settings::default()
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.org.is_none() && self.user.is_none() && self.lookup.is_none() && self.system.is_none()
    }
}
