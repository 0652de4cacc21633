//! The deliver handler against moto: SQS records as a Lambda event source delivers them, read
//! and settled one by one.
//!
//! One moto server for this binary, started from the repository's `.venv` (made by
//! `make test`) on a free loopback port, stopped when the binary exits.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use tracklayer_aws::config::stack_table_names;
use tracklayer_aws::provision::{self, Options};
use tracklayer_aws::{AwsClients, AwsConfig, SqsDeliveryQueue};
use tracklayer_core::clock::SystemClock;
use tracklayer_core::deliver::service::DeliveryConfig;
use tracklayer_core::destination::{DestinationId, DestinationKind};
use tracklayer_core::ports::{Enqueuer, Outgoing};
use tracklayer_core::workspace::{Region, WorkspaceId};
use tracklayer_deliver::{Deliver, SqsRecords};
use tracklayer_lambda::AwsStack;

// ---------------------------------------------------------------------------------------------
// moto: one server for this test binary, from the shared launcher of `tracklayer-tests`
// (the repository's `.venv`, a free loopback port, stopped when the binary exits).

fn endpoint() -> &'static str {
    &tracklayer_tests::lambda::stack::Moto::shared().endpoint
}

const AWS_REGION: &str = "eu-central-1";

async fn clients() -> AwsClients {
    tracklayer_tests::lambda::stack::clients(endpoint(), AWS_REGION, "testing").await
}

fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_nanos();
    format!("{nanos:x}")
}

/// A stack on moto, as `sam deploy` makes it, and the deliver function's configuration of it.
async fn stack() -> (AwsStack, AwsClients) {
    let c = clients().await;
    let name = format!("tl-deliver-{}", unique());
    let options = Options {
        deletion_protection: false,
        ..Options::default()
    };
    let tables = stack_table_names(&name);
    provision::create_tables(&c.dynamodb, &tables, &options)
        .await
        .expect("tables on moto");
    let queues = provision::create_queues(&c.sqs, &name, &options)
        .await
        .expect("queues on moto");
    let key = c
        .kms
        .create_key()
        .send()
        .await
        .expect("a KMS key on moto")
        .key_metadata
        .and_then(|m| m.arn)
        .expect("key ARN");
    let mut env = HashMap::from([
        ("TRACKLAYER_REGION_CODE".to_owned(), "eu".to_owned()),
        ("TRACKLAYER_CONTROL_TABLE".to_owned(), tables.control),
        ("TRACKLAYER_EVENTS_TABLE".to_owned(), tables.events),
        (
            "TRACKLAYER_DELIVERY_LOG_TABLE".to_owned(),
            tables.delivery_log,
        ),
        ("TRACKLAYER_AUDIT_TABLE".to_owned(), tables.audit),
        ("TRACKLAYER_KMS_KEY_ARN".to_owned(), key),
        (
            "TRACKLAYER_SES_SENDER".to_owned(),
            "privacy@example.com".to_owned(),
        ),
        (
            "TRACKLAYER_PUBLIC_URL_US".to_owned(),
            "https://us.example.com".to_owned(),
        ),
        (
            "TRACKLAYER_PUBLIC_URL_EU".to_owned(),
            "https://eu.example.com".to_owned(),
        ),
        ("AWS_REGION".to_owned(), AWS_REGION.to_owned()),
    ]);
    for (kind, urls) in &queues {
        let suffix = tracklayer_aws::config::kind_suffix(*kind);
        env.insert(format!("QUEUE_URL_{suffix}"), urls.queue.clone());
        env.insert(format!("DLQ_URL_{suffix}"), urls.dlq.clone());
    }
    let config = AwsConfig::from_lookup(|k| env.get(k).cloned()).expect("a valid configuration");
    (AwsStack::new(config, &c), c)
}

/// What the Lambda event source makes of a received message: an SQS event record.
fn record(queue_url: &str, m: &aws_sdk_sqs::types::Message) -> serde_json::Value {
    let name = queue_url.rsplit('/').next().expect("queue name");
    let attributes: serde_json::Map<String, serde_json::Value> = m
        .message_attributes()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            (
                k.clone(),
                json!({"stringValue": v.string_value(), "dataType": v.data_type()}),
            )
        })
        .collect();
    json!({
        "messageId": m.message_id(),
        "receiptHandle": m.receipt_handle(),
        "body": m.body(),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1764374400000"},
        "messageAttributes": attributes,
        "eventSource": "aws:sqs",
        "eventSourceARN": format!("arn:aws:sqs:{AWS_REGION}:123456789012:{name}"),
        "awsRegion": AWS_REGION,
    })
}

#[tokio::test]
async fn an_unreadable_message_is_dead_lettered_and_only_the_poison_record_is_reported() {
    let (stack, c) = stack().await;
    let kind = DestinationKind::Webhook;
    let (ws, d) = (
        WorkspaceId::new(Region::Eu, &unique()),
        DestinationId::new(&unique()),
    );
    stack
        .queue
        .enqueue(&[Outgoing {
            kind,
            destination_id: d.clone(),
            workspace_id: ws.clone(),
            body: b"not a queue body".to_vec(),
            delay: Duration::ZERO,
            shared: None,
        }])
        .await
        .unwrap();
    // The event source receives it (here: the test, with its own queue handle).
    let url = stack.config.queue(kind).queue.clone();
    let got = c
        .sqs
        .receive_message()
        .queue_url(&url)
        .message_attribute_names("All")
        .visibility_timeout(60)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(got.len(), 1);
    let mut poison = record(&url, &got[0]);
    poison["messageId"] = json!("poison");
    poison["messageAttributes"]
        .as_object_mut()
        .unwrap()
        .remove("destination_id");
    let event: SqsRecords = serde_json::from_value(json!({
        "Records": [record(&url, &got[0]), poison]
    }))
    .unwrap();

    let deliver = Deliver::new(&stack, DeliveryConfig::default()).unwrap();
    let response = deliver.handle(event).await.unwrap();
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["poison"]);

    let reader = SqsDeliveryQueue::new(
        c.sqs.clone(),
        stack.config.queues.clone(),
        std::sync::Arc::new(SystemClock),
    );
    let dead = reader.dead_letters(kind, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].destination_id, d);
    assert!(
        dead[0].reason.starts_with("unreadable message"),
        "{}",
        dead[0].reason
    );
    let depth = reader.depth(kind).await.unwrap();
    assert_eq!(
        (depth.visible, depth.in_flight),
        (0, 0),
        "deleted from its queue"
    );
}
