//! The OpenAPI 3.1 document, generated from a service's route table (serve it with
//! [`route`]: `GET /v1/openapi.json`).
//!
//! Each operation carries `x-permission` (the permission its wall checks, or null when
//! membership alone suffices), `x-access` (`public`, `user` or `org`), and each path
//! parameter that is an org-scoped resource id carries `x-org-scoped-id` (the resource
//! kind); the org parameter itself carries `x-org`.

// Building JSON objects this module just created: indexing cannot hit a non-object.
#![allow(clippy::indexing_slicing)]

use crate::routes::{Access, Route, RouteSpec};
use axum::routing::get;
use axum::Json;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The declaration of the document's own route.
pub static OPENAPI: RouteSpec = RouteSpec {
    method: "GET",
    path: "/v1/openapi.json",
    access: Access::Public,
    summary: "This document",
    ids: &[],
    body: None,
    status: 200,
    ..RouteSpec::DEFAULT
};

/// What the document says of the service itself.
#[derive(Clone, Debug)]
pub struct Info {
    /// `info.title`.
    pub title: &'static str,
    /// `info.version`.
    pub version: &'static str,
    /// `info.description`.
    pub description: &'static str,
}

/// The document route for a service whose routes are `specs` (add [`OPENAPI`] itself to
/// them): the document is built once, when the route is made.
pub fn route<S: Clone + Send + Sync + 'static>(
    info: &Info,
    specs: &[&'static RouteSpec],
) -> Route<S> {
    let doc = Arc::new(document(info, specs));
    crate::routes::route(
        &OPENAPI,
        get(move || {
            let doc = doc.clone();
            async move { Json((*doc).clone()) }
        }),
    )
}

fn params_of(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_ascii_lowercase();
    for seg in path.split('/').filter(|s| !s.is_empty() && *s != "v1") {
        id.push('_');
        id.push_str(&seg.replace(['{', '}'], "").replace(['-', '.'], "_"));
    }
    id
}

fn operation(spec: &RouteSpec, path: &str) -> Value {
    let mut params: Vec<Value> = params_of(path)
        .into_iter()
        .map(|p| {
            let mut v = json!({ "name": p, "in": "path", "required": true, "schema": { "type": "string" } });
            if p == "org" {
                v["x-org"] = json!(true);
                v["description"] = json!("Organization id or slug");
            } else if let Some((_, kind)) = spec.ids.iter().find(|(name, _)| *name == p) {
                v["x-org-scoped-id"] = json!(kind);
                v["schema"]["format"] = json!("uuid");
            }
            v
        })
        .collect();
    let org_less = matches!(spec.access, Access::Org(_)) && !path.contains("{org}");
    if org_less {
        params.push(json!({
            "name": "X-Organization-Id", "in": "header", "required": false,
            "description": "Organization id or slug (else the subdomain, else the session's active org)",
            "schema": { "type": "string" }, "x-org": true
        }));
    }
    if let Some(query) = spec.query {
        params.extend(query_parameters(&query()));
    }
    let mut responses = Map::new();
    responses.insert(spec.status.to_string(), json!({ "description": "Success" }));
    let problem = json!({ "$ref": "#/components/responses/Problem" });
    for s in spec.error_statuses() {
        responses.insert(s.to_string(), problem.clone());
    }
    let mut op = json!({
        "operationId": operation_id(spec.method, path),
        "summary": spec.summary,
        "parameters": params,
        "responses": responses,
        "x-access": match spec.access { Access::Public => "public", Access::User => "user", Access::Org(_) => "org" },
        "x-permission": match spec.access { Access::Org(Some(p)) => json!(p.as_str()), _ => Value::Null },
    });
    if let Some(rule) = spec.rule {
        op["x-rule"] = json!(rule);
    }
    if spec.access != Access::Public {
        op["security"] = json!([{ "bearer": [] }]);
    }
    if let Some(body) = spec.body {
        op["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": clean(body()) } } });
    } else if let Some(form) = spec.multipart {
        op["requestBody"] = json!({ "required": true, "content": { "multipart/form-data": { "schema": clean(form()) } } });
    }
    op
}

/// A schema for embedding: without `$schema`.
fn clean(mut schema: Value) -> Value {
    if let Some(o) = schema.as_object_mut() {
        o.remove("$schema");
    }
    schema
}

/// `["string", "null"]` -> `"string"`: a query parameter is absent, never null.
fn not_null(mut schema: Value) -> Value {
    if let Some(types) = schema.get("type").and_then(Value::as_array) {
        let left: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
        if let [one] = left.as_slice() {
            schema["type"] = one.clone();
        } else {
            schema["type"] = Value::Array(left);
        }
    }
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
        let left: Vec<Value> = any
            .iter()
            .filter(|s| s.get("type").and_then(Value::as_str) != Some("null"))
            .cloned()
            .collect();
        if let [one] = left.as_slice() {
            let mut out = one.clone();
            if let (Some(o), Some(d)) = (out.as_object_mut(), schema.get("description")) {
                o.insert("description".into(), d.clone());
            }
            return out;
        }
    }
    schema
}

/// The query parameters described by an object schema (one per property).
fn query_parameters(schema: &Value) -> Vec<Value> {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    props
        .iter()
        .map(|(name, prop)| {
            let mut prop = not_null(prop.clone());
            let description = prop.as_object_mut().and_then(|o| o.remove("description"));
            let mut p = json!({
                "name": name, "in": "query",
                "required": required.contains(&name.as_str()),
                "schema": prop,
            });
            if let Some(d) = description {
                p["description"] = d;
            }
            p
        })
        .collect()
}

/// Builds the document of the routes `specs`.
pub fn document(info: &Info, specs: &[&'static RouteSpec]) -> Value {
    let mut paths = Map::new();
    for spec in specs {
        for p in spec.paths() {
            let item = paths.entry(p.clone()).or_insert_with(|| json!({}));
            item[spec.method.to_ascii_lowercase()] = operation(spec, &p);
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": info.title,
            "version": info.version,
            "description": info.description,
        },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "responses": {
                "Problem": {
                    "description": "RFC 9457 problem details with a stable code",
                    "content": { "application/problem+json": { "schema": {
                        "type": "object",
                        "required": ["type", "title", "status", "detail", "code"],
                        "properties": {
                            "type": { "type": "string" }, "title": { "type": "string" },
                            "status": { "type": "integer" }, "detail": { "type": "string" },
                            "code": { "type": "string" }, "permission": { "type": "string" }
                        }
                    } } }
                }
            }
        }
    })
}
