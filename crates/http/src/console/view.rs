//! What every page template shares: the asset paths, the title, and rendering to a response.

use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::assets::{assets, Assets};
use crate::problem::Problem;

/// The document frame of a page: its title and the asset paths.
#[derive(Debug)]
pub struct Frame {
    pub title: String,
    pub assets: &'static Assets,
}

impl Frame {
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            assets: assets(),
        }
    }
}

/// A rendered page with a status.
pub fn html(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            body,
        )
            .into_response(),
        Err(e) => Problem::internal_logged(&e, "console page failed to render").into_response(),
    }
}

/// A rendered page, 200.
pub fn page(page: &impl Template) -> Response {
    html(StatusCode::OK, page)
}
