//! What an identity provider sets on a user beyond the admin API's fields (SCIM): its own id
//! of the user (`externalId`) and whether the user is active.

use serde_json::json;

use super::{require, AdminError, AdminResult, AdminService, Principal};
use crate::audit::AuditAction;
use crate::invalidation::Change;
use crate::keys::Role;
use crate::scim::profile::ScimProfile;
use crate::user_id::UserId;
use crate::workspace::User;

/// Longest `externalId` kept.
pub const MAX_EXTERNAL_ID_LEN: usize = 256;

impl AdminService {
    /// Sets `external_id` and `active` of user `id`. Deactivation (the leaver) ends the user's
    /// access at once: every console session ends, every personal token is revoked and every
    /// cache of this process told;
    /// other processes stop within the key cache's revalidation window. Deactivating the last
    /// admin is refused by the same rule as demoting it.
    pub async fn provision_user(
        &self,
        p: &Principal,
        id: &UserId,
        external_id: Option<String>,
        active: bool,
        scim: Option<ScimProfile>,
    ) -> AdminResult<User> {
        require(p, Role::Admin, "provision users")?;
        check_external_id(external_id.as_deref())?;
        self.open_ws(p).await?;
        let mut user = self.user(p, id).await?;
        if user.external_id == external_id && user.active == active && user.scim == scim {
            return Ok(user);
        }
        let leaving = user.active && !active;
        if leaving && user.role == Role::Admin {
            // The last-admin rule lives in one place: demoting is refused when it would leave
            // no admin, so a deactivated admin is demoted first.
            user = self.set_role(p, id, Role::Viewer).await?;
        }
        user.external_id = external_id;
        user.active = active;
        user.scim = scim;
        self.ports
            .control
            .update_user(&user)
            .await
            .map_err(super::users::email_taken)?;
        self.changed(Change::Workspace(p.workspace_id.clone()));
        if leaving {
            self.end_sessions(&user.workspace_id, &user.id).await?;
            self.end_personal_tokens(&user).await?;
        }
        self.audit(
            p,
            AuditAction::UserProvision,
            id.as_str(),
            json!({"active": active, "external_id_set": user.external_id.is_some()}),
        )
        .await?;
        Ok(user)
    }

    /// A new user from the identity provider: their sign-in address is derived from `scim`
    /// ([`ScimProfile::sign_in_address`]). The invitation (to set a password) is mailed as by
    /// the admin API, except to a user without an email address and to a user of a domain the
    /// workspace's SAML connection manages: they sign in through their IdP.
    pub async fn provision_new_user(
        &self,
        p: &Principal,
        scim: ScimProfile,
        external_id: Option<String>,
        active: bool,
    ) -> AdminResult<User> {
        require(p, Role::Admin, "provision users")?;
        check_external_id(external_id.as_deref())?;
        self.open_ws(p).await?;
        let id = UserId::generate(self.ports.ids.as_ref());
        let user = User {
            email: scim.sign_in_address(&id),
            id,
            workspace_id: p.workspace_id.clone(),
            role: Role::Viewer,
            created_at: self.now(),
            external_id,
            active,
            scim: Some(scim),
        };
        let sso = self
            .ports
            .control
            .saml_connection(&p.workspace_id)
            .await?
            .is_some_and(|c| c.manages(&user.email));
        let invite = !sso && !crate::scim::profile::is_placeholder(&user.email);
        self.add_user(p, user, invite).await
    }
}

pub(super) fn check_external_id(external_id: Option<&str>) -> AdminResult<()> {
    if external_id.is_some_and(|e| e.is_empty() || e.len() > MAX_EXTERNAL_ID_LEN) {
        return Err(AdminError::invalid(
            "externalId",
            "must be 1 to 256 characters",
        ));
    }
    Ok(())
}
