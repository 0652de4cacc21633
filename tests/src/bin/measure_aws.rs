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
const EVENTS: usize = 1_000;
const BATCH: usize = 100;
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

const INIT_TARGET_MS: f64 = 30.0;
const COST_TARGET: f64 = 1.00;

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
        let arm = mib(repo_root().join(format!("target/lambda/{name}/bootstrap")));
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

/// Posts `count` purchases of `prefix` in batches, then drains the three queues.
async fn traffic(
    d: &Deployment,
    write_key: &str,
    prefix: &str,
    count: usize,
) -> anyhow::Result<usize> {
    let mut start = 0;
    while start < count {
        let end = (start + BATCH).min(count);
        let batch: Vec<Value> = (start..end).map(|i| purchase(prefix, i)).collect();
        let resp = d
            .http(
                HttpRequest::new("POST", "/v1/batch")
                    .basic_auth(write_key)
                    .header("user-agent", "analytics-node/7.0")
                    .json(&json!({ "batch": batch })),
            )
            .await?;
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

async fn cost(moto: &Moto, meter: &Meter, logs: &std::path::Path) -> anyhow::Result<()> {
    let stack = Stack::provision(&moto.endpoint, Region::Us, "cost").await?;
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
    traffic(&d, &ws.write_key, "warm", BATCH).await?;
    meter.reset();
    let ingest_before = d.function("ingest").durations().len();
    let deliver_before = d.function("deliver").durations().len();

    let deliver_invocations = traffic(&d, &ws.write_key, "m", EVENTS).await?;

    for sink in ["meta_capi", "ga4", "webhook:main"] {
        let got = fakes
            .received(sink)
            .keys()
            .filter(|k| k.starts_with("m-"))
            .count();
        anyhow::ensure!(got == EVENTS, "{sink} received {got} of {EVENTS} events");
    }
    let ingest_ms: Vec<f64> = d.function("ingest").durations()[ingest_before..]
        .iter()
        .map(|d| ms(*d).ceil())
        .collect();
    let deliver_ms: Vec<f64> = d.function("deliver").durations()[deliver_before..]
        .iter()
        .map(|d| ms(*d).ceil())
        .collect();
    d.stop();

    println!("## AWS requests per {EVENTS} events (batches of {BATCH}, 3 destinations)");
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
    let service = |s: &'static str| meter.total(move |k| k.2 == s);
    let (sqs, ddb, kms): (Tally, Tally, Tally) =
        (service("sqs"), service("dynamodb"), service("kms"));
    let per_million = 1_000_000.0 / EVENTS as f64;
    let api_requests = EVENTS.div_ceil(BATCH) as f64;
    let ingest_invocations = ingest_ms.len() as f64;
    let gb = f64::from(MEMORY_MB) / 1024.0;
    let gb_s = (ingest_ms.iter().sum::<f64>() + deliver_ms.iter().sum::<f64>()) / 1000.0 * gb;
    let lines = [
        ("API Gateway HTTP API", api_requests * APIGW_PER_M / 1e6),
        (
            "Lambda invocations",
            (ingest_invocations + deliver_invocations as f64) * LAMBDA_PER_M_INVOCATIONS / 1e6,
        ),
        ("Lambda duration (arm64)", gb_s * LAMBDA_ARM_PER_GB_S),
        ("SQS", sqs.billed_requests as f64 * SQS_PER_M / 1e6),
        ("DynamoDB writes", ddb.write_units * WRU_PER_M / 1e6),
        ("DynamoDB reads", ddb.read_units * RRU_PER_M / 1e6),
        ("KMS", kms.requests as f64 * KMS_PER_10K / 1e4),
    ];
    let total: f64 = lines.iter().map(|(_, c)| c).sum::<f64>() * per_million;
    println!();
    println!("per {EVENTS} events: {api_requests} API requests, {ingest_invocations} ingest + {deliver_invocations} deliver invocations, \
              {} SQS requests ({} billed), {:.1} WRU, {:.1} RRU, {} KMS requests",
        sqs.requests, sqs.billed_requests, ddb.write_units, ddb.read_units, kms.requests);
    println!(
        "handler durations: ingest median {:.0} ms, deliver median {:.0} ms ({MEMORY_MB} MB; destinations answer in {} ms; moto behind the meter stands in for DynamoDB/SQS/KMS: upper bounds)",
        median(ingest_ms.clone()),
        median(deliver_ms.clone()),
        DESTINATION_LATENCY.as_millis()
    );
    println!();
    println!("## Cost per million events (us-east-1 list prices)");
    for (what, c) in lines {
        let c = c * per_million;
        println!("{what:<26} ${c:>8.4}  {:>5.1} %", 100.0 * c / total);
    }
    println!(
        "{:<26} ${total:>8.4}  ratio to the $1.00 target: {:.2}x",
        "total",
        total / COST_TARGET
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let moto = Moto::start()?;
    let meter = Meter::start(&moto.endpoint).await?;
    let logs = tempfile::tempdir()?;
    let stack = Stack::provision(&moto.endpoint, Region::Us, "cold").await?;
    cold_starts(&stack, &meter.endpoint, logs.path()).await?;
    sizes();
    cost(&moto, &meter, logs.path()).await
}
