//! The console: server-rendered pages (askama templates compiled into the binary, htmx for
//! partial updates, no JS build, no CDN) for the people who run tracking. Served by
//! `tracklayer serve` at `/` and by the admin function on AWS.
//!
//! Every page calls the same core use cases as the admin API ([`AdminService`]); the role
//! check lives there, a page only hides what the role cannot do. Every answer carries the
//! headers of [`security`].

mod assets;
mod pages;
pub mod security;
mod view;

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use tracklayer_core::admin::AdminService;

use crate::admin::AdminState;

/// Shared state of the console's routes: the admin API's state (the same use cases).
#[derive(Debug, Clone)]
pub struct ConsoleState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    admin: AdminState,
}

impl ConsoleState {
    pub fn new(admin: AdminState) -> Self {
        Self {
            inner: Arc::new(Inner { admin }),
        }
    }

    #[allow(dead_code)]
    fn admin(&self) -> &AdminService {
        self.inner.admin.admin()
    }
}

/// The console's routes, at `/`. It has no fallback: merged with the admin and tracking
/// routers, unknown paths get theirs.
pub fn console_router(state: ConsoleState) -> Router {
    Router::new()
        .route("/sign-in", get(pages::auth::sign_in_page))
        .route(&format!("{}{{name}}", assets::PREFIX), get(assets::serve))
        .layer(axum::middleware::map_response(security::headers))
        .with_state(state)
}
