//! SAML sign-in: the SP-initiated start (an AuthnRequest bound to the browser) and the ACS
//! (verify → single-use request → replay cache → managed domain → user, created just in time
//! when the connection allows). Every refusal is audited with its stable reason code and
//! answers with nothing more than that code.

use serde_json::json;
use sha2::{Digest, Sha256};
use tracklayer_saml::{verify_response, Expected};

use super::{AdminService, Principal};
use crate::audit::AuditAction;
use crate::email::Email;
use crate::error::StoreError;
use crate::keys::Role;
use crate::saml::{service_provider, AssertionUse, PendingRequest, SamlConnection, REQUEST_TTL};
use crate::user_id::UserId;
use crate::workspace::{User, WorkspaceId};

/// The longest RelayState kept.
const MAX_RELAY_STATE: usize = 512;
/// Random characters of the browser-binding cookie.
const BROWSER_SECRET_LEN: usize = 32;

/// Why a SAML sign-in did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SamlLoginError {
    /// No open workspace, or no SAML connection in it.
    #[error("SAML single sign-on is not configured for this workspace")]
    NotConfigured,
    /// Refused, with a stable reason code (`saml_signature`, `saml_replayed`, ...): final.
    #[error("the SAML sign-in was refused ({0})")]
    Refused(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where to send the browser to start an SP-initiated login, and the secret its cookie
/// carries back to the ACS (short-lived, `SameSite=None; Secure; HttpOnly`).
#[derive(Clone, PartialEq, Eq)]
pub struct SamlStart {
    pub redirect_url: String,
    pub browser_secret: String,
}

impl std::fmt::Debug for SamlStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamlStart").finish_non_exhaustive()
    }
}

/// What the ACS received.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SamlAcs<'a> {
    /// The `SAMLResponse` form field.
    pub saml_response: &'a str,
    pub relay_state: Option<&'a str>,
    /// The browser-binding cookie, if the browser sent one.
    pub browser_secret: Option<&'a str>,
}

impl std::fmt::Debug for SamlAcs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamlAcs")
            .field("saml_response_len", &self.saml_response.len())
            .field("browser_bound", &self.browser_secret.is_some())
            .finish_non_exhaustive()
    }
}

/// A verified, authorised SAML sign-in: the console session is created for `user`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamlLogin {
    pub user: User,
    /// The user was created just in time by this sign-in.
    pub created: bool,
    /// Where to go next: a relative path of ours, `None` for the console's start page.
    pub relay_state: Option<String>,
}

/// A RelayState we follow: a relative path of our own (`/…`, not `//…` or `/\…`), printable
/// ASCII, at most [`MAX_RELAY_STATE`] bytes. Anything else is never a redirect target.
pub fn relative_path(relay: &str) -> Option<String> {
    let ok = relay.len() <= MAX_RELAY_STATE
        && relay.starts_with('/')
        && !relay.starts_with("//")
        && !relay.starts_with("/\\")
        && relay.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| relay.to_owned())
}

fn browser_key(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl AdminService {
    async fn saml_connection_of(&self, ws: &WorkspaceId) -> Result<SamlConnection, SamlLoginError> {
        if self.ports.open_workspace(ws).await?.is_none() {
            return Err(SamlLoginError::NotConfigured);
        }
        self.ports
            .control
            .saml_connection(ws)
            .await?
            .ok_or(SamlLoginError::NotConfigured)
    }

    /// Starts an SP-initiated login: a fresh request id remembered for [`REQUEST_TTL`] under a
    /// hash of a fresh browser secret, and the IdP's HTTP-Redirect URL. `relay_state` must be
    /// a relative path of ours (else `Refused("saml_relay_state")`).
    pub async fn saml_start(
        &self,
        ws: &WorkspaceId,
        base_url: &str,
        relay_state: Option<&str>,
    ) -> Result<SamlStart, SamlLoginError> {
        let connection = self.saml_connection_of(ws).await?;
        let relay = relay_state
            .map(|r| relative_path(r).ok_or(SamlLoginError::Refused("saml_relay_state")))
            .transpose()?;
        let now = self.now();
        let request_id = format!("_tl{}", self.ports.ids.token(32));
        let browser_secret = self.ports.ids.token(BROWSER_SECRET_LEN);
        self.ports
            .control
            .put_saml_request(
                ws,
                &PendingRequest {
                    browser: &browser_key(&browser_secret),
                    request_id: &request_id,
                    expires_at: now + REQUEST_TTL,
                },
            )
            .await?;
        let redirect_url = tracklayer_saml::authn_request_redirect(
            &service_provider(base_url, ws),
            &connection.sso_url,
            &request_id,
            now,
            relay.as_deref(),
        );
        Ok(SamlStart {
            redirect_url,
            browser_secret,
        })
    }

    /// Begins the console session of a user the ACS just signed in (the same sessions as a
    /// password sign-in: 12 h idle, 7 d absolute, audited).
    pub async fn saml_session(
        &self,
        login: &SamlLogin,
        source: impl Into<crate::sessions::Client>,
    ) -> Result<crate::sessions::SignedIn, crate::admin::AdminError> {
        self.start_session(&login.user, &source.into(), "saml")
            .await
    }

    /// The assertion consumer service: verifies the response under the strict profile, for
    /// the request this browser started (its cookie) or, when the connection allows
    /// IdP-initiated login and there is none, as unsolicited; refuses a replayed assertion id
    /// (remembered until its `NotOnOrAfter`), a NameID that is not an email of a managed
    /// domain, and an unknown user when no role is granted just in time. Audited either way.
    pub async fn saml_acs(
        &self,
        ws: &WorkspaceId,
        base_url: &str,
        acs: SamlAcs<'_>,
    ) -> Result<SamlLogin, SamlLoginError> {
        let connection = self.saml_connection_of(ws).await?;
        match self.saml_sign_in(&connection, base_url, acs).await {
            Err(SamlLoginError::Refused(reason)) => {
                self.audit(
                    &saml_actor(ws, "idp:saml".into()),
                    AuditAction::SsoSamlRefused,
                    "sso.saml",
                    json!({ "reason": reason }),
                )
                .await
                .map_err(|_| SamlLoginError::Refused(reason))?;
                Err(SamlLoginError::Refused(reason))
            }
            other => other,
        }
    }

    async fn saml_sign_in(
        &self,
        connection: &SamlConnection,
        base_url: &str,
        acs: SamlAcs<'_>,
    ) -> Result<SamlLogin, SamlLoginError> {
        let ws = &connection.workspace_id;
        let now = self.now();
        let taken = match acs.browser_secret {
            Some(secret) => {
                self.ports
                    .control
                    .take_saml_request(ws, &browser_key(secret), now)
                    .await?
            }
            None => None,
        };
        let expected = match taken {
            Some(request_id) => Expected::Answer { request_id },
            None if connection.idp_initiated => Expected::Unsolicited,
            None => return Err(SamlLoginError::Refused("saml_unsolicited")),
        };
        let idp = connection.identity_provider()?;
        let sp = service_provider(base_url, ws);
        let verified = verify_response(acs.saml_response, &sp, &idp, &expected, now)
            .map_err(|e| SamlLoginError::Refused(e.reason()))?;
        let first_use = self
            .ports
            .control
            .first_use_of_assertion(
                ws,
                &AssertionUse {
                    id: &verified.assertion_id,
                    until: verified.replay_until,
                },
                now,
            )
            .await?;
        if !first_use {
            return Err(SamlLoginError::Refused("saml_replayed"));
        }
        let email = Email::parse(&verified.name_id)
            .map_err(|_| SamlLoginError::Refused("saml_name_id_not_email"))?;
        if !connection.manages(&email) {
            return Err(SamlLoginError::Refused("saml_domain_not_managed"));
        }
        let (user, created) = self
            .saml_user(connection, email, &verified.attributes)
            .await?;
        self.audit(
            &saml_actor(ws, format!("user:{}", user.id)),
            AuditAction::SsoSamlSignIn,
            user.id.as_str(),
            json!({ "created": created, "role": user.role }),
        )
        .await
        .map_err(|e| match e {
            super::AdminError::Store(s) => SamlLoginError::Store(s),
            _ => SamlLoginError::Refused("saml_audit"),
        })?;
        Ok(SamlLogin {
            user,
            created,
            relay_state: acs.relay_state.and_then(relative_path),
        })
    }

    /// The workspace's user with this email, or one created just in time with the mapped or
    /// default role; `Refused("saml_no_account")` when the connection grants no role.
    async fn saml_user(
        &self,
        connection: &SamlConnection,
        email: Email,
        attributes: &[tracklayer_saml::Attribute],
    ) -> Result<(User, bool), SamlLoginError> {
        let ws = &connection.workspace_id;
        let existing = |users: Vec<User>| users.into_iter().find(|u| u.email == email);
        if let Some(user) = existing(self.ports.control.users(ws, self.now()).await?) {
            // A user the identity provider deactivated (SCIM `active: false`) signs in no
            // more, even with a valid assertion of the same IdP.
            if !user.active {
                return Err(SamlLoginError::Refused("saml_user_inactive"));
            }
            return Ok((user, false));
        }
        let role: Role = connection
            .role_for(attributes)
            .ok_or(SamlLoginError::Refused("saml_no_account"))?;
        let user = User {
            id: UserId::generate(self.ports.ids.as_ref()),
            workspace_id: ws.clone(),
            email: email.clone(),
            role,
            created_at: self.now(),
            external_id: None,
            active: true,
            scim: None,
        };
        match self.ports.control.create_user(&user).await {
            Ok(()) => Ok((user, true)),
            // Created by a concurrent sign-in of the same person: theirs is the user.
            Err(StoreError::Conflict(_)) => {
                existing(self.ports.control.users(ws, self.now()).await?)
                    .map(|u| (u, false))
                    .ok_or(SamlLoginError::Refused("saml_no_account"))
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn saml_actor(ws: &WorkspaceId, actor: String) -> Principal {
    Principal {
        workspace_id: ws.clone(),
        role: Role::Viewer,
        actor,
        key_id: None,
    }
}
