//! The pure part of ingest: each event parsed, validated, normalized, routed by consent,
//! hashed, indexed and sealed into delivery items, with no I/O.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde_json::value::RawValue;
use serde_json::Value;
use time::OffsetDateTime;

use crate::clock::Ids;
use crate::consent::{self, Signals};
use crate::crypto::{aad, SealLabel, Sealed, WorkspaceKeys};
use crate::deliver::{OpenedItem, Target};
use crate::destination::{Destination, DestinationKind};
use crate::event::{
    sealed_wire, DeliveryItem, EventId, EventType, ForwardedConsent, ItemRef, MessageId,
    OperationalRecord, QueueBody, Routing, SealedFields, StoredEvent,
};
use crate::identity::{Field, Hints, Profile};
use crate::ports::NewEvent;
use crate::workspace::{Retention, Workspace};

use super::identifiers;
use super::inherit::Layered;
use super::pack::{Holding, QueuedItem};
use super::scrub;
use super::wire::{
    read_event, validate, Fail, ParsedBody, Rejection, RequestMeta, RequirementCheck, Unmet,
    Warning,
};

/// Everything [`prepare`] needs besides the body: resolved workspace, keys and request facts.
#[derive(Debug, Clone, Copy)]
pub struct Pipeline<'a> {
    pub workspace: &'a Workspace,
    pub destinations: &'a [Destination],
    pub keys: &'a WorkspaceKeys,
    pub ids: &'a dyn Ids,
    pub meta: &'a RequestMeta,
    pub received_at: OffsetDateTime,
    /// The destinations' requirements, checked per routed event for [`Warning`]s (none: no
    /// check).
    pub requirements: Option<RequirementCheck>,
    /// How the queue holds items: by reference, an item leaves IP and user agent to its
    /// event's operational record instead of sealing them again per destination.
    pub holding: Holding,
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
    pub items: Vec<Vec<(usize, QueuedItem)>>,
    pub rejected: Vec<Rejection>,
    pub invalid_identifiers: u32,
    /// Of the accepted events (duplicates within the request left out).
    pub warnings: Vec<Warning>,
    /// Valid events that repeated the messageId of an earlier event of the same request:
    /// answered as accepted duplicates, not kept.
    pub duplicates: usize,
    /// Valid events of crawlers' user agents, dropped by the workspace's bot filter:
    /// answered as accepted, neither kept nor routed.
    pub bots: usize,
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
        let result = prepare_one(p, body, (index, raw), &purposes, &mut message_id);
        match result {
            Ok(None) => out.bots += 1,
            Ok(Some(PreparedOne {
                event,
                items,
                warnings,
            })) => {
                // The same messageId twice in one request: the first wins, like a retry.
                if !seen.insert(event.event.message_id.as_str().to_owned()) {
                    out.duplicates += 1;
                    continue;
                }
                out.invalid_identifiers += event.event.invalid_identifiers;
                out.warnings.extend(warnings);
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

/// One accepted event: what is stored, its items by destination index, its warnings.
struct PreparedOne {
    event: NewEvent,
    items: Items,
    warnings: Vec<Warning>,
}

/// One event through the stages: parse → validate → normalize → consent and route → hash →
/// index → seal → items.
fn prepare_one(
    p: &Pipeline<'_>,
    body: &ParsedBody<'_>,
    (index, raw): (usize, &RawValue),
    purposes: &[Vec<consent::Purpose>],
    message_id_out: &mut Option<String>,
) -> Result<Option<PreparedOne>, Fail> {
    let mut wire = read_event(raw, message_id_out)?;
    let unknown = std::mem::take(&mut wire.unknown);
    let new_message_id = || MessageId::generated(p.ids.uuid_v7(p.received_at));
    let v = validate(wire, body, p.received_at, new_message_id, message_id_out)?;
    // The batch's fields are read through, not copied into each event (see `inherit`).
    let context = Layered::context(&v.context, body.context.as_ref());
    let integrations = Layered::new(&v.integrations, body.integrations.as_ref());

    // Read before `collect` cuts the URLs of properties to their path.
    let click_ids = crate::click_ids::read(&context, &v.properties, v.timestamp);
    let collected = identifiers::collect(v.traits, &context, v.properties, v.user_id.as_deref());
    let mut ids = collected.ids;
    ids.click_ids = click_ids;
    let signals = Signals::read_with(|key| context.get(key), p.meta.gpc);
    let lend = p.meta.browser || p.workspace.consent.request_ip_as_client_ip;
    let client = Client::read(&context, p.meta, lend);
    if p.workspace.security.bot_filter
        && client
            .user_agent
            .as_deref()
            .is_some_and(crate::bots::is_crawler)
    {
        return Ok(None);
    }

    let filter_name = v.name.as_deref().unwrap_or(v.event_type.as_str());
    let event_id = EventId(p.ids.uuid_v7(p.received_at));
    let (routing, routed_profiles) = route(
        p,
        purposes,
        &signals,
        v.event_type,
        filter_name,
        &integrations,
    );

    let hints = Hints {
        country: ids.fields.get(&Field::Country).map(String::as_str),
        received_at: Some(p.received_at),
    };
    let hashed = identifiers::hash(&ids, &routed_profiles, hints);
    // The internal subject index: keyed HMAC over canonical forms, never a bare hash.
    let subjects = identifiers::subjects(p.keys, &ids, v.anonymous_id.as_deref(), hints);

    let mut event = StoredEvent {
        workspace_id: p.workspace.id.clone(),
        event_id,
        message_id: v.message_id,
        event_type: v.event_type,
        name: v.name,
        timestamp: v.timestamp,
        received_at: p.received_at,
        expires_at: p.received_at + p.workspace.retention.events(),
        properties: collected.properties,
        traits: collected.traits,
        hashed: hashed.hashed,
        subjects,
        routing,
        invalid_identifiers: hashed.invalid.len() as u32,
        vendor_ids: None,
    };
    // The event id as the associated data of its sealed values spells it, formatted once.
    let event_key = event_id.to_string();
    let operational = client.operational_record(p, event_id, &event_key);
    let sealed_fields = SealedFields {
        ip: client.ip,
        user_agent: client.user_agent,
        user_id: v.user_id,
        anonymous_id: v.anonymous_id,
        page_url: client.page_url,
        channel: client.channel,
        click_ids: ids.click_ids,
        plain: BTreeMap::new(),
    };
    // What the event gives vendors to identify the visitor (GA4's client id), sealed, so an
    // access export can list it.
    event.vendor_ids = crate::dsr::VendorIds::seal(
        &crate::dsr::VendorIds::of(&sealed_fields, &event.routing),
        p.keys,
        nonce(p.ids),
        &p.workspace.id,
        &event_key,
    );
    let in_record = p.holding == Holding::ByReference && operational.is_some();
    let (items, unmet) = delivery_items(
        p,
        (&event, &event_key),
        Sealing {
            fields: sealed_fields,
            ip_and_agent_in_record: in_record,
        },
        &hashed.plain,
        &signals,
    );
    let warnings = warnings(p, index, &event.message_id, unknown, unmet);
    Ok(Some(PreparedOne {
        event: NewEvent {
            event,
            operational,
            dedup_until: p.received_at + Retention::dedup(),
        },
        items,
        warnings,
    }))
}

/// An accepted event's warnings: the members the API ignores, then the requirements of the
/// destinations it is routed to that it does not meet.
fn warnings(
    p: &Pipeline<'_>,
    index: usize,
    message_id: &MessageId,
    unknown: Vec<String>,
    unmet: Vec<(usize, Unmet)>,
) -> Vec<Warning> {
    if unknown.is_empty() && unmet.is_empty() {
        return Vec::new();
    }
    let warning = |destination: Option<&Destination>, rule, detail| Warning {
        index,
        message_id: message_id.as_str().to_owned(),
        destination: destination.map(|d| d.id.clone()),
        kind: destination.map(|d| d.kind),
        rule,
        detail,
    };
    let members = unknown.into_iter().map(|member| {
        let detail = format!(
            "{member:?} is not a member of a Segment event and is ignored (properties, traits and context are)"
        );
        warning(None, "unknown_member", detail)
    });
    let requirements = unmet
        .into_iter()
        .map(|(d, u)| warning(Some(&p.destinations[d]), u.rule, u.detail));
    members.chain(requirements).collect()
}

/// The client's address, user agent and page: from the event's context, else (when `lend`:
/// browser traffic, or a workspace that opted in) the request's.
struct Client {
    ip: Option<String>,
    user_agent: Option<String>,
    page_url: Option<String>,
    channel: Option<String>,
}

impl Client {
    fn read(context: &Layered<'_>, meta: &RequestMeta, lend: bool) -> Self {
        let ip = context
            .get("ip")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| meta.ip.filter(|_| lend).map(|ip| ip.to_string()));
        let user_agent = context
            .get("userAgent")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| meta.user_agent.clone().filter(|_| lend));
        let page_url = context
            .get("page")
            .and_then(|pg| pg.get("url"))
            .and_then(Value::as_str)
            .map(|url| scrub::strip_url(url).into_owned());
        let channel = context
            .get("channel")
            .and_then(Value::as_str)
            .map(|c| c.trim().to_ascii_lowercase())
            .filter(|c| !c.is_empty() && c.len() <= 32 && scrub::find(c).is_none());
        Self {
            ip,
            user_agent,
            page_url,
            channel,
        }
    }

    /// IP and user agent, sealed with the workspace data key, kept 30 days.
    fn operational_record(
        &self,
        p: &Pipeline<'_>,
        event_id: EventId,
        event_key: &str,
    ) -> Option<OperationalRecord> {
        let (ip, user_agent) = (&self.ip, &self.user_agent);
        if ip.is_none() && user_agent.is_none() {
            return None;
        }
        let plaintext = sealed_wire::encode_operational(ip.as_deref(), user_agent.as_deref());
        Some(OperationalRecord {
            workspace_id: p.workspace.id.clone(),
            event_id,
            sealed: p.keys.seal(
                nonce(p.ids),
                &aad(SealLabel::Operational, &p.workspace.id, event_key),
                &plaintext,
            ),
            expires_at: p.received_at + Retention::operational(),
        })
    }
}

/// Consent and routing: per destination, whether the event goes there and why (not); and the
/// identity profiles the routed destinations need.
fn route(
    p: &Pipeline<'_>,
    purposes: &[Vec<consent::Purpose>],
    signals: &Signals,
    event_type: EventType,
    filter_name: &str,
    integrations: &Layered<'_>,
) -> (Vec<Routing>, BTreeSet<Profile>) {
    let mut routing = Vec::with_capacity(p.destinations.len());
    let mut routed_profiles: BTreeSet<Profile> = BTreeSet::new();
    for (d, needs) in p.destinations.iter().zip(purposes) {
        let decision = consent::decide(&p.workspace.consent, p.workspace.region, signals, needs);
        let skipped = if !decision.allowed {
            None
        } else if !supports(d.kind, event_type) {
            Some(format!("{} does not receive {event_type} calls", d.kind))
        } else if !d.events.admits(filter_name) {
            Some(format!(
                "event {filter_name:?} is filtered out by the destination's event list"
            ))
        } else if !integration_allows(integrations, d) {
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
    (routing, routed_profiles)
}

/// Queue items by destination index.
type Items = Vec<(usize, QueuedItem)>;

/// Seal and emit: one queue item per routed destination, by destination index, and the
/// requirements of those destinations the event does not meet.
fn delivery_items(
    p: &Pipeline<'_>,
    (event, event_key): (&StoredEvent, &str),
    sealing: Sealing,
    plain: &BTreeMap<Profile, BTreeMap<Field, String>>,
    signals: &Signals,
) -> (Items, Vec<(usize, Unmet)>) {
    let Sealing {
        fields: mut sealed_fields,
        ip_and_agent_in_record,
    } = sealing;
    let forwarded = ForwardedConsent {
        ad_user_data: signals.ad_user_data,
        ad_personalization: signals.ad_personalization,
    };
    // Carried by each item queued by value, so that deliver drops it if the subject is erased
    // first. An item queued by reference is given them from its event when deliver reads it
    // (`RefBody::hydrate`): none are made here for the requirement check's probe, which
    // does not read them (1.4 % of `serve`'s core under `make measure-ingest`, by `perf`).
    let suppression = match p.holding {
        Holding::ByValue => crate::event::suppression_tokens(&event.subjects),
        Holding::ByReference => Vec::new(),
    };
    let mut items = Vec::new();
    let mut unmet = Vec::new();
    // By reference, the whole item the connector would see exists only to be checked: one
    // for the event, its per-destination parts set before each check.
    let mut probe: Option<DeliveryItem> = None;
    // What is sealed differs between destinations only by the plain values (Google's address
    // fields): serialize the rest once, and again only for a profile that has plain values.
    // By reference, the rest is also sealed once: every item without plain values of its
    // own shares it (`DeliveryItem::shared`), and the queue stores it once per request.
    let mut common_plaintext: Option<Vec<u8>> = None;
    let mut shared: Option<Sealed> = None;
    for (index, (d, r)) in p.destinations.iter().zip(&event.routing).enumerate() {
        if !r.routed {
            continue;
        }
        let profile = d.kind.profile();
        let (sealed, item_shared) = match plain.get(&profile) {
            Some(values) if !values.is_empty() => {
                sealed_fields.plain = values.clone();
                let own = sealed_plaintext(&mut sealed_fields, ip_and_agent_in_record);
                sealed_fields.plain = BTreeMap::new();
                (Some(seal_item(p, d, event_key, &own)), None)
            }
            _ => {
                let plaintext = common_plaintext.get_or_insert_with(|| {
                    sealed_plaintext(&mut sealed_fields, ip_and_agent_in_record)
                });
                match p.holding {
                    Holding::ByValue => (Some(seal_item(p, d, event_key, plaintext)), None),
                    Holding::ByReference => {
                        let aad = QueueBody::shared_aad(&p.workspace.id, event_key);
                        let s = shared
                            .get_or_insert_with(|| p.keys.seal(nonce(p.ids), &aad, plaintext));
                        (None, Some(s.clone()))
                    }
                }
            }
        };
        let queued = match p.holding {
            Holding::ByValue => {
                // The one derivation of an item from its event: delivery rebuilds items
                // queued by reference with it too.
                let mut item =
                    DeliveryItem::of_event(event, d.kind, forwarded, sealed, suppression.clone());
                item.shared = item_shared;
                if let Some(check) = p.requirements {
                    let found;
                    (item, found) = checked(check, d, p.received_at, item, &mut sealed_fields);
                    unmet.extend(found.map(|u| (index, u)));
                }
                QueuedItem::Value(Box::new(item))
            }
            Holding::ByReference => {
                if let Some(check) = p.requirements {
                    let mut item = probe.take().unwrap_or_else(|| {
                        DeliveryItem::of_event(event, d.kind, forwarded, None, suppression.clone())
                    });
                    item.user_data = event.hashed.get(&profile).cloned().unwrap_or_default();
                    item.sealed = sealed.clone();
                    item.shared = item_shared.clone();
                    let (item, found) = checked(check, d, p.received_at, item, &mut sealed_fields);
                    unmet.extend(found.map(|u| (index, u)));
                    probe = Some(item);
                }
                QueuedItem::Reference {
                    item: ItemRef {
                        event_id: event.event_id,
                        consent: forwarded,
                        sealed,
                        shared: item_shared.is_some(),
                    },
                    shared: item_shared,
                }
            }
        };
        items.push((index, queued));
    }
    (items, unmet)
}

/// The requirements of `d` that `item` does not meet, checked as the connector will see the
/// item: the item and the event's sealed fields moved in and back out (no copy).
fn checked(
    check: RequirementCheck,
    d: &Destination,
    now: OffsetDateTime,
    item: DeliveryItem,
    sealed_fields: &mut SealedFields,
) -> (DeliveryItem, Option<Unmet>) {
    let no_secrets = Value::Null;
    let target = Target {
        destination: d,
        secrets: &no_secrets,
        base_url: "",
        now,
    };
    let opened = OpenedItem {
        item,
        sealed: std::mem::take(sealed_fields),
    };
    let unmet = check(&target, &opened);
    *sealed_fields = opened.sealed;
    (opened.item, unmet)
}

/// An item's own sealed fields, bound to its destination (aad `item:<ws>:<dest>:<event>`).
fn seal_item(p: &Pipeline<'_>, d: &Destination, event_key: &str, plaintext: &[u8]) -> Sealed {
    let item_aad = aad(
        SealLabel::Item,
        &p.workspace.id,
        &[d.id.as_str(), ":", event_key].concat(),
    );
    p.keys.seal(nonce(p.ids), &item_aad, plaintext)
}

/// The fields an event's items seal, and whether its operational record holds their IP and
/// user agent for them (items by reference, when the event has a record).
struct Sealing {
    fields: SealedFields,
    ip_and_agent_in_record: bool,
}

/// What an item seals of `fields`: all of them, or all but IP and user agent when the
/// operational record holds those (the fields are left as they were).
fn sealed_plaintext(fields: &mut SealedFields, ip_and_agent_in_record: bool) -> Vec<u8> {
    if !ip_and_agent_in_record {
        return sealed_wire::encode_fields(fields);
    }
    let (ip, user_agent) = (fields.ip.take(), fields.user_agent.take());
    let plaintext = sealed_wire::encode_fields(fields);
    (fields.ip, fields.user_agent) = (ip, user_agent);
    plaintext
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
