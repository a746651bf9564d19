//! The probe against a small, deliberately leaky multi-tenant API, with each classic bug
//! planted separately: it must flag every planted bug by operation and kind, and report
//! zero leaks against the same server with the bugs fixed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::result_large_err
)]

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use orgwall_probe::client::Principal;
use orgwall_probe::{Config, FindingKind, Report};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bug {
    None,
    UnscopedDetail,
    UnscopedNested,
    ListIgnoresTenant,
    CountAcrossTenants,
    SearchAcrossTenants,
    TrustsOrgHeader,
    ForeignProjectOnCreate,
    UnscopedDownload,
}

#[derive(Clone, Debug)]
struct Row {
    kind: &'static str,
    id: String,
    org: String,
    text: String,
    parent: Option<String>,
}

#[derive(Clone)]
struct App {
    bug: Bug,
    rows: Arc<Mutex<Vec<Row>>>,
}

fn tenant_of(headers: &HeaderMap) -> Option<&'static str> {
    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        Some("Bearer tok-a") => Some("t1"),
        Some("Bearer tok-b") => Some("t2"),
        _ => None,
    }
}

fn deny(code: StatusCode) -> Response {
    (code, Json(json!({"error": code.as_u16()}))).into_response()
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn as_json(r: &Row) -> Value {
    json!({"id": r.id, "title": r.text, "parent_id": r.parent})
}

impl App {
    /// The wall: authenticated, and a member of the org in the path.
    fn check(&self, headers: &HeaderMap, org: &str) -> Result<(), Response> {
        match tenant_of(headers) {
            None => Err(deny(StatusCode::UNAUTHORIZED)),
            Some(t) if t == org => Ok(()),
            Some(_) => Err(deny(StatusCode::FORBIDDEN)),
        }
    }

    fn list(&self, kind: &str, org: &str, all: bool, parent: Option<&str>) -> Vec<Value> {
        self.rows
            .lock()
            .unwrap()
            .iter()
            .filter(|r| {
                r.kind == kind
                    && (all || r.org == org)
                    && parent.is_none_or(|p| r.parent.as_deref() == Some(p))
            })
            .map(as_json)
            .collect()
    }

    fn find(&self, kind: &str, org: Option<&str>, id: &str) -> Option<Row> {
        self.rows
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.kind == kind && r.id == id && org.is_none_or(|o| r.org == o))
            .cloned()
    }

    fn insert(&self, kind: &'static str, org: &str, text: &str, parent: Option<String>) -> Row {
        let r = Row {
            kind,
            id: new_id(),
            org: org.to_owned(),
            text: text.to_owned(),
            parent,
        };
        self.rows.lock().unwrap().push(r.clone());
        r
    }
}

type Resp = Result<Response, Response>;

async fn list_projects(State(a): State<App>, h: HeaderMap, Path(org): Path<String>) -> Resp {
    a.check(&h, &org)?;
    Ok(
        Json(json!({"items": a.list("project", &org, a.bug == Bug::ListIgnoresTenant, None)}))
            .into_response(),
    )
}

async fn create_in(
    a: &App,
    h: &HeaderMap,
    org: &str,
    kind: &'static str,
    body: &Value,
    parent: Option<String>,
) -> Resp {
    a.check(h, org)?;
    let text = body
        .get("title")
        .and_then(Value::as_str)
        .ok_or_else(|| deny(StatusCode::UNPROCESSABLE_ENTITY))?;
    Ok((
        StatusCode::CREATED,
        Json(as_json(&a.insert(kind, org, text, parent))),
    )
        .into_response())
}

async fn create_project(
    State(a): State<App>,
    h: HeaderMap,
    Path(org): Path<String>,
    Json(b): Json<Value>,
) -> Resp {
    create_in(&a, &h, &org, "project", &b, None).await
}

async fn list_tickets(State(a): State<App>, h: HeaderMap, Path(org): Path<String>) -> Resp {
    a.check(&h, &org)?;
    Ok(Json(json!({"items": a.list("ticket", &org, false, None)})).into_response())
}

async fn create_ticket(
    State(a): State<App>,
    h: HeaderMap,
    Path(org): Path<String>,
    Json(b): Json<Value>,
) -> Resp {
    a.check(&h, &org)?;
    let project = b
        .get("project_id")
        .and_then(Value::as_str)
        .ok_or_else(|| deny(StatusCode::UNPROCESSABLE_ENTITY))?;
    let scope = if a.bug == Bug::ForeignProjectOnCreate {
        None
    } else {
        Some(org.as_str())
    };
    if a.find("project", scope, project).is_none() {
        return Err(deny(StatusCode::UNPROCESSABLE_ENTITY));
    }
    create_in(&a, &h, &org, "ticket", &b, Some(project.to_owned())).await
}

async fn count_tickets(State(a): State<App>, h: HeaderMap, Path(org): Path<String>) -> Resp {
    a.check(&h, &org)?;
    let n = a
        .list("ticket", &org, a.bug == Bug::CountAcrossTenants, None)
        .len();
    Ok(Json(json!({"count": n})).into_response())
}

async fn list_comments(
    State(a): State<App>,
    h: HeaderMap,
    Path((org, ticket)): Path<(String, String)>,
) -> Resp {
    a.check(&h, &org)?;
    let scope = if a.bug == Bug::UnscopedNested {
        None
    } else {
        Some(org.as_str())
    };
    a.find("ticket", scope, &ticket)
        .ok_or_else(|| deny(StatusCode::NOT_FOUND))?;
    Ok(
        Json(
            json!({"items": a.list("comment", &org, a.bug == Bug::UnscopedNested, Some(&ticket))}),
        )
        .into_response(),
    )
}

async fn add_comment(
    State(a): State<App>,
    h: HeaderMap,
    Path((org, ticket)): Path<(String, String)>,
    Json(b): Json<Value>,
) -> Resp {
    a.check(&h, &org)?;
    a.find("ticket", Some(&org), &ticket)
        .ok_or_else(|| deny(StatusCode::NOT_FOUND))?;
    create_in(&a, &h, &org, "comment", &b, Some(ticket)).await
}

async fn list_notes(
    State(a): State<App>,
    h: HeaderMap,
    Path(org): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Resp {
    a.check(&h, &org)?;
    let all = a.bug == Bug::SearchAcrossTenants && q.contains_key("q");
    let items: Vec<Value> = a
        .list("note", &org, all, None)
        .into_iter()
        .filter(|n| {
            q.get("q")
                .is_none_or(|t| n["title"].as_str().unwrap_or("").contains(t.as_str()))
        })
        .collect();
    Ok(Json(json!({"items": items})).into_response())
}

async fn create_note(
    State(a): State<App>,
    h: HeaderMap,
    Path(org): Path<String>,
    Json(b): Json<Value>,
) -> Resp {
    create_in(&a, &h, &org, "note", &b, None).await
}

async fn get_note(
    State(a): State<App>,
    h: HeaderMap,
    Path((org, id)): Path<(String, String)>,
) -> Resp {
    a.check(&h, &org)?;
    let scope = if a.bug == Bug::UnscopedDetail {
        None
    } else {
        Some(org.as_str())
    };
    let r = a
        .find("note", scope, &id)
        .ok_or_else(|| deny(StatusCode::NOT_FOUND))?;
    Ok(Json(as_json(&r)).into_response())
}

/// The org-less form: the tenant comes from a header, which must be checked.
async fn notes_by_header(State(a): State<App>, h: HeaderMap) -> Resp {
    let org = h
        .get("x-tenant-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if a.bug == Bug::TrustsOrgHeader {
        if tenant_of(&h).is_none() {
            return Err(deny(StatusCode::UNAUTHORIZED));
        }
    } else {
        a.check(&h, &org)?;
    }
    Ok(Json(json!({"items": a.list("note", &org, false, None)})).into_response())
}

async fn list_files(State(a): State<App>, h: HeaderMap, Path(org): Path<String>) -> Resp {
    a.check(&h, &org)?;
    Ok(Json(json!({"items": a.list("file", &org, false, None)})).into_response())
}

async fn download(
    State(a): State<App>,
    h: HeaderMap,
    Path((org, id)): Path<(String, String)>,
) -> Resp {
    a.check(&h, &org)?;
    let scope = if a.bug == Bug::UnscopedDownload {
        None
    } else {
        Some(org.as_str())
    };
    let r = a
        .find("file", scope, &id)
        .ok_or_else(|| deny(StatusCode::NOT_FOUND))?;
    Ok(format!("bytes of {} ({})", r.id, r.text).into_response())
}

fn spec() -> Value {
    let org = json!({"name": "org", "in": "path", "required": true, "schema": {"type": "string"}});
    let id =
        |n: &str| json!({"name": n, "in": "path", "required": true, "schema": {"type": "string"}});
    let titled = json!({"content": {"application/json": {"schema": {"type": "object", "required": ["title"], "properties": {"title": {"type": "string"}}}}}});
    json!({
        "openapi": "3.0.3",
        "info": {"title": "leaky fixture", "version": "1"},
        "paths": {
            "/orgs/{org}/projects": {"get": {"parameters": [org]}, "post": {"parameters": [org], "requestBody": titled}},
            "/orgs/{org}/tickets": {"get": {"parameters": [org]}, "post": {"parameters": [org], "requestBody": {"content": {"application/json": {"schema": {
                "type": "object", "required": ["title", "project_id"],
                "properties": {"title": {"type": "string"}, "project_id": {"type": "string"}}}}}}}},
            "/orgs/{org}/tickets/count": {"get": {"parameters": [org]}},
            "/orgs/{org}/tickets/{ticket_id}/comments": {"get": {"parameters": [org, id("ticket_id")]}, "post": {"parameters": [org, id("ticket_id")], "requestBody": titled}},
            "/orgs/{org}/notes": {"get": {"parameters": [org, {"name": "q", "in": "query", "schema": {"type": "string"}}]}, "post": {"parameters": [org], "requestBody": titled}},
            "/orgs/{org}/notes/{id}": {"get": {"parameters": [org, id("id")]}},
            "/notes": {"get": {"parameters": [{"name": "X-Tenant-Id", "in": "header", "schema": {"type": "string"}}]}},
            "/orgs/{org}/files": {"get": {"parameters": [org]}},
            "/orgs/{org}/files/{id}/content": {"get": {"parameters": [org, id("id")]}}
        }
    })
}

async fn serve(bug: Bug) -> (String, tempfile::TempDir) {
    let app = App {
        bug,
        rows: Arc::new(Mutex::new(Vec::new())),
    };
    for (org, who) in [("t1", "alpha"), ("t2", "beta")] {
        let p = app.insert("project", org, &format!("{who} project"), None);
        let t = app.insert("ticket", org, &format!("{who} ticket"), Some(p.id));
        app.insert("comment", org, &format!("{who} comment"), Some(t.id));
        app.insert("note", org, &format!("{who} note"), None);
        app.insert("file", org, &format!("{who}.pdf"), None);
    }
    let router = Router::new()
        .route(
            "/orgs/{org}/projects",
            get(list_projects).post(create_project),
        )
        .route("/orgs/{org}/tickets", get(list_tickets).post(create_ticket))
        .route("/orgs/{org}/tickets/count", get(count_tickets))
        .route(
            "/orgs/{org}/tickets/{ticket_id}/comments",
            get(list_comments).post(add_comment),
        )
        .route("/orgs/{org}/notes", get(list_notes).post(create_note))
        .route("/orgs/{org}/notes/{id}", get(get_note))
        .route("/notes", get(notes_by_header))
        .route("/orgs/{org}/files", get(list_files))
        .route("/orgs/{org}/files/{id}/content", get(download))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("openapi.json"), spec().to_string()).unwrap();
    (base, dir)
}

async fn probe(bug: Bug) -> Report {
    let (base, dir) = serve(bug).await;
    let cfg = Config {
        spec: dir.path().join("openapi.json").display().to_string(),
        base_url: base,
        a: Principal {
            name: "A".into(),
            headers: vec![("Authorization".into(), "Bearer tok-a".into())],
            org: Some("t1".into()),
        },
        b: Principal {
            name: "B".into(),
            headers: vec![("Authorization".into(), "Bearer tok-b".into())],
            org: Some("t2".into()),
        },
        write: true,
        ..Config::default()
    };
    orgwall_probe::run(&cfg).await.unwrap()
}

fn leaks_on(r: &Report, method: &str, path: &str) -> Vec<String> {
    r.ops
        .iter()
        .filter(|o| o.method == method && o.path == path)
        .flat_map(|o| {
            o.findings
                .iter()
                .filter(|f| f.kind == FindingKind::Leak)
                .map(|f| f.detail.clone())
        })
        .collect()
}

async fn assert_caught(bug: Bug, method: &str, path: &str, needle: &str) {
    let r = probe(bug).await;
    let found = leaks_on(&r, method, path);
    assert!(
        found.iter().any(|d| d.contains(needle)),
        "{bug:?}: expected a leak on {method} {path} containing {needle:?}; got {found:?}\n{}",
        r.table()
    );
    assert!(r.leaks() > 0);
}

#[tokio::test]
async fn the_fixed_server_has_no_leaks_and_every_operation_is_exercised() {
    let r = probe(Bug::None).await;
    assert_eq!(r.leaks(), 0, "{}", r.table());
    assert!(r.unexercised().is_empty(), "{}", r.table());
    assert!(r.discovered_b >= 5 && r.canaries > 0, "{}", r.table());
    assert!(r.summary().ends_with(" probes, 0 leaks"));
    let junit = r.junit();
    assert!(junit.contains("failures=\"0\""), "{junit}");
    let json: Value = serde_json::from_str(&r.json()).unwrap();
    assert_eq!(json["leaks"], 0);
}

#[tokio::test]
async fn unscoped_detail_by_id() {
    assert_caught(
        Bug::UnscopedDetail,
        "GET",
        "/orgs/{org}/notes/{id}",
        "instead of a denial",
    )
    .await;
}

#[tokio::test]
async fn unscoped_nested_resource() {
    assert_caught(
        Bug::UnscopedNested,
        "GET",
        "/orgs/{org}/tickets/{ticket_id}/comments",
        "instead of a denial",
    )
    .await;
}

#[tokio::test]
async fn list_ignoring_the_tenant() {
    assert_caught(
        Bug::ListIgnoresTenant,
        "GET",
        "/orgs/{org}/projects",
        "contains B's",
    )
    .await;
}

#[tokio::test]
async fn count_across_tenants() {
    assert_caught(
        Bug::CountAcrossTenants,
        "GET",
        "/orgs/{org}/tickets/count",
        "changed when only B wrote",
    )
    .await;
}

#[tokio::test]
async fn search_across_tenants() {
    assert_caught(
        Bug::SearchAcrossTenants,
        "GET",
        "/orgs/{org}/notes",
        "contains B's",
    )
    .await;
}

#[tokio::test]
async fn trusting_an_org_header_without_membership() {
    assert_caught(
        Bug::TrustsOrgHeader,
        "GET",
        "/notes",
        "B's tenant in the header",
    )
    .await;
}

#[tokio::test]
async fn accepting_a_foreign_project_id_on_create() {
    assert_caught(
        Bug::ForeignProjectOnCreate,
        "POST",
        "/orgs/{org}/tickets",
        "body field project_id",
    )
    .await;
}

#[tokio::test]
async fn download_by_id_without_scope() {
    assert_caught(
        Bug::UnscopedDownload,
        "GET",
        "/orgs/{org}/files/{id}/content",
        "instead of a denial",
    )
    .await;
}

#[tokio::test]
async fn could_not_run_is_not_a_clean_bill_of_health() {
    // An unreachable server.
    let cfg = Config {
        spec: "http://127.0.0.1:1/openapi.json".into(),
        base_url: "http://127.0.0.1:1".into(),
        ..Config::default()
    };
    let e = orgwall_probe::run(&cfg).await.unwrap_err();
    assert!(e.0.contains("cannot fetch the OpenAPI document"), "{e}");
    // Credentials that do not work: no verdict.
    let (base, dir) = serve(Bug::None).await;
    let cfg = Config {
        spec: dir.path().join("openapi.json").display().to_string(),
        base_url: base,
        a: Principal {
            name: "A".into(),
            headers: vec![("Authorization".into(), "Bearer nope".into())],
            org: Some("t1".into()),
        },
        b: Principal {
            name: "B".into(),
            headers: vec![("Authorization".into(), "Bearer nope".into())],
            org: Some("t2".into()),
        },
        ..Config::default()
    };
    let r = orgwall_probe::run(&cfg).await.unwrap();
    assert!(!r.complete(), "{}", r.table());
    // Only A's credentials are wrong: still no verdict (every "denial" would be a 401).
    let (base, dir2) = serve(Bug::UnscopedDetail).await;
    let cfg2 = Config {
        spec: dir2.path().join("openapi.json").display().to_string(),
        base_url: base,
        a: Principal {
            name: "A".into(),
            headers: vec![("Authorization".into(), "Bearer nope".into())],
            org: Some("t1".into()),
        },
        b: Principal {
            name: "B".into(),
            headers: vec![("Authorization".into(), "Bearer tok-b".into())],
            org: Some("t2".into()),
        },
        ..Config::default()
    };
    let r2 = orgwall_probe::run(&cfg2).await.unwrap();
    assert!(!r2.complete(), "{}", r2.table());
    // An unsupported document.
    std::fs::write(
        dir.path().join("swagger.json"),
        r#"{"swagger":"2.0","paths":{}}"#,
    )
    .unwrap();
    let cfg = Config {
        spec: dir.path().join("swagger.json").display().to_string(),
        ..cfg
    };
    assert!(orgwall_probe::run(&cfg)
        .await
        .unwrap_err()
        .0
        .contains("OpenAPI 3.x is required"));
}
