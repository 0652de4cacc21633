//! The security settings: IP blocklist, the pause of all egress, and the web origins
//! allowed to send tracking requests from a browser (CORS), and bot filtering.

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::{AdminResult, AdminService, Principal};
use crate::audit::AuditAction;
use crate::cors::AllowedOrigin;
use crate::keys::Role;
use crate::workspace::SecuritySettings;

/// A partial change of the security settings: an absent field stays as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityPatch {
    pub ip_blocklist: Option<Vec<crate::workspace::Cidr>>,
    pub egress_paused: Option<bool>,
    pub allowed_origins: Option<Vec<crate::cors::AllowedOrigin>>,
    pub bot_filter: Option<bool>,
}

impl AdminService {
    pub async fn security(&self, p: &Principal) -> AdminResult<SecuritySettings> {
        Ok(self.ws(p).await?.security)
    }

    /// The web origins allowed to send tracking requests from a browser.
    pub async fn cors(&self, p: &Principal) -> AdminResult<Vec<AllowedOrigin>> {
        Ok(self.ws(p).await?.security.allowed_origins)
    }

    /// Replaces the allowed origins (admin); audited like every security setting.
    pub async fn put_cors(
        &self,
        p: &Principal,
        origins: Vec<AllowedOrigin>,
    ) -> AdminResult<Vec<AllowedOrigin>> {
        let patch = SecurityPatch {
            allowed_origins: Some(origins),
            ..SecurityPatch::default()
        };
        Ok(self.patch_security(p, patch).await?.allowed_origins)
    }

    /// Whether the events of well-known crawlers are dropped before routing.
    pub async fn bot_filter(&self, p: &Principal) -> AdminResult<bool> {
        Ok(self.ws(p).await?.security.bot_filter)
    }

    /// Turns bot filtering on or off (admin); audited like every security setting.
    pub async fn put_bot_filter(&self, p: &Principal, on: bool) -> AdminResult<bool> {
        let patch = SecurityPatch {
            bot_filter: Some(on),
            ..SecurityPatch::default()
        };
        Ok(self.patch_security(p, patch).await?.bot_filter)
    }

    /// Replaces the blocklist and the egress switch: every field is given. The allowed
    /// origins have their own resource ([`Self::put_cors`]) and stay as they are.
    pub async fn put_security(
        &self,
        p: &Principal,
        settings: SecuritySettings,
    ) -> AdminResult<SecuritySettings> {
        self.patch_security(
            p,
            SecurityPatch {
                ip_blocklist: Some(settings.ip_blocklist),
                egress_paused: Some(settings.egress_paused),
                allowed_origins: None,
                bot_filter: None,
            },
        )
        .await
    }

    /// Changes the fields the patch names; the others stay. Audited with old and new values.
    pub async fn patch_security(
        &self,
        p: &Principal,
        patch: SecurityPatch,
    ) -> AdminResult<SecuritySettings> {
        let mut ws = self
            .open_ws_as(p, Role::Admin, "change security settings")
            .await?;
        let SecurityPatch {
            ip_blocklist,
            egress_paused,
            allowed_origins,
            bot_filter,
        } = patch;
        let (mut changed, s) = (Changes::default(), &mut ws.security);
        changed.apply("ip_blocklist", &mut s.ip_blocklist, ip_blocklist);
        changed.apply("egress_paused", &mut s.egress_paused, egress_paused);
        changed.apply("allowed_origins", &mut s.allowed_origins, allowed_origins);
        changed.apply("bot_filter", &mut s.bot_filter, bot_filter);
        if !changed.0.is_empty() {
            self.save_ws(&ws).await?;
            self.audit(
                p,
                AuditAction::SecurityUpdate,
                "workspace",
                json!({"changed": changed.0}),
            )
            .await?;
        }
        Ok(ws.security)
    }
}

/// The fields a patch changed: `{"<name>": {"from": old, "to": new}}`.
#[derive(Default)]
struct Changes(Map<String, Value>);

impl Changes {
    /// Sets `field` to `new` when one is given and differs, and notes the change under `name`.
    fn apply<T: PartialEq + Serialize>(&mut self, name: &str, field: &mut T, new: Option<T>) {
        if let Some(new) = new.filter(|new| new != field) {
            self.0
                .insert(name.into(), json!({"from": field, "to": new}));
            *field = new;
        }
    }
}
