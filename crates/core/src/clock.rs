//! Injected time and randomness, so that tests are deterministic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rand::{distributions::Alphanumeric, Rng};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// The current time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> OffsetDateTime;
}

/// The system clock, truncated to milliseconds (what every store keeps).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        truncate_millis(OffsetDateTime::now_utc())
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct FixedClock(Mutex<OffsetDateTime>);

impl FixedClock {
    pub fn new(at: OffsetDateTime) -> Self {
        Self(Mutex::new(truncate_millis(at)))
    }
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
    pub fn set(&self, at: OffsetDateTime) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = truncate_millis(at);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub fn truncate_millis(t: OffsetDateTime) -> OffsetDateTime {
    let nanos = t.nanosecond();
    t.replace_nanosecond(nanos - nanos % 1_000_000).unwrap_or(t)
}

/// Unix seconds of a time, as stored in TTL attributes.
pub fn unix(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

/// Unix milliseconds of a time.
pub fn unix_millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub fn from_unix_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Identifiers and secrets.
pub trait Ids: Send + Sync + 'static {
    /// A time-ordered UUIDv7 for `now`.
    fn uuid_v7(&self, now: OffsetDateTime) -> Uuid;
    /// `len` random characters from `[A-Za-z0-9]`.
    fn token(&self, len: usize) -> String;
    /// Fills `buf` with random bytes (nonces, data keys).
    fn fill(&self, buf: &mut [u8]);
}

/// Randomness from the operating system.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemIds;

impl Ids for SystemIds {
    /// The millisecond of `now` and 74 random bits (RFC 9562 §5.7), from the thread's
    /// CSPRNG (`rand`'s, seeded from the OS and reseeded), as the nonces are: `Uuid::new_v7`
    /// asks the OS for each id's bytes, a `getrandom` call per id, two per ingested event.
    fn uuid_v7(&self, now: OffsetDateTime) -> Uuid {
        let mut random = [0u8; 10];
        rand::thread_rng().fill(&mut random);
        let ms = unix_millis(now).max(0) as u64;
        uuid::Builder::from_unix_timestamp_millis(ms, &random).into_uuid()
    }
    fn token(&self, len: usize) -> String {
        rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(len)
            .map(char::from)
            .collect()
    }
    fn fill(&self, buf: &mut [u8]) {
        rand::thread_rng().fill(buf);
    }
}

/// Deterministic ids for golden tests: a counter, never random.
#[derive(Debug, Default)]
pub struct SequentialIds(AtomicU64);

impl Ids for SequentialIds {
    fn uuid_v7(&self, now: OffsetDateTime) -> Uuid {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        let ms = unix_millis(now).max(0) as u64;
        let mut b = [0u8; 16];
        b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
        b[6] = 0x70;
        b[8] = 0x80;
        b[9..].copy_from_slice(&n.to_be_bytes()[1..]);
        Uuid::from_bytes(b)
    }
    fn token(&self, len: usize) -> String {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        format!("{n:0>len$}")
            .chars()
            .rev()
            .take(len)
            .collect::<String>()
    }
    fn fill(&self, buf: &mut [u8]) {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (n as u8).wrapping_add(i as u8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_ids_are_version_7_of_the_millisecond_and_random() {
        let now =
            OffsetDateTime::from_unix_timestamp_nanos(1_764_000_000_123_456_789).expect("a time");
        let (a, b) = (SystemIds.uuid_v7(now), SystemIds.uuid_v7(now));
        for id in [a, b] {
            assert_eq!(id.get_version_num(), 7);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
            let (secs, nanos) = id.get_timestamp().expect("a v7 timestamp").to_unix();
            assert_eq!((secs, nanos), (1_764_000_000, 123_000_000));
        }
        assert_ne!(a, b, "74 random bits each");
        // Time orders ids across milliseconds.
        let later = SystemIds.uuid_v7(now + Duration::milliseconds(1));
        assert!(later > a && later > b);
    }
}
