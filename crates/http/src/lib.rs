//! HTTP transports of TrackLayer: the Segment-compatible tracking API, the admin API and the
//! web console, shared by `tracklayer serve` and the Lambda functions.

pub mod admin;
pub mod body;
pub mod browser;
pub mod client_ip;
pub mod console;
pub mod cors;
pub mod headers;
pub mod limits;
pub mod problem;
pub mod ratelimit;
pub mod regions;
pub mod scim;
pub mod server;
pub mod tls;
pub mod tracking;
pub mod tracking_openapi;

#[cfg(test)]
mod openapi_snapshot;

pub use admin::{admin_router, AdminConfig, AdminState};
pub use console::{console_router, ConsoleState};
pub use problem::Problem;
pub use regions::RegionEndpoints;
pub use scim::scim_router;
pub use tracking::{tracking_router, TrackingConfig, TrackingState};
