//! OAuth 2.0 access tokens for connectors whose vendor API takes a short-lived bearer token
//! (LinkedIn, Google Ads): the one token source.
//!
//! A destination of such a kind keeps three write-only secrets ([`TOKEN_SECRETS`]):
//! `client_id`, `client_secret` and `refresh_token`. Before [`Connector::build`](super::Connector::build),
//! the [`TokenSource`] exchanges them at the vendor's token endpoint
//! ([`Connector::token_endpoint`](super::Connector::token_endpoint)) for an access token —
//! RFC 6749 §6, `grant_type=refresh_token`, form-encoded, the client authenticated by its id
//! and secret in the body (§2.3.1), sent through the egress port and so through its SSRF guard
//! — and hands it to the connector as the secret `access_token` ([`authorized`]), so that
//! connectors stay pure request builders.
//!
//! The token is kept in memory per destination and credentials ([`Grant`]) until
//! [`REFRESH_MARGIN`] before its `expires_in` (on the injected clock); concurrent callers wait
//! for one exchange. After a 401 from the vendor's API, [`TokenSource::refresh`] replaces the
//! token that was refused, once for every batch that was refused with it (`send`). What the
//! token endpoint answers is classified by RFC 6749 §5.2: `invalid_grant` (the refresh token
//! expired or was revoked) and `invalid_client` are permanent, with a reason naming the
//! secret to replace; 408, 429 and 5xx are retried after `Retry-After`.
//!
//! Neither the secrets nor a token ever enter a `Debug` output, a log line or a reason.

use std::fmt;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use super::{HttpRequest, HttpResponse, Outcome, Target};
use crate::cache::TtlCache;
use crate::clock::Clock;
use crate::destination::DestinationId;
use crate::ports::{Egress, EgressError};

/// The secrets of a destination whose vendor takes OAuth 2.0 access tokens.
pub const TOKEN_SECRETS: [&str; 3] = ["client_id", "client_secret", "refresh_token"];
/// How long before its `expires_in` a token is replaced (half its lifetime when that is
/// shorter), so that no batch goes out with a token about to expire.
pub const REFRESH_MARGIN: Duration = Duration::seconds(60);
/// How long a token is kept when the endpoint gives no `expires_in` (RFC 6749 §5.1 only
/// recommends it): a 401 would replace it sooner.
pub const UNSTATED_LIFETIME: Duration = Duration::minutes(5);
/// How long a destination's token slot lives, whatever its token's lifetime: a destination
/// deleted or reconfigured leaves nothing behind for longer.
const SLOT_LIFETIME: Duration = Duration::hours(24);
const SLOTS: usize = 10_000;

/// Percent-encodes a form or query value: everything but the RFC 3986 unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An access token. `Debug` never shows it.
#[derive(Clone)]
pub struct AccessToken(Arc<str>);

impl AccessToken {
    /// Whether `other` is this token, compared in constant time (a token is a secret).
    pub fn same_as(&self, other: &AccessToken) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }

    /// The token, for the request header that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

/// The destination's secrets with `token` as `access_token`: what the connector builds with.
pub fn authorized(secrets: &Value, token: &AccessToken) -> Value {
    let mut out = secrets.as_object().cloned().unwrap_or_default();
    out.insert("access_token".into(), token.expose().into());
    Value::Object(out)
}

/// A destination's token endpoint and its credentials there. `Debug` shows the endpoint and
/// the destination only.
pub struct Grant {
    destination: DestinationId,
    token_url: String,
    client_id: SecretString,
    client_secret: SecretString,
    refresh_token: SecretString,
    /// SHA-256 over the destination, the endpoint and the credentials: a changed secret or
    /// endpoint never reuses a token issued for the old ones.
    key: [u8; 32],
}

crate::debug_fields!(Grant: destination, token_url);

impl Grant {
    /// The grant of the target's destination at `token_url`; an error naming the secret when
    /// one is missing.
    pub fn of(target: &Target<'_>, token_url: String) -> Result<Self, TokenError> {
        let secret = |name: &'static str| {
            target
                .secrets
                .get(name)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .ok_or(TokenError::Missing(name))
        };
        let (id, secret_, refresh) = (
            secret("client_id")?,
            secret("client_secret")?,
            secret("refresh_token")?,
        );
        let mut h = Sha256::new();
        for part in [
            target.destination.id.as_str(),
            &token_url,
            id,
            secret_,
            refresh,
        ] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        Ok(Self {
            destination: target.destination.id.clone(),
            token_url,
            client_id: id.into(),
            client_secret: secret_.into(),
            refresh_token: refresh.into(),
            key: h.finalize().into(),
        })
    }

    /// The token request: RFC 6749 §6 with the client's credentials in the body (§2.3.1).
    fn request(&self) -> HttpRequest {
        let fields = [
            ("grant_type", "refresh_token"),
            ("refresh_token", self.refresh_token.expose_secret()),
            ("client_id", self.client_id.expose_secret()),
            ("client_secret", self.client_secret.expose_secret()),
        ];
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encode(v)))
            .collect();
        HttpRequest {
            url: self.token_url.clone(),
            headers: vec![
                (
                    "Content-Type".into(),
                    "application/x-www-form-urlencoded".into(),
                ),
                ("Accept".into(), "application/json".into()),
            ],
            body: body.join("&").into_bytes(),
        }
    }

    /// `text` without any of the credentials (a vendor's error description could echo one).
    fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in [&self.client_id, &self.client_secret, &self.refresh_token] {
            let s = s.expose_secret();
            if s.len() >= 4 {
                out = out.replace(s, "<redacted>");
            }
        }
        out
    }
}

/// Why no access token could be had, classified by what delivery should do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// A secret the exchange needs is not set: permanent.
    #[error("secrets.{0} is missing: the vendor takes OAuth 2.0 access tokens, issued for secrets.client_id, secrets.client_secret and secrets.refresh_token")]
    Missing(&'static str),
    /// The token endpoint refused the credentials for good (RFC 6749 §5.2): permanent, naming
    /// the secret to fix.
    #[error("the token endpoint refused the credentials (HTTP {status}, {code}{detail}): {fix}")]
    Refused {
        status: u16,
        code: String,
        detail: String,
        fix: String,
    },
    /// The token endpoint could not answer now (408, 429, 5xx, no connection): retry.
    #[error("no access token: {reason}")]
    Unavailable {
        after: Option<StdDuration>,
        reason: String,
    },
    /// The egress guard refused the token endpoint's URL: permanent.
    #[error("no access token: {0}")]
    NotAllowed(String),
}

impl TokenError {
    /// What it means for the batches that needed the token.
    pub fn outcome(&self) -> Outcome {
        match self {
            Self::Unavailable { after, .. } => Outcome::Retry {
                after: *after,
                reason: self.to_string(),
            },
            _ => Outcome::Permanent {
                reason: self.to_string(),
            },
        }
    }
}

/// What to replace after an RFC 6749 §5.2 error code.
fn fix_for(code: &str) -> &'static str {
    match code {
        "invalid_grant" => "secrets.refresh_token is expired or revoked; authorize the app again and replace secrets.refresh_token",
        "invalid_client" | "unauthorized_client" => "check secrets.client_id and secrets.client_secret (the app the refresh token was issued to)",
        "invalid_scope" => "secrets.refresh_token lacks a scope the API needs; authorize the app again with it and replace secrets.refresh_token",
        _ => "check secrets.client_id, secrets.client_secret and secrets.refresh_token",
    }
}

/// A token as issued, and when to replace it.
struct Issued {
    token: AccessToken,
    replace_at: OffsetDateTime,
}

type Slot = Arc<tokio::sync::Mutex<Option<Issued>>>;

/// Access tokens per destination, from its vendor's token endpoint, kept until shortly before
/// they expire; one exchange at a time per destination.
pub struct TokenSource {
    egress: Arc<dyn Egress>,
    clock: Arc<dyn Clock>,
    slots: TtlCache<[u8; 32], Slot>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSource")
    }
}

impl TokenSource {
    pub fn new(egress: Arc<dyn Egress>, clock: Arc<dyn Clock>) -> Self {
        Self {
            slots: TtlCache::new(clock.clone(), SLOT_LIFETIME, SLOTS),
            egress,
            clock,
        }
    }

    /// The grant's access token: the one kept while it is fresh, else a new one.
    pub async fn token(&self, grant: &Grant) -> Result<AccessToken, TokenError> {
        self.get(grant, None).await
    }

    /// A new access token after the vendor's API refused `stale` (a 401); the one kept, when
    /// another caller replaced `stale` already.
    pub async fn refresh(
        &self,
        grant: &Grant,
        stale: &AccessToken,
    ) -> Result<AccessToken, TokenError> {
        self.get(grant, Some(stale)).await
    }

    async fn get(
        &self,
        grant: &Grant,
        stale: Option<&AccessToken>,
    ) -> Result<AccessToken, TokenError> {
        let slot = self
            .slots
            .update(grant.key, |old| old.unwrap_or_default())
            .0;
        let mut kept = slot.lock().await;
        let now = self.clock.now();
        if let Some(issued) = kept.as_ref() {
            let refused = stale.is_some_and(|s| s.same_as(&issued.token));
            if !refused && now < issued.replace_at {
                return Ok(issued.token.clone());
            }
        }
        *kept = None;
        let issued = self.exchange(grant, now).await?;
        let token = issued.token.clone();
        *kept = Some(issued);
        Ok(token)
    }

    /// One exchange at the token endpoint.
    async fn exchange(&self, grant: &Grant, now: OffsetDateTime) -> Result<Issued, TokenError> {
        let response = self
            .egress
            .post(&grant.request())
            .await
            .map_err(|e| match e {
                EgressError::Refused(r) => TokenError::NotAllowed(format!("egress refused: {r}")),
                other => TokenError::Unavailable {
                    after: None,
                    reason: format!("the token endpoint did not answer: {other}"),
                },
            })?;
        let result = read_answer(grant, &response, now);
        match &result {
            Ok(issued) => tracing::info!(
                destination = %grant.destination,
                valid_s = (issued.replace_at - now).whole_seconds(),
                "issued an OAuth access token"
            ),
            Err(e) => tracing::warn!(
                destination = %grant.destination,
                status = response.status,
                error = %e,
                "no OAuth access token"
            ),
        }
        result
    }
}

/// Reads the token endpoint's answer (RFC 6749 §5.1 success, §5.2 error).
fn read_answer(
    grant: &Grant,
    response: &HttpResponse,
    now: OffsetDateTime,
) -> Result<Issued, TokenError> {
    let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::trim);
    let status = response.status;
    if (200..300).contains(&status) {
        let token = text("access_token").filter(|t| !t.is_empty());
        let bearer = text("token_type").is_none_or(|t| t.eq_ignore_ascii_case("bearer"));
        let (Some(token), true) = (token, bearer) else {
            return Err(TokenError::Unavailable {
                after: None,
                reason: format!(
                    "the token endpoint answered HTTP {status} without a bearer access_token"
                ),
            });
        };
        let lifetime = match body.get("expires_in") {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
        .filter(|s| *s > 0)
        .map_or(UNSTATED_LIFETIME, Duration::seconds);
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        return Ok(Issued {
            token: AccessToken(token.into()),
            replace_at: now + lifetime - margin,
        });
    }
    let after = super::retry_after(response, now);
    if matches!(status, 408 | 429 | 500..=599) {
        return Err(TokenError::Unavailable {
            after,
            reason: format!("the token endpoint answered HTTP {status}"),
        });
    }
    let code = text("error")
        .filter(|c| !c.is_empty() && c.len() <= 64)
        .unwrap_or(if status == 401 {
            "invalid_client"
        } else {
            "unknown error"
        })
        .to_owned();
    let detail = text("error_description")
        .filter(|d| !d.is_empty())
        .map(|d| {
            let d: String = d.chars().take(200).collect();
            format!(": {}", grant.redact(&d))
        })
        .unwrap_or_default();
    Err(TokenError::Refused {
        status,
        fix: fix_for(&code).to_owned(),
        code: grant.redact(&code),
        detail,
    })
}

#[cfg(test)]
#[path = "oauth_tests.rs"]
mod tests;
