//! The migration runner: every registered module's migrations, per backend, and the
//! database wall applied on top of them.
//!
//! Each module (see [`crate::module`]) has its own numbered migrations per backend.
//! `migrate` runs as the owner, in one transaction (all pending migrations of every
//! module apply, or none), under a lock so two processes cannot migrate at once, modules
//! in registration order. It refuses a database whose recorded version of a module is
//! newer than this binary, whose applied migrations were edited, or that holds
//! migrations of a module this service does not register.
//!
//! After the files, the runner (re)asserts the database wall on **every** tenant table,
//! so a table added by a later migration inherits it without writing it out:
//! - PostgreSQL: `ENABLE` and `FORCE ROW LEVEL SECURITY`, the `org_isolation` policy,
//!   the NOLOGIN server role (created if missing) and its grants; and, not a wall but
//!   kept the same way, autovacuum thresholds that leave a young table's key-check plans
//!   on its index (`postgres::walls`, `YOUNG_TABLE_AUTOVACUUM`);
//! - SQLite: for each `<t>_rows` base table, the scoped view `<t>` (unless the migration
//!   wrote its own), its `INSTEAD OF` triggers and the guard triggers.
//!
//! The backend parts live with their backends: `postgres::walls`, `sqlite::walls`.
//! `orgwall doctor` then checks the result (see [`crate::doctor`]).

use crate::module::{Catalog, Module};
use orgwall_core::{Error, Result};
use sha2::{Digest, Sha256};

pub use crate::module::{Migration, Plane};

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// (module, version) applied by this run, in order.
    pub applied: Vec<(String, i64)>,
    /// Each module's version after the run, in registration order.
    pub versions: Vec<(String, i64)>,
    /// Placements of their own (schemas) brought to the same version by this run.
    pub placements: usize,
}

impl Report {
    /// The version of `module` after the run (0 if it has no migration).
    pub fn version_of(&self, module: &str) -> i64 {
        self.versions
            .iter()
            .find(|(m, _)| m == module)
            .map_or(0, |(_, v)| *v)
    }
}

/// Which backend's migrations to take from a module.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Side {
    Postgres,
    Sqlite,
}

impl Side {
    fn of(self, m: &Module) -> &'static [Migration] {
        match self {
            Side::Postgres => m.postgres,
            Side::Sqlite => m.sqlite,
        }
    }
}

/// One migration to apply.
pub(crate) struct Step {
    pub module: &'static str,
    pub migration: &'static Migration,
}

/// Everything to apply, in order, given what is recorded as `(module, version,
/// checksum)`; fills in `report.versions` with each module's version before the run.
pub(crate) fn plan_all(
    catalog: &Catalog,
    side: Side,
    applied: &[(String, i64, String)],
    report: &mut Report,
) -> Result<Vec<Step>> {
    if let Some((unknown, _, _)) = applied
        .iter()
        .find(|(m, _, _)| !catalog.modules().iter().any(|k| k.name == m))
    {
        return Err(Error::Validation(format!(
            "the database holds migrations of module {unknown:?}, which this service does not register"
        )));
    }
    let mut steps = Vec::new();
    for m in catalog.modules() {
        let mine: Vec<(i64, String)> = applied
            .iter()
            .filter(|(n, _, _)| n == m.name)
            .map(|(_, v, c)| (*v, c.clone()))
            .collect();
        let todo = plan(m.name, side.of(m), &mine)?;
        report.versions.push((
            m.name.to_owned(),
            mine.iter().map(|(v, _)| *v).max().unwrap_or(0),
        ));
        steps.extend(todo.into_iter().map(|migration| Step {
            module: m.name,
            migration,
        }));
    }
    Ok(steps)
}

impl Report {
    /// Records that `step` was applied.
    pub(crate) fn applied(&mut self, step: &Step) {
        self.applied
            .push((step.module.to_owned(), step.migration.version));
        if let Some(v) = self.versions.iter_mut().find(|(m, _)| m == step.module) {
            v.1 = step.migration.version;
        }
    }
}

/// Refuses a `schema_migrations` table from before modules (no `module` column).
pub(crate) fn legacy_layout() -> Error {
    Error::Validation(
        "this database was migrated by an orgwall from before modules (schema_migrations has no module column); \
         migrate a fresh database and move the data with `orgwall export`"
            .into(),
    )
}

/// The policy expression of every tenant table: an unset `app.org_id` is NULL, which
/// matches no row. The setting is read in the expression itself, not in a sub-select: a
/// statement that names its org (`org_id = $1`, as every repository statement does) lets
/// the planner fold the two into one comparison per execution (`nullif(...)::uuid = $1`,
/// a one-time filter), where a sub-select adds an InitPlan to every table a statement
/// reads: about half of what the policy cost a ticket's detail read (bench/README.md,
/// *The policy without a sub-select*). Same rows either way.
pub const ORG_PREDICATE: &str = "org_id = nullif(current_setting('app.org_id', true), '')::uuid";

/// The same comparison with the setting read once by a sub-select, for a policy the
/// planner cannot fold: the system tables' (`... OR app.system = '<table>'`) and a tenant
/// table's that another permissive policy joins with `OR` (the identity tables' documented
/// cross-org reads). Without the sub-select the setting would be read for every row
/// (0.47 us a row more in a scan of 1,000, measured).
pub const ORG_PREDICATE_ONCE: &str =
    "org_id = (SELECT nullif(current_setting('app.org_id', true), '')::uuid)";

/// How PostgreSQL prints [`ORG_PREDICATE`] and [`ORG_PREDICATE_ONCE`] in a policy:
/// `migrate` turns a tenant table's policy from one into the other as the table's other
/// policies require, and leaves any other text (a policy written by hand) as it is.
pub(crate) const ORG_PREDICATE_PRINTED: [&str; 2] = [
    "(org_id = (NULLIF(current_setting('app.org_id'::text, true), ''::text))::uuid)",
    "(org_id = ( SELECT (NULLIF(current_setting('app.org_id'::text, true), ''::text))::uuid AS \"nullif\"))",
];

/// The PostgreSQL predicate that lets a named system transaction reach every row of the
/// system table `table` (a checked identifier: the catalog's own name).
pub fn system_predicate(table: &str) -> String {
    format!(
        "(SELECT current_setting('app.system', true)) = '{}'",
        table.replace('\'', "''")
    )
}

pub(crate) fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

/// Decides what to apply of one module given what is recorded for it.
pub(crate) fn plan(
    module: &str,
    known: &'static [Migration],
    applied: &[(i64, String)],
) -> Result<Vec<&'static Migration>> {
    let latest = known.last().map_or(0, |m| m.version);
    for (version, sum) in applied {
        if *version > latest {
            return Err(Error::Validation(format!(
                "module {module}: database schema is at version {version}, newer than this build supports ({latest}); upgrade"
            )));
        }
        if let Some(m) = known.iter().find(|m| m.version == *version) {
            if checksum(m.sql) != *sum {
                return Err(Error::Validation(format!(
                    "module {module}: migration {version} ({}) was changed after it was applied",
                    m.name
                )));
            }
        }
    }
    Ok(known
        .iter()
        .filter(|m| !applied.iter().any(|(v, _)| *v == m.version))
        .collect())
}

pub(crate) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    static TWO: &[Migration] = &[
        Migration {
            version: 1,
            name: "one",
            sql: "SELECT 1",
            plane: Plane::Control,
        },
        Migration {
            version: 2,
            name: "two",
            sql: "SELECT 2",
            plane: Plane::Control,
        },
    ];

    #[test]
    fn newer_database_is_refused() {
        let applied = vec![(99, "x".to_string())];
        let err = plan("m", TWO, &applied)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("newer than this build"), "{err}");
    }

    #[test]
    fn edited_migration_is_refused() {
        let applied = vec![(1, "not-the-checksum".to_string())];
        assert!(plan("m", TWO, &applied).is_err());
    }

    #[test]
    fn pending_ones_are_planned() {
        let applied = vec![(1, checksum("SELECT 1"))];
        let todo = plan("m", TWO, &applied).unwrap();
        assert_eq!(todo.iter().map(|m| m.version).collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn an_unregistered_module_is_refused() {
        let applied = vec![("ghost".to_string(), 1, "x".to_string())];
        let err = plan_all(
            &Catalog::new(),
            Side::Sqlite,
            &applied,
            &mut Report::default(),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("ghost"), "{err}");
    }

    #[test]
    fn versions_are_contiguous() {
        let catalog = Catalog::new();
        for m in catalog.modules() {
            for set in [m.postgres, m.sqlite] {
                for (i, mig) in set.iter().enumerate() {
                    assert_eq!(mig.version, i as i64 + 1, "module {}", m.name);
                }
            }
        }
    }
}
