//! API key lifecycle: keys live at most 90 days (whitepaper §05), and the workspace's admins
//! are warned by email 14 and 3 days before a key expires, once per key and warning.
//!
//! [`KeyExpiryNotifier::run`] is idempotent: it remembers on the key record which warnings
//! went out (`expiry_warnings_sent`), so a periodic runner (the `tracklayer serve` worker, the
//! scheduled dsr function) can call it as often as it likes. A warning is recorded after its
//! mail was accepted, so a crash in between may repeat that one mail, never lose it.

use std::sync::Arc;

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::error::StoreError;
use crate::keys::{ApiKeyRecord, Role};
use crate::ports::{ControlStore, Mail, Mailer};
use crate::workspace::Workspace;

/// Days before expiry at which the admins are warned, longest first.
pub const WARNING_DAYS: [u16; 2] = [14, 3];

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpiryReport {
    /// Keys whose warning was mailed (and recorded) in this run.
    pub warned: usize,
    /// Mails the mailer accepted (one per key and warning, to all admins of the workspace).
    pub mails: usize,
    /// Keys whose warning could not be mailed or recorded; the next run tries again.
    pub failed: usize,
}

/// Warns workspace admins of API keys about to expire.
#[allow(missing_debug_implementations)]
pub struct KeyExpiryNotifier {
    control: Arc<dyn ControlStore>,
    mailer: Arc<dyn Mailer>,
}

/// The warning due for a key at `now`, if one is due and was not sent yet: the shortest
/// threshold already crossed (a key created with 2 days left gets only the 3-day warning).
pub fn warning_due(key: &ApiKeyRecord, now: OffsetDateTime) -> Option<u16> {
    if key.revoked_at.is_some() || key.expires_at <= now {
        return None;
    }
    let left = key.expires_at - now;
    let due = WARNING_DAYS
        .into_iter()
        .filter(|d| left <= Duration::days(i64::from(*d)))
        .min()?;
    (!key.expiry_warnings_sent.contains(&due)).then_some(due)
}

impl KeyExpiryNotifier {
    pub fn new(control: Arc<dyn ControlStore>, mailer: Arc<dyn Mailer>) -> Self {
        Self { control, mailer }
    }

    /// Sends every warning due at `now`, across all open workspaces (closing one revoked its
    /// keys).
    pub async fn run(&self, now: OffsetDateTime) -> Result<ExpiryReport, StoreError> {
        let mut report = ExpiryReport::default();
        for ws in self.control.workspaces(now).await? {
            if ws.is_closed() {
                continue;
            }
            self.run_workspace(&ws, now, &mut report).await?;
        }
        if report.warned + report.failed > 0 {
            tracing::info!(
                warned = report.warned,
                mails = report.mails,
                failed = report.failed,
                "key expiry warnings"
            );
        }
        Ok(report)
    }

    async fn run_workspace(
        &self,
        ws: &Workspace,
        now: OffsetDateTime,
        report: &mut ExpiryReport,
    ) -> Result<(), StoreError> {
        let due: Vec<(ApiKeyRecord, u16)> = self
            .control
            .api_keys(&ws.id, now)
            .await?
            .into_iter()
            .filter_map(|k| warning_due(&k, now).map(|d| (k, d)))
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        let admins: Vec<String> = self
            .control
            .users(&ws.id, now)
            .await?
            .into_iter()
            .filter(|u| u.role == Role::Admin)
            .map(|u| u.email.into())
            .collect();
        if admins.is_empty() {
            tracing::warn!(workspace = %ws.id, keys = due.len(), "keys about to expire, but the workspace has no admin to warn");
            report.failed += due.len();
            return Ok(());
        }
        for (mut key, days) in due {
            let mail = warning_mail(ws, &key, days, admins.clone(), now);
            if let Err(e) = self.mailer.send(&mail).await {
                tracing::warn!(error = %e, key = %key.id, "could not mail a key expiry warning; will retry");
                report.failed += 1;
                continue;
            }
            report.mails += 1;
            // Every threshold crossed counts as sent: a later run never sends an older one.
            for d in WARNING_DAYS.into_iter().filter(|d| *d >= days) {
                if !key.expiry_warnings_sent.contains(&d) {
                    key.expiry_warnings_sent.push(d);
                }
            }
            key.expiry_warnings_sent.sort_unstable_by(|a, b| b.cmp(a));
            match self.control.update_api_key(&key).await {
                Ok(()) => report.warned += 1,
                Err(e) => {
                    tracing::warn!(error = %e, key = %key.id, "could not record a key expiry warning");
                    report.failed += 1;
                }
            }
        }
        Ok(())
    }
}

fn warning_mail(
    ws: &Workspace,
    key: &ApiKeyRecord,
    days: u16,
    to: Vec<String>,
    now: OffsetDateTime,
) -> Mail {
    let left = (key.expires_at - now).whole_days().max(0);
    let when = key.expires_at.format(&Rfc3339).unwrap_or_default();
    Mail {
        to,
        subject: format!(
            "TrackLayer: API key \"{}\" expires in {} days",
            key.name,
            left.max(1)
        ),
        text: format!(
            "The {kind} key \"{name}\" ({prefix}…) of workspace \"{ws_name}\" ({ws_id}) expires \
             at {when}.\n\nRotate it before then: POST /admin/v1/api-keys/{id}/rotate issues a \
             successor and keeps the old key working for up to 7 more days.\n\nThis is the \
             {days}-day warning; you will not get it again for this key.\n",
            kind = key.kind.as_str(),
            name = key.name,
            prefix = key.prefix,
            ws_name = ws.name,
            ws_id = ws.id,
            id = key.id,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyKind;
    use crate::workspace::{Region, WorkspaceId};
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

    fn key() -> ApiKeyRecord {
        serde_json::from_value(serde_json::json!({
            "id": "abcdefgh12345678",
            "workspace_id": WorkspaceId::new(Region::Us, "keyexp"),
            "kind": KeyKind::Ingest,
            "role": null,
            "user_id": null,
            "name": "web",
            "prefix": "tl_ingest_us_abcdefgh12345678",
            "verifier": "x",
            "created_at": "2026-03-01T12:00:00Z",
            "expires_at": "2026-05-30T12:00:00Z",
        }))
        .expect("a key record")
    }

    #[test]
    fn no_warning_is_due_15_days_before_expiry() {
        let k = key();
        assert_eq!(warning_due(&k, k.expires_at - Duration::days(15)), None);
    }

    #[test]
    fn the_14_day_warning_is_due_once() {
        let mut k = key();
        let at = k.expires_at - Duration::days(14);
        assert_eq!(warning_due(&k, at), Some(14));
        k.expiry_warnings_sent = vec![14];
        assert_eq!(warning_due(&k, at + Duration::days(5)), None);
        assert_eq!(warning_due(&k, k.expires_at - Duration::days(3)), Some(3));
    }

    #[test]
    fn a_short_lived_key_gets_only_the_3_day_warning() {
        let k = key();
        assert_eq!(warning_due(&k, k.expires_at - Duration::days(2)), Some(3));
    }

    #[test]
    fn revoked_and_expired_keys_get_no_warning() {
        let mut k = key();
        assert_eq!(warning_due(&k, k.expires_at), None);
        k.revoked_at = Some(T0);
        assert_eq!(warning_due(&k, k.expires_at - Duration::days(3)), None);
    }
}
