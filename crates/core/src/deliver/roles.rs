//! Roles assumed for a destination: a kind whose requests are signed with the temporary
//! credentials of a customer's role (Firehose, `config.role_arn`) names the role
//! ([`Connector::assumed_role`](super::Connector::assumed_role)); the delivery service assumes
//! it through the [`RoleCredentials`] port (AWS: STS `AssumeRole`, signed REST), caches the
//! credentials per destination until [`REFRESH_BEFORE`] their expiry, and hands them to the
//! pure connector among the opened secrets ([`ASSUMED_SECRETS`]).
//!
//! The external id of every request is the workspace id: a customer's trust policy requires
//! it, so that another workspace naming the same role ARN is refused by AWS (the confused
//! deputy). The session name carries the destination id, so CloudTrail shows which
//! destination wrote.

use std::sync::Arc;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use time::{Duration, OffsetDateTime};

use super::service::DeliveryService;
use super::{Connector, Outcome, Target};
use crate::cache::TtlCache;
use crate::clock::Clock;
use crate::destination::DestinationId;

/// The secret keys under which assumed credentials reach [`Connector::build`]: the same keys
/// as a destination's optional static keys, so one signing path serves both.
pub const ASSUMED_SECRETS: [&str; 3] = [
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
];

/// Credentials are assumed again this long before they expire, so that none expires in flight.
pub const REFRESH_BEFORE: Duration = Duration::minutes(5);

/// What to assume: the customer's role, with the workspace id as the external id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleRequest {
    pub role_arn: String,
    /// The workspace id: the confused-deputy guard the customer's trust policy requires.
    pub external_id: String,
    /// `tracklayer-<destination id>` (STS: 2 to 64 of `[\w+=,.@-]`).
    pub session_name: String,
}

impl RoleRequest {
    /// The request of `target`'s destination for `role_arn`.
    pub fn for_target(target: &Target<'_>, role_arn: &str) -> Self {
        Self {
            role_arn: role_arn.to_owned(),
            external_id: target.destination.workspace_id.as_str().to_owned(),
            session_name: format!("tracklayer-{}", target.destination.id),
        }
    }
}

/// Temporary credentials of an assumed role. Debug shows the key id and expiry only.
#[derive(Clone)]
pub struct TemporaryCredentials {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub session_token: SecretString,
    pub expires_at: OffsetDateTime,
}

crate::debug_fields!(TemporaryCredentials: access_key_id, expires_at);

/// Why a role could not be assumed, by what delivery should do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    /// AWS refused (the trust policy does not name TrackLayer or the external id, the role
    /// does not exist): the same request fails again until the customer fixes the role.
    #[error("the role cannot be assumed: {0}")]
    Refused(String),
    /// STS unreachable, throttling, or credentials of our own missing for a moment: retry.
    #[error("the role could not be assumed now: {0}")]
    Unavailable(String),
}

/// The port: temporary credentials for a role (AWS: STS `AssumeRole`).
#[async_trait]
pub trait RoleCredentials: Send + Sync {
    async fn assume(&self, request: &RoleRequest) -> Result<TemporaryCredentials, RoleError>;
}

/// A deployment that assumes no roles (`tracklayer serve` by default): every request is
/// refused with what to configure instead.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRoles;

#[async_trait]
impl RoleCredentials for NoRoles {
    async fn assume(&self, _request: &RoleRequest) -> Result<TemporaryCredentials, RoleError> {
        Err(RoleError::Refused(
            "this deployment assumes no AWS roles (roles are assumed on the AWS deployment); \
             give the destination static keys (secrets.aws_access_key_id and \
             secrets.aws_secret_access_key) instead of config.role_arn"
                .into(),
        ))
    }
}

/// The port with its cache: one `AssumeRole` per destination and role per credential lifetime.
pub(super) struct AssumedRoles {
    port: Arc<dyn RoleCredentials>,
    cache: TtlCache<(DestinationId, String), TemporaryCredentials>,
    clock: Arc<dyn Clock>,
}

crate::debug_fields!(AssumedRoles: cache);

impl AssumedRoles {
    pub(super) fn new(port: Arc<dyn RoleCredentials>, clock: Arc<dyn Clock>) -> Self {
        Self {
            port,
            // STS's longest session is 12 hours; each entry also ends REFRESH_BEFORE its expiry.
            cache: TtlCache::new(clock.clone(), Duration::hours(12), 10_000),
            clock,
        }
    }

    async fn credentials(
        &self,
        destination: &DestinationId,
        request: &RoleRequest,
    ) -> Result<TemporaryCredentials, RoleError> {
        let key = (destination.clone(), request.role_arn.clone());
        let now = self.clock.now();
        if let Some(c) = self.cache.get(&key) {
            if c.expires_at - REFRESH_BEFORE > now {
                return Ok(c);
            }
        }
        let fresh = self.port.assume(request).await?;
        self.cache.insert(key, fresh.clone());
        Ok(fresh)
    }
}

impl DeliveryService {
    /// Delivery that assumes destinations' roles through `port` (the AWS deploy function: STS).
    pub fn with_role_credentials(mut self, port: Arc<dyn RoleCredentials>) -> Self {
        self.roles = AssumedRoles::new(port, self.ports.clock.clone());
        self
    }

    /// The target's secrets with its role's temporary credentials added, if its connector
    /// names a role; `Ok(None)` when it names none. A role that cannot be assumed is the
    /// outcome of every item of the group.
    pub(super) async fn assumed_secrets(
        &self,
        connector: &dyn Connector,
        target: &Target<'_>,
    ) -> Result<Option<Value>, Outcome> {
        let Some(request) = connector.assumed_role(target) else {
            return Ok(None);
        };
        let credentials = self
            .roles
            .credentials(&target.destination.id, &request)
            .await
            .map_err(|e| match e {
                RoleError::Refused(_) => Outcome::Permanent {
                    reason: e.to_string(),
                },
                RoleError::Unavailable(_) => Outcome::Retry {
                    after: None,
                    reason: e.to_string(),
                },
            })?;
        let mut secrets = match target.secrets {
            Value::Object(o) => o.clone(),
            _ => serde_json::Map::new(),
        };
        let [id, key, token] = ASSUMED_SECRETS;
        secrets.insert(id.into(), credentials.access_key_id.into());
        secrets.insert(
            key.into(),
            credentials.secret_access_key.expose_secret().into(),
        );
        secrets.insert(
            token.into(),
            credentials.session_token.expose_secret().into(),
        );
        Ok(Some(Value::Object(secrets)))
    }
}
