//! The one in-memory cache: entries live for a fixed time on the injected [`Clock`], and
//! the map never holds more than its capacity (expired entries go first, then everything).
//!
//! Used for verified API keys, failed secrets, failure counters and workspace settings, so
//! that a test with a fixed clock decides every expiry.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

use time::{Duration, OffsetDateTime};

use crate::clock::Clock;

/// Values by key, each for at most `ttl` after it was stored.
pub struct TtlCache<K, V> {
    ttl: Duration,
    capacity: usize,
    clock: Arc<dyn Clock>,
    entries: Mutex<HashMap<K, (V, OffsetDateTime)>>,
}

impl<K, V> std::fmt::Debug for TtlCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TtlCache")
            .field("ttl", &self.ttl)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    pub fn new(clock: Arc<dyn Clock>, ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity: capacity.max(1),
            clock,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, (V, OffsetDateTime)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fresh(&self, at: OffsetDateTime, now: OffsetDateTime) -> bool {
        now - at < self.ttl
    }

    /// The value stored for `key` less than `ttl` ago.
    pub fn get(&self, key: &K) -> Option<V> {
        self.get_with_time(key).map(|(v, _)| v)
    }

    /// The value and when it was stored.
    pub fn get_with_time(&self, key: &K) -> Option<(V, OffsetDateTime)> {
        let now = self.clock.now();
        self.lock()
            .get(key)
            .filter(|(_, at)| self.fresh(*at, now))
            .cloned()
    }

    /// Stores `value` now.
    pub fn insert(&self, key: K, value: V) {
        let now = self.clock.now();
        let mut entries = self.lock();
        self.make_room(&mut entries, now);
        entries.insert(key, (value, now));
    }

    /// Replaces a fresh entry by `f(Some(old))` keeping the time it was stored, or stores
    /// `f(None)` now. Returns the new value and its time.
    pub fn update(&self, key: K, f: impl FnOnce(Option<V>) -> V) -> (V, OffsetDateTime) {
        let now = self.clock.now();
        let mut entries = self.lock();
        let old = entries.remove(&key).filter(|(_, at)| self.fresh(*at, now));
        let (value, at) = match old {
            Some((v, at)) => (f(Some(v)), at),
            None => (f(None), now),
        };
        self.make_room(&mut entries, now);
        entries.insert(key, (value.clone(), at));
        (value, at)
    }

    /// Changes every entry in place (their times stay).
    pub fn modify_all(&self, mut f: impl FnMut(&K, &mut V)) {
        for (k, (v, _)) in self.lock().iter_mut() {
            f(k, v);
        }
    }

    pub fn remove(&self, key: &K) {
        self.lock().remove(key);
    }

    /// Keeps only the entries for which `keep` is true.
    pub fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) {
        self.lock().retain(|k, (v, _)| keep(k, v));
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    fn make_room(&self, entries: &mut HashMap<K, (V, OffsetDateTime)>, now: OffsetDateTime) {
        if entries.len() >= self.capacity {
            let ttl = self.ttl;
            entries.retain(|_, (_, at)| now - *at < ttl);
        }
        if entries.len() >= self.capacity {
            entries.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use time::macros::datetime;

    /// A cache of 2 entries for 5 s, and the clock it reads.
    fn cache() -> (Arc<FixedClock>, TtlCache<&'static str, u32>) {
        let clock = Arc::new(FixedClock::new(datetime!(2026-03-01 12:00 UTC)));
        (clock.clone(), TtlCache::new(clock, Duration::seconds(5), 2))
    }

    #[test]
    fn an_entry_is_served_until_its_ttl_and_not_after() {
        let (clock, c) = cache();
        c.insert("a", 1);
        clock.advance(Duration::milliseconds(4_999));
        assert_eq!(c.get(&"a"), Some(1));
        clock.advance(Duration::milliseconds(1));
        assert_eq!(c.get(&"a"), None);
    }

    #[test]
    fn an_update_keeps_the_time_an_entry_was_first_stored() {
        let (clock, c) = cache();
        c.update("a", |old| old.unwrap_or(0) + 1);
        clock.advance(Duration::seconds(3));
        assert_eq!(c.update("a", |old| old.unwrap_or(0) + 1).0, 2);
        clock.advance(Duration::seconds(2));
        assert_eq!(c.get(&"a"), None, "expired 5 s after the first store");
        assert_eq!(c.update("a", |old| old.unwrap_or(0) + 1).0, 1);
    }

    #[test]
    fn a_full_cache_drops_expired_entries_then_everything() {
        let (clock, c) = cache();
        c.insert("a", 1);
        clock.advance(Duration::seconds(6));
        c.insert("b", 2);
        c.insert("c", 3);
        assert_eq!((c.get(&"b"), c.get(&"c")), (Some(2), Some(3)));
        c.insert("d", 4);
        assert_eq!((c.get(&"b"), c.get(&"d")), (None, Some(4)));
    }
}
