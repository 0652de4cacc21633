//! Amazon Data Firehose `PutRecordBatch`: the documented request (JSON 1.1, SigV4), records as
//! NDJSON of the stored event view, the 500-record / 4 MiB / 1,000 KiB limits, and per-record
//! answers.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use tracklayer_connectors::firehose::{self, MAX_RECORD_BYTES, MAX_REQUEST_BYTES};

use super::*;

/// AWS's documented example access key id.
const EXAMPLE_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE"; // pragma: allowlist secret

fn firehose() -> (Destination, Value) {
    vendor(DestinationKind::Firehose)
}

/// The records of a request, decoded.
fn records(request: &HttpRequest) -> Vec<String> {
    body(request)["Records"]
        .as_array()
        .expect("Records")
        .iter()
        .map(|r| {
            let data = base64::engine::general_purpose::STANDARD
                .decode(r["Data"].as_str().expect("Data"))
                .expect("base64");
            String::from_utf8(data).expect("UTF-8")
        })
        .collect()
}

#[test]
fn firehose_sends_a_put_record_batch_to_the_regional_endpoint_in_the_json_1_1_protocol() {
    let (d, s) = firehose();
    let request = build(&target(&d, &s), &[fixture("order"), fixture("page")]);
    assert_eq!(request.url, "https://firehose.eu-central-1.amazonaws.com/");
    assert_eq!(
        header(&request, "content-type"),
        Some("application/x-amz-json-1.1")
    );
    assert_eq!(
        header(&request, "x-amz-target"),
        Some("Firehose_20150804.PutRecordBatch")
    );
    let sent = body(&request);
    assert_eq!(sent["DeliveryStreamName"], "tracklayer-events");
    assert_eq!(sent["Records"].as_array().unwrap().len(), 2);
}

#[test]
fn each_firehose_record_is_one_ndjson_line_of_the_stored_event_view_with_hashes_only() {
    let (d, s) = firehose();
    let request = build(&target(&d, &s), &[fixture("order")]);
    let lines = records(&request);
    assert_eq!(lines.len(), 1);
    let line = &lines[0];
    assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
    assert_eq!(
        serde_json::from_str::<Value>(line).unwrap(),
        golden(include_str!("../fixtures/firehose_record.json"))
    );
    // No IP address, user agent or page URL from the sealed fields: the trace view's fields only.
    let o = fixture("order");
    for sealed in [o.sealed.ip.as_deref(), o.sealed.user_agent.as_deref()]
        .into_iter()
        .flatten()
    {
        assert!(!line.contains(sealed), "{sealed} in {line}");
    }
}

/// `HMAC-SHA256(key, data)`.
fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The SigV4 signature of a request, computed here from the published algorithm
/// (<https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html>) as an
/// oracle independent of the signer.
fn expected_signature(request: &HttpRequest, secret: &str, date: &str, amz_date: &str) -> String {
    let signed = ["content-type", "host", "x-amz-date", "x-amz-target"];
    let canonical_headers: String = signed
        .iter()
        .map(|name| {
            let value = match *name {
                "host" => "firehose.eu-central-1.amazonaws.com",
                _ => header(request, name).unwrap(),
            };
            format!("{name}:{value}\n")
        })
        .collect();
    let canonical = format!(
        "POST\n/\n\n{canonical_headers}\n{}\n{}",
        signed.join(";"),
        hex::encode(Sha256::digest(&request.body))
    );
    let scope = format!("{date}/eu-central-1/firehose/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), date);
    for part in ["eu-central-1", "firehose", "aws4_request"] {
        key = hmac(&key, part);
    }
    hex::encode(hmac(&key, &to_sign))
}

#[test]
fn a_firehose_request_carries_a_sigv4_signature_that_the_published_algorithm_reproduces() {
    let (d, s) = firehose();
    let request = build(&target(&d, &s), &[fixture("order")]);
    assert_eq!(header(&request, "x-amz-date"), Some("20260301T120000Z"));
    let secret = s["aws_secret_access_key"].as_str().unwrap();
    let signature = expected_signature(&request, secret, "20260301", "20260301T120000Z");
    assert_eq!(
        header(&request, "authorization"),
        Some(
            format!(
                "AWS4-HMAC-SHA256 Credential={EXAMPLE_KEY_ID}/20260301/eu-central-1/firehose/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature={signature}"
            )
            .as_str()
        )
    );
    assert_eq!(header(&request, "x-amz-security-token"), None);
    let shown = format!("{:?}", request.headers);
    assert!(!shown.contains(secret), "the secret key never leaves");
}

#[test]
fn assumed_role_credentials_sign_with_their_session_token_and_a_role_alone_cannot_sign() {
    let d = destination(
        DestinationKind::Firehose,
        json!({"stream_name": "tracklayer-events", "region": "eu-central-1",
               "role_arn": "arn:aws:iam::123456789012:role/tracklayer-firehose"}),
    );
    let t = target(&d, &Value::Null);
    let role = connector(d.kind)
        .assumed_role(&t)
        .expect("the role is assumed");
    assert_eq!(
        role.role_arn,
        "arn:aws:iam::123456789012:role/tracklayer-firehose"
    );
    assert_eq!(role.external_id, d.workspace_id.as_str());
    assert_eq!(role.session_name, format!("tracklayer-{}", d.id));
    let err = connector(d.kind)
        .build(&t, &[&fixture("order")])
        .unwrap_err();
    assert!(err.contains("role"), "{err}");

    let assumed = json!({"aws_access_key_id": "ASIAEXAMPLEEXAMPLE12", // pragma: allowlist secret
        "aws_secret_access_key": "tempsecret", "aws_session_token": "FwoGZXIvYXdzEXAMPLE"});
    let request = build(&target(&d, &assumed), &[fixture("order")]);
    assert_eq!(
        header(&request, "x-amz-security-token"),
        Some("FwoGZXIvYXdzEXAMPLE")
    );
    assert!(header(&request, "authorization")
        .unwrap()
        .contains("Credential=ASIAEXAMPLEEXAMPLE12/")); // pragma: allowlist secret
                                                        // Static keys name no role.
    let (d, s) = firehose();
    assert!(connector(d.kind).assumed_role(&target(&d, &s)).is_none());
}

#[test]
fn a_firehose_endpoint_override_is_where_the_request_goes() {
    let (mut d, s) = firehose();
    d.endpoint = Some("http://127.0.0.1:5000/".into());
    let request = build(&target(&d, &s), &[fixture("order")]);
    assert_eq!(request.url, "http://127.0.0.1:5000/");
}

#[test]
fn firehose_carries_at_most_500_records_per_call() {
    let (d, s) = firehose();
    assert_carries_at_most(DestinationKind::Firehose, &target(&d, &s), "order", 500);
}

/// An order whose properties make its record about `bytes` long.
fn order_of_size(bytes: usize) -> OpenedItem {
    let mut o = fixture("order");
    o.item.properties["padding"] = json!("x".repeat(bytes));
    o
}

#[test]
fn firehose_splits_calls_so_that_none_exceeds_4_mib() {
    let (d, s) = firehose();
    let t = target(&d, &s);
    // 900 KiB records: 1.2 MiB each once base64-encoded, so three fit in 4 MiB.
    let items: Vec<OpenedItem> = (0..7).map(|_| order_of_size(900 * 1024)).collect();
    let refs: Vec<&OpenedItem> = items.iter().collect();
    let groups = batches(&t, &refs);
    assert_eq!(
        groups.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![3, 3, 1]
    );
    for group in &groups {
        let request = connector(d.kind).build(&t, group).unwrap();
        assert!(
            request.body.len() <= MAX_REQUEST_BYTES,
            "{}",
            request.body.len()
        );
    }
}

#[test]
fn an_event_over_1000_kib_as_a_record_is_dead_lettered_with_the_reason_not_dropped() {
    let (d, s) = firehose();
    let t = target(&d, &s);
    let c = connector(d.kind);
    assert_eq!(
        c.screen(&t, &order_of_size(MAX_RECORD_BYTES - 2000)),
        Ok(())
    );
    match c.screen(&t, &order_of_size(MAX_RECORD_BYTES)) {
        Err(DropReason::Unsendable(reason)) => {
            assert!(reason.contains("1,000 KiB"), "{reason}")
        }
        other => panic!("expected a dead letter, got {other:?}"),
    }
}

#[test]
fn firehose_answers_per_record_retry_only_the_failed_records() {
    let three_records = |r: &HttpResponse| classify(DestinationKind::Firehose, 3, r);
    let all_in = response(
        200,
        r#"{"FailedPutCount":0,"Encrypted":false,"RequestResponses":[{"RecordId":"a"},{"RecordId":"b"},{"RecordId":"c"}]}"#,
    );
    assert_eq!(three_records(&all_in), Outcome::Delivered);
    let one_failed = response(
        200,
        r#"{"FailedPutCount":1,"RequestResponses":[{"RecordId":"a"},
            {"ErrorCode":"ServiceUnavailableException","ErrorMessage":"Slow down."},{"RecordId":"c"}]}"#,
    );
    assert_eq!(
        three_records(&one_failed),
        Outcome::PerItem(vec![
            (0, Outcome::Delivered),
            (
                1,
                Outcome::Retry {
                    after: None,
                    reason: "firehose: the record failed (ServiceUnavailableException)".into()
                }
            ),
            (2, Outcome::Delivered),
        ])
    );
    // An answer that does not list every record cannot say which were delivered: all retry.
    let short = response(
        200,
        r#"{"FailedPutCount":1,"RequestResponses":[{"RecordId":"a"}]}"#,
    );
    assert!(is_retry(&three_records(&short)));
}

#[test]
fn firehose_call_errors_retry_when_passing_and_are_permanent_otherwise() {
    let one_record = |r: &HttpResponse| classify(DestinationKind::Firehose, 1, r);
    for (status, code, retry) in [
        (400, "ResourceNotFoundException", false),
        (400, "InvalidArgumentException", false),
        (400, "AccessDeniedException", false),
        (403, "UnrecognizedClientException", false),
        (400, "InvalidKMSResourceException", false),
        (400, "ThrottlingException", true),
        (400, "ExpiredTokenException", true),
        (503, "ServiceUnavailableException", true),
        (500, "InternalFailure", true),
    ] {
        let r = HttpResponse {
            status,
            headers: vec![("x-amzn-ErrorType".into(), format!("{code}:http://internal"))],
            body: br#"{"message":"stream arn:aws:firehose:... not found"}"#.to_vec(),
        };
        let outcome = one_record(&r);
        match (&outcome, retry) {
            (Outcome::Retry { reason, .. }, true) | (Outcome::Permanent { reason }, false) => {
                assert!(reason.contains(code), "{reason}");
                assert!(!reason.contains("arn:aws"), "the message text is not kept");
            }
            _ => panic!("{code}: {outcome:?}"),
        }
    }
    // The JSON 1.1 body's `__type` when the header is absent.
    let r = response(
        400,
        r#"{"__type":"ResourceNotFoundException","message":"x"}"#,
    );
    assert!(matches!(one_record(&r), Outcome::Permanent { .. }));
}

#[test]
fn a_firehose_record_is_what_the_connector_sends() {
    let (d, s) = firehose();
    let t = target(&d, &s);
    let o = fixture("search");
    let request = build(&t, std::slice::from_ref(&o));
    assert_eq!(
        records(&request),
        vec![String::from_utf8(firehose::record(&t, &o).unwrap()).unwrap()]
    );
}
