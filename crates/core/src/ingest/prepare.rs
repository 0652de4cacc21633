//! The pure part of ingest: validate, normalize, hash, decide consent and route each event.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::clock::Ids;
use crate::consent::{self, Signals};
use crate::crypto::{aad, WorkspaceKeys};
use crate::destination::{Destination, DestinationKind};
use crate::event::{
    DeliveryItem, EventId, EventType, ForwardedConsent, MessageId, OperationalRecord, Routing,
    SealedFields, StoredEvent,
};
use crate::identity::{self, Field, Hints, Prepared, Profile};
use crate::ports::NewEvent;
use crate::workspace::{Retention, Workspace};

use super::identifiers::{field_tag, RawIdentifiers};
use super::inherit::{Layered, MAX_OBJECT_KEYS};
use super::scrub;
use super::wire::{Endpoint, ParsedBody, Rejection, RequestMeta, WireMessage, MAX_EVENT_BYTES};

/// Everything [`prepare`] needs besides the body: resolved workspace, keys and request facts.
#[derive(Debug, Clone, Copy)]
pub struct Pipeline<'a> {
    pub workspace: &'a Workspace,
    pub destinations: &'a [Destination],
    pub keys: &'a WorkspaceKeys,
    pub ids: &'a dyn Ids,
    pub meta: &'a RequestMeta,
    pub received_at: OffsetDateTime,
}

impl std::fmt::Debug for dyn Ids {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ids")
    }
}

/// The outcome of the pure part of ingest.
#[derive(Debug, Default)]
pub struct PreparedBatch {
    pub events: Vec<NewEvent>,
    /// Per accepted event (same order as `events`): its items, by destination index.
    pub items: Vec<Vec<(usize, DeliveryItem)>>,
    pub rejected: Vec<Rejection>,
    pub invalid_identifiers: u32,
    /// Valid events that repeated the messageId of an earlier event of the same request:
    /// answered as accepted duplicates, not kept.
    pub duplicates: usize,
}

struct Fail(String, String);

fn fail(field: &str, detail: impl Into<String>) -> Fail {
    Fail(field.to_owned(), detail.into())
}

/// Validates, normalizes, hashes, decides and routes every event of a parsed request.
pub fn prepare(p: &Pipeline<'_>, body: &ParsedBody<'_>) -> PreparedBatch {
    let mut out = PreparedBatch {
        events: Vec::with_capacity(body.items.len()),
        items: Vec::with_capacity(body.items.len()),
        ..Default::default()
    };
    let mut seen: HashSet<String> = HashSet::with_capacity(body.items.len());
    let purposes: Vec<_> = p
        .destinations
        .iter()
        .map(|d| d.consent_purposes.clone())
        .collect();
    for (index, raw) in body.items.iter().enumerate() {
        let mut message_id = None;
        let result = prepare_one(p, body, raw, &purposes, &mut message_id);
        match result {
            Ok((event, items, invalid)) => {
                // The same messageId twice in one request: the first wins, like a retry.
                if !seen.insert(event.event.message_id.as_str().to_owned()) {
                    out.duplicates += 1;
                    continue;
                }
                out.invalid_identifiers += invalid;
                out.events.push(event);
                out.items.push(items);
            }
            Err(Fail(field, detail)) => out.rejected.push(Rejection {
                index,
                message_id,
                field,
                detail,
            }),
        }
    }
    out
}

fn as_id(v: &Option<Value>, field: &str) -> Result<Option<String>, Fail> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) if s.len() > 512 => Err(fail(field, "must be at most 512 bytes")),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(fail(field, "must be a string")),
    }
}

fn as_object(v: Option<Value>, field: &str) -> Result<Map<String, Value>, Fail> {
    match v {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m),
        Some(_) => Err(fail(field, "must be an object")),
    }
}

fn as_time(v: &Option<Value>, field: &str) -> Result<Option<OffsetDateTime>, Fail> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_time(s).map(Some).ok_or_else(|| {
            fail(
                field,
                "must be an ISO-8601 date-time (2024-05-01T12:00:00Z)",
            )
        }),
        Some(_) => Err(fail(field, "must be an ISO-8601 date-time string")),
    }
}

/// RFC 3339, or ISO-8601 without an offset (taken as UTC), like Segment accepts.
fn parse_time(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    let with_z = format!("{s}Z");
    OffsetDateTime::parse(&with_z, &Rfc3339).ok()
}

/// An event's own object, at most [`MAX_OBJECT_KEYS`] keys.
fn bounded_object(v: Option<Value>, field: &str) -> Result<Map<String, Value>, Fail> {
    let m = as_object(v, field)?;
    if m.len() > MAX_OBJECT_KEYS {
        return Err(fail(
            field,
            format!(
                "has {} keys; at most {MAX_OBJECT_KEYS} are allowed",
                m.len()
            ),
        ));
    }
    Ok(m)
}

type PreparedOne = (NewEvent, Vec<(usize, DeliveryItem)>, u32);

fn prepare_one(
    p: &Pipeline<'_>,
    body: &ParsedBody<'_>,
    raw: &RawValue,
    purposes: &[Vec<consent::Purpose>],
    message_id_out: &mut Option<String>,
) -> Result<PreparedOne, Fail> {
    if raw.get().len() > MAX_EVENT_BYTES {
        // Still name the event's messageId, so the client can tell which one it was.
        #[derive(Deserialize)]
        struct WireId {
            #[serde(rename = "messageId", default)]
            message_id: Option<Value>,
        }
        if let Ok(WireId {
            message_id: Some(Value::String(id)),
        }) = serde_json::from_str(raw.get())
        {
            if MessageId::parse(&id).is_ok() {
                *message_id_out = Some(id);
            }
        }
        return Err(fail(
            "/",
            format!("event is larger than {MAX_EVENT_BYTES} bytes"),
        ));
    }
    let wire: WireMessage = serde_json::from_str(raw.get()).map_err(|e| {
        let detail = if e.is_data() {
            format!("event must be an object: {e}")
        } else {
            format!("event is not valid JSON: {e}")
        };
        fail("/", detail)
    })?;

    // messageId first, so that every later rejection can name it.
    let message_id = match as_id(&wire.message_id, "/messageId")? {
        Some(s) => {
            *message_id_out = Some(s.clone());
            MessageId::parse(&s).map_err(|d| fail("/messageId", d))?
        }
        None => MessageId::generated(p.ids.uuid_v7(p.received_at)),
    };

    let event_type = match (&wire.kind, body.endpoint) {
        (None | Some(Value::Null), Endpoint::Single(t)) => t,
        (None | Some(Value::Null), Endpoint::Batch) => {
            return Err(fail("/type", "type is required in a batch"))
        }
        (Some(Value::String(s)), endpoint) => {
            let t: EventType = s.parse().map_err(|_| {
                fail(
                    "/type",
                    "type must be one of track, identify, page, screen, group, alias",
                )
            })?;
            if let Endpoint::Single(expected) = endpoint {
                if t != expected {
                    return Err(fail(
                        "/type",
                        format!("type {t} was sent to the /v1/{expected} endpoint"),
                    ));
                }
            }
            t
        }
        (Some(_), _) => return Err(fail("/type", "type must be a string")),
    };

    let user_id = as_id(&wire.user_id, "/userId")?;
    let anonymous_id = as_id(&wire.anonymous_id, "/anonymousId")?;
    if user_id.is_none() && anonymous_id.is_none() {
        return Err(fail("/userId", "userId or anonymousId is required"));
    }

    let name = match event_type {
        EventType::Track => match &wire.event {
            Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 200 => Some(s.clone()),
            Some(Value::String(s)) if s.len() > 200 => {
                return Err(fail("/event", "event must be at most 200 bytes"))
            }
            _ => {
                return Err(fail(
                    "/event",
                    "event is required for track (a non-empty string)",
                ))
            }
        },
        EventType::Page | EventType::Screen => match &wire.name {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.len() <= 200 => Some(s.clone()),
            Some(_) => return Err(fail("/name", "name must be a string of at most 200 bytes")),
        },
        EventType::Alias => {
            if as_id(&wire.previous_id, "/previousId")?.is_none() {
                return Err(fail("/previousId", "previousId is required for alias"));
            }
            None
        }
        EventType::Group => {
            if as_id(&wire.group_id, "/groupId")?.is_none() {
                return Err(fail("/groupId", "groupId is required for group"));
            }
            None
        }
        EventType::Identify => None,
    };
    // A name is stored, shown and sent in the clear: one that holds an identifier is refused
    // rather than rewritten, so the client learns to send it as a trait.
    if let Some(kind) = name.as_deref().and_then(scrub::find) {
        let (field, what) = match event_type {
            EventType::Track => ("/event", "event"),
            _ => ("/name", "name"),
        };
        return Err(fail(
            field,
            format!(
                "{what} must not contain {}: names are stored and sent in the clear; send identifiers as traits",
                match kind {
                    scrub::Kind::Email => "an email address",
                    scrub::Kind::Phone => "a phone number",
                    scrub::Kind::Ip => "an IP address",
                }
            ),
        ));
    }

    let properties = bounded_object(wire.properties, "/properties")?;
    let traits = bounded_object(wire.traits, "/traits")?;
    let own_context = bounded_object(wire.context, "/context")?;
    let own_integrations = bounded_object(wire.integrations, "/integrations")?;
    // The batch's fields are read through, not copied into each event (see `inherit`).
    let context = Layered::new(&own_context, body.context.as_ref());
    let integrations = Layered::new(&own_integrations, body.integrations.as_ref());

    // Segment's skew correction: timestamp = receivedAt − (sentAt − originalTimestamp).
    let sent_at = match as_time(&wire.sent_at, "/sentAt")? {
        Some(t) => Some(t),
        None => as_time(&body.sent_at, "/sentAt")
            .map_err(|Fail(_, d)| fail("/sentAt", format!("batch {d}")))?,
    };
    let original = as_time(&wire.original_timestamp, "/originalTimestamp")?;
    let explicit = as_time(&wire.timestamp, "/timestamp")?;
    let timestamp = match (original, sent_at, explicit) {
        (Some(orig), Some(sent), _) => p.received_at - (sent - orig),
        (_, _, Some(ts)) => ts,
        (Some(orig), None, None) => orig,
        (None, _, None) => p.received_at,
    };
    let timestamp = crate::clock::truncate_millis(timestamp);

    let mut ids = RawIdentifiers::extract(&traits, &context, &properties, user_id.as_deref());
    // Scrubbed before hashing: whole emails and phone numbers found by value under other
    // names become the event's own when it named none.
    let mut found = scrub::Found::default();
    let scrubbed_properties = scrub::scrub(Value::Object(properties), false, &mut found);
    let scrubbed_traits = scrub::scrub(Value::Object(traits), true, &mut found);
    if !(ids.fields.contains_key(&Field::Email) && ids.fields.contains_key(&Field::Phone)) {
        if let Some(ctx_traits) = context.get("traits") {
            found.offer_all(ctx_traits);
        }
    }
    if let Some(email) = found.email {
        ids.fields.entry(Field::Email).or_insert(email);
    }
    if let Some(phone) = found.phone {
        ids.fields.entry(Field::Phone).or_insert(phone);
    }
    let signals = Signals::read_with(|key| context.get(key), p.meta.gpc);
    let ip = context
        .get("ip")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| p.meta.ip.map(|ip| ip.to_string()));
    let user_agent = context
        .get("userAgent")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| p.meta.user_agent.clone());
    let page_url = context
        .get("page")
        .and_then(|pg| pg.get("url"))
        .and_then(Value::as_str)
        .map(|url| scrub::strip_url(url).into_owned());

    // Consent and routing, per destination.
    let filter_name = name.as_deref().unwrap_or(event_type.as_str());
    let event_id = EventId(p.ids.uuid_v7(p.received_at));
    let mut routing = Vec::with_capacity(p.destinations.len());
    let mut routed_profiles: BTreeSet<Profile> = BTreeSet::new();
    for (d, needs) in p.destinations.iter().zip(purposes) {
        let decision = consent::decide(&p.workspace.consent, p.workspace.region, &signals, needs);
        let skipped = if !decision.allowed {
            None
        } else if !supports(d.kind, event_type) {
            Some(format!("{} does not receive {event_type} calls", d.kind))
        } else if !d.events.admits(filter_name) {
            Some(format!(
                "event {filter_name:?} is filtered out by the destination's event list"
            ))
        } else if !integration_allows(&integrations, d) {
            Some("turned off by the event's integrations object".to_owned())
        } else {
            None
        };
        let routed = decision.allowed && skipped.is_none();
        if routed {
            routed_profiles.insert(d.kind.profile());
        }
        routing.push(Routing {
            destination_id: d.id.clone(),
            kind: d.kind,
            routed,
            consent: decision,
            skipped,
        });
    }

    // Normalize and hash once per profile that some routed destination needs.
    let hints = Hints {
        country: ids.fields.get(&Field::Country).map(String::as_str),
        received_at: Some(p.received_at),
    };
    let mut hashed: BTreeMap<Profile, BTreeMap<Field, String>> = BTreeMap::new();
    let mut plain: BTreeMap<Profile, BTreeMap<Field, String>> = BTreeMap::new();
    let mut invalid: BTreeSet<Field> = BTreeSet::new();
    for profile in &routed_profiles {
        let h = hashed.entry(*profile).or_default();
        for (field, raw_value) in &ids.fields {
            match identity::prepare(*profile, *field, raw_value, hints) {
                Ok(Prepared::Hashed(digest)) => {
                    h.insert(*field, digest);
                }
                Ok(Prepared::Plain(v)) => {
                    plain.entry(*profile).or_default().insert(*field, v);
                }
                // A field the profile does not take (GA4 has no external id) is left out,
                // not counted as invalid.
                Err(rejected) if rejected.reason == identity::NOT_SUPPORTED => {}
                Err(_) => {
                    invalid.insert(*field);
                }
            }
        }
    }

    // The internal subject index: keyed HMAC over canonical forms, never a bare hash.
    let mut subjects = Vec::with_capacity(4);
    for field in [Field::Email, Field::Phone, Field::ExternalId] {
        if let Some(raw_value) = ids.fields.get(&field) {
            if let Some(canonical) = identity::canonical_for_index(field, raw_value, hints) {
                subjects.push(p.keys.subject_index(field_tag(field), &canonical));
            }
        }
    }
    if let Some(anon) = &anonymous_id {
        subjects.push(p.keys.subject_index("anonymous_id", anon.trim()));
    }
    subjects.sort();
    subjects.dedup();
    // Carried by each queued item, so that deliver drops it if the subject is erased first.
    let suppression: Vec<String> = subjects
        .iter()
        .map(|s| crate::dsr::suppression_token(s))
        .collect();

    // The event id as the associated data of its sealed values spells it, formatted once.
    let event_key = event_id.to_string();
    let operational = if ip.is_some() || user_agent.is_some() {
        let plaintext =
            serde_json::to_vec(&serde_json::json!({"ip": ip, "user_agent": user_agent}))
                .unwrap_or_default();
        Some(OperationalRecord {
            workspace_id: p.workspace.id.clone(),
            event_id,
            sealed: p.keys.seal(
                nonce(p.ids),
                &aad("op", &p.workspace.id, &event_key),
                &plaintext,
            ),
            expires_at: p.received_at + Retention::operational(),
        })
    } else {
        None
    };

    let forwarded = ForwardedConsent {
        ad_user_data: signals.ad_user_data,
        ad_personalization: signals.ad_personalization,
    };
    let mut items = Vec::new();
    // What is sealed differs between destinations only by the plain values (Google's address
    // fields): serialize the rest once, and again only for a profile that has plain values.
    let mut sealed_fields = SealedFields {
        ip,
        user_agent,
        user_id: user_id.clone(),
        anonymous_id,
        page_url,
        click_ids: ids.click_ids,
        plain: BTreeMap::new(),
    };
    let mut common_plaintext: Option<Vec<u8>> = None;
    for (index, (d, r)) in p.destinations.iter().zip(&routing).enumerate() {
        if !r.routed {
            continue;
        }
        let profile = d.kind.profile();
        let item_aad = aad(
            "item",
            &p.workspace.id,
            &[d.id.as_str(), ":", &event_key].concat(),
        );
        let own_plaintext;
        let plaintext = match plain.get(&profile) {
            Some(values) if !values.is_empty() => {
                sealed_fields.plain = values.clone();
                own_plaintext = serde_json::to_vec(&sealed_fields).unwrap_or_default();
                sealed_fields.plain = BTreeMap::new();
                &own_plaintext
            }
            _ => common_plaintext
                .get_or_insert_with(|| serde_json::to_vec(&sealed_fields).unwrap_or_default()),
        };
        items.push((
            index,
            DeliveryItem {
                event_id,
                message_id: message_id.clone(),
                event_type,
                name: name.clone(),
                timestamp,
                properties: scrubbed_properties.clone(),
                user_data: hashed.get(&profile).cloned().unwrap_or_default(),
                consent: forwarded,
                sealed: Some(p.keys.seal(nonce(p.ids), &item_aad, plaintext)),
                suppression: suppression.clone(),
            },
        ));
    }

    let event = StoredEvent {
        workspace_id: p.workspace.id.clone(),
        event_id,
        message_id,
        event_type,
        name,
        timestamp,
        received_at: p.received_at,
        expires_at: p.received_at + p.workspace.retention.events(),
        properties: scrubbed_properties,
        traits: scrubbed_traits,
        hashed,
        subjects,
        routing,
        invalid_identifiers: invalid.len() as u32,
    };
    let invalid_count = event.invalid_identifiers;
    Ok((
        NewEvent {
            event,
            operational,
            dedup_until: p.received_at + Retention::dedup(),
        },
        items,
        invalid_count,
    ))
}

fn nonce(ids: &dyn Ids) -> [u8; 12] {
    let mut n = [0u8; 12];
    ids.fill(&mut n);
    n
}

/// Segment's `integrations` object: `{"All": false, "Warehouse": true}`. A key matches a
/// destination by its name, id or kind, case-insensitively; a matching boolean wins, else
/// `All` (default true).
fn integration_allows(integrations: &Layered<'_>, d: &Destination) -> bool {
    let names = |k: &str| {
        k.eq_ignore_ascii_case(&d.name)
            || k == d.id.as_str()
            || k.eq_ignore_ascii_case(d.kind.as_str())
    };
    let mut all = true;
    for (k, v) in integrations.iter() {
        match v {
            Value::Bool(on) if names(k) => return *on,
            // Per-integration option objects mean "on".
            Value::Object(_) if names(k) => return true,
            Value::Bool(on) if k.eq_ignore_ascii_case("all") => all = *on,
            _ => {}
        }
    }
    all
}

/// Which calls a destination kind receives: ad and analytics APIs take events and page views;
/// webhooks take every call.
fn supports(kind: DestinationKind, t: EventType) -> bool {
    match kind {
        DestinationKind::Webhook => true,
        _ => matches!(t, EventType::Track | EventType::Page | EventType::Screen),
    }
}
