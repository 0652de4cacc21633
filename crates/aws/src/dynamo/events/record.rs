//! `record` and `forget`: dedup claims, packs and the subject index of one ingest request.

use super::*;

/// Events of one request that share a millisecond, written as one pack.
#[derive(Debug)]
pub(super) struct Chunk {
    ws: WorkspaceId,
    /// Hex id of the chunk's first event (before dedup): the pack's sort key.
    reference: String,
    members: Vec<usize>,
}

/// What one dedup claim took, so that it can be given back if the write fails.
#[derive(Debug)]
pub(super) enum Claim {
    /// Entries added to the primary subject's item of today; `had_today` are the entries it
    /// had before.
    Subject {
        ws: WorkspaceId,
        subject: String,
        day: String,
        members: Vec<usize>,
        had_today: Vec<Vec<u8>>,
        refs: BTreeSet<String>,
    },
    /// A marker item; `taken` is false when another event holds it (a duplicate).
    Marker { index: usize, taken: bool },
}

impl DynamoEventStore {
    /// Adds pack references (and dedup entries) to a subject-day item, creating it and its
    /// `subject` index entry on the first write of the day. `expires_at` only moves later.
    /// Returns the entries the item had before.
    pub(super) async fn touch_subject_day(
        &self,
        item_key: Item,
        spk: String,
        ssk: String,
        refs: &BTreeSet<String>,
        fps: &[Vec<u8>],
        expires: i64,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let update = |extend_expiry: bool| {
            let keys = "subject_pk = if_not_exists(subject_pk, :spk), subject_sk = if_not_exists(subject_sk, :ssk)";
            let set = if extend_expiry {
                format!("SET {keys}, {EXPIRES_AT} = :exp")
            } else {
                format!("SET {keys}")
            };
            let add = if fps.is_empty() {
                "ADD packs :refs"
            } else {
                "ADD packs :refs, fps :fps"
            };
            let mut req = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(item_key.clone()))
                .update_expression(format!("{set} {add}"))
                .expression_attribute_values(":spk", s(spk.clone()))
                .expression_attribute_values(":ssk", s(ssk.clone()))
                .expression_attribute_values(":refs", ss(refs.iter().cloned()))
                .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedOld);
            if !fps.is_empty() {
                req = req.expression_attribute_values(":fps", bs(fps.to_vec()));
            }
            if extend_expiry {
                req = req
                    .condition_expression(format!(
                        "attribute_not_exists({EXPIRES_AT}) OR {EXPIRES_AT} <= :exp"
                    ))
                    .expression_attribute_values(":exp", n(expires));
            }
            req
        };
        let out = match update(true).send().await.map_err(|e| store("record", e)) {
            // The item already lives longer (a workspace's retention shrank today): keep it.
            Err(StoreError::Conflict(_)) => {
                update(false).send().await.map_err(|e| store("record", e))?
            }
            other => other?,
        };
        Ok(binary_set(out.attributes.as_ref(), "fps"))
    }

    /// Takes a marker for an event without subjects; `false` if an unexpired one exists.
    pub(super) async fn take_marker(
        &self,
        e: &NewEvent,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut item = marker_key(&e.event.workspace_id, &e.event.message_id);
        item.insert("event".into(), s(hex_id(&e.event.event_id)));
        item.insert("until".into(), n(e.dedup_until.unix_timestamp()));
        item.insert(EXPIRES_AT.into(), n(ttl(e.dedup_until)));
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR #u <= :now")
            .expression_attribute_names("#u", "until")
            .expression_attribute_values(":now", n(now.unix_timestamp()))
            .send()
            .await;
        match put.map_err(|e| store("record", e)) {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes dedup entries from a subject-day item (and pack references, if given),
    /// without creating the item if it is gone.
    pub(super) async fn release_subject_day(
        &self,
        item_key: Item,
        fps: Vec<Vec<u8>>,
        refs: Vec<String>,
    ) -> Result<(), StoreError> {
        let mut parts = Vec::new();
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item_key.clone()))
            .condition_expression("attribute_exists(pk)");
        if !fps.is_empty() {
            parts.push("fps :fps");
            req = req.expression_attribute_values(":fps", bs(fps));
        }
        if !refs.is_empty() {
            parts.push("packs :refs");
            req = req.expression_attribute_values(":refs", ss(refs));
        }
        if parts.is_empty() {
            return Ok(());
        }
        let left = match req
            .update_expression(format!("DELETE {}", parts.join(", ")))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| store("forget", e))
        {
            Ok(out) => out.attributes.unwrap_or_default(),
            Err(StoreError::Conflict(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        if left.contains_key("packs") {
            return Ok(());
        }
        // No pack left: the item (and its `subject` index entry) goes, unless a request of
        // the subject added a pack meanwhile.
        match self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(item_key))
            .condition_expression("attribute_not_exists(packs)")
            .send()
            .await
            .map_err(|e| store("forget", e))
        {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes a dedup marker if it still belongs to `event`.
    pub(super) async fn release_marker(
        &self,
        ws: &WorkspaceId,
        m: &MessageId,
        event: &EventId,
    ) -> Result<(), StoreError> {
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
            .map_err(|e| store("forget", e))
        {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Gives back the dedup claims of `fresh` events after a failed write (best effort: the
    /// caller reports the original error).
    pub(super) async fn release_claims(
        &self,
        events: &[NewEvent],
        claims: &[Claim],
        fresh: &[bool],
    ) {
        let mut jobs: Vec<BoxFuture<'_, Result<(), StoreError>>> = Vec::new();
        for c in claims {
            match c {
                Claim::Subject {
                    ws,
                    subject,
                    day,
                    members,
                    refs,
                    ..
                } => {
                    let mut fps = Vec::new();
                    for &i in members {
                        if fresh[i] {
                            fps.push(entry(
                                &events[i].event.message_id,
                                events[i].dedup_until.unix_timestamp(),
                            ));
                        }
                    }
                    // The call's pack references are its own (named after its events): none
                    // of its packs stays.
                    let item = subject_day_key(ws, subject, day);
                    jobs.push(
                        self.release_subject_day(item, fps, refs.iter().cloned().collect())
                            .boxed(),
                    );
                }
                Claim::Marker { index, taken } => {
                    if *taken && fresh[*index] {
                        let e = &events[*index].event;
                        jobs.push(
                            self.release_marker(&e.workspace_id, &e.message_id, &e.event_id)
                                .boxed(),
                        );
                    }
                }
            }
        }
        let failed = run_all(jobs).await.iter().filter(|r| r.is_err()).count();
        if failed > 0 {
            tracing::error!(
                failed,
                "could not give back dedup entries after a failed record; a retry of these events may be taken for a duplicate"
            );
        }
    }

    pub(super) async fn record_events(
        &self,
        events: &[NewEvent],
        now: OffsetDateTime,
    ) -> Result<Vec<bool>, StoreError> {
        let now_s = now.unix_timestamp();
        let today = day(now);
        let yesterday = day(now - time::Duration::days(1));

        // A message id repeated within the call: the first one counts.
        let mut fresh = vec![true; events.len()];
        let mut seen = HashSet::new();
        for (i, e) in events.iter().enumerate() {
            if !seen.insert((&e.event.workspace_id, &e.event.message_id)) {
                fresh[i] = false;
            }
        }
        let candidates: Vec<usize> = (0..events.len()).filter(|&i| fresh[i]).collect();
        let chunks = chunks(events, &candidates)?;
        let mut chunk_of = vec![usize::MAX; events.len()];
        for (c, chunk) in chunks.iter().enumerate() {
            for &i in &chunk.members {
                chunk_of[i] = c;
            }
        }

        // 1. Dedup claims: per primary subject (the first of the sorted subject index) one
        //    update of today's subject-day, which also indexes the packs; per event without
        //    subjects a conditional marker.
        let mut groups: BTreeMap<(WorkspaceId, String), Vec<usize>> = BTreeMap::new();
        let mut markers = Vec::new();
        for &i in &candidates {
            let e = &events[i].event;
            match e.subjects.first() {
                Some(primary) => groups
                    .entry((e.workspace_id.clone(), primary.clone()))
                    .or_default()
                    .push(i),
                None => markers.push(i),
            }
        }
        // Yesterday's entries of the same subjects: the 24-hour window spans two days. One
        // batch read, strongly consistent only in the first minute of the day, when
        // yesterday's items may have been written a moment ago.
        let yesterday_keys: Vec<Item> = groups
            .keys()
            .map(|(ws, subject)| subject_day_key(ws, subject, &yesterday))
            .collect();
        let since_midnight = now.to_offset(time::UtcOffset::UTC).time() - time::Time::MIDNIGHT;
        let before = batch_get(
            &self.client,
            "record",
            &self.table,
            yesterday_keys,
            since_midnight < time::Duration::minutes(1),
            Some("pk, fps"),
        );
        let mut jobs = Vec::new();
        for ((ws, subject), members) in groups {
            let fps: Vec<Vec<u8>> = members
                .iter()
                .map(|&i| {
                    entry(
                        &events[i].event.message_id,
                        events[i].dedup_until.unix_timestamp(),
                    )
                })
                .collect();
            let refs: BTreeSet<String> = members
                .iter()
                .map(|&i| chunks[chunk_of[i]].reference.clone())
                .collect();
            let expires = members
                .iter()
                .map(|&i| ttl(events[i].event.expires_at))
                .max()
                .unwrap_or(0);
            let today = today.clone();
            jobs.push(
                async move {
                    let had_today = self
                        .touch_subject_day(
                            subject_day_key(&ws, &subject, &today),
                            subject_pk(&ws, &subject),
                            today.clone(),
                            &refs,
                            &fps,
                            expires,
                        )
                        .await?;
                    Ok::<_, StoreError>(Claim::Subject {
                        ws,
                        subject,
                        day: today,
                        members,
                        had_today,
                        refs,
                    })
                }
                .boxed(),
            );
        }
        for i in markers {
            jobs.push(
                async move {
                    let taken = self.take_marker(&events[i], now).await?;
                    Ok(Claim::Marker { index: i, taken })
                }
                .boxed(),
            );
        }
        let (results, before) = futures_util::future::join(run_all(jobs), before).await;
        let mut first_error = None;
        let before: HashMap<String, Vec<Vec<u8>>> = match before {
            Ok(items) => items
                .into_iter()
                .filter_map(|i| {
                    let pk = get_s(&i, "pk", "record").ok()?.to_owned();
                    Some((pk, binary_set(Some(&i), "fps")))
                })
                .collect(),
            Err(e) => {
                first_error = Some(e);
                HashMap::new()
            }
        };
        let mut claims = Vec::with_capacity(results.len());
        for r in results {
            match r {
                Ok(c) => claims.push(c),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        // Which events are duplicates, and which of our new entries must go again.
        let mut undo_dups: Vec<(WorkspaceId, String, Vec<Vec<u8>>, Vec<String>)> = Vec::new();
        let mut dropped: HashSet<(WorkspaceId, String, String)> = HashSet::new();
        for c in &claims {
            match c {
                Claim::Subject {
                    ws,
                    subject,
                    members,
                    had_today,
                    refs,
                    ..
                } => {
                    let had_before = before
                        .get(&format!("{}#{yesterday}", subject_pk(ws, subject)))
                        .map_or(&[][..], Vec::as_slice);
                    let mut added_for_dups = Vec::new();
                    for &i in members {
                        let m = &events[i].event.message_id;
                        let fp = fingerprint(m);
                        let dup = had_today
                            .iter()
                            .chain(had_before)
                            .any(|o| o.get(..8) == Some(&fp[..]) && entry_until(o) > now_s);
                        if dup {
                            fresh[i] = false;
                            let mine = entry(m, events[i].dedup_until.unix_timestamp());
                            if !had_today.contains(&mine) {
                                added_for_dups.push(mine);
                            }
                        }
                    }
                    // A pack with no fresh event of the subject is not the subject's (or is
                    // never written): its reference goes again, so no subject-day points at
                    // nothing (and outlives an erasure of the subject).
                    let live: HashSet<&String> = members
                        .iter()
                        .filter(|&&i| fresh[i])
                        .map(|&i| &chunks[chunk_of[i]].reference)
                        .collect();
                    let dead: Vec<String> =
                        refs.iter().filter(|r| !live.contains(r)).cloned().collect();
                    for r in &dead {
                        dropped.insert((ws.clone(), subject.clone(), r.clone()));
                    }
                    if !added_for_dups.is_empty() || !dead.is_empty() {
                        undo_dups.push((ws.clone(), subject.clone(), added_for_dups, dead));
                    }
                }
                Claim::Marker { index, taken } => {
                    if !taken {
                        fresh[*index] = false;
                    }
                }
            }
        }
        if let Some(e) = first_error {
            self.release_claims(events, &claims, &fresh).await;
            return Err(e);
        }
        // A duplicate must not extend its message id's window: take its entry out again.
        for (ws, subject, fps, dead) in undo_dups {
            if let Err(e) = self
                .release_subject_day(subject_day_key(&ws, &subject, &today), fps, dead)
                .await
            {
                tracing::warn!(error = %e, "could not remove the dedup entries of duplicates");
            }
        }

        // 2. The packs of the fresh events, and the subject index of their other subjects.
        let write = async {
            let mut items = Vec::new();
            for chunk in &chunks {
                items.extend(pack_items(events, chunk, &fresh, &today)?);
            }
            let mut indexed: HashSet<(WorkspaceId, String, String)> = HashSet::new();
            for c in &claims {
                if let Claim::Subject {
                    ws, subject, refs, ..
                } = c
                {
                    for r in refs {
                        let k = (ws.clone(), subject.clone(), r.clone());
                        if !dropped.contains(&k) {
                            indexed.insert(k);
                        }
                    }
                }
            }
            let mut more: BTreeMap<(WorkspaceId, String), (BTreeSet<String>, i64)> =
                BTreeMap::new();
            for &i in &candidates {
                if !fresh[i] {
                    continue;
                }
                let e = &events[i].event;
                let r = &chunks[chunk_of[i]].reference;
                for subject in &e.subjects {
                    if indexed.contains(&(e.workspace_id.clone(), subject.clone(), r.clone())) {
                        continue;
                    }
                    let slot = more
                        .entry((e.workspace_id.clone(), subject.clone()))
                        .or_default();
                    slot.0.insert(r.clone());
                    slot.1 = slot.1.max(ttl(e.expires_at));
                }
            }
            let mut jobs: Vec<BoxFuture<'_, Result<(), StoreError>>> = Vec::new();
            jobs.push(batch_put(&self.client, "record", &self.table, items).boxed());
            for ((ws, subject), (refs, expires)) in more {
                let today = today.clone();
                jobs.push(
                    async move {
                        self.touch_subject_day(
                            subject_day_key(&ws, &subject, &today),
                            subject_pk(&ws, &subject),
                            today.clone(),
                            &refs,
                            &[],
                            expires,
                        )
                        .await
                        .map(drop)
                    }
                    .boxed(),
                );
            }
            let results = run_all(jobs).await;
            results.into_iter().collect::<Result<(), StoreError>>()
        };
        if let Err(e) = write.await {
            self.release_claims(events, &claims, &fresh).await;
            let mut others: BTreeMap<(WorkspaceId, String), BTreeSet<String>> = BTreeMap::new();
            for &i in &candidates {
                let e = &events[i].event;
                if fresh[i] {
                    for subject in e.subjects.iter().skip(1) {
                        others
                            .entry((e.workspace_id.clone(), subject.clone()))
                            .or_default()
                            .insert(chunks[chunk_of[i]].reference.clone());
                    }
                }
            }
            for ((ws, subject), refs) in others {
                let item = subject_day_key(&ws, &subject, &today);
                if let Err(undo) = self
                    .release_subject_day(item, Vec::new(), refs.into_iter().collect())
                    .await
                {
                    tracing::warn!(error = %undo, "could not remove index entries after a failed record");
                }
            }
            let written: Vec<EventId> = (0..events.len())
                .filter(|&i| fresh[i])
                .map(|i| events[i].event.event_id)
                .collect();
            if let Some(ws) = events.first().map(|e| e.event.workspace_id.clone()) {
                if let Err(undo) = self.remove_packs("record", &ws, &written, false).await {
                    tracing::warn!(error = %undo, "could not remove packs after a failed record");
                }
            }
            return Err(e);
        }
        Ok(fresh)
    }

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
        let mut subject_days: BTreeMap<(String, String), (Vec<Vec<u8>>, BTreeSet<String>)> =
            BTreeMap::new();
        let mut markers = Vec::new();
        for c in &changes {
            for p in &c.gone {
                let e = &p.e;
                match e.subjects.first() {
                    Some(primary) => {
                        let slot = subject_days
                            .entry((primary.clone(), c.day.clone()))
                            .or_default();
                        slot.0.push(entry(&e.message_id, p.u));
                    }
                    None => markers.push((e.message_id.clone(), e.event_id)),
                }
                for subject in &e.subjects {
                    if c.unindexes(subject) {
                        subject_days
                            .entry((subject.clone(), c.day.clone()))
                            .or_default()
                            .1
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
        for ((subject, day), (fps, refs)) in subject_days {
            jobs.push(
                self.release_subject_day(
                    subject_day_key(ws, &subject, &day),
                    fps,
                    refs.into_iter().collect(),
                )
                .boxed(),
            );
        }
        for (m, id) in &markers {
            jobs.push(self.release_marker(ws, m, id).boxed());
        }
        run_all(jobs).await.into_iter().collect()
    }
}

/// Splits the candidate events into packs: per workspace and millisecond, at most
/// `PACK_RAW_MAX` bytes of JSON each.
pub(super) fn chunks(events: &[NewEvent], candidates: &[usize]) -> Result<Vec<Chunk>, StoreError> {
    let mut by_ms: BTreeMap<(WorkspaceId, u64), Vec<usize>> = BTreeMap::new();
    for &i in candidates {
        let e = &events[i].event;
        by_ms
            .entry((e.workspace_id.clone(), millis_of(&e.event_id)))
            .or_default()
            .push(i);
    }
    let mut out = Vec::new();
    for ((ws, _), mut members) in by_ms {
        members.sort_by_key(|&i| events[i].event.event_id);
        let mut current: Vec<usize> = Vec::new();
        let mut size = 0;
        for i in members {
            let len = serde_json::to_vec(&events[i].event)
                .map_err(|e| StoreError::permanent("record", e))?
                .len();
            if !current.is_empty() && size + len > PACK_RAW_MAX {
                out.push(Chunk {
                    ws: ws.clone(),
                    reference: hex_id(&events[current[0]].event.event_id),
                    members: std::mem::take(&mut current),
                });
                size = 0;
            }
            size += len;
            current.push(i);
        }
        if !current.is_empty() {
            out.push(Chunk {
                ws: ws.clone(),
                reference: hex_id(&events[current[0]].event.event_id),
                members: current,
            });
        }
    }
    Ok(out)
}

pub(super) fn pack_items(
    events: &[NewEvent],
    chunk: &Chunk,
    fresh: &[bool],
    today: &str,
) -> Result<Vec<Item>, StoreError> {
    let kept: Vec<usize> = chunk
        .members
        .iter()
        .copied()
        .filter(|&i| fresh[i])
        .collect();
    let Some(&last) = kept.last() else {
        return Ok(Vec::new());
    };
    let pk = pack_pk(&chunk.ws, ref_millis(&chunk.reference));
    let last = hex_id(&events[last].event.event_id);
    let packed: Vec<Packed> = kept
        .iter()
        .map(|&i| Packed {
            e: events[i].event.clone(),
            u: events[i].dedup_until.unix_timestamp(),
        })
        .collect();
    let expires = kept
        .iter()
        .map(|&i| ttl(events[i].event.expires_at))
        .max()
        .unwrap_or(0);
    let mut item = key(&pk, format!("P#{}", chunk.reference));
    item.insert("data".into(), b(pack("record", &packed)?));
    item.insert("last".into(), s(last.clone()));
    item.insert("day".into(), s(today));
    item.insert("v".into(), n(1));
    item.insert(EXPIRES_AT.into(), n(expires));
    let mut out = vec![item];
    let ops: Vec<&OperationalRecord> = kept
        .iter()
        .filter_map(|&i| events[i].operational.as_ref())
        .collect();
    if !ops.is_empty() {
        let expires = ops.iter().map(|o| ttl(o.expires_at)).max().unwrap_or(0);
        let mut op = key(&pk, format!("O#{}", chunk.reference));
        op.insert("data".into(), b(pack("record", &ops)?));
        op.insert("last".into(), s(last));
        op.insert(EXPIRES_AT.into(), n(expires));
        out.push(op);
    }
    Ok(out)
}
