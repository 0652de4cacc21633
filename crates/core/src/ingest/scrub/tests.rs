//! Each detection rule, both sides: what it must catch and what it must leave alone.

use serde_json::json;

use super::*;

/// Strings that are no identifier and must survive every rule.
const INNOCENT: &[&str] = &[
    "A-1001",
    "ORD-50000",
    "49.90",
    "1299.00",
    "1234567.89",
    "2026-03-01",
    "2026-03-01T11:58:00.111Z",
    "2026-03-01 11:58:00",
    "2024-05-01 1200",
    "01.05.2024",
    "1/5/2024",
    "bd416a08-c857-4563-bc90-ed9462faa9fb",
    "HD-ZIP-L",
    "SKU-4411-BLK-XL",
    "5c0e6e5d7d1b9a0e8c4f1a22",
    "20240501-1234",
    "1714564800",
    "1714564800123",
    "fb.1.1740857862729.8822516774",
    "GA1.1.1234567890.1740857862",
    "Zip Hoodie (size 3)",
    "12:30:00",
    "v1.2.3.4",
    "@handle",
    "user@localhost",
    "price@2.5x",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "npm:next-1.70.0",
    "std::vec::Vec",
    "+49",
    "call 555-0100",
    "",
];

/// Asserts what `find` answers for each of `values`.
fn assert_found(kind: Option<Kind>, values: &[&str]) {
    for s in values {
        assert_eq!(find(s), kind, "{s:?}");
    }
}

#[test]
fn innocent_values_hold_no_identifier() {
    for s in INNOCENT {
        assert_eq!(find(s), None, "{s:?}");
    }
}

#[test]
fn an_email_is_found_alone_inside_text_and_percent_encoded() {
    assert_found(
        Some(Kind::Email),
        &[
            "jane.doe@example.com",
            "  Lucas.Nguyen19@Outlook.Com ",
            "write to jane.doe@example.com please",
            "<jane+tag@mail.example.co.uk>",
            "jane.doe%40example.com",
            "https://shop.example/p?email=jane.doe%40example.com",
            "jäne@exämple.de",
        ],
    );
    assert_eq!(whole("  jane.doe@example.com "), Some(Kind::Email));
    assert_eq!(whole("write to jane.doe@example.com"), None);
}

#[test]
fn an_international_phone_needs_a_plus_and_8_to_15_digits() {
    assert_found(
        Some(Kind::Phone),
        &[
            "+14155550100",
            "+1 415 555 0100",
            "+44 20 7946 0958",
            "+49 (30) 1234567",
            "+33 6 12 34 56 78",
            "call me on +1 415-555-0100 tonight",
        ],
    );
    assert_found(None, &["+1234567", "+1234567890123456", "+ 1 415", "1+1=2"]);
    assert_eq!(whole("+1 415 555 0100"), Some(Kind::Phone));
}

#[test]
fn a_national_phone_needs_9_to_15_digits_and_phone_like_separators() {
    assert_found(
        Some(Kind::Phone),
        &[
            "(415) 555-0100",
            "415-555-0100",
            "415.555.0100",
            "415 555 0100",
            "030 1234567",
            "030/1234567",
            "06 12 34 56 78",
            "020 7946 0958",
            "tel: 415-555-0100",
        ],
    );
    assert_found(
        None,
        &[
            // Too few digits, no separator, one separator only, a decimal, a date first,
            // glued to a word, too many digits.
            "555-0100",
            "4155550100",
            "0800-1234567",
            "123456789.5",
            "2024-05-01 123 4567",
            "A-415-555-0100",
            "415-555-0100x",
            "4111 1111 1111 1111",
        ],
    );
}

#[test]
fn ip_addresses_are_found_and_never_taken_for_phones() {
    assert_found(
        Some(Kind::Ip),
        &[
            "203.0.113.7",
            "from 203.0.113.7:443",
            "2600:1700:f3f2:e093::f514",
            "::1",
            "fe80::1%eth0 is local",
        ],
    );
    assert_eq!(whole("192.168.100.200"), Some(Kind::Ip));
    assert_found(None, &["1.2.3", "300.1.1.1", "12:30", "a1.2.3.4"]);
}

/// `find` skips the slow searches for a string with too few digits, dots or colons to hold
/// the identifier: one with exactly the fewest is still found.
#[test]
fn identifiers_with_the_fewest_digits_dots_and_colons_are_still_found() {
    assert_found(
        Some(Kind::Phone),
        &["+1 555 0100", "+15550100", "415 555 010"],
    );
    assert_found(None, &["+1 555 010", "415 555 01"]);
    // Eight digits in a run of phone bytes, not in all: hex ids and SKUs are passed over.
    assert_found(
        Some(Kind::Phone),
        &["id 1a2b +1 555 0100", "(415) 555-0100 x"],
    );
    assert_found(
        None,
        &["5c0e6e5d7d1b9a0e8c4f1a22", "12-34a56-78b9", "+1 555a0100"],
    );
    assert_found(
        Some(Kind::Ip),
        &["1.2.3.4", "see 0.0.0.0 here", "::1", "a::b"],
    );
    assert_found(None, &["1.2.3", "1.2.34", "a:b"]);
    assert_found(Some(Kind::Email), &["a@b.co", "a%40b.co"]);
    // Counted in chunks of 128 bytes: across a chunk's end, and past 255 of a kind.
    for pad in [120, 125, 127, 128, 300] {
        let x = "x ".repeat(pad / 2);
        assert_eq!(find(&format!("{x}+1 555 0100")), Some(Kind::Phone), "{pad}");
        assert_eq!(find(&format!("{x}1.2.3.4 {x}")), Some(Kind::Ip), "{pad}");
        assert_eq!(find(&format!("{x}a::b")), Some(Kind::Ip), "{pad}");
    }
    let dots = ".".repeat(300);
    assert_eq!(find(&format!("{dots}1.2.3.4")), Some(Kind::Ip));
    assert_eq!(find(&format!("{dots}12")), None);
}

#[test]
fn keys_are_identifying_by_exact_name_ending_and_beginning() {
    for key in [
        "email",
        "E-Mail",
        "mobile",
        "tel",
        "Telephone",
        "cell",
        "fullName",
        "full_name",
        "billing_address",
        "shipping_address",
        "BillingAddress",
        "street",
        "address_line_1",
        "addressLine2",
        "ip_address",
        "ipAddress",
        "work_email",
        "customer.email",
        "home phone",
        "contact_full_name",
        "shipping_zip_code",
        "user[email]",
        "the_customers_primary_and_only_billing_address",
    ] {
        assert!(identifying_key(key, false), "{key:?}");
    }
    for key in [
        "order_id",
        "sku",
        "price",
        "name",
        "title",
        "hotel",
        "is_mobile",
        "telemetry",
        "cellar",
        "iphone_model",
        "dress_size",
        "ip_country_code_lookup_enabled_for_this_shop",
        "ÉMAIL",
        "",
    ] {
        assert!(!identifying_key(key, false), "{key:?}");
    }
    assert!(identifying_key("Name", true) && identifying_key("user_name", true));
}

#[test]
fn url_parameters_are_identifying_by_name() {
    for p in [
        "email",
        "e-mail",
        "mail",
        "phone",
        "tel",
        "mobile",
        "name",
        "first_name",
    ] {
        assert!(identifying_param(p), "{p:?}");
    }
    for p in [
        "last_name",
        "address",
        "zip",
        "token",
        "access_token",
        "password",
        "user_email",
    ] {
        assert!(identifying_param(p), "{p:?}");
    }
    for p in [
        "utm_source",
        "utm_campaign",
        "gclid",
        "fbclid",
        "page",
        "q",
        "order",
        "ref",
    ] {
        assert!(!identifying_param(p), "{p:?}");
    }
}

#[test]
fn strip_url_drops_only_identifying_parameters_and_keeps_the_rest() {
    let cases = [
        (
            "https://shop.example/thanks?utm_source=fb&email=jane.doe%40example.com&order=A-1001",
            "https://shop.example/thanks?utm_source=fb&order=A-1001",
        ),
        (
            "https://shop.example/p?E-Mail=x&mail=y&tel=1&mobile=2&first_name=Jane&last_name=Doe&zip=1&token=t&password=p&gclid=abc",
            "https://shop.example/p?gclid=abc",
        ),
        (
            "https://shop.example/p?ref=jane.doe@example.com&u=%2B1%20415%20555%200100&x=1#top",
            "https://shop.example/p?x=1#top",
        ),
        ("https://shop.example/p?email=a%40b.co", "https://shop.example/p"),
        (
            "https://shop.example/cb#access_token=abc&state=1",
            "https://shop.example/cb#state=1",
        ),
        (
            "https://user:secret@shop.example/p?q=1", // pragma: allowlist secret
            "https://shop.example/p?q=1",
        ),
        (
            "https://shop.example/unsubscribe/jane.doe%40example.com/done?x=1",
            "https://shop.example/unsubscribe/done?x=1",
        ),
    ];
    for (url, want) in cases {
        assert_eq!(strip_url(url), want, "{url}");
    }
    for kept in [
        "https://shop.example/checkout/thank-you?order=ORD-50000&utm_campaign=spring",
        "https://shop.example/p/A-1001?price=49.90#reviews",
        "/relative/path?q=shoes",
        "",
    ] {
        assert!(
            matches!(strip_url(kept), Cow::Borrowed(s) if s == kept),
            "{kept}"
        );
    }
}

#[test]
fn scrub_drops_by_name_and_by_value_at_any_depth_and_keeps_the_rest() {
    let mut found = Found::default();
    let scrubbed = scrub(
        json!({
            "mobile": "+1 415 555 0100", "tel": "415-555-0100", "fullName": "Jane Doe",
            "billing_address": {"line1": "1 Main St"}, "ip_address": "203.0.113.7",
            "note": "jane.doe@example.com", "contact": "(415) 555-0199",
            "remark": "mail jane.doe@example.com", "jane@example.com": true,
            "list": ["ok", "jane.doe@example.com", {"peer": "203.0.113.9", "sku": "HD-ZIP-L"}],
            "url": "https://shop.example/p?email=jane.doe%40example.com",
            "order_id": "A-1001", "price": 49.90, "total": "49.90", "at": "2026-03-01",
            "id": "bd416a08-c857-4563-bc90-ed9462faa9fb", "sku": "SKU-4411-BLK-XL",
            "name": "Zip Hoodie",
        }),
        false,
        &mut found,
    );
    assert_eq!(
        scrubbed,
        json!({
            "list": ["ok", {"sku": "HD-ZIP-L"}],
            "url": "https://shop.example/p",
            "order_id": "A-1001", "price": 49.90, "total": "49.90", "at": "2026-03-01",
            "id": "bd416a08-c857-4563-bc90-ed9462faa9fb", "sku": "SKU-4411-BLK-XL",
            "name": "Zip Hoodie",
        })
    );
    // The first whole email and phone, for the event's identifiers. Which phone is first
    // follows the map's order, sorted or as sent (serde_json's `preserve_order`, which other
    // crates of the workspace turn on): one of the event's own either way.
    assert_eq!(found.email.as_deref(), Some("jane.doe@example.com"));
    assert!(
        matches!(
            found.phone.as_deref(),
            Some("(415) 555-0199" | "+1 415 555 0100" | "415-555-0100")
        ),
        "{:?}",
        found.phone
    );
}

#[test]
fn may_leave_refuses_identifying_keys_and_values() {
    assert!(may_leave("order_id", &json!("A-1001")));
    assert!(may_leave("price", &json!(49.9)));
    assert!(!may_leave("mobile", &json!("x")));
    assert!(!may_leave("note", &json!("jane.doe@example.com")));
    assert!(!may_leave("contact", &json!("+1 415 555 0100")));
}

/// The key rule, spelled out with allocations, for [`identifying_key`] to match.
fn plain_identifying_key(key: &str, drop_name: bool) -> bool {
    let k: String = key
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | '.' | ' ' | '[' | ']'))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    KEYS.contains(&k.as_str())
        || KEY_SUFFIXES.iter().any(|s| k.ends_with(s))
        || KEY_PREFIXES.iter().any(|s| k.starts_with(s))
        || (drop_name && (k == "name" || k == "username"))
}

#[test]
fn identifying_key_matches_the_allocating_version() {
    let mut keys: Vec<String> = KEYS
        .iter()
        .chain(KEY_SUFFIXES)
        .chain(KEY_PREFIXES)
        .flat_map(|k| {
            [
                k.to_string(),
                k.to_uppercase(),
                format!("_{k}-"),
                format!("{k}s"),
                format!("x{k}"),
                format!("{}_{k}", "long".repeat(10)),
                format!("{k}_{}", "long".repeat(10)),
            ]
        })
        .collect();
    keys.extend(
        [
            "",
            "_",
            "-",
            "name",
            "Name",
            "user_name",
            "UserName",
            "nam",
            "e",
            "E-Mail",
            "ÉMAIL",
            "emaıl",
            "product_id",
            "sku",
            "price",
            "a_very_long_key_that_is_longer_than_the_room",
        ]
        .map(String::from),
    );
    for key in &keys {
        for drop_name in [false, true] {
            assert_eq!(
                identifying_key(key, drop_name),
                plain_identifying_key(key, drop_name),
                "{key:?} {drop_name}"
            );
        }
    }
}

#[test]
fn scrub_matches_the_copying_version() {
    fn plain_keep(v: &Value) -> bool {
        match v {
            Value::String(s) => {
                let cut = plain_cut(s);
                find(&cut).is_none()
            }
            _ => true,
        }
    }
    fn plain_cut(s: &str) -> String {
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            s.split(['?', '#']).next().unwrap_or(s).to_owned()
        } else {
            s.to_owned()
        }
    }
    fn plain(v: &Value, drop_name: bool) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter(|(k, _)| !plain_identifying_key(k, drop_name) && find(k).is_none())
                    .filter(|(_, v)| plain_keep(v))
                    .map(|(k, v)| (k.clone(), plain(v, false)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(
                a.iter()
                    .filter(|v| plain_keep(v))
                    .map(|v| plain(v, false))
                    .collect(),
            ),
            Value::String(s) => Value::String(plain_cut(s)),
            other => other.clone(),
        }
    }
    let samples = [
        json!({"email": "a@b.co", "Name": "n", "name": "x", "user-name": "u", "total": 1.5,
               "note": "write to a@b.co", "contact": "a@b.co", "list": ["a@b.co", "ok", 1],
               "nested": {"phone": "1", "name": "kept below the top", "deep": [{"ip": "1"}]},
               "url": "HTTPS://shop.example/p?email=a@b.co#x", "plain": "http:/nope?x",
               "ftp": "ftp://h/p?q", "short": "http", "ünï": "http://é/?q",
               "tel": "+1 415 555 0100", "peer": "203.0.113.7", "at": "2026-03-01"}),
        json!([]),
        json!({}),
        json!("https://x.example/?q=1"),
        json!([
            "https://x.example/u/a@b.co?q=1",
            "https://x.example/u?a@b.co"
        ]),
    ];
    for sample in samples {
        for drop_name in [false, true] {
            assert_eq!(
                scrub(sample.clone(), drop_name, &mut Found::default()),
                plain(&sample, drop_name),
                "{sample} {drop_name}"
            );
        }
    }
}
