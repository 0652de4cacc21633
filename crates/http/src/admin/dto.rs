//! The admin API's wire types: what requests carry and what responses show.
//!
//! These mirror the control plane's views (`tracklayer_core::admin`) instead of deriving the
//! OpenAPI schema on the core types, so that the core keeps no HTTP or OpenAPI concern and the
//! documented schema is, by construction, the shape that is serialized: every response is built
//! from one of these types. Requests are parsed here into the core's domain types (parse, don't
//! validate); a rule the schema cannot express is left to the core and answers 422.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use tracklayer_core as tl;
use tracklayer_core::admin::AdminError;
use utoipa::ToSchema;

// ---------------------------------------------------------------------------------------------
// Shared enums

/// An admin API role (whitepaper §04): `viewer` < `editor` < `admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Editor,
    Admin,
}

impl From<Role> for tl::keys::Role {
    fn from(r: Role) -> Self {
        match r {
            Role::Viewer => Self::Viewer,
            Role::Editor => Self::Editor,
            Role::Admin => Self::Admin,
        }
    }
}

impl From<tl::keys::Role> for Role {
    fn from(r: tl::keys::Role) -> Self {
        match r {
            tl::keys::Role::Viewer => Self::Viewer,
            tl::keys::Role::Editor => Self::Editor,
            tl::keys::Role::Admin => Self::Admin,
        }
    }
}

/// A residency region; fixed when the workspace is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Region {
    Us,
    Eu,
}

impl From<tl::workspace::Region> for Region {
    fn from(r: tl::workspace::Region) -> Self {
        match r {
            tl::workspace::Region::Us => Self::Us,
            tl::workspace::Region::Eu => Self::Eu,
        }
    }
}

/// A destination's vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DestinationKind {
    MetaCapi,
    Ga4,
    Tiktok,
    Webhook,
}

impl From<DestinationKind> for tl::destination::DestinationKind {
    fn from(k: DestinationKind) -> Self {
        match k {
            DestinationKind::MetaCapi => Self::MetaCapi,
            DestinationKind::Ga4 => Self::Ga4,
            DestinationKind::Tiktok => Self::Tiktok,
            DestinationKind::Webhook => Self::Webhook,
        }
    }
}

impl From<tl::destination::DestinationKind> for DestinationKind {
    fn from(k: tl::destination::DestinationKind) -> Self {
        match k {
            tl::destination::DestinationKind::MetaCapi => Self::MetaCapi,
            tl::destination::DestinationKind::Ga4 => Self::Ga4,
            tl::destination::DestinationKind::Tiktok => Self::Tiktok,
            tl::destination::DestinationKind::Webhook => Self::Webhook,
        }
    }
}

pub(super) fn rfc3339<S: serde::Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    time::serde::rfc3339::serialize(t, s)
}

fn rfc3339_opt<S: serde::Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
    time::serde::rfc3339::option::serialize(t, s)
}

/// An optional integer. JSON Schema counts `176.0` as an integer, so an integral float is one.
pub(super) fn integer<'de, D: Deserializer<'de>, T: TryFrom<i64>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    use serde::de::Error;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    let whole = n.as_i64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            .map(|f| f as i64)
    });
    whole
        .and_then(|w| T::try_from(w).ok())
        .map(Some)
        .ok_or_else(|| D::Error::custom(format!("{n} is not an integer in range")))
}

/// A nested object. serde would also read a struct from an array of its fields; the schema
/// says object, so an array is refused.
fn object_only<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned>(
    d: D,
) -> Result<Option<T>, D::Error> {
    use serde::de::Error;
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        v @ Value::Object(_) => serde_json::from_value(v)
            .map(Some)
            .map_err(D::Error::custom),
        _ => Err(D::Error::custom("invalid type: expected an object")),
    }
}

/// An optional RFC 3339 time (with the lowercase `t` and `z` RFC 3339 allows).
fn rfc3339_in<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OffsetDateTime>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) => super::extract::parse_time(&s)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom("not an RFC 3339 date-time")),
    }
}

/// `Some` for a given value, `None` when the field is absent; an explicit `null` is refused.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// `Some(None)` for an explicit `null`, `None` when the field is absent.
fn double_option<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

// ---------------------------------------------------------------------------------------------
// Workspace, consent policy, security

/// What happens to a purpose when an event carries no consent signal for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stance {
    /// Denied unless the visitor said yes.
    OptIn,
    /// Granted unless the visitor said no (or sent GPC, for advertising).
    OptOut,
}

/// A workspace's consent rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentPolicy {
    /// Default for visitors in the EU/EEA/UK/CH.
    pub eu_default: Stance,
    /// Default for everyone else.
    pub us_default: Stance,
    /// Treat Global Privacy Control as an opt-out of advertising.
    pub honor_gpc: bool,
    /// Server traffic's IP and user agent count as the visitor's (default false: only a
    /// browser's request, with `Origin`, stands in for an event's missing `context.ip`).
    #[serde(default)]
    pub request_ip_as_client_ip: bool,
}

impl From<ConsentPolicy> for tl::consent::ConsentPolicy {
    fn from(p: ConsentPolicy) -> Self {
        let stance = |s: Stance| match s {
            Stance::OptIn => tl::consent::Stance::OptIn,
            Stance::OptOut => tl::consent::Stance::OptOut,
        };
        Self {
            eu_default: stance(p.eu_default),
            us_default: stance(p.us_default),
            honor_gpc: p.honor_gpc,
            request_ip_as_client_ip: p.request_ip_as_client_ip,
        }
    }
}

impl From<&tl::consent::ConsentPolicy> for ConsentPolicy {
    fn from(p: &tl::consent::ConsentPolicy) -> Self {
        let stance = |s: tl::consent::Stance| match s {
            tl::consent::Stance::OptIn => Stance::OptIn,
            tl::consent::Stance::OptOut => Stance::OptOut,
        };
        Self {
            eu_default: stance(p.eu_default),
            us_default: stance(p.us_default),
            honor_gpc: p.honor_gpc,
            request_ip_as_client_ip: p.request_ip_as_client_ip,
        }
    }
}

/// A workspace.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Workspace {
    /// `ws_<region>_<id>`.
    pub id: String,
    pub name: String,
    /// Where the workspace's data lives; immutable.
    pub region: Region,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: OffsetDateTime,
    /// How long event metadata and pseudonymous ids are kept (1–365 days).
    #[schema(minimum = 1, maximum = 365)]
    pub event_retention_days: u16,
    /// How long IP addresses and user agents are kept: fixed at 30 days.
    pub ip_user_agent_retention_days: i64,
    pub consent_policy: ConsentPolicy,
    /// `platform`, or the ARN of the customer's own key (BYOK).
    pub encryption_key: String,
}

impl From<tl::admin::WorkspaceView> for Workspace {
    fn from(v: tl::admin::WorkspaceView) -> Self {
        Self {
            id: v.id.to_string(),
            name: v.name,
            region: v.region.into(),
            created_at: v.created_at,
            event_retention_days: v.event_retention_days,
            ip_user_agent_retention_days: v.ip_user_agent_retention_days,
            consent_policy: (&v.consent_policy).into(),
            encryption_key: v.encryption_key,
        }
    }
}

/// The workspace settings to change; absent fields stay as they are. Renaming and the
/// consent policy need `editor`; retention needs `admin`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspacePatch {
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "integer")]
    #[schema(minimum = 1, maximum = 365)]
    pub event_retention_days: Option<u16>,
    #[serde(default, deserialize_with = "object_only")]
    pub consent_policy: Option<ConsentPolicy>,
}

impl From<WorkspacePatch> for tl::admin::WorkspacePatch {
    fn from(p: WorkspacePatch) -> Self {
        Self {
            name: p.name,
            event_retention_days: p.event_retention_days,
            consent_policy: p.consent_policy.map(Into::into),
        }
    }
}

/// Incident containment: an ingest blocklist and the "pause all egress" switch. Also the
/// schema of a `PUT` body (read as a [`SecurityPatch`] that must name every field), hence
/// `deny_unknown_fields` (`additionalProperties: false`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecuritySettings {
    /// Client addresses (an IP or a CIDR block) whose tracking requests are refused.
    #[schema(max_items = 1000, example = json!(["203.0.113.0/24", "2001:db8::/32"]))]
    pub ip_blocklist: Vec<String>,
    /// Stop every delivery of the workspace; queued messages wait, nothing is lost.
    pub egress_paused: bool,
}

/// The body of `PUT /admin/v1/security` (every field required) and of `PATCH` (an absent
/// field stays as it is).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityPatch {
    /// Client addresses (an IP or a CIDR block) whose tracking requests are refused.
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false, max_items = 1000, example = json!(["203.0.113.0/24", "2001:db8::/32"]))]
    pub ip_blocklist: Option<Vec<String>>,
    /// Stop every delivery of the workspace; queued messages wait, nothing is lost.
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false)]
    pub egress_paused: Option<bool>,
}

impl SecurityPatch {
    pub const MAX_BLOCKLIST: usize = 1000;

    /// The change this patch asks for.
    pub fn parse(self) -> Result<tl::admin::SecurityPatch, AdminError> {
        let ip_blocklist = match self.ip_blocklist {
            None => None,
            Some(list) if list.len() > Self::MAX_BLOCKLIST => {
                return Err(AdminError::invalid("ip_blocklist", "at most 1000 entries"));
            }
            Some(list) => Some(
                list.iter()
                    .enumerate()
                    .map(|(i, s)| {
                        tl::workspace::Cidr::parse(s).map_err(|e| {
                            AdminError::invalid(format!("ip_blocklist[{i}]"), e.to_string())
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        Ok(tl::admin::SecurityPatch {
            ip_blocklist,
            egress_paused: self.egress_paused,
        })
    }

    /// The whole settings a `PUT` gives: a missing field is refused, naming it, so a
    /// replacement never silently wipes what it left out.
    pub fn parse_whole(self) -> Result<tl::workspace::SecuritySettings, AdminError> {
        let patch = self.parse()?;
        let missing = |field: &str| {
            AdminError::invalid(
                field,
                "required: PUT replaces every field; use PATCH to change some",
            )
        };
        Ok(tl::workspace::SecuritySettings {
            ip_blocklist: patch.ip_blocklist.ok_or_else(|| missing("ip_blocklist"))?,
            egress_paused: patch
                .egress_paused
                .ok_or_else(|| missing("egress_paused"))?,
        })
    }
}

impl From<tl::workspace::SecuritySettings> for SecuritySettings {
    fn from(s: tl::workspace::SecuritySettings) -> Self {
        Self {
            ip_blocklist: s.ip_blocklist.into_iter().map(String::from).collect(),
            egress_paused: s.egress_paused,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Users

/// A user of the admin API.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct User {
    /// `usr_…`
    pub id: String,
    pub email: String,
    pub role: Role,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<tl::workspace::User> for User {
    fn from(u: tl::workspace::User) -> Self {
        Self {
            id: u.id,
            email: u.email,
            role: u.role.into(),
            created_at: u.created_at,
        }
    }
}

/// Whom to invite, with which role.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteUser {
    #[schema(max_length = 254, format = Email, example = "ops@example.com")]
    pub email: String,
    pub role: Role,
}

/// A user's new role.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRole {
    pub role: Role,
}

// ---------------------------------------------------------------------------------------------
// API keys

/// What a key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// An ingest write key (tracking API only).
    Ingest,
    /// A user's personal access token (admin API).
    Pat,
    /// A service token with a role, for automation (admin API).
    Svc,
}

impl From<tl::keys::KeyKind> for KeyKind {
    fn from(k: tl::keys::KeyKind) -> Self {
        match k {
            tl::keys::KeyKind::Ingest => Self::Ingest,
            tl::keys::KeyKind::Pat => Self::Pat,
            tl::keys::KeyKind::Svc => Self::Svc,
        }
    }
}

/// The kinds of key the API creates (personal tokens come with users).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NewKeyKind {
    Ingest,
    Svc,
}

/// A key as listings show it: never its secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKey {
    /// The key's public id (16 characters).
    pub id: String,
    /// The first characters of the key, safe to show: `tl_<kind>_<region>_<id>`.
    pub prefix: String,
    pub kind: KeyKind,
    /// The role of a service token or personal token; `null` for ingest keys.
    pub role: Option<Role>,
    pub name: String,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the key stops working (at most 90 days after creation; sooner once rotated).
    #[serde(serialize_with = "rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(serialize_with = "rfc3339_opt")]
    pub revoked_at: Option<OffsetDateTime>,
    #[serde(serialize_with = "rfc3339_opt")]
    pub last_used_at: Option<OffsetDateTime>,
}

impl From<tl::admin::KeyView> for ApiKey {
    fn from(k: tl::admin::KeyView) -> Self {
        Self {
            id: k.id.to_string(),
            prefix: k.prefix,
            kind: k.kind.into(),
            role: k.role.map(Into::into),
            name: k.name,
            created_at: k.created_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            last_used_at: k.last_used_at,
        }
    }
}

/// A new key and its secret. The secret is shown this once and never again.
#[derive(Serialize, ToSchema)]
pub struct CreatedApiKey {
    pub key: ApiKey,
    /// The whole key, `tl_<kind>_<region>_<id>_<secret>`.
    pub secret: String,
}

impl std::fmt::Debug for CreatedApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedApiKey")
            .field("key", &self.key.id)
            .finish_non_exhaustive()
    }
}

impl From<tl::admin::CreatedKey> for CreatedApiKey {
    fn from(c: tl::admin::CreatedKey) -> Self {
        use secrecy::ExposeSecret;
        Self {
            key: c.key.into(),
            secret: c.secret.expose_secret().to_owned(),
        }
    }
}

/// An ingest write key (no role) or a service token (with a role).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    pub kind: NewKeyKind,
    /// Required for service tokens; ingest keys have none.
    #[serde(default)]
    pub role: Option<Role>,
    #[serde(default)]
    #[schema(max_length = 100)]
    pub name: Option<String>,
    /// Days until the key expires: 1 to 90 (default 90).
    #[serde(default, deserialize_with = "integer")]
    #[schema(minimum = 1, maximum = 90)]
    pub expires_in_days: Option<i64>,
}

impl From<NewApiKey> for tl::admin::KeyRequest {
    fn from(k: NewApiKey) -> Self {
        Self {
            kind: match k.kind {
                NewKeyKind::Ingest => tl::keys::KeyKind::Ingest,
                NewKeyKind::Svc => tl::keys::KeyKind::Svc,
            },
            role: k.role.map(Into::into),
            name: k.name,
            expires_in_days: k.expires_in_days,
        }
    }
}

/// How long the old key keeps working next to the new one.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateApiKey {
    /// Days the old key keeps working: 0 to 7 (default 7).
    #[serde(default, deserialize_with = "integer")]
    #[schema(minimum = 0, maximum = 7)]
    pub overlap_days: Option<i64>,
}

// ---------------------------------------------------------------------------------------------
// Destinations

/// Which event names a destination receives: `"all"`, `{"allow": [...]}` or `{"deny": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventFilter {
    All,
    Allow(BTreeSet<String>),
    Deny(BTreeSet<String>),
}

/// Written by hand: an externally tagged variant is an object with exactly one key, which the
/// derived schema does not say (it allows more keys).
impl utoipa::PartialSchema for EventFilter {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Type,
        };
        let variant = |key: &str| {
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property(
                    key,
                    ArrayBuilder::new()
                        .items(ObjectBuilder::new().schema_type(Type::String))
                        .unique_items(true),
                )
                .required(key)
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        };
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["all"])),
            )
            .item(variant("allow"))
            .item(variant("deny"))
            .description(Some(
                "Which event names a destination receives: `\"all\"`, `{\"allow\": [...]}` or `{\"deny\": [...]}`.",
            ))
            .into()
    }
}

impl ToSchema for EventFilter {}

impl From<EventFilter> for tl::destination::EventFilter {
    fn from(f: EventFilter) -> Self {
        match f {
            EventFilter::All => Self::All,
            EventFilter::Allow(n) => Self::Allow(n),
            EventFilter::Deny(n) => Self::Deny(n),
        }
    }
}

impl From<tl::destination::EventFilter> for EventFilter {
    fn from(f: tl::destination::EventFilter) -> Self {
        match f {
            tl::destination::EventFilter::All => Self::All,
            tl::destination::EventFilter::Allow(n) => Self::Allow(n),
            tl::destination::EventFilter::Deny(n) => Self::Deny(n),
        }
    }
}

/// What may be shown of a secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SecretHint {
    /// The first 12 hex digits of the secret's SHA-256.
    pub fingerprint: String,
    /// The secret's last 4 characters.
    pub last4: String,
}

/// A destination. Secrets are write-only: only their fingerprints are shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Destination {
    /// `dst_…`
    pub id: String,
    pub name: String,
    pub kind: DestinationKind,
    /// Non-secret settings of the kind (pixel id, measurement id, URL, ...).
    #[schema(value_type = Object)]
    pub config: Value,
    /// Per secret: its fingerprint and last 4 characters.
    pub secrets: BTreeMap<String, SecretHint>,
    /// Consent purposes an event needs to be sent here.
    pub consent_purposes: Vec<String>,
    pub events: EventFilter,
    /// Overrides the vendor's base URL (or the webhook URL); `null` for the default.
    pub endpoint: Option<String>,
    pub paused: bool,
    /// The workspace's egress is paused (`PUT /admin/v1/security`): nothing is sent here
    /// until it resumes. Reported by `GET /destinations` and `GET /destinations/{id}`.
    pub egress_paused: bool,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<tl::admin::DestinationView> for Destination {
    fn from(d: tl::admin::DestinationView) -> Self {
        Self {
            id: d.id.to_string(),
            name: d.name,
            kind: d.kind.into(),
            config: match d.config {
                Value::Object(o) => Value::Object(o),
                _ => Value::Object(Default::default()),
            },
            secrets: serde_json::from_value(d.secrets).unwrap_or_default(),
            consent_purposes: d.consent_purposes.into_iter().map(String::from).collect(),
            events: d.events.into(),
            endpoint: d.endpoint,
            paused: d.paused,
            egress_paused: d.egress_paused,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

fn purposes(list: Vec<String>) -> Result<Vec<tl::consent::Purpose>, AdminError> {
    list.iter()
        .enumerate()
        .map(|(i, p)| {
            tl::consent::Purpose::parse(p)
                .map_err(|e| AdminError::invalid(format!("consent_purposes[{i}]"), e.to_string()))
        })
        .collect()
}

fn object(v: Option<BTreeMap<String, Value>>) -> Value {
    Value::Object(v.unwrap_or_default().into_iter().collect())
}

fn secrets(v: BTreeMap<String, String>) -> Value {
    Value::Object(v.into_iter().map(|(k, s)| (k, Value::String(s))).collect())
}

/// A new destination. Which `config` and `secrets` keys a kind needs:
/// `meta_capi` config `pixel_id`, `api_version` (+ `test_event_code`, `event_names`), secrets
/// `access_token` (+ `app_secret`); `ga4` config `measurement_id` (+ `validate`,
/// `event_names`), secrets `api_secret`; `tiktok` config `pixel_code` (+ `test_event_code`,
/// `event_names`), secrets `access_token`; `webhook` config `url` (+ `batch_size`,
/// `event_names`), secrets `signing_secret` (`whsec_` and base64 key bytes). Webhooks take no
/// `endpoint`: they send to `config.url`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDestination {
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: String,
    pub kind: DestinationKind,
    #[serde(default)]
    pub config: Option<BTreeMap<String, Value>>,
    /// Write-only: stored encrypted, never returned.
    #[serde(default)]
    pub secrets: Option<BTreeMap<String, String>>,
    /// Defaults to the kind's purposes (`advertising` for Meta and TikTok, `analytics` for GA4).
    #[serde(default)]
    pub consent_purposes: Option<Vec<PurposeName>>,
    #[serde(default)]
    pub events: Option<EventFilter>,
    #[serde(default)]
    #[schema(pattern = "^https?://")]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub paused: Option<bool>,
}

impl std::fmt::Debug for NewDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewDestination")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// A consent purpose: 1 to 64 letters, digits, `_` or `-` (stored lowercase).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(pattern = r"^\s*[A-Za-z0-9_-]{1,64}\s*$", example = "advertising")]
pub struct PurposeName(pub String);

impl NewDestination {
    pub fn parse(self) -> Result<tl::destination::DestinationSpec, AdminError> {
        Ok(tl::destination::DestinationSpec {
            name: self.name,
            kind: self.kind.into(),
            config: object(self.config),
            secrets: secrets(self.secrets.unwrap_or_default()),
            consent_purposes: self
                .consent_purposes
                .map(|p| purposes(p.into_iter().map(|n| n.0).collect()))
                .transpose()?,
            events: self.events.map(Into::into).unwrap_or_default(),
            endpoint: self.endpoint,
            paused: self.paused.unwrap_or(false),
        })
    }
}

/// Changes to a destination; absent fields stay as they are. `secrets` replaces all secrets
/// and needs `admin`, as does changing where it sends (`endpoint`, `config` `pixel_id`,
/// `measurement_id`, `pixel_code` or `url`) or its `consent_purposes`; the rest needs
/// `editor`. Webhooks take no `endpoint`: they send to `config.url`.
#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationPatch {
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: Option<String>,
    pub config: Option<BTreeMap<String, Value>>,
    /// Write-only: replaces every secret of the destination.
    pub secrets: Option<BTreeMap<String, String>>,
    pub consent_purposes: Option<Vec<PurposeName>>,
    pub events: Option<EventFilter>,
    /// `null` clears the override.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, pattern = "^https?://")]
    pub endpoint: Option<Option<String>>,
    pub paused: Option<bool>,
}

impl std::fmt::Debug for DestinationPatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DestinationPatch")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl DestinationPatch {
    pub fn parse(self) -> Result<tl::admin::DestinationPatch, AdminError> {
        Ok(tl::admin::DestinationPatch {
            name: self.name,
            config: self.config.map(|c| object(Some(c))),
            secrets: self.secrets.map(secrets),
            consent_purposes: self
                .consent_purposes
                .map(|p| purposes(p.into_iter().map(|n| n.0).collect()))
                .transpose()?,
            events: self.events.map(Into::into),
            endpoint: self.endpoint,
            paused: self.paused,
        })
    }
}

/// Which dead letters to move back to the queue: all, or those that died in a time range.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    #[serde(default, deserialize_with = "rfc3339_in")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub since: Option<OffsetDateTime>,
    #[serde(default, deserialize_with = "rfc3339_in")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub until: Option<OffsetDateTime>,
}

/// How many dead-lettered messages went back to the queue.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Replayed {
    pub destination_id: String,
    pub replayed_messages: u64,
}

/// Where one event stands with one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Delivered,
    /// Will be tried again.
    Retrying,
    /// In the dead-letter queue; it can be replayed.
    Dead,
    /// Never sent: too old for the destination, or not acceptable to it.
    Dropped,
}

/// One event's delivery to one destination.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Delivery {
    pub destination_id: String,
    /// `evt_…`
    pub event_id: String,
    pub status: DeliveryState,
    /// Why it was dropped.
    pub reason: Option<String>,
    pub attempts: u32,
    pub last_http_status: Option<u16>,
    pub last_error: Option<String>,
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(serialize_with = "rfc3339")]
    pub expires_at: OffsetDateTime,
}

impl From<tl::ports::DeliveryRecord> for Delivery {
    fn from(r: tl::ports::DeliveryRecord) -> Self {
        use tl::ports::DeliveryStatus as S;
        let (status, reason) = match r.status {
            S::Delivered => (DeliveryState::Delivered, None),
            S::Retrying => (DeliveryState::Retrying, None),
            S::Dead => (DeliveryState::Dead, None),
            S::Dropped(why) => (DeliveryState::Dropped, Some(why)),
        };
        Self {
            destination_id: r.destination_id.to_string(),
            event_id: r.event_id.to_string(),
            status,
            reason,
            attempts: r.attempts,
            last_http_status: r.last_http_status,
            last_error: r.last_error,
            updated_at: r.updated_at,
            expires_at: r.expires_at,
        }
    }
}

/// What a destination answered to a synthetic test event (which is not stored).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TestResult {
    pub outcome: TestOutcome,
    /// The destination's HTTP status, when it answered.
    pub http_status: Option<u16>,
    /// What happened, in words.
    pub detail: String,
    /// The start of the destination's answer (at most 1,000 characters; secrets redacted).
    pub response_body: Option<String>,
    /// The synthetic event's name.
    pub event_name: String,
}

/// How the test went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TestOutcome {
    /// The destination accepted the event.
    Delivered,
    /// The destination refused it (a 4xx other than 408/429, or a per-event error).
    Rejected,
    /// The destination failed in a way a real delivery would retry (408, 429, 5xx).
    Retryable,
    /// No answer: the connection failed or timed out.
    Unreachable,
    /// Not sent: the egress guard refused the URL, or the settings cannot make a request.
    NotSent,
}

// ---------------------------------------------------------------------------------------------
// Event trace

/// One consent decision, with its reason.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConsentDecision {
    pub allowed: bool,
    pub reason: String,
}

/// Why an event did or did not go to a destination.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Routing {
    pub destination_id: String,
    pub kind: DestinationKind,
    /// Queued for delivery.
    pub routed: bool,
    pub consent: ConsentDecision,
    /// Why it was not routed although consent allowed it.
    pub skipped: Option<String>,
}

/// The Segment call type of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    Track,
    Identify,
    Page,
    Screen,
    Group,
    Alias,
}

/// One event's story: received, consent decisions, deliveries. No raw identifier: only which
/// identifier fields the event carried.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventTrace {
    /// `evt_…`
    pub event_id: String,
    pub message_id: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub name: Option<String>,
    #[serde(serialize_with = "rfc3339")]
    pub timestamp: OffsetDateTime,
    #[serde(serialize_with = "rfc3339")]
    pub received_at: OffsetDateTime,
    #[serde(serialize_with = "rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Properties with every identifier removed.
    #[schema(value_type = Object)]
    pub properties: Value,
    /// Traits with every identifier removed.
    #[schema(value_type = Object)]
    pub traits: Value,
    /// The identifier fields the event carried (hashed at ingest; values never shown).
    pub identifier_fields: BTreeSet<String>,
    /// Identifier values dropped as invalid.
    pub invalid_identifiers: u32,
    pub routing: Vec<Routing>,
    pub deliveries: Vec<Delivery>,
}

fn as_object(v: Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(o),
        _ => Value::Object(Default::default()),
    }
}

impl From<tl::admin::EventTrace> for EventTrace {
    fn from(t: tl::admin::EventTrace) -> Self {
        use tl::event::EventType as T;
        let e = t.event;
        let identifier_fields = e
            .hashed
            .values()
            .flat_map(|fields| fields.keys())
            .filter_map(|f| serde_json::to_value(f).ok())
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        Self {
            event_id: e.event_id.to_string(),
            message_id: e.message_id.to_string(),
            event_type: match e.event_type {
                T::Track => EventType::Track,
                T::Identify => EventType::Identify,
                T::Page => EventType::Page,
                T::Screen => EventType::Screen,
                T::Group => EventType::Group,
                T::Alias => EventType::Alias,
            },
            name: e.name,
            timestamp: e.timestamp,
            received_at: e.received_at,
            expires_at: e.expires_at,
            properties: as_object(e.properties),
            traits: as_object(e.traits),
            identifier_fields,
            invalid_identifiers: e.invalid_identifiers,
            routing: e
                .routing
                .into_iter()
                .map(|r| Routing {
                    destination_id: r.destination_id.to_string(),
                    kind: r.kind.into(),
                    routed: r.routed,
                    consent: ConsentDecision {
                        allowed: r.consent.allowed,
                        reason: r.consent.reason,
                    },
                    skipped: r.skipped,
                })
                .collect(),
            deliveries: t.deliveries.into_iter().map(Into::into).collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Audit log

/// One entry of the keyed (HMAC-SHA256) audit chain.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEntry {
    pub workspace_id: String,
    pub seq: u64,
    #[serde(serialize_with = "rfc3339")]
    pub time: OffsetDateTime,
    /// `user:usr_…`, `svc:<key id>` or `cli:operator`.
    pub actor: String,
    /// `api_key.create`, `destination.update`, `user.invite`, ...
    pub action: String,
    /// The object acted on (`dst_…`, a key id, `workspace`).
    pub target: String,
    /// What changed; never a secret.
    #[schema(value_type = Object)]
    pub summary: Value,
    pub prev_hash: String,
    /// HMAC-SHA256(workspace audit key, canonical entry ‖ prev_hash), hex (SHA-256 for
    /// entries written before the keyed chain).
    pub hash: String,
}

impl From<tl::audit::AuditEntry> for AuditEntry {
    fn from(e: tl::audit::AuditEntry) -> Self {
        Self {
            workspace_id: e.workspace_id.to_string(),
            seq: e.seq,
            time: e.time,
            actor: e.actor,
            action: e.action,
            target: e.target,
            summary: as_object(e.summary),
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}

/// The result of walking the chain from its retention checkpoint to its head.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditVerification {
    pub valid: bool,
    pub entries_checked: u64,
    /// The first seq whose entry is missing, or whose link, HMAC or stored index does not
    /// hold (e.g. `7` with reason `hmac mismatch`).
    pub first_invalid_seq: Option<u64>,
    /// The same as `first_invalid_seq` (the earlier name, kept for compatibility).
    #[schema(deprecated)]
    pub first_broken_seq: Option<u64>,
    pub reason: Option<String>,
    /// The chain is keyed and anchored; false only for a chain written before the keyed
    /// chain, until its next entry migrates it.
    pub keyed: bool,
}

impl From<tl::audit::Verification> for AuditVerification {
    fn from(v: tl::audit::Verification) -> Self {
        Self {
            valid: v.valid,
            entries_checked: v.entries_checked,
            first_invalid_seq: v.first_invalid_seq,
            first_broken_seq: v.first_invalid_seq,
            reason: v.reason,
            keyed: v.keyed,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

/// An RFC 9457 problem: a stable `type`, a human `detail`, the field at fault.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Problem)]
pub struct ProblemDoc {
    /// A URI naming the kind of problem; stable.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    pub detail: String,
    /// The request field at fault (a body path such as `config.pixel_id`, or a parameter).
    pub field: Option<String>,
}
