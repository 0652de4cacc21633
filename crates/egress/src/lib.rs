//! The `Egress` port over reqwest (rustls), with an SSRF guard.
//!
//! Destination URLs must be `https` and must not reach loopback, private, link-local (the
//! 169.254.169.254 metadata service included), CGNAT, unique-local or other internal addresses.
//! [`check_url`] checks a URL when a destination is configured; [`HttpEgress`] checks it again
//! before each request and filters every DNS answer at connect time, so DNS rebinding cannot
//! turn a checked name into an internal address. [`EgressPolicy::allow_private`]
//! (`--allow-private-egress`) lifts the guard for local development and tests only.
//!
//! Nothing here logs or returns a URL's query (Meta carries `access_token` there) or headers.

mod client;
mod guard;

pub use client::{BuildError, EgressConfig, HttpEgress, MAX_RESPONSE_BODY};
pub use guard::{check_url, check_url_syntax, is_forbidden, EgressPolicy};
