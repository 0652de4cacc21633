//! HTTP transports of TrackLayer: the Segment-compatible tracking API (and, later, the admin
//! API), shared by `tracklayer serve` and the Lambda functions.

pub mod body;
pub mod problem;
pub mod ratelimit;
pub mod tracking;

pub use problem::Problem;
pub use tracking::{tracking_router, TrackingConfig, TrackingState};
