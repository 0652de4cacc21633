//! What an event inherits from its batch, and how many keys an object may have.
//!
//! A batch's `context` and `integrations` (beside `batch`) apply to each of its up to 2,500
//! events, the event's own keys winning. They are read through, never copied into each event:
//! copying made a 378 KB batch with a 25,000-key `context` cost 19.5 s of CPU (62.5 million
//! copies). What each event still walks of them (the `integrations` keys for each destination,
//! `context.consent.categoryPreferences`) is bounded by [`MAX_BATCH_OBJECT_KEYS`].

use serde_json::{Map, Value};

/// Keys of an event's `properties`, `traits`, `context` or `integrations`.
pub const MAX_OBJECT_KEYS: usize = 1_000;
/// Keys of any object, at any depth, of a batch's `context` or `integrations`: they are read
/// once per event of the batch.
pub const MAX_BATCH_OBJECT_KEYS: usize = 100;

/// An event's object over its batch's: a shallow merge in which the event's keys win, read by
/// reference.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layered<'a> {
    own: &'a Map<String, Value>,
    batch: Option<&'a Map<String, Value>>,
    /// An event's `context`, of which only the members ingest reads were kept
    /// ([`super::context::context_member_read`]).
    context: bool,
}

impl<'a> Layered<'a> {
    pub(crate) fn new(own: &'a Map<String, Value>, batch: Option<&'a Map<String, Value>>) -> Self {
        Self {
            own,
            batch,
            context: false,
        }
    }

    /// An event's `context` over its batch's: `own` holds only the members ingest reads.
    pub(crate) fn context(
        own: &'a Map<String, Value>,
        batch: Option<&'a Map<String, Value>>,
    ) -> Self {
        Self {
            own,
            batch,
            context: true,
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        debug_assert!(
            !self.context || super::context::context_member_read(key),
            "context.{key} is read, but the event's context was parsed without it: add it to \
             context::context_member_read"
        );
        self.own
            .get(key)
            .or_else(|| self.batch.and_then(|b| b.get(key)))
    }

    /// The event's object and the batch's.
    pub(crate) fn layers(&self) -> (&'a Map<String, Value>, Option<&'a Map<String, Value>>) {
        (self.own, self.batch)
    }

    /// The event's entries, then the batch's that the event does not override.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&'a String, &'a Value)> + 'a {
        let own = self.own;
        own.iter().chain(
            self.batch
                .into_iter()
                .flat_map(Map::iter)
                .filter(move |(k, _)| !own.contains_key(k.as_str())),
        )
    }
}

/// The first object (depth first) with more than `limit` keys in `value`, found at `path`:
/// its JSON pointer and its number of keys.
pub(crate) fn oversized_object(value: &Value, path: &str, limit: usize) -> Option<(String, usize)> {
    match value {
        Value::Object(m) => {
            if m.len() > limit {
                return Some((path.to_owned(), m.len()));
            }
            m.iter().find_map(|(k, v)| {
                let key = k.replace('~', "~0").replace('/', "~1");
                oversized_object(v, &format!("{path}/{key}"), limit)
            })
        }
        Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, v)| oversized_object(v, &format!("{path}/{i}"), limit)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("a test object"),
        }
    }

    /// An event's context keeps only the members ingest reads: reading another is a bug
    /// (it would find the batch's value, or none, never the event's).
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "context.locale is read")]
    fn reading_a_context_member_parsing_skips_panics_in_debug_builds() {
        let own = map(json!({"ip": "1.1.1.1"}));
        let context = Layered::context(&own, None);
        assert_eq!(context.get("ip"), Some(&json!("1.1.1.1")));
        context.get("locale");
    }

    #[test]
    fn the_events_keys_win_over_the_batchs() {
        let own = map(json!({"ip": "1.1.1.1"}));
        let batch = map(json!({"ip": "2.2.2.2", "userAgent": "ua"}));
        let l = Layered::new(&own, Some(&batch));
        assert_eq!(l.get("ip"), Some(&json!("1.1.1.1")));
        assert_eq!(l.get("userAgent"), Some(&json!("ua")));
        assert_eq!(l.get("nothing"), None);
        let keys: Vec<_> = l.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        assert_eq!(
            keys,
            vec![("ip", json!("1.1.1.1")), ("userAgent", json!("ua"))]
        );
    }

    #[test]
    fn finds_an_oversized_object_at_any_depth_and_names_its_pointer() {
        let wide: Map<String, Value> = (0..4).map(|i| (format!("k{i}"), json!(i))).collect();
        let v = json!({"a": [{"b/c": Value::Object(wide)}], "z": 1});
        assert_eq!(
            oversized_object(&v, "/context", 3),
            Some(("/context/a/0/b~1c".to_owned(), 4))
        );
        assert_eq!(oversized_object(&v, "/context", 4), None);
    }
}
