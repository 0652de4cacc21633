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

/// Reads a body of at most `limit` bytes, decompressing gzip/deflate up to `limit` bytes and
/// [`DEFAULT_INFLATE_RATIO`] times the compressed size.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Vec<u8>, Problem> {
    read_body_with(headers, body, BodyLimits::new(limit)).await
}

/// How much decompressed data one compressed byte may become, by default: JSON batches
/// compress 5–20×, a gzip bomb over 1,000×.
pub const DEFAULT_INFLATE_RATIO: usize = 100;

/// The caps of one body read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// Bytes on the wire.
    pub max_bytes: usize,
    /// Bytes after gzip/deflate decompression.
    pub max_inflated_bytes: usize,
    /// Decompressed bytes per compressed byte.
    pub max_inflate_ratio: usize,
}

impl BodyLimits {
    /// `limit` on the wire and decompressed, with the default ratio.
    pub fn new(limit: usize) -> Self {
        Self {
            max_bytes: limit,
            max_inflated_bytes: limit,
            max_inflate_ratio: DEFAULT_INFLATE_RATIO,
        }
    }
}

/// Reads a body within `limits`. A body that misses its [`DeadlineBody`] deadline is a 408;
/// one that finds `serve`'s [`crate::limits::BodyBudget`] spent is a 503.
pub async fn read_body_with(
    headers: &HeaderMap,
    body: Body,
    limits: BodyLimits,
) -> Result<Vec<u8>, Problem> {
    let limit = limits.max_bytes;
    let raw = to_bytes(body, limit).await.map_err(|e| {
        if let Some(BodyTimedOut(after)) = cause(&e) {
            return Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "body-timeout",
                "Request Timeout",
                format!(
                    "the request body did not arrive within {} seconds",
                    after.as_secs_f64()
                ),
            )
            .header(header::CONNECTION, "close");
        }
        if let Some(spent) = cause::<crate::limits::BudgetSpent>(&e) {
            return crate::limits::spent_problem(spent).header(header::CONNECTION, "close");
        }
        Problem::too_large(format!("the request body is larger than {limit} bytes")).field("body")
    })?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match encoding.as_str() {
        "" | "identity" => Ok(raw.to_vec()),
        "gzip" | "x-gzip" => inflate(GzDecoder::new(&raw[..]), raw.len(), limits),
        "deflate" => inflate(ZlibDecoder::new(&raw[..]), raw.len(), limits),
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

/// The first error of type `T` in the chain of `e`.
pub(crate) fn cause<T: std::error::Error + Copy + 'static>(e: &axum::Error) -> Option<T> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(t) = c.downcast_ref::<T>() {
            return Some(*t);
        }
        cause = c.source();
    }
    None
}

/// A request body that fails with [`BodyTimedOut`] when it has not ended `timeout` after the
/// request began: a client dribbling its body cannot hold a connection and a handler. A
/// [`Meter`] sees each data frame as it arrives and may end the body with an error.
#[derive(Debug)]
pub struct DeadlineBody {
    inner: Body,
    timeout: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
    meter: Option<Box<dyn Meter>>,
}

/// Counts a body's bytes as they arrive (see [`crate::limits::BodyBudget`]).
pub trait Meter: std::fmt::Debug + Send + 'static {
    /// `bytes` more arrived; an error ends the body with it.
    fn arrived(&mut self, bytes: usize) -> Result<(), BoxError>;
}

impl DeadlineBody {
    pub fn new(inner: Body, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            meter: None,
        }
    }

    /// The body with `meter` counting its data.
    pub fn metered(mut self, meter: impl Meter) -> Self {
        self.meter = Some(Box::new(meter));
        self
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
            if let (Some(meter), Some(Ok(f))) = (this.meter.as_mut(), frame.as_ref()) {
                let bytes = f.data_ref().map_or(0, Bytes::len);
                if let Err(e) = meter.arrived(bytes) {
                    return Poll::Ready(Some(Err(e)));
                }
            }
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

/// Decompresses `compressed` bytes up to the smaller of the absolute cap and the ratio cap;
/// past either, a 413 naming the body.
fn inflate(reader: impl Read, compressed: usize, limits: BodyLimits) -> Result<Vec<u8>, Problem> {
    let by_ratio = compressed.saturating_mul(limits.max_inflate_ratio.max(1));
    let cap = limits.max_inflated_bytes.min(by_ratio);
    let mut out = Vec::with_capacity(cap.min(64 * 1024));
    // Read one byte past the cap to tell "exactly at the cap" from "over it".
    reader
        .take(cap as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| {
            Problem::bad_request("invalid-encoding", "the body is not valid gzip data")
                .field("Content-Encoding")
        })?;
    if out.len() <= cap {
        return Ok(out);
    }
    let detail = if cap == limits.max_inflated_bytes {
        format!(
            "the decompressed request body is larger than {} bytes",
            limits.max_inflated_bytes
        )
    } else {
        format!(
            "the request body decompresses to more than {} times its {compressed} compressed bytes",
            limits.max_inflate_ratio
        )
    };
    Err(Problem::too_large(detail).field("body"))
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
    async fn refuses_a_body_that_inflates_past_the_ratio_even_under_the_absolute_cap() {
        // 200 KiB of spaces compress to a few hundred bytes: far over 100 times.
        let err = refused_as_too_large(&vec![b' '; 200 * 1024], BodyLimits::new(500 * 1024)).await;
        assert!(err.details().detail.contains("100 times"), "{err:?}");
    }

    /// Reading `data` gzipped under `limits`: a 413 naming the body.
    async fn refused_as_too_large(data: &[u8], limits: BodyLimits) -> Problem {
        let err = read_body_with(&gzip_headers(), Body::from(gz(data)), limits)
            .await
            .unwrap_err();
        assert_eq!(err.status(), 413);
        assert_eq!(err.details().field.as_deref(), Some("body"));
        err
    }

    #[tokio::test]
    async fn a_body_within_the_ratio_and_the_cap_is_read_whole() {
        let text: Vec<u8> = (0..20_000u32)
            .flat_map(|i| format!("{{\"event\":\"e{i}\"}},").into_bytes())
            .collect();
        let compressed = gz(&text);
        assert!(text.len() < compressed.len() * 100);
        let body = read_body_with(
            &gzip_headers(),
            Body::from(compressed),
            BodyLimits::new(text.len()),
        )
        .await
        .unwrap();
        assert_eq!(body, text);
    }

    #[tokio::test]
    async fn the_absolute_cap_names_the_body() {
        let limits = BodyLimits {
            max_inflated_bytes: 1000,
            ..BodyLimits::new(500 * 1024)
        };
        let data: Vec<u8> = (0..2000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let err = refused_as_too_large(&data, limits).await;
        assert!(err.details().detail.contains("1000 bytes"), "{err:?}");
    }

    #[tokio::test]
    async fn rejects_corrupt_gzip_with_a_400() {
        let err = read_body(&gzip_headers(), Body::from(&b"not gzip"[..]), 1000)
            .await
            .unwrap_err();
        assert_eq!(err.status(), 400);
    }
}
