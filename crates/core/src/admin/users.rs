//! The users of a workspace and their roles.

use serde_json::json;

use super::{require, AdminError, AdminResult, AdminService, Principal};
use crate::audit::AuditAction;
use crate::email::Email;
use crate::error::StoreError;
use crate::invalidation::Change;
use crate::keys::Role;
use crate::ports::LAST_ADMIN;
use crate::scim::profile::USER_NAME_TAKEN;
use crate::user_id::UserId;
use crate::workspace::User;

impl AdminService {
    pub async fn users(&self, p: &Principal) -> AdminResult<Vec<User>> {
        require(p, Role::Viewer, "list users")?;
        Ok(self
            .ports
            .control
            .users(&p.workspace_id, self.now())
            .await?)
    }

    pub async fn invite_user(&self, p: &Principal, email: &str, role: Role) -> AdminResult<User> {
        self.open_ws_as(p, Role::Admin, "invite users").await?;
        let email = Email::parse(email).map_err(|e| AdminError::invalid("email", e.to_string()))?;
        let user = User {
            id: UserId::generate(self.ports.ids.as_ref()),
            workspace_id: p.workspace_id.clone(),
            email,
            role,
            created_at: self.now(),
            external_id: None,
            active: true,
            scim: None,
        };
        self.add_user(p, user, true).await
    }

    /// Stores a new user, audits the invitation and, with `invite`, mails it.
    pub(super) async fn add_user(
        &self,
        p: &Principal,
        user: User,
        invite: bool,
    ) -> AdminResult<User> {
        self.ports
            .control
            .create_user(&user)
            .await
            .map_err(email_taken)?;
        self.audit(
            p,
            AuditAction::UserInvite,
            user.id.as_str(),
            json!({"role": user.role}),
        )
        .await?;
        if invite {
            self.send_invitation(&user).await?;
        }
        Ok(user)
    }

    /// One user of the caller's workspace.
    pub async fn user(&self, p: &Principal, id: &UserId) -> AdminResult<User> {
        require(p, Role::Viewer, "read users")?;
        self.ports
            .control
            .user(&p.workspace_id, id, self.now())
            .await?
            .ok_or(AdminError::NotFound("user"))
    }

    /// Changes a user's email address: an admin, or the user themself. Unique in the
    /// workspace (409); audited with keyed fingerprints of the old and new address only.
    pub async fn set_email(&self, p: &Principal, id: &UserId, email: &str) -> AdminResult<User> {
        if p.actor != format!("user:{id}") {
            require(p, Role::Admin, "change another user's email")?;
        }
        let email = Email::parse(email).map_err(|e| AdminError::invalid("email", e.to_string()))?;
        let ws = self.open_ws(p).await?;
        let mut user = self
            .ports
            .control
            .user(&p.workspace_id, id, self.now())
            .await?
            .ok_or(AdminError::NotFound("user"))?;
        if user.email == email {
            return Ok(user);
        }
        let old = std::mem::replace(&mut user.email, email);
        self.ports
            .control
            .update_user(&user)
            .await
            .map_err(email_taken)?;
        self.move_sign_in(&old, &user).await?;
        let keys = self.workspace_keys(&ws).await?;
        let fingerprint = |e: &Email| keys.secret_fingerprint("email", e.as_str());
        self.audit(
            p,
            AuditAction::UserSetEmail,
            id.as_str(),
            json!({"from": fingerprint(&old), "to": fingerprint(&user.email)}),
        )
        .await?;
        Ok(user)
    }

    /// Changes a user's role. The last admin cannot be demoted: the store checks and writes
    /// in one atomic step, so two admins demoting each other at once cannot both succeed.
    pub async fn set_role(&self, p: &Principal, id: &UserId, role: Role) -> AdminResult<User> {
        self.open_ws_as(p, Role::Admin, "change roles").await?;
        let mut user = self
            .ports
            .control
            .set_user_role_keeping_an_admin(&p.workspace_id, id, role, self.now())
            .await
            .map_err(|e| last_admin(e, "the last admin cannot be demoted"))?;
        let from = user.role;
        user.role = role;
        self.end_sessions(&p.workspace_id, &user.id).await?;
        self.changed(Change::Workspace(p.workspace_id.clone()));
        self.audit(
            p,
            AuditAction::UserSetRole,
            id.as_str(),
            json!({"from": from, "to": role}),
        )
        .await?;
        Ok(user)
    }

    pub async fn remove_user(&self, p: &Principal, id: &UserId) -> AdminResult<()> {
        require(p, Role::Admin, "remove users")?;
        let user = self
            .ports
            .control
            .delete_user_keeping_an_admin(&p.workspace_id, id, self.now())
            .await
            .map_err(|e| last_admin(e, "the last admin cannot be removed"))?;
        self.forget_sign_in(&user).await?;
        self.changed(Change::Workspace(p.workspace_id.clone()));
        self.end_personal_tokens(&user).await?;
        self.audit(
            p,
            AuditAction::UserRemove,
            id.as_str(),
            json!({"role": user.role}),
        )
        .await?;
        Ok(())
    }
}

impl AdminService {
    /// Revokes every personal token of `user` and tells this process's caches at once.
    pub(super) async fn end_personal_tokens(&self, user: &User) -> AdminResult<()> {
        for key in self
            .ports
            .control
            .api_keys(&user.workspace_id, self.now())
            .await?
        {
            if key.user_id.as_ref() == Some(&user.id) && key.revoked_at.is_none() {
                self.control().revoke_key(&key).await?;
                self.changed(Change::Key(key.id.clone()));
            }
        }
        Ok(())
    }
}

/// A refusal of the last-admin rule as the API says it; another conflict (the admins changed
/// in between) as the store said it.
fn last_admin(e: StoreError, refusal: &str) -> AdminError {
    match e {
        StoreError::Conflict(what) if what == LAST_ADMIN => AdminError::Conflict(refusal.into()),
        StoreError::Conflict(what) => AdminError::Conflict(what.into()),
        other => other.into(),
    }
}

/// A clash of the unique email index (or of the userName's) as the API says it.
pub(super) fn email_taken(e: StoreError) -> AdminError {
    match e {
        StoreError::Conflict(what) if what == USER_NAME_TAKEN => AdminError::Conflict(what.into()),
        StoreError::Conflict(_) => AdminError::Conflict("a user with this email exists".into()),
        other => other.into(),
    }
}
