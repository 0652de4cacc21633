use super::*;

fn entry(ws: &WorkspaceId, actor: &str, action: &str) -> NewAuditEntry {
    NewAuditEntry {
        workspace_id: ws.clone(),
        actor: actor.into(),
        action: action.into(),
        target: "dst_1".into(),
        summary: json!({"name": "Meta"}),
    }
}

/// Verifies the chain of `ws` and asserts that it is valid (`when`: at which point of the
/// case); the report, for further checks.
pub(super) async fn assert_chain_verifies(
    l: &dyn AuditLog,
    ws: &WorkspaceId,
    when: &str,
) -> crate::audit::Verification {
    let v = crate::audit::verify(l, ws).await.unwrap();
    assert!(v.valid, "{when}: {v:?}");
    v
}

/// Appends an entry of `actor` doing `action` at `at`.
async fn append(
    l: &dyn AuditLog,
    ws: &WorkspaceId,
    actor: &str,
    action: &str,
    at: OffsetDateTime,
) -> crate::audit::AuditEntry {
    l.append(entry(ws, actor, action), at).await.unwrap()
}

/// The entries of `ws` selected by a filter of 10 entries at most that `narrow` narrows.
async fn list(
    l: &dyn AuditLog,
    ws: &WorkspaceId,
    narrow: impl FnOnce(&mut AuditFilter),
) -> Vec<crate::audit::AuditEntry> {
    let mut filter = AuditFilter {
        limit: 10,
        ..Default::default()
    };
    narrow(&mut filter);
    l.list(ws, &filter, T0).await.unwrap()
}

pub async fn appends_a_gapless_chain_that_verifies(l: &dyn AuditLog) {
    let ws = WorkspaceId::new(Region::Eu, &unique());
    for i in 0..5 {
        let at = T0 + time::Duration::seconds(i);
        let e = append(l, &ws, "user:usr_1", "destination.update", at).await;
        assert_eq!(e.seq, i as u64 + 2, "seq 1 is the genesis entry");
    }
    let all = list(l, &ws, |f| f.limit = 100).await;
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![2, 3, 4, 5, 6],
        "seq 1, the genesis entry, is not a mutation"
    );
    let stored = l.stored(&ws, 0, 100).await.unwrap();
    assert_eq!(stored[0].entry.action, crate::audit::GENESIS_ACTION);
    let v = assert_chain_verifies(l, &ws, "five appends").await;
    assert!(v.keyed);
    assert_eq!(v.entries_checked, 6, "the genesis entry and five");
}

pub async fn concurrent_appends_never_share_a_sequence_number(l: &dyn AuditLog) {
    let ws = WorkspaceId::new(Region::Us, &unique());
    let mut seqs = Vec::new();
    let futures: Vec<_> = (0..20)
        .map(|_| l.append(entry(&ws, "svc:k", "api_key.create"), T0))
        .collect();
    for f in futures {
        seqs.push(f.await.unwrap().seq);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (2..=21).collect::<Vec<_>>());
    let all = list(l, &ws, |f| f.limit = 100).await;
    assert_eq!(all.len(), 20);
    assert_chain_verifies(l, &ws, "concurrent appends").await;
}

pub async fn lists_by_actor_action_time_and_page(l: &dyn AuditLog) {
    let ws = WorkspaceId::new(Region::Us, &unique());
    let hour = time::Duration::hours(1);
    append(l, &ws, "user:a", "user.invite", T0).await;
    append(l, &ws, "user:b", "user.invite", T0 + hour).await;
    append(l, &ws, "user:a", "api_key.revoke", T0 + 2 * hour).await;
    let actor_a = list(l, &ws, |f| f.actor = Some("user:a".into())).await;
    assert_eq!(actor_a.len(), 2);
    let invites = list(l, &ws, |f| f.action = Some("user.invite".into())).await;
    assert_eq!(invites.len(), 2);
    let late = list(l, &ws, |f| f.since = Some(T0 + time::Duration::minutes(30))).await;
    assert_eq!(late.len(), 2);
    let page = list(l, &ws, |f| (f.after, f.limit) = (Some(1), 1)).await;
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].seq, 2);
    let other = WorkspaceId::new(Region::Us, &unique());
    assert!(list(l, &other, |_| ()).await.is_empty());
}

/// Anchored at both ends: the head record follows every append, in the same write.
pub async fn keeps_the_head_with_the_last_entry(l: &dyn AuditLog) {
    let ws = WorkspaceId::new(Region::Eu, &unique());
    assert!(l.head(&ws).await.unwrap().is_none());
    append(l, &ws, "user:a", "user.invite", T0).await;
    let last = append(l, &ws, "user:a", "user.remove", T0).await;
    let head = l.head(&ws).await.unwrap().unwrap();
    assert_eq!((head.seq, head.hash.as_str()), (3, last.hash.as_str()));
    assert_eq!(head.genesis_seq, 1);
    let stored = l.stored(&ws, 0, 10).await.unwrap();
    assert_eq!(stored.len(), 3);
    assert!(stored.iter().all(|s| s.index_mismatch.is_none()));
    assert_eq!(l.stored(&ws, 2, 10).await.unwrap()[0].entry.seq, 3);
}

/// Retention removes nothing younger than a year, whatever the store's expiry says, and
/// leaves a chain that verifies from its checkpoint.
pub async fn retires_only_entries_older_than_a_year(l: &dyn AuditLog) {
    let ws = WorkspaceId::new(Region::Us, &unique());
    let day100 = T0 + time::Duration::days(100);
    append(l, &ws, "user:a", "user.invite", T0).await;
    append(l, &ws, "user:a", "user.remove", day100).await;
    let day300 = T0 + time::Duration::days(300);
    assert_eq!(l.retire(&ws, day300).await.unwrap(), 0);
    assert!(l.head(&ws).await.unwrap().unwrap().checkpoint.is_none());
    let day400 = T0 + time::Duration::days(400);
    assert_eq!(l.retire(&ws, day400).await.unwrap(), 2);
    assert_eq!(l.retire(&ws, day400).await.unwrap(), 0);
    let v = assert_chain_verifies(l, &ws, "after retirement").await;
    assert_eq!(v.entries_checked, 1);
}
