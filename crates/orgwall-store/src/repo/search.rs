//! Full-text search terms (`q` of the ticket and note lists), the same on both backends.
//!
//! `q` is text, never query syntax: it is split on whitespace (control characters count
//! as whitespace), a word counts if it holds a
//! letter or digit, and a row matches when every word appears in its title or body as a
//! whole word, case-insensitively (no stemming, no operators, no prefixes).
//! - PostgreSQL: the words go to `plainto_tsquery('simple', $n)`, which reads no operators
//!   and ignores punctuation, against the stored `search` vector.
//! - SQLite: each word becomes an FTS5 string (`"..."`, embedded quotes doubled) and the
//!   strings are ANDed: `"login" "page"`. Inside a string FTS5 reads no syntax at all; a
//!   word with punctuation in it becomes the phrase of its parts (`"e-mail"` finds
//!   "e-mail" and "e mail"), and a string with no token in it matches nothing.

use crate::db::{BackendKind, TenantTx};

/// The words of a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Search {
    words: Vec<String>,
}

impl Search {
    /// The words of `q`, or `None` when it holds none (then nothing can match).
    pub(crate) fn parse(q: &str) -> Option<Search> {
        let words: Vec<String> = q
            .replace(char::is_control, " ")
            .split_whitespace()
            .filter(|w| w.chars().any(char::is_alphanumeric))
            .map(str::to_owned)
            .collect();
        (!words.is_empty()).then_some(Search { words })
    }

    /// The text for `plainto_tsquery` (PostgreSQL).
    pub(crate) fn tsquery_text(&self) -> String {
        self.words.join(" ")
    }

    /// The FTS5 query: every word as a string, ANDed (SQLite).
    pub(crate) fn fts5_query(&self) -> String {
        let quoted: Vec<String> = self
            .words
            .iter()
            .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
            .collect();
        quoted.join(" ")
    }

    /// The condition that keeps the rows of `table` (`tickets`, `notes`) matching this
    /// search, with its one parameter as `$n`, and that parameter's value.
    pub(crate) fn condition(&self, tx: &TenantTx<'_>, table: &str) -> (String, String) {
        match tx.kind() {
            BackendKind::Postgres => (
                " AND search @@ plainto_tsquery('simple', $n)".to_owned(),
                self.tsquery_text(),
            ),
            // The scoped view `<table>_fts` over the FTS5 index (see migration 0002).
            BackendKind::Sqlite => (
                format!(" AND id IN (SELECT id FROM {table}_fts WHERE doc MATCH $n)"),
                self.fts5_query(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Search;

    #[test]
    fn words_are_quoted_and_never_syntax() {
        let s = Search::parse(r#"  Login "page" NEAR( a*b  "#).map(|s| s.fts5_query());
        assert_eq!(s.as_deref(), Some(r#""Login" """page""" "NEAR(" "a*b""#));
        let s = Search::parse(") OR 1=1 --").map(|s| s.tsquery_text());
        assert_eq!(s.as_deref(), Some("OR 1=1"));
    }

    #[test]
    fn no_word_no_search() {
        for q in ["", "   ", "*", "%", "\"", "-- )", "\u{0}"] {
            assert_eq!(Search::parse(q), None, "{q:?}");
        }
        let s = Search::parse("a\u{0}b").map(|s| s.tsquery_text());
        assert_eq!(s.as_deref(), Some("a b"));
    }
}
