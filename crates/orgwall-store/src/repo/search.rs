//! Full-text search terms (`q` of the ticket and note lists), the same on both backends.
//!
//! `q` is text, never query syntax: it is split on whitespace (control characters count
//! as whitespace), a word counts if it holds a
//! letter or digit, and a row matches when every word appears in its title or body as a
//! whole word, case-insensitively (no stemming, no operators, no prefixes).
//! - PostgreSQL: the words go to `plainto_tsquery('simple', $n)`, which reads no operators
//!   and ignores punctuation, against the stored `search` vector. `@@` is not leakproof,
//!   so under forced row-level security the GIN index on `search` is out of the server
//!   role's reach; the candidates come from the terms tables instead (migration 0006,
//!   `<row>_terms (org_id, term, id)`, one row per distinct lexeme of a row's vector): the
//!   postings of the query's rarest lexeme, in id order after the keyset bound, each row
//!   fetched by primary key and re-checked with the full `search @@ ...`. Every lexeme of
//!   a `plainto_tsquery` is required (it joins them with `&` or `<->`, never `|` or `!`),
//!   so a matching row is always among one lexeme's postings: the results, their order and
//!   their pages are exactly those of the plain scan. "Rarest" is counted up to
//!   [`RAREST_CAP`] postings per lexeme (and not at all for a query of one lexeme); among
//!   lexemes past the cap the longest wins. A query with no lexeme picks none and finds
//!   nothing, as `@@` with an empty query does.
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

    /// Whether it is one word of ASCII letters and digits that begins with a letter, or
    /// of digits only: one lexeme for PostgreSQL's default parser under `simple`, and one
    /// FTS5 string (a word that begins with digits can be two: `24E3r0` is the number
    /// `24E3` and the word `r0`, found by `tests/search_terms.rs`). Then every
    /// posting of that lexeme is a hit, and a page of hits reads at most a page of
    /// postings and rows, as a plain page does. With more words (or punctuation, which
    /// splits one word into several lexemes) the rarest lexeme's postings are read until
    /// a page of them matches every other word: as many as that lexeme has.
    pub(crate) fn one_lexeme(&self) -> bool {
        matches!(self.words.as_slice(), [w] if w.chars().all(|c| c.is_ascii_alphanumeric())
            && (w.starts_with(|c: char| c.is_ascii_alphabetic()) || w.chars().all(|c| c.is_ascii_digit())))
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

    /// How a list of `table` reads this search: `from` replaces the table name in its
    /// `FROM` and `cond` is appended to its `WHERE`; both may use `$1` (the org), `$2` (the
    /// keyset bound: rows with `id > $2`) and `$n` (the one parameter of the search, whose
    /// value is `value`). The list keeps its `WHERE org_id = $1 AND id > $2 ...` and its
    /// `ORDER BY id LIMIT ..`.
    pub(crate) fn sql(&self, tx: &TenantTx<'_>, table: Searched) -> SearchSql {
        let t = table.table();
        match tx.kind() {
            // The terms' postings of the rarest lexeme (equality on text and uuid: an
            // index condition under row-level security), then the row by primary key.
            // The derived table keeps the row's own column names for the list's SQL; its
            // join makes `id` and the postings' id one equivalence class, so `ORDER BY
            // id` reads the postings index in order (no sort, stops at the limit).
            BackendKind::Postgres => {
                let terms = table.terms();
                SearchSql {
                    from: format!(
                        "(SELECT r.* FROM {terms} p JOIN {t} r ON r.org_id = p.org_id AND r.id = p.id
                          WHERE p.org_id = $1 AND p.id > $2 AND p.term = (
                            SELECT l.term FROM unnest(tsvector_to_array(to_tsvector('simple', $n::text))) AS l (term)
                            ORDER BY CASE WHEN length(to_tsvector('simple', $n::text)) > 1 THEN (
                                SELECT count(*) FROM (
                                    SELECT FROM {terms} c WHERE c.org_id = $1 AND c.term = l.term
                                    LIMIT {RAREST_CAP}) c) END,
                              length(l.term) DESC, l.term
                            LIMIT 1)) {t}"
                    ),
                    cond: " AND search @@ plainto_tsquery('simple', $n::text)".to_owned(),
                    value: self.tsquery_text(),
                }
            }
            // The scoped view `<table>_fts` over the FTS5 index (see migration 0003).
            BackendKind::Sqlite => SearchSql {
                from: t.to_owned(),
                cond: format!(" AND id IN (SELECT id FROM {t}_fts WHERE doc MATCH $n)"),
                value: self.fts5_query(),
            },
        }
    }
}

/// How many postings of a lexeme count when picking a query's rarest (beyond it, lexemes
/// are all "common"; counting costs an index-only scan of at most this many entries).
pub(crate) const RAREST_CAP: u32 = 1000;

/// A searchable table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Searched {
    /// `tickets` (terms: `ticket_terms`).
    Tickets,
    /// `notes` (terms: `note_terms`).
    Notes,
}

impl Searched {
    /// The table.
    pub(crate) fn table(self) -> &'static str {
        match self {
            Searched::Tickets => "tickets",
            Searched::Notes => "notes",
        }
    }

    /// Its terms table (PostgreSQL).
    pub(crate) fn terms(self) -> &'static str {
        match self {
            Searched::Tickets => "ticket_terms",
            Searched::Notes => "note_terms",
        }
    }
}

/// The SQL pieces of a search (see [`Search::sql`]).
#[derive(Debug, Clone)]
pub(crate) struct SearchSql {
    /// What the list reads `FROM` instead of the table.
    pub(crate) from: String,
    /// What the list appends to its `WHERE`.
    pub(crate) cond: String,
    /// The value of `$n`.
    pub(crate) value: String,
}

#[cfg(test)]
mod tests {
    use super::Search;

    #[test]
    fn one_lexeme_is_one_plain_word() {
        let one = |q: &str| Search::parse(q).is_some_and(|s| s.one_lexeme());
        assert!(one("Zephyr") && one("  a1b2  ") && one("007"));
        assert!(!one("login page") && !one("e-mail") && !one("caf\u{e9}") && !one("a_b"));
        assert!(!one("24E3r0") && one("r24E3") && one("2403"));
    }

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
