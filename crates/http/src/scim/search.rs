//! Partial representations (RFC 7644 §3.4.2.5: `attributes` / `excludedAttributes`, on every
//! answer that returns resources) and `POST /.search` (§3.4.3) at the root and per type.

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value};
use tracklayer_core::scim::{ListPage, ScimError};

use super::resources::ResourceType;
use super::{ScimAnswer, ScimBody, ScimCall};

/// What a caller asked to be returned: only `attributes` (plus `id` and `schemas`, always
/// returned), or everything but `excluded`. Top-level names, case-insensitive; a sub-attribute
/// path (`name.givenName`) names its top-level attribute.
#[derive(Debug, Default, Clone)]
pub struct Projection {
    attributes: Vec<String>,
    excluded: Vec<String>,
}

fn names(list: Option<&str>) -> Vec<String> {
    list.unwrap_or_default()
        .split(',')
        .map(|n| {
            let n = n.trim();
            // A schema-qualified name (`urn:…:User:userName`) is its last part.
            let n = n.rsplit(':').next().unwrap_or(n);
            n.split('.').next().unwrap_or(n).to_ascii_lowercase()
        })
        .filter(|n| !n.is_empty())
        .collect()
}

impl Projection {
    pub fn new(attributes: Option<&str>, excluded: Option<&str>) -> Self {
        Self {
            attributes: names(attributes),
            excluded: names(excluded),
        }
    }

    fn keeps(&self, name: &str) -> bool {
        let lower = name.to_ascii_lowercase();
        if lower == "id" || lower == "schemas" {
            return true;
        }
        if !self.attributes.is_empty() {
            return self.attributes.contains(&lower);
        }
        !self.excluded.contains(&lower)
    }

    /// One resource, or each resource of a list answer.
    pub fn apply(&self, mut v: Value) -> Value {
        if self.attributes.is_empty() && self.excluded.is_empty() {
            return v;
        }
        if let Some(resources) = v.get_mut("Resources").and_then(Value::as_array_mut) {
            for r in resources.iter_mut() {
                *r = self.resource(std::mem::take(r));
            }
            return v;
        }
        self.resource(v)
    }

    fn resource(&self, v: Value) -> Value {
        match v {
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .filter(|(k, _)| self.keeps(k))
                    .collect::<Map<String, Value>>(),
            ),
            other => other,
        }
    }
}

/// A `SearchRequest` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchRequest {
    attributes: Option<Vec<String>>,
    excluded_attributes: Option<Vec<String>>,
    filter: Option<String>,
    start_index: Option<i64>,
    count: Option<i64>,
}

fn search_request(body: &Value) -> Result<(SearchRequest, Projection), ScimAnswer> {
    let req: SearchRequest = serde_json::from_value(body.clone()).map_err(|e| {
        ScimAnswer::error(
            StatusCode::BAD_REQUEST,
            Some("invalidSyntax"),
            &format!("not a SearchRequest: {e}"),
        )
    })?;
    let projection = Projection::new(
        req.attributes.as_ref().map(|a| a.join(",")).as_deref(),
        req.excluded_attributes
            .as_ref()
            .map(|a| a.join(","))
            .as_deref(),
    );
    Ok((req, projection))
}

/// `POST /Users/.search` and `POST /Groups/.search`: the list of that type.
pub async fn search_type(call: ScimCall, t: ResourceType, body: &Value) -> ScimAnswer {
    let (req, projection) = match search_request(body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let r = t
        .list(
            &call.scim(),
            req.filter.as_deref(),
            ListPage::new(req.start_index, req.count),
        )
        .await;
    ScimAnswer::of(
        call.0.config(),
        StatusCode::OK,
        r.map(|v| projection.apply(v)),
    )
}

/// `POST /.search`: users and groups at once (no filter: each type has its own attributes).
pub async fn search_all(call: ScimCall, ScimBody(body): ScimBody) -> ScimAnswer {
    let (req, projection) = match search_request(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    if req.filter.is_some() {
        return ScimAnswer::of(
            call.0.config(),
            StatusCode::OK,
            Err(ScimError::invalid(
                "invalidFilter",
                "filter a search of one resource type: POST /Users/.search or /Groups/.search",
            )),
        );
    }
    let r = call
        .scim()
        .search_all(ListPage::new(req.start_index, req.count))
        .await;
    ScimAnswer::of(
        call.0.config(),
        StatusCode::OK,
        r.map(|v| projection.apply(v)),
    )
}
