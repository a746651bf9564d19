//! Permissions (`resource:action`), sets of them, and the four system roles.
//!
//! The catalogue is open: the kernel's own permissions (organization, members, roles, API
//! keys, audit) are always in it, and every registered module adds its own
//! ([`register`], called by the kernel's module catalog). Each permission says which
//! system role is the least powerful one that holds it ([`PermissionDef::lowest`]), so
//! the four system roles get a module's permissions through its registration.
//!
//! A [`PermissionSet`] is a bit set over the registered catalogue, so checking a
//! permission and checking "grants no more than the granter holds"
//! ([`PermissionSet::is_subset_of`]) cannot be fooled by spelling. A permission that is
//! not registered is in no set: it is never granted.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::sync::RwLock;

/// One permission: a `resource:action` name, e.g. `tickets:write`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission(&'static str);

impl Permission {
    /// A permission named `name` (`resource:action`, lowercase letters, digits and `_`).
    /// It grants nothing until it is registered.
    pub const fn new(name: &'static str) -> Permission {
        Permission(name)
    }

    /// The permission's wire name, e.g. `tickets:write`.
    pub const fn as_str(self) -> &'static str {
        self.0
    }

    /// Read the organization.
    pub const ORG_READ: Permission = Permission("org:read");
    /// Rename the organization, change its slug.
    pub const ORG_UPDATE: Permission = Permission("org:update");
    /// Delete the organization.
    pub const ORG_DELETE: Permission = Permission("org:delete");
    /// List members.
    pub const MEMBERS_READ: Permission = Permission("members:read");
    /// Invite members.
    pub const MEMBERS_INVITE: Permission = Permission("members:invite");
    /// Change members' roles.
    pub const MEMBERS_UPDATE: Permission = Permission("members:update");
    /// Remove members.
    pub const MEMBERS_REMOVE: Permission = Permission("members:remove");
    /// List roles.
    pub const ROLES_READ: Permission = Permission("roles:read");
    /// Create, edit and delete custom roles.
    pub const ROLES_MANAGE: Permission = Permission("roles:manage");
    /// Create, list and revoke API keys.
    pub const API_KEYS_MANAGE: Permission = Permission("api_keys:manage");
    /// Read the audit log.
    pub const AUDIT_READ: Permission = Permission("audit:read");
}

/// A registered permission: its name, what it allows, and the least powerful system role
/// that holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PermissionDef {
    /// The permission.
    pub permission: Permission,
    /// One line for people (`GET /v1/permissions`).
    pub description: &'static str,
    /// The least powerful system role that holds it (every more powerful one does too).
    pub lowest: SystemRole,
}

impl PermissionDef {
    /// Defines `permission`, held by `lowest` and every more powerful system role.
    pub const fn new(
        permission: Permission,
        lowest: SystemRole,
        description: &'static str,
    ) -> Self {
        PermissionDef {
            permission,
            description,
            lowest,
        }
    }
}

/// The kernel's own permissions.
pub const KERNEL_PERMISSIONS: &[PermissionDef] = &[
    PermissionDef::new(
        Permission::ORG_READ,
        SystemRole::Viewer,
        "Read the organization",
    ),
    PermissionDef::new(
        Permission::ORG_UPDATE,
        SystemRole::Admin,
        "Rename the organization or change its slug",
    ),
    PermissionDef::new(
        Permission::ORG_DELETE,
        SystemRole::Owner,
        "Delete the organization and all its data",
    ),
    PermissionDef::new(
        Permission::MEMBERS_READ,
        SystemRole::Viewer,
        "List members and their roles",
    ),
    PermissionDef::new(
        Permission::MEMBERS_INVITE,
        SystemRole::Admin,
        "Invite people (with roles whose permissions you hold)",
    ),
    PermissionDef::new(
        Permission::MEMBERS_UPDATE,
        SystemRole::Admin,
        "Change members' roles (to roles whose permissions you hold)",
    ),
    PermissionDef::new(
        Permission::MEMBERS_REMOVE,
        SystemRole::Admin,
        "Remove members",
    ),
    PermissionDef::new(Permission::ROLES_READ, SystemRole::Viewer, "List roles"),
    PermissionDef::new(
        Permission::ROLES_MANAGE,
        SystemRole::Admin,
        "Create, change and delete custom roles",
    ),
    PermissionDef::new(
        Permission::API_KEYS_MANAGE,
        SystemRole::Admin,
        "Create and revoke API keys",
    ),
    PermissionDef::new(
        Permission::AUDIT_READ,
        SystemRole::Admin,
        "Read the audit log",
    ),
];

/// The most permissions a catalogue holds (the width of [`PermissionSet`]).
pub const MAX_PERMISSIONS: usize = 128;

static REGISTRY: RwLock<Vec<PermissionDef>> = RwLock::new(Vec::new());

fn with_registry<T>(f: impl FnOnce(&[PermissionDef]) -> T) -> T {
    {
        // The common case (every request's permission check): one read lock.
        let r = match REGISTRY.read() {
            Ok(r) => r,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !r.is_empty() {
            return f(&r);
        }
    }
    // The kernel's own permissions are always registered, and first.
    let _ = register(KERNEL_PERMISSIONS);
    match REGISTRY.read() {
        Ok(r) => f(&r),
        Err(poisoned) => f(&poisoned.into_inner()),
    }
}

/// Why a registration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// The name is not `resource:action` in lowercase letters, digits and `_`.
    #[error("permission name {0:?} is not resource:action (lowercase letters, digits, _)")]
    BadName(&'static str),
    /// Registered before with another lowest role.
    #[error("permission {0} is registered twice with different system roles")]
    Conflict(&'static str),
    /// More than [`MAX_PERMISSIONS`].
    #[error("more than {MAX_PERMISSIONS} permissions registered")]
    Full,
}

fn well_formed(name: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    matches!(name.split_once(':'), Some((r, a)) if part(r) && part(a))
}

/// Adds `defs` to the process's catalogue (idempotent: a permission registered again with
/// the same role is a no-op). Called by the kernel when a module is registered.
pub fn register(defs: &[PermissionDef]) -> Result<(), RegisterError> {
    let mut reg = match REGISTRY.write() {
        Ok(r) => r,
        Err(poisoned) => poisoned.into_inner(),
    };
    let kernel_first = reg.is_empty() && !std::ptr::eq(defs, KERNEL_PERMISSIONS);
    let all: Vec<PermissionDef> = if kernel_first {
        KERNEL_PERMISSIONS.iter().chain(defs).copied().collect()
    } else {
        defs.to_vec()
    };
    for d in &all {
        if !well_formed(d.permission.0) {
            return Err(RegisterError::BadName(d.permission.0));
        }
        match reg.iter().find(|r| r.permission == d.permission) {
            Some(r) if r.lowest != d.lowest => return Err(RegisterError::Conflict(d.permission.0)),
            Some(_) => {}
            None if reg.len() >= MAX_PERMISSIONS => return Err(RegisterError::Full),
            None => reg.push(*d),
        }
    }
    Ok(())
}

/// Every registered permission, in registration order (the kernel's first).
pub fn catalogue() -> Vec<PermissionDef> {
    with_registry(<[PermissionDef]>::to_vec)
}

fn index_of(p: Permission) -> Option<usize> {
    with_registry(|r| r.iter().position(|d| d.permission == p))
}

/// A string that names no registered permission.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown permission {0:?}")]
pub struct UnknownPermission(pub String);

impl FromStr for Permission {
    type Err = UnknownPermission;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        with_registry(|r| {
            r.iter()
                .find(|d| d.permission.0 == s)
                .map(|d| d.permission)
                .ok_or_else(|| UnknownPermission(s.chars().take(64).collect()))
        })
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Permission {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Permission {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A set of registered permissions.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PermissionSet(u128);

impl PermissionSet {
    /// No permission at all.
    pub const EMPTY: PermissionSet = PermissionSet(0);

    /// Every registered permission.
    pub fn all() -> Self {
        catalogue().into_iter().map(|d| d.permission).collect()
    }

    /// Whether `p` is in the set (never, for an unregistered permission).
    pub fn contains(self, p: Permission) -> bool {
        index_of(p).is_some_and(|i| self.0 & (1u128 << i) != 0)
    }

    /// Adds `p` (an unregistered permission is not added: it could grant nothing).
    pub fn insert(&mut self, p: Permission) {
        if let Some(i) = index_of(p) {
            self.0 |= 1u128 << i;
        }
    }

    /// Removes `p`.
    pub fn remove(&mut self, p: Permission) {
        if let Some(i) = index_of(p) {
            self.0 &= !(1u128 << i);
        }
    }

    /// Whether every permission of `self` is also in `other` (the granting rule: nobody
    /// grants what they do not hold).
    pub const fn is_subset_of(self, other: PermissionSet) -> bool {
        self.0 & !other.0 == 0
    }

    /// The permissions of `self` missing from `other`.
    pub fn missing_from(self, other: PermissionSet) -> PermissionSet {
        PermissionSet(self.0 & !other.0)
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The permissions in catalogue order.
    pub fn iter(self) -> impl Iterator<Item = Permission> {
        catalogue()
            .into_iter()
            .enumerate()
            .filter(move |(i, _)| self.0 & (1u128 << i) != 0)
            .map(|(_, d)| d.permission)
    }

    /// Parses the storage form: permission names separated by spaces.
    pub fn parse_list(s: &str) -> Result<Self, UnknownPermission> {
        s.split_whitespace().map(str::parse).collect()
    }

    /// Parses a stored list, leaving out names that are no longer registered (a module
    /// removed from the service): they grant nothing.
    pub fn parse_stored(s: &str) -> Self {
        s.split_whitespace()
            .filter_map(|n| n.parse::<Permission>().ok())
            .collect()
    }

    /// The storage form: names in catalogue order, separated by single spaces.
    pub fn to_list(self) -> String {
        self.iter()
            .map(Permission::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl FromIterator<Permission> for PermissionSet {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        let mut s = PermissionSet::EMPTY;
        for p in iter {
            s.insert(p);
        }
        s
    }
}

impl fmt::Debug for PermissionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Permission::as_str))
            .finish()
    }
}

impl Serialize for PermissionSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for PermissionSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Vec::<Permission>::deserialize(d)?;
        Ok(v.into_iter().collect())
    }
}

/// The four roles every organization is created with. They cannot be edited or deleted.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum SystemRole {
    /// Everything.
    Owner,
    /// Everything but `org:delete`; cannot act on owners.
    Admin,
    /// Reads the org, members and roles; reads and writes the workspace; reads usage.
    Member,
    /// Read-only.
    Viewer,
}

impl SystemRole {
    /// The four, most powerful first.
    pub const ALL: [SystemRole; 4] = [
        SystemRole::Owner,
        SystemRole::Admin,
        SystemRole::Member,
        SystemRole::Viewer,
    ];

    /// The role's key (`owner`, `admin`, `member`, `viewer`).
    pub const fn key(self) -> &'static str {
        match self {
            SystemRole::Owner => "owner",
            SystemRole::Admin => "admin",
            SystemRole::Member => "member",
            SystemRole::Viewer => "viewer",
        }
    }

    /// The role named by `key`, if it is a system role.
    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.key() == key)
    }

    /// The role's display name.
    pub const fn display_name(self) -> &'static str {
        match self {
            SystemRole::Owner => "Owner",
            SystemRole::Admin => "Admin",
            SystemRole::Member => "Member",
            SystemRole::Viewer => "Viewer",
        }
    }

    /// The role's permissions: every registered permission whose lowest role is this
    /// one or a less powerful one (the four are nested: viewer within member within admin
    /// within owner).
    pub fn permissions(self) -> PermissionSet {
        catalogue()
            .into_iter()
            .filter(|d| d.lowest.rank() >= self.rank())
            .map(|d| d.permission)
            .collect()
    }

    /// 0 for the owner, 3 for the viewer.
    const fn rank(self) -> u8 {
        match self {
            SystemRole::Owner => 0,
            SystemRole::Admin => 1,
            SystemRole::Member => 2,
            SystemRole::Viewer => 3,
        }
    }
}

/// The permissions a role grants: a system role's are computed from the registered
/// catalogue (so a module's permissions reach every org's system roles the moment it is
/// registered); a custom role's are its stored list, less any name no longer registered.
/// (System role keys are reserved: a custom role cannot take one.)
pub fn role_permissions(key: &str, stored: &str) -> PermissionSet {
    match SystemRole::from_key(key) {
        Some(role) => role.permissions(),
        None => PermissionSet::parse_stored(stored),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const WIDGETS_READ: Permission = Permission::new("widgets:read");
    const WIDGETS_WRITE: Permission = Permission::new("widgets:write");

    fn widgets() {
        register(&[
            PermissionDef::new(WIDGETS_READ, SystemRole::Viewer, "Read widgets"),
            PermissionDef::new(WIDGETS_WRITE, SystemRole::Member, "Write widgets"),
        ])
        .unwrap();
    }

    fn any_set() -> impl Strategy<Value = PermissionSet> {
        widgets();
        let all: Vec<Permission> = catalogue().into_iter().map(|d| d.permission).collect();
        let n = all.len();
        proptest::collection::vec(0..n, 0..30)
            .prop_map(move |ix| ix.into_iter().map(|i| all[i]).collect())
    }

    #[test]
    fn catalogue_names_round_trip() {
        widgets();
        for d in catalogue() {
            assert_eq!(
                d.permission.as_str().parse::<Permission>(),
                Ok(d.permission)
            );
        }
        assert!("tickets:admin".parse::<Permission>().is_err());
        assert!("ORG:READ".parse::<Permission>().is_err());
    }

    #[test]
    fn registration_extends_the_catalogue_and_the_system_roles() {
        widgets();
        assert!(SystemRole::Viewer.permissions().contains(WIDGETS_READ));
        assert!(!SystemRole::Viewer.permissions().contains(WIDGETS_WRITE));
        assert!(SystemRole::Member.permissions().contains(WIDGETS_WRITE));
        assert!(PermissionSet::all().contains(WIDGETS_WRITE));
        // Idempotent; a conflicting level or a bad name is refused.
        widgets();
        assert_eq!(
            register(&[PermissionDef::new(WIDGETS_READ, SystemRole::Owner, "x")]),
            Err(RegisterError::Conflict("widgets:read"))
        );
        assert_eq!(
            register(&[PermissionDef::new(
                Permission::new("Widgets"),
                SystemRole::Owner,
                "x"
            )]),
            Err(RegisterError::BadName("Widgets"))
        );
    }

    #[test]
    fn unregistered_permissions_are_never_granted() {
        let ghost = Permission::new("ghosts:haunt");
        let mut s = PermissionSet::all();
        s.insert(ghost);
        assert!(!s.contains(ghost));
        assert!("ghosts:haunt".parse::<Permission>().is_err());
        assert_eq!(
            PermissionSet::parse_stored("org:read ghosts:haunt"),
            [Permission::ORG_READ].into_iter().collect()
        );
    }

    #[test]
    fn system_roles_are_nested() {
        widgets();
        let [o, a, m, v] = SystemRole::ALL.map(SystemRole::permissions);
        assert!(v.is_subset_of(m) && m.is_subset_of(a) && a.is_subset_of(o));
        assert!(!a.contains(Permission::ORG_DELETE));
        assert!(o.contains(Permission::ORG_DELETE));
        assert!(!v.contains(WIDGETS_WRITE));
        assert!(!m.contains(Permission::MEMBERS_INVITE));
    }

    proptest! {
        #[test]
        fn list_form_round_trips(s in any_set()) {
            prop_assert_eq!(PermissionSet::parse_list(&s.to_list()), Ok(s));
        }

        #[test]
        fn subset_matches_set_semantics(a in any_set(), b in any_set()) {
            let naive = a.iter().all(|p| b.contains(p));
            prop_assert_eq!(a.is_subset_of(b), naive);
            prop_assert!(a.missing_from(b).iter().all(|p| a.contains(p) && !b.contains(p)));
        }

        #[test]
        fn unknown_names_never_parse(s in "[a-z_]{1,10}:[a-z_]{1,10}") {
            let known = catalogue().iter().any(|d| d.permission.as_str() == s);
            prop_assert_eq!(s.parse::<Permission>().is_ok(), known);
        }
    }
}
