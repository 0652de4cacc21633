//! Bounded subject-days. A subject-day item holds at most `cap` pack references
//! ([`DynamoEventStore::with_subject_day_cap`]); past them a day's references go to overflow
//! items in the same partition (`sk` `S#1`, `S#2`, …), and the base item's `open` names the
//! last one. Dedup entries (`fps`, 12 bytes per event) go to the base only until it is full;
//! then each message takes a marker (the item an event without subjects takes, one per
//! message id, conditional on none unexpired): atomic per message, so a claim is still a
//! test-and-set. A base with an overflow item is never roomy again (until it is deleted with
//! every event of the day), so a message's entry of a day is on the base (written before it
//! filled) or a marker; a claim takes markers where today's base is full or yesterday's was.
//! Erasure and `forget` delete an event's marker if it names the event.
//!
//! Without the bound, a subject in many requests a day (a shop's placeholder phone, a shared
//! e-mail, a bot's anonymous id) grew one item by a reference per request: every update was
//! billed by the item's whole size, and at DynamoDB's 400 KB item limit (about 11,000
//! requests a day) each later request carrying the subject failed. Anyone with a workspace's
//! public write key could do that to another subject on purpose.
//!
//! Writers create an overflow item only after raising the base's `open` to it (so a reader
//! that reads the base finds it), write to an existing one only while it exists, and an
//! eraser deletes the base only when every overflow item it saw is gone and `open` is still
//! what it read: no overflow item is left that no base names.

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::ReturnValue;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure as OnFailure;

use super::erase::{FoundEvent, FOOTPRINT};
use super::record::{Claim, Plan};
use super::*;

/// Pack references a subject-day item takes before the next go to an overflow item: about
/// 0.8 KB of references, so that an update stays near one write unit.
pub(super) const DEFAULT_SUBJECT_DAY_CAP: usize = 24;

/// Rounds of a write that finds its overflow item full or gone before it gives up
/// (transient: the request is retried).
const ROUNDS: usize = 8;

/// The attribute of a base item that names its last overflow item.
const OPEN: &str = "open";

/// Overflow item `n` of the subject-day `base`.
pub(super) fn shard_key(base: &Item, n: i64) -> Item {
    let mut k = base.clone();
    k.insert("sk".into(), s(format!("S#{n}")));
    k
}

/// The last overflow item a base item names (0: none).
pub(super) fn open_of(item: Option<&Item>) -> i64 {
    item.and_then(|i| get_n(i, OPEN)).unwrap_or(0)
}

/// What [`DynamoEventStore::touch_subject_day`] did.
#[derive(Debug, Default)]
pub(super) struct Touched {
    /// The dedup entries the base item had before.
    pub had: Vec<Vec<u8>>,
    /// The base was full: the references went to an overflow item and the dedup entries
    /// were not added (the caller takes markers for them).
    pub full: bool,
}

/// What a conditional `ADD` found.
enum Added {
    /// Written; the item before.
    Yes(Item),
    /// The condition did not hold; the item as it was (empty if there was none).
    No(Item),
}

impl DynamoEventStore {
    /// `ADD packs :refs` (and `fps :fps`) to `item_key` where `condition` holds, moving
    /// `expires_at` to `expires` if that is later; the item before.
    async fn add_where(
        &self,
        item_key: &Item,
        refs: &BTreeSet<String>,
        fps: &[Vec<u8>],
        expires: i64,
        condition: Option<&str>,
    ) -> Result<Added, StoreError> {
        let mut extend = true;
        loop {
            let mut adds = Vec::new();
            let mut req = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(item_key.clone()))
                .expression_attribute_names("#open", OPEN)
                .return_values(ReturnValue::AllOld)
                .return_values_on_condition_check_failure(OnFailure::AllOld);
            if !refs.is_empty() {
                adds.push("packs :refs");
                req = req.expression_attribute_values(":refs", ss(refs.iter().cloned()));
            }
            if !fps.is_empty() {
                adds.push("fps :fps");
                req = req.expression_attribute_values(":fps", bs(fps.to_vec()));
            }
            let mut conditions: Vec<String> = condition.iter().map(|c| format!("({c})")).collect();
            let mut update = String::new();
            if extend {
                update = format!("SET {EXPIRES_AT} = :exp ");
                conditions.push(format!(
                    "(attribute_not_exists({EXPIRES_AT}) OR {EXPIRES_AT} <= :exp)"
                ));
                req = req.expression_attribute_values(":exp", n(expires));
            }
            if !adds.is_empty() {
                update.push_str(&format!("ADD {}", adds.join(", ")));
            }
            if update.is_empty() {
                return Ok(Added::Yes(Item::new()));
            }
            if condition.is_some_and(|c| c.contains(":cap")) {
                req = req.expression_attribute_values(":cap", n(self.subject_day_cap as i64));
            }
            if !conditions.is_empty() {
                req = req.condition_expression(conditions.join(" AND "));
            }
            if !condition.is_some_and(|c| c.contains("#open")) {
                req = req.set_expression_attribute_names(None);
            }
            match req.update_expression(update).send().await {
                Ok(out) => return Ok(Added::Yes(out.attributes.unwrap_or_default())),
                Err(e) => {
                    let old = match e.as_service_error() {
                        Some(UpdateItemError::ConditionalCheckFailedException(c)) => {
                            c.item.clone().unwrap_or_default()
                        }
                        _ => return Err(store("record", e)),
                    };
                    // The item lives longer already (a workspace's retention shrank
                    // today): keep its expiry, and try again without moving it.
                    let longer = get_n(&old, EXPIRES_AT).is_some_and(|t| t > expires);
                    if extend && longer {
                        extend = false;
                        continue;
                    }
                    return Ok(Added::No(old));
                }
            }
        }
    }

    /// Adds pack references (and dedup entries) to a subject-day, creating it on the first
    /// write of the day; `expires_at` only moves later. Returns the dedup entries the item
    /// had before. References and entries go to the base item while it has fewer references
    /// than the cap and no overflow item; else the references go to its last overflow item
    /// (a new one when that is full) and the entries nowhere: the caller takes a marker per
    /// message instead, so that the base stays bounded too (an entry is 12 bytes per event).
    /// A base is never roomy again once it has an overflow item, so a message's entry of
    /// that day is either on the base, written before it filled, or a marker.
    ///
    /// The old entries come from `ReturnValues = ALL_OLD`, not `UPDATED_OLD`: adding an
    /// entry the set holds already (a retry within the same second) leaves `fps` as it was,
    /// and an emulator that returns only the attributes whose value changed (moto) then
    /// answers without `fps`. `ALL_OLD` returns the whole item before the update, at no
    /// extra capacity. No `subject` index keys: a subject's days are read by key
    /// ([`DynamoEventStore::subject_day_items`]).
    pub(super) async fn touch_subject_day(
        &self,
        item_key: Item,
        refs: &BTreeSet<String>,
        fps: &[Vec<u8>],
        expires: i64,
    ) -> Result<Touched, StoreError> {
        for _ in 0..ROUNDS {
            let roomy = "attribute_not_exists(#open) AND (attribute_not_exists(packs) OR size(packs) < :cap)";
            let old = match self
                .add_where(&item_key, refs, fps, expires, Some(roomy))
                .await?
            {
                Added::Yes(old) => {
                    return Ok(Touched {
                        had: binary_set(Some(&old), "fps"),
                        full: false,
                    })
                }
                Added::No(old) => old,
            };
            // Full: the references go to an overflow item; the base is written only to move
            // its expiry (while it is still full).
            let lives = get_n(&old, EXPIRES_AT).is_some_and(|t| t >= expires);
            let full = "attribute_exists(pk) AND (attribute_exists(#open) OR size(packs) >= :cap)";
            if !lives {
                let moved = self
                    .add_where(&item_key, &BTreeSet::new(), &[], expires, Some(full))
                    .await?;
                if let Added::No(_) = moved {
                    // Emptied or deleted meanwhile (an erasure): start over.
                    continue;
                }
            }
            if self
                .add_to_overflow(&item_key, open_of(Some(&old)), refs, expires)
                .await?
            {
                return Ok(Touched {
                    had: binary_set(Some(&old), "fps"),
                    full: true,
                });
            }
        }
        Err(StoreError::transient(
            "record",
            "a subject-day changed under every try",
        ))
    }

    /// Adds `refs` to overflow item `open` of `base`, or to a new one after it; `false` if the
    /// base is gone meanwhile (the caller starts over).
    async fn add_to_overflow(
        &self,
        base: &Item,
        mut open: i64,
        refs: &BTreeSet<String>,
        expires: i64,
    ) -> Result<bool, StoreError> {
        for _ in 0..ROUNDS {
            if open >= 1 {
                let roomy = "attribute_exists(pk) AND size(packs) < :cap";
                let shard = shard_key(base, open);
                if let Added::Yes(_) = self
                    .add_where(&shard, refs, &[], expires, Some(roomy))
                    .await?
                {
                    return Ok(true);
                }
            }
            // Open the next one: first on the base, so that readers find it.
            let next = open + 1;
            let raised = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(base.clone()))
                .update_expression("SET #open = :next")
                .condition_expression(
                    "attribute_exists(pk) AND (attribute_not_exists(#open) OR #open = :open)",
                )
                .expression_attribute_names("#open", OPEN)
                .expression_attribute_values(":next", n(next))
                .expression_attribute_values(":open", n(open))
                .send()
                .await;
            if condition_held("record", raised)? {
                let shard = shard_key(base, next);
                self.add_where(&shard, refs, &[], expires, None).await?;
                return Ok(true);
            }
            // Another request opened one first (or the base went): read where it is.
            let now_open = self
                .client
                .get_item()
                .table_name(&self.table)
                .set_key(Some(base.clone()))
                .consistent_read(true)
                .projection_expression("#open")
                .expression_attribute_names("#open", OPEN)
                .send()
                .await
                .map_err(|e| store("record", e))?
                .item;
            let Some(now_open) = now_open else {
                return Ok(false);
            };
            open = open_of(Some(&now_open));
        }
        Err(StoreError::transient(
            "record",
            "a subject-day's overflow changed under every try",
        ))
    }

    /// The overflow items of the subject-day items `bases` (each base's `S#1 ..= S#open`).
    pub(super) async fn overflow_items(
        &self,
        context: &'static str,
        bases: &[Item],
    ) -> Result<Vec<Item>, StoreError> {
        let keys: Vec<Item> = bases
            .iter()
            .flat_map(|b| {
                let base = key(get_s(b, "pk", context).unwrap_or_default().to_owned(), "S");
                (1..=open_of(Some(b))).map(move |i| shard_key(&base, i))
            })
            .collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        batch_get(&self.client, context, &self.table, keys, true, None).await
    }

    /// Removes `refs` from overflow items `1 ..= open` of `base` and deletes those left
    /// without references. Returns the references left in them, and whether every one of
    /// them is gone.
    pub(super) async fn release_overflow(
        &self,
        context: &'static str,
        base: &Item,
        open: i64,
        refs: &[String],
    ) -> Result<(Vec<String>, bool), StoreError> {
        let jobs = (1..=open).map(|i| {
            let shard = shard_key(base, i);
            async move {
                let left = if refs.is_empty() {
                    let got = self
                        .client
                        .get_item()
                        .table_name(&self.table)
                        .set_key(Some(shard.clone()))
                        .consistent_read(true)
                        .send()
                        .await
                        .map_err(|e| store(context, e))?;
                    got.item.map(|i| string_set(&i, "packs"))
                } else {
                    let out = self
                        .client
                        .update_item()
                        .table_name(&self.table)
                        .set_key(Some(shard.clone()))
                        .update_expression("DELETE packs :refs")
                        .condition_expression("attribute_exists(pk)")
                        .expression_attribute_values(":refs", ss(refs.iter().cloned()))
                        .return_values(ReturnValue::AllNew)
                        .send()
                        .await
                        .map_err(|e| store(context, e));
                    match out {
                        Ok(out) => Some(string_set(&out.attributes.unwrap_or_default(), "packs")),
                        Err(StoreError::Conflict(_)) => None,
                        Err(e) => return Err(e),
                    }
                };
                let Some(left) = left else {
                    return Ok((Vec::new(), true));
                };
                if !left.is_empty() {
                    return Ok((left, false));
                }
                let deleted = self
                    .client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(shard))
                    .condition_expression("attribute_not_exists(packs)")
                    .send()
                    .await;
                Ok((Vec::new(), condition_held(context, deleted)?))
            }
            .boxed()
        });
        let mut left = Vec::new();
        let mut all_gone = true;
        for r in run_all(jobs.collect()).await {
            let (l, gone) = r?;
            left.extend(l);
            all_gone &= gone;
        }
        Ok((left, all_gone))
    }

    /// Deletes a subject-day base item that references no pack and names the overflow item
    /// `open` it named when its overflow items were found gone (none if 0), unless a request
    /// of the subject added a pack or an overflow item meanwhile: then the item stays.
    pub(super) async fn delete_day_without_packs(
        &self,
        context: &'static str,
        day_key: Item,
        open: i64,
    ) -> Result<(), StoreError> {
        let mut req = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(day_key))
            .expression_attribute_names("#open", OPEN);
        req = if open == 0 {
            req.condition_expression("attribute_not_exists(packs) AND attribute_not_exists(#open)")
        } else {
            req.condition_expression("attribute_not_exists(packs) AND #open = :open")
                .expression_attribute_values(":open", n(open))
        };
        // Held or not (a pack was added meanwhile: the item stays), done.
        condition_held(context, req.send().await).map(|_| ())
    }
}

/// Markers: the dedup entries of a day that was full.
impl DynamoEventStore {
    /// A marker per member of each claim whose day was full, or whose subject's yesterday
    /// was (a message first sent yesterday has its marker there, not an entry): a marker
    /// another event holds makes the member a duplicate ([`Plan::judge`]).
    pub(super) async fn take_markers(
        &self,
        plan: &Plan<'_>,
        claims: &mut [Claim],
        full_days: &HashSet<String>,
    ) -> Result<(), StoreError> {
        let mut jobs = Vec::new();
        for (c, claim) in claims.iter().enumerate() {
            let Claim::Subject {
                ws,
                subject,
                members,
                full,
                ..
            } = claim
            else {
                continue;
            };
            let yesterday = format!("{}#{}", subject_pk(ws, subject), plan.yesterday);
            if *full || full_days.contains(&yesterday) {
                for &i in members {
                    jobs.push(
                        async move {
                            let taken = self.take_marker(&plan.events[i], plan.now).await?;
                            Ok::<_, StoreError>((c, i, taken))
                        }
                        .boxed(),
                    );
                }
            }
        }
        let mut first_error = None;
        for r in run_all(jobs).await {
            match r {
                Ok((c, i, taken)) => {
                    if let Claim::Subject { marked, .. } = &mut claims[c] {
                        marked.insert(i, taken);
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The events among `found` whose message's dedup marker names them (an event of a day
    /// that was full: [`DynamoEventStore::touch_subject_day`]).
    pub(super) async fn with_marker(
        &self,
        ws: &WorkspaceId,
        found: &[&FoundEvent],
    ) -> Result<HashSet<EventId>, StoreError> {
        let mut by_marker: HashMap<String, Vec<EventId>> = HashMap::new();
        let mut keys = Vec::new();
        for f in found {
            let k = marker_key(ws, &f.packed.e.message_id);
            let pk = get_s(&k, "pk", FOOTPRINT)?.to_owned();
            let ids = by_marker.entry(pk).or_default();
            if ids.is_empty() {
                keys.push(k);
            }
            ids.push(f.packed.e.event_id);
        }
        if keys.is_empty() {
            return Ok(HashSet::new());
        }
        let markers = batch_get(&self.client, FOOTPRINT, &self.table, keys, true, None).await?;
        let mut out = HashSet::new();
        for m in &markers {
            let (pk, holder) = (get_s(m, "pk", FOOTPRINT)?, get_s(m, "event", FOOTPRINT)?);
            let ids = by_marker.get(pk).map_or(&[][..], Vec::as_slice);
            out.extend(ids.iter().filter(|id| hex_id(id) == holder));
        }
        Ok(out)
    }
}
