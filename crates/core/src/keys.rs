//! API keys: `tl_<kind>_<region>_<id>_<secret>`.
//!
//! Only a bcrypt verifier of the secret is stored. [`verifier::KeyVerifier`] checks presented
//! keys for both APIs and remembers verified ones (DESIGN.md § Keys).

pub mod verifier;

pub use crate::rbac::Role;
use std::fmt;
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::workspace::{Region, WorkspaceId};

/// What a key may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// An ingest write key (tracking API only).
    Ingest,
    /// A user's personal access token for the admin API.
    Pat,
    /// A service token with a role, for automation.
    Svc,
    /// An identity provider's SCIM provisioning token (`/scim/v2` only).
    Scim,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Ingest => "ingest",
            KeyKind::Pat => "pat",
            KeyKind::Svc => "svc",
            KeyKind::Scim => "scim",
        }
    }
}

impl FromStr for KeyKind {
    type Err = InvalidKey;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ingest" => Ok(Self::Ingest),
            "pat" => Ok(Self::Pat),
            "svc" => Ok(Self::Svc),
            "scim" => Ok(Self::Scim),
            _ => Err(InvalidKey),
        }
    }
}

/// The public id of a key: 16 lowercase alphanumerics. Safe to log and show.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct KeyId(String);

crate::newtype::string_newtype!(KeyId: InvalidKey, Display);

impl KeyId {
    /// A key id: exactly [`KEY_ID_LEN`] lowercase letters and digits.
    pub fn parse(id: &str) -> Result<Self, InvalidKey> {
        let ok = id.len() == KEY_ID_LEN && crate::newtype::lower_alnum(id, KEY_ID_LEN);
        if ok {
            Ok(Self(id.to_owned()))
        } else {
            Err(InvalidKey)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a TrackLayer API key")]
pub struct InvalidKey;

pub const KEY_ID_LEN: usize = 16;
pub const KEY_SECRET_LEN: usize = 32;
/// At most 90 days between creation and expiry (whitepaper §05).
pub const MAX_KEY_LIFETIME_DAYS: i64 = 90;

/// A presented API key, parsed. The secret part is never printed.
pub struct ApiKey {
    pub kind: KeyKind,
    pub region: Region,
    pub id: KeyId,
    full: SecretString,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ApiKey(tl_{}_{}_{}_<redacted>)",
            self.kind.as_str(),
            self.region,
            self.id
        )
    }
}

impl ApiKey {
    pub fn parse(s: &str) -> Result<Self, InvalidKey> {
        let mut parts = s.trim().splitn(5, '_');
        let (tl, kind, region, id, secret) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        );
        if tl != Some("tl") {
            return Err(InvalidKey);
        }
        let kind = kind.ok_or(InvalidKey)?.parse::<KeyKind>()?;
        let region = region
            .ok_or(InvalidKey)?
            .parse::<Region>()
            .map_err(|_| InvalidKey)?;
        let id = id.ok_or(InvalidKey)?;
        let secret = secret.ok_or(InvalidKey)?;
        let id = KeyId::parse(id)?;
        let secret_ok =
            secret.len() == KEY_SECRET_LEN && secret.bytes().all(|b| b.is_ascii_alphanumeric());
        if !secret_ok {
            return Err(InvalidKey);
        }
        Ok(Self {
            kind,
            region,
            id,
            full: SecretString::from(s.trim().to_owned()),
        })
    }

    /// Builds a key from freshly generated parts.
    pub fn from_parts(kind: KeyKind, region: Region, id: &str, secret: &str) -> Self {
        let s = format!("tl_{}_{}_{}_{}", kind.as_str(), region, id, secret);
        Self::parse(&s).expect("generated keys are well formed")
    }

    /// The whole key, for showing once at creation.
    pub fn expose(&self) -> &str {
        self.full.expose_secret()
    }

    fn secret(&self) -> &str {
        let full = self.full.expose_secret();
        &full[full.len() - KEY_SECRET_LEN..]
    }

    /// What the cache is keyed by: SHA-256 of the whole key (never the key itself).
    pub fn fingerprint(&self) -> [u8; 32] {
        Sha256::digest(self.full.expose_secret().as_bytes()).into()
    }

    /// A bcrypt verifier of the secret part.
    pub fn verifier(&self, cost: u32) -> Result<String, bcrypt_like::Error> {
        bcrypt_like::hash(self.secret(), cost)
    }

    pub fn matches(&self, verifier: &str) -> bool {
        bcrypt_like::verify(self.secret(), verifier)
    }

    /// The first characters of the key, safe to show in listings.
    pub fn prefix(&self) -> String {
        format!("tl_{}_{}_{}", self.kind.as_str(), self.region, self.id)
    }
}

/// bcrypt lives behind this seam so that core's users can swap the cost in tests.
pub mod bcrypt_like {
    pub use bcrypt::BcryptError as Error;

    pub fn hash(secret: &str, cost: u32) -> Result<String, Error> {
        bcrypt::hash(secret, cost)
    }

    pub fn verify(secret: &str, verifier: &str) -> bool {
        bcrypt::verify(secret, verifier).unwrap_or(false)
    }
}

/// What is stored for a key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub id: KeyId,
    pub workspace_id: WorkspaceId,
    pub kind: KeyKind,
    /// Admin-API role of PATs and service tokens; `None` for ingest keys.
    pub role: Option<Role>,
    /// The user a PAT belongs to.
    pub user_id: Option<crate::user_id::UserId>,
    pub name: String,
    pub prefix: String,
    /// bcrypt of the secret part.
    pub verifier: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub revoked_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub last_used_at: Option<OffsetDateTime>,
    /// Which expiry warnings (days before expiry: 14, 3) were mailed to the admins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expiry_warnings_sent: Vec<u16>,
    /// A browser-facing write key: public (it sits in web pages), so accepted only from the
    /// workspace's allowed origins and under a stricter per-IP rate limit.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub browser: bool,
}

crate::debug_fields!(ApiKeyRecord: id, workspace_id, kind, role, expires_at, revoked_at);

impl ApiKeyRecord {
    /// When the key stopped (or will stop) working: its revocation or its expiry.
    pub fn ended_at(&self) -> OffsetDateTime {
        self.revoked_at
            .map_or(self.expires_at, |r| r.min(self.expires_at))
    }

    /// Until when the record is kept: account data lives 90 days past its end (whitepaper §02).
    pub fn retained_until(&self) -> OffsetDateTime {
        self.ended_at() + crate::workspace::Retention::account_grace()
    }

    /// Why a key that verified is still not usable at `now`, if it is not.
    pub fn refusal(&self, now: OffsetDateTime) -> Option<KeyRefusal> {
        if self.revoked_at.is_some_and(|at| at <= now) {
            Some(KeyRefusal::Revoked)
        } else if self.expires_at <= now {
            Some(KeyRefusal::Expired)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefusal {
    Unknown,
    Revoked,
    Expired,
    WrongKind,
}

impl KeyRefusal {
    pub fn detail(self) -> &'static str {
        match self {
            Self::Unknown => "the API key is not known",
            Self::Revoked => "the API key was revoked",
            Self::Expired => "the API key has expired; rotate it",
            Self::WrongKind => "this kind of key cannot be used here",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "tl_ingest_eu_abcdefgh12345678_ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"; // pragma: allowlist secret

    #[test]
    fn a_key_id_is_parsed_by_its_rule_in_code_and_from_stored_json() {
        assert_eq!(
            KeyId::parse("abcdefgh12345678").map(|k| k.to_string()),
            Ok("abcdefgh12345678".to_owned())
        );
        for bad in [
            "",
            "abc",
            "ABCDEFGH12345678",
            "abcdefgh1234567_",
            "abcdefgh123456789",
        ] {
            assert_eq!(KeyId::parse(bad), Err(InvalidKey), "{bad}");
            assert!(serde_json::from_value::<KeyId>(serde_json::json!(bad)).is_err());
        }
        let id: KeyId = serde_json::from_value(serde_json::json!("abcdefgh12345678")).unwrap();
        assert_eq!(serde_json::to_value(&id).unwrap(), "abcdefgh12345678");
    }

    #[test]
    fn parses_a_well_formed_key_and_reads_its_region() {
        let key = ApiKey::parse(KEY).unwrap();
        assert_eq!(key.kind, KeyKind::Ingest);
        assert_eq!(key.region, Region::Eu);
        assert_eq!(key.id.as_str(), "abcdefgh12345678");
        assert_eq!(key.prefix(), "tl_ingest_eu_abcdefgh12345678");
    }

    #[test]
    fn rejects_malformed_keys() {
        for bad in [
            "",
            "tl_ingest_eu_abc_def",
            "tl_root_eu_abcdefgh12345678_ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", // pragma: allowlist secret
            "tl_ingest_xx_abcdefgh12345678_ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", // pragma: allowlist secret
            "xx_ingest_eu_abcdefgh12345678_ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", // pragma: allowlist secret
            "tl_ingest_eu_abcdefgh12345678_ABCDEFGHIJKLMNOPQRSTUVWXYZ01234!", // pragma: allowlist secret
        ] {
            assert!(ApiKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let key = ApiKey::parse(KEY).unwrap();
        let shown = format!("{key:?}");
        assert!(!shown.contains("ABCDEFGH"), "{shown}");
    }

    #[test]
    fn a_verifier_matches_only_its_own_secret() {
        let key = ApiKey::parse(KEY).unwrap();
        let verifier = key.verifier(4).unwrap();
        assert!(key.matches(&verifier));
        let other = ApiKey::parse(&KEY.replace("ABC", "XYZ")).unwrap();
        assert!(!other.matches(&verifier));
    }
}
