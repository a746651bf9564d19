//! Reading an OpenAPI 3.x document into the operations the probe exercises.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

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
    /// Whether it names the tenant (`x-org`, `--tenant-param`/`--tenant-header`, or
    /// inferred: see [`Tenancy`]).
    pub is_org: bool,
    /// Whether the document itself marks it as the tenant (`x-org`).
    pub hinted: bool,
    /// Whether the document declares it (false: a path template parameter it forgot, or
    /// the `--tenant-header` added to an operation that does not declare it).
    pub declared: bool,
    /// The resource kind it references, if it is an id (`x-org-scoped-id`, or inferred
    /// from the name and path). For the tenant path parameter: the kind of its values
    /// (`/workspaces/{ws}` -> `workspace`), used only when no tenant value is given.
    pub kind: Option<String>,
    /// Whether it is required.
    pub required: bool,
}

/// How a request body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Media {
    /// `application/json` (or any `+json` type).
    #[default]
    Json,
    /// `multipart/form-data`: each top-level field a part, files as file parts.
    Multipart,
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
    /// The request body schema (references resolved), if any: JSON, else
    /// `multipart/form-data`.
    pub body: Option<Value>,
    /// How the body is sent.
    pub media: Media,
    /// The fields of a multipart body that are files (`type: string, format: binary`).
    pub files: Vec<String>,
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

/// How the tenant is named in the document. A name given here wins; without one the
/// probe infers it, unless the document carries `x-org` hints (then those are the tenant):
///
/// - the tenant **header**: a header parameter named like a tenant (`X-Workspace`,
///   `X-Account-Id`, `X-Tenant-Id`, `X-Org`, ...);
/// - the tenant **path parameter**: a parameter named like a tenant in any case style
///   (`{org}`, `{workspace}`, `{ws}`, `{team_slug}`, `{accountId}`, `{project-space}`)
///   that is the first templated segment of a route; else, when no tenant header was
///   found, the parameter that is the first templated segment of (nearly) every
///   collection route (`/{site}/documents`, `/{site}/folders/{folderId}/files`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tenancy {
    /// The tenant path parameter's name (any case), if given.
    pub param: Option<String>,
    /// The tenant header's name (any case), if given. Operations that do not declare it
    /// get it too (their answers to B's tenant are checked for B's data, not for a denial).
    pub header: Option<String>,
}

/// Words that name a tenant.
const TENANT_WORDS: &[&str] = &[
    "org",
    "organization",
    "organisation",
    "tenant",
    "workspace",
    "ws",
    "team",
    "account",
    "acct",
    "company",
    "space",
    "realm",
];

/// Trailing words of an identifier parameter (`{doc_id}`, `{team_slug}`, `{spaceKey}`).
const PARAM_ID_WORDS: &[&str] = &["id", "ids", "uuid", "guid", "slug", "key", "handle", "ref"];

/// Trailing words of an identifier field in a JSON body (`documentId`, `doc_id`, `uuid`).
pub const FIELD_ID_WORDS: &[&str] = &["id", "uuid", "guid"];

/// Splits a name into lower-case words, whatever its case style: `documentId`, `doc_id`,
/// `DocID`, `document-id`, `X-Account-Id` -> `[document, id]`, ..., `[x, account, id]`.
pub fn words(name: &str) -> Vec<String> {
    let chars: Vec<char> = name.chars().collect();
    let mut out = Vec::new();
    let mut cur = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_ascii_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        let prev = i.checked_sub(1).and_then(|j| chars.get(j)).copied();
        let next = chars.get(i + 1).copied();
        let boundary = c.is_ascii_uppercase()
            && prev.is_some_and(|p| {
                p.is_ascii_lowercase()
                    || p.is_ascii_digit()
                    || (p.is_ascii_uppercase() && next.is_some_and(|n| n.is_ascii_lowercase()))
            });
        if boundary && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(c.to_ascii_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn tenant_word(w: &str) -> bool {
    TENANT_WORDS.contains(&w) || TENANT_WORDS.contains(&singular(w).as_str())
}

/// Whether a parameter, header or field is named like a tenant: `org`, `orgId`,
/// `organization_id`, `tenant`, `workspace`, `ws`, `team_slug`, `accountId`,
/// `project-space`, `X-Workspace`, `X-Account-Id`, `X-Tenant-Id`, `X-Org`...
pub fn is_tenant_name(name: &str) -> bool {
    let mut w = words(name);
    if w.len() > 1 && w.first().is_some_and(|f| f == "x") {
        w.remove(0);
    }
    if w.len() > 1
        && w.last()
            .is_some_and(|l| PARAM_ID_WORDS.contains(&l.as_str()))
    {
        w.pop();
    }
    let Some(last) = w.last() else {
        return false;
    };
    tenant_word(last)
        || (w.len() == 1
            && last
                .strip_suffix("id")
                .is_some_and(|stem| !stem.is_empty() && tenant_word(stem)))
}

/// A name without its trailing id word, as a kind (`doc_id` -> `doc`, `DocumentID` ->
/// `document`, `uuid` -> ``), and whether there was one.
pub fn id_stem(name: &str, id_words: &[&str]) -> (String, bool) {
    let mut w = words(name);
    let had = w.last().is_some_and(|l| id_words.contains(&l.as_str()));
    if had {
        w.pop();
    }
    (singular(&w.join("_")), had)
}

/// Whether `short` abbreviates `long`: equal, a prefix (`doc`, `document`), or its letters
/// in order from the same first letter (`ws`, `workspace`).
pub fn abbreviates(short: &str, long: &str) -> bool {
    if short == long {
        return true;
    }
    if short.len() < 2 || short.len() > long.len() || short.chars().next() != long.chars().next() {
        return false;
    }
    let mut rest = long.chars();
    short.chars().all(|c| rest.any(|d| d == c))
}

/// Whether two kind names name the same resource (`doc` and `document`).
pub fn same_kind(a: &str, b: &str) -> bool {
    abbreviates(a, b) || abbreviates(b, a)
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

/// The static segment right before `{name}` in `path`, if any.
fn segment_before(name: &str, path: &str) -> Option<String> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let pos = segs.iter().position(|s| *s == format!("{{{name}}}"))?;
    let before = segs.get(pos.checked_sub(1)?)?;
    (!before.starts_with('{')).then(|| singular(before))
}

/// The kind of an id parameter, in any case style: `{id}`, `{uuid}` or `{key}` -> the
/// static segment before it (`/projects/{id}` -> `project`); `{comment_id}`,
/// `{commentId}`, `{CommentID}`, `{comment-id}` -> `comment`; an abbreviation of the
/// segment before it takes the segment's name (`/documents/{doc_id}` -> `document`).
fn infer_kind(name: &str, path: &str) -> Option<String> {
    let (stem, had_id) = id_stem(name, PARAM_ID_WORDS);
    let seg = segment_before(name, path);
    if stem.is_empty() {
        return seg;
    }
    match seg {
        Some(sk) if same_kind(&stem, &sk) => Some(sk),
        _ if had_id => Some(stem),
        _ => None,
    }
}

/// The name of the first templated segment of a path.
fn first_param(path: &str) -> Option<&str> {
    path.split('/')
        .find_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
}

/// The parameter that is the first templated segment of (nearly) every collection route
/// (a path ending in a static segment), not counting the list of the tenants themselves.
fn prefix_param(ops: &[Operation]) -> Option<String> {
    let paths: BTreeSet<&str> = ops.iter().map(|o| o.path.as_str()).collect();
    let collections: Vec<&str> = paths
        .iter()
        .copied()
        .filter(|p| {
            p.rsplit('/')
                .next()
                .is_some_and(|s| !s.is_empty() && !s.starts_with('{'))
        })
        .collect();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &collections {
        if let Some(f) = first_param(c) {
            *counts.entry(f).or_default() += 1;
        }
    }
    let (name, n) = counts.into_iter().max_by_key(|(_, n)| *n)?;
    let marker = format!("/{{{name}}}");
    let lists: BTreeSet<&str> = paths
        .iter()
        .filter_map(|p| p.find(&marker).map(|at| p.get(..at).unwrap_or("")))
        .collect();
    let total = collections.iter().filter(|c| !lists.contains(*c)).count();
    (n >= 2 && n * 5 >= total * 4).then(|| name.to_owned())
}

/// Decides which parameters name the tenant (see [`Tenancy`]) and the kinds of the rest.
fn assign_tenancy(ops: &mut [Operation], t: &Tenancy) {
    let hinted = ops.iter().flat_map(|o| &o.params).any(|p| p.hinted);
    let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    // Headers.
    for op in ops.iter_mut() {
        let mut found = op.org_header().is_some();
        for p in op
            .params
            .iter_mut()
            .filter(|p| p.location == Location::Header && !p.hinted)
        {
            let yes = match &t.header {
                Some(h) => same(&p.name, h),
                None => !hinted && !found && is_tenant_name(&p.name),
            };
            p.is_org = yes;
            found |= yes;
        }
    }
    // Path parameters.
    let names: BTreeSet<String> = match &t.param {
        Some(n) => [n.clone()].into(),
        None if hinted => BTreeSet::new(),
        None => {
            let named: BTreeSet<String> = ops
                .iter()
                .filter_map(|o| first_param(&o.path))
                .filter(|n| is_tenant_name(n))
                .map(str::to_owned)
                .collect();
            if named.is_empty() && !ops.iter().any(|o| o.org_header().is_some()) {
                prefix_param(ops).into_iter().collect()
            } else {
                named
            }
        }
    };
    for op in ops.iter_mut() {
        let path = op.path.clone();
        for p in op.params.iter_mut() {
            if p.hinted {
                continue;
            }
            p.is_org = match p.location {
                Location::Path => names.iter().any(|n| same(n, &p.name)),
                Location::Query => t.param.is_none() && is_tenant_name(&p.name),
                Location::Header => p.is_org,
            };
            if p.kind.is_some() {
                continue; // x-org-scoped-id
            }
            p.kind = match (p.is_org, p.location) {
                (true, Location::Path) => {
                    infer_kind(&p.name, &path).or_else(|| Some(id_stem(&p.name, PARAM_ID_WORDS).0))
                }
                (true, _) => None,
                (false, Location::Query) => {
                    infer_kind(&p.name, &path).or_else(|| Some(singular(&p.name)))
                }
                (false, _) => infer_kind(&p.name, &path),
            };
        }
        // The given tenant header on operations that do not declare it.
        if let Some(h) = &t.header {
            if op.org_header().is_none() && op.org_path_param().is_none() && !op.public {
                op.params.push(Param {
                    name: h.clone(),
                    location: Location::Header,
                    is_org: true,
                    hinted: false,
                    declared: false,
                    kind: None,
                    required: true,
                });
            }
        }
    }
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

/// The body schema and its encoding: a JSON media type first, else multipart.
fn body_schema(doc: &Value, content: &serde_json::Map<String, Value>) -> (Option<Value>, Media) {
    let json = content.iter().find(|(ct, _)| {
        let ct = ct.to_ascii_lowercase();
        ct == "application/json" || ct.ends_with("+json") || ct.contains("/json;")
    });
    let multipart = content
        .iter()
        .find(|(ct, _)| ct.to_ascii_lowercase().starts_with("multipart/form-data"));
    let (media, entry) = match (json, multipart) {
        (Some(j), _) => (Media::Json, j.1),
        (None, Some(m)) => (Media::Multipart, m.1),
        (None, None) => return (None, Media::Json),
    };
    let schema = entry.get("schema").map(|s| inline(doc, s, 0));
    (schema, media)
}

/// Whether a schema describes file content (`format: binary`, or OpenAPI 3.1's
/// `contentMediaType` / `contentEncoding`).
pub fn is_binary(schema: &Value) -> bool {
    matches!(
        schema.get("format").and_then(Value::as_str),
        Some("binary" | "byte" | "base64")
    ) || schema.get("contentMediaType").is_some()
        || schema.get("contentEncoding").is_some()
}

/// The fields of a multipart schema that are files (or arrays of files).
fn file_fields(schema: &Value) -> Vec<String> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| {
            props
                .iter()
                .filter(|(_, s)| is_binary(s) || s.get("items").is_some_and(is_binary))
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Parses a document (JSON or YAML text), inferring the tenant.
pub fn parse(text: &str) -> Result<Vec<Operation>, SpecError> {
    parse_with(text, Format::Unknown, &Tenancy::default())
}

/// Parses a document whose format is known (or [`Format::Unknown`]), inferring the tenant.
pub fn parse_as(text: &str, format: Format) -> Result<Vec<Operation>, SpecError> {
    parse_with(text, format, &Tenancy::default())
}

/// Parses a document with the tenant named (or inferred) as `tenancy` says.
pub fn parse_with(
    text: &str,
    format: Format,
    tenancy: &Tenancy,
) -> Result<Vec<Operation>, SpecError> {
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
                let hinted = p.get("x-org").and_then(Value::as_bool).unwrap_or(false);
                params.push(Param {
                    name: name.to_owned(),
                    location,
                    is_org: hinted,
                    hinted,
                    declared: true,
                    kind: if hinted {
                        None
                    } else {
                        p.get("x-org-scoped-id")
                            .and_then(Value::as_str)
                            .map(singular)
                    },
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
                        params.push(Param {
                            name: name.to_owned(),
                            location: Location::Path,
                            is_org: false,
                            hinted: false,
                            declared: false,
                            kind: None,
                            required: true,
                        });
                    }
                }
            }
            let (body, media) = match op
                .pointer("/requestBody")
                .map(|b| resolve(&doc, b, 0))
                .and_then(|b| b.get("content"))
                .and_then(Value::as_object)
            {
                Some(content) => body_schema(&doc, content),
                None => (None, Media::Json),
            };
            let files = match (&body, media) {
                (Some(b), Media::Multipart) => file_fields(b),
                _ => Vec::new(),
            };
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
                media,
                files,
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
    assign_tenancy(&mut ops, tenancy);
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

    fn op<'a>(ops: &'a [Operation], method: &str, path: &str) -> &'a Operation {
        ops.iter()
            .find(|o| o.method == method && o.path == path)
            .unwrap()
    }

    fn kind_of(o: &Operation, name: &str) -> Option<String> {
        o.params
            .iter()
            .find(|p| p.name == name)
            .unwrap()
            .kind
            .clone()
    }

    #[test]
    fn words_in_any_case_style() {
        assert_eq!(words("documentId"), ["document", "id"]);
        assert_eq!(words("doc_id"), ["doc", "id"]);
        assert_eq!(words("DocID"), ["doc", "id"]);
        assert_eq!(words("document-id"), ["document", "id"]);
        assert_eq!(words("X-Account-Id"), ["x", "account", "id"]);
        assert_eq!(words("HTTPServer2Id"), ["http", "server2", "id"]);
    }

    #[test]
    fn tenant_names() {
        for n in [
            "org",
            "orgs",
            "orgId",
            "orgid",
            "organization_id",
            "tenant",
            "workspace",
            "ws",
            "team_slug",
            "accountId",
            "company",
            "project-space",
            "X-Workspace",
            "X-Account-Id",
            "X-Tenant-Id",
            "X-Org",
            "X-Organization-Id",
        ] {
            assert!(is_tenant_name(n), "{n}");
        }
        for n in [
            "id",
            "documentId",
            "doc_id",
            "uuid",
            "X-Request-Id",
            "Authorization",
            "project_id",
            "status",
            "key",
        ] {
            assert!(!is_tenant_name(n), "{n}");
        }
    }

    #[test]
    fn ids_in_any_case_style() {
        let doc = r#"{"openapi":"3.0.3","paths":{
          "/workspaces/{workspace}/documents/{documentId}":{"get":{}},
          "/workspaces/{workspace}/documents/{documentId}/comments/{CommentID}":{"get":{}},
          "/workspaces/{workspace}/docs/{doc_id}":{"get":{}},
          "/workspaces/{workspace}/documents/{doc-id}/raw":{"get":{}},
          "/workspaces/{workspace}/files/{uuid}":{"get":{}},
          "/workspaces/{workspace}/api-keys/{key}":{"get":{}},
          "/workspaces/{workspace}/shares/{documentUuid}":{"get":{}},
          "/workspaces/{workspace}/labels/{name}":{"get":{}}
        }}"#;
        let ops = parse(doc).unwrap();
        let k = |path: &str, name: &str| kind_of(op(&ops, "GET", path), name);
        let p = "/workspaces/{workspace}/documents/{documentId}";
        assert_eq!(k(p, "documentId").as_deref(), Some("document"));
        assert!(op(&ops, "GET", p).org_path_param().is_some());
        let c = "/workspaces/{workspace}/documents/{documentId}/comments/{CommentID}";
        assert_eq!(k(c, "CommentID").as_deref(), Some("comment"));
        assert_eq!(
            k("/workspaces/{workspace}/docs/{doc_id}", "doc_id").as_deref(),
            Some("doc")
        );
        assert_eq!(
            k("/workspaces/{workspace}/documents/{doc-id}/raw", "doc-id").as_deref(),
            Some("document")
        );
        assert_eq!(
            k("/workspaces/{workspace}/files/{uuid}", "uuid").as_deref(),
            Some("file")
        );
        assert_eq!(
            k("/workspaces/{workspace}/api-keys/{key}", "key").as_deref(),
            Some("api_key")
        );
        assert_eq!(
            k(
                "/workspaces/{workspace}/shares/{documentUuid}",
                "documentUuid"
            )
            .as_deref(),
            Some("document")
        );
        assert_eq!(k("/workspaces/{workspace}/labels/{name}", "name"), None);
        assert!(same_kind("doc", "document") && same_kind("ws", "workspace"));
        assert!(!same_kind("note", "notification") && !same_kind("file", "folder"));
    }

    #[test]
    fn the_tenant_is_inferred_by_name_or_by_position() {
        // By name: the first templated segment named like a tenant.
        let doc = r#"{"openapi":"3.0.3","paths":{
          "/{ws}/documents":{"get":{}},
          "/{ws}/documents/{documentId}":{"get":{}},
          "/users/{userId}/teams/{teamId}":{"get":{}}
        }}"#;
        let ops = parse(doc).unwrap();
        assert_eq!(
            op(&ops, "GET", "/{ws}/documents")
                .org_path_param()
                .unwrap()
                .name,
            "ws"
        );
        let u = op(&ops, "GET", "/users/{userId}/teams/{teamId}");
        assert!(u.org_path_param().is_none(), "{u:?}");
        // By position: the parameter that prefixes every collection (the list of sites
        // itself aside).
        let doc = r#"{"openapi":"3.0.3","paths":{
          "/sites":{"get":{}},
          "/sites/{site}/pages":{"get":{},"post":{}},
          "/sites/{site}/pages/{pageId}":{"get":{}},
          "/sites/{site}/pages/{pageId}/revisions":{"get":{}},
          "/sites/{site}/media":{"get":{}}
        }}"#;
        let ops = parse(doc).unwrap();
        let o = op(&ops, "GET", "/sites/{site}/pages/{pageId}");
        assert_eq!(o.org_path_param().unwrap().name, "site");
        assert_eq!(o.org_path_param().unwrap().kind.as_deref(), Some("site"));
        assert_eq!(kind_of(o, "pageId").as_deref(), Some("page"));
        // A tenant header: no path parameter is taken for the tenant by position.
        let doc = r#"{"openapi":"3.0.3","paths":{
          "/docs":{"get":{"parameters":[{"name":"X-Account-Id","in":"header"}]}},
          "/docs/{doc_id}/versions":{"get":{"parameters":[{"name":"X-Account-Id","in":"header"}]}},
          "/docs/{doc_id}/comments":{"get":{"parameters":[{"name":"X-Account-Id","in":"header"}]}},
          "/attachments/{uuid}":{"get":{"parameters":[{"name":"X-Request-Id","in":"header"}]}}
        }}"#;
        let ops = parse(doc).unwrap();
        let v = op(&ops, "GET", "/docs/{doc_id}/versions");
        assert!(v.org_path_param().is_none());
        assert_eq!(v.org_header().unwrap().name, "X-Account-Id");
        assert_eq!(kind_of(v, "doc_id").as_deref(), Some("doc"));
        let a = op(&ops, "GET", "/attachments/{uuid}");
        assert!(a.org_header().is_none());
        assert_eq!(kind_of(a, "uuid").as_deref(), Some("attachment"));
    }

    #[test]
    fn given_names_win_and_hints_are_trusted() {
        let doc = r#"{"openapi":"3.0.3","paths":{
          "/c/{ctx}/items":{"get":{"parameters":[{"name":"X-Scope","in":"header"}]}},
          "/c/{ctx}/items/{itemId}":{"get":{}},
          "/plain":{"get":{}},
          "/open":{"get":{"security":[]}},
          "/orgs/{org}/x":{"get":{}}
        }}"#;
        let t = Tenancy {
            param: Some("CTX".into()),
            header: Some("x-scope".into()),
        };
        let ops = parse_with(doc, Format::Json, &t).unwrap();
        let o = op(&ops, "GET", "/c/{ctx}/items");
        assert_eq!(o.org_path_param().unwrap().name, "ctx");
        // Only the given parameter: `{org}` is not taken for the tenant.
        assert!(op(&ops, "GET", "/orgs/{org}/x").org_path_param().is_none());
        // The given header, added where the document does not declare it.
        let plain = op(&ops, "GET", "/plain");
        let h = plain.org_header().unwrap();
        assert!(h.name == "x-scope" && !h.declared);
        assert!(op(&ops, "GET", "/open").org_header().is_none());
        // x-org hints are trusted: nothing else is inferred.
        let doc = r#"{"openapi":"3.0.3","paths":{
          "/orgs/{org}/teams/{team}":{"get":{"parameters":[{"name":"org","in":"path","x-org":true}]}},
          "/workspaces/{workspace}/x":{"get":{"parameters":[{"name":"X-Workspace","in":"header"}]}}
        }}"#;
        let ops = parse(doc).unwrap();
        assert_eq!(
            op(&ops, "GET", "/orgs/{org}/teams/{team}")
                .org_path_param()
                .unwrap()
                .name,
            "org"
        );
        let w = op(&ops, "GET", "/workspaces/{workspace}/x");
        assert!(w.org_path_param().is_none() && w.org_header().is_none());
    }

    #[test]
    fn multipart_bodies_are_read() {
        let doc = r##"{"openapi":"3.0.3","paths":{
          "/w/{workspace}/documents":{"post":{"requestBody":{"content":{
            "multipart/form-data":{"schema":{"$ref":"#/components/schemas/Upload"}}}}}},
          "/w/{workspace}/notes":{"post":{"requestBody":{"content":{
            "multipart/form-data":{"schema":{"type":"object"}},
            "application/vnd.api+json":{"schema":{"type":"object","properties":{"title":{"type":"string"}}}}}}}}
        },"components":{"schemas":{"Upload":{"type":"object","properties":{
            "file":{"type":"string","format":"binary"},
            "pages":{"type":"array","items":{"type":"string","contentMediaType":"image/png"}},
            "title":{"type":"string"}}}}}}"##;
        let ops = parse(doc).unwrap();
        let u = op(&ops, "POST", "/w/{workspace}/documents");
        assert_eq!(u.media, Media::Multipart);
        assert_eq!(u.files, ["file", "pages"]);
        assert!(u
            .body
            .as_ref()
            .unwrap()
            .pointer("/properties/title")
            .is_some());
        let n = op(&ops, "POST", "/w/{workspace}/notes");
        assert_eq!(n.media, Media::Json);
        assert!(n.files.is_empty());
    }

    #[test]
    fn singulars() {
        assert_eq!(singular("projects"), "project");
        assert_eq!(singular("api-keys"), "api_key");
        assert_eq!(singular("categories"), "category");
        assert_eq!(singular("access"), "access");
    }
}
