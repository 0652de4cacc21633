//! The destination form: which inputs each kind has (labels and hints only; every rule is
//! checked by the core when the form's JSON reaches the same parser as the admin API's), and
//! the form's fields turned into that JSON.

use serde_json::{Map, Value};

use crate::admin::destinations::Destination;
use crate::console::csrf::Fields;

/// One input of a kind's form: `config.<key>` or `secrets.<key>`.
#[derive(Debug)]
pub struct Input {
    /// The form field's name, also the `field` a 422 names (`config.pixel_id`).
    pub name: String,
    pub label: &'static str,
    pub hint: &'static str,
    pub required: bool,
    pub secret: bool,
    /// Changing it is the admin's (where events and secrets go).
    pub routing: bool,
    pub value: String,
    /// A secret's fingerprint and last 4 characters.
    pub current: String,
    pub error: String,
}

/// (key, label, hint, required)
pub type Spec = (&'static str, &'static str, &'static str, bool);

/// A kind's form: (wire name, label, config inputs, secret inputs).
pub type KindForm = (&'static str, &'static str, &'static [Spec], &'static [Spec]);

/// Every kind the console offers: [`KINDS`], then the ad-platform and warehouse kinds of
/// [`super::destination_kinds`].
pub fn all_kinds() -> impl Iterator<Item = &'static KindForm> {
    KINDS
        .iter()
        .chain(super::destination_kinds::AD_KINDS.iter())
        .chain(super::destination_kinds::WAREHOUSE_KINDS.iter())
}

/// The kinds, as offered by the console: (wire name, label, config inputs, secret inputs).
pub const KINDS: [KindForm; 4] = [
    (
        "meta_capi",
        "Meta Conversions API",
        &[
            ("pixel_id", "Pixel ID", "Digits, from Meta Events Manager", true),
            ("api_version", "Graph API version", "For example v21.0", true),
            ("action_source", "Default action source", "Optional: website, app, email, phone_call, chat, physical_store, system_generated, business_messaging or other", false),
            ("test_event_code", "Test event code", "Optional: shows events under Test events in Events Manager", false),
        ],
        &[
            ("access_token", "Access token", "A Conversions API access token", true),
            ("app_secret", "App secret", "Optional: adds appsecret_proof", false),
        ],
    ),
    (
        "ga4",
        "Google Analytics 4",
        &[
            ("measurement_id", "Measurement ID", "G-XXXXXXX, from the data stream", true),
        ],
        &[("api_secret", "API secret", "Measurement Protocol API secret of the data stream", true)],
    ),
    (
        "tiktok",
        "TikTok Events API",
        &[
            ("pixel_code", "Pixel code", "From TikTok Events Manager", true),
            ("test_event_code", "Test event code", "Optional", false),
        ],
        &[("access_token", "Access token", "An Events API access token", true)],
    ),
    (
        "webhook",
        "Webhook",
        &[
            ("url", "URL", "https:// address that receives signed JSON batches", true),
            ("batch_size", "Batch size", "Optional: events per request, 1–1000 (default 100)", false),
        ],
        &[("signing_secret", "Signing secret", "whsec_ followed by base64 key bytes; requests carry its HMAC signature", true)],
    ),
];

/// The label of a kind.
pub fn kind_label(kind: &str) -> &'static str {
    all_kinds()
        .find(|k| k.0 == kind)
        .map_or("Destination", |k| k.1)
}

/// The inputs of `kind`, filled from the destination (editing) or the posted form.
pub fn inputs(
    kind: &str,
    current: Option<&Destination>,
    posted: Option<&Fields>,
    routing: &[&str],
) -> Vec<Input> {
    let Some((_, _, config, secrets)) = all_kinds().find(|k| k.0 == kind) else {
        return Vec::new();
    };
    let config = config.iter().map(|s| (s, false));
    let secrets = secrets.iter().map(|s| (s, true));
    config
        .chain(secrets)
        .map(|(&(key, label, hint, required), secret)| {
            let name = format!("{}.{key}", if secret { "secrets" } else { "config" });
            let value = match (posted, current) {
                (_, _) if secret => String::new(),
                (Some(f), _) => f.get(&name).to_owned(),
                (None, Some(d)) => d.config.get(key).map(text).unwrap_or_default(),
                (None, None) if key == "api_version" => "v21.0".into(),
                (None, None) => String::new(),
            };
            let current = current
                .and_then(|d| d.secrets.get(key))
                .filter(|_| secret)
                .map(|h| format!("fingerprint {} · ends in {}", h.fingerprint, h.last4))
                .unwrap_or_default();
            Input {
                required: required && (current.is_empty() || !secret),
                routing: secret || routing.contains(&key),
                name,
                label,
                hint,
                secret,
                value,
                current,
                error: String::new(),
            }
        })
        .collect()
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `config.*` and `secrets.*` fields as objects; blank ones left out. Digits-only values of
/// numeric keys are numbers.
pub fn objects(form: &Fields, inputs: &[Input]) -> (Map<String, Value>, Map<String, Value>) {
    let mut config = Map::new();
    let mut secrets = Map::new();
    for input in inputs {
        let Some(v) = form.opt(&input.name) else {
            continue;
        };
        let (target, key) = match input.name.split_once('.') {
            Some(("secrets", k)) => (&mut secrets, k),
            Some((_, k)) => (&mut config, k),
            None => continue,
        };
        let value = match v.parse::<u64>() {
            Ok(n) if key == "batch_size" => Value::from(n),
            _ => Value::String(v),
        };
        target.insert(key.to_owned(), value);
    }
    (config, secrets)
}

/// The event filter of the form: `all`, or an allow or deny list of names, one per line.
pub fn events(form: &Fields) -> Value {
    let names: Vec<Value> = form
        .get("events_names")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| Value::String(l.to_owned()))
        .collect();
    match form.get("events_mode") {
        "allow" => serde_json::json!({ "allow": names }),
        "deny" => serde_json::json!({ "deny": names }),
        _ => Value::String("all".into()),
    }
}
