use super::*;

/// A pending erasure request of `ws`, submitted at `at`.
pub fn dsr_request(ws: &WorkspaceId, kind: DsrKind, at: OffsetDateTime) -> DsrRequest {
    DsrRequest {
        id: DsrId::new(Uuid::now_v7()),
        workspace_id: ws.clone(),
        kind,
        status: DsrStatus::Pending,
        reference: Some("TICKET-1".into()),
        identifiers: vec!["email".into()],
        subjects: vec![crate::identity::sha256_hex(&unique())],
        submitted_by: "user:usr_contract".into(),
        submitted_at: at,
        due_at: at + time::Duration::days(DsrRequest::DUE_DAYS),
        updated_at: at,
        progress: Default::default(),
        receipt: None,
        reminder_sent: false,
        export_tokens: Vec::new(),
    }
}

pub async fn creates_reads_and_updates_a_request(s: &dyn DsrStore) {
    let ws = WorkspaceId::new(Region::Eu, &unique());
    let mut r = dsr_request(&ws, DsrKind::Erasure, T0);
    s.create_request(&r).await.unwrap();
    assert!(matches!(
        s.create_request(&r).await.unwrap_err(),
        StoreError::Conflict(_)
    ));
    assert_eq!(s.request(&ws, &r.id).await.unwrap(), Some(r.clone()));
    let other_ws = WorkspaceId::new(Region::Eu, &unique());
    assert_eq!(s.request(&other_ws, &r.id).await.unwrap(), None);
    r.status = DsrStatus::Processing;
    r.progress.pages = 3;
    r.progress.cursor = Some(EventId(Uuid::now_v7()));
    r.updated_at = T0 + time::Duration::minutes(1);
    s.update_request(&r).await.unwrap();
    assert_eq!(s.request(&ws, &r.id).await.unwrap(), Some(r.clone()));
    let missing = dsr_request(&ws, DsrKind::Access, T0);
    assert!(matches!(
        s.update_request(&missing).await.unwrap_err(),
        StoreError::NotFound(_)
    ));
}

pub async fn lists_a_workspaces_requests_newest_first(s: &dyn DsrStore) {
    let ws = WorkspaceId::new(Region::Us, &unique());
    let older = dsr_request(&ws, DsrKind::Erasure, T0);
    let newer = dsr_request(&ws, DsrKind::Access, T0 + time::Duration::hours(1));
    s.create_request(&older).await.unwrap();
    s.create_request(&newer).await.unwrap();
    let other = dsr_request(
        &WorkspaceId::new(Region::Us, &unique()),
        DsrKind::Access,
        T0,
    );
    s.create_request(&other).await.unwrap();
    let listed = s.requests(&ws, 10).await.unwrap();
    let ids: Vec<&DsrId> = listed.iter().map(|r| &r.id).collect();
    assert_eq!(ids, [&newer.id, &older.id], "newest first");
    assert_eq!(s.requests(&ws, 1).await.unwrap().len(), 1);
}

/// The ids of the open requests of every workspace.
async fn open_ids(s: &dyn DsrStore) -> Vec<DsrId> {
    let open = s.open_requests(10_000).await.unwrap();
    open.into_iter().map(|r| r.id).collect()
}

pub async fn lists_open_requests_of_every_workspace_until_they_complete(s: &dyn DsrStore) {
    let a = dsr_request(
        &WorkspaceId::new(Region::Us, &unique()),
        DsrKind::Erasure,
        T0,
    );
    let mut b = dsr_request(
        &WorkspaceId::new(Region::Us, &unique()),
        DsrKind::Access,
        T0,
    );
    s.create_request(&a).await.unwrap();
    s.create_request(&b).await.unwrap();
    let open = open_ids(s).await;
    assert!(open.contains(&a.id) && open.contains(&b.id), "{open:?}");
    b.status = DsrStatus::Completed;
    b.subjects.clear();
    s.update_request(&b).await.unwrap();
    let open = open_ids(s).await;
    assert!(open.contains(&a.id));
    assert!(!open.contains(&b.id));
}

pub async fn keeps_a_suppression_list_per_workspace(s: &dyn DsrStore) {
    let ws = WorkspaceId::new(Region::Us, &unique());
    let other = WorkspaceId::new(Region::Us, &unique());
    assert!(s.suppressed(&ws).await.unwrap().is_empty());
    let t1 = crate::identity::sha256_hex("t1");
    let t2 = crate::identity::sha256_hex("t2");
    s.suppress(&ws, std::slice::from_ref(&t1), T0)
        .await
        .unwrap();
    s.suppress(&ws, &[t1.clone(), t2.clone()], T0)
        .await
        .unwrap();
    let mut got = s.suppressed(&ws).await.unwrap();
    got.sort();
    let mut want = vec![t1, t2];
    want.sort();
    assert_eq!(got, want, "each token once");
    assert!(s.suppressed(&other).await.unwrap().is_empty());
}

pub async fn keeps_export_parts_in_order_until_they_expire(s: &dyn DsrStore) {
    let ws = WorkspaceId::new(Region::Eu, &unique());
    let r = dsr_request(&ws, DsrKind::Access, T0);
    let until = T0 + time::Duration::days(DsrRequest::EXPORT_DAYS);
    for n in [1u32, 0, 2] {
        s.put_export_part(&ws, &r.id, &part(n, vec![n as u8; 40], until))
            .await
            .unwrap();
    }
    s.put_export_part(&ws, &r.id, &part(1, vec![9; 40], until))
        .await
        .unwrap();
    let parts = s.export_parts(&ws, &r.id, T0).await.unwrap();
    assert_eq!(
        parts,
        vec![
            Sealed(vec![0; 40]),
            Sealed(vec![9; 40]),
            Sealed(vec![2; 40])
        ]
    );
    let other = WorkspaceId::new(Region::Eu, &unique());
    assert!(s.export_parts(&other, &r.id, T0).await.unwrap().is_empty());
    assert!(s.export_parts(&ws, &r.id, until).await.unwrap().is_empty());
    let r2 = dsr_request(&ws, DsrKind::Access, T0);
    s.put_export_part(&ws, &r2.id, &part(0, vec![1; 40], until))
        .await
        .unwrap();
    assert_eq!(s.delete_export(&ws, &r2.id).await.unwrap(), 1);
    assert!(s.export_parts(&ws, &r2.id, T0).await.unwrap().is_empty());
    // Backends with native TTL may leave expired parts to it; reads filter them anyway.
    s.sweep(until + time::Duration::seconds(1)).await.unwrap();
}

/// Export part `number`, holding `sealed`, readable until `until`.
fn part(number: u32, sealed: Vec<u8>, until: OffsetDateTime) -> ExportPart {
    ExportPart {
        number,
        sealed: Sealed(sealed),
        expires_at: until,
    }
}
