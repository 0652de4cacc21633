//! The workspace's SAML connection (admin only, audited), its public SP metadata, and the
//! enforcement question password sign-in asks.

use serde_json::json;
use sha2::{Digest, Sha256};

use super::{require, AdminError, AdminResult, AdminService, Principal};
use crate::audit::AuditAction;
use crate::email::Email;
use crate::keys::Role;
use crate::saml::{mail_domain, SamlConnection, SamlSettings};
use crate::workspace::WorkspaceId;

/// At most this many workspaces are offered for one email domain.
pub const MAX_SSO_CHOICES: usize = 20;

/// A workspace whose single sign-on an address may use, as the sign-in page offers it: the
/// workspace, its name and the host of its identity provider, so the person sees where the
/// browser goes before it goes there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoChoice {
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub idp_host: String,
}

/// What an audit entry says about a connection: no certificate, only its SHA-256 fingerprint.
fn audit_summary(c: &SamlConnection) -> serde_json::Value {
    let fingerprints: Vec<String> = c
        .certificates
        .iter()
        .map(|b64| hex::encode(Sha256::digest(b64.as_bytes())))
        .collect();
    json!({
        "idp_entity_id": c.idp_entity_id,
        "sso_url": c.sso_url,
        "certificate_sha256": fingerprints,
        "managed_domains": c.managed_domains,
        "default_role": c.default_role,
        "role_attribute": c.role_attribute,
        "role_rules": c.role_rules.len(),
        "idp_initiated": c.idp_initiated,
        "enforce_sso": c.enforce_sso,
        "break_glass_user": c.break_glass_user,
    })
}

impl AdminService {
    /// The workspace's SAML connection (admins only: it names the IdP and its keys).
    pub async fn saml_connection(&self, p: &Principal) -> AdminResult<SamlConnection> {
        require(p, Role::Admin, "read the SAML connection")?;
        self.ws(p).await?;
        self.ports
            .control
            .saml_connection(&p.workspace_id)
            .await?
            .ok_or(AdminError::NotFound("SAML connection"))
    }

    /// Creates or replaces the connection: every field is given and validated (422 naming the
    /// field). Audited with the certificates' fingerprints.
    pub async fn put_saml_connection(
        &self,
        p: &Principal,
        settings: SamlSettings,
    ) -> AdminResult<SamlConnection> {
        self.open_ws_as(p, Role::Admin, "configure SAML single sign-on")
            .await?;
        let connection = SamlConnection::parse(&p.workspace_id, settings, self.now())?;
        self.check_break_glass_user(&p.workspace_id, connection.break_glass_user.as_ref())
            .await?;
        self.ports.control.put_saml_connection(&connection).await?;
        self.audit(
            p,
            AuditAction::SsoSamlUpdate,
            "sso.saml",
            audit_summary(&connection),
        )
        .await?;
        Ok(connection)
    }

    /// Deletes the connection: SAML sign-in ends and password sign-in is no longer refused.
    pub async fn delete_saml_connection(&self, p: &Principal) -> AdminResult<()> {
        self.open_ws_as(p, Role::Admin, "remove SAML single sign-on")
            .await?;
        if !self
            .ports
            .control
            .delete_saml_connection(&p.workspace_id)
            .await?
        {
            return Err(AdminError::NotFound("SAML connection"));
        }
        self.audit(p, AuditAction::SsoSamlDelete, "sso.saml", json!({}))
            .await?;
        Ok(())
    }

    /// The SP metadata of an open workspace (public: the IdP's admin pastes its URL), whether
    /// or not a connection exists yet.
    pub async fn saml_metadata(&self, ws: &WorkspaceId, base_url: &str) -> AdminResult<String> {
        let workspace = self
            .ports
            .open_workspace(ws)
            .await?
            .ok_or(AdminError::NotFound("workspace"))?;
        Ok(tracklayer_saml::sp_metadata(
            &crate::saml::service_provider(base_url, &workspace.id),
        ))
    }

    /// The open workspaces whose SAML connection manages the domain of `email`, by name (at
    /// most [`MAX_SSO_CHOICES`]). Public: the sign-in page asks it before anyone is signed in.
    /// It answers what any SSO discovery does (which workspaces claim a domain, and their
    /// IdP's host), never whether an account exists; an address that is not one is a 422
    /// naming `email`.
    pub async fn sso_choices(&self, email: &str) -> AdminResult<Vec<SsoChoice>> {
        let email = Email::parse(email).map_err(|_| {
            AdminError::invalid("email", "must be an email address, like jo@example.com")
        })?;
        let Some(domain) = mail_domain(&email) else {
            return Err(AdminError::invalid(
                "email",
                "the part after @ is not a valid domain name",
            ));
        };
        let control = &self.ports.control;
        let mut choices = Vec::new();
        for ws in control
            .workspaces_managing_domain(&domain, MAX_SSO_CHOICES)
            .await?
        {
            // The index may trail a racing write: the connection itself decides.
            let Some(connection) = control.saml_connection(&ws).await? else {
                continue;
            };
            if !connection.manages(&email) {
                continue;
            }
            if let Some(workspace) = self.ports.open_workspace(&ws).await? {
                choices.push(SsoChoice {
                    workspace_id: workspace.id,
                    name: workspace.name,
                    idp_host: connection.idp_host(),
                });
            }
        }
        choices.sort_by(|a, b| (&a.name, &a.workspace_id).cmp(&(&b.name, &b.workspace_id)));
        Ok(choices)
    }

    /// Whether `email` must sign in through SAML in `ws`: the workspace enforces SSO and the
    /// address is in one of its managed domains. Password sign-in and reset ask this first.
    pub async fn sso_required_for(&self, ws: &WorkspaceId, email: &Email) -> AdminResult<bool> {
        Ok(self
            .ports
            .control
            .saml_connection(ws)
            .await?
            .is_some_and(|c| c.enforce_sso && c.manages(email)))
    }
}
