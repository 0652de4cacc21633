//! The tracking API's wire format: limits, request facts, parsing a body, what is refused.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::{KeyError, StoreError};
use crate::event::EventType;
use crate::keys::KeyRefusal;
use crate::workspace::Region;

use super::inherit::{self, MAX_BATCH_OBJECT_KEYS};

/// Segment's limits: 32 KB per event, 500 KB per request, and our 2,500 events per batch.
pub const MAX_EVENT_BYTES: usize = 32 * 1024;
pub const MAX_REQUEST_BYTES: usize = 500 * 1024;
pub const MAX_BATCH_EVENTS: usize = 2_500;
/// Queue messages stay below SQS's 256 KiB limit with room for attributes.
pub const MAX_QUEUE_MESSAGE_BYTES: usize = 240 * 1024;

/// Which tracking endpoint a body arrived at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Batch,
    Single(EventType),
}

/// Facts about the HTTP request that events fall back on.
#[derive(Clone)]
pub struct RequestMeta {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    /// `Sec-GPC: 1`.
    pub gpc: bool,
}

/// IP address and user-agent are personal data: `Debug` says only whether they are there.
impl std::fmt::Debug for RequestMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestMeta")
            .field("ip", &self.ip.map(|_| "<redacted>"))
            .field(
                "user_agent",
                &self.user_agent.as_ref().map(|_| "<redacted>"),
            )
            .field("gpc", &self.gpc)
            .finish()
    }
}

/// One event of a request that was not accepted, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub index: usize,
    #[serde(rename = "messageId", skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The field at fault, as a JSON pointer into the event (`/event`, `/timestamp`).
    pub field: String,
    pub detail: String,
}

/// What went wrong with a whole request.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the request body is not valid JSON: {0}")]
    NotJson(String),
    #[error("{detail}")]
    Invalid { field: String, detail: String },
    /// An object of the batch-level `context` or `integrations` has too many keys.
    #[error("{field} has {keys} keys; at most {limit} are allowed")]
    TooManyKeys {
        field: String,
        keys: usize,
        limit: usize,
    },
    /// Every preparation slot is taken and the queue for them is full: retry shortly.
    #[error("the server is busy preparing other requests")]
    Busy,
    #[error("the request body is larger than {MAX_REQUEST_BYTES} bytes")]
    RequestTooLarge,
    #[error("event {index} is larger than {MAX_EVENT_BYTES} bytes")]
    EventTooLarge { index: usize },
    #[error("no event in the request was valid")]
    NothingValid { rejected: Vec<Rejection> },
    #[error("{}", .0.detail())]
    Unauthorized(KeyRefusal),
    #[error("this workspace lives in region {region}")]
    WrongRegion { region: Region },
    #[error("requests from this address are blocked by the workspace")]
    Blocked,
    #[error("too many failed authentications from this address or for this key")]
    Throttled { retry_after: std::time::Duration },
    #[error("the workspace encryption key is unavailable")]
    KeyUnavailable(#[source] KeyError),
    #[error("storage is unavailable")]
    Store(#[from] StoreError),
    #[error("the key service failed")]
    Key(#[source] KeyError),
}

/// A parsed request: raw items plus batch-level fields.
pub struct ParsedBody<'a> {
    pub items: Vec<&'a RawValue>,
    pub context: Option<Map<String, Value>>,
    pub integrations: Option<Map<String, Value>>,
    pub sent_at: Option<Value>,
    pub write_key: Option<String>,
    pub(super) endpoint: Endpoint,
}

/// The raw events and batch context hold identifiers, and the write key is a secret:
/// `Debug` shows only their shape.
impl std::fmt::Debug for ParsedBody<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedBody")
            .field("endpoint", &self.endpoint)
            .field("items", &self.items.len())
            .field("context", &self.context.as_ref().map(|_| "<redacted>"))
            .field("write_key", &self.write_key.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireBatch<'a> {
    #[serde(borrow, default)]
    batch: Option<Vec<&'a RawValue>>,
    #[serde(default)]
    context: Option<Value>,
    #[serde(default)]
    integrations: Option<Value>,
    #[serde(default)]
    sent_at: Option<Value>,
    #[serde(default)]
    write_key: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireHead {
    #[serde(default)]
    write_key: Option<Value>,
}

fn object(v: Option<Value>, field: &str) -> Result<Option<Map<String, Value>>, IngestError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(IngestError::Invalid {
            field: format!("/{field}"),
            detail: format!("{field} must be an object"),
        }),
    }
}

fn write_key(v: Option<Value>) -> Result<Option<String>, IngestError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(IngestError::Invalid {
            field: "/writeKey".into(),
            detail: "writeKey must be a string".into(),
        }),
    }
}

/// Parses a (decompressed) request body. Item-level validation happens in [`prepare`].
pub fn parse_body(endpoint: Endpoint, body: &[u8]) -> Result<ParsedBody<'_>, IngestError> {
    if body.len() > MAX_REQUEST_BYTES {
        return Err(IngestError::RequestTooLarge);
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| IngestError::NotJson("the body is not UTF-8".into()))?;
    match endpoint {
        Endpoint::Batch => {
            let wire: WireBatch<'_> = serde_json::from_str(text).map_err(|e| {
                if e.is_data() {
                    IngestError::Invalid {
                        field: "/batch".into(),
                        detail: format!("the body must be an object with a batch array: {e}"),
                    }
                } else {
                    IngestError::NotJson(e.to_string())
                }
            })?;
            let items = wire.batch.ok_or_else(|| IngestError::Invalid {
                field: "/batch".into(),
                detail: "batch is required and must be an array of events".into(),
            })?;
            if items.is_empty() {
                return Err(IngestError::Invalid {
                    field: "/batch".into(),
                    detail: "batch must contain at least one event".into(),
                });
            }
            if items.len() > MAX_BATCH_EVENTS {
                return Err(IngestError::Invalid {
                    field: "/batch".into(),
                    detail: format!(
                        "batch has {} events; at most {MAX_BATCH_EVENTS} are allowed",
                        items.len()
                    ),
                });
            }
            if let Some(index) = items.iter().position(|i| i.get().len() > MAX_EVENT_BYTES) {
                if items.len() == 1 {
                    return Err(IngestError::EventTooLarge { index });
                }
            }
            // Read once per event of the batch: bounded here, once.
            for (field, value) in [
                ("/context", &wire.context),
                ("/integrations", &wire.integrations),
            ] {
                if let Some((field, keys)) = value
                    .as_ref()
                    .and_then(|v| inherit::oversized_object(v, field, MAX_BATCH_OBJECT_KEYS))
                {
                    return Err(IngestError::TooManyKeys {
                        field,
                        keys,
                        limit: MAX_BATCH_OBJECT_KEYS,
                    });
                }
            }
            Ok(ParsedBody {
                items,
                context: object(wire.context, "context")?,
                integrations: object(wire.integrations, "integrations")?,
                sent_at: wire.sent_at,
                write_key: write_key(wire.write_key)?,
                endpoint,
            })
        }
        Endpoint::Single(_) => {
            let raw: &RawValue =
                serde_json::from_str(text).map_err(|e| IngestError::NotJson(e.to_string()))?;
            if !raw.get().trim_start().starts_with('{') {
                return Err(IngestError::Invalid {
                    field: "/".into(),
                    detail: "the body must be a JSON object".into(),
                });
            }
            if raw.get().len() > MAX_EVENT_BYTES {
                return Err(IngestError::EventTooLarge { index: 0 });
            }
            let head: WireHead =
                serde_json::from_str(raw.get()).map_err(|e| IngestError::NotJson(e.to_string()))?;
            Ok(ParsedBody {
                items: vec![raw],
                context: None,
                integrations: None,
                sent_at: None,
                write_key: write_key(head.write_key)?,
                endpoint,
            })
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireMessage {
    #[serde(rename = "type", default)]
    pub(super) kind: Option<Value>,
    #[serde(default)]
    pub(super) message_id: Option<Value>,
    #[serde(default)]
    pub(super) user_id: Option<Value>,
    #[serde(default)]
    pub(super) anonymous_id: Option<Value>,
    #[serde(default)]
    pub(super) previous_id: Option<Value>,
    #[serde(default)]
    pub(super) group_id: Option<Value>,
    #[serde(default)]
    pub(super) event: Option<Value>,
    #[serde(default)]
    pub(super) name: Option<Value>,
    #[serde(default)]
    pub(super) properties: Option<Value>,
    #[serde(default)]
    pub(super) traits: Option<Value>,
    #[serde(default)]
    pub(super) context: Option<Value>,
    #[serde(default)]
    pub(super) integrations: Option<Value>,
    #[serde(default)]
    pub(super) timestamp: Option<Value>,
    #[serde(default)]
    pub(super) original_timestamp: Option<Value>,
    #[serde(default)]
    pub(super) sent_at: Option<Value>,
}
