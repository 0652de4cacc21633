//! The Lambda functions end to end on emulated AWS: the built `ingest`, `deliver`, `admin` and `dsr`
//! binaries under the Runtime API emulator, fed API Gateway (payload 2.0) and SQS events,
//! with every AWS service on moto. A `us` stack lives in us-east-1 and an `eu` stack in
//! eu-central-1 of the same moto.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};
use tracklayer_core::destination::DestinationKind;
use tracklayer_core::workspace::Region;
use tracklayer_tests::fake::{self, Fakes};
use tracklayer_tests::lambda::events::HttpRequest;
use tracklayer_tests::lambda::stack::{clients, Moto, Stack, FUNCTION_ACCESS_KEY, PUBLIC_URL_EU};
use tracklayer_tests::lambda::{Deployment, Seeded};
use tracklayer_tests::{fake_destinations, poll, purchase};

const META_TOKEN: &str = "EAAGlambdae2etesttoken"; // pragma: allowlist secret
const GA4_SECRET: &str = "ga4LambdaE2eSecret"; // pragma: allowlist secret
const TIKTOK_TOKEN: &str = "tiktokLambdaE2eToken"; // pragma: allowlist secret

// A made-up Standard Webhooks secret, only ever used against loopback.
const WEBHOOK_SECRET: &str = "whsec_bGFtYmRhLWUyZS1zaWduaW5nLWtleS0wMDAx"; // pragma: allowlist secret

/// Loopback destinations: only test stacks may reach private addresses.
fn test_env() -> BTreeMap<String, String> {
    BTreeMap::from([("TRACKLAYER_ALLOW_PRIVATE_EGRESS".into(), "true".into())])
}

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub(crate) async fn deploy(
    residency: Region,
    names: &[&str],
    logs: &std::path::Path,
) -> (Deployment, Seeded) {
    let moto = Moto::shared();
    deploy_reaching(&moto.endpoint, residency, names, logs, "Lambda E2E").await
}

/// A fresh stack whose functions reach moto through a meter, with a seeded workspace.
async fn metered(
    residency: Region,
    names: &[&str],
    logs: &std::path::Path,
) -> (tracklayer_tests::lambda::meter::Meter, Deployment, Seeded) {
    let moto = Moto::shared();
    let meter = tracklayer_tests::lambda::meter::Meter::start(&moto.endpoint)
        .await
        .unwrap();
    let (d, ws) = deploy_reaching(&meter.endpoint, residency, names, logs, "Metered").await;
    (meter, d, ws)
}

/// A stack of its own on moto, with `residency`.
async fn fresh_stack(residency: Region) -> Stack {
    let moto = Moto::shared();
    Stack::provision(&moto.endpoint, residency, &unique("s"))
        .await
        .expect("provision a stack on moto")
}

/// A fresh stack on moto whose functions reach AWS at `aws` (moto itself or a meter in front
/// of it), with a seeded workspace named `name`.
async fn deploy_reaching(
    aws: &str,
    residency: Region,
    names: &[&str],
    logs: &std::path::Path,
    name: &str,
) -> (Deployment, Seeded) {
    let moto = Moto::shared();
    let stack = fresh_stack(residency).await;
    let d = Deployment::start(stack, aws, names, &test_env(), logs)
        .await
        .expect("start the functions");
    let seeded = d
        .seed_workspace(&moto.endpoint, name)
        .await
        .expect("seed a workspace");
    (d, seeded)
}

/// Every item of a table, as (attribute name → value) maps.
async fn scan(region: &str, table: &str) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    let c = clients(&Moto::shared().endpoint, region, FUNCTION_ACCESS_KEY).await;
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = c
            .dynamodb
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan a table");
        items.extend(page.items.unwrap_or_default());
        start = page.last_evaluated_key;
        if start.is_none() {
            return items;
        }
    }
}

/// Whether `needle` occurs anywhere in an item (names or string values, nested).
fn mentions(item: &std::collections::HashMap<String, AttributeValue>, needle: &str) -> bool {
    fn value(v: &AttributeValue, needle: &str) -> bool {
        match v {
            AttributeValue::S(s) => s.contains(needle),
            AttributeValue::B(b) => b
                .as_ref()
                .windows(needle.len())
                .any(|w| w == needle.as_bytes()),
            AttributeValue::L(l) => l.iter().any(|e| value(e, needle)),
            AttributeValue::M(m) => m
                .iter()
                .any(|(k, e)| k.contains(needle) || value(e, needle)),
            AttributeValue::Ss(s) => s.iter().any(|e| e.contains(needle)),
            _ => false,
        }
    }
    item.iter()
        .any(|(k, v)| k.contains(needle) || value(v, needle))
}

async fn queue_depth(d: &Deployment, kind: DestinationKind) -> u64 {
    let c = clients(
        &Moto::shared().endpoint,
        &d.stack.aws_region,
        FUNCTION_ACCESS_KEY,
    )
    .await;
    let attrs = c
        .sqs
        .get_queue_attributes()
        .queue_url(&d.stack.queues[&kind].queue)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .unwrap_or_default();
    attrs
        .get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A `POST /v1/batch` of `events`, sent with the workspace's write key.
fn batch_request(write_key: &str, events: &[Value]) -> HttpRequest {
    HttpRequest::new("POST", "/v1/batch")
        .basic_auth(write_key)
        .json(&json!({ "batch": events }))
}

async fn post_batch(
    d: &Deployment,
    write_key: &str,
    prefix: &str,
    range: std::ops::Range<usize>,
) -> Value {
    let batch: Vec<Value> = range.map(|i| purchase(prefix, i)).collect();
    let resp = d
        .http(batch_request(write_key, &batch).header("user-agent", "analytics-node/7.0"))
        .await
        .expect("invoke ingest");
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()
}

/// Meta CAPI, GA4 and a webhook, all on the fake destinations at `base`; their ids.
async fn three_destinations(d: &Deployment, admin_token: &str, base: &str) -> [String; 3] {
    let secrets = [META_TOKEN, GA4_SECRET, TIKTOK_TOKEN, WEBHOOK_SECRET];
    let specs = fake_destinations(base, secrets, "G-LAMBDA01", None);
    let mut ids = Vec::new();
    for spec in &specs {
        ids.push(d.add_destination(admin_token, spec).await.unwrap());
    }
    ids.try_into().unwrap()
}

const THREE_KINDS: [DestinationKind; 3] = [
    DestinationKind::MetaCapi,
    DestinationKind::Ga4,
    DestinationKind::Webhook,
];

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_posted_through_ingest_is_queued_delivered_by_deliver_and_logged_in_dynamodb() {
    let logs = tempfile::tempdir().unwrap();
    let (d, ws) = deploy(Region::Us, &["ingest", "deliver", "admin"], logs.path()).await;
    let fakes = Fakes::new(META_TOKEN, GA4_SECRET, TIKTOK_TOKEN, WEBHOOK_SECRET);
    let base = fake::serve(fakes.clone()).await;
    let [meta, ga4, hook] = three_destinations(&d, &ws.admin_token, &base).await;

    let answer = post_batch(&d, &ws.write_key, "lb", 0..100).await;

    assert_eq!(answer["accepted"], 100, "{answer}");
    for kind in THREE_KINDS {
        assert!(
            queue_depth(&d, kind).await > 0,
            "{kind:?}: ingest queued the batch in SQS"
        );
    }
    assert_eq!(queue_depth(&d, DestinationKind::Tiktok).await, 0);
    for kind in THREE_KINDS {
        let drained = d.drain(kind).await.unwrap();
        assert_eq!(drained.failed, 0, "{kind:?}: {drained:?}");
        assert_eq!(queue_depth(&d, kind).await, 0, "{kind:?} drained");
    }
    let expected: BTreeSet<String> = (0..100).map(|i| format!("lb-{i}")).collect();
    for sink in ["meta_capi", "ga4", "webhook:main"] {
        let got = fakes.received(sink);
        let ids: BTreeSet<String> = got.keys().cloned().collect();
        assert_eq!(ids, expected, "{sink} got every event");
        assert!(got.values().all(|n| *n == 1), "{sink}: each event once");
    }
    assert!(
        fakes.format_errors().is_empty(),
        "{:?}",
        fakes.format_errors()
    );

    // The delivery outcomes are in the delivery log table, per destination.
    let log = scan(&d.stack.aws_region, &d.stack.tables.delivery_log).await;
    assert!(!log.is_empty(), "deliver wrote its outcomes");
    for id in [&meta, &ga4, &hook] {
        assert!(
            log.iter().any(|item| mentions(item, id)),
            "the delivery log names destination {id}"
        );
    }
    // And the events are stored, hashed: no raw email reached the events table.
    let events = scan(&d.stack.aws_region, &d.stack.tables.events).await;
    assert!(!events.is_empty());
    assert!(!events.iter().any(|i| mentions(i, "shopper0@example.com")));
    d.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_eu_workspace_is_refused_by_the_us_functions_with_its_endpoint_and_nothing_is_stored_in_us_east_1(
) {
    let logs = tempfile::tempdir().unwrap();
    let (us, _us_ws) = deploy(
        Region::Us,
        &["ingest", "admin"],
        logs.path().join("us").as_path(),
    )
    .await;
    let (eu, eu_ws) = deploy(
        Region::Eu,
        &["ingest", "admin"],
        logs.path().join("eu").as_path(),
    )
    .await;
    assert_eq!(eu.stack.aws_region, "eu-central-1");

    // The eu workspace's batch, sent to the us stack.
    let batch: Vec<Value> = (0..10).map(|i| purchase("xr", i)).collect();
    let refused = us
        .http(batch_request(&eu_ws.write_key, &batch))
        .await
        .unwrap();

    assert_eq!(refused.status, 421, "{}", refused.text());
    assert!(refused.headers["content-type"].starts_with("application/problem+json"));
    let problem = refused.json();
    assert_eq!(problem["region"], "eu", "{problem}");
    assert_eq!(problem["endpoint"], PUBLIC_URL_EU, "{problem}");
    // Nothing of it anywhere in us-east-1: not in a table, not in a queue.
    for table in [
        &us.stack.tables.events,
        &us.stack.tables.delivery_log,
        &us.stack.tables.audit,
    ] {
        let items = scan("us-east-1", table).await;
        assert!(
            !items
                .iter()
                .any(|i| mentions(i, &eu_ws.workspace_id) || mentions(i, "xr-")),
            "{table} holds data of the eu workspace"
        );
    }
    for kind in DestinationKind::ALL {
        assert_eq!(
            queue_depth(&us, kind).await,
            0,
            "{kind:?} queue in us-east-1"
        );
    }

    // The admin API of the us stack refuses the eu workspace's token the same way.
    let admin = us
        .http(HttpRequest::new("GET", "/admin/v1/destinations").bearer(&eu_ws.admin_token))
        .await
        .unwrap();
    assert_eq!(admin.status, 421, "{}", admin.text());
    assert_eq!(admin.json()["endpoint"], PUBLIC_URL_EU);

    // Sent where it belongs, the same batch is accepted and stored in eu-central-1.
    let accepted = eu
        .http(batch_request(&eu_ws.write_key, &batch))
        .await
        .unwrap();
    assert_eq!(accepted.status, 200, "{}", accepted.text());
    let stored = scan("eu-central-1", &eu.stack.tables.events).await;
    assert!(!stored.is_empty(), "the eu stack stored the batch");
    us.stop();
    eu.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_batch_is_answered_with_problem_json_naming_the_field() {
    let logs = tempfile::tempdir().unwrap();
    let (d, ws) = deploy(Region::Us, &["ingest"], logs.path()).await;

    let resp = d
        .http(batch_request(
            &ws.write_key,
            &[json!({"type": "track", "userId": "u1"})],
        ))
        .await
        .unwrap();

    assert_eq!(resp.status, 400, "{}", resp.text());
    assert!(resp.headers["content-type"].starts_with("application/problem+json"));
    let problem = resp.json();
    assert!(
        problem["errors"][0]["field"]
            .as_str()
            .is_some_and(|f| f.contains("event")),
        "{problem}"
    );
    d.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_missing_a_template_variable_fails_its_cold_start_and_says_which() {
    let moto = Moto::shared();
    let stack = fresh_stack(Region::Us).await;
    let mut env = stack.function_env(&moto.endpoint);
    env.remove("TRACKLAYER_EVENTS_TABLE");
    let logs = tempfile::tempdir().unwrap();
    let p = tracklayer_tests::lambda::function::LambdaProcess::start(
        &tracklayer_tests::lambda::function::function_bin("ingest"),
        "ingest",
        "us-east-1",
        &env,
        logs.path(),
    )
    .await
    .unwrap();

    let err = p.wait_ready(Duration::from_secs(20)).await.unwrap_err();

    let shown = format!("{err:#}");
    assert!(shown.contains("TRACKLAYER_EVENTS_TABLE"), "{shown}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_meter_counts_every_request_and_the_write_units_aws_would_bill() {
    use tracklayer_tests::lambda::meter::Meter;
    let moto = Moto::shared();
    let stack = fresh_stack(Region::Us).await;
    let meter = Meter::start(&moto.endpoint).await.unwrap();
    let c = clients(&meter.endpoint, "us-east-1", FUNCTION_ACCESS_KEY).await;
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let put = || {
        c.dynamodb
            .put_item()
            .table_name(&stack.tables.events)
            .item("pk", s("ws#1"))
            .item("sk", s("ev#1"))
            .item("subject_pk", s("subj"))
            .item("subject_sk", s("ev#1"))
            .item("doc", s(&"x".repeat(1500)))
            .condition_expression("attribute_not_exists(pk)")
    };

    // A 1.5 KB item with the subject index keys: 2 units, and 1 for its index entry.
    put().send().await.unwrap();
    // The same write again fails its condition and is still billed, the index untouched.
    assert!(put().send().await.is_err());
    c.sqs
        .send_message()
        .queue_url(&stack.queues[&DestinationKind::Ga4].queue)
        .message_body("{}")
        .send()
        .await
        .unwrap();

    let tallies = meter.tallies();
    let key = |service: &str, op: &str| {
        (
            FUNCTION_ACCESS_KEY.to_owned(),
            "us-east-1".to_owned(),
            service.to_owned(),
            op.to_owned(),
        )
    };
    let puts = &tallies[&key("dynamodb", "PutItem")];
    assert_eq!(puts.requests, 2);
    assert_eq!(puts.write_units, 2.0 + 1.0 + 2.0);
    assert_eq!(tallies[&key("sqs", "SendMessage")].billed_requests, 1);
    // The meter's own reads of the item before and after are not counted.
    assert!(!tallies.contains_key(&key("dynamodb", "GetItem")));
}

/// The dsr function on its schedule: an erasure submitted through the admin function is
/// suppressed, worked off and completed by one scheduled invocation, and the ingest function
/// drops later events of the subject.
#[tokio::test(flavor = "multi_thread")]
async fn an_erasure_submitted_to_admin_is_completed_by_the_scheduled_dsr_function() {
    use tracklayer_tests::lambda::events::schedule_event;
    use tracklayer_tests::lambda::runtime::Outcome;
    let logs = tempfile::tempdir().unwrap();
    let (d, ws) = deploy(Region::Us, &["ingest", "admin", "dsr"], logs.path()).await;
    // Shopper 0 has events 0..25 of the batch, shopper 1 events 25..50.
    let answer = post_batch(&d, &ws.write_key, "er", 0..50).await;
    assert_eq!(answer["accepted"], 50, "{answer}");

    let resp = d
        .http(
            HttpRequest::new("POST", "/admin/v1/data_subject_requests")
                .bearer(&ws.admin_token)
                .json(&json!({"type": "erasure",
                              "subject": {"email": "shopper0@example.com"},
                              "reference": "ticket-1"})),
        )
        .await
        .expect("invoke admin");
    assert_eq!(resp.status, 202, "{}", resp.text());
    let request = resp.json();
    assert_eq!(request["status"], "pending", "{request}");
    let id = request["id"].as_str().expect("request id").to_owned();

    // One scheduled invocation suppresses, waits for the suppression to reach every ingest
    // and deliver process, erases and completes.
    let outcome = d
        .function("dsr")
        .invoke(
            &schedule_event(&d.stack.aws_region),
            Duration::from_secs(90),
        )
        .await
        .expect("invoke dsr");
    let Outcome::Response(summary) = outcome else {
        panic!("dsr failed: {outcome:?}");
    };
    assert_eq!(summary["completed"], 1, "{summary}");
    assert_eq!(summary["failed"], 0, "{summary}");

    let resp = d
        .http(
            HttpRequest::new("GET", &format!("/admin/v1/data_subject_requests/{id}"))
                .bearer(&ws.admin_token),
        )
        .await
        .expect("invoke admin");
    assert_eq!(resp.status, 200);
    let done = resp.json();
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["receipt"]["counts"]["events"], 25, "{done}");
    assert_eq!(done["receipt"]["suppressed"], true, "{done}");

    // Later events of the subject are accepted but dropped; another shopper's are kept.
    let later = post_batch(&d, &ws.write_key, "er2", 0..30).await;
    assert_eq!(later["accepted"], 30, "{later}");
    assert_eq!(later["suppressed"], 25, "{later}");
    d.stop();
}

/// Closing a workspace through the admin function, metered: every key stops (admin at once,
/// ingest as soon as its few seconds of cached settings end), the destination is gone, and
/// every account item of the workspace, its data-subject requests and suppression entries
/// included, carries a TTL 90 days after the closure, which moto never acts on: the reads
/// filter it. Prints the closure's DynamoDB write units as AWS would
/// bill them and holds them to the formula of infra/README.md.
#[tokio::test(flavor = "multi_thread")]
async fn closing_a_workspace_through_admin_stops_its_keys_and_stamps_its_account_items() {
    let logs = tempfile::tempdir().unwrap();
    // The owner, their admin token and a write key; then a destination with a secret.
    let (meter, d, ws) = metered(Region::Eu, &["ingest", "admin", "dsr"], logs.path()).await;
    d.add_destination(
        &ws.admin_token,
        &json!({"name": "Meta", "kind": "meta_capi",
                "config": {"pixel_id": "1234567890", "api_version": "v21.0"},
                "secrets": {"access_token": META_TOKEN}}),
    )
    .await
    .unwrap();
    post_batch(&d, &ws.write_key, "cl", 0..1).await;
    // A completed erasure (its subject on the suppression list) and an open access request.
    let submit = |kind: &'static str| {
        let d = &d;
        let token = ws.admin_token.clone();
        async move {
            let resp = d
                .http(
                    HttpRequest::new("POST", "/admin/v1/data_subject_requests")
                        .bearer(&token)
                        .json(&json!({"type": kind,
                                      "subject": {"email": "shopper0@example.com"}})),
                )
                .await
                .expect("invoke admin");
            assert_eq!(resp.status, 202, "{}", resp.text());
        }
    };
    submit("erasure").await;
    let outcome = d
        .function("dsr")
        .invoke(
            &tracklayer_tests::lambda::events::schedule_event(&d.stack.aws_region),
            Duration::from_secs(90),
        )
        .await
        .expect("invoke dsr");
    let tracklayer_tests::lambda::runtime::Outcome::Response(summary) = outcome else {
        panic!("dsr failed: {outcome:?}");
    };
    assert_eq!(summary["completed"], 1, "{summary}");
    submit("access").await;
    meter.reset();

    let resp = d
        .http(
            HttpRequest::new("POST", "/admin/v1/workspace/close")
                .bearer(&ws.admin_token)
                .json(&json!({"confirm": ws.workspace_id})),
        )
        .await
        .expect("invoke admin");

    assert_eq!(resp.status, 200, "{}", resp.text());
    let closure = resp.json();
    assert_eq!(closure["keys_revoked"], 2, "{closure}");
    assert_eq!(closure["destinations_deleted"], 1, "{closure}");
    let tables = meter.table_tallies();
    let units = |table: &str| -> f64 {
        tables
            .iter()
            .filter(|((t, _), _)| t == table)
            .map(|(_, tally)| tally.write_units)
            .sum()
    };
    let (control, audit) = (units(&d.stack.tables.control), units(&d.stack.tables.audit));
    for ((table, op), tally) in &tables {
        if tally.write_units > 0.0 {
            println!(
                "closure: {table} {op}: {} requests, {} write units",
                tally.requests, tally.write_units
            );
        }
    }
    println!("closure: {control} write units on the control table, {audit} on the audit table");
    // Keys (item + gsi1 entry, 2 each): the write key revoked, the owner's token stamped and
    // then revoked; the destination deleted (1); the owner, their login and their userName
    // item stamped (1 each); the workspace put closed (item + gsi1 entry, 2); the
    // data-subject records stamped: the completed erasure (its document with the receipt is
    // over 1 KB: 2), its suppression entry (1) and the open access request (item + gsi1
    // entry, 2); the audit entry and the chain head, in one transaction (2 items, doubled: 4).
    assert_eq!(
        control,
        2.0 + 2.0 * 2.0 + 1.0 + 3.0 + 2.0 + 5.0,
        "{tables:?}"
    );
    assert_eq!(audit, 4.0, "{tables:?}");

    // The admin API refuses the token at once; ingest once its cached settings are re-read.
    let resp = d
        .http(HttpRequest::new("GET", "/admin/v1/workspace").bearer(&ws.admin_token))
        .await
        .expect("invoke admin");
    assert_eq!(resp.status, 401, "{}", resp.text());
    // Ingest is polled until it answers 401: it must within 10 s (its settings are re-read
    // every 5 s); until then it may still accept on its cached settings.
    let resp = poll(
        Duration::from_secs(10),
        "ingest never refused the closed workspace",
        || async {
            let resp = d
                .http(batch_request(&ws.write_key, &[purchase("cl-after", 0)]))
                .await
                .expect("invoke ingest");
            match resp.status {
                200 => Err("it still answers 200".to_owned()),
                _ => Ok(resp),
            }
        },
    )
    .await;
    assert_eq!(resp.status, 401, "{}", resp.text());

    // Every account item left carries the same TTL, 90 days after the closure; no destination
    // is left.
    let pk = format!("W#{}", ws.workspace_id);
    let items: Vec<_> = scan(&d.stack.aws_region, &d.stack.tables.control)
        .await
        .into_iter()
        .filter(|i| i["pk"].as_s().is_ok_and(|p| *p == pk))
        .collect();
    let sks: BTreeSet<String> = items
        .iter()
        .map(|i| {
            i["sk"]
                .as_s()
                .unwrap()
                .split('#')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        sks,
        BTreeSet::from(["DSR", "KEY", "LOGIN", "SUP", "UNAME", "USER", "WS"].map(str::to_owned)),
        "no destination is left"
    );
    let ttls: BTreeSet<i64> = items
        .iter()
        .map(|i| {
            i.get("expires_at")
                .unwrap_or_else(|| panic!("no TTL on {:?}", i["sk"]))
                .as_n()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(ttls.len(), 1, "one TTL for every item: {ttls:?}");
    let closed_at = time::OffsetDateTime::parse(
        closure["closed_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let ttl = *ttls.first().unwrap();
    let after = ttl - closed_at.unix_timestamp();
    assert!(
        (90 * 86_400..=90 * 86_400 + 1).contains(&after),
        "the TTL is {after} s after the closure"
    );
    d.stop();
}

/// The overview's counters on AWS, metered: three batches of 100 purchases through ingest
/// and deliver with three destinations. Stats are the only `UpdateItem`s on the delivery-log
/// table: exactly one per ingest request and one per deliver invocation (its receive's
/// queue messages, one outcomes item each, counted together: one workspace, one bucket),
/// each billed 1 write unit (the bucket item stays under 1 KB). Prints the write units per
/// 1,000 events (README, cost table).
#[tokio::test(flavor = "multi_thread")]
async fn stats_cost_one_write_unit_per_ingest_request_and_per_deliver_invocation() {
    const BATCHES: usize = 3;
    let logs = tempfile::tempdir().unwrap();
    let (meter, d, ws) = metered(Region::Us, &["ingest", "deliver", "admin"], logs.path()).await;
    let fakes = Fakes::new(META_TOKEN, GA4_SECRET, TIKTOK_TOKEN, WEBHOOK_SECRET);
    let base = fake::serve(fakes.clone()).await;
    three_destinations(&d, &ws.admin_token, &base).await;

    for b in 0..BATCHES {
        post_batch(&d, &ws.write_key, "st", b * 100..(b + 1) * 100).await;
    }
    let mut invocations = 0;
    for kind in THREE_KINDS {
        let drained = d.drain(kind).await.unwrap();
        assert_eq!(drained.failed, 0, "{kind:?}: {drained:?}");
        invocations += drained.invocations as u64;
    }

    let table = &d.stack.tables.delivery_log;
    let stats = meter
        .table_tallies()
        .get(&(table.clone(), "UpdateItem".to_owned()))
        .cloned()
        .unwrap_or_default();
    let log = scan(&d.stack.aws_region, table).await;
    let pk = |i: &std::collections::HashMap<String, AttributeValue>| match i.get("pk") {
        Some(AttributeValue::S(s)) => s.clone(),
        _ => String::new(),
    };
    let messages = log.iter().filter(|i| pk(i).contains("#L#")).count() as u64;
    assert_eq!(
        messages,
        (BATCHES * THREE_KINDS.len()) as u64,
        "one queue message per batch and destination"
    );
    assert!(
        invocations < messages,
        "a deliver invocation settles several messages: {invocations} for {messages}"
    );
    assert_eq!(stats.requests, BATCHES as u64 + invocations, "{stats:?}");
    assert_eq!(
        stats.write_units, stats.requests as f64,
        "1 unit each: {stats:?}"
    );
    let per_1000 = stats.write_units * 1000.0 / (BATCHES * 100) as f64;
    println!(
        "stats: {} UpdateItems, {} write units for {} events: {per_1000} write units per 1,000 events",
        stats.requests,
        stats.write_units,
        BATCHES * 100
    );
    // The overview reads them back through the admin function.
    let resp = d
        .http(HttpRequest::new("GET", "/admin/v1/stats?window=1h").bearer(&ws.admin_token))
        .await
        .expect("invoke admin");
    assert_eq!(resp.status, 200, "{}", resp.text());
    let overview = resp.json();
    assert_eq!(overview["ingest"]["accepted"], 300, "{overview}");
    for row in overview["destinations"].as_array().unwrap() {
        assert_eq!(row["delivered"], 300, "{row}");
    }
}

/// The admin function serves the console as `serve` does (`template.yaml` routes `/` and
/// `/{proxy+}` to it): the sign-in page under the strict CSP, its hashed assets cached for a
/// year, and a page asked for without a session sends the browser to sign in.
#[tokio::test(flavor = "multi_thread")]
async fn the_admin_function_serves_the_console_pages_and_assets_under_its_csp() {
    let logs = tempfile::tempdir().unwrap();
    let (d, _ws) = deploy(Region::Us, &["admin"], logs.path()).await;

    let page = d.http(HttpRequest::new("GET", "/sign-in")).await.unwrap();
    assert_eq!(page.status, 200, "{}", page.text());
    let csp = &page.headers["content-security-policy"];
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    let html = page.text();
    let css = html
        .split("href=\"")
        .filter_map(|s| s.split('"').next())
        .find(|p| p.starts_with("/assets/") && p.ends_with(".css"))
        .expect("the page links its stylesheet");
    let asset = d.http(HttpRequest::new("GET", css)).await.unwrap();
    assert_eq!(asset.status, 200);
    assert!(asset.headers["cache-control"].contains("immutable"));

    let home = d.http(HttpRequest::new("GET", "/")).await.unwrap();
    assert_eq!(home.status, 303);
    assert_eq!(home.headers["location"], "/sign-in");
    d.stop();
}
