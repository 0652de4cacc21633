//! Stable codes for what a compact event record would otherwise store as strings, so that it
//! stores one byte instead: the consent reasons an event's routing records, and the
//! identity profiles, identifier fields, destination kinds and event types it names. A code,
//! once written, means the same forever: the lists below only ever grow at their end, and
//! the tests pin every entry. 0 is never a code: a record writes 0 and the string for a value
//! that has none.
//!
//! A consent reason's code is `1 + (purpose · 2 + verdict) · |WHYS| + why` over the three
//! lists below. A reason that is not one of these sentences (several purposes, a custom
//! purpose) has no code and is stored as it is.

use crate::destination::DestinationKind;
use crate::event::EventType;
use crate::identity::{Field, Profile};

/// The purposes of [`crate::consent::decide`]'s sentences.
const PURPOSES: [&str; 3] = ["advertising", "analytics", "personalization"];
/// `granted` is 0, `denied` 1.
const VERDICTS: [&str; 2] = ["granted", "denied"];
/// Where a decision came from.
const WHYS: [&str; 10] = [
    "context.consent.categoryPreferences",
    "google consent mode (ad_storage/ad_user_data denied)",
    "google consent mode (ad_storage/ad_user_data granted)",
    "google consent mode (analytics_storage)",
    "google consent mode (ad_personalization)",
    "global privacy control",
    "no signal; eu default is opt-in",
    "no signal; eu default is opt-out",
    "no signal; us default is opt-in",
    "no signal; us default is opt-out",
];
/// The one sentence outside the product: a destination needing no purpose.
const NO_PURPOSE: (u8, &str) = (u8::MAX, "destination requires no consent purpose");

/// The code of a consent reason, if it has one (never 0: 0 means "stored as it is").
pub fn reason_code(reason: &str) -> Option<u8> {
    if reason == NO_PURPOSE.1 {
        return Some(NO_PURPOSE.0);
    }
    let (purpose, rest) = reason.split_once(' ')?;
    let (verdict, rest) = rest.split_once(' ')?;
    let why = rest.strip_prefix("by ")?;
    let p = PURPOSES.iter().position(|x| *x == purpose)?;
    let v = VERDICTS.iter().position(|x| *x == verdict)?;
    let w = WHYS.iter().position(|x| *x == why)?;
    u8::try_from(1 + (p * 2 + v) * WHYS.len() + w).ok()
}

/// The reason a code stands for.
pub fn reason_of(code: u8) -> Option<String> {
    if code == NO_PURPOSE.0 {
        return Some(NO_PURPOSE.1.to_owned());
    }
    let n = usize::from(code).checked_sub(1)?;
    sentences().get(n).cloned()
}

/// Every coded sentence, in code order, formatted once: a stored event's routing is decoded
/// for each delivery of it, and formatting its sentences again each time was 2 % of `serve`'s
/// core while delivering (`perf`).
fn sentences() -> &'static [String] {
    static ALL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        let mut all = Vec::with_capacity(PURPOSES.len() * VERDICTS.len() * WHYS.len());
        for purpose in PURPOSES {
            for verdict in VERDICTS {
                for why in WHYS {
                    all.push(format!("{purpose} {verdict} by {why}"));
                }
            }
        }
        all
    })
}

/// The codes of a closed set of values: the value at position `n` has the code `n + 1`.
/// Append only: a value that has no code yet goes at the end, never between.
#[derive(Debug)]
pub struct CodeTable<T: 'static>(&'static [T]);

impl<T: Copy + PartialEq> CodeTable<T> {
    /// The table of `values`, in code order.
    pub const fn new(values: &'static [T]) -> Self {
        Self(values)
    }
    /// The code of `value`, if it has one (never 0).
    pub fn code(&self, value: T) -> Option<u8> {
        let i = self.0.iter().position(|v| *v == value)?;
        u8::try_from(i + 1).ok()
    }
    /// The value `code` stands for.
    pub fn value(&self, code: u8) -> Option<T> {
        self.0.get(usize::from(code).checked_sub(1)?).copied()
    }
}

/// Identity profiles (the keys of a stored event's hashes), in the order of [`Profile::ALL`].
pub const PROFILES: CodeTable<Profile> = CodeTable::new(&Profile::ALL);

/// Identifier fields (the keys of one profile's hashes), in the order of [`Field::ALL`].
pub const FIELDS: CodeTable<Field> = CodeTable::new(&Field::ALL);

/// Destination kinds (of a routing decision), in the order of [`DestinationKind::ALL`].
pub const DESTINATION_KINDS: CodeTable<DestinationKind> = CodeTable::new(&DestinationKind::ALL);

/// Segment call types.
pub const EVENT_TYPES: CodeTable<EventType> = CodeTable::new(&[
    EventType::Track,
    EventType::Identify,
    EventType::Page,
    EventType::Screen,
    EventType::Group,
    EventType::Alias,
]);

/// The event names of Segment's specs, by code (`1 + position`): its e-commerce spec v2
/// (<https://segment.com/docs/connections/spec/ecommerce/v2/>), then the sign-up, sign-in
/// and sign-out events of its B2B SaaS spec. Append only.
const EVENT_NAMES: [&str; 31] = [
    "Products Searched",
    "Product List Viewed",
    "Product List Filtered",
    "Promotion Viewed",
    "Promotion Clicked",
    "Product Clicked",
    "Product Viewed",
    "Product Added",
    "Product Removed",
    "Cart Viewed",
    "Checkout Started",
    "Checkout Step Viewed",
    "Checkout Step Completed",
    "Payment Info Entered",
    "Order Updated",
    "Order Completed",
    "Order Refunded",
    "Order Cancelled",
    "Coupon Entered",
    "Coupon Applied",
    "Coupon Denied",
    "Coupon Removed",
    "Product Added to Wishlist",
    "Product Removed from Wishlist",
    "Wishlist Product Added to Cart",
    "Product Shared",
    "Cart Shared",
    "Product Reviewed",
    "Signed Up",
    "Signed In",
    "Signed Out",
];

/// The code of an event name of Segment's specs (exactly as the spec writes it), if it is one.
pub fn event_name_code(name: &str) -> Option<u8> {
    let i = EVENT_NAMES.iter().position(|n| *n == name)?;
    u8::try_from(i + 1).ok()
}

/// The event name `code` stands for.
pub fn event_name_of(code: u8) -> Option<&'static str> {
    EVENT_NAMES.get(usize::from(code).checked_sub(1)?).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names of a table's values in code order (code 1 first).
    fn names<T: Copy + PartialEq>(table: &CodeTable<T>, name: fn(T) -> &'static str) -> Vec<&str> {
        (1..=u8::MAX)
            .map_while(|code| table.value(code))
            .map(name)
            .collect()
    }

    #[test]
    fn the_value_codes_keep_their_meaning() {
        // Pinned: what stored records say. Never edit or reorder these; append instead.
        assert_eq!(
            names(&PROFILES, Profile::as_str),
            [
                "meta",
                "google",
                "tiktok",
                "snapchat",
                "pinterest",
                "reddit",
                "microsoft",
                "linkedin"
            ]
        );
        assert_eq!(
            names(&FIELDS, Field::as_str),
            [
                "email",
                "phone",
                "first_name",
                "last_name",
                "city",
                "state",
                "zip",
                "country",
                "gender",
                "date_of_birth",
                "external_id"
            ]
        );
        assert_eq!(
            names(&DESTINATION_KINDS, DestinationKind::as_str),
            [
                "meta_capi",
                "ga4",
                "tiktok",
                "webhook",
                "snapchat",
                "pinterest",
                "reddit",
                "microsoft_ads",
                "segment",
                "linkedin",
                "google_ads",
                "firehose"
            ]
        );
        assert_eq!(
            names(&EVENT_TYPES, EventType::as_str),
            ["track", "identify", "page", "screen", "group", "alias"]
        );
        assert_eq!(PROFILES.value(0), None);
        assert_eq!(FIELDS.code(Field::ExternalId), Some(11));
    }

    #[test]
    fn the_spec_event_names_keep_their_codes_and_only_they_have_one() {
        // Pinned: what stored records say. Never edit or reorder; append instead.
        for (code, name) in [
            (1, "Products Searched"),
            (8, "Product Added"),
            (11, "Checkout Started"),
            (16, "Order Completed"),
            (28, "Product Reviewed"),
            (29, "Signed Up"),
            (31, "Signed Out"),
        ] {
            assert_eq!(event_name_of(code), Some(name), "{code}");
        }
        for code in 1..=u8::MAX {
            if let Some(name) = event_name_of(code) {
                assert_eq!(event_name_code(name), Some(code), "{name}");
            }
        }
        assert_eq!((event_name_of(0), event_name_of(32)), (None, None));
        for other in ["order completed", "Order Completed ", "Purchase", ""] {
            assert_eq!(event_name_code(other), None, "{other:?}");
        }
    }

    #[test]
    fn every_profile_field_kind_and_event_type_has_a_code() {
        for p in Profile::ALL {
            assert_eq!(PROFILES.value(PROFILES.code(p).unwrap()), Some(p));
        }
        for f in Field::ALL {
            assert_eq!(FIELDS.value(FIELDS.code(f).unwrap()), Some(f));
        }
        for k in DestinationKind::ALL {
            assert_eq!(
                DESTINATION_KINDS.value(DESTINATION_KINDS.code(k).unwrap()),
                Some(k)
            );
        }
        for t in ["track", "identify", "page", "screen", "group", "alias"] {
            let t: EventType = t.parse().unwrap();
            assert_eq!(EVENT_TYPES.value(EVENT_TYPES.code(t).unwrap()), Some(t));
        }
    }

    #[test]
    fn a_profile_and_a_field_are_named_as_serde_names_them() {
        for p in Profile::ALL {
            assert_eq!(serde_json::json!(p), p.as_str());
        }
        for f in Field::ALL {
            assert_eq!(serde_json::json!(f), f.as_str());
        }
    }

    #[test]
    fn every_code_round_trips_and_the_codes_keep_their_meaning() {
        let mut seen = 0;
        for code in 1..=u8::MAX {
            if let Some(reason) = reason_of(code) {
                assert_eq!(reason_code(&reason), Some(code), "{reason}");
                seen += 1;
            }
        }
        assert_eq!(seen, PURPOSES.len() * 2 * WHYS.len() + 1);
        // Pinned: what stored records say. Never edit these; append to the lists instead.
        for (code, reason) in [
            (
                1,
                "advertising granted by context.consent.categoryPreferences",
            ),
            (16, "advertising denied by global privacy control"),
            (
                21,
                "analytics granted by context.consent.categoryPreferences",
            ),
            (30, "analytics granted by no signal; us default is opt-out"),
            (37, "analytics denied by no signal; eu default is opt-in"),
            (
                60,
                "personalization denied by no signal; us default is opt-out",
            ),
            (255, "destination requires no consent purpose"),
        ] {
            assert_eq!(reason_of(code).as_deref(), Some(reason), "{code}");
        }
        assert_eq!(reason_of(0), None);
        assert_eq!(reason_of(61), None);
    }

    #[test]
    fn a_reason_outside_the_table_has_no_code() {
        for reason in [
            "advertising granted by context.consent.categoryPreferences; analytics granted by global privacy control",
            "marketing granted by context.consent.categoryPreferences",
            "advertising granted by something new",
            "",
        ] {
            assert_eq!(reason_code(reason), None, "{reason}");
        }
    }

    #[test]
    fn the_sentences_consent_decides_have_codes() {
        use crate::consent::{decide, ConsentPolicy, Purpose, Signals};
        use crate::workspace::Region;
        let signals = Signals::read_with(|_| None, false);
        for region in [Region::Eu, Region::Us] {
            for purposes in [
                vec![Purpose::advertising()],
                vec![Purpose::analytics()],
                vec![],
            ] {
                let d = decide(&ConsentPolicy::default(), region, &signals, &purposes);
                assert!(reason_code(&d.reason).is_some(), "{}", d.reason);
            }
        }
    }
}
