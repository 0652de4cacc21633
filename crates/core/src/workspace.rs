//! Workspaces: the tenant boundary. Each is pinned to one residency region at creation.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::serde::rfc3339::option as opt_rfc3339;
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

crate::newtype::string_newtype!(WorkspaceId: InvalidWorkspaceId, Display);

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
        if !crate::newtype::lower_alnum(unique, 40) {
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
    /// Delivery attempts and outcomes: fixed, whitepaper §02 (operational data).
    pub const DELIVERY_LOG_DAYS: i64 = 30;
    /// Audit entries: one year.
    pub const AUDIT_DAYS: i64 = crate::audit::RETENTION_DAYS;
    /// Account data (keys, users, destinations, the workspace) outlives its end — a key's
    /// expiry or revocation, the account's closing — by this long.
    pub const ACCOUNT_GRACE_DAYS: i64 = 90;
    /// Bounds of the per-workspace event retention.
    pub const MIN_EVENT_DAYS: u16 = 1;
    pub const MAX_EVENT_DAYS: u16 = 365;

    pub fn events(&self) -> time::Duration {
        time::Duration::days(i64::from(self.event_days))
    }
    pub fn operational() -> time::Duration {
        time::Duration::days(Self::OPERATIONAL_DAYS)
    }
    pub fn dedup() -> time::Duration {
        time::Duration::hours(Self::DEDUP_HOURS)
    }
    pub fn delivery_log() -> time::Duration {
        time::Duration::days(Self::DELIVERY_LOG_DAYS)
    }
    pub fn audit() -> time::Duration {
        time::Duration::days(Self::AUDIT_DAYS)
    }
    pub fn account_grace() -> time::Duration {
        time::Duration::days(Self::ACCOUNT_GRACE_DAYS)
    }
    /// A retention of `days` of events, if within 1..=365.
    pub fn with_event_days(days: u16) -> Option<Self> {
        (Self::MIN_EVENT_DAYS..=Self::MAX_EVENT_DAYS)
            .contains(&days)
            .then_some(Self { event_days: days })
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
    /// Incident-containment settings (whitepaper §11).
    #[serde(default)]
    pub security: SecuritySettings,
    /// When the account was closed: its keys stopped working and its destinations (with
    /// their secrets) were deleted then; the rest of its account data goes
    /// [`Retention::ACCOUNT_GRACE_DAYS`] later.
    #[serde(default, with = "opt_rfc3339", skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<OffsetDateTime>,
}

impl Workspace {
    pub fn is_closed(&self) -> bool {
        self.closed_at.is_some()
    }

    /// Until when a closed workspace's account data (the workspace, its users, its key
    /// records) is kept: closure plus 90 days (whitepaper §02). `None` while it is open.
    pub fn account_data_expires_at(&self) -> Option<OffsetDateTime> {
        self.closed_at.map(|at| at + Retention::account_grace())
    }
}

/// Ingest blocklist, the "pause all egress" switch, CORS origins and bot filtering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecuritySettings {
    /// Client addresses (IP or CIDR) whose tracking requests are refused.
    #[serde(default)]
    pub ip_blocklist: Vec<Cidr>,
    /// Stop every delivery of the workspace; queued messages wait, nothing is lost.
    #[serde(default)]
    pub egress_paused: bool,
    /// Web origins whose browsers may send tracking requests (CORS); none by default.
    #[serde(default)]
    pub allowed_origins: Vec<crate::cors::AllowedOrigin>,
    /// Drop (and count) the events of well-known crawlers' user agents before routing
    /// ([`crate::bots`]); on unless turned off.
    #[serde(default = "on")]
    pub bot_filter: bool,
}

fn on() -> bool {
    true
}

impl Default for SecuritySettings {
    fn default() -> Self {
        Self {
            ip_blocklist: Vec::new(),
            egress_paused: false,
            allowed_origins: Vec::new(),
            bot_filter: true,
        }
    }
}

impl SecuritySettings {
    pub fn blocks(&self, ip: std::net::IpAddr) -> bool {
        self.ip_blocklist.iter().any(|c| c.contains(ip))
    }
}

/// An IP network: `203.0.113.0/24`, `2001:db8::/32`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr {
    addr: std::net::IpAddr,
    prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an IP address or CIDR block (203.0.113.0/24, 2001:db8::/32)")]
pub struct InvalidCidr;

impl Cidr {
    pub fn parse(s: &str) -> Result<Self, InvalidCidr> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: std::net::IpAddr = addr.parse().map_err(|_| InvalidCidr)?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or(InvalidCidr)?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }

    fn bits(ip: std::net::IpAddr) -> (u128, u8) {
        match ip {
            std::net::IpAddr::V4(v4) => (u128::from(u32::from(v4)) << 96, 32),
            std::net::IpAddr::V6(v6) => (u128::from(v6), 128),
        }
    }

    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
            v4 => v4,
        };
        let (net, width) = Self::bits(self.addr);
        let (addr, w) = Self::bits(ip);
        if w != width {
            return false;
        }
        // Both are aligned to the top bits (IPv4 shifted up by 96), so the prefix counts
        // from the top either way.
        let mask = if self.prefix == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(self.prefix))
        };
        net & mask == addr & mask
    }
}

crate::newtype::try_from_string!(Cidr: InvalidCidr);

impl From<Cidr> for String {
    fn from(c: Cidr) -> Self {
        let max = if c.addr.is_ipv4() { 32 } else { 128 };
        if c.prefix == max {
            c.addr.to_string()
        } else {
            format!("{}/{}", c.addr, c.prefix)
        }
    }
}

/// A user of the admin API. The email is account data (whitepaper §02), never an event's.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: crate::user_id::UserId,
    pub workspace_id: WorkspaceId,
    pub email: crate::email::Email,
    pub role: crate::keys::Role,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The identity provider's id of the user (SCIM `externalId`), when provisioned by one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// False once the identity provider deactivated the user (SCIM `active`): no access.
    #[serde(default = "active_by_default")]
    pub active: bool,
    /// The identity provider's `userName` and `emails` (SCIM), when provisioned by one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scim: Option<crate::scim::profile::ScimProfile>,
}

fn active_by_default() -> bool {
    true
}

crate::debug_fields!(User: id, workspace_id, role, active);

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
    fn a_cidr_block_contains_the_addresses_of_its_network() {
        let c = Cidr::parse("203.0.113.0/24").unwrap();
        assert!(c.contains("203.0.113.77".parse().unwrap()));
        assert!(!c.contains("203.0.114.1".parse().unwrap()));
        assert!(c.contains("::ffff:203.0.113.5".parse().unwrap()));
        let one = Cidr::parse("198.51.100.7").unwrap();
        assert!(one.contains("198.51.100.7".parse().unwrap()));
        assert!(!one.contains("198.51.100.8".parse().unwrap()));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:1::1".parse().unwrap()));
        assert!(!v6.contains("203.0.113.77".parse().unwrap()));
        assert_eq!(String::from(one), "198.51.100.7");
        for bad in ["", "1.2.3.4/33", "example.com", "1.2.3.4/x"] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    /// A workspace as stored before closure existed: without `closed_at`.
    fn stored_before_closure() -> Workspace {
        serde_json::from_value(serde_json::json!({
            "id": "ws_eu_01abc",
            "name": "Stored earlier",
            "region": "eu",
            "created_at": "2026-03-01T12:00:00Z",
            "retention": {"event_days": 180},
            "consent": serde_json::to_value(ConsentPolicy::default()).unwrap(),
            "key_ref": {"kind": "platform"},
            "data_key": serde_json::to_value(WrappedKey(vec![1, 2, 3])).unwrap(),
        }))
        .unwrap()
    }

    #[test]
    fn a_workspace_stored_before_closure_existed_reads_as_open() {
        let ws = stored_before_closure();
        assert_eq!(ws.closed_at, None);
        assert_eq!(ws.account_data_expires_at(), None);
        let written = serde_json::to_value(&ws).unwrap();
        assert!(
            written.get("closed_at").is_none(),
            "an open workspace is written without closed_at: {written}"
        );
    }

    #[test]
    fn a_closed_workspaces_account_data_expires_90_days_after_closure() {
        let mut ws = stored_before_closure();
        let at = time::macros::datetime!(2026-04-01 00:00:00 UTC);
        ws.closed_at = Some(at);
        assert!(ws.is_closed());
        assert_eq!(
            ws.account_data_expires_at(),
            Some(time::macros::datetime!(2026-06-30 00:00:00 UTC))
        );
        let back: Workspace = serde_json::from_value(serde_json::to_value(&ws).unwrap()).unwrap();
        assert_eq!(back.closed_at, Some(at));
    }

    #[test]
    fn rejects_workspace_ids_of_unknown_regions_or_characters() {
        for bad in ["ws_xx_abc", "ws_us_", "us_abc", "ws_us_ABC", "ws_us_a-b"] {
            assert!(WorkspaceId::parse(bad).is_err(), "{bad}");
        }
    }
}
