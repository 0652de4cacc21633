//! An event's `context` as ingest reads it: the members it reads, parsed; the rest skipped.

use serde::Deserialize;
use serde_json::{Map, Value};

/// An event's `context` as ingest reads it. Nothing of a context is stored: ingest reads a
/// few of its members ([`context_member_read`]) and the rest is skipped as it is parsed,
/// never built into values (in a typical SDK's context, `library`, `locale`, `timezone`,
/// `screen`, `os`, `device`, `app`, `network`, `campaign` are most of its members).
pub(crate) enum WireContext {
    /// `null`, or an object: the members ingest reads, and how many it had in all (a member
    /// sent twice counts twice).
    Object {
        read: Map<String, Value>,
        members: usize,
    },
    /// Anything else, which the event is refused for.
    Other,
}

/// Whether ingest reads a context member: the client (`prepare`: `ip`, `userAgent`,
/// `page`, `channel`), identifiers (`traits`), consent signals (`gpc`, `location`,
/// `consent`), and click ids (their keys, and `_ga`). A member read anywhere else must be
/// added here: in debug builds [`Layered::get`](super::inherit::Layered::get) on a context
/// panics for a member that is not.
pub(crate) fn context_member_read(key: &str) -> bool {
    matches!(
        key,
        "ip" | "userAgent" | "page" | "channel" | "traits" | "gpc" | "location" | "consent" | "_ga"
    ) || crate::click_ids::is_event_key(key)
}

impl<'de> Deserialize<'de> for WireContext {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = WireContext;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<WireContext, A::Error> {
                let mut read = Map::new();
                let mut members = 0usize;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    members += 1;
                    if context_member_read(&key) {
                        // A member sent twice: the later stands, as in a parsed object.
                        read.insert(key.into_owned(), map.next_value()?);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(WireContext::Object { read, members })
            }
            fn visit_unit<E>(self) -> Result<WireContext, E> {
                Ok(WireContext::Object {
                    read: Map::new(),
                    members: 0,
                })
            }
            fn visit_bool<E>(self, _: bool) -> Result<WireContext, E> {
                Ok(WireContext::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<WireContext, E> {
                Ok(WireContext::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<WireContext, E> {
                Ok(WireContext::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<WireContext, E> {
                Ok(WireContext::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<WireContext, E> {
                Ok(WireContext::Other)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<WireContext, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(WireContext::Other)
            }
        }
        d.deserialize_any(Members)
    }
}
