//! Erasure cases of the delivery queue (data-subject requests).

use super::*;

fn events(body: &[u8]) -> Vec<EventId> {
    let b = QueueBody::decode(body).unwrap();
    b.items.iter().map(|i| i.event_id).collect()
}

pub async fn purges_a_subjects_items_from_the_dead_letters(h: &dyn QueueHarness) {
    let q = h.queue();
    let ws = WorkspaceId::new(Region::Us, &unique());
    let dest = DestinationId::new(&unique());
    let (a1, a2, b) = (
        EventId(Uuid::now_v7()),
        EventId(Uuid::now_v7()),
        EventId(Uuid::now_v7()),
    );
    let mixed = Outgoing {
        kind: DestinationKind::MetaCapi,
        destination_id: dest.clone(),
        workspace_id: ws.clone(),
        body: queue_body(&ws, &dest, &[a1, b]),
        delay: Duration::ZERO,
        shared: None,
    };
    let only_a = Outgoing {
        body: queue_body(&ws, &dest, &[a2]),
        ..mixed.clone()
    };
    q.enqueue_dead(&[mixed, only_a], "refused").await.unwrap();
    let removed = q
        .purge_events(DestinationKind::MetaCapi, &ws, &[a1, a2])
        .await
        .unwrap();
    assert_eq!(removed, 2);
    let dead: Vec<_> = h
        .dead_letters(DestinationKind::MetaCapi, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.workspace_id == ws)
        .collect();
    assert_eq!(dead.len(), 1, "the emptied message is gone");
    assert_eq!(events(&dead[0].body), vec![b]);
    assert_eq!(dead[0].destination_id, dest);
    assert_eq!(
        q.purge_events(DestinationKind::MetaCapi, &ws, &[a1, a2])
            .await
            .unwrap(),
        0
    );
}
