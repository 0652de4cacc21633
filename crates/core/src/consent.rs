//! Consent: which purposes a destination needs, what the event says, and the decision.
//!
//! Signals (DESIGN.md § Consent): Segment `context.consent.categoryPreferences`, Google Consent
//! Mode v2 (`ad_storage`, `analytics_storage`, `ad_user_data`, `ad_personalization`, read from
//! `context.consent` or `context.consent.googleConsentMode`), and Global Privacy Control
//! (`Sec-GPC: 1` or `context.gpc`), which by default also overrides an explicit grant of
//! advertising (the policy's `gpc` setting can let the grant win). Without a signal, the jurisdiction's default applies:
//! EU opt-in (denied), US opt-out (granted, but GPC means out).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::workspace::Region;

/// A consent purpose, lowercase (`advertising`, `analytics`, or a customer's own category).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Purpose(String);

crate::newtype::string_newtype!(Purpose: InvalidPurpose, Display);

impl Purpose {
    pub fn parse(s: &str) -> Result<Self, InvalidPurpose> {
        let p = s.trim().to_ascii_lowercase();
        let ok = !p.is_empty()
            && p.len() <= 64
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(p))
        } else {
            Err(InvalidPurpose)
        }
    }
    pub fn advertising() -> Self {
        Self("advertising".into())
    }
    pub fn analytics() -> Self {
        Self("analytics".into())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a purpose is 1 to 64 characters of letters, digits, _ or -")]
pub struct InvalidPurpose;

/// The purposes a destination may need: the ones a signal speaks for (Consent Mode's
/// advertising, analytics and personalization) and the common consent-manager categories an
/// event's `categoryPreferences` grant. A misspelt purpose (`advertsing`) would be granted by
/// no signal but the region's default: it is refused when a destination is configured.
pub const KNOWN_PURPOSES: [&str; 6] = [
    "advertising",
    "analytics",
    "personalization",
    "functional",
    "marketing",
    "necessary",
];

/// Checks that every purpose of `purposes` is one of [`KNOWN_PURPOSES`]; the error names the
/// first unknown one by its index under `field` (`consent_purposes[0]`) and says what is known.
pub fn validate_purposes(field: &str, purposes: &[Purpose]) -> Result<(), (String, String)> {
    match purposes
        .iter()
        .position(|p| !KNOWN_PURPOSES.contains(&p.as_str()))
    {
        None => Ok(()),
        Some(i) => Err((
            format!("{field}[{i}]"),
            format!(
                "unknown consent purpose {:?}; known purposes are {}",
                purposes[i].as_str(),
                KNOWN_PURPOSES.join(", ")
            ),
        )),
    }
}

/// What happens to a purpose when the event carries no signal for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stance {
    /// Denied unless the visitor said yes.
    OptIn,
    /// Granted unless the visitor said no (or sent GPC, for advertising).
    OptOut,
}

/// A workspace's consent rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentPolicy {
    /// Default for visitors in the EU/EEA/UK/CH.
    pub eu_default: Stance,
    /// Default for everyone else.
    pub us_default: Stance,
    /// Treat Global Privacy Control as an opt-out of advertising.
    pub honor_gpc: bool,
    /// Take the tracking request's IP address and user agent as the visitor's when an event
    /// has no `context.ip`/`context.userAgent`, also for server traffic (a proxy that forwards
    /// its visitors' requests as they are). Off: only browser traffic (an `Origin` header)
    /// lends them, so a backend SDK's own address never reaches a destination as the visitor's.
    #[serde(default)]
    pub request_ip_as_client_ip: bool,
    /// Whether an explicit grant of advertising in the event beats GPC (stored policies
    /// without it: GPC wins).
    #[serde(default)]
    pub gpc: GpcPrecedence,
}

/// What wins when an event carries GPC and an explicit grant of advertising
/// (`categoryPreferences`, Consent Mode).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GpcPrecedence {
    /// GPC opts out; no grant in the event undoes it.
    #[default]
    OverridesGrants,
    /// The visitor's explicit grant wins over GPC.
    ExplicitGrantWins,
}

impl Default for ConsentPolicy {
    fn default() -> Self {
        Self {
            eu_default: Stance::OptIn,
            us_default: Stance::OptOut,
            honor_gpc: true,
            gpc: GpcPrecedence::OverridesGrants,
            request_ip_as_client_ip: false,
        }
    }
}

/// What one event says about consent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signals {
    /// Segment categoryPreferences, lowercased category → granted.
    pub categories: BTreeMap<String, bool>,
    /// Google Consent Mode v2 fields present on the event.
    pub ad_storage: Option<bool>,
    pub analytics_storage: Option<bool>,
    pub ad_user_data: Option<bool>,
    pub ad_personalization: Option<bool>,
    pub gpc: bool,
    /// Where the visitor is, if the event says (`context.location.country`).
    pub jurisdiction: Option<Region>,
}

/// EU/EEA, the UK and Switzerland: opt-in jurisdictions.
const OPT_IN_COUNTRIES: &[&str] = &[
    "at", "be", "bg", "hr", "cy", "cz", "dk", "ee", "fi", "fr", "de", "gr", "hu", "ie", "it", "lv",
    "lt", "lu", "mt", "nl", "pl", "pt", "ro", "sk", "si", "es", "se", "is", "li", "no", "gb", "uk",
    "ch",
];

fn flag(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "granted" | "true" | "yes" | "1" => Some(true),
            "denied" | "false" | "no" | "0" => Some(false),
            _ => None,
        },
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        _ => None,
    }
}

impl Signals {
    /// Reads the signals of an event's `context`, plus the request's `Sec-GPC` header.
    pub fn read(context: Option<&Value>, gpc_header: bool) -> Self {
        Self::read_with(|key| context.and_then(|c| c.get(key)), gpc_header)
    }

    /// Reads the signals of a context given by its top-level lookup (an event's context over
    /// its batch's, read in place), plus the request's `Sec-GPC` header.
    pub fn read_with<'v>(context: impl Fn(&str) -> Option<&'v Value>, gpc_header: bool) -> Self {
        let mut s = Signals {
            gpc: gpc_header,
            ..Default::default()
        };
        if context("gpc").and_then(flag) == Some(true) {
            s.gpc = true;
        }
        if let Some(country) = context("location")
            .and_then(|l| l.get("country"))
            .and_then(Value::as_str)
        {
            let c = country.trim().to_ascii_lowercase();
            if c.len() == 2 {
                s.jurisdiction = Some(if OPT_IN_COUNTRIES.contains(&c.as_str()) {
                    Region::Eu
                } else {
                    Region::Us
                });
            }
        }
        let Some(consent) = context("consent") else {
            return s;
        };
        if let Some(Value::Object(prefs)) = consent.get("categoryPreferences") {
            for (k, v) in prefs {
                if let Some(b) = flag(v) {
                    s.categories.insert(k.to_ascii_lowercase(), b);
                }
            }
        }
        let gcm = consent.get("googleConsentMode").unwrap_or(consent);
        s.ad_storage = gcm.get("ad_storage").and_then(flag);
        s.analytics_storage = gcm.get("analytics_storage").and_then(flag);
        s.ad_user_data = gcm.get("ad_user_data").and_then(flag);
        s.ad_personalization = gcm.get("ad_personalization").and_then(flag);
        s
    }

    /// What the event says about one purpose, and where it said it.
    fn explicit(&self, purpose: &Purpose) -> Option<(bool, &'static str)> {
        if let Some(b) = self.categories.get(purpose.as_str()) {
            return Some((*b, "context.consent.categoryPreferences"));
        }
        match purpose.as_str() {
            "advertising" => {
                // Consent Mode v2: advertising needs storage and user-data consent; any
                // explicit denial wins.
                let fields = [self.ad_storage, self.ad_user_data];
                if fields.contains(&Some(false)) {
                    Some((
                        false,
                        "google consent mode (ad_storage/ad_user_data denied)",
                    ))
                } else if fields.contains(&Some(true)) {
                    Some((
                        true,
                        "google consent mode (ad_storage/ad_user_data granted)",
                    ))
                } else {
                    None
                }
            }
            "analytics" => self
                .analytics_storage
                .map(|b| (b, "google consent mode (analytics_storage)")),
            "personalization" => self
                .ad_personalization
                .map(|b| (b, "google consent mode (ad_personalization)")),
            _ => None,
        }
    }
}

/// The decision for one destination, with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

/// Decides whether an event may go to a destination that needs `purposes`.
pub fn decide(
    policy: &ConsentPolicy,
    workspace_region: Region,
    signals: &Signals,
    purposes: &[Purpose],
) -> Decision {
    if purposes.is_empty() {
        return Decision {
            allowed: true,
            reason: "destination requires no consent purpose".into(),
        };
    }
    let region = signals.jurisdiction.unwrap_or(workspace_region);
    let default = match region {
        Region::Eu => policy.eu_default,
        Region::Us => policy.us_default,
    };
    // The reason, one sentence per purpose joined by "; ", is written piece by piece: with
    // `format!` it was 2 % of `serve`'s core under load (three destinations per event).
    let mut reason = String::with_capacity(64 * purposes.len());
    let mut allowed = true;
    for purpose in purposes {
        let gpc_opts_out = policy.honor_gpc && signals.gpc && purpose.as_str() == "advertising";
        // Where the verdict came from: a signal's source, GPC over it, GPC, or the default.
        let (granted, overridden, source) = match signals.explicit(purpose) {
            Some((true, source))
                if gpc_opts_out && policy.gpc == GpcPrecedence::OverridesGrants =>
            {
                (false, true, Some(source))
            }
            Some((b, source)) => (b, false, Some(source)),
            None => (
                !gpc_opts_out && default == Stance::OptOut,
                gpc_opts_out,
                None,
            ),
        };
        allowed &= granted;
        let separator = if reason.is_empty() { "" } else { "; " };
        let verdict = if granted {
            " granted by "
        } else {
            " denied by "
        };
        reason.extend([separator, purpose.as_str(), verdict]);
        match (overridden, source) {
            (true, Some(source)) => reason.extend([
                "global privacy control, which overrides the grant in ",
                source,
            ]),
            (false, Some(source)) => reason.push_str(source),
            (true, None) => reason.push_str("global privacy control"),
            (false, None) => {
                let mode = if granted { "opt-out" } else { "opt-in" };
                reason.extend(["no signal; ", region.as_str(), " default is ", mode]);
            }
        }
    }
    Decision { allowed, reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ads() -> Vec<Purpose> {
        vec![Purpose::advertising()]
    }

    /// The decision under the default policy.
    fn decide_by_default(region: Region, signals: &Signals, purposes: &[Purpose]) -> Decision {
        decide(&ConsentPolicy::default(), region, signals, purposes)
    }

    /// The reason as the sentences were built with `format!` before they were written piece
    /// by piece: the same text for every policy, region, signal and purpose list.
    fn reference_reason(
        policy: &ConsentPolicy,
        workspace_region: Region,
        signals: &Signals,
        purposes: &[Purpose],
    ) -> String {
        let region = signals.jurisdiction.unwrap_or(workspace_region);
        let default = match region {
            Region::Eu => policy.eu_default,
            Region::Us => policy.us_default,
        };
        let mut reasons = Vec::new();
        for purpose in purposes {
            let gpc_opts_out = policy.honor_gpc && signals.gpc && purpose.as_str() == "advertising";
            let (granted, why) = match signals.explicit(purpose) {
                Some((true, source))
                    if gpc_opts_out && policy.gpc == GpcPrecedence::OverridesGrants =>
                {
                    (
                        false,
                        format!("global privacy control, which overrides the grant in {source}"),
                    )
                }
                Some((b, source)) => (b, source.to_owned()),
                None if gpc_opts_out => (false, "global privacy control".to_owned()),
                None => {
                    let b = default == Stance::OptOut;
                    let mode = if b { "opt-out" } else { "opt-in" };
                    (b, format!("no signal; {region} default is {mode}"))
                }
            };
            let verdict = if granted { "granted" } else { "denied" };
            reasons.push(format!("{purpose} {verdict} by {why}"));
        }
        reasons.join("; ")
    }

    #[test]
    fn every_reason_reads_as_the_sentences_it_always_was() {
        let contexts = [
            json!({}),
            json!({"gpc": true}),
            json!({"location": {"country": "DE"}}),
            json!({"gpc": true, "consent": {"categoryPreferences": {"advertising": true, "Analytics": false}}}),
            json!({"consent": {"categoryPreferences": {"personalization": true}}}),
            json!({"consent": {"ad_storage": "granted", "ad_user_data": "denied"}}),
            json!({"gpc": true, "consent": {"ad_storage": "granted", "ad_user_data": "granted"}}),
            json!({"consent": {"googleConsentMode": {"analytics_storage": "granted", "ad_personalization": "denied"}}}),
        ];
        let purpose_lists: Vec<Vec<Purpose>> = vec![
            vec![],
            ads(),
            vec![Purpose::analytics()],
            vec![
                Purpose::advertising(),
                Purpose::analytics(),
                Purpose::parse("personalization").unwrap(),
            ],
        ];
        let mut compared = 0;
        for (eu, us) in [
            (Stance::OptIn, Stance::OptOut),
            (Stance::OptOut, Stance::OptIn),
        ] {
            for honor_gpc in [true, false] {
                for gpc in [
                    GpcPrecedence::OverridesGrants,
                    GpcPrecedence::ExplicitGrantWins,
                ] {
                    let policy = ConsentPolicy {
                        eu_default: eu,
                        us_default: us,
                        honor_gpc,
                        gpc,
                        ..ConsentPolicy::default()
                    };
                    for ctx in &contexts {
                        for header_gpc in [false, true] {
                            let s = Signals::read(Some(ctx), header_gpc);
                            for region in [Region::Eu, Region::Us] {
                                for purposes in purpose_lists.iter().skip(1) {
                                    let d = decide(&policy, region, &s, purposes);
                                    let want = reference_reason(&policy, region, &s, purposes);
                                    assert_eq!(d.reason, want);
                                    compared += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(compared, 8 * 8 * 2 * 2 * 3);
        let none = decide(
            &ConsentPolicy::default(),
            Region::Eu,
            &Signals::default(),
            &[],
        );
        assert_eq!(none.reason, "destination requires no consent purpose");
    }

    #[test]
    fn a_misspelt_consent_purpose_is_refused_naming_its_index() {
        let purposes = |names: &[&str]| -> Vec<Purpose> {
            names.iter().map(|n| Purpose::parse(n).unwrap()).collect()
        };
        validate_purposes("consent_purposes", &purposes(&["advertising", "Analytics"])).unwrap();
        let (field, detail) =
            validate_purposes("consent_purposes", &purposes(&["analytics", "advertsing"]))
                .unwrap_err();
        assert_eq!(field, "consent_purposes[1]");
        assert!(detail.contains("\"advertsing\""), "{detail}");
        assert!(detail.contains("advertising"), "{detail}");
    }

    #[test]
    fn an_eu_event_without_signal_is_not_sent_to_advertising() {
        let d = decide_by_default(Region::Eu, &Signals::default(), &ads());
        assert!(!d.allowed);
        assert!(d.reason.contains("eu default is opt-in"), "{}", d.reason);
    }

    #[test]
    fn a_us_event_without_signal_is_sent_unless_gpc_is_set() {
        let p = ConsentPolicy::default();
        assert!(decide(&p, Region::Us, &Signals::default(), &ads()).allowed);
        let gpc = Signals::read(None, true);
        let d = decide(&p, Region::Us, &gpc, &ads());
        assert!(!d.allowed);
        assert!(d.reason.contains("global privacy control"));
        let ctx_gpc = Signals::read(Some(&json!({"gpc": true})), false);
        assert!(!decide(&p, Region::Us, &ctx_gpc, &ads()).allowed);
    }

    #[test]
    fn segment_category_preferences_are_matched_case_insensitively() {
        let ctx =
            json!({"consent": {"categoryPreferences": {"Advertising": true, "Analytics": false}}});
        let s = Signals::read(Some(&ctx), false);
        let p = ConsentPolicy::default();
        assert!(decide(&p, Region::Eu, &s, &ads()).allowed);
        assert!(!decide(&p, Region::Eu, &s, &[Purpose::analytics()]).allowed);
    }

    #[test]
    fn google_consent_mode_denial_wins_over_a_grant() {
        let ctx = json!({"consent": {"ad_storage": "granted", "ad_user_data": "denied"}});
        let s = Signals::read(Some(&ctx), false);
        assert!(!decide_by_default(Region::Us, &s, &ads()).allowed);
        let ctx = json!({"consent": {"googleConsentMode": {"analytics_storage": "granted"}}});
        let s = Signals::read(Some(&ctx), false);
        assert!(decide_by_default(Region::Eu, &s, &[Purpose::analytics()]).allowed);
    }

    #[test]
    fn the_visitors_country_picks_the_jurisdiction() {
        let ctx = json!({"location": {"country": "DE"}});
        let s = Signals::read(Some(&ctx), false);
        assert!(!decide_by_default(Region::Us, &s, &ads()).allowed);
    }

    #[test]
    fn by_default_gpc_wins_over_an_explicit_grant_of_advertising() {
        let ctx = json!({"gpc": true, "consent": {"categoryPreferences": {"advertising": true}}});
        let s = Signals::read(Some(&ctx), false);
        let d = decide_by_default(Region::Us, &s, &ads());
        assert!(!d.allowed);
        assert!(d.reason.contains("global privacy control"), "{}", d.reason);
        let ctx = json!({"consent": {"ad_storage": "granted", "ad_user_data": "granted"}});
        let s = Signals::read(Some(&ctx), true);
        assert!(!decide_by_default(Region::Us, &s, &ads()).allowed);
        // An explicit grant of a purpose GPC does not cover still counts.
        let ctx = json!({"gpc": true, "consent": {"categoryPreferences": {"analytics": true}}});
        let s = Signals::read(Some(&ctx), false);
        let p = ConsentPolicy::default();
        assert!(decide(&p, Region::Eu, &s, &[Purpose::analytics()]).allowed);
    }

    #[test]
    fn an_explicit_grant_beats_gpc_only_when_the_policy_says_so_and_the_visitor_said_so() {
        let policy = ConsentPolicy {
            gpc: GpcPrecedence::ExplicitGrantWins,
            ..ConsentPolicy::default()
        };
        let ctx = json!({"gpc": true, "consent": {"categoryPreferences": {"advertising": true}}});
        let s = Signals::read(Some(&ctx), false);
        let d = decide(&policy, Region::Us, &s, &ads());
        assert!(d.allowed, "{}", d.reason);
        assert!(d.reason.contains("categoryPreferences"), "{}", d.reason);
        // Without a grant, GPC still opts out.
        let s = Signals::read(Some(&json!({"gpc": true})), false);
        assert!(!decide(&policy, Region::Us, &s, &ads()).allowed);
    }

    #[test]
    fn the_gpc_setting_defaults_to_overrides_grants_and_reads_both_values() {
        let stored = json!({"eu_default": "opt_in", "us_default": "opt_out", "honor_gpc": true});
        let p: ConsentPolicy = serde_json::from_value(stored).unwrap();
        assert_eq!(p.gpc, GpcPrecedence::OverridesGrants);
        let p: ConsentPolicy = serde_json::from_value(json!({"eu_default": "opt_in",
            "us_default": "opt_out", "honor_gpc": true, "gpc": "explicit_grant_wins"}))
        .unwrap();
        assert_eq!(p.gpc, GpcPrecedence::ExplicitGrantWins);
        assert_eq!(
            serde_json::to_value(ConsentPolicy::default()).unwrap()["gpc"],
            "overrides_grants"
        );
        assert!(
            serde_json::from_value::<ConsentPolicy>(json!({"eu_default": "opt_in",
            "us_default": "opt_out", "honor_gpc": true, "gpc": "sometimes"}))
            .is_err()
        );
    }

    #[test]
    fn a_destination_without_purposes_always_receives() {
        let d = decide_by_default(Region::Eu, &Signals::default(), &[]);
        assert!(d.allowed);
    }
}
