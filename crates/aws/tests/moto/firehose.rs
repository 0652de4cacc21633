//! Amazon Data Firehose end to end on moto: events go in through the real ingest pipeline,
//! are queued on SQS for a `firehose` destination that names a customer role, and the
//! delivery service assumes the role with STS (`StsRoles`, signed REST) and sends
//! `PutRecordBatch` (the connector's signed request, through the egress client) to moto's
//! Firehose, which writes each batch into the stream's S3 bucket as one object (moto 5:
//! `put_s3_records` joins the records' data). The object must be exactly the NDJSON lines of
//! the stored event view: hashes, never a clear identifier.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use tracklayer_core::clock::Clock;
use tracklayer_core::deliver::service::{DeliveryConfig, DeliveryPorts, DeliveryService};
use tracklayer_core::destination::secret_opener::secrets_aad;
use tracklayer_core::keys::KeyKind;
use tracklayer_core::ports::{ControlStore, Keyring, QueueConsumer};
use tracklayer_egress::{EgressConfig, EgressPolicy, HttpEgress};
use tracklayer_sigv4::{signature_headers, Credentials, Scope, Unsigned};

use super::erasure::{send, Stack};
use super::*;

/// moto's default account: credentials of an assumed role in it reach the same backends.
const ROLE: &str = "arn:aws:iam::123456789012:role/tracklayer-firehose";

/// A signed call to moto (any credentials do; the signature's service routes the request).
async fn call(
    method: &str,
    path: &str,
    service: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, Vec<u8>) {
    let url = format!("{}{path}", endpoint());
    let creds = Credentials::new("testing", "testing-secret", None, None, "tests");
    let signed = signature_headers(
        &Unsigned {
            method,
            url: &url,
            headers,
            body: &body,
        },
        &creds,
        &Scope {
            region: "us-east-1",
            service,
            time: std::time::SystemTime::now(),
        },
    )
    .unwrap();
    let client = reqwest::Client::new();
    let mut request = client.request(method.parse().unwrap(), &url).body(body);
    for (k, v) in headers
        .iter()
        .copied()
        .chain(signed.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    {
        request = request.header(k, v);
    }
    let response = request.send().await.expect("moto answers");
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}

/// A bucket and a Direct PUT stream delivering to it.
async fn stream_into_bucket(stream: &str, bucket: &str) {
    let (status, body) = call("PUT", &format!("/{bucket}"), "s3", &[], Vec::new()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let create = json!({
        "DeliveryStreamName": stream,
        "DeliveryStreamType": "DirectPut",
        "ExtendedS3DestinationConfiguration": {
            "RoleARN": "arn:aws:iam::123456789012:role/firehose-to-s3",
            "BucketARN": format!("arn:aws:s3:::{bucket}"),
            "Prefix": "events/"
        }
    });
    let (status, body) = call(
        "POST",
        "/",
        "firehose",
        &[
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", "Firehose_20150804.CreateDeliveryStream"),
        ],
        create.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

/// The contents of every object in the bucket.
async fn objects(bucket: &str) -> Vec<String> {
    let (status, list) = call(
        "GET",
        &format!("/{bucket}?list-type=2"),
        "s3",
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(status, 200);
    let list = String::from_utf8(list).unwrap();
    let mut out = Vec::new();
    for part in list.split("<Key>").skip(1) {
        let key = part.split("</Key>").next().unwrap();
        let (status, body) = call("GET", &format!("/{bucket}/{key}"), "s3", &[], Vec::new()).await;
        assert_eq!(status, 200);
        out.push(String::from_utf8(body).unwrap());
    }
    out
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

#[tokio::test]
async fn firehose_records_land_in_the_streams_s3_bucket_as_the_exact_ndjson_lines_of_the_stored_view(
) {
    let stack = Stack::new().await;
    let u = &unique()[18..];
    let (stream, bucket) = (format!("tl-{u}"), format!("tl-bucket-{u}"));
    stream_into_bucket(&stream, &bucket).await;

    // A firehose destination naming the customer's role, sending to moto (the endpoint
    // override), with no secrets: its credentials come from STS.
    let boot = stack.bootstrap("Firehose proof").await;
    let ws = boot.workspace.id.clone();
    let mut d = testkit::destination(&ws, DestinationKind::Firehose, SystemClock.now());
    d.config = json!({"stream_name": stream, "region": "us-east-1", "role_arn": ROLE});
    d.endpoint = Some(endpoint().to_owned());
    let data_key = stack
        .keyring
        .unwrap_data_key(&ws, &boot.workspace.key_ref, &boot.workspace.data_key)
        .await
        .unwrap();
    d.secrets = tracklayer_core::crypto::WorkspaceKeys::new(&data_key).seal(
        [3; 12],
        &secrets_aad(&d),
        b"{}",
    );
    stack.control.put_destination(&d).await.unwrap();

    let key = testkit::api_key(&ws, KeyKind::Ingest);
    let email = format!("jane.{u}@example.com");
    let event = |id: &str, value: u32| {
        json!({
            "type": "track", "event": "Order Completed", "messageId": id,
            "userId": format!("user-{u}"),
            "properties": {"value": value, "currency": "EUR", "order_id": format!("o-{id}")},
            "context": {"traits": {"email": email}, "ip": "203.0.113.9",
                        "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Proof/1.0"}
        })
    };
    let outcome = send(
        &stack.ingest(),
        &key,
        vec![
            event(&format!("fh-1-{u}"), 10),
            event(&format!("fh-2-{u}"), 20),
        ],
    )
    .await;
    assert_eq!(outcome.accepted, 2);

    let egress = HttpEgress::new(EgressConfig {
        policy: EgressPolicy {
            allow_private: true,
        },
        ..EgressConfig::default()
    })
    .unwrap();
    let service = Arc::new(
        DeliveryService::new(
            DeliveryPorts {
                control: stack.control.clone(),
                queue: stack.queue.clone(),
                log: stack.log.clone(),
                keyring: stack.keyring.clone(),
                egress: Arc::new(egress),
                suppressions: stack.dsr.clone(),
                clock: Arc::new(SystemClock),
                ids: Arc::new(tracklayer_core::clock::SystemIds),
                connectors: tracklayer_connectors::connector,
                base_urls: tracklayer_connectors::default_base_url,
                stats: Arc::new(stats().await),
            },
            DeliveryConfig::default(),
        )
        .with_role_credentials(Arc::new(clients_in("us-east-1").await.sts)),
    );
    let received = stack
        .queue
        .receive(DestinationKind::Firehose, 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(received.len(), 1, "one queue message of both events");
    let items = tracklayer_core::event::QueueBody::decode(&received[0].body)
        .unwrap()
        .items;
    let dispositions = service.process(DestinationKind::Firehose, &received).await;
    assert_eq!(
        dispositions,
        vec![tracklayer_core::deliver::service::Disposition::Ack]
    );

    // The stored view of each queued item, one JSON line each, in order.
    let expected: String = items
        .iter()
        .map(|item| {
            let user_data: serde_json::Map<String, Value> = item
                .user_data
                .iter()
                .map(|(f, h)| {
                    (
                        serde_json::to_value(f)
                            .unwrap()
                            .as_str()
                            .unwrap()
                            .to_owned(),
                        json!(h),
                    )
                })
                .collect();
            let line = json!({
                "messageId": item.message_id.as_str(),
                "event_id": item.event_id.to_string(),
                "type": "track",
                "name": "Order Completed",
                "timestamp": item.timestamp.format(&Rfc3339).unwrap(),
                "properties": item.properties,
                "user_data": user_data,
            });
            format!("{line}\n")
        })
        .collect();
    assert_eq!(objects(&bucket).await, vec![expected.clone()]);
    // Meta-normalized SHA-256 of the email (trimmed, lower case), never the email.
    assert!(expected.contains(&sha256_hex(&email)), "{expected}");
    for raw in [email.as_str(), "203.0.113.9", "Mozilla/5.0"] {
        assert!(!expected.contains(raw), "{raw} in {expected}");
    }
}
