//! A workspace's SAML connection: who its IdP is, which keys sign for it, which email domains
//! it manages and what users it creates.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracklayer_saml::{
    IdentityProvider, PinnedCertificate, PinnedCertificates, ServiceProvider, MAX_PINNED,
};

use crate::admin::AdminError;
use crate::email::Email;
use crate::keys::Role;
use crate::user_id::UserId;
use crate::workspace::WorkspaceId;

/// At most this many managed email domains per workspace.
pub const MAX_MANAGED_DOMAINS: usize = 20;
/// At most this many attribute value → role rules.
pub const MAX_ROLE_RULES: usize = 50;
const MAX_TEXT: usize = 1024;

/// Our entity id for a workspace: the stable metadata URL under the region's public base URL.
pub fn entity_id(base_url: &str, ws: &WorkspaceId) -> String {
    format!("{}/sso/saml/{ws}/metadata", base_url.trim_end_matches('/'))
}

/// Our assertion consumer service URL for a workspace.
pub fn acs_url(base_url: &str, ws: &WorkspaceId) -> String {
    format!("{}/sso/saml/{ws}/acs", base_url.trim_end_matches('/'))
}

/// A user whose `attribute` holds `value` gets `role` when created just in time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleRule {
    pub value: String,
    pub role: Role,
}

/// What an admin puts: every field, as given (validated by [`SamlConnection::parse`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SamlSettings {
    pub idp_entity_id: String,
    pub sso_url: String,
    /// One or two certificates, PEM or bare base64 DER.
    pub certificates: Vec<String>,
    pub managed_domains: Vec<String>,
    /// The role of users created just in time; `None`: only existing users may sign in.
    pub default_role: Option<Role>,
    /// The attribute whose values map to roles (with `role_rules`).
    pub role_attribute: Option<String>,
    pub role_rules: Vec<RoleRule>,
    pub idp_initiated: bool,
    pub enforce_sso: bool,
    /// The one local admin who keeps password sign-in while SSO is enforced (break-glass):
    /// checked to be an admin of the workspace when put and again on every use, which is
    /// audited as `sso.break_glass`. A user id (`usr_…`).
    pub break_glass_user: Option<String>,
}

/// A validated SAML connection, stored as one document per workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamlConnection {
    pub workspace_id: WorkspaceId,
    pub idp_entity_id: String,
    pub sso_url: String,
    /// Bare base64 DER, each one a pinnable certificate.
    pub certificates: Vec<String>,
    /// Lowercase domain names; a SAML sign-in must be for an email in one of them.
    pub managed_domains: Vec<String>,
    pub default_role: Option<Role>,
    pub role_attribute: Option<String>,
    pub role_rules: Vec<RoleRule>,
    /// IdP-initiated (unsolicited) responses are accepted only when this is on.
    pub idp_initiated: bool,
    /// Password sign-in and reset are refused for users of the managed domains.
    pub enforce_sso: bool,
    /// The break-glass admin (see [`SamlSettings::break_glass_user`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_glass_user: Option<UserId>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

fn text(field: &str, value: &str) -> Result<String, AdminError> {
    let value = value.trim();
    if value.is_empty() || value.len() > MAX_TEXT || value.chars().any(char::is_control) {
        return Err(AdminError::invalid(
            field,
            format!("must be 1 to {MAX_TEXT} characters without control characters"),
        ));
    }
    Ok(value.to_owned())
}

/// An `https://` URL with a host, no whitespace, no fragment.
fn https_url(field: &str, value: &str) -> Result<String, AdminError> {
    let value = text(field, value)?;
    let host = value
        .strip_prefix("https://")
        .and_then(|rest| rest.split(['/', '?']).next())
        .unwrap_or("");
    if host.is_empty() || value.contains(char::is_whitespace) || value.contains('#') {
        return Err(AdminError::invalid(
            field,
            "must be an https:// URL with a host",
        ));
    }
    Ok(value)
}

/// The domain of a mailbox, as DNS and mail servers see it: what follows the last `@`,
/// mapped by UTS #46 (case, full-width forms, Unicode to punycode), without the root's
/// trailing dot. `None` if there is no `@` or the domain is not a valid IDNA name.
pub fn mail_domain(email: &str) -> Option<String> {
    let (_, domain) = email.rsplit_once('@')?;
    let ascii = idna::domain_to_ascii_strict(domain.strip_suffix('.').unwrap_or(domain)).ok()?;
    (!ascii.is_empty()).then_some(ascii)
}

fn domain(field: &str, value: &str) -> Result<String, AdminError> {
    let trimmed = value.trim();
    let value = idna::domain_to_ascii_strict(trimmed.strip_suffix('.').unwrap_or(trimmed))
        .unwrap_or_else(|_| trimmed.to_lowercase());
    let valid = value.len() <= 253
        && value.contains('.')
        && value.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !valid {
        return Err(AdminError::invalid(
            field,
            "must be a domain name like example.com",
        ));
    }
    Ok(value)
}

impl SamlConnection {
    /// Validates every field; a refusal names the field (`certificates[1]`, `sso_url`, ...).
    pub fn parse(
        ws: &WorkspaceId,
        settings: SamlSettings,
        now: OffsetDateTime,
    ) -> Result<Self, AdminError> {
        if settings.certificates.is_empty() || settings.certificates.len() > MAX_PINNED {
            return Err(AdminError::invalid(
                "certificates",
                format!("pin 1 to {MAX_PINNED} IdP signing certificates"),
            ));
        }
        let mut certificates = Vec::new();
        for (i, pem) in settings.certificates.iter().enumerate() {
            let pinned = PinnedCertificate::parse(pem)
                .map_err(|e| AdminError::invalid(format!("certificates[{i}]"), e.to_string()))?;
            certificates.push(pinned.to_base64());
        }
        if settings.managed_domains.is_empty()
            || settings.managed_domains.len() > MAX_MANAGED_DOMAINS
        {
            return Err(AdminError::invalid(
                "managed_domains",
                format!("list 1 to {MAX_MANAGED_DOMAINS} email domains"),
            ));
        }
        let mut managed_domains = Vec::new();
        for (i, d) in settings.managed_domains.iter().enumerate() {
            let d = domain(&format!("managed_domains[{i}]"), d)?;
            if !managed_domains.contains(&d) {
                managed_domains.push(d);
            }
        }
        let role_attribute = settings
            .role_attribute
            .as_deref()
            .map(|a| text("role_attribute", a))
            .transpose()?;
        if settings.role_rules.len() > MAX_ROLE_RULES
            || (role_attribute.is_none() && !settings.role_rules.is_empty())
        {
            return Err(AdminError::invalid(
                "role_rules",
                format!("at most {MAX_ROLE_RULES} rules, and only with a role_attribute"),
            ));
        }
        let mut role_rules = Vec::new();
        for (i, rule) in settings.role_rules.iter().enumerate() {
            role_rules.push(RoleRule {
                value: text(&format!("role_rules[{i}].value"), &rule.value)?,
                role: rule.role,
            });
        }
        Ok(Self {
            workspace_id: ws.clone(),
            idp_entity_id: text("idp_entity_id", &settings.idp_entity_id)?,
            sso_url: https_url("sso_url", &settings.sso_url)?,
            certificates,
            managed_domains,
            default_role: settings.default_role,
            role_attribute,
            role_rules,
            idp_initiated: settings.idp_initiated,
            enforce_sso: settings.enforce_sso,
            break_glass_user: settings
                .break_glass_user
                .as_deref()
                .map(|id| {
                    UserId::parse(id.trim()).map_err(|_| {
                        AdminError::invalid("break_glass_user", "must be a user id (usr_…)")
                    })
                })
                .transpose()?,
            updated_at: now,
        })
    }

    /// Whether `email` is in one of the managed domains (exactly, not a subdomain), compared
    /// as DNS names ([`mail_domain`]): `Alice@EXAMPLE.com.` and `alice@ｅxample.com` are in
    /// `example.com`; `alice@exаmple.com` (Cyrillic а) and `alice@example.com.evil.test` are not.
    pub fn manages(&self, email: &Email) -> bool {
        mail_domain(email).is_some_and(|d| self.managed_domains.contains(&d))
    }

    /// The host the IdP's single sign-on URL sends the browser to, as the browser reads it
    /// (after any `user@`, lowercase, with its port): what a person is shown before they go.
    pub fn idp_host(&self) -> String {
        let authority = self
            .sso_url
            .strip_prefix("https://")
            .and_then(|rest| rest.split(['/', '?', '\\']).next())
            .unwrap_or("");
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        host.to_lowercase()
    }

    /// The IdP as the verifier trusts it. The certificates were checked when the connection
    /// was parsed; one that no longer parses is a corrupt document.
    pub fn identity_provider(&self) -> Result<IdentityProvider, crate::error::StoreError> {
        let corrupt = |_| {
            crate::error::StoreError::corrupt(
                "saml_connection",
                "a pinned certificate no longer parses",
            )
        };
        let pinned = self
            .certificates
            .iter()
            .map(|c| PinnedCertificate::parse(c).map_err(corrupt))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(IdentityProvider {
            entity_id: self.idp_entity_id.clone(),
            certificates: PinnedCertificates::new(pinned).map_err(corrupt)?,
        })
    }

    /// The role a user created just in time gets: the highest role whose rule matches a
    /// value of the role attribute, else the default role; `None`: no just-in-time user.
    pub fn role_for(&self, attributes: &[tracklayer_saml::Attribute]) -> Option<Role> {
        let values: Vec<&str> = self
            .role_attribute
            .as_ref()
            .into_iter()
            .flat_map(|name| attributes.iter().filter(move |a| &a.name == name))
            .flat_map(|a| a.values.iter().map(String::as_str))
            .collect();
        self.role_rules
            .iter()
            .filter(|rule| values.contains(&rule.value.as_str()))
            .map(|rule| rule.role)
            .max()
            .or(self.default_role)
    }
}

/// This service provider for `ws`, under the region's public base URL.
pub(crate) fn service_provider(base_url: &str, ws: &WorkspaceId) -> ServiceProvider {
    ServiceProvider {
        entity_id: entity_id(base_url, ws),
        acs_url: acs_url(base_url, ws),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_sso_url(url: &str) -> SamlConnection {
        let ws = WorkspaceId::new(crate::workspace::Region::Eu, "abc");
        let mut c = crate::testkit::saml::enforcing_connection(&ws, &["example.com"], None);
        c.sso_url = url.into();
        c
    }

    /// The host shown before the browser goes to the IdP is the one the browser goes to:
    /// a `user@` part in front of it (`https://idp.example.com@evil.test/`) is no disguise.
    #[test]
    fn the_idp_host_is_the_host_the_browser_goes_to() {
        for (url, host) in [
            ("https://idp.example.test/sso", "idp.example.test"),
            (
                "https://IdP.Example.TEST:8443/app?x=1",
                "idp.example.test:8443",
            ),
            ("https://idp.example.com@evil.test/sso", "evil.test"),
            ("https://a@b@evil.test", "evil.test"),
            ("https://evil.test\\@idp.example.com/", "evil.test"),
        ] {
            assert_eq!(with_sso_url(url).idp_host(), host, "{url}");
        }
    }
}
