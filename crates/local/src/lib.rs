//! Embedded adapters: everything `tracklayer serve` needs on one machine with no cloud.
//!
//! One SQLite database (WAL, `secure_delete`) holds the control data, events, dedup markers,
//! operational records and the delivery queue; a master-key file wraps the workspace data
//! keys; notifications go to an outbox directory of `.eml` files.

mod audit;
mod checkpoint;
mod commit;
mod control;
mod db;
mod delivery_log;
mod dsr;
mod event_memo;
mod event_record;
mod event_tables;
mod events;
mod ingest_store;
mod keyring;
mod mailer;
mod queue;
mod saml;
mod scim;
mod sessions;
mod stats;
mod subject_keys;
mod workspace_numbers;

pub use audit::SqliteAuditLog;
pub use control::SqliteControlStore;
pub use db::{Db, DbError};
pub use delivery_log::SqliteDeliveryLog;
pub use dsr::SqliteDsrStore;
pub use event_record::as_json as event_row_json;
pub use events::SqliteEventStore;
pub use ingest_store::SqliteIngestStore;
pub use keyring::FileKeyring;
pub use mailer::OutboxMailer;
pub use queue::SqliteDeliveryQueue;
pub use sessions::SqliteSessionStore;
pub use stats::SqliteStats;

use std::path::{Path, PathBuf};

/// The files of a data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn database(&self) -> PathBuf {
        self.root.join("tracklayer.db")
    }
    pub fn master_key(&self) -> PathBuf {
        self.root.join("master.key")
    }
    pub fn customer_keys(&self) -> PathBuf {
        self.root.join("customer-keys")
    }
    pub fn outbox(&self) -> PathBuf {
        self.root.join("outbox")
    }
    /// True once `init` has run here.
    pub fn is_initialized(&self) -> bool {
        self.database().exists() && self.master_key().exists()
    }
}
