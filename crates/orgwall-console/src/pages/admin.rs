//! (to come)

use crate::Console;
use axum::Router;

pub(crate) fn routes() -> Router<Console> {
    Router::new()
}
