//! Reading an OpenAPI 3.x document into the operations the probe exercises.

use serde_json::Value;

/// Where a parameter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// In the path template.
    Path,
    /// In the query string.
    Query,
    /// A request header.
    Header,
}

/// One parameter of an operation.
#[derive(Debug, Clone)]
pub struct Param {
    /// Its name.
    pub name: String,
    /// Where it goes.
    pub location: Location,
    /// Whether it names the tenant (`x-org`, or a name like `org`, `tenant_id`).
    pub is_org: bool,
    /// The resource kind it references, if it is an id (`x-org-scoped-id`, or inferred
    /// from the name and path).
    pub kind: Option<String>,
    /// Whether it is required.
    pub required: bool,
}

/// One operation (method + path).
#[derive(Debug, Clone)]
pub struct Operation {
    /// `operationId`, or `METHOD path`.
    pub id: String,
    /// Upper-case method.
    pub method: String,
    /// The path template.
    pub path: String,
    /// Its parameters.
    pub params: Vec<Param>,
    /// The JSON request body schema (references resolved), if any.
    pub body: Option<Value>,
    /// `x-permission`, if the document says.
    pub permission: Option<String>,
    /// Whether the document says it needs no credentials (`security: []` or
    /// `x-access: public`).
    pub public: bool,
}

impl Operation {
    /// The path parameter naming the tenant, if any.
    pub fn org_path_param(&self) -> Option<&Param> {
        self.params
            .iter()
            .find(|p| p.location == Location::Path && p.is_org)
    }

    /// The header parameter naming the tenant, if any.
    pub fn org_header(&self) -> Option<&Param> {
        self.params
            .iter()
            .find(|p| p.location == Location::Header && p.is_org)
    }

    /// Path parameters that are resource ids.
    pub fn id_params(&self) -> impl Iterator<Item = &Param> {
        self.params
            .iter()
            .filter(|p| p.location == Location::Path && !p.is_org)
    }

    /// Whether this looks like a collection read (GET with no id in the path).
    pub fn is_list(&self) -> bool {
        self.method == "GET" && self.id_params().next().is_none()
    }
}

/// Why a document cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError(pub String);

impl std::fmt::Display for SpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

const ORG_NAMES: &[&str] = &[
    "org",
    "org_id",
    "orgid",
    "organization",
    "organization_id",
    "organisation",
    "tenant",
    "tenant_id",
    "x-organization-id",
    "x-org-id",
    "x-tenant-id",
    "account_id",
    "workspace",
    "workspace_id",
];

fn is_org_name(name: &str) -> bool {
    ORG_NAMES.contains(&name.to_ascii_lowercase().as_str())
}

/// Singular, lower-case kind name: `projects` -> `project`.
pub fn singular(s: &str) -> String {
    let s = s.to_ascii_lowercase().replace('-', "_");
    if let Some(stem) = s.strip_suffix("ies") {
        format!("{stem}y")
    } else if let Some(stem) = s.strip_suffix('s').filter(|_| !s.ends_with("ss")) {
        stem.to_owned()
    } else {
        s
    }
}

/// The kind of an id parameter: the `x-org-scoped-id` hint, else `comment_id` ->
/// `comment`, else `id` -> the static segment before it (`/projects/{id}` -> `project`).
fn infer_kind(name: &str, path: &str) -> Option<String> {
    if let Some(stem) = name.strip_suffix("_id").or_else(|| name.strip_suffix("Id")) {
        return Some(singular(stem));
    }
    if name == "id" || name == "uuid" {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let pos = segs.iter().position(|s| *s == format!("{{{name}}}"))?;
        let before = segs.get(pos.checked_sub(1)?)?;
        return Some(singular(before));
    }
    None
}

fn resolve<'a>(doc: &'a Value, v: &'a Value, depth: usize) -> &'a Value {
    if depth > 16 {
        return v;
    }
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let ptr = r.trim_start_matches('#');
            match doc.pointer(ptr) {
                Some(target) => resolve(doc, target, depth + 1),
                None => v,
            }
        }
        None => v,
    }
}

/// Inlines `$ref`s (bounded depth) so schemas can be walked without the document.
fn inline(doc: &Value, v: &Value, depth: usize) -> Value {
    if depth > 8 {
        return Value::Null;
    }
    let v = resolve(doc, v, 0);
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), inline(doc, x, depth + 1)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|x| inline(doc, x, depth + 1)).collect()),
        other => other.clone(),
    }
}

/// Parses a document (JSON text).
pub fn parse(text: &str) -> Result<Vec<Operation>, SpecError> {
    let doc: Value = serde_json::from_str(text).map_err(|e| {
        let t = text.trim_start();
        if t.starts_with("openapi:") || t.starts_with("swagger:") || t.starts_with("---") {
            SpecError("the document is YAML; the probe reads JSON OpenAPI documents (convert it, e.g. with `yq -o=json`)".into())
        } else {
            SpecError(format!("the document is not valid JSON: {e}"))
        }
    })?;
    let version = doc.get("openapi").and_then(Value::as_str).unwrap_or("");
    if !version.starts_with("3.") {
        let found = doc.get("swagger").and_then(Value::as_str).map_or_else(
            || format!("openapi: {version:?}"),
            |s| format!("swagger {s}"),
        );
        return Err(SpecError(format!(
            "unsupported document ({found}); OpenAPI 3.x is required"
        )));
    }
    let paths = doc
        .get("paths")
        .and_then(Value::as_object)
        .ok_or_else(|| SpecError("the document has no `paths` object".into()))?;
    let global_public = doc
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty);
    let mut ops = Vec::new();
    for (path, item) in paths {
        let item = resolve(&doc, item, 0);
        let shared: Vec<Value> = item
            .get("parameters")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for method in ["get", "post", "put", "patch", "delete"] {
            let Some(op) = item.get(method) else { continue };
            let mut raw_params = shared.clone();
            raw_params.extend(
                op.get("parameters")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            );
            let mut params = Vec::new();
            for p in &raw_params {
                let p = resolve(&doc, p, 0);
                let Some(name) = p.get("name").and_then(Value::as_str) else {
                    continue;
                };
                let location = match p.get("in").and_then(Value::as_str) {
                    Some("path") => Location::Path,
                    Some("query") => Location::Query,
                    Some("header") => Location::Header,
                    _ => continue,
                };
                let is_org =
                    p.get("x-org").and_then(Value::as_bool).unwrap_or(false) || is_org_name(name);
                let kind = if is_org {
                    None
                } else {
                    p.get("x-org-scoped-id")
                        .and_then(Value::as_str)
                        .map(singular)
                        .or_else(|| infer_kind(name, path))
                        .or_else(|| (location == Location::Query).then(|| singular(name)))
                };
                params.push(Param {
                    name: name.to_owned(),
                    location,
                    is_org,
                    kind,
                    required: p
                        .get("required")
                        .and_then(Value::as_bool)
                        .unwrap_or(location == Location::Path),
                });
            }
            // Path template parameters the document forgot to declare still need values.
            for seg in path.split('/') {
                if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    if !params
                        .iter()
                        .any(|p| p.name == name && p.location == Location::Path)
                    {
                        let is_org = is_org_name(name);
                        params.push(Param {
                            name: name.to_owned(),
                            location: Location::Path,
                            is_org,
                            kind: if is_org { None } else { infer_kind(name, path) },
                            required: true,
                        });
                    }
                }
            }
            let body = op
                .pointer("/requestBody")
                .map(|b| resolve(&doc, b, 0))
                .and_then(|b| b.pointer("/content/application~1json/schema"))
                .map(|s| inline(&doc, s, 0));
            let public = op.get("x-access").and_then(Value::as_str) == Some("public")
                || op
                    .get("security")
                    .and_then(Value::as_array)
                    .map_or(global_public, Vec::is_empty);
            ops.push(Operation {
                id: op.get("operationId").and_then(Value::as_str).map_or_else(
                    || format!("{} {path}", method.to_ascii_uppercase()),
                    str::to_owned,
                ),
                method: method.to_ascii_uppercase(),
                path: path.clone(),
                params,
                body,
                permission: op
                    .get("x-permission")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                public,
            });
        }
    }
    if ops.is_empty() {
        return Err(SpecError("the document declares no operations".into()));
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_orgs_are_inferred() {
        let doc = r#"{"openapi":"3.0.3","paths":{
          "/orgs/{org}/projects/{id}":{"get":{"parameters":[{"name":"org","in":"path"},{"name":"id","in":"path"}]}},
          "/tickets/{ticket_id}/comments":{"get":{"parameters":[{"name":"X-Tenant-Id","in":"header"}]}}
        }}"#;
        let ops = parse(doc).unwrap();
        let a = ops.iter().find(|o| o.path.contains("projects")).unwrap();
        assert!(a.org_path_param().is_some());
        assert_eq!(
            a.id_params().next().unwrap().kind.as_deref(),
            Some("project")
        );
        let b = ops.iter().find(|o| o.path.contains("comments")).unwrap();
        assert_eq!(
            b.id_params().next().unwrap().kind.as_deref(),
            Some("ticket")
        );
        assert!(b.org_header().is_some());
    }

    #[test]
    fn bad_documents_are_named() {
        assert!(parse("openapi: 3.0.0\npaths: {}")
            .unwrap_err()
            .0
            .contains("YAML"));
        assert!(parse(r#"{"swagger":"2.0","paths":{}}"#)
            .unwrap_err()
            .0
            .contains("OpenAPI 3.x"));
        assert!(parse("{").unwrap_err().0.contains("not valid JSON"));
        assert!(parse(r#"{"openapi":"3.1.0","paths":{}}"#)
            .unwrap_err()
            .0
            .contains("no operations"));
    }

    #[test]
    fn singulars() {
        assert_eq!(singular("projects"), "project");
        assert_eq!(singular("api-keys"), "api_key");
        assert_eq!(singular("categories"), "category");
        assert_eq!(singular("access"), "access");
    }
}
