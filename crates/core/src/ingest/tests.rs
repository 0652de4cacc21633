//! The pure part of ingest, as a specification: parse → validate → normalize → hash → consent
//! → route → pack, with no I/O. Fixtures are built here (the `testkit` feature is off in the
//! crate's own unit tests); JSON fixtures live in `fixtures/`.

use serde_json::json;
use time::macros::datetime;
use uuid::Uuid;

use super::*;
use crate::clock::SequentialIds;
use crate::consent::ConsentPolicy;
use crate::crypto::{aad, WorkspaceKeys};
use crate::crypto::{DataKey, SealLabel, Sealed, WrappedKey};
use crate::destination::{Destination, DestinationKind};
use crate::destination::{DestinationId, EventFilter};
use crate::event::{DeliveryItem, EventId, EventType, QueueBody, Routing, SealedFields};
use crate::identity::sha256_hex;
use crate::identity::{Field, Profile};
use crate::ports::Outgoing;
use crate::testkit::track_call;
use crate::workspace::KeyRef;
use crate::workspace::{Region, Retention, Workspace, WorkspaceId};
use serde_json::{Map, Value};
use time::OffsetDateTime;

const RECEIVED_AT: OffsetDateTime = datetime!(2026-03-01 12:00:00 UTC);

/// Meta's published example: `John_Smith@gmail.com` → this SHA-256.
const META_JOHN_SMITH: &str = "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f";
/// Google's published example: `+1-800-555-0100` → this SHA-256.
const GOOGLE_PHONE: &str = "fb4f73a6ec5fdb7077d564cdd22c3554b43ce49168550c3b12c547b78c517b30";

const META: DestinationKind = DestinationKind::MetaCapi;
const GA4: DestinationKind = DestinationKind::Ga4;
const TIKTOK: DestinationKind = DestinationKind::Tiktok;
const WEBHOOK: DestinationKind = DestinationKind::Webhook;

fn workspace(region: Region) -> Workspace {
    Workspace {
        id: WorkspaceId::new(region, "01ingesttest"),
        name: "Ingest test".into(),
        region,
        created_at: RECEIVED_AT,
        retention: Retention::default(),
        consent: ConsentPolicy::default(),
        key_ref: KeyRef::Platform,
        data_key: WrappedKey(vec![0; 8]),
        security: Default::default(),
        closed_at: None,
    }
}

/// A destination of `kind`, named by its kind, with no configuration.
fn destination(ws: &WorkspaceId, kind: DestinationKind) -> Destination {
    Destination {
        id: DestinationId::new(&kind.as_str().replace('_', "")),
        config: json!({}),
        secrets: Sealed(vec![0; 40]),
        ..crate::testkit::destination(ws, kind, RECEIVED_AT)
    }
}

/// A workspace with one destination of each kind (Meta, GA4, TikTok, webhook, in that order).
struct Setup {
    snapshot: Snapshot,
    ids: SequentialIds,
    meta: RequestMeta,
    requirements: Option<RequirementCheck>,
}

impl Setup {
    fn new(region: Region) -> Self {
        let workspace = workspace(region);
        let destinations = DestinationKind::ALL
            .into_iter()
            .map(|kind| destination(&workspace.id, kind))
            .collect();
        Self {
            snapshot: Snapshot {
                workspace,
                destinations,
                keys: WorkspaceKeys::new(&DataKey::from_bytes([7; 32])),
            },
            ids: SequentialIds::default(),
            meta: RequestMeta {
                ip: None,
                user_agent: None,
                gpc: false,
                browser: false,
            },
            requirements: None,
        }
    }

    fn with_keys(mut self, keys: WorkspaceKeys) -> Self {
        self.snapshot.keys = keys;
        self
    }

    fn with_requirements(mut self, check: RequirementCheck) -> Self {
        self.requirements = Some(check);
        self
    }

    fn with_gpc_header(mut self) -> Self {
        self.meta.gpc = true;
        self
    }

    fn with_filter(mut self, kind: DestinationKind, filter: EventFilter) -> Self {
        let i = self.index(kind);
        self.snapshot.destinations[i].events = filter;
        self
    }

    fn pipeline(&self) -> Pipeline<'_> {
        let holding = Holding::ByValue;
        Pipeline {
            requirements: self.requirements,
            ..self
                .snapshot
                .pipeline(&self.ids, &self.meta, RECEIVED_AT, holding)
        }
    }

    fn run(&self, endpoint: Endpoint, body: &[u8]) -> PreparedBatch {
        let parsed = parse_body(endpoint, body).expect("the body parses");
        prepare(&self.pipeline(), &parsed)
    }

    fn batch(&self, body: Value) -> PreparedBatch {
        self.run(Endpoint::Batch, &serde_json::to_vec(&body).unwrap())
    }

    fn items(&self, items: Vec<Value>) -> PreparedBatch {
        self.batch(json!({ "batch": items }))
    }

    /// Prepares one event that must be accepted.
    fn accept(&self, item: Value) -> PreparedBatch {
        let out = self.items(vec![item]);
        assert!(out.rejected.is_empty(), "rejected: {:?}", out.rejected);
        assert_eq!(out.events.len(), 1);
        out
    }

    /// The single rejection of one event.
    fn reject(&self, item: Value) -> Rejection {
        let out = self.items(vec![item]);
        assert!(out.events.is_empty(), "the event was accepted");
        assert_eq!(out.rejected.len(), 1);
        out.rejected.into_iter().next().unwrap()
    }

    fn index(&self, kind: DestinationKind) -> usize {
        self.snapshot
            .destinations
            .iter()
            .position(|d| d.kind == kind)
            .expect("a destination of this kind")
    }

    fn routing<'a>(
        &self,
        out: &'a PreparedBatch,
        event: usize,
        kind: DestinationKind,
    ) -> &'a Routing {
        let id = &self.snapshot.destinations[self.index(kind)].id;
        out.events[event]
            .event
            .routing
            .iter()
            .find(|r| &r.destination_id == id)
            .expect("a routing decision for every destination")
    }

    fn item<'a>(
        &self,
        out: &'a PreparedBatch,
        event: usize,
        kind: DestinationKind,
    ) -> Option<&'a DeliveryItem> {
        self.queued(out, event, kind).map(|item| {
            item.as_value()
                .expect("prepared by value: the item is whole")
        })
    }

    fn queued<'a>(
        &self,
        out: &'a PreparedBatch,
        event: usize,
        kind: DestinationKind,
    ) -> Option<&'a QueuedItem> {
        let index = self.index(kind);
        out.items[event]
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, item)| item)
    }

    /// The queue messages of every item of `out`, one per destination, each under the largest
    /// message size, holding the items themselves.
    fn pack_by_value(&self, out: &PreparedBatch) -> Vec<Outgoing> {
        pack(
            &self.snapshot.workspace.id,
            &self.snapshot.destinations,
            out.items.iter().flatten().cloned(),
            MAX_QUEUE_MESSAGE_BYTES,
            Holding::ByValue,
        )
    }

    /// Opens the sealed part of an item with the workspace key: its own, or (by reference)
    /// its event's shared one.
    fn open(&self, kind: DestinationKind, item: &impl SealedParts) -> SealedFields {
        let d = &self.snapshot.destinations[self.index(kind)];
        let (event_id, own, shared) = item.parts();
        let (aad, sealed) = match (own, shared) {
            (Some(own), _) => (
                aad(
                    SealLabel::Item,
                    &self.snapshot.workspace.id,
                    &format!("{}:{}", d.id, event_id),
                ),
                own,
            ),
            (None, shared) => (
                aad(
                    SealLabel::Shared,
                    &self.snapshot.workspace.id,
                    &event_id.to_string(),
                ),
                shared.expect("a sealed part"),
            ),
        };
        let plain = self
            .snapshot
            .keys
            .open(&aad, sealed)
            .expect("the sealed part opens with the workspace key");
        crate::event::sealed_wire::decode_fields(&plain).expect("sealed fields")
    }
}

/// An item's event and sealed parts (its own, its event's shared), whole or queued.
trait SealedParts {
    fn parts(&self) -> (EventId, Option<&Sealed>, Option<&Sealed>);
}

impl SealedParts for DeliveryItem {
    fn parts(&self) -> (EventId, Option<&Sealed>, Option<&Sealed>) {
        (self.event_id, self.sealed.as_ref(), self.shared.as_ref())
    }
}

impl SealedParts for QueuedItem {
    fn parts(&self) -> (EventId, Option<&Sealed>, Option<&Sealed>) {
        (self.event_id(), self.sealed(), self.shared())
    }
}

fn granted() -> Value {
    json!({"consent": {"categoryPreferences": {"advertising": true, "analytics": true}}})
}

// ---------------------------------------------------------------------------------------------
// Timestamps

/// A track call that happened at `original` by the device's clock (`originalTimestamp`), sent
/// at `sent` by the same clock when given.
fn track_at(original: &str, sent: Option<&str>) -> Value {
    let mut e = track_call("m1");
    e["originalTimestamp"] = json!(original);
    if let Some(sent) = sent {
        e["sentAt"] = json!(sent);
    }
    e
}

/// The timestamp ingest gave the first event of `out`.
fn first_timestamp(out: &PreparedBatch) -> OffsetDateTime {
    out.events[0].event.timestamp
}

#[test]
fn skew_correction_sets_the_timestamp_to_received_at_minus_the_clients_send_delay() {
    let s = Setup::new(Region::Us);
    // The device clock is two hours behind; the event was sent 5 s after it happened.
    let e = track_at("2026-03-01T10:00:00.000Z", Some("2026-03-01T10:00:05.000Z"));

    let out = s.accept(e);

    assert_eq!(first_timestamp(&out), datetime!(2026-03-01 11:59:55 UTC));
    assert_eq!(out.events[0].event.received_at, RECEIVED_AT);
}

#[test]
fn a_batch_level_sent_at_applies_to_items_without_their_own() {
    let s = Setup::new(Region::Us);
    let e = track_at("2026-03-01T10:00:00.000Z", None);

    let out = s.batch(json!({"sentAt": "2026-03-01T10:00:30.000Z", "batch": [e]}));

    assert_eq!(first_timestamp(&out), datetime!(2026-03-01 11:59:30 UTC));
}

#[test]
fn an_items_own_sent_at_wins_over_the_batch_sent_at() {
    let s = Setup::new(Region::Us);
    let e = track_at("2026-03-01T10:00:00.000Z", Some("2026-03-01T10:00:02.000Z"));

    let out = s.batch(json!({"sentAt": "2026-03-01T10:00:30.000Z", "batch": [e]}));

    assert_eq!(first_timestamp(&out), datetime!(2026-03-01 11:59:58 UTC));
}

#[test]
fn a_skew_correction_beyond_the_range_of_a_date_time_is_refused_naming_original_timestamp() {
    // Found by schemathesis against the tracking API: this pair made ingest panic (a
    // subtraction out of range) or fail to store an event of year −6664 (a 500).
    let s = Setup::new(Region::Us);
    for (original, sent) in [
        ("0044-01-01T00:00:00Z", "8734-06-02T00:00:00Z"),
        ("0000-01-01T00:00:00Z", "9999-12-31T23:59:59Z"),
        ("9999-12-31T23:59:59Z", "0000-01-01T00:00:00Z"),
    ] {
        let r = s.reject(track_at(original, Some(sent)));

        assert_eq!(r.field, "/originalTimestamp", "{original} {sent}");
    }
}

#[test]
fn an_explicit_timestamp_is_used_as_is_when_there_is_no_original_timestamp() {
    let s = Setup::new(Region::Us);
    let mut e = track_call("m1");
    e["timestamp"] = json!("2026-02-27T08:30:00.250+01:00");
    e["sentAt"] = json!("2026-03-01T10:00:05.000Z");

    let out = s.accept(e);

    assert_eq!(
        first_timestamp(&out),
        datetime!(2026-02-27 07:30:00.250 UTC)
    );
}

#[test]
fn an_event_without_any_timestamp_is_timestamped_when_received() {
    let s = Setup::new(Region::Us);

    let out = s.accept(track_call("m1"));

    assert_eq!(first_timestamp(&out), RECEIVED_AT);
}

// ---------------------------------------------------------------------------------------------
// Batch-level fields

#[test]
fn batch_level_context_merges_into_each_item_and_item_keys_win() {
    let s = Setup::new(Region::Eu);
    let mut own_ip = track_call("m2");
    own_ip["context"] = json!({"ip": "192.0.2.2"});
    let body = json!({
        "context": {
            "ip": "192.0.2.1",
            "consent": {"categoryPreferences": {"advertising": true}}
        },
        "integrations": {"All": true},
        "batch": [track_call("m1"), own_ip]
    });

    let out = s.batch(body);

    assert_eq!(out.events.len(), 2);
    // The batch's consent reached both items: EU advertising is opt-in.
    assert!(s.routing(&out, 0, META).routed);
    assert!(s.routing(&out, 1, META).routed);
    let first = s.open(META, s.queued(&out, 0, META).unwrap());
    let second = s.open(META, s.queued(&out, 1, META).unwrap());
    assert_eq!(first.ip.as_deref(), Some("192.0.2.1"));
    assert_eq!(second.ip.as_deref(), Some("192.0.2.2"));
}

#[test]
fn batch_level_integrations_must_be_an_object() {
    let body =
        br#"{"integrations": ["All"], "batch": [{"type":"track","event":"e","userId":"u"}]}"#;

    let err = parse_body(Endpoint::Batch, body).unwrap_err();

    assert!(
        matches!(&err, IngestError::Invalid { field, .. } if field == "/integrations"),
        "{err:?}"
    );
}

/// The shape of the security review's payload (#3): 2,500 tiny events under a batch-level
/// `context` of `keys` keys, which every event used to receive a copy of.
fn wide_context_batch(keys: usize) -> Vec<u8> {
    let context: Map<String, Value> = (0..keys).map(|i| (format!("k{i}"), json!(1))).collect();
    let event = json!({"type": "track", "event": "e", "userId": "u"});
    serde_json::to_vec(&json!({
        "context": context,
        "batch": vec![event; MAX_BATCH_EVENTS],
    }))
    .unwrap()
}

#[test]
fn a_batch_level_context_of_25000_keys_is_refused_whole_before_any_event_is_prepared() {
    let body = wide_context_batch(25_000);
    assert!(body.len() < MAX_REQUEST_BYTES);

    let err = parse_body(Endpoint::Batch, &body).unwrap_err();

    assert!(
        matches!(&err, IngestError::TooManyKeys { field, keys: 25_000, limit } if field == "/context" && *limit == MAX_BATCH_OBJECT_KEYS),
        "{err:?}"
    );
}

#[test]
fn a_batch_level_context_at_the_key_limit_is_prepared_for_every_event() {
    let s = Setup::new(Region::Us);
    let body = wide_context_batch(MAX_BATCH_OBJECT_KEYS);

    let out = s.run(Endpoint::Batch, &body);

    assert_eq!(out.events.len(), MAX_BATCH_EVENTS);
    assert!(out.rejected.is_empty());
}

#[test]
fn a_nested_batch_level_object_over_the_key_limit_is_refused_naming_its_path() {
    let prefs: Map<String, Value> = (0..=MAX_BATCH_OBJECT_KEYS)
        .map(|i| (format!("c{i}"), json!(true)))
        .collect();
    let options = json!({
        "integrations": {"Webhook": {"options": prefs.clone()}},
        "batch": [track_call("m1")],
    });
    let categories = json!({
        "context": {"consent": {"categoryPreferences": prefs}},
        "batch": [track_call("m1")],
    });

    assert_eq!(too_many_keys_at(&options), "/integrations/Webhook/options");
    assert_eq!(
        too_many_keys_at(&categories),
        "/context/consent/categoryPreferences"
    );
}

/// The field a batch `body` is refused for, an object of too many keys.
fn too_many_keys_at(body: &Value) -> String {
    let body = serde_json::to_vec(body).unwrap();
    match parse_body(Endpoint::Batch, &body).unwrap_err() {
        IngestError::TooManyKeys { field, .. } => field,
        err => panic!("not refused for its keys: {err:?}"),
    }
}

#[test]
fn an_event_object_over_1000_keys_is_rejected_naming_it() {
    let s = Setup::new(Region::Us);
    for field in ["properties", "traits", "context", "integrations"] {
        let mut e = track_call("m-wide");
        e[field] = Value::Object(
            (0..=MAX_OBJECT_KEYS)
                .map(|i| (format!("{i}"), json!(0)))
                .collect(),
        );

        let r = s.reject(e);

        assert_eq!(r.field, format!("/{field}"));
        assert!(r.detail.contains("1001 keys"), "{}", r.detail);
    }
}

#[test]
fn a_context_that_is_not_an_object_is_rejected_naming_it_and_null_is_none() {
    let s = Setup::new(Region::Us);
    for context in [
        json!("x"),
        json!(1),
        json!(-1),
        json!(1.5),
        json!(true),
        json!([{}]),
    ] {
        let mut e = track_call("m-ctx");
        e["context"] = context.clone();

        let r = s.reject(e);

        assert_eq!(
            (r.field.as_str(), r.detail.as_str()),
            ("/context", "must be an object")
        );
    }
    let mut e = track_call("m-null");
    e["context"] = Value::Null;
    s.accept(e);
    let twice = br#"{"batch": [{"type": "track", "event": "e", "userId": "u",
        "context": {}, "context": {"ip": "192.0.2.1"}}]}"#;
    let out = s.run(Endpoint::Batch, twice);
    assert!(out.rejected[0].detail.contains("duplicate field `context`"));
}

/// What an SDK sends in `context` beyond what ingest reads (skipped as it is parsed), an
/// email and a phone number among it: nothing of it reaches the event, its items or its
/// identifiers.
#[test]
fn context_members_ingest_does_not_read_change_nothing_it_prepares() {
    let s = Setup::new(Region::Us);
    let read = json!({
        "ip": "192.0.2.7",
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/125.0",
        "page": {"url": "https://shop.example/p?gclid=G-1&ttclid=T-1", "title": "P"},
        "channel": "Web",
        "traits": {"email": "Jane@Example.com", "firstName": "Jane"},
        "consent": {"categoryPreferences": {"advertising": true, "analytics": false}},
        "location": {"country": "US"},
        "fbp": "fb.1.1700000000000.42",
        "_ga": "GA1.1.123.456",
    });
    let mut sent = read.clone();
    for (k, v) in [
        (
            "library",
            json!({"name": "analytics.js", "version": "1.70.0"}),
        ),
        ("locale", json!("en-US")),
        ("timezone", json!("America/Toronto")),
        (
            "device",
            json!({"id": "d-1", "advertisingId": "a-1", "model": "Pixel 8"}),
        ),
        (
            "app",
            json!({"name": "Shop", "version": "4.2", "build": "420"}),
        ),
        ("os", json!({"name": "Android", "version": "14"})),
        ("screen", json!({"width": 390, "height": 844})),
        (
            "campaign",
            json!({"name": "spring", "source": "newsletter"}),
        ),
        (
            "support",
            json!({"email": "john@example.org", "phone": "+1 415 555 0100"}),
        ),
        ("gpc_note", json!([1, 2, {"deep": [null, true]}])),
    ] {
        sent[k] = v;
    }
    let prepared = |context: &Value| {
        let mut e = track_call("m-sdk");
        e["context"] = context.clone();
        let out = s.accept(e);
        let event = &out.events[0].event;
        let opened: Vec<_> = [META, GA4, TIKTOK, WEBHOOK]
            .into_iter()
            .filter_map(|kind| s.queued(&out, 0, kind).map(|q| s.open(kind, q)))
            .map(|fields| serde_json::to_value(fields).unwrap())
            .collect();
        (
            serde_json::to_value((&event.hashed, &event.properties, &event.traits)).unwrap(),
            format!("{:?} {:?}", event.routing, event.subjects),
            out.events[0].operational.is_some(),
            opened,
        )
    };

    let (ids, routing, operational, opened) = prepared(&read);
    // What ingest reads of the context was read: the email, the consent, the client, the
    // click ids.
    assert!(
        ids.to_string().contains(&sha256_hex("jane@example.com")),
        "{ids}"
    );
    assert!(routing.contains("analytics"), "{routing}");
    assert!(operational);
    let meta = opened[0].to_string();
    for read in ["192.0.2.7", "fb.1.1700000000000.42", "G-1", "web"] {
        assert!(meta.contains(read), "{read}: {meta}");
    }
    assert_eq!(prepared(&sent), (ids, routing, operational, opened));
}

#[test]
fn batch_level_integrations_apply_to_each_event_and_the_events_own_win() {
    let s = Setup::new(Region::Us);
    let mut own = track_call("m2");
    own["integrations"] = json!({"All": true});
    let body = json!({
        "integrations": {"All": false},
        "batch": [track_call("m1"), own]
    });

    let out = s.batch(body);

    assert!(!s.routing(&out, 0, WEBHOOK).routed);
    assert_eq!(
        s.routing(&out, 0, WEBHOOK).skipped.as_deref(),
        Some("turned off by the event's integrations object")
    );
    assert!(s.routing(&out, 1, WEBHOOK).routed);
}

// ---------------------------------------------------------------------------------------------
// Message ids

#[test]
fn a_missing_message_id_is_generated_as_a_uuid_v7() {
    let s = Setup::new(Region::Us);
    let mut e = track_call("x");
    e.as_object_mut().unwrap().remove("messageId");

    let out = s.accept(e);

    let id = out.events[0].event.message_id.as_str();
    let uuid = Uuid::parse_str(id).expect("a UUID");
    assert_eq!(uuid.get_version_num(), 7);
}

#[test]
fn the_same_message_id_twice_in_one_batch_is_kept_once() {
    let s = Setup::new(Region::Us);

    let out = s.items(vec![
        track_call("dup"),
        track_call("dup"),
        track_call("other"),
    ]);

    let ids: Vec<_> = out
        .events
        .iter()
        .map(|e| e.event.message_id.as_str())
        .collect();
    assert_eq!(ids, ["dup", "other"]);
    assert_eq!(out.items.len(), 2);
    assert_eq!(out.duplicates, 1);
    assert!(out.rejected.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Rejections name the index, the messageId and the field

/// Asserts that the first rejection of `out` names the event at `index` by `message_id`, and
/// `field`, its detail saying `says`.
fn assert_first_rejection(
    out: &PreparedBatch,
    index: usize,
    message_id: &str,
    field: &str,
    says: &str,
) {
    let r = &out.rejected[0];
    assert_eq!(r.index, index);
    assert_eq!(r.message_id.as_deref(), Some(message_id));
    assert_eq!(r.field, field);
    assert!(r.detail.contains(says), "{}", r.detail);
}

#[test]
fn rejects_an_event_without_user_id_or_anonymous_id() {
    let s = Setup::new(Region::Us);
    let mut e = track_call("m-anon");
    e["anonymousId"] = Value::Null;

    let out = s.items(vec![track_call("ok"), e]);

    assert_eq!(out.events.len(), 1);
    assert_first_rejection(&out, 1, "m-anon", "/userId", "anonymousId");
}

#[test]
fn a_null_anonymous_id_is_fine_when_there_is_a_user_id() {
    let s = Setup::new(Region::Us);
    let mut e = track_call("m1");
    e["anonymousId"] = Value::Null;
    e["userId"] = json!("user-1");

    s.accept(e);
}

/// How a case damages an otherwise valid track call.
enum Damage {
    Remove(&'static str),
    Set(&'static str, Value),
}

#[test]
fn an_event_with_one_bad_field_is_rejected_naming_its_message_id_and_the_field() {
    let timestamp = json!("yesterday at noon");
    let properties = json!(["value", 10]);
    let cases = [
        (
            "no event name",
            "m-noevent",
            Damage::Remove("event"),
            "/event",
        ),
        (
            "an unknown type",
            "m-type",
            Damage::Set("type", json!("purchase")),
            "/type",
        ),
        ("no type", "m-notype", Damage::Remove("type"), "/type"),
        (
            "an unparseable timestamp",
            "m-ts",
            Damage::Set("timestamp", timestamp),
            "/timestamp",
        ),
        (
            "non-object properties",
            "m-props",
            Damage::Set("properties", properties),
            "/properties",
        ),
    ];
    let s = Setup::new(Region::Us);
    for (case, message_id, damage, field) in cases {
        let mut e = track_call(message_id);
        match damage {
            Damage::Remove(name) => {
                e.as_object_mut().unwrap().remove(name);
            }
            Damage::Set(name, value) => e[name] = value,
        }

        let r = s.reject(e);

        assert_eq!(
            (r.index, r.message_id.as_deref(), r.field.as_str()),
            (0, Some(message_id), field),
            "{case}"
        );
    }
}

#[test]
fn rejects_an_event_over_32_kb_in_a_batch_and_keeps_the_others() {
    let s = Setup::new(Region::Us);
    let mut big = track_call("m-big");
    big["properties"]["blob"] = json!("x".repeat(MAX_EVENT_BYTES));

    let out = s.items(vec![track_call("a"), big, track_call("b")]);

    assert_eq!(out.events.len(), 2);
    assert_eq!(out.rejected.len(), 1);
    assert_first_rejection(&out, 1, "m-big", "/", "larger than");
}

#[test]
fn a_batch_may_hold_2500_events_but_not_2501() {
    let event = json!({"type": "track", "event": "e", "userId": "u"});
    let body = |n: usize| serde_json::to_vec(&json!({ "batch": vec![event.clone(); n] })).unwrap();

    let full = body(MAX_BATCH_EVENTS);
    let over = body(MAX_BATCH_EVENTS + 1);

    assert_eq!(
        parse_body(Endpoint::Batch, &full).unwrap().items.len(),
        2_500
    );
    let err = parse_body(Endpoint::Batch, &over).unwrap_err();
    assert!(
        matches!(&err, IngestError::Invalid { field, detail } if field == "/batch" && detail.contains("2501")),
        "{err:?}"
    );
}

#[test]
fn a_request_may_be_500_kb_but_not_one_byte_more() {
    let mut body = br#"{"batch":[{"type":"track","event":"e","userId":"u"}]}"#.to_vec();
    body.resize(MAX_REQUEST_BYTES, b' ');

    assert!(parse_body(Endpoint::Batch, &body).is_ok());
    body.push(b' ');
    assert!(matches!(
        parse_body(Endpoint::Batch, &body),
        Err(IngestError::RequestTooLarge)
    ));
}

#[test]
fn a_single_event_batch_over_32_kb_is_refused_whole() {
    let mut big = track_call("m-big");
    big["properties"]["blob"] = json!("x".repeat(MAX_EVENT_BYTES));
    let body = serde_json::to_vec(&json!({ "batch": [big] })).unwrap();

    let err = parse_body(Endpoint::Batch, &body).unwrap_err();

    assert!(
        matches!(err, IngestError::EventTooLarge { index: 0 }),
        "{err:?}"
    );
}

#[test]
fn a_type_that_contradicts_the_endpoint_is_rejected() {
    let s = Setup::new(Region::Us);

    let out = s.run(
        Endpoint::Single(EventType::Identify),
        br#"{"type":"track","event":"e","userId":"u"}"#,
    );

    assert_eq!(out.rejected[0].field, "/type");
}

// ---------------------------------------------------------------------------------------------
// Consent and routing

#[test]
fn an_eu_event_without_a_signal_skips_meta_but_reaches_a_webhook_without_purposes() {
    let s = Setup::new(Region::Eu);

    let out = s.accept(track_call("m1"));

    let meta = s.routing(&out, 0, META);
    assert!(!meta.routed && !meta.consent.allowed);
    assert!(
        meta.consent.reason.contains("eu default is opt-in"),
        "{}",
        meta.consent.reason
    );
    assert!(!s.routing(&out, 0, GA4).routed);
    let webhook = s.routing(&out, 0, WEBHOOK);
    assert!(webhook.routed);
    assert!(s.item(&out, 0, META).is_none());
    assert!(s.item(&out, 0, WEBHOOK).is_some());
}

#[test]
fn segment_category_preferences_grant_consent_per_purpose() {
    let s = Setup::new(Region::Eu);
    let mut e = track_call("m1");
    e["context"] = json!({"consent": {"categoryPreferences": {"Advertising": true}}});

    let out = s.accept(e);

    let meta = s.routing(&out, 0, META);
    assert!(meta.routed);
    assert!(
        meta.consent.reason.contains("categoryPreferences"),
        "{}",
        meta.consent.reason
    );
    assert!(s.routing(&out, 0, TIKTOK).routed);
    // Analytics was not granted, and the EU default is opt-in.
    assert!(!s.routing(&out, 0, GA4).routed);
}

#[test]
fn a_gpc_header_blocks_advertising_in_the_us_but_not_analytics() {
    let s = Setup::new(Region::Us).with_gpc_header();

    let out = s.accept(track_call("m1"));

    let meta = s.routing(&out, 0, META);
    assert!(!meta.routed);
    assert!(
        meta.consent.reason.contains("global privacy control"),
        "{}",
        meta.consent.reason
    );
    assert!(!s.routing(&out, 0, TIKTOK).routed);
    assert!(s.routing(&out, 0, GA4).routed);
    assert!(s.routing(&out, 0, WEBHOOK).routed);
}

#[test]
fn context_gpc_blocks_advertising_in_the_us() {
    let s = Setup::new(Region::Us);
    let mut without = track_call("m1");
    without["context"] = json!({"gpc": false});
    let mut with = track_call("m2");
    with["context"] = json!({"gpc": true});

    let out = s.items(vec![without, with]);

    assert!(s.routing(&out, 0, META).routed);
    assert!(!s.routing(&out, 1, META).routed);
}

#[test]
fn every_routing_decision_records_its_reason() {
    let s = Setup::new(Region::Eu).with_filter(META, EventFilter::Deny(["Ping".into()].into()));
    let mut ping = track_call("m3");
    ping["event"] = json!("Ping");
    ping["context"] = granted();
    let mut identify = json!({"type": "identify", "messageId": "m2", "userId": "u"});
    identify["context"] = granted();

    let out = s.items(vec![track_call("m1"), identify, ping]);

    assert_eq!(out.events.len(), 3);
    for event in &out.events {
        assert_eq!(event.event.routing.len(), s.snapshot.destinations.len());
        for r in &event.event.routing {
            assert!(!r.consent.reason.is_empty(), "{r:?}");
            if r.consent.allowed && !r.routed {
                assert!(r.skipped.as_deref().is_some_and(|s| !s.is_empty()), "{r:?}");
            }
        }
    }
}

#[test]
fn an_allow_list_routes_only_the_named_events() {
    let s = Setup::new(Region::Us)
        .with_filter(META, EventFilter::Allow(["Order Completed".into()].into()));
    let mut viewed = track_call("m2");
    viewed["event"] = json!("Product Viewed");

    let out = s.items(vec![track_call("m1"), viewed]);

    assert!(s.routing(&out, 0, META).routed);
    let skipped = s.routing(&out, 1, META);
    assert!(!skipped.routed && skipped.consent.allowed);
    assert!(
        skipped.skipped.as_deref().unwrap().contains("filtered out"),
        "{skipped:?}"
    );
    assert!(s.item(&out, 1, META).is_none());
    assert!(s.routing(&out, 1, GA4).routed);
}

#[test]
fn a_deny_list_drops_the_named_events() {
    let s = Setup::new(Region::Us).with_filter(
        WEBHOOK,
        EventFilter::Deny(["Order Completed".into()].into()),
    );
    let mut viewed = track_call("m2");
    viewed["event"] = json!("Product Viewed");

    let out = s.items(vec![track_call("m1"), viewed]);

    assert!(!s.routing(&out, 0, WEBHOOK).routed);
    assert!(s.item(&out, 0, WEBHOOK).is_none());
    assert!(s.routing(&out, 1, WEBHOOK).routed);
}

#[test]
fn identify_is_not_sent_to_meta_ga4_or_tiktok_but_is_sent_to_a_webhook() {
    let s = Setup::new(Region::Us);

    let out = s.accept(json!({
        "type": "identify",
        "messageId": "m1",
        "userId": "u-1",
        "traits": {"email": "jane@example.com", "plan": "pro"}
    }));

    for kind in [META, GA4, TIKTOK] {
        let r = s.routing(&out, 0, kind);
        assert!(!r.routed, "{kind}");
        assert!(r.skipped.as_deref().unwrap().contains("identify"), "{r:?}");
        assert!(s.item(&out, 0, kind).is_none());
    }
    assert!(s.routing(&out, 0, WEBHOOK).routed);
    let item = s.item(&out, 0, WEBHOOK).unwrap();
    assert_eq!(item.event_type, EventType::Identify);
}

// ---------------------------------------------------------------------------------------------
// Hashing

#[test]
fn meta_items_carry_the_sha256_of_the_normalized_email() {
    let s = Setup::new(Region::Us);
    let mut e = track_call("m1");
    e["context"] = json!({"traits": {"email": "  John_Smith@gmail.com "}});

    let out = s.accept(e);

    let item = s.item(&out, 0, META).unwrap();
    assert_eq!(item.user_data[&Field::Email], META_JOHN_SMITH);
    assert_eq!(
        out.events[0].event.hashed[&Profile::Meta][&Field::Email],
        META_JOHN_SMITH
    );
}

#[test]
fn ga4_items_carry_google_hashes_and_plain_address_values_only_in_the_sealed_part() {
    let s = Setup::new(Region::Us);
    let out = s.accept(json!({
        "type": "track",
        "messageId": "m1",
        "userId": "user-1",
        "event": "Order Completed",
        "context": {"traits": {
            "email": "John.Smith+promo@Gmail.com",
            "phone": "+1-800-555-0100",
            "address": {"city": " San Francisco ", "state": "California",
                        "postalCode": "94000", "country": "United States"}
        }}
    }));

    let ga4 = s.item(&out, 0, GA4).unwrap();
    assert_eq!(
        ga4.user_data[&Field::Email],
        sha256_hex("johnsmith@gmail.com")
    );
    assert_eq!(ga4.user_data[&Field::Phone], GOOGLE_PHONE);
    for field in [Field::City, Field::State, Field::Zip, Field::Country] {
        assert!(!ga4.user_data.contains_key(&field), "{field:?} left hashed");
    }
    let mut outside = ga4.clone();
    outside.sealed = None;
    let outside = serde_json::to_string(&outside).unwrap();
    assert!(
        !outside.to_lowercase().contains("san francisco"),
        "{outside}"
    );
    assert!(!outside.contains("94000"), "{outside}");

    let sealed = s.open(GA4, ga4);
    assert_eq!(sealed.plain[&Field::City], "san francisco");
    assert_eq!(sealed.plain[&Field::State], "california");
    assert_eq!(sealed.plain[&Field::Zip], "94000");
    assert_eq!(sealed.plain[&Field::Country], "US");

    // Meta's rules differ: no Gmail folding, and the address is hashed, never plain.
    let meta = s.item(&out, 0, META).unwrap();
    assert_eq!(
        meta.user_data[&Field::Email],
        sha256_hex("john.smith+promo@gmail.com")
    );
    assert!(s.open(META, meta).plain.is_empty());
    assert_eq!(meta.user_data[&Field::City], sha256_hex("sanfrancisco"));
}

#[test]
fn an_already_hashed_email_passes_through_unchanged() {
    let s = Setup::new(Region::Us);
    let mut e = track_call("m1");
    e["context"] = json!({"traits": {"email": META_JOHN_SMITH}});

    let out = s.accept(e);

    for kind in [META, GA4, TIKTOK, WEBHOOK] {
        let item = s.item(&out, 0, kind).unwrap();
        assert_eq!(item.user_data[&Field::Email], META_JOHN_SMITH, "{kind}");
    }
}

#[test]
fn an_invalid_email_is_dropped_and_counted() {
    let s = Setup::new(Region::Us);
    let mut e = track_call("m1");
    e["context"] = json!({"traits": {"email": "jane.doe-at-nowhere", "phone": "+1-800-555-0100"}});

    let out = s.accept(e);

    assert_eq!(out.invalid_identifiers, 1);
    assert_eq!(out.events[0].event.invalid_identifiers, 1);
    for kind in [META, GA4, TIKTOK, WEBHOOK] {
        let item = s.item(&out, 0, kind).unwrap();
        assert!(!item.user_data.contains_key(&Field::Email), "{kind}");
        assert!(item.user_data.contains_key(&Field::Phone), "{kind}");
    }
}

#[test]
fn a_country_naming_a_continent_or_two_countries_is_dropped_and_counted_never_hashed_as_another() {
    let s = Setup::new(Region::Us);
    for country in [
        "BrazilSouthAmerica",
        "CanadaNorthAmerica",
        "Europe",
        "Brazil, Canada",
    ] {
        let mut e = track_call("m1");
        e["context"] =
            json!({"traits": {"email": "jane@example.com", "address": {"country": country}}});

        let out = s.accept(e);

        assert_eq!(out.invalid_identifiers, 1, "{country}");
        for kind in [META, GA4, TIKTOK] {
            let item = s.item(&out, 0, kind).unwrap();
            assert!(
                !item.user_data.contains_key(&Field::Country),
                "{country} {kind}"
            );
        }
    }
    let mut e = track_call("m1");
    e["context"] = json!({"traits": {"address": {"country": "Deutschland"}}});
    let out = s.accept(e);
    assert_eq!(out.invalid_identifiers, 0);
    assert_eq!(
        s.item(&out, 0, META).unwrap().user_data[&Field::Country],
        sha256_hex("de")
    );
}

#[test]
fn a_date_of_birth_is_checked_against_the_events_reception_year_not_the_system_clock() {
    // The clock says 2030: a birthday in 2031 is "next year" and kept; the system clock's
    // year (the old rule) would have refused it.
    let s = Setup::new(Region::Us);
    let pipeline = Pipeline {
        received_at: datetime!(2030-06-01 12:00:00 UTC),
        ..s.pipeline()
    };
    let mut e = track_call("m1");
    e["context"] = json!({"traits": {"birthday": "2031-01-05"}});
    let body = serde_json::to_vec(&json!({ "batch": [e] })).unwrap();

    let out = prepare(&pipeline, &parse_body(Endpoint::Batch, &body).unwrap());

    assert_eq!(out.invalid_identifiers, 0);
    assert_eq!(
        s.item(&out, 0, META).unwrap().user_data[&Field::DateOfBirth],
        sha256_hex("20310105")
    );
    // Received in 2026 (the setup's clock), the same birthday is two years ahead: refused.
    let mut e = track_call("m2");
    e["context"] = json!({"traits": {"birthday": "2031-01-05"}});
    assert_eq!(s.accept(e).invalid_identifiers, 1);
}

#[test]
fn identifiers_a_destination_does_not_take_are_not_counted_as_invalid() {
    // GA4 takes no external id, gender or date of birth: leaving them out is not an error.
    let s = Setup::new(Region::Us);
    let mut e = track_call("m1");
    e["userId"] = json!("user-1");
    e["context"] = json!({"traits": {"gender": "female", "birthday": "1984-07-19"}});

    let out = s.accept(e);

    assert_eq!(out.invalid_identifiers, 0);
    assert_eq!(out.events[0].event.invalid_identifiers, 0);
    assert!(!s
        .item(&out, 0, GA4)
        .unwrap()
        .user_data
        .contains_key(&Field::ExternalId));
    assert_eq!(
        s.item(&out, 0, META).unwrap().user_data[&Field::ExternalId],
        sha256_hex("user-1")
    );
}

// ---------------------------------------------------------------------------------------------
// Nothing raw survives

/// Raw values in `fixtures/pii_batch.json`, and the normalized forms of them that must not
/// appear either (only their hashes may).
const RAW_VALUES: &[&str] = &[
    "Marguerite.Oyelaran@Example.COM",
    "marguerite.oyelaran@example.com",
    "margueriteoyelaran",
    "+49 151 2345 6789",
    "4915123456789",
    "15123456789",
    "Marguerite",
    "marguerite",
    "Oyelaran",
    "oyelaran",
    "Whitfield",
    "whitfield",
    "Quillfeather",
    "quillfeather",
    "Kirchheimbolanden",
    "kirchheimbolanden",
    "Rheinland",
    "rheinland",
    "67292",
    "1984-07-19",
    "19840719",
    "female",
    "198.51.100.77",
    "PrivacyProbe",
    "user-8472",
    "anon-5f1c9e02",
];

fn assert_no_raw_value(what: &str, haystack: &str) {
    for raw in RAW_VALUES {
        assert!(
            !haystack.contains(raw),
            "{what} contains the raw value {raw:?}: {haystack}"
        );
    }
}

#[test]
fn no_raw_identifier_survives_in_stored_events_or_queue_bodies() {
    let s = Setup::new(Region::Eu);
    let body = include_bytes!("fixtures/pii_batch.json");

    let out = s.run(Endpoint::Batch, body);

    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    assert_eq!(out.events.len(), 3);
    assert!(
        out.items.iter().flatten().count() >= 6,
        "the fixture must reach every destination kind"
    );
    // What is not an identifier is kept.
    let kept = ["Rubber Duck", "premium", "/checkout"];
    for (new, kept) in out.events.iter().zip(kept) {
        let stored = serde_json::to_string(&new.event).unwrap();
        assert_no_raw_value("a stored event", &stored);
        assert!(stored.contains(kept), "{kept} was lost: {stored}");
        let operational = serde_json::to_string(&new.operational).unwrap();
        assert_no_raw_value("an operational record", &operational);
        assert_no_raw_value("a NewEvent's Debug output", &format!("{new:?}"));
    }
    let messages = s.pack_by_value(&out);
    assert_eq!(messages.len(), s.snapshot.destinations.len());
    for m in &messages {
        assert_no_raw_value("a queue body", std::str::from_utf8(&m.body).unwrap());
    }
    // The raw values did reach the sealed parts, for the destinations that need them.
    let item = s.item(&out, 0, META).unwrap();
    let sealed = s.open(META, item);
    assert_eq!(sealed.ip.as_deref(), Some("198.51.100.77"));
    assert_eq!(sealed.user_id.as_deref(), Some("user-8472-marguerite"));
}

/// The security review's cases (finding #5): identifiers under names the old key list did
/// not know, under innocent names, and in the page URL.
fn review_event() -> Value {
    json!({
        "type": "track",
        "messageId": "review-1",
        "anonymousId": "anon-review",
        "event": "Order Completed",
        "properties": {
            "order_id": "A-1001", "total": 49.90, "currency": "EUR", "sku": "SKU-4411-BLK",
            "mobile": "+1 415 555 0100", "tel": "415-555-0199", "fullName": "Jane Doe",
            "billing_address": "1 Main St", "ip_address": "198.51.100.23",
            "note": "jane.doe@example.com", "contact": "+1 415 555 0100",
        },
        "context": {"page": {
            "url": "https://shop.example/thanks?order=A-1001&email=jane.doe%40example.com",
        }},
    })
}

const REVIEW_RAW: &[&str] = &[
    "jane.doe@example.com",
    "jane.doe%40example.com",
    "415 555 0100",
    "415-555-0199",
    "Jane Doe",
    "1 Main St",
    "198.51.100.23",
];

#[test]
fn identifiers_under_any_name_are_dropped_and_become_the_events_hashed_identifiers() {
    let s = Setup::new(Region::Us);

    let out = s.accept(review_event());

    let stored = serde_json::to_string(&out.events[0].event).unwrap();
    let messages = s.pack_by_value(&out);
    let mut bodies = vec![stored.clone()];
    bodies.extend(
        messages
            .iter()
            .map(|m| String::from_utf8(m.body.clone()).unwrap()),
    );
    for body in &bodies {
        for raw in REVIEW_RAW {
            assert!(!body.contains(raw), "{raw} kept: {body}");
        }
    }
    // What is no identifier stays.
    for kept in ["A-1001", "49.9", "SKU-4411-BLK"] {
        assert!(stored.contains(kept), "{kept} lost: {stored}");
    }
    // The email found under `note` is the event's email, hashed per profile; the full name
    // is its first and last name.
    let meta = s.item(&out, 0, META).unwrap();
    assert_eq!(
        meta.user_data[&Field::Email],
        sha256_hex("jane.doe@example.com")
    );
    assert!(meta.user_data.contains_key(&Field::Phone));
    assert_eq!(meta.user_data[&Field::FirstName], sha256_hex("jane"));
    // The page URL travels sealed, and without its identifying parameter.
    assert_eq!(
        s.open(META, meta).page_url.as_deref(),
        Some("https://shop.example/thanks?order=A-1001")
    );
}

#[test]
fn an_identifier_under_its_own_name_wins_over_one_found_by_value() {
    let s = Setup::new(Region::Us);
    let mut event = review_event();
    event["traits"] = json!({"email": "own@example.com"});

    let out = s.accept(event);

    let meta = s.item(&out, 0, META).unwrap();
    assert_eq!(meta.user_data[&Field::Email], sha256_hex("own@example.com"));
}

#[test]
fn an_event_name_holding_an_email_phone_or_ip_is_rejected_naming_the_field() {
    let s = Setup::new(Region::Us);
    for (name, what) in [
        ("jane.doe@example.com", "an email address"),
        ("Signup +1 415 555 0100", "a phone number"),
        ("from 198.51.100.23", "an IP address"),
    ] {
        let mut event = track_call("named");
        event["event"] = json!(name);
        let rejection = s.reject(event);
        assert_eq!(rejection.field, "/event");
        assert!(rejection.detail.contains(what), "{}", rejection.detail);
    }
    let page = json!({"type": "page", "messageId": "p", "anonymousId": "a",
                      "name": "jane.doe@example.com"});
    assert_eq!(s.reject(page).field, "/name");
    // An order number or a date in a name is fine.
    let mut event = track_call("fine");
    event["event"] = json!("Order A-1001 of 2026-03-01 (49.90 EUR)");
    s.accept(event);
}

#[test]
fn debug_output_of_a_request_shows_no_identifier_and_no_write_key() {
    let s = Setup::new(Region::Eu).with_gpc_header();
    let body = include_bytes!("fixtures/pii_batch.json");
    let mut parsed = parse_body(Endpoint::Batch, body).unwrap();
    parsed.write_key = Some("tl_ingest_eu_writekeyfortest1_SECRETSECRET".into());
    let meta = RequestMeta {
        ip: Some("198.51.100.77".parse().unwrap()),
        user_agent: Some("Mozilla/5.0 (PrivacyProbe)".into()),
        gpc: true,
        browser: true,
    };
    let pipeline = Pipeline {
        meta: &meta,
        ..s.pipeline()
    };

    let shown = format!("{parsed:?} {meta:?} {pipeline:?}");

    assert_no_raw_value("Debug output", &shown);
    assert!(!shown.contains("SECRETSECRET"), "{shown}");
    assert!(shown.contains("items: 3"), "{shown}");
}

// ---------------------------------------------------------------------------------------------
// Subject index

fn email_event(message_id: &str, email: &str) -> Value {
    json!({
        "type": "identify",
        "messageId": message_id,
        "userId": null,
        "anonymousId": format!("anon-{message_id}"),
        "traits": {"email": email}
    })
}

/// The subject value of an email: the one subject two events with different anonymous ids share.
fn email_subject(s: &Setup, email: &str) -> String {
    let a = s.accept(email_event("a", email));
    let b = s.accept(email_event("b", email));
    let shared: Vec<_> = a.events[0]
        .event
        .subjects
        .iter()
        .filter(|v| b.events[0].event.subjects.contains(v))
        .cloned()
        .collect();
    assert_eq!(shared.len(), 1, "exactly the email is shared");
    shared.into_iter().next().unwrap()
}

#[test]
fn the_same_email_in_any_case_or_whitespace_gives_the_same_subject() {
    let s = Setup::new(Region::Us);

    let plain = email_subject(&s, "jane.doe@example.com");
    let shouted = email_subject(&s, "  JANE.Doe@Example.COM\t");

    assert_eq!(plain, shouted);
    assert_eq!(
        plain,
        s.snapshot
            .keys
            .subject_index("email", "jane.doe@example.com")
    );
    assert_ne!(
        plain,
        sha256_hex("jane.doe@example.com"),
        "never a bare hash"
    );
}

#[test]
fn different_workspace_keys_give_different_subjects() {
    let one = Setup::new(Region::Us);
    let other = Setup::new(Region::Us).with_keys(WorkspaceKeys::new(&DataKey::from_bytes([8; 32])));

    assert_ne!(
        email_subject(&one, "jane.doe@example.com"),
        email_subject(&other, "jane.doe@example.com")
    );
}

// ---------------------------------------------------------------------------------------------
// Packing

#[test]
fn pack_splits_a_destinations_items_into_messages_under_max_bytes() {
    let s = Setup::new(Region::Us);
    let events: Vec<_> = (0..40)
        .map(|i| {
            let mut e = track_call(&format!("m{i}"));
            e["properties"]["note"] = json!("n".repeat(200));
            e
        })
        .collect();
    let out = s.items(events);
    let webhook = s.index(WEBHOOK);
    let items: Vec<_> = out
        .items
        .iter()
        .flatten()
        .filter(|(i, _)| *i == webhook)
        .cloned()
        .collect();
    assert_eq!(items.len(), 40);
    let max_bytes = 2_000;

    let messages = pack(
        &s.snapshot.workspace.id,
        &s.snapshot.destinations,
        items,
        max_bytes,
        Holding::ByValue,
    );

    assert!(messages.len() > 1, "{} message(s)", messages.len());
    let mut seen = Vec::new();
    for m in &messages {
        assert!(m.body.len() <= max_bytes, "{} bytes", m.body.len());
        assert_eq!(m.kind, WEBHOOK);
        let body = QueueBody::decode(&m.body).expect("a valid QueueBody");
        assert_eq!(body.v, QueueBody::VERSION);
        assert_eq!(body.workspace_id, s.snapshot.workspace.id);
        assert_eq!(body.destination_id, s.snapshot.destinations[webhook].id);
        assert_eq!(body.kind, WEBHOOK);
        assert!(!body.items.is_empty());
        seen.extend(body.items.into_iter().map(|i| i.message_id.to_string()));
    }
    let expected: Vec<_> = (0..40).map(|i| format!("m{i}")).collect();
    assert_eq!(seen, expected, "every item once, in order");
}

#[test]
fn pack_writes_one_message_per_destination() {
    let s = Setup::new(Region::Us);
    let out = s.items(vec![track_call("m1"), track_call("m2")]);

    let messages = s.pack_by_value(&out);

    let kinds: Vec<_> = messages.iter().map(|m| m.kind).collect();
    assert_eq!(kinds, DestinationKind::ALL);
    for m in &messages {
        let body: QueueBody = serde_json::from_slice(&m.body).unwrap();
        assert_eq!(body.items.len(), 2);
    }
}

#[test]
fn the_integrations_object_turns_destinations_off_and_on_by_kind_or_name() {
    let s = Setup::new(Region::Us);
    let mut only_webhook = track_call("m1");
    only_webhook["integrations"] = json!({"All": false, "webhook": true});
    let mut no_meta = track_call("m2");
    no_meta["integrations"] = json!({"meta_capi": false});
    let batch_level = json!({"batch": [track_call("m3")], "integrations": {"All": false}});

    let out = s.items(vec![only_webhook, no_meta]);
    let off = s.batch(batch_level);

    assert!(s.routing(&out, 0, WEBHOOK).routed);
    for kind in [META, GA4] {
        let r = s.routing(&out, 0, kind);
        assert!(
            !r.routed && r.skipped.as_deref().unwrap().contains("integrations"),
            "{r:?}"
        );
    }
    assert!(!s.routing(&out, 1, META).routed);
    assert!(s.routing(&out, 1, GA4).routed);
    assert!(
        off.items[0].is_empty(),
        "batch-level All:false reaches every item"
    );
}

// ---------------------------------------------------------------------------------------------
// The request's IP address and user agent (issue 17, A11)

/// A browser's user agent (a crawler's would be dropped by the bot filter).
const VISITOR_UA: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0";

/// A request with an address and a user agent, from a server or a browser.
fn requesting(s: &mut Setup, browser: bool) {
    s.meta = RequestMeta {
        ip: Some("127.0.0.1".parse().unwrap()),
        user_agent: Some(VISITOR_UA.into()),
        gpc: false,
        browser,
    };
}

/// An event that carries an email (so Meta and TikTok take it) and no `context.ip`.
fn server_event() -> Value {
    json!({
        "type": "track",
        "messageId": "srv-1",
        "userId": "u-1",
        "event": "Order Completed",
        "properties": {"value": 10, "currency": "EUR"},
        "context": {"traits": {"email": "jane@example.com"}}
    })
}

/// The IP address and user agent sealed for Meta and for TikTok.
fn client_of(s: &Setup, out: &PreparedBatch) -> Vec<(Option<String>, Option<String>)> {
    [META, TIKTOK]
        .into_iter()
        .map(|kind| {
            let sealed = s.open(kind, s.queued(out, 0, kind).expect("routed"));
            (sealed.ip, sealed.user_agent)
        })
        .collect()
}

#[test]
fn a_server_event_without_context_ip_reaches_meta_and_tiktok_without_the_servers_ip_and_agent() {
    let mut s = Setup::new(Region::Us);
    requesting(&mut s, false);

    let out = s.accept(server_event());

    assert_eq!(client_of(&s, &out), [(None, None), (None, None)]);
    assert!(out.events[0].operational.is_none(), "no IP or agent kept");
}

#[test]
fn browser_traffic_lends_the_requests_ip_and_user_agent() {
    let mut s = Setup::new(Region::Us);
    requesting(&mut s, true);

    let out = s.accept(server_event());

    let lent = (Some("127.0.0.1".to_owned()), Some(VISITOR_UA.to_owned()));
    assert_eq!(client_of(&s, &out), [lent.clone(), lent]);
    assert!(out.events[0].operational.is_some());
}

#[test]
fn a_workspace_that_opted_in_takes_a_server_requests_ip_and_user_agent() {
    let mut s = Setup::new(Region::Us);
    requesting(&mut s, false);
    s.snapshot.workspace.consent.request_ip_as_client_ip = true;

    let out = s.accept(server_event());

    let lent = (Some("127.0.0.1".to_owned()), Some(VISITOR_UA.to_owned()));
    assert_eq!(client_of(&s, &out), [lent.clone(), lent]);
}

#[test]
fn a_server_events_own_context_ip_and_user_agent_are_sent() {
    let mut s = Setup::new(Region::Us);
    requesting(&mut s, false);
    let mut event = server_event();
    event["context"]["ip"] = json!("203.0.113.7");
    event["context"]["userAgent"] = json!(VISITOR_UA);

    let out = s.accept(event);

    let own = (Some("203.0.113.7".to_owned()), Some(VISITOR_UA.to_owned()));
    assert_eq!(client_of(&s, &out), [own.clone(), own]);
}

#[test]
fn the_events_channel_is_sealed_for_the_action_source_lowercase() {
    let s = Setup::new(Region::Us);
    let mut event = server_event();
    event["context"]["channel"] = json!(" Server ");

    let out = s.accept(event);

    let sealed = s.open(META, s.item(&out, 0, META).unwrap());
    assert_eq!(sealed.channel.as_deref(), Some("server"));
}

// ---------------------------------------------------------------------------------------------
// Warnings: accepted, but a destination will drop it (issue 17, A10)

/// A stand-in for the connectors' requirements: Meta needs a currency.
fn meta_needs_currency(
    target: &crate::deliver::Target<'_>,
    opened: &crate::deliver::OpenedItem,
) -> Option<Unmet> {
    let meta = target.destination.kind == META;
    let currency = opened.item.properties.get("currency").is_some();
    (meta && !currency).then(|| Unmet {
        rule: "purchase_requires_currency",
        detail: "Meta Purchase events need value and currency".into(),
    })
}

/// A track call of a value without a currency, which [`meta_needs_currency`] warns of.
fn without_currency(message_id: &str) -> Value {
    let mut e = track_call(message_id);
    e["properties"] = json!({"value": 10});
    e
}

#[test]
fn an_event_a_routed_destination_will_drop_is_accepted_with_a_warning_naming_it() {
    let s = Setup::new(Region::Us).with_requirements(meta_needs_currency);

    let out = s.items(vec![track_call("w-0"), without_currency("w-1")]);

    assert_eq!(out.events.len(), 2, "both accepted");
    let meta = &s.snapshot.destinations[s.index(META)];
    assert_eq!(
        out.warnings,
        [Warning {
            index: 1,
            message_id: "w-1".into(),
            destination: Some(meta.id.clone()),
            kind: Some(META),
            rule: "purchase_requires_currency",
            detail: "Meta Purchase events need value and currency".into(),
        }]
    );
    assert!(
        s.item(&out, 1, META).is_some(),
        "still queued: delivery decides"
    );
}

/// Describes, as a warning for every routed destination, the whole item the check was given
/// (but its sealed parts, which by reference are the event's shared ones, and its suppression
/// tokens, which by reference ingest does not make: deliver takes them from the event).
fn describe_what_is_checked(
    target: &crate::deliver::Target<'_>,
    opened: &crate::deliver::OpenedItem,
) -> Option<Unmet> {
    let item = &opened.item;
    Some(Unmet {
        rule: "describe",
        detail: format!(
            "{:?} {} {:?} {:?} {} {:?} {:?} sealed: {:?}",
            target.destination.kind,
            item.event_id,
            item.message_id.as_str(),
            item.name,
            item.properties,
            item.user_data,
            item.consent,
            opened.sealed,
        ),
    })
}

/// By reference, ingest builds no whole item per destination for the queue; the one it
/// checks requirements on is, for each destination, the item by value would have been:
/// that destination's hashes, the event's properties, consent and sealed fields.
#[test]
fn by_reference_each_destination_checks_the_item_it_would_have_by_value() {
    let mut s = Setup::new(Region::Us).with_requirements(describe_what_is_checked);
    requesting(&mut s, true);
    let mut phone_only = server_event();
    phone_only["messageId"] = json!("m-phone");
    phone_only["context"]["traits"] = json!({
        "phone": "+1 (650) 555-0100",
        "firstName": "Jane",
        "address": {"city": "Berlin", "postalCode": "10115", "country": "DE"}
    });
    let body = json!({ "batch": [server_event(), phone_only] });
    let run = |holding| {
        let pipeline = Pipeline {
            holding,
            ..s.pipeline()
        };
        let body = serde_json::to_vec(&body).unwrap();
        prepare(&pipeline, &parse_body(Endpoint::Batch, &body).unwrap())
    };

    let (by_value, by_reference) = (run(Holding::ByValue), run(Holding::ByReference));

    assert!(by_value.warnings.len() >= 4, "{:?}", by_value.warnings);
    let details = |out: &PreparedBatch| -> Vec<String> {
        // The event ids differ (the ids are drawn anew), the rest may not.
        out.warnings
            .iter()
            .map(|w| {
                w.detail
                    .replace(&out.events[w.index].event.event_id.to_string(), "<id>")
            })
            .collect()
    };
    assert_eq!(details(&by_value), details(&by_reference));
    // By value each item carries its event's suppression tokens, for deliver to drop it once
    // one of them is suppressed (by reference deliver makes them from the event it reads).
    for (prepared, items) in by_value.events.iter().zip(&by_value.items) {
        let tokens = crate::event::suppression_tokens(&prepared.event.subjects);
        assert!(!tokens.is_empty());
        assert!(!items.is_empty());
        for (_, item) in items {
            assert!(
                matches!(item, QueuedItem::Value(item) if item.suppression == tokens),
                "{item:?}"
            );
        }
    }
    assert!(by_reference
        .items
        .iter()
        .flatten()
        .all(|(_, item)| matches!(item, QueuedItem::Reference { .. })));
}

#[test]
fn a_destination_the_event_is_not_routed_to_gives_no_warning() {
    let s = Setup::new(Region::Eu).with_requirements(meta_needs_currency);

    let out = s.accept(without_currency("w-1"));

    assert!(
        !s.routing(&out, 0, META).routed,
        "EU default: no advertising"
    );
    assert_eq!(out.warnings, []);
}

#[test]
fn an_unknown_top_level_member_is_a_warning_naming_it() {
    let s = Setup::new(Region::Us);
    let mut event = track_call("u-1");
    event["propertis"] = json!({"value": 10});
    event["channel"] = json!("server");
    event["_metadata"] = json!({"bundled": []});

    let out = s.accept(event);

    assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
    let w = &out.warnings[0];
    assert_eq!(
        (w.index, w.rule, w.destination.as_ref()),
        (0, "unknown_member", None)
    );
    assert!(w.detail.contains("\"propertis\""), "{}", w.detail);
}

#[test]
fn a_warning_serializes_as_extra_members_only() {
    let w = Warning {
        index: 0,
        message_id: "m".into(),
        destination: None,
        kind: None,
        rule: "unknown_member",
        detail: "d".into(),
    };
    assert_eq!(
        serde_json::to_value(&w).unwrap(),
        json!({"index": 0, "messageId": "m", "rule": "unknown_member", "detail": "d"})
    );
}

#[test]
fn an_event_naming_a_member_twice_is_refused_and_escaped_unknown_names_are_warned_of_once() {
    let s = Setup::new(Region::Us);
    let twice = br#"{"batch":[{"type":"track","event":"A","userId":"u-1","userId":"u-2","messageId":"d-1"}]}"#;
    let out = s.run(Endpoint::Batch, twice);
    assert!(
        out.events.is_empty(),
        "a duplicated member must not pick a value"
    );
    assert_eq!(out.rejected.len(), 1);
    assert!(
        out.rejected[0].detail.contains("duplicate field `userId`"),
        "{}",
        out.rejected[0].detail
    );

    let escaped = br#"{"batch":[{"type":"track","event":"A","userId":"u-1","messageId":"d-2","prop\u0065rtis":{"a":1}}]}"#;
    let out = s.run(Endpoint::Batch, escaped);
    assert_eq!(out.events.len(), 1);
    assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
    assert!(out.warnings[0].detail.contains("\"propertis\""));
}

/// By reference, an item's sealed fields leave IP and user agent to the event's operational
/// record (which holds them anyway, 30 days) instead of a copy per destination; what else is
/// sealed, and every item by value, is as before. An event with no record seals them as ever.
#[test]
fn items_by_reference_leave_ip_and_user_agent_to_the_operational_record() {
    let mut s = Setup::new(Region::Us);
    requesting(&mut s, true);
    let lent = (Some("127.0.0.1".to_owned()), Some(VISITOR_UA.to_owned()));
    let by_reference = |s: &Setup| {
        let pipeline = Pipeline {
            holding: Holding::ByReference,
            ..s.pipeline()
        };
        let body = serde_json::to_vec(&json!({ "batch": [server_event()] })).unwrap();
        prepare(&pipeline, &parse_body(Endpoint::Batch, &body).unwrap())
    };

    let by_value = s.accept(server_event());
    let referenced = by_reference(&s);

    assert_eq!(client_of(&s, &by_value), [lent.clone(), lent.clone()]);
    assert_eq!(client_of(&s, &referenced), [(None, None), (None, None)]);
    let record = referenced.events[0].operational.as_ref().expect("a record");
    let opened = s
        .snapshot
        .keys
        .open(
            &aad(
                SealLabel::Operational,
                &s.snapshot.workspace.id,
                &referenced.events[0].event.event_id.to_string(),
            ),
            &record.sealed,
        )
        .unwrap();
    let opened = crate::event::sealed_wire::decode_fields(&opened).unwrap();
    assert!(
        opened
            == SealedFields {
                ip: lent.0.clone(),
                user_agent: lent.1.clone(),
                ..SealedFields::default()
            },
        "the record holds the IP and user agent, nothing else"
    );
    let (value_item, reference_item) = (
        s.open(META, s.queued(&by_value, 0, META).unwrap()),
        s.open(META, s.queued(&referenced, 0, META).unwrap()),
    );
    assert_eq!(
        SealedFields {
            ip: None,
            user_agent: None,
            ..value_item
        },
        reference_item,
        "the rest is sealed alike"
    );
    // Sealed once for the event, shared by its items, not once per destination.
    let shared: Vec<_> = referenced.items[0]
        .iter()
        .map(|(_, item)| (item.sealed().is_none(), item.shared().cloned()))
        .collect();
    assert!(shared.len() > 1, "routed to several destinations");
    assert!(shared
        .iter()
        .all(|(no_own, s)| *no_own && s.is_some() && *s == shared[0].1));

    // Without an address or agent there is no record, and nothing to leave out.
    requesting(&mut s, false);
    let referenced = by_reference(&s);
    assert!(referenced.events[0].operational.is_none());
    assert_eq!(client_of(&s, &referenced), [(None, None), (None, None)]);
}
