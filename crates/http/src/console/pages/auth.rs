//! Signing in and out.

use askama::Template;
use axum::response::Response;

use crate::console::view::{page, Frame};

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignIn {
    frame: Frame,
    email: String,
    error: Option<String>,
    notice: Option<String>,
}

/// `GET /sign-in`.
pub async fn sign_in_page() -> Response {
    page(&SignIn {
        frame: Frame::new("Sign in"),
        email: String::new(),
        error: None,
        notice: None,
    })
}
