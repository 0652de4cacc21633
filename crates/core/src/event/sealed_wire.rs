//! The binary plaintext of sealed fields ([`SealedFields`]) and of an operational record
//! (its IP and user agent, the same layout with only those two).
//!
//! As JSON, a third of the plaintext was its keys and quotes: on the measurement's purchases
//! the fields every destination shares took some 150 bytes, 70 of them framing, and the
//! operational record 78, 25 of them framing. Both are stored until delivered (the
//! operational record 30 days): in `make measure-ingest` (`dbstat`), binary plaintext took the
//! shared fields from 246 to 164 bytes per stored event and the operational records from 158
//! to 132.
//!
//! Layout: [`FORMAT`] (never `{`, so plaintext sealed as JSON before still reads), a byte of
//! [`present`] bits, then each present part in the bits' order: a string as a LEB128 length
//! and UTF-8 bytes; the click ids as a count and, per id, its name and value (strings); the
//! plain values as a count and, per value, its field's code ([`FIELDS`]) and the value.

use std::collections::BTreeMap;

use super::codes::FIELDS;
use super::ref_wire::{bytes, uint, unreadable, Reader};
use super::{SealedFields, UnreadableBody};

/// The first byte of binary plaintext.
pub const FORMAT: u8 = 0x01;

/// The bits of the presence byte, in the order the parts follow it.
mod present {
    pub const IP: u8 = 1;
    pub const USER_AGENT: u8 = 1 << 1;
    pub const USER_ID: u8 = 1 << 2;
    pub const ANONYMOUS_ID: u8 = 1 << 3;
    pub const PAGE_URL: u8 = 1 << 4;
    pub const CHANNEL: u8 = 1 << 5;
    pub const CLICK_IDS: u8 = 1 << 6;
    pub const PLAIN: u8 = 1 << 7;
    /// The strings, in order.
    pub const STRINGS: [u8; 6] = [IP, USER_AGENT, USER_ID, ANONYMOUS_ID, PAGE_URL, CHANNEL];
}

/// The plaintext of `fields`.
pub fn encode_fields(fields: &SealedFields) -> Vec<u8> {
    let strings = [
        fields.ip.as_deref(),
        fields.user_agent.as_deref(),
        fields.user_id.as_deref(),
        fields.anonymous_id.as_deref(),
        fields.page_url.as_deref(),
        fields.channel.as_deref(),
    ];
    let mut out = head(&strings);
    if !fields.click_ids.is_empty() {
        out[1] |= present::CLICK_IDS;
        uint(&mut out, fields.click_ids.len() as u64);
        for (name, value) in &fields.click_ids {
            bytes(&mut out, name.as_bytes());
            bytes(&mut out, value.as_bytes());
        }
    }
    if !fields.plain.is_empty() {
        out[1] |= present::PLAIN;
        uint(&mut out, fields.plain.len() as u64);
        for (field, value) in &fields.plain {
            out.push(FIELDS.code(*field).expect("every field has a code"));
            bytes(&mut out, value.as_bytes());
        }
    }
    out
}

/// The plaintext of an operational record: sealed fields with only an IP and a user agent.
pub fn encode_operational(ip: Option<&str>, user_agent: Option<&str>) -> Vec<u8> {
    head(&[ip, user_agent, None, None, None, None])
}

/// [`FORMAT`], the presence byte of `strings` and the present ones.
fn head(strings: &[Option<&str>; 6]) -> Vec<u8> {
    let len: usize = strings.iter().flatten().map(|s| s.len() + 2).sum();
    let mut out = Vec::with_capacity(2 + len + 24);
    out.extend_from_slice(&[FORMAT, 0]);
    for (bit, s) in present::STRINGS.iter().zip(strings) {
        if let Some(s) = s {
            out[1] |= bit;
            bytes(&mut out, s.as_bytes());
        }
    }
    out
}

/// The fields of plaintext [`encode_fields`] or [`encode_operational`] wrote, or that was
/// sealed as JSON before them.
pub fn decode_fields(plain: &[u8]) -> Result<SealedFields, UnreadableBody> {
    match plain.first() {
        Some(b'{') => return Ok(serde_json::from_slice(plain)?),
        Some(&FORMAT) => {}
        _ => return Err(unreadable("not sealed fields")),
    }
    let mut r = Reader(&plain[1..]);
    let bits = r.byte()?;
    let mut strings: [Option<String>; 6] = Default::default();
    for (bit, s) in present::STRINGS.iter().zip(&mut strings) {
        if bits & bit != 0 {
            *s = Some(r.str()?.to_owned());
        }
    }
    let mut click_ids = BTreeMap::new();
    if bits & present::CLICK_IDS != 0 {
        for _ in 0..r.uint()? {
            let name = r.str()?.to_owned();
            click_ids.insert(name, r.str()?.to_owned());
        }
    }
    let mut plain = BTreeMap::new();
    if bits & present::PLAIN != 0 {
        for _ in 0..r.uint()? {
            let field = FIELDS
                .value(r.byte()?)
                .ok_or_else(|| unreadable("a field code past its table"))?;
            plain.insert(field, r.str()?.to_owned());
        }
    }
    if !r.0.is_empty() {
        return Err(unreadable("bytes after the sealed fields"));
    }
    let [ip, user_agent, user_id, anonymous_id, page_url, channel] = strings;
    Ok(SealedFields {
        ip,
        user_agent,
        user_id,
        anonymous_id,
        page_url,
        channel,
        click_ids,
        plain,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Field;

    fn every_part() -> SealedFields {
        SealedFields {
            ip: Some("198.51.100.23".into()),
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Test/1.0".into()),
            user_id: Some("ünïcode-user".into()),
            anonymous_id: Some(String::new()),
            page_url: Some("https://shop.example.com/checkout/done?x=1".into()),
            channel: Some("server".into()),
            click_ids: [("gclid", "g-1"), ("fbp", "fb.1.2.3")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into(),
            plain: [(Field::City, "berlin"), (Field::Zip, "10115")]
                .map(|(k, v)| (k, v.to_owned()))
                .into(),
        }
    }

    #[test]
    fn every_combination_of_parts_round_trips() {
        let all = every_part();
        for mask in 0..=u8::MAX {
            let on = |bit: u8| mask & bit != 0;
            let pick = |bit: u8, v: &Option<String>| v.clone().filter(|_| on(bit));
            let fields = SealedFields {
                ip: pick(present::IP, &all.ip),
                user_agent: pick(present::USER_AGENT, &all.user_agent),
                user_id: pick(present::USER_ID, &all.user_id),
                anonymous_id: pick(present::ANONYMOUS_ID, &all.anonymous_id),
                page_url: pick(present::PAGE_URL, &all.page_url),
                channel: pick(present::CHANNEL, &all.channel),
                click_ids: if on(present::CLICK_IDS) {
                    all.click_ids.clone()
                } else {
                    BTreeMap::new()
                },
                plain: if on(present::PLAIN) {
                    all.plain.clone()
                } else {
                    BTreeMap::new()
                },
            };
            let plain = encode_fields(&fields);
            assert_eq!(plain[1], mask, "presence byte of mask {mask:#010b}");
            let back = decode_fields(&plain).expect("decodes");
            assert!(back == fields, "mask {mask:#010b} round trips");
        }
    }

    #[test]
    fn an_operational_record_is_the_ip_and_user_agent_only() {
        let plain = encode_operational(Some("2001:db8::1"), None);
        assert_eq!(
            plain,
            [&[FORMAT, present::IP, 11][..], b"2001:db8::1"].concat()
        );
        let back = decode_fields(&plain).expect("decodes");
        assert_eq!(back.ip.as_deref(), Some("2001:db8::1"));
        assert!(
            back == SealedFields {
                ip: back.ip.clone(),
                ..SealedFields::default()
            }
        );
    }

    #[test]
    fn plaintext_sealed_as_json_before_still_reads() {
        let fields = every_part();
        let json = serde_json::to_vec(&fields).expect("serializes");
        assert!(decode_fields(&json).expect("decodes") == fields);
        let operational = br#"{"ip":null,"user_agent":"Mozilla/5.0"}"#;
        let back = decode_fields(operational).expect("decodes");
        assert_eq!(
            (back.ip, back.user_agent.as_deref()),
            (None, Some("Mozilla/5.0"))
        );
    }

    #[test]
    fn the_measurement_purchases_shared_fields_take_well_under_their_json() {
        let fields = SealedFields {
            user_id: Some("m-1a2b-user-3".into()),
            anonymous_id: Some("m-1a2b-anon-3".into()),
            page_url: Some("https://shop.example.com/checkout/done".into()),
            channel: Some("server".into()),
            click_ids: [("gclid".to_owned(), "m-1a2b-gclid-42".to_owned())].into(),
            ..SealedFields::default()
        };
        let (binary, json) = (encode_fields(&fields), serde_json::to_vec(&fields).unwrap());
        assert!(
            binary.len() + 60 <= json.len(),
            "{} bytes against {} as JSON",
            binary.len(),
            json.len()
        );
    }

    #[test]
    fn a_truncated_altered_or_foreign_plaintext_is_unreadable_never_a_panic() {
        let plain = encode_fields(&every_part());
        for cut in 0..plain.len() {
            assert!(decode_fields(&plain[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = plain.clone();
        longer.push(0);
        assert!(decode_fields(&longer).is_err(), "a byte after the end");
        let mut bad_code = encode_fields(&SealedFields {
            plain: [(Field::City, "x".to_owned())].into(),
            ..SealedFields::default()
        });
        bad_code[3] = 0;
        assert!(decode_fields(&bad_code).is_err(), "field code 0");
        for foreign in [&b"\x02\x00"[..], b"", b"[1]", b"\x01\x01\x05ab"] {
            assert!(decode_fields(foreign).is_err(), "{foreign:?}");
        }
        for i in 0..plain.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut altered = plain.clone();
                altered[i] ^= flip;
                if let Ok(f) = decode_fields(&altered) {
                    let again = decode_fields(&encode_fields(&f)).expect("re-encoded decodes");
                    assert!(
                        again == f,
                        "byte {i} ^ {flip:#x} decodes to what re-encodes"
                    );
                }
            }
        }
    }
}
