//! In-process cache invalidation: the control plane publishes what it changed, and every
//! service of the same process that caches control data (key verifier, ingest settings,
//! delivery settings) drops the affected entries before the change's answer is sent.
//!
//! Another process (the operator CLI on the same data directory, another Lambda instance)
//! shares no memory: there, caches revalidate on their own within 5 s
//! ([`crate::keys::verifier::REVALIDATE_EVERY`], ingest's and delivery's settings TTL).

use std::sync::{Arc, Mutex, Weak};

use crate::keys::KeyId;
use crate::workspace::WorkspaceId;

/// What changed in the control store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A key was revoked, rotated (its end moved) or otherwise changed.
    Key(KeyId),
    /// The workspace's settings, destinations, users, roles or keys changed, or it closed.
    Workspace(WorkspaceId),
}

/// A cache that drops entries when told what changed.
pub trait Invalidate: Send + Sync {
    fn invalidate(&self, change: &Change);
}

/// The subscribers of one process. Subscribers are held weakly: a dropped service simply
/// stops receiving.
#[derive(Default)]
pub struct Invalidations {
    subscribers: Mutex<Vec<Weak<dyn Invalidate>>>,
}

impl std::fmt::Debug for Invalidations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invalidations").finish_non_exhaustive()
    }
}

impl Invalidations {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn subscribe(&self, subscriber: Arc<dyn Invalidate>) {
        self.subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::downgrade(&subscriber));
    }

    /// Tells every live subscriber, synchronously.
    pub fn publish(&self, change: &Change) {
        let live: Vec<Arc<dyn Invalidate>> = {
            let mut subs = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
            subs.retain(|s| s.strong_count() > 0);
            subs.iter().filter_map(Weak::upgrade).collect()
        };
        for s in live {
            s.invalidate(change);
        }
    }
}

impl Invalidate for crate::deliver::service::DeliveryService {
    fn invalidate(&self, _change: &Change) {
        // Delivery caches settings per destination; any change of a workspace drops them all
        // (a handful of reads on the next messages).
        crate::deliver::service::DeliveryService::invalidate(self);
    }
}

impl Invalidate for crate::ingest::IngestService {
    fn invalidate(&self, change: &Change) {
        Invalidate::invalidate(self.verifier(), change);
        if let Change::Workspace(ws) = change {
            self.invalidate_workspace(ws);
        }
    }
}
