//! The tamper-evident audit log (whitepaper §04): every control-plane mutation appends an
//! entry whose HMAC-SHA256, under the workspace's audit key, covers the entry and the previous
//! entry's MAC. Write access to the store alone cannot forge an entry: the audit key is a data
//! key wrapped by the *platform* key (see [`key`]).
//!
//! The chain is anchored at both ends. Its head: a genesis entry (`audit.genesis`) is the first
//! keyed entry; the store keeps the latest seq and MAC, the genesis seq and the wrapped key in
//! a head record outside the entries ([`AuditHead`]), written atomically with each append.
//! Its tail: retention removes entries only behind a signed [`Checkpoint`] naming the last
//! removed entry, which verification starts from ([`verify`]).
//!
//! Migration: a workspace whose entries predate the keyed chain (plain SHA-256, no head) gets
//! its genesis at the next append; the genesis records the legacy chain's last seq and hash
//! under the MAC, so from then on a rewrite of the legacy part is caught too (its plain hashes
//! must still lead to the recorded one). Until that append such a chain verifies as before.

pub mod key;
pub mod verify;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::crypto::WrappedKey;
use crate::workspace::WorkspaceId;

pub use key::{AuditKey, AuditKeys};
pub use verify::{plan_retirement, verify, Verifier};

/// The `prev_hash` of a workspace's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What an audit entry records. Stored as its dotted name ([`AuditAction::as_str`]): stored
/// chains hash that string, so a name never changes; a new action is a new variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    /// `audit.genesis`
    Genesis,
    /// `workspace.update`
    WorkspaceUpdate,
    /// `workspace.closed`
    WorkspaceClosed,
    /// `workspace.encryption_key`
    WorkspaceEncryptionKey,
    /// `retention.update`
    RetentionUpdate,
    /// `security.update`
    SecurityUpdate,
    /// `user.invite`
    UserInvite,
    /// `user.set_role`
    UserSetRole,
    /// `user.set_email`
    UserSetEmail,
    /// `user.remove`
    UserRemove,
    /// `user.provision`: an identity provider set a user's `externalId` or `active` (SCIM)
    UserProvision,
    /// `scim.group_save`: an identity provider created or changed a group (SCIM)
    ScimGroupSave,
    /// `scim.group_delete`: an identity provider deleted a group (SCIM)
    ScimGroupDelete,
    /// `scim.group_roles`: an admin set which groups give which role
    ScimGroupRoles,
    /// `api_key.create`
    ApiKeyCreate,
    /// `api_key.rotate`
    ApiKeyRotate,
    /// `api_key.revoke`
    ApiKeyRevoke,
    /// `destination.create`
    DestinationCreate,
    /// `destination.update`
    DestinationUpdate,
    /// `destination.pause`
    DestinationPause,
    /// `destination.resume`
    DestinationResume,
    /// `destination.delete`
    DestinationDelete,
    /// `destination.replay`
    DestinationReplay,
    /// `destination.test`
    DestinationTest,
    /// `dsr.submit`
    DsrSubmit,
    /// `dsr.export_download`
    DsrExportDownload,
    /// `dsr.complete`
    DsrComplete,
    /// `session.sign_in`: a console session began (password, invitation, reset or link).
    SessionSignIn,
    /// `session.sign_in_failed`: a wrong password for a known account, or a refused attempt.
    SessionSignInFailed,
    /// `session.sign_out`
    SessionSignOut,
    /// `session.revoke`
    SessionRevoke,
    /// `user.password_set`
    UserPasswordSet,
    /// `sso.saml.update`
    SsoSamlUpdate,
    /// `sso.saml.delete`
    SsoSamlDelete,
    /// `sso.saml.sign_in`: a user signed in through the IdP (created just in time or not).
    SsoSamlSignIn,
    /// `sso.saml.refused`: a SAML response was refused, with its reason code.
    SsoSamlRefused,
    /// `sso.break_glass`: the break-glass admin used a password, a reset or a link while SSO
    /// is enforced for their domain.
    SsoBreakGlass,
}

impl AuditAction {
    /// Every action, in declaration order.
    pub const ALL: &'static [Self] = &[
        Self::Genesis,
        Self::WorkspaceUpdate,
        Self::WorkspaceClosed,
        Self::WorkspaceEncryptionKey,
        Self::RetentionUpdate,
        Self::SecurityUpdate,
        Self::UserInvite,
        Self::UserSetRole,
        Self::UserSetEmail,
        Self::UserRemove,
        Self::UserProvision,
        Self::ScimGroupSave,
        Self::ScimGroupDelete,
        Self::ScimGroupRoles,
        Self::ApiKeyCreate,
        Self::ApiKeyRotate,
        Self::ApiKeyRevoke,
        Self::DestinationCreate,
        Self::DestinationUpdate,
        Self::DestinationPause,
        Self::DestinationResume,
        Self::DestinationDelete,
        Self::DestinationReplay,
        Self::DestinationTest,
        Self::DsrSubmit,
        Self::DsrExportDownload,
        Self::DsrComplete,
        Self::SessionSignIn,
        Self::SessionSignInFailed,
        Self::SessionSignOut,
        Self::SessionRevoke,
        Self::UserPasswordSet,
        Self::SsoSamlUpdate,
        Self::SsoSamlDelete,
        Self::SsoSamlSignIn,
        Self::SsoSamlRefused,
        Self::SsoBreakGlass,
    ];

    /// The name stored in the entry.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Genesis => "audit.genesis",
            Self::WorkspaceUpdate => "workspace.update",
            Self::WorkspaceClosed => "workspace.closed",
            Self::WorkspaceEncryptionKey => "workspace.encryption_key",
            Self::RetentionUpdate => "retention.update",
            Self::SecurityUpdate => "security.update",
            Self::UserInvite => "user.invite",
            Self::UserSetRole => "user.set_role",
            Self::UserSetEmail => "user.set_email",
            Self::UserRemove => "user.remove",
            Self::UserProvision => "user.provision",
            Self::ScimGroupSave => "scim.group_save",
            Self::ScimGroupDelete => "scim.group_delete",
            Self::ScimGroupRoles => "scim.group_roles",
            Self::ApiKeyCreate => "api_key.create",
            Self::ApiKeyRotate => "api_key.rotate",
            Self::ApiKeyRevoke => "api_key.revoke",
            Self::DestinationCreate => "destination.create",
            Self::DestinationUpdate => "destination.update",
            Self::DestinationPause => "destination.pause",
            Self::DestinationResume => "destination.resume",
            Self::DestinationDelete => "destination.delete",
            Self::DestinationReplay => "destination.replay",
            Self::DestinationTest => "destination.test",
            Self::DsrSubmit => "dsr.submit",
            Self::DsrExportDownload => "dsr.export_download",
            Self::DsrComplete => "dsr.complete",
            Self::SessionSignIn => "session.sign_in",
            Self::SessionSignInFailed => "session.sign_in_failed",
            Self::SessionSignOut => "session.sign_out",
            Self::SessionRevoke => "session.revoke",
            Self::UserPasswordSet => "user.password_set",
            Self::SsoSamlUpdate => "sso.saml.update",
            Self::SsoSamlDelete => "sso.saml.delete",
            Self::SsoSamlSignIn => "sso.saml.sign_in",
            Self::SsoSamlRefused => "sso.saml.refused",
            Self::SsoBreakGlass => "sso.break_glass",
        }
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The action of the entry that starts the keyed chain.
pub const GENESIS_ACTION: &str = AuditAction::Genesis.as_str();

/// The actor of entries the audit log writes itself.
pub const SYSTEM_ACTOR: &str = "system:audit";

/// Audit entries are kept one year.
pub const RETENTION_DAYS: i64 = 365;

/// The retention as a duration.
pub fn retention() -> time::Duration {
    time::Duration::days(RETENTION_DAYS)
}

/// What a mutation records. `summary` never holds a secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewAuditEntry {
    pub workspace_id: WorkspaceId,
    /// `user:usr_…`, `svc:<key id>`, or `cli:<operator>`.
    pub actor: String,
    /// `api_key.create`, `destination.update`, `user.invite`, ...
    pub action: String,
    /// The object acted on (`dst_…`, a key id, `workspace`).
    pub target: String,
    pub summary: Value,
}

/// A stored entry of the chain. `hash` is its MAC (hex), or for a legacy entry its SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub workspace_id: WorkspaceId,
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub summary: Value,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditEntry {
    /// Seals a new entry after the entry `prev` = (seq, hash) with the audit key.
    pub fn seal(
        new: NewAuditEntry,
        prev: (u64, &str),
        time: OffsetDateTime,
        key: &AuditKey,
    ) -> Self {
        let mut e = AuditEntry {
            workspace_id: new.workspace_id,
            seq: prev.0 + 1,
            time,
            actor: new.actor,
            action: new.action,
            target: new.target,
            summary: new.summary,
            prev_hash: prev.1.to_owned(),
            hash: String::new(),
        };
        e.hash = e.mac(key);
        e
    }

    /// The entry that starts a workspace's keyed chain: seq 1, or right after the last entry
    /// of a legacy (unkeyed) chain, whose seq and hash it records under the MAC.
    pub fn genesis(
        ws: &WorkspaceId,
        legacy: Option<(u64, &str)>,
        time: OffsetDateTime,
        key: &AuditKey,
    ) -> Self {
        let summary = match legacy {
            Some((seq, hash)) => serde_json::json!({"legacy_seq": seq, "legacy_hash": hash}),
            None => serde_json::json!({}),
        };
        Self::seal(
            NewAuditEntry {
                workspace_id: ws.clone(),
                actor: SYSTEM_ACTOR.into(),
                action: GENESIS_ACTION.into(),
                target: "audit-log".into(),
                summary,
            },
            legacy.unwrap_or((0, GENESIS)),
            time,
            key,
        )
    }

    /// How entries were sealed before the keyed chain (plain SHA-256, no key): kept to verify
    /// legacy chains and to test their migration. Never used for new entries.
    pub fn legacy(new: NewAuditEntry, prev: Option<&AuditEntry>, time: OffsetDateTime) -> Self {
        let (seq, prev_hash) = match prev {
            Some(p) => (p.seq + 1, p.hash.clone()),
            None => (1, GENESIS.to_owned()),
        };
        let mut e = AuditEntry {
            workspace_id: new.workspace_id,
            seq,
            time,
            actor: new.actor,
            action: new.action,
            target: new.target,
            summary: new.summary,
            prev_hash,
            hash: String::new(),
        };
        e.hash = e.legacy_hash();
        e
    }

    fn canonical(&self) -> String {
        serde_json::json!({
            "workspace_id": self.workspace_id,
            "seq": self.seq,
            "time": self.time.format(&Rfc3339).unwrap_or_default(),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "summary": self.summary,
        })
        .to_string()
    }

    /// HMAC-SHA256(audit key, "entry" ‖ 0 ‖ canonical entry ‖ 0 ‖ prev_hash), hex.
    pub fn mac(&self, key: &AuditKey) -> String {
        key.mac(&[
            b"entry",
            self.canonical().as_bytes(),
            self.prev_hash.as_bytes(),
        ])
    }

    /// SHA-256(canonical entry ‖ prev_hash), hex: the legacy chain's hash.
    pub fn legacy_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.canonical().as_bytes());
        h.update(self.prev_hash.as_bytes());
        hex::encode(h.finalize())
    }

    /// Younger than the retention at `now`, by its own (MAC-covered) time.
    pub fn is_retained(&self, now: OffsetDateTime) -> bool {
        self.time > now - retention()
    }
}

/// An entry as the store holds it, with whether the store's own index attributes (the seq,
/// time, actor and action it filters and sorts by) agree with the sealed entry.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEntry {
    pub entry: AuditEntry,
    /// `None` when they agree; otherwise which attribute differs.
    pub index_mismatch: Option<&'static str>,
}

impl StoredEntry {
    /// Compares the store's index attributes with the sealed entry.
    pub fn new(entry: AuditEntry, seq: u64, at_millis: i64, actor: &str, action: &str) -> Self {
        let index_mismatch = if seq != entry.seq {
            Some("seq")
        } else if at_millis != crate::clock::unix_millis(entry.time) {
            Some("time")
        } else if actor != entry.actor {
            Some("actor")
        } else if action != entry.action {
            Some("action")
        } else {
            None
        };
        Self {
            entry,
            index_mismatch,
        }
    }
}

/// Where retention cut the chain: the last removed entry, signed with the audit key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: u64,
    pub hash: String,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub mac: String,
}

impl Checkpoint {
    fn message(ws: &WorkspaceId, seq: u64, hash: &str, time: OffsetDateTime) -> String {
        format!(
            "{ws}\n{seq}\n{hash}\n{}",
            time.format(&Rfc3339).unwrap_or_default()
        )
    }

    /// Signs the removal of every entry up to `last` (included).
    pub fn sign(last: &AuditEntry, key: &AuditKey) -> Self {
        let msg = Self::message(&last.workspace_id, last.seq, &last.hash, last.time);
        Self {
            seq: last.seq,
            hash: last.hash.clone(),
            time: last.time,
            mac: key.mac(&[b"checkpoint", msg.as_bytes()]),
        }
    }

    /// The signature holds for this workspace.
    pub fn holds(&self, ws: &WorkspaceId, key: &AuditKey) -> bool {
        let msg = Self::message(ws, self.seq, &self.hash, self.time);
        key.verify(&[b"checkpoint", msg.as_bytes()], &self.mac)
    }
}

/// A workspace's chain head, kept outside the entries and written with each append.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditHead {
    /// The latest entry.
    pub seq: u64,
    pub hash: String,
    /// The seq of the `audit.genesis` entry (1, or after a legacy chain).
    pub genesis_seq: u64,
    /// The audit key, wrapped by the platform key.
    pub key: WrappedKey,
    /// Where retention cut the chain, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
}

impl AuditHead {
    /// The head after `e` was appended.
    pub fn after(&self, e: &AuditEntry) -> Self {
        Self {
            seq: e.seq,
            hash: e.hash.clone(),
            ..self.clone()
        }
    }
}

/// The result of walking a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub valid: bool,
    pub entries_checked: u64,
    /// The first seq whose entry, link, MAC, index or presence does not hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_invalid_seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The chain is keyed and anchored (false only for a legacy chain not yet migrated).
    pub keyed: bool,
}

/// Which entries to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    /// Only entries with `seq > after` (paging).
    pub after: Option<u64>,
    pub limit: usize,
}

#[cfg(test)]
mod tests {
    use super::AuditAction;

    /// Stored chains hash these names: a renamed variant must keep its string.
    #[test]
    fn every_audit_action_is_stored_under_its_fixed_dotted_name() {
        let names: Vec<&str> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(
            names,
            [
                "audit.genesis",
                "workspace.update",
                "workspace.closed",
                "workspace.encryption_key",
                "retention.update",
                "security.update",
                "user.invite",
                "user.set_role",
                "user.set_email",
                "user.remove",
                "user.provision",
                "scim.group_save",
                "scim.group_delete",
                "scim.group_roles",
                "api_key.create",
                "api_key.rotate",
                "api_key.revoke",
                "destination.create",
                "destination.update",
                "destination.pause",
                "destination.resume",
                "destination.delete",
                "destination.replay",
                "destination.test",
                "dsr.submit",
                "dsr.export_download",
                "dsr.complete",
                "session.sign_in",
                "session.sign_in_failed",
                "session.sign_out",
                "session.revoke",
                "user.password_set",
                "sso.saml.update",
                "sso.saml.delete",
                "sso.saml.sign_in",
                "sso.saml.refused",
                "sso.break_glass",
            ]
        );
        assert_eq!(AuditAction::UserInvite.to_string(), "user.invite");
        assert_eq!(super::GENESIS_ACTION, "audit.genesis");
    }
}
