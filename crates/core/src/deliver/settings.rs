//! Destination settings and opened secrets, cached per workspace and destination, and the
//! suppression list of erased subjects.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::Value;

use super::flow_control::held;
use super::service::{acked, DeliveryError, DeliveryService, Disposition, Part};
use crate::crypto::WorkspaceKeys;
use crate::destination::secret_opener::destination_secrets;
use crate::destination::{Destination, DestinationId};
use crate::error::KeyError;
use crate::event::QueueBody;
use crate::workspace::{Workspace, WorkspaceId};

pub(super) struct Settings {
    pub(super) workspace: Workspace,
    pub(super) destination: Destination,
    pub(super) secrets: Value,
    pub(super) keys: WorkspaceKeys,
}

impl Settings {
    /// Whether nothing may go to this destination now: it is paused, or its workspace's
    /// egress is (incident containment).
    pub(super) fn egress_paused(&self) -> bool {
        self.destination.paused || self.workspace.security.egress_paused
    }
}

/// A workspace's suppression tokens.
pub(super) type Suppressed = Arc<HashSet<String>>;

impl DeliveryService {
    pub(super) async fn settings(
        &self,
        body: &QueueBody,
    ) -> Result<Option<Arc<Settings>>, DeliveryError> {
        self.settings_of(&body.workspace_id, &body.destination_id)
            .await
    }

    /// The settings of destination `dest` of workspace `ws` (cached); `None` when either is
    /// deleted.
    pub(super) async fn settings_of(
        &self,
        ws: &WorkspaceId,
        dest: &DestinationId,
    ) -> Result<Option<Arc<Settings>>, DeliveryError> {
        let now = self.ports.clock.now();
        let key = (ws.clone(), dest.clone());
        if let Some(s) = self.settings.get(&key) {
            return Ok(Some(s));
        }
        let Some(workspace) = self.ports.control.workspace(ws, now).await? else {
            return Ok(None);
        };
        let Some(destination) = self.ports.control.destination(ws, dest).await? else {
            return Ok(None);
        };
        let data_key = self
            .ports
            .keyring
            .unwrap_data_key(&workspace.id, &workspace.key_ref, &workspace.data_key)
            .await?;
        let keys = WorkspaceKeys::new(&data_key);
        let secrets = destination_secrets(&keys, &destination)?;
        let s = Arc::new(Settings {
            workspace,
            destination,
            secrets,
            keys,
        });
        self.settings.insert(key, s.clone());
        Ok(Some(s))
    }

    /// Removes the items of erased subjects from the parts: they were queued before the
    /// erasure and are neither sent nor logged. The workspace's list is cached like its
    /// settings, so a new suppression is seen within `settings_ttl`; erasure waits longer
    /// than that before it deletes (`DsrConfig`).
    pub(super) async fn drop_suppressed(&self, group: &mut [Part]) -> Result<(), DeliveryError> {
        let list = &self.ports.suppressions;
        if group
            .iter()
            .all(|p| p.body.items.iter().all(|i| i.suppression.is_empty()))
        {
            return Ok(());
        }
        let Some(ws) = group.first().map(|p| p.body.workspace_id.clone()) else {
            return Ok(());
        };
        let set = match self.suppressed.get(&ws) {
            Some(set) => set,
            None => {
                let set: Suppressed = Arc::new(
                    list.suppressed(&ws)
                        .await
                        .map_err(DeliveryError::Store)?
                        .into_iter()
                        .collect(),
                );
                self.suppressed.insert(ws, set.clone());
                set
            }
        };
        if set.is_empty() {
            return Ok(());
        }
        for p in group.iter_mut() {
            let before = p.body.items.len();
            p.body
                .items
                .retain(|i| !i.suppression.iter().any(|t| set.contains(t)));
            let dropped = before - p.body.items.len();
            if dropped > 0 {
                tracing::info!(
                    destination = %p.body.destination_id,
                    dropped,
                    "dropped queued items of erased subjects"
                );
            }
        }
        Ok(())
    }

    /// Drops cached settings of a destination (after a change in this process).
    pub fn invalidate(&self) {
        self.settings.clear();
    }
}

/// A group's settings, or what became of its messages without them.
pub(super) enum Loaded {
    Ready(Arc<Settings>),
    Done(Vec<(usize, Disposition)>),
}

impl DeliveryService {
    /// The settings of a group's destination. Without them nothing is sent: a disabled
    /// workspace key (BYOK) holds the messages, a deleted destination or workspace drops them.
    pub(super) async fn group_settings(&self, group: &[Part]) -> Result<Loaded, DeliveryError> {
        let Some(first) = group.first() else {
            return Ok(Loaded::Done(Vec::new()));
        };
        let settings = match self.settings(&first.body).await {
            Err(DeliveryError::Key(KeyError::Unavailable(why))) => {
                // The workspace key (BYOK) is disabled: nothing can be opened or sent. Keep the
                // messages, like a paused destination's, without spending their attempts;
                // they go out once the key is back.
                tracing::warn!(destination = %first.body.destination_id, reason = %why, "workspace key unavailable: deliveries wait");
                return Ok(Loaded::Done(held(group, self.config.paused_recheck)));
            }
            other => other?,
        };
        let Some(settings) = settings else {
            tracing::info!(destination = %first.body.destination_id, "destination or workspace deleted: dropping its messages");
            return Ok(Loaded::Done(acked(group)));
        };
        Ok(Loaded::Ready(settings))
    }
}
