//! The event store's tables (events, subject index, dedup markers, operational records and
//! the workspace numbers their keys use), and the one-time moves of older layouts into them.
//!
//! Every key is a workspace number (workspace_numbers.rs) and an event id as its 16 bytes
//! (subject_keys.rs), not the 38 and 36 characters of their text: in `make measure-ingest`
//! the keys were some 400 to 500 of the ~3,050 bytes a stored event took, repeated again by
//! each table's expiry index.

use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::subject_keys::{event_key_of_text, subject_key_of_whole};

/// The tables, made with the rest of the schema (`Db::open`).
pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS workspace_numbers (
    number INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS events (
    workspace INTEGER NOT NULL,
    event_id BLOB NOT NULL,
    expires_at INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (workspace, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_by_expiry ON events (expires_at);
-- The subject index: no expiry of its own (its rows go with their event, by primary key, from
-- the subjects the event's record names: events.rs).
CREATE TABLE IF NOT EXISTS event_subjects (
    workspace INTEGER NOT NULL,
    subject_key BLOB NOT NULL,
    event_id BLOB NOT NULL,
    PRIMARY KEY (workspace, subject_key, event_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dedup (
    workspace INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    event_id BLOB NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (workspace, message_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedup_by_expiry ON dedup (expires_at);
CREATE TABLE IF NOT EXISTS operational (
    workspace INTEGER NOT NULL,
    event_id BLOB NOT NULL,
    sealed BLOB NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (workspace, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS operational_by_expiry ON operational (expires_at);
"#;

/// SQL (a literal, for `concat!`): copies every row of `<table>_before` (set aside by
/// [`relayout`]; `t` in `values`) into `table`, its workspace id as its number: `columns` are
/// the columns of `table` after `workspace`, `values` the SQL that fills them.
macro_rules! numbered {
    ($table:literal, $columns:literal, $($values:tt)+) => {
        concat!(
            " INSERT INTO ", $table, " (workspace, ", $columns, ") SELECT n.number, ",
            $($values)+,
            " FROM ", $table, "_before t",
            " JOIN workspace_numbers n ON n.workspace_id = t.workspace_id; "
        )
    };
}

/// Moves the tables of older layouts into the current one, each move once (it looks at the
/// declared columns: no scan when there is nothing to move).
pub(crate) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    // Before, the subject index had an expiry column (and its index) and its keys as text.
    crate::subject_keys::rebuild_text_subject_index(conn)?;
    if !has_column(conn, "event_subjects", "workspace")? {
        relayout(
            conn,
            "ALTER TABLE event_subjects RENAME TO event_subjects_before;",
            concat!(
                "INSERT OR IGNORE INTO workspace_numbers (workspace_id)
                     SELECT DISTINCT workspace_id FROM event_subjects_before;",
                numbered!(
                    "event_subjects",
                    "subject_key, event_id",
                    subject_key_of_whole!("t.subject"),
                    ", t.event_id"
                ),
                "DROP TABLE event_subjects_before;"
            ),
        )?;
    }
    // Before, the subject index held a subject's whole HMAC (32 bytes), not its key.
    if !has_column(conn, "event_subjects", "subject_key")? {
        relayout(
            conn,
            "ALTER TABLE event_subjects RENAME TO event_subjects_before;",
            concat!(
                "INSERT OR IGNORE INTO event_subjects (workspace, subject_key, event_id)
                     SELECT t.workspace, ",
                subject_key_of_whole!("t.subject"),
                ", t.event_id FROM event_subjects_before t;
                 DROP TABLE event_subjects_before;"
            ),
        )?;
    }
    if !has_column(conn, "events", "workspace")? {
        relayout(
            conn,
            "DROP INDEX IF EXISTS events_by_expiry;
             DROP INDEX IF EXISTS dedup_by_expiry;
             DROP INDEX IF EXISTS operational_by_expiry;
             ALTER TABLE events RENAME TO events_before;
             ALTER TABLE dedup RENAME TO dedup_before;
             ALTER TABLE operational RENAME TO operational_before;",
            concat!(
                "INSERT OR IGNORE INTO workspace_numbers (workspace_id)
                     SELECT workspace_id FROM events_before
                     UNION SELECT workspace_id FROM dedup_before
                     UNION SELECT workspace_id FROM operational_before;",
                numbered!(
                    "events",
                    "event_id, expires_at, doc",
                    event_key_of_text!("t.event_id"),
                    ", t.expires_at, t.doc"
                ),
                numbered!(
                    "dedup",
                    "message_id, event_id, expires_at",
                    "t.message_id, ",
                    event_key_of_text!("t.event_id"),
                    ", t.expires_at"
                ),
                numbered!(
                    "operational",
                    "event_id, sealed, expires_at",
                    event_key_of_text!("t.event_id"),
                    ", t.sealed, t.expires_at"
                ),
                "DROP TABLE events_before;
                 DROP TABLE dedup_before;
                 DROP TABLE operational_before;"
            ),
        )?;
    }
    Ok(())
}

fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    conn.prepare("SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2")?
        .exists([table, column])
}

/// One move, in one transaction: `set_aside` renames the tables to move (and drops their
/// indexes, whose names the current layout uses), the current layout ([`SCHEMA`]) is made,
/// and `carry_over` copies every row into it and drops what was set aside. A row that cannot
/// be carried over fails the move (and so opening the database), which changes nothing.
fn relayout(conn: &Connection, set_aside: &str, carry_over: &str) -> rusqlite::Result<()> {
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    tx.execute_batch(set_aside)?;
    tx.execute_batch(SCHEMA)?;
    tx.execute_batch(carry_over)?;
    tx.commit()
}
