//! # orgwall-core: the tenancy vocabulary
//!
//! Types and rules shared by every layer of orgwall, with no I/O:
//!
//! - [`ids`]: UUIDv7 newtypes, one per entity, so an `OrgId` can never be passed where a
//!   `UserId` is expected;
//! - [`perm`]: the permission catalogue, permission sets and the four system roles;
//! - [`text`]: parsed values that arrive from the edge (slugs, emails, names);
//! - [`error`]: the domain error every lower layer returns and the HTTP layer maps once.
//!
//! The scope value itself (`OrgScope`) lives in `orgwall_store::access`, next to the only
//! code allowed to construct it (membership verification and named system scopes): a
//! constructor can only be private to the module that performs the check.
#![forbid(unsafe_code)]

pub mod error;
pub mod ids;
pub mod perm;
pub mod text;

pub use error::{Error, Result};
pub use ids::*;
pub use perm::{Permission, PermissionDef, PermissionSet, SystemRole};
pub use text::{Email, Slug};
pub use ticket::TicketStatus;
pub mod ticket;
