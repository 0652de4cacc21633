//! Events read once, kept decoded for the next reads of the same events: delivery reads a
//! request's events once per destination it was routed to (three messages, one per
//! destination's queue, each naming the same events by reference), and decoding a record
//! was an eighth of delivery's CPU (README § Performance (42)).
//!
//! The memo is never what says an event exists. Every read still asks the table which of its
//! ids are stored, unexpired and the workspace's, in the same statement that returns the
//! records it does not have decoded ([`crate::events`]); the memo only saves decoding a
//! record it has seen. So an erasure, a retention sweep or an undone write — by this process
//! or any other connection to the database file — takes effect at the next read whether or
//! not the memo was told. That rests on records being immutable: a stored event's row is
//! inserted once and deleted, never updated (no `UPDATE events` exists), and event ids are
//! random, never reused for another event.
//!
//! Erasures evict what they erase anyway ([`EventMemo::forget`]), so that decoded fields of
//! an erased subject do not stay in memory until they age out. At most [`CAPACITY`] events
//! are kept, the oldest read first out.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use rusqlite::types::ValueRef;
use tracklayer_core::error::StoreError;
use tracklayer_core::event::{EventId, StoredEvent};
use tracklayer_core::workspace::WorkspaceId;

use crate::subject_keys::event_id_of_key;
use crate::workspace_numbers::workspace_number_of_1;

/// How many decoded events are kept: about 20 requests of 100 events. Enough for a
/// destination's worker that runs that far behind another's to find them still kept.
pub(crate) const CAPACITY: usize = 2048;

/// At most about this many bytes of decoded events are kept, whatever their size: a decoded
/// event is taken to weigh [`EXPANSION`] times its record (properties as a `serde_json` tree
/// and hashes as text take more room than their record's bytes). Events of a typical 1 KB
/// record stay under it at [`CAPACITY`]; 32 KB ones are kept about 130 at a time, not 2,048
/// (which would be 256 MiB).
pub(crate) const BUDGET: usize = 16 << 20;
/// How much more room a decoded event takes than its record, about.
const EXPANSION: usize = 4;

#[derive(Debug, Default)]
pub(crate) struct EventMemo {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Each kept event and its weight (its record's bytes × [`EXPANSION`]).
    events: HashMap<EventId, (Arc<StoredEvent>, usize)>,
    /// The sum of the kept events' weights.
    weight: usize,
    /// Ids in the order they were kept, oldest first (an evicted one may linger here: it is
    /// skipped when its turn comes).
    order: VecDeque<EventId>,
}

impl Inner {
    fn remove(&mut self, id: &EventId) {
        if let Some((_, weight)) = self.events.remove(id) {
            self.weight -= weight;
        }
    }
}

impl EventMemo {
    /// The kept events of `ws` among `ids`.
    pub(crate) fn kept(
        &self,
        ws: &WorkspaceId,
        ids: &[EventId],
    ) -> HashMap<EventId, Arc<StoredEvent>> {
        let inner = self.lock();
        ids.iter()
            .filter_map(|id| inner.events.get(id))
            .filter(|(e, _)| e.workspace_id == *ws)
            .map(|(e, _)| (e.event_id, Arc::clone(e)))
            .collect()
    }

    /// Keeps `events` (just decoded, each with its record's size in bytes), evicting the
    /// oldest beyond [`CAPACITY`] or [`BUDGET`].
    pub(crate) fn keep(&self, events: &[(Arc<StoredEvent>, usize)]) {
        if events.is_empty() {
            return;
        }
        let mut inner = self.lock();
        for (e, record_bytes) in events {
            let weight = record_bytes.saturating_mul(EXPANSION);
            if weight > BUDGET / 8 {
                continue;
            }
            inner.remove(&e.event_id);
            inner.events.insert(e.event_id, (Arc::clone(e), weight));
            inner.weight += weight;
            inner.order.push_back(e.event_id);
        }
        while inner.events.len() > CAPACITY || inner.weight > BUDGET {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            inner.remove(&oldest);
        }
        // Ids of events forgotten meanwhile, once they outnumber the kept.
        if inner.order.len() > 2 * CAPACITY {
            let Inner { events, order, .. } = &mut *inner;
            order.retain(|id| events.contains_key(id));
        }
    }

    /// Evicts `ids` (erased or forgotten).
    pub(crate) fn forget(&self, ids: &[EventId]) {
        let mut inner = self.lock();
        for id in ids {
            inner.remove(id);
        }
    }

    /// How many events are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().events.len()
    }

    /// The kept events' weight.
    #[cfg(test)]
    fn weight(&self) -> usize {
        self.lock().weight
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding it leaves a consistent map (every step above is one call).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The stored, unexpired events of `workspace` among the ids of `query` (its workspace id,
/// event keys as JSON and now, unix ms): those in `kept` as they are, the others decoded from
/// their records; and the ones decoded, to keep. One statement: which exist is the table's
/// answer either way, and a kept one's record is not read.
pub(crate) fn read(
    c: &rusqlite::Connection,
    context: &'static str,
    workspace: &WorkspaceId,
    query: (String, String, i64),
    kept_keys: &str,
    kept: &HashMap<EventId, Arc<StoredEvent>>,
) -> Result<Read, StoreError> {
    let (ws, ids, now) = query;
    let sql = |e| crate::db::sql(context, e);
    let mut stmt = c
        .prepare_cached(concat!(
            "SELECT event_id, CASE WHEN event_id IN (SELECT unhex(value) FROM json_each(?4))
                     THEN NULL ELSE doc END
               FROM events WHERE workspace = ",
            workspace_number_of_1!(),
            " AND expires_at > ?3
              AND event_id IN (SELECT unhex(value) FROM json_each(?2))"
        ))
        .map_err(sql)?;
    let mut rows = stmt
        .query(rusqlite::params![ws, ids, now, kept_keys])
        .map_err(sql)?;
    let (mut found, mut decoded) = (Vec::new(), Vec::new());
    while let Some(row) = rows.next().map_err(sql)? {
        let id = event_id_of_key(row.get_ref(0).map_err(sql)?)
            .ok_or_else(|| StoreError::corrupt(context, "an event row's id is not an event id"))?;
        let event = match row.get_ref(1).map_err(sql)? {
            ValueRef::Null => kept
                .get(&id)
                .cloned()
                .ok_or_else(|| StoreError::corrupt(context, "an event row without its record"))?,
            doc => {
                let bytes = doc.as_bytes().map_or(0, <[u8]>::len);
                let e = Arc::new(crate::event_record::decode(context, workspace, doc)?);
                // Kept only under its row's id (a record naming another event is returned
                // as it is, as before, never kept for that one).
                if e.event_id == id {
                    decoded.push((Arc::clone(&e), bytes));
                }
                e
            }
        };
        found.push(event);
    }
    Ok((found, decoded))
}

/// What [`read`] found, and which of it it decoded (each with its record's size).
pub(crate) type Read = (Vec<Arc<StoredEvent>>, Vec<(Arc<StoredEvent>, usize)>);

#[cfg(test)]
mod tests {
    use tracklayer_core::ports::{EventEraser, EventReader, EventWriter};
    use tracklayer_core::testkit::{new_event, T0};
    use tracklayer_core::workspace::Region;

    use super::*;
    use crate::db::Db;
    use crate::events::SqliteEventStore;

    /// A store with `n` events of one workspace recorded, and their ids.
    async fn recorded(n: usize) -> (Db, SqliteEventStore, WorkspaceId, Vec<EventId>) {
        let db = Db::in_memory().unwrap();
        let store = SqliteEventStore::new(db.clone());
        let ws = WorkspaceId::new(Region::Us, "memo");
        let events: Vec<_> = (0..n)
            .map(|i| new_event(&ws, &format!("m-{i}"), &["subj"], T0))
            .collect();
        store.record(&events, T0).await.unwrap();
        let ids = events.iter().map(|e| e.event.event_id).collect();
        (db, store, ws, ids)
    }

    #[tokio::test]
    async fn a_second_read_of_the_same_events_shares_the_first_reads_decoding() {
        // Arrange
        let (_db, store, ws, ids) = recorded(3).await;

        // Act
        let first = store.events(&ws, &ids, T0).await.unwrap();
        let second = store.events(&ws, &ids, T0).await.unwrap();

        // Assert
        assert_eq!(first.len(), 3);
        assert_eq!(store.memo.len(), 3);
        for e in &second {
            let same = first.iter().find(|f| f.event_id == e.event_id).unwrap();
            assert!(Arc::ptr_eq(same, e), "not decoded again");
        }
    }

    #[tokio::test]
    async fn deletions_the_memo_is_never_told_of_still_take_effect_at_the_next_read() {
        // Arrange: a warm memo; another store on the same database (another process, as
        // far as this one's memory goes) and a bare connection delete behind its back.
        let (db, store, ws, ids) = recorded(3).await;
        store.events(&ws, &ids, T0).await.unwrap();
        let other = SqliteEventStore::new(db.clone());

        // Act
        other.erase(&ws, &ids[..1]).await.unwrap();
        let key = crate::subject_keys::event_key(&ids[1]);
        db.call("test", move |c| {
            c.execute("DELETE FROM events WHERE event_id = ?1", [key])
                .map_err(|e| crate::db::sql("test", e))
        })
        .await
        .unwrap();
        let found = store.events(&ws, &ids, T0).await.unwrap();

        // Assert
        let found: Vec<_> = found.iter().map(|e| e.event_id).collect();
        assert_eq!(found, [ids[2]], "only the event still stored");
    }

    #[tokio::test]
    async fn an_erasure_takes_the_erased_events_out_of_memory() {
        // Arrange
        let (_db, store, ws, ids) = recorded(3).await;
        store.events(&ws, &ids, T0).await.unwrap();

        // Act
        store.erase(&ws, &ids[..2]).await.unwrap();

        // Assert
        assert_eq!(store.memo.len(), 1);
        assert!(store.memo.kept(&ws, &ids[..2]).is_empty());
    }

    #[test]
    fn keeps_at_most_its_capacity_the_oldest_first_out() {
        // Arrange
        let memo = EventMemo::default();
        let ws = WorkspaceId::new(Region::Us, "memo");
        let events: Vec<_> = (0..CAPACITY + 10)
            .map(|i| Arc::new(new_event(&ws, &format!("m-{i}"), &[], T0).event))
            .collect();

        // Act
        let weighed: Vec<_> = events.iter().map(|e| (Arc::clone(e), 1000)).collect();
        for chunk in weighed.chunks(100) {
            memo.keep(chunk);
        }

        // Assert
        assert_eq!(memo.len(), CAPACITY);
        let ids: Vec<_> = events.iter().map(|e| e.event_id).collect();
        assert!(memo.kept(&ws, &ids[..10]).is_empty(), "the oldest went");
        assert_eq!(memo.kept(&ws, &ids[10..]).len(), CAPACITY);
        let theirs = WorkspaceId::new(Region::Us, "theirs");
        assert!(
            memo.kept(&theirs, &ids).is_empty(),
            "never another workspace's"
        );
    }
    #[test]
    fn keeps_large_events_by_their_weight_not_their_count_and_never_one_past_an_eighth() {
        // Arrange: events of 32 KB records, and one of 3 MB.
        let memo = EventMemo::default();
        let ws = WorkspaceId::new(Region::Us, "memo");
        let event = |i: usize| Arc::new(new_event(&ws, &format!("m-{i}"), &[], T0).event);
        let large: Vec<_> = (0..500).map(|i| (event(i), 32 << 10)).collect();

        // Act
        memo.keep(&large);
        let huge = event(1000);
        memo.keep(&[(Arc::clone(&huge), 3 << 20)]);

        // Assert
        let kept = BUDGET / (EXPANSION * (32 << 10));
        assert_eq!(memo.len(), kept, "as many as the budget holds");
        assert!(memo.weight() <= BUDGET);
        let ids: Vec<_> = large.iter().map(|(e, _)| e.event_id).collect();
        assert_eq!(memo.kept(&ws, &ids[500 - kept..]).len(), kept, "the newest");
        assert!(
            memo.kept(&ws, &[huge.event_id]).is_empty(),
            "too large to keep"
        );
        memo.forget(&ids);
        assert_eq!((memo.len(), memo.weight()), (0, 0));
    }
}
