//! The embedded adapters the admin and tracking test apps start from: a file keyring on a
//! temporary directory, a clock fixed at `T0`, system ids, and the SQLite stores on one
//! database that ingest and the control plane share.

use std::path::PathBuf;
use std::sync::Arc;

use time::macros::datetime;
use time::OffsetDateTime;
use tracklayer_core::clock::{FixedClock, SystemIds};
use tracklayer_core::control_plane::Control;
use tracklayer_local::{
    Db, FileKeyring, SqliteControlStore, SqliteDeliveryQueue, SqliteEventStore,
};

/// When every test app's clock starts.
pub const T0: OffsetDateTime = datetime!(2026-03-01 12:00:00 UTC);

pub struct Stores {
    pub dir: tempfile::TempDir,
    pub keyring: Arc<FileKeyring>,
    pub clock: Arc<FixedClock>,
    pub ids: Arc<SystemIds>,
    pub db: Db,
    pub control: Arc<SqliteControlStore>,
    pub events: Arc<SqliteEventStore>,
    pub queue: Arc<SqliteDeliveryQueue>,
}

impl Stores {
    /// With the database in a file of the temporary directory ([`Self::db_path`]), for tests
    /// that open it again as another process would.
    #[allow(dead_code)]
    pub fn on_disk() -> Self {
        Self::open(|dir| Db::open(&dir.join("tracklayer.db")).unwrap())
    }

    /// With the database in memory.
    #[allow(dead_code)]
    pub fn in_memory() -> Self {
        Self::open(|_| Db::in_memory().unwrap())
    }

    fn open(db: impl FnOnce(&std::path::Path) -> Db) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let master = dir.path().join("master.key");
        FileKeyring::create_master_key(&master, &SystemIds).unwrap();
        let ids = Arc::new(SystemIds);
        let clock = Arc::new(FixedClock::new(T0));
        let keyring = Arc::new(
            FileKeyring::open(&master, dir.path().join("customer-keys"), ids.clone()).unwrap(),
        );
        let db = db(dir.path());
        let max_receive_count = SqliteDeliveryQueue::DEFAULT_MAX_RECEIVE_COUNT;
        let queue =
            SqliteDeliveryQueue::new(db.clone(), clock.clone(), ids.clone(), max_receive_count);
        Self {
            control: Arc::new(SqliteControlStore::new(db.clone())),
            events: Arc::new(SqliteEventStore::new(db.clone())),
            queue: Arc::new(queue),
            keyring,
            clock,
            ids,
            db,
            dir,
        }
    }

    /// The database file of [`Self::on_disk`].
    #[allow(dead_code)]
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("tracklayer.db")
    }

    /// The control plane on these stores.
    pub fn control_plane(&self) -> Control<'_> {
        Control {
            store: self.control.as_ref(),
            keyring: self.keyring.as_ref(),
            clock: self.clock.as_ref(),
            ids: self.ids.as_ref(),
        }
    }
}
