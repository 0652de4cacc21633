//! The deliver handler's reading of an SQS event: each record on its own.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_sqs::config::{BehaviorVersion, Region};
use tracklayer_aws::{QueueUrls, SqsDeliveryQueue};
use tracklayer_core::clock::SystemClock;
use tracklayer_core::destination::DestinationKind;
use tracklayer_deliver::{read_records, SqsRecords};

/// The queues of a stack named `tracklayer-eu` (no request is made: reading is local).
fn queue() -> SqsDeliveryQueue {
    let client = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-central-1"))
            .build(),
    );
    let base = "https://sqs.eu-central-1.amazonaws.com/123456789012";
    let queues: BTreeMap<_, _> = DestinationKind::ALL
        .into_iter()
        .map(|kind| {
            let name = tracklayer_aws::provision::queue_name("tracklayer-eu", kind);
            (
                kind,
                QueueUrls {
                    queue: format!("{base}/{name}"),
                    dlq: format!("{base}/{name}-dlq"),
                },
            )
        })
        .collect();
    SqsDeliveryQueue::new(client, queues, Arc::new(SystemClock))
}

fn fixture() -> SqsRecords {
    serde_json::from_str(include_str!("fixtures/sqs_event_with_poison.json"))
        .expect("the fixture is an SQS event")
}

#[test]
fn a_poison_record_fails_alone_and_the_others_are_delivered() {
    let read = read_records(&queue(), fixture()).unwrap();
    assert_eq!(
        read.failed,
        [
            "poison-no-destination",
            "poison-not-a-message",
            "poison-other-queue"
        ]
    );
    assert_eq!(read.accepted.len(), 1);
    let good = &read.accepted[0];
    assert_eq!(good.message_id, "good-1");
    assert_eq!(good.kind, DestinationKind::Webhook);
    assert_eq!(good.received.receipt.0, "receipt-good-1");
    assert_eq!(good.received.workspace_id.as_str(), "ws_eu_0193a1b2c3d4");
    assert_eq!(good.received.destination_id.as_str(), "dst_0193a1b2c3d5");
    assert_eq!(good.received.body, br#"{"v":1}"#);
    assert_eq!(good.received.receive_count, 3, "ApproximateReceiveCount");
    assert_eq!(
        tracklayer_core::clock::unix_millis(good.received.enqueued_at),
        1_764_374_400_000,
        "SentTimestamp"
    );
}

#[test]
fn a_record_without_a_message_id_fails_the_whole_batch() {
    let mut event = fixture();
    event.records[1]
        .as_object_mut()
        .expect("a record")
        .remove("messageId");
    let err = read_records(&queue(), event).unwrap_err();
    assert_eq!(err.index, 1);
}

#[test]
fn an_event_without_records_delivers_nothing() {
    let read = read_records(&queue(), serde_json::from_str("{}").unwrap()).unwrap();
    assert!(read.accepted.is_empty() && read.failed.is_empty());
}
