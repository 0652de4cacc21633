//! Item keys and attribute encodings of the EventsTable.

use super::*;

pub(super) fn hex_id(id: &EventId) -> String {
    id.0.simple().to_string()
}

/// The UUIDv7 millisecond of an event id (its first 48 bits).
pub(super) fn millis_of(id: &EventId) -> u64 {
    (id.0.as_u128() >> 80) as u64
}

pub(super) fn ref_millis(r: &str) -> u64 {
    u64::from_str_radix(r.get(..12).unwrap_or("0"), 16).unwrap_or(0)
}

pub(super) fn pack_pk(ws: &WorkspaceId, ms: u64) -> String {
    format!("W#{ws}#E#{}", ms / 60_000)
}

pub(super) fn subject_pk(ws: &WorkspaceId, subject: &str) -> String {
    format!("W#{ws}#S#{subject}")
}

pub(super) fn day(t: OffsetDateTime) -> String {
    let d = t.to_offset(time::UtcOffset::UTC).date();
    format!("{:04}{:02}{:02}", d.year(), u8::from(d.month()), d.day())
}

pub(super) fn subject_day_key(ws: &WorkspaceId, subject: &str, day: &str) -> Item {
    key(format!("{}#{day}", subject_pk(ws, subject)), "S")
}

/// The subject whose day item takes an event's dedup entry: of the event's subjects, the one
/// that a hash of the message id and the subject puts first. A retry (same message id, same
/// subjects) lands on the same item; the entries of a subject many events share (a
/// household's phone number) are spread over the events' other subjects instead of all
/// landing on it whenever its HMAC happens to sort first, which made item sizes, and so
/// write units, depend on the workspace's random subject key (526 against 598 units per
/// 1,000 events in two runs of the same traffic).
pub(super) fn dedup_subject(e: &StoredEvent) -> Option<&String> {
    e.subjects.iter().min_by_key(|s| {
        let mut h = Sha256::new();
        h.update(e.message_id.as_str().as_bytes());
        h.update([0]);
        h.update(s.as_bytes());
        let d = h.finalize();
        let mut b = [0u8; 8];
        b.copy_from_slice(&d[..8]);
        (u64::from_be_bytes(b), s.as_str())
    })
}

/// The subjects whose day items may hold an event's dedup entry: its [`dedup_subject`], and
/// the first of its (sorted) subjects, which took the entries until 2026-12-08. Claims read
/// both (an event stored before the upgrade is still found as a duplicate), erasure and
/// `forget` remove the entry from both; only the former takes new entries.
pub(super) fn dedup_owners(e: &StoredEvent) -> Vec<&String> {
    let mut owners: Vec<&String> = dedup_subject(e).into_iter().collect();
    if let Some(first) = e.subjects.first() {
        if !owners.contains(&first) {
            owners.push(first);
        }
    }
    owners
}

pub(super) fn marker_key(ws: &WorkspaceId, m: &MessageId) -> Item {
    let digest = Sha256::digest(m.as_str().as_bytes());
    key(format!("W#{ws}#D#{}", hex::encode(&digest[..16])), "D")
}

/// 8 bytes of SHA-256 of the message id: unique enough within one subject's day.
pub(super) fn fingerprint(m: &MessageId) -> [u8; 8] {
    let digest = Sha256::digest(m.as_str().as_bytes());
    let mut fp = [0; 8];
    fp.copy_from_slice(&digest[..8]);
    fp
}

/// A dedup entry: fingerprint ‖ `dedup_until` (Unix seconds, u32 big-endian).
pub(super) fn entry(m: &MessageId, until: i64) -> Vec<u8> {
    let mut e = fingerprint(m).to_vec();
    e.extend_from_slice(&(until.clamp(0, i64::from(u32::MAX)) as u32).to_be_bytes());
    e
}

pub(super) fn entry_until(e: &[u8]) -> i64 {
    e.get(8..12)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, |b| i64::from(u32::from_be_bytes(b)))
}

pub(super) fn binary_set(item: Option<&Item>, name: &str) -> Vec<Vec<u8>> {
    match item.and_then(|i| i.get(name)) {
        Some(AttributeValue::Bs(v)) => v.iter().map(|b| b.as_ref().to_vec()).collect(),
        _ => Vec::new(),
    }
}

pub(super) fn string_set(item: &Item, name: &str) -> Vec<String> {
    match item.get(name) {
        Some(AttributeValue::Ss(v)) => v.clone(),
        _ => Vec::new(),
    }
}

pub(super) fn bs(entries: Vec<Vec<u8>>) -> AttributeValue {
    AttributeValue::Bs(
        entries
            .into_iter()
            .map(aws_sdk_dynamodb::primitives::Blob::new)
            .collect(),
    )
}

pub(super) fn ss(values: impl IntoIterator<Item = String>) -> AttributeValue {
    AttributeValue::Ss(values.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;
    use uuid::Uuid;

    fn ms_hex(id: &EventId) -> String {
        format!("{:012x}", millis_of(id))
    }

    #[test]
    fn a_pack_key_comes_from_the_uuidv7_millisecond() {
        let id = EventId(Uuid::from_u128(0x0190_1234_5678_7000_8000_0000_0000_0001));
        assert_eq!(ms_hex(&id), "019012345678");
        assert_eq!(millis_of(&id), 0x0190_1234_5678);
        assert!(hex_id(&id).starts_with(&ms_hex(&id)));
        let ws = WorkspaceId::new(tracklayer_core::workspace::Region::Us, "abc");
        assert_eq!(
            pack_pk(&ws, millis_of(&id)),
            format!("W#ws_us_abc#E#{}", 0x0190_1234_5678u64 / 60_000)
        );
    }

    #[test]
    fn a_dedup_entry_is_a_fingerprint_and_its_expiry() {
        let m = MessageId::parse("m-1").unwrap();
        let e = entry(&m, 1_767_225_600);
        assert_eq!(e.len(), 12);
        assert_eq!(&e[..8], &fingerprint(&m));
        assert_eq!(entry_until(&e), 1_767_225_600);
        assert_ne!(
            fingerprint(&MessageId::parse("m-2").unwrap()),
            fingerprint(&m)
        );
    }

    #[test]
    fn a_messages_dedup_subject_is_fixed_and_the_entries_spread_over_the_subjects() {
        let ws = WorkspaceId::new(tracklayer_core::workspace::Region::Us, "abc");
        let at = datetime!(2026-03-01 12:00 UTC);
        // Four subjects of one person, one of them (a shared phone) sorting first.
        let subjects = ["0-phone", "1-email", "2-user", "3-anon"];
        let mut count = std::collections::BTreeMap::new();
        for i in 0..400 {
            let m = format!("m-{i}");
            let e = tracklayer_core::testkit::new_event(&ws, &m, &subjects, at).event;
            let chosen = dedup_subject(&e).unwrap().clone();
            // A retry (same message id, same subjects) lands on the same item...
            let retry = tracklayer_core::testkit::new_event(&ws, &m, &subjects, at).event;
            assert_eq!(dedup_subject(&retry), Some(&chosen));
            // ...and its entry is looked for there and on the first subject, where an
            // earlier version put it.
            let owners = dedup_owners(&e);
            assert_eq!(owners[0], &chosen);
            assert!(owners.contains(&&"0-phone".to_owned()));
            assert_eq!(owners.len(), if chosen == "0-phone" { 1 } else { 2 });
            *count.entry(chosen).or_insert(0) += 1;
        }
        // The first-sorting subject does not collect every entry.
        assert_eq!(count.len(), 4, "{count:?}");
        assert!(
            count.values().all(|&n| (60..=140).contains(&n)),
            "{count:?}"
        );
        let none = tracklayer_core::testkit::new_event(&ws, "m-x", &[], at).event;
        assert_eq!(dedup_subject(&none), None);
        assert!(dedup_owners(&none).is_empty());
    }

    #[test]
    fn days_are_utc_dates() {
        assert_eq!(day(datetime!(2026-03-01 23:59:59 -01:00)), "20260302");
    }
}
