//! The fake Firehose of the delivery suites, held to what the connector sends: a request
//! built by the `firehose` connector and sent by the egress client passes every check of the
//! fake (signature recomputed, one NDJSON line per record, digests only); the same request
//! with its body changed after signing is refused.

use serde_json::json;
use tracklayer_core::deliver::{OpenedItem, Target};
use tracklayer_core::destination::{Destination, DestinationId, DestinationKind, EventFilter};
use tracklayer_core::event::DeliveryItem;
use tracklayer_core::ports::Egress;
use tracklayer_core::workspace::{Region, WorkspaceId};
use tracklayer_egress::{EgressConfig, EgressPolicy, HttpEgress};
use tracklayer_tests::fake::{self, Fakes};

fn item(message_id: &str) -> OpenedItem {
    let item: DeliveryItem = serde_json::from_value(json!({
        "event_id": "0195a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        "message_id": message_id,
        "event_type": "track",
        "name": "Order Completed",
        "timestamp": "2026-03-01T11:00:00Z",
        "properties": {"order_id": "o-1", "revenue": 42.5, "currency": "EUR"},
        "user_data": {"email": "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"}
    }))
    .expect("a delivery item");
    OpenedItem {
        item,
        sealed: Default::default(),
    }
}

#[tokio::test]
async fn the_fake_firehose_accepts_the_connectors_signed_requests_and_refuses_a_changed_body() {
    let fakes = Fakes::new("m", "g", "t", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"); // pragma: allowlist secret
    let base = fake::serve(fakes.clone()).await;
    let (_, definition, _) = fake::ad_destinations(&base)
        .into_iter()
        .find(|(sink, _, _)| *sink == "firehose")
        .expect("the firehose destination");
    let now = time::OffsetDateTime::now_utc();
    let d = Destination {
        id: DestinationId::new("firehosefake"),
        workspace_id: WorkspaceId::new(Region::Us, "fake"),
        name: "Firehose".into(),
        kind: DestinationKind::Firehose,
        config: definition["config"].clone(),
        secrets: tracklayer_core::crypto::Sealed(Vec::new()),
        secret_hints: json!({}),
        consent_purposes: Vec::new(),
        events: EventFilter::All,
        endpoint: Some(base.clone()),
        paused: false,
        created_at: now,
        updated_at: now,
    };
    let secrets = definition["secrets"].clone();
    let target = Target {
        destination: &d,
        secrets: &secrets,
        base_url: &base,
        now,
    };
    let (a, b) = (item("m-1"), item("m-2"));
    let request = tracklayer_connectors::connector(DestinationKind::Firehose)
        .build(&target, &[&a, &b])
        .expect("a request");
    let egress = HttpEgress::new(EgressConfig {
        policy: EgressPolicy {
            allow_private: true,
        },
        ..EgressConfig::default()
    })
    .unwrap();

    let answer = egress.post(&request).await.expect("an answer");
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert!(
        fakes.format_errors().is_empty(),
        "{:?}",
        fakes.format_errors()
    );
    let mut got: Vec<String> = fakes.received("firehose").into_keys().collect();
    got.sort();
    assert_eq!(got, ["m-1", "m-2"]);

    let mut changed = request.clone();
    changed.body = String::from_utf8(changed.body)
        .unwrap()
        .replacen("tracklayer-delivery", "another-stream", 1)
        .into_bytes();
    let refused = egress.post(&changed).await.expect("an answer");
    assert_eq!(refused.status, 400);
    assert!(!fakes.format_errors().is_empty());
}
