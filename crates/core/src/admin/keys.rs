//! API keys: ingest write keys, service tokens and personal tokens.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;

use super::{require, AdminError, AdminResult, AdminService, Principal};
use crate::audit::AuditAction;
use crate::control_plane::IssuedKey;
use crate::invalidation::Change;
use crate::keys::{ApiKeyRecord, KeyId, KeyKind, Role};
use crate::name::Name;

/// A key as listings show it (never its secret or verifier).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyView {
    pub id: KeyId,
    pub prefix: String,
    pub kind: KeyKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    pub browser: bool,
}

impl From<&ApiKeyRecord> for KeyView {
    fn from(r: &ApiKeyRecord) -> Self {
        Self {
            id: r.id.clone(),
            prefix: r.prefix.clone(),
            kind: r.kind,
            role: r.role,
            name: r.name.clone(),
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            last_used_at: r.last_used_at,
            browser: r.browser,
        }
    }
}

/// A new key and its secret, shown once.
#[derive(Debug)]
pub struct CreatedKey {
    pub key: KeyView,
    pub secret: SecretString,
}

/// What to create: an ingest write key, a service token with a role, or a SCIM token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRequest {
    pub kind: KeyKind,
    #[serde(default)]
    pub role: Option<Role>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub expires_in_days: Option<i64>,
    /// A browser-facing write key ([`ApiKeyRecord::browser`]).
    #[serde(default)]
    pub browser: bool,
}

/// Most days a rotated key keeps working next to its successor.
pub const MAX_ROTATION_OVERLAP_DAYS: i64 = 7;

impl AdminService {
    pub async fn keys(&self, p: &Principal) -> AdminResult<Vec<KeyView>> {
        require(p, Role::Admin, "list keys")?;
        let now = self.now();
        // Ended keys are account data: kept 90 days past their end, then never shown.
        Ok(self
            .ports
            .control
            .api_keys(&p.workspace_id, now)
            .await?
            .iter()
            .filter(|k| k.retained_until() > now)
            .map(KeyView::from)
            .collect())
    }

    pub async fn create_key(&self, p: &Principal, req: KeyRequest) -> AdminResult<CreatedKey> {
        require(p, Role::Admin, "create keys")?;
        let days = req
            .expires_in_days
            .unwrap_or(crate::keys::MAX_KEY_LIFETIME_DAYS);
        if !(1..=crate::keys::MAX_KEY_LIFETIME_DAYS).contains(&days) {
            return Err(AdminError::invalid(
                "expires_in_days",
                "must be from 1 to 90",
            ));
        }
        let (kind, role) = match (req.kind, req.role) {
            (KeyKind::Ingest, None) => (KeyKind::Ingest, None),
            (KeyKind::Ingest, Some(_)) => {
                return Err(AdminError::invalid(
                    "role",
                    "ingest write keys have no role",
                ))
            }
            (KeyKind::Svc, Some(role)) => (KeyKind::Svc, Some(role)),
            (KeyKind::Svc, None) => {
                return Err(AdminError::invalid("role", "service tokens need a role"))
            }
            (KeyKind::Scim, None) => (KeyKind::Scim, None),
            (KeyKind::Scim, Some(_)) => {
                return Err(AdminError::invalid(
                    "role",
                    "SCIM tokens have no role: they provision users at /scim/v2 only",
                ))
            }
            (KeyKind::Pat, _) => {
                return Err(AdminError::invalid(
                    "kind",
                    "must be ingest, svc or scim (personal tokens come with users)",
                ))
            }
        };
        let name = req.name.unwrap_or_else(|| format!("{} key", kind.as_str()));
        let name = Name::parse(&name)
            .map_err(|e| AdminError::invalid("name", e.to_string()))?
            .into_string();
        if req.browser && kind != KeyKind::Ingest {
            return Err(AdminError::invalid(
                "browser",
                "only ingest write keys can be browser-facing",
            ));
        }
        let ws = self.open_ws(p).await?;
        let mut issued = self
            .control()
            .issue_key(&ws, kind, role, None, &name, days)
            .await?;
        if req.browser {
            issued.record.browser = true;
            self.ports.control.update_api_key(&issued.record).await?;
        }
        self.audit(
            p,
            AuditAction::ApiKeyCreate,
            issued.record.id.as_str(),
            json!({"kind": kind, "role": role, "expires_in_days": days, "browser": req.browser}),
        )
        .await?;
        Ok(created(issued))
    }

    async fn key_record(&self, p: &Principal, id: &str) -> AdminResult<ApiKeyRecord> {
        let id = KeyId::parse(id).map_err(|_| AdminError::NotFound("api key"))?;
        self.ports
            .control
            .api_key(&id, self.now())
            .await?
            .filter(|k| k.workspace_id == p.workspace_id)
            .ok_or(AdminError::NotFound("api key"))
    }

    /// A new key like `id`; the old one keeps working until `overlap_days` (≤ 7) from now.
    pub async fn rotate_key(
        &self,
        p: &Principal,
        id: &str,
        overlap_days: Option<i64>,
    ) -> AdminResult<CreatedKey> {
        self.rotate(p, id, overlap_days, false).await
    }

    /// [`Self::rotate_key`] from a console session: a personal token of a user whose domain
    /// enforces SSO is rotated only in a session begun through SSO.
    /// `sso`: the session began through SSO ([`crate::sessions::ConsoleSession::sso`]).
    pub async fn rotate_key_in_session(
        &self,
        p: &Principal,
        sso: bool,
        id: &str,
        overlap_days: Option<i64>,
    ) -> AdminResult<CreatedKey> {
        self.rotate(p, id, overlap_days, sso).await
    }

    async fn rotate(
        &self,
        p: &Principal,
        id: &str,
        overlap_days: Option<i64>,
        sso_session: bool,
    ) -> AdminResult<CreatedKey> {
        require(p, Role::Admin, "rotate keys")?;
        let overlap = overlap_days.unwrap_or(MAX_ROTATION_OVERLAP_DAYS);
        if !(0..=MAX_ROTATION_OVERLAP_DAYS).contains(&overlap) {
            return Err(AdminError::invalid("overlap_days", "must be from 0 to 7"));
        }
        let mut old = self.key_record(p, id).await?;
        // The new secret goes to the caller: a personal token only to its own user (or the
        // operator on the machine), or an admin could act as any other user.
        if old.kind == KeyKind::Pat && !may_hold_personal_token(p, &old) {
            return Err(AdminError::Forbidden {
                role: p.role,
                action: "rotate another user's personal token (only revoke it)",
            });
        }
        if old.revoked_at.is_some() {
            return Err(AdminError::Conflict(
                "a revoked key cannot be rotated".into(),
            ));
        }
        if old.kind == KeyKind::Pat {
            self.require_sso_for_personal_token(p, &old, sso_session)
                .await?;
        }
        let ws = self.open_ws(p).await?;
        let mut issued = self
            .control()
            .issue_key(
                &ws,
                old.kind,
                old.role,
                old.user_id.clone(),
                &old.name,
                crate::keys::MAX_KEY_LIFETIME_DAYS,
            )
            .await?;
        if old.browser {
            // The successor of a browser-facing key is browser-facing too.
            issued.record.browser = true;
            self.ports.control.update_api_key(&issued.record).await?;
        }
        let overlap_end = self.now() + time::Duration::days(overlap);
        if old.expires_at > overlap_end {
            old.expires_at = overlap_end;
            self.ports.control.update_api_key(&old).await?;
        }
        self.changed(Change::Key(old.id.clone()));
        self.audit(p, AuditAction::ApiKeyRotate, old.id.as_str(), json!({"new_key": issued.record.id, "old_key_expires_at": old.expires_at.unix_timestamp()}))
            .await?;
        Ok(created(issued))
    }

    pub async fn revoke_key(&self, p: &Principal, id: &str) -> AdminResult<KeyView> {
        require(p, Role::Admin, "revoke keys")?;
        let old = self.key_record(p, id).await?;
        let revoked = if old.revoked_at.is_some() {
            old
        } else {
            self.control().revoke_key(&old).await?
        };
        self.changed(Change::Key(revoked.id.clone()));
        self.audit(
            p,
            AuditAction::ApiKeyRevoke,
            revoked.id.as_str(),
            json!({"kind": revoked.kind}),
        )
        .await?;
        Ok(KeyView::from(&revoked))
    }
}

/// Whether `p` may receive a new secret of the personal token `key`: its own user, or the
/// operator CLI on the machine.
fn may_hold_personal_token(p: &Principal, key: &ApiKeyRecord) -> bool {
    let own = key
        .user_id
        .as_ref()
        .is_some_and(|user| p.actor == format!("user:{user}"));
    own || (p.key_id.is_none() && p.actor == Principal::operator(&p.workspace_id).actor)
}

fn created(issued: IssuedKey) -> CreatedKey {
    CreatedKey {
        key: KeyView::from(&issued.record),
        secret: issued.secret,
    }
}
