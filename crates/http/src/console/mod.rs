//! The console: server-rendered pages (askama templates compiled into the binary, htmx for
//! partial updates, no JS build, no CDN) for the people who run tracking. Served by
//! `tracklayer serve` at `/` and by the admin function on AWS.
//!
//! Every page calls the same core use cases as the admin API ([`AdminService`]); the role
//! check lives there, a page only hides what the role cannot do. Every answer carries the
//! headers of [`security`]; every state change passes [`csrf`].

mod assets;
mod csrf;
mod handler;
pub(crate) mod pages;
pub mod security;
mod session;
mod view;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use tracklayer_core::admin::AdminService;
use tracklayer_core::dsr::service::DsrService;

use crate::admin::{AdminState, DestinationTester};
use crate::problem::Problem;
pub(crate) use session::cookie;
pub use session::COOKIE;

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

    fn admin(&self) -> &AdminService {
        self.inner.admin.admin()
    }

    fn tester(&self) -> &DestinationTester {
        self.inner.admin.tester()
    }

    fn dsr(&self) -> Option<&DsrService> {
        self.inner.admin.dsr()
    }

    /// The public base URL of each region.
    fn endpoints(&self) -> &crate::regions::RegionEndpoints {
        &self.inner.admin.config().endpoints
    }

    /// The public URL of the caller's region (SAML and SCIM addresses).
    fn base_url(&self, p: &tracklayer_core::admin::Principal) -> &str {
        self.inner.admin.base_url(p)
    }

    /// The admin API's answer to a use case's error.
    fn problem(&self, e: impl crate::admin::Failure) -> Problem {
        self.inner.admin.problem_of(e)
    }
}

/// The console's routes, at `/`. It has no fallback: merged with the admin and tracking
/// routers, unknown paths get theirs.
pub fn console_router(state: ConsoleState) -> Router {
    use pages::{
        auth, cors, destinations as dst, events, keys, overview, privacy, settings, sso,
        sso_sign_in, users,
    };
    Router::new()
        .route("/", get(overview::overview))
        .route("/sign-in", get(auth::sign_in_page).post(auth::sign_in))
        .route(
            "/sign-in/sso",
            get(sso_sign_in::page_of_sso).post(sso_sign_in::find_sso),
        )
        .route(
            "/sign-in/link/{token}",
            get(auth::link_page).post(auth::redeem_link),
        )
        .route("/sign-out", post(auth::sign_out))
        .route(
            "/invite/{token}",
            get(auth::invitation_page).post(auth::accept_invitation),
        )
        .route(
            "/reset",
            get(auth::reset_request_page).post(auth::request_reset),
        )
        .route(
            "/reset/{token}",
            get(auth::reset_page).post(auth::reset_password),
        )
        .route("/account", get(auth::account))
        .route("/account/password", post(auth::change_password))
        .route(
            "/account/sessions/{sid}/revoke",
            post(auth::revoke_own_session),
        )
        .route("/events", get(events::debugger))
        .route("/events/{id}", get(events::trace))
        .route("/destinations", get(dst::list).post(dst::create))
        .route("/destinations/new", get(dst::new_form))
        .route("/destinations/{id}", get(dst::detail).post(dst::update))
        .route("/destinations/{id}/pause", post(dst::pause))
        .route("/destinations/{id}/resume", post(dst::resume))
        .route("/destinations/{id}/test", post(dst::test))
        .route("/destinations/{id}/replay", post(dst::replay))
        .route("/destinations/{id}/delete", post(dst::delete))
        .route("/keys", get(keys::list).post(keys::create))
        .route("/keys/{id}/rotate", post(keys::rotate))
        .route("/keys/{id}/revoke", post(keys::revoke))
        .route("/users", get(users::list).post(users::invite))
        .route("/users/{id}", get(users::detail))
        .route("/users/{id}/role", post(users::set_role))
        .route("/users/{id}/remove", post(users::remove))
        .route(
            "/users/{id}/sessions/{sid}/revoke",
            post(users::revoke_session),
        )
        .route(
            "/settings/consent",
            get(settings::consent).post(settings::save_consent),
        )
        .route(
            "/settings/retention",
            get(settings::retention).post(settings::save_retention),
        )
        .route(
            "/settings/security",
            get(settings::security).post(settings::save_security),
        )
        .route("/settings/security/egress", post(settings::egress))
        .route(
            "/settings/workspace",
            get(settings::workspace).post(settings::save_workspace),
        )
        .route("/settings/workspace/close", post(settings::close_workspace))
        .route(
            "/privacy-requests",
            get(privacy::list).post(privacy::submit),
        )
        .route("/privacy-requests/{id}", get(privacy::detail))
        .route("/privacy-requests/{id}/export", get(privacy::export))
        .route("/audit-log", get(pages::audit::log))
        .route("/settings/sso", get(sso::show).post(sso::save))
        .route("/settings/cors", get(cors::show).post(cors::save))
        .route("/settings/sso/scim-tokens", post(sso::create_token))
        .route(
            "/settings/sso/scim-tokens/{id}/revoke",
            post(sso::revoke_token),
        )
        .route(&format!("{}{{name}}", assets::PREFIX), get(assets::serve))
        .layer(axum::middleware::map_response(security::headers))
        .with_state(state)
}
