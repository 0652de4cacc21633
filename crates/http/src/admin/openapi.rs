//! The admin API's OpenAPI 3.1 document, generated from the handlers and wire types, and its
//! documented routes: each handler's `#[utoipa::path]` gives both its route and its operation,
//! so no route is served undocumented or documented but not served.
//!
//! The error responses every operation shares are added here, by rule, so that no route can
//! forget one: 401/421/500/503 everywhere, 400 where there are parameters or a body, 404 where
//! the path names an object, 413/415/422 where there is a body.

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::{
    audit_log, deliveries, delivery_log, destinations, dsr, dto, events, keys, lifecycle, saml,
    scim_groups, security, sessions, stats, trace, users, workspace, AdminState,
};
use crate::problem::CONTENT_TYPE as PROBLEM_JSON;

/// The document's info, shared components and tags; its paths come from [`documented_routes`].
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "TrackLayer Admin API",
        version = "1",
        description = "The control plane of a TrackLayer workspace: settings, users, API keys, \
            destinations, event traces and the tamper-evident audit log. Authenticate with \
            `Authorization: Bearer <token>` (a personal access token or a service token). Roles \
            (whitepaper §04): viewers read configuration, delivery logs and event traces; editors \
            also change routing, destinations' non-secret settings and operational settings; \
            admins also manage users, keys, secrets, security settings, retention, the audit \
            log and data-subject requests. Errors are `application/problem+json` (RFC 9457); validation errors name the \
            `field`. Objects of another workspace answer 404."
    ),
    components(schemas(dto::ProblemDoc)),
    tags(
        (name = "workspace", description = "Workspace settings, consent policy, security settings"),
        (name = "users", description = "Users and their roles"),
        (name = "sso", description = "SAML single sign-on: the workspace's IdP connection (admins)"),
        (name = "api-keys", description = "Ingest write keys and service tokens"),
        (name = "destinations", description = "Destinations, their delivery log, tests and replays"),
        (name = "events", description = "Event traces"),
        (name = "stats", description = "The overview: delivery and ingest counts over the last hour, day or week"),
        (name = "audit-log", description = "The audit log: a keyed (HMAC-SHA256) chain, anchored by its head and retention checkpoint"),
        (name = "data-subject-requests", description = "Erasure and access requests of data subjects (admins)"),
        (name = "meta", description = "This document"),
    )
)]
struct AdminApi;

/// The routes of the document's operations, one `routes!` per path, in the document's order.
pub(super) fn documented_routes() -> OpenApiRouter<AdminState> {
    use destinations as dst;
    OpenApiRouter::with_openapi(AdminApi::openapi())
        .routes(routes!(
            workspace::get_workspace,
            workspace::update_workspace
        ))
        .routes(routes!(lifecycle::close_workspace))
        .routes(routes!(
            workspace::get_consent_policy,
            workspace::put_consent_policy
        ))
        .routes(routes!(
            security::get_security,
            security::put_security,
            security::patch_security
        ))
        .routes(routes!(saml::get_saml, saml::put_saml, saml::delete_saml))
        .routes(routes!(
            scim_groups::get_group_roles,
            scim_groups::put_group_roles
        ))
        .routes(routes!(security::get_cors, security::put_cors))
        .routes(routes!(security::get_bot_filter, security::put_bot_filter))
        .routes(routes!(lifecycle::get_retention, lifecycle::put_retention))
        .routes(routes!(lifecycle::put_encryption_key))
        .routes(routes!(users::list_users, users::invite_user))
        .routes(routes!(users::update_user, users::remove_user))
        .routes(routes!(sessions::list_sessions))
        .routes(routes!(sessions::revoke_session))
        .routes(routes!(keys::list_keys, keys::create_key))
        .routes(routes!(keys::rotate_key))
        .routes(routes!(keys::revoke_key))
        .routes(routes!(keys::delete_key))
        .routes(routes!(dst::list_destinations, dst::create_destination))
        .routes(routes!(
            dst::get_destination,
            dst::update_destination,
            dst::delete_destination
        ))
        .routes(routes!(dst::pause_destination))
        .routes(routes!(dst::resume_destination))
        .routes(routes!(dst::test_destination))
        .routes(routes!(delivery_log::delivery_log))
        .routes(routes!(deliveries::replay))
        .routes(routes!(trace::event_trace))
        .routes(routes!(events::find))
        .routes(routes!(stats::stats))
        .routes(routes!(audit_log::audit_log))
        .routes(routes!(audit_log::verify_audit_log))
        .routes(routes!(dsr::submit, dsr::list))
        .routes(routes!(dsr::get))
        .routes(routes!(dsr::export))
        .routes(routes!(openapi))
}

/// The document: the operations of [`documented_routes`] with the shared error responses and
/// the bearer scheme added by rule.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut api = documented_routes().into_openapi();
    Conventions.modify(&mut api);
    api
}

/// The name of the bearer security scheme.
pub const BEARER: &str = "bearer";

struct Conventions;

fn problem_response(
    description: &str,
    header: Option<(&str, &str)>,
) -> RefOr<utoipa::openapi::Response> {
    let mut b = ResponseBuilder::new().description(description).content(
        PROBLEM_JSON,
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .build(),
    );
    if let Some((name, doc)) = header {
        b = b.header(
            name,
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::String))
                .description(Some(doc))
                .build(),
        );
    }
    RefOr::T(b.build())
}

/// A shared error response: its status, component name, description and header.
struct Common {
    status: &'static str,
    name: &'static str,
    description: &'static str,
    header: Option<(&'static str, &'static str)>,
}

const COMMON: &[Common] = &[
    Common {
        status: "400",
        name: "BadRequest",
        description: "A parameter or the body is malformed (wrong JSON, type or format); `field` names it",
        header: None,
    },
    Common {
        status: "401",
        name: "Unauthorized",
        description: "No token, or an unknown, revoked or expired one",
        header: Some(("WWW-Authenticate", "`Bearer realm=\"tracklayer-admin\"`")),
    },
    Common {
        status: "403",
        name: "Forbidden",
        description: "The token's role may not do this",
        header: None,
    },
    Common {
        status: "404",
        name: "NotFound",
        description: "No such object in the token's workspace",
        header: None,
    },
    Common {
        status: "409",
        name: "Conflict",
        description: "The request conflicts with the current state",
        header: None,
    },
    Common {
        status: "413",
        name: "PayloadTooLarge",
        description: "The body is larger than 64 KiB",
        header: None,
    },
    Common {
        status: "415",
        name: "UnsupportedMediaType",
        description: "The body's Content-Encoding is not supported (use gzip or none)",
        header: None,
    },
    Common {
        status: "421",
        name: "WrongRegion",
        description: "The token's workspace lives in another region; `endpoint` says where to send it",
        header: None,
    },
    Common {
        status: "422",
        name: "Unprocessable",
        description: "The request is well formed but breaks a rule the schema cannot express; `field` names it",
        header: None,
    },
    Common {
        status: "429",
        name: "TooManyFailedAuthentications",
        description: "Too many failed authentications from this address or for this key id; retry after `Retry-After` seconds",
        header: Some(("Retry-After", "Seconds to wait before retrying")),
    },
    Common {
        status: "500",
        name: "Internal",
        description: "An internal error; the body carries a request id and nothing else",
        header: None,
    },
    Common {
        status: "503",
        name: "Unavailable",
        description: "Storage or the key service is unavailable (`key-unavailable`: the workspace key is disabled); retry",
        header: Some(("Retry-After", "Seconds to wait before retrying")),
    },
];

fn add(op: &mut Operation, status: &str) {
    if let Some(c) = COMMON.iter().find(|c| c.status == status) {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(c.name)));
    }
}

impl Modify for Conventions {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.security_schemes.insert(
            BEARER.to_owned(),
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("tl_<pat|svc>_<region>_<id>_<secret>")
                    .description(Some("A personal access token or a service token"))
                    .build(),
            ),
        );
        for c in COMMON {
            components
                .responses
                .insert(c.name.to_owned(), problem_response(c.description, c.header));
        }
        for (path, item) in api.paths.paths.iter_mut() {
            let has_id = path.contains('{');
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                let public = op
                    .security
                    .as_ref()
                    .is_some_and(|s| s.iter().all(|r| r == &SecurityRequirement::default()));
                if public {
                    continue;
                }
                op.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
                let has_params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
                let has_body = op.request_body.is_some();
                for status in ["401", "421", "429", "500", "503"] {
                    add(op, status);
                }
                if has_params || has_body {
                    add(op, "400");
                }
                if has_id {
                    add(op, "404");
                }
                if has_body {
                    for status in ["413", "415", "422"] {
                        add(op, status);
                    }
                }
            }
        }
    }
}

/// This document.
#[utoipa::path(get, path = "/admin/v1/openapi.json", operation_id = "getOpenApi", tag = "meta",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document of the admin API", content_type = "application/json", body = Object)))]
pub async fn openapi(State(s): State<AdminState>) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        s.openapi_json(),
    )
        .into_response()
}
