//! CRUD routes for a tenant table, behind the wall, in one declaration.
//!
//! A [`Resource`] names a [`Table`] (see `orgwall_tenancy::rows`), where it is served and
//! the permissions that read and write it; [`routes`] gives its five routes (list,
//! create, get, update, delete), each declared as a [`RouteSpec`] and installed behind the
//! guard like any other route, so they are documented in the OpenAPI document (with their
//! body schema, `x-permission` and `x-org-scoped-id`) and probed by the prober. Handlers
//! open the caller's scoped transaction and go through the table gateway: another org's
//! id is a 404, a body field that the table does not declare is a 422, a reference to a
//! row of another org is refused by the composite foreign key.

use crate::body::{Body, Params};
use crate::page::{paged, PageQuery};
use crate::problem::Problem;
use crate::routes::{route, Access, Route, RouteSpec};
use crate::wall::{id, Scoped};
use crate::Kernel;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, patch, post};
use axum::Json;
use orgwall_core::{Error, Permission};
use orgwall_tenancy::rows::{Column, Kind, Table};
use orgwall_tenancy::Val;
use serde_json::{json, Map, Value};
use uuid::Uuid;

/// A tenant table served over HTTP.
pub trait Resource: Send + Sync + 'static {
    /// The table.
    const TABLE: &'static Table;
    /// The collection path after the org part, e.g. `/courses`.
    const PATH: &'static str;
    /// The resource kind in the document (`x-org-scoped-id`), e.g. `course`.
    const KIND: &'static str;
    /// Needed to list and read.
    const READ: Permission;
    /// Needed to create, change and delete.
    const WRITE: Permission;
}

fn leak<T>(v: T) -> &'static T {
    Box::leak(Box::new(v))
}

fn leak_str(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// The JSON schema of a create (`required` honoured) or update (all optional) body.
fn body_schema<R: Resource>(create: bool) -> Value {
    let mut props = Map::new();
    for c in R::TABLE.columns {
        let t = match c.kind {
            Kind::Text => json!({ "type": "string", "maxLength": orgwall_tenancy::rows::MAX_TEXT }),
            Kind::Int => json!({ "type": "integer" }),
            Kind::Bool => json!({ "type": "boolean" }),
            Kind::Ref => json!({ "type": "string", "format": "uuid" }),
            Kind::Time => json!({ "type": "string", "format": "date-time" }),
        };
        props.insert(c.name.into(), t);
    }
    let required: Vec<&str> = R::TABLE
        .columns
        .iter()
        .filter(|c| create && c.required)
        .map(|c| c.name)
        .collect();
    json!({ "type": "object", "properties": props, "required": required, "additionalProperties": false })
}

fn create_schema<R: Resource>() -> Value {
    body_schema::<R>(true)
}

fn update_schema<R: Resource>() -> Value {
    body_schema::<R>(false)
}

/// The fields of a body, each checked against its declared column.
fn fields<R: Resource>(body: &Value) -> Result<Vec<(&'static Column, Val)>, Problem> {
    let obj = body
        .as_object()
        .ok_or_else(|| Problem::from(Error::Validation("the body must be a JSON object".into())))?;
    let mut out = Vec::new();
    for (k, v) in obj {
        let c = R::TABLE
            .column(k)
            .ok_or_else(|| Problem::from(Error::Validation(format!("unknown field {k}"))))?;
        out.push((c, c.parse(v)?));
    }
    Ok(out)
}

/// The five routes of `R`, for a service whose router state `S` holds the [`Kernel`].
pub fn routes<S, R: Resource>() -> Vec<Route<S>>
where
    S: Clone + Send + Sync + 'static,
    Kernel: axum::extract::FromRef<S>,
{
    let id_param = leak_str(format!("{}_id", R::KIND));
    let item = leak_str(format!("{}/{{{id_param}}}", R::PATH));
    let ids: &'static [(&'static str, &'static str)] = leak([(id_param, R::KIND)]);
    let spec = |method, path, access, summary: String, ids, body, status| {
        leak(RouteSpec {
            method,
            path,
            access: Access::Org(Some(access)),
            summary: leak_str(summary),
            ids,
            body,
            status,
            query: (method == "GET" && path == R::PATH)
                .then_some(crate::routes::schema::<PageQuery> as crate::routes::SchemaFn),
            ..RouteSpec::DEFAULT
        })
    };
    let kind = R::KIND;
    vec![
        route(
            spec(
                "GET",
                R::PATH,
                R::READ,
                format!("List {kind}s"),
                &[],
                None,
                200,
            ),
            get(list::<R>),
        ),
        route(
            spec(
                "POST",
                R::PATH,
                R::WRITE,
                format!("Create a {kind}"),
                &[],
                Some(create_schema::<R>),
                201,
            ),
            post(create::<R>),
        ),
        route(
            spec(
                "GET",
                item,
                R::READ,
                format!("Read a {kind}"),
                ids,
                None,
                200,
            ),
            get(read::<R>),
        ),
        route(
            spec(
                "PATCH",
                item,
                R::WRITE,
                format!("Change a {kind}"),
                ids,
                Some(update_schema::<R>),
                200,
            ),
            patch(update::<R>),
        ),
        route(
            spec(
                "DELETE",
                item,
                R::WRITE,
                format!("Delete a {kind}"),
                ids,
                None,
                204,
            ),
            delete(remove::<R>),
        ),
    ]
}

async fn list<R: Resource>(
    State(k): State<Kernel>,
    Scoped(scope): Scoped,
    Params(q): Params<PageQuery>,
) -> Result<impl IntoResponse, Problem> {
    let page = q.page()?;
    let mut tx = k.db.read_once(&scope).await?;
    let rows = R::TABLE.list(&mut tx, page.after, page.limit + 1).await?;
    tx.commit().await?;
    let items = rows
        .iter()
        .map(|r| Ok((r.get::<Uuid>(0)?, R::TABLE.to_json(r)?)))
        .collect::<orgwall_core::Result<Vec<_>>>()?;
    let p = paged(items, page, |(id, _)| *id);
    let items: Vec<Value> = p.items.into_iter().map(|(_, v)| v).collect();
    Ok(Json(
        json!({ "items": items, "next_cursor": p.next_cursor }),
    ))
}

async fn create<R: Resource>(
    State(k): State<Kernel>,
    Scoped(scope): Scoped,
    Body(body): Body<Value>,
) -> Result<impl IntoResponse, Problem> {
    let given = fields::<R>(&body)?;
    let mut values = Vec::new();
    for c in R::TABLE.columns {
        match given.iter().find(|(g, _)| std::ptr::eq(*g, c)) {
            Some((_, v)) => values.push(v.clone()),
            None => values.push(c.parse(&Value::Null)?),
        }
    }
    let mut tx = k.db.write(&scope).await?;
    let row = R::TABLE.insert(&mut tx, &values).await?;
    let out = R::TABLE.to_json(&row)?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(out)))
}

async fn read<R: Resource>(
    State(k): State<Kernel>,
    Scoped(scope): Scoped,
    Path(raw): Path<Vec<(String, String)>>,
) -> Result<impl IntoResponse, Problem> {
    let row_id = item_id(&raw)?;
    let mut tx = k.db.read_once(&scope).await?;
    let row = R::TABLE.get(&mut tx, row_id).await?;
    tx.commit().await?;
    Ok(Json(R::TABLE.to_json(&row)?))
}

async fn update<R: Resource>(
    State(k): State<Kernel>,
    Scoped(scope): Scoped,
    Path(raw): Path<Vec<(String, String)>>,
    Body(body): Body<Value>,
) -> Result<impl IntoResponse, Problem> {
    let row_id = item_id(&raw)?;
    let changes = fields::<R>(&body)?;
    let mut tx = k.db.write(&scope).await?;
    let row = R::TABLE.update(&mut tx, row_id, &changes).await?;
    let out = R::TABLE.to_json(&row)?;
    tx.commit().await?;
    Ok(Json(out))
}

async fn remove<R: Resource>(
    State(k): State<Kernel>,
    Scoped(scope): Scoped,
    Path(raw): Path<Vec<(String, String)>>,
) -> Result<impl IntoResponse, Problem> {
    let row_id = item_id(&raw)?;
    let mut tx = k.db.write(&scope).await?;
    R::TABLE.delete(&mut tx, row_id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The item id: the last path parameter (the first may be `{org}`).
fn item_id(raw: &[(String, String)]) -> Result<Uuid, Problem> {
    id(raw.last().map_or("", |(_, v)| v.as_str()))
}
