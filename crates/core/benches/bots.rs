//! The per-event cost of bot filtering ([`is_crawler`]) against the cost of the cheapest thing
//! ingest does to every event anyway: parsing its JSON (a 1 KB browser `page` call).
//!
//! `cargo bench -p tracklayer-core --bench bots` (`-- --quick` for a short run). Browsers'
//! user agents are the worst case: no pattern matches, so every one is tried.

use std::hint::black_box;

use criterion::Criterion;
use tracklayer_core::bots::is_crawler;

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const SAFARI: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
const GOOGLEBOT: &str = "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.204 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

fn page_call() -> String {
    serde_json::json!({
        "type": "page", "messageId": "ajs-next-1733350000000-7c1f2a3b", "anonymousId": "5a2b3c4d-0000-4e5f-8a9b-0c1d2e3f4a5b",
        "timestamp": "2026-12-04T22:00:00.000Z", "sentAt": "2026-12-04T22:00:00.010Z",
        "properties": {"path": "/products/shoe", "referrer": "https://www.google.com/", "search": "?gclid=Cj0KCQiA",
            "title": "Shoe | Shop", "url": "https://shop.example/products/shoe?gclid=Cj0KCQiA"},
        "context": {"library": {"name": "analytics.js", "version": "next-1.84.0"}, "locale": "en-US",
            "page": {"path": "/products/shoe", "referrer": "https://www.google.com/", "search": "?gclid=Cj0KCQiA",
                "title": "Shoe | Shop", "url": "https://shop.example/products/shoe?gclid=Cj0KCQiA"},
            "userAgent": CHROME, "userAgentData": {"brands": [{"brand": "Chromium", "version": "131"}], "mobile": false, "platform": "Windows"}},
        "integrations": {}
    })
    .to_string()
}

fn bench(c: &mut Criterion) {
    let body = page_call();
    let mut g = c.benchmark_group("bots");
    g.bench_function("parse_one_page_call", |b| {
        b.iter(|| serde_json::from_str::<serde_json::Value>(black_box(&body)).unwrap())
    });
    for (name, ua) in [
        ("chrome", CHROME),
        ("safari", SAFARI),
        ("googlebot", GOOGLEBOT),
    ] {
        g.bench_function(format!("is_crawler_{name}"), |b| {
            b.iter(|| is_crawler(black_box(ua)))
        });
    }
    g.finish();
}

fn main() {
    // Compile the list once before measuring (a process does it once).
    assert!(!is_crawler(CHROME));
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
