//! Erasure: the footprint of subjects, and taking events out of packs and the subject index.

use super::*;

/// What taking events out of one pack did.
#[derive(Debug)]
pub(super) struct PackChange {
    /// The pack's reference before the change.
    pub(super) reference: String,
    pub(super) day: String,
    /// The events taken out.
    pub(super) gone: Vec<Packed>,
    /// Subjects of the events still in the pack.
    pub(super) kept_subjects: BTreeSet<String>,
    /// The pack went (no event left).
    pub(super) deleted: bool,
    /// The pack lives on under this reference: its old one was an event taken out.
    pub(super) rekeyed: Option<String>,
    /// Operational records taken out.
    pub(super) operational: u64,
}

impl PackChange {
    /// Does the subject-day of `subject` lose its reference to this pack?
    pub(super) fn unindexes(&self, subject: &str) -> bool {
        self.deleted || self.rekeyed.is_some() || !self.kept_subjects.contains(subject)
    }
}

/// Removals from one subject-day item.
#[derive(Debug, Default)]
pub(super) struct DayChange {
    refs: BTreeSet<String>,
    fps: Vec<Vec<u8>>,
}

impl DynamoEventStore {
    /// Takes events out of their packs and gives back their dedup entries and index entries
    /// (undoes `record`).
    pub(super) async fn forget_events(
        &self,
        ws: &WorkspaceId,
        events: &[(EventId, MessageId)],
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let ids: Vec<EventId> = events.iter().map(|(id, _)| *id).collect();
        let changes = self.remove_packs("forget", ws, &ids, false).await?;
        let found: HashSet<EventId> = changes
            .iter()
            .flat_map(|c| c.gone.iter().map(|p| p.e.event_id))
            .collect();

        // Give back the dedup entries, and the subject index entries of packs that no longer
        // hold an event of the subject.
        let mut subject_days: BTreeMap<(String, String), DayChange> = BTreeMap::new();
        let mut markers = Vec::new();
        for c in &changes {
            for p in &c.gone {
                let e = &p.e;
                let owners = dedup_owners(e);
                // An event without subjects, or of a day that was full, has a marker (it
                // goes only if it names the event).
                markers.push((e.message_id.clone(), e.event_id));
                for owner in owners {
                    let slot = subject_days
                        .entry((owner.clone(), c.day.clone()))
                        .or_default();
                    slot.fps.push(entry(&e.message_id, p.u));
                }
                for subject in &e.subjects {
                    if c.unindexes(subject) {
                        subject_days
                            .entry((subject.clone(), c.day.clone()))
                            .or_default()
                            .refs
                            .insert(c.reference.clone());
                    }
                }
            }
        }
        for (id, m) in events {
            if !found.contains(id) {
                markers.push((m.clone(), *id));
            }
        }
        let mut jobs = Vec::new();
        for ((subject, day), change) in subject_days {
            jobs.push(
                self.release_subject_day(
                    subject_day_key(ws, &subject, &day),
                    change.fps,
                    change.refs.into_iter().collect(),
                )
                .boxed(),
            );
        }
        for (m, id) in &markers {
            jobs.push(self.release_marker(ws, m, id).boxed());
        }
        run_all(jobs).await.into_iter().collect()
    }

    /// Deletes a dedup marker if it still belongs to `event`.
    pub(super) async fn release_marker(
        &self,
        ws: &WorkspaceId,
        m: &MessageId,
        event: &EventId,
    ) -> Result<(), StoreError> {
        self.delete_marker("forget", ws, m, event).await.map(drop)
    }

    /// Deletes a dedup marker if it still belongs to `event`; true if it did.
    pub(super) async fn delete_marker(
        &self,
        context: &'static str,
        ws: &WorkspaceId,
        m: &MessageId,
        event: &EventId,
    ) -> Result<bool, StoreError> {
        match self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(marker_key(ws, m)))
            .condition_expression("#e = :e")
            .expression_attribute_names("#e", "event")
            .expression_attribute_values(":e", s(hex_id(event)))
            .send()
            .await
            .map_err(|e| store(context, e))
        {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Takes events out of their packs: a pack left empty is deleted, another is rewritten
    /// under the condition that nobody rewrote it meanwhile (`v`), the same for the
    /// operational packs. With `rekey`, a pack whose reference (its sort key, which names an
    /// event) is an event taken out moves to the reference of its first remaining event, and
    /// the subject-days of the remaining events' subjects learn the new reference.
    pub(super) async fn remove_packs(
        &self,
        context: &'static str,
        ws: &WorkspaceId,
        ids: &[EventId],
        rekey: bool,
    ) -> Result<Vec<PackChange>, StoreError> {
        let mut by_ms: BTreeMap<u64, BTreeSet<EventId>> = BTreeMap::new();
        for id in ids {
            by_ms.entry(millis_of(id)).or_default().insert(*id);
        }
        let mut changes = Vec::new();
        let mut deletes = Vec::new();
        for (ms, ids) in by_ms {
            let (Some(first), Some(last)) = (ids.first(), ids.last()) else {
                continue;
            };
            let items = self
                .packs_at(context, ws, 'P', ms, &hex_id(last), &hex_id(first))
                .await?;
            for item in items {
                if let Some(c) = self
                    .take_out(context, ws, item, &ids, rekey, &mut deletes)
                    .await?
                {
                    changes.push(c);
                }
            }
        }
        batch_write(&self.client, context, &self.table, deletes).await?;
        Ok(changes)
    }

    pub(super) async fn take_out(
        &self,
        context: &'static str,
        ws: &WorkspaceId,
        item: Item,
        ids: &BTreeSet<EventId>,
        rekey: bool,
        deletes: &mut Vec<BatchWrite>,
    ) -> Result<Option<PackChange>, StoreError> {
        let data: Vec<Packed> = unpack(context, get_b(&item, "data", context)?)?;
        if !data.iter().any(|p| ids.contains(&p.e.event_id)) {
            return Ok(None);
        }
        let pk = get_s(&item, "pk", context)?.to_owned();
        let sk = get_s(&item, "sk", context)?.to_owned();
        let reference = sk.trim_start_matches("P#").to_owned();
        let day = get_s(&item, "day", context)?.to_owned();
        let version = get_n(&item, "v").unwrap_or(1);
        let (gone, kept): (Vec<Packed>, Vec<Packed>) =
            data.into_iter().partition(|p| ids.contains(&p.e.event_id));
        let kept_subjects: BTreeSet<String> = kept
            .iter()
            .flat_map(|p| p.e.subjects.iter().cloned())
            .collect();

        let op_key = key(&pk, format!("O#{reference}"));
        let op_item = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(op_key.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store(context, e))?
            .item;
        let (ops_gone, ops_kept): (Vec<OperationalRecord>, Vec<OperationalRecord>) = match &op_item
        {
            Some(i) => unpack::<Vec<OperationalRecord>>(context, get_b(i, "data", context)?)?
                .into_iter()
                .partition(|o| ids.contains(&o.event_id)),
            None => (Vec::new(), Vec::new()),
        };
        let mut change = PackChange {
            reference: reference.clone(),
            day: day.clone(),
            gone,
            kept_subjects,
            deleted: false,
            rekeyed: None,
            operational: ops_gone.len() as u64,
        };
        if kept.is_empty() {
            deletes.push(BatchWrite::Delete(key(&pk, &sk)));
            if op_item.is_some() {
                deletes.push(BatchWrite::Delete(op_key));
            }
            change.deleted = true;
            return Ok(Some(change));
        }
        let names_a_gone_event = change
            .gone
            .iter()
            .any(|p| hex_id(&p.e.event_id) == reference);
        if rekey && names_a_gone_event {
            let new_ref = kept
                .iter()
                .map(|p| p.e.event_id)
                .min()
                .map(|id| hex_id(&id))
                .unwrap_or_default();
            let mut moved = item.clone();
            moved.insert("sk".into(), s(format!("P#{new_ref}")));
            let expires = kept.iter().map(|p| ttl(p.e.expires_at)).max().unwrap_or(0);
            moved.insert(EXPIRES_AT.into(), n(expires));
            self.write_pack(context, moved, &kept, None).await?;
            if !ops_kept.is_empty() {
                let mut op = key(&pk, format!("O#{new_ref}"));
                op.insert(EXPIRES_AT.into(), n(ops_expiry(&ops_kept)));
                self.write_operational(context, op, &ops_kept).await?;
            }
            let adds = change
                .kept_subjects
                .iter()
                .map(|subject| self.add_ref(context, subject_day_key(ws, subject, &day), &new_ref));
            run_all(adds.map(FutureExt::boxed).collect())
                .await
                .into_iter()
                .collect::<Result<(), StoreError>>()?;
            self.delete_pack(context, key(&pk, &sk), version).await?;
            if op_item.is_some() {
                deletes.push(BatchWrite::Delete(op_key));
            }
            change.rekeyed = Some(new_ref);
            return Ok(Some(change));
        }
        self.write_pack(context, item, &kept, Some(version)).await?;
        match op_item {
            Some(_) if ops_kept.is_empty() => deletes.push(BatchWrite::Delete(op_key)),
            Some(mut op) if !ops_gone.is_empty() => {
                op.remove("data");
                self.write_operational(context, op, &ops_kept).await?;
            }
            _ => {}
        }
        Ok(Some(change))
    }

    /// Writes a pack with `kept` as its events: over the version `v` it was read at, or as
    /// a new item.
    pub(super) async fn write_pack(
        &self,
        context: &'static str,
        mut item: Item,
        kept: &[Packed],
        version: Option<i64>,
    ) -> Result<(), StoreError> {
        let last = kept
            .iter()
            .map(|p| p.e.event_id)
            .max()
            .map(|id| hex_id(&id))
            .unwrap_or_default();
        item.insert("data".into(), b(pack(context, &kept)?));
        item.insert("last".into(), s(last));
        let put = self.client.put_item().table_name(&self.table);
        let put = match version {
            Some(v) => {
                item.insert("v".into(), n(v + 1));
                put.condition_expression("#v = :v")
                    .expression_attribute_names("#v", "v")
                    .expression_attribute_values(":v", n(v))
            }
            None => {
                item.insert("v".into(), n(1));
                put.condition_expression("attribute_not_exists(pk)")
            }
        };
        put.set_item(Some(item))
            .send()
            .await
            .map_err(|e| store("the pack changed meanwhile", e))?;
        Ok(())
    }

    pub(super) async fn write_operational(
        &self,
        context: &'static str,
        mut item: Item,
        ops: &[OperationalRecord],
    ) -> Result<(), StoreError> {
        let last = ops
            .iter()
            .map(|o| o.event_id)
            .max()
            .map(|id| hex_id(&id))
            .unwrap_or_default();
        item.insert("data".into(), b(pack(context, &ops)?));
        item.insert("last".into(), s(last));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| store(context, e))?;
        Ok(())
    }

    pub(super) async fn delete_pack(
        &self,
        context: &'static str,
        pack_key: Item,
        version: i64,
    ) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(pack_key))
            .condition_expression("#v = :v")
            .expression_attribute_names("#v", "v")
            .expression_attribute_values(":v", n(version))
            .send()
            .await
            .map_err(|e| store(context, e))?;
        Ok(())
    }

    /// Adds a pack reference to an existing subject-day (never creates one).
    pub(super) async fn add_ref(
        &self,
        context: &'static str,
        day_key: Item,
        reference: &str,
    ) -> Result<(), StoreError> {
        match self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(day_key))
            .update_expression("ADD packs :r")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":r", ss([reference.to_owned()]))
            .send()
            .await
            .map_err(|e| store(context, e))
        {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Removes references and dedup entries from a subject-day and its overflow items; deletes
    /// them (and so its `subject` index entry) when no reference is left, after dropping references to packs
    /// that are gone or hold no event of the subject any more. Returns how many of `fps`
    /// were there.
    pub(super) async fn unindex_day(
        &self,
        ws: &WorkspaceId,
        subject: &str,
        day: &str,
        change: DayChange,
    ) -> Result<u64, StoreError> {
        let day_key = subject_day_key(ws, subject, day);
        let mut parts = vec!["packs :refs"];
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(day_key.clone()))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":refs", ss(change.refs.iter().cloned()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew);
        if !change.fps.is_empty() {
            parts.push("fps :fps");
            req = req.expression_attribute_values(":fps", bs(change.fps.clone()));
        }
        if change.refs.is_empty() {
            parts.remove(0);
            req = req.set_expression_attribute_values(Some(HashMap::from([(
                ":fps".to_owned(),
                bs(change.fps.clone()),
            )])));
        }
        if parts.is_empty() {
            return Ok(0);
        }
        // Which entries were there: read before (the update's old image cannot say which
        // set elements it removed without the whole set).
        let before = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(day_key.clone()))
            .consistent_read(true)
            .projection_expression("fps")
            .send()
            .await
            .map_err(|e| store("erase", e))?
            .item;
        let had = binary_set(before.as_ref(), "fps");
        let found = change.fps.iter().filter(|f| had.contains(f)).count() as u64;
        let after = match req
            .update_expression(format!("DELETE {}", parts.join(", ")))
            .send()
            .await
            .map_err(|e| store("erase", e))
        {
            Ok(out) => out.attributes.unwrap_or_default(),
            Err(StoreError::Conflict(_)) => return Ok(0),
            Err(e) => return Err(e),
        };
        // What is left of the day, in the base item and its overflow items.
        let open = open_of(Some(&after));
        let refs: Vec<String> = change.refs.iter().cloned().collect();
        let mut left = string_set(&after, "packs");
        let (over, mut gone) = self
            .release_overflow("erase", &day_key, open, &refs)
            .await?;
        left.extend(over);
        let stale = self.stale_refs(ws, subject, &left).await?;
        if !stale.is_empty() {
            let out = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(day_key.clone()))
                .update_expression("DELETE packs :refs")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_values(":refs", ss(stale.iter().cloned()))
                .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
                .send()
                .await
                .map_err(|e| store("erase", e));
            left = match out {
                Ok(out) => string_set(&out.attributes.unwrap_or_default(), "packs"),
                Err(StoreError::Conflict(_)) => return Ok(found),
                Err(e) => return Err(e),
            };
            let (over, all_gone) = self
                .release_overflow("erase", &day_key, open, &stale)
                .await?;
            left.extend(over);
            gone = all_gone;
        }
        if left.is_empty() && gone {
            self.delete_day_without_packs("erase", day_key, open)
                .await?;
        }
        Ok(found)
    }

    /// The references among `refs` whose pack is gone or holds no event of `subject`.
    pub(super) async fn stale_refs(
        &self,
        ws: &WorkspaceId,
        subject: &str,
        refs: &[String],
    ) -> Result<Vec<String>, StoreError> {
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        // (A day's base and overflow items may both name a pack: once each here.)
        let refs: BTreeSet<&String> = refs.iter().collect();
        let keys = refs
            .iter()
            .map(|r| key(pack_pk(ws, ref_millis(r)), format!("P#{r}")))
            .collect();
        let packs = batch_get(&self.client, "erase", &self.table, keys, true, None).await?;
        let mut live = HashSet::new();
        for item in &packs {
            let packed: Vec<Packed> = unpack("erase", get_b(item, "data", "erase")?)?;
            if packed
                .iter()
                .any(|p| p.e.subjects.iter().any(|s| s == subject))
            {
                live.insert(
                    get_s(item, "sk", "erase")?
                        .trim_start_matches("P#")
                        .to_owned(),
                );
            }
        }
        Ok(refs
            .into_iter()
            .filter(|r| !live.contains(*r))
            .cloned()
            .collect())
    }
}

pub(super) fn ops_expiry(ops: &[OperationalRecord]) -> i64 {
    ops.iter().map(|o| ttl(o.expires_at)).max().unwrap_or(0)
}

/// The error context of `subject_footprint`.
pub(super) const FOOTPRINT: &str = "subject_footprint";

/// An event found for a footprint, with its pack's `pk`, reference and day.
#[derive(Debug)]
pub(super) struct FoundEvent {
    pub(super) packed: Packed,
    pk: String,
    reference: String,
    day: String,
}

impl DynamoEventStore {
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

    /// Adds to `fps_of` the dedup entries of the subject-days of the events' [`dedup_owners`]
    /// (where each event's entry is) that it lacks.
    async fn more_dedup_entries(
        &self,
        ws: &WorkspaceId,
        found: &[FoundEvent],
        fps_of: &mut HashMap<String, Vec<Vec<u8>>>,
    ) -> Result<(), StoreError> {
        let missing: BTreeSet<String> = found
            .iter()
            .flat_map(|f| {
                dedup_owners(&f.packed.e)
                    .into_iter()
                    .map(|owner| format!("{}#{}", subject_pk(ws, owner), f.day))
            })
            .filter(|pk| !fps_of.contains_key(pk))
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
impl EventEraser for DynamoEventStore {
    /// DynamoDB's TTL deletes expired items (late); reads filter them meanwhile.
    async fn sweep(&self, _now: OffsetDateTime) -> Result<u64, StoreError> {
        Ok(0)
    }

    async fn subject_footprint(
        &self,
        ws: &WorkspaceId,
        subjects: &[String],
        page: Page,
        now: OffsetDateTime,
    ) -> Result<Vec<EventFootprint>, StoreError> {
        let (after, limit) = (page.after.as_ref(), page.limit);
        if limit == 0 || subjects.is_empty() {
            return Ok(Vec::new());
        }
        let days = self.subject_days(FOOTPRINT, ws, subjects, now).await?;
        let after_ms = after.map(millis_of);
        let mut refs: BTreeSet<String> = BTreeSet::new();
        let mut fps_of: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
        for (_, d) in &days {
            refs.extend(
                string_set(d, "packs")
                    .into_iter()
                    .filter(|r| after_ms.is_none_or(|ms| ref_millis(r) >= ms)),
            );
            // (An overflow item, in its base's partition, has none.)
            fps_of
                .entry(get_s(d, "pk", FOOTPRINT)?.to_owned())
                .or_default()
                .extend(binary_set(Some(d), "fps"));
        }
        let found = self
            .footprint_events(ws, subjects, refs, after, limit)
            .await?;
        let with_ops = self.with_operational(&found).await?;
        self.more_dedup_entries(ws, &found, &mut fps_of).await?;
        let has_entry = |f: &FoundEvent| {
            let mine = entry(&f.packed.e.message_id, f.packed.u);
            dedup_owners(&f.packed.e).into_iter().any(|owner| {
                fps_of
                    .get(&format!("{}#{}", subject_pk(ws, owner), f.day))
                    .is_some_and(|fps| fps.contains(&mine))
            })
        };
        let without: Vec<&FoundEvent> = found.iter().filter(|f| !has_entry(f)).collect();
        let with_marker = self.with_marker(ws, &without).await?;
        Ok(found
            .into_iter()
            .map(|f| {
                let dedup_marker = has_entry(&f) || with_marker.contains(&f.packed.e.event_id);
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

    async fn erase(&self, ws: &WorkspaceId, events: &[EventId]) -> Result<ErasedRows, StoreError> {
        let mut rows = ErasedRows::default();
        if events.is_empty() {
            return Ok(rows);
        }
        let changes = self.remove_packs("erase", ws, events, true).await?;
        let mut days: BTreeMap<(String, String), DayChange> = BTreeMap::new();
        let mut markers = Vec::new();
        for c in &changes {
            rows.operational_records += c.operational;
            for p in &c.gone {
                rows.events += 1;
                rows.subject_index_entries += p.e.subjects.len() as u64;
                let owners = dedup_owners(&p.e);
                for subject in &p.e.subjects {
                    let slot = days.entry((subject.clone(), c.day.clone())).or_default();
                    if c.unindexes(subject) {
                        slot.refs.insert(c.reference.clone());
                    }
                    if owners.contains(&subject) {
                        slot.fps.push(entry(&p.e.message_id, p.u));
                    }
                }
                // Without subjects, or of a day that was full: a marker (deleted only if it
                // names the event).
                markers.push((p.e.message_id.clone(), p.e.event_id));
            }
            if c.rekeyed.is_some() {
                for subject in &c.kept_subjects {
                    days.entry((subject.clone(), c.day.clone()))
                        .or_default()
                        .refs
                        .insert(c.reference.clone());
                }
            }
        }
        let jobs = days.into_iter().map(|((subject, day), change)| {
            async move { self.unindex_day(ws, &subject, &day, change).await }.boxed()
        });
        for r in run_all(jobs.collect()).await {
            rows.dedup_markers += r?;
        }
        let deletes = markers
            .iter()
            .map(|(m, id)| self.delete_marker("erase", ws, m, id).boxed());
        for deleted in run_all(deletes.collect()).await {
            rows.dedup_markers += u64::from(deleted?);
        }
        Ok(rows)
    }
}
