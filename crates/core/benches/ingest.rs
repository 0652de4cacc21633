//! Ingest pipeline cost against bare JSON parsing of the same batch (issue 2, item 7).
//!
//! `cargo bench -p tracklayer-core` runs, on `fixtures/purchase_batch.json` (100 Segment
//! "Order Completed" events with email, phone, name, address and consent, all routed to Meta
//! CAPI, GA4 and TikTok):
//!
//! - `ingest/parse_only`: `serde_json::from_slice::<Value>` of the body, the baseline;
//! - `ingest/pipeline`: [`parse_body`] + [`prepare`] + [`pack`], everything ingest does before
//!   storage and queueing (validate, normalize, hash, subject index, consent, route, scrub,
//!   seal, serialize the queue messages), with the items by value in the messages (SQS, the
//!   Lambda ingest);
//! - `ingest/pipeline_by_reference`: the same for a queue that holds items by reference (the
//!   SQLite queue of `tracklayer serve`: an item is its event's id, its consent and sealed
//!   fields).
//!
//! After criterion's own report it measures both again in one interleaved loop (criterion 0.5
//! does not hand its estimates to the bench) and prints ns/event and the ratio against the
//! target: the pipeline costs at most 4× the bare parse (DESIGN.md: targets are ratios against
//! a baseline measured in the same run).
//!
//! A fast run for CI smoke use: `cargo bench -p tracklayer-core -- --quick`, or
//! `TRACKLAYER_BENCH_QUICK=1 cargo bench -p tracklayer-core`. Under `cargo test --benches` each
//! benchmark runs once and the summary is skipped.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use serde_json::Value;

use tracklayer_core::clock::SystemIds;
use tracklayer_core::destination::DestinationKind;
use tracklayer_core::ingest::{
    pack, parse_body, prepare, Endpoint, Holding, Pipeline, RequestMeta, Snapshot,
    MAX_QUEUE_MESSAGE_BYTES,
};
use tracklayer_core::ports::Outgoing;
use tracklayer_core::testkit;

/// The allocator `tracklayer serve` runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: &[u8] = include_bytes!("fixtures/purchase_batch.json");
/// The engine issue's target for pipeline / parse (an earlier issue's was 4.0, which the
/// pipeline meets; this one it does not yet).
const TARGET_RATIO: f64 = 2.0;

/// Everything a [`Pipeline`] borrows.
struct Setup {
    snapshot: Snapshot,
    ids: SystemIds,
    meta: RequestMeta,
}

impl Setup {
    /// A US workspace with the default consent policy (US: opt-out), and Meta CAPI, GA4 and
    /// TikTok destinations with their default purposes, as the port contract suites build them.
    fn new() -> Self {
        let kinds = [
            DestinationKind::MetaCapi,
            DestinationKind::Ga4,
            DestinationKind::Tiktok,
        ];
        Self {
            snapshot: testkit::snapshot(kinds),
            ids: SystemIds,
            meta: RequestMeta {
                ip: None,
                user_agent: None,
                gpc: false,
                browser: false,
            },
        }
    }

    /// The connectors' requirements are not a dependency of core: no requirement check.
    fn pipeline(&self, holding: Holding) -> Pipeline<'_> {
        self.snapshot
            .pipeline(&self.ids, &self.meta, testkit::T0, holding)
    }
}

/// The baseline: what any JSON endpoint pays to read the body.
fn parse_only(body: &[u8]) -> Value {
    serde_json::from_slice::<Value>(body).expect("the fixture is JSON")
}

/// What ingest does to a request before it touches storage or a queue.
fn pipeline(p: &Pipeline<'_>, body: &[u8]) -> (usize, Vec<Outgoing>) {
    let parsed = parse_body(Endpoint::Batch, body).expect("the fixture is a valid batch");
    let prepared = prepare(p, &parsed);
    let accepted = prepared.events.len();
    let messages = pack(
        &p.workspace.id,
        p.destinations,
        prepared.items.into_iter().flatten(),
        MAX_QUEUE_MESSAGE_BYTES,
        p.holding,
    );
    // The events themselves go to the event store; dropping them is part of the cost.
    drop(prepared.events);
    (accepted, messages)
}

/// Fails the bench, rather than measuring something else, if the fixture stops exercising
/// the whole pipeline.
fn check_fixture(p: &Pipeline<'_>, events: usize) {
    let parsed = parse_body(Endpoint::Batch, BATCH).expect("the fixture is a valid batch");
    let prepared = prepare(p, &parsed);
    assert_eq!(prepared.rejected, [], "the fixture has rejected events");
    assert_eq!(prepared.events.len(), events);
    for (event, items) in prepared.events.iter().zip(&prepared.items) {
        assert_eq!(
            items.len(),
            3,
            "every event is routed to all 3 destinations"
        );
        assert_eq!(event.event.hashed.len(), 3, "hashed for 3 profiles");
        assert!(event.operational.is_some(), "IP and user agent are sealed");
        assert!(
            event.event.subjects.len() >= 4,
            "email, phone, user and anonymous id"
        );
    }
    let (_, messages) = pipeline(p, BATCH);
    let destinations: std::collections::BTreeSet<_> =
        messages.iter().map(|m| &m.destination_id).collect();
    assert_eq!(
        destinations.len(),
        3,
        "queue messages for every destination"
    );
    // Raw identifiers never reach a queue message.
    let batch = parse_only(BATCH);
    let emails: Vec<String> = batch["batch"]
        .as_array()
        .expect("the fixture has a batch")
        .iter()
        .filter_map(|e| e["context"]["traits"]["email"].as_str())
        .map(|e| e.trim().to_lowercase())
        .collect();
    assert_eq!(emails.len(), events);
    for m in &messages {
        let body = String::from_utf8_lossy(&m.body).to_lowercase();
        assert!(emails.iter().all(|e| !body.contains(e.as_str())));
    }
}

/// How long to measure, from the command line and environment.
struct Mode {
    /// Criterion is benchmarking (not `--test`, `--list` or `--profile-time`).
    bench: bool,
    quick: bool,
}

impl Mode {
    fn from_env() -> Self {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let has = |flag: &str| {
            args.iter()
                .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
        };
        let quick_env = std::env::var("TRACKLAYER_BENCH_QUICK")
            .is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
        Self {
            bench: has("--bench") && !has("--test") && !has("--list") && !has("--profile-time"),
            quick: quick_env || has("--quick"),
        }
    }
}

fn criterion_group(c: &mut Criterion, p: &Pipelines<'_>, events: usize) {
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(events as u64));
    group.bench_function("parse_only", |b| b.iter(|| parse_only(black_box(BATCH))));
    group.bench_function("pipeline", |b| {
        b.iter(|| pipeline(&p.by_value, black_box(BATCH)))
    });
    group.bench_function("pipeline_by_reference", |b| {
        b.iter(|| pipeline(&p.by_reference, black_box(BATCH)))
    });
    group.finish();
}

/// The pipeline for each way a queue holds items.
struct Pipelines<'a> {
    by_value: Pipeline<'a>,
    by_reference: Pipeline<'a>,
}

/// Nanoseconds per call of `f`, one sample: `iters` calls back to back.
fn sample<T>(iters: u32, mut f: impl FnMut() -> T) -> f64 {
    let start = Instant::now();
    for _ in 0..iters {
        black_box(f());
    }
    start.elapsed().as_nanos() as f64 / f64::from(iters)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// Calls per sample so that one sample of `f` lasts about `target`.
fn calibrate<T>(target: Duration, mut f: impl FnMut() -> T) -> u32 {
    let once = sample(3, &mut f).max(1.0);
    ((target.as_nanos() as f64 / once).ceil() as u32).max(1)
}

/// The figures the README quotes: all measured in one loop, alternating, so that a noisy
/// neighbour slows each alike.
fn summary(p: &Pipelines<'_>, events: usize, quick: bool) {
    let (samples, per_sample) = if quick {
        (15, Duration::from_millis(10))
    } else {
        (61, Duration::from_millis(40))
    };
    // Warm: lazily built tables, the allocator's free lists, the caches.
    sample(5, || parse_only(BATCH));
    sample(5, || pipeline(&p.by_value, BATCH));
    sample(5, || pipeline(&p.by_reference, BATCH));
    let parse_iters = calibrate(per_sample, || parse_only(BATCH));
    let value_iters = calibrate(per_sample, || pipeline(&p.by_value, BATCH));
    let reference_iters = calibrate(per_sample, || pipeline(&p.by_reference, BATCH));
    let (mut parse, mut value, mut reference) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..samples {
        parse.push(sample(parse_iters, || parse_only(black_box(BATCH))));
        value.push(sample(value_iters, || {
            pipeline(&p.by_value, black_box(BATCH))
        }));
        reference.push(sample(reference_iters, || {
            pipeline(&p.by_reference, black_box(BATCH))
        }));
    }
    let n = events as f64;
    let best = |xs: &[f64]| xs.iter().copied().fold(f64::INFINITY, f64::min) / n;
    let paired = |xs: &[f64]| median(xs.iter().zip(&parse).map(|(x, p)| x / p).collect());
    println!();
    println!(
        "summary ({events} events, {} bytes, {samples} interleaved samples, medians{}):",
        BATCH.len(),
        if quick { ", quick" } else { "" }
    );
    let parse_ns = median(parse.clone()) / n;
    println!(
        "  ingest/parse_only             {parse_ns:>9.0} ns/event  (best sample {:.0})",
        best(&parse)
    );
    for (name, xs) in [("pipeline", &value), ("pipeline_by_reference", &reference)] {
        let ns = median(xs.clone()) / n;
        let ratio = ns / parse_ns;
        let verdict = if ratio <= TARGET_RATIO {
            "ok"
        } else {
            "OVER TARGET"
        };
        println!(
            "  ingest/{name:<22} {ns:>9.0} ns/event  (best sample {:.0}); ratio to parse = \
             {ratio:.2} (target ≤ {TARGET_RATIO:.2}) {verdict}  [median of paired ratios \
             {:.2}; best samples {:.2}]",
            best(xs),
            paired(xs),
            best(xs) / best(&parse)
        );
    }
}

/// `TRACKLAYER_BENCH_RUN=<bench>:<n>` (`parse_only`, `pipeline` or `pipeline_by_reference`)
/// runs that benchmark's routine `n` times and nothing else: for `perf stat -e instructions:u`,
/// whose counts (less those of `n` = 0) hold steady on a shared machine where times do not.
fn run_only(p: &Pipelines<'_>, run: &str) {
    let (name, n) = run
        .split_once(':')
        .and_then(|(name, n)| Some((name, n.parse::<u32>().ok()?)))
        .expect("TRACKLAYER_BENCH_RUN=<bench>:<n>");
    for _ in 0..n {
        match name {
            "parse_only" => drop(black_box(parse_only(black_box(BATCH)))),
            "pipeline" => drop(black_box(pipeline(&p.by_value, black_box(BATCH)))),
            "pipeline_by_reference" => drop(black_box(pipeline(&p.by_reference, black_box(BATCH)))),
            other => panic!("no benchmark {other}"),
        }
    }
}

fn main() {
    let mode = Mode::from_env();
    let setup = Setup::new();
    let p = Pipelines {
        by_value: setup.pipeline(Holding::ByValue),
        by_reference: setup.pipeline(Holding::ByReference),
    };
    let events = parse_only(BATCH)["batch"]
        .as_array()
        .expect("the fixture has a batch")
        .len();
    check_fixture(&p.by_value, events);
    check_fixture(&p.by_reference, events);
    if let Ok(run) = std::env::var("TRACKLAYER_BENCH_RUN") {
        run_only(&p, &run);
        return;
    }

    let mut c = Criterion::default();
    if mode.quick {
        c = c
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
    }
    let mut c = c.configure_from_args();
    criterion_group(&mut c, &p, events);
    c.final_summary();

    if mode.bench {
        summary(&p, events, mode.quick);
    }
}
