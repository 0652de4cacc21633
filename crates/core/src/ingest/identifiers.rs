//! Identifiers: where an event holds them, and the tags of the subject index.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::identity::Field;

use super::inherit::Layered;
use super::scrub;

/// The tag under which a field enters the subject index.
pub fn field_tag(field: Field) -> &'static str {
    match field {
        Field::Email => "email",
        Field::Phone => "phone",
        Field::ExternalId => "external_id",
        Field::FirstName => "first_name",
        Field::LastName => "last_name",
        Field::City => "city",
        Field::State => "state",
        Field::Zip => "zip",
        Field::Country => "country",
        Field::Gender => "gender",
        Field::DateOfBirth => "date_of_birth",
    }
}

/// Identifiers found in an event, raw. Dropped as soon as the event is prepared.
#[derive(Default)]
pub(super) struct RawIdentifiers {
    pub(super) fields: BTreeMap<Field, String>,
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

const CLICK_ID_KEYS: &[(&str, &[&str])] = &[
    ("fbp", &["fbp", "_fbp"]),
    ("fbc", &["fbc", "_fbc"]),
    ("gclid", &["gclid"]),
    ("ttclid", &["ttclid"]),
    ("ttp", &["ttp", "_ttp"]),
    ("client_id", &["client_id", "clientId", "ga_client_id"]),
];

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
        // Each source with its `address` object, looked up once.
        let sources = [traits, ctx_traits, properties].map(|s| (s, s.get("address")));
        let mut out = RawIdentifiers::default();
        for (field, keys) in FIELD_KEYS {
            'found: for (source, address) in sources {
                for key in *keys {
                    let value = match source.get(*key) {
                        Some(direct) => Some(direct),
                        None => address.and_then(|a| a.get(*key)),
                    };
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
        for (name, keys) in CLICK_ID_KEYS {
            // A click id is sent as it is: one that holds an email or phone number is no
            // click id.
            let usable = |v: &String| scrub::find(v).is_none();
            let in_context = keys
                .iter()
                .find_map(|k| context.get(k).and_then(scalar).filter(usable));
            let found = in_context.or_else(|| {
                keys.iter()
                    .find_map(|k| properties.get(*k).and_then(scalar).filter(usable))
            });
            if let Some(v) = found {
                out.click_ids.insert((*name).to_owned(), v);
            }
        }
        out
    }
}
