//! The scope value: proof of the right to act inside one organization.
//!
//! Its fields are private and its one constructor is crate-private: only the access
//! module (membership verification, API keys, org creation, invitations, named system
//! entries) builds one. Everything else can only read it.

use orgwall_core::{ApiKeyId, Error, OrgId, Permission, PermissionSet, Result, UserId};

/// Who acts inside a scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// A signed-in user (verified member).
    User(UserId),
    /// An organization API key.
    ApiKey(ApiKeyId),
    /// A named system actor (a job kind, an operator command).
    System {
        /// The actor's fixed name, e.g. `job:org_purge`.
        name: &'static str,
    },
    /// A background job running in the org (see [`crate::access::jobs`]): its kind and id, so
    /// whatever it writes (and its audit entry, for the audited kinds) names the job.
    Job {
        /// The job kind, e.g. `export.build`.
        kind: &'static str,
        /// The job.
        id: orgwall_core::JobId,
    },
}

/// Proof of the right to act inside one organization, with the permissions held there.
#[derive(Debug)]
pub struct OrgScope {
    org_id: OrgId,
    principal: Principal,
    permissions: PermissionSet,
    /// The org's request rate limit (its override, else its plan's), read with the
    /// membership so the wall needs no extra query; `None` for system scopes.
    rate_limit_per_minute: Option<u32>,
    /// Whether the access it was built from is still current in the database (see
    /// [`Fresh`]): checked in the first flight of its first transaction.
    fresh: Fresh,
    /// Where its org's data plane lives, once known: read with the access it was built
    /// from, else looked up by its first transaction, and replaced when a stale scope is
    /// verified again (see [`crate::placement`]).
    route: RouteCell,
}

/// A scope's route, shared with the transactions that may learn a newer one.
pub(crate) type RouteCell = std::sync::Arc<std::sync::RwLock<Option<crate::placement::Route>>>;

/// What a scope built from (possibly cached) access depends on, checked against the
/// database's access generations (`access_generations`, bumped in every transaction that
/// changes access) in the very flight of the scope's first transaction on PostgreSQL: a
/// column of the scope prelude, so a warm request still costs one round trip. A stale
/// scope's transaction is rolled back before anything else is sent (a write) or its rows
/// discarded (a read), the cache forgets the org (and user), the principal is verified
/// again from the database, and the flight is sent again; if the access was reduced
/// meanwhile the transaction fails (`not_a_member`, `permission_denied`, 401). So a change
/// committed through any instance takes effect on the very next request to every other
/// instance, whether or not its announcement (`NOTIFY`) has arrived yet. (An org in a
/// database of its own: a scope of one dependency is checked against that database's
/// access mirror, which the changing instance writes before answering; if it cannot,
/// the change is answered 503 and reaches the others with its announcement.)
#[derive(Debug, Clone, Default)]
pub(crate) struct Fresh {
    /// (dependency id, generation it was read at): the org, and the session's user.
    pub(crate) checks: Vec<(uuid::Uuid, i64)>,
    /// The session the scope was reached through, if any.
    pub(crate) session: Option<orgwall_core::SessionId>,
    /// The slug the request named the org by, if it named a slug (the access cache maps
    /// slugs to ids): verified again with the access, so a slug that another org took
    /// meanwhile does not act on the org that held it.
    pub(crate) slug: Option<std::sync::Arc<str>>,
    /// Set once a flight has confirmed the checks: later transactions of the same request
    /// do not check again (the request was authorized when it started).
    pub(crate) confirmed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl OrgScope {
    /// Builds a scope (the access module's constructors only).
    pub(crate) fn new(
        org_id: OrgId,
        principal: Principal,
        permissions: PermissionSet,
        rate_limit_per_minute: Option<u32>,
    ) -> Self {
        OrgScope {
            org_id,
            principal,
            permissions,
            rate_limit_per_minute,
            fresh: Fresh::default(),
            route: RouteCell::default(),
        }
    }

    /// Records where the org's data plane lives, as read with the scope's access.
    pub(crate) fn routed(self, route: crate::placement::Route) -> Self {
        self.set_route(route);
        self
    }

    /// The org's route, if known (db module).
    pub(crate) fn route(&self) -> Option<crate::placement::Route> {
        self.route
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Remembers the org's route (db module, after a lookup).
    pub(crate) fn set_route(&self, route: crate::placement::Route) {
        *self
            .route
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(route);
    }

    /// Forgets the org's route: the next transaction reads it again (db module, when the
    /// directory changed under it).
    pub(crate) fn forget_route(&self) {
        *self
            .route
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// The cell a transaction updates when it learns a newer route (db module).
    pub(crate) fn route_cell(&self) -> RouteCell {
        self.route.clone()
    }

    /// Records that the scope was built from access read at generation `gen` of `dep`
    /// (the access cache's constructor).
    pub(crate) fn depending_on(mut self, dep: uuid::Uuid, gen: i64) -> Self {
        self.fresh.checks.push((dep, gen));
        self
    }

    /// Makes this scope depend on `session` too: its first transaction also checks that
    /// nothing of the session's user changed since the session was read (a revoked session,
    /// logout, password change), on every instance. The HTTP guard calls it.
    pub fn through_session(mut self, session: &crate::identity::sessions::Session) -> Self {
        if self.user_id() == Some(session.user_id) {
            self.fresh.session = Some(session.id);
            self.fresh
                .checks
                .push((session.user_id.uuid(), session.gen));
        }
        self
    }

    /// Records that the request named the org by `slug` (the HTTP guard, for a slug
    /// claim): if the scope's cached access turns out stale, the slug is resolved again
    /// from the database and must still name this org (else the request fails with 503,
    /// to be sent again: the slug moved to another org while it was served).
    pub fn through_slug(mut self, slug: &str) -> Self {
        self.fresh.slug = Some(slug.into());
        self
    }

    /// What the scope's first transaction checks (db module).
    pub(crate) fn fresh(&self) -> &Fresh {
        &self.fresh
    }

    /// The organization.
    pub fn org_id(&self) -> OrgId {
        self.org_id
    }

    /// Who acts.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The permissions held in this organization.
    pub fn permissions(&self) -> PermissionSet {
        self.permissions
    }

    /// The org's requests-per-minute limit, if this scope came from a request.
    pub fn rate_limit_per_minute(&self) -> Option<u32> {
        self.rate_limit_per_minute
    }

    /// Succeeds if `p` is held, else [`Error::PermissionDenied`] naming it.
    pub fn require(&self, p: Permission) -> Result<()> {
        if self.permissions.contains(p) {
            Ok(())
        } else {
            Err(Error::PermissionDenied(p))
        }
    }

    /// The acting user, if a user acts.
    pub fn user_id(&self) -> Option<UserId> {
        match self.principal {
            Principal::User(u) => Some(u),
            _ => None,
        }
    }
}
