//! The destination form's inputs of the ad-platform kinds added with issue 15 (Snapchat,
//! Pinterest, Reddit, Microsoft Advertising, LinkedIn, Google Ads, ...):
//! labels and hints only, like [`super::destination_form::KINDS`]; every rule is the core's.

use super::destination_form::KindForm;

/// The kinds, as offered by the console after the first four.
pub const AD_KINDS: [KindForm; 7] = [
    (
        "snapchat",
        "Snap Conversions API",
        &[(
            "pixel_id",
            "Pixel ID",
            "The Snap Pixel ID, from Snap Events Manager",
            true,
        )],
        &[(
            "access_token",
            "Access token",
            "A Conversions API token, generated in Snap Business Manager",
            true,
        )],
    ),
    (
        "pinterest",
        "Pinterest Conversions API",
        &[(
            "ad_account_id",
            "Ad account ID",
            "The numeric ad account ID, from Pinterest Ads Manager",
            true,
        )],
        &[(
            "access_token",
            "Conversion access token",
            "A conversion access token, generated in Pinterest Ads Manager under Conversions",
            true,
        )],
    ),
    (
        "reddit",
        "Reddit Conversions API",
        &[(
            "ad_account_id",
            "Ad account ID",
            "The Reddit Ads account ID (a2_…), from Reddit Ads Manager",
            true,
        )],
        &[(
            "access_token",
            "Conversion access token",
            "A Conversions API access token, generated in Reddit Events Manager",
            true,
        )],
    ),
    (
        "microsoft_ads",
        "Microsoft Advertising Conversions API (UET)",
        &[(
            "tag_id",
            "UET tag ID",
            "The numeric UET tag ID, from Microsoft Advertising under Tools > UET tag",
            true,
        )],
        &[(
            "access_token",
            "Conversions API token",
            "The CAPI token of the UET tag (Use Conversions API, in Microsoft Advertising)",
            true,
        )],
    ),
    (
        "segment",
        "Segment-compatible API (Segment, RudderStack, …)",
        &[(
            "identifiers",
            "Identifiers",
            "hashed (SHA-256 digests as traits and userId) or scrubbed (none); set Endpoint to the API's base URL (default https://api.segment.io)",
            true,
        )],
        &[(
            "write_key",
            "Write key",
            "The write key of the source that receives the events",
            true,
        )],
    ),
    (
        "linkedin",
        "LinkedIn Conversions API",
        &[
            ("conversion_id", "Conversion rule ID", "The numeric ID of a conversion rule whose method is Conversions API, from Campaign Manager; set Events to the events that are this conversion", true),
            ("api_version", "API version", "LinkedIn-Version as YYYYMM, for example 202510", true),
        ],
        OAUTH_SECRETS,
    ),
    (
        "google_ads",
        "Google Ads click conversions",
        &[
            ("customer_id", "Customer ID", "The Google Ads account's 10-digit customer ID, without dashes", true),
            ("conversion_action_id", "Conversion action ID", "The numeric ID of an upload-clicks conversion action; set Events to the events that are this conversion", true),
            ("api_version", "API version", "The Google Ads API version, for example v22", true),
            ("login_customer_id", "Manager account ID", "Optional: the 10-digit manager account the OAuth user signs in through (login-customer-id)", false),
        ],
        &[
            OAUTH_SECRETS[0],
            OAUTH_SECRETS[1],
            OAUTH_SECRETS[2],
            ("developer_token", "Developer token", "The Google Ads API developer token of the manager account", true),
        ],
    ),
];

/// The write-only OAuth 2.0 secrets of a kind whose API takes access tokens: TrackLayer
/// exchanges them for access tokens itself.
const OAUTH_SECRETS: &[super::destination_form::Spec] = &[
    ("client_id", "Client ID", "The OAuth app's client ID", true),
    (
        "client_secret",
        "Client secret",
        "The OAuth app's client secret",
        true,
    ),
    (
        "refresh_token",
        "Refresh token",
        "A refresh token the app was granted by an account user (with the API's scopes)",
        true,
    ),
];

/// The warehouse kinds: Amazon Data Firehose. Credentials are a role ARN (config) or static
/// keys (write-only secrets), exactly one of the two: none is required by the form, the core
/// names the field at fault.
pub const WAREHOUSE_KINDS: [KindForm; 1] = [(
    "firehose",
    "Amazon Data Firehose",
    &[
        (
            "stream_name",
            "Stream name",
            "The Firehose stream that receives the events (one NDJSON line each)",
            true,
        ),
        (
            "region",
            "Region",
            "The stream's AWS region, e.g. eu-central-1",
            true,
        ),
        (
            "role_arn",
            "Role ARN",
            "The IAM role TrackLayer assumes (trust policy: TrackLayer's account, external id = \
             this workspace's id); leave empty to use static keys",
            false,
        ),
    ],
    &[
        (
            "aws_access_key_id",
            "Access key ID",
            "Only without a role ARN (installs outside AWS): an IAM user's key allowed \
             firehose:PutRecordBatch on the stream",
            false,
        ),
        (
            "aws_secret_access_key",
            "Secret access key",
            "Only with the access key ID",
            false,
        ),
    ],
)];

#[cfg(test)]
mod tests {
    use tracklayer_core::destination::DestinationKind;

    use super::super::destination_form::{all_kinds, inputs};

    #[test]
    fn every_destination_kind_has_a_console_form_with_its_routing_settings() {
        for kind in DestinationKind::ALL {
            let form = all_kinds().find(|k| k.0 == kind.as_str());
            let (_, _, config, _) = form.unwrap_or_else(|| panic!("{kind}: no console form"));
            for key in kind.routing_config() {
                assert!(config.iter().any(|s| s.0 == *key), "{kind}: no {key} input");
            }
        }
    }

    #[test]
    fn the_snapchat_form_asks_for_the_pixel_id_and_a_write_only_token() {
        let got = inputs("snapchat", None, None, &["pixel_id"]);
        let names: Vec<&str> = got.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["config.pixel_id", "secrets.access_token"]);
        let token = &got[1];
        assert!(token.secret && token.required && token.value.is_empty());
        assert!(got[0].routing);
    }

    #[test]
    fn the_linkedin_form_asks_for_the_rule_the_version_and_the_write_only_oauth_secrets() {
        let got = inputs("linkedin", None, None, &["conversion_id"]);
        let names: Vec<&str> = got.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "config.conversion_id",
                "config.api_version",
                "secrets.client_id",
                "secrets.client_secret",
                "secrets.refresh_token"
            ]
        );
        assert!(got[2..].iter().all(|i| i.secret && i.value.is_empty()));
        assert!(got[0].routing);
    }

    #[test]
    fn the_firehose_form_asks_for_the_stream_region_role_and_optional_write_only_keys() {
        let got = inputs(
            "firehose",
            None,
            None,
            &["stream_name", "region", "role_arn"],
        );
        let names: Vec<&str> = got.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "config.stream_name",
                "config.region",
                "config.role_arn",
                "secrets.aws_access_key_id",
                "secrets.aws_secret_access_key"
            ]
        );
        assert!(got[0].required && got[1].required && !got[2].required);
        for key in &got[3..] {
            assert!(key.secret && !key.required && key.value.is_empty());
        }
    }

    #[test]
    fn the_pinterest_form_asks_for_the_ad_account_and_a_write_only_token() {
        let got = inputs("pinterest", None, None, &["ad_account_id"]);
        let names: Vec<&str> = got.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["config.ad_account_id", "secrets.access_token"]);
        assert!(got[1].secret && got[1].required && got[1].value.is_empty());
        assert!(got[0].routing);
    }
}
