//! Registration: a service describes itself as [`Module`]s, and the [`Catalog`] of those
//! modules is what the migration runner applies, what the doctor checks against, and
//! what tests walk.
//!
//! A module declares:
//! - its migrations, one list per backend, versioned per module (`schema_migrations`
//!   records `(module, version)`), applied by the runner in the same transaction as the
//!   walls, so no table ever exists without them;
//! - its tenant tables and its global tables (the doctor names any table that no module
//!   declares, and any declared table that is missing); among its tenant tables, the
//!   *derived* ones (rows computed from other tenant tables' rows, such as a search
//!   index: walled, purged and checked like any tenant table, but left out of exports);
//! - its cross-org indexes (the documented lookups that do not lead with `org_id`);
//! - its cascades between tenant tables: on PostgreSQL they are ordinary composite
//!   foreign keys `ON DELETE CASCADE`; on SQLite the runner generates the named
//!   `AFTER DELETE` trigger for each (SQLite's own cascade would read base tables outside
//!   the scoped views, which the authorizer refuses), and the doctor checks it exists.
//!
//! The kernel registers its own module first ([`crate::identity::MODULE`]: users,
//! sessions, orgs, plans, roles, memberships, invitations, API keys, audit events);
//! modules are applied in the order they are registered, so a module may reference the
//! tables of any module before it.

use orgwall_core::perm::{register, PermissionDef, RegisterError};

/// Which side of the split a migration belongs to (see ARCHITECTURE.md, *Placement*).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plane {
    /// Identity and access, queues, anything global: always in the control database.
    /// Applied once, to the control schema.
    Control,
    /// An org's workspace data: its tables follow the org. Applied to the control schema
    /// (the `shared` placement) and to every placement of its own, where the runner runs
    /// it with the placement's schema first on the search path. It may create and alter
    /// only the module's tenant tables (and their indexes, triggers and functions), and may
    /// reference control-plane tables (`orgs`, `users`, `memberships`) by foreign key.
    Data,
}

/// One migration file.
#[derive(Debug)]
pub struct Migration {
    /// Its number (from 1, no gaps).
    pub version: i64,
    /// Its name.
    pub name: &'static str,
    /// Its SQL.
    pub sql: &'static str,
    /// The control plane or the data plane.
    pub plane: Plane,
}

/// A deleted parent row deletes its children (SQLite: generated as a named trigger).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cascade {
    /// The parent tenant table (logical name, e.g. `tickets`).
    pub parent: &'static str,
    /// The child tenant table (logical name, e.g. `ticket_comments`).
    pub child: &'static str,
    /// The child's column that holds the parent's `id` (`org_id` is paired implicitly).
    pub column: &'static str,
}

impl Cascade {
    /// The name of the SQLite trigger that carries it out.
    pub fn trigger_name(&self) -> String {
        format!(
            "orgwall_cascade_{}_{}_{}",
            self.parent, self.child, self.column
        )
    }
}

/// One registered part of a service.
#[derive(Debug, Clone, Copy)]
pub struct Module {
    /// Its name, unique in the catalog (recorded with each applied migration).
    pub name: &'static str,
    /// PostgreSQL migrations, numbered from 1 without gaps.
    pub postgres: &'static [Migration],
    /// SQLite migrations, numbered from 1 without gaps. Tenant tables are created as
    /// `<t>_rows`; the runner generates the scoped view `<t>` and its triggers.
    pub sqlite: &'static [Migration],
    /// Tenant tables it creates (logical names: `<t>`, not `<t>_rows`).
    pub tenant_tables: &'static [&'static str],
    /// Those of its tenant tables (each also listed in `tenant_tables`) whose rows are
    /// derived from other tenant tables' rows and kept by triggers (orgwall's search
    /// terms): walled, purged and checked by the doctor like every tenant table, but not
    /// data of their own, so an export leaves them out (they are rebuilt from the rows it
    /// holds). A backend that does not use one may leave it empty.
    pub derived_tables: &'static [&'static str],
    /// Global tables it creates (no `org_id` wall; the documented allowlist).
    pub global_tables: &'static [&'static str],
    /// System tables it creates: global tables whose rows carry an (optional) `org_id`,
    /// such as a job queue or an outbox. They stay inside the database wall: a tenant
    /// transaction sees and changes only its own org's rows (and may add org-less rows);
    /// all of them are reachable only from a named system transaction
    /// ([`crate::Db::system`]) whose name is the table's. PostgreSQL: forced row-level
    /// security with the policies `org_isolation` (`org_id = app.org_id OR app.system =
    /// '<t>'`) and `orgless_insert`; SQLite: `<t>_rows` behind the view `<t>` filtering on
    /// `app_org()` or `app_system()`, with guard triggers. The runner applies both.
    pub system_tables: &'static [&'static str],
    /// Indexes that serve a documented cross-org read: (table, leading column).
    pub cross_org_indexes: &'static [(&'static str, &'static str)],
    /// Cascading deletes between its tenant tables.
    pub cascades: &'static [Cascade],
    /// Its permissions, each with the least powerful system role that holds it: they join
    /// the catalogue (`GET /v1/permissions`) and the system roles when it is registered.
    pub permissions: &'static [PermissionDef],
    /// Its rule codes (`Error::Refused(code, ..)`) and their HTTP status; a code that no
    /// module declares answers 409.
    pub error_codes: &'static [(&'static str, u16)],
}

impl Module {
    /// A module with nothing in it, for struct update syntax:
    /// `Module { name: "courses", ..Module::EMPTY }`.
    pub const EMPTY: Module = Module {
        name: "",
        postgres: &[],
        sqlite: &[],
        tenant_tables: &[],
        derived_tables: &[],
        global_tables: &[],
        system_tables: &[],
        cross_org_indexes: &[],
        cascades: &[],
        permissions: &[],
        error_codes: &[],
    };
}

/// The modules of one service, kernel first, in the order they are applied.
#[derive(Debug, Clone)]
pub struct Catalog {
    modules: Vec<&'static Module>,
    /// The first registration that was refused (a bad or conflicting permission): opening
    /// a database with this catalog fails with it.
    refused: Option<String>,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog::new()
    }
}

impl Catalog {
    /// A catalog of no module at all (see `Catalog::new` in [`crate::identity`]: every
    /// service's catalog starts with the kernel's module).
    pub(crate) fn empty() -> Self {
        Catalog {
            modules: Vec::new(),
            refused: None,
        }
    }

    /// Adds a module after those already registered (registering one twice is a no-op);
    /// its permissions join the process's catalogue.
    pub fn with(mut self, module: &'static Module) -> Self {
        if self.modules.iter().any(|m| m.name == module.name) {
            return self;
        }
        if let Err(e) = register(module.permissions) {
            let e: RegisterError = e;
            self.refused
                .get_or_insert_with(|| format!("module {}: {e}", module.name));
        }
        self.modules.push(module);
        self
    }

    /// The registration error, if a module was refused.
    pub fn refused(&self) -> Option<&str> {
        self.refused.as_deref()
    }

    /// The modules, in order.
    pub fn modules(&self) -> &[&'static Module] {
        &self.modules
    }

    /// Every declared tenant table (logical names).
    pub fn tenant_tables(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.modules
            .iter()
            .flat_map(|m| m.tenant_tables.iter().copied())
    }

    /// Every declared derived tenant table (see [`Module::derived_tables`]).
    pub fn derived_tables(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.modules
            .iter()
            .flat_map(|m| m.derived_tables.iter().copied())
    }

    /// Whether `table` (a logical name) is a declared derived tenant table.
    pub fn is_derived(&self, table: &str) -> bool {
        self.derived_tables().any(|t| t == table)
    }

    /// The tenant tables that hold an org's own data: every declared tenant table but the
    /// derived ones (what an export archives).
    pub fn exported_tables(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.tenant_tables().filter(|t| !self.is_derived(t))
    }

    /// Every declared global table (system tables included), with the runner's own
    /// `schema_migrations`.
    pub fn global_tables(&self) -> impl Iterator<Item = &'static str> + '_ {
        std::iter::once("schema_migrations").chain(self.modules.iter().flat_map(|m| {
            m.global_tables
                .iter()
                .chain(m.system_tables.iter())
                .copied()
        }))
    }

    /// Every declared system table (global, with `org_id` rows behind the wall).
    pub fn system_tables(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.modules
            .iter()
            .flat_map(|m| m.system_tables.iter().copied())
    }

    /// The declared system table named `table`, as the `'static` name a system
    /// transaction states.
    pub fn system_table(&self, table: &str) -> Option<&'static str> {
        self.system_tables().find(|t| *t == table)
    }

    /// Whether `table` (a logical name) is a declared system table.
    pub fn is_system(&self, table: &str) -> bool {
        self.system_table(table).is_some()
    }

    /// Whether `table` (a logical name) is a declared global table.
    pub fn is_global(&self, table: &str) -> bool {
        self.global_tables().any(|t| t == table)
    }

    /// Whether `table` (a logical name) is a declared tenant table.
    pub fn is_tenant(&self, table: &str) -> bool {
        self.tenant_tables().any(|t| t == table)
    }

    /// Whether `(table, column)` is a declared cross-org index.
    pub fn is_cross_org_index(&self, table: &str, leading: &str) -> bool {
        self.modules
            .iter()
            .flat_map(|m| m.cross_org_indexes.iter())
            .any(|(t, c)| *t == table && *c == leading)
    }

    /// Every data-plane table: the tenant tables created by data-plane migrations
    /// (logical names), in registration order. These follow an org to its placement.
    pub fn data_tables(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.modules.iter().flat_map(|m| {
            m.tenant_tables.iter().copied().filter(move |t| {
                m.postgres
                    .iter()
                    .chain(m.sqlite)
                    .any(|mig| mig.plane == Plane::Data && creates_table(mig.sql, t))
            })
        })
    }

    /// Whether `table` (a logical name) is a data-plane table.
    pub fn is_data(&self, table: &str) -> bool {
        self.data_tables().any(|t| t == table)
    }

    /// Every declared cascade.
    pub fn cascades(&self) -> impl Iterator<Item = &'static Cascade> + '_ {
        self.modules.iter().flat_map(|m| m.cascades.iter())
    }

    /// Every global table name as a `Vec` (for SQL `= ANY($1)`).
    pub(crate) fn global_list(&self) -> Vec<String> {
        self.global_tables().map(str::to_owned).collect()
    }
}

/// Whether `sql` holds `CREATE TABLE <table>` (or `<table>_rows`), case-insensitively.
pub(crate) fn creates_table(sql: &str, table: &str) -> bool {
    let words: Vec<String> = sql
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    let rows = format!("{table}_rows");
    words.windows(3).any(|w| match w {
        [c, t, name] => c == "create" && t == "table" && (name == table || *name == rows),
        _ => false,
    })
}
