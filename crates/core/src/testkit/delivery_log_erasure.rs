//! Erasure cases of the delivery log (data-subject requests).

use super::*;

pub async fn lists_and_erases_every_record_of_given_events(l: &dyn DeliveryLog) {
    let (ws, d1, d2) = super::delivery_log::ids();
    let [a, b, c] = super::delivery_log::event_ids();
    let long_ago = T0 - time::Duration::days(60);
    l.record(&[
        delivery_record(&ws, &d1, a, DeliveryStatus::Delivered, T0),
        delivery_record(&ws, &d1, b, DeliveryStatus::Dead, long_ago),
        delivery_record(&ws, &d1, c, DeliveryStatus::Delivered, T0),
        delivery_record(&ws, &d2, a, DeliveryStatus::Delivered, T0),
    ])
    .await
    .unwrap();
    let mut found = l.for_events(&ws, &[a, b]).await.unwrap();
    found.sort_by(|x, y| (x.event_id, &x.destination_id).cmp(&(y.event_id, &y.destination_id)));
    assert_eq!(found.len(), 3, "expired records too: {found:?}");
    assert!(found.iter().all(|r| r.event_id == a || r.event_id == b));
    let other_ws = WorkspaceId::new(Region::Us, &unique());
    assert_eq!(l.erase_events(&other_ws, &[a, b]).await.unwrap(), 0);
    assert_eq!(l.erase_events(&ws, &[a, b]).await.unwrap(), 3);
    assert!(l.for_events(&ws, &[a, b]).await.unwrap().is_empty());
    assert_eq!(l.for_event(&ws, &c, T0).await.unwrap().len(), 1);
    assert_eq!(l.erase_events(&ws, &[a, b]).await.unwrap(), 0);
}
