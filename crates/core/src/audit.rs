//! The tamper-evident audit log: every control-plane mutation appends an entry whose hash
//! covers the entry and the previous entry's hash (whitepaper §04).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::workspace::WorkspaceId;

/// The hash before the first entry of a workspace.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Audit entries are kept one year.
pub const RETENTION_DAYS: i64 = 365;

/// What a mutation records. `summary` never holds a secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewAuditEntry {
    pub workspace_id: WorkspaceId,
    /// `user:usr_…`, `svc:<key id>`, or `cli:<operator>`.
    pub actor: String,
    /// `api_key.create`, `destination.update`, `user.invite`, ...
    pub action: String,
    /// The object acted on (`dst_…`, a key id, `workspace`).
    pub target: String,
    pub summary: Value,
}

/// A stored entry of the hash chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub workspace_id: WorkspaceId,
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub summary: Value,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditEntry {
    /// Seals a new entry onto the chain after `prev` (None for the first).
    pub fn chain(new: NewAuditEntry, prev: Option<&AuditEntry>, time: OffsetDateTime) -> Self {
        let (seq, prev_hash) = match prev {
            Some(p) => (p.seq + 1, p.hash.clone()),
            None => (1, GENESIS.to_owned()),
        };
        let mut e = AuditEntry {
            workspace_id: new.workspace_id,
            seq,
            time,
            actor: new.actor,
            action: new.action,
            target: new.target,
            summary: new.summary,
            prev_hash,
            hash: String::new(),
        };
        e.hash = e.compute_hash();
        e
    }

    /// SHA-256(canonical entry ‖ prev_hash), hex.
    pub fn compute_hash(&self) -> String {
        let canonical = serde_json::json!({
            "workspace_id": self.workspace_id,
            "seq": self.seq,
            "time": self.time.format(&Rfc3339).unwrap_or_default(),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "summary": self.summary,
        });
        let mut h = Sha256::new();
        h.update(canonical.to_string().as_bytes());
        h.update(self.prev_hash.as_bytes());
        hex::encode(h.finalize())
    }
}

/// The result of walking a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub valid: bool,
    pub entries_checked: u64,
    /// The first entry whose hash or link does not hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_broken_seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Walks entries in order, continuing from `prev` (the last entry of an earlier page).
#[derive(Debug, Default)]
pub struct Verifier {
    prev: Option<(u64, String)>,
    checked: u64,
    broken: Option<(u64, String)>,
}

impl Verifier {
    pub fn feed(&mut self, e: &AuditEntry) {
        if self.broken.is_some() {
            return;
        }
        self.checked += 1;
        let (expected_seq, expected_prev) = match &self.prev {
            Some((seq, hash)) => (seq + 1, hash.as_str()),
            None => (
                e.seq.max(1),
                if e.seq <= 1 {
                    GENESIS
                } else {
                    e.prev_hash.as_str()
                },
            ),
        };
        let reason = if e.seq != expected_seq {
            Some(format!(
                "entry {} follows {}: an entry is missing",
                e.seq,
                expected_seq - 1
            ))
        } else if e.prev_hash != expected_prev {
            Some("prev_hash does not match the previous entry's hash".to_owned())
        } else if e.hash != e.compute_hash() {
            Some("the entry was changed after it was written".to_owned())
        } else {
            None
        };
        if let Some(r) = reason {
            self.broken = Some((e.seq, r));
        }
        self.prev = Some((e.seq, e.hash.clone()));
    }

    pub fn finish(self) -> Verification {
        Verification {
            valid: self.broken.is_none(),
            entries_checked: self.checked,
            first_broken_seq: self.broken.as_ref().map(|b| b.0),
            reason: self.broken.map(|b| b.1),
        }
    }
}

/// Which entries to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    /// Only entries with `seq > after` (paging).
    pub after: Option<u64>,
    pub limit: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::Region;
    use serde_json::json;
    use time::macros::datetime;

    fn entry(ws: &WorkspaceId, action: &str) -> NewAuditEntry {
        NewAuditEntry {
            workspace_id: ws.clone(),
            actor: "user:usr_1".into(),
            action: action.into(),
            target: "dst_1".into(),
            summary: json!({"name": "Meta"}),
        }
    }

    fn chain(n: usize) -> Vec<AuditEntry> {
        let ws = WorkspaceId::new(Region::Eu, "audit");
        let mut out: Vec<AuditEntry> = Vec::new();
        for i in 0..n {
            let e = AuditEntry::chain(
                entry(&ws, &format!("a{i}")),
                out.last(),
                datetime!(2026-05-01 12:00 UTC),
            );
            out.push(e);
        }
        out
    }

    fn verify(entries: &[AuditEntry]) -> Verification {
        let mut v = Verifier::default();
        for e in entries {
            v.feed(e);
        }
        v.finish()
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let v = verify(&chain(5));
        assert!(v.valid);
        assert_eq!(v.entries_checked, 5);
    }

    #[test]
    fn an_edited_summary_is_caught_at_its_entry() {
        let mut c = chain(5);
        c[2].summary = json!({"name": "Something else"});
        let v = verify(&c);
        assert!(!v.valid);
        assert_eq!(v.first_broken_seq, Some(3));
    }

    #[test]
    fn a_deleted_entry_is_caught() {
        let mut c = chain(5);
        c.remove(1);
        let v = verify(&c);
        assert_eq!(v.first_broken_seq, Some(3));
    }

    #[test]
    fn a_rehashed_entry_still_breaks_the_next_link() {
        let mut c = chain(4);
        c[1].actor = "user:intruder".into();
        c[1].hash = c[1].compute_hash();
        let v = verify(&c);
        assert_eq!(v.first_broken_seq, Some(3));
    }
}
