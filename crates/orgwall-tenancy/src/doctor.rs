//! `orgwall doctor`: checks the schema wall and the database wall against the live
//! catalog, on either backend, and names every violation.
//!
//! Registration: every table must be declared by a module of the [`Catalog`], as a
//! tenant table or as a global one, and every declared table must exist; a cascade
//! between tenant tables must be declared (so SQLite gets its named trigger), and on
//! SQLite each declared cascade's trigger must exist.
//!
//! A table that no module declares global is a tenant table and must have:
//! `org_id NOT NULL`; a foreign key from `org_id` to `orgs(id)` with `ON DELETE CASCADE`;
//! a primary or unique key leading with `org_id` (with at least one more column);
//! composite foreign keys (including `org_id = org_id`) to every other tenant table it
//! references; every index leading with `org_id` (except the documented cross-org lookup
//! indexes the modules declare).
//! On PostgreSQL it must also have row-level security enabled **and forced** with a policy
//! on `app.org_id`, and must not be owned by the server role; the server role must not be
//! superuser or have BYPASSRLS; views must be `security_invoker`; no SECURITY DEFINER
//! function may be executable by PUBLIC.
//! On SQLite it must be a `<t>_rows` base table behind the scoped view `<t>` with its
//! `INSTEAD OF` triggers and the three guard triggers.
//!
//! One documented exemption on SQLite: a full-text index is an FTS5 virtual table
//! `<t>_fts_rows` over `<t>_rows`. A virtual table has no keys, foreign keys or indexes
//! and cannot carry triggers, so the rules above do not apply to it nor to the shadow
//! tables FTS5 creates for it ([`FTS5_SHADOW_TABLES`]). Instead it must be FTS5, have an
//! `org_id` column, sit behind the scoped view `<t>_fts` and be kept in sync by the named
//! triggers `orgwall_fts_<t>_rows_{ins,upd,del}` on its base table; its guard is the
//! authorizer, which refuses top-level reads of it and of its shadow tables, and writes to
//! it that do not come from a trigger. Any other virtual table is a violation.
//!
//! A declared global table may also sit behind a view of its own on SQLite (`<g>_rows`
//! under the view `<g>`, orgwall's `job_queues`): the view must filter on `app_system()`,
//! and the authorizer keeps every statement off the base table itself.

use crate::module::Catalog;
use std::fmt;

/// The shadow tables FTS5 creates for an index `x`: `x_data`, `x_idx`, ...
pub const FTS5_SHADOW_TABLES: &[&str] = &["data", "idx", "content", "docsize", "config"];

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The table, view, role or function concerned.
    pub object: String,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.object, self.problem)
    }
}

/// What the doctor found so far, and the catalog it checks against.
pub(crate) struct Findings<'c> {
    pub(crate) catalog: &'c Catalog,
    pub(crate) found: Vec<Violation>,
    /// The placement schema being checked (objects are named `<schema>.<table>`; only
    /// data-plane tables belong there).
    placement: Option<String>,
    /// The placement being checked is a database of its own (which holds the members
    /// projection beside the data plane).
    projection: bool,
}

impl<'c> Findings<'c> {
    pub(crate) fn new(catalog: &'c Catalog) -> Self {
        Findings {
            catalog,
            found: Vec::new(),
            placement: None,
            projection: false,
        }
    }

    /// Checks a placement schema next (until [`Findings::control`]).
    pub(crate) fn placement(&mut self, schema: &str) {
        self.placement = Some(schema.to_owned());
    }

    /// Checks a placement database next (until [`Findings::control`]).
    pub(crate) fn placement_database(&mut self, name: &str) {
        self.placement = Some(name.to_owned());
        self.projection = true;
    }

    /// Whether a placement of its own is being checked.
    pub(crate) fn in_placement(&self) -> bool {
        self.placement.is_some()
    }

    /// Checks the control schema again.
    pub(crate) fn control(&mut self) {
        self.placement = None;
        self.projection = false;
    }

    pub(crate) fn is_global(&self, logical: &str) -> bool {
        // A placement database's access mirror is the control plane's, like the
        // projection's `orgs` (one row, its org's generation).
        self.catalog.is_global(logical)
            || (self.projection && logical == crate::placement::MIRROR_TABLE)
    }

    /// Every table must be declared, every declared table must exist. `present` are the
    /// logical names of the tables found (search indexes and their shadow tables left out).
    pub(crate) fn registration(&mut self, present: &[String]) {
        if self.placement.is_some() {
            let catalog = self.catalog;
            for t in present {
                let projected = self.projection
                    && (crate::placement::PROJECTION_TABLES.contains(&t.as_str())
                        || t == crate::placement::MIRROR_TABLE);
                if t != "schema_migrations" && !catalog.is_data(t) && !projected {
                    self.add(t, "table in a placement schema is not a data-plane table of any module (only the data plane follows an org)");
                }
            }
            for t in catalog.data_tables() {
                if !present.iter().any(|p| p == t) {
                    self.add(
                        t,
                        "data-plane table missing from this placement (run orgwall migrate)",
                    );
                }
            }
            return;
        }
        for t in present {
            if !self.catalog.is_global(t) && !self.catalog.is_tenant(t) {
                self.add(
                    t,
                    "table is not registered by any module (declare it as a tenant or a global table)",
                );
            }
        }
        let catalog = self.catalog;
        for m in catalog.modules() {
            for t in m.tenant_tables.iter().chain(m.global_tables) {
                if !present.iter().any(|p| p == t) {
                    self.add(
                        t,
                        format!(
                            "declared by module {} but missing from the database",
                            m.name
                        ),
                    );
                }
            }
        }
    }

    pub(crate) fn add(&mut self, object: &str, problem: impl Into<String>) {
        let object = match &self.placement {
            Some(schema) => format!("{schema}.{object}"),
            None => object.to_owned(),
        };
        self.found.push(Violation {
            object,
            problem: problem.into(),
        });
    }
}

/// Which backend's catalog a shape was read from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Postgres,
    Sqlite,
}

/// A table's shape, read from either catalog.
pub(crate) struct TableShape {
    pub(crate) name: String,
    /// The logical name (SQLite: without `_rows`).
    pub(crate) logical: String,
    pub(crate) org_id_not_null: Option<bool>,
    /// (columns, referenced table (logical), referenced columns, cascades on delete)
    pub(crate) fks: Vec<(Vec<String>, String, Vec<String>, bool)>,
    /// (name, columns, unique)
    pub(crate) indexes: Vec<(String, Vec<String>, bool)>,
}

pub(crate) fn check_shape(t: &TableShape, backend: Backend, f: &mut Findings<'_>) {
    let name = t.name.as_str();
    match t.org_id_not_null {
        None => f.add(name, "tenant table has no org_id column"),
        Some(false) => f.add(name, "org_id is nullable (must be NOT NULL)"),
        Some(true) => {}
    }
    let org_fk = t.fks.iter().any(|(cols, rt, rcols, cascade)| {
        cols == &["org_id"] && rt == "orgs" && rcols == &["id"] && *cascade
    });
    if !org_fk {
        f.add(name, "no foreign key org_id -> orgs(id) ON DELETE CASCADE");
    }
    // (org_id, id) for rows other rows may point at; (org_id) alone only for a derived
    // table of one row per org (the usage counters, which nothing points at).
    let one_per_org = f.catalog.is_derived(&t.logical);
    let keyed = t.indexes.iter().any(|(_, cols, unique)| {
        *unique && cols.first().is_some_and(|c| c == "org_id") && (cols.len() >= 2 || one_per_org)
    });
    if !keyed {
        f.add(
            name,
            "no primary or unique key leading with org_id, e.g. (org_id, id) (or (org_id) for a derived table of one row per org)",
        );
    }
    for (cols, rt, rcols, cascade) in &t.fks {
        if rt == "orgs" || f.is_global(rt) {
            continue;
        }
        if *cascade {
            let declared = f.catalog.cascades().any(|c| {
                c.parent == rt.as_str()
                    && c.child == t.logical
                    && cols.iter().any(|x| x == c.column)
            });
            match backend {
                Backend::Sqlite => f.add(
                    name,
                    format!(
                        "foreign key ({}) -> {rt} cascades by itself: SQLite's authorizer refuses foreign-key actions; declare a Cascade in the module and drop ON DELETE CASCADE here",
                        cols.join(", ")
                    ),
                ),
                Backend::Postgres if !declared => f.add(
                    name,
                    format!(
                        "foreign key ({}) -> {rt} ON DELETE CASCADE is not declared as a Cascade by any module (SQLite would refuse the delete)",
                        cols.join(", ")
                    ),
                ),
                Backend::Postgres => {}
            }
        }
        let pairs_org = cols
            .iter()
            .zip(rcols)
            .any(|(c, r)| c == "org_id" && r == "org_id");
        if !pairs_org || cols.len() < 2 {
            f.add(
                name,
                format!(
                    "foreign key ({}) -> {rt}({}) is not composite with org_id: a row could point into another organization",
                    cols.join(", "),
                    rcols.join(", ")
                ),
            );
        }
    }
    for (idx, cols, _) in &t.indexes {
        let lead = cols.first().map(String::as_str).unwrap_or("");
        if lead == "org_id" || f.catalog.is_cross_org_index(&t.logical, lead) {
            continue;
        }
        f.add(
            name,
            format!(
                "index {idx} ({}) does not lead with org_id",
                cols.join(", ")
            ),
        );
    }
}
