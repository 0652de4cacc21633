//! The overview: per destination and for the whole workspace, what happened to events in the
//! last hour, day or week, from the [`crate::stats`] counters.

use std::collections::BTreeMap;

use serde::Serialize;
use time::{Duration, OffsetDateTime};

use super::{require, AdminError, AdminResult, AdminService, Principal};
use crate::destination::{Destination, DestinationId, DestinationKind};
use crate::keys::Role;
use crate::stats::{
    self, DestinationCounter, IngestCounter, RejectReason, StatsBucket, StatsKey, StatsQuery,
};

/// The time an overview covers: the current step and the whole steps before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum StatsWindow {
    /// `1h`: 12 points of 5 minutes.
    #[serde(rename = "1h")]
    Hour,
    /// `24h`: 24 points of an hour.
    #[serde(rename = "24h")]
    Day,
    /// `7d`: 168 points of an hour.
    #[serde(rename = "7d")]
    Week,
}

impl StatsWindow {
    pub const ALL: [StatsWindow; 3] = [Self::Hour, Self::Day, Self::Week];

    /// `1h`, `24h` or `7d`; a 422 naming `window` otherwise.
    pub fn parse(s: &str) -> AdminResult<Self> {
        Self::ALL
            .into_iter()
            .find(|w| w.as_str() == s)
            .ok_or_else(|| AdminError::invalid("window", "window must be one of 1h, 24h, 7d"))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "1h",
            Self::Day => "24h",
            Self::Week => "7d",
        }
    }

    /// The width of one chart point.
    pub fn step(self) -> Duration {
        match self {
            Self::Hour => stats::BUCKET,
            Self::Day | Self::Week => Duration::HOUR,
        }
    }

    /// How many chart points the window has.
    pub fn points(self) -> u16 {
        match self {
            Self::Hour => 12,
            Self::Day => 24,
            Self::Week => 168,
        }
    }

    /// `[from, to)`: the step holding `now` and the `points - 1` steps before it.
    pub fn range(self, now: OffsetDateTime) -> (OffsetDateTime, OffsetDateTime) {
        let to = stats::floor(now, self.step()) + self.step();
        (to - self.step() * i32::from(self.points()), to)
    }
}

/// A destination's counters over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DestinationCounts {
    /// New events the destination was considered for.
    pub received: u64,
    pub routed: u64,
    pub delivered: u64,
    /// Item attempts that failed and were scheduled again.
    pub retrying: u64,
    pub dead_lettered: u64,
    pub dropped_consent: u64,
    pub dropped_filter: u64,
    /// Items the destination could not take (too old, failing its rules): never sent.
    pub invalid: u64,
}

impl DestinationCounts {
    fn add(&mut self, c: DestinationCounter, n: u64) {
        let slot = match c {
            DestinationCounter::Received => &mut self.received,
            DestinationCounter::Routed => &mut self.routed,
            DestinationCounter::Delivered => &mut self.delivered,
            DestinationCounter::Retrying => &mut self.retrying,
            DestinationCounter::DeadLettered => &mut self.dead_lettered,
            DestinationCounter::DroppedConsent => &mut self.dropped_consent,
            DestinationCounter::DroppedFilter => &mut self.dropped_filter,
            DestinationCounter::Invalid => &mut self.invalid,
        };
        *slot += n;
    }
}

/// One point of a destination's chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SeriesPoint {
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    pub delivered: u64,
    /// Failed attempts: retrying + dead-lettered.
    pub failed: u64,
}

/// One destination's row of the overview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DestinationOverview {
    pub destination_id: DestinationId,
    /// `None` for a destination deleted since (its counters remain until they expire).
    pub name: Option<String>,
    pub kind: Option<DestinationKind>,
    pub counts: DestinationCounts,
    /// One point per step of the window, oldest first, zeros included.
    pub series: Vec<SeriesPoint>,
}

/// The workspace's ingest totals over a window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestTotals {
    /// Valid events, duplicates and suppressed ones included.
    pub accepted: u64,
    /// Rejected events by reason (reasons with none left out).
    pub rejected: BTreeMap<RejectReason, u64>,
    pub duplicates: u64,
    pub suppressed: u64,
    /// Of the accepted, events of crawlers dropped by the bot filter.
    pub bots: u64,
}

impl IngestTotals {
    /// Every rejected event, whatever the reason.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// What the overview page shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Overview {
    pub window: StatsWindow,
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    pub step_seconds: i64,
    /// The workspace's destinations in creation order, then deleted ones with counters.
    pub destinations: Vec<DestinationOverview>,
    pub ingest: IngestTotals,
}

impl AdminService {
    /// The overview of the last hour, day or week (viewer).
    pub async fn overview(&self, p: &Principal, window: StatsWindow) -> AdminResult<Overview> {
        require(p, Role::Viewer, "read the overview")?;
        let now = self.now();
        let (from, to) = window.range(now);
        let buckets = self
            .ports
            .stats
            .buckets(&p.workspace_id, &StatsQuery::new(from, to, now))
            .await?;
        let destinations = self.ports.control.destinations(&p.workspace_id).await?;
        Ok(overview_of(window, now, &destinations, buckets))
    }
}

/// The overview of `window` at `now` from the workspace's destinations and the buckets of
/// [`StatsWindow::range`] (a bucket outside it is left out).
pub fn overview_of(
    window: StatsWindow,
    now: OffsetDateTime,
    destinations: &[Destination],
    buckets: Vec<StatsBucket>,
) -> Overview {
    let (from, to) = window.range(now);
    let step = window.step();
    let series = || -> Vec<SeriesPoint> {
        (0..window.points())
            .map(|i| SeriesPoint {
                start: from + step * i32::from(i),
                delivered: 0,
                failed: 0,
            })
            .collect()
    };
    let row = |destination_id: DestinationId, d: Option<&Destination>| DestinationOverview {
        destination_id,
        name: d.map(|d| d.name.clone()),
        kind: d.map(|d| d.kind),
        counts: DestinationCounts::default(),
        series: series(),
    };
    let mut rows: Vec<DestinationOverview> = destinations
        .iter()
        .map(|d| row(d.id.clone(), Some(d)))
        .collect();
    let mut index: BTreeMap<DestinationId, usize> = destinations
        .iter()
        .enumerate()
        .map(|(i, d)| (d.id.clone(), i))
        .collect();
    let mut ingest = IngestTotals::default();
    for b in buckets
        .into_iter()
        .filter(|b| b.start >= from && b.start < to)
    {
        let point = ((b.start - from).whole_seconds() / step.whole_seconds()) as usize;
        for (key, n) in b.counts.iter() {
            let (d, c) = match key {
                StatsKey::Ingest(c) => {
                    add_ingest(&mut ingest, *c, n);
                    continue;
                }
                StatsKey::Destination(d, c) => (d, *c),
            };
            let i = *index.entry(d.clone()).or_insert_with(|| {
                rows.push(row(d.clone(), None));
                rows.len() - 1
            });
            rows[i].counts.add(c, n);
            if let Some(p) = rows[i].series.get_mut(point) {
                match c {
                    DestinationCounter::Delivered => p.delivered += n,
                    DestinationCounter::Retrying | DestinationCounter::DeadLettered => {
                        p.failed += n
                    }
                    _ => {}
                }
            }
        }
    }
    Overview {
        window,
        from,
        to,
        step_seconds: step.whole_seconds(),
        destinations: rows,
        ingest,
    }
}

fn add_ingest(t: &mut IngestTotals, c: IngestCounter, n: u64) {
    match c {
        IngestCounter::Accepted => t.accepted += n,
        IngestCounter::Duplicates => t.duplicates += n,
        IngestCounter::Suppressed => t.suppressed += n,
        IngestCounter::Bots => t.bots += n,
        IngestCounter::Rejected(r) => *t.rejected.entry(r).or_default() += n,
    }
}

#[cfg(test)]
#[path = "overview_tests.rs"]
mod tests;
