//! The probe on a third-party API that knows nothing of orgwall: no `x-org` hints, the
//! tenant named `{workspace}` in the path (camelCase ids, a YAML document served over
//! HTTP, a multipart upload) or `X-Account-Id` in a header (`{doc_id}`, `{uuid}`, a YAML
//! file). The probe must find the tenant by itself (or be told with `--tenant-param` /
//! `--tenant-header`), exercise every operation of the clean API without a leak, and
//! report each classic bug, planted separately.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::result_large_err
)]

use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use clap::Parser;
use orgwall_probe::client::Principal;
use orgwall_probe::{cli, Config, FindingKind, Report};
use serde_json::{json, Value};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bug {
    None,
    /// `GET /workspaces/{workspace}/documents/{documentId}` looks the id up in every
    /// workspace.
    DetailServesOtherTenant,
    /// `GET /workspaces/{workspace}/documents` lists every workspace's documents.
    ListIncludesOtherTenant,
    /// `POST /workspaces/{workspace}/documents` (multipart) checks the login, not the
    /// membership: anyone can upload into any workspace.
    UploadIntoOtherTenant,
    /// The detail answers 403 for a document of another workspace, 404 for a missing one.
    ExistenceOracle,
    /// The header routes take `X-Account-Id` at its word (the account must exist, its
    /// membership is not checked).
    TrustsAccountHeader,
}

#[derive(Clone, Debug)]
struct Row {
    /// `document` (path API), `doc` or `attachment` (header API).
    kind: &'static str,
    id: String,
    tenant: String,
    title: String,
    file_name: Option<String>,
    doc: Option<String>,
}

#[derive(Clone)]
struct App {
    bug: Bug,
    /// The tenant header of the header API (lower case).
    header: &'static str,
    rows: Arc<Mutex<Vec<Row>>>,
}

const ACME: &str = "acme-corp";
const GLOBEX: &str = "globex-inc";
const ALPHA: &str = "acct-0001-alpha";
const BETA: &str = "acct-0002-beta";

/// Who calls, and their workspaces and accounts.
fn caller(h: &HeaderMap) -> Option<(&'static str, &'static str)> {
    match h.get("authorization").and_then(|v| v.to_str().ok()) {
        Some("Bearer tok-a") => Some((ACME, ALPHA)),
        Some("Bearer tok-b") => Some((GLOBEX, BETA)),
        _ => None,
    }
}

fn problem(status: StatusCode, code: &str) -> Response {
    (
        status,
        Json(json!({"status": status.as_u16(), "code": code, "message": "request refused"})),
    )
        .into_response()
}

type Resp = Result<Response, Response>;

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn document_json(r: &Row) -> Value {
    json!({"documentId": r.id, "title": r.title, "fileName": r.file_name})
}

fn doc_json(r: &Row) -> Value {
    match r.kind {
        "doc" => json!({"doc_id": r.id, "name": r.title}),
        _ => json!({"uuid": r.id, "doc_id": r.doc, "label": r.title}),
    }
}

impl App {
    /// The wall of the path API: logged in, and a member of the workspace in the path.
    fn member(&self, h: &HeaderMap, ws: &str) -> Result<(), Response> {
        match caller(h) {
            None => Err(problem(StatusCode::UNAUTHORIZED, "unauthenticated")),
            Some((mine, _)) if mine == ws => Ok(()),
            Some(_) => Err(problem(StatusCode::FORBIDDEN, "not_a_member")),
        }
    }

    /// The wall of the header API: logged in, an account header, and a member of it.
    fn account(&self, h: &HeaderMap) -> Result<String, Response> {
        let (_, mine) =
            caller(h).ok_or_else(|| problem(StatusCode::UNAUTHORIZED, "unauthenticated"))?;
        let acct = h
            .get(self.header)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| problem(StatusCode::BAD_REQUEST, "account_header_missing"))?;
        let known = acct == ALPHA || acct == BETA;
        let allowed = if self.bug == Bug::TrustsAccountHeader {
            known
        } else {
            acct == mine
        };
        if allowed {
            Ok(acct.to_owned())
        } else {
            Err(problem(StatusCode::FORBIDDEN, "not_a_member"))
        }
    }

    fn rows(&self, kind: &str, tenant: Option<&str>) -> Vec<Row> {
        self.rows
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.kind == kind && tenant.is_none_or(|t| r.tenant == t))
            .cloned()
            .collect()
    }

    fn find(&self, kind: &str, tenant: Option<&str>, id: &str) -> Option<Row> {
        self.rows(kind, tenant).into_iter().find(|r| r.id == id)
    }

    fn insert(
        &self,
        kind: &'static str,
        tenant: &str,
        title: &str,
        file: Option<String>,
        doc: Option<String>,
    ) -> Row {
        let r = Row {
            kind,
            id: new_id(),
            tenant: tenant.to_owned(),
            title: title.to_owned(),
            file_name: file,
            doc,
        };
        self.rows.lock().unwrap().push(r.clone());
        r
    }
}

// The path API.

async fn list_workspaces(h: HeaderMap) -> Resp {
    let (ws, _) = caller(&h).ok_or_else(|| problem(StatusCode::UNAUTHORIZED, "unauthenticated"))?;
    Ok(Json(json!({"data": [{"id": ws, "name": ws.to_uppercase()}]})).into_response())
}

async fn list_documents(State(a): State<App>, h: HeaderMap, Path(ws): Path<String>) -> Resp {
    a.member(&h, &ws)?;
    let scope = (a.bug != Bug::ListIncludesOtherTenant).then_some(ws.as_str());
    let data: Vec<Value> = a
        .rows("document", scope)
        .iter()
        .map(document_json)
        .collect();
    Ok(Json(json!({"data": data, "nextCursor": null})).into_response())
}

async fn upload_document(
    State(a): State<App>,
    h: HeaderMap,
    Path(ws): Path<String>,
    mut form: Multipart,
) -> Resp {
    if a.bug == Bug::UploadIntoOtherTenant {
        caller(&h).ok_or_else(|| problem(StatusCode::UNAUTHORIZED, "unauthenticated"))?;
    } else {
        a.member(&h, &ws)?;
    }
    let (mut file, mut title) = (None, None);
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|_| problem(StatusCode::BAD_REQUEST, "bad_multipart"))?
    {
        match field.name() {
            Some("file") => {
                let name = field.file_name().unwrap_or("upload.bin").to_owned();
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|_| problem(StatusCode::BAD_REQUEST, "bad_multipart"))?;
                if bytes.is_empty() {
                    return Err(problem(StatusCode::UNPROCESSABLE_ENTITY, "empty_file"));
                }
                file = Some(name);
            }
            Some("title") => title = field.text().await.ok(),
            _ => {}
        }
    }
    let file = file.ok_or_else(|| problem(StatusCode::UNPROCESSABLE_ENTITY, "file_required"))?;
    let title = title.unwrap_or_else(|| file.clone());
    let r = a.insert("document", &ws, &title, Some(file), None);
    Ok((StatusCode::CREATED, Json(document_json(&r))).into_response())
}

/// A document of the workspace, or the refusal (with the planted bugs: the read only).
fn document_in(a: &App, ws: &str, id: &str, read: bool) -> Result<Row, Response> {
    let scope = (a.bug != Bug::DetailServesOtherTenant || !read).then_some(ws);
    match a.find("document", scope, id) {
        Some(r) => Ok(r),
        None if read && a.bug == Bug::ExistenceOracle && a.find("document", None, id).is_some() => {
            Err(problem(StatusCode::FORBIDDEN, "forbidden"))
        }
        None => Err(problem(StatusCode::NOT_FOUND, "not_found")),
    }
}

async fn get_document(
    State(a): State<App>,
    h: HeaderMap,
    Path((ws, id)): Path<(String, String)>,
) -> Resp {
    a.member(&h, &ws)?;
    Ok(Json(document_json(&document_in(&a, &ws, &id, true)?)).into_response())
}

async fn rename_document(
    State(a): State<App>,
    h: HeaderMap,
    Path((ws, id)): Path<(String, String)>,
    Json(b): Json<Value>,
) -> Resp {
    a.member(&h, &ws)?;
    let mut r = document_in(&a, &ws, &id, false)?;
    if let Some(t) = b.get("title").and_then(Value::as_str) {
        r.title = t.to_owned();
        let mut rows = a.rows.lock().unwrap();
        if let Some(x) = rows.iter_mut().find(|x| x.id == r.id) {
            x.title = r.title.clone();
        }
    }
    Ok(Json(document_json(&r)).into_response())
}

// The header API.

async fn list_docs(State(a): State<App>, h: HeaderMap) -> Resp {
    let acct = a.account(&h)?;
    let items: Vec<Value> = a.rows("doc", Some(&acct)).iter().map(doc_json).collect();
    Ok(Json(json!({"items": items})).into_response())
}

async fn create_doc(State(a): State<App>, h: HeaderMap, Json(b): Json<Value>) -> Resp {
    let acct = a.account(&h)?;
    let name = b
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| problem(StatusCode::UNPROCESSABLE_ENTITY, "name_required"))?;
    let r = a.insert("doc", &acct, name, None, None);
    Ok((StatusCode::CREATED, Json(doc_json(&r))).into_response())
}

async fn get_doc(State(a): State<App>, h: HeaderMap, Path(id): Path<String>) -> Resp {
    let acct = a.account(&h)?;
    let r = a
        .find("doc", Some(&acct), &id)
        .ok_or_else(|| problem(StatusCode::NOT_FOUND, "not_found"))?;
    Ok(Json(doc_json(&r)).into_response())
}

async fn list_attachments(State(a): State<App>, h: HeaderMap) -> Resp {
    let acct = a.account(&h)?;
    let items: Vec<Value> = a
        .rows("attachment", Some(&acct))
        .iter()
        .map(doc_json)
        .collect();
    Ok(Json(json!({"items": items})).into_response())
}

async fn create_attachment(State(a): State<App>, h: HeaderMap, Json(b): Json<Value>) -> Resp {
    let acct = a.account(&h)?;
    let doc = b
        .get("doc_id")
        .and_then(Value::as_str)
        .and_then(|d| a.find("doc", Some(&acct), d))
        .ok_or_else(|| problem(StatusCode::UNPROCESSABLE_ENTITY, "doc_required"))?;
    let label = b
        .get("label")
        .and_then(Value::as_str)
        .unwrap_or("attachment");
    let r = a.insert("attachment", &acct, label, None, Some(doc.id));
    Ok((StatusCode::CREATED, Json(doc_json(&r))).into_response())
}

async fn get_attachment(State(a): State<App>, h: HeaderMap, Path(id): Path<String>) -> Resp {
    let acct = a.account(&h)?;
    let r = a
        .find("attachment", Some(&acct), &id)
        .ok_or_else(|| problem(StatusCode::NOT_FOUND, "not_found"))?;
    Ok(Json(doc_json(&r)).into_response())
}

/// The path API's document, as its vendor writes it: YAML, `$ref`s, no hints.
const PATH_API: &str = r##"
openapi: 3.0.3
info:
  title: Paperwork (documents in workspaces)
  version: "2.4"
security:
  - bearer: []
paths:
  /workspaces:
    get:
      operationId: listWorkspaces
      responses:
        "200": {description: The caller's workspaces}
  /workspaces/{workspace}/documents:
    parameters:
      - $ref: '#/components/parameters/Workspace'
    get:
      operationId: listDocuments
      parameters:
        - {name: cursor, in: query, schema: {type: string}}
      responses:
        200:
          description: A page of documents
    post:
      operationId: uploadDocument
      requestBody:
        required: true
        content:
          multipart/form-data:
            schema:
              $ref: '#/components/schemas/Upload'
      responses:
        201: {description: Uploaded}
  /workspaces/{workspace}/documents/{documentId}:
    parameters:
      - $ref: '#/components/parameters/Workspace'
      - name: documentId
        in: path
        required: true
        schema: {type: string, format: uuid}
    get:
      operationId: getDocument
      responses:
        '200': {description: A document}
        '404': {description: No such document}
    patch:
      operationId: renameDocument
      requestBody:
        content:
          application/json:
            schema:
              type: object
              properties:
                title: {type: string}
      responses:
        '200': {description: Renamed}
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
  parameters:
    Workspace:
      name: workspace
      in: path
      required: true
      schema: {type: string}
  schemas:
    Upload:
      type: object
      required: [file]
      properties:
        file: {type: string, format: binary}
        title: {type: string}
"##;

/// The header API's document, in YAML; the tenant header is declared on every operation
/// under `header`, or nowhere (`None`: the probe must be told).
fn header_api(header: Option<&str>) -> String {
    let params = |ids: &[&str]| -> Value {
        let mut v: Vec<Value> = ids
            .iter()
            .map(|n| json!({"name": n, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if let Some(h) = header {
            v.push(
                json!({"name": h, "in": "header", "required": true, "schema": {"type": "string"}}),
            );
        }
        Value::Array(v)
    };
    let body = |props: Value| json!({"content": {"application/json": {"schema": {"type": "object", "properties": props}}}});
    let doc = json!({
        "openapi": "3.1.0",
        "info": {"title": "Ledgerly (documents by account)", "version": "7"},
        "security": [{"bearer": []}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": {
            "/docs": {
                "get": {"parameters": params(&[]), "responses": {"200": {"description": "ok"}}},
                "post": {"parameters": params(&[]), "requestBody": body(json!({"name": {"type": "string"}})), "responses": {"201": {"description": "ok"}}}
            },
            "/docs/{doc_id}": {"get": {"parameters": params(&["doc_id"]), "responses": {"200": {"description": "ok"}}}},
            "/attachments": {
                "get": {"parameters": params(&[]), "responses": {"200": {"description": "ok"}}},
                "post": {"parameters": params(&[]), "requestBody": body(json!({"doc_id": {"type": "string"}, "label": {"type": "string"}})), "responses": {"201": {"description": "ok"}}}
            },
            "/attachments/{uuid}": {"get": {"parameters": params(&["uuid"]), "responses": {"200": {"description": "ok"}}}}
        }
    });
    serde_norway::to_string(&doc).unwrap()
}

struct Fixture {
    base: String,
    dir: tempfile::TempDir,
}

impl Fixture {
    /// The path API's document, over HTTP.
    fn path_spec(&self) -> String {
        format!("{}/v2/openapi.yaml", self.base)
    }

    /// The header API's document, as a file.
    fn header_spec(&self, declared: Option<&str>) -> String {
        let p = self
            .dir
            .path()
            .join(format!("ledgerly-{}.yml", declared.unwrap_or("undeclared")));
        std::fs::write(&p, header_api(declared)).unwrap();
        p.display().to_string()
    }
}

async fn serve(bug: Bug, header: &'static str) -> Fixture {
    let app = App {
        bug,
        header,
        rows: Arc::new(Mutex::new(Vec::new())),
    };
    for (ws, acct, who) in [(ACME, ALPHA, "alpha"), (GLOBEX, BETA, "beta")] {
        app.insert(
            "document",
            ws,
            &format!("{who} plan"),
            Some(format!("{who}.pdf")),
            None,
        );
        let d = app.insert("doc", acct, &format!("{who} ledger"), None, None);
        app.insert(
            "attachment",
            acct,
            &format!("{who} receipt"),
            None,
            Some(d.id),
        );
    }
    let router = Router::new()
        .route(
            "/v2/openapi.yaml",
            get(|| async { ([("content-type", "application/yaml")], PATH_API) }),
        )
        .route("/workspaces", get(list_workspaces))
        .route(
            "/workspaces/{workspace}/documents",
            get(list_documents).post(upload_document),
        )
        .route(
            "/workspaces/{workspace}/documents/{documentId}",
            get(get_document).patch(rename_document),
        )
        .route("/docs", get(list_docs).post(create_doc))
        .route("/docs/{doc_id}", get(get_doc))
        .route(
            "/attachments",
            get(list_attachments).post(create_attachment),
        )
        .route("/attachments/{uuid}", get(get_attachment))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Fixture {
        base,
        dir: tempfile::tempdir().unwrap(),
    }
}

fn principal(name: &str, token: &str, tenant: Option<&str>) -> Principal {
    Principal {
        name: name.into(),
        headers: vec![("Authorization".into(), format!("Bearer {token}"))],
        org: tenant.map(str::to_owned),
    }
}

/// A run with no tenant names given: everything is inferred.
async fn probe(
    f: &Fixture,
    spec: String,
    a_tenant: Option<&str>,
    b_tenant: Option<&str>,
) -> Report {
    let cfg = Config {
        spec,
        base_url: f.base.clone(),
        a: principal("A", "tok-a", a_tenant),
        b: principal("B", "tok-b", b_tenant),
        write: true,
        ..Config::default()
    };
    orgwall_probe::run(&cfg).await.unwrap()
}

async fn probe_path_api(bug: Bug) -> Report {
    let f = serve(bug, "x-account-id").await;
    probe(&f, f.path_spec(), Some(ACME), Some(GLOBEX)).await
}

async fn probe_header_api(bug: Bug) -> Report {
    let f = serve(bug, "x-account-id").await;
    let spec = f.header_spec(Some("X-Account-Id"));
    probe(&f, spec, Some(ALPHA), Some(BETA)).await
}

fn findings_on(r: &Report, method: &str, path: &str, kind: FindingKind) -> Vec<String> {
    r.ops
        .iter()
        .filter(|o| o.method == method && o.path == path)
        .flat_map(|o| {
            o.findings
                .iter()
                .filter(|f| f.kind == kind)
                .map(|f| f.detail.clone())
        })
        .collect()
}

fn assert_clean(r: &Report, ops: usize) {
    assert_eq!(r.ops.len(), ops, "{}", r.table());
    assert_eq!(r.leaks(), 0, "{}", r.table());
    assert!(r.complete(), "{}", r.table());
    assert!(r.unexercised().is_empty(), "{}", r.table());
    assert!(r.integrity.is_empty(), "{:?}", r.integrity);
    // No warnings either, but that the API ignores unknown fields (as most do).
    assert!(
        r.ops
            .iter()
            .flat_map(|o| &o.findings)
            .all(|f| f.detail.starts_with("mass assignment")),
        "{}",
        r.table()
    );
    assert!(r.discovered_b >= 2 && r.canaries > 0, "{}", r.table());
}

fn assert_caught(r: &Report, kind: FindingKind, method: &str, path: &str, needle: &str) {
    let found = findings_on(r, method, path, kind);
    assert!(
        found.iter().any(|d| d.contains(needle)),
        "expected a {kind:?} on {method} {path} containing {needle:?}; got {found:?}\n{}",
        r.table()
    );
    assert!(r.leaks() > 0);
}

const DOCS: &str = "/workspaces/{workspace}/documents";
const DOC: &str = "/workspaces/{workspace}/documents/{documentId}";

#[tokio::test]
async fn path_api_clean_with_the_tenant_and_ids_inferred() {
    let r = probe_path_api(Bug::None).await;
    assert_clean(&r, 5);
    assert!(
        r.notes
            .iter()
            .any(|n| n == "tenant: path parameter(s) [{workspace}], header(s) []"),
        "{}",
        r.table()
    );
    // The upload was exercised as B (its file canary is B's) and attacked as A.
    let upload = r
        .ops
        .iter()
        .find(|o| o.method == "POST" && o.path == DOCS)
        .unwrap();
    assert!(upload.tried >= 2 && upload.denied >= 2, "{}", r.table());
    // B's document id was tried in {documentId}, and an id that exists nowhere too.
    let detail = r
        .ops
        .iter()
        .find(|o| o.method == "GET" && o.path == DOC)
        .unwrap();
    assert!(detail.tried >= 4, "{}", r.table());
}

#[tokio::test]
async fn path_api_clean_without_tenant_values_uses_the_discovered_workspaces() {
    // A new user who names no tenant: each principal's workspace comes from
    // `GET /workspaces`.
    let f = serve(Bug::None, "x-account-id").await;
    let r = probe(&f, f.path_spec(), None, None).await;
    assert_clean(&r, 5);
    // ...and the same bug is still found that way.
    let f = serve(Bug::DetailServesOtherTenant, "x-account-id").await;
    let r = probe(&f, f.path_spec(), None, None).await;
    assert_caught(&r, FindingKind::Leak, "GET", DOC, "instead of a denial");
}

#[tokio::test]
async fn header_api_clean_with_the_tenant_header_inferred() {
    let r = probe_header_api(Bug::None).await;
    assert_clean(&r, 6);
    assert!(
        r.notes
            .iter()
            .any(|n| n == "tenant: path parameter(s) [], header(s) [X-Account-Id]"),
        "{}",
        r.table()
    );
    for (m, p) in [("GET", "/docs/{doc_id}"), ("GET", "/attachments/{uuid}")] {
        let o = r.ops.iter().find(|o| o.method == m && o.path == p).unwrap();
        // B's ids, an id that exists nowhere, B's account, no credentials: all denied;
        // A's own read is not.
        assert!(o.tried >= 5 && o.denied == o.tried - 1, "{}", r.table());
    }
}

#[tokio::test]
async fn detail_serving_another_tenants_document() {
    let r = probe_path_api(Bug::DetailServesOtherTenant).await;
    assert_caught(&r, FindingKind::Leak, "GET", DOC, "B's id in {documentId}");
    // The write on the same lookup is not affected.
    assert!(findings_on(&r, "PATCH", DOC, FindingKind::Leak).is_empty());
}

#[tokio::test]
async fn list_including_another_tenants_items() {
    let r = probe_path_api(Bug::ListIncludesOtherTenant).await;
    assert_caught(&r, FindingKind::Leak, "GET", DOCS, "B's");
}

#[tokio::test]
async fn upload_writing_into_another_tenant() {
    let r = probe_path_api(Bug::UploadIntoOtherTenant).await;
    assert_caught(
        &r,
        FindingKind::Leak,
        "POST",
        DOCS,
        "B's tenant in the path: answered 201",
    );
    // A's uploaded file (its canary) is found among B's documents.
    assert!(
        r.integrity
            .iter()
            .any(|i| i.contains("A's write landed in B's data")),
        "{}",
        r.table()
    );
}

#[tokio::test]
async fn existence_oracle_403_versus_404() {
    let r = probe_path_api(Bug::ExistenceOracle).await;
    assert_caught(
        &r,
        FindingKind::ExistenceOracle,
        "GET",
        DOC,
        "answered 403, an id that exists nowhere 404",
    );
    assert!(
        r.oracles() >= 1 && r.leaks() >= r.oracles(),
        "{}",
        r.table()
    );
    // It is a leak in every rendering.
    assert!(
        r.table().contains("LEAK (existence oracle)"),
        "{}",
        r.table()
    );
    let json: Value = serde_json::from_str(&r.json()).unwrap();
    assert!(json["existence_oracles"].as_u64().unwrap() >= 1);
    assert!(json["leaks"].as_u64().unwrap() >= 1);
    assert!(json.to_string().contains("\"existence_oracle\""));
    let junit = r.junit();
    assert!(junit.contains("type=\"existence_oracle\""), "{junit}");
    assert!(!junit.contains("failures=\"0\""), "{junit}");
    // Nothing else is wrong with that server.
    let others: usize = r
        .ops
        .iter()
        .flat_map(|o| &o.findings)
        .filter(|f| f.kind == FindingKind::Leak)
        .count();
    assert_eq!(others, 0, "{}", r.table());
}

#[tokio::test]
async fn header_tenancy_trusting_the_header_without_membership() {
    let r = probe_header_api(Bug::TrustsAccountHeader).await;
    assert_caught(
        &r,
        FindingKind::Leak,
        "GET",
        "/docs",
        "B's tenant in the header",
    );
}

async fn cli_run(
    f: &Fixture,
    spec: &str,
    tenants: (&str, &str),
    extra: &[&str],
) -> (ExitCode, Value) {
    let json_out = f.dir.path().join(format!("report-{}.json", rand_suffix()));
    let mut argv: Vec<String> = [
        "orgwall-probe",
        "--base-url",
        &f.base,
        "--spec",
        spec,
        "--quiet",
        "--write",
        "--require-all",
        "--a-header",
        "Authorization: Bearer tok-a",
        "--a-org",
        tenants.0,
        "--b-header",
        "Authorization: Bearer tok-b",
        "--b-org",
        tenants.1,
        "--json",
        &json_out.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    argv.extend(extra.iter().map(|s| s.to_string()));
    let args = cli::Args::try_parse_from(argv).unwrap();
    let code = cli::main(args).await;
    let report = std::fs::read_to_string(&json_out)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    (code, report)
}

fn rand_suffix() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

#[tokio::test]
async fn explicit_tenant_flags() {
    // A header named like no tenant (`X-Context`) that the document does not even declare:
    // without --tenant-header the probe cannot know it and gives no verdict...
    let f = serve(Bug::None, "x-context").await;
    let spec = f.header_spec(None);
    let (code, report) = cli_run(&f, &spec, (ALPHA, BETA), &[]).await;
    assert_eq!(code, ExitCode::from(2), "{report}");
    assert!(
        report["notes"].to_string().contains("--tenant-header"),
        "{report}"
    );
    // ...with it, every operation is exercised and the API is clean.
    let (code, report) = cli_run(&f, &spec, (ALPHA, BETA), &["--tenant-header", "X-Context"]).await;
    assert_eq!(code, ExitCode::SUCCESS, "{report}");
    assert_eq!(report["leaks"], 0);
    // The same header, trusted without membership: found through the flag as well.
    let f = serve(Bug::TrustsAccountHeader, "x-context").await;
    let spec = f.header_spec(None);
    let (code, report) = cli_run(&f, &spec, (ALPHA, BETA), &["--tenant-header", "X-Context"]).await;
    assert_eq!(code, ExitCode::from(1), "{report}");
    // --tenant-param names the path parameter (here the one the probe would infer).
    let f = serve(Bug::None, "x-account-id").await;
    let (code, report) = cli_run(
        &f,
        &f.path_spec(),
        (ACME, GLOBEX),
        &["--tenant-param", "workspace"],
    )
    .await;
    assert_eq!(code, ExitCode::SUCCESS, "{report}");
    // The oracle fails the run through the command line too (exit 1).
    let f = serve(Bug::ExistenceOracle, "x-account-id").await;
    let (code, report) = cli_run(
        &f,
        &f.path_spec(),
        (ACME, GLOBEX),
        &["--tenant-param", "workspace"],
    )
    .await;
    assert_eq!(code, ExitCode::from(1), "{report}");
    assert!(
        report["existence_oracles"].as_u64().unwrap() >= 1,
        "{report}"
    );
}
