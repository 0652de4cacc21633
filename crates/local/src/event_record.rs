//! The compact record of a [`StoredEvent`] in the SQLite `events` table (`doc`, a BLOB).
//!
//! Measured on the measurement's purchases, the JSON document was 2.1 KB, so one row filled a
//! 4 KB page (two do not fit): 4.7 KB per event. Most of it was 64-character hex digests (the
//! same email digest under several profiles), consent reasons as sentences and JSON keys.
//! This record stores each distinct digest once as 32 bytes, referenced by every profile and
//! subject that has it; consent reasons as codes ([`tracklayer_core::event::codes`]);
//! timestamps as integers; properties and traits as their JSON.
//!
//! Layout, after the version byte [`VERSION`]: strings are a LEB128 length and UTF-8 bytes;
//! integers LEB128 (signed ones zigzag). Rows written before it are JSON text (their first
//! byte is `{`) and still read.

use std::collections::BTreeMap;

use rusqlite::types::ValueRef;
use serde::{de::DeserializeOwned, Serialize};
use time::{OffsetDateTime, UtcOffset};
use tracklayer_core::consent::Decision;
use tracklayer_core::crypto::Sealed;
use tracklayer_core::error::StoreError;
use tracklayer_core::event::{codes, EventId, EventType, MessageId, Routing, StoredEvent};
use tracklayer_core::identity::{Field, Profile};

/// The first byte of a compact record.
pub const VERSION: u8 = 1;

/// The record of `e`.
pub fn encode(e: &StoredEvent) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(1024));
    w.0.push(VERSION);
    w.str(e.workspace_id.as_str());
    w.0.extend_from_slice(e.event_id.0.as_bytes());
    w.str(e.message_id.as_str());
    w.str(e.event_type.as_str());
    w.opt_str(e.name.as_deref());
    for t in [e.timestamp, e.received_at, e.expires_at] {
        w.time(t);
    }
    w.str(&e.properties.to_string());
    w.str(&e.traits.to_string());
    // Every distinct digest once; profiles and subjects refer to them by position.
    let mut digests: Vec<[u8; 32]> = Vec::new();
    let values = e
        .hashed
        .values()
        .flat_map(|m| m.values())
        .chain(&e.subjects);
    for v in values {
        if let Some(d) = digest(v) {
            if !digests.contains(&d) {
                digests.push(d);
            }
        }
    }
    w.uint(digests.len() as u64);
    digests.iter().for_each(|d| w.0.extend_from_slice(d));
    w.uint(e.hashed.len() as u64);
    for (profile, fields) in &e.hashed {
        w.str(&name(profile));
        w.uint(fields.len() as u64);
        for (field, value) in fields {
            w.str(&name(field));
            w.value(value, &digests);
        }
    }
    w.uint(e.subjects.len() as u64);
    e.subjects.iter().for_each(|s| w.value(s, &digests));
    w.uint(e.routing.len() as u64);
    for r in &e.routing {
        w.str(r.destination_id.as_str());
        w.str(r.kind.as_str());
        w.0.push(u8::from(r.routed) | u8::from(r.consent.allowed) << 1);
        match codes::reason_code(&r.consent.reason) {
            Some(code) => w.0.push(code),
            None => {
                w.0.push(0);
                w.str(&r.consent.reason);
            }
        }
        w.opt_str(r.skipped.as_deref());
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

/// The event of a `doc` column: a compact record, or a JSON document written before it.
pub fn decode(context: &'static str, doc: ValueRef<'_>) -> Result<StoredEvent, StoreError> {
    match doc {
        ValueRef::Text(json) => {
            serde_json::from_slice(json).map_err(|e| StoreError::corrupt(context, e))
        }
        ValueRef::Blob([VERSION, rest @ ..]) => {
            let mut r = Reader { rest, context };
            let e = r.event()?;
            if !r.rest.is_empty() {
                return Err(r.corrupt("bytes after the record"));
            }
            Ok(e)
        }
        _ => Err(StoreError::corrupt(
            context,
            "an event row is neither a record nor JSON",
        )),
    }
}

/// A `doc` column as the JSON document it used to be (tests and inspection read it so).
pub fn as_json(doc: ValueRef<'_>) -> Result<serde_json::Value, StoreError> {
    let event = decode("event_json", doc)?;
    serde_json::to_value(event).map_err(|e| StoreError::permanent("event_json", e))
}

/// 64 lowercase hex digits as their 32 bytes (a digest here, a subject in the subject index).
pub(crate) fn digest(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

/// The serde name of a unit variant (`Profile`, `DestinationKind`).
fn name<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        other => unreachable!("a unit variant serializes as a string: {other:?}"),
    }
}

struct Writer(Vec<u8>);

impl Writer {
    fn uint(&mut self, mut n: u64) {
        while n >= 0x80 {
            self.0.push((n as u8) | 0x80);
            n >>= 7;
        }
        self.0.push(n as u8);
    }
    fn int(&mut self, n: i64) {
        self.uint(((n << 1) ^ (n >> 63)) as u64);
    }
    fn bytes(&mut self, b: &[u8]) {
        self.uint(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => {
                self.0.push(1);
                self.str(s);
            }
            None => self.0.push(0),
        }
    }
    /// Seconds, nanoseconds and UTC offset: the instant and how it was written, exactly.
    fn time(&mut self, t: OffsetDateTime) {
        self.int(t.unix_timestamp());
        self.uint(u64::from(t.nanosecond()));
        self.int(i64::from(t.offset().whole_seconds()));
    }
    /// A digest as 1 + its position among the record's digests; anything else as 0 and
    /// the string.
    fn value(&mut self, v: &str, digests: &[[u8; 32]]) {
        match digest(v).and_then(|d| digests.iter().position(|x| *x == d)) {
            Some(i) => self.uint(i as u64 + 1),
            None => {
                self.uint(0);
                self.str(v);
            }
        }
    }
}

struct Reader<'a> {
    rest: &'a [u8],
    context: &'static str,
}

impl<'a> Reader<'a> {
    fn corrupt(&self, why: &'static str) -> StoreError {
        StoreError::corrupt(self.context, why)
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.rest.len() < n {
            return Err(self.corrupt("a record cut short"));
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }
    fn byte(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }
    fn uint(&mut self) -> Result<u64, StoreError> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(self.corrupt("an integer too long"))
    }
    fn int(&mut self) -> Result<i64, StoreError> {
        let n = self.uint()?;
        Ok((n >> 1) as i64 ^ -((n & 1) as i64))
    }
    fn len(&mut self) -> Result<usize, StoreError> {
        let n = self.uint()?;
        usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.rest.len())
            .ok_or_else(|| self.corrupt("a length past the record's end"))
    }
    fn bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let n = self.len()?;
        self.take(n)
    }
    fn str(&mut self) -> Result<&'a str, StoreError> {
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|_| self.corrupt("a string that is not UTF-8"))
    }
    fn opt_str(&mut self) -> Result<Option<String>, StoreError> {
        Ok(match self.byte()? {
            0 => None,
            _ => Some(self.str()?.to_owned()),
        })
    }
    /// A string read as the unit variant (or string newtype) it names.
    fn parsed<T: DeserializeOwned>(&mut self) -> Result<T, StoreError> {
        let s = self.str()?;
        serde_json::from_value(serde_json::Value::String(s.to_owned()))
            .map_err(|e| StoreError::corrupt(self.context, e))
    }
    fn json(&mut self) -> Result<serde_json::Value, StoreError> {
        let s = self.str()?;
        serde_json::from_str(s).map_err(|e| StoreError::corrupt(self.context, e))
    }
    fn time(&mut self) -> Result<OffsetDateTime, StoreError> {
        let (secs, nanos, offset) = (self.int()?, self.uint()?, self.int()?);
        let t = OffsetDateTime::from_unix_timestamp(secs)
            .ok()
            .and_then(|t| t.replace_nanosecond(u32::try_from(nanos).ok()?).ok());
        let offset = i32::try_from(offset)
            .ok()
            .and_then(|o| UtcOffset::from_whole_seconds(o).ok());
        match (t, offset) {
            (Some(t), Some(o)) => Ok(t.to_offset(o)),
            _ => Err(self.corrupt("a time out of range")),
        }
    }
    fn value(&mut self, digests: &[[u8; 32]]) -> Result<String, StoreError> {
        match self.uint()? {
            0 => Ok(self.str()?.to_owned()),
            i => digests
                .get(usize::try_from(i - 1).unwrap_or(usize::MAX))
                .map(|d| tracklayer_core::crypto::hex_lower(d))
                .ok_or_else(|| self.corrupt("a digest reference past the table")),
        }
    }

    fn event(&mut self) -> Result<StoredEvent, StoreError> {
        let workspace_id = self.parsed()?;
        let event_id = EventId(uuid::Uuid::from_slice(self.take(16)?).expect("16 bytes"));
        let message_id = MessageId::parse(self.str()?).map_err(|_| self.corrupt("message id"))?;
        let event_type: EventType = self
            .str()?
            .parse()
            .map_err(|()| self.corrupt("an event type"))?;
        let name = self.opt_str()?;
        let (timestamp, received_at, expires_at) = (self.time()?, self.time()?, self.time()?);
        let (properties, traits) = (self.json()?, self.json()?);
        let n = self.len()?;
        let digests: Vec<[u8; 32]> = (0..n)
            .map(|_| Ok(self.take(32)?.try_into().expect("32 bytes")))
            .collect::<Result<_, StoreError>>()?;
        let mut hashed: BTreeMap<Profile, BTreeMap<Field, String>> = BTreeMap::new();
        for _ in 0..self.len()? {
            let profile: Profile = self.parsed()?;
            let mut fields = BTreeMap::new();
            for _ in 0..self.len()? {
                let field: Field = self.parsed()?;
                fields.insert(field, self.value(&digests)?);
            }
            hashed.insert(profile, fields);
        }
        let subjects = (0..self.len()?)
            .map(|_| self.value(&digests))
            .collect::<Result<_, _>>()?;
        let mut routing = Vec::new();
        for _ in 0..self.len()? {
            let destination_id = self.parsed()?;
            let kind = self.parsed()?;
            let flags = self.byte()?;
            let reason = match self.byte()? {
                0 => self.str()?.to_owned(),
                code => codes::reason_of(code).ok_or_else(|| self.corrupt("a reason code"))?,
            };
            routing.push(Routing {
                destination_id,
                kind,
                routed: flags & 1 != 0,
                consent: Decision {
                    allowed: flags & 2 != 0,
                    reason,
                },
                skipped: self.opt_str()?,
            });
        }
        let invalid_identifiers =
            u32::try_from(self.uint()?).map_err(|_| self.corrupt("a count"))?;
        let vendor_ids = match self.byte()? {
            0 => None,
            _ => Some(Sealed(self.bytes()?.to_vec())),
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;
    use tracklayer_core::destination::{DestinationId, DestinationKind};
    use tracklayer_core::identity::sha256_hex;
    use tracklayer_core::testkit::{new_event, T0};
    use tracklayer_core::workspace::{Region, WorkspaceId};

    /// Events unlike each other in every way the record encodes.
    fn cases() -> Vec<StoredEvent> {
        let ws = WorkspaceId::new(Region::Us, "records");
        let plain = new_event(&ws, "m-plain", &[], T0).event;
        let mut rich = new_event(&ws, "m-rich", &["s1", "s2"], T0).event;
        let email = sha256_hex("jane@example.com");
        rich.hashed = BTreeMap::from([
            (
                Profile::Meta,
                BTreeMap::from([
                    (Field::Email, email.clone()),
                    (Field::Phone, sha256_hex("+4930")),
                ]),
            ),
            (
                Profile::Google,
                BTreeMap::from([(Field::Email, email.clone())]),
            ),
            (
                Profile::TikTok,
                BTreeMap::from([
                    (Field::Email, email.to_uppercase()),
                    (Field::City, "not a digest \u{e9}".into()),
                ]),
            ),
        ]);
        rich.subjects = vec![email.clone(), sha256_hex("anon"), "short".into()];
        rich.name = None;
        rich.event_type = EventType::Identify;
        rich.timestamp = datetime!(2026-03-01 11:59:58.123456789 +01:30);
        rich.received_at = datetime!(1970-01-01 0:00 UTC);
        rich.expires_at = datetime!(2100-12-31 23:59:59.999 -05:00);
        rich.properties = json!({"z": 1, "a": [1.5, -2, 18446744073709551615u64, null],
                                 "caf\u{e9}": {"q\"": "\\\n"}, "big": 1e300});
        rich.traits = json!({"plan": "pro"});
        rich.routing = vec![
            Routing {
                destination_id: DestinationId::new("dst_a"),
                kind: DestinationKind::Ga4,
                routed: false,
                consent: Decision {
                    allowed: true,
                    reason: "analytics granted by context.consent.categoryPreferences".into(),
                },
                skipped: Some("event \"X\" is filtered out".into()),
            },
            Routing {
                destination_id: DestinationId::new("dst_b"),
                kind: DestinationKind::Webhook,
                routed: false,
                consent: Decision {
                    allowed: false,
                    reason: "advertising denied by x; analytics granted by y".into(),
                },
                skipped: None,
            },
        ];
        rich.invalid_identifiers = 300;
        rich.vendor_ids = Some(Sealed(vec![0, 1, 2, 255]));
        let mut empty = new_event(&ws, "m-empty", &[], T0).event;
        empty.hashed = BTreeMap::new();
        empty.routing = Vec::new();
        empty.properties = json!({});
        vec![plain, rich, empty]
    }

    #[test]
    fn every_event_reads_back_exactly_as_it_was_written() {
        for e in cases() {
            let record = encode(&e);
            assert_eq!(record[0], VERSION);
            let back = decode("test", ValueRef::Blob(&record)).unwrap();
            assert_eq!(back, e);
            // Offsets and key order too: the JSON each gives is the same text.
            assert_eq!(
                serde_json::to_string(&back).unwrap(),
                serde_json::to_string(&e).unwrap()
            );
        }
    }

    #[test]
    fn a_row_written_as_a_json_document_still_reads() {
        for e in cases() {
            let doc = serde_json::to_string(&e).unwrap();
            let back = decode("test", ValueRef::Text(doc.as_bytes())).unwrap();
            assert_eq!(back, e);
        }
    }

    #[test]
    fn a_realistic_event_takes_less_than_half_its_json() {
        let ws = WorkspaceId::new(Region::Us, "records");
        let mut e = new_event(&ws, "m-size", &[], T0).event;
        let digests: Vec<String> = ["em", "ph", "ex"].iter().map(|s| sha256_hex(s)).collect();
        let fields = [Field::Email, Field::Phone, Field::ExternalId];
        let profile: BTreeMap<Field, String> = fields.into_iter().zip(digests.clone()).collect();
        e.hashed = [Profile::Meta, Profile::Google, Profile::TikTok]
            .into_iter()
            .map(|p| (p, profile.clone()))
            .collect();
        e.subjects = digests;
        let json = serde_json::to_vec(&e).unwrap().len();
        let record = encode(&e).len();
        assert!(record * 2 < json, "{record} vs {json} bytes");
    }

    #[test]
    fn a_damaged_record_is_corrupt_never_a_default() {
        let record = encode(&cases()[1]);
        for bad in [
            &record[..record.len() - 1],
            &record[..20],
            &[VERSION][..],
            &[9, 1, 2][..],
        ] {
            let got = decode("test", ValueRef::Blob(bad));
            assert!(matches!(got, Err(StoreError::Corrupt { .. })), "{got:?}");
        }
        let mut longer = record.clone();
        longer.push(0);
        assert!(decode("test", ValueRef::Blob(&longer)).is_err());
    }
}
