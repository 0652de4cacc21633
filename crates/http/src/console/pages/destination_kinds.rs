//! The destination form's inputs of the ad-platform kinds added with issue 15 (Snapchat,
//! Pinterest, Reddit, Microsoft Advertising, ...):
//! labels and hints only, like [`super::destination_form::KINDS`]; every rule is the core's.

use super::destination_form::KindForm;

/// The kinds, as offered by the console after the first four.
pub const AD_KINDS: [KindForm; 5] = [
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
];

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
    fn the_pinterest_form_asks_for_the_ad_account_and_a_write_only_token() {
        let got = inputs("pinterest", None, None, &["ad_account_id"]);
        let names: Vec<&str> = got.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["config.ad_account_id", "secrets.access_token"]);
        assert!(got[1].secret && got[1].required && got[1].value.is_empty());
        assert!(got[0].routing);
    }
}
