//! One value and row representation for both backends, so repository code is written once.
//!
//! Parameters are [`Val`]s; rows come back as [`Row`]s of [`Val`]s and are read with
//! [`FromVal`], which accepts each backend's storage form (SQLite keeps UUIDs as text and
//! timestamps as integer microseconds; PostgreSQL has native types).

use chrono::{DateTime, TimeZone, Utc};
use orgwall_core::{Error, Result};
use uuid::Uuid;

/// A SQL value.
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    /// SQL NULL.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// Text.
    Text(String),
    /// A UUID.
    Uuid(Uuid),
    /// A UTC timestamp (microsecond precision on both backends).
    Time(DateTime<Utc>),
    /// Bytes.
    Bytes(Vec<u8>),
    /// A JSON document.
    Json(serde_json::Value),
}

/// One result row.
#[derive(Clone, Debug, PartialEq)]
pub struct Row(pub(crate) Vec<Val>);

impl Row {
    /// Reads column `i` as `T`.
    pub fn get<T: FromVal>(&self, i: usize) -> Result<T> {
        let v = self
            .0
            .get(i)
            .ok_or_else(|| Error::Internal(format!("row has no column {i}")))?;
        T::from_val(v).map_err(|e| Error::Internal(format!("column {i}: {e}")))
    }

    /// Takes column `i` as `T`, leaving NULL in its place: text, bytes and JSON are moved
    /// out, not copied (a page of rows read once into its structs).
    pub fn take<T: FromVal>(&mut self, i: usize) -> Result<T> {
        let v = self
            .0
            .get_mut(i)
            .ok_or_else(|| Error::Internal(format!("row has no column {i}")))?;
        T::from_owned(std::mem::replace(v, Val::Null))
            .map_err(|e| Error::Internal(format!("column {i}: {e}")))
    }

    /// Column `i` as text, borrowed (a value parsed from its text needs no copy of it).
    pub fn text(&self, i: usize) -> Result<&str> {
        match self.0.get(i) {
            Some(Val::Text(s)) => Ok(s),
            Some(other) => {
                mismatch("text", other).map_err(|e| Error::Internal(format!("column {i}: {e}")))
            }
            None => Err(Error::Internal(format!("row has no column {i}"))),
        }
    }

    /// The number of columns.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the row has no column.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The raw values.
    pub fn values(&self) -> &[Val] {
        &self.0
    }
}

/// Conversion from a stored value.
pub trait FromVal: Sized {
    /// Converts, or says why not.
    fn from_val(v: &Val) -> std::result::Result<Self, String>;

    /// Converts a value given up by its row ([`Row::take`]); a type that holds text, bytes
    /// or JSON moves them out where [`FromVal::from_val`] copies.
    fn from_owned(v: Val) -> std::result::Result<Self, String> {
        Self::from_val(&v)
    }
}

fn mismatch<T>(want: &str, got: &Val) -> std::result::Result<T, String> {
    Err(format!("expected {want}, found {got:?}"))
}

impl FromVal for Val {
    fn from_val(v: &Val) -> std::result::Result<Self, String> {
        Ok(v.clone())
    }

    fn from_owned(v: Val) -> std::result::Result<Self, String> {
        Ok(v)
    }
}

impl FromVal for String {
    fn from_val(v: &Val) -> std::result::Result<Self, String> {
        match v {
            Val::Text(s) => Ok(s.clone()),
            Val::Uuid(u) => Ok(u.hyphenated().to_string()),
            other => mismatch("text", other),
        }
    }

    fn from_owned(v: Val) -> std::result::Result<Self, String> {
        match v {
            Val::Text(s) => Ok(s),
            other => Self::from_val(&other),
        }
    }
}

impl FromVal for i64 {
    fn from_val(v: &Val) -> std::result::Result<Self, String> {
        match v {
            Val::Int(i) => Ok(*i),
            other => mismatch("integer", other),
        }
    }
}

impl FromVal for f64 {
    fn from_val(v: &Val) -> std::result::Result<Self, String> {
        match v {
            Val::Float(f) => Ok(*f),
            Val::Int(i) => Ok(*i as f64),
            other => mismatch("float", other),
        }
    }
}

impl FromVal for bool {
    fn from_val(v: &Val) -> std::result::Result<Self, String> {
        match v {
            Val::Bool(b) => Ok(*b),
            Val::Int(i) => Ok(*i != 0),
            other => mismatch("boolean", other),
        }
    }
}

impl FromVal for Uuid {
    fn from_val(v: &Val) -> std::result::Result<Self, String> {
        match v {
            Val::Uuid(u) => Ok(*u),
            Val::Text(s) => Uuid::parse_str(s).map_err(|e| e.to_string()),
            other => mismatch("uuid", other),
        }
    }
}

impl FromVal for DateTime<Utc> {
    fn from_val(v: &Val) -> std::result::Result<Self, String> {
        match v {
            Val::Time(t) => Ok(*t),
            Val::Int(micros) => Utc
                .timestamp_micros(*micros)
                .single()
                .ok_or_else(|| format!("timestamp out of range: {micros}")),
            other => mismatch("timestamp", other),
        }
    }
}

impl FromVal for Vec<u8> {
    fn from_val(v: &Val) -> std::result::Result<Self, String> {
        match v {
            Val::Bytes(b) => Ok(b.clone()),
            other => mismatch("bytes", other),
        }
    }

    fn from_owned(v: Val) -> std::result::Result<Self, String> {
        match v {
            Val::Bytes(b) => Ok(b),
            other => Self::from_val(&other),
        }
    }
}

impl FromVal for serde_json::Value {
    fn from_val(v: &Val) -> std::result::Result<Self, String> {
        match v {
            Val::Json(j) => Ok(j.clone()),
            Val::Text(s) => serde_json::from_str(s).map_err(|e| e.to_string()),
            other => mismatch("json", other),
        }
    }

    fn from_owned(v: Val) -> std::result::Result<Self, String> {
        match v {
            Val::Json(j) => Ok(j),
            other => Self::from_val(&other),
        }
    }
}

impl<T: FromVal> FromVal for Option<T> {
    fn from_val(v: &Val) -> std::result::Result<Self, String> {
        match v {
            Val::Null => Ok(None),
            other => T::from_val(other).map(Some),
        }
    }

    fn from_owned(v: Val) -> std::result::Result<Self, String> {
        match v {
            Val::Null => Ok(None),
            other => T::from_owned(other).map(Some),
        }
    }
}

macro_rules! into_val {
    ($($t:ty => |$x:ident| $e:expr),* $(,)?) => {$(
        impl From<$t> for Val {
            fn from($x: $t) -> Val { $e }
        }
    )*};
}

into_val! {
    bool => |x| Val::Bool(x),
    i64 => |x| Val::Int(x),
    i32 => |x| Val::Int(i64::from(x)),
    u32 => |x| Val::Int(i64::from(x)),
    f64 => |x| Val::Float(x),
    String => |x| Val::Text(x),
    &str => |x| Val::Text(x.to_owned()),
    &String => |x| Val::Text(x.clone()),
    Uuid => |x| Val::Uuid(x),
    DateTime<Utc> => |x| Val::Time(x),
    Vec<u8> => |x| Val::Bytes(x),
    serde_json::Value => |x| Val::Json(x),
}

impl<T: Into<Val>> From<Option<T>> for Val {
    fn from(x: Option<T>) -> Val {
        x.map_or(Val::Null, Into::into)
    }
}

macro_rules! id_vals {
    ($($t:ident),*) => {$(
        impl From<orgwall_core::$t> for Val {
            fn from(x: orgwall_core::$t) -> Val { Val::Uuid(x.uuid()) }
        }
        impl From<&orgwall_core::$t> for Val {
            fn from(x: &orgwall_core::$t) -> Val { Val::Uuid(x.uuid()) }
        }
        impl FromVal for orgwall_core::$t {
            fn from_val(v: &Val) -> std::result::Result<Self, String> {
                Uuid::from_val(v).map(orgwall_core::$t::from_uuid)
            }
        }
    )*};
}

id_vals!(
    OrgId,
    UserId,
    SessionId,
    RoleId,
    InvitationId,
    ApiKeyId,
    ProjectId,
    TicketId,
    CommentId,
    NoteId,
    FileId,
    AuditEventId,
    JobId,
    ExportId
);

/// Builds a parameter slice: `params![a, b, c]`.
#[macro_export]
macro_rules! params {
    ($($x:expr),* $(,)?) => {
        &[$($crate::Val::from($x)),*][..]
    };
}

/// The current time, truncated to microseconds (what both backends store).
pub fn now() -> DateTime<Utc> {
    let t = Utc::now();
    Utc.timestamp_micros(t.timestamp_micros())
        .single()
        .unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_moves_a_value_out_and_leaves_null() {
        let mut r = Row(vec![
            Val::Text("title".into()),
            Val::Null,
            Val::Int(7),
            Val::Text("open".into()),
        ]);
        let t: String = r.take(0).unwrap();
        assert_eq!(t, "title");
        assert_eq!(r.values()[0], Val::Null);
        // Taken twice: the second sees the NULL left behind.
        assert!(r.take::<String>(0).is_err());
        assert_eq!(r.take::<Option<String>>(0).unwrap(), None);
        assert_eq!(r.take::<Option<String>>(1).unwrap(), None);
        assert_eq!(r.take::<i64>(2).unwrap(), 7);
        assert!(r.take::<String>(4).is_err());
        assert_eq!(r.text(3).unwrap(), "open");
        assert!(r.text(2).is_err(), "a taken integer is NULL now, not text");
        assert!(r.text(9).is_err());
    }

    #[test]
    fn from_owned_agrees_with_from_val() {
        let vals = [
            Val::Text("x".into()),
            Val::Uuid(Uuid::nil()),
            Val::Bytes(vec![1, 2]),
            Val::Json(serde_json::json!({"a": 1})),
            Val::Int(3),
            Val::Null,
        ];
        for v in vals {
            assert_eq!(
                String::from_val(&v).ok(),
                String::from_owned(v.clone()).ok()
            );
            assert_eq!(
                <Option<String>>::from_val(&v).ok(),
                <Option<String>>::from_owned(v.clone()).ok()
            );
            assert_eq!(
                <Vec<u8>>::from_val(&v).ok(),
                <Vec<u8>>::from_owned(v.clone()).ok()
            );
            assert_eq!(
                serde_json::Value::from_val(&v).ok(),
                serde_json::Value::from_owned(v.clone()).ok()
            );
            assert_eq!(Val::from_val(&v).ok(), Val::from_owned(v).ok());
        }
    }
}
