//! The mapping of ingest's errors to problem+json responses.
//!
//! Input: a request body; the errors parsing it yields, and errors carrying its text.

use axum::body::to_bytes;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::Value;
use tracklayer_core::error::StoreError;
use tracklayer_core::event::EventType;
use tracklayer_core::ingest::{parse_body, Endpoint, IngestError, Rejection};
use tracklayer_http::tracking::ingest_problem;
use tracklayer_http::{Problem, TrackingConfig};

/// The response of `problem`: its status and JSON body, checked against RFC 9457.
fn respond(problem: Problem) -> (u16, Value) {
    let status = problem.status();
    let response = problem.into_response();
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(
        response.headers().get(header::CONTENT_TYPE).unwrap(),
        "application/problem+json"
    );
    let body = crate::body::runtime()
        .block_on(to_bytes(response.into_body(), usize::MAX))
        .expect("an in-memory body");
    // nosemgrep: tl-json-unbounded-body — the fuzz harness's own answer, bounded by the fuzzer's input
    let json: Value = serde_json::from_slice(&body).expect("a problem body is JSON");
    assert_eq!(json["status"], status);
    let kind = json["type"].as_str().expect("a type");
    assert!(
        kind.starts_with("https://tracklayer.io/problems/"),
        "{kind}"
    );
    assert!(json["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(json["detail"].is_string());
    (status, json)
}

pub fn check(data: &[u8]) {
    let config = TrackingConfig::default();
    // Whatever a client sends, a refused body is the client's fault: 4xx, never 5xx.
    for endpoint in [Endpoint::Batch, Endpoint::Single(EventType::Track)] {
        if let Err(e) = parse_body(endpoint, data) {
            let (status, json) = respond(ingest_problem(&e, &config));
            assert!(matches!(status, 400 | 413 | 422), "{status} {json}");
            if let IngestError::Invalid { field, .. } | IngestError::TooManyKeys { field, .. } = &e
            {
                assert_eq!(json["field"], field.as_str());
            }
        }
    }
    let text = String::from_utf8_lossy(data).into_owned();
    let rejection = Rejection {
        index: data.len(),
        message_id: Some(text.clone()),
        field: format!("/{text}"),
        detail: text.clone(),
    };
    let (status, json) = respond(ingest_problem(
        &IngestError::NothingValid {
            rejected: vec![rejection],
        },
        &config,
    ));
    assert_eq!(status, 400);
    assert_eq!(json["field"], format!("/{text}"));
    // A storage failure's cause never reaches the caller: 503 to retry, or an opaque 500,
    // the same answer whatever the cause says (a substring test would flag a cause that
    // happens to read like the answer's own text, such as `status":`).
    let causes: [fn(String) -> StoreError; 3] = [
        |c| StoreError::transient("fuzz", c),
        |c| StoreError::permanent("fuzz", c),
        |c| StoreError::corrupt("fuzz", c),
    ];
    for (cause, expected) in causes.into_iter().zip([503, 500, 500]) {
        let answer = |c: String| {
            let (status, json) = respond(ingest_problem(&IngestError::Store(cause(c)), &config));
            (status, without_request_id(json))
        };
        let (status, json) = answer(text.clone());
        assert_eq!(status, expected);
        assert_eq!(
            (status, &json),
            (expected, &answer("another cause".into()).1),
            "the answer depends on the cause"
        );
    }
}

/// `json` with the request id a 500 quotes (`req_` and its characters, new for each answer)
/// left out of its detail.
fn without_request_id(mut json: Value) -> Value {
    if let Some(detail) = json["detail"].as_str() {
        let mut out = String::with_capacity(detail.len());
        let mut rest = detail;
        while let Some(at) = rest.find("req_") {
            out.push_str(&rest[..at]);
            out.push_str("req_…");
            rest = rest[at + 4..].trim_start_matches(|c: char| c.is_ascii_alphanumeric());
        }
        out.push_str(rest);
        json["detail"] = Value::String(out);
    }
    json
}
