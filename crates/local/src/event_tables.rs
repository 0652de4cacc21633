//! The event store's tables (events, subject index, dedup markers, operational records and
//! the workspace numbers their keys use), and the one-time moves of older layouts into them.

use rusqlite::{Connection, Transaction, TransactionBehavior};

/// The tables, made with the rest of the schema (`Db::open`).
pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS workspace_numbers (
    number INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS events (
    workspace_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (workspace_id, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_by_expiry ON events (expires_at);
-- The subject index: no expiry of its own (its rows go with their event, by primary key, from
-- the subjects the event's record names: events.rs); its keys as bytes (subject_keys.rs) and
-- its workspace as its number (workspace_numbers.rs).
CREATE TABLE IF NOT EXISTS event_subjects (
    workspace INTEGER NOT NULL,
    subject BLOB NOT NULL,
    event_id BLOB NOT NULL,
    PRIMARY KEY (workspace, subject, event_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dedup (
    workspace_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, message_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedup_by_expiry ON dedup (expires_at);
CREATE TABLE IF NOT EXISTS operational (
    workspace_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    sealed BLOB NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS operational_by_expiry ON operational (expires_at);
"#;

/// Moves the tables of older layouts into the current one, each move once (it looks at the
/// declared columns: no scan when there is nothing to move).
pub(crate) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    // Before, the subject index had an expiry column (and its index) and its keys as text.
    crate::subject_keys::rebuild_text_subject_index(conn)?;
    if !has_column(conn, "event_subjects", "workspace")? {
        relayout(
            conn,
            "ALTER TABLE event_subjects RENAME TO event_subjects_before;",
            "INSERT OR IGNORE INTO workspace_numbers (workspace_id)
                 SELECT DISTINCT workspace_id FROM event_subjects_before;
             INSERT INTO event_subjects (workspace, subject, event_id)
                 SELECT n.number, s.subject, s.event_id
                 FROM event_subjects_before s
                 JOIN workspace_numbers n ON n.workspace_id = s.workspace_id;
             DROP TABLE event_subjects_before;",
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
