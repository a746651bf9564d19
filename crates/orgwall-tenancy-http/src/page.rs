//! Keyset pagination: `?limit=` (1..=200, default 50) and `?cursor=` (opaque), answered
//! as `{"items": [...], "next_cursor": "..." | null}`.
//!
//! A cursor is the URL-safe base64 of `v1:<last id>`; the next page is the rows whose id
//! is greater, so inserts between pages never cause duplicates or gaps among existing
//! rows. A garbled cursor or an out-of-range limit is 422 `validation_failed`.

use crate::problem::Problem;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use orgwall_core::Error;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Default page size.
pub const DEFAULT_LIMIT: i64 = 50;
/// Largest page size.
pub const MAX_LIMIT: i64 = 200;

/// The raw query parameters (handlers with more filters flatten this).
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Page size, 1 to 200 (default 50).
    #[schemars(with = "Option<i64>", range(min = 1, max = 200))]
    pub limit: Option<String>,
    /// Opaque cursor from the previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Rows per page.
    pub limit: i64,
    /// Rows after this id.
    pub after: Option<Uuid>,
}

/// The cursor that continues after `id`.
pub fn cursor_after(id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1:{}", id.hyphenated()))
}

fn bad(detail: &str) -> Problem {
    Problem::from(Error::Validation(detail.to_owned()))
}

impl PageQuery {
    /// Validates the limit and decodes the cursor.
    pub fn page(&self) -> Result<Page, Problem> {
        let limit = match self.limit.as_deref() {
            None => DEFAULT_LIMIT,
            Some(l) => l
                .parse::<i64>()
                .ok()
                .filter(|l| (1..=MAX_LIMIT).contains(l))
                .ok_or_else(|| bad("limit must be an integer between 1 and 200"))?,
        };
        let after = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(c) if c.len() <= 128 => {
                let raw = URL_SAFE_NO_PAD
                    .decode(c)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok());
                let id = raw
                    .as_deref()
                    .and_then(|r| r.strip_prefix("v1:"))
                    .and_then(|u| Uuid::parse_str(u).ok())
                    .ok_or_else(|| bad("cursor is not valid"))?;
                Some(id)
            }
            Some(_) => return Err(bad("cursor is not valid")),
        };
        Ok(Page { limit, after })
    }
}

/// A page of results.
#[derive(Debug, Serialize)]
pub struct Paged<T: Serialize> {
    /// The rows.
    pub items: Vec<T>,
    /// Where the next page starts, if there is one.
    pub next_cursor: Option<String>,
}

/// Builds a page from up to `limit + 1` rows (the extra row only says a next page exists).
pub fn paged<T: Serialize>(mut rows: Vec<T>, page: Page, id: impl Fn(&T) -> Uuid) -> Paged<T> {
    let limit = usize::try_from(page.limit).unwrap_or(0);
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = if more {
        rows.last().map(|r| cursor_after(id(r)))
    } else {
        None
    };
    Paged {
        items: rows,
        next_cursor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn cursors_round_trip(bytes in proptest::array::uniform16(any::<u8>())) {
            let id = Uuid::from_bytes(bytes);
            let q = PageQuery { limit: Some("7".into()), cursor: Some(cursor_after(id)) };
            prop_assert_eq!(q.page().ok(), Some(Page { limit: 7, after: Some(id) }));
        }

        #[test]
        fn garbage_cursors_are_refused_not_panics(s in "\\PC{0,200}") {
            let q = PageQuery { limit: None, cursor: Some(s.clone()) };
            if let Ok(p) = q.page() {
                // Only a real cursor (or empty) decodes.
                prop_assert!(s.is_empty() || p.after.is_some());
            }
        }
    }

    #[test]
    fn limits() {
        for (l, ok) in [
            ("0", false),
            ("1", true),
            ("200", true),
            ("201", false),
            ("-1", false),
            ("x", false),
        ] {
            let q = PageQuery {
                limit: Some(l.into()),
                cursor: None,
            };
            assert_eq!(q.page().is_ok(), ok, "{l}");
        }
    }
}
