//! Walking a chain: from its checkpoint (or its first entry) to its head, checking sequence
//! contiguity, each link, each entry's MAC, the store's index attributes, the genesis entry,
//! the checkpoint's signature and that the last entry is the one the head records. Also which
//! entries retention may remove (the same checks, so a tampered entry is never laundered
//! into a signed checkpoint).

use time::OffsetDateTime;

use super::key::{store_error, AuditKey};
use super::{
    AuditEntry, AuditHead, Checkpoint, StoredEntry, Verification, GENESIS, GENESIS_ACTION,
};
use crate::error::{KeyError, StoreError};
use crate::ports::AuditLog;
use crate::workspace::WorkspaceId;

/// Entries read per page while verifying.
const PAGE: usize = 1000;

/// Walks stored entries in seq order; see the module doc.
#[derive(Debug)]
pub struct Verifier {
    ws: WorkspaceId,
    /// The chain's key and genesis seq; `None` for a legacy chain without a head.
    keyed: Option<(AuditKey, u64)>,
    /// Entries at or below it were retired behind the checkpoint (a crash may leave some).
    floor: u64,
    /// The next seq and its `prev_hash`; `None` until the first entry of a legacy prefix,
    /// whose predecessor may have expired under the legacy retention.
    expect: Option<(u64, String)>,
    checked: u64,
    broken: Option<(u64, String)>,
}

impl Verifier {
    /// A legacy chain (no head yet): plain hashes, the first remaining entry is trusted.
    pub fn legacy(ws: &WorkspaceId) -> Self {
        Self {
            ws: ws.clone(),
            keyed: None,
            floor: 0,
            expect: None,
            checked: 0,
            broken: None,
        }
    }

    /// A keyed chain, from its checkpoint if retention cut it, else from seq 1.
    pub fn anchored(ws: &WorkspaceId, head: &AuditHead, key: AuditKey) -> Self {
        let mut v = Self {
            ws: ws.clone(),
            keyed: Some((key, head.genesis_seq)),
            floor: 0,
            expect: (head.genesis_seq == 1).then(|| (1, GENESIS.to_owned())),
            checked: 0,
            broken: None,
        };
        if let Some(cp) = &head.checkpoint {
            let key = &v.keyed.as_ref().expect("set above").0;
            if !cp.holds(ws, key) {
                v.broken = Some((
                    cp.seq + 1,
                    "the retention checkpoint's signature does not hold".into(),
                ));
            }
            v.floor = cp.seq;
            v.expect = Some((cp.seq + 1, cp.hash.clone()));
        }
        v
    }

    pub fn feed(&mut self, s: &StoredEntry) {
        let e = &s.entry;
        if self.broken.is_some() || e.seq <= self.floor {
            return;
        }
        self.checked += 1;
        // Legacy entries expired by the store's TTL (DynamoDB's, on its own schedule) may be
        // missing anywhere before the genesis entry: the legacy part was never anchored, so
        // its first remaining entry is trusted as before; the genesis entry links the rest.
        if let (Some((next, _)), Some((_, genesis))) = (&self.expect, &self.keyed) {
            if next < genesis && e.seq > *next && e.seq <= *genesis {
                self.expect = None;
            }
        }
        if let Some((seq, reason)) = self.check(s) {
            self.broken = Some((seq, reason));
        }
        self.expect = Some((e.seq + 1, e.hash.clone()));
    }

    fn check(&self, s: &StoredEntry) -> Option<(u64, String)> {
        let e = &s.entry;
        match &self.expect {
            Some((seq, _)) if e.seq > *seq => {
                return Some((
                    *seq,
                    format!("entry {seq} is missing (the next is {})", e.seq),
                ))
            }
            Some((seq, _)) if e.seq < *seq => {
                return Some((e.seq, "entry out of sequence".into()));
            }
            None => match &self.keyed {
                Some((_, genesis)) if e.seq > *genesis => {
                    return Some((*genesis, format!("the genesis entry {genesis} is missing")));
                }
                _ => {}
            },
            _ => {}
        }
        if e.workspace_id != self.ws {
            return Some((e.seq, "the entry belongs to another workspace".into()));
        }
        if let Some((_, prev)) = &self.expect {
            if &e.prev_hash != prev {
                return Some((e.seq, "prev_hash does not match the previous entry".into()));
            }
        }
        match &self.keyed {
            Some((key, genesis)) if e.seq >= *genesis => {
                if !key.verify(
                    &[b"entry", e_canonical(e).as_bytes(), e.prev_hash.as_bytes()],
                    &e.hash,
                ) {
                    return Some((e.seq, "hmac mismatch".into()));
                }
                if (e.seq == *genesis) != (e.action == GENESIS_ACTION) {
                    return Some((e.seq, "the genesis entry is not where the head says".into()));
                }
            }
            _ => {
                if e.hash != e.legacy_hash() {
                    return Some((e.seq, "hash mismatch (legacy entry)".into()));
                }
            }
        }
        if let Some(attr) = s.index_mismatch {
            return Some((
                e.seq,
                format!("the store's {attr} attribute does not match the sealed entry"),
            ));
        }
        None
    }

    /// The verdict, checking that the last entry is the head's.
    pub fn finish(mut self, head: Option<&AuditHead>) -> Verification {
        if let (None, Some(h)) = (&self.broken, head) {
            match &self.expect {
                None => {
                    self.broken = Some((
                        h.genesis_seq,
                        format!(
                            "entry {} is missing: the chain is empty but its head records seq {}",
                            h.genesis_seq, h.seq
                        ),
                    ));
                }
                Some((next, hash)) => {
                    let last = next - 1;
                    if last < h.seq {
                        self.broken = Some((
                            next.to_owned(),
                            format!("entry {next} is missing: the head records seq {}", h.seq),
                        ));
                    } else if last > h.seq {
                        self.broken = Some((
                            h.seq + 1,
                            format!("entry {} is beyond the head (seq {})", h.seq + 1, h.seq),
                        ));
                    } else if hash != &h.hash {
                        self.broken =
                            Some((last, "the head's hash does not match the last entry".into()));
                    }
                }
            }
        }
        Verification {
            valid: self.broken.is_none(),
            entries_checked: self.checked,
            first_invalid_seq: self.broken.as_ref().map(|b| b.0),
            reason: self.broken.map(|b| b.1),
            keyed: self.keyed.is_some(),
        }
    }
}

fn e_canonical(e: &AuditEntry) -> String {
    e.canonical()
}

/// Verifies a workspace's whole chain as its store holds it (expired or not).
pub async fn verify(log: &dyn AuditLog, ws: &WorkspaceId) -> Result<Verification, StoreError> {
    let head = log.head(ws).await?;
    let mut v = match &head {
        None => Verifier::legacy(ws),
        Some(h) => match log.keys().open(ws, &h.key).await {
            Ok(key) => Verifier::anchored(ws, h, key),
            Err(KeyError::Invalid(_)) => {
                return Ok(Verification {
                    valid: false,
                    entries_checked: 0,
                    first_invalid_seq: Some(h.genesis_seq),
                    reason: Some("the head's audit key does not open with the platform key".into()),
                    keyed: true,
                })
            }
            Err(e) => return Err(store_error("audit_verify", e)),
        },
    };
    let mut after = 0;
    loop {
        let page = log.stored(ws, after, PAGE).await?;
        page.iter().for_each(|s| v.feed(s));
        match page.last() {
            Some(last) if page.len() == PAGE => after = last.entry.seq,
            _ => break,
        }
    }
    Ok(v.finish(head.as_ref()))
}

/// The checkpoint retention may sign: the last of the leading `stored` entries (seq order,
/// from the head's checkpoint on) that are all older than the retention at `now` and all
/// verify. `None` when there is nothing to remove.
pub fn plan_retirement(
    ws: &WorkspaceId,
    head: &AuditHead,
    key: &AuditKey,
    stored: &[StoredEntry],
    now: OffsetDateTime,
) -> Option<Checkpoint> {
    let mut v = Verifier::anchored(ws, head, key.clone());
    let mut last = None;
    for s in stored {
        if s.entry.seq <= v.floor {
            continue;
        }
        if s.entry.is_retained(now) {
            break;
        }
        v.feed(s);
        if v.broken.is_some() {
            break;
        }
        last = Some(&s.entry);
    }
    last.map(|e| Checkpoint::sign(e, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::NewAuditEntry;
    use crate::crypto::{DataKey, WrappedKey};
    use crate::workspace::Region;
    use serde_json::json;
    use time::macros::datetime;

    const T: OffsetDateTime = datetime!(2026-05-01 12:00 UTC);

    fn key() -> AuditKey {
        AuditKey::new(&DataKey::from_bytes([9; 32]))
    }

    fn stored(e: &AuditEntry) -> StoredEntry {
        StoredEntry::new(
            e.clone(),
            e.seq,
            crate::clock::unix_millis(e.time),
            &e.actor,
            &e.action,
        )
    }

    fn chain(n: usize) -> (WorkspaceId, AuditHead, Vec<AuditEntry>) {
        let ws = WorkspaceId::new(Region::Eu, "audit");
        let k = key();
        let mut out = vec![AuditEntry::genesis(&ws, None, T, &k)];
        for i in 1..n {
            let prev = out.last().unwrap();
            let e = AuditEntry::seal(
                NewAuditEntry {
                    workspace_id: ws.clone(),
                    actor: "user:usr_1".into(),
                    action: format!("a{i}"),
                    target: "dst_1".into(),
                    summary: json!({"name": "Meta"}),
                },
                (prev.seq, &prev.hash),
                T + time::Duration::days(i as i64),
                &k,
            );
            out.push(e);
        }
        let head = head_at(out.last().unwrap(), 1, None);
        (ws, head, out)
    }

    /// A head whose tip is `tip`.
    fn head_at(tip: &AuditEntry, genesis_seq: u64, checkpoint: Option<Checkpoint>) -> AuditHead {
        AuditHead {
            seq: tip.seq,
            hash: tip.hash.clone(),
            genesis_seq,
            key: WrappedKey(vec![1]),
            checkpoint,
        }
    }

    fn run(ws: &WorkspaceId, head: &AuditHead, entries: &[AuditEntry]) -> Verification {
        let mut v = Verifier::anchored(ws, head, key());
        entries.iter().for_each(|e| v.feed(&stored(e)));
        v.finish(Some(head))
    }

    #[test]
    fn an_untouched_keyed_chain_verifies() {
        let (ws, head, c) = chain(5);
        let v = run(&ws, &head, &c);
        assert!(v.valid, "{v:?}");
        assert_eq!(v.entries_checked, 5);
    }

    #[test]
    fn an_entry_rehashed_without_the_key_is_an_hmac_mismatch() {
        let (ws, mut head, mut c) = chain(4);
        c[1].actor = "user:intruder".into();
        // Recompute every following "hash" the way the legacy chain did.
        for i in 1..c.len() {
            c[i].prev_hash = c[i - 1].hash.clone();
            c[i].hash = c[i].legacy_hash();
        }
        head.hash = c[3].hash.clone();
        let v = run(&ws, &head, &c);
        assert_eq!(
            (v.first_invalid_seq, v.reason.as_deref()),
            (Some(2), Some("hmac mismatch"))
        );
    }

    #[test]
    fn legacy_entries_may_be_missing_before_the_genesis_entry_but_not_after_it() {
        let ws = WorkspaceId::new(Region::Eu, "audit");
        let k = key();
        let new = |action: &str| NewAuditEntry {
            workspace_id: ws.clone(),
            actor: "user:usr_1".into(),
            action: action.into(),
            target: "dst_1".into(),
            summary: json!({}),
        };
        let mut c = vec![AuditEntry::legacy(new("l1"), None, T)];
        for i in 2..=4 {
            let e = AuditEntry::legacy(new(&format!("l{i}")), c.last(), T);
            c.push(e);
        }
        let last = c.last().unwrap().clone();
        c.push(AuditEntry::genesis(
            &ws,
            Some((last.seq, &last.hash)),
            T,
            &k,
        ));
        let g = c.last().unwrap().clone();
        c.push(AuditEntry::seal(new("k1"), (g.seq, &g.hash), T, &k));
        let head = head_at(c.last().unwrap(), 5, Some(Checkpoint::sign(&c[0], &k)));
        let without = |gone: &[u64]| -> Vec<AuditEntry> {
            c.iter()
                .filter(|e| !gone.contains(&e.seq))
                .cloned()
                .collect()
        };
        assert!(
            run(&ws, &head, &without(&[1, 2])).valid,
            "expired after the checkpoint"
        );
        assert!(
            run(&ws, &head, &without(&[3, 4])).valid,
            "expired up to the genesis"
        );
        assert_eq!(run(&ws, &head, &without(&[5])).first_invalid_seq, Some(5));
    }

    #[test]
    fn a_retirement_checkpoint_covers_only_verified_entries_older_than_a_year() {
        let (ws, mut head, c) = chain(5);
        let now = T + time::Duration::days(365 + 2) + time::Duration::hours(1);
        let all: Vec<_> = c.iter().map(stored).collect();
        let cp = plan_retirement(&ws, &head, &key(), &all, now).unwrap();
        assert_eq!(
            cp.seq, 3,
            "entries of day 0, 1 and 2 are past the retention"
        );
        head.checkpoint = Some(cp);
        let v = run(&ws, &head, &c[3..]);
        assert!(v.valid, "{v:?}");
        let mut forged = head.clone();
        forged.checkpoint.as_mut().unwrap().seq = 4;
        let v = run(&ws, &forged, &c[4..]);
        assert_eq!(v.first_invalid_seq, Some(5));
    }
}
