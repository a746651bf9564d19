//! The probe's findings and their three renderings: a human table, JSON and JUnit XML.

use crate::spec::Operation;
use serde::Serialize;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// Cross-tenant access: data of B reached A, or a request that had to be denied was served.
    Leak,
    /// Suspicious but not a leak (a 5xx instead of a denial, an unknown field accepted).
    Warning,
    /// An existence oracle: A is answered differently for B's id than for an id that
    /// exists nowhere (403 versus 404), so A learns that B's id exists. Counted as a leak.
    ExistenceOracle,
}

impl FindingKind {
    /// Whether it counts as a leak (fails the run).
    pub fn is_leak(self) -> bool {
        matches!(self, FindingKind::Leak | FindingKind::ExistenceOracle)
    }
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Leak or warning.
    pub kind: FindingKind,
    /// What happened.
    pub detail: String,
    /// The request path.
    pub request: String,
}

/// What happened to one operation.
#[derive(Debug, Clone, Serialize)]
pub struct OpReport {
    /// `operationId` or `METHOD path`.
    pub id: String,
    /// Method.
    pub method: String,
    /// Path template.
    pub path: String,
    /// Probes sent.
    pub tried: usize,
    /// Probes answered with a denial.
    pub denied: usize,
    /// Findings.
    pub findings: Vec<Finding>,
    /// Why nothing was tried, if nothing was.
    pub skipped: Option<String>,
    /// Transport errors (timeouts, refused connections).
    pub errors: Vec<String>,
}

impl OpReport {
    /// Leaks found on this operation (existence oracles included).
    pub fn leaks(&self) -> usize {
        self.findings.iter().filter(|f| f.kind.is_leak()).count()
    }
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The document probed.
    pub spec: String,
    /// The server probed.
    pub base_url: String,
    /// Per operation, in document order.
    pub ops: Vec<OpReport>,
    /// Whole-run checks that failed (B's data changed, A's writes landed in B).
    pub integrity: Vec<String>,
    /// Ids discovered as A.
    pub discovered_a: usize,
    /// Ids discovered as B.
    pub discovered_b: usize,
    /// Canaries planted as B.
    pub canaries: usize,
    /// Requests sent.
    pub requests: usize,
    /// Requests that failed in transport.
    pub transport_errors: usize,
    /// The request budget ran out before the end.
    pub budget_exhausted: bool,
    /// B's credentials found nothing.
    pub credentials_failed: bool,
    /// Remarks.
    pub notes: Vec<String>,
}

impl Report {
    /// An empty report for these operations.
    pub fn new(base_url: &str, ops: &[Operation]) -> Self {
        Report {
            spec: String::new(),
            base_url: base_url.to_owned(),
            ops: ops
                .iter()
                .map(|o| OpReport {
                    id: o.id.clone(),
                    method: o.method.clone(),
                    path: o.path.clone(),
                    tried: 0,
                    denied: 0,
                    findings: Vec::new(),
                    skipped: None,
                    errors: Vec::new(),
                })
                .collect(),
            integrity: Vec::new(),
            discovered_a: 0,
            discovered_b: 0,
            canaries: 0,
            requests: 0,
            transport_errors: 0,
            budget_exhausted: false,
            credentials_failed: false,
            notes: Vec::new(),
        }
    }

    /// Probes sent in the attack phase.
    pub fn probes(&self) -> usize {
        self.ops.iter().map(|o| o.tried).sum()
    }

    /// Existence oracles found (they are counted among the leaks too).
    pub fn oracles(&self) -> usize {
        self.ops
            .iter()
            .flat_map(|o| &o.findings)
            .filter(|f| f.kind == FindingKind::ExistenceOracle)
            .count()
    }

    /// Leaks found (operations and integrity checks; existence oracles included).
    pub fn leaks(&self) -> usize {
        self.ops.iter().map(OpReport::leaks).sum::<usize>() + self.integrity.len()
    }

    /// Operations never exercised.
    pub fn unexercised(&self) -> Vec<&OpReport> {
        self.ops.iter().filter(|o| o.tried == 0).collect()
    }

    /// Whether the run was complete enough to trust a "no leaks" answer.
    pub fn complete(&self) -> bool {
        !self.budget_exhausted && self.transport_errors == 0 && !self.credentials_failed
    }

    /// `N probes, N leaks`.
    pub fn summary(&self) -> String {
        format!("{} probes, {} leaks", self.probes(), self.leaks())
    }

    /// The human table.
    pub fn table(&self) -> String {
        let w = self
            .ops
            .iter()
            .map(|o| o.method.len() + 1 + o.path.len())
            .max()
            .unwrap_or(10)
            .max(9);
        let mut s = format!(
            "{:<w$}  {:>5}  {:>6}  {:>6}\n",
            "operation", "tried", "denied", "leaked"
        );
        for o in &self.ops {
            let name = format!("{} {}", o.method, o.path);
            s.push_str(&format!(
                "{name:<w$}  {:>5}  {:>6}  {:>6}",
                o.tried,
                o.denied,
                o.leaks()
            ));
            if let Some(why) = &o.skipped {
                s.push_str(&format!("  (skipped: {why})"));
            }
            s.push('\n');
            for f in &o.findings {
                let tag = match f.kind {
                    FindingKind::Leak => "LEAK",
                    FindingKind::ExistenceOracle => "LEAK (existence oracle)",
                    FindingKind::Warning => "warn",
                };
                s.push_str(&format!("    {tag}: {} [{}]\n", f.detail, f.request));
            }
            for e in o.errors.iter().take(3) {
                s.push_str(&format!("    error: {e}\n"));
            }
        }
        for i in &self.integrity {
            s.push_str(&format!("LEAK (integrity): {i}\n"));
        }
        for n in &self.notes {
            s.push_str(&format!("note: {n}\n"));
        }
        s.push_str(&format!(
            "discovered {} ids as A, {} as B ({} canaries); {} requests\n",
            self.discovered_a, self.discovered_b, self.canaries, self.requests
        ));
        s.push_str(&self.summary());
        s.push('\n');
        s
    }

    /// JSON.
    pub fn json(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(m) = v.as_object_mut() {
            m.insert("probes".into(), self.probes().into());
            m.insert("leaks".into(), self.leaks().into());
            m.insert("existence_oracles".into(), self.oracles().into());
        }
        serde_json::to_string_pretty(&v).unwrap_or_default()
    }

    /// JUnit XML: one test case per operation (failures are leaks), plus one for
    /// integrity.
    pub fn junit(&self) -> String {
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        };
        let failures = self.ops.iter().filter(|o| o.leaks() > 0).count()
            + usize::from(!self.integrity.is_empty());
        let mut s = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"orgwall-probe\" tests=\"{}\" failures=\"{failures}\">\n",
            self.ops.len() + 1
        );
        for o in &self.ops {
            s.push_str(&format!(
                "  <testcase classname=\"isolation\" name=\"{}\">\n",
                esc(&format!("{} {}", o.method, o.path))
            ));
            for f in o.findings.iter().filter(|f| f.kind.is_leak()) {
                let kind = match f.kind {
                    FindingKind::ExistenceOracle => "existence_oracle",
                    _ => "leak",
                };
                s.push_str(&format!(
                    "    <failure type=\"{kind}\" message=\"{}\">{}</failure>\n",
                    esc(&f.detail),
                    esc(&f.request)
                ));
            }
            if let Some(why) = &o.skipped {
                s.push_str(&format!("    <skipped message=\"{}\"/>\n", esc(why)));
            }
            s.push_str("  </testcase>\n");
        }
        s.push_str("  <testcase classname=\"isolation\" name=\"integrity of B's data\">\n");
        for i in &self.integrity {
            s.push_str(&format!("    <failure message=\"{}\"/>\n", esc(i)));
        }
        s.push_str("  </testcase>\n</testsuite>\n");
        s
    }
}
