//! The `Users` and `Groups` handlers: wire in, use case, SCIM answer out. Both resource
//! types take the same operations, so one handler serves each operation of both: the route
//! says which type it is about ([`ResourceType`]).

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::Deserialize;
use serde_json::Value;
use tracklayer_core::scim::{ListPage, Scim, ScimError};

use super::search::{search_type, Projection};
use super::{ScimAnswer, ScimBody, ScimCall};
use crate::admin::extract::PathId;

/// The resource type a route serves (set on its routes as an extension), and the use case
/// of each operation on its collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceType {
    User,
    Group,
}

impl ResourceType {
    /// The collection's path.
    pub fn path(self) -> &'static str {
        match self {
            Self::User => "/scim/v2/Users",
            Self::Group => "/scim/v2/Groups",
        }
    }

    /// A page of the resources that match `filter` (a list or a `.search`).
    pub(super) async fn list(
        self,
        scim: &Scim<'_>,
        filter: Option<&str>,
        page: ListPage,
    ) -> Result<Value, ScimError> {
        match self {
            Self::User => scim.users(filter, page).await,
            Self::Group => scim.groups(filter, page).await,
        }
    }

    async fn create(self, scim: &Scim<'_>, body: &Value) -> Result<Value, ScimError> {
        match self {
            Self::User => scim.create_user(body).await,
            Self::Group => scim.create_group(body).await,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ResourceType {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        Extension::<Self>::from_request_parts(parts, state)
            .await
            .map(|e| e.0)
            .map_err(IntoResponse::into_response)
    }
}

/// The resource a path names (`/Users/{id}`, `/Groups/{id}`), and the use case of each
/// operation on it.
#[derive(Debug)]
pub struct Resource {
    t: ResourceType,
    id: String,
}

impl Resource {
    async fn get(&self, scim: &Scim<'_>) -> Result<Value, ScimError> {
        match self.t {
            ResourceType::User => scim.user(&self.id).await,
            ResourceType::Group => scim.group(&self.id).await,
        }
    }

    async fn replace(&self, scim: &Scim<'_>, body: &Value) -> Result<Value, ScimError> {
        match self.t {
            ResourceType::User => scim.replace_user(&self.id, body).await,
            ResourceType::Group => scim.replace_group(&self.id, body).await,
        }
    }

    async fn patch(&self, scim: &Scim<'_>, body: &Value) -> Result<Value, ScimError> {
        match self.t {
            ResourceType::User => scim.patch_user(&self.id, body).await,
            ResourceType::Group => scim.patch_group(&self.id, body).await,
        }
    }

    async fn delete(&self, scim: &Scim<'_>) -> Result<(), ScimError> {
        match self.t {
            ResourceType::User => scim.delete_user(&self.id).await,
            ResourceType::Group => scim.delete_group(&self.id).await,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Resource {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let t = ResourceType::from_request_parts(parts, state).await?;
        let PathId(id) = PathId::from_request_parts(parts, state).await?;
        Ok(Self { t, id })
    }
}

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
    fn page(&self) -> Result<ListPage, ScimAnswer> {
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
        Ok(ListPage::new(
            number("startIndex", &self.start_index)?,
            number("count", &self.count)?,
        ))
    }
}

fn ok(call: &ScimCall, r: Result<Value, ScimError>) -> ScimAnswer {
    ScimAnswer::of(call.0.config(), StatusCode::OK, r)
}

/// `GET /Users`, `GET /Groups`.
pub async fn list(call: ScimCall, t: ResourceType, Query(q): Query<ListQuery>) -> ScimAnswer {
    let page = match q.page() {
        Ok(p) => p,
        Err(e) => return e,
    };
    let r = t.list(&call.scim(), q.filter.as_deref(), page).await;
    ok(&call, r.map(|v| q.projection().apply(v)))
}

/// `POST /Users`, `POST /Groups`.
pub async fn create(call: ScimCall, t: ResourceType, ScimBody(body): ScimBody) -> ScimAnswer {
    let r = t.create(&call.scim(), &body).await;
    ScimAnswer::of(call.0.config(), StatusCode::CREATED, r)
}

/// `POST /Users/.search`, `POST /Groups/.search`.
pub async fn search(call: ScimCall, t: ResourceType, ScimBody(body): ScimBody) -> ScimAnswer {
    search_type(call, t, &body).await
}

/// `GET /Users/{id}`, `GET /Groups/{id}`.
pub async fn get(call: ScimCall, r: Resource, Query(q): Query<ListQuery>) -> ScimAnswer {
    let v = r.get(&call.scim()).await;
    ok(&call, v.map(|v| q.projection().apply(v)))
}

/// `PUT /Users/{id}`, `PUT /Groups/{id}`.
pub async fn replace(call: ScimCall, r: Resource, ScimBody(body): ScimBody) -> ScimAnswer {
    ok(&call, r.replace(&call.scim(), &body).await)
}

/// `PATCH /Users/{id}`, `PATCH /Groups/{id}`.
pub async fn patch(call: ScimCall, r: Resource, ScimBody(body): ScimBody) -> ScimAnswer {
    ok(&call, r.patch(&call.scim(), &body).await)
}

/// `DELETE /Users/{id}`, `DELETE /Groups/{id}`.
pub async fn delete(call: ScimCall, r: Resource) -> ScimAnswer {
    match r.delete(&call.scim()).await {
        Ok(()) => ScimAnswer::NoContent,
        Err(e) => ok(&call, Err(e)),
    }
}
