//! Destinations: where permitted events go, and which purposes they need.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::consent::Purpose;
use crate::crypto::Sealed;
use crate::identity::Profile;
use crate::workspace::WorkspaceId;

pub mod secret_opener;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DestinationKind {
    MetaCapi,
    Ga4,
    Tiktok,
    Webhook,
}

impl DestinationKind {
    pub const ALL: [DestinationKind; 4] = [Self::MetaCapi, Self::Ga4, Self::Tiktok, Self::Webhook];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::MetaCapi => "meta_capi",
            Self::Ga4 => "ga4",
            Self::Tiktok => "tiktok",
            Self::Webhook => "webhook",
        }
    }

    /// The normalization profile of the identifiers this kind receives.
    pub fn profile(self) -> Profile {
        match self {
            // Webhooks get Meta-normalized hashes: the strictest published rules, and the
            // ones most receivers (CDPs, warehouses) match against.
            Self::MetaCapi | Self::Webhook => Profile::Meta,
            Self::Ga4 => Profile::Google,
            Self::Tiktok => Profile::TikTok,
        }
    }

    /// The consent purposes a destination of this kind needs unless configured otherwise.
    pub fn default_purposes(self) -> Vec<Purpose> {
        match self {
            Self::MetaCapi | Self::Tiktok => vec![Purpose::advertising()],
            Self::Ga4 => vec![Purpose::analytics()],
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
        }
    }

    fn allowed(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            Self::MetaCapi => (
                &["pixel_id", "api_version", "test_event_code", "event_names"],
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
                DestinationError::new("kind", "must be one of meta_capi, ga4, tiktok, webhook")
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
        let ok = s.strip_prefix("dst_").is_some_and(|u| {
            !u.is_empty()
                && u.len() <= 40
                && u.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
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
    /// Fingerprints (SHA-256 prefix and last 4 characters) of each secret, for display.
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
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(DestinationError::new("name", "must be 1 to 100 characters"));
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
                if !secret.starts_with("whsec_") {
                    return Err(DestinationError::new(
                        "secrets.signing_secret",
                        "must be whsec_ followed by base64 key bytes (Standard Webhooks)",
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

/// What may be shown of a secret: a short SHA-256 fingerprint and its last 4 characters.
pub fn secret_hints(secrets: &Value) -> Value {
    use sha2::{Digest, Sha256};
    let mut out = serde_json::Map::new();
    if let Value::Object(obj) = secrets {
        for (k, v) in obj {
            if let Some(s) = v.as_str() {
                let fp = hex::encode(&Sha256::digest(s.as_bytes())[..6]);
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

    #[test]
    fn secret_hints_show_only_a_fingerprint_and_the_last_four_characters() {
        let hints = secret_hints(&json!({"access_token":"EAABsecretvalue1234"}));
        assert_eq!(hints["access_token"]["last4"], "1234");
        assert!(!hints.to_string().contains("EAABsecret"));
    }
}
