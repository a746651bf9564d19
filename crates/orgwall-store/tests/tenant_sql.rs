//! Tenant SQL stays inside the tenant: the repositories of orgwall's data plane (the
//! workspace: projects, tickets, comments, notes, files, exports, search, stats) never
//! name a control-plane table (identity and access, the job queue and the outbox) in
//! their SQL. What a data-plane transaction needs from the control plane (the org's plan,
//! a member's name) comes through the scope or a separate control-plane read, so an
//! org's data can live in a database of its own (per-tenant placement).
//!
//! The check reads the source: every string literal of the data-plane modules is
//! searched for a control-plane table name used as a table (after FROM, JOIN, INTO,
//! UPDATE). The exceptions that remain are listed with their reason; each is a known
//! piece of work for placement, and a new one fails this test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;

/// The data plane's repository modules.
const DATA_PLANE: &[&str] = &[
    "src/repo/projects.rs",
    "src/repo/tickets.rs",
    "src/repo/comments.rs",
    "src/repo/notes.rs",
    "src/repo/files.rs",
    "src/repo/exports.rs",
    "src/repo/search.rs",
    "src/repo/stats.rs",
    "src/jobs/export.rs",
];

/// Tables of the control plane (the kernel's identity and access, orgwall's queue and
/// mail).
fn control_plane() -> Vec<&'static str> {
    let catalog = orgwall_store::catalog();
    let kernel = catalog
        .modules()
        .iter()
        .find(|m| m.name == "tenancy")
        .copied()
        .expect("the kernel module");
    let mut v: Vec<&'static str> = kernel
        .tenant_tables
        .iter()
        .chain(kernel.global_tables)
        .copied()
        .filter(|t| *t != "audit_events") // audit events follow the org (data plane)
        .collect();
    v.extend(["jobs", "job_queues", "outbox", "email_verifications"]);
    v
}

/// Known exceptions: (file, table, why it is still there).
const KNOWN: &[(&str, &str, &str)] = &[
    (
        "src/repo/stats.rs",
        "memberships",
        "the member count of /stats; moves to a control-plane read with placement",
    ),
    (
        "src/repo/exports.rs",
        "jobs",
        "an export queues its build and expiry jobs in its own transaction (so either both exist or neither); with placement the queue write needs a control-plane transaction or a per-placement outbox",
    ),
    (
        "src/repo/tickets.rs",
        "memberships",
        "the console's ticket page reads the members (for the assignee menu) in its flight; moves to a control-plane read with placement",
    ),
];

fn uses_table(sql: &str, table: &str) -> bool {
    let words: Vec<String> = sql
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    words
        .windows(2)
        .any(|w| matches!(w[0].as_str(), "from" | "join" | "into" | "update") && w[1] == table)
}

/// The string literals of a Rust source file (plain and raw strings, roughly: enough for
/// SQL, which this project writes as plain literals).
fn literals(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = src.chars().peekable();
    let mut in_comment = false;
    let mut prev = ' ';
    while let Some(c) = chars.next() {
        if in_comment {
            if c == '\n' {
                in_comment = false;
            }
        } else if c == '/' && chars.peek() == Some(&'/') {
            in_comment = true;
        } else if c == '"' && prev != '\'' {
            let mut s = String::new();
            while let Some(d) = chars.next() {
                match d {
                    '\\' => {
                        if let Some(e) = chars.next() {
                            s.push(e);
                        }
                    }
                    '"' => break,
                    other => s.push(other),
                }
            }
            out.push(s);
        }
        prev = c;
    }
    out
}

#[test]
fn data_plane_sql_names_no_control_plane_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tables = control_plane();
    let mut found = Vec::new();
    for file in DATA_PLANE {
        let src = std::fs::read_to_string(root.join(file)).expect(file);
        for lit in literals(&src) {
            for t in &tables {
                if uses_table(&lit, t) && !KNOWN.iter().any(|(f, k, _)| f == file && k == t) {
                    found.push(format!("{file}: {t} in {:?}", lit.trim()));
                }
            }
        }
        // SQL borrowed from a control-plane repository (`memberships::MEMBER_SELECT`).
        for t in &tables {
            let borrowed = format!("{t}::");
            let uses = src.match_indices(&borrowed).any(|(i, _)| {
                src[i + borrowed.len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_uppercase())
            });
            if uses && !KNOWN.iter().any(|(f, k, _)| f == file && k == t) {
                found.push(format!("{file}: SQL of the {t} repository"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "tenant SQL names control-plane tables:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_sees_a_violation() {
    // The detector itself: a join of users in tenant SQL is found, a column is not.
    let lits =
        literals(r#"let q = "SELECT t.id FROM tickets t JOIN users u ON u.id = t.created_by";"#);
    assert!(lits.iter().any(|l| uses_table(l, "users")));
    assert!(!uses_table(
        "SELECT created_by, users_count FROM tickets",
        "users"
    ));
}
