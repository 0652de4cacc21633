//! The overview's counters: `GET /admin/v1/stats?window=1h|24h|7d`.

use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;
use tracklayer_core as tl;
use tracklayer_core::admin::StatsWindow;
use utoipa::ToSchema;

use super::dto::{self, rfc3339};
use super::extract::{Answer, Call, Params};

/// A destination's counters over the window, with its chart.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DestinationStats {
    pub destination_id: String,
    /// `null` for a destination deleted since (its counters remain until they expire).
    pub name: Option<String>,
    /// `meta_capi`, `ga4`, `tiktok`, `webhook`; `null` for a deleted destination.
    pub kind: Option<String>,
    /// New events the destination was considered for (routed + dropped by consent or filter).
    pub received: u64,
    /// Queued for the destination.
    pub routed: u64,
    pub delivered: u64,
    /// Item attempts that failed and were scheduled again (an item counts once per attempt).
    pub retrying: u64,
    pub dead_lettered: u64,
    /// Not routed: consent did not allow it.
    pub dropped_consent: u64,
    /// Not routed: the destination's event list, the call type or the event's integrations.
    pub dropped_filter: u64,
    /// Not sent: the destination could not take the item (too old, failing its rules).
    pub invalid: u64,
    /// One point per step of the window, oldest first.
    pub series: Vec<StatsPoint>,
}

/// One point of a destination's chart.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatsPoint {
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub start: OffsetDateTime,
    pub delivered: u64,
    /// Retrying + dead-lettered.
    pub failed: u64,
}

/// The workspace's ingest totals over the window.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IngestStats {
    /// Valid events, duplicates and suppressed ones included (as ingest answers them).
    pub accepted: u64,
    /// Rejected events, whatever the reason.
    pub rejected: u64,
    /// Rejected events by reason: `malformed`, `message_id`, `type`, `identity`, `name`,
    /// `object`, `timestamp`, `other` (reasons with none left out).
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Of the accepted, those already seen within 24 h.
    pub duplicates: u64,
    /// Of the accepted, those of erased subjects: neither stored nor sent.
    pub suppressed: u64,
    /// Of the accepted, those of crawlers' user agents dropped by the bot filter
    /// (`/admin/v1/bot-filter`): neither stored nor sent.
    pub bots: u64,
}

/// The overview: per destination and for ingest, counts over the last hour, day or week.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatsOverview {
    /// `1h`, `24h` or `7d`.
    pub window: String,
    /// The window's start (inclusive).
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub from: OffsetDateTime,
    /// The window's end (exclusive): the end of the step holding now.
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub to: OffsetDateTime,
    /// The width of a chart point: 300 for `1h`, 3600 for `24h` and `7d`.
    pub step_seconds: i64,
    pub destinations: Vec<DestinationStats>,
    pub ingest: IngestStats,
}

impl From<tl::admin::DestinationOverview> for DestinationStats {
    fn from(d: tl::admin::DestinationOverview) -> Self {
        let c = d.counts;
        Self {
            destination_id: d.destination_id.to_string(),
            name: d.name,
            kind: d.kind.map(|k| k.as_str().to_owned()),
            received: c.received,
            routed: c.routed,
            delivered: c.delivered,
            retrying: c.retrying,
            dead_lettered: c.dead_lettered,
            dropped_consent: c.dropped_consent,
            dropped_filter: c.dropped_filter,
            invalid: c.invalid,
            series: d
                .series
                .into_iter()
                .map(|p| StatsPoint {
                    start: p.start,
                    delivered: p.delivered,
                    failed: p.failed,
                })
                .collect(),
        }
    }
}

impl From<tl::admin::Overview> for StatsOverview {
    fn from(o: tl::admin::Overview) -> Self {
        let ingest = IngestStats {
            accepted: o.ingest.accepted,
            rejected: o.ingest.rejected_total(),
            rejected_by_reason: o
                .ingest
                .rejected
                .iter()
                .map(|(r, n)| (r.as_str().to_owned(), *n))
                .collect(),
            duplicates: o.ingest.duplicates,
            suppressed: o.ingest.suppressed,
            bots: o.ingest.bots,
        };
        Self {
            window: o.window.as_str().to_owned(),
            from: o.from,
            to: o.to,
            step_seconds: o.step_seconds,
            destinations: o.destinations.into_iter().map(Into::into).collect(),
            ingest,
        }
    }
}

/// Counts per destination (received, routed, delivered, retrying, dead-lettered, dropped by
/// consent, by filter, invalid) with a chart series, and ingest totals, over the last hour,
/// 24 hours or 7 days (any role).
#[utoipa::path(get, path = "/admin/v1/stats", operation_id = "getStats", tag = "stats",
    params(("window" = Option<String>, Query, description = "`1h` (12 points of 5 minutes), `24h` (24 hourly points, the default) or `7d` (168 hourly points)", max_length = 16)),
    responses(
        (status = 200, description = "The overview", body = StatsOverview),
        (status = 422, description = "`window` is not 1h, 24h or 7d", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn stats(Call(s, p): Call, q: Params) -> Answer<StatsOverview> {
    let window = match q.text("window", 16)? {
        None => StatsWindow::Day,
        Some(w) => StatsWindow::parse(&w).map_err(|e| s.fail(e))?,
    };
    s.answer(s.admin().overview(&p, window)).await
}
