//! Which SCIM groups give which role (admins set it; audited): `GET`/`PUT
//! /admin/v1/sso/scim-group-roles`.

use serde::{Deserialize, Serialize};
use tracklayer_core as tl;
use utoipa::ToSchema;

use super::dto::{self, Role};
use super::extract::{Answer, Call, Json};

/// Members of the SCIM group named `group` (case-insensitively) get `role`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupRole {
    #[schema(example = "TrackLayer Admins", min_length = 1, max_length = 256)]
    pub group: String,
    pub role: Role,
}

/// The whole mapping: a user in several mapped groups gets the highest role; a user in none
/// of them (after a group change) is a viewer; unmapped groups change no role.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupRoles {
    #[schema(max_items = 50)]
    pub groups: Vec<GroupRole>,
}

impl From<tl::scim::store::GroupRoles> for GroupRoles {
    fn from(r: tl::scim::store::GroupRoles) -> Self {
        Self {
            groups: r
                .groups
                .into_iter()
                .map(|g| GroupRole {
                    group: g.group,
                    role: g.role.into(),
                })
                .collect(),
        }
    }
}

impl From<GroupRoles> for tl::scim::store::GroupRoles {
    fn from(r: GroupRoles) -> Self {
        Self {
            groups: r
                .groups
                .into_iter()
                .map(|g| tl::scim::store::GroupRole {
                    group: g.group.trim().to_owned(),
                    role: g.role.into(),
                })
                .collect(),
        }
    }
}

/// The workspace's group → role mapping (defaults: `TrackLayer Admins`, `TrackLayer
/// Editors`, `TrackLayer Viewers`).
#[utoipa::path(get, path = "/admin/v1/sso/scim-group-roles", operation_id = "getScimGroupRoles", tag = "sso",
    responses(
        (status = 200, description = "The mapping", body = GroupRoles),
    ))]
pub async fn get_group_roles(Call(s, p): Call) -> Answer<GroupRoles> {
    s.answer(s.admin().group_roles(&p)).await
}

/// Replaces the mapping (admin; audited as `scim.group_roles`); members of the groups it maps
/// before or after get their new role at once.
#[utoipa::path(put, path = "/admin/v1/sso/scim-group-roles", operation_id = "putScimGroupRoles", tag = "sso",
    request_body = GroupRoles,
    responses(
        (status = 200, description = "The mapping", body = GroupRoles),
        (status = 403, description = "Only admins map groups to roles", body = dto::ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "The change would leave no admin", body = dto::ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "A group name is empty, too long or mapped twice (`field` names it)", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn put_group_roles(Call(s, p): Call, Json(body): Json<GroupRoles>) -> Answer<GroupRoles> {
    s.answer(s.admin().set_group_roles(&p, body.into())).await
}
