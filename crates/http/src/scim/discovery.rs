//! What the service provider supports (RFC 7644 §4): `ServiceProviderConfig`,
//! `ResourceTypes`, `Schemas`. Public documents, still behind the SCIM token.

use axum::extract::Path;
use axum::http::StatusCode;
use serde_json::{json, Value};
use tracklayer_core::scim::{list_response, ListPage, GROUP_SCHEMA, MAX_COUNT, USER_SCHEMA};

use super::{ScimAnswer, ScimCall, BASE_PATH};

const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RT_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

pub async fn service_provider_config(_: ScimCall) -> ScimAnswer {
    ScimAnswer::Resource(
        StatusCode::OK,
        json!({
            "schemas": [SPC_SCHEMA],
            "documentationUri": "https://github.com/tracklayer/tracklayer#single-sign-on-and-scim",
            "patch": {"supported": true},
            "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": true, "maxResults": MAX_COUNT},
            "changePassword": {"supported": false},
            "sort": {"supported": false},
            "etag": {"supported": false},
            "authenticationSchemes": [{
                "type": "oauthbearertoken",
                "name": "SCIM token",
                "description": "A TrackLayer SCIM token (tl_scim_…) as Authorization: Bearer",
                "primary": true,
            }],
            "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{BASE_PATH}/ServiceProviderConfig")},
        }),
    )
}

fn resource_types_all() -> Vec<Value> {
    [("User", "/Users", USER_SCHEMA), ("Group", "/Groups", GROUP_SCHEMA)]
        .into_iter()
        .map(|(name, endpoint, schema)| {
            json!({
                "schemas": [RT_SCHEMA],
                "id": name,
                "name": name,
                "endpoint": endpoint,
                "schema": schema,
                "schemaExtensions": [],
                "meta": {"resourceType": "ResourceType", "location": format!("{BASE_PATH}/ResourceTypes/{name}")},
            })
        })
        .collect()
}

pub async fn resource_types(_: ScimCall) -> ScimAnswer {
    every(resource_types_all())
}

pub async fn resource_type(_: ScimCall, Path(id): Path<String>) -> ScimAnswer {
    one(resource_types_all(), &id, "resource type")
}

fn attribute(name: &str, kind: &str, extra: Value) -> Value {
    let mut a = json!({
        "name": name, "type": kind, "multiValued": false, "description": name,
        "required": false, "caseExact": false, "mutability": "readWrite",
        "returned": "default", "uniqueness": "none",
    });
    if let (Some(a), Some(extra)) = (a.as_object_mut(), extra.as_object()) {
        a.extend(extra.clone());
    }
    a
}

fn schemas_all() -> Vec<Value> {
    let sub = |names: &[(&str, &str)]| -> Vec<Value> {
        names
            .iter()
            .map(|(n, t)| attribute(n, t, json!({})))
            .collect()
    };
    let read_only = |names: &[(&str, &str)]| -> Vec<Value> {
        names
            .iter()
            .map(|(n, t)| attribute(n, t, json!({"mutability": "readOnly"})))
            .collect()
    };
    let user = json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": USER_SCHEMA, "name": "User", "description": "A TrackLayer user",
        "attributes": [
            attribute("userName", "string", json!({"required": true, "uniqueness": "server", "description": "Any unique name; the primary email (else an email-shaped userName) is the sign-in address"})),
            attribute("active", "boolean", json!({})),
            attribute("emails", "complex", json!({"multiValued": true, "subAttributes": sub(&[("value", "string"), ("type", "string"), ("primary", "boolean")])})),
            attribute("groups", "complex", json!({"multiValued": true, "mutability": "readOnly", "subAttributes": read_only(&[("value", "string"), ("display", "string")])})),
        ],
        "meta": {"resourceType": "Schema", "location": format!("{BASE_PATH}/Schemas/{USER_SCHEMA}")},
    });
    let group = json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": GROUP_SCHEMA, "name": "Group", "description": "A group of the identity provider",
        "attributes": [
            attribute("displayName", "string", json!({"required": true, "description": "Any name; the workspace's group roles say which names give a role"})),
            attribute("members", "complex", json!({"multiValued": true, "subAttributes": [
                attribute("value", "string", json!({"mutability": "immutable", "caseExact": true})),
                attribute("$ref", "reference", json!({"mutability": "immutable", "referenceTypes": ["User"]})),
            ]})),
        ],
        "meta": {"resourceType": "Schema", "location": format!("{BASE_PATH}/Schemas/{GROUP_SCHEMA}")},
    });
    vec![user, group]
}

pub async fn schemas(_: ScimCall) -> ScimAnswer {
    every(schemas_all())
}

pub async fn schema(_: ScimCall, Path(id): Path<String>) -> ScimAnswer {
    one(schemas_all(), &id, "schema")
}

/// A list answer of every resource of `all` (a few: they fit in the first page).
fn every(all: Vec<Value>) -> ScimAnswer {
    ScimAnswer::Resource(StatusCode::OK, list_response(all, ListPage::default()))
}

fn one(all: Vec<Value>, id: &str, what: &str) -> ScimAnswer {
    match all.into_iter().find(|v| v["id"] == id) {
        Some(v) => ScimAnswer::Resource(StatusCode::OK, v),
        None => ScimAnswer::error(StatusCode::NOT_FOUND, None, &format!("no such {what}")),
    }
}
