//! `GET /admin/v1/events`: the event debugger's list — the newest events of the last hour, by
//! type and name — or the events with one Segment `messageId` (the trace by internal id is
//! `GET /admin/v1/events/{id}` in `trace.rs`).

use serde::Serialize;
use tracklayer_core::admin::RECENT_MAX;
use tracklayer_core::event::{EventType, MessageId, RecentEvents};
use utoipa::ToSchema;

use super::extract::{Call, Json, Params};
use super::{dto, error::bad_parameter, trace};
use crate::problem::Problem;

/// Event traces, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventTraces {
    pub traces: Vec<trace::EventTrace>,
}

/// The longest name filter (a track call's `event`, a page's `name`).
const NAME_MAX: usize = 200;
/// How many recent events are listed when `limit` is not given.
const LIMIT_DEFAULT: u64 = 50;

/// The filters of the list, read from the query string.
struct Filters {
    message_id: Option<MessageId>,
    event_type: Option<EventType>,
    name: Option<String>,
    limit: usize,
}

impl Filters {
    fn read(q: &Params) -> Result<Self, Problem> {
        let message_id = q
            .text("message_id", MessageId::MAX_LEN)?
            .map(|raw| {
                MessageId::parse(&raw)
                    .map_err(|why| Problem::invalid("message_id", format!("message_id {why}")))
            })
            .transpose()?;
        let event_type = q
            .text("type", 16)?
            .map(|t| {
                serde_json::from_value::<EventType>(serde_json::Value::String(t)).map_err(|_| {
                    bad_parameter(
                        "type",
                        "type must be track, page, identify, screen, group or alias",
                    )
                })
            })
            .transpose()?;
        let name = q
            .text("name", NAME_MAX)?
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty());
        let limit = q
            .integer("limit", 1, RECENT_MAX as u64)?
            .unwrap_or(LIMIT_DEFAULT) as usize;
        Ok(Self {
            message_id,
            event_type,
            name,
            limit,
        })
    }
}

/// Without `message_id`: the traces of the caller's workspace's newest events received in the
/// last hour, newest first, of `type` and with a name containing `name` (any case), at most
/// `limit` (any role). On AWS (DynamoDB) the list reads the event packs of the hour's minutes,
/// newest first, until `limit` events are found: at most 61 eventually consistent queries
/// (30.5 read units for an idle hour), plus one delivery-log query per event listed.
///
/// With `message_id`: the traces of the events with this Segment `messageId` (normally one),
/// within its dedup window: 1 day (24 hours after the event was received), narrowed by `type`
/// and `name` when given; 404 when there is none. On AWS an event with
/// `userId`/`anonymousId`/identifiers is found by reading the workspace's event packs received
/// since, newest first (the cost grows with the age).
#[utoipa::path(get, path = "/admin/v1/events", operation_id = "findEventTracesByMessageId", tag = "events",
    params(
        ("message_id" = Option<String>, Query, description = "The event's Segment `messageId` (1 to 256 characters); found within its dedup window: 1 day", max_length = 256),
        ("type" = Option<trace::EventType>, Query, description = "Only events of this call type"),
        ("name" = Option<String>, Query, description = "Only events whose name (a track call's `event`, a page's or screen's `name`) contains this, ignoring case", max_length = 200),
        ("limit" = Option<u64>, Query, description = "How many events at most (default 50)", minimum = 1, maximum = 100),
    ),
    responses(
        (status = 200, description = "The traces, newest first", body = EventTraces),
        (status = 400, description = "A filter is malformed: `message_id` or `name` too long, `type` not a call type, `limit` not from 1 to 100 (the problem's `field` names it)", body = dto::ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "No event with this `messageId` within the window", body = dto::ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "`message_id` is not a valid messageId", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn find(Call(s, p): Call, q: Params) -> Result<Json<EventTraces>, Problem> {
    let f = Filters::read(&q)?;
    let Some(message_id) = &f.message_id else {
        let traces = s
            .run(
                s.admin()
                    .recent_event_traces(&p, f.event_type, f.name.clone(), f.limit),
            )
            .await?;
        return Ok(Json(EventTraces {
            traces: traces.into_iter().map(Into::into).collect(),
        }));
    };
    // Narrowed by type and name with the list's own rule.
    let narrow = RecentEvents {
        since: time::OffsetDateTime::UNIX_EPOCH,
        event_type: f.event_type,
        name: f.name.clone(),
        limit: f.limit,
    };
    let traces: Vec<trace::EventTrace> = s
        .run(s.admin().event_traces_by_message_id(&p, message_id))
        .await?
        .into_iter()
        .filter(|t| narrow.matches(&t.event))
        .take(f.limit)
        .map(trace::EventTrace::from)
        .collect();
    if traces.is_empty() {
        return Err(Problem::not_found("event with this message_id").field("message_id"));
    }
    Ok(Json(EventTraces { traces }))
}
