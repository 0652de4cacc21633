//! Destinations and their tests: wire types and handlers.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use time::OffsetDateTime;
use tracklayer_core as tl;
use tracklayer_core::admin::test_event;
use tracklayer_core::admin::AdminError;
use utoipa::ToSchema;

use super::dto::{self, double_option, rfc3339, DestinationKind};
use super::extract::{Answer, Call, Created, Id, Json, NoContent};

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
/// `event_names`), secrets `signing_secret` (`whsec_` and base64 key bytes); `snapchat` config
/// `pixel_id` (+ `event_names`), secrets `access_token`; `pinterest` config `ad_account_id`
/// (digits; + `test_mode`, `event_names`), secrets `access_token`; `reddit` config
/// `ad_account_id` (+ `test_mode`, `event_names`), secrets `access_token`; `microsoft_ads`
/// config `tag_id` (digits; + `event_names`), secrets `access_token`; `segment` config
/// `identifiers` (`hashed` or `scrubbed`; + `event_names`), secrets `write_key`, `endpoint`
/// the Segment-compatible API's base URL (default `https://api.segment.io`); `linkedin` config
/// `conversion_id` (digits), `api_version` (`YYYYMM`), secrets `client_id`, `client_secret`,
/// `refresh_token` (OAuth 2.0; TrackLayer gets the access tokens), and `events` an allow-list;
/// `google_ads` config `customer_id` (10 digits), `conversion_action_id`, `api_version`
/// (`v22`; optional `login_customer_id`, `validate_only`), secrets the OAuth ones and
/// `developer_token`, and `events` an allow-list; `firehose` config `stream_name`, `region`
/// and `role_arn` (assumed with STS, external id = the workspace id) or else secrets
/// `aws_access_key_id` and `aws_secret_access_key`. Webhooks take no `endpoint`: they send to
/// `config.url`.
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
    /// Defaults to the kind's purposes (`advertising` for the ad platforms, `analytics` for GA4).
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

tracklayer_core::debug_fields!(NewDestination: kind);

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

tracklayer_core::debug_fields!(DestinationPatch: name);

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

impl From<test_event::TestResult> for TestResult {
    fn from(r: test_event::TestResult) -> Self {
        Self {
            outcome: r.outcome.into(),
            http_status: r.http_status,
            detail: r.detail,
            response_body: r.response_body,
            event_name: r.event_name,
        }
    }
}

dto::mirror! {
    /// How the test went.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum TestOutcome = test_event::TestOutcome {
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
}

/// The workspace's destinations. Secrets show as fingerprints only.
#[utoipa::path(get, path = "/admin/v1/destinations", operation_id = "listDestinations", tag = "destinations",
    responses((status = 200, description = "The destinations", body = Vec<Destination>)))]
pub async fn list_destinations(Call(s, p): Call) -> Answer<Vec<Destination>> {
    s.answer_each(s.admin().destinations(&p)).await
}

/// Creates a destination (admin: it holds secrets). Secrets are encrypted with the workspace
/// key and never returned.
#[utoipa::path(post, path = "/admin/v1/destinations", operation_id = "createDestination", tag = "destinations",
    request_body = NewDestination,
    responses(
        (status = 201, description = "The destination", body = Destination),
        (status = 403, description = "Only admins create destinations", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn create_destination(
    Call(s, p): Call,
    Json(body): Json<NewDestination>,
) -> Created<Destination> {
    let spec = body.parse().map_err(|e| s.fail(e))?;
    s.answer_created(s.admin().create_destination(&p, spec))
        .await
}

/// One destination.
#[utoipa::path(get, path = "/admin/v1/destinations/{id}", operation_id = "getDestination", tag = "destinations",
    params(dto::DestinationId),
    responses((status = 200, description = "The destination", body = Destination)))]
pub async fn get_destination(Call(s, p): Call, Id(id): Id) -> Answer<Destination> {
    s.answer(s.admin().destination(&p, &id)).await
}

/// Changes a destination: name, event filter, pause state and the settings that do not route
/// (editor); where it sends (`endpoint`, Meta `pixel_id`, GA4 `measurement_id`, TikTok
/// `pixel_code`, webhook `url`), its `consent_purposes` and its `secrets` (admin).
#[utoipa::path(patch, path = "/admin/v1/destinations/{id}", operation_id = "updateDestination", tag = "destinations",
    params(dto::DestinationId),
    request_body = DestinationPatch,
    responses(
        (status = 200, description = "The updated destination", body = Destination),
        (status = 403, description = "Viewers change nothing; only admins change secrets, where a destination sends and its consent purposes (`field` names the first such field)", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn update_destination(
    Call(s, p): Call,
    Id(id): Id,
    Json(body): Json<DestinationPatch>,
) -> Answer<Destination> {
    let patch = body.parse().map_err(|e| s.fail(e))?;
    s.answer(s.admin().update_destination(&p, &id, patch)).await
}

/// Deletes a destination (admin).
#[utoipa::path(delete, path = "/admin/v1/destinations/{id}", operation_id = "deleteDestination", tag = "destinations",
    params(dto::DestinationId),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Only admins delete destinations", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn delete_destination(Call(s, p): Call, Id(id): Id) -> NoContent {
    s.answer_no_content(s.admin().delete_destination(&p, &id))
        .await
}

/// Pauses a destination (editor): its messages wait in the queue.
#[utoipa::path(post, path = "/admin/v1/destinations/{id}/pause", operation_id = "pauseDestination", tag = "destinations",
    params(dto::DestinationId),
    responses(
        (status = 200, description = "The paused destination", body = Destination),
        (status = 403, description = "Viewers cannot pause", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn pause_destination(Call(s, p): Call, Id(id): Id) -> Answer<Destination> {
    s.answer(s.admin().set_paused(&p, &id, true)).await
}

/// Resumes a paused destination (editor).
#[utoipa::path(post, path = "/admin/v1/destinations/{id}/resume", operation_id = "resumeDestination", tag = "destinations",
    params(dto::DestinationId),
    responses(
        (status = 200, description = "The resumed destination", body = Destination),
        (status = 403, description = "Viewers cannot resume", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn resume_destination(Call(s, p): Call, Id(id): Id) -> Answer<Destination> {
    s.answer(s.admin().set_paused(&p, &id, false)).await
}

/// Sends one synthetic test event (not stored) through the destination's connector and
/// reports its answer (editor). Refused while the workspace's egress is paused. Audited as
/// `destination.test` with the outcome.
#[utoipa::path(post, path = "/admin/v1/destinations/{id}/test", operation_id = "testDestination", tag = "destinations",
    params(dto::DestinationId),
    responses(
        (status = 200, description = "What the destination answered", body = TestResult),
        (status = 403, description = "Viewers cannot send test events", body = dto::ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "Egress is paused for the workspace", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn test_destination(Call(s, p): Call, Id(id): Id) -> Answer<TestResult> {
    s.answer(s.tester().send_audited(s.admin(), &p, &id)).await
}
