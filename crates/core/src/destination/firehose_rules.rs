//! Configure-time rules of the `firehose` kind (Amazon Data Firehose `PutRecordBatch`): what
//! its `config` and write-only `secrets` must look like, each rule naming the field at fault.
//!
//! - `config.stream_name`: a Firehose stream name, 1 to 64 of `[a-zA-Z0-9_.-]` (the API's
//!   `DeliveryStreamName` pattern).
//! - `config.region`: an AWS region name (`eu-central-1`, `us-gov-west-1`); the request goes
//!   to `https://firehose.<region>.amazonaws.com` unless the destination's `endpoint`
//!   overrides it (local tests: moto; the egress guard applies to it as to every endpoint).
//! - Credentials, exactly one way: `config.role_arn` (an IAM role ARN; on AWS it is assumed
//!   with STS, external id = the workspace id) or both static keys in `secrets`
//!   (`aws_access_key_id`, `aws_secret_access_key`; for installs outside AWS). The role ARN
//!   is config, not a secret: it grants nothing without the trust policy.

use serde_json::Value;

use super::{DestinationError, DestinationSpec};

/// The kind's rules for `spec` (required and known keys were checked before).
pub(super) fn validate(spec: &DestinationSpec) -> Result<(), DestinationError> {
    let cfg = |k: &str| spec.config.get(k).and_then(Value::as_str);
    let secret = |k: &str| spec.secrets.get(k).and_then(Value::as_str);
    let stream = cfg("stream_name").unwrap_or("");
    let ok = (1..=64).contains(&stream.len())
        && stream
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !ok {
        return Err(DestinationError::new(
            "config.stream_name",
            "must be 1 to 64 letters, digits, '_', '.' or '-' (a Firehose stream name)",
        ));
    }
    if !is_region(cfg("region").unwrap_or("")) {
        return Err(DestinationError::new(
            "config.region",
            "must be an AWS region name like eu-central-1",
        ));
    }
    let role = spec.config.get("role_arn");
    let (key_id, key) = (secret("aws_access_key_id"), secret("aws_secret_access_key"));
    match (role, key_id, key) {
        (Some(role), None, None) => {
            if !role.as_str().is_some_and(is_role_arn) {
                return Err(DestinationError::new(
                    "config.role_arn",
                    "must be an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>)",
                ));
            }
        }
        (Some(_), _, _) => {
            return Err(DestinationError::new(
                "config.role_arn",
                "give either config.role_arn or static keys (secrets.aws_access_key_id, \
                 secrets.aws_secret_access_key), not both",
            ))
        }
        (None, None, None) => {
            return Err(DestinationError::new(
                "config.role_arn",
                "is required unless secrets.aws_access_key_id and \
                 secrets.aws_secret_access_key are given",
            ))
        }
        (None, id, key) => {
            if !id.is_some_and(is_access_key_id) {
                return Err(DestinationError::new(
                    "secrets.aws_access_key_id",
                    "must be an AWS access key id (16 to 128 upper-case letters and digits)",
                ));
            }
            if !key.is_some_and(is_secret_access_key) {
                return Err(DestinationError::new(
                    "secrets.aws_secret_access_key",
                    "must be an AWS secret access key (40 characters of A-Z, a-z, 0-9, '/', '+')",
                ));
            }
        }
    }
    Ok(())
}

/// `eu-central-1`, `us-gov-west-1`, `ap-southeast-4`: lower-case words joined by `-`, ending
/// in a number.
fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && s.len() <= 32
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

/// `arn:<partition>:iam::<12 digits>:role/<path and name>` (IAM: name characters
/// `[\w+=,.@-]`, paths of `/`).
fn is_role_arn(s: &str) -> bool {
    let mut parts = s.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let name = resource.strip_prefix("role/").unwrap_or("");
    partition.starts_with("aws")
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && (1..=512).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-/".contains(&b))
}

fn is_access_key_id(s: &str) -> bool {
    (16..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

fn is_secret_access_key(s: &str) -> bool {
    s.len() == 40
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'/' || b == b'+')
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::super::DestinationSpec;

    const ROLE: &str = "arn:aws:iam::123456789012:role/tracklayer-firehose";
    const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE"; // pragma: allowlist secret
    const KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"; // pragma: allowlist secret

    fn firehose(config: Value, secrets: Value) -> DestinationSpec {
        serde_json::from_value(json!({"name": "Warehouse", "kind": "firehose",
            "config": config, "secrets": secrets}))
        .unwrap()
    }

    fn field(config: Value, secrets: Value) -> String {
        firehose(config, secrets).validate().unwrap_err().field
    }

    #[test]
    fn a_firehose_destination_takes_a_role_arn_or_static_keys() {
        firehose(
            json!({"stream_name": "events", "region": "eu-central-1", "role_arn": ROLE}),
            json!({}),
        )
        .validate()
        .unwrap();
        firehose(
            json!({"stream_name": "tl.events-1", "region": "us-gov-west-1"}),
            json!({"aws_access_key_id": KEY_ID, "aws_secret_access_key": KEY}),
        )
        .validate()
        .unwrap();
    }

    #[test]
    fn a_firehose_destination_without_credentials_or_with_both_kinds_names_the_role_arn() {
        let cfg = json!({"stream_name": "events", "region": "eu-central-1"});
        assert_eq!(field(cfg.clone(), json!({})), "config.role_arn");
        let both = json!({"stream_name": "events", "region": "eu-central-1", "role_arn": ROLE});
        assert_eq!(
            field(
                both,
                json!({"aws_access_key_id": KEY_ID, "aws_secret_access_key": KEY})
            ),
            "config.role_arn"
        );
        assert_eq!(
            field(cfg.clone(), json!({"aws_access_key_id": KEY_ID})),
            "secrets.aws_secret_access_key"
        );
        assert_eq!(
            field(cfg, json!({"aws_secret_access_key": KEY})),
            "secrets.aws_access_key_id"
        );
    }

    #[test]
    fn firehose_values_that_are_not_what_aws_takes_are_refused_naming_the_field() {
        let with = |k: &str, v: Value| {
            let mut cfg =
                json!({"stream_name": "events", "region": "eu-central-1", "role_arn": ROLE});
            cfg[k] = v;
            field(cfg, json!({}))
        };
        for bad in ["", "a/b", "events?x", &"s".repeat(65)] {
            assert_eq!(
                with("stream_name", json!(bad)),
                "config.stream_name",
                "{bad}"
            );
        }
        for bad in [
            "eu",
            "EU-central-1",
            "eu-central-",
            "eu.central.1",
            "169.254.169.254",
        ] {
            assert_eq!(with("region", json!(bad)), "config.region", "{bad}");
        }
        for bad in [
            "arn:aws:iam::123:role/x",
            "arn:aws:s3:::bucket",
            "arn:aws:iam::123456789012:user/x",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/a b",
        ] {
            assert_eq!(with("role_arn", json!(bad)), "config.role_arn", "{bad}");
        }
        let cfg = json!({"stream_name": "events", "region": "eu-central-1"});
        assert_eq!(
            field(
                cfg.clone(),
                json!({"aws_access_key_id": "akia-lower", "aws_secret_access_key": KEY})
            ),
            "secrets.aws_access_key_id"
        );
        assert_eq!(
            field(
                cfg,
                json!({"aws_access_key_id": KEY_ID, "aws_secret_access_key": "short"})
            ),
            "secrets.aws_secret_access_key"
        );
    }
}
