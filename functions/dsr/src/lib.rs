//! The dsr function: on its EventBridge schedule (`template.yaml`: every 15 minutes) it mails
//! the API-key expiry warnings that are due (14 and 3 days ahead), then works off open
//! data-subject requests — suppression, paged erasure or export, receipts and the admins'
//! mails — for as long as the invocation's deadline allows. Every step is persisted, so a
//! timeout or crash continues at the next invocation.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tracklayer_core::clock::Clock;
use tracklayer_core::dsr::service::{DsrService, RunReport};
use tracklayer_core::key_expiry::KeyExpiryNotifier;
use tracklayer_lambda::AwsStack;

/// The scheduled event. Its fields are not needed (the work is found in the stores), but it
/// is parsed, so that a wrongly wired trigger fails visibly.
pub type ScheduledEvent = aws_lambda_events::eventbridge::EventBridgeEvent<serde_json::Value>;

/// What one invocation did: the sum of its `DsrService` runs.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// API keys whose expiry warning was mailed.
    pub key_warnings: usize,
    pub runs: u32,
    pub pages: u32,
    pub completed: usize,
    pub reminders: usize,
    pub failed: usize,
    /// Work was left for the next invocation (the deadline came first).
    pub more: bool,
}

impl Summary {
    fn add(&mut self, r: &RunReport) {
        self.runs += 1;
        self.pages += r.pages;
        self.completed += r.completed.len();
        self.reminders += r.reminders;
        self.failed += r.failed;
        self.more = r.more;
    }
}

/// The scheduled work of one stack.
pub struct Housekeeping {
    dsr: DsrService,
    keys: KeyExpiryNotifier,
    clock: Arc<dyn Clock>,
    /// Time kept back from the deadline for the last run to finish and answer.
    margin: Duration,
    /// Pause between runs while there is more work (an erasure waits for its suppression to
    /// reach every ingest and deliver process before deleting).
    pause: Duration,
}

tracklayer_core::debug_fields!(Housekeeping: margin, pause);

impl Housekeeping {
    pub fn new(stack: &AwsStack) -> Self {
        Self {
            dsr: stack.dsr_service(),
            keys: KeyExpiryNotifier::new(stack.ports.control.clone(), stack.ports.mailer.clone()),
            clock: stack.ports.clock.clone(),
            margin: Duration::from_secs(30),
            pause: Duration::from_secs(1),
        }
    }

    /// Runs until no request has work left or `deadline` (less the margin) is near.
    pub async fn handle(&self, deadline: SystemTime) -> Summary {
        let mut summary = Summary::default();
        match self.keys.run(self.clock.now()).await {
            Ok(r) => summary.key_warnings = r.warned,
            Err(e) => {
                tracing::warn!(error = %e, "key expiry warnings failed; the next run retries")
            }
        }
        loop {
            let report = self.dsr.run().await;
            summary.add(&report);
            let left = deadline
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            if !report.more || left < self.margin + self.pause {
                break;
            }
            tokio::time::sleep(self.pause).await;
        }
        tracing::info!(
            key_warnings = summary.key_warnings,
            runs = summary.runs,
            pages = summary.pages,
            completed = summary.completed,
            reminders = summary.reminders,
            failed = summary.failed,
            more = summary.more,
            "scheduled work done"
        );
        summary
    }
}
