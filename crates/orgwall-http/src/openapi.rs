//! `GET /v1/openapi.json`: the OpenAPI 3.1 document, generated from the route table.
//!
//! Each operation carries `x-permission` (the permission its wall checks, or null when
//! membership alone suffices), `x-access` (`public`, `user` or `org`), and each path
//! parameter that is an org-scoped resource id carries `x-org-scoped-id` (the resource
//! kind); the org parameter itself carries `x-org`.

// Building JSON objects this module just created: indexing cannot hit a non-object.
#![allow(clippy::indexing_slicing)]

use crate::routes::{route, Access, Route, RouteSpec};
use axum::routing::get;
use axum::Json;
use serde_json::{json, Map, Value};

static OPENAPI: RouteSpec = RouteSpec {
    method: "GET",
    path: "/v1/openapi.json",
    access: Access::Public,
    summary: "This document",
    ids: &[],
    body: None,
    status: 200,
};

/// The document route.
pub fn routes() -> Vec<Route> {
    vec![route(&OPENAPI, get(|| async { Json(document()) }))]
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
    let mut responses = Map::new();
    responses.insert(spec.status.to_string(), json!({ "description": "Success" }));
    let problem = json!({ "$ref": "#/components/responses/Problem" });
    let errors: &[u16] = match spec.access {
        Access::Public => &[400, 422, 429],
        Access::User => &[400, 401, 422],
        Access::Org(_) => &[400, 401, 403, 404, 409, 422],
    };
    for s in errors {
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
    if spec.access != Access::Public {
        op["security"] = json!([{ "bearer": [] }]);
    }
    if let Some(body) = spec.body {
        let mut schema = body();
        if let Some(o) = schema.as_object_mut() {
            o.remove("$schema");
        }
        op["requestBody"] =
            json!({ "required": true, "content": { "application/json": { "schema": schema } } });
    }
    op
}

/// Builds the document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for r in crate::routes::all() {
        for p in r.spec.paths() {
            let item = paths.entry(p.clone()).or_insert_with(|| json!({}));
            item[r.spec.method.to_ascii_lowercase()] = operation(r.spec, &p);
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "orgwall",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Multi-tenant SaaS backend. Every org route exists as /v1/orgs/{org}/... and org-less as /v1/... (org from X-Organization-Id, subdomain or active org)."
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
