//! Envelope encryption with workspace data keys, and the keyed subject index.
//!
//! Each workspace has one 256-bit data key, wrapped by the platform key or the customer's
//! key (BYOK). From it derive: AES-256-GCM sealing of IP/UA and destination secrets, the
//! HMAC-SHA256 key of the internal subject index (never a bare hash of an identifier), and
//! the HMAC-SHA256 key of destination secret fingerprints (never a bare hash of a secret, so
//! whoever sees a fingerprint cannot test guesses offline).

use std::fmt;

use aes_gcm::aead::{Aead, AeadInPlace, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::KeyError;
use crate::workspace::WorkspaceId;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// A plaintext data key. Never logged, never stored: only its wrapped form is.
#[derive(Clone)]
pub struct DataKey([u8; 32]);

impl DataKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
    pub fn try_from_slice(bytes: &[u8]) -> Result<Self, KeyError> {
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| KeyError::Invalid("data key must be 32 bytes"))?;
        Ok(Self(arr))
    }
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        // Best effort wipe; the optimizer may not remove a volatile-free loop over a Drop.
        for b in self.0.iter_mut() {
            *b = 0;
        }
        std::hint::black_box(&self.0);
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// A data key as the key service wrapped it (KMS ciphertext blob, or local AES-GCM).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WrappedKey(#[serde(with = "b64")] pub Vec<u8>);

/// AES-256-GCM ciphertext: nonce ‖ ciphertext ‖ tag, bound to an associated-data label.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sealed(#[serde(with = "b64")] pub Vec<u8>);

/// `Debug` of opaque bytes: the type's name and their length, never the bytes.
macro_rules! debug_len {
    ($($name:ident),+) => {$(
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({} bytes)"), self.0.len())
            }
        }
    )+};
}
debug_len!(WrappedKey, Sealed);

/// The keys a workspace's data is processed with, derived once per unwrap.
#[derive(Clone)]
pub struct WorkspaceKeys {
    cipher: Aes256Gcm,
    subject: Hmac<Sha256>,
    fingerprint: Hmac<Sha256>,
}

impl fmt::Debug for WorkspaceKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WorkspaceKeys(<redacted>)")
    }
}

impl WorkspaceKeys {
    pub fn new(data_key: &DataKey) -> Self {
        let cipher = Aes256Gcm::new_from_slice(data_key.expose()).expect("32-byte key");
        let derive = |label: &[u8]| {
            let mut mac =
                <Hmac<Sha256> as Mac>::new_from_slice(data_key.expose()).expect("any key length");
            mac.update(label);
            let key = mac.finalize().into_bytes();
            <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("any key length")
        };
        Self {
            cipher,
            subject: derive(b"tracklayer/subject-index/v1"),
            fingerprint: derive(b"tracklayer/secret-fingerprint/v1"),
        }
    }

    /// A destination secret's fingerprint: 12 hex characters of
    /// HMAC-SHA256(workspace fingerprint key, name ‖ 0 ‖ secret). The same secret under the
    /// same name gives the same fingerprint within a workspace; without the workspace's data
    /// key nobody can compute one.
    pub fn secret_fingerprint(&self, name: &str, secret: &str) -> String {
        let mut mac = self.fingerprint.clone();
        mac.update(name.as_bytes());
        mac.update(&[0]);
        mac.update(secret.as_bytes());
        hex_lower(&mac.finalize().into_bytes()[..6])
    }

    /// Encrypts `plaintext`, bound to `aad` (e.g. `"ip:<workspace>:<event>"`).
    pub fn seal(&self, nonce: [u8; NONCE_LEN], aad: &[u8], plaintext: &[u8]) -> Sealed {
        // Encrypted in place in the output buffer: one allocation, no copy of the ciphertext.
        let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let tag = self
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), aad, &mut out[NONCE_LEN..])
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        out.extend_from_slice(&tag);
        Sealed(out)
    }

    pub fn open(&self, aad: &[u8], sealed: &Sealed) -> Result<Vec<u8>, KeyError> {
        if sealed.0.len() < NONCE_LEN + 16 {
            return Err(KeyError::Invalid("sealed value too short"));
        }
        let (nonce, ct) = sealed.0.split_at(NONCE_LEN);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| KeyError::Invalid("sealed value does not open with this key"))
    }

    /// The subject index of a canonical identifier: HMAC-SHA256(workspace key, field ‖ 0 ‖ value).
    pub fn subject_index(&self, field: &str, canonical: &str) -> String {
        let mut mac = self.subject.clone();
        mac.update(field.as_bytes());
        mac.update(&[0]);
        mac.update(canonical.as_bytes());
        hex_lower(&mac.finalize().into_bytes())
    }
}

/// Lowercase hex of `bytes`, like `hex::encode`, without its per-character iterator (this
/// runs for every digest ingest produces).
pub fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = vec![0; bytes.len() * 2];
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0x0f)];
    }
    String::from_utf8(out).expect("hex digits are ASCII")
}

/// What a sealed value is for: the first part of its associated data. A closed set, so a
/// typo cannot create a label that opens nothing; the strings are in stored data and never
/// change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SealLabel {
    /// A destination's secrets: `secrets`.
    Secrets,
    /// An event's operational data (IP, user agent): `op`.
    Operational,
    /// A delivery item's sealed fields: `item`.
    Item,
    /// An event's sealed fields shared by its items by reference to every destination that
    /// takes them as they are (no values of its own): `shared`.
    Shared,
    /// A part of a data-subject access export: `dsr-export`.
    DsrExport,
    /// The ids an event sent to vendors (GA4's client id), for access exports: `vendor-ids`.
    VendorIds,
}

impl SealLabel {
    /// The label as it is written into the associated data.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Secrets => "secrets",
            Self::Operational => "op",
            Self::Item => "item",
            Self::Shared => "shared",
            Self::DsrExport => "dsr-export",
            Self::VendorIds => "vendor-ids",
        }
    }
}

/// The associated data that binds a sealed value to its workspace and purpose.
pub fn aad(label: SealLabel, workspace: &WorkspaceId, id: &str) -> Vec<u8> {
    [label.as_str(), ":", workspace.as_str(), ":", id]
        .concat()
        .into_bytes()
}

impl Sealed {
    /// Appends exactly what `serde_json` writes for this value, a base64 string, to `out`,
    /// encoding in place and without serde's per-character escape check (base64 has nothing
    /// to escape). Queue messages carry one per item.
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        let engine = &base64::engine::general_purpose::STANDARD;
        let encoded = base64::encoded_len(self.0.len(), true).expect("sealed values are small");
        out.push(b'"');
        let start = out.len();
        out.resize(start + encoded, 0);
        let written = engine
            .encode_slice(&self.0, &mut out[start..])
            .expect("the buffer has the encoded length");
        debug_assert_eq!(written, encoded);
        out.push(b'"');
    }
}

mod b64 {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sealed values in stores and queues were bound to these strings: they never change.
    #[test]
    fn seal_labels_write_the_associated_data_stored_values_were_sealed_with() {
        let ws = WorkspaceId::parse("ws_us_0123456789abcdef").expect("a workspace id");
        let labels = [
            (SealLabel::Secrets, "secrets"),
            (SealLabel::Operational, "op"),
            (SealLabel::Item, "item"),
            (SealLabel::DsrExport, "dsr-export"),
            (SealLabel::VendorIds, "vendor-ids"),
        ];
        for (label, name) in labels {
            assert_eq!(label.as_str(), name);
            assert_eq!(
                aad(label, &ws, "dst_1"),
                format!("{name}:ws_us_0123456789abcdef:dst_1").into_bytes()
            );
        }
    }

    fn keys(byte: u8) -> WorkspaceKeys {
        WorkspaceKeys::new(&DataKey::from_bytes([byte; 32]))
    }

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_associated_data() {
        let k = keys(1);
        let sealed = k.seal([7; 12], b"ip:ws:1", b"203.0.113.9");
        assert_eq!(k.open(b"ip:ws:1", &sealed).unwrap(), b"203.0.113.9");
        assert!(k.open(b"ip:ws:2", &sealed).is_err());
        assert!(keys(2).open(b"ip:ws:1", &sealed).is_err());
    }

    #[test]
    fn the_subject_index_is_keyed_per_workspace_and_per_field() {
        let a = keys(1).subject_index("email", "a@example.com");
        assert_eq!(a, keys(1).subject_index("email", "a@example.com"));
        assert_ne!(a, keys(2).subject_index("email", "a@example.com"));
        assert_ne!(a, keys(1).subject_index("phone", "a@example.com"));
        assert_ne!(a, crate::identity::sha256_hex("a@example.com"));
    }

    #[test]
    fn secret_fingerprints_are_keyed_per_workspace_and_stable_within_one() {
        use sha2::Digest;
        let secret = "EAAB-meta-access-token";
        let fp = keys(1).secret_fingerprint("access_token", secret);
        assert_eq!(fp.len(), 12);
        assert_eq!(fp, keys(1).secret_fingerprint("access_token", secret));
        assert_ne!(fp, keys(2).secret_fingerprint("access_token", secret));
        assert_ne!(fp, keys(1).secret_fingerprint("api_secret", secret));
        assert_ne!(fp, hex::encode(&Sha256::digest(secret.as_bytes())[..6]));
        assert_ne!(fp, keys(1).subject_index("access_token", secret)[..12]);
    }

    #[test]
    fn sealed_values_are_nonce_then_ciphertext_then_tag() {
        let k = keys(3);
        let sealed = k.seal([5; 12], b"item:ws:1", b"{\"ip\":\"203.0.113.9\"}");
        let cipher = Aes256Gcm::new_from_slice(&[3; 32]).unwrap();
        let expected = cipher
            .encrypt(
                Nonce::from_slice(&[5; 12]),
                Payload {
                    msg: b"{\"ip\":\"203.0.113.9\"}",
                    aad: b"item:ws:1",
                },
            )
            .unwrap();
        assert_eq!(&sealed.0[..12], &[5; 12]);
        assert_eq!(&sealed.0[12..], &expected[..]);
    }

    #[test]
    fn sealed_json_is_written_as_serde_writes_it() {
        for len in 0..70 {
            let sealed = Sealed((0..len).map(|i| (i * 37 + 11) as u8).collect());
            let mut out = b"[".to_vec();
            sealed.write_json(&mut out);
            assert_eq!(out[1..], serde_json::to_vec(&sealed).unwrap()[..], "{len}");
        }
    }

    #[test]
    fn hex_lower_matches_the_hex_crate() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(hex_lower(&bytes), hex::encode(&bytes));
        assert_eq!(hex_lower(&[]), "");
    }

    #[test]
    fn debug_output_never_shows_key_material() {
        let k = DataKey::from_bytes([0xab; 32]);
        assert_eq!(format!("{k:?}"), "DataKey(<redacted>)");
    }
}
