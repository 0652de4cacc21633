//! Identifiers an event sent in the clear to a vendor whose deletion process takes them —
//! GA4's client id, which GA4's User Deletion API deletes by. Ingest keeps them sealed with
//! the event (the event store holds no identifier in the clear); an erasure opens them for
//! the subject's delivered events, before erasing those, and lists them on the receipt so
//! that the customer can delete the subject at the vendor.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::crypto::{aad, SealLabel, Sealed, WorkspaceKeys};
use crate::destination::DestinationKind;
use crate::error::StoreError;
use crate::event::{Routing, SealedFields, StoredEvent};
use crate::workspace::WorkspaceId;

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
        let plaintext = serde_json::to_vec(self).expect("vendor ids serialize");
        Some(keys.seal(nonce, &vendor_ids_aad(ws, event), &plaintext))
    }

    /// What `event` sent; empty when it kept none. Unreadable values are corrupt data.
    pub fn open(event: &StoredEvent, keys: &WorkspaceKeys) -> Result<Self, StoreError> {
        let Some(sealed) = &event.vendor_ids else {
            return Ok(Self::default());
        };
        let aad = vendor_ids_aad(&event.workspace_id, &event.event_id.to_string());
        let plain = keys
            .open(&aad, sealed)
            .map_err(|e| StoreError::corrupt("vendor ids", e))?;
        serde_json::from_slice(&plain).map_err(|e| StoreError::corrupt("vendor ids", e))
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
}
