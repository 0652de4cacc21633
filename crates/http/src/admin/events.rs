//! Event traces found by the client's Segment `messageId` (the trace by internal id is
//! `GET /admin/v1/events/{id}` in `trace.rs`).

use serde::Serialize;
use tracklayer_core::event::MessageId;
use utoipa::ToSchema;

use super::error::bad_parameter;
use super::extract::{Call, Json, Params};
use super::{dto, trace};
use crate::problem::Problem;

/// The traces of the events with one `messageId`: normally one.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventTraces {
    pub traces: Vec<trace::EventTrace>,
}

/// The traces of the caller's workspace's events with this Segment `messageId` (any role).
/// Found within the messageId's dedup window: 1 day (24 hours after the event was received).
/// On AWS (DynamoDB) an event with `userId`/`anonymousId`/identifiers is found by reading
/// the workspace's event packs received since, newest first (the cost grows with the age).
#[utoipa::path(get, path = "/admin/v1/events", operation_id = "findEventTracesByMessageId", tag = "events",
    params(("message_id" = String, Query, description = "The event's Segment `messageId` (1 to 256 characters); found within its dedup window: 1 day", max_length = 256)),
    responses(
        (status = 200, description = "The traces (normally one)", body = EventTraces),
        (status = 400, description = "`message_id` missing or longer than 256 characters", body = dto::ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "No event with this `messageId` within the window", body = dto::ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "`message_id` is not a valid messageId", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn by_message_id(Call(s, p): Call, q: Params) -> Result<Json<EventTraces>, Problem> {
    let raw = q
        .text("message_id", MessageId::MAX_LEN)?
        .ok_or_else(|| bad_parameter("message_id", "message_id is required"))?;
    let message_id = MessageId::parse(&raw)
        .map_err(|why| Problem::invalid("message_id", format!("message_id {why}")))?;
    let traces = s
        .run(s.admin().event_traces_by_message_id(&p, &message_id))
        .await?;
    if traces.is_empty() {
        return Err(Problem::not_found("event with this message_id").field("message_id"));
    }
    Ok(Json(EventTraces {
        traces: traces.into_iter().map(Into::into).collect(),
    }))
}
