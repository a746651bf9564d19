//! orgwall's product permissions, registered with the kernel's catalogue by [`crate::MODULE`]
//! (the kernel's own: `org:*`, `members:*`, `roles:*`, `api_keys:manage`, `audit:read`).

use orgwall_core::{Permission, PermissionDef, SystemRole};

/// Read projects.
pub const PROJECTS_READ: Permission = Permission::new("projects:read");
/// Create and change projects.
pub const PROJECTS_WRITE: Permission = Permission::new("projects:write");
/// Read tickets.
pub const TICKETS_READ: Permission = Permission::new("tickets:read");
/// Create, change and assign tickets.
pub const TICKETS_WRITE: Permission = Permission::new("tickets:write");
/// Delete tickets.
pub const TICKETS_DELETE: Permission = Permission::new("tickets:delete");
/// Comment on tickets.
pub const COMMENTS_WRITE: Permission = Permission::new("comments:write");
/// Read notes.
pub const NOTES_READ: Permission = Permission::new("notes:read");
/// Create and change notes.
pub const NOTES_WRITE: Permission = Permission::new("notes:write");
/// Delete notes.
pub const NOTES_DELETE: Permission = Permission::new("notes:delete");
/// Read and download files.
pub const FILES_READ: Permission = Permission::new("files:read");
/// Upload files.
pub const FILES_WRITE: Permission = Permission::new("files:write");
/// Delete files.
pub const FILES_DELETE: Permission = Permission::new("files:delete");
/// Export the organization's data.
pub const EXPORTS_CREATE: Permission = Permission::new("exports:create");
/// Read quotas and usage.
pub const USAGE_READ: Permission = Permission::new("usage:read");

use SystemRole::{Admin, Member, Viewer};

/// Each permission with the least powerful system role that holds it.
pub const DEFINITIONS: &[PermissionDef] = &[
    PermissionDef::new(PROJECTS_READ, Viewer, "Read projects"),
    PermissionDef::new(PROJECTS_WRITE, Member, "Create and change projects"),
    PermissionDef::new(TICKETS_READ, Viewer, "Read tickets"),
    PermissionDef::new(TICKETS_WRITE, Member, "Create, change and assign tickets"),
    PermissionDef::new(TICKETS_DELETE, Admin, "Delete tickets"),
    PermissionDef::new(COMMENTS_WRITE, Member, "Comment on tickets"),
    PermissionDef::new(NOTES_READ, Viewer, "Read notes"),
    PermissionDef::new(NOTES_WRITE, Member, "Create and change notes"),
    PermissionDef::new(NOTES_DELETE, Admin, "Delete notes"),
    PermissionDef::new(FILES_READ, Viewer, "Read and download files"),
    PermissionDef::new(FILES_WRITE, Member, "Upload files"),
    PermissionDef::new(FILES_DELETE, Admin, "Delete files"),
    PermissionDef::new(EXPORTS_CREATE, Admin, "Export the organization's data"),
    PermissionDef::new(USAGE_READ, Viewer, "Read quotas and usage"),
];
