//! The tracking API's OpenAPI 3.1 document, served at `/v1/openapi.json`: the Segment calls
//! (`/v1/batch`, `/v1/import`, `/v1/track`, …) with their bodies, the answer, and the
//! problem+json errors every call shares (added by rule, so no call can forget one).
//!
//! The schemas say what a well-formed call is; a few rules no schema expresses (an event name
//! holding an email address or phone number, a timestamp that is not RFC 3339) are answered
//! 400 naming the field, like any other refused event.

use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{json, Map, Value};
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::admin::dto::ProblemDoc;
use crate::problem::CONTENT_TYPE as PROBLEM_JSON;

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "TrackLayer Tracking API",
        version = "1",
        description = "Segment-compatible event collection. Authenticate with the workspace's \
            write key as the Basic user name (`Authorization: Basic base64(key:)`), as a Bearer \
            token, or as `writeKey` in the body. An event needs `userId` (the Segment libraries \
            may send `anonymousId` instead). Events of a batch are judged one by one: the answer \
            counts the accepted ones and lists the rejected ones; a request with no valid event \
            is a 400. Errors are `application/problem+json` (RFC 9457) naming the `field`."
    ),
    paths(
        batch, import, track, identify, page, screen, group, alias, browser_track, browser_page,
        browser_identify, browser_screen, browser_group, browser_alias, browser_batch,
        beacon_batch, segment_settings, rudder_source_config, rudder_source_config_no_slash,
        healthz, openapi_json
    ),
    components(schemas(ProblemDoc)),
    modifiers(&Conventions),
    tags(
        (name = "tracking", description = "Segment-compatible calls"),
        (name = "browser", description = "What the browser SDKs (Segment's analytics-next, \
            RudderStack's JavaScript SDK) call: their short paths and beacon path, with the \
            body sent as `text/plain` or JSON, and the settings documents they load first"),
        (name = "meta", description = "Health and this document"),
    )
)]
pub struct TrackingApi;

/// The document. A batch's events are judged one by one, so an item of `batch` may be any JSON
/// value: one that is not a valid event is refused in the answer's `rejected` while the others
/// are accepted (the derive cannot say "a documented event, or anything else").
pub fn document() -> String {
    let mut doc = serde_json::to_value(TrackingApi::openapi()).unwrap_or_default();
    if let Some(batch) = doc.pointer_mut("/components/schemas/Batch/properties/batch") {
        batch["items"] = json!({"anyOf": [
            {"$ref": "#/components/schemas/BatchEvent"},
            {"description": "Any other value: judged like an event, and refused in `rejected`"},
        ]});
    }
    // Ids are strings (at most 512 bytes; blank counts as absent) or numbers; an event needs
    // `userId` or `anonymousId`. The message id: 1 to 256 characters, no control character.
    if let Some(common) = doc.pointer_mut("/components/schemas/Common") {
        for id in ["userId", "anonymousId"] {
            common["properties"][id] =
                json!({"type": ["string", "number", "null"], "maxLength": 512});
        }
        common["properties"]["messageId"] = json!({
            "type": ["string", "number", "null"],
            "maxLength": 256,
            "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$",
            "description": "Deduplication key: a repeat within 24 h is answered as accepted and not stored again",
        });
        // Present: a number, or a string that is not blank.
        let present = |id: &str| {
            let value = json!({"type": ["string", "number"], "pattern": "\\S"});
            json!({"required": [id], "properties": {id: value}})
        };
        common["anyOf"] = json!([present("userId"), present("anonymousId")]);
    }
    for (call, id) in [("GroupCall", "groupId"), ("AliasCall", "previousId")] {
        if let Some(p) = doc.pointer_mut(&format!(
            "/components/schemas/{call}/allOf/1/properties/{id}"
        )) {
            *p = json!({"type": ["string", "number"], "maxLength": 512, "pattern": "\\S"});
        }
    }
    doc.to_string()
}

/// `GET /v1/openapi.json`.
pub async fn openapi() -> axum::response::Response {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let doc = DOC.get_or_init(document).clone();
    ([(header::CONTENT_TYPE, "application/json")], doc).into_response()
}

/// Members every call may carry.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
struct Common {
    message_id: Option<String>,
    /// Who did it (`userId` or `anonymousId` is required).
    user_id: Option<String>,
    anonymous_id: Option<String>,
    /// When it happened (RFC 3339); default: when it was received.
    #[schema(format = DateTime)]
    timestamp: Option<String>,
    #[schema(format = DateTime)]
    original_timestamp: Option<String>,
    #[schema(format = DateTime)]
    sent_at: Option<String>,
    /// Device and consent context (`consent.categoryPreferences`, Consent Mode, `gpc`, …).
    context: Option<Map<String, Value>>,
    integrations: Option<Map<String, Value>>,
    properties: Option<Map<String, Value>>,
    traits: Option<Map<String, Value>>,
    /// The write key, when not sent in the Authorization header.
    write_key: Option<String>,
}

macro_rules! call {
    ($($name:ident: $type:literal, $doc:literal, {$($field:ident: $ty:ty $(= $attr:tt)?),*};)*) => {$(
        #[doc = $doc]
        #[derive(ToSchema)]
        #[allow(dead_code)]
        #[schema(rename_all = "camelCase")]
        struct $name {
            #[schema(pattern = $type)]
            r#type: Option<String>,
            $( $(#[schema $attr])? $field: $ty, )*
            #[serde(flatten)]
            common: Common,
        }
    )*};
}

call! {
    TrackCall: "^track$", "A `track` call: something the user did.", {
        event: String = (min_length = 1, max_length = 200)
    };
    IdentifyCall: "^identify$", "An `identify` call: who the user is (`traits`).", {};
    PageCall: "^page$", "A `page` call.", {
        name: Option<String> = (max_length = 200)
    };
    ScreenCall: "^screen$", "A `screen` call.", {
        name: Option<String> = (max_length = 200)
    };
    GroupCall: "^group$", "A `group` call.", {
        group_id: String
    };
    AliasCall: "^alias$", "An `alias` call.", {
        previous_id: String
    };
}

/// One event of a batch.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
struct BatchEvent {
    /// `track`, `identify`, `page`, `screen`, `group` or `alias`.
    #[schema(pattern = "^(track|identify|page|screen|group|alias)$")]
    r#type: String,
    #[serde(flatten)]
    common: Common,
}

/// `POST /v1/batch`: up to 2,500 events, 500 KB, each at most 32 KB.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
struct Batch {
    #[schema(min_items = 1, max_items = 2500)]
    batch: Vec<BatchEvent>,
    /// Read by every event that has no member of the same name in its own `context`.
    context: Option<Map<String, Value>>,
    integrations: Option<Map<String, Value>>,
    /// When the batch was sent (RFC 3339), for events without their own; an event it cannot
    /// serve is refused in `rejected`.
    sent_at: Option<Value>,
    write_key: Option<String>,
}

/// A refused event of the request.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
struct Rejection {
    index: usize,
    message_id: Option<String>,
    /// A JSON pointer into the event.
    field: String,
    detail: String,
}

/// An accepted event a destination will drop, or a member the API ignores.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
struct Warning {
    index: usize,
    message_id: String,
    destination: Option<String>,
    kind: Option<String>,
    rule: String,
    detail: String,
}

/// What the request achieved.
#[derive(ToSchema)]
#[allow(dead_code)]
struct Accepted {
    success: bool,
    /// Valid events, duplicates included.
    accepted: usize,
    duplicates: usize,
    rejected: Vec<Rejection>,
    invalid_identifiers: u32,
    /// Accepted events of an erased subject: dropped.
    suppressed: usize,
    /// Accepted events whose user agent is a known crawler's, dropped by the workspace's bot
    /// filter (on by default): neither stored nor sent.
    bots: usize,
    warnings: Option<Vec<Warning>>,
}

/// Liveness and this process's counters.
#[derive(ToSchema)]
#[allow(dead_code)]
struct Health {
    status: String,
    region: String,
    authentication: Map<String, Value>,
    ingest: Map<String, Value>,
}

macro_rules! paths {
    ($($fn:ident: $tag:literal $path:literal, $body:ty, $summary:literal;)*) => {$(
        #[doc = $summary]
        #[utoipa::path(
            post,
            path = $path,
            tag = $tag,
            operation_id = stringify!($fn),
            request_body(content = $body, content_type = "application/json"),
            responses((status = 200, description = "Accepted (see `rejected` and `warnings`)", body = Accepted)),
            security(("basic" = []), ("bearer" = []))
        )]
        #[allow(dead_code)]
        fn $fn() {}
    )*};
}

paths! {
    batch: "tracking" "/v1/batch", Batch, "Several events in one request";
    import: "tracking" "/v1/import", Batch, "Several events in one request (Segment's import alias of batch)";
    track: "tracking" "/v1/track", TrackCall, "Record an action";
    identify: "tracking" "/v1/identify", IdentifyCall, "Tie a user to their traits";
    page: "tracking" "/v1/page", PageCall, "Record a page view";
    screen: "tracking" "/v1/screen", ScreenCall, "Record a screen view";
    group: "tracking" "/v1/group", GroupCall, "Tie a user to a group";
    alias: "tracking" "/v1/alias", AliasCall, "Merge two user identities";
    // analytics-next sends these bodies as `text/plain` (no CORS preflight), the same JSON.
    browser_track: "browser" "/v1/t", TrackCall, "analytics-next's `track` (JSON, sent as `text/plain`)";
    browser_page: "browser" "/v1/p", PageCall, "analytics-next's `page` (JSON, sent as `text/plain`)";
    browser_identify: "browser" "/v1/i", IdentifyCall, "analytics-next's `identify` (JSON, sent as `text/plain`)";
    browser_screen: "browser" "/v1/s", ScreenCall, "analytics-next's `screen` (JSON, sent as `text/plain`)";
    browser_group: "browser" "/v1/g", GroupCall, "analytics-next's `group` (JSON, sent as `text/plain`)";
    browser_alias: "browser" "/v1/a", AliasCall, "analytics-next's `alias` (JSON, sent as `text/plain`)";
    browser_batch: "browser" "/v1/b", Batch, "analytics-next's batch, its `batching` strategy (JSON, sent as `text/plain`)";
}

/// RudderStack's `sendBeacon` batch on page unload: no headers, so the write key may come as
/// the `writeKey` query parameter.
#[utoipa::path(post, path = "/beacon/v1/batch", tag = "browser", operation_id = "beacon_batch",
    params(("writeKey" = Option<String>, Query, description = "The write key, when not in the Authorization header or the body")),
    request_body(content = Batch, content_type = "application/json"),
    responses((status = 200, description = "Accepted (see `rejected` and `warnings`)", body = Accepted)),
    security(("basic" = []), ("bearer" = []), ()))]
#[allow(dead_code)]
fn beacon_batch() {}

/// The settings document analytics-next loads from `{cdnURL}/v1/projects/{writeKey}/settings`:
/// one integration sending to this server, nothing remote. Authenticated by the path's key.
#[utoipa::path(get, path = "/v1/projects/{writeKey}/settings", tag = "browser",
    operation_id = "segment_settings",
    params(("writeKey" = String, Path, description = "The write key")),
    responses((status = 200, description = "The settings", content_type = "application/json", body = Object)))]
#[allow(dead_code)]
fn segment_settings() {}

macro_rules! source_config {
    ($($fn:ident: $path:literal;)*) => {$(
        /// The source configuration RudderStack's SDK loads from `{configUrl}/sourceConfig/`
        /// (either spelling): no device-mode destination, no reporting.
        #[utoipa::path(get, path = $path, tag = "browser", operation_id = stringify!($fn),
            params(("writeKey" = Option<String>, Query, description = "The write key, when not the Basic user name")),
            responses((status = 200, description = "The source configuration", content_type = "application/json", body = Object)),
            security(("basic" = []), ()))]
        #[allow(dead_code)]
        fn $fn() {}
    )*};
}

source_config! {
    rudder_source_config: "/sourceConfig/";
    rudder_source_config_no_slash: "/sourceConfig";
}

/// Liveness and counters.
#[utoipa::path(get, path = "/healthz", tag = "meta", operation_id = "healthz",
    responses((status = 200, description = "Up", body = Health)))]
#[allow(dead_code)]
fn healthz() {}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "meta", operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
#[allow(dead_code)]
fn openapi_json() {}

/// The errors every call shares: the status, its description and whether it is for POSTs only.
const ERRORS: &[(&str, &str)] = &[
    (
        "400",
        "Malformed JSON, a wrong shape, or no valid event; `field` names what is wrong",
    ),
    ("401", "No write key, or an unknown, revoked or expired one"),
    (
        "403",
        "The workspace's security settings block this address, or its allowed origins do not \
         list the request's `Origin` (`origin` names it)",
    ),
    ("408", "The body did not arrive in time"),
    ("413", "The body (500 KB) or an event (32 KB) is too large"),
    (
        "415",
        "The Content-Encoding is not supported (use gzip or none)",
    ),
    (
        "421",
        "The workspace lives in another region; `endpoint` says where to send it",
    ),
    ("422", "A batch-level object has too many keys"),
    (
        "429",
        "Too many requests for this key, or failed authentications; see Retry-After",
    ),
    (
        "503",
        "Busy or storage unavailable; retry after Retry-After",
    ),
];

struct Conventions;

impl Modify for Conventions {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        for (name, scheme) in [
            ("basic", HttpAuthScheme::Basic),
            ("bearer", HttpAuthScheme::Bearer),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(HttpBuilder::new().scheme(scheme).build()),
            );
        }
        for (path, item) in api.paths.paths.iter_mut() {
            if let Some(op) = item.post.as_mut() {
                add_errors(op, |_| true);
            }
            // The settings documents: authenticated and refused like a call, with no body.
            if let (Some(op), true) = (item.get.as_mut(), is_settings(path)) {
                add_errors(op, |status| {
                    !matches!(status, "408" | "413" | "415" | "422")
                });
            }
        }
    }
}

fn is_settings(path: &str) -> bool {
    path.starts_with("/sourceConfig") || path.starts_with("/v1/projects/")
}

fn add_errors(op: &mut Operation, takes: impl Fn(&str) -> bool) {
    for (status, description) in ERRORS.iter().filter(|(s, _)| takes(s)) {
        let response = ResponseBuilder::new()
            .description(*description)
            .content(
                PROBLEM_JSON,
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build();
        op.responses
            .responses
            .insert((*status).to_owned(), RefOr::T(response));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tracking_document_is_openapi_3_1_with_every_call_its_auth_and_its_errors() {
        let doc: Value = serde_json::from_str(&document()).unwrap();

        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        // The operation `method path`, named `id` and documenting `statuses`.
        let operation = |method: &str, path: &str, id: &str, statuses: &[&str]| {
            let op = &doc["paths"][path][method];
            assert_eq!(op["operationId"], id, "{path}");
            for status in statuses {
                assert!(op["responses"][status].is_object(), "{path} {status}");
            }
            op
        };
        for call in [
            "batch", "import", "track", "identify", "page", "screen", "group", "alias",
        ] {
            let statuses = ["200", "400", "401", "413", "429", "503"];
            let op = operation("post", &format!("/v1/{call}"), call, &statuses);
            assert!(op["requestBody"]["content"]["application/json"].is_object());
            assert_eq!(op["security"].as_array().unwrap().len(), 2, "{call}");
        }
        for (path, id) in [
            ("/v1/t", "browser_track"),
            ("/v1/p", "browser_page"),
            ("/v1/i", "browser_identify"),
            ("/v1/s", "browser_screen"),
            ("/v1/g", "browser_group"),
            ("/v1/a", "browser_alias"),
            ("/v1/b", "browser_batch"),
            ("/beacon/v1/batch", "beacon_batch"),
        ] {
            operation(
                "post",
                path,
                id,
                &["200", "400", "401", "403", "413", "429", "503"],
            );
        }
        for (path, id) in [
            ("/v1/projects/{writeKey}/settings", "segment_settings"),
            ("/sourceConfig/", "rudder_source_config"),
            ("/sourceConfig", "rudder_source_config_no_slash"),
        ] {
            let statuses = ["200", "400", "401", "403", "421", "429", "503"];
            let op = operation("get", path, id, &statuses);
            assert!(
                op["responses"]["413"].is_null(),
                "{path}: no body to be too large"
            );
        }
        assert!(doc["paths"]["/healthz"]["get"].is_object());
        assert!(doc["components"]["schemas"]["Problem"].is_object());
        assert!(doc["components"]["securitySchemes"]["basic"].is_object());
    }
}
