//! The admin API's request bodies that are control-plane types (consent policy, security
//! settings, retention, workspace/destination patches, key requests, destination
//! definitions), decoded as the admin API's JSON extractor decodes them (serde_json).
//!
//! Input: a JSON request body.

use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tracklayer_core::admin::{DestinationPatch, KeyRequest, WorkspacePatch};
use tracklayer_core::consent::ConsentPolicy;
use tracklayer_core::destination::DestinationSpec;
use tracklayer_core::workspace::{Retention, SecuritySettings};

/// What decodes, re-encoded, decodes to the same value (what the API stores and shows is
/// what it read).
fn round_trip<T: DeserializeOwned + Serialize + PartialEq + Debug>(data: &[u8]) {
    if let Ok(value) = serde_json::from_slice::<T>(data) {
        let written = serde_json::to_vec(&value).expect("a decoded value encodes");
        let again: T = serde_json::from_slice(&written).expect("what is written is read back");
        assert_eq!(value, again);
    }
}

/// Decoding either succeeds or fails with an error naming a position or a field.
fn decodes<T: DeserializeOwned>(data: &[u8]) -> bool {
    match serde_json::from_slice::<T>(data) {
        Ok(_) => true,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            false
        }
    }
}

pub fn check(data: &[u8]) {
    round_trip::<ConsentPolicy>(data);
    round_trip::<SecuritySettings>(data);
    round_trip::<Retention>(data);
    let patch = decodes::<WorkspacePatch>(data);
    decodes::<DestinationPatch>(data);
    decodes::<KeyRequest>(data);
    decodes::<DestinationSpec>(data);
    // Bodies are objects: no array, string or number decodes as a patch.
    let first = data.iter().find(|b| !b.is_ascii_whitespace());
    if patch {
        assert_eq!(first, Some(&b'{'));
    }
}
