//! Abuse limits (issue 13, item 6), each a problem+json answer, never a crash or unbounded
//! memory:
//!
//! - [`RateLimits`]: token buckets per source address for every request of the tracking API
//!   (before its body is read or its key checked), a stricter one per address for browser
//!   keys, and one per write key; 429 with `Retry-After`. IPv6 clients are counted per /64 (one
//!   subscriber's allocation), so rotating addresses inside it buys nothing.
//! - [`HeadLimits`]: header count and header bytes of a request; 431.
//! - [`BodyBudget`]: request-body bytes held by `serve` at once, across all requests; beyond it
//!   503 with `Retry-After` (the gzip caps are in [`crate::body`]).
//!
//! The source address is [`crate::client_ip`]'s: `X-Forwarded-For` counts only behind the
//! configured trusted proxies, so a client cannot pick its bucket.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::BoxError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracklayer_core::keys::ApiKeyRecord;

use crate::body::{DeadlineBody, Meter};
use crate::problem::Problem;
use crate::ratelimit::RateLimiter;

/// The rates of [`RateLimits`], in requests per second (each also the burst).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rates {
    /// Per write key, default 1,000.
    pub per_key: u32,
    /// Per source address, whatever the key (or none, or a wrong one), default 1,000: one
    /// address cannot take more than one key's worth.
    pub per_ip: u32,
    /// Per source address with a browser-facing write key (public, so any visitor holds it),
    /// default 20: a page sends a handful per view.
    pub browser_per_ip: u32,
}

impl Default for Rates {
    fn default() -> Self {
        Self {
            per_key: 1_000,
            per_ip: 1_000,
            browser_per_ip: 20,
        }
    }
}

/// The tracking API's token buckets: one mechanism ([`RateLimiter`]) per thing counted.
#[derive(Debug)]
pub struct RateLimits {
    rates: Rates,
    per_key: RateLimiter,
    per_ip: RateLimiter,
    browser_per_ip: RateLimiter,
}

impl RateLimits {
    pub fn new(rates: Rates) -> Self {
        let limiter = |rate: u32| RateLimiter::new(rate, rate);
        Self {
            per_key: limiter(rates.per_key),
            per_ip: limiter(rates.per_ip),
            browser_per_ip: limiter(rates.browser_per_ip),
            rates,
        }
    }

    /// Every request, before anything else is done for it: a token of its source address.
    pub fn source(&self, ip: Option<IpAddr>, now: Instant) -> Result<(), Problem> {
        match ip {
            Some(ip) => take(&self.per_ip, &bucket(ip), now, self.rates.per_ip, "address"),
            None => Ok(()),
        }
    }

    /// An authenticated request: a token of its key, and of its address if the key is a
    /// browser key.
    pub fn key(&self, key: &ApiKeyRecord, ip: Option<IpAddr>, now: Instant) -> Result<(), Problem> {
        if let Some(ip) = ip.filter(|_| key.browser) {
            let rate = self.rates.browser_per_ip;
            take(&self.browser_per_ip, &bucket(ip), now, rate, "address")?;
        }
        take(
            &self.per_key,
            key.id.as_str(),
            now,
            self.rates.per_key,
            "write key",
        )
    }
}

/// The bucket of an address: itself for IPv4, its /64 for IPv6 (an IPv4-mapped IPv6 address
/// is the IPv4 address).
fn bucket(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

fn take(
    limiter: &RateLimiter,
    key: &str,
    now: Instant,
    limit: u32,
    per: &str,
) -> Result<(), Problem> {
    limiter.check(key, now).map_err(|wait| {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too Many Requests",
            format!("limited to {limit} requests per second per {per}"),
        )
        .header(header::RETRY_AFTER, &secs.to_string())
    })
}

/// Limits on a request's head. hyper refuses heads beyond [`HeadLimits::hyper_ceiling`] itself
/// (a bare 431 and a close; the bound on what one connection makes the server buffer); every
/// head past these limits but under that ceiling gets a 431 problem naming the header part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// Header fields of one request, default 100.
    pub max_headers: usize,
    /// Bytes of the request line and header fields, default 16 KiB.
    pub max_header_bytes: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        Self {
            max_headers: 100,
            max_header_bytes: 16 * 1024,
        }
    }
}

/// hyper's own limits are this many times ours.
const HYPER_FACTOR: usize = 4;
/// hyper's smallest read buffer.
const HYPER_MIN_BUFFER: usize = 8192;

impl HeadLimits {
    /// (header fields, head bytes) at which hyper itself refuses a head.
    pub fn hyper_ceiling(&self) -> (usize, usize) {
        (
            self.max_headers.max(1) * HYPER_FACTOR,
            (self.max_header_bytes.max(1) * HYPER_FACTOR).max(HYPER_MIN_BUFFER),
        )
    }

    /// A 431 problem for a head past the limits.
    pub fn check<B>(&self, req: &Request<B>) -> Result<(), Problem> {
        let headers = req.headers();
        if headers.len() > self.max_headers {
            return Err(too_large_head(format!(
                "the request has {} header fields; at most {} are accepted",
                headers.len(),
                self.max_headers
            )));
        }
        let bytes = head_bytes(req.method().as_str().len(), &req.uri().to_string(), headers);
        if bytes > self.max_header_bytes {
            return Err(too_large_head(format!(
                "the request line and header fields are {bytes} bytes; at most {} are accepted",
                self.max_header_bytes
            )));
        }
        Ok(())
    }
}

/// Bytes of a head as sent: `METHOD URI HTTP/1.1\r\n` and `name: value\r\n` per field.
fn head_bytes(method: usize, uri: &str, headers: &HeaderMap) -> usize {
    let line = method + 1 + uri.len() + " HTTP/1.1\r\n".len();
    line + headers
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum::<usize>()
}

fn too_large_head(detail: String) -> Problem {
    Problem::new(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "headers-too-large",
        "Request Header Fields Too Large",
        detail,
    )
    .field("headers")
    .header(header::CONNECTION, "close")
}

/// Request-body bytes `serve` holds at once, across every request: a request reserves its
/// declared `Content-Length` before its handler runs, a body without one reserves each chunk
/// as it arrives, and both are released when the response is ready. Default 64 MiB.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    bytes: Arc<Semaphore>,
    max: usize,
}

/// Seconds a client is asked to wait when the budget is spent.
const BUDGET_RETRY_AFTER: u64 = 1;

pub const DEFAULT_BODY_BYTES_IN_FLIGHT: usize = 64 * 1024 * 1024;

/// The budget was spent while a body without a `Content-Length` arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the server holds its limit of {0} request-body bytes")]
pub struct BudgetSpent(pub usize);

/// What one request holds of the budget, until dropped (after its response).
#[derive(Debug, Clone, Default)]
pub struct Held(Arc<Mutex<Option<OwnedSemaphorePermit>>>);

impl Held {
    fn add(&self, permit: OwnedSemaphorePermit) {
        let mut held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match held.as_mut() {
            Some(p) => p.merge(permit),
            None => *held = Some(permit),
        }
    }
}

impl BodyBudget {
    pub fn new(max_bytes: usize) -> Self {
        let max = max_bytes.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            bytes: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// The request with its body counted against the budget, and what it holds; a declared
    /// length the budget cannot take now is a 503 (413 if it never could).
    pub fn admit(&self, req: Request<DeadlineBody>) -> Result<(Request<Body>, Held), Problem> {
        let held = Held::default();
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        if declared > self.max {
            return Err(Problem::too_large(format!(
                "the request body is larger than the {} bytes this server holds at once",
                self.max
            ))
            .field("body")
            .header(header::CONNECTION, "close"));
        }
        if declared > 0 {
            held.add(
                self.reserve(declared)
                    .map_err(|spent| spent_problem(spent).header(header::CONNECTION, "close"))?,
            );
        }
        let meter = BudgetMeter {
            budget: self.clone(),
            held: held.clone(),
            reserved: declared,
            seen: 0,
        };
        let req = req.map(|body| Body::new(body.metered(meter)));
        Ok((req, held))
    }

    fn reserve(&self, bytes: usize) -> Result<OwnedSemaphorePermit, BudgetSpent> {
        u32::try_from(bytes)
            .ok()
            .and_then(|n| self.bytes.clone().try_acquire_many_owned(n).ok())
            .ok_or(BudgetSpent(self.max))
    }
}

/// The 503 for a spent budget.
pub fn spent_problem(spent: BudgetSpent) -> Problem {
    Problem::unavailable(
        "body-budget-spent",
        format!("{spent}; retry"),
        BUDGET_RETRY_AFTER,
    )
    .field("body")
}

/// Reserves what of a body arrives beyond its declared length.
#[derive(Debug)]
struct BudgetMeter {
    budget: BodyBudget,
    held: Held,
    reserved: usize,
    seen: usize,
}

impl Meter for BudgetMeter {
    fn arrived(&mut self, bytes: usize) -> Result<(), BoxError> {
        self.seen += bytes;
        if self.seen > self.reserved {
            self.held
                .add(self.budget.reserve(self.seen - self.reserved)?);
            self.reserved = self.seen;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use axum::body::Bytes;
    use http_body::Frame;

    use super::*;

    fn timed(body: Body) -> DeadlineBody {
        DeadlineBody::new(body, Duration::from_secs(60))
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn limits(per_ip: u32) -> RateLimits {
        RateLimits::new(Rates {
            per_ip,
            ..Rates::default()
        })
    }

    #[test]
    fn an_address_past_its_rate_is_a_429_with_retry_after() {
        let limits = limits(2);
        let now = Instant::now();
        limits.source(ip("203.0.113.7"), now).unwrap();
        limits.source(ip("203.0.113.7"), now).unwrap();
        let problem = limits.source(ip("203.0.113.7"), now).unwrap_err();
        assert_eq!(problem.status(), 429);
        let response = axum::response::IntoResponse::into_response(problem);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        // Another address has its own bucket.
        limits.source(ip("203.0.113.8"), now).unwrap();
        // And the first one's refills.
        limits
            .source(ip("203.0.113.7"), now + Duration::from_millis(500))
            .unwrap();
    }

    #[test]
    fn ipv6_addresses_of_one_slash_64_share_a_bucket() {
        let limits = limits(2);
        let now = Instant::now();
        limits.source(ip("2001:db8:1:2::1"), now).unwrap();
        limits.source(ip("2001:db8:1:2:ffff::9"), now).unwrap();
        assert_eq!(
            limits
                .source(ip("2001:db8:1:2:abcd::77"), now)
                .unwrap_err()
                .status(),
            429
        );
        limits.source(ip("2001:db8:1:3::1"), now).unwrap();
    }

    #[test]
    fn an_ipv4_mapped_address_is_the_ipv4_address() {
        let limits = limits(1);
        let now = Instant::now();
        limits.source(ip("198.51.100.4"), now).unwrap();
        assert!(limits.source(ip("::ffff:198.51.100.4"), now).is_err());
    }

    fn request(headers: usize, value: &str) -> Request<Body> {
        let mut req = Request::builder().uri("/v1/batch");
        for i in 0..headers {
            req = req.header(format!("x-h{i}"), value);
        }
        req.body(Body::empty()).unwrap()
    }

    #[test]
    fn a_head_past_the_header_count_or_bytes_is_a_431_naming_the_headers() {
        let limits = HeadLimits {
            max_headers: 10,
            max_header_bytes: 1000,
        };
        limits.check(&request(10, "v")).unwrap();
        let count = limits.check(&request(11, "v")).unwrap_err();
        assert_eq!(count.status(), 431);
        assert_eq!(count.details().field.as_deref(), Some("headers"));
        let bytes = limits.check(&request(2, &"v".repeat(600))).unwrap_err();
        assert_eq!(bytes.status(), 431);
    }

    #[test]
    fn hypers_ceiling_is_above_ours_and_never_below_its_minimum() {
        let limits = HeadLimits {
            max_headers: 10,
            max_header_bytes: 1000,
        };
        assert_eq!(limits.hyper_ceiling(), (40, 8192));
        assert_eq!(HeadLimits::default().hyper_ceiling(), (400, 64 * 1024));
    }

    fn with_length(len: usize) -> Request<DeadlineBody> {
        Request::builder()
            .header(header::CONTENT_LENGTH, len)
            .body(timed(Body::from(vec![b'x'; len])))
            .unwrap()
    }

    #[tokio::test]
    async fn declared_bodies_past_the_budget_wait_for_503_until_the_holder_is_done() {
        let budget = BodyBudget::new(1000);
        let (_first, held) = budget.admit(with_length(600)).unwrap();
        let refused = budget.admit(with_length(600)).unwrap_err();
        assert_eq!(refused.status(), 503);
        let response = axum::response::IntoResponse::into_response(refused);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        drop(_first);
        drop(held);
        budget.admit(with_length(600)).unwrap();
    }

    #[tokio::test]
    async fn a_body_larger_than_the_whole_budget_is_a_413() {
        let budget = BodyBudget::new(1000);
        assert_eq!(budget.admit(with_length(1001)).unwrap_err().status(), 413);
    }

    #[tokio::test]
    async fn an_undeclared_body_is_counted_as_it_arrives() {
        let budget = BodyBudget::new(1000);
        let (_holder, _held) = budget.admit(with_length(600)).unwrap();
        let chunks = chunked(vec![vec![b'a'; 300], vec![b'b'; 300]]);
        let req = Request::builder().body(timed(chunks)).unwrap();
        let (req, _held2) = budget.admit(req).unwrap();
        let err = axum::body::to_bytes(req.into_body(), usize::MAX)
            .await
            .unwrap_err();
        assert_eq!(crate::body::cause(&err), Some(BudgetSpent(1000)));
    }

    /// A body of these chunks, without a length.
    struct Chunks(std::collections::VecDeque<Bytes>);

    impl http_body::Body for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(|c| Ok(Frame::data(c))))
        }
    }

    fn chunked(chunks: Vec<Vec<u8>>) -> Body {
        Body::new(Chunks(chunks.into_iter().map(Bytes::from).collect()))
    }
}
