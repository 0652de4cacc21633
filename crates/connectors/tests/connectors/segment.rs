//! The Segment-compatible forwarder: the documented `/v1/batch` request with Basic auth,
//! hashed or scrubbed identifiers, Segment's byte limits, answers.

use super::*;

fn segment(identifiers: &str) -> (Destination, Value) {
    let (mut d, s) = vendor(DestinationKind::Segment);
    d.config = json!({ "identifiers": identifiers });
    (d, s)
}

#[test]
fn segment_builds_the_documented_batch_with_the_write_key_as_basic_user() {
    let (d, s) = segment("hashed");
    let request = build(&target(&d, &s), &[fixture("order")]);
    assert_eq!(request.url, "https://api.segment.io/v1/batch");
    // base64("wk_live_1:"): the write key as user name, an empty password.
    let auth = header(&request, "authorization");
    assert_eq!(auth, Some("Basic d2tfbGl2ZV8xOg=="));
    assert_eq!(header(&request, "content-type"), Some("application/json"));
    let golden_body = golden(include_str!("../fixtures/segment_body.json"));
    assert_eq!(body(&request), golden_body);
}

#[test]
fn segment_goes_to_the_configured_compatible_endpoint() {
    let (mut d, s) = segment("scrubbed");
    d.endpoint = Some("https://hosted.rudderlabs.example/".into());
    let request = build(&target(&d, &s), &[fixture("page")]);
    assert_eq!(request.url, "https://hosted.rudderlabs.example/v1/batch");
    let call = &body(&request)["batch"][0];
    assert_eq!(call["type"], "page");
}

#[test]
fn segment_scrubbed_sends_no_identifier_and_links_no_two_events() {
    let (d, s) = segment("scrubbed");
    let mut second = fixture("order");
    second.item.message_id = tracklayer_core::event::MessageId::parse("msg-order-2").unwrap();
    let request = build(&target(&d, &s), &[fixture("order"), second]);
    let text = String::from_utf8_lossy(&request.body);
    for raw in [
        "62a14e44",
        "e323ec62",
        "6d894aa3",
        "anon-1",
        "user-42",
        "203.0.113.7",
    ] {
        assert!(!text.contains(raw), "{raw} in {text}");
    }
    let sent = body(&request);
    for (i, id) in ["msg-order-1", "msg-order-2"].iter().enumerate() {
        let call = &sent["batch"][i];
        assert_eq!(call["anonymousId"], *id);
        assert!(call.get("userId").is_none());
        assert!(call["context"].get("traits").is_none());
        assert!(call["context"].get("userAgent").is_none());
    }
}

#[test]
fn segment_hashed_sends_only_digests_and_never_the_ip_address() {
    let sent = review_body_with_raw_identifiers(DestinationKind::Segment, &[]);
    let call = &sent["batch"][0];
    let traits = &call["context"]["traits"];
    assert!(
        traits.get("email").is_none(),
        "a non-digest email never leaves"
    );
    assert_digests(traits, &["phone", "firstName"]);
    assert_digests(call, &["userId", "anonymousId"]);
}

#[test]
fn segment_batches_are_cut_at_500_kb_and_a_call_over_32_kb_is_refused() {
    let (d, s) = segment("scrubbed");
    let t = target(&d, &s);
    let c = connector(DestinationKind::Segment);
    let limits = c.byte_limits(&t).expect("Segment counts bytes");
    assert_eq!(limits.item, 32 * 1024);
    assert!(limits.request <= 500 * 1024);
    // Calls of about 20 KB: 25 fit in 500 KB.
    let mut big = fixture("search");
    big.item.properties = json!({"blob": "x".repeat(20_000)});
    let items: Vec<OpenedItem> = (0..60).map(|_| big.clone()).collect();
    let refs: Vec<&OpenedItem> = items.iter().collect();
    let sizes: Vec<usize> = batches(&t, &refs).iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![25, 25, 10]);
    for batch in batches(&t, &refs) {
        let request = c.build(&t, &batch).unwrap();
        assert!(request.body.len() <= 500 * 1024, "{}", request.body.len());
    }
    let mut huge = fixture("search");
    huge.item.properties = json!({"blob": "x".repeat(40_000)});
    assert!(c.item_bytes(&t, &huge) > limits.item);
}

#[test]
fn segment_classifies_its_answers() {
    let k = DestinationKind::Segment;
    assert_eq!(classify(k, 2, &response(200, "{}")), Outcome::Delivered);
    let reason = permanent_reason(classify(k, 1, &response(400, "Request too large")));
    assert!(
        reason.contains("HTTP 400") && reason.contains("Request too large"),
        "{reason}"
    );
    let r = response_with(503, &[("Retry-After", "9")], "");
    match classify(k, 1, &r) {
        Outcome::Retry { after, .. } => assert_eq!(after, Some(Duration::from_secs(9))),
        other => panic!("{other:?}"),
    }
}

#[test]
fn segment_names_a_missing_write_key_without_echoing_anything() {
    let (d, _) = segment("hashed");
    let refs = [&fixture("order")];
    let err = connector(d.kind)
        .build(&target(&d, &json!({})), &refs)
        .unwrap_err();
    assert_eq!(err, "segment: secrets.write_key is missing");
}
