//! A closed workspace's data-subject requests (with their receipts) and its suppression list
//! end with its account data (whitepaper §02: life of account plus 90 days), on every
//! backend: the control store and the DSR store of one backend, closed together.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{dsr_request, unique, workspace, T0};
use crate::admin::close_account_with_dsr;
use crate::dsr::{suppression_token, DsrKind, DsrStatus, Receipt, StoreCounts};
use crate::ports::{ControlStore, DsrStore};
use crate::workspace::{Region, WorkspaceId};

/// The control store and the DSR store of one backend, and a look at what its deleter left.
#[async_trait]
pub trait AccountStores: Send + Sync {
    fn control(&self) -> &dyn ControlStore;
    fn dsr(&self) -> &dyn DsrStore;
    /// The workspace's requests and suppression entries that are still kept at `now`, after
    /// the backend's deleter ran as of `now`: the SQLite sweeper deletes expired rows; moto
    /// never runs DynamoDB's TTL, so there it is the items whose `expires_at` is missing or
    /// later than `now`.
    async fn dsr_records_left(&self, ws: &WorkspaceId, now: OffsetDateTime) -> usize;
}

fn days(n: i64) -> time::Duration {
    time::Duration::days(n)
}

fn token(label: &str) -> String {
    suppression_token(&crate::identity::sha256_hex(&format!(
        "{label}{}",
        unique()
    )))
}

pub async fn a_closed_workspaces_requests_and_suppression_list_end_90_days_after_the_closure(
    h: &dyn AccountStores,
) {
    // Arrange: a completed erasure (its subject on the suppression list) and an open access
    // request, and another workspace with the same.
    let ws = workspace(Region::Eu);
    let other = workspace(Region::Eu);
    h.control().create_workspace(&ws).await.unwrap();
    h.control().create_workspace(&other).await.unwrap();
    let dsr = h.dsr();
    let mut erasure = dsr_request(&ws.id, DsrKind::Erasure, T0);
    dsr.create_request(&erasure).await.unwrap();
    let (t1, t2) = (token("t1"), token("t2"));
    dsr.suppress(&ws.id, &[t1.clone(), t2.clone()], T0)
        .await
        .unwrap();
    erasure.status = DsrStatus::Completed;
    erasure.subjects.clear();
    erasure.receipt = Some(Receipt {
        started_at: T0,
        completed_at: T0 + time::Duration::minutes(5),
        counts: StoreCounts {
            events: 3,
            ..Default::default()
        },
        suppressed: true,
        pages: 1,
        destinations: Vec::new(),
        export_expires_at: None,
        export_deleted_by: None,
        workspace_closed_at: None,
        client_ids: None,
    });
    dsr.update_request(&erasure).await.unwrap();
    let mut access = dsr_request(&ws.id, DsrKind::Access, T0 + days(1));
    dsr.create_request(&access).await.unwrap();
    dsr.create_request(&dsr_request(&other.id, DsrKind::Erasure, T0))
        .await
        .unwrap();
    dsr.suppress(&other.id, std::slice::from_ref(&t1), T0)
        .await
        .unwrap();

    // Act: closed on day 10.
    let closed_at = T0 + days(10);
    let closure = close_account_with_dsr(h.control(), dsr, &ws, closed_at, None)
        .await
        .unwrap();

    // Assert: two requests and two suppression entries stamped, each once.
    assert_eq!(closure.data_subject_records, 4);
    assert_eq!(
        dsr.end_with_account(&ws.id, closed_at + days(90))
            .await
            .unwrap(),
        0,
        "stamping again writes nothing"
    );
    // The worker completes the open request after the closure and writes a suppression
    // entry; the completed request keeps its stamp, only the new entry needs one.
    access.status = DsrStatus::Completed;
    access.subjects.clear();
    dsr.update_request(&access).await.unwrap();
    let t3 = token("t3");
    dsr.suppress(&ws.id, std::slice::from_ref(&t3), closed_at + days(1))
        .await
        .unwrap();
    assert_eq!(
        dsr.end_with_account(&ws.id, closed_at + days(90))
            .await
            .unwrap(),
        1,
        "an update keeps the stamp; the late suppression entry gets one"
    );

    // 89 days after the closure everything is there: requests with receipts, suppressions.
    let day89 = closed_at + days(89);
    assert_eq!(h.dsr_records_left(&ws.id, day89).await, 5);
    let requests = dsr.requests(&ws.id, 10).await.unwrap();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        dsr.request(&ws.id, &erasure.id)
            .await
            .unwrap()
            .unwrap()
            .receipt,
        erasure.receipt
    );
    let mut suppressed = dsr.suppressed(&ws.id).await.unwrap();
    suppressed.sort();
    let mut want = vec![t1, t2, t3];
    want.sort();
    assert_eq!(suppressed, want);

    // 91 days after the closure none of it is left; the other workspace keeps its own.
    let day91 = closed_at + days(91);
    assert_eq!(h.dsr_records_left(&ws.id, day91).await, 0);
    assert_eq!(h.dsr_records_left(&other.id, day91).await, 2);
    assert_eq!(dsr.suppressed(&other.id).await.unwrap().len(), 1);
}

pub async fn only_the_closed_workspaces_records_are_stamped(h: &dyn AccountStores) {
    let ws = WorkspaceId::new(Region::Us, &unique());
    let other = WorkspaceId::new(Region::Us, &unique());
    let dsr = h.dsr();
    dsr.create_request(&dsr_request(&ws, DsrKind::Access, T0))
        .await
        .unwrap();
    dsr.create_request(&dsr_request(&other, DsrKind::Access, T0))
        .await
        .unwrap();
    dsr.suppress(&other, &[token("o")], T0).await.unwrap();
    assert_eq!(dsr.end_with_account(&ws, T0 + days(90)).await.unwrap(), 1);
    assert_eq!(
        dsr.end_with_account(&WorkspaceId::new(Region::Us, &unique()), T0 + days(90))
            .await
            .unwrap(),
        0,
        "a workspace without requests has nothing to stamp"
    );
    let later = T0 + days(400);
    assert_eq!(h.dsr_records_left(&ws, later).await, 0);
    assert_eq!(h.dsr_records_left(&other, later).await, 2);
    // A stamp only moves earlier: a later one leaves it.
    let ws2 = WorkspaceId::new(Region::Us, &unique());
    dsr.create_request(&dsr_request(&ws2, DsrKind::Erasure, T0))
        .await
        .unwrap();
    assert_eq!(dsr.end_with_account(&ws2, T0 + days(90)).await.unwrap(), 1);
    assert_eq!(dsr.end_with_account(&ws2, T0 + days(120)).await.unwrap(), 0);
    assert_eq!(h.dsr_records_left(&ws2, T0 + days(91)).await, 0);
}
