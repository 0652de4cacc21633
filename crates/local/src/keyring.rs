//! `Keyring` with an AES-256-GCM master key file (mode 0600), created at init.
//!
//! BYOK on one machine: a workspace's `KeyRef::Customer { key_arn }` names a key file under
//! `customer-keys/`; when the customer removes (or renames) it, the key is unavailable and
//! TrackLayer fails closed, exactly as with a disabled KMS key.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use tracklayer_core::clock::Ids;
use tracklayer_core::crypto::{DataKey, WrappedKey};
use tracklayer_core::error::KeyError;
use tracklayer_core::ports::Keyring;
use tracklayer_core::workspace::{KeyRef, WorkspaceId};

pub struct FileKeyring {
    master: Aes256Gcm,
    customer_dir: PathBuf,
    ids: Arc<dyn Ids>,
}

tracklayer_core::debug_fields!(FileKeyring: customer_dir);

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read the master key at {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the master key at {path}")]
    Create {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the master key at {path} must be exactly 32 bytes")]
    Length { path: String },
    #[error("the master key at {path} is readable by others (mode {mode:o}); run chmod 600")]
    Permissions { path: String, mode: u32 },
}

impl FileKeyring {
    /// Creates a new random master key file with mode 0600; fails if it exists.
    pub fn create_master_key(path: &Path, ids: &dyn Ids) -> Result<(), KeyFileError> {
        let mut key = [0u8; 32];
        ids.fill(&mut key);
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let create = |source| KeyFileError::Create {
            path: path.display().to_string(),
            source,
        };
        let mut file = opts.open(path).map_err(create)?;
        file.write_all(&key).map_err(create)?;
        file.sync_all().map_err(create)?;
        key.fill(0);
        Ok(())
    }

    /// Opens the master key file; refuses one that others can read.
    pub fn open(
        master_path: &Path,
        customer_dir: PathBuf,
        ids: Arc<dyn Ids>,
    ) -> Result<Self, KeyFileError> {
        let read = |source| KeyFileError::Read {
            path: master_path.display().to_string(),
            source,
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(master_path)
                .map_err(read)?
                .permissions()
                .mode()
                & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyFileError::Permissions {
                    path: master_path.display().to_string(),
                    mode,
                });
            }
        }
        let mut bytes = fs::read(master_path).map_err(read)?;
        if bytes.len() != 32 {
            return Err(KeyFileError::Length {
                path: master_path.display().to_string(),
            });
        }
        let master = Aes256Gcm::new_from_slice(&bytes).expect("32 bytes");
        bytes.fill(0);
        Ok(Self {
            master,
            customer_dir,
            ids,
        })
    }

    /// The file in `customer_dir` that holds the customer key `key_arn` (what a KMS key is on
    /// one machine): the ARN with every character but letters, digits and `-` made `_`.
    pub fn customer_key_file(customer_dir: &Path, key_arn: &str) -> PathBuf {
        let name = key_arn.replace(|c: char| !(c.is_ascii_alphanumeric() || c == '-'), "_");
        customer_dir.join(format!("{name}.key"))
    }

    fn wrapping_key(&self, key: &KeyRef) -> Result<Aes256Gcm, KeyError> {
        match key {
            KeyRef::Platform => Ok(self.master.clone()),
            KeyRef::Customer { key_arn } => {
                let path = Self::customer_key_file(&self.customer_dir, key_arn);
                let mut bytes = fs::read(&path).map_err(|_| {
                    KeyError::Unavailable(format!("customer key {key_arn} is disabled or missing"))
                })?;
                let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| {
                    KeyError::Unavailable(format!("customer key {key_arn} is not a 256-bit key"))
                })?;
                bytes.fill(0);
                Ok(cipher)
            }
        }
    }
}

fn context(ws: &WorkspaceId) -> Vec<u8> {
    // Like the KMS encryption context: a wrapped key opens only for its own workspace.
    format!("tracklayer/data-key/v1:{ws}").into_bytes()
}

#[async_trait]
impl Keyring for FileKeyring {
    async fn generate_data_key(
        &self,
        ws: &WorkspaceId,
        key: &KeyRef,
    ) -> Result<(DataKey, WrappedKey), KeyError> {
        let mut plain = [0u8; 32];
        self.ids.fill(&mut plain);
        let plain = DataKey::from_bytes(plain);
        let wrapped = self.wrap_data_key(ws, key, &plain).await?;
        Ok((plain, wrapped))
    }

    async fn wrap_data_key(
        &self,
        ws: &WorkspaceId,
        key: &KeyRef,
        plain: &DataKey,
    ) -> Result<WrappedKey, KeyError> {
        let wrapping = self.wrapping_key(key)?;
        let mut nonce = [0u8; 12];
        self.ids.fill(&mut nonce);
        let aad = context(ws);
        let ct = wrapping
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain.expose(),
                    aad: &aad,
                },
            )
            .map_err(|_| KeyError::Invalid("could not wrap the data key"))?;
        let mut wrapped = nonce.to_vec();
        wrapped.extend_from_slice(&ct);
        Ok(WrappedKey(wrapped))
    }

    async fn unwrap_data_key(
        &self,
        ws: &WorkspaceId,
        key: &KeyRef,
        wrapped: &WrappedKey,
    ) -> Result<DataKey, KeyError> {
        let wrapping = self.wrapping_key(key)?;
        if wrapped.0.len() < 12 + 16 {
            return Err(KeyError::Invalid("wrapped key too short"));
        }
        let (nonce, ct) = wrapped.0.split_at(12);
        let aad = context(ws);
        let mut plain = wrapping
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .map_err(|_| KeyError::Invalid("the wrapped key does not belong to this workspace"))?;
        let key = DataKey::try_from_slice(&plain);
        plain.fill(0);
        key
    }
}
