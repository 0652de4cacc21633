//! The audit key: HMAC-SHA256 key of a workspace's audit chain.
//!
//! It is a data key generated per workspace and wrapped by the **platform** key
//! (`KeyRef::Platform`, bound to the workspace by the key service's context), never by the
//! customer's BYOK key: the audit log is TrackLayer's own accountability record, and a
//! customer disabling their key (which fails their data closed) must neither make the log
//! unverifiable to us nor stop the audit of that very change. The wrapped key is kept in the
//! chain's head record; write access to the store alone cannot forge a MAC, since opening the
//! key takes the platform key (KMS Decrypt, or the local master key file).
//!
//! Opened keys are cached per process (by workspace and wrapped bytes), so appends and
//! verification unwrap once, not per entry.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::crypto::{DataKey, WrappedKey};
use crate::error::KeyError;
use crate::ports::Keyring;
use crate::workspace::{KeyRef, WorkspaceId};

/// Opened keys kept per process; past it, the cache starts over.
const CACHE_MAX: usize = 10_000;

/// An opened audit key.
#[derive(Clone)]
pub struct AuditKey(Hmac<Sha256>);

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditKey(<redacted>)")
    }
}

impl AuditKey {
    /// Derives the chain key from a data key (domain-separated from the data key's other uses).
    pub fn new(data_key: &DataKey) -> Self {
        let mut derive =
            <Hmac<Sha256> as Mac>::new_from_slice(data_key.expose()).expect("any key length");
        derive.update(b"tracklayer/audit-chain/v1");
        let key = derive.finalize().into_bytes();
        Self(<Hmac<Sha256> as Mac>::new_from_slice(&key).expect("any key length"))
    }

    /// HMAC over the parts, each followed by a 0 byte, hex.
    pub fn mac(&self, parts: &[&[u8]]) -> String {
        hex::encode(self.tag(parts).finalize().into_bytes())
    }

    /// Whether `mac_hex` is the MAC of the parts (constant-time comparison).
    pub fn verify(&self, parts: &[&[u8]], mac_hex: &str) -> bool {
        match hex::decode(mac_hex) {
            Ok(bytes) => self.tag(parts).verify_slice(&bytes).is_ok(),
            Err(_) => false,
        }
    }

    fn tag(&self, parts: &[&[u8]]) -> Hmac<Sha256> {
        let mut mac = self.0.clone();
        for p in parts {
            mac.update(p);
            mac.update(&[0]);
        }
        mac
    }
}

/// Creates and opens audit keys through the keyring, with a cache.
pub struct AuditKeys {
    keyring: Arc<dyn Keyring>,
    cache: Mutex<HashMap<(WorkspaceId, Vec<u8>), AuditKey>>,
}

impl fmt::Debug for AuditKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditKeys").finish_non_exhaustive()
    }
}

impl AuditKeys {
    pub fn new(keyring: Arc<dyn Keyring>) -> Self {
        Self {
            keyring,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// A new audit key for a workspace, wrapped by the platform key.
    pub async fn create(&self, ws: &WorkspaceId) -> Result<(AuditKey, WrappedKey), KeyError> {
        let (plain, wrapped) = self
            .keyring
            .generate_data_key(ws, &KeyRef::Platform)
            .await?;
        let key = AuditKey::new(&plain);
        self.remember(ws, &wrapped, &key);
        Ok((key, wrapped))
    }

    /// Opens a workspace's wrapped audit key (cached).
    pub async fn open(&self, ws: &WorkspaceId, wrapped: &WrappedKey) -> Result<AuditKey, KeyError> {
        let cache_key = (ws.clone(), wrapped.0.clone());
        if let Some(k) = self.lock().get(&cache_key) {
            return Ok(k.clone());
        }
        let plain = self
            .keyring
            .unwrap_data_key(ws, &KeyRef::Platform, wrapped)
            .await?;
        let key = AuditKey::new(&plain);
        self.remember(ws, wrapped, &key);
        Ok(key)
    }

    fn remember(&self, ws: &WorkspaceId, wrapped: &WrappedKey, key: &AuditKey) {
        let mut cache = self.lock();
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert((ws.clone(), wrapped.0.clone()), key.clone());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(WorkspaceId, Vec<u8>), AuditKey>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A key error met while appending or retiring, as the store's error (the caller retries a
/// transient or unavailable key; a key that does not open is corrupt data).
pub fn store_error(context: &'static str, e: KeyError) -> crate::error::StoreError {
    match e {
        KeyError::Invalid(_) => crate::error::StoreError::corrupt(context, e),
        other => crate::error::StoreError::transient(context, other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_depend_on_the_key_and_verify_in_constant_time() {
        let a = AuditKey::new(&DataKey::from_bytes([1; 32]));
        let b = AuditKey::new(&DataKey::from_bytes([2; 32]));
        let m = a.mac(&[b"entry", b"x"]);
        assert!(a.verify(&[b"entry", b"x"], &m));
        assert!(!b.verify(&[b"entry", b"x"], &m));
        assert!(!a.verify(&[b"entry", b"y"], &m));
        assert!(!a.verify(&[b"entryx"], &m), "parts are delimited");
        assert_eq!(format!("{a:?}"), "AuditKey(<redacted>)");
    }
}
