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
    /// Entries added to the dedup subject's ([`dedup_subject`]) item of today; `had_today`
    /// are the entries it had before. Where that item was full (`full`: the entries were not
    /// added) or yesterday's was, a marker per member too: `marked` says which it took.
    Subject {
        ws: WorkspaceId,
        subject: String,
        day: String,
        members: Vec<usize>,
        had_today: Vec<Vec<u8>>,
        full: bool,
        marked: HashMap<usize, bool>,
        refs: BTreeSet<String>,
    },
    /// A marker item; `taken` is false when another event holds it (a duplicate).
    Marker { index: usize, taken: bool },
}

/// A subject of a workspace: whose subject-days an update goes to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct Subject {
    ws: WorkspaceId,
    name: String,
}

impl Subject {
    fn new(ws: &WorkspaceId, name: &str) -> Self {
        Self {
            ws: ws.clone(),
            name: name.to_owned(),
        }
    }
}

/// A pack reference on a subject's subject-day.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct SubjectPack {
    subject: Subject,
    reference: String,
}

impl SubjectPack {
    fn new(subject: Subject, reference: &str) -> Self {
        Self {
            subject,
            reference: reference.to_owned(),
        }
    }
}

/// Pack references to add to a subject-day, and the expiry the item must reach.
#[derive(Debug, Default)]
struct IndexAdd {
    refs: BTreeSet<String>,
    expires: i64,
}

/// What the dedup claims of one call took and read; `error` is the first failure.
#[derive(Debug)]
pub(super) struct Claimed {
    claims: Vec<Claim>,
    /// Dedup entries read beside the claims, by subject-day `pk`: yesterday's of the dedup
    /// subjects, today's and yesterday's of the other [`dedup_owners`].
    read: HashMap<String, Vec<Vec<u8>>>,
    error: Option<StoreError>,
}

/// Entries of duplicates (and references to packs that will hold no event of the subject)
/// to take out of a subject's today again.
#[derive(Debug)]
struct Undo {
    subject: Subject,
    fps: Vec<Vec<u8>>,
    dead: Vec<String>,
}

/// What the claims decided beyond the `fresh` flags.
#[derive(Debug, Default)]
struct Verdict {
    undo: Vec<Undo>,
    /// Claimed references that no fresh event of the subject is in.
    dropped: HashSet<SubjectPack>,
    /// Duplicates that took a marker (a full day's claim): it goes again.
    markers: Vec<usize>,
}

/// One `record` call: its events grouped into packs, and its days.
#[derive(Debug)]
pub(super) struct Plan<'a> {
    pub(super) events: &'a [NewEvent],
    pub(super) now: OffsetDateTime,
    today: String,
    pub(super) yesterday: String,
    /// The events whose message id is the first of its kind in the call.
    candidates: Vec<usize>,
    chunks: Vec<Chunk>,
    /// The chunk of each candidate (`usize::MAX` for the others).
    chunk_of: Vec<usize>,
}

impl<'a> Plan<'a> {
    /// The plan and the initial `fresh` flags: a message id repeated within the call, the
    /// first one counts.
    fn new(events: &'a [NewEvent], now: OffsetDateTime) -> Result<(Self, Vec<bool>), StoreError> {
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
        let plan = Self {
            events,
            now,
            today: day(now),
            yesterday: day(now - time::Duration::days(1)),
            candidates,
            chunks,
            chunk_of,
        };
        Ok((plan, fresh))
    }

    /// The reference of the pack event `i` goes into.
    fn reference(&self, i: usize) -> &String {
        &self.chunks[self.chunk_of[i]].reference
    }

    /// Event `i`'s dedup entry.
    fn entry(&self, i: usize) -> Vec<u8> {
        let e = &self.events[i];
        entry(&e.event.message_id, e.dedup_until.unix_timestamp())
    }

    /// Marks the duplicates among the claimed events (an unexpired entry today or yesterday,
    /// or a marker taken by another event) and says which of the call's new entries must go
    /// again.
    fn judge(&self, claimed: &Claimed, fresh: &mut [bool]) -> Verdict {
        let now_s = self.now.unix_timestamp();
        let mut verdict = Verdict::default();
        for c in &claimed.claims {
            match c {
                Claim::Subject {
                    ws,
                    subject,
                    members,
                    had_today,
                    full,
                    marked,
                    refs,
                    ..
                } => {
                    let read = |subject: &str, day: &str| {
                        claimed
                            .read
                            .get(&format!("{}#{day}", subject_pk(ws, subject)))
                            .map_or(&[][..], Vec::as_slice)
                    };
                    let had_before = read(subject, &self.yesterday);
                    let mut added_for_dups = Vec::new();
                    for &i in members {
                        let e = &self.events[i].event;
                        let fp = fingerprint(&e.message_id);
                        // Where an earlier version put the entry (the first subject).
                        let elsewhere = dedup_owners(e)
                            .into_iter()
                            .filter(|o| *o != subject)
                            .flat_map(|o| [read(o, &self.today), read(o, &self.yesterday)]);
                        let taken = marked.get(&i).copied();
                        let dup = taken == Some(false)
                            || had_today
                                .iter()
                                .chain(had_before)
                                .chain(elsewhere.flatten())
                                .any(|o| o.get(..8) == Some(&fp[..]) && entry_until(o) > now_s);
                        if dup {
                            fresh[i] = false;
                            let mine = self.entry(i);
                            // (A full day took no entry.)
                            if !*full && !had_today.contains(&mine) {
                                added_for_dups.push(mine);
                            }
                            if taken == Some(true) {
                                verdict.markers.push(i);
                            }
                        }
                    }
                    // A pack with no fresh event of the subject is not the subject's (or is
                    // never written): its reference goes again, so no subject-day points at
                    // nothing (and outlives an erasure of the subject).
                    let live: HashSet<&String> = members
                        .iter()
                        .filter(|&&i| fresh[i])
                        .map(|&i| self.reference(i))
                        .collect();
                    let dead: Vec<String> =
                        refs.iter().filter(|r| !live.contains(r)).cloned().collect();
                    let owner = Subject::new(ws, subject);
                    for r in &dead {
                        verdict.dropped.insert(SubjectPack::new(owner.clone(), r));
                    }
                    if !added_for_dups.is_empty() || !dead.is_empty() {
                        verdict.undo.push(Undo {
                            subject: owner,
                            fps: added_for_dups,
                            dead,
                        });
                    }
                }
                Claim::Marker { index, taken } => {
                    if !taken {
                        fresh[*index] = false;
                    }
                }
            }
        }
        verdict
    }
}

impl DynamoEventStore {
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
        condition_held("record", put)
    }

    /// Removes dedup entries from a subject-day item (and pack references, if given, from it
    /// and its overflow items), without creating the item if it is gone; deletes it when no
    /// reference is left.
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
            req = req.expression_attribute_values(":refs", ss(refs.iter().cloned()));
        }
        if parts.is_empty() {
            return Ok(());
        }
        let before = match req
            .update_expression(format!("DELETE {}", parts.join(", ")))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| store("forget", e))
        {
            Ok(out) => out.attributes.unwrap_or_default(),
            Err(StoreError::Conflict(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let had = string_set(&before, "packs");
        let base_keeps = had.iter().any(|r| !refs.contains(r));
        // The references the base did not hold are in its overflow items.
        let elsewhere: Vec<String> = refs.into_iter().filter(|r| !had.contains(r)).collect();
        if base_keeps && elsewhere.is_empty() {
            return Ok(());
        }
        let open = open_of(Some(&before));
        let (left, gone) = self
            .release_overflow("forget", &item_key, open, &elsewhere)
            .await?;
        if base_keeps || !left.is_empty() || !gone {
            return Ok(());
        }
        // No pack left: the item goes.
        self.delete_day_without_packs("forget", item_key, open)
            .await
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
                    full,
                    marked,
                    refs,
                    ..
                } => {
                    let mut fps = Vec::new();
                    for &i in members {
                        if fresh[i] && !*full {
                            fps.push(entry(
                                &events[i].event.message_id,
                                events[i].dedup_until.unix_timestamp(),
                            ));
                        }
                        if fresh[i] && marked.get(&i) == Some(&true) {
                            let e = &events[i].event;
                            jobs.push(
                                self.release_marker(&e.workspace_id, &e.message_id, &e.event_id)
                                    .boxed(),
                            );
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
        let (plan, mut fresh) = Plan::new(events, now)?;

        // 1. Dedup claims (see `claim`), then which events are duplicates.
        let claimed = self.claim(&plan).await;
        let verdict = plan.judge(&claimed, &mut fresh);
        if let Some(e) = claimed.error {
            self.release_claims(events, &claimed.claims, &fresh).await;
            return Err(e);
        }
        // A duplicate must not extend its message id's window: take its entry out again.
        for undo in verdict.undo {
            let item = subject_day_key(&undo.subject.ws, &undo.subject.name, &plan.today);
            if let Err(e) = self.release_subject_day(item, undo.fps, undo.dead).await {
                tracing::warn!(error = %e, "could not remove the dedup entries of duplicates");
            }
        }
        for &i in &verdict.markers {
            let e = &events[i].event;
            let released = self.release_marker(&e.workspace_id, &e.message_id, &e.event_id);
            if let Err(e) = released.await {
                tracing::warn!(error = %e, "could not remove the dedup marker of a duplicate");
            }
        }

        // 2. The packs of the fresh events, and the subject index of their other subjects.
        if let Err(e) = self
            .write_fresh(&plan, &claimed.claims, &verdict.dropped, &fresh)
            .await
        {
            self.release_claims(events, &claimed.claims, &fresh).await;
            self.undo_write(&plan, &fresh).await;
            return Err(e);
        }
        Ok(fresh)
    }

    /// Per dedup subject ([`dedup_subject`]) one update of today's subject-day, which also
    /// indexes the packs; per event without subjects a conditional marker. Beside them,
    /// yesterday's entries of the same subjects (the 24-hour window spans two days) and
    /// today's and yesterday's of each event's first subject where that is not its dedup
    /// subject (where an entry written before 2026-12-08 is: [`dedup_owners`]). One batch
    /// read, strongly consistent only in the first minute of the day, when yesterday's items
    /// may have been written a moment ago.
    async fn claim(&self, plan: &Plan<'_>) -> Claimed {
        let events = plan.events;
        let mut groups: BTreeMap<Subject, Vec<usize>> = BTreeMap::new();
        let mut markers = Vec::new();
        for &i in &plan.candidates {
            let e = &events[i].event;
            match dedup_subject(e) {
                Some(claimed) => groups
                    .entry(Subject::new(&e.workspace_id, claimed))
                    .or_default()
                    .push(i),
                None => markers.push(i),
            }
        }
        let mut read: BTreeSet<(Subject, &str)> = groups
            .keys()
            .map(|s| (s.clone(), plan.yesterday.as_str()))
            .collect();
        for &i in &plan.candidates {
            let e = &events[i].event;
            for owner in dedup_owners(e).into_iter().skip(1) {
                for d in [&plan.today, &plan.yesterday] {
                    read.insert((Subject::new(&e.workspace_id, owner), d.as_str()));
                }
            }
        }
        let read_keys: Vec<Item> = read
            .iter()
            .map(|(s, d)| subject_day_key(&s.ws, &s.name, d))
            .collect();
        let since_midnight = plan.now.to_offset(time::UtcOffset::UTC).time() - time::Time::MIDNIGHT;
        let before = batch_get(
            &self.client,
            "record",
            &self.table,
            read_keys,
            since_midnight < time::Duration::minutes(1),
            None,
        );
        let mut jobs = Vec::new();
        for (subject, members) in groups {
            jobs.push(self.claim_subject(plan, subject, members).boxed());
        }
        for i in markers {
            jobs.push(
                async move {
                    let taken = self.take_marker(&events[i], plan.now).await?;
                    Ok(Claim::Marker { index: i, taken })
                }
                .boxed(),
            );
        }
        let (results, before) = futures_util::future::join(run_all(jobs), before).await;
        let mut error = None;
        // Days that filled up: their later entries are markers.
        let mut full_days: HashSet<String> = HashSet::new();
        let read: HashMap<String, Vec<Vec<u8>>> = match before {
            Ok(items) => items
                .into_iter()
                .filter_map(|i| {
                    let pk = get_s(&i, "pk", "record").ok()?.to_owned();
                    if open_of(Some(&i)) > 0 {
                        full_days.insert(pk.clone());
                    }
                    Some((pk, binary_set(Some(&i), "fps")))
                })
                .collect(),
            Err(e) => {
                error = Some(e);
                HashMap::new()
            }
        };
        let mut claims = Vec::with_capacity(results.len());
        for r in results {
            match r {
                Ok(c) => claims.push(c),
                Err(e) => {
                    error.get_or_insert(e);
                }
            }
        }
        if error.is_none() {
            if let Err(e) = self.take_markers(plan, &mut claims, &full_days).await {
                error = Some(e);
            }
        }
        Claimed {
            claims,
            read,
            error,
        }
    }

    /// The claim of one dedup subject: its events' dedup entries and pack references on
    /// today's subject-day.
    async fn claim_subject(
        &self,
        plan: &Plan<'_>,
        subject: Subject,
        members: Vec<usize>,
    ) -> Result<Claim, StoreError> {
        let events = plan.events;
        let fps: Vec<Vec<u8>> = members.iter().map(|&i| plan.entry(i)).collect();
        let refs: BTreeSet<String> = members.iter().map(|&i| plan.reference(i).clone()).collect();
        let expires = members
            .iter()
            .map(|&i| ttl(events[i].event.expires_at))
            .max()
            .unwrap_or(0);
        let Subject { ws, name } = subject;
        let touched = self
            .touch_subject_day(
                subject_day_key(&ws, &name, &plan.today),
                &refs,
                &fps,
                expires,
            )
            .await?;
        Ok(Claim::Subject {
            ws,
            subject: name,
            day: plan.today.clone(),
            members,
            had_today: touched.had,
            full: touched.full,
            marked: HashMap::new(),
            refs,
        })
    }

    /// Writes the packs of the fresh events and indexes them on the subject-days of their
    /// subjects that no claim indexed already.
    async fn write_fresh(
        &self,
        plan: &Plan<'_>,
        claims: &[Claim],
        dropped: &HashSet<SubjectPack>,
        fresh: &[bool],
    ) -> Result<(), StoreError> {
        let events = plan.events;
        let mut items = Vec::new();
        for chunk in &plan.chunks {
            items.extend(pack_items(events, chunk, fresh, &plan.today)?);
        }
        let mut indexed: HashSet<SubjectPack> = HashSet::new();
        for c in claims {
            if let Claim::Subject {
                ws, subject, refs, ..
            } = c
            {
                for r in refs {
                    let k = SubjectPack::new(Subject::new(ws, subject), r);
                    if !dropped.contains(&k) {
                        indexed.insert(k);
                    }
                }
            }
        }
        let mut more: BTreeMap<Subject, IndexAdd> = BTreeMap::new();
        for &i in &plan.candidates {
            if !fresh[i] {
                continue;
            }
            let e = &events[i].event;
            let r = plan.reference(i);
            for subject in &e.subjects {
                let subject = Subject::new(&e.workspace_id, subject);
                if indexed.contains(&SubjectPack::new(subject.clone(), r)) {
                    continue;
                }
                let slot = more.entry(subject).or_default();
                slot.refs.insert(r.clone());
                slot.expires = slot.expires.max(ttl(e.expires_at));
            }
        }
        let mut jobs: Vec<BoxFuture<'_, Result<(), StoreError>>> = Vec::new();
        let puts = items.into_iter().map(BatchWrite::Put);
        jobs.push(batch_write(&self.client, "record", &self.table, puts).boxed());
        for (Subject { ws, name }, add) in more {
            jobs.push(
                async move {
                    self.touch_subject_day(
                        subject_day_key(&ws, &name, &plan.today),
                        &add.refs,
                        &[],
                        add.expires,
                    )
                    .await
                    .map(drop)
                }
                .boxed(),
            );
        }
        let results = run_all(jobs).await;
        results.into_iter().collect::<Result<(), StoreError>>()
    }

    /// After a failed `write_fresh` (and `release_claims`): the index entries of the other
    /// subjects and the packs go again (best effort: the caller reports the original error).
    async fn undo_write(&self, plan: &Plan<'_>, fresh: &[bool]) {
        let events = plan.events;
        let mut others: BTreeMap<Subject, BTreeSet<String>> = BTreeMap::new();
        for &i in &plan.candidates {
            let e = &events[i].event;
            if fresh[i] {
                let claimed = dedup_subject(e);
                for subject in e.subjects.iter().filter(|s| Some(*s) != claimed) {
                    others
                        .entry(Subject::new(&e.workspace_id, subject))
                        .or_default()
                        .insert(plan.reference(i).clone());
                }
            }
        }
        for (Subject { ws, name }, refs) in others {
            let item = subject_day_key(&ws, &name, &plan.today);
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
    }
}

/// Splits the candidate events into packs: per workspace and millisecond, at most
/// [`PACK_RAW_MAX`](crate::dynamo::PACK_RAW_MAX) bytes of JSON each ([`split_packs`]).
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
        for members in split_packs("record", members, |&i| &events[i].event)? {
            out.push(Chunk {
                ws: ws.clone(),
                reference: hex_id(&events[members[0]].event.event_id),
                members,
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
