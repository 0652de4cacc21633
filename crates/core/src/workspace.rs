//! Workspaces: the tenant boundary. Each is pinned to one residency region at creation.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::consent::ConsentPolicy;
use crate::crypto::WrappedKey;

/// A residency region. Workspaces, their ids and their keys carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    Us,
    Eu,
}

impl Region {
    pub fn as_str(self) -> &'static str {
        match self {
            Region::Us => "us",
            Region::Eu => "eu",
        }
    }
    /// The AWS region that holds this residency region's data.
    pub fn aws_region(self) -> &'static str {
        match self {
            Region::Us => "us-east-1",
            Region::Eu => "eu-central-1",
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("region must be \"us\" or \"eu\"")]
pub struct InvalidRegion;

impl FromStr for Region {
    type Err = InvalidRegion;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "us" => Ok(Region::Us),
            "eu" => Ok(Region::Eu),
            _ => Err(InvalidRegion),
        }
    }
}

/// `ws_<region>_<26 chars>`: the region is readable from the id alone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorkspaceId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a workspace id (expected ws_<us|eu>_<id>)")]
pub struct InvalidWorkspaceId;

impl WorkspaceId {
    pub fn new(region: Region, unique: &str) -> Self {
        Self(format!(
            "ws_{}_{}",
            region.as_str(),
            unique.to_ascii_lowercase()
        ))
    }
    pub fn parse(s: &str) -> Result<Self, InvalidWorkspaceId> {
        let rest = s.strip_prefix("ws_").ok_or(InvalidWorkspaceId)?;
        let (region, unique) = rest.split_once('_').ok_or(InvalidWorkspaceId)?;
        region.parse::<Region>().map_err(|_| InvalidWorkspaceId)?;
        if unique.is_empty()
            || unique.len() > 40
            || !unique
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Err(InvalidWorkspaceId);
        }
        Ok(Self(s.to_owned()))
    }
    pub fn region(&self) -> Region {
        if self.0.starts_with("ws_eu_") {
            Region::Eu
        } else {
            Region::Us
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkspaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for WorkspaceId {
    type Error = InvalidWorkspaceId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<WorkspaceId> for String {
    fn from(id: WorkspaceId) -> Self {
        id.0
    }
}

/// How long each data class is kept (DESIGN.md § Data classes and retention).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// Event metadata and pseudonymous ids: 1..=365 days, default 180.
    pub event_days: u16,
}

impl Retention {
    /// IP address and user-agent: fixed, whitepaper §02.
    pub const OPERATIONAL_DAYS: i64 = 30;
    /// The dedup window for message ids.
    pub const DEDUP_HOURS: i64 = 24;

    pub fn events(&self) -> time::Duration {
        time::Duration::days(i64::from(self.event_days))
    }
    pub fn operational() -> time::Duration {
        time::Duration::days(Self::OPERATIONAL_DAYS)
    }
    pub fn dedup() -> time::Duration {
        time::Duration::hours(Self::DEDUP_HOURS)
    }
}

impl Default for Retention {
    fn default() -> Self {
        Self { event_days: 180 }
    }
}

/// Which key wraps the workspace data key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KeyRef {
    /// The platform key (KMS key of the stack, or the local master key).
    Platform,
    /// The customer's own KMS key (BYOK).
    Customer { key_arn: String },
}

/// A tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub name: String,
    pub region: Region,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub retention: Retention,
    pub consent: ConsentPolicy,
    pub key_ref: KeyRef,
    /// The workspace data key, wrapped by `key_ref`.
    pub data_key: WrappedKey,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workspace_id_carries_its_region() {
        let id = WorkspaceId::new(Region::Eu, "01abc");
        assert_eq!(id.as_str(), "ws_eu_01abc");
        assert_eq!(id.region(), Region::Eu);
        assert_eq!(WorkspaceId::parse("ws_eu_01abc").unwrap(), id);
    }

    #[test]
    fn rejects_workspace_ids_of_unknown_regions_or_characters() {
        for bad in ["ws_xx_abc", "ws_us_", "us_abc", "ws_us_ABC", "ws_us_a-b"] {
            assert!(WorkspaceId::parse(bad).is_err(), "{bad}");
        }
    }
}
