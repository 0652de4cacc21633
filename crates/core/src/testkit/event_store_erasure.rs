//! Erasure cases of the event store (data-subject requests).

use super::*;

fn ids(events: &[crate::dsr::EventFootprint]) -> Vec<EventId> {
    events.iter().map(|f| f.event.event_id).collect()
}

pub async fn finds_a_subjects_footprint_across_identifiers_in_pages(s: &dyn InspectableEventStore) {
    let ws = WorkspaceId::new(Region::Us, &unique());
    let e1 = new_event(&ws, "fp-1", &["s1"], T0);
    let e2 = new_event(&ws, "fp-2", &["s1", "s2"], T0);
    let e3 = new_event(&ws, "fp-3", &["s2"], T0);
    let other = new_event(&ws, "fp-4", &["s3"], T0);
    s.record(&[e1.clone(), e2.clone(), e3.clone(), other], T0)
        .await
        .unwrap();
    let subjects = vec!["s1".to_owned(), "s2".to_owned()];
    let mut want = vec![e1.event.event_id, e2.event.event_id, e3.event.event_id];
    want.sort();
    let all = s
        .subject_footprint(&ws, &subjects, Page::first(10), T0)
        .await
        .unwrap();
    assert_eq!(ids(&all), want, "each event once, by event id");
    let both = all
        .iter()
        .find(|f| f.event.event_id == e2.event.event_id)
        .unwrap();
    assert_eq!(both.event, e2.event);
    assert_eq!(both.subject_index_entries, 2);
    assert!(both.operational);
    assert!(both.dedup_marker);
    let page1 = s
        .subject_footprint(&ws, &subjects, Page::first(2), T0)
        .await
        .unwrap();
    assert_eq!(ids(&page1), want[..2]);
    let page2 = s
        .subject_footprint(&ws, &subjects, Page::after(want[1], 2), T0)
        .await
        .unwrap();
    assert_eq!(ids(&page2), want[2..]);
    let other_ws = WorkspaceId::new(Region::Us, &unique());
    assert!(s
        .subject_footprint(&other_ws, &subjects, Page::first(10), T0)
        .await
        .unwrap()
        .is_empty());
}

pub async fn the_footprint_includes_expired_events(s: &dyn InspectableEventStore) {
    let ws = WorkspaceId::new(Region::Us, &unique());
    let long_ago = T0 - time::Duration::days(400);
    let old = new_event(&ws, "fp-old", &["s-old"], long_ago);
    s.record(std::slice::from_ref(&old), long_ago)
        .await
        .unwrap();
    let found = s
        .subject_footprint(&ws, &["s-old".to_owned()], Page::first(10), T0)
        .await
        .unwrap();
    assert_eq!(ids(&found), vec![old.event.event_id]);
}

pub async fn erasing_deletes_events_with_their_index_entries_operational_records_and_dedup_markers(
    s: &dyn InspectableEventStore,
) {
    let ws = WorkspaceId::new(Region::Us, &unique());
    let gone = new_event(&ws, "er-1", &["s1", "s2"], T0);
    let kept = new_event(&ws, "er-2", &["s1"], T0);
    s.record(&[gone.clone(), kept.clone()], T0).await.unwrap();
    let id = gone.event.event_id;
    let rows = s.erase(&ws, &[id]).await.unwrap();
    assert_eq!(
        rows,
        ErasedRows {
            events: 1,
            subject_index_entries: 2,
            operational_records: 1,
            dedup_markers: 1,
        }
    );
    assert!(s.event(&ws, &id, T0).await.unwrap().is_none());
    assert!(s.operational(&ws, &id, T0).await.unwrap().is_none());
    assert!(s
        .events_by_subject(&ws, "s2", Page::first(10), T0)
        .await
        .unwrap()
        .is_empty());
    let left = s
        .subject_footprint(
            &ws,
            &["s1".to_owned(), "s2".to_owned()],
            Page::first(10),
            T0,
        )
        .await
        .unwrap();
    assert_eq!(ids(&left), vec![kept.event.event_id]);
    let again = new_event(&ws, "er-1", &[], T0);
    assert_eq!(
        s.record(&[again], T0).await.unwrap(),
        vec![true],
        "the dedup marker went too"
    );
    assert_eq!(
        s.erase(&ws, &[id]).await.unwrap(),
        ErasedRows::default(),
        "erasing again finds nothing"
    );
}

pub async fn erasing_leaves_other_workspaces_alone(s: &dyn InspectableEventStore) {
    let a = WorkspaceId::new(Region::Us, &unique());
    let b = WorkspaceId::new(Region::Us, &unique());
    let ea = new_event(&a, "same", &["s"], T0);
    s.record(std::slice::from_ref(&ea), T0).await.unwrap();
    assert_eq!(
        s.erase(&b, &[ea.event.event_id]).await.unwrap(),
        ErasedRows::default()
    );
    assert!(s.event(&a, &ea.event.event_id, T0).await.unwrap().is_some());
}
