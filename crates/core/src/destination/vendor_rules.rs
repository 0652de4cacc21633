//! Configure-time rules of the ad-platform kinds added after the first four (Snapchat,
//! Pinterest, Reddit, LinkedIn, Google Ads, ...):
//! what their `config` values must look like so that a destination that validates can be sent
//! to. Each rule names the field at fault; [`DestinationSpec::validate`] runs the shared
//! checks (required and known keys) first.

use serde_json::Value;

use super::{DestinationError, DestinationKind, DestinationSpec, EventFilter};

/// The kind-specific rules of `spec`.
pub(super) fn validate(spec: &DestinationSpec) -> Result<(), DestinationError> {
    let cfg = |k: &str| spec.config.get(k).and_then(Value::as_str).unwrap_or("");
    match spec.kind {
        DestinationKind::Snapchat => path_id("config.pixel_id", cfg("pixel_id")),
        DestinationKind::Pinterest => {
            digits("config.ad_account_id", cfg("ad_account_id"), 18)?;
            boolean(spec, "test_mode")
        }
        DestinationKind::Reddit => {
            path_id("config.ad_account_id", cfg("ad_account_id"))?;
            boolean(spec, "test_mode")
        }
        // A UET tag id is a number (`https://capi.uet.microsoft.com/v1/{tagId}/events`).
        DestinationKind::MicrosoftAds => digits("config.tag_id", cfg("tag_id"), 18),
        DestinationKind::Segment => {
            let identifiers = SEGMENT_IDENTIFIERS.contains(&cfg("identifiers"));
            rule(
                identifiers,
                "config.identifiers",
                "must be hashed or scrubbed",
            )?;
            let key = spec.secrets.get("write_key").and_then(Value::as_str);
            basic_auth_user("secrets.write_key", key.unwrap_or(""))
        }
        DestinationKind::Linkedin => {
            digits("config.conversion_id", cfg("conversion_id"), 20)?;
            year_month("config.api_version", cfg("api_version"))?;
            one_conversion(spec, "a LinkedIn conversion rule")
        }
        DestinationKind::GoogleAds => {
            customer_id("config.customer_id", cfg("customer_id"))?;
            digits(
                "config.conversion_action_id",
                cfg("conversion_action_id"),
                20,
            )?;
            if spec.config.get("login_customer_id").is_some() {
                customer_id("config.login_customer_id", cfg("login_customer_id"))?;
            }
            let version = cfg("api_version");
            let ok = version.strip_prefix('v').is_some_and(|n| {
                (1..=3).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit())
            });
            let version_rule = "must be a Google Ads API version such as v22";
            rule(ok, "config.api_version", version_rule)?;
            boolean(spec, "validate_only")?;
            one_conversion(spec, "a Google Ads conversion action")
        }
        _ => Ok(()),
    }
}

/// What a Segment-compatible destination receives of the identifiers: their digests, or none.
pub const SEGMENT_IDENTIFIERS: [&str; 2] = ["hashed", "scrubbed"];

/// A value sent as the user of HTTP Basic auth (a Segment write key): 1 to 256 visible ASCII
/// characters without `:`, which would end the user part (RFC 7617).
fn basic_auth_user(field: &str, value: &str) -> Result<(), DestinationError> {
    let ok = (1..=256).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_graphic() && b != b':');
    rule(
        ok,
        field,
        "must be 1 to 256 visible ASCII characters without ':'",
    )
}

/// A Google Ads customer id: its 10 digits, without the dashes the UI shows (`123-456-7890`).
fn customer_id(field: &str, value: &str) -> Result<(), DestinationError> {
    let ok = value.len() == 10 && value.bytes().all(|b| b.is_ascii_digit());
    rule(
        ok,
        field,
        "must be the 10-digit customer id, without dashes",
    )
}

/// A versioned API's `YYYYMM` (LinkedIn's `LinkedIn-Version` header): six digits, a month
/// from 01 to 12.
fn year_month(field: &str, value: &str) -> Result<(), DestinationError> {
    let month = value.get(4..).and_then(|m| m.parse::<u8>().ok());
    let ok = value.len() == 6
        && value.bytes().all(|b| b.is_ascii_digit())
        && month.is_some_and(|m| (1..=12).contains(&m));
    rule(ok, field, "must be a version as YYYYMM, e.g. 202510")
}

/// A destination whose every event counts as one conversion (a LinkedIn conversion rule, a
/// Google Ads conversion action) names the events that are that conversion: `events` must be
/// an allow-list, or every page view would count as a purchase.
fn one_conversion(spec: &DestinationSpec, what: &str) -> Result<(), DestinationError> {
    match &spec.events {
        EventFilter::Allow(names) if !names.is_empty() => Ok(()),
        _ => Err(DestinationError::new(
            "events",
            format!(
                "{what} counts every event it receives: name the events that are this \
                 conversion ({{\"allow\": [\"Order Completed\"]}})"
            ),
        )),
    }
}

/// An id that goes into a request path (`/v3/{pixel_id}/events`): letters, digits, `-` and
/// `_`, at most 64 characters, so that no value can reach another path or host.
fn path_id(field: &str, value: &str) -> Result<(), DestinationError> {
    let ok = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    rule(ok, field, "must be 1 to 64 letters, digits, '-' or '_'")
}

/// An id of 1 to `max` ASCII digits (Pinterest's `ad_account_id`: `^\d+$`, at most 18).
fn digits(field: &str, value: &str, max: usize) -> Result<(), DestinationError> {
    let ok = (1..=max).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit());
    rule(ok, field, format!("must be 1 to {max} digits"))
}

/// `Ok` when a value keeps its rule (`ok`), else the error naming `field` with `detail`.
fn rule(ok: bool, field: &str, detail: impl Into<String>) -> Result<(), DestinationError> {
    if ok {
        Ok(())
    } else {
        Err(DestinationError::new(field, detail))
    }
}

/// An optional `config` flag: `true` or `false` when present.
fn boolean(spec: &DestinationSpec, key: &str) -> Result<(), DestinationError> {
    match spec.config.get(key) {
        None | Some(Value::Bool(_)) => Ok(()),
        Some(_) => Err(DestinationError::new(
            format!("config.{key}"),
            "must be true or false",
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::DestinationSpec;

    fn snapchat(config: serde_json::Value, secrets: serde_json::Value) -> DestinationSpec {
        serde_json::from_value(json!({"name": "Snap", "kind": "snapchat",
            "config": config, "secrets": secrets}))
        .unwrap()
    }

    #[test]
    fn a_snapchat_destination_needs_a_pixel_id_and_an_access_token() {
        let ok = snapchat(
            json!({"pixel_id": "67d34640-b7a4-4b43-9d1d-1a2b3c4d5e6f"}),
            json!({"access_token": "snap-token"}),
        );
        ok.validate().unwrap();
        let no_token = snapchat(json!({"pixel_id": "p1"}), json!({}));
        assert_eq!(
            no_token.validate().unwrap_err().field,
            "secrets.access_token"
        );
        let no_pixel = snapchat(json!({}), json!({"access_token": "t"}));
        assert_eq!(no_pixel.validate().unwrap_err().field, "config.pixel_id");
    }

    #[test]
    fn a_snapchat_pixel_id_cannot_reach_another_path_or_host() {
        for bad in [
            "../v2/conversion",
            "p1/events?x=",
            "p 1",
            "p1@evil.example",
            "p%2F1",
        ] {
            let spec = snapchat(json!({"pixel_id": bad}), json!({"access_token": "t"}));
            assert_eq!(
                spec.validate().unwrap_err().field,
                "config.pixel_id",
                "{bad}"
            );
        }
    }

    fn pinterest(config: serde_json::Value) -> DestinationSpec {
        serde_json::from_value(json!({"name": "Pin", "kind": "pinterest",
            "config": config, "secrets": {"access_token": "pina_token"}}))
        .unwrap()
    }

    #[test]
    fn a_pinterest_ad_account_id_is_up_to_18_digits_and_reaches_no_other_path() {
        pinterest(json!({"ad_account_id": "549757463328"}))
            .validate()
            .unwrap();
        for bad in [
            "",
            "54975a",
            "../events",
            "1234567890123456789",
            "12/34",
            " 12",
        ] {
            let err = pinterest(json!({"ad_account_id": bad}))
                .validate()
                .unwrap_err();
            assert_eq!(err.field, "config.ad_account_id", "{bad}");
        }
    }

    #[test]
    fn a_pinterest_test_mode_is_a_boolean() {
        pinterest(json!({"ad_account_id": "1", "test_mode": true}))
            .validate()
            .unwrap();
        let err = pinterest(json!({"ad_account_id": "1", "test_mode": "yes"}))
            .validate()
            .unwrap_err();
        assert_eq!(err.field, "config.test_mode");
    }

    fn linkedin(config: serde_json::Value, secrets: serde_json::Value) -> DestinationSpec {
        serde_json::from_value(json!({"name": "LinkedIn", "kind": "linkedin",
            "config": config, "secrets": secrets,
            "events": {"allow": ["Order Completed"]}}))
        .unwrap()
    }

    #[test]
    fn a_linkedin_destination_needs_its_rule_a_version_the_oauth_secrets_and_named_events() {
        let oauth = json!({"client_id": "c", "client_secret": "s", "refresh_token": "r"});
        let config = json!({"conversion_id": "104012", "api_version": "202510"});
        linkedin(config.clone(), oauth.clone()).validate().unwrap();
        let cases = [
            (
                json!({"conversion_id": "1/2", "api_version": "202510"}),
                oauth.clone(),
                "config.conversion_id",
            ),
            (
                json!({"conversion_id": "1", "api_version": "2025-10"}),
                oauth.clone(),
                "config.api_version",
            ),
            (
                json!({"conversion_id": "1", "api_version": "202513"}),
                oauth.clone(),
                "config.api_version",
            ),
            (
                config.clone(),
                json!({"client_id": "c", "client_secret": "s"}),
                "secrets.refresh_token",
            ),
            (
                config.clone(),
                json!({"access_token": "t"}),
                "secrets.client_id",
            ),
        ];
        for (config, secrets, field) in cases {
            let err = linkedin(config, secrets).validate().unwrap_err();
            assert_eq!(err.field, field);
        }
        let mut every_event = linkedin(config, oauth);
        every_event.events = super::EventFilter::All;
        let err = every_event.validate().unwrap_err();
        assert_eq!(err.field, "events");
        assert!(err.detail.contains("counts every event"), "{}", err.detail);
    }

    #[test]
    fn a_google_ads_destination_needs_its_account_action_version_and_developer_token() {
        let secrets = json!({"client_id": "c", "client_secret": "s", "refresh_token": "r",
                             "developer_token": "d"});
        let spec = |config: serde_json::Value, secrets: &serde_json::Value| -> DestinationSpec {
            serde_json::from_value(
                json!({"name": "Ads", "kind": "google_ads", "config": config,
                "secrets": secrets, "events": {"allow": ["Order Completed"]}}),
            )
            .unwrap()
        };
        let good = json!({"customer_id": "1234567890", "conversion_action_id": "987",
                          "api_version": "v22", "login_customer_id": "1112223334"});
        spec(good.clone(), &secrets).validate().unwrap();
        let mut no_dev = secrets.clone();
        no_dev.as_object_mut().unwrap().remove("developer_token");
        let field = spec(good.clone(), &no_dev).validate().unwrap_err().field;
        assert_eq!(field, "secrets.developer_token");
        let bad = [
            ("customer_id", json!("123-456-7890")),
            ("conversion_action_id", json!("9/8")),
            ("api_version", json!("22")),
            ("login_customer_id", json!("12345")),
            ("validate_only", json!("yes")),
        ];
        for (key, value) in bad {
            let mut config = good.clone();
            config[key] = value;
            let err = spec(config, &secrets).validate().unwrap_err();
            assert_eq!(err.field, format!("config.{key}"));
        }
    }

    #[test]
    fn a_segment_destination_says_hashed_or_scrubbed_and_has_a_basic_auth_write_key() {
        let segment = |identifiers: &str, key: &str| -> DestinationSpec {
            serde_json::from_value(json!({"name": "Segment", "kind": "segment",
                "config": {"identifiers": identifiers}, "secrets": {"write_key": key}}))
            .unwrap()
        };
        segment("hashed", "wk_1").validate().unwrap();
        segment("scrubbed", "wk_1").validate().unwrap();
        let err = segment("raw", "wk_1").validate().unwrap_err();
        assert_eq!(err.field, "config.identifiers");
        for bad in ["wk:1", "wk 1", ""] {
            let err = segment("hashed", bad).validate().unwrap_err();
            assert_eq!(err.field, "secrets.write_key", "{bad:?}");
        }
    }

    #[test]
    fn a_reddit_ad_account_id_and_a_microsoft_ads_tag_id_reach_no_other_path() {
        let cases: [(&str, &str, &str, &[&str]); 2] = [
            (
                "reddit",
                "ad_account_id",
                "a2_gfgsrrd4ug2t",
                &["a2_x/../events", "t2 x", "a2_x?test=1"],
            ),
            // A UET tag id is digits only.
            (
                "microsoft_ads",
                "tag_id",
                "343003931",
                &["343003931/../x", "abc", "", "1234567890123456789"],
            ),
        ];
        for (kind, key, good, bad) in cases {
            let spec = |id: &str| -> DestinationSpec {
                serde_json::from_value(json!({"name": kind, "kind": kind,
                    "config": {key: id}, "secrets": {"access_token": "t"}}))
                .unwrap()
            };
            spec(good).validate().unwrap();
            for id in bad {
                let err = spec(id).validate().unwrap_err();
                assert_eq!(err.field, format!("config.{key}"), "{id}");
            }
        }
    }

    #[test]
    fn a_snapchat_destination_refuses_unknown_settings_naming_them() {
        let spec = snapchat(
            json!({"pixel_id": "p1", "test_event_code": "T1"}),
            json!({"access_token": "t"}),
        );
        assert_eq!(spec.validate().unwrap_err().field, "config.test_event_code");
    }
}
