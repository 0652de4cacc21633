//! The admin and tracking OpenAPI documents, pinned: each is compared, keys sorted, with its
//! snapshot under `tests/fixtures/openapi/`. A deliberate change of the API re-records them:
//! `TRACKLAYER_BLESS_OPENAPI=1 cargo test -p tracklayer-http --lib openapi_snapshot`.

use std::path::PathBuf;

use serde_json::{Map, Value};

/// The document with every object's keys in sorted order, pretty-printed.
fn normalized(doc: &str) -> String {
    fn sort(v: Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut entries: Vec<(String, Value)> = m.into_iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k, sort(v)))
                        .collect::<Map<_, _>>(),
                )
            }
            Value::Array(a) => Value::Array(a.into_iter().map(sort).collect()),
            other => other,
        }
    }
    // nosemgrep: tl-request-unwrap — a test of our own OpenAPI output, not a request's
    let v: Value = serde_json::from_str(doc).expect("the document is JSON");
    // nosemgrep: tl-request-unwrap — a test of our own OpenAPI output, not a request's
    serde_json::to_string_pretty(&sort(v)).expect("JSON serializes") + "\n"
}

fn check(name: &str, doc: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/openapi")
        .join(format!("{name}.json"));
    let now = normalized(doc);
    if std::env::var_os("TRACKLAYER_BLESS_OPENAPI").is_some() {
        std::fs::write(&path, &now).expect("the snapshot is writable");
        return;
    }
    let pinned = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        pinned == now,
        "{name}'s OpenAPI document differs from {}; if the change is meant, re-record it \
         with TRACKLAYER_BLESS_OPENAPI=1",
        path.display()
    );
}

#[test]
fn the_admin_openapi_document_is_the_pinned_one() {
    let doc = crate::admin::openapi::document().to_pretty_json().unwrap();
    check("admin", &doc);
}

#[test]
fn the_tracking_openapi_document_is_the_pinned_one() {
    check("tracking", &crate::tracking_openapi::document());
}
