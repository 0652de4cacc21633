//! Measures ingest: `tracklayer serve` (release, embedded SQLite, 3 paused destinations
//! routed) against a bare axum + serde_json server, each pinned to CPU 0 with this load
//! generator on CPU 1, the same 100-purchase batch with unique messageIds per request,
//! alternated bare, TrackLayer, bare, ... three times. Then TrackLayer at half its median
//! rate (p99 there), and with the 3 destinations delivering to local fakes answering in
//! 20 ms at a fixed offered rate (does the backlog grow?). Per run: events/s, p50/p99, the
//! server's CPU and peak RSS, and per stored event the bytes the data directory grew by and
//! the bytes the server wrote (WAL frames and checkpoints: a page is written again by every
//! commit that changes it, so this is several times the bytes kept).
//!
//! Every run starts a new server and first sends it 1 s of the same load, not counted: a
//! process's first request with a write key waits for that key's bcrypt check (about 70 ms
//! on the measurement machine; every other connection's first request waits for the same
//! verdict), and that start belongs to the process, not to its steady state. The first
//! answer's latency is printed in its own column.
//!
//! `make measure-ingest` builds and runs it. Environment: `MEASURE_SECONDS` (per run,
//! default 20), `MEASURE_CONNECTIONS` (default 32), `MEASURE_FAKE_RATE` (events/s offered
//! in the delivering variant, default 20000), `MEASURE_KEEP_DB` (a directory: each paused
//! run's database files are copied there under `run-<n>/`, to study its layout),
//! `MEASURE_RATE` (events/s: only TrackLayer, three runs at that offered rate, for comparing
//! the tail of two builds at the same rate).

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use tracklayer_tests::load::{self, Batch, Load, LoadReport, ProcStats};
use tracklayer_tests::*;

const SERVER_CPU: &str = "0";
const GENERATOR_CPU: &str = "1";
const EVENTS_PER_REQUEST: usize = 100;

#[derive(Debug, Clone, Copy)]
struct Settings {
    run: Duration,
    connections: usize,
    fake_rate: f64,
    /// Only TrackLayer at this offered rate (events/s).
    rate: Option<f64>,
}

/// The variable `name` parsed, `default` when it is unset; an error naming it when it is set
/// to something else (a typo must not quietly measure the default).
fn env_or<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}={v:?} is not a valid value")),
    }
}

/// `MEASURE_RATE`: a positive, finite number of events/s, when set.
fn offered_rate() -> anyhow::Result<Option<f64>> {
    let Ok(v) = std::env::var("MEASURE_RATE") else {
        return Ok(None);
    };
    match v.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(Some(rate)),
        _ => anyhow::bail!("MEASURE_RATE={v:?} is not a positive number of events/s"),
    }
}

/// One measured run of one server.
#[derive(Debug, Clone)]
struct Row {
    server: &'static str,
    load: LoadReport,
    cpu_percent: f64,
    peak_rss: u64,
    /// Bytes the data directory grew by per stored event (TrackLayer only).
    disk_per_event: Option<f64>,
    /// Bytes the server wrote during the load (WAL frames, checkpoints, responses).
    written: u64,
    /// `written` per stored event (TrackLayer only).
    written_per_event: Option<f64>,
    load_average: String,
    /// The latency of the warm-up's slowest answer: a new process's first requests.
    first_answer_ms: f64,
}

impl Row {
    fn print(&self) {
        println!(
            "| {} | {:.0} | {:.1} | {:.1} | {:.0} | {} | {:.0} % | {:.1} MiB | {} | {} | {} |",
            self.server,
            self.load.events_per_sec(),
            self.load.latency_ms(0.5),
            self.load.latency_ms(0.99),
            self.first_answer_ms,
            self.load.refused + self.load.failed,
            self.cpu_percent,
            self.peak_rss as f64 / (1024.0 * 1024.0),
            self.disk_per_event
                .map_or("–".to_owned(), |b| format!("{b:.0} B")),
            self.written_per_event
                .map_or("–".to_owned(), |b| format!("{:.1} KB", b / 1000.0)),
            self.load_average,
        );
    }
}

/// How long the uncounted load before each measured run lasts.
const WARM_UP: Duration = Duration::from_secs(1);

/// The server's CPU use and peak RSS over `load`, run against it after [`WARM_UP`] of the
/// same load (its requests with messageIds of their own). `after_warm_up` runs between the
/// two, for whoever needs the server's state at the start of the measured run; the warm-up's
/// answered events count in `load.ok_events` too (the delivering variant's backlog).
async fn measure(
    server: &'static str,
    pid: u32,
    load: &Load,
    batch: &Arc<Batch>,
    after_warm_up: impl FnOnce(),
) -> (Row, LoadReport) {
    let warm_up = Load {
        duration: WARM_UP,
        run: load::warm_up_run(load.run),
        ..load.clone()
    };
    let first = load::run(&warm_up, batch).await;
    after_warm_up();
    let before = ProcStats::of(pid);
    let report = load::run(load, batch).await;
    let after = ProcStats::of(pid);
    let row = Row {
        server,
        load: report.clone(),
        cpu_percent: 100.0 * (after.cpu_secs - before.cpu_secs) / report.elapsed.as_secs_f64(),
        peak_rss: after.peak_rss,
        disk_per_event: None,
        written: after.written.saturating_sub(before.written),
        written_per_event: None,
        load_average: load::load_average(),
        first_answer_ms: first.latency_ms(1.0),
    };
    (row, report)
}

fn pinned(program: &Path) -> Command {
    let mut c = Command::new("taskset");
    c.args(["-c", SERVER_CPU])
        .arg(program)
        .env_remove("RUST_LOG");
    c
}

async fn run_bare(settings: Settings, batch: &Arc<Batch>, run: u32) -> anyhow::Result<Row> {
    let tmp = tempfile::tempdir()?;
    let bin = tracklayer_bin().with_file_name("bare-ingest");
    let mut server = Server::launch(pinned(&bin), tmp.path().join("bare.log"))?;
    let load = Load {
        url: server.url.clone(),
        write_key: "bare".into(),
        connections: settings.connections,
        duration: settings.run,
        rate: None,
        run,
        ok_events: Arc::default(),
    };
    let (row, _) = measure("bare", server.pid(), &load, batch, || ()).await;
    server.stop()?;
    Ok(row)
}

/// A data directory with a workspace and Meta, GA4 and TikTok destinations at `base`.
struct Tracklayer {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    keys: Keys,
    destinations: Vec<String>,
}

impl Tracklayer {
    fn new(base: &str) -> anyhow::Result<Self> {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("data");
        let keys = init(&dir, "us")?;
        // Meta, GA4 and TikTok: the webhook's deliveries are `measure-delivery`'s.
        let destinations = measure_destinations(base)
            .iter()
            .filter(|d| d["kind"] != "webhook")
            .map(|d| add_destination(&dir, d))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            _tmp: tmp,
            dir,
            keys,
            destinations,
        })
    }

    fn pause_all(&self) -> anyhow::Result<()> {
        let dir = self.dir.to_str().context("utf-8 path")?;
        for id in &self.destinations {
            tracklayer(&["destinations", "pause", "--data-dir", dir, id])?;
        }
        Ok(())
    }

    fn disk_bytes(&self) -> u64 {
        ["tracklayer.db", "tracklayer.db-wal", "tracklayer.db-shm"]
            .iter()
            .filter_map(|f| std::fs::metadata(self.dir.join(f)).ok())
            .map(|m| m.len())
            .sum()
    }

    fn start(&self) -> anyhow::Result<Server> {
        let dir = self.dir.to_str().context("utf-8 path")?;
        let mut command = pinned(&tracklayer_bin());
        command.args(["serve", "--data-dir", dir, "--listen", "127.0.0.1:0"]);
        command.arg("--allow-private-egress");
        if let Ok(extra) = std::env::var("MEASURE_SERVE_ARGS") {
            command.args(extra.split_whitespace());
        }
        Server::launch(command, self.dir.with_file_name("serve.log"))
    }

    fn stored_events(&self) -> anyhow::Result<u64> {
        let n: i64 =
            database(&self.dir).query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or_default())
    }
}

/// TrackLayer with its destinations paused, at `rate` requests/s (or as fast as answered).
async fn run_tracklayer(
    settings: Settings,
    batch: &Arc<Batch>,
    run: u32,
    rate: Option<f64>,
) -> anyhow::Result<Row> {
    let tl = Tracklayer::new("http://127.0.0.1:9")?;
    tl.pause_all()?;
    let before = tl.disk_bytes();
    let mut server = tl.start()?;
    let load = Load {
        url: server.url.clone(),
        write_key: tl.keys.write_key.clone(),
        connections: settings.connections,
        duration: settings.run,
        rate,
        run,
        ok_events: Arc::default(),
    };
    let mut warmed = Ok(0);
    let (mut row, _) = measure("tracklayer", server.pid(), &load, batch, || {
        warmed = tl.stored_events();
    })
    .await;
    server.stop()?;
    let stored = tl.stored_events()?;
    let measured = stored.saturating_sub(warmed?);
    row.disk_per_event =
        (stored > 0).then(|| tl.disk_bytes().saturating_sub(before) as f64 / stored as f64);
    row.written_per_event = (measured > 0).then(|| row.written as f64 / measured as f64);
    if let Ok(keep) = std::env::var("MEASURE_KEEP_DB") {
        let to = Path::new(&keep).join(format!("run-{run}"));
        std::fs::create_dir_all(&to)?;
        for f in ["tracklayer.db", "tracklayer.db-wal"] {
            if tl.dir.join(f).exists() {
                std::fs::copy(tl.dir.join(f), to.join(f))?;
            }
        }
    }
    Ok(row)
}

/// Events the local fakes received, all destinations together.
#[derive(Debug, Default)]
struct Delivered(AtomicU64);

async fn fake_destination(State(d): State<Arc<Delivered>>, body: Bytes) -> Response {
    tokio::time::sleep(Duration::from_millis(20)).await;
    let v: Value = serde_json::from_slice(&body).unwrap_or_default();
    let n = ["data", "events"]
        .iter()
        .find_map(|k| v[*k].as_array().map(Vec::len))
        .unwrap_or(0);
    d.0.fetch_add(n as u64, Ordering::Relaxed);
    if v.get("events").is_some() {
        return StatusCode::NO_CONTENT.into_response();
    }
    Json(json!({"events_received": n, "code": 0, "message": "OK", "request_id": "m"}))
        .into_response()
}

async fn serve_fakes(delivered: Arc<Delivered>) -> anyhow::Result<String> {
    let app = Router::new()
        .route("/{version}/{pixel}/events", post(fake_destination))
        .route("/mp/collect", post(fake_destination))
        .route("/open_api/v1.3/event/track/", post(fake_destination))
        .with_state(delivered);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}

/// TrackLayer delivering to 3 fakes answering in 20 ms at `events_per_sec` offered: the
/// backlog (events accepted × 3 − events delivered) every second, and how long it takes
/// to drain after the load stops.
async fn run_delivering(settings: Settings, batch: &Arc<Batch>, run: u32) -> anyhow::Result<()> {
    let delivered = Arc::new(Delivered::default());
    let base = serve_fakes(delivered.clone()).await?;
    let tl = Tracklayer::new(&base)?;
    let mut server = tl.start()?;
    let ok_events = Arc::new(AtomicU64::new(0));
    let load = Load {
        url: server.url.clone(),
        write_key: tl.keys.write_key.clone(),
        connections: settings.connections,
        duration: settings.run,
        rate: Some(settings.fake_rate / EVENTS_PER_REQUEST as f64),
        run,
        ok_events: ok_events.clone(),
    };
    let backlog = {
        let (ok_events, delivered) = (ok_events.clone(), delivered.clone());
        move || {
            (ok_events.load(Ordering::Relaxed) * 3)
                .saturating_sub(delivered.0.load(Ordering::Relaxed))
        }
    };
    let sampler = {
        let backlog = backlog.clone();
        tokio::spawn(async move {
            let mut samples = Vec::new();
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                samples.push(backlog());
                if samples.len() as u64 >= (settings.run + WARM_UP).as_secs() {
                    return samples;
                }
            }
        })
    };
    let (row, _) = measure("tracklayer, delivering", server.pid(), &load, batch, || ()).await;
    let samples = sampler.await.unwrap_or_default();
    let drain = std::time::Instant::now();
    let left = backlog();
    while backlog() > 0 && drain.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drain_secs = drain.elapsed().as_secs_f64();
    // Deliveries a second once ingest is idle: delivery's own throughput on the core.
    let drain_rate = left.saturating_sub(backlog()) as f64 / drain_secs.max(1e-3);
    let drained = backlog() == 0;
    server.stop()?;
    // Disk per stored event with each delivered (the paused runs' figure has no delivery
    // log); the warm-up's events are stored and delivered too.
    let stored = tl.stored_events()?;
    let disk = (stored > 0).then(|| tl.disk_bytes() as f64 / stored as f64);
    row.print();
    let half = samples.len() / 2;
    let first = samples[..half].iter().copied().max().unwrap_or(0);
    let second = samples[half..].iter().copied().max().unwrap_or(0);
    let slope = backlog_slope(&samples);
    let needed = 3.0 * row.load.events_per_sec();
    println!(
        "\nDelivering to 3 fakes answering in 20 ms, {:.0} events/s offered: backlog (events \
         accepted × 3 − delivered) each second {samples:?}; max first half {first}, second half \
         {second}; trend {slope:+.0}/s against {needed:.0} deliveries/s asked: {}; {} {:.1} s \
         after the load stopped ({drain_rate:.0} deliveries/s with no load); {} events \
         delivered; {} on disk per stored event, each delivered to 3 destinations (delivery \
         log included).",
        settings.fake_rate,
        // Growing: the backlog's least-squares trend is above 2 % of the deliveries the
        // accepted load asked for (not the offered load, which ingest may not have reached).
        if slope <= 0.02 * needed {
            "not growing"
        } else {
            "GROWING"
        },
        if drained { "drained" } else { "NOT drained" },
        drain_secs,
        delivered.0.load(Ordering::Relaxed),
        disk.map_or("–".to_owned(), |b| format!("{b:.0} B")),
    );
    Ok(())
}

/// The least-squares slope of `samples` taken one second apart, per second.
fn backlog_slope(samples: &[u64]) -> f64 {
    let n = samples.len() as f64;
    if samples.len() < 2 {
        return 0.0;
    }
    let mean_x = (n - 1.0) / 2.0;
    let mean_y = samples.iter().map(|&y| y as f64).sum::<f64>() / n;
    let (mut cov, mut var) = (0.0, 0.0);
    for (x, &y) in samples.iter().enumerate() {
        let dx = x as f64 - mean_x;
        cov += dx * (y as f64 - mean_y);
        var += dx * dx;
    }
    cov / var
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn header() {
    println!("\n| server | events/s | p50 ms | p99 ms | first answer ms | refused/failed requests | server CPU | peak RSS | disk per stored event | written per stored event | load average |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
}

async fn measure_all(settings: Settings) -> anyhow::Result<()> {
    let batch = Arc::new(Batch::purchases(EVENTS_PER_REQUEST));
    println!(
        "# Ingest measurement: {EVENTS_PER_REQUEST}-event purchase batches ({} bytes), {} \
         connections, {} s runs; servers on CPU {SERVER_CPU}, generator on CPU {GENERATOR_CPU}; \
         release build; load average before: {}",
        batch.len(),
        settings.connections,
        settings.run.as_secs(),
        load::load_average()
    );
    header();
    if let Some(rate) = settings.rate {
        for run in 0..3 {
            let row = run_tracklayer(
                settings,
                &batch,
                run,
                Some(rate / EVENTS_PER_REQUEST as f64),
            )
            .await?;
            row.print();
        }
        return Ok(());
    }
    let (mut bare, mut ours) = (Vec::new(), Vec::new());
    for round in 0..3u32 {
        let a = run_bare(settings, &batch, 2 * round).await?;
        a.print();
        let b = run_tracklayer(settings, &batch, 2 * round + 1, None).await?;
        b.print();
        bare.push(a.load.events_per_sec());
        ours.push(b.load.events_per_sec());
    }
    let (bare, ours) = (median(bare), median(ours));
    println!(
        "\nMedians: bare {bare:.0} events/s, TrackLayer {ours:.0} events/s: ratio TrackLayer / \
         bare = {:.3}\n",
        ours / bare
    );
    let half = ours / 2.0;
    header();
    let row = run_tracklayer(settings, &batch, 6, Some(half / EVENTS_PER_REQUEST as f64)).await?;
    row.print();
    println!(
        "\nAt half the median rate ({half:.0} events/s offered): p99 {:.1} ms.\n",
        row.load.latency_ms(0.99)
    );
    header();
    run_delivering(settings, &batch, 7).await
}

fn main() -> anyhow::Result<()> {
    // This process (the generator and the fakes) runs on the other CPU; threads started
    // from here on inherit it.
    let pinned = Command::new("taskset")
        .args(["-p", "-c", GENERATOR_CPU, &std::process::id().to_string()])
        .output()
        .context("taskset (util-linux) is needed")?;
    anyhow::ensure!(pinned.status.success(), "taskset failed: {pinned:?}");
    let settings = Settings {
        run: Duration::from_secs(env_or("MEASURE_SECONDS", 20)?),
        connections: env_or("MEASURE_CONNECTIONS", 32)?,
        fake_rate: env_or("MEASURE_FAKE_RATE", 20_000.0)?,
        rate: offered_rate()?,
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(measure_all(settings))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_backlog_trend_is_its_least_squares_slope_per_second() {
        assert_eq!(super::backlog_slope(&[0, 10, 20, 30]), 10.0);
        assert_eq!(super::backlog_slope(&[7, 7, 7]), 0.0);
        assert_eq!(super::backlog_slope(&[5]), 0.0);
        // The measured run that the two halves' peaks called "not growing".
        let run = [13425, 19150, 22150, 27825, 27075, 33475, 38575, 41875];
        assert!(super::backlog_slope(&run) > 0.02 * 3.0 * 5650.0);
    }
}
