//! Who is calling: a personal access token or service token, verified.

use super::{AdminError, AdminResult, AdminService, Principal};
use crate::keys::verifier::{Audience, AuthError};
use crate::keys::{KeyKind, KeyRefusal, Role};
use crate::user_id::UserId;

impl AdminService {
    /// Verifies a personal access token or service token, from an unknown address.
    pub async fn authenticate(&self, presented: &str) -> AdminResult<Principal> {
        self.authenticate_from(presented, None).await
    }

    /// Verifies a personal access token or service token sent from `ip` ([`KeyVerifier`]).
    pub async fn authenticate_from(
        &self,
        presented: &str,
        ip: Option<std::net::IpAddr>,
    ) -> AdminResult<Principal> {
        let record = self.verified(Audience::Admin, presented, ip).await?;
        let now = self.now();
        let (role, actor) = match (record.kind, &record.user_id) {
            (KeyKind::Pat, Some(user_id)) => {
                // A PAT carries its user's current role; a removed user's token is dead.
                let role = match self
                    .ports
                    .control
                    .user(&record.workspace_id, user_id, now)
                    .await?
                {
                    // A user deactivated by their identity provider has no access.
                    Some(u) if !u.active => {
                        return Err(AdminError::Unauthorized(KeyRefusal::Revoked))
                    }
                    Some(u) => u.role,
                    None if *user_id == UserId::owner() => record.role.unwrap_or(Role::Viewer),
                    None => return Err(AdminError::Unauthorized(KeyRefusal::Revoked)),
                };
                (role, format!("user:{user_id}"))
            }
            _ => (
                record.role.unwrap_or(Role::Viewer),
                format!("svc:{}", record.id),
            ),
        };
        Ok(Principal {
            workspace_id: record.workspace_id,
            role,
            actor,
            key_id: Some(record.id),
        })
    }

    /// Verifies an identity provider's SCIM token (accepted at `/scim/v2` only, and the only
    /// kind accepted there). Its principal provisions users as the workspace's IdP: audit
    /// entries name it `scim:<key id>`.
    pub async fn authenticate_scim(
        &self,
        presented: &str,
        ip: Option<std::net::IpAddr>,
    ) -> AdminResult<Principal> {
        let record = self.verified(Audience::Scim, presented, ip).await?;
        Ok(Principal {
            workspace_id: record.workspace_id,
            role: Role::Admin,
            actor: format!("scim:{}", record.id),
            key_id: Some(record.id),
        })
    }

    async fn verified(
        &self,
        audience: Audience,
        presented: &str,
        ip: Option<std::net::IpAddr>,
    ) -> AdminResult<crate::keys::ApiKeyRecord> {
        self.verifier
            .verify(self.ports.control.as_ref(), audience, presented, ip)
            .await
            .map_err(|e| match e {
                AuthError::Refused(refusal) => AdminError::Unauthorized(refusal),
                AuthError::WrongRegion(region) => AdminError::WrongRegion(region),
                AuthError::Blocked => AdminError::Blocked,
                AuthError::Throttled { retry_after } => AdminError::Throttled { retry_after },
                AuthError::Store(e) => e.into(),
            })
    }
}
