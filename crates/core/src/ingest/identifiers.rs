//! Identifiers: where an event holds them (collect), how each profile takes them (hash), and
//! the internal subject index ingest and erasure share.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::crypto::WorkspaceKeys;
use crate::identity::{self, Field, Hints, Prepared, Profile};

use super::inherit::Layered;
use super::scrub;

/// The tag under which a field enters the subject index: its name ([`Field::as_str`]).
pub fn field_tag(field: Field) -> &'static str {
    field.as_str()
}

/// Identifiers found in an event, raw. Dropped as soon as the event is prepared.
#[derive(Default)]
pub(super) struct RawIdentifiers {
    pub(super) fields: BTreeMap<Field, String>,
    /// The click ids of [`crate::click_ids::read`], which `prepare` adds.
    pub(super) click_ids: BTreeMap<String, String>,
}

/// Where each identifier may be found, by key, in traits, context.traits and properties.
const FIELD_KEYS: &[(Field, &[&str])] = &[
    (Field::Email, &["email"]),
    (
        Field::Phone,
        &[
            "phone",
            "phone_number",
            "phoneNumber",
            "mobile",
            "mobilePhone",
            "mobile_phone",
            "tel",
            "telephone",
            "cell",
            "cellPhone",
            "cell_phone",
        ],
    ),
    (Field::FirstName, &["firstName", "first_name"]),
    (Field::LastName, &["lastName", "last_name"]),
    (Field::City, &["city"]),
    (Field::State, &["state"]),
    (
        Field::Zip,
        &["postalCode", "postal_code", "zip", "zipCode", "zip_code"],
    ),
    (Field::Country, &["country"]),
    (Field::Gender, &["gender"]),
    (
        Field::DateOfBirth,
        &["birthday", "dob", "date_of_birth", "dateOfBirth"],
    ),
];

/// How many keys [`FIELD_KEYS`] lists in all.
const ALL_KEYS: usize = {
    let mut n = 0;
    let mut i = 0;
    while i < FIELD_KEYS.len() {
        n += FIELD_KEYS[i].1.len();
        i += 1;
    }
    n
};

/// The values of `source` under the keys of [`FIELD_KEYS`], each at the key's position in
/// the list's concatenation.
fn by_key(source: &Map<String, Value>) -> [Option<&Value>; ALL_KEYS] {
    let mut out = [None; ALL_KEYS];
    for (key, value) in source {
        let position = FIELD_KEYS
            .iter()
            .flat_map(|(_, keys)| keys.iter())
            .position(|k| k.len() == key.len() && *k == key);
        if let Some(slot) = position.and_then(|i| out.get_mut(i)) {
            *slot = Some(value);
        }
    }
    out
}

/// The value at `position` of [`by_key`]'s answer.
fn at<'v>(values: &[Option<&'v Value>], position: usize) -> Option<&'v Value> {
    values.get(position).copied().flatten()
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl RawIdentifiers {
    pub(super) fn extract(
        traits: &Map<String, Value>,
        context: &Layered<'_>,
        properties: &Map<String, Value>,
        user_id: Option<&str>,
    ) -> Self {
        let empty = Map::new();
        let ctx_traits = context
            .get("traits")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        // Each source and its `address` object read once into the values under the keys of
        // FIELD_KEYS (a pass over its entries, rather than a lookup per key per field).
        let sources = [traits, ctx_traits, properties].map(|s| {
            (
                by_key(s),
                s.get("address").and_then(Value::as_object).map(by_key),
            )
        });
        let mut out = RawIdentifiers::default();
        let mut first_key = 0;
        for (field, keys) in FIELD_KEYS {
            let positions = first_key..first_key + keys.len();
            first_key = positions.end;
            'found: for (direct, address) in &sources {
                for i in positions.clone() {
                    let value = at(direct, i).or_else(|| address.as_ref().and_then(|a| at(a, i)));
                    if let Some(v) = value.and_then(scalar) {
                        out.fields.insert(*field, v);
                        break 'found;
                    }
                }
            }
        }
        // Segment's `name` trait (or a full name under its own key), when first and last
        // names are not given separately.
        let full_name = [traits, ctx_traits]
            .into_iter()
            .flat_map(|s| ["name", "fullName", "full_name"].map(|k| s.get(k)))
            .chain(["fullName", "full_name"].map(|k| properties.get(k)))
            .find_map(|v| v.and_then(scalar));
        if let (Some(full), false) = (full_name, out.fields.contains_key(&Field::FirstName)) {
            let full = full.trim();
            let (first, last) = match full.rsplit_once(char::is_whitespace) {
                Some((first, last)) => (first.trim(), Some(last.trim())),
                None => (full, None),
            };
            out.fields.insert(Field::FirstName, first.to_owned());
            if let Some(last) = last {
                out.fields
                    .entry(Field::LastName)
                    .or_insert_with(|| last.to_owned());
            }
        }
        if let Some(uid) = user_id {
            out.fields.insert(Field::ExternalId, uid.to_owned());
        }
        out
    }
}

/// An event's identifiers and its scrubbed properties and traits.
pub(super) struct Collected {
    pub(super) ids: RawIdentifiers,
    pub(super) properties: Value,
    pub(super) traits: Value,
}

/// Normalize: finds the identifiers by name, then scrubs properties and traits (before
/// hashing): whole emails and phone numbers found by value under other names become the
/// event's own when it named none.
pub(super) fn collect(
    traits: Map<String, Value>,
    context: &Layered<'_>,
    properties: Map<String, Value>,
    user_id: Option<&str>,
) -> Collected {
    let mut ids = RawIdentifiers::extract(&traits, context, &properties, user_id);
    let mut found = scrub::Found::default();
    let properties = scrub::scrub(Value::Object(properties), false, &mut found);
    let traits = scrub::scrub(Value::Object(traits), true, &mut found);
    if !(ids.fields.contains_key(&Field::Email) && ids.fields.contains_key(&Field::Phone)) {
        if let Some(ctx_traits) = context.get("traits") {
            found.offer_all(ctx_traits);
        }
    }
    if let Some(email) = found.email {
        ids.fields.entry(Field::Email).or_insert(email);
    }
    if let Some(phone) = found.phone {
        ids.fields.entry(Field::Phone).or_insert(phone);
    }
    Collected {
        ids,
        properties,
        traits,
    }
}

/// The identifiers as each routed profile takes them.
#[derive(Default)]
pub(super) struct Hashed {
    /// SHA-256 digests, per profile.
    pub(super) hashed: BTreeMap<Profile, BTreeMap<Field, String>>,
    /// Values a profile takes normalized but unhashed (Google's address fields).
    pub(super) plain: BTreeMap<Profile, BTreeMap<Field, String>>,
    /// Fields some profile refused as invalid.
    pub(super) invalid: BTreeSet<Field>,
}

/// Hash: normalizes and hashes the identifiers once per profile some routed destination needs.
pub(super) fn hash(ids: &RawIdentifiers, profiles: &BTreeSet<Profile>, hints: Hints<'_>) -> Hashed {
    let mut out = Hashed::default();
    let mut digests = identity::Digests::default();
    for profile in profiles {
        let h = out.hashed.entry(*profile).or_default();
        for (field, raw_value) in &ids.fields {
            match identity::prepare_reusing(*profile, *field, raw_value, hints, &mut digests) {
                Ok(Prepared::Hashed(digest)) => {
                    h.insert(*field, digest);
                }
                Ok(Prepared::Plain(v)) => {
                    out.plain.entry(*profile).or_default().insert(*field, v);
                }
                // A field the profile does not take (GA4 has no external id) is left out,
                // not counted as invalid.
                Err(rejected) if rejected.reason == identity::NOT_SUPPORTED => {}
                Err(_) => {
                    out.invalid.insert(*field);
                }
            }
        }
    }
    out
}

/// The subject index of one identifier (email, phone, external id): a keyed HMAC over its
/// canonical form ([`identity::canonical_for_index`]) under its [`field_tag`], never a bare
/// hash; `None` when the value has no canonical form. Ingest indexes each event's identifiers
/// and erasure a request's subject with this one function: if the two drifted, erasure would
/// silently miss events.
pub fn subject_index(
    keys: &WorkspaceKeys,
    field: Field,
    raw: &str,
    hints: Hints<'_>,
) -> Option<String> {
    let canonical = identity::canonical_for_index(field, raw, hints)?;
    Some(keys.subject_index(field_tag(field), &canonical))
}

/// The subject index of an anonymous id (trimmed), as ingest and erasure compute it.
pub fn anonymous_subject_index(keys: &WorkspaceKeys, anonymous_id: &str) -> String {
    keys.subject_index("anonymous_id", anonymous_id.trim())
}

/// An event's entries in the subject index, sorted and without repeats.
pub(super) fn subjects(
    keys: &WorkspaceKeys,
    ids: &RawIdentifiers,
    anonymous_id: Option<&str>,
    hints: Hints<'_>,
) -> Vec<String> {
    let mut subjects = Vec::with_capacity(4);
    for field in [Field::Email, Field::Phone, Field::ExternalId] {
        if let Some(raw_value) = ids.fields.get(&field) {
            subjects.extend(subject_index(keys, field, raw_value, hints));
        }
    }
    if let Some(anon) = anonymous_id {
        subjects.push(anonymous_subject_index(keys, anon));
    }
    subjects.sort();
    subjects.dedup();
    subjects
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The lookup rule spelled out a key at a time, for [`RawIdentifiers::extract`] to match:
    /// per field, the first source (traits, context.traits, properties) where one of its keys,
    /// in the listed order, holds a scalar, directly or (when the source has no such key) in
    /// the source's `address` object.
    fn plain_fields(
        traits: &Map<String, Value>,
        ctx_traits: &Map<String, Value>,
        properties: &Map<String, Value>,
    ) -> BTreeMap<Field, String> {
        let mut out = BTreeMap::new();
        for (field, keys) in FIELD_KEYS {
            'found: for source in [traits, ctx_traits, properties] {
                for key in *keys {
                    let value = match source.get(*key) {
                        Some(direct) => Some(direct),
                        None => source.get("address").and_then(|a| a.get(*key)),
                    };
                    if let Some(v) = value.and_then(scalar) {
                        out.insert(*field, v);
                        break 'found;
                    }
                }
            }
        }
        out
    }

    fn object(v: Value) -> Map<String, Value> {
        serde_json::from_value(v).expect("a test object")
    }

    #[test]
    fn each_field_comes_from_the_first_source_and_key_that_holds_a_scalar() {
        let samples = [
            // The listed order of keys, not the map's: `phone` before `mobile`.
            (json!({"mobile": "2", "phone": "1"}), json!({}), json!({})),
            // traits before context.traits before properties.
            (json!({}), json!({"email": "b"}), json!({"email": "c"})),
            (json!({"email": "a"}), json!({"email": "b"}), json!({})),
            // A direct key that is not a scalar hides the address's same key, not the next key.
            (
                json!({"city": {"x": 1}, "address": {"city": "A", "zip": "9"},
                       "postalCode": "", "zip_code": 5}),
                json!({}),
                json!({}),
            ),
            // The address when the source has no such key; an empty string is no value.
            (
                json!({"address": {"postalCode": "  ", "zip": "10115", "country": "DE"}}),
                json!({"address": {"city": "Berlin"}}),
                json!({"city": "Hamburg", "state": ["x"], "gender": "f"}),
            ),
            // An address that is not an object, and keys that only look alike.
            (
                json!({"address": "1 Main St", "Email": "x", "e_mail": "y", "dob": 19900101}),
                json!({"address": [1, 2]}),
                json!({"cellPhone": "3", "cell": "4", "firstName": "Jo", "lastName": null}),
            ),
            // Every key of every field, each source with all of them.
            {
                let all: Map<String, Value> = FIELD_KEYS
                    .iter()
                    .flat_map(|(_, keys)| keys.iter())
                    .enumerate()
                    .map(|(i, k)| (k.to_string(), json!(format!("v{i}"))))
                    .collect();
                let mut address = all.clone();
                address.insert("address".into(), Value::Object(all.clone()));
                (
                    Value::Object(all.clone()),
                    json!({}),
                    Value::Object(address),
                )
            },
        ];
        for (traits, ctx_traits, properties) in samples {
            let context = object(json!({"traits": ctx_traits}));
            let (traits, properties) = (object(traits), object(properties));
            let ids =
                RawIdentifiers::extract(&traits, &Layered::new(&context, None), &properties, None);
            let mut expected = plain_fields(&traits, &object(ctx_traits), &properties);
            // The full-name split adds to the fields by key (none of the samples has one).
            ids.fields
                .keys()
                .for_each(|f| assert!(expected.contains_key(f), "{f:?}"));
            assert_eq!(ids.fields, std::mem::take(&mut expected), "{traits:?}");
        }
    }
}
