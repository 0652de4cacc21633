//! Changing a destination, and auditing its test sends.
//!
//! A destination's sealed secrets stay attached whatever else changes, so whoever may change
//! where it sends could have its credential sent anywhere. Editors may therefore change its
//! name, event filter, pause state and the settings that do not route (Meta's
//! `api_version` and `test_event_code`, GA4's `validate`, a webhook's `batch_size`, every
//! kind's `event_names`); only admins change what redirects the data or the credential —
//! the `endpoint` override and the `config` keys of [`DestinationKind::routing_config`]
//! (Meta `pixel_id`, GA4 `measurement_id`, TikTok `pixel_code`, webhook `url`) — its
//! `consent_purposes` (removing one sends events without that consent) and its `secrets`.
//! An editor's change to one of those is refused (403) naming the field.
//!
//! The audit entry of an update holds the old and new value of every changed field, and of
//! the secrets only their fingerprints.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::{require, AdminError, AdminResult, AdminService, Principal};
use crate::audit::AuditAction;
use crate::consent::Purpose;
use crate::crypto::{aad, SealLabel};
use crate::destination::secret_opener::destination_secrets;
use crate::destination::{
    secret_hints, Destination, DestinationId, DestinationKind, DestinationSpec, EventFilter,
};
use crate::invalidation::Change;
use crate::keys::Role;
use crate::name::Name;
use crate::ports::EgressError;

/// One changed field of a destination: its path and its old and new values.
#[derive(Debug, Clone, PartialEq)]
struct FieldChange {
    field: String,
    from: Value,
    to: Value,
}

/// Whether changing `field` of a destination of `kind` needs an admin.
fn admin_only(kind: DestinationKind, field: &str) -> bool {
    match field {
        "endpoint" | "consent_purposes" => true,
        _ => field
            .strip_prefix("config.")
            .is_some_and(|key| kind.routing_config().contains(&key)),
    }
}

/// The fields whose value differs between `old` and `new`, `config` key by key, in a stable
/// order. Secrets are not compared here.
fn changes(old: &Destination, new: &Destination) -> Vec<FieldChange> {
    let mut out = Vec::new();
    let mut field = |name: String, from: Value, to: Value| {
        if from != to {
            out.push(FieldChange {
                field: name,
                from,
                to,
            });
        }
    };
    field("name".into(), json!(old.name), json!(new.name));
    let empty = Map::new();
    let (a, b) = (
        old.config.as_object().unwrap_or(&empty),
        new.config.as_object().unwrap_or(&empty),
    );
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        field(
            format!("config.{key}"),
            a.get(key).cloned().unwrap_or(Value::Null),
            b.get(key).cloned().unwrap_or(Value::Null),
        );
    }
    field(
        "consent_purposes".into(),
        json!(old.consent_purposes),
        json!(new.consent_purposes),
    );
    field("events".into(), json!(old.events), json!(new.events));
    field("endpoint".into(), json!(old.endpoint), json!(new.endpoint));
    field("paused".into(), json!(old.paused), json!(new.paused));
    out
}

/// Per secret whose fingerprint changed: `{from, to}` (null for an added or removed one).
fn fingerprint_changes(old: &Value, new: &Value) -> Map<String, Value> {
    let fp = |hints: &Value, k: &str| hints[k]["fingerprint"].clone();
    let mut names: Vec<String> = [old, new]
        .iter()
        .filter_map(|h| h.as_object())
        .flat_map(|o| o.keys().cloned())
        .collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|k| fp(old, k) != fp(new, k))
        .map(|k| {
            let change = json!({"from": fp(old, &k), "to": fp(new, &k)});
            (k, change)
        })
        .collect()
}

impl AdminService {
    pub async fn update_destination(
        &self,
        p: &Principal,
        id: &str,
        patch: DestinationPatch,
    ) -> AdminResult<DestinationView> {
        require(p, Role::Editor, "change destinations")?;
        if patch.secrets.is_some() && p.role < Role::Admin {
            return Err(AdminError::ForbiddenField {
                role: p.role,
                field: "secrets".into(),
                action: "change destination secrets",
            });
        }
        let old = self.destination_record(p, id).await?;
        let ws = self.open_ws(p).await?;
        let keys = self.workspace_keys(&ws).await?;
        let secrets_aad = aad(SealLabel::Secrets, &ws.id, old.id.as_str());
        let secrets: Value = match &patch.secrets {
            Some(s) => s.clone(),
            // Corrupt stored secrets are an error, never `null` (replacing them repairs it).
            None => destination_secrets(&keys, &old)?,
        };
        // Validate the result as a whole, like a create.
        let spec = DestinationSpec {
            name: patch.name.clone().unwrap_or_else(|| old.name.clone()),
            kind: old.kind,
            config: patch.config.clone().unwrap_or_else(|| old.config.clone()),
            secrets: secrets.clone(),
            consent_purposes: Some(
                patch
                    .consent_purposes
                    .clone()
                    .unwrap_or_else(|| old.consent_purposes.clone()),
            ),
            events: patch.events.clone().unwrap_or_else(|| old.events.clone()),
            endpoint: patch
                .endpoint
                .clone()
                .unwrap_or_else(|| old.endpoint.clone()),
            paused: patch.paused.unwrap_or(old.paused),
        };
        spec.validate()?;
        let mut d = old.clone();
        d.name = Name::parse(&spec.name)
            .map_err(|e| AdminError::invalid("name", e.to_string()))?
            .into_string();
        d.config = spec.config.clone();
        d.consent_purposes = spec.purposes();
        d.events = spec.events.clone();
        d.endpoint = spec.endpoint.clone();
        d.paused = spec.paused;
        let changed = changes(&old, &d);
        if p.role < Role::Admin {
            if let Some(c) = changed.iter().find(|c| admin_only(d.kind, &c.field)) {
                return Err(AdminError::ForbiddenField {
                    role: p.role,
                    field: c.field.clone(),
                    action: "change where a destination sends or the consent it needs",
                });
            }
        }
        self.check_urls(&spec).await?;
        if patch.secrets.is_some() {
            let mut nonce = [0u8; 12];
            self.ports.ids.fill(&mut nonce);
            let plain = SecretString::from(secrets.to_string());
            d.secrets = keys.seal(nonce, &secrets_aad, plain.expose_secret().as_bytes());
        }
        // Recomputed on every update: hints stored before fingerprints were keyed become
        // keyed ones.
        d.secret_hints = secret_hints(&keys, &secrets);
        d.updated_at = self.now();
        self.ports.control.put_destination(&d).await?;
        self.changed(Change::Workspace(ws.id.clone()));
        let mut summary = Map::new();
        summary.insert(
            "changed".into(),
            Value::Object(
                changed
                    .into_iter()
                    .map(|c| (c.field, json!({"from": c.from, "to": c.to})))
                    .collect(),
            ),
        );
        if patch.secrets.is_some() {
            // The stored hints: replacing secrets never needs the old ones to open.
            summary.insert(
                "secrets".into(),
                Value::Object(fingerprint_changes(&old.secret_hints, &d.secret_hints)),
            );
        }
        self.audit(
            p,
            AuditAction::DestinationUpdate,
            d.id.as_str(),
            Value::Object(summary),
        )
        .await?;
        Ok(DestinationView::from(&d))
    }

    /// Audits a test send (`POST /destinations/{id}/test`): who sent one to which
    /// destination, and what came of it.
    pub async fn record_destination_test(
        &self,
        p: &Principal,
        id: &str,
        outcome: Value,
        http_status: Option<u16>,
    ) -> AdminResult<()> {
        self.audit(
            p,
            AuditAction::DestinationTest,
            id,
            json!({"outcome": outcome, "http_status": http_status}),
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::{DestinationId, EventFilter};
    use crate::workspace::{Region, WorkspaceId};

    fn meta() -> Destination {
        Destination {
            id: DestinationId::new("a1"),
            workspace_id: WorkspaceId::new(Region::Eu, "w1"),
            name: "Meta".into(),
            kind: DestinationKind::MetaCapi,
            config: json!({"pixel_id": "123", "api_version": "v21.0"}),
            secrets: crate::crypto::Sealed(Vec::new()),
            secret_hints: json!({}),
            consent_purposes: vec![crate::consent::Purpose::advertising()],
            events: EventFilter::All,
            endpoint: None,
            paused: false,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            updated_at: time::OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn changes_name_each_config_key_with_its_old_and_new_value() {
        let old = meta();
        let mut new = meta();
        new.config = json!({"pixel_id": "999", "api_version": "v21.0", "test_event_code": "T1"});
        new.endpoint = Some("https://capi.example.com".into());
        let got = changes(&old, &new);
        let fields: Vec<&str> = got.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            ["config.pixel_id", "config.test_event_code", "endpoint"]
        );
        assert_eq!(got[0].from, json!("123"));
        assert_eq!(got[0].to, json!("999"));
        assert_eq!(got[1].from, Value::Null);
    }

    #[test]
    fn routing_fields_and_consent_purposes_are_admin_only_the_rest_is_not() {
        use DestinationKind::*;
        for (kind, field) in [
            (MetaCapi, "config.pixel_id"),
            (Ga4, "config.measurement_id"),
            (Tiktok, "config.pixel_code"),
            (Webhook, "config.url"),
            (MetaCapi, "endpoint"),
            (Ga4, "consent_purposes"),
        ] {
            assert!(admin_only(kind, field), "{kind} {field}");
        }
        for (kind, field) in [
            (MetaCapi, "config.api_version"),
            (MetaCapi, "config.test_event_code"),
            (Webhook, "config.batch_size"),
            (Ga4, "config.event_names"),
            (Tiktok, "name"),
            (Webhook, "events"),
            (Webhook, "paused"),
        ] {
            assert!(!admin_only(kind, field), "{kind} {field}");
        }
    }

    #[test]
    fn fingerprint_changes_list_only_secrets_whose_fingerprint_changed() {
        let old = json!({"access_token": {"fingerprint": "aaa", "last4": "1234"},
                         "app_secret": {"fingerprint": "bbb", "last4": "5678"}});
        let new = json!({"access_token": {"fingerprint": "ccc", "last4": "9999"},
                         "app_secret": {"fingerprint": "bbb", "last4": "5678"}});
        let got = Value::Object(fingerprint_changes(&old, &new));
        assert_eq!(got, json!({"access_token": {"from": "aaa", "to": "ccc"}}));
    }
}

/// A destination as the API shows it: secrets only as fingerprints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DestinationView {
    pub id: DestinationId,
    pub name: String,
    pub kind: crate::destination::DestinationKind,
    pub config: Value,
    /// Per secret: `{fingerprint, last4}`.
    pub secrets: Value,
    pub consent_purposes: Vec<Purpose>,
    pub events: EventFilter,
    pub endpoint: Option<String>,
    pub paused: bool,
    /// The workspace's "pause all egress" switch is on: nothing is sent here (nor anywhere)
    /// until it is off, whatever `paused` says. Set by the reads of destinations.
    pub egress_paused: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<&Destination> for DestinationView {
    fn from(d: &Destination) -> Self {
        Self {
            id: d.id.clone(),
            name: d.name.clone(),
            kind: d.kind,
            config: d.config.clone(),
            secrets: d.secret_hints.clone(),
            consent_purposes: d.consent_purposes.clone(),
            events: d.events.clone(),
            endpoint: d.endpoint.clone(),
            paused: d.paused,
            egress_paused: false,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

/// What may change on a destination. `secrets` replaces all secrets (admins only).
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationPatch {
    pub name: Option<String>,
    pub config: Option<Value>,
    pub secrets: Option<Value>,
    pub consent_purposes: Option<Vec<Purpose>>,
    pub events: Option<EventFilter>,
    /// `Some(None)` clears the override.
    #[serde(default, deserialize_with = "double_option")]
    pub endpoint: Option<Option<String>>,
    pub paused: Option<bool>,
}

impl std::fmt::Debug for DestinationPatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DestinationPatch")
            .field("name", &self.name)
            .field("secrets", &self.secrets.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

fn double_option<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

impl AdminService {
    pub async fn destinations(&self, p: &Principal) -> AdminResult<Vec<DestinationView>> {
        let egress_paused = self.ws(p).await?.security.egress_paused;
        Ok(self
            .ports
            .control
            .destinations(&p.workspace_id)
            .await?
            .iter()
            .map(|d| DestinationView {
                egress_paused,
                ..DestinationView::from(d)
            })
            .collect())
    }

    pub(super) async fn destination_record(
        &self,
        p: &Principal,
        id: &str,
    ) -> AdminResult<Destination> {
        let id = DestinationId::parse(id).map_err(|_| AdminError::NotFound("destination"))?;
        self.ports
            .control
            .destination(&p.workspace_id, &id)
            .await?
            .ok_or(AdminError::NotFound("destination"))
    }

    pub async fn destination(&self, p: &Principal, id: &str) -> AdminResult<DestinationView> {
        let d = self.destination_record(p, id).await?;
        Ok(DestinationView {
            egress_paused: self.ws(p).await?.security.egress_paused,
            ..DestinationView::from(&d)
        })
    }

    pub async fn create_destination(
        &self,
        p: &Principal,
        spec: DestinationSpec,
    ) -> AdminResult<DestinationView> {
        require(p, Role::Admin, "create destinations (they hold secrets)")?;
        self.check_urls(&spec).await?;
        let ws = self.open_ws(p).await?;
        let d = self.control().add_destination(&ws, spec).await?;
        self.changed(Change::Workspace(ws.id.clone()));
        self.audit(
            p,
            AuditAction::DestinationCreate,
            d.id.as_str(),
            json!({"name": d.name, "kind": d.kind, "secrets": d.secret_hints}),
        )
        .await?;
        Ok(DestinationView::from(&d))
    }

    /// The egress guard at configure time: the endpoint override and a webhook's URL.
    async fn check_urls(&self, spec: &DestinationSpec) -> AdminResult<()> {
        let urls = [
            ("endpoint", spec.endpoint.as_deref()),
            ("config.url", spec.config.get("url").and_then(Value::as_str)),
        ];
        for (field, url) in urls {
            let Some(url) = url else { continue };
            if let Err(e) = self.ports.url_guard.check(url).await {
                let detail = match e {
                    EgressError::Refused(why) => format!("is not allowed: {why}"),
                    EgressError::Connect(why) => format!("cannot be checked: {why}"),
                    EgressError::Timeout(_) => {
                        "cannot be checked: its host did not resolve in time".into()
                    }
                };
                return Err(AdminError::invalid(field, detail));
            }
        }
        Ok(())
    }

    pub async fn set_paused(
        &self,
        p: &Principal,
        id: &str,
        paused: bool,
    ) -> AdminResult<DestinationView> {
        self.open_ws_as(p, Role::Editor, "pause or resume destinations")
            .await?;
        let d = self.destination_record(p, id).await?;
        let d = self
            .control()
            .set_paused(&p.workspace_id, &d.id, paused)
            .await?;
        self.changed(Change::Workspace(p.workspace_id.clone()));
        let action = if paused {
            AuditAction::DestinationPause
        } else {
            AuditAction::DestinationResume
        };
        self.audit(p, action, d.id.as_str(), json!({})).await?;
        Ok(DestinationView::from(&d))
    }

    pub async fn delete_destination(&self, p: &Principal, id: &str) -> AdminResult<()> {
        require(p, Role::Admin, "delete destinations")?;
        let d = self.destination_record(p, id).await?;
        self.ports
            .control
            .delete_destination(&p.workspace_id, &d.id)
            .await?;
        self.changed(Change::Workspace(p.workspace_id.clone()));
        self.audit(
            p,
            AuditAction::DestinationDelete,
            d.id.as_str(),
            json!({"name": d.name, "kind": d.kind}),
        )
        .await?;
        Ok(())
    }
}
