//! The ingest function: the tracking API of `tracklayer serve`, on the AWS adapters, behind
//! the HTTP API (`template.yaml`: `/v1/{proxy+}`, `/healthz`).

use std::sync::Arc;

use axum::Router;
use tracklayer_core::ingest::IngestConfig;
use tracklayer_http::{tracking_router, RegionEndpoints, TrackingConfig, TrackingState};
use tracklayer_lambda::AwsStack;

/// The tracking router over the stack's adapters: the same routes, limits and answers as
/// `tracklayer serve`; the client address comes from the API Gateway request context.
pub fn app(stack: &AwsStack) -> Router {
    let config = &stack.config;
    let ingest = Arc::new(
        stack
            .ports
            .ingest(IngestConfig::new(config.residency))
            .with_key_usage(stack.ports.control.clone()),
    );
    let tracking = TrackingState::new(
        ingest,
        TrackingConfig {
            endpoints: RegionEndpoints {
                us: config.public_urls.us.clone(),
                eu: config.public_urls.eu.clone(),
            },
            trusted_proxies: 0,
            ..TrackingConfig::default()
        },
    );
    tracklayer_lambda::with_source_ip(tracking_router(tracking))
}
