//! A Segment-compatible forwarder: `POST {endpoint}/v1/batch` to Segment's HTTP Tracking API
//! or any API that speaks it (RudderStack's data plane, a Segment-compatible proxy), so that
//! TrackLayer can sit in front of an existing Segment setup during a migration.
//!
//! Source: Segment HTTP Tracking API
//! (<https://segment.com/docs/connections/sources/catalog/libraries/server/http-api/>, now
//! <https://www.twilio.com/docs/segment/connections/sources/catalog/libraries/server/http-api>):
//! * Authentication: HTTP Basic with the source's write key as the user name and an empty
//!   password (`Authorization: Basic base64("{writeKey}:")`); `Content-Type: application/json`.
//! * Batch: `{"batch": [calls], "sentAt": ..}`, each call with its `type` (`track`, `page`,
//!   `screen`, `identify`, `group`, `alias`), `messageId` ("Segment deduplicates events using
//!   the messageId field"), `timestamp`, `userId` and/or `anonymousId` ("The HTTP API requires
//!   that each payload has a userId and/or anonymousId"), `event` of a track call, `name` of a
//!   page or screen call, `properties`, `traits`, `context`.
//! * "There is a maximum of 500KB per batch request and 32KB per call": [`REQUEST_BYTES`],
//!   [`EVENT_BYTES`] ([`Connector::byte_limits`]); a call over 32 KB is dead-lettered, never
//!   sent.
//! * Errors: "Segment returns a 200 response for all API requests except errors caused by
//!   large payloads and JSON errors (which return 400 responses)": 4xx permanent; 408, 429 and
//!   5xx (which a compatible API or a proxy may answer) retried after `Retry-After`.
//!
//! What leaves of the person, by the destination's `config.identifiers`:
//! * `hashed`: `userId` is the digest of the external id, `anonymousId` the SHA-256 of the
//!   anonymous id (else of the message id), `context.traits` the profile's digests (`email`,
//!   `phone`, `firstName`, …; Meta-normalized like webhooks) and `context.userAgent`.
//! * `scrubbed`: no identifier at all; `anonymousId` is the message id (Segment needs one), so
//!   that no two events can be linked to one person.
//!
//! Never: a raw identifier, the IP address, a click id; page URLs are stripped like every URL
//! that leaves.

use base64::Engine;
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use tracklayer_core::deliver::{
    ByteLimits, Connector, HttpRequest, HttpResponse, OpenedItem, Outcome, Target,
};
use tracklayer_core::destination::DestinationKind;
use tracklayer_core::dsr::SentToVendor;
use tracklayer_core::event::EventType;
use tracklayer_core::identity::{is_sha256_hex, sha256_hex, Field};
use tracklayer_core::ingest::scrub::{self, Found};

use crate::common::{self, clean, put};

/// Most calls one request may carry: Segment counts bytes ([`REQUEST_BYTES`]), not calls; this
/// only bounds a request of tiny calls.
pub const BATCH_LIMIT: usize = 5000;
/// Most bytes of the calls of one request: Segment's 500 KB, less room for the envelope.
pub const REQUEST_BYTES: usize = 500 * 1024 - ENVELOPE_BYTES;
/// Most bytes of one call.
pub const EVENT_BYTES: usize = 32 * 1024;
/// Room kept for `{"batch":[..],"sentAt":".."}` around the calls.
const ENVELOPE_BYTES: usize = 1024;

/// The Segment-compatible forwarder.
#[derive(Debug, Clone, Copy, Default)]
pub struct Segment;

/// Whether the destination sends digests (`identifiers: hashed`) rather than nothing.
fn hashed(target: &Target<'_>) -> bool {
    common::config_str(target, "identifiers") == Some("hashed")
}

/// The Segment trait of each identifier the profile hashes.
fn trait_key(field: Field) -> &'static str {
    match field {
        Field::Email => "email",
        Field::Phone => "phone",
        Field::FirstName => "firstName",
        Field::LastName => "lastName",
        Field::City => "city",
        Field::State => "state",
        Field::Zip => "postalCode",
        Field::Country => "country",
        Field::Gender => "gender",
        Field::DateOfBirth => "birthday",
        Field::ExternalId => "externalId",
    }
}

/// `userId`, `anonymousId` and the `context` of one call.
fn identity(target: &Target<'_>, opened: &OpenedItem, call: &mut Map<String, Value>) {
    let mut context = Map::new();
    context.insert("library".into(), serde_json::json!({"name": "tracklayer"}));
    let page = common::page_url(opened).map(|url| serde_json::json!({ "url": url }));
    put(&mut context, "page", page);
    let message_id = opened.item.message_id.as_str();
    if hashed(target) {
        let digests = &opened.item.user_data;
        let digest = |f: Field| digests.get(&f).filter(|h| is_sha256_hex(h));
        put(call, "userId", digest(Field::ExternalId).cloned());
        let anonymous = clean(opened.sealed.anonymous_id.as_deref()).unwrap_or(message_id);
        call.insert("anonymousId".into(), sha256_hex(anonymous).into());
        let traits: Map<String, Value> = digests
            .iter()
            .filter(|(_, h)| is_sha256_hex(h))
            .map(|(f, h)| (trait_key(*f).to_owned(), h.to_ascii_lowercase().into()))
            .collect();
        if !traits.is_empty() {
            context.insert("traits".into(), Value::Object(traits));
        }
        let agent = clean(opened.sealed.user_agent.as_deref());
        put(&mut context, "userAgent", agent);
    } else {
        call.insert("anonymousId".into(), message_id.into());
    }
    call.insert("context".into(), Value::Object(context));
}

/// One call of the batch.
pub fn call(target: &Target<'_>, opened: &OpenedItem) -> Value {
    let item = &opened.item;
    let mut c = Map::new();
    c.insert("type".into(), item.event_type.as_str().into());
    c.insert("messageId".into(), item.message_id.as_str().into());
    let at = item.timestamp.format(&Rfc3339).unwrap_or_default();
    c.insert("timestamp".into(), at.into());
    let name = crate::names::resolve(target.destination, item);
    // Scrubbed again at egress, as webhooks do: nothing that names or holds an identifier.
    let drop_name = matches!(item.event_type, EventType::Identify | EventType::Group);
    let properties = scrub::scrub(item.properties.clone(), drop_name, &mut Found::default());
    match item.event_type {
        EventType::Track => {
            c.insert("event".into(), name.into());
            c.insert("properties".into(), properties);
        }
        EventType::Page | EventType::Screen => {
            put(&mut c, "name", item.name.clone());
            c.insert("properties".into(), properties);
        }
        EventType::Identify | EventType::Group | EventType::Alias => {
            c.insert("traits".into(), properties);
        }
    }
    identity(target, opened, &mut c);
    Value::Object(c)
}

/// What an answer means for the whole request: 2xx delivered; 408, 429 and 5xx retried after
/// `Retry-After`; any other status permanent, with the answer as the reason.
pub fn classify_response(response: &HttpResponse) -> Outcome {
    common::refused_by("the Segment-compatible API", response)
}

impl Connector for Segment {
    fn batch_limit(&self, _target: &Target<'_>) -> usize {
        BATCH_LIMIT
    }

    fn byte_limits(&self, _target: &Target<'_>) -> Option<ByteLimits> {
        Some(ByteLimits {
            request: REQUEST_BYTES,
            item: EVENT_BYTES,
        })
    }

    /// The call's JSON and the comma that separates it from the next.
    fn item_bytes(&self, target: &Target<'_>, item: &OpenedItem) -> usize {
        serde_json::to_vec(&call(target, item)).map_or(0, |b| b.len() + 1)
    }

    fn build(&self, target: &Target<'_>, items: &[&OpenedItem]) -> Result<HttpRequest, String> {
        let envelope = || {
            let key = common::required_secret(target, "write_key")?;
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("{key}:"));
            let auth = ("Authorization".to_owned(), format!("Basic {basic}"));
            let base = common::base_url(target, DestinationKind::Segment);
            let url = format!("{}/v1/batch", base.trim_end_matches('/'));
            let mut e = common::Envelope::new(url, vec![auth], "batch");
            let sent_at = target.now.format(&Rfc3339).unwrap_or_default();
            e.tail.insert("sentAt".into(), sent_at.into());
            Ok(e)
        };
        let kind = DestinationKind::Segment;
        common::batch_request(kind, BATCH_LIMIT, items, envelope, |o| call(target, o))
    }

    fn classify(&self, _items: &[&OpenedItem], response: &HttpResponse) -> Outcome {
        classify_response(response)
    }

    fn erasure_guidance(&self, sent: &SentToVendor<'_>) -> String {
        format!(
            "TrackLayer forwarded {} events of the subject {} to the Segment-compatible API of \
             destination {}, which has no deletion endpoint TrackLayer can call. Delete them \
             there (Segment: a user deletion regulation of the Public API, by userId; \
             RudderStack: its data regulation API) and record the answer.",
            sent.delivered,
            sent.period,
            sent.account_or_deleted()
        )
    }
}
