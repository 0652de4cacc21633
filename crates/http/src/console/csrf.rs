//! Every state-changing console request proves it comes from a console page: the browser says
//! so (`Sec-Fetch-Site: same-origin`, or an `Origin` naming this host), and a signed-in
//! request carries the session's CSRF token (a hidden `csrf` field, or `X-CSRF-Token` from
//! htmx). Anything else is refused with a 403 page before the use case runs.

use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::session::Me;
use super::view::refusal;
use super::ConsoleState;
use crate::body::read_body;

/// Largest form body.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// Whether the browser says the request comes from this origin: `Sec-Fetch-Site:
/// same-origin` (which a page cannot forge), or, from a browser that does not send it, an
/// `Origin` naming this host. (Under `Referrer-Policy: no-referrer` a form post's `Origin` is
/// `null`, so `Sec-Fetch-Site` decides when present.) A request saying neither is refused.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        return site == "same-origin";
    }
    match (text(header::ORIGIN.as_str()), text(header::HOST.as_str())) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(scheme, rest)| matches!(scheme, "http" | "https") && rest == host),
        _ => false,
    }
}

/// A form's fields, in order.
#[derive(Debug, Default, Clone)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    pub fn parse(bytes: &[u8]) -> Self {
        Self(
            url::form_urlencoded::parse(bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`, trimmed; `""` when absent.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.trim())
    }

    /// The value of `name`, or `None` when absent or blank.
    pub fn opt(&self, name: &str) -> Option<String> {
        Some(self.get(name))
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    /// Every value of `name` (checkboxes).
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect()
    }

    pub fn checked(&self, name: &str) -> bool {
        self.0.iter().any(|(k, v)| k == name && !v.is_empty())
    }
}

fn cross_site() -> Response {
    refusal(
        StatusCode::FORBIDDEN,
        "Request refused",
        "This request did not come from a console page (a cross-site form or a missing \
         security token). Go back, reload the page and try again.",
    )
}

async fn fields(headers: &HeaderMap, body: axum::body::Body) -> Result<Fields, Response> {
    read_body(headers, body, MAX_FORM_BYTES)
        .await
        .map(|b| Fields::parse(&b))
        .map_err(IntoResponse::into_response)
}

/// A same-origin form post before sign-in (sign-in, invitation, password reset).
#[derive(Debug)]
pub struct PublicForm(pub Fields);

impl<S: Send + Sync> FromRequest<S> for PublicForm {
    type Rejection = Response;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Response> {
        let (parts, body) = req.into_parts();
        if !same_origin(&parts.headers) {
            return Err(cross_site());
        }
        Ok(PublicForm(fields(&parts.headers, body).await?))
    }
}

/// A state-changing request of a signed-in person: same origin, the session's CSRF token,
/// and the form's fields.
#[derive(Debug)]
pub struct Action {
    pub me: Me,
    pub form: Fields,
}

impl FromRequest<ConsoleState> for Action {
    type Rejection = Response;

    async fn from_request(req: Request, state: &ConsoleState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let me = <Me as axum::extract::FromRequestParts<ConsoleState>>::from_request_parts(
            &mut parts, state,
        )
        .await?;
        if !same_origin(&parts.headers) {
            return Err(cross_site());
        }
        let form = fields(&parts.headers, body).await?;
        let header = parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok());
        let presented = header.unwrap_or_else(|| form.get("csrf"));
        if presented.is_empty() || !me.csrf_matches(presented) {
            return Err(cross_site());
        }
        Ok(Action { me, form })
    }
}

#[cfg(test)]
mod tests {
    use super::same_origin;
    use axum::http::HeaderMap;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn a_post_the_browser_marks_same_origin_passes_even_with_a_null_origin() {
        let h = headers(&[
            ("sec-fetch-site", "same-origin"),
            ("origin", "null"),
            ("host", "a.test"),
        ]);
        assert!(same_origin(&h));
    }

    #[test]
    fn a_cross_site_or_same_site_post_is_refused_whatever_its_origin_says() {
        for site in ["cross-site", "same-site", "none"] {
            let h = headers(&[
                ("sec-fetch-site", site),
                ("origin", "http://a.test"),
                ("host", "a.test"),
            ]);
            assert!(!same_origin(&h), "{site}");
        }
    }

    #[test]
    fn without_fetch_metadata_only_an_origin_naming_this_host_passes() {
        assert!(same_origin(&headers(&[
            ("origin", "https://a.test"),
            ("host", "a.test")
        ])));
        assert!(!same_origin(&headers(&[
            ("origin", "https://evil.test"),
            ("host", "a.test")
        ])));
        assert!(!same_origin(&headers(&[
            ("origin", "null"),
            ("host", "a.test")
        ])));
        assert!(
            !same_origin(&headers(&[("host", "a.test")])),
            "neither header"
        );
    }
}
