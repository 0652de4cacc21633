//! Subject-day items: written without `subject` index keys, found by key day by day over the
//! horizon, and (items an earlier version wrote) through the index beyond it.

use super::*;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::BTreeSet;
use tracklayer_core::ports::{EventEraser, NewEvent};

/// Records one event of `subject` received at `at` (its id from that millisecond).
async fn record_at(s: &DynamoEventStore, ws: &WorkspaceId, subject: &str, at: OffsetDateTime) {
    let mut e = testkit::new_event(ws, &format!("m-{}", unique()), &[subject], at);
    let id = same_millisecond_ids_at(at, 1)[0];
    e.event.event_id = id;
    if let Some(op) = e.operational.as_mut() {
        op.event_id = id;
    }
    assert_eq!(s.record(&[e], at).await.unwrap(), vec![true]);
}

/// The subject-day items of the table (sort key `S`).
async fn subject_days(
    c: &AwsClients,
    table: &str,
) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    let mut days = table_items(c, table).await;
    days.retain(|i| i["sk"].as_s().is_ok_and(|sk| sk == "S"));
    days
}

/// Each subject-day costs its item's write units and nothing for an index entry; an erasure
/// still finds every day of the subject, expired or not: those within the horizon by key,
/// and an older one that an earlier version wrote with the index keys (and that TTL has not
/// deleted yet) through the index. Without the lookup by key the first two would be missed;
/// without the index query, the third.
#[tokio::test]
async fn a_subjects_days_are_found_by_key_within_the_horizon_and_by_the_old_index_beyond() {
    let c = clients().await;
    let table = fresh_table(&c, Table::Events).await;
    let s = DynamoEventStore::new(c.dynamodb.clone(), table.clone());
    let ws = ws();
    let now = OffsetDateTime::now_utc();
    let days_ago = |d: i64| now - time::Duration::days(d);
    // Today's, one expired 400 days ago (within the horizon of 365 + 90 days), one of 600
    // days ago (beyond it).
    for at in [now, days_ago(400), days_ago(600)] {
        record_at(&s, &ws, "shopper", at).await;
    }
    let days = subject_days(&c, &table).await;
    assert_eq!(days.len(), 3);
    assert!(
        days.iter().all(|d| !d.contains_key("subject_pk")),
        "a subject-day written now carries no index keys: {days:?}"
    );
    let found = |s: DynamoEventStore, ws: WorkspaceId| async move {
        s.subject_footprint(&ws, &["shopper".to_owned()], Page::first(10), now)
            .await
            .unwrap()
            .len()
    };
    // The day 600 days back is beyond the horizon and has no index entry.
    assert_eq!(found(s.clone(), ws.clone()).await, 2);

    // As an earlier version wrote it: the index keys (subject, day) on the subject-day.
    let d = days_ago(600).date();
    let old_day = format!("{:04}{:02}{:02}", d.year(), u8::from(d.month()), d.day());
    let old_pk = format!("W#{ws}#S#shopper#{old_day}");
    let old = days
        .iter()
        .find(|d| d["pk"].as_s().is_ok_and(|pk| *pk == old_pk))
        .expect("the day of 600 days ago");
    c.dynamodb
        .update_item()
        .table_name(&table)
        .key("pk", old["pk"].clone())
        .key("sk", old["sk"].clone())
        .update_expression("SET subject_pk = :spk, subject_sk = :ssk")
        .expression_attribute_values(":spk", AttributeValue::S(format!("W#{ws}#S#shopper")))
        .expression_attribute_values(":ssk", AttributeValue::S(old_day))
        .send()
        .await
        .unwrap();
    assert_eq!(found(s.clone(), ws.clone()).await, 3);

    // Erasing them all leaves no subject-day behind, the indexed one included.
    let ids: Vec<EventId> = s
        .subject_footprint(&ws, &["shopper".to_owned()], Page::first(10), now)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.event.event_id)
        .collect();
    s.erase(&ws, &ids).await.unwrap();
    assert_eq!(subject_days(&c, &table).await.len(), 0);
    assert_eq!(found(s, ws).await, 0);
}

/// A message stored before 2026-12-08 has its dedup entry on its first subject's day, where
/// that version put every entry; since then an entry goes to the subject a hash of the
/// message id picks. A retry after the upgrade is still a duplicate, the footprint still
/// counts the entry, and an erasure removes it. Without reading the first subject's days
/// the retry would be stored and delivered a second time.
#[tokio::test]
async fn a_message_stored_with_its_entry_on_its_first_subject_is_still_a_duplicate() {
    let c = clients().await;
    let table = fresh_table(&c, Table::Events).await;
    let s = DynamoEventStore::new(c.dynamodb.clone(), table.clone());
    let ws = ws();
    let now = OffsetDateTime::now_utc();
    let subjects = ["s1-phone", "s2-email", "s3-user", "s4-anon"];
    let first_pk = |day: &str| format!("W#{ws}#S#{}#{day}", subjects[0]);
    let d = now.date();
    let today = format!("{:04}{:02}{:02}", d.year(), u8::from(d.month()), d.day());
    // A message whose entry the current version puts elsewhere than on the first subject.
    let (message, stored, holder, fp) = 'found: {
        for i in 0..64 {
            let message = format!("m-{i}-{}", unique());
            let e = testkit::new_event(&ws, &message, &subjects, now);
            let stored = e.event.event_id;
            assert_eq!(s.record(&[e], now).await.unwrap(), vec![true]);
            let days = subject_days(&c, &table).await;
            let with_entry: Vec<_> = days.iter().filter(|d| d.contains_key("fps")).collect();
            assert_eq!(
                with_entry.len(),
                1,
                "one entry, on one subject-day: {days:?}"
            );
            let holder = with_entry[0]["pk"].as_s().unwrap().clone();
            let fp = with_entry[0]["fps"].as_bs().unwrap()[0].clone();
            if holder != first_pk(&today) {
                break 'found (message, stored, holder, fp);
            }
            s.erase(&ws, &[stored]).await.unwrap();
        }
        panic!("every message's entry went to the first subject");
    };
    // As the earlier version wrote it: the entry on the first subject's day instead.
    let update = |pk: String, expression: &'static str| {
        c.dynamodb
            .update_item()
            .table_name(&table)
            .key("pk", AttributeValue::S(pk))
            .key("sk", AttributeValue::S("S".into()))
            .update_expression(expression)
            .expression_attribute_values(":e", AttributeValue::Bs(vec![fp.clone()]))
            .send()
    };
    update(holder, "DELETE fps :e").await.unwrap();
    update(first_pk(&today), "ADD fps :e").await.unwrap();

    let later = now + time::Duration::minutes(5);
    let retry = testkit::new_event(&ws, &message, &subjects, later);
    assert_eq!(s.record(&[retry], later).await.unwrap(), vec![false]);

    let footprint = s
        .subject_footprint(&ws, &[subjects[2].to_owned()], Page::first(10), later)
        .await
        .unwrap();
    assert_eq!(footprint.len(), 1);
    assert_eq!(footprint[0].event.event_id, stored);
    assert!(
        footprint[0].dedup_marker,
        "the entry on the first subject counts"
    );
    let rows = s.erase(&ws, &[stored]).await.unwrap();
    assert_eq!(rows.dedup_markers, 1);
    assert!(
        subject_days(&c, &table).await.is_empty(),
        "no subject-day is left"
    );
}

/// A subject in many requests a day (a shop's placeholder phone, a bot's anonymous id): its
/// pack references spread over items of about the cap each, so no update is billed for a
/// growing item and none nears DynamoDB's 400 KB item limit (reached after about 11,000
/// requests a day, when every later request with the subject failed). Requests one after the
/// other and at once: no reference is lost, every event is found, every retry is still a
/// duplicate, and an erasure leaves nothing of the day.
#[tokio::test]
async fn a_subject_in_many_requests_a_day_spreads_its_references_over_bounded_items() {
    let c = clients().await;
    let table = fresh_table(&c, Table::Events).await;
    let cap = 3;
    let s = DynamoEventStore::new(c.dynamodb.clone(), table.clone()).with_subject_day_cap(cap);
    let ws = ws();
    let now = OffsetDateTime::now_utc();
    let events: Vec<NewEvent> = (0..22)
        .map(|i| {
            let own = format!("own-{i}");
            testkit::new_event(&ws, &format!("m-{i}"), &["hot", &own], now)
        })
        .collect();
    for e in &events[..10] {
        assert_eq!(
            s.record(std::slice::from_ref(e), now).await.unwrap(),
            [true]
        );
    }
    let at_once = events[10..]
        .iter()
        .map(|e| s.record(std::slice::from_ref(e), now));
    for stored in futures_util::future::join_all(at_once).await {
        assert_eq!(stored.unwrap(), [true]);
    }

    let d = now.date();
    let today = format!("{:04}{:02}{:02}", d.year(), u8::from(d.month()), d.day());
    let hot_pk = format!("W#{ws}#S#hot#{today}");
    let hot_items = || async {
        let mut items = table_items(&c, &table).await;
        items.retain(|i| i["pk"].as_s().is_ok_and(|pk| *pk == hot_pk));
        items
    };
    let items = hot_items().await;
    let refs = |i: &std::collections::HashMap<String, AttributeValue>| {
        i.get("packs")
            .and_then(|p| p.as_ss().ok())
            .cloned()
            .unwrap_or_default()
    };
    let all: BTreeSet<String> = items.iter().flat_map(refs).collect();
    assert_eq!(all.len(), 22, "every request's pack is indexed: {items:?}");
    // At most the cap, and one request's more in an item opened while others filled it.
    assert!(items.iter().all(|i| refs(i).len() <= cap + 1), "{items:?}");
    assert!(items.len() >= 22 / (cap + 1), "{} items", items.len());
    let overflow = items
        .iter()
        .filter(|i| i["sk"].as_s().is_ok_and(|sk| sk.starts_with("S#")))
        .count();
    assert_eq!(
        items.len(),
        overflow + 1,
        "one base item, the rest overflow"
    );

    let footprint = || async {
        s.subject_footprint(&ws, &["hot".to_owned()], Page::first(100), now)
            .await
            .unwrap()
    };
    let found = footprint().await;
    assert_eq!(found.len(), 22);
    assert!(found.iter().all(|f| f.dedup_marker));
    for (i, e) in events.iter().enumerate() {
        // Sent again: the same message and subjects, prepared again (a new event id).
        let again = testkit::new_event(&ws, &format!("m-{i}"), &["hot", &format!("own-{i}")], now);
        assert_ne!(again.event.event_id, e.event.event_id);
        assert_eq!(
            s.record(std::slice::from_ref(&again), now).await.unwrap(),
            [false],
            "a retry is a duplicate"
        );
    }

    // Forgetting one event (a record undone) and erasing the other subject of two more
    // take their references out of whichever item holds them.
    let undone = &events[7].event;
    s.forget(&ws, &[(undone.event_id, undone.message_id.clone())])
        .await
        .unwrap();
    let left: BTreeSet<String> = hot_items().await.iter().flat_map(refs).collect();
    assert_eq!(left.len(), 21, "{left:?}");
    let erased: Vec<EventId> = [5, 15].map(|i| events[i].event.event_id).to_vec();
    s.erase(&ws, &erased).await.unwrap();
    let left: BTreeSet<String> = hot_items().await.iter().flat_map(refs).collect();
    assert_eq!(left.len(), 19, "{left:?}");
    let found = footprint().await;
    assert_eq!(found.len(), 19);
    for gone in [7, 5, 15] {
        let id = events[gone].event.event_id;
        assert!(found.iter().all(|f| f.event.event_id != id));
    }

    let ids: Vec<EventId> = found.iter().map(|f| f.event.event_id).collect();
    s.erase(&ws, &ids).await.unwrap();
    assert_eq!(hot_items().await, Vec::new());
    assert_eq!(subject_days(&c, &table).await.len(), 0);
    assert!(footprint().await.is_empty());
    assert_eq!(table_items(&c, &table).await, Vec::new(), "no marker left");
}

/// Once a subject-day is full, its dedup entries (12 bytes per event) would grow the base
/// item without bound: a message of a full day takes a per-message marker instead. A retry
/// the next day (whose day is not full) still finds it, the footprint counts it, and an
/// erasure removes every marker. Without the marker check on a full yesterday, the retries
/// of the last three messages would be stored again.
#[tokio::test]
async fn a_message_of_a_full_day_takes_a_marker_that_a_retry_the_next_day_finds() {
    let c = clients().await;
    let table = fresh_table(&c, Table::Events).await;
    let s = DynamoEventStore::new(c.dynamodb.clone(), table.clone()).with_subject_day_cap(2);
    let ws = ws();
    let now = OffsetDateTime::now_utc();
    // A minute before today began: yesterday, and within the 24-hour window all today.
    let yesterday = now.replace_time(time::Time::MIDNIGHT) - time::Duration::minutes(1);
    let event = |i: usize, at| testkit::new_event(&ws, &format!("m-{i}"), &["solo"], at);
    for i in 0..5 {
        let stored = s.record(&[event(i, yesterday)], yesterday).await.unwrap();
        assert_eq!(stored, [true]);
    }
    let items = table_items(&c, &table).await;
    let base = items
        .iter()
        .find(|i| i["sk"].as_s().is_ok_and(|sk| sk == "S"))
        .expect("yesterday's base item");
    assert_eq!(
        base["fps"].as_bs().unwrap().len(),
        2,
        "entries until it filled"
    );
    let markers = items
        .iter()
        .filter(|i| i["sk"].as_s().is_ok_and(|sk| sk == "D"))
        .count();
    assert_eq!(markers, 3, "markers after it filled: {items:?}");

    for i in 0..5 {
        let again = s.record(&[event(i, now)], now).await.unwrap();
        assert_eq!(again, [false], "message {i} sent again today");
    }
    assert_eq!(s.record(&[event(5, now)], now).await.unwrap(), [true]);

    let found = s
        .subject_footprint(&ws, &["solo".to_owned()], Page::first(100), now)
        .await
        .unwrap();
    assert_eq!(found.len(), 6);
    assert!(found.iter().all(|f| f.dedup_marker), "{found:?}");
    let ids: Vec<EventId> = found.iter().map(|f| f.event.event_id).collect();
    let rows = s.erase(&ws, &ids).await.unwrap();
    assert_eq!(rows.events, 6);
    // Yesterday's 2 entries and 3 markers; today's message has an entry and, since its
    // subject's yesterday was full, a marker too.
    assert_eq!(rows.dedup_markers, 7);
    assert_eq!(table_items(&c, &table).await, Vec::new());
}
