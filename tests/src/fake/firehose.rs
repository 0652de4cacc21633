//! A fake Amazon Data Firehose (`PutRecordBatch`, JSON 1.1 over `POST /`). It recomputes the
//! SigV4 signature of every request from the secret key it shares with the destination (the
//! one signer, `tracklayer-sigv4`, over the headers it received), checks the batch limits and
//! that every record is one NDJSON line carrying SHA-256 digests only, and records each
//! record's `messageId`. In flaky mode it also fails single records
//! (`ServiceUnavailableException`), which must come back alone.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{json, Value};
use time::macros::format_description;
use time::PrimitiveDateTime;
use tracklayer_sigv4::{signature_headers, Credentials, Scope, Unsigned};

use super::{Fakes, Mode};

/// The static keys of the fake's stream (an installation outside AWS).
pub const FIREHOSE_KEY_ID: &str = "AKIAFAKEFIREHOSE0001"; // pragma: allowlist secret
pub const FIREHOSE_SECRET_KEY: &str = "fakeFirehoseSecretKey0000000000000000000"; // pragma: allowlist secret
/// The stream the fake serves.
pub const FIREHOSE_STREAM: &str = "tracklayer-delivery";

pub(super) fn routes() -> Router<Arc<Fakes>> {
    Router::new().route("/", post(put_record_batch))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// Whether `authorization` is the signature of this request with the fake's keys.
fn signed(headers: &HeaderMap, body: &[u8]) -> bool {
    let amz_date = header(headers, "x-amz-date");
    let Ok(at) = PrimitiveDateTime::parse(
        amz_date,
        format_description!("[year][month][day]T[hour][minute][second]Z"),
    ) else {
        return false;
    };
    let url = format!("http://{}/", header(headers, "host"));
    let signed_headers = [
        ("content-type", header(headers, "content-type")),
        ("x-amz-target", header(headers, "x-amz-target")),
    ];
    let expected = signature_headers(
        &Unsigned {
            method: "POST",
            url: &url,
            headers: &signed_headers,
            body,
        },
        &Credentials::new(FIREHOSE_KEY_ID, FIREHOSE_SECRET_KEY, None, None, "fake"),
        &Scope {
            region: "us-east-1",
            service: "firehose",
            time: SystemTime::from(at.assume_utc()),
        },
    );
    expected.is_ok_and(|list| {
        list.iter()
            .any(|(k, v)| k == "authorization" && v == header(headers, "authorization"))
    })
}

/// One record's line: JSON ending in a newline, with digests only in `user_data`.
fn record_id(f: &Fakes, data: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .ok()?;
    let line = String::from_utf8(bytes).ok()?;
    let Some(json_line) = line.strip_suffix('\n').filter(|l| !l.contains('\n')) else {
        f.format_error(
            "firehose",
            "a record is not one newline-terminated line".into(),
        );
        return None;
    };
    let event: Value = serde_json::from_str(json_line).ok()?;
    super::ads::digests_only(f, "firehose", &event["user_data"]);
    if event.get("context").is_some() {
        f.format_error(
            "firehose",
            "a record carries IP address or user agent".into(),
        );
    }
    event["messageId"].as_str().map(str::to_owned)
}

async fn put_record_batch(
    State(f): State<Arc<Fakes>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let sink = "firehose";
    let authorized = header(&headers, "x-amz-target") == "Firehose_20150804.PutRecordBatch"
        && header(&headers, "content-type") == "application/x-amz-json-1.1"
        && signed(&headers, &body);
    let refused = (!authorized).then(|| {
        let error = json!({"__type": "InvalidSignatureException", "message": "signature"});
        let answer = (StatusCode::BAD_REQUEST, Json(error)).into_response();
        ("not a PutRecordBatch signed with the stream's keys", answer)
    });
    let v = match f.admit(sink, refused, &body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let records = v["Records"].as_array().cloned().unwrap_or_default();
    if v["DeliveryStreamName"] != FIREHOSE_STREAM
        || records.is_empty()
        || records.len() > 500
        || body.len() > 4 * 1024 * 1024
    {
        f.format_error(
            sink,
            format!("{} records, {} bytes", records.len(), body.len()),
        );
    }
    let flaky = matches!(f.mode(sink), Mode::Flaky(_));
    let mut accepted = Vec::new();
    let mut answers = Vec::new();
    for r in &records {
        let id = r["Data"].as_str().and_then(|d| record_id(&f, d));
        if flaky && f.random() < 0.1 {
            answers.push(json!({"ErrorCode": "ServiceUnavailableException",
                                "ErrorMessage": "Slow down."}));
        } else {
            accepted.extend(id);
            answers.push(json!({"RecordId": format!("r{}", answers.len())}));
        }
    }
    let failed = records.len() - accepted.len();
    f.accept(sink, &v, accepted);
    Json(json!({"FailedPutCount": failed, "Encrypted": false, "RequestResponses": answers}))
        .into_response()
}
