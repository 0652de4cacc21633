//! Console sessions once begun: verified per request, listed, revoked, ended with their
//! user's role, removal or password.

use serde_json::json;

use super::sign_in::principal_of;
use super::{require, AdminError, AdminResult, AdminService, Principal};
use crate::audit::AuditAction;
use crate::email::Email;
use crate::keys::Role;
use crate::sessions::{ConsoleSession, LoginKey, Session, SessionId, SessionToken};
use crate::user_id::UserId;
use crate::workspace::{User, WorkspaceId};

impl AdminService {
    /// The session a console request presents, with its user's current role. A session that
    /// ended (12 h idle, 7 d absolute, signed out, revoked, its user removed or their
    /// workspace closed) is [`AdminError::SessionEnded`]. `last_seen_at` is written at most
    /// once a minute.
    pub async fn console_session(&self, token: &SessionToken) -> AdminResult<ConsoleSession> {
        let now = self.now();
        let mut stored = self
            .ports
            .sessions
            .session_by_token(&token.hash(), now)
            .await?
            .filter(|s| s.session.is_live(now))
            .ok_or(AdminError::SessionEnded)?;
        let session = &stored.session;
        let user = self
            .live_user(&session.workspace_id, &session.user_id)
            .await?
            .ok_or(AdminError::SessionEnded)?;
        let session_id = session.id.clone();
        if session.touch_due(now) {
            stored.session.last_seen_at = now;
            self.ports.sessions.touch_session(&stored).await?;
        }
        Ok(ConsoleSession {
            principal: principal_of(&user),
            user,
            session_id,
            csrf: token.csrf(),
            sso: stored.session.sso,
        })
    }

    /// Ends the session of `token` (signing out twice is no error).
    pub async fn sign_out(&self, token: &SessionToken) -> AdminResult<()> {
        let now = self.now();
        let Some(stored) = self
            .ports
            .sessions
            .session_by_token(&token.hash(), now)
            .await?
        else {
            return Ok(());
        };
        let s = &stored.session;
        self.ports
            .sessions
            .delete_session(&s.workspace_id, &s.id)
            .await?;
        let actor = Principal {
            workspace_id: s.workspace_id.clone(),
            role: Role::Viewer,
            actor: format!("user:{}", s.user_id),
            key_id: None,
        };
        self.audit(
            &actor,
            AuditAction::SessionSignOut,
            s.id.as_str(),
            json!({}),
        )
        .await?;
        Ok(())
    }

    /// A user's live sessions, oldest first: one's own, or anyone's for an admin.
    pub async fn sessions(&self, p: &Principal, user: &UserId) -> AdminResult<Vec<Session>> {
        if !is_self(p, user) {
            require(p, Role::Admin, "list another user's sessions")?;
        }
        self.ports
            .control
            .user(&p.workspace_id, user, self.now())
            .await?
            .ok_or(AdminError::NotFound("user"))?;
        Ok(self
            .ports
            .sessions
            .sessions_of(&p.workspace_id, user, self.now())
            .await?)
    }

    /// Ends one session: one's own, or anyone's for an admin. Audited.
    pub async fn revoke_session(&self, p: &Principal, id: &SessionId) -> AdminResult<()> {
        let stored = self
            .ports
            .sessions
            .session(&p.workspace_id, id)
            .await?
            .ok_or(AdminError::NotFound("session"))?;
        if !is_self(p, &stored.session.user_id) {
            require(p, Role::Admin, "end another user's sessions")?;
        }
        if !self
            .ports
            .sessions
            .delete_session(&p.workspace_id, id)
            .await?
        {
            return Err(AdminError::NotFound("session"));
        }
        self.audit(
            p,
            AuditAction::SessionRevoke,
            id.as_str(),
            json!({"user": stored.session.user_id}),
        )
        .await?;
        Ok(())
    }

    /// Ends every session of a user at once (role change, password change).
    pub(crate) async fn end_sessions(&self, ws: &WorkspaceId, user: &UserId) -> AdminResult<u64> {
        Ok(self.ports.sessions.delete_sessions_of(ws, user).await?)
    }

    /// A removed user: their sessions end and their password is forgotten.
    pub(crate) async fn forget_sign_in(&self, user: &User) -> AdminResult<()> {
        self.end_sessions(&user.workspace_id, &user.id).await?;
        let login = LoginKey::of(&user.email);
        if let Some(c) = self.ports.sessions.credential(&login).await? {
            if c.workspace_id == user.workspace_id && c.user_id == user.id {
                self.ports.sessions.delete_credential(&login).await?;
            }
        }
        Ok(())
    }

    /// A user's email address changed from `old`: their password moves to the new address.
    pub(crate) async fn move_sign_in(&self, old: &Email, user: &User) -> AdminResult<()> {
        let from = LoginKey::of(old);
        let Some(mut c) = self.ports.sessions.credential(&from).await? else {
            return Ok(());
        };
        if c.workspace_id != user.workspace_id || c.user_id != user.id {
            return Ok(());
        }
        c.login = LoginKey::of(&user.email);
        self.ports.sessions.put_credential(&c).await?;
        self.ports.sessions.delete_credential(&from).await?;
        Ok(())
    }
}

fn is_self(p: &Principal, user: &UserId) -> bool {
    p.actor == format!("user:{user}")
}
