//! Delivery: the shapes shared by connectors (vendor wire formats), the egress port (HTTP
//! out) and the delivery service that drives them from the queues.

use std::fmt;
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;

use crate::destination::Destination;
use crate::event::{DeliveryItem, SealedFields};

/// A queued item with its sealed fields opened, ready for a connector.
#[derive(Debug, Clone)]
pub struct OpenedItem {
    pub item: DeliveryItem,
    pub sealed: SealedFields,
}

/// What a connector knows about the destination it builds requests for.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub destination: &'a Destination,
    /// The destination's secrets, opened (an object of strings).
    pub secrets: &'a Value,
    /// `destination.endpoint`, or the vendor's production base URL.
    pub base_url: &'a str,
    pub now: OffsetDateTime,
}

impl fmt::Debug for Target<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("destination", &self.destination.id)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// An HTTP request to a destination. Debug never prints headers or the body (tokens, hashes).
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.url.split('?').next().unwrap_or_default();
        write!(f, "POST {path} ({} bytes)", self.body.len())
    }
}

/// A destination's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// An answer of `status` with `headers` (name, value) and `body`, as a scripted egress
    /// gives it.
    pub fn new(status: u16, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.into(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why an item was not sent at all (logged as `dropped`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropReason {
    /// Older than the destination accepts (Meta 7 days, GA4 72 hours).
    Age(String),
    /// The destination could not accept it (GA4 name rules, a missing client id, ...).
    Invalid(String),
    /// The destination can never take it as it is (a Firehose record over 1,000 KiB): not
    /// sent, but dead-lettered with the reason (kept and shown for replay), never silently
    /// dropped.
    Unsendable(String),
}

/// What a response means for the items of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// All items delivered.
    Delivered,
    /// Try the whole request again later (408, 429, 5xx, vendor rate-limit codes).
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// The destination refused the request for good (other 4xx): dead-letter it.
    Permanent { reason: String },
    /// The destination answered per item: `(index into the request's items, outcome)`, where
    /// each outcome is `Delivered`, `Retry` or `Permanent`.
    PerItem(Vec<(usize, Outcome)>),
}

/// The byte limits of a vendor that counts bytes besides items (Segment: 500 KB a request,
/// 32 KB an event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteLimits {
    /// Most bytes the items of one request may add up to ([`Connector::item_bytes`] each).
    pub request: usize,
    /// Most bytes one item may take: a larger one is dead-lettered with the reason.
    pub item: usize,
}

/// A vendor's wire format: batch limit, screening, request builder, response classifier.
pub trait Connector: Send + Sync {
    /// Most items one request may carry for this target.
    fn batch_limit(&self, target: &Target<'_>) -> usize;
    /// The vendor's byte limits, if it has any (by default, none: batches are cut by count).
    fn byte_limits(&self, _target: &Target<'_>) -> Option<ByteLimits> {
        None
    }
    /// The bytes `item` takes in a request, for [`Connector::byte_limits`]: by default, the
    /// body of a request carrying it alone (an item that cannot be built takes no room: its
    /// request fails to build and says why).
    fn item_bytes(&self, target: &Target<'_>, item: &OpenedItem) -> usize {
        self.build(target, &[item]).map_or(0, |r| r.body.len())
    }
    /// The role whose temporary credentials sign this target's requests (Firehose with a
    /// customer's role ARN): the delivery service assumes it ([`RoleCredentials`]) and hands
    /// the credentials to [`Connector::build`] among the opened secrets
    /// ([`roles::ASSUMED_SECRETS`]). None by default.
    fn assumed_role(&self, _target: &Target<'_>) -> Option<roles::RoleRequest> {
        None
    }
    /// Whether an item can be sent at all, checked before building (by default, every item
    /// can).
    fn screen(&self, _target: &Target<'_>, _item: &OpenedItem) -> Result<(), DropReason> {
        Ok(())
    }
    /// One request for `items` (at most `batch_limit`, all screened).
    fn build(&self, target: &Target<'_>, items: &[&OpenedItem]) -> Result<HttpRequest, String>;
    /// What the response means for the request's items.
    fn classify(&self, items: &[&OpenedItem], response: &HttpResponse) -> Outcome;
    /// Items that may share a request have the same key (GA4: one client id per request).
    fn group_key(&self, _item: &OpenedItem) -> Option<String> {
        None
    }
    /// What the customer must do at the vendor to delete the events it received of an erased
    /// subject (the erasure receipt's `customer_action`): TrackLayer sends events and cannot
    /// delete them there.
    fn erasure_guidance(&self, sent: &crate::dsr::SentToVendor<'_>) -> String;
    /// The OAuth 2.0 token endpoint of a vendor whose API takes short-lived access tokens,
    /// issued for the destination's `client_id`, `client_secret` and `refresh_token` secrets
    /// ([`oauth`]); the token is then the secret `access_token` when [`Connector::build`] runs.
    /// `None` (the default): the vendor takes the destination's secrets as they are.
    fn token_endpoint(&self, _target: &Target<'_>) -> Option<String> {
        None
    }
}

mod batching;
pub use batching::{batches, open_sealed};
pub mod roles;
pub use roles::RoleCredentials;
mod flow_control;
mod hydrate;
pub mod oauth;
mod retry;
pub use retry::{classify_status, retry_after};
pub mod send;
pub mod service;
mod settings;
mod settle;
mod worker;

#[cfg(test)]
mod tests;
