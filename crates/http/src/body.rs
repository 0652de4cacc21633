//! Request bodies: bounded reads, bounded gzip decompression (no gzip bombs), and a deadline
//! for the whole body (no slow-body connections held open).

use std::future::Future;
use std::io::Read;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{to_bytes, Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode};
use axum::BoxError;
use flate2::read::{GzDecoder, ZlibDecoder};
use http_body::{Frame, SizeHint};

use crate::problem::Problem;

/// Reads a body of at most `limit` bytes, decompressing gzip/deflate up to `limit` bytes.
/// A body that misses its [`DeadlineBody`] deadline is a 408.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Vec<u8>, Problem> {
    let raw = to_bytes(body, limit)
        .await
        .map_err(|e| match timed_out(&e) {
            Some(BodyTimedOut(after)) => Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "body-timeout",
                "Request Timeout",
                format!(
                    "the request body did not arrive within {} seconds",
                    after.as_secs_f64()
                ),
            )
            .header(header::CONNECTION, "close"),
            None => Problem::too_large(format!("the request body is larger than {limit} bytes")),
        })?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match encoding.as_str() {
        "" | "identity" => Ok(raw.to_vec()),
        "gzip" | "x-gzip" => inflate(GzDecoder::new(&raw[..]), limit),
        "deflate" => inflate(ZlibDecoder::new(&raw[..]), limit),
        other => Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-encoding",
            "Unsupported Media Type",
            format!("Content-Encoding {other:?} is not supported; use gzip or none"),
        )
        .field("Content-Encoding")),
    }
}

/// The whole body did not arrive within this time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimedOut(pub Duration);

fn timed_out(e: &axum::Error) -> Option<BodyTimedOut> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(t) = c.downcast_ref::<BodyTimedOut>() {
            return Some(*t);
        }
        cause = c.source();
    }
    None
}

/// A request body that fails with [`BodyTimedOut`] when it has not ended `timeout` after the
/// request began: a client dribbling its body cannot hold a connection and a handler.
#[derive(Debug)]
pub struct DeadlineBody {
    inner: Body,
    timeout: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl DeadlineBody {
    pub fn new(inner: Body, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match this.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut(this.timeout))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn inflate(reader: impl Read, limit: usize) -> Result<Vec<u8>, Problem> {
    let mut out = Vec::with_capacity(limit.min(64 * 1024));
    // Read one byte past the limit to tell "exactly at the limit" from "over it".
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| {
            Problem::bad_request("invalid-encoding", "the body is not valid gzip data")
                .field("Content-Encoding")
        })?;
    if out.len() > limit {
        return Err(Problem::too_large(format!(
            "the decompressed request body is larger than {limit} bytes"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn gzip_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
        h
    }

    #[tokio::test]
    async fn decompresses_gzip_bodies() {
        let body = read_body(&gzip_headers(), Body::from(gz(b"{\"a\":1}")), 1000)
            .await
            .unwrap();
        assert_eq!(body, b"{\"a\":1}");
    }

    #[tokio::test]
    async fn refuses_a_gzip_bomb_past_the_decompressed_limit() {
        let bomb = gz(&vec![b' '; 10 * 1024 * 1024]);
        assert!(bomb.len() < 20_000);
        let err = read_body(&gzip_headers(), Body::from(bomb), 500 * 1024)
            .await
            .unwrap_err();
        assert_eq!(err.status(), 413);
    }

    #[tokio::test]
    async fn rejects_corrupt_gzip_with_a_400() {
        let err = read_body(&gzip_headers(), Body::from(&b"not gzip"[..]), 1000)
            .await
            .unwrap_err();
        assert_eq!(err.status(), 400);
    }
}
