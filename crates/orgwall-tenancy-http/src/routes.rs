//! The route table: every route is declared once, as a [`RouteSpec`], and that one
//! declaration both installs the HTTP wall in front of its handler and describes the route
//! in the OpenAPI document (with its required permission as `x-permission`). A route
//! cannot be served without its wall, nor documented with a different permission than
//! the one enforced.

use crate::wall;
use crate::Kernel;
use axum::routing::MethodRouter;
use axum::Router;

pub use crate::spec::{schema, Access, RouteSpec, SchemaFn};

/// A declared route and its handler, over the service's router state `S`.
pub struct Route<S> {
    /// The declaration.
    pub spec: &'static RouteSpec,
    /// The handler (one method).
    pub handler: MethodRouter<S>,
}

/// Declares a route: `route(&SPEC, get(handler))`.
pub fn route<S>(spec: &'static RouteSpec, handler: MethodRouter<S>) -> Route<S> {
    Route { spec, handler }
}

/// Installs every route behind its wall (the guard runs with `kernel`, whatever the
/// service's own state `S` is).
pub fn install<S: Clone + Send + Sync + 'static>(
    kernel: &Kernel,
    routes: Vec<Route<S>>,
) -> Router<S> {
    crate::problem::register_codes(kernel.db.catalog());
    let mut router = Router::new();
    for r in routes {
        let guarded = r.handler.layer(axum::middleware::from_fn_with_state(
            kernel.clone(),
            wall::guard(r.spec),
        ));
        for p in r.spec.paths() {
            router = router.route(&p, guarded.clone());
        }
    }
    router
}
