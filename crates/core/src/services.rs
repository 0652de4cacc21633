//! Wiring once: the use cases of one process, built from one set of ports by role.
//!
//! An adapter stack (`tracklayer serve`'s SQLite stack, the Lambda functions' AWS stack, a
//! test harness) fills one [`Ports`]; each Lambda function builds only the use case it runs
//! ([`Ports::ingest`], [`Ports::delivery`], [`Ports::dsr`], [`Ports::admin`]), so its cold
//! start opens nothing else; `serve` builds them all with [`Services::new`], sharing one key
//! verifier and one invalidation bus, so an admin change reaches ingest and delivery at once.

use std::sync::Arc;

use crate::admin::test_event::DestinationTester;
use crate::admin::{AdminPorts, AdminService};
use crate::clock::{Clock, Ids};
use crate::crypto::{DataKey, WorkspaceKeys};
use crate::deliver::service::{DeliveryConfig, DeliveryPorts, DeliveryService};
use crate::deliver::Connector;
use crate::destination::DestinationKind;
use crate::dsr::service::{DsrConfig, DsrPorts, DsrService};
use crate::error::{KeyError, StoreError};
use crate::ingest::{IngestConfig, IngestPorts, IngestService};
use crate::invalidation::Invalidations;
use crate::keys::verifier::{KeyVerifier, VerifierConfig};
use crate::ports::{
    AuditLog, ControlReader, ControlStore, DeliveryLog, DeliveryQueue, DsrStore, Egress,
    EventStore, IngestStore, Keyring, Mailer, SessionStore, UrlGuard,
};
use crate::stats::Stats;
use crate::workspace::{Region, Workspace, WorkspaceId};

/// The ports of the use cases that read and change account data with full rights (the
/// control plane and the data-subject requests it submits): the control store and the keys,
/// the audit trail, the delivery queue and log, the data-subject store, the mailer, time and
/// ids. [`AdminPorts`] and [`DsrPorts`] each hold them and add their own.
#[allow(missing_debug_implementations)]
#[derive(Clone)]
pub struct CommonPorts {
    pub control: Arc<dyn ControlStore>,
    pub keyring: Arc<dyn Keyring>,
    pub audit: Arc<dyn AuditLog>,
    pub delivery_log: Arc<dyn DeliveryLog>,
    pub queue: Arc<dyn DeliveryQueue>,
    /// Data-subject requests, the suppression list and access exports.
    pub dsr: Arc<dyn DsrStore>,
    /// Invitation, password-reset and sign-in links; data-subject request mails.
    pub mailer: Arc<dyn Mailer>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn Ids>,
}

impl CommonPorts {
    /// The workspace as of now, open or closed (until its account data expires).
    pub async fn workspace(&self, ws: &WorkspaceId) -> Result<Option<Workspace>, StoreError> {
        self.control.workspace(ws, self.clock.now()).await
    }

    /// The workspace as of now, if it is open (`None` once closed).
    pub async fn open_workspace(&self, ws: &WorkspaceId) -> Result<Option<Workspace>, StoreError> {
        Ok(self.workspace(ws).await?.filter(|w| !w.is_closed()))
    }

    /// The workspace's data key, unwrapped by the keyring (the customer's key under BYOK).
    pub async fn data_key(&self, ws: &Workspace) -> Result<DataKey, KeyError> {
        self.keyring
            .unwrap_data_key(&ws.id, &ws.key_ref, &ws.data_key)
            .await
    }

    /// The keys derived from the workspace's data key.
    pub async fn workspace_keys(&self, ws: &Workspace) -> Result<WorkspaceKeys, KeyError> {
        Ok(WorkspaceKeys::new(&self.data_key(ws).await?))
    }

    /// The same ports, with the control store read only.
    pub fn read_only(&self) -> ReadPorts {
        ReadPorts {
            control: self.control.clone(),
            keyring: self.keyring.clone(),
            clock: self.clock.clone(),
            ids: self.ids.clone(),
        }
    }
}

/// The ports of the use cases that read account data and never change it (ingest, delivery,
/// test events): the control store's read side, the keyring that opens workspace keys, time
/// and ids. [`IngestPorts`] and [`DeliveryPorts`] each hold them and add their own.
#[allow(missing_debug_implementations)]
pub struct ReadPorts {
    pub control: Arc<dyn ControlReader>,
    pub keyring: Arc<dyn Keyring>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn Ids>,
}

/// Every port of one process, by role. Each use case takes the ones it needs; the data-subject
/// store is also the suppression list ingest and delivery must consult.
#[allow(missing_debug_implementations)]
#[derive(Clone)]
pub struct Ports {
    /// The account-data ports, shared with the control plane and the data-subject requests.
    pub common: CommonPorts,
    pub events: Arc<dyn EventStore>,
    /// Ingest's events and queue messages, kept together ([`crate::ingest::RecordThenEnqueue`]
    /// over `events` and `queue` where they are two services).
    pub ingest_store: Arc<dyn IngestStore>,
    /// Console sessions, one-time links, password credentials, failed sign-in counters.
    pub sessions: Arc<dyn SessionStore>,
    /// Refuses destination URLs that egress must never reach (configure time).
    pub url_guard: Arc<dyn UrlGuard>,
    /// The overview's counters: ingest and delivery add, the admin overview reads.
    pub stats: Arc<dyn Stats>,
    /// The wire format of each destination kind.
    pub connectors: fn(DestinationKind) -> &'static dyn Connector,
    /// Production base URL of each kind, used when a destination has no `endpoint`.
    pub base_urls: fn(DestinationKind) -> &'static str,
    /// The destinations' requirements, checked at ingest to warn of events they will drop.
    pub requirements: crate::ingest::RequirementCheck,
}

/// A use case's ports read the shared ones as their own (`ports.control`, `ports.clock`).
macro_rules! shared_ports_deref {
    ($shared:ident in $field:ident: $($ports:ty),+) => {$(
        impl std::ops::Deref for $ports {
            type Target = $shared;
            fn deref(&self) -> &$shared {
                &self.$field
            }
        }
    )+};
}
shared_ports_deref!(CommonPorts in common: Ports, AdminPorts, DsrPorts);
shared_ports_deref!(ReadPorts in read: IngestPorts, DeliveryPorts);

impl Ports {
    /// The ingest use case, dropping the events of suppressed subjects.
    pub fn ingest(&self, config: IngestConfig) -> IngestService {
        IngestService::new(
            IngestPorts {
                read: self.read_only(),
                store: self.ingest_store.clone(),
                suppressions: self.dsr.clone(),
                stats: self.stats.clone(),
            },
            config,
        )
        .with_requirements(self.requirements)
    }

    /// The delivery use case over `egress` (the only port that opens network clients, so it
    /// is built only where delivery runs).
    pub fn delivery(&self, egress: Arc<dyn Egress>, config: DeliveryConfig) -> DeliveryService {
        DeliveryService::new(
            DeliveryPorts {
                read: self.read_only(),
                queue: self.queue.clone(),
                log: self.delivery_log.clone(),
                events: self.events.clone(),
                egress,
                suppressions: self.dsr.clone(),
                connectors: self.connectors,
                base_urls: self.base_urls,
                stats: self.stats.clone(),
            },
            config,
        )
    }

    /// The data-subject request use case.
    pub fn dsr(&self, config: DsrConfig) -> DsrService {
        DsrService::new(
            DsrPorts {
                common: self.common.clone(),
                events: self.events.clone(),
                connectors: self.connectors,
            },
            config,
        )
    }

    /// Sending test events to destinations over `egress`, through this process's connectors.
    pub fn tester(&self, egress: Arc<dyn Egress>) -> DestinationTester {
        DestinationTester::new(self.read_only(), egress, self.connectors, self.base_urls)
    }

    /// The control plane, serving `region`.
    pub fn admin(&self, region: Region) -> AdminService {
        AdminService::new(
            AdminPorts {
                common: self.common.clone(),
                events: self.events.clone(),
                url_guard: self.url_guard.clone(),
                stats: self.stats.clone(),
                sessions: self.sessions.clone(),
            },
            region,
        )
    }
}

/// How the use cases of one process are configured.
#[derive(Debug, Clone)]
pub struct ServicesConfig {
    pub region: Region,
    pub verifier: VerifierConfig,
    pub ingest: IngestConfig,
    pub delivery: DeliveryConfig,
    pub dsr: DsrConfig,
    /// Where the console is reached: mailed links start with it.
    pub public_url: String,
}

impl ServicesConfig {
    /// The defaults of every use case, serving `region`.
    pub fn new(region: Region) -> Self {
        Self {
            region,
            verifier: VerifierConfig::new(region),
            ingest: IngestConfig::new(region),
            delivery: DeliveryConfig::default(),
            dsr: DsrConfig::default(),
            public_url: crate::admin::DEFAULT_PUBLIC_URL.into(),
        }
    }
}

/// Every use case of one process, sharing one key verifier (its failure counters and verified
/// keys) and one invalidation bus (an admin change evicts ingest's and delivery's caches).
#[allow(missing_debug_implementations)]
pub struct Services {
    pub ingest: Arc<IngestService>,
    pub delivery: Arc<DeliveryService>,
    pub dsr: Arc<DsrService>,
    pub admin: Arc<AdminService>,
    pub verifier: Arc<KeyVerifier>,
    pub invalidations: Arc<Invalidations>,
}

impl Services {
    pub fn new(ports: &Ports, egress: Arc<dyn Egress>, config: ServicesConfig) -> Self {
        let invalidations = Invalidations::new();
        let verifier = Arc::new(KeyVerifier::new(config.verifier, ports.clock.clone()));
        let ingest = Arc::new(ports.ingest(config.ingest).with_verifier(verifier.clone()));
        invalidations.subscribe(ingest.clone());
        let delivery = Arc::new(ports.delivery(egress, config.delivery));
        invalidations.subscribe(delivery.clone());
        // An erasure suppresses its subject when it is submitted; ingest drops its cached list
        // at once, so the subject's next event is dropped.
        let dsr = Arc::new(
            ports
                .dsr(config.dsr)
                .with_invalidations(invalidations.clone()),
        );
        let admin = Arc::new(
            ports
                .admin(config.region)
                .with_verifier(verifier.clone())
                .with_invalidations(invalidations.clone())
                .with_public_url(config.public_url.clone()),
        );
        Self {
            ingest,
            delivery,
            dsr,
            admin,
            verifier,
            invalidations,
        }
    }
}
