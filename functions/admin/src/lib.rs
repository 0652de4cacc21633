//! The admin function: the admin API of `tracklayer serve`, on the AWS adapters, behind the
//! HTTP API (`template.yaml`: `/admin/v1/{proxy+}`). It links egress only to send test
//! events to a destination and to refuse destination URLs egress must never reach.

use std::sync::Arc;

use axum::Router;
use tracklayer_core::admin::{AdminPorts, AdminService};
use tracklayer_egress::{BuildError, EgressConfig, EgressPolicy, HttpEgress};
use tracklayer_http::admin::{DestinationTester, TestPorts};
use tracklayer_http::{admin_router, AdminConfig, AdminState};
use tracklayer_lambda::AwsStack;

/// The admin router over the stack's adapters: the same routes and answers as
/// `tracklayer serve`; private egress only if the configuration allows it (tests).
pub fn app(stack: &AwsStack) -> Result<Router, BuildError> {
    let config = &stack.config;
    let policy = EgressPolicy {
        allow_private: config.allow_private_egress,
    };
    let admin = AdminService::new(
        AdminPorts {
            control: stack.control.clone(),
            audit: stack.audit.clone(),
            keyring: stack.keyring.clone(),
            events: stack.events.clone(),
            delivery_log: stack.delivery_log.clone(),
            queue: stack.queue.clone(),
            dsr: stack.dsr.clone(),
            clock: stack.clock.clone(),
            ids: stack.ids.clone(),
            url_guard: Arc::new(policy),
        },
        config.residency,
    );
    let tester = DestinationTester::new(TestPorts {
        control: stack.control.clone(),
        keyring: stack.keyring.clone(),
        egress: Arc::new(HttpEgress::new(EgressConfig {
            policy,
            ..EgressConfig::default()
        })?),
        clock: stack.clock.clone(),
        ids: stack.ids.clone(),
    });
    let state = AdminState::new(
        Arc::new(admin),
        tester,
        AdminConfig {
            us_endpoint: config.public_urls.us.clone(),
            eu_endpoint: config.public_urls.eu.clone(),
        },
    )
    .with_dsr(Arc::new(stack.dsr_service()));
    Ok(tracklayer_lambda::with_source_ip(admin_router(state)))
}
