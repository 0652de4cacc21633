//! The compact record of a [`StoredEvent`] in the SQLite `events` table (`doc`, a BLOB).
//!
//! Measured on the measurement's purchases, the JSON document was 2.1 KB, so one row filled a
//! 4 KB page (two do not fit): 4.7 KB per event. Most of it was 64-character hex digests (the
//! same email digest under several profiles), consent reasons as sentences and JSON keys.
//! This record stores each distinct digest once as 32 bytes, referenced by every profile and
//! subject that has it; consent reasons, profiles, fields, destination kinds and event types
//! as codes ([`tracklayer_core::event::codes`]); timestamps as integers; properties and
//! traits as their JSON.
//!
//! The first byte is the format's version. Format 2 ([`v2`], still read) is format 1 ([`v1`],
//! still read) without what the row's key or a code already says: 803 bytes of a measurement
//! purchase routed to three destinations became 602. Format 3 (written now, [`v2`]) is format
//! 2 with a Segment spec event name as a code: 587. Rows written before any
//! are JSON text (their first byte is `{`) and still read. All formats store the same parts
//! in the same order ([`read`]); integers and strings are written as [`wire`] says.

mod v1;
mod v2;
mod wire;

use std::collections::BTreeMap;

use rusqlite::types::ValueRef;
use tracklayer_core::crypto::Sealed;
use tracklayer_core::error::StoreError;
use tracklayer_core::event::codes::{EVENT_TYPES, FIELDS, PROFILES};
use tracklayer_core::event::{EventId, EventType, MessageId, StoredEvent};
use tracklayer_core::workspace::WorkspaceId;

use wire::Reader;

/// The record of `e` (in the current format), for the row keyed by its workspace id.
pub fn encode(e: &StoredEvent) -> Vec<u8> {
    v2::encode(e)
}

/// The event of a `doc` column of `workspace_id`'s row (the row's key): a record of any
/// format, or a JSON document written before them.
pub fn decode(
    context: &'static str,
    workspace_id: &WorkspaceId,
    doc: ValueRef<'_>,
) -> Result<StoredEvent, StoreError> {
    let (format, rest) = match doc {
        ValueRef::Text(json) => {
            return serde_json::from_slice(json).map_err(|e| StoreError::corrupt(context, e))
        }
        ValueRef::Blob([v1::VERSION, rest @ ..]) => (Format::V1, rest),
        ValueRef::Blob([v2::VERSION, rest @ ..]) => (Format::V2, rest),
        ValueRef::Blob([v2::VERSION_3, rest @ ..]) => (Format::V3, rest),
        _ => {
            return Err(StoreError::corrupt(
                context,
                "an event row is neither a record nor JSON",
            ))
        }
    };
    let mut r = Reader { rest, context };
    let event = read(&mut r, format, workspace_id)?;
    if !r.rest.is_empty() {
        return Err(r.corrupt("bytes after the record"));
    }
    Ok(event)
}

/// The record formats, which store the same parts in the same order and differ in how
/// [`read`] says.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    V1,
    V2,
    V3,
}

/// The event of a record in `format` (after its version byte) of `workspace_id`'s row.
fn read(
    r: &mut Reader<'_>,
    format: Format,
    workspace_id: &WorkspaceId,
) -> Result<StoredEvent, StoreError> {
    let workspace_id = match format {
        Format::V1 => r.parsed()?,
        Format::V2 | Format::V3 => workspace_id.clone(),
    };
    let event_id = EventId(uuid::Uuid::from_bytes(r.array()?));
    let message_id = MessageId::parse(r.str()?).map_err(|_| r.corrupt("message id"))?;
    let event_type: EventType = match format {
        Format::V1 => r.str()?.parse().map_err(|()| r.corrupt("an event type"))?,
        Format::V2 | Format::V3 => r.coded(&EVENT_TYPES)?,
    };
    let name = match format {
        Format::V1 | Format::V2 => r.opt_str()?,
        Format::V3 => r.name()?,
    };
    let (timestamp, received_at, expires_at) = match format {
        Format::V1 => (r.time()?, r.time()?, r.time()?),
        Format::V2 | Format::V3 => {
            let received_at = r.time()?;
            let timestamp = r.time_since(received_at)?;
            (timestamp, received_at, r.time_since(received_at)?)
        }
    };
    let (properties, traits) = (r.json()?, r.json()?);
    let digests = r.digests()?;
    let mut hashed = BTreeMap::new();
    for _ in 0..r.len()? {
        let profile = match format {
            Format::V1 => r.parsed()?,
            Format::V2 | Format::V3 => r.coded(&PROFILES)?,
        };
        let mut fields = BTreeMap::new();
        for _ in 0..r.len()? {
            let field = match format {
                Format::V1 => r.parsed()?,
                Format::V2 | Format::V3 => r.coded(&FIELDS)?,
            };
            fields.insert(field, r.value(&digests)?);
        }
        hashed.insert(profile, fields);
    }
    let subjects = (0..r.len()?)
        .map(|_| r.value(&digests))
        .collect::<Result<_, _>>()?;
    let routing = (0..r.len()?)
        .map(|_| match format {
            Format::V1 => v1::routing(r),
            Format::V2 | Format::V3 => v2::routing(r),
        })
        .collect::<Result<_, _>>()?;
    let invalid_identifiers = u32::try_from(r.uint()?).map_err(|_| r.corrupt("a count"))?;
    let vendor_ids = match r.byte()? {
        0 => None,
        1 => Some(Sealed(r.bytes()?.to_vec())),
        // Format 1 read any other flag as 1.
        _ if format == Format::V1 => Some(Sealed(r.bytes()?.to_vec())),
        _ => return Err(r.corrupt("a vendor ids flag")),
    };
    Ok(StoredEvent {
        workspace_id,
        event_id,
        message_id,
        event_type,
        name,
        timestamp,
        received_at,
        expires_at,
        properties,
        traits,
        hashed,
        subjects,
        routing,
        invalid_identifiers,
        vendor_ids,
    })
}

/// A `doc` column of `workspace_id`'s row as the JSON document it used to be (tests and
/// inspection read it so).
pub fn as_json(workspace_id: &str, doc: ValueRef<'_>) -> Result<serde_json::Value, StoreError> {
    let ws = WorkspaceId::parse(workspace_id).map_err(|e| StoreError::corrupt("event_json", e))?;
    let event = decode("event_json", &ws, doc)?;
    serde_json::to_value(event).map_err(|e| StoreError::permanent("event_json", e))
}

/// 64 lowercase hex digits as their 32 bytes (a digest here, a subject in the subject index).
pub(crate) fn digest(s: &str) -> Option<[u8; 32]> {
    wire::lower_hex(s)
}

#[cfg(test)]
mod tests;
