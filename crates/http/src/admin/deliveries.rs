//! A destination's delivery log and replay: wire types and handlers.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracklayer_core as tl;
use utoipa::ToSchema;

use super::dto::{self, rfc3339, rfc3339_in};
use super::extract::{Answer, Caller, Id, Json, OptionalJson, Params};
use super::AdminState;

/// Which dead letters to move back to the queue: all, or those that died in a time range.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    #[serde(default, deserialize_with = "rfc3339_in")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub since: Option<OffsetDateTime>,
    #[serde(default, deserialize_with = "rfc3339_in")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub until: Option<OffsetDateTime>,
}

/// How many dead-lettered messages went back to the queue.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Replayed {
    pub destination_id: String,
    pub replayed_messages: u64,
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
    pub status: DeliveryState,
    /// Why it was dropped.
    pub reason: Option<String>,
    pub attempts: u32,
    pub last_http_status: Option<u16>,
    pub last_error: Option<String>,
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
            status,
            reason,
            attempts: r.attempts,
            last_http_status: r.last_http_status,
            last_error: r.last_error,
            updated_at: r.updated_at,
            expires_at: r.expires_at,
        }
    }
}

/// The destination's most recent deliveries (newest first).
#[utoipa::path(get, path = "/admin/v1/destinations/{id}/delivery-log", operation_id = "getDeliveryLog", tag = "destinations",
    params(
        ("id" = String, Path, description = "The destination's id (`dst_…`)", pattern = "^dst_[a-z0-9]{1,40}$"),
        ("limit" = Option<u32>, Query, description = "How many records: 1 to 1000 (default 100)", minimum = 1, maximum = 1000),
    ),
    responses((status = 200, description = "Delivery records", body = Vec<Delivery>)))]
pub async fn delivery_log(
    State(s): State<AdminState>,
    Caller(p): Caller,
    Id(id): Id,
    q: Params,
) -> Answer<Vec<Delivery>> {
    let limit = q.integer("limit", 1, 1000)?.unwrap_or(100) as usize;
    let v = s
        .admin()
        .delivery_log(&p, &id, limit)
        .await
        .map_err(|e| s.fail(e))?;
    Ok(Json(v.into_iter().map(Into::into).collect()))
}

/// Moves the destination's dead letters (all, or those that died in a time range) back to
/// its queue (editor).
#[utoipa::path(post, path = "/admin/v1/destinations/{id}/replay", operation_id = "replayDeadLetters", tag = "destinations",
    params(("id" = String, Path, description = "The destination's id (`dst_…`)", pattern = "^dst_[a-z0-9]{1,40}$")),
    request_body(content = Option<Replay>, description = "Optional time range (RFC 3339)"),
    responses(
        (status = 200, description = "How many messages went back", body = Replayed),
        (status = 403, description = "Viewers cannot replay", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn replay(
    State(s): State<AdminState>,
    Caller(p): Caller,
    Id(id): Id,
    OptionalJson(body): OptionalJson<Replay>,
) -> Answer<Replayed> {
    let moved = s
        .admin()
        .replay(&p, &id, body.since, body.until)
        .await
        .map_err(|e| s.fail(e))?;
    Ok(Json(Replayed {
        destination_id: id,
        replayed_messages: moved,
    }))
}
