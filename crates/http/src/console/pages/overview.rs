//! The overview: for the last hour, 24 hours or 7 days, ingest totals and per destination
//! what was received, routed, delivered, retrying, dead-lettered and dropped, with a
//! server-rendered SVG chart (no script) and the same numbers as a table.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use tracklayer_core::admin::{DestinationOverview, StatsWindow};

use super::destination_form::kind_label;
use super::label;
use crate::console::session::Me;
use crate::console::view::{page, when, Failure, Shell};
use crate::console::ConsoleState;

#[derive(Debug, Deserialize)]
pub struct Window {
    window: Option<String>,
}

/// Width and height of a chart's drawing area (SVG user units).
const W: f64 = 600.0;
const H: f64 = 120.0;

struct Bar {
    x: String,
    width: String,
    delivered_y: String,
    delivered_h: String,
    failed_y: String,
    failed_h: String,
    title: String,
    from: String,
    delivered: u64,
    failed: u64,
}

struct Row {
    id: String,
    name: String,
    kind: &'static str,
    d: DestinationOverview,
    dropped: u64,
    bars: Vec<Bar>,
    peak: u64,
}

#[derive(Template)]
#[template(path = "console/overview.html")]
struct Overview {
    shell: Shell,
    window: &'static str,
    windows: [&'static str; 3],
    from: String,
    to: String,
    accepted: u64,
    rejected: u64,
    duplicates: u64,
    suppressed: u64,
    rejected_by: Vec<(String, u64)>,
    rows: Vec<Row>,
}

/// `GET /?window=1h|24h|7d` (default 24h).
pub async fn overview(State(s): State<ConsoleState>, me: Me, Query(q): Query<Window>) -> Response {
    let window = match q.window.as_deref().map(StatsWindow::parse) {
        None => StatsWindow::Day,
        Some(Ok(w)) => w,
        Some(Err(e)) => return Failure::of(&s, e).page(),
    };
    let o = match s.admin().overview(&me.principal, window).await {
        Ok(o) => o,
        Err(e) => return Failure::of(&s, e).page(),
    };
    let rows = o.destinations.into_iter().map(row).collect();
    page(&Overview {
        shell: Shell::new(&me, "overview", "Overview"),
        window: window.as_str(),
        windows: StatsWindow::ALL.map(StatsWindow::as_str),
        from: when(o.from),
        to: when(o.to),
        accepted: o.ingest.accepted,
        rejected: o.ingest.rejected_total(),
        duplicates: o.ingest.duplicates,
        suppressed: o.ingest.suppressed,
        rejected_by: o
            .ingest
            .rejected
            .iter()
            .map(|(reason, n)| (label(reason), *n))
            .collect(),
        rows,
    })
}

fn row(d: DestinationOverview) -> Row {
    let peak = d
        .series
        .iter()
        .map(|p| p.delivered + p.failed)
        .max()
        .unwrap_or(0);
    let scale = H / peak.max(1) as f64;
    let n = d.series.len().max(1) as f64;
    let slot = W / n;
    let bars = d
        .series
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let dh = p.delivered as f64 * scale;
            let fh = p.failed as f64 * scale;
            Bar {
                x: format!("{:.1}", i as f64 * slot + slot * 0.1),
                width: format!("{:.1}", slot * 0.8),
                delivered_y: format!("{:.1}", H - dh),
                delivered_h: format!("{dh:.1}"),
                failed_y: format!("{:.1}", H - dh - fh),
                failed_h: format!("{fh:.1}"),
                title: format!(
                    "{}: {} delivered, {} failed",
                    when(p.start),
                    p.delivered,
                    p.failed
                ),
                from: when(p.start),
                delivered: p.delivered,
                failed: p.failed,
            }
        })
        .collect();
    let c = &d.counts;
    Row {
        id: d.destination_id.to_string(),
        name: d
            .name
            .clone()
            .unwrap_or_else(|| "(deleted destination)".into()),
        kind: d.kind.map_or("", |k| kind_label(k.as_str())),
        dropped: c.dropped_consent + c.dropped_filter + c.invalid,
        bars,
        peak,
        d,
    }
}
