//! Stable codes for the consent reasons an event's routing records, so that a compact event
//! record stores one byte instead of a sentence. A code is `1 + (purpose · 2 + verdict) ·
//! |WHYS| + why` over the three lists below: they only ever grow at their end, and the
//! tests pin every entry, so a code never changes meaning. A reason that is not one of
//! these sentences (several purposes, a custom purpose) has no code and is stored as it is.

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
    let (pv, w) = (n / WHYS.len(), n % WHYS.len());
    let (p, v) = (pv / 2, pv % 2);
    Some(format!(
        "{} {} by {}",
        PURPOSES.get(p)?,
        VERDICTS[v],
        WHYS[w]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

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
