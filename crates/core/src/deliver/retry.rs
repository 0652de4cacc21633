//! Retry: what a destination's answer means for trying again, and when (backoff with full
//! jitter, at least `Retry-After`).

use std::time::Duration;

use time::OffsetDateTime;

use super::service::DeliveryService;
use super::{Connector, HttpResponse, OpenedItem, Outcome};
use crate::ports::EgressError;

/// Parses `Retry-After` (seconds, or an HTTP date relative to `now`).
pub fn retry_after(response: &HttpResponse, now: OffsetDateTime) -> Option<Duration> {
    let v = response.header("retry-after")?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()?;
    let secs = (at - now).whole_seconds();
    Some(Duration::from_secs(secs.max(0) as u64))
}

/// The common HTTP classification: 2xx delivered; 408, 429 and 5xx retry (honouring
/// `Retry-After`); any other status is permanent.
pub fn classify_status(response: &HttpResponse, now: OffsetDateTime) -> Outcome {
    let status = response.status;
    let text = || {
        let body = String::from_utf8_lossy(&response.body);
        let body: String = body.chars().take(500).collect();
        format!("HTTP {status}: {body}")
    };
    match status {
        200..=299 => Outcome::Delivered,
        408 | 429 | 500..=599 => Outcome::Retry {
            after: retry_after(response, now),
            reason: text(),
        },
        _ => Outcome::Permanent { reason: text() },
    }
}

/// What a response means for a request's items: the connector's classification, with
/// `Retry-After` read against the injected clock's `now`. A connector has no clock, so an HTTP
/// date is resolved here, once for every vendor: it applies to each item to retry.
pub(super) fn classify(
    connector: &dyn Connector,
    items: &[&OpenedItem],
    response: &HttpResponse,
    now: OffsetDateTime,
) -> Outcome {
    let outcome = connector.classify(items, response);
    match retry_after(response, now) {
        Some(after) => with_retry_after(outcome, after),
        None => outcome,
    }
}

fn with_retry_after(outcome: Outcome, after: Duration) -> Outcome {
    match outcome {
        Outcome::Retry { reason, .. } => Outcome::Retry {
            after: Some(after),
            reason,
        },
        Outcome::PerItem(list) => Outcome::PerItem(
            list.into_iter()
                .map(|(i, o)| (i, with_retry_after(o, after)))
                .collect(),
        ),
        other => other,
    }
}

impl DeliveryService {
    /// The delay before attempt `attempt + 1`: full jitter, at least `Retry-After`.
    pub fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .config
            .backoff_base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.config.backoff_cap);
        let mut r = [0u8; 8];
        self.ports.ids.fill(&mut r);
        let frac = (u64::from_le_bytes(r) >> 11) as f64 / (1u64 << 53) as f64;
        let jittered = exp.mul_f64(frac).max(Duration::from_millis(100));
        // Retry-After wins when it asks for longer; SQS visibility allows up to 12 hours.
        let floor = retry_after
            .unwrap_or_default()
            .min(Duration::from_secs(12 * 3600));
        jittered.max(floor)
    }
}

pub(super) fn egress_outcome(e: &EgressError) -> Outcome {
    match e {
        EgressError::Refused(r) => Outcome::Permanent {
            reason: format!("egress refused: {r}"),
        },
        EgressError::Connect(_) | EgressError::Timeout(_) => Outcome::Retry {
            after: None,
            reason: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn resp(status: u16, headers: &[(&str, &str)]) -> HttpResponse {
        HttpResponse::new(status, headers, "{}")
    }

    #[test]
    fn retries_408_429_and_5xx_and_gives_up_on_other_4xx() {
        let now = datetime!(2026-01-01 0:00 UTC);
        assert_eq!(classify_status(&resp(204, &[]), now), Outcome::Delivered);
        for s in [408, 429, 500, 503] {
            assert!(
                matches!(classify_status(&resp(s, &[]), now), Outcome::Retry { .. }),
                "{s}"
            );
        }
        for s in [400, 401, 403, 404, 413] {
            assert!(
                matches!(
                    classify_status(&resp(s, &[]), now),
                    Outcome::Permanent { .. }
                ),
                "{s}"
            );
        }
    }

    #[test]
    fn honours_retry_after_in_seconds_and_as_a_date() {
        let now = datetime!(2026-01-01 0:00 UTC);
        let r = resp(429, &[("Retry-After", "120")]);
        assert_eq!(retry_after(&r, now), Some(Duration::from_secs(120)));
        let r = resp(503, &[("retry-after", "Thu, 01 Jan 2026 00:00:30 +0000")]);
        assert_eq!(retry_after(&r, now), Some(Duration::from_secs(30)));
    }
}
