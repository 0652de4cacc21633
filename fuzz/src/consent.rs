//! The consent-signal parser (an event's `context`) and the decision over it.
//!
//! Input: the JSON of an event's `context`.

use serde_json::Value;
use tracklayer_core::consent::{decide, ConsentPolicy, GpcPrecedence, Purpose, Signals, Stance};
use tracklayer_core::workspace::Region;

fn purposes(names: &[&str]) -> Vec<Purpose> {
    names
        .iter()
        .map(|n| Purpose::parse(n).expect("a known purpose"))
        .collect()
}

fn policies() -> [ConsentPolicy; 3] {
    let strict = ConsentPolicy {
        us_default: Stance::OptIn,
        ..ConsentPolicy::default()
    };
    let lenient = ConsentPolicy {
        eu_default: Stance::OptOut,
        honor_gpc: false,
        gpc: GpcPrecedence::ExplicitGrantWins,
        ..ConsentPolicy::default()
    };
    [ConsentPolicy::default(), strict, lenient]
}

pub fn check(data: &[u8]) {
    let Ok(context) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let signals = Signals::read(Some(&context), false);
    // Read in place (an event's context over its batch's) is the same reading.
    assert_eq!(signals, Signals::read_with(|k| context.get(k), false));
    // The Sec-GPC header adds GPC and changes nothing else; nothing in the body undoes it.
    let with_header = Signals::read(Some(&context), true);
    assert!(with_header.gpc);
    assert_eq!(
        Signals {
            gpc: true,
            ..signals.clone()
        },
        with_header
    );
    let ad = purposes(&["advertising"]);
    let analytics = purposes(&["analytics"]);
    let both = purposes(&["advertising", "analytics"]);
    for policy in policies() {
        for region in [Region::Us, Region::Eu] {
            for s in [&signals, &with_header] {
                let allowed = |p: &[Purpose]| decide(&policy, region, s, p).allowed;
                assert!(allowed(&[]));
                // Needing more purposes never allows more.
                assert_eq!(allowed(&both), allowed(&ad) && allowed(&analytics));
                // An explicit denial is final.
                if s.categories.get("advertising") == Some(&false) {
                    assert!(!allowed(&ad));
                }
                // GPC, when honoured and overriding grants, always denies advertising.
                if policy.honor_gpc && s.gpc && policy.gpc == GpcPrecedence::OverridesGrants {
                    assert!(!allowed(&ad));
                }
                let reason = decide(&policy, region, s, &both).reason;
                assert!(reason.contains("advertising") && reason.contains("analytics"));
            }
        }
    }
}
