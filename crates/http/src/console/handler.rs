//! The shape of most console buttons: a checked [`Action`] on the object its path names, and
//! its answer, a redirect to the page that reports it done or the page of its failure; and the
//! page of one object.

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::RequestExt;

use super::csrf::{Action, Fields};
use super::session::Me;
use super::view::{see_other, Failure};
use super::ConsoleState;

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
        let Path(id) = req
            .extract_parts::<Path<String>>()
            .await
            .map_err(IntoResponse::into_response)?;
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
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let s = state.clone();
        Ok(Self { s, me, id })
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
