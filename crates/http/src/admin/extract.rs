//! Extractors whose every rejection is problem+json naming what is wrong: the bearer
//! principal, JSON bodies, path ids and query parameters.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tracklayer_core::admin::Principal;

use super::error::{bad_parameter, problem, unauthorized};
use super::AdminState;
use crate::body::read_body;
use crate::problem::Problem;

/// Largest admin request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// An authenticated admin call: the admin state and the caller, from
/// `Authorization: Bearer <token>` (a personal access token or a service token).
#[derive(Debug)]
pub struct Call(pub AdminState, pub Principal);

impl FromRequestParts<AdminState> for Call {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AdminState) -> Result<Self, Problem> {
        let token = bearer(parts, "a personal access token or service token")?;
        state
            .admin()
            .authenticate_from(token, peer_ip(parts))
            .await
            .map(|p| Call(state.clone(), p))
            .map_err(|e| problem(e, state.config()))
    }
}

/// The token of `Authorization: Bearer <token>`; `what` names the token the API takes.
pub(crate) fn bearer<'a>(parts: &'a Parts, what: &str) -> Result<&'a str, Problem> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized(format!(
            "send {what} as Authorization: Bearer <token>"
        )));
    };
    let value = value
        .to_str()
        .map_err(|_| unauthorized("the Authorization header is not valid text"))?;
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(unauthorized(format!(
            "use Bearer authorization with {what}"
        )));
    }
    Ok(token.trim())
}

/// The connection's address (the socket's, or what the Lambda transport knows). The admin
/// API trusts no `X-Forwarded-For`.
pub(crate) fn peer_ip(parts: &Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
        .or_else(|| {
            parts
                .extensions
                .get::<crate::tracking::ClientIp>()
                .map(|c| c.0)
        })
}

/// A JSON body. Malformed JSON and wrong shapes answer 400 naming the field at fault.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Problem> {
        let bytes = body(req).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(Problem::bad_request(
                "invalid-json",
                "the request needs a JSON body",
            ));
        }
        parse_json(&bytes).map(Json)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// A JSON body that may be left out (then `T::default()`).
#[derive(Debug)]
pub struct OptionalJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Problem> {
        let bytes = body(req).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        parse_json::<Option<T>>(&bytes).map(|v| OptionalJson(v.unwrap_or_default()))
    }
}

async fn body(req: Request) -> Result<Vec<u8>, Problem> {
    let (parts, body) = req.into_parts();
    read_body(&parts.headers, body, MAX_BODY_BYTES).await
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    // serde reads a struct from an array of its fields too; every admin body is an object.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| {
        *b == b'[' || b.is_ascii_digit() || *b == b'"' || *b == b'-' || *b == b't' || *b == b'f'
    }) {
        return Err(Problem::bad_request(
            "invalid-body",
            "the body must be a JSON object",
        ));
    }
    let not_json = |e: serde_json::Error| {
        Problem::bad_request("invalid-json", format!("the body is not valid JSON: {e}"))
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return not_json(inner);
        }
        let message = inner.to_string();
        // An unknown field (e.g. `region`, which is fixed at creation) or a missing one is
        // the field at fault.
        let unknown = ["unknown field `", "missing field `"]
            .iter()
            .find_map(|prefix| message.strip_prefix(prefix))
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned);
        let p = Problem::bad_request("invalid-body", message);
        if let Some(name) = unknown {
            if path.is_empty() || path == "." {
                p.field(name)
            } else if path == name || path.ends_with(&format!(".{name}")) {
                p.field(path)
            } else {
                p.field(format!("{path}.{name}"))
            }
        } else if path.is_empty() || path == "." {
            p
        } else {
            p.field(path)
        }
    })?;
    de.end().map_err(not_json)?;
    Ok(value)
}

/// A path id, percent-decoded; not valid text, it is a 400 naming `id`.
#[derive(Debug)]
pub struct Id(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let PathId(id) = PathId::from_request_parts(parts, state)
            .await
            .map_err(|_| bad_parameter("id", "the id in the path is not valid text"))?;
        Ok(Id(id))
    }
}

/// A path's `{id}`, percent-decoded, for the routes that do not answer problem+json (the
/// console's pages, SCIM): its rejection is axum's own answer.
#[derive(Debug)]
pub struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|p| PathId(p.0))
            .map_err(IntoResponse::into_response)
    }
}

/// The query string's parameters, checked one by one by the handlers.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        axum::extract::Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map(|q| Params(q.0))
            .map_err(|_| Problem::bad_request("invalid-query", "the query string is not valid"))
    }
}

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self, name: &str, max_len: usize) -> Result<Option<String>, Problem> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if v.chars().count() > max_len => Err(bad_parameter(
                name,
                format!("{name} must be at most {max_len} characters"),
            )),
            Some(v) => Ok(Some(v.to_owned())),
        }
    }

    pub fn integer(&self, name: &str, min: u64, max: u64) -> Result<Option<u64>, Problem> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        v.parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .map(Some)
            .ok_or_else(|| {
                bad_parameter(
                    name,
                    format!("{name} must be an integer from {min} to {max}"),
                )
            })
    }

    pub fn time(&self, name: &str) -> Result<Option<OffsetDateTime>, Problem> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        parse_time(v)
            .map(Some)
            .ok_or_else(|| bad_parameter(name, format!("{name} must be an RFC 3339 date-time")))
    }
}

/// RFC 3339, with the lowercase `t` and `z` it allows.
pub fn parse_time(v: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(&v.to_ascii_uppercase(), &Rfc3339).ok()
}

/// A handler's answer when done with nothing to return: `204 No Content`, or problem+json.
pub type NoContent = Result<StatusCode, Problem>;

/// A handler's answer: a JSON body, or problem+json.
pub type Answer<T> = Result<Json<T>, Problem>;

/// A handler's answer to a creation: `201 Created` with a JSON body, or problem+json.
pub type Created<T> = Result<(StatusCode, Json<T>), Problem>;
