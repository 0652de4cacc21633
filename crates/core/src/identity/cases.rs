//! The Google and Meta profiles' normalization rules, case by case: `rules.json` beside this
//! file names each rule and gives its cases, checked here against [`normalize`].

use serde::Deserialize;

use super::{normalize, Field, Hints, Profile};

/// One input of a rule and what `normalize` answers for it.
#[derive(Deserialize)]
struct Case {
    field: Field,
    input: String,
    #[serde(default)]
    country: Option<String>,
    #[serde(flatten)]
    want: Want,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Want {
    /// The value normalized, before any hashing.
    Normalized(String),
    /// The reason the value is refused.
    Rejected(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    rule: String,
    profile: Profile,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Rules {
    rules: Vec<Rule>,
}

/// The hints of a fixture's case: its country, and a fixed time of receipt (dates of birth are
/// read against it).
pub(super) fn hints(country: Option<&str>) -> Hints<'_> {
    Hints {
        country,
        received_at: Some(time::macros::datetime!(2026-03-01 12:00 UTC)),
    }
}

#[test]
fn each_profile_normalizes_every_case_of_its_rules() {
    let Rules { rules } = serde_json::from_str(include_str!("rules.json")).unwrap();
    let cases: Vec<(&Rule, &Case)> = rules
        .iter()
        .flat_map(|r| r.cases.iter().map(move |c| (r, c)))
        .collect();
    assert!(rules.len() >= 32 && cases.len() >= 97);
    for (r, c) in cases {
        let got = normalize(r.profile, c.field, &c.input, hints(c.country.as_deref()));
        let want = match &c.want {
            Want::Normalized(value) => Ok(value.clone()),
            Want::Rejected(reason) => Err(reason.as_str()),
        };
        let case = format!("{} ({:?} {:?} {:?})", r.rule, r.profile, c.field, c.input);
        assert_eq!(got.map_err(|e| e.reason), want, "{case}");
    }
}
