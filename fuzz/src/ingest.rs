//! The Segment batch parser and the pure ingest pipeline behind it.
//!
//! Input: a request body as `POST /v1/batch` receives it (decompressed).

use std::collections::BTreeSet;
use std::sync::OnceLock;

use serde_json::Value;
use tracklayer_core::clock::SequentialIds;
use tracklayer_core::destination::DestinationKind;
use tracklayer_core::event::EventType;
use tracklayer_core::ingest::{
    parse_body, prepare, Endpoint, Holding, PreparedBatch, RequestMeta, Snapshot,
};
use tracklayer_core::testkit;

/// A US workspace with a destination of every kind, fixed keys, and a browser's request.
struct World {
    snapshot: Snapshot,
    meta: RequestMeta,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        World {
            snapshot: testkit::snapshot(DestinationKind::ALL),
            meta: RequestMeta {
                ip: Some([203, 0, 113, 9].into()),
                // A browser's: a crawler's would be dropped by the bot filter before routing.
                user_agent: Some(
                    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0".into(),
                ),
                gpc: false,
                browser: true,
            },
        }
    })
}

/// Prepares `body` with fresh sequential ids (so two runs can be compared).
fn run(body: &tracklayer_core::ingest::ParsedBody<'_>) -> PreparedBatch {
    let w = world();
    let ids = SequentialIds::default();
    // As `serve` prepares: its queue holds items by reference.
    let holding = Holding::ByReference;
    let pipeline = w.snapshot.pipeline(&ids, &w.meta, testkit::T0, holding);
    prepare(&pipeline, body)
}

pub fn check(data: &[u8]) {
    for endpoint in [Endpoint::Batch, Endpoint::Single(EventType::Track)] {
        one(endpoint, data);
    }
}

fn one(endpoint: Endpoint, data: &[u8]) {
    let Ok(parsed) = parse_body(endpoint, data) else {
        return;
    };
    let first = run(&parsed);
    let n = parsed.items.len();
    // Every event is accounted for exactly once (a crawler's user agent drops it as a bot).
    assert_eq!(
        first.events.len() + first.rejected.len() + first.duplicates + first.bots,
        n
    );
    assert_eq!(first.items.len(), first.events.len());
    let mut last = None;
    for r in &first.rejected {
        assert!(r.index < n && last < Some(r.index), "{:?}", first.rejected);
        assert!(r.field.starts_with('/'), "{r:?}");
        last = Some(r.index);
    }
    for e in &first.events {
        for digest in e.event.hashed.values().flat_map(|f| f.values()) {
            assert!(crate::is_lower_hex_64(digest), "{digest}");
        }
        assert!(e.event.subjects.iter().all(|s| !s.is_empty()));
    }
    // A rejected event never changes the accepted ones: without them, the same events are
    // accepted, identically.
    if first.rejected.is_empty() {
        return;
    }
    let rejected: BTreeSet<usize> = first.rejected.iter().map(|r| r.index).collect();
    let Ok(mut again) = parse_body(endpoint, data) else {
        panic!("the same body parsed differently");
    };
    let mut index = 0;
    again.items.retain(|_| {
        index += 1;
        !rejected.contains(&(index - 1))
    });
    if again.items.is_empty() {
        return;
    }
    let second = run(&again);
    assert!(second.rejected.is_empty(), "{:?}", second.rejected);
    assert_eq!(second.duplicates, first.duplicates);
    assert_eq!(second.bots, first.bots);
    assert_eq!(view(&first), view(&second));
}

/// What an accepted event is, less what is generated or sealed at random: ids (generated
/// ones follow a counter that rejected events may have advanced), sealed fields.
fn view(batch: &PreparedBatch) -> Vec<(Value, Vec<usize>)> {
    batch
        .events
        .iter()
        .zip(&batch.items)
        .map(|(e, items)| {
            let mut v = serde_json::to_value(&e.event).expect("a stored event serializes");
            if let Some(o) = v.as_object_mut() {
                for generated in ["event_id", "message_id", "vendor_ids"] {
                    o.remove(generated);
                }
            }
            (v, items.iter().map(|(d, _)| *d).collect())
        })
        .collect()
}
