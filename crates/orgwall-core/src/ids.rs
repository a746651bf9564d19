//! Entity ids: UUIDv7 (time-ordered, so keyset pagination by id follows creation order),
//! each entity with its own type.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! id_type {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered id (UUIDv7).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
            /// Wraps an existing UUID (from the database or a parsed string).
            pub const fn from_uuid(u: Uuid) -> Self {
                Self(u)
            }
            /// The UUID inside.
            pub const fn uuid(self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }
    )*};
}

id_type!(
    /// An organization (tenant).
    OrgId,
    /// A user account (global).
    UserId,
    /// A login session (global).
    SessionId,
    /// A role inside one organization.
    RoleId,
    /// An invitation inside one organization.
    InvitationId,
    /// An API key of one organization.
    ApiKeyId,
    /// A project.
    ProjectId,
    /// A ticket.
    TicketId,
    /// A ticket comment.
    CommentId,
    /// A note.
    NoteId,
    /// A stored file.
    FileId,
    /// An audit event.
    AuditEventId,
    /// A background job.
    JobId,
    /// An export archive.
    ExportId,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_v7_and_time_ordered() {
        let a = OrgId::new();
        let b = OrgId::new();
        assert_eq!(a.uuid().get_version_num(), 7);
        assert!(a < b, "UUIDv7 created later sorts later");
    }

    #[test]
    fn ids_round_trip_through_text() {
        let a = TicketId::new();
        let parsed: TicketId = a.to_string().parse().unwrap_or_else(|_| TicketId::new());
        assert_eq!(a, parsed);
        assert!("not-a-uuid".parse::<TicketId>().is_err());
    }
}
