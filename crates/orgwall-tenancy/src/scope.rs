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
        }
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
