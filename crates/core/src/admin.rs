//! The control plane's use cases, behind the admin API and the operator CLI.
//!
//! Every method takes the authenticated [`Principal`], checks its role (whitepaper §04) and
//! appends an audit entry for every mutation. The HTTP layer maps [`AdminError`] to
//! problem+json; objects of another workspace are simply not found.

mod lifecycle;

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::audit::{AuditEntry, AuditFilter, NewAuditEntry, Verification, Verifier};
use crate::bootstrap::{Control, ControlError, IssuedKey};
use crate::clock::{Clock, Ids};
use crate::consent::{ConsentPolicy, Purpose};
use crate::crypto::{aad, WorkspaceKeys};
use crate::destination::secret_opener::destination_secrets;
use crate::destination::{
    secret_hints, Destination, DestinationError, DestinationId, DestinationSpec, EventFilter,
};
use crate::error::{KeyError, StoreError};
use crate::event::{EventId, MessageId, StoredEvent};
use crate::keys::{ApiKey, ApiKeyRecord, KeyCache, KeyId, KeyKind, KeyRefusal, Role};
use crate::ports::{
    AuditLog, ControlStore, DeliveryLog, DeliveryQueue, DeliveryRecord, DsrStore, EgressError,
    EventStore, Keyring, ReplayFilter, UrlGuard,
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
    #[error("the {role:?} role cannot {action}")]
    Forbidden { role: Role, action: &'static str },
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
        }
    }
}

/// The ports the control plane uses.
#[allow(missing_debug_implementations)]
pub struct AdminPorts {
    pub control: Arc<dyn ControlStore>,
    pub audit: Arc<dyn AuditLog>,
    pub keyring: Arc<dyn Keyring>,
    pub events: Arc<dyn EventStore>,
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
    key_cache: KeyCache,
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
        Self {
            ports,
            region,
            key_cache: KeyCache::new(KeyCache::DEFAULT_TTL),
        }
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
            })
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

    /// Verifies a personal access token or service token (bcrypt, then cached ≤ 60 s).
    pub async fn authenticate(&self, presented: &str) -> Result<Principal, AdminError> {
        let key =
            ApiKey::parse(presented).map_err(|_| AdminError::Unauthorized(KeyRefusal::Unknown))?;
        if key.kind == KeyKind::Ingest {
            return Err(AdminError::Unauthorized(KeyRefusal::WrongKind));
        }
        if key.region != self.region {
            return Err(AdminError::WrongRegion(key.region));
        }
        let now = self.now();
        let record = match self.key_cache.get(&key, now) {
            Some(r) => r,
            None => {
                let record = self
                    .ports
                    .control
                    .api_key(&key.id, now)
                    .await?
                    .ok_or(AdminError::Unauthorized(KeyRefusal::Unknown))?;
                let verifier = record.verifier.clone();
                let check = ApiKey::parse(key.expose())
                    .map_err(|_| AdminError::Unauthorized(KeyRefusal::Unknown))?;
                let ok = tokio::task::spawn_blocking(move || check.matches(&verifier))
                    .await
                    .unwrap_or(false);
                if !ok {
                    return Err(AdminError::Unauthorized(KeyRefusal::Unknown));
                }
                // Closure revokes every key, the caller's last; a key of a closed workspace
                // that escaped (an attempt that failed in between) is refused all the same.
                let open = self
                    .ports
                    .control
                    .workspace(&record.workspace_id, now)
                    .await?
                    .is_some_and(|ws| !ws.is_closed());
                if !open {
                    return Err(AdminError::Unauthorized(KeyRefusal::Revoked));
                }
                self.key_cache.put(&key, record.clone(), now);
                record
            }
        };
        if let Some(refusal) = record.refusal(now) {
            return Err(AdminError::Unauthorized(refusal));
        }
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
            let name = name.trim().to_owned();
            if name.is_empty() || name.chars().count() > 100 {
                return Err(AdminError::invalid("name", "must be 1 to 100 characters"));
            }
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

    pub async fn put_security(
        &self,
        p: &Principal,
        settings: SecuritySettings,
    ) -> Result<SecuritySettings, AdminError> {
        require(p, Role::Admin, "change security settings")?;
        let mut ws = self.open_ws(p).await?;
        let summary = json!({
            "ip_blocklist": settings.ip_blocklist,
            "egress_paused": settings.egress_paused,
        });
        ws.security = settings;
        self.save_ws(&ws).await?;
        self.audit(p, "security.update", "workspace", summary)
            .await?;
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

    async fn admins(&self, ws: &WorkspaceId) -> Result<usize, AdminError> {
        Ok(self
            .ports
            .control
            .users(ws, self.now())
            .await?
            .iter()
            .filter(|u| u.role == Role::Admin)
            .count())
    }

    pub async fn set_role(&self, p: &Principal, id: &str, role: Role) -> Result<User, AdminError> {
        require(p, Role::Admin, "change roles")?;
        self.open_ws(p).await?;
        let mut user = self
            .ports
            .control
            .user(&p.workspace_id, id, self.now())
            .await?
            .ok_or(AdminError::NotFound("user"))?;
        if user.role == Role::Admin
            && role != Role::Admin
            && self.admins(&p.workspace_id).await? <= 1
        {
            return Err(AdminError::Conflict(
                "the last admin cannot be demoted".into(),
            ));
        }
        let from = user.role;
        user.role = role;
        self.ports.control.update_user(&user).await?;
        self.key_cache.clear();
        self.audit(p, "user.set_role", id, json!({"from": from, "to": role}))
            .await?;
        Ok(user)
    }

    pub async fn remove_user(&self, p: &Principal, id: &str) -> Result<(), AdminError> {
        require(p, Role::Admin, "remove users")?;
        let user = self
            .ports
            .control
            .user(&p.workspace_id, id, self.now())
            .await?
            .ok_or(AdminError::NotFound("user"))?;
        if user.role == Role::Admin && self.admins(&p.workspace_id).await? <= 1 {
            return Err(AdminError::Conflict(
                "the last admin cannot be removed".into(),
            ));
        }
        self.ports.control.delete_user(&p.workspace_id, id).await?;
        // Their personal tokens stop working at once.
        for key in self
            .ports
            .control
            .api_keys(&p.workspace_id, self.now())
            .await?
        {
            if key.user_id.as_deref() == Some(id) && key.revoked_at.is_none() {
                self.control().revoke_key(&key).await?;
                self.key_cache.evict(&key.id);
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
        if name.chars().count() > 100 {
            return Err(AdminError::invalid(
                "name",
                "must be at most 100 characters",
            ));
        }
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
        self.key_cache.evict(&old.id);
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
        self.key_cache.evict(&revoked.id);
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
        self.audit(
            p,
            "destination.create",
            d.id.as_str(),
            json!({"name": d.name, "kind": d.kind, "secrets": d.secret_hints}),
        )
        .await?;
        Ok(DestinationView::from(&d))
    }

    pub async fn update_destination(
        &self,
        p: &Principal,
        id: &str,
        patch: DestinationPatch,
    ) -> Result<DestinationView, AdminError> {
        require(p, Role::Editor, "change destinations")?;
        let mut d = self.destination_record(p, id).await?;
        let ws = self.open_ws(p).await?;
        // Validate the result as a whole, like a create.
        let keys = WorkspaceKeys::new(
            &self
                .ports
                .keyring
                .unwrap_data_key(&ws.id, &ws.key_ref, &ws.data_key)
                .await?,
        );
        let secrets_aad = aad("secrets", &ws.id, d.id.as_str());
        let secrets: Value = match &patch.secrets {
            Some(s) => {
                require(p, Role::Admin, "change destination secrets")?;
                s.clone()
            }
            None => destination_secrets(&keys, &d)?,
        };
        let spec = DestinationSpec {
            name: patch.name.clone().unwrap_or_else(|| d.name.clone()),
            kind: d.kind,
            config: patch.config.clone().unwrap_or_else(|| d.config.clone()),
            secrets: secrets.clone(),
            consent_purposes: Some(
                patch
                    .consent_purposes
                    .clone()
                    .unwrap_or_else(|| d.consent_purposes.clone()),
            ),
            events: patch.events.clone().unwrap_or_else(|| d.events.clone()),
            endpoint: patch.endpoint.clone().unwrap_or_else(|| d.endpoint.clone()),
            paused: patch.paused.unwrap_or(d.paused),
        };
        spec.validate()?;
        self.check_urls(&spec).await?;
        let mut changed: Vec<&str> = Vec::new();
        if patch.name.is_some() {
            changed.push("name");
        }
        if patch.config.is_some() {
            changed.push("config");
        }
        if patch.consent_purposes.is_some() {
            changed.push("consent_purposes");
        }
        if patch.events.is_some() {
            changed.push("events");
        }
        if patch.endpoint.is_some() {
            changed.push("endpoint");
        }
        if patch.paused.is_some() {
            changed.push("paused");
        }
        if patch.secrets.is_some() {
            changed.push("secrets");
            let mut nonce = [0u8; 12];
            self.ports.ids.fill(&mut nonce);
            let plain = SecretString::from(secrets.to_string());
            d.secrets = keys.seal(nonce, &secrets_aad, plain.expose_secret().as_bytes());
            d.secret_hints = secret_hints(&secrets);
        }
        d.name = spec.name.trim().to_owned();
        d.config = spec.config;
        d.consent_purposes = spec.consent_purposes.unwrap_or_default();
        d.events = spec.events;
        d.endpoint = spec.endpoint;
        d.paused = spec.paused;
        d.updated_at = self.now();
        self.ports.control.put_destination(&d).await?;
        self.audit(
            p,
            "destination.update",
            d.id.as_str(),
            json!({"changed": changed, "secrets": d.secret_hints}),
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
        self.audit(
            p,
            "destination.delete",
            d.id.as_str(),
            json!({"name": d.name, "kind": d.kind}),
        )
        .await?;
        Ok(())
    }

    pub async fn delivery_log(
        &self,
        p: &Principal,
        id: &str,
        limit: usize,
    ) -> Result<Vec<DeliveryRecord>, AdminError> {
        let d = self.destination_record(p, id).await?;
        Ok(self
            .ports
            .delivery_log
            .for_destination(&p.workspace_id, &d.id, limit.clamp(1, 1000), self.now())
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

    /// The traces of the unexpired events sent with this `messageId`, oldest first (one, or
    /// several when the id came again after the 24-hour dedup window). Any role, like a trace.
    pub async fn event_traces_by_message_id(
        &self,
        p: &Principal,
        message_id: &MessageId,
    ) -> Result<Vec<EventTrace>, AdminError> {
        let now = self.now();
        let events = self
            .ports
            .events
            .events_by_message_id(&p.workspace_id, message_id, now)
            .await?;
        let mut traces = Vec::with_capacity(events.len());
        for event in events {
            let deliveries = self
                .ports
                .delivery_log
                .for_event(&p.workspace_id, &event.event_id, now)
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

    /// Walks the whole chain and reports the first broken link.
    pub async fn verify_audit_log(&self, p: &Principal) -> Result<Verification, AdminError> {
        require(p, Role::Admin, "verify the audit log")?;
        let mut v = Verifier::default();
        let mut after = None;
        loop {
            let page = self
                .ports
                .audit
                .list(
                    &p.workspace_id,
                    &AuditFilter {
                        after,
                        limit: 1000,
                        ..Default::default()
                    },
                    self.now(),
                )
                .await?;
            page.iter().for_each(|e| v.feed(e));
            match page.last() {
                Some(last) if page.len() == 1000 => after = Some(last.seq),
                _ => break,
            }
        }
        Ok(v.finish())
    }
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
