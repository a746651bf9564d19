//! Values parsed at the edge: slugs and emails, and the one rule for text. Parse, don't
//! validate: once a value has one of these types, it is known good.
//!
//! **Text.** No text anywhere may hold NUL (PostgreSQL refuses it, SQLite would store
//! it) or any other control character (C0, DEL, C1) except, in long text (bodies,
//! descriptions, comments), tab, line feed and carriage return; names, titles and other
//! one-line text hold none at all. [`check_long_text`] and [`check_line`] are the rule;
//! the HTTP edge applies [`check_long_text`] to every string of every JSON body and query
//! parameter (422), and the stores apply [`check_line`] to every name and title.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An organization slug: 2 to 40 characters of `a-z`, `0-9` and `-`, starting with a
/// letter, not ending with `-`, without `--`; not a UUID and not a reserved word.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize)]
#[serde(transparent)]
pub struct Slug(String);

/// Words that would make confusing subdomains or paths.
const RESERVED_SLUGS: &[&str] = &[
    "admin", "api", "app", "auth", "console", "help", "internal", "mail", "me", "new", "orgs",
    "root", "static", "status", "support", "system", "www",
];

impl Slug {
    /// Parses and validates a slug.
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok_len = (2..=40).contains(&s.len());
        let ok_chars = s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let starts = s.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
        if !ok_len || !ok_chars || !starts || s.ends_with('-') || s.contains("--") {
            return Err("slug must be 2-40 characters of a-z, 0-9 and single hyphens, starting with a letter".into());
        }
        if uuid::Uuid::parse_str(s).is_ok() {
            return Err("slug must not be a UUID".into());
        }
        if RESERVED_SLUGS.contains(&s) {
            return Err(format!("slug {s:?} is reserved"));
        }
        Ok(Slug(s.to_owned()))
    }

    /// The slug text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Slug {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Slug::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// An email address, normalized to lower case (addresses compare case-insensitively
/// everywhere in orgwall: login, invitations).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Parses a practical subset of RFC 5321 addresses: `local@domain`, at most 254
    /// characters, local part at most 64, a dotted domain of letters, digits and hyphens.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad = || "invalid email address".to_string();
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = s.rsplit_once('@').ok_or_else(bad)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.contains('@')
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !local_ok || !domain_ok {
            return Err(bad());
        }
        Ok(Email(s.to_ascii_lowercase()))
    }

    /// The normalized address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Email::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Why `s` cannot be long text (NUL or a control character other than tab, LF, CR).
pub fn check_long_text(s: &str) -> Result<(), String> {
    match s
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        None => Ok(()),
        Some(c) => Err(format!(
            "must not contain control characters such as U+{:04X}",
            u32::from(c)
        )),
    }
}

/// Why `s` cannot be one-line text (a name, a title): any control character, tab and
/// line breaks included.
pub fn check_line(s: &str) -> Result<(), String> {
    match s.chars().find(|c| c.is_control()) {
        None => Ok(()),
        Some(c) => Err(format!(
            "must be one line without control characters (found U+{:04X})",
            u32::from(c)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn slugs() {
        for ok in ["acme", "globex", "a1", "my-org-2"] {
            assert!(Slug::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "a", "Acme", "-acme", "acme-", "ac--me", "1acme", "ac me", "api", "ac/me", "../x",
        ] {
            assert!(Slug::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse(" Alice@ACME.test ").map(|e| e.0),
            Ok("alice@acme.test".into())
        );
        for bad in [
            "",
            "alice",
            "alice@",
            "@acme.test",
            "alice@acme",
            "a b@acme.test",
            "alice@-acme.test",
            "a..b@acme.test",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_rule() {
        for ok in ["", "plain", "tab\there", "two\nlines\r\n", "émoji 🎉"] {
            assert!(check_long_text(ok).is_ok(), "{ok:?}");
        }
        for bad in ["a\0b", "\u{1b}[31m", "\u{7f}", "\u{85}", "\u{0}"] {
            assert!(check_long_text(bad).is_err(), "{bad:?}");
            assert!(check_line(bad).is_err(), "{bad:?}");
        }
        for bad in ["a\tb", "a\nb", "a\rb"] {
            assert!(check_line(bad).is_err(), "{bad:?}");
        }
        assert!(check_line("Acme Corp — été").is_ok());
    }

    proptest! {
        #[test]
        fn parsed_slugs_are_safe_in_paths_and_hosts(s in "\\PC{0,50}") {
            if let Ok(slug) = Slug::parse(&s) {
                prop_assert!(slug.as_str().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
                prop_assert!(slug.as_str().parse::<uuid::Uuid>().is_err());
            }
        }

        #[test]
        fn emails_normalize_case(local in "[a-zA-Z0-9]{1,20}", domain in "[a-zA-Z]{1,10}\\.[a-zA-Z]{2,5}") {
            let upper = Email::parse(&format!("{local}@{domain}").to_uppercase());
            let lower = Email::parse(&format!("{local}@{domain}").to_lowercase());
            prop_assert_eq!(upper, lower);
        }
    }
}
