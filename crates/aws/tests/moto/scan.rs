//! Reads everything a stack holds, as text, so that a test can look for what must be gone:
//! every item of every table (binary attributes as hex and, when they are deflate data as
//! packs are, inflated too) and every message of every queue and dead-letter queue.

use std::collections::HashMap;
use std::io::Read;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
};

/// One item or message as text, with where it was found.
#[derive(Debug, Clone)]
pub struct Dumped {
    pub place: String,
    pub text: String,
    /// A queue message's body.
    pub body: Option<String>,
}

impl Dumped {
    pub fn contains(&self, needle: &str) -> bool {
        self.text.contains(needle)
    }
}

fn inflate(bytes: &[u8]) -> Option<String> {
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(bytes)
        .take(64 * 1024 * 1024)
        .read_to_end(&mut out)
        .ok()?;
    (!out.is_empty()).then(|| String::from_utf8_lossy(&out).into_owned())
}

fn blob_text(bytes: &[u8], out: &mut String) {
    out.push_str(&hex::encode(bytes));
    out.push(' ');
    out.push_str(&String::from_utf8_lossy(bytes));
    if let Some(inflated) = inflate(bytes) {
        out.push_str(" inflated:");
        out.push_str(&inflated);
    }
}

fn value_text(v: &AttributeValue, out: &mut String) {
    match v {
        AttributeValue::S(s) | AttributeValue::N(s) => out.push_str(s),
        AttributeValue::B(b) => blob_text(b.as_ref(), out),
        AttributeValue::Ss(v) | AttributeValue::Ns(v) => out.push_str(&v.join(" ")),
        AttributeValue::Bs(v) => {
            for b in v {
                blob_text(b.as_ref(), out);
                out.push(' ');
            }
        }
        AttributeValue::L(v) => {
            for x in v {
                value_text(x, out);
                out.push(' ');
            }
        }
        AttributeValue::M(m) => item_text(m, out),
        AttributeValue::Bool(b) => out.push_str(&b.to_string()),
        AttributeValue::Null(_) => out.push_str("null"),
        other => out.push_str(&format!("{other:?}")),
    }
}

fn item_text(item: &HashMap<String, AttributeValue>, out: &mut String) {
    let mut names: Vec<&String> = item.keys().collect();
    names.sort();
    for name in names {
        out.push_str(name);
        out.push('=');
        value_text(&item[name], out);
        out.push('\n');
    }
}

/// Every item of a table as text.
pub async fn table(client: &aws_sdk_dynamodb::Client, table: &str) -> Vec<Dumped> {
    items(client, table)
        .await
        .iter()
        .map(|item| {
            let mut text = String::new();
            item_text(item, &mut text);
            Dumped {
                place: format!("table {table}"),
                text,
                body: None,
            }
        })
        .collect()
}

/// Every item of a table, all attributes (a paginated, strongly consistent `Scan`).
pub async fn items(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Vec<HashMap<String, AttributeValue>> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .unwrap_or_else(|e| panic!("scan {table}: {e:?}"));
        out.extend(page.items.unwrap_or_default());
        match page.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return out,
        }
    }
}

async fn not_visible(client: &aws_sdk_sqs::Client, url: &str) -> u64 {
    let out = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .unwrap_or_else(|e| panic!("queue attributes of {url}: {e:?}"));
    out.attributes()
        .map(|a| a.values().filter_map(|v| v.parse::<u64>().ok()).sum())
        .unwrap_or(0)
}

/// Every message of a queue: first waits (at most `wait`) until no message is in flight or
/// delayed, then receives until the queue is empty, hiding what it read, and finally makes it
/// all visible again.
pub async fn queue(client: &aws_sdk_sqs::Client, url: &str, wait: Duration) -> Vec<Dumped> {
    let deadline = Instant::now() + wait;
    while not_visible(client, url).await > 0 {
        assert!(
            Instant::now() < deadline,
            "messages of {url} stayed in flight longer than {wait:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut out = Vec::new();
    let mut handles = Vec::new();
    let mut empty_polls = 0;
    while empty_polls < 2 {
        let got = client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .wait_time_seconds(if empty_polls == 0 { 0 } else { 1 })
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap_or_else(|e| panic!("receive from {url}: {e:?}"))
            .messages
            .unwrap_or_default();
        if got.is_empty() {
            empty_polls += 1;
            continue;
        }
        empty_polls = 0;
        for m in got {
            // The body as it was sent (a large one travels deflated).
            let encoding = m
                .message_attributes()
                .and_then(|a| a.get("body_encoding"))
                .and_then(|v| v.string_value());
            let raw = m.body().unwrap_or_default();
            let body = tracklayer_aws::decode_queue_body(encoding, raw)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_else(|| raw.to_owned());
            let mut text = String::new();
            text.push_str(&body);
            text.push('\n');
            let mut attrs: Vec<_> = m.message_attributes().into_iter().flatten().collect();
            attrs.sort_by(|a, b| a.0.cmp(b.0));
            for (name, v) in attrs {
                text.push_str(&format!(
                    "{name}={}\n",
                    v.string_value().unwrap_or_default()
                ));
            }
            if let Some(h) = m.receipt_handle() {
                handles.push(h.to_owned());
            }
            out.push(Dumped {
                place: format!("queue {url}"),
                text,
                body: Some(body),
            });
        }
    }
    for chunk in handles.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, h)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(h)
                    .visibility_timeout(0)
                    .build()
                    .expect("a visibility entry")
            })
            .collect();
        client
            .change_message_visibility_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .unwrap_or_else(|e| panic!("release messages of {url}: {e:?}"));
    }
    out
}

/// Where any of `needles` occurs: `(needle, place)` pairs.
pub fn find<'a>(dump: &'a [Dumped], needles: &'a [String]) -> Vec<(&'a str, &'a str)> {
    let mut hits = Vec::new();
    for d in dump {
        for n in needles {
            if d.contains(n) {
                hits.push((n.as_str(), d.place.as_str()));
            }
        }
    }
    hits
}
