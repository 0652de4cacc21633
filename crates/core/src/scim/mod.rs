//! SCIM 2.0 provisioning (RFC 7643/7644): the identity provider's view of a workspace's
//! users (any `userName`, see [`profile`]) and of its groups, stored as pushed, whose
//! membership in mapped groups is the user's role (see [`groups`]).
//!
//! Every change goes through the admin use cases (`AdminService::provision_new_user`,
//! `set_email`, `provision_user`, `save_scim_group`, `remove_user`), so RBAC, the last-admin
//! rule, audit and cache invalidation are the admin API's own; this module only reads and
//! writes the SCIM shapes, including the quirks of the main identity providers (see [`patch`]).

pub mod filter;
pub mod groups;
pub mod patch;
pub mod profile;
pub mod store;
pub mod users;

use serde_json::Value;

use crate::admin::{AdminError, AdminService, Principal};

/// The SCIM use cases of one workspace, as its identity provider `p` (a SCIM token's
/// principal).
#[derive(Debug)]
pub struct Scim<'a> {
    pub admin: &'a AdminService,
    pub p: &'a Principal,
    /// Where this workspace's SCIM API is, for `meta.location`.
    pub base_url: &'a str,
}

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// Most resources one list answers.
pub const MAX_COUNT: usize = 200;

/// Why a SCIM request failed, by the SCIM error it answers (RFC 7644 §3.12).
#[derive(Debug, thiserror::Error)]
pub enum ScimError {
    /// 400 with `scimType` (`invalidFilter`, `invalidValue`, `invalidSyntax`, `noTarget`,
    /// `invalidPath`, `mutability`).
    #[error("{detail}")]
    Invalid {
        scim_type: &'static str,
        detail: String,
    },
    #[error(transparent)]
    Admin(#[from] AdminError),
}

impl ScimError {
    pub fn invalid(scim_type: &'static str, detail: impl Into<String>) -> Self {
        Self::Invalid {
            scim_type,
            detail: detail.into(),
        }
    }
}

impl From<filter::FilterError> for ScimError {
    fn from(e: filter::FilterError) -> Self {
        Self::invalid("invalidFilter", e.to_string())
    }
}

/// Which part of a list to answer (RFC 7644 §3.4.2.4): from the 1-based `startIndex`, at
/// most `count` resources, and never more than [`MAX_COUNT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListPage {
    start_index: usize,
    count: usize,
}

impl ListPage {
    /// The page a request asks for: a `startIndex` below 1 is read as 1, a negative `count`
    /// as 0; absent, the list starts at 1 and holds up to [`MAX_COUNT`].
    pub fn new(start_index: Option<i64>, count: Option<i64>) -> Self {
        let at_least = |n: i64, min: i64| usize::try_from(n.max(min)).unwrap_or(usize::MAX);
        Self {
            start_index: start_index.map_or(1, |n| at_least(n, 1)),
            count: count.map_or(MAX_COUNT, |n| at_least(n, 0).min(MAX_COUNT)),
        }
    }
}

impl Default for ListPage {
    /// The first [`MAX_COUNT`] resources.
    fn default() -> Self {
        Self::new(None, None)
    }
}

/// A list answer (RFC 7644 §3.4.2): the resources of `page` out of `all`.
pub fn list_response(all: Vec<Value>, page: ListPage) -> Value {
    let total = all.len();
    let start = page.start_index;
    let page: Vec<Value> = all.into_iter().skip(start - 1).take(page.count).collect();
    serde_json::json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": page.len(),
        "Resources": page,
    })
}

/// An `externalId` as a provider sets it: a string, or null for none.
pub(crate) fn external_id(v: &Value) -> Result<Option<String>, ScimError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(ScimError::invalid(
            "invalidValue",
            "externalId must be a string",
        )),
    }
}

/// A boolean as identity providers send it: `true`, or Entra ID's string `"True"`/`"False"`.
pub fn lenient_bool(field: &str, v: &Value) -> Result<bool, ScimError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(ScimError::invalid(
            "invalidValue",
            format!("{field} must be a boolean"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(n: usize) -> Vec<Value> {
        (1..=n).map(Value::from).collect()
    }

    #[test]
    fn a_list_page_reads_a_start_below_one_as_one_and_a_negative_count_as_zero() {
        let first = list_response(numbers(3), ListPage::new(Some(-5), Some(2)));
        assert_eq!(first["startIndex"], 1);
        assert_eq!(first["Resources"], serde_json::json!([1, 2]));
        let none = list_response(numbers(3), ListPage::new(Some(2), Some(-1)));
        assert_eq!(none["itemsPerPage"], 0);
        assert_eq!(none["totalResults"], 3);
    }

    #[test]
    fn a_list_page_holds_at_most_max_count_resources() {
        let all = list_response(numbers(MAX_COUNT + 5), ListPage::new(None, Some(10_000)));
        assert_eq!(all["itemsPerPage"], MAX_COUNT);
        assert_eq!(ListPage::default(), ListPage::new(Some(1), None));
    }
}
