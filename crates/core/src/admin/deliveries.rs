//! A destination's delivery log and the replay of its dead letters.

use serde_json::json;
use time::OffsetDateTime;

use super::{AdminResult, AdminService, Principal};
use crate::audit::AuditAction;
use crate::keys::Role;
use crate::ports::{DeliveryPage, DeliveryQuery, LogOf, ReplayFilter};

impl AdminService {
    /// One page of a destination's delivery log (at most 1,000 records), newest first.
    pub async fn delivery_log(
        &self,
        p: &Principal,
        id: &str,
        mut query: DeliveryQuery,
    ) -> AdminResult<DeliveryPage> {
        let d = self.destination_record(p, id).await?;
        query.limit = query.limit.clamp(1, 1000);
        Ok(self
            .ports
            .delivery_log
            .page(LogOf::new(&p.workspace_id, &d.id), &query, self.now())
            .await?)
    }

    /// Moves a destination's dead letters (all, or those that died in a time range) back.
    pub async fn replay(
        &self,
        p: &Principal,
        id: &str,
        since: Option<OffsetDateTime>,
        until: Option<OffsetDateTime>,
    ) -> AdminResult<u64> {
        self.open_ws_as(p, Role::Editor, "replay dead letters")
            .await?;
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
