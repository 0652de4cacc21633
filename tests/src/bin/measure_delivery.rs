//! Measures delivery: requests sent per 1,000 events for each destination (against the
//! minimum its batch limit allows) and delivered events/s through fakes answering in 20 ms.
//!
//! `make measure-delivery` builds TrackLayer in release and runs this; it prints a table.

use std::time::{Duration, Instant};

use tracklayer_tests::fake::{self, Fakes};
use tracklayer_tests::*;

const SINKS: [(&str, usize); 4] = [
    ("meta_capi", 1000),
    ("ga4", 25),
    ("tiktok", 1000),
    ("webhook:main", 100),
];

/// Every measured destination: the first four, then the ad platforms of
/// [`fake::ad_destinations`] with their documented batch limits.
fn sinks() -> Vec<(&'static str, usize)> {
    let ads = fake::ad_destinations("");
    SINKS
        .into_iter()
        .chain(ads.into_iter().map(|(sink, _, limit)| (sink, limit)))
        .collect()
}

async fn run(
    events: usize,
    latency: Duration,
    window_ms: u64,
) -> anyhow::Result<(Duration, Vec<(String, u64)>)> {
    let [meta, ga4, tiktok, webhook] = MEASURE_SECRETS;
    let fakes = Fakes::new(meta, ga4, tiktok, webhook);
    fakes.set_latency(latency);
    let base = fake::serve(fakes.clone()).await;
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("data");
    let keys = init(&dir, "us")?;
    let ads = fake::ad_destinations(&base)
        .into_iter()
        .map(|(_, def, _)| def);
    for def in measure_destinations(&base).into_iter().chain(ads) {
        add_destination(&dir, &def)?;
    }
    let window = window_ms.to_string();
    let mut server = Server::start(
        &dir,
        &["--allow-private-egress", "--batch-window-ms", &window],
    )?;
    let started = Instant::now();
    post_purchases(&server.url, &keys.write_key, "ms", events).await;
    wait_until(Duration::from_secs(600), "delivery", || {
        sinks()
            .iter()
            .all(|(s, _)| fakes.received(s).len() >= events)
    })
    .await;
    let took = started.elapsed();
    server.stop()?;
    Ok((
        took,
        sinks()
            .iter()
            .map(|(s, _)| ((*s).to_owned(), fakes.requests(s).0))
            .collect(),
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let events: usize = std::env::args()
        .skip_while(|a| a != "--events")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);

    println!(
        "# Delivery measurement: {events} purchase events, {} destinations, release build",
        sinks().len()
    );
    let (_, default_window) = run(events, Duration::ZERO, 250).await?;
    let (_, one_second) = run(events, Duration::ZERO, 1000).await?;
    println!("\n| destination | batch limit | requests per 1,000 events (250 ms window, default) | (1 s window) | minimum |");
    println!("|---|---|---|---|---|");
    let measured = sinks();
    for (((sink, limit), (_, a)), (_, b)) in measured.iter().zip(&default_window).zip(&one_second) {
        let per_k = |sent: u64| sent as f64 * 1000.0 / events as f64;
        let min = (1000f64 / *limit as f64).ceil();
        println!(
            "| {sink} | {limit} | {:.1} | {:.1} | {min:.1} |",
            per_k(*a),
            per_k(*b)
        );
    }

    let (took, _) = run(events, Duration::from_millis(20), 250).await?;
    let rate = events as f64 / took.as_secs_f64();
    println!(
        "\nWith every destination answering in 20 ms: {events} events reached all {} destinations \
         in {:.2} s = {rate:.0} events/s per destination ({:.0} deliveries/s in all), \
         ingest included.",
        sinks().len(),
        took.as_secs_f64(),
        rate * sinks().len() as f64
    );
    Ok(())
}
