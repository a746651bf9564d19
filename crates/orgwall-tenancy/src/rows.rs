//! A scoped table gateway: create, read, list, update and delete rows of a registered
//! tenant table without writing SQL, and without ever naming an org.
//!
//! Every statement binds `org_id` from the [`TenantTx`] (never from input): reads see
//! only the caller's org (and the database wall would hide other orgs' rows anyway),
//! inserts are stamped with it, and an id of another org's row is simply not found.
//! A table used through it has the columns `org_id`, `id` (UUIDv7, generated here) and
//! `created_at`, then the declared [`Column`]s.
//!
//! ```
//! use orgwall_tenancy::rows::{Column, Kind, Table};
//! static COURSES: Table = Table {
//!     name: "courses",
//!     columns: &[Column::required("title", Kind::Text), Column::optional("summary", Kind::Text)],
//! };
//! ```

use crate::db::TenantTx;
use crate::migrate::quote_ident;
use crate::value::{Row, Val};
use chrono::{DateTime, Utc};
use orgwall_core::{Error, Result};
use serde_json::{json, Map, Value};
use uuid::Uuid;

/// What a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text (at most [`MAX_TEXT`] characters, no control characters but newlines and tabs).
    Text,
    /// A 64-bit integer.
    Int,
    /// A boolean.
    Bool,
    /// The id of another row of the same org (a composite foreign key in the schema).
    Ref,
    /// A UTC timestamp (RFC 3339 on the wire).
    Time,
}

/// The longest text a [`Kind::Text`] column takes, in characters.
pub const MAX_TEXT: usize = 10_000;

/// One declared column.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Its name (a fixed identifier, never input).
    pub name: &'static str,
    /// What it holds.
    pub kind: Kind,
    /// Whether a create must give it (else it is nullable).
    pub required: bool,
}

impl Column {
    /// A column every row has.
    pub const fn required(name: &'static str, kind: Kind) -> Self {
        Column {
            name,
            kind,
            required: true,
        }
    }

    /// A nullable column.
    pub const fn optional(name: &'static str, kind: Kind) -> Self {
        Column {
            name,
            kind,
            required: false,
        }
    }

    /// Converts a JSON value for this column, or says why not.
    pub fn parse(&self, v: &Value) -> Result<Val> {
        let bad = |what: &str| Error::Validation(format!("{} must be {what}", self.name));
        if v.is_null() {
            return if self.required {
                Err(bad("given"))
            } else {
                Ok(Val::Null)
            };
        }
        match self.kind {
            Kind::Text => {
                let s = v.as_str().ok_or_else(|| bad("a string"))?;
                let clean = s
                    .chars()
                    .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'));
                if !clean || s.chars().count() > MAX_TEXT || (self.required && s.trim().is_empty())
                {
                    return Err(bad("1 to 10000 characters of text"));
                }
                Ok(Val::Text(s.to_owned()))
            }
            Kind::Int => v.as_i64().map(Val::Int).ok_or_else(|| bad("an integer")),
            Kind::Bool => v
                .as_bool()
                .map(Val::Bool)
                .ok_or_else(|| bad("true or false")),
            Kind::Ref => v
                .as_str()
                .and_then(|s| s.parse::<Uuid>().ok())
                .map(Val::Uuid)
                .ok_or_else(|| bad("an id")),
            Kind::Time => v
                .as_str()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|t| Val::Time(t.with_timezone(&Utc)))
                .ok_or_else(|| bad("an RFC 3339 timestamp")),
        }
    }

    fn json_of(&self, row: &Row, i: usize) -> Result<Value> {
        Ok(match self.kind {
            Kind::Text => json!(row.get::<Option<String>>(i)?),
            Kind::Int => json!(row.get::<Option<i64>>(i)?),
            Kind::Bool => json!(row.get::<Option<bool>>(i)?),
            Kind::Ref => json!(row.get::<Option<Uuid>>(i)?),
            Kind::Time => json!(row.get::<Option<DateTime<Utc>>>(i)?),
        })
    }
}

/// A tenant table and its declared columns.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    /// The table's (logical) name.
    pub name: &'static str,
    /// Its columns besides `org_id`, `id` and `created_at`.
    pub columns: &'static [Column],
}

impl Table {
    fn select(&self) -> String {
        let mut cols = vec!["id".to_owned(), "created_at".to_owned()];
        cols.extend(self.columns.iter().map(|c| quote_ident(c.name)));
        format!("SELECT {} FROM {}", cols.join(", "), quote_ident(self.name))
    }

    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&'static Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Inserts a row of the transaction's org; `values` are in column order. Returns it.
    pub async fn insert(&self, tx: &mut TenantTx<'_>, values: &[Val]) -> Result<Row> {
        if values.len() != self.columns.len() {
            return Err(Error::Internal(format!(
                "{}: wrong number of values",
                self.name
            )));
        }
        let id = Uuid::now_v7();
        let mut names = vec!["org_id", "id", "created_at"];
        names.extend(self.columns.iter().map(|c| c.name));
        let marks: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
        let names: Vec<String> = names.into_iter().map(quote_ident).collect();
        let mut params = vec![
            tx.org_id().into(),
            Val::Uuid(id),
            Val::Time(crate::value::now()),
        ];
        params.extend_from_slice(values);
        tx.data()
            .execute(
                &format!(
                    "INSERT INTO {} ({}) VALUES ({})",
                    quote_ident(self.name),
                    names.join(", "),
                    marks.join(", ")
                ),
                &params,
            )
            .await?;
        self.get(tx, id).await
    }

    /// The row `id` of the transaction's org, or [`Error::NotFound`] (also for an id
    /// of another org's row).
    pub async fn get(&self, tx: &mut TenantTx<'_>, id: Uuid) -> Result<Row> {
        let org = tx.org_id();
        tx.data()
            .query_one(
                &format!("{} WHERE org_id = $1 AND id = $2", self.select()),
                &[org.into(), Val::Uuid(id)],
            )
            .await
    }

    /// Up to `limit` rows of the transaction's org with ids after `after`, by id.
    pub async fn list(
        &self,
        tx: &mut TenantTx<'_>,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<Row>> {
        let org = tx.org_id();
        // The nil UUID sorts first: no cursor is "after nil". (An untyped `$2 IS NULL`
        // does not prepare on PostgreSQL: "could not determine data type of parameter".)
        let after = Val::Uuid(after.unwrap_or(Uuid::nil()));
        // A key-ordered page: one plan whatever the values (see `Data::query_generic`).
        tx.data()
            .query_generic(
                &format!(
                    "{} WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                    self.select()
                ),
                &[org.into(), after, Val::Int(limit)],
            )
            .await
    }

    /// Changes the given columns of row `id`; [`Error::NotFound`] if it is not the org's.
    pub async fn update(
        &self,
        tx: &mut TenantTx<'_>,
        id: Uuid,
        changes: &[(&'static Column, Val)],
    ) -> Result<Row> {
        if !changes.is_empty() {
            let sets: Vec<String> = changes
                .iter()
                .enumerate()
                .map(|(i, (c, _))| format!("{} = ${}", quote_ident(c.name), i + 3))
                .collect();
            let mut params = vec![tx.org_id().into(), Val::Uuid(id)];
            params.extend(changes.iter().map(|(_, v)| v.clone()));
            let n = tx
                .data()
                .execute(
                    &format!(
                        "UPDATE {} SET {} WHERE org_id = $1 AND id = $2",
                        quote_ident(self.name),
                        sets.join(", ")
                    ),
                    &params,
                )
                .await?;
            if n == 0 {
                return Err(Error::NotFound);
            }
        }
        self.get(tx, id).await
    }

    /// Deletes row `id`; [`Error::NotFound`] if it is not the org's.
    pub async fn delete(&self, tx: &mut TenantTx<'_>, id: Uuid) -> Result<()> {
        let org = tx.org_id();
        let n = tx
            .data()
            .execute(
                &format!(
                    "DELETE FROM {} WHERE org_id = $1 AND id = $2",
                    quote_ident(self.name)
                ),
                &[org.into(), Val::Uuid(id)],
            )
            .await?;
        if n == 0 {
            return Err(Error::NotFound);
        }
        Ok(())
    }

    /// A row (from [`Table::get`] or [`Table::list`]) as a JSON object.
    pub fn to_json(&self, row: &Row) -> Result<Value> {
        let mut m = Map::new();
        m.insert("id".into(), json!(row.get::<Uuid>(0)?));
        m.insert("created_at".into(), json!(row.get::<DateTime<Utc>>(1)?));
        for (i, c) in self.columns.iter().enumerate() {
            m.insert(c.name.into(), c.json_of(row, i + 2)?);
        }
        Ok(Value::Object(m))
    }
}
