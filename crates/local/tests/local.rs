//! The embedded adapters: every port contract suite, plus what only SQLite and files can show.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tracklayer_core::clock::{FixedClock, SystemIds};
use tracklayer_core::ports::{DeliveryQueue, EventStore, Keyring, Mail, Mailer};
use tracklayer_core::testkit::{self, QueueHarness, T0};
use tracklayer_core::workspace::{KeyRef, Region, WorkspaceId};
use tracklayer_local::{
    Db, FileKeyring, OutboxMailer, SqliteControlStore, SqliteDeliveryQueue, SqliteEventStore,
};

#[path = "local/dsr_service.rs"]
mod dsr_service;

struct LocalQueue {
    queue: SqliteDeliveryQueue,
    clock: Arc<FixedClock>,
}

#[async_trait]
impl QueueHarness for LocalQueue {
    fn queue(&self) -> &dyn DeliveryQueue {
        &self.queue
    }
    async fn advance(&self, by: Duration) {
        self.clock
            .advance(time::Duration::try_from(by).expect("small duration"));
    }
    fn max_receive_count(&self) -> u32 {
        3
    }
}

async fn local_queue() -> LocalQueue {
    let clock = Arc::new(FixedClock::new(T0));
    LocalQueue {
        queue: SqliteDeliveryQueue::new(
            Db::in_memory().unwrap(),
            clock.clone(),
            Arc::new(SystemIds),
            3,
        ),
        clock,
    }
}

fn keep_dir() -> std::path::PathBuf {
    tempfile::tempdir().unwrap().keep()
}

async fn file_keyring() -> FileKeyring {
    let dir = keep_dir();
    let master = dir.join("master.key");
    FileKeyring::create_master_key(&master, &SystemIds).unwrap();
    FileKeyring::open(&master, dir.join("customer-keys"), Arc::new(SystemIds)).unwrap()
}

async fn outbox() -> OutboxMailer {
    OutboxMailer::new(
        keep_dir().join("outbox"),
        "TrackLayer <noreply@tracklayer.local>".into(),
        Arc::new(FixedClock::new(T0)),
        Arc::new(SystemIds),
    )
}

mod control_store {
    use super::*;
    tracklayer_core::control_store_contract!(async {
        SqliteControlStore::new(Db::in_memory().unwrap())
    });
}

mod users {
    use super::*;
    tracklayer_core::users_contract!(async { SqliteControlStore::new(Db::in_memory().unwrap()) });
}

mod audit_log {
    use super::*;
    tracklayer_core::audit_log_contract!(async {
        tracklayer_local::SqliteAuditLog::new(Db::in_memory().unwrap())
    });
}

mod event_store {
    use super::*;
    tracklayer_core::event_store_contract!(async {
        SqliteEventStore::new(Db::in_memory().unwrap())
    });
}

mod delivery_queue {
    use super::*;
    tracklayer_core::delivery_queue_contract!(local_queue());
}

mod delivery_queue_erasure {
    use super::*;
    tracklayer_core::delivery_queue_erasure_contract!(local_queue());
}

mod event_store_erasure {
    use super::*;
    tracklayer_core::event_store_erasure_contract!(async {
        SqliteEventStore::new(Db::in_memory().unwrap())
    });
}

mod delivery_log_erasure {
    use super::*;
    tracklayer_core::delivery_log_erasure_contract!(async {
        tracklayer_local::SqliteDeliveryLog::new(Db::in_memory().unwrap())
    });
}

mod dsr_store {
    use super::*;
    tracklayer_core::dsr_store_contract!(async {
        tracklayer_local::SqliteDsrStore::new(Db::in_memory().unwrap())
    });
}

mod delivery_log {
    use super::*;
    tracklayer_core::delivery_log_contract!(async {
        tracklayer_local::SqliteDeliveryLog::new(Db::in_memory().unwrap())
    });
}

mod keyring {
    use super::*;
    tracklayer_core::keyring_contract!(file_keyring());
}

mod mailer {
    use super::*;
    tracklayer_core::mailer_contract!(outbox());
}

#[tokio::test]
async fn the_sweeper_deletes_expired_rows_from_disk() {
    let store = SqliteEventStore::new(Db::in_memory().unwrap());
    let ws = WorkspaceId::new(Region::Us, &testkit::unique());
    store
        .record(&[testkit::new_event(&ws, "m-1", &["s"], T0)], T0)
        .await
        .unwrap();
    assert_eq!(
        store.sweep(T0 + time::Duration::days(2)).await.unwrap(),
        1,
        "only the dedup marker"
    );
    let deleted = store.sweep(T0 + time::Duration::days(181)).await.unwrap();
    assert_eq!(
        deleted, 3,
        "event, subject index entry and operational record"
    );
}

#[tokio::test]
async fn a_customer_key_file_unlocks_byok_until_it_is_removed() {
    let dir = keep_dir();
    let master = dir.join("master.key");
    FileKeyring::create_master_key(&master, &SystemIds).unwrap();
    let customer_dir = dir.join("customer-keys");
    std::fs::create_dir_all(&customer_dir).unwrap();
    let arn = "arn:aws:kms:eu-central-1:111122223333:key/abc";
    let file = customer_dir.join("arn_aws_kms_eu-central-1_111122223333_key_abc.key");
    std::fs::write(&file, [5u8; 32]).unwrap();
    let k = FileKeyring::open(&master, customer_dir, Arc::new(SystemIds)).unwrap();
    let ws = WorkspaceId::new(Region::Eu, "byok");
    let key = KeyRef::Customer {
        key_arn: arn.into(),
    };
    let (plain, wrapped) = k.generate_data_key(&ws, &key).await.unwrap();
    assert_eq!(
        k.unwrap_data_key(&ws, &key, &wrapped)
            .await
            .unwrap()
            .expose(),
        plain.expose()
    );
    std::fs::remove_file(&file).unwrap();
    let err = k.unwrap_data_key(&ws, &key, &wrapped).await.unwrap_err();
    assert!(matches!(
        err,
        tracklayer_core::error::KeyError::Unavailable(_)
    ));
}

#[cfg(unix)]
#[test]
fn the_master_key_file_is_private_and_a_readable_one_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = keep_dir();
    let master = dir.join("master.key");
    FileKeyring::create_master_key(&master, &SystemIds).unwrap();
    let mode = std::fs::metadata(&master).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    std::fs::set_permissions(&master, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = FileKeyring::open(&master, dir.join("c"), Arc::new(SystemIds)).unwrap_err();
    assert!(err.to_string().contains("chmod 600"), "{err}");
}

#[tokio::test]
async fn the_outbox_holds_one_eml_file_per_mail() {
    let dir = keep_dir().join("outbox");
    let m = OutboxMailer::new(
        dir.clone(),
        "TrackLayer <noreply@tracklayer.local>".into(),
        Arc::new(FixedClock::new(T0)),
        Arc::new(SystemIds),
    );
    m.send(&Mail {
        to: vec!["admin@example.com".into()],
        subject: "Erasure completed".into(),
        text: "Request dsr_1 completed.".into(),
    })
    .await
    .unwrap();
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(text.contains("To: admin@example.com\r\n"));
    assert!(text.contains("Subject: Erasure completed\r\n"));
    assert!(text.ends_with("Request dsr_1 completed.\r\n"));
}

#[tokio::test]
async fn a_header_injection_in_a_subject_is_refused() {
    let m = outbox().await;
    let err = m
        .send(&Mail {
            to: vec!["admin@example.com".into()],
            subject: "hi\r\nBcc: attacker@example.com".into(),
            text: String::new(),
        })
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        tracklayer_core::error::MailError::Rejected(_)
    ));
}

#[tokio::test]
async fn editing_a_stored_audit_row_is_caught_by_verification() {
    use tracklayer_core::audit::{AuditFilter, NewAuditEntry, Verifier};
    use tracklayer_core::ports::AuditLog;
    let dir = keep_dir();
    let db = Db::open(&dir.join("audit.db")).unwrap();
    let log = tracklayer_local::SqliteAuditLog::new(db);
    let ws = WorkspaceId::new(Region::Eu, "tamper");
    for action in ["user.invite", "api_key.create", "destination.update"] {
        log.append(
            NewAuditEntry {
                workspace_id: ws.clone(),
                actor: "user:usr_owner".into(),
                action: action.into(),
                target: "x".into(),
                summary: serde_json::json!({"role": "viewer"}),
            },
            T0,
        )
        .await
        .unwrap();
    }
    // Someone with database access rewrites history.
    let conn = rusqlite::Connection::open(dir.join("audit.db")).unwrap();
    let doc: String = conn
        .query_row("SELECT doc FROM audit_log WHERE seq = 2", [], |r| r.get(0))
        .unwrap();
    conn.execute(
        "UPDATE audit_log SET doc = ?1 WHERE seq = 2",
        [doc.replace("viewer", "admin")],
    )
    .unwrap();
    let all = log
        .list(
            &ws,
            &AuditFilter {
                limit: 10,
                ..Default::default()
            },
            T0,
        )
        .await
        .unwrap();
    let mut v = Verifier::default();
    all.iter().for_each(|e| v.feed(e));
    let report = v.finish();
    assert!(!report.valid);
    assert_eq!(report.first_broken_seq, Some(2));
}
