//! Formats 2 and 3: what format 1 stored as strings that a code or the row's key already
//! says, they no longer store. Format 3, written now, is format 2 with the event's name as a
//! code when it is one of Segment's spec names ([`codes::event_name_code`]: "Order
//! Completed", 16 bytes, became 2), as [`Writer::name`] writes it; format 2 wrote 0 or 1 and
//! the string, which format 3 reads the same.
//!
//! - the workspace id: not stored, the row's key (`events.workspace_id`) holds it;
//! - the event type, each profile, field and destination kind: a one-byte code
//!   ([`codes`]), or 0 and the name for a value with no code;
//! - a destination id of the form `dst_<32 lowercase hex>`: its 16 bytes (any other, its
//!   string), said by a flag of its routing entry;
//! - the event's time and its expiry: differences from its receipt (one byte each part when
//!   equal, as the event time of a call without a timestamp is).
//!
//! Layout after the version byte: event id (16 bytes), message id, event type, name (0, or 1
//! and the string), received at (seconds, nanoseconds, offset), timestamp and expiry (each
//! seconds, nanoseconds and offset less received at's), properties and traits (JSON text),
//! the digests (a count and 32 bytes each), the hashes (a count; per profile its code and a
//! count; per field its code and a value), the subjects (a count and a value each), the
//! routing (a count; per destination [`flags`], its kind, its id (16 bytes or a string), its
//! consent reason's code (or 0 and the string) and, when flagged, why it was skipped),
//! the invalid identifier count, and the vendor ids (0, or 1 and the sealed bytes). A value
//! is 1 + the position of its digest, or 0 and the string.

use tracklayer_core::consent::Decision;
use tracklayer_core::destination::DestinationId;
use tracklayer_core::error::StoreError;
use tracklayer_core::event::codes::{self, DESTINATION_KINDS, EVENT_TYPES, FIELDS, PROFILES};
use tracklayer_core::event::{Routing, StoredEvent};

use super::wire::{lower_hex, Reader, Writer};

/// The version byte of format 2 (read).
pub(super) const VERSION: u8 = 2;
/// The version byte of format 3 (written).
pub(super) const VERSION_3: u8 = 3;

/// The bits of a routing entry's first byte.
mod flags {
    /// Queued for delivery.
    pub const ROUTED: u8 = 1;
    /// Consent allowed it.
    pub const ALLOWED: u8 = 1 << 1;
    /// The destination id is stored as 16 bytes, not a string.
    pub const ID_BYTES: u8 = 1 << 2;
    /// A reason it was skipped follows.
    pub const SKIPPED: u8 = 1 << 3;
    /// Every bit this format defines.
    pub const ALL: u8 = ROUTED | ALLOWED | ID_BYTES | SKIPPED;
}

/// The 16 bytes of a destination id `dst_<32 lowercase hex>` (the form the control plane
/// gives ids).
fn destination_id_bytes(id: &DestinationId) -> Option<[u8; 16]> {
    lower_hex(id.as_str().strip_prefix("dst_")?)
}

/// The record of `e`, whose workspace id is its row's key.
pub(super) fn encode(e: &StoredEvent) -> Vec<u8> {
    // Serialized straight into bytes: `to_string` goes through `fmt::Write` (its Display),
    // 2 % of `serve`'s core under load.
    let json =
        |v: &serde_json::Value| serde_json::to_vec(v).expect("a JSON value always serializes");
    let (properties, traits) = (json(&e.properties), json(&e.traits));
    // Every distinct digest once; each value (the hashes', then the subjects', in the order
    // they are written) refers to its digest by 1 + its position, or is 0 and the string.
    let mut digests: Vec<[u8; 32]> = Vec::new();
    let mut refs = Vec::with_capacity(e.subjects.len() + 3 * e.hashed.len());
    let values = e
        .hashed
        .values()
        .flat_map(|m| m.values())
        .chain(&e.subjects);
    for v in values {
        refs.push(lower_hex::<32>(v).map_or(0, |d| {
            let at = digests.iter().position(|x| *x == d).unwrap_or_else(|| {
                digests.push(d);
                digests.len() - 1
            });
            at as u64 + 1
        }));
    }
    // Its strings, digests and sealed bytes, and about 96 bytes (ids, times, counts, codes)
    // and 20 per destination beside them.
    let mut w = Writer(Vec::with_capacity(
        96 + e.message_id.as_str().len()
            + e.name.as_ref().map_or(0, String::len)
            + properties.len()
            + traits.len()
            + 32 * digests.len()
            + 20 * e.routing.len()
            + e.vendor_ids.as_ref().map_or(0, |v| v.0.len()),
    ));
    w.0.push(VERSION_3);
    w.0.extend_from_slice(e.event_id.0.as_bytes());
    w.str(e.message_id.as_str());
    w.coded(&EVENT_TYPES, e.event_type, e.event_type.as_str());
    w.name(e.name.as_deref());
    w.time(e.received_at);
    w.time_since(e.timestamp, e.received_at);
    w.time_since(e.expires_at, e.received_at);
    w.bytes(&properties);
    w.bytes(&traits);
    let mut refs = refs.into_iter();
    w.uint(digests.len() as u64);
    digests.iter().for_each(|d| w.0.extend_from_slice(d));
    w.uint(e.hashed.len() as u64);
    for (profile, fields) in &e.hashed {
        w.coded(&PROFILES, *profile, profile.as_str());
        w.uint(fields.len() as u64);
        for (field, value) in fields {
            w.coded(&FIELDS, *field, field.as_str());
            w.value(value, refs.next().expect("a reference per value"));
        }
    }
    w.uint(e.subjects.len() as u64);
    for s in &e.subjects {
        w.value(s, refs.next().expect("a reference per value"));
    }
    w.uint(e.routing.len() as u64);
    for r in &e.routing {
        let id = destination_id_bytes(&r.destination_id);
        let flag = |on: bool, bit: u8| if on { bit } else { 0 };
        w.0.push(
            flag(r.routed, flags::ROUTED)
                | flag(r.consent.allowed, flags::ALLOWED)
                | flag(id.is_some(), flags::ID_BYTES)
                | flag(r.skipped.is_some(), flags::SKIPPED),
        );
        w.coded(&DESTINATION_KINDS, r.kind, r.kind.as_str());
        match id {
            Some(bytes) => w.0.extend_from_slice(&bytes),
            None => w.str(r.destination_id.as_str()),
        }
        match codes::reason_code(&r.consent.reason) {
            Some(code) => w.0.push(code),
            None => {
                w.0.push(0);
                w.str(&r.consent.reason);
            }
        }
        if let Some(skipped) = &r.skipped {
            w.str(skipped);
        }
    }
    w.uint(u64::from(e.invalid_identifiers));
    match &e.vendor_ids {
        Some(sealed) => {
            w.0.push(1);
            w.bytes(&sealed.0);
        }
        None => w.0.push(0),
    }
    w.0
}

/// One routing entry, as [`encode`] writes it.
pub(super) fn routing(r: &mut Reader<'_>) -> Result<Routing, StoreError> {
    let bits = r.byte()?;
    if bits & !flags::ALL != 0 {
        return Err(r.corrupt("routing flags this format does not define"));
    }
    let kind = r.coded(&DESTINATION_KINDS)?;
    let destination_id = if bits & flags::ID_BYTES != 0 {
        DestinationId::new(&tracklayer_core::crypto::hex_lower(&r.array::<16>()?))
    } else {
        r.parsed()?
    };
    let reason = match r.byte()? {
        0 => r.str()?.to_owned(),
        code => codes::reason_of(code).ok_or_else(|| r.corrupt("a reason code"))?,
    };
    let skipped = if bits & flags::SKIPPED != 0 {
        Some(r.str()?.to_owned())
    } else {
        None
    };
    Ok(Routing {
        destination_id,
        kind,
        routed: bits & flags::ROUTED != 0,
        consent: Decision {
            allowed: bits & flags::ALLOWED != 0,
            reason,
        },
        skipped,
    })
}
