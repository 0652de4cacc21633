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
use tracklayer_core::deliver::service::{DeliveryConfig, DeliveryService, Disposition};
use tracklayer_core::destination::secret_opener::secrets_aad;
use tracklayer_core::event::{DeliveryItem, QueueBody};
use tracklayer_core::keys::KeyKind;
use tracklayer_core::ports::{ControlStore, Keyring, LogOf, QueueConsumer};
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

/// A stack with a bucket, a stream into it, and a `firehose` destination naming the
/// customer's role and sending to moto (the endpoint override), with no secrets (its
/// credentials come from STS); two events of one person ingested and queued for it.
struct World {
    stack: Stack,
    bucket: String,
    email: String,
    workspace: WorkspaceId,
    destination: DestinationId,
}

impl World {
    async fn new() -> Self {
        let stack = Stack::new().await;
        let u = unique()[18..].to_owned();
        let (stream, bucket) = (format!("tl-{u}"), format!("tl-bucket-{u}"));
        stream_into_bucket(&stream, &bucket).await;
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
        Self {
            stack,
            bucket,
            email,
            workspace: ws,
            destination: d.id,
        }
    }

    /// Delivery over `egress`, assuming roles with moto's STS, retrying at once.
    async fn service(
        &self,
        egress: Arc<dyn tracklayer_core::ports::Egress>,
    ) -> Arc<DeliveryService> {
        let stack = &self.stack;
        Arc::new(
            delivery_on_moto(
                stack.control.clone(),
                stack.queue.clone(),
                stack.log.clone(),
                stack.keyring.clone(),
                stack.dsr.clone(),
                egress,
                DeliveryConfig {
                    backoff_base: Duration::ZERO,
                    backoff_cap: Duration::ZERO,
                    ..DeliveryConfig::default()
                },
            )
            .await
            .with_role_credentials(Arc::new(clients_in("us-east-1").await.sts)),
        )
    }

    /// Receives the Firehose queue's messages (waiting for the first), delivers and settles
    /// them; the items delivered and the dispositions.
    async fn deliver(
        &self,
        service: &Arc<DeliveryService>,
    ) -> (Vec<DeliveryItem>, Vec<Disposition>) {
        let queue = &self.stack.queue;
        let mut received = Vec::new();
        for _ in 0..40 {
            received = queue
                .receive(DestinationKind::Firehose, 10, Duration::from_secs(30))
                .await
                .unwrap();
            if !received.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert!(!received.is_empty(), "a message is queued for Firehose");
        let items = received
            .iter()
            .flat_map(|m| QueueBody::decode(&m.body).unwrap().items)
            .collect();
        let dispositions =
            testkit::deliver_and_settle(service, DestinationKind::Firehose, &received).await;
        (items, dispositions)
    }
}

#[tokio::test]
async fn firehose_records_land_in_the_streams_s3_bucket_as_the_exact_ndjson_lines_of_the_stored_view(
) {
    let w = World::new().await;
    let egress = HttpEgress::new(EgressConfig {
        policy: EgressPolicy {
            allow_private: true,
        },
        ..EgressConfig::default()
    })
    .unwrap();
    let service = w.service(Arc::new(egress)).await;

    let (items, dispositions) = w.deliver(&service).await;
    assert_eq!(items.len(), 2, "one queue message of both events");
    assert_eq!(dispositions, vec![Disposition::Ack]);

    // The stored view of each queued item, one JSON line each, in order.
    let expected: String = items.iter().map(stored_view_line).collect();
    assert_eq!(objects(&w.bucket).await, vec![expected.clone()]);
    // Meta-normalized SHA-256 of the email (trimmed, lower case), never the email.
    assert!(expected.contains(&sha256_hex(&w.email)), "{expected}");
    for raw in [w.email.as_str(), "203.0.113.9", "Mozilla/5.0"] {
        assert!(!expected.contains(raw), "{raw} in {expected}");
    }
}

/// The NDJSON line of a queued item: its stored view, written out here field by field.
fn stored_view_line(item: &DeliveryItem) -> String {
    let user_data: serde_json::Map<String, Value> = item
        .user_data
        .iter()
        .map(|(f, h)| {
            let field = serde_json::to_value(f).unwrap();
            (field.as_str().unwrap().to_owned(), json!(h))
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
}

/// A local Firehose: answers the first `PutRecordBatch` with its second record failed
/// (`ServiceUnavailableException`), every later one in full; keeps each request's records and
/// headers.
#[derive(Default)]
struct PartlyFailingFirehose {
    calls: std::sync::Mutex<Vec<Call>>,
}

/// A request's records (decoded) and headers.
type Call = (Vec<String>, Vec<(String, String)>);

#[async_trait]
impl tracklayer_core::ports::Egress for PartlyFailingFirehose {
    async fn post(
        &self,
        request: &tracklayer_core::deliver::HttpRequest,
    ) -> Result<tracklayer_core::deliver::HttpResponse, tracklayer_core::ports::EgressError> {
        use base64::Engine;
        let sent: Value = serde_json::from_slice(&request.body).unwrap();
        let records: Vec<String> = sent["Records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let data = base64::engine::general_purpose::STANDARD
                    .decode(r["Data"].as_str().unwrap())
                    .unwrap();
                String::from_utf8(data).unwrap()
            })
            .collect();
        let first = {
            let mut calls = self.calls.lock().unwrap();
            calls.push((records.clone(), request.headers.clone()));
            calls.len() == 1
        };
        let answers: Vec<Value> = (0..records.len())
            .map(|i| {
                if first && i == 1 {
                    json!({"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down."})
                } else {
                    json!({"RecordId": format!("r{i}")})
                }
            })
            .collect();
        let body = json!({
            "FailedPutCount": usize::from(first && records.len() > 1),
            "Encrypted": false,
            "RequestResponses": answers,
        });
        Ok(tracklayer_core::deliver::HttpResponse {
            status: 200,
            headers: Vec::new(),
            body: body.to_string().into_bytes(),
        })
    }
}

#[tokio::test]
async fn a_record_firehose_fails_is_resent_alone_signed_with_the_assumed_roles_credentials() {
    let w = World::new().await;
    let firehose = Arc::new(PartlyFailingFirehose::default());
    let service = w.service(firehose.clone()).await;

    let (items, dispositions) = w.deliver(&service).await;
    assert_eq!(items.len(), 2);
    // The message comes back (the delivery log knows the first record went).
    assert!(
        matches!(&dispositions[..], [Disposition::RetryLater(_)]),
        "{dispositions:?}"
    );
    let (_, dispositions) = w.deliver(&service).await;
    assert_eq!(dispositions, vec![Disposition::Ack]);

    let calls = firehose.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[0].0,
        items.iter().map(stored_view_line).collect::<Vec<_>>()
    );
    assert_eq!(
        calls[1].0,
        vec![stored_view_line(&items[1])],
        "the failed record alone, the delivered one not again"
    );
    let mut delivered = w
        .stack
        .log
        .delivered(
            LogOf::new(&w.workspace, &w.destination),
            &[items[0].event_id, items[1].event_id],
            SystemClock.now(),
        )
        .await
        .unwrap();
    delivered.sort();
    let mut both = vec![items[0].event_id, items[1].event_id];
    both.sort();
    assert_eq!(delivered, both, "both are delivered, each once");
    // Signed with the role's temporary credentials from STS, for Firehose in the stream's region.
    for (_, headers) in &calls {
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let auth = header("authorization").expect("signed");
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential="), "{auth}");
        assert!(auth.contains("/us-east-1/firehose/aws4_request"), "{auth}");
        assert!(
            auth.contains(
                "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
            ),
            "{auth}"
        );
        assert!(header("x-amz-security-token").is_some_and(|t| !t.is_empty()));
        assert_eq!(
            header("x-amz-target"),
            Some("Firehose_20150804.PutRecordBatch")
        );
        assert!(
            !auth.contains("testing"),
            "not the process's own key: {auth}"
        );
    }
}
