//! Destinations: where permitted events go, and which purposes they need.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::consent::Purpose;
use crate::crypto::{Sealed, WorkspaceKeys};
use crate::deliver::oauth::TOKEN_SECRETS;
use crate::identity::Profile;
use crate::name::Name;
use crate::workspace::WorkspaceId;

mod firehose_rules;
pub mod secret_opener;
mod vendor_rules;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DestinationKind {
    MetaCapi,
    Ga4,
    Tiktok,
    Webhook,
    /// Snap Conversions API v3.
    Snapchat,
    /// Pinterest Conversions API v5.
    Pinterest,
    /// Reddit Conversions API v2.0.
    Reddit,
    /// Microsoft Advertising UET Conversions API (CAPI).
    MicrosoftAds,
    /// Any Segment-compatible HTTP tracking API (`/v1/batch`: Segment, RudderStack, ...).
    Segment,
    /// LinkedIn Conversions API (OAuth 2.0).
    Linkedin,
    /// Google Ads API click conversion upload (OAuth 2.0).
    GoogleAds,
    /// Amazon Data Firehose (`PutRecordBatch`): the customer's own stream.
    Firehose,
}

/// A Google Ads destination's required `config`: the account, the conversion action, the API
/// version.
const GOOGLE_ADS_IDS: &[&str] = &["customer_id", "conversion_action_id", "api_version"];
/// A Google Ads destination's secrets: the OAuth ones and the API's developer token.
const GOOGLE_ADS_SECRETS: [&str; 4] = [
    TOKEN_SECRETS[0],
    TOKEN_SECRETS[1],
    TOKEN_SECRETS[2],
    "developer_token",
];

impl DestinationKind {
    /// Every kind, in the order of their record codes ([`crate::event::codes`]): append only.
    pub const ALL: [DestinationKind; 12] = [
        Self::MetaCapi,
        Self::Ga4,
        Self::Tiktok,
        Self::Webhook,
        Self::Snapchat,
        Self::Pinterest,
        Self::Reddit,
        Self::MicrosoftAds,
        Self::Segment,
        Self::Linkedin,
        Self::GoogleAds,
        Self::Firehose,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::MetaCapi => "meta_capi",
            Self::Ga4 => "ga4",
            Self::Tiktok => "tiktok",
            Self::Webhook => "webhook",
            Self::Snapchat => "snapchat",
            Self::Pinterest => "pinterest",
            Self::Reddit => "reddit",
            Self::MicrosoftAds => "microsoft_ads",
            Self::Segment => "segment",
            Self::Linkedin => "linkedin",
            Self::GoogleAds => "google_ads",
            Self::Firehose => "firehose",
        }
    }

    /// The normalization profile of the identifiers this kind receives.
    pub fn profile(self) -> Profile {
        match self {
            // Webhooks get Meta-normalized hashes: the strictest published rules, and the
            // ones most receivers (CDPs, warehouses) match against.
            // Firehose too: a warehouse joins on the same hashes as a webhook receiver.
            Self::MetaCapi | Self::Webhook | Self::Segment | Self::Firehose => Profile::Meta,
            Self::Ga4 | Self::GoogleAds => Profile::Google,
            Self::Tiktok => Profile::TikTok,
            Self::Snapchat => Profile::Snapchat,
            Self::Pinterest => Profile::Pinterest,
            Self::Reddit => Profile::Reddit,
            Self::MicrosoftAds => Profile::Microsoft,
            Self::Linkedin => Profile::LinkedIn,
        }
    }

    /// The consent purposes a destination of this kind needs unless configured otherwise.
    pub fn default_purposes(self) -> Vec<Purpose> {
        match self {
            Self::MetaCapi
            | Self::Tiktok
            | Self::Snapchat
            | Self::Pinterest
            | Self::Reddit
            | Self::MicrosoftAds
            | Self::Linkedin
            | Self::GoogleAds => vec![Purpose::advertising()],
            Self::Ga4 | Self::Segment | Self::Firehose => vec![Purpose::analytics()],
            Self::Webhook => Vec::new(),
        }
    }

    /// Required keys of `config` and `secrets`.
    fn required(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            Self::MetaCapi => (&["pixel_id", "api_version"], &["access_token"]),
            Self::Ga4 => (&["measurement_id"], &["api_secret"]),
            Self::Tiktok => (&["pixel_code"], &["access_token"]),
            Self::Webhook => (&["url"], &["signing_secret"]),
            Self::Snapchat => (&["pixel_id"], &["access_token"]),
            Self::Pinterest | Self::Reddit => (&["ad_account_id"], &["access_token"]),
            Self::MicrosoftAds => (&["tag_id"], &["access_token"]),
            Self::Segment => (&["identifiers"], &["write_key"]),
            Self::Linkedin => (&["conversion_id", "api_version"], &TOKEN_SECRETS),
            Self::GoogleAds => (GOOGLE_ADS_IDS, &GOOGLE_ADS_SECRETS),
            // Credentials: `config.role_arn` or both static keys (`firehose_rules`).
            Self::Firehose => (&["stream_name", "region"], &[]),
        }
    }

    /// The `config` keys that say where events and credentials go (the account or pixel
    /// they are sent to, or a webhook's URL). Changing one, like the `endpoint` override,
    /// is the admin's: the sealed secrets stay attached and would follow the data.
    pub fn routing_config(self) -> &'static [&'static str] {
        match self {
            Self::MetaCapi => &["pixel_id"],
            Self::Ga4 => &["measurement_id"],
            Self::Tiktok => &["pixel_code"],
            Self::Webhook => &["url"],
            Self::Snapchat => &["pixel_id"],
            Self::Pinterest | Self::Reddit => &["ad_account_id"],
            Self::MicrosoftAds => &["tag_id"],
            // Hashed or scrubbed: whether identifiers follow the data is the admin's to change.
            Self::Segment => &["identifiers"],
            Self::Linkedin => &["conversion_id"],
            Self::GoogleAds => &["customer_id", "conversion_action_id", "login_customer_id"],
            Self::Firehose => &["stream_name", "region", "role_arn"],
        }
    }

    fn allowed(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            Self::MetaCapi => (
                &[
                    "pixel_id",
                    "api_version",
                    "test_event_code",
                    "event_names",
                    "action_source",
                ],
                &["access_token", "app_secret"],
            ),
            Self::Ga4 => (
                &["measurement_id", "validate", "event_names"],
                &["api_secret"],
            ),
            Self::Tiktok => (
                &["pixel_code", "test_event_code", "event_names"],
                &["access_token"],
            ),
            Self::Webhook => (&["url", "batch_size", "event_names"], &["signing_secret"]),
            Self::Snapchat => (&["pixel_id", "event_names"], &["access_token"]),
            Self::Pinterest | Self::Reddit => (
                &["ad_account_id", "test_mode", "event_names"],
                &["access_token"],
            ),
            Self::MicrosoftAds => (&["tag_id", "event_names"], &["access_token"]),
            Self::Segment => (&["identifiers", "event_names"], &["write_key"]),
            Self::Linkedin => (&["conversion_id", "api_version"], &TOKEN_SECRETS),
            Self::GoogleAds => (
                &[
                    "customer_id",
                    "conversion_action_id",
                    "api_version",
                    "login_customer_id",
                    "validate_only",
                ],
                &GOOGLE_ADS_SECRETS,
            ),
            Self::Firehose => (
                &["stream_name", "region", "role_arn"],
                &["aws_access_key_id", "aws_secret_access_key"],
            ),
        }
    }
}

impl fmt::Display for DestinationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DestinationKind {
    type Err = DestinationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let kinds: Vec<&str> = Self::ALL.iter().map(|k| k.as_str()).collect();
                DestinationError::new("kind", format!("must be one of {}", kinds.join(", ")))
            })
    }
}

/// `dst_<26 chars>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DestinationId(String);

impl DestinationId {
    pub fn new(unique: &str) -> Self {
        Self(format!("dst_{}", unique.to_ascii_lowercase()))
    }
    pub fn parse(s: &str) -> Result<Self, DestinationError> {
        let ok = s
            .strip_prefix("dst_")
            .is_some_and(|u| crate::newtype::lower_alnum(u, 40));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(DestinationError::new(
                "id",
                "not a destination id (dst_...)",
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DestinationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which event names a destination receives.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventFilter {
    #[default]
    All,
    Allow(BTreeSet<String>),
    Deny(BTreeSet<String>),
}

impl EventFilter {
    pub fn admits(&self, name: &str) -> bool {
        match self {
            Self::All => true,
            Self::Allow(names) => names.contains(name),
            Self::Deny(names) => !names.contains(name),
        }
    }
}

/// A field of a destination definition is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {detail}")]
pub struct DestinationError {
    pub field: String,
    pub detail: String,
}

impl DestinationError {
    pub fn new(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            detail: detail.into(),
        }
    }
}

/// A destination as stored. Secrets are sealed with the workspace data key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Destination {
    pub id: DestinationId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub kind: DestinationKind,
    pub config: Value,
    pub secrets: Sealed,
    /// Per secret its keyed fingerprint and last 4 characters, for display ([`secret_hints`]).
    pub secret_hints: Value,
    pub consent_purposes: Vec<Purpose>,
    pub events: EventFilter,
    pub endpoint: Option<String>,
    pub paused: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// The `action_source` values Meta's Conversions API accepts ("Server event parameters":
/// <https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/server-event>).
/// A Meta destination's `config.action_source` (the default for events that do not say where
/// they happened) must be one of them.
pub const META_ACTION_SOURCES: [&str; 9] = [
    "website",
    "app",
    "email",
    "phone_call",
    "chat",
    "physical_store",
    "system_generated",
    "business_messaging",
    "other",
];

/// A destination definition as a user submits it (before sealing).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationSpec {
    pub name: String,
    pub kind: DestinationKind,
    #[serde(default)]
    pub config: Value,
    #[serde(default)]
    pub secrets: Value,
    #[serde(default)]
    pub consent_purposes: Option<Vec<Purpose>>,
    #[serde(default)]
    pub events: EventFilter,
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub paused: bool,
}

impl fmt::Debug for DestinationSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DestinationSpec")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("secrets", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl DestinationSpec {
    /// Checks names, config and secrets against the kind. Returns the field at fault.
    pub fn validate(&self) -> Result<(), DestinationError> {
        Name::parse(&self.name).map_err(|e| DestinationError::new("name", e.to_string()))?;
        if let Some(purposes) = &self.consent_purposes {
            crate::consent::validate_purposes("consent_purposes", purposes)
                .map_err(|(field, detail)| DestinationError::new(field, detail))?;
        }
        let (req_cfg, req_sec) = self.kind.required();
        let (ok_cfg, ok_sec) = self.kind.allowed();
        check_object("config", &self.config, req_cfg, ok_cfg)?;
        check_object("secrets", &self.secrets, req_sec, ok_sec)?;
        let cfg = |k: &str| self.config.get(k).and_then(Value::as_str).unwrap_or("");
        match self.kind {
            DestinationKind::MetaCapi => {
                if !cfg("pixel_id").bytes().all(|b| b.is_ascii_digit()) {
                    return Err(DestinationError::new("config.pixel_id", "must be digits"));
                }
                let v = cfg("api_version");
                let ok = v.strip_prefix('v').is_some_and(|n| {
                    n.split('.').count() == 2 && n.split('.').all(|p| p.parse::<u16>().is_ok())
                });
                if !ok {
                    return Err(DestinationError::new(
                        "config.api_version",
                        "must look like v21.0",
                    ));
                }
                if let Some(source) = self.config.get("action_source") {
                    let known = source
                        .as_str()
                        .is_some_and(|s| META_ACTION_SOURCES.contains(&s));
                    if !known {
                        return Err(DestinationError::new(
                            "config.action_source",
                            format!("must be one of {}", META_ACTION_SOURCES.join(", ")),
                        ));
                    }
                }
            }
            DestinationKind::Ga4 => {
                let id = cfg("measurement_id");
                if !id.starts_with("G-") || id.len() < 4 {
                    return Err(DestinationError::new(
                        "config.measurement_id",
                        "must look like G-XXXXXXX",
                    ));
                }
            }
            DestinationKind::Tiktok => {}
            DestinationKind::Snapchat
            | DestinationKind::Pinterest
            | DestinationKind::Reddit
            | DestinationKind::MicrosoftAds
            | DestinationKind::Segment
            | DestinationKind::Linkedin
            | DestinationKind::GoogleAds => vendor_rules::validate(self)?,
            DestinationKind::Firehose => firehose_rules::validate(self)?,
            DestinationKind::Webhook => {
                if let Some(size) = self.config.get("batch_size") {
                    let ok = size.as_u64().is_some_and(|n| (1..=1000).contains(&n));
                    if !ok {
                        return Err(DestinationError::new(
                            "config.batch_size",
                            "must be an integer from 1 to 1000",
                        ));
                    }
                }
                let secret = self
                    .secrets
                    .get("signing_secret")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if !is_signing_secret(secret) {
                    return Err(DestinationError::new(
                        "secrets.signing_secret",
                        "must be whsec_ followed by base64 key bytes (Standard Webhooks)",
                    ));
                }
                // One place says where a webhook sends: its `config.url`.
                if self.endpoint.is_some() {
                    return Err(DestinationError::new(
                        "endpoint",
                        "webhooks send to config.url; the endpoint override is for the vendor kinds (set it to null)",
                    ));
                }
            }
        }
        if let Some(endpoint) = &self.endpoint {
            if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
                return Err(DestinationError::new("endpoint", "must be an http(s) URL"));
            }
        }
        Ok(())
    }

    pub fn purposes(&self) -> Vec<Purpose> {
        self.consent_purposes
            .clone()
            .unwrap_or_else(|| self.kind.default_purposes())
    }
}

/// `whsec_` and the standard base64 of at least one key byte, as the webhook connector
/// decodes it to sign (Standard Webhooks).
fn is_signing_secret(secret: &str) -> bool {
    use base64::Engine as _;
    secret
        .trim()
        .strip_prefix("whsec_")
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .is_some_and(|key| !key.is_empty())
}

fn check_object(
    field: &str,
    value: &Value,
    required: &[&str],
    allowed: &[&str],
) -> Result<(), DestinationError> {
    let empty = serde_json::Map::new();
    let obj = match value {
        Value::Object(o) => o,
        Value::Null => &empty,
        _ => return Err(DestinationError::new(field, "must be an object")),
    };
    for key in required {
        match obj.get(*key) {
            Some(Value::String(s)) if !s.trim().is_empty() => {}
            _ => {
                return Err(DestinationError::new(
                    format!("{field}.{key}"),
                    "is required (a non-empty string)",
                ))
            }
        }
    }
    if let Some(unknown) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(DestinationError::new(
            format!("{field}.{unknown}"),
            "is not a known setting for this kind",
        ));
    }
    Ok(())
}

/// What may be shown of a secret: its fingerprint, keyed with the workspace's data key
/// ([`WorkspaceKeys::secret_fingerprint`]), and its last 4 characters.
pub fn secret_hints(keys: &WorkspaceKeys, secrets: &Value) -> Value {
    let mut out = serde_json::Map::new();
    if let Value::Object(obj) = secrets {
        for (k, v) in obj {
            if let Some(s) = v.as_str() {
                let fp = keys.secret_fingerprint(k, s);
                let last4: String = s
                    .chars()
                    .rev()
                    .take(4)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                out.insert(
                    k.clone(),
                    serde_json::json!({"fingerprint": fp, "last4": last4}),
                );
            }
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: Value) -> Result<DestinationSpec, serde_json::Error> {
        serde_json::from_value(v)
    }

    #[test]
    fn an_unknown_consent_purpose_is_refused_naming_it() {
        let s = spec(json!({"name":"Meta","kind":"meta_capi",
            "config":{"pixel_id":"123","api_version":"v21.0"},
            "secrets":{"access_token":"t"},
            "consent_purposes":["advertsing"]}))
        .unwrap();
        let e = s.validate().unwrap_err();
        assert_eq!(e.field, "consent_purposes[0]");
        assert!(e.detail.contains("advertsing"), "{}", e.detail);
    }

    #[test]
    fn a_meta_default_action_source_must_be_one_meta_accepts() {
        let with = |source: Value| {
            spec(json!({"name":"Meta","kind":"meta_capi",
                "config":{"pixel_id":"123","api_version":"v21.0","action_source":source},
                "secrets":{"access_token":"t"}}))
            .unwrap()
            .validate()
        };
        with(json!("website")).unwrap();
        with(json!("physical_store")).unwrap();
        for bad in [json!("web"), json!("Website"), json!(1)] {
            let e = with(bad).unwrap_err();
            assert_eq!(e.field, "config.action_source");
            assert!(e.detail.contains("system_generated"), "{}", e.detail);
        }
    }

    #[test]
    fn accepts_a_complete_meta_destination() {
        let s = spec(json!({"name":"Meta","kind":"meta_capi",
            "config":{"pixel_id":"123","api_version":"v21.0"},
            "secrets":{"access_token":"EAAB"}}))
        .unwrap();
        s.validate().unwrap();
        assert_eq!(s.purposes(), vec![Purpose::advertising()]);
    }

    #[test]
    fn names_the_missing_secret() {
        let s =
            spec(json!({"name":"GA","kind":"ga4","config":{"measurement_id":"G-ABC123"}})).unwrap();
        assert_eq!(s.validate().unwrap_err().field, "secrets.api_secret");
    }

    #[test]
    fn names_an_unknown_config_key() {
        let s = spec(
            json!({"name":"T","kind":"tiktok","config":{"pixel_code":"C1","pixle":"x"},
            "secrets":{"access_token":"t"}}),
        )
        .unwrap();
        assert_eq!(s.validate().unwrap_err().field, "config.pixle");
    }

    #[test]
    fn event_filters_allow_or_deny_by_name() {
        let allow: EventFilter =
            serde_json::from_value(json!({"allow":["Order Completed"]})).unwrap();
        assert!(allow.admits("Order Completed"));
        assert!(!allow.admits("Signed Up"));
        let deny: EventFilter = serde_json::from_value(json!({"deny":["Signed Up"]})).unwrap();
        assert!(deny.admits("Order Completed"));
        assert!(!deny.admits("Signed Up"));
    }

    fn keys(byte: u8) -> WorkspaceKeys {
        WorkspaceKeys::new(&crate::crypto::DataKey::from_bytes([byte; 32]))
    }

    fn webhook(secret: &str) -> DestinationSpec {
        spec(
            json!({"name":"W","kind":"webhook","config":{"url":"https://hooks.example.com/in"},
            "secrets":{"signing_secret": secret}}),
        )
        .unwrap()
    }

    #[test]
    fn secret_hints_show_only_a_fingerprint_and_the_last_four_characters() {
        let hints = secret_hints(&keys(1), &json!({"access_token":"EAABsecretvalue1234"}));
        assert_eq!(hints["access_token"]["last4"], "1234");
        assert!(!hints.to_string().contains("EAABsecret"));
    }

    #[test]
    fn secret_fingerprints_are_not_a_plain_sha256_prefix_and_are_stable_in_a_workspace() {
        use sha2::{Digest, Sha256};
        let secrets = json!({"access_token":"EAABsecretvalue1234"}); // pragma: allowlist secret
        let fp = secret_hints(&keys(1), &secrets)["access_token"]["fingerprint"].clone();
        let plain = hex::encode(&Sha256::digest(b"EAABsecretvalue1234")[..6]);
        assert_ne!(fp, json!(plain));
        assert_eq!(
            fp,
            secret_hints(&keys(1), &secrets)["access_token"]["fingerprint"]
        );
        assert_ne!(
            fp,
            secret_hints(&keys(2), &secrets)["access_token"]["fingerprint"]
        );
    }

    #[test]
    fn a_webhook_signing_secret_must_be_whsec_and_base64() {
        webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") // pragma: allowlist secret
            .validate()
            .unwrap();
        for bad in [
            "whsec_not base64!!",
            "whsec_",
            "whsec_abc",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ] {
            assert_eq!(
                webhook(bad).validate().unwrap_err().field,
                "secrets.signing_secret",
                "{bad}"
            );
        }
    }

    #[test]
    fn a_webhook_takes_no_endpoint_override() {
        let mut s = webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        s.endpoint = Some("https://elsewhere.example.com".into());
        assert_eq!(s.validate().unwrap_err().field, "endpoint");
    }

    #[test]
    fn a_destination_name_with_a_bidi_override_is_refused() {
        let mut s = webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        s.name = "Warehouse\u{202E}gnp.exe".into();
        assert_eq!(s.validate().unwrap_err().field, "name");
    }
}
