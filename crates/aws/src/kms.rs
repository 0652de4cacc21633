//! `Keyring` on KMS: `GenerateDataKey` / `Decrypt` with the encryption context
//! `{"workspace_id": ws}` (the IAM policies of `template.yaml` require it for customer keys,
//! and it binds a wrapped key to its workspace). `KeyRef::Platform` is the stack's key,
//! `KeyRef::Customer { key_arn }` the customer's (BYOK).
//!
//! A disabled, missing or inaccessible key fails closed (`KeyError::Unavailable`); a
//! ciphertext of another workspace or key is `KeyError::Invalid`; throttling and KMS's own
//! failures are transient. Unwrapped data keys are cached in memory for at most 5 minutes, so
//! ingest does not pay a KMS request per event (DESIGN.md § Cost).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::operation::decrypt::DecryptError;
use aws_sdk_kms::operation::encrypt::EncryptError;
use aws_sdk_kms::operation::generate_data_key::GenerateDataKeyError;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use aws_sdk_kms::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use sha2::{Digest, Sha256};
use tracklayer_core::crypto::{DataKey, WrappedKey};
use tracklayer_core::error::KeyError;
use tracklayer_core::ports::Keyring;
use tracklayer_core::workspace::{KeyRef, WorkspaceId};

use crate::config::MAX_DATA_KEY_CACHE;
use crate::error::{classify, code, Class};

const CONTEXT_KEY: &str = "workspace_id";
/// Cached data keys per process; past it, expired entries go, then everything.
const CACHE_MAX: usize = 10_000;

/// Codes that mean the key cannot be used now: fail closed, tell the operator.
const UNAVAILABLE: &[&str] = &[
    "NotFoundException",
    "DisabledException",
    "KMSInvalidStateException",
    "KeyUnavailableException",
    "AccessDeniedException",
    "InvalidKeyUsageException",
    "InvalidArnException",
];

/// Codes that mean the ciphertext is not this workspace's (or this key's).
const INVALID: &[&str] = &["InvalidCiphertextException", "IncorrectKeyException"];

type CacheKey = (String, String, [u8; 32]);

/// Data keys wrapped by KMS.
pub struct KmsKeyring {
    client: Client,
    platform_key: String,
    ttl: Duration,
    cache: Mutex<HashMap<CacheKey, (DataKey, Instant)>>,
}

tracklayer_core::debug_fields!(KmsKeyring: platform_key, ttl);

/// The modeled KMS exceptions of the two operations, by name: the service's error code when
/// the SDK built the error from a response, the variant otherwise.
pub(crate) trait KmsException {
    fn exception(&self) -> Option<&'static str>;
}

/// Implements [`KmsException`] for the error of one operation: the exceptions all three
/// operations share, and the operation's own `$extra` ones (named as their variants).
macro_rules! kms_exceptions {
    ($error:ty $(, $extra:ident)*) => {
        impl KmsException for $error {
            fn exception(&self) -> Option<&'static str> {
                Some(match self {
                    Self::NotFoundException(_) => "NotFoundException",
                    Self::DisabledException(_) => "DisabledException",
                    Self::KmsInvalidStateException(_) => "KMSInvalidStateException",
                    Self::KeyUnavailableException(_) => "KeyUnavailableException",
                    Self::InvalidKeyUsageException(_) => "InvalidKeyUsageException",
                    Self::KmsInternalException(_) => "KMSInternalException",
                    Self::DependencyTimeoutException(_) => "DependencyTimeoutException",
                    $(Self::$extra(_) => stringify!($extra),)*
                    _ => return None,
                })
            }
        }
    };
}

kms_exceptions!(GenerateDataKeyError);
kms_exceptions!(
    DecryptError,
    InvalidCiphertextException,
    IncorrectKeyException
);
kms_exceptions!(EncryptError);

/// Maps a KMS error to the keyring's classes. The key ARN is not secret; the SDK error stays
/// the source of transient errors.
pub(crate) fn key_error<E>(key: &str, err: SdkError<E, HttpResponse>) -> KeyError
where
    E: KmsException + ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let name = err
        .as_service_error()
        .and_then(KmsException::exception)
        .or_else(|| code(&err));
    if matches!(
        name,
        Some("KMSInternalException" | "DependencyTimeoutException")
    ) {
        return KeyError::Transient(Box::new(err));
    }
    match name {
        Some(c) if UNAVAILABLE.contains(&c) => {
            return KeyError::Unavailable(format!("KMS key {key} cannot be used ({c})"))
        }
        Some(c) if INVALID.contains(&c) => {
            return KeyError::Invalid("the wrapped key does not belong to this workspace or key")
        }
        _ => {}
    }
    match classify(&err) {
        Class::Transient => KeyError::Transient(Box::new(err)),
        Class::ConditionFailed | Class::Permanent => KeyError::Unavailable(format!(
            "KMS refused to use key {key} ({})",
            name.unwrap_or("unknown error")
        )),
    }
}

impl KmsKeyring {
    /// `ttl` is how long an unwrapped data key stays cached; at most 5 minutes.
    pub fn new(client: Client, platform_key: impl Into<String>, ttl: Duration) -> Self {
        Self {
            client,
            platform_key: platform_key.into(),
            ttl: ttl.min(MAX_DATA_KEY_CACHE),
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn key_id<'a>(&'a self, key: &'a KeyRef) -> &'a str {
        match key {
            KeyRef::Platform => &self.platform_key,
            KeyRef::Customer { key_arn } => key_arn,
        }
    }

    fn cached(&self, k: &CacheKey) -> Option<DataKey> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(k)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(key, _)| key.clone())
    }

    fn remember(&self, k: CacheKey, key: DataKey) {
        if self.ttl.is_zero() {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_MAX {
            let ttl = self.ttl;
            cache.retain(|_, (_, at)| at.elapsed() < ttl);
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(k, (key, Instant::now()));
    }
}

#[async_trait]
impl Keyring for KmsKeyring {
    async fn generate_data_key(
        &self,
        ws: &WorkspaceId,
        key: &KeyRef,
    ) -> Result<(DataKey, WrappedKey), KeyError> {
        let key_id = self.key_id(key);
        let out = self
            .client
            .generate_data_key()
            .key_id(key_id)
            .key_spec(DataKeySpec::Aes256)
            .encryption_context(CONTEXT_KEY, ws.as_str())
            .send()
            .await
            .map_err(|e| key_error(key_id, e))?;
        let plain = out
            .plaintext
            .ok_or(KeyError::Invalid("KMS returned no plaintext data key"))?;
        let wrapped = out
            .ciphertext_blob
            .ok_or(KeyError::Invalid("KMS returned no wrapped data key"))?;
        Ok((
            DataKey::try_from_slice(plain.as_ref())?,
            WrappedKey(wrapped.into_inner()),
        ))
    }

    async fn unwrap_data_key(
        &self,
        ws: &WorkspaceId,
        key: &KeyRef,
        wrapped: &WrappedKey,
    ) -> Result<DataKey, KeyError> {
        let key_id = self.key_id(key);
        let cache_key = (
            ws.as_str().to_owned(),
            key_id.to_owned(),
            Sha256::digest(&wrapped.0).into(),
        );
        if let Some(k) = self.cached(&cache_key) {
            return Ok(k);
        }
        let out = self
            .client
            .decrypt()
            .key_id(key_id)
            .ciphertext_blob(Blob::new(wrapped.0.clone()))
            .encryption_context(CONTEXT_KEY, ws.as_str())
            .send()
            .await
            .map_err(|e| key_error(key_id, e))?;
        let plain = out
            .plaintext
            .ok_or(KeyError::Invalid("KMS returned no plaintext"))?;
        let data_key = DataKey::try_from_slice(plain.as_ref())?;
        self.remember(cache_key, data_key.clone());
        Ok(data_key)
    }

    async fn wrap_data_key(
        &self,
        ws: &WorkspaceId,
        key: &KeyRef,
        plain: &DataKey,
    ) -> Result<WrappedKey, KeyError> {
        let key_id = self.key_id(key);
        let out = self
            .client
            .encrypt()
            .key_id(key_id)
            .plaintext(Blob::new(plain.expose().to_vec()))
            .encryption_context(CONTEXT_KEY, ws.as_str())
            .send()
            .await
            .map_err(|e| key_error(key_id, e))?;
        let wrapped = out
            .ciphertext_blob
            .ok_or(KeyError::Invalid("KMS returned no wrapped data key"))?;
        Ok(WrappedKey(wrapped.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_kms::operation::decrypt::DecryptOutput;
    use aws_sdk_kms::types::error::{
        DisabledException, InvalidCiphertextException, KeyUnavailableException,
        KmsInternalException, KmsInvalidStateException, NotFoundException,
    };
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use tracklayer_core::error::Action;
    use tracklayer_core::workspace::Region;

    const PLATFORM: &str = "arn:aws:kms:eu-central-1:111122223333:key/platform";
    const CUSTOMER: &str = "arn:aws:kms:eu-central-1:444455556666:key/customer";

    fn ws() -> WorkspaceId {
        WorkspaceId::new(Region::Eu, "kmsunit")
    }

    fn customer() -> KeyRef {
        KeyRef::Customer {
            key_arn: CUSTOMER.into(),
        }
    }

    fn keyring(client: Client) -> KmsKeyring {
        KmsKeyring::new(client, PLATFORM, Duration::from_secs(300))
    }

    async fn generate_fails_with(err: fn() -> GenerateDataKeyError) -> KeyError {
        let rule = mock!(Client::generate_data_key).then_error(err);
        let k = keyring(mock_client!(aws_sdk_kms, [&rule]));
        k.generate_data_key(&ws(), &customer()).await.unwrap_err()
    }

    async fn unwrap_fails_with(err: fn() -> DecryptError) -> KeyError {
        let rule = mock!(Client::decrypt).then_error(err);
        let k = keyring(mock_client!(aws_sdk_kms, [&rule]));
        k.unwrap_data_key(&ws(), &customer(), &WrappedKey(vec![1; 64]))
            .await
            .unwrap_err()
    }

    /// A KMS error whose exception carries no message, e.g.
    /// `kms_error!(DecryptError::NotFoundException)`.
    macro_rules! kms_error {
        ($error:ident :: $exception:ident) => {
            || $error::$exception($exception::builder().build())
        };
    }

    #[tokio::test]
    async fn a_disabled_customer_key_fails_closed_with_a_clear_error() {
        let err = generate_fails_with(|| {
            GenerateDataKeyError::DisabledException(
                DisabledException::builder()
                    .message("key is disabled")
                    .build(),
            )
        })
        .await;
        let KeyError::Unavailable(msg) = &err else {
            panic!("{err:?}")
        };
        assert!(
            msg.contains(CUSTOMER) && msg.contains("DisabledException"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn disabled_pending_deletion_missing_and_unavailable_keys_fail_closed() {
        let generate: [fn() -> GenerateDataKeyError; 3] = [
            kms_error!(GenerateDataKeyError::DisabledException),
            kms_error!(GenerateDataKeyError::KmsInvalidStateException),
            kms_error!(GenerateDataKeyError::NotFoundException),
        ];
        let unwrap: [fn() -> DecryptError; 3] = [
            kms_error!(DecryptError::DisabledException),
            kms_error!(DecryptError::KmsInvalidStateException),
            kms_error!(DecryptError::KeyUnavailableException),
        ];
        for (generate, unwrap) in generate.into_iter().zip(unwrap) {
            let err = generate_fails_with(generate).await;
            assert!(matches!(err, KeyError::Unavailable(_)), "{err:?}");
            let err = unwrap_fails_with(unwrap).await;
            assert!(matches!(err, KeyError::Unavailable(_)), "{err:?}");
        }
    }

    #[tokio::test]
    async fn a_foreign_ciphertext_is_invalid() {
        let err = unwrap_fails_with(kms_error!(DecryptError::InvalidCiphertextException)).await;
        assert!(matches!(err, KeyError::Invalid(_)), "{err:?}");
        assert_eq!(err.action(), Action::Reject);
    }

    #[tokio::test]
    async fn a_kms_internal_error_is_transient_and_keeps_its_source() {
        let err = generate_fails_with(kms_error!(GenerateDataKeyError::KmsInternalException)).await;
        assert!(matches!(err, KeyError::Transient(_)), "{err:?}");
        assert!(std::error::Error::source(&err).is_some());
    }

    #[tokio::test]
    async fn an_unwrapped_data_key_is_cached_so_kms_is_asked_once() {
        let rule = mock!(Client::decrypt)
            .match_requests(|r| {
                r.encryption_context()
                    .and_then(|c| c.get(CONTEXT_KEY))
                    .map(String::as_str)
                    == Some("ws_eu_kmsunit")
                    && r.key_id() == Some(PLATFORM)
            })
            .then_output(|| {
                DecryptOutput::builder()
                    .plaintext(Blob::new(vec![7; 32]))
                    .build()
            });
        let client = mock_client!(aws_sdk_kms, RuleMode::MatchAny, [&rule]);
        let k = keyring(client);
        let wrapped = WrappedKey(vec![1; 64]);
        for _ in 0..3 {
            let key = k
                .unwrap_data_key(&ws(), &KeyRef::Platform, &wrapped)
                .await
                .unwrap();
            assert_eq!(key.expose(), &[7; 32]);
        }
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_cache_time_above_five_minutes_is_cut_to_five() {
        let rule = mock!(Client::decrypt).then_output(|| DecryptOutput::builder().build());
        let k = KmsKeyring::new(
            mock_client!(aws_sdk_kms, [&rule]),
            PLATFORM,
            Duration::from_secs(3600),
        );
        assert_eq!(k.ttl, MAX_DATA_KEY_CACHE);
    }
}
