//! Data lifecycle of a workspace: retention (whitepaper §02), the key that wraps its data key
//! (BYOK, whitepaper §05), and its closure, which is how its account data ends. Admins only;
//! every change is audited.

use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;

use super::{require, view, AdminError, AdminResult, AdminService, Principal, WorkspaceView};
use crate::audit::AuditAction;
use crate::error::{KeyError, StoreError};
use crate::invalidation::Change;
use crate::keys::{ApiKeyRecord, KeyId, Role};
use crate::ports::{ControlStore, DsrStore};
use crate::workspace::{KeyRef, Region, Retention, Workspace, WorkspaceId};

/// How long each data class is kept, as the API shows it. Only event retention is a setting;
/// the others are fixed by the whitepaper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RetentionView {
    /// Event metadata and pseudonymous ids: 1..=365 days.
    pub event_retention_days: u16,
    pub ip_user_agent_retention_days: i64,
    pub delivery_log_retention_days: i64,
    pub audit_log_retention_days: i64,
    /// Account data is kept this long after it ends: a key's record after the key was revoked
    /// or expired; the workspace, its users and role assignments after the workspace was
    /// closed ([`AdminService::close_workspace`]), which is how account data ends. Destinations
    /// and their secrets are deleted at closure itself.
    pub account_data_days_after_end: i64,
}

/// What closing a workspace did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Closure {
    pub workspace_id: WorkspaceId,
    #[serde(with = "time::serde::rfc3339")]
    pub closed_at: OffsetDateTime,
    /// `closed_at` + 90 days: from then on no read returns the workspace, its users or its
    /// keys, and the stores delete them (the SQLite sweeper; DynamoDB's TTL, late).
    #[serde(with = "time::serde::rfc3339")]
    pub account_data_deleted_after: OffsetDateTime,
    /// Keys that still worked and were revoked by the closure.
    pub keys_revoked: usize,
    /// Destinations deleted with their secrets.
    pub destinations_deleted: usize,
    /// Data-subject requests and suppression entries stamped to end with the account data
    /// ([`close_account_with_dsr`]; 0 from [`close_account`] alone).
    pub data_subject_records: u64,
}

async fn revoke_at(
    store: &dyn ControlStore,
    key: &ApiKeyRecord,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    let mut revoked = key.clone();
    revoked.revoked_at = Some(at);
    store.update_api_key(&revoked).await
}

/// `Conflict` when `ws` is closed already.
fn refuse_closed(ws: &Workspace) -> Result<(), StoreError> {
    if ws.is_closed() {
        return Err(StoreError::Conflict("the workspace is closed already"));
    }
    Ok(())
}

/// Closes `ws` at `at` in the control store: revokes every key that still works at `at` (its
/// record then expires 90 days after `at`), then the store deletes the destinations and stamps
/// the workspace, its users and its key records to expire at `at` + 90 days.
///
/// `last` (the caller's own key) is revoked after the closure is stored, so that an attempt
/// that fails half-way can be repeated with it: every step before is idempotent. `Conflict` if
/// the workspace is closed already.
pub async fn close_account(
    store: &dyn ControlStore,
    ws: &Workspace,
    at: OffsetDateTime,
    last: Option<&KeyId>,
) -> Result<Closure, StoreError> {
    refuse_closed(ws)?;
    let destinations = store.destinations(&ws.id).await?.len();
    let working: Vec<ApiKeyRecord> = store
        .api_keys(&ws.id, at)
        .await?
        .into_iter()
        .filter(|k| k.refusal(at).is_none())
        .collect();
    let (own, others): (Vec<_>, Vec<_>) = working
        .iter()
        .partition(|k| last.is_some_and(|id| *id == k.id));
    for key in &others {
        revoke_at(store, key, at).await?;
    }
    let mut closed = ws.clone();
    closed.closed_at = Some(at);
    store.close_workspace(&closed).await?;
    for key in &own {
        revoke_at(store, key, at).await?;
    }
    Ok(Closure {
        workspace_id: ws.id.clone(),
        closed_at: at,
        account_data_deleted_after: at + Retention::account_grace(),
        keys_revoked: working.len(),
        destinations_deleted: destinations,
        data_subject_records: 0,
    })
}

/// Closes `ws` at `at` ([`close_account`]) and ends its data-subject requests (with their
/// receipts) and its suppression list with its account data, at `at` + 90 days
/// ([`DsrStore::end_with_account`]). The DSR store stamps its own records: on DynamoDB they
/// share the workspace's ControlTable partition, but the control store does not write
/// another port's items.
///
/// The DSR records are stamped first, so that a failed attempt can be repeated (the
/// closure's last write is the workspace, and a second closure is a `Conflict`), and once
/// more after the closure is stored, for what the DSR worker wrote in between (it had not
/// seen the closure; from then on it stamps what it writes itself, `DsrService`).
pub async fn close_account_with_dsr(
    control: &dyn ControlStore,
    dsr: &dyn DsrStore,
    ws: &Workspace,
    at: OffsetDateTime,
    last: Option<&KeyId>,
) -> Result<Closure, StoreError> {
    refuse_closed(ws)?;
    let until = at + Retention::account_grace();
    let before = dsr.end_with_account(&ws.id, until).await?;
    let mut closure = close_account(control, ws, at, last).await?;
    let after = dsr.end_with_account(&ws.id, until).await?;
    closure.data_subject_records = before + after;
    Ok(closure)
}

impl From<Retention> for RetentionView {
    fn from(r: Retention) -> Self {
        Self {
            event_retention_days: r.event_days,
            ip_user_agent_retention_days: Retention::OPERATIONAL_DAYS,
            delivery_log_retention_days: Retention::DELIVERY_LOG_DAYS,
            audit_log_retention_days: Retention::AUDIT_DAYS,
            account_data_days_after_end: Retention::ACCOUNT_GRACE_DAYS,
        }
    }
}

/// `arn:aws:kms:<region>:<12-digit account>:key/<id>` (or `alias/<name>`), in the AWS region
/// that holds the workspace's data: a key elsewhere would move the data key out of region.
fn parse_key_arn(arn: &str, region: Region) -> AdminResult<String> {
    let field = "key_arn";
    let arn = arn.trim();
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [scheme, partition, service, key_region, account, resource] = parts[..] else {
        return Err(AdminError::invalid(
            field,
            "must be a KMS key ARN: arn:aws:kms:<region>:<account>:key/<id>",
        ));
    };
    let resource_ok = resource
        .strip_prefix("key/")
        .or_else(|| resource.strip_prefix("alias/"))
        .is_some_and(|id| {
            !id.is_empty()
                && id.len() <= 256
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_/".contains(&b))
        });
    if scheme != "arn"
        || !partition.starts_with("aws")
        || service != "kms"
        || account.len() != 12
        || !account.bytes().all(|b| b.is_ascii_digit())
        || !resource_ok
    {
        return Err(AdminError::invalid(
            field,
            "must be a KMS key ARN: arn:aws:kms:<region>:<account>:key/<id>",
        ));
    }
    if key_region != region.aws_region() {
        return Err(AdminError::invalid(
            field,
            format!(
                "the key must live in {} with the workspace's data (region {region})",
                region.aws_region()
            ),
        ));
    }
    Ok(arn.to_owned())
}

impl AdminService {
    /// Closes the caller's workspace (admins only): `confirm` must be its id. At once every
    /// API key (ingest keys, personal and service tokens, the caller's own included) is
    /// revoked and every destination deleted with its secrets; the workspace, its users, the
    /// key records, its data-subject requests with their receipts and its suppression list
    /// are kept 90 more days (whitepaper §02: life of account plus 90 days), then no read
    /// returns the account data and the stores delete all of it. Open data-subject requests
    /// are still completed by the DSR worker meanwhile (an erasure is owed whatever becomes of
    /// the account, and the workspace's events outlive it by their own retention; an access
    /// request makes no export, which no key could download). The audit
    /// log keeps its own 365-day retention; events expire by theirs. `Conflict` if it is
    /// closed already.
    pub async fn close_workspace(&self, p: &Principal, confirm: &str) -> AdminResult<Closure> {
        require(p, Role::Admin, "close the workspace")?;
        if confirm != p.workspace_id.as_str() {
            // The detail does not repeat the id: a client that guesses would learn it here.
            return Err(AdminError::Invalid {
                field: "confirm".into(),
                detail: "must be the id of the workspace this token belongs to \
                         (GET /admin/v1/workspace shows it)"
                    .into(),
            });
        }
        let ws = self.ws(p).await?;
        let closure = close_account_with_dsr(
            self.ports.control.as_ref(),
            self.ports.dsr.as_ref(),
            &ws,
            self.now(),
            p.key_id.as_ref(),
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => {
                AdminError::Conflict("the workspace is closed already".into())
            }
            other => other.into(),
        })?;
        self.changed(Change::Workspace(ws.id.clone()));
        self.audit(
            p,
            AuditAction::WorkspaceClosed,
            "workspace",
            json!({
                "keys_revoked": closure.keys_revoked,
                "destinations_deleted": closure.destinations_deleted,
                "data_subject_records": closure.data_subject_records,
                "account_data_deleted_after": closure.account_data_deleted_after.unix_timestamp(),
            }),
        )
        .await?;
        Ok(closure)
    }

    pub async fn retention(&self, p: &Principal) -> AdminResult<RetentionView> {
        Ok(self.ws(p).await?.retention.into())
    }

    /// Sets event retention (admin). It applies to events written from now on: expiry is
    /// stamped at write time, so events already stored keep theirs.
    pub async fn put_retention(
        &self,
        p: &Principal,
        event_days: u16,
    ) -> AdminResult<RetentionView> {
        require(p, Role::Admin, "change retention")?;
        let retention = Retention::with_event_days(event_days)
            .ok_or_else(|| AdminError::invalid("event_retention_days", "must be from 1 to 365"))?;
        let mut ws = self.open_ws(p).await?;
        let from = ws.retention.event_days;
        if from != event_days {
            ws.retention = retention;
            self.save_ws(&ws).await?;
            self.audit(
                p,
                AuditAction::RetentionUpdate,
                "workspace",
                json!({"event_retention_days": {"from": from, "to": event_days}}),
            )
            .await?;
        }
        Ok(ws.retention.into())
    }

    /// Switches the key that wraps the workspace data key: the customer's KMS key
    /// (`Some(arn)`, BYOK) or the platform key (`None`). The data key itself stays: it is
    /// unwrapped with the current key and wrapped again with the new one, so everything
    /// sealed with it (IP/UA, destination secrets, queued messages) stays readable and no copy
    /// wrapped by the old key is kept. Admins only; audited.
    pub async fn set_encryption_key(
        &self,
        p: &Principal,
        key_arn: Option<&str>,
    ) -> AdminResult<WorkspaceView> {
        let mut ws = self
            .open_ws_as(p, Role::Admin, "change the encryption key")
            .await?;
        let new_ref = match key_arn {
            Some(arn) => KeyRef::Customer {
                key_arn: parse_key_arn(arn, ws.region)?,
            },
            None => KeyRef::Platform,
        };
        if new_ref == ws.key_ref {
            return Ok(view(&ws));
        }
        // The current key must still work: without it the data key is lost to us as well.
        let plain = self.ports.data_key(&ws).await?;
        let wrapped = self
            .ports
            .keyring
            .wrap_data_key(&ws.id, &new_ref, &plain)
            .await
            .map_err(|e| match e {
                KeyError::Unavailable(why) => {
                    AdminError::invalid("key_arn", format!("the key cannot be used: {why}"))
                }
                other => other.into(),
            })?;
        // Proves the round trip before the old wrapping is dropped.
        let back = self
            .ports
            .keyring
            .unwrap_data_key(&ws.id, &new_ref, &wrapped)
            .await
            .map_err(|e| AdminError::invalid("key_arn", format!("the key cannot be used: {e}")))?;
        if back.expose() != plain.expose() {
            return Err(AdminError::invalid(
                "key_arn",
                "the key did not give back the data key it wrapped",
            ));
        }
        let from = view(&ws).encryption_key;
        ws.key_ref = new_ref;
        ws.data_key = wrapped;
        self.save_ws(&ws).await?;
        let shown = view(&ws);
        self.audit(
            p,
            AuditAction::WorkspaceEncryptionKey,
            "workspace",
            json!({"from": from, "to": shown.encryption_key}),
        )
        .await?;
        Ok(shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str =
        "arn:aws:kms:eu-central-1:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    #[test]
    fn accepts_a_kms_key_arn_of_the_workspaces_region() {
        assert_eq!(parse_key_arn(ARN, Region::Eu).unwrap(), ARN);
        assert!(parse_key_arn(
            "arn:aws:kms:us-east-1:444455556666:alias/tracklayer",
            Region::Us
        )
        .is_ok());
    }

    #[test]
    fn refuses_a_key_of_another_region_naming_the_field() {
        let err = parse_key_arn(ARN, Region::Us).unwrap_err();
        let AdminError::Invalid { field, detail } = err else {
            panic!("{err:?}")
        };
        assert_eq!(field, "key_arn");
        assert!(detail.contains("us-east-1"), "{detail}");
    }

    #[test]
    fn refuses_what_is_not_a_kms_key_arn() {
        for bad in [
            "",
            "1234abcd",
            "arn:aws:s3:eu-central-1:444455556666:key/x",
            "arn:aws:kms:eu-central-1:4444:key/x",
            "arn:aws:kms:eu-central-1:444455556666:key/",
            "arn:aws:kms:eu-central-1:444455556666:bucket/x",
            "arn:aws:kms:eu-central-1:444455556666:key/../../etc",
        ] {
            assert!(parse_key_arn(bad, Region::Eu).is_err(), "{bad}");
        }
    }
}
