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

/// How a document is written, when the file name or the content type says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON (`.json`, `application/json`).
    Json,
    /// YAML (`.yaml`, `.yml`, `application/yaml`).
    Yaml,
    /// Unknown: JSON is tried, then YAML.
    Unknown,
}

impl Format {
    /// The format a file name or URL and a content type (if any) suggest.
    pub fn guess(source: &str, content_type: Option<&str>) -> Format {
        let ct = content_type.unwrap_or("").to_ascii_lowercase();
        let path = source
            .split(['?', '#'])
            .next()
            .unwrap_or(source)
            .to_ascii_lowercase();
        if ct.contains("yaml") || path.ends_with(".yaml") || path.ends_with(".yml") {
            Format::Yaml
        } else if ct.contains("json") || path.ends_with(".json") {
            Format::Json
        } else {
            Format::Unknown
        }
    }
}

/// YAML's data model into JSON's: keys become strings (`200:` is the key `"200"`), tags
/// are dropped, merge keys (`<<`) are applied.
fn yaml_to_json(v: serde_norway::Value) -> Value {
    use serde_norway::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Value::Null, Value::Number)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(a) => Value::Array(a.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let key = match yaml_to_json(k) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        Y::Tagged(t) => yaml_to_json(t.value),
    }
}

fn parse_yaml(text: &str) -> Result<Value, String> {
    let mut y: serde_norway::Value = serde_norway::from_str(text).map_err(|e| e.to_string())?;
    y.apply_merge().map_err(|e| e.to_string())?;
    Ok(yaml_to_json(y))
}

/// Reads a document's text as JSON or YAML.
pub fn read_document(text: &str, format: Format) -> Result<Value, SpecError> {
    let looks_json = text.trim_start().starts_with('{');
    match format {
        Format::Yaml => {
            parse_yaml(text).map_err(|e| SpecError(format!("the document is not valid YAML: {e}")))
        }
        Format::Json | Format::Unknown => match serde_json::from_str(text) {
            Ok(v) => Ok(v),
            Err(e) if looks_json => Err(SpecError(format!("the document is not valid JSON: {e}"))),
            Err(e) => parse_yaml(text).map_err(|y| {
                SpecError(format!(
                    "the document is neither valid JSON ({e}) nor valid YAML ({y})"
                ))
            }),
        },
    }
}

/// Parses a document (JSON or YAML text).
pub fn parse(text: &str) -> Result<Vec<Operation>, SpecError> {
    parse_as(text, Format::Unknown)
}

/// Parses a document whose format is known (or [`Format::Unknown`]).
pub fn parse_as(text: &str, format: Format) -> Result<Vec<Operation>, SpecError> {
    let doc = read_document(text, format)?;
    if !doc.is_object() {
        return Err(SpecError(
            "the document is not an OpenAPI document (not a mapping)".into(),
        ));
    }
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
            .contains("no operations"));
        assert!(parse_as("openapi: [", Format::Yaml)
            .unwrap_err()
            .0
            .contains("not valid YAML"));
        assert!(parse("just words")
            .unwrap_err()
            .0
            .contains("not an OpenAPI document"));
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
    fn yaml_documents_are_read() {
        let doc = "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /orgs/{org}/projects:\n    get:\n      parameters:\n        - &org {name: org, in: path, required: true}\n      responses:\n        200: {description: ok}\n    post:\n      parameters: [*org]\n";
        let ops = parse(doc).unwrap();
        assert_eq!(ops.len(), 2);
        assert!(ops.iter().all(|o| o.org_path_param().is_some()));
        // The same document, told it is YAML, and as JSON.
        assert_eq!(parse_as(doc, Format::Yaml).unwrap().len(), 2);
        assert_eq!(Format::guess("api.yml", None), Format::Yaml);
        assert_eq!(
            Format::guess("http://x/openapi", Some("application/yaml; charset=utf-8")),
            Format::Yaml
        );
        assert_eq!(
            Format::guess("http://x/openapi.json?v=1", None),
            Format::Json
        );
        assert_eq!(Format::guess("http://x/spec", None), Format::Unknown);
    }

    #[test]
    fn singulars() {
        assert_eq!(singular("projects"), "project");
        assert_eq!(singular("api-keys"), "api_key");
        assert_eq!(singular("categories"), "category");
        assert_eq!(singular("access"), "access");
    }
}
