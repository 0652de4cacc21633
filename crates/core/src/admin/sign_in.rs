//! Signing in to the console: by password, by invitation, by password reset, by a one-time
//! sign-in link; and the links themselves.
//!
//! Failed password sign-ins are counted in the [`SessionStore`](crate::ports::SessionStore)
//! (so the limits hold across Lambda instances) per account and per source, in fixed
//! 15-minute windows: after [`ACCOUNT_FAILURE_LIMIT`] failures for one email address, known or
//! not, or [`IP_FAILURE_LIMIT`] from one source, further attempts are refused (429) until the
//! window ends, before any password is checked. The account's count is taken atomically
//! before the check (a success clears it), so concurrent guesses get no more than the limit;
//! the source's is added after a failure, so many accounts guessed at once from one source
//! may overshoot its limit by the number in flight. An unknown account costs one argon2
//! verification against a dummy verifier and gets the same answer as a wrong password.

use serde_json::json;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::{require, AdminError, AdminResult, AdminService, Principal};
use crate::audit::AuditAction;
use crate::email::Email;
use crate::keys::Role;
use crate::password::{verify_against_dummy, Password, PasswordVerifier};
use crate::ports::Mail;
use crate::sessions::{
    random_token, Client, Credential, LinkKind, LinkRecord, LoginKey, Session, SessionId,
    SessionToken, SignInLink, SignedIn, StoredSession, TokenHash, ACCOUNT_FAILURE_LIMIT,
    FAILURE_WINDOW, INVITATION_VALID, IP_FAILURE_LIMIT, RESET_MAIL_LIMIT, RESET_REQUEST_FLOOR,
    RESET_VALID, SESSION_ABSOLUTE, SIGN_IN_REFUSAL_FLOOR,
};
use crate::user_id::UserId;
use crate::workspace::{User, WorkspaceId};

impl AdminService {
    /// Signs in with an email address and password. A wrong password and an unknown account
    /// get the same [`AdminError::SignInRefused`] after the same work; too many failures get
    /// [`AdminError::Throttled`].
    pub async fn sign_in(
        &self,
        email: &str,
        password: &str,
        source: impl Into<Client>,
    ) -> AdminResult<SignedIn> {
        let started = std::time::Instant::now();
        let client = source.into();
        let now = self.now();
        let login = Email::parse(email).ok().map(|e| LoginKey::of(&e));
        let account = match &login {
            Some(l) => format!("acct:{}", l.as_str()),
            None => format!("acct:{}", hex::encode(Sha256::digest(email.as_bytes()))),
        };
        self.admit_attempt(&account, &client, now).await?;
        let credential = match &login {
            Some(l) => self.ports.sessions.credential(l).await?,
            None => None,
        };
        let verified = verify(credential.as_ref().map(|c| c.verifier.clone()), password).await?;
        let user = match (&credential, verified) {
            (Some(c), true) => self.live_user(&c.workspace_id, &c.user_id).await?,
            _ => None,
        };
        let Some(user) = user else {
            self.count_source_failure(&client, now).await?;
            if let Some(c) = &credential {
                self.audit_failure(&c.workspace_id, &c.user_id, &client, "password")
                    .await?;
            }
            answer_no_sooner(started, SIGN_IN_REFUSAL_FLOOR).await;
            return Err(AdminError::SignInRefused);
        };
        self.ports
            .sessions
            .clear_failures(&account, window_start(now))
            .await?;
        self.require_local_sign_in(&user, "password").await?;
        self.start_session(&user, &client, "password").await
    }

    /// Sets the invited user's first password from the invitation link's token and signs
    /// them in. The link works once, for 7 days; a password that breaks a rule is refused
    /// (422 naming `password`) before the link is used.
    pub async fn accept_invitation(
        &self,
        token: &str,
        password: &str,
        source: impl Into<Client>,
    ) -> AdminResult<SignedIn> {
        self.set_password_by_link(token, LinkKind::Invitation, password, source.into())
            .await
    }

    /// Mails a password-reset link (1 hour, one use) if a user signs in with `email`; does
    /// the same work and answers the same whether or not one does. At most
    /// [`RESET_MAIL_LIMIT`] mails per account per 15 minutes.
    pub async fn request_password_reset(&self, email: &str, source: impl Into<Client>) {
        let started = std::time::Instant::now();
        let client = source.into();
        if let Err(e) = self.send_reset(email, &client).await {
            tracing::warn!(error = %e, "password reset not sent");
        }
        answer_no_sooner(started, RESET_REQUEST_FLOOR).await;
    }

    /// Sets a new password from a reset link's token: every session of the user ends, and a
    /// new one begins.
    pub async fn reset_password(
        &self,
        token: &str,
        password: &str,
        source: impl Into<Client>,
    ) -> AdminResult<SignedIn> {
        self.set_password_by_link(token, LinkKind::PasswordReset, password, source.into())
            .await
    }

    /// A one-time console sign-in link for the workspace owner (1 hour), which the operator
    /// (`tracklayer init`) prints. Only the operator on the machine may ask for one.
    pub async fn owner_sign_in_link(&self, p: &Principal) -> AdminResult<SignInLink> {
        require(p, Role::Admin, "create sign-in links")?;
        if !p.actor.starts_with("cli:") {
            return Err(AdminError::Forbidden {
                role: p.role,
                action: "create sign-in links (only the operator can)",
            });
        }
        let owner = self
            .live_user(&p.workspace_id, &UserId::owner())
            .await?
            .ok_or(AdminError::NotFound("user"))?;
        self.issue_link(LinkKind::SignIn, &owner).await
    }

    /// Signs in with a one-time sign-in link's token.
    pub async fn redeem_sign_in_link(
        &self,
        token: &str,
        source: impl Into<Client>,
    ) -> AdminResult<SignedIn> {
        let user = self.redeem(token, LinkKind::SignIn).await?;
        self.require_local_sign_in(&user, "sign_in_link").await?;
        self.start_session(&user, &source.into(), "sign_in_link")
            .await
    }

    /// Changes the signed-in user's password. The current one is required if they have one
    /// (a user who came in by a sign-in link may have none). Every session of the user ends
    /// and a new one begins.
    pub async fn change_password(
        &self,
        token: &SessionToken,
        current: Option<&str>,
        password: &str,
        source: impl Into<Client>,
    ) -> AdminResult<SignedIn> {
        let console = self.console_session(token).await?;
        self.require_local_sign_in(&console.user, "password_change")
            .await?;
        let password = new_password(password)?;
        let login = LoginKey::of(&console.user.email);
        if let Some(existing) = self.ports.sessions.credential(&login).await? {
            let current = current.unwrap_or_default();
            if !verify(Some(existing.verifier), current).await? {
                return Err(AdminError::invalid(
                    "current_password",
                    "is not the current password",
                ));
            }
        }
        self.set_credential(&console.user, &password, "change")
            .await?;
        self.start_session(&console.user, &source.into(), "password_change")
            .await
    }

    /// Mails the invitation link of a user just invited.
    pub(crate) async fn send_invitation(&self, user: &User) -> AdminResult<()> {
        let link = self.issue_link(LinkKind::Invitation, user).await?;
        let ws = self.ws_of(&user.workspace_id).await?;
        let text = format!(
            "You are invited to the TrackLayer workspace \"{}\".\n\n\
             Set your password and sign in here (the link works once, until {}):\n\n{}\n",
            ws.name, link.expires_at, link.url
        );
        self.mail(user, "Your TrackLayer invitation", text).await
    }

    async fn send_reset(&self, email: &str, client: &Client) -> AdminResult<()> {
        let now = self.now();
        let Ok(email) = Email::parse(email) else {
            return Ok(());
        };
        let login = LoginKey::of(&email);
        let sent = self
            .ports
            .sessions
            .add_failure(
                &format!("reset:{}", login.as_str()),
                window_start(now),
                window_start(now) + FAILURE_WINDOW,
            )
            .await?;
        let Some(credential) = self.ports.sessions.credential(&login).await? else {
            return Ok(());
        };
        if sent > RESET_MAIL_LIMIT {
            return Ok(());
        }
        let Some(user) = self
            .live_user(&credential.workspace_id, &credential.user_id)
            .await?
        else {
            return Ok(());
        };
        if self.mailed_sso_instead_of_reset(&user).await? {
            return Ok(());
        }
        let link = self.issue_link(LinkKind::PasswordReset, &user).await?;
        let text = format!(
            "Someone (from {}) asked to reset the password of your TrackLayer account.\n\n\
             Set a new password here (the link works once, until {}):\n\n{}\n\n\
             If it was not you, ignore this mail: your password stays as it is.\n",
            client.network(),
            link.expires_at,
            link.url
        );
        self.mail(&user, "Reset your TrackLayer password", text)
            .await
    }

    async fn set_password_by_link(
        &self,
        token: &str,
        kind: LinkKind,
        password: &str,
        client: Client,
    ) -> AdminResult<SignedIn> {
        let password = new_password(password)?;
        let user = self.redeem(token, kind).await?;
        self.require_local_sign_in(&user, kind.as_str()).await?;
        self.set_credential(&user, &password, kind.as_str()).await?;
        self.start_session(&user, &client, kind.as_str()).await
    }

    /// Stores the user's password verifier and ends their sessions. A login that belongs to
    /// a live user of another workspace is not taken over.
    async fn set_credential(&self, user: &User, password: &Password, via: &str) -> AdminResult<()> {
        let login = LoginKey::of(&user.email);
        if let Some(other) = self.ports.sessions.credential(&login).await? {
            let same = other.workspace_id == user.workspace_id && other.user_id == user.id;
            if !same
                && self
                    .live_user(&other.workspace_id, &other.user_id)
                    .await?
                    .is_some()
            {
                return Err(AdminError::Conflict(
                    "this email address signs in to another workspace".into(),
                ));
            }
        }
        let verifier = hash(password, self.ports.ids.clone()).await?;
        self.ports
            .sessions
            .put_credential(&Credential {
                login,
                workspace_id: user.workspace_id.clone(),
                user_id: user.id.clone(),
                verifier,
                set_at: self.now(),
            })
            .await?;
        self.end_sessions(&user.workspace_id, &user.id).await?;
        self.audit_own(user, AuditAction::UserPasswordSet, json!({"via": via}))
            .await
    }

    /// Audits `action`, which `user` took on their own account.
    pub(crate) async fn audit_own(
        &self,
        user: &User,
        action: AuditAction,
        summary: serde_json::Value,
    ) -> AdminResult<()> {
        let by = principal_of(user);
        self.audit(&by, action, user.id.as_str(), summary).await?;
        Ok(())
    }

    /// A new session for `user` from `client`, audited.
    pub(crate) async fn start_session(
        &self,
        user: &User,
        client: &Client,
        via: &str,
    ) -> AdminResult<SignedIn> {
        let now = self.now();
        let token = SessionToken::generate(self.ports.ids.as_ref());
        let session = Session {
            id: SessionId::generate(self.ports.ids.as_ref()),
            user_id: user.id.clone(),
            workspace_id: user.workspace_id.clone(),
            created_at: now,
            last_seen_at: now,
            expires_at: now + SESSION_ABSOLUTE,
            source_ip: client.network(),
            user_agent: client.user_agent_summary(),
            sso: via == "saml",
        };
        self.ports
            .sessions
            .create_session(&StoredSession {
                token_hash: token.hash(),
                session: session.clone(),
            })
            .await?;
        self.audit(
            &principal_of(user),
            AuditAction::SessionSignIn,
            session.id.as_str(),
            json!({"via": via, "network": session.source_ip, "user_agent": session.user_agent}),
        )
        .await?;
        let csrf = token.csrf();
        Ok(SignedIn {
            token,
            session,
            csrf,
        })
    }

    /// A new one-time link of `kind` for `user`.
    async fn issue_link(&self, kind: LinkKind, user: &User) -> AdminResult<SignInLink> {
        let now = self.now();
        let token = random_token(self.ports.ids.as_ref());
        let expires_at = now
            + match kind {
                LinkKind::Invitation => INVITATION_VALID,
                LinkKind::PasswordReset | LinkKind::SignIn => RESET_VALID,
            };
        self.ports
            .sessions
            .put_link(&LinkRecord {
                hash: TokenHash::of(&token),
                kind,
                workspace_id: user.workspace_id.clone(),
                user_id: user.id.clone(),
                created_at: now,
                expires_at,
            })
            .await?;
        Ok(SignInLink {
            url: format!("{}{}{token}", self.public_url, kind.path()),
            expires_at,
        })
    }

    /// Consumes a link of `kind`: the live user it was made for.
    async fn redeem(&self, token: &str, kind: LinkKind) -> AdminResult<User> {
        if !crate::sessions::is_token(token) {
            return Err(AdminError::LinkInvalid);
        }
        let link = self
            .ports
            .sessions
            .redeem_link(&TokenHash::of(token), kind, self.now())
            .await?
            .ok_or(AdminError::LinkInvalid)?;
        self.live_user(&link.workspace_id, &link.user_id)
            .await?
            .ok_or(AdminError::LinkInvalid)
    }

    /// The user, if they and their workspace exist, the workspace is open and the user is active.
    pub(crate) async fn live_user(
        &self,
        ws: &WorkspaceId,
        id: &UserId,
    ) -> AdminResult<Option<User>> {
        if self.ports.open_workspace(ws).await?.is_none() {
            return Ok(None);
        }
        // A user the identity provider deactivated (SCIM `active: false`) signs in no more.
        Ok(self
            .ports
            .control
            .user(ws, id, self.now())
            .await?
            .filter(|u| u.active))
    }

    pub(super) async fn mail(&self, user: &User, subject: &str, text: String) -> AdminResult<()> {
        self.ports
            .mailer
            .send(&Mail {
                to: vec![user.email.as_str().to_owned()],
                subject: subject.into(),
                text,
            })
            .await
            .map_err(AdminError::Mail)
    }

    /// Admits a password attempt, or refuses it if the source used up its failures or the
    /// account its attempts. The account's counter is taken before the password is checked
    /// (one atomic add) and cleared by a success, so concurrent guesses cannot outrun it.
    async fn admit_attempt(
        &self,
        account: &str,
        client: &Client,
        now: OffsetDateTime,
    ) -> AdminResult<()> {
        let window = window_start(now);
        let store = &self.ports.sessions;
        let over = store.failures(&client.failure_key(), window, now).await? >= IP_FAILURE_LIMIT
            || store
                .add_failure(account, window, window + FAILURE_WINDOW)
                .await?
                > ACCOUNT_FAILURE_LIMIT;
        if over {
            let left = (window + FAILURE_WINDOW - now).max(time::Duration::seconds(1));
            return Err(AdminError::Throttled {
                retry_after: std::time::Duration::from_secs(left.whole_seconds().max(1) as u64),
            });
        }
        Ok(())
    }

    /// Counts a failed attempt against its source.
    async fn count_source_failure(&self, client: &Client, now: OffsetDateTime) -> AdminResult<()> {
        let window = window_start(now);
        self.ports
            .sessions
            .add_failure(&client.failure_key(), window, window + FAILURE_WINDOW)
            .await?;
        Ok(())
    }

    async fn audit_failure(
        &self,
        ws: &WorkspaceId,
        user: &UserId,
        client: &Client,
        reason: &str,
    ) -> AdminResult<()> {
        let anonymous = Principal {
            workspace_id: ws.clone(),
            role: Role::Viewer,
            actor: "anonymous".into(),
            key_id: None,
        };
        self.audit(
            &anonymous,
            AuditAction::SessionSignInFailed,
            user.as_str(),
            json!({"reason": reason, "network": client.network()}),
        )
        .await?;
        Ok(())
    }
}

/// The principal a user acts as in the console: their current role.
pub(crate) fn principal_of(user: &User) -> Principal {
    Principal {
        workspace_id: user.workspace_id.clone(),
        role: user.role,
        actor: format!("user:{}", user.id),
        key_id: None,
    }
}

/// The start of the failure window `now` falls in.
fn window_start(now: OffsetDateTime) -> OffsetDateTime {
    let len = FAILURE_WINDOW.whole_seconds();
    let t = now.unix_timestamp();
    OffsetDateTime::from_unix_timestamp(t - t.rem_euclid(len)).unwrap_or(now)
}

fn new_password(password: &str) -> AdminResult<Password> {
    Password::new(password).map_err(|rule| AdminError::invalid("password", rule.to_string()))
}

/// Waits until `floor` has passed since `started`: answers whose work differs by what they
/// must not reveal (whether an account exists) leave at the same time.
async fn answer_no_sooner(started: std::time::Instant, floor: std::time::Duration) {
    if let Some(left) = floor.checked_sub(started.elapsed()) {
        tokio::time::sleep(left).await;
    }
}

/// Checks `password` against `verifier` (or a dummy when there is none, at the same cost) on
/// the blocking pool: argon2 takes tens of milliseconds of CPU.
async fn verify(verifier: Option<PasswordVerifier>, password: &str) -> AdminResult<bool> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || match verifier {
        Some(v) => v.matches(&password),
        None => verify_against_dummy(&password),
    })
    .await
    .map_err(|e| AdminError::Internal(e.to_string()))
}

async fn hash(
    password: &Password,
    ids: std::sync::Arc<dyn crate::clock::Ids>,
) -> AdminResult<PasswordVerifier> {
    let password = password.clone();
    tokio::task::spawn_blocking(move || password.verifier(ids.as_ref()))
        .await
        .map_err(|e| AdminError::Internal(e.to_string()))?
        .map_err(|e| AdminError::Internal(e.to_string()))
}
