//! HTTP transports of TrackLayer: the Segment-compatible tracking API and the admin API,
//! shared by `tracklayer serve` and the Lambda functions.

pub mod admin;
pub mod body;
pub mod client_ip;
pub mod headers;
pub mod problem;
pub mod ratelimit;
pub mod scim;
pub mod server;
pub mod tracking;

pub use admin::{admin_router, AdminConfig, AdminState};
pub use problem::Problem;
pub use scim::scim_router;
pub use tracking::{tracking_router, TrackingConfig, TrackingState};
