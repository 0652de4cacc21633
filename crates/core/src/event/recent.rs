//! The event debugger's live list: which recent events an event store lists, by one rule.

use time::OffsetDateTime;

use super::{EventId, EventType, StoredEvent};

/// Which recent events [`crate::ports::EventReader::recent_events`] lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentEvents {
    /// Only events received at or after this time.
    pub since: OffsetDateTime,
    /// Only events of this call type.
    pub event_type: Option<EventType>,
    /// Only events whose name (a track call's `event`, a page's `name`) contains this,
    /// ignoring case.
    pub name: Option<String>,
    pub limit: usize,
}

impl RecentEvents {
    /// Whether the list takes `e` at `now`: one rule for every store.
    pub fn takes(&self, e: &StoredEvent, now: OffsetDateTime) -> bool {
        e.expires_at > now && e.received_at >= self.since && self.matches(e)
    }

    /// Whether `e` is of the type and has the name asked for (the window aside).
    pub fn matches(&self, e: &StoredEvent) -> bool {
        self.event_type.is_none_or(|t| e.event_type == t)
            && self.name.as_deref().is_none_or(|wanted| {
                e.name
                    .as_deref()
                    .is_some_and(|n| n.to_lowercase().contains(&wanted.to_lowercase()))
            })
    }

    /// The smallest event id received at `since` (ids sort by their receipt millisecond).
    pub fn first_id(&self) -> EventId {
        let ms = (self.since.unix_timestamp_nanos() / 1_000_000).max(0) as u64;
        EventId(uuid::Builder::from_unix_timestamp_millis(ms, &[0; 10]).into_uuid())
    }
}
