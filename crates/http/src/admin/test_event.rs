//! "Send a test event" wired with the process's ports and connectors; the use case is core's
//! [`tracklayer_core::admin::test_event`].

use std::sync::Arc;

use tracklayer_core::admin::{test_event, AdminError, AdminService, Principal};
use tracklayer_core::ports::Egress;
use tracklayer_core::services::Ports;

pub use test_event::TEST_EVENT_NAME;

/// Sends synthetic test events through the process's connectors.
#[derive(Debug)]
pub struct DestinationTester(test_event::DestinationTester);

impl DestinationTester {
    /// A tester over `egress`, with the connectors and base URLs of `ports`.
    pub fn new(ports: &Ports, egress: Arc<dyn Egress>) -> Self {
        Self(ports.tester(egress))
    }

    /// Sends the test event and audits it with its outcome (the admin API and the console).
    pub async fn send_audited(
        &self,
        admin: &AdminService,
        p: &Principal,
        id: &str,
    ) -> Result<test_event::TestResult, AdminError> {
        let r = self.0.send(p, id).await?;
        let outcome = serde_json::json!(r.outcome);
        admin
            .record_destination_test(p, id, outcome, r.http_status)
            .await?;
        Ok(r)
    }
}

impl std::ops::Deref for DestinationTester {
    type Target = test_event::DestinationTester;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}
