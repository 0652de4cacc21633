//! "Send a test event": one synthetic event through a destination's connector and egress,
//! and the destination's answer. The event is never stored, queued or logged as a delivery.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::admin::{AdminError, AdminResult, Principal};
use crate::crypto::WorkspaceKeys;
use crate::deliver::oauth::TokenSource;
use crate::deliver::send::{send_batches, Outlet, Sent};
use crate::deliver::{Connector, DropReason, OpenedItem, Outcome, Target};
use crate::destination::secret_opener::destination_secrets;
use crate::destination::{DestinationId, DestinationKind};
use crate::event::{DeliveryItem, EventId, ForwardedConsent, MessageId, SealedFields};
use crate::identity::{sha256_hex, Field};
use crate::keys::Role;
use crate::ports::{Egress, EgressError};
use crate::services::ReadPorts;
use serde_json::{json, Value};

use serde::Serialize;

/// The synthetic event's name.
pub const TEST_EVENT_NAME: &str = "TrackLayer Test Event";
/// What a destination answered to a synthetic test event (which is not stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    pub outcome: TestOutcome,
    /// The destination's HTTP status, when it answered.
    pub http_status: Option<u16>,
    /// What happened, in words.
    pub detail: String,
    /// The start of the destination's answer (at most 1,000 characters; secrets redacted).
    pub response_body: Option<String>,
    /// The synthetic event's name.
    pub event_name: String,
}

/// How the test went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TestOutcome {
    /// The destination accepted the event.
    Delivered,
    /// The destination refused it (a 4xx other than 408/429, or a per-event error).
    Rejected,
    /// The destination failed in a way a real delivery would retry (408, 429, 5xx).
    Retryable,
    /// No answer: the connection failed or timed out.
    Unreachable,
    /// Not sent: the egress guard refused the URL, or the settings cannot make a request.
    NotSent,
}

const MAX_EXCERPT_CHARS: usize = 1000;

/// Sends test events to destinations.
pub struct DestinationTester {
    /// What sending a test event reads: the destination, its workspace and keys, time and
    /// ids. The egress it sends over is given apart, as delivery's is
    /// ([`Ports::tester`](crate::services::Ports::tester) wires both).
    ports: ReadPorts,
    egress: Arc<dyn Egress>,
    connectors: fn(DestinationKind) -> &'static dyn Connector,
    base_urls: fn(DestinationKind) -> &'static str,
    /// OAuth 2.0 access tokens of the destinations whose vendor takes them.
    tokens: TokenSource,
}

impl std::fmt::Debug for DestinationTester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DestinationTester")
    }
}

impl DestinationTester {
    /// A tester sending over `egress` through `connectors`, to `base_urls` unless a
    /// destination overrides it.
    pub fn new(
        ports: ReadPorts,
        egress: Arc<dyn Egress>,
        connectors: fn(DestinationKind) -> &'static dyn Connector,
        base_urls: fn(DestinationKind) -> &'static str,
    ) -> Self {
        Self {
            tokens: TokenSource::new(egress.clone(), ports.clock.clone()),
            ports,
            egress,
            connectors,
            base_urls,
        }
    }

    /// Editors and admins may test a destination of their workspace. Refused while the
    /// workspace's egress is paused (incident containment).
    pub async fn send(&self, p: &Principal, id: &str) -> AdminResult<TestResult> {
        if p.role < Role::Editor {
            return Err(AdminError::Forbidden {
                role: p.role,
                action: "send test events",
            });
        }
        let id = DestinationId::parse(id).map_err(|_| AdminError::NotFound("destination"))?;
        let control = &self.ports.control;
        let ws = control
            .workspace(&p.workspace_id, self.ports.clock.now())
            .await?
            .ok_or(AdminError::NotFound("workspace"))?;
        let d = control
            .destination(&ws.id, &id)
            .await?
            .ok_or(AdminError::NotFound("destination"))?;
        if ws.security.egress_paused {
            return Err(AdminError::Conflict(
                "egress is paused for this workspace (security settings); resume it to send a test event".into(),
            ));
        }
        let keys = WorkspaceKeys::new(
            &self
                .ports
                .keyring
                .unwrap_data_key(&ws.id, &ws.key_ref, &ws.data_key)
                .await?,
        );
        let secrets = destination_secrets(&keys, &d)?;

        let now = self.ports.clock.now();
        let uuid = self.ports.ids.uuid_v7(now);
        let opened = synthetic(EventId(uuid), MessageId::generated(uuid), now);
        let connector = (self.connectors)(d.kind);
        let base = d
            .endpoint
            .clone()
            .unwrap_or_else(|| (self.base_urls)(d.kind).to_owned());
        let target = Target {
            destination: &d,
            secrets: &secrets,
            base_url: &base,
            now,
        };
        let result = |outcome, http_status, detail: String, body: Option<String>| TestResult {
            outcome,
            http_status,
            detail,
            response_body: body,
            event_name: TEST_EVENT_NAME.into(),
        };
        if let Err(why) = connector.screen(&target, &opened) {
            let (DropReason::Age(r) | DropReason::Invalid(r) | DropReason::Unsendable(r)) = why;
            return Ok(result(TestOutcome::NotSent, None, r, None));
        }
        let outlet = Outlet {
            egress: &self.egress,
            tokens: &self.tokens,
            semaphore: None,
        };
        let sent = send_batches(outlet, connector, &target, &[vec![&opened]]).await;
        let response = match sent.into_iter().next().unwrap_or(Sent::Panicked) {
            Sent::Answered(r) => r,
            Sent::Settled(o, status) => {
                let (outcome, detail) = match o {
                    Outcome::Retry { reason, .. } => (TestOutcome::Retryable, reason),
                    Outcome::Permanent { reason } if status.is_some() => {
                        (TestOutcome::Rejected, reason)
                    }
                    other => (TestOutcome::NotSent, describe(other).1),
                };
                return Ok(result(outcome, status, redact(&detail, &secrets), None));
            }
            Sent::Panicked => {
                let why = "sending the test event failed".to_owned();
                return Ok(result(TestOutcome::NotSent, None, why, None));
            }
            Sent::Failed(e) => {
                let outcome = match e {
                    EgressError::Refused(_) => TestOutcome::NotSent,
                    EgressError::Connect(_) | EgressError::Timeout(_) => TestOutcome::Unreachable,
                };
                tracing::info!(destination = %d.id, ?outcome, "test event not answered");
                return Ok(result(
                    outcome,
                    None,
                    redact(&e.to_string(), &secrets),
                    None,
                ));
            }
        };
        let (outcome, detail) = match connector.classify(&[&opened], &response) {
            Outcome::PerItem(mut items) if items.len() == 1 => describe(items.remove(0).1),
            o => describe(o),
        };
        tracing::info!(destination = %d.id, status = response.status, ?outcome, "test event sent");
        let body: String = String::from_utf8_lossy(&response.body)
            .chars()
            .take(MAX_EXCERPT_CHARS)
            .collect();
        Ok(result(
            outcome,
            Some(response.status),
            redact(&detail, &secrets),
            (!body.is_empty()).then(|| redact(&body, &secrets)),
        ))
    }
}

fn describe(o: Outcome) -> (TestOutcome, String) {
    match o {
        Outcome::Delivered => (
            TestOutcome::Delivered,
            "the destination accepted the test event".into(),
        ),
        Outcome::Retry { reason, .. } => (TestOutcome::Retryable, reason),
        Outcome::Permanent { reason } => (TestOutcome::Rejected, reason),
        Outcome::PerItem(_) => (
            TestOutcome::Rejected,
            "the destination answered for more events than were sent".into(),
        ),
    }
}

/// A track event with a pseudonymous external id and a client id: enough for every vendor.
fn synthetic(event_id: EventId, message_id: MessageId, now: time::OffsetDateTime) -> OpenedItem {
    let mut user_data = BTreeMap::new();
    user_data.insert(Field::ExternalId, sha256_hex("tracklayer-test-event"));
    let mut click_ids = BTreeMap::new();
    click_ids.insert(
        "client_id".to_owned(),
        format!("1000000000.{}", now.unix_timestamp()),
    );
    OpenedItem {
        item: DeliveryItem {
            user_data,
            consent: ForwardedConsent {
                ad_user_data: Some(true),
                ad_personalization: Some(false),
            },
            ..DeliveryItem::track(
                event_id,
                message_id,
                TEST_EVENT_NAME,
                now,
                json!({"tracklayer_test": true}),
            )
        },
        sealed: SealedFields {
            anonymous_id: Some("tracklayer-test".into()),
            click_ids,
            ..Default::default()
        },
    }
}

/// Replaces every secret value (of 4 characters or more) in `text`.
fn redact(text: &str, secrets: &Value) -> String {
    let mut out = text.to_owned();
    if let Value::Object(map) = secrets {
        for v in map.values().filter_map(Value::as_str) {
            if v.chars().count() >= 4 {
                out = out.replace(v, "[redacted]");
            }
        }
    }
    out
}
