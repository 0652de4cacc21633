//! The `Users` and `Groups` handlers: wire in, use case, SCIM answer out.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use serde::Deserialize;

use super::search::{search_type, Projection};
use super::{ScimAnswer, ScimBody, ScimCall};

/// List parameters (RFC 7644 §3.4.2): `filter`, 1-based `startIndex`, `count`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    filter: Option<String>,
    #[serde(rename = "startIndex")]
    start_index: Option<String>,
    count: Option<String>,
    attributes: Option<String>,
    #[serde(rename = "excludedAttributes")]
    excluded_attributes: Option<String>,
}

impl ListQuery {
    fn projection(&self) -> Projection {
        Projection::new(
            self.attributes.as_deref(),
            self.excluded_attributes.as_deref(),
        )
    }

    /// `startIndex` below 1 is read as 1 and a negative `count` as 0 (RFC 7644 §3.4.2.4);
    /// anything not a number is refused.
    fn page(&self) -> Result<(usize, Option<usize>), ScimAnswer> {
        let number = |name: &str, v: &Option<String>| -> Result<Option<i64>, ScimAnswer> {
            v.as_deref()
                .map(|s| {
                    s.trim().parse::<i64>().map_err(|_| {
                        ScimAnswer::error(
                            StatusCode::BAD_REQUEST,
                            Some("invalidValue"),
                            &format!("{name} must be an integer"),
                        )
                    })
                })
                .transpose()
        };
        let start = number("startIndex", &self.start_index)?.unwrap_or(1).max(1) as usize;
        let count = number("count", &self.count)?.map(|c| c.max(0) as usize);
        Ok((start, count))
    }
}

fn ok(
    call: &ScimCall,
    r: Result<serde_json::Value, tracklayer_core::scim::ScimError>,
) -> ScimAnswer {
    ScimAnswer::of(call.0.config(), StatusCode::OK, r)
}

pub async fn list_users(call: ScimCall, Query(q): Query<ListQuery>) -> ScimAnswer {
    let (start, count) = match q.page() {
        Ok(p) => p,
        Err(e) => return e,
    };
    let r = call.scim().users(q.filter.as_deref(), start, count).await;
    ok(&call, r.map(|v| q.projection().apply(v)))
}

pub async fn create_user(call: ScimCall, ScimBody(body): ScimBody) -> ScimAnswer {
    let r = call.scim().create_user(&body).await;
    ScimAnswer::of(call.0.config(), StatusCode::CREATED, r)
}

pub async fn get_user(
    call: ScimCall,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> ScimAnswer {
    let r = call.scim().user(&id).await;
    ok(&call, r.map(|v| q.projection().apply(v)))
}

pub async fn replace_user(
    call: ScimCall,
    Path(id): Path<String>,
    ScimBody(body): ScimBody,
) -> ScimAnswer {
    ok(&call, call.scim().replace_user(&id, &body).await)
}

pub async fn patch_user(
    call: ScimCall,
    Path(id): Path<String>,
    ScimBody(body): ScimBody,
) -> ScimAnswer {
    ok(&call, call.scim().patch_user(&id, &body).await)
}

pub async fn delete_user(call: ScimCall, Path(id): Path<String>) -> ScimAnswer {
    match call.scim().delete_user(&id).await {
        Ok(()) => ScimAnswer::NoContent,
        Err(e) => ok(&call, Err(e)),
    }
}

pub async fn list_groups(call: ScimCall, Query(q): Query<ListQuery>) -> ScimAnswer {
    let (start, count) = match q.page() {
        Ok(p) => p,
        Err(e) => return e,
    };
    let r = call.scim().groups(q.filter.as_deref(), start, count).await;
    ok(&call, r.map(|v| q.projection().apply(v)))
}

pub async fn create_group(call: ScimCall, ScimBody(body): ScimBody) -> ScimAnswer {
    let r = call.scim().create_group(&body).await;
    ScimAnswer::of(call.0.config(), StatusCode::CREATED, r)
}

pub async fn get_group(
    call: ScimCall,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> ScimAnswer {
    let r = call.scim().group(&id).await;
    ok(&call, r.map(|v| q.projection().apply(v)))
}

pub async fn search_users(call: ScimCall, ScimBody(body): ScimBody) -> ScimAnswer {
    search_type(call, false, &body).await
}

pub async fn search_groups(call: ScimCall, ScimBody(body): ScimBody) -> ScimAnswer {
    search_type(call, true, &body).await
}

pub async fn replace_group(
    call: ScimCall,
    Path(id): Path<String>,
    ScimBody(body): ScimBody,
) -> ScimAnswer {
    ok(&call, call.scim().replace_group(&id, &body).await)
}

pub async fn patch_group(
    call: ScimCall,
    Path(id): Path<String>,
    ScimBody(body): ScimBody,
) -> ScimAnswer {
    ok(&call, call.scim().patch_group(&id, &body).await)
}

pub async fn delete_group(call: ScimCall, Path(id): Path<String>) -> ScimAnswer {
    match call.scim().delete_group(&id).await {
        Ok(()) => ScimAnswer::NoContent,
        Err(e) => ok(&call, Err(e)),
    }
}
