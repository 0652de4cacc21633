//! The one place a destination's sealed secrets are opened: delivery, the test event and an
//! admin update that keeps them all go through [`destination_secrets`].
//!
//! Secrets were sealed by TrackLayer itself (a JSON object of strings, under the workspace
//! data key, bound to the workspace and destination), so a value that does not open or does
//! not parse is corrupt stored data: a [`StoreError::Corrupt`], never an empty object, a
//! `null` or a complaint about the caller's request.

use serde_json::Value;

use super::Destination;
use crate::crypto::{aad, SealLabel, WorkspaceKeys};
use crate::error::StoreError;

/// What a corrupt secret is called in errors and logs.
const CONTEXT: &str = "destination secrets";

/// The associated data destination secrets are sealed with.
pub fn secrets_aad(d: &Destination) -> Vec<u8> {
    aad(SealLabel::Secrets, &d.workspace_id, d.id.as_str())
}

/// Opens `d`'s secrets with its workspace's keys: a JSON object.
///
/// A ciphertext that does not open, or opens to anything but a JSON object, is
/// [`StoreError::Corrupt`]; the failure is logged here with the ids only.
pub fn destination_secrets(keys: &WorkspaceKeys, d: &Destination) -> Result<Value, StoreError> {
    let corrupt = |why: &'static str| {
        tracing::error!(
            workspace = %d.workspace_id,
            destination = %d.id,
            why,
            "destination secrets are corrupt"
        );
        StoreError::corrupt(CONTEXT, why)
    };
    let plain = keys
        .open(&secrets_aad(d), &d.secrets)
        .map_err(|_| corrupt("the sealed value does not open"))?;
    match serde_json::from_slice::<Value>(&plain) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(corrupt("not a JSON object")),
        Err(_) => Err(corrupt("not JSON")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::datetime;

    use super::*;
    use crate::crypto::{DataKey, Sealed};
    use crate::destination::{DestinationId, DestinationKind, EventFilter};
    use crate::error::Action;
    use crate::workspace::{Region, WorkspaceId};

    fn sealed_with(keys: &WorkspaceKeys, plain: &[u8]) -> Destination {
        let at = datetime!(2026-03-01 12:00 UTC);
        let mut d = Destination {
            id: DestinationId::new("opener"),
            workspace_id: WorkspaceId::new(Region::Us, "opener"),
            name: "Meta".into(),
            kind: DestinationKind::MetaCapi,
            config: json!({}),
            secrets: Sealed(Vec::new()),
            secret_hints: json!({}),
            consent_purposes: Vec::new(),
            events: EventFilter::All,
            endpoint: None,
            paused: false,
            created_at: at,
            updated_at: at,
        };
        d.secrets = keys.seal([3; 12], &secrets_aad(&d), plain);
        d
    }

    fn keys() -> WorkspaceKeys {
        WorkspaceKeys::new(&DataKey::from_bytes([7; 32]))
    }

    #[test]
    fn opens_the_secrets_it_was_given() {
        let d = sealed_with(&keys(), br#"{"access_token":"EAAB1234"}"#);
        assert_eq!(
            destination_secrets(&keys(), &d).unwrap(),
            json!({"access_token": "EAAB1234"})
        );
    }

    #[test]
    fn a_flipped_byte_is_corrupt_stored_data_not_an_empty_secret() {
        let mut d = sealed_with(&keys(), br#"{"access_token":"EAAB1234"}"#);
        let last = d.secrets.0.len() - 20;
        d.secrets.0[last] ^= 0x40;
        let err = destination_secrets(&keys(), &d).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        assert_eq!(err.action(), Action::Reject);
        assert!(err.to_string().contains("corrupt"), "{err}");
    }

    #[test]
    fn secrets_that_are_not_a_json_object_are_corrupt_not_null() {
        for plain in [&b"not json"[..], b"null", b"\"EAAB1234\"", b"\xff\xfe"] {
            let d = sealed_with(&keys(), plain);
            let err = destination_secrets(&keys(), &d).unwrap_err();
            assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        }
    }

    #[test]
    fn another_destinations_secrets_do_not_open_under_this_ones_id() {
        let mut d = sealed_with(&keys(), br#"{"access_token":"EAAB1234"}"#);
        d.id = DestinationId::new("another");
        assert!(matches!(
            destination_secrets(&keys(), &d),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
