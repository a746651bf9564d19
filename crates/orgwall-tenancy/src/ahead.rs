//! Reads sent ahead: a route's one-flight read, sent in the flight that looks up a cold
//! API key, so the key's first request costs one round trip, as a warm one does.
//!
//! A route whose handler reads in one flight names that flight from the org and the path
//! (`RouteSpec::ahead` in the HTTP kernel). When a request's API key is not in the access
//! cache, the wall sends the route's flight behind the key lookup and its role
//! ([`crate::access::authenticate_api_key_ahead`]), in the same implicit transaction:
//!
//! - the lookup statement is what enters an org (`app.org_id` is set from the key row it
//!   found, so only by a live key of a live org); an unknown, revoked or expired key sets
//!   nothing and the flight's statements read under no org: zero rows;
//! - the statements name the org the request claimed (`org_id = $1`), and the policy
//!   admits the key's own org only: a key of another org reads nothing;
//! - the answer is kept only if the key's org is the org the flight names and the org is
//!   served from the shared tables (the role statement reads the org's placement in the
//!   same flight; an org placed elsewhere has no rows there, and the handler reads from
//!   its placement as usual);
//! - the wall then authorizes the request in full, exactly as for any other (membership
//!   of the key's org, the route's permission, the rate limits), and only then hands the
//!   answer to the handler, through the request ([`ReadAhead`]); a request refused with
//!   401, 403 or 429 drops it unread.
//!
//! The handler asks [`Db::read_flight`] for the same flight: it takes the answer read
//! ahead if that holds this very flight (the same statements and parameters) for its
//! scope's org, and otherwise sends the flight itself. The flight ran in one transaction
//! with the directory read that routed it, so a move's cleanup waits for it as for any
//! read (see ARCHITECTURE.md, *Placement*).

use crate::scope::OrgScope;
use crate::{Db, Row, Val};
use orgwall_core::{OrgId, Result};

/// The statements of a handler's one-flight read in one org, with their parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Flight {
    org: OrgId,
    statements: Vec<(String, Vec<Val>)>,
}

impl Flight {
    /// An empty flight in `org`.
    pub fn new(org: OrgId) -> Self {
        Flight {
            org,
            statements: Vec::new(),
        }
    }

    /// Adds a read statement (its answers come back in the order they were added).
    #[must_use]
    pub fn read(mut self, sql: impl Into<String>, params: &[Val]) -> Self {
        self.statements.push((sql.into(), params.to_vec()));
        self
    }

    /// The org it reads.
    pub fn org(&self) -> OrgId {
        self.org
    }

    /// Its statements, as [`crate::db::Data::query_many`] takes them.
    pub fn statements(&self) -> Vec<(&str, &[Val])> {
        self.statements
            .iter()
            .map(|(sql, params)| (sql.as_str(), params.as_slice()))
            .collect()
    }

    /// How many statements it has.
    pub fn len(&self) -> usize {
        self.statements.len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }
}

/// A flight's answer, read ahead in the lookup flight of the API key that authenticated
/// the request; the wall hands it to the handler only once the request is authorized.
#[derive(Clone, Debug)]
pub struct ReadAhead {
    flight: Flight,
    rows: Vec<Vec<Row>>,
}

impl ReadAhead {
    pub(crate) fn new(flight: Flight, rows: Vec<Vec<Row>>) -> Option<Self> {
        (rows.len() == flight.len()).then_some(ReadAhead { flight, rows })
    }

    /// The flight it answers.
    pub fn flight(&self) -> &Flight {
        &self.flight
    }
}

impl Db {
    /// Runs `flight` as a one-flight read in `scope` ([`Db::read_once`]), or takes its
    /// answer from `ahead` when that holds this very flight, read for this scope's org.
    pub async fn read_flight(
        &self,
        scope: &OrgScope,
        ahead: Option<ReadAhead>,
        flight: &Flight,
    ) -> Result<Vec<Vec<Row>>> {
        if let Some(a) = ahead {
            if a.flight == *flight && flight.org == scope.org_id() {
                return Ok(a.rows);
            }
        }
        let mut tx = self.read_once(scope).await?;
        let rows = tx.data().query_many(&flight.statements()).await?;
        tx.commit().await?;
        Ok(rows)
    }
}
