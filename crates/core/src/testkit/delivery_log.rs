use super::*;

pub fn delivery_record(
    ws: &WorkspaceId,
    d: &DestinationId,
    e: EventId,
    status: DeliveryStatus,
    at: OffsetDateTime,
) -> DeliveryRecord {
    DeliveryRecord {
        workspace_id: ws.clone(),
        destination_id: d.clone(),
        event_id: e,
        message_id: Some(MessageId::parse(&format!("msg-{}", e.0.simple())).expect("a message id")),
        status,
        attempts: 1,
        next_attempt_at: None,
        last_http_status: Some(200),
        last_error: None,
        updated_at: at,
        expires_at: at + Retention::delivery_log(),
    }
}

/// `N` new event ids.
pub(super) fn event_ids<const N: usize>() -> [EventId; N] {
    std::array::from_fn(|_| EventId(Uuid::now_v7()))
}

/// A new workspace and two new destinations.
pub(super) fn ids() -> (WorkspaceId, DestinationId, DestinationId) {
    (
        WorkspaceId::new(Region::Us, &unique()),
        DestinationId::new(&unique()),
        DestinationId::new(&unique()),
    )
}

pub async fn answers_which_events_were_delivered_to_a_destination(l: &dyn DeliveryLog) {
    let (ws, d1, d2) = ids();
    let [a, b, c] = event_ids();
    l.record(&[
        delivery_record(&ws, &d1, a, DeliveryStatus::Delivered, T0),
        delivery_record(&ws, &d1, b, DeliveryStatus::Retrying, T0),
    ])
    .await
    .unwrap();
    l.record(&[delivery_record(&ws, &d2, c, DeliveryStatus::Delivered, T0)])
        .await
        .unwrap();
    let got = l
        .delivered(LogOf::new(&ws, &d1), &[a, b, c], T0)
        .await
        .unwrap();
    assert_eq!(got, vec![a]);
}

pub async fn overwrites_a_record_with_its_latest_outcome(l: &dyn DeliveryLog) {
    let (ws, d1, _) = ids();
    let e = EventId(Uuid::now_v7());
    let mut r = delivery_record(&ws, &d1, e, DeliveryStatus::Retrying, T0);
    r.last_http_status = Some(503);
    l.record(std::slice::from_ref(&r)).await.unwrap();
    r.status = DeliveryStatus::Delivered;
    r.attempts = 2;
    r.last_http_status = Some(200);
    l.record(std::slice::from_ref(&r)).await.unwrap();
    let back = l.for_event(&ws, &e, T0).await.unwrap();
    assert_eq!(back, vec![r]);
}

pub async fn lists_an_events_records_across_destinations(l: &dyn DeliveryLog) {
    let (ws, d1, d2) = ids();
    let e = EventId(Uuid::now_v7());
    l.record(&[delivery_record(&ws, &d1, e, DeliveryStatus::Delivered, T0)])
        .await
        .unwrap();
    l.record(&[delivery_record(
        &ws,
        &d2,
        e,
        DeliveryStatus::Dropped("older than 7 days".into()),
        T0,
    )])
    .await
    .unwrap();
    let mut back = l.for_event(&ws, &e, T0).await.unwrap();
    back.sort_by(|a, b| a.destination_id.cmp(&b.destination_id));
    assert_eq!(back.len(), 2);
    let other_ws = WorkspaceId::new(Region::Us, &unique());
    assert!(l.for_event(&other_ws, &e, T0).await.unwrap().is_empty());
}

pub async fn lists_a_destinations_latest_records_first(l: &dyn DeliveryLog) {
    let (ws, d1, _) = ids();
    let older = delivery_record(&ws, &d1, EventId(Uuid::now_v7()), DeliveryStatus::Dead, T0);
    let newer = delivery_record(
        &ws,
        &d1,
        EventId(Uuid::now_v7()),
        DeliveryStatus::Delivered,
        T0 + time::Duration::minutes(1),
    );
    l.record(&[older.clone(), newer.clone()]).await.unwrap();
    let now = T0 + time::Duration::minutes(2);
    let back = l
        .for_destination(LogOf::new(&ws, &d1), 10, now)
        .await
        .unwrap();
    assert_eq!(back, vec![newer.clone(), older]);
    assert_eq!(
        l.for_destination(LogOf::new(&ws, &d1), 1, now)
            .await
            .unwrap(),
        vec![newer]
    );
}

pub async fn forgets_records_after_30_days(l: &dyn DeliveryLog) {
    let (ws, d1, _) = ids();
    let [e] = event_ids();
    l.record(&[delivery_record(&ws, &d1, e, DeliveryStatus::Delivered, T0)])
        .await
        .unwrap();
    let day31 = T0 + time::Duration::days(31);
    assert!(l.for_event(&ws, &e, day31).await.unwrap().is_empty());
    assert!(l
        .delivered(LogOf::new(&ws, &d1), &[e], day31)
        .await
        .unwrap()
        .is_empty());
    assert!(l
        .for_destination(LogOf::new(&ws, &d1), 10, day31)
        .await
        .unwrap()
        .is_empty());
}
