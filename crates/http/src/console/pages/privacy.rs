//! Data-subject requests (admins): submit an erasure or access request, the list, each one's
//! receipt, and the access export's download. The identifiers typed in are sent to the core
//! use case as they are and never shown again (the request keeps only which kinds were given).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tracklayer_core::dsr::service::{DsrService, SubjectIdentifiers};

use super::label;
use crate::admin::dsr::{DataSubjectRequest, RequestType};
use crate::console::csrf::Action;
use crate::console::handler::{form_again, ObjectPage, OrFailure};
use crate::console::session::Me;
use crate::console::view::{done_page, page, see_other, when, Failure, Shell};
use crate::console::ConsoleState;

#[derive(Debug, Deserialize)]
pub struct Done {
    done: Option<String>,
}

fn service(s: &ConsoleState) -> Result<&DsrService, Failure> {
    s.dsr().ok_or(Failure {
        status: StatusCode::SERVICE_UNAVAILABLE,
        detail: "data-subject requests are not enabled on this deployment".into(),
        field: None,
    })
}

/// A data-subject request use case's answer, or the failure to show (also when such requests
/// are not enabled on this deployment).
async fn dsr_call<T, E: crate::admin::Failure>(
    s: &ConsoleState,
    call: impl AsyncFnOnce(&DsrService) -> Result<T, E>,
) -> Result<T, Failure> {
    call(service(s)?).await.or_failure(s)
}

struct Row {
    r: DataSubjectRequest,
    kind: String,
    status: String,
    submitted: String,
    due: String,
}

fn row(r: DataSubjectRequest) -> Row {
    Row {
        kind: label(&r.kind),
        status: label(&r.status),
        submitted: when(r.submitted_at),
        due: when(r.due_at),
        r,
    }
}

#[derive(Template)]
#[template(path = "console/privacy.html")]
struct List {
    shell: Shell,
    rows: Vec<Row>,
    error: String,
    reference: String,
}

async fn list_page(s: &ConsoleState, me: &Me) -> Result<List, Failure> {
    let requests = dsr_call(s, async |dsr| dsr.list(&me.principal, 100).await).await?;
    Ok(List {
        shell: Shell::new(me, "dsr", "Privacy requests"),
        rows: requests
            .into_iter()
            .map(DataSubjectRequest::from)
            .map(row)
            .collect(),
        error: String::new(),
        reference: String::new(),
    })
}

/// `GET /privacy-requests`.
pub async fn list(State(s): State<ConsoleState>, me: Me, Query(q): Query<Done>) -> Response {
    done_page(list_page(&s, &me).await, q.done.as_deref(), |v| {
        &mut v.shell
    })
}

/// `POST /privacy-requests`: `type`, the subject's identifiers, an optional reference.
pub async fn submit(State(s): State<ConsoleState>, Action { me, form }: Action) -> Response {
    let kind = match form.get("type") {
        "access" => RequestType::Access,
        _ => RequestType::Erasure,
    };
    let subject = SubjectIdentifiers {
        email: form.opt("email"),
        phone: form.opt("phone"),
        external_id: form.opt("external_id"),
        anonymous_id: form.opt("anonymous_id"),
    };
    let reference = form.opt("reference");
    let submitted = dsr_call(&s, async |dsr| {
        dsr.submit(&me.principal, kind.into(), &subject, reference)
            .await
    })
    .await;
    let f = match submitted {
        Ok(r) => return see_other(&format!("/privacy-requests/{}?done=dsr-submitted", r.id)),
        Err(f) => f,
    };
    form_again(f, list_page(&s, &me), |view, f| {
        view.error = f.message();
        view.reference = form.get("reference").to_owned();
    })
    .await
}

#[derive(Template)]
#[template(path = "console/privacy_request.html")]
struct Detail {
    shell: Shell,
    row: Row,
    completed: String,
    export_until: String,
}

/// `GET /privacy-requests/{id}`: the request and, once completed, its receipt.
pub async fn detail(ObjectPage { s, me, id }: ObjectPage, Query(q): Query<Done>) -> Response {
    match dsr_call(&s, async |dsr| dsr.get(&me.principal, &id).await).await {
        Ok(r) => {
            let r = DataSubjectRequest::from(r);
            let receipt = r.receipt.as_ref();
            page(&Detail {
                shell: Shell::new(&me, "dsr", "Privacy request").done(q.done.as_deref()),
                completed: receipt.map(|c| when(c.completed_at)).unwrap_or_default(),
                export_until: receipt
                    .and_then(|c| c.export_expires_at)
                    .map(when)
                    .unwrap_or_default(),
                row: row(r),
            })
        }
        Err(f) => f.page(),
    }
}

/// `GET /privacy-requests/{id}/export`: the access export, as a JSON download.
pub async fn export(State(s): State<ConsoleState>, me: Me, Path(id): Path<String>) -> Response {
    match dsr_call(&s, async |dsr| dsr.export(&me.principal, &id).await).await {
        Ok(doc) => {
            let name: String = id
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            (
                [
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{name}-export.json\""),
                    ),
                    (header::CONTENT_TYPE, "application/json".to_owned()),
                ],
                serde_json::to_vec_pretty(&doc).unwrap_or_default(),
            )
                .into_response()
        }
        Err(f) => f.page(),
    }
}
