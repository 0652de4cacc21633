//! A destination's delivery log and replay: wire types and handlers.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::dto::{self, rfc3339_in};
use super::extract::{Answer, Call, Id, Json, OptionalJson};

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

pub use super::delivery_log::Delivery;

/// Moves the destination's dead letters (all, or those that died in a time range) back to
/// its queue (editor).
#[utoipa::path(post, path = "/admin/v1/destinations/{id}/replay", operation_id = "replayDeadLetters", tag = "destinations",
    params(dto::DestinationId),
    request_body(content = Option<Replay>, description = "Optional time range (RFC 3339)"),
    responses(
        (status = 200, description = "How many messages went back", body = Replayed),
        (status = 403, description = "Viewers cannot replay", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn replay(
    Call(s, p): Call,
    Id(id): Id,
    OptionalJson(body): OptionalJson<Replay>,
) -> Answer<Replayed> {
    let moved = s
        .run(s.admin().replay(&p, &id, body.since, body.until))
        .await?;
    Ok(Json(Replayed {
        destination_id: id,
        replayed_messages: moved,
    }))
}
