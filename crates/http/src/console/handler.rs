//! The shapes console handlers share: a checked [`Action`] on the object its path names (most
//! buttons) and its answer, a redirect to the page that reports it done or the page of its
//! failure; the page of one object; a form shown again with the rule it broke; a use case's
//! error as the [`Failure`] to show.

use std::future::Future;

use askama::Template;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::Response;
use axum::RequestExt;

use super::csrf::{Action, Fields};
use super::session::Me;
use super::view::{html, see_other, Failure};
use super::ConsoleState;
use crate::admin::extract::PathId;

/// An [`Action`] (same origin, CSRF token, form) on the object `{id}` of its path, with the
/// console's state.
#[derive(Debug)]
pub struct OnObject {
    pub s: ConsoleState,
    pub id: String,
    pub me: Me,
    pub form: Fields,
}

impl FromRequest<ConsoleState> for OnObject {
    type Rejection = Response;

    async fn from_request(mut req: Request, state: &ConsoleState) -> Result<Self, Response> {
        let PathId(id) = req.extract_parts::<PathId>().await?;
        let Action { me, form } = Action::from_request(req, state).await?;
        let s = state.clone();
        Ok(Self { s, id, me, form })
    }
}

/// A page of the object `{id}` of its path, for the signed-in person, with the console's state.
#[derive(Debug)]
pub struct ObjectPage {
    pub s: ConsoleState,
    pub me: Me,
    pub id: String,
}

impl FromRequestParts<ConsoleState> for ObjectPage {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ConsoleState) -> Result<Self, Response> {
        let me = Me::from_request_parts(parts, state).await?;
        let PathId(id) = PathId::from_request_parts(parts, state).await?;
        let s = state.clone();
        Ok(Self { s, me, id })
    }
}

/// Whether htmx sent the request (`HX-Request`): it swaps in a part of the page, not the page.
#[derive(Debug, Clone, Copy)]
pub struct HxRequest(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for HxRequest {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.headers.contains_key("hx-request")))
    }
}

/// `303 See Other` to `done` once the use case succeeded; else the page of its failure.
pub fn after<T>(
    s: &ConsoleState,
    result: Result<T, impl crate::admin::Failure>,
    done: &str,
) -> Response {
    match result {
        Ok(_) => see_other(done),
        Err(e) => Failure::of(s, e).page(),
    }
}

/// A use case's answer with its error turned into the [`Failure`] to show.
pub trait OrFailure<T> {
    fn or_failure(self, s: &ConsoleState) -> Result<T, Failure>;
}

impl<T, E: crate::admin::Failure> OrFailure<T> for Result<T, E> {
    fn or_failure(self, s: &ConsoleState) -> Result<T, Failure> {
        self.map_err(|e| Failure::of(s, e))
    }
}

/// The answer to a form the use case refused: for a rule the form broke, the form's page,
/// loaded afresh, with `show` putting the failure (and what was typed) on it, under the
/// failure's status; for any other failure, or one loading the page, the page of that failure.
pub async fn form_again<T: Template>(
    f: Failure,
    page: impl Future<Output = Result<T, Failure>>,
    show: impl FnOnce(&mut T, &Failure),
) -> Response {
    if !f.is_form_error() {
        return f.page();
    }
    match page.await {
        Ok(mut view) => {
            show(&mut view, &f);
            html(f.status, &view)
        }
        Err(f) => f.page(),
    }
}
