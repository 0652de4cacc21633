//! Counters in memory, for unit tests (never built into a release: test or `testkit` only).

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{bucket_start, StatsBucket, StatsDelta, StatsQuery, StatsReader, StatsRecorder};
use crate::error::StoreError;
use crate::workspace::WorkspaceId;

/// Buckets in a map, and every write as it came, so a test can count writes.
#[derive(Debug, Default)]
pub struct MemoryStats {
    buckets: Mutex<BTreeMap<(WorkspaceId, OffsetDateTime), StatsDelta>>,
    writes: Mutex<Vec<(WorkspaceId, OffsetDateTime, StatsDelta)>>,
    /// Fail every write (a store that is down).
    pub failing: std::sync::atomic::AtomicBool,
}

impl MemoryStats {
    /// Every write so far: (workspace, time given, delta).
    pub fn writes(&self) -> Vec<(WorkspaceId, OffsetDateTime, StatsDelta)> {
        self.writes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[async_trait]
impl StatsRecorder for MemoryStats {
    async fn record(
        &self,
        ws: &WorkspaceId,
        at: OffsetDateTime,
        delta: &StatsDelta,
    ) -> Result<(), StoreError> {
        if self.failing.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(StoreError::transient("stats", "the stats store is down"));
        }
        self.writes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((ws.clone(), at, delta.clone()));
        self.buckets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((ws.clone(), bucket_start(at)))
            .or_default()
            .merge(delta);
        Ok(())
    }
}

#[async_trait]
impl StatsReader for MemoryStats {
    async fn buckets(
        &self,
        ws: &WorkspaceId,
        q: &StatsQuery,
    ) -> Result<Vec<StatsBucket>, StoreError> {
        Ok(self
            .buckets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|((w, start), _)| w == ws && q.takes(*start))
            .map(|((_, start), counts)| StatsBucket {
                start: *start,
                counts: counts.clone(),
            })
            .collect())
    }
}
