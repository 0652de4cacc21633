//! Data-subject requests (whitepaper §06) on the admin API: submit, list, get with receipt,
//! download an access export. Admins only; the DSR service checks the role.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use tracklayer_core::dsr::service::{DsrError, SubjectIdentifiers};
use tracklayer_core::dsr::{self as core_dsr, DsrKind};
use utoipa::ToSchema;

use super::dto::{self, rfc3339, rfc3339_opt};
use super::extract::{Call, Id, Json, Params};
use super::{AdminConfig, AdminState, Failure};
use crate::problem::Problem;

/// What the subject asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestType {
    /// Delete everything TrackLayer holds about the subject and drop its later events.
    Erasure,
    /// Export what TrackLayer holds about the subject (downloadable for 7 days).
    Access,
}

dto::mirror! { RequestType = DsrKind { Erasure, Access } }

/// The subject's identifiers: at least one. They are turned into TrackLayer's keyed subject
/// index on receipt and never stored.
#[derive(Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    /// An email address (normalized as ingest does: case, whitespace, Gmail dots).
    pub email: Option<String>,
    /// A phone number in international format (`+49 30 1234567`).
    pub phone: Option<String>,
    /// The customer's user id (Segment `userId`).
    pub external_id: Option<String>,
    /// Segment `anonymousId`.
    pub anonymous_id: Option<String>,
}

impl std::fmt::Debug for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Subject(<redacted>)")
    }
}

/// A new data-subject request.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRequest {
    #[serde(rename = "type")]
    pub kind: RequestType,
    pub subject: Subject,
    /// Your own reference (ticket number), 1 to 200 characters.
    pub reference: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    Pending,
    Processing,
    Completed,
}

dto::mirror! { core_dsr::DsrStatus => RequestStatus { Pending, Processing, Completed } }

/// Rows per store: deleted (erasure) or exported (access).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct StoreCounts {
    pub events: u64,
    pub subject_index_entries: u64,
    /// Sealed IP address / user-agent records.
    pub operational_records: u64,
    pub dedup_markers: u64,
    pub delivery_log_entries: u64,
    /// Items removed from delivery and dead-letter queues.
    pub queue_items: u64,
    /// Erasure: exports of earlier access requests for the subject, deleted.
    pub access_exports: u64,
}

impl From<core_dsr::StoreCounts> for StoreCounts {
    fn from(c: core_dsr::StoreCounts) -> Self {
        Self {
            events: c.events,
            subject_index_entries: c.subject_index_entries,
            operational_records: c.operational_records,
            dedup_markers: c.dedup_markers,
            delivery_log_entries: c.delivery_log_entries,
            queue_items: c.queue_items,
            access_exports: c.access_exports,
        }
    }
}

/// What TrackLayer did at one destination, and what you must do in its systems.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DestinationReceipt {
    pub destination_id: String,
    pub name: Option<String>,
    pub kind: Option<dto::DestinationKind>,
    pub events_routed: u64,
    pub events_delivered: u64,
    #[serde(serialize_with = "rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub first_delivered_at: Option<OffsetDateTime>,
    #[serde(serialize_with = "rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_delivered_at: Option<OffsetDateTime>,
    pub tracklayer_action: String,
    /// `null`: nothing to do there.
    pub customer_action: Option<String>,
    /// Erasure at GA4: the client ids TrackLayer sent for the subject, to delete with GA4's
    /// User Deletion API (empty otherwise). Kept encrypted; shown only to admins.
    pub client_ids: Vec<String>,
}

/// The final account of a completed request.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Receipt {
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: OffsetDateTime,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub completed_at: OffsetDateTime,
    pub counts: StoreCounts,
    /// Erasure: later events of the subject are dropped at ingest.
    pub suppressed: bool,
    pub pages: u32,
    pub destinations: Vec<DestinationReceipt>,
    /// Access: the export can be downloaded until then.
    #[serde(serialize_with = "rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub export_expires_at: Option<OffsetDateTime>,
    /// Access: the erasure request of the same subject that deleted the export.
    #[schema(value_type = Option<String>)]
    pub export_deleted_by: Option<String>,
}

/// Processing so far.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Progress {
    pub pages: u32,
    pub counts: StoreCounts,
}

/// A data-subject request.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DataSubjectRequest {
    /// `dsr_…`
    pub id: String,
    #[serde(rename = "type")]
    pub kind: RequestType,
    pub status: RequestStatus,
    pub reference: Option<String>,
    /// Which identifiers were given (never their values).
    pub identifiers: Vec<String>,
    /// `user:usr_…` or `svc:<key id>`.
    pub submitted_by: String,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub submitted_at: OffsetDateTime,
    /// 30 days after submission.
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub due_at: OffsetDateTime,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    pub progress: Progress,
    /// Present once completed.
    pub receipt: Option<Receipt>,
}

impl From<core_dsr::DsrRequest> for DataSubjectRequest {
    fn from(r: core_dsr::DsrRequest) -> Self {
        Self {
            id: r.id.to_string(),
            kind: r.kind.into(),
            status: r.status.into(),
            reference: r.reference,
            identifiers: r.identifiers,
            submitted_by: r.submitted_by,
            submitted_at: r.submitted_at,
            due_at: r.due_at,
            updated_at: r.updated_at,
            progress: Progress {
                pages: r.progress.pages,
                counts: r.progress.counts.into(),
            },
            receipt: r.receipt.map(|c| Receipt {
                started_at: c.started_at,
                completed_at: c.completed_at,
                counts: c.counts.into(),
                suppressed: c.suppressed,
                pages: c.pages,
                destinations: c
                    .destinations
                    .into_iter()
                    .map(|d| DestinationReceipt {
                        destination_id: d.destination_id.to_string(),
                        name: d.name,
                        kind: d.kind.map(Into::into),
                        events_routed: d.events_routed,
                        events_delivered: d.events_delivered,
                        first_delivered_at: d.first_delivered_at,
                        last_delivered_at: d.last_delivered_at,
                        tracklayer_action: d.tracklayer_action,
                        customer_action: d.customer_action,
                        client_ids: d.client_ids.0,
                    })
                    .collect(),
                export_expires_at: c.export_expires_at,
                export_deleted_by: c.export_deleted_by.map(String::from),
            }),
        }
    }
}

/// A page of requests, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RequestList {
    pub requests: Vec<DataSubjectRequest>,
}

impl Failure for DsrError {
    fn problem(self, config: &AdminConfig) -> Problem {
        match self {
        DsrError::Admin(e) => e.problem(config),
        DsrError::ExportExpired(at) => Problem::new(
            StatusCode::GONE,
            "export-expired",
            "Gone",
            "the export could be downloaded for 7 days and has been deleted; submit a new access request",
        )
        .with(
            "expired_at",
            at.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        ),
        DsrError::ExportErased(by) => Problem::new(
            StatusCode::GONE,
            "export-erased",
            "Gone",
            format!(
                "the export was deleted by erasure request {by} of the same subject; \
                 it cannot be downloaded any more"
            ),
        )
        .with("erasure_request_id", by.as_str()),
        DsrError::NotReady(status) => Problem::new(
            StatusCode::CONFLICT,
            "export-not-ready",
            "Conflict",
            format!("the request is {status}; its export is ready once it is completed"),
        ),
        }
    }
}

fn service(s: &AdminState) -> Result<&tracklayer_core::dsr::service::DsrService, Problem> {
    s.dsr().ok_or_else(|| {
        Problem::unavailable(
            "dsr-unavailable",
            "data-subject requests are not enabled on this deployment",
            60,
        )
    })
}

/// Submits an erasure or access request (admin). Processing starts within minutes; poll the
/// request for its status and receipt.
#[utoipa::path(post, path = "/admin/v1/data_subject_requests", operation_id = "submitDataSubjectRequest", tag = "data-subject-requests",
    request_body = NewRequest,
    responses(
        (status = 202, description = "Received: pending, due in 30 days", body = DataSubjectRequest),
        (status = 403, description = "Only admins submit requests", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn submit(Call(s, p): Call, Json(body): Json<NewRequest>) -> Result<Response, Problem> {
    let dsr = service(&s)?;
    let subject = SubjectIdentifiers {
        email: body.subject.email,
        phone: body.subject.phone,
        external_id: body.subject.external_id,
        anonymous_id: body.subject.anonymous_id,
    };
    let r = s
        .run(dsr.submit(&p, body.kind.into(), &subject, body.reference))
        .await?;
    let location = format!("/admin/v1/data_subject_requests/{}", r.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(DataSubjectRequest::from(r)),
    )
        .into_response())
}

/// The workspace's requests, newest first (admin).
#[utoipa::path(get, path = "/admin/v1/data_subject_requests", operation_id = "listDataSubjectRequests", tag = "data-subject-requests",
    params(("limit" = Option<u32>, Query, description = "At most this many: 1 to 1000 (default 100)", minimum = 1, maximum = 1000)),
    responses(
        (status = 200, description = "Requests", body = RequestList),
        (status = 403, description = "Only admins read requests", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn list(Call(s, p): Call, q: Params) -> Result<Json<RequestList>, Problem> {
    let limit = q.integer("limit", 1, 1000)?.unwrap_or(100) as usize;
    let dsr = service(&s)?;
    let requests = s.run(dsr.list(&p, limit)).await?;
    Ok(Json(RequestList {
        requests: requests.into_iter().map(Into::into).collect(),
    }))
}

/// One request with its status, progress and (once completed) receipt (admin).
#[utoipa::path(get, path = "/admin/v1/data_subject_requests/{id}", operation_id = "getDataSubjectRequest", tag = "data-subject-requests",
    params(("id" = String, Path, description = "The request's id (`dsr_…`)", pattern = "^dsr_[0-9a-f]{32}$")),
    responses(
        (status = 200, description = "The request", body = DataSubjectRequest),
        (status = 403, description = "Only admins read requests", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn get(Call(s, p): Call, Id(id): Id) -> Result<Json<DataSubjectRequest>, Problem> {
    let dsr = service(&s)?;
    s.answer(dsr.get(&p, &id)).await
}

/// The export of a completed access request, for 7 days after processing started (admin):
/// the subject's events (metadata, hashed identifiers, consent decisions) and their delivery
/// outcomes.
#[utoipa::path(get, path = "/admin/v1/data_subject_requests/{id}/export", operation_id = "getDataSubjectExport", tag = "data-subject-requests",
    params(("id" = String, Path, description = "The access request's id (`dsr_…`)", pattern = "^dsr_[0-9a-f]{32}$")),
    responses(
        (status = 200, description = "The export (JSON, sent as an attachment)", body = Object),
        (status = 403, description = "Only admins download exports", body = dto::ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "The request is not completed yet", body = dto::ProblemDoc, content_type = "application/problem+json"),
        (status = 410, description = "The export's 7 days are over, or a later erasure of the same subject deleted it (`export-erased`, naming `erasure_request_id`)", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn export(Call(s, p): Call, Id(id): Id) -> Result<Response, Problem> {
    let dsr = service(&s)?;
    let doc: Value = s.run(dsr.export(&p, &id)).await?;
    let disposition = format!(
        "attachment; filename=\"{}-export.json\"",
        id.replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "")
    );
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Json(doc),
    )
        .into_response())
}
