//! The control plane's use cases, behind the admin API and the operator CLI.
//!
//! Every method takes the authenticated [`Principal`], checks its role (whitepaper §04) and
//! appends an audit entry for every mutation. The HTTP layer maps [`AdminError`] to
//! problem+json; objects of another workspace are simply not found.

mod destinations;
mod lifecycle;

use std::sync::Arc;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::audit::{AuditEntry, AuditFilter, NewAuditEntry, Verification};
use crate::bootstrap::{Control, ControlError, IssuedKey};
use crate::clock::{Clock, Ids};
use crate::consent::{ConsentPolicy, Purpose};
use crate::destination::{
    Destination, DestinationError, DestinationId, DestinationSpec, EventFilter,
};
use crate::error::{KeyError, StoreError};
use crate::event::{EventId, MessageId, StoredEvent};
use crate::invalidation::{Change, Invalidate, Invalidations};
use crate::keys::verifier::{Audience, AuthError, KeyVerifier, VerifierConfig};
use crate::keys::{ApiKeyRecord, KeyId, KeyKind, KeyRefusal, Role};
use crate::name::Name;
use crate::ports::{
    AuditLog, ControlStore, DeliveryLog, DeliveryPage, DeliveryQuery, DeliveryQueue,
    DeliveryRecord, DsrStore, EgressError, EventReader, Keyring, ReplayFilter, UrlGuard,
    LAST_ADMIN,
};
use crate::workspace::{Region, SecuritySettings, User, Workspace, WorkspaceId};

pub use lifecycle::{close_account, close_account_with_dsr, Closure, RetentionView};

/// Who is calling: from a verified personal access token or service token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub workspace_id: WorkspaceId,
    pub role: Role,
    /// `user:usr_…` or `svc:<key id>`; `cli:operator` for the operator CLI.
    pub actor: String,
    pub key_id: Option<KeyId>,
}

impl Principal {
    /// The operator on the machine (CLI on a data directory): admin of the workspace.
    pub fn operator(ws: &WorkspaceId) -> Self {
        Self {
            workspace_id: ws.clone(),
            role: Role::Admin,
            actor: "cli:operator".into(),
            key_id: None,
        }
    }
}

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
    #[error("could not compute a key verifier")]
    Internal(String),
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

/// The ports the control plane uses.
#[allow(missing_debug_implementations)]
pub struct AdminPorts {
    pub control: Arc<dyn ControlStore>,
    pub audit: Arc<dyn AuditLog>,
    pub keyring: Arc<dyn Keyring>,
    pub events: Arc<dyn EventReader>,
    pub delivery_log: Arc<dyn DeliveryLog>,
    pub queue: Arc<dyn DeliveryQueue>,
    /// Data-subject requests and the suppression list: closing a workspace ends them with
    /// its account data.
    pub dsr: Arc<dyn DsrStore>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn Ids>,
    /// Refuses destination URLs that egress must never reach.
    pub url_guard: Arc<dyn UrlGuard>,
}

/// A workspace as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkspaceView {
    pub id: WorkspaceId,
    pub name: String,
    pub region: Region,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub event_retention_days: u16,
    /// Fixed by whitepaper §02.
    pub ip_user_agent_retention_days: i64,
    pub consent_policy: ConsentPolicy,
    /// `platform` or the customer's key ARN (BYOK).
    pub encryption_key: String,
}

/// What may change on a workspace.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspacePatch {
    pub name: Option<String>,
    pub event_retention_days: Option<u16>,
    pub consent_policy: Option<ConsentPolicy>,
}

/// A partial change of the security settings: an absent field stays as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityPatch {
    pub ip_blocklist: Option<Vec<crate::workspace::Cidr>>,
    pub egress_paused: Option<bool>,
}

/// A key as listings show it (never its secret or verifier).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyView {
    pub id: KeyId,
    pub prefix: String,
    pub kind: KeyKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

impl From<&ApiKeyRecord> for KeyView {
    fn from(r: &ApiKeyRecord) -> Self {
        Self {
            id: r.id.clone(),
            prefix: r.prefix.clone(),
            kind: r.kind,
            role: r.role,
            name: r.name.clone(),
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            last_used_at: r.last_used_at,
        }
    }
}

/// A new key and its secret, shown once.
#[derive(Debug)]
pub struct CreatedKey {
    pub key: KeyView,
    pub secret: SecretString,
}

/// What to create: an ingest write key or a service token with a role.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRequest {
    pub kind: KeyKind,
    #[serde(default)]
    pub role: Option<Role>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub expires_in_days: Option<i64>,
}

/// A destination as the API shows it: secrets only as fingerprints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DestinationView {
    pub id: DestinationId,
    pub name: String,
    pub kind: crate::destination::DestinationKind,
    pub config: Value,
    /// Per secret: `{fingerprint, last4}`.
    pub secrets: Value,
    pub consent_purposes: Vec<Purpose>,
    pub events: EventFilter,
    pub endpoint: Option<String>,
    pub paused: bool,
    /// The workspace's "pause all egress" switch is on: nothing is sent here (nor anywhere)
    /// until it is off, whatever `paused` says. Set by the reads of destinations.
    pub egress_paused: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<&Destination> for DestinationView {
    fn from(d: &Destination) -> Self {
        Self {
            id: d.id.clone(),
            name: d.name.clone(),
            kind: d.kind,
            config: d.config.clone(),
            secrets: d.secret_hints.clone(),
            consent_purposes: d.consent_purposes.clone(),
            events: d.events.clone(),
            endpoint: d.endpoint.clone(),
            paused: d.paused,
            egress_paused: false,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

/// What may change on a destination. `secrets` replaces all secrets (admins only).
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationPatch {
    pub name: Option<String>,
    pub config: Option<Value>,
    pub secrets: Option<Value>,
    pub consent_purposes: Option<Vec<Purpose>>,
    pub events: Option<EventFilter>,
    /// `Some(None)` clears the override.
    #[serde(default, deserialize_with = "double_option")]
    pub endpoint: Option<Option<String>>,
    pub paused: Option<bool>,
}

impl std::fmt::Debug for DestinationPatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DestinationPatch")
            .field("name", &self.name)
            .field("secrets", &self.secrets.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

fn double_option<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// One event's story: what was received, decided and delivered. No raw identifier.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventTrace {
    pub event: StoredEvent,
    pub deliveries: Vec<DeliveryRecord>,
}

/// The control plane.
pub struct AdminService {
    ports: AdminPorts,
    region: Region,
    verifier: Arc<KeyVerifier>,
    invalidations: Arc<Invalidations>,
}

impl std::fmt::Debug for AdminService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminService")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

pub(crate) fn require(
    p: &Principal,
    at_least: Role,
    action: &'static str,
) -> Result<(), AdminError> {
    if p.role >= at_least {
        Ok(())
    } else {
        Err(AdminError::Forbidden {
            role: p.role,
            action,
        })
    }
}

/// Most days a rotated key keeps working next to its successor.
pub const MAX_ROTATION_OVERLAP_DAYS: i64 = 7;

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
        }
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
        action: &str,
        target: &str,
        summary: Value,
    ) -> Result<AuditEntry, AdminError> {
        Ok(self
            .ports
            .audit
            .append(
                NewAuditEntry {
                    workspace_id: p.workspace_id.clone(),
                    actor: p.actor.clone(),
                    action: action.into(),
                    target: target.into(),
                    summary,
                },
                self.now(),
            )
            .await?)
    }

    async fn ws(&self, p: &Principal) -> Result<Workspace, AdminError> {
        self.ports
            .control
            .workspace(&p.workspace_id, self.now())
            .await?
            .ok_or(AdminError::NotFound("workspace"))
    }

    /// Writes the workspace back. A closure that came in between (after the read) wins.
    async fn save_ws(&self, ws: &Workspace) -> Result<(), AdminError> {
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

    /// The caller's workspace, to change it or what it holds. A closed workspace takes no
    /// change: closure revoked every key, so only the operator CLI still reaches one, and
    /// nothing new may outlive its account data.
    async fn open_ws(&self, p: &Principal) -> Result<Workspace, AdminError> {
        let ws = self.ws(p).await?;
        if ws.is_closed() {
            return Err(AdminError::Conflict("the workspace is closed".into()));
        }
        Ok(ws)
    }

    // ---------------------------------------------------------------- authentication

    /// Verifies a personal access token or service token, from an unknown address.
    pub async fn authenticate(&self, presented: &str) -> Result<Principal, AdminError> {
        self.authenticate_from(presented, None).await
    }

    /// Verifies a personal access token or service token sent from `ip` ([`KeyVerifier`]).
    pub async fn authenticate_from(
        &self,
        presented: &str,
        ip: Option<std::net::IpAddr>,
    ) -> Result<Principal, AdminError> {
        let record = self
            .verifier
            .verify(self.ports.control.as_ref(), Audience::Admin, presented, ip)
            .await
            .map_err(|e| match e {
                AuthError::Refused(refusal) => AdminError::Unauthorized(refusal),
                AuthError::WrongRegion(region) => AdminError::WrongRegion(region),
                AuthError::Blocked => AdminError::Blocked,
                AuthError::Throttled { retry_after } => AdminError::Throttled { retry_after },
                AuthError::Store(e) => e.into(),
            })?;
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
                    Some(u) => u.role,
                    None if user_id == "usr_owner" => record.role.unwrap_or(Role::Viewer),
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

    // ---------------------------------------------------------------- workspace

    pub async fn workspace(&self, p: &Principal) -> Result<WorkspaceView, AdminError> {
        let ws = self.ws(p).await?;
        Ok(view(&ws))
    }

    pub async fn update_workspace(
        &self,
        p: &Principal,
        patch: WorkspacePatch,
    ) -> Result<WorkspaceView, AdminError> {
        let mut ws = self.open_ws(p).await?;
        let mut changed = serde_json::Map::new();
        if let Some(name) = patch.name {
            require(p, Role::Editor, "rename the workspace")?;
            let name = Name::parse(&name)
                .map_err(|e| AdminError::invalid("name", e.to_string()))?
                .into_string();
            ws.name = name.clone();
            changed.insert("name".into(), json!(name));
        }
        if let Some(days) = patch.event_retention_days {
            require(p, Role::Admin, "change retention")?;
            if !(1..=365).contains(&days) {
                return Err(AdminError::invalid(
                    "event_retention_days",
                    "must be from 1 to 365",
                ));
            }
            changed.insert(
                "event_retention_days".into(),
                json!({"from": ws.retention.event_days, "to": days}),
            );
            ws.retention.event_days = days;
        }
        if let Some(policy) = patch.consent_policy {
            require(p, Role::Editor, "change the consent policy")?;
            changed.insert("consent_policy".into(), json!(policy));
            ws.consent = policy;
        }
        if changed.is_empty() {
            return Ok(view(&ws));
        }
        self.save_ws(&ws).await?;
        self.audit(p, "workspace.update", "workspace", Value::Object(changed))
            .await?;
        Ok(view(&ws))
    }

    pub async fn consent_policy(&self, p: &Principal) -> Result<ConsentPolicy, AdminError> {
        Ok(self.ws(p).await?.consent)
    }

    pub async fn put_consent_policy(
        &self,
        p: &Principal,
        policy: ConsentPolicy,
    ) -> Result<ConsentPolicy, AdminError> {
        self.update_workspace(
            p,
            WorkspacePatch {
                consent_policy: Some(policy),
                ..Default::default()
            },
        )
        .await
        .map(|v| v.consent_policy)
    }

    pub async fn security(&self, p: &Principal) -> Result<SecuritySettings, AdminError> {
        Ok(self.ws(p).await?.security)
    }

    /// Replaces the security settings: every field is given.
    pub async fn put_security(
        &self,
        p: &Principal,
        settings: SecuritySettings,
    ) -> Result<SecuritySettings, AdminError> {
        self.patch_security(
            p,
            SecurityPatch {
                ip_blocklist: Some(settings.ip_blocklist),
                egress_paused: Some(settings.egress_paused),
            },
        )
        .await
    }

    /// Changes the fields the patch names; the others stay. Audited with old and new values.
    pub async fn patch_security(
        &self,
        p: &Principal,
        patch: SecurityPatch,
    ) -> Result<SecuritySettings, AdminError> {
        require(p, Role::Admin, "change security settings")?;
        let mut ws = self.open_ws(p).await?;
        let mut changed = serde_json::Map::new();
        if let Some(list) = patch.ip_blocklist {
            if list != ws.security.ip_blocklist {
                changed.insert(
                    "ip_blocklist".into(),
                    json!({"from": ws.security.ip_blocklist, "to": list}),
                );
                ws.security.ip_blocklist = list;
            }
        }
        if let Some(paused) = patch.egress_paused {
            if paused != ws.security.egress_paused {
                changed.insert(
                    "egress_paused".into(),
                    json!({"from": ws.security.egress_paused, "to": paused}),
                );
                ws.security.egress_paused = paused;
            }
        }
        if !changed.is_empty() {
            self.save_ws(&ws).await?;
            self.audit(
                p,
                "security.update",
                "workspace",
                json!({"changed": changed}),
            )
            .await?;
        }
        Ok(ws.security)
    }

    // ---------------------------------------------------------------- users

    pub async fn users(&self, p: &Principal) -> Result<Vec<User>, AdminError> {
        require(p, Role::Viewer, "list users")?;
        Ok(self
            .ports
            .control
            .users(&p.workspace_id, self.now())
            .await?)
    }

    pub async fn invite_user(
        &self,
        p: &Principal,
        email: &str,
        role: Role,
    ) -> Result<User, AdminError> {
        require(p, Role::Admin, "invite users")?;
        self.open_ws(p).await?;
        let email = email.trim();
        let valid = email.len() <= 254
            && email.split_once('@').is_some_and(|(l, d)| {
                !l.is_empty() && d.contains('.') && !email.contains(char::is_whitespace)
            });
        if !valid {
            return Err(AdminError::invalid("email", "must be an email address"));
        }
        let user = User {
            id: format!("usr_{}", self.ports.ids.token(16).to_ascii_lowercase()),
            workspace_id: p.workspace_id.clone(),
            email: email.to_owned(),
            role,
            created_at: self.now(),
        };
        self.ports
            .control
            .create_user(&user)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => {
                    AdminError::Conflict("a user with this email exists".into())
                }
                other => other.into(),
            })?;
        self.audit(p, "user.invite", &user.id, json!({"role": role}))
            .await?;
        Ok(user)
    }

    /// Changes a user's role. The last admin cannot be demoted: the store checks and writes
    /// in one atomic step, so two admins demoting each other at once cannot both succeed.
    pub async fn set_role(&self, p: &Principal, id: &str, role: Role) -> Result<User, AdminError> {
        require(p, Role::Admin, "change roles")?;
        self.open_ws(p).await?;
        let mut user = self
            .ports
            .control
            .set_user_role_keeping_an_admin(&p.workspace_id, id, role, self.now())
            .await
            .map_err(|e| last_admin(e, "the last admin cannot be demoted"))?;
        let from = user.role;
        user.role = role;
        self.changed(Change::Workspace(p.workspace_id.clone()));
        self.audit(p, "user.set_role", id, json!({"from": from, "to": role}))
            .await?;
        Ok(user)
    }

    pub async fn remove_user(&self, p: &Principal, id: &str) -> Result<(), AdminError> {
        require(p, Role::Admin, "remove users")?;
        let user = self
            .ports
            .control
            .delete_user_keeping_an_admin(&p.workspace_id, id, self.now())
            .await
            .map_err(|e| last_admin(e, "the last admin cannot be removed"))?;
        self.changed(Change::Workspace(p.workspace_id.clone()));
        // Their personal tokens stop working at once.
        for key in self
            .ports
            .control
            .api_keys(&p.workspace_id, self.now())
            .await?
        {
            if key.user_id.as_deref() == Some(id) && key.revoked_at.is_none() {
                self.control().revoke_key(&key).await?;
                self.changed(Change::Key(key.id.clone()));
            }
        }
        self.audit(p, "user.remove", id, json!({"role": user.role}))
            .await?;
        Ok(())
    }

    // ---------------------------------------------------------------- keys

    pub async fn keys(&self, p: &Principal) -> Result<Vec<KeyView>, AdminError> {
        require(p, Role::Admin, "list keys")?;
        let now = self.now();
        // Ended keys are account data: kept 90 days past their end, then never shown.
        Ok(self
            .ports
            .control
            .api_keys(&p.workspace_id, now)
            .await?
            .iter()
            .filter(|k| k.retained_until() > now)
            .map(KeyView::from)
            .collect())
    }

    pub async fn create_key(
        &self,
        p: &Principal,
        req: KeyRequest,
    ) -> Result<CreatedKey, AdminError> {
        require(p, Role::Admin, "create keys")?;
        let days = req
            .expires_in_days
            .unwrap_or(crate::keys::MAX_KEY_LIFETIME_DAYS);
        if !(1..=crate::keys::MAX_KEY_LIFETIME_DAYS).contains(&days) {
            return Err(AdminError::invalid(
                "expires_in_days",
                "must be from 1 to 90",
            ));
        }
        let (kind, role) = match (req.kind, req.role) {
            (KeyKind::Ingest, None) => (KeyKind::Ingest, None),
            (KeyKind::Ingest, Some(_)) => {
                return Err(AdminError::invalid(
                    "role",
                    "ingest write keys have no role",
                ))
            }
            (KeyKind::Svc, Some(role)) => (KeyKind::Svc, Some(role)),
            (KeyKind::Svc, None) => {
                return Err(AdminError::invalid("role", "service tokens need a role"))
            }
            (KeyKind::Pat, _) => {
                return Err(AdminError::invalid(
                    "kind",
                    "must be ingest or svc (personal tokens come with users)",
                ))
            }
        };
        let name = req.name.unwrap_or_else(|| format!("{} key", kind.as_str()));
        let name = Name::parse(&name)
            .map_err(|e| AdminError::invalid("name", e.to_string()))?
            .into_string();
        let ws = self.open_ws(p).await?;
        let issued = self
            .control()
            .issue_key(&ws, kind, role, None, &name, days)
            .await?;
        self.audit(
            p,
            "api_key.create",
            issued.record.id.as_str(),
            json!({"kind": kind, "role": role, "expires_in_days": days}),
        )
        .await?;
        Ok(created(issued))
    }

    async fn key_record(&self, p: &Principal, id: &str) -> Result<ApiKeyRecord, AdminError> {
        let id: KeyId =
            serde_json::from_value(json!(id)).map_err(|_| AdminError::NotFound("api key"))?;
        self.ports
            .control
            .api_key(&id, self.now())
            .await?
            .filter(|k| k.workspace_id == p.workspace_id)
            .ok_or(AdminError::NotFound("api key"))
    }

    /// A new key like `id`; the old one keeps working until `overlap_days` (≤ 7) from now.
    pub async fn rotate_key(
        &self,
        p: &Principal,
        id: &str,
        overlap_days: Option<i64>,
    ) -> Result<CreatedKey, AdminError> {
        require(p, Role::Admin, "rotate keys")?;
        let overlap = overlap_days.unwrap_or(MAX_ROTATION_OVERLAP_DAYS);
        if !(0..=MAX_ROTATION_OVERLAP_DAYS).contains(&overlap) {
            return Err(AdminError::invalid("overlap_days", "must be from 0 to 7"));
        }
        let mut old = self.key_record(p, id).await?;
        // The new secret goes to the caller: a personal token only to its own user (or the
        // operator on the machine), or an admin could act as any other user.
        if old.kind == KeyKind::Pat && !may_hold_personal_token(p, &old) {
            return Err(AdminError::Forbidden {
                role: p.role,
                action: "rotate another user's personal token (only revoke it)",
            });
        }
        if old.revoked_at.is_some() {
            return Err(AdminError::Conflict(
                "a revoked key cannot be rotated".into(),
            ));
        }
        let ws = self.open_ws(p).await?;
        let issued = self
            .control()
            .issue_key(
                &ws,
                old.kind,
                old.role,
                old.user_id.clone(),
                &old.name,
                crate::keys::MAX_KEY_LIFETIME_DAYS,
            )
            .await?;
        let overlap_end = self.now() + time::Duration::days(overlap);
        if old.expires_at > overlap_end {
            old.expires_at = overlap_end;
            self.ports.control.update_api_key(&old).await?;
        }
        self.changed(Change::Key(old.id.clone()));
        self.audit(p, "api_key.rotate", old.id.as_str(), json!({"new_key": issued.record.id, "old_key_expires_at": old.expires_at.unix_timestamp()}))
            .await?;
        Ok(created(issued))
    }

    pub async fn revoke_key(&self, p: &Principal, id: &str) -> Result<KeyView, AdminError> {
        require(p, Role::Admin, "revoke keys")?;
        let old = self.key_record(p, id).await?;
        let revoked = if old.revoked_at.is_some() {
            old
        } else {
            self.control().revoke_key(&old).await?
        };
        self.changed(Change::Key(revoked.id.clone()));
        self.audit(
            p,
            "api_key.revoke",
            revoked.id.as_str(),
            json!({"kind": revoked.kind}),
        )
        .await?;
        Ok(KeyView::from(&revoked))
    }

    // ---------------------------------------------------------------- destinations

    pub async fn destinations(&self, p: &Principal) -> Result<Vec<DestinationView>, AdminError> {
        let egress_paused = self.ws(p).await?.security.egress_paused;
        Ok(self
            .ports
            .control
            .destinations(&p.workspace_id)
            .await?
            .iter()
            .map(|d| DestinationView {
                egress_paused,
                ..DestinationView::from(d)
            })
            .collect())
    }

    async fn destination_record(&self, p: &Principal, id: &str) -> Result<Destination, AdminError> {
        let id = DestinationId::parse(id).map_err(|_| AdminError::NotFound("destination"))?;
        self.ports
            .control
            .destination(&p.workspace_id, &id)
            .await?
            .ok_or(AdminError::NotFound("destination"))
    }

    pub async fn destination(
        &self,
        p: &Principal,
        id: &str,
    ) -> Result<DestinationView, AdminError> {
        let d = self.destination_record(p, id).await?;
        Ok(DestinationView {
            egress_paused: self.ws(p).await?.security.egress_paused,
            ..DestinationView::from(&d)
        })
    }

    pub async fn create_destination(
        &self,
        p: &Principal,
        spec: DestinationSpec,
    ) -> Result<DestinationView, AdminError> {
        require(p, Role::Admin, "create destinations (they hold secrets)")?;
        self.check_urls(&spec).await?;
        let ws = self.open_ws(p).await?;
        let d = self.control().add_destination(&ws, spec).await?;
        self.changed(Change::Workspace(ws.id.clone()));
        self.audit(
            p,
            "destination.create",
            d.id.as_str(),
            json!({"name": d.name, "kind": d.kind, "secrets": d.secret_hints}),
        )
        .await?;
        Ok(DestinationView::from(&d))
    }

    /// The egress guard at configure time: the endpoint override and a webhook's URL.
    async fn check_urls(&self, spec: &DestinationSpec) -> Result<(), AdminError> {
        let urls = [
            ("endpoint", spec.endpoint.as_deref()),
            ("config.url", spec.config.get("url").and_then(Value::as_str)),
        ];
        for (field, url) in urls {
            let Some(url) = url else { continue };
            if let Err(e) = self.ports.url_guard.check(url).await {
                let detail = match e {
                    EgressError::Refused(why) => format!("is not allowed: {why}"),
                    EgressError::Connect(why) => format!("cannot be checked: {why}"),
                    EgressError::Timeout(_) => {
                        "cannot be checked: its host did not resolve in time".into()
                    }
                };
                return Err(AdminError::invalid(field, detail));
            }
        }
        Ok(())
    }

    pub async fn set_paused(
        &self,
        p: &Principal,
        id: &str,
        paused: bool,
    ) -> Result<DestinationView, AdminError> {
        require(p, Role::Editor, "pause or resume destinations")?;
        self.open_ws(p).await?;
        let d = self.destination_record(p, id).await?;
        let d = self
            .control()
            .set_paused(&p.workspace_id, &d.id, paused)
            .await?;
        self.changed(Change::Workspace(p.workspace_id.clone()));
        let action = if paused {
            "destination.pause"
        } else {
            "destination.resume"
        };
        self.audit(p, action, d.id.as_str(), json!({})).await?;
        Ok(DestinationView::from(&d))
    }

    pub async fn delete_destination(&self, p: &Principal, id: &str) -> Result<(), AdminError> {
        require(p, Role::Admin, "delete destinations")?;
        let d = self.destination_record(p, id).await?;
        self.ports
            .control
            .delete_destination(&p.workspace_id, &d.id)
            .await?;
        self.changed(Change::Workspace(p.workspace_id.clone()));
        self.audit(
            p,
            "destination.delete",
            d.id.as_str(),
            json!({"name": d.name, "kind": d.kind}),
        )
        .await?;
        Ok(())
    }

    /// One page of a destination's delivery log (at most 1,000 records), newest first.
    pub async fn delivery_log(
        &self,
        p: &Principal,
        id: &str,
        mut query: DeliveryQuery,
    ) -> Result<DeliveryPage, AdminError> {
        let d = self.destination_record(p, id).await?;
        query.limit = query.limit.clamp(1, 1000);
        Ok(self
            .ports
            .delivery_log
            .page(&p.workspace_id, &d.id, &query, self.now())
            .await?)
    }

    /// Moves a destination's dead letters (all, or those that died in a time range) back.
    pub async fn replay(
        &self,
        p: &Principal,
        id: &str,
        since: Option<OffsetDateTime>,
        until: Option<OffsetDateTime>,
    ) -> Result<u64, AdminError> {
        require(p, Role::Editor, "replay dead letters")?;
        self.open_ws(p).await?;
        let d = self.destination_record(p, id).await?;
        let moved = self
            .ports
            .queue
            .replay(
                d.kind,
                &ReplayFilter {
                    destination_id: Some(d.id.clone()),
                    since,
                    until,
                },
            )
            .await?;
        self.audit(
            p,
            "destination.replay",
            d.id.as_str(),
            json!({"messages": moved}),
        )
        .await?;
        Ok(moved)
    }

    // ---------------------------------------------------------------- events, audit

    pub async fn event_trace(&self, p: &Principal, id: &str) -> Result<EventTrace, AdminError> {
        let id = EventId::parse(id).ok_or(AdminError::NotFound("event"))?;
        let now = self.now();
        let event = self
            .ports
            .events
            .event(&p.workspace_id, &id, now)
            .await?
            .ok_or(AdminError::NotFound("event"))?;
        let deliveries = self
            .ports
            .delivery_log
            .for_event(&p.workspace_id, &id, now)
            .await?;
        Ok(EventTrace { event, deliveries })
    }

    /// The traces of the caller's workspace's events with this Segment `messageId` (normally
    /// one), while its dedup marker lives (see `EventReader::event_ids_by_message_id`).
    pub async fn event_traces_by_message_id(
        &self,
        p: &Principal,
        message_id: &MessageId,
    ) -> Result<Vec<EventTrace>, AdminError> {
        let now = self.now();
        let ids = self
            .ports
            .events
            .event_ids_by_message_id(&p.workspace_id, message_id, now)
            .await?;
        let mut traces = Vec::with_capacity(ids.len());
        for id in ids {
            let event = self.ports.events.event(&p.workspace_id, &id, now).await?;
            let Some(event) = event.filter(|e| e.message_id == *message_id) else {
                continue;
            };
            let deliveries = self
                .ports
                .delivery_log
                .for_event(&p.workspace_id, &id, now)
                .await?;
            traces.push(EventTrace { event, deliveries });
        }
        Ok(traces)
    }

    pub async fn audit_log(
        &self,
        p: &Principal,
        filter: AuditFilter,
    ) -> Result<Vec<AuditEntry>, AdminError> {
        require(p, Role::Admin, "read the audit log")?;
        Ok(self
            .ports
            .audit
            .list(&p.workspace_id, &filter, self.now())
            .await?)
    }

    /// Walks the whole keyed chain, from its checkpoint to its head, and reports the first
    /// seq that does not hold and why.
    pub async fn verify_audit_log(&self, p: &Principal) -> Result<Verification, AdminError> {
        require(p, Role::Admin, "verify the audit log")?;
        Ok(crate::audit::verify(self.ports.audit.as_ref(), &p.workspace_id).await?)
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

/// Whether `p` may receive a new secret of the personal token `key`: its own user, or the
/// operator CLI on the machine.
fn may_hold_personal_token(p: &Principal, key: &ApiKeyRecord) -> bool {
    let own = key
        .user_id
        .as_deref()
        .is_some_and(|user| p.actor == format!("user:{user}"));
    own || (p.key_id.is_none() && p.actor == Principal::operator(&p.workspace_id).actor)
}

fn created(issued: IssuedKey) -> CreatedKey {
    CreatedKey {
        key: KeyView::from(&issued.record),
        secret: issued.secret,
    }
}

fn view(ws: &Workspace) -> WorkspaceView {
    WorkspaceView {
        id: ws.id.clone(),
        name: ws.name.clone(),
        region: ws.region,
        created_at: ws.created_at,
        event_retention_days: ws.retention.event_days,
        ip_user_agent_retention_days: crate::workspace::Retention::OPERATIONAL_DAYS,
        consent_policy: ws.consent.clone(),
        encryption_key: match &ws.key_ref {
            crate::workspace::KeyRef::Platform => "platform".into(),
            crate::workspace::KeyRef::Customer { key_arn } => key_arn.clone(),
        },
    }
}
