//! The workspace's SAML single sign-on connection (admins only): wire types and handlers for
//! `GET`/`PUT`/`DELETE /admin/v1/sso/saml`.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracklayer_core as tl;
use utoipa::ToSchema;

use super::dto::{self, rfc3339, Role};
use super::extract::{Answer, Call, Json, NoContent};

/// A user whose role attribute holds `value` is created with `role`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleRule {
    #[schema(example = "tracklayer-admins")]
    pub value: String,
    pub role: Role,
}

impl From<tl::saml::RoleRule> for RoleRule {
    fn from(r: tl::saml::RoleRule) -> Self {
        Self {
            value: r.value,
            role: r.role.into(),
        }
    }
}

impl From<RoleRule> for tl::saml::RoleRule {
    fn from(r: RoleRule) -> Self {
        Self {
            value: r.value,
            role: r.role.into(),
        }
    }
}

/// The body of `PUT /admin/v1/sso/saml`: the whole connection; also the settings part of the
/// answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SamlConnectionBody {
    /// The IdP's entity id (the `Issuer` of its responses).
    #[schema(example = "http://www.okta.com/exk1a2b3c4d5e6f7g8h9")]
    pub idp_entity_id: String,
    /// The IdP's single sign-on URL (HTTP-Redirect binding), `https://`.
    #[schema(example = "https://example.okta.com/app/tracklayer/exk1a2b3c4d5e6f7g8h9/sso/saml")]
    pub sso_url: String,
    /// The IdP's signing certificate(s), PEM or bare base64 DER: one, or two while it rotates.
    /// The only keys a response is verified with; RSA of 2048 bits or more.
    #[schema(min_items = 1, max_items = 2)]
    pub certificates: Vec<String>,
    /// Email domains this IdP manages: SAML sign-in is only for their addresses.
    #[schema(min_items = 1, max_items = 20, example = json!(["example.com"]))]
    pub managed_domains: Vec<String>,
    /// The role of users created just in time; absent: only existing users sign in.
    #[serde(default)]
    pub default_role: Option<Role>,
    /// The assertion attribute whose values map to roles (with `role_rules`).
    #[serde(default)]
    #[schema(example = "groups")]
    pub role_attribute: Option<String>,
    /// Value → role; the highest matching role wins over `default_role`.
    #[serde(default)]
    #[schema(max_items = 50)]
    pub role_rules: Vec<RoleRule>,
    /// Accept IdP-initiated (unsolicited) responses. Off by default.
    #[serde(default)]
    pub idp_initiated: bool,
    /// Refuse password sign-in, password reset and sign-in links for users of the managed
    /// domains (they are told to sign in through SSO).
    #[serde(default)]
    pub enforce_sso: bool,
    /// The one admin (`usr_…`) who keeps password sign-in while SSO is enforced, for when the
    /// IdP fails; every use is audited as `sso.break_glass`. Absent: nobody.
    #[serde(default)]
    #[schema(example = "usr_owner")]
    pub break_glass_user: Option<String>,
}

impl SamlConnectionBody {
    pub(crate) fn settings(self) -> tl::saml::SamlSettings {
        tl::saml::SamlSettings {
            idp_entity_id: self.idp_entity_id,
            sso_url: self.sso_url,
            certificates: self.certificates,
            managed_domains: self.managed_domains,
            default_role: self.default_role.map(Into::into),
            role_attribute: self.role_attribute,
            role_rules: self.role_rules.into_iter().map(Into::into).collect(),
            idp_initiated: self.idp_initiated,
            enforce_sso: self.enforce_sso,
            break_glass_user: self.break_glass_user,
        }
    }
}

/// The workspace's SAML connection, with the values to give the IdP.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SamlConnection {
    /// The connection's settings; its certificates are the pinned ones, bare base64 DER.
    #[serde(flatten)]
    pub settings: SamlConnectionBody,
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Our entity id (audience), to paste into the IdP.
    pub sp_entity_id: String,
    /// Our assertion consumer service URL (HTTP-POST binding), to paste into the IdP.
    pub acs_url: String,
    /// Our SP metadata (the same URL as the entity id).
    pub metadata_url: String,
}

impl SamlConnection {
    pub(crate) fn new(c: tl::saml::SamlConnection, base_url: &str) -> Self {
        let sp_entity_id = tl::saml::entity_id(base_url, &c.workspace_id);
        Self {
            acs_url: tl::saml::acs_url(base_url, &c.workspace_id),
            metadata_url: sp_entity_id.clone(),
            sp_entity_id,
            updated_at: c.updated_at,
            settings: SamlConnectionBody {
                idp_entity_id: c.idp_entity_id,
                sso_url: c.sso_url,
                certificates: c.certificates,
                managed_domains: c.managed_domains,
                default_role: c.default_role.map(Into::into),
                role_attribute: c.role_attribute,
                role_rules: c.role_rules.into_iter().map(Into::into).collect(),
                idp_initiated: c.idp_initiated,
                enforce_sso: c.enforce_sso,
                break_glass_user: c.break_glass_user.map(|u| u.to_string()),
            },
        }
    }
}

/// The SAML single sign-on connection (admin).
#[utoipa::path(get, path = "/admin/v1/sso/saml", operation_id = "getSamlConnection", tag = "sso",
    responses(
        (status = 200, description = "The connection and the values for the IdP", body = SamlConnection),
        (status = 403, description = "Only admins read the SAML connection", body = dto::ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "No SAML connection is configured", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn get_saml(Call(s, p): Call) -> Answer<SamlConnection> {
    let connection = s.run(s.admin().saml_connection(&p)).await?;
    Ok(Json(SamlConnection::new(connection, s.base_url(&p))))
}

/// Creates or replaces the SAML connection (admin; audited with certificate fingerprints).
#[utoipa::path(put, path = "/admin/v1/sso/saml", operation_id = "putSamlConnection", tag = "sso",
    request_body = SamlConnectionBody,
    responses(
        (status = 200, description = "The connection and the values for the IdP", body = SamlConnection),
        (status = 403, description = "Only admins configure single sign-on", body = dto::ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid: a certificate that does not parse or is not RSA ≥ 2048, a non-https SSO URL, a bad domain, a break-glass user who is not an admin (`field` names it)", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn put_saml(
    Call(s, p): Call,
    Json(body): Json<SamlConnectionBody>,
) -> Answer<SamlConnection> {
    let connection = s
        .run(s.admin().put_saml_connection(&p, body.settings()))
        .await?;
    Ok(Json(SamlConnection::new(connection, s.base_url(&p))))
}

/// Removes the SAML connection (admin; audited): SAML sign-in ends, passwords work again.
#[utoipa::path(delete, path = "/admin/v1/sso/saml", operation_id = "deleteSamlConnection", tag = "sso",
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "Only admins remove single sign-on", body = dto::ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "No SAML connection is configured", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn delete_saml(Call(s, p): Call) -> NoContent {
    s.answer_no_content(s.admin().delete_saml_connection(&p))
        .await
}
