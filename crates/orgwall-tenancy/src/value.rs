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
}

fn mismatch<T>(want: &str, got: &Val) -> std::result::Result<T, String> {
    Err(format!("expected {want}, found {got:?}"))
}

impl FromVal for Val {
    fn from_val(v: &Val) -> std::result::Result<Self, String> {
        Ok(v.clone())
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
}

impl FromVal for serde_json::Value {
    fn from_val(v: &Val) -> std::result::Result<Self, String> {
        match v {
            Val::Json(j) => Ok(j.clone()),
            Val::Text(s) => serde_json::from_str(s).map_err(|e| e.to_string()),
            other => mismatch("json", other),
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
