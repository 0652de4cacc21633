//! A small HTTP load generator for `make measure-ingest` (there is no wrk here): `connections`
//! clients post the same realistic batch of purchases, each request with its own messageIds,
//! as fast as they are answered or at a fixed rate, and record every request's latency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Where the request number goes in the batch template (10 characters).
const SLOT: &[u8] = b"QQQQQQQQQQ";

/// Run numbers [`Batch::body`] tells apart (three of the slot's ten digits).
pub const RUNS: u32 = 1000;

/// The run number of `run`'s warm-up: its messageIds are not the run's. (It was `run + 1000`
/// while bodies kept only `run % 100`: the measured run's first second of requests repeated
/// the warm-up's messageIds and were answered as duplicates, neither stored nor delivered.)
pub fn warm_up_run(run: u32) -> u32 {
    (run + RUNS / 2) % RUNS
}

/// A batch body with slots for a request number: messageIds, order ids and user ids become
/// unique per request while the body keeps its size.
#[derive(Debug, Clone)]
pub struct Batch {
    template: Vec<u8>,
    slots: Vec<usize>,
    pub events: usize,
}

impl Batch {
    /// `events` purchases ([`crate::purchase`]), about 700 bytes each.
    pub fn purchases(events: usize) -> Self {
        let prefix = std::str::from_utf8(SLOT).unwrap_or_default();
        let batch: Vec<Value> = (0..events).map(|i| crate::purchase(prefix, i)).collect();
        let template = serde_json::to_vec(&json!({ "batch": batch })).unwrap_or_default();
        let slots = template
            .windows(SLOT.len())
            .enumerate()
            .filter(|(_, w)| *w == SLOT)
            .map(|(i, _)| i)
            .collect();
        Self {
            template,
            slots,
            events,
        }
    }

    /// The body of request `n` (`run` tells runs apart: two runs below [`RUNS`] never share
    /// a messageId, for the first 10 million requests of each).
    pub fn body(&self, run: u32, n: u64) -> Vec<u8> {
        let mut body = self.template.clone();
        let number = format!("{:03}{:07}", run % RUNS, n % 10_000_000);
        for &at in &self.slots {
            body[at..at + SLOT.len()].copy_from_slice(number.as_bytes());
        }
        body
    }

    pub fn len(&self) -> usize {
        self.template.len()
    }

    pub fn is_empty(&self) -> bool {
        self.template.is_empty()
    }
}

/// One load run.
#[derive(Debug, Clone)]
pub struct Load {
    /// The server's base URL.
    pub url: String,
    /// Sent as Basic auth (`writeKey:`); the bare server ignores it.
    pub write_key: String,
    pub connections: usize,
    pub duration: Duration,
    /// Requests per second, spread over the connections; `None` is as fast as answered.
    pub rate: Option<f64>,
    /// Tells this run's messageIds from other runs'.
    pub run: u32,
    /// Events answered 200 so far, for whoever watches the run.
    pub ok_events: Arc<AtomicU64>,
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Requests answered 200.
    pub ok: u64,
    /// Requests answered otherwise (429/503 included), or failed.
    pub refused: u64,
    pub failed: u64,
    pub events_per_request: usize,
    pub elapsed: Duration,
    /// Latencies of the 200 answers, sorted, in microseconds; measured from when the request
    /// was due (at a fixed rate) or sent, so a late start counts against the server.
    latencies_us: Vec<u64>,
}

impl LoadReport {
    pub fn events_per_sec(&self) -> f64 {
        (self.ok * self.events_per_request as u64) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile (0..=1) of the 200 answers' latency, in milliseconds.
    pub fn latency_ms(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * q).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }
}

/// Runs `load` with `batch`.
pub async fn run(load: &Load, batch: &Arc<Batch>) -> LoadReport {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(load.connections)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client");
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + load.duration;
    let tasks: Vec<_> = (0..load.connections.max(1))
        .map(|_| {
            let (client, next, batch, load) =
                (client.clone(), next.clone(), batch.clone(), load.clone());
            tokio::spawn(async move {
                connection(client, &load, &batch, &next, started, deadline).await
            })
        })
        .collect();
    let mut report = LoadReport {
        events_per_request: batch.events,
        ..LoadReport::default()
    };
    for task in tasks {
        if let Ok(part) = task.await {
            report.ok += part.ok;
            report.refused += part.refused;
            report.failed += part.failed;
            report.latencies_us.extend(part.latencies_us);
        }
    }
    report.elapsed = started
        .elapsed()
        .min(load.duration)
        .max(Duration::from_millis(1));
    report.latencies_us.sort_unstable();
    report
}

/// One client's loop: take the next request number, wait for its time (at a fixed rate),
/// post it, record the answer.
async fn connection(
    client: reqwest::Client,
    load: &Load,
    batch: &Batch,
    next: &AtomicU64,
    started: Instant,
    deadline: Instant,
) -> LoadReport {
    let mut part = LoadReport::default();
    let url = format!("{}/v1/batch", load.url);
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        let due = match load.rate {
            Some(rate) => started + Duration::from_secs_f64(n as f64 / rate.max(1e-3)),
            None => Instant::now(),
        };
        if due >= deadline {
            return part;
        }
        tokio::time::sleep_until(due.into()).await;
        let sent = client
            .post(&url)
            .basic_auth(&load.write_key, Some(""))
            .header("content-type", "application/json")
            .body(batch.body(load.run, n))
            .send()
            .await;
        match sent {
            Ok(resp) => {
                let status = resp.status();
                let _ = resp.bytes().await;
                if status == 200 {
                    part.ok += 1;
                    load.ok_events
                        .fetch_add(batch.events as u64, Ordering::Relaxed);
                    part.latencies_us.push(due.elapsed().as_micros() as u64);
                } else {
                    part.refused += 1;
                }
            }
            Err(_) => part.failed += 1,
        }
        if Instant::now() >= deadline {
            return part;
        }
    }
}

/// A process's CPU time and peak memory, from `/proc` (Linux).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcStats {
    /// User + system CPU time of every thread, in seconds.
    pub cpu_secs: f64,
    /// Peak resident set size (VmHWM), in bytes.
    pub peak_rss: u64,
    /// Bytes passed to `write`-family system calls (`wchar` of `/proc/<pid>/io`): the WAL,
    /// checkpoints into the database file, and (a few hundred bytes a request) responses.
    pub written: u64,
}

impl ProcStats {
    pub fn of(pid: u32) -> Self {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command name (which may hold spaces) start at field 3.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // utime and stime are fields 14 and 15, in clock ticks (100 per second on Linux).
        let cpu_secs = (ticks(11) + ticks(12)) / 100.0;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let peak_rss = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024);
        let written = std::fs::read_to_string(format!("/proc/{pid}/io"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("wchar:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        Self {
            cpu_secs,
            peak_rss,
            written,
        }
    }
}

/// The 1-, 5- and 15-minute load averages, as `/proc/loadavg` has them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The messageIds of a body, in order.
    fn message_ids(body: &[u8]) -> Vec<String> {
        let v: Value = serde_json::from_slice(body).expect("a JSON body");
        v["batch"]
            .as_array()
            .expect("a batch")
            .iter()
            .map(|e| e["messageId"].as_str().expect("a messageId").to_owned())
            .collect()
    }

    #[test]
    fn a_warm_up_never_repeats_a_message_id_of_its_run_or_of_another_run() {
        let batch = Batch::purchases(3);
        let mut seen = std::collections::HashSet::new();
        for run in 0..8 {
            for r in [run, warm_up_run(run)] {
                for n in [0, 1, 9_999_999] {
                    for id in message_ids(&batch.body(r, n)) {
                        assert!(seen.insert(id.clone()), "{id} sent twice");
                    }
                }
            }
        }
        assert_eq!(seen.len(), 8 * 2 * 3 * 3);
        // The same run and request number is the same body: runs are reproducible.
        assert_eq!(batch.body(3, 42), batch.body(3, 42));
    }
}
