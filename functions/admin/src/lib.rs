//! The admin function: the admin API and the web console of `tracklayer serve`, on the AWS
//! adapters, behind the HTTP API (`template.yaml`: `/admin/v1/{proxy+}`, and `/` and
//! `/{proxy+}` for the console). It links egress only to send test
//! events to a destination and to refuse destination URLs egress must never reach.

use std::sync::Arc;

use axum::Router;
use tracklayer_core::dsr::service::DsrConfig;
use tracklayer_egress::{BuildError, EgressConfig, HttpEgress};
use tracklayer_http::admin::DestinationTester;
use tracklayer_http::{
    admin_router, console_router, scim_router, AdminConfig, AdminState, ConsoleState,
    RegionEndpoints,
};
use tracklayer_lambda::AwsStack;

/// The admin and console routers over the stack's adapters: the same routes and answers as
/// `tracklayer serve`; private egress only if the configuration allows it (tests).
pub fn app(stack: &AwsStack) -> Result<Router, BuildError> {
    let config = &stack.config;
    let policy = stack.egress_policy();
    let ports = &stack.ports;
    let endpoints = RegionEndpoints {
        us: config.public_urls.us.clone(),
        eu: config.public_urls.eu.clone(),
    };
    // Mailed console links start with this residency's public URL.
    let console_url = endpoints.of(config.residency).to_owned();
    let admin = ports.admin(config.residency).with_public_url(console_url);
    let egress = Arc::new(HttpEgress::new(EgressConfig {
        policy,
        ..EgressConfig::default()
    })?);
    let tester = DestinationTester::new(ports, egress);
    let state = AdminState::new(Arc::new(admin), tester, AdminConfig { endpoints })
        .with_dsr(Arc::new(ports.dsr(DsrConfig::default())));
    let console = console_router(ConsoleState::new(state.clone()));
    Ok(tracklayer_lambda::with_source_ip(
        scim_router(state.clone())
            .merge(admin_router(state))
            .merge(console),
    ))
}
