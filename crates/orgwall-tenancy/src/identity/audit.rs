//! The audit log (tenant table `audit_events`).

use crate::db::{TenantTx, Tx};
use crate::params;
use crate::scope::{OrgScope, Principal};
use crate::value::now;
use chrono::{DateTime, Utc};
use orgwall_core::{AuditEventId, Result};
use uuid::Uuid;

/// An event to record.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    action: &'static str,
    target: Option<(&'static str, Uuid)>,
    detail: serde_json::Value,
    request_id: Option<String>,
}

impl AuditEntry {
    /// An event named `action` (e.g. `member.removed`).
    pub fn new(action: &'static str) -> Self {
        AuditEntry {
            action,
            target: None,
            detail: serde_json::json!({}),
            request_id: None,
        }
    }

    /// The object acted on.
    pub fn target(mut self, kind: &'static str, id: Uuid) -> Self {
        self.target = Some((kind, id));
        self
    }

    /// Free-form detail (never secrets).
    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }

    /// The request that caused it.
    pub fn request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditEvent {
    /// Its id.
    pub id: AuditEventId,
    /// `user`, `api_key` or `system`.
    pub actor_kind: String,
    /// The user or key id.
    pub actor_id: Option<Uuid>,
    /// The system actor's name.
    pub actor_name: Option<String>,
    /// What happened.
    pub action: String,
    /// The kind of object acted on.
    pub target_kind: Option<String>,
    /// Its id.
    pub target_id: Option<Uuid>,
    /// Detail.
    pub detail: serde_json::Value,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Records an event in the transaction's organization, as the transaction's principal.
pub async fn record(tx: &mut TenantTx<'_>, entry: AuditEntry) -> Result<AuditEventId> {
    let scope = tx.scope();
    insert(tx.raw(), scope, entry).await
}

pub(crate) async fn insert(tx: &mut Tx, scope: &OrgScope, e: AuditEntry) -> Result<AuditEventId> {
    let id = AuditEventId::new();
    let (kind, actor_id, actor_name): (&str, Option<Uuid>, Option<&str>) = match scope.principal() {
        Principal::User(u) => ("user", Some(u.uuid()), None),
        Principal::ApiKey(k) => ("api_key", Some(k.uuid()), None),
        Principal::System { name } => ("system", None, Some(name)),
        Principal::Job { kind, id } => ("system", Some(id.uuid()), Some(kind)),
    };
    tx.execute(
        "INSERT INTO audit_events (org_id, id, actor_kind, actor_id, actor_name, action, target_kind, target_id, detail, request_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        params![
            scope.org_id(),
            id,
            kind,
            actor_id,
            actor_name,
            e.action,
            e.target.map(|t| t.0),
            e.target.map(|t| t.1),
            e.detail,
            e.request_id,
            now()
        ],
    )
    .await?;
    Ok(id)
}

/// The newest events first.
pub async fn list(tx: &mut TenantTx<'_>, limit: i64) -> Result<Vec<AuditEvent>> {
    search(tx, &AuditFilter::default(), limit, None).await
}

/// Filters of the audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this action (e.g. `member.removed`).
    pub action: Option<String>,
    /// Only this actor (user or API key id).
    pub actor: Option<Uuid>,
    /// At or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Before this time.
    pub until: Option<DateTime<Utc>>,
}

/// Events newest first, keyset-paginated: `before` is the last id of the previous page.
pub async fn search(
    tx: &mut TenantTx<'_>,
    f: &AuditFilter,
    limit: i64,
    before: Option<Uuid>,
) -> Result<Vec<AuditEvent>> {
    let org = tx.org_id();
    let mut sql = String::from(
        "SELECT id, actor_kind, actor_id, actor_name, action, target_kind, target_id, detail, created_at
         FROM audit_events WHERE org_id = $1",
    );
    let mut p: Vec<crate::Val> = vec![org.into()];
    let mut add = |cond: &str, v: crate::Val| {
        p.push(v);
        sql.push_str(&cond.replace("$n", &format!("${}", p.len())));
    };
    if let Some(b) = before {
        add(" AND id < $n", b.into());
    }
    if let Some(a) = &f.action {
        add(" AND action = $n", a.as_str().into());
    }
    if let Some(a) = f.actor {
        add(" AND actor_id = $n", a.into());
    }
    if let Some(t) = f.since {
        add(" AND created_at >= $n", t.into());
    }
    if let Some(t) = f.until {
        add(" AND created_at < $n", t.into());
    }
    p.push(limit.into());
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", p.len()));
    let rows = tx.query(&sql, &p).await?;
    rows.iter()
        .map(|r| {
            Ok(AuditEvent {
                id: r.get(0)?,
                actor_kind: r.get(1)?,
                actor_id: r.get(2)?,
                actor_name: r.get(3)?,
                action: r.get(4)?,
                target_kind: r.get(5)?,
                target_id: r.get(6)?,
                detail: r.get(7)?,
                created_at: r.get(8)?,
            })
        })
        .collect()
}
