//! The binary encoding of a queue message whose items are by reference ([`RefBody`]).
//!
//! A by-reference message never leaves the machine (only the embedded queue holds items so),
//! and as JSON most of its bytes were framing: the event id as 36 characters of hyphenated
//! text and the sealed fields in base64, a third larger than their bytes. Measured on the
//! measurement's purchases, a destination's item took about 330 bytes as JSON and takes
//! about 200 here; with three destinations that is a third of the queue's bytes per event.
//!
//! Layout: [`MAGIC`] (never `{`, so JSON bodies written before still read), the body's
//! version byte, `attempts` as LEB128, workspace id, destination id and kind as a LEB128
//! length and UTF-8 bytes; then the items, one after another to the end of the body, each:
//! its event id (16 bytes), a flags byte ([`flags`]), and, when it has sealed fields, their
//! length (LEB128) and bytes.

use super::{EventId, ForwardedConsent, ItemRef, RefBody, UnreadableBody};
use crate::crypto::Sealed;
use crate::destination::{DestinationId, DestinationKind};
use crate::workspace::WorkspaceId;

/// The first byte of a binary by-reference body.
pub const MAGIC: u8 = 0xB1;

/// The bits of an item's flags byte.
mod flags {
    pub const AD_USER_DATA_SET: u8 = 1;
    pub const AD_USER_DATA: u8 = 1 << 1;
    pub const AD_PERSONALIZATION_SET: u8 = 1 << 2;
    pub const AD_PERSONALIZATION: u8 = 1 << 3;
    pub const SEALED: u8 = 1 << 4;
    /// The item takes its event's shared sealed fields ([`super::ItemRef::shared`]).
    pub const SHARED: u8 = 1 << 5;
    /// Every bit a writer sets: a byte with another one set was not written here.
    pub const KNOWN: u8 = 0b11_1111;
}

/// The head of a body with no items yet: what [`ItemRef::write`] appends to.
pub fn head(
    v: u8,
    attempts: u32,
    workspace_id: &WorkspaceId,
    destination_id: &DestinationId,
    kind: DestinationKind,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    out.push(MAGIC);
    out.push(v);
    uint(&mut out, u64::from(attempts));
    for s in [
        workspace_id.as_str(),
        destination_id.as_str(),
        kind.as_str(),
    ] {
        bytes(&mut out, s.as_bytes());
    }
    out
}

impl ItemRef {
    /// Appends this item to a binary body.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.event_id.0.as_bytes());
        let bit = |v: Option<bool>, set: u8, on: u8| match v {
            None => 0,
            Some(false) => set,
            Some(true) => set | on,
        };
        let mut f = bit(
            self.consent.ad_user_data,
            flags::AD_USER_DATA_SET,
            flags::AD_USER_DATA,
        ) | bit(
            self.consent.ad_personalization,
            flags::AD_PERSONALIZATION_SET,
            flags::AD_PERSONALIZATION,
        );
        if self.sealed.is_some() {
            f |= flags::SEALED;
        }
        if self.shared {
            f |= flags::SHARED;
        }
        out.push(f);
        if let Some(sealed) = &self.sealed {
            bytes(out, &sealed.0);
        }
    }
}

impl RefBody {
    /// The binary encoding of this body.
    pub fn encode_binary(&self) -> Vec<u8> {
        let mut out = head(
            self.v,
            self.attempts,
            &self.workspace_id,
            &self.destination_id,
            self.kind,
        );
        self.refs.iter().for_each(|r| r.write(&mut out));
        out
    }

    /// A body [`RefBody::encode_binary`] wrote (starting with [`MAGIC`]).
    pub fn decode_binary(body: &[u8]) -> Result<Self, UnreadableBody> {
        let mut r = Reader(body);
        if r.byte()? != MAGIC {
            return Err(unreadable("not a binary by-reference body"));
        }
        let v = r.byte()?;
        let attempts = u32::try_from(r.uint()?).map_err(|_| unreadable("attempts out of range"))?;
        let workspace_id =
            WorkspaceId::parse(r.str()?).map_err(|_| unreadable("not a workspace id"))?;
        // As its JSON form reads it (any id the queue was given).
        let destination_id: DestinationId = serde_json::from_value(r.str()?.into())?;
        let kind: DestinationKind = r
            .str()?
            .parse()
            .map_err(|_| unreadable("not a destination kind"))?;
        let mut refs = Vec::new();
        while !r.0.is_empty() {
            refs.push(r.item()?);
        }
        Ok(Self {
            v,
            attempts,
            workspace_id,
            destination_id,
            kind,
            refs,
        })
    }
}

pub(super) fn unreadable(why: &'static str) -> UnreadableBody {
    UnreadableBody(serde::de::Error::custom(why))
}

pub(super) fn uint(out: &mut Vec<u8>, n: u64) {
    crate::varint::put(out, n);
}

pub(super) fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    uint(out, b.len() as u64);
    out.extend_from_slice(b);
}

pub(super) struct Reader<'a>(pub(super) &'a [u8]);

impl<'a> Reader<'a> {
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], UnreadableBody> {
        if self.0.len() < n {
            return Err(unreadable("the body ends inside a field"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    pub(super) fn byte(&mut self) -> Result<u8, UnreadableBody> {
        Ok(self.take(1)?[0])
    }

    pub(super) fn uint(&mut self) -> Result<u64, UnreadableBody> {
        crate::varint::read(|| self.byte())?
            .ok_or_else(|| unreadable("a length longer than 64 bits"))
    }

    pub(super) fn bytes(&mut self) -> Result<&'a [u8], UnreadableBody> {
        let n = usize::try_from(self.uint()?).map_err(|_| unreadable("a length out of range"))?;
        self.take(n)
    }

    pub(super) fn str(&mut self) -> Result<&'a str, UnreadableBody> {
        std::str::from_utf8(self.bytes()?).map_err(|_| unreadable("text that is not UTF-8"))
    }

    fn item(&mut self) -> Result<ItemRef, UnreadableBody> {
        let id: [u8; 16] = self.take(16)?.try_into().expect("16 bytes taken");
        let f = self.byte()?;
        if f & !flags::KNOWN != 0 {
            return Err(unreadable("an item flag this version does not write"));
        }
        let read = |set: u8, on: u8| (f & set != 0).then_some(f & on != 0);
        let sealed = if f & flags::SEALED != 0 {
            Some(Sealed(self.bytes()?.to_vec()))
        } else {
            None
        };
        Ok(ItemRef {
            event_id: EventId(uuid::Uuid::from_bytes(id)),
            consent: ForwardedConsent {
                ad_user_data: read(flags::AD_USER_DATA_SET, flags::AD_USER_DATA),
                ad_personalization: read(flags::AD_PERSONALIZATION_SET, flags::AD_PERSONALIZATION),
            },
            sealed,
            shared: f & flags::SHARED != 0,
        })
    }
}

/// The first byte of the sealed fields the items of one request share
/// ([`super::DeliveryItem::shared`]): entries one after another, each an event id (16 bytes)
/// and its sealed fields (LEB128 length and bytes).
pub const SHARED_MAGIC: u8 = 0xB2;

/// The shared sealed fields of `entries`, as the queue stores them once per request.
pub fn encode_shared<'a>(entries: impl IntoIterator<Item = (EventId, &'a Sealed)>) -> Vec<u8> {
    let mut out = vec![SHARED_MAGIC];
    for (event, sealed) in entries {
        out.extend_from_slice(event.0.as_bytes());
        bytes(&mut out, &sealed.0);
    }
    out
}

/// What [`encode_shared`] wrote, by event.
pub fn decode_shared(
    stored: &[u8],
) -> Result<std::collections::HashMap<EventId, Sealed>, UnreadableBody> {
    let mut r = Reader(stored);
    if r.byte()? != SHARED_MAGIC {
        return Err(unreadable("not shared sealed fields"));
    }
    let mut out = std::collections::HashMap::new();
    while !r.0.is_empty() {
        let id: [u8; 16] = r.take(16)?.try_into().expect("16 bytes taken");
        out.insert(
            EventId(uuid::Uuid::from_bytes(id)),
            Sealed(r.bytes()?.to_vec()),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::Region;

    fn body(refs: Vec<ItemRef>) -> RefBody {
        RefBody {
            v: 1,
            attempts: 300,
            workspace_id: WorkspaceId::new(Region::Eu, "wire"),
            destination_id: DestinationId::new("ünïcode"),
            kind: DestinationKind::Ga4,
            refs,
        }
    }

    fn item(n: u128, consent: ForwardedConsent, sealed: Option<Vec<u8>>) -> ItemRef {
        ItemRef {
            event_id: EventId(uuid::Uuid::from_u128(n)),
            consent,
            shared: sealed.is_none() && n % 2 == 1,
            sealed: sealed.map(Sealed),
        }
    }

    #[test]
    fn shared_sealed_fields_round_trip_by_event_and_a_cut_is_unreadable() {
        let a = Sealed(vec![1; 178]);
        let b = Sealed(Vec::new());
        let (ea, eb) = (
            EventId(uuid::Uuid::from_u128(1)),
            EventId(uuid::Uuid::from_u128(2)),
        );
        let stored = encode_shared([(ea, &a), (eb, &b)]);

        let read = decode_shared(&stored).unwrap();

        assert_eq!(read.len(), 2);
        assert_eq!(read[&ea], a);
        assert_eq!(read[&eb], b);
        assert_eq!(stored.len(), 1 + (16 + 2 + 178) + (16 + 1));
        assert!(decode_shared(&stored[..stored.len() - 20]).is_err());
        assert!(decode_shared(&[]).is_err());
        assert!(
            decode_shared(&[MAGIC]).is_err(),
            "a body is not shared fields"
        );
        assert!(decode_shared(&encode_shared([])).unwrap().is_empty());
    }

    #[test]
    fn every_consent_and_sealed_combination_round_trips() {
        let values = [None, Some(false), Some(true)];
        let mut refs = Vec::new();
        for (i, a) in values.iter().enumerate() {
            for (j, p) in values.iter().enumerate() {
                let consent = ForwardedConsent {
                    ad_user_data: *a,
                    ad_personalization: *p,
                };
                let sealed = (i + j) % 2 == 0;
                let payload = vec![u8::try_from(i * 3 + j).unwrap(); 200 * (i + 1)];
                refs.push(item(
                    u128::MAX - i as u128,
                    consent,
                    sealed.then_some(payload),
                ));
            }
        }
        refs.push(item(0, ForwardedConsent::default(), Some(Vec::new())));
        let b = body(refs);

        let encoded = b.encode_binary();

        assert_eq!(encoded[0], MAGIC);
        assert_eq!(RefBody::decode_binary(&encoded).unwrap(), b);
        assert_eq!(
            RefBody::decode_binary(&body(Vec::new()).encode_binary()).unwrap(),
            body(Vec::new())
        );
    }

    #[test]
    fn an_item_takes_its_id_a_flags_byte_and_its_sealed_bytes_with_their_length() {
        let sealed = vec![7u8; 178];
        let one = body(vec![item(1, ForwardedConsent::default(), Some(sealed))]);
        let none = body(Vec::new());
        assert_eq!(
            one.encode_binary().len() - none.encode_binary().len(),
            16 + 1 + 2 + 178
        );
    }

    #[test]
    fn a_truncated_or_altered_body_is_unreadable_never_a_panic() {
        let consent = ForwardedConsent {
            ad_user_data: Some(true),
            ad_personalization: Some(false),
        };
        let encoded = body(vec![item(5, consent, Some(vec![1; 40]))]).encode_binary();
        let whole = RefBody::decode_binary(&encoded).unwrap();
        for cut in 0..encoded.len() {
            // A cut at an item boundary is a shorter body; anywhere else it is unreadable.
            if let Ok(b) = RefBody::decode_binary(&encoded[..cut]) {
                assert!(b.refs.is_empty(), "cut at {cut}");
            }
        }
        let mut unknown_flag = encoded.clone();
        let flags_at = encoded.len() - 40 - 1 - 1;
        unknown_flag[flags_at] |= 0x80;
        assert!(RefBody::decode_binary(&unknown_flag).is_err());
        let mut long_length = encoded.clone();
        long_length.truncate(flags_at + 1);
        long_length.extend_from_slice(&[0xff; 11]);
        assert!(RefBody::decode_binary(&long_length).is_err());
        assert_eq!(whole.refs.len(), 1);
    }

    #[test]
    fn a_json_body_by_reference_queued_before_reads_and_is_written_back_binary() {
        let queued_before = concat!(
            r#"{"v":1,"attempts":3,"workspace_id":"ws_us_shop","destination_id":"dst_meta","#,
            r#""kind":"meta_capi","refs":[{"event_id":"00000000-0000-0000-0000-000000000007","#,
            r#""consent":{"ad_user_data":true},"sealed":"AQID"},"#,
            r#"{"event_id":"00000000-0000-0000-0000-000000000008"}]}"#
        );

        let Ok(super::super::Body::Reference(body)) =
            super::super::Body::decode(queued_before.as_bytes())
        else {
            panic!("a JSON body by reference reads");
        };
        let again = super::super::Body::Reference(body.clone()).encode();

        assert_eq!(body.attempts, 3);
        assert_eq!(body.refs[0].event_id, EventId(uuid::Uuid::from_u128(7)));
        assert_eq!(body.refs[0].consent.ad_user_data, Some(true));
        assert_eq!(body.refs[0].sealed, Some(Sealed(vec![1, 2, 3])));
        assert_eq!(body.refs[1].sealed, None);
        assert_eq!(again[0], MAGIC);
        assert_eq!(RefBody::decode_binary(&again).unwrap(), body);
    }
}
