//! The embedded adapters: every port contract suite, plus what only SQLite and files can show.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tracklayer_core::clock::{FixedClock, SystemIds};
use tracklayer_core::ingest::{parse_body, Endpoint, IngestOutcome, RequestMeta};
use tracklayer_core::ports::{
    DeliveryQueue, EventEraser, EventReader, EventWriter, Keyring, Mail, Mailer, Page,
};
use tracklayer_core::testkit::{self, QueueHarness, T0};
use tracklayer_core::workspace::{KeyRef, Region, WorkspaceId};
use tracklayer_local::{
    Db, FileKeyring, OutboxMailer, SqliteControlStore, SqliteDeliveryQueue, SqliteEventStore,
};

#[path = "local/audit_tamper.rs"]
mod audit_tamper;
#[path = "local/by_reference.rs"]
mod by_reference;
#[path = "local/delivery_service.rs"]
mod delivery_service;
#[path = "local/dsr_service.rs"]
mod dsr_service;
#[path = "local/event_record_size.rs"]
mod event_record_size;
#[path = "local/older_layouts.rs"]
mod older_layouts;
#[path = "local/release_features.rs"]
mod release_features;
#[path = "local/shared_sealed.rs"]
mod shared_sealed;
#[path = "local/sign_in.rs"]
mod sign_in;
#[path = "local/stats_counting.rs"]
mod stats_counting;

/// A SQLite stack with one workspace, bootstrapped as `init` does, a Meta destination and an
/// ingest service: what the delivery and DSR service tests start from.
struct MetaWorkspace {
    _dir: tempfile::TempDir,
    db: Db,
    clock: Arc<FixedClock>,
    keyring: Arc<FileKeyring>,
    control: Arc<SqliteControlStore>,
    events: Arc<SqliteEventStore>,
    queue: Arc<SqliteDeliveryQueue>,
    dsr: Arc<tracklayer_local::SqliteDsrStore>,
    stats: Arc<tracklayer_local::SqliteStats>,
    log: Arc<tracklayer_local::SqliteDeliveryLog>,
    ingest: tracklayer_core::ingest::IngestService,
    workspace: tracklayer_core::workspace::Workspace,
    write_key: String,
    destination: tracklayer_core::destination::DestinationId,
}

impl MetaWorkspace {
    /// The workspace `name`, its Meta destination holding `access_token`, at [`T0`].
    async fn new(name: &str, access_token: &str) -> Self {
        use tracklayer_core::destination::DestinationKind;
        use tracklayer_core::ingest::{IngestConfig, IngestPorts, IngestService};
        use tracklayer_core::services::ReadPorts;

        let dir = tempfile::tempdir().unwrap();
        let keyring = Arc::new(keyring_in(dir.path(), "c"));
        let db = Db::in_memory().unwrap();
        let clock = Arc::new(FixedClock::new(T0));
        let control = Arc::new(SqliteControlStore::new(db.clone()));
        let events = Arc::new(SqliteEventStore::new(db.clone()));
        let queue = Arc::new(SqliteDeliveryQueue::new(
            db.clone(),
            clock.clone(),
            Arc::new(SystemIds),
            8,
        ));
        let dsr = Arc::new(tracklayer_local::SqliteDsrStore::new(db.clone()));
        let stats = Arc::new(tracklayer_local::SqliteStats::new(db.clone()));
        let log = Arc::new(tracklayer_local::SqliteDeliveryLog::new(db.clone()));
        let boot_control = tracklayer_core::control_plane::Control {
            store: control.as_ref(),
            keyring: keyring.as_ref(),
            clock: clock.as_ref(),
            ids: &SystemIds,
        };
        let boot = boot_control.bootstrap(Region::Us, name).await.unwrap();
        let destination = add_destination(
            &boot_control,
            &boot.workspace,
            "Meta",
            DestinationKind::MetaCapi,
            serde_json::json!({"pixel_id": "1234567890", "api_version": "v21.0"}),
            serde_json::json!({ "access_token": access_token }),
        )
        .await;
        let ingest = IngestService::new(
            IngestPorts {
                read: ReadPorts {
                    control: control.clone(),
                    keyring: keyring.clone(),
                    clock: clock.clone(),
                    ids: Arc::new(SystemIds),
                },
                store: Arc::new(tracklayer_local::SqliteIngestStore::new(
                    db.clone(),
                    clock.clone(),
                )),
                suppressions: dsr.clone(),
                stats: stats.clone(),
            },
            IngestConfig::new(Region::Us),
        );
        Self {
            _dir: dir,
            db,
            clock,
            keyring,
            control,
            events,
            queue,
            dsr,
            stats,
            log,
            ingest,
            write_key: secrecy::ExposeSecret::expose_secret(&boot.write_key).to_owned(),
            workspace: boot.workspace,
            destination,
        }
    }
}

impl MetaWorkspace {
    /// The control plane over this stack's stores (to add destinations, users, keys).
    fn control_plane(&self) -> tracklayer_core::control_plane::Control<'_> {
        tracklayer_core::control_plane::Control {
            store: self.control.as_ref(),
            keyring: self.keyring.as_ref(),
            clock: self.clock.as_ref(),
            ids: &SystemIds,
        }
    }

    /// Ingests the Segment batch `body` with the write key, sent as a server sends it (no
    /// address or user agent of the request's own).
    async fn ingest_from_a_server(&self, body: &serde_json::Value) {
        let meta = RequestMeta {
            ip: None,
            user_agent: None,
            gpc: false,
            browser: false,
        };
        self.ingest_batch(body, &meta).await;
    }

    /// Ingests the Segment batch `body` with the write key, sent from a browser (the
    /// request's own address and user agent).
    async fn ingest_from_a_browser(&self, body: &serde_json::Value) -> IngestOutcome {
        let meta = RequestMeta {
            ip: Some("203.0.113.9".parse().unwrap()),
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Test/1.0".into()),
            gpc: false,
            browser: true,
        };
        self.ingest_batch(body, &meta).await
    }

    /// Ingests the Segment batch `body` with the write key and `meta`'s request facts.
    async fn ingest_batch(&self, body: &serde_json::Value, meta: &RequestMeta) -> IngestOutcome {
        let body = serde_json::to_vec(body).unwrap();
        let key = self.ingest.authenticate(&self.write_key).await.unwrap();
        self.ingest
            .ingest(&key, &parse_body(Endpoint::Batch, &body).unwrap(), meta)
            .await
            .unwrap()
    }

    /// The delivery service over this stack's stores, real connectors, `queue`, `egress`
    /// and `log`.
    fn delivery(
        &self,
        queue: Arc<SqliteDeliveryQueue>,
        egress: Arc<dyn tracklayer_core::ports::Egress>,
        log: Arc<dyn tracklayer_core::ports::DeliveryLog>,
        config: tracklayer_core::deliver::service::DeliveryConfig,
    ) -> Arc<tracklayer_core::deliver::service::DeliveryService> {
        use tracklayer_core::deliver::service::{DeliveryPorts, DeliveryService};
        use tracklayer_core::services::ReadPorts;
        Arc::new(DeliveryService::new(
            DeliveryPorts {
                read: ReadPorts {
                    control: self.control.clone(),
                    keyring: self.keyring.clone(),
                    clock: self.clock.clone(),
                    ids: Arc::new(SystemIds),
                },
                queue,
                log,
                events: self.events.clone(),
                egress,
                suppressions: self.dsr.clone(),
                connectors: tracklayer_connectors::connector,
                base_urls: tracklayer_connectors::default_base_url,
                stats: self.stats.clone(),
            },
            config,
        ))
    }

    /// The Meta destination as stored now.
    async fn meta_destination(&self) -> tracklayer_core::destination::Destination {
        use tracklayer_core::ports::ControlReader;
        self.control
            .destination(&self.workspace.id, &self.destination)
            .await
            .unwrap()
            .expect("the Meta destination is stored")
    }
}

/// Adds a destination of every event, unpaused, through the control plane.
async fn add_destination(
    control: &tracklayer_core::control_plane::Control<'_>,
    workspace: &tracklayer_core::workspace::Workspace,
    name: &str,
    kind: tracklayer_core::destination::DestinationKind,
    config: serde_json::Value,
    secrets: serde_json::Value,
) -> tracklayer_core::destination::DestinationId {
    use tracklayer_core::destination::{DestinationSpec, EventFilter};
    let spec = DestinationSpec {
        name: name.into(),
        kind,
        config,
        secrets,
        consent_purposes: None,
        events: EventFilter::All,
        endpoint: None,
        paused: false,
    };
    control.add_destination(workspace, spec).await.unwrap().id
}

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
    async fn dead_letters(
        &self,
        kind: tracklayer_core::destination::DestinationKind,
        limit: usize,
    ) -> Result<Vec<tracklayer_core::ports::DeadLetter>, tracklayer_core::error::StoreError> {
        self.queue.dead_letters(kind, limit).await
    }
}

async fn delivery_queue() -> LocalQueue {
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

/// The first column of every row `query` selects.
fn first_column<T: rusqlite::types::FromSql>(c: &rusqlite::Connection, query: &str) -> Vec<T> {
    c.prepare(query)
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn keep_dir() -> std::path::PathBuf {
    tempfile::tempdir().unwrap().keep()
}

/// A file keyring with a new master key in `dir` and its customer keys in `dir/<customer_keys>`.
fn keyring_in(dir: &std::path::Path, customer_keys: &str) -> FileKeyring {
    let master = dir.join("master.key");
    FileKeyring::create_master_key(&master, &SystemIds).unwrap();
    FileKeyring::open(&master, dir.join(customer_keys), Arc::new(SystemIds)).unwrap()
}

async fn keyring() -> FileKeyring {
    keyring_in(&keep_dir(), "customer-keys")
}

async fn mailer() -> OutboxMailer {
    OutboxMailer::new(
        keep_dir().join("outbox"),
        "TrackLayer <noreply@tracklayer.local>".into(),
        Arc::new(FixedClock::new(T0)),
        Arc::new(SystemIds),
    )
}

// ---------------------------------------------------------------------------------------------
// The contract suites, each case on a fresh in-memory database

async fn control_store() -> SqliteControlStore {
    SqliteControlStore::new(Db::in_memory().unwrap())
}

async fn event_store() -> SqliteEventStore {
    SqliteEventStore::new(Db::in_memory().unwrap())
}

async fn delivery_log() -> tracklayer_local::SqliteDeliveryLog {
    tracklayer_local::SqliteDeliveryLog::new(Db::in_memory().unwrap())
}

async fn audit_log() -> tracklayer_local::SqliteAuditLog {
    tracklayer_local::SqliteAuditLog::new(Db::in_memory().unwrap(), Arc::new(keyring().await))
}

async fn dsr_store() -> tracklayer_local::SqliteDsrStore {
    tracklayer_local::SqliteDsrStore::new(Db::in_memory().unwrap())
}

async fn stats() -> tracklayer_local::SqliteStats {
    tracklayer_local::SqliteStats::new(Db::in_memory().unwrap())
}

async fn session_store() -> tracklayer_local::SqliteSessionStore {
    tracklayer_local::SqliteSessionStore::new(Db::in_memory().unwrap())
}

struct LocalAccount {
    control: SqliteControlStore,
    dsr: tracklayer_local::SqliteDsrStore,
}

#[async_trait]
impl testkit::account_end::AccountStores for LocalAccount {
    fn control(&self) -> &dyn tracklayer_core::ports::ControlStore {
        &self.control
    }
    fn dsr(&self) -> &dyn tracklayer_core::ports::DsrStore {
        &self.dsr
    }
    async fn dsr_records_left(&self, ws: &WorkspaceId, now: time::OffsetDateTime) -> usize {
        use tracklayer_core::ports::{DsrStore, SuppressionList};
        self.dsr.sweep(now).await.unwrap();
        // Read after the sweep: what is not returned was deleted.
        self.dsr.requests(ws, 10_000).await.unwrap().len()
            + self.dsr.suppressed(ws).await.unwrap().len()
    }
}

/// The control and DSR stores on one database.
async fn account_stores() -> LocalAccount {
    let db = Db::in_memory().unwrap();
    LocalAccount {
        control: SqliteControlStore::new(db.clone()),
        dsr: tracklayer_local::SqliteDsrStore::new(db),
    }
}

/// The stores retention sweeps, on one database.
async fn retention_stores() -> testkit::retention::Stores {
    let db = Db::in_memory().unwrap();
    testkit::retention::Stores {
        events: Arc::new(SqliteEventStore::new(db.clone())),
        delivery_log: Arc::new(tracklayer_local::SqliteDeliveryLog::new(db.clone())),
        audit: Arc::new(tracklayer_local::SqliteAuditLog::new(
            db,
            Arc::new(keyring().await),
        )),
    }
}

async fn ingest_stores() -> testkit::ingest_store::IngestStores {
    let db = Db::in_memory().unwrap();
    let clock = Arc::new(FixedClock::new(T0));
    testkit::ingest_store::IngestStores {
        store: Arc::new(tracklayer_local::SqliteIngestStore::new(
            db.clone(),
            clock.clone(),
        )),
        events: Arc::new(SqliteEventStore::new(db.clone())),
        queue: Arc::new(SqliteDeliveryQueue::new(db, clock, Arc::new(SystemIds), 3)),
    }
}

tracklayer_core::all_contract_suites!();

/// SQLite keeps a dedup row for every event, so an event with subjects is found too.
#[tokio::test]
async fn an_event_with_subjects_is_found_by_its_message_id() {
    use tracklayer_core::event::MessageId;
    use tracklayer_core::testkit::{new_event, unique};

    let s = event_store().await;
    let ws = WorkspaceId::new(Region::Us, &unique());
    let e = new_event(&ws, "m-user", &["anon-1", "user-1"], T0);
    s.record(std::slice::from_ref(&e), T0).await.unwrap();

    let found = s
        .event_ids_by_message_id(&ws, &MessageId::parse("m-user").unwrap(), T0)
        .await
        .unwrap();

    assert_eq!(found, vec![e.event.event_id]);
}

/// A request's rows are written by multi-row `INSERT`s (up to 32 rows each, the rest in
/// statements of 16, 8, 4, 2 and 1 rows): a request of 80 events, 3 of them repeating an
/// earlier message id, with 0 to 5 subjects each (one shared by many) and an operational
/// record on three in four, is recorded whole, each row once, each duplicate not at all;
/// sending it again records nothing.
#[tokio::test]
async fn a_large_request_is_recorded_row_for_row_and_its_duplicates_not_at_all() {
    use tracklayer_core::ports::EventReader;

    let path = keep_dir().join("tracklayer.db");
    let s = SqliteEventStore::new(Db::open(&path).unwrap());
    let ws = WorkspaceId::new(Region::Us, &testkit::unique());
    let mut events = Vec::new();
    for i in 0..77 {
        let mut subjects: Vec<String> = (0..i % 5).map(|k| format!("s-{i}-{k}")).collect();
        if i % 3 == 0 {
            subjects.push("s-shared".into());
        }
        let subjects: Vec<&str> = subjects.iter().map(String::as_str).collect();
        let mut e = testkit::new_event(&ws, &format!("m-{i}"), &subjects, T0);
        if i % 4 == 0 {
            e.operational = None;
        }
        events.push(e);
    }
    for repeated in ["m-5", "m-40", "m-76"] {
        events.push(testkit::new_event(&ws, repeated, &["s-repeat"], T0));
    }

    let recorded = s.record(&events, T0).await.unwrap();
    let expected: Vec<bool> = (0..80).map(|i| i < 77).collect();
    assert_eq!(recorded, expected, "the three repeats are duplicates");

    let count = |table: &str| -> i64 {
        let c = rusqlite::Connection::open(&path).unwrap();
        let (n, distinct): (i64, i64) = c
            .query_row(
                &format!("SELECT count(*), count(DISTINCT event_id) FROM {table}"),
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert!(n >= distinct, "{table}");
        n
    };
    let subjects: usize = events[..77].iter().map(|e| e.event.subjects.len()).sum();
    let operational = events[..77]
        .iter()
        .filter(|e| e.operational.is_some())
        .count();
    let expect = [
        ("events", 77),
        ("dedup", 77),
        ("event_subjects", subjects as i64),
        ("operational", operational as i64),
    ];
    for (table, n) in expect {
        assert_eq!(count(table), n, "{table}");
    }
    assert_eq!(subject_rows(&path).len(), subjects);
    for e in &events[..77] {
        let stored = s
            .event(&ws, &e.event.event_id, T0)
            .await
            .unwrap()
            .expect("recorded");
        assert_eq!(stored.message_id, e.event.message_id);
        assert_eq!(stored.subjects.len(), e.event.subjects.len());
    }
    for e in &events[77..] {
        assert!(s.event(&ws, &e.event.event_id, T0).await.unwrap().is_none());
    }

    let again = s.record(&events, T0).await.unwrap();
    assert_eq!(again, vec![false; 80], "every message id has a live marker");
    for (table, n) in expect {
        assert_eq!(count(table), n, "{table} after the retry");
    }
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

#[cfg(unix)]
#[tokio::test]
async fn the_database_its_wal_and_shm_and_outbox_mails_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = keep_dir();
    let path = dir.join("tracklayer.db");
    let store = SqliteEventStore::new(Db::open(&path).unwrap());
    let ws = WorkspaceId::new(Region::Us, &testkit::unique());
    store
        .record(&[testkit::new_event(&ws, "m-1", &["s"], T0)], T0)
        .await
        .unwrap();
    let outbox = OutboxMailer::new(
        dir.join("outbox"),
        "TrackLayer <noreply@tracklayer.local>".into(),
        Arc::new(FixedClock::new(T0)),
        Arc::new(SystemIds),
    );
    outbox
        .send(&Mail {
            to: vec!["admin@example.com".into()],
            subject: "Key expires soon".into(),
            text: "Rotate it.".into(),
        })
        .await
        .unwrap();

    for file in ["tracklayer.db", "tracklayer.db-wal", "tracklayer.db-shm"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    let mails: Vec<_> = std::fs::read_dir(dir.join("outbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(mails.len(), 1);
    assert_eq!(mode(&mails[0]), 0o600);

    // Files an older version left readable are restricted when the database is opened.
    for file in ["tracklayer.db", "tracklayer.db-wal", "tracklayer.db-shm"] {
        std::fs::set_permissions(dir.join(file), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let _db = Db::open(&path).unwrap();
    for file in ["tracklayer.db", "tracklayer.db-wal", "tracklayer.db-shm"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file} after reopening");
    }
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
    let m = mailer().await;
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

// ---------------------------------------------------------------------------------------------
// Account data and key lifecycle

mod key_lifecycle {
    use super::*;
    use tracklayer_core::key_expiry::{ExpiryReport, KeyExpiryNotifier};
    use tracklayer_core::keys::{KeyKind, Role};
    use tracklayer_core::ports::{ControlReader, ControlStore};

    fn eml_files(dir: &std::path::Path) -> Vec<String> {
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }

    #[tokio::test]
    async fn admins_are_warned_14_and_3_days_before_a_key_expires_once_each() {
        let control = Arc::new(SqliteControlStore::new(Db::in_memory().unwrap()));
        let ws = testkit::workspace(Region::Eu);
        control.create_workspace(&ws).await.unwrap();
        for (email, role) in [
            ("ann@example.com", Role::Admin),
            ("bob@example.com", Role::Admin),
            ("viv@example.com", Role::Viewer),
        ] {
            control
                .create_user(&testkit::user(&ws.id, email, role))
                .await
                .unwrap();
        }
        let key = testkit::api_key(&ws.id, KeyKind::Ingest);
        control.create_api_key(&key).await.unwrap();
        let outbox = keep_dir().join("outbox");
        let clock = Arc::new(FixedClock::new(T0));
        let notifier = KeyExpiryNotifier::new(
            control.clone(),
            Arc::new(OutboxMailer::new(
                outbox.clone(),
                "TrackLayer <noreply@tracklayer.local>".into(),
                clock.clone(),
                Arc::new(SystemIds),
            )),
        );
        let days = |n| key.expires_at - time::Duration::days(n);

        assert_eq!(
            notifier.run(days(15)).await.unwrap(),
            ExpiryReport::default()
        );
        assert!(eml_files(&outbox).is_empty(), "no mail 15 days ahead");

        let report = notifier.run(days(14)).await.unwrap();
        assert_eq!((report.warned, report.mails), (1, 1));
        let mails = eml_files(&outbox);
        assert_eq!(mails.len(), 1);
        assert!(mails[0].contains("ann@example.com") && mails[0].contains("bob@example.com"));
        assert!(
            !mails[0].contains("viv@example.com"),
            "viewers are not warned"
        );
        assert!(mails[0].contains("expires in 14 days"), "{}", mails[0]);
        assert!(mails[0].contains(&key.prefix));

        assert_eq!(
            notifier.run(days(14)).await.unwrap(),
            ExpiryReport::default(),
            "running again sends nothing"
        );
        assert_eq!(notifier.run(days(10)).await.unwrap().mails, 0);
        assert_eq!(eml_files(&outbox).len(), 1);

        let report = notifier.run(days(3)).await.unwrap();
        assert_eq!(report.mails, 1, "the second warning");
        let mails = eml_files(&outbox);
        assert_eq!(mails.len(), 2);
        assert!(mails.iter().any(|m| m.contains("expires in 3 days")));
        assert_eq!(notifier.run(days(1)).await.unwrap().mails, 0);
        assert_eq!(
            control
                .api_key(&key.id, T0)
                .await
                .unwrap()
                .unwrap()
                .expiry_warnings_sent,
            vec![14, 3],
            "what was sent is persisted on the key"
        );
    }

    #[tokio::test]
    async fn revoked_keys_get_no_warning() {
        let control = Arc::new(SqliteControlStore::new(Db::in_memory().unwrap()));
        let ws = testkit::workspace(Region::Us);
        control.create_workspace(&ws).await.unwrap();
        control
            .create_user(&testkit::user(&ws.id, "ann@example.com", Role::Admin))
            .await
            .unwrap();
        let mut key = testkit::api_key(&ws.id, KeyKind::Svc);
        key.revoked_at = Some(T0);
        control.create_api_key(&key).await.unwrap();
        let notifier = KeyExpiryNotifier::new(control.clone(), Arc::new(mailer().await));
        let at = key.expires_at - time::Duration::days(3);
        assert_eq!(notifier.run(at).await.unwrap(), ExpiryReport::default());
    }

    #[tokio::test]
    async fn the_sweeper_deletes_key_records_90_days_after_they_end() {
        let control = SqliteControlStore::new(Db::in_memory().unwrap());
        let ws = testkit::workspace(Region::Us);
        control.create_workspace(&ws).await.unwrap();
        let live = testkit::api_key(&ws.id, KeyKind::Ingest);
        let mut revoked = testkit::api_key(&ws.id, KeyKind::Svc);
        revoked.revoked_at = Some(T0 + time::Duration::days(1));
        control.create_api_key(&live).await.unwrap();
        control.create_api_key(&revoked).await.unwrap();
        let day90 = T0 + time::Duration::days(90);
        assert_eq!(control.sweep(day90).await.unwrap(), 0);
        let day92 = T0 + time::Duration::days(92);
        assert_eq!(control.sweep(day92).await.unwrap(), 1, "revoked on day 1");
        // Read as of T0: what is not returned was deleted, not only left out.
        assert!(control.api_key(&revoked.id, T0).await.unwrap().is_none());
        // The live key expired on day 90: its record goes on day 180.
        assert!(control.api_key(&live.id, T0).await.unwrap().is_some());
        assert_eq!(
            control.sweep(T0 + time::Duration::days(181)).await.unwrap(),
            1
        );
        assert!(control.api_keys(&ws.id, T0).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_sweeper_deletes_a_closed_workspace_with_its_users_and_keys_90_days_after_closure()
    {
        use tracklayer_core::admin::close_account;
        let control = SqliteControlStore::new(Db::in_memory().unwrap());
        let ws = testkit::workspace(Region::Eu);
        let other = testkit::workspace(Region::Eu);
        control.create_workspace(&ws).await.unwrap();
        control.create_workspace(&other).await.unwrap();
        let ann = testkit::user(&ws.id, "ann@example.com", Role::Admin);
        control.create_user(&ann).await.unwrap();
        control
            .create_user(&testkit::user(&other.id, "ann@example.com", Role::Admin))
            .await
            .unwrap();
        let key = testkit::api_key(&ws.id, KeyKind::Ingest);
        control.create_api_key(&key).await.unwrap();
        control
            .create_api_key(&testkit::api_key(&other.id, KeyKind::Ingest))
            .await
            .unwrap();
        let closed_at = T0 + time::Duration::days(1);
        close_account(&control, &ws, closed_at, None).await.unwrap();

        let day89 = closed_at + time::Duration::days(89);
        assert_eq!(control.sweep(day89).await.unwrap(), 0);
        assert!(control.workspace(&ws.id, day89).await.unwrap().is_some());
        let day91 = closed_at + time::Duration::days(91);
        assert_eq!(
            control.sweep(day91).await.unwrap(),
            3,
            "the workspace, its user and its key record"
        );
        // Read as of the closure: the rows are deleted, not only left out.
        assert!(control
            .workspace(&ws.id, closed_at)
            .await
            .unwrap()
            .is_none());
        assert!(control.users(&ws.id, closed_at).await.unwrap().is_empty());
        assert!(control.api_key(&key.id, closed_at).await.unwrap().is_none());
        assert!(control.workspace(&other.id, day91).await.unwrap().is_some());
        assert_eq!(control.users(&other.id, day91).await.unwrap().len(), 1);
        assert_eq!(control.api_keys(&other.id, day91).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_data_directory_from_before_closure_existed_opens_with_its_keys_expiring() {
        let dir = keep_dir().join(format!("old-schema-{}", testkit::unique()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tracklayer.db");
        let ws = testkit::workspace(Region::Us);
        let mut revoked = testkit::api_key(&ws.id, KeyKind::Svc);
        revoked.revoked_at = Some(T0);
        {
            // The tables as they were: no expires_at on account data.
            let c = rusqlite::Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE workspaces (id TEXT PRIMARY KEY, created_at INTEGER NOT NULL, doc TEXT NOT NULL);
                 CREATE TABLE api_keys (id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, doc TEXT NOT NULL);
                 CREATE TABLE users (workspace_id TEXT NOT NULL, id TEXT NOT NULL, email TEXT NOT NULL,
                     created_at INTEGER NOT NULL, doc TEXT NOT NULL,
                     PRIMARY KEY (workspace_id, id), UNIQUE (workspace_id, email));",
            )
            .unwrap();
            let mut old = serde_json::to_value(&ws).unwrap();
            old.as_object_mut().unwrap().remove("closed_at");
            c.execute(
                "INSERT INTO workspaces (id, created_at, doc) VALUES (?1, 0, ?2)",
                rusqlite::params![ws.id.as_str(), old.to_string()],
            )
            .unwrap();
            c.execute(
                "INSERT INTO api_keys (id, workspace_id, doc) VALUES (?1, ?2, ?3)",
                rusqlite::params![
                    revoked.id.as_str(),
                    ws.id.as_str(),
                    serde_json::to_string(&revoked).unwrap()
                ],
            )
            .unwrap();
        }
        let control = SqliteControlStore::new(Db::open(&path).unwrap());
        let stored = control.workspace(&ws.id, T0).await.unwrap().unwrap();
        assert_eq!(stored.closed_at, None);
        assert!(control
            .api_key(&revoked.id, T0 + time::Duration::days(89))
            .await
            .unwrap()
            .is_some());
        assert_eq!(
            control.sweep(T0 + time::Duration::days(91)).await.unwrap(),
            1,
            "the key revoked at T0 is deleted 90 days later"
        );
    }

    #[tokio::test]
    async fn a_data_directory_from_before_dsr_records_expired_opens_and_can_end_them() {
        use tracklayer_core::dsr::DsrKind;
        use tracklayer_core::ports::{DsrStore, SuppressionList};
        let dir = keep_dir().join(format!("old-dsr-schema-{}", testkit::unique()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tracklayer.db");
        let ws = WorkspaceId::new(Region::Eu, &testkit::unique());
        let request = testkit::dsr_request(&ws, DsrKind::Erasure, T0);
        {
            // The tables as they were: no expires_at on requests and suppression entries.
            let c = rusqlite::Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE dsr_requests (workspace_id TEXT NOT NULL, id TEXT NOT NULL,
                     submitted_at INTEGER NOT NULL, open INTEGER NOT NULL, doc TEXT NOT NULL,
                     PRIMARY KEY (workspace_id, id)) WITHOUT ROWID;
                 CREATE INDEX dsr_requests_open ON dsr_requests (open, submitted_at);
                 CREATE TABLE dsr_suppressions (workspace_id TEXT NOT NULL, token TEXT NOT NULL,
                     at INTEGER NOT NULL, PRIMARY KEY (workspace_id, token)) WITHOUT ROWID;",
            )
            .unwrap();
            c.execute(
                "INSERT INTO dsr_requests (workspace_id, id, submitted_at, open, doc)
                 VALUES (?1, ?2, 0, 1, ?3)",
                rusqlite::params![
                    ws.as_str(),
                    request.id.as_str(),
                    serde_json::to_string(&request).unwrap()
                ],
            )
            .unwrap();
            c.execute(
                "INSERT INTO dsr_suppressions (workspace_id, token, at) VALUES (?1, 'tok', 0)",
                [ws.as_str()],
            )
            .unwrap();
        }
        let dsr = tracklayer_local::SqliteDsrStore::new(Db::open(&path).unwrap());
        assert_eq!(dsr.request(&ws, &request.id).await.unwrap(), Some(request));
        assert_eq!(
            dsr.sweep(T0 + time::Duration::days(1000)).await.unwrap(),
            0,
            "records of open workspaces never expire"
        );
        let until = T0 + time::Duration::days(90);
        assert_eq!(dsr.end_with_account(&ws, until).await.unwrap(), 2);
        assert_eq!(dsr.sweep(until).await.unwrap(), 2);
        assert!(dsr.requests(&ws, 10).await.unwrap().is_empty());
        assert!(dsr.suppressed(&ws).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_sweeper_retires_audit_entries_older_than_a_year_behind_a_checkpoint() {
        use tracklayer_core::audit::{AuditFilter, NewAuditEntry};
        use tracklayer_core::ports::AuditLog;
        let db = Db::in_memory().unwrap();
        let audit = tracklayer_local::SqliteAuditLog::new(db, Arc::new(keyring().await));
        let ws = WorkspaceId::new(Region::Eu, &testkit::unique());
        let entry = || NewAuditEntry {
            workspace_id: ws.clone(),
            actor: "cli:operator".into(),
            action: "workspace.update".into(),
            target: "workspace".into(),
            summary: serde_json::json!({}),
        };
        audit.append(entry(), T0).await.unwrap();
        audit
            .append(entry(), T0 + time::Duration::days(1))
            .await
            .unwrap();
        let later = T0 + time::Duration::days(400);
        assert_eq!(
            audit.sweep(later).await.unwrap(),
            3,
            "the genesis entry and both"
        );
        let next = audit.append(entry(), later).await.unwrap();
        assert_eq!(next.seq, 4);
        let all = AuditFilter {
            limit: 10,
            ..Default::default()
        };
        assert_eq!(audit.list(&ws, &all, later).await.unwrap().len(), 1);
        let v = tracklayer_core::audit::verify(&audit, &ws).await.unwrap();
        assert!(v.valid, "{v:?}");
    }
}

/// A database an older version wrote (no `users.user_name`, two users already sharing a
/// userName) opens: the first of them keeps the name, and nobody new can take it.
#[tokio::test]
async fn an_older_database_gets_unique_user_names_keeping_the_first_holder() {
    use tracklayer_core::ports::ControlStore;
    use tracklayer_core::scim::profile::{ScimProfile, USER_NAME_TAKEN};
    let path = keep_dir().join("tracklayer.db");
    let named = |ws: &WorkspaceId, email: &str, name: &str| {
        let mut u = testkit::user(ws, email, tracklayer_core::keys::Role::Viewer);
        u.scim = Some(ScimProfile {
            user_name: name.into(),
            emails: vec![],
            active_unassigned: false,
        });
        u
    };
    let ws = testkit::workspace(Region::Eu);
    let (first, mut second) = (
        named(&ws.id, "a@example.com", "jdoe"),
        named(&ws.id, "b@example.com", "other"),
    );
    // The first holder is the earlier created: by creation time, not by the ids' random tails
    // (two users made in different milliseconds were ordered by chance, a flake under load).
    second.created_at = first.created_at + time::Duration::seconds(1);
    {
        let s = SqliteControlStore::new(Db::open(&path).unwrap());
        s.create_workspace(&ws).await.unwrap();
        s.create_user(&first).await.unwrap();
        s.create_user(&second).await.unwrap();
    }
    {
        // What the version before the column left: no index, no names, and a duplicate.
        let c = rusqlite::Connection::open(&path).unwrap();
        let mut dup = second.clone();
        dup.scim.as_mut().unwrap().user_name = "JDoe".into();
        c.execute_batch("DROP INDEX users_by_user_name; ALTER TABLE users DROP COLUMN user_name")
            .unwrap();
        c.execute(
            "UPDATE users SET doc = ?1 WHERE id = ?2",
            [serde_json::to_string(&dup).unwrap(), dup.id.to_string()],
        )
        .unwrap();
    }
    let s = SqliteControlStore::new(Db::open(&path).unwrap());
    assert_eq!(s.users(&ws.id, T0).await.unwrap().len(), 2);
    let taken = s
        .create_user(&named(&ws.id, "c@example.com", "JDOE"))
        .await
        .unwrap_err();
    assert!(
        matches!(taken, tracklayer_core::error::StoreError::Conflict(w) if w == USER_NAME_TAKEN),
        "{taken:?}"
    );
    // The second holder must be renamed before any other change of theirs is written.
    let mut dup = s.user(&ws.id, &second.id, T0).await.unwrap().unwrap();
    dup.external_id = Some("00u2".into());
    assert!(s.update_user(&dup).await.is_err());
    dup.scim.as_mut().unwrap().user_name = "jdoe2".into();
    s.update_user(&dup).await.unwrap();
}

/// The subject index rows of the `event_subjects` table, as (subject key, event id) text: a
/// key stored as bytes in hex, an event id as `evt_` and its hex.
fn subject_rows(path: &std::path::Path) -> Vec<(String, String)> {
    let c = rusqlite::Connection::open(path).unwrap();
    let mut stmt = c
        .prepare(
            "SELECT CASE typeof(subject_key) WHEN 'blob' THEN lower(hex(subject_key))
                         ELSE subject_key END,
                    'evt_' || lower(hex(event_id))
             FROM event_subjects ORDER BY 1",
        )
        .unwrap();
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    rows.map(Result::unwrap).collect()
}

/// The subject index has no expiry of its own: its rows go with their event, whether the
/// sweep, an erasure or a corrupt record removes it, and an older database (an expiry column
/// and its index, keys as text) is rebuilt without them and with its keys as bytes, keeping
/// only the rows of events still stored.
#[tokio::test]
async fn subject_index_rows_never_outlive_their_event_and_an_older_database_is_rebuilt() {
    use tracklayer_core::ports::{EventEraser, EventInspection};
    let path = keep_dir().join("tracklayer.db");
    let ws = WorkspaceId::new(Region::Us, &testkit::unique());
    // What ingest writes: a keyed HMAC in hex.
    let hmac = "0123456789abcdef".repeat(4);
    let (kept, erased, corrupt) = (
        testkit::new_event(&ws, "m-kept", &["s-kept", "s-shared", &hmac], T0),
        testkit::new_event(&ws, "m-erased", &["s-erased", "s-shared"], T0),
        testkit::new_event(&ws, "m-corrupt", &["s-corrupt"], T0),
    );
    older_layouts::record_new(&path, &[kept.clone(), erased.clone(), corrupt.clone()]).await;
    let orphan = "00000000-0000-7000-8000-000000000000";
    {
        // What the versions before left: an expiry column and its index, keys as text, and a
        // row whose event is already gone.
        let c = rusqlite::Connection::open(&path).unwrap();
        older_layouts::into_text_key_layout(&c, &[&hmac]);
        c.execute_batch(
            "CREATE TABLE old_subjects (workspace_id TEXT NOT NULL, subject TEXT NOT NULL,
                 event_id TEXT NOT NULL, expires_at INTEGER NOT NULL,
                 PRIMARY KEY (workspace_id, subject, event_id)) WITHOUT ROWID;
             INSERT INTO old_subjects SELECT workspace_id,
                 CASE typeof(subject) WHEN 'blob' THEN lower(hex(subject)) ELSE subject END,
                 'evt_' || lower(hex(event_id)), 1 FROM event_subjects;
             DROP TABLE event_subjects;
             ALTER TABLE old_subjects RENAME TO event_subjects;
             CREATE INDEX event_subjects_by_expiry ON event_subjects (expires_at);",
        )
        .unwrap();
        c.execute(
            "INSERT INTO event_subjects VALUES (?1, 's-orphan', ?2, 1)",
            [ws.as_str(), orphan],
        )
        .unwrap();
    }
    let store = SqliteEventStore::new(Db::open(&path).unwrap());
    let id = |e: &tracklayer_core::ports::NewEvent| e.event.event_id.to_string();
    let mut expected = vec![
        (hmac[..32].to_owned(), id(&kept)),
        ("s-corrupt".to_owned(), id(&corrupt)),
        ("s-erased".to_owned(), id(&erased)),
        ("s-kept".to_owned(), id(&kept)),
        ("s-shared".to_owned(), id(&kept)),
        ("s-shared".to_owned(), id(&erased)),
    ];
    expected.sort();
    let mut rows = subject_rows(&path);
    rows.sort();
    assert_eq!(
        rows, expected,
        "rebuilt: the stored events' rows, not the orphan"
    );
    let c = rusqlite::Connection::open(&path).unwrap();
    let columns: Vec<String> =
        first_column(&c, "SELECT name FROM pragma_table_info('event_subjects')");
    assert_eq!(columns, ["workspace", "subject_key", "event_id"]);
    let stored: Vec<(String, i64, String, i64)> = c
        .prepare(
            "SELECT typeof(subject_key), length(subject_key), typeof(event_id), length(event_id)
             FROM event_subjects ORDER BY typeof(subject_key), subject_key",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        stored[0],
        ("blob".to_owned(), 16, "blob".to_owned(), 16),
        "the HMAC's first 16 bytes and the event id as bytes: {stored:?}"
    );
    assert!(
        stored[1..]
            .iter()
            .all(|(t, _, e, n)| t == "text" && e == "blob" && *n == 16),
        "a subject that is not hex stays text: {stored:?}"
    );
    let by_hmac = store
        .events_by_subject(&ws, &hmac, Page::first(10), T0)
        .await
        .unwrap();
    assert_eq!(by_hmac.len(), 1, "the converted HMAC finds its event");
    let footprint = store
        .subject_footprint(&ws, &[hmac.clone(), "s-kept".into()], Page::first(10), T0)
        .await
        .unwrap();
    assert_eq!(footprint.len(), 1, "both subjects name one event");
    assert_eq!(footprint[0].subject_index_entries, 3);
    let shared = store
        .events_by_subject(&ws, "s-shared", Page::first(10), T0)
        .await
        .unwrap();
    assert_eq!(shared.len(), 2, "the index still finds the events");

    // An erasure removes its event's rows, and only those.
    let footprint = store
        .subject_footprint(&ws, &["s-erased".into()], Page::first(10), T0)
        .await
        .unwrap();
    assert_eq!(footprint.len(), 1);
    assert_eq!(footprint[0].subject_index_entries, 2);
    let gone = store.erase(&ws, &[erased.event.event_id]).await.unwrap();
    assert_eq!(gone.subject_index_entries, 2);
    assert!(subject_rows(&path).iter().all(|(_, e)| *e != id(&erased)));

    // An unreadable record still has its rows swept with it, and so do the others.
    c.execute(
        "UPDATE events SET doc = x'ff00' WHERE event_id = unhex(substr(?1, 5))",
        [id(&corrupt)],
    )
    .unwrap();
    store.sweep(T0 + time::Duration::days(181)).await.unwrap();
    assert_eq!(subject_rows(&path), [], "no row outlives its event");
}

/// A new database is made with 8 KiB pages; one made before with 4 KiB opens as it is, its
/// events readable (SQLite changes a WAL database's page size only by a rebuild).
#[tokio::test]
async fn a_new_database_has_8_kib_pages_and_an_older_one_keeps_its_own() {
    use tracklayer_core::ports::{EventReader, EventWriter};
    let page_size = |path: &std::path::Path| -> i64 {
        let c = rusqlite::Connection::open(path).unwrap();
        c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap()
    };
    let new = keep_dir().join("tracklayer.db");
    drop(Db::open(&new).unwrap());
    assert_eq!(page_size(&new), 8192);

    let old = keep_dir().join("tracklayer.db");
    {
        let c = rusqlite::Connection::open(&old).unwrap();
        c.execute_batch("PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; CREATE TABLE t (x);")
            .unwrap();
    }
    let ws = WorkspaceId::new(Region::Us, &testkit::unique());
    let e = testkit::new_event(&ws, "m-old", &["s-old"], T0);
    let store = SqliteEventStore::new(Db::open(&old).unwrap());
    store.record(std::slice::from_ref(&e), T0).await.unwrap();
    assert_eq!(page_size(&old), 4096);
    let read = store.event(&ws, &e.event.event_id, T0).await.unwrap();
    assert_eq!(read, Some(e.event));
}
