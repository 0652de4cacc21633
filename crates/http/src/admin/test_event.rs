//! "Send a test event" wired with this build's connectors; the use case is core's
//! [`tracklayer_core::admin::test_event`].

use tracklayer_core::admin::{test_event, AdminError, AdminService, Principal};

pub use test_event::{TestPorts, TEST_EVENT_NAME};

/// Sends synthetic test events through the connectors of `tracklayer_connectors`.
#[derive(Debug)]
pub struct DestinationTester(test_event::DestinationTester);

impl DestinationTester {
    pub fn new(ports: TestPorts) -> Self {
        Self(test_event::DestinationTester::new(
            ports,
            tracklayer_connectors::connector,
            tracklayer_connectors::default_base_url,
        ))
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
