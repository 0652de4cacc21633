//! An HTTP front shaped like the stack's HTTP API: a real listener on loopback whose every
//! request becomes the payload-2.0 event API Gateway would send to the function the template
//! routes it to ([`Deployment::http`]), and whose answer is the function's response as API
//! Gateway returns it. So an unmodified HTTP client (scim2-tester, say) drives the Lambda
//! functions as it would drive the deployed API.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::events::HttpRequest;
use super::{Deployment, LocalServer};

/// API Gateway's HTTP API payload limit (10 MB).
const MAX_BODY: usize = 10 * 1024 * 1024;

/// The front, listening until it drops.
pub struct Gateway {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    _server: LocalServer,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("url", &self.url).finish()
    }
}

impl Gateway {
    /// Starts a front for the functions of `d`.
    pub async fn start(d: Arc<Deployment>) -> std::io::Result<Self> {
        let app = axum::Router::new().fallback(forward).with_state(d);
        let server = LocalServer::start(app).await?;
        Ok(Self {
            url: format!("http://{}", server.addr),
            _server: server,
        })
    }
}

async fn forward(State(d): State<Arc<Deployment>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let mut event = HttpRequest::new(parts.method.as_str(), &path_and_query);
    for (name, value) in &parts.headers {
        event = event.header(name.as_str(), &String::from_utf8_lossy(value.as_bytes()));
    }
    let bytes = match to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "body over 10 MB").into_response(),
    };
    if !bytes.is_empty() {
        event.body = Some(bytes.to_vec());
    }
    let answer = match d.http(event).await {
        Ok(a) => a,
        // API Gateway's answer to a failed integration.
        Err(e) => return (StatusCode::BAD_GATEWAY, format!("{e:#}")).into_response(),
    };
    let mut resp = Response::new(Body::from(answer.body));
    *resp.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    for (name, value) in &answer.headers {
        if name == "content-length" || name == "transfer-encoding" {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            resp.headers_mut().insert(n, v);
        }
    }
    resp
}
