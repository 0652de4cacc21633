//! The workspace: its name, retention and consent policy.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::{require, AdminError, AdminResult, AdminService, Principal};
use crate::audit::AuditAction;
use crate::consent::ConsentPolicy;
use crate::keys::Role;
use crate::name::Name;
use crate::workspace::{Region, Workspace, WorkspaceId};

/// A workspace as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkspaceView {
    pub id: WorkspaceId,
    pub name: String,
    pub region: Region,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub event_retention_days: u16,
    /// Fixed by whitepaper §02.
    pub ip_user_agent_retention_days: i64,
    pub consent_policy: ConsentPolicy,
    /// `platform` or the customer's key ARN (BYOK).
    pub encryption_key: String,
}

/// What may change on a workspace.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspacePatch {
    pub name: Option<String>,
    pub event_retention_days: Option<u16>,
    pub consent_policy: Option<ConsentPolicy>,
}

impl AdminService {
    // ---------------------------------------------------------------- workspace

    pub async fn workspace(&self, p: &Principal) -> AdminResult<WorkspaceView> {
        let ws = self.ws(p).await?;
        Ok(view(&ws))
    }

    pub async fn update_workspace(
        &self,
        p: &Principal,
        patch: WorkspacePatch,
    ) -> AdminResult<WorkspaceView> {
        let mut ws = self.open_ws(p).await?;
        let mut changed = serde_json::Map::new();
        if let Some(name) = patch.name {
            require(p, Role::Editor, "rename the workspace")?;
            let name = Name::parse(&name)
                .map_err(|e| AdminError::invalid("name", e.to_string()))?
                .into_string();
            ws.name = name.clone();
            changed.insert("name".into(), json!(name));
        }
        if let Some(days) = patch.event_retention_days {
            require(p, Role::Admin, "change retention")?;
            if !(1..=365).contains(&days) {
                return Err(AdminError::invalid(
                    "event_retention_days",
                    "must be from 1 to 365",
                ));
            }
            changed.insert(
                "event_retention_days".into(),
                json!({"from": ws.retention.event_days, "to": days}),
            );
            ws.retention.event_days = days;
        }
        if let Some(policy) = patch.consent_policy {
            require(p, Role::Editor, "change the consent policy")?;
            changed.insert("consent_policy".into(), json!(policy));
            ws.consent = policy;
        }
        if changed.is_empty() {
            return Ok(view(&ws));
        }
        self.save_ws(&ws).await?;
        self.audit(
            p,
            AuditAction::WorkspaceUpdate,
            "workspace",
            Value::Object(changed),
        )
        .await?;
        Ok(view(&ws))
    }

    pub async fn consent_policy(&self, p: &Principal) -> AdminResult<ConsentPolicy> {
        Ok(self.ws(p).await?.consent)
    }

    pub async fn put_consent_policy(
        &self,
        p: &Principal,
        policy: ConsentPolicy,
    ) -> AdminResult<ConsentPolicy> {
        self.update_workspace(
            p,
            WorkspacePatch {
                consent_policy: Some(policy),
                ..Default::default()
            },
        )
        .await
        .map(|v| v.consent_policy)
    }
}

pub(super) fn view(ws: &Workspace) -> WorkspaceView {
    WorkspaceView {
        id: ws.id.clone(),
        name: ws.name.clone(),
        region: ws.region,
        created_at: ws.created_at,
        event_retention_days: ws.retention.event_days,
        ip_user_agent_retention_days: crate::workspace::Retention::OPERATIONAL_DAYS,
        consent_policy: ws.consent.clone(),
        encryption_key: match &ws.key_ref {
            crate::workspace::KeyRef::Platform => "platform".into(),
            crate::workspace::KeyRef::Customer { key_arn } => key_arn.clone(),
        },
    }
}
