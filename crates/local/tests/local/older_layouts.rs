//! A database written by an older version opens with its event tables moved into the current
//! layout, every row carried over and read back the same.

use tracklayer_core::crypto::Sealed;
use tracklayer_core::dsr::ErasedRows;
use tracklayer_core::event::{OperationalRecord, RecentEvents};
use tracklayer_core::ports::{
    EventEraser, EventInspection, EventReader, EventWriter, NewEvent, Page,
};
use tracklayer_core::testkit::{self, T0};
use tracklayer_core::workspace::{Region, WorkspaceId};
use tracklayer_local::{Db, SqliteEventStore};

use super::{first_column, keep_dir};

/// Turns the subject index of a current database back into the layout before subject keys
/// (the DDL of that version): each subject HMAC of `hmacs` (hex) whole, not its key.
pub(crate) fn into_whole_subject_layout(c: &rusqlite::Connection, hmacs: &[&str]) {
    c.execute_batch(
        "CREATE TABLE before_subjects (
             workspace INTEGER NOT NULL,
             subject BLOB NOT NULL,
             event_id BLOB NOT NULL,
             PRIMARY KEY (workspace, subject, event_id)
         ) WITHOUT ROWID;
         INSERT INTO before_subjects SELECT workspace, subject_key, event_id FROM event_subjects;
         DROP TABLE event_subjects;
         ALTER TABLE before_subjects RENAME TO event_subjects;",
    )
    .unwrap();
    for hmac in hmacs {
        let changed = c
            .execute(
                "UPDATE event_subjects SET subject = unhex(?1) WHERE subject = unhex(substr(?1, 1, 32))",
                [hmac],
            )
            .unwrap();
        assert!(changed > 0, "{hmac} is a subject of a stored event");
    }
}

/// Records `events` at [`T0`] in the current layout of the database at `path`, each one new.
pub(crate) async fn record_new(path: &std::path::Path, events: &[NewEvent]) {
    let store = SqliteEventStore::new(Db::open(path).unwrap());
    let written = store.record(events, T0).await.unwrap();
    assert_eq!(written, vec![true; events.len()], "every event is new");
}

/// Turns the event tables of a current database back into the layout before workspace
/// numbers and event ids as bytes (the DDL of that version), with the same rows: each
/// workspace as its id, each event id outside the subject index as its text, each subject
/// HMAC of `hmacs` whole.
pub(crate) fn into_text_key_layout(c: &rusqlite::Connection, hmacs: &[&str]) {
    into_whole_subject_layout(c, hmacs);
    c.execute_batch(
        "CREATE TABLE before_events (
             workspace_id TEXT NOT NULL,
             event_id TEXT NOT NULL,
             expires_at INTEGER NOT NULL,
             doc TEXT NOT NULL,
             PRIMARY KEY (workspace_id, event_id)
         ) WITHOUT ROWID;
         INSERT INTO before_events
             SELECT n.workspace_id, 'evt_' || lower(hex(e.event_id)), e.expires_at, e.doc
             FROM events e JOIN workspace_numbers n ON n.number = e.workspace;
         CREATE TABLE before_dedup (
             workspace_id TEXT NOT NULL,
             message_id TEXT NOT NULL,
             event_id TEXT NOT NULL,
             expires_at INTEGER NOT NULL,
             PRIMARY KEY (workspace_id, message_id)
         ) WITHOUT ROWID;
         INSERT INTO before_dedup
             SELECT n.workspace_id, d.message_id, 'evt_' || lower(hex(d.event_id)), d.expires_at
             FROM dedup d JOIN workspace_numbers n ON n.number = d.workspace;
         CREATE TABLE before_operational (
             workspace_id TEXT NOT NULL,
             event_id TEXT NOT NULL,
             sealed BLOB NOT NULL,
             expires_at INTEGER NOT NULL,
             PRIMARY KEY (workspace_id, event_id)
         ) WITHOUT ROWID;
         INSERT INTO before_operational
             SELECT n.workspace_id, 'evt_' || lower(hex(o.event_id)), o.sealed, o.expires_at
             FROM operational o JOIN workspace_numbers n ON n.number = o.workspace;
         DROP TABLE events;
         DROP TABLE dedup;
         DROP TABLE operational;
         ALTER TABLE before_events RENAME TO events;
         ALTER TABLE before_dedup RENAME TO dedup;
         ALTER TABLE before_operational RENAME TO operational;
         CREATE INDEX events_by_expiry ON events (expires_at);
         CREATE INDEX dedup_by_expiry ON dedup (expires_at);
         CREATE INDEX operational_by_expiry ON operational (expires_at);
         CREATE TABLE before_subjects (
             workspace_id TEXT NOT NULL,
             subject BLOB NOT NULL,
             event_id BLOB NOT NULL,
             PRIMARY KEY (workspace_id, subject, event_id)
         ) WITHOUT ROWID;
         INSERT INTO before_subjects
             SELECT n.workspace_id, s.subject, s.event_id
             FROM event_subjects s JOIN workspace_numbers n ON n.number = s.workspace;
         DROP TABLE event_subjects;
         ALTER TABLE before_subjects RENAME TO event_subjects;
         DROP TABLE workspace_numbers;",
    )
    .unwrap();
}

/// The rows of `workspace_numbers`, as (number, workspace id), by number.
fn workspace_numbers(c: &rusqlite::Connection) -> Vec<(i64, String)> {
    c.prepare("SELECT number, workspace_id FROM workspace_numbers ORDER BY number")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// An event of `ws` with an operational record (sealed IP and user agent).
fn with_operational(ws: &WorkspaceId, message_id: &str, subjects: &[&str]) -> NewEvent {
    let mut e = testkit::new_event(ws, message_id, subjects, T0);
    e.operational = Some(OperationalRecord {
        workspace_id: ws.clone(),
        event_id: e.event.event_id,
        sealed: Sealed(format!("sealed {message_id}").into_bytes()),
        expires_at: T0 + time::Duration::days(30),
    });
    e
}

#[tokio::test]
async fn an_older_database_is_moved_to_compact_keys_and_reads_back_the_same() {
    // Arrange: two workspaces' events, written and then turned into the older layout.
    let path = keep_dir().join("tracklayer.db");
    let (a, b) = (
        WorkspaceId::new(Region::Us, &testkit::unique()),
        WorkspaceId::new(Region::Eu, &testkit::unique()),
    );
    let hmac = "0123456789abcdef".repeat(4);
    let a1 = with_operational(&a, "m-a1", &[&hmac, "s-a"]);
    let a2 = testkit::new_event(&a, "m-a2", &["s-shared"], T0);
    let b1 = with_operational(&b, "m-b1", &["s-shared"]);
    record_new(&path, &[a1.clone(), a2.clone(), b1.clone()]).await;
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        into_text_key_layout(&c, &[&hmac]);
        // A row whose event id is not in the form `EventId` writes (none is known): kept.
        c.execute(
            "INSERT INTO events SELECT workspace_id, 'evt_legacy', expires_at, doc
             FROM events WHERE event_id = ?1",
            [a2.event.event_id.to_string()],
        )
        .unwrap();
    }

    // Act: open it.
    let store = SqliteEventStore::new(Db::open(&path).unwrap());

    // Assert: the current layout, and every read answers as before.
    let c = rusqlite::Connection::open(&path).unwrap();
    let numbers = workspace_numbers(&c);
    assert_eq!(numbers.len(), 2, "one number per workspace: {numbers:?}");
    let subject_rows: i64 = c
        .query_row(
            "SELECT count(*) FROM event_subjects WHERE typeof(workspace) = 'integer'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(subject_rows, 4, "every subject index row, keyed by number");
    let keys = |table: &str| -> Vec<(String, String, i64)> {
        c.prepare(&format!(
            "SELECT typeof(workspace), typeof(event_id), length(event_id) FROM {table}
             ORDER BY typeof(event_id)"
        ))
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
    };
    let key = |n: usize| vec![("integer".to_owned(), "blob".to_owned(), 16); n];
    let mut events = key(3);
    events.push(("integer".into(), "text".into(), 10));
    assert_eq!(keys("events"), events, "the odd id carried over as text");
    assert_eq!(keys("dedup"), key(3));
    assert_eq!(keys("operational"), key(3));
    let indexes: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name IN
             ('events_by_expiry', 'dedup_by_expiry', 'operational_by_expiry')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(indexes, 3, "the expiry indexes are made again");
    for e in [&a1, &a2, &b1] {
        let ws = &e.event.workspace_id;
        let id = e.event.event_id;
        assert_eq!(
            store.event(ws, &id, T0).await.unwrap().as_ref(),
            Some(&e.event)
        );
        assert_eq!(
            store
                .event_ids_by_message_id(ws, &e.event.message_id, T0)
                .await
                .unwrap(),
            [id]
        );
        assert_eq!(store.operational(ws, &id, T0).await.unwrap(), e.operational);
    }
    let both = store
        .events(&a, &[a1.event.event_id, a2.event.event_id], T0)
        .await
        .unwrap();
    assert_eq!(both.len(), 2);
    let recent = RecentEvents {
        since: T0 - time::Duration::hours(1),
        event_type: None,
        name: None,
        limit: 10,
    };
    assert_eq!(store.recent_events(&a, &recent, T0).await.unwrap().len(), 2);
    let by_hmac = store
        .events_by_subject(&a, &hmac, Page::first(10), T0)
        .await
        .unwrap();
    assert_eq!(by_hmac, std::slice::from_ref(&a1.event));
    let shared_b = store
        .events_by_subject(&b, "s-shared", Page::first(10), T0)
        .await
        .unwrap();
    assert_eq!(
        shared_b,
        std::slice::from_ref(&b1.event),
        "each workspace its own rows"
    );
    let footprint = store
        .subject_footprint(&a, &[hmac.clone(), "s-a".into()], Page::first(10), T0)
        .await
        .unwrap();
    assert_eq!(footprint.len(), 1);
    assert_eq!(footprint[0].subject_index_entries, 2);
    assert!(footprint[0].operational && footprint[0].dedup_marker);

    // The dedup markers still hold, a new workspace gets a new number, and an erasure
    // removes every row of its event.
    let again = testkit::new_event(&a, "m-a1", &["s-a"], T0);
    assert_eq!(store.record(&[again], T0).await.unwrap(), [false]);
    let new = WorkspaceId::new(Region::Us, &testkit::unique());
    let n1 = testkit::new_event(&new, "m-n1", &["s-shared"], T0);
    assert_eq!(
        store.record(std::slice::from_ref(&n1), T0).await.unwrap(),
        [true]
    );
    let shared_new = store
        .events_by_subject(&new, "s-shared", Page::first(10), T0)
        .await
        .unwrap();
    assert_eq!(shared_new, [n1.event]);
    let gone = store.erase(&a, &[a1.event.event_id]).await.unwrap();
    assert_eq!(
        gone,
        ErasedRows {
            events: 1,
            subject_index_entries: 2,
            operational_records: 1,
            dedup_markers: 1,
        }
    );
    assert!(store
        .events_by_subject(&a, &hmac, Page::first(10), T0)
        .await
        .unwrap()
        .is_empty());

    // Opened again, nothing moves: the numbers stay what they are.
    drop(store);
    let store = SqliteEventStore::new(Db::open(&path).unwrap());
    assert_eq!(workspace_numbers(&c)[..2], numbers);
    let shared_b = store
        .events_by_subject(&b, "s-shared", Page::first(10), T0)
        .await
        .unwrap();
    assert_eq!(shared_b, [b1.event]);
}

#[tokio::test]
async fn a_subject_index_of_whole_hmacs_is_moved_to_their_keys_and_finds_the_same_events() {
    // Arrange: events whose subject index holds whole HMACs (the layout before keys).
    let path = keep_dir().join("tracklayer.db");
    let ws = WorkspaceId::new(Region::Us, &testkit::unique());
    let (hmac, other) = ("0123456789abcdef".repeat(4), "fedcba9876543210".repeat(4));
    let e1 = with_operational(&ws, "m-1", &[&hmac, &other, "s-text"]);
    let e2 = testkit::new_event(&ws, "m-2", &[&hmac], T0);
    record_new(&path, &[e1.clone(), e2.clone()]).await;
    into_whole_subject_layout(
        &rusqlite::Connection::open(&path).unwrap(),
        &[&hmac, &other],
    );

    // Act: open it.
    let store = SqliteEventStore::new(Db::open(&path).unwrap());

    // Assert: keys of 16 bytes (text stays text), the same events found, erasure complete.
    let c = rusqlite::Connection::open(&path).unwrap();
    let mut keys: Vec<(String, i64)> = c
        .prepare("SELECT typeof(subject_key), length(subject_key) FROM event_subjects")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    keys.sort();
    let blob16 = ("blob".to_owned(), 16);
    assert_eq!(
        keys,
        [
            blob16.clone(),
            blob16.clone(),
            blob16,
            ("text".to_owned(), 6)
        ]
    );
    let by_hmac = store
        .events_by_subject(&ws, &hmac, Page::first(10), T0)
        .await
        .unwrap();
    assert_eq!(by_hmac, [e1.event.clone(), e2.event.clone()]);
    let footprint = store
        .subject_footprint(&ws, std::slice::from_ref(&other), Page::first(10), T0)
        .await
        .unwrap();
    assert_eq!(footprint.len(), 1);
    assert_eq!(footprint[0].subject_index_entries, 3, "m-1's three rows");
    let gone = store.erase(&ws, &[e1.event.event_id]).await.unwrap();
    assert_eq!(gone.subject_index_entries, 3);
    let rows: i64 = c
        .query_row("SELECT count(*) FROM event_subjects", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1, "m-2's row only");
}

/// A delivery log keyed by destination before event, with an index by event beside it (the
/// layout before 2026-12-07), opens moved to the current key with every record carried over,
/// and every read answers as before.
#[tokio::test]
async fn a_delivery_log_keyed_by_destination_first_is_moved_to_the_event_first_key() {
    use tracklayer_core::destination::DestinationId;
    use tracklayer_core::event::EventId;
    use tracklayer_core::ports::{DeliveryLog, DeliveryQuery, DeliveryStatus, LogOf};
    use tracklayer_core::testkit::delivery_log::delivery_record;
    use tracklayer_local::SqliteDeliveryLog;

    // Arrange: two destinations' outcomes for three events, written and then turned into the
    // older layout (its DDL).
    let path = keep_dir().join("tracklayer.db");
    let ws = WorkspaceId::new(Region::Us, &testkit::unique());
    let (d1, d2) = (
        DestinationId::new(&testkit::unique()),
        DestinationId::new(&testkit::unique()),
    );
    let events: Vec<EventId> = (0..3).map(|_| EventId(uuid::Uuid::now_v7())).collect();
    let mut records = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let at = T0 + time::Duration::seconds(i as i64);
        records.push(delivery_record(&ws, &d1, *e, DeliveryStatus::Delivered, at));
        let failed = DeliveryStatus::Dropped("too old for the destination".into());
        records.push(delivery_record(&ws, &d2, *e, failed, at));
    }
    let read = |log: SqliteDeliveryLog| {
        let (ws, d1, d2, events) = (ws.clone(), d1.clone(), d2.clone(), events.clone());
        async move {
            let mut traces = Vec::new();
            for e in &events {
                traces.push(log.for_event(&ws, e, T0).await.unwrap());
            }
            let query = DeliveryQuery {
                statuses: Vec::new(),
                since: None,
                until: None,
                after: None,
                limit: 2,
            };
            let first = log.page(LogOf::new(&ws, &d1), &query, T0).await.unwrap();
            let query = DeliveryQuery {
                after: first.next,
                ..query
            };
            let second = log.page(LogOf::new(&ws, &d1), &query, T0).await.unwrap();
            let delivered = (
                log.delivered(LogOf::new(&ws, &d1), &events, T0)
                    .await
                    .unwrap(),
                log.delivered(LogOf::new(&ws, &d2), &events, T0)
                    .await
                    .unwrap(),
            );
            let all = log.for_events(&ws, &events).await.unwrap();
            (traces, first, second, delivered, all)
        }
    };
    let before = {
        let log = SqliteDeliveryLog::new(Db::open(&path).unwrap());
        log.record(&records).await.unwrap();
        let before = read(log).await;
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE before_log (
                 workspace_id TEXT NOT NULL,
                 destination_id TEXT NOT NULL,
                 event_id TEXT NOT NULL,
                 status TEXT NOT NULL,
                 updated_at INTEGER NOT NULL,
                 expires_at INTEGER NOT NULL,
                 doc TEXT NOT NULL,
                 PRIMARY KEY (workspace_id, destination_id, event_id)
             ) WITHOUT ROWID;
             INSERT INTO before_log SELECT * FROM delivery_log;
             DROP TABLE delivery_log;
             ALTER TABLE before_log RENAME TO delivery_log;
             CREATE INDEX delivery_log_by_event ON delivery_log (workspace_id, event_id);
             CREATE INDEX delivery_log_recent ON delivery_log (workspace_id, destination_id, updated_at);
             CREATE INDEX delivery_log_by_expiry ON delivery_log (expires_at);",
        )
        .unwrap();
        before
    };
    assert_eq!(before.0.iter().map(Vec::len).sum::<usize>(), 6);
    assert_eq!(before.3 .0, events, "d1 delivered all three");

    // Act: open it.
    let log = SqliteDeliveryLog::new(Db::open(&path).unwrap());

    // Assert: the current key, no index by event, and the same answers.
    let c = rusqlite::Connection::open(&path).unwrap();
    let key: Vec<(String, i64)> = c
        .prepare("SELECT name, pk FROM pragma_table_info('delivery_log') WHERE pk > 0 ORDER BY pk")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let names: Vec<&str> = key.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["workspace_id", "event_id", "destination_id"]);
    let indexes: Vec<String> = first_column(
        &c,
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'delivery_log' ORDER BY name",
    );
    assert_eq!(indexes, ["delivery_log_by_expiry", "delivery_log_recent"]);
    let rows: i64 = c
        .query_row("SELECT count(*) FROM delivery_log", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 6, "every record carried over");
    assert_eq!(read(log).await, before);
    // Opened again: nothing more to move.
    drop(Db::open(&path).unwrap());
}
