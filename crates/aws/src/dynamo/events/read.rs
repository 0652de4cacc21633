//! Reads: one event, a subject's events, operational records and the footprint of subjects.

use super::*;

/// The error context of `subject_footprint`.
const FOOTPRINT: &str = "subject_footprint";

/// An event found for a footprint, with its pack's `pk`, reference and day.
#[derive(Debug)]
struct FoundEvent {
    packed: Packed,
    pk: String,
    reference: String,
    day: String,
}

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
    async fn first_in_packs<T>(
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

    /// The subject-day items of one subject, expired or not: the days it had events on, from
    /// the sparse `subject` index (keys only), then the items themselves, consistently read.
    pub(super) async fn subject_day_items(
        &self,
        context: &'static str,
        ws: &WorkspaceId,
        subject: &str,
    ) -> Result<Vec<Item>, StoreError> {
        let days = query_all(
            context,
            self.client
                .query()
                .table_name(&self.table)
                .index_name("subject")
                .key_condition_expression("subject_pk = :s")
                .expression_attribute_values(":s", s(subject_pk(ws, subject))),
        )
        .await?;
        let keys: Vec<Item> = days
            .iter()
            .filter_map(|d| {
                Some(key(
                    get_s(d, "pk", context).ok()?,
                    get_s(d, "sk", context).ok()?,
                ))
            })
            .collect();
        batch_get(&self.client, context, &self.table, keys, true, None).await
    }

    /// The subject-day items of `subjects`, expired or not, each with its subject.
    pub(super) async fn subject_days(
        &self,
        context: &'static str,
        ws: &WorkspaceId,
        subjects: &[String],
    ) -> Result<Vec<(String, Item)>, StoreError> {
        let reads = subjects.iter().map(|subject| {
            async move {
                let items = self.subject_day_items(context, ws, subject).await?;
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

    pub(super) async fn footprint(
        &self,
        ws: &WorkspaceId,
        subjects: &[String],
        after: Option<&EventId>,
        limit: usize,
    ) -> Result<Vec<EventFootprint>, StoreError> {
        if limit == 0 || subjects.is_empty() {
            return Ok(Vec::new());
        }
        let days = self.subject_days(FOOTPRINT, ws, subjects).await?;
        let after_ms = after.map(millis_of);
        let mut refs: BTreeSet<String> = BTreeSet::new();
        let mut fps_of: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
        for (_, d) in &days {
            refs.extend(
                string_set(d, "packs")
                    .into_iter()
                    .filter(|r| after_ms.is_none_or(|ms| ref_millis(r) >= ms)),
            );
            fps_of.insert(
                get_s(d, "pk", FOOTPRINT)?.to_owned(),
                binary_set(Some(d), "fps"),
            );
        }
        let found = self
            .footprint_events(ws, subjects, refs, after, limit)
            .await?;
        let with_ops = self.with_operational(&found).await?;
        self.more_dedup_entries(ws, &found, &mut fps_of).await?;
        Ok(found
            .into_iter()
            .map(|f| {
                let dedup_marker = f.packed.e.subjects.first().is_some_and(|primary| {
                    fps_of
                        .get(&format!("{}#{}", subject_pk(ws, primary), f.day))
                        .is_some_and(|fps| fps.contains(&entry(&f.packed.e.message_id, f.packed.u)))
                });
                let p = f.packed;
                EventFootprint {
                    operational: with_ops.contains(&p.e.event_id),
                    dedup_marker,
                    subject_index_entries: u32::try_from(p.e.subjects.len()).unwrap_or(u32::MAX),
                    event: p.e,
                }
            })
            .collect())
    }

    /// The first `limit` events after `after` of any of `subjects` in the packs `refs`,
    /// oldest first.
    async fn footprint_events(
        &self,
        ws: &WorkspaceId,
        subjects: &[String],
        refs: BTreeSet<String>,
        after: Option<&EventId>,
        limit: usize,
    ) -> Result<Vec<FoundEvent>, StoreError> {
        let wanted: HashSet<&str> = subjects.iter().map(String::as_str).collect();
        let refs: Vec<String> = refs.into_iter().collect();
        self.first_in_packs(
            FOOTPRINT,
            ws,
            &refs,
            limit,
            |f: &FoundEvent| f.packed.e.event_id,
            |item, packed| {
                let pk = get_s(item, "pk", FOOTPRINT)?;
                let reference = get_s(item, "sk", FOOTPRINT)?.trim_start_matches("P#");
                let day = get_s(item, "day", FOOTPRINT)?;
                Ok(packed
                    .into_iter()
                    .filter(|p| {
                        after.is_none_or(|a| p.e.event_id > *a)
                            && p.e.subjects.iter().any(|s| wanted.contains(s.as_str()))
                    })
                    .map(|p| FoundEvent {
                        packed: p,
                        pk: pk.to_owned(),
                        reference: reference.to_owned(),
                        day: day.to_owned(),
                    })
                    .collect())
            },
        )
        .await
    }

    /// The events among `found` with an operational record: the operational packs beside
    /// their packs.
    async fn with_operational(&self, found: &[FoundEvent]) -> Result<HashSet<EventId>, StoreError> {
        let op_keys: BTreeSet<(String, String)> = found
            .iter()
            .map(|f| (f.pk.clone(), format!("O#{}", f.reference)))
            .collect();
        let ops = batch_get(
            &self.client,
            FOOTPRINT,
            &self.table,
            op_keys.into_iter().map(|(pk, sk)| key(pk, sk)).collect(),
            true,
            None,
        )
        .await?;
        let mut with_ops: HashSet<EventId> = HashSet::new();
        for item in &ops {
            let records: Vec<OperationalRecord> =
                unpack(FOOTPRINT, get_b(item, "data", FOOTPRINT)?)?;
            with_ops.extend(records.iter().map(|o| o.event_id));
        }
        Ok(with_ops)
    }

    /// Adds to `fps_of` the dedup entries of the subject-days of the events' primary subjects
    /// (where each event's entry is) that it lacks.
    async fn more_dedup_entries(
        &self,
        ws: &WorkspaceId,
        found: &[FoundEvent],
        fps_of: &mut HashMap<String, Vec<Vec<u8>>>,
    ) -> Result<(), StoreError> {
        let missing: BTreeSet<String> = found
            .iter()
            .filter_map(|f| {
                let primary = f.packed.e.subjects.first()?;
                let pk = format!("{}#{}", subject_pk(ws, primary), f.day);
                (!fps_of.contains_key(&pk)).then_some(pk)
            })
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let more = batch_get(
            &self.client,
            FOOTPRINT,
            &self.table,
            missing.into_iter().map(|pk| key(pk, "S")).collect(),
            true,
            Some("pk, fps"),
        )
        .await?;
        for d in &more {
            fps_of.insert(
                get_s(d, "pk", FOOTPRINT)?.to_owned(),
                binary_set(Some(d), "fps"),
            );
        }
        Ok(())
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

    async fn event_ids_by_message_id(
        &self,
        ws: &WorkspaceId,
        message_id: &MessageId,
        now: OffsetDateTime,
    ) -> Result<Vec<EventId>, StoreError> {
        const CONTEXT: &str = "event_ids_by_message_id";
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(marker_key(ws, message_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store(CONTEXT, e))?
            .item;
        let Some(item) = item else {
            return Ok(Vec::new());
        };
        if get_n(&item, "until").unwrap_or(0) <= now.unix_timestamp() {
            return Ok(Vec::new());
        }
        let hex = get_s(&item, "event", CONTEXT)?;
        let id = uuid::Uuid::try_parse(hex).map_err(|e| StoreError::corrupt(CONTEXT, e))?;
        Ok(vec![EventId(id)])
    }
}

#[async_trait]
impl EventInspection for DynamoEventStore {
    async fn events_by_subject(
        &self,
        ws: &WorkspaceId,
        subject: &str,
        after: Option<&EventId>,
        limit: usize,
        now: OffsetDateTime,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // The days on which the subject had events, with their pack references ...
        let day_items = self
            .subject_day_items("events_by_subject", ws, subject)
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
        self.read_packed("operational", ws, 'O', id, now, |o: &OperationalRecord| {
            (o.event_id, o.expires_at)
        })
        .await
    }
}
