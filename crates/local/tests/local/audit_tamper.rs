//! The audit log against someone who can write the SQLite file (security review finding #4):
//! each case stops the store, edits the file with rusqlite, reopens it and verifies through
//! the real adapter. Rewrites without the audit key, deleted first or last rows, lowered
//! expiry or time columns and edited index columns must all be reported, at the right seq.

use std::path::PathBuf;
use std::sync::Arc;

use rusqlite::{params, Connection};
use tracklayer_core::audit::{AuditEntry, AuditFilter, NewAuditEntry};
use tracklayer_core::clock::SystemIds;
use tracklayer_core::ports::AuditLog;
use tracklayer_core::testkit::T0;
use tracklayer_core::workspace::{Region, WorkspaceId};
use tracklayer_local::{Db, FileKeyring, SqliteAuditLog};

/// One workspace's chain in a database file, written through the adapter, then closed.
struct Chain {
    dir: PathBuf,
    keyring: Arc<FileKeyring>,
    ws: WorkspaceId,
}

/// What verification said: valid, the first seq that failed, why.
type Verdict = (bool, Option<u64>, String);

fn open_log(db: Db, keyring: Arc<FileKeyring>) -> SqliteAuditLog {
    SqliteAuditLog::new(db, keyring)
}

async fn verify_log(log: &SqliteAuditLog, ws: &WorkspaceId) -> (Verdict, u64) {
    let v = tracklayer_core::audit::verify(log, ws).await.unwrap();
    (
        (v.valid, v.first_invalid_seq, v.reason.unwrap_or_default()),
        v.entries_checked,
    )
}

/// The legacy chain's hash: plain SHA-256 over the entry, what an intruder can recompute.
fn plain_hash(e: &AuditEntry) -> String {
    e.legacy_hash()
}

impl Chain {
    async fn with_entries(n: usize) -> Self {
        let dir = tempfile::tempdir().unwrap().keep();
        let master = dir.join("master.key");
        FileKeyring::create_master_key(&master, &SystemIds).unwrap();
        let keyring = Arc::new(
            FileKeyring::open(&master, dir.join("customer-keys"), Arc::new(SystemIds)).unwrap(),
        );
        let chain = Self {
            dir,
            keyring,
            ws: WorkspaceId::new(Region::Eu, "tamper"),
        };
        for i in 0..n {
            chain.append(&format!("a{i}"), i as i64).await;
        }
        chain
    }

    fn log(&self) -> SqliteAuditLog {
        open_log(
            Db::open(&self.dir.join("tracklayer.db")).unwrap(),
            self.keyring.clone(),
        )
    }

    /// Appends through a freshly opened store, which is closed again on return.
    async fn append(&self, action: &str, minutes: i64) -> AuditEntry {
        self.log()
            .append(
                NewAuditEntry {
                    workspace_id: self.ws.clone(),
                    actor: "user:usr_owner".into(),
                    action: action.into(),
                    target: "dst_1".into(),
                    summary: serde_json::json!({"role": "viewer"}),
                },
                T0 + time::Duration::minutes(minutes),
            )
            .await
            .unwrap()
    }

    /// Edits the database file directly, with the store closed.
    fn edit(&self, f: impl FnOnce(&Connection)) {
        let conn = Connection::open(self.dir.join("tracklayer.db")).unwrap();
        f(&conn);
    }

    fn seq_of(&self, action: &str) -> u64 {
        let mut seq = 0;
        self.edit(|c| {
            seq = c
                .query_row(
                    "SELECT seq FROM audit_log WHERE action = ?1",
                    [action],
                    |r| r.get::<_, i64>(0),
                )
                .unwrap() as u64;
        });
        seq
    }

    fn seqs(&self) -> Vec<u64> {
        let mut seqs = Vec::new();
        self.edit(|c| {
            let mut stmt = c.prepare("SELECT seq FROM audit_log ORDER BY seq").unwrap();
            seqs = stmt
                .query_map([], |r| r.get::<_, i64>(0))
                .unwrap()
                .map(|s| s.unwrap() as u64)
                .collect();
        });
        seqs
    }

    async fn verify(&self) -> (Verdict, u64) {
        verify_log(&self.log(), &self.ws).await
    }

    async fn list(&self, now: time::OffsetDateTime) -> Vec<AuditEntry> {
        let filter = AuditFilter {
            limit: 100,
            ..Default::default()
        };
        self.log().list(&self.ws, &filter, now).await.unwrap()
    }
}

#[tokio::test]
async fn an_entry_rewritten_with_recomputed_plain_hashes_is_an_hmac_mismatch_at_its_seq() {
    let chain = Chain::with_entries(5).await;
    let target = chain.seq_of("a2");
    chain.edit(|c| {
        let mut stmt = c
            .prepare("SELECT doc FROM audit_log WHERE seq >= ?1 ORDER BY seq")
            .unwrap();
        let docs: Vec<String> = stmt
            .query_map([target as i64], |r| r.get(0))
            .unwrap()
            .map(|d| d.unwrap())
            .collect();
        let mut prev: Option<String> = None;
        for doc in docs {
            let mut e: AuditEntry = serde_json::from_str(&doc).unwrap();
            if e.seq == target {
                e.actor = "user:usr_somebody_else".into();
            }
            if let Some(p) = prev.take() {
                e.prev_hash = p;
            }
            e.hash = plain_hash(&e);
            prev = Some(e.hash.clone());
            c.execute(
                "UPDATE audit_log SET doc = ?1, actor = ?2 WHERE seq = ?3",
                params![serde_json::to_string(&e).unwrap(), e.actor, e.seq as i64],
            )
            .unwrap();
            // The intruder moves the head record along too, where there is one.
            let _ = c.execute(
                "UPDATE audit_head SET doc = json_set(doc, '$.hash', ?1)",
                [&e.hash],
            );
        }
    });
    let ((valid, seq, reason), _) = chain.verify().await;
    assert!(!valid);
    assert_eq!(seq, Some(target));
    assert_eq!(reason, "hmac mismatch");
}

#[tokio::test]
async fn deleting_the_first_entries_is_reported_as_the_first_missing_seq() {
    let chain = Chain::with_entries(5).await;
    let first = chain.seqs()[0];
    assert_eq!(first, 1);
    chain.edit(|c| {
        c.execute("DELETE FROM audit_log WHERE seq <= 2", [])
            .unwrap();
    });
    let ((valid, seq, reason), _) = chain.verify().await;
    assert!(!valid, "{reason}");
    assert_eq!(seq, Some(1));
    assert!(reason.contains("missing"), "{reason}");
}

#[tokio::test]
async fn deleting_the_last_entry_is_reported_and_its_seq_is_never_reused() {
    let chain = Chain::with_entries(5).await;
    let last = *chain.seqs().last().unwrap();
    chain.edit(|c| {
        c.execute("DELETE FROM audit_log WHERE seq = ?1", [last as i64])
            .unwrap();
    });
    let ((valid, seq, reason), _) = chain.verify().await;
    assert!(!valid, "{reason}");
    assert_eq!(seq, Some(last));

    let next = chain.append("after", 60).await;
    assert_eq!(next.seq, last + 1, "the head keeps the deleted seq taken");
    let ((valid, seq, _), _) = chain.verify().await;
    assert!(!valid);
    assert_eq!(seq, Some(last));
}

#[tokio::test]
async fn a_lowered_expires_at_neither_hides_an_entry_nor_lets_the_sweeper_delete_it() {
    let chain = Chain::with_entries(5).await;
    let total = chain.seqs().len();
    chain.edit(|c| {
        c.execute("UPDATE audit_log SET expires_at = 0", [])
            .unwrap();
    });
    let day1 = T0 + time::Duration::days(1);
    assert_eq!(
        chain.list(day1).await.len(),
        5,
        "every mutation younger than a year is listed"
    );
    chain.log().sweep(day1).await.unwrap();
    assert_eq!(chain.seqs().len(), total, "and none is swept");
    let ((valid, _, reason), checked) = chain.verify().await;
    assert!(valid, "{reason}");
    assert_eq!(checked, total as u64, "every entry is verified");
}

/// An edited column breaks verification at the edited entry, and the reason names the column:
/// a lowered time (which hides the entry from listing) or another actor.
#[tokio::test]
async fn an_edited_time_or_actor_column_breaks_verification_at_its_seq() {
    let cases = [
        ("a3", "UPDATE audit_log SET at = 0 WHERE seq = ?1", "time"),
        (
            "a1",
            "UPDATE audit_log SET actor = 'user:usr_somebody_else' WHERE seq = ?1",
            "actor",
        ),
    ];
    for (action, edit, column) in cases {
        let chain = Chain::with_entries(5).await;
        let target = chain.seq_of(action);
        chain.edit(|c| {
            c.execute(edit, [target as i64]).unwrap();
        });
        let ((valid, seq, reason), _) = chain.verify().await;
        assert!(!valid, "{edit}");
        assert_eq!(seq, Some(target), "{edit}");
        assert!(reason.contains(column), "{reason}");
    }
}

#[tokio::test]
async fn an_edited_actor_in_the_entry_itself_breaks_verification_at_its_seq() {
    let chain = Chain::with_entries(3).await;
    let target = chain.seq_of("a1");
    chain.edit(|c| {
        let doc: String = c
            .query_row(
                "SELECT doc FROM audit_log WHERE seq = ?1",
                [target as i64],
                |r| r.get(0),
            )
            .unwrap();
        c.execute(
            "UPDATE audit_log SET doc = ?1 WHERE seq = ?2",
            params![
                doc.replace("user:usr_owner", "user:usr_somebody_else"),
                target as i64
            ],
        )
        .unwrap();
    });
    let ((valid, seq, _), _) = chain.verify().await;
    assert!(!valid);
    assert_eq!(seq, Some(target));
}

/// A database written before the keyed chain: plain-hash entries, no head.
async fn legacy_chain(n: u64) -> Chain {
    let chain = Chain::with_entries(0).await;
    drop(chain.log()); // creates the schema
    chain.edit(|c| {
        let mut prev: Option<AuditEntry> = None;
        for i in 0..n {
            let e = AuditEntry::legacy(
                NewAuditEntry {
                    workspace_id: chain.ws.clone(),
                    actor: "user:usr_owner".into(),
                    action: format!("legacy{i}"),
                    target: "dst_1".into(),
                    summary: serde_json::json!({}),
                },
                prev.as_ref(),
                T0,
            );
            c.execute(
                "INSERT INTO audit_log (workspace_id, seq, at, actor, action, expires_at, doc)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    chain.ws.as_str(),
                    e.seq as i64,
                    tracklayer_core::clock::unix_millis(e.time),
                    e.actor,
                    e.action,
                    i64::MAX,
                    serde_json::to_string(&e).unwrap()
                ],
            )
            .unwrap();
            prev = Some(e);
        }
    });
    chain
}

#[tokio::test]
async fn a_legacy_chain_verifies_as_before_until_its_first_keyed_entry_checkpoints_it() {
    let chain = legacy_chain(3).await;
    let v = tracklayer_core::audit::verify(&chain.log(), &chain.ws)
        .await
        .unwrap();
    assert!(v.valid && !v.keyed, "{v:?}");

    let first_keyed = chain.append("after.upgrade", 10).await;
    assert_eq!(first_keyed.seq, 5, "seq 4 is the genesis entry");
    let genesis = &chain.log().stored(&chain.ws, 3, 1).await.unwrap()[0].entry;
    assert_eq!(genesis.action, tracklayer_core::audit::GENESIS_ACTION);
    assert_eq!(genesis.summary["legacy_seq"], 3);
    let v = tracklayer_core::audit::verify(&chain.log(), &chain.ws)
        .await
        .unwrap();
    assert!(v.valid && v.keyed, "{v:?}");
    assert_eq!(v.entries_checked, 5);
}

#[tokio::test]
async fn a_legacy_entry_rewritten_after_migration_breaks_the_link_to_the_genesis_entry() {
    let chain = legacy_chain(3).await;
    chain.append("after.upgrade", 10).await;
    chain.edit(|c| {
        let mut prev: Option<String> = None;
        for seq in 2..=3i64 {
            let doc: String = c
                .query_row("SELECT doc FROM audit_log WHERE seq = ?1", [seq], |r| {
                    r.get(0)
                })
                .unwrap();
            let mut e: AuditEntry = serde_json::from_str(&doc).unwrap();
            if seq == 2 {
                e.target = "dst_other".into();
            }
            if let Some(p) = prev.take() {
                e.prev_hash = p;
            }
            e.hash = e.legacy_hash();
            prev = Some(e.hash.clone());
            c.execute(
                "UPDATE audit_log SET doc = ?1 WHERE seq = ?2",
                params![serde_json::to_string(&e).unwrap(), seq],
            )
            .unwrap();
        }
    });
    let ((valid, seq, reason), _) = chain.verify().await;
    assert!(!valid);
    assert_eq!(seq, Some(4), "the genesis entry no longer links: {reason}");
}
