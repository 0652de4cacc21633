//! A destination's delivery log: `GET /admin/v1/destinations/{id}/delivery-log`.

use serde::Serialize;
use time::OffsetDateTime;
use tracklayer_core as tl;
use utoipa::ToSchema;

use tracklayer_core::ports::{DeliveryQuery, DeliveryStatusKind};

use super::dto::{self, rfc3339, rfc3339_opt};

use super::extract::{Call, Id, Json, Params};
use crate::problem::Problem;

type Answer<T> = Result<Json<T>, Problem>;

/// One page of the destination's delivery log, newest first: each event's latest outcome,
/// filtered by status and time range. Follow `next_cursor` for the next page; it is `null` on
/// the last one.
#[utoipa::path(get, path = "/admin/v1/destinations/{id}/delivery-log", operation_id = "getDeliveryLog", tag = "destinations",
    params(
        dto::DestinationId,
        ("limit" = Option<u32>, Query, description = "How many records per page: 1 to 1000 (default 100)", minimum = 1, maximum = 1000),
        ("status" = Option<String>, Query, description = "Only these statuses, comma-separated: `delivered`, `retrying`, `dead`, `dropped` (unknown: 422)", example = "retrying,dead"),
        ("since" = Option<String>, Query, description = "Updated at or after this time (RFC 3339)", format = DateTime),
        ("until" = Option<String>, Query, description = "Updated at or before this time (RFC 3339; not before `since`: 422)", format = DateTime),
        ("cursor" = Option<String>, Query, description = "The previous page's `next_cursor`, unchanged: not base64url, 400; any other value, 422", pattern = "^[A-Za-z0-9_-]{1,200}$"),
    ),
    responses(
        (status = 200, description = "One page of delivery records", body = DeliveryLogPage),
        (status = 422, description = "An unknown `status`, `since` after `until`, or a `cursor` this log did not give out (the problem names the parameter)", body = super::dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn delivery_log(Call(s, p): Call, Id(id): Id, q: Params) -> Answer<DeliveryLogPage> {
    let query = DeliveryQuery {
        statuses: statuses(q.text("status", 200)?.as_deref())?,
        since: q.time("since")?,
        until: q.time("until")?,
        after: q
            .text("cursor", 200)?
            .map(|c| cursor::decode(&c, &id))
            .transpose()?,
        limit: q.integer("limit", 1, 1000)?.unwrap_or(100) as usize,
    };
    if let (Some(since), Some(until)) = (query.since, query.until) {
        if since > until {
            return Err(Problem::invalid("since", "since must not be after until"));
        }
    }
    let page = s.run(s.admin().delivery_log(&p, &id, query)).await?;
    Ok(Json(DeliveryLogPage {
        deliveries: page.records.into_iter().map(Into::into).collect(),
        next_cursor: page.next.map(|c| cursor::encode(&c, &id)),
    }))
}

/// `delivered,dead` → those statuses; an unknown name is a 422 naming `status`.
fn statuses(v: Option<&str>) -> Result<Vec<DeliveryStatusKind>, Problem> {
    let Some(v) = v else {
        return Ok(Vec::new());
    };
    v.split(',')
        .map(|name| {
            DeliveryStatusKind::parse(name.trim()).ok_or_else(|| {
                let known: Vec<&str> = DeliveryStatusKind::ALL.map(|k| k.as_str()).to_vec();
                Problem::invalid(
                    "status",
                    format!("unknown status {name:?}: one of {}", known.join(", ")),
                )
            })
        })
        .collect()
}

/// The opaque cursor: base64url of `{destination}:{millisecond}:{event id}` and a checksum,
/// so that a changed or truncated cursor, or one of another destination, is a 400 naming
/// `cursor` instead of a page from somewhere else.
mod cursor {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use tracklayer_core::event::EventId;
    use tracklayer_core::identity::sha256_hex;
    use tracklayer_core::ports::DeliveryCursor;

    use super::super::error::bad_parameter;
    use crate::problem::Problem;

    const CHECK: usize = 16;

    fn payload(c: &DeliveryCursor, destination: &str) -> String {
        format!("{destination}:{}:{}", c.updated_ms, c.event_id)
    }

    pub fn encode(c: &DeliveryCursor, destination: &str) -> String {
        let payload = payload(c, destination);
        let check = &sha256_hex(&payload)[..CHECK];
        URL_SAFE_NO_PAD.encode(format!("{payload}:{check}"))
    }

    /// A token that is not base64url is malformed (400); one that is, but is not a
    /// `next_cursor` this log gave out (edited, or another destination's), breaks a rule the
    /// schema cannot express (422).
    pub fn decode(token: &str, destination: &str) -> Result<DeliveryCursor, Problem> {
        if token.is_empty()
            || !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad_parameter(
                "cursor",
                "cursor must be the previous page's next_cursor (base64url)",
            ));
        }
        let bad = || {
            Problem::invalid(
                "cursor",
                "cursor is not a next_cursor of this destination's delivery log",
            )
        };
        let text = URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(bad)?;
        let (payload, check) = text.rsplit_once(':').ok_or_else(bad)?;
        if check.len() != CHECK || sha256_hex(payload)[..CHECK] != *check {
            return Err(bad());
        }
        let mut parts = payload.rsplitn(3, ':');
        let (event, ms, dest) = (parts.next(), parts.next(), parts.next());
        let cursor = DeliveryCursor {
            updated_ms: ms.and_then(|m| m.parse().ok()).ok_or_else(bad)?,
            event_id: event.and_then(EventId::parse).ok_or_else(bad)?,
        };
        if dest != Some(destination) {
            return Err(bad());
        }
        Ok(cursor)
    }
}

/// One page of a destination's delivery log.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryLogPage {
    /// Newest first.
    pub deliveries: Vec<Delivery>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Where one event stands with one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Delivered,
    /// Will be tried again.
    Retrying,
    /// In the dead-letter queue; it can be replayed.
    Dead,
    /// Never sent: too old for the destination, or not acceptable to it.
    Dropped,
}

/// One event's delivery to one destination.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Delivery {
    pub destination_id: String,
    /// `evt_…`
    pub event_id: String,
    /// The event's Segment `messageId` (`null` on records older than this field).
    pub message_id: Option<String>,
    pub status: DeliveryState,
    /// Why it was dropped.
    pub reason: Option<String>,
    pub attempts: u32,
    pub last_http_status: Option<u16>,
    pub last_error: Option<String>,
    /// When the next attempt is due (`retrying` only).
    #[serde(serialize_with = "rfc3339_opt")]
    pub next_attempt_at: Option<OffsetDateTime>,
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(serialize_with = "rfc3339")]
    pub expires_at: OffsetDateTime,
}

impl From<tl::ports::DeliveryRecord> for Delivery {
    fn from(r: tl::ports::DeliveryRecord) -> Self {
        use tl::ports::DeliveryStatus as S;
        let (status, reason) = match r.status {
            S::Delivered => (DeliveryState::Delivered, None),
            S::Retrying => (DeliveryState::Retrying, None),
            S::Dead => (DeliveryState::Dead, None),
            S::Dropped(why) => (DeliveryState::Dropped, Some(why)),
        };
        Self {
            destination_id: r.destination_id.to_string(),
            event_id: r.event_id.to_string(),
            message_id: r.message_id.map(|m| m.as_str().to_owned()),
            status,
            reason,
            attempts: r.attempts,
            last_http_status: r.last_http_status,
            last_error: r.last_error,
            next_attempt_at: r.next_attempt_at,
            updated_at: r.updated_at,
            expires_at: r.expires_at,
        }
    }
}
