//! The embedded stack on a data directory: every port with its local adapter.

use std::sync::Arc;

use anyhow::{bail, Context};
use tracklayer_core::admin::AdminService;
use tracklayer_core::clock::{Clock, Ids, SystemClock, SystemIds};
use tracklayer_core::control_plane::Control;
use tracklayer_core::ports::ControlStore;
use tracklayer_core::services::{CommonPorts, Ports};
use tracklayer_core::workspace::Region;
use tracklayer_core::workspace::{Workspace, WorkspaceId};
use tracklayer_local::{
    DataDir, Db, FileKeyring, OutboxMailer, SqliteAuditLog, SqliteControlStore, SqliteDeliveryLog,
    SqliteDeliveryQueue, SqliteDsrStore, SqliteEventStore, SqliteIngestStore, SqliteSessionStore,
    SqliteStats,
};

/// All local adapters, opened once.
pub struct LocalStack {
    pub dir: DataDir,
    pub db: Db,
    pub control: Arc<SqliteControlStore>,
    pub events: Arc<SqliteEventStore>,
    pub queue: Arc<SqliteDeliveryQueue>,
    pub delivery_log: Arc<SqliteDeliveryLog>,
    pub audit: Arc<SqliteAuditLog>,
    pub keyring: Arc<FileKeyring>,
    /// Data-subject requests, the suppression list and access exports.
    pub dsr: Arc<SqliteDsrStore>,
    /// Notifications, as .eml files in the data directory's outbox.
    pub mailer: Arc<OutboxMailer>,
    /// The overview's counters.
    pub stats: Arc<SqliteStats>,
    /// Console sessions, one-time links, password credentials, failed sign-in counters.
    pub sessions: Arc<SqliteSessionStore>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn Ids>,
}

tracklayer_core::debug_fields!(LocalStack: dir);

impl LocalStack {
    /// The stack with its queue's redrive (like SQS's: a message received that many times is
    /// dead-lettered at its next receive) no lower than `max_attempts`: delivery dead-letters
    /// a message itself at its last attempt, logging the reason per item, and the redrive only
    /// catches a message whose processing never settles (a crash each time). A redrive below
    /// the attempts (`--max-attempts 40` with the default 8) dead-lettered messages delivery
    /// still retried, leaving their items `retrying` in the delivery log.
    pub fn with_delivery_attempts(mut self, max_attempts: u32) -> Self {
        let receives = max_attempts.max(SqliteDeliveryQueue::DEFAULT_MAX_RECEIVE_COUNT);
        self.queue = Arc::new(SqliteDeliveryQueue::new(
            self.db.clone(),
            self.clock.clone(),
            self.ids.clone(),
            receives,
        ));
        self
    }

    /// Creates the directory (mode 0700) and master key; fails if already initialized.
    pub fn create(dir: DataDir) -> anyhow::Result<Self> {
        if dir.is_initialized() {
            bail!(
                "{} is already initialized; use another --data-dir",
                dir.root().display()
            );
        }
        std::fs::create_dir_all(dir.root())
            .with_context(|| format!("cannot create {}", dir.root().display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.root(), std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot restrict {}", dir.root().display()))?;
        }
        if !dir.master_key().exists() {
            FileKeyring::create_master_key(&dir.master_key(), &SystemIds)?;
        }
        Self::open(dir)
    }

    /// Opens an initialized data directory.
    pub fn open(dir: DataDir) -> anyhow::Result<Self> {
        if !dir.master_key().exists() {
            bail!(
                "{} is not a TrackLayer data directory (no master.key); run `tracklayer init --data-dir {}` first",
                dir.root().display(),
                dir.root().display()
            );
        }
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let ids: Arc<dyn Ids> = Arc::new(SystemIds);
        let db = Db::open(&dir.database())?;
        let keyring = Arc::new(FileKeyring::open(
            &dir.master_key(),
            dir.customer_keys(),
            ids.clone(),
        )?);
        Ok(Self {
            control: Arc::new(SqliteControlStore::new(db.clone())),
            events: Arc::new(SqliteEventStore::new(db.clone())),
            delivery_log: Arc::new(SqliteDeliveryLog::new(db.clone())),
            audit: Arc::new(SqliteAuditLog::new(db.clone(), keyring.clone())),
            queue: Arc::new(SqliteDeliveryQueue::new(
                db.clone(),
                clock.clone(),
                ids.clone(),
                SqliteDeliveryQueue::DEFAULT_MAX_RECEIVE_COUNT,
            )),
            keyring,
            dsr: Arc::new(SqliteDsrStore::new(db.clone())),
            stats: Arc::new(SqliteStats::new(db.clone())),
            sessions: Arc::new(SqliteSessionStore::new(db.clone())),
            mailer: Arc::new(OutboxMailer::new(
                dir.outbox(),
                "TrackLayer <noreply@tracklayer.local>".into(),
                clock.clone(),
                ids.clone(),
            )),
            db,
            dir,
            clock,
            ids,
        })
    }

    /// The control plane on this data directory, serving `region`.
    /// `allow_private` lifts the egress guard on destination URLs (local development only).
    pub fn admin_service(&self, region: Region, allow_private: bool) -> AdminService {
        self.ports(allow_private).admin(region)
    }

    /// Every port of this data directory, for [`tracklayer_core::services`].
    /// `allow_private` lifts the egress guard on destination URLs (local development only).
    pub fn ports(&self, allow_private: bool) -> Ports {
        Ports {
            common: CommonPorts {
                control: self.control.clone(),
                keyring: self.keyring.clone(),
                audit: self.audit.clone(),
                delivery_log: self.delivery_log.clone(),
                queue: self.queue.clone(),
                dsr: self.dsr.clone(),
                mailer: self.mailer.clone(),
                clock: self.clock.clone(),
                ids: self.ids.clone(),
            },
            events: self.events.clone(),
            // One transaction for a request's events and messages: the same database.
            ingest_store: Arc::new(SqliteIngestStore::new(self.db.clone(), self.clock.clone())),
            sessions: self.sessions.clone(),
            url_guard: Arc::new(tracklayer_egress::EgressPolicy { allow_private }),
            stats: self.stats.clone(),
            connectors: tracklayer_connectors::connector,
            requirements: tracklayer_connectors::requirements::unmet,
            base_urls: tracklayer_connectors::default_base_url,
        }
    }

    /// The stores the sweeper cleans.
    pub fn clone_for_sweep(
        &self,
    ) -> (
        Arc<SqliteEventStore>,
        Arc<SqliteDeliveryLog>,
        Arc<SqliteStats>,
    ) {
        (
            self.events.clone(),
            self.delivery_log.clone(),
            self.stats.clone(),
        )
    }

    pub fn control(&self) -> Control<'_> {
        Control {
            store: self.control.as_ref(),
            keyring: self.keyring.as_ref(),
            clock: self.clock.as_ref(),
            ids: self.ids.as_ref(),
        }
    }

    /// The workspace named by `--workspace`, or the only one.
    pub async fn workspace(&self, id: Option<&str>) -> anyhow::Result<Workspace> {
        let all = self.control.workspaces(self.clock.now()).await?;
        match id {
            Some(id) => {
                let id = WorkspaceId::parse(id).context("--workspace")?;
                all.into_iter()
                    .find(|w| w.id == id)
                    .with_context(|| format!("no workspace {id} in this data directory"))
            }
            None => match all.len() {
                0 => bail!("this data directory has no workspace; run `tracklayer init`"),
                1 => Ok(all.into_iter().next().expect("one")),
                n => bail!("this data directory has {n} workspaces; name one with --workspace"),
            },
        }
    }
}
