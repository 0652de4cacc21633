//! `make measure-aws`: the Lambda functions (release builds) on emulated AWS.
//!
//! 1. Cold start of each function under the Runtime API emulator: process start to its first
//!    `GET /invocation/next` (init), and to its first answer (init + a first cheap request).
//! 2. Binary sizes: the native release builds, and the arm64 `bootstrap`s of `make lambda`
//!    if they were built.
//! 3. AWS requests and DynamoDB units per 1,000 ingested events (batches of 100, three
//!    destinations: Meta CAPI, GA4, a webhook), counted by a meter between the functions and
//!    moto, and the cost per million events at us-east-1 list prices (DESIGN.md § Cost).
//!
//! A measurement, not a test: it prints numbers and their ratio to the targets.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};
use tracklayer_core::destination::DestinationKind;
use tracklayer_core::workspace::Region;
use tracklayer_tests::fake::{self, Fakes};
use tracklayer_tests::lambda::events::{schedule_event, HttpRequest};
use tracklayer_tests::lambda::function::{find_function_bin, LambdaProcess, MEMORY_MB};
use tracklayer_tests::lambda::meter::{Meter, Tally};
use tracklayer_tests::lambda::stack::{Moto, Stack, ESM_ACCESS_KEY};
use tracklayer_tests::lambda::Deployment;
use tracklayer_tests::{fake_destinations, purchase, repo_root};

const FUNCTIONS: [&str; 4] = ["ingest", "deliver", "admin", "dsr"];
const COLD_RUNS: usize = 7;
/// How long the fake destinations take to answer (a typical ad-API round trip).
const DESTINATION_LATENCY: Duration = Duration::from_millis(100);

// us-east-1 list prices (DESIGN.md § Cost).
const APIGW_PER_M: f64 = 1.00;
const LAMBDA_PER_M_INVOCATIONS: f64 = 0.20;
const LAMBDA_ARM_PER_GB_S: f64 = 0.000_013_333_4;
const SQS_PER_M: f64 = 0.40;
const WRU_PER_M: f64 = 0.625;
const RRU_PER_M: f64 = 0.125;
const KMS_PER_10K: f64 = 0.03;

/// CloudFront's price per million HTTPS requests (US, Europe).
const CLOUDFRONT_PER_M: f64 = 1.00;
/// The front door `template.yaml` deploys, the first line of the bill.
const FRONT_DOOR: &str = "API Gateway HTTP API";
/// Front doors by price per million requests.
const FRONT_DOORS: [(&str, f64); 3] = [
    (FRONT_DOOR, APIGW_PER_M),
    ("CloudFront + Lambda function URL", CLOUDFRONT_PER_M),
    ("Lambda function URL (no per-request price)", 0.0),
];

const INIT_TARGET_MS: f64 = 30.0;

const META_TOKEN: &str = "EAAGmeasureawstoken";
const GA4_SECRET: &str = "ga4MeasureAwsSecret"; // pragma: allowlist secret
const TIKTOK_TOKEN: &str = "tiktokMeasureAwsToken";
// A made-up Standard Webhooks secret, only ever used against loopback.
const WEBHOOK_SECRET: &str = "whsec_bWVhc3VyZS1hd3Mtc2lnbmluZy1rZXktMDAwMQ=="; // pragma: allowlist secret

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// A cheap first request for each function.
fn first_event(name: &str, region: &str) -> Value {
    use tracklayer_tests::lambda::events::http_api_event;
    match name {
        "ingest" => http_api_event(&HttpRequest::new("GET", "/healthz"), region, "cold", 0),
        "admin" => http_api_event(
            &HttpRequest::new("GET", "/admin/v1/openapi.json"),
            region,
            "cold",
            0,
        ),
        "deliver" => json!({ "Records": [] }),
        _ => schedule_event(region),
    }
}

async fn cold_starts(stack: &Stack, endpoint: &str, logs: &std::path::Path) -> anyhow::Result<()> {
    let profile = if cfg!(debug_assertions) {
        "native DEBUG build: use `make measure-aws`"
    } else {
        "native release build"
    };
    println!("## Cold start under the Runtime API emulator ({profile}, median of {COLD_RUNS})");
    println!(
        "{:<8} {:>14} {:>16} {:>12}",
        "function", "init (ms)", "first answer (ms)", "init/target"
    );
    let env = stack.function_env(endpoint);
    for name in FUNCTIONS {
        let Some(bin) = find_function_bin(name) else {
            println!("{name:<8} not built");
            continue;
        };
        let (mut init, mut first) = (Vec::new(), Vec::new());
        for _ in 0..COLD_RUNS {
            let p = LambdaProcess::start(&bin, name, &stack.aws_region, &env, logs).await?;
            p.wait_ready(Duration::from_secs(20)).await?;
            p.invoke(
                &first_event(name, &stack.aws_region),
                Duration::from_secs(30),
            )
            .await?
            .into_response()
            .with_context(|| format!("{name}'s first request"))?;
            let c = p.cold_start();
            init.push(ms(c.to_first_next.context("no init mark")?));
            first.push(ms(c.to_first_answer.context("no answer mark")?));
            p.stop();
        }
        let init = median(init);
        println!(
            "{name:<8} {init:>14.1} {:>16.1} {:>11.2}x",
            median(first),
            init / INIT_TARGET_MS
        );
    }
    println!("(target: init <= {INIT_TARGET_MS} ms)\n");
    Ok(())
}

/// The target directory this binary was built in (`<target>/release/measure-aws`), where
/// `make lambda` puts the arm64 `bootstrap`s too (`<target>/lambda/<name>/bootstrap`).
fn target_dir() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the measure binary's path");
    exe.ancestors()
        .nth(2)
        .map_or_else(|| repo_root().join("target"), std::path::Path::to_path_buf)
}

fn sizes() {
    println!("## Binary sizes");
    println!(
        "{:<8} {:>22} {:>26}",
        "function",
        if cfg!(debug_assertions) {
            "native debug (MiB)"
        } else {
            "native release (MiB)"
        },
        "arm64 bootstrap (MiB)"
    );
    let mib = |p: std::path::PathBuf| {
        std::fs::metadata(&p)
            .map(|m| format!("{:.1}", m.len() as f64 / 1024.0 / 1024.0))
            .unwrap_or_else(|_| "not built".into())
    };
    for name in FUNCTIONS {
        let native = find_function_bin(name)
            .map(&mib)
            .unwrap_or_else(|| "not built".into());
        let arm = mib(target_dir().join(format!("lambda/{name}/bootstrap")));
        println!("{name:<8} {native:>22} {arm:>26}");
    }
    println!();
}

async fn add_destinations(d: &Deployment, token: &str, base: &str) -> anyhow::Result<()> {
    let secrets = [META_TOKEN, GA4_SECRET, TIKTOK_TOKEN, WEBHOOK_SECRET];
    for spec in fake_destinations(base, secrets, "G-MEASURE1", None) {
        d.add_destination(token, &spec).await?;
    }
    Ok(())
}

const KINDS: [DestinationKind; 3] = [
    DestinationKind::MetaCapi,
    DestinationKind::Ga4,
    DestinationKind::Webhook,
];

/// A traffic pattern: `events` purchases sent `batch` at a time (`POST /v1/batch`), or one
/// per request as browser-side SDKs send them (`POST /v1/track`) when `batch` is 1.
#[derive(Debug, Clone, Copy)]
struct Mode {
    batch: usize,
    events: usize,
    /// The total's target, $ per million events.
    target: f64,
}

const MODES: [Mode; 2] = [
    Mode {
        batch: 100,
        events: 1_000,
        target: 0.25,
    },
    Mode {
        batch: 1,
        events: 300,
        target: 1.00,
    },
];

/// Posts `count` purchases of `prefix` as `mode` sends them, then drains the three queues.
async fn traffic(
    d: &Deployment,
    write_key: &str,
    prefix: &str,
    count: usize,
    batch: usize,
) -> anyhow::Result<usize> {
    let mut start = 0;
    while start < count {
        let end = (start + batch).min(count);
        let request = if batch == 1 {
            HttpRequest::new("POST", "/v1/track")
                .header("user-agent", "analytics.js/5.0 Mozilla/5.0")
                .json(&purchase(prefix, start))
        } else {
            let events: Vec<Value> = (start..end).map(|i| purchase(prefix, i)).collect();
            HttpRequest::new("POST", "/v1/batch")
                .header("user-agent", "analytics-node/7.0")
                .json(&json!({ "batch": events }))
        };
        let resp = d.http(request.basic_auth(write_key)).await?;
        anyhow::ensure!(resp.status == 200, "ingest answered {}", resp.status);
        start = end;
    }
    let mut invocations = 0;
    for kind in KINDS {
        let drained = d.drain(kind).await?;
        anyhow::ensure!(drained.failed == 0, "{kind:?}: {drained:?}");
        invocations += drained.invocations;
    }
    Ok(invocations)
}

/// The meter's tallies of one mode: per operation, per table.
fn print_tallies(meter: &Meter, mode: Mode) {
    println!(
        "## AWS requests per {} events (batches of {}, 3 destinations)",
        mode.events, mode.batch
    );
    println!(
        "{:<10} {:<9} {:<26} {:>8} {:>8} {:>9} {:>9}",
        "caller", "service", "operation", "requests", "billed", "WRU", "RRU"
    );
    for ((caller, _region, service, op), t) in meter.tallies() {
        let who = if caller == ESM_ACCESS_KEY {
            "esm"
        } else {
            "functions"
        };
        println!(
            "{who:<10} {service:<9} {op:<26} {:>8} {:>8} {:>9.1} {:>9.1}",
            t.requests, t.billed_requests, t.write_units, t.read_units
        );
    }
    println!();
    println!("DynamoDB per table:");
    println!(
        "{:<36} {:<16} {:>8} {:>9} {:>9}",
        "table", "operation", "requests", "WRU", "RRU"
    );
    for ((table, op), t) in meter.table_tallies() {
        println!(
            "{table:<36} {op:<16} {:>8} {:>9.1} {:>9.1}",
            t.requests, t.write_units, t.read_units
        );
    }
}

/// One mode on a fresh stack: what AWS would bill per million events, by line, with the
/// template's front door (API Gateway HTTP API).
async fn cost(
    moto: &Moto,
    meter: &Meter,
    logs: &std::path::Path,
    mode: Mode,
) -> anyhow::Result<Vec<(&'static str, f64)>> {
    let stack =
        Stack::provision(&moto.endpoint, Region::Us, &format!("cost{}", mode.batch)).await?;
    let env = BTreeMap::from([("TRACKLAYER_ALLOW_PRIVATE_EGRESS".into(), "true".into())]);
    let d = Deployment::start(
        stack,
        &meter.endpoint,
        &["ingest", "deliver", "admin"],
        &env,
        logs,
    )
    .await?;
    let ws = d.seed_workspace(&moto.endpoint, "Measure").await?;
    let fakes = Fakes::new(META_TOKEN, GA4_SECRET, TIKTOK_TOKEN, WEBHOOK_SECRET);
    fakes.set_latency(DESTINATION_LATENCY);
    let base = fake::serve(fakes.clone()).await;
    add_destinations(&d, &ws.admin_token, &base).await?;
    // Warm: the first batch pays the caches (API key, data key, destinations).
    traffic(&d, &ws.write_key, "warm", mode.batch, mode.batch).await?;
    meter.reset();
    let ingest_before = d.function("ingest").durations().len();
    let deliver_before = d.function("deliver").durations().len();

    let events = mode.events;
    let deliver_invocations = traffic(&d, &ws.write_key, "m", events, mode.batch).await?;

    for sink in ["meta_capi", "ga4", "webhook:main"] {
        let got = fakes
            .received(sink)
            .keys()
            .filter(|k| k.starts_with("m-"))
            .count();
        anyhow::ensure!(got == events, "{sink} received {got} of {events} events");
    }
    let durations = |name: &str, before: usize| -> Vec<f64> {
        d.function(name).durations()[before..]
            .iter()
            .map(|d| ms(*d).ceil())
            .collect()
    };
    let ingest_ms = durations("ingest", ingest_before);
    let deliver_ms = durations("deliver", deliver_before);
    d.stop();

    print_tallies(meter, mode);
    let service = |s: &'static str| meter.total(move |k| k.2 == s);
    let (sqs, ddb, kms): (Tally, Tally, Tally) =
        (service("sqs"), service("dynamodb"), service("kms"));
    let per_million = 1_000_000.0 / events as f64;
    let api_requests = events.div_ceil(mode.batch) as f64;
    let ingest_invocations = ingest_ms.len() as f64;
    let gb = f64::from(MEMORY_MB) / 1024.0;
    let gb_s = (ingest_ms.iter().sum::<f64>() + deliver_ms.iter().sum::<f64>()) / 1000.0 * gb;
    let lines: Vec<(&'static str, f64)> = [
        (FRONT_DOOR, api_requests * APIGW_PER_M / 1e6),
        (
            "Lambda invocations",
            (ingest_invocations + deliver_invocations as f64) * LAMBDA_PER_M_INVOCATIONS / 1e6,
        ),
        ("Lambda duration (arm64)", gb_s * LAMBDA_ARM_PER_GB_S),
        ("SQS", sqs.billed_requests as f64 * SQS_PER_M / 1e6),
        ("DynamoDB writes", ddb.write_units * WRU_PER_M / 1e6),
        ("DynamoDB reads", ddb.read_units * RRU_PER_M / 1e6),
        ("KMS", kms.requests as f64 * KMS_PER_10K / 1e4),
    ]
    .into_iter()
    .map(|(what, c)| (what, c * per_million))
    .collect();
    let total: f64 = lines.iter().map(|(_, c)| c).sum();
    println!();
    println!("per {events} events: {api_requests} API requests, {ingest_invocations} ingest + {deliver_invocations} deliver invocations, \
              {} SQS requests ({} billed), {:.1} WRU, {:.1} RRU, {} KMS requests",
        sqs.requests, sqs.billed_requests, ddb.write_units, ddb.read_units, kms.requests);
    println!(
        "handler durations: ingest median {:.0} ms, deliver median {:.0} ms ({MEMORY_MB} MB; destinations answer in {} ms; moto behind the meter stands in for DynamoDB/SQS/KMS: upper bounds)",
        median(ingest_ms.clone()),
        median(deliver_ms.clone()),
        DESTINATION_LATENCY.as_millis()
    );
    println!();
    println!(
        "## Cost per million events, batches of {} (us-east-1 list prices)",
        mode.batch
    );
    for (what, c) in &lines {
        println!("{what:<26} ${c:>8.4}  {:>5.1} %", 100.0 * c / total);
    }
    println!(
        "{:<26} ${total:>8.4}  ratio to the ${:.2} target: {:.2}x\n",
        "total",
        mode.target,
        total / mode.target
    );
    Ok(lines)
}

/// The front doors compared at each batch size: the measured rest of the bill plus each
/// door's per-request price (an Application Load Balancer bills by the hour instead: see
/// the README).
fn front_doors(results: &[(Mode, Vec<(&'static str, f64)>)]) {
    println!("## Total $ per million events by front door (the rest as measured)");
    print!("{:<44}", "front door");
    for (mode, _) in results {
        print!(" {:>12}", format!("batch {}", mode.batch));
    }
    println!();
    for (door, per_m_requests) in FRONT_DOORS {
        print!("{door:<44}");
        for (mode, lines) in results {
            let rest: f64 = lines
                .iter()
                .filter(|(what, _)| *what != FRONT_DOOR)
                .map(|(_, c)| c)
                .sum();
            let door_cost = per_m_requests / mode.batch as f64;
            print!(" {:>12}", format!("${:.4}", rest + door_cost));
        }
        println!();
    }
    for (mode, lines) in results {
        let total: f64 = lines.iter().map(|(_, c)| c).sum();
        println!(
            "batch {}: ${total:.4} with API Gateway (target ${:.2}: {:.2}x)",
            mode.batch,
            mode.target,
            total / mode.target
        );
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let moto = Moto::start()?;
    let meter = Meter::start(&moto.endpoint).await?;
    let logs = tempfile::tempdir()?;
    let stack = Stack::provision(&moto.endpoint, Region::Us, "cold").await?;
    cold_starts(&stack, &meter.endpoint, logs.path()).await?;
    sizes();
    let mut results = Vec::new();
    for mode in MODES {
        results.push((mode, cost(&moto, &meter, logs.path(), mode).await?));
    }
    front_doors(&results);
    Ok(())
}
