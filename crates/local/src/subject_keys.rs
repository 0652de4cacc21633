//! The subject index's keys as bytes, not text.
//!
//! A subject is a keyed HMAC (64 lowercase hex characters); an event id is `evt_` and 32 hex
//! characters. The index stores a subject as the first [`SUBJECT_KEY_BYTES`] bytes of its
//! HMAC and an event id as its 16 bytes. As text, a row held 136 bytes of keys, and the index
//! was 736 of the 3,774 bytes of a stored event in `make measure-ingest`; with whole HMACs as
//! bytes, 80 (252 of 1,628 bytes per event, four rows each); with half of each HMAC, 64 (177
//! of 1,385). Two subjects share a key only if their keyed HMACs share 128 bits: rarer than
//! two event ids colliding (a UUIDv7 has 74 random bits). Were it to happen, a data-subject
//! request for one would also take in the other's events.
//! A subject that is not 64 lowercase hex characters (none that ingest writes) stays text: a
//! text value never equals a blob in SQLite, so the two never collide. Byte order is the
//! text order (hex digits are in byte order), so paging by event id is unchanged.
//!
//! The other event tables (events, dedup markers, operational records) hold event ids as
//! their 16 bytes too, so that one table's key finds another's row as it is.

use rusqlite::types::{Value, ValueRef};
use rusqlite::Connection;
use tracklayer_core::error::StoreError;
use tracklayer_core::event::EventId;

/// How many of a subject HMAC's 32 bytes its key keeps.
pub(crate) const SUBJECT_KEY_BYTES: usize = 16;

/// The stored key of a subject: the first [`SUBJECT_KEY_BYTES`] of its HMAC when it is 64
/// lowercase hex characters, else its text.
pub(crate) fn subject_key(subject: &str) -> Value {
    match crate::event_record::digest(subject) {
        Some(bytes) => Value::Blob(bytes[..SUBJECT_KEY_BYTES].to_vec()),
        None => Value::Text(subject.to_owned()),
    }
}

/// SQL (a literal, for `concat!`): the SQL twin of [`subject_key`] for a subject stored as
/// its whole HMAC's 32 bytes in `$column` (the layout before): its first 16; text stays.
macro_rules! subject_key_of_whole {
    ($column:literal) => {
        concat!(
            "CASE WHEN typeof(",
            $column,
            ") = 'blob' AND length(",
            $column,
            ") = 32",
            " THEN substr(",
            $column,
            ", 1, 16) ELSE ",
            $column,
            " END"
        )
    };
}
pub(crate) use subject_key_of_whole;

/// The stored form of an event id: its 16 bytes.
pub(crate) fn event_key(id: &EventId) -> Value {
    Value::Blob(id.0.as_bytes().to_vec())
}

/// The event id a stored key holds; `None` when it is not 16 bytes.
pub(crate) fn event_id_of_key(key: ValueRef<'_>) -> Option<EventId> {
    match key {
        ValueRef::Blob(bytes) => uuid::Uuid::from_slice(bytes).ok().map(EventId),
        _ => None,
    }
}

/// `ids` as a JSON array of their keys in hex, for `SELECT unhex(value) FROM json_each(?)`.
pub(crate) fn event_keys_json(
    context: &'static str,
    ids: &[EventId],
) -> Result<String, StoreError> {
    let hex: Vec<String> = ids.iter().map(|id| id.0.simple().to_string()).collect();
    serde_json::to_string(&hex).map_err(|e| StoreError::permanent(context, e))
}

/// SQL (a literal, for `concat!`): the SQL twin of [`event_key`] for an event id stored as
/// text in `$column`: `evt_` and 32 lowercase hex characters (the only form `EventId`
/// writes) become the 16 bytes; any other text stays as it is, never dropped (a text value
/// never equals a blob, so it can collide with no converted id).
macro_rules! event_key_of_text {
    ($column:literal) => {
        concat!(
            "CASE WHEN length(",
            $column,
            ") = 36 AND ",
            $column,
            " GLOB 'evt_*'",
            " AND substr(",
            $column,
            ", 5) NOT GLOB '*[^0-9a-f]*'",
            " THEN unhex(substr(",
            $column,
            ", 5)) ELSE ",
            $column,
            " END"
        )
    };
}
pub(crate) use event_key_of_text;

/// Rebuilds a subject index written before its keys were bytes (text columns, and before
/// that an expiry column with its index) in one transaction: each row of an event still
/// stored, converted as [`subject_key`] and [`event_key`] convert; the rows of an event that
/// is gone are not carried over. A database already in this form is left as it is (one look
/// at the declared column type, no scan).
pub(crate) fn rebuild_text_subject_index(conn: &Connection) -> Result<(), rusqlite::Error> {
    let current = conn
        .prepare(
            "SELECT 1 FROM pragma_table_info('event_subjects')
             WHERE name = 'event_id' AND type = 'BLOB'",
        )?
        .exists([])?;
    if current {
        return Ok(());
    }
    // The SQL twin of `subject_key`: 64 lowercase hex characters become their bytes.
    conn.execute_batch(
        "BEGIN IMMEDIATE;
         CREATE TABLE event_subjects_rebuilt (
             workspace_id TEXT NOT NULL,
             subject BLOB NOT NULL,
             event_id BLOB NOT NULL,
             PRIMARY KEY (workspace_id, subject, event_id)
         ) WITHOUT ROWID;
         INSERT OR IGNORE INTO event_subjects_rebuilt (workspace_id, subject, event_id)
             SELECT s.workspace_id,
                    CASE WHEN length(s.subject) = 64 AND s.subject NOT GLOB '*[^0-9a-f]*'
                         THEN unhex(s.subject) ELSE s.subject END,
                    unhex(substr(s.event_id, 5))
             FROM event_subjects s
             WHERE EXISTS (SELECT 1 FROM events e
                           WHERE e.workspace_id = s.workspace_id AND e.event_id = s.event_id)
               AND s.event_id GLOB 'evt_*' AND length(unhex(substr(s.event_id, 5))) = 16;
         DROP TABLE event_subjects;
         ALTER TABLE event_subjects_rebuilt RENAME TO event_subjects;
         COMMIT;",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_64_lowercase_hex_characters_become_bytes_their_first_16() {
        let hex = format!("{}{}", "00ff".repeat(8), "11".repeat(16));
        let Value::Blob(bytes) = subject_key(&hex) else {
            panic!("a hex subject is stored as bytes")
        };
        assert_eq!(bytes, [0x00, 0xff].repeat(8));
        for text in [
            "s-kept".to_owned(),
            "00FF".repeat(16),
            "0".repeat(63),
            "0".repeat(65),
            format!("{}g", "0".repeat(63)),
        ] {
            assert_eq!(subject_key(&text), Value::Text(text.clone()), "{text}");
        }
    }

    #[test]
    fn a_whole_hmac_stored_before_becomes_the_key_rust_writes_and_anything_else_stays() {
        let hex = format!("{}{}", "0123456789abcdef".repeat(2), "fe".repeat(16));
        let whole = crate::event_record::digest(&hex).unwrap().to_vec();
        let c = Connection::open_in_memory().unwrap();
        let in_sql = |v: Value| -> Value {
            c.query_row(
                concat!(
                    "SELECT ",
                    subject_key_of_whole!("t"),
                    " FROM (SELECT ?1 AS t)"
                ),
                [v],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(in_sql(Value::Blob(whole.clone())), subject_key(&hex));
        for kept in [
            Value::Blob(whole[..16].to_vec()),
            Value::Blob(whole[..31].to_vec()),
            Value::Text("s-kept".into()),
            Value::Text(hex.clone()),
        ] {
            assert_eq!(in_sql(kept.clone()), kept);
        }
    }

    #[test]
    fn an_event_id_is_its_16_bytes_in_rust_and_in_sql_and_other_text_stays_text() {
        let id = EventId(uuid::Uuid::from_u128(
            0x0193_0000_0000_7000_8000_0000_0000_00ab,
        ));
        let key = event_key(&id);
        assert_eq!(key, Value::Blob(id.0.as_bytes().to_vec()));
        assert_eq!(event_id_of_key(ValueRef::from(&key)), Some(id));
        assert_eq!(event_id_of_key(ValueRef::Text(b"evt_00")), None);
        let c = Connection::open_in_memory().unwrap();
        let in_sql = |text: &str| -> Value {
            c.query_row(
                concat!("SELECT ", event_key_of_text!("t"), " FROM (SELECT ?1 AS t)"),
                [text],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(in_sql(&id.to_string()), key);
        let hyphenated = format!("evt_{}", id.0.hyphenated());
        let upper = format!("evt_{}", id.0.simple()).to_uppercase();
        for other in ["not-an-id", hyphenated.as_str(), upper.as_str(), "evt_00"] {
            assert_eq!(in_sql(other), Value::Text(other.into()), "{other}");
        }
    }
}
