//! Events as TrackLayer keeps them, and as they travel to a destination.
//!
//! Nothing here holds a raw identifier in the clear: stored events keep SHA-256 hashes and the
//! keyed subject index; IP, user-agent, click ids, page URL and the few plain values Google
//! wants are sealed with the workspace data key.

mod by_reference;
pub mod codes;
mod recent;
mod ref_wire;
pub mod sealed_wire;
pub use by_reference::{suppression_tokens, Body, Hydrated, ItemRef, RefBody};
pub use recent::RecentEvents;
pub use ref_wire::{decode_shared, encode_shared};

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::consent::Decision;
use crate::crypto::Sealed;
use crate::destination::{DestinationId, DestinationKind};
use crate::identity::{Field, Profile};
use crate::workspace::WorkspaceId;

/// The Segment call types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    Track,
    Identify,
    Page,
    Screen,
    Group,
    Alias,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Track => "track",
            Self::Identify => "identify",
            Self::Page => "page",
            Self::Screen => "screen",
            Self::Group => "group",
            Self::Alias => "alias",
        }
    }
}

impl FromStr for EventType {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s {
            "track" => Self::Track,
            "identify" => Self::Identify,
            "page" => Self::Page,
            "screen" => Self::Screen,
            "group" => Self::Group,
            "alias" => Self::Alias,
            _ => return Err(()),
        })
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// TrackLayer's own id of an accepted event (UUIDv7, time-ordered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub Uuid);

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "evt_{}", self.0.simple())
    }
}

impl EventId {
    pub fn parse(s: &str) -> Option<Self> {
        let hex = s.strip_prefix("evt_")?;
        Uuid::try_parse(hex).ok().map(Self)
    }
}

/// The client's message id: 1 to 256 printable characters, unique per workspace for 24 h.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(String);

impl MessageId {
    pub const MAX_LEN: usize = 256;

    pub fn parse(s: &str) -> Result<Self, &'static str> {
        if s.is_empty() {
            Err("must not be empty")
        } else if s.len() > Self::MAX_LEN {
            Err("must be at most 256 bytes")
        } else if s.chars().any(char::is_control) {
            Err("must not contain control characters")
        } else {
            Ok(Self(s.to_owned()))
        }
    }
    pub fn generated(id: Uuid) -> Self {
        Self(id.hyphenated().to_string())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why an event did or did not go to a destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routing {
    pub destination_id: DestinationId,
    pub kind: DestinationKind,
    /// Queued for delivery.
    pub routed: bool,
    pub consent: Decision,
    /// Why it was not routed, when consent allowed it (event filter, unsupported type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// An event as the event store keeps it: metadata, hashes, subject index, decisions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub workspace_id: WorkspaceId,
    pub event_id: EventId,
    pub message_id: MessageId,
    pub event_type: EventType,
    /// `event` of a track call, `name` of a page/screen call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Properties and traits with every identifier removed.
    pub properties: Value,
    pub traits: Value,
    /// Per-profile SHA-256 hashes of the identifiers (hashed forms only).
    pub hashed: BTreeMap<Profile, BTreeMap<Field, String>>,
    /// HMAC subject-index values (email, phone, external id, anonymous id).
    pub subjects: Vec<String>,
    pub routing: Vec<Routing>,
    /// Identifier values dropped as invalid (an email without a domain, ...).
    pub invalid_identifiers: u32,
    /// Identifiers sent in the clear to a vendor that deletes by them (GA4's client id),
    /// sealed ([`crate::dsr::VendorIds`]): what an erasure receipt lists for the customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_ids: Option<crate::crypto::Sealed>,
}

/// IP address and user-agent of an event, sealed, kept 30 days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationalRecord {
    pub workspace_id: WorkspaceId,
    pub event_id: EventId,
    pub sealed: Sealed,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// The values of an item that are sealed for transport to a destination.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymous_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_url: Option<String>,
    /// Segment's `context.channel` (`browser`, `server`, `mobile`), lowercase: where the event
    /// happened, for a destination's action source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Click and browser ids: fbp, fbc, gclid, ttclid, ttp, client_id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub click_ids: BTreeMap<String, String>,
    /// Normalized plain values a destination wants unhashed (Google address fields).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub plain: BTreeMap<Field, String>,
}

impl SealedFields {
    /// The GA4 client id: the `client_id` click id (the `_ga` cookie's), else the anonymous id.
    pub fn ga4_client_id(&self) -> Option<&str> {
        fn clean(v: Option<&str>) -> Option<&str> {
            v.map(str::trim).filter(|s| !s.is_empty())
        }
        clean(self.click_ids.get("client_id").map(String::as_str))
            .or(clean(self.anonymous_id.as_deref()))
    }
}

impl fmt::Debug for SealedFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealedFields(<redacted>)")
    }
}

/// Google Consent Mode values forwarded to GA4.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardedConsent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ad_user_data: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ad_personalization: Option<bool>,
}

/// One event, prepared for one destination: already hashed for its profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryItem {
    pub event_id: EventId,
    pub message_id: MessageId,
    pub event_type: EventType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    pub properties: Value,
    /// SHA-256 hashes under the destination's profile.
    pub user_data: BTreeMap<Field, String>,
    #[serde(default)]
    pub consent: ForwardedConsent,
    /// `SealedFields`, sealed with aad `item:<workspace>:<destination>:<event>`. An item
    /// queued by reference leaves IP and user agent out when its event has an operational
    /// record ([`DeliveryItem::operational`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<Sealed>,
    /// Only in an item rebuilt from a message held by reference: its event's operational
    /// record (IP and user agent, sealed with aad `op:<workspace>:<event>`, kept 30 days),
    /// read beside the event each time ([`RefBody::hydrate`]). Never in a queue body.
    #[serde(skip)]
    pub operational: Option<Sealed>,
    /// Only in an item by reference that takes its event's sealed fields as they are (the
    /// fields every such destination of the event shares, sealed once with aad
    /// `shared:<workspace>:<event>`; `sealed` is then `None`): at ingest, what the queue
    /// stores once beside the event's messages ([`crate::ports::Outgoing::shared`]); at
    /// delivery, what was read back with the message (empty when it was missing: it then
    /// does not open, and the item is dead-lettered). Never in a queue body.
    #[serde(skip)]
    pub shared: Option<Sealed>,
    /// The suppression tokens of the event's subjects (`dsr::suppression_token`): deliver
    /// drops the item once its subject is erased, even if it was queued before the erasure
    /// (an SQS message cannot be edited in place).
    #[serde(rename = "sup", default, skip_serializing_if = "Vec::is_empty")]
    pub suppression: Vec<String>,
}

impl DeliveryItem {
    /// The item of a track call named `name`, with no identifiers, no consent, nothing sealed
    /// and no suppression token: a synthetic test event or a fixture adds what it has with
    /// struct update syntax.
    pub fn track(
        event_id: EventId,
        message_id: MessageId,
        name: &str,
        timestamp: OffsetDateTime,
        properties: Value,
    ) -> Self {
        Self {
            event_id,
            message_id,
            event_type: EventType::Track,
            name: Some(name.to_owned()),
            timestamp,
            properties,
            user_data: BTreeMap::new(),
            consent: ForwardedConsent::default(),
            sealed: None,
            operational: None,
            shared: None,
            suppression: Vec::new(),
        }
    }
}

/// A queue message: many items for one destination (DESIGN.md § Delivery).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueBody {
    pub v: u8,
    /// Delivery attempts already spent on these items in earlier messages.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts: u32,
    pub workspace_id: WorkspaceId,
    pub destination_id: DestinationId,
    pub kind: DestinationKind,
    pub items: Vec<DeliveryItem>,
    /// Read from a queue that holds items by reference ([`RefBody`]): encoded so again.
    #[serde(skip)]
    pub by_reference: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A queue message body that is not one TrackLayer wrote (or not of a version it reads).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UnreadableBody(#[from] serde_json::Error);

impl QueueBody {
    pub const VERSION: u8 = 1;

    /// The one wire encoding of a queue message (JSON, fields in declaration order): what
    /// both queue adapters store and send; by reference ([`RefBody`]) when it was read so.
    /// [`Body::decode`] reads either back.
    pub fn encode(&self) -> Vec<u8> {
        if self.by_reference {
            return self.stored().encode();
        }
        serde_json::to_vec(self).expect("a queue body serializes")
    }

    /// A body by value; an error for a body by reference (which needs its events:
    /// [`Body::decode`], [`RefBody::hydrate`]) or one TrackLayer did not write.
    pub fn decode(bytes: &[u8]) -> Result<Self, UnreadableBody> {
        match Body::decode(bytes)? {
            Body::Value(body) => Ok(body),
            Body::Reference(_) => Err(UnreadableBody(serde::de::Error::custom(
                "the items are by reference: they need their stored events",
            ))),
        }
    }

    /// What [`QueueBody::encode`] writes before the first item of a body with no attempts
    /// spent: ingest's packer writes items straight after it, `,` between them and
    /// [`QueueBody::ENCODED_END`] after the last.
    pub fn encoded_start(
        workspace_id: &WorkspaceId,
        destination_id: &DestinationId,
        kind: DestinationKind,
    ) -> String {
        Self::encoded_head(workspace_id, destination_id, kind, "items")
    }

    /// A fresh body's fields before its list of items, named `list` (`items` or `refs`).
    pub(crate) fn encoded_head(
        workspace_id: &WorkspaceId,
        destination_id: &DestinationId,
        kind: DestinationKind,
        list: &str,
    ) -> String {
        format!(
            r#"{{"v":{},"workspace_id":{},"destination_id":{},"kind":{},"{list}":["#,
            Self::VERSION,
            serde_json::to_string(workspace_id.as_str()).expect("string"),
            serde_json::to_string(destination_id.as_str()).expect("string"),
            serde_json::to_string(kind.as_str()).expect("string"),
        )
    }

    /// What [`QueueBody::encode`] writes after the last item.
    pub const ENCODED_END: &'static [u8] = b"]}";

    /// The associated data of an event's shared sealed fields ([`DeliveryItem::shared`]):
    /// `shared:<workspace>:<event>`, bound to the event, not to a destination.
    pub fn shared_aad(workspace_id: &WorkspaceId, event_key: &str) -> Vec<u8> {
        crate::crypto::aad(crate::crypto::SealLabel::Shared, workspace_id, event_key)
    }

    pub fn item_aad(&self, item: &DeliveryItem) -> Vec<u8> {
        crate::crypto::aad(
            crate::crypto::SealLabel::Item,
            &self.workspace_id,
            &format!("{}:{}", self.destination_id, item.event_id),
        )
    }
}

#[cfg(test)]
mod queue_body_codec {
    use super::*;

    /// A body exactly as ingest and deliver wrote them before the codec existed (SQLite rows
    /// and SQS messages already queued): it must still decode, and encode to the same bytes.
    /// (Property keys are in sorted order, so it holds with serde_json's `preserve_order` on
    /// or off.)
    const QUEUED_BEFORE: &str = concat!(
        r#"{"v":1,"attempts":2,"workspace_id":"ws_us_shop","destination_id":"dst_meta","kind":"webhook","items":["#,
        r#"{"event_id":"00000000-0000-0000-0000-000000000007","message_id":"m-1","event_type":"track","name":"Order Completed","#,
        r#""timestamp":"2026-03-01T12:00:00Z","properties":{"currency":"EUR","revenue":49.9},"#,
        r#""user_data":{"email":"ab12","phone":"cd34"},"consent":{"ad_user_data":true},"sealed":"AQID","sup":["tok"]},"#,
        r#"{"event_id":"00000000-0000-0000-0000-000000000008","message_id":"m-2","event_type":"identify","#,
        r#""timestamp":"2026-03-01T12:00:01Z","properties":{},"user_data":{},"consent":{}}"#,
        r#"]}"#
    );

    #[test]
    fn a_body_in_the_format_queued_before_decodes_and_encodes_to_the_same_bytes() {
        let body = QueueBody::decode(QUEUED_BEFORE.as_bytes()).expect("today's format decodes");
        assert_eq!(body.v, QueueBody::VERSION);
        assert_eq!(body.attempts, 2);
        assert_eq!(body.workspace_id.as_str(), "ws_us_shop");
        assert_eq!(body.destination_id.as_str(), "dst_meta");
        assert_eq!(body.kind, DestinationKind::Webhook);
        assert_eq!(body.items.len(), 2);
        let first = &body.items[0];
        assert_eq!(first.event_id, EventId(Uuid::from_u128(7)));
        assert_eq!(first.name.as_deref(), Some("Order Completed"));
        assert_eq!(first.user_data[&Field::Email], "ab12");
        assert_eq!(first.consent.ad_user_data, Some(true));
        assert_eq!(first.sealed, Some(Sealed(vec![1, 2, 3])));
        assert_eq!(first.suppression, vec!["tok".to_owned()]);
        assert_eq!(body.items[1].event_type, EventType::Identify);
        assert_eq!(String::from_utf8(body.encode()).unwrap(), QUEUED_BEFORE);
    }

    #[test]
    fn the_encoded_start_items_and_end_are_what_encode_writes_for_a_fresh_body() {
        let mut body = QueueBody::decode(QUEUED_BEFORE.as_bytes()).unwrap();
        body.attempts = 0;
        let mut packed =
            QueueBody::encoded_start(&body.workspace_id, &body.destination_id, body.kind)
                .into_bytes();
        for (i, item) in body.items.iter().enumerate() {
            if i > 0 {
                packed.push(b',');
            }
            packed.extend(serde_json::to_vec(item).unwrap());
        }
        packed.extend_from_slice(QueueBody::ENCODED_END);
        assert_eq!(packed, body.encode());
    }

    #[test]
    fn a_body_tracklayer_did_not_write_is_unreadable() {
        for bad in [&b"poison"[..], b"{\"n\":1}", b"", b"{\"v\":1,\"items\":[]}"] {
            assert!(QueueBody::decode(bad).is_err(), "{bad:?}");
        }
    }
}
