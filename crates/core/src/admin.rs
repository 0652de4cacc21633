//! The control plane's use cases, behind the admin API and the operator CLI.
//!
//! Every method takes the authenticated [`Principal`], checks its role (whitepaper §04) and
//! appends an audit entry for every mutation. The HTTP layer maps [`AdminError`] to
//! problem+json; objects of another workspace are simply not found.

mod audit_log;
mod auth;
mod deliveries;
mod destinations;
mod events;
mod keys;
mod lifecycle;
mod overview;
mod provisioning;
mod saml;
mod saml_login;
mod scim_groups;
mod security;
mod sessions;
mod sign_in;
mod sso_enforcement;
pub mod test_event;
mod users;
mod workspace;

use std::sync::Arc;

use serde_json::Value;
use time::OffsetDateTime;

use crate::audit::{AuditAction, AuditEntry, NewAuditEntry};
use crate::control_plane::{Control, ControlError};
use crate::crypto::WorkspaceKeys;
use crate::destination::DestinationError;
use crate::error::{KeyError, StoreError};
use crate::invalidation::{Change, Invalidate, Invalidations};
use crate::keys::verifier::{KeyVerifier, VerifierConfig};
use crate::keys::KeyRefusal;
use crate::ports::{EventReader, SessionStore, UrlGuard};
use crate::rbac::Role;
use crate::services::CommonPorts;
use crate::workspace::{Region, Workspace, WorkspaceId};

use workspace::view;

pub(crate) use crate::rbac::require;
pub use crate::rbac::Principal;
pub use crate::sessions::{
    Client, ConsoleSession, CsrfToken, Session, SessionId, SessionToken, SignInLink, SignedIn,
};
pub use destinations::{DestinationPatch, DestinationView};
pub use events::{EventTrace, RECENT_MAX, RECENT_WINDOW};
pub use keys::{CreatedKey, KeyRequest, KeyView, MAX_ROTATION_OVERLAP_DAYS};
pub use lifecycle::{close_account, close_account_with_dsr, Closure, RetentionView};
pub use overview::{
    overview_of, DestinationCounts, DestinationOverview, IngestTotals, Overview, SeriesPoint,
    StatsWindow,
};
pub use provisioning::MAX_EXTERNAL_ID_LEN;
pub use saml::{SsoChoice, MAX_SSO_CHOICES};
pub use saml_login::{relative_path, SamlAcs, SamlLogin, SamlLoginError, SamlStart};
pub use scim_groups::GroupDraft;
pub use security::SecurityPatch;
pub use workspace::{WorkspacePatch, WorkspaceView};

/// What an admin call answers.
pub type AdminResult<T> = Result<T, AdminError>;

/// Why an admin call failed, by what the caller should do.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{}", .0.detail())]
    Unauthorized(KeyRefusal),
    #[error("this token's workspace lives in region {0}")]
    WrongRegion(Region),
    #[error("requests from this address are blocked by the workspace's security settings")]
    Blocked,
    #[error("too many failed authentications from this address or for this token")]
    Throttled { retry_after: std::time::Duration },
    #[error("the {role:?} role cannot {action}")]
    Forbidden { role: Role, action: &'static str },
    /// The role may make this request, but not change `field`.
    #[error("the {role:?} role cannot {action} ({field})")]
    ForbiddenField {
        role: Role,
        field: String,
        action: &'static str,
    },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{field}: {detail}")]
    Invalid { field: String, detail: String },
    #[error("{0}")]
    Conflict(String),
    #[error("the workspace encryption key is unavailable")]
    KeyUnavailable(#[source] KeyError),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Key(KeyError),
    /// Mailing (an invitation, a sign-in or reset link) failed: the mail service, not storage.
    #[error(transparent)]
    Mail(crate::error::MailError),
    #[error("could not compute a key verifier")]
    Internal(String),
    /// A console sign-in was refused: the same answer whether or not the account exists.
    #[error("the email address or the password is not correct")]
    SignInRefused,
    /// The console session ended (expired, signed out, revoked, or its user changed): sign
    /// in again.
    #[error("the session has ended; sign in again")]
    SessionEnded,
    /// A one-time link is unknown, used or expired.
    #[error("this link is not valid: it was used already or it expired")]
    LinkInvalid,
    /// The workspace enforces SAML single sign-on for this account's email domain: no
    /// password, reset or link; `sign_in_path` starts the SSO sign-in. Only someone who
    /// proved they hold the account (its password or a mailed link) is told.
    #[error("this account signs in through single sign-on (SAML): continue at {sign_in_path}")]
    SsoRequired { sign_in_path: String },
    /// A new personal token for a user whose domain enforces SSO, asked for without a session
    /// begun through SSO (a password or break-glass session, another token).
    #[error(
        "a new personal access token for this account needs a session begun through single \
         sign-on (its domain enforces SSO): sign in at {sign_in_path}, then try again"
    )]
    SsoSessionRequired { sign_in_path: String },
}

impl AdminError {
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            detail: detail.into(),
        }
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::NotFound(what),
            StoreError::Conflict(what) => Self::Conflict(format!("{what}: it already exists")),
            other => Self::Store(other),
        }
    }
}

impl From<KeyError> for AdminError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Unavailable(_) => Self::KeyUnavailable(e),
            other => Self::Key(other),
        }
    }
}

impl From<DestinationError> for AdminError {
    fn from(e: DestinationError) -> Self {
        Self::Invalid {
            field: e.field,
            detail: e.detail,
        }
    }
}

impl From<ControlError> for AdminError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::Store(s) => s.into(),
            ControlError::Key(k) => k.into(),
            ControlError::Destination(d) => d.into(),
            ControlError::Verifier(v) => Self::Internal(v.to_string()),
            ControlError::Invalid(msg) => Self::invalid("", msg),
            ControlError::InvalidField { field, detail } => Self::invalid(field, detail),
        }
    }
}

/// The ports the control plane uses: the shared account-data ones (closing a workspace also
/// ends its data-subject requests and suppression list with its account data) and its own.
#[allow(missing_debug_implementations)]
pub struct AdminPorts {
    pub common: CommonPorts,
    pub events: Arc<dyn EventReader>,
    /// Refuses destination URLs that egress must never reach.
    pub url_guard: Arc<dyn UrlGuard>,
    /// The overview's counters (read only).
    pub stats: Arc<dyn crate::stats::StatsReader>,
    /// Console sessions, one-time links, password credentials, failed sign-in counters.
    pub sessions: Arc<dyn SessionStore>,
}

/// The console's base URL unless the process says otherwise (`tracklayer serve`'s default
/// listen address).
pub const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";

/// The control plane.
pub struct AdminService {
    ports: AdminPorts,
    region: Region,
    verifier: Arc<KeyVerifier>,
    invalidations: Arc<Invalidations>,
    /// Where the console is reached: mailed and printed links start with it.
    public_url: String,
}

crate::debug_fields!(AdminService: region);

impl AdminService {
    pub fn new(ports: AdminPorts, region: Region) -> Self {
        let verifier = Arc::new(KeyVerifier::new(
            VerifierConfig::new(region),
            ports.clock.clone(),
        ));
        verifier.record_usage_in(ports.control.clone());
        Self {
            verifier,
            region,
            ports,
            invalidations: Invalidations::new(),
            public_url: DEFAULT_PUBLIC_URL.into(),
        }
    }

    /// Sets the console's public base URL (`https://tracklayer.example.com`), which links
    /// in mails and `tracklayer init`'s output start with.
    pub fn with_public_url(mut self, url: impl Into<String>) -> Self {
        self.public_url = url.into().trim_end_matches('/').to_owned();
        self
    }

    /// Shares a key verifier with the tracking API of the same process.
    pub fn with_verifier(mut self, verifier: Arc<KeyVerifier>) -> Self {
        verifier.record_usage_in(self.ports.control.clone());
        self.verifier = verifier;
        self
    }

    /// Publishes every change to the caches of this process (ingest, delivery).
    pub fn with_invalidations(mut self, invalidations: Arc<Invalidations>) -> Self {
        self.invalidations = invalidations;
        self
    }

    /// The key verifier, for its counters.
    pub fn verifier(&self) -> &KeyVerifier {
        &self.verifier
    }

    /// Drops what this process cached about the change, before the change is answered.
    pub(crate) fn changed(&self, change: Change) {
        self.verifier.invalidate(&change);
        self.invalidations.publish(&change);
    }

    fn control(&self) -> Control<'_> {
        Control {
            store: self.ports.control.as_ref(),
            keyring: self.ports.keyring.as_ref(),
            clock: self.ports.clock.as_ref(),
            ids: self.ports.ids.as_ref(),
        }
    }

    fn now(&self) -> OffsetDateTime {
        self.ports.clock.now()
    }

    async fn audit(
        &self,
        p: &Principal,
        action: AuditAction,
        target: &str,
        summary: Value,
    ) -> AdminResult<AuditEntry> {
        Ok(self
            .ports
            .audit
            .append(
                NewAuditEntry {
                    workspace_id: p.workspace_id.clone(),
                    actor: p.actor.clone(),
                    action: action.as_str().into(),
                    target: target.into(),
                    summary,
                },
                self.now(),
            )
            .await?)
    }

    async fn ws(&self, p: &Principal) -> AdminResult<Workspace> {
        self.ws_of(&p.workspace_id).await
    }

    /// The workspace `ws`, open or closed.
    async fn ws_of(&self, ws: &WorkspaceId) -> AdminResult<Workspace> {
        self.ports
            .workspace(ws)
            .await?
            .ok_or(AdminError::NotFound("workspace"))
    }

    /// Writes the workspace back. A closure that came in between (after the read) wins.
    async fn save_ws(&self, ws: &Workspace) -> AdminResult<()> {
        self.ports
            .control
            .update_workspace(ws)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => AdminError::Conflict("the workspace is closed".into()),
                other => other.into(),
            })?;
        self.changed(Change::Workspace(ws.id.clone()));
        Ok(())
    }

    /// The workspace's data keys (unwrapped by the keyring: the customer's key under BYOK).
    async fn workspace_keys(&self, ws: &Workspace) -> AdminResult<WorkspaceKeys> {
        Ok(self.ports.workspace_keys(ws).await?)
    }

    /// The caller's workspace, to change it or what it holds. A closed workspace takes no
    /// change: closure revoked every key, so only the operator CLI still reaches one, and
    /// nothing new may outlive its account data.
    async fn open_ws(&self, p: &Principal) -> AdminResult<Workspace> {
        let ws = self.ws(p).await?;
        if ws.is_closed() {
            return Err(AdminError::Conflict("the workspace is closed".into()));
        }
        Ok(ws)
    }

    /// The caller's open workspace for an `action` that needs at least `role`: the role is
    /// checked first (`Forbidden` naming the action), so a caller without it learns nothing
    /// of the workspace, not even whether it is closed.
    async fn open_ws_as(
        &self,
        p: &Principal,
        role: Role,
        action: &'static str,
    ) -> AdminResult<Workspace> {
        require(p, role, action)?;
        self.open_ws(p).await
    }
}
