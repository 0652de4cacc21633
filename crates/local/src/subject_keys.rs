//! The subject index's keys as bytes, not text.
//!
//! A subject index entry is a keyed HMAC (64 lowercase hex characters) and an event id
//! (`evt_` and 32 hex characters). As text, each `event_subjects` row held 136 bytes of keys;
//! stored as their bytes (a subject's 32, an event id's 16) it holds 80, and the index was
//! the third largest part of a stored event (`make measure-ingest`: 736 of 3,774 bytes).
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

/// The stored form of a subject: its 32 bytes when it is 64 lowercase hex characters.
pub(crate) fn subject_key(subject: &str) -> Value {
    match crate::event_record::digest(subject) {
        Some(bytes) => Value::Blob(bytes.to_vec()),
        None => Value::Text(subject.to_owned()),
    }
}

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
    fn only_64_lowercase_hex_characters_become_bytes() {
        let hex = "00ff".repeat(16);
        let Value::Blob(bytes) = subject_key(&hex) else {
            panic!("a hex subject is stored as bytes")
        };
        assert_eq!(bytes, [0x00, 0xff].repeat(16));
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
