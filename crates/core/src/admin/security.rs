//! The security settings: IP blocklist and the pause of all egress.

use serde::Serialize;
use serde_json::{json, Map, Value};

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
        let mut changed = Map::new();
        change(
            &mut changed,
            "ip_blocklist",
            &mut ws.security.ip_blocklist,
            patch.ip_blocklist,
        );
        change(
            &mut changed,
            "egress_paused",
            &mut ws.security.egress_paused,
            patch.egress_paused,
        );
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

/// Sets `field` to `new` when one is given and differs, and notes the change under `name`
/// as `{"from": old, "to": new}`.
fn change<T: PartialEq + Serialize>(
    changed: &mut Map<String, Value>,
    name: &str,
    field: &mut T,
    new: Option<T>,
) {
    if let Some(new) = new.filter(|new| new != field) {
        changed.insert(name.into(), json!({"from": field, "to": new}));
        *field = new;
    }
}
