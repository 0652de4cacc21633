//! The size of a stored event record on the measurement's workload (`make measure-ingest`):
//! its purchases, routed to Meta, GA4 and TikTok.

use super::*;
use serde_json::json;
use tracklayer_core::destination::DestinationKind;

/// Purchase 10 of the measurement's batch (`tracklayer_tests::purchase("0000000000", 10)`).
const MEASUREMENT_PURCHASE: &str = include_str!("../fixtures/measurement_purchase.json");

/// The byte length of each stored event's record after one batch of `n` measurement
/// purchases (each with a message id of its own) to a workspace with Meta, GA4 and TikTok
/// destinations.
async fn measured_record_sizes(n: usize) -> Vec<usize> {
    let w = MetaWorkspace::new("Measurement", "EAAmeasure").await;
    let control = w.control_plane();
    for (name, kind, config, secrets) in [
        (
            "GA4",
            DestinationKind::Ga4,
            json!({"measurement_id": "G-MEASURE"}),
            json!({"api_secret": "ga4measure"}),
        ),
        (
            "TikTok",
            DestinationKind::Tiktok,
            json!({"pixel_code": "CMEASURE"}),
            json!({"access_token": "tiktokmeasure"}),
        ),
    ] {
        add_destination(&control, &w.workspace, name, kind, config, secrets).await;
    }
    let purchase: serde_json::Value = serde_json::from_str(MEASUREMENT_PURCHASE).unwrap();
    let batch: Vec<_> = (0..n)
        .map(|i| {
            let mut p = purchase.clone();
            p["messageId"] = json!(format!("0000000000-{i}"));
            p
        })
        .collect();
    w.ingest_from_a_server(&json!({ "batch": batch })).await;
    w.db.call("test", |c| {
        let mut stmt = c.prepare("SELECT length(doc) FROM events").unwrap();
        let sizes = stmt
            .query_map([], |r| r.get::<_, i64>(0))
            .unwrap()
            .map(|n| usize::try_from(n.unwrap()).unwrap())
            .collect();
        Ok(sizes)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_measurement_purchase_is_stored_in_a_record_under_the_measured_bound() {
    // Arrange, act: a batch of the measurement's purchases stored.
    let sizes = measured_record_sizes(100).await;

    // Assert: every event stored, each record within the bound measured for format 2 (602
    // bytes; format 1 took 803).
    assert_eq!(sizes.len(), 100);
    let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
    let mean = sizes.iter().sum::<usize>() as f64 / sizes.len() as f64;
    println!("event record of a measurement purchase: {min}..={max} bytes, mean {mean:.1}");
    assert!(*max <= 620, "{min}..={max} bytes");
}
