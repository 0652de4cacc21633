use std::collections::BTreeMap;

use super::wire::{Reader, Writer};
use super::*;
use serde_json::json;
use time::macros::datetime;
use tracklayer_core::consent::Decision;
use tracklayer_core::crypto::Sealed;
use tracklayer_core::destination::{DestinationId, DestinationKind};
use tracklayer_core::event::codes::{self, CodeTable};
use tracklayer_core::event::{EventType, Routing};
use tracklayer_core::identity::{sha256_hex, Field, Profile};
use tracklayer_core::testkit::{new_event, T0};
use tracklayer_core::workspace::Region;

/// A routing entry to `id`.
fn routed(id: &str, kind: DestinationKind, reason: &str, skipped: Option<&str>) -> Routing {
    Routing {
        // As stored: any string, the control plane's form or not.
        destination_id: serde_json::from_value(json!(id)).unwrap(),
        kind,
        routed: skipped.is_none() && reason.contains("granted"),
        consent: Decision {
            allowed: !reason.contains("denied"),
            reason: reason.into(),
        },
        skipped: skipped.map(Into::into),
    }
}

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
    vec![plain, rich, empty, every_code(), odd_strings()]
}

/// Every profile with every field, every destination kind and event type, ids in the
/// control plane's form.
fn every_code() -> StoredEvent {
    let ws = WorkspaceId::new(Region::Eu, "019ca9450a00761ea1c0a5e6f0060656");
    let mut e = new_event(&ws, "m-codes", &[], T0).event;
    e.hashed = Profile::ALL
        .into_iter()
        .map(|p| {
            let fields = Field::ALL
                .into_iter()
                .map(|f| (f, sha256_hex(&format!("{}{}", p.as_str(), f.as_str()))))
                .collect();
            (p, fields)
        })
        .collect();
    e.subjects = vec![sha256_hex("meta_email"), sha256_hex("subject")];
    e.routing = DestinationKind::ALL
        .into_iter()
        .enumerate()
        .map(|(i, kind)| {
            let id = format!("dst_019ca9450a00{i:04x}3ca631f7dcb16db7");
            let reason = "advertising granted by context.consent.categoryPreferences";
            routed(&id, kind, reason, None)
        })
        .collect();
    e.timestamp = datetime!(2026-03-01 11:59:58.999999999 +14:00);
    e.received_at = datetime!(2026-03-01 12:00:00.000000001 UTC);
    e.expires_at = e.received_at + time::Duration::days(180);
    e.vendor_ids = Some(Sealed(vec![9; 65]));
    e
}

/// Strings no table has a code for, ids not in the control plane's form, unicode, no
/// vendor ids.
fn odd_strings() -> StoredEvent {
    let ws = WorkspaceId::new(Region::Us, "odd");
    let mut e = new_event(&ws, "m-\u{1f600}-\u{e9}", &["\u{2603}"], T0).event;
    e.event_type = EventType::Alias;
    e.name = Some(String::new());
    e.hashed = BTreeMap::from([(
        Profile::LinkedIn,
        BTreeMap::from([(Field::DateOfBirth, "19800101".into())]),
    )]);
    let hex = "019ca9450a00723ca631f7dcb16db716";
    e.routing = [
        "dst_",
        "dst_019CA9450A00723CA631F7DCB16DB716",
        "dst_019ca9450a00723ca631f7dcb16db71",
        "dst_019ca9450a00723ca631f7dcb16db7166",
        "dst_019ca9450a00723ca631f7dcb16db71g",
        "019ca9450a00723ca631f7dcb16db716",
        "dst_\u{e9}",
    ]
    .into_iter()
    .map(|id| routed(id, DestinationKind::Firehose, "\u{1f600} granted", Some("")))
    .chain([routed(
        &format!("dst_{hex}"),
        DestinationKind::Segment,
        "destination requires no consent purpose",
        Some("unsupported \u{e9}"),
    )])
    .collect();
    e.properties = json!({"\u{1f600}": ["\u{0}", "\u{ffff}"]});
    e.traits = json!([1, "two"]);
    e.timestamp = datetime!(1000-01-01 0:00 +23:59);
    e.expires_at = datetime!(9999-12-30 23:59:59.999999999 -23:59);
    e.vendor_ids = None;
    e
}

/// `record` read back for its event's row.
fn decoded(e: &StoredEvent, record: &[u8]) -> Result<StoredEvent, StoreError> {
    decode("test", &e.workspace_id, ValueRef::Blob(record))
}

#[test]
fn every_event_reads_back_exactly_as_it_was_written() {
    for e in cases() {
        let record = encode(&e);
        assert_eq!(record[0], 3);
        let back = decoded(&e, &record).unwrap();
        assert_eq!(back, e);
        // Offsets and key order too: the JSON each gives is the same text.
        assert_eq!(
            serde_json::to_string(&back).unwrap(),
            serde_json::to_string(&e).unwrap()
        );
    }
}

#[test]
fn the_workspace_id_is_the_rows_not_the_records() {
    let e = &cases()[1];
    let other = WorkspaceId::new(Region::Eu, "other");
    let back = decode("test", &other, ValueRef::Blob(&encode(e))).unwrap();
    assert_eq!(back.workspace_id, other);
}

#[test]
fn a_row_written_as_a_json_document_still_reads() {
    for e in cases() {
        let doc = serde_json::to_string(&e).unwrap();
        let back = decode("test", &e.workspace_id, ValueRef::Text(doc.as_bytes())).unwrap();
        assert_eq!(back, e);
    }
}

#[test]
fn a_record_of_format_1_still_reads_as_the_event_it_was_written_from() {
    for (hex, json) in [
        (V1_PURCHASE, V1_PURCHASE_EVENT),
        (V1_VARIED, V1_VARIED_EVENT),
    ] {
        let record: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(record[0], 1);
        let expected: StoredEvent = serde_json::from_str(json).unwrap();
        // A format 1 record holds its workspace id: the row's does not replace it.
        let row = WorkspaceId::new(Region::Eu, "row");
        let back = decode("test", &row, ValueRef::Blob(&record)).unwrap();
        assert_eq!(back, expected);
        assert_eq!(
            serde_json::to_string(&back).unwrap(),
            serde_json::to_string(&expected).unwrap()
        );
        assert_eq!(
            as_json(expected.workspace_id.as_str(), ValueRef::Blob(&record)).unwrap(),
            serde_json::to_value(&expected).unwrap()
        );
    }
}

#[test]
fn a_record_of_format_2_still_reads_and_format_3_codes_only_spec_names() {
    // Format 2 is format 3 with every name as 0 or 1 and the string.
    for e in cases() {
        let mut named = e.clone();
        named.name = Some("Checkout Started".into());
        for e in [e, named] {
            let mut record = encode(&e);
            let mut format_2 = vec![2];
            // After the version, event id, message id and event type's code.
            let mut message_id = Writer(Vec::new());
            message_id.str(e.message_id.as_str());
            let name_at = 1 + 16 + message_id.0.len() + 1;
            format_2.extend_from_slice(&record[1..name_at]);
            let code = e.name.as_deref().and_then(codes::event_name_code);
            match (e.name.as_deref(), code) {
                (Some(name), Some(code)) => {
                    assert_eq!(record[name_at..name_at + 2], [2, code], "{name} coded");
                    let mut as_string = Writer(vec![1]);
                    as_string.str(name);
                    format_2.extend_from_slice(&as_string.0);
                    format_2.extend_from_slice(&record[name_at + 2..]);
                }
                _ => {
                    assert_ne!(record[name_at], 2, "not coded: {:?}", e.name);
                    format_2.extend_from_slice(&record[name_at..]);
                }
            }
            assert_eq!(decoded(&e, &format_2).unwrap(), e);
            // A name code past the table, or a flag past 2, is corrupt.
            if record[name_at] == 2 {
                record[name_at + 1] = 200;
                assert!(decoded(&e, &record).is_err());
            } else {
                record[name_at] = 3;
                assert!(decoded(&e, &record).is_err());
            }
        }
    }
}

#[test]
fn the_measurement_purchase_takes_less_than_three_quarters_of_its_format_1_bytes() {
    let event: StoredEvent = serde_json::from_str(V1_PURCHASE_EVENT).unwrap();
    let (v1, v2) = (V1_PURCHASE.len() / 2, encode(&event).len());
    println!("measurement purchase: format 1 {v1} bytes, now {v2} bytes");
    assert!(v2 * 4 < v1 * 3, "{v2} vs {v1} bytes");
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
fn a_value_with_no_code_is_stored_by_its_name() {
    // A table that lacks a value, as the tables lack one added to its type after them.
    const ONLY_GOOGLE: CodeTable<Profile> = CodeTable::new(&[Profile::Google]);
    let mut w = Writer(Vec::new());
    for p in [Profile::Meta, Profile::Google, Profile::LinkedIn] {
        w.coded(&ONLY_GOOGLE, p, p.as_str());
    }
    assert_eq!(w.0, b"\x00\x04meta\x01\x00\x08linkedin");
    let mut r = Reader {
        rest: &w.0,
        context: "test",
    };
    for p in [Profile::Meta, Profile::Google, Profile::LinkedIn] {
        assert_eq!(r.coded(&ONLY_GOOGLE).unwrap(), p);
    }
    // A code past the table, or a name of nothing, is corrupt.
    for bad in [&[2u8][..], b"\x00\x05zebra"] {
        let mut r = Reader {
            rest: bad,
            context: "test",
        };
        let got = r.coded(&ONLY_GOOGLE);
        assert!(matches!(got, Err(StoreError::Corrupt { .. })), "{got:?}");
    }
}

#[test]
fn a_damaged_record_is_corrupt_never_a_default() {
    for e in cases() {
        let record = encode(&e);
        // Cut anywhere: corrupt.
        for end in 0..record.len() {
            let got = decoded(&e, &record[..end]);
            assert!(
                matches!(got, Err(StoreError::Corrupt { .. })),
                "{end}: {got:?}"
            );
        }
        let mut longer = record.clone();
        longer.push(0);
        assert!(matches!(
            decoded(&e, &longer),
            Err(StoreError::Corrupt { .. })
        ));
        // Any byte changed: never a panic, and an error only ever says corrupt.
        for at in 0..record.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut bad = record.clone();
                bad[at] ^= flip;
                if let Err(got) = decoded(&e, &bad) {
                    assert!(matches!(got, StoreError::Corrupt { .. }), "{at}: {got:?}");
                }
            }
        }
    }
    for bad in [&[2][..], &[9, 1, 2][..], &[][..]] {
        let got = decode("test", &cases()[0].workspace_id, ValueRef::Blob(bad));
        assert!(matches!(got, Err(StoreError::Corrupt { .. })), "{got:?}");
    }
}

/// A measurement purchase routed to Meta, GA4 and TikTok as format 1 stored it (written by
/// the format 1 encoder through ingest, `tests/local/event_record_size.rs`).
const V1_PURCHASE: &str = concat!(
    "012677735f75735f3031396361393435306130303736316561316330613565366630303630363536019ca9450a007529",
    "a5595a3e1738953b0d303030303030303030302d313005747261636b010f4f7264657220436f6d706c6574656480a9a1",
    "9a0d000080a9a19a0d000080e18ba90d00007a7b2263757272656e6379223a22455552222c226f726465725f6964223a",
    "22303030303030303030302d3130222c2270726f6475637473223a5b7b227072696365223a31302e302c2270726f6475",
    "63745f6964223a22736b752d33222c227175616e74697479223a317d5d2c22726576656e7565223a32302e307d027b7d",
    "08f73fb27b80301ea2a8f39bb216970ed345283a53e2425b7244efb25a8e8f782b2f9fbc550b12cbc0e6242384cc472b",
    "d1e4f058a8b773f189f7acb86d202655ce85f90a4d7d29b799792ce3ed5845269bf9570df230d2e0364b85fa1daf5faa",
    "ba74bd805bcc47f8603082430ca056311389e38b74fcdfbc32bcb5c6a9269ff3bf0a62685505bc0229ae33eb2a625d62",
    "56dbb5ee4e0e814e9932811c167aec3506354aeb522c53d99f08e86e4c5da653e6b1405525d1e39a55a66d3f03e4d35f",
    "39397a6a4d84e238b1ab4b803b7fd1af822504c2a45593a0362b4a7196244d4270c27104f651a6ae78c4e7719117787b",
    "0488e3ee916415ee0a41d0b19e7a0e18eb03046d6574610305656d61696c010570686f6e65020b65787465726e616c5f",
    "69640306676f6f676c650205656d61696c010570686f6e65040674696b746f6b0305656d61696c010570686f6e65040b",
    "65787465726e616c5f696403040506070803246473745f30313963613934353061303037323664626463316662353964",
    "31363461646131096d6574615f63617069030100246473745f3031396361393435306130303733393561653638306535",
    "63306662363534383303676134031500246473745f303139636139343530613030376335356132353137663433333561",
    "32636563640674696b746f6b030100000141ce5c0d588b711333ce527e54677999bebd22bf9ae557e09636246f211f73",
    "4d7c80c0a7b23ebb9af33eaf3b92c1f3e6c322c52eebf5f44b5951aa33d5a7d2efb417",
);

/// The event [`V1_PURCHASE`] holds.
const V1_PURCHASE_EVENT: &str = r#"{
  "event_id": "019ca945-0a00-7529-a559-5a3e1738953b",
  "event_type": "track",
  "expires_at": "2026-08-28T12:00:00Z",
  "hashed": {
    "google": {
      "email": "f73fb27b80301ea2a8f39bb216970ed345283a53e2425b7244efb25a8e8f782b",
      "phone": "74bd805bcc47f8603082430ca056311389e38b74fcdfbc32bcb5c6a9269ff3bf"
    },
    "meta": {
      "email": "f73fb27b80301ea2a8f39bb216970ed345283a53e2425b7244efb25a8e8f782b",
      "external_id": "85f90a4d7d29b799792ce3ed5845269bf9570df230d2e0364b85fa1daf5faaba",
      "phone": "2f9fbc550b12cbc0e6242384cc472bd1e4f058a8b773f189f7acb86d202655ce"
    },
    "tiktok": {
      "email": "f73fb27b80301ea2a8f39bb216970ed345283a53e2425b7244efb25a8e8f782b",
      "external_id": "85f90a4d7d29b799792ce3ed5845269bf9570df230d2e0364b85fa1daf5faaba",
      "phone": "74bd805bcc47f8603082430ca056311389e38b74fcdfbc32bcb5c6a9269ff3bf"
    }
  },
  "invalid_identifiers": 0,
  "message_id": "0000000000-10",
  "name": "Order Completed",
  "properties": {
    "currency": "EUR",
    "order_id": "0000000000-10",
    "products": [
      {
        "price": 10.0,
        "product_id": "sku-3",
        "quantity": 1
      }
    ],
    "revenue": 20.0
  },
  "received_at": "2026-03-01T12:00:00Z",
  "routing": [
    {
      "consent": {
        "allowed": true,
        "reason": "advertising granted by context.consent.categoryPreferences"
      },
      "destination_id": "dst_019ca9450a00726dbdc1fb59d164ada1",
      "kind": "meta_capi",
      "routed": true
    },
    {
      "consent": {
        "allowed": true,
        "reason": "analytics granted by context.consent.categoryPreferences"
      },
      "destination_id": "dst_019ca9450a007395ae680e5c0fb65483",
      "kind": "ga4",
      "routed": true
    },
    {
      "consent": {
        "allowed": true,
        "reason": "advertising granted by context.consent.categoryPreferences"
      },
      "destination_id": "dst_019ca9450a007c55a2517f4335a2cecd",
      "kind": "tiktok",
      "routed": true
    }
  ],
  "subjects": [
    "0a62685505bc0229ae33eb2a625d6256dbb5ee4e0e814e9932811c167aec3506",
    "354aeb522c53d99f08e86e4c5da653e6b1405525d1e39a55a66d3f03e4d35f39",
    "397a6a4d84e238b1ab4b803b7fd1af822504c2a45593a0362b4a7196244d4270",
    "c27104f651a6ae78c4e7719117787b0488e3ee916415ee0a41d0b19e7a0e18eb"
  ],
  "timestamp": "2026-03-01T12:00:00Z",
  "traits": {},
  "vendor_ids": "zlwNWItxEzPOUn5UZ3mZvr0iv5rlV+CWNiRvIR9zTXyAwKeyPrua8z6vO5LB8+bDIsUu6/X0S1lRqjPVp9LvtBc=",
  "workspace_id": "ws_us_019ca9450a00761ea1c0a5e6f0060656"
}"#;

/// [`cases`]'s varied event (with a fixed event id) as format 1 stored it: every string
/// fallback, odd times, unicode, vendor ids.
const V1_VARIED: &str = concat!(
    "010d77735f75735f7265636f726473019ca9450a007529a5595a3e1738953b066d2d72696368086964656e7469667900",
    "ccd4a09a0d959aef3ab0540000009ec3bee61ec08faedc039f9902527b2261223a5b312e352c2d322c31383434363734",
    "343037333730393535313631352c6e756c6c5d2c22626967223a31652b3330302c22636166c3a9223a7b22715c22223a",
    "225c5c5c6e227d2c227a223a317d0e7b22706c616e223a2270726f227d038c87b489ce35cf2e2f39f80e282cb2e80493",
    "2a56a213983eeeb428407d43b52d010d5fc1057946855cf8fdf1c4e3c491fbcce8168ab00831552e5be6492c7ddf5430",
    "eeed859cad61d925097ec4f532461ccf1ab6b9802b09a313be1478a4d61403046d6574610205656d61696c010570686f",
    "6e650206676f6f676c650105656d61696c010674696b746f6b0205656d61696c00403843383742343839434533354346",
    "324532463339463830453238324342324538303439333241353641323133393833454545423432383430374434334235",
    "32440463697479000f6e6f7420612064696765737420c3a9030103000573686f727402096473745f6473745f61036761",
    "34021501196576656e74202258222069732066696c7465726564206f7574096473745f6473745f6207776562686f6f6b",
    "00002f6164766572746973696e672064656e69656420627920783b20616e616c7974696373206772616e746564206279",
    "207900ac020104000102ff",
);

/// The event [`V1_VARIED`] holds.
const V1_VARIED_EVENT: &str = r#"{
  "workspace_id": "ws_us_records",
  "event_id": "019ca945-0a00-7529-a559-5a3e1738953b",
  "message_id": "m-rich",
  "event_type": "identify",
  "timestamp": "2026-03-01T11:59:58.123456789+01:30",
  "received_at": "1970-01-01T00:00:00Z",
  "expires_at": "2100-12-31T23:59:59.999-05:00",
  "properties": {
    "a": [
      1.5,
      -2,
      18446744073709551615,
      null
    ],
    "big": 1e+300,
    "café": {
      "q\"": "\\\n"
    },
    "z": 1
  },
  "traits": {
    "plan": "pro"
  },
  "hashed": {
    "meta": {
      "email": "8c87b489ce35cf2e2f39f80e282cb2e804932a56a213983eeeb428407d43b52d",
      "phone": "010d5fc1057946855cf8fdf1c4e3c491fbcce8168ab00831552e5be6492c7ddf"
    },
    "google": {
      "email": "8c87b489ce35cf2e2f39f80e282cb2e804932a56a213983eeeb428407d43b52d"
    },
    "tiktok": {
      "email": "8C87B489CE35CF2E2F39F80E282CB2E804932A56A213983EEEB428407D43B52D",
      "city": "not a digest é"
    }
  },
  "subjects": [
    "8c87b489ce35cf2e2f39f80e282cb2e804932a56a213983eeeb428407d43b52d",
    "5430eeed859cad61d925097ec4f532461ccf1ab6b9802b09a313be1478a4d614",
    "short"
  ],
  "routing": [
    {
      "destination_id": "dst_dst_a",
      "kind": "ga4",
      "routed": false,
      "consent": {
        "allowed": true,
        "reason": "analytics granted by context.consent.categoryPreferences"
      },
      "skipped": "event \"X\" is filtered out"
    },
    {
      "destination_id": "dst_dst_b",
      "kind": "webhook",
      "routed": false,
      "consent": {
        "allowed": false,
        "reason": "advertising denied by x; analytics granted by y"
      }
    }
  ],
  "invalid_identifiers": 300,
  "vendor_ids": "AAEC/w=="
}"#;
