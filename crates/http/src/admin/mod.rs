//! The admin API at `/admin/v1`: workspace settings, users, API keys, destinations, event
//! traces and the audit log, with RBAC (whitepaper §04) enforced by the control plane, and its
//! OpenAPI 3.1 document at `/admin/v1/openapi.json`.
//!
//! Every answer that is not a success is `application/problem+json`, including unknown routes
//! (404) and unsupported methods (405 with `Allow`).

pub(crate) mod audit_log;
pub(crate) mod deliveries;
pub(crate) mod delivery_log;
pub(crate) mod destinations;
pub mod dsr;
pub mod dto;
pub(crate) mod error;
pub(crate) mod events;
pub(crate) mod extract;
pub(crate) mod keys;
pub(crate) mod lifecycle;
pub mod openapi;
pub(crate) mod saml;
mod saml_acs;
pub(crate) mod scim_groups;
pub(crate) mod security;
mod sessions;
mod stats;
pub(crate) mod test_event;
pub(crate) mod trace;
pub(crate) mod users;
pub(crate) mod workspace;

use std::future::Future;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use tracklayer_core::admin as tl_principal;
use tracklayer_core::admin::{AdminError, AdminService};
use tracklayer_core::dsr::service::DsrService;

pub use extract::MAX_BODY_BYTES;
use extract::{Answer, Created, Json, NoContent};
pub use test_event::{DestinationTester, TEST_EVENT_NAME};

use crate::problem::Problem;
use crate::regions::RegionEndpoints;

/// Settings of the admin API.
#[derive(Debug, Clone, Default)]
pub struct AdminConfig {
    /// Public base URL of each region, for 421 answers and SAML URLs.
    pub endpoints: RegionEndpoints,
}

/// Shared state of the admin routes.
#[derive(Debug, Clone)]
pub struct AdminState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    admin: Arc<AdminService>,
    tester: DestinationTester,
    config: AdminConfig,
    openapi: String,
    dsr: std::sync::OnceLock<Arc<DsrService>>,
}

impl AdminState {
    pub fn new(admin: Arc<AdminService>, tester: DestinationTester, config: AdminConfig) -> Self {
        let openapi = openapi::document()
            .to_pretty_json()
            .unwrap_or_else(|_| "{}".into());
        Self {
            inner: Arc::new(Inner {
                admin,
                tester,
                config,
                openapi,
                dsr: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Serves data-subject requests with this service (without it, those routes answer 503).
    pub fn with_dsr(self, dsr: Arc<DsrService>) -> Self {
        // Set once, right after `new`: a second service is ignored.
        let _ = self.inner.dsr.set(dsr);
        self
    }

    pub(crate) fn dsr(&self) -> Option<&DsrService> {
        self.inner.dsr.get().map(|d| d.as_ref())
    }

    pub(crate) fn admin(&self) -> &AdminService {
        &self.inner.admin
    }

    pub(crate) fn tester(&self) -> &DestinationTester {
        &self.inner.tester
    }

    pub(crate) fn config(&self) -> &AdminConfig {
        &self.inner.config
    }

    /// The public base URL of the caller's region (SAML entity id and ACS URL).
    pub(crate) fn base_url(&self, p: &tl_principal::Principal) -> &str {
        self.config().endpoints.of(p.workspace_id.region())
    }

    fn openapi_json(&self) -> String {
        self.inner.openapi.clone()
    }

    /// The problem+json answer to a use case's error (the console's pages show the same).
    pub(crate) fn problem_of(&self, e: impl Failure) -> Problem {
        e.problem(self.config())
    }

    /// The problem+json answer to a control-plane error.
    fn fail(&self, e: AdminError) -> Problem {
        e.problem(self.config())
    }

    /// Awaits a use case; its error answers as problem+json.
    async fn run<T, E: Failure>(
        &self,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, Problem> {
        call.await.map_err(|e| e.problem(self.config()))
    }

    /// Awaits a use case and answers its result as the wire type `W`.
    async fn answer<T, W: From<T>, E: Failure>(
        &self,
        call: impl Future<Output = Result<T, E>>,
    ) -> Answer<W> {
        Ok(Json(self.run(call).await?.into()))
    }

    /// Awaits a use case that creates something and answers `201 Created` with its result
    /// as the wire type `W`.
    async fn answer_created<T, W: From<T>, E: Failure>(
        &self,
        call: impl Future<Output = Result<T, E>>,
    ) -> Created<W> {
        Ok((StatusCode::CREATED, Json(self.run(call).await?.into())))
    }

    /// Awaits a use case whose result is not returned and answers `204 No Content`.
    async fn answer_no_content<T, E: Failure>(
        &self,
        call: impl Future<Output = Result<T, E>>,
    ) -> NoContent {
        self.run(call).await?;
        Ok(StatusCode::NO_CONTENT)
    }

    /// Awaits a use case and answers each item of its result as the wire type `W`.
    async fn answer_each<T, W: From<T>, E: Failure>(
        &self,
        call: impl Future<Output = Result<Vec<T>, E>>,
    ) -> Answer<Vec<W>> {
        Ok(Json(
            self.run(call).await?.into_iter().map(W::from).collect(),
        ))
    }
}

/// A use case's error, as the problem+json answer it gets.
pub(crate) trait Failure {
    fn problem(self, config: &AdminConfig) -> Problem;
}

impl Failure for AdminError {
    fn problem(self, config: &AdminConfig) -> Problem {
        error::problem(self, config)
    }
}

/// The admin routes, under `/admin/v1`: those of the OpenAPI document, and the SAML
/// endpoints the identity provider calls.
pub fn admin_router(state: AdminState) -> Router {
    let (documented, _) = openapi::documented_routes().split_for_parts();
    documented
        .route("/sso/saml/{id}/metadata", get(saml_acs::metadata))
        .route("/sso/saml/{id}/login", get(saml_acs::login))
        .route("/sso/saml/{id}/acs", post(saml_acs::acs))
        .method_not_allowed_fallback(crate::problem::method_not_allowed)
        .fallback(not_found)
        .layer(axum::middleware::map_response(
            crate::headers::admin_response,
        ))
        .with_state(state)
}

/// The fallback of `serve`'s one router (admin and tracking merged): a path under `/v1` is
/// pointed at the tracking API, anything else at the admin API's OpenAPI document.
async fn not_found(uri: axum::http::Uri) -> Problem {
    let tracking = uri.path() == "/v1" || uri.path().starts_with("/v1/");
    let detail = if tracking {
        "no such tracking route: the tracking API takes POST /v1/batch, /v1/import, /v1/track, \
         /v1/identify, /v1/page, /v1/screen, /v1/group and /v1/alias (Segment-compatible)"
    } else {
        "no such route; see /admin/v1/openapi.json"
    };
    Problem::new(StatusCode::NOT_FOUND, "not-found", "Not Found", detail)
}
