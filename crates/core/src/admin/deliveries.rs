//! A destination's delivery log and the replay of its dead letters.

use serde_json::json;
use time::OffsetDateTime;

use super::{require, AdminError, AdminService, Principal};
use crate::audit::AuditAction;
use crate::keys::Role;
use crate::ports::{DeliveryRecord, ReplayFilter};

impl AdminService {
    pub async fn delivery_log(
        &self,
        p: &Principal,
        id: &str,
        limit: usize,
    ) -> Result<Vec<DeliveryRecord>, AdminError> {
        let d = self.destination_record(p, id).await?;
        Ok(self
            .ports
            .delivery_log
            .for_destination(&p.workspace_id, &d.id, limit.clamp(1, 1000), self.now())
            .await?)
    }

    /// Moves a destination's dead letters (all, or those that died in a time range) back.
    pub async fn replay(
        &self,
        p: &Principal,
        id: &str,
        since: Option<OffsetDateTime>,
        until: Option<OffsetDateTime>,
    ) -> Result<u64, AdminError> {
        require(p, Role::Editor, "replay dead letters")?;
        self.open_ws(p).await?;
        let d = self.destination_record(p, id).await?;
        let moved = self
            .ports
            .queue
            .replay(
                d.kind,
                &ReplayFilter {
                    destination_id: Some(d.id.clone()),
                    since,
                    until,
                },
            )
            .await?;
        self.audit(
            p,
            AuditAction::DestinationReplay,
            d.id.as_str(),
            json!({"messages": moved}),
        )
        .await?;
        Ok(moved)
    }
}
