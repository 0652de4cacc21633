//! Queue items by reference: what a queue holds for an item when the event store beside it
//! (the same SQLite database, written before the item is queued) already holds the event.
//!
//! A [`DeliveryItem`] is its event's fields for one destination ([`DeliveryItem::of_event`])
//! plus what the event does not hold: the forwarded consent and the sealed fields (sealed
//! per destination, aad `item:<workspace>:<destination>:<event>`). By value, a queue message
//! carries all of it (`items`: SQS, whose consumer must not read the event store per item);
//! by reference (`refs`) only an [`ItemRef`], and delivery rebuilds the item from the stored
//! event through the same [`DeliveryItem::of_event`]: byte for byte the item ingest built.
//! An item whose event is gone (erased, expired) is not delivered.
//!
//! One exception to "byte for byte": IP and user agent, which the event's operational record
//! already holds sealed (30 days), are left out of a by-reference item's sealed fields, not
//! sealed again per destination (about 200 of the 410 bytes a destination's item took); the
//! rebuilt item carries that record ([`DeliveryItem::operational`]) and delivery opens both.
//! The requests sent are the same either way (`by_reference` suite); once the record has
//! expired, the item goes without IP and user agent, as the retention promises.
//!
//! Which one a queue holds is its enqueuer's to say ([`crate::ports::Enqueuer::items_by_reference`]).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{DeliveryItem, EventId, ForwardedConsent, QueueBody, StoredEvent, UnreadableBody};
use crate::crypto::Sealed;
use crate::destination::{DestinationId, DestinationKind};
use crate::workspace::WorkspaceId;

impl DeliveryItem {
    /// The item of `event` for a destination of `kind`: the event's fields, its hashes under
    /// the destination's profile, and what the event does not hold (`consent`, `sealed`, and
    /// `suppression`: [`suppression_tokens`] of its subjects). Ingest builds its items with
    /// it, and delivery rebuilds items queued by reference with it.
    pub fn of_event(
        event: &StoredEvent,
        kind: DestinationKind,
        consent: ForwardedConsent,
        sealed: Option<Sealed>,
        suppression: Vec<String>,
    ) -> Self {
        Self {
            event_id: event.event_id,
            message_id: event.message_id.clone(),
            event_type: event.event_type,
            name: event.name.clone(),
            timestamp: event.timestamp,
            properties: event.properties.clone(),
            user_data: event
                .hashed
                .get(&kind.profile())
                .cloned()
                .unwrap_or_default(),
            consent,
            sealed,
            operational: None,
            shared: None,
            suppression,
        }
    }
}

/// The suppression tokens of an event's subjects (`dsr::suppression_token`): deliver drops an
/// item once one of them is on the workspace's suppression list.
pub fn suppression_tokens(subjects: &[String]) -> Vec<String> {
    subjects
        .iter()
        .map(|s| crate::dsr::suppression_token(s))
        .collect()
}

/// A queued item by reference: its event, and what the event does not hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemRef {
    pub event_id: EventId,
    #[serde(default, skip_serializing_if = "ForwardedConsent::is_unset")]
    pub consent: ForwardedConsent,
    /// `SealedFields`, sealed exactly as in the item by value (same aad).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<Sealed>,
    /// The item takes its event's shared sealed fields ([`DeliveryItem::shared`]), stored
    /// once beside the messages of its request, instead of `sealed`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
}

impl ItemRef {
    pub fn of(item: &DeliveryItem) -> Self {
        Self {
            event_id: item.event_id,
            consent: item.consent,
            sealed: item.sealed.clone(),
            shared: item.shared.is_some(),
        }
    }
}

impl ForwardedConsent {
    pub fn is_unset(&self) -> bool {
        *self == Self::default()
    }
}

/// A queue message whose items are by reference, as read from the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefBody {
    pub v: u8,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts: u32,
    pub workspace_id: WorkspaceId,
    pub destination_id: DestinationId,
    pub kind: DestinationKind,
    pub refs: Vec<ItemRef>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A by-reference message with its items rebuilt from their stored events.
#[derive(Debug)]
pub struct Hydrated {
    /// The items whose event is stored, in order (`by_reference` set, so that what is
    /// left of it after an attempt is queued by reference again).
    pub body: QueueBody,
    /// The items whose event is no longer stored (erased, expired): not to be delivered.
    pub gone: Vec<EventId>,
}

impl RefBody {
    /// What [`QueueBody::encode`] writes for a by-reference body before its first item (no
    /// attempts spent); each item appends itself after it ([`ItemRef::write`]).
    pub fn encoded_start(
        workspace_id: &WorkspaceId,
        destination_id: &DestinationId,
        kind: DestinationKind,
    ) -> Vec<u8> {
        super::ref_wire::head(QueueBody::VERSION, 0, workspace_id, destination_id, kind)
    }

    /// The event ids of its items, in order.
    pub fn event_ids(&self) -> Vec<EventId> {
        self.refs.iter().map(|r| r.event_id).collect()
    }

    /// Rebuilds each item from its event in `events` (the workspace's, by id), with the
    /// event's operational record from `operational` where it has one, and its shared
    /// sealed fields from `shared` (what the queue stored beside the message) where it
    /// takes them: an empty value where they are missing, which does not open.
    pub fn hydrate(
        self,
        events: &HashMap<EventId, std::sync::Arc<StoredEvent>>,
        operational: &HashMap<EventId, Sealed>,
        shared: &HashMap<EventId, Sealed>,
    ) -> Hydrated {
        let mut items = Vec::with_capacity(self.refs.len());
        let mut gone = Vec::new();
        for r in self.refs {
            match events.get(&r.event_id) {
                Some(event) if event.workspace_id == self.workspace_id => {
                    let mut item = DeliveryItem::of_event(
                        event,
                        self.kind,
                        r.consent,
                        r.sealed,
                        suppression_tokens(&event.subjects),
                    );
                    item.operational = operational.get(&r.event_id).cloned();
                    if r.shared {
                        item.shared = Some(
                            shared
                                .get(&r.event_id)
                                .cloned()
                                .unwrap_or(Sealed(Vec::new())),
                        );
                    }
                    items.push(item);
                }
                _ => gone.push(r.event_id),
            }
        }
        Hydrated {
            body: QueueBody {
                v: self.v,
                attempts: self.attempts,
                workspace_id: self.workspace_id,
                destination_id: self.destination_id,
                kind: self.kind,
                items,
                by_reference: true,
            },
            gone,
        }
    }
}

/// A queue message as a queue holds it: items by value (JSON), or by reference (binary:
/// [`super::ref_wire`]; JSON by-reference bodies written before it still read).
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Value(QueueBody),
    Reference(RefBody),
}

/// Both encodings' fields: a body has `items` or `refs`, never both.
#[derive(Deserialize)]
struct Wire {
    v: u8,
    #[serde(default)]
    attempts: u32,
    workspace_id: WorkspaceId,
    destination_id: DestinationId,
    kind: DestinationKind,
    #[serde(default)]
    items: Option<Vec<DeliveryItem>>,
    #[serde(default)]
    refs: Option<Vec<ItemRef>>,
}

impl Body {
    /// Reads either encoding ([`QueueBody::encode`]); an error for a body TrackLayer did not
    /// write.
    pub fn decode(bytes: &[u8]) -> Result<Self, UnreadableBody> {
        if bytes.first() == Some(&super::ref_wire::MAGIC) {
            return RefBody::decode_binary(bytes).map(Self::Reference);
        }
        let w: Wire = serde_json::from_slice(bytes)?;
        Ok(match (w.items, w.refs) {
            (Some(items), None) => Self::Value(QueueBody {
                v: w.v,
                attempts: w.attempts,
                workspace_id: w.workspace_id,
                destination_id: w.destination_id,
                kind: w.kind,
                items,
                by_reference: false,
            }),
            (None, Some(refs)) => Self::Reference(RefBody {
                v: w.v,
                attempts: w.attempts,
                workspace_id: w.workspace_id,
                destination_id: w.destination_id,
                kind: w.kind,
                refs,
            }),
            _ => {
                return Err(UnreadableBody(serde::de::Error::custom(
                    "a queue body has either items or refs",
                )))
            }
        })
    }

    pub fn workspace_id(&self) -> &WorkspaceId {
        match self {
            Self::Value(b) => &b.workspace_id,
            Self::Reference(b) => &b.workspace_id,
        }
    }

    pub fn destination_id(&self) -> &DestinationId {
        match self {
            Self::Value(b) => &b.destination_id,
            Self::Reference(b) => &b.destination_id,
        }
    }

    /// Delivery attempts already spent on its items in earlier messages.
    pub fn attempts(&self) -> u32 {
        match self {
            Self::Value(b) => b.attempts,
            Self::Reference(b) => b.attempts,
        }
    }

    /// Its items' events and, by value, their message ids.
    pub fn entries(&self) -> Vec<(EventId, Option<super::MessageId>)> {
        match self {
            Self::Value(b) => b
                .items
                .iter()
                .map(|i| (i.event_id, Some(i.message_id.clone())))
                .collect(),
            Self::Reference(b) => b.refs.iter().map(|r| (r.event_id, None)).collect(),
        }
    }

    /// Keeps the items whose event `keep` takes; returns how many went.
    pub fn retain(&mut self, keep: impl Fn(&EventId) -> bool) -> usize {
        match self {
            Self::Value(b) => {
                let before = b.items.len();
                b.items.retain(|i| keep(&i.event_id));
                before - b.items.len()
            }
            Self::Reference(b) => {
                let before = b.refs.len();
                b.refs.retain(|r| keep(&r.event_id));
                before - b.refs.len()
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Self::Value(b) => b.items.is_empty(),
            Self::Reference(b) => b.refs.is_empty(),
        }
    }

    /// The one wire encoding of either kind.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Value(b) => b.encode(),
            Self::Reference(b) => b.encode_binary(),
        }
    }
}

impl QueueBody {
    /// This body as a queue holds it: by reference if it was read so, else by value.
    pub fn stored(&self) -> Body {
        if self.by_reference {
            Body::Reference(RefBody {
                v: self.v,
                attempts: self.attempts,
                workspace_id: self.workspace_id.clone(),
                destination_id: self.destination_id.clone(),
                kind: self.kind,
                refs: self.items.iter().map(ItemRef::of).collect(),
            })
        } else {
            Body::Value(self.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::DestinationId;
    use crate::testkit::{new_event, T0};
    use crate::workspace::Region;

    #[test]
    fn a_body_by_reference_rebuilds_exactly_the_items_by_value_and_leaves_out_gone_events() {
        // (with the operational record of an event that has one, which no body carries)
        // Arrange: two stored events, items of both and of one event that is gone.
        let ws = WorkspaceId::new(Region::Us, "byref");
        let (a, b) = (
            new_event(&ws, "m-a", &["subject-a"], T0).event,
            new_event(&ws, "m-b", &[], T0).event,
        );
        let gone = new_event(&ws, "m-gone", &[], T0).event;
        let theirs = new_event(&WorkspaceId::new(Region::Us, "other"), "m-t", &[], T0).event;
        let consent = ForwardedConsent {
            ad_user_data: Some(true),
            ad_personalization: None,
        };
        let item = |e: &StoredEvent| {
            DeliveryItem::of_event(
                e,
                DestinationKind::MetaCapi,
                consent,
                Some(Sealed(vec![9; 40])),
                suppression_tokens(&e.subjects),
            )
        };
        let by_value = QueueBody {
            v: QueueBody::VERSION,
            attempts: 2,
            workspace_id: ws.clone(),
            destination_id: DestinationId::new("dst_meta"),
            kind: DestinationKind::MetaCapi,
            items: vec![item(&a), item(&gone), item(&theirs), item(&b)],
            by_reference: true,
        };

        // Act
        let encoded = by_value.encode();
        let Ok(Body::Reference(refs)) = Body::decode(&encoded) else {
            panic!("encoded by reference");
        };
        let stored: HashMap<_, _> = [&a, &b, &theirs]
            .into_iter()
            .map(|e| (e.event_id, std::sync::Arc::new(e.clone())))
            .collect();
        let op_a = Sealed(vec![7; 30]);
        let operational =
            HashMap::from([(a.event_id, op_a.clone()), (gone.event_id, op_a.clone())]);
        let Hydrated {
            body,
            gone: left_out,
        } = refs.hydrate(&stored, &operational, &HashMap::new());

        // Assert
        assert!(QueueBody::decode(&encoded).is_err(), "needs its events");
        let with_record = DeliveryItem {
            operational: Some(op_a),
            ..item(&a)
        };
        assert_eq!(body.items, vec![with_record, item(&b)]);
        assert_eq!(body.attempts, 2);
        assert_eq!(left_out, vec![gone.event_id, theirs.event_id]);
        assert!(!String::from_utf8_lossy(&encoded).contains("m-a"));
        assert_eq!(body.encode(), {
            let mut kept = by_value.clone();
            kept.items = vec![item(&a), item(&b)];
            kept.encode()
        });
    }

    #[test]
    fn a_body_with_both_items_and_refs_is_unreadable() {
        let both = br#"{"v":1,"workspace_id":"ws_us_x","destination_id":"dst_x","kind":"webhook","items":[],"refs":[]}"#;
        assert!(Body::decode(both).is_err());
        let neither =
            br#"{"v":1,"workspace_id":"ws_us_x","destination_id":"dst_x","kind":"webhook"}"#;
        assert!(Body::decode(neither).is_err());
    }
}
