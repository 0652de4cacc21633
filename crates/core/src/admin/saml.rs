//! The workspace's SAML connection (admin only, audited), its public SP metadata, and the
//! enforcement question password sign-in asks.

use serde_json::json;
use sha2::{Digest, Sha256};

use super::{require, AdminError, AdminResult, AdminService, Principal};
use crate::audit::AuditAction;
use crate::email::Email;
use crate::keys::Role;
use crate::saml::{SamlConnection, SamlSettings};
use crate::workspace::WorkspaceId;

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
