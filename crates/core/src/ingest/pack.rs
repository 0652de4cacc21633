//! Packing delivery items into queue messages, one per destination.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use crate::crypto::Sealed;
use crate::destination::Destination;
use crate::event::{
    encode_shared, DeliveryItem, EventId, EventType, ItemRef, MessageId, QueueBody, RefBody,
};
use crate::ports::Outgoing;
use crate::workspace::WorkspaceId;

/// How a queue holds items ([`crate::ports::Enqueuer::items_by_reference`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holding {
    /// Whole items ([`QueueBody`]).
    ByValue,
    /// References to the stored events ([`crate::event::RefBody`]).
    ByReference,
}

/// Packs the items of recorded events into queue messages: one per destination, split to stay
/// under `max_bytes`. The shared sealed fields of items by reference
/// ([`DeliveryItem::shared`]) go once, for all of the messages ([`Outgoing::shared`]).
pub fn pack<T: PackItem>(
    workspace: &WorkspaceId,
    destinations: &[Destination],
    items: impl IntoIterator<Item = (usize, T)>,
    max_bytes: usize,
    holding: Holding,
) -> Vec<Outgoing> {
    let mut per_dest: BTreeMap<usize, Packer> = BTreeMap::new();
    let mut properties = PropertiesJson::default();
    // An event's items come one after the other: its shared fields once.
    let mut shared: Vec<(EventId, Sealed)> = Vec::new();
    for (index, item) in items {
        if let Some(s) = item.shared() {
            let event_id = item.event_id();
            if shared.last().is_none_or(|(e, _)| *e != event_id) {
                shared.push((event_id, s.clone()));
            }
        }
        per_dest
            .entry(index)
            .or_insert_with(|| Packer::new(workspace, &destinations[index], max_bytes, holding))
            .push(item, &mut properties);
    }
    let shared =
        (!shared.is_empty()).then(|| Arc::new(encode_shared(shared.iter().map(|(e, s)| (*e, s)))));
    let mut out = Vec::new();
    for (index, packer) in per_dest {
        let d = &destinations[index];
        out.extend(packer.finish().into_iter().map(|body| Outgoing {
            kind: d.kind,
            destination_id: d.id.clone(),
            workspace_id: workspace.clone(),
            body,
            delay: std::time::Duration::ZERO,
            shared: shared.clone(),
        }));
    }
    out
}

/// A prepared event's item for one destination, as its queue will hold it ([`Holding`]).
#[derive(Debug, Clone, PartialEq)]
pub enum QueuedItem {
    /// The whole item: a queue by value carries it (boxed: a reference is a quarter its size).
    Value(Box<DeliveryItem>),
    /// What a queue by reference carries (delivery rebuilds the item from the stored event
    /// with [`DeliveryItem::of_event`]), and the event's shared sealed fields when the item
    /// takes them ([`DeliveryItem::shared`]). Building whole items only to keep these four
    /// fields of them cloned each event's properties and hashes once per destination, and
    /// the store's writer freed the copies.
    Reference {
        item: ItemRef,
        shared: Option<Sealed>,
    },
}

impl QueuedItem {
    pub fn event_id(&self) -> EventId {
        match self {
            Self::Value(i) => i.event_id,
            Self::Reference { item, .. } => item.event_id,
        }
    }

    /// The item's own sealed fields.
    pub fn sealed(&self) -> Option<&Sealed> {
        match self {
            Self::Value(i) => i.sealed.as_ref(),
            Self::Reference { item, .. } => item.sealed.as_ref(),
        }
    }

    /// Its event's shared sealed fields, when it takes them.
    pub fn shared(&self) -> Option<&Sealed> {
        match self {
            Self::Value(i) => i.shared.as_ref(),
            Self::Reference { shared, .. } => shared.as_ref(),
        }
    }

    /// The whole item, when it is one.
    pub fn as_value(&self) -> Option<&DeliveryItem> {
        match self {
            Self::Value(i) => Some(i),
            Self::Reference { .. } => None,
        }
    }
}

/// An item to pack: owned, or borrowed (packing the same items again, as a store that runs
/// its write twice does: [`crate::ports::PackRecorded`]). A body by reference reads the item
/// either way; a body by value takes an owned whole item as it is and clones a borrowed one.
pub trait PackItem {
    fn event_id(&self) -> EventId;
    /// Its event's shared sealed fields, when it takes them.
    fn shared(&self) -> Option<&Sealed>;
    /// Appends the item as a body by reference holds it.
    fn write_reference(&self, out: &mut Vec<u8>);
    /// The whole item, for a body by value: `None` when it is only a reference.
    fn into_item(self) -> Option<DeliveryItem>;
}

impl PackItem for QueuedItem {
    fn event_id(&self) -> EventId {
        QueuedItem::event_id(self)
    }

    fn shared(&self) -> Option<&Sealed> {
        QueuedItem::shared(self)
    }

    fn write_reference(&self, out: &mut Vec<u8>) {
        match self {
            Self::Value(i) => ItemRef::of(i).write(out),
            Self::Reference { item, .. } => item.write(out),
        }
    }

    fn into_item(self) -> Option<DeliveryItem> {
        match self {
            Self::Value(i) => Some(*i),
            Self::Reference { .. } => None,
        }
    }
}

impl PackItem for &QueuedItem {
    fn event_id(&self) -> EventId {
        QueuedItem::event_id(self)
    }

    fn shared(&self) -> Option<&Sealed> {
        QueuedItem::shared(self)
    }

    fn write_reference(&self, out: &mut Vec<u8>) {
        (*self).write_reference(out);
    }

    fn into_item(self) -> Option<DeliveryItem> {
        self.as_value().cloned()
    }
}

/// Room that most items fit in (events are at most [`MAX_EVENT_BYTES`]).
const ITEM_ROOM: usize = 16 * 1024;

/// The queue message bodies of one destination, filled item by item: each item is written
/// straight into the body; one that overflows it moves to a new body.
struct Packer {
    head: Vec<u8>,
    holding: Holding,
    max_bytes: usize,
    full: Vec<Vec<u8>>,
    body: Vec<u8>,
    count: usize,
}

impl Packer {
    fn new(workspace: &WorkspaceId, d: &Destination, max_bytes: usize, holding: Holding) -> Self {
        let head = match holding {
            Holding::ByValue => QueueBody::encoded_start(workspace, &d.id, d.kind).into_bytes(),
            Holding::ByReference => RefBody::encoded_start(workspace, &d.id, d.kind),
        };
        Self {
            head,
            holding,
            max_bytes,
            full: Vec::new(),
            body: Vec::with_capacity(max_bytes.min(64 * 1024)),
            count: 0,
        }
    }

    fn push(&mut self, item: impl PackItem, properties: &mut PropertiesJson) {
        // Near the end of the buffer, make room for a whole message at once rather than
        // doubling step by step: each step copies the body and costs the allocator a sweep.
        if self.body.capacity() - self.body.len() < ITEM_ROOM {
            let whole = self.max_bytes.saturating_sub(self.body.len());
            self.body.reserve_exact(whole.max(ITEM_ROOM));
        }
        let before = self.body.len();
        if self.count == 0 {
            self.body.extend_from_slice(&self.head);
        } else {
            self.body.extend_from_slice(self.separator());
        }
        let start = self.body.len();
        match self.holding {
            Holding::ByValue => {
                // Prepared with the holding it is packed with ([`super::Pipeline::holding`]):
                // by value, every item is whole. A store's write that panics keeps nothing.
                let item = item
                    .into_item()
                    .expect("an item prepared by reference is packed by reference");
                write_item_json(&mut self.body, item, properties)
            }
            // Binary, one item after another ([`crate::event::RefBody::encode_binary`]).
            Holding::ByReference => item.write_reference(&mut self.body),
        }
        let item_len = self.body.len() - start;
        if self.count > 0 && before + item_len + self.end().len() + 1 > self.max_bytes {
            // The message is full without this item: close it, and start the next with it.
            let encoded = self.body.split_off(start);
            self.body.truncate(before);
            self.body.extend_from_slice(self.end());
            let mut next = Vec::with_capacity(self.max_bytes.min(64 * 1024));
            next.extend_from_slice(&self.head);
            next.extend_from_slice(&encoded);
            self.full.push(std::mem::replace(&mut self.body, next));
            self.count = 1;
        } else {
            self.count += 1;
        }
    }

    /// What goes between two items: `,` in a JSON list, nothing in a binary body.
    fn separator(&self) -> &'static [u8] {
        match self.holding {
            Holding::ByValue => b",",
            Holding::ByReference => b"",
        }
    }

    /// What closes a body.
    fn end(&self) -> &'static [u8] {
        match self.holding {
            Holding::ByValue => QueueBody::ENCODED_END,
            Holding::ByReference => b"",
        }
    }

    fn finish(mut self) -> Vec<Vec<u8>> {
        if self.count > 0 {
            self.body.extend_from_slice(self.end());
            self.full.push(self.body);
        }
        self.full
    }
}

/// The JSON of the last properties [`write_item_json`] wrote. The items of one event come one
/// after the other with equal properties, and properties are most of an item's bytes: each
/// event's are serialized once instead of once per destination, into a buffer reused from
/// event to event. (`Value` equality is order-sensitive for objects, as serialization is,
/// while serde_json's `preserve_order` feature stays off.)
#[derive(Default)]
struct PropertiesJson {
    value: Option<Value>,
    json: Vec<u8>,
}

impl PropertiesJson {
    fn of(&mut self, properties: Value) -> &[u8] {
        if self.value.as_ref() != Some(&properties) {
            self.json.clear();
            serde_json::to_writer(&mut self.json, &properties).expect("properties serialize");
            self.value = Some(properties);
        }
        &self.json
    }
}

/// The fields of a [`DeliveryItem`] before `properties`, as its derived `Serialize` writes them.
#[derive(Serialize)]
struct ItemHead<'a> {
    event_id: &'a EventId,
    message_id: &'a MessageId,
    event_type: EventType,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a String>,
    #[serde(with = "time::serde::rfc3339")]
    timestamp: OffsetDateTime,
}

/// Appends exactly what `serde_json::to_vec(&item)` gives to `out`: head fields, the
/// properties' JSON (reused from the previous item when equal), the fields after them.
fn write_item_json(out: &mut Vec<u8>, mut item: DeliveryItem, properties: &mut PropertiesJson) {
    #[cfg(debug_assertions)]
    let (start, expected) = (
        out.len(),
        serde_json::to_vec(&item).expect("items serialize"),
    );
    let item_properties = std::mem::take(&mut item.properties);
    // No `..`: a field added to `DeliveryItem` must be written here too.
    let DeliveryItem {
        event_id,
        message_id,
        event_type,
        name,
        timestamp,
        properties: _,
        user_data,
        consent,
        sealed,
        // Never in a body (`serde(skip)`): ingest's items have none.
        operational: _,
        // Never in a body either; an item by value seals its own fields (`sealed`).
        shared: _,
        suppression,
    } = &item;
    let head = ItemHead {
        event_id,
        message_id,
        event_type: *event_type,
        name: name.as_ref(),
        timestamp: *timestamp,
    };
    // `{"event_id":…,"timestamp":"…"}`, reopened: its `}` becomes `,"properties":…`.
    serde_json::to_writer(&mut *out, &head).expect("items serialize");
    let closing = out.pop();
    debug_assert_eq!(closing, Some(b'}'));
    out.extend_from_slice(b",\"properties\":");
    out.extend_from_slice(properties.of(item_properties));
    // The rest by hand: the digests and the base64 of `sealed` are most of it, and have
    // nothing to escape.
    out.extend_from_slice(b",\"user_data\":{");
    for (i, (field, value)) in user_data.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, field).expect("fields serialize");
        out.push(b':');
        write_json_str(out, value);
    }
    out.extend_from_slice(b"},\"consent\":");
    serde_json::to_writer(&mut *out, consent).expect("consent serializes");
    if let Some(sealed) = sealed {
        out.extend_from_slice(b",\"sealed\":");
        sealed.write_json(out);
    }
    if !suppression.is_empty() {
        out.extend_from_slice(b",\"sup\":[");
        for (i, token) in suppression.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_json_str(out, token);
        }
        out.push(b']');
    }
    out.push(b'}');
    #[cfg(debug_assertions)]
    assert_eq!(
        out[start..],
        expected[..],
        "write_item_json has drifted from DeliveryItem's serialization"
    );
}

/// A JSON string as serde_json writes it. serde_json escapes only `"`, `\\` and control
/// characters: a string with none of them (a hex digest) is copied as it is.
fn write_json_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, s).expect("strings serialize");
    }
}

/// The hot paths were rewritten for speed ([`pack`] writes items straight into message bodies
/// and serializes each event's properties once). These cases hold them to the plain versions
/// they replaced (`scrub`'s are in its own module).
#[cfg(test)]
mod hot_path_equivalence {
    use serde_json::json;
    use time::macros::datetime;
    use uuid::Uuid;

    use super::*;
    use crate::crypto::Sealed;
    use crate::destination::{DestinationId, DestinationKind};
    use crate::event::ForwardedConsent;
    use crate::identity::Field;
    use crate::ingest::MAX_QUEUE_MESSAGE_BYTES;
    use crate::workspace::Region;

    /// The straightforward version: every item serialized on its own, then concatenated.
    fn reference(
        workspace: &WorkspaceId,
        destinations: &[Destination],
        items: Vec<(usize, DeliveryItem)>,
        max_bytes: usize,
    ) -> Vec<Outgoing> {
        let mut per_dest: BTreeMap<usize, Vec<Vec<u8>>> = BTreeMap::new();
        for (index, item) in items {
            per_dest
                .entry(index)
                .or_default()
                .push(serde_json::to_vec(&item).unwrap());
        }
        let mut out = Vec::new();
        for (index, jsons) in per_dest {
            let d = &destinations[index];
            let head = format!(
                r#"{{"v":{},"workspace_id":{},"destination_id":{},"kind":{},"items":["#,
                QueueBody::VERSION,
                serde_json::to_string(workspace.as_str()).unwrap(),
                serde_json::to_string(d.id.as_str()).unwrap(),
                serde_json::to_string(d.kind.as_str()).unwrap(),
            );
            let mut body = Vec::new();
            let mut count = 0usize;
            for json in jsons {
                if count > 0 && body.len() + json.len() + 3 > max_bytes {
                    body.extend_from_slice(b"]}");
                    out.push(outgoing(workspace, d, std::mem::take(&mut body)));
                    count = 0;
                }
                if count == 0 {
                    body.extend_from_slice(head.as_bytes());
                } else {
                    body.push(b',');
                }
                body.extend_from_slice(&json);
                count += 1;
            }
            if count > 0 {
                body.extend_from_slice(b"]}");
                out.push(outgoing(workspace, d, body));
            }
        }
        out
    }

    fn outgoing(workspace: &WorkspaceId, d: &Destination, body: Vec<u8>) -> Outgoing {
        Outgoing {
            kind: d.kind,
            destination_id: d.id.clone(),
            workspace_id: workspace.clone(),
            body,
            delay: std::time::Duration::ZERO,
            shared: None,
        }
    }

    /// The testkit's destination of `kind`, with a known id.
    fn destination(ws: &WorkspaceId, n: u8, kind: DestinationKind) -> Destination {
        let at = datetime!(2026-03-01 12:00 UTC);
        Destination {
            id: DestinationId::new(&format!("pack{n}")),
            ..crate::testkit::destination(ws, kind, at)
        }
    }

    /// Items of several events, each event to some of three destinations, with properties
    /// that repeat across events, differ only in key order or number type, or are empty.
    fn items() -> Vec<(usize, DeliveryItem)> {
        let properties = [
            json!({"order_id": "A-1", "total": 10.5, "products": [{"sku": "x", "q": 1}]}),
            json!({"order_id": "A-1", "total": 10.5, "products": [{"sku": "x", "q": 1}]}),
            json!({"order_id": "A-2", "total": 10, "note": "caf\u{e9} \"quoted\" \\ \n"}),
            json!({"order_id": "A-2", "total": 10.0, "note": "caf\u{e9} \"quoted\" \\ \n"}),
            json!({}),
            json!({"order_id": "A-3", "tags": ["a", "b"], "nested": {"deep": [1, 2, {"k": null}]}}),
        ];
        let mut out = Vec::new();
        for (n, props) in properties.into_iter().enumerate() {
            let event_id = EventId(Uuid::from_u128(n as u128 + 1));
            for index in [0, 2, 1].into_iter().filter(|i| (n + i) % 4 != 3) {
                let mut user_data = BTreeMap::new();
                if index != 1 {
                    user_data.insert(Field::Email, crate::identity::sha256_hex("a@b.co"));
                }
                if index == 2 {
                    // Not a digest: what the fast path must hand to serde_json.
                    user_data.insert(Field::City, "q\" b\\ nl\n tab\t \u{1} caf\u{e9}".into());
                }
                out.push((
                    index,
                    DeliveryItem {
                        event_id,
                        message_id: MessageId::parse(&format!("m-{n}")).unwrap(),
                        event_type: EventType::Track,
                        name: (n % 2 == 0).then(|| format!("Order {n}")),
                        timestamp: datetime!(2026-03-01 11:59:59.123 UTC),
                        properties: props.clone(),
                        user_data,
                        consent: ForwardedConsent {
                            ad_user_data: (index == 1).then_some(true),
                            ad_personalization: None,
                        },
                        operational: None,
                        shared: None,
                        sealed: (n % 3 != 1).then(|| Sealed(vec![n as u8; 30 + index])),
                        suppression: if n % 2 == 1 {
                            vec![crate::identity::sha256_hex(&n.to_string())]
                        } else {
                            Vec::new()
                        },
                    },
                ));
            }
        }
        out
    }

    #[test]
    fn pack_writes_exactly_what_serializing_each_item_alone_writes() {
        let ws = WorkspaceId::new(Region::Us, "packtest");
        let destinations = [
            destination(&ws, 1, DestinationKind::MetaCapi),
            destination(&ws, 2, DestinationKind::Ga4),
            destination(&ws, 3, DestinationKind::Tiktok),
        ];
        for max_bytes in [0, 300, 600, 1_000, 2_000, 5_000, MAX_QUEUE_MESSAGE_BYTES] {
            let parts = |messages: Vec<Outgoing>| -> Vec<_> {
                messages
                    .into_iter()
                    .map(|m| (m.kind, m.destination_id, m.workspace_id, m.body))
                    .collect()
            };
            let got = parts(pack(
                &ws,
                &destinations,
                items()
                    .into_iter()
                    .map(|(d, i)| (d, QueuedItem::Value(Box::new(i)))),
                max_bytes,
                Holding::ByValue,
            ));
            let want = parts(reference(&ws, &destinations, items(), max_bytes));
            assert_eq!(got.len(), want.len(), "max_bytes {max_bytes}");
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(
                    (g.0, &g.1, &g.2),
                    (w.0, &w.1, &w.2),
                    "max_bytes {max_bytes}"
                );
                assert_eq!(
                    String::from_utf8_lossy(&g.3),
                    String::from_utf8_lossy(&w.3),
                    "max_bytes {max_bytes}"
                );
            }
            if max_bytes < 1_000 {
                assert!(got.len() > 3, "max_bytes {max_bytes} splits messages");
            }
        }
    }
}
