//! The security settings: IP blocklist and the pause of all egress.

use serde_json::json;

use super::{require, AdminError, AdminService, Principal};
use crate::audit::AuditAction;
use crate::keys::Role;
use crate::workspace::SecuritySettings;

/// A partial change of the security settings: an absent field stays as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityPatch {
    pub ip_blocklist: Option<Vec<crate::workspace::Cidr>>,
    pub egress_paused: Option<bool>,
}

impl AdminService {
    pub async fn security(&self, p: &Principal) -> Result<SecuritySettings, AdminError> {
        Ok(self.ws(p).await?.security)
    }

    /// Replaces the security settings: every field is given.
    pub async fn put_security(
        &self,
        p: &Principal,
        settings: SecuritySettings,
    ) -> Result<SecuritySettings, AdminError> {
        self.patch_security(
            p,
            SecurityPatch {
                ip_blocklist: Some(settings.ip_blocklist),
                egress_paused: Some(settings.egress_paused),
            },
        )
        .await
    }

    /// Changes the fields the patch names; the others stay. Audited with old and new values.
    pub async fn patch_security(
        &self,
        p: &Principal,
        patch: SecurityPatch,
    ) -> Result<SecuritySettings, AdminError> {
        require(p, Role::Admin, "change security settings")?;
        let mut ws = self.open_ws(p).await?;
        let mut changed = serde_json::Map::new();
        if let Some(list) = patch.ip_blocklist {
            if list != ws.security.ip_blocklist {
                changed.insert(
                    "ip_blocklist".into(),
                    json!({"from": ws.security.ip_blocklist, "to": list}),
                );
                ws.security.ip_blocklist = list;
            }
        }
        if let Some(paused) = patch.egress_paused {
            if paused != ws.security.egress_paused {
                changed.insert(
                    "egress_paused".into(),
                    json!({"from": ws.security.egress_paused, "to": paused}),
                );
                ws.security.egress_paused = paused;
            }
        }
        if !changed.is_empty() {
            self.save_ws(&ws).await?;
            self.audit(
                p,
                AuditAction::SecurityUpdate,
                "workspace",
                json!({"changed": changed}),
            )
            .await?;
        }
        Ok(ws.security)
    }
}
