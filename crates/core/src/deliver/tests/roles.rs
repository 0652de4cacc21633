//! Roles assumed for a destination (cached until shortly before they expire, the workspace as
//! the external id), requests kept under a connector's size limit, and items a destination can
//! never take dead-lettered unsent.

use std::sync::atomic::{AtomicUsize, Ordering};

use secrecy::SecretString;

use super::*;
use crate::deliver::roles::{RoleCredentials, RoleError, RoleRequest, TemporaryCredentials};

/// Answers the `n`-th `AssumeRole` with `ASIA<n>` credentials expiring `n` hours after T0, or
/// with a scripted error.
struct RecordingRoles {
    calls: Mutex<Vec<RoleRequest>>,
    count: AtomicUsize,
    error: Option<RoleError>,
}

impl RecordingRoles {
    fn new(error: Option<RoleError>) -> Arc<Self> {
        Arc::new(Self {
            calls: Mutex::new(Vec::new()),
            count: AtomicUsize::new(0),
            error,
        })
    }
}

#[async_trait]
impl RoleCredentials for RecordingRoles {
    async fn assume(&self, request: &RoleRequest) -> Result<TemporaryCredentials, RoleError> {
        self.calls.lock().unwrap().push(request.clone());
        let n = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        Ok(TemporaryCredentials {
            access_key_id: format!("ASIA{n}"),
            secret_access_key: SecretString::from("temporary-secret"),
            session_token: SecretString::from("session-token"),
            expires_at: expiry(n),
        })
    }
}

/// When the credentials of call `n` expire.
fn expiry(n: usize) -> OffsetDateTime {
    T0 + time::Duration::hours(n as i64)
}

const ROLE: &str = "arn:aws:iam::123456789012:role/tracklayer";

/// A world whose destination names a role, assumed through `roles`.
fn with_roles(roles: Arc<RecordingRoles>) -> World {
    let mut w = World::new(config());
    let service = Arc::try_unwrap(w.service).unwrap_or_else(|_| panic!("one owner"));
    w.service = Arc::new(service.with_role_credentials(roles));
    w.set_destination(|d| d.config = json!({"batch_size": 10, "role_arn": ROLE}));
    w
}

fn keys(w: &World) -> Vec<Value> {
    w.egress.keys.lock().unwrap().clone()
}

#[tokio::test]
async fn a_role_is_assumed_with_the_workspace_as_external_id_and_cached_until_shortly_before_it_expires(
) {
    let roles = RecordingRoles::new(None);
    let w = with_roles(roles.clone());

    w.enqueue(&["a"]).await;
    assert_eq!(w.step().await, vec![Disposition::Ack]);
    let calls = roles.calls.lock().unwrap().clone();
    assert_eq!(
        calls,
        vec![RoleRequest {
            role_arn: ROLE.into(),
            external_id: w.workspace.as_str().into(),
            session_name: format!("tracklayer-{}", w.destination),
        }]
    );

    // 54 minutes later the credentials (valid until T0 + 1 h) are still used.
    w.advance(Duration::from_secs(54 * 60));
    w.enqueue(&["b"]).await;
    assert_eq!(w.step().await, vec![Disposition::Ack]);
    assert_eq!(roles.count.load(Ordering::SeqCst), 1);

    // Within five minutes of their expiry they are assumed again.
    w.advance(Duration::from_secs(2 * 60));
    w.enqueue(&["c"]).await;
    assert_eq!(w.step().await, vec![Disposition::Ack]);
    assert_eq!(roles.count.load(Ordering::SeqCst), 2);
    assert_eq!(
        keys(&w),
        vec![json!("ASIA1"), json!("ASIA1"), json!("ASIA2")]
    );
}

#[tokio::test]
async fn a_destination_without_a_role_never_calls_sts_and_gets_no_credentials_added() {
    let roles = RecordingRoles::new(None);
    let w = with_roles(roles.clone());
    w.set_destination(|d| d.config = json!({"batch_size": 10}));
    w.enqueue(&["a"]).await;
    assert_eq!(w.step().await, vec![Disposition::Ack]);
    assert_eq!(roles.count.load(Ordering::SeqCst), 0);
    assert_eq!(keys(&w), vec![Value::Null]);
}

#[tokio::test]
async fn a_role_aws_refuses_dead_letters_the_items_unsent_and_an_unavailable_sts_retries_them() {
    let refused = with_roles(RecordingRoles::new(Some(RoleError::Refused(
        "AccessDenied".into(),
    ))));
    let events = refused.enqueue(&["a"]).await;
    let d = refused.step().await;
    let reason = dead_letter_reason(&d);
    assert!(reason.contains("cannot be assumed"), "{reason}");
    assert_eq!(refused.status(events[0]).status, DeliveryStatus::Dead);
    assert!(refused.egress.requests().is_empty(), "nothing sent");

    let unavailable = with_roles(RecordingRoles::new(Some(RoleError::Unavailable(
        "timeout".into(),
    ))));
    let events = unavailable.enqueue(&["a"]).await;
    retry_delay(&unavailable.step().await);
    assert_eq!(
        unavailable.status(events[0]).status,
        DeliveryStatus::Retrying
    );
    assert!(unavailable.egress.requests().is_empty(), "nothing sent");
}

#[tokio::test]
async fn without_a_role_port_a_role_is_refused_naming_the_static_keys_instead() {
    let w = World::new(config());
    w.set_destination(|d| d.config = json!({"batch_size": 10, "role_arn": ROLE}));
    let events = w.enqueue(&["a"]).await;
    let d = w.step().await;
    let reason = dead_letter_reason(&d);
    assert!(reason.contains("secrets.aws_access_key_id"), "{reason}");
    assert_eq!(w.status(events[0]).status, DeliveryStatus::Dead);
}

#[tokio::test]
async fn an_item_the_destination_can_never_take_is_dead_lettered_with_the_reason_and_not_sent() {
    let w = World::new(config());
    let events = w.enqueue(&["a", "unsendable"]).await;

    let d = w.step().await;
    assert!(matches!(&d[..], [Disposition::Replace(_)]), "{d:?}");

    assert_eq!(w.egress.requests(), vec![ids(&events[..1])]);
    let dead = w.status(events[1]);
    assert_eq!(dead.status, DeliveryStatus::Dead);
    assert_eq!(dead.last_error.as_deref(), Some("scripted: too large"));
    let dead = w.queue.dead();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0.items[0].event_id, events[1]);
}
