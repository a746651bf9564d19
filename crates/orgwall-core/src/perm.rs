//! Permissions (`resource:action`), sets of them, and the four system roles.
//!
//! A [`PermissionSet`] is a bit set over the fixed catalogue, so checking a permission and
//! checking "grants no more than the granter holds" ([`PermissionSet::is_subset_of`]) are
//! single instructions and cannot be fooled by spelling.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

macro_rules! permissions {
    ($($variant:ident = $text:literal),* $(,)?) => {
        /// One permission of the catalogue.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
        #[repr(u8)]
        pub enum Permission { $($variant),* }

        impl Permission {
            /// Every permission, in catalogue order.
            pub const ALL: &'static [Permission] = &[$(Permission::$variant),*];

            /// The permission's wire name, e.g. `tickets:write`.
            pub const fn as_str(self) -> &'static str {
                match self { $(Permission::$variant => $text),* }
            }
        }

        impl FromStr for Permission {
            type Err = UnknownPermission;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Permission::$variant),)*
                    _ => Err(UnknownPermission(s.chars().take(64).collect())),
                }
            }
        }
    };
}

permissions! {
    OrgRead = "org:read",
    OrgUpdate = "org:update",
    OrgDelete = "org:delete",
    MembersRead = "members:read",
    MembersInvite = "members:invite",
    MembersUpdate = "members:update",
    MembersRemove = "members:remove",
    RolesRead = "roles:read",
    RolesManage = "roles:manage",
    ApiKeysManage = "api_keys:manage",
    ProjectsRead = "projects:read",
    ProjectsWrite = "projects:write",
    TicketsRead = "tickets:read",
    TicketsWrite = "tickets:write",
    TicketsDelete = "tickets:delete",
    CommentsWrite = "comments:write",
    NotesRead = "notes:read",
    NotesWrite = "notes:write",
    NotesDelete = "notes:delete",
    FilesRead = "files:read",
    FilesWrite = "files:write",
    FilesDelete = "files:delete",
    AuditRead = "audit:read",
    ExportsCreate = "exports:create",
    UsageRead = "usage:read",
}

/// A string that names no permission of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown permission {0:?}")]
pub struct UnknownPermission(pub String);

impl fmt::Display for Permission {
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

/// A set of permissions.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PermissionSet(u32);

impl PermissionSet {
    /// No permission at all.
    pub const EMPTY: PermissionSet = PermissionSet(0);

    /// Every permission of the catalogue.
    pub fn all() -> Self {
        Self::from_iter(Permission::ALL.iter().copied())
    }

    /// Whether `p` is in the set.
    pub const fn contains(self, p: Permission) -> bool {
        self.0 & (1 << p as u8) != 0
    }

    /// Adds `p`.
    pub fn insert(&mut self, p: Permission) {
        self.0 |= 1 << p as u8;
    }

    /// Removes `p`.
    pub fn remove(&mut self, p: Permission) {
        self.0 &= !(1 << p as u8);
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
        Permission::ALL
            .iter()
            .copied()
            .filter(move |p| self.contains(*p))
    }

    /// Parses the storage form: permission names separated by spaces.
    pub fn parse_list(s: &str) -> Result<Self, UnknownPermission> {
        s.split_whitespace().map(str::parse).collect()
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

    /// The role's permissions.
    pub fn permissions(self) -> PermissionSet {
        use Permission::*;
        match self {
            SystemRole::Owner => PermissionSet::all(),
            SystemRole::Admin => {
                let mut s = PermissionSet::all();
                s.remove(OrgDelete);
                s
            }
            SystemRole::Member => [
                OrgRead,
                MembersRead,
                RolesRead,
                ProjectsRead,
                ProjectsWrite,
                TicketsRead,
                TicketsWrite,
                CommentsWrite,
                NotesRead,
                NotesWrite,
                FilesRead,
                FilesWrite,
                UsageRead,
            ]
            .into_iter()
            .collect(),
            SystemRole::Viewer => [
                OrgRead,
                MembersRead,
                RolesRead,
                ProjectsRead,
                TicketsRead,
                NotesRead,
                FilesRead,
                UsageRead,
            ]
            .into_iter()
            .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_set() -> impl Strategy<Value = PermissionSet> {
        proptest::collection::vec(0..Permission::ALL.len(), 0..30)
            .prop_map(|ix| ix.into_iter().map(|i| Permission::ALL[i]).collect())
    }

    #[test]
    fn catalogue_names_round_trip() {
        assert_eq!(Permission::ALL.len(), 25);
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>(), Ok(*p));
        }
        assert!("tickets:admin".parse::<Permission>().is_err());
        assert!("TICKETS:READ".parse::<Permission>().is_err());
    }

    #[test]
    fn system_roles_are_nested() {
        let [o, a, m, v] = SystemRole::ALL.map(SystemRole::permissions);
        assert!(v.is_subset_of(m) && m.is_subset_of(a) && a.is_subset_of(o));
        assert!(!a.contains(Permission::OrgDelete));
        assert!(!v.contains(Permission::TicketsWrite));
        assert!(!m.contains(Permission::TicketsDelete));
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
            let known = Permission::ALL.iter().any(|p| p.as_str() == s);
            prop_assert_eq!(s.parse::<Permission>().is_ok(), known);
        }
    }
}
