use super::*;

pub async fn records_new_events_and_reads_them_back(s: &dyn InspectableEventStore) {
    let ws = WorkspaceId::new(Region::Us, &unique());
    let e = new_event(&ws, "m-1", &["subj-a"], T0);
    assert_eq!(
        s.record(std::slice::from_ref(&e), T0).await.unwrap(),
        vec![true]
    );
    let back = s.event(&ws, &e.event.event_id, T0).await.unwrap().unwrap();
    assert_eq!(back, e.event);
    let op = s
        .operational(&ws, &e.event.event_id, T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(Some(op), e.operational);
}

pub async fn reports_a_repeated_message_id_as_a_duplicate_within_24_hours(
    s: &dyn InspectableEventStore,
) {
    let ws = WorkspaceId::new(Region::Us, &unique());
    let first = new_event(&ws, "m-dup", &[], T0);
    s.record(&[first], T0).await.unwrap();
    let later = T0 + time::Duration::hours(23);
    let again = new_event(&ws, "m-dup", &[], later);
    let fresh = new_event(&ws, "m-new", &[], later);
    let out = s.record(&[again.clone(), fresh], later).await.unwrap();
    assert_eq!(out, vec![false, true]);
    assert!(s
        .event(&ws, &again.event.event_id, later)
        .await
        .unwrap()
        .is_none());
}

/// A client's retry repeats an event's message id and subjects, and may come within the same
/// second (so with the same dedup expiry): beside a new event of the same person or alone, it
/// is a duplicate. (On DynamoDB the dedup entries of `m-1` and `m-3` go to different
/// subject-days of the four, and the retry of `m-2` adds nothing new to its own.)
pub async fn reports_a_retry_in_the_same_second_as_a_duplicate_alone_or_beside_new_events(
    s: &dyn InspectableEventStore,
) {
    // Arrange: one request of a person with four subject values.
    let ws = WorkspaceId::new(Region::Us, &unique());
    let subjects = ["subj-1", "subj-2", "subj-3", "subj-4"];
    let of_the_person = |m: &str| new_event(&ws, m, &subjects, T0);
    let first = [of_the_person("m-1"), of_the_person("m-2")];
    assert_eq!(s.record(&first, T0).await.unwrap(), vec![true, true]);

    // Act: the retry of m-1 beside a new event, then the retry of m-2 alone.
    let beside_new = s
        .record(&[of_the_person("m-1"), of_the_person("m-3")], T0)
        .await
        .unwrap();
    let alone = s.record(&[of_the_person("m-2")], T0).await.unwrap();

    // Assert
    assert_eq!(beside_new, vec![false, true], "m-1 again, beside new m-3");
    assert_eq!(alone, vec![false], "m-2 again, alone");
    let stored = s
        .events_by_subject(&ws, "subj-1", Page::first(10), T0)
        .await
        .unwrap();
    let mut messages: Vec<&str> = stored.iter().map(|e| e.message_id.as_str()).collect();
    messages.sort_unstable();
    assert_eq!(messages, ["m-1", "m-2", "m-3"], "each message once");
}

pub async fn accepts_a_message_id_again_after_the_dedup_window(s: &dyn InspectableEventStore) {
    let ws = WorkspaceId::new(Region::Us, &unique());
    s.record(&[new_event(&ws, "m-old", &[], T0)], T0)
        .await
        .unwrap();
    let later = T0 + time::Duration::hours(25);
    let again = new_event(&ws, "m-old", &[], later);
    assert_eq!(s.record(&[again], later).await.unwrap(), vec![true]);
}

pub async fn keeps_workspaces_apart(s: &dyn InspectableEventStore) {
    let a = WorkspaceId::new(Region::Us, &unique());
    let b = WorkspaceId::new(Region::Us, &unique());
    let ea = new_event(&a, "same-id", &["subj"], T0);
    let eb = new_event(&b, "same-id", &["subj"], T0);
    assert_eq!(
        s.record(std::slice::from_ref(&ea), T0).await.unwrap(),
        vec![true]
    );
    assert_eq!(s.record(&[eb], T0).await.unwrap(), vec![true]);
    assert!(s.event(&b, &ea.event.event_id, T0).await.unwrap().is_none());
    let by_subject = s
        .events_by_subject(&a, "subj", Page::first(10), T0)
        .await
        .unwrap();
    assert_eq!(by_subject.len(), 1);
    assert_eq!(by_subject[0].workspace_id, a);
}

pub async fn finds_a_subjects_events_in_pages(s: &dyn InspectableEventStore) {
    let ws = WorkspaceId::new(Region::Eu, &unique());
    let events: Vec<_> = (0..5)
        .map(|i| new_event(&ws, &format!("m-{i}"), &["subject-x"], T0))
        .collect();
    s.record(&events, T0).await.unwrap();
    s.record(&[new_event(&ws, "other", &["subject-y"], T0)], T0)
        .await
        .unwrap();
    let page1 = s
        .events_by_subject(&ws, "subject-x", Page::first(3), T0)
        .await
        .unwrap();
    assert_eq!(page1.len(), 3);
    let last = page1.last().map(|e| e.event_id);
    let page2 = s
        .events_by_subject(
            &ws,
            "subject-x",
            Page {
                after: last,
                limit: 3,
            },
            T0,
        )
        .await
        .unwrap();
    assert_eq!(page2.len(), 2);
    let mut all: Vec<_> = page1.iter().chain(&page2).map(|e| e.event_id).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 5);
}

pub async fn never_returns_expired_data(s: &dyn InspectableEventStore) {
    let ws = WorkspaceId::new(Region::Us, &unique());
    let e = new_event(&ws, "m-exp", &["subj-exp"], T0);
    s.record(std::slice::from_ref(&e), T0).await.unwrap();
    let id = e.event.event_id;
    let day31 = T0 + time::Duration::days(31);
    assert!(
        s.operational(&ws, &id, day31).await.unwrap().is_none(),
        "IP/UA live 30 days"
    );
    assert!(s.event(&ws, &id, day31).await.unwrap().is_some());
    let day181 = T0 + time::Duration::days(181);
    assert!(
        s.event(&ws, &id, day181).await.unwrap().is_none(),
        "events live 180 days"
    );
    assert!(s
        .events_by_subject(&ws, "subj-exp", Page::first(10), day181)
        .await
        .unwrap()
        .is_empty());
}

pub async fn forgets_events_and_their_dedup_markers(s: &dyn InspectableEventStore) {
    let ws = WorkspaceId::new(Region::Us, &unique());
    let e = new_event(&ws, "m-forget", &["subj-f"], T0);
    s.record(std::slice::from_ref(&e), T0).await.unwrap();
    s.forget(&ws, &[(e.event.event_id, e.event.message_id.clone())])
        .await
        .unwrap();
    assert!(s.event(&ws, &e.event.event_id, T0).await.unwrap().is_none());
    assert!(s
        .operational(&ws, &e.event.event_id, T0)
        .await
        .unwrap()
        .is_none());
    let retry = new_event(&ws, "m-forget", &[], T0);
    assert_eq!(s.record(&[retry], T0).await.unwrap(), vec![true]);
}

pub async fn sweeping_keeps_what_has_not_expired(s: &dyn InspectableEventStore) {
    let ws = WorkspaceId::new(Region::Us, &unique());
    let e = new_event(&ws, "m-sweep", &["subj-s"], T0);
    s.record(std::slice::from_ref(&e), T0).await.unwrap();
    let later = T0 + time::Duration::days(2);
    s.sweep(later).await.unwrap();
    assert!(s
        .event(&ws, &e.event.event_id, later)
        .await
        .unwrap()
        .is_some());
    assert!(s
        .operational(&ws, &e.event.event_id, later)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        s.events_by_subject(&ws, "subj-s", Page::first(10), later)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// What the batched reads are asked for: events of one workspace (`a` with a subject, `b`,
/// `short` whose event and record expire after an hour, `none` without an operational
/// record), one of another workspace (`theirs`), an id never stored, and `a` twice; recorded.
struct SeveralEvents {
    ws: WorkspaceId,
    a: NewEvent,
    b: NewEvent,
    short: NewEvent,
    none: NewEvent,
    theirs: NewEvent,
    asked: Vec<crate::event::EventId>,
}

async fn several_events(s: &dyn InspectableEventStore, tag: &str) -> SeveralEvents {
    let ws = WorkspaceId::new(Region::Us, &unique());
    let other = WorkspaceId::new(Region::Us, &unique());
    let event = |ws: &WorkspaceId, name: &str, subjects: &[&str]| {
        new_event(ws, &format!("m-{tag}-{name}"), subjects, T0)
    };
    let (a, b) = (event(&ws, "a", &["subj-a"]), event(&ws, "b", &[]));
    let mut short = event(&ws, "short", &[]);
    short.event.expires_at = T0 + time::Duration::hours(1);
    short.operational.as_mut().expect("a record").expires_at = T0 + time::Duration::hours(1);
    let mut none = event(&ws, "none", &[]);
    none.operational = None;
    let theirs = event(&other, "theirs", &[]);
    s.record(&[a.clone(), b.clone(), short.clone(), none.clone()], T0)
        .await
        .unwrap();
    s.record(std::slice::from_ref(&theirs), T0).await.unwrap();
    let missing = crate::event::EventId(uuid::Uuid::now_v7());
    let asked = vec![
        b.event.event_id,
        missing,
        a.event.event_id,
        short.event.event_id,
        none.event.event_id,
        theirs.event.event_id,
        a.event.event_id,
    ];
    SeveralEvents {
        ws,
        a,
        b,
        short,
        none,
        theirs,
        asked,
    }
}

pub async fn reads_several_events_at_once_leaving_out_the_missing_the_expired_and_others(
    s: &dyn InspectableEventStore,
) {
    // Arrange
    let SeveralEvents {
        ws,
        a,
        b,
        none,
        asked,
        ..
    } = several_events(s, "batch").await;

    // Act
    let now = T0 + time::Duration::hours(2);
    let mut found = s.events(&ws, &asked, now).await.unwrap();
    let nothing = s.events(&ws, &[], now).await.unwrap();

    // Assert
    found.sort_by_key(|e| e.event_id);
    let mut want: Vec<_> = [a.event, b.event, none.event]
        .into_iter()
        .map(std::sync::Arc::new)
        .collect();
    want.sort_by_key(|e| e.event_id);
    assert_eq!(
        found, want,
        "each stored, unexpired event of the workspace once"
    );
    assert!(nothing.is_empty());
}

/// A batched read after another of the same events (what delivery does for each destination
/// a request was routed to, and what an adapter may answer from events it decoded before)
/// still returns only what is stored, unexpired and the workspace's: an erasure, a forget
/// and an expiry take effect at the next read, and another workspace's read finds nothing.
pub async fn reads_the_same_events_again_only_while_they_are_stored_unexpired_and_the_workspaces(
    s: &dyn InspectableEventStore,
) {
    // Arrange: every event read once, then once more.
    let SeveralEvents {
        ws,
        a,
        b,
        short,
        none,
        theirs,
        asked,
    } = several_events(s, "again").await;
    let ids = |found: Vec<std::sync::Arc<crate::event::StoredEvent>>| {
        let mut ids: Vec<_> = found.iter().map(|e| e.event_id).collect();
        ids.sort();
        ids
    };
    let sorted = |events: &[&NewEvent]| {
        let mut ids: Vec<_> = events.iter().map(|e| e.event.event_id).collect();
        ids.sort();
        ids
    };
    let before_expiry = T0 + time::Duration::minutes(30);
    let first = s.events(&ws, &asked, before_expiry).await.unwrap();
    let again = s.events(&ws, &asked, before_expiry).await.unwrap();
    let mut first_sorted = first.clone();
    first_sorted.sort_by_key(|e| e.event_id);
    let mut again_sorted = again;
    again_sorted.sort_by_key(|e| e.event_id);
    assert_eq!(
        again_sorted, first_sorted,
        "the same events, field for field"
    );
    assert_eq!(ids(first), sorted(&[&a, &b, &short, &none]));

    // Act and assert: another workspace asking for all of them.
    let as_theirs = s
        .events(&theirs.event.workspace_id, &asked, before_expiry)
        .await
        .unwrap();
    assert_eq!(ids(as_theirs), sorted(&[&theirs]), "only its own event");

    // Act and assert: expiry.
    let after_expiry = T0 + time::Duration::hours(2);
    let found = s.events(&ws, &asked, after_expiry).await.unwrap();
    assert_eq!(
        ids(found),
        sorted(&[&a, &b, &none]),
        "the expired one left out"
    );

    // Act and assert: an erasure, then a forgotten write.
    s.erase(&ws, &[a.event.event_id]).await.unwrap();
    let found = s.events(&ws, &asked, before_expiry).await.unwrap();
    assert_eq!(
        ids(found),
        sorted(&[&b, &short, &none]),
        "the erased one left out"
    );
    s.forget(&ws, &[(b.event.event_id, b.event.message_id.clone())])
        .await
        .unwrap();
    let found = s.events(&ws, &asked, before_expiry).await.unwrap();
    assert_eq!(
        ids(found),
        sorted(&[&short, &none]),
        "the forgotten one left out"
    );
}

pub async fn reads_several_operational_records_at_once_leaving_out_the_missing_the_expired_and_others(
    s: &dyn InspectableEventStore,
) {
    // Arrange
    let SeveralEvents {
        ws, a, b, asked, ..
    } = several_events(s, "op").await;

    // Act
    let now = T0 + time::Duration::hours(2);
    let mut found = s.operational_records(&ws, &asked, now).await.unwrap();
    let nothing = s.operational_records(&ws, &[], now).await.unwrap();

    // Assert
    found.sort_by_key(|o| o.event_id);
    let mut want = vec![a.operational.unwrap(), b.operational.unwrap()];
    want.sort_by_key(|o| o.event_id);
    assert_eq!(
        found, want,
        "each unexpired record of the workspace's events asked for, once"
    );
    assert!(nothing.is_empty());
}
