//! Reads: one event, a subject's events and operational records, events by message id.

use super::*;

/// The context of the message-id lookup's errors.
const LOOKUP: &str = "event_ids_by_message_id";

impl DynamoEventStore {
    /// Packs (event or operational) of one millisecond whose first id is at most `up_to`.
    pub(super) async fn packs_at(
        &self,
        context: &'static str,
        ws: &WorkspaceId,
        kind: char,
        ms: u64,
        up_to: &str,
        at_least: &str,
    ) -> Result<Vec<Item>, StoreError> {
        query_all(
            context,
            self.client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
                .filter_expression("#last >= :min")
                .expression_attribute_names("#last", "last")
                .expression_attribute_values(":pk", s(pack_pk(ws, ms)))
                .expression_attribute_values(":lo", s(format!("{kind}#{ms:012x}")))
                .expression_attribute_values(":hi", s(format!("{kind}#{up_to}")))
                .expression_attribute_values(":min", s(at_least))
                .consistent_read(true),
        )
        .await
    }

    /// The unexpired operational record of event `id`.
    async fn operational_of(
        &self,
        ws: &WorkspaceId,
        id: &EventId,
        now: OffsetDateTime,
    ) -> Result<Option<OperationalRecord>, StoreError> {
        self.read_packed("operational", ws, 'O', id, now, |o: &OperationalRecord| {
            (o.event_id, o.expires_at)
        })
        .await
    }

    /// The record of event `id` among its millisecond's packs of `kind` (`P` events, `O`
    /// operational records), unless it has expired.
    async fn read_packed<T: serde::de::DeserializeOwned>(
        &self,
        context: &'static str,
        ws: &WorkspaceId,
        kind: char,
        id: &EventId,
        now: OffsetDateTime,
        id_and_expiry: impl Fn(&T) -> (EventId, OffsetDateTime),
    ) -> Result<Option<T>, StoreError> {
        let hex = hex_id(id);
        let items = self
            .packs_at(context, ws, kind, millis_of(id), &hex, &hex)
            .await?;
        for item in &items {
            let records: Vec<T> = unpack(context, get_b(item, "data", context)?)?;
            if let Some(r) = records.into_iter().find(|r| id_and_expiry(r).0 == *id) {
                return Ok((id_and_expiry(&r).1 > now).then_some(r));
            }
        }
        Ok(None)
    }

    /// The event holding a message id's unexpired dedup marker (events without subjects).
    /// The first `limit` of what `pick` takes from the event packs `refs` (in order, oldest
    /// first), by event id, without repeats: the packs are read a round at a time until a
    /// round's first pack is newer than the `limit`-th found (it cannot hold an older one).
    pub(super) async fn first_in_packs<T>(
        &self,
        context: &'static str,
        ws: &WorkspaceId,
        refs: &[String],
        limit: usize,
        event_id: impl Fn(&T) -> EventId,
        mut pick: impl FnMut(&Item, Vec<Packed>) -> Result<Vec<T>, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut found: Vec<T> = Vec::new();
        for round in refs.chunks(PACKS_PER_ROUND) {
            if found.len() >= limit && round[0] > hex_id(&event_id(&found[limit - 1])) {
                break;
            }
            let keys = round
                .iter()
                .map(|r| key(pack_pk(ws, ref_millis(r)), format!("P#{r}")))
                .collect();
            for item in batch_get(&self.client, context, &self.table, keys, true, None).await? {
                let packed: Vec<Packed> = unpack(context, get_b(&item, "data", context)?)?;
                found.extend(pick(&item, packed)?);
            }
            found.sort_by_key(&event_id);
            found.dedup_by_key(|f| event_id(f));
        }
        found.truncate(limit);
        Ok(found)
    }

    /// The subject-day items of one subject, expired or not, with their overflow items
    /// ([`shards`](super::shards)): every day of the horizon
    /// ([`SUBJECT_DAY_HORIZON_DAYS`] before `now` to a day after it) read by key, consistently,
    /// and besides them the days found in the sparse `subject` index (keys only), which only
    /// items written before the index went carry: an expired one of those that TTL has not
    /// deleted yet may lie further back than the horizon.
    pub(super) async fn subject_day_items(
        &self,
        context: &'static str,
        ws: &WorkspaceId,
        subject: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<Item>, StoreError> {
        let mut keys: Vec<Item> = (-1..=SUBJECT_DAY_HORIZON_DAYS)
            .map(|back| subject_day_key(ws, subject, &day(now - time::Duration::days(back))))
            .collect();
        let indexed = query_all(
            context,
            self.client
                .query()
                .table_name(&self.table)
                .index_name("subject")
                .key_condition_expression("subject_pk = :s")
                .expression_attribute_values(":s", s(subject_pk(ws, subject))),
        )
        .await?;
        let mut seen: HashSet<String> = keys
            .iter()
            .filter_map(|k| get_s(k, "pk", context).ok().map(str::to_owned))
            .collect();
        for d in &indexed {
            let (pk, sk) = (get_s(d, "pk", context)?, get_s(d, "sk", context)?);
            if seen.insert(pk.to_owned()) {
                keys.push(key(pk, sk));
            }
        }
        let mut items = batch_get(&self.client, context, &self.table, keys, true, None).await?;
        let overflow = self.overflow_items(context, &items).await?;
        items.extend(overflow);
        Ok(items)
    }

    /// The subject-day items of `subjects`, expired or not, each with its subject.
    pub(super) async fn subject_days(
        &self,
        context: &'static str,
        ws: &WorkspaceId,
        subjects: &[String],
        now: OffsetDateTime,
    ) -> Result<Vec<(String, Item)>, StoreError> {
        let reads = subjects.iter().map(|subject| {
            async move {
                let items = self.subject_day_items(context, ws, subject, now).await?;
                Ok::<_, StoreError>(
                    items
                        .into_iter()
                        .map(|i| (subject.clone(), i))
                        .collect::<Vec<_>>(),
                )
            }
            .boxed()
        });
        let mut out = Vec::new();
        for r in run_all(reads.collect()).await {
            out.extend(r?);
        }
        Ok(out)
    }
}

#[async_trait]
impl EventReader for DynamoEventStore {
    async fn event(
        &self,
        ws: &WorkspaceId,
        id: &EventId,
        now: OffsetDateTime,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let packed = self
            .read_packed("event", ws, 'P', id, now, |p: &Packed| {
                (p.e.event_id, p.e.expires_at)
            })
            .await?;
        Ok(packed.map(|p| p.e))
    }

    /// One read of each id's operational pack: delivery never asks here (SQS holds items by
    /// value, with their IP and user agent sealed in them).
    async fn operational_records(
        &self,
        ws: &WorkspaceId,
        ids: &[EventId],
        now: OffsetDateTime,
    ) -> Result<Vec<OperationalRecord>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in tracklayer_core::ports::each_once(ids) {
            out.extend(self.operational_of(ws, id, now).await?);
        }
        Ok(out)
    }

    /// An event without subjects (or of a subject-day that was full: [`shards`](super::shards))
    /// is found through its dedup marker (one `GetItem`). Another event has no marker: its
    /// dedup entry rides on its dedup subject's day item, which a message id does not lead
    /// to, so the lookup reads the event packs of the dedup window instead
    /// ([`DynamoEventStore::scan_recent_packs`]). Nothing is written for it.
    async fn event_ids_by_message_id(
        &self,
        ws: &WorkspaceId,
        message_id: &MessageId,
        now: OffsetDateTime,
    ) -> Result<Vec<EventId>, StoreError> {
        // Events without subjects (or of a full day): the marker holds the event's id.
        let marker = marker_key(ws, message_id);
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(marker))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store(LOOKUP, e))?
            .item;
        if let Some(item) = item.filter(|i| get_n(i, "until").unwrap_or(0) > now.unix_timestamp()) {
            let hex = get_s(&item, "event", LOOKUP)?;
            let id = uuid::Uuid::try_parse(hex).map_err(|e| StoreError::corrupt(LOOKUP, e))?;
            return Ok(vec![EventId(id)]);
        }
        let window = minute_of(now - Retention::dedup())..=minute_of(now);
        let mut found: Vec<EventId> = self
            .scan_recent_packs(LOOKUP, ws, window, 1, |p| {
                p.e.message_id == *message_id && p.u > now.unix_timestamp() && p.e.expires_at > now
            })
            .await?
            .into_iter()
            .map(|e| e.event_id)
            .collect();
        found.sort();
        found.dedup();
        Ok(found)
    }

    /// The event packs of the window's minutes, newest first, until `limit` are taken.
    ///
    /// Read cost: one eventually consistent `Query` per minute of the window that is read
    /// (the console asks for the last hour: at most 61), each billed by the size of that
    /// minute's event packs (half a read unit per started 4 KB, and at least half a unit for
    /// an empty minute): so at most 30.5 read units for an idle workspace's hour, and for a
    /// busy one the packs of the minutes it takes to find `limit` events (the rounds of 32
    /// minutes stop once they are found). Nothing is written for it.
    async fn recent_events(
        &self,
        ws: &WorkspaceId,
        query: &RecentEvents,
        now: OffsetDateTime,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let window = minute_of(query.since)..=minute_of(now);
        let mut found = self
            .scan_recent_packs("recent_events", ws, window, query.limit, |p| {
                query.takes(&p.e, now)
            })
            .await?;
        found.sort_by_key(|e| std::cmp::Reverse(e.event_id));
        found.dedup_by_key(|e| e.event_id);
        found.truncate(query.limit);
        Ok(found)
    }
}

/// The Unix minute of `t`: the partition of the event packs received in it.
fn minute_of(t: OffsetDateTime) -> u64 {
    (unix_millis(t).max(0) as u64) / 60_000
}

impl DynamoEventStore {
    /// The events of the event packs of `minutes` (Unix minutes) that `take` takes: a pack's
    /// partition is the minute of its events' ids, which is when they were received. Reads
    /// the minutes newest first, `CONCURRENCY` at a time, and stops after the round that
    /// brought the events taken to `enough`.
    ///
    /// Read cost: one eventually consistent `Query` per minute read, each billed by the size
    /// of the minute's event packs (half a read unit per started 4 KB), so at most the
    /// workspace's event packs of the window; an event received `t` ago costs the packs of
    /// the last `t` (the message-id lookup's window is the last 24 h: at most 1,441 minutes).
    pub(super) async fn scan_recent_packs(
        &self,
        context: &'static str,
        ws: &WorkspaceId,
        minutes: std::ops::RangeInclusive<u64>,
        enough: usize,
        take: impl Fn(&Packed) -> bool,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let minutes: Vec<u64> = minutes.rev().collect();
        let mut found = Vec::new();
        for round in minutes.chunks(CONCURRENCY) {
            let reads = round.iter().map(|&m| {
                query_all(
                    context,
                    query_prefix(&self.client, &self.table, pack_pk(ws, m * 60_000), "P#")
                        .projection_expression("#data")
                        .expression_attribute_names("#data", "data")
                        .consistent_read(false),
                )
                .boxed()
            });
            for items in run_all(reads.collect()).await {
                for item in items? {
                    let packed: Vec<Packed> = unpack(context, get_b(&item, "data", context)?)?;
                    found.extend(packed.into_iter().filter(|p| take(p)).map(|p| p.e));
                }
            }
            if found.len() >= enough {
                break;
            }
        }
        Ok(found)
    }
}

/// The contract suites' inspection reads: tests only (the `testkit` feature).
#[cfg(feature = "testkit")]
#[async_trait]
impl EventInspection for DynamoEventStore {
    async fn events_by_subject(
        &self,
        ws: &WorkspaceId,
        subject: &str,
        page: Page,
        now: OffsetDateTime,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let (after, limit) = (page.after.as_ref(), page.limit);
        if limit == 0 {
            return Ok(Vec::new());
        }
        // The days on which the subject had events, with their pack references ...
        let day_items = self
            .subject_day_items("events_by_subject", ws, subject, now)
            .await?;
        let after_ms = after.map(millis_of);
        let mut refs: BTreeSet<String> = BTreeSet::new();
        for d in day_items.iter().filter(|d| !crate::dynamo::expired(d, now)) {
            refs.extend(
                string_set(d, "packs")
                    .into_iter()
                    .filter(|r| after_ms.is_none_or(|ms| ref_millis(r) >= ms)),
            );
        }
        // ... and the packs, oldest first, until `limit` events are certain.
        let refs: Vec<String> = refs.into_iter().collect();
        self.first_in_packs(
            "events_by_subject",
            ws,
            &refs,
            limit,
            |e: &StoredEvent| e.event_id,
            |_, packed| {
                Ok(packed
                    .into_iter()
                    .map(|p| p.e)
                    .filter(|e| {
                        e.expires_at > now
                            && after.is_none_or(|a| e.event_id > *a)
                            && e.subjects.iter().any(|s| s == subject)
                    })
                    .collect())
            },
        )
        .await
    }

    async fn operational(
        &self,
        ws: &WorkspaceId,
        id: &EventId,
        now: OffsetDateTime,
    ) -> Result<Option<OperationalRecord>, StoreError> {
        self.operational_of(ws, id, now).await
    }
}
