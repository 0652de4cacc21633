//! Identifiers an event sent in the clear to a vendor whose deletion process takes them —
//! GA4's client id, which GA4's User Deletion API deletes by. Ingest keeps them sealed with
//! the event (the event store holds no identifier in the clear); an erasure opens them for
//! the subject's delivered events, before erasing those, and lists them on the receipt so
//! that the customer can delete the subject at the vendor. The erasure keeps what it found
//! sealed on the request ([`SentClientIds`]) and opens it only for an admin reading it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::crypto::{aad, SealLabel, Sealed, WorkspaceKeys};
use crate::destination::{DestinationId, DestinationKind};
use crate::error::StoreError;
use crate::event::{Routing, SealedFields, StoredEvent};
use crate::workspace::WorkspaceId;

use super::DsrRequest;

/// What an event sent to vendors that delete by identifier.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VendorIds {
    /// The client id, when the event was routed to a GA4 destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ga4_client_id: Option<String>,
}

impl fmt::Debug for VendorIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VendorIds")
            .field(
                "ga4_client_id",
                &self.ga4_client_id.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

fn vendor_ids_aad(ws: &WorkspaceId, event: &str) -> Vec<u8> {
    aad(SealLabel::VendorIds, ws, event)
}

impl VendorIds {
    /// What an event routed as `routing` sends: GA4's client id (the same rule the GA4
    /// connector sends by, [`SealedFields::ga4_client_id`]) if a GA4 destination gets it.
    pub fn of(fields: &SealedFields, routing: &[Routing]) -> Self {
        let to_ga4 = routing
            .iter()
            .any(|r| r.routed && r.kind == DestinationKind::Ga4);
        Self {
            ga4_client_id: to_ga4
                .then(|| fields.ga4_client_id().map(str::to_owned))
                .flatten(),
        }
    }

    /// Sealed for the event `event` (its id as text), or `None` when there is nothing to keep.
    pub fn seal(
        &self,
        keys: &WorkspaceKeys,
        nonce: [u8; 12],
        ws: &WorkspaceId,
        event: &str,
    ) -> Option<Sealed> {
        // Nothing to keep: no GA4 client id.
        self.ga4_client_id.as_ref()?;
        Some(seal_json(self, keys, nonce, &vendor_ids_aad(ws, event)))
    }

    /// What `event` sent; empty when it kept none. Unreadable values are corrupt data.
    pub fn open(event: &StoredEvent, keys: &WorkspaceKeys) -> Result<Self, StoreError> {
        let Some(sealed) = &event.vendor_ids else {
            return Ok(Self::default());
        };
        let aad = vendor_ids_aad(&event.workspace_id, &event.event_id.to_string());
        open_json(keys, &aad, sealed, "vendor ids")
    }
}

/// The GA4 client ids an erasure found delivered for its subject, per GA4 destination. Kept
/// only sealed on the request (its progress, the page under way, the receipt), bound to the
/// request's id, and opened when an admin reads the request ([`ClientIds`]).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentClientIds(pub BTreeMap<DestinationId, BTreeSet<String>>);

impl fmt::Debug for SentClientIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(d, ids)| (d, ids.len())))
            .finish()
    }
}

fn seal_json<T: Serialize>(value: &T, keys: &WorkspaceKeys, nonce: [u8; 12], aad: &[u8]) -> Sealed {
    let plaintext = serde_json::to_vec(value).expect("ids serialize");
    keys.seal(nonce, aad, &plaintext)
}

/// Unreadable values are corrupt data.
fn open_json<T: serde::de::DeserializeOwned>(
    keys: &WorkspaceKeys,
    aad: &[u8],
    sealed: &Sealed,
    what: &'static str,
) -> Result<T, StoreError> {
    let plain = keys
        .open(aad, sealed)
        .map_err(|e| StoreError::corrupt(what, e))?;
    serde_json::from_slice(&plain).map_err(|e| StoreError::corrupt(what, e))
}

/// Bound to the request: the ids of one request never open as another's.
fn sent_aad(r: &DsrRequest) -> Vec<u8> {
    aad(SealLabel::VendorIds, &r.workspace_id, r.id.as_str())
}

impl SentClientIds {
    pub fn is_empty(&self) -> bool {
        self.0.values().all(BTreeSet::is_empty)
    }

    pub fn merge(&mut self, other: SentClientIds) {
        for (d, ids) in other.0 {
            self.0.entry(d).or_default().extend(ids);
        }
    }

    /// Sealed for request `r`, or `None` when there is none.
    pub fn seal(&self, keys: &WorkspaceKeys, nonce: [u8; 12], r: &DsrRequest) -> Option<Sealed> {
        (!self.is_empty()).then(|| seal_json(self, keys, nonce, &sent_aad(r)))
    }

    /// What `sealed` holds for request `r` (empty for `None`). Unreadable values are corrupt
    /// data.
    pub fn open(
        sealed: Option<&Sealed>,
        keys: &WorkspaceKeys,
        r: &DsrRequest,
    ) -> Result<Self, StoreError> {
        sealed.map_or(Ok(Self::default()), |s| {
            open_json(keys, &sent_aad(r), s, "sent client ids")
        })
    }
}

/// The client ids of one destination's receipt, opened for the admin reading it; never
/// stored in the clear (the receipt keeps them in [`SentClientIds`]).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClientIds(pub Vec<String>);

impl fmt::Debug for ClientIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} client ids redacted>", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::Decision;
    use crate::destination::DestinationId;

    fn routing(kind: DestinationKind, routed: bool) -> Routing {
        Routing {
            destination_id: DestinationId::new("d"),
            kind,
            routed,
            consent: Decision {
                allowed: true,
                reason: "test".into(),
            },
            skipped: None,
        }
    }

    fn fields() -> SealedFields {
        SealedFields {
            anonymous_id: Some("anon-1".into()),
            click_ids: [("client_id".to_owned(), "111.222".to_owned())].into(),
            ..Default::default()
        }
    }

    #[test]
    fn only_an_event_routed_to_ga4_keeps_its_client_id() {
        let to_ga4 = VendorIds::of(&fields(), &[routing(DestinationKind::Ga4, true)]);
        assert_eq!(to_ga4.ga4_client_id.as_deref(), Some("111.222"));
        for r in [
            routing(DestinationKind::Ga4, false),
            routing(DestinationKind::MetaCapi, true),
        ] {
            assert_eq!(VendorIds::of(&fields(), &[r]), VendorIds::default());
        }
        let anonymous = SealedFields {
            anonymous_id: Some("anon-1".into()),
            ..Default::default()
        };
        let ids = VendorIds::of(&anonymous, &[routing(DestinationKind::Ga4, true)]);
        assert_eq!(ids.ga4_client_id.as_deref(), Some("anon-1"));
    }

    #[test]
    fn sealed_vendor_ids_open_only_for_their_own_event() {
        let keys = WorkspaceKeys::new(&crate::crypto::DataKey::from_bytes([7; 32]));
        let ws = WorkspaceId::new(crate::workspace::Region::Us, "vendor-ids");
        let ids = VendorIds::of(&fields(), &[routing(DestinationKind::Ga4, true)]);
        let mut event = crate::testkit::new_event(&ws, "m-1", &["s"], crate::testkit::T0).event;
        event.vendor_ids = ids.seal(&keys, [1; 12], &ws, &event.event_id.to_string());
        assert_eq!(VendorIds::open(&event, &keys).unwrap(), ids);
        event.event_id = crate::event::EventId(uuid::Uuid::from_u128(9));
        assert!(matches!(
            VendorIds::open(&event, &keys),
            Err(StoreError::Corrupt { .. })
        ));
        assert_eq!(VendorIds::default().seal(&keys, [1; 12], &ws, "e"), None);
    }

    #[test]
    fn sent_client_ids_open_only_for_their_own_request() {
        let keys = WorkspaceKeys::new(&crate::crypto::DataKey::from_bytes([7; 32]));
        let ws = WorkspaceId::new(crate::workspace::Region::Us, "sent-ids");
        let request = |n: u128| {
            let mut r = crate::testkit::dsr_store::dsr_request(
                &ws,
                super::super::DsrKind::Erasure,
                crate::testkit::T0,
            );
            r.id = super::super::DsrId::new(uuid::Uuid::from_u128(n));
            r
        };
        let (r1, r2) = (request(1), request(2));
        let mut sent = SentClientIds::default();
        assert_eq!(sent.seal(&keys, [1; 12], &r1), None);
        sent.merge(SentClientIds(
            [(DestinationId::new("ga4"), ["111.222".to_owned()].into())].into(),
        ));
        let sealed = sent.seal(&keys, [1; 12], &r1).unwrap();
        assert!(!String::from_utf8_lossy(&sealed.0).contains("111.222"));
        assert!(!format!("{sent:?}").contains("111.222"));
        assert_eq!(
            SentClientIds::open(Some(&sealed), &keys, &r1).unwrap(),
            sent
        );
        assert!(matches!(
            SentClientIds::open(Some(&sealed), &keys, &r2),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
