//! `GET /admin/v1/destinations/{id}/delivery-log`: filters by status and time range, cursor
//! paging past 1,000 records, `message_id` and a retry's `next_attempt_at`, and a problem
//! naming the parameter for each kind of bad input.

use std::collections::HashSet;

use tracklayer_core::destination::DestinationId;
use tracklayer_core::event::{EventId, MessageId};
use tracklayer_core::ports::{DeliveryLog, DeliveryRecord, DeliveryStatus};
use uuid::Uuid;

use super::*;

impl App {
    /// A new destination with `n` records in its log (`delivery_records`).
    async fn destination_with_records(&self, n: usize) -> String {
        let d = self.new_destination().await;
        self.delivery_records(&d, n).await;
        d
    }

    /// Writes `n` records to the destination's log: every seventh retrying (next attempt
    /// five minutes after its update), the others delivered; ten per second from `T0` on, so
    /// that many share a timestamp.
    async fn delivery_records(&self, destination: &str, n: usize) -> Vec<DeliveryRecord> {
        let log = SqliteDeliveryLog::new(Db::open(&self.db_path).unwrap());
        let d = DestinationId::parse(destination).unwrap();
        let base = Uuid::now_v7().as_u128() & !0xffff_ffff;
        let records: Vec<DeliveryRecord> = (0..n)
            .map(|i| {
                let at = T0 + Duration::seconds((i / 10) as i64);
                let retrying = i % 7 == 0;
                DeliveryRecord {
                    workspace_id: self.ws.clone(),
                    destination_id: d.clone(),
                    event_id: EventId(Uuid::from_u128(base + i as u128)),
                    message_id: Some(MessageId::parse(&format!("ajs-msg-{i}")).unwrap()),
                    status: if retrying {
                        DeliveryStatus::Retrying
                    } else {
                        DeliveryStatus::Delivered
                    },
                    attempts: 1,
                    next_attempt_at: retrying.then(|| at + Duration::minutes(5)),
                    last_http_status: Some(if retrying { 503 } else { 200 }),
                    last_error: None,
                    updated_at: at,
                    expires_at: at + Duration::days(30),
                }
            })
            .collect();
        log.record(&records).await.unwrap();
        records
    }

    async fn delivery_log(&self, destination: &str, query: &str) -> (StatusCode, Value) {
        let path = format!("/admin/v1/destinations/{destination}/delivery-log?{query}");
        let (status, _, v) = self
            .call(Method::GET, &path, Some(&self.viewer), None)
            .await;
        (status, v)
    }

    /// A page of the delivery log the viewer reads, answered 200.
    async fn delivery_page(&self, destination: &str, query: &str) -> Value {
        let (status, page) = self.delivery_log(destination, query).await;
        assert_eq!(status, StatusCode::OK, "{query}: {page}");
        page
    }
}

fn message_ids(page: &Value) -> Vec<String> {
    page["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["message_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_delivery_log_pages_past_1000_records_with_a_cursor_newest_first() {
    let app = App::start().await;
    let d = app.destination_with_records(1_005).await;

    let first = app.delivery_page(&d, "limit=1000").await;
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let second = app
        .delivery_page(&d, &format!("limit=1000&cursor={cursor}"))
        .await;

    assert_eq!(first["deliveries"].as_array().unwrap().len(), 1_000);
    assert_eq!(second["deliveries"].as_array().unwrap().len(), 5);
    assert_eq!(second["next_cursor"], Value::Null);
    let mut all = message_ids(&first);
    all.extend(message_ids(&second));
    assert_eq!(
        all.iter().collect::<HashSet<_>>().len(),
        1_005,
        "none repeated"
    );
    // Newest first; among equal timestamps, the later event id first.
    assert_eq!(all[0], "ajs-msg-1004");
    assert_eq!(all[4], "ajs-msg-1000");
    assert_eq!(all[5], "ajs-msg-999");
    assert_eq!(all[1_004], "ajs-msg-0");
}

#[tokio::test]
async fn the_delivery_log_filters_by_status_and_time_and_shows_when_a_retry_is_due() {
    let app = App::start().await;
    let d = app.destination_with_records(30).await;

    let retrying = app.delivery_page(&d, "status=retrying").await;
    assert_eq!(
        message_ids(&retrying),
        [
            "ajs-msg-28",
            "ajs-msg-21",
            "ajs-msg-14",
            "ajs-msg-7",
            "ajs-msg-0"
        ]
    );
    let latest = &retrying["deliveries"][0];
    assert_eq!(latest["status"], "retrying");
    assert_eq!(latest["updated_at"], "2026-03-01T12:00:02Z");
    assert_eq!(latest["next_attempt_at"], "2026-03-01T12:05:02Z");

    let (_, window) = app
        .delivery_log(
            &d,
            "status=delivered,dead&since=2026-03-01T12:00:01Z&until=2026-03-01T12:00:01Z",
        )
        .await;
    let ids = message_ids(&window);
    assert_eq!(
        ids.len(),
        9,
        "second 1 holds records 10 to 19, 14 is retrying: {ids:?}"
    );
    assert_eq!(ids[0], "ajs-msg-19");
    assert!(!ids.contains(&"ajs-msg-14".to_owned()));
    assert!(window["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["status"] == "delivered" && r["next_attempt_at"].is_null()));
}

#[tokio::test]
async fn bad_delivery_log_parameters_are_problems_naming_the_parameter() {
    let app = App::start().await;
    let d = app.destination_with_records(5).await;
    let other = app.destination_with_records(5).await;
    let page = app.delivery_page(&d, "limit=2").await;
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let mut tampered = cursor.clone().into_bytes();
    let i = tampered.len() / 2;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();

    let cases = [
        (d.as_str(), "status=failed".to_owned(), 422, "status"),
        (
            d.as_str(),
            "status=delivered,bounced".to_owned(),
            422,
            "status",
        ),
        (
            d.as_str(),
            "since=2026-03-02T00:00:00Z&until=2026-03-01T00:00:00Z".to_owned(),
            422,
            "since",
        ),
        (d.as_str(), "until=tomorrow".to_owned(), 400, "until"),
        (d.as_str(), "limit=1001".to_owned(), 400, "limit"),
        (d.as_str(), format!("cursor={tampered}"), 422, "cursor"),
        (d.as_str(), "cursor=not-a-cursor".to_owned(), 422, "cursor"),
        (d.as_str(), "cursor=".to_owned(), 400, "cursor"),
        (d.as_str(), "cursor=a.b%2Fc".to_owned(), 400, "cursor"),
        (other.as_str(), format!("cursor={cursor}"), 422, "cursor"),
    ];
    for (dest, query, status, field) in cases {
        let (got, v) = app.delivery_log(dest, &query).await;
        assert_eq!(got.as_u16(), status, "{query}: {v}");
        assert_eq!(v["field"], field, "{query}: {v}");
    }
    // The untouched cursor still works.
    let v = app
        .delivery_page(&d, &format!("limit=2&cursor={cursor}"))
        .await;
    assert_eq!(message_ids(&v), ["ajs-msg-2", "ajs-msg-1"]);
}
