//! Control-plane use cases shared by the CLI, the admin API and the AWS bootstrap:
//! creating a workspace with its first keys, issuing keys, adding destinations.

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use time::Duration;

use crate::clock::{Clock, Ids};
use crate::consent::ConsentPolicy;
use crate::crypto::{aad, SealLabel, WorkspaceKeys};
use crate::destination::{
    secret_hints, Destination, DestinationError, DestinationId, DestinationSpec,
};
use crate::email::Email;
use crate::error::{KeyError, StoreError};
use crate::keys::{
    ApiKey, ApiKeyRecord, KeyKind, Role, KEY_ID_LEN, KEY_SECRET_LEN, MAX_KEY_LIFETIME_DAYS,
};
use crate::name::Name;
use crate::ports::{ControlStore, Keyring};
use crate::user_id::UserId;
use crate::workspace::{KeyRef, Region, Retention, User, Workspace, WorkspaceId};

/// bcrypt cost of key verifiers (whitepaper §05; ≥ 10).
pub const BCRYPT_COST: u32 = 10;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("invalid destination: {0}")]
    Destination(#[from] DestinationError),
    #[error("could not compute a key verifier")]
    Verifier(#[source] bcrypt::BcryptError),
    #[error("{0}")]
    Invalid(String),
    /// A well-formed request broke a rule about one field.
    #[error("{field}: {detail}")]
    InvalidField { field: &'static str, detail: String },
}

/// A valid name, or the error naming `field`.
fn name(field: &'static str, s: &str) -> Result<Name, ControlError> {
    Name::parse(s).map_err(|e| ControlError::InvalidField {
        field,
        detail: e.to_string(),
    })
}

/// What `init` hands the operator, once.
pub struct Bootstrapped {
    pub workspace: Workspace,
    pub admin_token: SecretString,
    pub write_key: SecretString,
}

impl std::fmt::Debug for Bootstrapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bootstrapped")
            .field("workspace", &self.workspace.id)
            .finish_non_exhaustive()
    }
}

/// The clock, randomness and stores control-plane use cases work with.
#[derive(Clone, Copy)]
pub struct Control<'a> {
    pub store: &'a dyn ControlStore,
    pub keyring: &'a dyn Keyring,
    pub clock: &'a dyn Clock,
    pub ids: &'a dyn Ids,
}

impl std::fmt::Debug for Control<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Control")
    }
}

/// An issued key: the record stored and the secret shown once.
pub struct IssuedKey {
    pub record: ApiKeyRecord,
    pub secret: SecretString,
}

crate::debug_fields!(IssuedKey: record);

impl Control<'_> {
    /// Creates a workspace pinned to `region`, with a fresh data key.
    pub async fn create_workspace(
        &self,
        region: Region,
        name: &str,
    ) -> Result<Workspace, ControlError> {
        let name = self::name("name", name)?;
        let now = self.clock.now();
        let id = WorkspaceId::new(region, &self.ids.uuid_v7(now).simple().to_string());
        let key_ref = KeyRef::Platform;
        let (_, wrapped) = self.keyring.generate_data_key(&id, &key_ref).await?;
        let ws = Workspace {
            id,
            name: name.into_string(),
            region,
            created_at: now,
            retention: Retention::default(),
            consent: ConsentPolicy::default(),
            key_ref,
            data_key: wrapped,
            security: Default::default(),
            closed_at: None,
        };
        self.store.create_workspace(&ws).await?;
        Ok(ws)
    }

    /// Issues a key of `kind` for a workspace, valid for `days` (at most 90).
    pub async fn issue_key(
        &self,
        ws: &Workspace,
        kind: KeyKind,
        role: Option<Role>,
        user_id: Option<UserId>,
        name: &str,
        days: i64,
    ) -> Result<IssuedKey, ControlError> {
        if !(1..=MAX_KEY_LIFETIME_DAYS).contains(&days) {
            return Err(ControlError::Invalid(format!(
                "expires_in_days must be from 1 to {MAX_KEY_LIFETIME_DAYS}"
            )));
        }
        let name = self::name("name", name)?;
        let now = self.clock.now();
        let id = self.ids.token(KEY_ID_LEN).to_ascii_lowercase();
        let secret = self.ids.token(KEY_SECRET_LEN);
        let key = ApiKey::from_parts(kind, ws.region, &id, &secret);
        let verifier = key.verifier(BCRYPT_COST).map_err(ControlError::Verifier)?;
        let record = ApiKeyRecord {
            id: key.id.clone(),
            workspace_id: ws.id.clone(),
            kind,
            role,
            user_id,
            name: name.into_string(),
            prefix: key.prefix(),
            verifier,
            created_at: now,
            expires_at: now + Duration::days(days),
            revoked_at: None,
            last_used_at: None,
            expiry_warnings_sent: Vec::new(),
            browser: false,
        };
        self.store.create_api_key(&record).await?;
        Ok(IssuedKey {
            record,
            secret: SecretString::from(key.expose().to_owned()),
        })
    }

    /// A workspace with an owner (admin), their token and an ingest write key: what `init`
    /// creates. The owner is `owner@<workspace id>.invalid` (RFC 2606) until changed.
    pub async fn bootstrap(
        &self,
        region: Region,
        name: &str,
    ) -> Result<Bootstrapped, ControlError> {
        self.bootstrap_owned_by(region, name, None).await
    }

    /// [`Self::bootstrap`], with the owner's email address when one is given (`init --email`).
    pub async fn bootstrap_owned_by(
        &self,
        region: Region,
        name: &str,
        owner_email: Option<Email>,
    ) -> Result<Bootstrapped, ControlError> {
        let workspace = self.create_workspace(region, name).await?;
        let placeholder = || {
            let address = format!("owner@{}.invalid", workspace.id.as_str().replace('_', "-"));
            Email::parse(&address).expect("a workspace id makes a valid domain")
        };
        self.store
            .create_user(&User {
                id: UserId::owner(),
                workspace_id: workspace.id.clone(),
                email: owner_email.unwrap_or_else(placeholder),
                role: Role::Admin,
                created_at: self.clock.now(),
                external_id: None,
                active: true,
                scim: None,
            })
            .await?;
        let admin = self
            .issue_key(
                &workspace,
                KeyKind::Pat,
                Some(Role::Admin),
                Some(UserId::owner()),
                "initial admin token",
                MAX_KEY_LIFETIME_DAYS,
            )
            .await?;
        let write = self
            .issue_key(
                &workspace,
                KeyKind::Ingest,
                None,
                None,
                "initial write key",
                MAX_KEY_LIFETIME_DAYS,
            )
            .await?;
        Ok(Bootstrapped {
            workspace,
            admin_token: admin.secret,
            write_key: write.secret,
        })
    }

    async fn keys(&self, ws: &Workspace) -> Result<WorkspaceKeys, ControlError> {
        let dk = self
            .keyring
            .unwrap_data_key(&ws.id, &ws.key_ref, &ws.data_key)
            .await?;
        Ok(WorkspaceKeys::new(&dk))
    }

    /// Validates a destination, seals its secrets with the workspace data key, stores it.
    pub async fn add_destination(
        &self,
        ws: &Workspace,
        spec: DestinationSpec,
    ) -> Result<Destination, ControlError> {
        spec.validate()?;
        let now = self.clock.now();
        let id = DestinationId::new(&self.ids.uuid_v7(now).simple().to_string());
        let keys = self.keys(ws).await?;
        let secrets_json = SecretString::from(spec.secrets.to_string());
        let mut nonce = [0u8; 12];
        self.ids.fill(&mut nonce);
        let sealed = keys.seal(
            nonce,
            &aad(SealLabel::Secrets, &ws.id, id.as_str()),
            secrets_json.expose_secret().as_bytes(),
        );
        let destination = Destination {
            id,
            workspace_id: ws.id.clone(),
            name: spec.name.trim().to_owned(),
            kind: spec.kind,
            config: if spec.config.is_null() {
                Value::Object(Default::default())
            } else {
                spec.config.clone()
            },
            secrets: sealed,
            secret_hints: secret_hints(&keys, &spec.secrets),
            consent_purposes: spec.purposes(),
            events: spec.events.clone(),
            endpoint: spec.endpoint.clone(),
            paused: spec.paused,
            created_at: now,
            updated_at: now,
        };
        self.store.put_destination(&destination).await?;
        Ok(destination)
    }

    /// Pauses or resumes a destination. A paused destination keeps its messages.
    pub async fn set_paused(
        &self,
        ws: &WorkspaceId,
        id: &DestinationId,
        paused: bool,
    ) -> Result<Destination, ControlError> {
        let mut d = self
            .store
            .destination(ws, id)
            .await?
            .ok_or(StoreError::NotFound("destination"))?;
        d.paused = paused;
        d.updated_at = self.clock.now();
        self.store.put_destination(&d).await?;
        Ok(d)
    }

    /// Revokes a key at `now`.
    pub async fn revoke_key(&self, record: &ApiKeyRecord) -> Result<ApiKeyRecord, ControlError> {
        let mut r = record.clone();
        r.revoked_at = Some(self.clock.now());
        self.store.update_api_key(&r).await?;
        Ok(r)
    }
}
